import ToteWire

/// An error that knows its wire status. Domain errors conform to this so that the mapping from a
/// domain failure to a status code lives next to the error, and is applied in one place.
public protocol RPCErrorConvertible: Error {
    var rpcError: RPCError { get }
}

extension RPCError {
    /// The status a call ends with when its handler throws `error`.
    ///
    /// This is the one place where arbitrary errors become wire statuses: RPC errors pass through,
    /// convertible errors convert, cancellation is CANCELLED, and anything else is INTERNAL with a
    /// generic message (the details are logged, never sent: they may hold secrets).
    public static func from(_ error: any Error) -> RPCError {
        switch error {
        case let error as RPCError: error
        case let error as any RPCErrorConvertible: error.rpcError
        case is CancellationError: RPCError(.cancelled, "the call was cancelled")
        default: RPCError(.internal, "internal error")
        }
    }
}
