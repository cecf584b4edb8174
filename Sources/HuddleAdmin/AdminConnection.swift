// One admin client connection: keep-alive, pipelined requests answered in order, never blocking the control loop.
import HuddleHTTP
import HuddleIO
import HuddleSys

/// What the endpoints need of a request.
struct AdminRequest {
    var method: HTTPMethod
    var path: String
    var query: AdminQuery
    /// The first Authorization header's value.
    var authorization: String?
}

/// Reads requests, answers each as soon as its head (and any small body, which is discarded) is in, and keeps the
/// connection for the next one unless the client said `Connection: close` (or spoke HTTP/1.0 without keep-alive).
///
/// - Pipelining: every complete request in the input is answered in order; at most `requestsPerTurn` per loop turn
///   (the rest continue on the next turn), and reading stops while more than `maxPendingOutput` bytes of answers wait
///   for a client that does not read.
/// - A connection that completes no request within the server's `idleTimeoutMs` of connecting or of its previous
///   answer is closed (a slow client cannot hold a descriptor forever).
/// - Closing: answers are flushed, the write side is shut down, and input is read and dropped until the client closes
///   or `lingerMs` pass, so a close never resets answers the client has not read yet.
// SAFETY: on the control loop's thread only (`loop.execute` from that thread is how a continuation is posted).
final class AdminConnection: TimerNode, EventHandler, @unchecked Sendable {
    static let requestsPerTurn = 32
    static let maxPendingOutput = 1 << 20
    /// Admin endpoints take no body; a small one (a `curl -d ''`) is read and dropped, a larger one is refused.
    static let maxBody: Int64 = 64 * 1024
    static let lingerMs: Int64 = 1000

    unowned let server: AdminServer
    let fd: Int32
    var registration = Registration.none
    private var input: [UInt8] = []
    private var parser = HTTPRequestParser(maxHeaderSize: 16384)
    private var head = HTTPRequestHead()
    /// Body bytes of the current request still to be read and dropped.
    private var bodyLeft: Int64 = 0
    private var out: [UInt8] = []
    private var outIndex = 0
    /// No more requests are read: once `out` is flushed the connection closes.
    private var closeAfterFlush = false
    private var lingering = false
    private var peerClosed = false
    private var continuationPosted = false
    private var idleDeadline: Int64 = 0
    private(set) var done = false

    init(server: AdminServer, fd: Int32) {
        self.server = server
        self.fd = fd
        super.init()
    }

    func start() {
        armIdleTimer()
        progress()
    }

    func handleEvent(_ events: UInt32) {
        progress()
    }

    override func timerFired(now: Int64) {
        guard !done else { return }
        if lingering || now >= idleDeadline {
            close()
        } else {
            server.loop.timers.schedule(self, at: idleDeadline)
        }
    }

    private func armIdleTimer() {
        idleDeadline = server.loop.now + server.idleTimeoutMs
        server.loop.timers.schedule(self, at: idleDeadline)
    }

    // MARK: the pump

    /// Flushes, then reads and answers what it can; called on every event, on a posted continuation and at start.
    private func progress() {
        guard !done else { return }
        flush()
        if done { return }
        if lingering {
            drainAndMaybeClose()
            return
        }
        var answered = 0
        pump: while !closeAfterFlush && out.count - outIndex < Self.maxPendingOutput {
            if answered >= Self.requestsPerTurn {
                postContinuation()
                break
            }
            if bodyLeft > 0 {
                let n = Int(min(bodyLeft, Int64(input.count)))
                input.removeFirst(n)
                bodyLeft -= Int64(n)
                if bodyLeft > 0 {
                    if readMore() { continue }
                    if peerClosed { closeAfterFlush = true }
                    break
                }
                finishRequest()
                answered += 1
                continue
            }
            switch input.withUnsafeBytes({ parser.parse($0, into: &head) }) {
            case .needMore:
                if readMore() { continue }
                if peerClosed { closeAfterFlush = true }
                break pump
            case .error(let e):
                answer(.text(e.status, "\(e)\n"), keepAlive: false)
                answered += 1
                continue
            case .complete:
                break
            }
            // The head's ranges point into `input`: decode before dropping its bytes.
            pending = input.withUnsafeBytes { b in
                let authorization = head.headers.first {
                    ASCIIBytes.equalsCaseInsensitive(b, $0.name, "authorization")
                }.map { String(decoding: b[$0.value], as: UTF8.self) }
                return AdminRequest(method: head.method, path: String(decoding: b[head.path], as: UTF8.self),
                                    query: AdminQuery(head.query.map { Array(b[$0]) } ?? []), authorization: authorization)
            }
            input.removeFirst(head.headLength)
            if head.isChunked {
                pending = nil
                answer(.error(411, "request bodies on the admin port need a Content-Length (at most \(Self.maxBody) bytes)"), keepAlive: false)
                answered += 1
                continue
            }
            if let n = head.contentLength, n > Self.maxBody {
                pending = nil
                answer(.error(413, "the admin port takes request bodies of at most \(Self.maxBody) bytes"), keepAlive: false)
                answered += 1
                continue
            }
            bodyLeft = head.contentLength ?? 0
            if bodyLeft > Int64(input.count) && head.expectContinue {
                out.append(contentsOf: "HTTP/1.1 100 Continue\r\n\r\n".utf8)
            }
            if bodyLeft > 0 { continue }
            finishRequest()
            answered += 1
        }
        flush()
        if !done && closeAfterFlush && outIndex == out.count { startLingering() }
    }

    /// The current request is complete (its body, if any, read and dropped): answer it.
    private func finishRequest() {
        guard let r = pending else { return }
        pending = nil
        answer(server.respond(r), keepAlive: head.keepAlive)
        armIdleTimer()
    }

    /// The current request, decoded from its head.
    private var pending: AdminRequest?

    /// Reads once (up to 16 KiB); false when nothing came (would block, end of input or an error).
    private func readMore() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 16384)
        let r = chunk.withUnsafeMutableBytes { p in try? Sys.read(fd, p.baseAddress!, p.count) }
        switch r {
        case nil:
            peerClosed = true
            return false
        case .wouldBlock?:
            return false
        case .done(0)?:
            peerClosed = true
            return false
        case .done(let n)?:
            input.append(contentsOf: chunk[0..<n])
            return true
        }
    }

    private func postContinuation() {
        guard !continuationPosted else { return }
        continuationPosted = true
        server.loop.execute { [self] in
            continuationPosted = false
            progress()
        }
    }

    private func answer(_ r: AdminResponse, keepAlive: Bool) {
        let keep = keepAlive && !peerClosed
        var h = "HTTP/1.1 \(r.status) \(HTTPStatus.reasonPhrase(r.status))\r\nContent-Type: \(r.contentType)\r\nContent-Length: \(r.body.count)\r\nCache-Control: no-store\r\n"
        for f in r.headers { h += "\(f.name): \(f.value)\r\n" }
        h += keep ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n"
        if outIndex == out.count {
            out.removeAll(keepingCapacity: true)
            outIndex = 0
        }
        out.append(contentsOf: h.utf8)
        if head.method != .head { out.append(contentsOf: r.body) }
        if !keep { closeAfterFlush = true }
        parser.reset()
        head.reset()
    }

    private func flush() {
        while outIndex < out.count {
            let r = out.withUnsafeBytes { p in try? Sys.write(fd, p.baseAddress! + outIndex, p.count - outIndex) }
            guard let r else { close(); return }
            switch r {
            case .wouldBlock: return
            case .done(let n): outIndex += n
            }
        }
    }

    // MARK: closing

    private func startLingering() {
        lingering = true
        Sys.shutdown(fd, .write)
        server.loop.timers.schedule(self, at: server.loop.now + Self.lingerMs)
        drainAndMaybeClose()
    }

    /// Reads and drops input until the client closes (then closes) or would block (then waits for it or the timer).
    private func drainAndMaybeClose() {
        if peerClosed { close(); return }
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let r = chunk.withUnsafeMutableBytes { p in try? Sys.read(fd, p.baseAddress!, p.count) }
            switch r {
            case .wouldBlock?: return
            case .done(let n)? where n > 0: continue
            default:
                close()
                return
            }
        }
    }

    private func close() {
        guard !done else { return }
        done = true
        server.loop.timers.cancel(self)
        server.loop.deregister(fd: fd, registration: registration)
        Sys.close(fd)
        server.openConnections -= 1
    }
}
