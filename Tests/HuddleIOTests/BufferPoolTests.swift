// Buffer pool reuse and IOBuffer's cursor arithmetic and allocation-free decimal formatting.
@testable import HuddleIO
import XCTest

final class BufferPoolTests: XCTestCase {
    func testReleasedBuffersAreReused() {
        let pool = BufferPool(bufferSize: 4096)
        let a = pool.acquire()
        let b = pool.acquire()
        XCTAssertNotEqual(a.base, b.base)
        XCTAssertEqual(pool.outstanding, 2)
        pool.release(a)
        XCTAssertEqual(pool.outstanding, 1)
        XCTAssertEqual(pool.cachedCount, 1)
        let c = pool.acquire()
        XCTAssertEqual(c.base, a.base, "the cached buffer comes back")
        XCTAssertEqual(c.readableCount, 0, "with fresh cursors")
        pool.release(b)
        pool.release(c)
        XCTAssertEqual(pool.outstanding, 0)
    }

    func testCacheIsBounded() {
        let pool = BufferPool(bufferSize: 1024)
        pool.maxCached = 2
        let bufs = (0..<5).map { _ in pool.acquire() }
        for b in bufs { pool.release(b) }
        XCTAssertEqual(pool.cachedCount, 2)
        XCTAssertEqual(pool.outstanding, 0)
    }

    func testAppendDecimal() {
        let pool = BufferPool(bufferSize: 256)
        var buf = pool.acquire()
        defer { pool.release(buf) }
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
        defer { pool.release(buf) }
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
}
