// `GET /`: the dashboard. One self-contained page (inline CSS and JavaScript, nothing fetched from elsewhere) that reads
// /api/backends, /api/config, /api/workers and /api/groups every 2 s and redraws: upstreams, servers coloured by state
// with their load, request and failure rates (from the change between two refreshes), the last health check, groups,
// workers, the config generation and the last reload. Without JavaScript the same page shows a server-rendered table
// that refreshes itself every 5 s.
import HuddleProxy
import HuddleSys

extension AdminServer {
    func dashboard() -> AdminResponse {
        var h = DashboardPage.head
        h += "<noscript>\n" + staticTables() + "</noscript>\n"
        h += DashboardPage.tail
        return AdminResponse(status: 200, contentType: "text/html; charset=utf-8", body: Array(h.utf8))
    }

    /// The page without JavaScript: the current figures as plain tables (the script's view replaces nothing here; a
    /// browser running scripts never shows this part).
    func staticTables() -> String {
        let rt = proxy.runtime
        let info = proxy.reloadInfo
        let workers = proxy.workerStats()
        let now = loop.now
        var h = "<p>Config <code>\(html(rt.config.file))</code>, generation \(info.generation); last reload: "
        h += "<span class=\"\(info.result == "ok" || info.result == "initial load" ? "ok" : "bad")\">\(html(info.result))</span> "
        h += "<small>(\(info.lastReloadMs) ms since the epoch)</small></p>\n"
        for u in rt.upstreams {
            let totals = u.groups.totals(nowMs: now)
            h += "<h2>Upstream <code>\(html(u.name))</code> <small>\(html(u.config.balance.rawValue)), \(totals.groups) groups, \(totals.members) members, \(u.queue.length.load(ordering: .relaxed)) queued</small></h2>\n"
            h += "<table><tr><th>server</th><th>address</th><th>state</th><th>weight</th><th>active</th><th>in flight</th><th>tunnels</th><th>requests</th><th>failures</th><th>latency ms</th><th>groups</th></tr>\n"
            for s in u.servers {
                let state = s.state
                let g = totals.perServer[s.identity]?.groups ?? 0
                h += "<tr><td>\(html(s.identity))</td><td class=\"l\">\(html(s.addressText))</td>"
                h += "<td class=\"l \(state == .healthy ? "ok" : "bad")\">\(state.name)</td><td>\(s.weight)</td>"
                h += "<td>\(s.activeConnections.load(ordering: .relaxed))</td><td>\(s.inFlight.load(ordering: .relaxed))\(s.maxConns > 0 ? " / \(s.maxConns)" : "")</td>"
                h += "<td>\(s.tunnels.load(ordering: .relaxed))</td>"
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
        h += "</table>\n"
        return h
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

/// The page's fixed parts. The script builds every element with `createElement` and puts every value from config or
/// traffic in with `createTextNode`/`setAttribute` (never `innerHTML`), so names, addresses, group keys and error
/// texts cannot become markup.
enum DashboardPage {
    static let head = #"""
    <!doctype html>
    <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Huddle</title>
    <noscript><meta http-equiv="refresh" content="5"></noscript>
    <style>
    :root { --healthy: #1a7f37; --unhealthy: #cf222e; --ejected: #bc4c00; --draining: #9a6700; --disabled: #6e7781; --line: #d8dee4; --muted: #656d76; }
    * { box-sizing: border-box; }
    body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1f2328; background: #f6f8fa; }
    header { display: flex; flex-wrap: wrap; align-items: baseline; gap: .4em 1.5em; padding: .8em 1.5em; background: #fff; border-bottom: 1px solid var(--line); }
    header h1 { font-size: 1.3em; margin: 0; }
    main, noscript, footer { display: block; padding: 0 1.5em; }
    .muted, small { color: var(--muted); }
    .ok { color: var(--healthy); } .bad { color: var(--unhealthy); font-weight: 600; }
    #status.error { color: #fff; background: var(--unhealthy); padding: .1em .6em; border-radius: 4px; }
    .tiles { display: flex; flex-wrap: wrap; gap: .8em; margin: 1em 0; }
    .tile { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .5em 1em; min-width: 9em; }
    .tile b { display: block; font-size: 1.5em; font-variant-numeric: tabular-nums; }
    section { background: #fff; border: 1px solid var(--line); border-radius: 6px; margin: 1em 0; padding: .2em 1em .8em; }
    section h2 { font-size: 1.1em; margin: .6em 0 .4em; }
    table { border-collapse: collapse; width: 100%; }
    th, td { padding: 4px 8px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
    th { font-weight: 600; font-size: .85em; color: var(--muted); }
    td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
    tr.server td:first-child { border-left: 5px solid var(--c); }
    .badge { display: inline-block; color: #fff; background: var(--c); border-radius: 10px; padding: 0 .6em; font-size: .85em; font-weight: 600; }
    .healthy { --c: var(--healthy); } .unhealthy { --c: var(--unhealthy); } .ejected { --c: var(--ejected); }
    .draining { --c: var(--draining); } .disabled { --c: var(--disabled); }
    tr.unhealthy, tr.ejected { background: #fff5f5; } tr.draining { background: #fff8e6; } tr.disabled { background: #f3f4f6; }
    .sub { font-size: .85em; color: var(--muted); }
    .groups { margin-top: .6em; font-size: .9em; }
    .groups span.g { display: inline-block; margin: 2px 6px 2px 0; padding: 1px 8px; border: 1px solid var(--line); border-radius: 10px; background: #f6f8fa; }
    code { font-size: .95em; }
    </style></head><body>
    <header><h1>Huddle</h1><span id="meta" class="muted"></span><span id="status" class="muted">loading…</span></header>
    <main id="app" data-refreshes="0"></main>

    """#

    static let tail = #"""
    <footer><p><small>JSON: <a href="/api/backends">/api/backends</a> · <a href="/api/workers">/api/workers</a> ·
    <a href="/api/config">/api/config</a> · <a href="/metrics">/metrics</a></small></p></footer>
    <script>
    "use strict";
    (function () {
      var PERIOD_MS = 2000;
      var previous = {};      // upstream + "\n" + address -> {t, requests, failures, reqRate, failRate}
      var refreshes = 0;
      var lastGood = null;    // server time of the last successful refresh

      function add(parent, child) {
        if (child === null || child === undefined || child === false) return;
        if (Array.isArray(child)) { child.forEach(function (c) { add(parent, c); }); return; }
        if (typeof child === "object" && child.nodeType) { parent.appendChild(child); return; }
        parent.appendChild(document.createTextNode(String(child)));
      }
      // el("td", {class: "n"}, "text", otherNode...): attributes and text never pass through an HTML parser.
      function el(tag, attrs) {
        var e = document.createElement(tag);
        if (attrs) Object.keys(attrs).forEach(function (k) {
          if (attrs[k] !== null && attrs[k] !== undefined) e.setAttribute(k, String(attrs[k]));
        });
        for (var i = 2; i < arguments.length; i++) add(e, arguments[i]);
        return e;
      }
      function get(path) {
        return fetch(path, {cache: "no-store"}).then(function (r) {
          if (!r.ok) throw new Error(path + " answered " + r.status);
          return r.json();
        });
      }
      function ago(ms) {
        var s = Math.max(0, Math.round(ms / 1000));
        if (s < 90) return s + " s ago";
        if (s < 5400) return Math.round(s / 60) + " min ago";
        if (s < 172800) return Math.round(s / 3600) + " h ago";
        return Math.round(s / 86400) + " d ago";
      }
      function clock(ms) { return new Date(ms).toTimeString().slice(0, 8); }
      function perSecond(v) {
        if (v === null || v === undefined) return "–";
        return (v >= 100 ? Math.round(v).toString() : v.toFixed(1)) + "/s";
      }
      function plural(n, word) { return num(n) + " " + word + (n === 1 ? "" : "s"); }
      function num(v) { return typeof v === "number" ? v.toLocaleString("en-US") : "–"; }

      // Requests, failed attempts and 5xx answers per second, from the change since the previous refresh (server clock).
      function rates(key, s, now) {
        var cur = {requests: s.requests_total, failures: s.failures_total, errors: (s.responses || {})["5xx"] || 0};
        var p = previous[key];
        var r = {requests: null, failures: null, errors: null};
        if (p && now > p.t) {
          var dt = (now - p.t) / 1000;
          Object.keys(r).forEach(function (k) { r[k] = cur[k] >= p.counts[k] ? (cur[k] - p.counts[k]) / dt : null; });
        } else if (p) {
          r = p.rates;
        }
        previous[key] = {t: now, counts: cur, rates: r};
        return r;
      }

      function healthCell(h, now) {
        var lines = [];
        if (!h) return el("td", null, "–");
        if (h.last_check) {
          lines.push(el("div", null,
            el("span", {class: h.last_check === "ok" ? "ok" : "bad"}, h.last_check === "ok" ? "check ok" : "check failed"),
            " ", el("span", {class: "sub", title: new Date(h.last_check_at).toISOString()}, ago(now - h.last_check_at))));
          if (h.last_check_detail) lines.push(el("div", {class: "sub"}, h.last_check_detail));
        } else {
          lines.push(el("div", {class: "sub"}, h.active_checks ? "not checked yet" : "no active checks"));
        }
        if (h.consecutive_failures > 0) lines.push(el("div", {class: "bad"}, h.consecutive_failures + " failures in a row"));
        if (h.ejected_until) {
          lines.push(el("div", {class: "sub"}, "ejected until " + clock(h.ejected_until) + " (ejection " + h.ejections + ")"));
        }
        return el("td", null, lines);
      }

      function serverRow(u, s, now, totals) {
        var key = u.name + "\n" + s.address;
        var r = rates(key, s, now);
        totals.req += r.requests || 0;
        totals.fail += r.failures || 0;
        totals.errors += r.errors || 0;
        var h = s.health || {};
        var stateCell = el("td", null, el("span", {class: "badge " + s.state}, s.state));
        if (s.state !== "healthy" || (h.causes && h.causes.length)) {
          add(stateCell, el("div", {class: "sub"}, h.reason || ""));
          if (h.since) add(stateCell, el("div", {class: "sub", title: new Date(h.since).toISOString()}, "since " + ago(now - h.since)));
        }
        var nameCell = el("td", null, el("strong", null, s.name));
        if (s.name !== s.address) add(nameCell, el("div", {class: "sub"}, s.address));
        return el("tr", {class: "server " + s.state, "data-upstream": u.name, "data-server": s.address, "data-name": s.name, "data-state": s.state},
          stateCell, nameCell,
          el("td", {class: "n"}, num(s.weight)),
          el("td", {class: "n"}, num(s.in_flight), s.max_conns ? el("div", {class: "sub"}, "max " + num(s.max_conns)) : null),
          el("td", {class: "n"}, num(s.active_connections)),
          el("td", {class: "n"}, num(s.tunnels)),
          el("td", {class: "n", "data-rate": "requests"}, perSecond(r.requests), el("div", {class: "sub"}, num(s.requests_total) + " total")),
          el("td", {class: "n" + (r.errors > 0 ? " bad" : ""), "data-rate": "5xx"}, perSecond(r.errors),
            el("div", {class: "sub"}, num((s.responses || {})["5xx"]) + " total")),
          el("td", {class: "n" + (r.failures > 0 ? " bad" : ""), "data-rate": "failures"}, perSecond(r.failures),
            el("div", {class: "sub"}, num(s.failures_total) + " total")),
          el("td", {class: "n"}, s.latency_ewma_ms ? s.latency_ewma_ms.toFixed(1) + " ms" : "–"),
          healthCell(s.health, now),
          el("td", {class: "n"}, num(s.groups), el("div", {class: "sub"}, plural(s.group_members, "member"))));
      }

      function upstreamSection(u, groups, now, totals) {
        var head = el("tr", null, el("th", null, "state"), el("th", null, "server"), el("th", {class: "n"}, "weight"),
          el("th", {class: "n"}, "in flight"), el("th", {class: "n"}, "connections"), el("th", {class: "n"}, "tunnels"),
          el("th", {class: "n"}, "requests"), el("th", {class: "n", title: "answers with status 500-599"}, "5xx"),
          el("th", {class: "n", title: "attempts that failed: connect errors, resets, timeouts"}, "failures"), el("th", {class: "n"}, "latency"),
          el("th", null, "last health check"), el("th", {class: "n"}, "groups"));
        var body = el("tbody", null, u.servers.map(function (s) { return serverRow(u, s, now, totals); }));
        var section = el("section", {"data-upstream": u.name},
          el("h2", null, "Upstream ", el("code", null, u.name), " ",
            el("small", null, u.balance + " · " + plural(u.groups, "group") + " · " + plural(u.group_members, "member")
              + (u.queue ? " · " + num(u.queue) + " queued" : ""))),
          el("table", null, el("thead", null, head), body));
        if (groups && groups.groups && groups.groups.length) {
          var names = {};
          u.servers.forEach(function (s) { names[s.name] = s.name === s.address ? s.address : s.name; });
          add(section, el("div", {class: "groups"}, el("span", {class: "muted"}, "Largest groups: "),
            groups.groups.map(function (g) {
              return el("span", {class: "g", "data-group": g.key, "data-server": g.server},
                el("code", null, g.key), " → " + (names[g.server] || g.server) + " · " + plural(g.members, "member"));
            })));
        }
        return section;
      }

      function workersSection(ws) {
        var rows = (ws.workers || []).map(function (w) {
          return el("tr", null, el("td", null, String(w.worker)), el("td", {class: "n"}, num(w.client_connections)),
            el("td", {class: "n"}, num(w.tunnels)), el("td", {class: "n"}, num(w.backend_connections)),
            el("td", {class: "n"}, num(w.buffers_in_use)), el("td", {class: "n"}, num(w.pipes_in_use)),
            el("td", {class: "n" + (w.stale ? " bad" : "")}, w.age_ms + " ms" + (w.stale ? " (stale)" : "")));
        });
        return el("section", null, el("h2", null, "Workers"),
          el("table", null, el("thead", null, el("tr", null, el("th", null, "worker"), el("th", {class: "n"}, "clients"),
            el("th", {class: "n"}, "tunnels"), el("th", {class: "n"}, "backend connections"), el("th", {class: "n"}, "buffers in use"),
            el("th", {class: "n"}, "pipes in use"), el("th", {class: "n"}, "figures age"))), el("tbody", null, rows)));
      }

      function tile(label, value, cls) { return el("div", {class: "tile"}, el("span", {class: "muted"}, label), el("b", {class: cls || null}, value)); }

      function render(b, cfg, ws, groupsByUpstream) {
        var now = b.now;
        var totals = {req: 0, fail: 0, errors: 0};
        var sections = b.upstreams.map(function (u, i) { return upstreamSection(u, groupsByUpstream[i], now, totals); });
        var sum = function (f) { return (ws.workers || []).reduce(function (a, w) { return a + (w[f] || 0); }, 0); };
        var servers = [].concat.apply([], b.upstreams.map(function (u) { return u.servers; }));
        var up = servers.filter(function (s) { return s.state === "healthy"; }).length;
        var tiles = el("div", {class: "tiles"},
          tile("servers taking traffic", up + " of " + servers.length, up < servers.length ? "bad" : "ok"),
          tile("requests", refreshes > 0 ? perSecond(totals.req) : "–"),
          tile("5xx answers", refreshes > 0 ? perSecond(totals.errors) : "–", totals.errors > 0 ? "bad" : null),
          tile("failed attempts", refreshes > 0 ? perSecond(totals.fail) : "–", totals.fail > 0 ? "bad" : null),
          tile("client connections", num(sum("client_connections"))),
          tile("tunnels", num(sum("tunnels"))),
          tile("backend connections", num(sum("backend_connections"))),
          tile("groups", num(b.upstreams.reduce(function (a, u) { return a + (u.groups || 0); }, 0))));
        var app = document.getElementById("app");
        app.replaceChildren.apply(app, [tiles].concat(sections, [workersSection(ws)]));
        refreshes += 1;
        app.setAttribute("data-refreshes", String(refreshes));

        var good = cfg.result === "ok" || cfg.result === "initial load";
        var meta = document.getElementById("meta");
        meta.replaceChildren("config ", el("code", null, cfg.file), " · generation " + cfg.generation + " · last reload ",
          el("span", {class: good ? "ok" : "bad", id: "reload-result"}, cfg.result),
          " " + ago(now - cfg.last_reload));
        lastGood = now;
        var st = document.getElementById("status");
        st.className = "muted";
        st.textContent = "updated " + clock(now) + " · every " + (PERIOD_MS / 1000) + " s";
      }

      function refresh() {
        Promise.all([get("/api/backends"), get("/api/config"), get("/api/workers")]).then(function (r) {
          var b = r[0];
          return Promise.all(b.upstreams.map(function (u) {
            return get("/api/groups?upstream=" + encodeURIComponent(u.name) + "&top=8").catch(function () { return null; });
          })).then(function (groups) { render(b, r[1], r[2], groups); });
        }).catch(function (e) {
          var st = document.getElementById("status");
          st.className = "error";
          st.textContent = "cannot refresh: " + (e && e.message ? e.message : e) + (lastGood ? " · showing " + clock(lastGood) : "");
        }).then(function () { setTimeout(refresh, PERIOD_MS); });
      }
      refresh();
    })();
    </script>
    </body></html>

    """#
}
