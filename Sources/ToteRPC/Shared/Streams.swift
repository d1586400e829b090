import NIOCore
import SwiftProtobuf
import ToteWire

/// Raw inbound messages of one call, as the connection handler delivers them, with a hook that
/// returns flow-control credit as they are consumed.
struct RawMessageSource: Sendable {
    let messages: AsyncThrowingStream<ByteBuffer, any Error>
    /// Called once per message the application takes, with its size; returns credit to the peer.
    let consumed: @Sendable (Int) -> Void
}

/// Sends raw messages on one call; suspends while the peer has granted no credit.
struct RawMessageSink: Sendable {
    let send: @Sendable (ByteBuffer) async throws -> Void
}

/// The stream of request messages a client-streaming or bidirectional handler receives.
///
/// Iterating it returns credit to the client, so a slow handler slows the client down instead of
/// buffering without bound. An undecodable message ends iteration with INVALID_ARGUMENT.
public struct RequestStream<Request: SwiftProtobuf.Message & Sendable>: AsyncSequence, Sendable {
    public typealias Element = Request
    let source: RawMessageSource

    init(source: RawMessageSource) {
        self.source = source
    }

    /// Decodes each message as it is taken, returning credit to the peer.
    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncThrowingStream<ByteBuffer, any Error>.AsyncIterator
        let consumed: @Sendable (Int) -> Void
        var index = 0

        public mutating func next() async throws -> Request? {
            guard let buffer = try await base.next() else { return nil }
            consumed(buffer.readableBytes)
            defer { index += 1 }
            do {
                return try Request(buffer: buffer)
            } catch {
                throw RPCError(.invalidArgument, "message \(index) is not a valid \(Request.protoMessageName): \(error)")
            }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: source.messages.makeAsyncIterator(), consumed: source.consumed)
    }
}

/// The stream of response messages a client receives from a server-streaming or bidirectional
/// call. It ends normally when the server ends the call with OK and throws ``RPCError`` otherwise.
public typealias ResponseStream<Response: SwiftProtobuf.Message & Sendable> = RequestStream<Response>

/// Writes response messages of a server-streaming or bidirectional call.
public struct ResponseWriter<Response: SwiftProtobuf.Message & Sendable>: Sendable {
    let sink: RawMessageSink

    init(sink: RawMessageSink) {
        self.sink = sink
    }

    /// Sends one message; suspends while the client has not granted credit (flow control).
    /// Throws if the call has ended (cancelled, deadline passed, connection lost).
    public func write(_ message: Response) async throws {
        try await sink.send(message.serializedBuffer())
    }
}

/// Writes request messages of a client-streaming or bidirectional call.
public typealias RequestWriter<Request: SwiftProtobuf.Message & Sendable> = ResponseWriter<Request>
