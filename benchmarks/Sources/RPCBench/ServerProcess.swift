import Dispatch
import Glibc  // Linux only: /proc, posix_spawn, glibc's allocator

/// A peer's echo server in a child process (`RPCBench serve --peer P`), driven over its stdin and
/// stdout with a line protocol:
///
/// - the child prints `READY <port>` once it listens on 127.0.0.1:<port>;
/// - `STATS` → `STATS <allocations> <cpu ns>`: the child's ``ProcessStats``;
/// - `STOP` (or end of input) → the child shuts the server down gracefully, prints `STOPPED` and exits.
///
/// Both peers' servers run this way, so each side's CPU time and allocations are measured apart
/// and client and server share nothing but the machine's two cores.
final class ServerProcess: Sendable {
    let peer: Peer
    let pid: pid_t
    /// The port the server listens on, on 127.0.0.1.
    let port: Int
    private let commandDescriptor: Int32
    private let replies: LineReader

    private init(peer: Peer, pid: pid_t, port: Int, commandDescriptor: Int32, replies: LineReader) {
        self.peer = peer
        self.pid = pid
        self.port = port
        self.commandDescriptor = commandDescriptor
        self.replies = replies
    }

    /// Starts `RPCBench serve --peer <peer>` from this same executable and waits until it listens.
    static func launch(peer: Peer) async throws -> ServerProcess {
        var toChild: [Int32] = [-1, -1]
        var fromChild: [Int32] = [-1, -1]
        guard pipe(&toChild) == 0, pipe(&fromChild) == 0 else {
            throw BenchError("pipe failed: errno \(errno)")
        }
        // Only the dup2'ed copies (the child's 0 and 1) may survive exec: any other process
        // spawned later must not hold these pipes open.
        for descriptor in toChild + fromChild {
            _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)

        let executable = try currentExecutablePath()
        let arguments = [executable, "serve", "--peer", peer.rawValue]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }

        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, nil, &argv, environ)
        close(toChild[0])
        close(fromChild[1])
        guard result == 0 else {
            close(toChild[1])
            close(fromChild[0])
            throw BenchError("cannot start \(executable) serve: posix_spawn error \(result)")
        }
        let replies = LineReader(descriptor: fromChild[0], label: "rpcbench.server.\(peer)")
        let ready = (try? await replies.nextLine()) ?? "(no output)"
        guard ready.hasPrefix("READY "), let port = Int(ready.dropFirst("READY ".count)) else {
            kill(pid, SIGKILL)
            _ = waitpid(pid, nil, 0)
            close(toChild[1])
            replies.close()
            throw BenchError("\(peer) server process did not start: '\(ready)'")
        }
        return ServerProcess(peer: peer, pid: pid, port: port, commandDescriptor: toChild[1], replies: replies)
    }

    /// The server process's counters now.
    func stats() async throws -> ProcessStats {
        try send("STATS")
        let reply = try await replies.nextLine()
        guard reply.hasPrefix("STATS "), let stats = ProcessStats(line: reply.dropFirst("STATS ".count)) else {
            throw BenchError("\(peer) server process answered STATS with '\(reply)'")
        }
        return stats
    }

    /// Stops the server gracefully and reaps the process; kills it if it has not exited in 15 s.
    func stop() async {
        try? send("STOP")
        close(commandDescriptor)
        let deadline = monotonicNanoseconds() + 15_000_000_000
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) == 0 {
            if monotonicNanoseconds() > deadline {
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                break
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
        replies.close()
    }

    private func send(_ command: String) throws {
        let line = Array((command + "\n").utf8)
        let written = line.withUnsafeBytes { write(commandDescriptor, $0.baseAddress, $0.count) }
        guard written == line.count else { throw BenchError("cannot write to the \(peer) server process: errno \(errno)") }
    }
}

/// Reads lines from a pipe with blocking reads on its own dispatch queue, so that waiting for the
/// server process never blocks a thread of Swift's cooperative pool.
///
/// `@unchecked Sendable`: the buffer is only touched on `queue`, which is serial.
private final class LineReader: @unchecked Sendable {
    private let descriptor: Int32
    private let queue: DispatchQueue
    private var buffer: [UInt8] = []

    init(descriptor: Int32, label: String) {
        self.descriptor = descriptor
        self.queue = DispatchQueue(label: label)
    }

    /// The next line, without its newline. Throws at end of file.
    func nextLine() async throws -> String {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Result { try self.readLineBlocking() })
            }
        }
    }

    func close() {
        queue.sync { _ = Glibc.close(descriptor) }
    }

    private func readLineBlocking() throws -> String {
        var chunk = [UInt8](repeating: 0, count: 512)
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                return line
            }
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { throw BenchError("the server process closed its output") }
            buffer.append(contentsOf: chunk[..<count])
        }
    }
}

/// The path of the running executable, to start server processes from the same binary.
private func currentExecutablePath() throws -> String {
    var path = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let length = readlink("/proc/self/exe", &path, path.count - 1)
    guard length > 0 else { throw BenchError("cannot read /proc/self/exe: errno \(errno)") }
    return String(decoding: path[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
