// Group migration on the control loop: notices when the servers that take groups change, finds the groups that are
// misplaced by it, and moves them at the upstream's pace by posting evictions to the workers that hold their tunnels.
// Workers never scan: a worker only acts on a mark (a new member of a misplaced group moves it at once) or on an
// eviction posted here. Rules in HuddleBalancing/GroupMigration.swift; docs/HASHING.md, "Migration".
import HuddleBalancing
import HuddleConfig
import HuddleIO
import HuddleJSON
import HuddleSync
import HuddleSys

/// Posts group evictions (placement ids of moved groups) to every worker's loop; each closes its tunnels that are
/// members of them with Close 1012. Workers register once when they are created.
public final class GroupMigrator: Sendable {
    private let sinks = Locked<[(loop: EventLoop, handler: @Sendable (Set<UInt64>) -> Void)]>([])

    public init() {}

    func add(loop: EventLoop, handler: @escaping @Sendable (Set<UInt64>) -> Void) {
        sinks.withLock { $0.append((loop, handler)) }
    }

    /// Every worker (tunnels of one group may live on several) gets the batch on its own loop.
    func post(_ placements: Set<UInt64>) {
        guard !placements.isEmpty else { return }
        for s in sinks.withLock({ $0 }) {
            let h = s.handler
            s.loop.execute { h(placements) }
        }
    }
}

/// What the admin port shows of one hash upstream's migrations (`/api/groups`).
public struct MigrationStatus: Sendable {
    /// `migrate` or `keep`.
    public var mode: String
    public var rate: Double?
    public var settleMs: Int64
    /// The placement view's generation (bumped on every change of the servers that take groups).
    public var epoch: UInt64
    /// When the latest change was noticed (wall clock ms); nil before any change since start.
    public var lastChangeWallMs: Int64?
    /// Live groups found misplaced by the scan that followed the latest change.
    public var misplacedAtChange: Int
    /// Groups this control loop moved since the latest change (a new member's move is not counted here).
    public var movedSinceChange: Int
    /// Misplaced live groups waiting for their turn.
    public var pending: Int
    /// Servers not yet taking groups because they are settling: name and until when (wall clock ms).
    public var settling: [(server: String, untilWallMs: Int64)]
}

// SAFETY: on the control loop's thread only; `status` is a lock read by the admin port (same thread today).
final class MigrationDriver: TimerNode, @unchecked Sendable {
    static let tickMs: Int64 = 100
    /// While migrations are pending (or shortly after a change), the table is judged again this often: a group placed
    /// with a view a worker read just before the change is caught by the next scan.
    static let rescanMs: Int64 = 1000
    static let rescanWindowMs: Int64 = 10_000

    let loop: EventLoop
    private let runtime: @Sendable () -> RuntimeConfig
    private let migrator: GroupMigrator
    private let log: ErrorLog
    let status = Locked<[String: MigrationStatus]>([:])

    private struct ViewEntry: Equatable {
        var identity: String
        var weight: Int
        var eligible: Bool
    }

    private struct UpstreamState {
        var signature: [ViewEntry]? = nil
        /// Misplaced groups, most preferred last (popLast); sorted by key hash so every replica moves them in one order.
        var queue: [GroupTable.MisplacedGroup] = []
        var pacer: MigrationPacer? = nil
        var lastScanMs: Int64 = 0
        var changeMs: Int64 = -1_000_000
        var changeWallMs: Int64? = nil
        var misplacedAtChange = 0
        var movedSinceChange = 0
        var reportedDone = true
        /// The last scan saw groups placed away from a failing owner: judged again every second until none is left.
        var sawAvoided = false
    }

    private var states: [String: UpstreamState] = [:]
    private var settle: [Int: SettleTracker] = [:]
    private var drainLogged: Set<Int> = []
    private var stopped = false

    init(loop: EventLoop, runtime: @escaping @Sendable () -> RuntimeConfig, migrator: GroupMigrator, log: ErrorLog) {
        self.loop = loop
        self.runtime = runtime
        self.migrator = migrator
        self.log = log
        super.init()
        tick(now: loop.now)
    }

    override func timerFired(now: Int64) {
        tick(now: now)
    }

    func stop() {
        stopped = true
        loop.timers.cancel(self)
    }

    /// One pass: settle clocks, view changes (then a scan), paced migrations, finished drains. Cheap when nothing
    /// changed: O(servers) per hash upstream.
    func tick(now: Int64) {
        guard !stopped else { return }
        let rt = runtime()
        let wall = Sys.wallClockMs()
        var evictions: Set<UInt64> = []
        var statuses: [String: MigrationStatus] = [:]
        var liveUIDs: Set<Int> = []
        for u in rt.upstreams {
            for s in u.servers {
                liveUIDs.insert(s.uid)
                noteDrain(u, s)
            }
            guard u.config.balance == .hash else { continue }
            for s in u.servers {
                var t = settle[s.uid] ?? SettleTracker()
                if let v = t.observe(available: s.isAvailable, nowMs: now, settleMs: u.config.membershipSettle,
                                     current: s.groupsFromMs.load(ordering: .relaxed)) {
                    s.groupsFromMs.store(v, ordering: .relaxed)
                }
                settle[s.uid] = t
            }
            var st = states[u.name] ?? UpstreamState()
            let eligible = u.groupEligibility(nowMs: now)
            let signature = u.servers.indices.map { ViewEntry(identity: u.servers[$0].identity, weight: u.hash.weights[$0], eligible: eligible[$0]) }
            var changed = false
            if st.signature != signature {
                let first = st.signature == nil
                st.signature = signature
                u.groups.bumpEpoch()
                if !first {
                    changed = true
                    st.changeMs = now
                    st.changeWallMs = wall
                }
            }
            let rescan = now - st.lastScanMs >= Self.rescanMs && (!st.queue.isEmpty || st.sawAvoided || now - st.changeMs < Self.rescanWindowMs)
            if changed || rescan {
                (st.queue, st.sawAvoided) = scan(u, eligible: eligible, now: now)
                st.lastScanMs = now
                if changed {
                    st.misplacedAtChange = st.queue.count
                    st.movedSinceChange = 0
                    st.reportedDone = st.queue.isEmpty
                    let view = signature.filter(\.eligible).map(\.identity).joined(separator: ", ")
                    log.info("upstream \(u.name): the servers taking groups are now [\(view)]; \(st.queue.count) live group(s) misplaced"
                             + (u.config.rebalance.rate.map { ", migrating \(Self.rateText($0)) per second" } ?? " (rebalance keep: they stay until they empty)"))
                }
            }
            if case .migrate(let rate) = u.config.rebalance {
                if st.pacer?.rate != rate { st.pacer = MigrationPacer(rate: rate) }
                var allowed = st.pacer!.allowance(nowMs: now, pending: st.queue.count)
                var started = 0
                while allowed > 0, let g = st.queue.popLast() {
                    guard let target = migrationTarget(u, g, eligible: eligible) else { continue }
                    switch u.groups.migrate(g, to: u.servers[target].identity, nowMs: now, lingerMs: u.config.groupLinger) {
                    case .moved(let evicted, let from, let members):
                        evictions.insert(evicted)
                        started += 1
                        allowed -= 1
                        st.movedSinceChange += 1
                        log.debug("upstream \(u.name): group \(JSONEscaping.quoted(bytes: g.key)) migrates from \(from) to \(u.servers[target].identity): closing its \(members) member(s) with 1012")
                    case .stays, .gone:
                        continue
                    }
                }
                st.pacer!.spend(started)
                if st.queue.isEmpty && !st.reportedDone {
                    st.reportedDone = true
                    log.info("upstream \(u.name): migration done: \(st.movedSinceChange) group(s) moved in \(Self.secondsText(now - st.changeMs))")
                }
            }
            states[u.name] = st
            var settling: [(server: String, untilWallMs: Int64)] = []
            for s in u.servers {
                let from = s.groupsFromMs.load(ordering: .relaxed)
                if s.isAvailable && from > now && from != .max { settling.append((s.identity, wall + (from - now))) }
            }
            statuses[u.name] = MigrationStatus(
                mode: u.config.rebalance.isMigrate ? "migrate" : "keep", rate: u.config.rebalance.rate, settleMs: u.config.membershipSettle,
                epoch: u.groups.viewEpoch, lastChangeWallMs: st.changeWallMs, misplacedAtChange: st.misplacedAtChange,
                movedSinceChange: st.movedSinceChange, pending: st.queue.count, settling: settling)
        }
        // Forget servers no reload keeps.
        settle = settle.filter { liveUIDs.contains($0.key) }
        drainLogged.formIntersection(liveUIDs)
        let names = Set(rt.upstreams.map(\.name))
        states = states.filter { names.contains($0.key) }
        status.withLock { $0 = statuses }
        migrator.post(evictions)
        loop.timers.schedule(self, at: now + Self.tickMs)
    }

    /// Marks (and returns, in migration order) the live groups the current view misplaces; also whether some group
    /// was placed away from a failing owner (then the table is judged again every second, to move it back once the owner
    /// has recovered).
    private func scan(_ u: UpstreamRuntime, eligible: [Bool], now: Int64) -> ([GroupTable.MisplacedGroup], Bool) {
        let epoch = u.groups.viewEpoch
        var index: [String: Int] = [:]
        for (i, s) in u.servers.enumerated() { index[s.identity] = i }
        let hash = u.hash
        let servers = u.servers
        var sawAvoided = false
        let found = u.groups.scan(nowMs: now) { keyHash, server, placedEpoch, avoided in
            let si = index[server]
            let serverEligible = si.map { eligible[$0] } ?? false
            if serverEligible && placedEpoch >= epoch && avoided == nil { return false }
            let owner = serverEligible ? hash.owner(keyHash: keyHash, isEligible: { eligible[$0] }) : nil
            let avoidedIndex = avoided.flatMap { index[$0] }
            let failing = owner.map { servers[$0].health.consecutiveFailures.load(ordering: .relaxed) > 0 } ?? false
            let wrong = GroupPlacement.isMisplaced(server: si, serverEligible: serverEligible, owner: owner, placedEpoch: placedEpoch,
                                                   epoch: epoch, avoided: avoidedIndex, ownerFailing: failing)
            if !wrong && avoidedIndex != nil && owner == avoidedIndex { sawAvoided = true }
            return wrong
        }
        return (found.reversed(), sawAvoided)
    }

    /// Where a misplaced group goes: its owner among the servers that take groups (with bounded loads, the first of its
    /// preference order with room).
    private func migrationTarget(_ u: UpstreamRuntime, _ g: GroupTable.MisplacedGroup, eligible: [Bool]) -> Int? {
        if let f = u.config.hashBalanceFactor {
            let servers = u.servers
            return u.hash.place(keyHash: g.keyHash, factor: f, isEligible: { eligible[$0] },
                                load: { servers[$0].activeConnections.load(ordering: .relaxed) })
        }
        return u.hash.owner(keyHash: g.keyHash, isEligible: { eligible[$0] })
    }

    /// A draining server is done when nothing is left on it: logged once (its state stays draining; `enable` undoes).
    private func noteDrain(_ u: UpstreamRuntime, _ s: ServerRuntime) {
        if s.drainComplete {
            if drainLogged.insert(s.uid).inserted {
                log.info("upstream \(u.name) server \(s.identity): drain complete: no tunnel or request left on it (it stays draining until enabled or removed)")
            }
        } else if !s.health.flags.contains(.draining) {
            drainLogged.remove(s.uid)
        }
    }

    static func rateText(_ r: Double) -> String { r == r.rounded() ? String(Int(r)) : String(r) }
    static func secondsText(_ ms: Int64) -> String { String(format1(Double(ms) / 1000)) + " s" }
    private static func format1(_ v: Double) -> String {
        let tenths = Int((v * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}
