// nginx's smooth weighted round robin: one instance per worker, mutated in place on every pick.

/// Every pick adds each eligible server's weight to its running score, takes the highest score (first on ties) and
/// subtracts the total eligible weight from the winner. Weights 5,1,1 give `a a b a c a a`: the heavy server's turns are
/// spread out instead of bunched, which is what distinguishes it from plain weighted round robin.
///
/// Ineligible servers are skipped without accumulating score, as nginx does for servers marked down, so a server that
/// comes back does not receive a burst to "catch up".
public struct SmoothRoundRobin: Sendable {
    @usableFromInline let weights: [Int]
    @usableFromInline var current: [Int]

    public init(weights: [Int]) {
        precondition(weights.allSatisfy { $0 >= 0 }, "weights must not be negative")
        self.weights = weights
        self.current = Array(repeating: 0, count: weights.count)
    }

    public var count: Int { weights.count }

    @inlinable
    public mutating func pick(isEligible: (Int) -> Bool) -> Int? {
        var total = 0
        var best = -1
        var bestScore = Int.min
        for i in weights.indices where weights[i] > 0 && isEligible(i) {
            let score = current[i] + weights[i]
            current[i] = score
            total += weights[i]
            if score > bestScore {
                best = i
                bestScore = score
            }
        }
        guard best >= 0 else { return nil }
        current[best] -= total
        return best
    }
}
