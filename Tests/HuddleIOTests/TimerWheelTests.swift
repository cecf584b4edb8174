// The timer wheel driven by hand-picked clock values: order, cancel, re-arm, callbacks that touch other nodes.
@testable import HuddleIO
import XCTest

private final class Probe: TimerNode {
    let name: String
    var log: (String) -> Void
    var action: (() -> Void)?
    init(_ name: String, log: @escaping (String) -> Void) {
        self.name = name
        self.log = log
    }
    override func timerFired(now: Int64) {
        log(name)
        action?()
    }
}

final class TimerWheelTests: XCTestCase {
    private var fired: [String] = []
    private func probe(_ name: String) -> Probe { Probe(name) { [unowned self] in self.fired.append($0) } }

    func testTimersFireInDeadlineOrder() {
        let wheel = TimerWheel(now: 1000)
        let deadlines: [(String, Int64)] = [("c", 1090), ("a", 1020), ("d", 1350), ("b", 1045)]
        let probes = deadlines.map { (probe($0.0), $0.1) }
        for (p, d) in probes { wheel.schedule(p, at: d) }
        XCTAssertEqual(wheel.count, 4)
        wheel.advance(to: 1100)
        XCTAssertEqual(fired, ["a", "b", "c"])
        wheel.advance(to: 2000)
        XCTAssertEqual(fired, ["a", "b", "c", "d"])
        XCTAssertTrue(wheel.isEmpty)
    }

    func testATimerVisitedBeforeItsDeadlineFiresOnTheNextTick() {
        // Due at 1015, inside tick 101. The wheel reaches tick 101 at 1012, too early; it must fire at the next
        // advance, not a whole lap (10 s) later.
        let wheel = TimerWheel(now: 1000)
        let p = probe("p")
        wheel.schedule(p, at: 1015)
        wheel.advance(to: 1012)
        XCTAssertEqual(fired, [], "not before its deadline")
        wheel.advance(to: 1020)
        XCTAssertEqual(fired, ["p"])
    }

    func testDeadlinesBeyondOneLapWaitForTheirTime() {
        let wheel = TimerWheel(now: 0)
        let p = probe("far")
        wheel.schedule(p, at: 25_000)   // more than 1024 ticks of 10 ms ahead
        wheel.advance(to: 10_240)
        wheel.advance(to: 15_000)
        XCTAssertEqual(fired, [])
        wheel.advance(to: 25_000)
        XCTAssertEqual(fired, ["far"])
    }

    func testCancelledTimerDoesNotFire() {
        let wheel = TimerWheel(now: 0)
        let p = probe("p")
        wheel.schedule(p, at: 50)
        XCTAssertTrue(p.isArmed)
        wheel.cancel(p)
        XCTAssertFalse(p.isArmed)
        XCTAssertEqual(wheel.count, 0)
        wheel.advance(to: 1000)
        XCTAssertEqual(fired, [])
        wheel.cancel(p)   // cancelling twice is harmless
        XCTAssertEqual(wheel.count, 0)
    }

    func testRearmMovesTheTimer() {
        let wheel = TimerWheel(now: 0)
        let p = probe("p")
        wheel.schedule(p, at: 30)
        wheel.schedule(p, at: 80)
        XCTAssertEqual(wheel.count, 1, "re-arming moves, it does not add")
        wheel.advance(to: 50)
        XCTAssertEqual(fired, [])
        wheel.advance(to: 90)
        XCTAssertEqual(fired, ["p"])
        wheel.advance(to: 500)
        XCTAssertEqual(fired, ["p"], "fires once")
    }

    func testCallbackCancellingAnotherDueNodeDoesNotSkipOthers() {
        let wheel = TimerWheel(now: 0)
        let a = probe("a"), b = probe("b"), c = probe("c"), d = probe("d")
        // All four are due in the same advance; a and b share a slot.
        wheel.schedule(a, at: 20)
        wheel.schedule(b, at: 20)
        wheel.schedule(c, at: 40)
        wheel.schedule(d, at: 60)
        a.action = { wheel.cancel(b); wheel.cancel(c) }
        b.action = { wheel.cancel(a); wheel.cancel(c) }
        wheel.advance(to: 100)
        XCTAssertEqual(fired.count, 2, "exactly one of a/b fires, then d: \(fired)")
        XCTAssertTrue(fired.first == "a" || fired.first == "b")
        XCTAssertEqual(fired.last, "d")
        XCTAssertTrue(wheel.isEmpty)
    }

    func testCallbackRearmingItselfFiresAgainLater() {
        let wheel = TimerWheel(now: 0)
        let p = probe("p")
        var rounds = 0
        p.action = {
            rounds += 1
            if rounds < 3 { wheel.schedule(p, at: Int64(rounds) * 100 + 50) }
        }
        wheel.schedule(p, at: 50)
        wheel.advance(to: 60)
        wheel.advance(to: 160)
        wheel.advance(to: 260)
        wheel.advance(to: 1000)
        XCTAssertEqual(rounds, 3)
    }

    func testLoopFiresScheduledTimer() throws {
        let loop = try EventLoop(id: 0)
        let p = probe("p")
        loop.timers.schedule(p, at: loop.now + 20)
        XCTAssertTrue(runLoop(loop) { fired == ["p"] })
    }
}
