// gzip through the real huddle binary with curl as the client: bodies byte-identical after decoding (fixed length,
// chunked, large), Content-Encoding exactly where it belongs, Vary, and a 100 MB response in flat memory.
import Foundation
import Glibc
import HuddleDemo
import XCTest

final class GzipTests: HuddleTestCase {
    var backends: [DemoBackend] = []
    var peers: [PythonPeer] = []

    override func tearDown() {
        super.tearDown()   // the end-of-test invariant check (huddle_gzip_streams_in_use 0 included) while backends run
        for b in backends { b.stop() }
        backends.removeAll()
        for p in peers { p.stop() }
        peers.removeAll()
    }

    static let gzipLine = "gzip on min_length=1k level=5 types=text/html,text/plain,application/json;"

    private func demo(_ name: String) throws -> DemoBackend {
        let b = try Harness.startBackend(name)
        backends.append(b)
        return b
    }

    /// Huddle in front of the demo backend (route /), and of the gzip_backend.py peer (route /r) when given.
    private func huddle(_ b: DemoBackend, peer: PythonPeer? = nil, gzip: String = GzipTests.gzipLine, workers: Int = 1) throws -> HuddleProcess {
        let peerUpstream = peer.map { "upstream peer { server 127.0.0.1:\($0.port); keepalive 8; }" } ?? ""
        let peerRoute = peer == nil ? "" : "route /r { upstream peer; }"
        return try HuddleProcess(config: """
        access_log off;
        upstream demo { server 127.0.0.1:\(b.boundAddresses[0].port); keepalive 16; }
        \(peerUpstream)
        server {
            listen 127.0.0.1:{PORT};
            \(gzip)
            \(peerRoute)
            route / { upstream demo; }
        }
        """, workers: workers)
    }

    struct Fetched {
        var status: Int
        /// The final response's header lines, names lower-cased.
        var headers: [(name: String, value: String)]
        var body: Data
        /// Bytes that came over the wire (compressed ones when compressed).
        var downloaded: Int

        func values(_ name: String) -> [String] { headers.filter { $0.name == name }.map(\.value) }
        func value(_ name: String) -> String? { values(name).first }
        var headText: String { headers.map { "\($0.name): \($0.value)" }.joined(separator: "\n") }
    }

    /// curl with the given arguments; the head goes to a file, the (decoded, with --compressed) body to another.
    private func fetch(_ url: String, _ args: [String] = []) throws -> Fetched {
        let dir = Harness.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let headPath = dir.appendingPathComponent("head").path
        let bodyPath = dir.appendingPathComponent("body").path
        let r = try Harness.curl(args + ["-D", headPath, "-o", bodyPath, "-w", "%{size_download}", url], timeout: 120)
        XCTAssertEqual(r.status, 0, "curl \(args) \(url) failed: \(r.stderr)")
        let headText = (try? String(contentsOfFile: headPath, encoding: .utf8)) ?? ""
        // The last head (after any interim 1xx).
        let blocks = headText.components(separatedBy: "\r\n\r\n").filter { !$0.isEmpty }
        let lines = (blocks.last ?? "").components(separatedBy: "\r\n")
        let status = lines.first.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
        var headers: [(String, String)] = []
        for l in lines.dropFirst() {
            guard let c = l.firstIndex(of: ":") else { continue }
            headers.append((l[..<c].lowercased(), l[l.index(after: c)...].trimmingCharacters(in: .whitespaces)))
        }
        let body = (try? Data(contentsOf: URL(fileURLWithPath: bodyPath))) ?? Data()
        return Fetched(status: status, headers: headers, body: body, downloaded: Int(r.text) ?? -1)
    }

    func testCurlCompressedReceivesTheBodyByteForByte() throws {
        let b = try demo("gz")
        let h = try huddle(b)
        let direct = "http://127.0.0.1:\(b.boundAddresses[0].port)"
        for path in ["/text/300000?type=json", "/text/300000?type=json&chunked=1", "/text/1500?type=html", "/text/12000000"] {
            let plain = try fetch(direct + path)
            XCTAssertEqual(plain.status, 200)
            let viaHuddle = try fetch(h.url + path, ["--compressed"])
            XCTAssertEqual(viaHuddle.status, 200, path)
            XCTAssertEqual(viaHuddle.values("content-encoding"), ["gzip"], "\(path)\n\(viaHuddle.headText)")
            XCTAssertEqual(viaHuddle.value("transfer-encoding"), "chunked", path)
            XCTAssertNil(viaHuddle.value("content-length"), path)
            XCTAssertEqual(viaHuddle.values("vary"), ["Accept-Encoding"], path)
            XCTAssertEqual(viaHuddle.body.count, plain.body.count, path)
            XCTAssertTrue(viaHuddle.body == plain.body, "\(path): the decoded body differs from the backend's")
            XCTAssertLessThan(viaHuddle.downloaded, plain.body.count / 3, "\(path): \(viaHuddle.downloaded) bytes on the wire")
            // Without Accept-Encoding the same URL comes through untouched (but says Vary).
            let identity = try fetch(h.url + path)
            XCTAssertNil(identity.value("content-encoding"), path)
            XCTAssertEqual(identity.values("vary"), ["Accept-Encoding"], path)
            XCTAssertTrue(identity.body == plain.body, path)
        }
    }

    func testContentEncodingOnlyWhereItBelongs() throws {
        let b = try demo("gzm")
        let peer = try PythonPeer(script: "gzip_backend.py")
        peers.append(peer)
        let h = try huddle(b, peer: peer)
        let ae = ["-H", "Accept-Encoding: gzip"]
        struct Case { var name: String; var path: String; var args: [String]; var gzip: Bool; var vary: [String] }
        let cases: [Case] = [
            Case(name: "listed type, long enough", path: "/r?len=5000", args: ae, gzip: true, vary: ["Accept-Encoding"]),
            Case(name: "type with parameters, other case", path: "/r?type=TEXT/HTML%3B%20charset%3DUTF-8", args: ae, gzip: true, vary: ["Accept-Encoding"]),
            Case(name: "a 404 page", path: "/r?status=404", args: ae, gzip: true, vary: ["Accept-Encoding"]),
            Case(name: "unknown length (chunked) below min_length", path: "/r?len=300&chunked=1", args: ae, gzip: true, vary: ["Accept-Encoding"]),
            Case(name: "Content-Encoding: identity is no encoding", path: "/r?ce=identity", args: ae, gzip: true, vary: ["Accept-Encoding"]),
            Case(name: "Accept-Encoding: *", path: "/r", args: ["-H", "Accept-Encoding: *"], gzip: true, vary: ["Accept-Encoding"]),
            Case(name: "a browser's Accept-Encoding", path: "/r", args: ["-H", "Accept-Encoding: gzip, deflate, br, zstd"], gzip: true, vary: ["Accept-Encoding"]),
            Case(name: "Vary appended to", path: "/r?vary=Origin", args: ae, gzip: true, vary: ["Origin, Accept-Encoding"]),
            Case(name: "Vary already names it", path: "/r?vary=accept-encoding", args: ae, gzip: true, vary: ["accept-encoding"]),
            Case(name: "type not listed", path: "/r?type=image/png", args: ae, gzip: false, vary: []),
            Case(name: "no Content-Type", path: "/r?type=", args: ae, gzip: false, vary: []),
            Case(name: "octet-stream from the demo backend", path: "/bytes/5000", args: ae, gzip: false, vary: []),
            Case(name: "below min_length", path: "/r?len=500", args: ae, gzip: false, vary: []),
            Case(name: "already encoded", path: "/r?ce=br", args: ae, gzip: false, vary: []),
            Case(name: "Cache-Control: no-transform", path: "/r?cc=no-transform", args: ae, gzip: false, vary: []),
            Case(name: "HEAD", path: "/r", args: ae + ["-I"], gzip: false, vary: ["Accept-Encoding"]),
            Case(name: "204", path: "/r?status=204", args: ae, gzip: false, vary: []),
            Case(name: "304", path: "/r?status=304", args: ae, gzip: false, vary: []),
            Case(name: "206", path: "/r?status=206&len=2000", args: ae, gzip: false, vary: []),
            Case(name: "request with Range", path: "/r", args: ae + ["-H", "Range: bytes=0-99"], gzip: false, vary: ["Accept-Encoding"]),
            Case(name: "client without Accept-Encoding", path: "/r", args: [], gzip: false, vary: ["Accept-Encoding"]),
            Case(name: "gzip;q=0", path: "/r", args: ["-H", "Accept-Encoding: gzip;q=0, deflate"], gzip: false, vary: ["Accept-Encoding"]),
            Case(name: "other codings only", path: "/r", args: ["-H", "Accept-Encoding: br"], gzip: false, vary: ["Accept-Encoding"]),
            Case(name: "HTTP/1.0 client", path: "/r", args: ae + ["--http1.0"], gzip: false, vary: ["Accept-Encoding"]),
        ]
        for k in cases {
            let direct = try fetch("http://127.0.0.1:\(k.path.hasPrefix("/r") ? peer.port : b.boundAddresses[0].port)\(k.path)", k.args)
            let r = try fetch(h.url + k.path, k.args)
            XCTAssertEqual(r.status, direct.status, k.name)
            let ce = r.values("content-encoding")
            if k.gzip {
                XCTAssertEqual(ce, ["gzip"], "\(k.name)\n\(r.headText)")
                XCTAssertNil(r.value("content-length"), k.name)
                XCTAssertNotEqual(r.body, direct.body, "\(k.name): compressed bytes on the wire")
            } else {
                XCTAssertEqual(ce, direct.values("content-encoding"), "\(k.name): Content-Encoding as the backend sent it\n\(r.headText)")
                XCTAssertEqual(r.value("content-length"), direct.value("content-length"), k.name)
                // (With -I curl writes the head where the body would go: there is no body to compare.)
                if !k.args.contains("-I") { XCTAssertTrue(r.body == direct.body, "\(k.name): the body passes through untouched") }
            }
            XCTAssertEqual(r.values("vary"), k.vary, "\(k.name)\n\(r.headText)")
        }
        // ETag: a strong one is weakened when (and only when) the body is compressed.
        XCTAssertEqual(try fetch(h.url + "/r?etag=%22abc%22", ae).value("etag"), "W/\"abc\"")
        XCTAssertEqual(try fetch(h.url + "/r?etag=%22abc%22").value("etag"), "\"abc\"")
        XCTAssertEqual(try fetch(h.url + "/r?etag=W/%22abc%22", ae).value("etag"), "W/\"abc\"")
        // Accept-Ranges goes with compression.
        XCTAssertNil(try fetch(h.url + "/r?accept_ranges=1", ae).value("accept-ranges"))
        XCTAssertEqual(try fetch(h.url + "/r?accept_ranges=1").value("accept-ranges"), "bytes")
        // And curl decodes what it got to the backend's body.
        XCTAssertTrue(try fetch(h.url + "/r?len=70000&chunked=1", ["--compressed"]).body == (try fetch("http://127.0.0.1:\(peer.port)/r?len=70000")).body)
    }

    /// 100 MB of JSON-like text through Huddle to curl --compressed: Huddle's resident memory stays flat (the body
    /// streams through one chunk buffer and one zlib stream), and the decoded body is the backend's, byte for byte.
    func testAHundredMegabyteResponseStreamsInFlatMemory() throws {
        let b = try demo("big")
        let h = try huddle(b)
        let size = 100 * 1024 * 1024
        let path = "/text/\(size)?type=json"
        // The expected digest, straight from the backend.
        let direct = try Harness.run("/bin/sh", ["-c", "curl -s http://127.0.0.1:\(b.boundAddresses[0].port)\(path) | sha256sum"], timeout: 120)
        let want = String(direct.text.prefix(64))
        XCTAssertEqual(want.count, 64, direct.stderr)
        // Warm up: one compressed response, so the pools hold what a transfer needs before the baseline is taken.
        XCTAssertEqual(try fetch(h.url + "/text/2000000?type=json", ["--compressed"]).body.count, 2_000_000)
        let rssBefore = try XCTUnwrap(RoutingAndBackpressureTests.residentBytes(h.pid), "cannot read VmRSS of huddle")
        // A client slower than the backend, so Huddle's backpressure is what keeps the body out of its memory.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        let dir = Harness.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out")
        p.arguments = ["-c", "curl -s --compressed --limit-rate 8M -w '%{size_download} %{http_code}' -o >(sha256sum > \(dir.path)/sum) \(h.url)\(path) > \(out.path)"]
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        try p.run()
        var peak = rssBefore
        var samples = 0
        let deadline = Date().addingTimeInterval(120)
        while p.isRunning && Date() < deadline {
            if let r = RoutingAndBackpressureTests.residentBytes(h.pid) { peak = max(peak, r); samples += 1 }
            usleep(20_000)
        }
        if p.isRunning { p.terminate() }
        p.waitUntilExit()
        XCTAssertTrue(Harness.waitFor(10) { ((try? String(contentsOf: dir.appendingPathComponent("sum"), encoding: .utf8)) ?? "").count >= 64 })
        let sum = String(((try? String(contentsOf: dir.appendingPathComponent("sum"), encoding: .utf8)) ?? "").prefix(64))
        let stats = ((try? String(contentsOf: out, encoding: .utf8)) ?? "").split(separator: " ")
        let downloaded = Int(stats.first ?? "") ?? -1
        let mib = { (n: Int) in String(format: "%.1f MiB", Double(n) / 1048576) }
        print("100 MiB compressed to \(mib(downloaded)) on the wire; huddle VmRSS \(mib(rssBefore)) before, peak \(mib(peak)) over \(samples) samples")
        XCTAssertEqual(stats.last, "200")
        XCTAssertEqual(sum, want, "the decoded 100 MiB differ from the backend's")
        XCTAssertGreaterThan(samples, 20, "the transfer was sampled while it ran")
        XCTAssertLessThan(downloaded, size / 3, "it was compressed")
        XCTAssertLessThan(peak - rssBefore, 32 << 20, "huddle's resident memory grew by \(mib(peak - rssBefore)) while 100 MiB streamed through")
    }

    /// Large compressed responses on one worker at once are compressed side by side (each gives the others the
    /// thread after a slice), each with a zlib stream of its own; once over, every stream is back, and the
    /// housekeeping trims the cache back down within a couple of seconds.
    func testConcurrentResponsesShareTheWorkerAndGiveTheirStreamsBack() throws {
        let b = try demo("par")
        let h = try huddle(b)
        let n = 6
        let dir = Harness.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        p.arguments = ["-s", "--compressed", "--parallel", "--parallel-immediate", "--parallel-max", String(n),
                       "-w", "%{http_code} %{size_download}\n"]
            + (0..<n).flatMap { ["-o", "/dev/null", "\(h.url)/text/8000000?type=json&n=\($0)"] }
        p.standardOutput = try FileHandle(forWritingTo: out)
        try p.run()
        var peakInUse = 0
        let deadline = Date().addingTimeInterval(120)
        while p.isRunning && Date() < deadline {
            peakInUse = max(peakInUse, Invariants.metrics(h)?["huddle_gzip_streams_in_use"] ?? 0)
            usleep(5_000)
        }
        if p.isRunning { p.terminate() }
        p.waitUntilExit()
        let lines = ((try? String(contentsOf: out, encoding: .utf8)) ?? "").split(separator: "\n")
        XCTAssertEqual(lines.count, n, "\(lines)")
        for l in lines { XCTAssertTrue(l.hasPrefix("200 "), "\(lines)") }
        XCTAssertGreaterThanOrEqual(peakInUse, 2, "responses were compressed side by side, each with its own stream")
        XCTAssertTrue(Harness.waitFor(3) { Invariants.metrics(h)?["huddle_gzip_streams_in_use"] == 0 })
        XCTAssertTrue(Harness.waitFor(5) { (Invariants.metrics(h)?["huddle_gzip_streams_cached"] ?? 99) <= 2 },
                      "trimmed back to 2 cached streams: \(Invariants.metrics(h) ?? [:])")
    }
}
