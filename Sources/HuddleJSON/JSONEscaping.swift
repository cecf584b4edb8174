// JSON string escaping over raw bytes (RFC 8259): the one escaper in Huddle, used by the admin port, the access log
// and the demo backend. Pure, no Foundation, no allocation on the byte-level path.

/// Escapes bytes for the inside of a JSON string.
///
/// - `"` and `\` become `\"` and `\\`; control bytes below 0x20 become `\b \t \n \f \r` or `\u00XX`; DEL (0x7F) becomes
///   `\u007f` (JSON allows it raw, but it garbles terminals that show logs).
/// - Well-formed UTF-8 is copied as is (no `\u` escapes for non-ASCII text).
/// - Bytes that are not well-formed UTF-8 (raw header and group-key bytes may be anything) are replaced by U+FFFD,
///   one replacement per maximal invalid subpart (Unicode's recommended practice, the same as Swift's
///   `String(decoding:as: UTF8.self)`), so the output is always valid JSON text.
public enum JSONEscaping {
    /// Worst-case growth of `escape`: a control byte becomes six bytes (`\u001f`); an invalid byte three (U+FFFD).
    public static let maxExpansion = 6

    /// Whether `b` is copied unchanged: printable ASCII other than `"` and `\`.
    @inline(__always) @usableFromInline
    static func isPlain(_ b: UInt8) -> Bool {
        b &- 0x20 < 0x5F && b != 0x22 && b != 0x5C
    }

    /// The letter of a two-byte escape (`\n` -> `n`), or 0 when the byte needs `\u00XX`.
    @inline(__always) @usableFromInline
    static func shortEscape(_ b: UInt8) -> UInt8 {
        switch b {
        case 0x22: return 0x22      // \"
        case 0x5C: return 0x5C      // \\
        case 0x08: return 0x62      // \b
        case 0x09: return 0x74      // \t
        case 0x0A: return 0x6E      // \n
        case 0x0C: return 0x66      // \f
        case 0x0D: return 0x72      // \r
        default: return 0
        }
    }

    @inline(__always) @usableFromInline
    static func isContinuation(_ b: UInt8) -> Bool { b & 0xC0 == 0x80 }

    /// At a byte >= 0x80: the length of the well-formed UTF-8 sequence starting at `i` (2...4), or the negated
    /// length of the maximal subpart of one that is cut short or wrong (-1...-3), which one U+FFFD replaces.
    @inline(__always) @usableFromInline
    static func sequenceLength(_ p: UnsafeRawBufferPointer, _ i: Int) -> Int {
        let n = p.count
        let b0 = p[i]
        if b0 < 0xC2 { return -1 }                          // a stray continuation byte, or an overlong C0/C1 lead
        if b0 < 0xE0 {
            return i &+ 1 < n && isContinuation(p[i &+ 1]) ? 2 : -1
        }
        if b0 < 0xF0 {
            // E0: A0..BF (no overlongs); ED: 80..9F (no surrogates); others 80..BF.
            let lo: UInt8 = b0 == 0xE0 ? 0xA0 : 0x80
            let hi: UInt8 = b0 == 0xED ? 0x9F : 0xBF
            guard i &+ 1 < n, p[i &+ 1] >= lo, p[i &+ 1] <= hi else { return -1 }
            guard i &+ 2 < n, isContinuation(p[i &+ 2]) else { return -2 }
            return 3
        }
        if b0 < 0xF5 {
            // F0: 90..BF (no overlongs); F4: 80..8F (nothing above U+10FFFF); others 80..BF.
            let lo: UInt8 = b0 == 0xF0 ? 0x90 : 0x80
            let hi: UInt8 = b0 == 0xF4 ? 0x8F : 0xBF
            guard i &+ 1 < n, p[i &+ 1] >= lo, p[i &+ 1] <= hi else { return -1 }
            guard i &+ 2 < n, isContinuation(p[i &+ 2]) else { return -2 }
            guard i &+ 3 < n, isContinuation(p[i &+ 3]) else { return -3 }
            return 4
        }
        return -1                                           // F5..FF never appear in UTF-8
    }

    @usableFromInline static let hexDigits: StaticString = "0123456789abcdef"

    /// Escapes `input` (no surrounding quotes) into `output`.
    ///
    /// Stops before the first unit (a run of plain bytes is split freely; an escape, a whole UTF-8 sequence or one
    /// replacement is not) whose escaped form does not fit, so what was written is always a complete JSON string
    /// body; `read < input.count` then says the input was cut. Never allocates.
    public static func escape(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> (read: Int, written: Int) {
        let n = input.count
        let cap = output.count
        var i = 0
        var o = 0
        while i < n {
            let b = input[i]
            if isPlain(b) {
                var j = i &+ 1
                while j < n && isPlain(input[j]) { j &+= 1 }
                let len = Swift.min(j &- i, cap &- o)
                if len > 0 { (output.baseAddress! + o).copyMemory(from: input.baseAddress! + i, byteCount: len) }
                i &+= len
                o &+= len
                if i < j { break }                          // output full
                continue
            }
            if b < 0x80 {
                let e = shortEscape(b)
                if e != 0 {
                    guard o &+ 2 <= cap else { break }
                    output[o] = 0x5C
                    output[o &+ 1] = e
                    o &+= 2
                } else {
                    guard o &+ 6 <= cap else { break }
                    output[o] = 0x5C; output[o &+ 1] = 0x75; output[o &+ 2] = 0x30; output[o &+ 3] = 0x30
                    hexDigits.withUTF8Buffer { h in
                        output[o &+ 4] = h[Int(b >> 4)]
                        output[o &+ 5] = h[Int(b & 0xF)]
                    }
                    o &+= 6
                }
                i &+= 1
                continue
            }
            let l = sequenceLength(input, i)
            if l > 0 {
                guard o &+ l <= cap else { break }
                for k in 0..<l { output[o &+ k] = input[i &+ k] }
                o &+= l
                i &+= l
            } else {
                guard o &+ 3 <= cap else { break }
                output[o] = 0xEF; output[o &+ 1] = 0xBF; output[o &+ 2] = 0xBD
                o &+= 3
                i &-= l
            }
        }
        return (i, o)
    }

    /// The exact length of `escape`'s output for all of `input`.
    public static func escapedCount(_ input: UnsafeRawBufferPointer) -> Int {
        let n = input.count
        var i = 0
        var count = 0
        while i < n {
            let b = input[i]
            if isPlain(b) {
                count &+= 1
                i &+= 1
            } else if b < 0x80 {
                count &+= shortEscape(b) != 0 ? 2 : 6
                i &+= 1
            } else {
                let l = sequenceLength(input, i)
                if l > 0 { count &+= l; i &+= l } else { count &+= 3; i &-= l }
            }
        }
        return count
    }

    /// `input` as a quoted JSON string, appended to `out` (one reservation, no intermediate copies).
    public static func appendQuoted(_ input: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        let need = escapedCount(input)
        out.reserveCapacity(out.count + need + 2)
        out.append(0x22)
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: need))
        out.withUnsafeMutableBytes { o in
            let r = escape(input, into: UnsafeMutableRawBufferPointer(rebasing: o[start...]))
            precondition(r.read == input.count && r.written == need, "escapedCount and escape disagree")
        }
        out.append(0x22)
    }

    /// `input` as a quoted JSON string.
    public static func quoted(bytes input: UnsafeRawBufferPointer) -> String {
        let need = escapedCount(input)
        return String(unsafeUninitializedCapacity: need + 2) { buf in
            buf[0] = 0x22
            let r = escape(input, into: UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(buf)[1..<(need + 1)]))
            precondition(r.read == input.count && r.written == need, "escapedCount and escape disagree")
            buf[need + 1] = 0x22
            return need + 2
        }
    }

    /// `bytes` as a quoted JSON string.
    public static func quoted(bytes: some Sequence<UInt8>) -> String {
        if let s = bytes.withContiguousStorageIfAvailable({ quoted(bytes: UnsafeRawBufferPointer($0)) }) { return s }
        let a = Array(bytes)
        return a.withUnsafeBytes { quoted(bytes: $0) }
    }

    /// `s` as a quoted JSON string.
    public static func quoted(_ s: String) -> String {
        var s = s
        return s.withUTF8 { quoted(bytes: UnsafeRawBufferPointer($0)) }
    }
}
