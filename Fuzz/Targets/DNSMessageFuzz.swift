// libFuzzer target: DNSMessage.parse and DNSResponse.interpret (HuddleDNS) on answers from a hostile nameserver.
//
// The input is one message (UDP payload or TCP message without its length). Properties:
// - parsing never crashes or reads outside the input (ASan-fenced exact-size copy);
// - every name it returns is within the limits: labels of 1...63 bytes, at most 255 bytes encoded;
// - an accepted message, re-encoded without compression, parses again to the same header ID and flags, the same
//   questions and records byte for byte (names with their letter case, TTLs, RDATA);
// - no strict prefix of an accepted message is accepted (the counts can only be met by the whole message);
// - interpreting an accepted message as the answer to its own first question never crashes, and what it returns
//   is consistent: records of the asked type owned by the canonical name, a TTL no larger than theirs.

import HuddleDNS

func checkName(_ n: DNSName, _ what: String) {
    require(n.labels.allSatisfy { !$0.isEmpty && $0.count <= DNSName.maxLabelLength }, "\(what): label out of limits: \(n)")
    require(n.wireLength <= DNSName.maxWireLength, "\(what): name of \(n.wireLength) bytes")
}

func names(of r: DNSRecord) -> [DNSName] {
    switch r.data {
    case .cname(let n): return [r.name, n]
    case .srv(let s): return [r.name, s.target]
    case .soa(let s): return [r.name, s.mname, s.rname]
    default: return [r.name]
    }
}

func sameRecords(_ a: [DNSRecord], _ b: [DNSRecord]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0.isIdentical(to: $1) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func dnsMessageFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = fuzzInput(data, size)
    let buf = ExactBytes(input)
    guard let m = try? DNSMessage.parse(buf.prefix(size)) else { return 0 }

    let records = m.answers + m.authorities + m.additionals
    for q in m.questions { checkName(q.name, "question") }
    for r in records { for n in names(of: r) { checkName(n, "\(r.type) record") } }
    require(m.questions.count == Int(m.header.questionCount) && m.answers.count == Int(m.header.answerCount)
            && m.authorities.count == Int(m.header.authorityCount) && m.additionals.count == Int(m.header.additionalCount),
            "section sizes differ from the header's counts")

    let wire = m.encode()
    let again: DNSMessage
    do {
        again = try DNSMessage.parse(wire)
    } catch {
        propertyFailure("re-encoded message refused: \(error); original \(show(buf.all))")
    }
    require(again.header == m.header, "header changed: \(again.header) vs \(m.header)")
    require(again.questions.count == m.questions.count
            && zip(again.questions, m.questions).allSatisfy { $0.name.isIdentical(to: $1.name) && $0.type == $1.type && $0.qclass == $1.qclass },
            "questions changed")
    require(sameRecords(again.answers, m.answers) && sameRecords(again.authorities, m.authorities)
            && sameRecords(again.additionals, m.additionals), "records changed after re-encoding")

    var rng = SplitMix(seed: fnv1a(input))
    let cut = rng.below(size)
    require((try? DNSMessage.parse(buf.prefix(cut))) == nil, "a \(cut)-byte prefix of an accepted \(size)-byte message was accepted")

    if let q = m.questions.first, case .success(let answer) = DNSResponse.interpret(m, id: m.header.id, question: q) {
        checkName(answer.canonicalName, "canonical name")
        for r in answer.records {
            require(r.type == q.type && r.name == answer.canonicalName, "answer record \(r.type) of \(r.name) for \(q.type) \(answer.canonicalName)")
            require(answer.ttl.map { $0 <= DNSResponse.effectiveTTL(r.ttl) } ?? false, "answer TTL above a record's")
        }
    }
    return 0
}
