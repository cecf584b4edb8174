// The pure health rules, and passive ejection's bookkeeping across threads' reports.
@testable import HuddleHealth
import Synchronization
import XCTest

final class HealthRulesTests: XCTestCase {
    func testFallAndRise() {
        var c = ActiveCheckCounter(rise: 2, fall: 3, startDown: false)
        XCTAssertNil(c.record(success: false))
        XCTAssertNil(c.record(success: false))
        XCTAssertNil(c.record(success: true), "a success breaks the failure streak")
        XCTAssertNil(c.record(success: false))
        XCTAssertNil(c.record(success: false))
        XCTAssertEqual(c.record(success: false), true, "the third failure in a row takes it down")
        XCTAssertNil(c.record(success: false), "already down: no new transition")
        XCTAssertNil(c.record(success: true))
        XCTAssertNil(c.record(success: false), "a failure breaks the success streak")
        XCTAssertNil(c.record(success: true))
        XCTAssertEqual(c.record(success: true), false, "two successes in a row bring it back")
        XCTAssertFalse(c.down)
    }

    func testInitiallyUnhealthyNeedsRiseSuccesses() {
        var c = ActiveCheckCounter(rise: 3, fall: 1, startDown: true)
        XCTAssertNil(c.record(success: true))
        XCTAssertNil(c.record(success: true))
        XCTAssertEqual(c.record(success: true), false)
    }

    func testEjectionDurationsGrowAndAreCapped() {
        let p = EjectionPolicy(failures: 5, ejectionMs: 30_000, maxEjectedPercent: 50, countServerErrors: false)
        XCTAssertEqual(p.duration(ejection: 1), 30_000)
        XCTAssertEqual(p.duration(ejection: 3), 90_000)
        XCTAssertEqual(p.duration(ejection: 100), 300_000, "capped at 300 s")
        XCTAssertEqual(p.duration(ejection: Int.max), 300_000, "no overflow")
        XCTAssertEqual(EjectionPolicy(failures: 1, ejectionMs: 600_000, maxEjectedPercent: 10, countServerErrors: true).duration(ejection: 2), 600_000,
                       "the cap is never below one ejection")
        XCTAssertEqual(p.maxEjected(of: 4), 2)
        XCTAssertEqual(p.maxEjected(of: 3), 1, "rounded down")
        XCTAssertEqual(p.maxEjected(of: 1), 0, "50% of one server is none")
    }

    func testFlagsGiveTheStrongestState() {
        XCTAssertEqual(HealthFlags([]).state, .healthy)
        XCTAssertEqual(HealthFlags([.activeDown]).state, .unhealthy)
        XCTAssertEqual(HealthFlags([.activeDown, .ejected]).state, .ejected)
        XCTAssertEqual(HealthFlags([.ejected, .draining]).state, .draining)
        XCTAssertEqual(HealthFlags([.draining, .disabled]).state, .disabled)
        XCTAssertTrue(HealthFlags([.draining]).keepsGroups)
        XCTAssertFalse(HealthFlags([.draining, .ejected]).keepsGroups)
        XCTAssertFalse(HealthFlags([.activeDown]).keepsGroups)
        XCTAssertFalse(HealthFlags([.draining]).takesTraffic)
    }
}

final class PassiveEjectionTests: XCTestCase {
    final class Transitions: @unchecked Sendable {
        let lock = NSLock()
        var seen: [(String, ServerState, ServerState, String)] = []
        func add(_ s: ServerHealth, _ a: ServerState, _ b: ServerState, _ r: String) {
            lock.lock(); seen.append((s.serverName, a, b, r)); lock.unlock()
        }
    }

    func makeUpstream(_ n: Int, policy: EjectionPolicy, log: Transitions) -> [ServerHealth] {
        let servers = (0..<n).map { i in ServerHealth(upstream: "u", server: "s\(i)", initial: [], nowWallMs: 0, observer: { log.add($0, $1, $2, $3) }) }
        UpstreamHealth(onRefused: { _ in }).configure(members: servers, policy: policy)
        return servers
    }

    func testFailuresInARowEjectAndTheEjectionEnds() {
        let log = Transitions()
        let s = makeUpstream(2, policy: EjectionPolicy(failures: 3, ejectionMs: 1000, maxEjectedPercent: 50, countServerErrors: false), log: log)
        s[0].recordFailure(cause: "reset", nowMs: 0, nowWallMs: 0)
        s[0].recordFailure(cause: "reset", nowMs: 0, nowWallMs: 0)
        s[0].recordSuccess()
        s[0].recordFailure(cause: "reset", nowMs: 0, nowWallMs: 0)
        s[0].recordFailure(cause: "reset", nowMs: 0, nowWallMs: 0)
        XCTAssertEqual(s[0].state, .healthy, "a success broke the streak")
        s[0].recordFailure(cause: "timeout", nowMs: 100, nowWallMs: 100)
        XCTAssertEqual(s[0].state, .ejected)
        XCTAssertEqual(s[0].ejectedUntil, 1100)
        XCTAssertTrue(log.seen.last?.3.contains("3 failures in a row (last: timeout)") ?? false, "\(log.seen)")
        XCTAssertFalse(s[0].endEjectionIfDue(nowMs: 1099, nowWallMs: 0))
        XCTAssertTrue(s[0].endEjectionIfDue(nowMs: 1100, nowWallMs: 0))
        XCTAssertEqual(s[0].state, .healthy)
        // The second ejection lasts twice as long.
        for _ in 0..<3 { s[0].recordFailure(cause: "reset", nowMs: 2000, nowWallMs: 0) }
        XCTAssertEqual(s[0].ejectedUntil, 4000)
        XCTAssertEqual(s[0].transitions(to: .ejected), 2)
        XCTAssertEqual(s[0].transitions(to: .healthy), 1)
    }

    func testMaxEjectedHoldsUnderConcurrentReports() {
        let log = Transitions()
        let policy = EjectionPolicy(failures: 2, ejectionMs: 60_000, maxEjectedPercent: 50, countServerErrors: false)
        let s = makeUpstream(6, policy: policy, log: log)
        // Six threads report failures for all six servers at once.
        DispatchQueue.concurrentPerform(iterations: 6) { t in
            for k in 0..<200 { s[(t + k) % 6].recordFailure(cause: "x", nowMs: 0, nowWallMs: 0) }
        }
        XCTAssertEqual(s.filter { $0.state == .ejected }.count, 3, "50% of 6")
        XCTAssertEqual(s.map { $0.transitions(to: .ejected) }.reduce(0, +), 3, "each ejection happened once")
    }

    func testAnActiveCheckDoesNotEndAnEjection() {
        let log = Transitions()
        let s = makeUpstream(2, policy: EjectionPolicy(failures: 1, ejectionMs: 10_000, maxEjectedPercent: 50, countServerErrors: false), log: log)
        s[0].recordFailure(cause: "reset", nowMs: 0, nowWallMs: 0)
        XCTAssertEqual(s[0].state, .ejected)
        s[0].update(clear: .activeDown, reason: "probe passed", nowWallMs: 0)
        XCTAssertEqual(s[0].state, .ejected, "ejected stays ejected until its time is over")
        s[0].update(set: .activeDown, reason: "probe failed", nowWallMs: 0)
        XCTAssertTrue(s[0].endEjectionIfDue(nowMs: 10_000, nowWallMs: 0))
        XCTAssertEqual(s[0].state, .unhealthy, "the active check's verdict shows once the ejection is over")
    }
}

final class FailurePenaltyTests: XCTestCase {
    func testPenaltyGrowsWithTheStreakAndFadesAfterTheLastFailure() {
        let s = ServerHealth(upstream: "u", server: "s", initial: [], nowWallMs: 0, observer: { _, _, _, _ in })
        XCTAssertEqual(s.failurePenalty(nowMs: 0), 0)
        s.recordFailure(cause: "x", nowMs: 1000, nowWallMs: 0)
        XCTAssertEqual(s.failurePenalty(nowMs: 1000), 4)
        s.recordFailure(cause: "x", nowMs: 1000, nowWallMs: 0)
        XCTAssertEqual(s.failurePenalty(nowMs: 1000), 8)
        XCTAssertEqual(s.failurePenalty(nowMs: 1499), 8)
        XCTAssertEqual(s.failurePenalty(nowMs: 1500), 4, "halved after 500 ms")
        XCTAssertEqual(s.failurePenalty(nowMs: 2000), 2)
        XCTAssertEqual(s.failurePenalty(nowMs: 3000), 0, "gone: the server is tried again")
        for _ in 0..<100 { s.recordFailure(cause: "x", nowMs: 5000, nowWallMs: 0) }
        XCTAssertEqual(s.failurePenalty(nowMs: 5000), 64, "capped at 16 failures")
        XCTAssertEqual(s.failurePenalty(nowMs: 8499), 1)
        XCTAssertEqual(s.failurePenalty(nowMs: 8500), 0, "at most 3.5 s")
        s.recordFailure(cause: "x", nowMs: 9000, nowWallMs: 0)
        XCTAssertEqual(s.failurePenalty(nowMs: 9000), 64, "a new failure brings the whole streak back")
        s.recordSuccess()
        XCTAssertEqual(s.failurePenalty(nowMs: 9000), 0, "a success ends the streak")
    }
}
