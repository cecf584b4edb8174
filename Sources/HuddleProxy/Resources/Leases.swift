// Claims on shared counters, held by exactly one owner and released when that owner drops them.
//
// The rule (docs/ARCHITECTURE.md): a counter that one party raises is lowered by the deinit of a non-copyable token
// that party holds. A token cannot be copied, so it cannot be released twice; dropping it (`claim = nil`, or its
// owner ending) is the release, so no path can forget it either.
import HuddleBalancing
import HuddleSys

/// One request's place in a server's in-flight count (what p2c reads as load, and what `max_conns` caps).
struct InFlightClaim: ~Copyable {
    let server: ServerRuntime
    /// The queue whose waiters a release may let in: set for claims on a server with `max_conns` only.
    let queue: AdmissionQueue?

    /// A claim on a server without a cap (or one that must be taken regardless, such as a group member's).
    init(_ server: ServerRuntime, queue: AdmissionQueue? = nil) {
        self.server = server
        self.queue = queue
        if queue == nil {
            server.inFlight.add(1, ordering: .relaxed)
        } else {
            server.inFlight.add(1, ordering: .sequentiallyConsistent)
        }
    }

    /// One of a capped server's slots, or nil when it is at `max_conns`.
    init?(admitting server: ServerRuntime, queue: AdmissionQueue) {
        guard server.claimSlot() else { return nil }
        self.server = server
        self.queue = queue
    }

    /// The server answered this request in full: it counts as served. The claim ends here.
    consuming func complete() {
        server.requestsTotal.add(1, ordering: .relaxed)
    }

    deinit {
        // Without a cap (the common case) this is the one branch the queue costs a release.
        if let q = queue {
            server.inFlight.subtract(1, ordering: .sequentiallyConsistent)
            q.slotFreed()
        } else {
            server.inFlight.subtract(1, ordering: .relaxed)
        }
    }
}

/// One tunnel's place in its server's tunnel count (shown by the admin port).
struct ServerTunnelCount: ~Copyable {
    let server: ServerRuntime

    init(_ server: ServerRuntime) {
        self.server = server
        server.tunnels.add(1, ordering: .relaxed)
    }

    deinit { server.tunnels.subtract(1, ordering: .relaxed) }
}

/// One tunnel's membership of its group: the group stays pinned to its server while it has members. It names the
/// placement it joined, so a member of a group that was moved meanwhile leaves nothing (it is no longer counted).
struct GroupMembership: ~Copyable {
    let groups: GroupTable
    let key: [UInt8]
    let keyHash: UInt64
    let placement: UInt64
    /// The table's eviction count read just before the join: unchanged later means the placement cannot have been
    /// replaced.
    let evictionsAtJoin: UInt64
    let lingerMs: Int64

    /// Whether the placement joined is still the group's (one atomic load unless some placement was replaced since).
    var isCurrent: Bool {
        groups.evictions == evictionsAtJoin || groups.isCurrent(key: key, keyHash: keyHash, placement: placement)
    }

    deinit { groups.leave(key: key, keyHash: keyHash, placement: placement, nowMs: Sys.monotonicMs(), lingerMs: lingerMs) }
}

/// A worker's own gauges: touched only on its loop thread, so plain integers.
// SAFETY: on its worker's loop thread only.
final class LoopCounters {
    var clientConnections = 0
    var upstreamConnections = 0
    var tunnels = 0
    /// Cache tokens (Cache/CacheTokens.swift): stored entries being sent or kept for stale-if-error, requests waiting
    /// for a collapsed fill, fills led, responses being stored.
    var cacheReads = 0
    var cacheWaits = 0
    var cacheLeads = 0
    var cacheFills = 0
}

/// One unit of a `LoopCounters` gauge, held by the object it counts.
struct CountToken: ~Copyable {
    enum Gauge { case clientConnections, upstreamConnections, tunnels }
    // SAFETY: the counters belong to the worker, which outlives every connection (and so every token) on its loop.
    unowned(unsafe) let counters: LoopCounters
    let gauge: Gauge

    init(_ counters: LoopCounters, _ gauge: Gauge) {
        self.counters = counters
        self.gauge = gauge
        Self.add(counters, gauge, 1)
    }

    deinit { Self.add(counters, gauge, -1) }

    @inline(__always) private static func add(_ c: LoopCounters, _ g: Gauge, _ d: Int) {
        switch g {
        case .clientConnections: c.clientConnections += d
        case .upstreamConnections: c.upstreamConnections += d
        case .tunnels: c.tunnels += d
        }
    }
}
