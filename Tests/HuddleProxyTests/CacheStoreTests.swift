// The store on its own: LRU order and the memory bound, variants, purges, entries kept alive by their readers, fills
// and their waiters, and many threads at once (the ThreadSanitizer run checks the locking).
@testable import HuddleProxy
import Foundation
import Glibc
import HuddleHTTP
import HuddleIO
import XCTest

/// Counts entry deallocations through their body (each test's entries have distinct bodies).
final class CacheStoreTests: XCTestCase {
    static func entry(_ key: String, body: Int, variantKey: [UInt8] = [], lifetimeMs: Int64 = 60_000, nowMs: Int64 = 0) -> CacheEntry {
        let head = Array("HTTP/1.1 200 OK\r\nContent-Length: \(body)\r\n".utf8)
        let h = malloc(head.count)!
        head.withUnsafeBytes { h.copyMemory(from: $0.baseAddress!, byteCount: head.count) }
        let b = body > 0 ? malloc(body)! : nil
        if let b { memset(b, 0x61, body) }
        return CacheEntry(head: h, headLength: head.count, notModifiedLength: 0, body: b, bodyLength: body, status: 200,
                          freshness: CacheFreshness(responseMs: nowMs, initialAgeMs: 0, lifetimeMs: lifetimeMs, staleIfErrorMs: 0),
                          etag: nil, lastModified: nil, variantKey: variantKey, keyLength: key.utf8.count)
    }

    func insert(_ s: CacheStore, _ key: String, body: Int, nowMs: Int64 = 0) -> CacheEntry {
        let e = Self.entry(key, body: body, nowMs: nowMs)
        s.insert(e, key: Array(key.utf8), hash: CacheKey.hash(Array(key.utf8)), varyNames: [], nowMs: nowMs)
        return e
    }

    func lookup(_ s: CacheStore, _ key: String, nowMs: Int64 = 0, request: String = "GET / HTTP/1.1\r\nHost: h\r\n\r\n") -> CacheEntry? {
        Self.lookup(s, key, nowMs: nowMs, request: request)
    }

    static func lookup(_ s: CacheStore, _ key: String, nowMs: Int64 = 0, request: String = "GET / HTTP/1.1\r\nHost: h\r\n\r\n") -> CacheEntry? {
        var p = HTTPRequestParser()
        var head = HTTPRequestHead()
        let b = Array(request.utf8)
        _ = b.withUnsafeBytes { p.parse($0, into: &head) }
        let k = Array(key.utf8)
        let r = k.withUnsafeBytes { kb in
            b.withUnsafeBytes { bb in
                s.lookup(CacheLookupRequest(key: kb, hash: CacheKey.hash(kb), head: head, bytes: bb, maxAge: nil, minFresh: nil),
                         nowMs: nowMs, collapse: false, makeWaiter: { fatalError("no collapsing here") })
            }
        }
        if case .hit(let e) = r { return e }
        return nil
    }

    /// Keys of one length, so equal bodies have equal charges.
    func k(_ i: Int) -> String { Self.key(i) }
    static func key(_ i: Int) -> String { String(format: "/k%03d", i) }

    func testLeastRecentlyUsedGoFirstAndTheBoundHolds() {
        let one = Self.entry(k(0), body: 10_000).charge
        let s = CacheStore(capacity: one * 10, shards: 4)
        for i in 0..<10 { _ = insert(s, k(i), body: 10_000, nowMs: Int64(i)) }
        XCTAssertEqual(s.entries, 10)
        XCTAssertEqual(s.bytes, one * 10)
        // /k0 is used again: it becomes the most recent, so /k1 and /k2 go first.
        XCTAssertNotNil(lookup(s, k(0), nowMs: 20))
        _ = insert(s, k(10), body: 10_000, nowMs: 21)
        _ = insert(s, k(11), body: 10_000, nowMs: 22)
        XCTAssertLessThanOrEqual(s.bytes, one * 10)
        XCTAssertEqual(s.entries, 10)
        XCTAssertEqual(s.evictions, 2)
        XCTAssertNotNil(lookup(s, k(0), nowMs: 23), "recently used: kept")
        XCTAssertNil(lookup(s, k(1), nowMs: 23), "least recently used: evicted")
        XCTAssertNil(lookup(s, k(2), nowMs: 23))
        XCTAssertNotNil(lookup(s, k(3), nowMs: 23))
        // Many more: never above the bound.
        for i in 12..<200 {
            _ = insert(s, k(i), body: 1000 + i * 37, nowMs: Int64(100 + i))
            XCTAssertLessThanOrEqual(s.bytes, one * 10)
        }
    }

    func testAnEvictedEntryLivesUntilItsLastReaderDropsIt() {
        let s = CacheStore(capacity: Self.entry("/a", body: 50_000).charge, shards: 1)
        weak var weakEntry: CacheEntry?
        var reader: CacheEntry?
        do {
            let e = insert(s, "/a", body: 50_000)
            weakEntry = e
            reader = lookup(s, "/a")
        }
        XCTAssertNotNil(reader)
        _ = insert(s, "/b", body: 50_000)
        XCTAssertNil(lookup(s, "/a"), "evicted from the index")
        XCTAssertNotNil(weakEntry, "but alive while read")
        XCTAssertEqual(reader?.bodyLength, 50_000)
        XCTAssertEqual(reader.map { $0.body!.load(fromByteOffset: 49_999, as: UInt8.self) }, 0x61, "its bytes intact")
        reader = nil
        XCTAssertNil(weakEntry, "freed with its last reader")
        XCTAssertEqual(s.entries, 1)
    }

    func testVariantsAndPurge() {
        let s = CacheStore(capacity: 1 << 20)
        let names = [Array("accept-language".utf8)]
        func request(_ lang: String) -> String { "GET /p HTTP/1.1\r\nHost: h\r\nAccept-Language: \(lang)\r\n\r\n" }
        func variantKey(_ lang: String) -> [UInt8] {
            var p = HTTPRequestParser()
            var h = HTTPRequestHead()
            let b = Array(request(lang).utf8)
            _ = b.withUnsafeBytes { p.parse($0, into: &h) }
            return b.withUnsafeBytes { CacheVary.variantKey(names, h, $0) }
        }
        let key = Array("/p".utf8)
        for lang in ["en", "de"] {
            s.insert(Self.entry("/p", body: lang == "en" ? 2 : 3, variantKey: variantKey(lang)), key: key, hash: CacheKey.hash(key), varyNames: names, nowMs: 0)
        }
        XCTAssertEqual(lookup(s, "/p", request: request("en"))?.bodyLength, 2)
        XCTAssertEqual(lookup(s, "/p", request: request("de"))?.bodyLength, 3)
        XCTAssertNil(lookup(s, "/p", request: request("fr")))
        XCTAssertNil(lookup(s, "/p"), "no Accept-Language is another variant")
        // The same variant again replaces it.
        s.insert(Self.entry("/p", body: 4, variantKey: variantKey("en")), key: key, hash: CacheKey.hash(key), varyNames: names, nowMs: 0)
        XCTAssertEqual(s.entries, 2)
        XCTAssertEqual(lookup(s, "/p", request: request("en"))?.bodyLength, 4)
        // A response without Vary replaces every variant.
        s.insert(Self.entry("/p", body: 5), key: key, hash: CacheKey.hash(key), varyNames: [], nowMs: 0)
        XCTAssertEqual(s.entries, 1)
        XCTAssertEqual(lookup(s, "/p", request: request("de"))?.bodyLength, 5)

        _ = insert(s, "/q", body: 1)
        _ = insert(s, "/r", body: 1)
        XCTAssertEqual(s.purge(key: Array("/q".utf8)), 1)
        XCTAssertEqual(s.purge(key: Array("/q".utf8)), 0)
        XCTAssertNil(lookup(s, "/q"))
        XCTAssertNotNil(lookup(s, "/r"))
        XCTAssertEqual(s.purgeAll(), 2)
        XCTAssertEqual(s.entries, 0)
        XCTAssertEqual(s.bytes, 0)
    }

    func testStaleEntriesAreNotHitsButComeBackForStaleIfError() throws {
        let s = CacheStore(capacity: 1 << 20)
        let key = Array("/s".utf8)
        s.insert(Self.entry("/s", body: 1, lifetimeMs: 1000, nowMs: 0), key: key, hash: CacheKey.hash(key), varyNames: [], nowMs: 0)
        XCTAssertNotNil(lookup(s, "/s", nowMs: 999))
        XCTAssertNil(lookup(s, "/s", nowMs: 1000))
        var p = HTTPRequestParser()
        var head = HTTPRequestHead()
        let b = Array("GET /s HTTP/1.1\r\nHost: h\r\n\r\n".utf8)
        _ = b.withUnsafeBytes { p.parse($0, into: &head) }
        let loop = try EventLoop(id: 99)
        let r = key.withUnsafeBytes { kb in
            b.withUnsafeBytes { bb in
                s.lookup(CacheLookupRequest(key: kb, hash: CacheKey.hash(kb), head: head, bytes: bb, maxAge: nil, minFresh: nil),
                         nowMs: 5000, collapse: true, makeWaiter: { CacheWaiter(loop: loop, target: NoTarget()) })
            }
        }
        guard case .lead(let fill, let stale) = r else { return XCTFail("a stale entry: this request leads a fill") }
        XCTAssertNotNil(stale)
        XCTAssertEqual(s.fillsInProgress, 1)
        s.endFill(fill, outcome: .notStored)
        XCTAssertEqual(s.fillsInProgress, 0)
        XCTAssertEqual(s.entries, 1, "the stale entry stays (for stale-if-error) until evicted or replaced")
    }

    /// Many threads hit, insert, purge and evict at once: counts stay consistent (and TSan sees the locking).
    func testConcurrentUseKeepsTheCountsRight() {
        let one = Self.entry(k(0), body: 100).charge
        let s = CacheStore(capacity: one * 64, shards: 16)
        DispatchQueue.concurrentPerform(iterations: 4) { t in
            for i in 0..<4000 {
                let k = Self.key((i * 7 + t * 13) % 200)
                if i % 5 == 0 {
                    let e = Self.entry(k, body: 100, nowMs: Int64(i))
                    s.insert(e, key: Array(k.utf8), hash: CacheKey.hash(Array(k.utf8)), varyNames: [], nowMs: Int64(i))
                } else if i % 97 == 0 {
                    _ = s.purge(key: Array(k.utf8))
                } else {
                    _ = Self.lookup(s, k, nowMs: Int64(i))
                }
            }
        }
        XCTAssertLessThanOrEqual(s.bytes, one * 64)
        XCTAssertEqual(s.bytes, s.entries * one)
        let n = s.entries
        XCTAssertEqual(s.purgeAll(), n)
        XCTAssertEqual(s.bytes, 0)
    }
}

private final class NoTarget: CacheWakeable {
    func cacheWake(_ outcome: CacheFillOutcome) {}
}
