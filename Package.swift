// swift-tools-version:6.0
// Huddle: a layer-7 HTTP/WebSocket load balancer. Targets are layered; dependencies only point down:
// CHuddleLinux -> HuddleSys -> HuddleIO -> HuddleProxy -> huddle; pure HuddleHTTP/HuddleBalancing/HuddleConfig.
import PackageDescription


let package = Package(
    name: "Huddle",
    products: [
        .executable(name: "huddle", targets: ["huddle"]),
        .executable(name: "huddle-backend", targets: ["huddle-backend"]),
    ],
    targets: [
        .target(name: "CHuddleLinux"),
        .target(name: "HuddleSys", dependencies: ["CHuddleLinux"]),
        .target(name: "HuddleIO", dependencies: ["HuddleSys", "CHuddleLinux"]),
        .target(name: "HuddleHTTP"),
        .target(name: "HuddleBalancing"),
        .target(name: "HuddleConfig"),
        .target(name: "HuddleProxy", dependencies: ["HuddleIO", "HuddleSys", "HuddleHTTP", "HuddleBalancing", "HuddleConfig"]),
        .target(name: "HuddleDemo", dependencies: ["HuddleIO", "HuddleSys", "HuddleHTTP"]),
        .executableTarget(name: "huddle", dependencies: ["HuddleProxy", "HuddleConfig", "HuddleDemo"]),
        .executableTarget(name: "huddle-backend", dependencies: ["HuddleDemo"]),
        .testTarget(name: "HuddleHTTPTests", dependencies: ["HuddleHTTP"]),
        .testTarget(name: "HuddleConfigTests", dependencies: ["HuddleConfig"]),
        .testTarget(name: "HuddleBalancingTests", dependencies: ["HuddleBalancing"]),
        .testTarget(name: "HuddleIOTests", dependencies: ["HuddleIO", "HuddleSys", "HuddleDemo", "HuddleHTTP"]),
        .testTarget(name: "IntegrationTests", dependencies: ["HuddleHTTP", "HuddleDemo", "HuddleSys"], exclude: ["ws_group_client.py"]),
    ]
)
