// A worker's end-of-turn publication of its figures (see WorkerStatsSlot).
extension Worker {
    /// Runs at the end of every loop turn. An idle loop still turns once a second for its housekeeping timer, so an
    /// idle worker's figures are never more than about a second old.
    func publishStats() {
        published.publish(WorkerFigures(sessions: counters.clientConnections, tunnels: counters.tunnels, upstreamConnections: counters.upstreamConnections,
                                        buffersInUse: loop.buffers.outstanding + gzipBuffers.outstanding,
                                        buffersCached: loop.buffers.cachedCount + gzipBuffers.cachedCount,
                                        pipesInUse: loop.pipes.outstanding, pipesCached: loop.pipes.cachedCount,
                                        gzipStreamsInUse: gzipStreams.outstanding, gzipStreamsCached: gzipStreams.cachedCount,
                                        cacheReads: counters.cacheReads, cacheWaiters: counters.cacheWaits,
                                        cacheLeads: counters.cacheLeads, cacheFills: counters.cacheFills),
                          atMs: loop.now, shuttingDown: shuttingDown)
    }
}
