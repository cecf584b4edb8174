// How the body after a head is delimited (RFC 9112 6.3).

public enum BodyFraming: Equatable, Sendable {
    case none
    case contentLength(Int64)
    case chunked
    /// Only responses: the body runs until the server closes the connection.
    case untilClose
}
