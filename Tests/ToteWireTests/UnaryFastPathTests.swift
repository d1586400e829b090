import Foundation
import NIOCore
import SwiftProtobuf
import Testing
import ToteProto
@testable import ToteWire

/// The pieces of the server's unary fast path that live in ToteWire: reused decodes of repeated
/// HEADERS payloads, and encoded messages with room to be framed in place.
@Suite("Unary fast path: repeated call headers, framing room")
struct UnaryFastPathTests {
    static func headers(method: String, key: String = "key", timeoutMicros: UInt64 = 0, metadata: [String: String] = [:]) -> ByteBuffer {
        var headers = Tote_V1_CallHeaders()
        headers.method = method
        headers.authToken = key
        headers.timeoutMicros = timeoutMicros
        headers.metadata = metadata
        return try! headers.serializedBuffer()
    }

    /// Opens `id` with `payload` and returns the decoded headers (or the rejection).
    static func open(_ harness: inout ServerHarness, _ id: StreamID, _ payload: ByteBuffer) -> Result<Tote_V1_CallHeaders, RPCError>? {
        harness.send(Frame(type: .headers, flags: .endStream, streamID: id, payload: payload))
        switch harness.drain().first {
        case .openCall(_, let headers, _): return .success(headers)
        case .rejectCall(_, let error): return .failure(error)
        default: return nil
        }
    }

    @Test("repeated HEADERS bytes decode to the same headers; any changed byte is decoded afresh")
    func repeatedHeaders() throws {
        var harness = ServerHarness()
        let echo = Self.headers(method: "tote.v1.Diagnostics/Echo")
        let check = Self.headers(method: "tote.v1.Health/Check", key: "other-key", timeoutMicros: 5_000_000, metadata: ["tenant": "a"])
        var id: StreamID = 1
        for round in 0..<20 {
            let payload = round % 3 == 2 ? check : echo
            let headers = try #require(try Self.open(&harness, id, payload)?.get())
            if round % 3 == 2 {
                #expect(headers.method == "tote.v1.Health/Check")
                #expect(headers.authToken == "other-key")
                #expect(headers.timeoutMicros == 5_000_000)
                #expect(headers.metadata == ["tenant": "a"])
            } else {
                #expect(headers.method == "tote.v1.Diagnostics/Echo")
                #expect(headers.authToken == "key")
                #expect(headers.timeoutMicros == 0)
                #expect(headers.metadata.isEmpty)
            }
            id += 2
        }
        // One byte of the key differs: the new key, not the remembered one.
        let changed = try #require(try Self.open(&harness, id, Self.headers(method: "tote.v1.Diagnostics/Echo", key: "kez"))?.get())
        #expect(changed.authToken == "kez")
    }

    @Test("more distinct HEADERS than are remembered: every call still gets its own headers")
    func manyDistinctHeaders() throws {
        var harness = ServerHarness()
        var id: StreamID = 1
        for round in 0..<50 {
            let method = "tote.v1.Test/M\(round % (ServerConnectionStateMachine.recentHeadersLimit + 3))"
            let headers = try #require(try Self.open(&harness, id, Self.headers(method: method))?.get())
            #expect(headers.method == method)
            id += 1
        }
    }

    @Test("malformed HEADERS are rejected every time they are sent, also after a good payload")
    func malformedNeverRemembered() {
        var harness = ServerHarness()
        let bad = ByteBuffer(bytes: [0x0A, 0x05, 0x61])  // field 1 claims 5 bytes, 1 follows
        #expect(Self.open(&harness, 1, Self.headers(method: "tote.v1.Diagnostics/Echo")).map { (try? $0.get()) != nil } == true)
        for id in [3, 5, 7] as [StreamID] {
            guard case .failure(let error)? = Self.open(&harness, id, bad) else {
                Issue.record("malformed headers on stream \(id) were not rejected")
                continue
            }
            #expect(error.code == .invalidArgument)
        }
    }

    @Test("large HEADERS payloads are decoded but not kept")
    func largeHeadersNotKept() throws {
        var harness = ServerHarness()
        let big = Self.headers(method: "tote.v1.Diagnostics/Echo", metadata: ["blob": String(repeating: "x", count: 4096)])
        #expect(big.readableBytes > ServerConnectionStateMachine.recentHeadersMaxBytes)
        for id in [1, 3] as [StreamID] {
            let headers = try #require(try Self.open(&harness, id, big)?.get())
            #expect(headers.metadata["blob"]?.count == 4096)
        }
    }

    @Test("an encoded message has a frame header's room before and after it, and decodes back")
    func framingRoom() throws {
        var message = Tote_V1_EchoResponse()
        message.payload = Data((0..<300).map { UInt8($0 % 251) })
        message.index = 7
        let buffer = try message.serializedBuffer()
        #expect(buffer.readerIndex == ProtobufByteBuffer.framingRoom)
        #expect(buffer.writableBytes >= ProtobufByteBuffer.framingRoom)
        #expect(buffer.readableBytes == (try message.serializedBytes() as [UInt8]).count)
        #expect(try Tote_V1_EchoResponse(buffer: buffer) == message)

        // Framed in place: the bytes equal those of the frames written the ordinary way.
        var inPlace = buffer
        let start = inPlace.readerIndex - Frame.headerSize
        FrameEncoder.setHeader(type: .message, flags: [], streamID: 9, length: inPlace.readableBytes, at: start, in: &inPlace)
        inPlace.moveReaderIndex(to: start)
        FrameEncoder.writeHeader(type: .status, flags: [], streamID: 9, length: 0, into: &inPlace)
        var ordinary = ByteBuffer()
        FrameEncoder.write(Frame(type: .message, streamID: 9, payload: buffer), into: &ordinary)
        FrameEncoder.write(Frame(type: .status, streamID: 9, payload: ByteBuffer()), into: &ordinary)
        #expect(inPlace == ordinary)
        // The original value is untouched (copy on write).
        #expect(try Tote_V1_EchoResponse(buffer: buffer) == message)
    }

    @Test("an empty message still has the framing room")
    func emptyMessage() throws {
        let buffer = try Tote_V1_HealthCheckRequest().serializedBuffer()
        #expect(buffer.readableBytes == 0)
        #expect(buffer.readerIndex == ProtobufByteBuffer.framingRoom)
        #expect(buffer.writableBytes >= ProtobufByteBuffer.framingRoom)
    }
}
