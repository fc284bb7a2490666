/* wsload — WebSocket fan-out load tool for herald benchmarks.
 *
 * Opens N WebSocket client connections (epoll, raw sockets, own RFC 6455
 * client handshake and masked framing), subscribes each to a subject and
 * measures delivered events/s and publish->receive latency. A publisher
 * thread publishes 200-byte JSON payloads carrying a CLOCK_MONOTONIC send
 * timestamp ("ts", ns) over plain NATS TCP (herald, nats-ws) or HTTP POST
 * (nchan).
 *
 * Modes:
 *   herald   herald.v1 JSON (wait "ready", send subscribe, wait "ok")
 *   nats-ws  NATS protocol inside WebSocket frames (nats-server websocket)
 *   nchan    nginx nchan websocket subscriber at PATH<channel>
 *
 * This is a benchmark tool, not product code.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum mode { M_HERALD, M_NATSWS, M_NCHAN };
enum cstate { C_IDLE, C_CONNECTING, C_HS, C_PROTO1, C_PROTO2, C_READY, C_DEAD };

/* ---------- options ---------- */
static struct {
    enum mode mode;
    const char *host;
    int port;
    const char *path;       /* herald: /v1/ws; nats-ws: /; nchan: /sub/ (channel appended) */
    int clients;
    int subjects;           /* subject index of client i = i % subjects */
    const char *prefix;     /* subject prefix: subjects[0] = prefix if subjects==1 else prefix.<i> */
    double rate;            /* events/s; 0 = closed-loop max rate */
    int window;             /* closed-loop: max events in flight */
    double duration;
    int payload;
    int pub_port;           /* NATS TCP port or nchan HTTP port */
    const char *pub_path;   /* nchan: /pub/ */
    int threads;
    int nsrc;               /* source addresses 127.0.0.1..nsrc */
    int idle;               /* scenario D: connect+subscribe only, measure RSS */
    const char *server_pids;
    double hold;
    int max_pending;
    double connect_timeout;
    int hard_timeout;
    const char *label;
    double drain;
} opt = {M_HERALD, "127.0.0.1", 8081, NULL, 100, 1, "bench.x", 0, 64, 10, 200, 4222,
         "/pub/", 1, 4, 0, NULL, 2, 200, 120, 300, "", 20};

/* ---------- time / histogram ---------- */
static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#define H_LIN 100000   /* 1 us buckets below 100 ms */
#define H_LOG 20000    /* 1 ms buckets from 100 ms to 20.1 s */
typedef struct {
    uint64_t lin[H_LIN];
    uint64_t coarse[H_LOG];
    uint64_t over, n, max_ns;
} hist;

static void hist_add(hist *h, uint64_t ns)
{
    uint64_t us = ns / 1000;
    if (us < H_LIN)
        h->lin[us]++;
    else if ((us - H_LIN) / 1000 < H_LOG)
        h->coarse[(us - H_LIN) / 1000]++;
    else
        h->over++;
    h->n++;
    if (ns > h->max_ns)
        h->max_ns = ns;
}
static void hist_merge(hist *a, const hist *b)
{
    for (int i = 0; i < H_LIN; i++)
        a->lin[i] += b->lin[i];
    for (int i = 0; i < H_LOG; i++)
        a->coarse[i] += b->coarse[i];
    a->over += b->over;
    a->n += b->n;
    if (b->max_ns > a->max_ns)
        a->max_ns = b->max_ns;
}
static double hist_pct(const hist *h, double p) /* microseconds */
{
    if (!h->n)
        return -1;
    uint64_t want = (uint64_t)(p * (double)h->n);
    if (want >= h->n)
        want = h->n - 1;
    uint64_t acc = 0;
    for (int i = 0; i < H_LIN; i++) {
        acc += h->lin[i];
        if (acc > want)
            return i + 0.5;
    }
    for (int i = 0; i < H_LOG; i++) {
        acc += h->coarse[i];
        if (acc > want)
            return H_LIN + i * 1000.0 + 500;
    }
    return h->max_ns / 1000.0;
}

/* ---------- shared counters ---------- */
static atomic_uint_fast64_t g_delivered, g_dropped, g_ready, g_closed, g_failed, g_errors,
    g_badframes, g_last_delivery_ns;
static atomic_int g_stop_recv;
static uint64_t *g_subcount; /* ready subscribers per subject (set before publishing) */

/* ---------- connection ---------- */
typedef struct conn {
    int fd, idx, tid;
    enum cstate st;
    char *buf; /* raw inbound bytes */
    size_t len, cap;
    char *app; /* nats-ws: NATS stream; herald/nchan: fragmented message */
    size_t alen, acap;
    uint8_t frag_op;
} conn;

typedef struct worker {
    int id, epfd;
    conn **conns;
    int nconns, next_connect, pending;
    hist *h;
    uint64_t delivered, dropped, unflushed;
    pthread_t th;
} worker;

static worker *g_workers;
static char g_subj_fmt_buf[64];

static void subject_name(int si, char *out, size_t n)
{
    if (opt.subjects == 1)
        snprintf(out, n, "%s", opt.prefix);
    else
        snprintf(out, n, "%s.%d", opt.prefix, si);
    if (opt.mode == M_NCHAN)
        for (char *p = out; *p; p++)
            if (*p == '.')
                *p = '_';
}

static void grow(char **b, size_t *cap, size_t need)
{
    if (need <= *cap)
        return;
    size_t c = *cap ? *cap : 4096;
    while (c < need)
        c *= 2;
    *b = realloc(*b, c);
    if (!*b) {
        perror("realloc");
        exit(3);
    }
    *cap = c;
}

static uint32_t rnd_state = 0x12345678;
static uint32_t xrand(void)
{
    uint32_t x = rnd_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return rnd_state = x;
}

static const char b64t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static void b64(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = in[i] << 16 | (i + 1 < n ? in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        out[o++] = b64t[(v >> 18) & 63];
        out[o++] = b64t[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64t[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64t[v & 63] : '=';
    }
    out[o] = 0;
}

/* blocking-ish write of a small buffer on a nonblocking socket */
static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                struct pollfd pf = {fd, POLLOUT, 0};
                poll(&pf, 1, 100);
                continue;
            }
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* send one masked client frame */
static int ws_send(conn *c, int op, const char *data, size_t n)
{
    uint8_t hdr[14];
    size_t h = 0;
    hdr[h++] = 0x80 | (uint8_t)op;
    if (n < 126)
        hdr[h++] = 0x80 | (uint8_t)n;
    else if (n < 65536) {
        hdr[h++] = 0x80 | 126;
        hdr[h++] = (uint8_t)(n >> 8);
        hdr[h++] = (uint8_t)n;
    } else {
        hdr[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            hdr[h++] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    uint32_t m = xrand();
    uint8_t mk[4] = {(uint8_t)m, (uint8_t)(m >> 8), (uint8_t)(m >> 16), (uint8_t)(m >> 24)};
    memcpy(hdr + h, mk, 4);
    h += 4;
    char stackbuf[1024];
    char *b = n + h <= sizeof stackbuf ? stackbuf : malloc(n + h);
    memcpy(b, hdr, h);
    for (size_t i = 0; i < n; i++)
        b[h + i] = data[i] ^ mk[i & 3];
    int r = write_all(c->fd, b, n + h);
    if (b != stackbuf)
        free(b);
    return r;
}

static void conn_kill(worker *w, conn *c, const char *why)
{
    if (c->st == C_DEAD)
        return;
    bool was_ready = c->st == C_READY;
    if (c->fd >= 0) {
        epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    if (c->st != C_READY && c->st != C_IDLE)
        w->pending--;
    c->st = C_DEAD;
    if (was_ready) {
        uint64_t n = atomic_fetch_add(&g_closed, 1);
        if (n < 5)
            fprintf(stderr, "wsload: conn %d closed after ready: %s\n", c->idx, why);
    } else {
        uint64_t n = atomic_fetch_add(&g_failed, 1);
        if (n < 5)
            fprintf(stderr, "wsload: conn %d failed before ready: %s\n", c->idx, why);
    }
}

static void conn_start(worker *w, conn *c)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("socket");
        c->st = C_DEAD;
        atomic_fetch_add(&g_failed, 1);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (opt.nsrc > 1) {
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in sa = {.sin_family = AF_INET};
        sa.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(c->idx % opt.nsrc));
        bind(fd, (struct sockaddr *)&sa, sizeof sa);
    }
    struct sockaddr_in da = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    inet_pton(AF_INET, opt.host, &da.sin_addr);
    c->fd = fd;
    c->st = C_CONNECTING;
    w->pending++;
    int r = connect(fd, (struct sockaddr *)&da, sizeof da);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.ptr = c};
    epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev);
    if (r < 0 && errno != EINPROGRESS)
        conn_kill(w, c, strerror(errno));
}

static void send_handshake(worker *w, conn *c)
{
    uint8_t key[16];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)xrand();
    char k64[32];
    b64(key, 16, k64);
    char path[256], subj[128];
    if (opt.mode == M_NCHAN) {
        subject_name(c->idx % opt.subjects, subj, sizeof subj);
        snprintf(path, sizeof path, "%s%s", opt.path, subj);
    } else
        snprintf(path, sizeof path, "%s", opt.path);
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
                     path, opt.host, opt.port, k64,
                     opt.mode == M_HERALD ? "Sec-WebSocket-Protocol: herald.v1\r\n" : "");
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    if (write_all(c->fd, req, (size_t)n) < 0) {
        conn_kill(w, c, "handshake write");
        return;
    }
    c->st = C_HS;
}

static void mark_ready(worker *w, conn *c)
{
    c->st = C_READY;
    w->pending--;
    atomic_fetch_add(&g_ready, 1);
}

static inline void record_ts(worker *w, const char *p, size_t n)
{
    const char *t = memmem(p, n, "\"ts\":", 5);
    if (!t) {
        atomic_fetch_add(&g_badframes, 1);
        return;
    }
    t += 5;
    uint64_t v = 0;
    while (t < p + n && *t >= '0' && *t <= '9')
        v = v * 10 + (uint64_t)(*t++ - '0');
    uint64_t now = now_ns();
    hist_add(w->h, now > v ? now - v : 0);
    w->delivered++;
    w->unflushed++;
}

static uint64_t parse_u64(const char *p, const char *end)
{
    uint64_t v = 0;
    while (p < end && *p >= '0' && *p <= '9')
        v = v * 10 + (uint64_t)(*p++ - '0');
    return v;
}

/* herald.v1: one JSON object per text frame */
static void on_herald_msg(worker *w, conn *c, const char *p, size_t n)
{
    if (c->st == C_READY && n > 15 && memcmp(p, "{\"type\":\"event\"", 15) == 0) {
        record_ts(w, p, n);
        return;
    }
    const char *ty = memmem(p, n, "\"type\":\"", 8);
    if (!ty) {
        atomic_fetch_add(&g_badframes, 1);
        return;
    }
    ty += 8;
    size_t rest = n - (size_t)(ty - p);
    if (rest >= 6 && !memcmp(ty, "event\"", 6)) {
        record_ts(w, p, n);
    } else if (rest >= 6 && !memcmp(ty, "ready\"", 6) && c->st == C_PROTO1) {
        char sub[256], subj[128];
        subject_name(c->idx % opt.subjects, subj, sizeof subj);
        int m = snprintf(sub, sizeof sub, "{\"type\":\"subscribe\",\"id\":\"1\",\"subject\":\"%s\"}", subj);
        if (ws_send(c, 1, sub, (size_t)m) < 0)
            conn_kill(w, c, "subscribe write");
        else
            c->st = C_PROTO2;
    } else if (rest >= 3 && !memcmp(ty, "ok\"", 3) && c->st == C_PROTO2) {
        mark_ready(w, c);
    } else if (rest >= 8 && !memcmp(ty, "dropped\"", 8)) {
        const char *q = memmem(p, n, "\"count\":", 8);
        if (q)
            w->dropped += parse_u64(q + 8, p + n);
    } else {
        uint64_t k = atomic_fetch_add(&g_errors, 1);
        if (k < 5)
            fprintf(stderr, "wsload: conn %d unexpected: %.*s\n", c->idx, (int)(n > 300 ? 300 : n), p);
    }
}

/* NATS protocol stream inside WS frames */
static void on_nats_data(worker *w, conn *c)
{
    size_t off = 0;
    for (;;) {
        char *s = c->app + off;
        size_t avail = c->alen - off;
        char *nl = memmem(s, avail, "\r\n", 2);
        if (!nl)
            break;
        size_t ll = (size_t)(nl - s);
        if (ll >= 4 && !memcmp(s, "MSG ", 4)) {
            /* MSG subj sid [reply] len */
            char *sp = nl;
            while (sp > s && sp[-1] != ' ')
                sp--;
            uint64_t plen = parse_u64(sp, nl);
            if (avail < ll + 2 + plen + 2)
                break;
            record_ts(w, nl + 2, plen);
            off += ll + 2 + plen + 2;
            continue;
        }
        if (ll >= 4 && !memcmp(s, "PING", 4)) {
            if (ws_send(c, 1, "PONG\r\n", 6) < 0) {
                conn_kill(w, c, "pong write");
                return;
            }
        } else if (ll >= 4 && !memcmp(s, "PONG", 4)) {
            if (c->st == C_PROTO2)
                mark_ready(w, c);
        } else if (ll >= 5 && !memcmp(s, "INFO ", 5)) {
            if (c->st == C_PROTO1) {
                char sub[512], subj[128];
                subject_name(c->idx % opt.subjects, subj, sizeof subj);
                int m = snprintf(sub, sizeof sub,
                                 "CONNECT {\"verbose\":false,\"pedantic\":false}\r\nSUB %s %d\r\nPING\r\n",
                                 subj, c->idx + 1);
                if (ws_send(c, 1, sub, (size_t)m) < 0) {
                    conn_kill(w, c, "connect write");
                    return;
                }
                c->st = C_PROTO2;
            }
        } else if (ll >= 3 && !memcmp(s, "+OK", 3)) {
        } else {
            uint64_t k = atomic_fetch_add(&g_errors, 1);
            if (k < 5)
                fprintf(stderr, "wsload: conn %d nats: %.*s\n", c->idx, (int)(ll > 300 ? 300 : ll), s);
        }
        off += ll + 2;
    }
    if (off) {
        memmove(c->app, c->app + off, c->alen - off);
        c->alen -= off;
    }
}

static void on_ws_message(worker *w, conn *c, int op, const char *p, size_t n)
{
    if (opt.mode == M_HERALD)
        on_herald_msg(w, c, p, n);
    else if (c->st == C_READY)
        record_ts(w, p, n);
}

static void parse_frames(worker *w, conn *c)
{
    size_t off = 0;
    while (c->st != C_DEAD) {
        uint8_t *b = (uint8_t *)c->buf + off;
        size_t avail = c->len - off;
        if (avail < 2)
            break;
        int fin = b[0] & 0x80, op = b[0] & 0x0f;
        uint64_t plen = b[1] & 0x7f;
        size_t h = 2;
        if (plen == 126) {
            if (avail < 4)
                break;
            plen = (uint64_t)b[2] << 8 | b[3];
            h = 4;
        } else if (plen == 127) {
            if (avail < 10)
                break;
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = plen << 8 | b[2 + i];
            h = 10;
        }
        if (b[1] & 0x80)
            h += 4; /* server must not mask; tolerate by skipping the key (content garbage) */
        if (avail < h + plen) {
            grow(&c->buf, &c->cap, h + plen + 16);
            break;
        }
        char *pl = (char *)b + h;
        if (op == 8) {
            char why[64];
            int code = plen >= 2 ? ((uint8_t)pl[0] << 8 | (uint8_t)pl[1]) : 0;
            snprintf(why, sizeof why, "close frame code %d %.*s", code, (int)(plen > 2 ? (plen - 2 > 40 ? 40 : plen - 2) : 0), pl + 2);
            ws_send(c, 8, pl, plen >= 2 ? 2 : 0);
            conn_kill(w, c, why);
            return;
        } else if (op == 9) {
            ws_send(c, 10, pl, plen);
        } else if (op == 10) {
        } else if (opt.mode == M_NATSWS) {
            grow(&c->app, &c->acap, c->alen + plen);
            memcpy(c->app + c->alen, pl, plen);
            c->alen += plen;
        } else if (op == 1 || op == 2) {
            if (fin)
                on_ws_message(w, c, op, pl, plen);
            else {
                c->frag_op = (uint8_t)op;
                c->alen = 0;
                grow(&c->app, &c->acap, plen);
                memcpy(c->app, pl, plen);
                c->alen = plen;
            }
        } else if (op == 0) {
            grow(&c->app, &c->acap, c->alen + plen);
            memcpy(c->app + c->alen, pl, plen);
            c->alen += plen;
            if (fin) {
                on_ws_message(w, c, c->frag_op, c->app, c->alen);
                c->alen = 0;
            }
        } else {
            atomic_fetch_add(&g_badframes, 1);
        }
        off += h + plen;
    }
    if (opt.mode == M_NATSWS && c->alen && c->st != C_DEAD)
        on_nats_data(w, c);
    if (c->st == C_DEAD)
        return;
    if (off) {
        memmove(c->buf, c->buf + off, c->len - off);
        c->len -= off;
    }
}

static void on_readable(worker *w, conn *c)
{
    for (;;) {
        grow(&c->buf, &c->cap, c->len + 2048);
        ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (r == 0) {
            conn_kill(w, c, "EOF");
            return;
        }
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            conn_kill(w, c, strerror(errno));
            return;
        }
        c->len += (size_t)r;
        if (c->st == C_HS) {
            char *e = memmem(c->buf, c->len, "\r\n\r\n", 4);
            if (!e) {
                if (c->len > 8192) {
                    conn_kill(w, c, "handshake too long");
                    return;
                }
                continue;
            }
            if (c->len < 12 || memcmp(c->buf + 9, "101", 3) != 0) {
                char why[160];
                snprintf(why, sizeof why, "handshake refused: %.*s", (int)((memchr(c->buf, '\r', c->len) ? (char *)memchr(c->buf, '\r', c->len) : c->buf + 40) - c->buf), c->buf);
                conn_kill(w, c, why);
                return;
            }
            size_t hl = (size_t)(e + 4 - c->buf);
            memmove(c->buf, c->buf + hl, c->len - hl);
            c->len -= hl;
            if (opt.mode == M_NCHAN)
                mark_ready(w, c);
            else
                c->st = C_PROTO1;
        }
        parse_frames(w, c);
        if (c->st == C_DEAD)
            return;
        if ((size_t)r < 2048)
            break;
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    struct epoll_event evs[256];
    while (!atomic_load(&g_stop_recv)) {
        /* ramp: keep at most max_pending handshakes in progress */
        while (w->next_connect < w->nconns && w->pending < opt.max_pending / opt.threads + 1)
            conn_start(w, w->conns[w->next_connect++]);
        int n = epoll_wait(w->epfd, evs, 256, 10);
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (c->st == C_DEAD)
                continue;
            if (c->st == C_CONNECTING) {
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err) {
                    conn_kill(w, c, strerror(err));
                    continue;
                }
                if (evs[i].events & EPOLLOUT)
                    send_handshake(w, c);
                continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                on_readable(w, c);
        }
        if (w->unflushed) {
            atomic_fetch_add(&g_delivered, w->unflushed);
            atomic_store(&g_last_delivery_ns, now_ns());
            w->unflushed = 0;
        }
        if (w->dropped) {
            atomic_fetch_add(&g_dropped, w->dropped);
            w->dropped = 0;
        }
    }
    return NULL;
}

/* ---------- publisher ---------- */
static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in da = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, opt.host, &da.sin_addr);
    if (connect(fd, (struct sockaddr *)&da, sizeof da) < 0) {
        perror("publisher connect");
        exit(4);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int make_payload(char *out, int n, uint64_t seq)
{
    int m = snprintf(out, (size_t)n + 1, "{\"ts\":%" PRIu64 ",\"seq\":%" PRIu64 ",\"pad\":\"", now_ns(), seq);
    int pad = n - m - 2;
    if (pad < 0)
        pad = 0;
    memset(out + m, 'x', (size_t)pad);
    memcpy(out + m + pad, "\"}", 2);
    return m + pad + 2;
}

typedef struct {
    uint64_t published, expected, stalls, lost_adjust, t_start, t_end, pub_errors;
} pubstats;

/* nchan HTTP responses pending */
static char hbuf[1 << 16];
static size_t hlen;
static int http_reap(int fd, int *outstanding, bool block, pubstats *ps)
{
    while (*outstanding > 0) {
        /* parse complete responses */
        for (;;) {
            char *e = memmem(hbuf, hlen, "\r\n\r\n", 4);
            if (!e)
                break;
            size_t hl = (size_t)(e + 4 - hbuf);
            size_t cl = 0;
            char *q = memmem(hbuf, hl, "Content-Length:", 15);
            if (!q)
                q = memmem(hbuf, hl, "content-length:", 15);
            if (q)
                cl = strtoul(q + 15, NULL, 10);
            if (hlen < hl + cl)
                break;
            if (hlen < 12 || hbuf[9] != '2') {
                if (ps->pub_errors++ < 3)
                    fprintf(stderr, "wsload: publish HTTP: %.*s\n", 40, hbuf);
            }
            memmove(hbuf, hbuf + hl + cl, hlen - hl - cl);
            hlen -= hl + cl;
            (*outstanding)--;
            if (*outstanding == 0)
                return 0;
        }
        ssize_t r = recv(fd, hbuf + hlen, sizeof hbuf - hlen, block ? 0 : MSG_DONTWAIT);
        if (r <= 0) {
            if (r < 0 && (errno == EAGAIN || errno == EINTR) && !block)
                return 0;
            fprintf(stderr, "wsload: publisher HTTP connection lost\n");
            return -1;
        }
        hlen += (size_t)r;
    }
    return 0;
}

static void nats_drain(int fd)
{
    char b[4096];
    for (;;) {
        ssize_t r = recv(fd, b, sizeof b, MSG_DONTWAIT);
        if (r <= 0)
            return;
        if (memmem(b, (size_t)r, "PING\r\n", 6))
            write_all(fd, "PONG\r\n", 6);
        if (memmem(b, (size_t)r, "-ERR", 4))
            fprintf(stderr, "wsload: publisher NATS: %.*s\n", (int)r, b);
    }
}

static void run_publisher(pubstats *ps)
{
    int fd;
    if (opt.mode == M_NCHAN) {
        fd = tcp_connect(opt.pub_port);
    } else {
        fd = tcp_connect(opt.pub_port);
        char b[4096];
        ssize_t r = recv(fd, b, sizeof b, 0); /* INFO */
        if (r <= 0) {
            fprintf(stderr, "wsload: no NATS INFO\n");
            exit(4);
        }
        const char *cn = "CONNECT {\"verbose\":false,\"pedantic\":false,\"name\":\"wsload-pub\"}\r\nPING\r\n";
        write_all(fd, cn, strlen(cn));
        r = recv(fd, b, sizeof b, 0); /* PONG */
    }
    char **subj = calloc((size_t)opt.subjects, sizeof *subj);
    for (int i = 0; i < opt.subjects; i++) {
        subj[i] = malloc(128);
        subject_name(i, subj[i], 128);
    }
    uint64_t dur_ns = (uint64_t)(opt.duration * 1e9);
    uint64_t t0 = now_ns(), seq = 0, last_progress = t0, last_delivered = 0;
    ps->t_start = t0;
    double avg_fanout = (double)atomic_load(&g_ready) / opt.subjects;
    uint64_t win = (uint64_t)(opt.window * (avg_fanout < 1 ? 1 : avg_fanout));
    char *out = malloc(1 << 20);
    size_t olen = 0;
    int outstanding = 0;
    int batch = opt.rate > 0 ? 1 : (opt.mode == M_NCHAN ? 16 : 32);
    if (batch > opt.window)
        batch = opt.window > 0 ? opt.window : 1; /* a batch must fit the window */
    char payload[4096];
    for (;;) {
        uint64_t now = now_ns();
        if (now - t0 >= dur_ns)
            break;
        if (opt.rate > 0) {
            uint64_t due = t0 + (uint64_t)((double)seq * 1e9 / opt.rate);
            if (due > now) {
                struct timespec ts = {(time_t)(due / 1000000000ull), (long)(due % 1000000000ull)};
                clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
            }
        } else {
            /* closed loop: at most `window` events (in deliveries) in flight */
            for (;;) {
                uint64_t d = atomic_load(&g_delivered) + atomic_load(&g_dropped);
                uint64_t done = d + ps->lost_adjust;
                uint64_t inflight = ps->expected > done ? ps->expected - done : 0;
                now = now_ns();
                if (d != last_delivered) {
                    last_delivered = d;
                    last_progress = now;
                }
                if (inflight + (uint64_t)(batch * avg_fanout) <= win + (uint64_t)avg_fanout)
                    break;
                if (now - last_progress > 200000000ull) { /* 200 ms without progress */
                    ps->stalls++;
                    ps->lost_adjust += inflight;
                    last_progress = now;
                    break;
                }
                if (now - t0 >= dur_ns)
                    break;
                if (opt.mode == M_NCHAN && outstanding)
                    http_reap(fd, &outstanding, false, ps);
                struct timespec ts = {0, 20000};
                nanosleep(&ts, NULL);
            }
        }
        olen = 0;
        for (int k = 0; k < batch; k++) {
            int si = (int)(seq % (uint64_t)opt.subjects);
            int pl = make_payload(payload, opt.payload, seq);
            if (opt.mode == M_NCHAN)
                olen += (size_t)sprintf(out + olen,
                                        "POST %s%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                                        "Content-Length: %d\r\n\r\n",
                                        opt.pub_path, subj[si], opt.host, pl);
            else
                olen += (size_t)sprintf(out + olen, "PUB %s %d\r\n", subj[si], pl);
            memcpy(out + olen, payload, (size_t)pl);
            olen += (size_t)pl;
            if (opt.mode != M_NCHAN) {
                memcpy(out + olen, "\r\n", 2);
                olen += 2;
            }
            ps->expected += g_subcount[si];
            seq++;
            ps->published++;
        }
        if (write_all(fd, out, olen) < 0) {
            fprintf(stderr, "wsload: publisher write failed\n");
            break;
        }
        if (opt.mode == M_NCHAN) {
            outstanding += batch;
            if (http_reap(fd, &outstanding, outstanding > 64, ps) < 0)
                break;
        } else
            nats_drain(fd);
    }
    ps->t_end = now_ns();
    if (opt.mode == M_NCHAN)
        http_reap(fd, &outstanding, true, ps);
    else {
        write_all(fd, "PING\r\n", 6);
        char b[256];
        recv(fd, b, sizeof b, 0);
    }
    close(fd);
}

/* ---------- RSS ---------- */
static long rss_kb_pid(int pid)
{
    char p[64], line[256];
    snprintf(p, sizeof p, "/proc/%d/status", pid);
    FILE *f = fopen(p, "r");
    if (!f)
        return -1;
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6))
            v = strtol(line + 6, NULL, 10);
    fclose(f);
    return v;
}
static long rss_kb(void)
{
    if (!opt.server_pids)
        return -1;
    long sum = 0;
    char *s = strdup(opt.server_pids), *save = NULL;
    for (char *t = strtok_r(s, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        long v = rss_kb_pid(atoi(t));
        if (v > 0)
            sum += v;
    }
    free(s);
    return sum;
}

static void on_alarm(int sig)
{
    static const char m[] = "wsload: hard timeout reached, exiting\nRESULT status=timeout\n";
    (void)!write(2, m, sizeof m - 1);
    (void)!write(1, m + 38, sizeof m - 39);
    _exit(5);
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: wsload --mode herald|nats-ws|nchan [--host H] [--port P] [--path PATH]\n"
            "  [--clients N] [--subjects K] [--prefix bench.x] [--rate EV/S (0=closed-loop max)]\n"
            "  [--window EVENTS] [--duration S] [--payload BYTES] [--pub-port P] [--pub-path /pub/]\n"
            "  [--threads T] [--src-addrs N] [--idle] [--server-pids P1,P2] [--hold S]\n"
            "  [--max-pending N] [--connect-timeout S] [--timeout S] [--label TEXT]\n"
            "  [--drain S (max wait for in-flight events after publishing, 20)]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static struct option lo[] = {{"mode", 1, 0, 'm'},        {"host", 1, 0, 'H'},
                                 {"port", 1, 0, 'p'},        {"path", 1, 0, 'P'},
                                 {"clients", 1, 0, 'n'},     {"subjects", 1, 0, 'k'},
                                 {"prefix", 1, 0, 'x'},      {"rate", 1, 0, 'r'},
                                 {"window", 1, 0, 'w'},      {"duration", 1, 0, 'd'},
                                 {"payload", 1, 0, 's'},     {"pub-port", 1, 0, 'q'},
                                 {"pub-path", 1, 0, 'Q'},    {"threads", 1, 0, 't'},
                                 {"src-addrs", 1, 0, 'a'},   {"idle", 0, 0, 'i'},
                                 {"server-pids", 1, 0, 'S'}, {"hold", 1, 0, 'o'},
                                 {"max-pending", 1, 0, 'M'}, {"connect-timeout", 1, 0, 'c'},
                                 {"timeout", 1, 0, 'T'},     {"label", 1, 0, 'l'},
                                 {"drain", 1, 0, 'D'},
                                 {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'm':
            if (!strcmp(optarg, "herald"))
                opt.mode = M_HERALD;
            else if (!strcmp(optarg, "nats-ws"))
                opt.mode = M_NATSWS;
            else if (!strcmp(optarg, "nchan"))
                opt.mode = M_NCHAN;
            else
                usage();
            break;
        case 'H': opt.host = optarg; break;
        case 'p': opt.port = atoi(optarg); break;
        case 'P': opt.path = optarg; break;
        case 'n': opt.clients = atoi(optarg); break;
        case 'k': opt.subjects = atoi(optarg); break;
        case 'x': opt.prefix = optarg; break;
        case 'r': opt.rate = atof(optarg); break;
        case 'w': opt.window = atoi(optarg); break;
        case 'd': opt.duration = atof(optarg); break;
        case 's': opt.payload = atoi(optarg); break;
        case 'q': opt.pub_port = atoi(optarg); break;
        case 'Q': opt.pub_path = optarg; break;
        case 't': opt.threads = atoi(optarg); break;
        case 'a': opt.nsrc = atoi(optarg); break;
        case 'i': opt.idle = 1; break;
        case 'S': opt.server_pids = optarg; break;
        case 'o': opt.hold = atof(optarg); break;
        case 'M': opt.max_pending = atoi(optarg); break;
        case 'c': opt.connect_timeout = atof(optarg); break;
        case 'T': opt.hard_timeout = atoi(optarg); break;
        case 'l': opt.label = optarg; break;
        case 'D': opt.drain = atof(optarg); break;
        default: usage();
        }
    }
    if (opt.clients < 1 || opt.subjects < 1 || opt.threads < 1 || opt.payload < 64 || opt.payload > 4000)
        usage();
    if (!opt.path)
        opt.path = opt.mode == M_HERALD ? "/v1/ws" : opt.mode == M_NCHAN ? "/sub/" : "/";
    (void)g_subj_fmt_buf;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, on_alarm);
    alarm((unsigned)opt.hard_timeout);
    rnd_state ^= (uint32_t)now_ns() | 1;

    long rss0 = rss_kb();
    g_subcount = calloc((size_t)opt.subjects, sizeof *g_subcount);
    g_workers = calloc((size_t)opt.threads, sizeof *g_workers);
    for (int t = 0; t < opt.threads; t++) {
        worker *w = &g_workers[t];
        w->id = t;
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        w->conns = calloc((size_t)opt.clients / (size_t)opt.threads + 1, sizeof *w->conns);
        w->h = calloc(1, sizeof *w->h);
    }
    conn *all = calloc((size_t)opt.clients, sizeof *all);
    for (int i = 0; i < opt.clients; i++) {
        all[i].idx = i;
        all[i].fd = -1;
        all[i].st = C_IDLE;
        worker *w = &g_workers[i % opt.threads];
        all[i].tid = w->id;
        w->conns[w->nconns++] = &all[i];
    }
    uint64_t tc0 = now_ns();
    for (int t = 0; t < opt.threads; t++)
        pthread_create(&g_workers[t].th, NULL, worker_main, &g_workers[t]);
    /* wait for all connections to be ready (or failed) */
    for (;;) {
        uint64_t r = atomic_load(&g_ready), f = atomic_load(&g_failed);
        if (r + f >= (uint64_t)opt.clients)
            break;
        if ((double)(now_ns() - tc0) / 1e9 > opt.connect_timeout) {
            fprintf(stderr, "wsload: connect timeout: %" PRIu64 " ready, %" PRIu64 " failed of %d\n", r, f,
                    opt.clients);
            break;
        }
        sleep_s(0.01);
    }
    double t_connect = (double)(now_ns() - tc0) / 1e9;
    uint64_t ready = atomic_load(&g_ready);
    fprintf(stderr, "wsload[%s %s]: %" PRIu64 "/%d ready in %.2fs (%" PRIu64 " failed)\n", opt.label,
            opt.mode == M_HERALD ? "herald" : opt.mode == M_NATSWS ? "nats-ws" : "nchan", ready, opt.clients,
            t_connect, (uint64_t)atomic_load(&g_failed));
    /* ready subscriber counts per subject: the workers own the conns, but the
       states only move away from READY by dying, which we tolerate here */
    for (int i = 0; i < opt.clients; i++)
        if (all[i].st == C_READY)
            g_subcount[i % opt.subjects]++;

    const char *mname = opt.mode == M_HERALD ? "herald" : opt.mode == M_NATSWS ? "nats-ws" : "nchan";
    if (opt.idle) {
        sleep_s(opt.hold);
        long rss1 = rss_kb();
        double per = ready ? (double)(rss1 - rss0) * 1024.0 / (double)ready : -1;
        printf("RESULT label=%s mode=%s clients=%d ready=%" PRIu64 " failed=%" PRIu64 " closed=%" PRIu64
               " connect_s=%.2f rss_before_kb=%ld rss_after_kb=%ld rss_per_conn_b=%.0f\n",
               opt.label, mname, opt.clients, ready, (uint64_t)atomic_load(&g_failed),
               (uint64_t)atomic_load(&g_closed), t_connect, rss0, rss1, per);
        fflush(stdout);
        atomic_store(&g_stop_recv, 1);
        for (int t = 0; t < opt.threads; t++)
            pthread_join(g_workers[t].th, NULL);
        return 0;
    }
    sleep_s(0.5); /* let the last subscriptions settle */
    pubstats ps = {0};
    run_publisher(&ps);
    /* drain: wait until everything expected arrived, no progress for 2 s, or --drain s */
    uint64_t td0 = now_ns(), lastd = atomic_load(&g_delivered), lastp = td0;
    for (;;) {
        uint64_t d = atomic_load(&g_delivered) + atomic_load(&g_dropped);
        uint64_t n = now_ns();
        if (d >= ps.expected)
            break;
        if (d != lastd) {
            lastd = d;
            lastp = n;
        }
        if (n - lastp > 2000000000ull || (double)(n - td0) / 1e9 > opt.drain)
            break;
        sleep_s(0.005);
    }
    double drain_s = (double)(now_ns() - td0) / 1e9;
    atomic_store(&g_stop_recv, 1);
    for (int t = 0; t < opt.threads; t++)
        pthread_join(g_workers[t].th, NULL);
    hist *h = calloc(1, sizeof *h);
    for (int t = 0; t < opt.threads; t++)
        hist_merge(h, g_workers[t].h);
    uint64_t delivered = atomic_load(&g_delivered), dropped = atomic_load(&g_dropped);
    uint64_t tl = atomic_load(&g_last_delivery_ns);
    double span = (double)((tl > ps.t_end ? tl : ps.t_end) - ps.t_start) / 1e9;
    double pub_span = (double)(ps.t_end - ps.t_start) / 1e9;
    uint64_t missing = ps.expected > delivered + dropped ? ps.expected - delivered - dropped : 0;
    printf("RESULT label=%s mode=%s clients=%d ready=%" PRIu64 " failed=%" PRIu64 " closed=%" PRIu64
           " subjects=%d rate=%.0f published=%" PRIu64 " pub_rate=%.0f expected=%" PRIu64 " delivered=%" PRIu64
           " dropped=%" PRIu64 " missing=%" PRIu64 " stalls=%" PRIu64 " deliv_rate=%.0f p50_us=%.0f p99_us=%.0f"
           " p999_us=%.0f max_us=%.0f errors=%" PRIu64 " badframes=%" PRIu64 " pub_errors=%" PRIu64 " drain_s=%.1f\n",
           opt.label, mname, opt.clients, ready, (uint64_t)atomic_load(&g_failed),
           (uint64_t)atomic_load(&g_closed), opt.subjects, opt.rate, ps.published, ps.published / pub_span,
           ps.expected, delivered, dropped, missing, ps.stalls, delivered / span, hist_pct(h, 0.50),
           hist_pct(h, 0.99), hist_pct(h, 0.999), h->max_ns / 1000.0, (uint64_t)atomic_load(&g_errors),
           (uint64_t)atomic_load(&g_badframes), ps.pub_errors, drain_s);
    return 0;
}
