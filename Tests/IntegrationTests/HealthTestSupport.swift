// Shared by HealthCheckTests and PassiveHealthTests: backends that count what they are asked (peers/health_backend.py)
// and can be stopped, restarted on their port, or switched to failing/hanging; plain clients that time each request;
// and the admin port's view of server states.
import Foundation
import Glibc
import XCTest

/// One `health_backend.py` process (or none while stopped), always on the same port once started.
final class HealthBackend {
    let name: String
    private(set) var port: UInt16 = 0
    private var peer: PythonPeer?

    init(name: String, mode: String = "ok") throws {
        self.name = name
        try start(mode: mode, port: 0)
    }

    deinit { stop() }

    var address: String { "127.0.0.1:\(port)" }
    var isRunning: Bool { peer?.isRunning ?? false }

    private func start(mode: String, port fixed: UInt16) throws {
        // A restart on the same port may race the old socket's teardown: try again for a while.
        var lastError: Error?
        let deadline = Date().addingTimeInterval(10)
        repeat {
            do {
                let p = try PythonPeer(script: "health_backend.py", arguments: ["--name", name, "--mode", mode, "--port", String(fixed)])
                peer = p
                port = p.port
                return
            } catch {
                lastError = error
                usleep(100_000)
            }
        } while fixed != 0 && Date() < deadline
        throw lastError ?? HarnessError("\(name) did not start")
    }

    /// SIGKILL: from now on connections to the port are refused.
    func stop() {
        peer?.kill9()
        peer = nil
    }

    /// A new process on the same port.
    func restart(mode: String = "ok") throws {
        stop()
        try start(mode: mode, port: port)
    }

    /// Switches the running backend's behaviour (a control request straight to it, never through Huddle).
    func setMode(_ mode: String, file: StaticString = #filePath, line: UInt = #line) {
        let r = Self.get(port: port, "/__mode/\(mode)")
        XCTAssertEqual(r?.status, 200, "\(name): cannot switch to mode \(mode)", file: file, line: line)
    }

    struct Counts {
        /// Probes (GET /healthz) and every other request, as the backend saw them.
        var healthz: Int
        var requests: Int
        /// The backend's monotonic clock (seconds) at each probe.
        var healthzTimes: [Double]
        var healthzHosts: [String]
        var healthzAgents: [String]
    }

    /// What the backend has seen; nil if it is not running.
    func counts() -> Counts? {
        guard isRunning, let r = Self.get(port: port, "/__counts"), r.status == 200,
              let o = try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any] else { return nil }
        return Counts(healthz: o["healthz"] as? Int ?? -1, requests: o["requests"] as? Int ?? -1,
                      healthzTimes: o["healthz_times"] as? [Double] ?? [],
                      healthzHosts: (o["healthz_hosts"] as? [Any] ?? []).map { ($0 as? String) ?? "<none>" },
                      healthzAgents: (o["healthz_agents"] as? [Any] ?? []).map { ($0 as? String) ?? "<none>" })
    }

    static func get(port: UInt16, _ path: String) -> ParsedResponse? {
        guard let c = try? RawClient(port: port, receiveTimeoutSeconds: 5) else { return nil }
        c.send("GET \(path) HTTP/1.1\r\nHost: control\r\nConnection: close\r\n\r\n")
        return ParsedResponse.parseAll(c.readAll()).first
    }
}

/// One client request through Huddle and what came of it.
struct Reply: CustomStringConvertible {
    /// 0: no complete response (closed or timed out).
    var status: Int
    var backend: String?
    var retryAfter: String?
    var body: String
    var seconds: Double
    /// When the request was sent.
    var started = Date()
    var description: String { "\(status) from \(backend ?? "huddle") in \(String(format: "%.3f", seconds)) s: \(body.prefix(120))" }
}

class HealthTestCase: HuddleTestCase {
    var backends: [HealthBackend] = []

    override func tearDown() {
        super.tearDown()   // the end-of-test invariant check, while the backends still run; stops huddle
        for b in backends { b.stop() }
        backends.removeAll()
    }

    func startBackends(_ names: [String], mode: String = "ok") throws -> [HealthBackend] {
        let list = try names.map { try HealthBackend(name: $0, mode: mode) }
        backends += list
        return list
    }

    func serverLines(_ list: [HealthBackend]) -> String {
        list.map { "    server \($0.address) name=\($0.name);" }.joined(separator: "\n")
    }

    /// A GET through Huddle on a new connection (Connection: close), timed.
    func get(_ h: HuddleProcess, _ path: String, receiveTimeout: Int = 15) -> Reply {
        let t0 = Date()
        guard let c = try? RawClient(port: h.port, receiveTimeoutSeconds: receiveTimeout) else {
            return Reply(status: 0, backend: nil, retryAfter: nil, body: "connect failed", seconds: 0)
        }
        c.send("GET \(path) HTTP/1.1\r\nHost: health.test\r\nConnection: close\r\n\r\n")
        let (_, bytes) = c.waitForClose()
        let seconds = Date().timeIntervalSince(t0)
        guard let r = ParsedResponse.parseAll(bytes).first else {
            return Reply(status: 0, backend: nil, retryAfter: nil, body: bytes.text, seconds: seconds, started: t0)
        }
        return Reply(status: r.status, backend: r.value("X-Backend"), retryAfter: r.value("Retry-After"),
                     body: String(decoding: r.body, as: UTF8.self), seconds: seconds, started: t0)
    }

    /// Every server of every upstream from /api/backends: "upstream/name" -> its JSON object.
    func servers(_ h: HuddleProcess) -> [String: [String: Any]] {
        guard let text = Invariants.adminGet(h, "/api/backends"),
              let o = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
              let ups = o["upstreams"] as? [[String: Any]] else { return [:] }
        var out: [String: [String: Any]] = [:]
        for u in ups {
            for s in (u["servers"] as? [[String: Any]]) ?? [] {
                out["\(u["name"] as? String ?? "?")/\(s["name"] as? String ?? "?")"] = s
            }
        }
        return out
    }

    /// Server name -> state, for `upstream`.
    func states(_ h: HuddleProcess, upstream: String = "web") -> [String: String] {
        var out: [String: String] = [:]
        for (k, v) in servers(h) where k.hasPrefix(upstream + "/") {
            out[String(k.dropFirst(upstream.count + 1))] = v["state"] as? String
        }
        return out
    }

    /// Polls every 10 ms until `server` is in `state`; returns the seconds that took, nil after `timeout`.
    func waitForState(_ h: HuddleProcess, _ server: String, _ state: String, upstream: String = "web", timeout: Double) -> Double? {
        let t0 = Date()
        let deadline = t0.addingTimeInterval(timeout)
        repeat {
            if states(h, upstream: upstream)[server] == state { return Date().timeIntervalSince(t0) }
            usleep(10_000)
        } while Date() < deadline
        return nil
    }

    /// Error-log lines reporting transitions of `server` ("server NAME: FROM -> TO: reason").
    func transitions(_ h: HuddleProcess, _ server: String, from: String? = nil, to: String? = nil) -> [String] {
        h.log.split(separator: "\n").map(String.init).filter { l in
            guard l.contains("server \(server): ") else { return false }
            if let f = from, let t = to { return l.contains("server \(server): \(f) -> \(t): ") }
            return l.contains(" -> ")
        }
    }

    /// Writes `config` (with {PORT} and {ADMIN} filled in as at start) over huddle's config file and sends SIGHUP;
    /// waits for the log to confirm generation `generation`.
    func reload(_ h: HuddleProcess, _ config: String, generation: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let text = config.replacingOccurrences(of: "{PORT}", with: String(h.port)).replacingOccurrences(of: "{ADMIN}", with: String(h.adminPort))
        try text.write(to: h.configURL, atomically: true, encoding: .utf8)
        kill(h.pid, SIGHUP)
        XCTAssertTrue(Harness.waitFor(10) { h.log.contains("reloaded configuration (generation \(generation))") },
                      "reload not confirmed; log:\n\(h.log.suffix(2000))", file: file, line: line)
    }

    static func format(_ s: Double) -> String { String(format: "%.3f", s) }
}

/// A value shared between a test and the client threads it starts, behind a lock.
final class Shared<T>: @unchecked Sendable {
    // SAFETY: `value` is only touched under `lock`.
    private let lock = NSLock()
    private var value: T
    init(_ value: T) { self.value = value }
    func with<R>(_ body: (inout T) -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
    var current: T { with { $0 } }
}

/// Hands a non-Sendable value to a client thread the test starts and joins (the test waits for the thread before it
/// touches the value again, or the value is itself thread-safe for what the thread does).
struct Handed<T>: @unchecked Sendable {
    let value: T
}

/// Starts `body` on a new thread; the returned flag turns true when it has returned.
func startThread(_ body: @escaping @Sendable () -> Void) -> Shared<Bool> {
    let done = Shared(false)
    let t = Thread {
        body()
        done.with { $0 = true }
    }
    t.start()
    return done
}
