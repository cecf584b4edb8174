// The data plane's view of a config: an immutable snapshot (routes, upstreams, selectors) plus per-server shared counters.
import COpenSSL
import Glibc
import HuddleBalancing
import HuddleConfig
@_exported import HuddleHealth
import HuddleSys
import Synchronization

/// One backend server, shared by every worker. Counters are relaxed atomics: each request touches them a few times.
/// The object survives reloads that keep the server's identity, so counters and groups carry over.
public final class ServerRuntime: Sendable {
    public let uid: Int
    public let identity: String
    public let addressText: String
    /// The host part as written, or for a server found through DNS the name it was found under (the name a TLS
    /// backend is checked against unless `tls sni=` says otherwise).
    public let host: String
    public let address: SocketAddress?
    /// The weight in the newest config (a reload that changes only the weight keeps the server and its state).
    public var weight: Int { weightValue.load(ordering: .relaxed) }
    let weightValue: Atomic<Int>
    /// `max_conns` in the newest config: at most this many requests in flight at once, across workers; 0: no cap.
    public var maxConns: Int { maxConnsValue.load(ordering: .relaxed) }
    let maxConnsValue: Atomic<Int>
    /// Why the server does or does not take traffic (active checks, passive ejection, drain, disable); shared.
    public let health: ServerHealth
    /// Answers by status class (huddle_requests_total{code}).
    public let stats: RequestStats
    public let inFlight = Atomic<Int>(0)
    /// Open upstream connections in use (requests and tunnels): the load that bounded-load placement compares.
    public let activeConnections = Atomic<Int>(0)
    /// Open tunnels (upgraded connections) to this server: a subset of `activeConnections` (admin port and dashboard).
    public let tunnels = Atomic<Int>(0)
    public let requestsTotal = Atomic<Int>(0)
    public let failuresTotal = Atomic<Int>(0)
    /// Exponentially weighted moving average of response latency, microseconds.
    public let latencyEwmaMicros = Atomic<Int>(0)
    /// The upstream's keep-alive settings (`keepalive`, `keepalive_timeout`), refreshed on reload: a backend
    /// connection going back to a worker's pool is kept or closed by them.
    let keepalive: Atomic<Int>
    let keepaliveTimeoutMs: Atomic<Int64>
    /// From when (monotonic ms) the server may take new groups and migrations (`membership_settle`): 0 for the servers
    /// of the config Huddle started with, seen + settle for one a reload added, `Int64.max` while it is out after having
    /// been available (it settles again when back). Kept by the control loop (MigrationDriver).
    public let groupsFromMs: Atomic<Int64>
    var pooling: (keepalive: Int, keepaliveTimeoutMs: Int64) {
        (keepalive.load(ordering: .relaxed), keepaliveTimeoutMs.load(ordering: .relaxed))
    }

    init(uid: Int, config: ServerConfig, upstream: UpstreamConfig, address: SocketAddress?, health: ServerHealth, statShards: Int,
         groupsFromMs: Int64 = 0) {
        self.uid = uid
        self.groupsFromMs = Atomic(groupsFromMs)
        self.health = health
        stats = RequestStats(shards: statShards)
        keepalive = Atomic(upstream.keepalive)
        keepaliveTimeoutMs = Atomic(upstream.keepaliveTimeout)
        identity = config.identity
        addressText = config.address.description
        host = config.discoveredName ?? config.address.host
        self.address = address
        weightValue = Atomic(config.weight)
        maxConnsValue = Atomic(config.maxConns)
    }

    public var state: ServerState { health.state }
    /// Whether new requests and new groups may go here.
    @inline(__always) public var isAvailable: Bool { health.takesTraffic && address != nil }
    /// Whether members of a group already pinned here may still join it (also while draining).
    @inline(__always) public var keepsGroups: Bool { health.flags.keepsGroups && address != nil }
    /// Whether a live or lingering group with `members` members stays pinned here: while the server takes traffic, or
    /// while it drains and the group still has members on it (a draining server keeps its groups until their members
    /// leave, not while they linger).
    @inline(__always) public func keepsGroup(members: Int) -> Bool { isAvailable || (members > 0 && keepsGroups) }
    /// A drain is complete when nothing is left on the draining server: no tunnel, no request in flight.
    public var drainComplete: Bool {
        health.flags.contains(.draining) && tunnels.load(ordering: .relaxed) == 0 && inFlight.load(ordering: .relaxed) == 0
    }
    /// Whether new groups (and migrations) may be placed here: available and settled (`membership_settle`). Weight 0
    /// servers own no key anyway.
    @inline(__always) public func takesGroups(nowMs: Int64) -> Bool {
        isAvailable && nowMs >= groupsFromMs.load(ordering: .relaxed)
    }
    /// The load p2c compares: requests in flight, plus a penalty for a failure streak, so a server that fails fast
    /// does not look idle and attract traffic before passive health ejects it. The penalty fades within seconds of
    /// the last failure (`ServerHealth.failurePenalty`), so the server is tried again.
    @inline(__always) public func balancingLoad(nowMs: Int64) -> Int {
        inFlight.load(ordering: .relaxed) + health.failurePenalty(nowMs: nowMs)
    }

    /// Whether one more request may go here now (below `max_conns`, or no cap). A hint: `InFlightClaim(admitting:)`
    /// decides.
    @inline(__always) public var hasRoom: Bool {
        let cap = maxConns
        return cap == 0 || inFlight.load(ordering: .relaxed) < cap
    }

    /// Takes one of the server's `max_conns` slots if one is free (compare-and-swap, so workers never overshoot the
    /// cap). Sequentially consistent: paired with the queue's waiter count (see `AdmissionQueue`), a waiter that found
    /// no room and a request that frees a slot cannot miss each other.
    func claimSlot() -> Bool {
        let cap = maxConns
        var n = inFlight.load(ordering: .sequentiallyConsistent)
        while true {
            if cap > 0 && n >= cap { return false }
            let (done, now) = inFlight.compareExchange(expected: n, desired: n + 1, ordering: .sequentiallyConsistent)
            if done { return true }
            n = now
        }
    }

    /// A kept (or revived) server takes the new config's settings.
    func follow(_ s: ServerConfig, upstream u: UpstreamConfig) {
        weightValue.store(s.weight, ordering: .relaxed)
        maxConnsValue.store(s.maxConns, ordering: .relaxed)
        keepalive.store(u.keepalive, ordering: .relaxed)
        keepaliveTimeoutMs.store(u.keepaliveTimeout, ordering: .relaxed)
    }

    func recordLatency(micros: Int) {
        let old = latencyEwmaMicros.load(ordering: .relaxed)
        let new = old == 0 ? micros : (old * 7 + micros) / 8
        latencyEwmaMicros.store(new, ordering: .relaxed)
    }
}

/// One upstream block: its servers and the selectors built once from them.
public final class UpstreamRuntime: Sendable {
    public let name: String
    public let config: UpstreamConfig
    public let servers: [ServerRuntime]
    public let p2c: P2CSelector
    public let hash: ConsistentHash
    public let groups: GroupTable
    /// Passive health across this upstream's servers (max_ejected); kept across reloads by name.
    public let health: UpstreamHealth
    /// Answers by status class and their duration (huddle_request_duration_seconds); kept across reloads by name.
    public let stats: RequestStats
    /// TLS to this upstream's servers (and their health checks); nil: plain TCP.
    public let tls: ClientTLSContext?
    /// `sticky cookie`: every server's cookie value and Set-Cookie line, made here once; nil when the upstream has none.
    public let sticky: StickyCookies?
    /// Where requests wait for a server below its `max_conns`; kept across reloads by name (requests queued on an
    /// older snapshot wait in the same queue).
    public let queue: AdmissionQueue
    /// Some server has `max_conns`: only then does a request take the queue's path (the one branch others pay).
    public let capped: Bool
    /// `backup` per server, in server order; empty when no server of the upstream is a backup (the one check others pay).
    public let backups: [Bool]
    let index: Int

    init(index: Int, config: UpstreamConfig, servers: [ServerRuntime], groups: GroupTable, health: UpstreamHealth, stats: RequestStats,
         tls: ClientTLSContext?, stickyKey: [UInt8] = [], queue: AdmissionQueue? = nil) {
        self.queue = queue ?? AdmissionQueue(upstream: config.name, workers: 1, shards: 1)
        capped = config.hasMaxConns
        let backupFlags = config.servers.count == servers.count ? config.servers.map(\.backup) : servers.map { _ in false }
        backups = backupFlags.contains(true) ? backupFlags : []
        self.tls = tls
        sticky = config.sticky.map { StickyCookies(config: $0, key: stickyKey, identities: servers.map(\.identity)) }
        self.health = health
        self.stats = stats
        self.index = index
        name = config.name
        self.config = config
        self.servers = servers
        let weights = servers.map(\.weight)
        p2c = P2CSelector(weights: weights)
        hash = ConsistentHash(identities: servers.map(\.identity), weights: weights)
        self.groups = groups
    }

    /// Where a group key maps now, by the rules `ServerChoice` places requests with: its live (or lingering) group's
    /// server while that server keeps the group, else the hash owner among available servers.
    public func lookup(key: [UInt8], nowMs: Int64) -> ServerRuntime? {
        let h = StableHash.hash64(key)
        if let g = groups.lookup(key: key, keyHash: h, nowMs: nowMs),
           let s = servers.first(where: { $0.identity == g.server }), s.keepsGroup(members: g.members) {
            return s
        }
        guard let i = groupOwner(keyHash: h, nowMs: nowMs) else { return nil }
        return servers[i]
    }

    func server(identity: String) -> ServerRuntime? { servers.first { $0.identity == identity } }

    /// `backup` servers (as in HAProxy and nginx) take traffic only while no primary server can: the backup tier is
    /// active when no primary with weight > 0 that is not in `excluded` is available. Only primaries are used while
    /// one is; only backups while none is. Full primaries (`max_conns`) queue requests rather than spill to backups.
    @inline(__always)
    public func backupTierActive(excluded: [Int] = []) -> Bool {
        guard !backups.isEmpty else { return false }
        let weights = hash.weights
        for i in servers.indices where !backups[i] && weights[i] > 0 && servers[i].isAvailable && !excluded.contains(servers[i].uid) {
            return false
        }
        return true
    }

    /// Whether server `i` belongs to the tier that takes traffic (always, on an upstream without backups).
    @inline(__always)
    public func inTier(_ i: Int, backupTier: Bool) -> Bool { backups.isEmpty || backups[i] == backupTier }

    /// The placement function for groups (GroupPlacement.eligible, without allocating): the hash owner among servers
    /// of the active tier (primaries, or backups when no primary is available) that take groups (available, settled,
    /// weight > 0) and are not `excluded`; when none does, among the available ones of that tier. Every replica with
    /// the same config and server states answers the same.
    @inline(__always)
    public func groupOwner(keyHash: UInt64, nowMs: Int64, excluded: [Int] = []) -> Int? {
        let servers = self.servers
        let tier = backupTierActive(excluded: excluded)
        // One pass when some server takes groups (the owner among them exists exactly then); else the fallback.
        if let i = hash.owner(keyHash: keyHash, isEligible: {
            servers[$0].takesGroups(nowMs: nowMs) && !excluded.contains(servers[$0].uid) && self.inTier($0, backupTier: tier)
        }) {
            return i
        }
        return hash.owner(keyHash: keyHash, isEligible: {
            servers[$0].isAvailable && !excluded.contains(servers[$0].uid) && self.inTier($0, backupTier: tier)
        })
    }

    /// Whether some server of the active tier not in `excluded` takes groups (else placement falls back to every
    /// available server of that tier).
    @inline(__always)
    func anyServerTakesGroups(nowMs: Int64, excluded: [Int]) -> Bool {
        let weights = hash.weights
        let tier = backupTierActive(excluded: excluded)
        for i in servers.indices where weights[i] > 0 && servers[i].takesGroups(nowMs: nowMs) && !excluded.contains(servers[i].uid)
            && inTier(i, backupTier: tier) {
            return true
        }
        return false
    }

    /// Which servers take groups now (GroupPlacement.eligible over the active tier): the control loop's view, in
    /// server order.
    public func groupEligibility(nowMs: Int64) -> [Bool] {
        let tier = backupTierActive()
        return GroupPlacement.eligible(available: servers.indices.map { servers[$0].isAvailable && inTier($0, backupTier: tier) },
                                       settled: servers.map { nowMs >= $0.groupsFromMs.load(ordering: .relaxed) },
                                       weights: hash.weights)
    }

    /// When "no server can take traffic" was last logged (monotonic ms), shared by the workers.
    private let noServerLoggedMs = Atomic<Int64>(-1_000_000)

    /// At most once a second: whether this caller should log that no server can take traffic.
    func shouldLogNoServer(nowMs: Int64) -> Bool {
        let last = noServerLoggedMs.load(ordering: .relaxed)
        guard nowMs - last >= 1000 else { return false }
        return noServerLoggedMs.compareExchange(expected: last, desired: nowMs, ordering: .relaxed).exchanged
    }

    /// Seconds until a server may take traffic again: the earliest ejection end, else one health-check interval
    /// (a down server needs `rise` passing checks), else 1; at most 60.
    func retryAfterSeconds(nowMs: Int64) -> Int {
        var soonest = Int64.max
        for s in servers where s.health.flags == .ejected { soonest = min(soonest, s.health.ejectedUntil - nowMs) }
        if soonest == Int64.max, let c = config.healthCheck { soonest = c.interval * Int64(c.rise) }
        if soonest == Int64.max { soonest = 1000 }
        return Int(min(60, max(1, (soonest + 999) / 1000)))
    }

    /// Whether a server that could take this request (available, not tried yet) is at its `max_conns`: then a request
    /// that found no server waits in the queue instead of being answered 503.
    func anyServerFull(excluded: [Int]) -> Bool {
        let tier = backupTierActive(excluded: excluded)
        return servers.indices.contains { servers[$0].isAvailable && !excluded.contains(servers[$0].uid) && !servers[$0].hasRoom
            && inTier($0, backupTier: tier) }
    }

    /// Whether some server not tried yet takes traffic (full or not).
    func anyServerAvailable(excluded: [Int]) -> Bool {
        servers.contains { $0.isAvailable && !excluded.contains($0.uid) }
    }

    /// "a: unhealthy, b: ejected": what keeps each server out, for the log.
    var stateSummary: String {
        servers.map { "\($0.identity): \($0.address == nil ? "unresolved" : $0.state.name)" }.joined(separator: ", ")
    }
}

/// A route resolved against the snapshot's upstreams.
public final class RouteRuntime: Sendable {
    public let prefix: [UInt8]
    public let config: RouteConfig
    public let upstream: UpstreamRuntime
    /// The route's token buckets (`rate_limit`); nil when it has none.
    public let rateLimit: RateLimiter?
    /// The route's response cache; nil when the route has no `cache`.
    public let cache: RouteCache?

    init(prefix: [UInt8], config: RouteConfig, upstream: UpstreamRuntime, rateLimit: RateLimiter? = nil, cache: RouteCache? = nil) {
        self.prefix = prefix
        self.config = config
        self.upstream = upstream
        self.rateLimit = rateLimit
        self.cache = cache
    }
}

public final class ServerBlockRuntime: Sendable {
    public let config: ServerBlockConfig
    /// Longest prefix first.
    public let routes: [RouteRuntime]
    public let listenAddresses: [SocketAddress]
    /// Certificates for its `tls` listeners, loaded when the snapshot was built (so a reload re-reads them).
    public let tls: ServerTLSContext?
    /// nil when gzip is off in this block.
    public let gzip: GzipRuntime?

    init(config: ServerBlockConfig, routes: [RouteRuntime], listenAddresses: [SocketAddress], tls: ServerTLSContext?) {
        self.config = config
        self.routes = routes
        self.listenAddresses = listenAddresses
        self.tls = tls
        gzip = config.gzip.enabled ? GzipRuntime(config.gzip) : nil
    }

    /// Longest-prefix match over the request path bytes.
    @inline(__always)
    func route(path: UnsafeRawBufferPointer) -> RouteRuntime? {
        for r in routes where r.prefix.count <= path.count {
            var match = true
            var i = 0
            for b in r.prefix {
                if path[i] != b { match = false; break }
                i += 1
            }
            if match { return r }
        }
        return nil
    }
}

/// The immutable snapshot every worker runs on. A request keeps the snapshot it started with.
public final class RuntimeConfig: Sendable {
    public let config: HuddleConfig
    public let generation: Int
    public let upstreams: [UpstreamRuntime]
    public let serverBlocks: [ServerBlockRuntime]

    /// Which server block each listen address (as `SocketAddress.description`) belongs to.
    public let listenIndex: [String: Int]
    /// The listen addresses that terminate TLS.
    public let tlsListens: Set<String>
    /// Session-ticket keys, shared by every TLS listener and kept across reloads (tickets survive a reload).
    public let ticketKeys: TicketKeyRing
    /// The listen addresses marked `proxy_protocol`: their connections open with a PROXY protocol header.
    public let proxyProtocolListenKeys: Set<String>
    /// The sticky-cookie key of upstreams whose `sticky` has no `key=`: random, made at start and kept across reloads,
    /// so such cookies mean something to this process only.
    let stickyProcessKey: [UInt8]

    init(config: HuddleConfig, generation: Int, upstreams: [UpstreamRuntime], serverBlocks: [ServerBlockRuntime], ticketKeys: TicketKeyRing,
         stickyProcessKey: [UInt8]) {
        self.config = config
        self.stickyProcessKey = stickyProcessKey
        self.generation = generation
        self.upstreams = upstreams
        self.serverBlocks = serverBlocks
        self.ticketKeys = ticketKeys
        var index: [String: Int] = [:]
        var tls: Set<String> = []
        var proxyProtocol = Set<String>()
        for (i, b) in serverBlocks.enumerated() {
            for (a, l) in zip(b.listenAddresses, b.config.listens) {
                index[a.description] = i
                if l.tls { tls.insert(a.description) }
                if l.proxyProtocol { proxyProtocol.insert(a.description) }
            }
        }
        listenIndex = index
        tlsListens = tls
        proxyProtocolListenKeys = proxyProtocol
    }

    /// Every listen address of the config, as `SocketAddress.description`, in config order.
    public var listenKeys: [String] { serverBlocks.flatMap { $0.listenAddresses.map(\.description) } }

    public func upstream(named name: String) -> UpstreamRuntime? { upstreams.first { $0.name == name } }

    /// Every route's rate limiter, in config order (a route in several server blocks appears once per block).
    public var rateLimiters: [RateLimiter] { serverBlocks.flatMap { $0.routes.compactMap(\.rateLimit) } }

    /// 32 random bytes: the sticky-cookie key when the config names none.
    static func randomStickyKey() -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 32)
        precondition(RAND_bytes(&b, 32) == 1, "the system has no randomness for the sticky-cookie key")
        return b
    }

    /// Every cached route's cache, in config order (a prefix may appear once per server block).
    public var routeCaches: [RouteCache] { serverBlocks.flatMap { $0.routes.compactMap(\.cache) } }

    /// Builds a snapshot, reusing server objects (and their counters) and group tables from `previous` where identities match.
    /// `resolve` lines become the servers in `discovered` (by `DiscoveryKey`); servers that drop out go to `archive`,
    /// and one that comes back with the same identity and address is taken from there. `sameConfig` (a discovery
    /// change: `config` is `previous.config`) reuses the listen addresses and TLS contexts instead of building them
    /// again. Resolves names of written servers and listeners (blocking): call off the data path.
    public static func build(_ config: HuddleConfig, generation: Int, previous: RuntimeConfig?, log: @escaping @Sendable (String) -> Void,
                             transitions: @escaping HealthTransitionObserver = { _, _, _, _ in },
                             discovered: [String: [DiscoveredServer]] = [:], archive: ServerArchive? = nil,
                             sameConfig: Bool = false) throws -> RuntimeConfig {
        let wall = Sys.wallClockMs()
        let mono = Sys.monotonicMs()
        let ticketKeys = previous?.ticketKeys ?? TicketKeyRing()
        let stickyProcessKey = previous?.stickyProcessKey ?? randomStickyKey()
        let nowNs = Sys.monotonicNs()
        // One statistics shard per worker (up to 16): a worker's counters never share a cache line with another's.
        let workerCount = max(1, config.workers ?? Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        let shards = min(16, workerCount)
        var nextUID = max((previous?.upstreams.flatMap(\.servers).map(\.uid).max() ?? -1) + 1, archive?.nextUID ?? 0)
        var ups: [UpstreamRuntime] = []
        for (i, written) in config.upstreams.enumerated() {
            let u = written.expanded(discovered: discovered) { identity, line in
                log("upstream \(written.name): \(identity), found for \(line.address.host) (\(line.location)), is already a server of this upstream; skipped")
            }
            let old = previous?.upstream(named: u.name)
            var servers: [ServerRuntime] = []
            for s in u.servers {
                if let o = old?.server(identity: s.identity), o.addressText == s.address.description {
                    // The same server: statistics, health and pooled connections carry over; settings follow the config.
                    let wasDown = old?.config.servers.first(where: { $0.identity == s.identity })?.down ?? false
                    if s.down && !wasDown {
                        o.health.update(set: .disabled, reason: "down in the config", nowWallMs: wall)
                    } else if !s.down && wasDown {
                        o.health.update(clear: .disabled, reason: "no longer down in the config", nowWallMs: wall)
                    }
                    o.follow(s, upstream: u)
                    servers.append(o)
                    continue
                }
                if let o = archive?.take(upstream: u.name, identity: s.identity, addressText: s.address.description) {
                    // Back after leaving (a pod that reappears in DNS): the same object, so its history carries on.
                    if s.down != o.health.flags.contains(.disabled) {
                        _ = o.health.update(set: s.down ? .disabled : [], clear: s.down ? [] : .disabled,
                                            reason: s.down ? "down in the config" : "no longer down in the config", nowWallMs: wall)
                    }
                    o.follow(s, upstream: u)
                    servers.append(o)
                    continue
                }
                var addr: SocketAddress? = nil
                do {
                    addr = try SocketAddress.resolve(host: s.address.host, port: s.address.port).first
                } catch {
                    log("upstream \(u.name): cannot resolve server \(s.address) (\(s.location)): \(error); it stays out of rotation")
                }
                // A new server takes traffic before its first probe unless the check says initial=unhealthy.
                var initial: HealthFlags = []
                if s.down { initial.insert(.disabled) }
                if u.healthCheck?.initiallyUnhealthy == true { initial.insert(.activeDown) }
                let health = ServerHealth(upstream: u.name, server: s.identity, initial: initial, nowWallMs: wall, observer: transitions)
                // A server the first config has takes groups at once; one a reload adds waits membership_settle.
                let groupsFrom = previous == nil ? 0 : mono + u.membershipSettle
                servers.append(ServerRuntime(uid: nextUID, config: s, upstream: u, address: addr, health: health, statShards: shards,
                                             groupsFromMs: groupsFrom))
                nextUID += 1
            }
            if let old, let archive {
                for o in old.servers where !servers.contains(where: { $0 === o }) { archive.add(o, upstream: u.name) }
            }
            let upstreamHealth = old?.health ?? UpstreamHealth(onRefused: log)
            upstreamHealth.configure(members: servers.map(\.health), policy: u.passiveHealth.map {
                EjectionPolicy(failures: $0.failures, ejectionMs: $0.ejection, maxEjectedPercent: $0.maxEjectedPercent, countServerErrors: $0.on5xx)
            })
            var clientTLS: ClientTLSContext? = nil
            if sameConfig {
                clientTLS = old?.tls
            } else if let t = u.tls {
                do {
                    clientTLS = try ClientTLSContext(verify: t.verify, caFile: t.ca, serverName: t.sni)
                } catch {
                    throw ConfigErrors([ConfigError(location: t.location, message: "upstream \(u.name): \(error)")])
                }
            }
            ups.append(UpstreamRuntime(index: i, config: u, servers: servers, groups: old?.groups ?? GroupTable(), health: upstreamHealth,
                                       stats: old?.stats ?? RequestStats(shards: shards), tls: clientTLS,
                                       stickyKey: u.sticky?.key.map { Array($0.utf8) } ?? stickyProcessKey,
                                       queue: old.flatMap { $0.queue.workers.count == workerCount ? $0.queue : nil }
                                           ?? AdmissionQueue(upstream: u.name, workers: workerCount, shards: shards)))
        }
        archive?.nextUID = nextUID
        var blocks: [ServerBlockRuntime] = []
        for (bi, b) in config.servers.enumerated() {
            var routes: [RouteRuntime] = []
            for r in b.routes {
                guard let u = ups.first(where: { $0.name == r.upstream }) else {
                    throw ConfigErrors([ConfigError(location: r.location, message: "route \"\(r.prefix)\" uses undefined upstream \"\(r.upstream)\"")])
                }
                var limiter: RateLimiter? = nil
                if let rl = r.rateLimit {
                    // A reload that keeps the route's limit as it was keeps its buckets (and counters); any change starts afresh.
                    let kept = previous.flatMap { p in
                        bi < p.serverBlocks.count ? p.serverBlocks[bi].routes.first(where: { $0.config.prefix == r.prefix })?.rateLimit : nil
                    }
                    limiter = kept.flatMap { sameLimit($0.config, rl) ? $0 : nil } ?? RateLimiter(config: rl, route: r.prefix, nowNs: nowNs)
                }
                                var cache: RouteCache? = nil
                if let c = r.cache {
                    // The same route (block and prefix) with the same cache settings keeps its stored responses.
                    let old = previous.flatMap { p in bi < p.serverBlocks.count ? p.serverBlocks[bi].routes.first { $0.config.prefix == r.prefix }?.cache : nil }
                    cache = old.flatMap { $0.canServe(c, workers: workerCount) ? $0 : nil }
                        ?? RouteCache(config: c, route: r.prefix, workers: workerCount, statShards: shards)
                }
                routes.append(RouteRuntime(prefix: Array(r.prefix.utf8), config: r, upstream: u, rateLimit: limiter, cache: cache))
            }
            routes.sort { $0.prefix.count > $1.prefix.count }
            if sameConfig, let p = previous?.serverBlocks[bi] {
                blocks.append(ServerBlockRuntime(config: b, routes: routes, listenAddresses: p.listenAddresses, tls: p.tls))
                continue
            }
            var addrs: [SocketAddress] = []
            for l in b.listens {
                let resolved: [SocketAddress]
                do {
                    resolved = try SocketAddress.resolve(host: l.address.host, port: l.address.port)
                } catch {
                    throw ConfigErrors([ConfigError(location: l.location, message: "cannot resolve listen address \(l.address): \(error)")])
                }
                addrs.append(resolved[0])
            }
            var serverTLS: ServerTLSContext? = nil
            if b.listens.contains(where: \.tls), !b.tlsCertificates.isEmpty {
                let versions = b.tlsProtocols.isEmpty ? [TLSVersion.tls12, .tls13] : b.tlsProtocols
                do {
                    serverTLS = try ServerTLSContext(pairs: b.tlsCertificates.map { ($0.certificate, $0.key) },
                                                     minVersion: versions.min() == .tls13 ? TLS1_3_VERSION : TLS1_2_VERSION,
                                                     maxVersion: versions.max() == .tls12 ? TLS1_2_VERSION : TLS1_3_VERSION,
                                                     tickets: ticketKeys)
                } catch {
                    // A certificate that does not load (or a key that does not match) fails the build: at start Huddle
                    // does not start, on reload the running certificates stay.
                    throw ConfigErrors([ConfigError(location: b.tlsCertificates[0].location, message: "\(error)")])
                }
            }
            blocks.append(ServerBlockRuntime(config: b, routes: routes, listenAddresses: addrs, tls: serverTLS))
        }
        return RuntimeConfig(config: config, generation: generation, upstreams: ups, serverBlocks: blocks, ticketKeys: ticketKeys,
                             stickyProcessKey: stickyProcessKey)
    }

    /// The same limit, wherever it is written in the file.
    private static func sameLimit(_ a: RateLimitConfig, _ b: RateLimitConfig) -> Bool {
        a.requests == b.requests && a.perMs == b.perMs && a.burst == b.burst && a.key == b.key
    }
}
