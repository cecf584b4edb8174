// The chat rooms of one demo backend process, shared by its workers: members live on different loops.
import HuddleIO
import Synchronization
import HuddleSync

/// A room member as other threads see it: the loop to post to and the connection to call there.
struct ChatRoomMember: Sendable {
    let serial: Int
    let loop: EventLoop
    let connection: ConnectionHandle
}

/// SAFETY: the wrapped connection is only touched on its own loop: other threads just carry the handle into a
/// task they hand to `loop.execute`.
final class ConnectionHandle: @unchecked Sendable {
    let connection: DemoConnection
    init(_ connection: DemoConnection) { self.connection = connection }
}

final class ChatRoomRegistry: Sendable {
    private let rooms = Locked<[String: [ChatRoomMember]]>([:])

    /// Adds a member and returns the room's size including it.
    func join(_ room: String, _ member: ChatRoomMember) -> Int {
        rooms.withLock { r in
            r[room, default: []].append(member)
            return r[room]!.count
        }
    }

    func leave(_ room: String, serial: Int) {
        rooms.withLock { r in
            guard var members = r[room] else { return }
            members.removeAll { $0.serial == serial }
            r[room] = members.isEmpty ? nil : members
        }
    }

    func members(of room: String) -> [ChatRoomMember] {
        rooms.withLock { $0[room] ?? [] }
    }

    /// Every room with its member count (for tests and benchmarks: which backend holds which members).
    func counts() -> [String: Int] {
        rooms.withLock { $0.mapValues(\.count) }
    }
}
