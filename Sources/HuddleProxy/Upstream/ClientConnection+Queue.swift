// The exchange's side of an upstream's queue (`max_conns`, Upstream/AdmissionQueue.swift): take a server below its
// cap, or wait in this worker's list by priority until one frees (served at the end of a loop turn) or `queue_timeout`
// passes (503 with Retry-After). Only upstreams where some server has `max_conns` come here.
import HuddleConfig
import HuddleHTTP
import HuddleIO

extension ClientConnection: QueueAdmittable {
    /// A request on a capped upstream: a server with room now, or the queue, or (no server could take it even with
    /// room) the usual 502/503.
    func admitOrQueue(_ x: Exchange<Net>, _ plan: ForwardPlan, _ u: UpstreamRuntime) {
        let keyed = u.config.balance == .hash && plan.groupKey != nil
        let local = worker.id < u.queue.workers.count ? u.queue.workers[worker.id] : nil
        // Requests already waiting on this worker go first: a newcomer queues behind them, unless it waits for its own
        // group's server (keyed), where those waiting may wait for another one.
        let others = local.map { !$0.entries.isEmpty } ?? false
        if keyed || !others {
            if tryAdmit(x, plan, u) { return }
        }
        // Queue when a server that could take it is full, or behind those waiting (a slot may have just freed: this
        // turn's service pass hands it out in queue order), as long as some server could take it at all.
        guard let local, u.anyServerFull(excluded: x.upstream.excluded) || (others && u.anyServerAvailable(excluded: x.upstream.excluded)) else {
            answerNoServer(x, u)
            return
        }
        enqueue(x, plan, u, local, keyed: keyed)
    }

    /// Chooses a server with room and claims one of its slots; true when the exchange went on to connect. A claim can
    /// lose to another worker between the choice and the compare-and-swap: then it chooses again, a few times.
    private func tryAdmit(_ x: Exchange<Net>, _ plan: ForwardPlan, _ u: UpstreamRuntime) -> Bool {
        for _ in 0..<3 {
            var choice = choose(x, plan, u, capped: true)
            guard var c = choice.take() else { return false }
            let s = c.server
            if s.maxConns == 0 {
                x.upstream.claim = InFlightClaim(s)
            } else if c.membership != nil {
                // A WebSocket member follows its group's server whatever its load: the upgrade counts, it does not wait.
                x.upstream.claim = InFlightClaim(s, queue: u.queue)
            } else {
                var claim = InFlightClaim(admitting: s, queue: u.queue)
                if claim == nil { continue }
                x.upstream.claim = claim.take()
            }
            proceed(x, plan, u, &c)
            return true
        }
        return false
    }

    private func enqueue(_ x: Exchange<Net>, _ plan: ForwardPlan, _ u: UpstreamRuntime, _ local: WorkerQueue, keyed: Bool) {
        if x.upstream.priority == nil { x.upstream.priority = queuePriority(x, plan) }
        if !local.registered {
            local.registered = true
            let loop = self.loop
            // Weak: the queue outlives a worker in tests (and a snapshot holds the queue, the worker the snapshot).
            let box = WeakBox(worker)
            local.wake.withLock { $0 = (loop, { [box, local] in
                local.posted.store(false, ordering: .relaxed)
                box.value?.scheduleQueueService(local)
            }) }
        }
        x.upstream.queued = QueueTicket(queue: u.queue, worker: worker.id, priority: x.upstream.priority ?? 0, keyed: keyed, target: self)
        phase = .queued
        phaseStart = loop.now
        lastActivity = loop.now
        armTimer()
        // A slot may have freed between the attempt and the counts going up: this turn's end tries again.
        worker.scheduleQueueService(local)
    }

    /// The route's `priority`, or the value of its `priority header` (clamped; 0 when absent or not a whole number).
    /// Read when the request first queues, right after its head was consumed from the input buffer.
    private func queuePriority(_ x: Exchange<Net>, _ plan: ForwardPlan) -> Int {
        switch plan.route.config.priority {
        case .fixed(let n):
            return n
        case .header(let name):
            guard inBuf != nil, inBuf.unwrapped.readIndex >= x.head.headLength else { return 0 }
            let bytes = UnsafeRawBufferPointer(start: inBuf.unwrapped.base + (inBuf.unwrapped.readIndex - x.head.headLength), count: x.head.headLength)
            for h in x.head.headers where equalsIgnoringCase(bytes, h.name, name) {
                return Self.priorityValue(UnsafeRawBufferPointer(rebasing: bytes[h.value]))
            }
            return 0
        }
    }

    /// `-12`, `+3`, `40`: a whole number clamped to `RoutePriority.range`; 0 when not one.
    static func priorityValue(_ v: UnsafeRawBufferPointer) -> Int {
        let range = RoutePriority.range
        var i = 0
        var negative = false
        if i < v.count && (v[i] == UInt8(ascii: "-") || v[i] == UInt8(ascii: "+")) {
            negative = v[i] == UInt8(ascii: "-")
            i += 1
        }
        guard i < v.count else { return 0 }
        var n = 0
        while i < v.count {
            let c = v[i]
            guard c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") else { return 0 }
            n = min(n * 10 + Int(c - UInt8(ascii: "0")), range.upperBound + 1)
            i += 1
        }
        return min(range.upperBound, max(range.lowerBound, negative ? -n : n))
    }

    /// The worker's service pass reached this waiting request: a server with room takes it (it leaves the queue and
    /// connects), else it waits on.
    func admitFromQueue() -> Bool {
        guard phase == .queued, let x = exchange, let plan = x.plan, x.upstream.queued != nil else { return false }
        let u = plan.route.upstream
        // Its place is kept until a slot is claimed: a failed attempt leaves it where it was.
        var t = x.upstream.queued.take()
        phase = .readingHead   // as forward() left it: connect() sets the phase it goes on in
        if tryAdmit(x, plan, u) {
            t = nil
            pump()
            return true
        }
        if phase == .readingHead && exchange === x {
            phase = .queued
            x.upstream.queued = t.take()
            return false
        }
        // Answered meanwhile (tryAdmit does not answer, but a retry inside it could): the ticket goes.
        t = nil
        pump()
        return true
    }

    /// `queue_timeout` passed: 503 with Retry-After, and why in the error log.
    func queueTimedOut() {
        guard let x = exchange, let plan = x.plan, x.upstream.queued != nil else { return }
        let u = plan.route.upstream
        let waited = x.upstream.queued.unwrapped.waitedMs
        x.upstream.queued = nil
        u.queue.timeouts.add(1, ordering: .relaxed)
        let timeout = u.config.effectiveQueueTimeout
        let retryAfter = Int(min(60, max(1, (timeout + 999) / 1000)))
        log.error("upstream \(u.name): request from \(clientText) queued for \(waited) ms (queue_timeout \(timeout) ms), every server of upstream \(u.name) at max_conns; answering 503 with Retry-After: \(retryAfter)")
        phase = .connecting   // no longer queued; the answer below sets the phase it goes on in
        if x.cache.route != nil && cacheBackendFailed(x) { return }
        answerLocally(status: 503, message: "every server of upstream \(u.name) is busy (max_conns); retry in \(retryAfter) s",
                      close: !x.request.done || x.request.sentAny, retryAfter: retryAfter)
    }
}

extension Worker {
    /// Serves `local` at the end of this loop turn (a slot freed, a request just queued, or the once-a-second pass).
    func scheduleQueueService(_ local: WorkerQueue) {
        if !queuesToServe.contains(where: { $0 === local }) { queuesToServe.append(local) }
    }

    /// Lets waiting requests in, in queue order, while servers have room. A request that cannot go yet stops the pass
    /// (those behind it wait for the same servers), unless it waits for its own group's server.
    func serveQueues() {
        var rounds = 0
        while !queuesToServe.isEmpty && rounds < 8 {
            rounds += 1
            let list = queuesToServe
            queuesToServe.removeAll(keepingCapacity: true)
            for local in list {
                // The list may change under the pass (a request admitted here can fail and queue again): walk a copy,
                // skipping entries that left meanwhile.
                for e in local.entries where local.contains(seq: e.seq) {
                    if !e.target.admitFromQueue() && !e.keyed { break }
                }
            }
        }
    }

    /// Once a second: every queue of the current config with waiters here is served (a server back from an ejection
    /// or a raised max_conns frees no slot that would wake it).
    func pollQueues() {
        for u in config.upstreams where id < u.queue.workers.count {
            let local = u.queue.workers[id]
            if !local.entries.isEmpty { scheduleQueueService(local) }
        }
        serveQueues()
    }
}
