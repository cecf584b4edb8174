// The demo chat page in a real browser (headless Chromium over the DevTools protocol): when its room migrates, the page
// gets Close 1012, reconnects after a short random delay and says where the room moved.
import Foundation
import Glibc
import HuddleDemo
import XCTest

final class DemoPageMigrationTests: HuddleTestCase {
    func testChatPageFollowsItsRoomWhenItMoves() throws {
        let browser = try Chromium.ensure()
        let backends = try ["demo-a", "demo-b"].map { try Harness.startBackend($0) }
        defer { for b in backends { b.stop() } }
        let servers = backends.map { "    server 127.0.0.1:\($0.boundAddresses[0].port) name=\($0.name);" }.joined(separator: "\n")
        let h = try HuddleProcess(config: """
        admin 127.0.0.1:{ADMIN} { token "page"; }
        upstream rooms {
            balance hash;
            rebalance migrate rate=50;
        \(servers)
        }
        server {
            listen 127.0.0.1:{PORT};
            route /rooms/ { upstream rooms; group_key path 2; }
        }

        """, workers: 2)
        // A room whose server is demo-a, so draining demo-a moves it to demo-b.
        var room: String?
        for i in 0..<64 {
            guard let text = Invariants.adminGet(h, "/api/lookup?upstream=rooms&key=lobby\(i)"),
                  let o = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { continue }
            if o["server"] as? String == "demo-a" { room = "lobby\(i)"; break }
        }
        guard let room else { return XCTFail("no room on demo-a among 64 keys") }
        let shot = Harness.temporaryDirectory().appendingPathComponent("demo-page.png").path
        let script = PythonPeer.peersDirectory.appendingPathComponent("demo_page_cdp.py").path
        let r = try Harness.run("/usr/bin/env", ["python3", script, "--chromium", browser, "--page", "\(h.url)/rooms/\(room)",
                                                 "--drain", "\(h.adminURL)/api/servers/drain?upstream=rooms&server=demo-a",
                                                 "--token", "page", "--screenshot", shot], timeout: 120)
        guard let o = try? JSONSerialization.jsonObject(with: r.stdout) as? [String: Any] else {
            return XCTFail("demo_page_cdp.py: \(r.text) \(r.stderr.suffix(2000))")
        }
        XCTAssertEqual(o["joined"] as? Bool, true, "\(o)")
        XCTAssertTrue((o["log_before"] as? String ?? "").contains("joined \(room) on demo-a"), "\(o)")
        XCTAssertEqual(o["drain_status"] as? Int, 200)
        XCTAssertEqual(o["moved"] as? Bool, true, "\(o)")
        let after = o["log_after"] as? String ?? ""
        XCTAssertTrue(after.contains("the room is moving to another server (1012); reconnecting in "), after)
        XCTAssertTrue(after.contains("moved to demo-b"), after)
        XCTAssertEqual(o["backend"] as? String, "demo-b")
        XCTAssertEqual(o["state"] as? String, "connected")
        XCTAssertFalse(after.contains("connection lost"), after)
        if let keep = ProcessInfo.processInfo.environment["HUDDLE_DEMO_SCREENSHOT"] {
            try? FileManager.default.removeItem(atPath: keep)
            try? FileManager.default.copyItem(atPath: shot, toPath: keep)
        }
        print("demo page after its room moved:\n\(after)")
    }
}
