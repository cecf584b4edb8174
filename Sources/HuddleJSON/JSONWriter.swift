// Builds JSON text (objects, arrays, strings, numbers) into bytes; every string goes through JSONEscaping.

/// A streaming JSON writer: commas and quoting are its business, so callers cannot produce malformed text.
///
///     var w = JSONWriter()
///     w.object { w in
///         w.field("ok", false)
///         w.field("errors") { w in w.array { w in w.value("a \"quoted\" word") } }
///     }
///     w.text   // {"ok":false,"errors":["a \"quoted\" word"]}
public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []
    /// A value was written at this nesting level, so the next key or array element needs a comma.
    private var needsComma = false

    public init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    public var text: String { String(decoding: bytes, as: UTF8.self) }

    // MARK: structure

    public mutating func object(_ body: (inout JSONWriter) -> Void) {
        separate()
        bytes.append(0x7B)
        needsComma = false
        body(&self)
        bytes.append(0x7D)
        needsComma = true
    }

    public mutating func array(_ body: (inout JSONWriter) -> Void) {
        separate()
        bytes.append(0x5B)
        needsComma = false
        body(&self)
        bytes.append(0x5D)
        needsComma = true
    }

    /// An object member's name; the next value written is its value.
    public mutating func key(_ name: String) {
        separate()
        append(quoted: name)
        bytes.append(0x3A)
        needsComma = false
    }

    // MARK: values

    public mutating func value(_ s: String) { separate(); append(quoted: s); needsComma = true }

    /// Raw bytes as a string (invalid UTF-8 becomes U+FFFD).
    public mutating func value(bytes b: some Sequence<UInt8>) {
        separate()
        if b.withContiguousStorageIfAvailable({ JSONEscaping.appendQuoted(UnsafeRawBufferPointer($0), to: &bytes) }) == nil {
            Array(b).withUnsafeBytes { JSONEscaping.appendQuoted($0, to: &bytes) }
        }
        needsComma = true
    }

    public mutating func value(_ v: Int) { separate(); bytes.append(contentsOf: String(v).utf8); needsComma = true }
    public mutating func value(_ v: Int64) { separate(); bytes.append(contentsOf: String(v).utf8); needsComma = true }
    public mutating func value(_ v: Bool) { separate(); bytes.append(contentsOf: (v ? "true" : "false").utf8); needsComma = true }
    public mutating func null() { separate(); bytes.append(contentsOf: "null".utf8); needsComma = true }

    /// A number; NaN and infinities, which JSON cannot spell, become null.
    public mutating func value(_ v: Double) {
        guard v.isFinite else { return null() }
        separate()
        bytes.append(contentsOf: v.description.utf8)
        needsComma = true
    }

    public mutating func value(_ s: String?) { if let s { value(s) } else { null() } }

    // MARK: members (key and value together)

    public mutating func field(_ name: String, _ v: String) { key(name); value(v) }
    public mutating func field(_ name: String, _ v: String?) { key(name); value(v) }
    public mutating func field(_ name: String, bytes v: some Sequence<UInt8>) { key(name); value(bytes: v) }
    public mutating func field(_ name: String, _ v: Int) { key(name); value(v) }
    public mutating func field(_ name: String, _ v: Int64) { key(name); value(v) }
    public mutating func field(_ name: String, _ v: Double) { key(name); value(v) }
    public mutating func field(_ name: String, _ v: Bool) { key(name); value(v) }
    public mutating func field(_ name: String, object body: (inout JSONWriter) -> Void) { key(name); object(body) }
    public mutating func field(_ name: String, array body: (inout JSONWriter) -> Void) { key(name); array(body) }

    // MARK: internals

    private mutating func separate() {
        if needsComma { bytes.append(0x2C) }
    }

    private mutating func append(quoted s: String) {
        var s = s
        s.withUTF8 { JSONEscaping.appendQuoted(UnsafeRawBufferPointer($0), to: &bytes) }
    }
}
