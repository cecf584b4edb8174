// Reading a request head, starting its exchange, and moving on to the next request (keep-alive and pipelining).
import HuddleConfig
import HuddleHTTP
import HuddleIO
import HuddleSys

extension ClientConnection {
    /// Returns true when the phase changed (an exchange started or a local answer was queued).
    func readHead() -> Bool {
        while true {
            if (inBuf?.readableCount ?? 0) > 0 {
                if exchange == nil { beginHead() }
                let x = exchange!
                switch x.parser.parse(inBuf.unwrapped.readableBytes, into: &x.head) {
                case .complete:
                    startExchange(x)
                    return true
                case .error(let e):
                    log.info("client \(clientText): bad request: \(e) (answering \(e.status))")
                    answerLocally(status: e.status, message: "\(e.reason)", close: true)
                    return true
                case .needMore:
                    if inBuf.unwrapped.writableCount == 0 {
                        if inBuf.unwrapped.readIndex > 0 {
                            inBuf.unwrapped.compact()
                        } else {
                            log.info("client \(clientText): request head larger than max_header_size (\(block.config.maxHeaderSize)); answering 431")
                            answerLocally(status: 431, message: "request header fields too large", close: true)
                            return true
                        }
                    }
                }
            }
            guard canRead else {
                if inBuf?.readableCount == 0 { inBuf = nil }
                armTimer()
                return false
            }
            switch readIntoInput(minimumCapacity: block.config.maxHeaderSize) {
            case .drained:
                break
            case .failed(let error):
                log.debug("client \(clientText): read failed: \(error)")
                close()
                return false
            case .closed(let received):
                if received > 0 {
                    log.info("client \(clientText): closed the connection in the middle of a request head (\(received) bytes)")
                }
                close()
                return false
            case .read:
                if phase == .idle { beginHead() }
            }
        }
    }

    /// What one read into the client's input buffer came to.
    enum InputRead {
        /// Nothing more until the next edge (`canRead` is now false).
        case drained
        /// The client closed; `received` bytes were already buffered.
        case closed(received: Int)
        case failed(Errno)
        /// Bytes were appended to `inBuf`.
        case read
    }

    /// Reads what the socket holds into `inBuf` (taken from the pool, at least `minimumCapacity`, when there is none).
    /// Edge-triggered: a short read means the socket is drained (a later arrival raises a new edge), so the EAGAIN read
    /// is skipped, unless a hang-up was signalled and EOF must still be read.
    func readIntoInput(minimumCapacity: Int) -> InputRead {
        if inBuf == nil { inBuf = loop.buffers.acquire(minimumCapacity: minimumCapacity) }
        let r: IOResult<Int>
        do {
            r = try stream.read(inBuf.unwrapped.writePointer, inBuf.unwrapped.writableCount)
        } catch {
            return .failed(error)
        }
        switch r {
        case .wouldBlock:
            canRead = false
            return .drained
        case .done(0):
            return .closed(received: inBuf?.readableCount ?? 0)
        case .done(let n):
            if n < inBuf.unwrapped.writableCount && !sawHangup { canRead = false }
            inBuf.unwrapped.writeIndex += n
            lastActivity = loop.now
            return .read
        }
    }

    /// The first bytes of a request are here: its exchange starts, and with it the request's clock and header timer.
    private func beginHead() {
        phase = .readingHead
        phaseStart = loop.now
        if exchange == nil {
            // Each request runs on the newest snapshot: a keep-alive client must see a reload's routes and servers.
            refreshSnapshot()
            let x = worker.exchanges.acquire(maxHeaderSize: block.config.maxHeaderSize)
            x.startNs = Sys.monotonicNs()
            x.startWallMs = Sys.wallClockMs()
            exchange = x
        }
        armTimer()
    }

    private func refreshSnapshot() {
        let current = worker.config
        guard current !== snapshot, !listenerRetired else { return }
        let i = listenKey.isEmpty ? (blockIndex < current.serverBlocks.count ? blockIndex : nil) : current.listenIndex[listenKey]
        guard let i else {
            // The reload removed this listener: finish on the config this connection has, then close.
            listenerRetired = true
            return
        }
        snapshot = current
        blockIndex = i
        block = current.serverBlocks[i]
    }

    private func startExchange(_ x: Exchange<Net>) {
        x.method = x.head.method
        x.clientIsHTTP10 = x.head.versionMinor == 0
        x.clientKeepAlive = x.head.keepAlive && !worker.shuttingDown && !listenerRetired
        let decision = RequestRouter.decide(block: block, head: x.head, bytes: inBuf.unwrapped.readableBytes)
        switch decision {
        case .answer(let a):
            if let why = a.logReason { log.info("client \(clientText): \(why); answering \(a.status)") }
            answerAfterHead(x, a)
        case .forward(let plan):
            if let limiter = plan.route.rateLimit {
                let keyHash = clientIPText.withUnsafeBytes { ip in
                    RateLimitKeys.hash(limiter.config.key, head: x.head, bytes: inBuf.unwrapped.readableBytes, clientIP: ip, groupKey: plan.groupKey)
                }
                let wait = limiter.admit(keyHash: keyHash, nowNs: x.startNs)
                if wait > 0 {
                    limiter.limited.add(1, ordering: .relaxed)
                    answerAfterHead(x, RequestRouter.rateLimited(plan.route, waitMicros: wait))
                    return
                }
            }
            x.plan = plan
            // Cached routes: answered from the cache, or waiting for an identical request, or forwarded below.
            if let cache = plan.route.cache, cacheBegin(x, cache) { return }
            forward(x, plan)
        }
    }

    /// Sends the request to the route's upstream.
    func forward(_ x: Exchange<Net>, _ plan: ForwardPlan) {
        // gzip and the cache do not combine: a cached route's responses go out as the backend sent them.
        if let gz = block.gzip, x.cache.route == nil {
            x.gzip = gz
            x.gzipRequest = GzipRequestFacts.read(x.head, inBuf.unwrapped.readableBytes)
        }
        x.request.start(framing: x.head.bodyFraming)
        writeForwardedHead(x)
        // The head has been copied out; what follows in inBuf is body, then pipelined requests.
        inBuf.unwrapped.readIndex += x.head.headLength
        x.upstream.retriesLeft = plan.route.upstream.config.retries
        chooseAndConnect()
    }

    /// Copies the head for the backend into the exchange's request relay (the access log reads its fields too).
    func writeForwardedHead(_ x: Exchange<Net>) {
        if x.request.head == nil { x.request.head = loop.buffers.acquire(minimumCapacity: x.head.headLength + 1024) }
        x.request.head.unwrapped.clear()
        let w = worker
        let ipv6 = client?.isIPv6 ?? false
        x.logFields = clientIPText.withUnsafeBytes { ip in
            ForwardedHead.write(into: &x.request.head!, head: x.head, bytes: inBuf.unwrapped.readableBytes, upgrade: x.upgrade != .none,
                                clientIP: ip, clientIsIPv6: ipv6, proto: stream.tls == nil ? "http" : "https", logFields: w.accessLog.enabled,
                                fallbackHost: { self.localAuthority }, newRequestId: { w.appendRequestId(into: &$0) })
        }
    }

    /// What the client connected to as an authority (`ip:port`, IPv6 in brackets): the Host of an HTTP/1.0 request
    /// that named none (RFC 9112 §3.3).
    var localAuthority: [UInt8] {
        guard let a = clientLocalAddress else { return Array("localhost".utf8) }
        return Array(a.description.utf8)
    }

    /// What the client connected to: a PROXY protocol header's destination, else this socket's own address (asked of
    /// the kernel only when needed).
    var clientLocalAddress: SocketAddress? {
        if let d = clientDestination { return d }
        return stream.fd >= 0 ? Sys.localAddress(stream.fd) : nil
    }

    /// The exchange is done and the connection stays: the next request may already be buffered (pipelining).
    func nextRequest() {
        endExchange()
        lastActivity = loop.now
        if (inBuf?.readableCount ?? 0) > 0 {
            inBuf.unwrapped.compact()
            beginHead()
        } else {
            inBuf = nil
            phase = .idle
            armTimer()
        }
    }
}
