// A ketama-style ring with virtual nodes, kept only to compare against the production rendezvous hash.

import HuddleBalancing

/// 160 points per weight unit at `XXH64("identity#n")`; a key belongs to the first point at or after its hash, wrapping.
struct KetamaRingForTesting {
    let points: [UInt64]
    let owners: [Int]

    init(identities: [String], weights: [Int], pointsPerWeight: Int = 160) {
        var pairs: [(UInt64, Int)] = []
        for (server, identity) in identities.enumerated() {
            for n in 0..<(weights[server] * pointsPerWeight) {
                pairs.append((StableHash.hash64("\(identity)#\(n)"), server))
            }
        }
        pairs.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
        points = pairs.map(\.0)
        owners = pairs.map(\.1)
    }

    /// Walks clockwise from the key's point to the first eligible server.
    func owner(keyHash: UInt64, isEligible: (Int) -> Bool = { _ in true }) -> Int? {
        guard !points.isEmpty else { return nil }
        var low = 0
        var high = points.count
        while low < high {
            let mid = (low + high) / 2
            if points[mid] < keyHash { low = mid + 1 } else { high = mid }
        }
        for step in 0..<points.count {
            let server = owners[(low + step) % points.count]
            if isEligible(server) { return server }
        }
        return nil
    }
}
