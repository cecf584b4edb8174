// What a demo backend's workers share: its name as pre-encoded bytes, counters, the connection serial and the rooms.
import Synchronization

final class DemoBackendState: Sendable {
    let name: String
    /// "X-Backend: NAME\r\n", encoded once so responses copy bytes instead of formatting.
    let backendHeader: [UInt8]
    let helloBody: [UInt8]
    let counters: [DemoCounters]
    let rooms = ChatRoomRegistry()
    private let connectionSerial = Atomic<Int>(0)

    init(name: String, workers: Int) {
        self.name = name
        backendHeader = Array("X-Backend: \(name)\r\n".utf8)
        helloBody = Array("hello from \(name)\n".utf8)
        counters = (0..<workers).map { _ in DemoCounters() }
    }

    /// 1, 2, 3, ... across all workers, so tests can tell whether two requests shared a TCP connection.
    func nextConnectionSerial() -> Int {
        connectionSerial.wrappingAdd(1, ordering: .relaxed).newValue
    }

    /// `{"backend":NAME,"rooms":{ROOM:MEMBERS,...}}`.
    func roomsJSON() -> [UInt8] {
        var out = Array("{\"backend\":\"".utf8) + DemoContent.jsonEscaped(Array(name.utf8)) + Array("\",\"rooms\":{".utf8)
        var first = true
        for (room, n) in rooms.counts().sorted(by: { $0.key < $1.key }) {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            out += Array("\"".utf8) + DemoContent.jsonEscaped(Array(room.utf8)) + Array("\":\(n)".utf8)
        }
        out += Array("}}".utf8)
        return out
    }

    func statsJSON() -> String {
        var accepted = 0, requests = 0, open = 0
        for c in counters {
            accepted += c.connectionsAccepted.load(ordering: .relaxed)
            requests += c.requests.load(ordering: .relaxed)
            open += c.webSocketsOpen.load(ordering: .relaxed)
        }
        let n = String(decoding: DemoContent.jsonEscaped(Array(name.utf8)), as: UTF8.self)
        return "{\"backend\":\"\(n)\",\"connections_accepted\":\(accepted),\"requests\":\(requests),\"websockets_open\":\(open)}"
    }
}
