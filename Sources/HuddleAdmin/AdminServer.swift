// The admin HTTP port: JSON views of upstreams, servers, groups and workers, health, reload, drain/enable, Prometheus
// metrics and the dashboard.
import HuddleConfig
import HuddleIO
import HuddleProxy
import HuddleSys

/// Serves the admin endpoints on the control loop (not a worker): admin traffic never competes with proxied requests.
/// Every answer is computed from shared snapshots and atomics; nothing here waits for a worker. Connections are
/// keep-alive (pipelined requests answered in order) and non-blocking, so a slow or idle client never holds the loop.
// SAFETY: on the control loop's thread only.
public final class AdminServer: EventHandler {
    let loop: EventLoop
    let proxy: Proxy
    let fd: Int32
    var registration = Registration.none
    let token: String?
    /// Called for `POST /api/reload` (with a valid token); the answer is rendered from its outcome.
    public var onReload: (() -> ReloadOutcome)?
    /// A connection that completes no request for this long after connecting or after its previous answer is closed.
    public var idleTimeoutMs: Int64 = 5000
    /// Admin connections open at once; more are accepted and closed at once (the port must not eat the descriptors
    /// the proxy needs).
    public var maxConnections = 256
    var openConnections = 0

    public init(loop: EventLoop, proxy: Proxy, config: AdminConfig) throws {
        self.loop = loop
        self.proxy = proxy
        token = config.token
        guard let addr = try SocketAddress.resolve(host: config.address.host, port: config.address.port).first else {
            throw ConfigErrors([ConfigError(location: config.location, message: "cannot resolve admin address \(config.address)")])
        }
        do {
            fd = try Sockets.listen(on: addr, reusePort: false, backlog: 128)
        } catch {
            throw ConfigErrors([ConfigError(location: config.location, message: "cannot listen on admin address \(addr): \(error)")])
        }
        registration = try loop.register(fd: fd, events: Events.readable | Events.edgeTriggered, handler: self)
    }

    public func handleEvent(_ events: UInt32) {
        while true {
            guard let r = try? Sys.accept(fd), case .done(let (cfd, _)) = r else { return }
            guard openConnections < maxConnections else {
                Sys.close(cfd)
                continue
            }
            let c = AdminConnection(server: self, fd: cfd)
            do {
                c.registration = try loop.register(fd: cfd, handler: c)
            } catch {
                Sys.close(cfd)
                continue
            }
            openConnections += 1
            c.start()
        }
    }

    // MARK: routing

    func respond(_ request: AdminRequest) -> AdminResponse {
        switch (request.method, request.path) {
        case (.get, "/"), (.head, "/"):
            return dashboard()
        case (.get, "/healthz"), (.head, "/healthz"):
            return .text(200, "ok\n")
        case (.get, "/api/lookup"):
            return lookup(request.query)
        case (.get, "/api/groups"):
            return groups(request.query)
        case (.get, "/api/backends"):
            return backends()
        case (.get, "/api/workers"):
            return workers()
        case (.get, "/api/config"):
            return configInfo()
        case (.get, "/metrics"), (.head, "/metrics"):
            return AdminResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: Array(metricsText().utf8))
        case (.post, "/api/reload"):
            if let denied = checkToken(request.authorization) { return denied }
            guard let reload = onReload else { return .error(503, "reload is not available") }
            let outcome = reload()
            return .json(outcome.httpStatus) { outcome.write(to: &$0) }
        case (.post, "/api/servers/drain"):
            if let denied = checkToken(request.authorization) { return denied }
            return serverAction(.drain, request.query)
        case (.post, "/api/servers/enable"):
            if let denied = checkToken(request.authorization) { return denied }
            return serverAction(.enable, request.query)
        case (.post, "/api/cache/purge"):
            if let denied = checkToken(request.authorization) { return denied }
            return purgeCache(request.query)
        case (_, "/api/reload"), (_, "/api/servers/drain"), (_, "/api/servers/enable"), (_, "/api/cache/purge"):
            return AdminResponse.error(405, "use POST").with("Allow", "POST")
        default:
            return .error(404, "no such endpoint: " + request.path)
        }
    }

    /// Changes need the configured token: without one configured they are refused (403), with one configured a
    /// missing or wrong `Authorization: Bearer TOKEN` is 401. Nil when the request may go on.
    func checkToken(_ authorization: String?) -> AdminResponse? {
        guard let t = token else {
            return .error(403, "changes through the admin port are disabled: no admin token is configured (admin ADDRESS { token \"...\"; })")
        }
        guard let a = authorization, AdminAuth.bearerMatches(a, token: t) else {
            return AdminResponse.error(401, "a valid Authorization: Bearer token is required").with("WWW-Authenticate", "Bearer realm=\"huddle-admin\"")
        }
        return nil
    }
}

enum AdminAuth {
    /// Whether `authorization` is `Bearer TOKEN` (the scheme case-insensitive, RFC 9110 11.1) with exactly `token`,
    /// compared in time that does not depend on where the first difference is.
    static func bearerMatches(_ authorization: String, token: String) -> Bool {
        let a = Array(authorization.utf8)
        let scheme = Array("bearer ".utf8)
        guard a.count >= scheme.count else { return false }
        for i in 0..<scheme.count where (a[i] | 0x20) != scheme[i] { return false }
        var given = a[scheme.count...].drop { $0 == 0x20 }
        while given.last == 0x20 { given = given.dropLast() }
        let want = Array(token.utf8)
        var diff = UInt8(given.count == want.count ? 0 : 1)
        let g = Array(given)
        for i in 0..<want.count { diff |= want[i] ^ (i < g.count ? g[i] : 0) }
        return diff == 0 && !want.isEmpty
    }
}
