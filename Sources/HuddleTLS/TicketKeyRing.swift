// Session-ticket keys for every TLS listener of the process: a new key every `rotation`, the previous two kept for
// opening tickets issued under them, so a ticket lives for up to three rotations and a leaked key ages out.
import COpenSSL
import HuddleSync
import HuddleSys

public struct TicketKey: Sendable {
    /// 16 bytes, sent in the clear inside the ticket: which key sealed it.
    let name: [UInt8]
    /// AES-256-CBC key and HMAC-SHA256 key.
    let aes: [UInt8]
    let hmac: [UInt8]
    let createdMs: Int64
}

public final class TicketKeyRing: Sendable {
    private let keys: Locked<[TicketKey]>
    public let rotationMs: Int64
    private static let kept = 3

    public init(rotationMs: Int64 = 3_600_000) {
        self.rotationMs = rotationMs
        keys = Locked([Self.newKey()])
    }

    private static func newKey() -> TicketKey {
        func random(_ n: Int) -> [UInt8] {
            var b = [UInt8](repeating: 0, count: n)
            precondition(RAND_bytes(&b, Int32(n)) == 1, "the system has no randomness for TLS ticket keys")
            return b
        }
        return TicketKey(name: random(16), aes: random(32), hmac: random(32), createdMs: Sys.monotonicMs())
    }

    /// The key new tickets are sealed with (rotated when it is older than `rotationMs`).
    func current() -> TicketKey {
        let now = Sys.monotonicMs()
        return keys.withLock { k in
            if now - k[0].createdMs >= rotationMs {
                k.insert(Self.newKey(), at: 0)
                if k.count > Self.kept { k.removeLast(k.count - Self.kept) }
            }
            return k[0]
        }
    }

    /// Rotates now (tests; an operator's key change).
    public func rotate() {
        keys.withLock { k in
            k.insert(Self.newKey(), at: 0)
            if k.count > Self.kept { k.removeLast(k.count - Self.kept) }
        }
    }

    func find(name: UnsafeRawBufferPointer) -> (TicketKey, isCurrent: Bool)? {
        keys.withLock { k in
            for (i, key) in k.enumerated() where key.name.elementsEqual(name) { return (key, i == 0) }
            return nil
        }
    }

    // SAFETY: constant C strings, written once, only read (OpenSSL wants non-const pointers).
    nonisolated(unsafe) private static let keyParam: UnsafeMutablePointer<CChar> = strdup("key")
    nonisolated(unsafe) private static let digestParam: UnsafeMutablePointer<CChar> = strdup("digest")
    nonisolated(unsafe) private static let sha256: UnsafeMutablePointer<CChar> = strdup("SHA256")

    /// Sets up the ticket's cipher and MAC for sealing or opening.
    static func initialize(cipher: OpaquePointer, mac: OpaquePointer, key: TicketKey, iv: UnsafeMutablePointer<UInt8>, encrypt: Bool) -> Bool {
        let ok = key.aes.withUnsafeBufferPointer { aes in
            encrypt ? EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nil, aes.baseAddress, iv) == 1
                    : EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nil, aes.baseAddress, iv) == 1
        }
        guard ok else { return false }
        var hmac = key.hmac
        return hmac.withUnsafeMutableBytes { h in
            var params = [
                OSSL_PARAM_construct_octet_string(keyParam, h.baseAddress, h.count),
                OSSL_PARAM_construct_utf8_string(digestParam, sha256, 0),
                OSSL_PARAM_construct_end(),
            ]
            return EVP_MAC_CTX_set_params(mac, &params) == 1
        }
    }
}
