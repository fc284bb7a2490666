/* ws: the lws glue — contexts, service threads, the acceptor, upgrades
 * and the socket side of sessions (see ws.h; sessions: ws_session.h). */
#include "herald/ws.h"

#include <errno.h>
#include <limits.h>
#include <libwebsockets.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "herald/clientip.h"
#include "herald/clock.h"
#include "herald/frame.h"
#include "herald/http_reply.h"
#include "herald/hub.h"
#include "herald/lifecycle.h"
#include "herald/log.h"
#include "herald/netutil.h"
#include "herald/perms.h"
#include "herald/ws_limits.h"
#include "herald/ws_session.h"
#include "herald/wsproto.h"
#include "herald/wsqueue.h"

_Static_assert(FRAME_PRE == LWS_PRE, "frame.h's FRAME_PRE must equal LWS_PRE");

#define TOKEN_MAX          8192
#define WS_BATCH_MAX       (64 * 1024) /* bytes coalesced into one write */
#define HTTP_PROTOCOL_NAME "http-only" /* lws's protocols[0]; never a session */

typedef struct ws_thread ws_thread;

/* One service thread: its own lws context, its sessions and its hub
 * shard. With one thread lws listens itself; with more, the acceptor
 * thread hands each new connection to one of them (lws 4.1.6 as Debian
 * builds it sets SO_REUSEPORT only for its own SMP threads, which it does
 * not have). Everything here but `done` and the handed-over fds belongs to
 * that thread. */
/* An upgrade admitted at CONFIRM_UPGRADE, waiting for its session (same
 * thread, moments later). It already holds its place in the connection
 * limits, so upgrades racing on other threads see it, and carries the
 * principal verified there. Matched by connection (newest first) and the
 * token by its text, so a reused connection pointer can never take another
 * client's principal; one whose session never comes is released by the
 * sweep. */
typedef struct admission {
    struct lws *wsi;
    char ip[64];
    char *token; /* NULL: no token on the upgrade */
    hjwt_principal p;
    int64_t at_ms;
    struct admission *next;
} admission;

struct ws_thread {
    ws_server *srv;
    int idx;
    struct lws_context *ctx;
    hub_shard *shard;
    pthread_t thread;
    bool started;
    _Atomic bool done;               /* set by the thread on exit (then srv->done_cv) */
    bool closing_all;                /* 1001 sent to everyone */
    lws_sorted_usec_list_t stop_sul; /* wakes the loop at ws_stop's deadline */
    bool stop_armed;
    session *sessions;
    size_t nsessions;
    unsigned char *batch; /* LWS_PRE + WS_BATCH_MAX: this thread's write buffer */
    admission *admitted;  /* upgrades admitted, sessions not started yet */
    pthread_mutex_t fd_lock;
    int fds[256]; /* accepted connections waiting to be adopted (under fd_lock) */
    size_t nfds;
};

/* Owned by main (ws_start / ws_free). `env` is what sessions share. */
struct ws_server {
    ws_env env;
    ws_limits *limits;
    hub *hub;
    int nthreads;
    ws_thread *thr[HUB_MAX_SHARDS];
    char iface[64];
    int listen_fd;  /* the acceptor's (more than one thread), else -1 */
    int fd_ceiling; /* an accepted descriptor numbered this high is refused at once */
    pthread_t acceptor;
    bool acceptor_started;
    pthread_mutex_t done_mu; /* with done_cv: ws_stop waits for the threads */
    pthread_cond_t done_cv;  /* CLOCK_MONOTONIC; signalled as each thread exits */
};

/* ---- the session's side of the connection (ws_session.h) --------------------- */

void ws_io_want_write(session *s)
{
    lws_callback_on_writable(s->wsi);
}

void ws_io_set_timer(session *s, int64_t ms)
{
    lws_set_timer_usecs(s->wsi, (lws_usec_t)ms * 1000);
}

void ws_io_close_within(session *s, int secs)
{
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, secs);
}

/* ---- upgrades ------------------------------------------------------------------ */

/* The client address herald believes for an upgrade: the peer, or behind
 * http.trusted_proxies the right-most untrusted X-Forwarded-For entry (lws
 * joins repeated header lines with ","). */
static void client_ip(ws_server *w, struct lws *wsi, char *out, size_t cap)
{
    char peer[CIP_TEXT_MAX] = "";
    lws_get_peer_simple(wsi, peer, sizeof peer);
    const hr_config *cfg = w->env.cfg;
    if (!cfg->ntrusted_proxies || !cip_trusted(cfg->trusted_proxies, cfg->ntrusted_proxies, peer)) {
        cip_client(NULL, 0, peer, NULL, out, cap);
        return;
    }
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_X_FORWARDED_FOR);
    char *xff = n > 0 && n < 8192 ? malloc((size_t)n + 1) : NULL;
    if (xff && lws_hdr_copy(wsi, xff, n + 1, WSI_TOKEN_X_FORWARDED_FOR) < 0) {
        free(xff);
        xff = NULL;
    }
    cip_client(cfg->trusted_proxies, cfg->ntrusted_proxies, peer, xff, out, cap);
    free(xff);
}
static void admission_free(admission *a)
{
    hjwt_principal_clear(&a->p);
    free(a->token);
    free(a);
}
/* This connection's admission (the newest for it), taken off the list. */
static admission *take_admission(ws_thread *t, struct lws *wsi)
{
    for (admission **pp = &t->admitted; *pp; pp = &(*pp)->next)
        if ((*pp)->wsi == wsi) {
            admission *a = *pp;
            *pp = a->next;
            return a;
        }
    return NULL;
}
/* Release admissions whose session never came (the connection died
 * between); all of them when `all`. */
static void sweep_admissions(ws_thread *t, bool all)
{
    int64_t old = clock_now_ms() - 10000;
    for (admission **pp = &t->admitted; *pp;) {
        admission *a = *pp;
        if (!all && a->at_ms > old) {
            pp = &a->next;
            continue;
        }
        *pp = a->next;
        ws_limits_release(t->srv->limits, a->ip);
        admission_free(a);
    }
}
/* Token offered on the upgrade request: header, then cookie, then query.
 * Returns a malloc'ed token or NULL. An Authorization header that is not a
 * usable "Bearer <token>" (another scheme, nothing after Bearer, a tab) is
 * a bad token, returned as "" so the caller refuses it (contract §3): never
 * an anonymous session. */
static char *upgrade_token(ws_server *w, struct lws *wsi)
{
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n > 0 && n < TOKEN_MAX + 16) {
        char *buf = malloc((size_t)n + 1);
        if (!buf || lws_hdr_copy(wsi, buf, n + 1, WSI_TOKEN_HTTP_AUTHORIZATION) <= 0 ||
            strncasecmp(buf, "Bearer ", 7) != 0) {
            free(buf);
            return strdup("");
        }
        const char *tok = buf + 7;
        while (*tok == ' ')
            tok++;
        memmove(buf, tok, strlen(tok) + 1);
        return buf;
    } else if (n >= TOKEN_MAX + 16) {
        return strdup("x"); /* oversized: refused as invalid */
    }
    if (w->env.cfg->ws_auth_cookie) {
        n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_COOKIE);
        if (n > 0) {
            char *hdr = malloc((size_t)n + 1), *val = malloc((size_t)n + 1);
            if (hdr && val && lws_hdr_copy(wsi, hdr, n + 1, WSI_TOKEN_HTTP_COOKIE) > 0 &&
                wsproto_cookie_value(hdr, w->env.cfg->ws_auth_cookie, val, (size_t)n + 1)) {
                free(hdr);
                return val;
            }
            free(hdr);
            free(val);
        }
    }
    if (w->env.cfg->ws_query_token) {
        char *buf = malloc(TOKEN_MAX + 16);
        const char *v = buf ? lws_get_urlarg_by_name(wsi, "token=", buf, TOKEN_MAX + 16) : NULL;
        if (v && *v) {
            char *t = strdup(v);
            free(buf);
            return t;
        }
        free(buf);
    }
    return NULL;
}
/* Refuse an upgrade with an HTTP/1.1 problem+json response, then close.
 * (lws_return_http_status answers "HTTP/1.0" at this stage, which strict
 * WebSocket clients reject as a protocol error instead of a status.) */
static int http_status(struct lws *wsi, unsigned int code, const char *msg, const char *client)
{
    /* Refused upgrades name the client herald believed (behind trusted
     * proxies: the X-Forwarded-For address, which per-IP limits use). */
    log_info("websocket upgrade refused", "{s:i, s:s, s:s}", "status", (int)code, "reason", msg,
             "client", client && *client ? client : "unknown");
    unsigned char buf[LWS_PRE + 768];
    int n = http_reply_problem_raw((char *)buf + LWS_PRE, sizeof buf - LWS_PRE, (int)code,
                                   "upgrade-refused", msg, NULL, NULL);
    if (n < 0)
        return -1;
    lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_HTTP_HEADERS);
    return -1;
}
static int confirm_checks(ws_thread *t, struct lws *wsi, const char *ip, admission *a);

/* The upgrade request: path, limits, Origin, subprotocol, token. */
static int confirm_upgrade(ws_thread *t, struct lws *wsi)
{
    ws_server *w = t->srv;
    char ip[CIP_TEXT_MAX] = "";
    client_ip(w, wsi, ip, sizeof ip);
    char path[64] = "";
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) >= (int)sizeof path ||
        lws_hdr_copy(wsi, path, sizeof path, WSI_TOKEN_GET_URI) < 0 || strcmp(path, "/v1/ws") != 0)
        return http_status(wsi, HTTP_STATUS_NOT_FOUND, "no such WebSocket path", ip);
    if (atomic_load(&w->env.stopping))
        return http_status(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, "shutting down", ip);
    /* Take a place in the limits now, so upgrades racing on other threads
     * see it. */
    const char *why = NULL;
    unsigned over = ws_limits_take(w->limits, ip, &why);
    if (over)
        return http_status(wsi, over, why, ip);
    admission *a = calloc(1, sizeof *a);
    int refused = a ? confirm_checks(t, wsi, ip, a)
                    : http_status(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, "out of memory", ip);
    if (refused) {
        ws_limits_release(w->limits, ip); /* and no per-IP entry left behind */
        if (a)
            admission_free(a);
        return refused;
    }
    /* ESTABLISHED follows on this thread: it finds its place held and the
     * token verified. */
    a->wsi = wsi;
    snprintf(a->ip, sizeof a->ip, "%s", ip);
    a->at_ms = clock_now_ms();
    a->next = t->admitted;
    t->admitted = a;
    return 0;
}

/* Origin, subprotocol and token checks of the upgrade. */
static int confirm_checks(ws_thread *t, struct lws *wsi, const char *ip, admission *a)
{
    ws_server *w = t->srv;
    int n;
    n = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);
    if (w->env.cfg->allowed_origins && n > 0) {
        char *origin = malloc((size_t)n + 1);
        bool ok = origin && lws_hdr_copy(wsi, origin, n + 1, WSI_TOKEN_ORIGIN) >= 0 &&
                  wsproto_origin_allowed(origin, w->env.cfg->allowed_origins,
                                         w->env.cfg->nallowed_origins);
        free(origin);
        if (!ok) {
            ws_auth_failure(&w->env, "origin");
            return http_status(wsi, HTTP_STATUS_FORBIDDEN, "origin not allowed", ip);
        }
    }
    n = lws_hdr_total_length(wsi, WSI_TOKEN_PROTOCOL);
    if (n > 0) {
        char *prot = malloc((size_t)n + 1);
        /* lws binds the first offered name that any protocol has: offering
         * our internal "http-only" would bind that one and drop the link. */
        bool ok = prot && lws_hdr_copy(wsi, prot, n + 1, WSI_TOKEN_PROTOCOL) >= 0 &&
                  wsproto_offers_protocol(prot, "herald.v1") &&
                  !wsproto_offers_protocol(prot, HTTP_PROTOCOL_NAME);
        free(prot);
        if (!ok)
            return http_status(wsi, HTTP_STATUS_BAD_REQUEST, "subprotocol herald.v1 required", ip);
    }
    char *token = upgrade_token(w, wsi);
    if (token) {
        a->token = token; /* freed with the admission */
        hjwt_result res = ws_verify_token(&w->env, token, strlen(token), &a->p);
        if (res != HJWT_OK) {
            ws_auth_failure(&w->env, hjwt_result_str(res));
            return http_status(wsi, HTTP_STATUS_UNAUTHORIZED, "invalid token", ip);
        }
    }
    return 0;
}
static int cb_http(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len)
{
    ws_thread *t = lws_context_user(lws_get_context(wsi));
    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return confirm_upgrade(t, wsi);
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION: /* lws accepted it (one thread) */
        return (int)(intptr_t)in >= t->srv->fd_ceiling ? -1 : 0;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return -1; /* never serve WebSocket sessions on the HTTP protocol */
    case LWS_CALLBACK_HTTP:
        lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, "WebSocket endpoint: /v1/ws");
        return -1;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* ---- sessions on this thread ------------------------------------------------------- */

/* ESTABLISHED: the session takes over its admission (its place in the
 * limits and the principal verified at the upgrade). */
static void session_start(ws_thread *t, session *s, struct lws *wsi)
{
    ws_server *w = t->srv;
    char ip[64];
    client_ip(w, wsi, ip, sizeof ip);
    session_init(s, &w->env, t->shard, wsi, t, ip);
    admission *adm = take_admission(t, wsi);
    if (!adm) { /* not seen at the upgrade (cannot happen): take a place now */
        ws_limits_force(w->limits, s->ip);
    } else if (strcmp(adm->ip, s->ip) != 0) { /* keep the place under the session's address */
        ws_limits_release(w->limits, adm->ip);
        ws_limits_force(w->limits, s->ip);
    }
    s->next = t->sessions;
    if (t->sessions)
        t->sessions->prev = s;
    t->sessions = s;
    t->nsessions++;
    char *token = atomic_load(&w->env.stopping) ? NULL : upgrade_token(w, wsi);
    bool verified = token && adm && adm->token && strcmp(adm->token, token) == 0;
    session_open(s, token, verified ? &adm->p : NULL);
    free(token);
    if (adm)
        admission_free(adm);
}

static void session_cleanup(session *s)
{
    if (!s->live)
        return;
    ws_thread *t = s->thr;
    session_end(s);
    ws_limits_release(t->srv->limits, s->ip);
    if (s->prev)
        s->prev->next = s->next;
    else
        t->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    t->nsessions--;
}

/* Write what is queued. Frames are framed by herald itself and coalesced
 * into one raw write (one send(2)) per callback: per-frame writes made the
 * kernel's send path the bottleneck of a fan-out. A frame too large for the
 * batch goes out alone, without a copy. */
static int on_writeable(session *s)
{
    if (s->close_sent)
        return 0; /* lws flushing the close: write nothing */
    struct lws *wsi = s->wsi;
    if (s->ping_due) {
        /* lws drops empty PONGs before the callback: ping with a payload. */
        unsigned char buf[LWS_PRE + 8];
        memcpy(buf + LWS_PRE, "herald", 6);
        s->ping_due = false;
        if (lws_write(wsi, buf + LWS_PRE, 6, LWS_WRITE_PING) < 0)
            return -1;
        lws_callback_on_writable(wsi);
        return 0;
    }
    frame *f = wsq_peek(&s->q);
    if (!f) {
        if (s->close_code) {
            lws_close_reason(wsi, (enum lws_close_status)s->close_code,
                             (unsigned char *)s->close_reason, strlen(s->close_reason));
            s->close_sent = true;
            return -1;
        }
        return 0;
    }
    if (f->len + 10 > WS_BATCH_MAX && !(f->is_event && s->dropped_pending)) {
        int n = lws_write(wsi, frame_payload(f), f->len, LWS_WRITE_TEXT);
        wsq_pop(&s->q);
        if (n < 0)
            return -1;
    } else {
        unsigned char *out = ((ws_thread *)s->thr)->batch + LWS_PRE;
        size_t n = 0;
        while ((f = wsq_peek(&s->q))) {
            if (f->is_event && s->dropped_pending) {
                frame *d = frame_dropped(s->dropped_pending);
                bool ok =
                    d && wsproto_frame_append(out, WS_BATCH_MAX, &n, frame_payload(d), d->len);
                frame_release(d);
                if (!ok && n)
                    break;
                s->dropped_pending = 0;
                continue;
            }
            if (!wsproto_frame_append(out, WS_BATCH_MAX, &n, frame_payload(f), f->len))
                break;
            wsq_pop(&s->q);
        }
        if (n && lws_write(wsi, out, n, LWS_WRITE_RAW) < 0)
            return -1;
    }
    if (s->q.len || s->close_code)
        lws_callback_on_writable(wsi);
    session_wrote(s);
    return 0;
}
static int on_receive(session *s, const char *in, size_t len)
{
    struct lws *wsi = s->wsi;
    if (lws_is_first_fragment(wsi)) {
        s->rxlen = 0;
        s->rx_binary = lws_frame_is_binary(wsi);
    }
    size_t max = (size_t)s->env->cfg->ws_max_frame_bytes;
    if (s->rxlen + len > max) {
        static const char reason[] = "frame too large";
        lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, (unsigned char *)reason,
                         sizeof reason - 1);
        s->close_label = "too_large";
        s->close_code = WS_CLOSE_TOO_LARGE;
        s->close_sent = true;
        return -1;
    }
    if (!s->rx_binary) { /* binary content is never looked at */
        if (s->rxlen + len > s->rxcap) {
            size_t cap = s->rxcap ? s->rxcap : 1024;
            while (cap < s->rxlen + len)
                cap *= 2;
            char *nb = realloc(s->rx, cap);
            if (!nb)
                return -1;
            s->rx = nb;
            s->rxcap = cap;
        }
        memcpy(s->rx + s->rxlen, in, len);
    }
    s->rxlen += len;
    if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0) {
        session_message(s, s->rx, s->rxlen, s->rx_binary);
        s->rxlen = 0;
    }
    return 0;
}
static void stopping(ws_thread *t);

static void close_all(ws_thread *t)
{
    if (t->closing_all)
        return;
    t->closing_all = true;
    for (session *s = t->sessions; s; s = s->next)
        session_close(s, WS_CLOSE_GOING_AWAY, "server shutting down", "shutdown", true);
}
/* Connections the acceptor handed to this thread: lws takes them as if
 * its own listener had accepted them (it closes one it cannot take). */
static void adopt_handed(ws_thread *t)
{
    int fds[256];
    pthread_mutex_lock(&t->fd_lock);
    size_t n = t->nfds;
    memcpy(fds, t->fds, n * sizeof *fds);
    t->nfds = 0;
    pthread_mutex_unlock(&t->fd_lock);
    for (size_t i = 0; i < n; i++)
        lws_adopt_socket(t->ctx, fds[i]);
}
static int cb_herald(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len)
{
    session *s = user;
    ws_thread *t = lws_context_user(lws_get_context(wsi));
    ws_server *w = t->srv;
    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        /* Delivered to the vhost's default protocol, which the "default"
         * pvo makes herald.v1; `user` is not a session yet. */
        return confirm_upgrade(t, wsi);
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        /* One coalesced callback per wake-up, for this protocol only. */
        adopt_handed(t);
        if (t->shard)
            hub_process(t->shard);
        if (atomic_load(&w->env.stopping))
            stopping(t);
        return 0;
    case LWS_CALLBACK_ESTABLISHED:
        session_start(t, s, wsi);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        return on_receive(s, in, len);
    case LWS_CALLBACK_RECEIVE_PONG:
        session_pong(s);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return on_writeable(s);
    case LWS_CALLBACK_TIMER:
        session_timer(s);
        return 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (!s->close_label)
            s->close_label = "client";
        return 0;
    case LWS_CALLBACK_CLOSED:
        if (s)
            session_cleanup(s);
        return 0;
    default:
        return 0;
    }
}
static const struct lws_protocols protocols[] = {
    {HTTP_PROTOCOL_NAME, cb_http, 0, 0, 0, NULL, 0},
    /* rx_buffer_size bounds one send of a batch (WS_BATCH_MAX fits). */
    {"herald.v1", cb_herald, sizeof(session), 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* herald.v1 is the default protocol when the client offers none. */
static const struct lws_protocol_vhost_options pvo_default = {NULL, NULL, "default", "1"};
static const struct lws_protocol_vhost_options pvo = {NULL, &pvo_default, "herald.v1", ""};

/* Disable lws's built-in idle hangup: herald runs its own ping timer. */
static const lws_retry_bo_t no_idle = {0};

static void on_lws_log(int level, const char *line)
{
    log_library(HLOG_DEBUG, "websocket", line);
}
static void wake(void *ctx)
{
    ws_thread *t = ctx;
    lws_cancel_service(t->ctx);
}
static void stop_due(lws_sorted_usec_list_t *sul)
{
    (void)sul; /* nothing to do: lws_service returns and the loop sees the deadline */
}

/* Shutdown seen on this thread: say goodbye to every session and make sure
 * the loop runs again at the deadline even if no socket has anything to
 * say (lws_service otherwise waits for an event). */
static void stopping(ws_thread *t)
{
    close_all(t);
    if (!t->stop_armed) {
        int64_t left = atomic_load(&t->srv->env.deadline) - clock_now_ms();
        lws_sul_schedule(t->ctx, 0, &t->stop_sul, stop_due,
                         (lws_usec_t)(left > 0 ? left : 0) * 1000 + 1000);
        t->stop_armed = true;
    }
}

static void *service_main(void *arg)
{
    ws_thread *t = arg;
    ws_server *w = t->srv;
    int64_t last_sweep = clock_now_ms();
    for (;;) {
        if (lws_service(t->ctx, 0) < 0)
            break;
        if (clock_now_ms() - last_sweep > 10000) {
            if (t->idx == 0)
                ws_limits_sweep(w->limits);
            sweep_admissions(t, false);
            last_sweep = clock_now_ms();
        }
        if (atomic_load(&w->env.stopping)) {
            stopping(t);
            if (t->nsessions == 0 || clock_now_ms() >= atomic_load(&w->env.deadline))
                break;
        }
    }
    if (t->stop_armed)
        lws_sul_cancel(&t->stop_sul);
    pthread_mutex_lock(&w->done_mu);
    atomic_store(&t->done, true);
    pthread_cond_broadcast(&w->done_cv);
    pthread_mutex_unlock(&w->done_mu);
    return NULL;
}
static void thread_free(ws_thread *t)
{
    if (!t)
        return;
    if (t->ctx)
        lws_context_destroy(t->ctx);
    for (size_t i = 0; i < t->nfds; i++)
        close(t->fds[i]);
    sweep_admissions(t, true);
    pthread_mutex_destroy(&t->fd_lock);
    free(t->batch);
    free(t);
}
/* More than one service thread: accept on the one listening socket and
 * hand each connection to the threads in turn (limits stay global: the
 * counters they use are shared). */
static void *acceptor_main(void *arg)
{
    ws_server *w = arg;
    struct pollfd p = {w->listen_fd, POLLIN, 0};
    unsigned next = 0;
    while (!atomic_load(&w->env.stopping)) {
        if (poll(&p, 1, 200) <= 0)
            continue;
        for (;;) {
            int fd = accept4(w->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                    usleep(50 * 1000); /* out of descriptors: let closes catch up */
                break;
            }
            if (fd >= w->fd_ceiling) {
                close(fd); /* out of descriptors but HTTP's: refuse */
                continue;
            }
            ws_thread *t = w->thr[next++ % (unsigned)w->nthreads];
            pthread_mutex_lock(&t->fd_lock);
            bool taken = t->nfds < sizeof t->fds / sizeof *t->fds;
            if (taken)
                t->fds[t->nfds++] = fd;
            pthread_mutex_unlock(&t->fd_lock);
            if (!taken)
                close(fd); /* that thread is far behind: refuse rather than queue */
            else
                lws_cancel_service(t->ctx);
        }
    }
    return NULL;
}
/* A service thread's lws context on the shared port (not serviced yet). */
static ws_thread *thread_new(ws_server *w, int idx, bool listen, char *err, size_t errlen)
{
    const hr_config *cfg = w->env.cfg;
    ws_thread *t = calloc(1, sizeof *t);
    if (t)
        t->batch = malloc(LWS_PRE + WS_BATCH_MAX);
    if (!t || !t->batch) {
        snprintf(err, errlen, "out of memory");
        thread_free(t);
        return NULL;
    }
    t->srv = w;
    t->idx = idx;
    pthread_mutex_init(&t->fd_lock, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = listen ? cfg->ws_listen.port : CONTEXT_PORT_NO_LISTEN;
    if (w->iface[0])
        info.iface = w->iface;
    info.protocols = protocols;
    info.pvo = &pvo;
    info.retry_and_idle_policy = &no_idle;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
    info.max_http_header_data = TOKEN_MAX + 8192;
    info.user = t;
    t->ctx = lws_create_context(&info);
    if (!t->ctx) {
        snprintf(err, errlen, "cannot start the WebSocket listener on %s:%d", cfg->ws_listen.host,
                 cfg->ws_listen.port);
        thread_free(t);
        return NULL;
    }
    return t;
}
hr_status ws_start(ws_server **out, const ws_deps *deps, char *err, size_t errlen)
{
    *out = NULL;
    ws_server *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return HR_ERR_NOMEM;
    }
    w->env.deps = *deps;
    w->env.cfg = deps->cfg;
    const hr_config *cfg = deps->cfg;
    w->listen_fd = -1;
    pthread_mutex_init(&w->done_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->done_cv, &ca);
    pthread_condattr_destroy(&ca);
    w->limits = ws_limits_new(cfg);
    if (!w->limits) {
        free(w);
        snprintf(err, errlen, "out of memory");
        return HR_ERR_NOMEM;
    }
    w->env.has_anonymous = perms_table_has_role(cfg->perms, "anonymous");
    metrics *m = deps->metrics;
    w->env.m_sessions =
        metrics_cell0(metrics_gauge(m, "herald_ws_sessions", "Open WebSocket sessions.", NULL));
    w->env.m_subs = metrics_cell0(metrics_gauge(m, "herald_ws_subscriptions",
                                                "Confirmed subscriptions of all sessions.", NULL));
    w->env.m_delivered =
        metrics_cell0(metrics_counter(m, "herald_events_delivered_total",
                                      "Events queued to a session (one per receiver).", NULL));
    w->env.m_dropped = metrics_cell0(metrics_counter(m, "herald_events_dropped_total",
                                                     "Events dropped for slow consumers.", NULL));
    w->env.m_slow = metrics_cell0(metrics_counter(m, "herald_slow_consumers_total",
                                                  "Sessions closed as slow consumers.", NULL));
    w->env.m_closed = metrics_counter(m, "herald_ws_sessions_closed_total",
                                      "Closed WebSocket sessions by reason.", "reason");
    w->env.m_auth_fail = metrics_counter(m, "herald_auth_failures_total",
                                         "Refused authentications by reason.", "reason");

    /* Connections that have not upgraded yet are not counted by any limit:
     * refuse one whose descriptor leaves fewer free than the HTTP API's
     * connections and a reserve need (Linux hands out the lowest free
     * number), so a flood of them cannot starve the HTTP listener. */
    struct rlimit rl;
    w->fd_ceiling = INT_MAX;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)INT_MAX) {
        int64_t c = (int64_t)rl.rlim_cur - 32 - cfg->max_http_connections;
        w->fd_ceiling = c < 16 ? 16 : (int)c;
    }

    int n = cfg->ws_threads < 1 ? 1 : cfg->ws_threads;
    if (n > HUB_MAX_SHARDS)
        n = HUB_MAX_SHARDS;
    /* One thread: lws listens (it reports a busy port only in its own log:
     * probe it first for a clear message). More: the acceptor's socket. */
    w->listen_fd = net_listen(&cfg->ws_listen, err, errlen);
    hr_status st = HR_ERR_LISTEN;
    if (w->listen_fd < 0)
        goto fail;
    if (n == 1) {
        close(w->listen_fd);
        w->listen_fd = -1;
    }

    lws_set_log_level(LLL_ERR | LLL_WARN, on_lws_log);
    if (strcmp(cfg->ws_listen.host, "0.0.0.0") != 0 && strcmp(cfg->ws_listen.host, "::") != 0)
        snprintf(w->iface, sizeof w->iface, "%s", cfg->ws_listen.host);
    void *ctxs[HUB_MAX_SHARDS];
    for (; w->nthreads < n; w->nthreads++) {
        w->thr[w->nthreads] = thread_new(w, w->nthreads, n == 1, err, errlen);
        if (!w->thr[w->nthreads])
            goto fail;
        ctxs[w->nthreads] = w->thr[w->nthreads];
    }
    hub_callbacks cb = {wake,
                        session_on_deliver,
                        session_on_lost,
                        session_on_sub_ready,
                        session_on_synced,
                        session_on_room};
    char herr[160] = "";
    st = hub_new(&w->hub, deps->bus, m, n, &cb, ctxs, herr, sizeof herr);
    if (st != HR_OK) {
        snprintf(err, errlen, "cannot start the hub: %s", herr);
        goto fail;
    }
    for (int i = 0; i < n; i++)
        w->thr[i]->shard = hub_shard_at(w->hub, i);
    st = HR_ERR_IO;
    for (int i = 0; i < n; i++) {
        if (pthread_create(&w->thr[i]->thread, NULL, service_main, w->thr[i]) != 0) {
            snprintf(err, errlen, "cannot start a WebSocket service thread");
            ws_stop(w, clock_now_ms());
            ws_free(w);
            return st;
        }
        w->thr[i]->started = true;
    }
    if (w->listen_fd >= 0) {
        if (pthread_create(&w->acceptor, NULL, acceptor_main, w) != 0) {
            snprintf(err, errlen, "cannot start the WebSocket acceptor thread");
            ws_stop(w, clock_now_ms());
            ws_free(w);
            return st;
        }
        w->acceptor_started = true;
    }
    *out = w;
    return HR_OK;
fail:
    hub_free(w->hub);
    for (int i = 0; i < w->nthreads; i++)
        thread_free(w->thr[i]);
    if (w->listen_fd >= 0)
        close(w->listen_fd);
    ws_limits_free(w->limits);
    free(w);
    return st;
}
void ws_stop(ws_server *w, int64_t deadline_ms)
{
    if (!w || !w->nthreads || !w->thr[0]->ctx)
        return;
    atomic_store(&w->env.deadline, deadline_ms);
    atomic_store(&w->env.stopping, true);
    if (w->acceptor_started) { /* no new connections: it sees `stopping` within 200 ms */
        pthread_join(w->acceptor, NULL);
        w->acceptor_started = false;
    }
    if (w->listen_fd >= 0) {
        close(w->listen_fd);
        w->listen_fd = -1;
    }
    /* Wake every service thread once: it closes its sessions with 1001 and
     * arms a timer for the deadline, then exits when they are gone or the
     * deadline passed. Should a thread still run a second after it, wake it
     * again every 10 ms (a safety net; lws_cancel_service is idempotent). */
    for (int i = 0; i < w->nthreads; i++)
        if (w->thr[i]->started)
            lws_cancel_service(w->thr[i]->ctx);
    pthread_mutex_lock(&w->done_mu);
    for (;;) {
        bool all_done = true;
        for (int i = 0; i < w->nthreads; i++)
            if (w->thr[i]->started && !atomic_load(&w->thr[i]->done)) {
                all_done = false;
                if (clock_now_ms() > deadline_ms + 1000)
                    lws_cancel_service(w->thr[i]->ctx);
            }
        if (all_done)
            break;
        int64_t until =
            clock_now_ms() > deadline_ms + 1000 ? clock_now_ms() + 10 : deadline_ms + 1000;
        struct timespec ts = deadline_timespec(until);
        pthread_cond_timedwait(&w->done_cv, &w->done_mu, &ts);
    }
    pthread_mutex_unlock(&w->done_mu);
    for (int i = 0; i < w->nthreads; i++)
        if (w->thr[i]->started) {
            pthread_join(w->thr[i]->thread, NULL);
            w->thr[i]->started = false;
        }
    hub_close(w->hub); /* no wake-up may reach the contexts being destroyed */
    for (int i = 0; i < w->nthreads; i++) {
        lws_context_destroy(w->thr[i]->ctx); /* closes what is left: sessions leave the hub */
        w->thr[i]->ctx = NULL;
    }
    hub_shutdown(w->hub);
}
void ws_free(ws_server *w)
{
    if (!w)
        return;
    ws_stop(w, clock_now_ms()); /* a no-op once stopped */
    hub_free(w->hub);
    for (int i = 0; i < w->nthreads; i++)
        thread_free(w->thr[i]);
    ws_limits_free(w->limits);
    pthread_mutex_destroy(&w->done_mu);
    pthread_cond_destroy(&w->done_cv);
    free(w);
}
