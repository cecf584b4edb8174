// A small blocking WebSocket client for tests: handshake, send, receive whole messages, close, half-close.
import HuddleHTTP
import HuddleSys

public enum DemoWebSocketMessage: Equatable, Sendable {
    case text(String)
    case binary([UInt8])
    case ping([UInt8])
    case pong([UInt8])
    /// A Close frame: its code (nil when the payload was empty) and reason.
    case close(code: UInt16?, reason: String)
}

public final class DemoWebSocketClient {
    private let socket: BlockingSocket
    private var decoder = WebSocketFrameDecoder()
    private var rng = SystemRandomNumberGenerator()
    /// The 101 response, for checking what the server (or proxy) sent.
    public let handshakeResponse: DemoHTTPResponse

    /// Connects and performs the opening handshake on `path`; throws unless the answer is a valid 101.
    public init(address: SocketAddress, path: String, host: String = "demo", headers: [(String, String)] = [],
                timeoutSeconds: Int = 10) throws {
        socket = try BlockingSocket(address: address, timeoutSeconds: timeoutSeconds)
        var keyBytes: [UInt8] = []
        for _ in 0..<16 { keyBytes.append(UInt8.random(in: 0...255, using: &rng)) }
        let key = Base64.encode(keyBytes)
        var head = "GET \(path) HTTP/1.1\r\nHost: \(host)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        head += "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n"
        for (n, v) in headers { head += "\(n): \(v)\r\n" }
        head += "\r\n"
        try socket.send(Array(head.utf8))
        var (response, framing) = try socket.readResponseHead(isHead: false)
        if case .contentLength(let n) = framing { response.body = try socket.take(Int(n)) }
        handshakeResponse = response
        guard response.status == 101 else {
            throw DemoClientError("handshake answered \(response.status) \(response.bodyText)")
        }
        guard response.header("Sec-WebSocket-Accept") == WebSocketHandshake.acceptValue(forKey: Array(key.utf8)) else {
            throw DemoClientError("wrong Sec-WebSocket-Accept")
        }
    }

    public func send(text: String) throws { try sendFrame(opcode: WebSocketFrame.text, payload: Array(text.utf8)) }
    public func send(binary: [UInt8]) throws { try sendFrame(opcode: WebSocketFrame.binary, payload: binary) }

    /// One masked frame; `fin: false` and continuation opcodes let tests fragment messages.
    public func sendFrame(opcode: UInt8, payload: [UInt8], fin: Bool = true) throws {
        try socket.send(WebSocketFrame.encode(opcode: opcode, payload: payload, fin: fin, maskKey: UInt32.random(in: 0...UInt32.max, using: &rng)))
    }

    /// The next message (fragments reassembled) or control frame.
    public func receive() throws -> DemoWebSocketMessage {
        var fragments: [UInt8]?
        var opcode: UInt8 = 0
        while true {
            decoder.feed(socket.pending)
            socket.pending.removeAll()
            while let frame = try decoder.nextFrame() {
                switch frame.opcode {
                case WebSocketFrame.ping: return .ping(frame.payload)
                case WebSocketFrame.pong: return .pong(frame.payload)
                case WebSocketFrame.close:
                    let p = frame.payload
                    if p.count < 2 { return .close(code: nil, reason: "") }
                    return .close(code: UInt16(p[0]) << 8 | UInt16(p[1]), reason: String(decoding: p[2...], as: UTF8.self))
                case WebSocketFrame.continuation:
                    fragments = (fragments ?? []) + frame.payload
                default:
                    opcode = frame.opcode
                    fragments = frame.payload
                }
                if frame.fin, let m = fragments {
                    return opcode == WebSocketFrame.text ? .text(String(decoding: m, as: UTF8.self)) : .binary(m)
                }
            }
            if try !socket.receiveMore() { throw DemoClientError("connection closed while waiting for a message") }
        }
    }

    /// Sends a Close frame with this code.
    public func close(code: UInt16 = 1000) throws {
        try sendFrame(opcode: WebSocketFrame.close, payload: WebSocketFrame.closePayload(code: code))
    }

    /// Half-close: the server sees end of input but can still send.
    public func shutdownWrite() { socket.shutdownWrite() }

    /// Reads (and discards) until the server closes the TCP connection; returns what arrived meanwhile.
    public func readUntilClosed() throws -> [UInt8] { try socket.takeAll() }

    public func disconnect() { socket.close() }
}
