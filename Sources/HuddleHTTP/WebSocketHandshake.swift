// RFC 6455 opening-handshake checks and the Sec-WebSocket-Accept computation.

public enum WebSocketHandshake {
    static let guid: StaticString = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// A valid WebSocket upgrade (RFC 6455 4.2.1): GET over HTTP/1.1, Connection lists "upgrade", an Upgrade
    /// header lists "websocket" among its protocols, Sec-WebSocket-Key is base64 of 16 bytes and the version is 13.
    public static func isUpgradeRequest(_ head: HTTPRequestHead, bytes: UnsafeRawBufferPointer) -> Bool {
        guard head.method == .get, head.versionMinor == 1, head.connectionHasUpgrade else { return false }
        var upgradeToWebSocket = false
        var hasKey = false
        var version13 = false
        for field in head.headers {
            switch field.kind {
            case .upgrade:
                if ASCIIBytes.listContainsToken(bytes, field.value, "websocket") { upgradeToWebSocket = true }
            case .secWebSocketKey:
                // RFC 6455 4.2.1: the key is base64 of 16 bytes, so exactly 24 characters.
                if field.value.count == 24, let key = Base64.decode(UnsafeRawBufferPointer(rebasing: bytes[field.value])),
                   key.count == 16 {
                    hasKey = true
                }
            case .secWebSocketVersion:
                if ASCIIBytes.equals(bytes, field.value, "13" as StaticString) { version13 = true }
            default:
                break
            }
        }
        return upgradeToWebSocket && hasKey && version13
    }

    /// base64(SHA-1(key + GUID)), the value of Sec-WebSocket-Accept.
    public static func acceptValue(forKey key: some Collection<UInt8>) -> String {
        var sha = SHA1()
        sha.update(key)
        sha.update(UnsafeBufferPointer(start: guid.utf8Start, count: guid.utf8CodeUnitCount))
        return Base64.encode(sha.finalize())
    }
}
