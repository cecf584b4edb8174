// TLS termination and TLS to backends, checked with peers that do not share Huddle's code: curl, openssl s_client,
// Python's websockets over ssl, and a Python ssl backend. Certificates are made by the test (TestCertificates).
import Foundation
import Glibc
import HuddleDemo
import HuddleSys
import XCTest

final class TLSTests: HuddleTestCase {
    var certs: TestCertificates!
    var a: (cert: String, key: String)!
    var b: (cert: String, key: String)!

    override func setUpWithError() throws {
        try super.setUpWithError()
        certs = try TestCertificates()
        a = try certs.leaf("a", names: ["a.test", "*.a.wild"])
        b = try certs.leaf("b", names: ["b.test"])
    }

    func tlsConfig(backend: UInt16, extra: String = "", certificates: String? = nil) -> String {
        """
        upstream app { server 127.0.0.1:\(backend); }
        server {
            listen 127.0.0.1:{PORT} tls;
            \(certificates ?? "tls_certificate \(a.cert); tls_certificate_key \(a.key); tls_certificate \(b.cert); tls_certificate_key \(b.key);")
            \(extra)
            route / { upstream app; }
        }
        """
    }

    func curl(_ h: HuddleProcess, _ host: String, _ paths: [String], extra: [String] = []) throws -> Harness.CommandResult {
        try Harness.curl(["--cacert", certs.caPath, "--resolve", "\(host):\(h.port):127.0.0.1", "-w", "\\n%{http_code} %{num_connects}\\n"]
                         + extra + paths.map { "https://\(host):\(h.port)\($0)" })
    }

    /// `openssl s_client` with one request on stdin; it waits for the answer (and the TLS 1.3 tickets sent after the
    /// handshake) until Huddle closes the connection.
    func sClient(_ h: HuddleProcess, _ args: [String]) throws -> String {
        let request = Data("GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n".utf8)
        let r = try Harness.run("/usr/bin/openssl", ["s_client", "-connect", "127.0.0.1:\(h.port)", "-CAfile", certs.caPath, "-ign_eof"] + args,
                                timeout: 20, stdin: request)
        return r.text + r.stderr
    }

    func testHTTPSWithKeepAliveOnOneConnection() throws {
        let backend = try Harness.startBackend("tls-ka")
        defer { backend.stop() }
        let h = try HuddleProcess(config: tlsConfig(backend: backend.boundAddresses[0].port))
        let r = try curl(h, "a.test", ["/", "/", "/headers"], extra: ["-i"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.text.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n").filter { $0.hasPrefix("200 ") }
        XCTAssertEqual(lines, ["200 1", "200 0", "200 0"], "three requests, one TLS connection: \(r.text)")
        XCTAssertTrue(r.text.contains("X-Forwarded-Proto: https"), r.text)
        XCTAssertTrue(r.text.contains("proto=https"), r.text)
        // Each response names the backend connection that carried it.
        let serials = r.text.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n").filter { $0.lowercased().hasPrefix("x-backend-connection:") }
        XCTAssertEqual(serials.count, 3, r.text)
        XCTAssertEqual(Set(serials).count, 1, "and one pooled backend connection: \(serials)")
    }

    func testSNIPicksTheCertificateAndOldProtocolsAreRefused() throws {
        let backend = try Harness.startBackend("tls-sni")
        defer { backend.stop() }
        let h = try HuddleProcess(config: tlsConfig(backend: backend.boundAddresses[0].port))
        let ra = try sClient(h, ["-servername", "a.test"])
        XCTAssertTrue(ra.contains("subject=CN = a.test"), ra)
        XCTAssertTrue(ra.contains("Verify return code: 0 (ok)"), ra)
        let rb = try sClient(h, ["-servername", "b.test"])
        XCTAssertTrue(rb.contains("subject=CN = b.test"), rb)
        let wild = try sClient(h, ["-servername", "x.a.wild"])
        XCTAssertTrue(wild.contains("subject=CN = a.test"), "a wildcard name is served by its certificate: \(wild)")
        let unknown = try sClient(h, ["-servername", "nobody.test"])
        XCTAssertTrue(unknown.contains("subject=CN = a.test"), "an unknown name gets the first certificate: \(unknown)")
        let old = try sClient(h, ["-servername", "a.test", "-tls1_1"])
        XCTAssertTrue(old.contains("alert protocol version") || old.contains("no protocols available") || old.contains("unsupported protocol"),
                      "TLS 1.1 must be refused: \(old)")
        XCTAssertFalse(old.contains("subject=CN"), old)
        let alpn = try sClient(h, ["-servername", "a.test", "-alpn", "h2,http/1.1"])
        XCTAssertTrue(alpn.contains("ALPN protocol: http/1.1"), alpn)
    }

    func testSessionsResume() throws {
        let backend = try Harness.startBackend("tls-resume")
        defer { backend.stop() }
        let h = try HuddleProcess(config: tlsConfig(backend: backend.boundAddresses[0].port))
        let session = certs.path("session.pem")
        for version in ["-tls1_2", "-tls1_3"] {
            let first = try sClient(h, ["-servername", "a.test", version, "-sess_out", session])
            XCTAssertTrue(first.contains("New,"), first)
            let second = try sClient(h, ["-servername", "a.test", version, "-sess_in", session])
            XCTAssertTrue(second.contains("Reused,"), "\(version): the session must resume: \(second)")
        }
    }

    func testWSSEchoesLargeFramesToAPlainBackend() throws {
        let backend = try Harness.startBackend("tls-ws")
        defer { backend.stop() }
        let h = try HuddleProcess(config: tlsConfig(backend: backend.boundAddresses[0].port), workers: 2)
        let r = try Harness.run("/usr/bin/env", ["python3", PythonPeer.peersDirectory.appendingPathComponent("wss_client.py").path, "echo",
                                                 "wss://127.0.0.1:\(h.port)/ws", "--ca", certs.caPath, "--host", "a.test",
                                                 "--size", "\(1 << 20)", "--count", "3"], timeout: 90)
        XCTAssertEqual(r.text.trimmingCharacters(in: .whitespacesAndNewlines), "OK", r.text + r.stderr)
    }

    func testAStalledHandshakeIsCutWhileOthersAreServed() throws {
        let backend = try Harness.startBackend("tls-stall")
        defer { backend.stop() }
        let h = try HuddleProcess(config: tlsConfig(backend: backend.boundAddresses[0].port, extra: "tls_handshake_timeout 1s;"))
        let stalled = try RawClient(port: h.port, receiveTimeoutSeconds: 10)
        stalled.send([0x16, 0x03, 0x01, 0x02, 0x00])   // the first bytes of a ClientHello, then nothing
        let t0 = Date()
        // Others are served meanwhile.
        XCTAssertTrue(try curl(h, "a.test", ["/"]).text.contains("200 1"))
        let (closed, _) = stalled.waitForClose()
        let took = Date().timeIntervalSince(t0)
        XCTAssertTrue(closed)
        XCTAssertGreaterThan(took, 0.8, "not before tls_handshake_timeout")
        XCTAssertLessThan(took, 4, "at tls_handshake_timeout, with slack")
        XCTAssertTrue(Harness.waitFor(5) { h.log.contains("TLS handshake not completed within tls_handshake_timeout") }, h.log)
    }

    func testReloadSwitchesTheCertificateAndKeepsAnOpenTunnel() throws {
        let backend = try Harness.startBackend("tls-reload")
        defer { backend.stop() }
        let h = try HuddleProcess(config: tlsConfig(backend: backend.boundAddresses[0].port,
                                                   certificates: "tls_certificate \(a.cert); tls_certificate_key \(a.key);"))
        XCTAssertTrue(try sClient(h, ["-servername", "a.test"]).contains("subject=CN = a.test"))
        // A wss:// tunnel open across the reload.
        let trigger = certs.path("go")
        let peer = Process()
        peer.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        peer.arguments = ["python3", PythonPeer.peersDirectory.appendingPathComponent("wss_client.py").path, "hold", "wss://127.0.0.1:\(h.port)/ws",
                          "--ca", certs.caPath, "--host", "a.test", "--trigger", trigger]
        let out = certs.path("hold.out")
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        peer.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        peer.standardError = peer.standardOutput
        try peer.run()
        defer { if peer.isRunning { peer.terminate() }; peer.waitUntilExit() }
        XCTAssertTrue(Harness.waitFor(20) { ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").contains("READY") },
                      (try? String(contentsOfFile: out, encoding: .utf8)) ?? "")

        // The same name, a new certificate: the next handshake gets it.
        let a2 = try certs.leaf("a2", names: ["a.test", "second.a.test"])
        var text = try String(contentsOf: h.configURL, encoding: .utf8)
        text = text.replacingOccurrences(of: "tls_certificate \(a.cert); tls_certificate_key \(a.key);",
                                         with: "tls_certificate \(a2.cert); tls_certificate_key \(a2.key);")
        try text.write(to: h.configURL, atomically: true, encoding: .utf8)
        h.signal(SIGHUP)
        XCTAssertTrue(Harness.waitFor(10) { h.log.contains("reloaded configuration (generation 2)") }, h.log)
        let after = try sClient(h, ["-servername", "second.a.test"])
        XCTAssertTrue(after.contains("Verify return code: 0 (ok)"), "the reloaded certificate (which names second.a.test) is served: \(after)")
        _ = FileManager.default.createFile(atPath: trigger, contents: Data())
        XCTAssertTrue(Harness.waitFor(20) { !peer.isRunning })
        let result = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        XCTAssertTrue(result.contains("OK"), "the tunnel opened before the reload still works: \(result)")

        // A key that does not match its certificate: the reload fails, the running certificate stays.
        text = text.replacingOccurrences(of: "tls_certificate_key \(a2.key);", with: "tls_certificate_key \(b.key);")
        try text.write(to: h.configURL, atomically: true, encoding: .utf8)
        h.signal(SIGHUP)
        XCTAssertTrue(Harness.waitFor(10) { h.log.contains("does not match certificate") }, h.log)
        XCTAssertTrue(try sClient(h, ["-servername", "second.a.test"]).contains("Verify return code: 0 (ok)"), "the old certificate still serves")
        XCTAssertEqual(try curl(h, "a.test", ["/"]).status, 0)
    }

    func testTLSBackendIsVerified() throws {
        let good = try certs.leaf("backend", names: ["backend.test"], ipAddresses: ["127.0.0.1"])
        let peer = try PythonPeer(script: "tls_backend.py", arguments: ["--cert", good.cert, "--key", good.key, "--name", "secure"])
        defer { peer.stop() }
        let otherCA = try TestCertificates()
        let h = try HuddleProcess(config: """
        upstream right { server 127.0.0.1:\(peer.port); tls verify=on sni=backend.test ca=\(certs.caPath); }
        upstream wrong { server 127.0.0.1:\(peer.port); tls verify=on ca=\(otherCA.caPath); retries 0; }
        upstream byip { server 127.0.0.1:\(peer.port); tls ca=\(certs.caPath); }
        server {
            listen 127.0.0.1:{PORT};
            route /right/ { upstream right; }
            route /wrong/ { upstream wrong; }
            route /byip/ { upstream byip; }
        }
        """)
        for path in ["/right/x", "/right/y", "/byip/z"] {
            let r = try Harness.curl(["-w", "\n%{http_code}", "\(h.url)\(path)"])
            XCTAssertEqual(r.text, "hello from secure\n\n200", path)
        }
        let bad = try Harness.curl(["-w", "%{http_code}", "-o", "/dev/null", "\(h.url)/wrong/x"])
        XCTAssertEqual(bad.text, "502")
        XCTAssertTrue(Harness.waitFor(5) { h.log.contains("certificate verify failed") && h.log.contains("answering 502") }, h.log)
        XCTAssertEqual(peer.events.filter { $0.hasPrefix("request /wrong") }.count, 0, "nothing was sent to an unverified server")
    }

    /// `listen ... tls proxy_protocol`: the PROXY header comes first on the raw connection, then the TLS handshake;
    /// its source is the client the backend hears about.
    func testProxyProtocolHeaderBeforeTheTLSHandshake() throws {
        let backend = try Harness.startBackend("tls-pp")
        defer { backend.stop() }
        let h = try HuddleProcess(config: """
        upstream app { server 127.0.0.1:\(backend.boundAddresses[0].port); }
        server {
            listen 127.0.0.1:{PORT} tls proxy_protocol;
            tls_certificate \(a.cert); tls_certificate_key \(a.key);
            route / { upstream app; }
        }
        """)
        let script = """
        import socket, ssl, sys
        s = socket.create_connection(("127.0.0.1", \(h.port)))
        s.sendall(b"PROXY TCP4 203.0.113.7 127.0.0.1 51000 443\\r\\n")
        ctx = ssl.create_default_context(cafile=sys.argv[1])
        t = ctx.wrap_socket(s, server_hostname="a.test")
        t.sendall(b"GET /headers HTTP/1.1\\r\\nHost: a.test\\r\\nConnection: close\\r\\n\\r\\n")
        out = b""
        while True:
            d = t.recv(65536)
            if not d:
                break
            out += d
        sys.stdout.write(out.decode("latin-1"))
        """
        let r = try Harness.run("/usr/bin/env", ["python3", "-c", script, certs.caPath], timeout: 30)
        XCTAssertTrue(r.text.hasPrefix("HTTP/1.1 200"), r.text + r.stderr)
        XCTAssertTrue(r.text.contains("X-Forwarded-For: 203.0.113.7"), "the PROXY header's source is the client: \(r.text)")
        XCTAssertTrue(r.text.contains("X-Forwarded-Proto: https"), r.text)
        // Without the header, the handshake bytes are not a header: closed without an answer.
        let plain = try sClient(h, ["-servername", "a.test"])
        XCTAssertTrue(plain.contains("no peer certificate available") && !plain.contains("subject=CN"), "no handshake without a header: \(plain)")
        XCTAssertTrue(Harness.waitFor(5) { h.log.contains("invalid PROXY protocol header") }, h.log)
    }
}
