import Glibc

/// RPCBench: unary echo calls against Tote's RPC runtime and against grpc-swift-2, on this
/// machine, in one run. See benchmarks/README.md.
///
///     RPCBench [run] [--duration S] [--warmup S] [--payload BYTES] [--rounds N]
///                    [--peers tote,grpc] [--connections 1,8] [--callers 1,64]
///     RPCBench serve --peer tote|grpc     (started by `run`, one process per measurement)
@main
enum RPCBench {
    static let usage = """
        usage: RPCBench [run] [--duration SECONDS] [--warmup SECONDS] [--payload BYTES] [--rounds N]
                              [--peers tote,grpc] [--connections 1,8] [--callers 1,64]
               RPCBench serve --peer tote|grpc
        """

    static func main() async {
        signal(SIGPIPE, SIG_IGN)
        var arguments = Array(CommandLine.arguments.dropFirst())
        var command = "run"
        if let first = arguments.first, !first.hasPrefix("-") {
            command = first
            arguments.removeFirst()
        }
        do {
            switch command {
            case "run":
                try await run(parseRunOptions(arguments))
            case "serve":
                guard arguments.count == 2, arguments[0] == "--peer", let peer = Peer(rawValue: arguments[1]) else {
                    throw BenchError(usage)
                }
                try await ServeCommand.run(peer: peer)
            case "-h", "--help", "help":
                print(usage)
            default:
                throw BenchError(usage)
            }
        } catch {
            writeUnbuffered("RPCBench: \(error)\n", to: 2)
            exit(1)
        }
    }

    static func run(_ options: RunOptions) async throws {
        let countsAllocations = ProcessStats.countsAllocations
        print("RPCBench: peers \(options.peers.map(\.rawValue).joined(separator: ",")), connections \(options.connections), callers \(options.callers), payload \(options.payloadBytes) B, warmup \(Report.format(options.warmupSeconds, 1)) s, duration \(Report.format(options.durationSeconds, 1)) s, rounds \(options.rounds)")
        print("servers: one child process per measurement; loadavg(1m) at start: \(Report.format(loadAverage(), 2))")
        var measurements: [Measurement] = []
        for round in 1...options.rounds {
            for connections in options.connections {
                for callers in options.callers {
                    // Alternate which peer goes first, so slow drift in the machine's state hits both.
                    let order = round % 2 == 1 ? options.peers : options.peers.reversed()
                    for peer in order {
                        let measurement = try await Driver.measure(peer: peer, connections: connections, callers: callers, options: options)
                        measurements.append(measurement)
                        print("round \(round) \(peer) conns=\(connections) callers=\(callers): \(Report.format(measurement.callsPerSecond, 0)) calls/s, p50 \(Report.format(Double(measurement.latency.value(atPercentile: 50)) / 1000, 1)) µs, p99 \(Report.format(Double(measurement.latency.value(atPercentile: 99)) / 1000, 1)) µs, others' CPU \(Report.format(measurement.othersLoad * 100, 0)) %")
                    }
                }
            }
        }
        print("loadavg(1m) at end: \(Report.format(loadAverage(), 2))\n")
        print(Report.render(measurements, options: options, countsAllocations: countsAllocations))
    }

    static func parseRunOptions(_ arguments: [String]) throws -> RunOptions {
        var options = RunOptions()
        var arguments = Arguments(arguments, usage: usage)
        while let option = arguments.nextOption() {
            switch option {
            case "--duration": options.durationSeconds = try arguments.seconds()
            case "--warmup": options.warmupSeconds = try arguments.seconds()
            case "--payload": options.payloadBytes = try arguments.byteCount()
            case "--rounds": options.rounds = try arguments.count()
            case "--peers":
                let text = try arguments.value()
                let peers = text.split(separator: ",").compactMap { Peer(rawValue: String($0)) }
                guard !peers.isEmpty, peers.count == text.split(separator: ",").count else { throw BenchError("unknown peer in \(text) (tote, grpc)") }
                options.peers = peers
            case "--connections": options.connections = try arguments.counts()
            case "--callers": options.callers = try arguments.counts()
            default: throw arguments.unknownOption()
            }
        }
        return options
    }
}
