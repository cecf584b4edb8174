/* wsbench: a single-threaded epoll WebSocket load client (closed-loop echo latency, or many idle upgraded connections). */
/*
 * Echo mode (default): C connections each send one masked binary message of S bytes, wait for its
 * echo, record the round trip, and send the next; after a warm-up, counts messages for D seconds and
 * prints one line: "msgs=... secs=... msgs_per_sec=... p50_us=... p99_us=... errors=...".
 *
 * Idle mode (--idle N): opens N upgraded connections at a bounded rate, checks every handshake
 * (101 and the right Sec-WebSocket-Accept), prints "ready N", and holds them (answering pings)
 * until stdin reaches EOF or --hold seconds pass.
 *
 * --tls (wss://): every connection first does a TLS handshake (OpenSSL; SNI --sni, ALPN http/1.1, a fresh session
 * each time, no resumption); --ca FILE also verifies the server's chain and name. The WebSocket part is the same.
 *
 * Build: gcc -O2 -o wsbench wsbench.c   (plain only), or with TLS:
 *        gcc -O2 -DWSBENCH_TLS -o wsbench wsbench.c -lssl -lcrypto
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#ifdef WSBENCH_TLS
#include <openssl/err.h>
#include <openssl/ssl.h>
#endif

/* ---- SHA-1 and base64, only to check Sec-WebSocket-Accept ---- */

static uint32_t rol(uint32_t v, int n) { return (v << n) | (v >> (32 - n)); }

static void sha1(const uint8_t *msg, size_t len, uint8_t out[20]) {
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    size_t total = ((len + 8) / 64 + 1) * 64;
    uint8_t *buf = calloc(total, 1);
    memcpy(buf, msg, len);
    buf[len] = 0x80;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) buf[total - 1 - i] = (uint8_t)(bits >> (8 * i));
    for (size_t off = 0; off < total; off += 64) {
        uint32_t w[80];
        for (int i = 0; i < 16; i++)
            w[i] = (uint32_t)buf[off + 4 * i] << 24 | (uint32_t)buf[off + 4 * i + 1] << 16 |
                   (uint32_t)buf[off + 4 * i + 2] << 8 | buf[off + 4 * i + 3];
        for (int i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
        for (int i = 0; i < 80; i++) {
            uint32_t f, k;
            if (i < 20) { f = (b & c) | (~b & d); k = 0x5A827999; }
            else if (i < 40) { f = b ^ c ^ d; k = 0x6ED9EBA1; }
            else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC; }
            else { f = b ^ c ^ d; k = 0xCA62C1D6; }
            uint32_t t = rol(a, 5) + f + e + k + w[i];
            e = d; d = c; c = rol(b, 30); b = a; a = t;
        }
        h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
    }
    free(buf);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 4; j++) out[4 * i + j] = (uint8_t)(h[i] >> (24 - 8 * j));
}

static void base64(const uint8_t *in, size_t len, char *out) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < len ? in[i + 2] : 0);
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? tab[v & 63] : '=';
    }
    out[o] = 0;
}

/* ---- state ---- */

/* TLS_HANDSHAKING only with --tls: between the TCP connect and the WebSocket (HTTP) handshake. */
enum { CONNECTING, TLS_HANDSHAKING, HANDSHAKING, OPEN, CLOSED };

struct conn {
    int fd;
    int state;
    int idx;
    uint8_t *rbuf;
    size_t rlen, rcap;
    uint8_t *wbuf;
    size_t wlen, woff, wcap;
    int want_out;
    char accept[32];
    uint64_t sent_ns;
    uint64_t seq;
    size_t msg_bytes;    /* bytes of the current incoming data message so far */
    int msg_seq_ok;
#ifdef WSBENCH_TLS
    SSL *ssl;            /* --tls only */
    int tls_want_write;  /* the TLS handshake waits for writability */
#endif
};

static struct {
    const char *host;
    int port;
    const char *path;
    int conns;
    size_t size;
    double duration, warmup, hold, connect_timeout;
    int idle;
    double rate;
    int max_pending;
    int tls;
    const char *sni, *ca;
} opt = {"127.0.0.1", 0, "/ws/r%d/", 64, 1024, 10, 1, 300, 30, 0, 1000, 256, 0, "bench.huddle.test", NULL};

#ifdef WSBENCH_TLS
static SSL_CTX *tls_ctx;
static char tls_version[32] = "-", tls_cipher[64] = "-";
#endif

static int ep;
static struct conn *conns;
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t *lat; /* microseconds */
static size_t nlat, caplat;
static uint64_t measured, echoed, errors, opened, failed;
static int measuring;
static const char *first_error;
static uint8_t *payload;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rnd(void) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return rng;
}

static void fail(struct conn *c, const char *why) {
    if (!first_error) first_error = why;
    if (c->state != OPEN) failed++;
    errors++;
#ifdef WSBENCH_TLS
    if (c->ssl) { SSL_free(c->ssl); c->ssl = NULL; }
    ERR_clear_error();
#endif
    if (c->fd >= 0) close(c->fd);  /* close removes it from the epoll set */
    c->fd = -1;
    c->state = CLOSED;
}

/* send/recv, through TLS with --tls. Like the plain calls: -1 with errno EAGAIN when it must wait, 0 at EOF. */
static ssize_t io_send(struct conn *c, const void *buf, size_t len) {
#ifdef WSBENCH_TLS
    if (c->ssl) {
        size_t n;
        if (SSL_write_ex(c->ssl, buf, len, &n) == 1) return (ssize_t)n;
        int e = SSL_get_error(c->ssl, 0);
        errno = e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? EAGAIN : EPIPE;
        return -1;
    }
#endif
    return send(c->fd, buf, len, MSG_NOSIGNAL);
}

static ssize_t io_recv(struct conn *c, void *buf, size_t len) {
#ifdef WSBENCH_TLS
    if (c->ssl) {
        size_t n;
        if (SSL_read_ex(c->ssl, buf, len, &n) == 1) return (ssize_t)n;
        int e = SSL_get_error(c->ssl, 0);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) { errno = EAGAIN; return -1; }
        if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0)) return 0;
        errno = EPROTO;
        return -1;
    }
#endif
    return recv(c->fd, buf, len, 0);
}

/* Decrypted bytes OpenSSL holds that the socket's readiness will not report. */
static int io_pending(struct conn *c) {
#ifdef WSBENCH_TLS
    if (c->ssl) return SSL_has_pending(c->ssl);
#endif
    (void)c;
    return 0;
}

static void set_events(struct conn *c) {
    int want = c->state == CONNECTING || c->woff < c->wlen;
#ifdef WSBENCH_TLS
    if (c->state == TLS_HANDSHAKING) want = c->tls_want_write;
#endif
    if (want == c->want_out) return;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.u32 = (uint32_t)c->idx};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = want;
}

static void flush(struct conn *c) {
    if (c->state == TLS_HANDSHAKING) return;  /* the upgrade request waits for the TLS handshake */
    while (c->woff < c->wlen) {
        ssize_t n = io_send(c, c->wbuf + c->woff, c->wlen - c->woff);
        if (n > 0) { c->woff += (size_t)n; continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        fail(c, "send failed");
        return;
    }
    if (c->woff == c->wlen) c->woff = c->wlen = 0;
    set_events(c);
}

static void queue(struct conn *c, const void *data, size_t len) {
    if (c->wlen + len > c->wcap) {
        c->wcap = (c->wlen + len) * 2;
        c->wbuf = realloc(c->wbuf, c->wcap);
    }
    memcpy(c->wbuf + c->wlen, data, len);
    c->wlen += len;
}

/* Client frames must be masked (RFC 6455 5.3). */
static void queue_frame(struct conn *c, int opcode, const uint8_t *data, size_t len) {
    uint8_t hdr[14];
    size_t h = 0;
    hdr[h++] = (uint8_t)(0x80 | opcode);
    if (len < 126) hdr[h++] = (uint8_t)(0x80 | len);
    else if (len < 65536) { hdr[h++] = 0x80 | 126; hdr[h++] = (uint8_t)(len >> 8); hdr[h++] = (uint8_t)len; }
    else { hdr[h++] = 0x80 | 127; for (int i = 7; i >= 0; i--) hdr[h++] = (uint8_t)((uint64_t)len >> (8 * i)); }
    uint32_t m = (uint32_t)rnd();
    uint8_t mask[4] = {(uint8_t)m, (uint8_t)(m >> 8), (uint8_t)(m >> 16), (uint8_t)(m >> 24)};
    memcpy(hdr + h, mask, 4);
    h += 4;
    queue(c, hdr, h);
    if (c->wlen + len > c->wcap) { c->wcap = (c->wlen + len) * 2; c->wbuf = realloc(c->wbuf, c->wcap); }
    uint8_t *dst = c->wbuf + c->wlen;
    for (size_t i = 0; i < len; i++) dst[i] = data[i] ^ mask[i & 3];
    c->wlen += len;
}

static void send_message(struct conn *c) {
    c->seq++;
    memcpy(payload, &c->seq, opt.size >= 8 ? 8 : opt.size);
    c->sent_ns = now_ns();
    queue_frame(c, 2, payload, opt.size);
    flush(c);
}

static void record(uint64_t ns) {
    if (nlat == caplat) { caplat = caplat ? caplat * 2 : 1 << 16; lat = realloc(lat, caplat * sizeof *lat); }
    uint64_t us = ns / 1000;
    lat[nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static void on_message_done(struct conn *c) {
    if (c->msg_bytes != opt.size || !c->msg_seq_ok) { fail(c, "echo did not match the message sent"); return; }
    echoed++;
    if (measuring) { measured++; record(now_ns() - c->sent_ns); }
    send_message(c);
}

static void parse_frames(struct conn *c) {
    size_t off = 0;
    while (c->state == OPEN) {
        uint8_t *p = c->rbuf + off;
        size_t avail = c->rlen - off;
        if (avail < 2) break;
        int fin = p[0] & 0x80, opcode = p[0] & 0x0f, masked = p[1] & 0x80;
        uint64_t len = p[1] & 0x7f;
        size_t h = 2;
        if (len == 126) { if (avail < 4) break; len = (uint64_t)p[2] << 8 | p[3]; h = 4; }
        else if (len == 127) { if (avail < 10) break; len = 0; for (int i = 0; i < 8; i++) len = len << 8 | p[2 + i]; h = 10; }
        if (masked) h += 4;
        if (len > (1u << 24)) { fail(c, "frame too large"); return; }
        if (avail < h + len) {
            if (h + len > c->rcap) { c->rcap = h + len; uint8_t *nb = malloc(c->rcap); memcpy(nb, p, avail); free(c->rbuf); c->rbuf = nb; c->rlen = avail; off = 0; }
            break;
        }
        uint8_t *data = p + h;
        if (masked) for (uint64_t i = 0; i < len; i++) data[i] ^= p[h - 4 + (i & 3)];
        off += h + len;
        switch (opcode) {
        case 0x1: case 0x2: case 0x0:
            if (opcode != 0) { c->msg_bytes = 0; c->msg_seq_ok = 0; }
            if (c->msg_bytes == 0 && len >= 8) c->msg_seq_ok = memcmp(data, &c->seq, 8) == 0;
            else if (c->msg_bytes == 0 && opt.size < 8) c->msg_seq_ok = 1;
            c->msg_bytes += len;
            if (fin) {
                if (opt.idle) fail(c, "unexpected data message on an idle connection");
                else on_message_done(c);
            }
            break;
        case 0x9: queue_frame(c, 0xA, data, (size_t)len); flush(c); break;
        case 0xA: break;
        case 0x8: fail(c, "peer sent close"); return;
        default: fail(c, "unknown opcode"); return;
        }
    }
    if (c->state != OPEN) return;
    if (off) { memmove(c->rbuf, c->rbuf + off, c->rlen - off); c->rlen -= off; }
}

static void on_handshake(struct conn *c) {
    uint8_t *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
    if (!end) {
        if (c->rlen == c->rcap) fail(c, "handshake response too large");
        return;
    }
    size_t hlen = (size_t)(end - c->rbuf) + 4;
    if (c->rlen < 12 || memcmp(c->rbuf, "HTTP/1.1 101", 12) != 0) { fail(c, "handshake not answered with 101"); return; }
    char *hdrs = strndup((char *)c->rbuf, hlen);
    char *a = strcasestr(hdrs, "\r\nSec-WebSocket-Accept:");
    int ok = 0;
    if (a) {
        a += strlen("\r\nSec-WebSocket-Accept:");
        while (*a == ' ' || *a == '\t') a++;
        ok = strncmp(a, c->accept, 28) == 0;
    }
    free(hdrs);
    if (!ok) { fail(c, "wrong or missing Sec-WebSocket-Accept"); return; }
    c->state = OPEN;
    opened++;
    memmove(c->rbuf, c->rbuf + hlen, c->rlen - hlen);
    c->rlen -= hlen;
    if (!opt.idle) send_message(c);
    if (c->state == OPEN && c->rlen) parse_frames(c);
}

static void start_conn(struct conn *c) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    inet_pton(AF_INET, opt.host, &sa.sin_addr);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) { fail(c, "socket() failed (file limit?)"); return; }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) { fail(c, "connect failed"); return; }
    c->state = CONNECTING;
    c->want_out = 1;
#ifdef WSBENCH_TLS
    if (opt.tls) {
        c->ssl = SSL_new(tls_ctx);
        if (!c->ssl) { fail(c, "SSL_new failed"); return; }
        SSL_set_fd(c->ssl, c->fd);
        SSL_set_connect_state(c->ssl);
        SSL_set_tlsext_host_name(c->ssl, opt.sni);
        if (opt.ca) SSL_set1_host(c->ssl, opt.sni);
        c->tls_want_write = 0;
    }
#endif
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)c->idx};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);

    uint8_t key[16];
    for (int i = 0; i < 16; i++) key[i] = (uint8_t)rnd();
    char key64[32];
    base64(key, 16, key64);
    char cat[96];
    snprintf(cat, sizeof cat, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key64);
    uint8_t digest[20];
    sha1((uint8_t *)cat, strlen(cat), digest);
    base64(digest, 20, c->accept);

    char path[512], req[1024];
    snprintf(path, sizeof path, opt.path, c->idx);
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     path, opt.host, opt.port, key64);
    queue(c, req, (size_t)n);
}

static void on_event(struct conn *c, uint32_t events) {
    if (c->state == CLOSED) return;
    if (c->state == CONNECTING) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) { fail(c, "connect refused or failed"); return; }
        if (!(events & (EPOLLOUT | EPOLLIN))) return;
        c->state = opt.tls ? TLS_HANDSHAKING : HANDSHAKING;
        flush(c);
        if (c->state == CLOSED) return;
    }
#ifdef WSBENCH_TLS
    if (c->state == TLS_HANDSHAKING) {
        ERR_clear_error();
        int r = SSL_do_handshake(c->ssl);
        if (r != 1) {
            int e = SSL_get_error(c->ssl, r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) { fail(c, "TLS handshake failed"); return; }
            c->tls_want_write = e == SSL_ERROR_WANT_WRITE;
            set_events(c);
            return;
        }
        if (tls_version[0] == '-') {
            snprintf(tls_version, sizeof tls_version, "%s", SSL_get_version(c->ssl));
            snprintf(tls_cipher, sizeof tls_cipher, "%s", SSL_get_cipher_name(c->ssl));
        }
        if (SSL_session_reused(c->ssl)) { fail(c, "TLS session resumed (every handshake must be full)"); return; }
        c->state = HANDSHAKING;
        flush(c);  /* the upgrade request */
        if (c->state == CLOSED) return;
        events |= EPOLLIN;  /* the server may have sent more already (tickets); reading finds out */
    }
#endif
    if (events & EPOLLOUT) { flush(c); if (c->state == CLOSED) return; }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        for (;;) {
            if (c->rlen == c->rcap) { c->rcap *= 2; c->rbuf = realloc(c->rbuf, c->rcap); }
            ssize_t n = io_recv(c, c->rbuf + c->rlen, c->rcap - c->rlen);
            if (n > 0) {
                c->rlen += (size_t)n;
                if (c->state == HANDSHAKING) on_handshake(c);
                else parse_frames(c);
                if (c->state == CLOSED) return;
                if (c->rlen < c->rcap && !io_pending(c)) break; /* drained the socket; avoid an extra EAGAIN syscall */
                continue;
            }
            if (n == 0) { fail(c, "connection closed by peer"); return; }
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            fail(c, "recv failed");
            return;
        }
    }
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void usage(void) {
    fprintf(stderr,
            "usage: wsbench --port P [--host 127.0.0.1] [--path /ws/r%%d/] [-c 64] [-s 1024] [-d 10] [--warmup 1]\n"
            "       wsbench --port P --idle N [--rate 1000] [--hold 300]\n"
            "  either with [--tls [--sni bench.huddle.test] [--ca CAFILE]] for wss:// (built with -DWSBENCH_TLS)\n"
            "  %%d in --path is replaced by the connection's index (one group per connection).\n");
    exit(2);
}

static void raise_nofile(rlim_t need) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < rl.rlim_max) { rl.rlim_cur = rl.rlim_max; setrlimit(RLIMIT_NOFILE, &rl); }
    if (rl.rlim_cur < need) {
        fprintf(stderr, "wsbench: need %llu open files but the limit is %llu (raise ulimit -n)\n",
                (unsigned long long)need, (unsigned long long)rl.rlim_cur);
        exit(3);
    }
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--tls")) { opt.tls = 1; continue; }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage();
        if (!strcmp(a, "--host")) opt.host = v;
        else if (!strcmp(a, "--port")) opt.port = atoi(v);
        else if (!strcmp(a, "--path")) opt.path = v;
        else if (!strcmp(a, "-c")) opt.conns = atoi(v);
        else if (!strcmp(a, "-s")) opt.size = (size_t)atol(v);
        else if (!strcmp(a, "-d")) opt.duration = atof(v);
        else if (!strcmp(a, "--warmup")) opt.warmup = atof(v);
        else if (!strcmp(a, "--idle")) opt.idle = atoi(v);
        else if (!strcmp(a, "--rate")) opt.rate = atof(v);
        else if (!strcmp(a, "--hold")) opt.hold = atof(v);
        else if (!strcmp(a, "--connect-timeout")) opt.connect_timeout = atof(v);
        else if (!strcmp(a, "--sni")) opt.sni = v;
        else if (!strcmp(a, "--ca")) opt.ca = v;
        else usage();
        i++;
    }
    if (opt.port <= 0 || opt.conns <= 0 || opt.duration <= 0 || opt.duration > 3600 || opt.rate <= 0 || opt.hold > 86400) usage();
    int total = opt.idle ? opt.idle : opt.conns;
    signal(SIGPIPE, SIG_IGN);  /* OpenSSL writes with write(2), which would raise it on a reset connection */
    if (opt.tls) {
#ifdef WSBENCH_TLS
        tls_ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION);
        SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_OFF);  /* no resumption: every handshake is full */
        /* Read whole socket contents at once (fewer client syscalls), buffers released while idle (less memory with
         * --idle), and a retried write may present a moved buffer (wbuf is realloc'd). */
        SSL_CTX_set_read_ahead(tls_ctx, 1);
        SSL_CTX_set_mode(tls_ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        static const unsigned char alpn[] = "\x08http/1.1";
        SSL_CTX_set_alpn_protos(tls_ctx, alpn, sizeof alpn - 1);
        if (opt.ca) {
            if (SSL_CTX_load_verify_locations(tls_ctx, opt.ca, NULL) != 1) { fprintf(stderr, "wsbench: cannot load %s\n", opt.ca); return 2; }
            SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_PEER, NULL);
        } else {
            SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
        }
#else
        fprintf(stderr, "wsbench: built without TLS (compile with -DWSBENCH_TLS ... -lssl -lcrypto)\n");
        return 2;
#endif
    }
    raise_nofile((rlim_t)total + 64);
    rng ^= (uint64_t)now_ns() ^ ((uint64_t)getpid() << 32);

    ep = epoll_create1(EPOLL_CLOEXEC);
    conns = calloc((size_t)total, sizeof *conns);
    payload = malloc(opt.size + 8);
    for (size_t i = 0; i < opt.size; i++) payload[i] = (uint8_t)('a' + i % 26);
    for (int i = 0; i < total; i++) {
        conns[i].idx = i;
        conns[i].fd = -1;
        conns[i].state = CLOSED;
        conns[i].rcap = opt.idle ? 512 : opt.size + 64;
        conns[i].rbuf = malloc(conns[i].rcap);
    }

    int stdin_watched = 0;
    if (opt.idle) {
        fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
        stdin_watched = epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev) == 0; /* fails for /dev/null or files: then only --hold ends it */
    }

    uint64_t t0 = now_ns();
    uint64_t connect_deadline = t0 + (uint64_t)(opt.connect_timeout * 1e9);
    uint64_t hold_deadline = t0 + (uint64_t)(opt.hold * 1e9);
    int started = 0, ready = 0;
    uint64_t window_start = 0, window_end = 0, measure_start = 0;
    struct epoll_event evs[512];

    for (;;) {
        uint64_t now = now_ns();
        if (opt.idle) {
            /* Bounded rate and bounded handshakes in flight, so the proxy sees a steady trickle, not a SYN flood. */
            uint64_t allowed = (uint64_t)((double)(now - t0) / 1e9 * opt.rate) + 1;
            while (started < total && (uint64_t)started < allowed && (uint64_t)started - opened - failed < (uint64_t)opt.max_pending)
                start_conn(&conns[started++]);
            if (!ready && opened + failed == (uint64_t)total) {
                if (failed) {
                    fprintf(stderr, "wsbench: %llu of %d handshakes failed (first: %s)\n", (unsigned long long)failed, total, first_error);
                    return 1;
                }
                printf("ready %llu\n", (unsigned long long)opened);
                fflush(stdout);
                ready = 1;
            }
            if (!ready && now > connect_deadline) {
                fprintf(stderr, "wsbench: only %llu of %d connections upgraded within %.0fs (failed %llu, first error: %s)\n",
                        (unsigned long long)opened, total, opt.connect_timeout, (unsigned long long)failed, first_error ? first_error : "none");
                return 1;
            }
            if (now > hold_deadline) { fprintf(stderr, "wsbench: hold time limit reached\n"); break; }
            if (ready && errors > failed) {
                fprintf(stderr, "wsbench: %llu idle connections were lost (first: %s)\n", (unsigned long long)(errors - failed), first_error);
                return 1;
            }
        } else {
            if (!started) { for (int i = 0; i < total; i++) start_conn(&conns[i]); started = total; }
            if (!window_start && opened + failed == (uint64_t)total) {
                if (failed) {
                    fprintf(stderr, "wsbench: %llu of %d handshakes failed (first: %s)\n", (unsigned long long)failed, total, first_error);
                    return 1;
                }
                window_start = now + (uint64_t)(opt.warmup * 1e9);
                window_end = window_start + (uint64_t)(opt.duration * 1e9);
            }
            if (!window_start && now > connect_deadline) {
                fprintf(stderr, "wsbench: only %llu of %d connections upgraded within %.0fs (first error: %s)\n",
                        (unsigned long long)opened, total, opt.connect_timeout, first_error ? first_error : "none");
                return 1;
            }
            if (window_start && !measuring && now >= window_start) { measuring = 1; measure_start = now; }
            if (measuring && now >= window_end) break;
            if (errors > (uint64_t)total) { fprintf(stderr, "wsbench: too many errors (first: %s)\n", first_error); return 1; }
        }
        int n = epoll_wait(ep, evs, 512, 50);
        for (int i = 0; i < n; i++) {
            uint32_t id = evs[i].data.u32;
            if (id == UINT32_MAX) {
                char b[256];
                ssize_t r = read(0, b, sizeof b);
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) goto done;
                continue;
            }
            on_event(&conns[id], evs[i].events);
        }
    }
done:
    if (opt.idle) {
        printf("closed %llu\n", (unsigned long long)opened);
        (void)stdin_watched;
        return 0;
    }
    double secs = (double)(now_ns() - measure_start) / 1e9;
    uint32_t p50 = 0, p99 = 0, pmax = 0;
    if (nlat) {
        qsort(lat, nlat, sizeof *lat, cmp_u32);
        p50 = lat[(size_t)((double)(nlat - 1) * 0.50)];
        p99 = lat[(size_t)((double)(nlat - 1) * 0.99)];
        pmax = lat[nlat - 1];
    }
    printf("msgs=%llu secs=%.3f msgs_per_sec=%.0f p50_us=%u p99_us=%u max_us=%u errors=%llu conns=%d size=%zu msgs_all=%llu",
           (unsigned long long)measured, secs, (double)measured / secs, p50, p99, pmax, (unsigned long long)errors, total, opt.size, (unsigned long long)echoed);
#ifdef WSBENCH_TLS
    if (opt.tls) printf(" tls=%s cipher=%s", tls_version, tls_cipher);
#endif
    printf("\n");
    return errors ? 1 : 0;
}
