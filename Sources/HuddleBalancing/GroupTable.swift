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

        public init(server: String, members: Int, isNewGroup: Bool, previousServer: String? = nil) {
            self.server = server
            self.members = members
            self.isNewGroup = isNewGroup
            self.previousServer = previousServer
        }
    }

    public struct GroupInfo: Sendable {
        public var key: [UInt8]
        public var server: String
        public var members: Int
        /// When the group was placed on `server`.
        public var sinceMs: Int64

        public init(key: [UInt8], server: String, members: Int, sinceMs: Int64) {
            self.key = key
            self.server = server
            self.members = members
            self.sinceMs = sinceMs
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

        func isAlive(at nowMs: Int64) -> Bool { members > 0 || lingerUntilMs > nowMs }
    }

    final class Shard: Sendable {
        let groups = Locked<[Key: Entry]>([:])
    }

    private let shards: [Shard]

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
    public func join(
        key: [UInt8], keyHash: UInt64, nowMs: Int64, keepsPin: (_ server: String, _ members: Int) -> Bool, place: () -> String?
    ) -> Member? {
        let k = Key(hash: keyHash, bytes: key)
        return shard(for: keyHash).groups.withLock { groups -> Member? in
            var previous: String?
            if var entry = groups[k], entry.isAlive(at: nowMs) {
                if keepsPin(entry.server, entry.members) {
                    entry.members += 1
                    groups[k] = entry
                    return Member(server: entry.server, members: entry.members, isNewGroup: false)
                }
                previous = entry.server
            }
            guard let server = place() else { return nil }
            groups[k] = Entry(server: server, members: 1, sinceMs: nowMs, lingerUntilMs: 0)
            return Member(server: server, members: 1, isNewGroup: true, previousServer: previous)
        }
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
                        ? GroupInfo(key: key.bytes, server: entry.server, members: entry.members, sinceMs: entry.sinceMs)
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
