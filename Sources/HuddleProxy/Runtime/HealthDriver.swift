// Health on the control loop: the active probes of the current config's servers, and the end of passive ejections.
// Workers never probe; they only read each server's shared health word and report what real traffic shows.
import HuddleConfig
import HuddleHealth
import HuddleIO
import HuddleSys

// SAFETY: on the control loop's thread only (other threads reach it through `loop.execute`).
public final class HealthDriver: TimerNode, @unchecked Sendable {
    let loop: EventLoop
    let prober: HealthProber
    private var runtime: RuntimeConfig
    private var sweeping = false

    init(loop: EventLoop, runtime: RuntimeConfig) {
        self.loop = loop
        self.runtime = runtime
        prober = HealthProber(loop: loop, seed: UInt64(truncatingIfNeeded: Sys.monotonicNs()) &* 0x9E37_79B9_7F4A_7C15)
        super.init()
        apply(runtime)
    }

    /// Probes exactly the servers of `rt` whose upstream has a health check (servers kept across a reload keep their
    /// probe and its counters).
    ///
    /// A server kept across a reload keeps its health object, so what the new config says about it is applied here:
    /// `down` added or removed, and a health check removed (with no check left, nothing could ever clear the old
    /// check's verdict, and the server would stay out for good).
    func apply(_ rt: RuntimeConfig) {
        runtime = rt
        let wall = Sys.wallClockMs()
        var targets: [ProbeTarget] = []
        for u in rt.upstreams {
            // Every ejection wakes the control loop to schedule its end (also one that changes no visible state).
            let loop = self.loop
            u.health.onEjection { [weak self] in
                guard let driver = self else { return }
                loop.execute { driver.ejectionStarted() }
            }
            for (s, sc) in zip(u.servers, u.config.servers) where sc.down != s.health.flags.contains(.disabled) {
                if sc.down {
                    s.health.update(set: .disabled, reason: "marked down in the reloaded config", nowWallMs: wall)
                } else {
                    s.health.update(clear: .disabled, reason: "no longer marked down in the reloaded config", nowWallMs: wall)
                }
            }
            guard let c = u.config.healthCheck else {
                for s in u.servers where s.health.flags.contains(.activeDown) {
                    s.health.update(clear: .activeDown, reason: "health check removed from the config", nowWallMs: wall)
                }
                continue
            }
            for s in u.servers {
                let kind: ProbeSpec.Kind = c.path.map { .http(path: $0, host: c.host ?? s.addressText) } ?? .tcp
                let spec = ProbeSpec(kind: kind, intervalMs: c.interval, timeoutMs: c.timeout, rise: c.rise, fall: c.fall, expect: c.expect,
                                     tls: u.tls, tlsHost: s.host,
                                     proxyProtocol: u.config.sendProxyProtocol.map { $0 == .v1 ? .v1 : .v2 })
                targets.append(ProbeTarget(key: s.uid, address: s.address, spec: spec, health: s.health))
            }
        }
        prober.sync(targets)
        sweep()
    }

    /// A server was ejected (reported from a worker through its upstream's `onEjection`): make sure its ejection ends
    /// on time.
    func ejectionStarted() {
        sweep()
    }

    /// Ends due ejections, and comes back while any server is still ejected.
    private func sweep() {
        let now = Sys.monotonicMs()
        let wall = Sys.wallClockMs()
        var next = Int64.max
        for u in runtime.upstreams {
            for s in u.servers where s.health.flags.contains(.ejected) {
                if !s.health.endEjectionIfDue(nowMs: now, nowWallMs: wall) { next = min(next, s.health.ejectedUntil) }
            }
        }
        if next != Int64.max {
            loop.timers.schedule(self, at: max(next, now + 10))
            sweeping = true
        } else {
            loop.timers.cancel(self)
            sweeping = false
        }
    }

    public override func timerFired(now: Int64) {
        sweep()
    }

    func stop() {
        prober.stopAll()
        loop.timers.cancel(self)
    }

    public var probesStarted: Int { prober.probesStarted }
}
