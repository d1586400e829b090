import ToteAPI

/// Serves tote.v1.Diagnostics: echo calls of all four kinds for connectivity checks, latency
/// probes, client conformance tests and benchmarks.
public struct DiagnosticsService: RPCService {
    /// Longest delay a caller may ask for.
    public static let maximumDelayMicros: UInt32 = 10_000_000
    /// Most responses one Expand call may ask for.
    public static let maximumRepeat: UInt32 = 100_000

    public init() {}

    public func register(into router: inout RPCRouter) {
        router.register(Diagnostics.echo, unary: { request, _ in
            try await Self.delay(request.delayMicros)
            try Self.failIfAsked(request)
            var response = Tote_V1_EchoResponse()
            response.payload = request.payload
            return response
        })
        router.register(Diagnostics.expand, serverStreaming: { request, writer, _ in
            guard request.repeat <= Self.maximumRepeat else {
                throw RPCError.invalidArgument(
                    "repeat \(request.repeat) exceeds the maximum \(Self.maximumRepeat)",
                    fieldViolations: [("repeat", "must be at most \(Self.maximumRepeat)")]
                )
            }
            for index in 0..<request.repeat {
                try await Self.delay(request.delayMicros)
                var response = Tote_V1_EchoResponse()
                response.payload = request.payload
                response.index = index
                try await writer.write(response)
            }
        })
        router.register(Diagnostics.collect, clientStreaming: { requests, _ in
            var response = Tote_V1_CollectResponse()
            for try await request in requests {
                try Self.failIfAsked(request)
                response.messageCount += 1
                response.byteCount += UInt64(request.payload.count)
            }
            return response
        })
        router.register(Diagnostics.chat, bidirectional: { requests, writer, _ in
            var index: UInt32 = 0
            for try await request in requests {
                try await Self.delay(request.delayMicros)
                try Self.failIfAsked(request)
                var response = Tote_V1_EchoResponse()
                response.payload = request.payload
                response.index = index
                index += 1
                try await writer.write(response)
            }
        })
    }

    private static func delay(_ micros: UInt32) async throws {
        guard micros > 0 else { return }
        guard micros <= maximumDelayMicros else {
            throw RPCError.invalidArgument(
                "delay_micros \(micros) exceeds the maximum \(maximumDelayMicros)",
                fieldViolations: [("delay_micros", "must be at most \(maximumDelayMicros)")]
            )
        }
        try await Task.sleep(for: .microseconds(Int64(micros)))
    }

    private static func failIfAsked(_ request: Tote_V1_EchoRequest) throws {
        guard request.hasFailWith, request.failWith.code != 0 else { return }
        let code = RPCError.Code(rawValue: request.failWith.code)
        throw RPCError(code, String(decoding: request.payload, as: UTF8.self))
    }
}
