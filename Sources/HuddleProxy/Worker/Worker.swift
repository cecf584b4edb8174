// One worker thread: its event loop, listening sockets, client connections, backend connection pool and logs.
import HuddleBalancing
import HuddleConfig
import HuddleIO
import HuddleSys

// SAFETY: all mutable state is touched on `loop`'s thread only; other threads reach it through `loop.execute`.
public final class Worker<Net: Network>: @unchecked Sendable {
    public let id: Int
    public let loop: EventLoop
    let network: Net
    let errorLog: ErrorLog
    var config: RuntimeConfig
    var accessLog: AccessLog
    var listeners: [ListenerHandler<Net>] = []
    var rng: FastRandom
    /// Smooth round-robin state per upstream index of the current snapshot.
    var roundRobin: [SmoothRoundRobin] = []
    /// Client connections, backend connections and tunnels open on this worker (each counted by its own token).
    let counters = LoopCounters()
    /// Parsing and relay state lent to exchanges in progress.
    let exchanges = ExchangePool<Net>()
    /// zlib deflate streams lent to responses while they are compressed.
    let gzipStreams = GzipStreamPool()
    /// 64 KiB buffers for compressed responses (the backend's input and the chunk buffer): a quarter of the read and
    /// write calls 16 KiB ones would take for the same body.
    let gzipBuffers: BufferPool = {
        let pool = BufferPool(bufferSize: 64 * 1024)
        pool.maxCached = 64
        return pool
    }()
    private(set) var upstreamPool: UpstreamPool<Net>!
    var acceptPausedForLimit = false
    /// A connection closed while accepting was paused at the limit: accepting resumes at the end of this loop turn
    /// (never inside the closing connection's call stack).
    private var acceptResumePending = false
    var lastLimitLogMs: Int64 = -100_000
    var lastEMFILELogMs: Int64 = -100_000
    var shuttingDown = false
    var housekeeping: WorkerHousekeeping<Net>?
    /// Figures published at the end of each loop turn for the admin port and shutdown (Worker+Stats.swift).
    let published = WorkerStatsSlot()
    /// Open client connections, for shutdown (a connection removes itself when it closes).
    private var connections: [ObjectIdentifier: ClientConnection<Net>] = [:]
    /// Queues (this worker's lists) to serve at the end of this loop turn (Upstream/ClientConnection+Queue.swift).
    var queuesToServe: [WorkerQueue] = []
    /// Where group evictions (migrations) are posted to every worker of the process, this one included.
    let migrator: GroupMigrator

    init(id: Int, network: Net, config: RuntimeConfig, errorLog: ErrorLog, listenFDs: [(fd: Int32, key: String)],
         migrator: GroupMigrator = GroupMigrator()) throws(Errno) {
        self.id = id
        self.migrator = migrator
        self.network = network
        let maxHeader = config.config.servers.map(\.maxHeaderSize).max() ?? 16384
        loop = try EventLoop(id: id, bufferSize: max(16 * 1024, maxHeader))
        self.config = config
        self.errorLog = errorLog
        accessLog = AccessLog(config.config.accessLog, pool: loop.buffers)
        rng = FastRandom(seed: UInt64(Sys.monotonicNs()) &+ UInt64(id) &* 0x9E37_79B9_7F4A_7C15)
        roundRobin = config.upstreams.map { SmoothRoundRobin(weights: $0.servers.map(\.weight)) }
        upstreamPool = UpstreamPool(worker: self)
        for l in listenFDs { try addListener(fd: l.fd, key: l.key) }
        let log = accessLog
        loop.addEndOfTurnHook { [unowned self] in
            log.flush()
            self.endOfTurn()
        }
        let me = WeakBox(self)
        migrator.add(loop: loop) { placements in me.value?.evict(placements) }
        housekeeping = WorkerHousekeeping(worker: self)
        loop.timers.schedule(housekeeping!, at: loop.now + 1000)
        publishStats()
    }

    @_specialize(where Net == SocketNetwork)
    func endOfTurn() {
        if acceptResumePending { resumeAccepting() }
        if !queuesToServe.isEmpty { serveQueues() }
        publishStats()
    }

    var maxConnections: Int { config.config.maxConnectionsPerWorker }
    var openConnections: Int { counters.clientConnections }

    // MARK: connections

    /// Takes a new client connection (accepted here, or handed over by a test's in-memory network). With
    /// `proxyProtocol` it must open with a PROXY protocol header before anything else is read.
    @discardableResult
    func adopt(_ stream: Net.Stream, peer: SocketAddress?, blockIndex: Int, listenKey: String = "", proxyProtocol: Bool = false) -> ClientConnection<Net>? {
        guard blockIndex < config.serverBlocks.count else {
            _ = StreamOwner(stream)   // closes it
            return nil
        }
        let c = ClientConnection(worker: self, stream: stream, peer: peer, snapshot: config, blockIndex: blockIndex, listenKey: listenKey,
                                 proxyProtocol: proxyProtocol)
        do {
            c.registration = try network.register(stream, handler: c, on: loop)
        } catch {
            c.close()
            return nil
        }
        connections[ObjectIdentifier(c)] = c
        c.start()
        return c
    }

    /// Called by a connection's teardown, once.
    func connectionClosed(_ c: ClientConnection<Net>) {
        connections[ObjectIdentifier(c)] = nil
        if acceptPausedForLimit && counters.clientConnections < maxConnections { acceptResumePending = true }
    }

    private func resumeAccepting() {
        acceptResumePending = false
        guard acceptPausedForLimit, counters.clientConnections < maxConnections else { return }
        acceptPausedForLimit = false
        for l in listeners where !l.paused { l.acceptLoop() }
    }

    // MARK: config and shutdown (on the loop thread, posted by the process)

    /// A reload: the new snapshot; listeners the new config added (bound by the process, one descriptor per worker)
    /// start accepting, and those it removed stop (their open connections finish on the config they had).
    func apply(_ newConfig: RuntimeConfig, addListeners: [(fd: Int32, key: String)] = []) {
        config = newConfig
        roundRobin = newConfig.upstreams.map { SmoothRoundRobin(weights: $0.servers.map(\.weight)) }
        // Idle keep-alive connections to servers the new config dropped (or changed) are of no further use.
        upstreamPool.keepOnly(Set(newConfig.upstreams.flatMap { $0.servers.map(\.uid) }))
        var kept: [ListenerHandler<Net>] = []
        for l in listeners {
            if let i = newConfig.listenIndex[l.key] {
                l.blockIndex = i
                l.proxyProtocol = newConfig.proxyProtocolListenKeys.contains(l.key)
                kept.append(l)
            } else {
                l.close()
                errorLog.info("worker \(id): stopped listening on \(l.key) (removed by the reload)")
            }
        }
        listeners = kept
        for l in addListeners {
            do {
                try addListener(fd: l.fd, key: l.key)
            } catch {
                Sys.close(l.fd)
                errorLog.error("worker \(id): cannot watch the new listener \(l.key): \(error)")
            }
        }
    }

    private func addListener(fd: Int32, key: String) throws(Errno) {
        let h = ListenerHandler(worker: self, fd: fd, key: key, blockIndex: config.listenIndex[key] ?? 0,
                                proxyProtocol: config.proxyProtocolListenKeys.contains(key))
        h.registration = try loop.register(fd: fd, events: Events.readable | Events.edgeTriggered, handler: h)
        listeners.append(h)
        // Connections may be waiting already (the socket listened before this worker watched it).
        h.acceptLoop()
    }

    /// Stops accepting; open connections finish their current exchange and close.
    func beginShutdown() {
        shuttingDown = true
        for l in listeners { l.close() }
        listeners.removeAll()
        upstreamPool.closeAll()
        for c in Array(connections.values) { c.shutdownRequested() }
    }

    /// Group migrations: every tunnel on this worker that is a member of one of `placements` (groups that were moved)
    /// closes at its next frame boundaries with Close 1012 both ways. One pass over this worker's connections per batch;
    /// this happens on a change (a migration), never per message.
    func evict(_ placements: Set<UInt64>) {
        guard !placements.isEmpty else { return }
        for c in connections.values where c.phase == .tunnel {
            if let t = c.tunnel, let p = t.groupPlacement, placements.contains(p) { t.beginMigration() }
        }
    }

    /// Closes everything still open (shutdown_timeout reached).
    func forceClose() {
        for c in Array(connections.values) { c.abort(reason: nil) }
        upstreamPool.closeAll()
    }

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

/// Once a second on each worker: give back pooled memory and descriptors that a past burst left cached.
// SAFETY: on its worker's loop thread only.
final class WorkerHousekeeping<Net: Network>: TimerNode {
    unowned(unsafe) let worker: Worker<Net>
    init(worker: Worker<Net>) {
        self.worker = worker
        super.init()
    }
    @_specialize(where Net == SocketNetwork)
    override func timerFired(now: Int64) {
        worker.loop.buffers.trim(keep: 32)
        worker.loop.pipes.trim(keep: 8)
        worker.exchanges.trim(keep: 32)
        // A deflate stream holds ~270 KiB: keep few beyond what the last second's peak needed.
        worker.gzipStreams.trim(keep: 2)
        worker.gzipBuffers.trim(keep: 4)
        worker.pollQueues()
        worker.loop.timers.schedule(self, at: now + 1000)
    }
}
