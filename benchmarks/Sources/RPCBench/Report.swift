/// All measurements of one matrix point for one peer, over every round.
struct PointSummary: Sendable {
    let peer: Peer
    let connections: Int
    let callers: Int
    let rounds: [Measurement]

    /// Median over the rounds (the mean of the middle two for an even count).
    var callsPerSecond: Double {
        let sorted = rounds.map(\.callsPerSecond).sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    /// Latencies of every round together.
    var latency: LatencyHistogram {
        rounds.dropFirst().reduce(into: rounds[0].latency) { $0.merge($1.latency) }
    }

    private var calls: Double { Double(rounds.reduce(0) { $0 + $1.calls }) }
    var clientCPUMicrosPerCall: Double { Double(rounds.reduce(0) { $0 + $1.client.cpuNanoseconds }) / 1000 / calls }
    var serverCPUMicrosPerCall: Double { Double(rounds.reduce(0) { $0 + $1.server.cpuNanoseconds }) / 1000 / calls }
    var clientAllocationsPerCall: Double { Double(rounds.reduce(0) { $0 + $1.client.allocations }) / calls }
    var serverAllocationsPerCall: Double { Double(rounds.reduce(0) { $0 + $1.server.allocations }) / calls }
    /// The highest share of the machine other processes took during any round (0...1).
    var othersLoad: Double { rounds.map(\.othersLoad).max() ?? 0 }
}

/// Prints the results as Markdown tables (readable as plain text too).
enum Report {
    /// The target of the issue: Tote at least this many times gRPC's QPS...
    static let targetQPSRatio = 3.0

    static func render(_ measurements: [Measurement], options: RunOptions, countsAllocations: Bool) -> String {
        var summaries: [PointSummary] = []
        for connections in options.connections {
            for callers in options.callers {
                for peer in options.peers {
                    let rounds = measurements.filter { $0.peer == peer && $0.connections == connections && $0.callers == callers }
                    if !rounds.isEmpty {
                        summaries.append(PointSummary(peer: peer, connections: connections, callers: callers, rounds: rounds))
                    }
                }
            }
        }

        var out = ""
        let allocationNote = countsAllocations ? "" : " (allocation counter not active: allocs read 0)"
        out += "QPS: median of \(options.rounds) round(s) of \(format(options.durationSeconds, 1)) s each; latency percentiles over all rounds' calls; "
        out += "CPU and allocations per call: client = driver process, server = server process\(allocationNote); "
        out += "others' CPU: share of the machine's \(MachineCPU.cpuCount) CPUs used by other processes during the window (worst round).\n\n"
        out += "| peer | conns | callers | QPS | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | client CPU µs/call | server CPU µs/call | client allocs/call | server allocs/call | others' CPU |\n"
        out += "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n"
        for summary in summaries {
            let latency = summary.latency
            out += "| \(summary.peer) | \(summary.connections) | \(summary.callers) | \(format(summary.callsPerSecond, 0)) "
            out += "| \(micros(latency.value(atPercentile: 50))) | \(micros(latency.value(atPercentile: 90))) "
            out += "| \(micros(latency.value(atPercentile: 99))) | \(micros(latency.value(atPercentile: 99.9))) | \(micros(latency.max)) "
            out += "| \(format(summary.clientCPUMicrosPerCall, 2)) | \(format(summary.serverCPUMicrosPerCall, 2)) "
            out += "| \(format(summary.clientAllocationsPerCall, 1)) | \(format(summary.serverAllocationsPerCall, 1)) "
            out += "| \(format(summary.othersLoad * 100, 0)) % |\n"
        }

        if options.rounds > 1 {
            out += "\nQPS per round:\n\n| peer | conns | callers | rounds |\n|---|--:|--:|---|\n"
            for summary in summaries {
                let values = summary.rounds.map { format($0.callsPerSecond, 0) }.joined(separator: ", ")
                out += "| \(summary.peer) | \(summary.connections) | \(summary.callers) | \(values) |\n"
            }
        }

        if options.peers.contains(.tote), options.peers.contains(.grpc) {
            out += "\nTote vs gRPC (target: QPS ratio ≥ \(format(targetQPSRatio, 0))× and a lower p99):\n\n"
            out += "| conns | callers | Tote QPS | gRPC QPS | QPS ratio | ≥ \(format(targetQPSRatio, 0))×? | Tote p99 µs | gRPC p99 µs | Tote p99 lower? |\n"
            out += "|--:|--:|--:|--:|--:|:-:|--:|--:|:-:|\n"
            for connections in options.connections {
                for callers in options.callers {
                    guard let tote = summaries.first(where: { $0.peer == .tote && $0.connections == connections && $0.callers == callers }),
                          let grpc = summaries.first(where: { $0.peer == .grpc && $0.connections == connections && $0.callers == callers })
                    else { continue }
                    let ratio = tote.callsPerSecond / grpc.callsPerSecond
                    let toteP99 = tote.latency.value(atPercentile: 99)
                    let grpcP99 = grpc.latency.value(atPercentile: 99)
                    out += "| \(connections) | \(callers) | \(format(tote.callsPerSecond, 0)) | \(format(grpc.callsPerSecond, 0)) "
                    out += "| \(format(ratio, 2))× | \(ratio >= targetQPSRatio ? "yes" : "no") "
                    out += "| \(micros(toteP99)) | \(micros(grpcP99)) | \(toteP99 < grpcP99 ? "yes" : "no") |\n"
                }
            }
        }
        return out
    }

    private static func micros(_ nanoseconds: UInt64) -> String {
        format(Double(nanoseconds) / 1000, 1)
    }

    /// `value` with `decimals` digits after the point (no Foundation formatting needed).
    static func format(_ value: Double, _ decimals: Int) -> String {
        formatFixed(value, decimals)
    }
}
