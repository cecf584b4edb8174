// The validated, immutable configuration snapshot that the data plane runs on.
// Built off the hot path by `ConfigParser`; every field has its default filled in.

/// Where something was written in a config file (1-based line and column).
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }
    public var description: String { "\(file):\(line):\(column)" }
}

/// Durations are kept in milliseconds.
public typealias Milliseconds = Int64

public struct ListenAddress: Sendable, Hashable, CustomStringConvertible {
    /// Host as written: an IPv4 literal, an IPv6 literal without brackets, or a name such as `localhost`.
    public var host: String
    public var port: UInt16
    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

public enum LogFormat: String, Sendable { case combined, json }
public enum LogLevel: Int, Sendable, Comparable {
    case debug = 0, info, warn, error
    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }
}

public enum LogTarget: Sendable, Hashable {
    case off
    case stderr
    case stdout
    case file(String)
}

public struct AccessLogConfig: Sendable {
    public var target: LogTarget = .stderr
    public var format: LogFormat = .combined
    public init() {}
}

public struct ErrorLogConfig: Sendable {
    public var target: LogTarget = .stderr
    public var level: LogLevel = .info
    public init() {}
}

public struct AdminConfig: Sendable {
    public var address: ListenAddress
    public var token: String?
    public var location: SourceLocation
    public init(address: ListenAddress, token: String?, location: SourceLocation) {
        self.address = address
        self.token = token
        self.location = location
    }
}

public enum BalanceAlgorithm: String, Sendable { case p2c, hash, roundRobin = "round_robin" }

/// The PROXY protocol version an upstream's connections start with (HAProxy's proxy-protocol.txt).
public enum ProxyProtocolVersion: String, Sendable { case v1, v2 }

public struct ServerConfig: Sendable {
    /// As written: `host:port`.
    public var address: ListenAddress
    public var weight: Int = 1
    /// `max_conns=N`: at most N requests in flight on this server at once (across every worker); beyond it requests
    /// wait in the upstream's queue. 0: unlimited.
    public var maxConns: Int = 0
    /// Stable identity for hashing: `name=` if given, else the address exactly as written in the config.
    public var identity: String
    /// Whether `name=` was written (discovered servers then carry it as a prefix of their identities).
    public var named = false
    /// `resolve`: the host is a DNS name re-resolved by its TTL; every address it has becomes a server.
    public var resolve: Bool = false
    /// `resolve service`: the host is an SRV name (`_http._tcp.web.ns.svc.cluster.local`, no port): every target of
    /// the lowest priority becomes a server, with the record's port and weight.
    public var service: Bool = false
    /// Set on the servers discovery makes out of a `resolve` line: the DNS name they were found under (the SRV
    /// target for a service), the name TLS checks and sends as SNI; nil for servers written in the config.
    public var discoveredName: String? = nil
    /// `backup` and `down` are accepted as in nginx.
    public var backup: Bool = false
    public var down: Bool = false
    public var location: SourceLocation
    public init(address: ListenAddress, identity: String, location: SourceLocation) {
        self.address = address
        self.identity = identity
        self.location = location
    }
}

/// `resolver ADDR... [valid=D] [hold=D] [timeout=D]`: the nameservers `resolve` servers are looked up with.
public struct ResolverConfig: Sendable {
    /// IP literals with their port (53 unless written).
    public var nameservers: [ListenAddress]
    /// Caps how long an answer is used (its TTL otherwise), as nginx's `valid=`.
    public var valid: Milliseconds? = nil
    /// How long the last good set of servers is kept while lookups fail or come back empty.
    public var hold: Milliseconds = ResolverConfig.defaultHold
    /// Per attempt; a query is tried twice.
    public var timeout: Milliseconds = 2000
    public var location: SourceLocation
    public static let defaultHold: Milliseconds = 60_000
    public init(nameservers: [ListenAddress], location: SourceLocation) {
        self.nameservers = nameservers
        self.location = location
    }
}

public struct HealthCheckConfig: Sendable {
    /// The GET path; nil for `health_check tcp` (a completed connect is healthy).
    public var path: String?
    public var interval: Milliseconds = 2000
    public var timeout: Milliseconds = 1000
    public var rise: Int = 2
    public var fall: Int = 3
    /// Inclusive status ranges that count as healthy.
    public var expect: [ClosedRange<Int>] = [200...399]
    /// The Host header of a probe; nil: the server's address as written.
    public var host: String? = nil
    /// `initial=unhealthy`: a new server takes no traffic until it passes `rise` checks.
    public var initiallyUnhealthy = false
    public init(path: String?) { self.path = path }
}

public struct PassiveHealthConfig: Sendable {
    public var failures: Int = 5
    public var ejection: Milliseconds = 30_000
    /// Percent, 0...100.
    public var maxEjectedPercent: Int = 50
    /// `on_5xx=on`: a 5xx answer counts as a failure.
    public var on5xx = false
    public init() {}
}

public struct UpstreamConfig: Sendable {
    public var name: String
    public var balance: BalanceAlgorithm = .p2c
    /// nil: no bounded loads (pure hash owner).
    public var hashBalanceFactor: Double? = nil
    public var groupLinger: Milliseconds = 5000
    /// What happens to live groups whose server is no longer the placement function's answer (`rebalance`).
    public var rebalance: RebalanceMode = .migrate(rate: RebalanceMode.defaultRate)
    /// How long a newly seen server (or one back after being out) waits before it takes new groups or migrations
    /// (`membership_settle`).
    public var membershipSettle: Milliseconds = 5000
    public var servers: [ServerConfig] = []
    public var healthCheck: HealthCheckConfig? = nil
    public var passiveHealth: PassiveHealthConfig? = nil
    public var connectTimeout: Milliseconds = 2000
    public var responseTimeout: Milliseconds = 60_000
    /// Idle pooled connections per server per worker.
    public var keepalive: Int = 64
    /// How long an idle pooled connection is kept.
    public var keepaliveTimeout: Milliseconds = 60_000
    public var retries: Int = 1
    /// `queue_timeout`: how long a request may wait in the queue for a server below its `max_conns`, then 503. nil:
    /// the upstream's `connect_timeout` (as HAProxy's `timeout queue` falls back to `timeout connect`).
    public var queueTimeout: Milliseconds? = nil
    /// The queue timeout in effect.
    public var effectiveQueueTimeout: Milliseconds { queueTimeout ?? connectTimeout }
    /// Whether some server has `max_conns` (only then do requests of this upstream take the queue's path).
    public var hasMaxConns: Bool { servers.contains { $0.maxConns > 0 } }
    /// TLS to the servers; nil: plain TCP.
    public var tls: UpstreamTLSConfig? = nil
    /// `send_proxy_protocol v1|v2`: every new connection to this upstream's servers starts with a PROXY protocol header
    /// naming the client; nil: none.
    public var sendProxyProtocol: ProxyProtocolVersion? = nil
    /// `sticky cookie NAME ...`: a client keeps its server through a cookie; nil: every request is balanced.
    public var sticky: StickyCookieConfig? = nil
    public var location: SourceLocation
    public init(name: String, location: SourceLocation) {
        self.name = name
        self.location = location
    }
}

/// `rebalance migrate rate=N` (default) or `rebalance keep`.
public enum RebalanceMode: Sendable, Equatable {
    /// Misplaced live groups are moved, `rate` groups per second, their members closed with WebSocket Close 1012.
    case migrate(rate: Double)
    /// Live groups stay on their server until they empty (safe with a single Huddle replica only).
    case keep

    public static let defaultRate = 20.0

    public var isMigrate: Bool { if case .migrate = self { return true } else { return false } }
    public var rate: Double? { if case .migrate(let r) = self { return r } else { return nil } }
}

/// The `SameSite` attribute of a cookie Huddle sets.
public enum CookieSameSite: String, Sendable, Equatable {
    case strict = "Strict", lax = "Lax", none = "None"
}

/// `sticky cookie NAME [max_age=D] [secure] [httponly] [samesite=strict|lax|none] [key=SECRET]` in an upstream: the
/// response to a request that had no valid cookie (or whose server cannot take it) sets cookie NAME, whose value names
/// the server that answered (an HMAC of its identity, never its address); later requests carrying it go there while
/// that server takes traffic.
public struct StickyCookieConfig: Sendable, Equatable {
    public var name: String
    /// `Max-Age` in milliseconds (whole seconds are sent); nil: a session cookie.
    public var maxAge: Milliseconds? = nil
    public var secure = false
    public var httpOnly = false
    public var sameSite: CookieSameSite? = nil
    /// The HMAC key as written; nil: a random key made at start (cookies then only mean something to this process).
    public var key: String? = nil
    public var location: SourceLocation
    public init(name: String, location: SourceLocation) {
        self.name = name
        self.location = location
    }
}

/// What a rate limit counts requests by.
public enum RateLimitKey: Sendable, Hashable {
    /// The client's IP address (the peer of the connection).
    case ip
    /// A request header's value (verbatim); requests without it are counted by their IP.
    case header(String)
    /// A cookie's value; requests without it are counted by their IP.
    case cookie(String)
    /// The route's group key; requests without one are counted by their IP.
    case group
}

/// `rate_limit RATE [burst=N] [key=ip|header:NAME|cookie:NAME|group]` in a route: a token bucket per key.
public struct RateLimitConfig: Sendable, Equatable {
    /// The rate as written: `requests` per `perMs` milliseconds (`100/s` is 100 per 1000).
    public var requests: Int
    public var perMs: Milliseconds
    /// The bucket's size: how many requests may arrive at once; it starts full.
    public var burst: Int = 1
    public var key: RateLimitKey = .ip
    public var location: SourceLocation
    public init(requests: Int, perMs: Milliseconds, location: SourceLocation) {
        self.requests = requests
        self.perMs = perMs
        self.location = location
    }

    /// Microseconds between two requests at the rate (one token's worth), at least 1.
    public var intervalMicros: Int64 {
        max(1, (perMs * 1000 + Int64(requests) / 2) / Int64(requests))
    }

    /// The rate as written: `100/s`.
    public var rateText: String {
        "\(requests)/" + (perMs == 1000 ? "s" : perMs == 60_000 ? "m" : "h")
    }
}

public enum GroupKeySource: Sendable, Hashable {
    /// 1-based path segment: `/rooms/{group}/...` is `path 2`.
    case path(Int)
    case header(String)
    case cookie(String)
    case query(String)
}

public enum GroupKeyMissing: String, Sendable { case reject, balance }

/// `priority N` or `priority header NAME` in a route: the class of its requests in an upstream's queue (higher first,
/// first in first out within a class).
public enum RoutePriority: Sendable, Equatable {
    case fixed(Int)
    /// The header's integer value, clamped to `RoutePriority.range`; 0 when the header is absent or not an integer.
    case header(String)

    /// HAProxy's priority classes span -2047...2047 too (there lower goes first; here higher does).
    public static let range = -2047...2047
}

public struct RouteConfig: Sendable {
    public var prefix: String
    public var upstream: String
    public var groupKeys: [GroupKeySource] = []
    public var groupKeyMissing: GroupKeyMissing = .reject
    /// Upgrade protocols (lower-case) that may be tunnelled; default ["websocket"].
    public var allowUpgrades: [String] = ["websocket"]
    /// nil: no rate limit on this route.
    public var rateLimit: RateLimitConfig? = nil
    /// `cache ...`: responses of this route are cached; nil: no cache.
    public var cache: CacheConfig? = nil
    /// The class of this route's requests in its upstream's queue; `.fixed(0)` unless `priority` says otherwise.
    public var priority: RoutePriority = .fixed(0)
    public var location: SourceLocation
    public init(prefix: String, upstream: String, location: SourceLocation) {
        self.prefix = prefix
        self.upstream = upstream
        self.location = location
    }
}

public struct ListenConfig: Sendable {
    public var address: ListenAddress
    public var tls: Bool = false
    /// `proxy_protocol`: every connection must open with a PROXY protocol header (v1 or v2), whose source address is
    /// then the client's.
    public var proxyProtocol: Bool = false
    public var location: SourceLocation
    public init(address: ListenAddress, location: SourceLocation) {
        self.address = address
        self.location = location
    }
}

/// `gzip on|off [min_length=SIZE] [level=1..9] [types=TYPE,TYPE...]`: compress responses on their way to the client.
public struct GzipConfig: Sendable, Equatable {
    public static let defaultTypes = ["text/html", "text/plain", "application/json"]

    public var enabled: Bool = false
    /// Responses whose Content-Length is below this are passed on as they are (unknown lengths are compressed).
    public var minLength: Int = 1024
    /// zlib compression level, 1 (fastest) to 9 (smallest).
    public var level: Int = 5
    /// Media types (`type/subtype`, lower-case, no parameters) that are compressed; `*` matches every type.
    public var types: [String] = GzipConfig.defaultTypes
    public init() {}
}

/// `cache [size=SIZE] [ttl=D] [max_entry=SIZE] [stale_if_error=D] [collapse_timeout=D] [shared=on|off]` in a route:
/// a response cache with collapsed forwarding (README.md, "Response cache"; docs/ARCHITECTURE.md).
public struct CacheConfig: Sendable, Equatable {
    /// The memory bound of the route's cache (stored heads, bodies and keys), in bytes.
    public var size: Int64 = 64 << 20
    /// Freshness of a storable response that gives none (no max-age, s-maxage or Expires); 0: such responses are not
    /// stored.
    public var ttl: Milliseconds = 0
    /// The largest response (head and body) that is stored; a larger one is passed through and its collapsed waiters
    /// fetch their own. Never more than `size`.
    public var maxEntry: Int64 = 1 << 20
    /// How long past its freshness a stored response may still answer when the backend fails (5xx, connect failure,
    /// timeout), unless the response's own `stale-if-error` says otherwise; 0: only where the response says so.
    public var staleIfError: Milliseconds = 0
    /// How long a request waits for an identical one's backend answer before it goes to the backend itself; 0: no
    /// collapsing.
    public var collapseTimeout: Milliseconds = 5000
    /// One cache for every worker (on), or one per worker with `size / workers` each (off).
    public var shared = true
    public var location: SourceLocation
    public init(location: SourceLocation) { self.location = location }

    /// `max_entry` as it applies: never above `size`.
    public var effectiveMaxEntry: Int64 { min(maxEntry, size) }
}

/// A certificate chain (PEM, leaf first) and its private key, served to clients whose SNI names it.
public struct TLSCertificatePair: Sendable, Equatable {
    public var certificate: String
    public var key: String
    public var location: SourceLocation
    public init(certificate: String, key: String, location: SourceLocation) {
        self.certificate = certificate
        self.key = key
        self.location = location
    }
}

public enum TLSVersion: String, Sendable, Comparable, CaseIterable {
    case tls12 = "TLSv1.2"
    case tls13 = "TLSv1.3"
    public static func < (a: TLSVersion, b: TLSVersion) -> Bool { a == .tls12 && b == .tls13 }
}

/// `tls verify= sni= ca=` in an upstream: Huddle talks TLS to its servers.
public struct UpstreamTLSConfig: Sendable, Equatable {
    /// Check the server's certificate chain and name (default on).
    public var verify = true
    /// The name sent as SNI and checked against the certificate; nil: the server's host as written.
    public var sni: String? = nil
    /// CA bundle (PEM) to verify against; nil: the system's trust store.
    public var ca: String? = nil
    public var location: SourceLocation
    public init(location: SourceLocation) { self.location = location }
}

public struct ServerBlockConfig: Sendable {
    public var listens: [ListenConfig] = []
    /// `tls_certificate` / `tls_certificate_key` pairs, in order; the first is served when no SNI name matches.
    public var tlsCertificates: [TLSCertificatePair] = []
    public var tlsProtocols: [TLSVersion] = [.tls12, .tls13]
    public var tlsHandshakeTimeout: Milliseconds = 10_000
    public var headerTimeout: Milliseconds = 10_000
    public var idleTimeout: Milliseconds = 60_000
    public var tunnelIdleTimeout: Milliseconds = 3_600_000
    public var maxHeaderSize: Int = 16 * 1024
    /// 0 means unlimited.
    public var maxBodySize: Int64 = 0
    public var gzip = GzipConfig()
    /// Routes sorted by prefix length, longest first.
    public var routes: [RouteConfig] = []
    public var location: SourceLocation
    public init(location: SourceLocation) { self.location = location }
}

public struct HuddleConfig: Sendable {
    /// Path of the file this came from ("<demo>" for the built-in demo).
    public var file: String
    /// nil means `auto`: one per core.
    public var workers: Int? = nil
    public var shutdownTimeout: Milliseconds = 30_000
    /// Cap on open client connections per worker.
    public var maxConnectionsPerWorker: Int = 10_000
    public var accessLog = AccessLogConfig()
    public var errorLog = ErrorLogConfig()
    public var admin: AdminConfig? = nil
    /// Nil: /etc/resolv.conf's nameservers and search list, the default hold and timeout.
    public var resolver: ResolverConfig? = nil
    /// `reload_on_change on`: reload when the config file changes (its directory is watched).
    public var reloadOnChange = false
    /// In file order.
    public var upstreams: [UpstreamConfig] = []
    public var servers: [ServerBlockConfig] = []
    public init(file: String) { self.file = file }

    public func upstream(named name: String) -> UpstreamConfig? {
        upstreams.first { $0.name == name }
    }

    /// Whether any server is found through DNS (`resolve`): then the resolver thread runs.
    public var usesDiscovery: Bool { upstreams.contains { $0.servers.contains(where: \.resolve) } }
}

/// One problem found in a config file.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public var location: SourceLocation
    /// What was expected, e.g. "expected a duration such as 250ms, 2s, 5m or 1h, found \"2x\"".
    public var message: String
    public init(location: SourceLocation, message: String) {
        self.location = location
        self.message = message
    }
    /// `FILE:LINE:COLUMN: error: MESSAGE`
    public var description: String { "\(location): error: \(message)" }
}

/// All problems found; parsing continues after an error where it can, so one run reports many.
public struct ConfigErrors: Error, Sendable, CustomStringConvertible {
    public var errors: [ConfigError]
    public init(_ errors: [ConfigError]) { self.errors = errors }
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}
