// Helpers shared by the I/O tests: socketpairs, recording handlers, bounded waits on a loop.
import Glibc
import HuddleIO
import HuddleSys
import XCTest

/// A non-blocking AF_UNIX stream pair.
func makeSocketPair() -> (Int32, Int32) {
    var fds: [Int32] = [-1, -1]
    let rc = socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds)
    precondition(rc == 0, "socketpair failed")
    return (fds[0], fds[1])
}

final class RecordingHandler: EventHandler {
    var events: [UInt32] = []
    var onEvent: ((UInt32) -> Void)?
    func handleEvent(_ events: UInt32) {
        self.events.append(events)
        onEvent?(events)
    }
    func count(_ mask: UInt32) -> Int { events.filter { $0 & mask != 0 }.count }
}

/// Turns the loop until `condition` holds, at most `turns` times (each turn waits at most 100 ms for events).
@discardableResult
func runLoop(_ loop: EventLoop, turns: Int = 100, until condition: () -> Bool) -> Bool {
    for _ in 0..<turns {
        if condition() { return true }
        loop.runOnce(maxWaitMs: 100)
    }
    return condition()
}

func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
    var off = 0
    while off < bytes.count {
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, $0.count - off) }
        precondition(n > 0, "write failed")
        off += n
    }
}

/// Waits (bounded) for something another thread makes true.
func waitFor(_ what: String, attempts: Int = 10_000, _ condition: () -> Bool) -> Bool {
    for _ in 0..<attempts {
        if condition() { return true }
        usleep(1000)
    }
    XCTFail("timed out waiting for \(what)")
    return false
}
