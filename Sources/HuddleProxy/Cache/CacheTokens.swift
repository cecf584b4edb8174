// The cache's resources, each a non-copyable token released by being dropped (docs/ARCHITECTURE.md, the resource rule):
// a stored entry being sent, a leadership of a fill others wait on, a place among a fill's waiters, and the buffer a
// response is stored into while it arrives. Concrete types (not generic), like every owner with a deinit here.
import Glibc
import HuddleHTTP

/// An exchange sending a stored entry (or keeping a stale one for stale-if-error): the entry stays alive, even if it is
/// evicted or purged meanwhile, until this is dropped.
struct CacheRead: ~Copyable {
    let entry: CacheEntry
    // SAFETY: the worker's counters outlive every exchange (and so every token) on its loop.
    unowned(unsafe) let counters: LoopCounters

    init(_ entry: CacheEntry, counters: LoopCounters) {
        self.entry = entry
        self.counters = counters
        counters.cacheReads += 1
    }

    deinit { counters.cacheReads -= 1 }
}

/// The leadership of a fill: this exchange fetches the URL, identical requests wait. Dropping it ends the fill and wakes
/// the waiters with `.notStored` (they fetch for themselves), unless `finish` said otherwise.
struct CacheLead: ~Copyable {
    let store: CacheStore
    let fill: PendingFill
    unowned(unsafe) let counters: LoopCounters
    private var outcome = CacheFillOutcome.notStored

    init(store: CacheStore, fill: PendingFill, counters: LoopCounters) {
        self.store = store
        self.fill = fill
        self.counters = counters
        counters.cacheLeads += 1
    }

    consuming func finish(_ outcome: CacheFillOutcome) { self.outcome = outcome }

    deinit {
        counters.cacheLeads -= 1
        store.endFill(fill, outcome: outcome)
    }
}

/// A place among a fill's waiters. Dropping it (an answer, a timeout, the client leaving) makes a later wake-up a no-op.
struct CacheWait: ~Copyable {
    let waiter: CacheWaiter
    unowned(unsafe) let counters: LoopCounters

    init(_ waiter: CacheWaiter, counters: LoopCounters) {
        self.waiter = waiter
        self.counters = counters
        counters.cacheWaits += 1
    }

    deinit {
        waiter.active = false
        counters.cacheWaits -= 1
    }
}

/// A response being stored as it arrives: its heads (built when its head arrived) and its body (decoded from chunks if
/// it came chunked), bounded by `max_entry`. `commit` turns it into a stored entry; dropping it stores nothing (and
/// the leadership it holds, if any, wakes the waiters to fetch for themselves).
struct CacheFill: ~Copyable {
    let store: CacheStore
    let key: [UInt8]
    let hash: UInt64
    let varyNames: [[UInt8]]
    let variantKey: [UInt8]
    let status: Int
    /// Status line and stored fields, without Content-Length; the 304 head; where the ETag value is in `head`.
    let head: [UInt8]
    let notModified: [UInt8]
    let etag: Range<Int>?
    let lastModified: Int64?
    let freshness: CacheFreshness
    /// Content-Length of the response, if it has one (the body must come to exactly that).
    let expectedLength: Int64?
    /// Body bytes allowed (max_entry minus the heads).
    let limit: Int
    /// Decodes a chunked body; nil for other framings.
    var chunks: ChunkedBodyScanner?
    var lead: CacheLead?
    private var body: UnsafeMutableRawPointer? = nil
    private var capacity = 0
    private(set) var count = 0
    unowned(unsafe) let counters: LoopCounters

    init(store: CacheStore, key: [UInt8], hash: UInt64, varyNames: [[UInt8]], variantKey: [UInt8], status: Int, head: [UInt8],
         notModified: [UInt8], etag: Range<Int>?, lastModified: Int64?, freshness: CacheFreshness, expectedLength: Int64?,
         limit: Int, chunked: Bool, lead: consuming CacheLead?, counters: LoopCounters) {
        self.store = store
        self.key = key
        self.hash = hash
        self.varyNames = varyNames
        self.variantKey = variantKey
        self.status = status
        self.head = head
        self.notModified = notModified
        self.etag = etag
        self.lastModified = lastModified
        self.freshness = freshness
        self.expectedLength = expectedLength
        self.limit = limit
        chunks = chunked ? ChunkedBodyScanner() : nil
        self.lead = lead
        self.counters = counters
        counters.cacheFills += 1
        if let n = expectedLength, n > 0 {
            // A known length: one exactly-sized allocation.
            body = malloc(Int(n))
            capacity = body == nil ? 0 : Int(n)
        }
    }

    deinit {
        free(body)
        counters.cacheFills -= 1
    }

    /// Takes body bytes as the relay classified them (chunk framing included when chunked). False when the response
    /// cannot be stored after all (over the limit, malformed, out of memory): the caller drops the fill.
    mutating func append(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard chunks != nil else { return copy(bytes) }
        var i = 0
        while i < bytes.count {
            let pending = chunks.unsafelyUnwrapped.pendingDataBytes
            if pending > 0 {
                let n = Int(min(pending, Int64(bytes.count - i)))
                guard copy(UnsafeRawBufferPointer(rebasing: bytes[i..<(i + n)])) else { return false }
                chunks!.consumeData(n)
                i += n
                continue
            }
            switch chunks!.scan(UnsafeRawBufferPointer(rebasing: bytes[i...]), stopAtData: true) {
            case .consumed(let n):
                guard n > 0 || chunks.unsafelyUnwrapped.pendingDataBytes > 0 else { return false }
                i += n
            case .finished:
                return true
            case .error:
                return false
            }
        }
        return true
    }

    private mutating func copy(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count > 0 else { return true }
        let need = count + bytes.count
        guard need <= limit else { return false }
        if need > capacity {
            var c = max(capacity * 2, 16 * 1024)
            while c < need { c *= 2 }
            c = min(c, limit)
            guard let p = realloc(body, c) else { return false }
            body = p
            capacity = c
        }
        (body! + count).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        count = need
        return true
    }

    /// The whole body is here (and checks out against its framing).
    var isComplete: Bool {
        if let c = chunks { return c.isFinished }
        if let n = expectedLength { return Int64(count) == n }
        return true
    }

    /// Stores the response (the body moves into the entry, exactly sized) and wakes the waiters to look it up. False when
    /// it was incomplete (nothing stored; dropping the fill then wakes them to fetch).
    mutating func commit(nowMs: Int64) -> Bool {
        guard isComplete else { return false }
        var lengthLine: [UInt8] = []
        if status != 204 && status != 304 {
            lengthLine = Array("Content-Length: \(count)\r\n".utf8)
        }
        let headLength = head.count + lengthLine.count
        guard let h = malloc(max(1, headLength + notModified.count)) else { return false }
        head.withUnsafeBytes { (h).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        lengthLine.withUnsafeBytes { if $0.count > 0 { (h + head.count).copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
        notModified.withUnsafeBytes { if $0.count > 0 { (h + headLength).copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
        var b = body
        if count == 0 {
            free(b)
            b = nil
        } else if capacity > count {
            b = realloc(b, count) ?? b
        }
        body = nil
        capacity = 0
        let e = CacheEntry(head: h, headLength: headLength, notModifiedLength: notModified.count, body: b, bodyLength: count, status: status,
                           freshness: freshness, etag: etag, lastModified: lastModified, variantKey: variantKey, keyLength: key.count)
        store.insert(e, key: key, hash: hash, varyNames: varyNames, nowMs: nowMs)
        lead.take()?.finish(.stored)
        return true
    }
}
