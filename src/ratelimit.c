/* ratelimit: per-key token buckets. */
#include "herald/ratelimit.h"
#include "herald/netutil.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 4096

typedef struct ent {
    char *key;
    double tokens;
    int64_t last_ms;
    struct ent *next;
} ent;

struct rl_table {
    double rate; /* tokens per ms */
    double burst;
    pthread_mutex_t mu;
    ent *tab[BUCKETS];
    size_t n;
};

rl_table *rl_new(double rate_per_s, int burst)
{
    if (!(rate_per_s > 0) || burst < 1)
        return NULL;
    rl_table *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->rate = rate_per_s / 1000.0;
    t->burst = burst;
    pthread_mutex_init(&t->mu, NULL);
    return t;
}

static void refill(const rl_table *t, ent *e, int64_t now_ms)
{
    if (now_ms > e->last_ms) {
        e->tokens = fmin(t->burst, e->tokens + (double)(now_ms - e->last_ms) * t->rate);
        e->last_ms = now_ms;
    }
}

/* Drop full buckets (their state equals a fresh one); reset if none. */
static void evict(rl_table *t, int64_t now_ms)
{
    for (size_t i = 0; i < BUCKETS; i++) {
        for (ent **pp = &t->tab[i]; *pp;) {
            ent *e = *pp;
            refill(t, e, now_ms);
            if (e->tokens >= t->burst) {
                *pp = e->next;
                free(e->key);
                free(e);
                t->n--;
            } else {
                pp = &e->next;
            }
        }
    }
    if (t->n >= RL_MAX_KEYS) {
        for (size_t i = 0; i < BUCKETS; i++) {
            for (ent *e = t->tab[i], *nx; e; e = nx) {
                nx = e->next;
                free(e->key);
                free(e);
            }
            t->tab[i] = NULL;
        }
        t->n = 0;
    }
}

static size_t hash(const char *s)
{
    return (size_t)(net_hash_str(s) % BUCKETS);
}

bool rl_allow(rl_table *t, const char *key, int64_t now_ms, int *retry_after_s)
{
    pthread_mutex_lock(&t->mu);
    size_t b = hash(key);
    ent *e = t->tab[b];
    while (e && strcmp(e->key, key) != 0)
        e = e->next;
    if (!e) {
        if (t->n >= RL_MAX_KEYS) {
            evict(t, now_ms);
            b = hash(key);
        }
        e = calloc(1, sizeof *e);
        if (!e || !(e->key = strdup(key))) {
            free(e);
            pthread_mutex_unlock(&t->mu);
            return true; /* fail open on allocation failure: never refuse for our own fault */
        }
        e->tokens = t->burst;
        e->last_ms = now_ms;
        e->next = t->tab[b];
        t->tab[b] = e;
        t->n++;
    }
    refill(t, e, now_ms);
    bool ok = e->tokens >= 1.0;
    if (ok) {
        e->tokens -= 1.0;
    } else if (retry_after_s) {
        double ms = (1.0 - e->tokens) / t->rate;
        int s = (int)ceil(ms / 1000.0);
        *retry_after_s = s < 1 ? 1 : s;
    }
    pthread_mutex_unlock(&t->mu);
    return ok;
}

void rl_free(rl_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < BUCKETS; i++)
        for (ent *e = t->tab[i], *nx; e; e = nx) {
            nx = e->next;
            free(e->key);
            free(e);
        }
    pthread_mutex_destroy(&t->mu);
    free(t);
}
