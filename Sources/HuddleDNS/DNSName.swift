// A domain name as DNS carries it: labels of raw bytes, compared without regard to ASCII case (RFC 1035 §2.3.3,
// RFC 4343), always within the wire limits (labels of 1...63 bytes, at most 255 bytes encoded).

public struct DNSName: Sendable, Hashable, CustomStringConvertible {
    public static let maxLabelLength = 63
    /// Encoded length, counting each label's length byte and the final root byte.
    public static let maxWireLength = 255

    /// The labels without the empty root label; empty for the root name itself.
    public let labels: [[UInt8]]

    /// The root name (".").
    public static let root = DNSName(checkedLabels: [])

    /// Labels already known to be within the limits (the parser checks them as it reads).
    init(checkedLabels: [[UInt8]]) {
        labels = checkedLabels
    }

    /// Labels from anywhere: nil when a label is empty or longer than 63 bytes, or the whole name longer than 255.
    public init?(labels: [[UInt8]]) {
        guard labels.allSatisfy({ !$0.isEmpty && $0.count <= Self.maxLabelLength }),
              Self.wireLength(of: labels) <= Self.maxWireLength else { return nil }
        self.labels = labels
    }

    /// A name in dotted text such as `web.default.svc.cluster.local` or with a final dot (absolute, same labels).
    /// Nil for empty labels (`a..b`), over-long labels or names, and bytes outside printable ASCII (no escapes: the
    /// names Huddle looks up are host and service names from its config and resolv.conf).
    public init?(_ text: String) {
        if text == "." { self = .root; return }
        var parts = Array(text.utf8).split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false).map(Array.init)
        if parts.count > 1, parts.last!.isEmpty { parts.removeLast() }
        guard parts.allSatisfy({ $0.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\\") } }) else { return nil }
        self.init(labels: parts)
    }

    static func wireLength(of labels: [[UInt8]]) -> Int {
        labels.reduce(1) { $0 + 1 + $1.count }
    }

    /// Bytes this name takes uncompressed on the wire.
    public var wireLength: Int { Self.wireLength(of: labels) }

    /// This name followed by `suffix` (a search domain), or nil when the result would be too long.
    public func appending(_ suffix: DNSName) -> DNSName? {
        DNSName(labels: labels + suffix.labels)
    }

    /// Whether every label is a host-name label: letters, digits, `-` and `_` (SRV's `_service._proto` labels).
    /// Only such names become server identities (they end up in URLs, JSON and metric labels).
    public var isHostName: Bool {
        !labels.isEmpty && labels.allSatisfy { label in
            label.allSatisfy { c in
                (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || (c >= 0x30 && c <= 0x39) || c == 0x2D || c == 0x5F
            }
        }
    }

    /// Dotted text without the final dot ("." for the root); bytes other than printable ASCII, and `.` or `\`
    /// inside a label, are written `\DDD` as in zone files, so the text never mixes up two names.
    public var description: String {
        if labels.isEmpty { return "." }
        var out = ""
        for (i, label) in labels.enumerated() {
            if i > 0 { out += "." }
            for c in label {
                if c > 0x20 && c < 0x7F && c != 0x2E && c != 0x5C {
                    out.unicodeScalars.append(Unicode.Scalar(c))
                } else {
                    let d = String(c)
                    out += "\\" + String(repeating: "0", count: 3 - d.count) + d
                }
            }
        }
        return out
    }

    /// The same name with ASCII letters in lower case: the form identities are made from.
    public var lowercased: DNSName {
        DNSName(checkedLabels: labels.map { $0.map(Self.lower) })
    }

    @inline(__always) static func lower(_ c: UInt8) -> UInt8 { c >= 0x41 && c <= 0x5A ? c | 0x20 : c }

    public static func == (a: DNSName, b: DNSName) -> Bool {
        guard a.labels.count == b.labels.count else { return false }
        for (x, y) in zip(a.labels, b.labels) {
            guard x.count == y.count else { return false }
            for (p, q) in zip(x, y) where lower(p) != lower(q) { return false }
        }
        return true
    }

    public func hash(into h: inout Hasher) {
        h.combine(labels.count)
        for label in labels {
            h.combine(label.count)
            for c in label { h.combine(Self.lower(c)) }
        }
    }

    /// Whether the labels are byte for byte the same (case included): what a re-encoding must preserve.
    public func isIdentical(to other: DNSName) -> Bool { labels == other.labels }
}
