// `reload_on_change on`: reloads when the config file changes. The file's directory is watched with inotify, not the
// file: an editor that writes a new file and renames it over the old one, and Kubernetes replacing a ConfigMap (a
// new timestamped directory, then the `..data` symlink renamed over the old one), both leave the watched file's
// inode behind. A burst of events is debounced; then the file is read, and only new content reloads (as SIGHUP: an
// invalid file is reported and changes nothing).
import HuddleIO
import HuddleProxy
import HuddleSys

// SAFETY: on the control loop's thread only.
final class ConfigWatcher: TimerNode, EventHandler {
    let path: String
    let directory: String
    private let loop: EventLoop
    private let log: ErrorLog
    private let reload: () -> Void
    private var fd: Int32 = -1
    private var registration = Registration.none
    private var lastContent: [UInt8]?
    private var burstStartMs: Int64?

    /// Quiet time after the last event before the file is read: a ConfigMap swap is several events.
    static let quietMs: Int64 = 200
    /// A burst that never goes quiet is read after this long anyway.
    static let maxDelayMs: Int64 = 2000

    init(path: String, loop: EventLoop, log: ErrorLog, reload: @escaping () -> Void) {
        self.path = path
        if let slash = path.lastIndex(of: "/") {
            directory = slash == path.startIndex ? "/" : String(path[..<slash])
        } else {
            directory = "."
        }
        self.loop = loop
        self.log = log
        self.reload = reload
        super.init()
    }

    func start() throws(Errno) {
        fd = try Sys.inotifyInit()
        do {
            _ = try Sys.watchDirectory(fd, directory)
            registration = try loop.register(fd: fd, events: Events.readable, handler: self)
        } catch {
            Sys.close(fd)
            fd = -1
            throw error
        }
        lastContent = try? Sys.readWholeFile(path, limit: 16 << 20)
        log.info("reload_on_change: watching \(directory) for changes to \(path)")
    }

    func stop() {
        guard fd >= 0 else { return }
        loop.timers.cancel(self)
        loop.deregister(fd: fd, registration: registration)
        Sys.close(fd)
        fd = -1
        log.info("reload_on_change: no longer watching \(path)")
    }

    func handleEvent(_ events: UInt32) {
        guard Sys.drainInotify(fd) > 0 else { return }
        let now = Sys.monotonicMs()
        let start = burstStartMs ?? now
        burstStartMs = start
        loop.timers.schedule(self, at: min(now + Self.quietMs, start + Self.maxDelayMs))
    }

    override func timerFired(now: Int64) {
        burstStartMs = nil
        // Mid-swap the file can be missing for a moment; the swap's last event brings it back.
        guard let content = try? Sys.readWholeFile(path, limit: 16 << 20), content != lastContent else { return }
        lastContent = content
        log.info("reload_on_change: \(path) changed; reloading")
        reload()
    }
}
