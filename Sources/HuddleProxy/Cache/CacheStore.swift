// The stored responses of one cached route (or, with `shared=off`, of one route on one worker): a sharded hash index
// from URL to the response's variants, an LRU list per shard, a memory bound for the whole store, and the fills in
// progress that identical requests wait on (collapsed forwarding).
//
// Threads: any worker may look up, insert, purge or evict; each shard is guarded by its own pthread mutex, held only
// for the index and list operations, never across I/O or a call into a connection. Entries are immutable once stored
// and reference-counted: a worker sending one keeps it alive after it is evicted or purged (its memory goes when the
// last sender drops it). Waiters are woken on their own worker's loop through `EventLoop.execute`.
import Glibc
import HuddleBalancing
import HuddleHTTP
import HuddleIO
import Synchronization

/// A pthread mutex taken with an inlined lock/unlock (the hit path takes one per request).
// SAFETY: the mutex is initialised once and destroyed in deinit; pthread mutexes are thread-safe.
final class ShardLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        let rc = pthread_mutex_init(mutex, nil)
        precondition(rc == 0, "pthread_mutex_init failed: \(rc)")
    }
    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }
    @inline(__always) func lock() { pthread_mutex_lock(mutex) }
    @inline(__always) func unlock() { pthread_mutex_unlock(mutex) }
}

/// One stored response: its heads and body in exactly-sized allocations, immutable once stored. The LRU links and
/// `node` are the store's bookkeeping, touched only under the shard's lock.
// SAFETY: the content fields are immutable after init; the mutable fields are read and written only while holding the
// lock of the shard the entry is (or was) in.
final class CacheEntry: @unchecked Sendable {
    /// `HTTP/1.1 200 OK\r\n` + the stored fields + `Content-Length: N\r\n` (no final empty line).
    let head: UnsafeMutableRawPointer
    let headLength: Int
    /// The 304 head (status line, Cache-Control, Content-Location, Date, ETag, Expires, Vary), after `head` in the
    /// same allocation.
    let notModifiedLength: Int
    let body: UnsafeMutableRawPointer?
    let bodyLength: Int
    let status: Int
    let freshness: CacheFreshness
    /// The entity tag's bytes (in `head`), and Last-Modified (Unix seconds), for conditional requests.
    let etag: Range<Int>?
    let lastModified: Int64?
    /// The request header values the response varied on (CacheVary encoding); empty without Vary.
    let variantKey: [UInt8]
    /// What this entry counts against the store's size.
    let charge: Int

    // Bookkeeping (shard lock).
    var node: CacheKeyNode?
    unowned(unsafe) var newer: CacheEntry?
    unowned(unsafe) var older: CacheEntry?
    var lastUseMs: Int64 = 0
    var linked = false

    /// Fixed bytes counted per entry besides its heads, body and keys: the entry object, its index node's share, the
    /// variant array slot (an estimate, so many tiny entries cannot exceed the bound).
    static let overhead = 256

    /// Takes ownership of `head` (heads, exactly sized) and `body` (exactly sized, or nil for an empty body), both from
    /// malloc.
    init(head: UnsafeMutableRawPointer, headLength: Int, notModifiedLength: Int, body: UnsafeMutableRawPointer?, bodyLength: Int,
         status: Int, freshness: CacheFreshness, etag: Range<Int>?, lastModified: Int64?, variantKey: [UInt8], keyLength: Int) {
        self.head = head
        self.headLength = headLength
        self.notModifiedLength = notModifiedLength
        self.body = body
        self.bodyLength = bodyLength
        self.status = status
        self.freshness = freshness
        self.etag = etag
        self.lastModified = lastModified
        self.variantKey = variantKey
        charge = headLength + notModifiedLength + bodyLength + variantKey.count + keyLength + Self.overhead
    }

    deinit {
        free(head)
        free(body)
    }

    var headBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: head, count: headLength) }
    var notModifiedBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: head + headLength, count: notModifiedLength) }
    var etagBytes: UnsafeRawBufferPointer? { etag.map { UnsafeRawBufferPointer(start: head + $0.lowerBound, count: $0.count) } }
}

/// One URL (path and query) of the store: the variants stored for it and the fill in progress.
// SAFETY: every field is touched only under its shard's lock.
final class CacheKeyNode: @unchecked Sendable {
    let hash: UInt64
    let key: [UInt8]
    /// The Vary field names of the stored variants (lower-case, sorted); a response with other names replaces them all.
    var varyNames: [[UInt8]] = []
    var variants: [CacheEntry] = []
    /// The fill identical requests wait on.
    var fill: PendingFill?
    /// The next node whose key has the same 64-bit hash.
    var nextInChain: CacheKeyNode?

    init(hash: UInt64, key: [UInt8]) {
        self.hash = hash
        self.key = key
    }

    @inline(__always) func matches(_ k: UnsafeRawBufferPointer) -> Bool {
        key.count == k.count && key.withUnsafeBytes { memcmp($0.baseAddress!, k.baseAddress!, k.count) == 0 }
    }
}

/// How a fill ended, as its waiters learn it.
enum CacheFillOutcome: Sendable {
    /// The response is stored: look it up.
    case stored
    /// The backend failed (5xx, connect failure, timeout): a stale response may answer (stale-if-error), else fetch.
    case backendFailed
    /// Not stored (not cacheable, too large, or the leader went away): fetch it yourself.
    case notStored
}

/// What a waiting connection is woken through, on its own loop's thread.
protocol CacheWakeable: AnyObject {
    func cacheWake(_ outcome: CacheFillOutcome)
}

/// One request waiting for another's backend answer.
// SAFETY: `loop` and `target` are immutable; `active` is read and written only on `loop`'s thread.
final class CacheWaiter: @unchecked Sendable {
    let loop: EventLoop
    // SAFETY: the target (a client connection) ends its wait (setting `active` false) before it goes away, and is only
    // called on its own loop after checking `active` there.
    unowned(unsafe) let target: any CacheWakeable
    var active = true

    init(loop: EventLoop, target: any CacheWakeable) {
        self.loop = loop
        self.target = target
    }
}

/// A fill in progress: the leader's backend request for a URL, and the requests waiting for it.
// SAFETY: `waiters` and `finished` are touched only under the shard's lock.
final class PendingFill: @unchecked Sendable {
    let node: CacheKeyNode
    let shard: CacheShard
    var waiters: [CacheWaiter] = []
    var finished = false

    init(node: CacheKeyNode, shard: CacheShard) {
        self.node = node
        self.shard = shard
    }
}

/// One shard: a part of the index and its LRU list (most recently used first).
// SAFETY: every var is touched only while holding `lock`; `oldestUseMs` is an atomic readable without it.
final class CacheShard: @unchecked Sendable {
    let lock = ShardLock()
    var index: [UInt64: CacheKeyNode] = [:]
    unowned(unsafe) var newest: CacheEntry?
    unowned(unsafe) var oldest: CacheEntry?
    /// When the least recently used entry was last used (Int64.max when empty): eviction picks the shard whose oldest
    /// entry is oldest, which approximates one LRU over the whole store.
    let oldestUseMs = Atomic<Int64>(Int64.max)

    func find(_ key: UnsafeRawBufferPointer, _ hash: UInt64) -> CacheKeyNode? {
        var n = index[hash]
        while let node = n {
            if node.matches(key) { return node }
            n = node.nextInChain
        }
        return nil
    }

    func insertNode(_ node: CacheKeyNode) {
        node.nextInChain = index[node.hash]
        index[node.hash] = node
    }

    func removeNode(_ node: CacheKeyNode) {
        guard let first = index[node.hash] else { return }
        if first === node {
            index[node.hash] = node.nextInChain
        } else {
            var p = first
            while let next = p.nextInChain {
                if next === node {
                    p.nextInChain = node.nextInChain
                    break
                }
                p = next
            }
        }
        node.nextInChain = nil
    }

    /// Drops the node from the index when nothing is stored or awaited for it.
    func removeNodeIfEmpty(_ node: CacheKeyNode) {
        if node.variants.isEmpty && node.fill == nil { removeNode(node) }
    }

    // MARK: LRU

    func linkNewest(_ e: CacheEntry, nowMs: Int64) {
        e.lastUseMs = nowMs
        e.older = newest
        e.newer = nil
        newest?.newer = e
        newest = e
        if oldest == nil { oldest = e }
        e.linked = true
        publishOldest()
    }

    func unlink(_ e: CacheEntry) {
        guard e.linked else { return }
        if let n = e.newer { n.older = e.older } else { newest = e.older }
        if let o = e.older { o.newer = e.newer } else { oldest = e.newer }
        e.newer = nil
        e.older = nil
        e.linked = false
        publishOldest()
    }

    @inline(__always) func touch(_ e: CacheEntry, nowMs: Int64) {
        e.lastUseMs = nowMs
        guard newest !== e else { return }
        let wasOldest = oldest === e
        // Unlink, then link as the newest.
        if let n = e.newer { n.older = e.older }
        if let o = e.older { o.newer = e.newer } else { oldest = e.newer }
        e.older = newest
        e.newer = nil
        newest?.newer = e
        newest = e
        if wasOldest { publishOldest() }
    }

    @inline(__always) func publishOldest() {
        oldestUseMs.store(oldest?.lastUseMs ?? Int64.max, ordering: .relaxed)
    }
}

/// What a lookup found.
enum CacheLookup {
    /// A fresh stored response for this request.
    case hit(CacheEntry)
    /// Nothing fresh; another request is fetching this URL now and this one waits for it. `stale`: a stored variant
    /// past its freshness (for stale-if-error).
    case wait(CacheWaiter, stale: CacheEntry?)
    /// Nothing fresh, nothing in progress: this request fetches it, and identical ones wait for it.
    case lead(PendingFill, stale: CacheEntry?)
    /// Nothing fresh (collapsing not asked for).
    case miss(stale: CacheEntry?)
}

/// Everything a lookup needs to know about the request.
struct CacheLookupRequest {
    var key: UnsafeRawBufferPointer
    var hash: UInt64
    var head: HTTPRequestHead
    var bytes: UnsafeRawBufferPointer
    var maxAge: Int64?
    var minFresh: Int64?
}

// SAFETY: shards guard their own state; the counters are atomics.
public final class CacheStore: @unchecked Sendable {
    /// The memory bound, in charged bytes (CacheEntry.charge).
    let capacity: Int
    let shards: [CacheShard]
    let shardMask: Int
    private let bytesHeld = Atomic<Int>(0)
    private let entriesHeld = Atomic<Int>(0)
    private let evictionCount = Atomic<Int>(0)

    init(capacity: Int, shards: Int = 16) {
        precondition(shards > 0 && shards & (shards - 1) == 0, "shards must be a power of two")
        self.capacity = capacity
        self.shards = (0..<shards).map { _ in CacheShard() }
        shardMask = shards - 1
    }

    public var bytes: Int { bytesHeld.load(ordering: .relaxed) }
    public var entries: Int { entriesHeld.load(ordering: .relaxed) }
    public var evictions: Int { evictionCount.load(ordering: .relaxed) }

    @inline(__always) func shard(_ hash: UInt64) -> CacheShard { shards[Int(truncatingIfNeeded: hash >> 32) & shardMask] }

    /// Looks a request up. With `collapse`, a miss either joins the fill in progress (a waiter made by `makeWaiter`) or
    /// starts one that this request leads. A fresh hit moves the entry to the front of its shard's LRU list.
    func lookup(_ r: CacheLookupRequest, nowMs: Int64, collapse: Bool, makeWaiter: () -> CacheWaiter) -> CacheLookup {
        let s = shard(r.hash)
        s.lock.lock()
        defer { s.lock.unlock() }
        let node = s.find(r.key, r.hash)
        var stale: CacheEntry? = nil
        if let node, !node.variants.isEmpty {
            let found: CacheEntry?
            if node.varyNames.isEmpty {
                found = node.variants[0]
            } else {
                let vk = CacheVary.variantKey(node.varyNames, r.head, r.bytes)
                found = node.variants.first { $0.variantKey == vk }
            }
            if let e = found {
                if e.freshness.isFresh(nowMs: nowMs, maxAge: r.maxAge, minFresh: r.minFresh) {
                    s.touch(e, nowMs: nowMs)
                    return .hit(e)
                }
                stale = e
            }
        }
        guard collapse else { return .miss(stale: stale) }
        if let node, let fill = node.fill {
            let w = makeWaiter()
            fill.waiters.append(w)
            return .wait(w, stale: stale)
        }
        let n = node ?? {
            let created = CacheKeyNode(hash: r.hash, key: Array(r.key))
            s.insertNode(created)
            return created
        }()
        let fill = PendingFill(node: n, shard: s)
        n.fill = fill
        return .lead(fill, stale: stale)
    }

    /// Ends a fill: no one waits on it any more, and its waiters are woken (on their own loops) with `outcome`.
    func endFill(_ fill: PendingFill, outcome: CacheFillOutcome) {
        let s = fill.shard
        s.lock.lock()
        if fill.node.fill === fill { fill.node.fill = nil }
        fill.finished = true
        let waiters = fill.waiters
        fill.waiters = []
        s.removeNodeIfEmpty(fill.node)
        s.lock.unlock()
        Self.wake(waiters, outcome)
    }

    /// Posts one task per loop that wakes that loop's waiters (those still waiting when it runs).
    static func wake(_ waiters: [CacheWaiter], _ outcome: CacheFillOutcome) {
        guard !waiters.isEmpty else { return }
        var byLoop: [ObjectIdentifier: (EventLoop, [CacheWaiter])] = [:]
        for w in waiters { byLoop[ObjectIdentifier(w.loop), default: (w.loop, [])].1.append(w) }
        for (_, (loop, list)) in byLoop {
            loop.execute {
                for w in list where w.active { w.target.cacheWake(outcome) }
            }
        }
    }

    /// Stores an entry for `key` (replacing the variant with the same request values, and every variant if the Vary
    /// names changed), then evicts least recently used entries until the store is within its bound.
    func insert(_ e: CacheEntry, key: [UInt8], hash: UInt64, varyNames: [[UInt8]], nowMs: Int64) {
        let s = shard(hash)
        var removed: [CacheEntry] = []
        s.lock.lock()
        let node: CacheKeyNode
        if let n = key.withUnsafeBytes({ s.find($0, hash) }) {
            node = n
        } else {
            node = CacheKeyNode(hash: hash, key: key)
            s.insertNode(node)
        }
        if node.varyNames != varyNames {
            for old in node.variants { detach(old, from: s) }
            removed += node.variants
            node.variants.removeAll()
            node.varyNames = varyNames
        }
        if let i = node.variants.firstIndex(where: { $0.variantKey == e.variantKey }) {
            let old = node.variants.remove(at: i)
            detach(old, from: s)
            removed.append(old)
        }
        node.variants.append(e)
        e.node = node
        s.linkNewest(e, nowMs: nowMs)
        bytesHeld.add(e.charge, ordering: .relaxed)
        entriesHeld.add(1, ordering: .relaxed)
        s.lock.unlock()
        // Entries are freed outside the lock (by their last reference, which may be a sender elsewhere).
        removed.removeAll()
        evictIfNeeded()
    }

    /// Takes an entry out of its shard's list and the store's counts (the caller removes it from its node).
    private func detach(_ e: CacheEntry, from s: CacheShard) {
        s.unlink(e)
        e.node = nil
        bytesHeld.subtract(e.charge, ordering: .relaxed)
        entriesHeld.subtract(1, ordering: .relaxed)
    }

    /// While over the bound: evicts the least recently used entry of the shard whose oldest entry is oldest. One shard
    /// lock at a time.
    func evictIfNeeded() {
        var rounds = 0
        while bytesHeld.load(ordering: .relaxed) > capacity && rounds < 100_000 {
            rounds += 1
            var victim: CacheShard? = nil
            var oldest = Int64.max
            for s in shards {
                let u = s.oldestUseMs.load(ordering: .relaxed)
                if u < oldest {
                    oldest = u
                    victim = s
                }
            }
            guard let s = victim else { return }
            var dropped: CacheEntry? = nil
            s.lock.lock()
            if let e = s.oldest, let node = e.node {
                node.variants.removeAll { $0 === e }
                detach(e, from: s)
                s.removeNodeIfEmpty(node)
                dropped = e
                evictionCount.add(1, ordering: .relaxed)
            }
            s.lock.unlock()
            _ = dropped
        }
    }

    /// Removes every stored variant of `key`; returns how many. A fill in progress for it goes on.
    func purge(key: [UInt8]) -> Int {
        let hash = CacheKey.hash(key)
        let s = shard(hash)
        var removed: [CacheEntry] = []
        s.lock.lock()
        if let node = key.withUnsafeBytes({ s.find($0, hash) }) {
            for e in node.variants { detach(e, from: s) }
            removed = node.variants
            node.variants.removeAll()
            s.removeNodeIfEmpty(node)
        }
        s.lock.unlock()
        return removed.count
    }

    /// Removes every stored response; returns how many.
    func purgeAll() -> Int {
        var count = 0
        for s in shards {
            var removed: [CacheEntry] = []
            s.lock.lock()
            for (_, first) in s.index {
                var n: CacheKeyNode? = first
                while let node = n {
                    for e in node.variants { detach(e, from: s) }
                    removed += node.variants
                    node.variants.removeAll()
                    n = node.nextInChain
                }
            }
            // Keep only the nodes that a fill in progress still needs.
            var keep: [CacheKeyNode] = []
            for (_, first) in s.index {
                var n: CacheKeyNode? = first
                while let node = n {
                    n = node.nextInChain
                    if node.fill != nil { keep.append(node) }
                }
            }
            s.index.removeAll()
            for node in keep {
                node.nextInChain = nil
                s.insertNode(node)
            }
            s.lock.unlock()
            count += removed.count
        }
        return count
    }

    /// Fills in progress with at least one waiter (tests and the admin port).
    var fillsInProgress: Int {
        var n = 0
        for s in shards {
            s.lock.lock()
            for (_, first) in s.index {
                var node: CacheKeyNode? = first
                while let k = node {
                    if k.fill != nil { n += 1 }
                    node = k.nextInChain
                }
            }
            s.lock.unlock()
        }
        return n
    }
}

/// The cache key of a request: its path and query as sent (`/a/b?c=d`), within its route.
enum CacheKey {
    @inline(__always) static func hash(_ key: UnsafeRawBufferPointer) -> UInt64 { StableHash.hash64(key) }
    static func hash(_ key: [UInt8]) -> UInt64 { key.withUnsafeBytes { hash($0) } }
}

/// Variant keys: the request's values of the fields a response varies on (RFC 9111 §4.1).
enum CacheVary {
    /// For each name (lower-case): 0x01, the values of every field line of that name joined by ",", 0x00; or 0x02
    /// when the request has none. `Host` is the effective authority. Values never contain 0x00, so the encoding is
    /// unambiguous.
    static func variantKey(_ names: [[UInt8]], _ head: HTTPRequestHead, _ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var out: [UInt8] = []
        for name in names {
            var present = false
            if name == hostName {
                if let h = head.host {
                    present = true
                    out.append(1)
                    out += bytes[h]
                }
            } else {
                for h in head.headers where h.name.count == name.count && equalsLowercased(bytes, h.name, name) {
                    out.append(present ? 0x2C : 1)
                    present = true
                    out += bytes[h.value]
                }
            }
            out.append(present ? 0 : 2)
        }
        return out
    }

    static let hostName: [UInt8] = Array("host".utf8)

    /// `bytes[range]` equals the lower-case `name`, ignoring ASCII case.
    @inline(__always) static func equalsLowercased(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ name: [UInt8]) -> Bool {
        var i = range.lowerBound
        for c in name {
            if ASCIIBytes.lowercased(bytes[i]) != c { return false }
            i &+= 1
        }
        return true
    }
}
