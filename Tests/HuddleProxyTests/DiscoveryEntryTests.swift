// Discovery without DNS: TTL clamping, the hold time, identities, SRV weights, and snapshots that revive a server
// coming back (the same object, its counters carried on).
import HuddleConfig
import HuddleDNS
@testable import HuddleProxy
@testable import HuddleResolver
import XCTest

final class DiscoveryEntryTests: XCTestCase {
    private func line(_ text: String) throws -> ServerConfig {
        try XCTUnwrap(ConfigParser.parse(text: "upstream web { \(text) }", file: "d.conf").upstreams.first?.servers.first)
    }

    private func addresses(_ v4: [String]?, _ v6: [String]? = [], ttl: UInt32 = 30) -> AddressLookup {
        let r = { (a: [String]?) -> Result<AddressSet, DNSFailure> in a.map { .success(AddressSet(addresses: $0, ttl: ttl)) } ?? .failure(.timeout) }
        return AddressLookup(name: "web.ns", ipv4: r(v4), ipv6: r(v6))
    }

    func testRefreshFollowsTheTTLWithinFloorCeilingAndValid() {
        let t = DiscoveryTiming()
        XCTAssertEqual(t.refreshMs(ttl: 0), 1000, "a TTL of 0 is asked again after 1 s, not at once")
        XCTAssertEqual(t.refreshMs(ttl: 30), 30_000)
        XCTAssertEqual(t.refreshMs(ttl: 86_400), 300_000, "at most 5 min")
        XCTAssertEqual(t.refreshMs(ttl: nil), 5000)
        XCTAssertEqual(DiscoveryTiming(validMs: 10_000).refreshMs(ttl: 30), 10_000, "valid= caps the TTL")
        XCTAssertEqual(DiscoveryTiming(validMs: 10_000).refreshMs(ttl: 2), 2000, "valid= never lengthens it")
        XCTAssertEqual((1...8).map { DiscoveryTiming.retryMs(failures: $0) }, [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000])
    }

    func testFailedAndEmptyAnswersKeepTheLastSetForTheHoldTime() throws {
        var e = DiscoveryEntry(upstream: "web", line: try line("server web.ns:8080 resolve;"))
        let timing = DiscoveryTiming(holdMs: 10_000)
        var o = e.apply(addresses(["10.0.0.2", "10.0.0.3"], ttl: 5), timing: timing, nowMs: 1000)
        XCTAssertTrue(o.changed)
        XCTAssertEqual(e.servers.map(\.identity), ["10.0.0.2:8080", "10.0.0.3:8080"])
        XCTAssertEqual(e.nextRefreshMs, 6000)

        o = e.apply(addresses(nil, nil), timing: timing, nowMs: 6000)
        XCTAssertFalse(o.changed)
        XCTAssertEqual(e.servers.count, 2)
        XCTAssertEqual(o.logs.map(\.line), ["upstream web: web.ns:8080: lookup failed (timed out); keeping the last 2 server(s) for up to 5s more"])
        XCTAssertEqual(e.nextRefreshMs, 7000, "retried after 1 s")
        // An empty answer (NXDOMAIN) while holding: still held, logged once.
        o = e.apply(addresses([], []), timing: timing, nowMs: 9000)
        XCTAssertFalse(o.changed)
        XCTAssertTrue(o.logs.isEmpty)
        XCTAssertEqual(e.nextRefreshMs, 10_000)
        // The hold ends 10 s after the last good answer.
        o = e.apply(addresses(nil, nil), timing: timing, nowMs: 11_000)
        XCTAssertTrue(o.changed)
        XCTAssertTrue(e.servers.isEmpty)
        XCTAssertTrue(o.logs.contains { $0.line.contains("no usable answer for 10s; its held servers are removed") }, "\(o.logs)")
        // Back: the servers return and the log says so.
        o = e.apply(addresses(["10.0.0.3"]), timing: timing, nowMs: 12_000)
        XCTAssertTrue(o.changed)
        XCTAssertEqual(e.servers.map(\.identity), ["10.0.0.3:8080"])

        // A good answer during a hold ends it.
        var f = DiscoveryEntry(upstream: "web", line: try line("server web.ns:8080 resolve;"))
        _ = f.apply(addresses(["10.0.0.2"]), timing: timing, nowMs: 0)
        _ = f.apply(addresses([]), timing: timing, nowMs: 1000)
        o = f.apply(addresses(["10.0.0.2"]), timing: timing, nowMs: 2000)
        XCTAssertEqual(o.logs.map(\.line), ["upstream web: web.ns:8080: answers again"])
    }

    func testAFamilyThatFailsWhileTheOtherAnswersKeepsTheTTLSchedule() throws {
        var e = DiscoveryEntry(upstream: "web", line: try line("server web.ns:80 resolve;"))
        let o = e.apply(addresses(["10.0.0.2"], nil, ttl: 7), timing: DiscoveryTiming(), nowMs: 0)
        XCTAssertEqual(e.servers.count, 1)
        XCTAssertEqual(e.nextRefreshMs, 7000)
        XCTAssertEqual(o.logs.first?.line, "upstream web: web.ns:80: lookup failed (timed out); using the addresses that did answer")
    }

    func testIdentities() throws {
        var plain = DiscoveryEntry(upstream: "web", line: try line("server web.ns:8080 resolve;"))
        _ = plain.apply(addresses(["10.0.0.2"], ["fd00::2"]), timing: DiscoveryTiming(), nowMs: 0)
        XCTAssertEqual(plain.servers.map(\.identity), ["10.0.0.2:8080", "[fd00::2]:8080"])
        XCTAssertEqual(plain.servers.map(\.name), ["web.ns", "web.ns"])
        var named = DiscoveryEntry(upstream: "web", line: try line("server web.ns:8080 resolve name=shop;"))
        _ = named.apply(addresses(["10.0.0.2"]), timing: DiscoveryTiming(), nowMs: 0)
        XCTAssertEqual(named.servers.map(\.identity), ["shop@10.0.0.2:8080"])
        var absolute = DiscoveryEntry(upstream: "web", line: try line("server web.ns.:8080 resolve;"))
        _ = absolute.apply(addresses(["10.0.0.2"]), timing: DiscoveryTiming(), nowMs: 0)
        XCTAssertEqual(absolute.servers.map(\.name), ["web.ns"], "TLS gets the name without its final dot")
    }

    func testServiceTargetsAreNamedByHostWithTheirWeights() throws {
        var e = DiscoveryEntry(upstream: "web", line: try line("server _http._tcp.chat resolve service;"))
        let targets = [ServiceTarget(host: "chat-1.chat", port: 81, weight: 5000, address: "10.0.0.3"),
                       ServiceTarget(host: "chat-0.chat", port: 80, weight: 0, address: "10.0.0.2"),
                       ServiceTarget(host: "chat-2.chat", port: 80, weight: 7, address: "10.0.0.4"),
                       ServiceTarget(host: "chat-2.chat", port: 90, weight: 7, address: "10.0.0.4")]
        _ = e.apply(ServiceLookup(name: "_http._tcp.chat", result: .success((targets: targets, ttl: 5))), timing: DiscoveryTiming(), nowMs: 0)
        XCTAssertEqual(e.servers.map(\.identity), ["chat-0.chat", "chat-1.chat", "chat-2.chat:80", "chat-2.chat:90"])
        XCTAssertEqual(e.servers.map(\.weight), [1, 1000, 7, 7])
        XCTAssertEqual(e.servers.map(\.port), [80, 81, 80, 90])
        // The same targets in another order are no change.
        let o = e.apply(ServiceLookup(name: "_http._tcp.chat", result: .success((targets: targets.reversed(), ttl: 5))),
                        timing: DiscoveryTiming(), nowMs: 5000)
        XCTAssertFalse(o.changed)
    }

    func testSnapshotsExpandResolveLinesAndReviveServersThatComeBack() throws {
        let config = try ConfigParser.parse(text: """
            upstream web { server 10.0.0.2:80; server web.ns:80 resolve; }
            server { listen 127.0.0.1:0; route / { upstream web; } }
            """, file: "d.conf")
        let key = DiscoveryKey.of(upstream: "web", server: config.upstreams[0].servers[1])
        let line = config.upstreams[0].servers[1]
        let found = { (ips: [String]) in [key: DiscoveredServer.fromAddresses(ips, line: line)] }
        let archive = ServerArchive()
        var duplicates: [String] = []
        let log: @Sendable (String) -> Void = { _ in }
        let first = try RuntimeConfig.build(config, generation: 1, previous: nil, log: log, discovered: found(["10.0.0.2", "10.0.0.3", "10.0.0.4"]), archive: archive)
        XCTAssertEqual(first.upstreams[0].servers.map(\.identity), ["10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"], "the written server wins a duplicate")
        _ = config.upstreams[0].expanded(discovered: found(["10.0.0.2"])) { id, _ in duplicates.append(id) }
        XCTAssertEqual(duplicates, ["10.0.0.2:80"])
        XCTAssertEqual(first.upstreams[0].servers[1].host, "web.ns", "TLS names a discovered server by its DNS name")
        let three = first.upstreams[0].servers[1]
        three.requestsTotal.store(7, ordering: .relaxed)

        let second = try RuntimeConfig.build(config, generation: 1, previous: first, log: log, discovered: found(["10.0.0.4"]), archive: archive, sameConfig: true)
        XCTAssertEqual(second.upstreams[0].servers.map(\.identity), ["10.0.0.2:80", "10.0.0.4:80"])
        XCTAssertTrue(second.upstreams[0].servers[1] === first.upstreams[0].servers[2], "a server that stays is the same object")
        XCTAssertTrue(second.serverBlocks[0].listenAddresses == first.serverBlocks[0].listenAddresses)

        let third = try RuntimeConfig.build(config, generation: 1, previous: second, log: log, discovered: found(["10.0.0.3", "10.0.0.4"]), archive: archive, sameConfig: true)
        let back = try XCTUnwrap(third.upstreams[0].server(identity: "10.0.0.3:80"))
        XCTAssertTrue(back === three, "a server that comes back is revived from the archive")
        XCTAssertEqual(back.requestsTotal.load(ordering: .relaxed), 7)
        XCTAssertEqual(Set(third.upstreams[0].servers.map(\.uid)).count, 3, "uids stay unique")
    }
}
