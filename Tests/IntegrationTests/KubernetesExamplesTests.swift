// Examples/kubernetes/: every manifest parses (PyYAML) and, where kubernetes-validate is installed, validates against
// the Kubernetes API schemas; the pieces fit together (probes on the admin port, the config file where the command
// reads it, selectors, ports, grace period, sizing); and the ConfigMap's huddle.conf passes `huddle -t`.
// Starts no huddle: it only runs `huddle -t`.
import Foundation
import XCTest

final class KubernetesExamplesTests: HuddleTestCase {
    static let directory = Harness.root.appendingPathComponent("Examples/kubernetes")

    /// What one idle WebSocket costs a Huddle pod, from README "Capacity planning" (measured with
    /// Benchmarks/group_memory.py): 1,173 B of RSS for a tunnel in a group, plus its two sockets' kernel objects,
    /// about 4.2 KB each, which the pod's memory cgroup is charged for too. Rounded up to 9.5 KiB.
    static let bytesPerIdleConnection = 9_728
    /// RSS of a Huddle with no connections, rounded up (about 24 MiB measured with one worker).
    static let baseBytes = 64 << 20

    // MARK: loading

    struct Object {
        var file: String
        var json: [String: Any]
        var kind: String { json["kind"] as? String ?? "" }
        var name: String { (json["metadata"] as? [String: Any])?["name"] as? String ?? "" }
        var namespace: String? { (json["metadata"] as? [String: Any])?["namespace"] as? String }
    }

    static func manifestFiles() throws -> [URL] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
            .map { directory.appendingPathComponent($0) }
    }

    /// Every document of every manifest, parsed by PyYAML (safe_load_all) and handed over as JSON.
    func loadObjects(file: StaticString = #filePath, line: UInt = #line) throws -> [Object] {
        let files = try Self.manifestFiles()
        XCTAssertGreaterThanOrEqual(files.count, 5, "manifests in \(Self.directory.path)", file: file, line: line)
        var objects: [Object] = []
        for f in files {
            let script = "import json, sys, yaml\n"
                + "json.dump([d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None], sys.stdout)"
            let r = try Harness.run("/usr/bin/env", ["python3", "-c", script, f.path], timeout: 60)
            if r.stderr.contains("No module named 'yaml'") {
                throw HarnessError("PyYAML is not installed: python3 -m pip install pyyaml")
            }
            XCTAssertEqual(r.status, 0, "\(f.lastPathComponent) is not valid YAML: \(r.stderr)", file: file, line: line)
            guard r.status == 0, let docs = try JSONSerialization.jsonObject(with: r.stdout) as? [Any] else { continue }
            XCTAssertFalse(docs.isEmpty, "\(f.lastPathComponent) holds no document", file: file, line: line)
            for d in docs {
                guard let json = d as? [String: Any] else {
                    XCTFail("\(f.lastPathComponent): a document that is not a mapping: \(d)", file: file, line: line)
                    continue
                }
                objects.append(Object(file: f.lastPathComponent, json: json))
            }
        }
        return objects
    }

    func object(_ kind: String, _ name: String, in objects: [Object], file: StaticString = #filePath, line: UInt = #line) throws -> Object {
        let found = objects.filter { $0.kind == kind && $0.name == name }
        guard found.count == 1 else {
            throw HarnessError("expected one \(kind) named \(name), found \(found.count) among \(objects.map { "\($0.kind)/\($0.name)" })")
        }
        return found[0]
    }

    /// The config embedded in the ConfigMap, and the ConfigMap itself.
    func embeddedConfig(_ objects: [Object]) throws -> (text: String, configMap: Object, key: String) {
        let cm = try object("ConfigMap", "huddle-config", in: objects)
        guard let data = cm.json["data"] as? [String: String], data.count == 1, let (key, text) = data.first else {
            throw HarnessError("ConfigMap huddle-config must hold exactly one key, the config: \(cm.json["data"] ?? "nothing")")
        }
        return (text, cm, key)
    }

    // MARK: the config's statements, for cross-checks (the file's validity is huddle -t's job)

    /// `directive arg ...` statements, comments removed, split at `;`, `{` and `}` (the example has no quoted
    /// strings), each with the block it sits in (`upstream chat`, `server`, `route /rooms/`, or "" at top level).
    struct Statement {
        var words: [String]
        var block: String
        var name: String { words.first ?? "" }
    }

    static func statements(_ config: String) -> [Statement] {
        var out: [Statement] = []
        var stack: [String] = []
        var current = ""
        for line in config.split(separator: "\n", omittingEmptySubsequences: false) {
            let code = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            for ch in code {
                switch ch {
                case ";", "{", "}":
                    let words = current.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
                    current = ""
                    if !words.isEmpty {
                        out.append(Statement(words: words, block: stack.last ?? ""))
                        if ch == "{" { stack.append(words.joined(separator: " ")) }
                    }
                    if ch == "}" { _ = stack.popLast() }
                default:
                    current.append(ch)
                }
            }
            current.append(" ")
        }
        return out
    }

    /// 30s, 1m30s, 250ms, or a bare number of seconds, in seconds.
    static func seconds(_ text: String) -> Double? {
        if let n = Double(text) { return n }
        var total = 0.0
        var number = ""
        var rest = Substring(text)
        while let c = rest.first {
            if c.isNumber { number.append(c); rest = rest.dropFirst(); continue }
            guard let n = Double(number) else { return nil }
            number = ""
            if rest.hasPrefix("ms") { total += n / 1000; rest = rest.dropFirst(2); continue }
            switch c {
            case "s": total += n
            case "m": total += n * 60
            case "h": total += n * 3600
            case "d": total += n * 86400
            default: return nil
            }
            rest = rest.dropFirst()
        }
        return number.isEmpty ? total : nil
    }

    /// Kubernetes quantities: 2Gi, 512Mi, 1G, 2, 500m.
    static func quantity(_ value: Any?) -> Double? {
        if let n = value as? Int { return Double(n) }
        if let n = value as? Double { return n }
        guard let s = value as? String else { return nil }
        let suffixes: [(String, Double)] = [("Ki", 0x1p10), ("Mi", 0x1p20), ("Gi", 0x1p30), ("Ti", 0x1p40),
                                            ("k", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12), ("m", 1e-3)]
        for (suffix, factor) in suffixes where s.hasSuffix(suffix) {
            return Double(s.dropLast(suffix.count)).map { $0 * factor }
        }
        return Double(s)
    }

    /// HOST:PORT of a listen or admin address; `*:PORT` and a bare port mean any IPv4 address.
    static func hostAndPort(_ address: String) -> (host: String, port: Int)? {
        if let p = Int(address) { return ("0.0.0.0", p) }
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else { return nil }
        return (String(address[..<colon]), port)
    }

    // MARK: Kubernetes helpers

    static func dig(_ value: Any?, _ path: String...) -> Any? {
        var v = value
        for key in path {
            if let i = Int(key), let a = v as? [Any] { v = i < a.count ? a[i] : nil } else { v = (v as? [String: Any])?[key] }
        }
        return v
    }

    static func labels(_ selector: Any?) -> [String: String] {
        (selector as? [String: Any])?["matchLabels"] as? [String: String] ?? (selector as? [String: String] ?? [:])
    }

    static func selects(_ selector: [String: String], _ labels: [String: String]) -> Bool {
        !selector.isEmpty && selector.allSatisfy { labels[$0.key] == $0.value }
    }

    /// A container port given by name or number, as its number.
    static func containerPort(_ port: Any?, of container: [String: Any]) -> Int? {
        if let n = port as? Int { return n }
        guard let name = port as? String else { return nil }
        let ports = container["ports"] as? [[String: Any]] ?? []
        return ports.first { $0["name"] as? String == name }?["containerPort"] as? Int
    }

    static func podTemplate(_ deployment: Object) -> (labels: [String: String], spec: [String: Any], container: [String: Any])? {
        guard let spec = dig(deployment.json, "spec", "template", "spec") as? [String: Any],
              let containers = spec["containers"] as? [[String: Any]], containers.count == 1 else { return nil }
        let labels = dig(deployment.json, "spec", "template", "metadata", "labels") as? [String: String] ?? [:]
        return (labels, spec, containers[0])
    }

    // MARK: tests

    func testEveryManifestParsesAndHoldsTheExpectedObjects() throws {
        let objects = try loadObjects()
        let found = Set(objects.map { "\($0.kind)/\($0.name)" })
        let expected: Set<String> = ["Deployment/huddle", "Service/huddle", "ConfigMap/huddle-config", "PodDisruptionBudget/huddle",
                                     "Service/chat-backend", "Deployment/chat-backend", "PodDisruptionBudget/chat-backend"]
        XCTAssertEqual(found, expected)
        XCTAssertEqual(objects.count, expected.count, "one object of each")
        for o in objects {
            XCTAssertNotNil(o.json["apiVersion"] as? String, "\(o.file): \(o.kind)/\(o.name) has no apiVersion")
            // The config names chat-backend.default.svc.cluster.local: everything lives in that namespace.
            XCTAssertEqual(o.namespace, "default", "\(o.file): \(o.kind)/\(o.name)")
        }
    }

    /// Field names and types as the API server would take them (strict: an unknown field, say a misspelt
    /// `readinessProbes`, is an error), for the oldest Kubernetes the examples claim (1.30: the preStop sleep
    /// action) and the newest schema kubernetes-validate has.
    func testManifestsValidateAgainstTheKubernetesSchemas() throws {
        let probe = try Harness.run("/usr/bin/env", ["python3", "-c", "import kubernetes_validate"], timeout: 60)
        guard probe.status == 0 else {
            throw XCTSkip("kubernetes-validate is not installed (python3 -m pip install kubernetes-validate)")
        }
        let files = try Self.manifestFiles().map(\.path)
        for version in ["1.30.0", "1.37.0"] {
            let r = try Harness.run("/usr/bin/env", ["python3", "-m", "kubernetes_validate", "--strict", "--quiet", "-k", version] + files,
                                    timeout: 120)
            XCTAssertEqual(r.status, 0, "Kubernetes \(version):\n\(r.text)\(r.stderr)")
        }
    }

    func testTheConfigMapConfigPassesHuddleCheck() throws {
        let (config, _, key) = try embeddedConfig(try loadObjects())
        XCTAssertEqual(key, "huddle.conf")
        let dir = Harness.temporaryDirectory()
        let path = dir.appendingPathComponent("huddle.conf").path
        try config.write(toFile: path, atomically: true, encoding: .utf8)
        let r = try Harness.run(try Harness.huddleBinary, ["-t", "-c", path])
        XCTAssertEqual(r.status, 0, "the example config fails huddle -t: \(r.stderr)")
        XCTAssertEqual(r.text, "\(path): ok\n")
    }

    /// The config does what the example says: hash on the room, the headless Service re-resolved, rooms migrated
    /// when the pods change, reloads on ConfigMap updates.
    func testTheConfigDiscoversTheBackendsAndMigratesRooms() throws {
        let objects = try loadObjects()
        let statements = Self.statements(try embeddedConfig(objects).text)
        func top(_ name: String) -> [String]? { statements.first { $0.block == "" && $0.name == name }?.words }
        XCTAssertEqual(top("reload_on_change"), ["reload_on_change", "on"])

        let chat = statements.filter { $0.block == "upstream chat" }
        XCTAssertEqual(chat.first { $0.name == "balance" }?.words, ["balance", "hash"])
        XCTAssertNil(chat.first { $0.name == "hash_balance_factor" }, "bounded loads would let replicas disagree on a room's pod")
        XCTAssertEqual(chat.first { $0.name == "rebalance" }?.words.prefix(2), ["rebalance", "migrate"])
        let settle = chat.first { $0.name == "membership_settle" }?.words.dropFirst().first
        XCTAssertNotNil(settle.flatMap(Self.seconds), "membership_settle DURATION")

        // Every backend server is the headless Service's name, re-resolved, on the pods' own port.
        let service = try object("Service", "chat-backend", in: objects)
        let deployment = try object("Deployment", "chat-backend", in: objects)
        XCTAssertEqual(Self.dig(service.json, "spec", "clusterIP") as? String, "None", "the backend Service must be headless")
        let template = try XCTUnwrap(Self.podTemplate(deployment))
        XCTAssertTrue(Self.selects(Self.labels(Self.dig(service.json, "spec", "selector")), template.labels))
        let servicePort = try XCTUnwrap((Self.dig(service.json, "spec", "ports") as? [[String: Any]])?.first)
        let podPort = try XCTUnwrap(Self.containerPort(servicePort["targetPort"] ?? servicePort["port"], of: template.container))
        XCTAssertEqual(servicePort["port"] as? Int, podPort, "a headless Service does not remap ports")
        let fqdn = "\(service.name).\(service.namespace ?? "default").svc.cluster.local"
        let servers = statements.filter { $0.block.hasPrefix("upstream ") && $0.name == "server" }
        XCTAssertFalse(servers.isEmpty)
        for s in servers {
            XCTAssertEqual(s.words.dropFirst().first, "\(fqdn):\(podPort)", "\(s.block): \(s.words)")
            XCTAssertTrue(s.words.contains("resolve"), "\(s.block): \(s.words)")
        }
        // The backend runs the demo backend from the same image, listening where the config connects.
        XCTAssertEqual(template.container["command"] as? [String], ["huddle-backend"])
        let args = template.container["args"] as? [String] ?? []
        XCTAssertEqual(args.firstIndex(of: "--listen").map { args[$0 + 1] }, "0.0.0.0:\(podPort)")
        XCTAssertEqual(Self.dig(template.container, "readinessProbe", "httpGet", "path") as? String, "/healthz")
    }

    func testTheDeploymentRunsTheConfigFromTheConfigMap() throws {
        let objects = try loadObjects()
        let (_, configMap, key) = try embeddedConfig(objects)
        let deployment = try object("Deployment", "huddle", in: objects)
        let template = try XCTUnwrap(Self.podTemplate(deployment))
        let args = template.container["args"] as? [String] ?? []
        let c = try XCTUnwrap(args.firstIndex(of: "-c"), "the container's args name the config with -c: \(args)")
        XCTAssertLessThan(c + 1, args.count)
        let configPath = URL(fileURLWithPath: args[c + 1])

        // The -c path is the ConfigMap's key inside a directory mount of that ConfigMap.
        let mounts = template.container["volumeMounts"] as? [[String: Any]] ?? []
        let mount = try XCTUnwrap(mounts.first { $0["mountPath"] as? String == configPath.deletingLastPathComponent().path },
                                  "no volume is mounted at \(configPath.deletingLastPathComponent().path)")
        XCTAssertNil(mount["subPath"], "a subPath mount never sees ConfigMap updates, so reload_on_change would not either")
        XCTAssertEqual(mount["readOnly"] as? Bool, true)
        let volumes = template.spec["volumes"] as? [[String: Any]] ?? []
        let volume = try XCTUnwrap(volumes.first { $0["name"] as? String == mount["name"] as? String })
        XCTAssertEqual(Self.dig(volume, "configMap", "name") as? String, configMap.name)
        let items = Self.dig(volume, "configMap", "items") as? [[String: Any]]
        let fileName = items?.first { $0["key"] as? String == key }?["path"] as? String ?? (items == nil ? key : nil)
        XCTAssertEqual(fileName, configPath.lastPathComponent, "the file the ConfigMap's key becomes")

        // The image's own default command reads the same file, as the same non-root user the pod asks for.
        let dockerfile = try String(contentsOf: Self.directory.appendingPathComponent("Dockerfile"), encoding: .utf8)
        let instructions = dockerfile.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.hasPrefix("#") }
        XCTAssertEqual(instructions.filter { $0.hasPrefix("FROM ") }.count, 2, "a build stage and a runtime stage")
        XCTAssertTrue(instructions.contains("ENTRYPOINT [\"huddle\"]"))
        XCTAssertTrue(instructions.contains("CMD [\"-c\", \"\(configPath.path)\"]"), "Dockerfile CMD reads \(configPath.path)")
        // The backend Deployment runs huddle-backend from the same image: the image must build it.
        XCTAssertTrue(instructions.contains { $0.contains("--product huddle-backend") }, "the image carries huddle-backend")
        let backend = try XCTUnwrap(Self.podTemplate(try object("Deployment", "chat-backend", in: objects)))
        XCTAssertEqual(backend.container["image"] as? String, template.container["image"] as? String)
        let user = instructions.last { $0.hasPrefix("USER ") }.map { String($0.dropFirst(5)) }
        let uid = user?.split(separator: ":").first.flatMap { Int($0) }
        XCTAssertNotNil(uid, "a numeric USER, so runAsNonRoot can check it: \(user ?? "none")")
        XCTAssertNotEqual(uid, 0)
        XCTAssertEqual(Self.dig(template.spec, "securityContext", "runAsUser") as? Int, uid)
        XCTAssertEqual(Self.dig(template.spec, "securityContext", "runAsNonRoot") as? Bool, true)
    }

    func testProbesHitTheAdminPortsHealthz() throws {
        let objects = try loadObjects()
        let statements = Self.statements(try embeddedConfig(objects).text)
        let admin = try XCTUnwrap(statements.first { $0.block == "" && $0.name == "admin" }?.words.dropFirst().first)
        let (host, adminPort) = try XCTUnwrap(Self.hostAndPort(admin))
        XCTAssertTrue(["0.0.0.0", "*", "[::]"].contains(host), "the kubelet probes the pod IP: admin must not listen on \(host) only")
        let template = try XCTUnwrap(Self.podTemplate(try object("Deployment", "huddle", in: objects)))
        for probe in ["readinessProbe", "livenessProbe"] {
            let get = try XCTUnwrap(Self.dig(template.container, probe, "httpGet") as? [String: Any], "\(probe) is an httpGet")
            XCTAssertEqual(get["path"] as? String, "/healthz", probe)
            XCTAssertEqual(Self.containerPort(get["port"], of: template.container), adminPort, "\(probe) port")
        }
    }

    func testTheLoadBalancerReachesTheListenPort() throws {
        let objects = try loadObjects()
        let statements = Self.statements(try embeddedConfig(objects).text)
        let listens = statements.filter { $0.block == "server" && $0.name == "listen" }
        XCTAssertEqual(listens.count, 1)
        let (host, listenPort) = try XCTUnwrap(listens.first.flatMap { $0.words.dropFirst().first }.flatMap(Self.hostAndPort))
        XCTAssertTrue(["0.0.0.0", "*", "[::]"].contains(host), "listen on the pod IP, not \(host)")
        let template = try XCTUnwrap(Self.podTemplate(try object("Deployment", "huddle", in: objects)))
        let service = try object("Service", "huddle", in: objects)
        XCTAssertEqual(Self.dig(service.json, "spec", "type") as? String, "LoadBalancer")
        XCTAssertTrue(Self.selects(Self.labels(Self.dig(service.json, "spec", "selector")), template.labels), "the Service selects the Huddle pods")
        let ports = Self.dig(service.json, "spec", "ports") as? [[String: Any]] ?? []
        XCTAssertFalse(ports.isEmpty)
        for p in ports {
            XCTAssertEqual(Self.containerPort(p["targetPort"] ?? p["port"], of: template.container), listenPort, "Service port \(p)")
        }
        // Client addresses survive to X-Forwarded-For (or PROXY protocol says so, on the listener).
        let policy = Self.dig(service.json, "spec", "externalTrafficPolicy") as? String
        XCTAssertTrue(policy == "Local" || listens[0].words.contains("proxy_protocol"), "externalTrafficPolicy \(policy ?? "Cluster")")
    }

    func testDisruptionsAndShutdownKeepTheServiceUp() throws {
        let objects = try loadObjects()
        let statements = Self.statements(try embeddedConfig(objects).text)
        let deployment = try object("Deployment", "huddle", in: objects)
        let replicas = try XCTUnwrap(Self.dig(deployment.json, "spec", "replicas") as? Int)
        XCTAssertGreaterThanOrEqual(replicas, 2)
        let template = try XCTUnwrap(Self.podTemplate(deployment))
        XCTAssertEqual(Self.dig(deployment.json, "spec", "strategy", "rollingUpdate", "maxUnavailable") as? Int, 0,
                       "a rollout starts the new pod before stopping an old one")

        // The PDB selects the Huddle pods, and only them, and lets a drain proceed while keeping one up.
        let pdb = try object("PodDisruptionBudget", "huddle", in: objects)
        let selector = Self.labels(Self.dig(pdb.json, "spec", "selector"))
        XCTAssertTrue(Self.selects(selector, template.labels))
        let backend = try XCTUnwrap(Self.podTemplate(try object("Deployment", "chat-backend", in: objects)))
        XCTAssertFalse(Self.selects(selector, backend.labels))
        let spec = pdb.json["spec"] as? [String: Any] ?? [:]
        let disruptions: Int
        if let maxUnavailable = spec["maxUnavailable"] as? Int {
            disruptions = maxUnavailable
        } else {
            disruptions = replicas - (try XCTUnwrap(spec["minAvailable"] as? Int, "maxUnavailable or minAvailable as a number"))
        }
        XCTAssertGreaterThanOrEqual(disruptions, 1, "a budget that allows no disruption blocks node drains")
        XCTAssertLessThan(disruptions, replicas, "a budget that lets every replica go keeps nothing up")

        // SIGKILL must not come before the preStop pause and shutdown_timeout are over.
        let shutdown = try XCTUnwrap(statements.first { $0.block == "" && $0.name == "shutdown_timeout" }?.words.dropFirst().first
            .flatMap(Self.seconds), "the example sets shutdown_timeout")
        let preStop = Double(Self.dig(template.container, "lifecycle", "preStop", "sleep", "seconds") as? Int ?? 0)
        let grace = try XCTUnwrap(template.spec["terminationGracePeriodSeconds"] as? Int)
        XCTAssertGreaterThan(Double(grace), shutdown + preStop)

        // Replicas on different nodes.
        let terms = Self.dig(template.spec, "affinity", "podAntiAffinity", "preferredDuringSchedulingIgnoredDuringExecution") as? [[String: Any]] ?? []
        let required = Self.dig(template.spec, "affinity", "podAntiAffinity", "requiredDuringSchedulingIgnoredDuringExecution") as? [[String: Any]] ?? []
        let affinityTerms = terms.compactMap { $0["podAffinityTerm"] as? [String: Any] } + required
        XCTAssertTrue(affinityTerms.contains {
            $0["topologyKey"] as? String == "kubernetes.io/hostname" && Self.selects(Self.labels($0["labelSelector"]), template.labels)
        }, "anti-affinity on kubernetes.io/hostname against the Huddle pods")
    }

    /// Requests and limits follow the config: one worker per CPU of the limit, and a memory limit that holds
    /// workers x max_connections idle WebSockets at the measured cost (README, "Capacity planning").
    func testResourcesMatchTheConfig() throws {
        let objects = try loadObjects()
        let statements = Self.statements(try embeddedConfig(objects).text)
        func top(_ name: String) -> String? { statements.first { $0.block == "" && $0.name == name }?.words.dropFirst().first }
        let template = try XCTUnwrap(Self.podTemplate(try object("Deployment", "huddle", in: objects)))
        let resources = template.container["resources"] as? [String: Any] ?? [:]
        for kind in ["requests", "limits"] {
            for r in ["cpu", "memory"] {
                XCTAssertNotNil(Self.quantity(Self.dig(resources, kind, r)), "resources.\(kind).\(r)")
            }
        }
        let cpu = try XCTUnwrap(Self.quantity(Self.dig(resources, "limits", "cpu")))
        let workers = try XCTUnwrap(top("workers").flatMap { Int($0) }, "workers is a number, not auto (auto counts the node's CPUs)")
        XCTAssertEqual(Double(workers), cpu.rounded(.up), "one event loop per CPU of the limit")
        let maxConnections = try XCTUnwrap(top("max_connections").flatMap { Int($0) })
        let memory = try XCTUnwrap(Self.quantity(Self.dig(resources, "limits", "memory")))
        let needed = Double(workers * maxConnections * Self.bytesPerIdleConnection + Self.baseBytes)
        XCTAssertGreaterThanOrEqual(memory, needed, "\(workers) x \(maxConnections) idle WebSockets need \(Int(needed) >> 20) MiB")
        XCTAssertLessThanOrEqual(memory, needed * 2, "sized for far more connections than max_connections lets in")
    }
}
