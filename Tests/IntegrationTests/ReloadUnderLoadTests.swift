// Ten reloads while clients that share no code with Huddle keep it busy (peers/reload_load.py: http.client keep-alive
// loops and 100 `websockets` tunnels echoing every second): no request fails, no tunnel drops, a removed server gets no
// request that started after its reload was applied, an added server and an added listener take traffic, and the
// invalid files change nothing.
import Foundation
import Glibc
import HuddleDemo
import XCTest

final class ReloadUnderLoadTests: HuddleTestCase {
    private func generation(_ h: HuddleProcess) -> Int {
        guard let r = try? Harness.curl(["\(h.adminURL)/api/config"]),
              let json = try? JSONSerialization.jsonObject(with: r.stdout) as? [String: Any] else { return -1 }
        return json["generation"] as? Int ?? -1
    }

    func testTenReloadsUnderKeepAliveLoadAndOpenTunnelsLoseNothing() throws {
        let a = try Harness.startBackend("rl-a")
        let b = try Harness.startBackend("rl-b")
        let c = try Harness.startBackend("rl-c")
        defer { a.stop(); b.stop(); c.stop() }
        let pa = a.boundAddresses[0].port, pb = b.boundAddresses[0].port, pc = c.boundAddresses[0].port
        let extra = Harness.freePort()

        func config(servers: [String], extraListener: Bool = false, connectTimeout: String = "2s", broken: String = "") -> String {
            """
            upstream app {
            \(servers.map { "    server \($0);" }.joined(separator: "\n"))
                connect_timeout \(connectTimeout);
                keepalive 32;
            }
            server {
                listen 127.0.0.1:{PORT};
            \(extraListener ? "    listen 127.0.0.1:\(extra);" : "")
                route / { upstream app; }
            }
            \(broken)
            """
        }
        let sa = "127.0.0.1:\(pa) name=rl-a", sb = "127.0.0.1:\(pb) name=rl-b", sc = "127.0.0.1:\(pc) name=rl-c"
        let h = try HuddleProcess(config: config(servers: [sa, sb]), workers: 2)
        let stopFile = Harness.temporaryDirectory().appendingPathComponent("stop")
        let load = try PythonPeer(script: "reload_load.py",
                                  arguments: ["--port", "\(h.port)", "--clients", "2", "--tunnels", "100", "--stop", stopFile.path])
        defer { load.stop() }
        XCTAssertNotNil(load.waitForEvent("ready", timeout: 40), load.stderrText)

        var gen = generation(h)
        XCTAssertEqual(gen, 1)
        /// Applies `text` (or, with `valid: false`, expects it refused) and lets the load run on it a little.
        /// Returns the wall-clock time at which the new generation was seen (the reload applied).
        @discardableResult
        func reload(_ text: String, valid: Bool = true) throws -> Double {
            let failedBefore = h.log.components(separatedBy: "reload failed").count
            try text.replacingOccurrences(of: "{PORT}", with: "\(h.port)").write(to: h.configURL, atomically: true, encoding: .utf8)
            h.signal(SIGHUP)
            if valid {
                gen += 1
                XCTAssertTrue(Harness.waitFor(10) { self.generation(h) == gen }, "generation \(gen) not reached\n\(h.log)")
            } else {
                XCTAssertTrue(Harness.waitFor(10) { h.log.components(separatedBy: "reload failed").count > failedBefore }, h.log)
                XCTAssertEqual(generation(h), gen, "an invalid file changes nothing")
            }
            let applied = Date().timeIntervalSince1970
            usleep(400_000)
            return applied
        }

        try reload(config(servers: [sa, sb, sc]))                                             // 1: a server added
        try reload(config(servers: [sa, sb, sc], broken: "bogus_directive 1;"), valid: false) // 2: invalid
        let aRemoved = try reload(config(servers: [sb, sc]))                                  // 3: a server removed
        try reload(config(servers: [sb, sc], extraListener: true))                           // 4: a listener added
        let viaExtra = try Harness.curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(extra)/"]).text
        XCTAssertEqual(viaExtra, "200", "the listener added by reload answers")
        try reload(config(servers: [sb, sc], extraListener: true, connectTimeout: "3s"))     // 5: a timeout changed
        try reload(config(servers: [sb, sc], extraListener: true, broken: "upstream app { }"), valid: false) // 6: invalid
        let aBack = try reload(config(servers: [sa, sb, sc], extraListener: true))           // 7: a server back
        let cRemoved = try reload(config(servers: [sa, sb], extraListener: true))            // 8: a server removed
        try reload(config(servers: [sa, sb]))                                                 // 9: the listener removed
        try reload(config(servers: [sa, sb], connectTimeout: "2s"))                           // 10: back to the start
        XCTAssertTrue(Harness.waitFor(5) { !Harness.isListening(extra) }, "the listener removed by reload stops accepting")

        _ = FileManager.default.createFile(atPath: stopFile.path, contents: Data())
        guard let line = load.waitForEvent("result ", timeout: 60),
              let result = try JSONSerialization.jsonObject(with: Data(line.dropFirst(7).utf8)) as? [String: Any] else {
            return XCTFail("no result from the load driver\n\(load.stderrText)")
        }
        let ok = result["ok"] as? Int ?? 0
        let failed = result["failed"] as? [String] ?? ["?"]
        let dropped = result["tunnels_dropped"] as? [String] ?? ["?"]
        let byBackend = result["by_backend"] as? [String: [Double]] ?? [:]
        XCTAssertEqual(failed, [], "no request may fail across the reloads (\(ok) succeeded)")
        XCTAssertEqual(result["tunnels_open"] as? Int, 100)
        XCTAssertEqual(dropped, [], "no tunnel may drop across the reloads")
        XCTAssertGreaterThan(result["echoes"] as? Int ?? 0, 100 * 4, "the tunnels kept echoing")
        XCTAssertGreaterThan(ok, 200)
        // A request that started after a reload was applied uses that reload's servers. (Requests that began before
        // may finish on the old snapshot.) 50 ms of slack for the workers to take the new snapshot from their inbox.
        let lateA = (byBackend["rl-a"] ?? []).filter { $0 > aRemoved + 0.05 && $0 < aBack - 0.5 }
        XCTAssertEqual(lateA, [], "rl-a got requests after the reload that removed it")
        let lateC = (byBackend["rl-c"] ?? []).filter { $0 > cRemoved + 0.05 }
        XCTAssertEqual(lateC, [], "rl-c got requests after the reload that removed it")
        XCTAssertFalse((byBackend["rl-c"] ?? []).isEmpty, "the server added by reload took traffic")
        XCTAssertFalse((byBackend["rl-a"] ?? []).filter { $0 > aBack }.isEmpty, "the server added back took traffic")
        XCTAssertTrue(h.log.contains("bogus_directive"), h.log)
        print("reload under load: \(ok) requests, 0 failed; \(result["echoes"] ?? 0) echoes on 100 tunnels, 0 dropped; requests per server \(byBackend.mapValues(\.count))")
    }

    /// SIGTERM while 4 keep-alive clients download 300 kB bodies and 100 tunnels echo: every response that began ends
    /// whole, every tunnel gets a Close 1001, and Huddle exits 0.
    func testSIGTERMUnderLoadCutsNoResponseAndClosesEveryTunnelWith1001() throws {
        let a = try Harness.startBackend("st-a")
        let b = try Harness.startBackend("st-b")
        defer { a.stop(); b.stop() }
        let h = try HuddleProcess(config: """
        upstream app {
            server 127.0.0.1:\(a.boundAddresses[0].port);
            server 127.0.0.1:\(b.boundAddresses[0].port);
        }
        server {
            listen 127.0.0.1:{PORT};
            route / { upstream app; }
        }
        """, workers: 2)
        let stopFile = Harness.temporaryDirectory().appendingPathComponent("stop")
        let load = try PythonPeer(script: "reload_load.py",
                                  arguments: ["--port", "\(h.port)", "--clients", "4", "--tunnels", "100", "--path", "/bytes/300000",
                                              "--period", "0.2", "--stop", stopFile.path])
        defer { load.stop() }
        XCTAssertNotNil(load.waitForEvent("ready", timeout: 40), load.stderrText)
        usleep(500_000)
        h.signal(SIGTERM)
        XCTAssertTrue(Harness.waitFor(20) { !h.process.isRunning }, "huddle did not exit after SIGTERM\n\(h.log)")
        XCTAssertEqual(h.process.terminationStatus, 0)
        _ = FileManager.default.createFile(atPath: stopFile.path, contents: Data())
        guard let line = load.waitForEvent("result ", timeout: 60),
              let result = try JSONSerialization.jsonObject(with: Data(line.dropFirst(7).utf8)) as? [String: Any] else {
            return XCTFail("no result from the load driver\n\(load.stderrText)")
        }
        let ok = result["ok"] as? Int ?? 0
        XCTAssertEqual(result["cut"] as? [String], [], "a response cut mid-body")
        XCTAssertEqual(result["tunnels_open"] as? Int, 100)
        XCTAssertEqual(result["close_codes"] as? [String: Int], ["1001": 100], "every tunnel ends with Close 1001: \(result["tunnels_dropped"] ?? "")")
        XCTAssertGreaterThan(ok, 0)
        print("SIGTERM under load: \(ok) whole 300 kB responses, 0 cut, \(result["refused"] ?? 0) connections refused after the listeners closed, \(result["no_response"] ?? 0) requests with no response begun, close codes \(result["close_codes"] ?? [:])")
    }
}
