import EncoreCrypto
import EncoreTransport
import Synchronization

/// What a caller of the admin plane may do (docs/security.md). `decide` and `report` are for the
/// data plane's optional authentication and are accepted in the config already.
public enum AdminRole: String, CaseIterable, Sendable, Comparable {
    case decide
    case report
    case modelsPush = "models.push"
    case modelsActivate = "models.activate"
    case modelsForce = "models.force"
    case catalogWrite = "catalog.write"
    case customersWrite = "customers.write"
    case read

    public static func < (a: AdminRole, b: AdminRole) -> Bool { a.rawValue < b.rawValue }
}

/// One bearer token of the config (`admin.tokens`): its SHA-256 (never the token), a name for
/// logs and messages, and its roles.
public struct AdminToken: Sendable, Equatable {
    public var name: String
    /// SHA-256 of the token's UTF-8 bytes (32 bytes).
    public var sha256: [UInt8]
    public var roles: Set<AdminRole>

    public init(name: String, sha256: [UInt8], roles: Set<AdminRole>) {
        self.name = name
        self.sha256 = sha256
        self.roles = roles
    }
}

/// One mTLS client of the config (`admin.clients`): a certificate name that must match the
/// client certificate's common name or one of its subject alternative names, written as
/// `CN=<name>`, `DNS:<name>` or `URI:<uri>`; a name for logs and its roles.
public struct AdminClient: Sendable, Equatable {
    public var name: String
    public var subject: String
    public var roles: Set<AdminRole>

    public init(name: String, subject: String, roles: Set<AdminRole>) {
        self.name = name
        self.subject = subject
        self.roles = roles
    }
}

/// Authentication and role checks, for the admin plane and (when `admin.data_plane_auth` is on)
/// the data plane. Credentials are bearer tokens (`admin.tokens`, compared by SHA-256 in
/// constant time over every configured token; a token is never logged, only its name) and
/// verified client certificates (`admin.clients`, mTLS with `--client-ca`). With none
/// configured, admin authentication is off (every call allowed; the admin plane then listens
/// on loopback only, see `EncoreServer.checkAdminExposure`).
///
/// The credential set can be replaced at run time (`reload`, on SIGHUP) and is swapped
/// atomically. A principal (`GRPCCallContext.principal`) packs the index of the matching
/// credential (bits 0-15), whether it holds `decide` (bit 16) and `report` (bit 17), and the
/// low 12 bits of the generation it was verified under (bits 18-29): the data plane checks a
/// call with bit tests and one atomic load, no lock, and a principal verified before a reload
/// is refused rather than mapped to whichever credential now has its index.
public final class AdminAuthorizer: GRPCCredentials {
    /// The credentials in force, replaced whole by `reload`.
    public struct Credentials: Sendable, Equatable {
        public var tokens: [AdminToken]
        public var clients: [AdminClient]

        public init(tokens: [AdminToken] = [], clients: [AdminClient] = []) {
            self.tokens = tokens
            self.clients = clients
        }

        public var isEmpty: Bool { tokens.isEmpty && clients.isEmpty }
        var count: Int { tokens.count + clients.count }

        func entry(_ index: Int) -> (name: String, roles: Set<AdminRole>, kind: String)? {
            if index < tokens.count { return (tokens[index].name, tokens[index].roles, "token") }
            let j = index - tokens.count
            return j < clients.count ? (clients[j].name, clients[j].roles, "client certificate") : nil
        }

        /// Names for the start-up log line: tokens and certificate clients.
        public var summary: String {
            var parts: [String] = []
            if !tokens.isEmpty {
                parts.append("bearer tokens required (\(tokens.map(\.name).sorted().joined(separator: ", ")))")
            }
            if !clients.isEmpty {
                parts.append("client certificates accepted (\(clients.map(\.name).sorted().joined(separator: ", ")))")
            }
            return parts.joined(separator: "; ")
        }
    }

    private let state: Mutex<Credentials>
    private let generationCounter = Atomic<UInt64>(1)
    /// Whether Decide and ReportOutcome need credentials with `decide` / `report`.
    public let dataPlaneAuth: Bool

    /// `GRPCCallContext.principal` of a call without credentials.
    public static let anonymous: Int32 = GRPCCallContext.anonymous
    /// `GRPCCallContext.principal` of a call whose `authorization` header names no valid token.
    public static let invalid: Int32 = -2
    /// At most this many tokens and clients together (the principal's index has 16 bits).
    public static let maxCredentials = 1 << 16

    static let decideBit: Int32 = 1 << 16
    static let reportBit: Int32 = 1 << 17
    static let generationShift: Int32 = 18
    static let generationMask: UInt64 = 0xFFF

    /// The role each admin method needs (Health needs none; reflection on the admin plane needs
    /// `read`, on the data plane nothing). Activate with `force` also needs
    /// `models.force`, a push that activates also `models.activate` (checked by ModelsService).
    public static let methodRoles: [String: AdminRole] = [
        "/encore.v1.Models/PushSnapshot": .modelsPush,
        "/encore.v1.Models/Activate": .modelsActivate,
        "/encore.v1.Models/Rollback": .modelsActivate,
        "/encore.v1.Models/List": .read,
        "/encore.v1.Models/GetSnapshot": .read,
        "/encore.v1.Catalog/UpsertOffers": .catalogWrite,
        "/encore.v1.Customers/UpsertCustomers": .customersWrite,
        "/encore.v1.Diagnostics/Echo": .read,
        "/encore.v1.Diagnostics/Collect": .read,
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": .read,
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": .read,
    ]

    /// Refused admin calls by reason (`encore_admin_auth_failures_total`): no token, a token that
    /// matches none, a valid token without the role. Written by admin calls on any thread.
    public enum FailureReason: Int, CaseIterable, Sendable {
        case missingToken, invalidToken, missingRole
        public var label: String {
            switch self {
            case .missingToken: "missing_token"
            case .invalidToken: "invalid_token"
            case .missingRole: "missing_role"
            }
        }
    }
    private let failureCounts = FailureCounts()

    final class FailureCounts: Sendable {
        let missingToken = Atomic<UInt64>(0)
        let invalidToken = Atomic<UInt64>(0)
        let missingRole = Atomic<UInt64>(0)
    }

    /// Counts a refusal (also used by the admin HTTP endpoints).
    func countFailure(_ reason: FailureReason) {
        switch reason {
        case .missingToken: failureCounts.missingToken.add(1, ordering: .relaxed)
        case .invalidToken: failureCounts.invalidToken.add(1, ordering: .relaxed)
        case .missingRole: failureCounts.missingRole.add(1, ordering: .relaxed)
        }
    }

    /// Refusals so far by reason.
    public func failureCount(_ reason: FailureReason) -> UInt64 {
        switch reason {
        case .missingToken: failureCounts.missingToken.load(ordering: .relaxed)
        case .invalidToken: failureCounts.invalidToken.load(ordering: .relaxed)
        case .missingRole: failureCounts.missingRole.load(ordering: .relaxed)
        }
    }

    /// The roles of the data plane's methods when `dataPlaneAuth` is on.
    public static let dataPlaneRoles: [String: AdminRole] = [
        "/encore.v1.Decisions/Decide": .decide,
        "/encore.v1.Decisions/ReportOutcome": .report,
    ]

    public init(tokens: [AdminToken], clients: [AdminClient] = [], dataPlaneAuth: Bool = false) {
        state = Mutex(Credentials(tokens: tokens, clients: clients))
        self.dataPlaneAuth = dataPlaneAuth
    }

    /// The credentials in force.
    public var credentials: Credentials { state.withLock { $0 } }
    /// The configured tokens (for logs and tests).
    public var tokens: [AdminToken] { credentials.tokens }

    /// True when credentials are configured (admin calls must carry them).
    public var enabled: Bool { !credentials.isEmpty }

    public var generation: UInt64 { generationCounter.load(ordering: .acquiring) }

    /// Replaces the credentials (SIGHUP). A reload that would remove every credential while
    /// some are configured is refused: it would turn authentication off on a running server.
    /// - Throws: `SetupError` saying why; the old credentials stay in force.
    public func reload(_ next: Credentials) throws {
        try state.withLock { current in
            if next.isEmpty && !current.isEmpty {
                throw SetupError(
                    "the new configuration has no admin.tokens or admin.clients: a reload cannot turn authentication off (restart to do that)"
                )
            }
            if next.count > AdminAuthorizer.maxCredentials {
                throw SetupError("at most \(AdminAuthorizer.maxCredentials) tokens and clients")
            }
            current = next
            generationCounter.add(1, ordering: .releasing)
        }
    }

    private func pack(_ index: Int, _ roles: Set<AdminRole>, generation: UInt64) -> Int32 {
        var p = Int32(index)
        if roles.contains(.decide) { p |= AdminAuthorizer.decideBit }
        if roles.contains(.report) { p |= AdminAuthorizer.reportBit }
        return p | Int32(generation & AdminAuthorizer.generationMask) << AdminAuthorizer.generationShift
    }

    /// The index of a principal made under the current generation, or nil (anonymous,
    /// invalid, or verified before a reload).
    private func index(of principal: Int32, generation: UInt64) -> Int? {
        guard principal >= 0 else { return nil }
        let g = UInt64(principal >> AdminAuthorizer.generationShift) & AdminAuthorizer.generationMask
        guard g == generation & AdminAuthorizer.generationMask else { return nil }
        return Int(principal & 0xFFFF)
    }

    /// The principal for an `authorization` header value: the matching token, or `invalid`
    /// (not `Bearer <token>`, or no token matches). Runs on a reactor thread, once per distinct
    /// value per connection (the transport caches the answer).
    public func principal(authorization value: UnsafeRawBufferPointer) -> Int32 {
        let scheme: [UInt8] = Array("bearer ".utf8)
        guard value.count > scheme.count else { return Self.invalid }
        for i in 0..<scheme.count where GRPCRequestHead.asciiLowercased(value[i]) != scheme[i] {
            return Self.invalid
        }
        var start = scheme.count
        while start < value.count && value[start] == UInt8(ascii: " ") { start += 1 }
        guard start < value.count else { return Self.invalid }
        let digest = SHA256.digest(UnsafeRawBufferPointer(rebasing: value[start...]))
        return state.withLock { credentials in
            var found = Self.invalid
            for (index, token) in credentials.tokens.enumerated() {
                // No early exit: every byte of every token is compared.
                var difference: UInt8 = 0
                for j in 0..<32 { difference |= digest[j] ^ token.sha256[j] }
                if difference == 0 { found = pack(index, token.roles, generation: generation) }
            }
            return found
        }
    }

    /// The principal of a verified client certificate: the first configured client whose
    /// subject is one of the certificate's names, else anonymous.
    public func principal(certificateNames names: [String]) -> Int32 {
        state.withLock { credentials in
            for (j, client) in credentials.clients.enumerated() where names.contains(client.subject) {
                return pack(credentials.tokens.count + j, client.roles, generation: generation)
            }
            return Self.anonymous
        }
    }

    /// The credential name of a call's principal, for audit and logs ("anonymous" without one).
    public func name(of principal: Int32) -> String {
        if principal == Self.invalid { return "invalid-token" }
        let generation = self.generation
        return state.withLock { credentials in
            guard let i = index(of: principal, generation: generation), let entry = credentials.entry(i) else {
                return principal >= 0 ? "stale-credentials" : "anonymous"
            }
            return entry.name
        }
    }

    /// nil when the call may run `method` (e.g. "encore.v1.Models/Activate") with `role`;
    /// otherwise UNAUTHENTICATED (no or an invalid token) or PERMISSION_DENIED (valid
    /// credentials without the role), with a message naming the method and the role.
    public func check(_ context: GRPCCallContext, _ role: AdminRole, method: String) -> GRPCStatus? {
        let generation = self.generation
        return state.withLock { credentials in
            guard !credentials.isEmpty else { return nil }
            return verdict(
                context.principal, role, method: method, credentials: credentials,
                index: index(of: context.principal, generation: generation))
        }
    }

    private func verdict(
        _ principal: Int32, _ role: AdminRole, method: String, credentials: Credentials, index: Int?
    ) -> GRPCStatus? {
        if principal == Self.anonymous {
            countFailure(.missingToken)
            return GRPCStatus(
                .unauthenticated,
                "\(method) requires credentials with role '\(role.rawValue)': send the metadata 'authorization: Bearer <token>' (or a client certificate)"
            )
        }
        guard let index, let entry = credentials.entry(index) else {
            countFailure(.invalidToken)
            if principal >= 0 {
                return GRPCStatus(
                    .unauthenticated,
                    "\(method): the credentials were reloaded while the call was being verified; retry")
            }
            return GRPCStatus(
                .unauthenticated,
                "\(method): the bearer token is not valid (unknown or revoked); role '\(role.rawValue)' is required")
        }
        if entry.roles.contains(role) { return nil }
        countFailure(.missingRole)
        return GRPCStatus(
            .permissionDenied,
            "\(method) requires role '\(role.rawValue)', which \(entry.kind) '\(entry.name)' does not have (it has: \(entry.roles.sorted().map(\.rawValue).joined(separator: ", ")))"
        )
    }

    /// The data plane's check for `role` (`decide` or `report`): bit tests and one atomic load
    /// when the call is allowed; the refusal's message is built under the lock.
    @inline(__always)
    func checkDataPlane(_ context: GRPCCallContext, _ bit: Int32, _ role: AdminRole, method: String) -> GRPCStatus? {
        let p = context.principal
        if p >= 0 && p & bit != 0
            && UInt64(p >> AdminAuthorizer.generationShift) & AdminAuthorizer.generationMask == generation
                & AdminAuthorizer.generationMask
        {
            return nil
        }
        let generation = self.generation
        return state.withLock { credentials in
            verdict(
                p, role, method: method, credentials: credentials, index: index(of: p, generation: generation))
                ?? GRPCStatus(.permissionDenied, "\(method) requires role '\(role.rawValue)'")
        }
    }

    /// Wraps every route of `router` that `methodRoles` names with its role check.
    public func guarding(_ router: GRPCRouter) -> GRPCRouter {
        router.guarded { path in
            guard let role = AdminAuthorizer.methodRoles[path] else { return nil }
            let method = String(path.dropFirst())
            return { [self] context in self.check(context, role, method: method) }
        }
    }

    /// With `dataPlaneAuth`, wraps Decide and ReportOutcome with their `decide` / `report` checks.
    public func guardingDataPlane(_ router: GRPCRouter) -> GRPCRouter {
        guard dataPlaneAuth else { return router }
        return router.guarded { path in
            guard let role = AdminAuthorizer.dataPlaneRoles[path] else { return nil }
            let method = String(path.dropFirst())
            let bit = role == .decide ? AdminAuthorizer.decideBit : AdminAuthorizer.reportBit
            return { [self] context in self.checkDataPlane(context, bit, role, method: method) }
        }
    }
}

extension GRPCRequestHead {
    /// ASCII lower case of one byte.
    static func asciiLowercased(_ c: UInt8) -> UInt8 {
        c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z") ? c | 0x20 : c
    }
}
