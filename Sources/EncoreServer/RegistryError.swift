import EncoreTransport

/// Why `ModelRegistry` refused an admin operation. The registry knows nothing of gRPC; the admin
/// services map this to a status at their edge (`status`).
public struct RegistryError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What went wrong, coarsely; extensible like `RPCError.Code` in grpc-swift.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }

        /// The named snapshot is not loaded (or none is active); NOT_FOUND.
        public static let notFound = Code("not_found")
        /// A record of the request is malformed or breaks a store rule; INVALID_ARGUMENT.
        public static let invalidArgument = Code("invalid_argument")
        /// The request is well formed but the server's state refuses it (a snapshot that fails
        /// validation or cannot serve the running catalog and store, the offline gate, nothing to
        /// roll back to); FAILED_PRECONDITION.
        public static let failedPrecondition = Code("failed_precondition")
        /// A bounded structure (the customer overlay) is full; RESOURCE_EXHAUSTED.
        public static let resourceExhausted = Code("resource_exhausted")
        /// The server could not do what it should be able to (encode a loaded snapshot); INTERNAL.
        public static let internalError = Code("internal")

        public var description: String { name }
    }

    /// The kind of refusal.
    public var code: Code
    /// A complete message for the operator (it names the version, record or field at fault).
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }

    /// The gRPC status an admin service answers with.
    public var status: GRPCStatus {
        let grpc: GRPCStatus.Code =
            switch code {
            case .notFound: .notFound
            case .invalidArgument: .invalidArgument
            case .resourceExhausted: .resourceExhausted
            case .internalError: .internal
            default: .failedPrecondition
            }
        return GRPCStatus(grpc, message)
    }
}

/// Runs a registry operation at a service's edge, turning its refusal into a gRPC status.
func registryCall<T>(_ body: () throws(RegistryError) -> T) throws(GRPCStatus) -> T {
    do {
        return try body()
    } catch {
        throw error.status
    }
}
