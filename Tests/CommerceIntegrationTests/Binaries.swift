import Foundation
import ToteTestSupport

/// Where the repository and the programs the process-level tests run are.
enum Binaries {
    /// The repository's root (three levels above this file).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The `tote` executable of this build (`swift build --build-tests` builds it): beside the test
    /// bundle, else `.build/debug/tote`.
    static var tote: String {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("tote").path
        return FileManager.default.isExecutableFile(atPath: beside) ? beside : root.appendingPathComponent(".build/debug/tote").path
    }

    /// Builds the C controller tools (`make -C tools/controller`) and returns the simulator's
    /// path, or nil when they cannot be built here (no gcc or libprotobuf-c-dev).
    static func controllerSimulator() async -> String? {
        let built = await controllerBuild.value
        let path = root.appendingPathComponent("tools/controller/build/tote-controller-sim").path
        guard built.ok, FileManager.default.isExecutableFile(atPath: path) else {
            print("`make -C tools/controller` failed: \(built.output.suffix(500))")
            return nil
        }
        return path
    }

    /// Builds the C client tools (`make -C tools/c`) and returns the path of `tool` (e.g.
    /// "tote-purchase"), or nil with make's output when they cannot be built here (no gcc,
    /// pkg-config or libprotobuf-c-dev).
    static func cClientTool(_ tool: String) async -> (path: String?, problem: String) {
        let built = await clientBuild.value
        let path = root.appendingPathComponent("tools/c/build/\(tool)").path
        guard built.ok, FileManager.default.isExecutableFile(atPath: path) else {
            return (nil, "`make -C tools/c` failed (need gcc, pkg-config and libprotobuf-c-dev): \(built.output.suffix(500))")
        }
        return (path, "")
    }

    // Each C folder is built once per test process: suites run in parallel, and two makes in
    // one folder at once race on its object files.
    private static let controllerBuild = Task { await make("tools/controller") }
    private static let clientBuild = Task { await make("tools/c") }

    /// Runs `make -s -C <folder>` off the cooperative threads; whether it succeeded, and what it said.
    private static func make(_ folder: String) async -> (ok: Bool, output: String) {
        let make = Process()
        make.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        make.arguments = ["make", "-s", "-C", root.appendingPathComponent(folder).path]
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("tote-make-\(UUID().uuidString.prefix(8)).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: log) }
        guard let handle = try? FileHandle(forWritingTo: log) else { return (false, "cannot create \(log.path)") }
        make.standardOutput = handle
        make.standardError = handle
        do {
            try make.run()
            await make.exited()
        } catch {
            return (false, "cannot run make: \(error)")
        }
        try? handle.close()
        return (make.terminationStatus == 0, (try? String(contentsOf: log, encoding: .utf8)) ?? "")
    }
}
