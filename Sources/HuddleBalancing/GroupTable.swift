// The live groups of one upstream (group key -> pinned server, member count), shared by all worker threads.

import Synchronization
import HuddleSync

/// A group is pinned to the server its first member was placed on, and keeps it while that server is usable, even if
/// the consistent hash would now choose another (a server was added, or bounded loads spilled the group): members of
/// one group must meet on one server. After its last member leaves, a group lingers for `lingerMs` so that a quick
/// reconnect (page reload, network blip) lands where the rest of the room will.
///
/// Touched only when a tunnel opens or closes, never per message. Sharded by key hash so that workers rarely contend;
/// each shard is a `Mutex` held only for a dictionary operation plus, on a group's first member, one `place()` call.
/// Servers are stored by identity, never by index, so the table survives reloads that renumber servers.
public final class GroupTable: Sendable {
    public struct Member: Sendable {
        public var server: String
        /// Members of the group including this one.
        public var members: Int
        /// True when `place()` chose the server: a new group, an expired one, or one whose server became unusable.
        public var isNewGroup: Bool
        /// When a live or lingering group was moved because its server became unusable: the server it had.
        public var previousServer: String?
        /// The placement this member joined: its `leave` and a migration's eviction name it. Unique in the process.
        public var placement: UInt64
        /// Migrate mode: a live group was re-placed by this join (it was misplaced, or its server could no longer keep
        /// it): the placement its old members hold, which the caller closes (WebSocket Close 1012).
        public var evicted: UInt64?

        public init(server: String, members: Int, isNewGroup: Bool, previousServer: String? = nil, placement: UInt64 = 0,
                    evicted: UInt64? = nil) {
            self.server = server
            self.members = members
            self.isNewGroup = isNewGroup
            self.previousServer = previousServer
            self.placement = placement
            self.evicted = evicted
        }
    }

    /// A live group the control loop found misplaced (`scan`), to migrate later by `migrate`.
    public struct MisplacedGroup: Sendable, Equatable {
        public var key: [UInt8]
        public var keyHash: UInt64
        public var server: String
        public var members: Int
        public var placement: UInt64
    }

    /// What `migrate` did with one misplaced group.
    public enum MigrationOutcome: Sendable, Equatable {
        /// Re-placed on the target: the old placement's members are to be closed.
        case moved(evicted: UInt64, from: String, members: Int)
        /// Its server is the target after all (the change was undone): only its stamp was renewed.
        case stays
        /// Gone, emptied, or re-placed meanwhile (a new member migrated it first): nothing to do.
        case gone
    }

    public struct GroupInfo: Sendable {
        public var key: [UInt8]
        public var server: String
        public var members: Int
        /// When the group was placed on `server`.
        public var sinceMs: Int64
        /// Marked by the last `scan`: its server is no longer the placement function's answer.
        public var misplaced: Bool

        public init(key: [UInt8], server: String, members: Int, sinceMs: Int64, misplaced: Bool = false) {
            self.key = key
            self.server = server
            self.members = members
            self.sinceMs = sinceMs
            self.misplaced = misplaced
        }
    }

    /// The dictionary key: the bytes decide equality; the precomputed stable hash feeds `Hasher` so that a lookup does
    /// not hash the bytes a second time. (`Hasher` here is process-local and never leaves this table.)
    struct Key: Hashable, Sendable {
        let hash: UInt64
        let bytes: [UInt8]

        func hash(into hasher: inout Hasher) { hasher.combine(hash) }
        static func == (a: Key, b: Key) -> Bool { a.hash == b.hash && a.bytes == b.bytes }
    }

    struct Entry: Sendable {
        var server: String
        var members: Int
        var sinceMs: Int64
        /// Meaningful only while `members == 0`: the group is dropped at this time.
        var lingerUntilMs: Int64
        /// This placement's id (process-wide unique): members hold it, `leave` and evictions match it.
        var placement: UInt64 = 0
        /// The upstream's placement view (`viewEpoch`) when the group was placed: a scan only judges groups placed under
        /// an older view, so a group moves at most once per change.
        var epoch: UInt64 = 0
        /// Set by `scan`: the server is no longer the placement function's answer.
        var misplaced = false
        /// Placed away from this owner because connecting to it failed (a retry excluded it): while it is still the
        /// owner, the group is not misplaced (moving it back would only fail again).
        var avoided: String? = nil

        func isAlive(at nowMs: Int64) -> Bool { members > 0 || lingerUntilMs > nowMs }
    }

    final class Shard: Sendable {
        let groups = Locked<[Key: Entry]>([:])
    }

    private let shards: [Shard]

    /// Placement ids come from one process-wide counter, so an id names one placement of one group of one table.
    private static let placementCounter = Atomic<UInt64>(0)
    static func nextPlacement() -> UInt64 { placementCounter.add(1, ordering: .relaxed).newValue }

    /// The placement view's generation: bumped by the control loop whenever the set of servers that take groups, their
    /// identities or weights change. Joins stamp new placements with it.
    private let epochValue = Atomic<UInt64>(1)
    /// Live placements replaced so far (migrations, and re-placements of live groups in migrate mode): a member can
    /// compare it with the value at its join to learn cheaply whether its placement may have been replaced.
    private let evictionsValue = Atomic<UInt64>(0)
    /// Live groups moved with their members closed (`huddle_group_migrations_total`).
    private let migrationsValue = Atomic<Int>(0)

    public var viewEpoch: UInt64 { epochValue.load(ordering: .acquiring) }
    /// Starts a new placement view (the control loop, when the servers that take groups changed); returns it.
    @discardableResult
    public func bumpEpoch() -> UInt64 { epochValue.add(1, ordering: .releasing).newValue }
    public var evictions: UInt64 { evictionsValue.load(ordering: .acquiring) }
    public var migrations: Int { migrationsValue.load(ordering: .relaxed) }

    public init(shards: Int = 64) {
        precondition(shards > 0, "at least one shard")
        self.shards = (0..<shards).map { _ in Shard() }
    }

    private func shard(for keyHash: UInt64) -> Shard {
        // The high half, so the shard does not correlate with the low bits a caller might also bucket by.
        shards[Int((keyHash >> 32) % UInt64(shards.count))]
    }

    /// Adds one member. A live (or lingering) group keeps its server while `isUsable(server)`; otherwise (new, expired,
    /// or its server is gone/unhealthy) `place()` chooses the server. `place()` runs under the shard lock, so concurrent
    /// first members of one group all get the same server; it must not call back into this table.
    /// nil if `place()` returns nil (the group, if any, is then left as it was).
    ///
    /// Members still connected to a group's previous server are not counted after a move; their `leave` names the old
    /// server and is ignored.
    public func join(
        key: [UInt8], keyHash: UInt64, nowMs: Int64, isUsable: (String) -> Bool, place: () -> String?
    ) -> Member? {
        join(key: key, keyHash: keyHash, nowMs: nowMs, keepsPin: { server, _ in isUsable(server) }, place: place)
    }

    /// `join`, where whether a live or lingering group keeps its server may depend on the group's member count:
    /// `keepsPin(server, members)` gets the members the group has now (0 while it lingers). A draining server keeps a
    /// group only while the group has members there; this decides that under the shard lock, where no member can
    /// join or leave in between.
    ///
    /// `migrate` (rebalance migrate): a live group marked misplaced by `scan` is re-placed by this join at once, and
    /// whenever a live group is re-placed (misplaced, or its server cannot keep it) the member returned names the old
    /// placement in `evicted`, for the caller to close its members. Without `migrate`, marks are ignored and old members
    /// stay where they are (rebalance keep).
    public func join(
        key: [UInt8], keyHash: UInt64, nowMs: Int64, migrate: Bool = false, avoided: String? = nil,
        keepsPin: (_ server: String, _ members: Int) -> Bool, place: () -> String?
    ) -> Member? {
        let k = Key(hash: keyHash, bytes: key)
        return shard(for: keyHash).groups.withLock { groups -> Member? in
            var previous: String?
            var evicted: UInt64?
            var pinnedAndMarked = false
            if var entry = groups[k], entry.isAlive(at: nowMs) {
                let pinned = keepsPin(entry.server, entry.members)
                if pinned && !(migrate && entry.misplaced) {
                    entry.members += 1
                    groups[k] = entry
                    return Member(server: entry.server, members: entry.members, isNewGroup: false, placement: entry.placement)
                }
                pinnedAndMarked = pinned
                previous = entry.server
                if migrate && entry.members > 0 { evicted = entry.placement }
            }
            guard let server = place() else { return nil }
            if pinnedAndMarked, var entry = groups[k], server == entry.server {
                // Marked misplaced, but the placement function answers its own server after all: it stays, unmarked.
                entry.misplaced = false
                entry.epoch = epochValue.load(ordering: .acquiring)
                entry.members += 1
                groups[k] = entry
                return Member(server: entry.server, members: entry.members, isNewGroup: false, placement: entry.placement)
            }
            let placement = Self.nextPlacement()
            groups[k] = Entry(server: server, members: 1, sinceMs: nowMs, lingerUntilMs: 0, placement: placement,
                              epoch: epochValue.load(ordering: .acquiring), avoided: avoided == server ? nil : avoided)
            if evicted != nil {
                evictionsValue.add(1, ordering: .releasing)
                migrationsValue.add(1, ordering: .relaxed)
            }
            return Member(server: server, members: 1, isNewGroup: true, previousServer: previous, placement: placement, evicted: evicted)
        }
    }

    /// Whether `placement` is still the group's current placement (a member that joined it may stay).
    public func isCurrent(key: [UInt8], keyHash: UInt64, placement: UInt64) -> Bool {
        let k = Key(hash: keyHash, bytes: key)
        return shard(for: keyHash).groups.withLock { $0[k]?.placement == placement }
    }

    /// Removes one member of `placement` (what its `join` returned). A group reaching 0 members lingers until
    /// `nowMs + lingerMs` (with `lingerMs <= 0` it is dropped at once). A member of a replaced placement (the group was
    /// moved) is not counted any more, and its leave changes nothing.
    public func leave(key: [UInt8], keyHash: UInt64, placement: UInt64, nowMs: Int64, lingerMs: Int64) {
        let k = Key(hash: keyHash, bytes: key)
        shard(for: keyHash).groups.withLock { groups in
            guard var entry = groups[k], entry.placement == placement, entry.members > 0 else { return }
            entry.members -= 1
            if entry.members == 0 {
                if lingerMs <= 0 {
                    groups[k] = nil
                    return
                }
                entry.lingerUntilMs = nowMs + lingerMs
            }
            groups[k] = entry
        }
    }

    /// Judges every live or lingering group against the current placement view (the control loop, on a view change and
    /// now and then while migrations are pending). `isMisplaced(keyHash, server, placedEpoch, avoided)` is the placement rule
    /// (it runs under the shard lock: pure, no call back into this table). A live misplaced group is marked and
    /// returned; a lingering misplaced one is dropped (its next member places it afresh, nobody to close); a marked group
    /// that is no longer misplaced is unmarked. One shard at a time, so joins elsewhere are not held up.
    public func scan(nowMs: Int64, isMisplaced: (_ keyHash: UInt64, _ server: String, _ placedEpoch: UInt64, _ avoided: String?) -> Bool) -> [MisplacedGroup] {
        var out: [MisplacedGroup] = []
        for shard in shards {
            shard.groups.withLock { groups in
                var drop: [Key] = []
                var mark: [Key] = []
                var unmark: [Key] = []
                for (key, entry) in groups {
                    guard entry.isAlive(at: nowMs) else { continue }
                    let wrong = isMisplaced(key.hash, entry.server, entry.epoch, entry.avoided)
                    if entry.members == 0 {
                        if wrong { drop.append(key) }
                        continue
                    }
                    if wrong {
                        if !entry.misplaced { mark.append(key) }
                        out.append(MisplacedGroup(key: key.bytes, keyHash: key.hash, server: entry.server, members: entry.members,
                                                  placement: entry.placement))
                    } else if entry.misplaced {
                        unmark.append(key)
                    }
                }
                // Changed after the walk: mutating while iterating would copy the whole shard.
                for key in drop { groups[key] = nil }
                for key in mark { groups[key]?.misplaced = true }
                for key in unmark { groups[key]?.misplaced = false }
            }
        }
        // A stable order (by key hash, then bytes): every replica migrates the same groups in the same order.
        out.sort { $0.keyHash != $1.keyHash ? $0.keyHash < $1.keyHash : $0.key.lexicographicallyPrecedes($1.key) }
        return out
    }

    /// Migrates one group found by `scan` to `target`, if it is still that placement, still marked and still has
    /// members: the group is re-placed on `target` with no members (lingering for `lingerMs`, so its reconnecting members
    /// find it), stamped with the current view, and the old placement is returned for its members to be closed.
    public func migrate(_ g: MisplacedGroup, to target: String, nowMs: Int64, lingerMs: Int64) -> MigrationOutcome {
        let k = Key(hash: g.keyHash, bytes: g.key)
        return shard(for: g.keyHash).groups.withLock { groups -> MigrationOutcome in
            guard var entry = groups[k], entry.placement == g.placement, entry.misplaced, entry.members > 0 else { return .gone }
            let epoch = epochValue.load(ordering: .acquiring)
            if entry.server == target {
                entry.misplaced = false
                entry.epoch = epoch
                groups[k] = entry
                return .stays
            }
            let from = entry.server
            let members = entry.members
            groups[k] = Entry(server: target, members: 0, sinceMs: nowMs, lingerUntilMs: nowMs + max(lingerMs, 0),
                              placement: Self.nextPlacement(), epoch: epoch)
            evictionsValue.add(1, ordering: .releasing)
            migrationsValue.add(1, ordering: .relaxed)
            return .moved(evicted: g.placement, from: from, members: members)
        }
    }

    /// Live groups currently marked misplaced, with their servers (for the admin API).
    public func misplaced(nowMs: Int64, limit: Int) -> (count: Int, groups: [GroupInfo]) {
        var count = 0
        var list: [GroupInfo] = []
        for shard in shards {
            shard.groups.withLock { groups in
                for (key, entry) in groups where entry.members > 0 && entry.misplaced {
                    count += 1
                    if list.count < limit {
                        list.append(GroupInfo(key: key.bytes, server: entry.server, members: entry.members, sinceMs: entry.sinceMs, misplaced: true))
                    }
                }
            }
        }
        list.sort { $0.key.lexicographicallyPrecedes($1.key) }
        return (count, list)
    }

    /// Removes one member placed on `server`. A group reaching 0 members lingers until `nowMs + lingerMs` (with
    /// `lingerMs <= 0` it is dropped at once), then is dropped by a later `join` or `sweep`.
    public func leave(key: [UInt8], keyHash: UInt64, server: String, nowMs: Int64, lingerMs: Int64) {
        let k = Key(hash: keyHash, bytes: key)
        shard(for: keyHash).groups.withLock { groups in
            guard var entry = groups[k], entry.server == server, entry.members > 0 else { return }
            entry.members -= 1
            if entry.members == 0 {
                if lingerMs <= 0 {
                    groups[k] = nil
                    return
                }
                entry.lingerUntilMs = nowMs + lingerMs
            }
            groups[k] = entry
        }
    }

    /// The server of a live or lingering group and its member count (0 while lingering); nil if there is none.
    public func lookup(key: [UInt8], keyHash: UInt64, nowMs: Int64) -> (server: String, members: Int)? {
        let k = Key(hash: keyHash, bytes: key)
        return shard(for: keyHash).groups.withLock { groups -> (server: String, members: Int)? in
            guard let entry = groups[k], entry.isAlive(at: nowMs) else { return nil }
            return (entry.server, entry.members)
        }
    }

    /// The `n` largest groups with at least one member, by members descending, then key bytes ascending.
    /// Copies each shard under its lock, one at a time: for the admin API, not the data path.
    public func top(_ n: Int, nowMs: Int64) -> [GroupInfo] {
        guard n > 0 else { return [] }
        var all: [GroupInfo] = []
        for shard in shards {
            let part = shard.groups.withLock { groups -> [GroupInfo] in
                groups.compactMap { key, entry in
                    entry.members > 0
                        ? GroupInfo(key: key.bytes, server: entry.server, members: entry.members, sinceMs: entry.sinceMs,
                                    misplaced: entry.misplaced)
                        : nil
                }
            }
            all.append(contentsOf: part)
        }
        all.sort { a, b in
            a.members != b.members ? a.members > b.members : a.key.lexicographicallyPrecedes(b.key)
        }
        return Array(all.prefix(n))
    }

    /// Groups with at least one member (lingering ones are not counted) and their members, in all and per server.
    public func totals(nowMs: Int64) -> (groups: Int, members: Int, perServer: [String: (groups: Int, members: Int)]) {
        var groupCount = 0
        var memberCount = 0
        var perServer: [String: (groups: Int, members: Int)] = [:]
        for shard in shards {
            shard.groups.withLock { groups in
                for entry in groups.values where entry.members > 0 {
                    groupCount += 1
                    memberCount += entry.members
                    perServer[entry.server, default: (0, 0)].groups += 1
                    perServer[entry.server, default: (0, 0)].members += entry.members
                }
            }
        }
        return (groupCount, memberCount, perServer)
    }

    /// Groups with no members still within their linger time: pinned, but not counted by `totals`.
    public func lingering(nowMs: Int64) -> Int {
        var count = 0
        for shard in shards {
            count += shard.groups.withLock { groups in
                groups.values.reduce(0) { $0 + ($1.members == 0 && $1.lingerUntilMs > nowMs ? 1 : 0) }
            }
        }
        return count
    }

    /// Drops lingering groups whose time is up. One shard at a time, so joins elsewhere are not held up.
    public func sweep(nowMs: Int64) {
        for shard in shards {
            shard.groups.withLock { groups in
                let expired = groups.compactMap { key, entry in entry.isAlive(at: nowMs) ? nil : key }
                for key in expired { groups[key] = nil }
            }
        }
    }
}
