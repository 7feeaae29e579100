import EncoreCrypto
import Testing

@testable import EncoreServer
@testable import EncoreTransport

@Suite struct AdminAuthorizerTests {
    static let tokens = [
        AdminToken(name: "reader", sha256: SHA256.digest(Array("r-secret".utf8)), roles: [.read]),
        AdminToken(
            name: "scientist", sha256: SHA256.digest(Array("s-secret".utf8)), roles: [.modelsPush, .modelsActivate]),
    ]
    let auth = AdminAuthorizer(tokens: AdminAuthorizerTests.tokens)

    func principal(_ header: String) -> Int32 {
        Array(header.utf8).withUnsafeBytes { auth.principal(authorization: $0) }
    }

    func context(_ principal: Int32) -> GRPCCallContext {
        GRPCCallContext(reactorIndex: 0, deadlineNanos: nil, principal: principal)
    }

    @Test func matchesBearerTokensByHash() {
        #expect(principal("Bearer r-secret") >= 0 && principal("Bearer r-secret") & 0xFFFF == 0)
        #expect(principal("bearer  s-secret") >= 0 && principal("bearer  s-secret") & 0xFFFF == 1)
        #expect(auth.name(of: principal("Bearer s-secret")) == "scientist")
        #expect(principal("Bearer s-secretx") == AdminAuthorizer.invalid)
        #expect(principal("Basic r-secret") == AdminAuthorizer.invalid)
        #expect(principal("Bearer ") == AdminAuthorizer.invalid)
        #expect(principal("") == AdminAuthorizer.invalid)
    }

    @Test func missingOrInvalidTokenIsUnauthenticated() {
        let missing = auth.check(context(AdminAuthorizer.anonymous), .read, method: "encore.v1.Models/List")
        #expect(missing?.code == .unauthenticated)
        #expect(missing?.description.contains("encore.v1.Models/List") == true)
        #expect(missing?.description.contains("'read'") == true)
        #expect(auth.check(context(AdminAuthorizer.invalid), .read, method: "m")?.code == .unauthenticated)
    }

    @Test func validTokenWithoutRoleIsPermissionDenied() {
        let reader = principal("Bearer r-secret")
        let denied = auth.check(context(reader), .modelsPush, method: "encore.v1.Models/PushSnapshot")
        #expect(denied?.code == .permissionDenied)
        #expect(denied?.description.contains("'models.push'") == true)
        #expect(denied?.description.contains("'reader'") == true)
        #expect(auth.check(context(principal("Bearer s-secret")), .modelsPush, method: "m") == nil)
    }

    @Test func offWithoutTokens() {
        let open = AdminAuthorizer(tokens: [])
        #expect(!open.enabled)
        #expect(open.check(context(AdminAuthorizer.anonymous), .modelsForce, method: "m") == nil)
    }

    @Test func guardedRouteChecksTheRoleBeforeTheHandler() {
        var router = GRPCRouter()
        router.register("/encore.v1.Models/List", .inline { _, _, _ in .ok })
        router.register("/grpc.health.v1.Health/Check", .inline { _, _, _ in .ok })
        let guarded = auth.guarding(router)
        func call(_ index: Int, _ principal: Int32) -> GRPCStatus.Code? {
            guard case .inline(let handler) = guarded.handler(at: index) else { return nil }
            var response = GRPCResponseBuffer()
            return [UInt8]().withUnsafeBytes { handler($0, &response, context(principal)).code }
        }
        #expect(call(0, AdminAuthorizer.anonymous) == .unauthenticated)
        #expect(call(0, principal("Bearer s-secret")) == .permissionDenied)
        #expect(call(0, principal("Bearer r-secret")) == .ok)
        #expect(call(1, AdminAuthorizer.anonymous) == .ok)  // Health needs no token
    }

    @Test func configParsesTokensAndNamesBadKeys() throws {
        let hex = SHA256.hex(SHA256.digest(Array("r-secret".utf8)))
        let config = try settings(
            #"{"admin": {"tokens": [{"name": "reader", "sha256": "\#(hex)", "roles": ["read"]}]}}"#)
        #expect(config.adminTokens == [AdminAuthorizerTests.tokens[0]])
        #expect(throws: SettingError.self) {
            try settings(#"{"admin": {"tokens": [{"name": "a", "sha256": "00", "roles": ["read"]}]}}"#)
        }
        do {
            _ = try settings(#"{"admin": {"tokens": [{"name": "a", "sha256": "\#(hex)", "roles": ["root"]}]}}"#)
            Issue.record("an unknown role was accepted")
        } catch let error as SettingError {
            #expect(error.description.contains("admin.tokens[0].roles"))
        }
    }

    @Test func reloadRevokesAndStalesEarlierPrincipals() throws {
        let auth = AdminAuthorizer(tokens: AdminAuthorizerTests.tokens)
        func p(_ header: String) -> Int32 { Array(header.utf8).withUnsafeBytes { auth.principal(authorization: $0) } }
        let before = p("Bearer s-secret")
        #expect(auth.check(context(before), .modelsPush, method: "m") == nil)
        // Reload without the scientist's token: it no longer verifies, and a principal verified
        // before the reload is refused rather than mapped to whichever token has its index now.
        try auth.reload(.init(tokens: [AdminAuthorizerTests.tokens[0]]))
        #expect(p("Bearer s-secret") == AdminAuthorizer.invalid)
        let stale = auth.check(context(before), .modelsPush, method: "m")
        #expect(stale?.code == .unauthenticated)
        #expect(stale?.description.contains("reloaded") == true)
        #expect(auth.check(context(p("Bearer r-secret")), .read, method: "m") == nil)
        // A reload that would remove every credential is refused and changes nothing.
        #expect(throws: SetupError.self) { try auth.reload(.init()) }
        #expect(auth.check(context(p("Bearer r-secret")), .read, method: "m") == nil)
    }

    @Test func certificateClientsMapByName() {
        let auth = AdminAuthorizer(
            tokens: [], clients: [AdminClient(name: "deployer", subject: "DNS:deploy.example", roles: [.modelsPush])])
        let p = auth.principal(certificateNames: ["CN=someone", "DNS:deploy.example"])
        #expect(auth.name(of: p) == "deployer")
        #expect(auth.check(context(p), .modelsPush, method: "m") == nil)
        #expect(auth.check(context(p), .catalogWrite, method: "m")?.code == .permissionDenied)
        #expect(auth.principal(certificateNames: ["CN=deploy.example"]) == AdminAuthorizer.anonymous)
    }

    @Test func dataPlaneChecksRoleBits() {
        let tokens = [
            AdminToken(name: "frontend", sha256: SHA256.digest(Array("f".utf8)), roles: [.decide, .report]),
            AdminToken(name: "reader", sha256: SHA256.digest(Array("r".utf8)), roles: [.read]),
        ]
        let auth = AdminAuthorizer(tokens: tokens, dataPlaneAuth: true)
        func p(_ header: String) -> Int32 { Array(header.utf8).withUnsafeBytes { auth.principal(authorization: $0) } }
        let decide = AdminAuthorizer.decideBit
        #expect(auth.checkDataPlane(context(p("Bearer f")), decide, .decide, method: "Decide") == nil)
        let denied = auth.checkDataPlane(context(p("Bearer r")), decide, .decide, method: "Decide")
        #expect(denied?.code == .permissionDenied)
        #expect(denied?.description.contains("'reader'") == true)
        #expect(
            auth.checkDataPlane(context(AdminAuthorizer.anonymous), decide, .decide, method: "Decide")?.code
                == .unauthenticated)
        #expect(
            auth.checkDataPlane(context(p("Bearer x")), decide, .decide, method: "Decide")?.code == .unauthenticated)
    }

    @Test func configParsesClients() throws {
        let config = try settings(
            #"{"admin": {"client_ca": "ca.pem", "data_plane_auth": true, "clients": [{"name": "d", "subject": "CN=deployer", "roles": ["models.push"]}]}}"#
        )
        #expect(config.adminClients == [AdminClient(name: "d", subject: "CN=deployer", roles: [.modelsPush])])
        #expect(config.clientCAFile == "ca.pem")
        #expect(config.dataPlaneAuth == true)
        #expect(throws: SettingError.self) {
            try settings(#"{"admin": {"clients": [{"name": "d", "subject": "deployer", "roles": ["read"]}]}}"#)
        }
    }
}

/// The options a config file alone gives (no resolution rules between settings).
func settings(_ json: String) throws -> EncoreServer.Options {
    var options = EncoreServer.Options()
    try ServeSettings.Layer.file(json: json, source: "t").apply(to: &options)
    return options
}
