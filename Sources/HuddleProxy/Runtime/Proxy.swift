// The process: builds the runtime snapshot, opens listeners, runs one worker per thread, reloads and shuts down.
import Glibc
import HuddleConfig
import HuddleIO
import HuddleSys
import HuddleSync

public final class Proxy: @unchecked Sendable {
    // SAFETY: `workers`/`threads` are set once in start() on the control thread; `state` is a Mutex.
    public let errorLog: ErrorLog
    private var workers: [Worker<SocketNetwork>] = []
    private var threads: [pthread_t] = []
    private let state: Locked<ControlState>
    /// Active checks and ejection ends, on the control loop once `attachControlLoop` ran.
    private let healthDriver = Locked<(loop: EventLoop, driver: HealthDriver)?>(nil)
    /// `resolve` lines: lookups on the resolver thread, results on the control loop (see Discovery).
    private let discovery: Discovery
    /// Servers that left the snapshot, for when they come back (control thread only).
    private let archive = ServerArchive()
    /// Group migrations, on the control loop once `attachControlLoop` ran.
    private let migrationDriver = Locked<(loop: EventLoop, driver: MigrationDriver)?>(nil)
    /// Delivers group evictions to every worker.
    let migrator = GroupMigrator()

    struct ControlState {
        var runtime: RuntimeConfig
        var generation: Int
        var lastReloadMs: Int64
        var lastReloadResult: String
        var reloadsOK = 0
        var reloadsFailed = 0
    }

    /// Resolves, validates against the system (addresses) and binds every listener, so start-up errors surface here.
    public init(config: HuddleConfig) throws {
        errorLog = ErrorLog(config.errorLog)
        let log = errorLog
        let driver = healthDriver
        discovery = Discovery(log: errorLog)
        discovery.sync(config)
        discovery.resolveInitial()
        let rt: RuntimeConfig
        do {
            rt = try RuntimeConfig.build(config, generation: 1, previous: nil, log: { log.warn($0) },
                                         transitions: Self.transitionObserver(log: log, driver: driver), discovered: discovery.found,
                                         archive: archive)
        } catch {
            discovery.stop()
            throw error
        }
        state = Locked(ControlState(runtime: rt, generation: 1, lastReloadMs: Sys.wallClockMs(), lastReloadResult: "initial load"))
        discovery.onChange = { [unowned self] in applyDiscovery() }
        Self.adviseOnConfig(config, log: log)
    }

    /// What an operator must know about a sticky cookie without `key=`.
    static func adviseOnConfig(_ c: HuddleConfig, log: ErrorLog) {
        for u in c.upstreams {
            if let s = u.sticky, s.key == nil {
                log.info("upstream \(u.name) (\(s.location)): sticky cookie \(s.name) without key=: its values come from a key made at start, so other replicas and later runs do not recognise them; set the same key= on every replica to share them")
            }
        }
    }

    /// Every state change of a server is logged once, with its reason; an ejection also wakes the control loop so the
    /// ejection ends on time.
    static func transitionObserver(log: ErrorLog, driver: Locked<(loop: EventLoop, driver: HealthDriver)?>) -> HealthTransitionObserver {
        { s, from, to, reason in
            let line = "upstream \(s.upstreamName) server \(s.serverName): \(from.name) -> \(to.name): \(reason)"
            if to == .healthy || to == .draining || to == .disabled { log.info(line) } else { log.warn(line) }
            if to == .ejected, let d = driver.withLock({ $0 }) {
                let h = d.driver
                d.loop.execute { h.ejectionStarted() }
            }
        }
    }

    /// Starts active health checks (and ejection expiry) on `loop`, the control loop; call on its thread.
    public func attachControlLoop(_ loop: EventLoop) {
        let d = HealthDriver(loop: loop, runtime: runtime)
        healthDriver.withLock { $0 = (loop, d) }
        discovery.attach(loop)
        let m = MigrationDriver(loop: loop, runtime: { [unowned self] in self.runtime }, migrator: migrator, log: errorLog)
        migrationDriver.withLock { $0 = (loop, m) }
    }

    /// Migration state of the hash upstream `name`, as the control loop last published it (nil before it ran, or for
    /// an upstream that does not hash).
    public func migrationStatus(upstream name: String) -> MigrationStatus? {
        migrationDriver.withLock { $0?.driver }?.status.withLock { $0[name] }
    }

    /// Some `resolve` line found other servers: a new snapshot of the same config, built as a reload builds one
    /// (servers kept by identity keep their state, ones that come back are revived) and applied the same way, to the
    /// workers and the health driver. The config generation stays: the file did not change. On the control loop.
    func applyDiscovery() {
        let old = runtime
        let rt: RuntimeConfig
        do {
            rt = try RuntimeConfig.build(old.config, generation: old.generation, previous: old, log: { self.errorLog.warn($0) },
                                         transitions: Self.transitionObserver(log: errorLog, driver: healthDriver),
                                         discovered: discovery.found, archive: archive, sameConfig: true)
        } catch {
            errorLog.error("discovery: cannot apply the servers found: \(error); the current ones stay")
            return
        }
        state.withLock { $0.runtime = rt }
        for w in workers { w.loop.execute { w.apply(rt) } }
        if let d = healthDriver.withLock({ $0 }) {
            let h = d.driver
            d.loop.execute { h.apply(rt) }
        }
    }

    /// What an operator can do to a server from the admin port.
    public enum ServerAction: Sendable { case drain, enable }

    /// Drains a server (no new requests or groups; with rebalance migrate its groups move at the upstream's pace, with
    /// keep they stay until their members leave; the drain is complete when its last tunnel closes) or puts it back (ends a
    /// drain or an admin disable; active and passive health still apply). `server` is its address as written or its
    /// name. Returns the server's new state, or why not.
    public func adminAction(_ action: ServerAction, upstream: String, server: String) -> Result<ServerState, AdminActionError> {
        let rt = runtime
        guard let u = rt.upstream(named: upstream) else { return .failure(.noSuchUpstream(upstream)) }
        guard let s = u.servers.first(where: { $0.addressText == server || $0.identity == server }) else {
            return .failure(.noSuchServer(upstream: upstream, server: server))
        }
        let wall = Sys.wallClockMs()
        switch action {
        case .drain:
            s.health.update(set: .draining, reason: "drained through the admin port", nowWallMs: wall)
        case .enable:
            if s.health.flags.contains(.disabled) && u.config.servers.first(where: { $0.identity == s.identity })?.down == true {
                return .failure(.downInConfig(server))
            }
            s.health.update(clear: [.draining, .disabled], reason: "enabled through the admin port", nowWallMs: wall)
        }
        return .success(s.state)
    }

    public enum AdminActionError: Error, Sendable, CustomStringConvertible {
        case noSuchUpstream(String)
        case noSuchServer(upstream: String, server: String)
        case downInConfig(String)
        public var description: String {
            switch self {
            case .noSuchUpstream(let u): return "no upstream named \(u)"
            case .noSuchServer(let u, let s): return "upstream \(u) has no server with address or name \(s)"
            case .downInConfig(let s): return "server \(s) is marked down in the config; edit the config and reload"
            }
        }
    }

    /// Health probes started since start (one per server per interval, process-wide).
    public var healthProbesStarted: Int { healthDriver.withLock { $0?.driver.probesStarted } ?? 0 }

    public var runtime: RuntimeConfig { state.withLock { $0.runtime } }

    /// Binds listeners (SO_REUSEPORT, one per worker and address) and starts the worker threads.
    public func start() throws {
        let rt = runtime
        let n = max(1, rt.config.workers ?? Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        let limits = Sys.raiseOpenFileLimit()
        let perConnection = 2
        let capacity = Int(limits.soft) / perConnection
        errorLog.info("open-file limit \(limits.soft) (hard \(limits.hard)): room for about \(capacity) proxied connections (each takes a client and a backend descriptor)")
        let fdsPerWorker = try Self.bindListeners(rt, only: nil, workers: n)
        for i in 0..<n {
            let w = try Worker(id: i, network: SocketNetwork(), config: rt, errorLog: errorLog, listenFDs: fdsPerWorker[i], migrator: migrator)
            workers.append(w)
        }
        for w in workers {
            threads.append(LoopThread.spawn(name: "huddle-w\(w.id)") { w.loop.run() })
        }
        let listens = rt.serverBlocks.flatMap(\.listenAddresses).map(\.description).joined(separator: ", ")
        errorLog.info("huddle started: \(n) worker(s), listening on \(listens)")
    }

    /// Binds one SO_REUSEPORT socket per worker for each listen address of `rt` (or only those in `only`).
    /// All or nothing: on a failure every socket bound here is closed and the error names the config line.
    static func bindListeners(_ rt: RuntimeConfig, only: Set<String>?, workers n: Int) throws -> [[(fd: Int32, key: String)]] {
        var fdsPerWorker: [[(fd: Int32, key: String)]] = Array(repeating: [], count: n)
        do {
            for b in rt.serverBlocks {
                for (li, addr) in b.listenAddresses.enumerated() where only?.contains(addr.description) ?? true {
                    for w in 0..<n {
                        do {
                            let fd = try Sockets.listen(on: addr, reusePort: true, deferAccept: true)
                            fdsPerWorker[w].append((fd, addr.description))
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
        return fdsPerWorker
    }

    /// Applies a new config: a new snapshot posted to every worker; requests in flight keep the one they started with.
    /// Listen addresses the new config adds are bound first (a failure leaves everything as it was); those it drops
    /// stop accepting, and their open connections finish.
    public func reload(_ config: HuddleConfig) -> Result<Int, Error> {
        let old = runtime
        let rt: RuntimeConfig
        do {
            let gen = state.withLock { $0.generation } + 1
            // Lines kept by the new file keep what was found for them; new ones are empty until their first answer
            // (discovery follows the new file only once it is applied: a failed reload changes nothing).
            rt = try RuntimeConfig.build(config, generation: gen, previous: old, log: { self.errorLog.warn($0) },
                                         transitions: Self.transitionObserver(log: errorLog, driver: healthDriver),
                                         discovered: discovery.found, archive: archive)
        } catch {
            recordFailedReload("\(error)")
            return .failure(error)
        }
        let added = Set(rt.listenKeys).subtracting(old.listenKeys)
        var newFDs: [[(fd: Int32, key: String)]] = Array(repeating: [], count: workers.count)
        if !added.isEmpty {
            do {
                newFDs = try Self.bindListeners(rt, only: added, workers: workers.count)
            } catch {
                recordFailedReload("\(error)")
                return .failure(error)
            }
            errorLog.info("reload: listening on \(added.sorted().joined(separator: ", "))")
        }
        let removed = Set(old.listenKeys).subtracting(rt.listenKeys)
        if !removed.isEmpty { errorLog.info("reload: no longer listening on \(removed.sorted().joined(separator: ", "))") }
        state.withLock {
            $0.runtime = rt
            $0.generation = rt.generation
            $0.lastReloadMs = Sys.wallClockMs()
            $0.lastReloadResult = "ok"
            $0.reloadsOK += 1
        }
        discovery.sync(config)
        for (i, w) in workers.enumerated() {
            let fds = newFDs[i]
            w.loop.execute { w.apply(rt, addListeners: fds) }
        }
        if let d = healthDriver.withLock({ $0 }) {
            let h = d.driver
            d.loop.execute { h.apply(rt) }
        }
        errorLog.info("reloaded configuration (generation \(rt.generation))")
        return .success(rt.generation)
    }

    /// Drops groups whose linger time has passed (called about once a second by the control loop).
    public func sweepGroups() {
        let now = Sys.monotonicMs()
        for u in runtime.upstreams { u.groups.sweep(nowMs: now) }
    }

    /// Clears rate-limit buckets that are full again (called about once a second by the control loop): an idle key
    /// leaves the table, which keeps every answer the same (a full bucket is what a key never seen has).
    public func sweepRateLimits() {
        let now = Sys.monotonicNs()
        for l in runtime.rateLimiters { l.sweep(nowNs: now) }
    }

    public var reloadInfo: (generation: Int, lastReloadMs: Int64, result: String) {
        state.withLock { ($0.generation, $0.lastReloadMs, $0.lastReloadResult) }
    }

    /// Reload attempts since start, by result (the initial load not counted).
    public var reloadCounts: (ok: Int, failed: Int) {
        state.withLock { ($0.reloadsOK, $0.reloadsFailed) }
    }

    /// Records a reload that failed before reaching `reload(_:)` (the file did not parse), so `reloadInfo` and
    /// `reloadCounts` tell the truth about it; `reload(_:)` records its own failures.
    public func recordFailedReload(_ reason: String) {
        state.withLock {
            $0.lastReloadMs = Sys.wallClockMs()
            $0.lastReloadResult = "failed: \(reason)"
            $0.reloadsFailed += 1
        }
    }

    /// Graceful stop: stop accepting, let exchanges finish within `timeoutMs`, then close what is left.
    /// Waits on each worker's drain event (set by the worker itself when, shutting down, its last client connection
    /// has closed): no polling, and never longer than `timeoutMs` in all.
    public func shutdown(timeoutMs: Int64) {
        discovery.stop()
        if let d = healthDriver.withLock({ $0 }) {
            let h = d.driver
            d.loop.execute { h.stop() }
        }
        if let d = migrationDriver.withLock({ $0 }) {
            let m = d.driver
            d.loop.execute { m.stop() }
        }
        for w in workers { w.loop.execute { w.beginShutdown() } }
        let deadline = Sys.monotonicMs() + timeoutMs
        for w in workers {
            _ = w.published.drained.wait(timeoutMs: deadline - Sys.monotonicMs())
        }
        for w in workers {
            w.loop.execute { w.forceClose() }
            w.loop.stop()
        }
        for t in threads { LoopThread.join(t) }
        threads.removeAll()
        errorLog.info("huddle stopped")
    }

    /// Every worker's figures as it last published them (at the end of its latest loop turn), with their age.
    /// Reads shared memory only: it never waits for a worker, so a stuck worker shows up as stale instead of
    /// stalling the caller, and its figures are the last it published, not zeros.
    public func workerStats(nowMs: Int64 = Sys.monotonicMs()) -> [WorkerStats] {
        workers.map { w in
            let p = w.published.read()
            return WorkerStats(worker: w.id, figures: p.figures, publishedAtMs: p.publishedAtMs, nowMs: nowMs)
        }
    }
}
