// Shims over OpenSSL 3 (Debian 12). Macros that Swift cannot import become static inline functions.
// Only EncoreTransport/CInterop/TLS.swift (and later EncoreCrypto) import this.
#ifndef ENCORE_COPENSSL_SHIM_H
#define ENCORE_COPENSSL_SHIM_H
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/bio.h>

static inline long copenssl_bio_get_mem_data(BIO *bio, char **data) { return BIO_get_mem_data(bio, data); }

static inline long copenssl_ctx_set_min_tls12(SSL_CTX *ctx) { return SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION); }
static inline long copenssl_ctx_set_max_tls13(SSL_CTX *ctx) { return SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION); }
static inline long copenssl_ctx_set_partial_write_modes(SSL_CTX *ctx) {
    return SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                     SSL_MODE_RELEASE_BUFFERS);
}
static inline long copenssl_ctx_set_server_options(SSL_CTX *ctx) {
    // HTTP/2 (RFC 9113 9.2): no renegotiation, no compression.
    return SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
}
static inline long copenssl_ctx_disable_session_cache(SSL_CTX *ctx) {
    return SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
}

/// Client-hello callback: refuse a client that offers no ALPN extension (HTTP/2 over TLS needs
/// ALPN "h2"; the ALPN select callback alone never runs for such clients).
static inline int copenssl_require_alpn(SSL *s, int *alert, void *arg) {
    (void)arg;
    const unsigned char *data = 0;
    size_t length = 0;
    if (SSL_client_hello_get0_ext(s, TLSEXT_TYPE_application_layer_protocol_negotiation, &data, &length) != 1) {
        *alert = SSL_AD_NO_APPLICATION_PROTOCOL;
        return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}
static inline void copenssl_ctx_require_alpn(SSL_CTX *ctx) { SSL_CTX_set_client_hello_cb(ctx, copenssl_require_alpn, 0); }

enum {
    COPENSSL_ERROR_NONE = SSL_ERROR_NONE,
    COPENSSL_ERROR_SSL = SSL_ERROR_SSL,
    COPENSSL_ERROR_WANT_READ = SSL_ERROR_WANT_READ,
    COPENSSL_ERROR_WANT_WRITE = SSL_ERROR_WANT_WRITE,
    COPENSSL_ERROR_SYSCALL = SSL_ERROR_SYSCALL,
    COPENSSL_ERROR_ZERO_RETURN = SSL_ERROR_ZERO_RETURN,
    COPENSSL_TLSEXT_ERR_OK = SSL_TLSEXT_ERR_OK,
    COPENSSL_TLSEXT_ERR_ALERT_FATAL = SSL_TLSEXT_ERR_ALERT_FATAL,
    COPENSSL_FILETYPE_PEM = SSL_FILETYPE_PEM,
    COPENSSL_EVP_PKEY_ED25519 = EVP_PKEY_ED25519,
};

#endif
