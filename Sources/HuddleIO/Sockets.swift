// Creating listening and connecting sockets with the options a proxy wants.
import Glibc
import HuddleSys

public enum Sockets {
    /// A non-blocking listening socket. `reusePort` lets every worker bind the same address and the kernel spread accepts.
    public static func listen(on address: SocketAddress, reusePort: Bool, backlog: Int32 = 4096, deferAccept: Bool = false) throws(Errno) -> Int32 {
        let fd = try Sys.socket(family: address.family)
        do {
            try Sys.setOption(fd, level: SOL_SOCKET, name: SO_REUSEADDR, value: 1)
            if reusePort { try Sys.setOption(fd, level: SOL_SOCKET, name: SO_REUSEPORT, value: 1) }
            if address.family == AF_INET6 { try? Sys.setOption(fd, level: Int32(IPPROTO_IPV6), name: IPV6_V6ONLY, value: 1) }
            // Accepted sockets inherit TCP_NODELAY from their listener on Linux: set once here, not per accept.
            try? Sys.setOption(fd, level: Int32(IPPROTO_TCP), name: TCP_NODELAY, value: 1)
            // Wake the listener only once a client has sent something (as nginx's "deferred"): the first read after
            // accept then finds the request (or the TLS ClientHello) instead of EAGAIN. A client that connects and
            // sends nothing waits in the kernel (up to a few retransmits) before Huddle sees it.
            if deferAccept { try? Sys.setOption(fd, level: Int32(IPPROTO_TCP), name: TCP_DEFER_ACCEPT, value: 1) }
            try Sys.bind(fd, address)
            try Sys.listen(fd, backlog: backlog)
        } catch {
            Sys.close(fd)
            throw error
        }
        return fd
    }

    /// Starts a non-blocking connect; returns the descriptor and whether it is already connected.
    public static func connect(to address: SocketAddress) throws(Errno) -> (fd: Int32, connected: Bool) {
        let fd = try Sys.socket(family: address.family)
        do {
            try Sys.setOption(fd, level: Int32(IPPROTO_TCP), name: TCP_NODELAY, value: 1)
            switch try Sys.connect(fd, address) {
            case .done: return (fd, true)
            case .wouldBlock: return (fd, false)
            }
        } catch {
            Sys.close(fd)
            throw error
        }
    }

    public static func setNoDelay(_ fd: Int32) {
        try? Sys.setOption(fd, level: Int32(IPPROTO_TCP), name: TCP_NODELAY, value: 1)
    }

}
