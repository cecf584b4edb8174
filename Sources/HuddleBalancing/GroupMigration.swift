// The pure rules of group migration: which groups are misplaced, how fast they move, and when a newly seen server may
// take groups (docs/HASHING.md, "Migration"). The control loop applies them; nothing here touches a socket or a clock.

/// The placement rule shared by the data path (placing a new group) and the control loop (judging placed ones).
public enum GroupPlacement {
    /// Servers that take groups: available (healthy, not draining/disabled/ejected, resolved), weight > 0 and settled
    /// (`membership_settle` passed since this process first saw them). If none qualifies, every available one does:
    /// settling delays a server, it never makes Huddle refuse a group.
    public static func eligible(available: [Bool], settled: [Bool], weights: [Int]) -> [Bool] {
        precondition(available.count == settled.count && settled.count == weights.count, "one entry per server")
        let strict = available.indices.map { available[$0] && settled[$0] && weights[$0] > 0 }
        if strict.contains(true) { return strict }
        return available.indices.map { available[$0] && weights[$0] > 0 }
    }

    /// Whether a placed group is misplaced under the current view (`epoch`):
    /// - its server is gone from the config (`server == nil`) or no longer takes groups: yes;
    /// - it is on its owner: no;
    /// - it was placed away from its owner because connecting to the owner failed (`avoided` is the owner) and the owner
    ///   is still failing (a failure streak that no success has ended): no, moving it back would only fail again;
    /// - it was placed under an older view (the owner changed since): yes;
    /// - it was placed away from an owner that has recovered since (a transient failure): yes, so one replica's passing
    ///   trouble does not leave the group on another server than the other replicas use;
    /// - otherwise (placed under the current view on a non-owner: a bounded-load spill): no. A group thus moves at most
    ///   once per change.
    public static func isMisplaced(server: Int?, serverEligible: Bool, owner: Int?, placedEpoch: UInt64, epoch: UInt64,
                                   avoided: Int? = nil, ownerFailing: Bool = false) -> Bool {
        guard let server, serverEligible else { return true }
        guard let owner, owner != server else { return false }
        if owner == avoided && ownerFailing { return false }
        if placedEpoch < epoch { return true }
        return owner == avoided
    }
}

/// Paces migrations at `rate` groups per second (a token bucket): one may start at once, then one every 1/rate
/// seconds on average; a burst after a quiet spell is at most a quarter second's worth (at least one).
public struct MigrationPacer: Sendable {
    public let rate: Double
    public private(set) var tokens: Double
    private var lastMs: Int64?

    public init(rate: Double) {
        precondition(rate > 0, "a positive rate")
        self.rate = rate
        tokens = 1
    }

    public var burst: Double { max(1, rate / 4) }

    /// How many migrations may start at `nowMs` with `pending` waiting. Call `spend` with the number started.
    public mutating func allowance(nowMs: Int64, pending: Int) -> Int {
        if let last = lastMs {
            tokens = min(tokens + rate * Double(max(0, nowMs - last)) / 1000, burst)
        }
        lastMs = nowMs
        guard pending > 0 else { return 0 }
        return min(pending, Int(tokens.rounded(.down)))
    }

    public mutating func spend(_ n: Int) {
        tokens = max(0, tokens - Double(n))
    }
}

/// When a server may take groups, kept per server by the control loop (`membership_settle D`).
///
/// A server added by a reload may take groups from `seen + D` (set when the snapshot is built). One that was available
/// and comes back after being out (unhealthy, ejected, drained and enabled) waits `D` again from its return. A server
/// that was never available in this process (an `initial=unhealthy` server at start) takes groups as soon as it is
/// available and its reload time plus `D` has passed: nothing had been placed by its absence.
public struct SettleTracker: Sendable {
    public private(set) var everAvailable = false
    public init() {}

    /// Returns the new "takes groups from" time (monotonic ms) when it must change, else nil. `current` is the value now;
    /// `Int64.max` means "out, must settle when back".
    public mutating func observe(available: Bool, nowMs: Int64, settleMs: Int64, current: Int64) -> Int64? {
        if !available {
            return everAvailable && current != .max ? .max : nil
        }
        everAvailable = true
        return current == .max ? nowMs + max(0, settleMs) : nil
    }
}
