// A demo worker's listening socket: accepts until the queue is empty and hands each socket to the worker.
import HuddleIO
import HuddleSys

final class DemoListener: TimerNode, EventHandler {
    let fd: Int32
    unowned let worker: DemoWorker
    var registration = Registration.none

    init(fd: Int32, worker: DemoWorker) {
        self.fd = fd
        self.worker = worker
    }

    func handleEvent(_ events: UInt32) {
        acceptAll()
    }

    private func acceptAll() {
        while true {
            do {
                switch try Sys.accept(fd) {
                case .wouldBlock:
                    return
                case .done(let (cfd, _)):
                    worker.adopt(fd: cfd)
                }
            } catch {
                // Out of descriptors: the edge is spent, so retry on a timer rather than wait for one that never comes.
                if error.isOutOfDescriptors { worker.loop.timers.schedule(self, at: worker.loop.now + 100) }
                return
            }
        }
    }

    override func timerFired(now: Int64) {
        acceptAll()
    }

    func close() {
        worker.loop.timers.cancel(self)
        worker.loop.deregister(fd: fd, registration: registration)
        Sys.close(fd)
    }
}
