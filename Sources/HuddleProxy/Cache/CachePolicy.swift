// What the cache may do with a request and with a response (RFC 9111), and how old and how fresh a stored response
// is. Pure: functions of head bytes, clocks and the route's settings; table-tested without sockets.
import HuddleConfig
import HuddleHTTP
import HuddleSys

/// What a request on a cached route does with the cache.
enum CacheRequestKind: Equatable {
    /// GET or HEAD the cache may answer: look it up; on a miss (GET) lead or join a collapsed fill.
    case lookup
    /// GET or HEAD whose client asked for a fresh answer (`no-cache`, `max-age=0`, `Pragma: no-cache`): go to the
    /// backend, and store what it answers (GET).
    case refresh
    /// Neither answered from nor stored: a body, `Authorization`, `Range`, `no-store`, an upgrade, OPTIONS/TRACE.
    case bypass
    /// An unsafe method (POST, PUT, DELETE, PATCH...): a non-error answer invalidates the stored responses of its URL
    /// (RFC 9111 §4.4).
    case invalidate
}

/// The facts of a request head that concern the cache, read once.
struct CacheRequestFacts: Equatable {
    var kind: CacheRequestKind = .bypass
    /// Why a GET/HEAD bypasses the cache (for the debug log); empty otherwise.
    var bypassReason: StaticString = ""
    /// Request `max-age` / `min-fresh` (seconds): a stored response must be at most this old / stay fresh this long.
    var maxAge: Int64? = nil
    var minFresh: Int64? = nil
    /// `If-None-Match` (the field value), and `If-Modified-Since` as Unix seconds.
    var ifNoneMatch: Range<Int>? = nil
    var ifModifiedSince: Int64? = nil

    static func == (a: CacheRequestFacts, b: CacheRequestFacts) -> Bool {
        a.kind == b.kind && a.bypassReason.description == b.bypassReason.description && a.maxAge == b.maxAge
            && a.minFresh == b.minFresh && a.ifNoneMatch == b.ifNoneMatch && a.ifModifiedSince == b.ifModifiedSince
    }

    static func read(_ head: HTTPRequestHead, _ bytes: UnsafeRawBufferPointer, upgrade: Bool) -> CacheRequestFacts {
        var f = CacheRequestFacts()
        switch head.method {
        case .get, .head:
            break
        case .options, .trace:
            f.bypassReason = "method"
            return f
        default:
            f.kind = .invalidate
            return f
        }
        if upgrade {
            f.bypassReason = "upgrade"
            return f
        }
        if head.bodyFraming.hasBody {
            f.bypassReason = "request body"
            return f
        }
        var cc = CacheControl()
        var sawCacheControl = false
        var pragmaNoCache = false
        for h in head.headers where h.kind == .other {
            @inline(__always) func named(_ s: StaticString) -> Bool { ASCIIBytes.equalsCaseInsensitive(bytes, h.name, s) }
            switch h.name.count {
            case 5 where named("range"):
                f.bypassReason = "Range"
                return f
            case 13 where named("authorization"):
                f.bypassReason = "Authorization"
                return f
            case 13 where named("cache-control"):
                sawCacheControl = true
                cc.add(h.value, in: bytes)
            case 13 where named("if-none-match"):
                if f.ifNoneMatch == nil { f.ifNoneMatch = h.value }
            case 17 where named("if-modified-since"):
                if f.ifModifiedSince == nil { f.ifModifiedSince = HTTPDate.parse(bytes, h.value, nowSeconds: Sys.wallClockMs() / 1000) }
            case 6 where named("pragma"):
                if ASCIIBytes.listContainsToken(bytes, h.value, "no-cache") { pragmaNoCache = true }
            default:
                break
            }
        }
        if cc.noStore {
            f.bypassReason = "no-store"
            return f
        }
        f.maxAge = cc.maxAge
        f.minFresh = cc.minFresh
        f.kind = cc.noCache || cc.maxAge == 0 || (!sawCacheControl && pragmaNoCache) ? .refresh : .lookup
        return f
    }
}

/// How fresh a stored response is and for how long a stale one may still answer on a backend failure. Times are
/// milliseconds on the monotonic clock of the process (`responseMs`) or durations.
struct CacheFreshness: Sendable, Equatable {
    /// When the response was received (monotonic ms).
    var responseMs: Int64
    /// Its age when received (RFC 9111 §4.2.3 corrected_initial_age), ms.
    var initialAgeMs: Int64
    /// freshness_lifetime (§4.2.1), ms.
    var lifetimeMs: Int64
    /// How long past its freshness it may answer when the backend fails (`stale-if-error`), ms; 0: never.
    var staleIfErrorMs: Int64

    /// current_age (§4.2.3), ms.
    @inline(__always) func ageMs(nowMs: Int64) -> Int64 { initialAgeMs + max(0, nowMs - responseMs) }

    /// Fresh for a request, considering its own `max-age` and `min-fresh`.
    @inline(__always) func isFresh(nowMs: Int64, maxAge: Int64?, minFresh: Int64?) -> Bool {
        let age = ageMs(nowMs: nowMs)
        guard lifetimeMs > age else { return false }
        if let m = maxAge, age > m * 1000 { return false }
        if let m = minFresh, lifetimeMs - age < m * 1000 { return false }
        return true
    }

    /// May answer, stale, because the backend failed.
    func isUsableOnError(nowMs: Int64) -> Bool {
        staleIfErrorMs > 0 && ageMs(nowMs: nowMs) < lifetimeMs + staleIfErrorMs
    }
}

/// A backend response's verdict: stored (with how fresh it is) or not, and why.
enum CacheStoreDecision: Equatable {
    case store(lifetimeMs: Int64, staleIfErrorMs: Int64)
    case dontStore(reason: String)
}

/// The facts of a response head that decide whether it is stored.
struct CacheResponseFacts: Equatable {
    var cacheControl = CacheControl()
    var setCookie = false
    /// `Vary: *`.
    var varyStar = false
    /// Lower-cased field names listed in Vary, sorted, without duplicates.
    var varyNames: [[UInt8]] = []
    /// Unix seconds; `expiresInvalid`: an Expires that is not an HTTP-date (it means "already expired").
    var date: Int64? = nil
    var expires: Int64? = nil
    var expiresInvalid = false
    var age: Int64? = nil
    var lastModified: Int64? = nil
    /// The ETag value as sent (`"x"` or `W/"x"`).
    var etag: Range<Int>? = nil

    static func read(_ head: HTTPResponseHead, _ bytes: UnsafeRawBufferPointer, nowSeconds: Int64) -> CacheResponseFacts {
        var f = CacheResponseFacts()
        var sawCacheControl = false
        var pragmaNoCache = false
        var sawExpires = false
        for h in head.headers where h.kind == .other {
            @inline(__always) func named(_ s: StaticString) -> Bool { ASCIIBytes.equalsCaseInsensitive(bytes, h.name, s) }
            switch h.name.count {
            case 3 where named("age"):
                if f.age == nil { f.age = CacheControl.deltaSeconds(bytes, h.value) }
            case 4 where named("date"):
                if f.date == nil { f.date = HTTPDate.parse(bytes, h.value, nowSeconds: nowSeconds) }
            case 4 where named("vary"):
                ASCIIBytes.forEachToken(in: h.value, of: bytes) { t in
                    if t.count == 1 && bytes[t.lowerBound] == 0x2A { f.varyStar = true; return }
                    let name = bytes[t].map { ASCIIBytes.lowercased($0) }
                    if !f.varyNames.contains(name) { f.varyNames.append(name) }
                }
            case 4 where named("etag"):
                if f.etag == nil { f.etag = h.value }
            case 6 where named("pragma"):
                if ASCIIBytes.listContainsToken(bytes, h.value, "no-cache") { pragmaNoCache = true }
            case 7 where named("expires"):
                if !sawExpires {
                    sawExpires = true
                    f.expires = HTTPDate.parse(bytes, h.value, nowSeconds: nowSeconds)
                    f.expiresInvalid = f.expires == nil
                }
            case 10 where named("set-cookie"):
                f.setCookie = true
            case 13 where named("cache-control"):
                sawCacheControl = true
                f.cacheControl.add(h.value, in: bytes)
            case 13 where named("last-modified"):
                if f.lastModified == nil { f.lastModified = HTTPDate.parse(bytes, h.value, nowSeconds: nowSeconds) }
            default:
                break
            }
        }
        if !sawCacheControl && pragmaNoCache { f.cacheControl.noCache = true }
        f.varyNames.sort { $0.lexicographicallyPrecedes($1) }
        return f
    }

    /// An explicit expiration time: s-maxage, max-age or Expires.
    var hasExplicitFreshness: Bool {
        cacheControl.sMaxAge != nil || cacheControl.maxAge != nil || expires != nil || expiresInvalid
    }
}

enum CachePolicy {
    /// Statuses cacheable by default (RFC 9110 §15.1): these may be stored with heuristic freshness (`ttl`).
    static func isHeuristicallyCacheable(_ status: Int) -> Bool {
        switch status {
        case 200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501: return true
        default: return false
        }
    }

    /// Whether a response with an explicit freshness may be stored at all: final, not partial, not 304, and not a
    /// server error (so an error never replaces a good stored answer; 501 is the heuristically cacheable exception).
    static func isStorableStatus(_ status: Int) -> Bool {
        (200...499).contains(status) && status != 206 && status != 304 || status == 501
    }

    /// A response to a GET on a cached route: stored or not (RFC 9111 §3), and for how long it is fresh (§4.2.1), and
    /// usable when the backend fails (RFC 5861 `stale-if-error`, or the route's `stale_if_error`).
    ///
    /// `framingComplete`: the body has a length or chunks (a body ended by the server closing is stored too; the caller
    /// says false only for framings it cannot keep). `nowSeconds` is the wall clock when the head arrived.
    static func decide(status: Int, facts f: CacheResponseFacts, config: CacheConfig, nowSeconds: Int64) -> CacheStoreDecision {
        let cc = f.cacheControl
        if cc.noStore { return .dontStore(reason: "no-store") }
        if cc.isPrivate { return .dontStore(reason: "private") }
        if f.setCookie { return .dontStore(reason: "Set-Cookie") }
        if f.varyStar { return .dontStore(reason: "Vary: *") }
        // Huddle does not revalidate (no conditional requests to the backend): a response that may only be used after
        // revalidation could never answer, so it is not kept.
        if cc.noCache { return .dontStore(reason: "no-cache") }
        guard isStorableStatus(status) else { return .dontStore(reason: "status \(status)") }
        let lifetimeMs: Int64
        if let s = cc.sMaxAge {
            lifetimeMs = s * 1000
        } else if let m = cc.maxAge {
            lifetimeMs = m * 1000
        } else if f.expiresInvalid {
            lifetimeMs = 0
        } else if let e = f.expires {
            lifetimeMs = max(0, e - (f.date ?? nowSeconds)) * 1000
        } else {
            // Heuristic freshness: the route's ttl, for statuses cacheable by default (or marked public).
            guard config.ttl > 0 else { return .dontStore(reason: "no explicit freshness and ttl=0") }
            guard isHeuristicallyCacheable(status) || cc.isPublic else { return .dontStore(reason: "status \(status) without explicit freshness") }
            return .store(lifetimeMs: config.ttl, staleIfErrorMs: staleWindow(cc, config))
        }
        let stale = staleWindow(cc, config)
        // A response that is neither fresh nor usable on errors could never answer.
        guard lifetimeMs > 0 || stale > 0 else { return .dontStore(reason: "already stale") }
        return .store(lifetimeMs: lifetimeMs, staleIfErrorMs: stale)
    }

    /// The response's own `stale-if-error` wins (RFC 5861: "regardless of other freshness information"); without it,
    /// the route's default, except where the response forbids serving it stale (must-revalidate, proxy-revalidate, and
    /// s-maxage, which implies proxy-revalidate: RFC 9111 §4.2.4, §5.2.2.10).
    static func staleWindow(_ cc: CacheControl, _ config: CacheConfig) -> Int64 {
        if let s = cc.staleIfError { return s * 1000 }
        if cc.mustRevalidate || cc.proxyRevalidate || cc.sMaxAge != nil { return 0 }
        return config.staleIfError
    }

    /// RFC 9111 §4.2.3: the response's age when it arrived. `requestSentMs`/`responseMs` are monotonic, `nowSeconds`
    /// wall clock.
    static func initialAgeMs(facts f: CacheResponseFacts, nowSeconds: Int64, requestSentMs: Int64, responseMs: Int64) -> Int64 {
        let apparent = max(0, nowSeconds - (f.date ?? nowSeconds)) * 1000
        let corrected = (f.age ?? 0) * 1000 + max(0, responseMs - requestSentMs)
        return max(apparent, corrected)
    }
}

/// Conditional requests against a stored response (RFC 9110 §13.1.2, §13.1.3), as a cache evaluates them.
enum CacheConditional {
    /// Whether `If-None-Match` (the field value `inm`) matches the stored entity tag (weak comparison): `*` matches any
    /// stored response.
    static func noneMatchMatches(_ bytes: UnsafeRawBufferPointer, _ inm: Range<Int>, etag: UnsafeRawBufferPointer?) -> Bool {
        let trimmed = ASCIIBytes.trimmingOWS(bytes, inm)
        if trimmed.count == 1 && bytes[trimmed.lowerBound] == 0x2A { return true }
        guard let etag, let stored = opaqueTag(etag, 0..<etag.count) else { return false }
        var found = false
        var i = trimmed.lowerBound
        while i < trimmed.upperBound && !found {
            while i < trimmed.upperBound && (ASCIIBytes.isOWS(bytes[i]) || bytes[i] == 0x2C) { i &+= 1 }
            var s = i
            if i + 1 < trimmed.upperBound && bytes[i] == 0x57 && bytes[i + 1] == 0x2F { s = i + 2 }
            guard s < trimmed.upperBound, bytes[s] == 0x22 else { break }
            var e = s + 1
            while e < trimmed.upperBound && bytes[e] != 0x22 { e &+= 1 }
            guard e < trimmed.upperBound else { break }
            let tag = (s + 1)..<e
            if tag.count == stored.count {
                found = true
                for k in 0..<tag.count where bytes[tag.lowerBound + k] != etag[stored.lowerBound + k] { found = false; break }
            }
            i = e + 1
        }
        return found
    }

    /// The opaque-tag of an entity-tag without `W/` and quotes; nil when malformed.
    static func opaqueTag(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> Range<Int>? {
        var s = r.lowerBound
        if r.count >= 2 && b[s] == 0x57 && b[s + 1] == 0x2F { s += 2 }
        guard r.upperBound - s >= 2, b[s] == 0x22, b[r.upperBound - 1] == 0x22 else { return nil }
        return (s + 1)..<(r.upperBound - 1)
    }
}
