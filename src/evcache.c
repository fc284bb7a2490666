/* evcache: recently encoded event frames, shared by the copies of a message. */
#include "herald/evcache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    frame *f;      /* one reference, or NULL */
    uint64_t hash; /* of f's content */
    int64_t at_ms; /* when f was built */
} entry;

/* A set of EVCACHE_WAYS entries: a message evicts the oldest in its set. */
typedef struct {
    pthread_mutex_t lock;
    entry e[EVCACHE_WAYS];
} set;

struct evcache {
    uint64_t seed;
    int64_t window_ms;
    size_t max_bytes;
    _Atomic size_t bytes; /* held by the entries */
    set sets[EVCACHE_SETS];
};

/* What a held frame costs: its allocation, roughly. */
static size_t cost(const frame *f)
{
    return sizeof *f + FRAME_PRE + f->len + f->subject_len + f->raw_len + 2;
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v * 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 32);
}

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    h = mix(h, n);
    for (; n >= 8; b += 8, n -= 8) {
        uint64_t v;
        memcpy(&v, b, 8);
        h = mix(h, v);
    }
    uint64_t v = 0;
    memcpy(&v, b, n);
    return mix(h, v);
}

evcache *evcache_new(uint64_t seed, int64_t window_ms, size_t max_bytes)
{
    evcache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->seed = seed;
    c->window_ms = window_ms;
    c->max_bytes = max_bytes;
    atomic_init(&c->bytes, 0);
    for (size_t i = 0; i < EVCACHE_SETS; i++)
        pthread_mutex_init(&c->sets[i].lock, NULL);
    return c;
}

void evcache_free(evcache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < EVCACHE_SETS; i++) {
        for (size_t w = 0; w < EVCACHE_WAYS; w++)
            frame_release(c->sets[i].e[w].f);
        pthread_mutex_destroy(&c->sets[i].lock);
    }
    free(c);
}

frame *evcache_get(evcache *c, const char *subject, size_t slen, const void *payload, size_t plen,
                   int64_t seq, int64_t now_ms, const frame *taken, evcache_make_fn make, void *ctx,
                   bool *made)
{
    uint64_t h = hash_bytes(hash_bytes(mix(c->seed, (uint64_t)seq), subject, slen), payload, plen);
    set *st = &c->sets[h % EVCACHE_SETS];
    pthread_mutex_lock(&st->lock);
    entry *victim = &st->e[0];
    for (size_t w = 0; w < EVCACHE_WAYS; w++) {
        entry *e = &st->e[w];
        /* now_ms may be a little before at_ms: taken before this lock,
         * while another thread built the frame */
        if (e->f && e->f != taken && e->hash == h && now_ms - e->at_ms <= c->window_ms &&
            frame_event_is(e->f, subject, slen, payload, plen, seq)) {
            frame *f = frame_ref(e->f);
            pthread_mutex_unlock(&st->lock);
            if (made)
                *made = false;
            return f;
        }
        if (victim->f && (!e->f || e->at_ms < victim->at_ms))
            victim = e;
    }
    frame *f = make(ctx);
    if (made)
        *made = f != NULL;
    if (f) {
        if (victim->f) {
            atomic_fetch_sub(&c->bytes, cost(victim->f));
            frame_release(victim->f);
            victim->f = NULL;
        }
        size_t n = cost(f);
        if (atomic_fetch_add(&c->bytes, n) + n <= c->max_bytes) {
            victim->f = frame_ref(f);
            victim->hash = h;
            victim->at_ms = now_ms;
        } else {
            atomic_fetch_sub(&c->bytes, n);
        }
    }
    pthread_mutex_unlock(&st->lock);
    return f;
}

size_t evcache_bytes(evcache *c)
{
    return atomic_load(&c->bytes);
}
