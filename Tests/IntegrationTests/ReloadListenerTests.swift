// A reload changes listeners without a restart: added ones accept at once, removed ones stop accepting while their
// open connections finish; a listen that cannot be bound fails the whole reload and changes nothing. Servers that
// stay (by identity) keep their counters across a reload that changes their weight.
import Foundation
import Glibc
import HuddleDemo
import HuddleSys
import XCTest

final class ReloadListenerTests: HuddleTestCase {
    private func generation(_ h: HuddleProcess) throws -> Int {
        let r = try Harness.curl(["\(h.adminURL)/api/config"])
        return (try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any])?["generation"] as? Int ?? -1
    }

    private func reload(_ h: HuddleProcess, _ text: String, expectGeneration g: Int) throws {
        try text.write(to: h.configURL, atomically: true, encoding: .utf8)
        h.signal(SIGHUP)
        XCTAssertTrue(Harness.waitFor(10) { (try? self.generation(h)) == g }, h.log)
    }

    private func requestsTotal(_ h: HuddleProcess, server: String) throws -> Int? {
        let r = try Harness.curl(["\(h.adminURL)/api/backends"])
        let json = try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any]
        for u in json?["upstreams"] as? [[String: Any]] ?? [] {
            for s in u["servers"] as? [[String: Any]] ?? [] where s["name"] as? String == server {
                return s["requests_total"] as? Int
            }
        }
        return nil
    }

    func testListenersAddedAndRemovedByReload() throws {
        let b = try Harness.startBackend("lb")
        defer { b.stop() }
        let second = Harness.freePort()
        let base = """
        upstream app { server 127.0.0.1:\(b.boundAddresses[0].port) name=lb weight=1; }
        server {
            listen 127.0.0.1:{PORT};
            route / { upstream app; }
        }
        """
        let h = try HuddleProcess(config: base, workers: 2)
        XCTAssertEqual(try Harness.curl(["\(h.url)/"]).text, "hello from lb\n")
        XCTAssertFalse(Harness.isListening(second))

        // Add a second server block on a new port, and change the server's weight: it stays the same server.
        var text = try String(contentsOf: h.configURL, encoding: .utf8)
        text = text.replacingOccurrences(of: "weight=1", with: "weight=3")
        text += "\nserver { listen 127.0.0.1:\(second); route / { upstream app; } }\n"
        try reload(h, text, expectGeneration: 2)
        XCTAssertEqual(try Harness.curl(["http://127.0.0.1:\(second)/"]).text, "hello from lb\n", "the added listener answers")
        XCTAssertTrue(h.log.contains("reload: listening on 127.0.0.1:\(second)"), h.log)
        XCTAssertEqual(try requestsTotal(h, server: "lb"), 2, "a weight change keeps the server's counters")

        // A keep-alive connection on the first listener, open across the reload that removes that listener.
        let c = try RawClient(port: h.port)
        c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertTrue(c.read { $0.text.hasSuffix("hello from lb\n") }.text.contains("200 OK"))
        let port = h.port
        text = text.replacingOccurrences(of: "listen 127.0.0.1:\(port);", with: "listen 127.0.0.1:\(second + 0);\n    # moved")
        // The first block now listens on the second port too: drop the duplicate second block.
        text = text.replacingOccurrences(of: "\nserver { listen 127.0.0.1:\(second); route / { upstream app; } }\n", with: "\n")
        try reload(h, text, expectGeneration: 3)
        XCTAssertTrue(Harness.waitFor(5) { !Harness.isListening(port) }, "the removed listener stops accepting")
        XCTAssertEqual(try Harness.curl(["http://127.0.0.1:\(second)/"]).text, "hello from lb\n")
        // The open connection finishes its next exchange on the config it had, and is then closed.
        c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        let answer = c.readAll().text
        XCTAssertTrue(answer.contains("200 OK") && answer.contains("Connection: close"), answer)
        XCTAssertTrue(answer.hasSuffix("hello from lb\n"), answer)
    }

    func testAListenThatCannotBeBoundFailsTheReloadAndChangesNothing() throws {
        let b = try Harness.startBackend("lc")
        defer { b.stop() }
        let h = try HuddleProcess(config: """
        upstream app { server 127.0.0.1:\(b.boundAddresses[0].port); }
        server { listen 127.0.0.1:{PORT}; route / { upstream app; } }
        """)
        // Another process holds this port without SO_REUSEPORT: Huddle cannot bind it.
        let blocker = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(blocker) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(blocker, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(blocker, $0, &len) } }
        XCTAssertEqual(listen(blocker, 1), 0)
        let taken = UInt16(bigEndian: addr.sin_port)

        var text = try String(contentsOf: h.configURL, encoding: .utf8)
        text += "\nserver { listen 127.0.0.1:\(taken); route / { upstream app; } }\n"
        try text.write(to: h.configURL, atomically: true, encoding: .utf8)
        h.signal(SIGHUP)
        XCTAssertTrue(Harness.waitFor(10) { h.log.contains("cannot listen on 127.0.0.1:\(taken)") }, h.log)
        XCTAssertEqual(try generation(h), 1, "the failed reload changed nothing")
        let info = try JSONSerialization.jsonObject(with: Harness.curl(["\(h.adminURL)/api/config"]).stdout) as? [String: Any]
        XCTAssertTrue((info?["result"] as? String ?? "").contains("cannot listen"), "\(String(describing: info))")
        XCTAssertEqual(try Harness.curl(["\(h.url)/"]).text, "hello from lc\n", "the running config still serves")
    }
}
