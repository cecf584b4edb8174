// Rate limits through the real huddle binary: twice the rate for 5 s lets rate × 5 + burst through (±10%) and answers
// the rest 429 with Retry-After, other keys (another header value, another client address) are not touched, WebSocket
// routes limit new upgrades and leave open tunnels alone, and 100,000 distinct keys stay within the table's fixed size
// (huddle's RSS measured, the cap and its counter read from /metrics).
import Foundation
import Glibc
import HuddleDemo
import HuddleSys
import XCTest

final class RateLimitTests: HuddleTestCase {
    var backend: DemoBackend?

    override func tearDown() {
        super.tearDown()   // the end-of-test invariant check, while the backend still runs; stops huddle
        backend?.stop()
        backend = nil
    }

    func start(routes: String, workers: Int = 1) throws -> HuddleProcess {
        let b = try Harness.startBackend("rl", workers: 2)
        backend = b
        return try HuddleProcess(config: """
        upstream app {
            server 127.0.0.1:\(b.boundAddresses[0].port) name=rl;
            keepalive 64;
        }
        server {
            listen 127.0.0.1:{PORT};
        \(routes)
            route / { upstream app; }
        }
        """, workers: workers)
    }

    /// A sample of a labelled family from /metrics: `huddle_x{route="/a/"}`.
    func metric(_ h: HuddleProcess, _ name: String, route: String) -> Int? {
        guard let text = Invariants.adminGet(h, "/metrics") else { return nil }
        let prefix = "\(name){route=\"\(route)\"} "
        for line in text.split(separator: "\n") where line.hasPrefix(prefix) {
            return Int(line.dropFirst(prefix.count))
        }
        return nil
    }

    func testTwiceTheRateForFiveSecondsPassesRateTimesFivePlusBurst() throws {
        let (rate, burst) = (50, 25)
        let h = try start(routes: "    route /rl/ { upstream app; rate_limit \(rate)/s burst=\(burst) key=header:X-Client; }")
        let address = SocketAddress(ip: "127.0.0.1", port: h.port)!
        let a = try DemoHTTPClient(address: address)
        let b = try DemoHTTPClient(address: address)
        // Client "a" at twice the rate (a request every 10 ms) for 5 s, on a fixed schedule that catches up when the
        // machine is slow; client "b", another key, at a fifth of the rate in between.
        var passed = 0, limited = 0, otherPassed = 0
        var retryAfters: Set<String> = []
        var problems: [String] = []
        let start = Date()
        var first: Date?
        var last = start
        for i in 0..<(2 * rate * 5) {
            let due = start.addingTimeInterval(Double(i) / Double(2 * rate))
            let wait = due.timeIntervalSinceNow
            if wait > 0 { usleep(UInt32(wait * 1_000_000)) }
            let now = Date()
            if first == nil { first = now }
            last = now
            let r = try a.request("GET", "/rl/x", headers: [("X-Client", "a")])
            switch r.status {
            case 200: passed += 1
            case 429:
                limited += 1
                if let ra = r.header("Retry-After") { retryAfters.insert(ra) } else { problems.append("429 without Retry-After") }
            default: problems.append("status \(r.status)")
            }
            if i % 10 == 5 {
                let o = try b.request("GET", "/rl/x", headers: [("X-Client", "b")])
                if o.status == 200 { otherPassed += 1 } else { problems.append("client b got \(o.status)") }
            }
        }
        let elapsed = last.timeIntervalSince(first!)
        let expected = Double(burst) + Double(rate) * elapsed
        print("rate limit: \(passed) passed, \(limited) limited over \(String(format: "%.3f", elapsed)) s; expected \(String(format: "%.1f", expected))")
        XCTAssertEqual(problems, [])
        XCTAssertEqual(passed + limited, 2 * rate * 5)
        XCTAssertEqual(Double(passed), expected, accuracy: expected * 0.1, "rate × time + burst pass")
        XCTAssertEqual(Double(rate * 5 + burst), Double(passed), accuracy: Double(rate * 5 + burst) * 0.1, "about rate × 5 + burst")
        XCTAssertEqual(retryAfters, ["1"], "a token comes back within 20 ms: Retry-After rounds up to 1 s")
        XCTAssertEqual(otherPassed, rate / 5 * 5, "the other key is never limited")
        XCTAssertEqual(metric(h, "huddle_rate_limited_total", route: "/rl/"), limited)
        // The unlimited route of the same client is not touched.
        XCTAssertEqual(try a.request("GET", "/free", headers: [("X-Client", "a")]).status, 200)
        a.close()
        b.close()
    }

    func testAnotherClientAddressIsNotLimited() throws {
        let h = try start(routes: "    route /ip/ { upstream app; rate_limit 1/m burst=3; }")
        func status(from ip: String) throws -> (Int, String?) {
            let r = try Harness.curl(["--interface", ip, "-D", "-", "-o", "/dev/null", h.url + "/ip/"])
            let lines = r.text.components(separatedBy: "\r\n")
            let code = lines.first.flatMap { Int($0.dropFirst(9).prefix(3)) } ?? 0
            let retry = lines.first { $0.lowercased().hasPrefix("retry-after:") }.map { $0.dropFirst(12).trimmingCharacters(in: .whitespaces) }
            return (code, retry)
        }
        for i in 0..<3 { XCTAssertEqual(try status(from: "127.0.0.1").0, 200, "request \(i) of the burst") }
        let (code, retry) = try status(from: "127.0.0.1")
        XCTAssertEqual(code, 429)
        XCTAssertTrue((1...60).contains(Int(retry ?? "") ?? 0), "Retry-After \(retry ?? "none")")
        XCTAssertGreaterThanOrEqual(Int(retry ?? "") ?? 0, 55, "1/m: the next token is about a minute away")
        // Another address is another key: its own full bucket.
        for i in 0..<3 { XCTAssertEqual(try status(from: "127.0.0.2").0, 200, "127.0.0.2 request \(i)") }
        XCTAssertEqual(try status(from: "127.0.0.2").0, 429)
        XCTAssertEqual(try status(from: "127.0.0.1").0, 429, "the first is still limited")
        XCTAssertEqual(metric(h, "huddle_rate_limited_total", route: "/ip/"), 3)
        XCTAssertEqual(metric(h, "huddle_rate_limit_keys", route: "/ip/"), 2)
    }

    func testWebSocketRoutesLimitNewUpgradesOnly() throws {
        let h = try start(routes: "    route /ws/ { upstream app; rate_limit 1/m burst=2; }")
        let address = SocketAddress(ip: "127.0.0.1", port: h.port)!
        let open = try (0..<2).map { _ in try DemoWebSocketClient(address: address, path: "/ws/echo") }
        // The third upgrade is refused before any backend sees it.
        let c = try RawClient(port: h.port)
        c.send("GET /ws/echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        let answer = c.read { ParsedResponse.parseAll($0).count == 1 }
        let r = try XCTUnwrap(ParsedResponse.parseAll(answer).first, answer.text)
        XCTAssertEqual(r.status, 429)
        XCTAssertNotNil(r.value("Retry-After").flatMap { Int($0) })
        XCTAssertNil(r.value("Upgrade"))
        // The open tunnels are not limited: messages flow as before, many more than the rate.
        for i in 0..<20 {
            for ws in open {
                try ws.send(text: "m\(i)")
                XCTAssertEqual(try ws.receive(), .text("m\(i)"))
            }
        }
        for ws in open {
            try ws.close()
            ws.disconnect()
        }
        XCTAssertEqual(metric(h, "huddle_rate_limited_total", route: "/ws/"), 1)
        XCTAssertTrue(Harness.waitFor(10) { (Invariants.metrics(h)?["huddle_tunnels"] ?? -1) == 0 })
    }

    /// VmRSS of a process in KiB.
    func rssKiB(_ pid: Int32) -> Int {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0
        }
        return 0
    }

    /// Sends `count` requests with distinct X-Key values (from `offset`) over `connections` keep-alive connections,
    /// pipelined in batches; returns the statuses seen, by count.
    func distinctKeys(_ h: HuddleProcess, offset: Int, count: Int, connections: Int = 4) throws -> [Int: Int] {
        let address = SocketAddress(ip: "127.0.0.1", port: h.port)!
        let results = ManagedStatuses()
        let perConnection = count / connections
        let errors = ManagedStatuses()
        DispatchQueue.concurrentPerform(iterations: connections) { c in
            do {
                let client = try DemoHTTPClient(address: address, timeoutSeconds: 30)
                var local: [Int: Int] = [:]
                var next = offset + c * perConnection
                let end = next + perConnection
                while next < end {
                    let batch = min(200, end - next)
                    var text = ""
                    for k in next..<(next + batch) { text += "GET /k/ HTTP/1.1\r\nHost: x\r\nX-Key: key-\(k)\r\n\r\n" }
                    try client.send(text)
                    for _ in 0..<batch { local[try client.readResponse().status, default: 0] += 1 }
                    next += batch
                }
                client.close()
                results.add(local)
            } catch {
                errors.add([-1: 1])
            }
        }
        XCTAssertEqual(errors.value, [:], "a client failed")
        return results.value
    }

    func testAHundredThousandKeysStayWithinTheTable() throws {
        let h = try start(routes: "    route /k/ { upstream app; rate_limit 1/m burst=1 key=header:X-Key; }", workers: 2)
        let slots = try XCTUnwrap(metric(h, "huddle_rate_limit_table_slots", route: "/k/"))
        XCTAssertEqual(slots, 65_536)
        // Warm up (buffers, exchanges, backend connections), then measure from there.
        XCTAssertEqual(try distinctKeys(h, offset: 0, count: 4_000), [200: 4_000])
        let rssBefore = rssKiB(h.pid)
        let started = Date()
        let statuses = try distinctKeys(h, offset: 4_000, count: 100_000)
        let took = Date().timeIntervalSince(started)
        let rssAfter = rssKiB(h.pid)
        // Every key is new, so every request passes (a fresh bucket), and each bucket stays in debt for a minute:
        // the table must hold 104,000 busy keys in 65,536 slots, and replaces the ones nearest to full.
        XCTAssertEqual(statuses, [200: 100_000])
        let keys = try XCTUnwrap(metric(h, "huddle_rate_limit_keys", route: "/k/"))
        let full = try XCTUnwrap(metric(h, "huddle_rate_limit_table_full_total", route: "/k/"))
        print("100,000 keys in \(String(format: "%.1f", took)) s: VmRSS \(rssBefore) -> \(rssAfter) KiB; table \(keys) keys of \(slots) slots"
              + " (\(slots * 8 / 1024) KiB); \(full) replacements")
        XCTAssertLessThanOrEqual(keys, slots, "the cap holds")
        XCTAssertGreaterThan(keys, slots * 9 / 10, "the table is used, not emptied")
        XCTAssertGreaterThanOrEqual(full, 104_000 - slots, "every key past the cap replaced one, and was counted")
        XCTAssertLessThan(rssAfter - rssBefore, 4 * 1024, "RSS does not grow with the keys (the table was allocated at start)")
        // The newest keys are remembered: they are limited now.
        let c = try DemoHTTPClient(address: SocketAddress(ip: "127.0.0.1", port: h.port)!)
        let r = try c.request("GET", "/k/", headers: [("X-Key", "key-103999")])
        XCTAssertEqual(r.status, 429)
        c.close()
    }
}

/// Status counts that several client threads add to.
final class ManagedStatuses: @unchecked Sendable {
    private let lock = NSLock()
    private var counts: [Int: Int] = [:]
    func add(_ c: [Int: Int]) {
        lock.lock()
        for (k, v) in c { counts[k, default: 0] += v }
        lock.unlock()
    }
    var value: [Int: Int] { lock.lock(); defer { lock.unlock() }; return counts }
}
