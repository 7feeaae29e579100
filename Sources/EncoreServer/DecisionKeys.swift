import EncoreCrypto
import EncoreLogging
import EncoreStore
import Foundation

/// The decision-id MAC keys a server starts with (docs/security.md), resolved before the data
/// loads: the key of `--decision-key-file` (config `security.decision_key_file`), else the key
/// the `--state-file` keeps, else a new random key, kept in the state file when there is one.
/// Previous keys (config `security.previous_decision_keys` / `previous_decision_key_files`)
/// still verify ids issued before a rotation; Decide only uses the current one.
struct DecisionKeys {
    /// Where the current key came from.
    enum Source: Equatable {
        case keyFile(String)
        case stateFile(String)
        /// Generated at this start and saved in the state file before the first Decide.
        case generatedIntoStateFile(String)
        /// Generated at this start, in memory only.
        case generated
    }

    var current: SipHash24.Key
    var previous: [SipHash24.Key]
    var source: Source
    /// The state file held a key that a key file now replaces (it is dropped at the next save).
    var replacedStateKey = false

    /// The key the state file keeps (nil: the key comes from a key file, never copied there).
    var stateKey: SipHash24.Key? {
        switch source {
        case .keyFile, .generated: nil
        case .stateFile, .generatedIntoStateFile: current
        }
    }

    /// Most previous keys (each is tried for every id that does not verify under the current one).
    static let maxPrevious = 8

    /// Resolves the keys of `options`.
    /// - Throws: `SetupError` naming the file or config key for an unreadable or malformed
    ///   key (never echoing its content), or a damaged state file.
    static func resolve(_ options: EncoreServer.Options) throws -> DecisionKeys {
        var previous = options.previousDecisionKeys
        for path in options.previousDecisionKeyFiles {
            previous.append(try read(path, setting: "security.previous_decision_key_files"))
        }
        guard previous.count <= maxPrevious else {
            throw SetupError(
                "config: 'security.previous_decision_keys' and 'previous_decision_key_files': at most \(maxPrevious) previous keys (drop those whose overlap window has passed)"
            )
        }
        var stateKey: SipHash24.Key? = nil
        if let state = options.stateFile, FileManager.default.fileExists(atPath: state) {
            do { stateKey = try RuleStateFile.decisionKey(at: state) } catch let e as StoreError {
                throw SetupError("--state-file \(state): \(e.message)")
            }
        }
        if let path = options.decisionKeyFile {
            let key = try read(path, setting: "--decision-key-file")
            return DecisionKeys(
                current: key, previous: previous, source: .keyFile(path),
                replacedStateKey: stateKey != nil && stateKey != key)
        }
        if let stateKey, let state = options.stateFile {
            return DecisionKeys(current: stateKey, previous: previous, source: .stateFile(state))
        }
        let source: Source = options.stateFile.map { .generatedIntoStateFile($0) } ?? .generated
        return DecisionKeys(current: .random(), previous: previous, source: source)
    }

    /// Reads a key file: 32 hex digits (e.g. `openssl rand -hex 16 > F`), surrounding whitespace
    /// ignored. Warns when the file is readable by group or others.
    static func read(_ path: String, setting: String) throws -> SipHash24.Key {
        try checkReadable(path, setting)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SetupError("\(setting) \(path): cannot read the file")
        }
        guard let text = String(data: data, encoding: .utf8), let key = SipHash24.Key(hex: text) else {
            throw SetupError(
                "\(setting) \(path): expected 32 hex digits (a 128-bit key, e.g. from `openssl rand -hex 16`), got \(data.count) bytes that are not"
            )
        }
        var info = stat()
        if stat(path, &info) == 0, info.st_mode & 0o077 != 0 {
            Log.warning(
                "\(setting) \(path) is readable by group or others (mode \(String(info.st_mode & 0o777, radix: 8))): whoever reads it can forge decision ids; chmod 600 it"
            )
        }
        return key
    }

    /// The start-up line: where the key came from and what survives a restart.
    var description: String {
        let rotation =
            previous.isEmpty ? "" : "; \(previous.count) previous key\(previous.count == 1 ? "" : "s") still verify"
        switch source {
        case .keyFile(let path):
            return "decision ids: MAC key from \(path)\(rotation)"
                + (replacedStateKey
                    ? " (the key the state file kept is replaced: ids issued under it no longer verify)" : "")
        case .stateFile(let path):
            return "decision ids: MAC key kept in \(path)\(rotation)"
        case .generatedIntoStateFile(let path):
            return "decision ids: new MAC key generated and kept in \(path)\(rotation)"
        case .generated:
            return
                "decision ids: MAC key generated for this process only (no --decision-key-file or --state-file): outcomes for ids issued before a restart will be refused\(rotation)"
        }
    }
}
