// IPv4/IPv6 socket addresses: parsing, resolving (at config time only) and printing.
import Glibc

public enum SocketAddress: Sendable, Hashable, CustomStringConvertible {
    case v4(sockaddr_in)
    case v6(sockaddr_in6)

    /// A numeric address; nil when `host` is not an IP literal.
    public init?(ip host: String, port: UInt16) {
        var a4 = in_addr()
        if inet_pton(AF_INET, host, &a4) == 1 {
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = port.bigEndian
            sa.sin_addr = a4
            self = .v4(sa)
            return
        }
        var a6 = in6_addr()
        if inet_pton(AF_INET6, host, &a6) == 1 {
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = port.bigEndian
            sa.sin6_addr = a6
            self = .v6(sa)
            return
        }
        return nil
    }

    /// An address from its raw IP bytes in network order: 4 (IPv4) or 16 (IPv6); nil for any other count.
    public init?(ipBytes: [UInt8], port: UInt16) {
        switch ipBytes.count {
        case 4:
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = port.bigEndian
            withUnsafeMutableBytes(of: &sa.sin_addr) { $0.copyBytes(from: ipBytes) }
            self = .v4(sa)
        case 16:
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &sa.sin6_addr) { $0.copyBytes(from: ipBytes) }
            self = .v6(sa)
        default:
            return nil
        }
    }

    /// The IP in network order: 4 bytes for IPv4, 16 for IPv6.
    public var ipBytes: [UInt8] {
        switch self {
        case .v4(var a): return withUnsafeBytes(of: &a.sin_addr) { Array($0) }
        case .v6(var a): return withUnsafeBytes(of: &a.sin6_addr) { Array($0) }
        }
    }

    /// Resolves a name with getaddrinfo (blocking: call only off the data path). IP literals resolve without a lookup.
    public static func resolve(host: String, port: UInt16) throws(Errno) -> [SocketAddress] {
        if let a = SocketAddress(ip: host, port: port) { return [a] }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &res)
        guard rc == 0, let first = res else { throw Errno(EHOSTUNREACH) }
        defer { freeaddrinfo(first) }
        var out: [SocketAddress] = []
        var p: UnsafeMutablePointer<addrinfo>? = first
        while let ai = p {
            if ai.pointee.ai_family == AF_INET, let sa = ai.pointee.ai_addr {
                out.append(.v4(UnsafeRawPointer(sa).load(as: sockaddr_in.self)))
            } else if ai.pointee.ai_family == AF_INET6, let sa = ai.pointee.ai_addr {
                out.append(.v6(UnsafeRawPointer(sa).load(as: sockaddr_in6.self)))
            }
            p = ai.pointee.ai_next
        }
        if out.isEmpty { throw Errno(EHOSTUNREACH) }
        return out
    }

    /// Builds an address from what accept/getsockname filled in.
    public init?(storage: sockaddr_storage) {
        var s = storage
        switch Int32(storage.ss_family) {
        case AF_INET:
            self = withUnsafeBytes(of: &s) { .v4($0.load(as: sockaddr_in.self)) }
        case AF_INET6:
            self = withUnsafeBytes(of: &s) { .v6($0.load(as: sockaddr_in6.self)) }
        default:
            return nil
        }
    }

    public var family: Int32 {
        switch self {
        case .v4: return AF_INET
        case .v6: return AF_INET6
        }
    }

    public var port: UInt16 {
        switch self {
        case .v4(let a): return UInt16(bigEndian: a.sin_port)
        case .v6(let a): return UInt16(bigEndian: a.sin6_port)
        }
    }

    /// The IP as text, without the port.
    public var isIPv6: Bool {
        if case .v6 = self { return true }
        return false
    }

    public var ipString: String {
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch self {
        case .v4(var a):
            _ = inet_ntop(AF_INET, &a.sin_addr, &buf, socklen_t(buf.count))
        case .v6(var a):
            _ = inet_ntop(AF_INET6, &a.sin6_addr, &buf, socklen_t(buf.count))
        }
        return buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    public var description: String {
        switch self {
        case .v4: return "\(ipString):\(port)"
        case .v6: return "[\(ipString)]:\(port)"
        }
    }

    public func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws(Errno) -> R) throws(Errno) -> R {
        switch self {
        case .v4(var a):
            return try withUnsafePointer(to: &a) { (p) throws(Errno) -> R in
                try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { (sp) throws(Errno) -> R in
                    try body(sp, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        case .v6(var a):
            return try withUnsafePointer(to: &a) { (p) throws(Errno) -> R in
                try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { (sp) throws(Errno) -> R in
                    try body(sp, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        }
    }

    public static func == (a: SocketAddress, b: SocketAddress) -> Bool { a.description == b.description }
    public func hash(into h: inout Hasher) { h.combine(description) }
}
