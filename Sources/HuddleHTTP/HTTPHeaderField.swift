// One header line of a parsed head, as offsets into the caller's buffer.

public struct HTTPHeaderField: Sendable, Equatable {
    /// Offsets from the start of the message (byte 0 of the buffer passed to `parse`).
    public var name: Range<Int>
    /// OWS trimmed.
    public var value: Range<Int>
    public var kind: HTTPHeaderKind
    /// Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade, and any header whose
    /// name is listed as a token in a Connection header: the proxy must not forward these.
    public var isHopByHop: Bool

    @inlinable
    public init(name: Range<Int>, value: Range<Int>, kind: HTTPHeaderKind, isHopByHop: Bool) {
        self.name = name
        self.value = value
        self.kind = kind
        self.isHopByHop = isHopByHop
    }
}
