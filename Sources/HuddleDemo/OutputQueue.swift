// The bytes a demo connection owes its peer: a pooled buffer for the common small case, a spill array for big messages.
import HuddleIO
import HuddleSys

/// Order is preserved: once anything spills, later appends spill too until the spill is written out.
/// The pooled buffer is lent only while the connection is busy (`holdsBuffer`); an idle queue holds none.
struct OutputQueue: ~Copyable {
    private var store: IOBuffer?
    private var spill: [UInt8] = []
    private var spillOffset = 0

    init(buffer: consuming IOBuffer) {
        store = consume buffer
    }

    var holdsBuffer: Bool { store != nil }
    /// The pooled buffer; only while `holdsBuffer`.
    private var buffer: IOBuffer {
        _read { yield store! }
        _modify { yield &store! }
    }

    /// Gives the pooled buffer back (only when empty: nothing owed may be lost).
    mutating func releaseBuffer() {
        precondition(isEmpty, "releasing an output buffer that still holds bytes")
        store = nil
    }

    /// The connection is closing: whatever is still owed is dropped with the buffer.
    mutating func discardAll() {
        store = nil
        spill = []
        spillOffset = 0
    }

    mutating func adopt(_ b: consuming IOBuffer) {
        store = consume b
    }

    var isEmpty: Bool { buffer.isEmpty && spillOffset == spill.count }
    var pendingCount: Int { buffer.readableCount + spill.count - spillOffset }
    /// Room left in the pooled buffer without spilling: producers that respect backpressure stop when it is small.
    var bufferSpace: Int { spill.isEmpty ? buffer.capacity - buffer.readableCount : 0 }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        if bytes.isEmpty { return }
        if spill.isEmpty {
            if buffer.writableCount < bytes.count && buffer.readIndex > 0 { buffer.compact() }
            if buffer.append(bytes) { return }
        }
        spill.append(contentsOf: bytes)
    }

    mutating func append(_ s: StaticString) {
        append(UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    mutating func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    mutating func append(decimal value: Int64) {
        // Twenty digits hold any Int64; formatting on the stack keeps the hot path allocation-free.
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { d in
            var v = value < 0 ? UInt64(0) : UInt64(value)
            var i = 24
            repeat {
                i -= 1
                d[i] = UInt8(48 + v % 10)
                v /= 10
            } while v > 0
            append(UnsafeRawBufferPointer(rebasing: d[i..<24]))
        }
    }

    mutating func append(hex value: Int) {
        var digits: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &digits) { d in
            var v = UInt(value)
            var i = 16
            repeat {
                i -= 1
                let n = UInt8(v & 0xF)
                d[i] = n < 10 ? 48 + n : 87 + n
                v >>= 4
            } while v > 0
            append(UnsafeRawBufferPointer(rebasing: d[i..<16]))
        }
    }

    /// Writes as much as the socket takes; true when everything was written.
    mutating func flush(to fd: Int32) throws(Errno) -> Bool {
        while !buffer.isEmpty {
            switch try Sys.write(fd, buffer.readPointer, buffer.readableCount) {
            case .wouldBlock:
                return false
            case .done(let n):
                buffer.readIndex += n
            }
        }
        buffer.clear()
        while spillOffset < spill.count {
            let offset = spillOffset
            let r = spill.withUnsafeBytes { p in
                Result { () throws(Errno) -> IOResult<Int> in try Sys.write(fd, p.baseAddress! + offset, p.count - offset) }
            }
            switch try r.get() {
            case .wouldBlock:
                return false
            case .done(let n):
                spillOffset += n
            }
        }
        if !spill.isEmpty {
            // A 16 MiB echo should not pin 16 MiB for the rest of the connection's life.
            spill.removeAll(keepingCapacity: spill.capacity <= 256 * 1024)
            spillOffset = 0
        }
        return true
    }
}
