// The transport seam: every byte a connection moves, client side or backend side, goes through these few calls, so a
// TLS transport (or an in-memory one in tests) slots in without touching exchange logic.
import HuddleIO
import HuddleSys
@_exported import HuddleTLS

/// Byte I/O on one connected stream. Implementations are handles (a descriptor, a TLS session): copying one does not
/// duplicate the connection. Exactly one `StreamOwner` closes it; nothing else calls `closeTransport`.
public protocol Transport {
    /// The descriptor whose readiness the event loop reports for this stream; -1 when there is none.
    var fd: Int32 { get }
    /// The plain socket under the stream when `splice(2)` may move its bytes untouched; nil when bytes are transformed
    /// (TLS) or there is no kernel socket.
    var spliceFD: Int32? { get }
    func read(_ buffer: UnsafeMutableRawPointer, _ count: Int) throws(Errno) -> IOResult<Int>
    func write(_ buffer: UnsafeRawPointer, _ count: Int) throws(Errno) -> IOResult<Int>
    /// Two regions in one call (head + body); either may be empty.
    func writev(_ a: UnsafeRawPointer?, _ aCount: Int, _ b: UnsafeRawPointer?, _ bCount: Int) throws(Errno) -> IOResult<Int>
    /// Bytes for the connection itself, below any TLS: a PROXY protocol header goes before the handshake.
    func writeRaw(_ buffer: UnsafeRawPointer, _ count: Int) throws(Errno) -> IOResult<Int>
    /// No more bytes will be written (TCP FIN, TLS close_notify); reading goes on.
    func shutdownWrite()
    /// Releases the stream. Called once, by its `StreamOwner`.
    func closeTransport()
    /// The TLS session over the stream, if it carries TLS (handshakes are driven through it).
    var tls: TLSSession? { get }
}

/// Sole owner of a stream: closing it is dropping the owner, so a stream is closed exactly once, by construction.
///
/// Not generic on purpose: Swift 6.3's non-whole-module builds (debug, tests) skip the user `deinit` of a generic
/// non-copyable struct when it is destroyed in another file (HuddleProxyTests/DeinitAcrossFilesTests pins this), so
/// every owner type with a `deinit` here is concrete and holds what it closes as an existential.
struct StreamOwner: ~Copyable {
    private let stream: any Transport
    init(_ stream: some Transport) { self.stream = stream }
    deinit { stream.closeTransport() }
}

/// Where streams come from and how the loop watches them. Production uses `SocketNetwork`; the exchange tests use an
/// in-memory network, so failure paths run without sockets or processes.
public protocol Network: SendableMetatype {
    associatedtype Stream: Transport
    /// Starts a connection to `address`: the stream, and whether it is connected already (else wait for writability,
    /// then ask `pendingError`).
    func connect(to address: SocketAddress) throws(Errno) -> (stream: Stream, connected: Bool)
    /// The outcome of a non-blocking connect once the stream reported readiness: 0, or the errno it failed with.
    func pendingError(_ stream: Stream) -> Int32
    /// Asks the loop to report the stream's readiness to `handler` (edge-triggered, everything).
    func register(_ stream: Stream, handler: EventHandler, on loop: EventLoop) throws(Errno) -> Registration
    /// Stops reporting readiness for a stream that is closed right after (its owner is dropped next).
    func deregister(_ stream: Stream, _ registration: Registration, on loop: EventLoop)
    /// The stream for a descriptor a listener accepted (with a TLS session when the listener terminates TLS).
    func adopt(acceptedFD: Int32, tls: TLSSession?) -> Stream
    /// The same connection with TLS on top, as the client of a backend; nil if this network cannot do TLS.
    func secure(_ stream: Stream, with context: ClientTLSContext, host: String, cacheKey: String) -> Stream?
}

/// A TCP socket, plain or carrying TLS. Plain TCP costs one syscall per call and one predictable branch (is there a
/// TLS session?); there is no dynamic dispatch either way.
public struct SocketTransport: Transport {
    public let fd: Int32
    /// The TLS session over this socket; nil for plain TCP.
    public let tls: TLSSession?
    @inline(__always) public init(fd: Int32, tls: TLSSession? = nil) {
        self.fd = fd
        self.tls = tls
    }
    /// Bytes pass through splice(2) untouched only on a plain socket (kTLS is not used).
    @inline(__always) public var spliceFD: Int32? { tls == nil ? fd : nil }
    @inline(__always) public func read(_ buffer: UnsafeMutableRawPointer, _ count: Int) throws(Errno) -> IOResult<Int> {
        if let t = tls { return try t.read(buffer, count) }
        return try Sys.recv(fd, buffer, count)
    }
    @inline(__always) public func write(_ buffer: UnsafeRawPointer, _ count: Int) throws(Errno) -> IOResult<Int> {
        if let t = tls { return try t.write(buffer, count) }
        return try Sys.write(fd, buffer, count)
    }
    @inline(__always) public func writev(_ a: UnsafeRawPointer?, _ aCount: Int, _ b: UnsafeRawPointer?, _ bCount: Int) throws(Errno) -> IOResult<Int> {
        if let t = tls { return try t.writev(a, aCount, b, bCount) }
        return try Sys.writev(fd, a, aCount, b, bCount)
    }
    public func writeRaw(_ buffer: UnsafeRawPointer, _ count: Int) throws(Errno) -> IOResult<Int> {
        try Sys.write(fd, buffer, count)
    }
    @inline(__always) public func shutdownWrite() {
        tls?.shutdown()
        Sys.shutdown(fd, .write)
    }
    @inline(__always) public func closeTransport() { Sys.close(fd) }
}

/// The kernel's TCP/IP: non-blocking sockets watched by epoll.
public struct SocketNetwork: Network {
    public init() {}
    public func connect(to address: SocketAddress) throws(Errno) -> (stream: SocketTransport, connected: Bool) {
        let (fd, connected) = try Sockets.connect(to: address)
        return (SocketTransport(fd: fd), connected)
    }
    @inline(__always) public func pendingError(_ stream: SocketTransport) -> Int32 { Sys.socketError(stream.fd) }
    @inline(__always) public func register(_ stream: SocketTransport, handler: EventHandler, on loop: EventLoop) throws(Errno) -> Registration {
        try loop.register(fd: stream.fd, handler: handler)
    }
    @inline(__always) public func deregister(_ stream: SocketTransport, _ registration: Registration, on loop: EventLoop) {
        loop.deregisterClosing(registration: registration)
    }
    @inline(__always) public func adopt(acceptedFD: Int32, tls: TLSSession?) -> SocketTransport { SocketTransport(fd: acceptedFD, tls: tls) }
    public func secure(_ stream: SocketTransport, with context: ClientTLSContext, host: String, cacheKey: String) -> SocketTransport? {
        guard let t = context.session(fd: stream.fd, host: host, cacheKey: cacheKey) else { return nil }
        return SocketTransport(fd: stream.fd, tls: t)
    }
}
