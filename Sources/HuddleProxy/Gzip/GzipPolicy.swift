// Whether a response is gzip-compressed on its way to the client, and whether it says `Vary: Accept-Encoding`:
// decided once per response head from facts read off the request and response heads. Pure and table-tested.
import HuddleConfig
import HuddleHTTP

/// A server block's `gzip on ...`, in the form the data path reads (media types as lower-case bytes).
public final class GzipRuntime: Sendable {
    public let level: Int
    public let minLength: Int64
    /// `type/subtype`, lower-case.
    let types: [[UInt8]]
    /// `types=*`.
    let anyType: Bool

    public init(_ c: GzipConfig) {
        level = c.level
        minLength = Int64(c.minLength)
        anyType = c.types.contains("*")
        types = c.types.filter { $0 != "*" }.map { Array($0.lowercased().utf8) }
    }

    /// Whether a Content-Type value (`bytes[value]`, nil when absent) is one of the listed media types; its
    /// parameters (`; charset=...`) are ignored, the comparison is case-insensitive.
    func lists(contentType value: Range<Int>?, in bytes: UnsafeRawBufferPointer) -> Bool {
        if anyType { return true }
        guard let value else { return false }
        var end = value.lowerBound
        while end < value.upperBound && bytes[end] != 0x3B { end &+= 1 }
        let media = ASCIIBytes.trimmingOWS(bytes, value.lowerBound..<end)
        for t in types where t.count == media.count {
            var i = 0
            while i < t.count && ASCIIBytes.lowercased(bytes[media.lowerBound &+ i]) == t[i] { i &+= 1 }
            if i == t.count { return true }
        }
        return false
    }
}

/// What the request head says about compression, read once when the exchange starts (only in gzip server blocks).
struct GzipRequestFacts: Equatable {
    var acceptsGzip = false
    /// A Range header: the client wants byte ranges of the identity body, so it gets the identity body.
    var hasRange = false

    static func read(_ head: HTTPRequestHead, _ bytes: UnsafeRawBufferPointer) -> GzipRequestFacts {
        var facts = GzipRequestFacts()
        var accept = AcceptEncodingGzip()
        for h in head.headers where h.kind == .other {
            switch h.name.count {
            case 5: if ASCIIBytes.equalsCaseInsensitive(bytes, h.name, "range") { facts.hasRange = true }
            case 15: if ASCIIBytes.equalsCaseInsensitive(bytes, h.name, "accept-encoding") { accept.add(h.value, in: bytes) }
            default: break
            }
        }
        facts.acceptsGzip = accept.acceptsGzip
        return facts
    }
}

/// The response header fields the gzip decision and the head rewrite look at (all `HTTPHeaderKind.other`).
enum GzipHeaderName {
    case contentType, contentEncoding, cacheControl, vary, etag, acceptRanges, other

    init(_ h: HTTPHeaderField, _ bytes: UnsafeRawBufferPointer) {
        guard h.kind == .other else { self = .other; return }
        @inline(__always) func eq(_ s: StaticString) -> Bool { ASCIIBytes.equalsCaseInsensitive(bytes, h.name, s) }
        switch h.name.count {
        case 4: self = eq("vary") ? .vary : eq("etag") ? .etag : .other
        case 12: self = eq("content-type") ? .contentType : .other
        case 13: self = eq("cache-control") ? .cacheControl : eq("accept-ranges") ? .acceptRanges : .other
        case 16: self = eq("content-encoding") ? .contentEncoding : .other
        default: self = .other
        }
    }
}

/// What the response head says, read once per response head (only in gzip server blocks).
struct GzipResponseFacts: Equatable {
    /// The first Content-Type value.
    var contentType: Range<Int>? = nil
    /// A Content-Encoding other than `identity`: the body is encoded already.
    var encoded = false
    /// `Cache-Control: no-transform`: an intermediary must not change the content (RFC 9110 §7.7).
    var noTransform = false
    var hasVary = false
    /// A Vary already names Accept-Encoding (or `*`): nothing to add.
    var varyCoversAcceptEncoding = false

    static func read(_ head: HTTPResponseHead, _ bytes: UnsafeRawBufferPointer) -> GzipResponseFacts {
        var f = GzipResponseFacts()
        for h in head.headers {
            switch GzipHeaderName(h, bytes) {
            case .contentType:
                if f.contentType == nil { f.contentType = h.value }
            case .contentEncoding:
                ASCIIBytes.forEachToken(in: h.value, of: bytes) { t in
                    if !ASCIIBytes.equalsCaseInsensitive(bytes, t, "identity") { f.encoded = true }
                }
            case .cacheControl:
                ASCIIBytes.forEachToken(in: h.value, of: bytes) { t in
                    if ASCIIBytes.equalsCaseInsensitive(bytes, t, "no-transform") { f.noTransform = true }
                }
            case .vary:
                f.hasVary = true
                ASCIIBytes.forEachToken(in: h.value, of: bytes) { t in
                    if ASCIIBytes.equalsCaseInsensitive(bytes, t, "accept-encoding") || (t.count == 1 && bytes[t.lowerBound] == 0x2A) {
                        f.varyCoversAcceptEncoding = true
                    }
                }
            case .etag, .acceptRanges, .other:
                break
            }
        }
        return f
    }
}

/// The decision for one response.
struct GzipDecision: Equatable {
    /// Compress the body for this client.
    var compress: Bool
    /// The response is compressible (for some client): it says `Vary: Accept-Encoding`, so caches key on it.
    var vary: Bool

    static let neither = GzipDecision(compress: false, vary: false)
}

enum GzipPolicy {
    /// `typeListed`: the Content-Type is in `types`. `framing`: the response body's framing as the relay sees it (none
    /// for HEAD, 1xx, 204, 304). `contentLength`: the length the head announces (nil when chunked or absent).
    static func decide(typeListed: Bool, encoded: Bool, noTransform: Bool, status: Int, method: HTTPMethod,
                       framing: BodyFraming, contentLength: Int64?, minLength: Int64, request: GzipRequestFacts,
                       clientIsHTTP10: Bool) -> GzipDecision {
        // Compressible at all, for any client: a listed type, not encoded already, a status whose body is the
        // representation (not 206 Partial Content, not the bodiless 204/304), and long enough (when the length is
        // known; an empty body has nothing to compress).
        let statusAllows = status >= 200 && status != 204 && status != 206 && status != 304 && method != .connect
        let longEnough = contentLength.map { $0 >= max(minLength, 1) } ?? true
        guard typeListed && !encoded && !noTransform && statusAllows && longEnough else { return .neither }
        // For this client: it accepts gzip, asked for no byte range, speaks HTTP/1.1 (chunked output), and a body follows.
        let compress = request.acceptsGzip && !request.hasRange && !clientIsHTTP10 && method != .head && framing != .none
        return GzipDecision(compress: compress, vary: true)
    }
}
