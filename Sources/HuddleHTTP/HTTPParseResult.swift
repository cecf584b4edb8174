// What one call to a parser concluded.

public enum HTTPParseResult: Equatable, Sendable {
    /// The head has not ended yet; call again with a longer buffer.
    case needMore
    /// The head is complete and has been written to the `head` argument; `head.headLength` bytes belong to it.
    case complete
    case error(HTTPParseError)
}
