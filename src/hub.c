/* hub: shared NATS interests, encode-once event frames, the inbox. */
#include "herald/hub.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "herald/log.h"
#include "herald/netutil.h"

#define NBUCKETS 8192

typedef enum { INTEREST_PENDING, INTEREST_ACTIVE } interest_state;

/* One distinct pattern. Owned by the owner thread; the NATS subscription in
 * it is created and destroyed by the worker. */
typedef struct interest {
    uint64_t id;
    char *pattern;
    interest_state state;
    natsSubscription *nsub; /* set once the worker confirmed it */
    hub_sub *subs;          /* doubly linked receivers */
    size_t nsubs;
    struct interest *next_by_pattern, *next_by_id;
} interest;

struct hub_sub {
    interest *in;
    void *owner;
    bool ready;
    hub_sub *prev, *next;
};

/* Passed to nats.c as the message handler closure; freed by nats.c's
 * on-complete callback once the handler can no longer run. */
typedef struct {
    hub *h;
    uint64_t id;
} sub_closure;

typedef enum { ITEM_EVENT, ITEM_SUB_DONE } item_kind;

typedef struct {
    item_kind kind;
    uint64_t id;
    frame *f;               /* EVENT: one reference */
    natsMsg *msg;           /* EVENT: for the subject; destroyed after delivery */
    natsSubscription *nsub; /* SUB_DONE: NULL on failure */
} item;

typedef struct {
    item *v;
    size_t n, cap;
} item_vec;

typedef enum { OP_SUB, OP_UNSUB, OP_STOP } op_kind;

typedef struct op {
    op_kind kind;
    uint64_t id;
    char *pattern;          /* OP_SUB */
    natsSubscription *nsub; /* OP_UNSUB */
    struct op *next;
} op;

struct hub {
    bus *bus;
    hub_callbacks cb;
    interest *by_pattern[NBUCKETS], *by_id[NBUCKETS];
    uint64_t next_id;
    size_t ninterests;
    /* inbox: NATS threads → owner thread */
    pthread_mutex_t in_lock;
    item_vec inbox, work;
    bool closed; /* under in_lock: no more pushes */
    /* worker: owner thread → worker */
    pthread_t worker;
    bool worker_started;
    pthread_mutex_t op_lock;
    pthread_cond_t op_cond;
    op *ops_head, **ops_tail;
    metrics_cell *m_nats_subs;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static interest *find_pattern(hub *h, const char *p)
{
    for (interest *in = h->by_pattern[hash_str(p) % NBUCKETS]; in; in = in->next_by_pattern)
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
    interest **pp = &h->by_pattern[hash_str(in->pattern) % NBUCKETS];
    while (*pp != in)
        pp = &(*pp)->next_by_pattern;
    *pp = in->next_by_pattern;
    pp = &h->by_id[in->id % NBUCKETS];
    while (*pp != in)
        pp = &(*pp)->next_by_id;
    *pp = in->next_by_id;
    h->ninterests--;
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

/* Any thread. Takes ownership of it->f and it->msg (released on failure). */
static void inbox_push(hub *h, const item *it)
{
    pthread_mutex_lock(&h->in_lock);
    bool ok = !h->closed && vec_push(&h->inbox, it);
    /* Wake-ups coalesce: only the first item needs one. Under the lock, so
     * hub_close cannot return while a wake-up is on its way. */
    if (ok && h->inbox.n == 1)
        h->cb.wake(h->cb.ctx);
    pthread_mutex_unlock(&h->in_lock);
    if (!ok) {
        frame_release(it->f);
        natsMsg_Destroy(it->msg);
        if (it->nsub) {
            natsSubscription_Unsubscribe(it->nsub);
            natsSubscription_Destroy(it->nsub);
        }
        return;
    }
}

/* NATS delivery thread: encode once, hand over. */
static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    sub_closure *c = closure;
    char now[40];
    net_rfc3339_now(now, sizeof now);
    const char *subject = natsMsg_GetSubject(msg);
    frame *f = frame_event(subject, strlen(subject), natsMsg_GetData(msg),
                           (size_t)natsMsg_GetDataLength(msg), now, -1);
    if (!f) {
        natsMsg_Destroy(msg);
        return;
    }
    item it = {.kind = ITEM_EVENT, .id = c->id, .f = f, .msg = msg};
    inbox_push(c->h, &it);
}

static void on_sub_complete(void *closure)
{
    free(closure);
}

/* ---- worker ------------------------------------------------------------------ */

static void op_push(hub *h, op *o)
{
    pthread_mutex_lock(&h->op_lock);
    *h->ops_tail = o;
    h->ops_tail = &o->next;
    pthread_cond_signal(&h->op_cond);
    pthread_mutex_unlock(&h->op_lock);
}

static natsSubscription *do_subscribe(hub *h, uint64_t id, const char *pattern)
{
    natsConnection *nc = bus_conn(h->bus);
    sub_closure *c = malloc(sizeof *c);
    if (!c)
        return NULL;
    c->h = h;
    c->id = id;
    natsSubscription *ns = NULL;
    natsStatus s = natsConnection_Subscribe(&ns, nc, pattern, on_msg, c);
    if (s != NATS_OK) {
        free(c);
        return NULL;
    }
    if (natsSubscription_SetOnCompleteCB(ns, on_sub_complete, c) != NATS_OK) {
        natsSubscription_Unsubscribe(ns);
        natsSubscription_Destroy(ns);
        return NULL; /* c may still be referenced by a running handler: leak it */
    }
    /* The owner thread may lag behind a burst; let nats.c buffer generously. */
    natsSubscription_SetPendingLimits(ns, 1 << 20, 512 << 20);
    /* `ok` promises the server has the interest: flush before confirming. */
    s = natsConnection_FlushTimeout(nc, 5000);
    if (s != NATS_OK) {
        log_debug("subscribe not confirmed", "{s:s, s:s}", "subject", pattern, "error",
                  natsStatus_GetText(s));
        natsSubscription_Unsubscribe(ns);
        natsSubscription_Destroy(ns);
        return NULL;
    }
    return ns;
}

static void *worker_main(void *arg)
{
    hub *h = arg;
    for (;;) {
        pthread_mutex_lock(&h->op_lock);
        while (!h->ops_head)
            pthread_cond_wait(&h->op_cond, &h->op_lock);
        op *o = h->ops_head;
        h->ops_head = o->next;
        if (!h->ops_head)
            h->ops_tail = &h->ops_head;
        pthread_mutex_unlock(&h->op_lock);
        if (o->kind == OP_STOP) {
            free(o);
            return NULL;
        }
        if (o->kind == OP_SUB) {
            item it = {.kind = ITEM_SUB_DONE, .id = o->id};
            it.nsub = do_subscribe(h, o->id, o->pattern);
            inbox_push(h, &it);
            free(o->pattern);
        } else {
            natsSubscription_Unsubscribe(o->nsub);
            natsSubscription_Destroy(o->nsub);
        }
        free(o);
    }
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
    if (pthread_create(&h->worker, NULL, worker_main, h) != 0) {
        hub_free(h);
        return NULL;
    }
    h->worker_started = true;
    return h;
}

hub_sub *hub_subscribe(hub *h, const char *pattern, void *owner)
{
    hub_sub *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    interest *in = find_pattern(h, pattern);
    if (!in) {
        in = calloc(1, sizeof *in);
        op *o = calloc(1, sizeof *o);
        char *p1 = strdup(pattern), *p2 = strdup(pattern);
        if (!in || !o || !p1 || !p2) {
            free(in);
            free(o);
            free(p1);
            free(p2);
            free(s);
            return NULL;
        }
        in->id = h->next_id++;
        in->pattern = p1;
        in->state = INTEREST_PENDING;
        uint64_t hp = hash_str(pattern) % NBUCKETS;
        in->next_by_pattern = h->by_pattern[hp];
        h->by_pattern[hp] = in;
        in->next_by_id = h->by_id[in->id % NBUCKETS];
        h->by_id[in->id % NBUCKETS] = in;
        h->ninterests++;
        o->kind = OP_SUB;
        o->id = in->id;
        o->pattern = p2;
        op_push(h, o);
    }
    s->in = in;
    s->owner = owner;
    s->ready = in->state == INTEREST_ACTIVE;
    s->next = in->subs;
    if (in->subs)
        in->subs->prev = s;
    in->subs = s;
    in->nsubs++;
    return s;
}

static void interest_drop(hub *h, interest *in)
{
    table_remove(h, in);
    if (in->nsub) {
        op *o = calloc(1, sizeof *o);
        if (o) {
            o->kind = OP_UNSUB;
            o->nsub = in->nsub;
            op_push(h, o);
        }
        metrics_add(h->m_nats_subs, -1);
    }
    free(in->pattern);
    free(in);
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

const char *hub_sub_pattern(const hub_sub *s)
{
    return s->in->pattern;
}

void *hub_sub_owner(const hub_sub *s)
{
    return s->owner;
}

static void sub_done(hub *h, uint64_t id, natsSubscription *nsub)
{
    interest *in = find_id(h, id);
    if (!in) { /* cannot happen: pending interests stay in the table */
        if (nsub) {
            natsSubscription_Unsubscribe(nsub);
            natsSubscription_Destroy(nsub);
        }
        return;
    }
    if (nsub) {
        in->nsub = nsub;
        in->state = INTEREST_ACTIVE;
        metrics_add(h->m_nats_subs, 1);
        if (in->nsubs == 0) {
            interest_drop(h, in);
            return;
        }
    }
    /* Tell every waiting receiver. On failure each owner unsubscribes its
     * hub_sub, which may free the interest: walk a snapshot. */
    hub_sub *s = in->subs;
    bool ok = nsub != NULL;
    if (!ok && in->nsubs == 0) {
        table_remove(h, in);
        free(in->pattern);
        free(in);
        return;
    }
    while (s) {
        hub_sub *next = s->next;
        if (!s->ready) {
            s->ready = ok;
            h->cb.ready(h->cb.ctx, s, ok);
        }
        s = next;
    }
    /* All failed receivers unsubscribed; a failed interest then has no
     * receivers and no NATS subscription: free it. */
    if (!ok) {
        in = find_id(h, id);
        if (in && in->nsubs == 0) {
            table_remove(h, in);
            free(in->pattern);
            free(in);
        }
    }
}

void hub_process(hub *h)
{
    pthread_mutex_lock(&h->in_lock);
    item_vec t = h->inbox;
    h->inbox = h->work;
    h->work = t;
    pthread_mutex_unlock(&h->in_lock);
    item_vec *w = &h->work;
    for (size_t i = 0; i < w->n; i++) {
        item *it = &w->v[i];
        if (it->kind == ITEM_SUB_DONE) {
            sub_done(h, it->id, it->nsub);
            continue;
        }
        interest *in = find_id(h, it->id);
        if (in) {
            const char *subject = natsMsg_GetSubject(it->msg);
            size_t slen = strlen(subject);
            for (hub_sub *s = in->subs, *next; s; s = next) {
                next = s->next; /* deliver may unsubscribe s (slow consumer) */
                if (s->ready)
                    h->cb.deliver(h->cb.ctx, s, it->f, subject, slen);
            }
        }
        frame_release(it->f);
        natsMsg_Destroy(it->msg);
    }
    w->n = 0;
}

static void drain_vec(item_vec *v)
{
    for (size_t i = 0; i < v->n; i++) {
        frame_release(v->v[i].f);
        natsMsg_Destroy(v->v[i].msg);
        if (v->v[i].nsub) {
            natsSubscription_Unsubscribe(v->v[i].nsub);
            natsSubscription_Destroy(v->v[i].nsub);
        }
    }
    v->n = 0;
}

void hub_close(hub *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->in_lock);
    h->closed = true;
    pthread_mutex_unlock(&h->in_lock);
}

void hub_shutdown(hub *h)
{
    if (!h || !h->worker_started)
        return;
    hub_close(h);
    /* Unsubscribe everything still active, then stop the worker. */
    for (size_t b = 0; b < NBUCKETS; b++) {
        while (h->by_id[b]) {
            interest *in = h->by_id[b];
            while (in->subs)
                hub_unsubscribe(h, in->subs); /* may drop `in` */
            if (h->by_id[b] == in) {          /* pending: drop it ourselves */
                table_remove(h, in);
                free(in->pattern);
                free(in);
            }
        }
    }
    op *o = calloc(1, sizeof *o);
    if (o) {
        o->kind = OP_STOP;
        op_push(h, o);
        pthread_join(h->worker, NULL);
        h->worker_started = false;
    }
    /* Nothing can push any more: release what is still queued. */
    pthread_mutex_lock(&h->in_lock);
    drain_vec(&h->inbox);
    drain_vec(&h->work);
    pthread_mutex_unlock(&h->in_lock);
}

void hub_free(hub *h)
{
    if (!h)
        return;
    hub_shutdown(h);
    free(h->inbox.v);
    free(h->work.v);
    for (op *o = h->ops_head, *n; o; o = n) {
        n = o->next;
        free(o->pattern);
        free(o);
    }
    pthread_mutex_destroy(&h->in_lock);
    pthread_mutex_destroy(&h->op_lock);
    pthread_cond_destroy(&h->op_cond);
    free(h);
}
