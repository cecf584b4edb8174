// /etc/resolv.conf as glibc reads it, reduced to what discovery needs: nameservers, the search list and ndots.
// Pure: the caller reads the file.

public struct ResolvConf: Sendable, Equatable {
    /// IP literals, in file order (glibc uses at most three).
    public var nameservers: [String] = []
    /// Search domains, in order; `domain` sets a one-entry list, the last of `domain`/`search` wins (as glibc).
    public var search: [DNSName] = []
    /// Names with fewer dots than this are tried with the search domains first (glibc default 1; Kubernetes sets 5).
    public var ndots = 1

    public init() {}

    public static let maxNameservers = 3

    public static func parse(_ text: String) -> ResolvConf {
        var c = ResolvConf()
        for rawLine in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            var line = Substring(rawLine)
            if let hash = line.firstIndex(where: { $0 == "#" || $0 == ";" }) { line = line[..<hash] }
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let keyword = words.first else { continue }
            let args = words.dropFirst().map(String.init)
            switch keyword {
            case "nameserver":
                if let a = args.first, c.nameservers.count < maxNameservers { c.nameservers.append(a) }
            case "search":
                c.search = args.compactMap { DNSName($0) }.filter { !$0.labels.isEmpty }
            case "domain":
                c.search = args.prefix(1).compactMap { DNSName($0) }.filter { !$0.labels.isEmpty }
            case "options":
                for o in args where o.hasPrefix("ndots:") {
                    // glibc caps ndots at 15.
                    if let n = Int(o.dropFirst(6)), n >= 0 { c.ndots = min(n, 15) }
                }
            default:
                continue
            }
        }
        return c
    }

    /// The names to try for `name`, in order (glibc's res_search): a name with a final dot is only itself; one with at
    /// least `ndots` dots is tried as is first, then with each search domain; one with fewer is tried with the search
    /// domains first, then as is. Nil when `name` is not a valid name.
    public func candidates(for name: String) -> [DNSName]? {
        guard let base = DNSName(name) else { return nil }
        if name.hasSuffix(".") || base.labels.isEmpty { return [base] }
        let dots = name.utf8.filter { $0 == UInt8(ascii: ".") }.count
        let searched = search.compactMap { base.appending($0) }
        return dots >= ndots ? [base] + searched : searched + [base]
    }
}
