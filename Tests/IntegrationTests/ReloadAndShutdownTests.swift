// SIGHUP reloads without dropping connections (an invalid file leaves the running config); SIGTERM lets an
// in-flight request finish.
import Foundation
import Glibc
import HuddleDemo
import HuddleSys
import XCTest

final class ReloadAndShutdownTests: HuddleTestCase {
    private func config(_ backends: [DemoBackend]) -> String {
        let servers = backends.map { "    server 127.0.0.1:\($0.boundAddresses[0].port) name=\($0.name);" }.joined(separator: "\n")
        return """
        admin 127.0.0.1:{ADMIN};
        upstream app {
        \(servers)
        }
        server {
            listen 127.0.0.1:{PORT};
            route / { upstream app; }
        }
        """
    }

    private func generation(_ h: HuddleProcess) throws -> Int {
        let r = try Harness.curl(["\(h.adminURL)/api/config"])
        return (try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any])?["generation"] as? Int ?? -1
    }

    func testSIGHUPReloadsKeepsConnectionsAndRejectsABadFile() throws {
        let a = try Harness.startBackend("ra")
        let b = try Harness.startBackend("rb")
        defer { a.stop(); b.stop() }
        let h = try HuddleProcess(config: config([a]), withAdmin: true)
        XCTAssertEqual(try generation(h), 1)
        // An open WebSocket tunnel must survive the reload.
        let ws = try DemoWebSocketClient(address: SocketAddress(ip: "127.0.0.1", port: h.port)!, path: "/ws")
        try ws.send(text: "__whoami")
        XCTAssertEqual(try ws.receive(), .text("ra"))

        // New config: the second backend only.
        var text = try String(contentsOf: h.configURL, encoding: .utf8)
        text = text.replacingOccurrences(of: "127.0.0.1:\(a.boundAddresses[0].port) name=ra", with: "127.0.0.1:\(b.boundAddresses[0].port) name=rb")
        try text.write(to: h.configURL, atomically: true, encoding: .utf8)
        h.signal(SIGHUP)
        XCTAssertTrue(Harness.waitFor(10) { (try? self.generation(h)) == 2 }, h.log)
        var served = ""
        XCTAssertTrue(Harness.waitFor(10) {
            served = (try? Harness.curl(["\(h.url)/"]).text) ?? ""
            return served == "hello from rb\n"
        }, served)
        try ws.send(text: "still here")
        XCTAssertEqual(try ws.receive(), .text("still here"), "the tunnel opened before the reload must keep working")

        // A broken file is reported with its position, and the running config stays.
        try (text + "\nbogus_directive 1;\n").write(to: h.configURL, atomically: true, encoding: .utf8)
        h.signal(SIGHUP)
        XCTAssertTrue(Harness.waitFor(10) { h.log.contains("reload failed") }, h.log)
        XCTAssertTrue(h.log.contains("bogus_directive"), h.log)
        XCTAssertEqual(try generation(h), 2)
        XCTAssertEqual(try Harness.curl(["\(h.url)/"]).text, "hello from rb\n")
        try? ws.close()
    }

    func testAKeepAliveClientSeesTheReloadedServers() throws {
        let a = try Harness.startBackend("ka-a")
        let b = try Harness.startBackend("ka-b")
        defer { a.stop(); b.stop() }
        let h = try HuddleProcess(config: config([a]), withAdmin: true)
        let client = try RawClient(port: h.port)
        client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertTrue(client.read { $0.text.hasSuffix("hello from ka-a\n") }.text.hasSuffix("hello from ka-a\n"))
        var text = try String(contentsOf: h.configURL, encoding: .utf8)
        text = text.replacingOccurrences(of: "127.0.0.1:\(a.boundAddresses[0].port) name=ka-a", with: "127.0.0.1:\(b.boundAddresses[0].port) name=ka-b")
        try text.write(to: h.configURL, atomically: true, encoding: .utf8)
        h.signal(SIGHUP)
        XCTAssertTrue(Harness.waitFor(10) { (try? self.generation(h)) == 2 }, h.log)
        // Same client connection, next request: the removed server must not be used any more.
        client.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let second = client.readAll().text
        XCTAssertTrue(second.hasSuffix("hello from ka-b\n"), second)
    }

    func testSIGTERMClosesWebSocketsWith1001AtAFrameBoundary() throws {
        let a = try Harness.startBackend("bye")
        defer { a.stop() }
        let h = try HuddleProcess(config: config([a]), workers: 2, withAdmin: true)
        let address = SocketAddress(ip: "127.0.0.1", port: h.port)!
        let idle = try (0..<5).map { _ in try DemoWebSocketClient(address: address, path: "/idle") }
        for c in idle {
            try c.send(text: "ping")
            XCTAssertEqual(try c.receive(), .text("ping"))
        }
        // One client has a large message in flight when the signal comes: whatever it gets must be whole frames.
        let busy = try DemoWebSocketClient(address: address, path: "/busy")
        let big = [UInt8]((0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        try busy.send(binary: big)
        h.signal(SIGTERM)
        for c in idle {
            guard case .close(let code, _) = try c.receive() else { return XCTFail("expected a Close frame") }
            XCTAssertEqual(code, 1001)
        }
        var got = try busy.receive()
        if case .binary(let echoed) = got {
            XCTAssertEqual(echoed, big, "the in-flight message must arrive whole")
            got = try busy.receive()
        }
        guard case .close(let code, _) = got else { return XCTFail("expected a Close frame, got \(got)") }
        XCTAssertEqual(code, 1001)
        XCTAssertTrue(Harness.waitFor(15) { !h.process.isRunning }, h.log)
    }

    func testSIGTERMLetsAnInFlightRequestFinish() throws {
        let a = try Harness.startBackend("term")
        defer { a.stop() }
        let h = try HuddleProcess(config: config([a]), withAdmin: true)
        let client = try RawClient(port: h.port, receiveTimeoutSeconds: 20)
        client.send("GET /slow?ms=1500 HTTP/1.1\r\nHost: x\r\n\r\n")
        // Wait until the request is at the backend, then ask Huddle to stop.
        XCTAssertTrue(Harness.waitFor(10) {
            let r = try? Harness.curl(["\(h.adminURL)/metrics"])
            return r?.text.contains("huddle_server_in_flight{upstream=\"app\",server=\"term\"} 1") ?? false
        })
        h.signal(SIGTERM)
        let response = client.readAll().text
        XCTAssertTrue(response.hasPrefix("HTTP/1.1 200"), response)
        XCTAssertTrue(response.lowercased().contains("connection: close"), response)
        XCTAssertTrue(Harness.waitFor(15) { !h.process.isRunning })
        XCTAssertFalse(Harness.isListening(h.port))
    }
}

/// SIGTERM with WebSocket tunnels open to a backend that is not Huddle's code: both ends get a Close 1001.
final class ShutdownCloseFrameTests: HuddleTestCase {
    func testSIGTERMSendsClose1001ToClientsAndToTheBackend() throws {
        let backend = try PythonPeer(script: "ws_backend.py")
        defer { backend.stop() }
        let h = try HuddleProcess(config: """
        upstream ws { server 127.0.0.1:\(backend.port); }
        server { listen 127.0.0.1:{PORT}; route / { upstream ws; } }
        """, workers: 2)
        let address = SocketAddress(ip: "127.0.0.1", port: h.port)!
        let clients = try (0..<4).map { i in try DemoWebSocketClient(address: address, path: "/c\(i)") }
        for (i, c) in clients.enumerated() {
            try c.send(text: "hi \(i)")
            XCTAssertEqual(try c.receive(), .text("hi \(i)"))
        }
        XCTAssertEqual(backend.events.filter { $0.hasPrefix("open ") }.count, 4)
        h.signal(SIGTERM)
        for c in clients {
            guard case .close(let code, _) = try c.receive() else { return XCTFail("expected a Close frame") }
            XCTAssertEqual(code, 1001, "the client's Close")
        }
        XCTAssertTrue(Harness.waitFor(10) { backend.events.filter { $0.hasPrefix("close ") }.count == 4 }, "\(backend.events)")
        for e in backend.events where e.hasPrefix("close ") {
            XCTAssertTrue(e.hasSuffix(" 1001"), "the backend must get a masked Close 1001, not a bare TCP close: \(e)")
        }
        XCTAssertTrue(Harness.waitFor(15) { !h.process.isRunning }, h.log)
    }
}
