// Where ServerChoice sends requests and group members as server health changes: down/ejected servers lose their
// groups (which move whole to the next owner), draining servers keep a group only while it has members, p2c's failure
// penalty fades, and /api/lookup's answer (UpstreamRuntime.lookup) follows the same rules. Also Proxy.adminAction,
// the drain/enable the admin port will call. No sockets: the servers' addresses are never connected to.
@testable import HuddleProxy
import HuddleBalancing
import HuddleConfig
import XCTest

final class ServerChoiceHealthTests: XCTestCase {
    static let configText = """
    upstream chat {
        balance hash;
        group_linger 30s;
        server 127.0.0.1:9101 name=s1;
        server 127.0.0.1:9102 name=s2;
        server 127.0.0.1:9103 name=s3;
        server 127.0.0.1:9104 name=s4;
    }
    upstream web {
        server 127.0.0.1:9201 name=w1;
        server 127.0.0.1:9202 name=w2;
        server 127.0.0.1:9203 name=w3;
        server 127.0.0.1:9204 name=w4 down;
    }
    server { listen 127.0.0.1:0; route /rooms/ { upstream chat; group_key path 2; } route / { upstream web; } }
    """

    let runtime: RuntimeConfig = try! RuntimeConfig.build(ConfigParser.parse(text: configText, file: "choice.conf"),
                                                          generation: 1, previous: nil, log: { _ in })
    var rng = FastRandom(seed: 7)
    var chat: UpstreamRuntime { runtime.upstream(named: "chat")! }
    var web: UpstreamRuntime { runtime.upstream(named: "web")! }
    let now: Int64 = 1_000_000

    /// Where a keyed choice landed and, for an upgrade, its place in the group (dropping it leaves the group).
    final class Choice {
        let server: String?
        var membership: GroupMembership?
        init(_ c: consuming ServerChoice?) {
            if var c = c.take() {
                server = c.server.identity
                membership = c.membership.take()
            } else {
                server = nil
                membership = nil
            }
        }
    }

    func choose(_ key: String, upgrade: Bool, in u: UpstreamRuntime? = nil) -> Choice {
        let u = u ?? chat
        var rr = SmoothRoundRobin(weights: u.servers.map(\.weight))
        let k = Array(key.utf8)
        return Choice(ServerChoice.choose(upstream: u, key: k, keyHash: StableHash.hash64(k), upgrade: upgrade, excluded: [],
                                          nowMs: now, rng: &rng, roundRobin: &rr))
    }

    func server(_ u: UpstreamRuntime, _ name: String) -> ServerRuntime { u.servers.first { $0.identity == name }! }

    /// Two keys whose pure-hash owner is the same server.
    func twoKeysOfOneOwner() -> (owner: String, keys: [String]) {
        var byOwner: [String: [String]] = [:]
        for i in 0..<200 {
            let k = "room\(i)"
            if let o = chat.lookup(key: Array(k.utf8), nowMs: now)?.identity { byOwner[o, default: []].append(k) }
        }
        let (o, keys) = byOwner.first { $0.value.count >= 2 }!
        return (o, Array(keys.prefix(2)))
    }

    func testDrainingServerKeepsItsLiveGroupsOnlyWhileTheyHaveMembers() {
        let (drained, keys) = twoKeysOfOneOwner()
        let (live, fresh) = (keys[0], keys[1])
        let liveKey = Array(live.utf8)
        var members = [choose(live, upgrade: true), choose(live, upgrade: true)]
        XCTAssertEqual(members.map(\.server), [drained, drained])
        server(chat, drained).health.update(set: .draining, reason: "test", nowWallMs: 0)

        // The live group keeps its pin: members and plain requests of the group follow it.
        members.append(choose(live, upgrade: true))
        XCTAssertEqual(members.last?.server, drained, "a new member of a live group on a draining server joins it there")
        XCTAssertEqual(choose(live, upgrade: false).server, drained, "a plain request of the live group follows it")
        XCTAssertEqual(chat.lookup(key: liveKey, nowMs: now)?.identity, drained)
        XCTAssertEqual(chat.groups.lookup(key: liveKey, keyHash: StableHash.hash64(liveKey), nowMs: now)?.members, 3)

        // No new group there.
        let other = choose(fresh, upgrade: true)
        XCTAssertNotNil(other.server)
        XCTAssertNotEqual(other.server, drained, "a draining server took a new group")

        // Once the members have left, the lingering group is not held on the draining server.
        members.removeAll()
        XCTAssertEqual(chat.groups.lookup(key: liveKey, keyHash: StableHash.hash64(liveKey), nowMs: now)?.members, 0, "lingering")
        XCTAssertNotEqual(chat.lookup(key: liveKey, nowMs: now)?.identity, drained, "/api/lookup must not name the draining server")
        XCTAssertNotEqual(choose(live, upgrade: false).server, drained, "a plain request of a group with no members left")
        let moved = [choose(live, upgrade: true), choose(live, upgrade: true)]
        XCTAssertNotNil(moved[0].server)
        XCTAssertNotEqual(moved[0].server, drained, "a group with no members left stayed pinned to the draining server")
        XCTAssertEqual(moved[1].server, moved[0].server, "and its next members follow it")
    }

    func testGroupOfADownOrEjectedServerMovesWholeToTheNextOwner() throws {
        for cause in [HealthFlags.activeDown, .ejected, .disabled] {
            let runtime = try RuntimeConfig.build(ConfigParser.parse(text: Self.configText, file: "choice.conf"), generation: 1, previous: nil, log: { _ in })
            let chat = runtime.upstream(named: "chat")!
            let key = Array("lobby".utf8)
            let first = choose("lobby", upgrade: true, in: chat)
            guard let owner = first.server else { return XCTFail("no owner") }
            chat.servers.first { $0.identity == owner }!.health.update(set: cause, reason: "test", nowWallMs: 0)
            let next = choose("lobby", upgrade: true, in: chat)
            XCTAssertNotNil(next.server)
            XCTAssertNotEqual(next.server, owner, "\(cause.state.name): a new member joined a group on a server that is out")
            let again = choose("lobby", upgrade: true, in: chat)
            XCTAssertEqual(again.server, next.server, "\(cause.state.name): the group's members go together")
            XCTAssertEqual(choose("lobby", upgrade: false, in: chat).server, next.server, "\(cause.state.name): plain requests follow the moved group")
            XCTAssertEqual(chat.lookup(key: key, nowMs: now)?.identity, next.server, "\(cause.state.name): /api/lookup")
            XCTAssertEqual(chat.groups.lookup(key: key, keyHash: StableHash.hash64(key), nowMs: now)?.members, 2)
            withExtendedLifetime([first, next, again]) {}
        }
    }

    func testFailurePenaltyMakesP2CAvoidAFailingServerThenFades() {
        let failing = server(web, "w2")
        failing.health.recordFailure(cause: "test", nowMs: now, nowWallMs: 0)
        func picks(at t: Int64) -> [String: Int] {
            var counts: [String: Int] = [:]
            for _ in 0..<300 {
                var rr = SmoothRoundRobin(weights: web.servers.map(\.weight))
                let c = Choice(ServerChoice.choose(upstream: web, key: nil, keyHash: 0, upgrade: false, excluded: [], nowMs: t, rng: &rng, roundRobin: &rr))
                counts[c.server ?? "none", default: 0] += 1
            }
            return counts
        }
        let fresh = picks(at: now)
        XCTAssertNil(fresh["w2"], "right after a failure, an idle failing server loses every comparison: \(fresh)")
        XCTAssertNil(fresh["w4"], "down in the config")
        let later = picks(at: now + 3 * ServerHealth.penaltyHalfLifeMs)
        XCTAssertGreaterThan(later["w2"] ?? 0, 50, "the penalty faded; w2 gets its share again: \(later)")
        XCTAssertNil(later["w4"])
    }

    func testNoServerLeftGivesNoChoiceAndARetryAfter() {
        for s in web.servers { s.health.update(set: .activeDown, reason: "test", nowWallMs: 0) }
        var rr = SmoothRoundRobin(weights: web.servers.map(\.weight))
        let none = Choice(ServerChoice.choose(upstream: web, key: nil, keyHash: 0, upgrade: false, excluded: [], nowMs: now, rng: &rng, roundRobin: &rr))
        XCTAssertNil(none.server)
        XCTAssertEqual(web.retryAfterSeconds(nowMs: now), 1, "no health check configured: 1 s")
    }

    func testAdminActionDrainsAndEnables() throws {
        let proxy = try Proxy(config: ConfigParser.parse(text: Self.configText, file: "admin.conf"))
        XCTAssertEqual(try proxy.adminAction(.drain, upstream: "chat", server: "s2").get(), .draining)
        XCTAssertEqual(proxy.runtime.upstream(named: "chat")!.servers[1].state, .draining)
        XCTAssertEqual(try proxy.adminAction(.drain, upstream: "chat", server: "127.0.0.1:9103").get(), .draining, "by address")
        XCTAssertEqual(try proxy.adminAction(.enable, upstream: "chat", server: "s2").get(), .healthy)
        guard case .failure(.downInConfig) = proxy.adminAction(.enable, upstream: "web", server: "w4") else {
            return XCTFail("a server down in the config cannot be enabled from the admin port")
        }
        guard case .failure(.noSuchServer) = proxy.adminAction(.drain, upstream: "chat", server: "nope") else { return XCTFail() }
        guard case .failure(.noSuchUpstream) = proxy.adminAction(.drain, upstream: "nope", server: "s1") else { return XCTFail() }
    }
}
