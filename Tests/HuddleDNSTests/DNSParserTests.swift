// The strict parser: well-formed answers, compression, and hostile messages refused with the right error.
import XCTest
@testable import HuddleDNS

final class DNSParserTests: XCTestCase {
    func testParsesAnAnswerWithCompressedOwners() throws {
        let bytes = Wire.answer("web.example.com", type: 1, answers: [
            Wire.record(Wire.pointer(Wire.questionName), type: 1, ttl: 5, data: [10, 0, 0, 1]),
            Wire.record(Wire.pointer(Wire.questionName), type: 1, ttl: 7, data: [10, 0, 0, 2]),
        ])
        let m = try DNSMessage.parse(bytes)
        XCTAssertEqual(m.header.id, 0x1234)
        XCTAssertTrue(m.header.isResponse)
        XCTAssertEqual(m.questions, [question("web.example.com", .a)])
        XCTAssertEqual(m.answers.map(\.name), [dn("web.example.com"), dn("web.example.com")])
        XCTAssertEqual(m.answers.map(\.data), [.a([10, 0, 0, 1]), .a([10, 0, 0, 2])])
        XCTAssertEqual(m.answers.map(\.ttl), [5, 7])
    }

    func testParsesSRVAndSOAAndKeepsOtherTypesRaw() throws {
        let target = Wire.name("web-0.web.ns.svc.cluster.local")
        let srv = Wire.u16(10) + Wire.u16(60) + Wire.u16(8080) + target
        let soa = Wire.name("ns.dns") + Wire.name("hostmaster.dns") + Wire.u32(1) + Wire.u32(2) + Wire.u32(3) + Wire.u32(4) + Wire.u32(5)
        let bytes = Wire.answer("_http._tcp.web", type: 33, answers: [Wire.record(Wire.pointer(12), type: 33, data: srv)],
                                authority: [Wire.record(Wire.name("dns"), type: 6, data: soa)],
                                additional: [Wire.record(Wire.name("x"), type: 16, data: [3, 97, 98, 99])])
        let m = try DNSMessage.parse(bytes)
        XCTAssertEqual(m.answers.first?.data, .srv(DNSService(priority: 10, weight: 60, port: 8080, target: dn("web-0.web.ns.svc.cluster.local"))))
        guard case .soa(let s) = m.authorities.first?.data else { return XCTFail("no SOA") }
        XCTAssertEqual([s.serial, s.refresh, s.retry, s.expire, s.minimum], [1, 2, 3, 4, 5])
        XCTAssertEqual(m.additionals.first?.data, .raw([3, 97, 98, 99]))
    }

    func testNamesCompareWithoutCaseButKeepTheirBytes() throws {
        XCTAssertEqual(dn("WeB.Example.COM"), dn("web.example.com"))
        XCTAssertEqual(Set([dn("A.b"), dn("a.B")]).count, 1)
        XCTAssertFalse(dn("WeB.x").isIdentical(to: dn("web.x")))
        XCTAssertEqual(dn("WeB.x").lowercased.description, "web.x")
        XCTAssertEqual(DNSName(labels: [[0x61, 0x2E, 0x62], [0x00]])?.description, "a\\046b.\\000")
    }

    /// Hostile and broken messages: each is refused with the error that names its problem.
    func testRefusesHostileMessages() {
        let q = Wire.question("a.example", type: 1)
        let label64 = [UInt8(64)] + [UInt8](repeating: 0x61, count: 64) + [0]
        // 5 labels of 63 bytes: 321 bytes on the wire.
        let longName: [UInt8] = (0..<5).flatMap { _ -> [UInt8] in [63] + [UInt8](repeating: 0x62, count: 63) } + [0]
        let cases: [(String, [UInt8], DNSParseError)] = [
            ("short header", [0x12, 0x34, 0x81], .truncated(at: 3)),
            ("question count with no question", Wire.header(qd: 2) + q, .truncated(at: 12 + q.count)),
            ("answer count with no answers", Wire.header(an: 3) + q, .truncated(at: 12 + q.count)),
            ("label of 64 bytes (its length byte is label type 01)", Wire.header() + label64 + Wire.u16(1) + Wire.u16(1), .reservedLabelType(at: 12)),
            ("name over 255 bytes", Wire.header() + longName + Wire.u16(1) + Wire.u16(1), .nameTooLong(at: 12)),
            ("pointer to itself", Wire.header() + Wire.pointer(12) + Wire.u16(1) + Wire.u16(1), .badPointer(at: 12)),
            ("pointer forward", Wire.header() + Wire.pointer(20) + Wire.u16(1) + Wire.u16(1) + [0, 0, 0, 0], .badPointer(at: 12)),
            // Name at 12: label "a" then a pointer back to 12: a loop through earlier bytes.
            ("pointer loop", Wire.header() + [1, 0x61] + Wire.pointer(12) + Wire.u16(1) + Wire.u16(1), .badPointer(at: 14)),
            ("label type 01", Wire.header() + [0x41, 0] + Wire.u16(1) + Wire.u16(1), .reservedLabelType(at: 12)),
            ("label type 10", Wire.header() + [0x81, 0] + Wire.u16(1) + Wire.u16(1), .reservedLabelType(at: 12)),
            ("pointer cut in half", Wire.header() + [0xC0], .truncated(at: 12)),
            ("label past the end", Wire.header() + [5, 0x61], .truncated(at: 12)),
            ("A with 5 bytes", Wire.answer("a.example", type: 1, answers: [Wire.record(Wire.pointer(12), type: 1, data: [1, 2, 3, 4, 5])]),
             .badRecordData(type: 1, at: 12 + q.count + 12)),
            ("AAAA with 4 bytes", Wire.answer("a.example", type: 28, answers: [Wire.record(Wire.pointer(12), type: 28, data: [1, 2, 3, 4])]),
             .badRecordData(type: 28, at: 12 + q.count + 12)),
            ("CNAME longer than its RDLENGTH", Wire.answer("a.example", type: 1, answers: [
                Wire.pointer(12) + Wire.u16(5) + Wire.u16(1) + Wire.u32(1) + Wire.u16(2) + Wire.name("b.example")]),
             .badRecordData(type: 5, at: 12 + q.count + 12)),
            ("CNAME shorter than its RDLENGTH", Wire.answer("a.example", type: 1, answers: [
                Wire.record(Wire.pointer(12), type: 5, data: Wire.name("b") + [0])]),
             .badRecordData(type: 5, at: 12 + q.count + 12)),
            ("SRV without a target", Wire.answer("a.example", type: 33, answers: [Wire.record(Wire.pointer(12), type: 33, data: [0, 1, 0, 1])]),
             .badRecordData(type: 33, at: 12 + q.count + 12)),
            ("trailing garbage", Wire.answer("a.example", type: 1) + [0], .trailingBytes(at: 12 + q.count)),
        ]
        for (what, bytes, expected) in cases {
            XCTAssertThrowsError(try DNSMessage.parse(bytes), what) { error in
                XCTAssertEqual(error as? DNSParseError, expected, what)
            }
        }
    }

    func testRecordCountBeyondTheBytesIsTruncated() {
        // The header claims one answer; its RDLENGTH says 40 bytes but 2 follow.
        let bytes = Wire.header(an: 1) + Wire.question("a.example", type: 1) + Wire.pointer(12) + Wire.u16(1) + Wire.u16(1)
            + Wire.u32(1) + Wire.u16(40) + [1, 2]
        XCTAssertThrowsError(try DNSMessage.parse(bytes)) { XCTAssertEqual($0 as? DNSParseError, .truncated(at: 12 + 11 + 4 + 12)) }
    }

    func testAcceptsChainedPointersThatGoBackwards() throws {
        // Question "b.example" at 12; answer owner "a" + pointer to 12; CNAME target pointer to the owner (27).
        let owner = [UInt8(1), 0x61] + Wire.pointer(12)
        var bytes = Wire.header(an: 1) + Wire.question("b.example", type: 5)
        let ownerAt = bytes.count
        bytes += Wire.record(owner, type: 5, data: [1, 0x63] + Wire.pointer(ownerAt))
        let m = try DNSMessage.parse(bytes)
        XCTAssertEqual(m.answers.first?.name, dn("a.b.example"))
        XCTAssertEqual(m.answers.first?.data, .cname(dn("c.a.b.example")))
    }

    func testEncodeThenParseIsIdentity() throws {
        let m = DNSMessage(header: DNSHeader(id: 7, flags: 0x8180), questions: [question("Web.Example", .srv)],
                           answers: [DNSRecord(name: dn("Web.Example"), type: .srv, ttl: 9,
                                               data: .srv(DNSService(priority: 1, weight: 2, port: 3, target: dn("t.example"))))],
                           authorities: [DNSRecord(name: dn("example"), type: .ns, ttl: 1, data: .raw([0]))],
                           additionals: [DNSRecord(name: dn("t.example"), type: .aaaa, ttl: 2, data: .aaaa(Array(0..<16)))])
        var expected = m
        expected.header = DNSHeader(id: 7, flags: 0x8180, questionCount: 1, answerCount: 1, authorityCount: 1, additionalCount: 1)
        let back = try DNSMessage.parse(m.encode())
        XCTAssertEqual(back, expected)
        XCTAssertTrue(zip(back.answers, m.answers).allSatisfy { $0.isIdentical(to: $1) })
    }

    func testQueryCarriesOneQuestionAndEDNS() throws {
        let bytes = DNSQuery.encode(id: 0xBEEF, name: dn("web.default.svc.cluster.local"), type: .aaaa)
        let m = try DNSMessage.parse(bytes)
        XCTAssertEqual(m.header.id, 0xBEEF)
        XCTAssertFalse(m.header.isResponse)
        XCTAssertEqual(m.header.flags & DNSHeader.recursionDesiredFlag, DNSHeader.recursionDesiredFlag)
        XCTAssertEqual(m.questions, [question("web.default.svc.cluster.local", .aaaa)])
        XCTAssertEqual(m.additionals.map(\.type), [DNSRecordType.opt])
        XCTAssertEqual(m.additionals.first?.rclass, DNSQuery.ednsPayloadSize)
        XCTAssertTrue(try DNSMessage.parse(DNSQuery.encode(id: 1, name: dn("x"), type: .a, edns: false)).additionals.isEmpty)
    }

    func testNamesFromTextRespectTheLimits() {
        XCTAssertNotNil(DNSName(String(repeating: "a", count: 63) + ".b"))
        XCTAssertNil(DNSName(String(repeating: "a", count: 64) + ".b"))
        XCTAssertNil(DNSName("a..b"))
        XCTAssertNil(DNSName(""))
        XCTAssertEqual(DNSName("a.b.")?.labels.count, 2)
        XCTAssertEqual(DNSName(".")?.labels.count, 0)
        // 127 labels of one byte plus the root: 255 bytes exactly; one more label is too long.
        let ok = Array(repeating: "a", count: 127).joined(separator: ".")
        XCTAssertEqual(DNSName(ok)?.wireLength, 255)
        XCTAssertNil(DNSName(ok + ".b"))
        XCTAssertNil(dn("a").appending(DNSName(ok)!))
    }
}
