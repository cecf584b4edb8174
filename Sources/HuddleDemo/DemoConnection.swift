// One accepted demo backend connection: reads requests, answers them in order, streams bodies with backpressure.
import HuddleHTTP
import HuddleIO
import HuddleSys

/// Drives itself from `drive()`: produce output from what was read, flush it, and read more only once the
/// output is flushed, so a slow reader stops us from reading (backpressure) instead of growing buffers.
/// On the worker's loop thread only.
final class DemoConnection: TimerNode, EventHandler {
    enum Task: Equatable {
        case idle
        /// Forwarding (echo) or discarding a request body.
        case body
        /// Streaming a /bytes body.
        case bytes
        /// A /slow response waiting for its timer.
        case slow
        /// A /hang request: never answered.
        case hang
    }

    enum Step {
        case progress
        /// The socket will not take more: wait for writability.
        case blocked
        /// Nothing more can be done until more input arrives.
        case needInput
        /// A timer or nothing at all will continue this connection.
        case waiting
        /// Everything owed is queued: flush, then close.
        case done
    }

    let fd: Int32
    let serial: Int
    unowned let worker: DemoWorker
    var registration = Registration.none
    var isDirty = false

    /// Pooled buffers, held only while bytes are in flight: an idle keep-alive or WebSocket connection holds none.
    private var inputStore: IOBuffer?
    /// The input buffer; only while `holdsBuffers` (drive() acquires it first).
    var input: IOBuffer {
        _read { yield inputStore! }
        _modify { yield &inputStore! }
    }
    var output: OutputQueue
    private var holdsBuffers: Bool { inputStore != nil }
    var parser = HTTPRequestParser()
    var head = HTTPRequestHead()
    var task = Task.idle
    /// A route whose request body is being discarded before it is answered.
    var pendingRoute: DemoRoute?

    var bodyForward = false
    var bodyChunked = false
    var bodyRemaining: Int64 = 0
    var scanner = ChunkedBodyScanner()
    /// Bytes at the front of `input` the scanner already classified as body.
    var scannedAhead = 0
    var scanFinished = false

    var bytesRemaining: Int64 = 0
    var bytesPosition: Int64 = 0
    var bytesChunked = false
    /// Where a /bytes or /text body comes from: byte i is `bytesSource[i % bytesPeriod]`.
    var bytesSource = DemoContent.pattern.base
    var bytesPeriod: Int64 = 251
    var chunkLeft = 0

    var slowMs: Int64 = 0
    /// Per request: HEAD answers carry no body; HTTP/1.0 keep-alive must be confirmed explicitly.
    var isHead = false
    var isHTTP10 = false
    /// Answer the current request, then close.
    var closeWhenIdle = false

    var webSocket: WebSocketSession?
    var inputClosed = false
    var lingering = false
    private(set) var closed = false

    init(fd: Int32, serial: Int, worker: DemoWorker) {
        self.fd = fd
        self.serial = serial
        self.worker = worker
        inputStore = worker.loop.buffers.acquire()
        output = OutputQueue(buffer: worker.loop.buffers.acquire())
    }

    func handleEvent(_ events: UInt32) {
        drive()
    }

    func drive() {
        guard !closed else { return }
        acquireBuffers()
        do {
            if lingering {
                try drainLingering()
                return
            }
            while !closed {
                let step = try produce()
                if closed { return }
                switch step {
                case .progress:
                    continue
                case .blocked:
                    return
                case .needInput, .waiting, .done:
                    break
                }
                if !(try output.flush(to: fd)) { return }
                if step == .done {
                    try beginClose()
                    return
                }
                if inputClosed {
                    // The peer sent everything it will; only a pending /slow answer is still owed.
                    if task == .slow { return }
                    close()
                    return
                }
                if !(try readInput()) {
                    releaseBuffersIfIdle()
                    return
                }
            }
        } catch {
            close()
        }
    }

    /// Reads once; true when something happened (bytes or end of input), false when the socket or buffer is dry.
    private func readInput() throws(Errno) -> Bool {
        if input.writableCount == 0 { input.compact() }
        if input.writableCount == 0 { return false }
        switch try Sys.read(fd, input.writePointer, input.writableCount) {
        case .wouldBlock:
            return false
        case .done(0):
            inputClosed = true
            return true
        case .done(let n):
            input.writeIndex += n
            return true
        }
    }

    func acquireBuffers() {
        if holdsBuffers { return }
        inputStore = worker.loop.buffers.acquire()
        output.adopt(worker.loop.buffers.acquire())
    }

    private func releaseBuffersIfIdle() {
        guard holdsBuffers, input.isEmpty, output.isEmpty, !lingering else { return }
        inputStore = nil
        output.releaseBuffer()
    }

    @inline(__always) func consumeInput(_ n: Int) {
        input.readIndex += n
        if input.isEmpty { input.clear() }
    }

    private func produce() throws(Errno) -> Step {
        switch task {
        case .idle:
            if let ws = webSocket { return try produceWebSocket(ws) }
            if closeWhenIdle { return .done }
            if input.isEmpty { return .needInput }
            // Answers to pipelined requests collect in the output buffer and leave in one write; flush when it fills.
            if output.bufferSpace < 4096 {
                if !(try output.flush(to: fd)) { return .blocked }
            }
            switch parser.parse(input.readableBytes, into: &head) {
            case .needMore:
                if input.readIndex == 0 && input.writableCount == 0 {
                    answerParseError(status: 431)
                    return .progress
                }
                return .needInput
            case .error(let e):
                answerParseError(status: e.status)
                return .progress
            case .complete:
                worker.counters.requests.wrappingAdd(1, ordering: .relaxed)
                handleRequest()
                return .progress
            }
        case .body:
            return try produceBody()
        case .bytes:
            return try produceBytes()
        case .slow, .hang:
            return .waiting
        }
    }

    private func answerParseError(status: Int) {
        closeWhenIdle = true
        isHead = false
        isHTTP10 = false
        input.clear()
        let body: StaticString = "bad request\n"
        writeHead(status: status, contentType: "text/plain", framing: .length(Int64(body.utf8CodeUnitCount)))
        output.append(body)
    }

    // MARK: response heads

    enum Framing { case length(Int64), chunked, none }

    func writeHead(status: Int, contentType: StaticString?, framing: Framing) {
        output.append("HTTP/1.1 ")
        output.append(decimal: Int64(status))
        output.append(" ")
        output.append(HTTPStatus.reasonPhrase(status))
        output.append("\r\n")
        output.append(worker.state.backendHeader)
        output.append("X-Backend-Connection: ")
        output.append(decimal: Int64(serial))
        output.append("\r\n")
        if let contentType {
            output.append("Content-Type: ")
            output.append(contentType)
            output.append("\r\n")
        }
        switch framing {
        case .length(let n):
            output.append("Content-Length: ")
            output.append(decimal: n)
            output.append("\r\n")
        case .chunked:
            output.append("Transfer-Encoding: chunked\r\n")
        case .none:
            break
        }
        if closeWhenIdle {
            output.append("Connection: close\r\n")
        } else if isHTTP10 {
            output.append("Connection: keep-alive\r\n")
        }
        output.append("\r\n")
    }

    /// A complete response with a small body (omitted for HEAD).
    func respond(status: Int, contentType: StaticString, body: [UInt8]) {
        writeHead(status: status, contentType: contentType, framing: .length(Int64(body.count)))
        if !isHead { output.append(body) }
    }

    // MARK: timers and closing

    override func timerFired(now: Int64) {
        if lingering {
            close()
        } else if task == .slow {
            acquireBuffers()
            task = .idle
            respond(status: 200, contentType: "text/plain", body: Array("waited \(slowMs) ms\n".utf8))
            drive()
        }
    }

    /// Half-closes and drains: closing with unread input would send a reset that can destroy the answer in flight.
    private func beginClose() throws(Errno) {
        if inputClosed {
            close()
            return
        }
        Sys.shutdown(fd, .write)
        lingering = true
        worker.loop.timers.schedule(self, at: worker.loop.now + 2000)
        try drainLingering()
    }

    private func drainLingering() throws(Errno) {
        while true {
            input.clear()
            switch try Sys.read(fd, input.writePointer, input.writableCount) {
            case .wouldBlock:
                return
            case .done(0):
                close()
                return
            case .done:
                continue
            }
        }
    }

    func close() {
        guard !closed else { return }
        closed = true
        worker.loop.timers.cancel(self)
        worker.loop.deregister(fd: fd, registration: registration)
        Sys.close(fd)
        inputStore = nil
        output.discardAll()
        if let ws = webSocket {
            worker.counters.webSocketsOpen.wrappingAdd(-1, ordering: .relaxed)
            if let room = ws.room { worker.state.rooms.leave(room, serial: serial) }
        }
        worker.forget(self)
    }
}
