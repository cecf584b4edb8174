// Starts a named OS thread that runs a closure (an event loop's `run`).
import CHuddleLinux
import Glibc

public enum LoopThread {
    private final class Box {
        let name: String
        let body: () -> Void
        init(name: String, _ body: @escaping () -> Void) {
            self.name = String(name.prefix(15))
            self.body = body
        }
    }

    /// Spawns a joinable thread; returns its handle for `join`.
    public static func spawn(name: String, _ body: @escaping @Sendable () -> Void) -> pthread_t {
        let box = Unmanaged.passRetained(Box(name: name, body)).toOpaque()
        var tid = pthread_t()
        let rc = pthread_create(&tid, nil, { arg in
            let b = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
            huddle_set_thread_name(b.name)
            b.body()
            return nil
        }, box)
        precondition(rc == 0, "pthread_create failed: \(rc)")
        return tid
    }

    public static func join(_ t: pthread_t) {
        _ = pthread_join(t, nil)
    }
}
