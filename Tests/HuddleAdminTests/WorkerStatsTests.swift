// Workers' published figures: staleness by age, whole publications under concurrent reads, the drain event.
import Glibc
import Synchronization
@testable import HuddleProxy
import XCTest

final class WorkerStatsTests: XCTestCase {
    func testAgeAndStaleness() {
        let f = WorkerFigures(sessions: 5)
        let fresh = WorkerStats(worker: 1, figures: f, publishedAtMs: 1_000, nowMs: 1_000 + WorkerStats.staleAfterMs)
        XCTAssertFalse(fresh.stale)
        XCTAssertEqual(fresh.ageMs, WorkerStats.staleAfterMs)
        let old = WorkerStats(worker: 1, figures: f, publishedAtMs: 1_000, nowMs: 1_001 + WorkerStats.staleAfterMs)
        XCTAssertTrue(old.stale)
        XCTAssertEqual(old.figures, f, "a stale worker keeps its last figures")
        // A reader whose clock reading is a hair older than the publication sees age 0, not a negative one.
        XCTAssertEqual(WorkerStats(worker: 0, figures: f, publishedAtMs: 50, nowMs: 49).ageMs, 0)
    }

    func testPublishThenRead() {
        let slot = WorkerStatsSlot()
        let f = WorkerFigures(sessions: 1, tunnels: 2, upstreamConnections: 3, buffersInUse: 4, buffersCached: 5, pipesInUse: 6, pipesCached: 7,
                              gzipStreamsInUse: 8, gzipStreamsCached: 9)
        slot.publish(f, atMs: 1234, shuttingDown: false)
        let r = slot.read()
        XCTAssertEqual(r.figures, f)
        XCTAssertEqual(r.publishedAtMs, 1234)
    }

    func testDrainEventOnlyWhenShuttingDownWithNoSession() {
        let slot = WorkerStatsSlot()
        slot.publish(WorkerFigures(sessions: 0), atMs: 1, shuttingDown: false)
        XCTAssertFalse(slot.drained.isSignalled, "not shutting down")
        slot.publish(WorkerFigures(sessions: 2), atMs: 2, shuttingDown: true)
        XCTAssertFalse(slot.drained.isSignalled, "sessions still open")
        XCTAssertFalse(slot.drained.wait(timeoutMs: 20))
        slot.publish(WorkerFigures(sessions: 0), atMs: 3, shuttingDown: true)
        XCTAssertTrue(slot.drained.isSignalled)
        XCTAssertTrue(slot.drained.wait(timeoutMs: 0))
    }

    /// A writer thread publishes figures whose fields all equal a counter; readers on this thread must never see a
    /// mix of two publications, and the counter never goes back.
    func testConcurrentReadsSeeWholePublications() {
        final class Box: @unchecked Sendable {
            let slot = WorkerStatsSlot()
            let stop = Atomic<Bool>(false)
        }
        let box = Box()
        var thread = pthread_t()
        let started = pthread_create(&thread, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            var k = 0
            while !box.stop.load(ordering: .relaxed) {
                k += 1
                box.slot.publish(WorkerFigures(sessions: k, tunnels: k, upstreamConnections: k, buffersInUse: k, buffersCached: k,
                                               pipesInUse: k, pipesCached: k, gzipStreamsInUse: k, gzipStreamsCached: k),
                                  atMs: Int64(k), shuttingDown: false)
            }
            return nil
        }, Unmanaged.passRetained(box).toOpaque())
        XCTAssertEqual(started, 0)
        var last = 0
        var torn = 0
        for _ in 0..<200_000 {
            let r = box.slot.read()
            let f = r.figures
            let all = [f.tunnels, f.upstreamConnections, f.buffersInUse, f.buffersCached, f.pipesInUse, f.pipesCached,
                       f.gzipStreamsInUse, f.gzipStreamsCached, Int(r.publishedAtMs)]
            if all.contains(where: { $0 != f.sessions }) { torn += 1 }
            XCTAssertGreaterThanOrEqual(f.sessions, last)
            last = f.sessions
        }
        box.stop.store(true, ordering: .relaxed)
        pthread_join(thread, nil)
        XCTAssertEqual(torn, 0, "reads that mixed two publications")
        XCTAssertGreaterThan(last, 0)
    }
}
