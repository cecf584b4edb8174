// DNS discovery against a real DNS server (dnsmasq, TTL 1 s): A records added and removed, SRV targets, DNS down, and
// the Kubernetes headless-service pattern (one A record per pod, every pod on the same port of its own address).
import Foundation
import Glibc
import HuddleDemo
import HuddleSys
import XCTest

final class DiscoveryTests: HuddleTestCase {
    private var backends: [DemoBackend] = []
    private var dns: DNSMasq?

    override func tearDown() {
        super.tearDown()
        dns?.stop()
        for b in backends { b.stop() }
        backends = []
    }

    /// A demo backend named `name` on `ip:port` (loopback addresses 127.0.0.x all reach this machine).
    private func pod(_ name: String, _ ip: String, _ port: UInt16) throws {
        backends.append(try DemoBackend.start(DemoBackendOptions(name: name, listen: [SocketAddress(ip: ip, port: port)!])))
    }

    /// Server names of `upstream` in /api/backends, with their addresses and weights.
    private func servers(_ h: HuddleProcess, _ upstream: String = "web") -> [String: (address: String, weight: Int, requests: Int)] {
        var out: [String: (String, Int, Int)] = [:]
        for (key, s) in Admin.servers(h)?.servers ?? [:] where key.hasPrefix(upstream + " ") {
            out[s["name"] as? String ?? "?"] = (s["address"] as? String ?? "?", s["weight"] as? Int ?? -1, s["requests_total"] as? Int ?? -1)
        }
        return out
    }

    /// The X-Backend of `count` requests through huddle.
    private func backendsReached(_ h: HuddleProcess, count: Int) -> [String: Int] {
        var seen: [String: Int] = [:]
        for _ in 0..<count {
            guard let c = try? RawClient(port: h.port) else { continue }
            c.send("GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
            let r = ParsedResponse.parseAll(c.readAll()).first
            seen[r?.value("X-Backend") ?? "status \(r?.status ?? 0)", default: 0] += 1
        }
        return seen
    }

    /// Seconds until `condition` holds (polling every 20 ms), or nil after `limit`.
    private func secondsUntil(_ limit: Double, _ condition: () -> Bool) -> Double? {
        let start = Date()
        return Harness.waitFor(limit, condition) ? Date().timeIntervalSince(start) : nil
    }

    /// dnsmasq answers with TTL 1; a change must show within TTL + 1 s (plus a little for polling and scheduling).
    private let changeLimit = 2.5

    func testHeadlessServicePodsAddedAndRemovedFollowDNS() throws {
        let port = Harness.freePort()
        for (name, ip) in [("pod-a", "127.0.0.2"), ("pod-b", "127.0.0.3"), ("pod-c", "127.0.0.4")] { try pod(name, ip, port) }
        let name = "web.shop.svc.cluster.local"
        let dns = try DNSMasq(hosts: [("127.0.0.2", name), ("127.0.0.3", name)])
        self.dns = dns
        let h = try HuddleProcess(config: """
            resolver 127.0.0.1:\(dns.port);
            upstream web { server \(name):\(port) resolve; }
            server { listen 127.0.0.1:{PORT}; route / { upstream web; } }
            """)
        let a = "127.0.0.2:\(port)", b = "127.0.0.3:\(port)", c = "127.0.0.4:\(port)"
        // Huddle waits for the first answer at start: the pods are there from the first request on.
        XCTAssertEqual(Set(servers(h).keys), [a, b], h.log)
        XCTAssertEqual(servers(h)[a]?.address, a)
        XCTAssertEqual(Set(backendsReached(h, count: 40).keys), ["pod-a", "pod-b"])
        let bRequests = try XCTUnwrap(servers(h)[b]?.requests)

        // A pod is added.
        try dns.setHosts([("127.0.0.2", name), ("127.0.0.3", name), ("127.0.0.4", name)])
        let added = secondsUntil(10) { Set(servers(h).keys) == [a, b, c] }
        print("DiscoveryTests: pod added, seen after \(added.map { String(format: "%.2f", $0) } ?? "never") s (TTL 1 s)")
        XCTAssertLessThanOrEqual(try XCTUnwrap(added, "pod-c never appeared; log:\n\(h.log.suffix(2000))"), changeLimit)
        XCTAssertTrue(Harness.waitFor(10) { self.backendsReached(h, count: 30)["pod-c"] != nil }, "no request reached the new pod")
        // The pod that stayed kept its identity and its counters.
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(servers(h)[b]?.requests), bRequests)

        // A pod is removed: no request reaches it afterwards.
        let aRequests = try XCTUnwrap(servers(h)[a]?.requests)
        try dns.setHosts([("127.0.0.3", name), ("127.0.0.4", name)])
        let removed = secondsUntil(10) { Set(servers(h).keys) == [b, c] }
        print("DiscoveryTests: pod removed, seen after \(removed.map { String(format: "%.2f", $0) } ?? "never") s (TTL 1 s)")
        XCTAssertLessThanOrEqual(try XCTUnwrap(removed, "pod-a never left; log:\n\(h.log.suffix(2000))"), changeLimit)
        let after = backendsReached(h, count: 40)
        XCTAssertNil(after["pod-a"], "\(after)")
        XCTAssertEqual(Set(after.keys), ["pod-b", "pod-c"])

        // It comes back: the same server object, its request count carried on.
        try dns.setHosts([("127.0.0.2", name), ("127.0.0.3", name), ("127.0.0.4", name)])
        XCTAssertNotNil(secondsUntil(10) { self.servers(h)[a] != nil })
        XCTAssertEqual(servers(h)[a]?.requests, aRequests, "a returning pod keeps its statistics")
        XCTAssertTrue(h.log.contains("added 127.0.0.4:\(port)") && h.log.contains("removed 127.0.0.2:\(port)"), h.log)
    }

    func testServiceRecordsBecomeServersNamedByTheirTargets() throws {
        let (p0, p1, p2) = (Harness.freePort(), Harness.freePort(), Harness.freePort())
        try pod("chat-0", "127.0.0.1", p0)
        try pod("chat-1", "127.0.0.1", p1)
        try pod("chat-2", "127.0.0.1", p2)
        let service = "_http._tcp.chat.ns.svc.cluster.local"
        let hosts = [("127.0.0.1", "chat-0.chat.ns.svc.cluster.local"), ("127.0.0.1", "chat-1.chat.ns.svc.cluster.local"),
                     ("127.0.0.1", "chat-2.chat.ns.svc.cluster.local")]
        let dns = try DNSMasq(hosts: hosts, srv: ["\(service),chat-0.chat.ns.svc.cluster.local,\(p0),0,10",
                                                  "\(service),chat-1.chat.ns.svc.cluster.local,\(p1),0,30",
                                                  // A higher priority number is a fallback: not used.
                                                  "\(service),chat-2.chat.ns.svc.cluster.local,\(p2),5,100"])
        self.dns = dns
        let h = try HuddleProcess(config: """
            resolver 127.0.0.1:\(dns.port) valid=1s;
            upstream web { balance round_robin; server \(service) resolve service; }
            server { listen 127.0.0.1:{PORT}; route / { upstream web; } }
            """)
        var s = servers(h)
        XCTAssertEqual(Set(s.keys), ["chat-0.chat.ns.svc.cluster.local", "chat-1.chat.ns.svc.cluster.local"], h.log)
        XCTAssertEqual(s["chat-0.chat.ns.svc.cluster.local"]?.address, "127.0.0.1:\(p0)")
        XCTAssertEqual(s["chat-1.chat.ns.svc.cluster.local"]?.address, "127.0.0.1:\(p1)")
        XCTAssertEqual(s["chat-0.chat.ns.svc.cluster.local"]?.weight, 10)
        XCTAssertEqual(s["chat-1.chat.ns.svc.cluster.local"]?.weight, 30)
        // Round robin follows the SRV weights: 10 and 30 out of 40.
        let reached = backendsReached(h, count: 40)
        XCTAssertEqual(reached["chat-0"], 10, "\(reached)")
        XCTAssertEqual(reached["chat-1"], 30, "\(reached)")

        // The records change (dnsmasq restarts with them): a new weight, and chat-2 joins the lowest priority.
        try dns.restart(srv: ["\(service),chat-0.chat.ns.svc.cluster.local,\(p0),0,10",
                              "\(service),chat-1.chat.ns.svc.cluster.local,\(p1),0,20",
                              "\(service),chat-2.chat.ns.svc.cluster.local,\(p2),0,10"])
        XCTAssertNotNil(secondsUntil(10) { self.servers(h).count == 3 && self.servers(h)["chat-1.chat.ns.svc.cluster.local"]?.weight == 20 },
                        h.log.suffix(2000).description)
        s = servers(h)
        XCTAssertEqual(s["chat-2.chat.ns.svc.cluster.local"]?.address, "127.0.0.1:\(p2)")
        XCTAssertEqual(backendsReached(h, count: 40)["chat-2"], 10)
    }

    func testWithDNSDownTheLastGoodSetStaysForTheHoldTime() throws {
        let port = Harness.freePort()
        try pod("pod-a", "127.0.0.2", port)
        try pod("pod-b", "127.0.0.3", port)
        let name = "web.shop.svc.cluster.local"
        let dns = try DNSMasq(hosts: [("127.0.0.2", name), ("127.0.0.3", name)])
        self.dns = dns
        let h = try HuddleProcess(config: """
            resolver 127.0.0.1:\(dns.port) hold=4s timeout=500ms;
            upstream web { server \(name):\(port) resolve; }
            server { listen 127.0.0.1:{PORT}; route / { upstream web; } }
            """)
        let expected: Set<String> = ["127.0.0.2:\(port)", "127.0.0.3:\(port)"]
        XCTAssertEqual(Set(servers(h).keys), expected, h.log)

        dns.stop()
        let down = Date()
        XCTAssertTrue(Harness.waitFor(5) { h.log.contains("keeping the last 2 server(s)") }, h.log.suffix(2000).description)
        XCTAssertEqual(Set(servers(h).keys), expected)
        XCTAssertEqual(Set(backendsReached(h, count: 20).keys), ["pod-a", "pod-b"], "traffic goes on while DNS is down")
        // After the hold time the held servers go, and the log says so.
        XCTAssertTrue(Harness.waitFor(10) { self.servers(h).isEmpty }, h.log.suffix(2000).description)
        let held = Date().timeIntervalSince(down)
        print("DiscoveryTests: servers held for \(String(format: "%.2f", held)) s with DNS down (hold=4s)")
        // Held from the last good answer (at most a second before DNS went down) for 4 s.
        XCTAssertGreaterThanOrEqual(held, 2.9)
        XCTAssertTrue(h.log.contains("its held servers are removed"), h.log.suffix(2000).description)
        XCTAssertEqual(backendsReached(h, count: 1).keys.first, "status 503")

        // DNS is back: so are the servers, with their old statistics.
        try dns.start()
        XCTAssertTrue(Harness.waitFor(10) { Set(self.servers(h).keys) == expected }, h.log.suffix(2000).description)
        XCTAssertTrue(h.log.contains("answers again") || h.log.contains("added 127.0.0.2"), h.log.suffix(2000).description)
        XCTAssertGreaterThanOrEqual(servers(h)["127.0.0.2:\(port)"]?.requests ?? 0, 1)
    }

    func testAnswerTooLargeForUDPIsFetchedOverTCP() throws {
        // 150 A records (2.4 kB) do not fit the 1232-byte EDNS payload: dnsmasq sets TC and Huddle asks over TCP.
        let name = "big.test"
        let hosts = (1...150).map { ("127.0.1.\($0)", name) }
        let dns = try DNSMasq(hosts: hosts)
        self.dns = dns
        let h = try HuddleProcess(config: """
            resolver 127.0.0.1:\(dns.port);
            upstream web { server \(name):9 resolve; }
            server { listen 127.0.0.1:{PORT}; route / { upstream web; } }
            """)
        XCTAssertEqual(servers(h).count, 150, h.log.suffix(2000).description)
        XCTAssertEqual(servers(h)["127.0.1.150:9"]?.address, "127.0.1.150:9")
    }
}
