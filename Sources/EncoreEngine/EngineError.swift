/// Why a decision request was refused. Static messages: building one allocates nothing.
/// Mapped to gRPC status at the transport edge (`.invalidArgument` → INVALID_ARGUMENT).
public struct EngineError: Error, Sendable, Equatable {
    public enum Code: Sendable, Equatable {
        case invalidArgument
        case unavailable
    }

    public var code: Code
    /// Names the offending field, e.g. "slots: must be 0, 1 or 2".
    public var message: StaticString

    public init(_ code: Code, _ message: StaticString) {
        self.code = code
        self.message = message
    }

    public static func == (lhs: EngineError, rhs: EngineError) -> Bool {
        lhs.code == rhs.code && lhs.message.description == rhs.message.description
    }
}
