// Passive health end to end: failures seen on real traffic (5xx with on_5xx=on, refused connects) eject a server for
// ejection × (its ejections so far), never more than max_ejected of an upstream, and it comes back when the time is
// over, whatever its active checks say. The backends (peers/health_backend.py) count what reaches them.
import Foundation
import Glibc
import XCTest

final class PassiveHealthTests: HealthTestCase {
    static let slack = 2.0

    private func config(_ list: [HealthBackend], passive: String, check: String = "", workers: Int = 2) -> String {
        """
        workers \(workers);
        admin 127.0.0.1:{ADMIN};
        upstream web {
        \(serverLines(list))
            \(passive)
            \(check)
            connect_timeout 500ms; response_timeout 1s; retries 1;
        }
        server { listen 127.0.0.1:{PORT}; route / { upstream web; } }

        """
    }

    /// Sequential GETs until `done` holds (checked after each) or `timeout` passes; returns the replies.
    private func drive(_ h: HuddleProcess, _ tag: String, timeout: Double = 20, until done: () -> Bool) -> [Reply] {
        var replies: [Reply] = []
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            replies.append(get(h, "/\(tag)/\(replies.count)"))
            if done() { break }
        }
        return replies
    }

    // MARK: 3. 5xx answers eject; the traffic moves; the server comes back on time

    func testServerAnswering500IsEjectedItsTrafficMovesAndItComesBackOnTime() throws {
        let ejection = 2.0
        let list = try startBackends(["a", "b", "c"])
        let b = list[1]
        // b fails every request but passes its health checks: only passive health can take it out, and its passing
        // checks must not end the ejection early.
        b.setMode("error")
        let h = try HuddleProcess(config: config(list, passive: "passive_health failures=3 ejection=2s max_ejected=50% on_5xx=on;",
                                                 check: "health_check /healthz interval=200ms timeout=200ms rise=1 fall=2;"))
        let first = drive(h, "first") { states(h)["b"] == "ejected" }
        let ejectedAt = Date()
        XCTAssertEqual(states(h)["b"], "ejected", "b was never ejected; \(first.count) requests, \(first.filter { $0.status == 500 }.count) answered 500; log:\n\(h.log.suffix(2000))")
        let errors = first.filter { $0.status != 200 }
        print("PassiveHealthTests: ejected after \(first.count) requests (\(errors.count) answered 500) in \(Self.format(first.map(\.seconds).reduce(0, +))) s")
        XCTAssertEqual(errors.count, 3, "exactly the three failures that eject it reach clients: \(errors)")
        XCTAssertTrue(errors.allSatisfy { $0.status == 500 && $0.backend == "b" }, "\(errors)")
        let lines = transitions(h, "b", from: "healthy", to: "ejected")
        XCTAssertEqual(lines.count, 1, "\(transitions(h, "b"))")
        XCTAssertTrue(lines.first?.contains("3 failures in a row (last: answered 500); ejected for 2000 ms (ejection 1)") ?? false, "\(lines)")

        // Its traffic goes to the others: no client sees a 500 while it is out.
        let before = b.counts()?.requests ?? -1
        let probesBefore = b.counts()?.healthz ?? -1
        for i in 0..<30 {
            let r = get(h, "/during/\(i)")
            XCTAssertEqual(r.status, 200, "\(r)")
        }
        XCTAssertEqual(b.counts()?.requests, before, "an ejected server got requests")

        // Back when its time is over, not before, though its checks kept passing.
        guard waitForState(h, "b", "healthy", timeout: ejection + Self.slack) != nil else {
            return XCTFail("b still \(states(h)["b"] ?? "?") \(ejection + Self.slack) s after its ejection")
        }
        let out = Date().timeIntervalSince(ejectedAt)
        print("PassiveHealthTests: first ejection lasted about \(Self.format(out)) s (ejection=\(ejection) s)")
        XCTAssertGreaterThanOrEqual(out, ejection - 0.1, "the ejection ended early")
        XCTAssertGreaterThan((b.counts()?.healthz ?? 0) - probesBefore, 3, "its active checks ran (and passed) during the ejection")
        let back = transitions(h, "b", from: "ejected", to: "healthy")
        XCTAssertEqual(back.count, 1, "\(transitions(h, "b"))")
        XCTAssertTrue(back.first?.contains("ejection time over") ?? false, "\(back)")

        // Still failing: it gets traffic again, three more failures eject it again, for twice as long.
        let second = drive(h, "second") { states(h)["b"] == "ejected" }
        XCTAssertEqual(states(h)["b"], "ejected")
        XCTAssertEqual(second.filter { $0.status != 200 }.count, 3, "\(second.filter { $0.status != 200 })")
        let again = transitions(h, "b", from: "healthy", to: "ejected")
        XCTAssertEqual(again.count, 2, "\(transitions(h, "b"))")
        XCTAssertTrue(again.last?.contains("ejected for 4000 ms (ejection 2)") ?? false, "\(again)")
        b.setMode("ok")
    }

    // MARK: 4. max_ejected

    func testMaxEjectedHoldsWhenEveryServerFails() throws {
        let list = try startBackends(["a", "b", "c", "d"], mode: "error")
        let h = try HuddleProcess(config: config(list, passive: "passive_health failures=2 ejection=30s max_ejected=50% on_5xx=on;"))
        let replies = drive(h, "all-failing") { states(h).values.filter { $0 == "ejected" }.count >= 2 }
        XCTAssertEqual(states(h).values.filter { $0 == "ejected" }.count, 2, "\(states(h))")
        // They keep failing, but no third server is ejected.
        for i in 0..<40 {
            let r = get(h, "/still-failing/\(i)")
            XCTAssertEqual(r.status, 500, "\(r)")
        }
        let s = states(h)
        print("PassiveHealthTests: all four failing: \(s.sorted { $0.key < $1.key }) after \(replies.count + 40) requests")
        XCTAssertEqual(s.values.filter { $0 == "ejected" }.count, 2, "max_ejected=50% of 4 servers is 2: \(s)")
        XCTAssertEqual(s.values.filter { $0 == "healthy" }.count, 2, "\(s)")
        let ejections = h.log.split(separator: "\n").filter { $0.contains(" -> ejected: ") }
        XCTAssertEqual(ejections.count, 2, ejections.joined(separator: "\n"))
        let refused = h.log.split(separator: "\n").filter { $0.contains("is not ejected: 2 of 4 servers are ejected already (max_ejected 50%)") }
        XCTAssertGreaterThanOrEqual(refused.count, 1, "the refused ejection is logged")
        XCTAssertLessThanOrEqual(refused.count, 2, "and not for every failure: \(refused.joined(separator: "\n"))")
    }

    // MARK: connect failures eject too; an ejected server comes back with no traffic and no active check

    func testRefusedConnectsEjectAndTheServerReturnsWhenTheTimeIsOver() throws {
        let list = try startBackends(["a", "b"])
        let b = list[1]
        let h = try HuddleProcess(config: config(list, passive: "passive_health failures=2 ejection=1500ms on_5xx=off;"))
        b.stop()
        let replies = drive(h, "refused") { states(h)["b"] == "ejected" }
        XCTAssertEqual(states(h)["b"], "ejected", "\(replies.count) requests; log:\n\(h.log.suffix(2000))")
        let ejectedAt = Date()
        XCTAssertTrue(replies.allSatisfy { $0.status == 200 && $0.backend == "a" }, "GETs are retried on a: \(replies.filter { $0.status != 200 })")
        let lines = transitions(h, "b", from: "healthy", to: "ejected")
        XCTAssertTrue(lines.first?.contains("2 failures in a row (last: connect failed") ?? false, "\(lines)")
        try b.restart()
        XCTAssertNotNil(waitForState(h, "b", "healthy", timeout: 1.5 + Self.slack), "\(states(h))")
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(ejectedAt), 1.4)
        var served = false
        for i in 0..<100 where !served { served = get(h, "/back/\(i)").backend == "b" }
        XCTAssertTrue(served, "b serves again once its ejection is over")
    }

    // MARK: every server ejected: 503 with Retry-After counting down to the first return

    func testAllEjectedAnswer503WithRetryAfterUntilTheFirstReturns() throws {
        let list = try startBackends(["a", "b"], mode: "error")
        let h = try HuddleProcess(config: config(list, passive: "passive_health failures=1 ejection=3s max_ejected=100% on_5xx=on;"))
        let replies = drive(h, "eject-all") { states(h).values.allSatisfy { $0 == "ejected" } }
        XCTAssertEqual(states(h), ["a": "ejected", "b": "ejected"], "\(replies.count) requests")
        for l in list { l.setMode("ok") }
        let r = get(h, "/none")
        XCTAssertEqual(r.status, 503, "\(r)")
        XCTAssertLessThan(r.seconds, 1)
        let retry = Int(r.retryAfter ?? "") ?? -1
        XCTAssertTrue((1...3).contains(retry), "Retry-After \(r.retryAfter ?? "nil") should count down to the ejection's end (3 s)")
        XCTAssertTrue(r.body.contains("no server of upstream web can take traffic"), r.body)
        let t0 = Date()
        var ok: Reply?
        Harness.waitFor(3 + Self.slack) {
            let x = self.get(h, "/again")
            if x.status == 200 { ok = x }
            return ok != nil
        }
        XCTAssertNotNil(ok, "no server came back after its ejection")
        print("PassiveHealthTests: all ejected; Retry-After \(retry); first 200 \(Self.format(Date().timeIntervalSince(t0))) s later")
    }

    // MARK: failure-aware p2c

    func testFailingServerLosesPicksButIsNotStarvedOnceItRecovers() throws {
        let list = try startBackends(["a", "b", "c"])
        let b = list[1]
        b.setMode("error")
        // Ejection practically off (100 failures): only the balancer's failure penalty acts.
        let h = try HuddleProcess(config: config(list, passive: "passive_health failures=100 ejection=30s on_5xx=on;"))
        var byBackend: [String: Int] = [:]
        for i in 0..<150 {
            let r = get(h, "/p2c/\(i)")
            byBackend[r.backend ?? "?", default: 0] += 1
        }
        print("PassiveHealthTests: 150 requests with b failing: \(byBackend.sorted { $0.key < $1.key })")
        XCTAssertGreaterThanOrEqual(byBackend["b"] ?? 0, 1, "b was never picked")
        XCTAssertLessThan(byBackend["b"] ?? 0, 150 / 6, "a failing server loses picks (a fair share is 50)")
        // b recovers: it must get traffic again without an ejection or a restart resetting anything.
        b.setMode("ok")
        var recovered: Double?
        let t0 = Date()
        Harness.waitFor(10) {
            if self.get(h, "/p2c-after").backend == "b" { recovered = Date().timeIntervalSince(t0) }
            return recovered != nil
        }
        XCTAssertNotNil(recovered, "b answers 200 again but gets no traffic: its failure streak starves it forever")
        print("PassiveHealthTests: recovered server picked again after \(recovered.map(Self.format) ?? "never") s")
    }
}
