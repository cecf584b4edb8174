// Resumable, strict HTTP/1.x request-head parser over raw bytes (RFC 9112), returning offsets.

/// Parses one request head. Feed it everything received so far for the message; it resumes where the last
/// call stopped, so a client sending one byte at a time costs O(n). Each line is judged as soon as its LF
/// arrives; the caller's `head` is written only on `.complete`.
public struct HTTPRequestParser: Sendable {
    public let maxHeaderSize: Int
    public let maxRequestLineLength: Int
    /// More header lines than this is 431 too: a cheap bound on per-request work whatever their size.
    public let maxHeaderCount: Int

    private enum Phase: UInt8, Sendable { case requestLine, headers, complete, failed }

    private var phase: Phase = .requestLine
    /// Next byte not yet examined for an LF.
    private var scanPos = 0
    /// First byte of the line being assembled.
    private var lineStart = 0
    private var failure: HTTPParseError? = nil
    private var pending = HTTPRequestHead()
    private var block = HTTPHeaderBlock()

    public init(maxHeaderSize: Int = 16384, maxRequestLineLength: Int = 8192, maxHeaderCount: Int = 256) {
        self.maxHeaderSize = maxHeaderSize
        self.maxRequestLineLength = maxRequestLineLength
        self.maxHeaderCount = maxHeaderCount
    }

    /// Prepares for the next message; keeps the header array's capacity.
    public mutating func reset() {
        phase = .requestLine
        scanPos = 0
        lineStart = 0
        failure = nil
        pending.reset()
        block.reset()
    }

    /// `bytes` holds everything received so far for this message, starting at its first byte. After
    /// `.complete` or `.error` further calls repeat that answer until `reset()`.
    public mutating func parse(_ bytes: UnsafeRawBufferPointer, into head: inout HTTPRequestHead) -> HTTPParseResult {
        switch phase {
        case .complete: return .complete
        case .failed: return .error(failure!)
        case .requestLine, .headers: break
        }
        let count = bytes.count
        let limit = min(count, maxHeaderSize)
        // The request line may carry its CR past the limit before the LF shows whether it is too long.
        let lineLimit = maxRequestLineLength &+ 1
        var pos = scanPos
        while true {
            let lf = ASCIIBytes.firstLF(bytes, from: pos, to: limit)
            if lf == limit {
                scanPos = limit
                if phase == .requestLine && limit &- lineStart > lineLimit {
                    return fail(.requestLineTooLong, lineStart &+ maxRequestLineLength)
                }
                if count > maxHeaderSize { return fail(.headTooLarge, maxHeaderSize) }
                return .needMore
            }
            if phase == .requestLine && lf &- lineStart > lineLimit {
                return fail(.requestLineTooLong, lineStart &+ maxRequestLineLength)
            }
            if lf == lineStart || bytes[lf &- 1] != 0x0D { return fail(.bareLF, lf) }
            let end = lf &- 1
            if phase == .requestLine {
                // RFC 9112 2.2: empty lines before the request line are skipped for robustness.
                if end != lineStart {
                    if let error = parseRequestLine(bytes, start: lineStart, end: end) { return failWith(error) }
                    phase = .headers
                }
            } else if end == lineStart {
                return finish(bytes, headLength: lf &+ 1, into: &head)
            } else if let error = block.addLine(bytes, start: lineStart, end: end, isRequest: true, maxCount: maxHeaderCount) {
                return failWith(error)
            }
            pos = lf &+ 1
            lineStart = pos
        }
    }

    private mutating func finish(_ bytes: UnsafeRawBufferPointer, headLength: Int,
                                 into head: inout HTTPRequestHead) -> HTTPParseResult {
        if let error = block.checkRequestFraming(versionMinor: pending.versionMinor, end: headLength &- 2) {
            return failWith(error)
        }
        block.markConnectionOptions(bytes)
        pending.headLength = headLength
        pending.contentLength = block.contentLength
        pending.isChunked = block.transferEncodingLines > 0
        if pending.host == nil { pending.host = block.host }
        pending.keepAlive = block.keepAlive(versionMinor: pending.versionMinor)
        pending.connectionHasUpgrade = block.connectionUpgrade
        pending.upgrade = block.upgrade
        pending.expectContinue = block.expectContinue
        swap(&pending.headers, &block.fields)
        swap(&head, &pending)
        pending.reset()
        block.reset()
        phase = .complete
        return .complete
    }

    private mutating func fail(_ reason: HTTPParseError.Reason, _ offset: Int) -> HTTPParseResult {
        failWith(.request(reason, at: offset))
    }

    private mutating func failWith(_ error: HTTPParseError) -> HTTPParseResult {
        phase = .failed
        failure = error
        return .error(error)
    }

    /// `method SP request-target SP HTTP-version`, exactly one SP each (RFC 9112 3).
    private mutating func parseRequestLine(_ bytes: UnsafeRawBufferPointer, start: Int, end: Int) -> HTTPParseError? {
        var i = start
        while i < end && ASCIIBytes.isTokenByte(bytes[i]) { i &+= 1 }
        if i == start || i == end || bytes[i] != 0x20 {
            return .request(i < end && bytes[i] == 0x0D ? .bareCR : .badMethod, at: i)
        }
        let methodRange = start..<i
        pending.methodRange = methodRange
        pending.method = HTTPMethod(bytes: bytes, range: methodRange)

        let ts = i &+ 1
        var j = ts
        var queryStart = -1
        while j < end {
            let b = bytes[j]
            if b == 0x20 { break }
            // A fragment is never sent (RFC 9112 3.2); a '#' would let two hops disagree on the path.
            if b < 0x20 || b == 0x7F || b == 0x23 {
                return .request(b == 0x0D ? .bareCR : .controlCharInTarget, at: j)
            }
            if b == 0x3F && queryStart < 0 { queryStart = j }
            j &+= 1
        }
        if j == ts { return .request(.badTarget, at: ts) }
        if j == end { return .request(.badRequestLine, at: end) }
        let target = ts..<j

        let vs = j &+ 1
        var k = vs
        while k < end {
            if bytes[k] == 0x20 { return .request(.targetHasSpace, at: j) }
            k &+= 1
        }
        switch Self.parseVersion(bytes, vs..<end) {
        case .valid(let minor): pending.versionMinor = minor
        case .unsupported: return .request(.unsupportedVersion, at: vs)
        case .malformed: return .request(.badVersion, at: vs)
        }

        pending.target = target
        return parseTarget(bytes, target, queryStart: queryStart)
    }

    private mutating func parseTarget(_ bytes: UnsafeRawBufferPointer, _ target: Range<Int>,
                                      queryStart: Int) -> HTTPParseError? {
        let ts = target.lowerBound
        let te = target.upperBound
        let isConnect = pending.method == .connect
        if bytes[ts] == 0x2F {  // origin-form
            if isConnect { return .request(.connectWithoutAuthority, at: ts) }
            splitPathAndQuery(pathStart: ts, end: te, queryStart: queryStart)
            return nil
        }
        if target.count == 1 && bytes[ts] == 0x2A {  // asterisk-form
            if pending.method != .options { return .request(.asteriskWithoutOptions, at: ts) }
            pending.path = target
            return nil
        }
        if isConnect {  // authority-form: host ":" port, nothing else
            var colon = -1
            var i = ts
            while i < te {
                let b = bytes[i]
                if !HTTPHeaderBlock.isHostByte(b) { return .request(.badTarget, at: i) }
                if b == 0x3A { colon = i }
                i &+= 1
            }
            if colon <= ts || colon == te &- 1 { return .request(.connectWithoutAuthority, at: ts) }
            var p = colon &+ 1
            while p < te {
                if bytes[p] &- 0x30 > 9 { return .request(.connectWithoutAuthority, at: p) }
                p &+= 1
            }
            pending.host = target
            pending.path = te..<te
            return nil
        }
        // absolute-form: only http and https can reach an HTTP proxy.
        var authorityStart: Int
        if target.count >= 7 && ASCIIBytes.equalsCaseInsensitive(bytes, ts..<(ts &+ 7), "http://") {
            authorityStart = ts &+ 7
        } else if target.count >= 8 && ASCIIBytes.equalsCaseInsensitive(bytes, ts..<(ts &+ 8), "https://") {
            authorityStart = ts &+ 8
        } else {
            return .request(.badTarget, at: ts)
        }
        var a = authorityStart
        while a < te {
            let b = bytes[a]
            if b == 0x2F || b == 0x3F { break }
            a &+= 1
        }
        // An http URI needs a host (RFC 9110 4.2.1). Userinfo ('@') is refused: it is deprecated (RFC 9110 4.2.4) and
        // lets "http://good@evil/" fool naive routing. The authority must be a valid uri-host [":" port].
        if a == authorityStart { return .request(.badTarget, at: a) }
        if let bad = HTTPHeaderBlock.firstInvalidHostByte(bytes, authorityStart..<a) { return .request(.badTarget, at: bad) }
        pending.host = authorityStart..<a
        if a == te || bytes[a] == 0x3F {
            pending.path = a..<a
            pending.query = a == te ? nil : (a &+ 1)..<te
        } else {
            splitPathAndQuery(pathStart: a, end: te, queryStart: queryStart)
        }
        return nil
    }

    @inline(__always)
    private mutating func splitPathAndQuery(pathStart: Int, end: Int, queryStart: Int) {
        if queryStart >= pathStart {
            pending.path = pathStart..<queryStart
            pending.query = (queryStart &+ 1)..<end
        } else {
            pending.path = pathStart..<end
            pending.query = nil
        }
    }

    enum Version { case valid(Int), unsupported, malformed }

    /// Exactly `HTTP/1.0` or `HTTP/1.1`; any other well-formed `HTTP/d.d` is a version we do not speak (505).
    static func parseVersion(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Version {
        guard range.count == 8 else { return .malformed }
        let s = range.lowerBound
        guard bytes[s] == 0x48, bytes[s &+ 1] == 0x54, bytes[s &+ 2] == 0x54, bytes[s &+ 3] == 0x50,
              bytes[s &+ 4] == 0x2F, bytes[s &+ 6] == 0x2E else { return .malformed }
        let major = bytes[s &+ 5] &- 0x30
        let minor = bytes[s &+ 7] &- 0x30
        guard major <= 9, minor <= 9 else { return .malformed }
        if major == 1 && minor <= 1 { return .valid(Int(minor)) }
        return .unsupported
    }
}
