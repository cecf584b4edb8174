// The gzip side of the response relay: the head's fields rewritten for a compressed (or compressible) response,
// and the body fed from the backend's input buffer through zlib into chunks for the client. The plain relay
// (ResponseRelay.swift) never comes here: which path a response takes is decided once, at its head.
import HuddleHTTP
import HuddleIO
import HuddleSys

/// How the head of a compressible response is rewritten.
struct GzipHeadEdit: Equatable {
    /// The body is compressed: no Content-Length or Accept-Ranges, a weak ETag, Content-Encoding: gzip, chunked.
    var compress: Bool
    /// Add Accept-Encoding to the response's Vary (or a Vary of its own).
    var addVary: Bool
}

enum GzipBodyStep {
    case progress
    /// Nothing to do until more input arrives or the ready chunk is written.
    case idle
    /// The backend's chunked framing is broken.
    case malformed(HTTPParseError)
    /// zlib failed (an inconsistent stream): the response cannot be finished.
    case failed
}

extension ResponseRelay {
    /// The header lines of a final response that gzip concerns; hop-by-hop fields are dropped as on the plain path.
    static func appendFields(_ headers: [HTTPHeaderField], _ bytes: UnsafeRawBufferPointer, nominated: Bool,
                             gzip: GzipHeadEdit, into o: inout IOBuffer) {
        var varyDone = false
        for h in headers {
            if h.isHopByHop { continue }
            if nominated && h.kind == .other && ConnectionOptions.nominates(h.name, in: headers, bytes) { continue }
            if gzip.compress && h.kind == .contentLength { continue }
            var value = h.value
            var prefix: StaticString = ""
            var suffix: StaticString = ""
            switch GzipHeaderName(h, bytes) {
            case .acceptRanges where gzip.compress:
                // Ranges of the compressed body are not offered (nginx drops the field too).
                continue
            case .contentEncoding where gzip.compress:
                // Only `identity` can be here (an encoded body is never compressed): gzip replaces it.
                continue
            case .etag where gzip.compress:
                // The compressed body is not byte-identical to what the strong validator names: weaken it.
                if !(value.count >= 2 && bytes[value.lowerBound] == UInt8(ascii: "W") && bytes[value.lowerBound + 1] == UInt8(ascii: "/")) {
                    prefix = "W/"
                }
            case .vary where gzip.addVary && !varyDone:
                varyDone = true
                value = ASCIIBytes.trimmingOWS(bytes, value)
                suffix = value.isEmpty ? "Accept-Encoding" : ", Accept-Encoding"
            default:
                break
            }
            o.append(UnsafeRawBufferPointer(rebasing: bytes[h.name]))
            o.append(": ")
            o.append(prefix)
            o.append(UnsafeRawBufferPointer(rebasing: bytes[value]))
            o.append(suffix)
            o.append("\r\n")
        }
        if gzip.addVary && !varyDone { o.append("Vary: Accept-Encoding\r\n") }
        if gzip.compress { o.append("Content-Encoding: gzip\r\n") }
    }

    /// Marks how many unread bytes of `input` are body still to compress (call when `bodyReady` is 0). A chunked body's
    /// framing is decoded as it is compressed, so all of what arrived counts until the decoder finds the end.
    mutating func classifyCompressedBody() {
        guard let avail = input?.readableCount else { return }
        switch framing {
        case .contentLength:
            let take = Int(min(Int64(avail), remaining))
            remaining -= Int64(take)
            bodyReady = take
            if remaining == 0 {
                bodyDone = true
                // Bytes after the response: a misbehaving server. Its connection is not reused.
                if avail > take { upstreamReusable = false }
            }
        case .chunked, .untilClose:
            bodyReady = avail
        case .none:
            bodyDone = true
        }
    }

    /// Compresses ready body bytes into the open chunk, until the chunk closes or the input is used up. `moreComing`:
    /// the backend's last read filled the buffer, so more is likely there now; when it is not, the data so far is
    /// sync-flushed (an interactive stream is never held back), and the end of the body finishes the gzip member.
    mutating func compressBody(moreComing: Bool) -> GzipBodyStep {
        guard gzip != nil else { return .idle }
        var progressed = false
        while !gzip.unwrapped.chunkReady && !gzip.unwrapped.finished {
            if bodyReady > 0 {
                let start = input.unwrapped.readPointer
                if framing == .chunked {
                    let pending = chunks.pendingDataBytes
                    if pending == 0 {
                        switch chunks.scan(UnsafeRawBufferPointer(start: start, count: bodyReady), stopAtData: true) {
                        case .consumed(let n):
                            input.unwrapped.readIndex += n
                            bodyReady -= n
                        case .finished(let n):
                            input.unwrapped.readIndex += n
                            bodyReady = 0
                            bodyDone = true
                            // Bytes after the response: a misbehaving server. Its connection is not reused.
                            if inputLeft > 0 { upstreamReusable = false }
                        case .error(let e):
                            upstreamReusable = false
                            return .malformed(e)
                        }
                        progressed = true
                        continue
                    }
                    let n = Int(min(Int64(bodyReady), pending))
                    let flush: GzipStream.Flush = n == bodyReady && !moreComing ? .sync : .none
                    guard let taken = gzip.unwrapped.compress(UnsafeRawBufferPointer(start: start, count: n), flush: flush) else { return .failed }
                    chunks.consumeData(taken)
                    input.unwrapped.readIndex += taken
                    bodyReady -= taken
                } else {
                    let flush: GzipStream.Flush = bodyDone ? .finish : moreComing ? .none : .sync
                    guard let taken = gzip.unwrapped.compress(UnsafeRawBufferPointer(start: start, count: bodyReady), flush: flush) else { return .failed }
                    input.unwrapped.readIndex += taken
                    bodyReady -= taken
                }
                progressed = true
            } else if bodyDone {
                guard gzip.unwrapped.compress(UnsafeRawBufferPointer(start: nil, count: 0), flush: .finish) != nil else { return .failed }
                progressed = true
            } else if gzip.unwrapped.unflushed && !moreComing {
                guard gzip.unwrapped.compress(UnsafeRawBufferPointer(start: nil, count: 0), flush: .sync) != nil else { return .failed }
                progressed = true
                break
            } else {
                break
            }
        }
        return progressed ? .progress : .idle
    }

    /// Something is waiting for the client: the rewritten head, or a closed chunk.
    var hasCompressedOutput: Bool {
        if outputLeft > 0 { return true }
        return gzipReadyCount > 0
    }

    /// Bytes of a closed chunk waiting for the client (0 without an encoder).
    var gzipReadyCount: Int {
        if gzip == nil { return 0 }
        return gzip.unwrapped.readyCount
    }

    /// Writes the pending head bytes and the ready chunk to the client in one call; the encoder is dropped once its
    /// last chunk is out.
    mutating func writeCompressed<T: Transport>(to stream: T) throws(Errno) -> IOResult<Int> {
        let h = outputLeft
        let g = gzipReadyCount
        let r = try stream.writev(h > 0 ? UnsafeRawPointer(output.unwrapped.readPointer) : nil, h,
                                  g > 0 ? gzip.unwrapped.readyPointer : nil, g)
        if case .done(var w) = r {
            started = true
            if h > 0 {
                let n = min(w, h)
                output.unwrapped.readIndex += n
                w -= n
            }
            if w > 0 {
                gzip.unwrapped.wrote(w)
                bytesSent += Int64(w)
            }
            if gzip?.isDone == true { gzip = nil }
        }
        return r
    }
}
