// Bodies the demo backend serves: the /bytes pattern, the /text corpus, JSON and HTML escaping, and the chat room page.
import HuddleJSON

enum DemoContent {
    /// Byte i of every /bytes body is i % 251; any run of up to 64 KiB starting at offset (i % 251) is a slice
    /// of this table, so bodies stream straight from it without being built.
    static let pattern = PatternTable()

    /// SAFETY: written once in `init`, read-only afterwards, never freed (it lives as long as the process).
    final class PatternTable: @unchecked Sendable {
        let base: UnsafeRawPointer
        let count = 65536 + 256
        init() {
            let p = UnsafeMutablePointer<UInt8>.allocate(capacity: count)
            for i in 0..<count { p[i] = UInt8(i % 251) }
            base = UnsafeRawPointer(p)
        }
    }

    /// Every /text body is a run of this table from its start: 1 MiB of JSON-like records (seeded, so the same on
    /// every run and machine) that compress like real API responses (about 4-5x with gzip), repeated; like the
    /// pattern, the table carries 64 KiB more than a period so a write of up to 64 KiB from any offset is one slice.
    static let text = TextTable()

    /// SAFETY: written once in `init`, read-only afterwards, never freed (it lives as long as the process).
    final class TextTable: @unchecked Sendable {
        static let period = 1 << 20
        let base: UnsafeRawPointer
        let count = TextTable.period + 65536
        init() {
            let words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
                         "kilo", "lima", "mike", "november", "oscar", "papa"]
            var bytes: [UInt8] = []
            bytes.reserveCapacity(count + 256)
            var state: UInt64 = 0x5EED
            func next() -> UInt64 {
                state &+= 0x9E37_79B9_7F4A_7C15
                var z = state
                z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                return z ^ (z >> 31)
            }
            bytes.append(UInt8(ascii: "["))
            var id = 0
            while bytes.count < TextTable.period {
                let r = next()
                let w = words[Int(r & 15)], v = words[Int(r >> 4 & 15)]
                let record = "{\"id\":\(id),\"name\":\"\(w) \(v)\",\"email\":\"\(w).\(r >> 44)@example.com\",\"score\":\(r >> 8 & 0xFFFFF),"
                    + "\"active\":\(r & 256 == 0),\"tags\":[\"\(v)\",\"\(words[Int(r >> 12 & 15)])\"],\"ts\":\(1_700_000_000 + (r >> 20 & 0xFFFFFF))},\n"
                bytes += Array(record.utf8)
                id += 1
            }
            bytes.removeLast(bytes.count - TextTable.period)
            bytes += bytes[0..<65536]
            let p = UnsafeMutablePointer<UInt8>.allocate(capacity: count)
            p.initialize(from: bytes, count: count)
            base = UnsafeRawPointer(p)
        }
    }

    /// The inside of a JSON string (the one escaper, HuddleJSON; invalid UTF-8 becomes U+FFFD).
    static func jsonEscaped(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        bytes.withUnsafeBytes { JSONEscaping.appendQuoted($0, to: &out) }
        return Array(out.dropFirst().dropLast())
    }

    /// A JSON string body that can also sit inside an inline `<script>`: `<` (which JSON leaves alone) becomes
    /// `\u003c`, so the text cannot end the script element.
    static func scriptSafeJSONEscaped(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        for b in jsonEscaped(bytes) {
            if b == 0x3C { out += Array("\\u003c".utf8) } else { out.append(b) }
        }
        return out
    }

    static func htmlEscaped(_ bytes: some Sequence<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        for b in bytes {
            switch b {
            case 0x26: out += Array("&amp;".utf8)
            case 0x3C: out += Array("&lt;".utf8)
            case 0x3E: out += Array("&gt;".utf8)
            case 0x22: out += Array("&quot;".utf8)
            case 0x27: out += Array("&#39;".utf8)
            default: out.append(b)
            }
        }
        return out
    }

    static func welcome(backend: String, room: [UInt8], members: Int) -> [UInt8] {
        Array("{\"type\":\"welcome\",\"backend\":\"".utf8) + jsonEscaped(Array(backend.utf8))
            + Array("\",\"room\":\"".utf8) + jsonEscaped(room) + Array("\",\"members\":\(members)}".utf8)
    }

    static func chatMessage(backend: String, text: [UInt8]) -> [UInt8] {
        Array("{\"type\":\"message\",\"backend\":\"".utf8) + jsonEscaped(Array(backend.utf8))
            + Array("\",\"text\":\"".utf8) + jsonEscaped(text) + Array("\"}".utf8)
    }

    static func roomPage(backend: String, room: [UInt8]) -> [UInt8] {
        let roomHTML = String(decoding: htmlEscaped(room), as: UTF8.self)
        let backendHTML = String(decoding: htmlEscaped(Array(backend.utf8)), as: UTF8.self)
        let roomJS = String(decoding: scriptSafeJSONEscaped(room), as: UTF8.self)
        let page = """
        <!doctype html>
        <html><head><meta charset="utf-8"><title>Huddle room \(roomHTML)</title>
        <style>
        body { font: 15px system-ui, sans-serif; margin: 2em auto; max-width: 42em; color: #222; }
        #log { border: 1px solid #ccc; border-radius: 6px; height: 22em; overflow-y: auto; padding: .5em; background: #fafafa; }
        #log div { padding: 2px 0; } .sys { color: #777; } form { display: flex; gap: .5em; margin-top: .5em; }
        #text { flex: 1; padding: .4em; }
        </style></head>
        <body>
        <h1>Room <code>\(roomHTML)</code></h1>
        <p>This page was served by <b>\(backendHTML)</b>. Its WebSocket goes to <code id="url"></code> (room on <b id="backend">?</b>): <span id="state">connecting</span></p>
        <div id="log"></div>
        <form id="form"><input id="text" autocomplete="off" placeholder="say something" autofocus><button>Send</button></form>
        <script>
        (function () {
          var room = "\(roomJS)";
          var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/rooms/" + encodeURIComponent(room) + "/ws";
          document.getElementById("url").textContent = url;
          var log = document.getElementById("log"), state = document.getElementById("state");
          function line(text, cls) {
            var d = document.createElement("div");
            d.textContent = text;
            if (cls) d.className = cls;
            log.appendChild(d);
            log.scrollTop = log.scrollHeight;
          }
          // The client contract (README): Close 1012 means the room moved to another server, 1001 that the server is
          // going away; both say "reconnect", after a short random wait so that a whole room does not come back in the
          // same millisecond. Any other unexpected end reconnects with a growing delay.
          var ws, moved = false, backoff = 1000;
          function connect() {
            ws = new WebSocket(url);
            ws.onopen = function () { state.textContent = "connected"; backoff = 1000; };
            ws.onclose = function (e) {
              if (e.code === 1012 || e.code === 1001) {
                moved = e.code === 1012;
                var delay = 100 + Math.floor(Math.random() * 900);
                state.textContent = moved ? "moving" : "reconnecting";
                line((moved ? "the room is moving to another server" : "the server is going away") + " (" + e.code + "); reconnecting in " + delay + " ms", "sys");
                setTimeout(connect, delay);
                return;
              }
              if (e.code === 1000) { state.textContent = "closed (1000)"; line("connection closed", "sys"); return; }
              state.textContent = "closed (" + e.code + "), reconnecting";
              line("connection lost (" + e.code + "); reconnecting in " + Math.round(backoff / 1000) + " s", "sys");
              setTimeout(connect, backoff);
              backoff = Math.min(backoff * 2, 30000);
            };
            ws.onmessage = function (e) {
              var m;
              try { m = JSON.parse(e.data); } catch (_) { line(e.data); return; }
              if (m.type === "welcome") {
                line((moved ? "moved to " : "joined " + m.room + " on ") + m.backend + " (" + m.members + " here)", "sys");
                document.getElementById("backend").textContent = m.backend;
                moved = false;
              }
              else if (m.type === "message") line("[" + m.backend + "] " + m.text);
              else line(e.data);
            };
          }
          connect();
          document.getElementById("form").onsubmit = function (e) {
            e.preventDefault();
            var t = document.getElementById("text");
            if (t.value && ws.readyState === 1) { ws.send(t.value); t.value = ""; }
          };
        })();
        </script>
        </body></html>

        """
        return Array(page.utf8)
    }
}
