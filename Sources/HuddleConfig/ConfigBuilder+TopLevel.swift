// Top-level directives: process settings, logging and the admin port.

extension ConfigBuilder {
    mutating func applyTopLevel(_ d: ConfigDirective, _ a: ParsedArguments) {
        switch d.name {
        case "workers":
            if a[0].text == "auto" {
                config.workers = nil
            } else if ConfigValue.integer(a[0].text[...]) == nil {
                error(a[0].location, "expected \"auto\" or a number of workers, found \(ConfigText.quoted(a[0].text))")
            } else if let n = integer(a[0], of: "workers", in: 1...1024) {
                config.workers = n
            }
        case "shutdown_timeout":
            if let ms = duration(a[0], of: d.name) { config.shutdownTimeout = ms }
        case "max_connections":
            if let n = integer(a[0], of: d.name, in: 1...10_000_000) { config.maxConnectionsPerWorker = n }
        case "access_log":
            if let target = logTarget(a[0], of: d.name, allowOff: true) { config.accessLog.target = target }
            if let f = a.options["format"],
               let value = keyword(f, of: "format", among: ["combined", "json"]) {
                config.accessLog.format = LogFormat(rawValue: value)!
            }
        case "error_log":
            if let target = logTarget(a[0], of: d.name, allowOff: false) { config.errorLog.target = target }
            if let l = a.options["level"],
               let value = keyword(l, of: "level", among: ["debug", "info", "warn", "error"]) {
                let levels: [String: LogLevel] = ["debug": .debug, "info": .info, "warn": .warn, "error": .error]
                config.errorLog.level = levels[value]!
            }
        case "admin":
            applyAdmin(d, a)
        case "resolver":
            applyResolver(d, a)
        case "reload_on_change":
            if let v = keyword(a[0], of: d.name, among: ["on", "off"]) { config.reloadOnChange = v == "on" }
        case "upstream":
            applyUpstream(d, a)
        case "server":
            applyServerBlock(d, a)
        default:
            // Every name in ConfigContext.top is handled above.
            preconditionFailure("unhandled top-level directive \(d.name)")
        }
    }

    private mutating func logTarget(_ a: ConfigArgument, of directive: String, allowOff: Bool) -> LogTarget? {
        if a.text.isEmpty {
            error(a.location, "expected stderr, stdout\(allowOff ? ", off" : "") or a file path for \(ConfigText.quoted(directive)), found \"\"")
            return nil
        }
        // Quoted, the words are file names: "off" in quotes logs to a file called off, as in nginx.
        if a.quoted { return .file(a.text) }
        switch a.text {
        case "stderr": return .stderr
        case "stdout": return .stdout
        case "off":
            guard allowOff else {
                error(a.location, "\(ConfigText.quoted(directive)) cannot be turned off: use stderr, stdout or a path, and level=error to quieten it")
                return nil
            }
            return .off
        default:
            return .file(a.text)
        }
    }

    private mutating func applyResolver(_ d: ConfigDirective, _ a: ParsedArguments) {
        var servers: [ListenAddress] = []
        for arg in a.positional {
            guard let address = ConfigValue.nameserverAddress(arg.text[...]) else {
                error(arg.location, "expected a nameserver IP address such as 10.96.0.10, 127.0.0.1:5353 or [fd00::a]:53, found \(ConfigText.quoted(arg.text))")
                continue
            }
            servers.append(address)
        }
        var r = ResolverConfig(nameservers: servers, location: d.location)
        var ok = servers.count == a.positional.count
        if let v = a.options["valid"] {
            if let ms = bounded(v, of: "valid", 1000...300_000, "1s and 5m") { r.valid = ms } else { ok = false }
        }
        if let v = a.options["hold"] {
            if let ms = bounded(v, of: "hold", 0...86_400_000, "0 and 1d") { r.hold = ms } else { ok = false }
        }
        if let v = a.options["timeout"] {
            if let ms = bounded(v, of: "timeout", 100...30_000, "100ms and 30s") { r.timeout = ms } else { ok = false }
        }
        if ok { config.resolver = r }
    }

    /// A duration within `range` (milliseconds), reported with `text` as its bounds.
    private mutating func bounded(_ a: ConfigArgument, of what: String, _ range: ClosedRange<Milliseconds>, _ text: String) -> Milliseconds? {
        guard let ms = duration(a, of: what) else { return nil }
        guard range.contains(ms) else {
            error(a.location, "\(ConfigText.quoted(what)) must be between \(text), found \(ConfigText.quoted(a.text))")
            return nil
        }
        return ms
    }

    private mutating func applyAdmin(_ d: ConfigDirective, _ a: ParsedArguments) {
        guard let address = listenAddress(a[0]) else { return }
        var token: String?
        for (c, ca) in accepted(d.block ?? [], in: .admin) {
            switch c.name {
            case "token":
                if ca[0].text.isEmpty {
                    error(ca[0].location, "expected a non-empty token, found \"\"")
                } else {
                    token = ca[0].text
                }
            default:
                preconditionFailure("unhandled admin directive \(c.name)")
            }
        }
        config.admin = AdminConfig(address: address, token: token, location: d.location)
        addressSites.append((address, a[0].location, true))
    }
}
