// A parsed response head: status, offsets into the caller's buffer, and how its body is framed.

public struct HTTPResponseHead: Sendable, Equatable {
    public var status: Int = 0
    public var versionMinor: Int = 1
    /// The reason phrase as sent (may be empty).
    public var reason: Range<Int> = 0..<0
    public var headers: [HTTPHeaderField] = []
    public var headLength: Int = 0
    public var contentLength: Int64? = nil
    public var isChunked: Bool = false
    /// Transfer-Encoding is present but chunked is not its final coding: the body runs until close.
    public var hasUnchunkedTransferEncoding: Bool = false
    /// From the version and Connection header only; a body delimited by close also ends the connection,
    /// which `bodyFraming(requestMethod:)` tells.
    public var keepAlive: Bool = true
    public var connectionHasUpgrade: Bool = false
    public var upgrade: Range<Int>? = nil

    public init() {}

    /// Clears every field but keeps `headers`' capacity.
    public mutating func reset() {
        status = 0
        versionMinor = 1
        reason = 0..<0
        headers.removeAll(keepingCapacity: true)
        headLength = 0
        contentLength = nil
        isChunked = false
        hasUnchunkedTransferEncoding = false
        keepAlive = true
        connectionHasUpgrade = false
        upgrade = nil
    }

    /// RFC 9112 6.3, in its order: no body for HEAD, 1xx, 204, 304; a 2xx to CONNECT becomes a tunnel;
    /// then chunked, then Content-Length, else until close.
    public func bodyFraming(requestMethod: HTTPMethod) -> BodyFraming {
        if requestMethod == .head || (100...199).contains(status) || status == 204 || status == 304 { return .none }
        if requestMethod == .connect && (200...299).contains(status) { return .untilClose }
        if isChunked { return .chunked }
        if hasUnchunkedTransferEncoding { return .untilClose }
        if let contentLength { return .contentLength(contentLength) }
        return .untilClose
    }

    public func firstHeader(_ kind: HTTPHeaderKind) -> HTTPHeaderField? {
        for field in headers where field.kind == kind { return field }
        return nil
    }
}
