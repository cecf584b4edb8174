// Driving a gzip-compressed response: backend -> input buffer -> zlib -> one chunk in a pooled buffer -> client.
// The chunk buffer is the bound: while a closed chunk waits for the client, nothing more is compressed and nothing
// more is read from the backend, exactly as the plain relay stops reading while its body bytes wait.
import HuddleHTTP
import HuddleIO
import HuddleSys

extension ClientConnection {
    /// Body bytes one compressing connection takes through zlib per turn of the loop (a few milliseconds of CPU at
    /// level 5) before the worker's other connections get their turn.
    static var gzipTurnBudget: Int { 256 * 1024 }

    /// The gzip decision for a final response head in a gzip server block (its bytes are at the front of the input
    /// buffer). nil: the plain path. Otherwise how the head is rewritten; when compressing, the encoder (a pooled zlib
    /// stream and a pooled chunk buffer) is in place on the response relay.
    func gzipHeadEdit(_ x: Exchange<Net>, _ gz: GzipRuntime, status: Int, framing: BodyFraming) -> GzipHeadEdit? {
        let bytes = x.response.input.unwrapped.readableBytes
        let facts = GzipResponseFacts.read(x.response.head, bytes)
        let d = GzipPolicy.decide(typeListed: gz.lists(contentType: facts.contentType, in: bytes), encoded: facts.encoded,
                                  noTransform: facts.noTransform, status: status, method: x.method, framing: framing,
                                  contentLength: framing == .chunked ? nil : x.response.head.contentLength,
                                  minLength: gz.minLength, request: x.gzipRequest, clientIsHTTP10: x.clientIsHTTP10)
        var compress = d.compress
        if compress {
            if let s = worker.gzipStreams.acquire(level: gz.level) {
                x.response.gzip = GzipChunkEncoder(stream: s, buffer: worker.gzipBuffers.acquire())
            } else {
                log.error("gzip: zlib could not allocate a deflate stream; sending the response to \(clientText) uncompressed")
                compress = false
            }
        }
        let addVary = d.vary && !facts.varyCoversAcceptEncoding
        return compress || addVary ? GzipHeadEdit(compress: compress, addVary: addVary) : nil
    }

    /// The head of a compressed response has been rewritten: the body bytes that came with it move to a 64 KiB input
    /// buffer, so the rest of the body is read a quarter as often.
    func gzipTakeLargeInput(_ x: Exchange<Net>) {
        guard x.response.gzip != nil, x.response.input != nil, x.response.input.unwrapped.capacity < worker.gzipBuffers.bufferSize else { return }
        var big = worker.gzipBuffers.acquire()
        big.append(x.response.input.unwrapped.readableBytes)
        x.response.input = consume big
    }

    /// One round of the compressed response: compress what is ready, write, take in what arrived, read more.
    ///
    /// Flushing: the backend counts as drained only when a read found nothing (EAGAIN). A short read is followed by
    /// one more read to find out; until then zlib is left to fill its blocks (Z_NO_FLUSH). Once drained, what went
    /// into zlib is sync-flushed to the client, so a stream that pauses is never held back.
    func gzipResponseStep(_ x: Exchange<Net>, _ c: UpstreamConnection<Net>) -> IOStep {
        var progressed = false
        let before = x.response.gzip?.bytesIn ?? 0
        defer { x.response.turnBudget -= Int((x.response.gzip?.bytesIn ?? before) - before) }
        // Compress first, so a small response's head and its whole body leave in one write.
        switch x.response.compressBody(moreComing: !x.response.backendDrained) {
        case .progress: progressed = true
        case .idle: break
        case .malformed(let e):
            log.error("server \(x.upstream.server?.addressText ?? "-"): bad chunked response body: \(e); closing")
            upstreamFailed(.badResponse("\(e)"))
            return .ended
        case .failed:
            log.error("gzip: zlib failed while compressing the response to \(clientText); closing")
            close()
            return .ended
        }
        if x.response.hasCompressedOutput && canWrite {
            do {
                if case .wouldBlock = try x.response.writeCompressed(to: stream) {
                    canWrite = false
                } else {
                    lastActivity = loop.now
                    progressed = true
                }
            } catch {
                log.debug("client \(clientText): write failed: \(error)")
                close()
                return .ended
            }
        }
        if x.response.bodyReady == 0 && !x.response.bodyDone && x.response.inputLeft > 0 {
            x.response.classifyCompressedBody()
            return .progress
        }
        // Read only when everything read so far went into zlib and the chunk has room for more; after a short read
        // (canRead false) once more, to tell a drained backend from one that is still sending.
        if x.response.bodyReady == 0 && !x.response.bodyDone && x.response.gzipReadyCount == 0
            && (c.canRead || !x.response.backendDrained) {
            c.canRead = true
            switch readResponse(x, c) {
            case .progress:
                x.response.backendDrained = false
                progressed = true
            case .blocked:
                // The backend is drained for now: what went into zlib must be flushed to the client.
                x.response.backendDrained = true
                if x.response.gzip?.unflushed == true { progressed = true }
            case .ended: return .ended
            }
        }
        return progressed ? .progress : .blocked
    }
}
