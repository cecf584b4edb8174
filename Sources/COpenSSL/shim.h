// OpenSSL (Debian's libssl-dev, 3.x) for Swift: the headers, plus inline wrappers for what OpenSSL defines as macros
// (Swift imports functions, not function-like macros).
#ifndef C_OPENSSL_SHIM_H
#define C_OPENSSL_SHIM_H

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/pem.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/bio.h>

static inline long huddle_SSL_CTX_set_mode(SSL_CTX *ctx, long mode) { return SSL_CTX_set_mode(ctx, mode); }
static inline long huddle_SSL_set_mode(SSL *ssl, long mode) { return SSL_set_mode(ssl, mode); }
static inline void huddle_SSL_CTX_set_read_ahead(SSL_CTX *ctx, int yes) { SSL_CTX_set_read_ahead(ctx, yes); }
static inline int huddle_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int v) { return (int)SSL_CTX_set_min_proto_version(ctx, v); }
static inline int huddle_SSL_CTX_set_max_proto_version(SSL_CTX *ctx, int v) { return (int)SSL_CTX_set_max_proto_version(ctx, v); }
static inline long huddle_SSL_CTX_set_session_cache_mode(SSL_CTX *ctx, long m) { return SSL_CTX_set_session_cache_mode(ctx, m); }
static inline long huddle_SSL_CTX_sess_set_cache_size(SSL_CTX *ctx, long n) { return SSL_CTX_sess_set_cache_size(ctx, n); }
static inline int huddle_SSL_set_tlsext_host_name(SSL *ssl, const char *name) { return (int)SSL_set_tlsext_host_name(ssl, name); }
static inline int huddle_SSL_CTX_set_tlsext_servername_callback(SSL_CTX *ctx, int (*cb)(SSL *, int *, void *)) {
    return (int)SSL_CTX_set_tlsext_servername_callback(ctx, cb);
}
static inline int huddle_SSL_CTX_set_tlsext_servername_arg(SSL_CTX *ctx, void *arg) { return (int)SSL_CTX_set_tlsext_servername_arg(ctx, arg); }
static inline int huddle_SSL_CTX_set_tlsext_ticket_key_cb(SSL_CTX *ctx,
        int (*cb)(SSL *, unsigned char *, unsigned char *, EVP_CIPHER_CTX *, EVP_MAC_CTX *, int)) {
    return SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, cb);
}
static inline long huddle_SSL_CTX_set1_groups_list(SSL_CTX *ctx, const char *list) { return SSL_CTX_set1_groups_list(ctx, list); }
static inline int huddle_SSL_CTX_set_ecdh_auto(SSL_CTX *ctx) { (void)ctx; return 1; }
static inline long huddle_SSL_CTX_add_extra_chain_cert(SSL_CTX *ctx, X509 *x) { return SSL_CTX_add_extra_chain_cert(ctx, x); }
static inline long huddle_SSL_CTX_clear_chain_certs(SSL_CTX *ctx) { return SSL_CTX_clear_chain_certs(ctx); }
static inline int huddle_ERR_GET_REASON(unsigned long e) { return ERR_GET_REASON(e); }
static inline const SSL_METHOD *huddle_TLS_server_method(void) { return TLS_server_method(); }
static inline const SSL_METHOD *huddle_TLS_client_method(void) { return TLS_client_method(); }
static inline void *huddle_SSL_get_app_data(const SSL *ssl) { return SSL_get_ex_data(ssl, 0); }
static inline int huddle_SSL_set_app_data(SSL *ssl, void *arg) { return SSL_set_ex_data(ssl, 0, arg); }
static inline STACK_OF(GENERAL_NAME) *huddle_X509_subject_alt_names(X509 *x) {
    return (STACK_OF(GENERAL_NAME) *)X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
}
static inline int huddle_sk_GENERAL_NAME_num(const STACK_OF(GENERAL_NAME) *s) { return sk_GENERAL_NAME_num(s); }
static inline GENERAL_NAME *huddle_sk_GENERAL_NAME_value(const STACK_OF(GENERAL_NAME) *s, int i) { return sk_GENERAL_NAME_value(s, i); }
static inline void huddle_GENERAL_NAMES_free(STACK_OF(GENERAL_NAME) *s) { GENERAL_NAMES_free(s); }
static inline int huddle_GENERAL_NAME_dns(const GENERAL_NAME *g, const unsigned char **data, int *len) {
    if (g->type != GEN_DNS) return 0;
    *data = ASN1_STRING_get0_data(g->d.dNSName);
    *len = ASN1_STRING_length(g->d.dNSName);
    return 1;
}

// Whether the socket BIO's latest read came back short (fewer bytes than OpenSSL asked for, or none): the kernel had
// nothing more at that moment, so with edge-triggered epoll there is nothing to read until the next edge. With
// read-ahead OpenSSL asks for a whole buffer, so a full read means more may be waiting.
static long huddle_bio_read_callback(BIO *b, int oper, const char *argp, size_t len, int argi, long argl, int ret,
                                     size_t *processed) {
    (void)argp; (void)argi; (void)argl;
    if (oper == (BIO_CB_READ | BIO_CB_RETURN)) {
        int *shortRead = (int *)BIO_get_callback_arg(b);
        if (shortRead) *shortRead = ret <= 0 || processed == NULL || *processed < len;
    }
    return ret;
}
static inline void huddle_SSL_watch_short_reads(SSL *ssl, int *shortRead) {
    BIO *b = SSL_get_rbio(ssl);
    if (b == NULL) return;
    BIO_set_callback_arg(b, (char *)shortRead);
    BIO_set_callback_ex(b, huddle_bio_read_callback);
}

// Option bits are built with a function-like macro (SSL_OP_BIT): constants here so Swift sees them.
static const uint64_t huddle_SSL_OP_IGNORE_UNEXPECTED_EOF = SSL_OP_IGNORE_UNEXPECTED_EOF;
static const uint64_t huddle_SSL_OP_NO_COMPRESSION = SSL_OP_NO_COMPRESSION;
static const uint64_t huddle_SSL_OP_CIPHER_SERVER_PREFERENCE = SSL_OP_CIPHER_SERVER_PREFERENCE;
static const uint64_t huddle_SSL_OP_NO_RENEGOTIATION = SSL_OP_NO_RENEGOTIATION;
static const uint64_t huddle_SSL_OP_NO_TICKET = SSL_OP_NO_TICKET;
static inline uint64_t huddle_SSL_CTX_set_options64(SSL_CTX *ctx, uint64_t op) { return SSL_CTX_set_options(ctx, op); }
static inline long huddle_SSL_CTX_get_session_cache_hits(SSL_CTX *ctx) { return SSL_CTX_sess_hits(ctx); }
static inline long huddle_SSL_CTX_get_session_accepts(SSL_CTX *ctx) { return SSL_CTX_sess_accept(ctx); }

#endif
