// Buffer pool reuse and IOBuffer's cursor arithmetic and allocation-free decimal formatting.
@testable import HuddleIO
import XCTest

final class BufferPoolTests: XCTestCase {
    func testReleasedBuffersAreReused() {
        let pool = BufferPool(bufferSize: 4096)
        var a: IOBuffer? = pool.acquire()
        let b = pool.acquire()
        let aBase = a.unwrapped.base
        XCTAssertNotEqual(aBase, b.base)
        XCTAssertEqual(pool.outstanding, 2)
        a = nil   // dropping a buffer gives it back
        XCTAssertEqual(pool.outstanding, 1)
        XCTAssertEqual(pool.cachedCount, 1)
        let c = pool.acquire()
        XCTAssertEqual(c.base, aBase, "the cached buffer comes back")
        XCTAssertEqual(c.readableCount, 0, "with fresh cursors")
        pool.release(b)
        pool.release(c)
        XCTAssertEqual(pool.outstanding, 0)
    }

    func testCacheIsBounded() {
        let pool = BufferPool(bufferSize: 1024)
        pool.maxCached = 2
        do {
            let b0 = pool.acquire(), b1 = pool.acquire(), b2 = pool.acquire(), b3 = pool.acquire(), b4 = pool.acquire()
            XCTAssertEqual(pool.outstanding, 5)
            pool.release(b0); pool.release(b1); pool.release(b2); pool.release(b3); pool.release(b4)
        }
        XCTAssertEqual(pool.cachedCount, 2)
        XCTAssertEqual(pool.outstanding, 0)
    }

    func testAppendDecimal() {
        let pool = BufferPool(bufferSize: 256)
        var buf = pool.acquire()
        for v: Int64 in [0, 7, 10, 1_234_567_890, Int64.max] {
            buf.clear()
            XCTAssertTrue(buf.append(decimal: v))
            XCTAssertEqual(String(decoding: buf.readableBytes, as: UTF8.self), String(v))
        }
        buf.clear()
        XCTAssertTrue(buf.append(decimal: -5))
        XCTAssertEqual(String(decoding: buf.readableBytes, as: UTF8.self), "0", "negative values clamp to 0")
    }

    func testAppendRefusesWhatDoesNotFitAndCompactKeepsUnreadBytes() {
        let pool = BufferPool(bufferSize: 16)
        var buf = pool.acquire()
        XCTAssertTrue(buf.append("0123456789"))
        XCTAssertFalse(buf.append(decimal: 1_234_567), "7 digits do not fit in the 6 bytes left")
        XCTAssertFalse(buf.append("abcdefg"))
        XCTAssertEqual(buf.readableCount, 10, "a refused append leaves the buffer unchanged")
        buf.readIndex += 4
        buf.compact()
        XCTAssertEqual(buf.readIndex, 0)
        XCTAssertEqual(String(decoding: buf.readableBytes, as: UTF8.self), "456789")
        XCTAssertTrue(buf.append(decimal: 1_234_567))
        XCTAssertEqual(String(decoding: buf.readableBytes, as: UTF8.self), "4567891234567")
    }

    func testOversizedBuffersAreFreedNotCached() {
        let pool = BufferPool(bufferSize: 64)
        var big: IOBuffer? = pool.acquire(minimumCapacity: 1000)
        XCTAssertEqual(big.unwrapped.capacity, 1000)
        XCTAssertEqual(pool.outstanding, 1)
        big = nil
        XCTAssertEqual(pool.outstanding, 0)
        XCTAssertEqual(pool.cachedCount, 0, "only buffers of the pool's size are cached")
    }
}
