// Test helpers for gzip: zlib inflate (the independent check of what Huddle's deflate produced) and an HTTP/1.1
// chunked-body decoder that insists on exact framing.
import CZlib
import Foundation

enum GzipTesting {
    /// Inflates a complete gzip member (windowBits 31); nil if the data is not one valid, complete member.
    static func gunzip(_ data: [UInt8]) -> [UInt8]? {
        guard let r = inflatePrefix(data), r.ended, r.consumed == data.count else { return nil }
        return r.output
    }

    /// Inflates as much of a gzip stream as `data` holds: what a client can decode so far (after a sync flush, all
    /// of the input compressed so far). `ended`: the member's trailer was read (and checked: CRC and length).
    static func inflatePrefix(_ data: [UInt8]) -> (output: [UInt8], ended: Bool, consumed: Int)? {
        var z = z_stream()
        guard huddle_inflateInit2(&z, 31) == Z_OK else { return nil }
        defer { inflateEnd(&z) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        var input = data
        var ended = false
        let ok: Bool = input.withUnsafeMutableBufferPointer { inp in
            z.next_in = inp.baseAddress
            z.avail_in = uInt(inp.count)
            while true {
                let r: Int32 = chunk.withUnsafeMutableBufferPointer { c in
                    z.next_out = c.baseAddress
                    z.avail_out = uInt(c.count)
                    return inflate(&z, Z_SYNC_FLUSH)
                }
                let produced = chunk.count - Int(z.avail_out)
                out += chunk[0..<produced]
                if r == Z_STREAM_END { ended = true; return true }
                if r == Z_BUF_ERROR || (r == Z_OK && z.avail_in == 0 && produced < chunk.count) { return true }
                if r != Z_OK { return false }
            }
        }
        guard ok else { return nil }
        return (out, ended, data.count - Int(z.avail_in))
    }

    /// Decodes a chunked body: the payload, whether the last chunk and the final CRLF were seen, and the bytes after
    /// them. nil on any framing error.
    static func dechunk(_ b: [UInt8]) -> (payload: [UInt8], complete: Bool, rest: [UInt8], chunks: Int)? {
        var i = 0
        var payload: [UInt8] = []
        var chunks = 0
        while true {
            guard let lineEnd = find(b, "\r\n", from: i) else { return (payload, false, [], chunks) }
            guard let size = Int(String(decoding: b[i..<lineEnd], as: UTF8.self), radix: 16) else { return nil }
            i = lineEnd + 2
            if size == 0 {
                guard b.count >= i + 2 else { return (payload, false, [], chunks) }
                guard b[i] == 13 && b[i + 1] == 10 else { return nil }
                return (payload, true, Array(b[(i + 2)...]), chunks)
            }
            guard b.count >= i + size + 2 else { return (payload, false, [], chunks) }
            payload += b[i..<(i + size)]
            guard b[i + size] == 13 && b[i + size + 1] == 10 else { return nil }
            i += size + 2
            chunks += 1
        }
    }

    static func find(_ b: [UInt8], _ s: String, from: Int) -> Int? {
        let n = Array(s.utf8)
        guard b.count >= n.count else { return nil }
        var i = from
        while i + n.count <= b.count {
            if b[i..<(i + n.count)].elementsEqual(n) { return i }
            i += 1
        }
        return nil
    }

    /// Splits a response into head (text, up to the blank line) and the bytes after it.
    static func split(_ b: [UInt8]) -> (head: String, body: [UInt8])? {
        guard let e = find(b, "\r\n\r\n", from: 0) else { return nil }
        return (String(decoding: b[0..<e], as: UTF8.self), Array(b[(e + 4)...]))
    }

    /// Text that compresses like real JSON (not a short repeating pattern): seeded, varied records.
    static func jsonLike(_ count: Int, seed: UInt64 = 1) -> [UInt8] {
        var state = seed
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        let words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
        var out: [UInt8] = Array("[".utf8)
        var n = 0
        while out.count < count {
            let r = next()
            let rec = "{\"id\":\(n),\"name\":\"\(words[Int(r % 10)])-\(r >> 40)\",\"score\":\(Int(r >> 20 & 0xFFFF)),\"tags\":[\"\(words[Int(r >> 8 % 10)])\"]},\n"
            out += Array(rec.utf8)
            n += 1
        }
        return Array(out.prefix(count))
    }
}
