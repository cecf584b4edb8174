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
    /// The host part as written (the name a TLS backend is checked against unless `tls sni=` says otherwise).
    public let host: String
    public let address: SocketAddress?
    /// The weight in the newest config (a reload that changes only the weight keeps the server and its state).
    public var weight: Int { weightValue.load(ordering: .relaxed) }
    let weightValue: Atomic<Int>
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
    var pooling: (keepalive: Int, keepaliveTimeoutMs: Int64) {
        (keepalive.load(ordering: .relaxed), keepaliveTimeoutMs.load(ordering: .relaxed))
    }

    init(uid: Int, config: ServerConfig, upstream: UpstreamConfig, address: SocketAddress?, health: ServerHealth, statShards: Int) {
        self.uid = uid
        self.health = health
        stats = RequestStats(shards: statShards)
        keepalive = Atomic(upstream.keepalive)
        keepaliveTimeoutMs = Atomic(upstream.keepaliveTimeout)
        identity = config.identity
        addressText = config.address.description
        host = config.address.host
        self.address = address
        weightValue = Atomic(config.weight)
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
    /// The load p2c compares: requests in flight, plus a penalty for a failure streak, so a server that fails fast
    /// does not look idle and attract traffic before passive health ejects it. The penalty fades within seconds of
    /// the last failure (`ServerHealth.failurePenalty`), so the server is tried again.
    @inline(__always) public func balancingLoad(nowMs: Int64) -> Int {
        inFlight.load(ordering: .relaxed) + health.failurePenalty(nowMs: nowMs)
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
    let index: Int

    init(index: Int, config: UpstreamConfig, servers: [ServerRuntime], groups: GroupTable, health: UpstreamHealth, stats: RequestStats,
         tls: ClientTLSContext?) {
        self.tls = tls
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
        guard let i = hash.owner(keyHash: h, isEligible: { servers[$0].isAvailable }) else { return nil }
        return servers[i]
    }

    func server(identity: String) -> ServerRuntime? { servers.first { $0.identity == identity } }

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

    /// "a: unhealthy, b: ejected": what keeps each server out, for the log.
    var stateSummary: String {
        servers.map { "\($0.identity): \($0.address == nil ? "unresolved" : $0.state.name)" }.joined(separator: ", ")
    }
}

/// A route resolved against the snapshot's upstreams.
public struct RouteRuntime: Sendable {
    public let prefix: [UInt8]
    public let config: RouteConfig
    public let upstream: UpstreamRuntime
    /// The route's response cache; nil when the route has no `cache`.
    public let cache: RouteCache?
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

    init(config: HuddleConfig, generation: Int, upstreams: [UpstreamRuntime], serverBlocks: [ServerBlockRuntime], ticketKeys: TicketKeyRing) {
        self.config = config
        self.generation = generation
        self.upstreams = upstreams
        self.serverBlocks = serverBlocks
        self.ticketKeys = ticketKeys
        var index: [String: Int] = [:]
        var tls: Set<String> = []
        for (i, b) in serverBlocks.enumerated() {
            for (j, a) in b.listenAddresses.enumerated() {
                index[a.description] = i
                if b.config.listens[j].tls { tls.insert(a.description) }
            }
        }
        listenIndex = index
        tlsListens = tls
    }

    /// Every listen address of the config, as `SocketAddress.description`, in config order.
    public var listenKeys: [String] { serverBlocks.flatMap { $0.listenAddresses.map(\.description) } }

    public func upstream(named name: String) -> UpstreamRuntime? { upstreams.first { $0.name == name } }

    /// Every cached route's cache, in config order (a prefix may appear once per server block).
    public var routeCaches: [RouteCache] { serverBlocks.flatMap { $0.routes.compactMap(\.cache) } }

    /// Builds a snapshot, reusing server objects (and their counters) and group tables from `previous` where identities match.
    /// Resolves names (blocking): call off the data path.
    public static func build(_ config: HuddleConfig, generation: Int, previous: RuntimeConfig?, log: @escaping @Sendable (String) -> Void,
                             transitions: @escaping HealthTransitionObserver = { _, _, _, _ in }) throws -> RuntimeConfig {
        let wall = Sys.wallClockMs()
        let ticketKeys = previous?.ticketKeys ?? TicketKeyRing()
        // One statistics shard per worker (up to 16): a worker's counters never share a cache line with another's.
        let workerCount = max(1, config.workers ?? Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        let shards = min(16, workerCount)
        var nextUID = (previous?.upstreams.flatMap(\.servers).map(\.uid).max() ?? -1) + 1
        var ups: [UpstreamRuntime] = []
        for (i, u) in config.upstreams.enumerated() {
            let old = previous?.upstream(named: u.name)
            var servers: [ServerRuntime] = []
            for s in u.servers {
                if let o = old?.server(identity: s.identity), o.addressText == s.address.description {
                    // The same server: statistics, health and pooled connections carry over; settings follow the config.
                    o.weightValue.store(s.weight, ordering: .relaxed)
                    let wasDown = old?.config.servers.first(where: { $0.identity == s.identity })?.down ?? false
                    if s.down && !wasDown {
                        o.health.update(set: .disabled, reason: "down in the config", nowWallMs: wall)
                    } else if !s.down && wasDown {
                        o.health.update(clear: .disabled, reason: "no longer down in the config", nowWallMs: wall)
                    }
                    o.keepalive.store(u.keepalive, ordering: .relaxed)
                    o.keepaliveTimeoutMs.store(u.keepaliveTimeout, ordering: .relaxed)
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
                servers.append(ServerRuntime(uid: nextUID, config: s, upstream: u, address: addr, health: health, statShards: shards))
                nextUID += 1
            }
            let upstreamHealth = old?.health ?? UpstreamHealth(onRefused: log)
            upstreamHealth.configure(members: servers.map(\.health), policy: u.passiveHealth.map {
                EjectionPolicy(failures: $0.failures, ejectionMs: $0.ejection, maxEjectedPercent: $0.maxEjectedPercent, countServerErrors: $0.on5xx)
            })
            var clientTLS: ClientTLSContext? = nil
            if let t = u.tls {
                do {
                    clientTLS = try ClientTLSContext(verify: t.verify, caFile: t.ca, serverName: t.sni)
                } catch {
                    throw ConfigErrors([ConfigError(location: t.location, message: "upstream \(u.name): \(error)")])
                }
            }
            ups.append(UpstreamRuntime(index: i, config: u, servers: servers, groups: old?.groups ?? GroupTable(), health: upstreamHealth,
                                       stats: old?.stats ?? RequestStats(shards: shards), tls: clientTLS))
        }
        var blocks: [ServerBlockRuntime] = []
        for (bi, b) in config.servers.enumerated() {
            var routes: [RouteRuntime] = []
            for r in b.routes {
                guard let u = ups.first(where: { $0.name == r.upstream }) else {
                    throw ConfigErrors([ConfigError(location: r.location, message: "route \"\(r.prefix)\" uses undefined upstream \"\(r.upstream)\"")])
                }
                var cache: RouteCache? = nil
                if let c = r.cache {
                    // The same route (block and prefix) with the same cache settings keeps its stored responses.
                    let old = previous.flatMap { p in bi < p.serverBlocks.count ? p.serverBlocks[bi].routes.first { $0.config.prefix == r.prefix }?.cache : nil }
                    cache = old.flatMap { $0.canServe(c, workers: workerCount) ? $0 : nil }
                        ?? RouteCache(config: c, route: r.prefix, workers: workerCount, statShards: shards)
                }
                routes.append(RouteRuntime(prefix: Array(r.prefix.utf8), config: r, upstream: u, cache: cache))
            }
            routes.sort { $0.prefix.count > $1.prefix.count }
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
        return RuntimeConfig(config: config, generation: generation, upstreams: ups, serverBlocks: blocks, ticketKeys: ticketKeys)
    }
}
