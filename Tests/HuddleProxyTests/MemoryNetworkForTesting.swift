// An in-memory network for driving a worker's exchanges without sockets: the test plays the client and the backends
// byte by byte, decides how each connect ends, and injects resets; readiness is delivered edge-triggered, like epoll.
@testable import HuddleProxy
import HuddleIO
import HuddleSys

/// One direction of a connection: bytes written by one side, read by the other.
final class MemoryQueue {
    var bytes: [UInt8] = []
    /// The writer shut down its sending side: after the bytes, the reader sees EOF.
    var finished = false
    /// The reader's next read fails with this (a reset).
    var error: Errno?
    /// At most this many unread bytes; a writer beyond it would block.
    var capacity = 1 << 20
    var space: Int { max(0, capacity - bytes.count) }
}

/// Both directions of one connection, and who is told about readiness on the proxy's side.
final class MemoryConnection {
    let toProxy = MemoryQueue()
    let fromProxy = MemoryQueue()
    weak var handler: EventHandler?
    let network: MemoryNetworkForTesting
    /// The proxy closed its end (how many times: more than once is a bug the tests catch).
    var proxyCloses = 0
    /// A pending connect: not writable until the test completes (or fails) it.
    var connectPending = false
    var connectError: Int32 = 0
    let label: String

    init(network: MemoryNetworkForTesting, label: String) {
        self.network = network
        self.label = label
    }

    var proxyClosed: Bool { proxyCloses > 0 }

    // MARK: the test's side (the peer)

    func send(_ s: String) { send(Array(s.utf8)) }

    func send(_ b: [UInt8]) {
        precondition(!toProxy.finished, "\(label): sending after finishing")
        toProxy.bytes += b
        network.notify(self, Events.readable)
    }

    /// Everything the proxy wrote so far (consumed).
    func receive() -> [UInt8] {
        let b = fromProxy.bytes
        fromProxy.bytes.removeAll()
        if !b.isEmpty { network.notify(self, Events.writable) }
        return b
    }

    func receiveText() -> String { String(decoding: receive(), as: UTF8.self) }

    /// The peer's FIN.
    func finish() {
        toProxy.finished = true
        network.notify(self, Events.readable | Events.readHangup)
    }

    /// The peer resets the connection: the proxy's next read or write fails.
    func reset() {
        toProxy.error = Errno(104)   // ECONNRESET
        fromProxy.error = Errno(104)
        network.notify(self, Events.readable | Events.writable | Events.error | Events.hangup)
    }

    /// Completes a pending connect.
    func completeConnect(error: Int32 = 0) {
        connectPending = false
        connectError = error
        network.notify(self, error == 0 ? Events.writable : Events.error | Events.hangup)
    }

    var proxyFinishedSending: Bool { fromProxy.finished }
}

struct MemoryStream: Transport {
    let connection: MemoryConnection
    var fd: Int32 { -1 }
    var spliceFD: Int32? { nil }

    func read(_ buffer: UnsafeMutableRawPointer, _ count: Int) throws(Errno) -> IOResult<Int> {
        let q = connection.toProxy
        if let e = q.error { throw e }
        if q.bytes.isEmpty { return q.finished ? .done(0) : .wouldBlock }
        let n = min(count, q.bytes.count)
        q.bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: n) }
        q.bytes.removeFirst(n)
        return .done(n)
    }

    func write(_ buffer: UnsafeRawPointer, _ count: Int) throws(Errno) -> IOResult<Int> {
        try writev(buffer, count, nil, 0)
    }

    func writev(_ a: UnsafeRawPointer?, _ aCount: Int, _ b: UnsafeRawPointer?, _ bCount: Int) throws(Errno) -> IOResult<Int> {
        let q = connection.fromProxy
        precondition(!connection.proxyClosed, "\(connection.label): write after close")
        if let e = q.error { throw e }
        if connection.connectPending { return .wouldBlock }
        if q.finished { throw Errno(32) }   // EPIPE: writing after our own shutdown is a bug
        var room = q.space
        if room == 0 { return .wouldBlock }
        var written = 0
        for (p, n) in [(a, aCount), (b, bCount)] where n > 0 && room > 0 {
            let take = min(n, room)
            q.bytes += UnsafeRawBufferPointer(start: p, count: take)
            written += take
            room -= take
        }
        return .done(written)
    }

    func shutdownWrite() { connection.fromProxy.finished = true }

    func closeTransport() { connection.proxyCloses += 1 }

    var tls: TLSSession? { nil }
    func writeRaw(_ buffer: UnsafeRawPointer, _ count: Int) throws(Errno) -> IOResult<Int> { try write(buffer, count) }
}

/// How a connect to a backend goes.
enum ConnectOutcome {
    case refuse
    /// Never completes (until the test calls `completeConnect` on it).
    case hang
    case accept
}

/// The in-memory network: a test's script for connects, and the queue of readiness events for the proxy's handlers.
final class MemoryNetworkForTesting: Network {
    typealias Stream = MemoryStream
    /// Decides each backend connect; by default every connect is accepted.
    var onConnect: (SocketAddress) -> ConnectOutcome = { _ in .accept }
    /// Backend connections in the order they were made (the test plays each backend through them).
    private(set) var backendConnections: [(address: SocketAddress, connection: MemoryConnection)] = []
    private(set) var allConnections: [MemoryConnection] = []
    private var pending: [(MemoryConnection, UInt32)] = []

    func connect(to address: SocketAddress) throws(Errno) -> (stream: MemoryStream, connected: Bool) {
        switch onConnect(address) {
        case .refuse:
            throw Errno(111)   // ECONNREFUSED
        case .hang:
            let c = MemoryConnection(network: self, label: "backend \(address)")
            c.connectPending = true
            allConnections.append(c)
            backendConnections.append((address, c))
            return (MemoryStream(connection: c), false)
        case .accept:
            let c = MemoryConnection(network: self, label: "backend \(address)")
            allConnections.append(c)
            backendConnections.append((address, c))
            return (MemoryStream(connection: c), true)
        }
    }

    func pendingError(_ stream: MemoryStream) -> Int32 { stream.connection.connectError }

    func register(_ stream: MemoryStream, handler: EventHandler, on loop: EventLoop) throws(Errno) -> Registration {
        stream.connection.handler = handler
        // Like epoll: a new registration reports the current readiness once.
        if !stream.connection.connectPending { notify(stream.connection, Events.writable) }
        return Registration.none
    }

    func deregister(_ stream: MemoryStream, _ registration: Registration, on loop: EventLoop) {
        stream.connection.handler = nil
    }

    func adopt(acceptedFD: Int32, tls: TLSSession?) -> MemoryStream {
        preconditionFailure("the in-memory network has no listeners; tests hand client connections to Worker.adopt")
    }

    /// The in-memory network has no TLS: a TLS upstream's connect fails like a handshake failure.
    func secure(_ stream: MemoryStream, with context: ClientTLSContext, host: String, cacheKey: String) -> MemoryStream? { nil }

    /// A new client connection for the test to play.
    func newClient() -> (MemoryConnection, MemoryStream) {
        let c = MemoryConnection(network: self, label: "client \(allConnections.count)")
        allConnections.append(c)
        return (c, MemoryStream(connection: c))
    }

    func notify(_ c: MemoryConnection, _ events: UInt32) {
        pending.append((c, events))
    }

    /// Delivers queued readiness until none is left (bounded: a livelock fails the test instead of hanging it).
    func deliver() {
        var rounds = 0
        while !pending.isEmpty {
            rounds += 1
            precondition(rounds < 100_000, "readiness events keep coming: a livelock")
            let (c, e) = pending.removeFirst()
            c.handler?.handleEvent(e)
        }
    }
}
