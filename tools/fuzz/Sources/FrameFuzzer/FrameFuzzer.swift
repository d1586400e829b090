import CFuzzerDriver
#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import ToteWire

/// libFuzzer entry point: feeds arbitrary bytes to the server and client connection state
/// machines (optionally after a valid handshake, so deeper states are reached) in chunk sizes the
/// input chooses, and exercises the outbound API on every call the input opens. Any crash, hang
/// or sanitizer report is a bug: untrusted bytes must only ever produce actions or typed errors.
@main
enum FrameFuzzer {
    static func main() {
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzOneInput(data, size) })
    }
}

private func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size > 1 else { return 0 }
    let input = UnsafeBufferPointer(start: data, count: size)
    let control = input[0]
    let body = input.dropFirst(1)
    fuzzServer(body, handshake: control & 1 == 1, chunk: Int(control >> 4) + 1)
    fuzzClient(body, chunk: Int(control >> 4) + 1)
    return 0
}

private func fuzzServer(_ bytes: Slice<UnsafeBufferPointer<UInt8>>, handshake: Bool, chunk: Int) {
    var machine = ServerConnectionStateMachine(settings: ConnectionSettings(maxFrameSize: 16 * 1024, maxConcurrentStreams: 8, initialWindow: 4))
    var buffer = ByteBuffer()
    if handshake {
        buffer.writeBytes(ConnectionPreface.bytes)
        FrameEncoder.write(Frame(type: .settings, streamID: 0, payload: FrameEncoder.settingsPayload(ConnectionSettings())), into: &buffer)
    }
    var offset = bytes.startIndex
    while offset < bytes.endIndex {
        let end = min(bytes.endIndex, offset + chunk)
        buffer.writeBytes(UnsafeBufferPointer(rebasing: bytes[offset..<end]))
        offset = end
        while true {
            switch machine.receive(&buffer) {
            case .needMoreData:
                break
            case .closeWithError:
                return
            case .openCall(let id, _, _):
                _ = machine.reserveOutboundMessage(on: id)
                _ = machine.consumedInbound(1, on: id)
                continue
            case .message(let id, _, let endStream):
                _ = machine.consumedInbound(1, on: id)
                if endStream { _ = machine.streamClosed(id) }
                continue
            case .endOfInput(let id):
                _ = machine.streamClosed(id)
                continue
            case .peerGoingAway:
                _ = machine.beginDrain()
                continue
            case .none, .write, .rejectCall, .cancelCall, .creditAvailable, .pingAcknowledged:
                continue
            }
            break
        }
    }
}

private func fuzzClient(_ bytes: Slice<UnsafeBufferPointer<UInt8>>, chunk: Int) {
    var machine = ClientConnectionStateMachine(settings: ConnectionSettings(maxFrameSize: 16 * 1024, initialWindow: 4))
    for _ in 0..<3 { _ = machine.openStream() }
    var buffer = ByteBuffer()
    var offset = bytes.startIndex
    while offset < bytes.endIndex {
        let end = min(bytes.endIndex, offset + chunk)
        buffer.writeBytes(UnsafeBufferPointer(rebasing: bytes[offset..<end]))
        offset = end
        while true {
            switch machine.receive(&buffer) {
            case .needMoreData:
                break
            case .closeWithError:
                return
            case .message(let id, _):
                _ = machine.consumedInbound(1, on: id)
                continue
            case .ready:
                _ = machine.openStream()
                continue
            case .none, .write, .status, .malformedStatus, .creditAvailable, .pingAcknowledged, .goingAway:
                continue
            }
            break
        }
    }
}
