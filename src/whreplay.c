/* whreplay: bounded webhook replay cache, an htab kept in insertion order. */
#include "herald/whreplay.h"
#include "herald/htab.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 4096

typedef struct ent {
    htab_node node; /* keyed by key; age order = insertion (oldest first) */
    unsigned char key[WHR_KEY_LEN];
    int64_t expires_ms;
    bool pending;
    whr_answer answer;
} ent;

struct whr_table {
    size_t max;
    pthread_mutex_t mu;
    htab tab; /* under mu */
};

whr_table *whr_new(size_t max_entries)
{
    if (max_entries == 0)
        return NULL;
    whr_table *t = calloc(1, sizeof *t);
    if (!t || !htab_init(&t->tab, BUCKETS)) {
        free(t);
        return NULL;
    }
    t->max = max_entries;
    pthread_mutex_init(&t->mu, NULL);
    return t;
}

static uint64_t key_hash(const unsigned char *key)
{
    uint64_t h = 0;
    memcpy(&h, key, sizeof h); /* the key is a digest: its bytes are uniform */
    return h;
}

static bool key_eq(const htab_node *n, const void *key)
{
    return memcmp(HTAB_ENTRY(n, ent, node)->key, key, WHR_KEY_LEN) == 0;
}

static ent *find(whr_table *t, const unsigned char *key)
{
    htab_node *n = htab_find(&t->tab, key_hash(key), key_eq, key);
    return n ? HTAB_ENTRY(n, ent, node) : NULL;
}

static ent *oldest(whr_table *t)
{
    htab_node *n = htab_oldest(&t->tab);
    return n ? HTAB_ENTRY(n, ent, node) : NULL;
}

static void node_free(htab_node *n)
{
    free(HTAB_ENTRY(n, ent, node));
}

static void drop(whr_table *t, ent *e)
{
    htab_remove(&t->tab, &e->node);
    free(e);
}

/* Drop expired entries from the oldest end (pending ones never expire). */
static void purge(whr_table *t, int64_t now_ms)
{
    ent *e;
    while ((e = oldest(t)) && !e->pending && e->expires_ms <= now_ms)
        drop(t, e);
}

whr_state whr_check(whr_table *t, const unsigned char key[WHR_KEY_LEN], int64_t now_ms,
                    int64_t window_ms, whr_answer *out)
{
    pthread_mutex_lock(&t->mu);
    purge(t, now_ms);
    ent *e = find(t, key);
    if (e && !e->pending && e->expires_ms <= now_ms) {
        drop(t, e);
        e = NULL;
    }
    if (e) {
        whr_state st = e->pending ? WHR_PENDING : WHR_SEEN;
        if (!e->pending && out)
            *out = e->answer;
        pthread_mutex_unlock(&t->mu);
        return st;
    }
    while (t->tab.n >= t->max && oldest(t))
        drop(t, oldest(t));
    e = calloc(1, sizeof *e);
    if (!e) { /* cannot remember it: treat as new, never refuse for our own fault */
        pthread_mutex_unlock(&t->mu);
        return WHR_NEW;
    }
    memcpy(e->key, key, WHR_KEY_LEN);
    e->pending = true;
    e->expires_ms = now_ms + window_ms;
    htab_insert(&t->tab, &e->node, key_hash(key));
    pthread_mutex_unlock(&t->mu);
    return WHR_NEW;
}

void whr_complete(whr_table *t, const unsigned char key[WHR_KEY_LEN], const whr_answer *a)
{
    pthread_mutex_lock(&t->mu);
    ent *e = find(t, key);
    if (e && e->pending) {
        e->pending = false;
        e->answer = *a;
    }
    pthread_mutex_unlock(&t->mu);
}

void whr_forget(whr_table *t, const unsigned char key[WHR_KEY_LEN])
{
    pthread_mutex_lock(&t->mu);
    ent *e = find(t, key);
    if (e && e->pending)
        drop(t, e);
    pthread_mutex_unlock(&t->mu);
}

size_t whr_size(whr_table *t)
{
    pthread_mutex_lock(&t->mu);
    size_t n = t->tab.n;
    pthread_mutex_unlock(&t->mu);
    return n;
}

void whr_free(whr_table *t)
{
    if (!t)
        return;
    htab_fini(&t->tab, node_free);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
