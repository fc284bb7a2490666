/* ingest: core / JetStream publishing of inbound events, the stream lookup
 * list and the PubAck wait table. */
#include "herald/ingest.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "herald/log.h"
#include "herald/netutil.h"
#include "herald/subject.h"

#define STREAMS_REFRESH_MS   60000 /* contract §4: a stream created later is used within a minute */
#define WAIT_BUCKETS         1024
#define JS_MAX_PENDING       8192 /* outstanding async publishes */
#define JS_STALL_WAIT        50   /* ms an MHD worker may block when MaxPending is reached */
#define STREAM_NAME_MAX      256
#define FORCED_REFRESH_MS    1000 /* delivery "jetstream": re-read the list at most this often */
#define ACK_HANDLER_GRACE_MS 5000 /* shutdown: wait for ack handlers already running */

/* A timeout leaves the outcome open (contract §4 amended in the note): the
 * bytes may have reached NATS. Say so; a retry with the same delivery id is
 * deduplicated by JetStream and by ce-id for core subscribers. */
#define OUTCOME_UNKNOWN_CORE                                                                       \
    "NATS did not confirm the publish in time; it may still be delivered (retry with the same "    \
    "delivery id)"
#define OUTCOME_UNKNOWN_JS                                                                         \
    "JetStream did not acknowledge in time; it may still be stored (a retry with the same "        \
    "delivery id is deduplicated)"

/* One stream and the subjects it captures, from $JS.API.STREAM.LIST. */
typedef struct {
    char *name;
    char **subjects;
    size_t nsubjects;
    int64_t dup_window_s; /* duplicate_window in seconds (0 when not reported) */
} stream_info;

typedef struct {
    stream_info *v;
    size_t n;
} stream_list;

typedef struct {
    char *source;
    char *pattern; /* every subject the source's template can render */
} dedup_watch;

struct ingest {
    const hr_config *cfg;
    bus *bus;
    jsCtx *js;
    pthread_mutex_t mu; /* guards waiting, closing and the counters below */
    ingest_op *waiting[WAIT_BUCKETS];
    size_t nwaiting;
    bool closing;
    /* Ops between registration and the end of js_PublishMsgAsync, and ops
     * an ack handler took but has not finished: ingest_drain waits for both
     * to reach 0, so it never answers an op that is about to be published,
     * and nothing touches an op after the HTTP side freed it. */
    int publishing, finishing;
    pthread_cond_t idle_cv;
    /* ingest_drain could not see every running ack handler return: they may
     * still touch g, so ingest_free leaves it allocated (process exit). */
    bool handlers_unsettled;
    /* Which stream captures a subject is answered from a local copy of the
     * stream list, refreshed in the background: no request waits on a
     * lookup round trip, except before the first successful read and right
     * after JetStream refused a publish (the copy is then stale). */
    pthread_mutex_t smu; /* guards the fields below */
    stream_list streams;
    int64_t streams_ms; /* when `streams` was read; 0 = never */
    bool streams_stale;
    int64_t forced_ms; /* last refresh forced by a jetstream-only miss */
    pthread_cond_t refresh_cv;
    pthread_t refresher;
    bool refresher_running, refresher_stop;
    /* Publishes whose stream lookup needs a fresh list (none read yet, stale
     * after a refusal, a jetstream-only miss): their connection is
     * suspended, and the refresher resolves and publishes them after its
     * next read. No MHD worker ever waits on the lookup round trip. */
    ingest_op *lookupq;  /* singly linked through next */
    bool refresh_wanted; /* read the list now, not at the next period */
    bool lookup_closed;  /* ingest_drain began: nothing more is queued */
    int resolving;       /* ops the refresher took from lookupq and has not finished */
    pthread_cond_t resolved_cv;
    /* Core publishes waiting for a flush: one flusher thread flushes once
     * for every publish queued so far (group commit) and resumes them all,
     * so no HTTP worker blocks on a PING/PONG round trip. */
    ingest_op *flushq; /* singly linked through next; guarded by mu */
    pthread_cond_t flush_cv;
    pthread_t flusher;
    bool flusher_running;
    metrics_cell *m_pub_core, *m_pub_js, *m_ack;
    /* Sources whose events a stream may store, checked against every fresh
     * stream list for a duplicate window shorter than senders retry
     * (guarded by smu). */
    dedup_watch *watches;
    size_t nwatches;
    metrics_family *m_dup_window;
};

static size_t ptr_bucket(const void *p)
{
    uintptr_t v = (uintptr_t)p;
    v ^= v >> 17;
    v *= 0x9E3779B97F4A7C15ull;
    return (size_t)(v >> 40) % WAIT_BUCKETS;
}

/* Caller holds mu. */
static void wait_insert(ingest *g, ingest_op *op)
{
    size_t b = ptr_bucket(op->msg_key);
    op->prev = NULL;
    op->next = g->waiting[b];
    if (op->next)
        op->next->prev = op;
    g->waiting[b] = op;
    g->nwaiting++;
}

/* Caller holds mu. */
static void wait_unlink(ingest *g, ingest_op *op)
{
    size_t b = ptr_bucket(op->msg_key);
    if (op->prev)
        op->prev->next = op->next;
    else
        g->waiting[b] = op->next;
    if (op->next)
        op->next->prev = op->prev;
    op->next = op->prev = NULL;
    g->nwaiting--;
}

/* Find and unlink the op waiting for msg; NULL if none (already finished).
 * With `finish`, the caller must call finished() after op->done. */
static ingest_op *wait_take(ingest *g, natsMsg *msg, bool finish)
{
    pthread_mutex_lock(&g->mu);
    ingest_op *op = g->waiting[ptr_bucket(msg)];
    while (op && op->msg_key != msg)
        op = op->next;
    if (op)
        wait_unlink(g, op);
    if (op && finish)
        g->finishing++;
    pthread_mutex_unlock(&g->mu);
    return op;
}

static void fail(ingest_result *r, const char *why)
{
    r->st = HR_ERR_UNAVAILABLE;
    r->why = why;
}

/* A 503 that says why JetStream refused (a full stream, a stream deleted
 * since the subject was looked up...), the server's words where it gave some. */
static void refused(ingest_result *r, const jsPubAckErr *pae)
{
    const char *reason = "no reason given";
    if (pae && pae->Err == NATS_NO_RESPONDERS)
        reason = "no stream captures the subject any more";
    else if (pae && pae->ErrText && *pae->ErrText)
        reason = pae->ErrText;
    else if (pae && pae->Err != NATS_OK)
        reason = natsStatus_GetText(pae->Err);
    snprintf(r->why_buf, sizeof r->why_buf, "JetStream refused the message: %s", reason);
    fail(r, r->why_buf);
}

/* The PubAck (or its timeout / error) for one async publish. Runs on the
 * nats.c ack thread. `done` is called last: after it the op may be gone. */
static void streams_mark_stale(ingest *g);
static void *refresher_main(void *arg);

static void finished(ingest *g)
{
    pthread_mutex_lock(&g->mu);
    g->finishing--;
    pthread_cond_broadcast(&g->idle_cv);
    pthread_mutex_unlock(&g->mu);
}

static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    ingest *g = closure;
    ingest_op *op = wait_take(g, msg, true);
    /* A refusal (not a timeout) may mean the cached stream is gone or no
     * longer captures the subject: look it up afresh next time. */
    if (pae && pae->Err != NATS_TIMEOUT)
        streams_mark_stale(g);
    natsMsg_Destroy(msg);
    if (!op)
        return;
    double secs = (double)(nats_NowInNanoSeconds() - op->t0_ns) / 1e9;
    metrics_observe(g->m_ack, secs);
    metrics_observe(g->m_pub_js, secs);
    if (pa) {
        op->res.st = HR_OK;
        op->res.jetstream = true;
        snprintf(op->res.stream, sizeof op->res.stream, "%s", pa->Stream ? pa->Stream : "");
        op->res.seq = pa->Sequence;
        op->res.duplicate = pa->Duplicate;
    } else if (pae && pae->Err == NATS_TIMEOUT) {
        fail(&op->res, OUTCOME_UNKNOWN_JS);
    } else {
        refused(&op->res, pae);
    }
    op->done(op->ctx);
    finished(g);
    if (pae && pae->Err != NATS_TIMEOUT)
        log_warn("jetstream publish failed", "{s:s, s:i}", "error",
                 pae->ErrText ? pae->ErrText : natsStatus_GetText(pae->Err), "code",
                 (int)pae->ErrCode);
}

static void *flush_main(void *arg)
{
    ingest *g = arg;
    pthread_mutex_lock(&g->mu);
    for (;;) {
        while (!g->flushq && !g->closing)
            pthread_cond_wait(&g->flush_cv, &g->mu);
        ingest_op *batch = g->flushq;
        g->flushq = NULL;
        if (!batch && g->closing)
            break;
        pthread_mutex_unlock(&g->mu);
        natsStatus s =
            natsConnection_FlushTimeout(bus_conn(g->bus), g->cfg->nats_publish_timeout_ms);
        int64_t now = nats_NowInNanoSeconds();
        while (batch) {
            ingest_op *op = batch;
            batch = op->next; /* read before done(): op may be gone after it */
            op->next = NULL;
            if (s == NATS_OK) {
                op->res.st = HR_OK;
                metrics_observe(g->m_pub_core, (double)(now - op->t0_ns) / 1e9);
            } else {
                fail(&op->res,
                     s == NATS_TIMEOUT ? OUTCOME_UNKNOWN_CORE : "NATS cannot take the message now");
            }
            op->done(op->ctx);
        }
        pthread_mutex_lock(&g->mu);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

/* Stop the flusher after it has flushed everything queued. */
static void stop_flusher(ingest *g)
{
    pthread_mutex_lock(&g->mu);
    g->closing = true;
    pthread_cond_broadcast(&g->flush_cv);
    bool running = g->flusher_running;
    g->flusher_running = false;
    pthread_mutex_unlock(&g->mu);
    if (running)
        pthread_join(g->flusher, NULL);
}

hr_status ingest_new(ingest **out, const hr_config *cfg, bus *b, metrics *m)
{
    *out = NULL;
    ingest *g = calloc(1, sizeof *g);
    if (!g)
        return HR_ERR_NOMEM;
    g->cfg = cfg;
    g->bus = b;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->flush_cv, NULL);
    pthread_cond_init(&g->idle_cv, NULL);
    pthread_mutex_init(&g->smu, NULL);
    pthread_cond_init(&g->refresh_cv, NULL);
    pthread_cond_init(&g->resolved_cv, NULL);
    static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                    0.1,    0.25,  0.5,    1,     2.5,  5,     10};
    size_t nb = sizeof bounds / sizeof bounds[0];
    metrics_family *pub = metrics_histogram(
        m, "herald_publish_duration_seconds",
        "Time to publish an inbound event to NATS (flush or PubAck), by delivery.", "delivery",
        bounds, nb);
    const char *core[] = {"core"}, *jsl[] = {"jetstream"};
    g->m_pub_core = metrics_cell_get(pub, core);
    g->m_pub_js = metrics_cell_get(pub, jsl);
    g->m_ack = metrics_cell0(
        metrics_histogram(m, "herald_jetstream_ack_duration_seconds",
                          "Time from an async JetStream publish to its PubAck.", NULL, bounds, nb));
    g->m_dup_window = metrics_gauge(
        m, "herald_webhook_stream_duplicate_window_seconds",
        "Duplicate window of each stream that may store a webhook source's events (below 3600 a "
        "sender's retry can be stored twice).",
        "source,stream");
    natsConnection *nc = bus_conn(b);
    if (nc) {
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.PublishAsync.AckHandler = on_ack;
        jo.PublishAsync.AckHandlerClosure = g;
        jo.PublishAsync.MaxPending = JS_MAX_PENDING;
        jo.PublishAsync.StallWait = JS_STALL_WAIT;
        jo.Wait = cfg->nats_publish_timeout_ms;
        natsStatus s = natsConnection_JetStream(&g->js, nc, &jo);
        if (s != NATS_OK) {
            log_error("cannot create the JetStream context", "{s:s}", "error",
                      natsStatus_GetText(s));
            ingest_free(g);
            return HR_ERR_NATS;
        }
        if (pthread_create(&g->flusher, NULL, flush_main, g) != 0) {
            ingest_free(g);
            return HR_ERR_NOMEM;
        }
        g->flusher_running = true;
        if (pthread_create(&g->refresher, NULL, refresher_main, g) != 0) {
            ingest_free(g);
            return HR_ERR_NOMEM;
        }
        g->refresher_running = true;
    }
    *out = g;
    return HR_OK;
}

/* ---- stream lookup ------------------------------------------------------ */

static void stream_list_free(stream_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].name);
        for (size_t k = 0; k < l->v[i].nsubjects; k++)
            free(l->v[i].subjects[k]);
        free(l->v[i].subjects);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* Append the streams of one $JS.API.STREAM.LIST page; false if malformed. */
static bool parse_page(const json_t *resp, stream_list *out, size_t *total)
{
    const json_t *streams = json_object_get(resp, "streams");
    if (json_object_get(resp, "error") || !(json_is_array(streams) || json_is_null(streams)))
        return false;
    *total = (size_t)json_integer_value(json_object_get(resp, "total"));
    size_t n = json_array_size(streams);
    stream_info *v = realloc(out->v, (out->n + n + 1) * sizeof *v);
    if (!v)
        return false;
    out->v = v;
    for (size_t i = 0; i < n; i++) {
        const json_t *cfg = json_object_get(json_array_get(streams, i), "config");
        const char *name = json_string_value(json_object_get(cfg, "name"));
        const json_t *subs = json_object_get(cfg, "subjects");
        if (!name)
            continue;
        stream_info *si = &out->v[out->n];
        memset(si, 0, sizeof *si);
        si->name = strdup(name);
        json_int_t dw = json_integer_value(json_object_get(cfg, "duplicate_window"));
        si->dup_window_s = dw > 0 ? (int64_t)(dw / 1000000000) : 0;
        si->subjects = calloc(json_array_size(subs) + 1, sizeof(char *));
        if (!si->name || !si->subjects) {
            free(si->name);
            free(si->subjects);
            return false;
        }
        for (size_t k = 0; k < json_array_size(subs); k++) {
            const char *p = json_string_value(json_array_get(subs, k));
            if (p && (si->subjects[si->nsubjects] = strdup(p)))
                si->nsubjects++;
        }
        out->n++;
    }
    return true;
}

/* Read every stream's subjects. 0 ok, -1 JetStream did not answer (why). */
static int fetch_streams(ingest *g, stream_list *out, const char **why)
{
    memset(out, 0, sizeof *out);
    size_t offset = 0, total = 0;
    do {
        char body[64];
        snprintf(body, sizeof body, "{\"offset\":%zu}", offset);
        natsMsg *reply = NULL;
        natsStatus st =
            natsConnection_Request(&reply, bus_conn(g->bus), "$JS.API.STREAM.LIST", body,
                                   (int)strlen(body), g->cfg->nats_publish_timeout_ms);
        if (st == NATS_NO_RESPONDERS) /* JetStream not enabled: no stream captures anything */
            return 0;
        if (st != NATS_OK) {
            *why = st == NATS_TIMEOUT ? "JetStream did not answer the stream lookup in time"
                                      : "NATS cannot take the message now";
            stream_list_free(out);
            return -1;
        }
        json_error_t je;
        json_t *resp =
            json_loadb(natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply), 0, &je);
        natsMsg_Destroy(reply);
        bool ok = resp && parse_page(resp, out, &total);
        size_t got = json_array_size(json_object_get(resp, "streams"));
        json_decref(resp);
        if (!ok) {
            *why = "JetStream refused the stream lookup";
            stream_list_free(out);
            return -1;
        }
        if (got == 0)
            break;
        offset += got;
    } while (offset < total);
    return 0;
}

/* Caller holds smu. For every watched source and every stream that may
 * store its events: the stream's duplicate window as a gauge, and a warning
 * whenever it is newly seen (or changed) and shorter than senders retry. */
static void check_dedup_windows_locked(ingest *g)
{
    for (size_t w = 0; w < g->nwatches; w++) {
        const dedup_watch *dw = &g->watches[w];
        size_t pl = strlen(dw->pattern);
        for (size_t i = 0; i < g->streams.n; i++) {
            const stream_info *si = &g->streams.v[i];
            bool captures = false;
            for (size_t k = 0; k < si->nsubjects && !captures; k++) {
                const char *p = si->subjects[k];
                captures = subject_pattern_valid(p, strlen(p)) &&
                           subject_intersects(p, strlen(p), dw->pattern, pl);
            }
            if (!captures || si->dup_window_s <= 0)
                continue;
            const char *labels[] = {dw->source, si->name};
            metrics_cell *cell = metrics_cell_get(g->m_dup_window, labels);
            if (!cell || metrics_value(cell) == si->dup_window_s)
                continue;
            metrics_set(cell, si->dup_window_s);
            if (si->dup_window_s < INGEST_DEDUP_HORIZON_S)
                log_warn("a webhook source's stream deduplicates for less than senders retry: a "
                         "redelivery after the window is stored twice (raise the stream's "
                         "duplicate_window)",
                         "{s:s, s:s, s:I, s:i}", "source", dw->source, "stream", si->name,
                         "duplicate_window_s", (json_int_t)si->dup_window_s, "recommended_s",
                         INGEST_DEDUP_HORIZON_S);
        }
    }
}

/* Fetch and install a fresh list. */
static int refresh_streams(ingest *g, const char **why)
{
    stream_list fresh;
    if (fetch_streams(g, &fresh, why) != 0)
        return -1;
    pthread_mutex_lock(&g->smu);
    stream_list old = g->streams;
    g->streams = fresh;
    g->streams_ms = clock_now_ms();
    g->streams_stale = false;
    check_dedup_windows_locked(g);
    pthread_mutex_unlock(&g->smu);
    stream_list_free(&old);
    return 0;
}

static void streams_mark_stale(ingest *g)
{
    pthread_mutex_lock(&g->smu);
    g->streams_stale = true;
    pthread_mutex_unlock(&g->smu);
}

/* Caller holds smu. 1 found (name in out), 0 none. */
static int match_locked(ingest *g, const char *subject, char *out, size_t cap)
{
    size_t sl = strlen(subject);
    for (size_t i = 0; i < g->streams.n; i++) {
        const stream_info *si = &g->streams.v[i];
        for (size_t k = 0; k < si->nsubjects; k++) {
            const char *p = si->subjects[k];
            if (subject_pattern_valid(p, strlen(p)) && subject_matches(p, strlen(p), subject, sl)) {
                snprintf(out, cap, "%s", si->name);
                return 1;
            }
        }
    }
    out[0] = '\0';
    return 0;
}

static bool publish_resolved(ingest *g, natsMsg *msg, hr_delivery d, int found, const char *stream,
                             const char *why, ingest_op *op, bool suspended);

/* Resolve and publish the ops that waited for this read (on the refresher
 * thread; their connections are suspended). fetched: the read succeeded. */
static void resolve_batch(ingest *g, ingest_op *batch, bool fetched, const char *why)
{
    while (batch) {
        ingest_op *op = batch;
        batch = op->next;
        op->next = NULL;
        natsMsg *msg = op->lookup_msg;
        op->lookup_msg = NULL;
        char stream[STREAM_NAME_MAX] = "";
        pthread_mutex_lock(&g->smu);
        /* After a failed read a stale copy still beats no answer. */
        int found = fetched || g->streams_ms
                        ? match_locked(g, natsMsg_GetSubject(msg), stream, sizeof stream)
                        : -1;
        pthread_mutex_unlock(&g->smu);
        if (!publish_resolved(g, msg, op->lookup_delivery, found, stream,
                              why ? why : "JetStream did not answer the stream lookup", op, true))
            op->done(op->ctx);
    }
    pthread_mutex_lock(&g->smu);
    g->resolving--;
    pthread_cond_broadcast(&g->resolved_cv);
    pthread_mutex_unlock(&g->smu);
}

/* The one thread that reads the stream list: at start, every
 * STREAMS_REFRESH_MS, and at once when a request waits for it. */
static void *refresher_main(void *arg)
{
    ingest *g = arg;
    pthread_mutex_lock(&g->smu);
    g->refresh_wanted = true; /* first read right away */
    while (!g->refresher_stop) {
        if (!g->refresh_wanted && !g->lookupq) {
            /* every second until a first list has been read (startup
             * checks run soon after connecting), then every period */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += g->streams_ms ? STREAMS_REFRESH_MS / 1000 : 1;
            if (pthread_cond_timedwait(&g->refresh_cv, &g->smu, &ts) != 0)
                g->refresh_wanted = true; /* the period passed */
            continue;
        }
        g->refresh_wanted = false;
        bool waiters = g->lookupq != NULL;
        pthread_mutex_unlock(&g->smu);
        const char *why = NULL;
        bool fetched = false;
        if (bus_get_state(g->bus) == BUS_CONNECTED)
            fetched = refresh_streams(g, &why) == 0;
        else
            why = "NATS is not connected";
        pthread_mutex_lock(&g->smu);
        /* Requests queued during the read wait for the next one: the list
         * they need may be newer than what was just read. */
        if (!waiters)
            continue;
        ingest_op *batch = g->lookupq;
        g->lookupq = NULL;
        if (!batch)
            continue;
        g->resolving++;
        pthread_mutex_unlock(&g->smu);
        resolve_batch(g, batch, fetched, why);
        pthread_mutex_lock(&g->smu);
    }
    pthread_mutex_unlock(&g->smu);
    return NULL;
}

/* Which stream captures `subject`, from the local copy only: 1 found, 0
 * none, 2 = the copy cannot answer (none read yet, stale after a refusal,
 * or a jetstream-only miss that may re-read, at most once a second): the
 * op is then queued for the refresher and `prepare` was called. */
static int lookup_or_queue(ingest *g, natsMsg *msg, hr_delivery d, ingest_op *op, char *out,
                           size_t cap)
{
    int64_t now = clock_now_ms();
    pthread_mutex_lock(&g->smu);
    bool fetch = g->streams_ms == 0 || g->streams_stale;
    int rc = fetch ? 0 : match_locked(g, natsMsg_GetSubject(msg), out, cap);
    if (rc == 0 && !fetch && d == DELIVERY_JETSTREAM && now - g->forced_ms >= FORCED_REFRESH_MS) {
        g->forced_ms = now;
        fetch = true;
    }
    if (fetch && !g->lookup_closed && g->refresher_running) {
        op->lookup_msg = msg;
        op->lookup_delivery = d;
        op->next = g->lookupq;
        g->lookupq = op;
        op->prepare(op->ctx); /* under smu: the refresher cannot finish it first */
        g->refresh_wanted = true;
        pthread_cond_signal(&g->refresh_cv);
        pthread_mutex_unlock(&g->smu);
        return 2;
    }
    if (fetch && g->streams_ms) /* cannot queue (shutting down): the stale copy */
        rc = match_locked(g, natsMsg_GetSubject(msg), out, cap);
    else if (fetch)
        rc = -1;
    pthread_mutex_unlock(&g->smu);
    return rc;
}

hr_status ingest_watch_dedup(ingest *g, const char *source, const char *pattern)
{
    pthread_mutex_lock(&g->smu);
    hr_status st = HR_ERR_NOMEM;
    dedup_watch *v = realloc(g->watches, (g->nwatches + 1) * sizeof *v);
    if (v) {
        g->watches = v;
        dedup_watch *w = &v[g->nwatches];
        w->source = strdup(source);
        w->pattern = strdup(pattern);
        if (w->source && w->pattern) {
            g->nwatches++;
            st = HR_OK;
            if (g->streams_ms)
                check_dedup_windows_locked(g);
        } else {
            free(w->source);
            free(w->pattern);
        }
    }
    pthread_mutex_unlock(&g->smu);
    return st;
}

/* ---- publishing --------------------------------------------------------- */

/* Publish msg once its stream is known (found: 1 stream, 0 none, -1 the
 * lookup failed with why). `suspended`: prepare was already called (the op
 * waited for the refresher). Same return as ingest_publish. */
static bool publish_resolved(ingest *g, natsMsg *msg, hr_delivery d, int found, const char *stream,
                             const char *why, ingest_op *op, bool suspended)
{
    natsConnection *nc = bus_conn(g->bus);
    bool use_js = false;
    if (d != DELIVERY_CORE) {
        if (found < 0) {
            fail(&op->res, why);
            natsMsg_Destroy(msg);
            return false;
        }
        if (found == 0 && d == DELIVERY_JETSTREAM) {
            fail(&op->res, "no JetStream stream captures this subject");
            natsMsg_Destroy(msg);
            return false;
        }
        use_js = found == 1;
    }
    op->t0_ns = nats_NowInNanoSeconds();
    if (!use_js) {
        /* Publish now (fails at once during an outage: no reconnect
         * buffer), then let the flusher confirm it. */
        natsStatus s = natsConnection_PublishMsg(nc, msg);
        natsMsg_Destroy(msg);
        if (s == NATS_MAX_PAYLOAD) {
            op->res.st = HR_ERR_INVALID;
            op->res.why = "the message with its headers exceeds NATS max_payload";
            return false;
        }
        if (s != NATS_OK) {
            fail(&op->res, "NATS cannot take the message now");
            return false;
        }
        pthread_mutex_lock(&g->mu);
        if (g->flusher_running && !g->closing) {
            op->next = g->flushq;
            g->flushq = op;
            if (!suspended)
                op->prepare(op->ctx); /* under mu, as for JetStream below */
            pthread_cond_signal(&g->flush_cv);
            pthread_mutex_unlock(&g->mu);
            return true;
        }
        pthread_mutex_unlock(&g->mu);
        s = natsConnection_FlushTimeout(nc, g->cfg->nats_publish_timeout_ms);
        if (s != NATS_OK) {
            fail(&op->res,
                 s == NATS_TIMEOUT ? OUTCOME_UNKNOWN_CORE : "NATS cannot take the message now");
            return false;
        }
        metrics_observe(g->m_pub_core, (double)(nats_NowInNanoSeconds() - op->t0_ns) / 1e9);
        op->res.st = HR_OK;
        return false;
    }
    /* JetStream: register, let the caller suspend, then publish. */
    op->msg_key = msg;
    pthread_mutex_lock(&g->mu);
    if (g->closing || !g->js) {
        pthread_mutex_unlock(&g->mu);
        fail(&op->res, "herald is shutting down");
        natsMsg_Destroy(msg);
        return false;
    }
    /* Suspending under mu: ingest_drain cannot finish (resume) an op whose
     * connection is not suspended yet. */
    wait_insert(g, op);
    g->publishing++;
    if (!suspended)
        op->prepare(op->ctx);
    pthread_mutex_unlock(&g->mu);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = g->cfg->nats_publish_timeout_ms;
    po.ExpectStream = stream;
    natsStatus s = js_PublishMsgAsync(g->js, &msg, &po);
    if (s != NATS_OK) {
        /* Still ours: the ack handler will never see it. */
        ingest_op *mine = wait_take(g, op->msg_key, false);
        natsMsg_Destroy(msg);
        if (mine) {
            if (s == NATS_MAX_PAYLOAD) {
                op->res.st = HR_ERR_INVALID;
                op->res.why = "the message with its headers exceeds NATS max_payload";
            } else {
                fail(&op->res, "NATS cannot take the message now");
            }
            op->done(op->ctx);
        }
    }
    pthread_mutex_lock(&g->mu);
    g->publishing--;
    pthread_cond_broadcast(&g->idle_cv);
    pthread_mutex_unlock(&g->mu);
    return true;
}

bool ingest_publish(ingest *g, natsMsg **msgp, hr_delivery d, ingest_op *op)
{
    natsMsg *msg = *msgp;
    *msgp = NULL;
    memset(&op->res, 0, sizeof op->res);
    natsConnection *nc = bus_conn(g->bus);
    if (!nc || bus_get_state(g->bus) != BUS_CONNECTED) {
        fail(&op->res, "NATS is not connected");
        natsMsg_Destroy(msg);
        return false;
    }
    char stream[STREAM_NAME_MAX] = "";
    int found = 0;
    if (d != DELIVERY_CORE) {
        found = lookup_or_queue(g, msg, d, op, stream, sizeof stream);
        if (found == 2)
            return true; /* the refresher publishes it after its read */
    }
    return publish_resolved(g, msg, d, found, stream, "JetStream did not answer the stream lookup",
                            op, false);
}

void ingest_drain(ingest *g, int timeout_ms)
{
    if (!g)
        return;
    stop_flusher(g); /* sets closing; flushes and answers every queued core publish */
    /* Publishes waiting for a stream-list read are answered now; those the
     * refresher already took finish first (they see `closing`). */
    pthread_mutex_lock(&g->smu);
    g->lookup_closed = true;
    ingest_op *queued = g->lookupq;
    g->lookupq = NULL;
    while (g->resolving > 0)
        pthread_cond_wait(&g->resolved_cv, &g->smu);
    pthread_mutex_unlock(&g->smu);
    while (queued) {
        ingest_op *op = queued;
        queued = op->next;
        op->next = NULL;
        natsMsg_Destroy(op->lookup_msg);
        op->lookup_msg = NULL;
        fail(&op->res, "herald is shutting down");
        op->done(op->ctx);
    }
    /* Publishes registered before `closing` finish their js_PublishMsgAsync
     * first, so none is sent after we answered it. */
    pthread_mutex_lock(&g->mu);
    while (g->publishing > 0)
        pthread_cond_wait(&g->idle_cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    if (g->js) {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = timeout_ms > 0 ? timeout_ms : 1;
        if (js_PublishAsyncComplete(g->js, &po) != NATS_OK) {
            /* Reclaim the unacknowledged messages: nats.c then counts only
             * the ack handlers that took their message and have not yet
             * returned (it decrements its pending count after the handler
             * returns). Such a handler may not have reached wait_take, so
             * `finishing` cannot see it: wait for nats.c to see it return,
             * or never free what it may touch. */
            natsMsgList pending = {0};
            if (js_PublishAsyncGetPendingList(&pending, g->js) == NATS_OK)
                natsMsgList_Destroy(&pending);
            po.MaxWait = ACK_HANDLER_GRACE_MS;
            if (js_PublishAsyncComplete(g->js, &po) != NATS_OK) {
                log_warn("shutdown: a JetStream ack handler is still running; ingest state is "
                         "left allocated",
                         NULL);
                pthread_mutex_lock(&g->mu);
                g->handlers_unsettled = true;
                pthread_mutex_unlock(&g->mu);
            }
        }
    }
    for (;;) {
        pthread_mutex_lock(&g->mu);
        ingest_op *op = NULL;
        for (size_t i = 0; i < WAIT_BUCKETS && !op; i++)
            op = g->waiting[i];
        if (op)
            wait_unlink(g, op);
        pthread_mutex_unlock(&g->mu);
        if (!op)
            break;
        fail(&op->res, OUTCOME_UNKNOWN_JS);
        op->done(op->ctx);
    }
    /* Ack handlers already past wait_take finish before anyone frees ops. */
    pthread_mutex_lock(&g->mu);
    while (g->finishing > 0)
        pthread_cond_wait(&g->idle_cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

void ingest_free(ingest *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->mu);
    bool unsettled = g->handlers_unsettled;
    pthread_mutex_unlock(&g->mu);
    if (unsettled)
        return;
    stop_flusher(g);
    pthread_mutex_lock(&g->smu);
    g->refresher_stop = true;
    pthread_cond_broadcast(&g->refresh_cv);
    pthread_mutex_unlock(&g->smu);
    if (g->refresher_running)
        pthread_join(g->refresher, NULL);
    jsCtx_Destroy(g->js);
    stream_list_free(&g->streams);
    for (size_t i = 0; i < g->nwatches; i++) {
        free(g->watches[i].source);
        free(g->watches[i].pattern);
    }
    free(g->watches);
    pthread_mutex_destroy(&g->smu);
    pthread_cond_destroy(&g->refresh_cv);
    pthread_cond_destroy(&g->resolved_cv);
    pthread_cond_destroy(&g->flush_cv);
    pthread_cond_destroy(&g->idle_cv);
    pthread_mutex_destroy(&g->mu);
    free(g);
}
