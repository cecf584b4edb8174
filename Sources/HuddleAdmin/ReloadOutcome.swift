// What a reload request ended with, and its JSON answer.
import HuddleConfig
import HuddleJSON

/// The result of `POST /api/reload` (and of SIGHUP, which logs instead of answering).
public enum ReloadOutcome: Sendable {
    /// The new configuration runs; its generation number.
    case reloaded(generation: Int)
    /// The file (or what it names: addresses, upstreams) has problems, each with its position; the running
    /// configuration stays.
    case invalid([ConfigError])
    /// Failed for a reason that has no position in the file; the running configuration stays.
    case failed(String)
    /// Reloading is not possible at all (the demo runs without a config file).
    case unavailable(String)

    var httpStatus: Int {
        if case .reloaded = self { return 200 }
        return 400
    }

    /// `{"ok":true,"generation":N}`, or `{"ok":false,"errors":["FILE:LINE:COLUMN: error: …"],"problems":[{"file",
    /// "line","column","message"}]}` (`errors` as the CLI prints them, `problems` for programs), or
    /// `{"ok":false,"error":"…"}` when reloading is unavailable.
    func write(to w: inout JSONWriter) {
        w.object { w in
            switch self {
            case .reloaded(let generation):
                w.field("ok", true)
                w.field("generation", generation)
            case .invalid(let errors):
                w.field("ok", false)
                w.field("errors", array: { w in for e in errors { w.value(e.description) } })
                w.field("problems", array: { w in
                    for e in errors {
                        w.object { w in
                            w.field("file", e.location.file)
                            w.field("line", e.location.line)
                            w.field("column", e.location.column)
                            w.field("message", e.message)
                        }
                    }
                })
            case .failed(let message):
                w.field("ok", false)
                w.field("errors", array: { w in w.value(message) })
            case .unavailable(let message):
                w.field("ok", false)
                w.field("error", message)
            }
        }
    }
}
