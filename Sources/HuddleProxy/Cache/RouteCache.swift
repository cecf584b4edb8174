// A cached route's runtime: its store (one for every worker, or one per worker with `shared=off`) and its counters.
// Kept across reloads that leave the route's cache settings alone, so a reload does not empty the cache.
import HuddleConfig
import Synchronization

/// Hits, misses, stale answers and collapsed requests of one route, sharded by worker (each worker adds to its own cache
/// line with relaxed atomics; /metrics sums the shards).
public final class CacheStats: @unchecked Sendable {
    public enum Counter: Int, CaseIterable {
        /// Answered fresh from the cache (`X-Cache: HIT`), collapsed requests served from their leader's fill included.
        case hits
        /// Answered by the backend or by Huddle itself (`X-Cache: MISS`).
        case misses
        /// Answered by a stale entry because the backend failed (`X-Cache: STALE`).
        case stale
        /// Requests that waited for an identical request's backend answer instead of sending their own.
        case collapsed
        /// Waiters that gave up after collapse_timeout and went to the backend themselves.
        case collapseTimeouts
    }

    private static let stride = 8
    private let shards: Int
    // SAFETY: written only through Atomic operations; allocated once, freed in deinit.
    private let cells: UnsafeMutablePointer<Atomic<Int>>

    public init(shards: Int) {
        self.shards = max(1, shards)
        let n = self.shards * Self.stride
        cells = .allocate(capacity: n)
        for i in 0..<n { (cells + i).initialize(to: Atomic(0)) }
    }

    deinit {
        cells.deinitialize(count: shards * Self.stride)
        cells.deallocate()
    }

    @inline(__always) func add(_ c: Counter, worker: Int) {
        cells[(worker % shards) * Self.stride + c.rawValue].add(1, ordering: .relaxed)
    }

    public func total(_ c: Counter) -> Int {
        var sum = 0
        for s in 0..<shards { sum += cells[s * Self.stride + c.rawValue].load(ordering: .relaxed) }
        return sum
    }
}

public final class RouteCache: Sendable {
    public let config: CacheConfig
    /// The route's prefix: the `route` label of the cache metrics and the purge endpoint's `route=`.
    public let route: String
    let stores: [CacheStore]
    public let stats: CacheStats

    /// `workers`: how many workers run (with `shared=off`, one store each, `size / workers` bytes each).
    init(config: CacheConfig, route: String, workers: Int, statShards: Int) {
        self.config = config
        self.route = route
        let n = config.shared ? 1 : max(1, workers)
        let capacity = Int(config.size) / n
        // Shards spread the lock of a shared store over workers; a per-worker store is only ever locked by its worker
        // (and a purge), so one shard does.
        stores = (0..<n).map { _ in CacheStore(capacity: capacity, shards: config.shared ? 16 : 1) }
        stats = CacheStats(shards: statShards)
    }

    /// The store a worker uses.
    @inline(__always) func store(worker: Int) -> CacheStore {
        stores.count == 1 ? stores[0] : stores[worker % stores.count]
    }

    /// Bytes charged against `size` (heads, bodies, keys and a fixed overhead per entry), over every store.
    public var bytes: Int { stores.reduce(0) { $0 + $1.bytes } }
    public var entries: Int { stores.reduce(0) { $0 + $1.entries } }
    public var evictions: Int { stores.reduce(0) { $0 + $1.evictions } }
    public var storeCount: Int { stores.count }

    /// Removes the stored responses of `key` (path and query as sent), or of every URL when `key` is nil; returns how
    /// many responses (variants) were removed. Fills in progress go on.
    public func purge(key: [UInt8]?) -> Int {
        stores.reduce(0) { n, s in n + (key.map { s.purge(key: $0) } ?? s.purgeAll()) }
    }

    /// Whether a reload may keep this cache for a route configured with `c` (the same settings, the same workers).
    func canServe(_ c: CacheConfig, workers: Int) -> Bool {
        config.size == c.size && config.ttl == c.ttl && config.maxEntry == c.maxEntry && config.staleIfError == c.staleIfError
            && config.collapseTimeout == c.collapseTimeout && config.shared == c.shared
            && (c.shared || stores.count == max(1, workers))
    }
}
