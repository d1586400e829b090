@_exported import LocalPostgres
import Testing

/// Gives a suite its own throwaway PostgreSQL cluster, started before its tests and destroyed
/// after them (so no server outlives the test run).
public struct LocalCluster: SuiteTrait, TestTrait, TestScoping {
    @TaskLocal public static var current: LocalPostgresCluster?

    public var isRecursive: Bool { true }

    public func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        if Self.current != nil { return try await function() }
        // initdb, start and stop take seconds: off the cooperative threads, which the suites
        // running beside this one share (two on a 2-core machine).
        let cluster = try await offCooperativeThreads { try LocalPostgresCluster.temporary() }
        do {
            try await Self.$current.withValue(cluster) { try await function() }
        } catch {
            _ = try? await offCooperativeThreads { cluster.destroy() }
            throw error
        }
        _ = try? await offCooperativeThreads { cluster.destroy() }
    }

    /// The cluster of the suite being run.
    public static var cluster: LocalPostgresCluster {
        get throws {
            guard let current else { throw LocalPostgresCluster.Failure(description: "no cluster: add .localCluster to the suite") }
            return current
        }
    }
}

extension Trait where Self == LocalCluster {
    /// A throwaway PostgreSQL cluster for the suite.
    public static var localCluster: LocalCluster { LocalCluster() }
}
