// Per-loop cache of pipes for splice(2): a tunnel borrows one per direction while bytes move and returns it when idle.
import HuddleSys

public struct Pipe: Sendable {
    public let readFD: Int32
    public let writeFD: Int32
}

// SAFETY: used only by its loop's thread.
public final class PipePool {
    private var free: [Pipe] = []
    /// Idle pipes kept open: each costs two descriptors, which are scarce (20,000 per process here).
    public var maxCached = 64
    public private(set) var outstanding = 0
    /// Once pipe creation fails with ENOSYS/EINVAL, splicing is off for this loop (callers copy instead).
    public private(set) var unsupported = false

    init() {}

    deinit {
        for p in free {
            Sys.close(p.readFD)
            Sys.close(p.writeFD)
        }
    }

    /// Most pipes lent at once since the last `trim`.
    public private(set) var peakOutstanding = 0

    /// Closes cached pipes beyond the recent peak (at least `keep`): each costs two descriptors.
    public func trim(keep: Int) {
        let target = max(keep, peakOutstanding)
        while free.count > target {
            let p = free.removeLast()
            Sys.close(p.readFD)
            Sys.close(p.writeFD)
        }
        peakOutstanding = outstanding
    }

    public func acquire() -> Pipe? {
        if let p = free.popLast() {
            outstanding += 1
            if outstanding > peakOutstanding { peakOutstanding = outstanding }
            return p
        }
        if unsupported { return nil }
        do {
            let (r, w) = try Sys.pipe()
            outstanding += 1
            if outstanding > peakOutstanding { peakOutstanding = outstanding }
            return Pipe(readFD: r, writeFD: w)
        } catch {
            if error.code == 38 /* ENOSYS */ || error.code == 22 /* EINVAL */ { unsupported = true }
            return nil
        }
    }

    /// Returns a pipe; only an empty pipe may be reused, anything else is closed.
    public func release(_ pipe: Pipe, isEmpty: Bool) {
        outstanding -= 1
        if isEmpty && free.count < maxCached {
            free.append(pipe)
        } else {
            Sys.close(pipe.readFD)
            Sys.close(pipe.writeFD)
        }
    }

    public func markUnsupported() { unsupported = true }
    public var cachedCount: Int { free.count }
}
