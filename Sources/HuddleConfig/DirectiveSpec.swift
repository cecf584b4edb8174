// The grammar of one directive: how many arguments, which options and flags, and whether it takes a block.

struct DirectiveSpec: Sendable {
    enum Block: Sendable { case forbidden, required, optional }

    var name: String
    /// How many positional arguments; `Int.max` for "any number".
    var arguments: ClosedRange<Int>
    /// Keys accepted as `key=value` after the positional arguments.
    var options: [String] = []
    /// Bare words accepted after the positional arguments.
    var flags: [String] = []
    var block: Block = .forbidden
    var repeatable = false

    var takesNamedArguments: Bool { !options.isEmpty || !flags.isEmpty }

    /// For messages: `weight=, name=, resolve, backup, down`.
    var namedArgumentList: String {
        (options.map { $0 + "=" } + flags).joined(separator: ", ")
    }
}
