import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A private PostgreSQL cluster in a folder of its own, for tests and `tote dev`.
///
/// `start` runs `initdb` on first use, then starts the server listening only on a unix socket in
/// that folder (no TCP), on a port number free on this machine. When the process runs as root,
/// the server runs as the `postgres` user (PostgreSQL refuses root), via `runuser`.
public final class LocalPostgresCluster: Sendable {
    /// Why the cluster could not be created, started or stopped; names the command and its output.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
        public init(description: String) { self.description = description }
    }

    /// The cluster's folder: `data/` (the cluster), `server.log`, and the server's socket.
    public let directory: URL
    public let port: Int
    /// Whether commits wait for fsync. Off is for throwaway test clusters only.
    public let durable: Bool
    private let binDirectory: String
    private let runAsPostgres: Bool

    /// libpq connection string for the `postgres` database as the `postgres` superuser.
    public var connectionString: String { connectionString(database: "postgres") }

    public func connectionString(database: String) -> String {
        "host=\(directory.path) port=\(port) dbname=\(database) user=postgres"
    }

    public var dataDirectory: URL { directory.appendingPathComponent("data") }
    public var logFile: URL { directory.appendingPathComponent("server.log") }

    private init(directory: URL, port: Int, durable: Bool, binDirectory: String, runAsPostgres: Bool) {
        self.directory = directory
        self.port = port
        self.durable = durable
        self.binDirectory = binDirectory
        self.runAsPostgres = runAsPostgres
    }

    /// Creates (if needed) and starts a cluster in `directory` (a server already running there is
    /// reused: pass the port it was started with).
    ///
    /// - Parameters:
    ///   - port: the port number (it names the socket); nil picks one free on this machine.
    ///   - durable: false turns fsync off, for throwaway test clusters.
    public static func start(in directory: URL, port: Int? = nil, durable: Bool = true) throws -> LocalPostgresCluster {
        let binDirectory = try Self.binDirectory()
        let runAsPostgres = getuid() == 0
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let cluster = LocalPostgresCluster(
            directory: directory,
            port: try port ?? Self.freePort(),
            durable: durable,
            binDirectory: binDirectory,
            runAsPostgres: runAsPostgres
        )
        if runAsPostgres { try cluster.run("/bin/chown", ["-R", "postgres:", directory.path], asPostgres: false) }
        if !FileManager.default.fileExists(atPath: cluster.dataDirectory.appendingPathComponent("PG_VERSION").path) {
            try cluster.run("\(binDirectory)/initdb", [
                "-D", cluster.dataDirectory.path, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                "--no-instructions", "--locale=C",
            ] + (durable ? [] : ["--no-sync"]))
        }
        // A server left running on this folder (a `tote dev` killed with -9) is reused.
        if !cluster.isRunning { try cluster.startServer() }
        return cluster
    }

    /// A throwaway cluster in a new temporary folder, fsync off; remove it with ``destroy()``.
    public static func temporary() throws -> LocalPostgresCluster {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tote-pg-\(UUID().uuidString.prefix(8))")
        return try start(in: directory, durable: false)
    }

    /// Starts the server (again); returns once it accepts connections.
    public func startServer() throws {
        var options = "-k \(directory.path) -p \(port) -c listen_addresses=''"
        if !durable { options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off" }
        try run("\(binDirectory)/pg_ctl", ["-D", dataDirectory.path, "-l", logFile.path, "-w", "-t", "60", "-o", options, "start"])
    }

    /// Stops the server: `fast` disconnects clients and shuts down cleanly; `immediate` is a crash
    /// (no checkpoint; recovery runs at the next start).
    public func stop(immediate: Bool = false) throws {
        try run("\(binDirectory)/pg_ctl", ["-D", dataDirectory.path, "-m", immediate ? "immediate" : "fast", "-w", "-t", "60", "stop"])
    }

    /// Whether the server is running.
    public var isRunning: Bool {
        (try? run("\(binDirectory)/pg_ctl", ["-D", dataDirectory.path, "status"])) != nil
    }

    /// Stops the server if it runs and deletes the folder.
    public func destroy() {
        if isRunning { try? stop(immediate: true) }
        try? FileManager.default.removeItem(at: directory)
    }

    // MARK: Helpers

    /// Runs a PostgreSQL program, as `postgres` when we are root; throws with its output on failure.
    @discardableResult
    private func run(_ program: String, _ arguments: [String], asPostgres: Bool = true) throws -> String {
        let (executable, argv) = asPostgres && runAsPostgres
            ? ("/usr/sbin/runuser", ["-u", "postgres", "--", program] + arguments)
            : (program, arguments)
        let (status, output) = try Self.spawn(executable, argv)
        guard status == 0 else {
            throw Failure(description: "\((program as NSString).lastPathComponent) \(arguments.last ?? "") failed (exit \(status)): \(output.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return output
    }

    /// posix_spawn + waitpid, with stdout and stderr in a temporary file. (Not Foundation's
    /// Process: its waitUntilExit can miss the child's exit when several run at once, and
    /// `pg_ctl start` leaves a server that would hold an output pipe open forever.)
    private static func spawn(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("tote-pg-cmd-\(UUID().uuidString)").path
        defer { unlink(outputPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard spawned == 0 else { throw Failure(description: "cannot run \(executable): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw Failure(description: "waitpid failed: errno \(errno)") }
        }
        let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        let exited = status & 0x7f == 0
        return (exited ? (status >> 8) & 0xff : 128 + (status & 0x7f), output)
    }

    private static func binDirectory() throws -> String {
        let candidates = ["/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin"]
        if let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: "\($0)/pg_ctl") }) { return found }
        if let (status, output) = try? spawn("/usr/bin/pg_config", ["--bindir"]), status == 0 {
            let path = output.trimmingCharacters(in: .whitespacesAndNewlines)
            if FileManager.default.isExecutableFile(atPath: "\(path)/pg_ctl") { return path }
        }
        throw Failure(description: "PostgreSQL server programs not found (apt-get install postgresql)")
    }

    /// A TCP port nothing listens on right now (the server uses it only to name its socket).
    private static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket() failed: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw Failure(description: "bind() failed: errno \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
