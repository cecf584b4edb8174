// The consistent hash for `balance hash`: weighted rendezvous (HRW) hashing, chosen by measurement (docs/HASHING.md).

/// Weighted rendezvous hashing (Schindelhauer & Schomaker's logarithmic method, as in Resende's "weighted HRW").
///
/// For a key hash `k` and server `i` with identity hash `s_i = XXH64(identity_i)` and weight `w_i`:
///
///     h_i   = XXH64(k as 8 little-endian bytes, seed: s_i)
///     u_i   = ((h_i >> 11) + 0.5) / 2^53                   in (0, 1)
///     rank  = -ln(u_i) / w_i                               lower is preferred
///
/// (the reciprocal of the textbook score `-w_i / ln(u_i)`: same order, and a multiplication by a precomputed `1 / w_i`
/// instead of a division). With equal weights the order is "higher `h_i` first", which is what is computed then. The
/// preference order of a key is the servers sorted by rank; the owner is the first eligible one. Because each server's
/// rank for a key does not depend on the other servers, adding a server only moves keys to it, and removing (or making ineligible) a server
/// only moves its own keys, each to that key's next choice.
///
/// Lookup is O(servers), which is fine because it runs once per *group placement*, not per message or request
/// (figures in docs/HASHING.md). `ln` is computed here with IEEE basic operations only, so the placement is the same on
/// every machine and libm.
///
/// Built once from a server set and shared read-only by all workers; a new server set builds a new instance.
public final class ConsistentHash: Sendable {
    public let identities: [String]
    public let weights: [Int]
    @usableFromInline let seeds: [UInt64]
    @usableFromInline let doubleWeights: [Double]
    @usableFromInline let inverseWeights: [Double]
    @usableFromInline let equalWeights: Bool

    /// `identities[i]` is server `i`'s stable identity (`name=` or the address as written). Identities should be unique
    /// (config validation's job); a repeated identity is treated as `identity#2`, `identity#3`... so that it still gets
    /// keys of its own rather than never winning a tie. Weight 0 servers own no keys.
    public init(identities: [String], weights: [Int]) {
        precondition(identities.count == weights.count, "one weight per identity")
        precondition(weights.allSatisfy { $0 >= 0 }, "weights must not be negative")
        self.identities = identities
        self.weights = weights
        var seen: [String: Int] = [:]
        var seeds: [UInt64] = []
        seeds.reserveCapacity(identities.count)
        for identity in identities {
            let occurrence = (seen[identity] ?? 0) + 1
            seen[identity] = occurrence
            seeds.append(StableHash.hash64(occurrence == 1 ? identity : "\(identity)#\(occurrence)"))
        }
        self.seeds = seeds
        self.doubleWeights = weights.map(Double.init)
        self.inverseWeights = weights.map { $0 > 0 ? 1 / Double($0) : .infinity }
        let positive = weights.filter { $0 > 0 }
        self.equalWeights = positive.allSatisfy { $0 == positive.first }
    }

    public var count: Int { identities.count }

    /// The owner of a key: the first eligible server in the key's preference order.
    @inlinable
    public func owner(keyHash: UInt64, isEligible: (Int) -> Bool) -> Int? {
        var best = -1
        if equalWeights {
            var bestHash: UInt64 = 0
            for i in seeds.indices where weights[i] > 0 {
                let h = StableHash.hash64(word: keyHash, seed: seeds[i])
                if (best < 0 || h > bestHash) && isEligible(i) {
                    best = i
                    bestHash = h
                }
            }
        } else {
            var bestRank = Double.infinity
            var bestHash: UInt64 = 0
            for i in seeds.indices where weights[i] > 0 {
                let h = StableHash.hash64(word: keyHash, seed: seeds[i])
                // -ln(u) >= 1 - u, so a server whose cheap lower bound already loses (with a margin far above the
                // rounding error of either side) cannot win: skipping its ln changes no answer and saves most of them.
                let u = (Double(h >> 11) + 0.5) * 0x1p-53
                if best >= 0 && (1 - u) * inverseWeights[i] * (1 - 0x1p-30) > bestRank { continue }
                let rank = self.rank(hash: h, server: i)
                if (best < 0 || rank < bestRank || (rank == bestRank && h > bestHash)) && isEligible(i) {
                    best = i
                    bestRank = rank
                    bestHash = h
                }
            }
        }
        return best >= 0 ? best : nil
    }

    /// Bounded loads (Mirrokni, Thorup & Zadimoghaddam 2018; HAProxy's `hash-balance-factor`), decided once per group.
    ///
    /// Let `E` be the eligible servers with weight > 0, `W` the sum of their weights and `T` the sum of their loads.
    /// Server `i`'s capacity for this placement is `cap_i = ceil(F × (T + 1) × w_i / W)`: its weighted share of the load
    /// including the group being placed, times the factor `F`. The group goes to the first server of its preference
    /// order with `load(i) < cap_i`, i.e. one that still has room after taking it (so no server ever exceeds its cap
    /// through a placement). Since the caps add up to at least `T + 1` while the loads add up to `T`, some server
    /// always has room; if `load` answers inconsistently and none does, the owner is returned.
    ///
    /// `F` below 1 is treated as 1 (a smaller cap could not hold the load); `F` infinite or NaN means no bound, i.e.
    /// `owner()`. Returns nil only when no eligible server has a positive weight.
    public func place(keyHash: UInt64, factor: Double, isEligible: (Int) -> Bool, load: (Int) -> Int) -> Int? {
        guard let owner = owner(keyHash: keyHash, isEligible: isEligible) else { return nil }
        guard factor.isFinite else { return owner }
        let f = max(factor, 1)
        var totalWeight = 0
        var totalLoad = 0
        for i in weights.indices where weights[i] > 0 && isEligible(i) {
            totalWeight += weights[i]
            totalLoad += load(i)
        }
        let scale = f * Double(totalLoad + 1) / Double(totalWeight)
        func hasRoom(_ i: Int) -> Bool {
            let capacity = (scale * doubleWeights[i]).rounded(.up)
            return Double(load(i)) < capacity
        }
        if hasRoom(owner) { return owner }
        for i in preferenceOrder(keyHash: keyHash, limit: weights.count) where i != owner && isEligible(i) {
            if hasRoom(i) { return i }
        }
        return owner
    }

    /// The servers with weight > 0, most preferred first, at most `limit` of them. For tests, the admin API and the
    /// bounded-load walk; allocates, so not for the per-request path.
    public func preferenceOrder(keyHash: UInt64, limit: Int) -> [Int] {
        var ranked: [(server: Int, rank: Double, hash: UInt64)] = []
        ranked.reserveCapacity(weights.count)
        for i in weights.indices where weights[i] > 0 {
            let h = StableHash.hash64(word: keyHash, seed: seeds[i])
            ranked.append((i, equalWeights ? 0 : rank(hash: h, server: i), h))
        }
        // Equal weights order by hash alone (the same order as the rank). Ties, only theoretical, are broken as in
        // owner(): higher hash, then lower index.
        ranked.sort { a, b in
            if a.rank != b.rank { return a.rank < b.rank }
            if a.hash != b.hash { return a.hash > b.hash }
            return a.server < b.server
        }
        return ranked.prefix(max(0, limit)).map(\.server)
    }

    /// Server `i`'s rank for a key, lower preferred: `-ln(u_i) / w_i`, the reciprocal of the score above (so the same
    /// order), computed with a multiplication by the precomputed `1 / w_i` instead of a division. Public so the admin
    /// API can explain a placement.
    @inlinable
    public func rank(keyHash: UInt64, server i: Int) -> Double {
        rank(hash: StableHash.hash64(word: keyHash, seed: seeds[i]), server: i)
    }

    @inlinable
    func rank(hash h: UInt64, server i: Int) -> Double {
        let u = (Double(h >> 11) + 0.5) * 0x1p-53
        return -ConsistentHash.naturalLog(u) * inverseWeights[i]
    }

    /// `naturalLog`, for tests comparing it with libm (`@testable` would not build in release test runs).
    public static func naturalLogForTesting(_ x: Double) -> Double { naturalLog(x) }

    /// ln(x) for x in (0, 1] using only +, -, × and one ÷ (correctly rounded in IEEE 754 everywhere), so ranks never
    /// depend on the platform's libm. x = m × 2^e with m in [√½, √2); ln m = 2·atanh(s) with s = (m-1)/(m+1),
    /// |s| < 0.1716, and the atanh series to s^21 leaves a relative error under 3·10^-17, finer than the 2^-53 steps of
    /// `u`.
    @inlinable
    static func naturalLog(_ x: Double) -> Double {
        precondition(x.isNormal && x > 0 && x <= 1, "ln is only needed on (0, 1]")
        // Exponent and significand from the bits: x is normal here (u >= 2^-54), and the stdlib accessors cost more
        // than the whole series.
        let bits = x.bitPattern
        var e = Double(Int((bits >> 52) & 0x7FF) - 1023)
        var m = Double(bitPattern: (bits & 0x000F_FFFF_FFFF_FFFF) | 0x3FF0_0000_0000_0000) // in [1, 2)
        if m > 1.4142135623730951 {
            m *= 0.5
            e += 1
        }
        let s = (m - 1) / (m + 1)
        let z = s * s
        // Horner form of 1 + z/3 + z^2/5 + ... + z^10/21.
        var p = 1.0 / 21
        p = p * z + 1.0 / 19
        p = p * z + 1.0 / 17
        p = p * z + 1.0 / 15
        p = p * z + 1.0 / 13
        p = p * z + 1.0 / 11
        p = p * z + 1.0 / 9
        p = p * z + 1.0 / 7
        p = p * z + 1.0 / 5
        p = p * z + 1.0 / 3
        p = p * z + 1
        let ln2 = 0.6931471805599453
        return e * ln2 + 2 * s * p
    }
}
