// `rate_limit RATE burst=N key=...` on a route: a token bucket per key, shared by every worker without a lock.
//
// The bucket is kept the GCRA way (the generic cell rate algorithm): instead of a token count and a refill time, one
// number, the "theoretical arrival time" (TAT): the moment the bucket would be full again. A request at time t is
// admitted when max(TAT, t) + T - t <= burst × T (T = the time one token takes at the rate), and then TAT becomes
// max(TAT, t) + T. Otherwise it waits max(TAT, t) + T - t - burst × T: the Retry-After. A bucket whose TAT has passed
// is full, exactly like a key never seen: so an idle key can be dropped at any time without changing any answer.
//
// The table: a fixed array of 65,536 64-bit words per rate-limited route (512 KiB, allocated once with the snapshot),
// in 8-way sets of one cache line. A key's 64-bit hash (XXH64, seeded at random per process) picks its set (low bits)
// and a 24-bit fingerprint (high bits); a word is `fingerprint << 40 | TAT`, the TAT in microseconds since the table
// was made, modulo 2^40 (12.7 days; buckets never reach more than a day ahead, so the wrap is read unambiguously and
// the sweep clears idle words long before it matters). Each request reads its set and changes one word with one
// compare-and-swap: no lock, and a key's whole state changes atomically. Two keys with the same set and fingerprint
// (about one chance in 16 million for two keys in one set) share a bucket.
//
// Bounded memory: a new key takes an empty word of its set, or an idle one (a full bucket: forgetting it changes
// nothing). When all 8 words of the set hold keys whose buckets are not full, the one nearest to full is replaced and
// `tableFull` counts it (huddle_rate_limit_table_full_total): that key starts again with a full bucket, so the table
// errs towards letting requests through, never towards refusing them. Once a second the control loop clears idle words
// (`sweep`), so the key count (huddle_rate_limit_keys) is the keys with a bucket not yet full again.
//
// Limits are per Huddle process (per replica): N replicas behind a load balancer let up to N times the rate through.
import HuddleBalancing
import HuddleConfig
import HuddleHTTP
import Synchronization

public final class RateLimiter: @unchecked Sendable {
    // SAFETY: `words` is allocated once in init and freed in deinit; every access in between goes through Atomic.
    public static let slotCount = 65_536
    static let ways = 8
    static let timeBits: UInt64 = 40
    static let timeMask: UInt64 = (1 << timeBits) - 1

    public let config: RateLimitConfig
    /// The route prefix, for metrics.
    public let route: String
    /// T: microseconds one token takes to come back.
    let interval: Int64
    /// burst × T: how far ahead of now a bucket's TAT may be.
    let capacity: Int64
    private let epochNs: UInt64
    private let words: UnsafeMutablePointer<Atomic<UInt64>>
    private let setMask: UInt64

    /// Requests answered 429 (huddle_rate_limited_total).
    public let limited = Atomic<Int>(0)
    /// New keys that found their set full of keys whose buckets were not full, and replaced one
    /// (huddle_rate_limit_table_full_total).
    public let tableFull = Atomic<Int>(0)

    public init(config: RateLimitConfig, route: String, nowNs: UInt64, slots: Int = RateLimiter.slotCount) {
        precondition(slots >= Self.ways && slots & (slots - 1) == 0, "slots must be a power of two")
        self.config = config
        self.route = route
        interval = config.intervalMicros
        capacity = Int64(config.burst) * config.intervalMicros
        epochNs = nowNs
        let raw = UnsafeMutableRawPointer.allocate(byteCount: slots * 8, alignment: 64)
        words = raw.bindMemory(to: Atomic<UInt64>.self, capacity: slots)
        for i in 0..<slots { (words + i).initialize(to: Atomic(0)) }
        setMask = UInt64(slots / Self.ways - 1)
    }

    deinit {
        words.deinitialize(count: Int(setMask + 1) * Self.ways)
        UnsafeMutableRawPointer(words).deallocate()
    }

    public var slots: Int { Int(setMask + 1) * Self.ways }
    public var memoryBytes: Int { slots * 8 }

    /// Takes a token for the key whose hash is `keyHash` at monotonic time `nowNs`: 0 when the request may pass, else
    /// how many microseconds until it could.
    @inline(__always)
    public func admit(keyHash: UInt64, nowNs: UInt64) -> Int64 {
        let now = (nowNs &- epochNs) / 1000 & Self.timeMask
        let set = words + Int(keyHash & setMask) &* Self.ways
        var fingerprint = keyHash >> 40
        if fingerprint == 0 { fingerprint = 1 }
        // Until it decides: a word changes under us only when another worker took a token for a key of this set (or
        // placed a key) meanwhile, so every lost race is someone else's progress, and once a bucket is empty every
        // caller returns at once. (Letting a request through after a run of lost races, as this once did, let a race
        // of 4 threads take 1004 of 1000 tokens.)
        while true {
            var spare = -1
            var spareWord: UInt64 = 0
            var spareAhead = Int64.max
            var found = false
            for j in 0..<Self.ways {
                let w = set[j].load(ordering: .relaxed)
                if w >> Self.timeBits == fingerprint {
                    let ahead = max(self.ahead(w, now), 0) + interval
                    if ahead > capacity { return ahead - capacity }
                    if set[j].compareExchange(expected: w, desired: fingerprint << Self.timeBits | (now &+ UInt64(ahead)) & Self.timeMask,
                                              ordering: .relaxed).exchanged {
                        return 0
                    }
                    found = true
                    break
                }
                // Where a new key would go: an empty word, else an idle one, else the one nearest to full.
                let a = w == 0 ? Int64.min : self.ahead(w, now)
                if a < spareAhead {
                    spare = j
                    spareWord = w
                    spareAhead = a
                }
            }
            if found { continue }
            // A new key: its bucket starts full, so this request takes one of its `burst` tokens (burst >= 1).
            if set[spare].compareExchange(expected: spareWord, desired: fingerprint << Self.timeBits | (now &+ UInt64(interval)) & Self.timeMask,
                                          ordering: .relaxed).exchanged {
                if spareAhead > 0 { tableFull.add(1, ordering: .relaxed) }
                return 0
            }
        }
    }

    /// How far a word's TAT is ahead of `now`, in microseconds: 0 or less is a full bucket. A TAT further ahead than a
    /// bucket can ever be is a word from before the 40-bit clock wrapped: full too.
    @inline(__always)
    private func ahead(_ w: UInt64, _ now: UInt64) -> Int64 {
        let d = Int64(bitPattern: ((w &- now) & Self.timeMask) << (64 - Self.timeBits)) >> Int64(64 - Self.timeBits)
        return d > capacity ? 0 : d
    }

    /// Clears the words of keys whose buckets are full again (once a second, on the control thread); returns how many
    /// keys remain.
    @discardableResult
    public func sweep(nowNs: UInt64) -> Int {
        let now = (nowNs &- epochNs) / 1000 & Self.timeMask
        var live = 0
        for i in 0..<slots {
            let w = words[i].load(ordering: .relaxed)
            guard w != 0 else { continue }
            if ahead(w, now) > 0 {
                live += 1
            } else {
                // Lost to a worker that just took a token: the key is live again and stays.
                _ = words[i].compareExchange(expected: w, desired: 0, ordering: .relaxed)
            }
        }
        return live
    }

    /// Keys whose buckets are not full (huddle_rate_limit_keys): what the table must remember.
    public func liveKeys(nowNs: UInt64) -> Int {
        let now = (nowNs &- epochNs) / 1000 & Self.timeMask
        var live = 0
        for i in 0..<slots {
            let w = words[i].load(ordering: .relaxed)
            if w != 0 && ahead(w, now) > 0 { live += 1 }
        }
        return live
    }

    /// Words in use, idle ones not yet swept included.
    public func occupiedSlots() -> Int {
        var n = 0
        for i in 0..<slots where words[i].load(ordering: .relaxed) != 0 { n += 1 }
        return n
    }
}

/// What a request is counted by, as the 64-bit hash the table keys on. Pure.
enum RateLimitKeys {
    /// Random per process, so nobody outside can aim keys at one set of the table.
    static let seed = UInt64.random(in: 0...UInt64.max)

    /// The key's hash: the header's or cookie's value, or the group key, by kind; the client's IP when the request has
    /// none of those (or when the key is `ip`).
    static func hash(_ key: RateLimitKey, head: HTTPRequestHead, bytes: UnsafeRawBufferPointer, clientIP: UnsafeRawBufferPointer,
                     groupKey: [UInt8]?, seed: UInt64 = RateLimitKeys.seed) -> UInt64 {
        switch key {
        case .ip:
            break
        case .header(let name):
            for h in head.headers where !h.value.isEmpty && equalsIgnoringCase(bytes, h.name, name) {
                return StableHash.hash64(UnsafeRawBufferPointer(rebasing: bytes[h.value]), seed: seed &+ 1)
            }
        case .cookie(let name):
            for h in head.headers where h.kind == .cookie {
                if let v = GroupKeyBytes.cookieValue(name: Array(name.utf8), cookieHeaderValue: h.value, in: bytes), !v.isEmpty {
                    return StableHash.hash64(UnsafeRawBufferPointer(rebasing: bytes[v]), seed: seed &+ 2)
                }
            }
        case .group:
            if let k = groupKey {
                return k.withUnsafeBytes { StableHash.hash64($0, seed: seed &+ 3) }
            }
        }
        return StableHash.hash64(clientIP, seed: seed)
    }

    /// Whole seconds for Retry-After: rounded up, at least 1.
    static func retryAfterSeconds(waitMicros: Int64) -> Int {
        Int(max(1, (waitMicros + 999_999) / 1_000_000))
    }
}
