// A client connection: reads request heads, runs one exchange at a time (keep-alive, pipelining), answers locally when
// it must, and becomes a tunnel after a 101. It owns its socket, its input buffer, the exchange in progress and the
// tunnel, and has one teardown, `close()`, which releases all of them.
import HuddleConfig
import HuddleHTTP
import HuddleIO
import HuddleSys

// SAFETY: on its worker's loop thread only.
//
// Generic over the network so the exchange tests can run it on an in-memory one; production is SocketNetwork. The
// entry points the event loop reaches through protocols and overrides (events, timers) carry @_specialize, without
// which every call would run the generic code and look up type metadata at run time (about 6% of the CPU, measured).
final class ClientConnection<Net: Network>: TimerNode, EventHandler {
    enum Phase {
        /// On a `proxy_protocol` listener, before anything else: reading the PROXY protocol header.
        case proxyHeader
        /// A TLS listener's connection before its handshake completed.
        case handshaking
        /// Keep-alive: waiting for the first byte of the next request.
        case idle
        case readingHead
        /// Waiting for a non-blocking connect to the chosen server.
        case connecting
        /// Request and response in flight.
        case proxying
        /// Writing a locally generated response (or one from the cache), then continuing or closing.
        case sendingLocal
        /// Waiting for an identical request's backend answer (collapsed forwarding, Exchange/ClientConnection+Cache.swift).
        case awaitingCache
        /// Waiting in the upstream's queue for a server below its `max_conns` (Upstream/ClientConnection+Queue.swift).
        case queued
        case tunnel
        case closed
    }

    // SAFETY: a worker outlives every connection it owns (it closes them all before it goes away); unowned(unsafe)
    // skips the strong-retain check that profiling showed on every access.
    unowned(unsafe) let worker: Worker<Net>
    let stream: Net.Stream
    /// The other end of the socket. On a `proxy_protocol` listener that is the load balancer in front of Huddle.
    let socketPeer: SocketAddress?
    /// The client, as everything that names it reads it: the access log, X-Forwarded-For, Forwarded, error logs (and
    /// anything keyed by client IP). The socket's peer, or the source address a PROXY protocol header named.
    private(set) var client: SocketAddress?
    /// What the client connected to, when a PROXY protocol header said; nil: this socket's own local address.
    private(set) var clientDestination: SocketAddress?
    var registration = Registration.none
    /// The socket (closed when dropped) and this connection's place in the worker's count.
    private var owner: StreamOwner?
    private var counted: CountToken?
    /// The client's IP as text, formatted once per connection (X-Forwarded-For, access log).
    private var clientIP: [UInt8] = []
    /// Reads the PROXY protocol header while `phase` is `.proxyHeader` (nil on other listeners).
    var proxyHeaderParser: ProxyProtocolParser?
    /// A backend connection that carried this client's PROXY protocol header (`send_proxy_protocol`), idle between
    /// this connection's requests: only this connection may reuse it, and it closes with it.
    var privateUpstream: UpstreamConnection<Net>?
    var snapshot: RuntimeConfig
    var block: ServerBlockRuntime
    /// Which server block of `snapshot` this connection's listener belongs to.
    var blockIndex: Int
    /// The listener's address (`SocketAddress.description`): a reload may move its server block to another index;
    /// empty for connections handed over by tests, which keep their index.
    let listenKey: String
    /// A reload removed this connection's listener: it finishes its exchange on the config it had, then closes.
    var listenerRetired = false
    var phase: Phase = .idle

    // Edge-triggered readiness of the client socket.
    var canRead = true
    var canWrite = true
    /// The peer's FIN (or an error) has been signalled: reads must continue to EOF, never stop at a short read.
    var sawHangup = false
    /// EPOLLHUP/EPOLLERR seen (the peer is gone both ways, or reset): a request waiting on the cache gives up.
    var peerGone: UInt32 = 0
    private var pumping = false
    private var pumpAgain = false

    /// Client input: the current head, then body bytes, then any pipelined requests.
    var inBuf: IOBuffer?
    /// The exchange in progress (from the first byte of a head to the end of its answer), borrowed from the worker.
    var exchange: Exchange<Net>?
    /// After a 101: the relay in both directions.
    var tunnel: Tunnel<Net>?
    /// Close once the local answer in progress is written.
    var localClose = false

    var lastActivity: Int64 = 0
    var phaseStart: Int64 = 0

    init(worker: Worker<Net>, stream: Net.Stream, peer: SocketAddress?, snapshot: RuntimeConfig, blockIndex: Int, listenKey: String,
         proxyProtocol: Bool = false) {
        self.listenKey = listenKey
        self.worker = worker
        self.stream = stream
        socketPeer = peer
        client = peer
        if proxyProtocol {
            phase = .proxyHeader
            proxyHeaderParser = ProxyProtocolParser()
        }
        self.snapshot = snapshot
        self.blockIndex = blockIndex
        block = snapshot.serverBlocks[blockIndex]
        owner = StreamOwner(stream)
        counted = CountToken(worker.counters, .clientConnections)
        super.init()
        // A TLS connection starts with its handshake, unless a PROXY protocol header comes first (then the handshake
        // follows the header).
        if stream.tls != nil && !proxyProtocol { phase = .handshaking }
    }

    var loop: EventLoop { worker.loop }
    var log: ErrorLog { worker.errorLog }
    var clientText: String { client?.description ?? "-" }
    var clientIPText: [UInt8] {
        if clientIP.isEmpty { clientIP = Array((client?.ipString ?? "unknown").utf8) }
        return clientIP
    }

    /// A PROXY protocol header named the original connection: its source is the client from now on.
    func setClient(_ source: SocketAddress, destination: SocketAddress) {
        client = source
        clientDestination = destination
        clientIP = []
    }

    @_specialize(where Net == SocketNetwork)
    func start() {
        lastActivity = loop.now
        phaseStart = loop.now
        armTimer()
        pump()
    }

    // MARK: events

    @_specialize(where Net == SocketNetwork)
    func handleEvent(_ events: UInt32) {
        if events & (Events.readable | Events.readHangup | Events.hangup | Events.error) != 0 { canRead = true }
        if events & (Events.readHangup | Events.hangup | Events.error) != 0 { sawHangup = true }
        if events & (Events.writable | Events.error | Events.hangup) != 0 { canWrite = true }
        peerGone |= events & (Events.hangup | Events.error)
        pump()
    }

    /// Readiness of the backend connection this connection's exchange or tunnel holds.
    @_specialize(where Net == SocketNetwork)
    func upstreamEvent(_ c: UpstreamConnection<Net>) {
        if phase == .connecting {
            guard let x = exchange, x.upstream.connection === c else { return }
            guard c.canWrite || c.canRead else { return }
            if !c.tcpConnected {
                let err = worker.network.pendingError(c.stream)
                if err != 0 {
                    upstreamFailed(.connect(Errno(err)))
                    pump()
                    return
                }
                c.tcpConnected = true
            }
            // A PROXY protocol header goes out first, on the raw connection, before any TLS handshake.
            if c.prefaceLeft > 0 && c.stream.tls != nil {
                do {
                    if case .wouldBlock = try c.writePreface() {
                        c.canWrite = false
                        return
                    }
                } catch {
                    upstreamFailed(.reset(error))
                    pump()
                    return
                }
                if c.prefaceLeft > 0 { return }
            }
            if let t = c.stream.tls {
                switch t.handshake() {
                case .done:
                    break
                case .waiting:
                    return
                case .failed(let why):
                    upstreamFailed(.tlsHandshake(why))
                    pump()
                    return
                }
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
            case .proxyHeader:
                if !readProxyHeader() { return }
            case .handshaking:
                if !driveHandshake() { return }
            case .idle, .readingHead:
                if !readHead() { return }
            case .connecting:
                return
            case .proxying:
                if !proxyStep() { return }
            case .sendingLocal:
                if !flushLocal() { return }
            case .awaitingCache:
                // The answer comes from cacheWake (or the collapse timeout); a client that is gone ends the wait.
                if peerGone != 0 { close() }
                return
            case .queued:
                // A slot (served at a turn's end) or queue_timeout ends the wait; a client that is gone leaves the queue.
                if peerGone != 0 {
                    log.debug("client \(clientText): gone while queued for upstream \(exchange?.plan?.route.upstream.name ?? "-"); leaving the queue")
                    close()
                }
                return
            case .tunnel:
                tunnel?.step()
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
        case .proxyHeader: return phaseStart + b.headerTimeout
        case .handshaking: return phaseStart + (worker.shuttingDown ? 0 : b.tlsHandshakeTimeout)
        case .idle: return lastActivity + (worker.shuttingDown ? 0 : b.idleTimeout)
        case .readingHead: return phaseStart + b.headerTimeout
        case .connecting: return phaseStart + (exchange?.plan?.route.upstream.config.connectTimeout ?? 2000)
        case .proxying:
            let rt = exchange?.plan?.route.upstream.config.responseTimeout ?? 60_000
            return lastActivity + ((exchange?.response.headDone ?? false) ? max(rt, b.idleTimeout) : rt)
        case .sendingLocal: return lastActivity + b.idleTimeout
        case .awaitingCache: return phaseStart + (exchange?.cache.route?.config.collapseTimeout ?? 0)
        case .queued: return phaseStart + (exchange?.plan?.route.upstream.config.effectiveQueueTimeout ?? 0)
        case .tunnel: return lastActivity + b.tunnelIdleTimeout
        case .closed: return Int64.max
        }
    }

    func armTimer() {
        let d = currentDeadline()
        if d == Int64.max { return }
        if !isArmed || deadline > d { loop.timers.schedule(self, at: d) }
    }

    @_specialize(where Net == SocketNetwork)
    override func timerFired(now: Int64) {
        let d = currentDeadline()
        if d == Int64.max { return }
        if now < d {
            loop.timers.schedule(self, at: d)
            return
        }
        switch phase {
        case .proxyHeader:
            // No HTTP answer: what was sent may not be HTTP, and nothing was answered to its sender yet.
            log.warn("client \(socketPeer?.description ?? "-"): no complete PROXY protocol header within header_timeout (\(block.config.headerTimeout)ms, \(inBuf?.readableCount ?? 0) bytes received); closing")
            close()
        case .handshaking:
            log.info("client \(clientText): TLS handshake not completed within tls_handshake_timeout (\(block.config.tlsHandshakeTimeout)ms); closing")
            close()
        case .idle:
            close()
        case .readingHead:
            log.info("client \(clientText): header_timeout (\(block.config.headerTimeout)ms) reached with \(inBuf?.readableCount ?? 0) bytes of request head; answering 408 and closing")
            answerLocally(status: 408, message: "request head not received in time", close: true)
        case .connecting:
            upstreamFailed(.connectTimeout)
        case .proxying:
            upstreamFailed(.responseTimeout)
        case .sendingLocal:
            close()
        case .awaitingCache:
            cacheWaitTimedOut()
        case .queued:
            queueTimedOut()
        case .tunnel:
            log.debug("tunnel \(clientText) <-> \(tunnel?.serverText ?? "-") idle for \(block.config.tunnelIdleTimeout)ms; closing")
            close()
        case .closed:
            break
        }
        // Whatever the timeout queued (a 408/504, a retry) must be driven now: no socket event will come for it.
        pump()
    }

    /// Advances the TLS handshake; true once it is done (the connection then reads its first request).
    private func driveHandshake() -> Bool {
        guard let t = stream.tls else {
            phase = .idle
            return true
        }
        switch t.handshake() {
        case .done:
            phase = .idle
            lastActivity = loop.now
            armTimer()
            return true
        case .waiting:
            armTimer()
            return false
        case .failed(let why):
            log.info("client \(clientText): TLS handshake failed: \(why)")
            close()
            return false
        }
    }

    // MARK: the end of an exchange, and of the connection

    /// The exchange is over (answered, upgraded, or abandoned): it is logged once, if it has a status, and goes back to
    /// the worker's pool, which releases whatever it still holds (server claim, backend link, group membership, buffers).
    func endExchange() {
        guard let x = exchange else { return }
        exchange = nil
        if x.response.status != 0 {
            writeAccessLog(x)
            if let u = x.plan?.route.upstream {
                u.stats.record(worker: worker.id, status: x.response.status, micros: Int64((Sys.monotonicNs() &- x.startNs) / 1000))
            }
            x.servedBy?.stats.record(worker: worker.id, status: x.response.status, micros: nil)
        }
        worker.exchanges.release(x)
    }

    /// SIGTERM: idle keep-alive connections close now; busy ones close after their exchange.
    func shutdownRequested() {
        exchange?.clientKeepAlive = false
        switch phase {
        case .idle, .handshaking, .proxyHeader: close()
        case .tunnel: tunnel?.beginShutdown()
        default: break
        }
    }

    /// Something went wrong that leaves nothing to answer (shutdown_timeout, a broken client socket).
    func abort(reason: String?) {
        if let r = reason { log.info("client \(clientText): \(r)") }
        close()
    }

    /// The one teardown: everything the connection holds is released here, once.
    func close() {
        guard phase != .closed else { return }
        phase = .closed
        loop.timers.cancel(self)
        tunnel = nil
        endExchange()
        privateUpstream?.close()
        privateUpstream = nil
        worker.network.deregister(stream, registration, on: loop)
        registration = .none
        owner = nil
        inBuf = nil
        counted = nil
        worker.connectionClosed(self)
    }
}
