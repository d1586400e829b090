// swift-tools-version:6.2
//
// libFuzzer target for the wire-protocol frame decoder and connection state machines.
// Its own package so that sanitizer builds never touch the main build. Run: tools/fuzz/run.sh
import PackageDescription

let package = Package(
    name: "tote-fuzz",
    dependencies: [.package(path: "../..")],
    targets: [
        .target(name: "CFuzzerDriver"),
        .executableTarget(
            name: "FrameFuzzer",
            dependencies: ["CFuzzerDriver", .product(name: "ToteWire", package: "main")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
