// The epoll loop against real descriptors: readiness, edge-triggered writes, cross-thread execute, stale events.
import Glibc
import HuddleIO
import HuddleSys
import Synchronization
import XCTest

final class EventLoopTests: XCTestCase {
    func testLoopWakesWhenSocketpairBecomesReadable() throws {
        let loop = try EventLoop(id: 0)
        let (a, b) = makeSocketPair()
        defer { Sys.close(a); Sys.close(b) }
        var received: [UInt8] = []
        let h = RecordingHandler()
        h.onEvent = { events in
            guard events & Events.readable != 0 else { return }
            var buf = [UInt8](repeating: 0, count: 64)
            while case .done(let n) = try! buf.withUnsafeMutableBytes({ (p) throws(Errno) in try Sys.read(a, p.baseAddress!, p.count) }), n > 0 {
                received += buf[0..<n]
            }
        }
        let reg = try loop.register(fd: a, events: Events.readable | Events.edgeTriggered, handler: h)
        loop.runOnce(maxWaitMs: 0)
        XCTAssertEqual(h.count(Events.readable), 0, "nothing was written yet")
        writeAll(b, Array("ping".utf8))
        XCTAssertTrue(runLoop(loop) { received.count == 4 })
        XCTAssertEqual(received, Array("ping".utf8))
        loop.deregister(fd: a, registration: reg)
    }

    /// runNextTurn: the handler runs once in the next turn (with no events), that turn does not wait for I/O, and a
    /// handler that queues itself again runs in the turn after, not in a loop within one turn.
    func testRunNextTurnRunsTheHandlerNextTurnWithoutWaiting() throws {
        let loop = try EventLoop(id: 0)
        let h = RecordingHandler()
        var again = 2
        h.onEvent = { _ in
            if again > 0 {
                again -= 1
                loop.runNextTurn(h)
            }
        }
        loop.runNextTurn(h)
        XCTAssertEqual(h.events, [], "not before the next turn")
        let start = Sys.monotonicMs()
        loop.runOnce(maxWaitMs: 2000)
        XCTAssertEqual(h.events, [0], "once, with no events")
        loop.runOnce(maxWaitMs: 2000)
        loop.runOnce(maxWaitMs: 2000)
        XCTAssertEqual(h.events, [0, 0, 0], "queued again from the handler: one run per turn")
        XCTAssertLessThan(Sys.monotonicMs() - start, 1000, "no turn waited while a handler was queued")
    }

    func testWriteReadinessIsEdgeTriggered() throws {
        let loop = try EventLoop(id: 0)
        let (a, b) = makeSocketPair()
        defer { Sys.close(a); Sys.close(b) }
        let h = RecordingHandler()
        _ = try loop.register(fd: a, handler: h)
        XCTAssertTrue(runLoop(loop) { h.count(Events.writable) == 1 }, "a fresh socket is writable once")
        // Fill the send buffer until the kernel refuses more.
        let chunk = [UInt8](repeating: 7, count: 65536)
        var written = 0
        while case .done(let n) = try chunk.withUnsafeBytes({ (p) throws(Errno) in try Sys.write(a, p.baseAddress!, p.count) }) {
            written += n
        }
        XCTAssertGreaterThan(written, 0)
        for _ in 0..<3 { loop.runOnce(maxWaitMs: 0) }
        XCTAssertEqual(h.count(Events.writable), 1, "no new writable edge while the buffer stays full")
        // Drain the peer: space opens up and exactly then a new edge arrives.
        var buf = [UInt8](repeating: 0, count: 65536)
        var drained = 0
        while drained < written {
            let r = try buf.withUnsafeMutableBytes { (p) throws(Errno) in try Sys.read(b, p.baseAddress!, p.count) }
            guard case .done(let n) = r, n > 0 else { break }
            drained += n
        }
        XCTAssertEqual(drained, written)
        XCTAssertTrue(runLoop(loop) { h.count(Events.writable) == 2 })
    }

    func testExecuteFromOtherThreadsRunsEveryTaskOnTheLoopInOrder() throws {
        let loop = try EventLoop(id: 0)
        let loopThread = Atomic<UInt>(0)
        let ran = Atomic<Int>(0)
        let wrongThread = Atomic<Int>(0)
        let outOfOrder = Atomic<Int>(0)
        let thread = LoopThread.spawn(name: "test-loop") {
            loopThread.store(UInt(pthread_self()), ordering: .releasing)
            loop.run()
        }
        XCTAssertTrue(waitFor("the loop thread") { loopThread.load(ordering: .acquiring) != 0 })
        let producers = 4, perProducer = 2000
        // Each producer's tasks must run in the order it submitted them.
        let lastSeen = Mutex<[Int]>(Array(repeating: -1, count: producers))
        let submitters = (0..<producers).map { p in
            LoopThread.spawn(name: "test-prod") {
                for i in 0..<perProducer {
                    loop.execute {
                        if UInt(pthread_self()) != loopThread.load(ordering: .acquiring) { wrongThread.wrappingAdd(1, ordering: .relaxed) }
                        lastSeen.withLock { s in
                            if s[p] != i - 1 { outOfOrder.wrappingAdd(1, ordering: .relaxed) }
                            s[p] = i
                        }
                        ran.wrappingAdd(1, ordering: .relaxed)
                    }
                }
            }
        }
        for t in submitters { LoopThread.join(t) }
        XCTAssertTrue(waitFor("all tasks") { ran.load(ordering: .relaxed) == producers * perProducer })
        loop.stop()
        LoopThread.join(thread)
        XCTAssertEqual(ran.load(ordering: .relaxed), producers * perProducer)
        XCTAssertEqual(wrongThread.load(ordering: .relaxed), 0)
        XCTAssertEqual(outOfOrder.load(ordering: .relaxed), 0)
    }

    func testRegistrationGenerationsDropStaleEvents() throws {
        let loop = try EventLoop(id: 0)
        let (a1, b1) = makeSocketPair()
        let (a2, b2) = makeSocketPair()
        let (quiet, quietPeer) = makeSocketPair()
        defer { for fd in [a1, b1, a2, b2, quiet, quietPeer] { Sys.close(fd) } }
        let first = RecordingHandler(), second = RecordingHandler(), newcomer = RecordingHandler()
        var regs: [Registration] = [.none, .none]
        var newcomerReg = Registration.none
        // Both become readable in the same epoll batch. Whichever runs first deregisters the other and registers
        // a newcomer that reuses the freed slot: the other's event, already fetched, must reach neither.
        func takeOver(_ me: Int) {
            guard newcomerReg == .none else { return }
            let other = 1 - me
            loop.deregister(fd: other == 0 ? a1 : a2, registration: regs[other])
            newcomerReg = try! loop.register(fd: quiet, events: Events.readable | Events.edgeTriggered, handler: newcomer)
            XCTAssertEqual(newcomerReg.slot, regs[other].slot, "the freed slot is reused")
            XCTAssertNotEqual(newcomerReg.generation, regs[other].generation)
        }
        first.onEvent = { _ in takeOver(0) }
        second.onEvent = { _ in takeOver(1) }
        regs[0] = try loop.register(fd: a1, events: Events.readable | Events.edgeTriggered, handler: first)
        regs[1] = try loop.register(fd: a2, events: Events.readable | Events.edgeTriggered, handler: second)
        writeAll(b1, [1])
        writeAll(b2, [2])
        XCTAssertTrue(runLoop(loop) { newcomerReg != .none })
        for _ in 0..<3 { loop.runOnce(maxWaitMs: 0) }
        XCTAssertEqual(first.events.count + second.events.count, 1, "the deregistered handler got no stale event")
        XCTAssertEqual(newcomer.events.count, 0, "the slot's new owner got no stale event")
        XCTAssertEqual(loop.registrationCount, 2)
    }
}
