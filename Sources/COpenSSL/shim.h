// Shims over OpenSSL 3 (Debian 12). Macros that Swift cannot import become static inline functions.
// Imported (`internal import`, not re-exported) by the TLS wrapper (TLS.swift) and by EncoreCrypto
// (SHA256.swift, Ed25519.swift).
#ifndef ENCORE_COPENSSL_SHIM_H
#define ENCORE_COPENSSL_SHIM_H
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/bio.h>
#include <openssl/x509v3.h>

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

/// mTLS: the names of a client certificate that verified, written into `out` as lines
/// "CN=<common name>", "DNS:<name>", "URI:<uri>" (subject alternative names). Returns the bytes
/// written (0: no certificate, or it did not verify), truncating at `capacity`.
static inline size_t copenssl_verified_peer_names(SSL *ssl, char *out, size_t capacity) {
    if (capacity == 0) return 0;
    X509 *cert = SSL_get1_peer_certificate(ssl);
    if (!cert) return 0;
    size_t used = 0;
    if (SSL_get_verify_result(ssl) == X509_V_OK) {
        char cn[256];
        int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
        if (n > 0) used += (size_t)snprintf(out + used, capacity - used, "CN=%s\n", cn);
        GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, 0, 0);
        if (names) {
            for (int i = 0; i < sk_GENERAL_NAME_num(names) && used < capacity; i++) {
                const GENERAL_NAME *name = sk_GENERAL_NAME_value(names, i);
                const char *prefix = 0;
                const ASN1_IA5STRING *text = 0;
                if (name->type == GEN_DNS) { prefix = "DNS:"; text = name->d.dNSName; }
                if (name->type == GEN_URI) { prefix = "URI:"; text = name->d.uniformResourceIdentifier; }
                if (prefix && text)
                    used += (size_t)snprintf(out + used, capacity - used, "%s%.*s\n", prefix, ASN1_STRING_length(text),
                                             (const char *)ASN1_STRING_get0_data(text));
            }
            GENERAL_NAMES_free(names);
        }
    }
    X509_free(cert);
    return used < capacity ? used : capacity;
}

/// mTLS: verify client certificates against the PEM bundle `ca_file` (a certificate that does
/// not chain to it fails the handshake; a client without one may still use a bearer token).
/// Returns 1 on success.
static inline int copenssl_ctx_verify_clients(SSL_CTX *ctx, const char *ca_file) {
    if (SSL_CTX_load_verify_locations(ctx, ca_file, 0) != 1) return 0;
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca_file);
    if (!names) return 0;
    SSL_CTX_set_client_CA_list(ctx, names);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, 0);
    return 1;
}

/// Client side: send SNI `host` and verify that the server's certificate names it (a DNS name,
/// or an IP address literal). Returns 1 on success.
static inline int copenssl_client_expect_host(SSL *ssl, const char *host, int is_ip) {
    if (!is_ip && SSL_set_tlsext_host_name(ssl, host) != 1) return 0;
    X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
    return is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host) : SSL_set1_host(ssl, host);
}

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
