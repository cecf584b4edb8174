// reload_on_change: the config lives in a directory laid out like a Kubernetes ConfigMap mount (the file is a
// symlink through `..data`, which is itself a symlink replaced atomically), and a swap reloads; an invalid file
// changes nothing.
import Foundation
import Glibc
import HuddleDemo
import XCTest

final class ReloadOnChangeTests: HuddleTestCase {
    private var backends: [DemoBackend] = []

    override func tearDown() {
        super.tearDown()
        for b in backends { b.stop() }
        backends = []
    }

    private func configInfo(_ h: HuddleProcess) -> (generation: Int, result: String)? {
        guard let text = Invariants.adminGet(h, "/api/config"),
              let o = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { return nil }
        return (o["generation"] as? Int ?? -1, o["result"] as? String ?? "")
    }

    /// What kubelet does on a ConfigMap update: write the new version into a fresh directory, point `..data_tmp` at it,
    /// rename `..data_tmp` over `..data` (the atomic step), remove the old version.
    private func swap(_ dir: URL, version: Int, text: String) throws {
        let fm = FileManager.default
        let versionDir = dir.appendingPathComponent("..v\(version)")
        try fm.createDirectory(at: versionDir, withIntermediateDirectories: true)
        try text.write(to: versionDir.appendingPathComponent("huddle.conf"), atomically: false, encoding: .utf8)
        let tmp = dir.appendingPathComponent("..data_tmp")
        try? fm.removeItem(at: tmp)
        try fm.createSymbolicLink(atPath: tmp.path, withDestinationPath: "..v\(version)")
        XCTAssertEqual(rename(tmp.path, dir.appendingPathComponent("..data").path), 0)
        if version > 1 { try? fm.removeItem(at: dir.appendingPathComponent("..v\(version - 1)")) }
    }

    func testConfigMapSwapReloadsAndAnInvalidFileChangesNothing() throws {
        let a = try Harness.startBackend("a")
        let b = try Harness.startBackend("b")
        backends = [a, b]
        let template = """
            reload_on_change on;
            admin 127.0.0.1:{ADMIN};
            upstream web { SERVERS }
            server { listen 127.0.0.1:{PORT}; route / { upstream web; } }
            """
        let one = "server 127.0.0.1:\(a.boundAddresses[0].port) name=a;"
        let h = try HuddleProcess(config: template.replacingOccurrences(of: "SERVERS", with: one))
        let dir = h.configURL.deletingLastPathComponent()
        let written = try String(contentsOf: h.configURL, encoding: .utf8)
        XCTAssertTrue(Harness.waitFor(5) { h.log.contains("reload_on_change: watching") }, h.log)

        // Turn the file into a ConfigMap mount with the same content: no reload (the content did not change).
        try swap(dir, version: 1, text: written)
        let link = dir.appendingPathComponent("huddle.conf.link")
        try FileManager.default.createSymbolicLink(atPath: link.path, withDestinationPath: "..data/huddle.conf")
        XCTAssertEqual(rename(link.path, h.configURL.path), 0)
        // The watcher reads the file after 200 ms of quiet; 1 s without a reload shows it saw no change.
        XCTAssertFalse(Harness.waitFor(1) { self.configInfo(h)?.generation != 1 }, h.log)

        // A new version: reloaded, with server b added.
        let two = written.replacingOccurrences(of: one, with: one + " server 127.0.0.1:\(b.boundAddresses[0].port) name=b;")
        let swapped = Date()
        try swap(dir, version: 2, text: two)
        XCTAssertTrue(Harness.waitFor(10) { self.configInfo(h)?.generation == 2 }, h.log.suffix(2000).description)
        print("ReloadOnChangeTests: reloaded \(String(format: "%.2f", Date().timeIntervalSince(swapped))) s after the swap")
        XCTAssertNotNil(Admin.servers(h)?.servers["web 127.0.0.1:\(b.boundAddresses[0].port)"])
        XCTAssertTrue(h.log.contains("reload_on_change: \(h.configURL.path) changed; reloading"), h.log)

        // An invalid version: reported, and the running config stays.
        try swap(dir, version: 3, text: two.replacingOccurrences(of: "upstream web {", with: "upstream web { balance sideways;"))
        XCTAssertTrue(Harness.waitFor(10) { self.configInfo(h)?.result.hasPrefix("failed") == true }, h.log.suffix(2000).description)
        XCTAssertEqual(configInfo(h)?.generation, 2)
        XCTAssertTrue(h.log.contains("reload failed; the running configuration stays"), h.log)
        XCTAssertNotNil(Admin.servers(h)?.servers["web 127.0.0.1:\(b.boundAddresses[0].port)"])
        let r = try Harness.curl(["-i", h.url + "/"])
        XCTAssertTrue(r.text.hasPrefix("HTTP/1.1 200"), r.text)
    }
}
