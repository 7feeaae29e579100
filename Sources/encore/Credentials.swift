import ArgumentParser
import Foundation

/// `--token-file F` or `ENCORE_TOKEN`: the bearer token a command sends as
/// `authorization: Bearer <token>` (the admin plane's `admin.tokens`, docs/security.md).
struct Credentials: ParsableArguments {
    @Option(
        name: .customLong("token-file"),
        help: "File holding the bearer token (default: the ENCORE_TOKEN environment variable).")
    var tokenFile: String?

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
