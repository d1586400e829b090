import NIOCore
import Testing
@testable import ToteWire

@Suite("Frame codec")
struct FrameCodecTests {
    static func encode(_ frames: [Frame]) -> ByteBuffer {
        var buffer = ByteBuffer()
        for frame in frames { FrameEncoder.write(frame, into: &buffer) }
        return buffer
    }

    static let sampleFrames: [Frame] = [
        Frame(type: .settings, streamID: 0, payload: FrameEncoder.settingsPayload(ConnectionSettings())),
        Frame(type: .headers, flags: .endStream, streamID: 1, payload: ByteBuffer(bytes: [0x0A, 0x01, 0x41])),
        Frame(type: .message, streamID: 1, payload: ByteBuffer(bytes: Array(repeating: 7, count: 300))),
        Frame(type: .message, flags: .endStream, streamID: 3, payload: ByteBuffer()),
        Frame(type: .status, streamID: 3, payload: ByteBuffer(bytes: [0x08, 0x05])),
        Frame(type: .cancel, streamID: 5),
        Frame(type: .windowUpdate, streamID: 5, payload: FrameEncoder.windowUpdatePayload(32)),
        Frame(type: .ping, streamID: 0, payload: ByteBuffer(bytes: [1, 2, 3, 4, 5, 6, 7, 8])),
        Frame(type: .ping, flags: .ack, streamID: 0, payload: ByteBuffer(bytes: [1, 2, 3, 4, 5, 6, 7, 8])),
        Frame(type: .goAway, streamID: 0, payload: FrameEncoder.goAwayPayload(GoAway(lastStreamID: 9, code: .noError, message: "bye"))),
        Frame(type: .halfClose, streamID: 7),
    ]

    @Test("every frame type round-trips through encode and decode")
    func roundTrip() throws {
        var buffer = Self.encode(Self.sampleFrames)
        var decoder = FrameDecoder(maxFrameSize: 1 << 20)
        var decoded: [Frame] = []
        while let frame = try decoder.next(from: &buffer) { decoded.append(frame) }
        #expect(decoded == Self.sampleFrames)
        #expect(buffer.readableBytes == 0)
        #expect(Set(decoded.map(\.type)) == Set(FrameType.allCases))
    }

    @Test("frames split at every byte boundary decode the same (fragmented reads)")
    func fragmented() throws {
        let all = Self.encode(Self.sampleFrames)
        var decoder = FrameDecoder(maxFrameSize: 1 << 20)
        var accumulated = ByteBuffer()
        var decoded: [Frame] = []
        for byte in all.readableBytesView {
            accumulated.writeInteger(byte)
            while let frame = try decoder.next(from: &accumulated) { decoded.append(frame) }
        }
        #expect(decoded == Self.sampleFrames)
    }

    @Test("a partial frame needs more data and reports what is missing")
    func partial() throws {
        var buffer = Self.encode([Frame(type: .message, streamID: 1, payload: ByteBuffer(bytes: Array(repeating: 1, count: 100)))])
        var truncated = buffer.readSlice(length: 60)!
        var decoder = FrameDecoder(maxFrameSize: 1 << 20)
        #expect(try decoder.next(from: &truncated) == nil)
        #expect(truncated.readableBytes == 60, "a partial frame is not consumed")
        #expect(decoder.missingBytes(in: truncated) == 50)
        var header = ByteBuffer(bytes: [0, 0, 0])
        #expect(decoder.missingBytes(in: header) == 7)
        #expect(try decoder.next(from: &header) == nil)
    }

    @Test("an oversized frame fails as soon as its header arrives, before the payload")
    func oversized() {
        var buffer = ByteBuffer()
        FrameEncoder.writeHeader(type: .message, flags: [], streamID: 1, length: 5_000_000, into: &buffer)
        var decoder = FrameDecoder(maxFrameSize: 4 * 1024 * 1024)
        #expect(throws: ConnectionError(.frameSizeError, "frame of 5000000 bytes exceeds MAX_FRAME_SIZE 4194304")) {
            try decoder.next(from: &buffer)
        }
    }

    @Test("malformed frames are protocol errors naming the problem", arguments: [
        ([0, 0, 0, 0, 0x09, 0, 0, 0, 0, 1] as [UInt8], "unknown frame type 0x9"),
        ([0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 1], "MESSAGE frame with undefined flags 0x2"),
        ([0, 0, 0, 0, 0x06, 0x02, 0, 0, 0, 0], "PING frame with undefined flags 0x2"),
        ([0, 0, 0, 0, 0x02, 0, 0, 0, 0, 0], "MESSAGE frame must not be on stream 0"),
        ([0, 0, 0, 0, 0x00, 0, 0, 0, 0, 3], "SETTINGS frame must be on stream 0, not 3"),
        ([0, 0, 0, 5, 0x00, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5], "SETTINGS payload of 5 bytes is not a multiple of 6"),
        ([0, 0, 0, 4, 0x06, 0, 0, 0, 0, 0, 1, 2, 3, 4], "PING payload must be 8 bytes, not 4"),
        ([0, 0, 0, 2, 0x05, 0, 0, 0, 0, 1, 0, 1], "WINDOW_UPDATE payload must be 4 bytes, not 2"),
        ([0, 0, 0, 4, 0x07, 0, 0, 0, 0, 0, 0, 0, 0, 0], "GOAWAY payload must be at least 8 bytes, not 4"),
        ([0, 0, 0, 1, 0x04, 0, 0, 0, 0, 1, 0], "CANCEL payload must be empty, not 1 bytes"),
        ([0, 0, 0, 1, 0x08, 0, 0, 0, 0, 1, 0], "HALF_CLOSE payload must be empty, not 1 bytes"),
    ] as [([UInt8], String)])
    func malformed(bytes: [UInt8], message: String) {
        var buffer = ByteBuffer(bytes: bytes)
        var decoder = FrameDecoder(maxFrameSize: 1 << 20)
        #expect(throws: ConnectionError(.protocolError, message)) { try decoder.next(from: &buffer) }
    }

    @Test("settings: round trip, unknown ids ignored, bad values refused")
    func settings() throws {
        let custom = ConnectionSettings(maxFrameSize: 65536, maxConcurrentStreams: 7, initialWindow: 3)
        var payload = FrameEncoder.settingsPayload(custom)
        payload.writeInteger(UInt16(99))
        payload.writeInteger(UInt32(12345))
        #expect(try FrameEncoder.parseSettings(payload) == custom)
        #expect(try FrameEncoder.parseSettings(ByteBuffer()) == ConnectionSettings())

        var tooSmall = ByteBuffer()
        tooSmall.writeInteger(UInt16(1))
        tooSmall.writeInteger(UInt32(100))
        #expect(throws: ConnectionError.self) { try FrameEncoder.parseSettings(tooSmall) }
        var zeroWindow = ByteBuffer()
        zeroWindow.writeInteger(UInt16(3))
        zeroWindow.writeInteger(UInt32(0))
        #expect(throws: ConnectionError(.protocolError, "SETTINGS INITIAL_WINDOW must be at least 1")) {
            try FrameEncoder.parseSettings(zeroWindow)
        }
    }

    @Test("GOAWAY and WINDOW_UPDATE payloads")
    func fixedPayloads() throws {
        let goAway = GoAway(lastStreamID: 41, code: .connectionLimit, message: "full: 8 connections")
        #expect(FrameEncoder.parseGoAway(FrameEncoder.goAwayPayload(goAway)) == goAway)
        #expect(try FrameEncoder.parseWindowUpdate(FrameEncoder.windowUpdatePayload(9)) == 9)
        #expect(throws: ConnectionError.self) { try FrameEncoder.parseWindowUpdate(FrameEncoder.windowUpdatePayload(0)) }
    }

    @Test("the header layout is exactly as documented")
    func headerLayout() {
        var buffer = ByteBuffer()
        FrameEncoder.write(Frame(type: .message, flags: .endStream, streamID: 0x0102_0304, payload: ByteBuffer(bytes: [0xAA, 0xBB])), into: &buffer)
        #expect(Array(buffer.readableBytesView) == [0, 0, 0, 2, 0x02, 0x01, 0x01, 0x02, 0x03, 0x04, 0xAA, 0xBB])
        #expect(ConnectionPreface.bytes == [0x54, 0x4F, 0x54, 0x45, 0x2F, 0x31, 0x0D, 0x0A])
    }
}
