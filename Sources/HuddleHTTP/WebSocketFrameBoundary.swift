// Follows WebSocket frame boundaries in a byte stream without keeping the bytes: the proxy needs to know where a
// frame ends to add its own Close frame (1001 on shutdown) without cutting into a message.
public struct WebSocketFrameBoundary: Sendable {
    /// Header bytes seen of the frame being started (0 when at a boundary or inside a payload).
    private var headerHave = 0
    /// Header length once known (2 until the second byte says more).
    private var headerNeed = 2
    private var lengthBytes: UInt64 = 0
    private var len7: UInt8 = 0
    private var masked = false
    /// Payload bytes of the current frame still to come.
    public private(set) var payloadRemaining: UInt64 = 0
    /// A Close frame's header went by: the sender started the closing handshake (RFC 6455 §5.5.1).
    public private(set) var sawClose = false

    public init() {}

    /// True between frames: a new frame may be inserted here.
    public var atBoundary: Bool { headerHave == 0 && payloadRemaining == 0 }

    /// Payload bytes that can pass (e.g. be spliced) before the next header needs looking at.
    public var bytesBeforeNextHeader: UInt64 { headerHave == 0 ? payloadRemaining : 0 }

    /// Accounts for `n` payload bytes that went by unseen; `n` must not exceed `bytesBeforeNextHeader`.
    public mutating func skip(_ n: Int) {
        precondition(UInt64(n) <= bytesBeforeNextHeader, "skipped past a frame header")
        payloadRemaining -= UInt64(n)
    }

    /// Follows bytes of the stream, in order.
    public mutating func consume(_ bytes: UnsafeRawBufferPointer) {
        var i = 0
        let n = bytes.count
        while i < n {
            if payloadRemaining > 0 && headerHave == 0 {
                let take = Int(min(UInt64(n - i), payloadRemaining))
                payloadRemaining -= UInt64(take)
                i += take
                continue
            }
            let b = bytes[i]
            i += 1
            switch headerHave {
            case 0:
                headerNeed = 2
                lengthBytes = 0
                if b & 0x0F == 0x8 { sawClose = true }
            case 1:
                masked = b & 0x80 != 0
                len7 = b & 0x7F
                headerNeed = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (masked ? 4 : 0)
            default:
                let extEnd = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0)
                if headerHave < extEnd { lengthBytes = lengthBytes << 8 | UInt64(b) }
            }
            headerHave += 1
            if headerHave == headerNeed {
                payloadRemaining = len7 < 126 ? UInt64(len7) : lengthBytes
                headerHave = 0
            }
        }
    }
}
