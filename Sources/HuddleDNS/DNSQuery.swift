// Building a query: one question, recursion desired, and optionally an EDNS0 OPT record (RFC 6891) announcing how
// large a UDP answer Huddle accepts, so answers of a few dozen addresses need no TCP retry.

public enum DNSQuery {
    /// The UDP payload size announced with EDNS0: 1232 bytes avoids IP fragmentation on any path (DNS Flag Day 2020).
    public static let ednsPayloadSize: UInt16 = 1232

    /// The query's wire form. `edns` adds the OPT record; leave it off for servers that refuse EDNS0 (FORMERR).
    public static func encode(id: UInt16, name: DNSName, type: DNSRecordType, edns: Bool = true) -> [UInt8] {
        var m = DNSMessage(header: DNSHeader(id: id, flags: DNSHeader.recursionDesiredFlag),
                           questions: [DNSQuestion(name: name, type: type)])
        if edns {
            // OPT: root owner, CLASS is the payload size, TTL holds extended RCODE, version 0 and flags (none).
            m.additionals.append(DNSRecord(name: .root, type: .opt, rclass: ednsPayloadSize, ttl: 0, data: .raw([])))
        }
        return m.encode()
    }
}
