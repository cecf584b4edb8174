// The one place errno is read: typed errors for syscalls, EINTR retried, EAGAIN turned into `.wouldBlock`.
import Glibc

public struct Errno: Error, Equatable, Sendable, CustomStringConvertible {
    public var code: Int32
    public init(_ code: Int32) { self.code = code }
    public var description: String { message + " (errno \(code))" }
    /// The system's text for the error alone ("No such file or directory").
    public var message: String { String(cString: strerror(code)) }

    public static var current: Errno { Errno(Glibc.errno) }
    public static let wouldBlock = Errno(EAGAIN)
    public var isWouldBlock: Bool { code == EAGAIN || code == EWOULDBLOCK }
    /// Descriptor exhaustion: accept must pause rather than spin.
    public var isOutOfDescriptors: Bool { code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM }
}

/// The outcome of a non-blocking syscall.
public enum IOResult<T>: Sendable where T: Sendable {
    case done(T)
    case wouldBlock
}

/// Runs `body` until it does not fail with EINTR; returns its result, or the errno it failed with.
/// `@inline(never)` keeps ARC traffic from running between the call and the errno read.
@inline(never)
@usableFromInline
func retryingEINTR<T: BinaryInteger>(_ body: () -> T) -> (T, Int32) {
    while true {
        let r = body()
        if r < 0 {
            let e = Glibc.errno
            if e == EINTR { continue }
            return (r, e)
        }
        return (r, 0)
    }
}

@inline(__always)
@usableFromInline
func check<T: BinaryInteger>(_ body: () -> T) throws(Errno) -> T {
    let (r, e) = retryingEINTR(body)
    if r < 0 {
        precondition(e != EBADF && e != EFAULT, "Huddle bug: syscall failed with \(Errno(e))")
        throw Errno(e)
    }
    return r
}

@inline(__always)
@usableFromInline
func checkNonBlocking<T: BinaryInteger>(_ body: () -> T) throws(Errno) -> IOResult<T> {
    let (r, e) = retryingEINTR(body)
    if r < 0 {
        if e == EAGAIN || e == EWOULDBLOCK { return .wouldBlock }
        precondition(e != EBADF && e != EFAULT, "Huddle bug: syscall failed with \(Errno(e))")
        throw Errno(e)
    }
    return .done(r)
}
