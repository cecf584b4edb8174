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
    /// `head.headLength + 1024` bytes. `fallbackHost` names this listener for an HTTP/1.0 request without Host;
    /// `newRequestId` appends a fresh id when the client sent none.
    ///
    /// RFC 9112 §3.2: the target goes out in origin-form (asterisk-form for `OPTIONS *`, and for an absolute-form OPTIONS
    /// with neither path nor query, §3.2.4), and Host is the effective authority: an absolute-form target's authority
    /// replaces any Host the client sent (§3.2.2). RFC 9110 §7.6.3: a Via entry is appended. RFC 7239: the client's
    /// Forwarded elements are kept and one element for this hop is appended.
    static func write(
        into b: inout IOBuffer, head: HTTPRequestHead, bytes: UnsafeRawBufferPointer, upgrade: Bool,
        clientIP: UnsafeRawBufferPointer, clientIsIPv6: Bool, proto: StaticString, logFields: Bool,
        fallbackHost: () -> [UInt8], newRequestId: (inout IOBuffer) -> Void
    ) -> RequestLogFields {
        var log = RequestLogFields()
        let start = b.writeIndex
        b.append(UnsafeRawBufferPointer(rebasing: bytes[head.methodRange]))
        b.append(byte: 32)
        let absoluteForm = !head.target.isEmpty && bytes[head.target.lowerBound] != 47 && bytes[head.target.lowerBound] != 42
        if head.path.isEmpty {
            // An absolute-form target without a path: "/" (RFC 9112 §3.2.1), or "*" for OPTIONS without a query.
            b.append(byte: head.method == .options && head.query == nil && absoluteForm ? 42 : 47)
        } else {
            b.append(UnsafeRawBufferPointer(rebasing: bytes[head.path]))
        }
        if let q = head.query {
            b.append(byte: 63)
            b.append(UnsafeRawBufferPointer(rebasing: bytes[q]))
        }
        b.append(" HTTP/1.1")
        log.requestLine = start..<b.writeIndex
        b.append("\r\nHost: ")
        // The effective authority: the absolute-form's, else the Host header's, else (HTTP/1.0) this listener's.
        let hostStart = b.writeIndex
        if let h = head.host {
            b.append(UnsafeRawBufferPointer(rebasing: bytes[h]))
        } else {
            fallbackHost().withUnsafeBytes { _ = b.append($0) }
        }
        let hostRange = hostStart..<b.writeIndex
        b.append("\r\n")
        var hasRequestId = false
        var hasXFF = false
        let nominated = ConnectionOptions.nominatesOthers(head.headers, bytes)
        for h in head.headers {
            switch h.kind {
            case .xForwardedFor:
                hasXFF = true
                continue
            case .xForwardedProto, .xForwardedHost, .host:
                continue
            case .xRequestId:
                hasRequestId = true
            default:
                break
            }
            if h.isHopByHop && !(upgrade && h.kind == .upgrade) { continue }
            // Only ordinary fields: a Connection option never removes the framing (Content-Length) or Host.
            if nominated && h.kind == .other && ConnectionOptions.nominates(h.name, in: head.headers, bytes) { continue }
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
        b.append("\r\nX-Forwarded-Host: ")
        b.appendSelf(hostRange)
        // RFC 7239: node names that are not tokens are quoted, an IPv6 address bracketed; host is always quoted
        // (a port's ':' is not a token character).
        b.append("\r\nForwarded: for=")
        if clientIsIPv6 { b.append("\"[") }
        b.append(clientIP)
        if clientIsIPv6 { b.append("]\"") }
        b.append(";proto=")
        b.append(proto)
        b.append(";host=\"")
        b.appendSelf(hostRange)
        b.append("\"\r\nVia: ")
        b.append(head.versionMinor == 0 ? "1.0 huddle" : "1.1 huddle")
        b.append("\r\n")
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

extension IOBuffer {
    /// Appends a copy of bytes this buffer already holds (`range` in buffer offsets).
    @inline(__always)
    mutating func appendSelf(_ range: Range<Int>) {
        guard range.count <= writableCount else { return }
        (base + writeIndex).copyMemory(from: base + range.lowerBound, byteCount: range.count)
        writeIndex += range.count
    }
}
