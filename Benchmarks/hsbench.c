/* hsbench: a single-threaded epoll HTTPS load client where every request is a new connection with a full TLS handshake. */
/*
 * C connections, closed loop: each connects, does a full TLS handshake (a fresh SSL object and no session offered,
 * so the server cannot resume: no session ID, no ticket, no PSK), sends one "GET PATH HTTP/1.1" with
 * "Connection: close", reads the whole response (status 200 and Content-Length, or until the server closes), sends
 * close_notify, closes, and starts over. After a warm-up, counts requests for D seconds and prints one line:
 *
 *   reqs=... secs=... req_per_sec=... p50_us=... p90_us=... p99_us=... max_us=... hs_p50_us=... hs_p99_us=...
 *   errors=... resumed=... version=... cipher=... group=... alpn=... conns=... reqs_all=...
 *
 * then a latency histogram ("hist" lines). Latency is from connect() to the last byte of the response (TCP connect +
 * TLS handshake + request); hs_* is from connect() to the end of the client's side of the handshake. resumed counts
 * handshakes that resumed a session (SSL_session_reused); it must be 0 unless --resume is given, and the program
 * exits with status 1 if it is not.
 *
 * --resume keeps each connection's last session (TLS 1.3 ticket, or TLS 1.2 ticket/session ID) and offers it on the
 * next connection: resumed handshakes, for comparison only. --ca FILE verifies the server's chain and name (--sni);
 * without it the chain is not verified (OpenSSL still checks the server's CertificateVerify signature in TLS 1.3,
 * which every real client does). --tls 1.2 or 1.3 caps the version (default: 1.3, i.e. 1.2 and 1.3 offered).
 *
 * Build: gcc -O2 -o hsbench hsbench.c -lssl -lcrypto
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
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

enum { IDLE, CONNECTING, HANDSHAKING, WRITING, READING };

struct conn {
    int fd;
    int state;
    SSL *ssl;
    SSL_SESSION *sess;   /* --resume only */
    uint64_t start_ns, hs_ns;
    char *rbuf;
    size_t rlen;
    long body_start, content_length;  /* -1 = not known yet / none */
};

static struct {
    const char *host, *sni, *path, *ca;
    int port, conns, resume, tls_max;
    double duration, warmup, connect_timeout;
} opt = {"127.0.0.1", "bench.huddle.test", "/", NULL, 0, 50, 0, 13, 10, 1, 10};

enum { RBUF = 16384 };

static int ep;
static SSL_CTX *ctx;
static struct conn *conns;
static char req[1024];
static int reqlen;
static uint32_t *lat, *hslat;
static size_t nlat, caplat;
static uint64_t measured, done_all, errors, resumed_count, measured_resumed;
static int measuring;
static const char *first_error;
static char first_detail[256];
static char version[32] = "-", cipher[64] = "-", group[32] = "-", alpn[32] = "-";

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void start_conn(struct conn *c);

static void drop(struct conn *c) {
    if (c->ssl) { SSL_free(c->ssl); c->ssl = NULL; }
    if (c->fd >= 0) { close(c->fd); c->fd = -1; }  /* close removes it from the epoll set */
    c->state = IDLE;
}

static void fail(struct conn *c, const char *why) {
    if (!first_error) {
        first_error = why;
        unsigned long e = ERR_peek_error();
        if (e) ERR_error_string_n(e, first_detail, sizeof first_detail);
        else if (errno) snprintf(first_detail, sizeof first_detail, "%s", strerror(errno));
    }
    ERR_clear_error();
    errors++;
    drop(c);
    start_conn(c);
}

static void record(uint64_t total_ns, uint64_t hs_ns) {
    if (nlat == caplat) {
        caplat = caplat ? caplat * 2 : 1 << 16;
        lat = realloc(lat, caplat * sizeof *lat);
        hslat = realloc(hslat, caplat * sizeof *hslat);
    }
    uint64_t a = total_ns / 1000, b = hs_ns / 1000;
    lat[nlat] = a > UINT32_MAX ? UINT32_MAX : (uint32_t)a;
    hslat[nlat] = b > UINT32_MAX ? UINT32_MAX : (uint32_t)b;
    nlat++;
}

static void note_session(SSL *ssl) {
    if (version[0] != '-') return;
    snprintf(version, sizeof version, "%s", SSL_get_version(ssl));
    snprintf(cipher, sizeof cipher, "%s", SSL_get_cipher_name(ssl));
    int nid = SSL_get_negotiated_group(ssl);
    const char *g = nid > 0 ? OBJ_nid2sn(nid) : NULL;
    if (g) snprintf(group, sizeof group, "%s", g);
    const unsigned char *a = NULL;
    unsigned int alen = 0;
    SSL_get0_alpn_selected(ssl, &a, &alen);
    if (alen) snprintf(alpn, sizeof alpn, "%.*s", (int)alen, a);
}

static void finish(struct conn *c) {
    uint64_t t = now_ns();
    int reused = SSL_session_reused(c->ssl);
    note_session(c->ssl);
    if (reused) resumed_count++;
    done_all++;
    if (measuring) {
        measured++;
        if (reused) measured_resumed++;
        record(t - c->start_ns, c->hs_ns - c->start_ns);
    }
    if (opt.resume) {
        SSL_SESSION *s = SSL_get1_session(c->ssl);
        if (s && SSL_SESSION_is_resumable(s)) { if (c->sess) SSL_SESSION_free(c->sess); c->sess = s; }
        else if (s) SSL_SESSION_free(s);
    }
    /* close_notify (one non-blocking attempt, as a browser does), then the socket. */
    SSL_shutdown(c->ssl);
    ERR_clear_error();
    drop(c);
    start_conn(c);
}

/* The response is complete when the head is in and Content-Length bytes of body followed it. */
static int response_complete(struct conn *c) {
    if (c->body_start < 0) {
        char *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
        if (!end) return 0;
        c->body_start = end - c->rbuf + 4;
        if (c->rlen < 12 || memcmp(c->rbuf, "HTTP/1.1 200", 12) != 0) return -1;
        c->rbuf[c->body_start - 1] = 0;
        char *cl = strcasestr(c->rbuf, "\r\nContent-Length:");
        c->content_length = cl ? strtol(cl + 17, NULL, 10) : -1;
        c->rbuf[c->body_start - 1] = '\n';
    }
    return c->content_length >= 0 && (long)c->rlen - c->body_start >= c->content_length;
}

static void drive(struct conn *c) {
    for (;;) {
        int r, e;
        size_t n;
        switch (c->state) {
        case HANDSHAKING:
            r = SSL_do_handshake(c->ssl);
            if (r == 1) {
                c->hs_ns = now_ns();
                c->state = WRITING;
                continue;
            }
            e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
            fail(c, "TLS handshake failed");
            return;
        case WRITING:
            if (SSL_write_ex(c->ssl, req, (size_t)reqlen, &n) == 1) {
                c->state = READING;
                continue;
            }
            e = SSL_get_error(c->ssl, 0);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
            fail(c, "SSL_write failed");
            return;
        case READING:
            if (c->rlen == RBUF) { fail(c, "response larger than the read buffer"); return; }
            if (SSL_read_ex(c->ssl, c->rbuf + c->rlen, RBUF - c->rlen, &n) == 1) {
                c->rlen += n;
                int k = response_complete(c);
                if (k < 0) { fail(c, "response is not 200"); return; }
                if (k) { finish(c); return; }
                continue;
            }
            e = SSL_get_error(c->ssl, 0);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
            if ((e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0)) && c->body_start >= 0 && c->content_length < 0) {
                finish(c);  /* no Content-Length: the body ends when the server closes */
                return;
            }
            fail(c, e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL ? "connection closed before the response was complete" : "SSL_read failed");
            return;
        default:
            return;
        }
    }
}

static void start_conn(struct conn *c) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    inet_pton(AF_INET, opt.host, &sa.sin_addr);
    c->rlen = 0;
    c->body_start = -1;
    c->content_length = -1;
    c->start_ns = now_ns();
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) { fprintf(stderr, "hsbench: socket() failed: %s\n", strerror(errno)); exit(1); }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
        /* Out of local ports or refused: count it and retry on the next loop turn (bounded by errors check). */
        if (!first_error) { first_error = "connect failed"; snprintf(first_detail, sizeof first_detail, "%s", strerror(errno)); }
        errors++;
        close(c->fd);
        c->fd = -1;
        c->state = IDLE;
        return;
    }
    c->ssl = SSL_new(ctx);
    if (!c->ssl) { fprintf(stderr, "hsbench: SSL_new failed\n"); exit(1); }
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_connect_state(c->ssl);
    SSL_set_tlsext_host_name(c->ssl, opt.sni);
    if (opt.ca) SSL_set1_host(c->ssl, opt.sni);
    if (opt.resume && c->sess) SSL_set_session(c->ssl, c->sess);
    c->state = CONNECTING;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void on_event(struct conn *c, uint32_t events) {
    if (c->state == IDLE) return;
    if (c->state == CONNECTING) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) { errno = err; fail(c, "connect refused or failed"); return; }
        if (!(events & (EPOLLOUT | EPOLLIN))) return;
        c->state = HANDSHAKING;
    }
    drive(c);
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static uint32_t pct(uint32_t *v, size_t n, double p) { return n ? v[(size_t)((double)(n - 1) * p)] : 0; }

static void usage(void) {
    fprintf(stderr,
            "usage: hsbench --port P [--host 127.0.0.1] [--sni bench.huddle.test] [--path /] [-c 50] [-d 10] [--warmup 1]\n"
            "               [--ca CAFILE] [--tls 1.2|1.3] [--resume]\n");
    exit(2);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--resume")) { opt.resume = 1; continue; }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage();
        if (!strcmp(a, "--host")) opt.host = v;
        else if (!strcmp(a, "--port")) opt.port = atoi(v);
        else if (!strcmp(a, "--sni")) opt.sni = v;
        else if (!strcmp(a, "--path")) opt.path = v;
        else if (!strcmp(a, "--ca")) opt.ca = v;
        else if (!strcmp(a, "-c")) opt.conns = atoi(v);
        else if (!strcmp(a, "-d")) opt.duration = atof(v);
        else if (!strcmp(a, "--warmup")) opt.warmup = atof(v);
        else if (!strcmp(a, "--tls")) opt.tls_max = !strcmp(v, "1.2") ? 12 : !strcmp(v, "1.3") ? 13 : 0;
        else usage();
        i++;
    }
    if (opt.port <= 0 || opt.conns <= 0 || opt.conns > 5000 || opt.duration <= 0 || opt.duration > 3600 || !opt.tls_max) usage();
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < rl.rlim_max) { rl.rlim_cur = rl.rlim_max; setrlimit(RLIMIT_NOFILE, &rl); }

    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, opt.tls_max == 12 ? TLS1_2_VERSION : TLS1_3_VERSION);
    /* No client-side session cache: nothing is offered for resumption unless --resume sets a session explicitly. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    static const unsigned char alpn_list[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx, alpn_list, sizeof alpn_list - 1);
    if (opt.ca) {
        if (SSL_CTX_load_verify_locations(ctx, opt.ca, NULL) != 1) { fprintf(stderr, "hsbench: cannot load %s\n", opt.ca); return 2; }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    reqlen = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: hsbench\r\nConnection: close\r\n\r\n",
                      opt.path, opt.sni, opt.port);

    ep = epoll_create1(EPOLL_CLOEXEC);
    conns = calloc((size_t)opt.conns, sizeof *conns);
    for (int i = 0; i < opt.conns; i++) { conns[i].fd = -1; conns[i].rbuf = malloc(RBUF); }

    uint64_t t0 = now_ns();
    uint64_t window_start = t0 + (uint64_t)(opt.warmup * 1e9);
    uint64_t window_end = window_start + (uint64_t)(opt.duration * 1e9);
    uint64_t measure_start = 0;
    for (int i = 0; i < opt.conns; i++) start_conn(&conns[i]);
    struct epoll_event evs[512];
    for (;;) {
        uint64_t now = now_ns();
        if (!measuring && now >= window_start) { measuring = 1; measure_start = now; }
        if (measuring && now >= window_end) break;
        if (errors > 1000 && errors > done_all / 10) {
            fprintf(stderr, "hsbench: too many errors: %llu (first: %s: %s)\n", (unsigned long long)errors, first_error, first_detail);
            return 1;
        }
        if (now - t0 > (uint64_t)(opt.connect_timeout * 1e9) && done_all == 0) {
            fprintf(stderr, "hsbench: no request completed within %.0fs (first error: %s: %s)\n", opt.connect_timeout,
                    first_error ? first_error : "none", first_detail);
            return 1;
        }
        /* Connections whose connect() failed outright are retried here. */
        for (int i = 0; i < opt.conns; i++) if (conns[i].state == IDLE) start_conn(&conns[i]);
        int n = epoll_wait(ep, evs, 512, 50);
        for (int i = 0; i < n; i++) on_event(evs[i].data.ptr, evs[i].events);
    }
    double secs = (double)(now_ns() - measure_start) / 1e9;
    size_t nl = nlat;
    qsort(lat, nl, sizeof *lat, cmp_u32);
    qsort(hslat, nl, sizeof *hslat, cmp_u32);
    printf("reqs=%llu secs=%.3f req_per_sec=%.0f p50_us=%u p90_us=%u p99_us=%u max_us=%u hs_p50_us=%u hs_p99_us=%u errors=%llu "
           "resumed=%llu version=%s cipher=%s group=%s alpn=%s conns=%d reqs_all=%llu\n",
           (unsigned long long)measured, secs, (double)measured / secs, pct(lat, nl, 0.5), pct(lat, nl, 0.9), pct(lat, nl, 0.99),
           nl ? lat[nl - 1] : 0, pct(hslat, nl, 0.5), pct(hslat, nl, 0.99), (unsigned long long)errors,
           (unsigned long long)measured_resumed, version, cipher, group, alpn, opt.conns, (unsigned long long)done_all);
    /* Latency histogram (connect to last response byte), fixed buckets in microseconds. */
    static const uint32_t edges[] = {250, 500, 1000, 2000, 3000, 5000, 7500, 10000, 20000, 50000, 100000, 200000, 500000, 1000000, UINT32_MAX};
    size_t k = 0, cum = 0;
    uint32_t lo = 0;
    for (size_t b = 0; b < sizeof edges / sizeof *edges; b++) {
        size_t cnt = 0;
        while (k < nl && lat[k] < edges[b]) { k++; cnt++; }
        cum += cnt;
        if (cnt) {
            if (edges[b] == UINT32_MAX) printf("hist %7u us and up     %8zu %6.2f%% %7.2f%%\n", lo, cnt, 100.0 * cnt / nl, 100.0 * cum / nl);
            else printf("hist %7u - %7u us %8zu %6.2f%% %7.2f%%\n", lo, edges[b], cnt, 100.0 * cnt / nl, 100.0 * cum / nl);
        }
        lo = edges[b];
    }
    if (errors) fprintf(stderr, "hsbench: %llu errors (first: %s: %s)\n", (unsigned long long)errors, first_error, first_detail);
    if (!opt.resume && resumed_count) { fprintf(stderr, "hsbench: %llu handshakes resumed a session; they must all be full\n", (unsigned long long)resumed_count); return 1; }
    return 0;
}
