// Maglev hashing (Eisenbud et al., NSDI 2016), kept only to compare against the production rendezvous hash.

import HuddleBalancing

/// A lookup table of prime size M filled from each server's permutation `(offset + j × skip) mod M`; weights as in
/// Envoy: a server takes a turn in round `r` only while `r × weight / maxWeight` exceeds the slots it already holds.
struct MaglevTableForTesting {
    static let defaultSize = 65537
    let table: [Int]

    init(identities: [String], weights: [Int], size: Int = MaglevTableForTesting.defaultSize) {
        let n = identities.count
        let m = UInt64(size)
        let offsets = identities.map { StableHash.hash64($0, seed: 1) % m }
        let skips = identities.map { StableHash.hash64($0, seed: 2) % (m - 1) + 1 }
        let maxWeight = Double(weights.max() ?? 1)
        var next = [UInt64](repeating: 0, count: n)
        var taken = [Double](repeating: 0, count: n)
        var table = [Int](repeating: -1, count: size)
        var filled = 0
        var round = 0.0
        while filled < size {
            round += 1
            for i in 0..<n where weights[i] > 0 {
                if round * Double(weights[i]) / maxWeight < taken[i] + 1 { continue }
                taken[i] += 1
                var slot = Int((offsets[i] &+ next[i] &* skips[i]) % m)
                while table[slot] >= 0 {
                    next[i] += 1
                    slot = Int((offsets[i] &+ next[i] &* skips[i]) % m)
                }
                table[slot] = i
                next[i] += 1
                filled += 1
                if filled == size { break }
            }
        }
        self.table = table
    }

    func owner(keyHash: UInt64) -> Int {
        table[Int(keyHash % UInt64(table.count))]
    }
}
