// Driving an exchange once its backend connection is up: the request relay and the response relay take turns until
// the response is complete (the exchange ends), a 101 turns the connection into a tunnel, or something fails.
import HuddleHTTP
import HuddleIO
import HuddleSys

enum IOStep {
    case progress
    case blocked
    /// The exchange ended (failed, answered or closed); the caller must stop.
    case ended
}

extension ClientConnection {
    /// Moves bytes both ways; returns true when the exchange ended or changed phase.
    func proxyStep() -> Bool {
        guard let x = exchange, let c = x.upstream.connection else { return false }
        x.response.turnBudget = Self.gzipTurnBudget
        var progressed = true
        while progressed && phase == .proxying {
            progressed = false
            // Request: head then body, client -> backend.
            if !x.request.sent {
                if x.request.ready == 0 && !x.request.done && (inBuf?.readableCount ?? 0) > 0 {
                    if !classifyRequestBody(x) { return true }
                }
                // send_proxy_protocol: a new connection's header goes before the request.
                if c.prefaceLeft > 0 && c.canWrite {
                    do {
                        if case .wouldBlock = try c.writePreface() { c.canWrite = false } else { progressed = true }
                    } catch {
                        upstreamFailed(.reset(error))
                        return true
                    }
                }
                if c.canWrite && x.request.hasPendingOutput && c.prefaceLeft == 0 {
                    do {
                        if case .wouldBlock = try x.request.write(to: c.stream, from: &inBuf) {
                            c.canWrite = false
                        } else {
                            progressed = true
                        }
                    } catch {
                        upstreamFailed(.reset(error))
                        return true
                    }
                }
                if !x.request.hasPendingOutput {
                    if x.request.done {
                        x.request.sent = true
                        lastActivity = loop.now
                        progressed = true
                    } else if (inBuf?.readableCount ?? 0) == 0 && canRead {
                        switch readRequestBody(x) {
                        case .progress: progressed = true
                        case .blocked: break
                        case .ended: return true
                        }
                    }
                }
            }
            // Response: backend -> client (compressed: ClientConnection+Gzip.swift).
            if x.response.gzip != nil {
                switch gzipResponseStep(x, c) {
                case .progress: progressed = true
                case .blocked: break
                case .ended: return true
                }
                if phase != .proxying { return true }
                if x.response.turnBudget <= 0 && !x.response.isComplete {
                    // Compressing is slow next to copying: after a slice of it, the other connections get the thread.
                    loop.runNextTurn(self)
                    armTimer()
                    return false
                }
            } else if !x.response.bodyDone || x.response.hasPendingOutput {
                if x.response.hasPendingOutput && canWrite {
                    do {
                        if case .wouldBlock = try x.response.write(to: stream) {
                            canWrite = false
                        } else {
                            lastActivity = loop.now
                            progressed = true
                        }
                    } catch {
                        log.debug("client \(clientText): write failed: \(error)")
                        close()
                        return true
                    }
                }
                if x.response.headDone && x.response.bodyReady == 0 && !x.response.bodyDone && x.response.inputLeft > 0 {
                    if let e = x.response.classifyBody() {
                        responseBodyMalformed(x, e)
                        return true
                    }
                    progressed = true
                    continue
                }
                if !x.response.hasPendingOutput && !x.response.bodyDone && c.canRead {
                    switch readResponse(x, c) {
                    case .progress: progressed = true
                    case .blocked: break
                    case .ended: return true
                    }
                    if phase != .proxying { return true }
                }
            }
            if x.response.isComplete {
                finishExchange(x)
                return true
            }
        }
        armTimer()
        return phase != .proxying
    }

    /// Classifies newly read client bytes as body; false when that ended the exchange (malformed or too large).
    private func classifyRequestBody(_ x: Exchange<Net>) -> Bool {
        switch x.request.classify(inBuf.unwrapped.readableBytes, maxBodySize: block.config.maxBodySize) {
        case .ok:
            return true
        case .malformed(let e):
            log.info("client \(clientText): bad chunked request body: \(e)")
            refuseRequestBody(x, status: 400, message: "malformed chunked request body")
            return false
        case .tooLarge:
            log.info("client \(clientText): request body exceeds max_body_size \(block.config.maxBodySize)")
            refuseRequestBody(x, status: 413, message: "request body larger than max_body_size")
            return false
        }
    }

    /// A request body Huddle will not forward: answered locally if nothing of the exchange went out yet, else cut.
    private func refuseRequestBody(_ x: Exchange<Net>, status: Int, message: String) {
        if !x.request.sentAny && !x.response.started && !x.request.headStarted {
            answerLocally(status: status, message: message, close: true)
        } else {
            close()
        }
    }

    private func readRequestBody(_ x: Exchange<Net>) -> IOStep {
        if inBuf == nil { inBuf = loop.buffers.acquire() }
        if inBuf.unwrapped.readableCount == 0 { inBuf.unwrapped.clear() }
        let r: IOResult<Int>
        do {
            r = try stream.read(inBuf.unwrapped.writePointer, inBuf.unwrapped.writableCount)
        } catch {
            log.info("client \(clientText): read failed in the middle of a request body: \(error)")
            close()
            return .ended
        }
        switch r {
        case .wouldBlock:
            canRead = false
            return .blocked
        case .done(0):
            log.info("client \(clientText): closed the connection in the middle of a request body")
            close()
            return .ended
        case .done(let n):
            if n < inBuf.unwrapped.writableCount && !sawHangup { canRead = false }
            inBuf.unwrapped.writeIndex += n
            lastActivity = loop.now
            return classifyRequestBody(x) ? .progress : .ended
        }
    }

    func readResponse(_ x: Exchange<Net>, _ c: UpstreamConnection<Net>) -> IOStep {
        if x.response.input == nil { x.response.input = loop.buffers.acquire() }
        if x.response.inputLeft == 0 && x.response.headDone { x.response.input.unwrapped.clear() }
        if x.response.input.unwrapped.writableCount == 0 {
            if x.response.input.unwrapped.readIndex > 0 {
                x.response.input.unwrapped.compact()
            } else {
                upstreamFailed(.badResponse("response head larger than \(x.response.input.unwrapped.capacity) bytes"))
                return .ended
            }
        }
        let r: IOResult<Int>
        do {
            r = try c.stream.read(x.response.input.unwrapped.writePointer, x.response.input.unwrapped.writableCount)
        } catch {
            upstreamFailed(.reset(error))
            return .ended
        }
        switch r {
        case .wouldBlock:
            c.canRead = false
            return .blocked
        case .done(0):
            if x.response.headDone && x.response.framing == .untilClose {
                x.response.bodyDone = true
                // Delimited by the close: so must the client's copy be, unless gzip delimits it with chunks.
                if x.response.gzip == nil { x.response.closeClient = true }
                x.response.upstreamReusable = false
                return .progress
            }
            upstreamFailed(.closedEarly)
            return .ended
        case .done(let n):
            if n < x.response.input.unwrapped.writableCount && !c.sawHangup { c.canRead = false }
            x.response.input.unwrapped.writeIndex += n
            lastActivity = loop.now
            if !x.response.headDone { parseResponseHead(x) }
            return phase == .proxying ? .progress : .ended
        }
    }

    private func parseResponseHead(_ x: Exchange<Net>) {
        while !x.response.headDone, phase == .proxying, x.response.inputLeft > 0 {
            switch x.response.parseHead() {
            case .needMore:
                return
            case .error(let e):
                upstreamFailed(.badResponse("\(e)"))
                return
            case .complete:
                handleResponseHead(x)
            }
        }
    }

    private func handleResponseHead(_ x: Exchange<Net>) {
        let status = x.response.head.status
        if status == 101 {
            guard x.upgrade != .none else {
                upstreamFailed(.badResponse("101 Switching Protocols to a request that asked for no upgrade"))
                return
            }
            x.response.writeHead(status: 101, connection: .none, upgrade: true, pool: loop.buffers, setCookie: stickyCookieLine(x))
            x.response.status = 101
            becomeTunnel(x)
            return
        }
        if status >= 100 && status < 200 {
            // Interim response: relayed (except to HTTP/1.0 clients), then the next head is read.
            if x.clientIsHTTP10 {
                x.response.input.unwrapped.readIndex += x.response.head.headLength
            } else {
                x.response.writeHead(status: status, connection: .none, upgrade: false, pool: loop.buffers)
            }
            x.response.parser.reset()
            x.response.head.reset()
            return
        }
        let framing = x.response.head.bodyFraming(requestMethod: x.method)
        // Cached routes: the same steps, plus storing the response and X-Cache (ClientConnection+Cache.swift).
        if x.cache.route != nil {
            cacheResponseHead(x, status: status, framing: framing)
            return
        }
        // gzip server blocks only: decided once, here; the plain path never looks at it again.
        let gzip = x.gzip.flatMap { gzipHeadEdit(x, $0, status: status, framing: framing) }
        let plan = ResponsePlan.make(status: status, framing: framing,
                                     serverKeepAlive: x.response.head.keepAlive, clientKeepAlive: x.clientKeepAlive,
                                     clientIsHTTP10: x.clientIsHTTP10, shuttingDown: worker.shuttingDown,
                                     rechunked: gzip?.compress ?? false)
        x.response.writeHead(status: status, connection: plan.connectionHeader, upgrade: false, pool: loop.buffers, gzip: gzip,
                             setCookie: stickyCookieLine(x))
        x.response.status = status
        x.response.startBody(plan)
        if let s = x.upstream.server {
            s.recordLatency(micros: Int((Sys.monotonicNs() &- x.upstreamStartNs) / 1000))
        }
        if x.response.gzip != nil {
            gzipTakeLargeInput(x)
            if !x.response.bodyDone && x.response.inputLeft > 0 { x.response.classifyCompressedBody() }
        } else if !x.response.bodyDone && x.response.inputLeft > 0, let e = x.response.classifyBody() {
            responseBodyMalformed(x, e)
        }
    }

    /// A sticky upstream's Set-Cookie line for the server that answered, unless the request's cookie named it already;
    /// nil for every other upstream.
    @inline(__always)
    func stickyCookieLine(_ x: Exchange<Net>) -> [UInt8]? {
        guard let plan = x.plan, let sticky = plan.route.upstream.sticky else { return nil }
        let i = x.upstream.serverIndex
        return i >= 0 && i != plan.stickyServer ? sticky.setCookieLine(server: i) : nil
    }

    func responseBodyMalformed(_ x: Exchange<Net>, _ e: HTTPParseError) {
        log.error("server \(x.upstream.server?.addressText ?? "-"): bad chunked response body: \(e); closing")
        upstreamFailed(.badResponse("\(e)"))
    }

    /// The response is complete: the backend connection goes back to the pool if it can carry another exchange, the
    /// server counts the request as served, and the client connection goes on or closes.
    private func finishExchange(_ x: Exchange<Net>) {
        if x.response.fill != nil { cacheCommit(x) }
        if let s = x.upstream.server {
            // Passive health: a 5xx counts as the server failing only where the upstream says so (on_5xx=on).
            if x.response.status >= 500, x.plan?.route.upstream.config.passiveHealth?.on5xx == true {
                s.health.recordFailure(cause: "answered \(x.response.status)", nowMs: loop.now, nowWallMs: Sys.wallClockMs())
            } else {
                s.health.recordSuccess()
            }
        }
        let reusable = x.response.upstreamReusable && x.request.sent && x.response.inputLeft == 0 && !worker.shuttingDown
        x.upstream.link.take()?.release(reusable: reusable)
        x.upstream.claim.take()?.complete()
        if !x.request.sent || x.response.closeClient || !x.clientKeepAlive || worker.shuttingDown {
            close()
            return
        }
        nextRequest()
    }

    /// A 101: the exchange ends and hands its backend link, group membership and leftover bytes to a tunnel.
    private func becomeTunnel(_ x: Exchange<Net>) {
        x.upstream.server?.health.recordSuccess()
        x.upstream.claim.take()?.complete()
        guard let link = x.upstream.link.take() else { return }
        let t = Tunnel(client: self, link: link, membership: x.upstream.membership.take(),
                       headOut: x.response.output.take(), serverEarly: x.response.input.take(), clientEarly: inBuf.take(),
                       followFrames: x.upgrade == .webSocket)
        endExchange()
        phase = .tunnel
        tunnel = t
        lastActivity = loop.now
        armTimer()
        // Bytes the client sent after its handshake are tunnel data: they go first.
        t.step()
        // Its group was migrated while this member connected: it follows the rest (Close 1012, then it reconnects).
        if phase == .tunnel, !t.membershipIsCurrent { t.beginMigration() }
    }
}
