// huddle: command line, signals and wiring. With no config it runs the built-in demo.
import Foundation
import Glibc
import HuddleAdmin
import HuddleConfig
import HuddleDemo
import HuddleIO
import HuddleProxy
import HuddleSys

let version = "0.1.0"

let usage = """
usage: huddle [-c FILE] [-t] [--version] [--help]

  (no arguments)        start the built-in demo: proxy on 127.0.0.1:8080, admin on 127.0.0.1:9090,
                        three in-process demo backends
  -c, --config FILE     run with this config, in the foreground
  -t, --check           validate the config given with -c and exit (0: "FILE: ok"; 1: one line per problem)
  -v, --version         print the version
  -h, --help            print this help

signals: SIGHUP reloads the config file; SIGTERM/SIGINT stop gracefully (shutdown_timeout).
"""

/// Writes a line to standard error (no shared C FILE state involved).
func printErr(_ s: String) {
    var line = s + "\n"
    line.withUTF8 { p in _ = Glibc.write(2, p.baseAddress, p.count) }
}

func printOut(_ s: String) {
    var line = s + "\n"
    line.withUTF8 { p in _ = Glibc.write(1, p.baseAddress, p.count) }
}

func fail(_ message: String) -> Never {
    printErr("huddle: \(message)")
    exit(2)
}

var configPath: String? = nil
var checkOnly = false
var args = CommandLine.arguments.dropFirst()
while let a = args.popFirst() {
    switch a {
    case "-c", "--config":
        guard let p = args.popFirst() else { fail("\(a) needs a file name\n\(usage)") }
        configPath = p
    case "-t", "--check":
        checkOnly = true
    case "-v", "--version":
        print("huddle \(version)")
        exit(0)
    case "-h", "--help":
        print(usage)
        exit(0)
    default:
        if a.hasPrefix("--config=") {
            configPath = String(a.dropFirst("--config=".count))
        } else {
            fail("unknown argument \"\(a)\"\n\(usage)")
        }
    }
}

func loadConfig(_ path: String) -> Result<HuddleConfig, ConfigErrors> {
    do {
        return .success(try ConfigParser.load(path: path))
    } catch {
        return .failure(error)
    }
}

if checkOnly {
    guard let path = configPath else { fail("-t needs a config: huddle -t -c FILE") }
    switch loadConfig(path) {
    case .success:
        print("\(path): ok")
        exit(0)
    case .failure(let errors):
        for e in errors.errors { printErr("\(e)") }
        exit(1)
    }
}

// Signals are handled through a signalfd on the control loop: block them before any thread starts.
let handledSignals: [Int32] = [SIGHUP, SIGTERM, SIGINT]
Sys.blockSignals(handledSignals + [SIGPIPE])

var config: HuddleConfig
var demoBackends: [DemoBackend] = []
if let path = configPath {
    switch loadConfig(path) {
    case .success(let c): config = c
    case .failure(let errors):
        for e in errors.errors { printErr("\(e)") }
        exit(1)
    }
} else {
    // The built-in demo: three backends on ephemeral loopback ports, a p2c route and a chat-room route.
    do {
        for name in ["demo-a", "demo-b", "demo-c"] {
            demoBackends.append(try DemoBackend.start(DemoBackendOptions(name: name, listen: [SocketAddress(ip: "127.0.0.1", port: 0)!])))
        }
    } catch {
        fail("cannot start the demo backends: \(error)")
    }
    config = DemoConfig.make(backends: demoBackends.map { ($0.name, $0.boundAddresses[0].port) })
}

let proxy: Proxy
do {
    proxy = try Proxy(config: config)
    try proxy.start()
} catch let e as ConfigErrors {
    for x in e.errors { printErr("\(x)") }
    exit(1)
} catch {
    fail("cannot start: \(error)")
}

let control: EventLoop
do {
    control = try EventLoop(id: -1)
} catch {
    fail("cannot create the control loop: \(error)")
}

var admin: AdminServer? = nil
if let a = config.admin {
    do {
        admin = try AdminServer(loop: control, proxy: proxy, config: a)
    } catch let e as ConfigErrors {
        for x in e.errors { printErr("\(x)") }
        proxy.shutdown(timeoutMs: 0)
        exit(1)
    } catch {
        fail("cannot start the admin port: \(error)")
    }
}

/// Reloads from the config file (SIGHUP, POST /api/reload or reload_on_change).
final class Reloader: Sendable {
    let path: String?
    let proxy: Proxy
    /// Runs after a reload was applied, with the new config (turns reload_on_change on or off).
    let applied: @Sendable (HuddleConfig) -> Void
    init(path: String?, proxy: Proxy, applied: @escaping @Sendable (HuddleConfig) -> Void) {
        self.path = path
        self.proxy = proxy
        self.applied = applied
    }

    /// Reloads and logs the outcome; POST /api/reload also renders it as its JSON answer.
    func reload() -> ReloadOutcome {
        guard let path else {
            proxy.errorLog.warn("reload requested, but the demo has no config file to reload")
            return .unavailable("the demo runs without a config file")
        }
        switch loadConfig(path) {
        case .failure(let errors):
            for e in errors.errors { proxy.errorLog.error("reload: \(e)") }
            proxy.errorLog.error("reload failed; the running configuration stays")
            proxy.recordFailedReload(errors.description)
            return .invalid(errors.errors)
        case .success(let c):
            switch proxy.reload(c) {
            case .success(let gen):
                applied(c)
                return .reloaded(generation: gen)
            case .failure(let e):
                proxy.errorLog.error("reload failed: \(e); the running configuration stays")
                if let errors = e as? ConfigErrors { return .invalid(errors.errors) }
                return .failed("\(e)")
            }
        }
    }
}
/// Starts or stops the config watcher as the running config's `reload_on_change` says.
final class WatcherControl: @unchecked Sendable {
    // SAFETY: on the control thread only (start, then reloads on the control loop).
    var watcher: ConfigWatcher?
    var reload: () -> Void = {}
    let path: String?
    let control: EventLoop
    let log: ErrorLog
    init(path: String?, control: EventLoop, log: ErrorLog) {
        self.path = path
        self.control = control
        self.log = log
    }

    func follow(_ config: HuddleConfig) {
        if config.reloadOnChange, watcher == nil, let path {
            let w = ConfigWatcher(path: path, loop: control, log: log, reload: { [unowned self] in reload() })
            do {
                try w.start()
                watcher = w
            } catch {
                log.error("reload_on_change: cannot watch \(w.directory): \(error); reload with SIGHUP instead")
            }
        } else if !config.reloadOnChange, let w = watcher {
            w.stop()
            watcher = nil
        }
    }
}
let watcherControl = WatcherControl(path: configPath, control: control, log: proxy.errorLog)
let reloader = Reloader(path: configPath, proxy: proxy, applied: { watcherControl.follow($0) })
watcherControl.reload = { _ = reloader.reload() }
watcherControl.follow(config)
admin?.onReload = { reloader.reload() }

/// Reads pending signals on the control loop.
final class SignalHandler: EventHandler {
    let fd: Int32
    let reloader: Reloader
    let control: EventLoop
    var stopRequested = false
    init(fd: Int32, reloader: Reloader, control: EventLoop) {
        self.fd = fd
        self.reloader = reloader
        self.control = control
    }
    var proxy: Proxy { reloader.proxy }
    func handleEvent(_ events: UInt32) {
        while let sig = Sys.readSignal(fd) {
            switch sig {
            case SIGHUP:
                proxy.errorLog.info("SIGHUP: reloading configuration")
                _ = reloader.reload()
            case SIGTERM, SIGINT:
                proxy.errorLog.info("signal \(sig): shutting down gracefully")
                stopRequested = true
                control.stop()
            default:
                break
            }
        }
    }
}

let signals: SignalHandler
do {
    let sfd = try Sys.signalfd(handledSignals)
    signals = SignalHandler(fd: sfd, reloader: reloader, control: control)
    _ = try control.register(fd: sfd, events: Events.readable, handler: signals)
} catch {
    fail("cannot set up signal handling: \(error)")
}

/// Once a second on the control loop: expire lingering groups so the table holds only live and recently left groups,
/// and clear rate-limit buckets that are full again.
final class Housekeeping: TimerNode {
    let proxy: Proxy
    let loop: EventLoop
    init(proxy: Proxy, loop: EventLoop) {
        self.proxy = proxy
        self.loop = loop
    }
    override func timerFired(now: Int64) {
        proxy.sweepGroups()
        proxy.sweepRateLimits()
        loop.timers.schedule(self, at: now + 1000)
    }
}
proxy.attachControlLoop(control)
let housekeeping = Housekeeping(proxy: proxy, loop: control)
control.timers.schedule(housekeeping, at: Sys.monotonicMs() + 1000)

if configPath == nil {
    printOut(DemoConfig.banner(backends: demoBackends.map { ($0.name, $0.boundAddresses[0].description) }))
}

control.run()
watcherControl.watcher?.stop()
proxy.shutdown(timeoutMs: config.shutdownTimeout)
for b in demoBackends { b.stop() }
exit(0)
