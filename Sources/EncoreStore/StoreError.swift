/// The one error type of EncoreStore: a code plus a message that names the file, the line and
/// the field (or column) at fault, so an operator can fix the input without reading code.
public struct StoreError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What went wrong, coarsely; extensible like `RPCError.Code` in grpc-swift.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }

        /// The file could not be opened, read or mapped.
        public static let io = Code("io")
        /// A line is not valid JSON or CSV (syntax).
        public static let malformed = Code("malformed")
        /// A field is present but its value is wrong (type, range, unknown name, NaN, ...).
        public static let invalidField = Code("invalid_field")
        /// A required field is missing or empty.
        public static let missingField = Code("missing_field")
        /// An id appears twice where ids must be unique.
        public static let duplicateID = Code("duplicate_id")
        /// A fixed limit was exceeded (64 segments, 256-byte offer ids, ...).
        public static let limitExceeded = Code("limit_exceeded")
        /// A bounded structure (the customer overlay) is full; maps to RESOURCE_EXHAUSTED.
        public static let resourceExhausted = Code("resource_exhausted")

        public var description: String { name }
    }

    /// The kind of failure.
    public var code: Code
    /// A complete, human-readable message (it already includes file and line where known).
    public var message: String
    /// The file at fault, if the error came from a file.
    public var file: String?
    /// The 1-based line at fault, if known.
    public var line: Int?

    /// Creates an error; `message` is prefixed with `file:line: ` when those are given.
    public init(_ code: Code, _ message: String, file: String? = nil, line: Int? = nil) {
        self.code = code
        self.file = file
        self.line = line
        switch (file, line) {
        case (let f?, let l?): self.message = "\(f):\(l): \(message)"
        case (let f?, nil): self.message = "\(f): \(message)"
        case (nil, let l?): self.message = "line \(l): \(message)"
        case (nil, nil): self.message = message
        }
    }

    public var description: String { "\(code): \(message)" }
}
