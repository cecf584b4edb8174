// Backend -> client: the response head parsed and rewritten (hop-by-hop headers dropped, Connection set for the
// client), then the body passed through from the backend's input buffer as it arrives, its framing checked.
import HuddleHTTP
import HuddleIO
import HuddleSys

struct ResponseRelay: ~Copyable {
    var parser = HTTPResponseParser()
    var head = HTTPResponseHead()
    var chunks = ChunkedBodyScanner()
    /// Bytes from the backend: the head while it is parsed, then body.
    var input: IOBuffer?
    /// Bytes for the client that are not body: the rewritten head (and interim 1xx heads), or a local answer.
    var output: IOBuffer?
    var headDone = false
    var framing: BodyFraming = .none
    var remaining: Int64 = 0
    /// Bytes at the front of `input` known to be body and not yet sent.
    var bodyReady = 0
    var bodyDone = false
    /// The final status (or the local answer's); 0 until there is one.
    var status = 0
    /// Body bytes sent to the client.
    var bytesSent: Int64 = 0
    /// A byte of the answer reached the client: from now on a failure can only close the connection.
    var started = false
    var upstreamReusable = false
    var closeClient = false
    /// The body is gzip-compressed into chunks on its way to the client (decided once per response head, in
    /// ResponseRelay+Gzip.swift); nil on the plain path. Dropped once its last chunk is written.
    var gzip: GzipChunkEncoder?
    /// gzip: the backend's last read found nothing (EAGAIN): flush what zlib holds.
    var backendDrained = false
    /// gzip: body bytes this connection may still compress before it lets the worker's other connections run.
    var turnBudget = 0
    /// Cached routes: the response being stored as it passes (body bytes are copied in as they are classified); nil
    /// otherwise, and once it turned out too large.
    var fill: CacheFill?
    /// An answer from the cache: the stored entry whose body is sent after `output` (the head), and how far.
    var cached: CacheRead?
    var cachedSent = 0
    var cachedEnd = 0

    mutating func reset() {
        parser.reset()
        head.reset()
        chunks.reset()
        input = nil
        output = nil
        resetForAttempt()
        status = 0
        bytesSent = 0
        started = false
        cached = nil
        cachedSent = 0
        cachedEnd = 0
    }

    /// A new backend connection: nothing of an earlier attempt's response counts.
    mutating func resetForAttempt() {
        parser.reset()
        head.reset()
        input = nil
        headDone = false
        framing = .none
        remaining = 0
        bodyReady = 0
        bodyDone = false
        upstreamReusable = false
        closeClient = false
        gzip = nil
        backendDrained = false
        fill = nil
    }

    var outputLeft: Int { output.readableCountOrZero }
    var hasPendingOutput: Bool { outputLeft > 0 || bodyReady > 0 }
    var inputLeft: Int { input.readableCountOrZero }
    /// The last byte of the response has been written to the client.
    var isComplete: Bool { headDone && bodyDone && bodyReady == 0 && outputLeft == 0 && gzip == nil }

    /// Parses what has arrived of the response head.
    mutating func parseHead() -> HTTPParseResult {
        parser.parse(input.unwrapped.readableBytes, into: &head)
    }

    /// Rewrites the head the parser just completed (its bytes are at the front of `input`) into `output`.
    /// `gzip` (gzip server blocks only, when the response is compressible) rewrites the fields compression concerns.
    /// `setCookie` (sticky upstreams only) is a whole header line, CRLF included, added after the backend's fields.
    mutating func writeHead(status: Int, connection: ResponsePlan.ConnectionHeader, upgrade: Bool, pool: BufferPool,
                            gzip: GzipHeadEdit? = nil, setCookie: [UInt8]? = nil) {
        // Room for the status line and the fields Huddle adds (Connection, Transfer-Encoding; with gzip also
        // Content-Encoding, Vary and weakened ETags; a sticky cookie).
        let room = head.headLength + (gzip == nil ? 256 : 512) + (setCookie?.count ?? 0)
        if output == nil { output = pool.acquire(minimumCapacity: room) }
        if output.unwrapped.readableCount == 0 { output.unwrapped.clear() }
        if output.unwrapped.writableCount < room { output.unwrapped.compact() }
        let bytes = input.unwrapped.readableBytes
        var o = output.take()!
        o.append("HTTP/1.1 ")
        o.append(decimal: Int64(status))
        o.append(byte: 32)
        o.append(HTTPStatus.reasonPhrase(status))
        o.append("\r\n")
        let nominated = ConnectionOptions.nominatesOthers(head.headers, bytes)
        if let gzip {
            Self.appendFields(head.headers, bytes, nominated: nominated, gzip: gzip, into: &o)
        } else {
            for h in head.headers {
                if h.isHopByHop && !(upgrade && h.kind == .upgrade) { continue }
                // Only ordinary fields: a Connection option never removes the framing (Content-Length) or Host.
                if nominated && h.kind == .other && ConnectionOptions.nominates(h.name, in: head.headers, bytes) { continue }
                o.append(UnsafeRawBufferPointer(rebasing: bytes[h.name]))
                o.append(": ")
                o.append(UnsafeRawBufferPointer(rebasing: bytes[h.value]))
                o.append("\r\n")
            }
        }
        if let setCookie { _ = setCookie.withUnsafeBytes { o.append($0) } }
        if (head.isChunked || gzip?.compress == true) && status >= 200 { o.append("Transfer-Encoding: chunked\r\n") }
        switch connection {
        case .none: break
        case .close: o.append("Connection: close\r\n")
        case .keepAlive: o.append("Connection: keep-alive\r\n")
        }
        if upgrade { o.append("Connection: Upgrade\r\n") }
        o.append("\r\n")
        output = consume o
        input.unwrapped.readIndex += head.headLength
    }

    /// Starts the body of a final response whose head was just rewritten.
    mutating func startBody(_ plan: ResponsePlan) {
        framing = plan.framing
        upstreamReusable = plan.upstreamReusable
        closeClient = plan.closeClient
        headDone = true
        bodyReady = 0
        switch framing {
        case .none:
            bodyDone = true
        case .contentLength(let n):
            remaining = n
            bodyDone = n == 0
        case .chunked:
            chunks.reset()
            bodyDone = false
        case .untilClose:
            bodyDone = false
        }
    }

    /// Marks how many unread bytes of `input` are body (`bodyReady`); call when `bodyReady` is 0. Returns the framing
    /// error of a malformed chunked body.
    mutating func classifyBody() -> HTTPParseError? {
        guard let avail = input?.readableCount else { return nil }
        switch framing {
        case .contentLength:
            let take = Int(min(Int64(avail), remaining))
            remaining -= Int64(take)
            bodyReady = take
            if remaining == 0 { bodyDone = true }
        case .chunked:
            switch chunks.scan(input.unwrapped.readableBytes) {
            case .consumed(let n):
                bodyReady = n
            case .finished(let n):
                bodyReady = n
                bodyDone = true
            case .error(let e):
                upstreamReusable = false
                return e
            }
        case .untilClose:
            bodyReady = avail
        case .none:
            bodyDone = true
        }
        // Bytes after the response: a misbehaving server. Its connection is not reused.
        if bodyDone && avail > bodyReady { upstreamReusable = false }
        // Cached routes: the body is copied into the fill on its way (a fill that cannot take it is dropped, which
        // stores nothing and releases its waiters).
        if fill != nil && bodyReady > 0 && !fill.unwrapped.append(UnsafeRawBufferPointer(start: input.unwrapped.readPointer, count: bodyReady)) {
            fill = nil
        }
        return nil
    }

    /// Inserts a header line (ending in CRLF) before the empty line that ends the head in `output`.
    mutating func insertField(_ line: StaticString) {
        guard output != nil, output.unwrapped.writeIndex >= 2, output.unwrapped.writableCount >= line.utf8CodeUnitCount else { return }
        output.unwrapped.writeIndex -= 2
        output.unwrapped.append(line)
        output.unwrapped.append("\r\n")
    }

    /// Bytes of a cached body not yet written.
    var cachedLeft: Int { cachedEnd - cachedSent }

    /// Writes a local or cached answer: the head in `output`, then the stored body, in one call.
    mutating func writeLocal<T: Transport>(to stream: T) throws(Errno) -> IOResult<Int> {
        let h = outputLeft
        let b = cachedLeft
        let r: IOResult<Int>
        if b == 0 {
            r = try stream.write(output.unwrapped.readPointer, h)
        } else {
            r = try stream.writev(h > 0 ? UnsafeRawPointer(output.unwrapped.readPointer) : nil, h,
                                  UnsafeRawPointer(cached.unwrapped.entry.body.unsafelyUnwrapped + cachedSent), b)
        }
        if case .done(var w) = r {
            if h > 0 {
                let n = min(w, h)
                output.unwrapped.readIndex += n
                w -= n
            }
            cachedSent += w
        }
        return r
    }

    /// Writes the pending head bytes and ready body bytes to the client in one call.
    mutating func write<T: Transport>(to stream: T) throws(Errno) -> IOResult<Int> {
        let h = outputLeft
        let r = try stream.writev(h > 0 ? UnsafeRawPointer(output.unwrapped.readPointer) : nil, h,
                                  bodyReady > 0 ? UnsafeRawPointer(input.unwrapped.readPointer) : nil, bodyReady)
        if case .done(var w) = r {
            started = true
            if h > 0 {
                let n = min(w, h)
                output.unwrapped.readIndex += n
                w -= n
            }
            if w > 0 {
                input.unwrapped.readIndex += w
                bodyReady -= w
                bytesSent += Int64(w)
            }
        }
        return r
    }
}
