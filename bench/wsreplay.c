/* wsreplay — herald replay client for replay.sh. Raw socket, RFC 6455 client
 * handshake (subprotocol herald.v1), waits for "ready", sends one masked
 * {"type":"subscribe","id":"r","subject":SUBJECT,"since":SINCE}, then reads
 * frames and counts "event" frames until the "synced" frame. Checks that the
 * replayed seqs are strictly increasing and contiguous (every stored message
 * matches when SUBJECT covers the stream).
 *
 * usage: wsreplay [--host 127.0.0.1] [--port 24081] [--path /v1/ws] [--subject 'bench.>']
 *                 [--since 0] [--loops N (1; 0 = until --duration)] [--duration S]
 *                 [--timeout S (per replay, 60)] [--label TEXT]
 * Each replay uses a fresh connection; the clock runs from the subscribe frame
 * to the synced frame. Prints one "RESULT" line (totals; rate = events / summed
 * replay time). SIGTERM/SIGINT stop after the current read; an interrupted replay
 * is counted as "interrupted", not failed. Exit 0 only if every finished replay
 * reached synced. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *host = "127.0.0.1", *path = "/v1/ws", *subject = "bench.>", *label = "replay";
static int port = 24081;
static long since = 0, loops = 1, duration = 0, timeout_s = 60;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint32_t rs = 0x9e3779b9;
static uint32_t xrand(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 17;
    rs ^= rs << 5;
    return rs;
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int ws_send(int fd, int op, const char *data, size_t n)
{
    uint8_t b[4096];
    size_t h = 0;
    if (n > sizeof b - 14)
        return -1;
    b[h++] = 0x80 | (uint8_t)op;
    if (n < 126)
        b[h++] = 0x80 | (uint8_t)n;
    else {
        b[h++] = 0x80 | 126;
        b[h++] = (uint8_t)(n >> 8);
        b[h++] = (uint8_t)n;
    }
    uint32_t m = xrand();
    uint8_t mk[4] = {(uint8_t)m, (uint8_t)(m >> 8), (uint8_t)(m >> 16), (uint8_t)(m >> 24)};
    memcpy(b + h, mk, 4);
    h += 4;
    for (size_t i = 0; i < n; i++)
        b[h + i] = (uint8_t)data[i] ^ mk[i & 3];
    return write_all(fd, b, h + n);
}

/* inbound buffer */
static char *ib;
static size_t ilen, icap = 1 << 20;
static double deadline;
static volatile sig_atomic_t g_stop;
static void on_term(int sig) { g_stop = 1; }

/* read more bytes; -1 on error/EOF/timeout */
static int fill(int fd)
{
    if (ilen == icap) {
        icap *= 2;
        ib = realloc(ib, icap);
        if (!ib)
            return -1;
    }
    for (;;) {
        if (g_stop)
            return -1;
        double left = deadline - now_s();
        if (left <= 0) {
            fprintf(stderr, "wsreplay[%s]: timeout\n", label);
            return -1;
        }
        struct pollfd pf = {fd, POLLIN, 0};
        int r = poll(&pf, 1, (int)(left * 1000) + 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            continue;
        ssize_t n = recv(fd, ib + ilen, icap - ilen, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "wsreplay[%s]: connection %s\n", label, n == 0 ? "closed" : strerror(errno));
            return -1;
        }
        ilen += (size_t)n;
        return 0;
    }
}

typedef struct {
    uint64_t events, gaps, dups, dropped, last_seq, synced_seq, other;
    bool synced;
} replay_stats;

static uint64_t parse_u64(const char *p, const char *end)
{
    uint64_t v = 0;
    while (p < end && *p >= '0' && *p <= '9')
        v = v * 10 + (uint64_t)(*p++ - '0');
    return v;
}

static const char *last_memmem(const char *h, size_t hn, const char *n, size_t nn)
{
    if (hn < nn)
        return NULL;
    for (const char *p = h + hn - nn;; p--) {
        if (*p == *n && !memcmp(p, n, nn))
            return p;
        if (p == h)
            return NULL;
    }
}

/* one text message; returns 1 on synced, 2 on ready, 0 otherwise, -1 fatal */
static int on_msg(replay_stats *st, const char *p, size_t n)
{
    if (n > 15 && !memcmp(p, "{\"type\":\"event\"", 15)) {
        st->events++;
        const char *q = last_memmem(p, n, ",\"seq\":", 7);
        if (q) {
            uint64_t seq = parse_u64(q + 7, p + n);
            if (seq <= st->last_seq)
                st->dups++;
            else if (st->last_seq && seq != st->last_seq + 1)
                st->gaps++;
            else if (!st->last_seq && seq != (uint64_t)since + 1)
                st->gaps++;
            st->last_seq = seq;
        }
        return 0;
    }
    const char *ty = memmem(p, n, "\"type\":\"", 8);
    if (!ty)
        return -1;
    ty += 8;
    size_t rest = n - (size_t)(ty - p);
    if (rest >= 7 && !memcmp(ty, "synced\"", 7)) {
        const char *q = memmem(p, n, "\"seq\":", 6);
        st->synced_seq = q ? parse_u64(q + 6, p + n) : 0;
        st->synced = true;
        return 1;
    }
    if (rest >= 6 && !memcmp(ty, "ready\"", 6))
        return 2;
    if (rest >= 3 && !memcmp(ty, "ok\"", 3))
        return 0;
    if (rest >= 8 && !memcmp(ty, "dropped\"", 8)) {
        const char *q = memmem(p, n, "\"count\":", 8);
        if (q)
            st->dropped += parse_u64(q + 8, p + n);
        return 0;
    }
    st->other++;
    if (st->other <= 3)
        fprintf(stderr, "wsreplay[%s]: unexpected: %.*s\n", label, (int)(n > 300 ? 300 : n), p);
    if (rest >= 6 && !memcmp(ty, "error\"", 6))
        return -1;
    return 0;
}

/* parse complete frames from ib; returns 1 synced, 2 ready, 0 need more, -1 fatal */
static char *msgbuf;
static size_t mlen, mcap;
static int parse(int fd, replay_stats *st, size_t *off)
{
    for (;;) {
        size_t avail = ilen - *off;
        uint8_t *b = (uint8_t *)ib + *off;
        if (avail < 2)
            return 0;
        int fin = b[0] & 0x80, op = b[0] & 0x0f;
        uint64_t len = b[1] & 0x7f;
        size_t h = 2;
        if (len == 126) {
            if (avail < 4)
                return 0;
            len = (uint64_t)b[2] << 8 | b[3];
            h = 4;
        } else if (len == 127) {
            if (avail < 10)
                return 0;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | b[2 + i];
            h = 10;
        }
        if (b[1] & 0x80)
            return -1; /* server frames are never masked */
        if (avail < h + len)
            return 0;
        const char *pl = (const char *)b + h;
        *off += h + (size_t)len;
        int r = 0;
        if (op == 1 || op == 0) {
            if (fin && op == 1 && mlen == 0)
                r = on_msg(st, pl, (size_t)len);
            else {
                if (mlen + len > mcap) {
                    mcap = (mlen + len) * 2;
                    msgbuf = realloc(msgbuf, mcap);
                }
                memcpy(msgbuf + mlen, pl, (size_t)len);
                mlen += (size_t)len;
                if (fin) {
                    r = on_msg(st, msgbuf, mlen);
                    mlen = 0;
                }
            }
        } else if (op == 9) {
            if (ws_send(fd, 10, pl, (size_t)len) < 0)
                return -1;
        } else if (op == 8) {
            fprintf(stderr, "wsreplay[%s]: close frame code %d\n", label,
                    len >= 2 ? (int)((uint8_t)pl[0] << 8 | (uint8_t)pl[1]) : 0);
            return -1;
        }
        if (r != 0)
            return r;
    }
}

/* one replay on a fresh connection: 0 ok (synced), -1 failure */
static int one_replay(replay_stats *st, double *secs)
{
    memset(st, 0, sizeof *st);
    ilen = mlen = 0;
    deadline = now_s() + (double)timeout_s;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1, rcv = 4 << 20;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        fprintf(stderr, "wsreplay[%s]: connect: %s\n", label, strerror(errno));
        close(fd);
        return -1;
    }
    uint8_t key[16];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)xrand();
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char k64[32];
    size_t o = 0;
    for (int i = 0; i < 16; i += 3) {
        uint32_t v = key[i] << 16 | (i + 1 < 16 ? key[i + 1] << 8 : 0) | (i + 2 < 16 ? key[i + 2] : 0);
        k64[o++] = t[(v >> 18) & 63];
        k64[o++] = t[(v >> 12) & 63];
        k64[o++] = i + 1 < 16 ? t[(v >> 6) & 63] : '=';
        k64[o++] = i + 2 < 16 ? t[v & 63] : '=';
    }
    k64[o] = 0;
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Protocol: herald.v1\r\n\r\n",
                     path, host, port, k64);
    int rc = -1;
    if (write_all(fd, req, (size_t)n) < 0)
        goto out;
    char *eoh;
    for (;;) {
        if (fill(fd) < 0)
            goto out;
        if ((eoh = memmem(ib, ilen, "\r\n\r\n", 4)))
            break;
    }
    if (ilen < 12 || memcmp(ib + 9, "101", 3)) {
        fprintf(stderr, "wsreplay[%s]: handshake: %.*s\n", label, (int)(eoh - ib), ib);
        goto out;
    }
    size_t off = (size_t)(eoh + 4 - ib);
    int r;
    while ((r = parse(fd, st, &off)) == 0)
        if (fill(fd) < 0)
            goto out;
    if (r != 2) {
        fprintf(stderr, "wsreplay[%s]: no ready frame\n", label);
        goto out;
    }
    char sub[512];
    n = snprintf(sub, sizeof sub, "{\"type\":\"subscribe\",\"id\":\"r\",\"subject\":\"%s\",\"since\":%ld}",
                 subject, since);
    double t0 = now_s();
    if (ws_send(fd, 1, sub, (size_t)n) < 0)
        goto out;
    for (;;) {
        r = parse(fd, st, &off);
        if (r == 1)
            break;
        if (r < 0)
            goto out;
        /* compact consumed bytes */
        if (off > 0) {
            memmove(ib, ib + off, ilen - off);
            ilen -= off;
            off = 0;
        }
        if (fill(fd) < 0)
            goto out;
    }
    *secs = now_s() - t0;
    rc = 0;
out:
    close(fd);
    return rc;
}

int main(int argc, char **argv)
{
    static struct option lo[] = {{"host", 1, 0, 'h'},    {"port", 1, 0, 'p'},     {"path", 1, 0, 'P'},
                                 {"subject", 1, 0, 's'}, {"since", 1, 0, 'n'},    {"loops", 1, 0, 'l'},
                                 {"duration", 1, 0, 'd'}, {"timeout", 1, 0, 't'}, {"label", 1, 0, 'L'},
                                 {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'h': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'P': path = optarg; break;
        case 's': subject = optarg; break;
        case 'n': since = atol(optarg); break;
        case 'l': loops = atol(optarg); break;
        case 'd': duration = atol(optarg); break;
        case 't': timeout_s = atol(optarg); break;
        case 'L': label = optarg; break;
        default:
            fprintf(stderr, "usage: wsreplay [--host H] [--port P] [--path /v1/ws] [--subject S] [--since N]\n"
                            "  [--loops N (0 = until --duration)] [--duration S] [--timeout S] [--label T]\n");
            return 2;
        }
    }
    rs ^= (uint32_t)getpid() * 2654435761u;
    ib = malloc(icap);
    double start = now_s(), total_secs = 0, min_s = 1e9, max_s = 0;
    uint64_t events = 0, gaps = 0, dups = 0, dropped = 0, mismatches = 0, last_synced = 0;
    long done = 0, failed = 0, interrupted = 0;
    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    for (;;) {
        if (g_stop)
            break;
        if (loops > 0 && done + failed >= loops)
            break;
        if (loops == 0 && now_s() - start >= (double)duration)
            break;
        replay_stats st;
        double secs = 0;
        int r = one_replay(&st, &secs);
        events += st.events;
        gaps += st.gaps;
        dups += st.dups;
        dropped += st.dropped;
        if (r == 0) {
            done++;
            total_secs += secs;
            if (secs < min_s)
                min_s = secs;
            if (secs > max_s)
                max_s = secs;
            last_synced = st.synced_seq;
            /* since 0 on a pattern covering the stream: one event per stored seq */
            if (st.events != st.synced_seq - (uint64_t)since || st.last_seq > st.synced_seq)
                mismatches++;
        } else if (g_stop) {
            interrupted++;
        } else {
            failed++;
            fprintf(stderr, "wsreplay[%s]: replay failed after %" PRIu64 " events (last seq %" PRIu64 ")\n",
                    label, st.events, st.last_seq);
            if (loops == 0)
                usleep(100000);
        }
    }
    printf("RESULT tool=wsreplay label=%s replays=%ld failed=%ld interrupted=%ld events=%" PRIu64 " secs=%.3f rate=%.0f"
           " min_s=%.3f max_s=%.3f synced_seq=%" PRIu64 " gaps=%" PRIu64 " dups=%" PRIu64 " dropped=%" PRIu64
           " count_mismatch=%" PRIu64 "\n",
           label, done, failed, interrupted, events, total_secs, total_secs > 0 ? (double)events / total_secs : 0,
           done ? min_s : 0, max_s, last_synced, gaps, dups, dropped, mismatches);
    return failed == 0 && done > 0 ? 0 : 1;
}
