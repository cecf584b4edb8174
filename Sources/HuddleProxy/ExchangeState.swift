// Per-exchange HTTP parsing state, borrowed from the worker's pool while a request is in progress.
// Idle keep-alive connections and tunnels hold none: this is most of what a connection would otherwise carry.
import HuddleHTTP

// SAFETY: on its worker's loop thread only.
final class ExchangeState {
    var maxHeaderSize: Int
    var parser: HTTPRequestParser
    var head = HTTPRequestHead()
    var respParser = HTTPResponseParser()
    var respHead = HTTPResponseHead()
    var reqChunks = ChunkedBodyScanner()
    var respChunks = ChunkedBodyScanner()

    init(maxHeaderSize: Int) {
        self.maxHeaderSize = maxHeaderSize
        parser = HTTPRequestParser(maxHeaderSize: maxHeaderSize)
    }

    /// Ready for a new request; the heads keep their header arrays' capacity, so reuse allocates nothing.
    func reset(maxHeaderSize: Int) {
        if maxHeaderSize != self.maxHeaderSize {
            self.maxHeaderSize = maxHeaderSize
            parser = HTTPRequestParser(maxHeaderSize: maxHeaderSize)
        } else {
            parser.reset()
        }
        head.reset()
        respParser.reset()
        respHead.reset()
        reqChunks.reset()
        respChunks.reset()
    }
}

/// A worker's free list of exchange states.
// SAFETY: on its worker's loop thread only.
final class ExchangeStatePool {
    private var free: [ExchangeState] = []
    /// Kept for reuse; beyond this, states are released so an idle worker gives memory back.
    var maxCached = 256

    func acquire(maxHeaderSize: Int) -> ExchangeState {
        if let s = free.popLast() {
            s.reset(maxHeaderSize: maxHeaderSize)
            return s
        }
        return ExchangeState(maxHeaderSize: maxHeaderSize)
    }

    func release(_ s: ExchangeState) {
        if free.count < maxCached { free.append(s) }
    }

    /// Drops cached states above `keep` (housekeeping while idle).
    func trim(keep: Int) {
        if free.count > keep { free.removeLast(free.count - keep) }
    }

    var cachedCount: Int { free.count }
}
