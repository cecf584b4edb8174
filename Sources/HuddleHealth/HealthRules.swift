// The rules of health, pure and table-tested: when active probes flip a server, and how long a passive ejection lasts.

/// Active checks: `fall` failures in a row take a server out, `rise` successes in a row bring it back.
public struct ActiveCheckCounter: Sendable, Equatable {
    public let rise: Int
    public let fall: Int
    public private(set) var down: Bool
    public private(set) var consecutiveSuccesses = 0
    public private(set) var consecutiveFailures = 0

    public init(rise: Int, fall: Int, startDown: Bool) {
        self.rise = max(1, rise)
        self.fall = max(1, fall)
        down = startDown
    }

    /// Records one probe; returns the new `down` when this probe flipped it, nil otherwise.
    public mutating func record(success: Bool) -> Bool? {
        if success {
            consecutiveSuccesses += 1
            consecutiveFailures = 0
            if down && consecutiveSuccesses >= rise {
                down = false
                return false
            }
        } else {
            consecutiveFailures += 1
            consecutiveSuccesses = 0
            if !down && consecutiveFailures >= fall {
                down = true
                return true
            }
        }
        return nil
    }
}

/// Passive health: how failures observed on real traffic turn into ejections.
public struct EjectionPolicy: Sendable, Equatable {
    /// Consecutive failures that eject a server.
    public let failures: Int
    /// The first ejection's length, in ms; the n-th lasts n times as long, up to `maxEjectionMs`.
    public let ejectionMs: Int64
    public let maxEjectionMs: Int64
    /// Percent of an upstream's servers that may be ejected at once.
    public let maxEjectedPercent: Int
    /// 5xx answers count as failures.
    public let countServerErrors: Bool

    public init(failures: Int, ejectionMs: Int64, maxEjectedPercent: Int, countServerErrors: Bool, maxEjectionMs: Int64? = nil) {
        self.failures = max(1, failures)
        self.ejectionMs = max(1, ejectionMs)
        self.maxEjectionMs = max(self.ejectionMs, maxEjectionMs ?? max(300_000, ejectionMs))
        self.maxEjectedPercent = min(100, max(0, maxEjectedPercent))
        self.countServerErrors = countServerErrors
    }

    /// How long the ejection that is the `n`-th of this server (1-based) lasts.
    public func duration(ejection n: Int) -> Int64 {
        let n64 = Int64(max(1, n))
        let (d, overflow) = ejectionMs.multipliedReportingOverflow(by: n64)
        return overflow ? maxEjectionMs : min(d, maxEjectionMs)
    }

    /// How many of `servers` may be ejected at the same time (rounded down, as Envoy's max_ejection_percent).
    public func maxEjected(of servers: Int) -> Int {
        servers * maxEjectedPercent / 100
    }

    /// After this long without an ejection, a server's ejection count starts over.
    public var forgetAfterMs: Int64 { maxEjectionMs * 2 }
}
