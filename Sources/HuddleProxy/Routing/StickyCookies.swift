// The sticky cookie of one upstream (`sticky cookie NAME ...`), built with its snapshot, off the data path: each
// server's cookie value and its whole Set-Cookie line, and a table from value to server. A request only looks its
// cookie up in that table; no HMAC is computed per request.
//
// A value is HMAC-SHA256(key, the server's identity) truncated to 12 bytes and written as 16 characters of base64url
// without padding: it names the server without showing its address or name, and nobody without the key can make the
// value of a server they were never sent to. Replicas with the same key (and the same server identities) agree.
import COpenSSL
import HuddleConfig
import HuddleHTTP

public final class StickyCookies: Sendable {
    /// Characters of a cookie value: 12 bytes of HMAC in base64url.
    public static let valueLength = 16
    static let macBytes = 12

    public let config: StickyCookieConfig
    let name: [UInt8]
    /// Per server index (the upstream's order): its cookie value.
    public let values: [String]
    /// Per server index: `Set-Cookie: NAME=VALUE; Path=/[; Max-Age=N][; Secure][; HttpOnly][; SameSite=X]\r\n`.
    let setCookieLines: [[UInt8]]
    /// Open addressing over the values' two 8-byte words; `slotServer` is the server index, -1 for an empty slot.
    private let slotWords: [UInt64]
    private let slotServer: [Int32]
    private let mask: Int

    /// `identities` in the upstream's server order.
    init(config: StickyCookieConfig, key: [UInt8], identities: [String]) {
        self.config = config
        name = Array(config.name.utf8)
        let values = identities.map { Self.value(key: key, identity: $0) }
        self.values = values
        setCookieLines = values.map { Array(Self.setCookieLine(config, value: $0).utf8) }
        var size = 8
        while size < identities.count * 2 { size *= 2 }
        var words = [UInt64](repeating: 0, count: size * 2)
        var servers = [Int32](repeating: -1, count: size)
        for (i, v) in values.enumerated() {
            let (a, b) = Array(v.utf8).withUnsafeBytes { Self.words($0) }
            var slot = Self.slot(a, mask: size - 1)
            // A repeated value (a 96-bit collision, or two servers with one identity) keeps the first server.
            while servers[slot] >= 0 && !(words[slot * 2] == a && words[slot * 2 + 1] == b) { slot = (slot + 1) & (size - 1) }
            if servers[slot] < 0 {
                words[slot * 2] = a
                words[slot * 2 + 1] = b
                servers[slot] = Int32(i)
            }
        }
        slotWords = words
        slotServer = servers
        mask = size - 1
    }

    /// The server index that the request's cookie names, or -1: no such cookie, or a value that is no server's
    /// (tampered, from another key, or of a server no longer in the upstream). The first cookie of that name counts.
    func serverIndex(head: HTTPRequestHead, bytes: UnsafeRawBufferPointer) -> Int {
        for h in head.headers where h.kind == .cookie {
            if let v = GroupKeyBytes.cookieValue(name: name, cookieHeaderValue: h.value, in: bytes) {
                return serverIndex(value: UnsafeRawBufferPointer(rebasing: bytes[v]))
            }
        }
        return -1
    }

    /// The server index of a cookie value, or -1.
    func serverIndex(value: UnsafeRawBufferPointer) -> Int {
        guard value.count == Self.valueLength else { return -1 }
        let (a, b) = Self.words(value)
        var slot = Self.slot(a, mask: mask)
        while true {
            let s = slotServer[slot]
            if s < 0 { return -1 }
            if slotWords[slot * 2] == a && slotWords[slot * 2 + 1] == b { return Int(s) }
            slot = (slot + 1) & mask
        }
    }

    /// The Set-Cookie line for the server at `index`.
    func setCookieLine(server index: Int) -> [UInt8] { setCookieLines[index] }

    // MARK: - Pure parts

    /// HMAC-SHA256(key, identity), its first 12 bytes in base64url without padding (16 characters).
    public static func value(key: [UInt8], identity: String) -> String {
        let mac = hmacSHA256(key: key, message: Array(identity.utf8))
        return base64URL(mac.prefix(macBytes))
    }

    public static func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let ok = key.withUnsafeBytes { k in
            message.withUnsafeBytes { m in
                out.withUnsafeMutableBytes { o in
                    HMAC(EVP_sha256(), k.baseAddress, Int32(k.count), m.baseAddress?.assumingMemoryBound(to: UInt8.self), m.count,
                         o.baseAddress?.assumingMemoryBound(to: UInt8.self), &length) != nil
                }
            }
        }
        precondition(ok && length == 32, "HMAC-SHA256 failed")
        return out
    }

    /// RFC 4648 §5 (`-` and `_` for `+` and `/`), no padding.
    public static func base64URL(_ bytes: some Collection<UInt8>) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        var out: [UInt8] = []
        var bits: UInt32 = 0
        var count = 0
        for b in bytes {
            bits = bits << 8 | UInt32(b)
            count += 8
            while count >= 6 {
                count -= 6
                out.append(alphabet[Int(bits >> UInt32(count) & 63)])
            }
        }
        if count > 0 { out.append(alphabet[Int(bits << UInt32(6 - count) & 63)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// The header line a response carries to pin its client to the server whose cookie value this is.
    public static func setCookieLine(_ c: StickyCookieConfig, value: String) -> String {
        var line = "Set-Cookie: \(c.name)=\(value); Path=/"
        if let ms = c.maxAge { line += "; Max-Age=\(ms / 1000)" }
        if c.secure { line += "; Secure" }
        if c.httpOnly { line += "; HttpOnly" }
        if let s = c.sameSite { line += "; SameSite=\(s.rawValue)" }
        return line + "\r\n"
    }

    /// The 16 bytes of a value as two words (unaligned loads).
    @inline(__always)
    private static func words(_ v: UnsafeRawBufferPointer) -> (UInt64, UInt64) {
        (v.loadUnaligned(fromByteOffset: 0, as: UInt64.self), v.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
    }

    /// Base64 characters carry 6 bits each: a multiply spreads them over the slot bits.
    @inline(__always)
    private static func slot(_ a: UInt64, mask: Int) -> Int {
        Int(truncatingIfNeeded: (a &* 0x9E37_79B9_7F4A_7C15) >> 32) & mask
    }
}
