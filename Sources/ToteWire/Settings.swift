/// The limits one side of a connection announces in its SETTINGS frame.
///
/// Each entry on the wire is a `u16` identifier and a `u32` value; unknown identifiers are ignored
/// so that later versions can add settings. A value not sent keeps its default.
public struct ConnectionSettings: Hashable, Sendable {
    /// Setting identifiers on the wire.
    public enum Identifier: UInt16, Sendable, CaseIterable {
        case maxFrameSize = 1
        case maxConcurrentStreams = 2
        case initialWindow = 3
    }

    /// Largest frame payload, in bytes, the sender will accept. Default 4 MiB, at least 16 KiB.
    public var maxFrameSize: UInt32 = 4 * 1024 * 1024
    /// Most calls the sender will run at once on this connection. Default 1024.
    public var maxConcurrentStreams: UInt32 = 1024
    /// Messages the peer may send on a new stream before it needs a WINDOW_UPDATE. Default 64.
    public var initialWindow: UInt32 = 64

    /// The smallest MAX_FRAME_SIZE a peer may announce.
    public static let minimumMaxFrameSize: UInt32 = 16 * 1024

    public init() {}

    public init(maxFrameSize: UInt32 = 4 * 1024 * 1024, maxConcurrentStreams: UInt32 = 1024, initialWindow: UInt32 = 64) {
        self.maxFrameSize = maxFrameSize
        self.maxConcurrentStreams = maxConcurrentStreams
        self.initialWindow = initialWindow
    }
}
