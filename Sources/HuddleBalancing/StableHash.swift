// XXH64: the one hash that must agree across processes, restarts and machines (group key -> server).

/// The real XXH64 algorithm (Yann Collet's), verified against the published test vectors.
///
/// Swift's `Hasher` is randomly seeded per process, so anything that must agree between two Huddle processes
/// (two instances behind DNS, a reload, an operator's `/api/lookup` call) goes through this instead.
public enum StableHash {
    @usableFromInline static let prime1: UInt64 = 0x9E37_79B1_85EB_CA87
    @usableFromInline static let prime2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    @usableFromInline static let prime3: UInt64 = 0x1656_67B1_9E37_79F9
    @usableFromInline static let prime4: UInt64 = 0x85EB_CA77_C2B2_AE63
    @usableFromInline static let prime5: UInt64 = 0x27D4_EB2F_1656_67C5

    public static func hash64(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        let count = bytes.count
        var offset = 0
        var h: UInt64
        if count >= 32 {
            var v1 = seed &+ prime1 &+ prime2
            var v2 = seed &+ prime2
            var v3 = seed
            var v4 = seed &- prime1
            while count - offset >= 32 {
                v1 = round(v1, read64(bytes, offset))
                v2 = round(v2, read64(bytes, offset + 8))
                v3 = round(v3, read64(bytes, offset + 16))
                v4 = round(v4, read64(bytes, offset + 24))
                offset += 32
            }
            h = rotl(v1, 1) &+ rotl(v2, 7) &+ rotl(v3, 12) &+ rotl(v4, 18)
            h = mergeRound(h, v1)
            h = mergeRound(h, v2)
            h = mergeRound(h, v3)
            h = mergeRound(h, v4)
        } else {
            h = seed &+ prime5
        }
        h &+= UInt64(truncatingIfNeeded: count)
        while count - offset >= 8 {
            h ^= round(0, read64(bytes, offset))
            h = rotl(h, 27) &* prime1 &+ prime4
            offset += 8
        }
        if count - offset >= 4 {
            let word = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            h ^= UInt64(word) &* prime1
            h = rotl(h, 23) &* prime2 &+ prime3
            offset += 4
        }
        while offset < count {
            h ^= UInt64(bytes[offset]) &* prime5
            h = rotl(h, 11) &* prime1
            offset += 1
        }
        return avalanche(h)
    }

    public static func hash64<C: Collection>(_ bytes: C, seed: UInt64 = 0) -> UInt64 where C.Element == UInt8 {
        if let result = bytes.withContiguousStorageIfAvailable({ hash64(UnsafeRawBufferPointer($0), seed: seed) }) {
            return result
        }
        return Array(bytes).withUnsafeBytes { hash64($0, seed: seed) }
    }

    /// Over the string's UTF-8 bytes, so it matches `hash64(Array(string.utf8))` and any other XXH64 implementation.
    public static func hash64(_ string: String, seed: UInt64 = 0) -> UInt64 {
        if let result = string.utf8.withContiguousStorageIfAvailable({ hash64(UnsafeRawBufferPointer($0), seed: seed) }) {
            return result
        }
        return Array(string.utf8).withUnsafeBytes { hash64($0, seed: seed) }
    }

    /// XXH64 of the 8 little-endian bytes of `word`, without touching memory: the consistent hash scores every
    /// (key, server) pair with it, so it is worth the specialisation. Equal to `hash64(bytesOf(word), seed:)`.
    @inlinable
    public static func hash64(word: UInt64, seed: UInt64 = 0) -> UInt64 {
        var h = seed &+ prime5 &+ 8
        h ^= round(0, word)
        h = rotl(h, 27) &* prime1 &+ prime4
        return avalanche(h)
    }

    @inlinable @inline(__always)
    static func round(_ acc: UInt64, _ input: UInt64) -> UInt64 {
        rotl(acc &+ input &* prime2, 31) &* prime1
    }

    @inlinable @inline(__always)
    static func mergeRound(_ acc: UInt64, _ value: UInt64) -> UInt64 {
        (acc ^ round(0, value)) &* prime1 &+ prime4
    }

    @inlinable @inline(__always)
    static func avalanche(_ hash: UInt64) -> UInt64 {
        var h = hash
        h ^= h >> 33
        h &*= prime2
        h ^= h >> 29
        h &*= prime3
        h ^= h >> 32
        return h
    }

    @inlinable @inline(__always)
    static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 {
        (x << r) | (x >> (64 &- r))
    }

    @inline(__always)
    static func read64(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> UInt64 {
        UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }
}
