// What a backend failure becomes: a replay, a retry on another server, a 502/504, or a cut client connection.
// Pure and table-tested (HuddleProxyTests/FailurePolicyTests): the exchange only reports facts and carries out the answer.
import HuddleSys

enum UpstreamFailure: CustomStringConvertible, Equatable {
    case connect(Errno)
    /// The TLS handshake with the server failed (certificate, protocol): nothing of the request was sent.
    case tlsHandshake(String)
    case connectTimeout
    case responseTimeout
    /// A read or write on the backend connection failed (ECONNRESET, EPIPE...).
    case reset(Errno)
    /// The backend closed the connection before a complete response.
    case closedEarly
    case badResponse(String)

    var description: String {
        switch self {
        case .connect(let e): return "connect failed: \(e)"
        case .tlsHandshake(let why): return "TLS handshake failed: \(why)"
        case .connectTimeout: return "connect_timeout reached"
        case .responseTimeout: return "response_timeout reached"
        case .reset(let e): return "connection error: \(e)"
        case .closedEarly: return "closed the connection before a complete response"
        case .badResponse(let why): return "invalid response: \(why)"
        }
    }

    var isTimeout: Bool {
        switch self {
        case .connectTimeout, .responseTimeout: return true
        default: return false
        }
    }

    /// Nothing of the request can have reached the server.
    var isConnectFailure: Bool {
        switch self {
        case .connect, .connectTimeout, .tlsHandshake: return true
        default: return false
        }
    }
}

/// The facts about an exchange that decide what a failure becomes.
struct FailureContext: Equatable {
    /// A byte of the response already reached the client.
    var responseStarted = false
    /// The connection had served an earlier exchange (a failure before any answer may be a keep-alive race).
    var connectionReused = false
    /// Some bytes of a response (head or more) came from the server.
    var responseBytesSeen = false
    /// A byte of the request body was written to the server; it cannot be sent again.
    var requestBodySent = false
    /// The request has a body (which Huddle streams and does not keep).
    var requestHasBody = false
    /// GET, HEAD, PUT, DELETE, OPTIONS, TRACE: the method allows a repeat.
    var idempotent = false
    var retriesLeft = 0
}

enum FailureDecision: Equatable {
    /// The response had begun: the client connection is closed, it cannot be told otherwise.
    case closeClient
    /// A reused keep-alive connection died before answering: send the request again, same server, new connection.
    case replayOnNewConnection
    /// Try another server (one retry fewer left).
    case retryElsewhere
    /// Answer the client locally with this status (502 or 504).
    case answer(status: Int)
}

enum FailurePolicy {
    /// The decision, and whether the failure counts against the server (failures_total, passive health).
    static func decide(_ f: UpstreamFailure, _ c: FailureContext) -> (FailureDecision, countsAgainstServer: Bool) {
        if c.responseStarted { return (.closeClient, true) }
        // Repeating the request is safe only if the server cannot have acted on it (nothing sent), or if the method is
        // idempotent and Huddle still holds the whole request (no body: bodies are streamed, not kept).
        let repeatable = !c.requestBodySent && !c.requestHasBody && c.idempotent
        // A server may close an idle keep-alive connection just as a request goes out on it; that is not its fault.
        let staleKeepAlive = c.connectionReused && !c.responseBytesSeen && !f.isTimeout && !f.isConnectFailure
        if staleKeepAlive && repeatable {
            switch f {
            case .reset, .closedEarly: return (.replayOnNewConnection, false)
            default: break
            }
        }
        if c.retriesLeft > 0 {
            if f.isConnectFailure && !c.requestBodySent { return (.retryElsewhere, true) }
            // Like nginx's proxy_next_upstream "error timeout": an idempotent, bodiless request that got no answer goes
            // to another server. An invalid answer is not retried: the next server would likely answer the same way.
            if repeatable && !c.responseBytesSeen {
                switch f {
                case .reset, .closedEarly, .responseTimeout: return (.retryElsewhere, true)
                default: break
                }
            }
        }
        return (.answer(status: f.isTimeout ? 504 : 502), true)
    }
}
