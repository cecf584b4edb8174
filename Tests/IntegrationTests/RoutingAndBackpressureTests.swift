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

    /// Resident memory of a process (VmRSS in /proc/PID/status), in bytes.
    static func residentBytes(_ pid: Int32) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            if parts.count >= 3, parts[2] == "kB", let kb = Int(parts[1]) { return kb * 1024 }
        }
        return nil
    }

    /// The largest buffer a TCP socket may grow to on its own (the third value of net.ipv4.tcp_wmem / tcp_rmem).
    static func tcpBufferMax(_ name: String) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/sys/net/ipv4/\(name)", encoding: .utf8) else { return nil }
        return text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).compactMap { Int($0) }.last
    }

    /// WebSocket clients push 64 KiB frames to an echo backend and never read the echoes. Once a client's own receive
    /// buffer is full the echoes back up, the backend stops reading, and so must Huddle: each chain stalls with the data
    /// held by the kernel's socket buffers (four sockets: client, Huddle's two, the backend's), not by Huddle. Judged
    /// from outside Huddle: its resident memory barely grows while far more than that went in (several tunnels, so
    /// the total is large whatever the host's buffer sizes), and each push stalls within what its socket buffers hold.
    func testAStalledReaderStopsTheTunnelInsteadOfBuffering() throws {
        let b = try Harness.startBackend("bp", workers: 2)
        defer { b.stop() }
        let wmem = try XCTUnwrap(Self.tcpBufferMax("tcp_wmem"), "cannot read /proc/sys/net/ipv4/tcp_wmem")
        let rmem = try XCTUnwrap(Self.tcpBufferMax("tcp_rmem"), "cannot read /proc/sys/net/ipv4/tcp_rmem")
        // Every socket of one chain full both ways, plus 16 MiB for pipes, pooled buffers and the backend's own queue.
        let chainBound = 4 * (wmem + rmem) + (16 << 20)
        let rssGrowthLimit = 16 << 20
        let cap = 256 << 20
        let tunnels = 4
        let h = try HuddleProcess(config: """
        upstream ws { server 127.0.0.1:\(b.boundAddresses[0].port); }
        server { listen 127.0.0.1:{PORT}; route / { upstream ws; } }
        """, workers: 2)
        let clients = try (0..<tunnels).map { _ in try RawClient(port: h.port) }
        for c in clients {
            c.send("GET /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
            let head = c.read { $0.text.contains("\r\n\r\n") }.text
            XCTAssertTrue(head.hasPrefix("HTTP/1.1 101"), head)
            _ = fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) | O_NONBLOCK)
        }
        let rssBefore = try XCTUnwrap(Self.residentBytes(h.pid), "cannot read VmRSS of huddle")
        // Push 64 KiB frames on every tunnel, never reading, until no tunnel has taken a byte for a second. A frame cut
        // by a full buffer is finished later: nothing else is ever sent on that connection, so the stream stays valid.
        let frame = WebSocketFrame.encode(opcode: WebSocketFrame.binary, payload: [UInt8](repeating: 7, count: 65536), maskKey: 0x0102_0304)
        var sent = [Int](repeating: 0, count: tunnels)
        var offset = [Int](repeating: 0, count: tunnels)
        var lastProgress = [Date](repeating: Date(), count: tunnels)
        var rssPeak = rssBefore
        while sent.reduce(0, +) < cap && lastProgress.contains(where: { Date().timeIntervalSince($0) < 1 }) {
            var progressed = false
            for (i, c) in clients.enumerated() {
                let n = frame[offset[i]...].withUnsafeBytes { Glibc.send(c.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n > 0 {
                    sent[i] += n
                    offset[i] = (offset[i] + n) % frame.count
                    lastProgress[i] = Date()
                    progressed = true
                }
            }
            if !progressed {
                rssPeak = max(rssPeak, Self.residentBytes(h.pid) ?? 0)
                var fds = clients.map { pollfd(fd: $0.fd, events: Int16(POLLOUT), revents: 0) }
                _ = poll(&fds, nfds_t(fds.count), 50)
            }
        }
        let total = sent.reduce(0, +)
        let rssAtStall = Self.residentBytes(h.pid) ?? Int.max
        rssPeak = max(rssPeak, rssAtStall)
        let mib = { (n: Int) in String(format: "%.1f MiB", Double(n) / 1048576) }
        print("\(tunnels) tunnels stalled after \(sent.map(mib)) (\(mib(total)) in all); huddle VmRSS \(mib(rssBefore)) before,"
              + " \(mib(rssAtStall)) at the stall (peak seen \(mib(rssPeak))); one chain's socket buffers allow \(mib(chainBound))"
              + " (tcp_wmem max \(mib(wmem)), tcp_rmem max \(mib(rmem)))")
        XCTAssertLessThan(total, cap, "256 MiB went in without the chains stalling: something buffers without bound")
        for (i, n) in sent.enumerated() {
            XCTAssertLessThanOrEqual(n, chainBound, "tunnel \(i): \(mib(n)) went in before it stalled, more than four sockets' buffers (\(mib(chainBound))) hold: something buffers in user space")
        }
        XCTAssertGreaterThan(total, 3 * rssGrowthLimit, "the pushes stalled after only \(mib(total)): too little to judge Huddle's memory by")
        XCTAssertLessThan(rssPeak - rssBefore, rssGrowthLimit,
                          "huddle's resident memory grew by \(mib(rssPeak - rssBefore)) while \(mib(total)) were pushed at readers that never read")
        // Huddle's own view agrees: the tunnels, each holding at most a buffer or pipe per direction.
        let m = Invariants.metrics(h) ?? [:]
        XCTAssertEqual(m["huddle_tunnels"], tunnels, "\(m)")
        XCTAssertLessThanOrEqual((m["huddle_buffers_in_use"] ?? Int.max / 2) + (m["huddle_pipes_in_use"] ?? Int.max / 2), 4 * tunnels, "\(m)")
    }
}
