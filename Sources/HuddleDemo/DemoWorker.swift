// One demo backend worker: an event loop with its own SO_REUSEPORT listeners and the connections they accepted.
import HuddleIO
import HuddleSys

/// SAFETY: every field is touched on `loop`'s thread only, except during `start` before that thread exists;
/// other threads only pass the worker into `loop.execute`.
final class DemoWorker: @unchecked Sendable {
    let loop: EventLoop
    let state: DemoBackendState
    let counters: DemoCounters
    private var listeners: [DemoListener] = []
    private var connections: [Int: DemoConnection] = [:]
    /// Connections that were handed bytes from elsewhere (room broadcasts) and must be driven once this turn ends;
    /// driving them at the end of the turn keeps one connection's handler from re-entering another's.
    private var dirty: [DemoConnection] = []

    init(loop: EventLoop, state: DemoBackendState, counters: DemoCounters) {
        self.loop = loop
        self.state = state
        self.counters = counters
        loop.addEndOfTurnHook { [unowned self] in self.driveDirty() }
    }

    func addListener(fd: Int32) throws(Errno) {
        let l = DemoListener(fd: fd, worker: self)
        l.registration = try loop.register(fd: fd, events: Events.readable | Events.edgeTriggered, handler: l)
        listeners.append(l)
    }

    func adopt(fd: Int32) {
        Sockets.setNoDelay(fd)
        counters.connectionsAccepted.wrappingAdd(1, ordering: .relaxed)
        let c = DemoConnection(fd: fd, serial: state.nextConnectionSerial(), worker: self)
        do {
            c.registration = try loop.register(fd: fd, handler: c)
        } catch {
            c.close()
            return
        }
        connections[c.serial] = c
    }

    func forget(_ c: DemoConnection) {
        connections[c.serial] = nil
    }

    func markDirty(_ c: DemoConnection) {
        if c.isDirty { return }
        c.isDirty = true
        dirty.append(c)
    }

    private func driveDirty() {
        while !dirty.isEmpty {
            let batch = dirty
            dirty.removeAll()
            for c in batch {
                c.isDirty = false
                c.drive()
            }
        }
    }

    /// Closes listeners and every connection; runs on the loop just before it stops.
    func shutdown() {
        for l in listeners { l.close() }
        listeners.removeAll()
        for c in Array(connections.values) { c.close() }
        connections.removeAll()
        dirty.removeAll()
    }
}
