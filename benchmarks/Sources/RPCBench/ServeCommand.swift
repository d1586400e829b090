import Dispatch
import Glibc

/// `RPCBench serve --peer P`: the child-process side of ``ServerProcess``.
enum ServeCommand {
    static func run(peer: Peer) async throws {
        let server = try await peer.startServer()
        reply("READY \(server.port)")

        // Commands are read with blocking reads on a dispatch thread, never on the cooperative pool.
        let (stopRequests, stop) = AsyncStream<Void>.makeStream()
        DispatchQueue(label: "rpcbench.serve.commands").async {
            while let command = readLine() {
                if command == "STATS" {
                    reply("STATS \(ProcessStats.current().line)")
                } else if command == "STOP" {
                    break
                } else {
                    reply("ERROR unknown command '\(command)'")
                }
            }
            stop.finish()  // STOP, or the driver went away (end of input)
        }
        for await _ in stopRequests {}
        await server.shutdown()
        reply("STOPPED")
    }

    private static func reply(_ line: String) {
        writeUnbuffered(line + "\n", to: 1)
    }
}
