// A parsed request head: offsets into the caller's buffer plus the framing and connection facts the proxy needs.

public struct HTTPRequestHead: Sendable, Equatable {
    public var method: HTTPMethod = .other
    public var methodRange: Range<Int> = 0..<0
    /// The request-target as sent.
    public var target: Range<Int> = 0..<0
    /// Origin-form path; for absolute-form the path part (empty when the URI has none, meaning "/");
    /// "*" for asterisk-form; empty (at the end of the target) for CONNECT's authority-form.
    public var path: Range<Int> = 0..<0
    /// After '?', without it.
    public var query: Range<Int>? = nil
    /// 0 or 1.
    public var versionMinor: Int = 1
    public var headers: [HTTPHeaderField] = []
    /// Bytes of the head including the final CRLFCRLF and any leading empty lines: the body (or the next
    /// pipelined request) starts here.
    public var headLength: Int = 0
    public var contentLength: Int64? = nil
    public var isChunked: Bool = false
    /// The Host header value, or the authority of an absolute-form target (which RFC 9112 3.2.2 says wins).
    public var host: Range<Int>? = nil
    /// HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with "Connection: keep-alive".
    public var keepAlive: Bool = true
    /// The Connection header lists "upgrade".
    public var connectionHasUpgrade: Bool = false
    /// The first Upgrade header's value.
    public var upgrade: Range<Int>? = nil
    /// "Expect: 100-continue".
    public var expectContinue: Bool = false

    public init() {}

    /// Clears every field but keeps `headers`' capacity, so a reused head does not allocate.
    public mutating func reset() {
        method = .other
        methodRange = 0..<0
        target = 0..<0
        path = 0..<0
        query = nil
        versionMinor = 1
        headers.removeAll(keepingCapacity: true)
        headLength = 0
        contentLength = nil
        isChunked = false
        host = nil
        keepAlive = true
        connectionHasUpgrade = false
        upgrade = nil
        expectContinue = false
    }

    /// Requests are never delimited by close (RFC 9112 6.3 rule 7): no CL and no TE means no body.
    public var bodyFraming: BodyFraming {
        if isChunked { return .chunked }
        if let contentLength { return .contentLength(contentLength) }
        return .none
    }

    /// The first header of `kind`, if any.
    public func firstHeader(_ kind: HTTPHeaderKind) -> HTTPHeaderField? {
        for field in headers where field.kind == kind { return field }
        return nil
    }
}
