/// A server setting, file or state that cannot be used (an unreadable key file, a damaged
/// state file, a missing snapshot directory): its description names the flag or file and says
/// why, and `encore serve` prints it as its one error line. Transport failures (sockets, TLS)
/// are `EncoreTransport.TransportError`; this keeps the server's own files out of them.
public struct SetupError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
