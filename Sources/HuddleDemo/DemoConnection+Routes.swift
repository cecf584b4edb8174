// Answering each demo route once its request head is complete.
import HuddleHTTP

extension DemoConnection {
    func handleRequest() {
        let route = DemoRoute.classify(head, input.readableBytes)
        let framing = head.bodyFraming
        isHead = head.method == .head
        isHTTP10 = head.versionMinor == 0
        if !head.keepAlive { closeWhenIdle = true }
        let expectContinue = head.expectContinue
        consumeInput(head.headLength)
        parser.reset()
        // Every route reads the body it was promised, so every route invites it.
        if expectContinue && framing != .none { output.append("HTTP/1.1 100 Continue\r\n\r\n") }
        if case .echo = route {
            startEcho(framing)
        } else if framing != .none {
            // Answer only after the body is read, so the next pipelined request starts where the body ends.
            pendingRoute = route
            startBody(framing, forward: false)
        } else {
            start(route)
        }
    }

    private func startEcho(_ framing: BodyFraming) {
        switch framing {
        case .contentLength(let n):
            writeHead(status: 200, contentType: "application/octet-stream", framing: .length(n))
            startBody(framing, forward: true)
        case .chunked:
            // The request's chunked framing is valid response framing too, so the body is echoed verbatim.
            writeHead(status: 200, contentType: "application/octet-stream", framing: .chunked)
            startBody(framing, forward: true)
        case .none, .untilClose:
            writeHead(status: 200, contentType: "application/octet-stream", framing: .length(0))
        }
    }

    func start(_ route: DemoRoute) {
        let state = worker.state
        switch route {
        case .hello, .echo:
            respond(status: 200, contentType: "text/plain", body: state.helloBody)
        case .healthz:
            respond(status: 200, contentType: "text/plain", body: Array("ok".utf8))
        case .stats:
            respond(status: 200, contentType: "application/json", body: Array(state.statsJSON().utf8))
        case .roomStats:
            respond(status: 200, contentType: "application/json", body: state.roomsJSON())
        case .headers(let bytes):
            respond(status: 200, contentType: "text/plain", body: bytes)
        case .bytes(let n, let chunked):
            writeHead(status: 200, contentType: "application/octet-stream", framing: chunked ? .chunked : .length(n))
            if isHead { return }
            bytesRemaining = n
            bytesPosition = 0
            bytesChunked = chunked
            bytesSource = DemoContent.pattern.base
            bytesPeriod = 251
            chunkLeft = 0
            task = .bytes
        case .text(let n, let chunked, let type):
            writeHead(status: 200, contentType: type.contentType, framing: chunked ? .chunked : .length(n))
            if isHead { return }
            bytesRemaining = n
            bytesPosition = 0
            bytesChunked = chunked
            bytesSource = DemoContent.text.base
            bytesPeriod = Int64(DemoContent.TextTable.period)
            chunkLeft = 0
            task = .bytes
        case .hang:
            task = .hang
        case .slow(let ms):
            slowMs = ms
            task = .slow
            worker.loop.timers.schedule(self, at: worker.loop.now + ms)
        case .close:
            closeWhenIdle = true
            respond(status: 200, contentType: "text/plain", body: Array("bye from \(state.name)\n".utf8))
        case .status(let code):
            if code == 204 || code == 304 {
                writeHead(status: code, contentType: nil, framing: .none)
            } else {
                respond(status: code, contentType: "text/plain", body: Array("status \(code)\n".utf8))
            }
        case .roomPage(let room):
            respond(status: 200, contentType: "text/html; charset=utf-8",
                    body: DemoContent.roomPage(backend: state.name, room: room))
        case .webSocket(let room, let accept):
            acceptWebSocket(room: room, accept: accept)
        case .badRequest:
            respond(status: 400, contentType: "text/plain", body: Array("bad request\n".utf8))
        case .upgradeRequired:
            respond(status: 426, contentType: "text/plain", body: Array("this path expects a WebSocket upgrade\n".utf8))
        }
    }
}
