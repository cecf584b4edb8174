// Longest-prefix routing, and tunnel backpressure: a client that stops reading stalls the chain instead of making
// the proxy buffer without bound.
import Foundation
import Glibc
import HuddleDemo
import HuddleHTTP
import XCTest

final class RoutingAndBackpressureTests: HuddleTestCase {
    func testLongestPrefixWins() throws {
        let bs = try ["root", "api", "api-v2"].map { try Harness.startBackend($0) }
        defer { for b in bs { b.stop() } }
        let h = try HuddleProcess(config: """
        upstream root { server 127.0.0.1:\(bs[0].boundAddresses[0].port); }
        upstream api { server 127.0.0.1:\(bs[1].boundAddresses[0].port); }
        upstream v2 { server 127.0.0.1:\(bs[2].boundAddresses[0].port); }
        server {
            listen 127.0.0.1:{PORT};
            route / { upstream root; }
            route /api/v2/ { upstream v2; }
            route /api/ { upstream api; }
        }
        """)
        let cases = [("/", "root"), ("/x", "root"), ("/apix", "root"), ("/api/", "api"), ("/api/v1/users", "api"),
                     ("/api/v2/", "api-v2"), ("/api/v2/users?x=1", "api-v2"), ("/api/v2", "api")]
        for (path, want) in cases {
            let r = try Harness.curl(["\(h.url)\(path)"])
            XCTAssertEqual(r.text, "hello from \(want)\n", path)
        }
    }

    private func metric(_ h: HuddleProcess, _ name: String) -> Int? {
        guard let text = try? Harness.curl(["\(h.adminURL)/metrics"]).text else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Int(line.split(separator: " ").last ?? "")
        }
        return nil
    }

    func testAStalledReaderStopsTheTunnelInsteadOfBuffering() throws {
        let b = try Harness.startBackend("bp")
        defer { b.stop() }
        let h = try HuddleProcess(config: """
        admin 127.0.0.1:{ADMIN};
        upstream ws { server 127.0.0.1:\(b.boundAddresses[0].port); }
        server { listen 127.0.0.1:{PORT}; route / { upstream ws; } }
        """, withAdmin: true)
        let c = try RawClient(port: h.port)
        c.send("GET /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        let head = c.read { $0.text.contains("\r\n\r\n") }.text
        XCTAssertTrue(head.hasPrefix("HTTP/1.1 101"), head)
        // Push 64 KiB frames without ever reading the echoes, until sends stay blocked.
        let frame = WebSocketFrame.encode(opcode: WebSocketFrame.binary, payload: [UInt8](repeating: 7, count: 65536), maskKey: 0x0102_0304)
        _ = fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) | O_NONBLOCK)
        var sent = 0
        var blockedRounds = 0
        let cap = 256 << 20
        while sent < cap && blockedRounds < 40 {
            let n = frame.withUnsafeBytes { Glibc.send(c.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 {
                sent += n
                blockedRounds = 0
                if n < frame.count {
                    // Finish the frame so the stream stays well-formed, waiting as long as it takes (bounded).
                    var off = n
                    var waits = 0
                    while off < frame.count && waits < 200 {
                        let m = frame[off...].withUnsafeBytes { Glibc.send(c.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                        if m > 0 { off += m; sent += m } else { waits += 1; usleep(10_000) }
                    }
                }
            } else {
                blockedRounds += 1
                usleep(25_000)
            }
        }
        XCTAssertLessThan(sent, cap, "256 MiB went in without the chain stalling: something buffers without bound")
        XCTAssertGreaterThan(sent, 0)
        // Stalled: the proxy holds at most a buffer or pipe per direction for this tunnel.
        XCTAssertEqual(metric(h, "huddle_tunnels"), 1)
        let buffers = metric(h, "huddle_buffers_in_use") ?? Int.max
        let pipes = metric(h, "huddle_pipes_in_use") ?? Int.max
        XCTAssertLessThanOrEqual(buffers + pipes, 4, "buffers \(buffers), pipes \(pipes) after \(sent) bytes")
        print("stalled after \(sent) bytes; proxy holds \(buffers) buffers and \(pipes) pipes")
    }
}
