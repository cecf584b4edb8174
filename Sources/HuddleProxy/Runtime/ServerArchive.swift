// Servers that left the snapshot (a pod gone from DNS, a line removed by a reload), kept so that one coming back
// with the same identity and address gets its old object again: its counters, health and history carry on as if it
// had never left. Bounded: the oldest leave the archive first.

// SAFETY: used on the control thread only (snapshot builds happen there).
public final class ServerArchive: @unchecked Sendable {
    private var byUpstream: [String: [String: ServerRuntime]] = [:]
    /// (upstream, identity) in the order they were archived.
    private var order: [(String, String)] = []
    let capacity: Int
    /// The next server uid to hand out: archived servers keep theirs, so a new one must not reuse it.
    var nextUID = 0

    public init(capacity: Int = 1024) { self.capacity = capacity }

    func add(_ s: ServerRuntime, upstream: String) {
        if byUpstream[upstream]?[s.identity] == nil { order.append((upstream, s.identity)) }
        byUpstream[upstream, default: [:]][s.identity] = s
        while order.count > capacity {
            let (u, id) = order.removeFirst()
            byUpstream[u]?[id] = nil
        }
    }

    /// The archived server with this identity and address, taken out of the archive.
    func take(upstream: String, identity: String, addressText: String) -> ServerRuntime? {
        guard let s = byUpstream[upstream]?[identity], s.addressText == addressText else { return nil }
        byUpstream[upstream]?[identity] = nil
        order.removeAll { $0 == (upstream, identity) }
        return s
    }

    var count: Int { order.count }
}
