// Per-loop cache of fixed-size byte buffers: connections borrow one while they have bytes in flight and return it when idle.
import HuddleSys

/// A borrowed buffer: raw memory plus read/write cursors. Non-copyable: exactly one owner holds it, and the memory
/// goes back to its pool when that owner drops it (`buffer = nil`, or the owner's own end), so a buffer can be neither
/// released twice nor used after its release, by construction.
public struct IOBuffer: ~Copyable {
    public let base: UnsafeMutableRawPointer
    public let capacity: Int
    /// Bytes in [readIndex, writeIndex) are valid and not yet consumed.
    public var readIndex = 0
    public var writeIndex = 0
    // SAFETY: a pool belongs to its event loop, which outlives every connection (and so every buffer) on it; the
    // unowned(unsafe) reference keeps the struct trivially movable and spares a retain/release per buffer.
    unowned(unsafe) let pool: BufferPool

    init(base: UnsafeMutableRawPointer, capacity: Int, pool: BufferPool) {
        self.base = base
        self.capacity = capacity
        self.pool = pool
    }

    deinit { pool.reclaim(base, capacity: capacity) }

    @inline(__always) public var readableCount: Int { writeIndex - readIndex }
    @inline(__always) public var writableCount: Int { capacity - writeIndex }
    @inline(__always) public var isEmpty: Bool { readIndex == writeIndex }
    @inline(__always) public var readPointer: UnsafeMutableRawPointer { base + readIndex }
    @inline(__always) public var writePointer: UnsafeMutableRawPointer { base + writeIndex }
    @inline(__always) public var readableBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base + readIndex, count: writeIndex - readIndex) }

    /// Moves unread bytes to the front so more can be read in behind them.
    public mutating func compact() {
        if readIndex == 0 { return }
        let n = readableCount
        if n > 0 { (base).copyMemory(from: base + readIndex, byteCount: n) }
        readIndex = 0
        writeIndex = n
    }

    public mutating func clear() {
        readIndex = 0
        writeIndex = 0
    }

    /// Appends bytes; returns false (appending nothing) if they do not fit.
    @discardableResult
    public mutating func append(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count <= writableCount else { return false }
        if let b = bytes.baseAddress, bytes.count > 0 { writePointer.copyMemory(from: b, byteCount: bytes.count) }
        writeIndex += bytes.count
        return true
    }

    @discardableResult
    public mutating func append(_ s: StaticString) -> Bool {
        append(UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    @discardableResult
    public mutating func append(_ s: String) -> Bool {
        var s = s
        return s.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    @discardableResult
    public mutating func append(byte: UInt8) -> Bool {
        guard writableCount > 0 else { return false }
        writePointer.storeBytes(of: byte, as: UInt8.self)
        writeIndex += 1
        return true
    }

    /// Appends a non-negative decimal number without allocating.
    @discardableResult
    public mutating func append(decimal value: Int64) -> Bool {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var v = value < 0 ? UInt64(0) : UInt64(value)
        return withUnsafeMutableBytes(of: &digits) { d in
            var i = 20
            repeat {
                i -= 1
                d[i] = UInt8(48 + v % 10)
                v /= 10
            } while v > 0
            return append(UnsafeRawBufferPointer(rebasing: d[i..<20]))
        }
    }
}

// SAFETY: used only by its loop's thread.
public final class BufferPool {
    public let bufferSize: Int
    private var free: [UnsafeMutableRawPointer] = []
    /// Idle buffers kept for reuse; beyond this they go back to malloc so an idle proxy's RSS shrinks.
    public var maxCached = 512
    public private(set) var outstanding = 0

    public init(bufferSize: Int) {
        self.bufferSize = bufferSize
    }

    deinit {
        for p in free { p.deallocate() }
    }

    /// A buffer of at least `minimumCapacity` bytes; larger than the pool's size means a one-off allocation.
    public func acquire(minimumCapacity: Int) -> IOBuffer {
        if minimumCapacity <= bufferSize { return acquire() }
        outstanding += 1
        if outstanding > peakOutstanding { peakOutstanding = outstanding }
        return IOBuffer(base: .allocate(byteCount: minimumCapacity, alignment: 16), capacity: minimumCapacity, pool: self)
    }

    /// Most buffers lent at once since the last `trim`.
    public private(set) var peakOutstanding = 0

    /// Frees cached buffers beyond what the busiest moment since the last trim needed (at least `keep`), so a burst's
    /// buffers go back to malloc once the burst is over. Call about once a second.
    public func trim(keep: Int) {
        let target = max(keep, peakOutstanding)
        while free.count > target { free.removeLast().deallocate() }
        peakOutstanding = outstanding
    }

    public func acquire() -> IOBuffer {
        outstanding += 1
        if outstanding > peakOutstanding { peakOutstanding = outstanding }
        let p = free.popLast() ?? UnsafeMutableRawPointer.allocate(byteCount: bufferSize, alignment: 16)
        return IOBuffer(base: p, capacity: bufferSize, pool: self)
    }

    /// Gives a buffer back now. Dropping it does the same; this spells it out where that reads better.
    public func release(_ buffer: consuming IOBuffer) {
        _ = consume buffer
    }

    /// Called once per buffer, by its deinit.
    fileprivate func reclaim(_ base: UnsafeMutableRawPointer, capacity: Int) {
        outstanding -= 1
        if free.count < maxCached && capacity == bufferSize {
            free.append(base)
        } else {
            base.deallocate()
        }
    }

    public var cachedCount: Int { free.count }
}

extension Optional where Wrapped: ~Copyable {
    /// The wrapped value, borrowed in place (or mutated in place), never moved out: `buffer.unwrapped.readableBytes`.
    /// A plain `buffer!.readableBytes` would try to move a non-copyable value out of its owner. Traps on nil, like `!`.
    @inline(__always)
    public var unwrapped: Wrapped {
        _read { yield self! }
        _modify { yield &self! }
    }
}

extension Optional where Wrapped == IOBuffer {
    /// Unread bytes of the buffer; 0 when there is no buffer.
    @inline(__always)
    public var readableCountOrZero: Int { self != nil ? self.unwrapped.readableCount : 0 }
}
