// The built-in demo's configuration and the banner that tells a new user what to try.
import HuddleConfig

enum DemoConfig {
    static let proxyPort: UInt16 = 8080
    static let adminPort: UInt16 = 9090

    static func make(backends: [(name: String, port: UInt16)]) -> HuddleConfig {
        let here = SourceLocation(file: "<demo>", line: 0, column: 0)
        var c = HuddleConfig(file: "<demo>")
        c.workers = 2
        c.shutdownTimeout = 2000
        c.accessLog.target = .stderr
        c.admin = AdminConfig(address: ListenAddress(host: "127.0.0.1", port: adminPort), token: nil, location: here)
        func servers() -> [ServerConfig] {
            backends.map { b in
                var s = ServerConfig(address: ListenAddress(host: "127.0.0.1", port: b.port), identity: b.name, location: here)
                s.weight = 1
                return s
            }
        }
        var web = UpstreamConfig(name: "web", location: here)
        web.servers = servers()
        var rooms = UpstreamConfig(name: "rooms", location: here)
        rooms.balance = .hash
        rooms.servers = servers()
        rooms.groupLinger = 5000
        c.upstreams = [web, rooms]
        var block = ServerBlockConfig(location: here)
        block.listens = [ListenConfig(address: ListenAddress(host: "127.0.0.1", port: proxyPort), location: here)]
        var roomRoute = RouteConfig(prefix: "/rooms/", upstream: "rooms", location: here)
        roomRoute.groupKeys = [.path(2)]
        roomRoute.groupKeyMissing = .reject
        block.routes = [roomRoute, RouteConfig(prefix: "/", upstream: "web", location: here)]
        c.servers = [block]
        return c
    }

    static func banner(backends: [(name: String, address: String)]) -> String {
        let list = backends.map { "    \($0.name) on \($0.address)" }.joined(separator: "\n")
        return """
        Huddle demo is running (no config given).
          proxy  http://127.0.0.1:\(proxyPort)/   (p2c across three in-process backends)
          admin  http://127.0.0.1:\(adminPort)/api/backends
        backends:
        \(list)

        Try:
          curl -s http://127.0.0.1:\(proxyPort)/            # answered by one of demo-a, demo-b, demo-c (X-Backend header says which)
          for i in 1 2 3 4 5 6; do curl -s http://127.0.0.1:\(proxyPort)/; done
          open http://127.0.0.1:\(proxyPort)/rooms/lobby in two browser tabs: a chat room; every member lands on one backend
          curl -s 'http://127.0.0.1:\(adminPort)/api/lookup?upstream=rooms&key=lobby'
          curl -s 'http://127.0.0.1:\(adminPort)/api/groups?upstream=rooms'
        Stop with Ctrl-C.
        """
    }
}
