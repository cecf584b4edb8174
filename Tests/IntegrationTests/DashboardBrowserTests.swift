// The dashboard in a real browser: headless Chromium loads GET /, runs its script, and the DOM it leaves behind must
// show every server with its state (a drained one, an unhealthy one), rates, the last health check, groups and the
// reload; markup in a group key must stay text. Also takes a screenshot (HUDDLE_DASHBOARD_SCREENSHOT=PATH keeps it).
import Foundation
import Glibc
import HuddleDemo
import HuddleSys
import XCTest

enum Chromium {
    static let candidates = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome", "/usr/bin/google-chrome-stable"]

    static func find() -> String? {
        if let c = ProcessInfo.processInfo.environment["CHROMIUM"], FileManager.default.isExecutableFile(atPath: c) { return c }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    nonisolated(unsafe) private static var installAttempt: String?

    /// The browser, installed with apt-get (Debian's `chromium`) when missing; skips the test, saying why, only when it
    /// truly cannot be had.
    static func ensure() throws -> String {
        if let c = find() { return c }
        if let failed = installAttempt { throw XCTSkip(failed) }
        print("DashboardBrowserTests: chromium is missing; installing Debian's chromium package with apt-get")
        let root = getuid() == 0
        let prefix = root ? ["/usr/bin/env"] : ["/usr/bin/sudo", "-n", "/usr/bin/env"]
        var log = ""
        for args in [["DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q", "chromium"],
                     ["DEBIAN_FRONTEND=noninteractive", "apt-get", "update", "-q"],
                     ["DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q", "chromium"]] {
            guard FileManager.default.isExecutableFile(atPath: prefix[0]) else { break }
            let r = try Harness.run(prefix[0], Array(prefix.dropFirst()) + args, timeout: 900)
            log += "\(args.dropFirst().joined(separator: " ")): exit \(r.status) \(r.stderr.suffix(300))\n"
            if let c = find() { return c }
        }
        let message = "chromium is not installed and could not be installed with apt-get (\(root ? "as root" : "sudo -n")):\n\(log)"
        installAttempt = message
        throw XCTSkip(message)
    }
}

final class DashboardBrowserTests: HuddleTestCase {
    private var browser = ""

    override func setUpWithError() throws {
        try super.setUpWithError()
        browser = try Chromium.ensure()
    }

    /// Runs headless Chromium with a fresh profile; `mode` is `--dump-dom` or `--screenshot=PATH`.
    private func chromium(_ url: String, _ mode: String, budgetMs: Int = 5000) throws -> Harness.CommandResult {
        let profile = Harness.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: profile) }
        return try Harness.run(browser, ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                                         "--user-data-dir=\(profile.path)", "--hide-scrollbars", "--window-size=1400,1050",
                                         "--virtual-time-budget=\(budgetMs)", mode, url], timeout: 120)
    }

    private static func decodeEntities(_ s: String) -> String {
        s.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&#39;", with: "'")
            .replacingOccurrences(of: "&amp;", with: "&")
    }

    /// `data-*` attributes of the start tag at the beginning of `tag`.
    private static func dataAttributes(_ tag: String) -> [String: String] {
        var out: [String: String] = [:]
        let re = try! NSRegularExpression(pattern: #"data-([a-z-]+)="([^"]*)""#)
        for m in re.matches(in: tag, range: NSRange(tag.startIndex..., in: tag)) {
            let k = String(tag[Range(m.range(at: 1), in: tag)!]), v = String(tag[Range(m.range(at: 2), in: tag)!])
            out[k] = decodeEntities(v)
        }
        return out
    }

    private static func matches(_ pattern: String, in text: String) -> [[String]] {
        let re = try! NSRegularExpression(pattern: pattern, options: [.dotMatchesLineSeparators])
        return re.matches(in: text, range: NSRange(text.startIndex..., in: text)).map { m in
            (0..<m.numberOfRanges).map { Range(m.range(at: $0), in: text).map { String(text[$0]) } ?? "" }
        }
    }

    func testDashboardRendersServersStatesGroupsAndRatesInABrowser() throws {
        let a = try Harness.startBackend("web-a")
        let b = try Harness.startBackend("web-b")
        defer { a.stop(); b.stop() }
        let pa = a.boundAddresses[0].port, pb = b.boundAddresses[0].port
        let dead = Harness.freePort()
        let h = try HuddleProcess(config: """
        admin 127.0.0.1:{ADMIN} { token "d4sh"; }
        upstream web {
            balance round_robin;
            health_check tcp interval=300ms timeout=300ms rise=1 fall=1;
            server 127.0.0.1:\(pa) name=web-a;
            server 127.0.0.1:\(pb) name=web-b;
            server 127.0.0.1:\(dead) name=web-c;
        }
        upstream chat {
            balance hash;
            server 127.0.0.1:\(pa) name=chat-a;
            server 127.0.0.1:\(pb) name=chat-b;
        }
        server {
            listen 127.0.0.1:{PORT};
            route /rooms/ { upstream chat; group_key path 2; }
            route / { upstream web; }
        }
        """, workers: 2)
        let proxy = SocketAddress(ip: "127.0.0.1", port: h.port)!

        // web-b drained, web-c unhealthy (nothing listens there), a few groups, one whose key is markup.
        XCTAssertEqual(try Admin.request(h, "POST", "/api/servers/drain?upstream=web&address=127.0.0.1:\(pb)", token: "d4sh").status, 200)
        XCTAssertNotNil(Admin.waitForServer(h, "web", "127.0.0.1:\(dead)") { $0["state"] as? String == "unhealthy" }.flatMap {
            $0["state"] as? String == "unhealthy" ? $0 : nil
        }, "web-c never became unhealthy")
        let markup = #"<img src=x onerror="document.title='pwned'">"#
        let markupPath = markup.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        var sockets: [DemoWebSocketClient] = []
        for room in ["lobby", "lobby", "lobby", "game-42", markupPath] {
            sockets.append(try DemoWebSocketClient(address: proxy, path: "/rooms/\(room)/ws"))
        }
        let client = try DemoHTTPClient(address: proxy)
        for _ in 0..<6 { XCTAssertEqual(try client.request("GET", "/").status, 200) }

        // Traffic while the page refreshes, so the rates have something to show.
        let stop = SharedValue(false)
        let traffic = Thread {
            guard let c = try? DemoHTTPClient(address: proxy) else { return }
            while !stop.value {
                _ = try? c.request("GET", "/")
                usleep(20_000)
            }
            c.close()
        }
        traffic.start()
        defer {
            stop.value = true
            while !traffic.isFinished { usleep(5_000) }
        }

        let r = try chromium(h.adminURL + "/", "--dump-dom")
        XCTAssertEqual(r.status, 0, r.stderr.suffix(2000).description)
        let dom = r.text
        // Only what the script drew: <main id="app">, not the <noscript> fallback.
        let main = try XCTUnwrap(Self.matches(#"<main id="app"[^>]*>.*?</main>"#, in: dom).first?.first, "no <main id=app> in\n\(dom)")
        let refreshes = Int(Self.matches(#"data-refreshes="(\d+)""#, in: main).first?[1] ?? "") ?? 0
        XCTAssertGreaterThanOrEqual(refreshes, 2, "the script should have refreshed at least twice in 5 s of page time")

        var rows: [String: (attributes: [String: String], html: String)] = [:]
        for m in Self.matches(#"(<tr class="server[^>]*>)(.*?)</tr>"#, in: main) {
            let attrs = Self.dataAttributes(m[1])
            rows["\(attrs["upstream"] ?? "?") \(attrs["name"] ?? "?")"] = (attrs, m[2])
        }
        XCTAssertEqual(Set(rows.keys), ["web web-a", "web web-b", "web web-c", "chat chat-a", "chat chat-b"], main)
        XCTAssertEqual(rows["web web-a"]?.attributes["state"], "healthy")
        XCTAssertEqual(rows["web web-b"]?.attributes["state"], "draining")
        XCTAssertEqual(rows["web web-c"]?.attributes["state"], "unhealthy")
        XCTAssertEqual(rows["web web-b"]?.attributes["server"], "127.0.0.1:\(pb)")
        XCTAssertTrue(rows["web web-b"]?.html.contains(">draining<") ?? false, rows["web web-b"]?.html ?? "")
        XCTAssertTrue(rows["web web-b"]?.html.contains("drained through the admin port") ?? false, rows["web web-b"]?.html ?? "")
        XCTAssertTrue(rows["web web-c"]?.html.contains("check failed") ?? false, rows["web web-c"]?.html ?? "")
        XCTAssertTrue(rows["web web-a"]?.html.contains("check ok") ?? false, rows["web web-a"]?.html ?? "")
        XCTAssertTrue(rows["chat chat-a"]?.html.contains("no active checks") ?? false, rows["chat chat-a"]?.html ?? "")
        // Rates exist from the second refresh on: "N/s", not the first render's dash.
        for (key, row) in rows {
            let rate = Self.matches(#"data-rate="requests"[^>]*>([^<]*)<"#, in: row.html).first?[1] ?? ""
            XCTAssertNotNil(rate.range(of: #"^\d+(\.\d)?/s$"#, options: .regularExpression), "\(key): requests rate \(rate.debugDescription)")
        }
        // Tunnels per server add up to the five WebSockets.
        let tunnelCounts = rows.filter { $0.key.hasPrefix("chat ") }.map { row -> Int in
            let cells = Self.matches(#"<td class="n">([0-9]+)</td>"#, in: row.value.html).map { Int($0[1]) ?? 0 }
            return cells.count >= 4 ? cells[3] : -1   // weight, in flight, connections, tunnels
        }
        XCTAssertEqual(tunnelCounts.reduce(0, +), 5, main)

        // Groups, the markup one as text only: no element was made from it, and its onerror never ran.
        let groups = Self.matches(#"<span class="g"[^>]*>"#, in: main).map { Self.dataAttributes($0[0]) }
        XCTAssertEqual(Set(groups.compactMap { $0["group"] }), ["lobby", "game-42", markup], main)
        XCTAssertTrue(main.contains("&lt;img src=x onerror="), main)
        XCTAssertFalse(dom.contains("<img"), "an element was made from a group key:\n\(dom)")
        XCTAssertTrue(dom.contains("<title>Huddle</title>"), "the group key's onerror ran: \(Self.matches("<title>.*?</title>", in: dom))")
        XCTAssertEqual(Self.matches(#"<span class="ok" id="reload-result">([^<]*)<"#, in: dom).first?[1], "initial load", dom)
        XCTAssertTrue(dom.contains("generation 1"), dom)

        // A screenshot: a PNG of a plausible size.
        let png = Harness.temporaryDirectory().appendingPathComponent("dashboard.png")
        let shot = try chromium(h.adminURL + "/", "--screenshot=\(png.path)", budgetMs: 5000)
        XCTAssertEqual(shot.status, 0, shot.stderr.suffix(2000).description)
        let data = try Data(contentsOf: png)
        XCTAssertEqual(Array(data.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], "not a PNG")
        XCTAssertGreaterThan(data.count, 20_000)
        if let keep = ProcessInfo.processInfo.environment["HUDDLE_DASHBOARD_SCREENSHOT"] {
            try? FileManager.default.removeItem(atPath: keep)
            try FileManager.default.copyItem(at: png, to: URL(fileURLWithPath: keep))
            print("DashboardBrowserTests: screenshot kept at \(keep)")
        }
        try? FileManager.default.removeItem(at: png.deletingLastPathComponent())
        client.close()
        for s in sockets { s.disconnect() }
    }
}

/// A value shared with a background thread.
// SAFETY: every access to `v` holds the mutex.
final class SharedValue<T>: @unchecked Sendable {
    private var v: T
    private var m = pthread_mutex_t()
    init(_ v: T) {
        self.v = v
        pthread_mutex_init(&m, nil)
    }
    var value: T {
        get { pthread_mutex_lock(&m); defer { pthread_mutex_unlock(&m) }; return v }
        set { pthread_mutex_lock(&m); v = newValue; pthread_mutex_unlock(&m) }
    }
}
