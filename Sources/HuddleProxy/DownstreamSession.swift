// A client connection: reads requests, routes and balances them, streams bodies both ways, becomes a tunnel on 101.
import HuddleBalancing
import HuddleConfig
import HuddleHTTP
import HuddleIO
import HuddleSys

// SAFETY: on its worker's loop thread only.
final class DownstreamSession: TimerNode, EventHandler {
    enum Phase {
        /// Keep-alive: waiting for the first byte of the next request.
        case idle
        case readingHead
        /// Waiting for a non-blocking connect to the chosen server.
        case connecting
        /// Request and response in flight.
        case proxying
        /// Writing a locally generated response, then continuing or closing.
        case sendingLocal
        case tunnel
        case closed
    }

    // SAFETY: a worker outlives every connection it owns (it closes them all before it goes away); unowned(unsafe)
    // skips the strong-retain check that profiling showed on every access.
    unowned(unsafe) let worker: Worker
    let fd: Int32
    let peer: SocketAddress?
    var registration = Registration.none
    /// The client's IP as text, formatted once per connection (X-Forwarded-For, access log).
    private var peerIP: [UInt8] = []
    var peerIPText: [UInt8] {
        if peerIP.isEmpty { peerIP = Array((peer?.ipString ?? "unknown").utf8) }
        return peerIP
    }
    var snapshot: RuntimeConfig
    var block: ServerBlockRuntime
    /// Which server block of a snapshot this connection's listener belongs to.
    let blockIndex: Int
    var phase: Phase = .idle

    // Edge-triggered readiness of the client socket.
    var canRead = true
    var canWrite = true
    /// The peer's FIN (or an error) has been signalled: reads must continue to EOF, never stop at a short read.
    var sawHangup = false
    private var pumping = false
    private var pumpAgain = false

    // Client input: the current head, then body bytes, then any pipelined requests.
    var inBuf: IOBuffer?
    /// Parsing state of the exchange in progress, borrowed from the worker's pool (nil while idle or tunnelling).
    var ex: ExchangeState?
    // Views of `ex` that read like fields; `_modify` hands out the storage itself, so parsing in place copies nothing.
    var parser: HTTPRequestParser {
        _read { yield ex!.parser }
        _modify { yield &ex!.parser }
    }
    var head: HTTPRequestHead {
        _read { yield ex!.head }
        _modify { yield &ex!.head }
    }
    var respParser: HTTPResponseParser {
        _read { yield ex!.respParser }
        _modify { yield &ex!.respParser }
    }
    var respHead: HTTPResponseHead {
        _read { yield ex!.respHead }
        _modify { yield &ex!.respHead }
    }
    var reqChunks: ChunkedBodyScanner {
        _read { yield ex!.reqChunks }
        _modify { yield &ex!.reqChunks }
    }
    var respChunks: ChunkedBodyScanner {
        _read { yield ex!.respChunks }
        _modify { yield &ex!.respChunks }
    }

    // Timing
    var lastActivity: Int64 = 0
    var phaseStart: Int64 = 0
    var requestStartNs: UInt64 = 0
    var requestStartWallMs: Int64 = 0
    var upstreamStartNs: UInt64 = 0

    // The current exchange
    var route: RouteRuntime?
    var server: ServerRuntime?
    var up: UpstreamConnection?
    var excludedUIDs: [Int] = []
    var retriesLeft = 0
    var method: HTTPMethod = .get
    var clientKeepAlive = true
    var clientIsHTTP10 = false
    var isUpgrade = false
    /// The upgrade is to WebSocket (frames are followed in the tunnel for a clean 1001 on shutdown).
    var upgradeIsWebSocket = false
    var groupKey: [UInt8]? = nil
    var groupKeyHash: UInt64 = 0
    var groupServer: String? = nil

    /// The forwarded request head (kept until the exchange ends: replay on a stale connection, access log).
    var reqHead: IOBuffer?
    var logRequestLine: Range<Int> = 0..<0
    var logUserAgent: Range<Int> = 0..<0
    var logReferer: Range<Int> = 0..<0
    var logRequestId: Range<Int> = 0..<0
    var reqFraming: BodyFraming = .none
    var reqRemaining: Int64 = 0
    /// Bytes at the front of inBuf's readable region known to be body and not yet sent.
    var reqBodyReady = 0
    var reqBodyDone = true
    var reqBodySentAny = false
    var reqBodyTotal: Int64 = 0
    var requestSent = false

    // Response side
    var upIn: IOBuffer?
    var respOut: IOBuffer?
    var respHeadDone = false
    var respFraming: BodyFraming = .none
    var respRemaining: Int64 = 0
    var respBodyReady = 0
    var respBodyDone = false
    var respStatus = 0
    var respBytesSent: Int64 = 0
    var responseStarted = false   // a byte of this exchange's response reached the client
    var upstreamReusable = false
    var closeAfterResponse = false
    var localClose = false

    // Tunnel state (after 101)
    var tunnel: TunnelState?

    init(worker: Worker, fd: Int32, peer: SocketAddress?, snapshot: RuntimeConfig, blockIndex: Int) {
        self.worker = worker
        self.fd = fd
        self.peer = peer
        self.snapshot = snapshot
        self.blockIndex = blockIndex
        block = snapshot.serverBlocks[blockIndex]
        super.init()
    }

    var loop: EventLoop { worker.loop }
    var log: ErrorLog { worker.errorLog }

    func start() {
        lastActivity = loop.now
        phaseStart = loop.now
        armTimer()
        pump()
    }

    // MARK: events

    func handleEvent(_ events: UInt32) {
        if events & (Events.readable | Events.readHangup | Events.hangup | Events.error) != 0 { canRead = true }
        if events & (Events.readHangup | Events.hangup | Events.error) != 0 { sawHangup = true }
        if events & (Events.writable | Events.error | Events.hangup) != 0 { canWrite = true }
        pump()
    }

    func upstreamEvent(_ c: UpstreamConnection) {
        guard c === up else { return }
        if phase == .connecting {
            guard c.canWrite || c.canRead else { return }
            let err = Sys.socketError(c.fd)
            if err != 0 {
                upstreamFailed(.connect(Errno(err)))
                pump()
                return
            }
            phase = .proxying
            phaseStart = loop.now
        }
        pump()
    }

    /// Drives the state machine until nothing more can be done without new readiness.
    func pump() {
        if pumping {
            pumpAgain = true
            return
        }
        pumping = true
        repeat {
            pumpAgain = false
            step()
        } while pumpAgain && phase != .closed
        pumping = false
    }

    private func step() {
        while true {
            switch phase {
            case .idle, .readingHead:
                if !readHead() { return }
            case .connecting:
                return
            case .proxying:
                if !proxyStep() { return }
            case .sendingLocal:
                if !flushLocal() { return }
            case .tunnel:
                tunnelStep()
                return
            case .closed:
                return
            }
        }
    }

    // MARK: timeouts (lazy: the timer fires at the earliest deadline, which is recomputed from the phase)

    private func currentDeadline() -> Int64 {
        let b = block.config
        switch phase {
        case .idle: return lastActivity + (worker.shuttingDown ? 0 : b.idleTimeout)
        case .readingHead: return phaseStart + b.headerTimeout
        case .connecting: return phaseStart + (route?.upstream.config.connectTimeout ?? 2000)
        case .proxying:
            let rt = route?.upstream.config.responseTimeout ?? 60_000
            return lastActivity + (respHeadDone ? max(rt, b.idleTimeout) : rt)
        case .sendingLocal: return lastActivity + b.idleTimeout
        case .tunnel: return lastActivity + b.tunnelIdleTimeout
        case .closed: return Int64.max
        }
    }

    func armTimer() {
        let d = currentDeadline()
        if d == Int64.max { return }
        if !isArmed || deadline > d { loop.timers.schedule(self, at: d) }
    }

    override func timerFired(now: Int64) {
        let d = currentDeadline()
        if d == Int64.max { return }
        if now < d {
            loop.timers.schedule(self, at: d)
            return
        }
        switch phase {
        case .idle:
            close()
        case .readingHead:
            log.info("client \(peerText): header_timeout (\(block.config.headerTimeout)ms) reached with \(inBuf?.readableCount ?? 0) bytes of request head; answering 408 and closing")
            sendLocal(status: 408, message: "request head not received in time", close: true)
        case .connecting:
            upstreamFailed(.connectTimeout)
        case .proxying:
            upstreamFailed(.responseTimeout)
        case .sendingLocal:
            close()
        case .tunnel:
            log.debug("tunnel \(peerText) <-> \(server?.addressText ?? "-") idle for \(block.config.tunnelIdleTimeout)ms; closing")
            closeTunnel()
        case .closed:
            break
        }
        // Whatever the timeout queued (a 408/504, a retry) must be driven now: no socket event will come for it.
        pump()
    }

    var peerText: String { peer?.description ?? "-" }

    // MARK: reading a request head

    /// Returns true when the phase changed (a request started or a local response was queued).
    private func readHead() -> Bool {
        while true {
            if var b = inBuf, b.readableCount > 0 {
                if ex == nil {
                    // Each request runs on the newest snapshot: a keep-alive client must see a reload's routes and servers.
                    refreshSnapshot()
                    ex = worker.exchanges.acquire(maxHeaderSize: block.config.maxHeaderSize)
                }
                let r = ex!.parser.parse(b.readableBytes, into: &ex!.head)
                switch r {
                case .complete:
                    startRequest()
                    return true
                case .error(let e):
                    log.info("client \(peerText): bad request: \(e) (answering \(e.status))")
                    sendLocal(status: e.status, message: "\(e.reason)", close: true)
                    return true
                case .needMore:
                    if b.writableCount == 0 {
                        if b.readIndex > 0 {
                            b.compact()
                            inBuf = b
                        } else {
                            log.info("client \(peerText): request head larger than max_header_size (\(block.config.maxHeaderSize)); answering 431")
                            sendLocal(status: 431, message: "request header fields too large", close: true)
                            return true
                        }
                    }
                }
            }
            guard canRead else {
                releaseInBufIfEmpty()
                armTimer()
                return false
            }
            if inBuf == nil { inBuf = loop.buffers.acquire(minimumCapacity: block.config.maxHeaderSize) }
            var b = inBuf!
            let r: IOResult<Int>
            do {
                r = try Sys.read(fd, b.writePointer, b.writableCount)
            } catch {
                log.debug("client \(peerText): read failed: \(error)")
                close()
                return false
            }
            switch r {
            case .wouldBlock:
                canRead = false
            case .done(0):
                if b.readableCount > 0 {
                    log.info("client \(peerText): closed the connection in the middle of a request head (\(b.readableCount) bytes)")
                }
                close()
                return false
            case .done(let n):
                // Edge-triggered: a short read means the socket is drained (a later arrival raises a new edge), so the
                // EAGAIN read can be skipped, unless a hang-up was signalled and EOF must still be read.
                if n < b.writableCount && !sawHangup { canRead = false }
                b.writeIndex += n
                inBuf = b
                lastActivity = loop.now
                if phase == .idle {
                    phase = .readingHead
                    markRequestStart()
                    phaseStart = loop.now
                    armTimer()
                }
            }
        }
    }

    private func releaseInBufIfEmpty() {
        if let b = inBuf, b.readableCount == 0 {
            loop.buffers.release(b)
            inBuf = nil
        }
    }

    // MARK: starting an exchange

    /// A request's clock starts with its first byte (as nginx's $request_time does).
    private func markRequestStart() {
        requestStartNs = Sys.monotonicNs()
        requestStartWallMs = Sys.wallClockMs()
        upstreamStartNs = 0
    }

    private func refreshSnapshot() {
        let current = worker.config
        guard current !== snapshot else { return }
        snapshot = current
        if blockIndex < current.serverBlocks.count { block = current.serverBlocks[blockIndex] }
    }

    private func startRequest() {
        isUpgrade = false
        method = head.method
        clientIsHTTP10 = head.versionMinor == 0
        clientKeepAlive = head.keepAlive && !worker.shuttingDown
        let bytes = inBuf!.readableBytes

        guard method != .connect else {
            sendLocalAfterHead(status: 405, message: "CONNECT is not supported", close: true)
            return
        }
        let path = UnsafeRawBufferPointer(rebasing: bytes[head.path])
        guard let r = block.route(path: path) else {
            sendLocalAfterHead(status: 404, message: "no route matches this path", close: head.bodyFraming != .none)
            return
        }
        route = r
        reqFraming = head.bodyFraming
        if block.config.maxBodySize > 0, case .contentLength(let n) = reqFraming, n > block.config.maxBodySize {
            log.info("client \(peerText): Content-Length \(n) exceeds max_body_size \(block.config.maxBodySize); answering 413")
            sendLocalAfterHead(status: 413, message: "request body larger than max_body_size", close: true)
            return
        }
        // Upgrade only for protocols this route allows; otherwise the Upgrade header is dropped as hop-by-hop.
        isUpgrade = false
        upgradeIsWebSocket = false
        if head.connectionHasUpgrade, let u = head.upgrade, reqFraming == .none {
            var allowed = false
            ASCIIBytes.forEachToken(in: u, of: bytes) { tok in
                for p in r.config.allowUpgrades where equalsIgnoringCase(bytes, tok, p) { allowed = true }
            }
            if allowed {
                upgradeIsWebSocket = ASCIIBytes.listContainsToken(bytes, u, "websocket")
                if upgradeIsWebSocket && !WebSocketHandshake.isUpgradeRequest(head, bytes: bytes) {
                    log.info("client \(peerText): malformed WebSocket handshake; answering 400")
                    sendLocalAfterHead(status: 400, message: "malformed WebSocket handshake", close: true)
                    return
                }
                isUpgrade = true
            }
        }
        // Group key: the first configured source present wins.
        groupKey = nil
        groupServer = nil
        if !r.config.groupKeys.isEmpty {
            groupKey = extractGroupKey(r.config.groupKeys, bytes: bytes)
            if groupKey == nil {
                if r.config.groupKeyMissing == .reject {
                    log.info("client \(peerText): no group key for route \(r.config.prefix); answering 400")
                    sendLocalAfterHead(status: 400, message: "this route needs a group key (\(describe(r.config.groupKeys)))", close: reqFraming != .none)
                    return
                }
            } else {
                groupKeyHash = StableHash.hash64(groupKey!)
            }
        }
        buildForwardedHead(bytes: bytes)
        // The head has been copied out; what follows in inBuf is body, then pipelined requests.
        inBuf!.readIndex += head.headLength
        switch reqFraming {
        case .none, .untilClose:
            reqBodyDone = true
            reqRemaining = 0
        case .contentLength(let n):
            reqRemaining = n
            reqBodyDone = n == 0
        case .chunked:
            reqChunks.reset()
            reqBodyDone = false
        }
        reqBodyReady = 0
        reqBodySentAny = false
        reqBodyTotal = 0
        requestSent = false
        excludedUIDs.removeAll(keepingCapacity: true)
        retriesLeft = r.upstream.config.retries
        chooseAndConnect()
    }

    private func describe(_ keys: [GroupKeySource]) -> String {
        keys.map { k -> String in
            switch k {
            case .path(let n): return "path segment \(n)"
            case .header(let h): return "header \(h)"
            case .cookie(let c): return "cookie \(c)"
            case .query(let q): return "query parameter \(q)"
            }
        }.joined(separator: ", ")
    }

    private func extractGroupKey(_ sources: [GroupKeySource], bytes: UnsafeRawBufferPointer) -> [UInt8]? {
        for s in sources {
            switch s {
            case .path(let n):
                if let seg = GroupKeyBytes.pathSegment(n, path: head.path, in: bytes),
                   let k = GroupKeyBytes.percentDecode(bytes[seg], plusAsSpace: false), !k.isEmpty {
                    return k
                }
            case .query(let name):
                if let q = head.query, let v = GroupKeyBytes.queryValue(name: Array(name.utf8), query: q, in: bytes),
                   let k = GroupKeyBytes.percentDecode(bytes[v], plusAsSpace: true), !k.isEmpty {
                    return k
                }
            case .header(let name):
                for h in head.headers where equalsIgnoringCase(bytes, h.name, name) && !h.value.isEmpty {
                    return Array(bytes[h.value])
                }
            case .cookie(let name):
                for h in head.headers where h.kind == .cookie {
                    if let v = GroupKeyBytes.cookieValue(name: Array(name.utf8), cookieHeaderValue: h.value, in: bytes), !v.isEmpty {
                        return Array(bytes[v])
                    }
                }
            }
        }
        return nil
    }

    /// Copies the request head for the backend: hop-by-hop headers dropped, X-Forwarded-* and X-Request-Id set.
    private func buildForwardedHead(bytes: UnsafeRawBufferPointer) {
        var b = reqHead ?? loop.buffers.acquire(minimumCapacity: head.headLength + 1024)
        b.clear()
        let start = b.writeIndex
        b.append(UnsafeRawBufferPointer(rebasing: bytes[head.methodRange]))
        b.append(byte: 32)
        // Origin-form to the backend: an absolute-form target's authority went into Host; an empty path means "/".
        if head.path.isEmpty { b.append(byte: 47) } else { b.append(UnsafeRawBufferPointer(rebasing: bytes[head.path])) }
        if let q = head.query {
            b.append(byte: 63)
            b.append(UnsafeRawBufferPointer(rebasing: bytes[q]))
        }
        b.append(" HTTP/1.1")
        logRequestLine = start..<b.writeIndex
        b.append("\r\n")
        var hostRange: Range<Int>? = nil
        var hasRequestId = false
        var hasXFF = false
        logUserAgent = 0..<0
        logReferer = 0..<0
        let logging = worker.accessLog.enabled
        for h in head.headers {
            switch h.kind {
            case .xForwardedFor:
                hasXFF = true
                continue
            case .xForwardedProto, .xForwardedHost:
                continue
            case .host:
                hostRange = h.value
            case .xRequestId:
                hasRequestId = true
            default:
                break
            }
            if h.isHopByHop {
                if !(isUpgrade && h.kind == .upgrade) { continue }
            }
            b.append(UnsafeRawBufferPointer(rebasing: bytes[h.name]))
            b.append(": ")
            let vs = b.writeIndex
            b.append(UnsafeRawBufferPointer(rebasing: bytes[h.value]))
            if h.kind == .xRequestId { logRequestId = vs..<b.writeIndex }
            if logging && h.kind == .other {
                if ASCIIBytes.equalsCaseInsensitive(bytes, h.name, "user-agent") { logUserAgent = vs..<b.writeIndex }
                else if ASCIIBytes.equalsCaseInsensitive(bytes, h.name, "referer") { logReferer = vs..<b.writeIndex }
            }
            b.append("\r\n")
        }
        if head.isChunked { b.append("Transfer-Encoding: chunked\r\n") }
        if hostRange == nil, let h = head.host {
            hostRange = h
            b.append("Host: ")
            b.append(UnsafeRawBufferPointer(rebasing: bytes[h]))
            b.append("\r\n")
        }
        b.append("X-Forwarded-For: ")
        if hasXFF {
            for h in head.headers where h.kind == .xForwardedFor && !h.value.isEmpty {
                b.append(UnsafeRawBufferPointer(rebasing: bytes[h.value]))
                b.append(", ")
            }
        }
        peerIPText.withUnsafeBytes { _ = b.append($0) }
        b.append("\r\nX-Forwarded-Proto: http\r\n")
        if let h = hostRange {
            b.append("X-Forwarded-Host: ")
            b.append(UnsafeRawBufferPointer(rebasing: bytes[h]))
            b.append("\r\n")
        }
        if !hasRequestId {
            b.append("X-Request-Id: ")
            let s = b.writeIndex
            worker.appendRequestId(into: &b)
            logRequestId = s..<b.writeIndex
            b.append("\r\n")
        }
        if isUpgrade { b.append("Connection: Upgrade\r\n") }
        b.append("\r\n")
        reqHead = b
    }

    // MARK: choosing a server and connecting

    private func isEligible(_ s: ServerRuntime) -> Bool {
        s.isAvailable && !excludedUIDs.contains(s.uid)
    }

    private func chooseServer() -> ServerRuntime? {
        guard let r = route else { return nil }
        let u = r.upstream
        let servers = u.servers
        if u.config.balance == .hash, let key = groupKey {
            if isUpgrade {
                // A tunnel joins its group: the first member places it, later members follow it.
                if let g = groupServer {
                    u.groups.leave(key: key, keyHash: groupKeyHash, server: g, nowMs: loop.now, lingerMs: u.config.groupLinger)
                    groupServer = nil
                }
                let factor = u.config.hashBalanceFactor
                let member = u.groups.join(key: key, keyHash: groupKeyHash, nowMs: loop.now, isUsable: { id in
                    guard let s = u.server(identity: id) else { return false }
                    return self.isEligible(s)
                }, place: {
                    let i: Int?
                    if let f = factor {
                        i = u.hash.place(keyHash: self.groupKeyHash, factor: f, isEligible: { self.isEligible(servers[$0]) },
                                         load: { servers[$0].activeConnections.load(ordering: .relaxed) })
                    } else {
                        i = u.hash.owner(keyHash: self.groupKeyHash, isEligible: { self.isEligible(servers[$0]) })
                    }
                    return i.map { servers[$0].identity }
                })
                guard let m = member, let s = u.server(identity: m.server) else { return nil }
                groupServer = m.server
                return s
            }
            // A plain request with a key follows the live group if there is one, else the hash owner.
            if let g = u.groups.lookup(key: key, keyHash: groupKeyHash, nowMs: loop.now),
               let s = u.server(identity: g.server), isEligible(s) {
                return s
            }
            return u.hash.owner(keyHash: groupKeyHash, isEligible: { self.isEligible(servers[$0]) }).map { servers[$0] }
        }
        switch u.config.balance {
        case .roundRobin:
            guard u.index < worker.roundRobin.count else { return nil }
            return worker.roundRobin[u.index].pick(isEligible: { self.isEligible(servers[$0]) }).map { servers[$0] }
        default:
            return u.p2c.pick(using: &worker.rng, isEligible: { self.isEligible(servers[$0]) },
                              load: { servers[$0].inFlight.load(ordering: .relaxed) }).map { servers[$0] }
        }
    }

    private func chooseAndConnect() {
        guard let s = chooseServer() else {
            let name = route?.upstream.name ?? "-"
            log.error("upstream \(name): no server available for \(peerText) (tried \(excludedUIDs.count)); answering 502")
            failExchange(status: 502, message: "no backend server is available")
            return
        }
        connect(to: s, pooledAllowed: true)
    }

    /// Assigns the exchange to `s`: a pooled keep-alive connection if allowed and available, else a new connect.
    private func connect(to s: ServerRuntime, pooledAllowed: Bool) {
        server = s
        s.inFlight.add(1, ordering: .relaxed)
        upstreamStartNs = Sys.monotonicNs()
        phaseStart = loop.now
        lastActivity = loop.now
        if pooledAllowed, let c = worker.takePooled(s) {
            attach(c)
            phase = .proxying
            armTimer()
            return
        }
        guard let addr = s.address else {
            upstreamFailed(.connect(Errno(113)))   // EHOSTUNREACH: the name did not resolve
            return
        }
        do throws(Errno) {
            let (fd, connected) = try Sockets.connect(to: addr)
            let c = UpstreamConnection(worker: worker, fd: fd, server: s)
            do throws(Errno) {
                c.registration = try loop.register(fd: fd, handler: c)
            } catch {
                Sys.close(fd)
                throw error
            }
            worker.upstreamConnectionCount += 1
            attach(c)
            phase = connected ? .proxying : .connecting
            armTimer()
        } catch {
            upstreamFailed(.connect(error))
        }
    }

    private func attach(_ c: UpstreamConnection) {
        up = c
        c.session = self
        c.server.activeConnections.add(1, ordering: .relaxed)
        respParser.reset()
        respHead.reset()
        respHeadDone = false
        respBodyDone = false
        respBodyReady = 0
        respStatus = 0
        respBytesSent = 0
        responseStarted = false
        upstreamReusable = false
        closeAfterResponse = false
        if var r = reqHead { r.readIndex = 0; reqHead = r }
    }

    private func detachUpstream(reuse: Bool) {
        guard let c = up else { return }
        up = nil
        c.server.activeConnections.subtract(1, ordering: .relaxed)
        if reuse, let u = route?.upstream {
            c.canWrite = true
            worker.returnToPool(c, keepalive: u.config.keepalive, timeoutMs: u.config.keepaliveTimeout)
        } else {
            c.close()
        }
    }

    enum UpstreamFailure: CustomStringConvertible {
        case connect(Errno)
        case connectTimeout
        case responseTimeout
        case reset(Errno)
        case closedEarly
        case badResponse(String)

        var description: String {
            switch self {
            case .connect(let e): return "connect failed: \(e)"
            case .connectTimeout: return "connect_timeout reached"
            case .responseTimeout: return "response_timeout reached"
            case .reset(let e): return "connection error: \(e)"
            case .closedEarly: return "closed the connection before a complete response"
            case .badResponse(let why): return "invalid response: \(why)"
            }
        }
    }

    /// A backend problem: retry where that is safe, else answer 502/504, or cut the client off mid-response.
    func upstreamFailed(_ f: UpstreamFailure) {
        guard let s = server else { return }
        let staleReuse = (up?.reused ?? false) && !respHeadDone && upIn.map({ $0.readableCount == 0 }) ?? true
        detachUpstream(reuse: false)
        s.inFlight.subtract(1, ordering: .relaxed)
        releaseUpIn()
        var isTimeout = false
        switch f {
        case .connectTimeout, .responseTimeout: isTimeout = true
        default: break
        }
        if responseStarted {
            log.error("upstream \(route?.upstream.name ?? "-") server \(s.addressText): \(f) while sending the response to \(peerText); closing the client connection")
            s.failuresTotal.add(1, ordering: .relaxed)
            close()
            return
        }
        // Safe to retry: nothing was sent (connect failed), or a reused keep-alive connection died before any
        // response byte and the request is idempotent and bodiless (we still hold all of it).
        let nothingSent: Bool
        switch f {
        case .connect, .connectTimeout: nothingSent = true
        default: nothingSent = false
        }
        let replayable = !reqBodySentAny && reqFraming == .none && method.isIdempotent
        if case .connect = f { s.failuresTotal.add(1, ordering: .relaxed) }
        if case .connectTimeout = f { s.failuresTotal.add(1, ordering: .relaxed) }
        if staleReuse && replayable && !nothingSent && !isTimeout {
            log.debug("server \(s.addressText): reused connection \(f); replaying on a new connection")
            chooseAndConnectFresh(s)
            return
        }
        if nothingSent && retriesLeft > 0 && !reqBodySentAny {
            retriesLeft -= 1
            excludedUIDs.append(s.uid)
            log.warn("upstream \(route?.upstream.name ?? "-") server \(s.addressText): \(f); retrying on another server")
            chooseAndConnect()
            return
        }
        if !nothingSent { s.failuresTotal.add(1, ordering: .relaxed) }
        let status = isTimeout ? 504 : 502
        log.error("upstream \(route?.upstream.name ?? "-") server \(s.addressText): \(f) for \(methodText) request from \(peerText); answering \(status)")
        failExchange(status: status, message: isTimeout ? "the backend server did not answer in time" : "the backend server could not be reached or failed")
    }

    private var methodText: String {
        guard let r = reqHead else { return "-" }
        let line = UnsafeRawBufferPointer(start: r.base, count: r.writeIndex)
        var end = 0
        while end < line.count && line[end] != 32 { end += 1 }
        return String(decoding: line[0..<end], as: UTF8.self)
    }

    /// Same server, new connection (for a keep-alive connection the server had already closed).
    private func chooseAndConnectFresh(_ s: ServerRuntime) {
        // Drop the server's other pooled connections too: they are likely as stale.
        while let c = worker.takePooled(s) { c.close() }
        connect(to: s, pooledAllowed: false)
    }

    // MARK: proxying

    /// Moves bytes both ways; returns true when the exchange ended (phase changed).
    private func proxyStep() -> Bool {
        guard let c = up else { return false }
        var progressed = true
        while progressed && phase == .proxying {
            progressed = false
            // Request: head then body, client -> backend.
            if !requestSent {
                if reqBodyReady == 0 && !reqBodyDone, let b = inBuf, b.readableCount > 0 {
                    classifyRequestBody()
                    if phase != .proxying { return true }
                }
                let headLeft = reqHead?.readableCount ?? 0
                if c.canWrite && (headLeft > 0 || reqBodyReady > 0) {
                    switch writeRequest(c) {
                    case .progress: progressed = true
                    case .blocked: break
                    case .failed(let e):
                        upstreamFailed(.reset(e))
                        return true
                    }
                }
                if (reqHead?.readableCount ?? 0) == 0 && reqBodyReady == 0 {
                    if reqBodyDone {
                        requestSent = true
                        lastActivity = loop.now
                        progressed = true
                    } else if (inBuf?.readableCount ?? 0) == 0 && canRead {
                        switch readRequestBody() {
                        case .progress: progressed = true
                        case .blocked: break
                        case .failed:
                            return true
                        }
                    }
                }
            }
            // Response: backend -> client.
            if !respBodyDone || respBodyReady > 0 || (respOut?.readableCount ?? 0) > 0 {
                let pendingOut = (respOut?.readableCount ?? 0) > 0 || respBodyReady > 0
                if pendingOut && canWrite {
                    switch writeResponse() {
                    case .progress: progressed = true
                    case .blocked: break
                    case .failed(let e):
                        log.debug("client \(peerText): write failed: \(e)")
                        abortExchange()
                        return true
                    }
                }
                if phase != .proxying { return true }
                if respHeadDone && respBodyReady == 0 && !respBodyDone, let u = upIn, u.readableCount > 0 {
                    classifyResponseBody()
                    progressed = true
                    continue
                }
                let stillPending = (respOut?.readableCount ?? 0) > 0 || respBodyReady > 0
                if !stillPending && !respBodyDone && c.canRead {
                    switch readResponse(c) {
                    case .progress: progressed = true
                    case .blocked: break
                    case .failed: return true
                    }
                    if phase != .proxying { return true }
                }
            }
            if respBodyDone && respBodyReady == 0 && (respOut?.readableCount ?? 0) == 0 && respHeadDone {
                finishExchange()
                return true
            }
        }
        armTimer()
        return false
    }

    enum IOStep {
        case progress
        case blocked
        case failed(Errno)
    }

    private func writeRequest(_ c: UpstreamConnection) -> IOStep {
        let headLeft = reqHead?.readableCount ?? 0
        let r: IOResult<Int>
        do {
            r = try Sys.writev(c.fd, headLeft > 0 ? UnsafeRawPointer(reqHead!.readPointer) : nil, headLeft,
                               reqBodyReady > 0 ? UnsafeRawPointer(inBuf!.readPointer) : nil, reqBodyReady)
        } catch {
            return .failed(error)
        }
        switch r {
        case .wouldBlock:
            c.canWrite = false
            return .blocked
        case .done(var w):
            if headLeft > 0 {
                let h = min(w, headLeft)
                reqHead!.readIndex += h
                w -= h
            }
            if w > 0 {
                inBuf!.readIndex += w
                reqBodyReady -= w
                reqBodySentAny = true
            }
            return .progress
        }
    }

    /// Marks how many unread bytes in inBuf belong to the request body.
    private func classifyRequestBody() {
        guard let b = inBuf else { return }
        let avail = b.readableCount
        switch reqFraming {
        case .contentLength:
            let take = Int(min(Int64(avail), reqRemaining))
            reqRemaining -= Int64(take)
            reqBodyReady = take
            reqBodyTotal += Int64(take)
            if reqRemaining == 0 { reqBodyDone = true }
        case .chunked:
            switch reqChunks.scan(b.readableBytes) {
            case .consumed(let n):
                reqBodyReady = n
            case .finished(let n):
                reqBodyReady = n
                reqBodyDone = true
            case .error(let e):
                log.info("client \(peerText): bad chunked request body: \(e)")
                if !reqBodySentAny && !responseStarted && (reqHead?.readIndex ?? 0) == 0 {
                    detachUpstream(reuse: false)
                    server?.inFlight.subtract(1, ordering: .relaxed)
                    sendLocal(status: 400, message: "malformed chunked request body", close: true)
                } else {
                    abortExchange()
                }
                return
            }
            reqBodyTotal = reqChunks.dataBytes
        default:
            reqBodyDone = true
        }
        if block.config.maxBodySize > 0 && reqBodyTotal > block.config.maxBodySize {
            log.info("client \(peerText): request body exceeds max_body_size \(block.config.maxBodySize)")
            if !reqBodySentAny && !responseStarted {
                detachUpstream(reuse: false)
                server?.inFlight.subtract(1, ordering: .relaxed)
                sendLocal(status: 413, message: "request body larger than max_body_size", close: true)
            } else {
                abortExchange()
            }
        }
    }

    private func readRequestBody() -> IOStep {
        if inBuf == nil { inBuf = loop.buffers.acquire() }
        var b = inBuf!
        if b.readableCount == 0 { b.clear() }
        let r: IOResult<Int>
        do {
            r = try Sys.read(fd, b.writePointer, b.writableCount)
        } catch {
            log.info("client \(peerText): read failed in the middle of a request body: \(error)")
            abortExchange()
            return .failed(error)
        }
        switch r {
        case .wouldBlock:
            canRead = false
            inBuf = b
            return .blocked
        case .done(0):
            log.info("client \(peerText): closed the connection in the middle of a request body")
            inBuf = b
            abortExchange()
            return .failed(Errno(104))
        case .done(let n):
            if n < b.writableCount && !sawHangup { canRead = false }
            b.writeIndex += n
            inBuf = b
            lastActivity = loop.now
            classifyRequestBody()
            return .progress
        }
    }

    private func readResponse(_ c: UpstreamConnection) -> IOStep {
        if upIn == nil { upIn = loop.buffers.acquire() }
        var b = upIn!
        if b.readableCount == 0 && respHeadDone { b.clear() }
        if b.writableCount == 0 {
            if b.readIndex > 0 { b.compact() } else {
                upIn = b
                upstreamFailed(.badResponse("response head larger than \(b.capacity) bytes"))
                return .failed(Errno(90))
            }
        }
        let r: IOResult<Int>
        do {
            r = try Sys.read(c.fd, b.writePointer, b.writableCount)
        } catch {
            upIn = b
            upstreamFailed(.reset(error))
            return .failed(error)
        }
        switch r {
        case .wouldBlock:
            c.canRead = false
            upIn = b
            return .blocked
        case .done(0):
            upIn = b
            if respHeadDone && respFraming == .untilClose {
                respBodyDone = true
                closeAfterResponse = true
                upstreamReusable = false
                return .progress
            }
            upstreamFailed(.closedEarly)
            return .failed(Errno(104))
        case .done(let n):
            if n < b.writableCount && !c.sawHangup { c.canRead = false }
            b.writeIndex += n
            upIn = b
            lastActivity = loop.now
            if !respHeadDone { parseResponseHead() }
            return .progress
        }
    }

    private func parseResponseHead() {
        while !respHeadDone, phase == .proxying, let b = upIn, b.readableCount > 0 {
            switch respParser.parse(b.readableBytes, into: &respHead) {
            case .needMore:
                return
            case .error(let e):
                upstreamFailed(.badResponse("\(e)"))
                return
            case .complete:
                handleResponseHead()
            }
        }
    }

    private func handleResponseHead() {
        let status = respHead.status
        let bytes = upIn!.readableBytes
        if status == 101 {
            guard isUpgrade else {
                upstreamFailed(.badResponse("101 Switching Protocols to a request that asked for no upgrade"))
                return
            }
            buildResponseHead(bytes: bytes, status: status, connectionHeader: "Upgrade")
            upIn!.readIndex += respHead.headLength
            respStatus = 101
            becomeTunnel()
            return
        }
        if status >= 100 && status < 200 {
            // Interim response: relay (except to HTTP/1.0 clients), then read the next head.
            if !clientIsHTTP10 { buildResponseHead(bytes: bytes, status: status, connectionHeader: nil) }
            upIn!.readIndex += respHead.headLength
            respParser.reset()
            respHead.reset()
            return
        }
        respStatus = status
        respFraming = respHead.bodyFraming(requestMethod: method)
        upstreamReusable = respHead.keepAlive && respFraming != .untilClose
        if respFraming == .untilClose || !clientKeepAlive || worker.shuttingDown { closeAfterResponse = true }
        let connHeader: StaticString? = closeAfterResponse ? "close" : (clientIsHTTP10 ? "keep-alive" : nil)
        buildResponseHead(bytes: bytes, status: status, connectionHeader: connHeader)
        upIn!.readIndex += respHead.headLength
        respHeadDone = true
        if let s = server {
            let micros = Int((Sys.monotonicNs() &- upstreamStartNs) / 1000)
            s.recordLatency(micros: micros)
        }
        switch respFraming {
        case .none:
            respBodyDone = true
        case .contentLength(let n):
            respRemaining = n
            respBodyDone = n == 0
        case .chunked:
            respChunks.reset()
            respBodyDone = false
        case .untilClose:
            respBodyDone = false
        }
        respBodyReady = 0
        if !respBodyDone && upIn!.readableCount > 0 { classifyResponseBody() }
    }

    private func buildResponseHead(bytes: UnsafeRawBufferPointer, status: Int, connectionHeader: StaticString?) {
        var o = respOut ?? loop.buffers.acquire(minimumCapacity: respHead.headLength + 256)
        if o.readableCount == 0 { o.clear() }
        if o.writableCount < respHead.headLength + 256 { o.compact() }
        o.append("HTTP/1.1 ")
        o.append(decimal: Int64(status))
        o.append(byte: 32)
        o.append(HTTPStatus.reasonPhrase(status))
        o.append("\r\n")
        for h in respHead.headers {
            if h.isHopByHop {
                if !(status == 101 && h.kind == .upgrade) { continue }
            }
            o.append(UnsafeRawBufferPointer(rebasing: bytes[h.name]))
            o.append(": ")
            o.append(UnsafeRawBufferPointer(rebasing: bytes[h.value]))
            o.append("\r\n")
        }
        if respHead.isChunked && status >= 200 { o.append("Transfer-Encoding: chunked\r\n") }
        if let c = connectionHeader {
            o.append("Connection: ")
            o.append(c)
            o.append("\r\n")
        }
        o.append("\r\n")
        respOut = o
    }

    private func classifyResponseBody() {
        guard let b = upIn else { return }
        let avail = b.readableCount
        switch respFraming {
        case .contentLength:
            let take = Int(min(Int64(avail), respRemaining))
            respRemaining -= Int64(take)
            respBodyReady = take
            if respRemaining == 0 { respBodyDone = true }
        case .chunked:
            switch respChunks.scan(b.readableBytes) {
            case .consumed(let n):
                respBodyReady = n
            case .finished(let n):
                respBodyReady = n
                respBodyDone = true
            case .error(let e):
                log.error("server \(server?.addressText ?? "-"): bad chunked response body: \(e); closing")
                upstreamReusable = false
                if responseStarted { abortExchange() } else { upstreamFailed(.badResponse("\(e)")) }
                return
            }
        case .untilClose:
            respBodyReady = avail
        case .none:
            respBodyDone = true
        }
        if respBodyDone && (upIn?.readableCount ?? 0) > respBodyReady {
            // Bytes after the response: a misbehaving server. Don't reuse the connection.
            upstreamReusable = false
        }
    }

    private func writeResponse() -> IOStep {
        let headLeft = respOut?.readableCount ?? 0
        let r: IOResult<Int>
        do {
            r = try Sys.writev(fd, headLeft > 0 ? UnsafeRawPointer(respOut!.readPointer) : nil, headLeft,
                               respBodyReady > 0 ? UnsafeRawPointer(upIn!.readPointer) : nil, respBodyReady)
        } catch {
            return .failed(error)
        }
        switch r {
        case .wouldBlock:
            canWrite = false
            return .blocked
        case .done(var w):
            responseStarted = true
            lastActivity = loop.now
            if headLeft > 0 {
                let h = min(w, headLeft)
                respOut!.readIndex += h
                w -= h
            }
            if w > 0 {
                upIn!.readIndex += w
                respBodyReady -= w
                respBytesSent += Int64(w)
            }
            return .progress
        }
    }

    // MARK: ending an exchange

    private func finishExchange() {
        let s = server
        s?.inFlight.subtract(1, ordering: .relaxed)
        s?.requestsTotal.add(1, ordering: .relaxed)
        writeAccessLog(status: respStatus)
        let reusable = upstreamReusable && requestSent && (upIn?.readableCount ?? 0) == 0
        detachUpstream(reuse: reusable && !worker.shuttingDown)
        releaseUpIn()
        releaseRespOut()
        server = nil
        route = nil
        if !requestSent || closeAfterResponse || !clientKeepAlive || worker.shuttingDown {
            close()
            return
        }
        nextRequest()
    }

    private func nextRequest() {
        releaseReqHead()
        releaseExchangeState()
        groupKey = nil
        groupServer = nil
        lastActivity = loop.now
        if let b = inBuf, b.readableCount > 0 {
            // Pipelined request already here: parse it from the front of the buffer.
            var nb = b
            nb.compact()
            inBuf = nb
            phase = .readingHead
            markRequestStart()
            phaseStart = loop.now
        } else {
            releaseInBufIfEmpty()
            phase = .idle
        }
        armTimer()
    }

    /// Gives the parsing state back to the pool; the next request borrows a fresh (reset) one.
    func releaseExchangeState() {
        if let e = ex {
            worker.exchanges.release(e)
            ex = nil
        }
    }

    private func releaseUpIn() {
        if let b = upIn { loop.buffers.release(b); upIn = nil }
    }

    private func releaseRespOut() {
        if let b = respOut { loop.buffers.release(b); respOut = nil }
    }

    private func releaseReqHead() {
        if let b = reqHead { loop.buffers.release(b); reqHead = nil }
    }

    func writeAccessLog(status: Int) {
        guard worker.accessLog.enabled else { return }
        guard let r = reqHead else {
            // Nothing parseable: the line says who, when and what status, with empty request fields.
            logRequestLine = 0..<0
            logReferer = 0..<0
            logUserAgent = 0..<0
            logRequestId = 0..<0
            writeAccessLog(status: status, base: UnsafeRawBufferPointer(start: nil, count: 0))
            return
        }
        writeAccessLog(status: status, base: UnsafeRawBufferPointer(start: r.base, count: r.writeIndex))
    }

    private func writeAccessLog(status: Int, base: UnsafeRawBufferPointer) {
        let line = UnsafeRawBufferPointer(rebasing: base[logRequestLine])
        var sp1 = 0
        while sp1 < line.count && line[sp1] != 32 { sp1 += 1 }
        var sp2 = line.count
        while sp2 > sp1 && line[sp2 - 1] != 32 { sp2 -= 1 }
        let methodBytes = UnsafeRawBufferPointer(rebasing: line[0..<sp1])
        let pathBytes = UnsafeRawBufferPointer(rebasing: line[min(sp1 + 1, line.count)..<max(min(sp1 + 1, line.count), sp2 - 1)])
        let now = Sys.monotonicNs()
        let upstreamMicros = upstreamStartNs > 0 && server != nil ? Int64((now &- upstreamStartNs) / 1000) : 0
        peerIPText.withUnsafeBytes { ip in
            worker.accessLog.write(AccessRecord(
                startWallMs: requestStartWallMs, client: ip, requestLine: line, method: methodBytes, path: pathBytes,
                referer: UnsafeRawBufferPointer(rebasing: base[logReferer]),
                userAgent: UnsafeRawBufferPointer(rebasing: base[logUserAgent]),
                requestId: UnsafeRawBufferPointer(rebasing: base[logRequestId]),
                status: status, bytesSent: respBytesSent, upstream: server?.addressText,
                upstreamMicros: upstreamMicros, totalMicros: Int64((now &- requestStartNs) / 1000)))
        }
    }

    /// Answer a failed exchange locally (502/504/...), keeping the client connection when its request was fully read.
    private func failExchange(status: Int, message: String) {
        if let g = groupServer, let key = groupKey, let u = route?.upstream {
            u.groups.leave(key: key, keyHash: groupKeyHash, server: g, nowMs: loop.now, lingerMs: u.config.groupLinger)
            groupServer = nil
        }
        server = nil
        let mustClose = !reqBodyDone || reqBodySentAny
        sendLocal(status: status, message: message, close: mustClose)
    }

    /// A local answer before any exchange state exists (the head was just parsed).
    private func sendLocalAfterHead(status: Int, message: String, close: Bool) {
        if let b = inBuf, head.headLength <= b.readableCount {
            buildForwardedHead(bytes: b.readableBytes)   // the access log reads request line and id from it
            inBuf!.readIndex += head.headLength
        }
        if case .contentLength(let n) = head.bodyFraming, n > 0 {
            sendLocal(status: status, message: message, close: true)
        } else {
            sendLocal(status: status, message: message, close: close || head.isChunked)
        }
    }

    /// Queues a short text response and switches to sending it.
    func sendLocal(status: Int, message: String, close: Bool) {
        releaseUpIn()
        var o = respOut ?? loop.buffers.acquire()
        o.clear()
        let body = "\(status) \(HTTPStatus.reasonPhrase(status)): \(message)\n"
        o.append("HTTP/1.1 ")
        o.append(decimal: Int64(status))
        o.append(byte: 32)
        o.append(HTTPStatus.reasonPhrase(status))
        o.append("\r\nServer: huddle\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ")
        o.append(decimal: Int64(body.utf8.count))
        let closing = close || !clientKeepAlive || worker.shuttingDown
        if closing { o.append("\r\nConnection: close") }
        if let r = reqHead, !logRequestId.isEmpty {
            o.append("\r\nX-Request-Id: ")
            o.append(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(start: r.base, count: r.writeIndex)[logRequestId]))
        }
        o.append("\r\n\r\n")
        if method != .head || phase == .readingHead { o.append(body) }
        respOut = o
        respStatus = status
        respBytesSent = Int64(body.utf8.count)
        localClose = closing
        writeAccessLog(status: status)
        phase = .sendingLocal
        lastActivity = loop.now
        armTimer()
    }

    /// Returns true when done (phase changed to the next request).
    private func flushLocal() -> Bool {
        while let o = respOut, o.readableCount > 0 {
            guard canWrite else { armTimer(); return false }
            let r: IOResult<Int>
            do {
                r = try Sys.write(fd, o.readPointer, o.readableCount)
            } catch {
                close()
                return false
            }
            switch r {
            case .wouldBlock:
                canWrite = false
                armTimer()
                return false
            case .done(let n):
                respOut!.readIndex += n
            }
        }
        releaseRespOut()
        if localClose {
            // Let the client read the answer before the connection goes: half-close, then close.
            Sys.shutdown(fd, .write)
            close()
            return false
        }
        nextRequest()
        return true
    }

    /// Something broke mid-exchange: drop the backend connection and the client.
    func abortExchange() {
        if let s = server {
            s.inFlight.subtract(1, ordering: .relaxed)
            server = nil
        }
        detachUpstream(reuse: false)
        close()
    }

    func abort(reason: String?) {
        if let r = reason { log.info("client \(peerText): \(r)") }
        if phase == .tunnel { closeTunnel(); return }
        abortExchange()
    }

    /// SIGTERM: idle keep-alive connections close now; busy ones close after their exchange.
    func shutdownRequested() {
        clientKeepAlive = false
        switch phase {
        case .idle: close()
        case .tunnel: tunnelShutdown()
        default: break
        }
    }

    func close() {
        guard phase != .closed else { return }
        if phase == .tunnel { closeTunnel(); return }
        if let s = server {
            s.inFlight.subtract(1, ordering: .relaxed)
            server = nil
        }
        if let g = groupServer, let key = groupKey, let u = route?.upstream {
            u.groups.leave(key: key, keyHash: groupKeyHash, server: g, nowMs: loop.now, lingerMs: u.config.groupLinger)
            groupServer = nil
        }
        detachUpstream(reuse: false)
        phase = .closed
        loop.timers.cancel(self)
        loop.deregister(fd: fd, registration: registration)
        Sys.close(fd)
        if let b = inBuf { loop.buffers.release(b); inBuf = nil }
        releaseUpIn()
        releaseRespOut()
        releaseReqHead()
        releaseExchangeState()
        worker.sessionClosed(self)
    }

    /// Final teardown used by the tunnel code after it closed both sockets itself.
    func finishClosed() {
        phase = .closed
        loop.timers.cancel(self)
        if let b = inBuf { loop.buffers.release(b); inBuf = nil }
        releaseUpIn()
        releaseRespOut()
        releaseReqHead()
        releaseExchangeState()
        worker.sessionClosed(self)
    }
}

/// Case-insensitive comparison of a byte range with a config string (header names, upgrade protocols).
@inline(__always)
func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ s: String) -> Bool {
    var i = range.lowerBound
    for c in s.utf8 {
        guard i < range.upperBound, ASCIIBytes.lowercased(bytes[i]) == ASCIIBytes.lowercased(c) else { return false }
        i += 1
    }
    return i == range.upperBound
}
