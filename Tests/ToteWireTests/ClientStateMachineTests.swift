import NIOCore
import SwiftProtobuf
import Testing
import ToteProto
@testable import ToteWire

@Suite("Client connection state machine")
struct ClientStateMachineTests {
    static func settingsFrame(_ settings: ConnectionSettings) -> Frame {
        Frame(type: .settings, streamID: 0, payload: FrameEncoder.settingsPayload(settings))
    }

    static func receive(_ machine: inout ClientConnectionStateMachine, _ frames: [Frame]) -> [ClientConnectionStateMachine.InboundAction] {
        var buffer = ByteBuffer()
        for frame in frames { FrameEncoder.write(frame, into: &buffer) }
        var actions: [ClientConnectionStateMachine.InboundAction] = []
        while true {
            let action = machine.receive(&buffer)
            if case .needMoreData = action { return actions }
            actions.append(action)
        }
    }

    @Test("the handshake bytes are the preface followed by SETTINGS")
    func handshakeBytes() throws {
        let machine = ClientConnectionStateMachine()
        var bytes = machine.handshakeBytes()
        #expect(bytes.readBytes(length: 8) == ConnectionPreface.bytes)
        var decoder = FrameDecoder(maxFrameSize: 1 << 20)
        #expect(try decoder.next(from: &bytes)?.type == .settings)
    }

    @Test("the server's SETTINGS makes the connection ready; other frames first are errors")
    func ready() {
        var machine = ClientConnectionStateMachine()
        guard case .ready = Self.receive(&machine, [Self.settingsFrame(ConnectionSettings())]).first else { Issue.record("not ready"); return }
        #expect(machine.isReady)

        var early = ClientConnectionStateMachine()
        guard case .closeWithError(let error) = Self.receive(&early, [Frame(type: .status, streamID: 1)]).first else { Issue.record("expected error"); return }
        #expect(error.message == "expected SETTINGS from the server first, got STATUS")
    }

    @Test("stream ids increase and calls beyond the server's limit wait")
    func concurrency() {
        var machine = ClientConnectionStateMachine()
        _ = Self.receive(&machine, [Self.settingsFrame(ConnectionSettings(maxConcurrentStreams: 2))])
        let opens = (0..<3).map { _ in machine.openStream() }
        #expect(opens == [.opened(1), .opened(2), .wait])
        let first = machine.cancelStream(1)
        let second = machine.cancelStream(1)
        #expect(first?.type == .cancel)
        #expect(second == nil, "cancel is sent once")
        let next = machine.openStream()
        #expect(next == .opened(3))
    }

    @Test("STATUS ends a stream and carries the decoded status; a bad STATUS fails only that call")
    func status() throws {
        var machine = ClientConnectionStateMachine()
        _ = Self.receive(&machine, [Self.settingsFrame(ConnectionSettings())])
        _ = machine.openStream()
        _ = machine.openStream()
        let error = RPCError(.notFound, "no order 42")
        let actions = Self.receive(&machine, [
            Frame(type: .message, streamID: 1, payload: ByteBuffer(bytes: [1])),
            Frame(type: .status, streamID: 1, payload: try error.callStatus.serializedBuffer()),
            Frame(type: .status, streamID: 2, payload: ByteBuffer(bytes: [0xFF])),
        ])
        guard case .message(1, _) = actions[0], case .status(1, let status) = actions[1], case .malformedStatus(2, _) = actions[2] else {
            Issue.record("unexpected actions \(actions)"); return
        }
        #expect(RPCError(status: status) == error)
        #expect(machine.openStreamCount == 0)
    }

    @Test("GOAWAY fails the calls the server did not process and refuses new ones")
    func goAway() {
        var machine = ClientConnectionStateMachine()
        _ = Self.receive(&machine, [Self.settingsFrame(ConnectionSettings())])
        for _ in 0..<4 { _ = machine.openStream() }
        let goAway = GoAway(lastStreamID: 2, code: .noError, message: "shutting down")
        let actions = Self.receive(&machine, [Frame(type: .goAway, streamID: 0, payload: FrameEncoder.goAwayPayload(goAway))])
        guard case .goingAway(let received, let unprocessed) = actions.first else { Issue.record("expected going away"); return }
        #expect(received == goAway)
        #expect(unprocessed == [3, 4])
        if case .refused = machine.openStream() {} else { Issue.record("new calls must be refused") }
        #expect(!machine.isDrained)
        _ = machine.cancelStream(1)
        _ = machine.cancelStream(2)
        #expect(machine.isDrained)
    }

    @Test("response messages beyond the window are a flow-control error; consumed ones return credit")
    func inboundCredit() throws {
        var machine = ClientConnectionStateMachine(settings: ConnectionSettings(initialWindow: 2))
        _ = Self.receive(&machine, [Self.settingsFrame(ConnectionSettings())])
        _ = machine.openStream()
        let two = Self.receive(&machine, Array(repeating: Frame(type: .message, streamID: 1, payload: ByteBuffer()), count: 2))
        #expect(two.count == 2)
        let grant = machine.consumedInbound(1, on: 1)
        let update = try #require(grant)
        #expect(try FrameEncoder.parseWindowUpdate(update.payload) == 1)
        _ = machine.consumedInbound(1, on: 1)
        let more = Self.receive(&machine, Array(repeating: Frame(type: .message, streamID: 1, payload: ByteBuffer()), count: 3))
        guard case .closeWithError(let error) = more.last else { Issue.record("expected flow-control error"); return }
        #expect(error.code == .flowControlError)
    }

    @Test("frames only clients send are protocol errors when received from a server")
    func clientOnlyFrames() {
        for type in [FrameType.headers, .cancel, .halfClose] {
            var machine = ClientConnectionStateMachine()
            _ = Self.receive(&machine, [Self.settingsFrame(ConnectionSettings())])
            let actions = Self.receive(&machine, [Frame(type: type, streamID: 1)])
            guard case .closeWithError(let error) = actions.first else { Issue.record("\(type) accepted"); continue }
            #expect(error.code == .protocolError)
        }
    }
}

@Suite("Keepalive")
struct KeepaliveTests {
    @Test("an idle connection is pinged, and declared dead if the ping goes unanswered")
    func idle() {
        var keepalive = KeepaliveStateMachine(timeoutNanoseconds: 100)
        #expect(keepalive.tick(now: 0) == .sendPing(1))
        #expect(keepalive.tick(now: 50) == .none)
        #expect(keepalive.tick(now: 100) == .timedOut)
    }

    @Test("traffic or an ACK keeps the connection alive without pings")
    func active() {
        var keepalive = KeepaliveStateMachine(timeoutNanoseconds: 100)
        keepalive.receivedData()
        #expect(keepalive.tick(now: 0) == .none)
        #expect(keepalive.tick(now: 10) == .sendPing(1))
        keepalive.receivedPingAck()
        #expect(keepalive.tick(now: 500) == .none)
        #expect(keepalive.tick(now: 600) == .sendPing(2))
        keepalive.receivedData()
        #expect(keepalive.tick(now: 800) == .none, "any data answers an outstanding ping")
    }
}

@Suite("Bounded random input")
struct RandomInputTests {
    /// Feeds random bytes (after a valid handshake, and without one) to the server state machine in
    /// random chunk sizes: it must never crash or loop, and must either wait for more bytes or fail
    /// with a typed connection error. A bounded stand-in for the libFuzzer target in tools/fuzz.
    @Test("random bytes never crash the server state machine", arguments: [false, true])
    func randomBytes(afterHandshake: Bool) {
        var generator = SeededGenerator(seed: afterHandshake ? 0x5EED : 0xF00D)
        var errors = 0
        for _ in 0..<3000 {
            var harness = ServerHarness(settings: ConnectionSettings(maxFrameSize: 16 * 1024), handshake: afterHandshake)
            let length = Int.random(in: 0...256, using: &generator)
            var bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            // Bias toward plausible headers so that deeper paths are reached too.
            if afterHandshake, bytes.count >= 10, Bool.random(using: &generator) {
                bytes[0] = 0; bytes[1] = 0; bytes[2] = 0
                bytes[3] = UInt8(min(bytes.count - 10, 255))
                bytes[4] = UInt8.random(in: 0...8, using: &generator)
                bytes[5] = UInt8.random(in: 0...1, using: &generator)
            }
            var offset = 0
            var failed = false
            while offset < bytes.count, !failed {
                let chunk = min(bytes.count - offset, Int.random(in: 1...32, using: &generator))
                harness.feed(Array(bytes[offset..<(offset + chunk)]))
                offset += chunk
                failed = harness.drain().contains { $0.connectionError != nil }
            }
            if failed { errors += 1 }
        }
        #expect(errors > 0, "random input should hit protocol errors")
    }
}

/// A small deterministic PRNG (SplitMix64) so random tests are reproducible.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
