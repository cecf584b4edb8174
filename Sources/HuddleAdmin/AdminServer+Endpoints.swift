// The JSON endpoints: each reads the current snapshot, the servers' atomics or the workers' published figures.
import HuddleBalancing
import HuddleJSON
import HuddleProxy
import HuddleSys

extension AdminServer {
    /// `GET /api/lookup?upstream=NAME&key=KEY`: where that group key maps now. The key is bytes (percent-decoded),
    /// exactly as the proxy takes it from a request.
    func lookup(_ q: AdminQuery) -> AdminResponse {
        guard let name = q.string("upstream"), let key = q.bytes("key") else {
            return .error(400, "need ?upstream=NAME&key=KEY")
        }
        guard let u = proxy.runtime.upstream(named: name) else { return .error(404, "no upstream named " + name) }
        let s = u.lookup(key: key, nowMs: loop.now)
        return .json(200) { w in
            w.object { w in
                w.field("upstream", name)
                w.field("key", bytes: key)
                w.field("server", s?.identity)
                w.field("address", s?.addressText)
            }
        }
    }

    /// `GET /api/groups?upstream=NAME&top=N`: the largest live groups and totals per server; the misplaced groups
    /// (their server is no longer the placement function's answer) with where they belong; migration progress.
    func groups(_ q: AdminQuery) -> AdminResponse {
        guard let name = q.string("upstream") else { return .error(400, "need ?upstream=NAME[&top=N]") }
        guard let u = proxy.runtime.upstream(named: name) else { return .error(404, "no upstream named " + name) }
        let now = loop.now
        let top = max(0, min(q.int("top") ?? 20, 100_000))
        let groups = u.groups.top(top, nowMs: now)
        let totals = u.groups.totals(nowMs: now)
        let misplaced = u.groups.misplaced(nowMs: now, limit: top)
        let migration = proxy.migrationStatus(upstream: name)
        let wall = Sys.wallClockMs()
        return .json(200) { w in
            w.object { w in
                w.field("upstream", name)
                w.field("groups", array: { w in
                    for g in groups {
                        w.object { w in
                            w.field("key", bytes: g.key)
                            w.field("server", g.server)
                            w.field("members", g.members)
                            w.field("since", wall - (now - g.sinceMs))
                            w.field("misplaced", g.misplaced)
                        }
                    }
                })
                w.field("misplaced", misplaced.count)
                w.field("misplaced_groups", array: { w in
                    for g in misplaced.groups {
                        w.object { w in
                            w.field("key", bytes: g.key)
                            w.field("server", g.server)
                            w.field("members", g.members)
                            let owner = u.groupOwner(keyHash: StableHash.hash64(g.key), nowMs: now)
                            w.field("owner", owner.map { u.servers[$0].identity })
                        }
                    }
                })
                w.field("migration", object: { w in
                    w.field("rebalance", u.config.rebalance.isMigrate ? "migrate" : "keep")
                    if let r = u.config.rebalance.rate { w.field("rate", r) }
                    w.field("membership_settle_ms", u.config.membershipSettle)
                    w.field("migrations_total", u.groups.migrations)
                    if let m = migration {
                        w.field("view", Int64(truncatingIfNeeded: m.epoch))
                        if let c = m.lastChangeWallMs { w.field("last_change", c) }
                        w.field("misplaced_at_change", m.misplacedAtChange)
                        w.field("moved_since_change", m.movedSinceChange)
                        w.field("pending", m.pending)
                        w.field("settling", array: { w in
                            for s in m.settling {
                                w.object { w in
                                    w.field("server", s.server)
                                    w.field("until", s.untilWallMs)
                                }
                            }
                        })
                    }
                })
                w.field("totals", object: { w in
                    w.field("groups", totals.groups)
                    w.field("members", totals.members)
                    w.field("servers", object: { w in
                        for s in u.servers {
                            let t = totals.perServer[s.identity] ?? (groups: 0, members: 0)
                            w.field(s.identity, object: { w in
                                w.field("groups", t.groups)
                                w.field("members", t.members)
                            })
                        }
                    })
                })
            }
        }
    }

    /// `GET /api/backends`: every upstream's servers with their state, counters and health. Times are milliseconds
    /// since the Unix epoch, as everywhere in this API; `now` is the admin port's clock when it answered.
    func backends() -> AdminResponse {
        let rt = proxy.runtime
        let clock = AdminClock(monotonicMs: loop.now, wallMs: Sys.wallClockMs())
        return .json(200) { w in
            w.object { w in
                w.field("now", clock.wallMs)
                w.field("generation", rt.generation)
                w.field("upstreams", array: { w in
                    for u in rt.upstreams {
                        let totals = u.groups.totals(nowMs: clock.monotonicMs)
                        w.object { w in
                            w.field("name", u.name)
                            w.field("balance", u.config.balance.rawValue)
                            w.field("groups", totals.groups)
                            w.field("group_members", totals.members)
                            w.field("queue", u.queue.length.load(ordering: .relaxed))
                            w.field("queue_timeout_ms", u.config.effectiveQueueTimeout)
                            w.field("queue_timeouts_total", u.queue.timeouts.load(ordering: .relaxed))
                            w.field("servers", array: { w in
                                for (si, s) in u.servers.enumerated() {
                                    let g = totals.perServer[s.identity]
                                    w.object { w in
                                        w.field("address", s.addressText)
                                        w.field("name", s.identity)
                                        w.field("state", s.state.name)
                                        w.field("drain_complete", s.drainComplete)
                                        w.field("weight", s.weight)
                                        w.field("backup", !u.backups.isEmpty && u.backups[si])
                                        w.field("active_connections", s.activeConnections.load(ordering: .relaxed))
                                        w.field("in_flight", s.inFlight.load(ordering: .relaxed))
                                        w.field("max_conns", s.maxConns)
                                        w.field("tunnels", s.tunnels.load(ordering: .relaxed))
                                        w.field("requests_total", s.requestsTotal.load(ordering: .relaxed))
                                        w.field("failures_total", s.failuresTotal.load(ordering: .relaxed))
                                        let classes = s.stats.snapshot().classes
                                        w.field("responses", object: { w in
                                            for (i, n) in classes.enumerated() { w.field("\(i + 1)xx", n) }
                                        })
                                        w.field("latency_ewma_ms", Double(s.latencyEwmaMicros.load(ordering: .relaxed)) / 1000)
                                        w.field("groups", g?.groups ?? 0)
                                        w.field("group_members", g?.members ?? 0)
                                        w.key("health")
                                        HealthJSON.write(s, upstream: u.config, clock: clock, to: &w)
                                    }
                                }
                            })
                        }
                    }
                })
            }
        }
    }

    /// `POST /api/servers/drain|enable?upstream=NAME&address=HOST:PORT` (or `server=NAME`), token checked by the
    /// caller: `{"upstream","server","address","state"}`, 400 without the parameters, 404 for an unknown upstream or
    /// server, 409 for enabling a server the config marks `down`.
    func serverAction(_ action: Proxy.ServerAction, _ q: AdminQuery) -> AdminResponse {
        guard let upstream = q.string("upstream"), !upstream.isEmpty,
              let server = q.string("address") ?? q.string("server"), !server.isEmpty else {
            return .error(400, "need ?upstream=NAME&address=HOST:PORT (or &server=NAME)")
        }
        switch proxy.adminAction(action, upstream: upstream, server: server) {
        case .success(let state):
            let s = proxy.runtime.upstream(named: upstream)?.servers.first { $0.addressText == server || $0.identity == server }
            return .json(200) { w in
                w.object { w in
                    w.field("upstream", upstream)
                    w.field("server", s?.identity ?? server)
                    w.field("address", s?.addressText ?? server)
                    w.field("state", state.name)
                }
            }
        case .failure(let e):
            switch e {
            case .noSuchUpstream, .noSuchServer: return .error(404, e.description)
            case .downInConfig: return .error(409, e.description)
            }
        }
    }

    /// `POST /api/cache/purge?route=PREFIX[&key=PATH?QUERY]`, token checked by the caller: removes the stored responses of
    /// `key` (every variant; the path and query exactly as requests send them) from the cache of every route with that
    /// prefix, or everything those caches hold without `key`. `{"route","key","purged"}`; 400 without `route`, 404 when
    /// no cached route has that prefix. Purging is immediate for every worker (the stores are locked, not posted to).
    func purgeCache(_ q: AdminQuery) -> AdminResponse {
        guard let route = q.string("route"), !route.isEmpty else {
            return .error(400, "need ?route=PREFIX[&key=PATH] (key: the path and query of the URL as requests send it)")
        }
        let key = q.bytes("key")
        if let k = key, k.first != 0x2F {
            return .error(400, "key must be the path and query of a URL, starting with /")
        }
        let caches = proxy.runtime.routeCaches.filter { $0.route == route }
        guard !caches.isEmpty else { return .error(404, "no cached route with prefix " + route) }
        let purged = caches.reduce(0) { $0 + $1.purge(key: key) }
        return .json(200) { w in
            w.object { w in
                w.field("route", route)
                w.field("key", key.map { String(decoding: $0, as: UTF8.self) })
                w.field("purged", purged)
            }
        }
    }

    /// `GET /api/workers`: each worker's last published figures, their age, and whether they are stale.
    func workers() -> AdminResponse {
        let stats = proxy.workerStats()
        return .json(200) { w in
            w.object { w in
                w.field("stale_after_ms", WorkerStats.staleAfterMs)
                w.field("workers", array: { w in
                    for s in stats {
                        w.object { w in
                            w.field("worker", s.worker)
                            w.field("age_ms", s.ageMs)
                            w.field("stale", s.stale)
                            w.field("client_connections", s.figures.sessions)
                            w.field("tunnels", s.figures.tunnels)
                            w.field("backend_connections", s.figures.upstreamConnections)
                            w.field("buffers_in_use", s.figures.buffersInUse)
                            w.field("buffers_cached", s.figures.buffersCached)
                            w.field("pipes_in_use", s.figures.pipesInUse)
                            w.field("pipes_cached", s.figures.pipesCached)
                            w.field("gzip_streams_in_use", s.figures.gzipStreamsInUse)
                            w.field("gzip_streams_cached", s.figures.gzipStreamsCached)
                        }
                    }
                })
            }
        }
    }

    /// `GET /api/config`: the config file, its generation, and the last reload's time and result.
    func configInfo() -> AdminResponse {
        let info = proxy.reloadInfo
        let file = proxy.runtime.config.file
        return .json(200) { w in
            w.object { w in
                w.field("file", file)
                w.field("generation", info.generation)
                w.field("last_reload", info.lastReloadMs)
                w.field("result", info.result)
            }
        }
    }

    /// `GET /metrics`.
    func metricsText() -> String {
        let input = MetricsInput(runtime: proxy.runtime, workers: proxy.workerStats(), nowMs: loop.now, reloads: proxy.reloadCounts,
                                 healthProbes: proxy.healthProbesStarted)
        return MetricsText.render(Metrics.collect(input))
    }
}
