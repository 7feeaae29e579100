import ArgumentParser
import EncoreClient
import EncoreTransport
import Foundation

/// TLS for every command that connects (the tools and `encore bench`; docs/security.md): `--tls`
/// (implied by `--ca-file` and `--cert`) with the server's certificate verified against
/// `--ca-file` (else the system trust store) and the host name, a client certificate
/// `--cert`/`--key` for mTLS, and `--insecure-skip-verify` to skip server verification (test
/// servers only).
struct TLSOptions: ParsableArguments {
    @Flag(help: "Connect with TLS (implied by --ca-file and --cert).") var tls = false

    @Option(
        name: .customLong("ca-file"),
        help: "PEM CA bundle that verifies the server's certificate (default: the system trust store).")
    var caFile: String?

    @Option(help: "PEM client certificate for mTLS (with --key; the server's --client-ca must issue it).")
    var cert: String?

    @Option(help: "PEM private key of --cert.") var key: String?

    @Flag(
        name: .customLong("insecure-skip-verify"),
        help: "With TLS, do not verify the server's certificate or host name (test servers only).")
    var insecureSkipVerify = false

    /// The TLS client context these options ask for (nil: h2c). Files are checked first and
    /// named in errors.
    func context() throws -> TLSContext? {
        for (flag, path) in [("--ca-file", caFile), ("--cert", cert), ("--key", key)] {
            if let path { try Self.checkReadable(path, flag: flag) }
        }
        if (cert == nil) != (key == nil) { throw CLIError("--cert and --key go together") }
        guard tls || caFile != nil || cert != nil || insecureSkipVerify else { return nil }
        do {
            return try TLSContext(
                clientCAFile: caFile, certificateFile: cert, keyFile: key, verify: !insecureSkipVerify)
        } catch let error as TLSError {
            throw CLIError(error.description)
        }
    }

    /// Throws naming `flag` and `path` when the file does not exist, is a directory, or cannot be read.
    static func checkReadable(_ path: String, flag: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw CLIError("\(flag) \(path): no such file")
        }
        if isDirectory.boolValue { throw CLIError("\(flag) \(path): is a directory, not a file") }
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw CLIError("\(flag) \(path): cannot read the file (permission denied)")
        }
    }

    /// Throws naming the flag unless `port` is a TCP port a client can dial.
    static func checkPort(_ port: Int, flag: String = "--port") throws {
        guard (1...65535).contains(port) else { throw CLIError("\(flag) \(port): must be in 1...65535") }
    }
}

/// How a command reaches a server and proves who it is (docs/security.md): `--token-file F` or
/// `ENCORE_TOKEN` (sent as `authorization: Bearer <token>`), and the TLS options above.
struct Credentials: ParsableArguments {
    @Option(
        name: .customLong("token-file"),
        help: "File holding the bearer token (default: the ENCORE_TOKEN environment variable).")
    var tokenFile: String?

    @OptionGroup var tlsOptions: TLSOptions

    /// The TLS client context these options ask for (nil: h2c).
    func tlsContext() throws -> TLSContext? { try tlsOptions.context() }

    /// Connects to `host:port` with these credentials: TLS when asked for, the token as
    /// metadata. The port and files are checked before connecting; every error names the flag,
    /// file or address.
    func client(host: String, port: Int) throws -> GRPCClient {
        try TLSOptions.checkPort(port)
        let metadata = try metadata()
        let context = try tlsContext()
        let client: GRPCClient
        do { client = try GRPCClient(host: host, port: port, tls: context) } catch let error as TransportError {
            throw CLIError(error.description)
        }
        client.metadata = metadata
        return client
    }

    /// The metadata to send: none without a token. Throws naming the file when it cannot be read
    /// or holds no token; the token itself is never printed.
    func metadata() throws -> [(String, String)] {
        var token: String
        if let tokenFile {
            try TLSOptions.checkReadable(tokenFile, flag: "--token-file")
            guard let data = FileManager.default.contents(atPath: tokenFile) else {
                throw CLIError("--token-file \(tokenFile): cannot read the file")
            }
            token = String(decoding: data, as: UTF8.self)
        } else if let value = ProcessInfo.processInfo.environment["ENCORE_TOKEN"] {
            token = value
        } else {
            return []
        }
        token = token.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty, !token.contains(where: { $0.isWhitespace || $0.isNewline }) else {
            throw CLIError(
                "\(tokenFile.map { "--token-file \($0)" } ?? "ENCORE_TOKEN"): expected one token (no spaces or line breaks)"
            )
        }
        return [("authorization", "Bearer \(token)")]
    }
}
