// The huddle command line: --check on every shipped config, errors with file:line:column, --version, --help.
import Foundation
import XCTest

final class CLITests: HuddleTestCase {
    func testEveryExampleAndTheSampleValidate() throws {
        let dir = Harness.root.appendingPathComponent("Examples")
        var files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".conf") }.map { dir.appendingPathComponent($0).path }
        XCTAssertGreaterThanOrEqual(files.count, 2)
        files.append(Harness.root.appendingPathComponent("proxy.conf.sample").path)
        for f in files {
            let r = try Harness.run(try Harness.huddleBinary, ["-t", "-c", f])
            XCTAssertEqual(r.status, 0, "\(f): \(r.stderr)")
            XCTAssertEqual(r.text, "\(f): ok\n")
        }
    }

    func testCheckReportsFileLineAndColumn() throws {
        let dir = Harness.temporaryDirectory()
        let f = dir.appendingPathComponent("bad.conf").path
        try """
        workers 2;
        upstream a {
            server 127.0.0.1:9001;
            connect_timeout 2x;
        }
        server {
            listen 127.0.0.1:8080;
            route / { upstream b; }
        }
        """.write(toFile: f, atomically: true, encoding: .utf8)
        let r = try Harness.run(try Harness.huddleBinary, ["-t", "-c", f])
        XCTAssertEqual(r.status, 1)
        let lines = r.stderr.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 2, r.stderr)
        XCTAssertTrue(lines[0].hasPrefix("\(f):4:21: error: "), lines[0])
        XCTAssertTrue(lines[0].contains("duration"), lines[0])
        XCTAssertTrue(lines[1].hasPrefix("\(f):8:"), lines[1])
        XCTAssertTrue(lines[1].contains("\"b\""), lines[1])
    }

    func testVersionAndHelp() throws {
        let v = try Harness.run(try Harness.huddleBinary, ["--version"])
        XCTAssertEqual(v.status, 0)
        XCTAssertTrue(v.text.hasPrefix("huddle "))
        let h = try Harness.run(try Harness.huddleBinary, ["--help"])
        XCTAssertEqual(h.status, 0)
        XCTAssertTrue(h.text.contains("--check"))
        let bad = try Harness.run(try Harness.huddleBinary, ["--frobnicate"])
        XCTAssertNotEqual(bad.status, 0)
    }

    func testRunningWithAnInvalidConfigExitsWithTheErrors() throws {
        let dir = Harness.temporaryDirectory()
        let f = dir.appendingPathComponent("bad.conf").path
        try "server { listen 127.0.0.1:1; route / { upstream nowhere; } }\n".write(toFile: f, atomically: true, encoding: .utf8)
        let r = try Harness.run(try Harness.huddleBinary, ["-c", f], timeout: 20)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("\(f):1:"), r.stderr)
    }

    /// The systemd unit in Examples/ is one systemd accepts: with the real huddle binary in place of the install path,
    /// `systemd-analyze verify` finds nothing to complain about, and it checks the config before starting and reloading.
    func testTheSystemdUnitVerifies() throws {
        let analyze = "/usr/bin/systemd-analyze"
        guard FileManager.default.isExecutableFile(atPath: analyze) else {
            throw XCTSkip("systemd-analyze is not installed")
        }
        let unit = try String(contentsOf: Harness.root.appendingPathComponent("Examples/systemd/huddle.service"), encoding: .utf8)
        XCTAssertTrue(unit.contains("ExecStartPre=/usr/local/bin/huddle -t -c /etc/huddle/proxy.conf"))
        XCTAssertTrue(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"))
        XCTAssertTrue(unit.contains("LimitNOFILE="))
        let dir = Harness.temporaryDirectory()
        let path = dir.appendingPathComponent("huddle.service").path
        try unit.replacingOccurrences(of: "/usr/local/bin/huddle", with: try Harness.huddleBinary).write(toFile: path, atomically: true, encoding: .utf8)
        let r = try Harness.run(analyze, ["verify", path], timeout: 30)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines), "", "systemd-analyze complained")
    }
}
