// A whole DNS message: header, questions and the three record sections, and its uncompressed encoding.

public struct DNSMessage: Sendable, Hashable {
    public var header: DNSHeader
    public var questions: [DNSQuestion]
    public var answers: [DNSRecord]
    public var authorities: [DNSRecord]
    public var additionals: [DNSRecord]

    public init(header: DNSHeader, questions: [DNSQuestion] = [], answers: [DNSRecord] = [], authorities: [DNSRecord] = [],
                additionals: [DNSRecord] = []) {
        self.header = header
        self.questions = questions
        self.answers = answers
        self.authorities = authorities
        self.additionals = additionals
    }

    /// The wire form, names uncompressed, section counts taken from the arrays (not from `header`). Used to build
    /// queries, test answers and the fuzz target's re-encoding check.
    public func encode() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(512)
        out.appendU16(header.id)
        out.appendU16(header.flags)
        for n in [questions.count, answers.count, authorities.count, additionals.count] {
            out.appendU16(UInt16(truncatingIfNeeded: n))
        }
        for q in questions {
            out.appendName(q.name)
            out.appendU16(q.type.rawValue)
            out.appendU16(q.qclass)
        }
        for r in answers + authorities + additionals { out.appendRecord(r) }
        return out
    }
}

extension Array where Element == UInt8 {
    mutating func appendU16(_ v: UInt16) {
        append(UInt8(v >> 8))
        append(UInt8(v & 0xFF))
    }

    mutating func appendU32(_ v: UInt32) {
        appendU16(UInt16(v >> 16))
        appendU16(UInt16(v & 0xFFFF))
    }

    mutating func appendName(_ name: DNSName) {
        for label in name.labels {
            append(UInt8(label.count))
            append(contentsOf: label)
        }
        append(0)
    }

    mutating func appendRecord(_ r: DNSRecord) {
        appendName(r.name)
        appendU16(r.type.rawValue)
        appendU16(r.rclass)
        appendU32(r.ttl)
        var data: [UInt8] = []
        switch r.data {
        case .a(let b), .aaaa(let b), .raw(let b):
            data = b
        case .cname(let n):
            data.appendName(n)
        case .srv(let s):
            data.appendU16(s.priority)
            data.appendU16(s.weight)
            data.appendU16(s.port)
            data.appendName(s.target)
        case .soa(let s):
            data.appendName(s.mname)
            data.appendName(s.rname)
            for v in [s.serial, s.refresh, s.retry, s.expire, s.minimum] { data.appendU32(v) }
        }
        appendU16(UInt16(truncatingIfNeeded: data.count))
        append(contentsOf: data)
    }
}
