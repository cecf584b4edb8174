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

/// RFC 9110 §7.6.1: a header named as an option of the message's Connection header is hop-by-hop too, and an
/// intermediary must not forward it.
public enum ConnectionOptions {
    /// Whether any Connection header of `headers` names something other than the standard options (close,
    /// keep-alive, upgrade): the common message has none, and then no header needs checking.
    public static func nominatesOthers(_ headers: [HTTPHeaderField], _ bytes: UnsafeRawBufferPointer) -> Bool {
        var others = false
        for h in headers where h.kind == .connection {
            ASCIIBytes.forEachToken(in: h.value, of: bytes) { t in
                if !ASCIIBytes.equalsCaseInsensitive(bytes, t, "close") && !ASCIIBytes.equalsCaseInsensitive(bytes, t, "keep-alive")
                    && !ASCIIBytes.equalsCaseInsensitive(bytes, t, "upgrade") { others = true }
            }
        }
        return others
    }

    /// Whether `name` is listed in a Connection header of `headers`.
    public static func nominates(_ name: Range<Int>, in headers: [HTTPHeaderField], _ bytes: UnsafeRawBufferPointer) -> Bool {
        var found = false
        for h in headers where h.kind == .connection {
            ASCIIBytes.forEachToken(in: h.value, of: bytes) { t in
                if ASCIIBytes.equalsCaseInsensitive(bytes, t, name) { found = true }
            }
        }
        return found
    }
}
