/// A gRPC status: a code and a human-readable message.
///
/// Modules map their own errors to a `GRPCStatus` only at the transport edge. The message is
/// percent-encoded on the wire (`grpc-message`) by the transport; callers pass plain text.
public struct GRPCStatus: Sendable, Equatable, CustomStringConvertible {
    /// The gRPC status code (https://grpc.github.io/grpc/core/md_doc_statuscodes.html).
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }

        public static let ok = Code(rawValue: 0)
        public static let cancelled = Code(rawValue: 1)
        public static let unknown = Code(rawValue: 2)
        public static let invalidArgument = Code(rawValue: 3)
        public static let deadlineExceeded = Code(rawValue: 4)
        public static let notFound = Code(rawValue: 5)
        public static let alreadyExists = Code(rawValue: 6)
        public static let permissionDenied = Code(rawValue: 7)
        public static let resourceExhausted = Code(rawValue: 8)
        public static let failedPrecondition = Code(rawValue: 9)
        public static let aborted = Code(rawValue: 10)
        public static let outOfRange = Code(rawValue: 11)
        public static let unimplemented = Code(rawValue: 12)
        public static let `internal` = Code(rawValue: 13)
        public static let unavailable = Code(rawValue: 14)
        public static let dataLoss = Code(rawValue: 15)
        public static let unauthenticated = Code(rawValue: 16)

        public var description: String {
            switch rawValue {
            case 0: "OK"
            case 1: "CANCELLED"
            case 2: "UNKNOWN"
            case 3: "INVALID_ARGUMENT"
            case 4: "DEADLINE_EXCEEDED"
            case 5: "NOT_FOUND"
            case 6: "ALREADY_EXISTS"
            case 7: "PERMISSION_DENIED"
            case 8: "RESOURCE_EXHAUSTED"
            case 9: "FAILED_PRECONDITION"
            case 10: "ABORTED"
            case 11: "OUT_OF_RANGE"
            case 12: "UNIMPLEMENTED"
            case 13: "INTERNAL"
            case 14: "UNAVAILABLE"
            case 15: "DATA_LOSS"
            case 16: "UNAUTHENTICATED"
            default: "CODE_\(rawValue)"
            }
        }
    }

    public var code: Code
    /// Plain-text message (UTF-8). Empty means no `grpc-message` trailer.
    public var message: StaticOrDynamicMessage

    public init(_ code: Code, _ message: String = "") {
        self.code = code
        self.message = .dynamic(message)
    }

    /// A status whose message is a static string: building it allocates nothing, so hot-path
    /// handlers can return errors without allocating.
    public init(_ code: Code, static message: StaticString) {
        self.code = code
        self.message = .static(message)
    }

    public static let ok = GRPCStatus(.ok, static: "")

    public var isOK: Bool { code == .ok }

    public var description: String {
        let text = message.string
        return text.isEmpty ? code.description : "\(code): \(text)"
    }

    public static func == (lhs: GRPCStatus, rhs: GRPCStatus) -> Bool {
        lhs.code == rhs.code && lhs.message.string == rhs.message.string
    }
}

/// A status message that is either a compile-time constant (no allocation) or a `String`.
public enum StaticOrDynamicMessage: Sendable {
    case `static`(StaticString)
    case dynamic(String)

    public var string: String {
        switch self {
        case .static(let s): s.description
        case .dynamic(let s): s
        }
    }

    /// Calls `body` with the message's UTF-8 bytes without copying a static message.
    public func withUTF8<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        switch self {
        case .static(let s):
            return body(UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
        case .dynamic(var s):
            return s.withUTF8 { body(UnsafeRawBufferPointer($0)) }
        }
    }
}

extension GRPCStatus {
    /// Percent-encodes `message` per the gRPC HTTP/2 spec: bytes outside 0x20...0x7E and `%`
    /// become `%XX`. Appends to `out` (whose capacity is reused by callers).
    public static func percentEncode(_ message: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        let hex: StaticString = "0123456789ABCDEF"
        let digits = hex.utf8Start
        for byte in message {
            if byte >= 0x20 && byte <= 0x7E && byte != UInt8(ascii: "%") {
                out.append(byte)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(digits[Int(byte >> 4)])
                out.append(digits[Int(byte & 0x0F)])
            }
        }
    }
}
