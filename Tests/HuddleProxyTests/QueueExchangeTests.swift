// The admission queue on the in-memory network (`max_conns`, `queue_timeout`, `priority`): requests served from the
// queue in priority order, a request still queued at queue_timeout answered 503 with Retry-After, a client that goes
// away while queued; each ends with everything back at rest (queue length, in-flight counts, buffers).
@testable import HuddleProxy
import HuddleConfig
import HuddleSys
import XCTest

final class QueueExchangeTests: XCTestCase {
    func harness(maxConns: Int = 1, queueTimeout: String = "5s", servers: Int = 1) throws -> ExchangeHarness {
        let lines = (0..<servers).map { "    server 127.0.0.1:\(9001 + $0) max_conns=\(maxConns);" }.joined(separator: "\n")
        return try ExchangeHarness(config: """
        upstream app {
        \(lines)
            queue_timeout \(queueTimeout);
            keepalive 0;
        }
        server {
            listen 127.0.0.1:8080;
            route /low/ { upstream app; priority 1; }
            route /high/ { upstream app; priority 10; }
            route / { upstream app; priority header X-Priority; }
        }
        """)
    }

    func get(_ path: String, _ extra: String = "") -> String { "GET \(path) HTTP/1.1\r\nHost: h\r\n\(extra)\r\n" }

    /// The path of the request the n-th backend connection received, once its head is complete.
    func backendPath(_ h: ExchangeHarness, _ n: Int) -> String? {
        guard h.run(until: {
            guard let b = h.backend(n) else { return false }
            return String(decoding: b.fromProxy.bytes, as: UTF8.self).contains("\r\n\r\n")
        }) else { return nil }
        let text = String(decoding: h.backend(n)!.fromProxy.bytes, as: UTF8.self)
        return text.split(separator: " ").dropFirst().first.map(String.init)
    }

    func answer(_ h: ExchangeHarness, _ n: Int, _ client: MemoryConnection) -> String {
        h.backend(n)!.send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        var got = ""
        XCTAssertTrue(h.run { got += client.receiveText(); return got.hasSuffix("ok") }, "answer \(n): \(got)")
        return got
    }

    func queueLength(_ h: ExchangeHarness) -> Int { h.runtime.upstreams[0].queue.length.load(ordering: .relaxed) }

    func testQueuedRequestsAreServedByPriorityThenInArrivalOrder() throws {
        let h = try harness()
        let server = h.server(9001)
        let first = h.client()
        first.send(get("/first"))
        XCTAssertEqual(backendPath(h, 0), "/first")
        // The server is at max_conns=1: everything else waits, in this order of arrival.
        let arrivals: [(path: String, extra: String)] = [("/low/1", ""), ("/low/2", ""), ("/high/1", ""), ("/x/header-5", "X-Priority: 5\r\n"),
                                                         ("/high/2", ""), ("/x/absent", ""), ("/x/bad", "X-Priority: soon\r\n"),
                                                         ("/x/huge", "X-Priority: 99999999999999999999\r\n")]
        var clients: [String: MemoryConnection] = [:]
        for a in arrivals {
            let c = h.client()
            c.send(get(a.path, a.extra))
            clients[a.path] = c
            XCTAssertTrue(h.run { self.queueLength(h) == clients.count }, "\(a.path) queued")
        }
        XCTAssertEqual(h.net.backendConnections.count, 1, "nothing went past max_conns")
        XCTAssertEqual(server.inFlight.load(ordering: .relaxed), 1)
        XCTAssertTrue(answer(h, 0, first).hasPrefix("HTTP/1.1 200"))
        // Highest priority first (the huge header clamped to 2047), FIFO within a class; absent and invalid are 0.
        let expected = ["/x/huge", "/high/1", "/high/2", "/x/header-5", "/low/1", "/low/2", "/x/absent", "/x/bad"]
        for (i, path) in expected.enumerated() {
            XCTAssertEqual(backendPath(h, i + 1), path, "served #\(i + 1)")
            XCTAssertEqual(server.inFlight.load(ordering: .relaxed), 1, "never more than max_conns")
            XCTAssertEqual(h.net.backendConnections.count, i + 2, "one at a time")
            XCTAssertTrue(answer(h, i + 1, clients[path]!).hasPrefix("HTTP/1.1 200"))
        }
        XCTAssertTrue(h.run { self.queueLength(h) == 0 && server.inFlight.load(ordering: .relaxed) == 0 })
        let waits = h.runtime.upstreams[0].queue.waits.snapshot()
        XCTAssertEqual(waits.count, expected.count, "one wait recorded per queued request")
        XCTAssertEqual(h.runtime.upstreams[0].queue.timeouts.load(ordering: .relaxed), 0)
        for c in [first] + Array(clients.values) { c.finish() }
        XCTAssertTrue(h.run { ([first] + Array(clients.values)).allSatisfy(\.proxyClosed) })
        h.assertAtRest()
    }

    func testARequestStillQueuedAtQueueTimeoutGets503WithRetryAfter() throws {
        let h = try harness(queueTimeout: "300ms")
        let first = h.client()
        first.send(get("/first"))
        XCTAssertEqual(backendPath(h, 0), "/first")
        let waiting = h.client()
        let started = Date()
        waiting.send(get("/second"))
        XCTAssertTrue(h.run { self.queueLength(h) == 1 })
        var got = ""
        XCTAssertTrue(h.run(for: 3) { got += waiting.receiveText(); return got.contains("\r\n\r\n") && got.hasSuffix("\n") }, got)
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 0.25, "not before queue_timeout")
        XCTAssertEqual(got.statusCode, 503, got)
        XCTAssertTrue(got.contains("\r\nRetry-After: 1\r\n"), got)
        XCTAssertEqual(queueLength(h), 0)
        XCTAssertEqual(h.runtime.upstreams[0].queue.timeouts.load(ordering: .relaxed), 1)
        XCTAssertEqual(h.net.backendConnections.count, 1, "the timed-out request never reached the server")
        XCTAssertTrue(h.log.contains("every server of upstream app at max_conns; answering 503 with Retry-After: 1"), h.log)
        XCTAssertTrue(h.log.range(of: "queued for [0-9]+ ms \\(queue_timeout 300 ms\\)", options: .regularExpression) != nil, h.log)
        // The client keeps its connection (its request was read in full) and the slot holder finishes normally.
        XCTAssertTrue(answer(h, 0, first).hasPrefix("HTTP/1.1 200"))
        for c in [first, waiting] { c.finish() }
        XCTAssertTrue(h.run { first.proxyClosed && waiting.proxyClosed })
        h.assertAtRest()
    }

    func testAClientThatGoesAwayWhileQueuedLeavesTheQueue() throws {
        let h = try harness()
        let first = h.client()
        first.send(get("/first"))
        XCTAssertEqual(backendPath(h, 0), "/first")
        let gone = h.client()
        gone.send(get("/gone"))
        let stays = h.client()
        stays.send(get("/stays"))
        XCTAssertTrue(h.run { self.queueLength(h) == 2 })
        gone.reset()
        XCTAssertTrue(h.run { gone.proxyClosed && self.queueLength(h) == 1 })
        XCTAssertTrue(answer(h, 0, first).hasPrefix("HTTP/1.1 200"))
        // The slot goes to the one still waiting; nothing was sent for the one that left.
        XCTAssertEqual(backendPath(h, 1), "/stays")
        XCTAssertTrue(answer(h, 1, stays).hasPrefix("HTTP/1.1 200"))
        XCTAssertEqual(h.net.backendConnections.count, 2)
        for c in [first, stays] { c.finish() }
        XCTAssertTrue(h.run { first.proxyClosed && stays.proxyClosed })
        h.assertAtRest()
    }

    func testAFullServerIsSkippedWhileAnotherHasRoom() throws {
        let h = try harness(servers: 2)
        let a = h.client()
        a.send(get("/a"))
        XCTAssertNotNil(backendPath(h, 0))
        let b = h.client()
        b.send(get("/b"))
        XCTAssertNotNil(backendPath(h, 1))
        XCTAssertNotEqual(h.net.backendConnections[0].address.port, h.net.backendConnections[1].address.port, "the second went to the server with room")
        let c = h.client()
        c.send(get("/c"))
        XCTAssertTrue(h.run { self.queueLength(h) == 1 })
        XCTAssertTrue(answer(h, 1, b).hasPrefix("HTTP/1.1 200"))
        XCTAssertEqual(backendPath(h, 2), "/c")
        XCTAssertEqual(h.net.backendConnections[2].address.port, h.net.backendConnections[1].address.port, "the freed server took it")
        XCTAssertTrue(answer(h, 2, c).hasPrefix("HTTP/1.1 200"))
        XCTAssertTrue(answer(h, 0, a).hasPrefix("HTTP/1.1 200"))
        for x in [a, b, c] { x.finish() }
        XCTAssertTrue(h.run { [a, b, c].allSatisfy(\.proxyClosed) })
        h.assertAtRest()
    }

    func testWithoutMaxConnsNothingQueues() throws {
        let h = try ExchangeHarness(config: """
        upstream app { server 127.0.0.1:9001; keepalive 0; }
        server { listen 127.0.0.1:8080; route / { upstream app; priority 5; } }
        """)
        XCTAssertFalse(h.runtime.upstreams[0].capped)
        let clients = (0..<4).map { _ in h.client() }
        for (i, c) in clients.enumerated() { c.send(get("/\(i)")) }
        XCTAssertTrue(h.run { h.net.backendConnections.count == 4 })
        XCTAssertEqual(h.server(9001).inFlight.load(ordering: .relaxed), 4)
        for (i, c) in clients.enumerated() { _ = answer(h, i, c) }
        for c in clients { c.finish() }
        XCTAssertTrue(h.run { clients.allSatisfy(\.proxyClosed) })
        h.assertAtRest()
    }

    func testPriorityHeaderValues() {
        func value(_ s: String) -> Int { Array(s.utf8).withUnsafeBytes { ClientConnection<MemoryNetworkForTesting>.priorityValue($0) } }
        XCTAssertEqual(value("10"), 10)
        XCTAssertEqual(value("-3"), -3)
        XCTAssertEqual(value("+7"), 7)
        XCTAssertEqual(value("99999999999999999999999"), 2047)
        XCTAssertEqual(value("-5000"), -2047)
        XCTAssertEqual(value(""), 0)
        XCTAssertEqual(value("-"), 0)
        XCTAssertEqual(value("1.5"), 0)
        XCTAssertEqual(value("high"), 0)
    }

    func testAReloadThatRaisesMaxConnsLetsTheQueuedRequestIn() throws {
        let h = try harness()
        let first = h.client()
        first.send(get("/first"))
        XCTAssertEqual(backendPath(h, 0), "/first")
        let waiting = h.client()
        waiting.send(get("/waiting"))
        XCTAssertTrue(h.run { self.queueLength(h) == 1 })
        // The same server with a higher cap: no slot frees, the once-a-second pass lets the waiter in.
        let parsed = try ConfigParser.parse(text: """
        upstream app { server 127.0.0.1:9001 max_conns=2; queue_timeout 5s; keepalive 0; }
        server { listen 127.0.0.1:8080; route / { upstream app; } }
        """, file: "reload.conf")
        let next = try RuntimeConfig.build(parsed, generation: 2, previous: h.runtime, log: { _ in })
        XCTAssertTrue(next.upstreams[0].queue === h.runtime.upstreams[0].queue, "the queue is kept by name")
        XCTAssertTrue(next.upstreams[0].servers[0] === h.server(9001), "the server is kept by identity")
        h.worker.apply(next)
        XCTAssertEqual(backendPath(h, 1), "/waiting")
        XCTAssertEqual(h.server(9001).inFlight.load(ordering: .relaxed), 2)
        XCTAssertTrue(answer(h, 1, waiting).hasPrefix("HTTP/1.1 200"))
        XCTAssertTrue(answer(h, 0, first).hasPrefix("HTTP/1.1 200"))
        for c in [first, waiting] { c.finish() }
        XCTAssertTrue(h.run { first.proxyClosed && waiting.proxyClosed })
        h.assertAtRest()
    }

    func testShutdownLeavesQueuedRequestsWaitingAndTheForcedCloseReleasesThem() throws {
        let h = try harness()
        let first = h.client()
        first.send(get("/first"))
        XCTAssertEqual(backendPath(h, 0), "/first")
        let waiting = h.client()
        waiting.send(get("/waiting"))
        XCTAssertTrue(h.run { self.queueLength(h) == 1 })
        h.worker.beginShutdown()
        h.run(for: 0.1)
        XCTAssertEqual(queueLength(h), 1, "a graceful stop lets queued requests wait for their turn")
        XCTAssertFalse(waiting.proxyClosed)
        // shutdown_timeout: everything still open closes, the queued request's place with it.
        h.worker.forceClose()
        XCTAssertTrue(h.run { waiting.proxyClosed && first.proxyClosed })
        XCTAssertEqual(queueLength(h), 0)
        h.assertAtRest()
    }

    func testANewcomerArrivingAsASlotFreesQueuesBehindTheWaiters() throws {
        let h = try harness()
        let first = h.client()
        first.send(get("/first"))
        XCTAssertEqual(backendPath(h, 0), "/first")
        let waiting = h.client()
        waiting.send(get("/waiting"))
        XCTAssertTrue(h.run { self.queueLength(h) == 1 })
        // The slot frees and a newcomer arrives in the same turn, before the worker serves its queue.
        let newcomer = h.client()
        h.backend(0)!.send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        newcomer.send(get("/newcomer"))
        h.net.deliver()
        XCTAssertEqual(queueLength(h), 2, "the newcomer waits behind the waiter instead of taking the slot or a 503")
        XCTAssertEqual(backendPath(h, 1), "/waiting")
        XCTAssertTrue(answer(h, 1, waiting).hasPrefix("HTTP/1.1 200"))
        XCTAssertEqual(backendPath(h, 2), "/newcomer")
        XCTAssertTrue(answer(h, 2, newcomer).hasPrefix("HTTP/1.1 200"))
        var got = ""
        XCTAssertTrue(h.run { got += first.receiveText(); return got.hasSuffix("ok") })
        for c in [first, waiting, newcomer] { c.finish() }
        XCTAssertTrue(h.run { [first, waiting, newcomer].allSatisfy(\.proxyClosed) })
        h.assertAtRest()
    }
}
