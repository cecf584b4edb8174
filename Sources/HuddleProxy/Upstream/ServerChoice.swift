// Which server an exchange goes to: the group's server for a keyed upgrade (joining the group), the key's owner for
// a keyed request, the server a sticky cookie names while it takes traffic, else the upstream's balancer (p2c or
// smooth round robin). Never a server already tried.
import HuddleBalancing
import HuddleSys

/// The chosen server, and for a keyed upgrade the new member's place in its group.
struct ServerChoice: ~Copyable {
    let server: ServerRuntime
    /// The server's index in the upstream; -1 where a group chose it (hash upstreams have no sticky cookie).
    var index = -1
    var membership: GroupMembership?
    /// `rebalance migrate`: this join re-placed a live group; the old placement's members are to be closed (1012).
    var evicted: (placement: UInt64, from: String)? = nil

    /// `excluded` are server uids this exchange already failed on. For an upgrade with a key, the returned membership
    /// is the tunnel's place in its group (dropping it leaves the group). `sticky` is the server index a sticky cookie
    /// names (-1: none): it is chosen while it takes traffic and has not failed this exchange.
    static func choose(
        upstream u: UpstreamRuntime, key: [UInt8]?, keyHash: UInt64, upgrade: Bool, excluded: [Int], nowMs: Int64,
        rng: inout FastRandom, roundRobin: inout SmoothRoundRobin, sticky: Int = -1, capped: Bool = false
    ) -> ServerChoice? {
        let servers = u.servers
        // `capped` (some server has max_conns): a server at its cap takes no new request; false costs one predictable
        // branch per server looked at.
        // `backup` servers: only while no primary (not yet tried) takes traffic; false without backups, at no cost.
        let backupTier = u.backupTierActive(excluded: excluded)
        func eligible(_ i: Int) -> Bool {
            let s = servers[i]
            return s.isAvailable && !excluded.contains(s.uid) && (!capped || s.hasRoom) && u.inTier(i, backupTier: backupTier)
        }
        if u.config.balance == .hash, let key {
            if upgrade {
                // A tunnel joins its group: the first member places it, later members follow it.
                let factor = u.config.hashBalanceFactor
                let migrate = u.config.rebalance.isMigrate
                // A live group keeps its server while that server takes traffic, or drains with members of the group
                // still on it; a new, lingering-on-a-draining-server or moved group goes only to a server that takes
                // groups. With rebalance migrate, a group the control loop marked misplaced is re-placed by this join
                // (its old members are then closed with 1012, so the group ends whole on its new server).
                // A retry that excluded the group's owner (connecting to it failed) remembers it: the control loop will
                // not move the group back to it while it is still the owner. Computed on retries only.
                var avoided: String? = nil
                if !excluded.isEmpty, let o = u.groupOwner(keyHash: keyHash, nowMs: nowMs), excluded.contains(servers[o].uid) {
                    avoided = servers[o].identity
                }
                // Read before the join: any replacement of the placement joined below comes after it, so a member
                // whose count still matches later knows for sure its placement was not replaced.
                let evictionsBefore = u.groups.evictions
                let member = u.groups.join(key: key, keyHash: keyHash, nowMs: nowMs, migrate: migrate, avoided: avoided, keepsPin: { id, members in
                    guard let s = u.server(identity: id) else { return false }
                    return s.keepsGroup(members: members) && !excluded.contains(s.uid)
                }, place: {
                    let i: Int?
                    if let f = factor {
                        let strict = u.anyServerTakesGroups(nowMs: nowMs, excluded: excluded)
                        i = u.hash.place(keyHash: keyHash, factor: f,
                                         isEligible: { strict ? servers[$0].takesGroups(nowMs: nowMs) && !excluded.contains(servers[$0].uid) && u.inTier($0, backupTier: backupTier) : eligible($0) },
                                         load: { servers[$0].activeConnections.load(ordering: .relaxed) })
                    } else {
                        i = u.groupOwner(keyHash: keyHash, nowMs: nowMs, excluded: excluded)
                    }
                    return i.map { servers[$0].identity }
                })
                guard let m = member else { return nil }
                // The membership exists from here on: if the server vanished meanwhile, dropping it leaves the group.
                let membership = GroupMembership(groups: u.groups, key: key, keyHash: keyHash, placement: m.placement,
                                                 evictionsAtJoin: evictionsBefore, lingerMs: u.config.groupLinger)
                guard let s = u.server(identity: m.server) else { return nil }
                var choice = ServerChoice(server: s, membership: membership)
                if let e = m.evicted { choice.evicted = (e, m.previousServer ?? "?") }
                return choice
            }
            // A plain request with a key follows the live group if there is one, else the key's owner.
            // With max_conns, a full server makes the request wait for it (nil here, the caller queues): the group does
            // not move for a moment's load (HAProxy's hash with maxconn queues on the server, too).
            if let g = u.groups.lookup(key: key, keyHash: keyHash, nowMs: nowMs),
               let s = u.server(identity: g.server), s.keepsGroup(members: g.members), !excluded.contains(s.uid) {
                if capped && !s.hasRoom { return nil }
                return ServerChoice(server: s, membership: nil)
            }
            guard let i = u.groupOwner(keyHash: keyHash, nowMs: nowMs, excluded: excluded) else { return nil }
            if capped && !servers[i].hasRoom { return nil }
            return ServerChoice(server: servers[i], membership: nil)
        }
        if sticky >= 0, sticky < servers.count, eligible(sticky) {
            return ServerChoice(server: servers[sticky], index: sticky, membership: nil)
        }
        let picked: Int?
        switch u.config.balance {
        case .roundRobin:
            picked = roundRobin.pick(isEligible: { eligible($0) })
        default:
            picked = u.p2c.pick(using: &rng, isEligible: { eligible($0) }, load: { servers[$0].balancingLoad(nowMs: nowMs) })
        }
        guard let i = picked else { return nil }
        return ServerChoice(server: servers[i], index: i, membership: nil)
    }
}
