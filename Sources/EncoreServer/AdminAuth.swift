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

/// Bearer-token authentication and role checks for the admin plane. With no token configured it
/// is off (every call allowed; the admin plane then listens on loopback only, see
/// `EncoreServer.checkAdminExposure`). Tokens are compared by their SHA-256, in constant time
/// over every configured token; a token is never logged or echoed, only its name.
public final class AdminAuthorizer: Sendable {
    public let tokens: [AdminToken]

    /// `GRPCCallContext.principal` of a call without an `authorization` header.
    public static let anonymous: Int32 = GRPCCallContext.anonymous
    /// `GRPCCallContext.principal` of a call whose `authorization` header names no valid token.
    public static let invalid: Int32 = -2

    /// The role each admin method needs (Health needs none). Activate with `force` also needs
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

    public init(tokens: [AdminToken]) {
        self.tokens = tokens
    }

    /// True when tokens are configured (calls must carry one).
    public var enabled: Bool { !tokens.isEmpty }

    /// The principal for an `authorization` header value: the index of the matching token, or
    /// `invalid` (not `Bearer <token>`, or no token matches). Runs on the admin reactor thread.
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
        var found = Self.invalid
        for (index, token) in tokens.enumerated() {
            // No early exit: every byte of every token is compared.
            var difference: UInt8 = 0
            for j in 0..<32 { difference |= digest[j] ^ token.sha256[j] }
            if difference == 0 { found = Int32(index) }
        }
        return found
    }

    /// The token name of a call's principal, for audit and logs ("anonymous" without one).
    public func name(of principal: Int32) -> String {
        principal >= 0 && Int(principal) < tokens.count ? tokens[Int(principal)].name : "anonymous"
    }

    /// nil when the call may run `method` (e.g. "encore.v1.Models/Activate") with `role`;
    /// otherwise UNAUTHENTICATED (no or an invalid token) or PERMISSION_DENIED (a valid token
    /// without the role), with a message naming the method and the role.
    public func check(_ context: GRPCCallContext, _ role: AdminRole, method: String) -> GRPCStatus? {
        guard enabled else { return nil }
        let principal = context.principal
        if principal == Self.anonymous {
            countFailure(.missingToken)
            return GRPCStatus(
                .unauthenticated,
                "\(method) requires a bearer token with role '\(role.rawValue)': send the metadata 'authorization: Bearer <token>'"
            )
        }
        guard principal >= 0, Int(principal) < tokens.count else {
            countFailure(.invalidToken)
            return GRPCStatus(
                .unauthenticated,
                "\(method): the bearer token is not valid (unknown or revoked); role '\(role.rawValue)' is required")
        }
        let token = tokens[Int(principal)]
        if token.roles.contains(role) { return nil }
        countFailure(.missingRole)
        return GRPCStatus(
            .permissionDenied,
            "\(method) requires role '\(role.rawValue)', which token '\(token.name)' does not have (it has: \(token.roles.sorted().map(\.rawValue).joined(separator: ", ")))"
        )
    }

    /// Wraps every route of `router` that `methodRoles` names with its role check.
    public func guarding(_ router: GRPCRouter) -> GRPCRouter {
        guard enabled else { return router }
        return router.guarded { path in
            guard let role = AdminAuthorizer.methodRoles[path] else { return nil }
            let method = String(path.dropFirst())
            return { [self] context in self.check(context, role, method: method) }
        }
    }
}

extension GRPCRequestHead {
    /// ASCII lower case of one byte.
    static func asciiLowercased(_ c: UInt8) -> UInt8 {
        c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z") ? c | 0x20 : c
    }
}
