// `GET /`: a small HTML dashboard (upstreams and servers, workers, the last reload) that refreshes itself.
import HuddleProxy
import HuddleSys

extension AdminServer {
    func dashboard() -> AdminResponse {
        let rt = proxy.runtime
        let info = proxy.reloadInfo
        let workers = proxy.workerStats()
        let now = loop.now
        var h = """
        <!doctype html>
        <html><head><meta charset="utf-8"><meta http-equiv="refresh" content="5"><title>Huddle</title>
        <style>
        body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
        table { border-collapse: collapse; margin: .5em 0 1.5em; } th, td { padding: 3px 10px; border-bottom: 1px solid #ddd; text-align: right; }
        th:first-child, td:first-child, td.l { text-align: left; } .bad { color: #b00; } .ok { color: #070; } small { color: #777; }
        </style></head><body>
        <h1>Huddle</h1>

        """
        h += "<p>Config <code>\(html(rt.config.file))</code>, generation \(info.generation); last reload: "
        h += "<span class=\"\(info.result == "ok" || info.result == "initial load" ? "ok" : "bad")\">\(html(info.result))</span> "
        h += "<small>(\(info.lastReloadMs) ms since the epoch)</small></p>\n"
        for u in rt.upstreams {
            let totals = u.groups.totals(nowMs: now)
            h += "<h2>Upstream <code>\(html(u.name))</code> <small>\(html(u.config.balance.rawValue)), \(totals.groups) groups, \(totals.members) members</small></h2>\n"
            h += "<table><tr><th>server</th><th>address</th><th>state</th><th>weight</th><th>active</th><th>in flight</th><th>requests</th><th>failures</th><th>latency ms</th><th>groups</th></tr>\n"
            for s in u.servers {
                let state = s.state
                let g = totals.perServer[s.identity]?.groups ?? 0
                h += "<tr><td>\(html(s.identity))</td><td class=\"l\">\(html(s.addressText))</td>"
                h += "<td class=\"l \(state == .healthy ? "ok" : "bad")\">\(state.name)</td><td>\(s.weight)</td>"
                h += "<td>\(s.activeConnections.load(ordering: .relaxed))</td><td>\(s.inFlight.load(ordering: .relaxed))</td>"
                h += "<td>\(s.requestsTotal.load(ordering: .relaxed))</td><td>\(s.failuresTotal.load(ordering: .relaxed))</td>"
                h += "<td>\(Double(s.latencyEwmaMicros.load(ordering: .relaxed)) / 1000)</td><td>\(g)</td></tr>\n"
            }
            h += "</table>\n"
        }
        h += "<h2>Workers</h2>\n<table><tr><th>worker</th><th>clients</th><th>tunnels</th><th>backend conns</th><th>buffers in use</th><th>pipes in use</th><th>figures age</th></tr>\n"
        for w in workers {
            let f = w.figures
            h += "<tr><td>\(w.worker)</td><td>\(f.sessions)</td><td>\(f.tunnels)</td><td>\(f.upstreamConnections)</td><td>\(f.buffersInUse)</td><td>\(f.pipesInUse)</td>"
            h += "<td class=\"\(w.stale ? "bad" : "ok")\">\(w.ageMs) ms\(w.stale ? " (stale)" : "")</td></tr>\n"
        }
        h += "</table>\n<p><small>JSON: <a href=\"/api/backends\">/api/backends</a> · <a href=\"/api/workers\">/api/workers</a> · "
        h += "<a href=\"/api/config\">/api/config</a> · <a href=\"/metrics\">/metrics</a></small></p>\n</body></html>\n"
        return AdminResponse(status: 200, contentType: "text/html; charset=utf-8", body: Array(h.utf8))
    }

    private func html(_ s: String) -> String { HTMLText.escape(s) }
}

enum HTMLText {
    /// Text for HTML element content and quoted attribute values.
    static func escape(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }
}
