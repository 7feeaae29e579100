import ArgumentParser
import EncoreTransport
import Foundation

/// How a command reaches a server and proves who it is (docs/security.md): `--token-file F` or
/// `ENCORE_TOKEN` (sent as `authorization: Bearer <token>`), and TLS: `--tls` (implied by
/// `--ca-file` and `--cert`) with the server's certificate verified against `--ca-file` (else
/// the system trust store) and the host name, a client certificate `--cert`/`--key` for mTLS,
/// and `--insecure-skip-verify` to skip server verification (test servers only).
struct Credentials: ParsableArguments {
    @Option(
        name: .customLong("token-file"),
        help: "File holding the bearer token (default: the ENCORE_TOKEN environment variable).")
    var tokenFile: String?

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
    func tlsContext() throws -> TLSContext? {
        for (flag, path) in [("--ca-file", caFile), ("--cert", cert), ("--key", key)] {
            if let path, !FileManager.default.isReadableFile(atPath: path) {
                throw CLIError("\(flag) \(path): cannot read the file")
            }
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

    /// Connects to `host:port` with these credentials: TLS when asked for, the token as
    /// metadata. Files are checked before connecting; every error names the file or address.
    func client(host: String, port: Int) throws -> GRPCClient {
        guard (1...65535).contains(port) else { throw CLIError("--port \(port): must be in 1...65535") }
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
