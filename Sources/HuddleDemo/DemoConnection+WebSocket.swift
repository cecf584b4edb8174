// The demo backend's WebSocket services: per-connection echo, and chat rooms shared by this process's workers.
import HuddleHTTP
import HuddleIO
import HuddleSys

extension DemoConnection {
    func acceptWebSocket(room: [UInt8]?, accept: String) {
        output.append("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ")
        output.append(Array(accept.utf8))
        output.append("\r\n")
        output.append(worker.state.backendHeader)
        output.append("X-Backend-Connection: ")
        output.append(decimal: Int64(serial))
        output.append("\r\n\r\n")
        let session = WebSocketSession(room: room)
        webSocket = session
        worker.counters.webSocketsOpen.wrappingAdd(1, ordering: .relaxed)
        if let name = session.room {
            let members = worker.state.rooms.join(name, ChatRoomMember(serial: serial, loop: worker.loop, connection: ConnectionHandle(self)))
            send(opcode: WebSocketFrame.text,
                 DemoContent.welcome(backend: worker.state.name, room: session.roomBytes, members: members))
        }
    }

    func send(opcode: UInt8, _ payload: [UInt8]) {
        output.append(WebSocketFrame.encode(opcode: opcode, payload: payload, maskKey: nil))
    }

    private func sendClose(_ payload: [UInt8], _ ws: WebSocketSession) {
        send(opcode: WebSocketFrame.close, payload)
        ws.closeSent = true
    }

    func produceWebSocket(_ ws: WebSocketSession) throws(Errno) -> Step {
        if ws.closeSent { return .done }
        if !input.isEmpty {
            ws.decoder.feed(input.readableBytes)
            input.clear()
        }
        while true {
            // Stop decoding while much is unsent: the peer's further frames wait in its socket, not in our memory.
            if output.pendingCount > 1 << 20 {
                if !(try output.flush(to: fd)) { return .blocked }
            }
            let frame: WebSocketFrame?
            do {
                frame = try ws.decoder.nextFrame()
            } catch {
                sendClose(WebSocketFrame.closePayload(code: error == .frameTooLarge ? 1009 : 1002), ws)
                return .done
            }
            guard let frame else { return .needInput }
            switch frame.opcode {
            case WebSocketFrame.ping:
                send(opcode: WebSocketFrame.pong, frame.payload)
            case WebSocketFrame.pong:
                break
            case WebSocketFrame.close:
                sendClose(frame.payload, ws)
                return .done
            case WebSocketFrame.text, WebSocketFrame.binary:
                if ws.message != nil {
                    sendClose(WebSocketFrame.closePayload(code: 1002), ws)
                    return .done
                }
                if frame.fin {
                    handleMessage(opcode: frame.opcode, frame.payload, ws)
                } else {
                    ws.message = frame.payload
                    ws.messageOpcode = frame.opcode
                }
            default:  // continuation
                guard var m = ws.message else {
                    sendClose(WebSocketFrame.closePayload(code: 1002), ws)
                    return .done
                }
                ws.message = nil
                if m.count + frame.payload.count > WebSocketSession.maxMessage {
                    sendClose(WebSocketFrame.closePayload(code: 1009), ws)
                    return .done
                }
                m.append(contentsOf: frame.payload)
                if frame.fin {
                    handleMessage(opcode: ws.messageOpcode, m, ws)
                } else {
                    ws.message = m
                }
            }
            if ws.closeSent { return .done }
        }
    }

    private func handleMessage(opcode: UInt8, _ payload: [UInt8], _ ws: WebSocketSession) {
        if let room = ws.room {
            guard opcode == WebSocketFrame.text else { return }
            let frame = WebSocketFrame.encode(
                opcode: WebSocketFrame.text,
                payload: DemoContent.chatMessage(backend: worker.state.name, text: payload), maskKey: nil)
            broadcast(frame, room: room)
            return
        }
        if opcode == WebSocketFrame.text {
            if payload.elementsEqual("__whoami".utf8) {
                send(opcode: WebSocketFrame.text, Array(worker.state.name.utf8))
                return
            }
            if payload.elementsEqual("__close".utf8) {
                sendClose(WebSocketFrame.closePayload(code: 1000), ws)
                return
            }
        }
        send(opcode: opcode, payload)
    }

    private func broadcast(_ frame: [UInt8], room: String) {
        let here = worker.loop
        for m in worker.state.rooms.members(of: room) {
            let handle = m.connection
            if m.loop === here {
                handle.connection.deliver(frame)
            } else {
                m.loop.execute { handle.connection.deliver(frame) }
            }
        }
    }

    /// Queues a frame from another connection; it is flushed when this loop's turn ends.
    func deliver(_ frame: [UInt8]) {
        guard !closed, let ws = webSocket, !ws.closeSent else { return }
        acquireBuffers()
        output.append(frame)
        worker.markDirty(self)
    }
}
