// Active health checks end to end: the real huddle binary in front of backends that count every request they get
// (peers/health_backend.py), stopped, restarted on their port, failing or hanging on cue. Each time bound is the
// behaviour's own deadline (fall × interval + timeout, rise × interval; jitter adds up to 10% to an interval) plus a
// generous slack for a shared, busy machine; each lower bound is what `fall`/`rise` demand (n probes are n - 1
// intervals apart at least).
import Foundation
import Glibc
import HuddleDemo
import HuddleSys
import XCTest

final class HealthCheckTests: HealthTestCase {
    /// The slack added to every deadline.
    static let slack = 2.0

    private func config(_ list: [HealthBackend], check: String, extra: String = "", workers: Int = 2) -> String {
        """
        workers \(workers);
        admin 127.0.0.1:{ADMIN} { token "secret"; }
        upstream web {
        \(serverLines(list))
            \(check)
            connect_timeout 500ms; response_timeout 1s; retries 1;
            \(extra)
        }
        server { listen 127.0.0.1:{PORT}; route / { upstream web; } }

        """
    }

    /// Waits until every backend has been probed at least once (so the checks are known to run).
    private func waitForFirstProbes(_ list: [HealthBackend], timeout: Double = 5, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertTrue(Harness.waitFor(timeout) { list.allSatisfy { ($0.counts()?.healthz ?? 0) >= 1 } },
                      "not every backend was probed: \(list.map { "\($0.name): \($0.counts()?.healthz ?? -1)" })", file: file, line: line)
    }

    // MARK: 1. a stopped backend is taken out in time and gets nothing afterwards

    func testStoppedBackendIsMarkedUnhealthyInTimeAndGetsNoRequests() throws {
        let (interval, timeout, fall) = (0.3, 0.3, 3)
        let list = try startBackends(["a", "b", "c"])
        let h = try HuddleProcess(config: config(list, check: "health_check /healthz interval=300ms timeout=300ms rise=2 fall=3;"))
        waitForFirstProbes(list)
        XCTAssertEqual(states(h), ["a": "healthy", "b": "healthy", "c": "healthy"])
        // Probes carry the server's address as Host (no host= given) and say who they are.
        XCTAssertEqual(Set(list[0].counts()?.healthzHosts ?? []), [list[0].address])
        XCTAssertEqual(Set(list[0].counts()?.healthzAgents ?? []), ["huddle-health-check"])

        let b = list[1]
        b.stop()
        let bound = Double(fall) * interval * 1.1 + timeout
        guard let took = waitForState(h, "b", "unhealthy", timeout: bound + Self.slack) else {
            return XCTFail("b not unhealthy within \(bound + Self.slack) s: \(states(h)); log:\n\(h.log.suffix(2000))")
        }
        print("HealthCheckTests: stopped backend unhealthy after \(Self.format(took)) s (fall × interval + timeout = \(Double(fall) * interval + timeout) s)")
        XCTAssertGreaterThanOrEqual(took, Double(fall - 1) * interval * 0.9 - 0.05, "fall=3 takes three failed probes, at least two intervals apart")
        let down = transitions(h, "b", from: "healthy", to: "unhealthy")
        XCTAssertEqual(down.count, 1, "\(transitions(h, "b"))")
        XCTAssertTrue(down.first?.contains("health check failed 3 times in a row (last: connect failed") ?? false, "\(down)")
        XCTAssertTrue(down.first?.contains(" [warn] ") ?? false, "\(down)")

        // While it is out, Huddle does not even try it: its failure count stays where it was.
        let failuresBefore = servers(h)["web/b"]?["failures_total"] as? Int
        for i in 0..<20 {
            let r = get(h, "/while-dead/\(i)")
            XCTAssertEqual(r.status, 200, "\(r)")
            XCTAssertLessThan(r.seconds, 0.5, "no connect attempt, no retry: \(r)")
        }
        XCTAssertEqual(servers(h)["web/b"]?["failures_total"] as? Int, failuresBefore, "an unhealthy server is not tried")

        // Back on its port but still failing its check (503 on /healthz): probed, but no client request reaches it.
        try b.restart(mode: "healthz-fail")
        XCTAssertTrue(Harness.waitFor(3) { (b.counts()?.healthz ?? 0) >= 3 }, "probes go on while a server is unhealthy")
        var seen: [String: Int] = [:]
        for i in 0..<40 {
            let r = get(h, "/after/\(i)")
            XCTAssertEqual(r.status, 200, "\(r)")
            seen[r.backend ?? "?", default: 0] += 1
        }
        XCTAssertEqual(b.counts()?.requests, 0, "an unhealthy server got client requests")
        XCTAssertNil(seen["b"], "\(seen)")
        XCTAssertGreaterThan(seen["a"] ?? 0, 0, "\(seen)")
        XCTAssertGreaterThan(seen["c"] ?? 0, 0, "\(seen)")
        XCTAssertEqual(states(h)["b"], "unhealthy")
        XCTAssertEqual(transitions(h, "b").count, 1, "one transition, logged once: \(transitions(h, "b"))")
    }

    // MARK: 2. back after `rise` passing checks

    func testRestartedBackendIsHealthyAfterRiseChecksAndServesAgain() throws {
        let (interval, rise) = (0.3, 3)
        let list = try startBackends(["a", "b", "c"])
        let h = try HuddleProcess(config: config(list, check: "health_check /healthz interval=300ms timeout=300ms rise=3 fall=2;"))
        waitForFirstProbes(list)
        let b = list[1]
        b.stop()
        XCTAssertNotNil(waitForState(h, "b", "unhealthy", timeout: 2 * interval * 1.1 + 0.3 + Self.slack), "\(states(h))")

        try b.restart()
        let bound = Double(rise) * interval * 1.1
        guard let took = waitForState(h, "b", "healthy", timeout: bound + Self.slack) else {
            return XCTFail("b not healthy within \(bound + Self.slack) s of its restart: \(states(h)); log:\n\(h.log.suffix(2000))")
        }
        print("HealthCheckTests: restarted backend healthy after \(Self.format(took)) s (rise × interval = \(Double(rise) * interval) s)")
        XCTAssertGreaterThanOrEqual(took, Double(rise - 1) * interval * 0.9 - 0.05, "rise=3 takes three passing probes, at least two intervals apart")
        XCTAssertGreaterThanOrEqual(b.counts()?.healthz ?? 0, rise, "healthy only after \(rise) probes")
        let up = transitions(h, "b", from: "unhealthy", to: "healthy")
        XCTAssertEqual(up.count, 1, "\(transitions(h, "b"))")
        XCTAssertTrue(up.first?.contains("health check passed 3 times in a row") ?? false, "\(up)")

        // It takes traffic again.
        var served = 0
        for i in 0..<100 where served < 3 {
            let r = get(h, "/back/\(i)")
            XCTAssertEqual(r.status, 200, "\(r)")
            if r.backend == "b" { served += 1 }
        }
        XCTAssertEqual(served, 3, "b got no traffic after coming back")
        XCTAssertEqual(b.counts()?.requests, served)
    }

    // MARK: 5. no server at all: 503 with Retry-After, then recovery

    func testAllServersDownAnswer503WithRetryAfterAndRecover() throws {
        let (interval, rise) = (0.3, 2)
        let list = try startBackends(["a", "b"])
        let h = try HuddleProcess(config: config(list, check: "health_check /healthz interval=300ms timeout=300ms rise=2 fall=2;"))
        waitForFirstProbes(list)
        for b in list { b.stop() }
        for b in list {
            XCTAssertNotNil(waitForState(h, b.name, "unhealthy", timeout: 2 * interval * 1.1 + 0.3 + Self.slack), "\(states(h))")
        }
        // A burst of requests for a bit over two seconds: each answered at once, every one a 503 with Retry-After.
        let burst = 2.2
        let t0 = Date()
        var replies: [Reply] = []
        while Date().timeIntervalSince(t0) < burst { replies.append(get(h, "/nothing/\(replies.count)")) }
        XCTAssertGreaterThan(replies.count, 10)
        for r in replies {
            XCTAssertEqual(r.status, 503, "\(r)")
            XCTAssertLessThan(r.seconds, 1, "a 503 must not wait: \(r)")
            let retry = Int(r.retryAfter ?? "")
            XCTAssertNotNil(retry, "Retry-After missing or not a number: \(r.retryAfter ?? "nil")")
            XCTAssertGreaterThanOrEqual(retry ?? 0, 1)
            XCTAssertLessThanOrEqual(retry ?? 99, 60)
            XCTAssertTrue(r.body.contains("no server of upstream web can take traffic"), r.body)
        }
        let noServerLines = h.log.split(separator: "\n").filter { $0.contains("no server can take traffic") }
        print("HealthCheckTests: \(replies.count) requests answered 503 in \(burst) s, \(noServerLines.count) log lines")
        XCTAssertGreaterThanOrEqual(noServerLines.count, 1, "the 503s must be logged")
        XCTAssertLessThanOrEqual(noServerLines.count, Int(burst) + 1, "logged at most once a second:\n\(noServerLines.joined(separator: "\n"))")
        XCTAssertTrue(noServerLines.first?.contains("a: unhealthy, b: unhealthy") ?? false, "\(noServerLines.first ?? "")")

        // One comes back: after `rise` passing checks, requests succeed again.
        try list[0].restart()
        let t1 = Date()
        var first: Reply?
        Harness.waitFor(Double(rise) * interval * 1.1 + Self.slack) {
            let r = self.get(h, "/again")
            if r.status == 200 { first = r }
            return first != nil
        }
        print("HealthCheckTests: first 200 \(Self.format(Date().timeIntervalSince(t1))) s after a backend came back")
        XCTAssertEqual(first?.backend, "a", "\(String(describing: first))")
    }

    // MARK: 6. a hung pod

    func testHungPodIsTakenOutByTheCheckTimeoutWhileClientsStayWithinTheirTimeouts() throws {
        let (interval, timeout, fall) = (0.3, 0.3, 2)
        let responseTimeout = 1.0
        let list = try startBackends(["a", "b", "c"])
        let h = try HuddleProcess(config: config(list, check: "health_check /healthz interval=300ms timeout=300ms rise=2 fall=2;"))
        waitForFirstProbes(list)
        let b = list[1]

        // Clients keep sending GETs from two threads the whole time.
        let replies = Shared<[Reply]>([])
        let stop = Shared(false)
        let ctx = Handed(value: (self, h))
        let threads = (0..<2).map { t in
            startThread {
                let (test, huddle) = ctx.value
                var i = 0
                while !stop.current {
                    let r = test.get(huddle, "/hung/\(t)/\(i)")
                    replies.with { $0.append(r) }
                    i += 1
                }
            }
        }
        defer { stop.with { $0 = true } }
        XCTAssertTrue(Harness.waitFor(5) { replies.current.count >= 10 })

        let servedBeforeHang = b.counts()?.requests ?? 0
        b.setMode("hang")
        let hangStart = replies.current.count
        let bound = Double(fall) * interval * 1.1 + timeout
        let took = waitForState(h, "b", "unhealthy", timeout: bound + Self.slack)
        let tookText = took.map(Self.format) ?? "never"
        print("HealthCheckTests: hung backend unhealthy after \(tookText) s (fall × interval + timeout = \(Double(fall) * interval + timeout) s)")
        XCTAssertNotNil(took, "b not unhealthy within \(bound + Self.slack) s; log:\n\(h.log.suffix(2000))")
        let down = transitions(h, "b", from: "healthy", to: "unhealthy")
        XCTAssertEqual(down.count, 1, "\(transitions(h, "b"))")
        XCTAssertTrue(down.first?.contains("timeout after 300 ms") ?? false, "\(down)")

        // A little more traffic once it is out, then stop the clients and wait for their last requests.
        let downAt = Date()
        let countAtDown = replies.current.count
        XCTAssertTrue(Harness.waitFor(10) { replies.current.count >= countAtDown + 20 })
        stop.with { $0 = true }
        XCTAssertTrue(Harness.waitFor(responseTimeout + 5) { threads.allSatisfy { $0.current } })
        let all = Array(replies.current[hangStart...])
        let slow = all.filter { $0.seconds > 0.5 }
        print("HealthCheckTests: \(all.count) client requests during the hang, \(slow.count) waited for response_timeout; slowest \(Self.format(all.map(\.seconds).max() ?? 0)) s")
        XCTAssertGreaterThan(b.counts()?.requests ?? 0, servedBeforeHang, "no client request met the hung pod: the test proves nothing")
        for (i, r) in all.enumerated() {
            XCTAssertEqual(r.status, 200, "a GET that met the hung pod is retried elsewhere: \(r)")
            // (The two requests in flight when the mode switched may still have been answered by b.)
            if i >= 2 { XCTAssertNotEqual(r.backend, "b", "\(r)") }
            XCTAssertLessThan(r.seconds, responseTimeout + 1.5, "within response_timeout + slack: \(r)")
        }
        // Once it is out, no request waits for it.
        for r in all where r.started > downAt {
            XCTAssertLessThan(r.seconds, 0.5, "a request after b was taken out still waited: \(r)")
        }
        // The pod recovers before the end-of-test check: while it hangs, a probe to it is open for up to its timeout
        // every interval (300 of every 300 ms here), a descriptor the rest check would count against Huddle on a
        // loaded machine.
        b.setMode("ok")
    }

    // MARK: 7. one probe per server per interval for the whole process

    func testOneProbePerServerPerIntervalWithTenWorkers() throws {
        let interval = 0.5
        let window = 5.0
        let list = try startBackends(["a", "b", "c"])
        let h = try HuddleProcess(config: config(list, check: "health_check /healthz interval=500ms timeout=300ms host=probe.internal;", workers: 10))
        XCTAssertTrue(h.log.contains("huddle started: 10 worker(s)"), h.log)
        waitForFirstProbes(list)
        // The window starts at each backend's first probe (its own clock) and closes once a probe past its end came.
        var firsts: [Double] = []
        for b in list {
            guard let start = b.counts()?.healthzTimes.first else { return XCTFail("\(b.name): no probe") }
            firsts.append(start)
            XCTAssertTrue(Harness.waitFor(window + 5) { (b.counts()?.healthzTimes.last ?? 0) >= start + window },
                          "\(b.name): probes stopped")
            let times = b.counts()?.healthzTimes ?? []
            XCTAssertEqual(Set(b.counts()?.healthzHosts ?? []), ["probe.internal"], "host= sets the probes' Host")
            let inWindow = times.filter { $0 >= start && $0 < start + window }
            let expected = window / interval
            let gaps = zip(inWindow.dropFirst(), inWindow).map { $0 - $1 }
            let mean = gaps.reduce(0, +) / Double(max(1, gaps.count))
            print("HealthCheckTests: \(b.name): \(inWindow.count) probes in \(window) s with 10 workers (expected \(expected)); gaps mean \(Self.format(mean)) min \(Self.format(gaps.min() ?? 0)) max \(Self.format(gaps.max() ?? 0)) s")
            XCTAssertGreaterThanOrEqual(Double(inWindow.count), 0.6 * expected, "\(b.name): too few probes")
            XCTAssertLessThanOrEqual(Double(inWindow.count), 1.4 * expected, "\(b.name): too many probes (one per worker?)")
            XCTAssertGreaterThanOrEqual(gaps.min() ?? 0, 0.3 * interval, "\(b.name): two probes close together: \(gaps)")
            // Jitter: the gaps are not all the same.
            XCTAssertGreaterThan((gaps.max() ?? 0) - (gaps.min() ?? 0), 0.005, "\(b.name): no jitter: \(gaps)")
        }
        // The servers' first probes do not all line up.
        XCTAssertGreaterThan((firsts.max() ?? 0) - (firsts.min() ?? 0), 0.01, "first probes aligned: \(firsts)")
    }

    // MARK: 9. initial=unhealthy for a server added by reload

    func testServerAddedByReloadWithInitialUnhealthyWaitsForRiseChecks() throws {
        let interval = 0.3
        let list = try startBackends(["a", "b"])
        let c = try HealthBackend(name: "c", mode: "healthz-fail")
        backends.append(c)
        let check = "health_check /healthz interval=300ms timeout=300ms rise=2 fall=2 initial=unhealthy;"
        // At start, initial=unhealthy holds for every server: nothing is served before the first passing probes.
        let h = try HuddleProcess(config: config(list, check: check))
        XCTAssertNotNil(waitForState(h, "a", "healthy", timeout: 2 * interval * 1.1 + Self.slack))
        XCTAssertNotNil(waitForState(h, "b", "healthy", timeout: 2 * interval * 1.1 + Self.slack))

        try reload(h, config(list + [c], check: check), generation: 2)
        // Right after the reload, before any probe: c is unhealthy; a and b kept their state.
        XCTAssertEqual(states(h), ["a": "healthy", "b": "healthy", "c": "unhealthy"])
        for i in 0..<30 {
            let r = get(h, "/after-reload/\(i)")
            XCTAssertEqual(r.status, 200, "\(r)")
            XCTAssertNotEqual(r.backend, "c", "\(r)")
        }
        XCTAssertTrue(Harness.waitFor(3) { (c.counts()?.healthz ?? 0) >= 2 }, "c is probed")
        XCTAssertEqual(c.counts()?.requests, 0, "a server waiting for its first passing checks got traffic")
        XCTAssertEqual(states(h)["c"], "unhealthy")

        // Its checks pass from now on: healthy after `rise` of them, then it serves.
        c.setMode("ok")
        XCTAssertNotNil(waitForState(h, "c", "healthy", timeout: 2 * interval * 1.1 + Self.slack), "\(states(h))")
        let up = transitions(h, "c", from: "unhealthy", to: "healthy")
        XCTAssertEqual(up.count, 1, "\(transitions(h, "c"))")
        XCTAssertTrue(up.first?.contains("health check passed 2 times in a row") ?? false, "\(up)")
        var served = false
        for i in 0..<100 where !served {
            served = get(h, "/c/\(i)").backend == "c"
        }
        XCTAssertTrue(served, "c got no traffic once healthy")
        XCTAssertEqual(transitions(h, "a").count + transitions(h, "b").count, 2, "a and b went healthy once each, at start")
    }

    /// Without initial=unhealthy a new server takes traffic before its first probe (its checks would fail: with
    /// interval=10s and fall=2 the second failing probe is at least 9 s away).
    func testServerAddedByReloadTakesTrafficBeforeItsFirstProbeByDefault() throws {
        let list = try startBackends(["a"])
        let c = try HealthBackend(name: "c", mode: "healthz-fail")
        backends.append(c)
        let check = "health_check /healthz interval=10s timeout=300ms rise=2 fall=2;"
        let h = try HuddleProcess(config: config(list, check: check))
        try reload(h, config(list + [c], check: check), generation: 2)
        XCTAssertEqual(states(h)["c"], "healthy")
        var served = false
        for i in 0..<100 where !served { served = get(h, "/new/\(i)").backend == "c" }
        XCTAssertTrue(served, "a new server waits for a probe though the check does not say initial=unhealthy")
        XCTAssertEqual(states(h)["c"], "healthy")
    }

    // MARK: 10. health_check tcp

    func testTCPCheckMarksAClosedPortUnhealthyAndAListeningOneHealthy() throws {
        let list = try startBackends(["a"])
        let closedPort = Harness.freePort()
        let h = try HuddleProcess(config: """
        workers 2;
        admin 127.0.0.1:{ADMIN};
        upstream web {
            server \(list[0].address) name=a;
            server 127.0.0.1:\(closedPort) name=b;
            health_check tcp interval=200ms timeout=200ms rise=2 fall=2;
            connect_timeout 500ms; response_timeout 1s;
        }
        server { listen 127.0.0.1:{PORT}; route / { upstream web; } }

        """)
        XCTAssertNotNil(waitForState(h, "b", "unhealthy", timeout: 2 * 0.2 * 1.1 + Self.slack), "\(states(h))")
        XCTAssertEqual(states(h)["a"], "healthy")
        let down = transitions(h, "b", from: "healthy", to: "unhealthy")
        XCTAssertTrue(down.first?.contains("connect failed") ?? false, "\(down)")
        XCTAssertEqual(list[0].counts()?.healthz, 0, "a tcp check sends no request")
        for i in 0..<10 {
            XCTAssertEqual(get(h, "/tcp/\(i)").backend, "a")
        }
        XCTAssertEqual(list[0].counts()?.requests, 10, "every request went to a")

        // Something listens on b's port now (a demo backend): healthy after `rise` connects.
        let listener = try DemoBackend.start(DemoBackendOptions(name: "b", listen: [SocketAddress(ip: "127.0.0.1", port: closedPort)!]))
        defer { listener.stop() }
        XCTAssertNotNil(waitForState(h, "b", "healthy", timeout: 2 * 0.2 * 1.1 + Self.slack), "\(states(h))")
        let up = transitions(h, "b", from: "unhealthy", to: "healthy")
        XCTAssertTrue(up.first?.contains("health check passed 2 times in a row (last: connected in") ?? false, "\(up)")
        var servedByB = false
        for i in 0..<60 where !servedByB { servedByB = get(h, "/tcp-b/\(i)").backend == "b" }
        XCTAssertTrue(servedByB, "b takes traffic once its port accepts connections")
    }

    // MARK: reloads change the checks

    func testRemovingTheCheckOnReloadReleasesServersItHeldOut() throws {
        let list = try startBackends(["a", "b"])
        list[1].setMode("healthz-fail")
        let h = try HuddleProcess(config: config(list, check: "health_check /healthz interval=200ms timeout=200ms rise=2 fall=2;"))
        XCTAssertNotNil(waitForState(h, "b", "unhealthy", timeout: 2 * 0.2 * 1.1 + Self.slack))
        // Without a check nothing can ever bring b back, so the check's verdict must go with it.
        try reload(h, config(list, check: ""), generation: 2)
        XCTAssertNotNil(waitForState(h, "b", "healthy", timeout: 2), "b stays out after its check was removed: \(states(h))")
        let probes = list[1].counts()?.healthz ?? -1
        var servedByB = false
        for i in 0..<60 where !servedByB { servedByB = get(h, "/no-check/\(i)").backend == "b" }
        XCTAssertTrue(servedByB)
        XCTAssertEqual(list[1].counts()?.healthz, probes, "no probes once the check is gone")
    }

    func testMarkingAServerDownOnReloadTakesItOut() throws {
        let list = try startBackends(["a", "b"])
        let h = try HuddleProcess(config: config(list, check: ""))
        XCTAssertEqual(states(h), ["a": "healthy", "b": "healthy"])
        let down = config(list, check: "").replacingOccurrences(of: "name=b;", with: "name=b down;")
        try reload(h, down, generation: 2)
        XCTAssertNotNil(waitForState(h, "b", "disabled", timeout: 2), "\(states(h))")
        for i in 0..<20 { XCTAssertEqual(get(h, "/down/\(i)").backend, "a") }
        XCTAssertEqual(list[1].counts()?.requests, 0)
        try reload(h, config(list, check: ""), generation: 3)
        XCTAssertNotNil(waitForState(h, "b", "healthy", timeout: 2), "\(states(h))")
    }

    // MARK: 8. groups

    /// Four demo backends (WebSocket echo with `__whoami`) behind a hash route on the room; active checks on.
    /// `rebalance keep` by default: these tests pin down how health states move (or keep) groups by themselves; with
    /// `rebalance migrate` the control loop also moves misplaced groups (GroupMigrationTests).
    private func startGroupSetup(linger: String = "30s", rebalance: String = "keep") throws -> (HuddleProcess, [DemoBackend]) {
        var demos: [DemoBackend] = []
        for name in ["g1", "g2", "g3", "g4"] { demos.append(try Harness.startBackend(name)) }
        let servers = demos.map { "    server 127.0.0.1:\($0.boundAddresses[0].port) name=\($0.name);" }.joined(separator: "\n")
        let h = try HuddleProcess(config: """
        workers 2;
        admin 127.0.0.1:{ADMIN} { token "secret"; }
        upstream chat {
            balance hash;
            group_linger \(linger);
            rebalance \(rebalance);
        \(servers)
            health_check /healthz interval=200ms timeout=200ms rise=2 fall=2;
        }
        server {
            listen 127.0.0.1:{PORT};
            route /rooms/ { upstream chat; group_key path 2; }
        }

        """)
        return (h, demos)
    }

    /// The server /api/lookup names for `key` in `chat`.
    private func lookup(_ h: HuddleProcess, _ key: String) -> String? {
        guard let text = Invariants.adminGet(h, "/api/lookup?upstream=chat&key=\(key)"),
              let o = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { return nil }
        return o["server"] as? String
    }

    /// A member of room `key`: connected through Huddle, and the backend's name as it answers `__whoami`.
    func member(_ h: HuddleProcess, _ key: String) throws -> (DemoWebSocketClient, String) {
        let c = try DemoWebSocketClient(address: SocketAddress(ip: "127.0.0.1", port: h.port)!, path: "/rooms/\(key)/echo")
        try c.send(text: "__whoami")
        guard case .text(let name) = try c.receive() else { throw HarnessError("no __whoami answer for \(key)") }
        return (c, name)
    }

    /// (server, members) of the live group `key` from /api/groups.
    private func group(_ h: HuddleProcess, _ key: String) -> (server: String, members: Int)? {
        guard let text = Invariants.adminGet(h, "/api/groups?upstream=chat&top=1000"),
              let o = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { return nil }
        for g in (o["groups"] as? [[String: Any]]) ?? [] where g["key"] as? String == key {
            return (g["server"] as? String ?? "?", g["members"] as? Int ?? -1)
        }
        return nil
    }

    func testGroupOfAnUnhealthyServerMovesWholeToItsNextOwner() throws {
        let (h, demos) = try startGroupSetup()
        defer { for d in demos { d.stop() } }
        let key = "lobby"
        guard let owner = lookup(h, key), let victim = demos.first(where: { $0.name == owner }) else {
            return XCTFail("no owner for \(key)")
        }
        var members: [DemoWebSocketClient] = []
        defer { for m in members { m.disconnect() } }
        for _ in 0..<2 {
            let (c, name) = try member(h, key)
            members.append(c)
            XCTAssertEqual(name, owner, "a group starts on its hash owner")
        }
        // Its server stops: its members are cut off, and the checks take it out. The group lingers, pinned to it.
        victim.stop()
        for m in members { _ = try? m.readUntilClosed() }
        XCTAssertNotNil(waitForState(h, owner, "unhealthy", upstream: "chat", timeout: 2 * 0.2 * 1.1 + 0.2 + Self.slack))
        // Where would the group go now? Not to the server that is down.
        let next = lookup(h, key)
        XCTAssertNotNil(next)
        XCTAssertNotEqual(next, owner, "/api/lookup still names the unhealthy server of a lingering group")
        // Members reconnect, three at once from three threads: all land together on the group's next owner.
        let results = Shared<[Result<(DemoWebSocketClient, String), HarnessError>]>([])
        let ctx = Handed(value: (self, h))
        let threads = (0..<3).map { _ in
            startThread {
                let (test, huddle) = ctx.value
                let r: Result<(DemoWebSocketClient, String), HarnessError>
                do { r = .success(try test.member(huddle, key)) } catch { r = .failure(HarnessError("\(error)")) }
                results.with { $0.append(r) }
            }
        }
        XCTAssertTrue(Harness.waitFor(15) { threads.allSatisfy { $0.current } })
        let joined = results.current.compactMap { try? $0.get() }
        defer { for (c, _) in joined { c.disconnect() } }
        let names = joined.map(\.1)
        let errors = results.current.compactMap { r -> String? in if case .failure(let e) = r { return e.description } else { return nil } }
        XCTAssertEqual(errors, [])
        XCTAssertEqual(names.count, 3)
        XCTAssertEqual(Set(names).count, 1, "the group split: \(names)")
        XCTAssertFalse(names.contains(owner), "\(names)")
        XCTAssertEqual(names.first, next, "the members went somewhere else than /api/lookup says")
        XCTAssertEqual(group(h, key)?.server, names.first)
        XCTAssertEqual(group(h, key)?.members, 3)
        print("HealthCheckTests: group \(key) moved from unhealthy \(owner) to \(names.first ?? "?") with its 3 new members")
    }

    /// POST on the admin port with the token; the status.
    private func adminPost(_ h: HuddleProcess, _ target: String) -> ParsedResponse? {
        guard let c = try? RawClient(port: h.adminPort, receiveTimeoutSeconds: 5) else { return nil }
        c.send("POST \(target) HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer secret\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        return ParsedResponse.parseAll(c.readAll()).first
    }

    func testDrainingServerKeepsItsLiveGroupsButTakesNoNewOnes() throws {
        let (h, demos) = try startGroupSetup(linger: "30s")
        defer { for d in demos { d.stop() } }
        // Two rooms whose hash owner is the same server D.
        var byOwner: [String: [String]] = [:]
        for i in 0..<200 { if let o = lookup(h, "room\(i)") { byOwner[o, default: []].append("room\(i)") } }
        guard let (drained, keys) = byOwner.first(where: { $0.value.count >= 2 }), let address = demos.first(where: { $0.name == drained }).map({ "127.0.0.1:\($0.boundAddresses[0].port)" }) else {
            return XCTFail("no two rooms share an owner")
        }
        let (live, fresh) = (keys[0], keys[1])
        var members: [DemoWebSocketClient] = []
        defer { for m in members { m.disconnect() } }
        for _ in 0..<2 {
            let (c, name) = try member(h, live)
            members.append(c)
            XCTAssertEqual(name, drained)
        }
        guard let answer = adminPost(h, "/api/servers/drain?upstream=chat&address=\(address)"), answer.status != 404 else {
            throw XCTSkip("POST /api/servers/drain answers 404 in this build (the admin endpoint is not merged): Proxy.adminAction(.drain) is covered by HuddleProxyTests/ServerChoiceHealthTests")
        }
        XCTAssertEqual(answer.status, 200, String(decoding: answer.body, as: UTF8.self))
        XCTAssertNotNil(waitForState(h, drained, "draining", upstream: "chat", timeout: 2))
        // The live group keeps its pin: a new member joins the others on the draining server.
        let (c3, n3) = try member(h, live)
        members.append(c3)
        XCTAssertEqual(n3, drained, "a member of a live group on a draining server must join it there")
        XCTAssertEqual(group(h, live)?.members, 3)
        // A new group does not go there.
        let (c4, n4) = try member(h, fresh)
        defer { c4.disconnect() }
        XCTAssertNotEqual(n4, drained, "a draining server took a new group")
        // Once the group's members are gone, the drained server loses it even while it lingers.
        for m in members { m.disconnect() }
        members.removeAll()
        XCTAssertTrue(Harness.waitFor(5) { self.group(h, live) == nil }, "members not counted out")
        let (c5, n5) = try member(h, live)
        defer { c5.disconnect() }
        XCTAssertNotEqual(n5, drained, "a group with no members left stayed pinned to the draining server")
    }
}
