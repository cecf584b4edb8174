// One worker thread: its event loop, listening sockets, client sessions, backend connection pools and logs.
import HuddleBalancing
import HuddleConfig
import HuddleIO
import HuddleSys

/// A worker's listening socket for one `listen` of one server block (SO_REUSEPORT: every worker has its own).
// SAFETY: on its worker's loop thread only.
final class ListenerHandler: TimerNode, EventHandler {
    // SAFETY: a worker outlives every connection it owns (it closes them all before it goes away); unowned(unsafe)
    // skips the strong-retain check that profiling showed on every access.
    unowned(unsafe) let worker: Worker
    let fd: Int32
    /// Index of the server block in the current snapshot.
    let blockIndex: Int
    var registration = Registration.none
    var paused = false

    init(worker: Worker, fd: Int32, blockIndex: Int) {
        self.worker = worker
        self.fd = fd
        self.blockIndex = blockIndex
        super.init()
    }

    func handleEvent(_ events: UInt32) {
        if !paused { worker.acceptLoop(self) }
    }

    /// End of an accept pause (descriptor exhaustion).
    override func timerFired(now: Int64) {
        paused = false
        worker.acceptLoop(self)
    }
}

/// Once a second on each worker: give back pooled memory and descriptors that a past burst left cached.
// SAFETY: on its worker's loop thread only.
final class WorkerHousekeeping: TimerNode {
    unowned(unsafe) let worker: Worker
    init(worker: Worker) {
        self.worker = worker
        super.init()
    }
    override func timerFired(now: Int64) {
        worker.loop.buffers.trim(keep: 32)
        worker.loop.pipes.trim(keep: 8)
        worker.exchanges.trim(keep: 32)
        worker.loop.timers.schedule(self, at: now + 1000)
    }
}

// SAFETY: all mutable state is touched on `loop`'s thread only; other threads reach it through `loop.execute`.
public final class Worker: @unchecked Sendable {
    public let id: Int
    public let loop: EventLoop
    let errorLog: ErrorLog
    var config: RuntimeConfig
    var accessLog: AccessLog
    var listeners: [ListenerHandler] = []
    var rng: FastRandom
    /// Idle keep-alive connections per server uid, most recently used last.
    var pools: [[UpstreamConnection]] = []
    /// Smooth round-robin state per upstream index of the current snapshot.
    var roundRobin: [SmoothRoundRobin] = []
    var sessionCount = 0
    var upstreamConnectionCount = 0
    var tunnelCount = 0
    var acceptPausedForLimit = false
    var lastLimitLogMs: Int64 = -100_000
    var lastEMFILELogMs: Int64 = -100_000
    var shuttingDown = false
    var housekeeping: WorkerHousekeeping?
    /// Parsing state lent to requests in progress.
    let exchanges = ExchangeStatePool()
    /// Open sessions, for shutdown (a session removes itself when it closes).
    var sessionObjects: [ObjectIdentifier: DownstreamSession] = [:]
    /// Figures published at the end of each loop turn for the admin port and shutdown (Worker+Stats.swift).
    let published = WorkerStatsSlot()

    init(id: Int, config: RuntimeConfig, errorLog: ErrorLog, listenFDs: [(fd: Int32, blockIndex: Int)]) throws(Errno) {
        self.id = id
        let maxHeader = config.config.servers.map(\.maxHeaderSize).max() ?? 16384
        loop = try EventLoop(id: id, bufferSize: max(16 * 1024, maxHeader))
        self.config = config
        self.errorLog = errorLog
        accessLog = AccessLog(config.config.accessLog, pool: loop.buffers)
        rng = FastRandom(seed: UInt64(Sys.monotonicNs()) &+ UInt64(id) &* 0x9E37_79B9_7F4A_7C15)
        roundRobin = config.upstreams.map { SmoothRoundRobin(weights: $0.servers.map(\.weight)) }
        for l in listenFDs {
            let h = ListenerHandler(worker: self, fd: l.fd, blockIndex: l.blockIndex)
            h.registration = try loop.register(fd: l.fd, events: Events.readable | Events.edgeTriggered, handler: h)
            listeners.append(h)
        }
        let log = accessLog
        loop.addEndOfTurnHook { log.flush() }
        housekeeping = WorkerHousekeeping(worker: self)
        loop.timers.schedule(housekeeping!, at: loop.now + 1000)
        loop.addEndOfTurnHook { [unowned self] in self.publishStats() }
        publishStats()
    }

    var maxConnections: Int { config.config.maxConnectionsPerWorker }

    // MARK: accepting

    func acceptLoop(_ l: ListenerHandler) {
        while !shuttingDown {
            if sessionCount >= maxConnections {
                if !acceptPausedForLimit {
                    acceptPausedForLimit = true
                    if loop.now - lastLimitLogMs > 10_000 {
                        lastLimitLogMs = loop.now
                        errorLog.warn("worker \(id): \(sessionCount) client connections open, the max_connections limit; new connections wait in the listen queue")
                    }
                }
                return
            }
            let r: IOResult<(Int32, SocketAddress?)>
            do {
                r = try Sys.accept(l.fd)
            } catch {
                if error.isOutOfDescriptors {
                    // Out of descriptors: pause this listener briefly instead of spinning on the pending connection.
                    if loop.now - lastEMFILELogMs > 10_000 {
                        lastEMFILELogMs = loop.now
                        errorLog.error("worker \(id): accept failed: \(error); pausing accepts for 100ms (\(sessionCount) client and \(upstreamConnectionCount) backend connections open)")
                    }
                    l.paused = true
                    loop.timers.schedule(l, at: loop.now + 100)
                } else {
                    errorLog.error("worker \(id): accept failed: \(error)")
                }
                return
            }
            guard case .done(let (cfd, peer)) = r else { return }
            Sockets.setNoDelay(cfd)
            guard l.blockIndex < config.serverBlocks.count else {
                Sys.close(cfd)
                continue
            }
            let s = DownstreamSession(worker: self, fd: cfd, peer: peer, snapshot: config, blockIndex: l.blockIndex)
            do {
                s.registration = try loop.register(fd: cfd, handler: s)
            } catch {
                Sys.close(cfd)
                continue
            }
            sessionCount += 1
            let oid = ObjectIdentifier(s)
            sessionObjects[oid] = s
            s.start()
        }
    }

    /// Called by a session after it closed its socket.
    func sessionClosed(_ s: DownstreamSession) {
        sessionCount -= 1
        sessionObjects[ObjectIdentifier(s)] = nil
        if acceptPausedForLimit && sessionCount < maxConnections {
            acceptPausedForLimit = false
            for l in listeners where !l.paused { acceptLoop(l) }
        }
    }

    // MARK: backend connection pool

    func takePooled(_ server: ServerRuntime) -> UpstreamConnection? {
        guard server.uid < pools.count else { return nil }
        while let c = pools[server.uid].popLast() {
            loop.timers.cancel(c)
            if c.closed { continue }
            return c
        }
        return nil
    }

    func returnToPool(_ c: UpstreamConnection, keepalive: Int, timeoutMs: Int64) {
        c.session = nil
        c.reused = true
        let uid = c.server.uid
        if uid >= pools.count { pools.append(contentsOf: Array(repeating: [], count: uid - pools.count + 1)) }
        guard keepalive > 0, !shuttingDown else {
            c.close()
            return
        }
        if pools[uid].count >= keepalive {
            // Keep the warmest; close the oldest.
            let old = pools[uid].removeFirst()
            old.close()
        }
        pools[uid].append(c)
        loop.timers.schedule(c, at: loop.now + timeoutMs)
        // Edge-triggered: if the server already closed it, we have the event pending; nothing to do now.
    }

    func discardPooled(_ c: UpstreamConnection) {
        let uid = c.server.uid
        if uid < pools.count, let i = pools[uid].firstIndex(where: { $0 === c }) {
            pools[uid].remove(at: i)
        }
        c.close()
    }

    // MARK: config and shutdown (on the loop thread, posted by the process)

    func apply(_ newConfig: RuntimeConfig) {
        config = newConfig
        roundRobin = newConfig.upstreams.map { SmoothRoundRobin(weights: $0.servers.map(\.weight)) }
        // Idle keep-alive connections to servers the new config dropped (or changed) are of no further use.
        let live = Set(newConfig.upstreams.flatMap { $0.servers.map(\.uid) })
        for uid in pools.indices where !live.contains(uid) && !pools[uid].isEmpty {
            for c in pools[uid] {
                loop.timers.cancel(c)
                c.close()
            }
            pools[uid].removeAll()
        }
    }

    /// Stops accepting; open sessions finish their current exchange and close.
    func beginShutdown() {
        shuttingDown = true
        for l in listeners {
            loop.deregister(fd: l.fd, registration: l.registration)
            loop.timers.cancel(l)
            Sys.close(l.fd)
        }
        listeners.removeAll()
        for list in pools { for c in list { c.close() } }
        pools.removeAll()
        for s in sessionObjects.values { s.shutdownRequested() }
    }

    /// Closes everything still open (shutdown_timeout reached).
    func forceClose() {
        for s in Array(sessionObjects.values) { s.abort(reason: nil) }
    }

    var openSessions: Int { sessionCount }

    /// A fresh request id: 16 random bytes as 32 hex digits.
    func appendRequestId(into b: inout IOBuffer) {
        let hex: StaticString = "0123456789abcdef"
        let a = rng.next()
        let c = rng.next()
        hex.withUTF8Buffer { h in
            var w = a
            for i in 0..<32 {
                if i == 16 { w = c }
                b.append(byte: h[Int(w & 15)])
                w >>= 4
            }
        }
    }
}
