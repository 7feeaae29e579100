/// Errors of the model layer (snapshots, schemas, policies), with a message naming the problem.
public struct ModelError: Error, CustomStringConvertible, Sendable, Equatable {
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        /// The file is not a valid snapshot (magic, version, bounds, checksum, NaN, ...).
        public static let invalidSnapshot = Code(rawValue: "invalid_snapshot")
        /// The snapshot's signature is missing or does not verify against a trusted key.
        public static let untrusted = Code(rawValue: "untrusted_snapshot")
        /// The snapshot's feature schema cannot be served by the running feature store.
        public static let schemaMismatch = Code(rawValue: "schema_mismatch")
        /// The export or input given to a builder is malformed.
        public static let invalidExport = Code(rawValue: "invalid_export")
        /// A file could not be read or written.
        public static let io = Code(rawValue: "io")
        public var description: String { rawValue }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
