// A value guarded by a pthread mutex: the few locks Huddle takes off the per-request path (group table shards, loop inboxes).
//
// Why not Synchronization.Mutex: on Linux its contended path is a kernel futex that ThreadSanitizer does not model, so
// TSan reports races on correctly locked data (a 15-line program with four threads and one Mutex reproduces it with the
// Swift 6.3 toolchain). pthread mutexes are intercepted by TSan, so sanitizer runs stay meaningful; uncontended they
// cost about the same.
import Glibc

// SAFETY: `value` is only read or written between pthread_mutex_lock and pthread_mutex_unlock on `mutex`.
public final class Locked<Value>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    public init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        let rc = pthread_mutex_init(mutex, nil)
        precondition(rc == 0, "pthread_mutex_init failed: \(rc)")
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    @inline(__always)
    public func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
