// What to do with a parsed request head: forward it on a route (maybe as an upgrade, maybe with a group key), or
// answer it here. Pure: a function of the snapshot, the head and its bytes; table-tested without sockets.
import HuddleConfig
import HuddleHTTP
import HuddleBalancing

/// How a request asks to switch protocols, as far as its route allows.
enum UpgradeKind: Equatable {
    case none
    case webSocket
    /// Another protocol the route lists in `allow_upgrade`: tunnelled, frames not followed.
    case other
}

enum RoutingDecision {
    case forward(ForwardPlan)
    /// Answer locally: `status`, a short text, and the reason for the error log.
    case answer(LocalAnswer)
}

struct ForwardPlan {
    let route: RouteRuntime
    let upgrade: UpgradeKind
    /// The group key, decoded, and its stable hash; nil when the route has none or the request carried none.
    let groupKey: [UInt8]?
    let groupKeyHash: UInt64
    /// The server (index in the upstream) that the request's sticky cookie names; -1 when the upstream has no sticky
    /// cookie or the request carries no valid one.
    var stickyServer: Int = -1
}

/// A response Huddle writes itself.
struct LocalAnswer: Equatable {
    let status: Int
    let message: String
    /// The error-log line (nil: nothing worth logging beyond the access log).
    let logReason: String?
    /// Close the client connection after the answer (unread body, or a request we cannot trust).
    let close: Bool
    /// Header lines to add, each ending in CRLF.
    var extraHeaders: StaticString = ""
    /// Seconds for a `Retry-After` header (429, 503).
    var retryAfter: Int? = nil

    static func == (a: LocalAnswer, b: LocalAnswer) -> Bool {
        a.status == b.status && a.message == b.message && a.logReason == b.logReason && a.close == b.close
            && a.extraHeaders.description == b.extraHeaders.description && a.retryAfter == b.retryAfter
    }
}

enum RequestRouter {
    private static let slash: [UInt8] = [47]

    static func decide(block: ServerBlockRuntime, head: HTTPRequestHead, bytes: UnsafeRawBufferPointer) -> RoutingDecision {
        // A request whose body we will not read must close the connection: the unread bytes cannot be skipped safely.
        let hasBody = head.bodyFraming != .none
        guard head.method != .connect else {
            // RFC 9110 §15.5.6: a 405 lists the methods that are supported.
            return .answer(LocalAnswer(status: 405, message: "CONNECT is not supported", logReason: "CONNECT is not supported", close: true,
                                       extraHeaders: "Allow: GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, TRACE\r\n"))
        }
        // An absolute-form target without a path means "/" (RFC 9112 §3.2.1); `OPTIONS *` concerns the server as a whole
        // and goes where "/" goes.
        let path = UnsafeRawBufferPointer(rebasing: bytes[head.path])
        let isRoot = path.isEmpty || (path.count == 1 && path[0] == 42)
        let found = isRoot ? Self.slash.withUnsafeBytes { block.route(path: $0) } : block.route(path: path)
        guard let route = found else {
            return .answer(LocalAnswer(status: 404, message: "no route matches this path", logReason: nil, close: hasBody))
        }
        let limit = block.config.maxBodySize
        if limit > 0, case .contentLength(let n) = head.bodyFraming, n > limit {
            return .answer(LocalAnswer(status: 413, message: "request body larger than max_body_size",
                                       logReason: "Content-Length \(n) exceeds max_body_size \(limit)", close: true))
        }
        // Upgrade only to protocols this route allows; otherwise Upgrade is dropped as a hop-by-hop header.
        var upgrade = UpgradeKind.none
        if head.connectionHasUpgrade, let u = head.upgrade, !hasBody {
            var allowed = false
            ASCIIBytes.forEachToken(in: u, of: bytes) { tok in
                for p in route.config.allowUpgrades where equalsIgnoringCase(bytes, tok, p) { allowed = true }
            }
            if allowed {
                if ASCIIBytes.listContainsToken(bytes, u, "websocket") {
                    guard WebSocketHandshake.isUpgradeRequest(head, bytes: bytes) else {
                        return .answer(LocalAnswer(status: 400, message: "malformed WebSocket handshake",
                                                   logReason: "malformed WebSocket handshake", close: true))
                    }
                    upgrade = .webSocket
                } else {
                    upgrade = .other
                }
            }
        }
        var key: [UInt8]? = nil
        if !route.config.groupKeys.isEmpty {
            key = GroupKeyExtractor.extract(route.config.groupKeys, head: head, bytes: bytes)
            if key == nil && route.config.groupKeyMissing == .reject {
                return .answer(LocalAnswer(status: 400, message: "this route needs a group key (\(GroupKeyExtractor.describe(route.config.groupKeys)))",
                                           logReason: "no group key for route \(route.config.prefix)", close: hasBody))
            }
        }
        var plan = ForwardPlan(route: route, upgrade: upgrade, groupKey: key, groupKeyHash: key.map { StableHash.hash64($0) } ?? 0)
        if let sticky = route.upstream.sticky { plan.stickyServer = sticky.serverIndex(head: head, bytes: bytes) }
        return .forward(plan)
    }

    /// Over the route's rate limit: 429 with the seconds until the key has a token again. The connection stays (a
    /// request body, if any, closes it: see `answerAfterHead`).
    static func rateLimited(_ route: RouteRuntime, waitMicros: Int64) -> LocalAnswer {
        let seconds = RateLimitKeys.retryAfterSeconds(waitMicros: waitMicros)
        let limit = route.rateLimit.map { "\($0.config.rateText) burst=\($0.config.burst)" } ?? "-"
        return LocalAnswer(status: 429, message: "over the rate limit of route \(route.config.prefix) (\(limit)); retry in \(seconds) s",
                           logReason: nil, close: false, retryAfter: seconds)
    }
}

/// Case-insensitive comparison of a byte range with a config string (header names, upgrade protocols).
@inline(__always)
func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ s: String) -> Bool {
    var i = range.lowerBound
    for c in s.utf8 {
        guard i < range.upperBound, ASCIIBytes.lowercased(bytes[i]) == ASCIIBytes.lowercased(c) else { return false }
        i += 1
    }
    return i == range.upperBound
}
