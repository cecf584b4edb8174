// The queue in front of an upstream whose servers have `max_conns` (HAProxy's maxconn + queue): a request that finds
// every eligible server at its cap waits here, by priority (higher first, first in first out within a class), until a
// slot frees or `queue_timeout` passes.
//
// One waiting list per worker: a queued request belongs to its client connection, which never leaves its worker, so
// its list is touched by that worker's thread only (no lock per request). The cap itself is global (a server's
// in-flight count is one atomic, claimed by compare-and-swap). What crosses threads is the wake: a request that frees
// a slot on a capped server reads the upstream's waiter count, and when some worker has waiters it posts that worker
// one wake (`loop.execute`, at most one outstanding per worker and queue). A worker serves its own list at the end of
// the loop turn in which it was woken, and once a second regardless (servers coming back, a reload raising a cap).
//
// No waiter is stranded while a slot is free: a waiter adds itself to the counts (sequentially consistent) before its
// worker tries the servers again, and a releasing request lowers the in-flight count (sequentially consistent) before
// it reads the counts. Either the retry sees the free slot, or the release sees the waiter and wakes its worker.
import HuddleIO
import HuddleSync
import HuddleSys
import Synchronization

/// Something waiting in a worker's queue: a client connection, called on its own loop thread.
protocol QueueAdmittable: AnyObject {
    /// Tries to take a server now: true when the request left the queue (it went on to a server), false when it waits on.
    func admitFromQueue() -> Bool
}

/// One waiting request of a worker's list.
struct QueueEntry {
    let seq: UInt64
    let priority: Int
    /// A hash request with a group key waits for one server (its group's): one that cannot go yet does not hold back
    /// those behind it, which may wait for another server.
    let keyed: Bool
    // SAFETY: the entry is removed (by the waiter's `QueueTicket`) before the connection goes away.
    unowned(unsafe) let target: any QueueAdmittable
}

/// One worker's part of an upstream's queue.
// SAFETY: `entries`, `nextSeq` and `registered` are touched only on the owning worker's loop thread; `waiting` and
// `posted` are atomics; `wake` is behind its lock (taken when a wake is posted, never per request).
public final class WorkerQueue: @unchecked Sendable {
    /// Requests waiting on this worker (read by other workers' releases).
    let waiting = Atomic<Int>(0)
    /// A wake is posted and has not run yet: further releases post nothing.
    let posted = Atomic<Bool>(false)
    /// How to wake the worker: its loop and what to run there. Set the first time the worker queues a request here.
    let wake = Locked<(loop: EventLoop, serve: @Sendable () -> Void)?>(nil)
    var registered = false
    /// Highest priority first; first in first out within a priority.
    var entries: [QueueEntry] = []
    var nextSeq: UInt64 = 0

    /// Adds a waiter behind every waiter of its priority and higher ones; returns its sequence number.
    func insert(priority: Int, keyed: Bool, target: any QueueAdmittable) -> UInt64 {
        nextSeq += 1
        var i = entries.count
        while i > 0 && entries[i - 1].priority < priority { i -= 1 }
        entries.insert(QueueEntry(seq: nextSeq, priority: priority, keyed: keyed, target: target), at: i)
        return nextSeq
    }

    func remove(seq: UInt64) {
        if let i = entries.firstIndex(where: { $0.seq == seq }) { entries.remove(at: i) }
    }

    func contains(seq: UInt64) -> Bool { entries.contains { $0.seq == seq } }
}

/// An upstream's queue: one waiting list per worker and the figures /metrics shows. Kept across reloads by name.
public final class AdmissionQueue: Sendable {
    public let upstream: String
    let workers: [WorkerQueue]
    /// Requests waiting now, on every worker (huddle_queue_length).
    public let length = Atomic<Int>(0)
    /// Requests answered 503 after `queue_timeout` (huddle_queue_timeouts_total).
    public let timeouts = Atomic<Int>(0)
    /// Requests that waited, since start (served, timed out, or gone).
    public let queuedTotal = Atomic<Int>(0)
    /// How long each request that left the queue waited (huddle_queue_wait_seconds; the status classes are unused).
    public let waits: RequestStats

    init(upstream: String, workers: Int, shards: Int) {
        self.upstream = upstream
        self.workers = (0..<max(1, workers)).map { _ in WorkerQueue() }
        waits = RequestStats(shards: shards)
    }

    /// A request in flight on one of the upstream's capped servers ended (any thread). The in-flight count has just
    /// been lowered (sequentially consistent); wake each worker that has waiters, once until its wake runs.
    func slotFreed() {
        guard length.load(ordering: .sequentiallyConsistent) > 0 else { return }
        for w in workers where w.waiting.load(ordering: .sequentiallyConsistent) > 0 {
            if w.posted.exchange(true, ordering: .acquiringAndReleasing) { continue }
            if let target = w.wake.withLock({ $0 }) {
                target.loop.execute(target.serve)
            } else {
                w.posted.store(false, ordering: .relaxed)
            }
        }
    }
}

/// A request's place in its worker's queue (the exchange owns it). Dropping it (admitted, timed out, the client gone,
/// the connection closed by shutdown) removes the entry, lowers the counts and records the wait: exactly once.
struct QueueTicket: ~Copyable {
    let queue: AdmissionQueue
    let local: WorkerQueue
    let seq: UInt64
    let worker: Int
    let enteredNs: UInt64

    init(queue: AdmissionQueue, worker: Int, priority: Int, keyed: Bool, target: any QueueAdmittable) {
        self.queue = queue
        self.worker = worker
        local = queue.workers[worker]
        seq = local.insert(priority: priority, keyed: keyed, target: target)
        enteredNs = Sys.monotonicNs()
        // Before the worker tries the servers again (see the file comment).
        queue.length.add(1, ordering: .sequentiallyConsistent)
        local.waiting.add(1, ordering: .sequentiallyConsistent)
        queue.queuedTotal.add(1, ordering: .relaxed)
    }

    /// Milliseconds spent queued so far.
    var waitedMs: Int64 { Int64((Sys.monotonicNs() &- enteredNs) / 1_000_000) }

    deinit {
        local.remove(seq: seq)
        local.waiting.subtract(1, ordering: .relaxed)
        queue.length.subtract(1, ordering: .relaxed)
        queue.waits.record(worker: worker, status: 200, micros: Int64((Sys.monotonicNs() &- enteredNs) / 1000))
    }
}
