// What answers mean: records at the end of the CNAME chain, NXDOMAIN as an empty set, failures, TTLs.
import XCTest
@testable import HuddleDNS

final class DNSResponseTests: XCTestCase {
    private func interpret(_ bytes: [UInt8], _ n: String, _ t: DNSRecordType, id: UInt16 = 0x1234) -> Result<DNSAnswer, DNSFailure> {
        do {
            return DNSResponse.interpret(try DNSMessage.parse(bytes), id: id, question: question(n, t))
        } catch {
            return .failure(.malformed(error))
        }
    }

    private func a(_ owner: String, _ last: UInt8, ttl: UInt32 = 30) -> [UInt8] {
        Wire.record(Wire.name(owner), type: 1, ttl: ttl, data: [10, 0, 0, last])
    }

    private func cname(_ owner: String, _ target: String, ttl: UInt32 = 30) -> [UInt8] {
        Wire.record(Wire.name(owner), type: 5, ttl: ttl, data: Wire.name(target))
    }

    private func soa(ttl: UInt32, minimum: UInt32) -> [UInt8] {
        Wire.record(Wire.name("example"), type: 6, ttl: ttl,
                    data: Wire.name("ns") + Wire.name("hm") + Wire.u32(1) + Wire.u32(1) + Wire.u32(1) + Wire.u32(1) + Wire.u32(minimum))
    }

    func testOutcomes() {
        struct Case {
            var what: String
            var bytes: [UInt8]
            var type: DNSRecordType = .a
            var id: UInt16 = 0x1234
            /// Last octets of the A records found, or nil when the outcome is a failure.
            var addresses: [UInt8]?
            var ttl: UInt32? = nil
            var exists = true
            var failure: DNSFailure? = nil
        }
        let q = "web.example"
        let cases: [Case] = [
            Case(what: "two A records, smallest TTL", bytes: Wire.answer(q, type: 1, answers: [a(q, 1, ttl: 9), a(q, 2, ttl: 4)]),
                 addresses: [1, 2], ttl: 4),
            Case(what: "records of other owners are ignored", bytes: Wire.answer(q, type: 1, answers: [a(q, 1), a("evil.example", 66)]),
                 addresses: [1], ttl: 30),
            Case(what: "CNAME chain followed, TTL over the chain",
                 bytes: Wire.answer(q, type: 1, answers: [cname(q, "b.example", ttl: 3), cname("b.example", "c.example", ttl: 50),
                                                          a("c.example", 7, ttl: 20)]),
                 addresses: [7], ttl: 3),
            Case(what: "CNAME chain in any order, names without case",
                 bytes: Wire.answer(q, type: 1, answers: [a("C.example", 7), cname("B.EXAMPLE", "c.example"), cname(q, "b.example")]),
                 addresses: [7], ttl: 30),
            Case(what: "CNAME loop", bytes: Wire.answer(q, type: 1, answers: [cname(q, "b.example"), cname("b.example", q)]),
                 failure: .badChain("web.example repeats")),
            Case(what: "CNAME chain too long",
                 bytes: Wire.answer(q, type: 1, answers: [cname(q, "n0.example")] + (0..<20).map { cname("n\($0).example", "n\($0 + 1).example") }),
                 failure: .badChain("longer than 16 steps")),
            Case(what: "CNAME leading out of the answer: no data", bytes: Wire.answer(q, type: 1, answers: [cname(q, "elsewhere.example")]),
                 addresses: [], ttl: 30),
            Case(what: "NXDOMAIN is an empty set with the SOA's TTL capped by MINIMUM",
                 bytes: Wire.answer(q, type: 1, rcode: 3, authority: [soa(ttl: 60, minimum: 5)]), addresses: [], ttl: 5, exists: false),
            Case(what: "NODATA", bytes: Wire.answer(q, type: 1, authority: [soa(ttl: 2, minimum: 300)]), addresses: [], ttl: 2),
            Case(what: "NXDOMAIN without SOA", bytes: Wire.answer(q, type: 1, rcode: 3), addresses: [], exists: false),
            Case(what: "SERVFAIL", bytes: Wire.answer(q, type: 1, rcode: 2), failure: .rcode(.serverFailure)),
            Case(what: "REFUSED", bytes: Wire.answer(q, type: 1, rcode: 5), failure: .rcode(.refused)),
            Case(what: "FORMERR", bytes: Wire.answer(q, type: 1, rcode: 1), failure: .rcode(.formatError)),
            Case(what: "another ID", bytes: Wire.answer(q, type: 1, answers: [a(q, 1)]), id: 99, failure: .mismatched("ID 4660, sent 99")),
            Case(what: "another question", bytes: Wire.answer("other.example", type: 1, answers: [a("other.example", 1)]),
                 failure: .mismatched("question section differs")),
            Case(what: "another type asked", bytes: Wire.answer(q, type: 28), failure: .mismatched("question section differs")),
            Case(what: "no question", bytes: Wire.header(qd: 0), failure: .mismatched("question section differs")),
            Case(what: "a query, not a response", bytes: [0x12, 0x34, 0x01, 0x00] + Array(Wire.header().dropFirst(4)) + Wire.question(q, type: 1),
                 failure: .mismatched("QR bit not set")),
            Case(what: "truncated", bytes: Wire.header(tc: true) + Wire.question(q, type: 1), failure: .truncated),
            Case(what: "TTL with the top bit set counts as 0", bytes: Wire.answer(q, type: 1, answers: [a(q, 1, ttl: 0x8000_0001)]),
                 addresses: [1], ttl: 0),
        ]
        for c in cases {
            let result = interpret(c.bytes, q, c.type, id: c.id)
            switch (result, c.failure) {
            case (.success(let answer), nil):
                let last = answer.records.compactMap { r -> UInt8? in if case .a(let b) = r.data { return b[3] } else { return nil } }
                XCTAssertEqual(last, c.addresses, c.what)
                XCTAssertEqual(answer.ttl, c.ttl, c.what)
                XCTAssertEqual(answer.nameExists, c.exists, c.what)
            case (.failure(let f), let expected?):
                XCTAssertEqual(f, expected, c.what)
            default:
                XCTFail("\(c.what): got \(result)")
            }
        }
    }

    func testSRVAnswerKeepsTheAdditionalSection() throws {
        let target = "web-0.web.example"
        let bytes = Wire.answer("_http._tcp.web.example", type: 33,
                                answers: [Wire.record(Wire.pointer(12), type: 33, data: Wire.u16(0) + Wire.u16(5) + Wire.u16(8080) + Wire.name(target))],
                                additional: [a(target, 9)])
        let answer = try interpret(bytes, "_http._tcp.web.example", .srv).get()
        XCTAssertEqual(answer.records.first?.data, .srv(DNSService(priority: 0, weight: 5, port: 8080, target: dn(target))))
        XCTAssertEqual(answer.additionals.first?.data, .a([10, 0, 0, 9]))
    }

    func testMalformedAnswerIsAFailure() {
        XCTAssertEqual(interpret(Wire.header(an: 1) + Wire.question("a", type: 1), "a", .a), .failure(.malformed(.truncated(at: 19))))
    }
}

final class ResolvConfTests: XCTestCase {
    func testParsesWhatDiscoveryNeeds() {
        let c = ResolvConf.parse("""
            # Kubernetes pod
            nameserver 10.96.0.10
            nameserver fd00::10   ; comment
            nameserver 10.0.0.3
            nameserver 10.0.0.4
            domain ignored.local
            search default.svc.cluster.local svc.cluster.local cluster.local
            options ndots:5 timeout:2 attempts:2
            options edns0
            """)
        XCTAssertEqual(c.nameservers, ["10.96.0.10", "fd00::10", "10.0.0.3"])
        XCTAssertEqual(c.search, [dn("default.svc.cluster.local"), dn("svc.cluster.local"), dn("cluster.local")])
        XCTAssertEqual(c.ndots, 5)
        XCTAssertEqual(ResolvConf.parse("options ndots:40").ndots, 15)
        XCTAssertEqual(ResolvConf.parse("search a\ndomain b").search, [dn("b")])
        XCTAssertEqual(ResolvConf.parse("").ndots, 1)
    }

    func testCandidatesFollowNdotsAndTheSearchList() {
        var c = ResolvConf()
        c.search = [dn("ns.svc.cluster.local"), dn("svc.cluster.local")]
        c.ndots = 5
        // Kubernetes' short names: the search list first.
        XCTAssertEqual(c.candidates(for: "web")?.map(\.description),
                       ["web.ns.svc.cluster.local", "web.svc.cluster.local", "web"])
        XCTAssertEqual(c.candidates(for: "web.other")?.first?.description, "web.other.ns.svc.cluster.local")
        // A final dot: only the name itself.
        XCTAssertEqual(c.candidates(for: "web.ns.svc.cluster.local.")?.map(\.description), ["web.ns.svc.cluster.local"])
        c.ndots = 1
        XCTAssertEqual(c.candidates(for: "web.ns")?.map(\.description), ["web.ns", "web.ns.ns.svc.cluster.local", "web.ns.svc.cluster.local"])
        XCTAssertNil(c.candidates(for: "a..b"))
    }
}
