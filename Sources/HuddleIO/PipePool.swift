// Per-loop cache of pipes for splice(2): a tunnel borrows one per direction while bytes move and returns it when idle.
import HuddleSys

/// A borrowed pipe. Non-copyable: its one owner counts the bytes it holds (`buffered`), and when the owner drops it the
/// pipe goes back to the pool if empty or is closed if not (stale bytes must never reach the next borrower).
public struct Pipe: ~Copyable {
    public let readFD: Int32
    public let writeFD: Int32
    /// Bytes spliced in and not yet spliced out.
    public var buffered = 0
    // SAFETY: a pool belongs to its event loop, which outlives every tunnel (and so every pipe) on it.
    unowned(unsafe) let pool: PipePool

    deinit { pool.reclaim(readFD: readFD, writeFD: writeFD, isEmpty: buffered == 0) }
}

/// Two descriptors of a cached pipe.
struct PipeFDs {
    let readFD: Int32
    let writeFD: Int32
}

// SAFETY: used only by its loop's thread.
public final class PipePool {
    private var free: [PipeFDs] = []
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
            return Pipe(readFD: p.readFD, writeFD: p.writeFD, pool: self)
        }
        if unsupported { return nil }
        do {
            let (r, w) = try Sys.pipe()
            outstanding += 1
            if outstanding > peakOutstanding { peakOutstanding = outstanding }
            return Pipe(readFD: r, writeFD: w, pool: self)
        } catch {
            if error.code == 38 /* ENOSYS */ || error.code == 22 /* EINVAL */ { unsupported = true }
            return nil
        }
    }

    /// Gives a pipe back now (dropping it does the same).
    public func release(_ pipe: consuming Pipe) {
        _ = consume pipe
    }

    /// Called once per pipe, by its deinit: only an empty pipe may be reused, anything else is closed.
    fileprivate func reclaim(readFD: Int32, writeFD: Int32, isEmpty: Bool) {
        outstanding -= 1
        if isEmpty && free.count < maxCached {
            free.append(PipeFDs(readFD: readFD, writeFD: writeFD))
        } else {
            Sys.close(readFD)
            Sys.close(writeFD)
        }
    }

    public func markUnsupported() { unsupported = true }
    public var cachedCount: Int { free.count }
}
