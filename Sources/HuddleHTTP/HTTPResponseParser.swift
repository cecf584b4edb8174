// Resumable, strict HTTP/1.x response-head parser over raw bytes (RFC 9112), returning offsets.

/// Parses one response head from an upstream server; same resumption contract as `HTTPRequestParser`.
/// Every error carries status 502: it is what the proxy answers its client when a server misbehaves.
public struct HTTPResponseParser: Sendable {
    public let maxHeaderSize: Int
    public let maxHeaderCount: Int

    private enum Phase: UInt8, Sendable { case statusLine, headers, complete, failed }

    private var phase: Phase = .statusLine
    private var scanPos = 0
    private var lineStart = 0
    private var failure: HTTPParseError? = nil
    private var pending = HTTPResponseHead()
    private var block = HTTPHeaderBlock()

    public init(maxHeaderSize: Int = 65536, maxHeaderCount: Int = 512) {
        self.maxHeaderSize = maxHeaderSize
        self.maxHeaderCount = maxHeaderCount
    }

    public mutating func reset() {
        phase = .statusLine
        scanPos = 0
        lineStart = 0
        failure = nil
        pending.reset()
        block.reset()
    }

    public mutating func parse(_ bytes: UnsafeRawBufferPointer, into head: inout HTTPResponseHead) -> HTTPParseResult {
        switch phase {
        case .complete: return .complete
        case .failed: return .error(failure!)
        case .statusLine, .headers: break
        }
        let count = bytes.count
        let limit = min(count, maxHeaderSize)
        var pos = scanPos
        while true {
            let lf = ASCIIBytes.firstLF(bytes, from: pos, to: limit)
            if lf == limit {
                scanPos = limit
                if count > maxHeaderSize { return fail(.headTooLarge, maxHeaderSize) }
                return .needMore
            }
            if lf == lineStart || bytes[lf &- 1] != 0x0D { return fail(.bareLF, lf) }
            let end = lf &- 1
            if phase == .statusLine {
                if let error = parseStatusLine(bytes, start: lineStart, end: end) { return failWith(error) }
                phase = .headers
            } else if end == lineStart {
                return finish(bytes, headLength: lf &+ 1, into: &head)
            } else if let error = block.addLine(bytes, start: lineStart, end: end, isRequest: false, maxCount: maxHeaderCount) {
                return failWith(error)
            }
            pos = lf &+ 1
            lineStart = pos
        }
    }

    private mutating func finish(_ bytes: UnsafeRawBufferPointer, headLength: Int,
                                 into head: inout HTTPResponseHead) -> HTTPParseResult {
        if let error = block.checkResponseFraming(versionMinor: pending.versionMinor) { return failWith(error) }
        block.markConnectionOptions(bytes)
        pending.headLength = headLength
        pending.contentLength = block.contentLength
        let hasTE = block.transferEncodingLines > 0
        pending.isChunked = hasTE && block.lastCodingIsChunked
        pending.hasUnchunkedTransferEncoding = hasTE && !block.lastCodingIsChunked
        pending.keepAlive = block.keepAlive(versionMinor: pending.versionMinor) && !pending.hasUnchunkedTransferEncoding
        pending.connectionHasUpgrade = block.connectionUpgrade
        pending.upgrade = block.upgrade
        swap(&pending.headers, &block.fields)
        swap(&head, &pending)
        pending.reset()
        block.reset()
        phase = .complete
        return .complete
    }

    private mutating func fail(_ reason: HTTPParseError.Reason, _ offset: Int) -> HTTPParseResult {
        failWith(.response(reason, at: offset))
    }

    private mutating func failWith(_ error: HTTPParseError) -> HTTPParseResult {
        phase = .failed
        failure = error
        return .error(error)
    }

    /// `HTTP-version SP 3DIGIT SP [reason]`; the SP before an empty reason is often omitted and is tolerated.
    private mutating func parseStatusLine(_ bytes: UnsafeRawBufferPointer, start: Int, end: Int) -> HTTPParseError? {
        guard end &- start >= 12 else {
            return .response(.badStatusLine, at: start)
        }
        switch HTTPRequestParser.parseVersion(bytes, start..<(start &+ 8)) {
        case .valid(let minor): pending.versionMinor = minor
        case .unsupported: return .response(.unsupportedVersion, at: start)
        case .malformed: return .response(.badStatusLine, at: start)
        }
        if bytes[start &+ 8] != 0x20 { return .response(.badStatusLine, at: start &+ 8) }
        var status = 0
        for i in (start &+ 9)..<(start &+ 12) {
            let d = bytes[i] &- 0x30
            if d > 9 { return .response(.badStatusCode, at: i) }
            status = status &* 10 &+ Int(d)
        }
        if status < 100 { return .response(.badStatusCode, at: start &+ 9) }
        pending.status = status
        var rs = start &+ 12
        if rs < end {
            if bytes[rs] != 0x20 { return .response(.badStatusCode, at: rs) }
            rs &+= 1
        }
        var i = rs
        while i < end {
            let b = bytes[i]
            if !ASCIIBytes.isFieldValueByte(b) { return .response(b == 0x0D ? .bareCR : .badStatusLine, at: i) }
            i &+= 1
        }
        pending.reason = rs..<end
        return nil
    }
}
