import NIOCore
import SwiftProtobuf
import Testing
import ToteProto
@testable import ToteWire

/// Drives the server state machine as a client would, with no I/O.
struct ServerHarness {
    var machine: ServerConnectionStateMachine
    var buffer = ByteBuffer()

    init(settings: ConnectionSettings = ConnectionSettings(), handshake: Bool = true) {
        machine = ServerConnectionStateMachine(settings: settings)
        if handshake {
            feed(ConnectionPreface.bytes)
            _ = drain()
            send(Frame(type: .settings, streamID: 0, payload: FrameEncoder.settingsPayload(ConnectionSettings(initialWindow: 2))))
            _ = drain()
        }
    }

    mutating func feed(_ bytes: [UInt8]) { buffer.writeBytes(bytes) }

    mutating func send(_ frame: Frame) { FrameEncoder.write(frame, into: &buffer) }

    /// All actions until more data is needed.
    mutating func drain() -> [ServerConnectionStateMachine.InboundAction] {
        var actions: [ServerConnectionStateMachine.InboundAction] = []
        while true {
            let action = machine.receive(&buffer)
            if case .needMoreData = action { return actions }
            actions.append(action)
            if case .closeWithError = action { return actions }
        }
    }

    static func headers(_ method: String) -> ByteBuffer {
        var headers = Tote_V1_CallHeaders()
        headers.method = method
        headers.authToken = "key"
        return try! headers.serializedBuffer()
    }

    mutating func open(_ id: StreamID, endStream: Bool = false) -> [ServerConnectionStateMachine.InboundAction] {
        send(Frame(type: .headers, flags: endStream ? .endStream : [], streamID: id, payload: Self.headers("tote.v1.Diagnostics/Echo")))
        return drain()
    }
}

extension ServerConnectionStateMachine.InboundAction {
    var connectionError: ConnectionError? {
        if case .closeWithError(let error) = self { return error }
        return nil
    }

    var rejection: RPCError? {
        if case .rejectCall(_, let error) = self { return error }
        return nil
    }

    var isOpen: Bool {
        if case .openCall = self { return true }
        return false
    }
}

@Suite("Server connection state machine")
struct ServerStateMachineTests {
    @Test("preface then SETTINGS establishes the connection; the server answers with its SETTINGS")
    func handshake() {
        var harness = ServerHarness(handshake: false)
        harness.feed(Array(ConnectionPreface.bytes.prefix(3)))
        #expect(harness.drain().isEmpty)
        harness.feed(Array(ConnectionPreface.bytes.dropFirst(3)))
        let actions = harness.drain()
        guard case .write(let frame) = actions.first else { Issue.record("expected SETTINGS write"); return }
        #expect(frame.type == .settings)
        #expect(!harness.machine.isEstablished)
        harness.send(Frame(type: .settings, streamID: 0, payload: FrameEncoder.settingsPayload(ConnectionSettings(initialWindow: 5))))
        _ = harness.drain()
        #expect(harness.machine.isEstablished)
        #expect(harness.machine.peerSettings.initialWindow == 5)
    }

    @Test("a wrong preface is a protocol error at the first wrong byte")
    func wrongPreface() {
        var harness = ServerHarness(handshake: false)
        harness.feed(Array("GET / HTTP/1.1\r\n".utf8))
        #expect(harness.drain().first?.connectionError?.code == .protocolError)
    }

    @Test("anything but SETTINGS after the preface is a protocol error")
    func settingsFirst() {
        var harness = ServerHarness(handshake: false)
        harness.feed(ConnectionPreface.bytes)
        _ = harness.drain()
        harness.send(Frame(type: .ping, streamID: 0, payload: ByteBuffer(bytes: [0, 0, 0, 0, 0, 0, 0, 0])))
        #expect(harness.drain().first?.connectionError == ConnectionError(.protocolError, "expected SETTINGS after the preface, got PING"))
    }

    @Test("a second SETTINGS is a protocol error")
    func settingsTwice() {
        var harness = ServerHarness()
        harness.send(Frame(type: .settings, streamID: 0))
        #expect(harness.drain().first?.connectionError?.message == "SETTINGS may only be sent once")
    }

    @Test("unary lifecycle: HEADERS, MESSAGE with END_STREAM, then the stream closes")
    func unaryLifecycle() {
        var harness = ServerHarness()
        #expect(harness.open(1).first?.isOpen == true)
        harness.send(Frame(type: .message, flags: .endStream, streamID: 1, payload: ByteBuffer(bytes: [1])))
        guard case .message(1, _, endStream: true) = harness.drain().first else { Issue.record("expected message"); return }
        let decision = harness.machine.reserveOutboundMessage(on: 1)
        #expect(decision == .send)
        #expect(harness.machine.openStreamCount == 1)
        let drained = harness.machine.streamClosed(1)
        #expect(drained == false)
        #expect(harness.machine.openStreamCount == 0)
    }

    @Test("stream ids must increase")
    func streamIDsIncrease() {
        var harness = ServerHarness()
        _ = harness.open(5)
        #expect(harness.open(3).first?.connectionError?.message == "HEADERS on stream 3: stream ids must increase (last was 5)")
    }

    @Test("undecodable call headers reject the call but keep the connection")
    func badHeaders() {
        var harness = ServerHarness()
        harness.send(Frame(type: .headers, streamID: 1, payload: ByteBuffer(bytes: [0xFF, 0xFF, 0xFF])))
        let rejection = harness.drain().first?.rejection
        #expect(rejection?.code == .invalidArgument)
        #expect(rejection?.message.hasPrefix("malformed call headers") == true)
        #expect(harness.open(3).first?.isOpen == true)
    }

    @Test("calls beyond MAX_CONCURRENT_STREAMS are refused with RESOURCE_EXHAUSTED and a quota detail")
    func concurrencyLimit() {
        var harness = ServerHarness(settings: ConnectionSettings(maxConcurrentStreams: 2))
        #expect(harness.open(1).first?.isOpen == true)
        #expect(harness.open(3).first?.isOpen == true)
        let rejection = harness.open(5).first?.rejection
        #expect(rejection?.code == .resourceExhausted)
        #expect(rejection?.quotaFailure?.violations.first?.subject == "max_concurrent_streams")
        _ = harness.machine.streamClosed(1)
        #expect(harness.open(7).first?.isOpen == true)
    }

    @Test("a MESSAGE beyond the granted window is a flow-control error")
    func inboundCredit() {
        var harness = ServerHarness(settings: ConnectionSettings(initialWindow: 2))
        _ = harness.open(1)
        for _ in 0..<2 { harness.send(Frame(type: .message, streamID: 1, payload: ByteBuffer())) }
        #expect(harness.drain().count == 2)
        harness.send(Frame(type: .message, streamID: 1, payload: ByteBuffer()))
        #expect(harness.drain().first?.connectionError?.code == .flowControlError)
    }

    @Test("consuming half a window returns credit in one WINDOW_UPDATE")
    func creditReturn() throws {
        var harness = ServerHarness(settings: ConnectionSettings(initialWindow: 4))
        _ = harness.open(1)
        for _ in 0..<4 { harness.send(Frame(type: .message, streamID: 1, payload: ByteBuffer())) }
        #expect(harness.drain().count == 4)
        let early = harness.machine.consumedInbound(1, on: 1)
        #expect(early == nil)
        let grant = harness.machine.consumedInbound(1, on: 1)
        let update = try #require(grant)
        #expect(update.type == .windowUpdate)
        #expect(try FrameEncoder.parseWindowUpdate(update.payload) == 2)
        for _ in 0..<2 { harness.send(Frame(type: .message, streamID: 1, payload: ByteBuffer())) }
        #expect(harness.drain().count == 2)
    }

    @Test("outbound messages wait for the client's credit")
    func outboundCredit() {
        var harness = ServerHarness()  // client window is 2
        _ = harness.open(1)
        var decisions = (0..<3).map { _ in harness.machine.reserveOutboundMessage(on: 1) }
        #expect(decisions == [.send, .send, .wait])
        harness.send(Frame(type: .windowUpdate, streamID: 1, payload: FrameEncoder.windowUpdatePayload(1)))
        guard case .creditAvailable(1) = harness.drain().first else { Issue.record("expected credit"); return }
        decisions = [harness.machine.reserveOutboundMessage(on: 1), harness.machine.reserveOutboundMessage(on: 9)]
        #expect(decisions == [.send, .streamClosed])
    }

    @Test("frames for finished streams are ignored; for never-opened streams they are errors")
    func unknownStreams() {
        var harness = ServerHarness()
        _ = harness.open(3)
        _ = harness.machine.streamClosed(3)
        harness.send(Frame(type: .message, streamID: 3, payload: ByteBuffer()))
        harness.send(Frame(type: .cancel, streamID: 3))
        harness.send(Frame(type: .windowUpdate, streamID: 1, payload: FrameEncoder.windowUpdatePayload(1)))
        #expect(harness.drain().allSatisfy { if case .none = $0 { true } else { false } })
        harness.send(Frame(type: .message, streamID: 9, payload: ByteBuffer()))
        #expect(harness.drain().first?.connectionError?.message == "MESSAGE on stream 9, which was never opened")
    }

    @Test("MESSAGE after END_STREAM, and HALF_CLOSE twice, are protocol errors")
    func afterEnd() {
        var harness = ServerHarness()
        _ = harness.open(1)
        harness.send(Frame(type: .halfClose, streamID: 1))
        guard case .endOfInput(1) = harness.drain().first else { Issue.record("expected end of input"); return }
        harness.send(Frame(type: .halfClose, streamID: 1))
        #expect(harness.drain().first?.connectionError?.code == .protocolError)

        var other = ServerHarness()
        _ = other.open(1, endStream: true)
        other.send(Frame(type: .message, streamID: 1, payload: ByteBuffer()))
        #expect(other.drain().first?.connectionError?.message == "MESSAGE on stream 1 after its sender ended it")
    }

    @Test("CANCEL closes the stream and tells the handler")
    func cancel() {
        var harness = ServerHarness()
        _ = harness.open(1)
        harness.send(Frame(type: .cancel, streamID: 1))
        guard case .cancelCall(1) = harness.drain().first else { Issue.record("expected cancel"); return }
        #expect(harness.machine.openStreamCount == 0)
    }

    @Test("PING is answered with ACK and the same payload; ACKs are reported")
    func ping() {
        var harness = ServerHarness()
        let payload = ByteBuffer(bytes: [9, 8, 7, 6, 5, 4, 3, 2])
        harness.send(Frame(type: .ping, streamID: 0, payload: payload))
        harness.send(Frame(type: .ping, flags: .ack, streamID: 0, payload: payload))
        let actions = harness.drain()
        guard case .write(let reply) = actions.first else { Issue.record("expected reply"); return }
        #expect(reply == Frame(type: .ping, flags: .ack, streamID: 0, payload: payload))
        guard case .pingAcknowledged = actions.last else { Issue.record("expected ack"); return }
    }

    @Test("STATUS from a client is a protocol error")
    func statusFromClient() {
        var harness = ServerHarness()
        harness.send(Frame(type: .status, streamID: 1))
        #expect(harness.drain().first?.connectionError?.message == "STATUS frames are sent only by the server")
    }

    @Test("drain: GOAWAY names the last stream, open calls finish, new ones get UNAVAILABLE")
    func drain() throws {
        var harness = ServerHarness()
        _ = harness.open(1)
        let drainFrame = harness.machine.beginDrain()
        let goAway = try #require(drainFrame)
        #expect(FrameEncoder.parseGoAway(goAway.payload) == GoAway(lastStreamID: 1, code: .noError, message: "server shutting down"))
        let again = harness.machine.beginDrain()
        #expect(again == nil, "draining twice sends one GOAWAY")
        #expect(!harness.machine.isDrained)
        #expect(harness.open(3).first?.rejection?.code == .unavailable)
        harness.send(Frame(type: .message, flags: .endStream, streamID: 1, payload: ByteBuffer()))
        guard case .message(1, _, _) = harness.drain().first else { Issue.record("open call still receives"); return }
        let lastClosed = harness.machine.streamClosed(1)
        #expect(lastClosed, "last call closed: connection may close")
    }

    @Test("a client GOAWAY drains the connection")
    func clientGoAway() {
        var harness = ServerHarness()
        _ = harness.open(1)
        harness.send(Frame(type: .goAway, streamID: 0, payload: FrameEncoder.goAwayPayload(GoAway(lastStreamID: 0, code: .noError, message: "bye"))))
        guard case .peerGoingAway = harness.drain().first else { Issue.record("expected going away"); return }
        #expect(!harness.machine.isDrained)
        let lastClosed = harness.machine.streamClosed(1)
        #expect(lastClosed)
    }

    @Test("after a fatal error the machine swallows further input")
    func closedSwallows() {
        var harness = ServerHarness()
        harness.send(Frame(type: .status, streamID: 1))
        _ = harness.drain()
        harness.feed([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
        #expect(harness.drain().isEmpty)
        #expect(harness.buffer.readableBytes == 0)
    }
}

@Suite("Server state machine: edges")
struct ServerStateMachineEdgeTests {
    @Test("draining before the handshake completes just closes")
    func drainDuringHandshake() throws {
        var harness = ServerHarness(handshake: false)
        harness.feed(Array(ConnectionPreface.bytes.prefix(4)))
        _ = harness.drain()
        let frame = harness.machine.beginDrain()
        let drained = harness.machine.isDrained
        #expect(frame?.type == .goAway)
        #expect(drained)
    }

    @Test("stream ids above 2^31 - 1 are a protocol error")
    func streamIDCeiling() {
        var harness = ServerHarness()
        #expect(harness.open(StreamID.maximum).first?.isOpen == true)
        #expect(harness.open(StreamID.maximum + 1).first?.connectionError?.message == "stream id 2147483648 exceeds the maximum 2147483647")
    }

    @Test("a message over the client's MAX_FRAME_SIZE is flagged before sending")
    func sendLimit() {
        let harness = ServerHarness()
        #expect(harness.machine.frameLimitExceeded(by: 4 * 1024 * 1024) == nil)
        #expect(harness.machine.frameLimitExceeded(by: 4 * 1024 * 1024 + 1) == UInt32(4 * 1024 * 1024))
    }
}

@Suite("Keepalive timeout")
struct KeepaliveTimeoutTests {
    @Test("the timeout check fires only if the peer stayed silent since the PING")
    func check() {
        var keepalive = KeepaliveStateMachine(timeoutNanoseconds: 100)
        #expect(keepalive.tick(now: 0) == .sendPing(1))
        let early = keepalive.pingTimedOut(now: 50)
        let late = keepalive.pingTimedOut(now: 100)
        #expect(!early)
        #expect(late)
        var answered = KeepaliveStateMachine(timeoutNanoseconds: 100)
        _ = answered.tick(now: 0)
        answered.receivedData()
        let alive = answered.pingTimedOut(now: 500)
        #expect(!alive)
    }
}
