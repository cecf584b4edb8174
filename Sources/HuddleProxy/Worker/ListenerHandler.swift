// A worker's listening socket for one `listen` of one server block (SO_REUSEPORT: every worker has its own).
import HuddleIO
import HuddleSys

// SAFETY: on its worker's loop thread only.
final class ListenerHandler<Net: Network>: TimerNode, EventHandler {
    // SAFETY: the worker owns its listeners and outlives them.
    unowned(unsafe) let worker: Worker<Net>
    let fd: Int32
    /// The address it listens on (`SocketAddress.description`): its identity across reloads.
    let key: String
    /// Index of its server block in the worker's current snapshot (a reload may change it).
    var blockIndex: Int
    /// `listen ... proxy_protocol`: each connection must open with a PROXY protocol header (a reload may change it;
    /// connections already accepted keep what they were accepted with).
    var proxyProtocol: Bool
    var registration = Registration.none
    /// Accepting is paused after descriptor exhaustion; a timer resumes it.
    var paused = false
    private var closed = false

    init(worker: Worker<Net>, fd: Int32, key: String, blockIndex: Int, proxyProtocol: Bool) {
        self.worker = worker
        self.fd = fd
        self.key = key
        self.blockIndex = blockIndex
        self.proxyProtocol = proxyProtocol
        super.init()
    }

    @_specialize(where Net == SocketNetwork)
    func handleEvent(_ events: UInt32) {
        if !paused { acceptLoop() }
    }

    /// End of an accept pause (descriptor exhaustion).
    @_specialize(where Net == SocketNetwork)
    override func timerFired(now: Int64) {
        paused = false
        acceptLoop()
    }

    func acceptLoop() {
        let w = worker
        while !w.shuttingDown && !closed {
            if w.openConnections >= w.maxConnections {
                if !w.acceptPausedForLimit {
                    w.acceptPausedForLimit = true
                    if w.loop.now - w.lastLimitLogMs > 10_000 {
                        w.lastLimitLogMs = w.loop.now
                        w.errorLog.warn("worker \(w.id): \(w.openConnections) client connections open, the max_connections limit; new connections wait in the listen queue")
                    }
                }
                return
            }
            let r: IOResult<(Int32, SocketAddress?)>
            do {
                r = try Sys.accept(fd)
            } catch {
                if error.isOutOfDescriptors {
                    // Out of descriptors: pause this listener briefly instead of spinning on the pending connection.
                    if w.loop.now - w.lastEMFILELogMs > 10_000 {
                        w.lastEMFILELogMs = w.loop.now
                        w.errorLog.error("worker \(w.id): accept failed: \(error); pausing accepts for 100ms (\(w.openConnections) client and \(w.counters.upstreamConnections) backend connections open)")
                    }
                    paused = true
                    w.loop.timers.schedule(self, at: w.loop.now + 100)
                } else {
                    w.errorLog.error("worker \(w.id): accept failed: \(error)")
                }
                return
            }
            guard case .done(let (cfd, peer)) = r else { return }
            // A TLS listener's connections start with a server-side session from the current snapshot's certificates.
            var tls: TLSSession? = nil
            if w.config.tlsListens.contains(key) {
                guard let t = w.config.serverBlocks[blockIndex].tls?.session(fd: cfd) else {
                    w.errorLog.error("worker \(w.id): cannot start TLS on a connection from \(peer?.description ?? "-"): \(TLSErrors.drain())")
                    Sys.close(cfd)
                    continue
                }
                tls = t
            }
            w.adopt(w.network.adopt(acceptedFD: cfd, tls: tls), peer: peer, blockIndex: blockIndex, listenKey: key, proxyProtocol: proxyProtocol)
        }
    }

    func close() {
        guard !closed else { return }
        closed = true
        worker.loop.deregister(fd: fd, registration: registration)
        worker.loop.timers.cancel(self)
        Sys.close(fd)
    }
}
