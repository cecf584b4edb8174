// A small, fast, seedable random generator for balancer draws (one per worker; not for secrets).

/// xoshiro256** (Blackman & Vigna), its state seeded through splitmix64 so that any seed, even 0, gives a good state.
///
/// `SystemRandomNumberGenerator` costs a `getrandom` call per draw and cannot be replayed; a balancer draws twice per
/// request and its tests need reproducible sequences.
public struct FastRandom: RandomNumberGenerator, Sendable {
    @usableFromInline var s0: UInt64
    @usableFromInline var s1: UInt64
    @usableFromInline var s2: UInt64
    @usableFromInline var s3: UInt64

    public init(seed: UInt64) {
        var sm = seed
        s0 = FastRandom.splitMix64(&sm)
        s1 = FastRandom.splitMix64(&sm)
        s2 = FastRandom.splitMix64(&sm)
        s3 = FastRandom.splitMix64(&sm)
    }

    @inlinable
    public mutating func next() -> UInt64 {
        let result = rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = rotl(s3, 45)
        return result
    }

    static func splitMix64(_ state: inout UInt64) -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    @inlinable @inline(__always)
    func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 {
        (x << k) | (x >> (64 &- k))
    }
}
