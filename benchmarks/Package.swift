// swift-tools-version:6.2
//
// RPCBench — unary echo benchmark: Tote's RPC runtime against grpc-swift-2, same machine, same run.
// EventStoreBench — event-store appends against pgbench on the same durable PostgreSQL cluster in
// the same run, and catch-up read throughput.
// CommerceBench — PlaceOrder (3 lines) over the wire against a command node, with the event
// store's append benchmark in the same run for the ratio, and add-to-cart latency.
// ReadSideBench — the read side on a 100,000-product catalog: point reads against redis, facets
// against PostgreSQL GROUP BY, projection catch-up, live lag (run-readside.sh).
// BridgeBench — the automation bridge: OrderPaid → first pick command at one of 100 simulated
// controllers, and tasks completed per second, under a steady order flow.
//
// Kept out of the root package so that grpc-swift-2 (and swift-nio-ssl/BoringSSL, which its NIO
// transport pulls in) never lands in the main build. See README.md, run.sh and run-eventstore.sh
// in this folder.
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "tote-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        // The root package; named explicitly so the checkout folder's name does not matter.
        .package(name: "tote", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
    ],
    targets: [
        // Shared by both benchmarks: the latency histogram, clocks, /proc readers, formatting.
        .target(name: "BenchSupport", swiftSettings: swiftSettings),
        // Counts calls to malloc & co. (interposed in the executable) for allocations per call.
        .target(name: "CAllocCounter"),
        .executableTarget(
            name: "RPCBench",
            dependencies: [
                "BenchSupport",
                "CAllocCounter",
                .product(name: "ToteAPI", package: "tote"),
                .product(name: "ToteRPC", package: "tote"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "EventStoreBench",
            dependencies: [
                "BenchSupport",
                .product(name: "EventStore", package: "tote"),
                .product(name: "Postgres", package: "tote"),
                .product(name: "LocalPostgres", package: "tote"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "CommerceBench",
            dependencies: [
                "BenchSupport",
                .product(name: "EventStore", package: "tote"),
                .product(name: "Postgres", package: "tote"),
                .product(name: "LocalPostgres", package: "tote"),
                .product(name: "ToteAPI", package: "tote"),
                .product(name: "ToteRPC", package: "tote"),
                .product(name: "ToteDomain", package: "tote"),
                .product(name: "ToteCommands", package: "tote"),
                .product(name: "ToteServices", package: "tote"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "BridgeBench",
            dependencies: [
                "BenchSupport",
                .product(name: "EventStore", package: "tote"),
                .product(name: "Postgres", package: "tote"),
                .product(name: "LocalPostgres", package: "tote"),
                .product(name: "ToteAPI", package: "tote"),
                .product(name: "ToteRPC", package: "tote"),
                .product(name: "ToteDomain", package: "tote"),
                .product(name: "ToteCommands", package: "tote"),
                .product(name: "ToteServices", package: "tote"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "ReadSideBench",
            dependencies: [
                "BenchSupport",
                .product(name: "EventStore", package: "tote"),
                .product(name: "Postgres", package: "tote"),
                .product(name: "LocalPostgres", package: "tote"),
                .product(name: "ToteAPI", package: "tote"),
                .product(name: "ToteRPC", package: "tote"),
                .product(name: "ToteReadModels", package: "tote"),
                .product(name: "LMDB", package: "tote"),
                .product(name: "ToteServices", package: "tote"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
