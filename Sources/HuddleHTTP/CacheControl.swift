// Cache-Control (RFC 9111 §5.2) and Pragma (§5.4), read from raw field values: the directives a shared cache acts on.

/// The directives of one message's Cache-Control field lines (one `add` per line; they combine as one list).
///
/// Names are case-insensitive; arguments may be tokens or quoted strings (commas inside quotes do not split); a
/// directive seen twice keeps its first value (RFC 9111 §4.2.1 allows that or treating the response as stale). A
/// delta-seconds argument that is not a number counts as 0 (a response whose max-age cannot be read is stale, never
/// fresh for longer than its sender meant); one above 2^31 counts as 2^31 (§1.2.2). Allocation-free.
public struct CacheControl: Sendable, Equatable {
    public var noStore = false
    /// `no-cache`, with or without field names (a stored response could only be used after revalidation).
    public var noCache = false
    /// `private`, with or without field names: a shared cache does not store it.
    public var isPrivate = false
    public var isPublic = false
    public var mustRevalidate = false
    public var proxyRevalidate = false
    public var noTransform = false
    public var onlyIfCached = false
    /// Seconds; nil when absent.
    public var maxAge: Int64? = nil
    public var sMaxAge: Int64? = nil
    /// RFC 5861: how long past its freshness a stored response may answer when the origin fails.
    public var staleIfError: Int64? = nil
    /// Request: `min-fresh`.
    public var minFresh: Int64? = nil
    /// Some directive was present (the field is not empty).
    public var any = false

    public init() {}

    /// 2^31: what an overlong delta-seconds means (RFC 9111 §1.2.2).
    public static let deltaSecondsCap: Int64 = 2_147_483_648

    /// Adds one field line's value, `bytes[value]`.
    public mutating func add(_ value: Range<Int>, in bytes: UnsafeRawBufferPointer) {
        var i = value.lowerBound
        let end = value.upperBound
        while i < end {
            // One element: name [ "=" ( token / quoted-string ) ], up to a comma outside quotes.
            while i < end && (ASCIIBytes.isOWS(bytes[i]) || bytes[i] == 0x2C) { i &+= 1 }
            let nameStart = i
            while i < end && bytes[i] != 0x3D && bytes[i] != 0x2C && !ASCIIBytes.isOWS(bytes[i]) { i &+= 1 }
            let name = nameStart..<i
            while i < end && ASCIIBytes.isOWS(bytes[i]) { i &+= 1 }
            var argument: Range<Int>? = nil
            if i < end && bytes[i] == 0x3D {
                i &+= 1
                while i < end && ASCIIBytes.isOWS(bytes[i]) { i &+= 1 }
                if i < end && bytes[i] == 0x22 {
                    i &+= 1
                    let s = i
                    while i < end && bytes[i] != 0x22 {
                        if bytes[i] == 0x5C { i &+= 1 }   // quoted-pair
                        i &+= 1
                    }
                    argument = s..<min(i, end)
                    if i < end { i &+= 1 }
                } else {
                    let s = i
                    while i < end && bytes[i] != 0x2C && !ASCIIBytes.isOWS(bytes[i]) { i &+= 1 }
                    argument = s..<i
                }
            }
            // Anything else before the next comma is malformed and ignored.
            while i < end && bytes[i] != 0x2C { i &+= 1 }
            if !name.isEmpty { apply(name, argument, bytes) }
        }
    }

    private mutating func apply(_ name: Range<Int>, _ argument: Range<Int>?, _ bytes: UnsafeRawBufferPointer) {
        any = true
        @inline(__always) func named(_ s: StaticString) -> Bool { ASCIIBytes.equalsCaseInsensitive(bytes, name, s) }
        func seconds() -> Int64 { argument.map { Self.deltaSeconds(bytes, $0) } ?? 0 }
        switch name.count {
        case 6:
            if named("public") { isPublic = true }
        case 7:
            if named("max-age") { if maxAge == nil { maxAge = seconds() } }
            else if named("private") { isPrivate = true }
        case 8:
            if named("no-store") { noStore = true }
            else if named("no-cache") { noCache = true }
            else if named("s-maxage") { if sMaxAge == nil { sMaxAge = seconds() } }
        case 9:
            if named("min-fresh") { if minFresh == nil { minFresh = seconds() } }
        case 12:
            if named("no-transform") { noTransform = true }
        case 14:
            if named("only-if-cached") { onlyIfCached = true }
            else if named("stale-if-error") { if staleIfError == nil { staleIfError = seconds() } }
        case 15:
            if named("must-revalidate") { mustRevalidate = true }
        case 16:
            if named("proxy-revalidate") { proxyRevalidate = true }
        default:
            break
        }
    }

    /// delta-seconds: 1*DIGIT; not a number: 0; above 2^31: 2^31.
    public static func deltaSeconds(_ bytes: UnsafeRawBufferPointer, _ r: Range<Int>) -> Int64 {
        guard !r.isEmpty else { return 0 }
        var n: Int64 = 0
        for i in r {
            let b = bytes[i]
            guard b >= 0x30 && b <= 0x39 else { return 0 }
            n = n &* 10 &+ Int64(b &- 0x30)
            if n > deltaSecondsCap { return deltaSecondsCap }
        }
        return n
    }

    /// Reads every Cache-Control line of a head; `Pragma: no-cache` counts as `no-cache` when there is no Cache-Control
    /// line (RFC 9111 §5.4).
    public static func read(_ headers: [HTTPHeaderField], _ bytes: UnsafeRawBufferPointer) -> CacheControl {
        var cc = CacheControl()
        var pragmaNoCache = false
        var sawCacheControl = false
        for h in headers where h.kind == .other {
            switch h.name.count {
            case 13 where ASCIIBytes.equalsCaseInsensitive(bytes, h.name, "cache-control"):
                sawCacheControl = true
                cc.add(h.value, in: bytes)
            case 6 where ASCIIBytes.equalsCaseInsensitive(bytes, h.name, "pragma"):
                if ASCIIBytes.listContainsToken(bytes, h.value, "no-cache") { pragmaNoCache = true }
            default:
                break
            }
        }
        if !sawCacheControl && pragmaNoCache {
            cc.noCache = true
            cc.any = true
        }
        return cc
    }
}
