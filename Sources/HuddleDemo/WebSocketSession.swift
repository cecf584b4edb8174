// A demo connection's WebSocket state after the 101: the frame decoder, a message being reassembled, the room.
import HuddleHTTP

final class WebSocketSession {
    static let maxMessage = 16 << 20

    var decoder = WebSocketFrameDecoder(maxPayloadLength: WebSocketSession.maxMessage)
    /// The fragments of a message so far (nil between messages).
    var message: [UInt8]?
    var messageOpcode: UInt8 = 0
    /// nil: the echo service.
    let room: String?
    let roomBytes: [UInt8]
    /// A Close frame was queued: nothing else may be sent, the connection ends once it is flushed.
    var closeSent = false

    init(room: [UInt8]?) {
        self.room = room.map { String(decoding: $0, as: UTF8.self) }
        roomBytes = room ?? []
    }
}
