import Foundation
import NIOCore
import Synchronization
import Testing
import ToteTestSupport
import ToteAPI
import ToteProto
@testable import ToteRPC
@testable import ToteWire

@Suite("Calls over real sockets", .timeLimit(.minutes(2)))
struct CallTests {
    @Test("unary health check and echo")
    func unary() async throws {
        let server = try await TestServer.start()
        let connection = try await server.connect()
        let health = try await connection.unary(Health.check, Tote_V1_HealthCheckRequest())
        #expect(health.status == .serving)
        #expect(health.serverVersion == "tote test")
        var unknown = Tote_V1_HealthCheckRequest()
        unknown.service = "tote.v1.Nope"
        #expect(try await connection.unary(Health.check, unknown).status == .serviceUnknown)
        let echo = try await connection.unary(Diagnostics.echo, echoRequest("hello"))
        #expect(echo.payload == Data("hello".utf8))
        await connection.close()
        await server.stop()
    }

    @Test("10,000 pipelined calls on one connection complete out of order, each with its own answer")
    func pipelined() async throws {
        let server = try await TestServer.start()
        let connection = try await server.connect()
        let completionOrder = Locked<[Int]>([])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<10_000 {
                group.addTask {
                    // Earlier calls sleep longer, so they finish after later ones.
                    let delay = UInt32(index % 7 == 0 ? (10_000 - index) / 20 : 0)
                    let response = try await connection.unary(Diagnostics.echo, echoRequest("call-\(index)", delayMicros: delay))
                    #expect(response.payload == Data("call-\(index)".utf8))
                    completionOrder.withLock { $0.append(index) }
                }
            }
            try await group.waitForAll()
        }
        let order = completionOrder.withLock { $0 }
        #expect(order.count == 10_000)
        #expect(order != order.sorted(), "responses should complete out of order")
        await connection.close()
        await server.stop()
    }

    @Test("server streaming delivers every message in order under flow control")
    func serverStreaming() async throws {
        let server = try await TestServer.start()
        let connection = try await server.connect(settings: ConnectionSettings(initialWindow: 4))
        var request = Tote_V1_ExpandRequest()
        request.payload = Data([1, 2, 3])
        request.repeat = 1000
        let indices = try await connection.serverStreaming(Diagnostics.expand, request) { responses in
            var indices: [UInt32] = []
            for try await response in responses {
                #expect(response.payload == Data([1, 2, 3]))
                indices.append(response.index)
                if indices.count % 100 == 0 { try await Task.sleep(for: .milliseconds(1)) }  // a slow reader
            }
            return indices
        }
        #expect(indices == Array(0..<1000))
        await server.stop()
    }

    @Test("client streaming counts what was sent; a bad message fails with INVALID_ARGUMENT")
    func clientStreaming() async throws {
        let server = try await TestServer.start()
        let connection = try await server.connect()
        let result = try await connection.clientStreaming(Diagnostics.collect) { writer in
            for index in 0..<500 { try await writer.write(echoRequest(String(repeating: "x", count: index % 10))) }
        }
        #expect(result.messageCount == 500)
        #expect(result.byteCount == UInt64((0..<500).reduce(0) { $0 + $1 % 10 }))
        let empty = try await connection.clientStreaming(Diagnostics.collect) { _ in }
        #expect(empty.messageCount == 0)
        let error = await expectRPCError {
            _ = try await connection.clientStreaming(Diagnostics.collect) { writer in
                try await writer.write(echoRequest("fine"))
                try await writer.write(echoRequest("refused", failWith: 9))
            }
        }
        #expect(error == RPCError(.failedPrecondition, "refused"))
        await server.stop()
    }

    @Test("bidirectional streaming answers each message as it arrives")
    func bidirectional() async throws {
        let server = try await TestServer.start()
        let connection = try await server.connect()
        let answers = try await connection.bidirectional(Diagnostics.chat) { writer, responses in
            var iterator = responses.makeAsyncIterator()
            var answers: [String] = []
            for index in 0..<200 {
                try await writer.write(echoRequest("m\(index)"))
                let response = try #require(try await iterator.next())
                #expect(response.index == UInt32(index))
                answers.append(String(decoding: response.payload, as: UTF8.self))
            }
            return answers
        }
        #expect(answers == (0..<200).map { "m\($0)" })
        await server.stop()
    }

    @Test("a call past its deadline fails with DEADLINE_EXCEEDED and the connection keeps serving")
    func deadline() async throws {
        let server = try await TestServer.start()
        let connection = try await server.connect()
        let start = ContinuousClock.now
        let error = await expectRPCError {
            _ = try await connection.unary(Diagnostics.echo, echoRequest("slow", delayMicros: 5_000_000), options: CallOptions(timeout: .milliseconds(100)))
        }
        #expect(error?.code == .deadlineExceeded)
        #expect(ContinuousClock.now - start < .seconds(2))
        #expect(try await connection.unary(Diagnostics.echo, echoRequest("after")).payload == Data("after".utf8))
        await server.stop()
    }

    @Test("the server enforces the deadline too: the handler is cancelled")
    func serverDeadline() async throws {
        let server = try await TestServer.start()
        let raw = try await RawConnection(port: server.port)
        try await raw.handshake()
        var headers = Tote_V1_CallHeaders()
        headers.method = TestOnlyService.slow.fullName
        headers.authToken = Keys.storefront
        headers.timeoutMicros = 100_000
        try await raw.send([
            Frame(type: .headers, streamID: 1, payload: try headers.serializedBuffer()),
            Frame(type: .message, flags: .endStream, streamID: 1, payload: ByteBuffer()),
        ])
        let gotStatus = await raw.wait { frames, _ in frames.contains { $0.type == .status } }
        #expect(gotStatus)
        let status = try Tote_V1_CallStatus(buffer: raw.frames().first { $0.type == .status }!.payload)
        #expect(status.code == .deadlineExceeded)
        #expect(status.message == "deadline of 100 ms exceeded")
        let cancelled = await raw.wait { _, _ in server.probe.counts.cancelled == 1 }
        #expect(cancelled)
        raw.close()
        await server.stop()
    }

    @Test("cancelling the calling task cancels the call on both sides")
    func clientCancel() async throws {
        let server = try await TestServer.start()
        let connection = try await server.connect()
        let task = Task { try await connection.unary(TestOnlyService.slow, echoRequest("x")) }
        while server.probe.counts.started == 0 { try await Task.sleep(for: .milliseconds(5)) }
        task.cancel()
        let result = await task.result
        guard case .failure(let error as RPCError) = result else { Issue.record("expected CANCELLED, got \(result)"); return }
        #expect(error.code == .cancelled)
        while server.probe.counts.cancelled == 0 { try await Task.sleep(for: .milliseconds(5)) }
        #expect(server.probe.counts.finished == 0)
        #expect(try await connection.unary(Diagnostics.echo, echoRequest("still up")).payload == Data("still up".utf8))
        await server.stop()
    }

    @Test("handler errors carry their status and details; unexpected errors are INTERNAL without secrets")
    func errors() async throws {
        let server = try await TestServer.start()
        let connection = try await server.connect()
        let notFound = await expectRPCError { _ = try await connection.unary(Diagnostics.echo, echoRequest("no order 7", failWith: 5)) }
        #expect(notFound == RPCError(.notFound, "no order 7"))
        var expand = Tote_V1_ExpandRequest()
        expand.repeat = 1_000_000
        let invalid = await expectRPCError { _ = try await connection.serverStreaming(Diagnostics.expand, expand) { try await $0.first { _ in true } } }
        #expect(invalid?.code == .invalidArgument)
        #expect(invalid?.badRequest?.fieldViolations.first?.field == "repeat")
        let crash = await expectRPCError { _ = try await connection.unary(TestOnlyService.crash, echoRequest("")) }
        #expect(crash == RPCError(.internal, "internal error"))
        await server.stop()
    }

    @Test("unknown method is UNIMPLEMENTED; missing or bad key is UNAUTHENTICATED; wrong role is PERMISSION_DENIED")
    func accessControl() async throws {
        let server = try await TestServer.start()
        let storefront = try await server.connect()
        let unknown = MethodDescriptor<Tote_V1_EchoRequest, Tote_V1_EchoResponse>(service: APIServices.diagnostics, name: "Nope", kind: .unary)
        let unimplemented = await expectRPCError { _ = try await storefront.unary(unknown, echoRequest("")) }
        #expect(unimplemented == RPCError(.unimplemented, "unknown method 'tote.v1.Diagnostics/Nope'"))

        let missing = await expectRPCError { _ = try await storefront.unary(Health.check, .init(), options: CallOptions(apiKey: "")) }
        #expect(missing == RPCError(.unauthenticated, "missing API key (call header auth_token)"))
        let bad = await expectRPCError { _ = try await storefront.unary(Health.check, .init(), options: CallOptions(apiKey: "not-a-real-key-at-all")) }
        #expect(bad == RPCError(.unauthenticated, "invalid API key"))

        let denied = await expectRPCError { _ = try await storefront.unary(TestOnlyService.ping, echoRequest("")) }
        #expect(denied == RPCError(.permissionDenied, "role 'storefront' may not call tote.test.OperatorOnly/Ping (allowed: operator)"))
        let allowed = try await storefront.unary(TestOnlyService.ping, echoRequest(""), options: CallOptions(apiKey: Keys.operator))
        #expect(allowed.payload == Data("operator".utf8))

        // A method may narrow its service's roles.
        let narrowed = await expectRPCError { _ = try await storefront.unary(TestOnlyService.audit, echoRequest("")) }
        #expect(narrowed == RPCError(.permissionDenied, "role 'storefront' may not call tote.test.Slow/Audit (allowed: operator)"))
        let passedThrough = try await storefront.unary(TestOnlyService.audit, echoRequest(""), options: CallOptions(apiKey: Keys.operator, correlationID: "order-flow-42"))
        #expect(passedThrough.payload == Data("order-flow-42".utf8))
        await server.stop()
    }

    @Test("a generated correlation id is the connection's random prefix and the stream id")
    func correlationID() async throws {
        let server = try await TestServer.start()
        let connection = try await server.connect(apiKey: Keys.operator)
        let first = String(decoding: try await connection.unary(TestOnlyService.audit, echoRequest("")).payload, as: UTF8.self)
        let second = String(decoding: try await connection.unary(TestOnlyService.audit, echoRequest("")).payload, as: UTF8.self)
        let (prefix, stream) = (first.split(separator: "-").first ?? "", first.split(separator: "-").last ?? "")
        #expect(prefix.count == 16 && prefix.allSatisfy(\.isHexDigit))
        #expect(Int(stream) != nil)
        #expect(second.hasPrefix(prefix + "-") && second != first)
        await server.stop()
    }

    @Test("calls beyond the server's concurrency limit wait on the client and all complete")
    func clientQueuesBeyondLimit() async throws {
        let server = try await TestServer.start { $0.settings.maxConcurrentStreams = 4 }
        let connection = try await server.connect()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<100 {
                group.addTask {
                    let response = try await connection.unary(Diagnostics.echo, echoRequest("\(index)", delayMicros: 2000))
                    #expect(response.payload == Data("\(index)".utf8))
                }
            }
            try await group.waitForAll()
        }
        await server.stop()
    }
}
