// One RFC 6455 frame and its encoder, for the demo backend and test clients (not the proxy's hot path).

public struct WebSocketFrame: Equatable, Sendable {
    public static let continuation: UInt8 = 0x0
    public static let text: UInt8 = 0x1
    public static let binary: UInt8 = 0x2
    public static let close: UInt8 = 0x8
    public static let ping: UInt8 = 0x9
    public static let pong: UInt8 = 0xA

    public var fin: Bool
    public var opcode: UInt8
    /// Unmasked.
    public var payload: [UInt8]
    /// Whether the sender masked it (clients must, servers must not).
    public var wasMasked: Bool

    public init(fin: Bool, opcode: UInt8, payload: [UInt8], wasMasked: Bool = false) {
        self.fin = fin
        self.opcode = opcode
        self.payload = payload
        self.wasMasked = wasMasked
    }

    public var isControl: Bool { opcode & 0x8 != 0 }

    /// Encodes a frame with the shortest length form; `maskKey` non-nil masks the payload (client to server).
    public static func encode(opcode: UInt8, payload: some Collection<UInt8>, fin: Bool = true, maskKey: UInt32?) -> [UInt8] {
        let length = payload.count
        var out: [UInt8] = []
        out.reserveCapacity(length + 14)
        out.append((fin ? 0x80 : 0) | (opcode & 0x0F))
        let maskBit: UInt8 = maskKey == nil ? 0 : 0x80
        if length < 126 {
            out.append(maskBit | UInt8(length))
        } else if length <= 0xFFFF {
            out.append(maskBit | 126)
            out.append(UInt8(length >> 8))
            out.append(UInt8(length & 0xFF))
        } else {
            out.append(maskBit | 127)
            for shift in stride(from: 56, through: 0, by: -8) {
                out.append(UInt8(truncatingIfNeeded: UInt64(length) >> UInt64(shift)))
            }
        }
        if let maskKey {
            let key: [UInt8] = [UInt8(maskKey >> 24), UInt8(maskKey >> 16 & 0xFF),
                                UInt8(maskKey >> 8 & 0xFF), UInt8(maskKey & 0xFF)]
            out.append(contentsOf: key)
            var i = 0
            for b in payload {
                out.append(b ^ key[i & 3])
                i &+= 1
            }
        } else {
            out.append(contentsOf: payload)
        }
        return out
    }

    /// The payload of a close frame: a 2-byte code and a UTF-8 reason.
    public static func closePayload(code: UInt16, reason: String = "") -> [UInt8] {
        [UInt8(code >> 8), UInt8(code & 0xFF)] + Array(reason.utf8)
    }
}
