// The rate limiter's pure parts on a clock the test sets: bucket math (burst, refill, Retry-After), the table's
// memory bound (idle keys reused, full sets replace and count), the 40-bit clock's wrap, the sweep, key extraction,
// and compare-and-swap under threads (no token is taken twice).
@testable import HuddleProxy
import Foundation
import HuddleBalancing
import HuddleConfig
import HuddleHTTP
import XCTest

final class RateLimiterTests: XCTestCase {
    let here = SourceLocation(file: "t", line: 1, column: 1)
    let ms: UInt64 = 1_000_000
    let epoch: UInt64 = 5_000_000_000_000

    func limiter(_ requests: Int, per: Int64 = 1000, burst: Int, slots: Int = RateLimiter.slotCount) -> RateLimiter {
        var c = RateLimitConfig(requests: requests, perMs: per, location: here)
        c.burst = burst
        return RateLimiter(config: c, route: "/t/", nowNs: epoch, slots: slots)
    }

    func testABucketStartsFullAndRefillsAtTheRate() {
        let l = limiter(10, burst: 5)   // one token per 100 ms, up to 5
        let t0 = epoch + 1000 * ms
        for i in 0..<5 { XCTAssertEqual(l.admit(keyHash: 42, nowNs: t0), 0, "request \(i) of the burst") }
        XCTAssertEqual(l.admit(keyHash: 42, nowNs: t0), 100_000, "the sixth waits one interval")
        XCTAssertEqual(l.admit(keyHash: 42, nowNs: t0 + 40 * ms), 60_000, "a refused request takes nothing")
        XCTAssertEqual(l.admit(keyHash: 42, nowNs: t0 + 100 * ms), 0, "one token back after 100 ms")
        XCTAssertEqual(l.admit(keyHash: 42, nowNs: t0 + 100 * ms), 100_000)
        XCTAssertEqual(l.admit(keyHash: 43, nowNs: t0 + 100 * ms), 0, "another key has its own bucket")
        // Idle long enough to fill again: a burst of exactly 5, not more.
        let t1 = t0 + 10_000 * ms
        for _ in 0..<5 { XCTAssertEqual(l.admit(keyHash: 42, nowNs: t1), 0) }
        XCTAssertGreaterThan(l.admit(keyHash: 42, nowNs: t1), 0)
    }

    func testTwiceTheRateForFiveSecondsPassesRateTimesFivePlusBurst() {
        // 100/s burst=50, a request every 5 ms (200/s) for 5 s: rate × 5 + burst. The 1,000 requests span 4,995 ms,
        // so 499 tokens come back in that time: 50 + 499 pass.
        let l = limiter(100, burst: 50)
        var passed = 0
        var waits: [Int64] = []
        let start = epoch + 3 * 1000 * ms
        for i in 0..<1000 {
            let w = l.admit(keyHash: 7, nowNs: start + UInt64(i) * 5 * ms)
            if w == 0 { passed += 1 } else { waits.append(w) }
        }
        XCTAssertEqual(passed, 549, "the burst, then one per 10 ms")
        XCTAssertTrue(waits.allSatisfy { $0 > 0 && $0 <= 10_000 }, "never more than one interval to wait at this pace")
    }

    func testRetryAfterIsWholeSecondsRoundedUp() {
        XCTAssertEqual(RateLimitKeys.retryAfterSeconds(waitMicros: 1), 1)
        XCTAssertEqual(RateLimitKeys.retryAfterSeconds(waitMicros: 1_000_000), 1)
        XCTAssertEqual(RateLimitKeys.retryAfterSeconds(waitMicros: 1_000_001), 2)
        let l = limiter(1, per: 60_000, burst: 1)   // 1/m
        XCTAssertEqual(l.admit(keyHash: 1, nowNs: epoch), 0)
        let wait = l.admit(keyHash: 1, nowNs: epoch + 15_000 * ms)
        XCTAssertEqual(wait, 45_000_000)
        XCTAssertEqual(RateLimitKeys.retryAfterSeconds(waitMicros: wait), 45)
    }

    func testTheTableHoldsAFixedNumberOfKeysAndReusesIdleOnes() {
        // One set of 8 words: the smallest table, so every key shares it.
        let l = limiter(1, burst: 1, slots: 8)
        XCTAssertEqual(l.slots, 8)
        XCTAssertEqual(l.memoryBytes, 64)
        let t = epoch + 1000 * ms
        let keys: [UInt64] = (1...8).map { UInt64($0) << 40 | 5 }   // distinct fingerprints, one set
        for k in keys { XCTAssertEqual(l.admit(keyHash: k, nowNs: t), 0) }
        XCTAssertEqual(l.liveKeys(nowNs: t), 8)
        XCTAssertEqual(l.tableFull.load(ordering: .relaxed), 0)
        for k in keys { XCTAssertGreaterThan(l.admit(keyHash: k, nowNs: t), 0, "each of the 8 is remembered") }
        // A ninth busy key: the set is full of buckets that are not full, so one is replaced, and counted.
        XCTAssertEqual(l.admit(keyHash: 9 << 40 | 5, nowNs: t + 1 * ms), 0)
        XCTAssertEqual(l.tableFull.load(ordering: .relaxed), 1)
        XCTAssertEqual(l.liveKeys(nowNs: t + 1 * ms), 8, "never more than the table's size")
        XCTAssertGreaterThan(l.admit(keyHash: 9 << 40 | 5, nowNs: t + 2 * ms), 0, "the newcomer is remembered")
        for k in keys.dropFirst() { XCTAssertGreaterThan(l.admit(keyHash: k, nowNs: t + 2 * ms), 0, "the other seven are remembered") }
        // The replaced key was the one nearest to a full bucket (all equal here: the first); it starts afresh.
        XCTAssertEqual(l.admit(keyHash: keys[0], nowNs: t + 2 * ms), 0)
        XCTAssertEqual(l.tableFull.load(ordering: .relaxed), 2, "and pushing it back in replaced another")
        // A second later every bucket is full again: new keys take idle words without counting as the table being full.
        let later = t + 1_500 * ms
        let before = l.tableFull.load(ordering: .relaxed)
        for i in 20..<28 { XCTAssertEqual(l.admit(keyHash: UInt64(i) << 40 | 5, nowNs: later), 0) }
        XCTAssertEqual(l.tableFull.load(ordering: .relaxed), before, "idle keys make room for free")
        XCTAssertEqual(l.occupiedSlots(), 8)
    }

    func testTheSweepDropsIdleKeysOnly() {
        let l = limiter(10, burst: 2)
        let t = epoch + 1000 * ms
        for k in 1...100 { _ = l.admit(keyHash: UInt64(k) &* 0x9E37_79B9_7F4A_7C15, nowNs: t) }
        _ = l.admit(keyHash: 0x1234_5678_9abc, nowNs: t + 950 * ms)
        XCTAssertEqual(l.occupiedSlots(), 101)
        // At t+1 s: the first 100 keys took one token of two 1 s ago, full again after 100 ms; the last is 50 ms
        // into its interval.
        XCTAssertEqual(l.sweep(nowNs: t + 1000 * ms), 1)
        XCTAssertEqual(l.occupiedSlots(), 1)
        XCTAssertEqual(l.liveKeys(nowNs: t + 1000 * ms), 1)
        XCTAssertEqual(l.sweep(nowNs: t + 2000 * ms), 0)
        XCTAssertEqual(l.occupiedSlots(), 0)
    }

    func testTheFortyBitClockWrapsWithoutChangingAnswers() {
        let l = limiter(10, burst: 2)   // 100 ms per token, up to 2
        let wrap = (UInt64(1) << 40) * 1000   // 2^40 µs after the table's epoch, in ns
        let t = epoch + wrap - 50 * ms
        XCTAssertEqual(l.admit(keyHash: 9, nowNs: t), 0)
        XCTAssertEqual(l.admit(keyHash: 9, nowNs: t), 0)
        XCTAssertEqual(l.admit(keyHash: 9, nowNs: t + 60 * ms), 40_000, "across the wrap: the bucket is 200 ms ahead, 60 ms went by")
        XCTAssertEqual(l.admit(keyHash: 9, nowNs: t + 150 * ms), 0)
        XCTAssertGreaterThan(l.admit(keyHash: 9, nowNs: t + 150 * ms), 0)
        // A word last touched almost a whole wrap ago looks a little ahead of now: further than any bucket can be,
        // so it reads as a full bucket, not as a debt (the sweep clears such words long before anyway).
        let m = limiter(10, burst: 1)
        XCTAssertEqual(m.admit(keyHash: 5, nowNs: epoch + 1000 * ms), 0)
        XCTAssertEqual(m.admit(keyHash: 5, nowNs: epoch + 1000 * ms + wrap - 50 * ms), 0)
        let n = limiter(10, burst: 1)
        XCTAssertEqual(n.admit(keyHash: 5, nowNs: epoch + 1000 * ms), 0)
        XCTAssertEqual(n.admit(keyHash: 5, nowNs: epoch + 1000 * ms + wrap * 3 / 4), 0, "three quarters of a wrap later: behind now")
    }

    func testThreadsNeverTakeTheSameTokenTwice() {
        // With the clock standing still, exactly `burst` requests may pass, however many threads race for them.
        let l = limiter(1000, burst: 1000)
        let t = epoch + 1000 * ms
        let passed = ManagedCounter()
        let threads = 4
        DispatchQueue.concurrentPerform(iterations: threads) { _ in
            var mine = 0
            for _ in 0..<20_000 where l.admit(keyHash: 77, nowNs: t) == 0 { mine += 1 }
            passed.add(mine)
        }
        XCTAssertEqual(passed.value, 1000)
        // Many keys at once, several threads on each: each key passes exactly its burst.
        let m = limiter(10, burst: 3)
        let perKey = ManagedCounter()
        DispatchQueue.concurrentPerform(iterations: threads) { _ in
            var mine = 0
            for round in 0..<10 {
                for k in 0..<500 where m.admit(keyHash: UInt64(k) &* 0xD6E8_FEB8_6659_FD93 &+ 1, nowNs: t + UInt64(round)) == 0 { mine += 1 }
            }
            perKey.add(mine)
        }
        XCTAssertEqual(perKey.value, 500 * 3)
    }

    // MARK: keys

    func keyHash(_ key: RateLimitKey, _ request: String, ip: String = "10.0.0.1", groupKey: [UInt8]? = nil) -> UInt64 {
        var parser = HTTPRequestParser()
        var head = HTTPRequestHead()
        let bytes = Array(request.utf8)
        XCTAssertEqual(bytes.withUnsafeBytes { parser.parse($0, into: &head) }, .complete)
        return bytes.withUnsafeBytes { b in
            Array(ip.utf8).withUnsafeBytes { RateLimitKeys.hash(key, head: head, bytes: b, clientIP: $0, groupKey: groupKey, seed: 99) }
        }
    }

    func testKeysComeFromTheConfiguredSourceAndFallBackToTheAddress() {
        let bare = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        let withHeader = "GET / HTTP/1.1\r\nHost: x\r\nx-api-key: abc\r\n\r\n"
        let withCookie = "GET / HTTP/1.1\r\nHost: x\r\nCookie: a=1; session=abc\r\n\r\n"
        let ipA = keyHash(.ip, bare)
        XCTAssertEqual(ipA, keyHash(.ip, withHeader), "key=ip ignores headers")
        XCTAssertNotEqual(ipA, keyHash(.ip, bare, ip: "10.0.0.2"))
        XCTAssertEqual(ipA, StableHash.hash64(Array("10.0.0.1".utf8), seed: 99))

        let h = keyHash(.header("X-Api-Key"), withHeader)
        XCTAssertNotEqual(h, ipA)
        XCTAssertEqual(h, keyHash(.header("X-Api-Key"), withHeader, ip: "10.0.0.2"), "the header, not the address")
        XCTAssertEqual(h, keyHash(.header("X-API-KEY"), "GET / HTTP/1.1\r\nHost: x\r\nX-Api-Key: abc\r\n\r\n"), "names are case-insensitive")
        XCTAssertNotEqual(h, keyHash(.header("X-Api-Key"), "GET / HTTP/1.1\r\nHost: x\r\nX-Api-Key: abd\r\n\r\n"))
        XCTAssertEqual(keyHash(.header("X-Api-Key"), bare), ipA, "without the header: the address")
        XCTAssertEqual(keyHash(.header("X-Api-Key"), "GET / HTTP/1.1\r\nHost: x\r\nX-Api-Key:\r\n\r\n"), ipA, "an empty value is none")

        let c = keyHash(.cookie("session"), withCookie)
        XCTAssertNotEqual(c, ipA)
        XCTAssertNotEqual(c, h, "the same value from a cookie and from a header are different keys")
        XCTAssertEqual(c, keyHash(.cookie("session"), withCookie, ip: "10.0.0.9"))
        XCTAssertEqual(keyHash(.cookie("session"), bare), ipA)
        XCTAssertEqual(keyHash(.cookie("sess"), withCookie), ipA, "another cookie's name")

        let g = keyHash(.group, bare, groupKey: Array("room-1".utf8))
        XCTAssertNotEqual(g, ipA)
        XCTAssertEqual(g, keyHash(.group, bare, ip: "10.0.0.2", groupKey: Array("room-1".utf8)))
        XCTAssertNotEqual(g, keyHash(.group, bare, groupKey: Array("room-2".utf8)))
        XCTAssertEqual(keyHash(.group, bare, groupKey: nil), ipA, "no group key: the address")
    }
}

/// A counter threads add to under a lock (the test's own bookkeeping, not the code under test).
final class ManagedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add(_ k: Int) { lock.lock(); n += k; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}
