// libFuzzer target: HTTPRequestParser / HTTPRequestHead.
//
// For the default limits and for tight limits derived from the input, checks that:
// - feeding the input whole, byte by byte and in several input-derived splits gives the same result and head
//   (each delivery is a prefix whose following bytes are ASan-poisoned, so reading past it is caught);
// - the caller's head is untouched unless the result is `.complete`; a finished parser repeats its answer;
//   `reset()` makes a used parser behave as a fresh one;
// - an accepted head is well formed (ranges in place, token names, no control bytes in values, framing and
//   connection facts agree with the header fields, no CL+TE, at most one CL and Host, Host in HTTP/1.1);
// - an accepted head re-serialised (method, target, version, fields as parsed) parses to the same head.

import HuddleHTTP

struct RequestOutcome: Equatable {
    var result: HTTPParseResult
    var head: HTTPRequestHead
}

func feedRequest(_ parser: HTTPRequestParser, _ buf: ExactBytes, _ ends: [Int],
                 into start: HTTPRequestHead) -> RequestOutcome {
    var parser = parser
    var head = start
    var result = HTTPParseResult.needMore
    var at = 0
    for end in ends {
        at = end
        result = parser.parse(buf.prefix(end), into: &head)
        if result != .needMore { break }
    }
    if result != .needMore {
        // Further calls repeat the answer and leave the caller's head alone.
        var other = dirtyRequestHead()
        let again = parser.parse(buf.prefix(at), into: &other)
        require(again == result, "a finished parser answered \(again) after \(result)")
        require(other == dirtyRequestHead(), "a finished parser wrote the head again")
    }
    return RequestOutcome(result: result, head: head)
}

/// A head full of junk: the parser must overwrite all of it on `.complete` and none of it otherwise.
func dirtyRequestHead() -> HTTPRequestHead {
    var h = HTTPRequestHead()
    h.method = .trace
    h.methodRange = 3..<9
    h.target = 7..<70
    h.path = 8..<9
    h.query = 1..<2
    h.versionMinor = 7
    h.headers = [HTTPHeaderField(name: 1..<2, value: 3..<4, kind: .cookie, isHopByHop: true)]
    h.headLength = 99
    h.contentLength = 12345
    h.isChunked = true
    h.host = 5..<6
    h.keepAlive = false
    h.connectionHasUpgrade = true
    h.upgrade = 2..<3
    h.expectContinue = true
    return h
}

func checkRequestHead(_ b: UnsafeRawBufferPointer, _ h: HTTPRequestHead) {
    let n = h.headLength
    require(n >= 4 && n <= b.count, "headLength \(n) outside the input (\(b.count))")
    require(b[n - 4] == 0x0D && b[n - 3] == 0x0A && b[n - 2] == 0x0D && b[n - 1] == 0x0A, "head does not end with CRLFCRLF")
    let m = h.methodRange
    // Only empty lines may precede the request line.
    require(m.lowerBound % 2 == 0 && m.lowerBound < n, "request line starts at \(m.lowerBound)")
    for i in stride(from: 0, to: m.lowerBound, by: 2) {
        require(b[i] == 0x0D && b[i + 1] == 0x0A, "non-empty line before the request line")
    }
    require(!m.isEmpty && m.allSatisfy { isTChar(b[$0]) }, "method is not a token")
    require(HTTPMethod(bytes: b, range: m) == h.method, "method enum disagrees with its bytes")
    let t = h.target
    require(t.lowerBound == m.upperBound + 1 && b[m.upperBound] == 0x20, "target does not follow the method and one SP")
    require(!t.isEmpty && t.upperBound + 10 <= n, "target range \(t) out of place")
    require(t.allSatisfy { b[$0] > 0x20 && b[$0] != 0x7F && b[$0] != UInt8(ascii: "#") }, "bad byte in the target \(show(b[t]))")
    let version = Array("HTTP/1.".utf8)
    require(b[t.upperBound] == 0x20 && (0..<7).allSatisfy { b[t.upperBound + 1 + $0] == version[$0] },
            "target not followed by SP HTTP/1.")
    require(h.versionMinor == 0 || h.versionMinor == 1, "versionMinor \(h.versionMinor)")
    require(Int(b[t.upperBound + 8]) - 0x30 == h.versionMinor, "versionMinor disagrees with the bytes")
    require(b[t.upperBound + 9] == 0x0D && b[t.upperBound + 10] == 0x0A, "version not followed by CRLF")
    let firstLineEnd = t.upperBound + 11

    // Path and query sit inside the target.
    require(h.path.lowerBound >= t.lowerBound && h.path.upperBound <= t.upperBound, "path \(h.path) outside target \(t)")
    if let q = h.query {
        require(q.lowerBound > t.lowerBound && q.upperBound == t.upperBound && b[q.lowerBound - 1] == UInt8(ascii: "?"),
                "query \(q) not after a '?' up to the end of the target")
        require(q.lowerBound - 1 == h.path.upperBound, "query does not follow the path")
    }
    if b[t.lowerBound] == UInt8(ascii: "/") {
        require(h.method != .connect, "CONNECT with an origin-form target")
        require(h.path.lowerBound == t.lowerBound && !h.path.contains { b[$0] == UInt8(ascii: "?") },
                "origin-form path \(h.path) wrong")
        require(h.path.upperBound == t.upperBound || h.query != nil, "origin-form path does not reach the end or a query")
    } else if t.count == 1 && b[t.lowerBound] == UInt8(ascii: "*") {
        require(h.method == .options && h.path == t, "asterisk-form accepted wrongly")
    } else if h.method == .connect {
        require(h.host == t && h.path == t.upperBound..<t.upperBound && h.query == nil, "CONNECT authority not the target")
        guard let colon = t.last(where: { b[$0] == UInt8(ascii: ":") }) else { propertyFailure("CONNECT target without a colon") }
        require(colon > t.lowerBound && colon + 1 < t.upperBound && ((colon + 1)..<t.upperBound).allSatisfy { b[$0] >= 0x30 && b[$0] <= 0x39 },
                "CONNECT target is not host:port")
    } else {
        let lower = b[t].prefix(8).map(lowerASCII)
        require(lower.starts(with: Array("http://".utf8)) || lower.starts(with: Array("https://".utf8)), "absolute-form not http(s)")
        guard let host = h.host else { propertyFailure("absolute-form without a host") }
        require(host.lowerBound > t.lowerBound && host.upperBound <= t.upperBound && !host.isEmpty, "authority \(host) not in the target")
        require(b[host.lowerBound - 1] == UInt8(ascii: "/") && b[host.lowerBound - 2] == UInt8(ascii: "/"), "authority not after //")
        require(host.allSatisfy { HTTPHeaderFieldsReference.isHostByte(b[$0]) }, "bad authority \(show(b[host]))")
        require(h.path.lowerBound == host.upperBound, "absolute-form path does not follow the authority")
    }

    checkHeaderFields(b, h.headers, firstLineEnd: firstLineEnd, headLength: n)

    // Host: at most one header, mandatory in HTTP/1.1, and the authority of an absolute-form target wins.
    let hosts = h.headers.filter { $0.kind == .host }
    require(hosts.count <= 1, "\(hosts.count) Host headers accepted")
    if h.versionMinor == 1 { require(!hosts.isEmpty, "HTTP/1.1 without Host accepted") }
    if let field = hosts.first {
        require(field.value.allSatisfy { HTTPHeaderFieldsReference.isHostByte(b[$0]) }, "bad Host \(show(b[field.value]))")
        if b[t.lowerBound] == UInt8(ascii: "/") || (t.count == 1 && b[t.lowerBound] == UInt8(ascii: "*")) {
            require(h.host == field.value, "host is not the Host header")
        }
    } else if b[t.lowerBound] == UInt8(ascii: "/") {
        require(h.host == nil, "host without a Host header")
    }

    // Framing: never both, never ambiguous.
    let cls = h.headers.filter { $0.kind == .contentLength }
    let (teLines, codings) = transferCodings(b, h.headers)
    require(cls.count <= 1, "\(cls.count) Content-Length headers accepted in a request")
    require(!(cls.count > 0 && teLines > 0), "Content-Length with Transfer-Encoding accepted")
    if let cl = cls.first {
        require(decimal(b, cl.value) != nil && decimal(b, cl.value) == h.contentLength, "contentLength disagrees with \(show(b[cl.value]))")
    } else {
        require(h.contentLength == nil, "contentLength without the header")
    }
    require(h.isChunked == (teLines > 0), "isChunked \(h.isChunked) with \(teLines) TE lines")
    if teLines > 0 {
        require(h.versionMinor == 1, "Transfer-Encoding in HTTP/1.0 accepted")
        require(codings.count == 1 && equalsCI(b, codings[0], "chunked"), "request TE other than exactly chunked accepted")
        require(h.bodyFraming == .chunked, "bodyFraming \(h.bodyFraming) for a chunked request")
    } else if let length = h.contentLength {
        require(h.bodyFraming == .contentLength(length), "bodyFraming \(h.bodyFraming) for Content-Length")
    } else {
        require(h.bodyFraming == .none, "bodyFraming \(h.bodyFraming) without CL or TE")
    }

    // Connection facts.
    let options = ConnectionOptions(b, h.headers)
    require(h.keepAlive == options.keepAlive(versionMinor: h.versionMinor), "keepAlive \(h.keepAlive) disagrees with Connection")
    require(h.connectionHasUpgrade == options.upgrade, "connectionHasUpgrade disagrees with Connection")
    require(h.upgrade == h.headers.first { $0.kind == .upgrade }?.value, "upgrade is not the first Upgrade header")
    let expect = h.headers.contains { $0.kind == .expect && equalsCI(b, $0.value, "100-continue") }
    require(h.expectContinue == expect, "expectContinue disagrees with Expect")
}

enum HTTPHeaderFieldsReference {
    /// RFC 3986 reg-name / IP-literal / port bytes, ',' excluded.
    static func isHostByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"):
            return true
        default:
            return symbols.contains(b)
        }
    }
    private static let symbols: [UInt8] = Array("-._~%!$&'()*+;=:[]".utf8)
}

/// A head by its bytes rather than its offsets.
struct RequestSummary: Equatable {
    var method: HTTPMethod
    var methodBytes: [UInt8]
    var target: [UInt8]
    var path: [UInt8]
    var query: [UInt8]?
    var host: [UInt8]?
    var versionMinor: Int
    var fields: [FieldSummary]
    var contentLength: Int64?
    var isChunked: Bool
    var keepAlive: Bool
    var connectionHasUpgrade: Bool
    var upgrade: [UInt8]?
    var expectContinue: Bool

    init(_ b: UnsafeRawBufferPointer, _ h: HTTPRequestHead) {
        method = h.method
        methodBytes = Array(b[h.methodRange])
        target = Array(b[h.target])
        path = Array(b[h.path])
        query = bytes(b, h.query)
        host = bytes(b, h.host)
        versionMinor = h.versionMinor
        fields = summarize(b, h.headers)
        contentLength = h.contentLength
        isChunked = h.isChunked
        keepAlive = h.keepAlive
        connectionHasUpgrade = h.connectionHasUpgrade
        upgrade = bytes(b, h.upgrade)
        expectContinue = h.expectContinue
    }
}

func serializeRequest(_ b: UnsafeRawBufferPointer, _ h: HTTPRequestHead, space: Bool) -> [UInt8] {
    var out: [UInt8] = []
    out += b[h.methodRange]
    out.append(0x20)
    out += b[h.target]
    out += Array(" HTTP/1.".utf8)
    out.append(UInt8(0x30 + h.versionMinor))
    out += [0x0D, 0x0A]
    serializeFields(b, h.headers, space: space, into: &out)
    return out
}

func roundTrip(_ b: UnsafeRawBufferPointer, _ h: HTTPRequestHead, parser: HTTPRequestParser, space: Bool) {
    let wire = serializeRequest(b, h, space: space)
    let buf = ExactBytes.make(wire)
    let again = feedRequest(parser, buf, [wire.count], into: HTTPRequestHead())
    require(again.result == .complete, "re-serialised request \(show(wire)) gave \(again.result)")
    require(again.head.headLength == wire.count, "re-serialised head length \(again.head.headLength) of \(wire.count)")
    let before = RequestSummary(b, h)
    let after = RequestSummary(buf.prefix(wire.count), again.head)
    require(before == after, "round trip changed the head:\n\(before)\n\(after)")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func requestParserFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = fuzzInput(data, size)
    let buf = ExactBytes(input)
    var rng = SplitMix(seed: fnv1a(input))
    let tight = HTTPRequestParser(maxHeaderSize: 8 + rng.below(600), maxRequestLineLength: 4 + rng.below(200),
                                  maxHeaderCount: 1 + rng.below(12))
    let plans = splitPlans(input)
    for parser in [HTTPRequestParser(), tight] {
        let whole = feedRequest(parser, buf, [size], into: dirtyRequestHead())
        if whole.result != .complete {
            require(whole.head == dirtyRequestHead(), "head written on \(whole.result)")
        }
        let bytewise = feedRequest(parser, buf, byteByByte(size), into: dirtyRequestHead())
        require(bytewise == whole, "byte by byte \(bytewise.result) vs whole \(whole.result):\n\(bytewise.head)\n\(whole.head)")
        for plan in plans {
            let split = feedRequest(parser, buf, plan, into: dirtyRequestHead())
            require(split == whole, "split \(plan) \(split.result) vs whole \(whole.result):\n\(split.head)\n\(whole.head)")
        }
        // A used parser, once reset, is a fresh one.
        var used = parser
        var scratch = HTTPRequestHead()
        _ = used.parse(buf.prefix(size), into: &scratch)
        used.reset()
        require(feedRequest(used, buf, [size], into: dirtyRequestHead()) == whole, "reset parser differs from a fresh one")

        if whole.result == .complete {
            let b = buf.prefix(size)
            checkRequestHead(b, whole.head)
            roundTrip(b, whole.head, parser: parser, space: false)
            roundTrip(b, whole.head, parser: HTTPRequestParser(maxHeaderSize: 1 << 30, maxRequestLineLength: 1 << 30,
                                                               maxHeaderCount: 1 << 30), space: true)
        }
        if case .error(let e) = whole.result {
            require([400, 414, 431, 501, 505].contains(e.status) && e.status == e.reason.requestStatus,
                    "error status \(e.status) for \(e.reason)")
            require(e.offset >= 0 && e.offset <= size, "error offset \(e.offset) outside the input")
        }
    }
    return 0
}
