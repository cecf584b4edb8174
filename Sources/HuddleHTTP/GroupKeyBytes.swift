// Extracts routing group keys (raw bytes) from a parsed request: path segments, query values, cookies.
//
// Key conventions, so that every source of the same logical key yields the same bytes:
// - path keys are percent-decoded with `+` kept literal (in a path `+` is just a character);
// - query keys are percent-decoded with `+` as space (application/x-www-form-urlencoded);
// - header and cookie keys are taken verbatim.
// These functions return raw ranges; the caller decodes with `percentDecode` as above.

public enum GroupKeyBytes {
    /// The `n`th (1-based) segment of an origin-form path: in `/rooms/abc/x` segment 2 is `abc`.
    /// An empty segment (`/rooms//x`, `/rooms/`) is no key, so nil.
    public static func pathSegment(_ n: Int, path: Range<Int>, in bytes: UnsafeRawBufferPointer) -> Range<Int>? {
        guard n >= 1, !path.isEmpty else { return nil }
        var i = path.lowerBound
        if bytes[i] == 0x2F { i &+= 1 }
        var segment = 1
        var start = i
        while i <= path.upperBound {
            if i == path.upperBound || bytes[i] == 0x2F {
                if segment == n { return i > start ? start..<i : nil }
                segment &+= 1
                start = i &+ 1
            }
            i &+= 1
        }
        return nil
    }

    /// The raw value of the first `name=value` pair in a query (`a=1&b=2`) whose name, percent-decoded with
    /// `+` as space, equals `name`. A bare `name` yields an empty value.
    public static func queryValue(name: some Collection<UInt8>, query: Range<Int>,
                                  in bytes: UnsafeRawBufferPointer) -> Range<Int>? {
        var start = query.lowerBound
        var i = query.lowerBound
        while i <= query.upperBound {
            if i == query.upperBound || bytes[i] == 0x26 {
                let pair = start..<i
                var eq = pair.lowerBound
                while eq < pair.upperBound && bytes[eq] != 0x3D { eq &+= 1 }
                if decodedEquals(bytes, pair.lowerBound..<eq, name) {
                    return eq < pair.upperBound ? (eq &+ 1)..<pair.upperBound : pair.upperBound..<pair.upperBound
                }
                start = i &+ 1
            }
            i &+= 1
        }
        return nil
    }

    /// The value of cookie `name` (case-sensitive, RFC 6265 5.4) in one Cookie header value `a=b; c=d`,
    /// with surrounding DQUOTEs removed.
    public static func cookieValue(name: some Collection<UInt8>, cookieHeaderValue: Range<Int>,
                                   in bytes: UnsafeRawBufferPointer) -> Range<Int>? {
        var start = cookieHeaderValue.lowerBound
        var i = cookieHeaderValue.lowerBound
        while i <= cookieHeaderValue.upperBound {
            if i == cookieHeaderValue.upperBound || bytes[i] == 0x3B {
                let pair = ASCIIBytes.trimmingOWS(bytes, start..<i)
                var eq = pair.lowerBound
                while eq < pair.upperBound && bytes[eq] != 0x3D { eq &+= 1 }
                if eq < pair.upperBound {
                    let cookieName = ASCIIBytes.trimmingOWS(bytes, pair.lowerBound..<eq)
                    if ASCIIBytes.equals(bytes, cookieName, name) {
                        var value = ASCIIBytes.trimmingOWS(bytes, (eq &+ 1)..<pair.upperBound)
                        if value.count >= 2 && bytes[value.lowerBound] == 0x22 && bytes[value.upperBound &- 1] == 0x22 {
                            value = (value.lowerBound &+ 1)..<(value.upperBound &- 1)
                        }
                        return value
                    }
                }
                start = i &+ 1
            }
            i &+= 1
        }
        return nil
    }

    /// Decodes %XX escapes (either hex case); nil when a '%' is not followed by two hex digits.
    public static func percentDecode(_ bytes: some Collection<UInt8>, plusAsSpace: Bool) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i != bytes.endIndex {
            let b = bytes[i]
            if b == 0x25 {
                let h = bytes.index(after: i)
                guard h != bytes.endIndex, let hi = ASCIIBytes.hexValue(bytes[h]) else { return nil }
                let l = bytes.index(after: h)
                guard l != bytes.endIndex, let lo = ASCIIBytes.hexValue(bytes[l]) else { return nil }
                out.append(hi << 4 | lo)
                i = bytes.index(after: l)
            } else {
                out.append(plusAsSpace && b == 0x2B ? 0x20 : b)
                i = bytes.index(after: i)
            }
        }
        return out
    }

    /// The same decoding over a slice of raw bytes: the overload the request path and the fuzz target call. The
    /// generic one above is not specialised across modules, and there every byte read goes through a witness table.
    public static func percentDecode(_ bytes: Slice<UnsafeRawBufferPointer>, plusAsSpace: Bool) -> [UInt8]? {
        let base = bytes.base
        let end = bytes.endIndex
        var failed = false
        let out = [UInt8](unsafeUninitializedCapacity: bytes.count) { out, written in
            var i = bytes.startIndex
            var n = 0
            while i < end {
                let b = base[i]
                if b == 0x25 {
                    guard i &+ 2 < end, let hi = ASCIIBytes.hexValue(base[i &+ 1]),
                          let lo = ASCIIBytes.hexValue(base[i &+ 2]) else { failed = true; break }
                    out[n] = hi << 4 | lo
                    i &+= 3
                } else {
                    out[n] = plusAsSpace && b == 0x2B ? 0x20 : b
                    i &+= 1
                }
                n &+= 1
            }
            written = n
        }
        return failed ? nil : out
    }

    /// Compares a raw query-name with `name` after form-decoding the raw side, without allocating.
    static func decodedEquals(_ bytes: UnsafeRawBufferPointer, _ raw: Range<Int>, _ name: some Collection<UInt8>) -> Bool {
        var i = raw.lowerBound
        var n = name.startIndex
        while i < raw.upperBound {
            var b = bytes[i]
            if b == 0x25 {
                guard i &+ 2 < raw.upperBound, let hi = ASCIIBytes.hexValue(bytes[i &+ 1]),
                      let lo = ASCIIBytes.hexValue(bytes[i &+ 2]) else { return false }
                b = hi << 4 | lo
                i &+= 3
            } else {
                if b == 0x2B { b = 0x20 }
                i &+= 1
            }
            guard n != name.endIndex, name[n] == b else { return false }
            n = name.index(after: n)
        }
        return n == name.endIndex
    }
}
