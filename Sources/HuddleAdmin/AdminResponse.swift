// One admin answer: status, content type, extra header fields and body; JSON bodies are always built by the JSONWriter.
import HuddleJSON

struct AdminResponse {
    var status: Int
    var contentType: String
    var body: [UInt8]
    /// Fields besides Content-Type, Content-Length, Cache-Control and Connection (`Allow`, `WWW-Authenticate`).
    var headers: [(name: String, value: String)] = []

    /// A JSON document (plus a newline, for people reading it with curl).
    static func json(_ status: Int, _ build: (inout JSONWriter) -> Void) -> AdminResponse {
        var w = JSONWriter()
        build(&w)
        var body = w.bytes
        body.append(0x0A)
        return AdminResponse(status: status, contentType: "application/json", body: body)
    }

    /// `{"error": message}`.
    static func error(_ status: Int, _ message: String) -> AdminResponse {
        json(status) { w in w.object { w in w.field("error", message) } }
    }

    static func text(_ status: Int, _ text: String) -> AdminResponse {
        AdminResponse(status: status, contentType: "text/plain", body: Array(text.utf8))
    }

    /// The same answer with one more header field.
    func with(_ name: String, _ value: String) -> AdminResponse {
        var r = self
        r.headers.append((name, value))
        return r
    }
}
