// Standard base64 (RFC 4648 section 4, with padding) for WebSocket handshakes and test clients.

public enum Base64 {
    private static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var it = bytes.makeIterator()
        while let b0 = it.next() {
            let b1 = it.next()
            let b2 = it.next()
            let n = UInt32(b0) << 16 | UInt32(b1 ?? 0) << 8 | UInt32(b2 ?? 0)
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
            out.append(b1 == nil ? 0x3D : alphabet[Int(n >> 6 & 63)])
            out.append(b2 == nil ? 0x3D : alphabet[Int(n & 63)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Strict decoding: length a multiple of 4, padding only at the end; nil otherwise.
    public static func decode(_ bytes: some Collection<UInt8>) -> [UInt8]? {
        let input = Array(bytes)
        guard input.count % 4 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(input.count / 4 * 3)
        var i = 0
        while i < input.count {
            var n: UInt32 = 0
            var pad = 0
            for j in 0..<4 {
                let c = input[i + j]
                let v: UInt32
                switch c {
                case 0x41...0x5A: v = UInt32(c - 0x41)
                case 0x61...0x7A: v = UInt32(c - 0x61 + 26)
                case 0x30...0x39: v = UInt32(c - 0x30 + 52)
                case 0x2B: v = 62
                case 0x2F: v = 63
                case 0x3D:
                    guard i + 4 == input.count, j >= 2 else { return nil }
                    pad += 1
                    v = 0
                default: return nil
                }
                if pad > 0 && c != 0x3D { return nil }
                n = n << 6 | v
            }
            out.append(UInt8(n >> 16 & 0xFF))
            if pad < 2 { out.append(UInt8(n >> 8 & 0xFF)) }
            if pad < 1 { out.append(UInt8(n & 0xFF)) }
            i += 4
        }
        return out
    }
}
