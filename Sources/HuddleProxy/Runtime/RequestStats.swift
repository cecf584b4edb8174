// Responses by status class and a latency histogram, sharded by worker: each worker adds to its own cache lines with
// relaxed atomics (no contention on the request path), the admin port sums the shards when it renders /metrics.
import Synchronization

public final class RequestStats: @unchecked Sendable {
    /// Upper bounds of the latency buckets, in seconds (Prometheus `le`); a final +Inf bucket follows.
    public static let bucketBounds: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    private static let boundsMicros: [Int64] = bucketBounds.map { Int64($0 * 1_000_000) }

    // One shard: 5 status classes, buckets + Inf, count, sum (µs); padded to whole cache lines.
    private static let classesAt = 0
    private static let bucketsAt = 5
    private static let countAt = bucketsAt + bucketBounds.count + 1
    private static let sumAt = countAt + 1
    private static let stride = (sumAt + 1 + 7) / 8 * 8

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

    /// One answer with this status (1xx...5xx); with `micros`, its duration too.
    @inline(__always)
    public func record(worker: Int, status: Int, micros: Int64?) {
        let base = (worker % shards) * Self.stride
        let c = min(5, max(1, status / 100)) - 1
        cells[base + Self.classesAt + c].add(1, ordering: .relaxed)
        guard let us = micros else { return }
        var b = 0
        while b < Self.boundsMicros.count && us > Self.boundsMicros[b] { b += 1 }
        cells[base + Self.bucketsAt + b].add(1, ordering: .relaxed)
        cells[base + Self.countAt].add(1, ordering: .relaxed)
        cells[base + Self.sumAt].add(Int(us), ordering: .relaxed)
    }

    public struct Snapshot: Sendable {
        /// Answers by class: [1xx, 2xx, 3xx, 4xx, 5xx].
        public var classes: [Int]
        /// Per bucket (not cumulative), the last one +Inf.
        public var buckets: [Int]
        public var count: Int
        public var sumSeconds: Double
    }

    public func snapshot() -> Snapshot {
        var s = Snapshot(classes: Array(repeating: 0, count: 5), buckets: Array(repeating: 0, count: Self.bucketBounds.count + 1), count: 0, sumSeconds: 0)
        var sum = 0
        for shard in 0..<shards {
            let base = shard * Self.stride
            for c in 0..<5 { s.classes[c] += cells[base + Self.classesAt + c].load(ordering: .relaxed) }
            for b in 0..<s.buckets.count { s.buckets[b] += cells[base + Self.bucketsAt + b].load(ordering: .relaxed) }
            s.count += cells[base + Self.countAt].load(ordering: .relaxed)
            sum += cells[base + Self.sumAt].load(ordering: .relaxed)
        }
        s.sumSeconds = Double(sum) / 1_000_000
        return s
    }
}
