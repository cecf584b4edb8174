// Hostile and unusual clients: Expect: 100-continue is relayed, and thousands of mutated requests never crash or
// wedge the proxy (every answer is a well-formed status line or a close).
import Foundation
import Glibc
import HuddleDemo
import XCTest

final class HostileInputTests: HuddleTestCase {
    func testExpect100ContinueIsRelayedAndTheBodyArrives() throws {
        let b = try Harness.startBackend("expect")
        defer { b.stop() }
        let h = try HuddleProcess(config: """
        upstream app { server 127.0.0.1:\(b.boundAddresses[0].port); }
        server { listen 127.0.0.1:{PORT}; route / { upstream app; } }
        """)
        let c = try RawClient(port: h.port)
        let body = String(repeating: "z", count: 5000)
        c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\nExpect: 100-continue\r\n\r\n")
        // The client waits for the interim answer before sending its body, as a real client does.
        let interim = c.read { $0.text.contains("\r\n\r\n") }.text
        XCTAssertTrue(interim.hasPrefix("HTTP/1.1 100 Continue\r\n"), interim)
        c.send(body)
        let all = interim + c.read { (interim + $0.text).hasSuffix(body) }.text
        // The echo backend streams: its 200 head may follow the 100 at once; the order is what matters.
        let i100 = all.range(of: "HTTP/1.1 100 Continue")?.lowerBound
        let i200 = all.range(of: "HTTP/1.1 200")?.lowerBound
        XCTAssertNotNil(i100)
        XCTAssertNotNil(i200, String(all.prefix(200)))
        if let a = i100, let b = i200 { XCTAssertLessThan(a, b) }
        XCTAssertTrue(all.hasSuffix(body))
    }

    /// 400 mutations of four valid requests, from a seeded generator: the seed is printed, and HUDDLE_TEST_SEED=N
    /// replays a run exactly. A failure names the input's exact bytes (a Swift array literal).
    func testMutatedRequestsNeverCrashOrWedgeTheProxy() throws {
        let seed = try SplitMix64.testSeed()
        print("testMutatedRequestsNeverCrashOrWedgeTheProxy: seed \(seed) (replay: HUDDLE_TEST_SEED=\(seed))")
        let b = try Harness.startBackend("fuzz")
        defer { b.stop() }
        let h = try HuddleProcess(config: """
        upstream app { server 127.0.0.1:\(b.boundAddresses[0].port); response_timeout 2s; }
        server { listen 127.0.0.1:{PORT}; header_timeout 1s; route / { upstream app; } }
        """, workers: 2)
        let seeds: [String] = [
            "GET /headers?a=1 HTTP/1.1\r\nHost: x\r\nCookie: a=b\r\n\r\n",
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
            "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        ]
        var rng = SplitMix64(seed: seed)
        var previous: [UInt8] = []
        var statuses: [String: Int] = [:]
        let interesting: [UInt8] = [0, 9, 10, 13, 32, 44, 58, 59, 0x7f, 0xff, 48, 57, 65, 97]
        func describe(_ i: Int, _ bytes: [UInt8]) -> String {
            "seed \(seed), request \(i) (replay: HUDDLE_TEST_SEED=\(seed)); the input:\n    let input: [UInt8] = \(bytes)\n    as text: \(bytes.escapedForDisplay)"
        }
        for i in 0..<400 {
            var bytes = Array(seeds[i % seeds.count].utf8)
            for _ in 0..<(1 + rng.below(4)) {
                let pos = rng.below(bytes.count)
                switch rng.below(4) {
                case 0: bytes[pos] = rng.pick(interesting)
                case 1: bytes.insert(rng.pick(interesting), at: pos)
                case 2: if bytes.count > 1 { bytes.remove(at: pos) }
                default: bytes.insert(contentsOf: bytes[pos..<min(bytes.count, pos + 8)], at: pos)
                }
            }
            let c: RawClient
            do {
                c = try RawClient(port: h.port, receiveTimeoutSeconds: 5)
            } catch {
                XCTFail("cannot connect (\(error)) after \(i == 0 ? "no input" : describe(i - 1, previous)); huddle running: \(h.process.isRunning); log tail:\n\(h.log.suffix(2000))")
                break
            }
            c.send(bytes)
            c.shutdownWrite()
            let answer = c.readAll()
            let status = answer.isEmpty ? "closed" : String(answer.text.prefix(12))
            statuses[status, default: 0] += 1
            if !(answer.isEmpty || answer.starts(with: Array("HTTP/1.1 ".utf8))) {
                XCTFail("malformed answer \(Array(answer.prefix(80)).escapedForDisplay) for \(describe(i, bytes))")
            }
            if !h.process.isRunning {
                XCTFail("huddle exited after \(describe(i, bytes))\nlog tail:\n\(h.log.suffix(2000))")
                break
            }
            previous = bytes
        }
        print("mutated request outcomes (seed \(seed)): \(statuses.sorted { $0.value > $1.value })")
        XCTAssertTrue(h.process.isRunning, "huddle exited (seed \(seed)); log:\n\(h.log)")
        XCTAssertGreaterThan(statuses.filter { $0.key.contains(" 400") }.map(\.value).reduce(0, +), 0, "\(statuses)")
        // Still healthy afterwards.
        let ok = try Harness.curl(["-w", "%{http_code}", "-o", "/dev/null", "\(h.url)/"])
        XCTAssertEqual(ok.text, "200", "seed \(seed): \(statuses)")
    }
}
