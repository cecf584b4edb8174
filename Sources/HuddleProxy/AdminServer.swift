// The admin HTTP port: JSON views of upstreams, servers and groups, health, and Prometheus metrics.
import HuddleBalancing
import HuddleConfig
import HuddleHTTP
import HuddleIO
import HuddleJSON
import HuddleSys

/// Quoted JSON strings, through the one escaper (HuddleJSON).
enum JSON {
    static func string(_ s: String) -> String { JSONEscaping.quoted(s) }
    static func bytes(_ b: [UInt8]) -> String { JSONEscaping.quoted(bytes: b) }
}

/// Serves the admin endpoints on the control loop (not a worker): admin traffic never competes with proxied requests.
// SAFETY: on the control loop's thread only.
public final class AdminServer: EventHandler {
    let loop: EventLoop
    let proxy: Proxy
    let fd: Int32
    var registration = Registration.none
    let token: String?
    /// Called for POST /api/reload; returns the JSON result.
    public var onReload: (() -> (ok: Bool, json: String))?

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

    // MARK: endpoints

    func respond(method: HTTPMethod, path: String, query: [UInt8], headers: [(String, String)]) -> (Int, String, String) {
        func param(_ name: String) -> String? {
            guard !query.isEmpty else { return nil }
            return query.withUnsafeBytes { b -> String? in
                guard let r = GroupKeyBytes.queryValue(name: Array(name.utf8), query: 0..<b.count, in: b) else { return nil }
                guard let d = GroupKeyBytes.percentDecode(b[r], plusAsSpace: true) else { return nil }
                return String(decoding: d, as: UTF8.self)
            }
        }
        let rt = proxy.runtime
        let now = loop.now
        switch (method, path) {
        case (.get, "/healthz"), (.head, "/healthz"):
            return (200, "text/plain", "ok\n")
        case (.get, "/api/lookup"):
            guard let name = param("upstream"), let key = param("key") else {
                return (400, "application/json", "{\"error\":\"need ?upstream=NAME&key=KEY\"}\n")
            }
            guard let u = rt.upstream(named: name) else {
                return (404, "application/json", "{\"error\":\(JSON.string("no upstream named " + name))}\n")
            }
            let s = u.lookup(key: Array(key.utf8), nowMs: now)
            let server = s.map { JSON.string($0.identity) } ?? "null"
            let address = s.map { JSON.string($0.addressText) } ?? "null"
            return (200, "application/json", "{\"upstream\":\(JSON.string(name)),\"key\":\(JSON.string(key)),\"server\":\(server),\"address\":\(address)}\n")
        case (.get, "/api/groups"):
            guard let name = param("upstream") else {
                return (400, "application/json", "{\"error\":\"need ?upstream=NAME[&top=N]\"}\n")
            }
            guard let u = rt.upstream(named: name) else {
                return (404, "application/json", "{\"error\":\(JSON.string("no upstream named " + name))}\n")
            }
            let top = Int(param("top") ?? "") ?? 20
            let groups = u.groups.top(max(0, min(top, 100_000)), nowMs: now)
            let totals = u.groups.totals(nowMs: now)
            let wall = Sys.wallClockMs()
            var out = "{\"upstream\":\(JSON.string(name)),\"groups\":["
            out += groups.map { g in
                let sinceWall = wall - (now - g.sinceMs)
                return "{\"key\":\(JSON.bytes(g.key)),\"server\":\(JSON.string(g.server)),\"members\":\(g.members),\"since\":\(sinceWall)}"
            }.joined(separator: ",")
            out += "],\"totals\":{\"groups\":\(totals.groups),\"members\":\(totals.members),\"servers\":{"
            out += u.servers.map { s in
                let t = totals.perServer[s.identity] ?? (groups: 0, members: 0)
                return "\(JSON.string(s.identity)):{\"groups\":\(t.groups),\"members\":\(t.members)}"
            }.joined(separator: ",")
            out += "}}}\n"
            return (200, "application/json", out)
        case (.get, "/api/backends"):
            var out = "{\"upstreams\":["
            out += rt.upstreams.map { u in
                var s = "{\"name\":\(JSON.string(u.name)),\"balance\":\(JSON.string(u.config.balance.rawValue)),\"servers\":["
                s += u.servers.map { sv in
                    let lat = Double(sv.latencyEwmaMicros.load(ordering: .relaxed)) / 1000
                    return "{\"address\":\(JSON.string(sv.addressText)),\"name\":\(JSON.string(sv.identity)),\"state\":\(JSON.string(sv.state.name)),\"weight\":\(sv.weight),\"active_connections\":\(sv.activeConnections.load(ordering: .relaxed)),\"in_flight\":\(sv.inFlight.load(ordering: .relaxed)),\"requests_total\":\(sv.requestsTotal.load(ordering: .relaxed)),\"failures_total\":\(sv.failuresTotal.load(ordering: .relaxed)),\"latency_ewma_ms\":\(lat),\"health\":{}}"
                }.joined(separator: ",")
                return s + "]}"
            }.joined(separator: ",")
            return (200, "application/json", out + "]}\n")
        case (.get, "/api/config"):
            let info = proxy.reloadInfo
            return (200, "application/json", "{\"file\":\(JSON.string(rt.config.file)),\"generation\":\(info.generation),\"last_reload\":\(info.lastReloadMs),\"result\":\(JSON.string(info.result))}\n")
        case (.get, "/metrics"):
            return (200, "text/plain; version=0.0.4", metrics(rt))
        case (.post, "/api/reload"):
            guard authorized(headers) else { return (403, "application/json", "{\"error\":\"a valid Bearer token is required\"}\n") }
            guard let r = onReload?() else { return (503, "application/json", "{\"error\":\"reload is not available\"}\n") }
            return (r.ok ? 200 : 400, "application/json", r.json)
        default:
            return (404, "application/json", "{\"error\":\(JSON.string("no such endpoint: " + path))}\n")
        }
    }

    private func authorized(_ headers: [(String, String)]) -> Bool {
        guard let t = token else { return false }
        for (n, v) in headers where n.lowercased() == "authorization" {
            return v == "Bearer " + t
        }
        return false
    }

    /// Every per-server metric, declared once: name, type, help, and how to read it.
    private static let serverMetrics: [(name: String, type: String, help: String, value: @Sendable (ServerRuntime) -> Int)] = [
        ("server_requests_total", "counter", "Requests completed by a backend server.", { $0.requestsTotal.load(ordering: .relaxed) }),
        ("server_failures_total", "counter", "Failed attempts against a backend server.", { $0.failuresTotal.load(ordering: .relaxed) }),
        ("server_in_flight", "gauge", "Requests in flight to a backend server.", { $0.inFlight.load(ordering: .relaxed) }),
        ("server_active_connections", "gauge", "Backend connections in use (requests and tunnels).", { $0.activeConnections.load(ordering: .relaxed) }),
    ]

    /// Process-wide gauges summed over the workers, declared once.
    private static let workerMetrics: [(name: String, help: String, value: @Sendable (Proxy.WorkerStats) -> Int)] = [
        ("client_connections", "Open client connections.", { $0.sessions }),
        ("tunnels", "Open upgraded (WebSocket) tunnels.", { $0.tunnels }),
        ("backend_connections", "Open connections to backends, pooled idle ones included.", { $0.upstreamConnections }),
        ("buffers_in_use", "Pooled I/O buffers lent to connections (idle connections hold none).", { $0.buffersInUse }),
        ("buffers_cached", "Free I/O buffers kept for reuse.", { $0.buffersCached }),
        ("pipes_in_use", "Splice pipes lent to tunnels (idle tunnels hold none).", { $0.pipesInUse }),
        ("pipes_cached", "Free splice pipes kept for reuse.", { $0.pipesCached }),
    ]

    private func metrics(_ rt: RuntimeConfig) -> String {
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) {
            out += "# HELP huddle_\(name) \(help)\n# TYPE huddle_\(name) \(type)\n"
        }
        for m in Self.serverMetrics {
            family(m.name, m.type, m.help)
            for u in rt.upstreams {
                for s in u.servers {
                    out += "huddle_\(m.name){upstream=\(JSON.string(u.name)),server=\(JSON.string(s.identity))} \(m.value(s))\n"
                }
            }
        }
        family("groups", "gauge", "Live groups per upstream.")
        let now = loop.now
        for u in rt.upstreams {
            out += "huddle_groups{upstream=\(JSON.string(u.name))} \(u.groups.totals(nowMs: now).groups)\n"
        }
        let stats = proxy.workerStats()
        for m in Self.workerMetrics {
            family(m.name, "gauge", m.help)
            out += "huddle_\(m.name) \(stats.map(m.value).reduce(0, +))\n"
        }
        return out
    }
}

/// One admin request: read the head, answer, close.
// SAFETY: on the control loop's thread only.
final class AdminConnection: EventHandler {
    unowned let server: AdminServer
    let fd: Int32
    var registration = Registration.none
    var buffer: [UInt8] = []
    var parser = HTTPRequestParser(maxHeaderSize: 16384)
    var head = HTTPRequestHead()
    var out: [UInt8] = []
    var outIndex = 0
    var done = false

    init(server: AdminServer, fd: Int32) {
        self.server = server
        self.fd = fd
    }

    func handleEvent(_ events: UInt32) {
        if out.isEmpty {
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let r = chunk.withUnsafeMutableBytes { p in try? Sys.read(fd, p.baseAddress!, p.count) }
                guard let r else { close(); return }
                switch r {
                case .wouldBlock:
                    break
                case .done(0):
                    close()
                    return
                case .done(let n):
                    buffer.append(contentsOf: chunk[0..<n])
                    continue
                }
                break
            }
            let result = buffer.withUnsafeBytes { parser.parse($0, into: &head) }
            switch result {
            case .needMore:
                if buffer.count > 16384 { answer(431, "text/plain", "request head too large\n") }
                else { return }
            case .error(let e):
                answer(e.status, "text/plain", "\(e)\n")
            case .complete:
                let (path, query, headers): (String, [UInt8], [(String, String)]) = buffer.withUnsafeBytes { b in
                    let p = String(decoding: b[head.path], as: UTF8.self)
                    let q = head.query.map { Array(b[$0]) } ?? []
                    let h = head.headers.map { (String(decoding: b[$0.name], as: UTF8.self), String(decoding: b[$0.value], as: UTF8.self)) }
                    return (p, q, h)
                }
                let (status, type, body) = server.respond(method: head.method, path: path, query: query, headers: headers)
                answer(status, type, body)
            }
        }
        flush()
    }

    private func answer(_ status: Int, _ type: String, _ body: String) {
        let b = Array(body.utf8)
        let h = "HTTP/1.1 \(status) \(HTTPStatus.reasonPhrase(status))\r\nContent-Type: \(type)\r\nContent-Length: \(b.count)\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
        out = Array(h.utf8) + (head.method == .head ? [] : b)
    }

    private func flush() {
        while outIndex < out.count {
            let r = out.withUnsafeBytes { p in try? Sys.write(fd, p.baseAddress! + outIndex, p.count - outIndex) }
            guard let r else { close(); return }
            switch r {
            case .wouldBlock: return
            case .done(let n): outIndex += n
            }
        }
        if !out.isEmpty {
            Sys.shutdown(fd, .write)
            close()
        }
    }

    private func close() {
        guard !done else { return }
        done = true
        server.loop.deregister(fd: fd, registration: registration)
        Sys.close(fd)
    }
}
