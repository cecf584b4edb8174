// What the resolver thread needs besides the stream sockets: UDP sockets and poll(2) over a handful of descriptors.
import CHuddleLinux
import Glibc

extension Sys {
    /// A non-blocking, close-on-exec UDP socket.
    public static func datagramSocket(family: Int32) throws(Errno) -> Int32 {
        try check { Glibc.socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
    }

    public static let pollIn = HUDDLE_POLLIN
    public static let pollOut = HUDDLE_POLLOUT
    public static let pollError = HUDDLE_POLLERR
    public static let pollHangup = HUDDLE_POLLHUP

    /// poll(2) (EINTR retried): how many entries have events; `timeoutMs` -1 waits without limit.
    public static func poll(_ fds: UnsafeMutablePointer<pollfd>, count: Int, timeoutMs: Int32) throws(Errno) -> Int {
        let (r, e) = retryingEINTR { huddle_poll(fds, Int32(count), timeoutMs) }
        if r < 0 { throw Errno(e) }
        return Int(r)
    }
}
