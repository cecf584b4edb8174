// Discovery on the control loop: one entry per `resolve` line, each looked up again when its TTL (clamped) runs out.
// Lookups run on the resolver thread; their results come back here through the control loop's inbox. A change of
// any entry's servers asks the proxy for a new snapshot, built the way a reload builds one (without re-reading the
// file), and applied to the workers and the health driver.
import HuddleConfig
import HuddleIO
import HuddleResolver
import HuddleSync
import HuddleSys

// SAFETY: every method runs on the control thread: `sync` and `resolveInitial` from Proxy.init/reload (the main
// thread, which then runs the control loop), the rest on the control loop itself. The resolver's completions only
// capture the entry key and post to the loop.
public final class Discovery: TimerNode, @unchecked Sendable {
    private var entries: [String: DiscoveryEntry] = [:]
    private var timing = DiscoveryTiming()
    private var settings: ResolverSettings
    private var resolver: Resolver?
    private var loop: EventLoop?
    private let log: ErrorLog
    private var applyPending = false
    /// Called on the control loop when some entry's servers changed: the proxy builds and applies a snapshot.
    var onChange: () -> Void = {}

    /// At start Huddle waits this long for the first answers before it starts without them.
    static let initialWaitMs: Int64 = 5000

    init(log: ErrorLog) {
        self.log = log
        settings = ResolverSettings(nameservers: [])
        super.init()
    }

    /// What the snapshot builder expands `resolve` lines with.
    var found: [String: [DiscoveredServer]] { entries.mapValues(\.servers) }

    /// Makes the entries match `config`: lines kept by key keep what they found; new ones start empty (and are looked
    /// up at once); removed ones are dropped (a lookup in flight for them is ignored when it returns).
    func sync(_ config: HuddleConfig) {
        timing = DiscoveryTiming(validMs: config.resolver?.valid, holdMs: config.resolver?.hold ?? ResolverConfig.defaultHold)
        var next: [String: DiscoveryEntry] = [:]
        for u in config.upstreams {
            for s in u.servers where s.resolve {
                let e = DiscoveryEntry(upstream: u.name, line: s)
                next[e.key] = entries[e.key] ?? e
            }
        }
        entries = next
        guard !entries.isEmpty else { return }
        let wanted = Self.settings(for: config)
        if resolver == nil {
            do {
                let r = try Resolver(settings: wanted)
                r.start()
                resolver = r
            } catch {
                log.error("cannot start the resolver thread: \(error); servers with \"resolve\" stay empty")
            }
        } else if wanted != settings {
            resolver?.update(wanted)
        }
        settings = wanted
        if loop != nil { refreshDue() }
    }

    /// The `resolver` directive's nameservers (no search list), else /etc/resolv.conf's.
    static func settings(for config: HuddleConfig) -> ResolverSettings {
        let timeout = config.resolver?.timeout ?? ResolverSettings.defaultTimeoutMs
        guard let r = config.resolver else { return .system(timeoutMs: timeout) }
        return ResolverSettings(nameservers: r.nameservers.compactMap { SocketAddress(ip: $0.host, port: $0.port) }, timeoutMs: timeout)
    }

    /// Before the control loop runs (start): looks every entry up and waits for the answers, at most `initialWaitMs`,
    /// so Huddle starts with its servers. Answers that come later are dropped; those entries are asked again once the
    /// loop runs.
    func resolveInitial() {
        guard let resolver, !entries.isEmpty else { return }
        let results = Locked<[String: AddressLookup]>([:])
        let services = Locked<[String: ServiceLookup]>([:])
        let pending = Locked(entries.count)
        let done = OneShotEvent()
        let finished: @Sendable () -> Void = {
            if pending.withLock({ $0 -= 1; return $0 }) == 0 { done.signal() }
        }
        for (key, e) in entries {
            if e.line.service {
                resolver.lookupService(e.name) { r in services.withLock { $0[key] = r }; finished() }
            } else {
                resolver.lookupAddresses(e.name) { r in results.withLock { $0[key] = r }; finished() }
            }
        }
        _ = done.wait(timeoutMs: Self.initialWaitMs)
        let now = Sys.monotonicMs()
        let addressAnswers = results.withLock { $0 }
        let serviceAnswers = services.withLock { $0 }
        for key in entries.keys {
            if let r = addressAnswers[key] {
                report(entries[key]!.upstream, entries[key]!.apply(r, timing: timing, nowMs: now))
            } else if let r = serviceAnswers[key] {
                report(entries[key]!.upstream, entries[key]!.apply(r, timing: timing, nowMs: now))
            } else {
                log.warn("upstream \(entries[key]!.upstream): \(entries[key]!.name): no answer within \(Self.initialWaitMs / 1000)s at start; starting without its servers")
            }
        }
    }

    /// From here on lookups are scheduled on `loop` (the control loop).
    func attach(_ loop: EventLoop) {
        self.loop = loop
        refreshDue()
    }

    func stop() {
        loop?.timers.cancel(self)
        resolver?.stop()
        resolver = nil
    }

    public override func timerFired(now: Int64) { refreshDue() }

    /// Starts the lookups that are due and arms the timer for the next one.
    private func refreshDue() {
        guard let loop, let resolver else { return }
        let now = Sys.monotonicMs()
        var next = Int64.max
        for key in entries.keys {
            guard var e = entries[key], !e.inFlight else { continue }
            if e.nextRefreshMs > now {
                next = min(next, e.nextRefreshMs)
                continue
            }
            e.inFlight = true
            entries[key] = e
            let name = e.name
            if e.line.service {
                resolver.lookupService(name) { [self] r in loop.execute { self.received(key) { $0.apply(r, timing: $1, nowMs: $2) } } }
            } else {
                resolver.lookupAddresses(name) { [self] r in loop.execute { self.received(key) { $0.apply(r, timing: $1, nowMs: $2) } } }
            }
        }
        if next == Int64.max { loop.timers.cancel(self) } else { loop.timers.schedule(self, at: next) }
    }

    private func received(_ key: String, _ apply: (inout DiscoveryEntry, DiscoveryTiming, Int64) -> DiscoveryEntry.Outcome) {
        // An entry removed by a reload while its lookup was in flight: nothing to do.
        guard var e = entries[key] else { return }
        let outcome = apply(&e, timing, Sys.monotonicMs())
        entries[key] = e
        report(e.upstream, outcome)
        if outcome.changed, !applyPending, let loop {
            // Answers that arrive together make one snapshot.
            applyPending = true
            loop.execute { [self] in
                applyPending = false
                onChange()
            }
        }
        refreshDue()
    }

    private func report(_ upstream: String, _ outcome: DiscoveryEntry.Outcome) {
        for l in outcome.logs {
            if l.warn { log.warn(l.line) } else { log.info(l.line) }
        }
    }
}
