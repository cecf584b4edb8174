// Header names the proxy acts on, recognised once at parse time so later code switches on an enum.

public enum HTTPHeaderKind: UInt8, Sendable {
    case other, host, contentLength, transferEncoding, connection, keepAlive,
         proxyConnection, te, trailer, upgrade, expect, cookie, xForwardedFor, xForwardedProto, xForwardedHost, xRequestId,
         secWebSocketKey, secWebSocketVersion

    /// Hop-by-hop by definition (RFC 9110 7.6.1); headers named in `Connection` are hop-by-hop too.
    @inlinable
    public var isHopByHop: Bool {
        switch self {
        case .connection, .keepAlive, .proxyConnection, .te, .trailer, .transferEncoding, .upgrade: return true
        default: return false
        }
    }

    /// Classifies a header name; dispatching on length first keeps the common case to one or two compares.
    @inlinable
    public init(name range: Range<Int>, in bytes: UnsafeRawBufferPointer) {
        @inline(__always) func eq(_ s: StaticString) -> Bool { ASCIIBytes.equalsCaseInsensitive(bytes, range, s) }
        switch range.count {
        case 2: self = eq("te") ? .te : .other
        case 4: self = eq("host") ? .host : .other
        case 6:
            if eq("cookie") { self = .cookie } else if eq("expect") { self = .expect } else { self = .other }
        case 7:
            if eq("upgrade") { self = .upgrade } else if eq("trailer") { self = .trailer } else { self = .other }
        case 10:
            if eq("connection") { self = .connection } else if eq("keep-alive") { self = .keepAlive } else { self = .other }
        case 12: self = eq("x-request-id") ? .xRequestId : .other
        case 14: self = eq("content-length") ? .contentLength : .other
        case 15: self = eq("x-forwarded-for") ? .xForwardedFor : .other
        case 16:
            if eq("x-forwarded-host") { self = .xForwardedHost } else if eq("proxy-connection") { self = .proxyConnection }
            else { self = .other }
        case 17:
            if eq("transfer-encoding") { self = .transferEncoding } else if eq("x-forwarded-proto") { self = .xForwardedProto }
            else if eq("sec-websocket-key") { self = .secWebSocketKey } else { self = .other }
        case 21: self = eq("sec-websocket-version") ? .secWebSocketVersion : .other
        default: self = .other
        }
    }
}
