// A connection to a backend server: lent to one exchange (or tunnel) at a time through an `UpstreamLink`, kept by its
// worker's keep-alive pool while idle.
import HuddleIO
import HuddleSys

// SAFETY: on its worker's loop thread only.
final class UpstreamConnection<Net: Network>: TimerNode, EventHandler {
    // SAFETY: a worker outlives every connection it owns (it closes them all before it goes away); unowned(unsafe)
    // skips the strong-retain check that profiling showed on every access.
    unowned(unsafe) let worker: Worker<Net>
    let stream: Net.Stream
    let server: ServerRuntime
    var registration = Registration.none
    /// Edge-triggered readiness as last reported (cleared on EAGAIN).
    var canRead = false
    var canWrite = false
    /// FIN or error signalled: keep reading to EOF rather than stopping at a short read.
    var sawHangup = false
    /// Has carried a complete exchange before: a failure on it may be a stale keep-alive race.
    var reused = false
    /// The non-blocking connect completed (a TLS handshake may still be under way).
    var tcpConnected = false
    /// The client connection using it, through its link; nil while pooled.
    unowned(unsafe) var user: ClientConnection<Net>?
    /// `send_proxy_protocol`: the client connection whose PROXY protocol header this connection carries. The backend
    /// takes every request on it as that client's, so it is never pooled for others: between requests it waits in
    /// that client connection (`privateUpstream`), which closes it when it closes. (The client outlives it: it closes
    /// the connection or drops the exchange holding it before it goes.)
    unowned(unsafe) var privateTo: ClientConnection<Net>?
    /// The PROXY protocol header, written before anything else on this connection; emptied once written.
    var preface: [UInt8] = []
    var prefaceSent = 0
    /// The descriptor and this connection's place in the worker's count: both go when `close()` drops them.
    private var owner: StreamOwner?
    private var counted: CountToken?

    init(worker: Worker<Net>, stream: Net.Stream, server: ServerRuntime) {
        self.worker = worker
        self.stream = stream
        self.server = server
        owner = StreamOwner(stream)
        counted = CountToken(worker.counters, .upstreamConnections)
        super.init()
    }

    var isClosed: Bool { owner == nil }

    /// Bytes of the PROXY protocol header still to write.
    var prefaceLeft: Int { preface.count - prefaceSent }

    /// Writes what is left of the PROXY protocol header (a fresh connection's send buffer takes it whole in practice,
    /// but a short write is carried over like any other).
    func writePreface() throws(Errno) -> IOResult<Int> {
        let sent = prefaceSent
        let r = try preface.withUnsafeBytes { p in
            Result { () throws(Errno) -> IOResult<Int> in try stream.writeRaw(p.baseAddress! + sent, p.count - sent) }
        }.get()
        if case .done(let n) = r {
            prefaceSent += n
            if prefaceSent == preface.count {
                preface = []
                prefaceSent = 0
            }
        }
        return r
    }

    @_specialize(where Net == SocketNetwork)
    func handleEvent(_ events: UInt32) {
        if events & (Events.readable | Events.readHangup | Events.hangup | Events.error) != 0 { canRead = true }
        if events & (Events.readHangup | Events.hangup | Events.error) != 0 { sawHangup = true }
        if events & (Events.writable | Events.error | Events.hangup) != 0 { canWrite = true }
        if let c = user {
            c.upstreamEvent(self)
        } else if events & (Events.readable | Events.readHangup | Events.hangup | Events.error) != 0 {
            // Idle in the pool: if the server closed it or sent something unsolicited, it is done. A stale edge from
            // the exchange it just finished is not a reason to drop it, so look before deciding.
            if events & (Events.hangup | Events.error) != 0 {
                worker.upstreamPool.discard(self)
                return
            }
            if let fd = stream.spliceFD, case .wouldBlock? = try? Sys.peek(fd) {
                canRead = false
            } else {
                worker.upstreamPool.discard(self)
            }
        }
    }

    /// Pool idle timeout.
    @_specialize(where Net == SocketNetwork)
    override func timerFired(now: Int64) {
        if user == nil { worker.upstreamPool.discard(self) }
    }

    /// Closes the descriptor and leaves the worker's count; a second call does nothing.
    func close() {
        guard owner != nil else { return }
        worker.loop.timers.cancel(self)
        worker.network.deregister(stream, registration, on: worker.loop)
        registration = .none
        owner = nil
        counted = nil
    }
}

/// What an `UpstreamLink` ends: the connection goes back to its worker's pool, or is closed.
protocol LinkedConnection: AnyObject {
    func linkEnded(recycle: Bool)
}

extension UpstreamConnection: LinkedConnection {
    @_specialize(where Net == SocketNetwork)
    func linkEnded(recycle: Bool) {
        server.activeConnections.subtract(1, ordering: .relaxed)
        user = nil
        if !recycle {
            close()
        } else if let owner = privateTo {
            owner.keepPrivateUpstream(self)
        } else {
            worker.upstreamPool.put(self)
        }
    }
}

/// An exchange's (or tunnel's) hold on a backend connection: while it exists the connection counts in its server's
/// `activeConnections` and reports its events to its user. Dropping the link closes the connection, unless `release`
/// asked for it to go back to the keep-alive pool. (Concrete, not generic: see `StreamOwner`.)
struct UpstreamLink: ~Copyable {
    let connection: any LinkedConnection
    private var recycle = false

    init<Net: Network>(_ connection: UpstreamConnection<Net>, user: ClientConnection<Net>) {
        self.connection = connection
        connection.user = user
        connection.server.activeConnections.add(1, ordering: .relaxed)
    }

    /// The connection as the exchange's network types it.
    @inline(__always)
    func typed<Net: Network>(_: Net.Type) -> UpstreamConnection<Net> {
        unsafeDowncast(connection, to: UpstreamConnection<Net>.self)
    }

    /// Ends the hold: a connection that finished a clean exchange may be reused, anything else is closed.
    consuming func release(reusable: Bool) {
        recycle = reusable
    }

    deinit { connection.linkEnded(recycle: recycle) }
}
