import Foundation
import NIOCore
import Testing
import ToteAPI
import ToteProto
@testable import ToteRPC
@testable import ToteWire

/// Bad input and overload: each case gets a clear, typed error, and the server keeps serving
/// other connections afterwards.
@Suite("Limits and bad input", .timeLimit(.minutes(2)))
struct ProtectionTests {
    /// After every bad-input case: a fresh, well-behaved client still gets answers.
    func assertStillServing(_ server: TestServer, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let connection = try await server.connect()
        let response = try await connection.unary(Diagnostics.echo, echoRequest("alive"))
        #expect(response.payload == Data("alive".utf8), sourceLocation: sourceLocation)
        await connection.close()
    }

    @Test("an oversized frame: GOAWAY FRAME_SIZE_ERROR naming the sizes, then close")
    func oversizedFrame() async throws {
        let server = try await TestServer.start { $0.settings.maxFrameSize = 64 * 1024 }
        let raw = try await RawConnection(port: server.port)
        try await raw.handshake()
        var header = ByteBuffer()
        FrameEncoder.writeHeader(type: .message, flags: [], streamID: 1, length: 1_000_000, into: &header)
        try await raw.send(Array(header.readableBytesView))
        let goAway = await raw.goAwayAndClose()
        #expect(goAway?.code == .frameSizeError)
        #expect(goAway?.message == "frame of 1000000 bytes exceeds MAX_FRAME_SIZE 65536")
        try await assertStillServing(server)
        await server.stop()
    }

    @Test("random garbage instead of a preface: GOAWAY PROTOCOL_ERROR, then close")
    func garbage() async throws {
        let server = try await TestServer.start()
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20 {
            let raw = try await RawConnection(port: server.port)
            var bytes = (0..<512).map { _ in UInt8.random(in: 0...255, using: &generator) }
            bytes[0] = 0x00  // never the preface's first byte 'T'
            try await raw.send(bytes)
            let goAway = await raw.goAwayAndClose()
            #expect(goAway?.code == .protocolError)
            #expect(goAway?.message.contains("invalid connection preface") == true)
        }
        try await assertStillServing(server)
        await server.stop()
    }

    @Test("random garbage after a valid handshake: a typed GOAWAY and close, never a hang")
    func garbageAfterHandshake() async throws {
        let server = try await TestServer.start { $0.partialFrameTimeout = .seconds(1) }
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20 {
            let raw = try await RawConnection(port: server.port)
            try await raw.handshake()
            try await raw.send((0..<256).map { _ in UInt8.random(in: 0...255, using: &generator) })
            let goAway = await raw.goAwayAndClose()
            #expect(goAway != nil, "the server must answer garbage with GOAWAY and close")
            #expect([ConnectionErrorCode.protocolError, .frameSizeError, .timeout, .flowControlError].contains(goAway?.code ?? .noError))
        }
        try await assertStillServing(server)
        await server.stop()
    }

    @Test("a truncated frame followed by silence: GOAWAY TIMEOUT after the partial-frame timeout")
    func slowloris() async throws {
        let server = try await TestServer.start { $0.partialFrameTimeout = .seconds(1) }
        let raw = try await RawConnection(port: server.port)
        try await raw.handshake()
        var frame = ByteBuffer()
        FrameEncoder.write(RawConnection.headersFrame(1, method: "tote.v1.Health/Check"), into: &frame)
        try await raw.send(Array(frame.readableBytesView.prefix(frame.readableBytes - 3)))
        let start = ContinuousClock.now
        let goAway = await raw.goAwayAndClose()
        #expect(goAway?.code == .timeout)
        #expect(goAway?.message == "incomplete frame: 3 more bytes did not arrive within 1 s")
        #expect(ContinuousClock.now - start < .seconds(4))
        try await assertStillServing(server)
        await server.stop()
    }

    @Test("a connection that never sends its preface is closed with GOAWAY TIMEOUT")
    func silentConnection() async throws {
        let server = try await TestServer.start { $0.partialFrameTimeout = .milliseconds(200) }
        let raw = try await RawConnection(port: server.port)
        let goAway = await raw.goAwayAndClose()
        #expect(goAway?.code == .timeout)
        #expect(goAway?.message == "no connection preface and SETTINGS within 200 ms")
        await server.stop()
    }

    @Test("an undecodable request payload is INVALID_ARGUMENT and the connection stays up")
    func undecodablePayload() async throws {
        let server = try await TestServer.start()
        let raw = try await RawConnection(port: server.port)
        try await raw.handshake()
        try await raw.send([
            RawConnection.headersFrame(1, method: Diagnostics.echo.fullName),
            Frame(type: .message, flags: .endStream, streamID: 1, payload: ByteBuffer(bytes: [0x0A, 0xFF, 0x01])),
        ])
        #expect(await raw.wait { frames, _ in frames.contains { $0.type == .status && $0.streamID == 1 } })
        let status = try Tote_V1_CallStatus(buffer: raw.frames().first { $0.type == .status }!.payload)
        #expect(status.code == .invalidArgument)
        #expect(status.message.hasPrefix("request is not a valid tote.v1.EchoRequest"))
        // Same connection, next call: still served.
        var echo = ByteBuffer()
        echo.writeBytes(try echoRequest("ok").serializedBytes() as [UInt8])
        try await raw.send([
            RawConnection.headersFrame(3, method: Diagnostics.echo.fullName),
            Frame(type: .message, flags: .endStream, streamID: 3, payload: echo),
        ])
        #expect(await raw.wait { frames, _ in frames.contains { $0.type == .status && $0.streamID == 3 } })
        let reply = try #require(raw.frames().first { $0.type == .message && $0.streamID == 3 })
        #expect(try Tote_V1_EchoResponse(buffer: reply.payload).payload == Data("ok".utf8))
        #expect(!raw.isClosed)
        raw.close()
        await server.stop()
    }

    @Test("a unary call with two request messages, or none, is INVALID_ARGUMENT")
    func unaryMessageCount() async throws {
        let server = try await TestServer.start()
        let raw = try await RawConnection(port: server.port)
        try await raw.handshake()
        try await raw.send([
            RawConnection.headersFrame(1, method: Diagnostics.echo.fullName),
            Frame(type: .message, streamID: 1, payload: ByteBuffer()),
            Frame(type: .message, flags: .endStream, streamID: 1, payload: ByteBuffer()),
            RawConnection.headersFrame(3, method: Diagnostics.echo.fullName, endStream: true),
        ])
        #expect(await raw.wait { frames, _ in frames.filter { $0.type == .status }.count == 2 })
        let statuses = try raw.frames().filter { $0.type == .status }.map { try Tote_V1_CallStatus(buffer: $0.payload) }
        #expect(statuses.map(\.code) == [.invalidArgument, .invalidArgument])
        #expect(statuses.map(\.message).contains("tote.v1.Diagnostics/Echo expects exactly one request message, got more"))
        #expect(statuses.map(\.message).contains("tote.v1.Diagnostics/Echo expects one request message, got none"))
        raw.close()
        await server.stop()
    }

    @Test("a raw client over MAX_CONCURRENT_STREAMS gets RESOURCE_EXHAUSTED for the extra call only")
    func streamLimit() async throws {
        let server = try await TestServer.start { $0.settings.maxConcurrentStreams = 2 }
        let raw = try await RawConnection(port: server.port)
        try await raw.handshake()
        var frames: [Frame] = []
        for stream: StreamID in [1, 3, 5] {
            frames.append(RawConnection.headersFrame(stream, method: Diagnostics.echo.fullName))
            frames.append(Frame(type: .message, flags: .endStream, streamID: stream, payload: try echoRequest("x", delayMicros: 200_000).serializedBuffer()))
        }
        try await raw.send(frames)
        #expect(await raw.wait { frames, _ in frames.filter { $0.type == .status }.count == 3 })
        let statuses = try raw.frames().filter { $0.type == .status }
        let byStream = try Dictionary(uniqueKeysWithValues: statuses.map { ($0.streamID, try Tote_V1_CallStatus(buffer: $0.payload)) })
        #expect(byStream[5]?.code == .resourceExhausted)
        #expect(byStream[5]?.message == "too many concurrent calls on this connection (limit 2)")
        #expect(byStream[1]?.code == .ok)
        #expect(byStream[3]?.code == .ok)
        raw.close()
        await server.stop()
    }

    @Test("a flood of connections past the limit: the extra ones get GOAWAY CONNECTION_LIMIT")
    func connectionFlood() async throws {
        let server = try await TestServer.start { $0.maxConnections = 8 }
        var held: [ClientConnection] = []
        for _ in 0..<8 { held.append(try await server.connect()) }
        for _ in 0..<20 {
            let error = await expectRPCError { _ = try await server.connect() }
            #expect(error?.code == .unavailable)
            #expect(error?.message.contains("CONNECTION_LIMIT") == true)
            #expect(error?.message.contains("limit of 8 connections") == true)
        }
        // The admitted connections keep working.
        #expect(try await held[0].unary(Diagnostics.echo, echoRequest("held")).payload == Data("held".utf8))
        await held.removeFirst().close()
        // Capacity frees up once a connection closes.
        var admitted = false
        for _ in 0..<100 where !admitted {
            if let connection = try? await server.connect() {
                admitted = true
                await connection.close()
            } else {
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        #expect(admitted)
        for connection in held { await connection.close() }
        await server.stop()
    }

    @Test("a peer that stops answering PINGs is closed with GOAWAY TIMEOUT")
    func keepaliveTimeout() async throws {
        let server = try await TestServer.start {
            $0.keepaliveInterval = .milliseconds(500)
            $0.keepaliveTimeout = .milliseconds(500)
        }
        let raw = try await RawConnection(port: server.port)
        try await raw.handshake()
        let goAway = await raw.goAwayAndClose()
        #expect(raw.frames().contains { $0.type == .ping && !$0.flags.contains(.ack) })
        #expect(goAway?.code == .timeout)
        #expect(goAway?.message == "no PING reply within 500 ms")
        await server.stop()
    }

    @Test("the Swift client answers keepalive PINGs, so an idle connection stays open")
    func keepaliveAnswered() async throws {
        let server = try await TestServer.start {
            $0.keepaliveInterval = .milliseconds(50)
            $0.keepaliveTimeout = .milliseconds(400)
        }
        let connection = try await server.connect()
        // Long enough for many PINGs, and for a peer that did not answer to be closed.
        try await Task.sleep(for: .milliseconds(1500))
        #expect(connection.isUsable)
        #expect(try await connection.unary(Diagnostics.echo, echoRequest("idle")).payload == Data("idle".utf8))
        await server.stop()
    }
}

@Suite("Shutdown and reconnect", .timeLimit(.minutes(2)))
struct LifecycleTests {
    @Test("graceful shutdown drains in-flight calls, refuses new ones, then closes")
    func drain() async throws {
        let server = try await TestServer.start()
        let connection = try await server.connect()
        async let inFlight = connection.unary(TestOnlyService.hold, echoRequest("finishing", delayMicros: 500_000))
        #expect(await eventually { server.probe.counts.started == 1 }, "the call reached its handler")
        let shutdown = Task { await server.stop() }
        #expect(await eventually { !connection.isUsable }, "GOAWAY received: no new calls on this connection")
        let refused = await expectRPCError { _ = try await connection.unary(Diagnostics.echo, echoRequest("late")) }
        #expect(refused?.code == .unavailable)
        #expect(try await inFlight.payload == Data("finishing".utf8))
        #expect(server.probe.counts.finished == 1)
        await shutdown.value
        #expect(server.server.connectionCount == 0)
        let error = await expectRPCError { _ = try await server.connect() }
        #expect(error?.code == .unavailable)
    }

    @Test("drain timeout closes connections whose calls do not finish")
    func drainTimeout() async throws {
        let server = try await TestServer.start { $0.drainTimeout = .milliseconds(300) }
        let connection = try await server.connect()
        let call = Task { try await connection.unary(TestOnlyService.slow, echoRequest("")) }
        while server.probe.counts.started == 0 { try await Task.sleep(for: .milliseconds(5)) }
        let start = ContinuousClock.now
        await server.stop()
        #expect(ContinuousClock.now - start < .seconds(3))
        guard case .failure(let error as RPCError) = await call.result else { Issue.record("expected a failure"); return }
        #expect(error.code == .unavailable)
    }

    @Test("ToteClient fails fast while the server is down and reconnects when it is back")
    func reconnect() async throws {
        let first = try await TestServer.start()
        let port = first.port
        let client = ToteClient(
            host: "127.0.0.1", port: port,
            configuration: .init(apiKey: Keys.storefront),
            backoff: .init(initial: .milliseconds(20), maximum: .milliseconds(200))
        )
        #expect(try await client.unary(Diagnostics.echo, echoRequest("one")).payload == Data("one".utf8))
        await first.stop()
        let down = await expectRPCError { _ = try await client.unary(Diagnostics.echo, echoRequest("down")) }
        #expect(down?.code == .unavailable)
        let second = try await TestServer.start { $0.port = port }
        let response = try await client.unary(Diagnostics.echo, echoRequest("two"), options: CallOptions(timeout: .seconds(5), waitForReady: true))
        #expect(response.payload == Data("two".utf8))
        await client.close()
        await second.stop()
    }
}

@Suite("Limits on what each side sends", .timeLimit(.minutes(2)))
struct SendLimitTests {
    @Test("a response larger than the client's MAX_FRAME_SIZE fails with RESOURCE_EXHAUSTED, not a broken connection")
    func responseOverClientLimit() async throws {
        let server = try await TestServer.start()
        let connection = try await server.connect(settings: ConnectionSettings(maxFrameSize: 16 * 1024))
        let error = await expectRPCError { _ = try await connection.unary(Diagnostics.echo, echoRequest(String(repeating: "x", count: 20_000))) }
        #expect(error?.code == .resourceExhausted)
        #expect(error?.message.hasSuffix("bytes exceeds the client's MAX_FRAME_SIZE 16384") == true)
        #expect(try await connection.unary(Diagnostics.echo, echoRequest("small")).payload == Data("small".utf8))
        await server.stop()
    }

    @Test("a request larger than the server's MAX_FRAME_SIZE fails locally and the connection stays up")
    func requestOverServerLimit() async throws {
        let server = try await TestServer.start { $0.settings.maxFrameSize = 16 * 1024 }
        let connection = try await server.connect()
        let error = await expectRPCError { _ = try await connection.unary(Diagnostics.echo, echoRequest(String(repeating: "y", count: 20_000))) }
        #expect(error?.code == .resourceExhausted)
        #expect(error?.message.hasSuffix("exceed the server's MAX_FRAME_SIZE 16384") == true)
        let streamed = await expectRPCError {
            _ = try await connection.clientStreaming(Diagnostics.collect) { writer in
                try await writer.write(echoRequest(String(repeating: "z", count: 20_000)))
            }
        }
        #expect(streamed?.code == .resourceExhausted)
        #expect(connection.isUsable)
        #expect(try await connection.unary(Diagnostics.echo, echoRequest("fits")).payload == Data("fits".utf8))
        await server.stop()
    }

    @Test("a steady sender whose reads end mid-frame is not mistaken for a slowloris")
    func partialFrameTimerRestarts() async throws {
        let server = try await TestServer.start { $0.partialFrameTimeout = .seconds(1) }
        let raw = try await RawConnection(port: server.port)
        try await raw.handshake()
        var stream = ByteBuffer()
        for index in 0..<14 {
            var payload = ByteBuffer()
            payload.writeInteger(UInt64(index))
            FrameEncoder.write(Frame(type: .ping, streamID: 0, payload: payload), into: &stream)
        }
        // Every write ends 5 bytes into the next frame; one write per 100 ms for 1.4 s, longer than
        // the 1 s timeout: a timer that did not restart when frames complete would fire.
        var sent = 0
        while stream.readableBytes > 0 {
            let length = min(stream.readableBytes, sent == 0 ? 23 : 18)
            try await raw.send(stream.readBytes(length: length)!)
            sent += 1
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(!raw.isClosed, "frames kept completing: the connection must stay open")
        #expect(await raw.wait { frames, _ in frames.filter { $0.type == .ping && $0.flags.contains(.ack) }.count == 14 })
        raw.close()
        await server.stop()
    }

    @Test("an unanswered PING closes the connection at the keepalive timeout, not at the next interval")
    func keepaliveTimeoutIsPrompt() async throws {
        let server = try await TestServer.start {
            $0.keepaliveInterval = .seconds(1)
            $0.keepaliveTimeout = .milliseconds(100)
        }
        let raw = try await RawConnection(port: server.port)
        try await raw.handshake()
        let start = ContinuousClock.now
        let goAway = await raw.goAwayAndClose(timeout: .seconds(5))
        #expect(goAway?.code == .timeout)
        // The handshake counts as activity, so the first idle tick (2 s) sends the PING and the
        // GOAWAY follows ~100 ms later; checking only at ticks would take until the 3 s tick.
        #expect(ContinuousClock.now - start < .milliseconds(2700))
        await server.stop()
    }

    @Test("handlers falling behind cannot make a connection buffer without bound: RESOURCE_EXHAUSTED")
    func inboundBudget() async throws {
        let server = try await TestServer.start {
            $0.maxBufferedInboundBytes = 8 * 1024
            $0.settings.initialWindow = 1000
        }
        let connection = try await server.connect()
        let error = await expectRPCError {
            _ = try await connection.clientStreaming(TestOnlyService.stall) { writer in
                for _ in 0..<200 { try await writer.write(echoRequest(String(repeating: "b", count: 1024))) }
            }
        }
        #expect(error?.code == .resourceExhausted)
        #expect(error?.quotaFailure?.violations.first?.subject == "max_buffered_inbound_bytes")
        // Only that call failed, and its bytes went back to the budget: the connection serves on.
        #expect(connection.isUsable)
        let result = try await connection.clientStreaming(Diagnostics.collect) { writer in
            for _ in 0..<4 { try await writer.write(echoRequest(String(repeating: "c", count: 1024))) }
        }
        #expect(result.messageCount == 4)
        await server.stop()
    }
}
