/* hub: shared NATS interests, encode-once event frames, one inbox per shard. */
#include "herald/hub.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "herald/clock.h"
#include "herald/evcache.h"
#include "herald/log.h"
#include "herald/netutil.h"
#include "herald/replay.h"
#include "herald/resume.h"
#include "herald/subject.h"

#define NBUCKETS            8192
#define LBUCKETS            4096
#define INBOX_MAX_BYTES     (64u << 20) /* events waiting for one shard's thread */
#define ITEMS_PER_TURN      4096        /* bounded work per service turn */
#define REPLAY_PER_TURN     512 /* replay items per turn: live events never wait behind more */
#define FLUSH_TIMEOUT_MS    3000
#define JS_REQUEST_MS       3000
#define JS_HEARTBEAT_S      2     /* a lost ordered consumer is noticed in 4-8 s */
#define RESYNC_PER_TURN     64    /* stream-fed interests re-created per worker turn */
#define RESYNC_RETRY_MS     1000  /* a failed re-creation is tried again after this, */
#define RESYNC_RETRY_MAX_MS 30000 /* doubling up to this (a stream deleted for good) */
#define WORKER_TICK_MS      250   /* the worker notices a NATS reconnection this often */
#define REPLAY_BATCH        1024  /* messages per replay batch at most */
#define REPLAY_FIRST_BATCH  16
#define REUSE_WINDOW_MS     1000       /* a copy of a message reuses its frame this long */
#define REUSE_MAX_BYTES     (8u << 20) /* frames held for reuse */

_Static_assert(HUB_MAX_SHARDS <= 64, "shard masks are 64-bit");

typedef enum { INTEREST_PENDING, INTEREST_ACTIVE, INTEREST_FAILED } interest_state;

/* The NATS message handler's closure. Created with its interest; from the
 * subscribe on, each NATS subscription using it holds one reference
 * (`refs`), dropped by the on-complete callback once its handler can no
 * longer run; the last one frees it. Two subscriptions share it only while
 * a stream-fed interest's consumer is being replaced after a reconnection. */
typedef struct sub_closure {
    hub *h;
    uint64_t id;
    bool js;                    /* an ordered consumer: messages carry stream sequences */
    _Atomic int refs;           /* NATS subscriptions holding it */
    _Atomic uint64_t seen;      /* stream-fed: highest sequence received (the restart point) */
    _Atomic uint64_t mask;      /* shards with receivers: where each event goes */
    const frame *_Atomic taken; /* the last frame it passed on (evcache_get; only compared) */
    _Atomic uint64_t lost[];    /* per shard: events dropped because its inbox was full */
} sub_closure;

/* One distinct pattern, process-wide. Under hub.tab_lock, except the
 * immutable id, pattern, stream and closure. Freed when its last receiver
 * leaves (a pending one when the worker answers). */
typedef struct interest {
    uint64_t id;
    char *pattern;
    char *stream; /* history stream feeding it (ordered consumer), NULL: core NATS */
    interest_state state;
    uint64_t floor0;        /* stream-fed: the stream's last sequence at creation */
    natsSubscription *nsub; /* set once the worker confirmed it; replaced by a resync */
    bool resync;            /* stream-fed: its consumer is to be re-created (reconnected) */
    sub_closure *closure;
    size_t total;     /* receivers on all shards */
    struct op *unsub; /* preallocated OP_UNSUB: dropping never fails */
    struct interest *next_by_pattern;
} interest;

/* An interest as one shard sees it: its receivers there. That shard's
 * thread only; exists while it has receivers (so `in` stays alive). */
typedef struct lentry {
    uint64_t id;
    interest *in;
    sub_closure *closure; /* in->closure, copied at creation */
    hub_sub *subs;        /* doubly linked */
    size_t nsubs;
    bool active;    /* the shard saw the interest confirmed */
    uint64_t floor; /* stream-fed: highest sequence passed on (a re-created consumer repeats) */
    struct lentry *next;
} lentry;

struct hub_sub {
    hub_shard *sh;
    lentry *le;
    void *owner;
    uintptr_t tag; /* the owner's */
    bool ready;
    hub_sub *prev, *next;
    /* resume (contract §3): replay first, then the live feed */
    bool has_since;
    bool since_last; /* snapshot */
    uint64_t since;
    resume_state rs;         /* hand-over bookkeeping (has_since only) */
    replay *rp;              /* the running replay; NULL once handed over */
    bool fetching;           /* a granted batch has not ended yet */
    uint64_t grant_live_max; /* rs.live_max when that batch was granted */
    size_t big_len;          /* slowly decaying maximum of replayed frame sizes (pacing) */
};

typedef enum {
    ITEM_EVENT,
    ITEM_LOST,
    ITEM_SUB_DONE,
    ITEM_RP_START, /* a replay is set up (or failed) */
    ITEM_RP_EVENT, /* one replayed event */
    ITEM_RP_BATCH, /* a replay batch ended */
} item_kind;

typedef struct {
    item_kind kind;
    uint64_t id;          /* EVENT, LOST, SUB_DONE: the interest */
    uint64_t seq;         /* EVENT, RP_EVENT: stream sequence (0: none); SUB_DONE: floor */
    frame *f;             /* EVENT, RP_EVENT: one reference */
    bool ok;              /* SUB_DONE */
    sub_closure *closure; /* LOST */
    replay *rp;           /* RP_*: one reference */
    replay_started st;    /* RP_START */
    replay_batch b;       /* RP_BATCH */
} item;

typedef struct {
    item *v;
    size_t n, cap, next; /* next: first unprocessed item (work vector) */
} item_vec;

/* One service thread's share: its inboxes (any thread pushes; that thread
 * takes) and its view of the interests (that thread only). */
struct hub_shard {
    hub *h;
    int idx;
    void *ctx; /* the callbacks' */
    pthread_mutex_t lock;
    item_vec inbox, work;
    item_vec rp_inbox, rp_work; /* replay items: their own queue, a bounded share per turn */
    size_t inbox_bytes;         /* frame bytes in `inbox` (under lock) */
    bool closed;                /* under lock: no more pushes or wake-ups */
    bool warned_full;           /* under lock */
    lentry *by_id[LBUCKETS];
};

typedef enum { OP_SUB, OP_UNSUB, OP_STOP } op_kind;

typedef struct op {
    op_kind kind;
    interest *in;           /* OP_SUB: stays alive (pending interests are not freed) */
    natsSubscription *nsub; /* OP_UNSUB */
    struct op *next;
} op;

struct hub {
    bus *bus;
    hub_callbacks cb;
    int nshards;
    hub_shard *shards[HUB_MAX_SHARDS];
    pthread_mutex_t tab_lock; /* the interest table; never taken per event */
    interest *by_pattern[NBUCKETS];
    uint64_t next_id;
    /* worker: shards → worker */
    pthread_t worker;
    bool worker_started;
    pthread_mutex_t op_lock;
    pthread_cond_t op_cond;
    op *ops_head, **ops_tail;
    /* The owner's reference (dropped by hub_free) plus one per NATS
     * subscription whose handler may still run (dropped on completion):
     * the last one frees the hub. */
    _Atomic int refs;
    jsCtx *js; /* worker: ordered consumers */
    pthread_condattr_t op_cond_attr;
    replayer *rpl;   /* per-subscription replays */
    evcache *recent; /* frames of the latest messages: their copies reuse them */
    metrics_cell *m_nats_subs, *m_lost, *m_invalid, *m_consumers, *m_encoded;
    metrics_cell *m_replays_seq, *m_replays_last, *m_replayed, *m_gaps;
};

/* ---- tables ------------------------------------------------------------------ */

static interest *find_pattern(hub *h, const char *p)
{
    for (interest *in = h->by_pattern[net_hash_str(p) % NBUCKETS]; in; in = in->next_by_pattern)
        if (strcmp(in->pattern, p) == 0)
            return in;
    return NULL;
}

/* Take `in` out of the pattern table (if still there). */
static void pattern_remove(hub *h, interest *in)
{
    for (interest **pp = &h->by_pattern[net_hash_str(in->pattern) % NBUCKETS]; *pp;
         pp = &(*pp)->next_by_pattern)
        if (*pp == in) {
            *pp = in->next_by_pattern;
            return;
        }
}

static void interest_free(interest *in)
{
    free(in->pattern);
    free(in->stream);
    free(in->unsub);
    free(in);
}

static lentry *local_find(hub_shard *sh, uint64_t id)
{
    for (lentry *e = sh->by_id[id % LBUCKETS]; e; e = e->next)
        if (e->id == id)
            return e;
    return NULL;
}

static void local_remove(hub_shard *sh, lentry *le)
{
    lentry **pp = &sh->by_id[le->id % LBUCKETS];
    while (*pp != le)
        pp = &(*pp)->next;
    *pp = le->next;
    free(le);
}

/* ---- inboxes ------------------------------------------------------------------ */

static bool vec_push(item_vec *v, const item *it)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 256;
        item *nv = realloc(v->v, cap * sizeof *nv);
        if (!nv)
            return false;
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = *it;
    return true;
}

/* Destroy unsubscribes without deleting a JetStream consumer: an ordered
 * consumer is ephemeral (the server drops it once nobody listens), and
 * nats.c 3.4.1's delete reads the consumer's name unlocked while its reset
 * thread may be replacing it (a use-after-free ASan caught). */
static void unsubscribe_now(natsSubscription *ns)
{
    natsSubscription_Destroy(ns);
}

/* Any thread. Takes ownership of it->f and it->rp (released on refusal).
 * Returns false if the item was refused. */
static bool inbox_push(hub_shard *sh, const item *it)
{
    item_vec *v = it->kind >= ITEM_RP_START ? &sh->rp_inbox : &sh->inbox;
    pthread_mutex_lock(&sh->lock);
    bool ok = !sh->closed && vec_push(v, it);
    if (ok && it->f && v == &sh->inbox) /* replays are bounded by their credit */
        sh->inbox_bytes += it->f->len;
    /* Wake-ups coalesce: only the first item needs one. Under the lock, so
     * hub_close cannot return while a wake-up is on its way. */
    if (ok && v->n == 1)
        sh->h->cb.wake(sh->ctx);
    pthread_mutex_unlock(&sh->lock);
    if (!ok) {
        frame_release(it->f);
        replay_release(it->rp);
    }
    return ok;
}

/* An event for one shard (a reference and a pointer pushed under one lock),
 * unless its inbox is over its bound: then the shard's receivers learn how
 * many they missed (`lost`). */
static void push_event(hub_shard *sh, sub_closure *c, frame *f, uint64_t seq)
{
    hub *h = sh->h;
    item it = {.kind = ITEM_EVENT, .id = c->id, .f = f, .seq = seq};
    pthread_mutex_lock(&sh->lock);
    bool full = sh->inbox_bytes + f->len > INBOX_MAX_BYTES;
    bool warn = full && !sh->warned_full;
    if (full)
        sh->warned_full = true;
    else if (sh->inbox_bytes < INBOX_MAX_BYTES / 2)
        sh->warned_full = false;
    if (!full && !sh->closed && vec_push(&sh->inbox, &it)) {
        frame_ref(f);
        sh->inbox_bytes += f->len;
        if (sh->inbox.n == 1) /* as in inbox_push */
            h->cb.wake(sh->ctx);
    }
    pthread_mutex_unlock(&sh->lock);
    if (!full)
        return;
    metrics_add(h->m_lost, 1);
    if (warn)
        log_warn("event inbox full: dropping events until the service thread catches up", NULL);
    if (atomic_fetch_add(&c->lost[sh->idx], 1) == 0) {
        item lost = {.kind = ITEM_LOST, .id = c->id, .closure = c};
        inbox_push(sh, &lost);
    }
}

/* What on_msg's encoder needs (evcache_make_fn). */
typedef struct {
    hub *h;
    const char *subject;
    size_t slen;
    natsMsg *msg;
    uint64_t seq;
} encode_req;

/* The first copy of a message: validate and encode (under its cache set's
 * lock; later copies find the frame). */
static frame *encode(void *ctx)
{
    encode_req *e = ctx;
    /* NATS takes any non-whitespace bytes; a browser must fail its
     * connection on invalid UTF-8 in a text frame (contract §3). */
    if (!subject_valid(e->subject, e->slen)) {
        metrics_add(e->h->m_invalid, 1);
        return NULL;
    }
    char now[40];
    clock_rfc3339_now(now, sizeof now);
    frame *f =
        frame_event(e->subject, e->slen, natsMsg_GetData(e->msg),
                    (size_t)natsMsg_GetDataLength(e->msg), now, e->seq ? (int64_t)e->seq : -1);
    if (f)
        metrics_add(e->h->m_encoded, 1);
    return f;
}

/* NATS delivery thread: encode once, hand the same frame to every shard
 * with receivers; the message is not kept. A message that matches several
 * interests arrives once per interest: the copies after the first find its
 * frame in h->recent (evcache.h), so each costs a lookup and a reference. */
static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    sub_closure *c = closure;
    hub *h = c->h;
    uint64_t seq = 0;
    uint64_t pending;
    if (c->js) {
        if (!resume_parse_ack(natsMsg_GetReply(msg), &seq, &pending) || !seq) {
            natsMsg_Destroy(msg);
            return;
        }
        uint64_t prev = atomic_load(&c->seen);
        while (seq > prev && !atomic_compare_exchange_weak(&c->seen, &prev, seq))
            ;
    }
    uint64_t mask = atomic_load(&c->mask);
    if (!mask) {
        natsMsg_Destroy(msg);
        return;
    }
    const char *subject = natsMsg_GetSubject(msg);
    encode_req e = {h, subject, strlen(subject), msg, seq};
    frame *f = evcache_get(h->recent, e.subject, e.slen, natsMsg_GetData(msg),
                           (size_t)natsMsg_GetDataLength(msg), seq ? (int64_t)seq : -1,
                           clock_now_ms(), atomic_load(&c->taken), encode, &e, NULL);
    natsMsg_Destroy(msg);
    if (!f)
        return;
    atomic_store(&c->taken, f);
    for (int i = 0; mask; i++, mask >>= 1)
        if (mask & 1)
            push_event(h->shards[i], c, f, seq);
    frame_release(f);
}

static void closure_unref(sub_closure *c)
{
    if (atomic_fetch_sub(&c->refs, 1) == 1)
        free(c);
}

static void hub_destroy(hub *h);

static void hub_unref(hub *h)
{
    if (atomic_fetch_sub(&h->refs, 1) == 1)
        hub_destroy(h);
}

static void on_sub_complete(void *closure)
{
    sub_closure *c = closure;
    hub *h = c->h;
    closure_unref(c);
    hub_unref(h);
}

/* ---- worker ------------------------------------------------------------------ */

static void op_push(hub *h, op *o)
{
    pthread_mutex_lock(&h->op_lock);
    o->next = NULL;
    *h->ops_tail = o;
    h->ops_tail = &o->next;
    pthread_cond_signal(&h->op_cond);
    pthread_mutex_unlock(&h->op_lock);
}

static natsStatus js_ctx(hub *h)
{
    if (h->js)
        return NATS_OK;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = JS_REQUEST_MS;
    return natsConnection_JetStream(&h->js, bus_conn(h->bus), &jo);
}

/* An ordered consumer on `pattern` from stream sequence `start`. nats.c
 * re-creates it from the next unseen sequence when it misses heartbeats (a
 * deleted consumer, a leader change); after a reconnection the worker
 * replaces it itself (resync_streams). */
static natsStatus js_consume(hub *h, natsSubscription **ns, const char *pattern, const char *stream,
                             sub_closure *c, uint64_t start)
{
    natsStatus s = js_ctx(h);
    if (s != NATS_OK)
        return s;
    jsErrCode jerr = 0;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = stream;
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = start;
    so.Config.Heartbeat = (int64_t)JS_HEARTBEAT_S * 1000000000;
    return js_Subscribe(ns, h->js, pattern, on_msg, c, NULL, &so, &jerr);
}

/* A stream-fed interest: an ordered consumer from the stream's next
 * sequence (*floor = its last). */
static natsStatus js_subscribe(hub *h, natsSubscription **ns, const char *pattern,
                               const char *stream, sub_closure *c, uint64_t *floor)
{
    natsStatus s = js_ctx(h);
    if (s != NATS_OK)
        return s;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    s = js_GetStreamInfo(&si, h->js, stream, NULL, &jerr);
    if (s != NATS_OK)
        return s;
    *floor = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    return js_consume(h, ns, pattern, stream, c, *floor + 1);
}

/* Subscribe without confirming; NULL on failure. On success nats.c owns
 * the closure (on_sub_complete frees it); on failure *closure_lost says
 * whether it may still be called (then it is never freed here). */
static natsSubscription *do_subscribe(hub *h, interest *in, uint64_t *floor, bool *closure_lost)
{
    sub_closure *c = in->closure;
    *closure_lost = false;
    atomic_store(&c->refs, 1);
    atomic_fetch_add(&h->refs, 1);
    natsSubscription *ns = NULL;
    natsStatus st = in->stream
                        ? js_subscribe(h, &ns, in->pattern, in->stream, c, floor)
                        : natsConnection_Subscribe(&ns, bus_conn(h->bus), in->pattern, on_msg, c);
    if (st != NATS_OK) {
        if (in->stream)
            log_warn("cannot read a history stream", "{s:s, s:s, s:s}", "stream", in->stream,
                     "pattern", in->pattern, "error", natsStatus_GetText(st));
        hub_unref(h); /* the owner still holds its own */
        return NULL;
    }
    if (natsSubscription_SetOnCompleteCB(ns, on_sub_complete, c) != NATS_OK) {
        /* c may be in use by a running handler: leak it, and keep the
         * hub's reference so the hub is never freed under it. */
        unsubscribe_now(ns);
        *closure_lost = true;
        return NULL;
    }
    /* The hub applies its own bound (INBOX_MAX_BYTES); nats.c's must not
     * trigger first. */
    natsSubscription_SetPendingLimits(ns, 1 << 20, 512 << 20);
    return ns;
}

static void interest_drop(hub *h, interest *in);

/* A subscribe finished (under tab_lock): record it, tell every shard with
 * receivers waiting, or drop the interest if nobody is left. */
static void sub_finished(hub *h, interest *in, natsSubscription *ns, uint64_t floor,
                         bool closure_lost)
{
    bool ok = ns != NULL;
    if (ok) {
        in->nsub = ns;
        in->state = INTEREST_ACTIVE;
        in->floor0 = floor;
        metrics_add(h->m_nats_subs, 1);
        if (in->stream)
            metrics_add(h->m_consumers, 1);
    } else {
        in->state = INTEREST_FAILED;
        pattern_remove(h, in); /* a later subscribe starts afresh */
        if (!closure_lost)
            free(in->closure);
        in->closure = NULL;
    }
    if (in->total == 0) {
        interest_drop(h, in);
        return;
    }
    uint64_t mask = ok ? atomic_load(&in->closure->mask) : 0;
    if (!ok) /* every shard that holds a receiver has its bit in the mask it had */
        mask = (uint64_t)-1 >> (64 - h->nshards);
    for (int i = 0; mask; i++, mask >>= 1)
        if (mask & 1) {
            item it = {.kind = ITEM_SUB_DONE, .id = in->id, .ok = ok, .seq = floor};
            inbox_push(h->shards[i], &it);
        }
}

/* After a reconnection every stream-fed interest gets a new ordered
 * consumer from the sequence after the last one received. nats.c would
 * re-create its consumers only once it misses their heartbeats, and after a
 * lost node that took longer than contract §7's 20 s now and then. The old
 * and the new consumer may both deliver for a moment: each shard's floor
 * drops what it passed on already, and as the new one starts at or below
 * every floor + 1 and delivers in order, nothing is skipped. */
static void mark_resync(hub *h)
{
    pthread_mutex_lock(&h->tab_lock);
    for (size_t b = 0; b < NBUCKETS; b++)
        for (interest *in = h->by_pattern[b]; in; in = in->next_by_pattern)
            if (in->stream && in->state == INTEREST_ACTIVE)
                in->resync = true;
    pthread_mutex_unlock(&h->tab_lock);
}

/* Re-create up to RESYNC_PER_TURN marked consumers (worker thread; the
 * requests run outside tab_lock). True when none is left marked; *failed:
 * some could not be re-created yet (try again later). */
static bool resync_streams(hub *h, bool *failed_any, bool warn)
{
    struct {
        uint64_t id;
        char *pattern, *stream;
        sub_closure *c;
        uint64_t start;
        natsSubscription *ns;
    } r[RESYNC_PER_TURN];
    size_t n = 0;
    bool more = false;
    pthread_mutex_lock(&h->tab_lock);
    for (size_t b = 0; b < NBUCKETS && !more; b++)
        for (interest *in = h->by_pattern[b]; in; in = in->next_by_pattern) {
            if (!in->resync || in->state != INTEREST_ACTIVE || !in->nsub)
                continue;
            if (n == RESYNC_PER_TURN) {
                more = true;
                break;
            }
            char *p = strdup(in->pattern), *st = strdup(in->stream);
            if (!p || !st) {
                free(p);
                free(st);
                more = true;
                break;
            }
            uint64_t seen = atomic_load(&in->closure->seen);
            r[n].id = in->id;
            r[n].pattern = p;
            r[n].stream = st;
            r[n].c = in->closure;
            r[n].start = (seen > in->floor0 ? seen : in->floor0) + 1;
            r[n].ns = NULL;
            /* the new subscription's reference, taken while the old one holds its own */
            atomic_fetch_add(&in->closure->refs, 1);
            atomic_fetch_add(&h->refs, 1);
            n++;
        }
    pthread_mutex_unlock(&h->tab_lock);

    size_t failed = 0;
    for (size_t i = 0; i < n; i++) {
        natsStatus st = js_consume(h, &r[i].ns, r[i].pattern, r[i].stream, r[i].c, r[i].start);
        if (st == NATS_OK &&
            natsSubscription_SetOnCompleteCB(r[i].ns, on_sub_complete, r[i].c) != NATS_OK) {
            /* as in do_subscribe: a handler may hold the closure, keep its reference */
            unsubscribe_now(r[i].ns);
            r[i].ns = NULL;
            failed++;
            continue;
        }
        if (st != NATS_OK) {
            if (failed++ == 0 && warn)
                log_warn("cannot re-create a history stream's consumer yet, retrying",
                         "{s:s, s:s, s:s}", "stream", r[i].stream, "pattern", r[i].pattern, "error",
                         natsStatus_GetText(st));
            r[i].ns = NULL;
            closure_unref(r[i].c);
            hub_unref(h);
            continue;
        }
        natsSubscription_SetPendingLimits(r[i].ns, 1 << 20, 512 << 20);
    }

    /* Swap in what was created; the replaced (or orphaned) ones go. */
    natsSubscription *gone[RESYNC_PER_TURN];
    size_t ngone = 0;
    pthread_mutex_lock(&h->tab_lock);
    for (size_t i = 0; i < n; i++) {
        if (!r[i].ns)
            continue;
        interest *in = find_pattern(h, r[i].pattern);
        if (in && in->id == r[i].id && in->nsub && in->state == INTEREST_ACTIVE) {
            gone[ngone++] = in->nsub;
            in->nsub = r[i].ns;
            in->resync = false;
        } else {
            gone[ngone++] = r[i].ns; /* the interest was dropped meanwhile */
        }
    }
    pthread_mutex_unlock(&h->tab_lock);
    for (size_t i = 0; i < ngone; i++)
        unsubscribe_now(gone[i]);
    for (size_t i = 0; i < n; i++) {
        free(r[i].pattern);
        free(r[i].stream);
    }
    if (n > failed)
        log_info("history stream consumers re-created after reconnecting", "{s:I}", "count",
                 (json_int_t)(n - failed));
    *failed_any = failed > 0;
    return !more && failed == 0;
}

/* One batch of ops: unsubscribes first, then all subscribes confirmed by a
 * single flush (one round trip however many patterns). True on OP_STOP. */
static bool run_batch(hub *h, op *batch)
{
    bool stop = false;
    size_t nsub = 0;
    for (op *o = batch; o; o = o->next) {
        if (o->kind == OP_STOP)
            stop = true;
        else if (o->kind == OP_UNSUB)
            unsubscribe_now(o->nsub);
        else
            nsub++;
    }
    typedef struct {
        interest *in;
        natsSubscription *ns;
        uint64_t floor;
        bool lost;
    } done_t;
    done_t *done = nsub ? calloc(nsub, sizeof *done) : NULL;
    size_t k = 0;
    for (op *o = batch; o; o = o->next) {
        if (o->kind != OP_SUB)
            continue;
        done_t d = {.in = o->in};
        if (!stop && done)
            d.ns = do_subscribe(h, o->in, &d.floor, &d.lost);
        if (done) {
            done[k++] = d;
        } else { /* OOM: fail it at once */
            pthread_mutex_lock(&h->tab_lock);
            sub_finished(h, o->in, NULL, 0, false);
            pthread_mutex_unlock(&h->tab_lock);
        }
    }
    /* `ok` promises the server has the interest: flush before confirming. */
    bool flushed =
        k == 0 || natsConnection_FlushTimeout(bus_conn(h->bus), FLUSH_TIMEOUT_MS) == NATS_OK;
    pthread_mutex_lock(&h->tab_lock);
    for (size_t i = 0; i < k; i++) {
        if (!flushed && done[i].ns) {
            /* nats.c holds the closure now: on_sub_complete frees it */
            unsubscribe_now(done[i].ns);
            done[i].ns = NULL;
            done[i].lost = true;
        }
        sub_finished(h, done[i].in, done[i].ns, done[i].floor, done[i].lost);
    }
    pthread_mutex_unlock(&h->tab_lock);
    free(done);
    for (op *o = batch, *n; o; o = n) { /* OP_UNSUB ops come from dropped interests */
        n = o->next;
        free(o);
    }
    return stop;
}

/* Take every queued op at once (run_batch). Between batches, notice NATS
 * reconnections (bus_reconnects) and re-create the stream-fed consumers. */
static void *worker_main(void *arg)
{
    hub *h = arg;
    uint64_t reconnects = bus_reconnects(h->bus);
    bool resync = false;
    int64_t resync_at = 0, retry_ms = RESYNC_RETRY_MS;
    for (;;) {
        pthread_mutex_lock(&h->op_lock);
        if (!h->ops_head) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_nsec += (long)WORKER_TICK_MS * 1000000L;
            ts.tv_sec += ts.tv_nsec / 1000000000L;
            ts.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&h->op_cond, &h->op_lock, &ts);
        }
        op *batch = h->ops_head;
        h->ops_head = NULL;
        h->ops_tail = &h->ops_head;
        pthread_mutex_unlock(&h->op_lock);

        uint64_t rc = bus_reconnects(h->bus);
        if (rc != reconnects) {
            reconnects = rc;
            mark_resync(h);
            resync = true;
            resync_at = 0;
            retry_ms = RESYNC_RETRY_MS;
        }
        if (batch && run_batch(h, batch))
            return NULL;
        if (resync && clock_now_ms() >= resync_at && bus_get_state(h->bus) == BUS_CONNECTED) {
            bool failed;
            /* one warning per episode */
            resync = !resync_streams(h, &failed, retry_ms == RESYNC_RETRY_MS);
            resync_at = failed ? clock_now_ms() + retry_ms : 0;
            if (failed && retry_ms < RESYNC_RETRY_MAX_MS)
                retry_ms *= 2;
        }
    }
}

/* ---- replays: replayer threads → the subscription's shard ---------------------- */

static void rp_started(void *ctx, replay *rp, const replay_started *st)
{
    item it = {.kind = ITEM_RP_START, .rp = replay_ref(rp), .st = *st};
    inbox_push(replay_route(rp), &it);
}

static void rp_event(void *ctx, replay *rp, frame *f, uint64_t seq)
{
    item it = {.kind = ITEM_RP_EVENT, .rp = replay_ref(rp), .f = f, .seq = seq};
    inbox_push(replay_route(rp), &it);
}

static void rp_batch_end(void *ctx, replay *rp, const replay_batch *b)
{
    item it = {.kind = ITEM_RP_BATCH, .rp = replay_ref(rp), .b = *b};
    inbox_push(replay_route(rp), &it);
}

/* ---- lifecycle ------------------------------------------------------------------ */

hr_status hub_new(hub **out, bus *b, metrics *m, int nshards, const hub_callbacks *cb,
                  void *const *ctxs, char *err, size_t errlen)
{
    *out = NULL;
    if (nshards < 1 || nshards > HUB_MAX_SHARDS) {
        snprintf(err, errlen, "shards: %d is outside 1..%d", nshards, HUB_MAX_SHARDS);
        return HR_ERR_INVALID;
    }
    hub *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return HR_ERR_NOMEM;
    }
    h->bus = b;
    h->cb = *cb;
    h->next_id = 1;
    h->refs = 1;
    h->ops_tail = &h->ops_head;
    uint64_t seed = (uint64_t)clock_now_ms() ^ (uint64_t)(uintptr_t)h;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != sizeof seed)
        seed ^= (uint64_t)getpid() << 32;
    h->recent = evcache_new(seed, REUSE_WINDOW_MS, REUSE_MAX_BYTES);
    pthread_mutex_init(&h->tab_lock, NULL);
    pthread_mutex_init(&h->op_lock, NULL);
    pthread_condattr_init(&h->op_cond_attr);
    pthread_condattr_setclock(&h->op_cond_attr, CLOCK_MONOTONIC);
    pthread_cond_init(&h->op_cond, &h->op_cond_attr);
    for (int i = 0; i < nshards; i++) {
        hub_shard *sh = calloc(1, sizeof *sh);
        if (!sh) {
            hub_free(h);
            snprintf(err, errlen, "out of memory");
            return HR_ERR_NOMEM;
        }
        sh->h = h;
        sh->idx = i;
        sh->ctx = ctxs[i];
        pthread_mutex_init(&sh->lock, NULL);
        h->shards[h->nshards++] = sh;
    }
    h->m_nats_subs = metrics_cell0(metrics_gauge(
        m, "herald_nats_subscriptions", "Distinct NATS interests (one per pattern).", NULL));
    h->m_lost = metrics_cell0(metrics_counter(
        m, "herald_hub_overload_drops_total",
        "Events dropped before fan-out because a service thread was overloaded.", NULL));
    h->m_encoded = metrics_cell0(metrics_counter(
        m, "herald_frames_encoded_total",
        "Live event frames encoded: one per NATS message, however many interests it matches.",
        NULL));
    h->m_invalid = metrics_cell0(
        metrics_counter(m, "herald_events_invalid_total",
                        "NATS messages never delivered: their subject is not valid.", NULL));
    h->m_consumers = metrics_cell0(metrics_gauge(
        m, "herald_jetstream_consumers",
        "JetStream consumers in use (shared live feeds and per-session replays).", NULL));
    metrics_family *replays =
        metrics_counter(m, "herald_replays_total", "Subscribes with `since`, by kind.", "kind");
    h->m_replays_seq = metrics_cell_get(replays, (const char *const[]){"seq"});
    h->m_replays_last = metrics_cell_get(replays, (const char *const[]){"last"});
    h->m_replayed = metrics_cell0(
        metrics_counter(m, "herald_replayed_events_total", "Events delivered by replays.", NULL));
    h->m_gaps = metrics_cell0(metrics_counter(
        m, "herald_history_gaps_total", "Resumes whose sequence was no longer stored.", NULL));
    replay_sink sink = {rp_started, rp_event, rp_batch_end, h};
    hr_status st = replayer_new(&h->rpl, b, h->m_consumers, h->m_invalid, &sink, err, errlen);
    if (st == HR_OK && !h->recent) {
        st = HR_ERR_NOMEM;
        snprintf(err, errlen, "out of memory");
    }
    if (st == HR_OK && pthread_create(&h->worker, NULL, worker_main, h) != 0) {
        st = HR_ERR_IO;
        snprintf(err, errlen, "cannot start the hub's worker thread");
    }
    if (st != HR_OK) {
        hub_free(h);
        return st;
    }
    h->worker_started = true;
    *out = h;
    return HR_OK;
}

hub_shard *hub_shard_at(hub *h, int i)
{
    return h->shards[i];
}

/* ---- shard thread API ------------------------------------------------------------ */

/* Hand a since-subscription's replay to the replayer. Only once its
 * interest is active: the live feed then covers whatever the replay ends
 * before. False on OOM. */
static bool replay_begin(hub *h, hub_sub *s)
{
    s->rp =
        replay_start(h->rpl, s->le->in->stream, s->le->in->pattern, s->since_last, s->since, s->sh);
    if (!s->rp)
        return false;
    replay_set_tag(s->rp, s);
    metrics_add(s->since_last ? h->m_replays_last : h->m_replays_seq, 1);
    return true;
}

static void replay_end(hub *h, hub_sub *s)
{
    if (!s->rp)
        return;
    replay_cancel(h->rpl, s->rp);
    s->rp = NULL;
}

/* Remove an interest nobody receives any more (under tab_lock); its NATS
 * subscription (if any) goes to the worker. A pending one waits for the
 * worker's answer (sub_finished drops it then). */
static void interest_drop(hub *h, interest *in)
{
    if (in->state == INTEREST_PENDING)
        return;
    pattern_remove(h, in);
    if (in->nsub) {
        in->unsub->kind = OP_UNSUB;
        in->unsub->nsub = in->nsub;
        op_push(h, in->unsub);
        in->unsub = NULL;
        metrics_add(h->m_nats_subs, -1);
        if (in->stream)
            metrics_add(h->m_consumers, -1);
    }
    interest_free(in);
}

/* Find or create the interest for `pattern` and count one more receiver on
 * shard `sh` (under tab_lock). *active: confirmed already. */
static interest *interest_get(hub *h, hub_shard *sh, const char *pattern, const char *stream,
                              bool *active, uint64_t *floor0, sub_closure **closure)
{
    interest *in = find_pattern(h, pattern);
    if (!in) {
        in = calloc(1, sizeof *in);
        op *o = calloc(1, sizeof *o);
        op *u = calloc(1, sizeof *u);
        sub_closure *c = calloc(1, sizeof *c + (size_t)h->nshards * sizeof(_Atomic uint64_t));
        char *p = strdup(pattern), *st = stream ? strdup(stream) : NULL;
        if (!in || !o || !u || !c || !p || (stream && !st)) {
            free(in);
            free(o);
            free(u);
            free(c);
            free(p);
            free(st);
            return NULL;
        }
        in->id = h->next_id++;
        in->pattern = p;
        in->stream = st;
        in->state = INTEREST_PENDING;
        in->unsub = u;
        in->closure = c;
        c->h = h;
        c->id = in->id;
        c->js = stream != NULL;
        uint64_t hp = net_hash_str(pattern) % NBUCKETS;
        in->next_by_pattern = h->by_pattern[hp];
        h->by_pattern[hp] = in;
        o->kind = OP_SUB;
        o->in = in;
        op_push(h, o);
    }
    /* Events start reaching this shard from here (set before the worker
     * reads the mask to confirm: no confirmation is missed). */
    atomic_fetch_or(&in->closure->mask, (uint64_t)1 << sh->idx);
    in->total++;
    *active = in->state == INTEREST_ACTIVE;
    *floor0 = in->floor0;
    *closure = in->closure;
    return in;
}

/* One receiver fewer (under tab_lock): a shard without receivers stops
 * getting the events; the last one drops the interest. */
static void interest_put(hub *h, hub_shard *sh, interest *in, bool shard_empty)
{
    if (shard_empty && in->closure)
        atomic_fetch_and(&in->closure->mask, ~((uint64_t)1 << sh->idx));
    if (--in->total == 0)
        interest_drop(h, in);
}

hub_sub *hub_subscribe(hub_shard *sh, const char *pattern, const char *stream,
                       const hub_since *since, void *owner)
{
    hub *h = sh->h;
    hub_sub *s = calloc(1, sizeof *s);
    lentry *fresh = calloc(1, sizeof *fresh);
    if (!s || !fresh) {
        free(s);
        free(fresh);
        return NULL;
    }
    bool active;
    uint64_t floor0;
    sub_closure *closure;
    pthread_mutex_lock(&h->tab_lock);
    interest *in = interest_get(h, sh, pattern, stream, &active, &floor0, &closure);
    pthread_mutex_unlock(&h->tab_lock);
    if (!in) {
        free(s);
        free(fresh);
        return NULL;
    }
    lentry *le = local_find(sh, in->id);
    if (!le) {
        le = fresh;
        fresh = NULL;
        le->id = in->id;
        le->in = in;
        le->closure = closure;
        le->active = active;
        le->floor = floor0;
        le->next = sh->by_id[le->id % LBUCKETS];
        sh->by_id[le->id % LBUCKETS] = le;
    }
    free(fresh);
    s->sh = sh;
    s->le = le;
    s->owner = owner;
    s->big_len = 0;
    if (since && in->stream) {
        s->has_since = true;
        s->since_last = since->last;
        s->since = since->seq;
        resume_init_replay(&s->rs, since->last ? 0 : since->seq);
    }
    s->next = le->subs;
    if (le->subs)
        le->subs->prev = s;
    le->subs = s;
    le->nsubs++;
    if (le->active) {
        /* A since-subscription is ready once its replay is set up. */
        if (s->has_since && !replay_begin(h, s)) {
            hub_unsubscribe(s);
            return NULL;
        }
        s->ready = !s->has_since;
    }
    return s;
}

void hub_unsubscribe(hub_sub *s)
{
    if (!s)
        return;
    hub_shard *sh = s->sh;
    hub *h = sh->h;
    lentry *le = s->le;
    interest *in = le->in;
    if (s->prev)
        s->prev->next = s->next;
    else
        le->subs = s->next;
    if (s->next)
        s->next->prev = s->prev;
    le->nsubs--;
    replay_end(h, s);
    free(s);
    bool empty = le->nsubs == 0;
    if (empty)
        local_remove(sh, le);
    pthread_mutex_lock(&h->tab_lock);
    interest_put(h, sh, in, empty);
    pthread_mutex_unlock(&h->tab_lock);
}

bool hub_sub_is_ready(const hub_sub *s)
{
    return s->ready;
}

void hub_sub_pump(hub_sub *s)
{
    hub *h = s->sh->h;
    if (!s->rp || !s->ready || s->fetching)
        return;
    size_t room = h->cb.room(s->sh->ctx, s);
    if (!room)
        return; /* called again when the owner's queue drains */
    /* Sized by the largest recent frame, so a batch fits the room however
     * large the messages; the first batch is small until sizes are known. */
    size_t n = s->big_len ? room / s->big_len : REPLAY_FIRST_BATCH;
    s->fetching = true;
    s->grant_live_max = s->rs.live_max;
    replay_grant(h->rpl, s->rp, (unsigned)(n < 1 ? 1 : n > REPLAY_BATCH ? REPLAY_BATCH : n));
}

/* The replay has read all it could: hand over to the live feed, or read on. */
static void replay_caught_up(hub *h, hub_sub *s, uint64_t gone_upto)
{
    if (!resume_caught_up(&s->rs, gone_upto)) {
        hub_sub_pump(s);
        return;
    }
    replay_end(h, s);
    h->cb.synced(s->sh->ctx, s, s->rs.floor);
}

static void replay_item(hub *h, hub_shard *sh, const item *it)
{
    hub_sub *s = replay_tag(it->rp); /* NULL once the owner cancelled it */
    if (!s)
        return;
    if (it->kind == ITEM_RP_EVENT) {
        s->big_len -= s->big_len / 64;
        if (it->f->len > s->big_len)
            s->big_len = it->f->len;
        if (!resume_on_replayed(&s->rs, it->seq))
            return;
        metrics_add(h->m_replayed, 1);
        h->cb.deliver(sh->ctx, s, it->f); /* may end s's session, never frees s */
        return;
    }
    if (it->kind == ITEM_RP_START) {
        const replay_started *st = &it->st;
        if (!st->ok) {
            h->cb.ready(sh->ctx, s, false, -1); /* the owner unsubscribes s */
            return;
        }
        if (st->gap) {
            s->rs.floor = st->first_seq - 1;
            metrics_add(h->m_gaps, 1);
        } else if (!s->since_last && s->rs.floor > st->last_seq) {
            s->rs.floor = st->last_seq; /* since beyond the stream's end */
        }
        s->ready = true;
        h->cb.ready(sh->ctx, s, true, st->gap ? (int64_t)st->first_seq : -1);
        if (st->pending == 0)
            replay_caught_up(h, s, 0);
        else
            hub_sub_pump(s);
        return;
    }
    /* ITEM_RP_BATCH */
    s->fetching = false;
    if (it->b.fatal) {
        h->cb.ready(sh->ctx, s, false, -1); /* the owner ends s */
        return;
    }
    if (!it->b.error && it->b.pending == 0)
        replay_caught_up(h, s, it->b.idle ? s->grant_live_max : 0);
    else
        hub_sub_pump(s);
}

void hub_sub_set_tag(hub_sub *s, uintptr_t tag)
{
    s->tag = tag;
}

uintptr_t hub_sub_tag(const hub_sub *s)
{
    return s->tag;
}

const char *hub_sub_pattern(const hub_sub *s)
{
    return s->le->in->pattern;
}

void *hub_sub_owner(const hub_sub *s)
{
    return s->owner;
}

/* The worker answered a subscribe this shard waits for. */
static void sub_done(hub *h, hub_shard *sh, const item *it)
{
    lentry *le = local_find(sh, it->id);
    if (!le || le->active)
        return; /* its receivers left meanwhile */
    if (it->ok) {
        le->active = true;
        le->floor = it->seq;
    }
    /* Tell every waiting receiver. On failure each owner unsubscribes its
     * hub_sub, which may free `le`: walk with care. */
    for (hub_sub *s = le->subs, *next; s; s = next) {
        next = s->next;
        if (s->ready || s->rp)
            continue;
        if (it->ok && s->has_since) {
            if (!replay_begin(h, s))
                h->cb.ready(sh->ctx, s, false, -1);
        } else {
            s->ready = it->ok;
            bool last = next == NULL;
            h->cb.ready(sh->ctx, s, it->ok, -1);
            if (!it->ok && last)
                return; /* `le` may be gone */
        }
    }
}

/* Swap a finished work vector with its inbox (under the shard's lock). */
static void take(hub_shard *sh, item_vec *w, item_vec *inbox)
{
    if (w->next != w->n)
        return;
    pthread_mutex_lock(&sh->lock);
    item_vec t = *inbox;
    *inbox = *w;
    inbox->n = inbox->next = 0;
    if (inbox == &sh->inbox)
        sh->inbox_bytes = 0;
    *w = t;
    w->next = 0;
    pthread_mutex_unlock(&sh->lock);
}

void hub_process(hub_shard *sh)
{
    hub *h = sh->h;
    item_vec *w = &sh->work;
    take(sh, w, &sh->inbox);
    size_t end = w->n - w->next > ITEMS_PER_TURN ? w->next + ITEMS_PER_TURN : w->n;
    for (; w->next < end; w->next++) {
        item *it = &w->v[w->next];
        if (it->kind == ITEM_SUB_DONE) {
            sub_done(h, sh, it);
            continue;
        }
        lentry *le = local_find(sh, it->id);
        if (it->kind == ITEM_LOST) {
            /* The closure is alive while the interest holds the subscription. */
            uint64_t n = le && le->closure == it->closure
                             ? atomic_exchange(&it->closure->lost[sh->idx], 0)
                             : 0;
            for (hub_sub *s = le && n ? le->subs : NULL, *next; s; s = next) {
                next = s->next;
                if (s->ready)
                    h->cb.lost(sh->ctx, s, n);
            }
            continue;
        }
        /* A re-created ordered consumer may repeat what it passed on. */
        if (le && it->seq) {
            if (it->seq <= le->floor)
                le = NULL;
            else
                le->floor = it->seq;
        }
        for (hub_sub *s = le ? le->subs : NULL, *next; s; s = next) {
            next = s->next; /* deliver may unsubscribe s (slow consumer) */
            if (s->has_since && !resume_on_live(&s->rs, it->seq))
                continue; /* held back during its replay, or already replayed */
            if (s->ready)
                h->cb.deliver(sh->ctx, s, it->f);
        }
        frame_release(it->f);
    }
    /* Then a bounded share of replay work, after the live events. */
    item_vec *rw = &sh->rp_work;
    take(sh, rw, &sh->rp_inbox);
    end = rw->n - rw->next > REPLAY_PER_TURN ? rw->next + REPLAY_PER_TURN : rw->n;
    for (; rw->next < end; rw->next++) {
        item *it = &rw->v[rw->next];
        replay_item(h, sh, it);
        frame_release(it->f);
        replay_release(it->rp);
    }
    /* More to do: come back after other work. That includes items pushed
     * while a work vector was still busy: their wake-up was spent on a turn
     * that could not take them. */
    bool more = w->next < w->n || rw->next < rw->n;
    if (!more) {
        pthread_mutex_lock(&sh->lock);
        more = sh->inbox.n || sh->rp_inbox.n;
        pthread_mutex_unlock(&sh->lock);
    }
    if (more)
        h->cb.wake(sh->ctx);
}

void hub_close(hub *h)
{
    if (!h)
        return;
    for (int i = 0; i < h->nshards; i++) {
        pthread_mutex_lock(&h->shards[i]->lock);
        h->shards[i]->closed = true;
        pthread_mutex_unlock(&h->shards[i]->lock);
    }
}

static void drain_vec(item_vec *v, size_t from)
{
    for (size_t i = from; i < v->n; i++) {
        frame_release(v->v[i].f);
        replay_release(v->v[i].rp);
    }
    v->n = v->next = 0;
}

void hub_shutdown(hub *h)
{
    if (!h || !h->worker_started)
        return;
    hub_close(h);
    /* Every receiver leaves (their interests are dropped or wait for the
     * worker's answer, which drops them). */
    for (int i = 0; i < h->nshards; i++) {
        hub_shard *sh = h->shards[i];
        for (size_t b = 0; b < LBUCKETS; b++)
            while (sh->by_id[b])
                hub_unsubscribe(sh->by_id[b]->subs);
    }
    op *stop = calloc(1, sizeof *stop);
    if (stop) {
        stop->kind = OP_STOP;
        op_push(h, stop);
        pthread_join(h->worker, NULL);
        h->worker_started = false;
    }
    replayer_free(h->rpl); /* deletes the replays' consumers */
    h->rpl = NULL;
    jsCtx_Destroy(h->js); /* before the connection goes */
    h->js = NULL;
    /* Nothing can push any more: release what is still queued. */
    for (int i = 0; i < h->nshards; i++) {
        hub_shard *sh = h->shards[i];
        pthread_mutex_lock(&sh->lock);
        drain_vec(&sh->inbox, 0);
        drain_vec(&sh->work, sh->work.next);
        drain_vec(&sh->rp_inbox, 0);
        drain_vec(&sh->rp_work, sh->rp_work.next);
        pthread_mutex_unlock(&sh->lock);
    }
}

void hub_free(hub *h)
{
    if (!h)
        return;
    hub_shutdown(h);
    hub_unref(h);
}

/* The last reference went: no NATS handler can run any more. */
static void hub_destroy(hub *h)
{
    for (op *o = h->ops_head, *n; o; o = n) {
        n = o->next;
        free(o);
    }
    /* Interests left: pending ones whose subscribe never ran. */
    for (size_t b = 0; b < NBUCKETS; b++)
        for (interest *in = h->by_pattern[b], *n; in; in = n) {
            n = in->next_by_pattern;
            free(in->closure);
            interest_free(in);
        }
    replayer_free(h->rpl);
    for (int i = 0; i < h->nshards; i++) {
        hub_shard *sh = h->shards[i];
        free(sh->inbox.v);
        free(sh->work.v);
        free(sh->rp_inbox.v);
        free(sh->rp_work.v);
        pthread_mutex_destroy(&sh->lock);
        free(sh);
    }
    pthread_mutex_destroy(&h->tab_lock);
    pthread_mutex_destroy(&h->op_lock);
    pthread_cond_destroy(&h->op_cond);
    pthread_condattr_destroy(&h->op_cond_attr);
    evcache_free(h->recent);
    free(h);
}
