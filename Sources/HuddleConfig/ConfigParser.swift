// Entry point: reads a config file or text and returns a validated `HuddleConfig`, or every problem found.

#if canImport(Glibc)
import Glibc
import HuddleSys
#elseif canImport(Darwin)
import Darwin
#endif

public enum ConfigParser {
    /// Parses `text`; `file` is only used in error locations and stored in the result.
    public static func parse(text: String, file: String) throws(ConfigErrors) -> HuddleConfig {
        var tree = ConfigTreeParser(text: text, file: file)
        let (directives, syntaxErrors) = tree.parse()
        var builder = ConfigBuilder(file: file)
        builder.inputTruncated = tree.truncated
        let config = builder.build(directives)
        var meaningErrors = builder.errors
        if let cut = tree.unterminatedString {
            meaningErrors.removeAll { ($0.location.line, $0.location.column) >= (cut.line, cut.column) }
        }
        let all = syntaxErrors + meaningErrors
        guard all.isEmpty else { throw ConfigErrors(sorted(all)) }
        return config
    }

    /// Reads and parses the file at `path`; an unreadable file is one error at `PATH:1:1`.
    public static func load(path: String) throws(ConfigErrors) -> HuddleConfig {
        let text: String
        switch readFile(path) {
        case .success(let t): text = t
        case .failure(let failure):
            throw ConfigErrors([ConfigError(location: SourceLocation(file: path, line: 1, column: 1), message: failure.message)])
        }
        return try parse(text: text, file: path)
    }

    /// By position, stable for errors at the same spot, without exact repeats.
    private static func sorted(_ errors: [ConfigError]) -> [ConfigError] {
        let ordered = errors.enumerated().sorted { x, y in
            let (a, b) = (x.element.location, y.element.location)
            return (a.line, a.column, x.offset) < (b.line, b.column, y.offset)
        }.map(\.element)
        struct Key: Hashable { var location: SourceLocation; var message: String }
        var seen = Set<Key>()
        return ordered.filter { seen.insert(Key(location: $0.location, message: $0.message)).inserted }
    }

    /// Config files are small; a wrong path (a device, a huge log) is refused before it eats memory.
    private static func readFile(_ path: String) -> Result<String, ConfigParserReadError> {
        let bytes: [UInt8]
        do {
            bytes = try Sys.readWholeFile(path, limit: 16 << 20)
        } catch {
            return .failure(.init(error.code == EFBIG ? "cannot read file: larger than 16 MiB" : "cannot read file: \(error.message)"))
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            return .failure(.init("cannot read file: not valid UTF-8"))
        }
        return .success(text)
    }
}

/// Why a config file could not be read, already phrased for the error line.
struct ConfigParserReadError: Error {
    var message: String
    init(_ message: String) { self.message = message }
}
