@_exported import LocalPostgres
import Foundation
import Postgres
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

// What tests do to their cluster, off the cooperative threads: each of these waits seconds on a
// loaded machine (pg_ctl waits for the server; CREATE DATABASE copies a template), and a
// cooperative thread held that long is lost to every test running beside (two on a 2-core
// machine). Two such waits at once once froze a whole test process for 90 s.
extension LocalPostgresCluster {
    /// Creates a fresh, empty database named `<prefix>_<8 random hex digits>`; returns its name.
    public func createDatabase(prefix: String = "t") async throws -> String {
        let name = "\(prefix)_\(UUID().uuidString.prefix(8).lowercased())"
        let connectionString = self.connectionString
        try await offCooperativeThreads {
            let admin = try PostgresConnection.connect(connectionString)
            try admin.executeScript("CREATE DATABASE \(name)")
        }
        return name
    }

    /// ``stop(immediate:)``, waited for on a thread of its own.
    public func stopServerAsync(immediate: Bool = false) async throws {
        try await offCooperativeThreads { try self.stop(immediate: immediate) }
    }

    /// ``startServer()``, waited for on a thread of its own.
    public func startServerAsync() async throws {
        try await offCooperativeThreads { try self.startServer() }
    }
}
