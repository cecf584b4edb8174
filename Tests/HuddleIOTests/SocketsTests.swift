// Listening with SO_REUSEPORT, and splicing bytes between two real TCP connections through a pooled pipe.
import Glibc
import HuddleIO
import HuddleSys
import XCTest

final class SocketsTests: XCTestCase {
    private let loopback = SocketAddress(ip: "127.0.0.1", port: 0)!

    func testReusePortLetsTwoListenersShareAPort() throws {
        let first = try Sockets.listen(on: loopback, reusePort: true)
        defer { Sys.close(first) }
        let bound = try XCTUnwrap(Sys.localAddress(first))
        XCTAssertNotEqual(bound.port, 0)
        let second = try Sockets.listen(on: bound, reusePort: true)
        defer { Sys.close(second) }
        XCTAssertEqual(Sys.localAddress(second)?.port, bound.port)
        // Without the option the same bind is refused: the option is what made the second one work.
        XCTAssertThrowsError(try Sockets.listen(on: bound, reusePort: false)) { error in
            XCTAssertEqual((error as? Errno)?.code, EADDRINUSE)
        }
        // A connection lands on one of them.
        let (client, _) = try Sockets.connect(to: bound)
        defer { Sys.close(client) }
        var accepted: Int32 = -1
        for _ in 0..<1000 where accepted < 0 {
            for l in [first, second] {
                if case .done(let (fd, _)) = try Sys.accept(l) { accepted = fd }
            }
            if accepted < 0 { usleep(1000) }
        }
        XCTAssertGreaterThanOrEqual(accepted, 0)
        Sys.close(accepted)
    }

    /// A connected pair over loopback TCP: (client side, server side).
    private func tcpPair(_ listener: Int32, _ address: SocketAddress) throws -> (Int32, Int32) {
        let (client, _) = try Sockets.connect(to: address)
        for _ in 0..<5000 {
            if case .done(let (fd, _)) = try Sys.accept(listener) { return (client, fd) }
            usleep(1000)
        }
        XCTFail("accept never succeeded")
        return (client, -1)
    }

    func testSpliceThroughPooledPipeMovesBytesIntact() throws {
        let listener = try Sockets.listen(on: loopback, reusePort: false)
        defer { Sys.close(listener) }
        let address = try XCTUnwrap(Sys.localAddress(listener))
        // Bytes go: sender -> (TCP) -> inbound -> pipe -> outbound -> (TCP) -> receiver.
        let (sender, inbound) = try tcpPair(listener, address)
        let (outbound, receiver) = try tcpPair(listener, address)
        defer { for fd in [sender, inbound, outbound, receiver] { Sys.close(fd) } }

        let loop = try EventLoop(id: 0)
        guard var pipe = loop.pipes.acquire() else { return XCTFail("no pipe") }
        let total = 3 * 1024 * 1024 + 17
        let payload = (0..<total).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
        var sent = 0
        var received: [UInt8] = []
        received.reserveCapacity(total)
        var scratch = [UInt8](repeating: 0, count: 65536)
        var senderClosed = false, sawEnd = false
        // One thread pumps every stage without blocking; the bound only guards against a hang.
        for _ in 0..<2_000_000 where received.count < total || !sawEnd {
            if sent < total {
                let r = try payload.withUnsafeBytes { (p) throws(Errno) in try Sys.write(sender, p.baseAddress! + sent, min(65536, total - sent)) }
                if case .done(let n) = r { sent += n }
            } else if !senderClosed {
                Sys.shutdown(sender, .write)
                senderClosed = true
            }
            if !sawEnd, case .done(let n) = try Sys.splice(from: inbound, to: pipe.writeFD, count: 1 << 20) {
                if n == 0 { sawEnd = true }
                pipe.buffered += n
            }
            if pipe.buffered > 0, case .done(let n) = try Sys.splice(from: pipe.readFD, to: outbound, count: pipe.buffered) {
                pipe.buffered -= n
            }
            let r = try scratch.withUnsafeMutableBytes { (p) throws(Errno) in try Sys.read(receiver, p.baseAddress!, p.count) }
            if case .done(let n) = r, n > 0 { received += scratch[0..<n] }
        }
        XCTAssertTrue(sawEnd, "splice reported the end of the input")
        XCTAssertEqual(pipe.buffered, 0)
        XCTAssertEqual(received.count, total)
        XCTAssertTrue(received == payload, "bytes arrive intact and in order")
        let firstReadFD = pipe.readFD
        loop.pipes.release(pipe)
        XCTAssertEqual(loop.pipes.cachedCount, 1, "an empty pipe is kept for reuse")
        guard var again = loop.pipes.acquire() else { return XCTFail("no pipe") }
        XCTAssertEqual(again.readFD, firstReadFD)
        again.buffered = 1
        loop.pipes.release(again)
        XCTAssertEqual(loop.pipes.cachedCount, 0, "a pipe that may hold bytes is closed, not cached")
    }
}
