// swift-tools-version:6.2
//
// Tote — a commerce backend: CQRS + event sourcing over PostgreSQL, LMDB read models,
// a protobuf wire protocol on SwiftNIO, and an automation bridge to warehouse controllers.
//
// Layers, lowest first (a target imports only targets below it):
//   C system libraries (CLMDB, CLibPQ, CProtobufC) → one Swift wrapper each (LMDB, Postgres, ToteProtoCInterop)
//   → generated protobuf types (ToteProto, and ToteProtoC for C) → wire protocol (ToteWire: frames, state machines)
//   → RPC runtime (ToteRPC: server, client, method descriptors) → API descriptors (ToteAPI)
//   → service implementations (ToteServices) → `tote` executable.
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "tote",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tote", targets: ["tote"]),
        .library(name: "ToteWire", targets: ["ToteWire"]),
        .library(name: "ToteRPC", targets: ["ToteRPC"]),
        .library(name: "ToteAPI", targets: ["ToteAPI"]),
        .library(name: "Postgres", targets: ["Postgres"]),
        .library(name: "LocalPostgres", targets: ["LocalPostgres"]),
        .library(name: "EventStore", targets: ["EventStore"]),
        .library(name: "ToteDomain", targets: ["ToteDomain"]),
        .library(name: "ToteCommands", targets: ["ToteCommands"]),
        .library(name: "ToteServices", targets: ["ToteServices"]),
        .library(name: "ToteReadModels", targets: ["ToteReadModels"]),
        .library(name: "LMDB", targets: ["LMDB"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // MARK: C system libraries (apt: liblmdb-dev, libpq-dev, libprotobuf-c-dev)
        .systemLibrary(name: "CLMDB", pkgConfig: "lmdb", providers: [.apt(["liblmdb-dev"])]),
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CProtobufC", pkgConfig: "libprotobuf-c", providers: [.apt(["libprotobuf-c-dev"])]),

        // MARK: Thin Swift wrappers: the only targets that import their C module
        .target(name: "LMDB", dependencies: ["CLMDB"], swiftSettings: swiftSettings),
        .target(
            name: "Postgres",
            dependencies: ["CLibPQ", .product(name: "NIOPosix", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ToteProtoCInterop",
            dependencies: ["CProtobufC", "ToteProtoC"],
            swiftSettings: swiftSettings
        ),

        // A private PostgreSQL cluster in a folder: for integration tests and `tote dev`.
        .target(name: "LocalPostgres", swiftSettings: swiftSettings),

        // MARK: Generated protobuf code (tools/generate-protos.sh; never edit by hand)
        .target(
            name: "ToteProto",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .target(name: "ToteProtoC", dependencies: ["CProtobufC"]),

        // MARK: Wire protocol and RPC runtime
        .target(
            name: "ToteWire",
            dependencies: [
                "ToteProto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ToteRPC",
            dependencies: [
                "ToteWire",
                "ToteProto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Event store (PostgreSQL)
        .target(
            name: "EventStore",
            dependencies: ["Postgres", "ToteRPC", .product(name: "NIOPosix", package: "swift-nio"), .product(name: "Metrics", package: "swift-metrics")],
            swiftSettings: swiftSettings
        ),

        // MARK: Domain: pure deciders (no I/O, no clock) and the command runtime over the event store
        .target(
            name: "ToteDomain",
            dependencies: [
                "ToteProto",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ToteCommands",
            dependencies: [
                "ToteDomain", "EventStore", "ToteProto",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Read side: projections into LMDB read models, and the queries over them
        .target(
            name: "ToteReadModels",
            dependencies: [
                "LMDB", "EventStore", "ToteDomain", "ToteProto",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Tote API: method descriptors shared by servers and clients, and service implementations
        .target(name: "ToteAPI", dependencies: ["ToteRPC", "ToteProto"], swiftSettings: swiftSettings),
        .target(
            name: "ToteServices",
            dependencies: [
                "ToteAPI", "ToteRPC", "ToteProto", "ToteDomain", "ToteCommands", "EventStore", "ToteReadModels", "LMDB", "Postgres",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: The executable
        .executableTarget(
            name: "tote",
            dependencies: [
                "ToteServices", "ToteCommands", "ToteDomain", "ToteAPI", "ToteRPC", "EventStore", "Postgres", "LocalPostgres", "ToteReadModels",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Tests (mirror Sources/)
        .testTarget(name: "ToteWireTests", dependencies: ["ToteWire", "ToteProto"], swiftSettings: swiftSettings),
        .testTarget(
            name: "ToteRPCTests",
            dependencies: ["ToteRPC", "ToteAPI", "ToteServices", "ToteProto", "ToteTestSupport", .product(name: "NIOPosix", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ToteProtoCInteropTests",
            dependencies: ["ToteProtoCInterop", "ToteProto"],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "LMDBTests", dependencies: ["LMDB"], swiftSettings: swiftSettings),
        .testTarget(name: "PostgresTests", dependencies: ["Postgres"], swiftSettings: swiftSettings),
        .testTarget(name: "EventStoreTests", dependencies: ["EventStore"], swiftSettings: swiftSettings),
        .testTarget(name: "ToteDomainTests", dependencies: ["ToteDomain", "ToteProto"], swiftSettings: swiftSettings),
        .testTarget(
            name: "ToteReadModelsTests",
            dependencies: ["ToteReadModels", "LMDB", "EventStore", "ToteDomain", "ToteProto", "ToteServices", "ToteAPI", "ToteRPC", "ToteTestSupport", "Postgres"],
            swiftSettings: swiftSettings
        ),
        .target(name: "ToteTestSupport", dependencies: ["LocalPostgres", "Postgres"], path: "Tests/ToteTestSupport", swiftSettings: swiftSettings),
        .testTarget(
            name: "EventStoreIntegrationTests",
            dependencies: ["EventStore", "Postgres", "ToteTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CommerceIntegrationTests",
            dependencies: [
                "ToteServices", "ToteCommands", "ToteDomain", "ToteAPI", "EventStore", "Postgres", "ToteTestSupport",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PostgresIntegrationTests",
            dependencies: ["Postgres", "ToteTestSupport"],
            swiftSettings: swiftSettings
        ),
    ]
)
