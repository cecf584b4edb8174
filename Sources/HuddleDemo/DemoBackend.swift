// The demo/test/bench backend server: a non-blocking HTTP/1.1 + WebSocket server with one event loop per worker.
import Glibc
import HuddleIO
import HuddleSys
import Synchronization
import HuddleSync

public struct DemoBackendOptions: Sendable {
    public var name: String
    public var listen: [SocketAddress]
    public var workers: Int = 1

    public init(name: String, listen: [SocketAddress], workers: Int = 1) {
        self.name = name
        self.listen = listen
        self.workers = workers
    }
}

public final class DemoBackend: Sendable {
    /// The addresses actually bound: a port 0 in the options is replaced by the port the kernel chose.
    public let boundAddresses: [SocketAddress]
    public var name: String { state.name }
    let state: DemoBackendState
    private let workers: [DemoWorker]
    /// Emptied by the first `stop`, so stopping twice is harmless.
    private let threads: Locked<[pthread_t]>

    private init(boundAddresses: [SocketAddress], state: DemoBackendState, workers: [DemoWorker], threads: [pthread_t]) {
        self.boundAddresses = boundAddresses
        self.state = state
        self.workers = workers
        self.threads = Locked(threads)
    }

    /// Binds every address once per worker (SO_REUSEPORT spreads accepts), spawns the loop threads and returns.
    public static func start(_ options: DemoBackendOptions) throws -> DemoBackend {
        let n = max(1, options.workers)
        let state = DemoBackendState(name: options.name, workers: n)
        var workers: [DemoWorker] = []
        for i in 0..<n {
            workers.append(DemoWorker(loop: try EventLoop(id: i), state: state, counters: state.counters[i]))
        }
        var bound: [SocketAddress] = []
        var fds: [[Int32]] = Array(repeating: [], count: n)
        do {
            for address in options.listen {
                var actual = address
                for i in 0..<n {
                    let fd = try Sockets.listen(on: actual, reusePort: true)
                    fds[i].append(fd)
                    // The other workers must join the port the first one was given, not ask for another.
                    if i == 0 && address.port == 0, let local = Sys.localAddress(fd) { actual = local }
                }
                bound.append(actual)
            }
            // The loops are not running yet, so registering from this thread is safe.
            for i in 0..<n {
                for fd in fds[i] { try workers[i].addListener(fd: fd) }
                fds[i].removeAll()
            }
        } catch {
            for list in fds { for fd in list { Sys.close(fd) } }
            for w in workers { w.shutdown() }
            throw error
        }
        let threads = workers.map { w in
            LoopThread.spawn(name: "demo-\(w.loop.id)") { w.loop.run() }
        }
        return DemoBackend(boundAddresses: bound, state: state, workers: workers, threads: threads)
    }

    /// Stops every loop (closing its listeners and connections first) and joins the threads.
    public func stop() {
        let ts = threads.withLock { t in
            let all = t
            t.removeAll()
            return all
        }
        guard !ts.isEmpty else { return }
        for w in workers {
            w.loop.execute { w.shutdown() }
            w.loop.stop()
        }
        for t in ts { LoopThread.join(t) }
    }

    /// The chat rooms this backend holds now, with their member counts: the backend's own view of where each group's
    /// members are (tests judge whether a group is whole from it).
    public func roomMembers() -> [String: Int] { state.rooms.counts() }

    /// True once `stop` ran.
    public var isStopped: Bool { threads.withLock { $0.isEmpty } }

    /// The /stats body: counters summed across workers.
    public var statsJSON: String { state.statsJSON() }
}
