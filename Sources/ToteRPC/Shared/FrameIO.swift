import NIOCore
import ToteWire

/// The byte plumbing both connection handlers share: inbound bytes accumulated for the state
/// machine, frames written to the channel, and flushes coalesced so that every write made during
/// one event-loop tick leaves in a single flush (one syscall). Confined to the connection's loop.
final class FrameIO {
    private var context: ChannelHandlerContext?
    /// Bytes read but not yet consumed by the state machine.
    var inbound = ByteBuffer()
    private var flushScheduled = false
    private var needsFlush = false

    func attach(_ context: ChannelHandlerContext) {
        self.context = context
    }

    var allocator: ByteBufferAllocator { context?.channel.allocator ?? ByteBufferAllocator() }

    /// Adds freshly read bytes, without copying when nothing is pending.
    func append(_ bytes: inout ByteBuffer) {
        if inbound.readableBytes == 0 { inbound = bytes } else { inbound.writeBuffer(&bytes) }
    }

    /// Releases consumed bytes once the state machine has taken what it can.
    func compactInbound() {
        if inbound.readableBytes == 0 {
            inbound.clear()
        } else if inbound.readerIndex > 64 * 1024 {
            inbound.discardReadBytes()
        }
    }

    /// Writes one frame; it leaves with the next flush.
    func write(_ frame: Frame) {
        var buffer = allocator.buffer(capacity: Frame.headerSize + frame.payload.readableBytes)
        FrameEncoder.write(frame, into: &buffer)
        write(buffer)
    }

    /// Writes already-encoded frames; they leave with the next flush.
    func write(_ buffer: ByteBuffer) {
        context?.write(NIOAny(buffer), promise: nil)
        needsFlush = true
    }

    /// Flushes at the end of this event-loop tick (once, however many writes came before).
    func scheduleFlush() {
        guard !flushScheduled, let context else { return }
        flushScheduled = true
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let io = loopBound.value
            io.flushScheduled = false
            io.flushIfNeeded()
        }
    }

    /// Flushes if anything was written since the last flush (called at channelReadComplete).
    func flushIfNeeded() {
        guard needsFlush else { return }
        needsFlush = false
        context?.flush()
    }

    /// The keepalive PING carrying `counter`.
    static func ping(_ counter: UInt64) -> Frame {
        var payload = ByteBuffer()
        payload.writeInteger(counter)
        return Frame(type: .ping, streamID: 0, payload: payload)
    }
}
