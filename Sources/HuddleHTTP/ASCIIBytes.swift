// Byte-level ASCII helpers shared by the parsers: character classes, case-insensitive compares, list tokens.

/// Helpers over raw bytes; none of them allocate, so they are safe to call on the hot path.
public enum ASCIIBytes {
    // RFC 9110 5.6.2 tchar as two bitmasks (bytes 0-63 and 64-127); a test rebuilds them from the RFC's list.
    @usableFromInline static let tokenMaskLow: UInt64 = 0x03ff_6cfa_0000_0000
    @usableFromInline static let tokenMaskHigh: UInt64 = 0x57ff_ffff_c7ff_fffe

    /// RFC 9110 tchar.
    @inlinable @inline(__always)
    public static func isTokenByte(_ b: UInt8) -> Bool {
        // Selects the mask without a branch; bytes from 128 up shift the bit out of both masks' reach.
        let mask = b & 64 == 0 ? tokenMaskLow : tokenMaskHigh
        return b < 128 && (mask >> UInt64(b & 63)) & 1 == 1
    }

    /// Allowed inside a field value: HTAB, SP, VCHAR, obs-text (RFC 9110 5.5); everything else is a control byte.
    @inlinable @inline(__always)
    public static func isFieldValueByte(_ b: UInt8) -> Bool {
        b == 0x09 || (b >= 0x20 && b != 0x7F)
    }

    @inlinable @inline(__always)
    public static func isOWS(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 }

    @inlinable @inline(__always)
    public static func lowercased(_ b: UInt8) -> UInt8 {
        (b >= 0x41 && b <= 0x5A) ? b | 0x20 : b
    }

    /// Value of a hexadecimal digit, or nil.
    @inlinable @inline(__always)
    public static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: return b &- 0x30
        case 0x41...0x46: return b &- 0x37
        case 0x61...0x66: return b &- 0x57
        default: return nil
        }
    }

    /// Whether `bytes[range]` equals `literal`, ignoring ASCII case. `literal` should be ASCII.
    @inlinable
    public static func equalsCaseInsensitive(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>,
                                             _ literal: StaticString) -> Bool {
        let n = literal.utf8CodeUnitCount
        guard range.count == n else { return false }
        let lit = literal.utf8Start
        var i = 0
        while i < n {
            if lowercased(bytes[range.lowerBound &+ i]) != lowercased(lit[i]) { return false }
            i &+= 1
        }
        return true
    }

    /// Whether two ranges of the same buffer hold the same bytes ignoring ASCII case (header names).
    @inlinable
    public static func equalsCaseInsensitive(_ bytes: UnsafeRawBufferPointer, _ a: Range<Int>, _ b: Range<Int>) -> Bool {
        guard a.count == b.count else { return false }
        var i = 0
        while i < a.count {
            if lowercased(bytes[a.lowerBound &+ i]) != lowercased(bytes[b.lowerBound &+ i]) { return false }
            i &+= 1
        }
        return true
    }

    /// Whether `bytes[range]` equals `literal` exactly (case-sensitive).
    @inlinable
    public static func equals(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ literal: StaticString) -> Bool {
        let n = literal.utf8CodeUnitCount
        guard range.count == n else { return false }
        let lit = literal.utf8Start
        var i = 0
        while i < n {
            if bytes[range.lowerBound &+ i] != lit[i] { return false }
            i &+= 1
        }
        return true
    }

    /// Whether `bytes[range]` equals `other` exactly (case-sensitive).
    @inlinable
    public static func equals(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ other: some Collection<UInt8>) -> Bool {
        guard range.count == other.count else { return false }
        var i = range.lowerBound
        for b in other {
            if bytes[i] != b { return false }
            i &+= 1
        }
        return true
    }

    /// `range` with leading and trailing SP/HTAB removed.
    @inlinable
    public static func trimmingOWS(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Range<Int> {
        var lo = range.lowerBound
        var hi = range.upperBound
        while lo < hi && isOWS(bytes[lo]) { lo &+= 1 }
        while hi > lo && isOWS(bytes[hi &- 1]) { hi &-= 1 }
        return lo..<hi
    }

    /// Calls `body` with each element of a comma-separated list (RFC 9110 5.6.1), OWS-trimmed; empty
    /// elements (`a, ,b`) are skipped as the RFC asks recipients to do.
    @inlinable
    public static func forEachToken(in range: Range<Int>, of bytes: UnsafeRawBufferPointer,
                                    body: (Range<Int>) throws -> Void) rethrows {
        var start = range.lowerBound
        var i = range.lowerBound
        while i <= range.upperBound {
            if i == range.upperBound || bytes[i] == 0x2C {
                let element = trimmingOWS(bytes, start..<i)
                if !element.isEmpty { try body(element) }
                start = i &+ 1
            }
            i &+= 1
        }
    }

    /// Whether the comma-separated list in `bytes[range]` contains `token`, ignoring ASCII case.
    @inlinable
    public static func listContainsToken(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>,
                                         _ token: StaticString) -> Bool {
        var found = false
        forEachToken(in: range, of: bytes) { element in
            if !found && equalsCaseInsensitive(bytes, element, token) { found = true }
        }
        return found
    }

    // Word-at-a-time scans (SWAR): eight bytes per step on the hot path; the tail and any suspicious word
    // fall back to the byte loop, so results are identical to the obvious loop.
    @usableFromInline static let ones: UInt64 = 0x0101_0101_0101_0101
    @usableFromInline static let highs: UInt64 = 0x8080_8080_8080_8080

    /// Offset of the first LF in `from..<to`, or `to`.
    @inlinable
    public static func firstLF(_ bytes: UnsafeRawBufferPointer, from: Int, to: Int) -> Int {
        var i = from
        while i &+ 8 <= to {
            let w = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            let x = w ^ (ones &* 0x0A)
            let zero = (x &- ones) & ~x & highs
            // The lowest flagged byte is always a true match; borrows only flag bytes above it.
            if zero != 0 { return i &+ (zero.trailingZeroBitCount >> 3) }
            i &+= 8
        }
        while i < to {
            if bytes[i] == 0x0A { return i }
            i &+= 1
        }
        return to
    }

    /// Offset of the first byte in `from..<to` that may not appear in a field value, or `to`.
    @inlinable
    public static func firstInvalidFieldValueByte(_ bytes: UnsafeRawBufferPointer, from: Int, to: Int) -> Int {
        var i = from
        while i &+ 8 <= to {
            let w = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            let below20 = (w &- ones &* 0x20) & ~w & highs
            let x = w ^ (ones &* 0x7F)
            let del = (x &- ones) & ~x & highs
            if below20 | del != 0 {
                // HTAB also trips the test; look at this word byte by byte.
                for j in i..<(i &+ 8) where !isFieldValueByte(bytes[j]) { return j }
            }
            i &+= 8
        }
        while i < to {
            if !isFieldValueByte(bytes[i]) { return i }
            i &+= 1
        }
        return to
    }
}
