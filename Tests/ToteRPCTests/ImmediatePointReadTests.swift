import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing
import ToteProto
@testable import ToteRPC
@testable import ToteWire

/// Point reads registered with `register(_:encodedUnary:immediately:)`: answered on the event
/// loop with no task when they need not wait, by their async handler when they must, and with
/// the same statuses as any call otherwise. Also a server on an event-loop group of its own
/// (`RPCServer.Configuration.eventLoopThreads`). Over real sockets.
@Suite("Point reads answered immediately on the event loop", .timeLimit(.minutes(2)))
struct ImmediatePointReadTests {
    static let service = ServiceDescriptor(name: "tote.test.PointRead", roles: Set(Role.allCases))
    /// `payload` names a stored response; "wait:<key>" makes the immediate attempt decline, so
    /// that the async handler (which suspends first) answers.
    static let read = MethodDescriptor<Tote_V1_EchoRequest, Tote_V1_EchoResponse>(service: service, name: "Read", kind: .unary)

    /// Where each answer was made: "loop" (event-loop thread, no task), "task" (in a task).
    final class Places: Sendable {
        let answers = Mutex<[String]>([])
        /// Thread ids of the event loops the immediate answers ran on.
        let loops = Mutex<Set<ObjectIdentifier>>([])
        /// The scheduling policy of the thread of each immediate answer.
        let schedulings = Mutex<Set<RPCServer.EventLoopScheduling>>([])
    }

    /// The stored response for `key`: payload "stored <key>", index = its first byte.
    static func stored(_ key: String) throws -> [UInt8] {
        var response = Tote_V1_EchoResponse()
        response.payload = Data("stored \(key)".utf8)
        response.index = UInt32(key.utf8.first ?? 0)
        return try response.serializedBytes()
    }

    static func startServer(places: Places, eventLoopThreads: Int? = nil, scheduling: RPCServer.EventLoopScheduling = .normal) async throws -> (RPCServer, Int) {
        var router = RPCRouter()
        router.register(read, encodedUnary: { request, _ in
            try await Task.sleep(for: .milliseconds(1))
            places.answers.withLock { $0.append("task") }
            let key = String(decoding: request.payload, as: UTF8.self)
            return try stored(key.hasPrefix("wait:") ? String(key.dropFirst(5)) : key)
        }, immediately: { request, _ in
            let key = String(decoding: request.payload, as: UTF8.self)
            if key.hasPrefix("wait:") { return nil }
            if key == "missing" { throw RPCError(.notFound, "nothing stored under \(key)") }
            let inTask = withUnsafeCurrentTask { $0 != nil }
            guard let loop = MultiThreadedEventLoopGroup.currentEventLoop, !inTask else {
                places.answers.withLock { $0.append("elsewhere") }
                return try stored(key)
            }
            places.answers.withLock { $0.append("loop") }
            places.loops.withLock { _ = $0.insert(ObjectIdentifier(loop)) }
            places.schedulings.withLock { _ = $0.insert(RPCServer.currentThreadScheduling()) }
            return try stored(key)
        })
        var logger = Logger(label: "test.immediate")
        logger.logLevel = .critical
        var configuration = RPCServer.Configuration(host: "127.0.0.1", port: 0, drainTimeout: .seconds(5))
        configuration.eventLoopThreads = eventLoopThreads
        configuration.eventLoopScheduling = scheduling
        let server = RPCServer(configuration: configuration, router: router, keyring: Keys.keyring, logger: logger)
        let address = try await server.start()
        return (server, address.port!)
    }

    @Test("a read that need not wait is answered on the event loop with no task; its bytes arrive verbatim")
    func answeredOnTheLoop() async throws {
        let places = Places()
        let (server, port) = try await Self.startServer(places: places)
        let connection = try await ClientConnection.connect(host: "127.0.0.1", port: port, configuration: .init(apiKey: Keys.storefront))
        for key in ["a", "b", "order-123"] {
            let response = try await connection.unary(Self.read, echoRequest(key))
            #expect(response.payload == Data("stored \(key)".utf8))
            #expect(response.index == UInt32(key.utf8.first!))
        }
        #expect(places.answers.withLock { $0 } == ["loop", "loop", "loop"])
        await connection.close()
        await server.shutdownGracefully()
    }

    @Test("a read that declines the immediate answer is served by its async handler")
    func declinedGoesToTheHandler() async throws {
        let places = Places()
        let (server, port) = try await Self.startServer(places: places)
        let connection = try await ClientConnection.connect(host: "127.0.0.1", port: port, configuration: .init(apiKey: Keys.storefront))
        let response = try await connection.unary(Self.read, echoRequest("wait:k"))
        #expect(response.payload == Data("stored k".utf8))
        #expect(places.answers.withLock { $0 } == ["task"])
        await connection.close()
        await server.shutdownGracefully()
    }

    @Test("an immediate attempt that throws gives its status; bad request bytes give INVALID_ARGUMENT; the connection goes on")
    func failures() async throws {
        let places = Places()
        let (server, port) = try await Self.startServer(places: places)
        let connection = try await ClientConnection.connect(host: "127.0.0.1", port: port, configuration: .init(apiKey: Keys.storefront))
        let error = await expectRPCError { _ = try await connection.unary(Self.read, echoRequest("missing")) }
        #expect(error?.code == .notFound)
        #expect(error?.message == "nothing stored under missing")
        #expect(try await connection.unary(Self.read, echoRequest("after")).payload == Data("stored after".utf8))
        await connection.close()

        // A MESSAGE that is not an EchoRequest (field 1 with a truncated length).
        let raw = try await RawConnection(port: port)
        try await raw.handshake()
        try await raw.send([
            RawConnection.headersFrame(1, method: Self.read.fullName),
            Frame(type: .message, flags: .endStream, streamID: 1, payload: ByteBuffer(bytes: [0x0A, 0x7F, 0x01])),
        ])
        let answered = await raw.wait { frames, _ in frames.contains { $0.type == .status && $0.streamID == 1 } }
        #expect(answered)
        let status = raw.frames().first { $0.type == .status && $0.streamID == 1 }.flatMap { try? Tote_V1_CallStatus(buffer: $0.payload) }
        #expect(status?.code == .invalidArgument)
        #expect(status?.message.contains("not a valid tote.v1.EchoRequest") == true)
        #expect(!raw.isClosed)
        raw.close()
        await server.shutdownGracefully()
    }

    @Test("64 calls pipelined in one write on one connection, mixing immediate, declined and failing reads, each get their own answer")
    func pipelined() async throws {
        let places = Places()
        let (server, port) = try await Self.startServer(places: places)
        let raw = try await RawConnection(port: port)
        try await raw.handshake()
        var frames: [Frame] = []
        var expected: [StreamID: String] = [:]
        for index in 0..<64 {
            let id = StreamID(2 * index + 1)
            let key = switch index % 4 { case 0: "wait:k\(index)"; case 1: "missing"; default: "k\(index)" }
            frames.append(RawConnection.headersFrame(id, method: Self.read.fullName))
            frames.append(Frame(type: .message, flags: .endStream, streamID: id, payload: try echoRequest(key).serializedBuffer()))
            expected[id] = key
        }
        try await raw.send(frames)
        let done = await raw.wait(for: .seconds(20)) { frames, _ in frames.filter { $0.type == .status }.count == 64 }
        #expect(done)
        let received = raw.frames()
        for (id, key) in expected {
            let status = received.first { $0.type == .status && $0.streamID == id }.flatMap { try? Tote_V1_CallStatus(buffer: $0.payload) }
            let message = received.first { $0.type == .message && $0.streamID == id }.flatMap { try? Tote_V1_EchoResponse(buffer: $0.payload) }
            if key == "missing" {
                #expect(status?.code == .notFound)
                #expect(message == nil)
            } else {
                #expect(status?.code == .ok)
                let stored = key.hasPrefix("wait:") ? String(key.dropFirst(5)) : key
                #expect(message?.payload == Data("stored \(stored)".utf8))
            }
        }
        let answers = places.answers.withLock { $0 }
        #expect(answers.filter { $0 == "task" }.count == 16)
        #expect(answers.filter { $0 == "loop" }.count == 32)
        #expect(!answers.contains("elsewhere"))
        raw.close()
        await server.shutdownGracefully()
    }

    @Test("eventLoopThreads = 1: every connection is served on the server's one loop, which ends with run()")
    func ownEventLoopGroup() async throws {
        let places = Places()
        let (server, port) = try await Self.startServer(places: places, eventLoopThreads: 1)
        var connections: [ClientConnection] = []
        for _ in 0..<6 {
            connections.append(try await ClientConnection.connect(host: "127.0.0.1", port: port, configuration: .init(apiKey: Keys.storefront)))
        }
        for (index, connection) in connections.enumerated() {
            #expect(try await connection.unary(Self.read, echoRequest("c\(index)")).payload == Data("stored c\(index)".utf8))
        }
        #expect(places.loops.withLock { $0.count } == 1)
        #expect(places.answers.withLock { $0 } == Array(repeating: "loop", count: 6))
        for connection in connections { await connection.close() }
        // As under a ServiceGroup: run() serves until shut down, then ends the server's loops.
        let running = Task { try await server.run() }
        #expect(!server.ownedGroupIsShutDown)
        await server.shutdownGracefully()
        try await running.value
        #expect(server.ownedGroupIsShutDown)
    }

    @Test("eventLoopScheduling = .batch: the server's own loops (one per core) run under SCHED_BATCH; the shared group is untouched")
    func batchScheduledLoops() async throws {
        let places = Places()
        let (server, port) = try await Self.startServer(places: places, scheduling: .batch)
        var connections: [ClientConnection] = []
        for _ in 0..<(2 * System.coreCount) {
            connections.append(try await ClientConnection.connect(host: "127.0.0.1", port: port, configuration: .init(apiKey: Keys.storefront)))
        }
        for (index, connection) in connections.enumerated() {
            #expect(try await connection.unary(Self.read, echoRequest("b\(index)")).payload == Data("stored b\(index)".utf8))
        }
        #expect(places.answers.withLock { $0 } == Array(repeating: "loop", count: connections.count))
        #expect(places.loops.withLock { $0.count } == System.coreCount)
        #expect(places.schedulings.withLock { $0 } == [.batch])
        // The process's shared group (which the client used) keeps the default policy.
        let shared = try await MultiThreadedEventLoopGroup.singleton.next().submit { RPCServer.currentThreadScheduling() }.get()
        #expect(shared == .normal)
        for connection in connections { await connection.close() }
        let running = Task { try await server.run() }
        await server.shutdownGracefully()
        try await running.value
        #expect(server.ownedGroupIsShutDown)
    }

    @Test("eventLoopScheduling = .normal on the shared group: answers on threads of the default policy")
    func normalScheduling() async throws {
        let places = Places()
        let (server, port) = try await Self.startServer(places: places)
        let connection = try await ClientConnection.connect(host: "127.0.0.1", port: port, configuration: .init(apiKey: Keys.storefront))
        #expect(try await connection.unary(Self.read, echoRequest("n")).payload == Data("stored n".utf8))
        #expect(places.schedulings.withLock { $0 } == [.normal])
        #expect(!server.ownedGroupIsShutDown)
        await connection.close()
        await server.shutdownGracefully()
    }

    /// The order the test above leaves to the scheduler, forced: run() used to find the closed
    /// listener's address gone, bind a new one and serve forever (a CI run hung on it).
    @Test("shutdown before run(): run() binds nothing, returns and ends the loops; start() refuses")
    func shutdownBeforeRun() async throws {
        let (server, port) = try await Self.startServer(places: Places(), eventLoopThreads: 1)
        await server.shutdownGracefully()
        // Bounded, so that a regression fails here instead of hanging the whole run.
        let returned = Mutex(false)
        let running = Task {
            try await server.run()
            returned.withLock { $0 = true }
        }
        #expect(await eventually { returned.withLock { $0 } }, "run() returned")
        #expect(server.ownedGroupIsShutDown)
        #expect(server.localAddress == nil)
        if !returned.withLock({ $0 }) { await server.shutdownGracefully(); running.cancel() }
        await #expect(throws: RPCServer.LifecycleError.shutDown) { try await server.start() }
        await #expect(throws: (any Error).self) {
            _ = try await ClientConnection.connect(host: "127.0.0.1", port: port, configuration: .init(apiKey: Keys.storefront))
        }
    }
}
