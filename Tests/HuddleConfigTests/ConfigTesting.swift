// Shared helpers for the config tests: parse text under a fixed file name and collect error lines.

import XCTest
@testable import HuddleConfig

let testFile = "t.conf"

/// A config that must be valid; a failure reports every error line.
func parseForTesting(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> HuddleConfig? {
    do {
        return try ConfigParser.parse(text: text, file: testFile)
    } catch {
        XCTFail("unexpected errors:\n\(error)", file: file, line: line)
        return nil
    }
}

/// The `FILE:LINE:COLUMN: error: ...` lines for a config that must be invalid.
func errorsForTesting(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> [String] {
    do {
        _ = try ConfigParser.parse(text: text, file: testFile)
        XCTFail("expected errors, but the config parsed", file: file, line: line)
        return []
    } catch {
        return error.errors.map(\.description)
    }
}

/// Asserts exactly one error, at `line:column`, whose message contains `fragment`.
func assertSingleError(_ text: String, at position: (Int, Int), contains fragment: String,
                       file: StaticString = #filePath, line: UInt = #line) {
    let errors = errorsForTesting(text, file: file, line: line)
    XCTAssertEqual(errors.count, 1, "errors: \(errors)", file: file, line: line)
    guard let first = errors.first else { return }
    let prefix = "\(testFile):\(position.0):\(position.1): error: "
    XCTAssertTrue(first.hasPrefix(prefix), "\(first) does not start with \(prefix)", file: file, line: line)
    XCTAssertTrue(first.contains(fragment), "\(first) does not contain \(fragment)", file: file, line: line)
}

/// A minimal valid body to wrap the directive under test in.
let minimalUpstream = "upstream web { server 127.0.0.1:9001; }\n"
