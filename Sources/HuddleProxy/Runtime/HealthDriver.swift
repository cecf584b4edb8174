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
    func apply(_ rt: RuntimeConfig) {
        runtime = rt
        var targets: [ProbeTarget] = []
        for u in rt.upstreams {
            guard let c = u.config.healthCheck else { continue }
            for s in u.servers {
                let kind: ProbeSpec.Kind = c.path.map { .http(path: $0, host: c.host ?? s.addressText) } ?? .tcp
                let spec = ProbeSpec(kind: kind, intervalMs: c.interval, timeoutMs: c.timeout, rise: c.rise, fall: c.fall, expect: c.expect,
                                     proxyProtocol: u.config.sendProxyProtocol.map { $0 == .v1 ? .v1 : .v2 })
                targets.append(ProbeTarget(key: s.uid, address: s.address, spec: spec, health: s.health))
            }
        }
        prober.sync(targets)
        sweep()
    }

    /// A server was ejected (reported from a worker): make sure its ejection ends on time.
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
