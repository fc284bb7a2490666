/* ws_session: a herald.v1 session and its requests (see the header). */
#include "herald/ws_session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "herald/clock.h"
#include "herald/frame.h"
#include "herald/log.h"
#include "herald/resume.h"
#include "herald/subject.h"
#include "herald/wsproto.h"

#define EXPIRY_TIMER_MAX_S 86400 /* longest single expiry timer; re-armed when it fires */

/* ---- small helpers --------------------------------------------------------- */

static int64_t wall_now(void)
{
    return (int64_t)time(NULL);
}

void ws_auth_failure(const ws_env *env, const char *reason)
{
    const char *labels[] = {reason};
    metrics_inc_labels(env->m_auth_fail, labels, 1);
}

static void free_roles(session *s)
{
    for (size_t i = 0; i < s->nroles; i++)
        free(s->roles[i]);
    free(s->roles);
    s->roles = NULL;
    s->nroles = 0;
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
void session_close(session *s, int code, const char *reason, const char *label, bool discard)
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
    if (atomic_load(&s->env->stopping)) {
        int64_t left = (atomic_load(&s->env->deadline) - clock_now_ms()) / 1000;
        secs = left < 1 ? 1 : left < 5 ? (int)left : 5;
    }
    ws_io_close_within(s, secs);
    ws_io_want_write(s);
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
    if (s->q.bytes > (size_t)s->env->cfg->ws_max_queue_bytes * 2) {
        metrics_add(s->env->m_slow, 1);
        session_close(s, WS_CLOSE_SLOW_CONSUMER, "slow consumer", "slow_consumer", true);
        return;
    }
    ws_io_want_write(s);
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
        left_s += s->env->cfg->jwt_leeway_s;
        int64_t at = now + (left_s > 0 ? left_s * 1000 : 0);
        if (at < next)
            next = at;
    }
    if (next == INT64_MAX)
        return;
    int64_t d = next - now;
    ws_io_set_timer(s, d > 0 ? d : 1);
}
void session_timer(session *s)
{
    if (s->close_code)
        return;
    int64_t now = clock_now_ms();
    if (s->auth_deadline && now >= s->auth_deadline) {
        ws_auth_failure(s->env, "auth_timeout");
        send_error(s, NULL, "unauthorized", "authentication timed out", NULL);
        session_close(s, WS_CLOSE_UNAUTHORIZED, "authentication timeout", "auth_timeout", false);
        return;
    }
    if (s->exp && wall_now() >= s->exp + s->env->cfg->jwt_leeway_s) {
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
        s->pong_deadline = now + (int64_t)s->env->cfg->ws_ping_timeout_s * 1000;
        s->next_ping = 0;
        ws_io_want_write(s);
    }
    schedule(s);
}

void session_pong(session *s)
{
    s->pong_deadline = 0;
    s->next_ping = clock_now_ms() + (int64_t)s->env->cfg->ws_ping_interval_s * 1000;
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
    ws_env *w = s->env;
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
void session_on_sub_ready(void *ctx, hub_sub *hs, bool ok, int64_t gap_first_seq)
{
    session *s = hub_sub_owner(hs);
    sub_entry *e = entry_of(s, hs);
    if (e) {
        if (ok) {
            e->pending = false;
            s->nready++;
            metrics_add(s->env->m_subs, 1);
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
void session_on_synced(void *ctx, hub_sub *hs, uint64_t seq)
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
size_t session_on_room(void *ctx, hub_sub *hs)
{
    session *s = hub_sub_owner(hs);
    size_t max = (size_t)s->env->cfg->ws_max_queue_bytes;
    if (s->close_code || s->q.bytes >= max / 2)
        return 0;
    return max / 2 - s->q.bytes;
}
/* The queue drained: let paused replays read on. */
void session_wrote(session *s)
{
    if (!s->nreplaying || s->close_code ||
        s->q.bytes >= (size_t)s->env->cfg->ws_max_queue_bytes / 2)
        return;
    for (size_t i = 0; i < s->nsubs; i++)
        if (s->subs[i].replaying)
            hub_sub_pump(s->subs[i].hs);
}
/* hub callback: one event for one subscription. */
void session_on_deliver(void *ctx, hub_sub *hs, frame *f)
{
    session *s = hub_sub_owner(hs);
    ws_env *w = s->env;
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
    ws_io_want_write(s);
}
/* hub callback: events lost before fan-out (server overload). */
void session_on_lost(void *ctx, hub_sub *hs, uint64_t n)
{
    session *s = hub_sub_owner(hs);
    if (s->close_code)
        return;
    s->dropped_pending += n;
    metrics_add(s->env->m_dropped, (int64_t)n);
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
hjwt_result ws_verify_token(const ws_env *w, const char *token, size_t len, hjwt_principal *p)
{
    memset(p, 0, sizeof *p);
    if (!w->cfg->jwt)
        return HJWT_BAD_SIGNATURE;
    return hjwt_verify(w->cfg->jwt, token, len, wall_now(), p);
}
/* Install a verified principal (takes its contents). Returns false on OOM. */
static bool adopt_principal(session *s, hjwt_principal *p)
{
    perms_set *ps =
        perms_set_new(s->env->cfg->perms, (const char *const *)p->roles, p->n_roles, p->claims);
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
    s->perms = perms_set_new(s->env->cfg->perms, anon, 1, NULL);
    if (!s->perms)
        return false;
    s->authed = true;
    s->anonymous = true;
    return true;
}
static void handle_auth(session *s, const wsreq *r)
{
    ws_env *w = s->env;
    hjwt_principal p;
    hjwt_result res = ws_verify_token(w, r->token, r->token_len, &p);
    if (res != HJWT_OK) {
        ws_auth_failure(w, hjwt_result_str(res));
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
        ws_auth_failure(w, "sub_mismatch");
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

/* ---- requests ---------------------------------------------------------------- */

static void handle_subscribe(session *s, const wsreq *r)
{
    ws_env *w = s->env;
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
    hub_sub *hs = hub_subscribe(s->shard, r->subject, stream, r->has_since ? &since : NULL, s);
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
    ws_env *w = s->env;
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
    const hr_rate *rl = &s->env->cfg->ws_messages_per_session;
    if (!rl->on)
        return true;
    if (tbucket_take(&s->bucket, &(tbucket_rate){rl->rate_per_s, rl->burst}, clock_now_ms())) {
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
void session_message(session *s, const char *buf, size_t len, bool binary)
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

/* ---- lifecycle --------------------------------------------------------------- */

void session_init(session *s, ws_env *env, hub_shard *shard, struct lws *wsi, void *thr,
                  const char *ip)
{
    memset(s, 0, sizeof *s);
    s->env = env;
    s->shard = shard;
    s->wsi = wsi;
    s->thr = thr;
    s->live = true;
    snprintf(s->id, sizeof s->id, "%llx%06llx", (unsigned long long)wall_now(),
             (unsigned long long)((atomic_fetch_add(&env->next_session, 1) + 1) & 0xffffff));
    snprintf(s->ip, sizeof s->ip, "%s", ip);
    metrics_add(env->m_sessions, 1);
    const hr_rate *rl = &env->cfg->ws_messages_per_session;
    tbucket_init(&s->bucket, &(tbucket_rate){rl->rate_per_s, rl->burst}, clock_now_ms());
    s->next_ping = clock_now_ms() + (int64_t)env->cfg->ws_ping_interval_s * 1000;
}

void session_open(session *s, const char *token, hjwt_principal *verified)
{
    ws_env *w = s->env;
    if (atomic_load(&w->stopping)) {
        session_close(s, WS_CLOSE_GOING_AWAY, "server shutting down", "shutdown", true);
        return;
    }
    if (token) {
        hjwt_principal p;
        hjwt_result res;
        if (verified) {
            p = *verified; /* verified at the upgrade */
            memset(verified, 0, sizeof *verified);
            res = HJWT_OK;
        } else {
            res = ws_verify_token(w, token, strlen(token), &p);
        }
        if (res != HJWT_OK || !adopt_principal(s, &p)) {
            /* Checked at the upgrade already; this is the rare race (expiry). */
            hjwt_principal_clear(&p);
            ws_auth_failure(w, res == HJWT_OK ? "internal" : hjwt_result_str(res));
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
    schedule(s);
}

void session_end(session *s)
{
    if (!s->live)
        return;
    ws_env *w = s->env;
    s->live = false;
    while (s->nsubs)
        remove_sub(s, &s->subs[s->nsubs - 1]);
    free(s->subs);
    wsq_free(&s->q);
    free(s->rx);
    free(s->sub);
    free_roles(s);
    perms_set_free(s->perms);
    metrics_add(w->m_sessions, -1);
    const char *labels[] = {s->close_label ? s->close_label : "client"};
    metrics_inc_labels(w->m_closed, labels, 1);
}
