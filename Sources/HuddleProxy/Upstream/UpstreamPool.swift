// A worker's idle keep-alive connections to backend servers: most recently used last, each with an idle timeout.
import HuddleIO

// SAFETY: on its worker's loop thread only.
final class UpstreamPool<Net: Network> {
    unowned(unsafe) let worker: Worker<Net>
    /// Idle connections per server uid.
    private var idle: [[UpstreamConnection<Net>]] = []

    init(worker: Worker<Net>) {
        self.worker = worker
    }

    /// The warmest idle connection to `server`, if any.
    func take(_ server: ServerRuntime) -> UpstreamConnection<Net>? {
        guard server.uid < idle.count else { return nil }
        while let c = idle[server.uid].popLast() {
            worker.loop.timers.cancel(c)
            if c.isClosed { continue }
            return c
        }
        return nil
    }

    /// Keeps a connection that finished a clean exchange (called by its link's end); closes it when the pool is off,
    /// full (the oldest goes), or the worker is shutting down.
    func put(_ c: UpstreamConnection<Net>) {
        c.reused = true
        c.canWrite = true
        let uid = c.server.uid
        let config = c.server.pooling
        guard config.keepalive > 0, !worker.shuttingDown else {
            c.close()
            return
        }
        if uid >= idle.count { idle.append(contentsOf: Array(repeating: [], count: uid - idle.count + 1)) }
        if idle[uid].count >= config.keepalive {
            let old = idle[uid].removeFirst()
            worker.loop.timers.cancel(old)
            old.close()
        }
        idle[uid].append(c)
        worker.loop.timers.schedule(c, at: worker.loop.now + config.keepaliveTimeoutMs)
        // Edge-triggered: if the server already closed it, that event is pending and `discard` will run.
    }

    /// Drops one idle connection (closed by the server, or idle too long).
    func discard(_ c: UpstreamConnection<Net>) {
        let uid = c.server.uid
        if uid < idle.count, let i = idle[uid].firstIndex(where: { $0 === c }) {
            idle[uid].remove(at: i)
        }
        c.close()
    }

    /// Closes every idle connection to `server` (a keep-alive race showed they are likely stale).
    func discardAll(_ server: ServerRuntime) {
        while let c = take(server) { c.close() }
    }

    /// Closes idle connections to servers that are not in `live` (a reload dropped or replaced them).
    func keepOnly(_ live: Set<Int>) {
        for uid in idle.indices where !live.contains(uid) && !idle[uid].isEmpty {
            for c in idle[uid] {
                worker.loop.timers.cancel(c)
                c.close()
            }
            idle[uid].removeAll()
        }
    }

    func closeAll() {
        for list in idle { for c in list { c.close() } }
        idle.removeAll()
    }

    var idleCount: Int { idle.reduce(0) { $0 + $1.count } }
}
