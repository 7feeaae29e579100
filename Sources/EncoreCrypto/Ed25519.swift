internal import COpenSSL

/// An error from the crypto layer, with OpenSSL's reasons.
public struct CryptoError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

private func openSSLReasons() -> String {
    var reasons: [String] = []
    while case let code = ERR_get_error(), code != 0 {
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        reasons.append(String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }
    return reasons.isEmpty ? "no details from OpenSSL" : reasons.joined(separator: "; ")
}

/// Ed25519 keys and signatures over libcrypto (snapshot signing).
public enum Ed25519 {
    /// Raw public key length in bytes.
    public static let publicKeyBytes = 32
    /// Signature length in bytes.
    public static let signatureBytes = 64

    /// A private key (owns an EVP_PKEY).
    public final class PrivateKey: @unchecked Sendable {
        private let key: OpaquePointer

        /// A fresh random key.
        public init() throws {
            ERR_clear_error()
            guard let ctx = EVP_PKEY_CTX_new_id(Int32(COPENSSL_EVP_PKEY_ED25519), nil) else {
                throw CryptoError("cannot create an Ed25519 key context: \(openSSLReasons())")
            }
            defer { EVP_PKEY_CTX_free(ctx) }
            var generated: OpaquePointer?
            guard EVP_PKEY_keygen_init(ctx) == 1, EVP_PKEY_keygen(ctx, &generated) == 1, let generated else {
                throw CryptoError("Ed25519 key generation failed: \(openSSLReasons())")
            }
            key = generated
        }

        /// Reads a PEM private key (PKCS#8, as written by `openssl genpkey -algorithm ed25519`).
        public init(pem: String) throws {
            ERR_clear_error()
            var text = pem
            let parsed: OpaquePointer? = text.withUTF8 { buffer in
                guard let bio = BIO_new_mem_buf(buffer.baseAddress, Int32(buffer.count)) else { return nil }
                defer { BIO_free(bio) }
                return PEM_read_bio_PrivateKey(bio, nil, nil, nil)
            }
            guard let parsed else { throw CryptoError("not a PEM private key: \(openSSLReasons())") }
            guard EVP_PKEY_get_id(parsed) == Int32(COPENSSL_EVP_PKEY_ED25519) else {
                EVP_PKEY_free(parsed)
                throw CryptoError("the private key is not an Ed25519 key")
            }
            key = parsed
        }

        deinit { EVP_PKEY_free(key) }

        /// PKCS#8 PEM text of this key.
        public var pem: String {
            guard let bio = BIO_new(BIO_s_mem()) else { return "" }
            defer { BIO_free(bio) }
            PEM_write_bio_PrivateKey(bio, key, nil, nil, 0, nil, nil)
            var data: UnsafeMutablePointer<CChar>?
            let n = copenssl_bio_get_mem_data(bio, &data)
            guard n > 0, let data else { return "" }
            return String(decoding: UnsafeRawBufferPointer(start: data, count: n), as: UTF8.self)
        }

        /// The 32-byte raw public key.
        public var publicKey: PublicKey {
            var raw = [UInt8](repeating: 0, count: Ed25519.publicKeyBytes)
            var length = raw.count
            EVP_PKEY_get_raw_public_key(key, &raw, &length)
            return try! PublicKey(raw: raw)
        }

        /// Signs `message` (64-byte signature).
        public func sign(_ message: [UInt8]) throws -> [UInt8] {
            ERR_clear_error()
            guard let ctx = EVP_MD_CTX_new() else { throw CryptoError("EVP_MD_CTX_new failed") }
            defer { EVP_MD_CTX_free(ctx) }
            var signature = [UInt8](repeating: 0, count: Ed25519.signatureBytes)
            var length = signature.count
            guard EVP_DigestSignInit(ctx, nil, nil, nil, key) == 1,
                EVP_DigestSign(ctx, &signature, &length, message, message.count) == 1
            else { throw CryptoError("Ed25519 signing failed: \(openSSLReasons())") }
            return signature
        }
    }

    /// A public key (owns an EVP_PKEY).
    public final class PublicKey: @unchecked Sendable, Equatable {
        private let key: OpaquePointer
        /// The 32 raw key bytes.
        public let raw: [UInt8]

        public init(raw: [UInt8]) throws {
            guard raw.count == Ed25519.publicKeyBytes else {
                throw CryptoError("an Ed25519 public key has 32 bytes, got \(raw.count)")
            }
            ERR_clear_error()
            guard let key = EVP_PKEY_new_raw_public_key(Int32(COPENSSL_EVP_PKEY_ED25519), nil, raw, raw.count) else {
                throw CryptoError("invalid Ed25519 public key: \(openSSLReasons())")
            }
            self.key = key
            self.raw = raw
        }

        /// Reads a PEM public key (SubjectPublicKeyInfo, `openssl pkey -pubout`), or a PEM private
        /// key (its public half is used).
        public convenience init(pem: String) throws {
            ERR_clear_error()
            var text = pem
            let parsed: OpaquePointer? = text.withUTF8 { buffer in
                guard let bio = BIO_new_mem_buf(buffer.baseAddress, Int32(buffer.count)) else { return nil }
                defer { BIO_free(bio) }
                return PEM_read_bio_PUBKEY(bio, nil, nil, nil)
            }
            if let parsed {
                defer { EVP_PKEY_free(parsed) }
                guard EVP_PKEY_get_id(parsed) == Int32(COPENSSL_EVP_PKEY_ED25519) else {
                    throw CryptoError("the public key is not an Ed25519 key")
                }
                var raw = [UInt8](repeating: 0, count: Ed25519.publicKeyBytes)
                var length = raw.count
                EVP_PKEY_get_raw_public_key(parsed, &raw, &length)
                try self.init(raw: raw)
                return
            }
            let privateKey = try PrivateKey(pem: pem)
            try self.init(raw: privateKey.publicKey.raw)
        }

        deinit { EVP_PKEY_free(key) }

        /// True if `signature` is a valid signature of `message` by this key.
        public func verify(signature: [UInt8], message: [UInt8]) -> Bool {
            guard signature.count == Ed25519.signatureBytes, let ctx = EVP_MD_CTX_new() else { return false }
            defer {
                EVP_MD_CTX_free(ctx)
                ERR_clear_error()
            }
            guard EVP_DigestVerifyInit(ctx, nil, nil, nil, key) == 1 else { return false }
            return EVP_DigestVerify(ctx, signature, signature.count, message, message.count) == 1
        }

        public static func == (lhs: PublicKey, rhs: PublicKey) -> Bool { lhs.raw == rhs.raw }
    }
}
