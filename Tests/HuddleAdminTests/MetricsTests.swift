// /metrics: the declaration table (names fixed, unique, typed) and the Prometheus text rendering of values.
@testable import HuddleAdmin
import HuddleConfig
import HuddleProxy
import XCTest

final class MetricsTests: XCTestCase {
    func testRenderingFromATableOfValues() {
        let families = [
            MetricFamily(name: "huddle_x_total", type: .counter, help: "Things done.",
                         samples: [MetricSample(labels: [("upstream", "app"), ("server", "a")], value: 3),
                                   MetricSample(labels: [("upstream", "app"), ("server", "b")], value: 0)]),
            MetricFamily(name: "huddle_y", type: .gauge, help: "A level.", samples: [MetricSample(labels: [], value: 42)]),
            MetricFamily(name: "huddle_age_seconds", type: .gauge, help: "An age.",
                         samples: [MetricSample(labels: [("worker", "0")], value: 0.25), MetricSample(labels: [("worker", "1")], value: 2.5)]),
            MetricFamily(name: "huddle_none", type: .gauge, help: "No samples.", samples: []),
        ]
        XCTAssertEqual(MetricsText.render(families), """
        # HELP huddle_x_total Things done.
        # TYPE huddle_x_total counter
        huddle_x_total{upstream="app",server="a"} 3
        huddle_x_total{upstream="app",server="b"} 0
        # HELP huddle_y A level.
        # TYPE huddle_y gauge
        huddle_y 42
        # HELP huddle_age_seconds An age.
        # TYPE huddle_age_seconds gauge
        huddle_age_seconds{worker="0"} 0.25
        huddle_age_seconds{worker="1"} 2.5
        # HELP huddle_none No samples.
        # TYPE huddle_none gauge

        """)
    }

    func testEscapingFollowsTheTextFormat() {
        XCTAssertEqual(MetricsText.escapeLabelValue(#"a"b\c"# + "\nd"), #"a\"b\\c\nd"#)
        XCTAssertEqual(MetricsText.escapeLabelValue("plain-name_1.2"), "plain-name_1.2")
        XCTAssertEqual(MetricsText.escapeHelp(#"say "x" \ y"# + "\n"), #"say "x" \\ y\n"#)
        let text = MetricsText.render([MetricFamily(name: "huddle_z", type: .gauge, help: "h",
                                                    samples: [MetricSample(labels: [("k", "v\"")], value: 1)])])
        XCTAssertTrue(text.contains(#"huddle_z{k="v\""} 1"#), text)
    }

    func testNumberFormat() {
        XCTAssertEqual(MetricsText.format(0), "0")
        XCTAssertEqual(MetricsText.format(-7), "-7")
        XCTAssertEqual(MetricsText.format(123456789012), "123456789012")
        XCTAssertEqual(MetricsText.format(1.5), "1.5")
        XCTAssertEqual(MetricsText.format(.nan), "NaN")
        XCTAssertEqual(MetricsText.format(.infinity), "+Inf")
    }

    /// Names users rely on: adding is fine, renaming or dropping is not.
    func testTableKeepsEveryPublishedNameOnceWithAValidSpelling() {
        let names = Metrics.all.map(\.name)
        XCTAssertEqual(Set(names).count, names.count, "a name is declared twice")
        let published = ["huddle_server_requests_total", "huddle_server_failures_total", "huddle_server_in_flight",
                         "huddle_server_active_connections", "huddle_groups", "huddle_client_connections", "huddle_tunnels",
                         "huddle_backend_connections", "huddle_buffers_in_use", "huddle_buffers_cached", "huddle_pipes_in_use",
                         "huddle_pipes_cached", "huddle_gzip_streams_in_use", "huddle_gzip_streams_cached",
                         "huddle_worker_stats_age_seconds"]
        for p in published { XCTAssertTrue(names.contains(p), "\(p) is gone") }
        for m in Metrics.all {
            XCTAssertTrue(m.name.hasPrefix("huddle_"), m.name)
            XCTAssertTrue(m.name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }, m.name)
            XCTAssertFalse(m.help.isEmpty, m.name)
            if m.type == .counter { XCTAssertTrue(m.name.hasSuffix("_total"), "counter \(m.name) should end in _total") }
        }
    }

    /// Collection from a real snapshot and published worker figures: sums over workers, stale ones included, and one
    /// age sample per worker.
    func testCollectSumsWorkersAndReportsAges() throws {
        let config = try ConfigParser.parse(text: """
        upstream app { server 127.0.0.1:9 name=a; server 127.0.0.1:10 name=b down; }
        server { listen 127.0.0.1:1; route / { upstream app; } }
        """, file: "t.conf")
        let rt = try RuntimeConfig.build(config, generation: 1, previous: nil, log: { _ in })
        rt.upstreams[0].servers[0].requestsTotal.store(7, ordering: .relaxed)
        let workers = [
            WorkerStats(worker: 0, figures: WorkerFigures(sessions: 3, tunnels: 1, buffersInUse: 2), publishedAtMs: 10_000, nowMs: 10_400),
            WorkerStats(worker: 1, figures: WorkerFigures(sessions: 4, tunnels: 2, pipesCached: 5, gzipStreamsInUse: 1), publishedAtMs: 5_000, nowMs: 10_400),
        ]
        let text = MetricsText.render(Metrics.collect(MetricsInput(runtime: rt, workers: workers, nowMs: 10_400, reloads: (2, 1))))
        let lines = Set(text.split(separator: "\n").map(String.init))
        for want in ["huddle_client_connections 7", "huddle_tunnels 3", "huddle_tunnels_active 3", "huddle_buffers_in_use 2",
                     "huddle_pipes_cached 5", "huddle_gzip_streams_in_use 1", "huddle_backend_connections 0",
                     "huddle_worker_stats_age_seconds{worker=\"0\"} 0.4", "huddle_worker_stats_age_seconds{worker=\"1\"} 5.4",
                     "huddle_server_requests_total{upstream=\"app\",server=\"a\"} 7",
                     "huddle_server_requests_total{upstream=\"app\",server=\"b\"} 0",
                     "huddle_server_up{upstream=\"app\",server=\"a\"} 1", "huddle_server_up{upstream=\"app\",server=\"b\"} 0",
                     "huddle_groups{upstream=\"app\"} 0",
                     "huddle_reloads_total{result=\"ok\"} 2", "huddle_reloads_total{result=\"failed\"} 1"] {
            XCTAssertTrue(lines.contains(want), "missing \(want) in\n\(text)")
        }
        // Every declared family has its HELP and TYPE exactly once.
        for m in Metrics.all {
            XCTAssertEqual(text.components(separatedBy: "# TYPE \(m.name) \(m.type.rawValue)\n").count, 2, m.name)
        }
    }
}

final class MetricsHistogramAndClassesTests: XCTestCase {
    func testHistogramSeriesAreCumulativeWithSumAndCount() {
        let stats = RequestStats(shards: 2)
        stats.record(worker: 0, status: 200, micros: 500)        // <= 0.001
        stats.record(worker: 1, status: 200, micros: 3_000)      // <= 0.005
        stats.record(worker: 0, status: 502, micros: 3_000)
        stats.record(worker: 1, status: 204, micros: 60_000_000) // +Inf
        stats.record(worker: 0, status: 101, micros: nil)        // a class, no duration
        let text = MetricsText.render([MetricFamily(name: "huddle_d_seconds", type: .histogram, help: "d",
                                                    samples: Metrics.histogramSamples(stats.snapshot(), labels: [("upstream", "u")]))])
        let lines = text.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines[1], "# TYPE huddle_d_seconds histogram")
        XCTAssertEqual(lines[2], "huddle_d_seconds_bucket{upstream=\"u\",le=\"0.001\"} 1")
        XCTAssertEqual(lines[3], "huddle_d_seconds_bucket{upstream=\"u\",le=\"0.0025\"} 1")
        XCTAssertEqual(lines[4], "huddle_d_seconds_bucket{upstream=\"u\",le=\"0.005\"} 3")
        XCTAssertTrue(lines.contains("huddle_d_seconds_bucket{upstream=\"u\",le=\"10\"} 3"), text)
        XCTAssertTrue(lines.contains("huddle_d_seconds_bucket{upstream=\"u\",le=\"+Inf\"} 4"), text)
        XCTAssertEqual(lines.suffix(2), ["huddle_d_seconds_sum{upstream=\"u\"} 60.0065", "huddle_d_seconds_count{upstream=\"u\"} 4"])
        XCTAssertEqual(stats.snapshot().classes, [1, 3, 0, 0, 1])
    }

    func testCollectRequestsByClassTransitionsAndProbes() throws {
        let config = try ConfigParser.parse(text: """
        upstream app { server 127.0.0.1:9 name=a; }
        server { listen 127.0.0.1:1; route / { upstream app; } }
        """, file: "t.conf")
        let rt = try RuntimeConfig.build(config, generation: 1, previous: nil, log: { _ in })
        let a = rt.upstreams[0].servers[0]
        for _ in 0..<3 { a.stats.record(worker: 0, status: 200, micros: nil) }
        a.stats.record(worker: 0, status: 502, micros: nil)
        a.health.update(set: .draining, reason: "drain", nowWallMs: 1)
        a.health.update(clear: .draining, reason: "enable", nowWallMs: 2)
        a.health.update(set: .draining, reason: "drain", nowWallMs: 3)
        let text = MetricsText.render(Metrics.collect(MetricsInput(runtime: rt, workers: [], nowMs: 0, reloads: (0, 0), healthProbes: 17)))
        let lines = Set(text.split(separator: "\n").map(String.init))
        for want in ["huddle_requests_total{upstream=\"app\",server=\"a\",code=\"2xx\"} 3",
                     "huddle_requests_total{upstream=\"app\",server=\"a\",code=\"5xx\"} 1",
                     "huddle_requests_total{upstream=\"app\",server=\"a\",code=\"1xx\"} 0",
                     "huddle_health_transitions_total{upstream=\"app\",server=\"a\",to=\"draining\"} 2",
                     "huddle_health_transitions_total{upstream=\"app\",server=\"a\",to=\"healthy\"} 1",
                     "huddle_health_transitions_total{upstream=\"app\",server=\"a\",to=\"ejected\"} 0",
                     "huddle_health_probes_total 17", "huddle_server_up{upstream=\"app\",server=\"a\"} 0",
                     "huddle_server_tunnels{upstream=\"app\",server=\"a\"} 0",
                     "huddle_request_duration_seconds_count{upstream=\"app\"} 0"] {
            XCTAssertTrue(lines.contains(want), "missing \(want) in\n\(text)")
        }
        XCTAssertTrue(lines.contains("huddle_group_migrations_total{upstream=\"app\"} 0"), "the migration counter exists from the start")
        XCTAssertTrue(lines.contains("# TYPE huddle_group_migrations_total counter"))
    }

    /// One sample per rate-limited route prefix (routes with one prefix in two server blocks summed), none for the
    /// others; counters and the key gauge read from the tables.
    func testRateLimitFamiliesPerRoute() throws {
        let config = try ConfigParser.parse(text: """
        upstream app { server 127.0.0.1:9 name=a; }
        server { listen 127.0.0.1:1; route /api/ { upstream app; rate_limit 1/m burst=1; } route / { upstream app; } }
        server { listen 127.0.0.1:2; route /api/ { upstream app; rate_limit 1/m burst=1; } route /ws/ { upstream app; rate_limit 5/s; } }
        """, file: "t.conf")
        let rt = try RuntimeConfig.build(config, generation: 1, previous: nil, log: { _ in })
        XCTAssertEqual(rt.rateLimiters.map(\.route), ["/api/", "/api/", "/ws/"])
        var input = MetricsInput(runtime: rt, workers: [], nowMs: 0, reloads: (0, 0))
        let now = input.nowNs
        for (i, l) in rt.rateLimiters.enumerated() {
            for k in 0..<(i + 2) { _ = l.admit(keyHash: UInt64(k + 1) << 40 | UInt64(k), nowNs: now) }
            l.limited.add(10 * (i + 1), ordering: .relaxed)
        }
        input.healthProbes = 0
        let text = MetricsText.render(Metrics.collect(input))
        let lines = text.split(separator: "\n").map(String.init)
        for want in ["huddle_rate_limited_total{route=\"/api/\"} 30", "huddle_rate_limited_total{route=\"/ws/\"} 30",
                     "huddle_rate_limit_keys{route=\"/api/\"} 5", "huddle_rate_limit_keys{route=\"/ws/\"} 4",
                     "huddle_rate_limit_table_slots{route=\"/api/\"} 131072", "huddle_rate_limit_table_full_total{route=\"/ws/\"} 0",
                     "# TYPE huddle_rate_limited_total counter", "# TYPE huddle_rate_limit_keys gauge"] {
            XCTAssertTrue(lines.contains(want), "missing \(want) in\n\(text)")
        }
        XCTAssertFalse(text.contains("route=\"/\""), "a route without rate_limit has no sample")
        XCTAssertEqual(lines.filter { $0.hasPrefix("huddle_rate_limited_total{") }.count, 2)
    }
}
