// The admin HTTP port: JSON views of upstreams, servers, groups and workers, health, reload, Prometheus metrics.
import HuddleConfig
import HuddleIO
import HuddleProxy
import HuddleSys

/// Serves the admin endpoints on the control loop (not a worker): admin traffic never competes with proxied requests.
/// Every answer is computed from shared snapshots and atomics; nothing here waits for a worker.
// SAFETY: on the control loop's thread only.
public final class AdminServer: EventHandler {
    let loop: EventLoop
    let proxy: Proxy
    let fd: Int32
    var registration = Registration.none
    let token: String?
    /// Called for `POST /api/reload` (with a valid token); the answer is rendered from its outcome.
    public var onReload: (() -> ReloadOutcome)?

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
            let c = AdminConnection(server: self, fd: cfd)
            do {
                c.registration = try loop.register(fd: cfd, handler: c)
            } catch {
                Sys.close(cfd)
                continue
            }
            c.handleEvent(Events.readable)
        }
    }

    // MARK: routing

    func respond(_ request: AdminRequest) -> AdminResponse {
        switch (request.method, request.path) {
        case (.get, "/"):
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
        case (.get, "/metrics"):
            return AdminResponse(status: 200, contentType: "text/plain; version=0.0.4", body: Array(metricsText().utf8))
        case (.post, "/api/reload"):
            guard authorized(request.authorization) else { return .error(403, "a valid Bearer token is required") }
            guard let reload = onReload else { return .error(503, "reload is not available") }
            let outcome = reload()
            return .json(outcome.httpStatus) { outcome.write(to: &$0) }
        default:
            return .error(404, "no such endpoint: " + request.path)
        }
    }

    private func authorized(_ authorization: String?) -> Bool {
        guard let t = token, let a = authorization else { return false }
        return a == "Bearer " + t
    }
}
