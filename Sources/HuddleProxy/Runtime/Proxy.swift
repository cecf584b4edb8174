// The process: builds the runtime snapshot, opens listeners, runs one worker per thread, reloads and shuts down.
import Glibc
import HuddleConfig
import HuddleIO
import HuddleSys
import Synchronization
import HuddleSync

public final class Proxy: @unchecked Sendable {
    // SAFETY: `workers`/`threads` are set once in start() on the control thread; `state` is a Mutex.
    public let errorLog: ErrorLog
    private var workers: [Worker<SocketNetwork>] = []
    private var threads: [pthread_t] = []
    private let state: Locked<ControlState>

    struct ControlState {
        var runtime: RuntimeConfig
        var generation: Int
        var lastReloadMs: Int64
        var lastReloadResult: String
    }

    /// Resolves, validates against the system (addresses) and binds every listener, so start-up errors surface here.
    public init(config: HuddleConfig) throws {
        errorLog = ErrorLog(config.errorLog)
        // Serving plaintext on a port the operator marked tls would be worse than not starting.
        let tls = config.servers.flatMap(\.listens).filter(\.tls)
        if !tls.isEmpty {
            throw ConfigErrors(tls.map { ConfigError(location: $0.location, message: "listen \($0.address) tls: TLS termination is not implemented in this build yet") })
        }
        let log = errorLog
        let rt = try RuntimeConfig.build(config, generation: 1, previous: nil, log: { log.warn($0) })
        state = Locked(ControlState(runtime: rt, generation: 1, lastReloadMs: Sys.wallClockMs(), lastReloadResult: "initial load"))
        Self.warnAboutPendingFeatures(config, log: errorLog)
    }

    /// Directives the config language accepts whose machinery is not in this build yet: say so instead of pretending.
    static func warnAboutPendingFeatures(_ c: HuddleConfig, log: ErrorLog) {
        for u in c.upstreams {
            if u.healthCheck != nil { log.warn("upstream \(u.name) (\(u.location)): health_check is accepted but active health checks are not implemented in this build; servers stay in rotation") }
            if u.passiveHealth != nil { log.warn("upstream \(u.name) (\(u.location)): passive_health is accepted but ejection is not implemented in this build") }
            for s in u.servers where s.resolve { log.warn("server \(s.address) (\(s.location)): resolve is accepted but names are resolved once, at start and on reload") }
        }
        for b in c.servers {
            if b.gzip.enabled { log.warn("server block at \(b.location): gzip is accepted but compression is not implemented in this build") }
        }
    }

    public var runtime: RuntimeConfig { state.withLock { $0.runtime } }

    /// Binds listeners (SO_REUSEPORT, one per worker and address) and starts the worker threads.
    public func start() throws {
        let rt = runtime
        let n = max(1, rt.config.workers ?? Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        let limits = Sys.raiseOpenFileLimit()
        let perConnection = 2
        let capacity = Int(limits.soft) / perConnection
        errorLog.info("open-file limit \(limits.soft) (hard \(limits.hard)): room for about \(capacity) proxied connections (each takes a client and a backend descriptor)")
        var fdsPerWorker: [[(fd: Int32, blockIndex: Int)]] = Array(repeating: [], count: n)
        do {
            for (bi, b) in rt.serverBlocks.enumerated() {
                for (li, addr) in b.listenAddresses.enumerated() {
                    for w in 0..<n {
                        do {
                            let fd = try Sockets.listen(on: addr, reusePort: true)
                            fdsPerWorker[w].append((fd, bi))
                        } catch {
                            let loc = b.config.listens[li].location
                            throw ConfigErrors([ConfigError(location: loc, message: "cannot listen on \(addr): \(error)")])
                        }
                    }
                }
            }
        } catch {
            for list in fdsPerWorker { for l in list { Sys.close(l.fd) } }
            throw error
        }
        for i in 0..<n {
            let w = try Worker(id: i, network: SocketNetwork(), config: rt, errorLog: errorLog, listenFDs: fdsPerWorker[i])
            workers.append(w)
        }
        for w in workers {
            threads.append(LoopThread.spawn(name: "huddle-w\(w.id)") { w.loop.run() })
        }
        let listens = rt.serverBlocks.flatMap(\.listenAddresses).map(\.description).joined(separator: ", ")
        errorLog.info("huddle started: \(n) worker(s), listening on \(listens)")
    }

    /// Applies a new config: a new snapshot posted to every worker; requests in flight keep the one they started with.
    /// Listen addresses are bound at start; changes to them are reported and take effect on restart.
    public func reload(_ config: HuddleConfig) -> Result<Int, Error> {
        let old = runtime
        let rt: RuntimeConfig
        do {
            let gen = state.withLock { $0.generation } + 1
            rt = try RuntimeConfig.build(config, generation: gen, previous: old, log: { self.errorLog.warn($0) })
        } catch {
            state.withLock {
                $0.lastReloadMs = Sys.wallClockMs()
                $0.lastReloadResult = "failed: \(error)"
            }
            return .failure(error)
        }
        let oldListens = old.serverBlocks.map { $0.listenAddresses.map(\.description) }
        let newListens = rt.serverBlocks.map { $0.listenAddresses.map(\.description) }
        if oldListens != newListens {
            errorLog.warn("reload: listen addresses changed; they take effect at the next restart (server blocks keep their current listeners)")
        }
        state.withLock {
            $0.runtime = rt
            $0.generation = rt.generation
            $0.lastReloadMs = Sys.wallClockMs()
            $0.lastReloadResult = "ok"
        }
        for w in workers {
            w.loop.execute { w.apply(rt) }
        }
        errorLog.info("reloaded configuration (generation \(rt.generation))")
        return .success(rt.generation)
    }

    /// Drops groups whose linger time has passed (called about once a second by the control loop).
    public func sweepGroups() {
        let now = Sys.monotonicMs()
        for u in runtime.upstreams { u.groups.sweep(nowMs: now) }
    }

    public var reloadInfo: (generation: Int, lastReloadMs: Int64, result: String) {
        state.withLock { ($0.generation, $0.lastReloadMs, $0.lastReloadResult) }
    }

    /// Graceful stop: stop accepting, let exchanges finish within `timeoutMs`, then close what is left.
    public func shutdown(timeoutMs: Int64) {
        for w in workers { w.loop.execute { w.beginShutdown() } }
        let deadline = Sys.monotonicMs() + timeoutMs
        while Sys.monotonicMs() < deadline {
            if openSessions() == 0 { break }
            usleep(20_000)
        }
        for w in workers {
            w.loop.execute { w.forceClose() }
            w.loop.stop()
        }
        for t in threads { LoopThread.join(t) }
        threads.removeAll()
        errorLog.info("huddle stopped")
    }

    /// Sum of open client sessions over all workers (asks each loop; bounded wait).
    public func openSessions() -> Int {
        let total = Atomic<Int>(0)
        let answered = Atomic<Int>(0)
        for w in workers {
            w.loop.execute {
                total.add(w.openConnections, ordering: .relaxed)
                answered.add(1, ordering: .releasing)
            }
        }
        let deadline = Sys.monotonicMs() + 1000
        while answered.load(ordering: .acquiring) < workers.count && Sys.monotonicMs() < deadline { usleep(1000) }
        return total.load(ordering: .relaxed)
    }

    /// One worker's figures, read on its own loop thread.
    public struct WorkerStats: Sendable {
        public var sessions = 0
        public var tunnels = 0
        public var upstreamConnections = 0
        /// Pooled I/O buffers currently lent out (an idle connection or tunnel holds none).
        public var buffersInUse = 0
        public var buffersCached = 0
        /// Splice pipes currently lent out (an idle tunnel holds none).
        public var pipesInUse = 0
        public var pipesCached = 0
    }

    /// Per-worker figures for the admin port (asks each loop; bounded wait).
    public func workerStats() -> [WorkerStats] {
        let out = Locked<[Int: WorkerStats]>([:])
        let answered = Atomic<Int>(0)
        for w in workers {
            w.loop.execute {
                let v = WorkerStats(sessions: w.openConnections, tunnels: w.counters.tunnels, upstreamConnections: w.counters.upstreamConnections,
                                    buffersInUse: w.loop.buffers.outstanding, buffersCached: w.loop.buffers.cachedCount,
                                    pipesInUse: w.loop.pipes.outstanding, pipesCached: w.loop.pipes.cachedCount)
                out.withLock { $0[w.id] = v }
                answered.add(1, ordering: .releasing)
            }
        }
        let deadline = Sys.monotonicMs() + 1000
        while answered.load(ordering: .acquiring) < workers.count && Sys.monotonicMs() < deadline { usleep(1000) }
        return out.withLock { d in (0..<workers.count).map { d[$0] ?? WorkerStats() } }
    }
}
