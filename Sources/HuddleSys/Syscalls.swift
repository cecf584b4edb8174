// Non-blocking syscall wrappers: every errno read in Huddle happens through Errno.swift's helpers from here.
import CHuddleLinux
import Glibc

public enum Sys {
    // MARK: descriptors

    /// close(2): EINTR is not retried (Linux releases the descriptor anyway).
    public static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    /// A whole (small) file, read with blocking calls: config files. Refuses files over `limit` bytes.
    public static func readWholeFile(_ path: String, limit: Int) throws(Errno) -> [UInt8] {
        let fd = try check { Glibc.open(path, O_RDONLY | O_CLOEXEC) }
        defer { _ = Glibc.close(fd) }
        var bytes: [UInt8] = []
        let chunkSize = 64 * 1024
        let chunk = UnsafeMutableRawPointer.allocate(byteCount: chunkSize, alignment: 16)
        defer { chunk.deallocate() }
        while true {
            let n = try check { Glibc.read(fd, chunk, chunkSize) }
            if n == 0 { return bytes }
            bytes.append(contentsOf: UnsafeRawBufferPointer(start: chunk, count: n))
            if bytes.count > limit { throw Errno(EFBIG) }
        }
    }

    public static func read(_ fd: Int32, _ buf: UnsafeMutableRawPointer, _ count: Int) throws(Errno) -> IOResult<Int> {
        try checkNonBlocking { Glibc.read(fd, buf, count) }
    }

    /// recv(2) on a socket: the kernel's socket path without read(2)'s VFS layer (measured: ~0.5 µs less per request).
    public static func recv(_ fd: Int32, _ buf: UnsafeMutableRawPointer, _ count: Int) throws(Errno) -> IOResult<Int> {
        try checkNonBlocking { huddle_recv(fd, buf, count, 0) }
    }

    public static func write(_ fd: Int32, _ buf: UnsafeRawPointer, _ count: Int) throws(Errno) -> IOResult<Int> {
        try checkNonBlocking { huddle_send(fd, buf, count) }
    }

    public static func writev(_ fd: Int32, _ iov: UnsafePointer<iovec>, _ count: Int32) throws(Errno) -> IOResult<Int> {
        try checkNonBlocking { Glibc.writev(fd, iov, count) }
    }

    /// Gathers up to two regions into one send: a rebuilt head plus the body bytes behind it, in one syscall.
    public static func writev(_ fd: Int32, _ a: UnsafeRawPointer?, _ aCount: Int, _ b: UnsafeRawPointer?, _ bCount: Int) throws(Errno) -> IOResult<Int> {
        var iov = (iovec(iov_base: UnsafeMutableRawPointer(mutating: a), iov_len: aCount),
                   iovec(iov_base: UnsafeMutableRawPointer(mutating: b), iov_len: bCount))
        if aCount == 0 {
            iov.0 = iov.1
            iov.1 = iovec()
        }
        let count: Int32 = (aCount > 0 ? 1 : 0) + (bCount > 0 ? 1 : 0)
        if count == 0 { return .done(0) }
        // One region: send(2), which the kernel takes without a message header to copy in.
        if count == 1 { return try checkNonBlocking { huddle_send(fd, iov.0.iov_base, iov.0.iov_len) } }
        return try withUnsafePointer(to: &iov) { (p) throws(Errno) -> IOResult<Int> in
            try p.withMemoryRebound(to: iovec.self, capacity: 2) { (v) throws(Errno) -> IOResult<Int> in
                var msg = msghdr()
                msg.msg_iov = UnsafeMutablePointer(mutating: v)
                msg.msg_iovlen = Int(count)
                return try checkNonBlocking { huddle_sendmsg(fd, &msg) }
            }
        }
    }

    /// Looks at the receive queue without consuming: `.done(0)` is EOF, `.done(n)` data waiting, `.wouldBlock` nothing yet.
    /// Copies what the socket holds without consuming it (MSG_PEEK): a PROXY protocol header in front of a TLS
    /// ClientHello is read this way, so the handshake's bytes stay for OpenSSL.
    public static func peek(_ fd: Int32, _ buf: UnsafeMutableRawPointer, _ count: Int) throws(Errno) -> IOResult<Int> {
        try checkNonBlocking { Glibc.recv(fd, buf, count, Int32(MSG_PEEK)) }
    }

    public static func peek(_ fd: Int32) throws(Errno) -> IOResult<Int> {
        var byte: UInt8 = 0
        return try checkNonBlocking { Glibc.recv(fd, &byte, 1, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT)) }
    }

    // MARK: sockets

    public static func socket(family: Int32) throws(Errno) -> Int32 {
        try check { Glibc.socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
    }

    public static func setOption(_ fd: Int32, level: Int32, name: Int32, value: Int32) throws(Errno) {
        var v = value
        _ = try check { setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size)) }
    }

    public static func bind(_ fd: Int32, _ address: SocketAddress) throws(Errno) {
        _ = try address.withSockaddr { (sa, len) throws(Errno) in try check { Glibc.bind(fd, sa, len) } }
    }

    public static func listen(_ fd: Int32, backlog: Int32) throws(Errno) {
        _ = try check { Glibc.listen(fd, backlog) }
    }

    /// Starts a non-blocking connect: `.done` when connected at once, `.wouldBlock` while in progress (EINPROGRESS).
    public static func connect(_ fd: Int32, _ address: SocketAddress) throws(Errno) -> IOResult<Void> {
        try address.withSockaddr { (sa, len) throws(Errno) -> IOResult<Void> in
            let (r, e) = retryingEINTR { Glibc.connect(fd, sa, len) }
            if r == 0 { return .done(()) }
            if e == EINPROGRESS || e == EAGAIN || e == EALREADY { return .wouldBlock }
            throw Errno(e)
        }
    }

    /// accept4 with SOCK_NONBLOCK|SOCK_CLOEXEC; the peer address comes back with the descriptor.
    public static func accept(_ fd: Int32) throws(Errno) -> IOResult<(Int32, SocketAddress?)> {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let r: IOResult<Int32> = try withUnsafeMutablePointer(to: &storage) { (p) throws(Errno) -> IOResult<Int32> in
            try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { (sp) throws(Errno) -> IOResult<Int32> in
                let (r, e) = retryingEINTR { huddle_accept4(fd, sp, &len) }
                if r >= 0 { return .done(r) }
                if e == EAGAIN || e == EWOULDBLOCK { return .wouldBlock }
                // A connection reset while queued is not our problem: report "try again".
                if e == ECONNABORTED || e == EPROTO { return .wouldBlock }
                throw Errno(e)
            }
        }
        switch r {
        case .wouldBlock: return .wouldBlock
        case .done(let cfd): return .done((cfd, SocketAddress(storage: storage)))
        }
    }

    public static func localAddress(_ fd: Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) == 0 }
        }
        return ok ? SocketAddress(storage: storage) : nil
    }

    /// The connected peer of a socket (getpeername).
    public static func peerAddress(_ fd: Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &len) == 0 }
        }
        return ok ? SocketAddress(storage: storage) : nil
    }

    /// The pending error of a socket (SO_ERROR), 0 if none: how a non-blocking connect reports its outcome.
    public static func socketError(_ fd: Int32) -> Int32 { huddle_socket_error(fd) }

    public enum ShutdownHow: Sendable { case read, write, both }
    public static func shutdown(_ fd: Int32, _ how: ShutdownHow) {
        let h: Int32
        switch how {
        case .read: h = Int32(SHUT_RD)
        case .write: h = Int32(SHUT_WR)
        case .both: h = Int32(SHUT_RDWR)
        }
        _ = Glibc.shutdown(fd, h)
    }

    // MARK: pipes and splice

    public static func pipe() throws(Errno) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        _ = try check { huddle_pipe2(&fds) }
        return (fds[0], fds[1])
    }

    /// splice(2) with SPLICE_F_NONBLOCK|SPLICE_F_MOVE; `.done(0)` is end of input.
    public static func splice(from: Int32, to: Int32, count: Int, more: Bool = false) throws(Errno) -> IOResult<Int> {
        try checkNonBlocking { huddle_splice(from, to, count, more ? 1 : 0) }
    }

    // MARK: epoll, eventfd, signalfd

    public static func epollCreate() throws(Errno) -> Int32 { try check { huddle_epoll_create() } }

    public static func epollCtl(_ epfd: Int32, op: Int32, fd: Int32, events: UInt32, data: UInt64) throws(Errno) {
        _ = try check { huddle_epoll_ctl(epfd, op, fd, events, data) }
    }

    public static func epollWait(_ epfd: Int32, _ events: UnsafeMutablePointer<huddle_epoll_event>, max: Int32, timeoutMs: Int32) throws(Errno) -> Int {
        let (r, e) = retryingEINTR { huddle_epoll_wait(epfd, events, max, timeoutMs) }
        if r < 0 { throw Errno(e) }
        return Int(r)
    }

    public static func eventfd() throws(Errno) -> Int32 { try check { huddle_eventfd() } }

    public static func eventfdSignal(_ fd: Int32) {
        var one: UInt64 = 1
        _ = Glibc.write(fd, &one, 8)
    }

    public static func eventfdDrain(_ fd: Int32) {
        var v: UInt64 = 0
        _ = Glibc.read(fd, &v, 8)
    }

    /// Blocks the signals in this thread (call before starting other threads so all inherit the mask).
    public static func blockSignals(_ signals: [Int32]) {
        _ = signals.withUnsafeBufferPointer { huddle_block_signals($0.baseAddress, Int32($0.count)) }
    }

    public static func signalfd(_ signals: [Int32]) throws(Errno) -> Int32 {
        try check { signals.withUnsafeBufferPointer { huddle_signalfd($0.baseAddress, Int32($0.count)) } }
    }

    /// The next pending signal number, or nil when none.
    public static func readSignal(_ fd: Int32) -> Int32? {
        let r = huddle_read_signalfd(fd)
        return r > 0 ? r : nil
    }

    // MARK: clocks and limits

    /// Coarse monotonic milliseconds (cheap; a few ms resolution): for timeouts.
    @inline(__always) public static func monotonicMs() -> Int64 { Int64(huddle_monotonic_ms()) }
    /// Precise monotonic nanoseconds: for latency measurement.
    @inline(__always) public static func monotonicNs() -> UInt64 { huddle_monotonic_ns() }
    /// Coarse wall-clock milliseconds since the epoch: for logs.
    @inline(__always) public static func wallClockMs() -> Int64 { Int64(huddle_realtime_ms()) }

    /// Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the resulting (soft, hard).
    public static func raiseOpenFileLimit() -> (soft: UInt64, hard: UInt64) {
        var s: UInt64 = 0
        var h: UInt64 = 0
        _ = huddle_raise_nofile(&s, &h)
        return (s, h)
    }
}
