// One request and its answer, from the first byte of the head to the last byte of the response (or the upgrade).
// Everything an exchange holds lives here and is borrowed from the worker's pool for the exchange's duration, so an
// idle keep-alive connection or a tunnel carries none of it.
import HuddleHTTP
import HuddleIO

// SAFETY: on its worker's loop thread only.
final class Exchange<Net: Network> {
    // Reading the head.
    var parser: HTTPRequestParser
    var head = HTTPRequestHead()
    var maxHeaderSize: Int

    // What the head asked for and where it goes.
    var method: HTTPMethod = .get
    /// The client wants (and may keep) its connection after this exchange.
    var clientKeepAlive = true
    var clientIsHTTP10 = false
    var plan: ForwardPlan?
    var upgrade: UpgradeKind { plan?.upgrade ?? .none }
    /// The server block's gzip settings (nil when gzip is off there) and what the request head says about it.
    var gzip: GzipRuntime?
    var gzipRequest = GzipRequestFacts()

    var request = RequestBodyRelay()
    var response = ResponseRelay()
    var upstream = UpstreamAttempt<Net>()
    /// Cached routes only: the request's part in the route's cache (Cache/CacheExchange.swift).
    var cache = CacheExchange()
    /// The server of the latest attempt, for the access log (the claim on it ends before the log line is written).
    var servedBy: ServerRuntime?

    /// Where the forwarded head keeps the fields the access log shows.
    var logFields = RequestLogFields()
    /// Clocks: the first byte of the head, and the start of the current backend attempt.
    var startNs: UInt64 = 0
    var startWallMs: Int64 = 0
    var upstreamStartNs: UInt64 = 0

    init(maxHeaderSize: Int) {
        self.maxHeaderSize = maxHeaderSize
        parser = HTTPRequestParser(maxHeaderSize: maxHeaderSize)
    }

    /// Ready for the next request. Every claim, link and buffer is dropped here (which releases it); the heads keep
    /// their header arrays' capacity, so reuse allocates nothing.
    func reset(maxHeaderSize: Int) {
        if maxHeaderSize != self.maxHeaderSize {
            self.maxHeaderSize = maxHeaderSize
            parser = HTTPRequestParser(maxHeaderSize: maxHeaderSize)
        } else {
            parser.reset()
        }
        head.reset()
        method = .get
        clientKeepAlive = true
        clientIsHTTP10 = false
        plan = nil
        gzip = nil
        gzipRequest = GzipRequestFacts()
        request.reset()
        response.reset()
        upstream.reset()
        cache.reset()
        servedBy = nil
        logFields = RequestLogFields()
        startNs = 0
        startWallMs = 0
        upstreamStartNs = 0
    }

    /// Nothing held: what an exchange must look like when it goes back to the pool.
    var holdsNothing: Bool {
        request.head == nil && response.input == nil && response.output == nil && response.gzip == nil && response.fill == nil
            && response.cached == nil && !upstream.holdsAnything && !cache.holdsAnything
    }
}

/// A worker's free list of exchanges.
// SAFETY: on its worker's loop thread only.
final class ExchangePool<Net: Network> {
    private var free: [Exchange<Net>] = []
    /// Kept for reuse; beyond this, exchanges are freed so an idle worker gives memory back.
    var maxCached = 256
    private(set) var outstanding = 0

    func acquire(maxHeaderSize: Int) -> Exchange<Net> {
        outstanding += 1
        if let e = free.popLast() {
            if e.maxHeaderSize != maxHeaderSize { e.reset(maxHeaderSize: maxHeaderSize) }
            return e
        }
        return Exchange(maxHeaderSize: maxHeaderSize)
    }

    /// Takes an exchange back: everything it held is released now, so a pooled exchange holds nothing.
    func release(_ e: Exchange<Net>) {
        outstanding -= 1
        e.reset(maxHeaderSize: e.maxHeaderSize)
        if free.count < maxCached { free.append(e) }
    }

    /// Drops cached exchanges above `keep` (housekeeping while idle).
    func trim(keep: Int) {
        if free.count > keep { free.removeLast(free.count - keep) }
    }

    var cachedCount: Int { free.count }
}
