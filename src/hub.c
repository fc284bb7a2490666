/* hub: shared NATS interests, encode-once event frames, the inbox. */
#include "herald/hub.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "herald/log.h"
#include "herald/netutil.h"
#include "herald/replay.h"
#include "herald/resume.h"
#include "herald/subject.h"

#define NBUCKETS           8192
#define INBOX_MAX_BYTES    (64u << 20) /* events waiting for the owner thread */
#define ITEMS_PER_TURN     4096        /* bounded work per service turn */
#define REPLAY_PER_TURN    512 /* replay items per turn: live events never wait behind more */
#define FLUSH_TIMEOUT_MS   3000
#define JS_REQUEST_MS      3000
#define JS_HEARTBEAT_S     2    /* a lost ordered consumer is noticed in 4-8 s */
#define REPLAY_BATCH       1024 /* messages per replay batch at most */
#define REPLAY_FIRST_BATCH 16

typedef enum { INTEREST_PENDING, INTEREST_ACTIVE } interest_state;

typedef struct sub_closure sub_closure;

/* One distinct pattern. Owned by the owner thread; the NATS subscription in
 * it is created and destroyed by the worker. */
typedef struct interest {
    uint64_t id;
    char *pattern;
    char *stream;   /* history stream feeding it (ordered consumer), NULL: core NATS */
    uint64_t floor; /* stream-fed: highest sequence passed on (a re-created consumer may repeat) */
    interest_state state;
    natsSubscription *nsub; /* set once the worker confirmed it */
    sub_closure *closure;   /* the handler's closure (valid while nsub is) */
    hub_sub *subs;          /* doubly linked receivers */
    size_t nsubs;
    struct op *unsub; /* preallocated OP_UNSUB: dropping never fails */
    struct interest *next_by_pattern, *next_by_id;
} interest;

struct hub_sub {
    interest *in;
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

/* Passed to nats.c as the message handler closure; freed by nats.c's
 * on-complete callback once the handler can no longer run. */
struct sub_closure {
    hub *h;
    uint64_t id;
    bool js;               /* an ordered consumer: messages carry stream sequences */
    _Atomic uint64_t lost; /* events dropped because the inbox was full */
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
    uint64_t id;
    uint64_t seq;           /* EVENT, RP_EVENT: stream sequence (0: none); SUB_DONE: floor */
    frame *f;               /* EVENT, RP_EVENT: one reference */
    natsSubscription *nsub; /* SUB_DONE: NULL on failure */
    sub_closure *closure;   /* SUB_DONE / LOST */
    replay *rp;             /* RP_*: one reference */
    replay_started st;      /* RP_START */
    replay_batch b;         /* RP_BATCH */
} item;

typedef struct {
    item *v;
    size_t n, cap, next; /* next: first unprocessed item (work vector) */
} item_vec;

typedef enum { OP_SUB, OP_UNSUB, OP_STOP } op_kind;

typedef struct op {
    op_kind kind;
    uint64_t id;
    char *pattern;          /* OP_SUB */
    char *stream;           /* OP_SUB: history stream or NULL */
    natsSubscription *nsub; /* OP_UNSUB */
    struct op *next;
} op;

struct hub {
    bus *bus;
    hub_callbacks cb;
    interest *by_pattern[NBUCKETS], *by_id[NBUCKETS];
    uint64_t next_id;
    /* inbox: NATS threads → owner thread */
    pthread_mutex_t in_lock;
    item_vec inbox, work;
    item_vec rp_inbox, rp_work; /* replay items: their own queue, a bounded share per turn */
    size_t inbox_bytes;         /* frame bytes in `inbox` (under in_lock) */
    bool closed;                /* under in_lock: no more pushes or wake-ups */
    bool warned_full;
    /* worker: owner thread → worker */
    pthread_t worker;
    bool worker_started;
    pthread_mutex_t op_lock;
    pthread_cond_t op_cond;
    op *ops_head, **ops_tail;
    _Atomic int live_closures; /* closures nats.c may still call */
    jsCtx *js;                 /* worker: ordered consumers */
    replayer *rpl;             /* per-subscription replays */
    metrics_cell *m_nats_subs, *m_lost, *m_invalid, *m_consumers;
    metrics_cell *m_replays_seq, *m_replays_last, *m_replayed, *m_gaps;
};

static interest *find_pattern(hub *h, const char *p)
{
    for (interest *in = h->by_pattern[net_hash_str(p) % NBUCKETS]; in; in = in->next_by_pattern)
        if (strcmp(in->pattern, p) == 0)
            return in;
    return NULL;
}

static interest *find_id(hub *h, uint64_t id)
{
    for (interest *in = h->by_id[id % NBUCKETS]; in; in = in->next_by_id)
        if (in->id == id)
            return in;
    return NULL;
}

static void table_remove(hub *h, interest *in)
{
    interest **pp = &h->by_pattern[net_hash_str(in->pattern) % NBUCKETS];
    while (*pp != in)
        pp = &(*pp)->next_by_pattern;
    *pp = in->next_by_pattern;
    pp = &h->by_id[in->id % NBUCKETS];
    while (*pp != in)
        pp = &(*pp)->next_by_id;
    *pp = in->next_by_id;
}

static void interest_free(interest *in)
{
    free(in->pattern);
    free(in->stream);
    free(in->unsub);
    free(in);
}

/* ---- inbox ------------------------------------------------------------------ */

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

/* Any thread. Takes ownership of it->f and it->nsub (released on failure).
 * Returns false if the item was refused. */
static bool inbox_push(hub *h, const item *it)
{
    item_vec *v = it->kind >= ITEM_RP_START ? &h->rp_inbox : &h->inbox;
    pthread_mutex_lock(&h->in_lock);
    bool ok = !h->closed && vec_push(v, it);
    if (ok && it->f && v == &h->inbox) /* replays are bounded by their credit */
        h->inbox_bytes += it->f->len;
    /* Wake-ups coalesce: only the first item needs one. Under the lock, so
     * hub_close cannot return while a wake-up is on its way. */
    if (ok && v->n == 1)
        h->cb.wake(h->cb.ctx);
    pthread_mutex_unlock(&h->in_lock);
    if (!ok) {
        frame_release(it->f);
        replay_release(it->rp);
        if (it->nsub)
            unsubscribe_now(it->nsub);
    }
    return ok;
}

/* NATS delivery thread: encode once, hand over; the message is not kept. */
static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    sub_closure *c = closure;
    hub *h = c->h;
    const char *subject = natsMsg_GetSubject(msg);
    size_t slen = strlen(subject);
    /* NATS takes any non-whitespace bytes; a browser must fail its
     * connection on invalid UTF-8 in a text frame (contract §3). */
    if (!subject_valid(subject, slen)) {
        metrics_add(h->m_invalid, 1);
        natsMsg_Destroy(msg);
        return;
    }
    uint64_t seq = 0;
    uint64_t pending;
    if (c->js && (!resume_parse_ack(natsMsg_GetReply(msg), &seq, &pending) || !seq)) {
        natsMsg_Destroy(msg);
        return;
    }
    char now[40];
    net_rfc3339_now(now, sizeof now);
    frame *f = frame_event(subject, slen, natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg),
                           now, seq ? (int64_t)seq : -1);
    natsMsg_Destroy(msg);
    if (!f)
        return;
    /* Backpressure: past INBOX_MAX_BYTES the owner thread is overloaded.
     * Drop here and let every receiver learn how many it missed. */
    pthread_mutex_lock(&h->in_lock);
    bool full = h->inbox_bytes + f->len > INBOX_MAX_BYTES;
    bool warn = full && !h->warned_full;
    if (full)
        h->warned_full = true;
    else if (h->inbox_bytes < INBOX_MAX_BYTES / 2)
        h->warned_full = false;
    pthread_mutex_unlock(&h->in_lock);
    if (full) {
        frame_release(f);
        metrics_add(h->m_lost, 1);
        if (warn)
            log_warn("event inbox full: dropping events until the service thread catches up", NULL);
        if (atomic_fetch_add(&c->lost, 1) == 0) {
            item it = {.kind = ITEM_LOST, .id = c->id, .closure = c};
            inbox_push(h, &it);
        }
        return;
    }
    item it = {.kind = ITEM_EVENT, .id = c->id, .f = f, .seq = seq};
    inbox_push(h, &it);
}

static void on_sub_complete(void *closure)
{
    sub_closure *c = closure;
    atomic_fetch_sub(&c->h->live_closures, 1);
    free(c);
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

/* A stream-fed interest: an ordered consumer from the stream's next
 * sequence (*floor = its last), re-created by nats.c from the next unseen
 * sequence after a lost node, a deletion or a leader change. */
static natsStatus js_subscribe(hub *h, natsSubscription **ns, const char *pattern,
                               const char *stream, sub_closure *c, uint64_t *floor)
{
    if (!h->js) {
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.Wait = JS_REQUEST_MS;
        natsStatus s = natsConnection_JetStream(&h->js, bus_conn(h->bus), &jo);
        if (s != NATS_OK)
            return s;
    }
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, h->js, stream, NULL, &jerr);
    if (s != NATS_OK)
        return s;
    *floor = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = stream;
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = *floor + 1;
    so.Config.Heartbeat = (int64_t)JS_HEARTBEAT_S * 1000000000;
    return js_Subscribe(ns, h->js, pattern, on_msg, c, NULL, &so, &jerr);
}

/* Subscribe without confirming; NULL on failure. */
static natsSubscription *do_subscribe(hub *h, uint64_t id, const char *pattern, const char *stream,
                                      sub_closure **out, uint64_t *floor)
{
    sub_closure *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->h = h;
    c->id = id;
    c->js = stream != NULL;
    atomic_fetch_add(&h->live_closures, 1);
    natsSubscription *ns = NULL;
    natsStatus st = stream ? js_subscribe(h, &ns, pattern, stream, c, floor)
                           : natsConnection_Subscribe(&ns, bus_conn(h->bus), pattern, on_msg, c);
    if (st != NATS_OK && stream)
        log_warn("cannot read a history stream", "{s:s, s:s, s:s}", "stream", stream, "pattern",
                 pattern, "error", natsStatus_GetText(st));
    if (st != NATS_OK) {
        atomic_fetch_sub(&h->live_closures, 1);
        free(c);
        return NULL;
    }
    if (natsSubscription_SetOnCompleteCB(ns, on_sub_complete, c) != NATS_OK) {
        /* c may be in use by a running handler: leak it, and keep
         * live_closures up so hub_free does not free the hub under it. */
        unsubscribe_now(ns);
        return NULL;
    }
    /* The hub applies its own bound (INBOX_MAX_BYTES); nats.c's must not
     * trigger first. */
    natsSubscription_SetPendingLimits(ns, 1 << 20, 512 << 20);
    *out = c;
    return ns;
}

/* Take every queued op at once: unsubscribes first, then all subscribes
 * confirmed by a single flush (one round trip however many patterns). */
static void *worker_main(void *arg)
{
    hub *h = arg;
    for (;;) {
        pthread_mutex_lock(&h->op_lock);
        while (!h->ops_head)
            pthread_cond_wait(&h->op_cond, &h->op_lock);
        op *batch = h->ops_head;
        h->ops_head = NULL;
        h->ops_tail = &h->ops_head;
        pthread_mutex_unlock(&h->op_lock);

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
        item *done = nsub ? calloc(nsub, sizeof *done) : NULL;
        size_t k = 0;
        for (op *o = batch; o; o = o->next) {
            if (o->kind != OP_SUB || stop)
                continue;
            item it = {.kind = ITEM_SUB_DONE, .id = o->id};
            it.nsub = do_subscribe(h, o->id, o->pattern, o->stream, &it.closure, &it.seq);
            if (done)
                done[k++] = it;
            else if (it.nsub)
                unsubscribe_now(it.nsub);
        }
        /* `ok` promises the server has the interest: flush before confirming. */
        bool flushed =
            k == 0 || natsConnection_FlushTimeout(bus_conn(h->bus), FLUSH_TIMEOUT_MS) == NATS_OK;
        for (size_t i = 0; i < k; i++) {
            if (!flushed && done[i].nsub) {
                unsubscribe_now(done[i].nsub);
                done[i].nsub = NULL;
            }
            inbox_push(h, &done[i]);
        }
        free(done);
        /* Subscribes that could not even be recorded (OOM) fail too. */
        if (!done && nsub && !stop)
            for (op *o = batch; o; o = o->next)
                if (o->kind == OP_SUB) {
                    item it = {.kind = ITEM_SUB_DONE, .id = o->id};
                    inbox_push(h, &it);
                }
        for (op *o = batch, *n; o; o = n) {
            n = o->next;
            free(o->pattern);
            free(o->stream);
            free(o);
        }
        if (stop)
            return NULL;
    }
}

/* ---- replays: replayer thread → inbox ---------------------------------------- */

static void rp_started(void *ctx, replay *rp, const replay_started *st)
{
    item it = {.kind = ITEM_RP_START, .rp = replay_ref(rp), .st = *st};
    inbox_push(ctx, &it);
}

static void rp_event(void *ctx, replay *rp, frame *f, uint64_t seq)
{
    item it = {.kind = ITEM_RP_EVENT, .rp = replay_ref(rp), .f = f, .seq = seq};
    inbox_push(ctx, &it);
}

static void rp_batch_end(void *ctx, replay *rp, const replay_batch *b)
{
    item it = {.kind = ITEM_RP_BATCH, .rp = replay_ref(rp), .b = *b};
    inbox_push(ctx, &it);
}

/* ---- owner thread API ---------------------------------------------------------- */

hub *hub_new(bus *b, metrics *m, const hub_callbacks *cb)
{
    hub *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->bus = b;
    h->cb = *cb;
    h->next_id = 1;
    h->ops_tail = &h->ops_head;
    pthread_mutex_init(&h->in_lock, NULL);
    pthread_mutex_init(&h->op_lock, NULL);
    pthread_cond_init(&h->op_cond, NULL);
    h->m_nats_subs = metrics_cell0(metrics_gauge(
        m, "herald_nats_subscriptions", "Distinct NATS interests (one per pattern).", NULL));
    h->m_lost = metrics_cell0(metrics_counter(
        m, "herald_hub_overload_drops_total",
        "Events dropped before fan-out because the service thread was overloaded.", NULL));
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
    h->rpl = replayer_new(b, h->m_consumers, h->m_invalid, &sink);
    if (!h->rpl || pthread_create(&h->worker, NULL, worker_main, h) != 0) {
        hub_free(h);
        return NULL;
    }
    h->worker_started = true;
    return h;
}

static void interest_drop(hub *h, interest *in);

/* Hand a since-subscription's replay to the replayer. Only once its
 * interest is active: the live feed then covers whatever the replay ends
 * before. False on OOM. */
static bool replay_begin(hub *h, hub_sub *s)
{
    s->rp = replay_start(h->rpl, s->in->stream, s->in->pattern, s->since_last, s->since);
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

hub_sub *hub_subscribe(hub *h, const char *pattern, const char *stream, const hub_since *since,
                       void *owner)
{
    hub_sub *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    interest *in = find_pattern(h, pattern);
    if (!in) {
        in = calloc(1, sizeof *in);
        op *o = calloc(1, sizeof *o);
        char *p1 = strdup(pattern), *p2 = strdup(pattern);
        char *s1 = stream ? strdup(stream) : NULL, *s2 = stream ? strdup(stream) : NULL;
        op *u = calloc(1, sizeof *u);
        if (!in || !o || !p1 || !p2 || !u || (stream && (!s1 || !s2))) {
            free(in);
            free(o);
            free(p1);
            free(p2);
            free(s1);
            free(s2);
            free(u);
            free(s);
            return NULL;
        }
        in->id = h->next_id++;
        in->pattern = p1;
        in->stream = s1;
        in->state = INTEREST_PENDING;
        in->unsub = u;
        uint64_t hp = net_hash_str(pattern) % NBUCKETS;
        in->next_by_pattern = h->by_pattern[hp];
        h->by_pattern[hp] = in;
        in->next_by_id = h->by_id[in->id % NBUCKETS];
        h->by_id[in->id % NBUCKETS] = in;
        o->kind = OP_SUB;
        o->id = in->id;
        o->pattern = p2;
        o->stream = s2;
        op_push(h, o);
    }
    s->in = in;
    s->owner = owner;
    s->big_len = 0;
    if (since && in->stream) {
        s->has_since = true;
        s->since_last = since->last;
        s->since = since->seq;
        resume_init_replay(&s->rs, since->last ? 0 : since->seq);
    }
    if (in->state == INTEREST_ACTIVE) {
        /* A since-subscription is ready once its replay is set up. */
        if (s->has_since && !replay_begin(h, s)) {
            if (in->nsubs == 0)
                interest_drop(h, in);
            free(s);
            return NULL;
        }
        s->ready = !s->has_since;
    }
    s->next = in->subs;
    if (in->subs)
        in->subs->prev = s;
    in->subs = s;
    in->nsubs++;
    return s;
}

/* Remove an interest; its NATS subscription (if any) goes to the worker. */
static void interest_drop(hub *h, interest *in)
{
    table_remove(h, in);
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

void hub_unsubscribe(hub *h, hub_sub *s)
{
    if (!s)
        return;
    interest *in = s->in;
    if (s->prev)
        s->prev->next = s->next;
    else
        in->subs = s->next;
    if (s->next)
        s->next->prev = s->prev;
    in->nsubs--;
    replay_end(h, s);
    free(s);
    /* A pending interest stays until the worker answers (then it is dropped
     * if nobody is left). */
    if (in->nsubs == 0 && in->state == INTEREST_ACTIVE)
        interest_drop(h, in);
}

bool hub_sub_is_ready(const hub_sub *s)
{
    return s->ready;
}

bool hub_sub_replaying(const hub_sub *s)
{
    return s->rp != NULL;
}

void hub_sub_pump(hub *h, hub_sub *s)
{
    if (!s->rp || !s->ready || s->fetching)
        return;
    size_t room = h->cb.room(h->cb.ctx, s);
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
        hub_sub_pump(h, s);
        return;
    }
    replay_end(h, s);
    h->cb.synced(h->cb.ctx, s, s->rs.floor);
}

static void replay_item(hub *h, const item *it)
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
        h->cb.deliver(h->cb.ctx, s, it->f); /* may end s's session, never frees s */
        return;
    }
    if (it->kind == ITEM_RP_START) {
        const replay_started *st = &it->st;
        if (!st->ok) {
            h->cb.ready(h->cb.ctx, s, false, -1); /* the owner unsubscribes s */
            return;
        }
        if (st->gap) {
            s->rs.floor = st->first_seq - 1;
            metrics_add(h->m_gaps, 1);
        } else if (!s->since_last && s->rs.floor > st->last_seq) {
            s->rs.floor = st->last_seq; /* since beyond the stream's end */
        }
        s->ready = true;
        h->cb.ready(h->cb.ctx, s, true, st->gap ? (int64_t)st->first_seq : -1);
        if (!s->rp)
            return;
        if (st->pending == 0)
            replay_caught_up(h, s, 0);
        else
            hub_sub_pump(h, s);
        return;
    }
    /* ITEM_RP_BATCH */
    s->fetching = false;
    if (it->b.fatal) {
        h->cb.ready(h->cb.ctx, s, false, -1); /* the owner ends s */
        return;
    }
    if (!it->b.error && it->b.pending == 0)
        replay_caught_up(h, s, it->b.idle ? s->grant_live_max : 0);
    else
        hub_sub_pump(h, s);
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
    return s->in->pattern;
}

void *hub_sub_owner(const hub_sub *s)
{
    return s->owner;
}

static void sub_done(hub *h, const item *it)
{
    interest *in = find_id(h, it->id);
    if (!in) { /* cannot happen: pending interests stay in the table */
        if (it->nsub)
            unsubscribe_now(it->nsub);
        return;
    }
    bool ok = it->nsub != NULL;
    if (ok) {
        in->nsub = it->nsub;
        in->closure = it->closure;
        in->state = INTEREST_ACTIVE;
        in->floor = it->seq;
        metrics_add(h->m_nats_subs, 1);
        if (in->stream)
            metrics_add(h->m_consumers, 1);
    }
    if (in->nsubs == 0) {
        if (ok)
            interest_drop(h, in);
        else {
            table_remove(h, in);
            interest_free(in);
        }
        return;
    }
    /* Tell every waiting receiver. On failure each owner unsubscribes its
     * hub_sub; the interest stays PENDING meanwhile, so it is not freed. */
    for (hub_sub *s = in->subs, *next; s; s = next) {
        next = s->next;
        if (s->ready || s->rp)
            continue;
        if (ok && s->has_since) {
            if (!replay_begin(h, s))
                h->cb.ready(h->cb.ctx, s, false, -1);
        } else {
            s->ready = ok;
            h->cb.ready(h->cb.ctx, s, ok, -1);
        }
    }
    if (!ok && in->nsubs == 0) {
        table_remove(h, in);
        interest_free(in);
    }
}

/* Swap a finished work vector with its inbox (under the lock). */
static void take(hub *h, item_vec *w, item_vec *inbox)
{
    if (w->next != w->n)
        return;
    pthread_mutex_lock(&h->in_lock);
    item_vec t = *inbox;
    *inbox = *w;
    inbox->n = inbox->next = 0;
    if (inbox == &h->inbox)
        h->inbox_bytes = 0;
    *w = t;
    w->next = 0;
    pthread_mutex_unlock(&h->in_lock);
}

void hub_process(hub *h)
{
    item_vec *w = &h->work;
    take(h, w, &h->inbox);
    size_t end = w->n - w->next > ITEMS_PER_TURN ? w->next + ITEMS_PER_TURN : w->n;
    for (; w->next < end; w->next++) {
        item *it = &w->v[w->next];
        if (it->kind == ITEM_SUB_DONE) {
            sub_done(h, it);
            continue;
        }
        interest *in = find_id(h, it->id);
        if (it->kind == ITEM_LOST) {
            /* The closure is alive while its interest holds the subscription. */
            uint64_t n =
                in && in->closure == it->closure ? atomic_exchange(&in->closure->lost, 0) : 0;
            for (hub_sub *s = in && n ? in->subs : NULL, *next; s; s = next) {
                next = s->next;
                if (s->ready)
                    h->cb.lost(h->cb.ctx, s, n);
            }
            continue;
        }
        /* A re-created ordered consumer may repeat what it passed on. */
        if (in && it->seq) {
            if (it->seq <= in->floor)
                in = NULL;
            else
                in->floor = it->seq;
        }
        for (hub_sub *s = in ? in->subs : NULL, *next; s; s = next) {
            next = s->next; /* deliver may unsubscribe s (slow consumer) */
            if (s->has_since && !resume_on_live(&s->rs, it->seq))
                continue; /* held back during its replay, or already replayed */
            if (s->ready)
                h->cb.deliver(h->cb.ctx, s, it->f);
        }
        frame_release(it->f);
    }
    /* Then a bounded share of replay work, after the live events. */
    item_vec *rw = &h->rp_work;
    take(h, rw, &h->rp_inbox);
    end = rw->n - rw->next > REPLAY_PER_TURN ? rw->next + REPLAY_PER_TURN : rw->n;
    for (; rw->next < end; rw->next++) {
        item *it = &rw->v[rw->next];
        replay_item(h, it);
        frame_release(it->f);
        replay_release(it->rp);
    }
    /* More to do: come back after other work. That includes items pushed
     * while a work vector was still busy: their wake-up was spent on a turn
     * that could not take them. */
    bool more = w->next < w->n || rw->next < rw->n;
    if (!more) {
        pthread_mutex_lock(&h->in_lock);
        more = h->inbox.n || h->rp_inbox.n;
        pthread_mutex_unlock(&h->in_lock);
    }
    if (more)
        h->cb.wake(h->cb.ctx);
}

void hub_close(hub *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->in_lock);
    h->closed = true;
    pthread_mutex_unlock(&h->in_lock);
}

static void drain_vec(item_vec *v, size_t from)
{
    for (size_t i = from; i < v->n; i++) {
        frame_release(v->v[i].f);
        replay_release(v->v[i].rp);
        if (v->v[i].nsub)
            unsubscribe_now(v->v[i].nsub);
    }
    v->n = v->next = 0;
}

void hub_shutdown(hub *h)
{
    if (!h || !h->worker_started)
        return;
    hub_close(h);
    /* Subscribes still queued are pointless now: drop them and stop first. */
    op *stop = calloc(1, sizeof *stop);
    pthread_mutex_lock(&h->op_lock);
    for (op **pp = &h->ops_head; *pp;) {
        op *o = *pp;
        if (o->kind == OP_SUB) {
            *pp = o->next;
            free(o->pattern);
            free(o->stream);
            free(o);
        } else {
            pp = &o->next;
        }
    }
    h->ops_tail = &h->ops_head;
    while (*h->ops_tail)
        h->ops_tail = &(*h->ops_tail)->next;
    pthread_mutex_unlock(&h->op_lock);
    /* Unsubscribe everything still active (queued to the worker). */
    for (size_t b = 0; b < NBUCKETS; b++) {
        while (h->by_id[b]) {
            interest *in = h->by_id[b];
            while (in->subs)
                hub_unsubscribe(h, in->subs); /* may drop `in` */
            if (h->by_id[b] == in) {          /* pending: drop it ourselves */
                table_remove(h, in);
                interest_free(in);
            }
        }
    }
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
    pthread_mutex_lock(&h->in_lock);
    drain_vec(&h->inbox, 0);
    drain_vec(&h->work, h->work.next);
    drain_vec(&h->rp_inbox, 0);
    drain_vec(&h->rp_work, h->rp_work.next);
    pthread_mutex_unlock(&h->in_lock);
}

void hub_free(hub *h)
{
    if (!h)
        return;
    hub_shutdown(h);
    /* nats.c calls on_msg/on_sub_complete with closures pointing here until
     * each subscription completed; never free the hub under them. */
    for (int i = 0; i < 200 && atomic_load(&h->live_closures) > 0; i++)
        usleep(10 * 1000);
    if (atomic_load(&h->live_closures) > 0) {
        log_warn("NATS subscriptions still completing at exit; not freeing the hub", NULL);
        return;
    }
    free(h->inbox.v);
    free(h->work.v);
    free(h->rp_inbox.v);
    free(h->rp_work.v);
    for (op *o = h->ops_head, *n; o; o = n) {
        n = o->next;
        free(o->pattern);
        free(o->stream);
        free(o);
    }
    replayer_free(h->rpl);
    pthread_mutex_destroy(&h->in_lock);
    pthread_mutex_destroy(&h->op_lock);
    pthread_cond_destroy(&h->op_cond);
    free(h);
}
