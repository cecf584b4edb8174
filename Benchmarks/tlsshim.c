/* tlsshim: LD_PRELOAD "what if" experiments on a proxy's use of OpenSSL, without rebuilding the proxy. */
/*
 * Benchmarks only, never for production. Interposes a few libssl entry points and changes one behaviour each,
 * chosen by environment variables (all off by default, so the shim alone changes nothing):
 *
 *   TLSSHIM_FREE_IDLE=1      after an SSL_read/SSL_read_ex that ends in SSL_ERROR_WANT_READ with nothing pending,
 *                            SSL_free_buffers(): an idle connection gives back its (~17 KiB) record read buffer, which
 *                            SSL_MODE_RELEASE_BUFFERS frees only after a record is consumed, not after a read that
 *                            found the socket empty.
 *   TLSSHIM_READ_AHEAD=1     SSL_set_read_ahead(ssl, 1) on every new SSL: one read(2) fetches whole records (and
 *                            several at once) instead of a 5-byte header read and a body read per record.
 *   TLSSHIM_KEEP_BUFFERS=1   clears SSL_MODE_RELEASE_BUFFERS from every SSL_CTX/SSL mode set: record buffers stay
 *                            allocated for the connection's life (no malloc/free per record; more memory per connection).
 *   TLSSHIM_NO_ERR_CLEAR=1   ERR_clear_error() called from the main executable (the proxy's own code, not OpenSSL's)
 *                            returns at once: what a proxy saves by not clearing OpenSSL's thread-local error queue
 *                            before every SSL call (only safe when every error path drains the queue).
 *   TLSSHIM_TICKETS=N        SSL_CTX_set_num_tickets(ctx, N) instead of what the proxy asks for: TLS 1.3 session
 *                            tickets sent after each full handshake (each is a session serialisation, an AES-CBC +
 *                            HMAC sealing and a write(2)).
 *   TLSSHIM_QUIET_SHUTDOWN=1 before SSL_free, marks a connection that completed its handshake as shut down
 *                            (SSL_set_shutdown(SSL_SENT_SHUTDOWN)), as SSL_shutdown would: OpenSSL otherwise treats the
 *                            session as "bad" on SSL_free and removes it from the server's session cache.
 *
 * Build: gcc -O2 -shared -fPIC -o tlsshim.so tlsshim.c -ldl -lssl -lcrypto
 * Use:   HUDDLE_PRELOAD=/path/tlsshim.so TLSSHIM_FREE_IDLE=1 Benchmarks/ws.sh   (lib.sh passes it to huddle only)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdlib.h>

static int flag(const char *name) {
    const char *v = getenv(name);
    return v && *v && *v != '0';
}

static int (*real_read_ex)(SSL *, void *, size_t, size_t *);
static int (*real_read)(SSL *, void *, int);
static SSL *(*real_new)(SSL_CTX *);
static long (*real_ctrl)(SSL *, int, long, void *);
static long (*real_ctx_ctrl)(SSL_CTX *, int, long, void *);
static void (*real_free)(SSL *);
static void (*real_err_clear)(void);
static int (*real_num_tickets)(SSL_CTX *, size_t);
static long tickets = -1;
static int free_idle, read_ahead, keep_buffers, quiet_shutdown, no_err_clear;
static uintptr_t exe_lo, exe_hi;  /* the main executable's loaded address range */

static int exe_range(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size; (void)data;
    if (info->dlpi_name && info->dlpi_name[0]) return 0;  /* the main program has an empty name */
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD) continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (!exe_lo || lo < exe_lo) exe_lo = lo;
        if (hi > exe_hi) exe_hi = hi;
    }
    return 1;
}

__attribute__((constructor)) static void init(void) {
    real_read_ex = dlsym(RTLD_NEXT, "SSL_read_ex");
    real_read = dlsym(RTLD_NEXT, "SSL_read");
    real_new = dlsym(RTLD_NEXT, "SSL_new");
    real_ctrl = dlsym(RTLD_NEXT, "SSL_ctrl");
    real_ctx_ctrl = dlsym(RTLD_NEXT, "SSL_CTX_ctrl");
    real_free = dlsym(RTLD_NEXT, "SSL_free");
    real_err_clear = dlsym(RTLD_NEXT, "ERR_clear_error");
    no_err_clear = flag("TLSSHIM_NO_ERR_CLEAR");
    real_num_tickets = dlsym(RTLD_NEXT, "SSL_CTX_set_num_tickets");
    if (getenv("TLSSHIM_TICKETS") && *getenv("TLSSHIM_TICKETS")) tickets = atol(getenv("TLSSHIM_TICKETS"));
    dl_iterate_phdr(exe_range, NULL);
    free_idle = flag("TLSSHIM_FREE_IDLE");
    read_ahead = flag("TLSSHIM_READ_AHEAD");
    keep_buffers = flag("TLSSHIM_KEEP_BUFFERS");
    quiet_shutdown = flag("TLSSHIM_QUIET_SHUTDOWN");
}

static void after_read(SSL *s, int ok) {
    if (free_idle && !ok && SSL_get_error(s, 0) == SSL_ERROR_WANT_READ && !SSL_has_pending(s)) SSL_free_buffers(s);
}

int SSL_read_ex(SSL *s, void *buf, size_t num, size_t *readbytes) {
    int r = real_read_ex(s, buf, num, readbytes);
    after_read(s, r == 1);
    return r;
}

int SSL_read(SSL *s, void *buf, int num) {
    int r = real_read(s, buf, num);
    after_read(s, r > 0);
    return r;
}

SSL *SSL_new(SSL_CTX *ctx) {
    SSL *s = real_new(ctx);
    if (s && read_ahead) SSL_set_read_ahead(s, 1);
    return s;
}

long SSL_ctrl(SSL *s, int cmd, long larg, void *parg) {
    if (keep_buffers && cmd == SSL_CTRL_MODE) larg &= ~(long)SSL_MODE_RELEASE_BUFFERS;
    return real_ctrl(s, cmd, larg, parg);
}

long SSL_CTX_ctrl(SSL_CTX *ctx, int cmd, long larg, void *parg) {
    if (keep_buffers && cmd == SSL_CTRL_MODE) larg &= ~(long)SSL_MODE_RELEASE_BUFFERS;
    return real_ctx_ctrl(ctx, cmd, larg, parg);
}

void SSL_free(SSL *s) {
    if (s && quiet_shutdown && SSL_is_init_finished(s)) SSL_set_shutdown(s, SSL_get_shutdown(s) | SSL_SENT_SHUTDOWN);
    real_free(s);
}

void ERR_clear_error(void) {
    uintptr_t caller = (uintptr_t)__builtin_return_address(0);
    if (no_err_clear && caller >= exe_lo && caller < exe_hi) return;
    real_err_clear();
}

int SSL_CTX_set_num_tickets(SSL_CTX *ctx, size_t n) {
    return real_num_tickets(ctx, tickets >= 0 ? (size_t)tickets : n);
}
