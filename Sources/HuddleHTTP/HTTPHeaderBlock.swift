// The header-section half of both parsers: one field line at a time, then the framing rules once it ends.

/// Accumulates header lines while a head is incomplete; the parsers hand its results to the caller's head
/// only when the head ends. `fields` is swapped, not copied, so both arrays keep their capacity.
struct HTTPHeaderBlock: Sendable {
    var fields: [HTTPHeaderField] = []
    var contentLength: Int64? = nil
    var contentLengthLines = 0
    var contentLengthOffset = 0
    var transferEncodingLines = 0
    var transferEncodingOffset = 0
    var chunkedCount = 0
    var lastCodingIsChunked = false
    var hasOtherCoding = false
    var hostCount = 0
    var host: Range<Int>? = nil
    var connectionClose = false
    var connectionKeepAlive = false
    var connectionUpgrade = false
    var connectionNamesOthers = false
    var upgrade: Range<Int>? = nil
    var expectContinue = false

    mutating func reset() {
        fields.removeAll(keepingCapacity: true)
        contentLength = nil
        contentLengthLines = 0
        contentLengthOffset = 0
        transferEncodingLines = 0
        transferEncodingOffset = 0
        chunkedCount = 0
        lastCodingIsChunked = false
        hasOtherCoding = false
        hostCount = 0
        host = nil
        connectionClose = false
        connectionKeepAlive = false
        connectionUpgrade = false
        connectionNamesOthers = false
        upgrade = nil
        expectContinue = false
    }

    @inline(__always)
    private func fail(_ reason: HTTPParseError.Reason, _ offset: Int, _ isRequest: Bool) -> HTTPParseError {
        isRequest ? .request(reason, at: offset) : .response(reason, at: offset)
    }

    /// One field line, `start..<end` without its CRLF (the caller has checked the line ending).
    mutating func addLine(_ bytes: UnsafeRawBufferPointer, start: Int, end: Int, isRequest: Bool,
                          maxCount: Int) -> HTTPParseError? {
        if fields.count >= maxCount { return fail(.tooManyHeaders, start, isRequest) }
        // RFC 9112 5.2: obs-fold must be rejected (or rewritten) by a proxy; rejecting cannot be misread.
        if ASCIIBytes.isOWS(bytes[start]) { return fail(.obsFold, start, isRequest) }
        var i = start
        while i < end && ASCIIBytes.isTokenByte(bytes[i]) { i &+= 1 }
        if i == end { return fail(.missingColon, start, isRequest) }
        let c = bytes[i]
        if c != 0x3A {
            // RFC 9112 5.1: whitespace before the colon must be rejected; it is the classic smuggling vector.
            if ASCIIBytes.isOWS(c) { return fail(.whitespaceBeforeColon, i, isRequest) }
            if c == 0x0D { return fail(.bareCR, i, isRequest) }
            return fail(.badHeaderName, i, isRequest)
        }
        if i == start { return fail(.badHeaderName, start, isRequest) }
        let name = start..<i
        var vs = i &+ 1
        var ve = end
        while vs < ve && ASCIIBytes.isOWS(bytes[vs]) { vs &+= 1 }
        while ve > vs && ASCIIBytes.isOWS(bytes[ve &- 1]) { ve &-= 1 }
        let bad = ASCIIBytes.firstInvalidFieldValueByte(bytes, from: vs, to: ve)
        if bad != ve { return fail(bytes[bad] == 0x0D ? .bareCR : .controlCharInValue, bad, isRequest) }
        let value = vs..<ve
        let kind = HTTPHeaderKind(name: name, in: bytes)
        switch kind {
        case .contentLength:
            if let error = addContentLength(bytes, value, at: start, isRequest: isRequest) { return error }
        case .transferEncoding:
            if transferEncodingLines == 0 { transferEncodingOffset = start }
            transferEncodingLines &+= 1
            var elements = 0
            ASCIIBytes.forEachToken(in: value, of: bytes) { coding in
                elements &+= 1
                if ASCIIBytes.equalsCaseInsensitive(bytes, coding, "chunked") {
                    chunkedCount &+= 1
                    lastCodingIsChunked = true
                } else {
                    hasOtherCoding = true
                    lastCodingIsChunked = false
                }
            }
            if elements == 0 { return fail(.emptyTransferEncoding, vs, isRequest) }
        case .host where isRequest:
            hostCount &+= 1
            if hostCount > 1 { return fail(.duplicateHost, start, isRequest) }
            if let bad = Self.firstInvalidHostByte(bytes, value) { return fail(.badHost, bad, isRequest) }
            host = value
        case .connection:
            ASCIIBytes.forEachToken(in: value, of: bytes) { option in
                if ASCIIBytes.equalsCaseInsensitive(bytes, option, "close") {
                    connectionClose = true
                } else if ASCIIBytes.equalsCaseInsensitive(bytes, option, "keep-alive") {
                    connectionKeepAlive = true
                } else if ASCIIBytes.equalsCaseInsensitive(bytes, option, "upgrade") {
                    connectionUpgrade = true
                } else {
                    connectionNamesOthers = true
                }
            }
        case .upgrade:
            if upgrade == nil { upgrade = value }
        case .expect:
            if ASCIIBytes.equalsCaseInsensitive(bytes, value, "100-continue") { expectContinue = true }
        default:
            break
        }
        fields.append(HTTPHeaderField(name: name, value: value, kind: kind, isHopByHop: kind.isHopByHop))
        return nil
    }

    private mutating func addContentLength(_ bytes: UnsafeRawBufferPointer, _ value: Range<Int>, at start: Int,
                                           isRequest: Bool) -> HTTPParseError? {
        contentLengthLines &+= 1
        if contentLengthLines == 1 { contentLengthOffset = start }
        if isRequest {
            // RFC 9110 8.6 lets a recipient accept identical repeats; a request that two hops could count
            // differently is exactly what smuggling needs, so any repeat is refused.
            if contentLengthLines > 1 { return fail(.duplicateContentLength, start, true) }
            switch Self.parseDecimal(bytes, value) {
            case .success(let n): contentLength = n
            case .failure(let reason, let offset): return fail(reason, offset, true)
            }
            return nil
        }
        // Upstream servers do send "Content-Length: 42, 42" or repeat the line; only differing values are fatal.
        var error: HTTPParseError? = nil
        var elements = 0
        ASCIIBytes.forEachToken(in: value, of: bytes) { element in
            guard error == nil else { return }
            elements &+= 1
            switch Self.parseDecimal(bytes, element) {
            case .success(let n):
                if let existing = contentLength, existing != n {
                    error = fail(.conflictingContentLength, element.lowerBound, false)
                }
                contentLength = n
            case .failure(let reason, let offset):
                error = fail(reason, offset, false)
            }
        }
        if error == nil && elements == 0 { error = fail(.badContentLength, value.lowerBound, false) }
        return error
    }

    enum DecimalResult { case success(Int64), failure(HTTPParseError.Reason, Int) }

    /// 1*DIGIT into an Int64; a sign, a space or an empty value is malformed, not zero.
    static func parseDecimal(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> DecimalResult {
        if range.isEmpty { return .failure(.badContentLength, range.lowerBound) }
        var n: Int64 = 0
        var i = range.lowerBound
        while i < range.upperBound {
            let d = bytes[i] &- 0x30
            if d > 9 { return .failure(.badContentLength, i) }
            let (m, o1) = n.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(Int64(d))
            if o1 || o2 { return .failure(.contentLengthOverflow, i) }
            n = s
            i &+= 1
        }
        return .success(n)
    }

    /// uri-host and port bytes (RFC 3986 reg-name, IP literals, ':'); ',' is refused too, so a
    /// "Host: a, b" list can never be read as two hosts.
    @inline(__always)
    static func isHostByte(_ b: UInt8) -> Bool {
        switch b {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "%"),
             UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("),
             UInt8(ascii: ")"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ";"), UInt8(ascii: "="),
             UInt8(ascii: ":"), UInt8(ascii: "["), UInt8(ascii: "]"):
            return true
        default: return false
        }
    }

    /// Checks `uri-host [ ":" port ]` (RFC 9110 7.2, RFC 3986 3.2.2-3.2.3): an IP literal in brackets or a reg-name
    /// (unreserved, sub-delims but ',', and well-formed %XX), then an optional colon and digits. Returns the offset of
    /// the first byte that breaks it, nil when valid. Empty is valid: a Host for a URI without an authority.
    static func firstInvalidHostByte(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int? {
        var i = range.lowerBound
        let end = range.upperBound
        if i < end && bytes[i] == UInt8(ascii: "[") {
            // IP-literal: IPv6address or IPvFuture; the address itself is not validated beyond its alphabet.
            i &+= 1
            let literalStart = i
            while i < end && bytes[i] != UInt8(ascii: "]") {
                let b = bytes[i]
                let ok = ASCIIBytes.hexValue(b) != nil || b == UInt8(ascii: ":") || b == UInt8(ascii: ".")
                    || b == UInt8(ascii: "v") || b == UInt8(ascii: "V")
                if !ok { return i }
                i &+= 1
            }
            if i == end || i == literalStart { return i }
            i &+= 1   // the "]"
        } else {
            while i < end && bytes[i] != UInt8(ascii: ":") {
                let b = bytes[i]
                if b == UInt8(ascii: "%") {
                    guard i &+ 2 < end, ASCIIBytes.hexValue(bytes[i &+ 1]) != nil, ASCIIBytes.hexValue(bytes[i &+ 2]) != nil
                    else { return i }
                    i &+= 3
                    continue
                }
                if !isHostByte(b) || b == UInt8(ascii: "[") || b == UInt8(ascii: "]") { return i }
                i &+= 1
            }
        }
        if i == end { return nil }
        if bytes[i] != UInt8(ascii: ":") { return i }
        i &+= 1
        while i < end {
            if bytes[i] &- 0x30 > 9 { return i }
            i &+= 1
        }
        return nil
    }

    /// Marks the headers a Connection header names as hop-by-hop; runs only when one names something unusual.
    /// Host and Content-Length are never dropped this way: "Connection: content-length" would otherwise make
    /// the proxy forward a body without its framing. Only the first `maxConnectionOptions` names count, so a
    /// hostile head cannot make this quadratic.
    mutating func markConnectionOptions(_ bytes: UnsafeRawBufferPointer) {
        guard connectionNamesOthers else { return }
        var budget = Self.maxConnectionOptions
        for c in fields.indices where fields[c].kind == .connection {
            ASCIIBytes.forEachToken(in: fields[c].value, of: bytes) { option in
                guard budget > 0 else { return }
                budget &-= 1
                for f in fields.indices where !fields[f].isHopByHop {
                    let kind = fields[f].kind
                    if kind == .host || kind == .contentLength { continue }
                    if ASCIIBytes.equalsCaseInsensitive(bytes, fields[f].name, option) { fields[f].isHopByHop = true }
                }
            }
        }
    }

    static let maxConnectionOptions = 64

    /// Request framing checks, run when the empty line arrives (TE may follow CL, or be split over lines).
    func checkRequestFraming(versionMinor: Int, end: Int) -> HTTPParseError? {
        if transferEncodingLines > 0 {
            let at = transferEncodingOffset
            if versionMinor == 0 { return .request(.transferEncodingInHTTP10, at: at) }
            if contentLengthLines > 0 { return .request(.contentLengthWithTransferEncoding, at: at) }
            if chunkedCount > 1 { return .request(.chunkedTwice, at: at) }
            if !lastCodingIsChunked { return .request(.chunkedNotFinal, at: at) }
            if hasOtherCoding { return .request(.unsupportedTransferCoding, at: at) }
        }
        if versionMinor == 1 && hostCount == 0 { return .request(.missingHost, at: end) }
        return nil
    }

    /// Response framing checks; a non-chunked coding is legal in a response and means "read until close".
    func checkResponseFraming(versionMinor: Int) -> HTTPParseError? {
        if transferEncodingLines > 0 {
            let at = transferEncodingOffset
            if contentLengthLines > 0 { return .response(.contentLengthWithTransferEncoding, at: at) }
            // RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
            if versionMinor == 0 { return .response(.transferEncodingInHTTP10, at: at) }
            if chunkedCount > 1 { return .response(.chunkedTwice, at: at) }
        }
        return nil
    }

    /// RFC 9112 9.3: persistent by default in 1.1; 1.0 only when asked for.
    func keepAlive(versionMinor: Int) -> Bool {
        versionMinor == 1 ? !connectionClose : (connectionKeepAlive && !connectionClose)
    }
}
