// One admin answer: status, content type and body; JSON bodies are always built by the JSONWriter.
import HuddleJSON

struct AdminResponse {
    var status: Int
    var contentType: String
    var body: [UInt8]

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
}
