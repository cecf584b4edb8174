// The syntax tree: one directive with its arguments and optional block, before any meaning is given to it.

struct ConfigArgument: Sendable {
    var text: String
    var location: SourceLocation
    /// Written as a quoted string: never read as a `key=value` option or a flag.
    var quoted: Bool

    /// `key=value` written unquoted, with a non-empty key.
    var optionKey: Substring? {
        guard !quoted, let eq = text.firstIndex(of: "="), eq != text.startIndex else { return nil }
        return text[..<eq]
    }

    /// The value half of an option, located where the value starts so errors point into it.
    var optionValue: ConfigArgument {
        guard let eq = text.firstIndex(of: "=") else { return self }
        var loc = location
        loc.column += text.distance(from: text.startIndex, to: eq) + 1
        return ConfigArgument(text: String(text[text.index(after: eq)...]), location: loc, quoted: false)
    }
}

struct ConfigDirective: Sendable {
    var name: String
    var location: SourceLocation
    var arguments: [ConfigArgument]
    /// nil when the directive ended with `;`.
    var block: [ConfigDirective]?
    /// The `;` or `{` that ended the argument list (or where it was missing).
    var terminator: SourceLocation
}
