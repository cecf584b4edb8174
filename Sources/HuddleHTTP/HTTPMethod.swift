// The request method, recognised from raw bytes without building a String.

public enum HTTPMethod: UInt8, Sendable {
    case get, head, post, put, delete, connect, options, trace, patch, other

    /// RFC 9110 9.2.2: replaying these is safe, so the proxy may retry them on another server.
    public var isIdempotent: Bool {
        switch self {
        case .get, .head, .options, .trace, .put, .delete: return true
        case .post, .connect, .patch, .other: return false
        }
    }

    /// Methods are case-sensitive (RFC 9110 9.1), so `get` is `.other`.
    @inlinable
    public init(bytes: UnsafeRawBufferPointer, range: Range<Int>) {
        let s = range.lowerBound
        switch range.count {
        case 3:
            if bytes[s] == 0x47 && bytes[s + 1] == 0x45 && bytes[s + 2] == 0x54 { self = .get; return }
            if bytes[s] == 0x50 && bytes[s + 1] == 0x55 && bytes[s + 2] == 0x54 { self = .put; return }
        case 4:
            if ASCIIBytes.equals(bytes, range, "POST" as StaticString) { self = .post; return }
            if ASCIIBytes.equals(bytes, range, "HEAD" as StaticString) { self = .head; return }
        case 5:
            if ASCIIBytes.equals(bytes, range, "PATCH" as StaticString) { self = .patch; return }
            if ASCIIBytes.equals(bytes, range, "TRACE" as StaticString) { self = .trace; return }
        case 6:
            if ASCIIBytes.equals(bytes, range, "DELETE" as StaticString) { self = .delete; return }
        case 7:
            if ASCIIBytes.equals(bytes, range, "OPTIONS" as StaticString) { self = .options; return }
            if ASCIIBytes.equals(bytes, range, "CONNECT" as StaticString) { self = .connect; return }
        default:
            break
        }
        self = .other
    }
}
