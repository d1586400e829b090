import Foundation
import Logging
import NIOCore
import NIOPosix
import Testing
import ToteProto
@testable import ToteRPC
@testable import ToteWire

/// Unary handlers start on the connection's event loop (`Task.immediate`): one that never
/// suspends answers within the tick that read its request, one that suspends continues on the
/// global executor and hops back. Over real sockets.
@Suite("Unary handlers started inline on the event loop", .timeLimit(.minutes(2)))
struct InlineUnaryTests {
    static let service = ServiceDescriptor(name: "tote.test.Inline", roles: Set(Role.allCases))
    /// Answers at once; the payload says whether the handler ran on an event-loop thread.
    static let direct = MethodDescriptor<Tote_V1_EchoRequest, Tote_V1_EchoResponse>(service: service, name: "Direct", kind: .unary)
    /// Suspends first (sleeps `delay_micros`, or yields), then says where it continued.
    static let suspending = MethodDescriptor<Tote_V1_EchoRequest, Tote_V1_EchoResponse>(service: service, name: "Suspending", kind: .unary)
    /// Answers with stored bytes through `register(_:encodedUnary:)`.
    static let encoded = MethodDescriptor<Tote_V1_EchoRequest, Tote_V1_EchoResponse>(service: service, name: "Encoded", kind: .unary)
    /// Throws before any suspension.
    static let failing = MethodDescriptor<Tote_V1_EchoRequest, Tote_V1_EchoResponse>(service: service, name: "Failing", kind: .unary)

    /// "<payload>@loop" when the code ran on a NIO event-loop thread, "<payload>@pool" otherwise.
    static func answer(_ request: Tote_V1_EchoRequest) -> Tote_V1_EchoResponse {
        var response = Tote_V1_EchoResponse()
        let place = MultiThreadedEventLoopGroup.currentEventLoop == nil ? "pool" : "loop"
        response.payload = request.payload + Data("@\(place)".utf8)
        return response
    }

    static func startServer() async throws -> (RPCServer, Int) {
        var router = RPCRouter()
        router.register(direct, inline: true, unary: { request, _ in answer(request) })
        router.register(suspending, inline: true, unary: { request, _ in
            if request.delayMicros > 0 {
                try await Task.sleep(for: .microseconds(Int64(request.delayMicros)))
            } else {
                await Task.yield()
            }
            return answer(request)
        })
        // "Stored" responses, encoded once, as a read model keeps them.
        let stored: [String: [UInt8]] = try Dictionary(uniqueKeysWithValues: ["a", "b", ""].map { key in
            var response = Tote_V1_EchoResponse()
            response.payload = Data("stored \(key)".utf8)
            response.index = UInt32(key.utf8.first ?? 0)
            return (key, key.isEmpty ? [] : try response.serializedBytes())
        })
        router.register(encoded, encodedUnary: { request, _ in
            guard let bytes = stored[String(decoding: request.payload, as: UTF8.self)] else { throw RPCError(.notFound, "nothing stored") }
            return bytes
        })
        router.register(failing, inline: true, unary: { request, _ in
            throw RPCError(.failedPrecondition, "refused \(String(decoding: request.payload, as: UTF8.self))")
        })
        var logger = Logger(label: "test.inline")
        logger.logLevel = .critical
        let server = RPCServer(configuration: .init(host: "127.0.0.1", port: 0, drainTimeout: .seconds(5)), router: router,
                               keyring: Keys.keyring, logger: logger)
        let address = try await server.start()
        return (server, address.port!)
    }

    @Test("a handler that does not suspend runs on the event loop; one that sleeps answers too")
    func whereHandlersRun() async throws {
        let (server, port) = try await Self.startServer()
        let connection = try await ClientConnection.connect(host: "127.0.0.1", port: port, configuration: .init(apiKey: Keys.storefront))
        let direct = try await connection.unary(Self.direct, echoRequest("a"))
        #expect(String(decoding: direct.payload, as: UTF8.self) == "a@loop")
        let slept = try await connection.unary(Self.suspending, echoRequest("b", delayMicros: 2_000))
        // Where it resumes after the sleep is the executor's choice (a loop thread can run it).
        #expect(String(decoding: slept.payload, as: UTF8.self).hasPrefix("b@"))
        await connection.close()
        await server.shutdownGracefully()
    }

    @Test("3,000 concurrent calls mixing inline, suspending and failing handlers each get their own answer")
    func mixed() async throws {
        let (server, port) = try await Self.startServer()
        let connections = try await [0, 1].asyncMap { _ in
            try await ClientConnection.connect(host: "127.0.0.1", port: port, configuration: .init(apiKey: Keys.storefront))
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<3_000 {
                let connection = connections[index % 2]
                group.addTask {
                    let text = "call-\(index)"
                    switch index % 3 {
                    case 0:
                        let response = try await connection.unary(Self.direct, echoRequest(text))
                        #expect(String(decoding: response.payload, as: UTF8.self) == "\(text)@loop")
                    case 1:
                        let response = try await connection.unary(Self.suspending, echoRequest(text, delayMicros: index % 2 == 0 ? 0 : 300))
                        #expect(String(decoding: response.payload, as: UTF8.self).hasPrefix("\(text)@"))
                    default:
                        let error = await expectRPCError { _ = try await connection.unary(Self.failing, echoRequest(text)) }
                        #expect(error?.code == .failedPrecondition)
                        #expect(error?.message == "refused \(text)")
                    }
                }
            }
            try await group.waitForAll()
        }
        for connection in connections { await connection.close() }
        await server.shutdownGracefully()
    }

    @Test("encodedUnary sends the handler's bytes verbatim; clients decode them as the response type")
    func encodedUnary() async throws {
        let (server, port) = try await Self.startServer()
        let connection = try await ClientConnection.connect(host: "127.0.0.1", port: port, configuration: .init(apiKey: Keys.storefront))
        for key in ["a", "b"] {
            let response = try await connection.unary(Self.encoded, echoRequest(key))
            #expect(response.payload == Data("stored \(key)".utf8))
            #expect(response.index == UInt32(key.utf8.first!))
        }
        // Zero bytes are the empty message.
        #expect(try await connection.unary(Self.encoded, echoRequest("")) == Tote_V1_EchoResponse())
        let error = await expectRPCError { _ = try await connection.unary(Self.encoded, echoRequest("zzz")) }
        #expect(error?.code == .notFound)
        #expect(error?.message == "nothing stored")
        await connection.close()
        await server.shutdownGracefully()
    }

    @Test("a deadline still cancels a handler that started inline and then suspended")
    func deadlineAfterInlineStart() async throws {
        let (server, port) = try await Self.startServer()
        let connection = try await ClientConnection.connect(host: "127.0.0.1", port: port, configuration: .init(apiKey: Keys.storefront))
        let started = ContinuousClock.now
        let error = await expectRPCError {
            _ = try await connection.unary(Self.suspending, echoRequest("late", delayMicros: 20_000_000), options: CallOptions(timeout: .milliseconds(200)))
        }
        #expect(error?.code == .deadlineExceeded)
        #expect(ContinuousClock.now - started < .seconds(10))
        // The connection keeps serving inline calls.
        let direct = try await connection.unary(Self.direct, echoRequest("after"))
        #expect(String(decoding: direct.payload, as: UTF8.self) == "after@loop")
        await connection.close()
        await server.shutdownGracefully()
    }
}

extension Array {
    fileprivate func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for element in self { out.append(try await transform(element)) }
        return out
    }
}
