// Query parameters of an admin request: form-decoded bytes, since group keys are bytes and need not be UTF-8.
import HuddleHTTP

/// The query string of one request (`upstream=chat&key=r%C3%A9`).
struct AdminQuery {
    let raw: [UInt8]

    init(_ raw: [UInt8]) { self.raw = raw }
    init(_ raw: String) { self.raw = Array(raw.utf8) }

    /// The first value of `name`, percent-decoded with `+` as space (form encoding, as group keys from queries
    /// are); nil when absent or when its percent-encoding is broken. A bare `name` gives an empty value.
    func bytes(_ name: String) -> [UInt8]? {
        guard !raw.isEmpty else { return nil }
        return raw.withUnsafeBytes { b -> [UInt8]? in
            guard let r = GroupKeyBytes.queryValue(name: Array(name.utf8), query: 0..<b.count, in: b) else { return nil }
            return GroupKeyBytes.percentDecode(b[r], plusAsSpace: true)
        }
    }

    /// The value as text (bytes that are not UTF-8 become U+FFFD): for names, never for group keys.
    func string(_ name: String) -> String? { bytes(name).map { String(decoding: $0, as: UTF8.self) } }

    /// The value as a decimal integer; nil when absent or not a number.
    func int(_ name: String) -> Int? { string(name).flatMap { Int($0) } }
}
