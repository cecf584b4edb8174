// libFuzzer target: GroupKeyBytes (path segment, query value, cookie value, percent-decoding).
//
// Input layout: byte 0 picks the path segment number, byte 1 the length of a name that follows (query parameter
// or cookie name), the rest is the text searched as a path, a query and a Cookie header value. The text's range
// inside the input never starts at 0, and a second, input-derived sub-range is searched too; everything outside
// the range is ASan-poisoned while a function looks at it. Checks:
// - the range returned lies inside the range searched and equals what a plain reference implementation (split on
//   '/', '&' or ';') finds; a path segment is non-empty and holds no '/';
// - percentDecode (both `+` conventions, on slices with a non-zero start) never returns more bytes than it was
//   given, agrees with a reference decoder (including when it fails), and a decoded key re-encoded (escapes in
//   either hex case, `+` for space in form mode, any byte literal or escaped) decodes to the same bytes.

import HuddleHTTP

func refDecode(_ s: [UInt8], plusAsSpace: Bool) -> [UInt8]? {
    func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
    var out: [UInt8] = []
    var i = 0
    while i < s.count {
        if s[i] == UInt8(ascii: "%") {
            guard i + 2 < s.count, let hi = hex(s[i + 1]), let lo = hex(s[i + 2]) else { return nil }
            out.append(hi * 16 + lo)
            i += 3
        } else {
            out.append(plusAsSpace && s[i] == UInt8(ascii: "+") ? 0x20 : s[i])
            i += 1
        }
    }
    return out
}

func percentEncode(_ s: [UInt8], plusAsSpace: Bool, rng: inout SplitMix) -> [UInt8] {
    let digits = Array((rng.below(2) == 0 ? "0123456789ABCDEF" : "0123456789abcdef").utf8)
    var out: [UInt8] = []
    for b in s {
        let mustEscape = b == UInt8(ascii: "%") || (plusAsSpace && b == UInt8(ascii: "+"))
        if plusAsSpace && b == 0x20 && rng.below(2) == 0 {
            out.append(UInt8(ascii: "+"))
        } else if mustEscape || b == 0x20 || rng.below(4) == 0 {
            out += [UInt8(ascii: "%"), digits[Int(b >> 4)], digits[Int(b & 15)]]
        } else {
            out.append(b)
        }
    }
    return out
}

/// Pieces of `r` between separators, as ranges (empty pieces kept).
func pieces(_ b: UnsafeRawBufferPointer, _ r: Range<Int>, _ separator: UInt8) -> [Range<Int>] {
    var out: [Range<Int>] = []
    var start = r.lowerBound
    for i in r where b[i] == separator {
        out.append(start..<i)
        start = i + 1
    }
    out.append(start..<r.upperBound)
    return out
}

func refPathSegment(_ n: Int, _ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> Range<Int>? {
    guard n >= 1, !r.isEmpty else { return nil }
    let rest = b[r.lowerBound] == UInt8(ascii: "/") ? (r.lowerBound + 1)..<r.upperBound : r
    let segments = pieces(b, rest, UInt8(ascii: "/"))
    guard n <= segments.count, !segments[n - 1].isEmpty else { return nil }
    return segments[n - 1]
}

func refQueryValue(_ name: [UInt8], _ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> Range<Int>? {
    for pair in pieces(b, r, UInt8(ascii: "&")) {
        let eq = pair.first { b[$0] == UInt8(ascii: "=") } ?? pair.upperBound
        if refDecode(Array(b[pair.lowerBound..<eq]), plusAsSpace: true) == name {
            return eq < pair.upperBound ? (eq + 1)..<pair.upperBound : pair.upperBound..<pair.upperBound
        }
    }
    return nil
}

func trimOWS(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> Range<Int> {
    var lo = r.lowerBound, hi = r.upperBound
    while lo < hi && (b[lo] == 0x20 || b[lo] == 0x09) { lo += 1 }
    while hi > lo && (b[hi - 1] == 0x20 || b[hi - 1] == 0x09) { hi -= 1 }
    return lo..<hi
}

func refCookieValue(_ name: [UInt8], _ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> Range<Int>? {
    for piece in pieces(b, r, UInt8(ascii: ";")) {
        let pair = trimOWS(b, piece)
        guard let eq = pair.first(where: { b[$0] == UInt8(ascii: "=") }) else { continue }
        guard Array(b[trimOWS(b, pair.lowerBound..<eq)]) == name else { continue }
        var value = trimOWS(b, (eq + 1)..<pair.upperBound)
        if value.count >= 2 && b[value.lowerBound] == UInt8(ascii: "\"") && b[value.upperBound - 1] == UInt8(ascii: "\"") {
            value = (value.lowerBound + 1)..<(value.upperBound - 1)
        }
        return value
    }
    return nil
}

func checkDecoding(_ raw: Slice<UnsafeRawBufferPointer>, rng: inout SplitMix) {
    let rawArray = Array(raw)
    for plusAsSpace in [false, true] {
        let decoded = GroupKeyBytes.percentDecode(raw, plusAsSpace: plusAsSpace)
        require(decoded == refDecode(rawArray, plusAsSpace: plusAsSpace),
                "percentDecode(\(show(rawArray)), plusAsSpace: \(plusAsSpace)) = \(decoded.map { show($0) } ?? "nil")")
        guard let decoded else { continue }
        require(decoded.count <= rawArray.count, "decoding \(rawArray.count) bytes gave \(decoded.count)")
        let encoded = percentEncode(decoded, plusAsSpace: plusAsSpace, rng: &rng)
        let again = GroupKeyBytes.percentDecode(encoded, plusAsSpace: plusAsSpace)
        require(again == decoded, "re-encoded key \(show(encoded)) decodes to \(again.map { show($0) } ?? "nil"), not \(show(decoded))")
    }
    // Any bytes at all survive encode + decode.
    let plusAsSpace = rng.below(2) == 0
    let encoded = percentEncode(rawArray, plusAsSpace: plusAsSpace, rng: &rng)
    require(GroupKeyBytes.percentDecode(encoded, plusAsSpace: plusAsSpace) == rawArray, "encode+decode lost \(show(rawArray))")
}

func checkExtractors(_ buf: ExactBytes, _ r: Range<Int>, segment: Int, name: [UInt8]) {
    func inside(_ found: Range<Int>?) -> Bool { found.map { $0.lowerBound >= r.lowerBound && $0.upperBound <= r.upperBound } ?? true }

    let b = buf.fenced(r.lowerBound, r.upperBound)
    let seg = GroupKeyBytes.pathSegment(segment, path: r, in: b)
    require(inside(seg), "path segment \(String(describing: seg)) outside \(r)")
    if let seg { require(!seg.isEmpty && !seg.contains { b[$0] == UInt8(ascii: "/") }, "path segment \(seg) empty or with '/'") }
    require(seg == refPathSegment(segment, b, r), "pathSegment(\(segment)) = \(String(describing: seg)), reference \(String(describing: refPathSegment(segment, b, r)))")

    let query = GroupKeyBytes.queryValue(name: name, query: r, in: b)
    require(inside(query), "query value \(String(describing: query)) outside \(r)")
    require(query == refQueryValue(name, b, r), "queryValue(\(show(name))) = \(String(describing: query)), reference \(String(describing: refQueryValue(name, b, r)))")

    let cookie = GroupKeyBytes.cookieValue(name: name, cookieHeaderValue: r, in: b)
    require(inside(cookie), "cookie value \(String(describing: cookie)) outside \(r)")
    require(cookie == refCookieValue(name, b, r), "cookieValue(\(show(name))) = \(String(describing: cookie)), reference \(String(describing: refCookieValue(name, b, r)))")

    var rng = SplitMix(seed: UInt64(r.lowerBound) << 32 | UInt64(r.upperBound))
    for found in [seg, query, cookie].compactMap({ $0 }) { checkDecoding(b[found], rng: &rng) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func groupKeyFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = fuzzInput(data, size)
    guard size >= 2 else { return 0 }
    let segment = Int(input[0]) % 70
    let nameEnd = min(size, 2 + Int(input[1]) % 24)
    let name = Array(input[2..<nameEnd])
    let buf = ExactBytes(input)
    let text = nameEnd..<size
    var rng = SplitMix(seed: fnv1a(input))

    checkExtractors(buf, text, segment: segment, name: name)
    let lo = text.lowerBound + rng.below(text.count + 1)
    let hi = lo + rng.below(size - lo + 1)
    checkExtractors(buf, lo..<hi, segment: segment, name: name)

    let all = buf.fenced(text.lowerBound, text.upperBound)
    checkDecoding(all[text], rng: &rng)
    return 0
}
