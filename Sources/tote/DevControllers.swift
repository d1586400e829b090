import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `--controllers PICK,PACK`: how many simulated pick and pack stations `tote dev` starts.
struct ControllerCounts: ExpressibleByArgument, CustomStringConvertible {
    var picks: Int
    var packs: Int

    init(picks: Int, packs: Int) {
        self.picks = picks
        self.packs = packs
    }

    init?(argument: String) {
        let parts = argument.split(separator: ",", omittingEmptySubsequences: false)
        guard parts.count == 2, let picks = Int(parts[0]), let packs = Int(parts[1]),
              (0...50).contains(picks), (0...50).contains(packs)
        else { return nil }
        self.init(picks: picks, packs: packs)
    }

    var description: String { "\(picks),\(packs)" }
    static var defaultValueDescription: String { "2,1" }
}

/// The simulated warehouse controllers of `tote dev`: `tote-controller-sim` processes (the C
/// SDK's simulator, tools/controller) for a few pick and pack stations, connected to this server
/// with the development controller key, so that paid orders flow through picking and packing to
/// PACKED. Each writes its log and its state file to `<folder>/controllers/`.
///
/// The children are started with `posix_spawn`, with an empty signal mask and default signal
/// handlers (`POSIX_SPAWN_SETSIGMASK` / `POSIX_SPAWN_SETSIGDEF`): this process ignores or blocks
/// SIGTERM and SIGINT for its own graceful shutdown, and a child would inherit that and ignore
/// the SIGTERM that stops it. ``stop()`` sends SIGTERM, waits, then sends SIGKILL to any left.
final class DevControllers {
    struct Child {
        var id: String
        var pid: pid_t
    }

    private(set) var children: [Child] = []

    /// The simulator to run: `explicit` if given (it must exist), else
    /// `tools/controller/build/tote-controller-sim` under the working directory if it is there;
    /// nil with the reason otherwise.
    static func locateSimulator(_ explicit: String?) -> (path: String?, problem: String?) {
        if let explicit {
            return FileManager.default.isExecutableFile(atPath: explicit)
                ? (explicit, nil)
                : (nil, "the controller simulator \(explicit) does not exist or is not executable")
        }
        let relative = "tools/controller/build/tote-controller-sim"
        let path = URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(relative).path
        return FileManager.default.isExecutableFile(atPath: path)
            ? (path, nil)
            : (nil, "no controller simulator at \(relative) (build it with `make -C tools/controller`, or pass --controller-sim PATH)")
    }

    /// Starts `counts.picks` pick stations (`sim-pick-01`, …) and `counts.packs` pack stations
    /// (`sim-pack-01`, …) against `host:port`. Stations already started stay running if a later
    /// one fails to start (``stop()`` ends them).
    func start(simulator: String, host: String, port: Int, key: String, counts: ControllerCounts, folder: URL) throws {
        let directory = folder.appendingPathComponent("controllers")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let stations = (0..<counts.picks).map { ("pick", $0 + 1) } + (0..<counts.packs).map { ("pack", $0 + 1) }
        for (kind, number) in stations {
            let id = String(format: "sim-%@-%02d", kind, number)
            var arguments = [
                "--host", host, "--port", "\(port)", "--id", id, "--kind", kind,
                "--warehouse", "main", "--state-file", directory.appendingPathComponent("\(id).state").path,
                // The server's bridge becomes active just after it listens: retry quickly at first.
                "--backoff-ms", "100/2000",
            ]
            arguments += kind == "pick" ? ["--pick-ms", "800/200"] : ["--pick-ms", "1500/300"]
            // The key goes in the environment (TOTE_API_KEY), not on the command line `ps` shows.
            let pid = try Self.spawn(simulator, arguments, environment: ["TOTE_API_KEY": key], output: directory.appendingPathComponent("\(id).log").path)
            children.append(Child(id: id, pid: pid))
        }
    }

    /// Stops every station: SIGTERM, up to `grace` for them to exit, then SIGKILL; reaps them all.
    /// Returns how many exited after SIGTERM and how many had to be killed.
    @discardableResult
    func stop(grace: Duration = .seconds(3)) -> (terminated: Int, killed: Int) {
        guard !children.isEmpty else { return (0, 0) }
        for child in children { kill(child.pid, SIGTERM) }
        let deadline = ContinuousClock.now + grace
        var running = children
        while !running.isEmpty {
            running.removeAll { Self.reaped($0.pid) }
            if running.isEmpty || ContinuousClock.now >= deadline { break }
            usleep(20_000)
        }
        for child in running {
            kill(child.pid, SIGKILL)
            var status: Int32 = 0
            while waitpid(child.pid, &status, 0) < 0, errno == EINTR {}
        }
        defer { children.removeAll() }
        return (children.count - running.count, running.count)
    }

    /// True once `pid` has exited and been reaped (or is not our child any more).
    private static func reaped(_ pid: pid_t) -> Bool {
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        return result == pid || (result < 0 && errno == ECHILD)
    }

    /// posix_spawn with stdin from /dev/null, stdout and stderr appended to `output`, this
    /// process's environment plus `environment`, an empty signal mask and default handlers for the
    /// signals this process changed.
    static func spawn(_ executable: String, _ arguments: [String], environment: [String: String] = [:], output: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var variables = ProcessInfo.processInfo.environment
        variables.merge(environment) { _, new in new }
        let envp = variables.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in envp { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard result == 0 else {
            throw ValidationError("cannot start \(executable): \(String(cString: strerror(result)))")
        }
        return pid
    }
}
