// zlib deflate streams (gzip wrapper) pooled per worker: a compressing response borrows one while it streams, and
// the stream goes back reset (deflateReset keeps its ~270 KiB of state allocated) when the token is dropped.
import CZlib

/// A borrowed deflate stream. Non-copyable, like `IOBuffer`: exactly one owner holds it, and dropping it (`stream =
/// nil`, or its owner ending, on any path) gives it back to its pool, so it can be neither leaked nor returned twice.
/// Concrete on purpose (docs/ARCHITECTURE.md: Swift 6.3 skips a generic non-copyable struct's deinit across files).
struct GzipStream: ~Copyable {
    let z: UnsafeMutablePointer<z_stream>
    let level: Int
    // SAFETY: a pool belongs to its worker, which outlives every connection (and so every stream) on its loop.
    unowned(unsafe) let pool: GzipStreamPool

    fileprivate init(z: UnsafeMutablePointer<z_stream>, level: Int, pool: GzipStreamPool) {
        self.z = z
        self.level = level
        self.pool = pool
    }

    deinit { pool.reclaim(z, level: level) }

    enum Flush {
        /// More input follows right away: let zlib choose its block boundaries.
        case none
        /// The input is momentarily drained: everything so far must reach the client (Z_SYNC_FLUSH).
        case sync
        /// The end of the body: the last block and the gzip trailer (Z_FINISH).
        case finish
    }

    struct Step {
        var consumed: Int
        var produced: Int
        /// The output space ran out before zlib was done (call again with more room and the same flush).
        var outputFull: Bool
        /// Z_STREAM_END: the gzip trailer is out.
        var ended: Bool
    }

    /// One `deflate` call: compresses from `input` into `output`. nil when zlib reports an inconsistent stream.
    func deflate(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawPointer, capacity: Int, flush: Flush) -> Step? {
        z.pointee.next_in = input.count > 0 ? UnsafeMutablePointer(mutating: input.baseAddress!.assumingMemoryBound(to: Bytef.self)) : nil
        z.pointee.avail_in = uInt(input.count)
        z.pointee.next_out = output.assumingMemoryBound(to: Bytef.self)
        z.pointee.avail_out = uInt(capacity)
        let mode: Int32 = switch flush {
        case .none: Z_NO_FLUSH
        case .sync: Z_SYNC_FLUSH
        case .finish: Z_FINISH
        }
        let r = CZlib.deflate(z, mode)
        // Z_BUF_ERROR only means no progress was possible (nothing to flush): not an error.
        guard r == Z_OK || r == Z_STREAM_END || r == Z_BUF_ERROR else { return nil }
        let left = Int(z.pointee.avail_out)
        let step = Step(consumed: input.count - Int(z.pointee.avail_in), produced: capacity - left,
                        outputFull: left == 0 && r != Z_STREAM_END, ended: r == Z_STREAM_END)
        z.pointee.next_in = nil
        z.pointee.avail_in = 0
        z.pointee.next_out = nil
        z.pointee.avail_out = 0
        return step
    }
}

/// A worker's cache of deflate streams, one free list per level. Like `BufferPool`: `outstanding` counts streams
/// lent (0 at rest), and `trim` frees cached ones beyond what the busiest moment since the last trim needed.
// SAFETY: used only by its worker's loop thread.
final class GzipStreamPool {
    /// nginx's defaults: 32 KiB window (windowBits 15, +16 for the gzip wrapper) and memLevel 8.
    static let windowBits: Int32 = 15 + 16
    static let memLevel: Int32 = 8

    private var free: [[UnsafeMutablePointer<z_stream>]] = Array(repeating: [], count: 10)
    private(set) var outstanding = 0
    /// Most streams lent at once since the last `trim`.
    private(set) var peakOutstanding = 0
    private(set) var cachedCount = 0
    /// Idle streams kept for reuse at most; beyond this they are freed at once.
    var maxCached = 64

    init() {}

    deinit {
        for list in free { for z in list { Self.destroy(z) } }
    }

    /// A stream ready for a new gzip member at `level` (1...9); nil only if zlib cannot allocate its state.
    func acquire(level: Int) -> GzipStream? {
        let level = min(9, max(1, level))
        let z: UnsafeMutablePointer<z_stream>
        if let cached = free[level].popLast() {
            cachedCount -= 1
            z = cached
        } else {
            z = .allocate(capacity: 1)
            z.initialize(to: z_stream())
            guard huddle_deflateInit2(z, Int32(level), Z_DEFLATED, Self.windowBits, Self.memLevel, Z_DEFAULT_STRATEGY) == Z_OK else {
                z.deinitialize(count: 1)
                z.deallocate()
                return nil
            }
        }
        outstanding += 1
        if outstanding > peakOutstanding { peakOutstanding = outstanding }
        return GzipStream(z: z, level: level, pool: self)
    }

    /// Frees cached streams beyond max(`keep`, the peak since the last trim). Called by the worker's housekeeping.
    func trim(keep: Int) {
        var excess = cachedCount - max(keep, peakOutstanding)
        var level = 9
        while excess > 0 && level >= 1 {
            while excess > 0, let z = free[level].popLast() {
                Self.destroy(z)
                cachedCount -= 1
                excess -= 1
            }
            level -= 1
        }
        peakOutstanding = outstanding
    }

    /// Called once per stream, by its token's deinit: reset for the next response, or freed.
    fileprivate func reclaim(_ z: UnsafeMutablePointer<z_stream>, level: Int) {
        outstanding -= 1
        if cachedCount < maxCached && deflateReset(z) == Z_OK {
            free[level].append(z)
            cachedCount += 1
        } else {
            Self.destroy(z)
        }
    }

    private static func destroy(_ z: UnsafeMutablePointer<z_stream>) {
        deflateEnd(z)
        z.deinitialize(count: 1)
        z.deallocate()
    }
}
