internal import COpenSSL

#if canImport(Glibc)
    import Glibc
#endif

/// A TLS configuration error, with every reason string OpenSSL queued.
public struct TLSError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// Drains OpenSSL's thread-local error queue into one readable string.
private func drainErrorQueue() -> String {
    var reasons: [String] = []
    while true {
        let code = ERR_get_error()
        if code == 0 { break }
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        reasons.append(String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }
    return reasons.isEmpty ? "no OpenSSL error queued" : reasons.joined(separator: "; ")
}

/// TLS settings: TLS 1.2 and 1.3, ALPN `h2` only. Server side: a certificate chain and key
/// (PEM). Client side (EncoreClient: the tools and `encore bench`): offers ALPN `h2` and
/// verifies the server's certificate and host name unless built without verification
/// (`--insecure-skip-verify`). Shared by every thread (SSL_CTX is safe to use concurrently once
/// configured).
public final class TLSContext: @unchecked Sendable {
    let context: OpaquePointer
    /// True for a client context: connections start the handshake (SSL_set_connect_state).
    let isClient: Bool
    /// Client contexts that verify the server: each connection checks the host name too.
    let verifiesServer: Bool

    /// A client context without certificate verification (`--insecure-skip-verify`; never use it
    /// where the server's identity matters): TLS 1.2/1.3, ALPN `h2`. Throws a `TLSError`
    /// with OpenSSL's reasons if the context cannot be created.
    public convenience init(clientWithoutVerification: Void) throws {
        try self.init(clientCAFile: nil, certificateFile: nil, keyFile: nil, verify: false)
    }

    /// A client context for the `encore` tools: TLS 1.2/1.3, ALPN `h2`, the server's certificate
    /// verified against `caFile` (PEM bundle; nil: the system trust store) and, per connection,
    /// against the host name dialed; optionally a client certificate (`certificateFile` and
    /// `keyFile`, for mTLS). `verify: false` skips server verification (`--insecure-skip-verify`).
    /// Throws a `TLSError` naming the file and OpenSSL's reasons.
    public init(clientCAFile caFile: String?, certificateFile: String?, keyFile: String?, verify: Bool = true) throws {
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(TLS_client_method()) else {
            throw TLSError(description: "cannot create a TLS client context: \(drainErrorQueue())")
        }
        context = ctx
        isClient = true
        verifiesServer = verify
        _ = copenssl_ctx_set_min_tls12(ctx)
        _ = copenssl_ctx_set_max_tls13(ctx)
        _ = copenssl_ctx_set_partial_write_modes(ctx)
        if verify {
            let loaded =
                caFile.map { SSL_CTX_load_verify_locations(ctx, $0, nil) } ?? SSL_CTX_set_default_verify_paths(ctx)
            guard loaded == 1 else {
                let reasons = drainErrorQueue()
                throw TLSError(
                    description: caFile.map { "cannot load CA bundle \($0) (--ca-file): \(reasons)" }
                        ?? "cannot load the system trust store: \(reasons)")
            }
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
        } else {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
        }
        switch (certificateFile, keyFile) {
        case (let cert?, let key?):
            guard SSL_CTX_use_certificate_chain_file(ctx, cert) == 1 else {
                let reasons = drainErrorQueue()
                throw TLSError(description: "cannot load client certificate \(cert) (--cert): \(reasons)")
            }
            guard SSL_CTX_use_PrivateKey_file(ctx, key, Int32(COPENSSL_FILETYPE_PEM)) == 1,
                SSL_CTX_check_private_key(ctx) == 1
            else {
                let reasons = drainErrorQueue()
                throw TLSError(description: "cannot use client key \(key) (--key) with \(cert): \(reasons)")
            }
        case (nil, nil):
            break
        default:
            throw TLSError(description: "--cert and --key go together (the client certificate and its private key)")
        }
        let alpn: [UInt8] = [2, UInt8(ascii: "h"), UInt8(ascii: "2")]
        guard SSL_CTX_set_alpn_protos(ctx, alpn, UInt32(alpn.count)) == 0 else {
            let reasons = drainErrorQueue()
            throw TLSError(description: "cannot offer ALPN h2: \(reasons)")
        }
    }

    /// Loads the PEM certificate chain and private key. Throws a `TLSError` naming the file and
    /// OpenSSL's reasons when either cannot be used.
    ///
    /// With `clientCAFile` (a PEM bundle, `--client-ca`), client certificates are requested and
    /// verified against it (mTLS): one that does not chain to it, or has expired, fails the
    /// handshake; a client without a certificate is still accepted (it may carry a token).
    public init(certificateChainFile: String, privateKeyFile: String, clientCAFile: String? = nil) throws {
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(TLS_server_method()) else {
            throw TLSError(description: "cannot create a TLS context: \(drainErrorQueue())")
        }
        // From here on `deinit` owns `ctx`: a throw below runs it, so no path frees it by hand
        // (that was a double free on a bad certificate or key file).
        context = ctx
        isClient = false
        verifiesServer = false
        _ = copenssl_ctx_set_min_tls12(ctx)
        _ = copenssl_ctx_set_max_tls13(ctx)
        _ = copenssl_ctx_set_partial_write_modes(ctx)
        _ = copenssl_ctx_set_server_options(ctx)
        _ = copenssl_ctx_disable_session_cache(ctx)
        // RFC 9113 9.2.2: TLS 1.2 with HTTP/2 needs AEAD ciphers with ephemeral key exchange.
        _ = SSL_CTX_set_cipher_list(
            ctx,
            "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                + "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305")
        guard SSL_CTX_use_certificate_chain_file(ctx, certificateChainFile) == 1 else {
            let reasons = drainErrorQueue()
            throw TLSError(description: "cannot load TLS certificate chain \(certificateChainFile): \(reasons)")
        }
        guard SSL_CTX_use_PrivateKey_file(ctx, privateKeyFile, Int32(COPENSSL_FILETYPE_PEM)) == 1 else {
            let reasons = drainErrorQueue()
            // OpenSSL checks the key against the loaded certificate here already.
            if reasons.contains("key values mismatch") {
                throw TLSError(
                    description:
                        "TLS private key \(privateKeyFile) does not match the certificate \(certificateChainFile): \(reasons)"
                )
            }
            throw TLSError(description: "cannot load TLS private key \(privateKeyFile): \(reasons)")
        }
        guard SSL_CTX_check_private_key(ctx) == 1 else {
            let reasons = drainErrorQueue()
            throw TLSError(
                description:
                    "TLS private key \(privateKeyFile) does not match the certificate \(certificateChainFile): \(reasons)"
            )
        }
        if let clientCAFile {
            guard copenssl_ctx_verify_clients(ctx, clientCAFile) == 1 else {
                let reasons = drainErrorQueue()
                throw TLSError(description: "cannot load client CA bundle \(clientCAFile) (--client-ca): \(reasons)")
            }
        }
        SSL_CTX_set_alpn_select_cb(ctx, selectH2, nil)
        copenssl_ctx_require_alpn(ctx)
    }

    deinit {
        SSL_CTX_free(context)
    }
}

/// ALPN: accept only "h2"; a client that does not offer it fails the handshake
/// (no_application_protocol alert).
private let selectH2:
    @convention(c) (
        OpaquePointer?, UnsafeMutablePointer<UnsafePointer<UInt8>?>?, UnsafeMutablePointer<UInt8>?,
        UnsafePointer<UInt8>?, UInt32, UnsafeMutableRawPointer?
    ) -> Int32 = { _, out, outLength, input, inputLength, _ in
        guard let out, let outLength, let input else { return Int32(COPENSSL_TLSEXT_ERR_ALERT_FATAL) }
        var i = 0
        let total = Int(inputLength)
        while i < total {
            let length = Int(input[i])
            let start = i + 1
            if start + length > total { break }
            if length == 2 && input[start] == UInt8(ascii: "h") && input[start + 1] == UInt8(ascii: "2") {
                out.pointee = input + start
                outLength.pointee = 2
                return Int32(COPENSSL_TLSEXT_ERR_OK)
            }
            i = start + length
        }
        return Int32(COPENSSL_TLSEXT_ERR_ALERT_FATAL)
    }

/// One TLS connection over a non-blocking socket (owns the SSL object); server or client side
/// as its context says. Package-visible for EncoreClient's connections.
package final class TLSStream {
    private let ssl: OpaquePointer

    package enum IOResult {
        /// This many bytes were read or written.
        case bytes(Int)
        case wantRead
        case wantWrite
        /// The peer closed the TLS session (or the socket).
        case closed
        /// A fatal TLS error, with OpenSSL's reasons.
        case failed(String)
    }

    package init?(context: TLSContext, fd: Int32, serverName: String? = nil) {
        ERR_clear_error()
        guard let ssl = SSL_new(context.context) else { return nil }
        guard SSL_set_fd(ssl, fd) == 1 else {
            SSL_free(ssl)
            return nil
        }
        if context.isClient, context.verifiesServer, let serverName {
            var probe = in6_addr()
            let isIP = inet_pton(AF_INET, serverName, &probe) == 1 || inet_pton(AF_INET6, serverName, &probe) == 1
            guard copenssl_client_expect_host(ssl, serverName, isIP ? 1 : 0) == 1 else {
                SSL_free(ssl)
                return nil
            }
        }
        if context.isClient {
            SSL_set_connect_state(ssl)
        } else {
            SSL_set_accept_state(ssl)
        }
        self.ssl = ssl
    }

    deinit {
        SSL_free(ssl)
    }

    /// Advances the handshake. `.bytes(0)` means it is complete.
    package func handshake() -> IOResult {
        ERR_clear_error()
        let rv = SSL_do_handshake(ssl)
        if rv == 1 { return .bytes(0) }
        return classify(rv)
    }

    /// True if the handshake negotiated ALPN "h2".
    package var negotiatedH2: Bool {
        var data: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &data, &length)
        return length == 2 && data?[0] == UInt8(ascii: "h") && data?[1] == UInt8(ascii: "2")
    }

    /// The names of the client certificate if one was presented and verified (`CN=...`,
    /// `DNS:...`, `URI:...`), else nil. Called once, when the handshake completes.
    var peerCertificateNames: [String]? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let used = copenssl_verified_peer_names(ssl, &buffer, buffer.count)
        guard used > 0 else { return nil }
        let text = String(decoding: buffer.prefix(used).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return text.split(separator: "\n").map(String.init)
    }

    /// Why the peer's certificate did not verify (e.g. "certificate has expired"), or nil.
    package var certificateVerifyFailure: String? {
        let result = SSL_get_verify_result(ssl)
        guard result != X509_V_OK else { return nil }
        return String(cString: X509_verify_cert_error_string(result))
    }

    /// The negotiated protocol version ("TLSv1.3", ...).
    var versionName: String { String(cString: SSL_get_version(ssl)) }

    package func read(into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        ERR_clear_error()
        let rv = SSL_read(ssl, buffer.baseAddress, Int32(clamping: buffer.count))
        if rv > 0 { return .bytes(Int(rv)) }
        return classify(rv)
    }

    package func write(_ bytes: UnsafeRawBufferPointer) -> IOResult {
        ERR_clear_error()
        let rv = SSL_write(ssl, bytes.baseAddress, Int32(clamping: bytes.count))
        if rv > 0 { return .bytes(Int(rv)) }
        return classify(rv)
    }

    /// Decrypted bytes buffered inside OpenSSL, readable without waiting for the socket.
    package var pendingBytes: Int { Int(SSL_pending(ssl)) }

    /// Sends close_notify (best effort, non-blocking).
    package func shutdown() {
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
    }

    private func classify(_ rv: Int32) -> IOResult {
        let error = SSL_get_error(ssl, rv)
        switch error {
        case Int32(COPENSSL_ERROR_WANT_READ): return .wantRead
        case Int32(COPENSSL_ERROR_WANT_WRITE): return .wantWrite
        case Int32(COPENSSL_ERROR_ZERO_RETURN): return .closed
        case Int32(COPENSSL_ERROR_SYSCALL):
            let reasons = drainErrorQueue()
            return reasons == "no OpenSSL error queued" ? .closed : .failed(reasons)
        default:
            return .failed(drainErrorQueue())
        }
    }
}
