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
}
