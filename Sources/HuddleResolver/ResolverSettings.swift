// Where and how the resolver asks: nameservers, search list, per-attempt timeout. From /etc/resolv.conf, or from the
// config's `resolver` directive (which replaces the nameservers and drops the search list: names are then asked
// exactly as written, as nginx's resolver does).
import HuddleDNS
import HuddleSys

public struct ResolverSettings: Sendable, Equatable {
    public var nameservers: [SocketAddress]
    public var search: [DNSName]
    public var ndots: Int
    /// Per attempt; a query is tried twice (the retry goes to the next nameserver when there are several).
    public var timeoutMs: Int64
    public var attempts = 2

    public static let defaultTimeoutMs: Int64 = 2000

    public init(nameservers: [SocketAddress], search: [DNSName] = [], ndots: Int = 1, timeoutMs: Int64 = defaultTimeoutMs) {
        self.nameservers = nameservers
        self.search = search
        self.ndots = ndots
        self.timeoutMs = timeoutMs
    }

    /// From resolv.conf text: its nameservers (port 53; entries that are not IP literals are skipped), search list and
    /// ndots. With no nameserver line, 127.0.0.1 as glibc does.
    public static func fromResolvConf(_ text: String, timeoutMs: Int64 = defaultTimeoutMs) -> ResolverSettings {
        let c = ResolvConf.parse(text)
        var servers = c.nameservers.compactMap { SocketAddress(ip: $0, port: 53) }
        if c.nameservers.isEmpty { servers = [SocketAddress(ip: "127.0.0.1", port: 53)!] }
        return ResolverSettings(nameservers: servers, search: c.search, ndots: c.ndots, timeoutMs: timeoutMs)
    }

    /// The system's settings: /etc/resolv.conf, read now (blocking: call at start or reload, off the event loops).
    public static func system(path: String = "/etc/resolv.conf", timeoutMs: Int64 = defaultTimeoutMs) -> ResolverSettings {
        let bytes = (try? Sys.readWholeFile(path, limit: 1 << 20)) ?? []
        return fromResolvConf(String(decoding: bytes, as: UTF8.self), timeoutMs: timeoutMs)
    }

    /// The names to ask for `name`, in order (see `ResolvConf.candidates`); nil when it is not a valid name.
    public func candidates(for name: String) -> [DNSName]? {
        var c = ResolvConf()
        c.search = search
        c.ndots = ndots
        return c.candidates(for: name)
    }
}
