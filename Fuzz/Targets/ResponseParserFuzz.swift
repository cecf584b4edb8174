// libFuzzer target: HTTPResponseParser / HTTPResponseHead.
//
// For the default limits and for tight limits derived from the input, checks that:
// - feeding the input whole, byte by byte and in several input-derived splits gives the same result and head
//   (each delivery is a prefix whose following bytes are ASan-poisoned);
// - the caller's head is untouched unless the result is `.complete`; a finished parser repeats its answer;
//   `reset()` makes a used parser behave as a fresh one; every error is a 502;
// - an accepted head is well formed (status line, fields, Content-Length values all equal, no CL+TE, chunked at
//   most once, framing and keep-alive agree with the fields), and `bodyFraming` follows RFC 9112 6.3;
// - an accepted head re-serialised (version, status, reason, fields as parsed) parses to the same head.

import HuddleHTTP

struct ResponseOutcome: Equatable {
    var result: HTTPParseResult
    var head: HTTPResponseHead
}

func dirtyResponseHead() -> HTTPResponseHead {
    var h = HTTPResponseHead()
    h.status = 777
    h.versionMinor = 5
    h.reason = 3..<9
    h.headers = [HTTPHeaderField(name: 1..<2, value: 3..<4, kind: .upgrade, isHopByHop: false)]
    h.headLength = 42
    h.contentLength = 77
    h.isChunked = true
    h.hasUnchunkedTransferEncoding = true
    h.keepAlive = false
    h.connectionHasUpgrade = true
    h.upgrade = 1..<3
    return h
}

func feedResponse(_ parser: HTTPResponseParser, _ buf: ExactBytes, _ ends: [Int],
                  into start: HTTPResponseHead) -> ResponseOutcome {
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
        var other = dirtyResponseHead()
        let again = parser.parse(buf.prefix(at), into: &other)
        require(again == result, "a finished parser answered \(again) after \(result)")
        require(other == dirtyResponseHead(), "a finished parser wrote the head again")
    }
    return ResponseOutcome(result: result, head: head)
}

func checkResponseHead(_ b: UnsafeRawBufferPointer, _ h: HTTPResponseHead) {
    let n = h.headLength
    require(n >= 16 && n <= b.count, "headLength \(n) outside the input (\(b.count))")
    require(b[n - 4] == 0x0D && b[n - 3] == 0x0A && b[n - 2] == 0x0D && b[n - 1] == 0x0A, "head does not end with CRLFCRLF")
    let version = Array("HTTP/1.".utf8)
    require((0..<7).allSatisfy { b[$0] == version[$0] } && Int(b[7]) - 0x30 == h.versionMinor && h.versionMinor <= 1,
            "status line does not start with HTTP/1.\(h.versionMinor)")
    require(b[8] == 0x20, "no SP after the version")
    let digits = (9..<12).map { Int(b[$0]) - 0x30 }
    require(digits.allSatisfy { (0...9).contains($0) } && h.status == digits[0] * 100 + digits[1] * 10 + digits[2],
            "status \(h.status) disagrees with its digits")
    require((100...999).contains(h.status), "status \(h.status) accepted")
    let r = h.reason
    require(r.lowerBound == 12 || (r.lowerBound == 13 && b[12] == 0x20), "reason starts at \(r.lowerBound)")
    require(r.lowerBound <= r.upperBound && r.upperBound + 2 <= n && b[r.upperBound] == 0x0D && b[r.upperBound + 1] == 0x0A,
            "reason \(r) does not end at the CRLF")
    require(r.allSatisfy { isFieldByte(b[$0]) }, "control byte in the reason \(show(b[r]))")
    checkHeaderFields(b, h.headers, firstLineEnd: r.upperBound + 2, headLength: n)

    // Content-Length: every value on every line is the same number.
    var lengths: [Int64] = []
    var clLines = 0
    for f in h.headers where f.kind == .contentLength {
        clLines += 1
        let elements = listElements(b, f.value)
        require(!elements.isEmpty, "empty Content-Length accepted")
        for e in elements {
            guard let v = decimal(b, e) else { propertyFailure("bad Content-Length element \(show(b[e])) accepted") }
            lengths.append(v)
        }
    }
    require(Set(lengths).count <= 1, "conflicting Content-Length values \(lengths) accepted")
    require(h.contentLength == lengths.first, "contentLength \(String(describing: h.contentLength)) vs values \(lengths)")

    let (teLines, codings) = transferCodings(b, h.headers)
    if teLines > 0 {
        require(clLines == 0, "Content-Length with Transfer-Encoding accepted")
        require(h.versionMinor == 1, "Transfer-Encoding in HTTP/1.0 accepted")
        let chunked = codings.filter { equalsCI(b, $0, "chunked") }.count
        require(chunked <= 1, "chunked applied twice accepted")
        let lastChunked = codings.last.map { equalsCI(b, $0, "chunked") } ?? false
        require(h.isChunked == lastChunked && h.hasUnchunkedTransferEncoding == !lastChunked,
                "isChunked \(h.isChunked) / unchunked \(h.hasUnchunkedTransferEncoding) vs codings")
    } else {
        require(!h.isChunked && !h.hasUnchunkedTransferEncoding, "chunked without Transfer-Encoding")
    }

    let options = ConnectionOptions(b, h.headers)
    require(h.keepAlive == (options.keepAlive(versionMinor: h.versionMinor) && !h.hasUnchunkedTransferEncoding),
            "keepAlive \(h.keepAlive) disagrees with Connection and framing")
    require(h.connectionHasUpgrade == options.upgrade, "connectionHasUpgrade disagrees with Connection")
    require(h.upgrade == h.headers.first { $0.kind == .upgrade }?.value, "upgrade is not the first Upgrade header")

    // RFC 9112 6.3, in its order.
    for method in [HTTPMethod.get, .head, .post, .connect] {
        let framing = h.bodyFraming(requestMethod: method)
        let expected: BodyFraming
        if method == .head || (100...199).contains(h.status) || h.status == 204 || h.status == 304 {
            expected = .none
        } else if method == .connect && (200...299).contains(h.status) {
            expected = .untilClose
        } else if h.isChunked {
            expected = .chunked
        } else if h.hasUnchunkedTransferEncoding {
            expected = .untilClose
        } else if let length = h.contentLength {
            expected = .contentLength(length)
        } else {
            expected = .untilClose
        }
        require(framing == expected, "bodyFraming(\(method)) = \(framing), expected \(expected)")
    }
}

struct ResponseSummary: Equatable {
    var status: Int
    var versionMinor: Int
    var reason: [UInt8]
    var fields: [FieldSummary]
    var contentLength: Int64?
    var isChunked: Bool
    var hasUnchunkedTransferEncoding: Bool
    var keepAlive: Bool
    var connectionHasUpgrade: Bool
    var upgrade: [UInt8]?

    init(_ b: UnsafeRawBufferPointer, _ h: HTTPResponseHead) {
        status = h.status
        versionMinor = h.versionMinor
        reason = Array(b[h.reason])
        fields = summarize(b, h.headers)
        contentLength = h.contentLength
        isChunked = h.isChunked
        hasUnchunkedTransferEncoding = h.hasUnchunkedTransferEncoding
        keepAlive = h.keepAlive
        connectionHasUpgrade = h.connectionHasUpgrade
        upgrade = bytes(b, h.upgrade)
    }
}

func roundTrip(_ b: UnsafeRawBufferPointer, _ h: HTTPResponseHead, parser: HTTPResponseParser, space: Bool) {
    var wire: [UInt8] = Array("HTTP/1.".utf8)
    wire.append(UInt8(0x30 + h.versionMinor))
    wire.append(0x20)
    wire += b[9..<12]
    if !h.reason.isEmpty || space {
        wire.append(0x20)
        wire += b[h.reason]
    }
    wire += [0x0D, 0x0A]
    serializeFields(b, h.headers, space: space, into: &wire)
    let buf = ExactBytes.make(wire)
    let again = feedResponse(parser, buf, [wire.count], into: HTTPResponseHead())
    require(again.result == .complete, "re-serialised response \(show(wire)) gave \(again.result)")
    require(again.head.headLength == wire.count, "re-serialised head length \(again.head.headLength) of \(wire.count)")
    let before = ResponseSummary(b, h)
    let after = ResponseSummary(buf.prefix(wire.count), again.head)
    require(before == after, "round trip changed the head:\n\(before)\n\(after)")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func responseParserFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = fuzzInput(data, size)
    let buf = ExactBytes(input)
    var rng = SplitMix(seed: fnv1a(input))
    let tight = HTTPResponseParser(maxHeaderSize: 8 + rng.below(600), maxHeaderCount: 1 + rng.below(12))
    let plans = splitPlans(input)
    for parser in [HTTPResponseParser(), tight] {
        let whole = feedResponse(parser, buf, [size], into: dirtyResponseHead())
        if whole.result != .complete {
            require(whole.head == dirtyResponseHead(), "head written on \(whole.result)")
        }
        let bytewise = feedResponse(parser, buf, byteByByte(size), into: dirtyResponseHead())
        require(bytewise == whole, "byte by byte \(bytewise.result) vs whole \(whole.result):\n\(bytewise.head)\n\(whole.head)")
        for plan in plans {
            let split = feedResponse(parser, buf, plan, into: dirtyResponseHead())
            require(split == whole, "split \(plan) \(split.result) vs whole \(whole.result):\n\(split.head)\n\(whole.head)")
        }
        var used = parser
        var scratch = HTTPResponseHead()
        _ = used.parse(buf.prefix(size), into: &scratch)
        used.reset()
        require(feedResponse(used, buf, [size], into: dirtyResponseHead()) == whole, "reset parser differs from a fresh one")

        if whole.result == .complete {
            let b = buf.prefix(size)
            checkResponseHead(b, whole.head)
            // Without the SP before an empty reason and without OWS the head is no longer, so tight limits hold.
            roundTrip(b, whole.head, parser: parser, space: false)
            roundTrip(b, whole.head, parser: HTTPResponseParser(maxHeaderSize: 1 << 30, maxHeaderCount: 1 << 30), space: true)
        }
        if case .error(let e) = whole.result {
            require(e.status == 502, "response error with status \(e.status)")
            require(e.offset >= 0 && e.offset <= size, "error offset \(e.offset) outside the input")
        }
    }
    return 0
}
