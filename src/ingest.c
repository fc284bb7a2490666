/* ingest: core / JetStream publishing of inbound events, the stream lookup
 * cache and the PubAck wait table. */
#include "herald/ingest.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <openssl/rand.h>

#include "herald/log.h"
#include "herald/netutil.h"

#define CACHE_TTL_MS        60000 /* contract §4: a stream created later is used within a minute */
#define CACHE_MAX           4096  /* subjects remembered; the table is reset when full */
#define CACHE_BUCKETS       1024
#define WAIT_BUCKETS        1024
#define JS_MAX_PENDING      8192 /* outstanding async publishes */
#define JS_STALL_WAIT       50   /* ms an MHD worker may block when MaxPending is reached */
#define STREAM_NAME_MAX     256
#define NEGATIVE_RECHECK_MS 1000 /* delivery "jetstream": re-ask about a missing stream */

/* A timeout leaves the outcome open (contract §4 amended in the note): the
 * bytes may have reached NATS. Say so; a retry with the same delivery id is
 * deduplicated by JetStream and by ce-id for core subscribers. */
#define OUTCOME_UNKNOWN_CORE                                                                       \
    "NATS did not confirm the publish in time; it may still be delivered (retry with the same "    \
    "delivery id)"
#define OUTCOME_UNKNOWN_JS                                                                         \
    "JetStream did not acknowledge in time; it may still be stored (a retry with the same "        \
    "delivery id is deduplicated)"

typedef struct cache_ent {
    char *subject;
    char stream[STREAM_NAME_MAX]; /* "" = no stream captures it */
    int64_t expires_ms;
    int64_t looked_ms; /* when the answer was fetched */
    struct cache_ent *next;
} cache_ent;

struct ingest {
    const hr_config *cfg;
    bus *bus;
    jsCtx *js;
    pthread_mutex_t mu; /* guards waiting, closing, the counters below and the cache */
    ingest_op *waiting[WAIT_BUCKETS];
    size_t nwaiting;
    bool closing;
    /* Ops between registration and the end of js_PublishMsgAsync, and ops
     * an ack handler took but has not finished: ingest_drain waits for both
     * to reach 0, so it never answers an op that is about to be published,
     * and nothing touches an op after the HTTP side freed it. */
    int publishing, finishing;
    pthread_cond_t idle_cv;
    cache_ent *cache[CACHE_BUCKETS];
    size_t ncache;
    /* Core publishes waiting for a flush: one flusher thread flushes once
     * for every publish queued so far (group commit) and resumes them all,
     * so no HTTP worker blocks on a PING/PONG round trip. */
    ingest_op *flushq; /* singly linked through next; guarded by mu */
    pthread_cond_t flush_cv;
    pthread_t flusher;
    bool flusher_running;
    metrics_cell *m_pub_core, *m_pub_js, *m_ack;
};

void ingest_uuid(char out[37])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1) {
        for (size_t i = 0; i < sizeof b; i++)
            b[i] = (unsigned char)rand();
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

static size_t ptr_bucket(const void *p)
{
    uintptr_t v = (uintptr_t)p;
    v ^= v >> 17;
    v *= 0x9E3779B97F4A7C15ull;
    return (size_t)(v >> 40) % WAIT_BUCKETS;
}

static size_t str_bucket(const char *s)
{
    return (size_t)(net_hash_str(s) % CACHE_BUCKETS);
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

/* The PubAck (or its timeout / error) for one async publish. Runs on the
 * nats.c ack thread. `done` is called last: after it the op may be gone. */
static void cache_drop(ingest *g, const char *subject);

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
        cache_drop(g, natsMsg_GetSubject(msg));
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
        fail(&op->res, "JetStream refused the message");
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
    }
    *out = g;
    return HR_OK;
}

/* ---- stream lookup ------------------------------------------------------ */

/* 1 found (name in out), 0 cached/known "no stream", -1 lookup failed. */
static int cache_get(ingest *g, const char *subject, char *out, size_t cap, int64_t *age_ms)
{
    int rc = -1;
    int64_t now = net_now_ms();
    pthread_mutex_lock(&g->mu);
    for (cache_ent *e = g->cache[str_bucket(subject)]; e; e = e->next)
        if (strcmp(e->subject, subject) == 0 && e->expires_ms > now) {
            snprintf(out, cap, "%s", e->stream);
            rc = e->stream[0] ? 1 : 0;
            *age_ms = now - e->looked_ms;
            break;
        }
    pthread_mutex_unlock(&g->mu);
    return rc;
}

static void cache_clear_locked(ingest *g)
{
    for (size_t i = 0; i < CACHE_BUCKETS; i++) {
        for (cache_ent *e = g->cache[i], *n; e; e = n) {
            n = e->next;
            free(e->subject);
            free(e);
        }
        g->cache[i] = NULL;
    }
    g->ncache = 0;
}

static void cache_drop(ingest *g, const char *subject)
{
    if (!subject)
        return;
    pthread_mutex_lock(&g->mu);
    for (cache_ent **pp = &g->cache[str_bucket(subject)]; *pp; pp = &(*pp)->next) {
        cache_ent *e = *pp;
        if (strcmp(e->subject, subject) == 0) {
            *pp = e->next;
            free(e->subject);
            free(e);
            g->ncache--;
            break;
        }
    }
    pthread_mutex_unlock(&g->mu);
}

static void cache_put(ingest *g, const char *subject, const char *stream)
{
    int64_t exp = net_now_ms() + CACHE_TTL_MS;
    pthread_mutex_lock(&g->mu);
    size_t b = str_bucket(subject);
    cache_ent *e = g->cache[b];
    while (e && strcmp(e->subject, subject) != 0)
        e = e->next;
    if (!e) {
        if (g->ncache >= CACHE_MAX) {
            cache_clear_locked(g);
        }
        e = calloc(1, sizeof *e);
        if (e && !(e->subject = strdup(subject))) {
            free(e);
            e = NULL;
        }
        if (e) {
            e->next = g->cache[b];
            g->cache[b] = e;
            g->ncache++;
        }
    }
    if (e) {
        snprintf(e->stream, sizeof e->stream, "%s", stream);
        e->expires_ms = exp;
        e->looked_ms = exp - CACHE_TTL_MS;
    }
    pthread_mutex_unlock(&g->mu);
}

/* Which stream captures `subject`? 1 = found, 0 = none, -1 = JetStream did
 * not answer (why set). */
static int lookup_stream(ingest *g, const char *subject, bool required, char *out, size_t cap,
                         const char **why)
{
    int64_t age = 0;
    int rc = cache_get(g, subject, out, cap, &age);
    /* `auto` may use a stale "no stream" for a minute (contract §4); a
     * source that requires JetStream asks again, at most once a second. */
    if (rc > 0 || (rc == 0 && (!required || age < NEGATIVE_RECHECK_MS)))
        return rc;
    json_t *req = json_pack("{s:s}", "subject", subject);
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!body) {
        *why = "out of memory";
        return -1;
    }
    natsMsg *reply = NULL;
    natsStatus s = natsConnection_Request(&reply, bus_conn(g->bus), "$JS.API.STREAM.NAMES", body,
                                          (int)strlen(body), g->cfg->nats_publish_timeout_ms);
    free(body);
    if (s == NATS_NO_RESPONDERS) { /* JetStream not enabled: core only */
        cache_put(g, subject, "");
        out[0] = '\0';
        return 0;
    }
    if (s != NATS_OK) {
        *why = s == NATS_TIMEOUT ? "JetStream did not answer the stream lookup in time"
                                 : "NATS cannot take the message now";
        return -1;
    }
    json_error_t je;
    json_t *resp = json_loadb(natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply), 0, &je);
    natsMsg_Destroy(reply);
    const json_t *streams = json_object_get(resp, "streams");
    rc = -1;
    if (json_is_array(streams) || json_is_null(streams) || (resp && !streams)) {
        if (json_object_get(resp, "error")) {
            *why = "JetStream refused the stream lookup";
        } else {
            const json_t *first = json_array_get(streams, 0);
            const char *name = json_is_string(first) ? json_string_value(first) : "";
            snprintf(out, cap, "%s", name);
            cache_put(g, subject, name);
            rc = name[0] ? 1 : 0;
        }
    } else {
        *why = "JetStream answered the stream lookup with garbage";
    }
    json_decref(resp);
    return rc;
}

/* ---- publishing --------------------------------------------------------- */

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
    const char *subject = natsMsg_GetSubject(msg);
    const char *why = NULL;
    char stream[STREAM_NAME_MAX] = "";
    bool use_js = false;
    if (d != DELIVERY_CORE) {
        int found = lookup_stream(g, subject, d == DELIVERY_JETSTREAM, stream, sizeof stream, &why);
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

void ingest_drain(ingest *g, int timeout_ms)
{
    if (!g)
        return;
    stop_flusher(g); /* sets closing; flushes and answers every queued core publish */
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
            natsMsgList pending = {0};
            if (js_PublishAsyncGetPendingList(&pending, g->js) == NATS_OK)
                natsMsgList_Destroy(&pending);
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
    stop_flusher(g);
    jsCtx_Destroy(g->js);
    pthread_mutex_lock(&g->mu);
    cache_clear_locked(g);
    pthread_mutex_unlock(&g->mu);
    pthread_cond_destroy(&g->flush_cv);
    pthread_cond_destroy(&g->idle_cv);
    pthread_mutex_destroy(&g->mu);
    free(g);
}
