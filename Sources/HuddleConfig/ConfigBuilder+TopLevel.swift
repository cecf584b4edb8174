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
