// The backend side of an exchange: choose a server, connect (or take a pooled connection), and when the backend
// fails, carry out what `FailurePolicy` decides: replay, retry elsewhere, answer 502/504, or cut the client.
import HuddleBalancing
import HuddleHTTP
import HuddleIO
import HuddleJSON
import HuddleSys

extension ClientConnection {
    /// Picks a server for the exchange (never one it already failed on) and connects to it, or answers 502/503. On an
    /// upstream with `max_conns` the request may wait in the queue instead (Upstream/ClientConnection+Queue.swift).
    func chooseAndConnect() {
        guard let x = exchange, let plan = x.plan else { return }
        let u = plan.route.upstream
        // A retried upgrade leaves its group first: rejoining may place the group on a working server.
        x.upstream.membership = nil
        // The one branch a request on an upstream without max_conns pays for the queue.
        if u.capped {
            admitOrQueue(x, plan, u)
            return
        }
        var choice = choose(x, plan, u, capped: false)
        guard var c = choice.take() else {
            answerNoServer(x, u)
            return
        }
        x.upstream.claim = InFlightClaim(c.server)
        proceed(x, plan, u, &c)
    }

    /// The balancer's (or the group's) choice for the exchange, on the worker's balancing state.
    func choose(_ x: Exchange<Net>, _ plan: ForwardPlan, _ u: UpstreamRuntime, capped: Bool) -> ServerChoice? {
        if u.index < worker.roundRobin.count {
            return ServerChoice.choose(upstream: u, key: plan.groupKey, keyHash: plan.groupKeyHash, upgrade: plan.upgrade != .none,
                                       excluded: x.upstream.excluded, nowMs: loop.now, rng: &worker.rng,
                                       roundRobin: &worker.roundRobin[u.index], sticky: plan.stickyServer, capped: capped)
        }
        // The snapshot changed under a retry: its upstream has no round-robin state on this worker any more.
        var rr = SmoothRoundRobin(weights: u.servers.map(\.weight))
        return ServerChoice.choose(upstream: u, key: plan.groupKey, keyHash: plan.groupKeyHash, upgrade: plan.upgrade != .none,
                                   excluded: x.upstream.excluded, nowMs: loop.now, rng: &worker.rng, roundRobin: &rr,
                                   sticky: plan.stickyServer, capped: capped)
    }

    /// No server can take the exchange: 502/504 after a failed attempt, else 503 with Retry-After.
    func answerNoServer(_ x: Exchange<Net>, _ u: UpstreamRuntime) {
        if let f = x.upstream.lastFailure {
            // A retry found no other server: the client learns what went wrong with the one that was tried.
            let status = f.isTimeout ? 504 : 502
            log.error("upstream \(u.name): no other server to retry on for \(clientText) after \(f); answering \(status)")
            failExchange(status: status, message: Self.failureMessage(status))
        } else {
            // Nothing to try: every server is down, ejected, draining or disabled. Say when to come back, and log it
            // at most once a second per upstream (a flood of clients would otherwise flood the log).
            if x.cache.route != nil && cacheBackendFailed(x) { return }
            let retryAfter = u.retryAfterSeconds(nowMs: loop.now)
            if u.shouldLogNoServer(nowMs: loop.now) {
                log.error("upstream \(u.name): no server can take traffic (\(u.stateSummary)); answering 503 with Retry-After: \(retryAfter)")
            }
            answerLocally(status: 503, message: "no server of upstream \(u.name) can take traffic now; retry in \(retryAfter) s",
                          close: !x.request.done || x.request.sentAny, retryAfter: retryAfter)
        }
    }

    /// The exchange holds its claim on the chosen server: keep its group membership, and connect.
    func proceed(_ x: Exchange<Net>, _ plan: ForwardPlan, _ u: UpstreamRuntime, _ c: inout ServerChoice) {
        x.upstream.membership = c.membership.take()
        if let e = c.evicted {
            // rebalance migrate: this member's join moved a live group (it was misplaced, or its server can no longer
            // keep it). Its old members, on any worker, are closed with 1012 and reconnect to the new server.
            worker.migrator.post([e.placement])
            log.info("upstream \(u.name): group \(JSONEscaping.quoted(bytes: plan.groupKey ?? [])) moved from \(e.from) to \(c.server.identity) as a new member joined; closing its other members (1012)")
        }
        x.upstream.serverIndex = c.index
        connect(to: c.server, pooledAllowed: true)
    }

    /// Assigns the exchange, which holds its claim on `s`, to `s`: a pooled keep-alive connection if allowed and
    /// available, else a new connect. With `send_proxy_protocol` the only reusable connection is this client's own (see
    /// `takePrivateUpstream`), and a new one starts with the header. A replay on a new connection keeps the claim.
    private func connect(to s: ServerRuntime, pooledAllowed: Bool) {
        let x = exchange!
        let sendProxy = x.plan?.route.upstream.config.sendProxyProtocol
        x.servedBy = s
        x.upstreamStartNs = Sys.monotonicNs()
        phaseStart = loop.now
        lastActivity = loop.now
        if pooledAllowed, let c = sendProxy == nil ? worker.upstreamPool.take(s) : takePrivateUpstream(s) {
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
            var (stream, connected) = try worker.network.connect(to: addr)
            let tls = x.plan?.route.upstream.tls
            if let tls {
                // TLS to the backend: the handshake follows the TCP connect; both count against connect_timeout.
                guard let secured = worker.network.secure(stream, with: tls, host: s.host, cacheKey: s.addressText) else {
                    _ = StreamOwner(stream)   // closes it
                    upstreamFailed(.tlsHandshake("cannot start a TLS session: \(TLSErrors.drain())"))
                    return
                }
                stream = secured
            }
            let c = UpstreamConnection(worker: worker, stream: stream, server: s)
            if let v = sendProxy {
                c.privateTo = self
                c.preface = proxyProtocolHeader(v)
            }
            do throws(Errno) {
                c.registration = try worker.network.register(stream, handler: c, on: loop)
            } catch {
                c.close()
                throw error
            }
            attach(c)
            if connected && tls == nil {
                phase = .proxying
            } else {
                phase = .connecting
                if connected { upstreamEvent(c) }
            }
            armTimer()
        } catch {
            upstreamFailed(.connect(error))
        }
    }

    private func attach(_ c: UpstreamConnection<Net>) {
        let x = exchange!
        x.upstream.link = UpstreamLink(c, user: self)
        x.response.resetForAttempt()
        x.request.rewind()
    }

    /// A backend problem on the exchange's current attempt.
    func upstreamFailed(_ f: UpstreamFailure) {
        guard let x = exchange, let s = x.upstream.server else { return }
        let ctx = FailureContext(
            responseStarted: x.response.started,
            connectionReused: x.upstream.connection?.reused ?? false,
            responseBytesSeen: x.response.headDone || x.response.inputLeft > 0,
            requestBodySent: x.request.sentAny,
            requestHasBody: x.request.framing.hasBody,
            idempotent: x.method.isIdempotent,
            retriesLeft: x.upstream.retriesLeft)
        let (decision, countsAgainstServer) = FailurePolicy.decide(f, ctx)
        // This attempt's connection is finished, whatever comes next.
        x.upstream.link = nil
        x.response.input = nil
        if countsAgainstServer {
            s.failuresTotal.add(1, ordering: .relaxed)
            s.health.recordFailure(cause: "\(f)", nowMs: loop.now, nowWallMs: Sys.wallClockMs())
        }
        let name = x.plan?.route.upstream.name ?? "-"
        switch decision {
        case .closeClient:
            log.error("upstream \(name) server \(s.addressText): \(f) while sending the response to \(clientText); closing the client connection")
            close()
        case .replayOnNewConnection:
            log.debug("server \(s.addressText): reused connection \(f); replaying on a new connection")
            // The server's other idle connections are likely as stale.
            worker.upstreamPool.discardAll(s)
            connect(to: s, pooledAllowed: false)
        case .retryElsewhere:
            x.upstream.retriesLeft -= 1
            x.upstream.excluded.append(s.uid)
            x.upstream.claim = nil
            x.upstream.lastFailure = f
            log.warn("upstream \(name) server \(s.addressText): \(f) for \(methodText(x)) request from \(clientText); retrying on another server")
            chooseAndConnect()
        case .answer(let status):
            log.error("upstream \(name) server \(s.addressText): \(f) for \(methodText(x)) request from \(clientText); answering \(status)")
            failExchange(status: status, message: Self.failureMessage(status))
        }
    }

    /// Answers a failed exchange locally, keeping the client connection when its request was fully read.
    func failExchange(status: Int, message: String) {
        guard let x = exchange else { return }
        // Cached routes: a stale response may answer instead (stale-if-error).
        if x.cache.route != nil && cacheBackendFailed(x) { return }
        let mustClose = !x.request.done || x.request.sentAny
        answerLocally(status: status, message: message, close: mustClose)
    }

    static func failureMessage(_ status: Int) -> String {
        status == 504 ? "the backend server did not answer in time" : "the backend server could not be reached or failed"
    }

    func methodText(_ x: Exchange<Net>) -> String {
        guard let base = x.request.head?.base else { return "-" }
        let line = UnsafeRawBufferPointer(start: base, count: x.logFields.requestLine.upperBound)
        var end = 0
        while end < line.count && line[end] != 32 { end += 1 }
        return String(decoding: line[0..<end], as: UTF8.self)
    }
}

extension BodyFraming {
    /// Bytes follow the head (an empty Content-Length body is no body).
    var hasBody: Bool {
        switch self {
        case .none: return false
        case .contentLength(let n): return n > 0
        case .chunked, .untilClose: return true
        }
    }
}
