// The strict parser: reads a whole message or refuses it. No I/O; works on a borrowed buffer.
//
// Names: compression pointers (RFC 1035 §4.1.4) must point strictly before the previous jump's target, so a name
// can never loop, and a name is refused past 255 bytes or 127 jumps. Every count in the header must be matched by
// records that are really there, each record's data must fill its RDLENGTH exactly, and nothing may follow the
// last record.

extension DNSMessage {
    public static func parse(_ bytes: [UInt8]) throws(DNSParseError) -> DNSMessage {
        let result = bytes.withUnsafeBytes { b in Result { () throws(DNSParseError) -> DNSMessage in try parse(b) } }
        return try result.get()
    }

    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(DNSParseError) -> DNSMessage {
        var r = DNSReader(bytes: bytes)
        guard let header = DNSHeader(bytes) else { throw .truncated(at: bytes.count) }
        r.position = DNSHeader.length
        var message = DNSMessage(header: header)
        for _ in 0..<header.questionCount {
            let name = try r.name()
            let type = try r.u16()
            let qclass = try r.u16()
            message.questions.append(DNSQuestion(name: name, type: DNSRecordType(rawValue: type), qclass: qclass))
        }
        for _ in 0..<header.answerCount { message.answers.append(try r.record()) }
        for _ in 0..<header.authorityCount { message.authorities.append(try r.record()) }
        for _ in 0..<header.additionalCount { message.additionals.append(try r.record()) }
        guard r.position == bytes.count else { throw .trailingBytes(at: r.position) }
        return message
    }
}

/// A cursor over one message.
struct DNSReader {
    let bytes: UnsafeRawBufferPointer
    var position = 0

    /// A name can have at most 127 labels (each at least 2 bytes in 255), so more jumps than that mean abuse.
    static let maxPointers = 127

    mutating func u8() throws(DNSParseError) -> UInt8 {
        guard position < bytes.count else { throw .truncated(at: position) }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func u16() throws(DNSParseError) -> UInt16 {
        guard position + 2 <= bytes.count else { throw .truncated(at: position) }
        defer { position += 2 }
        return UInt16(bytes[position]) << 8 | UInt16(bytes[position + 1])
    }

    mutating func u32() throws(DNSParseError) -> UInt32 {
        let hi = try u16()
        return UInt32(hi) << 16 | UInt32(try u16())
    }

    mutating func take(_ n: Int) throws(DNSParseError) -> [UInt8] {
        guard n <= bytes.count - position else { throw .truncated(at: position) }
        defer { position += n }
        return Array(bytes[position..<(position + n)])
    }

    /// Reads a possibly compressed name; `position` ends after its last in-place byte (the root byte or the first
    /// pointer).
    mutating func name() throws(DNSParseError) -> DNSName {
        let start = position
        var labels: [[UInt8]] = []
        var wire = 1
        var at = position
        var resumeAt: Int? = nil
        // Each jump must land strictly before the previous one's target (or the name's own start).
        var limit = start
        var jumps = 0
        while true {
            guard at < bytes.count else { throw .truncated(at: at) }
            let length = bytes[at]
            switch length & 0xC0 {
            case 0x00:
                if length == 0 {
                    position = resumeAt ?? at + 1
                    return DNSName(checkedLabels: labels)
                }
                // Top bits 00 leave at most 63: a longer label cannot even be written.
                let n = Int(length)
                guard at + 1 + n <= bytes.count else { throw .truncated(at: at) }
                wire += 1 + n
                guard wire <= DNSName.maxWireLength else { throw .nameTooLong(at: start) }
                labels.append(Array(bytes[(at + 1)..<(at + 1 + n)]))
                at += 1 + n
            case 0xC0:
                guard at + 1 < bytes.count else { throw .truncated(at: at) }
                let target = Int(length & 0x3F) << 8 | Int(bytes[at + 1])
                guard target < limit else { throw .badPointer(at: at) }
                jumps += 1
                guard jumps <= Self.maxPointers else { throw .tooManyPointers(at: start) }
                if resumeAt == nil { resumeAt = at + 2 }
                limit = target
                at = target
            default:
                throw .reservedLabelType(at: at)
            }
        }
    }

    mutating func record() throws(DNSParseError) -> DNSRecord {
        let name = try name()
        let type = DNSRecordType(rawValue: try u16())
        let rclass = try u16()
        let ttl = try u32()
        let length = Int(try u16())
        let dataStart = position
        guard length <= bytes.count - dataStart else { throw .truncated(at: dataStart) }
        let end = dataStart + length
        let bad = DNSParseError.badRecordData(type: type.rawValue, at: dataStart)
        let data: DNSRecordData
        switch type {
        case .a:
            guard length == 4 else { throw bad }
            data = .a(try take(4))
        case .aaaa:
            guard length == 16 else { throw bad }
            data = .aaaa(try take(16))
        case .cname:
            data = .cname(try nameWithin(end, bad))
        case .srv:
            guard length >= 7 else { throw bad }
            let priority = try u16(), weight = try u16(), port = try u16()
            data = .srv(DNSService(priority: priority, weight: weight, port: port, target: try nameWithin(end, bad)))
        case .soa:
            let mname = try nameWithin(end, bad)
            let rname = try nameWithin(end, bad)
            guard end - position == 20 else { throw bad }
            data = .soa(DNSStartOfAuthority(mname: mname, rname: rname, serial: try u32(), refresh: try u32(), retry: try u32(),
                                            expire: try u32(), minimum: try u32()))
        default:
            data = .raw(try take(length))
        }
        guard position == end else { throw bad }
        return DNSRecord(name: name, type: type, rclass: rclass, ttl: ttl, data: data)
    }

    /// A name inside RDATA: its in-place bytes must not run past the record's end.
    private mutating func nameWithin(_ end: Int, _ error: DNSParseError) throws(DNSParseError) -> DNSName {
        let n = try name()
        guard position <= end else { throw error }
        return n
    }
}
