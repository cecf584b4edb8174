// Client -> backend: the forwarded head, then the body as it arrives (Content-Length or chunked, checked as it goes),
// written from the client's input buffer with no copy in between.
import HuddleHTTP
import HuddleIO
import HuddleSys

struct RequestBodyRelay: ~Copyable {
    /// The forwarded head; kept until the exchange ends (a replay sends it again, the access log reads it).
    var head: IOBuffer?
    var framing: BodyFraming = .none
    /// Content-Length bytes not yet classified.
    var remaining: Int64 = 0
    /// Bytes at the front of the client's input buffer known to be body and not yet sent.
    var ready = 0
    /// The whole body has been classified (the last byte of it is in `ready` or already sent).
    var done = true
    /// A body byte reached the backend: the request can no longer be sent elsewhere.
    var sentAny = false
    var total: Int64 = 0
    /// Head and body are completely written.
    var sent = false
    var chunks = ChunkedBodyScanner()

    mutating func reset() {
        head = nil
        framing = .none
        remaining = 0
        ready = 0
        done = true
        sentAny = false
        total = 0
        sent = false
        chunks.reset()
    }

    mutating func start(framing f: BodyFraming) {
        framing = f
        ready = 0
        sentAny = false
        total = 0
        sent = false
        switch f {
        case .none, .untilClose:
            done = true
            remaining = 0
        case .contentLength(let n):
            remaining = n
            done = n == 0
        case .chunked:
            chunks.reset()
            done = false
        }
    }

    enum Classification: Equatable {
        case ok
        case malformed(HTTPParseError)
        case tooLarge
    }

    /// Marks how many of the unread client bytes `input` belong to the body (`ready`); call when `ready` is 0.
    mutating func classify(_ input: UnsafeRawBufferPointer, maxBodySize: Int64) -> Classification {
        switch framing {
        case .contentLength:
            let take = Int(min(Int64(input.count), remaining))
            remaining -= Int64(take)
            ready = take
            total += Int64(take)
            if remaining == 0 { done = true }
        case .chunked:
            switch chunks.scan(input) {
            case .consumed(let n):
                ready = n
            case .finished(let n):
                ready = n
                done = true
            case .error(let e):
                return .malformed(e)
            }
            total = chunks.dataBytes
        case .none, .untilClose:
            done = true
        }
        if maxBodySize > 0 && total > maxBodySize { return .tooLarge }
        return .ok
    }

    var headLeft: Int { head.readableCountOrZero }
    var hasPendingOutput: Bool { headLeft > 0 || ready > 0 }
    /// The head has started going out on the current connection.
    var headStarted: Bool { head != nil && head.unwrapped.readIndex > 0 }

    /// Writes what is pending (head first, then classified body bytes from `input`) in one call.
    mutating func write<T: Transport>(to stream: T, from input: inout IOBuffer?) throws(Errno) -> IOResult<Int> {
        let h = headLeft
        let r = try stream.writev(h > 0 ? UnsafeRawPointer(head.unwrapped.readPointer) : nil, h,
                                  ready > 0 ? UnsafeRawPointer(input.unwrapped.readPointer) : nil, ready)
        if case .done(var w) = r {
            if h > 0 {
                let n = min(w, h)
                head.unwrapped.readIndex += n
                w -= n
            }
            if w > 0 {
                input.unwrapped.readIndex += w
                ready -= w
                sentAny = true
            }
        }
        return r
    }

    /// Another connection will carry the request: the head goes out again from its start.
    mutating func rewind() {
        head?.readIndex = 0
        sent = false
    }
}
