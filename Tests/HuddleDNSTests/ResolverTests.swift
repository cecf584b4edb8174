// The resolver thread against fake nameservers: one retry after a timeout (to the next nameserver), TCP after
// truncation, SERVFAIL retried then reported, stray IDs ignored, FORMERR asked again without EDNS, the search list,
// and SRV targets resolved from the additional section or by their own questions.
import Foundation
import HuddleDNS
@testable import HuddleResolver
import HuddleSync
import HuddleSys
import XCTest

final class ResolverTests: XCTestCase {
    private var servers: [FakeNameserver] = []
    private var resolver: Resolver?

    override func tearDown() {
        resolver?.stop()
        for s in servers { s.stop() }
        servers = []
        super.tearDown()
    }

    private func nameserver(_ handler: @escaping FakeNameserver.Handler) -> FakeNameserver {
        let s = FakeNameserver(handler)
        servers.append(s)
        return s
    }

    private func start(_ ns: [FakeNameserver], timeoutMs: Int64 = 300, search: [String] = [], ndots: Int = 1) throws -> Resolver {
        let settings = ResolverSettings(nameservers: ns.map { SocketAddress(ip: "127.0.0.1", port: $0.port)! },
                                        search: search.map { DNSName($0)! }, ndots: ndots, timeoutMs: timeoutMs)
        let r = try Resolver(settings: settings)
        r.start()
        resolver = r
        return r
    }

    /// Looks `name` up and waits for the answer (at most 10 s); also returns how long it took.
    private func addresses(_ r: Resolver, _ name: String) throws -> (AddressLookup, Double) {
        let box = Locked<AddressLookup?>(nil)
        let done = OneShotEvent()
        let start = Sys.monotonicNs()
        r.lookupAddresses(name) { result in
            box.withLock { $0 = result }
            done.signal()
        }
        XCTAssertTrue(done.wait(timeoutMs: 10_000), "no answer for \(name)")
        return (try XCTUnwrap(box.withLock { $0 }), Double(Sys.monotonicNs() - start) / 1e9)
    }

    private func v4(_ l: AddressLookup) -> [String]? { try? l.ipv4.get().addresses }

    func testTimeoutIsRetriedOnceOnTheNextNameserver() throws {
        let silent = nameserver { _, _ in nil }
        let good = nameserver { q, _ in FakeNameserver.reply(to: q, answers: q.questions[0].type == .a ? [FakeNameserver.a(q, 7)] : []) }
        let (l, took) = try addresses(try start([silent, good]), "web.test")
        XCTAssertEqual(v4(l), ["10.0.0.7"])
        XCTAssertEqual(try l.ipv6.get().addresses, [])
        XCTAssertGreaterThanOrEqual(took, 0.3, "the first attempt waited for its timeout")
        XCTAssertEqual(silent.queries.count, 2, "A and AAAA once each")
        XCTAssertEqual(good.queries.count, 2)
    }

    func testTwoTimeoutsAreAFailure() throws {
        let silent = nameserver { _, _ in nil }
        let (l, took) = try addresses(try start([silent]), "web.test")
        XCTAssertEqual(l.ipv4.failure, .timeout)
        XCTAssertEqual(l.ipv6.failure, .timeout)
        XCTAssertEqual(silent.queries.count, 4, "each question asked twice: one retry")
        XCTAssertGreaterThanOrEqual(took, 0.6)
        XCTAssertLessThan(took, 3)
    }

    func testTruncatedAnswerIsAskedAgainOverTCP() throws {
        let ns = nameserver { q, udp in
            q.questions[0].type == .a && udp ? FakeNameserver.reply(to: q, tc: true)
                : FakeNameserver.reply(to: q, answers: q.questions[0].type == .a ? (1...3).map { FakeNameserver.a(q, $0) } : [])
        }
        let (l, _) = try addresses(try start([ns]), "web.test")
        XCTAssertEqual(v4(l), ["10.0.0.1", "10.0.0.2", "10.0.0.3"])
        XCTAssertEqual(ns.queries.filter { $0.question.type == .a }.map(\.tcp), [false, true])
    }

    func testServerFailureIsRetriedThenReported() throws {
        let ns = nameserver { q, _ in FakeNameserver.reply(to: q, rcode: 2) }
        let (l, _) = try addresses(try start([ns]), "web.test")
        XCTAssertEqual(l.ipv4.failure, .rcode(.serverFailure))
        XCTAssertEqual(ns.queries.filter { $0.question.type == .a }.count, 2)
    }

    func testNameErrorIsAnEmptySetNotAFailure() throws {
        let ns = nameserver { q, _ in FakeNameserver.reply(to: q, rcode: 3) }
        let (l, _) = try addresses(try start([ns]), "gone.test")
        XCTAssertEqual(v4(l), [])
        XCTAssertEqual(ns.queries.count, 2, "NXDOMAIN is an answer: no retry")
    }

    func testAnswerWithAnotherIDIsIgnored() throws {
        let ns = nameserver { q, _ in
            // A forged answer first (another ID), then the real one on the same socket.
            FakeNameserver.reply(to: q, id: q.header.id &+ 1, answers: [FakeNameserver.a(q, 66)])
        }
        let honest = nameserver { q, _ in FakeNameserver.reply(to: q, answers: q.questions[0].type == .a ? [FakeNameserver.a(q, 1)] : []) }
        let (l, _) = try addresses(try start([ns, honest]), "web.test")
        XCTAssertEqual(v4(l), ["10.0.0.1"], "the forged answer was never taken")
    }

    func testFormatErrorIsAskedAgainWithoutEDNS() throws {
        let ns = nameserver { q, _ in
            q.additionals.isEmpty ? FakeNameserver.reply(to: q, answers: q.questions[0].type == .a ? [FakeNameserver.a(q, 4)] : [])
                : FakeNameserver.reply(to: q, rcode: 1)
        }
        let (l, _) = try addresses(try start([ns]), "web.test")
        XCTAssertEqual(v4(l), ["10.0.0.4"])
        XCTAssertEqual(ns.queries.filter { $0.question.type == .a }.map(\.edns), [true, false])
    }

    func testSearchListMovesOnAfterNXDOMAIN() throws {
        let ns = nameserver { q, _ in
            let name = q.questions[0].name.description
            guard name == "web.svc.cluster.local" else { return FakeNameserver.reply(to: q, rcode: 3) }
            return FakeNameserver.reply(to: q, answers: q.questions[0].type == .a ? [FakeNameserver.a(q, 9)] : [])
        }
        let r = try start([ns], search: ["ns.svc.cluster.local", "svc.cluster.local"], ndots: 5)
        let (l, _) = try addresses(r, "web")
        XCTAssertEqual(l.name, "web.svc.cluster.local")
        XCTAssertEqual(v4(l), ["10.0.0.9"])
        XCTAssertEqual(ns.queries.filter { $0.question.type == .a }.map(\.question.name.description), ["web.ns.svc.cluster.local", "web.svc.cluster.local"])
    }

    func testServiceTargetsFromTheAdditionalSectionOrTheirOwnQuestions() throws {
        let srv: @Sendable (DNSMessage, UInt16, UInt16, UInt16, String) -> DNSRecord = { q, priority, weight, port, target in
            DNSRecord(name: q.questions[0].name, type: .srv, ttl: 20,
                      data: .srv(DNSService(priority: priority, weight: weight, port: port, target: DNSName(target)!)))
        }
        let ns = nameserver { q, _ in
            let question = q.questions[0]
            switch (question.type, question.name.description) {
            case (.srv, _):
                return FakeNameserver.reply(to: q, answers: [srv(q, 0, 10, 8080, "Chat-0.chat.test"), srv(q, 0, 30, 8081, "chat-1.chat.test"),
                                                             srv(q, 1, 50, 9000, "fallback.chat.test")],
                                            additionals: [DNSRecord(name: DNSName("chat-0.chat.test")!, type: .a, ttl: 5, data: .a([10, 1, 0, 1]))])
            case (.a, "chat-1.chat.test"):
                return FakeNameserver.reply(to: q, answers: [DNSRecord(name: question.name, type: .a, ttl: 9, data: .a([10, 1, 0, 2])),
                                                             DNSRecord(name: question.name, type: .a, ttl: 9, data: .a([10, 1, 0, 0]))])
            default:
                return FakeNameserver.reply(to: q)
            }
        }
        let r = try start([ns])
        let box = Locked<ServiceLookup?>(nil)
        let done = OneShotEvent()
        r.lookupService("_http._tcp.chat.test") { result in
            box.withLock { $0 = result }
            done.signal()
        }
        XCTAssertTrue(done.wait(timeoutMs: 10_000))
        let result = try XCTUnwrap(box.withLock { $0 }).result.get()
        XCTAssertEqual(result.targets.sorted { $0.host < $1.host }, [
            ServiceTarget(host: "chat-0.chat.test", port: 8080, weight: 10, address: "10.1.0.1"),
            ServiceTarget(host: "chat-1.chat.test", port: 8081, weight: 30, address: "10.1.0.0"),
        ])
        XCTAssertEqual(result.ttl, 5)
        XCTAssertFalse(ns.queries.contains { $0.question.name.description == "fallback.chat.test" }, "a fallback priority is not looked up")
        XCTAssertFalse(ns.queries.contains { $0.question.name.description.lowercased() == "chat-0.chat.test" }, "chat-0 came in the additional section")
    }
}

extension Result {
    var failure: Failure? { if case .failure(let f) = self { return f } else { return nil } }
}
