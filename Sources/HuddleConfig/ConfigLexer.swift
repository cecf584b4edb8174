// Splits config text into words, quoted strings and punctuation, tracking where each token starts.

/// Follows nginx: `#` starts a comment only where a token could start, so `a#b` is one word;
/// a double quote inside a word starts a quoted segment, so `name="a b"` is one word.
struct ConfigLexer {
    // Characters, not bytes or scalars, because columns in messages count what an editor shows.
    private let chars: [Character]
    private var index = 0
    private var line = 1
    private var column = 1
    private let file: String
    private(set) var errors: [ConfigError] = []
    /// Where an unterminated string began: it swallowed the rest of the input.
    private(set) var unterminatedString: SourceLocation?
    var hitUnterminatedString: Bool { unterminatedString != nil }

    init(text: String, file: String) {
        var chars = Array(text)
        // Some editors start files with a byte order mark; it is not part of the first directive's name.
        if chars.first == "\u{FEFF}" { chars.removeFirst() }
        self.chars = chars
        self.file = file
    }

    mutating func next() -> ConfigToken {
        skipSpaceAndComments()
        let startLine = line, startColumn = column
        func token(_ kind: ConfigToken.Kind, _ text: String = "") -> ConfigToken {
            ConfigToken(kind: kind, text: text, line: startLine, column: startColumn)
        }
        guard let c = peek() else { return token(.end) }
        switch c {
        case ";":
            advance()
            return token(.semicolon)
        case "{":
            advance()
            return token(.openBrace)
        case "}":
            advance()
            return token(.closeBrace)
        case "\"":
            var text = ""
            readQuoted(into: &text)
            if let n = peek(), !Self.endsToken(n) {
                error(line: line, column: column,
                      "expected a space, \";\" or \"{\" after the closing quote, found \(ConfigText.quoted(String(n)))")
                // Keep the rest with the string so the mistake stays one argument, not two.
                readWordRest(into: &text)
            }
            return token(.string, text)
        default:
            var text = ""
            readWordRest(into: &text)
            return token(.word, text)
        }
    }

    private mutating func readWordRest(into text: inout String) {
        while let n = peek(), !Self.endsToken(n) {
            if n == "\"" {
                readQuoted(into: &text)
            } else {
                text.append(n)
                advance()
            }
        }
    }

    private static func endsToken(_ c: Character) -> Bool {
        isSpace(c) || c == ";" || c == "{" || c == "}"
    }

    /// ASCII first: `Character.isWhitespace` looks up Unicode properties and dominated lexing time.
    private static func isSpace(_ c: Character) -> Bool {
        if let a = c.asciiValue { return a == 0x20 || (0x09...0x0D).contains(a) }
        return c.isWhitespace
    }

    private static func isNewline(_ c: Character) -> Bool {
        if let a = c.asciiValue { return a == 0x0A || a == 0x0D }
        return c.isNewline
    }

    private func peek() -> Character? {
        index < chars.count ? chars[index] : nil
    }

    private mutating func advance() {
        let c = chars[index]
        index += 1
        if Self.isNewline(c) {
            line += 1
            column = 1
        } else {
            column += 1
        }
    }

    private mutating func skipSpaceAndComments() {
        while let c = peek() {
            if Self.isSpace(c) {
                advance()
            } else if c == "#" {
                while let n = peek(), !Self.isNewline(n) { advance() }
            } else {
                return
            }
        }
    }

    /// Reads `"..."` starting at the opening quote, appending the unescaped contents.
    private mutating func readQuoted(into text: inout String) {
        let openLine = line, openColumn = column
        advance()
        while let c = peek() {
            if c == "\"" {
                advance()
                return
            }
            if c == "\\" {
                let escLine = line, escColumn = column
                advance()
                guard let n = peek() else { break }
                if n == "\"" || n == "\\" {
                    text.append(n)
                } else {
                    error(line: escLine, column: escColumn,
                          "unknown escape \(ConfigText.quoted("\\" + String(n))) in a quoted string (only \\\" and \\\\ are escapes)")
                    text.append("\\")
                    text.append(n)
                }
                advance()
                continue
            }
            text.append(c)
            advance()
        }
        unterminatedString = unterminatedString ?? SourceLocation(file: file, line: openLine, column: openColumn)
        error(line: openLine, column: openColumn, "unterminated string: expected a closing \" for the quote opened here")
    }

    private mutating func error(line: Int, column: Int, _ message: String) {
        errors.append(ConfigError(location: SourceLocation(file: file, line: line, column: column), message: message))
    }
}
