// One backend server's health, shared by every thread: the causes keeping it out (one atomic word that workers read
// on every pick), passive failure counting (written by workers), and a record of the last check and transition for
// the admin port. A server keeps this object across reloads that keep its identity.
import HuddleSync
import Synchronization

/// What the admin port shows of a server's health.
public struct HealthRecord: Sendable {
    /// The last active probe: nil before the first one.
    public var lastProbeOK: Bool? = nil
    public var lastProbeWallMs: Int64 = 0
    /// "200 in 3 ms", "connect failed: Connection refused", "timeout after 1000 ms".
    public var lastProbeDetail = ""
    public var probeSuccessesInARow = 0
    public var probeFailuresInARow = 0
    /// Why the server is in its current state, and since when (wall clock).
    public var reason = "configured"
    public var sinceWallMs: Int64 = 0
    public init() {}
}

/// Where transitions are reported: (server health, from, to, reason). Called with no lock held.
public typealias HealthTransitionObserver = @Sendable (ServerHealth, ServerState, ServerState, String) -> Void

// SAFETY: every mutable field is an atomic or behind a lock; `upstream` is replaced under its own lock.
public final class ServerHealth: @unchecked Sendable {
    public let upstreamName: String
    public let serverName: String
    private let flagsRaw: Atomic<UInt32>
    /// Failures in a row seen on real traffic (connect failures, resets, timeouts, 5xx with on_5xx): workers add,
    /// a success clears.
    public let consecutiveFailures = Atomic<Int>(0)
    /// When the latest of those failures happened (monotonic ms): the balancer's penalty fades from there.
    private let lastFailureMs = Atomic<Int64>(0)
    private let ejectedUntilMs = Atomic<Int64>(0)
    private let ejectionCount = Atomic<Int>(0)
    private let lastEjectionEndMs = Atomic<Int64>(0)
    private let transitionCounts: UnsafeMutablePointer<Atomic<Int>>
    private let record: Locked<HealthRecord>
    private let observer: HealthTransitionObserver
    /// The upstream this server belongs to in the current config (for max_ejected); set at build and on reload.
    private let group = Locked<UpstreamHealth?>(nil)

    public init(upstream: String, server: String, initial: HealthFlags, nowWallMs: Int64, observer: @escaping HealthTransitionObserver) {
        upstreamName = upstream
        serverName = server
        flagsRaw = Atomic(initial.rawValue)
        transitionCounts = .allocate(capacity: ServerState.allCases.count)
        for i in 0..<ServerState.allCases.count { (transitionCounts + i).initialize(to: Atomic(0)) }
        var r = HealthRecord()
        r.sinceWallMs = nowWallMs
        r.reason = initial.contains(.disabled) ? "down in the config" : initial.contains(.activeDown) ? "waiting for its first health check (initial=unhealthy)" : "configured"
        record = Locked(r)
        self.observer = observer
    }

    deinit {
        transitionCounts.deinitialize(count: ServerState.allCases.count)
        transitionCounts.deallocate()
    }

    // MARK: reading (any thread)

    @inline(__always) public var flags: HealthFlags { HealthFlags(rawValue: flagsRaw.load(ordering: .relaxed)) }
    public var state: ServerState { flags.state }
    @inline(__always) public var takesTraffic: Bool { flagsRaw.load(ordering: .relaxed) == 0 }
    public var snapshot: HealthRecord { record.withLock { $0 } }
    public var ejectedUntil: Int64 { ejectedUntilMs.load(ordering: .relaxed) }
    public var ejections: Int { ejectionCount.load(ordering: .relaxed) }
    /// Transitions into `state` so far.
    public func transitions(to state: ServerState) -> Int { transitionCounts[Int(state.rawValue)].load(ordering: .relaxed) }

    // MARK: changing the causes

    /// Sets and clears causes atomically; reports the transition if the visible state changed.
    @discardableResult
    public func update(set: HealthFlags = [], clear: HealthFlags = [], reason: String, nowWallMs: Int64) -> Bool {
        var old = flagsRaw.load(ordering: .relaxed)
        var new: UInt32
        repeat {
            new = (old & ~clear.rawValue) | set.rawValue
            if new == old { return false }
            let (exchanged, original) = flagsRaw.compareExchange(expected: old, desired: new, ordering: .relaxed)
            if exchanged { break }
            old = original
        } while true
        let from = HealthFlags(rawValue: old).state
        let to = HealthFlags(rawValue: new).state
        if from != to {
            transitionCounts[Int(to.rawValue)].add(1, ordering: .relaxed)
            record.withLock {
                $0.reason = reason
                $0.sinceWallMs = nowWallMs
            }
            observer(self, from, to, reason)
        }
        return true
    }

    /// Joins the upstream's health group (the set `max_ejected` counts over); done at build time and on reload.
    public func join(_ g: UpstreamHealth) {
        group.withLock { $0 = g }
    }

    // MARK: active checks (the prober's thread)

    public func recordProbe(ok: Bool, detail: String, counter: ActiveCheckCounter, nowWallMs: Int64) {
        record.withLock {
            $0.lastProbeOK = ok
            $0.lastProbeWallMs = nowWallMs
            $0.lastProbeDetail = detail
            $0.probeSuccessesInARow = counter.consecutiveSuccesses
            $0.probeFailuresInARow = counter.consecutiveFailures
        }
    }

    // MARK: passive health (worker threads)

    /// A request or connection to this server succeeded: the failure streak ends. One relaxed load when there is none.
    @inline(__always)
    public func recordSuccess() {
        if consecutiveFailures.load(ordering: .relaxed) != 0 { consecutiveFailures.store(0, ordering: .relaxed) }
    }

    /// A request to this server failed (`cause` says how). With passive health on, enough failures in a row eject it.
    public func recordFailure(cause: String, nowMs: Int64, nowWallMs: Int64) {
        lastFailureMs.store(nowMs, ordering: .relaxed)
        let n = consecutiveFailures.add(1, ordering: .relaxed).newValue
        guard let g = group.withLock({ $0 }), let policy = g.policy, n >= policy.failures, !flags.contains(.ejected) else { return }
        g.eject(self, failures: n, cause: cause, policy: policy, nowMs: nowMs, nowWallMs: nowWallMs)
    }

    /// How many in-flight requests the failure streak is worth to p2c: 4 per failure in a row (at most 16 failures),
    /// halved for every `penaltyHalfLifeMs` since the latest failure, so 0 at most 3.5 s after it. A failing server
    /// loses picks at once, but is tried again once the penalty has faded: a server that is never picked can never
    /// show a success (which ends the streak) or enough failures to be ejected, and a fixed penalty would keep it out
    /// of light traffic for good, even after it recovered. One relaxed load when there is no streak.
    @inline(__always)
    public func failurePenalty(nowMs: Int64) -> Int {
        let n = consecutiveFailures.load(ordering: .relaxed)
        if n == 0 { return 0 }
        let halvings = max(0, nowMs - lastFailureMs.load(ordering: .relaxed)) / Self.penaltyHalfLifeMs
        return halvings >= 7 ? 0 : (4 * min(n, 16)) >> Int(halvings)
    }

    public static let penaltyHalfLifeMs: Int64 = 500

    /// Called by the upstream group under its lock.
    fileprivate func beginEjection(failures: Int, cause: String, policy: EjectionPolicy, nowMs: Int64, nowWallMs: Int64) {
        if nowMs - lastEjectionEndMs.load(ordering: .relaxed) > policy.forgetAfterMs { ejectionCount.store(0, ordering: .relaxed) }
        let k = ejectionCount.add(1, ordering: .relaxed).newValue
        let d = policy.duration(ejection: k)
        ejectedUntilMs.store(nowMs + d, ordering: .relaxed)
        update(set: .ejected, reason: "\(failures) failures in a row (last: \(cause)); ejected for \(d) ms (ejection \(k))", nowWallMs: nowWallMs)
    }

    /// Ends an ejection whose time is over (called periodically by the health driver). Returns true if it ended one.
    @discardableResult
    public func endEjectionIfDue(nowMs: Int64, nowWallMs: Int64) -> Bool {
        guard flags.contains(.ejected), nowMs >= ejectedUntilMs.load(ordering: .relaxed) else { return false }
        consecutiveFailures.store(0, ordering: .relaxed)
        lastEjectionEndMs.store(nowMs, ordering: .relaxed)
        return update(clear: .ejected, reason: "ejection time over", nowWallMs: nowWallMs)
    }
}

/// The servers of one upstream as passive health sees them: ejections are decided one at a time under its lock, so
/// `max_ejected` holds even when several workers see failures at once.
public final class UpstreamHealth: @unchecked Sendable {
    // SAFETY: `state` is only touched under its lock.
    private let state = Locked<(members: [ServerHealth], policy: EjectionPolicy?, refusedLoggedMs: Int64)>(([], nil, -1_000_000))
    private let onRefused: @Sendable (String) -> Void
    /// Told of every ejection this upstream decides (see `onEjection`).
    private let ejectionListener = Locked<(@Sendable () -> Void)?>(nil)

    public init(onRefused: @escaping @Sendable (String) -> Void) {
        self.onRefused = onRefused
    }

    /// `listener` is called (on the reporting worker's thread, no lock held) after every ejection, whatever the
    /// server's visible state: the health driver schedules the ejection's end from it. The transition observer alone
    /// is not enough: ejecting a draining (or disabled) server changes no visible state, reports no transition, and
    /// its ejection would then never end.
    public func onEjection(_ listener: (@Sendable () -> Void)?) {
        ejectionListener.withLock { $0 = listener }
    }

    public var policy: EjectionPolicy? { state.withLock { $0.policy } }

    /// The current config's servers and passive-health rules (at build time and on every reload).
    public func configure(members: [ServerHealth], policy: EjectionPolicy?) {
        state.withLock {
            $0.members = members
            $0.policy = policy
        }
        for m in members { m.join(self) }
    }

    fileprivate func eject(_ s: ServerHealth, failures: Int, cause: String, policy: EjectionPolicy, nowMs: Int64, nowWallMs: Int64) {
        var refused: String? = nil
        var didEject = false
        state.withLock { st in
            guard !s.flags.contains(.ejected) else { return }
            let ejected = st.members.filter { $0.flags.contains(.ejected) }.count
            let limit = policy.maxEjected(of: st.members.count)
            guard ejected < limit else {
                // Log at most every 10 s per upstream: a failing server under max_ejected keeps failing.
                if nowMs - st.refusedLoggedMs >= 10_000 {
                    st.refusedLoggedMs = nowMs
                    refused = "upstream \(s.upstreamName): server \(s.serverName) failed \(failures) times in a row (last: \(cause)) but is not ejected: \(ejected) of \(st.members.count) servers are ejected already (max_ejected \(policy.maxEjectedPercent)%)"
                }
                return
            }
            s.beginEjection(failures: failures, cause: cause, policy: policy, nowMs: nowMs, nowWallMs: nowWallMs)
            didEject = true
        }
        if let r = refused { onRefused(r) }
        if didEject, let listener = ejectionListener.withLock({ $0 }) { listener() }
    }
}
