// Active health checks: one probe per server per interval for the whole process, run on one event loop (the control
// loop, never a worker's), each probe a non-blocking connect, a GET and a status check (or a bare connect for
// `health_check tcp`). Results go to the server's shared `ServerHealth`, which every worker reads.
import HuddleHTTP
import HuddleIO
import HuddleSys
import HuddleTLS

/// What to check on one server.
public struct ProbeSpec: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// GET `path` with Host `host`; healthy when the status is in `expect`.
        case http(path: String, host: String)
        /// A TCP connect that completes is healthy.
        case tcp
    }
    public var kind: Kind
    public var intervalMs: Int64
    public var timeoutMs: Int64
    public var rise: Int
    public var fall: Int
    public var expect: [ClosedRange<Int>]
    /// Probe over TLS, as the upstream's traffic goes: the context, and the server's host for SNI and verification.
    public var tls: ClientTLSContext?
    public var tlsHost: String
    /// The upstream's `send_proxy_protocol`: a server that expects a PROXY protocol header on every connection
    /// would refuse a probe without one, so an HTTP probe sends one too (v2 LOCAL; v1 naming the probe's own
    /// connection, as the specification recommends for health checks).
    public var proxyProtocol: ProxyProtocolHeader.Version?

    public static func == (a: ProbeSpec, b: ProbeSpec) -> Bool {
        a.kind == b.kind && a.intervalMs == b.intervalMs && a.timeoutMs == b.timeoutMs && a.rise == b.rise && a.fall == b.fall
            && a.expect == b.expect && a.tls === b.tls && a.tlsHost == b.tlsHost && a.proxyProtocol == b.proxyProtocol
    }

    public init(kind: Kind, intervalMs: Int64, timeoutMs: Int64, rise: Int, fall: Int, expect: [ClosedRange<Int>],
                tls: ClientTLSContext? = nil, tlsHost: String = "", proxyProtocol: ProxyProtocolHeader.Version? = nil) {
        self.tls = tls
        self.tlsHost = tlsHost
        self.proxyProtocol = proxyProtocol
        self.kind = kind
        self.intervalMs = intervalMs
        self.timeoutMs = timeoutMs
        self.rise = rise
        self.fall = fall
        self.expect = expect
        self.proxyProtocol = proxyProtocol
    }
}

/// One server to probe: a stable key (the server's uid), where, what, and where results go.
public struct ProbeTarget: Sendable {
    public var key: Int
    public var address: SocketAddress?
    public var spec: ProbeSpec
    public var health: ServerHealth
    public init(key: Int, address: SocketAddress?, spec: ProbeSpec, health: ServerHealth) {
        self.key = key
        self.address = address
        self.spec = spec
        self.health = health
    }
}

/// Runs the probes on `loop`. Every method is for the loop's thread.
// SAFETY: on its loop's thread only.
public final class HealthProber {
    let loop: EventLoop
    private var probes: [Int: Probe] = [:]
    private var rng: UInt64
    /// Probes started so far (for tests and metrics).
    public private(set) var probesStarted = 0

    public init(loop: EventLoop, seed: UInt64) {
        self.loop = loop
        rng = seed | 1
    }

    /// Makes the running probes match `targets`: new servers start (at a random point of their first interval, so
    /// hundreds of probes never align), removed ones stop, kept ones keep their counters unless the check changed.
    public func sync(_ targets: [ProbeTarget]) {
        var keep = Set<Int>()
        for t in targets {
            keep.insert(t.key)
            if let p = probes[t.key], p.target.spec == t.spec, p.target.address == t.address, p.target.health === t.health { continue }
            probes[t.key]?.stop()
            let p = Probe(prober: self, target: t)
            probes[t.key] = p
            loop.timers.schedule(p, at: loop.now + Int64(nextRandom() % UInt64(max(1, t.spec.intervalMs))))
        }
        for (k, p) in probes where !keep.contains(k) {
            p.stop()
            probes[k] = nil
        }
    }

    public func stopAll() {
        for p in probes.values { p.stop() }
        probes.removeAll()
    }

    public var count: Int { probes.count }

    /// The next interval with ±10% jitter.
    func nextDelay(_ interval: Int64) -> Int64 {
        let spread = max(1, interval / 5)
        return max(1, interval - interval / 10 + Int64(nextRandom() % UInt64(spread)))
    }

    private func nextRandom() -> UInt64 {
        rng ^= rng << 13
        rng ^= rng >> 7
        rng ^= rng << 17
        return rng
    }

    fileprivate func started() { probesStarted += 1 }
}

/// One server's probe cycle: wait, connect, ask, judge, close, wait.
// SAFETY: on its prober's loop thread only.
final class Probe: TimerNode, EventHandler {
    unowned let prober: HealthProber
    let target: ProbeTarget
    private var counter: ActiveCheckCounter
    private var fd: Int32 = -1
    private var registration = Registration.none
    private var stage = Stage.waiting
    private var startedMs: Int64 = 0
    private var request: [UInt8] = []
    private var sent = 0
    private var input: [UInt8] = []
    private var stopped = false

    enum Stage { case waiting, connecting, handshaking, sending, reading }
    private var tls: TLSSession?

    init(prober: HealthProber, target: ProbeTarget) {
        self.prober = prober
        self.target = target
        counter = ActiveCheckCounter(rise: target.spec.rise, fall: target.spec.fall, startDown: target.health.flags.contains(.activeDown))
        super.init()
    }

    private var loop: EventLoop { prober.loop }

    func stop() {
        stopped = true
        loop.timers.cancel(self)
        closeSocket()
    }

    override func timerFired(now: Int64) {
        if stopped { return }
        switch stage {
        case .waiting:
            begin(now)
        default:
            finish(ok: false, detail: "timeout after \(target.spec.timeoutMs) ms")
        }
    }

    private func begin(_ now: Int64) {
        prober.started()
        startedMs = now
        guard let addr = target.address else {
            finish(ok: false, detail: "the server's address did not resolve")
            return
        }
        do {
            let (s, connected) = try Sockets.connect(to: addr)
            fd = s
            registration = try loop.register(fd: s, handler: self)
            stage = .connecting
            loop.timers.schedule(self, at: now + target.spec.timeoutMs)
            if connected { connectedNow() }
        } catch {
            finish(ok: false, detail: "connect failed: \(error.message)")
        }
    }

    func handleEvent(_ events: UInt32) {
        switch stage {
        case .connecting:
            let err = Sys.socketError(fd)
            if err != 0 {
                finish(ok: false, detail: "connect failed: \(Errno(err).message)")
                return
            }
            if events & (Events.writable | Events.error | Events.hangup) != 0 { connectedNow() }
        case .handshaking:
            handshake()
        case .sending:
            send()
        case .reading:
            read()
        case .waiting:
            break
        }
    }

    private func connectedNow() {
        if let ctx = target.spec.tls, tls == nil {
            // A PROXY protocol header goes on the raw connection, before the TLS handshake. It is a few dozen bytes
            // into a fresh socket's empty send buffer: one write takes it whole.
            let header = proxyHeader()
            if !header.isEmpty {
                let r = header.withUnsafeBytes { p in Result { () throws(Errno) -> IOResult<Int> in try Sys.write(fd, p.baseAddress!, p.count) } }
                guard case .success(.done(let n)) = r, n == header.count else {
                    finish(ok: false, detail: "could not send the PROXY protocol header")
                    return
                }
            }
            guard let t = ctx.session(fd: fd, host: target.spec.tlsHost, cacheKey: "probe \(target.key)") else {
                finish(ok: false, detail: "cannot start TLS: \(TLSErrors.drain())")
                return
            }
            tls = t
            stage = .handshaking
            handshake()
            return
        }
        afterHandshake()
    }

    private func handshake() {
        guard let t = tls else { return }
        switch t.handshake() {
        case .done: afterHandshake()
        case .waiting: return
        case .failed(let why): finish(ok: false, detail: "TLS handshake failed: \(why)")
        }
    }

    private func afterHandshake() {
        switch target.spec.kind {
        case .tcp:
            finish(ok: true, detail: "connected in \(loop.now - startedMs) ms")
        case .http(let path, let host):
            request = (tls == nil ? proxyHeader() : []) + Array("GET \(path) HTTP/1.1\r\nHost: \(host)\r\nUser-Agent: huddle-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n".utf8)
            sent = 0
            input.removeAll(keepingCapacity: true)
            stage = .sending
            send()
        }
    }

    private func proxyHeader() -> [UInt8] {
        switch target.spec.proxyProtocol {
        case nil: return []
        case .v2?: return ProxyProtocolWriter.v2Local()
        case .v1?:
            // v1 has no LOCAL: the probe's own connection, which the server can check against the socket.
            func endpoint(_ a: SocketAddress?) -> ProxyEndpoint? {
                a.flatMap { a in IPAddress(bytes: a.ipBytes).map { ProxyEndpoint(address: $0, port: a.port) } }
            }
            return ProxyProtocolWriter.v1(source: endpoint(Sys.localAddress(fd)), destination: endpoint(Sys.peerAddress(fd)))
        }
    }

    private func send() {
        while sent < request.count {
            let r = request.withUnsafeBytes { p in Result { () throws(Errno) -> IOResult<Int> in try self.write(p.baseAddress! + sent, p.count - sent) } }
            switch r {
            case .success(.wouldBlock): return
            case .success(.done(let n)): sent += n
            case .failure(let e):
                finish(ok: false, detail: "send failed: \(e.message)")
                return
            }
        }
        stage = .reading
        read()
    }

    private func read() {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let r = chunk.withUnsafeMutableBytes { p in Result { () throws(Errno) -> IOResult<Int> in try self.read(p.baseAddress!, p.count) } }
            switch r {
            case .success(.wouldBlock):
                return
            case .success(.done(0)):
                judge(eof: true)
                return
            case .success(.done(let n)):
                input += chunk[0..<n]
                if judge(eof: false) { return }
                if input.count > 65536 {
                    finish(ok: false, detail: "response head larger than 64 KiB")
                    return
                }
            case .failure(let e):
                finish(ok: false, detail: "read failed: \(e.message)")
                return
            }
        }
    }

    /// Decides once the status line and headers are in; returns true when the probe finished.
    @discardableResult
    private func judge(eof: Bool) -> Bool {
        var parser = HTTPResponseParser()
        var head = HTTPResponseHead()
        let r = input.withUnsafeBytes { parser.parse($0, into: &head) }
        switch r {
        case .complete:
            let ok = target.spec.expect.contains { $0.contains(head.status) }
            finish(ok: ok, detail: "\(head.status) in \(loop.now - startedMs) ms" + (ok ? "" : " (expected \(expectText))"))
            return true
        case .error(let e):
            finish(ok: false, detail: "invalid response: \(e)")
            return true
        case .needMore:
            if eof {
                finish(ok: false, detail: "closed before a complete response")
                return true
            }
            return false
        }
    }

    private var expectText: String {
        target.spec.expect.map { $0.lowerBound == $0.upperBound ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)" }.joined(separator: ",")
    }

    private func finish(ok: Bool, detail: String) {
        closeSocket()
        stage = .waiting
        let wall = Sys.wallClockMs()
        let flip = counter.record(success: ok)
        target.health.recordProbe(ok: ok, detail: detail, counter: counter, nowWallMs: wall)
        if let down = flip {
            if down {
                target.health.update(set: .activeDown, reason: "health check failed \(counter.consecutiveFailures) times in a row (last: \(detail))", nowWallMs: wall)
            } else {
                target.health.update(clear: .activeDown, reason: "health check passed \(counter.consecutiveSuccesses) times in a row (last: \(detail))", nowWallMs: wall)
            }
        }
        // The next probe is due an interval after this one *started*: a probe that waits for its timeout does not
        // stretch the cycle to interval + timeout, so `fall` failures take fall x interval (+ the last timeout), not
        // fall x (interval + timeout). A probe that took longer than the interval is followed at once, never overlapped.
        if !stopped { loop.timers.schedule(self, at: max(startedMs + prober.nextDelay(target.spec.intervalMs), loop.now + 1)) }
    }

    private func write(_ p: UnsafeRawPointer, _ n: Int) throws(Errno) -> IOResult<Int> {
        if let t = tls { return try t.write(p, n) }
        return try Sys.write(fd, p, n)
    }

    private func read(_ p: UnsafeMutableRawPointer, _ n: Int) throws(Errno) -> IOResult<Int> {
        if let t = tls { return try t.read(p, n) }
        return try Sys.read(fd, p, n)
    }

    private func closeSocket() {
        tls = nil
        guard fd >= 0 else { return }
        loop.deregisterClosing(registration: registration)
        registration = .none
        Sys.close(fd)
        fd = -1
    }
}
