// What an exchange on a cached route holds of the cache: the request's facts and key, and the tokens of its part in a
// collapsed fill (leading it or waiting on it) and of a stale entry kept for stale-if-error. Dropping it (the exchange
// resetting) releases every token, so no path can leave a fill or a waiter behind.
import HuddleHTTP

struct CacheExchange: ~Copyable {
    /// The route's cache; nil on a route without one (then nothing else here is used).
    var route: RouteCache?
    /// The store this worker uses for the route.
    var store: CacheStore?
    var facts = CacheRequestFacts()
    /// A GET whose answer may be stored (lookup or refresh).
    var mayFill = false
    /// The key (path and query as sent) and its hash: kept by requests whose answer may be stored or invalidates.
    var key: [UInt8] = []
    var hash: UInt64 = 0
    /// A copy of the request head (its bytes; the parsed head stays in the exchange): the values of the fields a
    /// response varies on are read from it when the response is stored.
    var requestHead: [UInt8] = []
    /// This request fetches the URL for identical ones waiting on it.
    var lead: CacheLead?
    /// This request waits on an identical one's fetch.
    var wait: CacheWait?
    /// A stored variant past its freshness, kept in case the backend fails (stale-if-error).
    var stale: CacheRead?

    /// Cheap when the route has no cache: one branch.
    @inline(__always) mutating func reset() {
        guard route != nil else { return }
        route = nil
        store = nil
        facts = CacheRequestFacts()
        mayFill = false
        key.removeAll(keepingCapacity: true)
        hash = 0
        requestHead.removeAll(keepingCapacity: true)
        lead = nil
        wait = nil
        stale = nil
    }

    var holdsAnything: Bool { lead != nil || wait != nil || stale != nil }

    /// Keeps the key and the head bytes for storing the answer (`head` was parsed from `bytes`).
    mutating func keep(_ head: HTTPRequestHead, _ bytes: UnsafeRawBufferPointer) {
        key.removeAll(keepingCapacity: true)
        CacheKey.withKey(head, bytes) { key.append(contentsOf: $0) }
        hash = CacheKey.hash(key)
        requestHead.removeAll(keepingCapacity: true)
        requestHead.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[0..<head.headLength]))
    }
}

extension CacheKey {
    /// Calls `body` with the request's key: its path and query as sent (`/a?b`), which are contiguous in the target
    /// (a target without a path is `/`).
    @inline(__always)
    static func withKey<R>(_ head: HTTPRequestHead, _ bytes: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        if !head.path.isEmpty {
            let end = head.query?.upperBound ?? head.path.upperBound
            return body(UnsafeRawBufferPointer(rebasing: bytes[head.path.lowerBound..<end]))
        }
        var k: [UInt8] = [0x2F]
        if let q = head.query {
            k.append(0x3F)
            k += bytes[q]
        }
        return k.withUnsafeBytes(body)
    }
}
