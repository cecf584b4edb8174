// The admission queue through the real huddle binary, in front of an independent backend (peers/raw_backend.py) that
// records every request it gets and how many it was answering at that moment: with `max_conns`, the server never
// has more requests at once than its cap; queued requests are served by priority (higher first), first in first out
// within a class; one still queued at `queue_timeout` gets 503 with Retry-After and an error-log line saying why.
// One worker: priority order is per worker (docs/ARCHITECTURE.md).
import Foundation
import Glibc
import XCTest

final class QueueTests: HuddleTestCase {
    private var backend: PythonPeer!

    override func tearDown() {
        super.tearDown()
        backend?.stop()
    }

    private func start(maxConns: Int, queueTimeout: String, workers: Int = 1) throws -> HuddleProcess {
        backend = try PythonPeer(script: "raw_backend.py", recordDirectory: true)
        return try HuddleProcess(config: """
        upstream app {
            server 127.0.0.1:\(backend.port) max_conns=\(maxConns);
            queue_timeout \(queueTimeout);
            keepalive 8;
            retries 0;
        }
        server {
            listen 127.0.0.1:{PORT};
            route / { upstream app; priority header X-Priority; }
        }
        """, workers: workers)
    }

    /// A labelled sample of /metrics: `name{upstream="app"}`.
    private func metric(_ h: HuddleProcess, _ name: String) -> Double? {
        guard let text = Invariants.adminGet(h, "/metrics") else { return nil }
        let prefix = "\(name){upstream=\"app\"} "
        return text.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { Double($0.dropFirst(prefix.count)) }
    }

    /// Sends one request on its own connection and leaves the answer to be read later.
    private func send(_ h: HuddleProcess, _ target: String, priority: Int? = nil) throws -> RawClient {
        let c = try RawClient(port: h.port, receiveTimeoutSeconds: 20)
        let p = priority.map { "X-Priority: \($0)\r\n" } ?? ""
        c.send("GET \(target) HTTP/1.1\r\nHost: q.test\r\nConnection: close\r\n\(p)\r\n")
        return c
    }

    func testQueuedRequestsGoByPriorityThenArrivalAndTheServerNeverExceedsMaxConns() throws {
        let h = try start(maxConns: 2, queueTimeout: "20s")
        // Two slow requests take both slots; they end 400 ms apart, and each request let in holds its slot 800 ms, so
        // every slot frees at its own moment and the order the backend sees is the queue's order.
        let holders = [try send(h, "/hold/1?_delay=1000"), try send(h, "/hold/2?_delay=1400")]
        XCTAssertTrue(Harness.waitFor(10) { self.backend.requests().count == 2 }, "both holders reached the backend")
        var waiting: [(String, RawClient)] = []
        let arrivals: [(String, Int?)] = [("/low/1", 1), ("/low/2", 1), ("/none/1", nil), ("/high/1", 10), ("/low/3", 1), ("/high/2", 10)]
        for (i, (path, priority)) in arrivals.enumerated() {
            waiting.append((path, try send(h, path + "?_delay=800", priority: priority)))
            // The next one arrives only once this one is queued: the arrival order is the test's.
            XCTAssertTrue(Harness.waitFor(10) { self.metric(h, "huddle_queue_length") == Double(i + 1) }, "\(path) queued")
        }
        let backends = try XCTUnwrap(Invariants.adminGet(h, "/api/backends"))
        XCTAssertTrue(backends.contains("\"queue\":6"), backends)
        XCTAssertTrue(backends.contains("\"max_conns\":2"), backends)
        XCTAssertEqual(backend.requests().count, 2, "nothing queued reached the backend while both slots were taken")

        for c in holders { XCTAssertEqual(ParsedResponse.parseAll(c.readAll()).first?.status, 200) }
        for (path, c) in waiting { XCTAssertEqual(ParsedResponse.parseAll(c.readAll()).first?.status, 200, path) }
        let seen = backend.requests()
        XCTAssertEqual(seen.map { $0.target.split(separator: "?").first.map(String.init) ?? "" },
                       ["/hold/1", "/hold/2", "/high/1", "/high/2", "/low/1", "/low/2", "/low/3", "/none/1"],
                       "higher priority first, arrival order within a class (no header: priority 0)")
        let busiest = seen.compactMap { $0.object["busy"] as? Int }.max()
        XCTAssertEqual(busiest, 2, "the backend never had more than max_conns=2 requests at once, and had 2")
        XCTAssertTrue(Harness.waitFor(5) { self.metric(h, "huddle_queue_length") == 0 })
        XCTAssertEqual(metric(h, "huddle_queue_wait_seconds_count"), 6, "each queued request's wait is recorded")
        XCTAssertGreaterThan(metric(h, "huddle_queue_wait_seconds_sum") ?? 0, 3, "they waited seconds in all")
        XCTAssertEqual(metric(h, "huddle_queue_timeouts_total"), 0)
    }

    func testARequestStillQueuedAtQueueTimeoutGets503WithRetryAfter() throws {
        let h = try start(maxConns: 1, queueTimeout: "500ms")
        let holder = try send(h, "/hold?_delay=2500")
        XCTAssertTrue(Harness.waitFor(10) { self.backend.requests().count == 1 })
        let started = Date()
        let late = try send(h, "/late")
        let r = try XCTUnwrap(ParsedResponse.parseAll(late.readAll()).first)
        let waited = Date().timeIntervalSince(started)
        XCTAssertEqual(r.status, 503)
        XCTAssertEqual(r.value("Retry-After"), "1")
        XCTAssertGreaterThanOrEqual(waited, 0.45, "not before queue_timeout")
        XCTAssertLessThan(waited, 2.0, "at queue_timeout, not when the holder finished")
        XCTAssertEqual(ParsedResponse.parseAll(holder.readAll()).first?.status, 200)
        XCTAssertEqual(backend.requests().map(\.target), ["/hold?_delay=2500"], "the timed-out request never reached the backend")
        XCTAssertEqual(metric(h, "huddle_queue_timeouts_total"), 1)
        XCTAssertTrue(h.log.contains("upstream app: request from 127.0.0.1:"), h.log)
        XCTAssertTrue(h.log.range(of: "queued for [0-9]+ ms \\(queue_timeout 500 ms\\), every server of upstream app at max_conns; answering 503 with Retry-After: 1",
                                  options: .regularExpression) != nil, h.log)
    }

    func testWithTwoWorkersTheCapHoldsAcrossWorkersAndEveryWaiterIsServed() throws {
        // Clients spread over both workers by SO_REUSEPORT; each worker queues its own, the cap is the server's.
        let h = try start(maxConns: 2, queueTimeout: "20s", workers: 2)
        let started = Date()
        let clients = try (0..<12).map { try send(h, "/r/\($0)?_delay=200") }
        for (i, c) in clients.enumerated() { XCTAssertEqual(ParsedResponse.parseAll(c.readAll()).first?.status, 200, "request \(i)") }
        let elapsed = Date().timeIntervalSince(started)
        let seen = backend.requests()
        XCTAssertEqual(seen.count, 12)
        XCTAssertEqual(seen.compactMap { $0.object["busy"] as? Int }.max(), 2, "never more than max_conns=2 at the backend")
        // 12 requests of 200 ms, 2 at a time: about 1.2 s. A waiter stranded on the other worker would sit until the
        // once-a-second poll; several of them would add seconds.
        XCTAssertLessThan(elapsed, 4, "waiters on both workers were woken as slots freed")
        XCTAssertTrue(Harness.waitFor(5) { self.metric(h, "huddle_queue_length") == 0 })
    }
}
