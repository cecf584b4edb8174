// A blocking TCP client socket with a receive timeout, for the demo's test clients (never used on an event loop).
import Glibc
import HuddleSys

public struct DemoClientError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ d: String) { description = d }
}

final class BlockingSocket {
    private(set) var fd: Int32
    /// Bytes received but not consumed yet.
    var pending: [UInt8] = []

    init(address: SocketAddress, timeoutSeconds: Int) throws {
        fd = Glibc.socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw DemoClientError("socket() failed") }
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let fd = self.fd
        let rc: Int32
        do {
            rc = try address.withSockaddr { (sa, len) throws(Errno) in Glibc.connect(fd, sa, len) }
        } catch {
            rc = -1
        }
        if rc != 0 {
            Glibc.close(fd)
            self.fd = -1
            throw DemoClientError("connect to \(address) failed")
        }
    }

    deinit { close() }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    func shutdownWrite() { _ = Glibc.shutdown(fd, Int32(SHUT_WR)) }

    func send(_ bytes: some Collection<UInt8>) throws {
        let data = Array(bytes)
        var off = 0
        while off < data.count {
            let n = data.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + off, $0.count - off, Int32(MSG_NOSIGNAL)) }
            if n <= 0 {
                if n < 0 && errno == EINTR { continue }
                throw DemoClientError("send failed")
            }
            off += n
        }
    }

    /// Reads more into `pending`; false at end of stream. Throws on error or timeout.
    @discardableResult
    func receiveMore() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress!, $0.count, 0) }
            if n > 0 {
                pending.append(contentsOf: chunk[0..<n])
                return true
            }
            if n == 0 { return false }
            if errno == EINTR { continue }
            throw DemoClientError(errno == EAGAIN ? "receive timed out" : "recv failed (errno \(errno))")
        }
    }

    /// Exactly `n` bytes, waiting for them.
    func take(_ n: Int) throws -> [UInt8] {
        while pending.count < n {
            if try !receiveMore() { throw DemoClientError("connection closed with \(n - pending.count) bytes missing") }
        }
        let out = Array(pending[0..<n])
        pending.removeFirst(n)
        return out
    }

    /// Up to and including the next CRLF, without it.
    func takeLine() throws -> [UInt8] {
        var scanned = 0
        while true {
            if pending.count >= 2 {
                var i = max(scanned, 1)
                while i < pending.count {
                    if pending[i] == 0x0A && pending[i - 1] == 0x0D {
                        let line = Array(pending[0..<(i - 1)])
                        pending.removeFirst(i + 1)
                        return line
                    }
                    i += 1
                }
                scanned = i
            }
            if try !receiveMore() { throw DemoClientError("connection closed inside a line") }
        }
    }

    /// Everything until the peer closes.
    func takeAll() throws -> [UInt8] {
        while try receiveMore() {}
        let out = pending
        pending.removeAll()
        return out
    }
}
