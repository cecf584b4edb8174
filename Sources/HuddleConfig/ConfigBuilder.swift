// Gives the directive tree its meaning: checks each directive's shape and values and fills in `HuddleConfig`.

struct ConfigBuilder {
    let file: String
    var config: HuddleConfig
    var errors: [ConfigError] = []
    /// Set by the caller when the input ended early; checks for missing pieces would then only add noise.
    var inputTruncated = false

    // Cross-references, checked once the whole file has been read.
    var upstreamLocations: [String: SourceLocation] = [:]
    var upstreamReferences: [(prefix: String, name: ConfigArgument)] = []
    var addressSites: [(address: ListenAddress, location: SourceLocation, isAdmin: Bool)] = []

    init(file: String) {
        self.file = file
        self.config = HuddleConfig(file: file)
    }

    mutating func build(_ directives: [ConfigDirective]) -> HuddleConfig {
        for (d, a) in accepted(directives, in: .top) {
            applyTopLevel(d, a)
        }
        validateReferences()
        return config
    }

    // MARK: - Errors

    mutating func error(_ location: SourceLocation, _ message: String) {
        errors.append(ConfigError(location: location, message: message))
    }

    // MARK: - Directive shape

    /// The directives of one block that are known there, appear no more often than allowed and have
    /// well-formed arguments; everything else is reported and dropped.
    mutating func accepted(_ directives: [ConfigDirective], in context: ConfigContext) -> [(ConfigDirective, ParsedArguments)] {
        var result: [(ConfigDirective, ParsedArguments)] = []
        var firstSeen: [String: SourceLocation] = [:]
        for d in directives {
            guard let spec = context.spec(named: d.name) else {
                reportUnknown(d, in: context)
                continue
            }
            if context == .top, d.name == "server", !d.arguments.isEmpty, d.block == nil {
                error(d.location, "\"server \(d.arguments[0].text)\" belongs in an upstream block; a top-level server block takes no arguments")
                continue
            }
            if !spec.repeatable {
                if let first = firstSeen[d.name] {
                    error(d.location, "duplicate \(ConfigText.quoted(d.name)) (first at \(first))")
                    continue
                }
                firstSeen[d.name] = d.location
            }
            guard let parsed = parseArguments(d, spec) else { continue }
            switch (spec.block, d.block) {
            case (.forbidden, .some):
                error(d.terminator, "\(ConfigText.quoted(d.name)) takes no block: expected \";\"")
            case (.required, .none):
                error(d.terminator, "\(ConfigText.quoted(d.name)) needs a block: expected \"{\", found \";\"")
            default:
                break
            }
            result.append((d, parsed))
        }
        return result
    }

    /// Whether a block contains `name`, or an unknown directive that is probably a misspelling of it:
    /// then "block has no NAME" would only repeat an error already reported.
    func mentions(_ block: [ConfigDirective]?, _ name: String, in context: ConfigContext) -> Bool {
        let names = context.specs.map(\.name)
        return (block ?? []).contains { d in
            d.name == name || (context.spec(named: d.name) == nil && ConfigText.suggestion(for: d.name, among: names) == name)
        }
    }

    private mutating func reportUnknown(_ d: ConfigDirective, in context: ConfigContext) {
        if let home = ConfigContext.allCases.first(where: { $0 != context && $0.spec(named: d.name) != nil }) {
            error(d.location, "\(ConfigText.quoted(d.name)) is not allowed \(context.phrase) (it belongs in \(home.place))")
            return
        }
        let names = context.specs.map(\.name)
        error(d.location, "unknown directive \(ConfigText.quoted(d.name)) \(context.phrase) (expected one of: \(names.joined(separator: ", ")))"
            + ConfigText.didYouMean(d.name, among: names))
    }

    /// Splits arguments per the spec; nil (after reporting) when their number or names are wrong.
    private mutating func parseArguments(_ d: ConfigDirective, _ spec: DirectiveSpec) -> ParsedArguments? {
        var parsed = ParsedArguments()
        var ok = true
        var excess: [ConfigArgument] = []
        for arg in d.arguments {
            // A known option or flag is never taken as a positional argument, so "access_log format=json;"
            // is reported as missing its target instead of logging to a file named "format=json".
            let isKnownNamed = arg.optionKey.map { spec.options.contains(String($0)) } ?? (!arg.quoted && spec.flags.contains(arg.text))
            let stillPositional = parsed.options.isEmpty && parsed.flags.isEmpty
                && parsed.positional.count < spec.arguments.upperBound && !isKnownNamed
            if stillPositional {
                parsed.positional.append(arg)
            } else if !spec.takesNamedArguments {
                excess.append(arg)
            } else if let key = arg.optionKey {
                let key = String(key)
                if !spec.options.contains(key) {
                    ok = false
                    error(arg.location, "unknown option \(ConfigText.quoted(arg.text)) for \(ConfigText.quoted(d.name)) (expected one of: \(spec.namedArgumentList))"
                        + ConfigText.didYouMean(key, among: spec.options))
                } else if parsed.options[key] != nil {
                    ok = false
                    error(arg.location, "duplicate option \(ConfigText.quoted(key + "=")) for \(ConfigText.quoted(d.name))")
                } else {
                    parsed.options[key] = arg.optionValue
                }
            } else if !arg.quoted, spec.flags.contains(arg.text) {
                if parsed.flags[arg.text] != nil {
                    ok = false
                    error(arg.location, "duplicate \(ConfigText.quoted(arg.text)) for \(ConfigText.quoted(d.name))")
                } else {
                    parsed.flags[arg.text] = arg.location
                }
            } else {
                ok = false
                let what = spec.flags.isEmpty ? "unexpected argument" : "unknown option"
                error(arg.location, "\(what) \(ConfigText.quoted(arg.text)) for \(ConfigText.quoted(d.name)) (expected one of: \(spec.namedArgumentList))"
                    + ConfigText.didYouMean(arg.text, among: spec.flags))
            }
        }
        let found = parsed.positional.count + excess.count
        if !excess.isEmpty || parsed.positional.count < spec.arguments.lowerBound {
            let at = excess.first?.location ?? d.location
            var message = "\(ConfigText.quoted(d.name)) takes \(Self.describeCount(spec.arguments)), found \(found)"
            if at.line > d.location.line {
                // nginx-style syntax reads the next line as more arguments when a ";" is forgotten.
                message += "; is a \";\" missing at the end of line \(d.location.line)?"
            }
            error(at, message)
            return nil
        }
        return ok ? parsed : nil
    }

    private static func describeCount(_ range: ClosedRange<Int>) -> String {
        func plural(_ n: Int) -> String { n == 1 ? "1 argument" : "\(n) arguments" }
        if range.upperBound == 0 { return "no arguments" }
        if range.lowerBound == range.upperBound { return plural(range.lowerBound) }
        if range.upperBound == Int.max { return "at least \(plural(range.lowerBound))" }
        return "\(range.lowerBound) to \(plural(range.upperBound))"
    }

    // MARK: - Values

    mutating func duration(_ a: ConfigArgument, of directive: String, positive: Bool = false) -> Milliseconds? {
        guard let ms = ConfigValue.duration(a.text[...]) else {
            error(a.location, "expected a duration such as 250ms, 2s, 5m or 1h, found \(ConfigText.quoted(a.text))")
            return nil
        }
        if positive, ms == 0 {
            error(a.location, "\(ConfigText.quoted(directive)) must be longer than 0, found \(ConfigText.quoted(a.text))")
            return nil
        }
        return ms
    }

    mutating func integer(_ a: ConfigArgument, of directive: String, in range: ClosedRange<Int>) -> Int? {
        guard let n = ConfigValue.integer(a.text[...]) else {
            error(a.location, "expected a whole number for \(ConfigText.quoted(directive)), found \(ConfigText.quoted(a.text))")
            return nil
        }
        guard range.contains(n) else {
            error(a.location, "\(ConfigText.quoted(directive)) must be between \(range.lowerBound) and \(range.upperBound), found \(n)")
            return nil
        }
        return n
    }

    mutating func size(_ a: ConfigArgument, of directive: String, in range: ClosedRange<Int64>, rangeText: String? = nil) -> Int64? {
        guard let n = ConfigValue.size(a.text[...]) else {
            error(a.location, "expected a size such as 512, 16k, 10m or 1g, found \(ConfigText.quoted(a.text))")
            return nil
        }
        guard range.contains(n) else {
            let bounds = rangeText ?? "\(range.lowerBound) and \(range.upperBound) bytes"
            error(a.location, "\(ConfigText.quoted(directive)) must be between \(bounds), found \(ConfigText.quoted(a.text))")
            return nil
        }
        return n
    }

    mutating func percent(_ a: ConfigArgument, of directive: String) -> Int? {
        guard let n = ConfigValue.percent(a.text[...]) else {
            error(a.location, "expected a percentage from 0% to 100% such as 50% for \(ConfigText.quoted(directive)), found \(ConfigText.quoted(a.text))")
            return nil
        }
        return n
    }

    mutating func keyword(_ a: ConfigArgument, of directive: String, among choices: [String]) -> String? {
        if choices.contains(a.text) { return a.text }
        error(a.location, "expected one of \(choices.joined(separator: ", ")) for \(ConfigText.quoted(directive)), found \(ConfigText.quoted(a.text))"
            + ConfigText.didYouMean(a.text, among: choices))
        return nil
    }

    mutating func listenAddress(_ a: ConfigArgument) -> ListenAddress? {
        guard let address = ConfigValue.listenAddress(a.text[...]) else {
            error(a.location, "expected an address such as 127.0.0.1:8080, [::1]:8080, *:8080 or 8080, found \(ConfigText.quoted(a.text))")
            return nil
        }
        return address
    }

    /// Words that end up in URLs, metric labels and JSON: a conservative alphabet keeps them safe everywhere.
    mutating func name(_ a: ConfigArgument, for what: String) -> String? {
        let ok = !a.text.isEmpty && a.text.utf8.allSatisfy { c in
            (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
                || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
                || c == UInt8(ascii: "-") || c == UInt8(ascii: "_") || c == UInt8(ascii: ".")
        }
        guard ok else {
            error(a.location, "\(what) may contain only letters, digits, \"-\", \"_\" and \".\", found \(ConfigText.quoted(a.text))")
            return nil
        }
        return a.text
    }

    /// HTTP header names, cookie and query parameter names, upgrade protocols: an RFC 9110 token.
    mutating func token(_ a: ConfigArgument, for what: String) -> String? {
        let extra = Set("!#$%&'*+-.^_`|~".utf8)
        let ok = !a.text.isEmpty && a.text.utf8.allSatisfy { c in
            (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
                || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || extra.contains(c)
        }
        guard ok else {
            error(a.location, "expected \(what) made of letters, digits and !#$%&'*+-.^_`|~, found \(ConfigText.quoted(a.text))")
            return nil
        }
        return a.text
    }
}
