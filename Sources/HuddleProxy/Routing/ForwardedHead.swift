// The request head as a backend receives it: origin-form target, HTTP/1.1, hop-by-hop headers dropped, and
// X-Forwarded-For/-Proto/-Host and X-Request-Id set. Written straight into a pooled buffer: no per-request String.
import HuddleHTTP
import HuddleIO

/// Where, inside the forwarded head, the fields the access log needs are (ranges of the head buffer).
struct RequestLogFields {
    var requestLine: Range<Int> = 0..<0
    var userAgent: Range<Int> = 0..<0
    var referer: Range<Int> = 0..<0
    var requestId: Range<Int> = 0..<0
}

enum ForwardedHead {
    /// Writes the forwarded head for `head` (whose bytes are `bytes`) into `b`, which must have room for
    /// `head.headLength + 1024` bytes. `newRequestId` appends a fresh id when the client sent none.
    static func write(
        into b: inout IOBuffer, head: HTTPRequestHead, bytes: UnsafeRawBufferPointer, upgrade: Bool,
        clientIP: UnsafeRawBufferPointer, proto: StaticString, logFields: Bool, newRequestId: (inout IOBuffer) -> Void
    ) -> RequestLogFields {
        var log = RequestLogFields()
        let start = b.writeIndex
        b.append(UnsafeRawBufferPointer(rebasing: bytes[head.methodRange]))
        b.append(byte: 32)
        // Origin-form to the backend: an absolute-form target's authority went into Host; an empty path means "/".
        if head.path.isEmpty { b.append(byte: 47) } else { b.append(UnsafeRawBufferPointer(rebasing: bytes[head.path])) }
        if let q = head.query {
            b.append(byte: 63)
            b.append(UnsafeRawBufferPointer(rebasing: bytes[q]))
        }
        b.append(" HTTP/1.1")
        log.requestLine = start..<b.writeIndex
        b.append("\r\n")
        var hostRange: Range<Int>? = nil
        var hasRequestId = false
        var hasXFF = false
        for h in head.headers {
            switch h.kind {
            case .xForwardedFor:
                hasXFF = true
                continue
            case .xForwardedProto, .xForwardedHost:
                continue
            case .host:
                hostRange = h.value
            case .xRequestId:
                hasRequestId = true
            default:
                break
            }
            if h.isHopByHop && !(upgrade && h.kind == .upgrade) { continue }
            b.append(UnsafeRawBufferPointer(rebasing: bytes[h.name]))
            b.append(": ")
            let vs = b.writeIndex
            b.append(UnsafeRawBufferPointer(rebasing: bytes[h.value]))
            if h.kind == .xRequestId { log.requestId = vs..<b.writeIndex }
            if logFields && h.kind == .other {
                if ASCIIBytes.equalsCaseInsensitive(bytes, h.name, "user-agent") { log.userAgent = vs..<b.writeIndex }
                else if ASCIIBytes.equalsCaseInsensitive(bytes, h.name, "referer") { log.referer = vs..<b.writeIndex }
            }
            b.append("\r\n")
        }
        if head.isChunked { b.append("Transfer-Encoding: chunked\r\n") }
        if hostRange == nil, let h = head.host {
            hostRange = h
            b.append("Host: ")
            b.append(UnsafeRawBufferPointer(rebasing: bytes[h]))
            b.append("\r\n")
        }
        b.append("X-Forwarded-For: ")
        if hasXFF {
            for h in head.headers where h.kind == .xForwardedFor && !h.value.isEmpty {
                b.append(UnsafeRawBufferPointer(rebasing: bytes[h.value]))
                b.append(", ")
            }
        }
        b.append(clientIP)
        b.append("\r\nX-Forwarded-Proto: ")
        b.append(proto)
        b.append("\r\n")
        if let h = hostRange {
            b.append("X-Forwarded-Host: ")
            b.append(UnsafeRawBufferPointer(rebasing: bytes[h]))
            b.append("\r\n")
        }
        if !hasRequestId {
            b.append("X-Request-Id: ")
            let s = b.writeIndex
            newRequestId(&b)
            log.requestId = s..<b.writeIndex
            b.append("\r\n")
        }
        if upgrade { b.append("Connection: Upgrade\r\n") }
        b.append("\r\n")
        return log
    }
}
