// Answers Huddle writes itself (400, 404, 408, 413, 431, 502, 504...): a short text body, then the connection goes on
// to the next request or closes, as the answer requires.
import HuddleHTTP
import HuddleIO
import HuddleSys

extension ClientConnection {
    /// A local answer right after a head was parsed (routing refused it, or the head itself was unacceptable).
    func answerAfterHead(_ x: Exchange<Net>, _ a: LocalAnswer) {
        if x.head.headLength > 0 && x.head.headLength <= (inBuf?.readableCount ?? 0) {
            writeForwardedHead(x)   // the access log reads the request line and id from it
            inBuf.unwrapped.readIndex += x.head.headLength
        }
        // A body we will not read cannot be skipped safely: the connection closes after the answer.
        answerLocally(status: a.status, message: a.message, close: a.close || x.head.bodyFraming != .none, extraHeaders: a.extraHeaders,
                      retryAfter: a.retryAfter)
    }

    /// Queues a short text response and switches to sending it. The exchange keeps nothing of a backend.
    func answerLocally(status: Int, message: String, close: Bool, extraHeaders: StaticString = "", retryAfter: Int? = nil) {
        guard let x = exchange else {
            self.close()
            return
        }
        x.upstream.reset()
        x.response.input = nil
        x.response.gzip = nil
        x.response.fill = nil
        if x.response.output == nil { x.response.output = loop.buffers.acquire() }
        x.response.output.unwrapped.clear()
        let body = "\(status) \(HTTPStatus.reasonPhrase(status)): \(message)\n"
        let closing = close || !x.clientKeepAlive || worker.shuttingDown
        appendLocalHead(into: &x.response.output!, x, status: status, bodyLength: body.utf8.count, closing: closing, extraHeaders: extraHeaders,
                        retryAfter: retryAfter)
        // A HEAD request gets the head alone, unless it is the head that could not be read.
        if x.method != .head || phase == .readingHead { x.response.output.unwrapped.append(body) }
        x.response.status = status
        x.response.bytesSent = Int64(body.utf8.count)
        localClose = closing
        phase = .sendingLocal
        lastActivity = loop.now
        armTimer()
    }

    private func appendLocalHead(into o: inout IOBuffer, _ x: Exchange<Net>, status: Int, bodyLength: Int, closing: Bool, extraHeaders: StaticString,
                                 retryAfter: Int?) {
        o.append("HTTP/1.1 ")
        o.append(decimal: Int64(status))
        o.append(byte: 32)
        o.append(HTTPStatus.reasonPhrase(status))
        o.append("\r\nServer: huddle\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ")
        o.append(decimal: Int64(bodyLength))
        if closing { o.append("\r\nConnection: close") }
        if let r = retryAfter {
            o.append("\r\nRetry-After: ")
            o.append(decimal: Int64(r))
        }
        if let base = x.request.head?.base, !x.logFields.requestId.isEmpty {
            o.append("\r\nX-Request-Id: ")
            o.append(UnsafeRawBufferPointer(start: base + x.logFields.requestId.lowerBound, count: x.logFields.requestId.count))
        }
        o.append("\r\n")
        o.append(extraHeaders)
        // Every answer on a cached route says where it came from.
        if x.cache.route != nil { o.append("X-Cache: MISS\r\n") }
        o.append("\r\n")
    }

    /// Returns true when done and the connection moved on to the next request.
    func flushLocal() -> Bool {
        guard let x = exchange else {
            close()
            return false
        }
        // A local answer is its head and text in `output`; an answer from the cache adds the stored body.
        while x.response.outputLeft > 0 || x.response.cachedLeft > 0 {
            guard canWrite else { armTimer(); return false }
            let r: IOResult<Int>
            do {
                r = try x.response.writeLocal(to: stream)
            } catch {
                close()
                return false
            }
            switch r {
            case .wouldBlock:
                canWrite = false
                armTimer()
                return false
            case .done:
                lastActivity = loop.now
            }
        }
        if localClose {
            // Let the client read the answer before the connection goes: half-close, then close.
            stream.shutdownWrite()
            close()
            return false
        }
        nextRequest()
        return true
    }
}
