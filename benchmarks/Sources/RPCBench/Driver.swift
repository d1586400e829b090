#if canImport(FoundationEssentials)
import FoundationEssentials  // Data, the type of bytes fields
#else
import Foundation
#endif

/// What to run: the matrix and how long each point is measured.
struct RunOptions: Sendable {
    var peers: [Peer] = Peer.allCases
    var connections: [Int] = [1, 8]
    var callers: [Int] = [1, 64]
    /// Seconds of back-to-back calls before measuring.
    var warmupSeconds: Double = 1
    /// Seconds measured at each point of the matrix.
    var durationSeconds: Double = 5
    /// Size of EchoRequest.payload (random bytes), the same for both peers.
    var payloadBytes: Int = 64
    /// Times the whole matrix is run; the peers alternate which goes first at each point.
    var rounds: Int = 1
}

/// One point of the matrix measured once: `callers` callers over `connections` connections.
struct Measurement: Sendable {
    let peer: Peer
    let connections: Int
    let callers: Int
    /// Calls completed inside the measured window.
    let calls: UInt64
    let seconds: Double
    /// Latency of each call completed inside the window, in nanoseconds.
    let latency: LatencyHistogram
    /// Driver (client) process counters over the window.
    let client: ProcessStats
    /// Server process counters over the window.
    let server: ProcessStats
    /// Busy CPU time of the whole machine over the window, in nanoseconds (all CPUs).
    let machineBusyNanoseconds: UInt64

    var callsPerSecond: Double { Double(calls) / seconds }

    /// Share of the machine's CPU capacity that processes other than the benchmark's client and
    /// server used during the window (0...1): high values mean the figures are disturbed.
    var othersLoad: Double {
        let ours = Double(client.cpuNanoseconds + server.cpuNanoseconds)
        let capacity = seconds * 1e9 * Double(MachineCPU.cpuCount)
        return Swift.max(0, Double(machineBusyNanoseconds) - ours) / capacity
    }
}

/// What one caller did: its latencies, or the error that stopped it.
struct CallerResult: Sendable {
    var latency = LatencyHistogram()
    var failure: String?
}

/// Runs the matrix.
enum Driver {
    /// Measures one point: starts the peer's server process, opens `connections` connections,
    /// checks one echo on each, starts `callers` callers spread round-robin over the
    /// connections, warms up, measures, and stops everything.
    static func measure(peer: Peer, connections: Int, callers: Int, options: RunOptions) async throws -> Measurement {
        let server = try await ServerProcess.launch(peer: peer)
        do {
            let measurement: Measurement
            switch peer {
            case .tote:
                measurement = try await measure(ToteEchoConnection.self, server: server, connections: connections, callers: callers, options: options)
            case .grpc:
                measurement = try await measure(GRPCEchoConnection.self, server: server, connections: connections, callers: callers, options: options)
            }
            await server.stop()
            return measurement
        } catch {
            await server.stop()
            throw error
        }
    }

    /// Generic over the connection type so that each peer's call loop is specialised.
    private static func measure<Connection: EchoConnection>(
        _: Connection.Type,
        server: ServerProcess,
        connections connectionCount: Int,
        callers: Int,
        options: RunOptions
    ) async throws -> Measurement {
        let request = {
            var request = EchoRequest()
            request.payload = Data(randomPayload(options.payloadBytes))
            return request
        }()

        var connections: [Connection] = []
        do {
            for _ in 0..<connectionCount {
                let connection = try await Connection.connect(port: server.port)
                connections.append(connection)
                // Opens the connection if the peer connects lazily, and checks the echo is right.
                let response = try await connection.echo(request)
                guard response.payload == request.payload else {
                    throw BenchError("\(server.peer) echoed \(response.payload.count) bytes that differ from the \(request.payload.count) sent")
                }
            }
        } catch {
            for connection in connections { await connection.close() }
            throw error
        }

        let phase = PhaseFlag()
        let outcome = await withTaskGroup(of: CallerResult.self) { group in
            for index in 0..<callers {
                let connection = connections[index % connectionCount]
                group.addTask { await callLoop(connection, request, phase) }
            }
            try? await Task.sleep(for: .seconds(options.warmupSeconds))

            phase.set(PhaseFlag.measuring)
            let start = monotonicNanoseconds()
            let clientStart = ProcessStats.current()
            let machineStart = MachineCPU.current()
            let serverStart = try? await server.stats()
            try? await Task.sleep(for: .seconds(options.durationSeconds))
            phase.set(PhaseFlag.stopping)
            let end = monotonicNanoseconds()
            let clientEnd = ProcessStats.current()
            let machineEnd = MachineCPU.current()
            let serverEnd = try? await server.stats()

            var latency = LatencyHistogram()
            var failures: [String] = []
            for await result in group {
                latency.merge(result.latency)
                if let failure = result.failure { failures.append(failure) }
            }
            return (
                latency, failures, end - start, clientEnd.since(clientStart),
                serverStart.flatMap { start in serverEnd?.since(start) },
                machineEnd.busyNanoseconds &- machineStart.busyNanoseconds
            )
        }
        for connection in connections { await connection.close() }

        let (latency, failures, nanoseconds, client, serverDelta, machineBusy) = outcome
        guard failures.isEmpty else {
            throw BenchError("\(failures.count) \(server.peer) caller(s) failed; first: \(failures[0])")
        }
        guard let serverStats = serverDelta else { throw BenchError("the \(server.peer) server process gave no STATS") }
        return Measurement(
            peer: server.peer,
            connections: connectionCount,
            callers: callers,
            calls: latency.count,
            seconds: Double(nanoseconds) / 1e9,
            latency: latency,
            client: client,
            server: serverStats,
            machineBusyNanoseconds: machineBusy
        )
    }

    /// One caller: back-to-back echo calls on one connection until the phase says stop. Records
    /// the latency of each call that completes while measuring; allocates nothing per call itself.
    private static func callLoop<Connection: EchoConnection>(
        _ connection: Connection,
        _ request: EchoRequest,
        _ phase: PhaseFlag
    ) async -> CallerResult {
        var result = CallerResult()
        let expectedCount = request.payload.count
        while phase.current != PhaseFlag.stopping {
            let start = monotonicNanoseconds()
            do {
                let response = try await connection.echo(request)
                let end = monotonicNanoseconds()
                guard response.payload.count == expectedCount else {
                    result.failure = "echoed \(response.payload.count) bytes, sent \(expectedCount)"
                    return result
                }
                if phase.current == PhaseFlag.measuring {
                    result.latency.record(end &- start)
                }
            } catch {
                result.failure = "\(error)"
                return result
            }
        }
        return result
    }

    private static func randomPayload(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }
}
