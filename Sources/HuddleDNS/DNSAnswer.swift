// What an answer means for one question: the records of the asked type at the end of the CNAME chain, the name
// does not exist, or the lookup failed. Pure: the resolver feeds it a parsed message.

/// The useful content of an answer.
public struct DNSAnswer: Sendable, Equatable {
    /// Records of the asked type owned by `canonicalName`, in answer order. Empty for NXDOMAIN and NODATA.
    public var records: [DNSRecord]
    /// The question's name after the CNAME chain.
    public var canonicalName: DNSName
    /// How long the answer may be used, seconds: the smallest TTL along the chain and over the records; for an empty
    /// answer the negative TTL (the SOA's own TTL capped by its MINIMUM, RFC 2308 §5), nil when no SOA came with it.
    public var ttl: UInt32?
    /// False for NXDOMAIN.
    public var nameExists: Bool
    /// The additional section (an SRV answer may carry its targets' addresses there).
    public var additionals: [DNSRecord]

    public init(records: [DNSRecord], canonicalName: DNSName, ttl: UInt32?, nameExists: Bool, additionals: [DNSRecord] = []) {
        self.records = records
        self.canonicalName = canonicalName
        self.ttl = ttl
        self.nameExists = nameExists
        self.additionals = additionals
    }
}

/// Why a lookup gave no usable answer (as opposed to an empty one).
public enum DNSFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// SERVFAIL, REFUSED, NOTIMP, FORMERR or an unassigned RCODE.
    case rcode(DNSResponseCode)
    case malformed(DNSParseError)
    /// Not a response, another ID, another opcode, or a question that is not the one asked.
    case mismatched(String)
    /// TC set: only meaningful over TCP, where it cannot happen.
    case truncated
    /// A CNAME chain that loops or is longer than `DNSResponse.maxChain`.
    case badChain(String)
    case timeout
    /// A socket error talking to the nameserver (refused, unreachable...).
    case network(String)
    /// No nameserver to ask.
    case noNameserver

    public var description: String {
        switch self {
        case .rcode(let r): return "server answered \(r)"
        case .malformed(let e): return "malformed answer: \(e)"
        case .mismatched(let why): return "answer does not match the query: \(why)"
        case .truncated: return "answer truncated"
        case .badChain(let why): return "bad CNAME chain: \(why)"
        case .timeout: return "timed out"
        case .network(let why): return why
        case .noNameserver: return "no nameserver configured"
        }
    }
}

public enum DNSResponse {
    /// CNAME steps followed within one answer, as BIND's default chain limit is about that size.
    public static let maxChain = 16

    /// Interprets `message` as the answer to `question` sent with `id`.
    public static func interpret(_ message: DNSMessage, id: UInt16, question: DNSQuestion) -> Result<DNSAnswer, DNSFailure> {
        let h = message.header
        guard h.isResponse else { return .failure(.mismatched("QR bit not set")) }
        guard h.id == id else { return .failure(.mismatched("ID \(h.id), sent \(id)")) }
        guard h.opcode == 0 else { return .failure(.mismatched("opcode \(h.opcode)")) }
        guard !h.isTruncated else { return .failure(.truncated) }
        let rcode = h.rcode
        guard rcode == .noError || rcode == .nameError else { return .failure(.rcode(rcode)) }
        // RFC 1035 §7.3: the question must be the one asked (names compare without case: 0x20 mixing is allowed).
        guard message.questions.count == 1, let q = message.questions.first, q.name == question.name, q.type == question.type,
              q.qclass == question.qclass else {
            return .failure(.mismatched("question section differs"))
        }

        var current = question.name
        var ttl = UInt32.max
        var seen: Set<DNSName> = [current]
        var steps = 0
        var records: [DNSRecord] = []
        while true {
            let owned = message.answers.filter { $0.name == current && $0.rclass == question.qclass }
            records = owned.filter { $0.type == question.type }
            if !records.isEmpty || question.type == .cname { break }
            guard let alias = owned.first(where: { $0.type == .cname }), case .cname(let target) = alias.data else { break }
            steps += 1
            guard steps <= maxChain else { return .failure(.badChain("longer than \(maxChain) steps")) }
            guard seen.insert(target).inserted else { return .failure(.badChain("\(target) repeats")) }
            ttl = min(ttl, effectiveTTL(alias.ttl))
            current = target
        }
        let exists = rcode == .noError
        if records.isEmpty {
            // Negative caching time (RFC 2308 §5): the SOA in the authority section, its TTL capped by MINIMUM.
            var negative: UInt32? = nil
            for r in message.authorities where r.type == .soa {
                if case .soa(let soa) = r.data { negative = min(effectiveTTL(r.ttl), soa.minimum) }
            }
            if let n = negative { ttl = min(ttl, n) }
            return .success(DNSAnswer(records: [], canonicalName: current, ttl: ttl == .max ? nil : ttl, nameExists: exists,
                                      additionals: message.additionals))
        }
        for r in records { ttl = min(ttl, effectiveTTL(r.ttl)) }
        return .success(DNSAnswer(records: records, canonicalName: current, ttl: ttl, nameExists: exists, additionals: message.additionals))
    }

    /// RFC 2181 §8: a TTL with the most significant bit set is treated as zero.
    @inline(__always) public static func effectiveTTL(_ t: UInt32) -> UInt32 { t & 0x8000_0000 != 0 ? 0 : t }
}
