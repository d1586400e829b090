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
        let make = Process()
        make.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        make.arguments = ["make", "-s", "-C", root.appendingPathComponent("tools/controller").path]
        make.standardOutput = FileHandle.nullDevice
        make.standardError = FileHandle.nullDevice
        do {
            try make.run()
            await make.exited()
        } catch {
            return nil
        }
        let path = root.appendingPathComponent("tools/controller/build/tote-controller-sim").path
        return make.terminationStatus == 0 && FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }

    /// Builds the C client tools (`make -C tools/c`) and returns the path of `tool` (e.g.
    /// "tote-purchase"), or nil with make's output when they cannot be built here (no gcc,
    /// pkg-config or libprotobuf-c-dev).
    static func cClientTool(_ tool: String) async -> (path: String?, problem: String) {
        let make = Process()
        make.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        make.arguments = ["make", "-s", "-C", root.appendingPathComponent("tools/c").path]
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("tote-c-make-\(UUID().uuidString.prefix(8)).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: log) }
        guard let handle = try? FileHandle(forWritingTo: log) else { return (nil, "cannot create \(log.path)") }
        make.standardOutput = handle
        make.standardError = handle
        do {
            try make.run()
            await make.exited()
        } catch {
            return (nil, "cannot run make: \(error)")
        }
        try? handle.close()
        let said = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        let path = root.appendingPathComponent("tools/c/build/\(tool)").path
        guard make.terminationStatus == 0, FileManager.default.isExecutableFile(atPath: path) else {
            return (nil, "`make -C tools/c` failed (need gcc, pkg-config and libprotobuf-c-dev): \(said.suffix(500))")
        }
        return (path, "")
    }
}
