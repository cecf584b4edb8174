// A flag that is set once and can be waited for with a timeout: shutdown waits on it instead of polling.
//
// pthread mutex and condition variable for the same reason as `Locked`: ThreadSanitizer models them.
import Glibc

// SAFETY: `isSet` is only read or written with `mutex` held; `cond` waits on `mutex`.
public final class OneShotEvent: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let cond: UnsafeMutablePointer<pthread_cond_t>
    private var isSet = false

    public init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        precondition(pthread_mutex_init(mutex, nil) == 0, "pthread_mutex_init failed")
        cond = .allocate(capacity: 1)
        cond.initialize(to: pthread_cond_t())
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        // Deadlines on the monotonic clock: a wall-clock step must not shorten or stretch a shutdown.
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        precondition(pthread_cond_init(cond, &attr) == 0, "pthread_cond_init failed")
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        cond.deinitialize(count: 1)
        cond.deallocate()
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Sets the flag and wakes every waiter; later calls do nothing.
    public func signal() {
        pthread_mutex_lock(mutex)
        isSet = true
        pthread_cond_broadcast(cond)
        pthread_mutex_unlock(mutex)
    }

    public var isSignalled: Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return isSet
    }

    /// Blocks until the flag is set or `timeoutMs` pass; returns whether it is set.
    public func wait(timeoutMs: Int64) -> Bool {
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let ms = max(0, timeoutMs)
        deadline.tv_sec += Int(ms / 1000)
        deadline.tv_nsec += Int(ms % 1000) * 1_000_000
        if deadline.tv_nsec >= 1_000_000_000 {
            deadline.tv_sec += 1
            deadline.tv_nsec -= 1_000_000_000
        }
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while !isSet {
            if pthread_cond_timedwait(cond, mutex, &deadline) == ETIMEDOUT { break }
        }
        return isSet
    }
}
