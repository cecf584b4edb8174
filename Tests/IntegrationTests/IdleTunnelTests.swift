// Idle tunnels hold no user-space buffer and no pipe: checked through the admin port's per-worker pool gauges.
import Foundation
import HuddleDemo
import HuddleSys
import XCTest

final class IdleTunnelTests: HuddleTestCase {
    private func metric(_ text: String, _ name: String) -> Int? {
        for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Int(line.split(separator: " ").last ?? "")
        }
        return nil
    }

    func testIdleTunnelsHoldNoBuffersAndNoPipes() throws {
        let backend = try Harness.startBackend("idle")
        defer { backend.stop() }
        let h = try HuddleProcess(config: """
        admin 127.0.0.1:{ADMIN};
        upstream ws { server 127.0.0.1:\(backend.boundAddresses[0].port); }
        server { listen 127.0.0.1:{PORT}; route / { upstream ws; } }
        """, workers: 2, withAdmin: true)
        let address = SocketAddress(ip: "127.0.0.1", port: h.port)!
        var clients: [DemoWebSocketClient] = []
        for i in 0..<40 {
            let c = try DemoWebSocketClient(address: address, path: "/echo/\(i)")
            // Small messages (copied) and one bulk message (spliced) so both paths have been used.
            try c.send(text: "hello \(i)")
            guard case .text(let t) = try c.receive() else { return XCTFail("no echo") }
            XCTAssertEqual(t, "hello \(i)")
            if i % 10 == 0 {
                let big = [UInt8](repeating: UInt8(i), count: 300_000)
                try c.send(binary: big)
                guard case .binary(let b) = try c.receive() else { return XCTFail("no binary echo") }
                XCTAssertEqual(b, big)
            }
            clients.append(c)
        }
        var text = ""
        let settled = Harness.waitFor(10) {
            text = (try? Harness.curl(["\(h.adminURL)/metrics"]).text) ?? ""
            return self.metric(text, "huddle_tunnels") == 40 && self.metric(text, "huddle_buffers_in_use") == 0
                && self.metric(text, "huddle_pipes_in_use") == 0
        }
        XCTAssertTrue(settled, "with 40 idle tunnels:\n\(text)")
        XCTAssertEqual(metric(text, "huddle_tunnels"), 40)
        XCTAssertEqual(metric(text, "huddle_buffers_in_use"), 0)
        XCTAssertEqual(metric(text, "huddle_pipes_in_use"), 0)
        // And they still work after idling.
        for (i, c) in clients.enumerated() {
            try c.send(text: "again \(i)")
            guard case .text(let t) = try c.receive() else { return XCTFail("no echo after idle") }
            XCTAssertEqual(t, "again \(i)")
        }
        for c in clients { try? c.close() }
    }
}
