// What each worker publishes about itself for the admin port and for shutdown: written by its own loop thread at
// the end of every loop turn, read by any thread without waiting for the worker.
import Glibc
import HuddleSync
import Synchronization

/// One worker's gauges at one moment, as its loop thread saw them.
public struct WorkerFigures: Sendable, Equatable {
    /// Open client connections (tunnels included).
    public var sessions = 0
    /// Open upgraded (WebSocket) tunnels.
    public var tunnels = 0
    /// Open backend connections, pooled idle ones included.
    public var upstreamConnections = 0
    /// Pooled I/O buffers currently lent out (an idle connection or tunnel holds none); gzip's 64 KiB ones included.
    public var buffersInUse = 0
    public var buffersCached = 0
    /// Splice pipes currently lent out (an idle tunnel holds none).
    public var pipesInUse = 0
    public var pipesCached = 0
    /// zlib deflate streams lent to responses being compressed (0 at rest), and reset ones kept for reuse.
    public var gzipStreamsInUse = 0
    public var gzipStreamsCached = 0
    /// Cache: stored entries being sent (or kept for stale-if-error), requests waiting for a collapsed fill, fills led
    /// (backend requests others may wait on), responses being stored as they arrive. All 0 at rest.
    public var cacheReads = 0
    public var cacheWaiters = 0
    public var cacheLeads = 0
    public var cacheFills = 0

    public init(sessions: Int = 0, tunnels: Int = 0, upstreamConnections: Int = 0, buffersInUse: Int = 0,
                buffersCached: Int = 0, pipesInUse: Int = 0, pipesCached: Int = 0, gzipStreamsInUse: Int = 0,
                gzipStreamsCached: Int = 0, cacheReads: Int = 0, cacheWaiters: Int = 0, cacheLeads: Int = 0, cacheFills: Int = 0) {
        self.sessions = sessions
        self.tunnels = tunnels
        self.upstreamConnections = upstreamConnections
        self.buffersInUse = buffersInUse
        self.buffersCached = buffersCached
        self.pipesInUse = pipesInUse
        self.pipesCached = pipesCached
        self.gzipStreamsInUse = gzipStreamsInUse
        self.gzipStreamsCached = gzipStreamsCached
        self.cacheReads = cacheReads
        self.cacheWaiters = cacheWaiters
        self.cacheLeads = cacheLeads
        self.cacheFills = cacheFills
    }
}

/// A worker's last published figures and how old they are.
public struct WorkerStats: Sendable, Equatable {
    /// A worker publishes at the end of every loop turn, and an idle one still turns once a second (its housekeeping
    /// timer): figures older than this mean its loop is stuck (or the machine starved it) for over a second.
    public static let staleAfterMs: Int64 = 2000

    public var worker: Int
    /// The last figures the worker published: never made up, even when stale.
    public var figures: WorkerFigures
    /// Its loop's monotonic time (ms) when it published them.
    public var publishedAtMs: Int64
    /// How old the figures were when read (never negative).
    public var ageMs: Int64
    /// `ageMs > staleAfterMs`.
    public var stale: Bool

    public init(worker: Int, figures: WorkerFigures, publishedAtMs: Int64, nowMs: Int64) {
        self.worker = worker
        self.figures = figures
        self.publishedAtMs = publishedAtMs
        ageMs = max(0, nowMs - publishedAtMs)
        stale = ageMs > Self.staleAfterMs
    }
}

/// 128 bytes: with this much on each side, the published fields share no cache line (nor the adjacent line that
/// the spatial prefetcher pairs with it) with another object or with this object's reference count.
typealias CacheLinePadding = (Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64,
                              Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64)

/// One publication's fields, each a relaxed atomic.
struct PublishedFigures: ~Copyable, Sendable {
    let atMs = Atomic<Int64>(0)
    let sessions = Atomic<Int>(0)
    let tunnels = Atomic<Int>(0)
    let upstreamConnections = Atomic<Int>(0)
    let buffersInUse = Atomic<Int>(0)
    let buffersCached = Atomic<Int>(0)
    let pipesInUse = Atomic<Int>(0)
    let pipesCached = Atomic<Int>(0)
    let gzipStreamsInUse = Atomic<Int>(0)
    let gzipStreamsCached = Atomic<Int>(0)
    let cacheReads = Atomic<Int>(0)
    let cacheWaiters = Atomic<Int>(0)
    let cacheLeads = Atomic<Int>(0)
    let cacheFills = Atomic<Int>(0)

    func store(_ f: WorkerFigures, atMs t: Int64) {
        atMs.store(t, ordering: .relaxed)
        sessions.store(f.sessions, ordering: .relaxed)
        tunnels.store(f.tunnels, ordering: .relaxed)
        upstreamConnections.store(f.upstreamConnections, ordering: .relaxed)
        buffersInUse.store(f.buffersInUse, ordering: .relaxed)
        buffersCached.store(f.buffersCached, ordering: .relaxed)
        pipesInUse.store(f.pipesInUse, ordering: .relaxed)
        pipesCached.store(f.pipesCached, ordering: .relaxed)
        gzipStreamsInUse.store(f.gzipStreamsInUse, ordering: .relaxed)
        gzipStreamsCached.store(f.gzipStreamsCached, ordering: .relaxed)
        cacheReads.store(f.cacheReads, ordering: .relaxed)
        cacheWaiters.store(f.cacheWaiters, ordering: .relaxed)
        cacheLeads.store(f.cacheLeads, ordering: .relaxed)
        cacheFills.store(f.cacheFills, ordering: .relaxed)
    }

    func load() -> (figures: WorkerFigures, publishedAtMs: Int64) {
        (WorkerFigures(sessions: sessions.load(ordering: .relaxed), tunnels: tunnels.load(ordering: .relaxed),
                       upstreamConnections: upstreamConnections.load(ordering: .relaxed),
                       buffersInUse: buffersInUse.load(ordering: .relaxed), buffersCached: buffersCached.load(ordering: .relaxed),
                       pipesInUse: pipesInUse.load(ordering: .relaxed), pipesCached: pipesCached.load(ordering: .relaxed),
                       gzipStreamsInUse: gzipStreamsInUse.load(ordering: .relaxed),
                       gzipStreamsCached: gzipStreamsCached.load(ordering: .relaxed),
                       cacheReads: cacheReads.load(ordering: .relaxed), cacheWaiters: cacheWaiters.load(ordering: .relaxed),
                       cacheLeads: cacheLeads.load(ordering: .relaxed), cacheFills: cacheFills.load(ordering: .relaxed)),
         atMs.load(ordering: .relaxed))
    }
}

/// One worker's published figures: a sequence-counted pair of copies (the "latch" form of a seqlock, as in Linux's
/// `write_seqcount_latch`), so a reader never waits for the writer, even one preempted halfway through publishing.
///
/// Writer (the worker's loop thread, and only it), per publication: `sequence` goes odd (release: the previous
/// publication's writes to copy 1 come before it), a release fence, copy 0 is stored (relaxed); `sequence` goes
/// even (release), a release fence, copy 1 is stored. Readers take copy 1 while `sequence` is odd and copy 0 while
/// it is even, which is never the copy being written: `sequence` loaded with acquire, the copy loaded relaxed, an
/// acquire fence, `sequence` loaded again; unchanged means the copy is one whole publication. It changes only while
/// the writer is running, so a retry succeeds at once; a bounded number of tries guards against a writer
/// publishing faster than a reader reads (then the fields as loaded are returned, each a value it did publish).
final class WorkerStatsSlot: Sendable {
    private let paddingBefore: CacheLinePadding = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    private let sequence = Atomic<UInt64>(0)
    private let copy0 = PublishedFigures()
    private let copy1 = PublishedFigures()
    /// Writer-side only: the drain event was signalled (relaxed; an atomic only so the class stays Sendable).
    private let drainSignalled = Atomic<Bool>(false)
    private let paddingAfter: CacheLinePadding = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    /// Set once the worker, shutting down, has no client connection left: `Proxy.shutdown` waits on it.
    let drained = OneShotEvent()

    /// Publishes `f` taken at loop time `atMs`. On the owning worker's loop thread only.
    func publish(_ f: WorkerFigures, atMs: Int64, shuttingDown: Bool) {
        let s = sequence.load(ordering: .relaxed)
        sequence.store(s &+ 1, ordering: .releasing)
        atomicMemoryFence(ordering: .releasing)
        copy0.store(f, atMs: atMs)
        sequence.store(s &+ 2, ordering: .releasing)
        atomicMemoryFence(ordering: .releasing)
        copy1.store(f, atMs: atMs)
        if shuttingDown && f.sessions == 0 && !drainSignalled.load(ordering: .relaxed) {
            drainSignalled.store(true, ordering: .relaxed)
            drained.signal()
        }
    }

    /// The last whole publication; from any thread, never blocks on the writer (it retries while a publication is
    /// being written, which takes nanoseconds).
    func read() -> (figures: WorkerFigures, publishedAtMs: Int64) {
        var tries = 0
        while true {
            let s1 = sequence.load(ordering: .acquiring)
            let r = s1 & 1 == 0 ? copy0.load() : copy1.load()
            atomicMemoryFence(ordering: .acquiring)
            let s2 = sequence.load(ordering: .relaxed)
            if s1 == s2 { return r }
            // The writer published meanwhile (once per loop turn in a worker, so this is rare). Never hand out a mix
            // of two publications: try again, and after many tries let the writer's thread run first.
            tries += 1
            if tries >= 64 { sched_yield() }
        }
    }
}
