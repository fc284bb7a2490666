/* ws: lws context, service thread, sessions and the herald.v1 protocol. */
#include "herald/ws.h"

#include <errno.h>
#include <libwebsockets.h>
#include <poll.h>
#include <sys/socket.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "herald/frame.h"
#include "herald/hub.h"
#include "herald/log.h"
#include "herald/netutil.h"
#include "herald/perms.h"
#include "herald/resume.h"
#include "herald/subject.h"
#include "herald/wsproto.h"
#include "herald/wsqueue.h"

_Static_assert(FRAME_PRE == LWS_PRE, "frame.h's FRAME_PRE must equal LWS_PRE");

#define TOKEN_MAX          8192
#define WS_BATCH_MAX       (64 * 1024) /* bytes coalesced into one write */
#define HTTP_PROTOCOL_NAME "http-only" /* lws's protocols[0]; never a session */
#define EXPIRY_TIMER_MAX_S 86400       /* longest single expiry timer; re-armed when it fires */

typedef struct session session;
typedef struct ws_thread ws_thread;

/* One subscription of a session. */
typedef struct {
    hub_sub *hs;
    char *pending_id; /* id of the subscribe awaiting its reply, or (since) its `synced` */
    bool pending;
    bool replaying; /* since: `synced` not sent yet */
} sub_entry;

/* Per-connection state: lws allocates it zeroed (per_session_data_size) and
 * frees it after LWS_CALLBACK_CLOSED; everything it points to is freed in
 * session_cleanup on the service thread. `live` tells a session that went
 * through ESTABLISHED from one lws refused before that. */
struct session {
    ws_server *srv;
    ws_thread *thr; /* the service thread that owns it */
    struct lws *wsi;
    bool live;
    char id[24];
    char ip[64];
    bool authed;    /* a session may serve requests (token or anonymous) */
    bool anonymous; /* authed without a token */
    char *sub;      /* token `sub`, NULL when absent / anonymous */
    char **roles;
    size_t nroles;
    int64_t exp; /* token exp (wall seconds), 0 = none */
    perms_set *perms;
    sub_entry *subs;
    size_t nsubs, subs_cap;
    size_t nready;            /* subscriptions counted in the gauge */
    size_t nreplaying;        /* subscriptions replaying (paced by the queue) */
    wsqueue q;                /* outbound: shared frames */
    uint64_t dropped_pending; /* events dropped since the last `dropped` notice */
    /* inbound message assembly */
    char *rx;
    size_t rxlen, rxcap;
    bool rx_binary;
    /* closing */
    int close_code; /* non-zero: close after the queue drained */
    const char *close_reason;
    const char *close_label; /* metrics reason */
    bool close_sent;
    /* timers, monotonic ms; 0 = unset */
    int64_t auth_deadline;
    int64_t next_ping;
    int64_t pong_deadline;
    bool ping_due;
    /* rate limit (limits.ws_messages_per_session) */
    double tokens;
    int64_t refill_ms;
    int strikes;
    session *prev, *next;
};

/* Per-client-IP state for limits.*_per_ip: open sessions and the upgrade
 * token bucket. Shared by the service threads under ws_server.ip_lock
 * (upgrades and closes only); freed when idle. */
typedef struct ip_entry {
    char ip[64];
    int64_t sessions;
    double tokens;
    int64_t refill_ms;
    struct ip_entry *next;
} ip_entry;

#define IP_BUCKETS 1024

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
    _Atomic bool done; /* set by the thread on exit */
    bool closing_all;  /* 1001 sent to everyone */
    session *sessions;
    size_t nsessions;
    unsigned char *batch; /* LWS_PRE + WS_BATCH_MAX: this thread's write buffer */
    admission *admitted;  /* upgrades admitted, sessions not started yet */
    pthread_mutex_t fd_lock;
    int fds[256]; /* accepted connections waiting to be adopted (under fd_lock) */
    size_t nfds;
};

struct ws_server {
    ws_deps deps;
    const hr_config *cfg;
    hub *hub;
    int nthreads;
    ws_thread *thr[HUB_MAX_SHARDS];
    pthread_mutex_t ip_lock; /* the per-IP table: upgrades and closes, never per event */
    ip_entry *ips[IP_BUCKETS];
    _Atomic int64_t nsessions; /* all threads' (limits.max_ws_connections) */
    _Atomic uint64_t next_session;
    _Atomic bool stopping;    /* set by ws_stop */
    _Atomic int64_t deadline; /* ws_stop's deadline */
    bool has_anonymous;
    char iface[64];
    int listen_fd; /* the acceptor's (more than one thread), else -1 */
    pthread_t acceptor;
    bool acceptor_started;
    metrics_cell *m_sessions, *m_subs, *m_delivered, *m_dropped, *m_slow;
    metrics_family *m_closed, *m_auth_fail;
};

/* ---- small helpers --------------------------------------------------------- */

static int64_t wall_now(void)
{
    return (int64_t)time(NULL);
}

static void auth_failure(ws_server *w, const char *reason)
{
    const char *labels[] = {reason};
    metrics_inc_labels(w->m_auth_fail, labels, 1);
}

static void free_roles(session *s)
{
    for (size_t i = 0; i < s->nroles; i++)
        free(s->roles[i]);
    free(s->roles);
    s->roles = NULL;
    s->nroles = 0;
}

/* ---- per-IP limits ---------------------------------------------------------- */

/* The client address herald believes for an upgrade: the peer, or behind
 * http.trusted_proxies the right-most untrusted X-Forwarded-For entry (lws
 * joins repeated header lines with ","). */
static void client_ip(ws_server *w, struct lws *wsi, char *out, size_t cap)
{
    char peer[CIP_TEXT_MAX] = "";
    lws_get_peer_simple(wsi, peer, sizeof peer);
    const hr_config *cfg = w->cfg;
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

static ip_entry **ip_slot(ws_server *w, const char *ip)
{
    ip_entry **pp = &w->ips[net_hash_str(ip) % IP_BUCKETS];
    while (*pp && strcmp((*pp)->ip, ip) != 0)
        pp = &(*pp)->next;
    return pp;
}

static ip_entry *ip_get(ws_server *w, const char *ip)
{
    ip_entry **pp = ip_slot(w, ip);
    if (!*pp) {
        ip_entry *e = calloc(1, sizeof *e);
        if (!e)
            return NULL;
        snprintf(e->ip, sizeof e->ip, "%s", ip);
        e->tokens = w->cfg->ws_upgrades_per_ip.burst;
        e->refill_ms = clock_now_ms();
        *pp = e;
    }
    return *pp;
}

/* Drop an entry that holds no session and whose bucket is full again. */
static void ip_maybe_free(ws_server *w, ip_entry *e)
{
    const hr_rate *rl = &w->cfg->ws_upgrades_per_ip;
    if (e->sessions > 0)
        return;
    if (rl->on) {
        double t = e->tokens + (double)(clock_now_ms() - e->refill_ms) * rl->rate_per_s / 1000.0;
        if (t < rl->burst)
            return;
    }
    ip_entry **pp = ip_slot(w, e->ip);
    *pp = e->next;
    free(e);
}

/* limits.ws_upgrades_per_ip and max_ws_connections_per_ip: 0 = allowed,
 * else the HTTP status to refuse with. */
static unsigned ip_admit(ws_server *w, const char *ip)
{
    const hr_rate *rl = &w->cfg->ws_upgrades_per_ip;
    if (!rl->on && !w->cfg->max_ws_connections_per_ip)
        return 0;
    ip_entry *e = ip_get(w, ip);
    if (!e)
        return 503;
    unsigned refuse = 0;
    if (rl->on) {
        int64_t now = clock_now_ms();
        e->tokens += (double)(now - e->refill_ms) * rl->rate_per_s / 1000.0;
        if (e->tokens > rl->burst)
            e->tokens = rl->burst;
        e->refill_ms = now;
        if (e->tokens < 1.0)
            refuse = 429;
        else
            e->tokens -= 1.0;
    }
    if (!refuse && w->cfg->max_ws_connections_per_ip &&
        e->sessions >= w->cfg->max_ws_connections_per_ip)
        refuse = 429;
    if (refuse)
        ip_maybe_free(w, e);
    else
        e->sessions++; /* its place, held from the upgrade on */
    return refuse;
}

static bool per_ip_limits(const ws_server *w)
{
    return w->cfg->ws_upgrades_per_ip.on || w->cfg->max_ws_connections_per_ip;
}

/* Give back a place in the connection limits (a session ended, or an
 * admitted upgrade never became one). */
static void release_place(ws_server *w, const char *ip)
{
    if (per_ip_limits(w)) {
        pthread_mutex_lock(&w->ip_lock);
        ip_entry **pp = ip_slot(w, ip);
        if (*pp) {
            (*pp)->sessions--;
            ip_maybe_free(w, *pp);
        }
        pthread_mutex_unlock(&w->ip_lock);
    }
    atomic_fetch_sub(&w->nsessions, 1);
}

/* ---- outbound queue ------------------------------------------------------- */

/* After a refresh: drop queued events the new roles no longer allow (they
 * were never delivered, so they are not counted as dropped). */
static bool still_allowed(void *ctx, const frame *f)
{
    session *s = ctx;
    return perms_can_deliver(s->perms, f->subject, f->subject_len);
}

/* ---- closing ---------------------------------------------------------------- */

/* Close after what is queued (or at once, discarding the queue). */
static void session_close(session *s, int code, const char *reason, const char *label, bool discard)
{
    if (s->close_code)
        return;
    s->close_code = code;
    s->close_reason = reason;
    s->close_label = label;
    if (discard)
        wsq_clear(&s->q);
    /* A peer that does not read never gets WRITEABLE: hard deadline (within
     * the shutdown budget when shutting down). */
    int secs = 5;
    if (atomic_load(&s->srv->stopping)) {
        int64_t left = (atomic_load(&s->srv->deadline) - clock_now_ms()) / 1000;
        secs = left < 1 ? 1 : left < 5 ? (int)left : 5;
    }
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, secs);
    lws_callback_on_writable(s->wsi);
}

/* Queue a control frame (takes the reference). Control frames are never
 * dropped, but a client that makes them pile up is a slow consumer too. */
static void session_send(session *s, frame *f)
{
    if (!f)
        return;
    if (s->close_code || !wsq_push(&s->q, f)) {
        frame_release(f);
        return;
    }
    if (s->q.bytes > (size_t)s->srv->cfg->ws_max_queue_bytes * 2) {
        metrics_add(s->srv->m_slow, 1);
        session_close(s, WS_CLOSE_SLOW_CONSUMER, "slow consumer", "slow_consumer", true);
        return;
    }
    lws_callback_on_writable(s->wsi);
}

static void send_error(session *s, const char *id, const char *code, const char *msg,
                       const char *subject)
{
    session_send(s, frame_error(id, code, msg, subject, -1));
}

/* ---- timers ----------------------------------------------------------------- */

static void schedule(session *s)
{
    int64_t now = clock_now_ms(), next = INT64_MAX;
    if (s->auth_deadline)
        next = s->auth_deadline;
    if (s->pong_deadline && s->pong_deadline < next)
        next = s->pong_deadline;
    if (!s->pong_deadline && s->next_ping && s->next_ping < next)
        next = s->next_ping;
    if (s->exp) {
        /* Seconds left, clamped before scaling: hjwt caps exp, but no claim
         * value may overflow here. A far expiry re-arms from on_timer. */
        int64_t left_s = s->exp - wall_now();
        if (left_s > EXPIRY_TIMER_MAX_S)
            left_s = EXPIRY_TIMER_MAX_S;
        left_s += s->srv->cfg->jwt_leeway_s;
        int64_t at = now + (left_s > 0 ? left_s * 1000 : 0);
        if (at < next)
            next = at;
    }
    if (next == INT64_MAX)
        return;
    int64_t d = next - now;
    lws_set_timer_usecs(s->wsi, (lws_usec_t)(d > 0 ? d : 1) * 1000);
}

static void on_timer(session *s)
{
    if (s->close_code)
        return;
    int64_t now = clock_now_ms();
    if (s->auth_deadline && now >= s->auth_deadline) {
        auth_failure(s->srv, "auth_timeout");
        send_error(s, NULL, "unauthorized", "authentication timed out", NULL);
        session_close(s, WS_CLOSE_UNAUTHORIZED, "authentication timeout", "auth_timeout", false);
        return;
    }
    if (s->exp && wall_now() >= s->exp + s->srv->cfg->jwt_leeway_s) {
        send_error(s, NULL, "token_expired", "the token expired", NULL);
        session_close(s, WS_CLOSE_UNAUTHORIZED, "token expired", "token_expired", false);
        return;
    }
    if (s->pong_deadline && now >= s->pong_deadline) {
        session_close(s, WS_CLOSE_PING_TIMEOUT, "ping timeout", "ping_timeout", true);
        return;
    }
    if (!s->pong_deadline && s->next_ping && now >= s->next_ping) {
        s->ping_due = true;
        s->pong_deadline = now + (int64_t)s->srv->cfg->ws_ping_timeout_s * 1000;
        s->next_ping = 0;
        lws_callback_on_writable(s->wsi);
    }
    schedule(s);
}

/* ---- subscriptions -------------------------------------------------------- */

static sub_entry *find_sub(session *s, const char *pattern)
{
    for (size_t i = 0; i < s->nsubs; i++)
        if (strcmp(hub_sub_pattern(s->subs[i].hs), pattern) == 0)
            return &s->subs[i];
    return NULL;
}

static void remove_sub(session *s, sub_entry *e)
{
    ws_server *w = s->srv;
    if (!e->pending) {
        metrics_add(w->m_subs, -1);
        s->nready--;
    }
    if (e->replaying)
        s->nreplaying--;
    free(e->pending_id);
    hub_unsubscribe(e->hs);
    *e = s->subs[--s->nsubs];
}

static sub_entry *entry_of(session *s, hub_sub *hs)
{
    for (size_t i = 0; i < s->nsubs; i++)
        if (s->subs[i].hs == hs)
            return &s->subs[i];
    return NULL;
}

/* hub callback: a pending subscribe finished (with `since`: its replay is
 * set up; a gap is answered history_gap instead of ok). */
static void on_sub_ready(void *ctx, hub_sub *hs, bool ok, int64_t gap_first_seq)
{
    session *s = hub_sub_owner(hs);
    sub_entry *e = entry_of(s, hs);
    if (e) {
        if (ok) {
            e->pending = false;
            s->nready++;
            metrics_add(s->srv->m_subs, 1);
            if (gap_first_seq >= 0)
                session_send(s, frame_error(e->pending_id, "history_gap",
                                            "the stream no longer holds the resume point; "
                                            "replaying from first_seq",
                                            hub_sub_pattern(hs), gap_first_seq));
            else
                session_send(s, frame_ok(e->pending_id));
            if (!e->replaying) {
                free(e->pending_id);
                e->pending_id = NULL;
            }
        } else {
            /* Before `ok`: the subscribe failed. After it (a replay whose
             * stream went away for good): the subscription ends. */
            send_error(s, e->pending_id, "unavailable",
                       e->pending ? "NATS or the history stream is not available; try again"
                                  : "the history stream is no longer available; "
                                    "subscription ended",
                       hub_sub_pattern(hs));
            remove_sub(s, e);
        }
    }
}

/* hub callback: a since-subscription caught up. */
static void on_synced(void *ctx, hub_sub *hs, uint64_t seq)
{
    session *s = hub_sub_owner(hs);
    sub_entry *e = entry_of(s, hs);
    if (!e || !e->replaying)
        return;
    e->replaying = false;
    s->nreplaying--;
    session_send(s, frame_synced(e->pending_id, hub_sub_pattern(hs), seq));
    free(e->pending_id);
    e->pending_id = NULL;
}

/* hub callback: how much a replay may queue now. Replays read on while the
 * queue is below half its limit, so they never push it over by themselves. */
static size_t on_room(void *ctx, hub_sub *hs)
{
    session *s = hub_sub_owner(hs);
    size_t max = (size_t)s->srv->cfg->ws_max_queue_bytes;
    if (s->close_code || s->q.bytes >= max / 2)
        return 0;
    return max / 2 - s->q.bytes;
}

/* The queue drained: let paused replays read on. */
static void pump_replays(session *s)
{
    if (!s->nreplaying || s->close_code ||
        s->q.bytes >= (size_t)s->srv->cfg->ws_max_queue_bytes / 2)
        return;
    for (size_t i = 0; i < s->nsubs; i++)
        if (s->subs[i].replaying)
            hub_sub_pump(s->subs[i].hs);
}

/* hub callback: one event for one subscription. */
static void on_deliver(void *ctx, hub_sub *hs, frame *f)
{
    session *s = hub_sub_owner(hs);
    ws_server *w = s->srv;
    /* The tag says every subject of this subscription is deliverable
     * (perms_deliver_all, computed at subscribe and refresh). */
    if (s->close_code ||
        (!hub_sub_tag(hs) && !perms_can_deliver(s->perms, f->subject, f->subject_len)))
        return;
    uint64_t dropped = 0;
    wsq_result r = wsq_offer_event(&s->q, f, (size_t)w->cfg->ws_max_queue_bytes,
                                   w->cfg->ws_slow_consumer == SLOW_DROP, &dropped);
    if (dropped) {
        s->dropped_pending += dropped;
        metrics_add(w->m_dropped, (int64_t)dropped);
    }
    if (r == WSQ_SLOW) {
        metrics_add(w->m_slow, 1);
        session_close(s, WS_CLOSE_SLOW_CONSUMER, "slow consumer", "slow_consumer", true);
        return;
    }
    if (r != WSQ_QUEUED)
        return;
    metrics_add(w->m_delivered, 1);
    lws_callback_on_writable(s->wsi);
}

/* hub callback: events lost before fan-out (server overload). */
static void on_lost(void *ctx, hub_sub *hs, uint64_t n)
{
    session *s = hub_sub_owner(hs);
    if (s->close_code)
        return;
    s->dropped_pending += n;
    metrics_add(s->srv->m_dropped, (int64_t)n);
}

/* ---- authentication ----------------------------------------------------------- */

static void send_ready(session *s, const char *id)
{
    json_t *o = json_pack("{s:s}", "type", "ready");
    if (!o)
        return;
    if (id)
        json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "session", json_string(s->id));
    if (s->sub)
        json_object_set_new(o, "sub", json_string(s->sub));
    json_t *roles = json_array();
    if (s->anonymous)
        json_array_append_new(roles, json_string("anonymous"));
    for (size_t i = 0; i < s->nroles; i++)
        json_array_append_new(roles, json_string(s->roles[i]));
    json_object_set_new(o, "roles", roles);
    if (s->exp)
        json_object_set_new(o, "expires", json_integer(s->exp));
    session_send(s, frame_from_json(o));
    json_decref(o);
}

static hjwt_result verify_token(ws_server *w, const char *token, size_t len, hjwt_principal *p)
{
    memset(p, 0, sizeof *p);
    if (!w->deps.jwt)
        return HJWT_BAD_SIGNATURE;
    return hjwt_verify(w->deps.jwt, token, len, wall_now(), p);
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
        release_place(t->srv, a->ip);
        admission_free(a);
    }
}

/* Install a verified principal (takes its contents). Returns false on OOM. */
static bool adopt_principal(session *s, hjwt_principal *p)
{
    perms_set *ps =
        perms_set_new(s->srv->cfg->perms, (const char *const *)p->roles, p->n_roles, p->claims);
    if (!ps)
        return false;
    perms_set_free(s->perms);
    s->perms = ps;
    free(s->sub);
    s->sub = p->sub;
    p->sub = NULL;
    free_roles(s);
    s->roles = p->roles;
    s->nroles = p->n_roles;
    p->roles = NULL;
    p->n_roles = 0;
    s->exp = p->exp;
    s->authed = true;
    s->anonymous = false;
    s->auth_deadline = 0;
    return true;
}

static bool become_anonymous(session *s)
{
    static const char *const anon[] = {"anonymous"};
    s->perms = perms_set_new(s->srv->cfg->perms, anon, 1, NULL);
    if (!s->perms)
        return false;
    s->authed = true;
    s->anonymous = true;
    return true;
}

static void handle_auth(session *s, const wsreq *r)
{
    ws_server *w = s->srv;
    hjwt_principal p;
    hjwt_result res = verify_token(w, r->token, r->token_len, &p);
    if (res != HJWT_OK) {
        auth_failure(w, hjwt_result_str(res));
        bool expired = res == HJWT_EXPIRED;
        send_error(s, r->id, expired ? "token_expired" : "unauthorized",
                   expired ? "the token expired" : "invalid token", NULL);
        session_close(s, WS_CLOSE_UNAUTHORIZED, expired ? "token expired" : "unauthorized",
                      expired ? "token_expired" : "unauthorized", false);
        return;
    }
    bool refresh = s->authed && !s->anonymous;
    if (refresh &&
        !((s->sub == NULL && p.sub == NULL) || (s->sub && p.sub && strcmp(s->sub, p.sub) == 0))) {
        hjwt_principal_clear(&p);
        auth_failure(w, "sub_mismatch");
        send_error(s, r->id, "unauthorized", "a refreshed token must have the same sub", NULL);
        session_close(s, WS_CLOSE_UNAUTHORIZED, "unauthorized", "unauthorized", false);
        return;
    }
    if (!adopt_principal(s, &p)) {
        hjwt_principal_clear(&p);
        send_error(s, r->id, "internal", "out of memory", NULL);
        return;
    }
    hjwt_principal_clear(&p);
    /* New roles take effect at once: end what they no longer allow, and
     * drop queued events they no longer let through. */
    wsq_filter_events(&s->q, still_allowed, s);
    for (size_t i = 0; i < s->nsubs;) {
        const char *pat = hub_sub_pattern(s->subs[i].hs);
        if (perms_can_subscribe(s->perms, pat, strlen(pat))) {
            hub_sub_set_tag(s->subs[i].hs, perms_deliver_all(s->perms, pat, strlen(pat)));
            i++;
            continue;
        }
        char *copy = strdup(pat);
        if (s->subs[i].pending)
            send_error(s, s->subs[i].pending_id, "forbidden", "not permitted by the new token",
                       copy);
        else
            send_error(s, NULL, "forbidden", "no longer permitted by the new token", copy);
        free(copy);
        remove_sub(s, &s->subs[i]);
    }
    send_ready(s, r->id);
    schedule(s);
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
    if (w->cfg->ws_auth_cookie) {
        n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_COOKIE);
        if (n > 0) {
            char *hdr = malloc((size_t)n + 1), *val = malloc((size_t)n + 1);
            if (hdr && val && lws_hdr_copy(wsi, hdr, n + 1, WSI_TOKEN_HTTP_COOKIE) > 0 &&
                wsproto_cookie_value(hdr, w->cfg->ws_auth_cookie, val, (size_t)n + 1)) {
                free(hdr);
                return val;
            }
            free(hdr);
            free(val);
        }
    }
    if (w->cfg->ws_query_token) {
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

/* ---- requests ---------------------------------------------------------------- */

static void handle_subscribe(session *s, const wsreq *r)
{
    ws_server *w = s->srv;
    if (!subject_pattern_valid(r->subject, r->subject_len)) {
        send_error(s, r->id, "invalid_subject", "not a valid subject pattern", r->subject);
        return;
    }
    if (!perms_can_subscribe(s->perms, r->subject, r->subject_len)) {
        send_error(s, r->id, "forbidden", "not permitted to subscribe", r->subject);
        return;
    }
    const char *stream =
        resume_history_stream(w->cfg->history, w->cfg->nhistory, r->subject, r->subject_len);
    if (r->has_since && !stream) {
        send_error(s, r->id, "bad_request", "no history stream holds this pattern", r->subject);
        return;
    }
    if (find_sub(s, r->subject)) {
        send_error(s, r->id, "duplicate_subscription", "already subscribed", r->subject);
        return;
    }
    if (s->nsubs >= (size_t)w->cfg->ws_max_subscriptions) {
        send_error(s, r->id, "too_many_subscriptions", "subscription limit reached", r->subject);
        return;
    }
    if (s->nsubs == s->subs_cap) {
        size_t cap = s->subs_cap ? s->subs_cap * 2 : 4;
        sub_entry *ns = realloc(s->subs, cap * sizeof *ns);
        if (!ns) {
            send_error(s, r->id, "internal", "out of memory", r->subject);
            return;
        }
        s->subs = ns;
        s->subs_cap = cap;
    }
    hub_since since = {r->since_last, (uint64_t)r->since};
    hub_sub *hs = hub_subscribe(s->thr->shard, r->subject, stream, r->has_since ? &since : NULL, s);
    if (!hs) {
        send_error(s, r->id, "internal", "out of memory", r->subject);
        return;
    }
    sub_entry *e = &s->subs[s->nsubs++];
    memset(e, 0, sizeof *e);
    e->hs = hs;
    if (r->has_since) {
        e->replaying = true;
        s->nreplaying++;
    }
    hub_sub_set_tag(hs, perms_deliver_all(s->perms, r->subject, r->subject_len));
    if (hub_sub_is_ready(hs)) {
        s->nready++;
        metrics_add(w->m_subs, 1);
        session_send(s, frame_ok(r->id));
    } else {
        e->pending = true;
    }
    if (e->pending || e->replaying)
        e->pending_id = r->id ? strdup(r->id) : NULL;
}

static void handle_unsubscribe(session *s, const wsreq *r)
{
    sub_entry *e = find_sub(s, r->subject);
    if (!e) {
        send_error(s, r->id, "bad_request", "not subscribed to this pattern", r->subject);
        return;
    }
    if (e->pending) /* its subscribe is answered now, with the unsubscribe */
        send_error(s, e->pending_id, "bad_request", "unsubscribed before confirmation", r->subject);
    remove_sub(s, e);
    session_send(s, frame_ok(r->id));
}

static void handle_publish(session *s, const wsreq *r)
{
    ws_server *w = s->srv;
    if (!subject_valid(r->subject, r->subject_len)) {
        send_error(s, r->id, "invalid_subject", "not a valid subject (no wildcards)", r->subject);
        return;
    }
    if (!perms_can_publish(s->perms, r->subject, r->subject_len)) {
        send_error(s, r->id, "forbidden", "not permitted to publish", r->subject);
        return;
    }
    if (bus_get_state(w->deps.bus) != BUS_CONNECTED) {
        send_error(s, r->id, "unavailable", "NATS is not connected", r->subject);
        return;
    }
    char *text = NULL;
    const void *data;
    size_t len;
    const char *ctype;
    if (r->data) {
        text = json_dumps(r->data, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
        if (!text) {
            send_error(s, r->id, "internal", "cannot encode data", r->subject);
            return;
        }
        data = text;
        len = strlen(text);
        ctype = "application/json";
    } else {
        data = r->bin;
        len = r->bin_len;
        ctype = "application/octet-stream";
    }
    natsMsg *m = NULL;
    natsStatus st = natsMsg_Create(&m, r->subject, NULL, data, (int)len);
    if (st == NATS_OK)
        st = natsMsgHeader_Set(m, "Content-Type", ctype);
    if (st == NATS_OK)
        st = natsConnection_PublishMsg(bus_conn(w->deps.bus), m);
    natsMsg_Destroy(m);
    free(text);
    if (st != NATS_OK) {
        send_error(s, r->id, "unavailable", "NATS did not take the message", r->subject);
        return;
    }
    session_send(s, frame_ok(r->id));
}

/* limits.ws_messages_per_session: token bucket; persistent abuse closes. */
static bool rate_ok(session *s, const char *id)
{
    const hr_rate *rl = &s->srv->cfg->ws_messages_per_session;
    if (!rl->on)
        return true;
    int64_t now = clock_now_ms();
    s->tokens += (double)(now - s->refill_ms) * rl->rate_per_s / 1000.0;
    if (s->tokens > rl->burst)
        s->tokens = rl->burst;
    s->refill_ms = now;
    if (s->tokens >= 1.0) {
        s->tokens -= 1.0;
        s->strikes = 0;
        return true;
    }
    if (++s->strikes > (rl->burst > 10 ? rl->burst : 10)) {
        send_error(s, id, "rate_limited", "too many messages; closing", NULL);
        session_close(s, WS_CLOSE_RATE_LIMITED, "rate limited", "rate_limited", false);
    } else {
        send_error(s, id, "rate_limited", "too many messages; slow down", NULL);
    }
    return false;
}

static void handle_message(session *s, const char *buf, size_t len, bool binary)
{
    if (s->close_code)
        return;
    if (binary) {
        if (rate_ok(s, NULL))
            send_error(s, NULL, "bad_request", "binary frames are not supported", NULL);
        return;
    }
    wsreq r;
    char *bad_id = NULL, msg[160];
    if (!wsproto_parse(buf, len, &r, &bad_id, msg, sizeof msg)) {
        if (rate_ok(s, bad_id))
            send_error(s, bad_id, "bad_request", msg, NULL);
        free(bad_id);
        return;
    }
    free(bad_id);
    if (!rate_ok(s, r.id)) {
        wsproto_request_clear(&r);
        return;
    }
    if (!s->authed && r.type != WSREQ_AUTH) {
        send_error(s, r.id, "unauthorized", "authenticate first", NULL);
        wsproto_request_clear(&r);
        return;
    }
    switch (r.type) {
    case WSREQ_AUTH:
        handle_auth(s, &r);
        break;
    case WSREQ_SUBSCRIBE:
        handle_subscribe(s, &r);
        break;
    case WSREQ_UNSUBSCRIBE:
        handle_unsubscribe(s, &r);
        break;
    case WSREQ_PUBLISH:
        handle_publish(s, &r);
        break;
    case WSREQ_PING:
        session_send(s, frame_pong(r.id));
        break;
    }
    wsproto_request_clear(&r);
}

/* ---- session lifecycle ----------------------------------------------------------- */

static void session_start(ws_thread *t, session *s, struct lws *wsi)
{
    ws_server *w = t->srv;
    memset(s, 0, sizeof *s);
    s->srv = w;
    s->thr = t;
    s->wsi = wsi;
    s->live = true;
    snprintf(s->id, sizeof s->id, "%llx%06llx", (unsigned long long)wall_now(),
             (unsigned long long)((atomic_fetch_add(&w->next_session, 1) + 1) & 0xffffff));
    client_ip(w, wsi, s->ip, sizeof s->ip);
    admission *adm = take_admission(t, wsi);
    if (!adm) { /* not seen at the upgrade (cannot happen): take a place now */
        if (per_ip_limits(w)) {
            pthread_mutex_lock(&w->ip_lock);
            ip_entry *e = ip_get(w, s->ip);
            if (e)
                e->sessions++;
            pthread_mutex_unlock(&w->ip_lock);
        }
        atomic_fetch_add(&w->nsessions, 1);
    } else if (strcmp(adm->ip, s->ip) != 0) { /* keep the place under the session's address */
        release_place(w, adm->ip);
        if (per_ip_limits(w)) {
            pthread_mutex_lock(&w->ip_lock);
            ip_entry *e = ip_get(w, s->ip);
            if (e)
                e->sessions++;
            pthread_mutex_unlock(&w->ip_lock);
        }
        atomic_fetch_add(&w->nsessions, 1);
    }
    s->next = t->sessions;
    if (t->sessions)
        t->sessions->prev = s;
    t->sessions = s;
    t->nsessions++;
    metrics_add(w->m_sessions, 1);
    s->tokens = w->cfg->ws_messages_per_session.burst;
    s->refill_ms = clock_now_ms();
    s->next_ping = clock_now_ms() + (int64_t)w->cfg->ws_ping_interval_s * 1000;

    if (atomic_load(&w->stopping)) {
        if (adm)
            admission_free(adm);
        session_close(s, WS_CLOSE_GOING_AWAY, "server shutting down", "shutdown", true);
        return;
    }
    char *token = upgrade_token(w, wsi);
    if (token) {
        hjwt_principal p;
        hjwt_result res;
        if (adm && adm->token && strcmp(adm->token, token) == 0) {
            p = adm->p; /* verified at the upgrade */
            memset(&adm->p, 0, sizeof adm->p);
            res = HJWT_OK;
        } else {
            res = verify_token(w, token, strlen(token), &p);
        }
        free(token);
        if (adm) {
            admission_free(adm);
            adm = NULL;
        }
        if (res != HJWT_OK || !adopt_principal(s, &p)) {
            /* Checked at the upgrade already; this is the rare race (expiry). */
            hjwt_principal_clear(&p);
            auth_failure(w, res == HJWT_OK ? "internal" : hjwt_result_str(res));
            send_error(s, NULL, res == HJWT_EXPIRED ? "token_expired" : "unauthorized",
                       "invalid token", NULL);
            session_close(s, WS_CLOSE_UNAUTHORIZED, "unauthorized", "unauthorized", false);
            return;
        }
        hjwt_principal_clear(&p);
        send_ready(s, NULL);
    } else if (w->has_anonymous && become_anonymous(s)) {
        send_ready(s, NULL);
    } else {
        s->auth_deadline = clock_now_ms() + w->cfg->ws_auth_timeout_ms;
    }
    if (adm)
        admission_free(adm);
    schedule(s);
}

static void session_cleanup(session *s)
{
    if (!s->live)
        return;
    ws_server *w = s->srv;
    ws_thread *t = s->thr;
    s->live = false;
    while (s->nsubs)
        remove_sub(s, &s->subs[s->nsubs - 1]);
    free(s->subs);
    wsq_free(&s->q);
    free(s->rx);
    free(s->sub);
    free_roles(s);
    perms_set_free(s->perms);
    release_place(w, s->ip);
    if (s->prev)
        s->prev->next = s->next;
    else
        t->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    t->nsessions--;
    metrics_add(w->m_sessions, -1);
    const char *labels[] = {s->close_label ? s->close_label : "client"};
    metrics_inc_labels(w->m_closed, labels, 1);
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
        unsigned char *out = s->thr->batch + LWS_PRE;
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
    pump_replays(s);
    return 0;
}

static int on_receive(session *s, const char *in, size_t len)
{
    struct lws *wsi = s->wsi;
    if (lws_is_first_fragment(wsi)) {
        s->rxlen = 0;
        s->rx_binary = lws_frame_is_binary(wsi);
    }
    size_t max = (size_t)s->srv->cfg->ws_max_frame_bytes;
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
        handle_message(s, s->rx, s->rxlen, s->rx_binary);
        s->rxlen = 0;
    }
    return 0;
}

/* ---- lws callbacks ------------------------------------------------------------- */

/* Refuse an upgrade with an HTTP/1.1 problem+json response, then close.
 * (lws_return_http_status answers "HTTP/1.0" at this stage, which strict
 * WebSocket clients reject as a protocol error instead of a status.) */
static int http_status(struct lws *wsi, unsigned int code, const char *msg, const char *client)
{
    /* Refused upgrades name the client herald believed (behind trusted
     * proxies: the X-Forwarded-For address, which per-IP limits use). */
    log_info("websocket upgrade refused", "{s:i, s:s, s:s}", "status", (int)code, "reason", msg,
             "client", client && *client ? client : "unknown");
    const char *title = code == 400   ? "Bad Request"
                        : code == 401 ? "Unauthorized"
                        : code == 403 ? "Forbidden"
                        : code == 404 ? "Not Found"
                        : code == 429 ? "Too Many Requests"
                                      : "Service Unavailable";
    char body[384];
    int bl = snprintf(body, sizeof body,
                      "{\"type\":\"urn:herald:problem:upgrade-refused\",\"title\":\"%s\","
                      "\"status\":%u,\"detail\":\"%s\"}",
                      title, code, msg);
    unsigned char buf[LWS_PRE + 768];
    int n = snprintf((char *)buf + LWS_PRE, sizeof buf - LWS_PRE,
                     "HTTP/1.1 %u %s\r\nContent-Type: application/problem+json\r\n"
                     "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                     code, title, bl, body);
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
    if (atomic_load(&w->stopping))
        return http_status(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, "shutting down", ip);
    /* Take a place in the limits now (check and count in one step), so
     * upgrades racing on other threads see it. */
    int64_t max = w->cfg->max_ws_connections;
    if (atomic_fetch_add(&w->nsessions, 1) >= max && max) {
        atomic_fetch_sub(&w->nsessions, 1);
        return http_status(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, "too many connections", ip);
    }
    unsigned over = 0;
    if (per_ip_limits(w)) {
        pthread_mutex_lock(&w->ip_lock);
        over = ip_admit(w, ip);
        pthread_mutex_unlock(&w->ip_lock);
    }
    if (over) {
        atomic_fetch_sub(&w->nsessions, 1);
        return http_status(wsi, 429, "too many connections from this address", ip);
    }
    admission *a = calloc(1, sizeof *a);
    int refused = a ? confirm_checks(t, wsi, ip, a)
                    : http_status(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, "out of memory", ip);
    if (refused) {
        release_place(w, ip); /* and no per-IP entry left behind */
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
    if (w->cfg->allowed_origins && n > 0) {
        char *origin = malloc((size_t)n + 1);
        bool ok = origin && lws_hdr_copy(wsi, origin, n + 1, WSI_TOKEN_ORIGIN) >= 0 &&
                  wsproto_origin_allowed(origin, w->cfg->allowed_origins, w->cfg->nallowed_origins);
        free(origin);
        if (!ok) {
            auth_failure(w, "origin");
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
        hjwt_result res = verify_token(w, token, strlen(token), &a->p);
        if (res != HJWT_OK) {
            auth_failure(w, hjwt_result_str(res));
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
        if (atomic_load(&w->stopping))
            close_all(t);
        return 0;
    case LWS_CALLBACK_ESTABLISHED:
        session_start(t, s, wsi);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        return on_receive(s, in, len);
    case LWS_CALLBACK_RECEIVE_PONG:
        s->pong_deadline = 0;
        s->next_ping = clock_now_ms() + (int64_t)w->cfg->ws_ping_interval_s * 1000;
        schedule(s);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return on_writeable(s);
    case LWS_CALLBACK_TIMER:
        on_timer(s);
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
    log_library(LOG_DEBUG, "websocket", line);
}

static void wake(void *ctx)
{
    ws_thread *t = ctx;
    lws_cancel_service(t->ctx);
}

/* Free per-IP entries that hold nothing any more (refused or rate-limited
 * clients that went away). */
static void ip_sweep(ws_server *w)
{
    pthread_mutex_lock(&w->ip_lock);
    for (size_t i = 0; i < IP_BUCKETS; i++)
        for (ip_entry *e = w->ips[i], *n; e; e = n) {
            n = e->next;
            ip_maybe_free(w, e);
        }
    pthread_mutex_unlock(&w->ip_lock);
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
                ip_sweep(w);
            sweep_admissions(t, false);
            last_sweep = clock_now_ms();
        }
        if (atomic_load(&w->stopping)) {
            close_all(t);
            if (t->nsessions == 0 || clock_now_ms() >= atomic_load(&w->deadline))
                break;
        }
    }
    atomic_store(&t->done, true);
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
    while (!atomic_load(&w->stopping)) {
        if (poll(&p, 1, 200) <= 0)
            continue;
        for (;;) {
            int fd = accept4(w->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                    usleep(50 * 1000); /* out of descriptors: let closes catch up */
                break;
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
    const hr_config *cfg = w->cfg;
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
    w->deps = *deps;
    w->cfg = deps->cfg;
    const hr_config *cfg = deps->cfg;
    pthread_mutex_init(&w->ip_lock, NULL);
    w->listen_fd = -1;
    w->has_anonymous = perms_table_has_role(cfg->perms, "anonymous");
    metrics *m = deps->metrics;
    w->m_sessions =
        metrics_cell0(metrics_gauge(m, "herald_ws_sessions", "Open WebSocket sessions.", NULL));
    w->m_subs = metrics_cell0(metrics_gauge(m, "herald_ws_subscriptions",
                                            "Confirmed subscriptions of all sessions.", NULL));
    w->m_delivered =
        metrics_cell0(metrics_counter(m, "herald_events_delivered_total",
                                      "Events queued to a session (one per receiver).", NULL));
    w->m_dropped = metrics_cell0(metrics_counter(m, "herald_events_dropped_total",
                                                 "Events dropped for slow consumers.", NULL));
    w->m_slow = metrics_cell0(metrics_counter(m, "herald_slow_consumers_total",
                                              "Sessions closed as slow consumers.", NULL));
    w->m_closed = metrics_counter(m, "herald_ws_sessions_closed_total",
                                  "Closed WebSocket sessions by reason.", "reason");
    w->m_auth_fail = metrics_counter(m, "herald_auth_failures_total",
                                     "Refused authentications by reason.", "reason");

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
    hub_callbacks cb = {wake, on_deliver, on_lost, on_sub_ready, on_synced, on_room};
    w->hub = hub_new(deps->bus, m, n, &cb, ctxs);
    st = HR_ERR_NOMEM;
    if (!w->hub) {
        snprintf(err, errlen, "cannot start the hub");
        goto fail;
    }
    for (int i = 0; i < n; i++)
        w->thr[i]->shard = hub_shard_at(w->hub, i);
    st = HR_ERR_IO;
    for (int i = 0; i < n; i++) {
        if (pthread_create(&w->thr[i]->thread, NULL, service_main, w->thr[i]) != 0) {
            snprintf(err, errlen, "cannot start a WebSocket service thread");
            ws_stop(w, 0);
            ws_free(w);
            return st;
        }
        w->thr[i]->started = true;
    }
    if (w->listen_fd >= 0) {
        if (pthread_create(&w->acceptor, NULL, acceptor_main, w) != 0) {
            snprintf(err, errlen, "cannot start the WebSocket acceptor thread");
            ws_stop(w, 0);
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
    pthread_mutex_destroy(&w->ip_lock);
    free(w);
    return st;
}

void ws_stop(ws_server *w, int timeout_ms)
{
    if (!w || !w->nthreads || !w->thr[0]->ctx)
        return;
    atomic_store(&w->deadline, clock_now_ms() + timeout_ms);
    atomic_store(&w->stopping, true);
    if (w->acceptor_started) { /* no new connections: it sees `stopping` within 200 ms */
        pthread_join(w->acceptor, NULL);
        w->acceptor_started = false;
    }
    if (w->listen_fd >= 0) {
        close(w->listen_fd);
        w->listen_fd = -1;
    }
    /* Keep every service loop turning until its sessions said goodbye. */
    for (;;) {
        bool all_done = true;
        for (int i = 0; i < w->nthreads; i++)
            if (w->thr[i]->started && !atomic_load(&w->thr[i]->done)) {
                all_done = false;
                lws_cancel_service(w->thr[i]->ctx);
            }
        if (all_done)
            break;
        usleep(10 * 1000);
    }
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
    ws_stop(w, 0);
    hub_free(w->hub);
    for (int i = 0; i < w->nthreads; i++)
        thread_free(w->thr[i]);
    for (size_t i = 0; i < IP_BUCKETS; i++)
        for (ip_entry *e = w->ips[i], *n; e; e = n) {
            n = e->next;
            free(e);
        }
    pthread_mutex_destroy(&w->ip_lock);
    free(w);
}
