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
        #expect(principal("Bearer r-secret") == 0)
        #expect(principal("bearer  s-secret") == 1)
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
        let denied = auth.check(context(0), .modelsPush, method: "encore.v1.Models/PushSnapshot")
        #expect(denied?.code == .permissionDenied)
        #expect(denied?.description.contains("'models.push'") == true)
        #expect(denied?.description.contains("'reader'") == true)
        #expect(auth.check(context(1), .modelsPush, method: "m") == nil)
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
        #expect(call(0, 1) == .permissionDenied)
        #expect(call(0, 0) == .ok)
        #expect(call(1, AdminAuthorizer.anonymous) == .ok)  // Health needs no token
    }

    @Test func configParsesTokensAndNamesBadKeys() throws {
        let hex = SHA256.hex(SHA256.digest(Array("r-secret".utf8)))
        let config = try ServeConfig(
            json: #"{"admin": {"tokens": [{"name": "reader", "sha256": "\#(hex)", "roles": ["read"]}]}}"#,
            source: "t")
        #expect(config.adminTokens == [AdminAuthorizerTests.tokens[0]])
        #expect(throws: TransportError.self) {
            try ServeConfig(
                json: #"{"admin": {"tokens": [{"name": "a", "sha256": "00", "roles": ["read"]}]}}"#, source: "t")
        }
        do {
            _ = try ServeConfig(
                json: #"{"admin": {"tokens": [{"name": "a", "sha256": "\#(hex)", "roles": ["root"]}]}}"#,
                source: "t")
            Issue.record("an unknown role was accepted")
        } catch let error as TransportError {
            #expect(error.description.contains("admin.tokens[0].roles"))
        }
    }
}
