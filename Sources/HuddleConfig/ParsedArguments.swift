// A directive's arguments after sorting them by the directive's grammar.

/// A directive's arguments sorted into positional ones, `key=value` options and flags.
struct ParsedArguments {
    var positional: [ConfigArgument] = []
    /// Option values, located at the value (after the `=`).
    var options: [String: ConfigArgument] = [:]
    var flags: [String: SourceLocation] = [:]

    subscript(_ i: Int) -> ConfigArgument { positional[i] }
}
