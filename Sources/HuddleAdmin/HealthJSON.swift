// The `health` object of /api/backends: the last active check, failure streaks, ejections, and why the server is in
// its state since when.
import HuddleConfig
import HuddleJSON
import HuddleProxy

/// One reading of both clocks: monotonic times (ejection ends, group ages) are shown as wall-clock epoch ms.
struct AdminClock {
    var monotonicMs: Int64
    var wallMs: Int64

    /// A monotonic instant as milliseconds since the Unix epoch.
    func wall(fromMonotonic t: Int64) -> Int64 { wallMs + (t - monotonicMs) }
}

enum HealthJSON {
    /// The causes keeping a server out, weakest first (`state` names the strongest).
    static func causes(_ f: HealthFlags) -> [String] {
        var out: [String] = []
        if f.contains(.activeDown) { out.append("unhealthy") }
        if f.contains(.ejected) { out.append("ejected") }
        if f.contains(.draining) { out.append("draining") }
        if f.contains(.disabled) { out.append("disabled") }
        return out
    }

    /// ```
    /// {"active_checks": true, "last_check": "ok"|"failed"|null, "last_check_at": ms|null, "last_check_detail": "..."|null,
    ///  "consecutive_check_successes": n, "consecutive_check_failures": n,
    ///  "passive_checks": true, "consecutive_failures": n, "ejections": n, "ejected_until": ms|null,
    ///  "causes": ["ejected", ...], "reason": "...", "since": ms}
    /// ```
    static func write(_ s: ServerRuntime, upstream: UpstreamConfig, clock: AdminClock, to w: inout JSONWriter) {
        let h = s.health
        let r = h.snapshot
        let flags = h.flags
        w.object { w in
            w.field("active_checks", upstream.healthCheck != nil)
            w.key("last_check")
            if let ok = r.lastProbeOK { w.value(ok ? "ok" : "failed") } else { w.null() }
            w.key("last_check_at")
            if r.lastProbeOK != nil { w.value(r.lastProbeWallMs) } else { w.null() }
            w.field("last_check_detail", r.lastProbeOK != nil ? r.lastProbeDetail : nil)
            w.field("consecutive_check_successes", r.probeSuccessesInARow)
            w.field("consecutive_check_failures", r.probeFailuresInARow)
            w.field("passive_checks", upstream.passiveHealth != nil)
            w.field("consecutive_failures", h.consecutiveFailures.load(ordering: .relaxed))
            w.field("ejections", h.ejections)
            w.key("ejected_until")
            if flags.contains(.ejected) { w.value(clock.wall(fromMonotonic: h.ejectedUntil)) } else { w.null() }
            w.field("causes", array: { w in for c in causes(flags) { w.value(c) } })
            w.field("reason", r.reason)
            w.field("since", r.sinceWallMs)
        }
    }
}
