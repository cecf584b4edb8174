// What a demo request asks for, decided from its head (with the few bytes each answer needs copied out of it).
import HuddleHTTP

enum TextType {
    case plain, json, html

    var contentType: StaticString {
        switch self {
        case .plain: return "text/plain; charset=utf-8"
        case .json: return "application/json"
        case .html: return "text/html; charset=utf-8"
        }
    }
}

enum DemoRoute {
    case hello
    case healthz
    case stats
    /// `GET /stats/rooms`: the chat rooms this backend holds and their member counts.
    case roomStats
    case bytes(Int64, chunked: Bool)
    /// N bytes of compressible JSON-like text (DemoContent.text) as text/plain, application/json or text/html.
    case text(Int64, chunked: Bool, type: TextType)
    case echo
    case headers([UInt8])
    case hang
    case slow(Int64)
    case close
    case status(Int)
    case roomPage([UInt8])
    /// A valid upgrade: the room (nil for the echo service) and the Sec-WebSocket-Accept value.
    case webSocket(room: [UInt8]?, accept: String)
    case badRequest
    case upgradeRequired

    static func classify(_ head: HTTPRequestHead, _ p: UnsafeRawBufferPointer) -> DemoRoute {
        let path = head.path
        let method = head.method
        let wantsWebSocket = head.upgrade.map { ASCIIBytes.listContainsToken(p, $0, "websocket") } ?? false
            || head.firstHeader(.secWebSocketKey) != nil
        if wantsWebSocket {
            guard WebSocketHandshake.isUpgradeRequest(head, bytes: p), head.bodyFraming == .none,
                  let key = head.firstHeader(.secWebSocketKey) else { return .badRequest }
            let accept = WebSocketHandshake.acceptValue(forKey: UnsafeRawBufferPointer(rebasing: p[key.value]))
            return .webSocket(room: roomName(p, path, ws: true), accept: accept)
        }
        if method == .post || method == .put {
            return equals(p, path, "/echo") ? .echo : .hello
        }
        if method != .get && method != .head { return .hello }
        if equals(p, path, "/healthz") { return .healthz }
        if equals(p, path, "/stats") { return .stats }
        if equals(p, path, "/stats/rooms") { return .roomStats }
        if equals(p, path, "/headers") { return .headers(Array(p[0..<head.headLength])) }
        if equals(p, path, "/hang") { return .hang }
        if equals(p, path, "/close") { return .close }
        if equals(p, path, "/slow") {
            let ms = head.query.flatMap { queryValue(p, $0, "ms") }.flatMap { decimal(p, $0) } ?? 1000
            return .slow(min(ms, 600_000))
        }
        if let n = suffix(p, path, after: "/bytes/") {
            guard let count = decimal(p, n) else { return .badRequest }
            let chunked = head.query.flatMap { queryValue(p, $0, "chunked") }.map { equals(p, $0, "1") } ?? false
            return .bytes(count, chunked: chunked)
        }
        if let n = suffix(p, path, after: "/text/") {
            guard let count = decimal(p, n) else { return .badRequest }
            let chunked = head.query.flatMap { queryValue(p, $0, "chunked") }.map { equals(p, $0, "1") } ?? false
            let type: TextType = head.query.flatMap { queryValue(p, $0, "type") }.map { t in
                equals(p, t, "json") ? .json : equals(p, t, "html") ? .html : .plain
            } ?? .plain
            return .text(count, chunked: chunked, type: type)
        }
        if let n = suffix(p, path, after: "/status/") {
            guard let code = decimal(p, n), code >= 200 && code <= 599 else { return .badRequest }
            return .status(Int(code))
        }
        if let room = roomName(p, path, ws: false) { return .roomPage(room) }
        if roomName(p, path, ws: true) != nil { return .upgradeRequired }
        return .hello
    }

    /// ROOM from /rooms/ROOM (or /rooms/ROOM/ws when `ws`), percent-decoded like the proxy's path group keys.
    static func roomName(_ p: UnsafeRawBufferPointer, _ path: Range<Int>, ws: Bool) -> [UInt8]? {
        guard var rest = suffix(p, path, after: "/rooms/") else { return nil }
        if ws {
            guard rest.count > 3, equals(p, (rest.upperBound - 3)..<rest.upperBound, "/ws") else { return nil }
            rest = rest.lowerBound..<(rest.upperBound - 3)
        } else if rest.count > 1 && p[rest.upperBound - 1] == UInt8(ascii: "/") {
            rest = rest.lowerBound..<(rest.upperBound - 1)
        }
        if rest.isEmpty || p[rest].contains(UInt8(ascii: "/")) { return nil }
        let raw = p[rest]
        return GroupKeyBytes.percentDecode(raw, plusAsSpace: false) ?? Array(raw)
    }

    static func equals(_ p: UnsafeRawBufferPointer, _ r: Range<Int>, _ s: StaticString) -> Bool {
        guard r.count == s.utf8CodeUnitCount else { return false }
        let lit = UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount)
        return p[r].elementsEqual(lit)
    }

    /// The rest of `r` after the literal prefix, or nil when it does not start with it (or nothing follows).
    static func suffix(_ p: UnsafeRawBufferPointer, _ r: Range<Int>, after s: StaticString) -> Range<Int>? {
        let n = s.utf8CodeUnitCount
        guard r.count > n, equals(p, r.lowerBound..<(r.lowerBound + n), s) else { return nil }
        return (r.lowerBound + n)..<r.upperBound
    }

    static func decimal(_ p: UnsafeRawBufferPointer, _ r: Range<Int>) -> Int64? {
        guard !r.isEmpty, r.count <= 15 else { return nil }
        var v: Int64 = 0
        for b in p[r] {
            guard b >= 0x30 && b <= 0x39 else { return nil }
            v = v * 10 + Int64(b - 0x30)
        }
        return v
    }

    static func queryValue(_ p: UnsafeRawBufferPointer, _ query: Range<Int>, _ name: StaticString) -> Range<Int>? {
        var start = query.lowerBound
        while start <= query.upperBound {
            var end = start
            while end < query.upperBound && p[end] != UInt8(ascii: "&") { end += 1 }
            var eq = start
            while eq < end && p[eq] != UInt8(ascii: "=") { eq += 1 }
            if equals(p, start..<eq, name) { return eq < end ? (eq + 1)..<end : end..<end }
            start = end + 1
        }
        return nil
    }
}
