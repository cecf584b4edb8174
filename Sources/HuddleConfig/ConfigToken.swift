// One lexical token of the config language, with the 1-based line and column where it starts.

struct ConfigToken: Sendable {
    enum Kind: Sendable, Equatable {
        /// Unquoted text; may embed quoted segments, as in `name="a b"`.
        case word
        /// Text that began with a double quote; never a directive option.
        case string
        case semicolon
        case openBrace
        case closeBrace
        case end
    }

    var kind: Kind
    /// Words and strings with escapes resolved; empty for punctuation.
    var text: String
    var line: Int
    var column: Int
}
