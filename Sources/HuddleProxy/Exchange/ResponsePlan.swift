// How a backend's final response is passed on: its body framing, the Connection header the client gets, and whether
// either connection survives it. Pure and table-tested.
import HuddleHTTP

struct ResponsePlan: Equatable {
    enum ConnectionHeader: Equatable {
        /// HTTP/1.1 keep-alive is the default: say nothing.
        case none
        case close
        /// An HTTP/1.0 client must be told explicitly that the connection stays open.
        case keepAlive
    }
    var framing: BodyFraming
    /// The client connection closes once this response is sent.
    var closeClient: Bool
    /// The backend connection may carry another exchange afterwards (if the response ends cleanly).
    var upstreamReusable: Bool
    var connectionHeader: ConnectionHeader

    /// `status` is final (>= 200). `clientKeepAlive` is what the request asked for (and Huddle allows).
    /// `rechunked`: Huddle writes the body to the client in chunks of its own (gzip), whatever the backend's framing.
    static func make(status: Int, framing: BodyFraming, serverKeepAlive: Bool, clientKeepAlive: Bool,
                     clientIsHTTP10: Bool, shuttingDown: Bool, rechunked: Bool = false) -> ResponsePlan {
        // A body delimited by the server closing can only reach the client delimited the same way, unless Huddle
        // delimits it with chunks of its own.
        let closeClient = (framing == .untilClose && !rechunked) || !clientKeepAlive || shuttingDown
        let header: ConnectionHeader = closeClient ? .close : (clientIsHTTP10 ? .keepAlive : .none)
        return ResponsePlan(framing: framing, closeClient: closeClient,
                            upstreamReusable: serverKeepAlive && framing != .untilClose, connectionHeader: header)
    }
}
