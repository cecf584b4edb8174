// Parses the shipped proxy.conf.sample and every Examples/*.conf, and checks the sample covers every directive.

import XCTest
@testable import HuddleConfig

final class ConfigFilesTests: XCTestCase {
    /// The repository root, found from this file's location: Tests/HuddleConfigTests/ThisFile.swift.
    private var root: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    func testSampleParses() throws {
        let path = root.appendingPathComponent("proxy.conf.sample").path
        let config = try ConfigParser.load(path: path)
        XCTAssertEqual(config.upstream(named: "chat")?.balance, .hash)
        XCTAssertEqual(config.servers.first?.routes.map(\.prefix), ["/static/", "/rooms/", "/"])
        let cache = try XCTUnwrap(config.servers.first?.routes.first?.cache)
        XCTAssertEqual(cache.size, 64 << 20)
        XCTAssertEqual(cache.ttl, 0)
        XCTAssertTrue(cache.shared)
        XCTAssertEqual(config.admin?.token, "change-me")
    }

    func testSampleUsesEveryDirective() throws {
        let path = root.appendingPathComponent("proxy.conf.sample").path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var parser = ConfigTreeParser(text: text, file: path)
        let (tree, errors) = parser.parse()
        XCTAssertTrue(errors.isEmpty)
        var used: [ConfigContext: Set<String>] = [:]
        // Option keys and flags actually written as arguments, per directive (comments do not count).
        var named: [String: Set<String>] = [:]
        func walk(_ directives: [ConfigDirective], _ context: ConfigContext) {
            for d in directives {
                used[context, default: []].insert(d.name)
                for a in d.arguments {
                    named["\(context).\(d.name)", default: []].insert(a.optionKey.map { $0 + "=" } ?? a.text)
                }
                let inner: ConfigContext? = switch (context, d.name) {
                case (.top, "admin"): .admin
                case (.top, "upstream"): .upstream
                case (.top, "server"): .server
                case (.server, "route"): .route
                default: nil
                }
                if let inner, let block = d.block { walk(block, inner) }
            }
        }
        walk(tree, .top)
        for context in ConfigContext.allCases {
            let missing = Set(context.specs.map(\.name)).subtracting(used[context] ?? [])
            XCTAssertTrue(missing.isEmpty, "proxy.conf.sample lacks \(missing.sorted()) \(context.phrase)")
            for spec in context.specs {
                let written = named["\(context).\(spec.name)"] ?? []
                for option in spec.options.map({ $0 + "=" }) + spec.flags where !written.contains(option) {
                    XCTFail("proxy.conf.sample never writes \(option) for \(spec.name)")
                }
            }
        }
    }

    func testEveryExampleParses() throws {
        let dir = root.appendingPathComponent("Examples")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".conf") }.sorted()
        XCTAssertEqual(Set(names).intersection(["http-balancing.conf", "websocket-groups.conf", "round-robin.conf"]).count, 3)
        for name in names {
            let path = dir.appendingPathComponent(name).path
            XCTAssertNoThrow(try ConfigParser.load(path: path), name)
        }
    }

    func testExamplesSayWhatTheyShow() throws {
        let dir = root.appendingPathComponent("Examples")
        let groups = try ConfigParser.load(path: dir.appendingPathComponent("websocket-groups.conf").path)
        let chat = try XCTUnwrap(groups.upstream(named: "chat"))
        XCTAssertEqual(chat.balance, .hash)
        XCTAssertNotNil(chat.hashBalanceFactor)
        let rooms = try XCTUnwrap(groups.servers.first?.routes.first { $0.upstream == "chat" })
        XCTAssertEqual(rooms.groupKeys.first, .path(2))
        XCTAssertTrue(rooms.groupKeys.dropFirst().contains { if case .header = $0 { true } else { false } })

        let http = try ConfigParser.load(path: dir.appendingPathComponent("http-balancing.conf").path)
        XCTAssertEqual(http.upstreams.first?.balance, .p2c)
        XCTAssertNotNil(http.upstreams.first?.healthCheck)

        let rr = try ConfigParser.load(path: dir.appendingPathComponent("round-robin.conf").path)
        XCTAssertEqual(rr.upstreams.first?.balance, .roundRobin)

        for config in [groups, http, rr] {
            for listen in config.servers.flatMap(\.listens) {
                XCTAssertEqual(listen.address.host, "127.0.0.1", "\(config.file)")
            }
        }
    }
}
