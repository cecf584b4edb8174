// Incremental RFC 6455 frame decoder: feed bytes as they arrive, take whole frames out.

public struct WebSocketFrameDecoder: Sendable {
    public enum DecodeError: Error, Equatable, Sendable {
        case reservedBitsSet, reservedOpcode, lengthHasMostSignificantBit, frameTooLarge
        case controlFrameTooLong, fragmentedControlFrame
    }

    /// Frames longer than this are refused, so a peer cannot make us buffer without bound.
    public let maxPayloadLength: Int
    private var buffer: [UInt8] = []
    private var readIndex = 0

    public init(maxPayloadLength: Int = 16 << 20) {
        self.maxPayloadLength = maxPayloadLength
    }

    public mutating func feed(_ bytes: some Collection<UInt8>) {
        // Drop what earlier frames used before growing, so the buffer stays the size of one frame.
        if readIndex > 0 && readIndex >= buffer.count / 2 {
            buffer.removeSubrange(0..<readIndex)
            readIndex = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete frame, nil when more bytes are needed; throws on a protocol violation (after which
    /// the connection must be failed).
    public mutating func nextFrame() throws(DecodeError) -> WebSocketFrame? {
        let available = buffer.count - readIndex
        guard available >= 2 else { return nil }
        let b0 = buffer[readIndex]
        let b1 = buffer[readIndex + 1]
        if b0 & 0x70 != 0 { throw .reservedBitsSet }
        let fin = b0 & 0x80 != 0
        let opcode = b0 & 0x0F
        switch opcode {
        case 0x0, 0x1, 0x2, 0x8, 0x9, 0xA: break
        default: throw .reservedOpcode
        }
        let masked = b1 & 0x80 != 0
        var headerLength = 2
        var length = UInt64(b1 & 0x7F)
        if length == 126 {
            guard available >= 4 else { return nil }
            length = UInt64(buffer[readIndex + 2]) << 8 | UInt64(buffer[readIndex + 3])
            headerLength = 4
        } else if length == 127 {
            guard available >= 10 else { return nil }
            length = 0
            for k in 0..<8 { length = length << 8 | UInt64(buffer[readIndex + 2 + k]) }
            if length >> 63 != 0 { throw .lengthHasMostSignificantBit }
            headerLength = 10
        }
        if opcode & 0x8 != 0 {
            if length > 125 { throw .controlFrameTooLong }
            if !fin { throw .fragmentedControlFrame }
        }
        if length > UInt64(maxPayloadLength) { throw .frameTooLarge }
        let payloadStart = readIndex + headerLength + (masked ? 4 : 0)
        // Compared before adding: with no real maximum (Int.max) header + length could overflow.
        let headerBytes = payloadStart - readIndex
        guard available >= headerBytes, UInt64(available - headerBytes) >= length else { return nil }
        let total = headerBytes + Int(length)
        var payload = Array(buffer[payloadStart..<(payloadStart + Int(length))])
        if masked {
            let keyStart = readIndex + headerLength
            for i in payload.indices { payload[i] ^= buffer[keyStart + (i & 3)] }
        }
        readIndex += total
        return WebSocketFrame(fin: fin, opcode: opcode, payload: payload, wasMasked: masked)
    }
}
