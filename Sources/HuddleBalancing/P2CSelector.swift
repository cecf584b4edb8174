// Power of two choices: the default balancer, built once per server set and then only picked from.

/// Draws two distinct servers with probability proportional to weight and sends the request to the one with the lower
/// load per unit of weight. Two random choices already make the worst server's excess load tiny compared to one random
/// choice, without the herd that "least loaded of all" causes when every worker reads the same stale counters.
///
/// Servers are the indices of the `weights` array given at build time. A weight of 0 is never drawn.
public struct P2CSelector: Sendable {
    @usableFromInline let weights: [Int]
    @usableFromInline let totalWeight: Int
    /// Walker's alias table, exact in integers: column `c` (uniform) keeps `c` when a uniform ticket in
    /// `0..<totalWeight` is below `threshold[c]`, and otherwise yields `alias[c]`. O(1) per draw at any size.
    @usableFromInline let threshold: [Int]
    @usableFromInline let alias: [Int]
    /// All weights equal and positive: a draw is then one uniform index, no search.
    @usableFromInline let isUniform: Bool

    public init(weights: [Int]) {
        precondition(weights.allSatisfy { $0 >= 0 }, "weights must not be negative")
        self.weights = weights
        let total = weights.reduce(0, +)
        self.totalWeight = total
        self.isUniform = !weights.isEmpty && weights.allSatisfy { $0 == weights[0] && $0 > 0 }
        (self.threshold, self.alias) = P2CSelector.aliasTable(weights, total: total)
    }

    /// The alias table for `weights`, for tests checking its exactness.
    public static func aliasTableForTesting(_ weights: [Int]) -> (threshold: [Int], alias: [Int]) {
        aliasTable(weights, total: weights.reduce(0, +))
    }

    /// Vose's construction with every probability scaled by `n × total`, so column `c` holds `threshold[c]` tickets
    /// of its own server out of `total`, and the rest go to `alias[c]`: server i gets exactly `w_i / total` overall.
    static func aliasTable(_ weights: [Int], total: Int) -> (threshold: [Int], alias: [Int]) {
        let n = weights.count
        guard total > 0 else { return ([Int](repeating: 0, count: n), Array(0..<n)) }
        var scaled = weights.map { $0 * n } // each column holds `total` tickets
        var threshold = [Int](repeating: total, count: n)
        var alias = Array(0..<n)
        var small = scaled.indices.filter { scaled[$0] < total }
        var large = scaled.indices.filter { scaled[$0] >= total }
        while let s = small.popLast(), let l = large.last {
            threshold[s] = scaled[s]
            alias[s] = l
            scaled[l] -= total - scaled[s]
            if scaled[l] < total {
                large.removeLast()
                small.append(l)
            }
        }
        return (threshold, alias)
    }

    public var count: Int { weights.count }

    /// Two distinct servers drawn at random with probability proportional to weight (weight 0 is never drawn),
    /// the one with the lower load/weight wins (`load_a * w_b` vs `load_b * w_a`; ties broken at random).
    /// Ineligible servers are never returned; if only one eligible server remains it is returned; none -> nil.
    ///
    /// Both draws are exact conditional draws over the eligible servers: a few rejection attempts first (cheap when most
    /// servers are healthy), then an exact scan over the eligible set, which samples from the same distribution.
    @inlinable
    public func pick<R: RandomNumberGenerator>(
        using rng: inout R, isEligible: (Int) -> Bool, load: (Int) -> Int
    ) -> Int? {
        guard totalWeight > 0 else { return nil }
        let attempts = 4
        var first = -1
        for _ in 0..<attempts {
            let candidate = draw(using: &rng)
            if isEligible(candidate) {
                first = candidate
                break
            }
        }
        var second = -1
        if first >= 0 {
            for _ in 0..<attempts {
                let candidate = draw(using: &rng)
                if candidate != first && isEligible(candidate) {
                    second = candidate
                    break
                }
            }
        }
        if second < 0 {
            guard let pair = drawPairByScan(using: &rng, first: first, isEligible: isEligible) else { return nil }
            guard pair.second >= 0 else { return pair.first }
            first = pair.first
            second = pair.second
        }
        let costFirst = load(first) &* weights[second]
        let costSecond = load(second) &* weights[first]
        if costFirst != costSecond {
            return costFirst < costSecond ? first : second
        }
        return Bool.random(using: &rng) ? first : second
    }

    @inlinable
    func draw<R: RandomNumberGenerator>(using rng: inout R) -> Int {
        if isUniform {
            return Int.random(in: 0..<weights.count, using: &rng)
        }
        let column = Int.random(in: 0..<weights.count, using: &rng)
        let ticket = Int.random(in: 0..<totalWeight, using: &rng)
        return ticket < threshold[column] ? column : alias[column]
    }

    /// The slow path: the eligible set is enumerated once. `first`, if already drawn by rejection, is kept (it was
    /// drawn from the right distribution), otherwise drawn here. `second` is -1 when only one server is eligible.
    @usableFromInline
    func drawPairByScan<R: RandomNumberGenerator>(
        using rng: inout R, first alreadyDrawn: Int, isEligible: (Int) -> Bool
    ) -> (first: Int, second: Int)? {
        var eligibleWeight = 0
        var eligibleCount = 0
        var only = -1
        for i in weights.indices where weights[i] > 0 && isEligible(i) {
            eligibleWeight += weights[i]
            eligibleCount += 1
            only = i
        }
        if eligibleCount == 0 { return nil }
        if eligibleCount == 1 { return (only, -1) }
        let first = alreadyDrawn >= 0
            ? alreadyDrawn
            : drawByScan(using: &rng, total: eligibleWeight, excluding: -1, isEligible: isEligible)
        let second = drawByScan(
            using: &rng, total: eligibleWeight - weights[first], excluding: first, isEligible: isEligible)
        return (first, second)
    }

    @usableFromInline
    func drawByScan<R: RandomNumberGenerator>(
        using rng: inout R, total: Int, excluding excluded: Int, isEligible: (Int) -> Bool
    ) -> Int {
        var ticket = Int.random(in: 0..<total, using: &rng)
        var last = -1
        for i in weights.indices where i != excluded && weights[i] > 0 && isEligible(i) {
            if ticket < weights[i] { return i }
            ticket -= weights[i]
            last = i
        }
        // Only reachable if isEligible changed its answer between the two scans; any eligible server will do.
        return last
    }
}
