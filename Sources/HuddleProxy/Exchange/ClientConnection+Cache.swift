// The cache in the exchange (routes with `cache` only; other routes never come here): a request is answered from the
// store, waits for an identical request's backend answer (collapsed forwarding), or is forwarded; a forwarded GET's
// response is stored as it passes when RFC 9111 allows; a backend failure may be answered by a stale entry
// (stale-if-error). Every answer says where it came from in X-Cache: HIT, MISS or STALE.
import HuddleHTTP
import HuddleIO
import HuddleSys

/// Where an answer from the store came from.
enum CacheAnswer {
    case hit
    case stale
}

extension ClientConnection: CacheWakeable {
    /// The fill this request waited on ended (on this connection's loop thread, through `EventLoop.execute`).
    func cacheWake(_ outcome: CacheFillOutcome) {
        guard phase == .awaitingCache, let x = exchange, x.cache.wait != nil else { return }
        x.cache.wait = nil
        switch outcome {
        case .stored:
            // The leader's response is stored: this request's variant is very likely it.
            if cacheServeStored(x) { break }
            cacheForwardAfterWait(x)
        case .backendFailed:
            if cacheServeStale(x) { break }
            cacheForwardAfterWait(x)
        case .notStored:
            cacheForwardAfterWait(x)
        }
        pump()
    }
}

extension ClientConnection {
    // MARK: the request

    /// A request on a cached route, right after routing. True when it was handled here: answered from the store, or
    /// waiting for an identical request's answer. False: forward it (the exchange's cache state says what becomes of
    /// the answer).
    func cacheBegin(_ x: Exchange<Net>, _ cache: RouteCache) -> Bool {
        let bytes = inBuf.unwrapped.readableBytes
        let facts = CacheRequestFacts.read(x.head, bytes, upgrade: x.upgrade != .none)
        let store = cache.store(worker: worker.id)
        x.cache.route = cache
        x.cache.store = store
        x.cache.facts = facts
        switch facts.kind {
        case .bypass:
            return false
        case .invalidate:
            x.cache.keep(x.head, bytes)
            return false
        case .refresh:
            if x.method == .get {
                x.cache.mayFill = true
                x.cache.keep(x.head, bytes)
            }
            return false
        case .lookup:
            break
        }
        let collapse = x.method == .get && cache.config.collapseTimeout > 0
        let result = CacheKey.withKey(x.head, bytes) { key in
            store.lookup(CacheLookupRequest(key: key, hash: CacheKey.hash(key), head: x.head, bytes: bytes, maxAge: facts.maxAge, minFresh: facts.minFresh),
                         nowMs: loop.now, collapse: collapse, makeWaiter: { CacheWaiter(loop: loop, target: self) })
        }
        switch result {
        case .hit(let e):
            cacheServe(x, CacheRead(e, counters: worker.counters), .hit, consumeHead: true)
            return true
        case .wait(let w, let stale):
            x.cache.wait = CacheWait(w, counters: worker.counters)
            if let stale { x.cache.stale = CacheRead(stale, counters: worker.counters) }
            cache.stats.add(.collapsed, worker: worker.id)
            phase = .awaitingCache
            phaseStart = loop.now
            armTimer()
            return true
        case .lead(let fill, let stale):
            x.cache.lead = CacheLead(store: store, fill: fill, counters: worker.counters)
            if let stale { x.cache.stale = CacheRead(stale, counters: worker.counters) }
        case .miss(let stale):
            if let stale { x.cache.stale = CacheRead(stale, counters: worker.counters) }
        }
        if x.method == .get {
            x.cache.mayFill = true
            x.cache.keep(x.head, bytes)
        }
        return false
    }

    /// After waiting: a fresh stored response for this request, served; false when there is none.
    private func cacheServeStored(_ x: Exchange<Net>) -> Bool {
        guard let store = x.cache.store else { return false }
        let bytes = inBuf.unwrapped.readableBytes
        let facts = x.cache.facts
        let result = CacheKey.withKey(x.head, bytes) { key in
            store.lookup(CacheLookupRequest(key: key, hash: CacheKey.hash(key), head: x.head, bytes: bytes, maxAge: facts.maxAge, minFresh: facts.minFresh),
                         nowMs: loop.now, collapse: false, makeWaiter: { CacheWaiter(loop: loop, target: self) })
        }
        guard case .hit(let e) = result else { return false }
        cacheServe(x, CacheRead(e, counters: worker.counters), .hit, consumeHead: true)
        return true
    }

    /// The wait ended without an answer for this request: it goes to the backend itself, collapsing no more (its answer
    /// may still be stored).
    private func cacheForwardAfterWait(_ x: Exchange<Net>) {
        guard let plan = x.plan else {
            close()
            return
        }
        if x.method == .get {
            x.cache.mayFill = true
            x.cache.keep(x.head, inBuf.unwrapped.readableBytes)
        }
        // Back to where a new request is forwarded from (the head is consumed by `forward`).
        phase = .readingHead
        forward(x, plan)
    }

    /// collapse_timeout passed while waiting: fetch it ourselves.
    func cacheWaitTimedOut() {
        guard let x = exchange, x.cache.wait != nil else { return }
        x.cache.wait = nil
        x.cache.route?.stats.add(.collapseTimeouts, worker: worker.id)
        log.info("client \(clientText): waited collapse_timeout (\(x.cache.route?.config.collapseTimeout ?? 0)ms) for an identical request's answer; fetching it")
        cacheForwardAfterWait(x)
    }

    // MARK: answering from the store

    /// Answers with a stored entry: its head with Age and X-Cache, then its body (none for HEAD or a 304), written by
    /// `flushLocal` straight from the entry, which this exchange keeps alive until the last byte is out.
    /// `consumeHead`: the request head is still in the input buffer (not forwarded).
    func cacheServe(_ x: Exchange<Net>, _ read: consuming CacheRead, _ answer: CacheAnswer, consumeHead: Bool) {
        let e = read.entry
        // Preconditions are evaluated against the stored response (RFC 9110 §13.2.1), while the head is still readable.
        let notModified = answer == .hit && consumeHead && cacheNotModified(x, e)
        if consumeHead {
            if worker.accessLog.enabled { writeForwardedHead(x) }   // the access log reads the request line from it
            inBuf.unwrapped.readIndex += x.head.headLength
        }
        let closing = !x.clientKeepAlive || worker.shuttingDown
        let head = notModified ? e.notModifiedBytes : e.headBytes
        let room = head.count + 96
        if x.response.output == nil {
            x.response.output = loop.buffers.acquire(minimumCapacity: room)
        } else {
            if x.response.outputLeft == 0 { x.response.output.unwrapped.clear() }
            if x.response.output.unwrapped.writableCount < room { x.response.output.unwrapped.compact() }
            if x.response.output.unwrapped.writableCount < room {
                // Interim heads still unsent: they go first, in a buffer with room for this head too.
                var bigger = loop.buffers.acquire(minimumCapacity: x.response.outputLeft + room)
                bigger.append(x.response.output.unwrapped.readableBytes)
                x.response.output = consume bigger
            }
        }
        x.response.output.unwrapped.append(head)
        x.response.output.unwrapped.append("Age: ")
        x.response.output.unwrapped.append(decimal: e.freshness.ageMs(nowMs: loop.now) / 1000)
        x.response.output.unwrapped.append(answer == .hit ? "\r\nX-Cache: HIT\r\n" : "\r\nX-Cache: STALE\r\n")
        if closing {
            x.response.output.unwrapped.append("Connection: close\r\n")
        } else if x.clientIsHTTP10 {
            x.response.output.unwrapped.append("Connection: keep-alive\r\n")
        }
        x.response.output.unwrapped.append("\r\n")
        let bodyLength = x.method == .head || notModified ? 0 : e.bodyLength
        x.response.status = notModified ? 304 : e.status
        x.response.bytesSent = Int64(bodyLength)
        x.response.cachedSent = 0
        x.response.cachedEnd = bodyLength
        x.response.cached = Optional(read)
        if let route = x.cache.route { route.stats.add(answer == .hit ? .hits : .stale, worker: worker.id) }
        localClose = closing
        phase = .sendingLocal
        lastActivity = loop.now
        armTimer()
    }

    /// If-None-Match (else If-Modified-Since, for GET and HEAD) says the client's copy is current: answer 304.
    private func cacheNotModified(_ x: Exchange<Net>, _ e: CacheEntry) -> Bool {
        let facts = x.cache.facts
        if let inm = facts.ifNoneMatch {
            return CacheConditional.noneMatchMatches(inBuf.unwrapped.readableBytes, inm, etag: e.etagBytes)
        }
        if let since = facts.ifModifiedSince, let modified = e.lastModified, e.status == 200 {
            return modified <= since
        }
        return false
    }

    // MARK: backend failures

    /// The backend failed this request (a connect failure, a timeout, no server to take it): tells the waiters, and
    /// answers with a stale entry if one may answer (true). False: the caller answers the failure (X-Cache: MISS).
    func cacheBackendFailed(_ x: Exchange<Net>) -> Bool {
        x.cache.lead.take()?.finish(.backendFailed)
        guard cacheServeStale(x) else {
            x.cache.route?.stats.add(.misses, worker: worker.id)
            return false
        }
        return true
    }

    /// A stale entry this request kept answers, if stale-if-error still allows it now.
    private func cacheServeStale(_ x: Exchange<Net>) -> Bool {
        guard x.cache.stale != nil, x.cache.stale.unwrapped.entry.freshness.isUsableOnError(nowMs: loop.now) else { return false }
        let read = x.cache.stale.take()!
        let consumeHead = phase == .awaitingCache
        x.upstream.reset()
        x.response.resetForAttempt()
        log.info("client \(clientText): the backend failed; answering with a stale response (stale-if-error)")
        cacheServe(x, read, .stale, consumeHead: consumeHead)
        return true
    }

    // MARK: the response

    /// A final response head arrived on a cached route: the plain relay's steps, plus X-Cache, storing the response if
    /// it may be (the body follows into the fill as it passes), invalidating on an unsafe method's success, and a stale
    /// answer instead of a server error where stale-if-error allows.
    func cacheResponseHead(_ x: Exchange<Net>, status: Int, framing: BodyFraming) {
        let isServerFailure = status == 500 || status == 502 || status == 503 || status == 504
        if isServerFailure && x.cache.stale != nil && x.cache.stale.unwrapped.entry.freshness.isUsableOnError(nowMs: loop.now) {
            // The backend answered with an error; a stale response answers instead (its connection goes: the error's
            // body is not read).
            if let s = x.upstream.server, x.plan?.route.upstream.config.passiveHealth?.on5xx == true {
                s.health.recordFailure(cause: "answered \(status)", nowMs: loop.now, nowWallMs: Sys.wallClockMs())
            }
            x.upstream.claim.take()?.complete()
            x.cache.lead.take()?.finish(.backendFailed)
            _ = cacheServeStale(x)
            return
        }
        var fill: CacheFill? = nil
        if x.cache.mayFill {
            fill = cacheMakeFill(x, status: status, framing: framing)
            if fill == nil { x.cache.lead.take()?.finish(isServerFailure ? .backendFailed : .notStored) }
        } else if x.cache.facts.kind == .invalidate && status >= 200 && status < 400, let route = x.cache.route {
            // RFC 9111 §4.4: a non-error answer to an unsafe method invalidates the stored responses of its URL.
            _ = route.purge(key: x.cache.key)
        }
        let plan = ResponsePlan.make(status: status, framing: framing,
                                     serverKeepAlive: x.response.head.keepAlive, clientKeepAlive: x.clientKeepAlive,
                                     clientIsHTTP10: x.clientIsHTTP10, shuttingDown: worker.shuttingDown)
        x.response.writeHead(status: status, connection: plan.connectionHeader, upgrade: false, pool: loop.buffers,
                             setCookie: stickyCookieLine(x))
        x.response.insertField("X-Cache: MISS\r\n")
        x.response.status = status
        x.response.fill = fill
        x.response.startBody(plan)
        x.cache.route?.stats.add(.misses, worker: worker.id)
        if let s = x.upstream.server {
            s.recordLatency(micros: Int((Sys.monotonicNs() &- x.upstreamStartNs) / 1000))
        }
        if !x.response.bodyDone && x.response.inputLeft > 0, let e = x.response.classifyBody() {
            responseBodyMalformed(x, e)
        }
    }

    /// The fill for a response that may be stored (its head at the front of the input buffer), holding the leadership of
    /// the fill if this request leads one; nil when it may not be stored.
    private func cacheMakeFill(_ x: Exchange<Net>, status: Int, framing: BodyFraming) -> CacheFill? {
        guard let route = x.cache.route, let store = x.cache.store else { return nil }
        let bytes = x.response.input.unwrapped.readableBytes
        let head = x.response.head
        let nowSeconds = Sys.wallClockMs() / 1000
        let facts = CacheResponseFacts.read(head, bytes, nowSeconds: nowSeconds)
        let decision = CachePolicy.decide(status: status, facts: facts, config: route.config, nowSeconds: nowSeconds)
        guard case .store(let lifetimeMs, let staleMs) = decision else {
            if case .dontStore(let why) = decision { log.debug("cache \(route.route): not storing \(String(decoding: x.cache.key, as: UTF8.self)): \(why)") }
            return nil
        }
        // At most max_entry, and never more than this store can hold beside the entry's keys and fixed overhead: an
        // entry larger than its store (a per-worker store holds size / workers) would evict everything, itself too.
        let maxEntry = min(Int(route.config.effectiveMaxEntry),
                           store.capacity - CacheEntry.overhead - 2 * x.cache.key.count)
        if case .contentLength(let n) = framing, n > Int64(maxEntry) {
            log.debug("cache \(route.route): not storing \(String(decoding: x.cache.key, as: UTF8.self)): \(n) bytes is over max_entry")
            return nil
        }
        // The stored heads: the fields as the client gets them (hop-by-hop ones dropped), without the framing, Age and
        // X-Cache, which each answer from the store writes anew; and the 304 head's subset (RFC 9110 §15.4.5).
        var h: [UInt8] = []
        h.reserveCapacity(head.headLength + 64)
        var nm: [UInt8] = Array("HTTP/1.1 304 Not Modified\r\n".utf8)
        h += "HTTP/1.1 \(status) ".utf8
        HTTPStatus.reasonPhrase(status).withUTF8Buffer { h += $0 }
        h += [13, 10]
        var etag: Range<Int>? = nil
        let nominated = ConnectionOptions.nominatesOthers(head.headers, bytes)
        for f in head.headers {
            if f.isHopByHop || f.kind == .contentLength { continue }
            if nominated && f.kind == .other && ConnectionOptions.nominates(f.name, in: head.headers, bytes) { continue }
            var toNotModified = false
            if f.kind == .other {
                @inline(__always) func named(_ s: StaticString) -> Bool { ASCIIBytes.equalsCaseInsensitive(bytes, f.name, s) }
                switch f.name.count {
                case 3 where named("age"): continue
                case 7 where named("x-cache"): continue
                case 4 where named("date") || named("etag") || named("vary"): toNotModified = true
                case 7 where named("expires"): toNotModified = true
                case 13 where named("cache-control"): toNotModified = true
                case 16 where named("content-location"): toNotModified = true
                default: break
                }
            }
            let line = h.count
            h += bytes[f.name]
            h += [0x3A, 0x20]
            if etag == nil && f.name.count == 4 && ASCIIBytes.equalsCaseInsensitive(bytes, f.name, "etag") {
                etag = h.count..<(h.count + f.value.count)
            }
            h += bytes[f.value]
            h += [13, 10]
            if toNotModified { nm += h[line...] }
        }
        let variantKey = facts.varyNames.isEmpty ? [] : x.cache.requestHead.withUnsafeBytes { CacheVary.variantKey(facts.varyNames, x.head, $0) }
        let limit = maxEntry - h.count - nm.count - 32
        guard limit >= 0 else { return nil }
        let sentMs = Int64(x.upstreamStartNs / 1_000_000)
        let freshness = CacheFreshness(responseMs: loop.now,
                                       initialAgeMs: CachePolicy.initialAgeMs(facts: facts, nowSeconds: nowSeconds, requestSentMs: sentMs, responseMs: Int64(Sys.monotonicNs() / 1_000_000)),
                                       lifetimeMs: lifetimeMs, staleIfErrorMs: staleMs)
        var expected: Int64? = nil
        if case .contentLength(let n) = framing { expected = n } else if case .none = framing { expected = 0 }
        return CacheFill(store: store, key: x.cache.key, hash: x.cache.hash, varyNames: facts.varyNames, variantKey: variantKey, status: status,
                         head: h, notModified: nm, etag: etag, lastModified: facts.lastModified, freshness: freshness,
                         expectedLength: expected, limit: limit, chunked: framing == .chunked, lead: x.cache.lead.take(),
                         counters: worker.counters)
    }

    /// The response is complete: store it (and wake the waiters to look it up).
    func cacheCommit(_ x: Exchange<Net>) {
        if !x.response.fill.unwrapped.commit(nowMs: loop.now) {
            log.debug("cache: response for \(String(decoding: x.cache.key, as: UTF8.self)) ended incomplete; not stored")
        }
        x.response.fill = nil
    }
}
