// inotify, for `reload_on_change`: the config file's directory is watched, so a file replaced by rename or by
// Kubernetes' `..data` symlink swap is seen as well as one written in place.
import CHuddleLinux

extension Sys {
    /// A non-blocking, close-on-exec inotify descriptor.
    public static func inotifyInit() throws(Errno) -> Int32 { try check { huddle_inotify_init() } }

    /// Watches the directory `path` for files written, created, moved, deleted or changed in their attributes.
    public static func watchDirectory(_ fd: Int32, _ path: String) throws(Errno) -> Int32 {
        try check { huddle_inotify_watch_directory(fd, path) }
    }

    /// Reads every queued event; returns how many there were (the watcher only needs to know that one came).
    @discardableResult
    public static func drainInotify(_ fd: Int32) -> Int { max(0, Int(huddle_inotify_drain(fd))) }
}
