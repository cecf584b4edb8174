// Turns tokens into a tree of directives, recovering at the next ";" or "}" so one pass finds many mistakes.

struct ConfigTreeParser {
    private var lexer: ConfigLexer
    private let file: String
    private var errors: [ConfigError] = []
    /// The input ended inside a block or directive, so "missing X" checks would only repeat the same mistake.
    private(set) var truncated = false
    /// Meaning given to anything from here on is a guess: an unterminated string swallowed it.
    var unterminatedString: SourceLocation? { lexer.unterminatedString }

    /// Real configs nest three deep; the cap keeps hostile input from exhausting the stack.
    static let maximumDepth = 16

    /// An unterminated string or an inner block already accounts for the input ending early.
    private var endAlreadyExplained: Bool { truncated || lexer.hitUnterminatedString }

    init(text: String, file: String) {
        self.lexer = ConfigLexer(text: text, file: file)
        self.file = file
    }

    /// The top-level directives, plus every syntax error found.
    mutating func parse() -> (directives: [ConfigDirective], errors: [ConfigError]) {
        let directives = parseBlock(opener: nil, depth: 0)
        if lexer.hitUnterminatedString { truncated = true }
        return (directives, errors + lexer.errors)
    }

    private func location(_ t: ConfigToken) -> SourceLocation {
        SourceLocation(file: file, line: t.line, column: t.column)
    }

    private mutating func error(_ t: ConfigToken, _ message: String) {
        errors.append(ConfigError(location: location(t), message: message))
    }

    private mutating func error(at location: SourceLocation, _ message: String) {
        errors.append(ConfigError(location: location, message: message))
    }

    /// Parses directives until the `}` matching `opener` (or end of input at top level).
    private mutating func parseBlock(opener: ConfigToken?, depth: Int) -> [ConfigDirective] {
        var directives: [ConfigDirective] = []
        while true {
            let t = lexer.next()
            switch t.kind {
            case .end:
                if let opener, !endAlreadyExplained {
                    // Only the innermost unclosed block is reported: the outer ones follow from it.
                    truncated = true
                    error(t, "unexpected end of file: expected \"}\" to close the block opened at \(opener.line):\(opener.column)")
                }
                return directives
            case .closeBrace:
                if opener != nil { return directives }
                error(t, "unexpected \"}\": there is no open block to close")
            case .semicolon:
                error(t, "unexpected \";\": expected a directive name")
            case .openBrace:
                error(t, "unexpected \"{\": expected a directive name before the block")
                _ = parseNested(opener: t, depth: depth)
            case .word, .string:
                // nginx also accepts a quoted directive name; the name check reports it if it is unknown.
                let (d, ending) = parseDirective(name: t, depth: depth)
                // Keep the directive even when cut short, so its own mistakes are still reported.
                directives.append(d)
                switch ending {
                case .terminated, .endOfInput: continue
                case .closeBrace:
                    if opener != nil { return directives }
                    error(at: d.terminator, "unexpected \"}\": there is no open block to close")
                }
            }
        }
    }

    private enum Ending { case terminated, closeBrace, endOfInput }

    /// Reads a directive's arguments and then its `;` or block.
    private mutating func parseDirective(name: ConfigToken, depth: Int) -> (ConfigDirective, Ending) {
        var arguments: [ConfigArgument] = []
        func directive(_ t: ConfigToken, _ block: [ConfigDirective]? = nil) -> ConfigDirective {
            ConfigDirective(name: name.text, location: location(name), arguments: arguments,
                            block: block, terminator: location(t))
        }
        while true {
            let t = lexer.next()
            switch t.kind {
            case .word, .string:
                arguments.append(ConfigArgument(text: t.text, location: location(t), quoted: t.kind == .string))
            case .semicolon:
                return (directive(t), .terminated)
            case .openBrace:
                return (directive(t, parseNested(opener: t, depth: depth)), .terminated)
            case .closeBrace:
                error(t, "expected \";\" to end \(ConfigText.quoted(name.text)), found \"}\"")
                return (directive(t), .closeBrace)
            case .end:
                if !endAlreadyExplained {
                    truncated = true
                    error(t, "unexpected end of file: expected \";\" or \"{\" after \(ConfigText.quoted(name.text))")
                }
                return (directive(t), .endOfInput)
            }
        }
    }

    private mutating func parseNested(opener: ConfigToken, depth: Int) -> [ConfigDirective] {
        guard depth + 1 < Self.maximumDepth else {
            error(opener, "blocks nested more than \(Self.maximumDepth) deep")
            skipBlock()
            return []
        }
        return parseBlock(opener: opener, depth: depth + 1)
    }

    /// Skips to the `}` that matches an already consumed `{`.
    private mutating func skipBlock() {
        var open = 1
        while open > 0 {
            let t = lexer.next()
            switch t.kind {
            case .openBrace: open += 1
            case .closeBrace: open -= 1
            case .end:
                if !endAlreadyExplained {
                    truncated = true
                    errors.append(ConfigError(location: location(t), message: "unexpected end of file: expected \"}\""))
                }
                return
            default: continue
            }
        }
    }
}
