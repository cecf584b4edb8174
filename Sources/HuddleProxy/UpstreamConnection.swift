// A connection to a backend server: owned by a session while in use, by its worker's pool while idle.
import HuddleIO
import HuddleSys

// SAFETY: on its worker's loop thread only.
final class UpstreamConnection: TimerNode, EventHandler {
    // SAFETY: a worker outlives every connection it owns (it closes them all before it goes away); unowned(unsafe)
    // skips the strong-retain check that profiling showed on every access.
    unowned(unsafe) let worker: Worker
    let fd: Int32
    let server: ServerRuntime
    var registration = Registration.none
    /// Edge-triggered readiness as last reported (cleared on EAGAIN).
    var canRead = false
    var canWrite = false
    /// FIN or error signalled: keep reading to EOF rather than stopping at a short read.
    var sawHangup = false
    /// Has carried a complete exchange before: a failure on it may be a stale keep-alive race.
    var reused = false
    /// The session using it; nil while pooled.
    unowned(unsafe) var session: DownstreamSession?
    var closed = false

    init(worker: Worker, fd: Int32, server: ServerRuntime) {
        self.worker = worker
        self.fd = fd
        self.server = server
        super.init()
    }

    func handleEvent(_ events: UInt32) {
        if events & (Events.readable | Events.readHangup | Events.hangup | Events.error) != 0 { canRead = true }
        if events & (Events.readHangup | Events.hangup | Events.error) != 0 { sawHangup = true }
        if events & (Events.writable | Events.error | Events.hangup) != 0 { canWrite = true }
        if let s = session {
            s.upstreamEvent(self)
        } else if events & (Events.readable | Events.readHangup | Events.hangup | Events.error) != 0 {
            // Idle in the pool: if the server closed it or sent something unsolicited, it is done. A stale edge from
            // the exchange it just finished is not a reason to drop it, so look before deciding.
            if events & (Events.hangup | Events.error) != 0 {
                worker.discardPooled(self)
                return
            }
            switch try? Sys.peek(fd) {
            case .wouldBlock?: canRead = false
            default: worker.discardPooled(self)
            }
        }
    }

    /// Pool idle timeout.
    override func timerFired(now: Int64) {
        if session == nil { worker.discardPooled(self) }
    }

    func close() {
        guard !closed else { return }
        closed = true
        worker.loop.timers.cancel(self)
        worker.loop.deregister(fd: fd, registration: registration)
        Sys.close(fd)
        worker.upstreamConnectionCount -= 1
    }
}
