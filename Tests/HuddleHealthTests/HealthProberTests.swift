// HealthProber against loopback servers this test controls byte for byte (answer 200/500/204, hang, close early,
// garbage, a status line split across writes), with the prober's loop driven on the test thread. Timing bounds are the
// check's own (interval, timeout, fall) plus a little slack: no processes, so no process start-up in the way.
@testable import HuddleHealth
import Glibc
import HuddleIO
import HuddleSys
import XCTest

/// A loopback HTTP server on its own thread; what it does with each connection is its `mode` at accept time.
final class ProbeTargetServer: @unchecked Sendable {
    // SAFETY: mutable state is behind `lock`; `fd` and `port` are set once in init.
    enum Mode: Sendable { case status(Int), hang, closeAfterHead, garbage, split, acceptOnly }
    let port: UInt16
    private let fd: Int32
    private let lock = NSLock()
    private var _mode: Mode
    private var _stopped = false
    private var _heads: [String] = []
    private var _accepts: [Int64] = []
    private var held: [Int32] = []
    private var thread: Thread?
    private let done = NSCondition()
    private var finished = false

    init(mode: Mode) {
        _mode = mode
        let sock = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(sock, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        Glibc.listen(sock, 64)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(sock, $0, &len) } }
        fd = sock
        port = UInt16(bigEndian: addr.sin_port)
        let t = Thread { [self] in run() }
        thread = t
        t.start()
    }

    var address: SocketAddress { SocketAddress(ip: "127.0.0.1", port: port)! }
    var mode: Mode {
        get { lock.withLock { _mode } }
        set { lock.withLock { _mode = newValue } }
    }
    /// Request heads received so far.
    var heads: [String] { lock.withLock { _heads } }
    /// Monotonic ms of each accept.
    var accepts: [Int64] { lock.withLock { _accepts } }

    private func run() {
        while !lock.withLock({ _stopped }) {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 20) > 0 else { continue }
            let c = accept(fd, nil, nil)
            guard c >= 0 else { continue }
            let m = lock.withLock { () -> Mode in
                _accepts.append(Sys.monotonicMs())
                return _mode
            }
            serve(c, m)
        }
        lock.withLock { for c in held { close(c) }; held.removeAll() }
        close(fd)
        done.lock()
        finished = true
        done.signal()
        done.unlock()
    }

    private func serve(_ c: Int32, _ m: Mode) {
        if case .acceptOnly = m {
            lock.withLock { held.append(c) }
            return
        }
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var got: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while got.count < 65536 {
            let n = buf.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            got += buf[0..<n]
            if String(decoding: got, as: UTF8.self).contains("\r\n\r\n") { break }
        }
        lock.withLock { _heads.append(String(decoding: got, as: UTF8.self)) }
        func send(_ s: String) { _ = Array(s.utf8).withUnsafeBytes { Glibc.send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }
        switch m {
        case .status(let code):
            send("HTTP/1.1 \(code) X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            close(c)
        case .hang:
            lock.withLock { held.append(c) }
        case .closeAfterHead:
            close(c)
        case .garbage:
            send("NOT HTTP AT ALL\r\n\r\n")
            close(c)
        case .split:
            send("HTTP/1.1 2")
            usleep(30_000)
            send("04 No Content\r\nX-A: b\r\n")
            usleep(30_000)
            send("\r\n")
            close(c)
        case .acceptOnly:
            break
        }
    }

    func stop() {
        lock.withLock { _stopped = true }
        done.lock()
        while !finished { done.wait() }
        done.unlock()
    }
}

final class HealthProberTests: XCTestCase {
    final class Log: @unchecked Sendable {
        let lock = NSLock()
        var seen: [(from: ServerState, to: ServerState, reason: String, atMs: Int64)] = []
        func add(_ a: ServerState, _ b: ServerState, _ r: String) {
            lock.withLock { seen.append((a, b, r, Sys.monotonicMs())) }
        }
        var all: [(from: ServerState, to: ServerState, reason: String, atMs: Int64)] { lock.withLock { seen } }
    }

    private var servers: [ProbeTargetServer] = []
    override func tearDown() {
        for s in servers { s.stop() }
        servers.removeAll()
        super.tearDown()
    }

    private func server(_ m: ProbeTargetServer.Mode) -> ProbeTargetServer {
        let s = ProbeTargetServer(mode: m)
        servers.append(s)
        return s
    }

    private func health(_ log: Log, initial: HealthFlags = []) -> ServerHealth {
        ServerHealth(upstream: "u", server: "s", initial: initial, nowWallMs: 0, observer: { _, a, b, r in log.add(a, b, r) })
    }

    private func spec(_ kind: ProbeSpec.Kind = .http(path: "/healthz", host: "app.internal"), interval: Int64 = 50, timeout: Int64 = 200,
                      rise: Int = 2, fall: Int = 2, expect: [ClosedRange<Int>] = [200...399]) -> ProbeSpec {
        ProbeSpec(kind: kind, intervalMs: interval, timeoutMs: timeout, rise: rise, fall: fall, expect: expect)
    }

    /// Runs the loop on this thread until `condition` holds or `seconds` pass.
    @discardableResult
    private func run(_ loop: EventLoop, _ seconds: Double, until condition: () -> Bool) -> Bool {
        let deadline = Sys.monotonicMs() + Int64(seconds * 1000)
        while Sys.monotonicMs() < deadline {
            if condition() { return true }
            loop.runOnce(maxWaitMs: 10)
        }
        return condition()
    }

    func testVerdictsFollowTheStatusAndFallAndRise() throws {
        let loop = try EventLoop(id: 0)
        let log = Log()
        let s = server(.status(200))
        let h = health(log)
        let prober = HealthProber(loop: loop, seed: 1)
        prober.sync([ProbeTarget(key: 1, address: s.address, spec: spec(), health: h)])
        XCTAssertTrue(run(loop, 3) { h.snapshot.lastProbeOK == true })
        XCTAssertTrue(h.snapshot.lastProbeDetail.hasPrefix("200 in "), h.snapshot.lastProbeDetail)
        XCTAssertEqual(h.state, .healthy)
        let head = s.heads.first ?? ""
        XCTAssertTrue(head.hasPrefix("GET /healthz HTTP/1.1\r\n"), head)
        XCTAssertTrue(head.contains("\r\nHost: app.internal\r\n"), head)
        XCTAssertTrue(head.contains("\r\nConnection: close\r\n"), head)

        s.mode = .status(500)
        XCTAssertTrue(run(loop, 3) { h.state == .unhealthy })
        XCTAssertEqual(log.all.count, 1)
        XCTAssertEqual(log.all.first?.reason, "health check failed 2 times in a row (last: \(h.snapshot.lastProbeDetail))")
        XCTAssertTrue(h.snapshot.lastProbeDetail.contains("500 in ") && h.snapshot.lastProbeDetail.contains("(expected 200-399)"), h.snapshot.lastProbeDetail)

        s.mode = .status(302)
        XCTAssertTrue(run(loop, 3) { h.state == .healthy }, "3xx is in the default expect range")
        XCTAssertEqual(log.all.map { "\($0.from.name)->\($0.to.name)" }, ["healthy->unhealthy", "unhealthy->healthy"])
        XCTAssertTrue(log.all.last?.reason.hasPrefix("health check passed 2 times in a row") ?? false)
        prober.stopAll()
    }

    func testMalformedEarlyClosedAndSplitAnswers() throws {
        let loop = try EventLoop(id: 0)
        let log = Log()
        let prober = HealthProber(loop: loop, seed: 2)
        let cases: [(ProbeTargetServer.Mode, Bool, String)] = [
            (.closeAfterHead, false, "closed before a complete response"),
            (.garbage, false, "invalid response"),
            (.split, true, "204 in "),
            (.status(204), false, "204 in "),   // not in expect=200
        ]
        for (i, (mode, ok, detail)) in cases.enumerated() {
            let s = server(mode)
            let h = health(log)
            let expect: [ClosedRange<Int>] = i == 3 ? [200...200] : [200...200, 204...204]
            prober.sync([ProbeTarget(key: 10 + i, address: s.address, spec: spec(expect: expect), health: h)])
            XCTAssertTrue(run(loop, 3) { h.snapshot.lastProbeOK != nil }, "\(mode): no probe")
            XCTAssertEqual(h.snapshot.lastProbeOK, ok, "\(mode): \(h.snapshot.lastProbeDetail)")
            XCTAssertTrue(h.snapshot.lastProbeDetail.contains(detail), "\(mode): \(h.snapshot.lastProbeDetail)")
        }
        prober.stopAll()
    }

    /// A server that accepts and never answers is down after `fall` probes that each wait `timeout`: within
    /// (fall - 1) intervals plus one timeout of the first probe, because probes start an interval apart whatever they
    /// wait for (a cycle of interval + timeout would make it (fall - 1) x (interval + timeout) + timeout).
    func testHungServerIsDownWithinFallIntervalsPlusOneTimeout() throws {
        let loop = try EventLoop(id: 0)
        let log = Log()
        let s = server(.hang)
        let h = health(log)
        let prober = HealthProber(loop: loop, seed: 3)
        let (interval, timeout, fall): (Int64, Int64, Int) = (200, 180, 3)
        prober.sync([ProbeTarget(key: 1, address: s.address, spec: spec(interval: interval, timeout: timeout, fall: fall), health: h)])
        XCTAssertTrue(run(loop, 5) { h.state == .unhealthy })
        guard let first = s.accepts.first, let down = log.all.first?.atMs else { return XCTFail("no probe or no transition") }
        let took = down - first
        let bound = Int64(Double((Int64(fall) - 1) * interval) * 1.1) + timeout
        print("HealthProberTests: hung server down \(took) ms after the first probe (bound (fall-1) x interval x 1.1 + timeout = \(bound) ms)")
        XCTAssertGreaterThanOrEqual(took, (Int64(fall) - 1) * interval * 9 / 10 + timeout - 20)
        XCTAssertLessThanOrEqual(took, bound + 150, "probes must start an interval apart, not interval + timeout")
        XCTAssertTrue(h.snapshot.lastProbeDetail.hasPrefix("timeout after 180 ms"), h.snapshot.lastProbeDetail)
        // The hung probes' sockets were closed: the fourth probe (if any) opened a new connection, never several at once.
        XCTAssertEqual(prober.probesStarted, s.accepts.count)
        prober.stopAll()
    }

    func testTCPProbes() throws {
        let loop = try EventLoop(id: 0)
        let log = Log()
        let listening = server(.acceptOnly)
        let up = health(log)
        // A port nothing listens on: bind, read the port, close.
        let closed = ProbeTargetServer(mode: .acceptOnly)
        let closedAddress = closed.address
        closed.stop()
        let down = health(log)
        let prober = HealthProber(loop: loop, seed: 4)
        prober.sync([
            ProbeTarget(key: 1, address: listening.address, spec: spec(.tcp, rise: 1, fall: 1), health: up),
            ProbeTarget(key: 2, address: closedAddress, spec: spec(.tcp, rise: 1, fall: 1), health: down),
        ])
        XCTAssertTrue(run(loop, 3) { up.snapshot.lastProbeOK != nil && down.state == .unhealthy })
        XCTAssertEqual(up.snapshot.lastProbeOK, true)
        XCTAssertTrue(up.snapshot.lastProbeDetail.hasPrefix("connected in "), up.snapshot.lastProbeDetail)
        XCTAssertEqual(up.state, .healthy)
        XCTAssertTrue(down.snapshot.lastProbeDetail.hasPrefix("connect failed"), down.snapshot.lastProbeDetail)
        XCTAssertTrue(listening.heads.isEmpty, "a tcp check sends nothing")
        prober.stopAll()
    }

    func testInitiallyUnhealthyWaitsForRisePassingProbes() throws {
        let loop = try EventLoop(id: 0)
        let log = Log()
        let s = server(.status(200))
        let h = health(log, initial: .activeDown)
        let prober = HealthProber(loop: loop, seed: 5)
        prober.sync([ProbeTarget(key: 1, address: s.address, spec: spec(rise: 3), health: h)])
        XCTAssertEqual(h.state, .unhealthy)
        XCTAssertTrue(run(loop, 3) { h.state == .healthy })
        XCTAssertGreaterThanOrEqual(s.accepts.count, 3, "healthy only after rise=3 passing probes")
        XCTAssertEqual(log.all.count, 1)
        prober.stopAll()
    }

    /// One probe per interval per target, jittered; sync keeps a target's probe (and counters) when nothing changed,
    /// and stops a removed target's probes.
    func testOneProbePerIntervalAndSyncKeepsOrStopsProbes() throws {
        let loop = try EventLoop(id: 0)
        let log = Log()
        let s = server(.status(200))
        let h = health(log)
        let prober = HealthProber(loop: loop, seed: 6)
        let target = ProbeTarget(key: 1, address: s.address, spec: spec(interval: 100), health: h)
        prober.sync([target])
        XCTAssertTrue(run(loop, 3) { !s.accepts.isEmpty })
        let start = s.accepts[0]
        run(loop, 1.5) { false }
        prober.sync([target])   // unchanged: the same probe goes on
        run(loop, 0.5) { false }
        let times = s.accepts.filter { $0 >= start && $0 < start + 2000 }
        let gaps = zip(times.dropFirst(), times).map { $0 - $1 }
        print("HealthProberTests: \(times.count) probes in 2 s at interval 100 ms; gaps \(gaps.min() ?? 0)...\(gaps.max() ?? 0) ms")
        XCTAssertTrue((17...23).contains(times.count), "\(times.count) probes in 2 s")
        // Accept times carry the machine's scheduling delays: a late probe makes the next gap short (seen: 148 then 68
        // ms on a loaded machine under ASan). Half the interval still catches two probes where one belongs.
        XCTAssertGreaterThanOrEqual(gaps.min() ?? 0, 50, "\(gaps)")
        XCTAssertGreaterThan((gaps.max() ?? 0) - (gaps.min() ?? 0), 0, "jitter")
        XCTAssertTrue(run(loop, 1) { h.snapshot.probeSuccessesInARow == prober.probesStarted },
                      "counters kept across an unchanged sync: \(h.snapshot.probeSuccessesInARow) successes in a row, \(prober.probesStarted) probes")
        prober.sync([])
        XCTAssertEqual(prober.count, 0)
        let started = prober.probesStarted
        run(loop, 0.4) { false }
        XCTAssertEqual(prober.probesStarted, started, "a removed target is not probed")
        XCTAssertLessThanOrEqual(s.accepts.count, started)
    }
}
