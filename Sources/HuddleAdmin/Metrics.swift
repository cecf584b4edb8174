// Every metric of /metrics, declared once in one table (name, type, help, where its samples come from), and the
// Prometheus text rendering of collected values.
import HuddleBalancing
import HuddleProxy
import HuddleSys

/// The Prometheus types Huddle exports.
enum MetricType: String {
    case counter, gauge, histogram
}

/// Where a metric's samples come from, which decides its labels.
enum MetricSource {
    /// One sample per backend server, labels `upstream` and `server`.
    case server(@Sendable (ServerRuntime) -> Double)
    /// One sample per upstream, label `upstream`.
    case upstream(@Sendable (UpstreamRuntime, _ nowMs: Int64) -> Double)
    /// One unlabelled sample: the sum of every worker's last published figure (a stale worker's included).
    case workerSum(@Sendable (WorkerFigures) -> Int)
    /// One sample per worker, label `worker`.
    case worker(@Sendable (WorkerStats) -> Double)
    /// One sample per reload result, label `result` (`ok`, `failed`).
    case reloads
    /// One sample per backend server and status class, labels `upstream`, `server` and `code` (`1xx` ... `5xx`).
    case serverStatusClasses
    /// One sample per backend server and state, labels `upstream`, `server` and `to`: transitions into that state.
    case serverTransitions
    /// A histogram per upstream (label `upstream`): `_bucket{le}` (cumulative), `_sum`, `_count`, from
    /// `UpstreamRuntime.stats`.
    case upstreamDuration
    /// The same per upstream, from `UpstreamRuntime.queue.waits`: time spent in the queue.
    case upstreamQueueWait
    /// One unlabelled sample computed from the whole input (process-wide counters).
    case process(@Sendable (MetricsInput) -> Double)
    /// One sample per rate-limited route, label `route` (its prefix; the same prefix in several server blocks is one
    /// sample, their sum).
    case rateLimit(@Sendable (RateLimiter, _ nowNs: UInt64) -> Double)
    /// One sample per cached route, label `route` (its prefix; routes with the same prefix in several server blocks
    /// are summed).
    case cacheRoute(@Sendable (RouteCache) -> Double)
}

struct MetricDeclaration {
    /// The full name, `huddle_` prefix included, so a grep for a name a dashboard uses lands here.
    let name: String
    let type: MetricType
    let help: String
    let source: MetricSource
}

/// What one /metrics answer is computed from.
struct MetricsInput {
    var runtime: RuntimeConfig
    var workers: [WorkerStats]
    var nowMs: Int64
    var reloads: (ok: Int, failed: Int)
    /// Active health probes started since start.
    var healthProbes = 0
    /// Monotonic time of the scrape (rate-limit buckets are read against it).
    var nowNs: UInt64 = Sys.monotonicNs()
}

enum Metrics {
    /// The table. Names are part of Huddle's interface: add freely, never rename or drop.
    static let all: [MetricDeclaration] = [
        MetricDeclaration(name: "huddle_server_requests_total", type: .counter, help: "Requests completed by a backend server.",
                          source: .server { Double($0.requestsTotal.load(ordering: .relaxed)) }),
        MetricDeclaration(name: "huddle_server_failures_total", type: .counter, help: "Failed attempts against a backend server.",
                          source: .server { Double($0.failuresTotal.load(ordering: .relaxed)) }),
        MetricDeclaration(name: "huddle_server_in_flight", type: .gauge, help: "Requests in flight to a backend server.",
                          source: .server { Double($0.inFlight.load(ordering: .relaxed)) }),
        MetricDeclaration(name: "huddle_server_active_connections", type: .gauge, help: "Backend connections in use (requests and tunnels).",
                          source: .server { Double($0.activeConnections.load(ordering: .relaxed)) }),
        MetricDeclaration(name: "huddle_server_up", type: .gauge, help: "1 when the backend server takes new traffic, else 0.",
                          source: .server { $0.isAvailable ? 1 : 0 }),
        MetricDeclaration(name: "huddle_groups", type: .gauge, help: "Live groups per upstream.",
                          source: .upstream { u, now in Double(u.groups.totals(nowMs: now).groups) }),
        MetricDeclaration(name: "huddle_groups_active", type: .gauge, help: "Live groups per upstream (the same figure as huddle_groups).",
                          source: .upstream { u, now in Double(u.groups.totals(nowMs: now).groups) }),
        MetricDeclaration(name: "huddle_client_connections", type: .gauge, help: "Open client connections.",
                          source: .workerSum { $0.sessions }),
        MetricDeclaration(name: "huddle_tunnels", type: .gauge, help: "Open upgraded (WebSocket) tunnels.",
                          source: .workerSum { $0.tunnels }),
        MetricDeclaration(name: "huddle_tunnels_active", type: .gauge, help: "Open upgraded (WebSocket) tunnels (the same figure as huddle_tunnels).",
                          source: .workerSum { $0.tunnels }),
        MetricDeclaration(name: "huddle_backend_connections", type: .gauge, help: "Open connections to backends, pooled idle ones included.",
                          source: .workerSum { $0.upstreamConnections }),
        MetricDeclaration(name: "huddle_buffers_in_use", type: .gauge, help: "Pooled I/O buffers lent to connections (idle connections hold none).",
                          source: .workerSum { $0.buffersInUse }),
        MetricDeclaration(name: "huddle_buffers_cached", type: .gauge, help: "Free I/O buffers kept for reuse.",
                          source: .workerSum { $0.buffersCached }),
        MetricDeclaration(name: "huddle_pipes_in_use", type: .gauge, help: "Splice pipes lent to tunnels (idle tunnels hold none).",
                          source: .workerSum { $0.pipesInUse }),
        MetricDeclaration(name: "huddle_pipes_cached", type: .gauge, help: "Free splice pipes kept for reuse.",
                          source: .workerSum { $0.pipesCached }),
        MetricDeclaration(name: "huddle_gzip_streams_in_use", type: .gauge, help: "zlib deflate streams lent to responses being gzip-compressed.",
                          source: .workerSum { $0.gzipStreamsInUse }),
        MetricDeclaration(name: "huddle_gzip_streams_cached", type: .gauge, help: "Reset zlib deflate streams kept for reuse (about 270 KiB each).",
                          source: .workerSum { $0.gzipStreamsCached }),
        MetricDeclaration(name: "huddle_worker_stats_age_seconds", type: .gauge,
                          help: "Age of a worker's last published figures; over \(WorkerStats.staleAfterMs / 1000) seconds the worker is stale and the sums above hold its last figures.",
                          source: .worker { Double($0.ageMs) / 1000 }),
        MetricDeclaration(name: "huddle_reloads_total", type: .counter, help: "Configuration reloads by result (the initial load not counted).",
                          source: .reloads),
        MetricDeclaration(name: "huddle_requests_total", type: .counter,
                          help: "Answers to requests sent to a backend server, by status class (code=1xx..5xx); a 502/504 Huddle sends because the server failed counts for that server.",
                          source: .serverStatusClasses),
        MetricDeclaration(name: "huddle_request_duration_seconds", type: .histogram,
                          help: "Time from a request's first byte to the end of its answer, per upstream (answers Huddle makes itself, such as 502, included; an upgrade counts until its 101).",
                          source: .upstreamDuration),
        MetricDeclaration(name: "huddle_health_transitions_total", type: .counter,
                          help: "State changes of a backend server, by the state entered (to=healthy|unhealthy|ejected|draining|disabled).",
                          source: .serverTransitions),
        MetricDeclaration(name: "huddle_health_probes_total", type: .counter, help: "Active health probes started (all servers).",
                          source: .process { Double($0.healthProbes) }),
        MetricDeclaration(name: "huddle_group_migrations_total", type: .counter,
                          help: "Live groups moved to another server with their members closed (WebSocket Close 1012): paced migrations of misplaced groups, and groups a new member moved at once.",
                          source: .upstream { u, _ in Double(u.groups.migrations) }),
        MetricDeclaration(name: "huddle_groups_misplaced", type: .gauge,
                          help: "Live groups whose server is no longer the placement function's answer, waiting to migrate (or staying, with rebalance keep).",
                          source: .upstream { u, now in Double(u.groups.misplaced(nowMs: now, limit: 0).count) }),
        MetricDeclaration(name: "huddle_server_tunnels", type: .gauge, help: "Open upgraded (WebSocket) tunnels to a backend server.",
                          source: .server { Double($0.tunnels.load(ordering: .relaxed)) }),
        MetricDeclaration(name: "huddle_rate_limited_total", type: .counter,
                          help: "Requests (WebSocket upgrades included) answered 429 because their key was over the route's rate_limit.",
                          source: .rateLimit { l, _ in Double(l.limited.load(ordering: .relaxed)) }),
        MetricDeclaration(name: "huddle_rate_limit_keys", type: .gauge,
                          help: "Keys a route's rate-limit table holds whose bucket is not full again (idle keys are dropped).",
                          source: .rateLimit { l, now in Double(l.liveKeys(nowNs: now)) }),
        MetricDeclaration(name: "huddle_rate_limit_table_slots", type: .gauge,
                          help: "The most keys a route's rate-limit table can hold (its fixed size, 8 bytes each).",
                          source: .rateLimit { l, _ in Double(l.slots) }),
        MetricDeclaration(name: "huddle_rate_limit_table_full_total", type: .counter,
                          help: "New keys that found their part of the rate-limit table full and replaced the key nearest to a full bucket (that key starts afresh).",
                          source: .rateLimit { l, _ in Double(l.tableFull.load(ordering: .relaxed)) }),
        MetricDeclaration(name: "huddle_cache_hits_total", type: .counter,
                          help: "Answers from a route's cache while fresh (X-Cache: HIT), collapsed requests served from their leader's response included.",
                          source: .cacheRoute { Double($0.stats.total(.hits)) }),
        MetricDeclaration(name: "huddle_cache_misses_total", type: .counter,
                          help: "Answers on a cached route that came from the backend or from Huddle itself (X-Cache: MISS).",
                          source: .cacheRoute { Double($0.stats.total(.misses)) }),
        MetricDeclaration(name: "huddle_cache_stale_total", type: .counter,
                          help: "Answers from a route's cache past their freshness because the backend failed (X-Cache: STALE, stale-if-error).",
                          source: .cacheRoute { Double($0.stats.total(.stale)) }),
        MetricDeclaration(name: "huddle_cache_collapsed_total", type: .counter,
                          help: "Requests that waited for an identical request's backend answer instead of sending their own (collapsed forwarding).",
                          source: .cacheRoute { Double($0.stats.total(.collapsed)) }),
        MetricDeclaration(name: "huddle_cache_collapse_timeouts_total", type: .counter,
                          help: "Collapsed requests that waited collapse_timeout and went to the backend themselves.",
                          source: .cacheRoute { Double($0.stats.total(.collapseTimeouts)) }),
        MetricDeclaration(name: "huddle_cache_evictions_total", type: .counter,
                          help: "Stored responses evicted (least recently used first) to keep a route's cache within its size.",
                          source: .cacheRoute { Double($0.evictions) }),
        MetricDeclaration(name: "huddle_cache_bytes", type: .gauge,
                          help: "Bytes a route's cache holds against its size: stored heads, bodies and keys, plus a fixed overhead per entry.",
                          source: .cacheRoute { Double($0.bytes) }),
        MetricDeclaration(name: "huddle_cache_entries", type: .gauge, help: "Stored responses (variants included) in a route's cache.",
                          source: .cacheRoute { Double($0.entries) }),
        MetricDeclaration(name: "huddle_cache_waiters", type: .gauge,
                          help: "Requests waiting now for an identical request's backend answer (collapsed forwarding).",
                          source: .workerSum { $0.cacheWaiters }),
        MetricDeclaration(name: "huddle_cache_fills_led", type: .gauge,
                          help: "Backend requests in flight that identical requests may wait on.",
                          source: .workerSum { $0.cacheLeads }),
        MetricDeclaration(name: "huddle_cache_fills", type: .gauge, help: "Responses being stored into a cache as they arrive.",
                          source: .workerSum { $0.cacheFills }),
        MetricDeclaration(name: "huddle_cache_sending", type: .gauge,
                          help: "Stored responses held by exchanges: being sent, or kept to answer if the backend fails.",
                          source: .workerSum { $0.cacheReads }),
        MetricDeclaration(name: "huddle_queue_length", type: .gauge,
                          help: "Requests waiting now in an upstream's queue for a server below its max_conns (every worker's).",
                          source: .upstream { u, _ in Double(u.queue.length.load(ordering: .relaxed)) }),
        MetricDeclaration(name: "huddle_queue_wait_seconds", type: .histogram,
                          help: "Time requests spent in an upstream's queue, counted when they leave it (served, queue_timeout, or the client gone).",
                          source: .upstreamQueueWait),
        MetricDeclaration(name: "huddle_queue_timeouts_total", type: .counter,
                          help: "Requests answered 503 because they were still queued at the upstream's queue_timeout.",
                          source: .upstream { u, _ in Double(u.queue.timeouts.load(ordering: .relaxed)) }),
        MetricDeclaration(name: "huddle_server_max_conns", type: .gauge,
                          help: "A backend server's max_conns: the most requests in flight to it at once (0: no cap).",
                          source: .server { Double($0.maxConns) }),
    ]

    /// Samples for every declared metric, in table order.
    static func collect(_ input: MetricsInput) -> [MetricFamily] {
        all.map { m in
            var samples: [MetricSample] = []
            switch m.source {
            case .server(let value):
                for u in input.runtime.upstreams {
                    for s in u.servers {
                        samples.append(MetricSample(labels: [("upstream", u.name), ("server", s.identity)], value: value(s)))
                    }
                }
            case .upstream(let value):
                for u in input.runtime.upstreams {
                    samples.append(MetricSample(labels: [("upstream", u.name)], value: value(u, input.nowMs)))
                }
            case .workerSum(let value):
                samples.append(MetricSample(labels: [], value: Double(input.workers.map { value($0.figures) }.reduce(0, +))))
            case .worker(let value):
                for w in input.workers {
                    samples.append(MetricSample(labels: [("worker", String(w.worker))], value: value(w)))
                }
            case .reloads:
                samples.append(MetricSample(labels: [("result", "ok")], value: Double(input.reloads.ok)))
                samples.append(MetricSample(labels: [("result", "failed")], value: Double(input.reloads.failed)))
            case .serverStatusClasses:
                for u in input.runtime.upstreams {
                    for s in u.servers {
                        let classes = s.stats.snapshot().classes
                        for (i, n) in classes.enumerated() {
                            samples.append(MetricSample(labels: [("upstream", u.name), ("server", s.identity), ("code", "\(i + 1)xx")], value: Double(n)))
                        }
                    }
                }
            case .serverTransitions:
                for u in input.runtime.upstreams {
                    for s in u.servers {
                        for state in ServerState.allCases {
                            samples.append(MetricSample(labels: [("upstream", u.name), ("server", s.identity), ("to", state.name)],
                                                        value: Double(s.health.transitions(to: state))))
                        }
                    }
                }
            case .upstreamDuration:
                for u in input.runtime.upstreams {
                    samples += histogramSamples(u.stats.snapshot(), labels: [("upstream", u.name)])
                }
            case .upstreamQueueWait:
                for u in input.runtime.upstreams {
                    samples += histogramSamples(u.queue.waits.snapshot(), labels: [("upstream", u.name)])
                }
            case .process(let value):
                samples.append(MetricSample(labels: [], value: value(input)))
            case .rateLimit(let value):
                var order: [String] = []
                var sums: [String: Double] = [:]
                for l in input.runtime.rateLimiters {
                    if sums[l.route] == nil { order.append(l.route) }
                    sums[l.route, default: 0] += value(l, input.nowNs)
                }
                for route in order { samples.append(MetricSample(labels: [("route", route)], value: sums[route]!)) }
            case .cacheRoute(let value):
                var order: [String] = []
                var sums: [String: Double] = [:]
                for c in input.runtime.routeCaches {
                    if sums[c.route] == nil { order.append(c.route) }
                    sums[c.route, default: 0] += value(c)
                }
                for r in order { samples.append(MetricSample(labels: [("route", r)], value: sums[r]!)) }
            }
            return MetricFamily(name: m.name, type: m.type, help: m.help, samples: samples)
        }
    }
}

extension Metrics {
    /// A histogram's samples in the text format's order: cumulative `_bucket`s with `le` (the last `+Inf`), `_sum`,
    /// `_count`. The count is the `+Inf` bucket, so the two agree even while workers add to the shards being read.
    static func histogramSamples(_ s: RequestStats.Snapshot, labels: [(name: String, value: String)]) -> [MetricSample] {
        var out: [MetricSample] = []
        var cumulative = 0
        for (i, n) in s.buckets.enumerated() {
            cumulative += n
            let le = i < RequestStats.bucketBounds.count ? MetricsText.format(RequestStats.bucketBounds[i]) : "+Inf"
            out.append(MetricSample(suffix: "_bucket", labels: labels + [("le", le)], value: Double(cumulative)))
        }
        out.append(MetricSample(suffix: "_sum", labels: labels, value: s.sumSeconds))
        out.append(MetricSample(suffix: "_count", labels: labels, value: Double(cumulative)))
        return out
    }
}

struct MetricSample {
    /// Added to the family's name: `_bucket`, `_sum` and `_count` for a histogram's series; empty otherwise.
    var suffix = ""
    var labels: [(name: String, value: String)]
    var value: Double
}

/// One metric's samples, ready to render.
struct MetricFamily {
    var name: String
    var type: MetricType
    var help: String
    var samples: [MetricSample]
}

/// The Prometheus text exposition format (version 0.0.4).
enum MetricsText {
    static func render(_ families: [MetricFamily]) -> String {
        var out = ""
        for f in families {
            out += "# HELP \(f.name) \(escapeHelp(f.help))\n# TYPE \(f.name) \(f.type.rawValue)\n"
            for s in f.samples {
                out += f.name + s.suffix
                if !s.labels.isEmpty {
                    out += "{" + s.labels.map { "\($0.name)=\"\(escapeLabelValue($0.value))\"" }.joined(separator: ",") + "}"
                }
                out += " " + format(s.value) + "\n"
            }
        }
        return out
    }

    /// Integral values as integers (counters and gauges people compare with `==`), others in Swift's shortest
    /// round-trip form, which Prometheus parses.
    static func format(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v < 0 ? "-Inf" : "+Inf" }
        if v == v.rounded(), abs(v) < 9.0e15 { return String(Int64(v)) }
        return v.description
    }

    /// Label values escape backslash, double quote and line feed (and nothing else) in this format.
    static func escapeLabelValue(_ s: String) -> String { escape(s, quote: true) }

    /// Help text escapes backslash and line feed.
    static func escapeHelp(_ s: String) -> String { escape(s, quote: false) }

    private static func escape(_ s: String, quote: Bool) -> String {
        guard s.unicodeScalars.contains(where: { $0 == "\\" || $0 == "\n" || (quote && $0 == "\"") }) else { return s }
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\"" where quote: out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }
}
