// swift-tools-version:6.0
// Huddle: a layer-7 HTTP/WebSocket load balancer. Targets are layered; dependencies only point down:
// CHuddleLinux -> HuddleSys -> HuddleIO -> HuddleResolver -> HuddleProxy -> HuddleAdmin -> huddle; pure HuddleHTTP/
// HuddleJSON/HuddleBalancing/HuddleConfig/HuddleDNS.
import PackageDescription

// Release builds skip Swift's dynamic exclusivity checks in the data-plane modules: profiling showed them at ~3% of
// the proxy's CPU per request (swift_beginAccess/AccessSet::insert on every class-field inout). Debug builds and the
// test suite (including the sanitizer runs) keep them on, so violations are still caught there.
let hotPath: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]


let package = Package(
    name: "Huddle",
    products: [
        .executable(name: "huddle", targets: ["huddle"]),
        .executable(name: "huddle-backend", targets: ["huddle-backend"]),
    ],
    targets: [
        .target(name: "CHuddleLinux"),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .target(name: "HuddleSys", dependencies: ["CHuddleLinux"]),
        .target(name: "HuddleSync"),
        .target(name: "HuddleIO", dependencies: ["HuddleSys", "HuddleSync", "CHuddleLinux"], swiftSettings: hotPath),
        .target(name: "HuddleHTTP", swiftSettings: hotPath),
        .target(name: "HuddleJSON", swiftSettings: hotPath),
        .target(name: "HuddleBalancing", dependencies: ["HuddleSync"], swiftSettings: hotPath),
        .target(name: "HuddleConfig", dependencies: ["HuddleSys"]),
        .target(name: "HuddleDNS"),
        .target(name: "HuddleResolver", dependencies: ["HuddleDNS", "HuddleIO", "HuddleSys", "HuddleSync"]),
        .target(name: "HuddleTLS", dependencies: ["COpenSSL", "HuddleSys", "HuddleSync"]),
        .target(name: "HuddleHealth", dependencies: ["HuddleIO", "HuddleSys", "HuddleHTTP", "HuddleSync", "HuddleTLS"]),
        .target(name: "HuddleProxy", dependencies: ["HuddleIO", "HuddleSys", "HuddleHTTP", "HuddleJSON", "HuddleBalancing", "HuddleConfig", "HuddleSync", "HuddleHealth", "HuddleTLS", "COpenSSL", "CZlib", "HuddleDNS", "HuddleResolver"], swiftSettings: hotPath),
        .target(name: "HuddleAdmin", dependencies: ["HuddleProxy", "HuddleIO", "HuddleSys", "HuddleHTTP", "HuddleJSON", "HuddleConfig", "HuddleBalancing"]),
        .target(name: "HuddleDemo", dependencies: ["HuddleIO", "HuddleSys", "HuddleHTTP", "HuddleJSON", "HuddleSync"], swiftSettings: hotPath),
        .executableTarget(name: "huddle", dependencies: ["HuddleAdmin", "HuddleProxy", "HuddleConfig", "HuddleDemo"]),
        .executableTarget(name: "huddle-backend", dependencies: ["HuddleDemo"]),
        .testTarget(name: "HuddleHTTPTests", dependencies: ["HuddleHTTP"]),
        .testTarget(name: "HuddleJSONTests", dependencies: ["HuddleJSON"]),
        .testTarget(name: "HuddleAdminTests", dependencies: ["HuddleAdmin", "HuddleProxy", "HuddleConfig", "HuddleJSON"]),
        .testTarget(name: "HuddleConfigTests", dependencies: ["HuddleConfig"]),
        .testTarget(name: "HuddleDNSTests", dependencies: ["HuddleDNS", "HuddleResolver", "HuddleSys", "HuddleSync"]),
        .testTarget(name: "HuddleBalancingTests", dependencies: ["HuddleBalancing"]),
        .testTarget(name: "HuddleIOTests", dependencies: ["HuddleIO", "HuddleSys", "HuddleDemo", "HuddleHTTP"]),
        .testTarget(name: "HuddleHealthTests", dependencies: ["HuddleHealth", "HuddleIO", "HuddleSys"]),
        .testTarget(name: "HuddleProxyTests", dependencies: ["HuddleProxy", "HuddleIO", "HuddleSys", "HuddleHTTP", "HuddleConfig", "HuddleBalancing", "CZlib", "HuddleDNS", "HuddleResolver"]),
        .testTarget(name: "IntegrationTests", dependencies: ["HuddleHTTP", "HuddleDemo", "HuddleSys", "HuddleBalancing", "HuddleSync"], exclude: ["ws_group_client.py", "peers"]),
    ]
)
