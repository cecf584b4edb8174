// Parsers for the config language's value types, shared with the command line; each returns nil on bad input.

public enum ConfigValue {
    /// `250ms`, `2s`, `5m`, `1h`, `1d`, or units combined largest first as in nginx (`1m30s`);
    /// a bare number is seconds. Nil when empty, negative, malformed or beyond `Int64` milliseconds.
    public static func duration(_ s: Substring) -> Milliseconds? {
        let b = Array(s.utf8)
        guard !b.isEmpty else { return nil }
        if b.allSatisfy(isDigit) {
            guard let n = number(b[...]) else { return nil }
            return checkedMultiply(n, 1000)
        }
        var total: Int64 = 0
        var i = 0
        var previousScale = Int64.max
        while i < b.count {
            let start = i
            while i < b.count, isDigit(b[i]) { i += 1 }
            guard i > start, i < b.count, let n = number(b[start..<i]) else { return nil }
            let scale: Int64
            if b[i] == UInt8(ascii: "m"), i + 1 < b.count, b[i + 1] == UInt8(ascii: "s") {
                scale = 1
                i += 2
            } else {
                switch b[i] {
                case UInt8(ascii: "s"): scale = 1000
                case UInt8(ascii: "m"): scale = 60_000
                case UInt8(ascii: "h"): scale = 3_600_000
                case UInt8(ascii: "d"): scale = 86_400_000
                default: return nil
                }
                i += 1
            }
            // "1s1m" or "1s1s" is more likely a typo than a sum.
            guard scale < previousScale else { return nil }
            previousScale = scale
            guard let part = checkedMultiply(n, scale) else { return nil }
            let (sum, overflow) = total.addingReportingOverflow(part)
            guard !overflow else { return nil }
            total = sum
        }
        return total
    }

    /// Bytes: `512`, `16k`, `10m`, `1g` (units are powers of 1024, either case). Nil when empty, negative,
    /// malformed or beyond `Int64`.
    public static func size(_ s: Substring) -> Int64? {
        var b = Array(s.utf8)[...]
        guard let last = b.last else { return nil }
        var scale: Int64 = 1
        switch last {
        case UInt8(ascii: "k"), UInt8(ascii: "K"): scale = 1 << 10
        case UInt8(ascii: "m"), UInt8(ascii: "M"): scale = 1 << 20
        case UInt8(ascii: "g"), UInt8(ascii: "G"): scale = 1 << 30
        default: break
        }
        if scale != 1 { b = b.dropLast() }
        guard !b.isEmpty, b.allSatisfy(isDigit), let n = number(b) else { return nil }
        return checkedMultiply(n, scale)
    }

    /// `0%` to `100%`.
    public static func percent(_ s: Substring) -> Int? {
        let b = Array(s.utf8)
        guard b.count >= 2, b.last == UInt8(ascii: "%") else { return nil }
        let digits = b.dropLast()
        guard digits.allSatisfy(isDigit), let n = number(digits), n <= 100 else { return nil }
        return Int(n)
    }

    /// A rate: `100/s`, `6000/m` or `10/h`: a whole number of requests (at least 1) per second, minute or hour.
    /// Returns the count and the period in milliseconds.
    public static func rate(_ s: Substring) -> (requests: Int, perMs: Milliseconds)? {
        guard let slash = s.firstIndex(of: "/"), let n = integer(s[..<slash]), n >= 1 else { return nil }
        switch s[s.index(after: slash)...] {
        case "s": return (n, 1000)
        case "m": return (n, 60_000)
        case "h": return (n, 3_600_000)
        default: return nil
        }
    }

    /// A non-negative whole number in decimal digits only (no sign, no spaces).
    public static func integer(_ s: Substring) -> Int? {
        let b = Array(s.utf8)
        guard !b.isEmpty, b.allSatisfy(isDigit), let n = number(b[...]) else { return nil }
        return Int(exactly: n)
    }

    /// A decimal number such as `1.25`: digits with at most one point, no sign, exponent, `inf` or `nan`.
    public static func decimal(_ s: Substring) -> Double? {
        let b = Array(s.utf8)
        var sawDigit = false, sawPoint = false
        for c in b {
            if isDigit(c) {
                sawDigit = true
            } else if c == UInt8(ascii: "."), !sawPoint {
                sawPoint = true
            } else {
                return nil
            }
        }
        guard sawDigit, b.count <= 32 else { return nil }
        return Double(String(s))
    }

    /// Where to listen: `0.0.0.0:8080`, `127.0.0.1:80`, `[::1]:8080`, `localhost:8080`, `*:8080` (any IPv4)
    /// or a bare port (any IPv4). Port 0 is accepted: it asks the kernel for a free port.
    public static func listenAddress(_ s: Substring) -> ListenAddress? {
        if !s.isEmpty, s.utf8.allSatisfy(isDigit) {
            guard let port = port(s) else { return nil }
            return ListenAddress(host: "0.0.0.0", port: port)
        }
        guard let (host, portText) = splitHostPort(s), let port = port(portText) else { return nil }
        if host == "*" { return ListenAddress(host: "0.0.0.0", port: port) }
        return ListenAddress(host: host, port: port)
    }

    /// Where a backend is: `HOST:PORT` with an explicit host and a port from 1 to 65535.
    public static func serverAddress(_ s: Substring) -> ListenAddress? {
        guard let (host, portText) = splitHostPort(s), host != "*",
              let port = port(portText), port != 0 else { return nil }
        return ListenAddress(host: host, port: port)
    }

    /// A nameserver: an IP literal, with a port or not (53): `10.96.0.10`, `127.0.0.1:5353`, `fd00::a`, `[fd00::a]:53`.
    public static func nameserverAddress(_ s: Substring) -> ListenAddress? {
        if isIPv4(s) || (!s.hasPrefix("[") && isIPv6(s)) { return ListenAddress(host: String(s), port: 53) }
        guard let (host, portText) = splitHostPort(s), isIPv4(host[...]) || isIPv6(host[...]),
              let port = port(portText), port != 0 else { return nil }
        return ListenAddress(host: host, port: port)
    }

    /// Whether `s` is an IPv4 or IPv6 literal (no brackets).
    public static func isIPLiteral(_ s: Substring) -> Bool { isIPv4(s) || isIPv6(s) }

    /// A DNS name for `server NAME resolve service`: a host name, at most 253 characters.
    public static func serviceName(_ s: Substring) -> Bool { !isIPv4(s) && isHostName(s) }

    // MARK: - Pieces

    /// Splits `host:port` or `[v6]:port`, validating the host.
    private static func splitHostPort(_ s: Substring) -> (String, Substring)? {
        if s.first == "[" {
            guard let close = s.firstIndex(of: "]") else { return nil }
            let host = s[s.index(after: s.startIndex)..<close]
            let rest = s[s.index(after: close)...]
            guard rest.first == ":", isIPv6(host) else { return nil }
            return (String(host), rest.dropFirst())
        }
        guard let colon = s.lastIndex(of: ":") else { return nil }
        let host = s[..<colon]
        // An unbracketed IPv6 literal would make the port ambiguous.
        guard !host.contains(":") else { return nil }
        guard host == "*" || isIPv4(host) || isHostName(host) else { return nil }
        return (String(host), s[s.index(after: colon)...])
    }

    private static func port(_ s: Substring) -> UInt16? {
        guard !s.isEmpty, s.count <= 5, s.utf8.allSatisfy(isDigit), let n = Int(s), n <= 65535 else { return nil }
        return UInt16(n)
    }

    static func isIPv4(_ s: Substring) -> Bool {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return false }
        return parts.allSatisfy { p in
            !p.isEmpty && p.count <= 3 && p.utf8.allSatisfy(isDigit) && Int(p)! <= 255
        }
    }

    /// Letters, digits, `-` and `_` in dot-separated labels; all-numeric names must be IPv4 literals.
    static func isHostName(_ s: Substring) -> Bool {
        guard !s.isEmpty, s.utf8.count <= 253 else { return false }
        if s.utf8.allSatisfy({ isDigit($0) || $0 == UInt8(ascii: ".") }) { return false }
        var labels = s.split(separator: ".", omittingEmptySubsequences: false)
        if labels.count > 1, labels.last!.isEmpty { labels.removeLast() }
        return labels.allSatisfy { label in
            !label.isEmpty && label.utf8.count <= 63 && label.first != "-" && label.last != "-"
                && label.utf8.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }
        }
    }

    /// An IPv6 literal without brackets, optionally with a `%zone` and a dotted IPv4 tail.
    static func isIPv6(_ s: Substring) -> Bool {
        var address = s
        if let percent = s.firstIndex(of: "%") {
            let zone = s[s.index(after: percent)...]
            guard !zone.isEmpty, zone.utf8.allSatisfy({ isAlphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }) else {
                return false
            }
            address = s[..<percent]
        }
        let b = Array(address.utf8)
        var doubleColon: Int?
        var i = 0
        while i + 1 < b.count {
            if b[i] == UInt8(ascii: ":"), b[i + 1] == UInt8(ascii: ":") {
                guard doubleColon == nil else { return false }
                doubleColon = i
            }
            i += 1
        }
        if let d = doubleColon {
            guard let left = groupCount(b[..<d], allowIPv4Tail: false),
                  let right = groupCount(b[(d + 2)...], allowIPv4Tail: true) else { return false }
            return left + right <= 7
        }
        return groupCount(b[...], allowIPv4Tail: true) == 8
    }

    /// How many 16-bit groups `a:b:c` holds (an IPv4 tail counts as two); nil when malformed.
    private static func groupCount(_ b: ArraySlice<UInt8>, allowIPv4Tail: Bool) -> Int? {
        if b.isEmpty { return 0 }
        let groups = b.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
        var count = 0
        for (index, group) in groups.enumerated() {
            if allowIPv4Tail, index == groups.count - 1, group.contains(UInt8(ascii: ".")) {
                guard isIPv4(Substring(decoding: group, as: UTF8.self)) else { return nil }
                count += 2
            } else {
                guard (1...4).contains(group.count), group.allSatisfy(isHexDigit) else { return nil }
                count += 1
            }
        }
        return count
    }

    private static func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

    private static func isHexDigit(_ c: UInt8) -> Bool {
        isDigit(c) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "f")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "F"))
    }

    private static func isAlphanumeric(_ c: UInt8) -> Bool {
        isDigit(c) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
    }

    /// Decimal digits to `Int64`, nil on overflow.
    private static func number(_ digits: ArraySlice<UInt8>) -> Int64? {
        var n: Int64 = 0
        for c in digits {
            let (times10, o1) = n.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(Int64(c - UInt8(ascii: "0")))
            guard !o1, !o2 else { return nil }
            n = sum
        }
        return n
    }

    private static func checkedMultiply(_ a: Int64, _ b: Int64) -> Int64? {
        let (p, overflow) = a.multipliedReportingOverflow(by: b)
        return overflow ? nil : p
    }
}
