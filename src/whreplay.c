/* whreplay: bounded webhook replay cache, a hash table plus a FIFO of insertions. */
#include "herald/whreplay.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 4096

typedef struct ent {
    unsigned char key[WHR_KEY_LEN];
    int64_t expires_ms;
    bool pending;
    whr_answer answer;
    struct ent *next;                  /* hash chain */
    struct ent *fifo_prev, *fifo_next; /* oldest at the head */
} ent;

struct whr_table {
    size_t max;
    pthread_mutex_t mu;
    ent *tab[BUCKETS];
    ent *head, *tail;
    size_t n;
};

whr_table *whr_new(size_t max_entries)
{
    if (max_entries == 0)
        return NULL;
    whr_table *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->max = max_entries;
    pthread_mutex_init(&t->mu, NULL);
    return t;
}

static size_t bucket(const unsigned char *key)
{
    size_t h = 0;
    memcpy(&h, key, sizeof h); /* the key is a digest: its bytes are uniform */
    return h % BUCKETS;
}

static ent **find(whr_table *t, const unsigned char *key)
{
    ent **pp = &t->tab[bucket(key)];
    while (*pp && memcmp((*pp)->key, key, WHR_KEY_LEN) != 0)
        pp = &(*pp)->next;
    return pp;
}

static void drop(whr_table *t, ent *e)
{
    ent **pp = find(t, e->key);
    if (*pp == e)
        *pp = e->next;
    if (e->fifo_prev)
        e->fifo_prev->fifo_next = e->fifo_next;
    else
        t->head = e->fifo_next;
    if (e->fifo_next)
        e->fifo_next->fifo_prev = e->fifo_prev;
    else
        t->tail = e->fifo_prev;
    free(e);
    t->n--;
}

/* Drop expired entries from the oldest end (pending ones never expire). */
static void purge(whr_table *t, int64_t now_ms)
{
    while (t->head && !t->head->pending && t->head->expires_ms <= now_ms)
        drop(t, t->head);
}

whr_state whr_check(whr_table *t, const unsigned char key[WHR_KEY_LEN], int64_t now_ms,
                    int64_t window_ms, whr_answer *out)
{
    pthread_mutex_lock(&t->mu);
    purge(t, now_ms);
    ent *e = *find(t, key);
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
    while (t->n >= t->max && t->head)
        drop(t, t->head);
    e = calloc(1, sizeof *e);
    if (!e) { /* cannot remember it: treat as new, never refuse for our own fault */
        pthread_mutex_unlock(&t->mu);
        return WHR_NEW;
    }
    memcpy(e->key, key, WHR_KEY_LEN);
    e->pending = true;
    e->expires_ms = now_ms + window_ms;
    ent **pp = &t->tab[bucket(key)];
    e->next = *pp;
    *pp = e;
    e->fifo_prev = t->tail;
    if (t->tail)
        t->tail->fifo_next = e;
    else
        t->head = e;
    t->tail = e;
    t->n++;
    pthread_mutex_unlock(&t->mu);
    return WHR_NEW;
}

void whr_complete(whr_table *t, const unsigned char key[WHR_KEY_LEN], const whr_answer *a)
{
    pthread_mutex_lock(&t->mu);
    ent *e = *find(t, key);
    if (e && e->pending) {
        e->pending = false;
        e->answer = *a;
    }
    pthread_mutex_unlock(&t->mu);
}

void whr_forget(whr_table *t, const unsigned char key[WHR_KEY_LEN])
{
    pthread_mutex_lock(&t->mu);
    ent *e = *find(t, key);
    if (e && e->pending)
        drop(t, e);
    pthread_mutex_unlock(&t->mu);
}

size_t whr_size(whr_table *t)
{
    pthread_mutex_lock(&t->mu);
    size_t n = t->n;
    pthread_mutex_unlock(&t->mu);
    return n;
}

void whr_free(whr_table *t)
{
    if (!t)
        return;
    for (ent *e = t->head, *nx; e; e = nx) {
        nx = e->fifo_next;
        free(e);
    }
    pthread_mutex_destroy(&t->mu);
    free(t);
}
