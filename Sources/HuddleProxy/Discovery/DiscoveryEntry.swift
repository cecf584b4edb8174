// One `resolve` line: what its lookups found, what is held while they fail, when to ask again, and what to log.
// Pure (the clock is passed in), so the TTL clamping and the hold rules are unit-tested without DNS.
import HuddleConfig
import HuddleDNS
import HuddleResolver

/// When to look up again.
struct DiscoveryTiming: Equatable {
    /// `resolver valid=`: caps the TTL.
    var validMs: Int64? = nil
    var holdMs: Int64 = ResolverConfig.defaultHold

    /// Never sooner than this: a TTL of 0 must not turn into a query loop.
    static let floorMs: Int64 = 1000
    /// Never later than this: a day-long TTL must not hide a pod change for a day.
    static let ceilingMs: Int64 = 300_000
    /// An answer with no TTL at all (empty, no SOA).
    static let unknownTTLMs: Int64 = 5000

    /// The answer's TTL, capped by `valid=`, within [1 s, 5 min].
    func refreshMs(ttl: UInt32?) -> Int64 {
        var ms = ttl.map { Int64($0) * 1000 } ?? Self.unknownTTLMs
        if let v = validMs { ms = min(ms, v) }
        return min(max(ms, Self.floorMs), Self.ceilingMs)
    }

    /// After failures or while holding: 1 s, 2 s, 4 s... up to 30 s.
    static func retryMs(failures: Int) -> Int64 {
        min(30_000, 1000 << Int64(min(max(failures - 1, 0), 5)))
    }
}

struct DiscoveryEntry {
    let key: String
    let upstream: String
    let line: ServerConfig
    private(set) var servers: [DiscoveredServer] = []
    var nextRefreshMs: Int64 = 0
    var inFlight = false
    private var v4 = HeldSet<String>()
    private var v6 = HeldSet<String>()
    private var targets = HeldSet<ServiceTarget>()
    private var failures = 0
    /// A hold was announced in the log (so a streak of failures is logged once, and its end once).
    private var holdLogged = false

    init(upstream: String, line: ServerConfig) {
        self.upstream = upstream
        self.line = line
        key = DiscoveryKey.of(upstream: upstream, server: line)
    }

    /// The name as written (an SRV name or a host).
    var name: String { line.address.host }
    private var what: String { line.service ? "\(name) (SRV)" : "\(name):\(line.address.port)" }

    /// What applying an answer did: whether the servers changed, and what to log (level, line).
    struct Outcome {
        var changed = false
        var logs: [(warn: Bool, line: String)] = []
    }

    mutating func apply(_ lookup: AddressLookup, timing: DiscoveryTiming, nowMs: Int64) -> Outcome {
        inFlight = false
        let a = try? lookup.ipv4.get(), b = try? lookup.ipv6.get()
        let failure = [lookup.ipv4, lookup.ipv6].compactMap { r -> DNSFailure? in if case .failure(let f) = r { return f } else { return nil } }.first
        let events = [v4.update(a?.addresses, nowMs: nowMs, holdMs: timing.holdMs), v6.update(b?.addresses, nowMs: nowMs, holdMs: timing.holdMs)]
        let ttl = [a?.ttl, b?.ttl].compactMap { $0 }.min()
        let found = DiscoveredServer.fromAddresses(v4.items + v6.items, line: line)
        return finish(found, events: events, failure: failure, emptyAnswer: a?.addresses.isEmpty != false && b?.addresses.isEmpty != false,
                      answered: a != nil || b != nil, ttl: ttl, timing: timing, nowMs: nowMs)
    }

    mutating func apply(_ lookup: ServiceLookup, timing: DiscoveryTiming, nowMs: Int64) -> Outcome {
        inFlight = false
        var failure: DNSFailure? = nil
        var answer: [ServiceTarget]? = nil
        var ttl: UInt32? = nil
        switch lookup.result {
        case .success(let r):
            answer = r.targets
            ttl = r.ttl
        case .failure(let f):
            failure = f
        }
        let event = targets.update(answer, nowMs: nowMs, holdMs: timing.holdMs)
        let found = DiscoveredServer.fromTargets(targets.items.map { ($0.host, $0.port, $0.weight, $0.address) }, line: line)
        return finish(found, events: [event], failure: failure, emptyAnswer: answer?.isEmpty == true, answered: answer != nil, ttl: ttl,
                      timing: timing, nowMs: nowMs)
    }

    /// `answered`: some question had an answer (an A answer while AAAA failed still counts: the TTL schedule goes on).
    private mutating func finish(_ found: [DiscoveredServer], events: [HoldEvent], failure: DNSFailure?, emptyAnswer: Bool,
                                 answered: Bool, ttl: UInt32?, timing: DiscoveryTiming, nowMs: Int64) -> Outcome {
        var out = Outcome()
        let holding = events.compactMap { e -> Int64? in if case .holding(let until) = e { return until } else { return nil } }.min()
        let expired = events.contains(.expired)
        failures = failure == nil ? 0 : failures + 1
        let problem = failure.map { "lookup failed (\($0))" } ?? (emptyAnswer ? "answer has no \(line.service ? "targets" : "addresses")" : nil)

        if let until = holding, let problem, !holdLogged {
            holdLogged = true
            out.logs.append((true, "upstream \(upstream): \(what): \(problem); keeping the last \(servers.count) server(s) "
                + "for up to \(Self.seconds(until - nowMs)) more"))
        } else if holding == nil, let failure, failures == 1 {
            out.logs.append((true, "upstream \(upstream): \(what): lookup failed (\(failure)); "
                + (found.isEmpty ? "no servers from it" : "using the addresses that did answer")))
        }
        if expired {
            out.logs.append((true, "upstream \(upstream): \(what): no usable answer for \(Self.seconds(timing.holdMs)); "
                + "its held servers are removed"))
            holdLogged = false
        }
        if holding == nil, !expired, holdLogged {
            holdLogged = false
            out.logs.append((false, "upstream \(upstream): \(what): answers again"))
        }
        if found != servers {
            let old = Set(servers.map(\.identity)), new = Set(found.map(\.identity))
            let added = found.map(\.identity).filter { !old.contains($0) }
            let removed = servers.map(\.identity).filter { !new.contains($0) }
            var change: [String] = []
            if !added.isEmpty { change.append("added \(Self.list(added))") }
            if !removed.isEmpty { change.append("removed \(Self.list(removed))") }
            if change.isEmpty { change.append("addresses or weights changed") }
            out.logs.append((false, "upstream \(upstream): \(what): \(found.count) server(s): \(change.joined(separator: "; "))"))
            servers = found
            out.changed = true
        }
        var wait = answered && holding == nil ? timing.refreshMs(ttl: ttl) : DiscoveryTiming.retryMs(failures: max(failures, 1))
        if let until = holding { wait = min(wait, max(until - nowMs, DiscoveryTiming.floorMs)) }
        nextRefreshMs = nowMs + wait
        return out
    }

    /// At most ten names, then how many more: a 150-pod service must not make a 4 kB log line.
    static func list(_ names: [String]) -> String {
        names.count <= 10 ? names.joined(separator: ", ") : names.prefix(10).joined(separator: ", ") + " and \(names.count - 10) more"
    }

    static func seconds(_ ms: Int64) -> String {
        ms % 1000 == 0 ? "\(ms / 1000)s" : "\((Double(ms) / 100).rounded() / 10)s"
    }
}
