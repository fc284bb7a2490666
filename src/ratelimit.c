/* ratelimit: per-key token buckets in a hash table with an LRU list. */
#include "herald/ratelimit.h"
#include "herald/netutil.h"
#include "herald/tbucket.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 4096

typedef struct ent {
    char *key;
    tbucket b;
    struct ent *next;                /* hash chain */
    struct ent *lru_prev, *lru_next; /* most recently used at the head */
} ent;

struct rl_table {
    tbucket_rate rate;
    size_t max_keys;
    pthread_mutex_t mu;
    ent *tab[BUCKETS];
    ent *lru_head, *lru_tail;
    size_t n;
};

rl_table *rl_new_sized(double rate_per_s, int burst, size_t max_keys)
{
    if (!(rate_per_s > 0) || burst < 1 || max_keys < 1)
        return NULL;
    rl_table *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->rate = (tbucket_rate){rate_per_s, burst};
    t->max_keys = max_keys;
    pthread_mutex_init(&t->mu, NULL);
    return t;
}

rl_table *rl_new(double rate_per_s, int burst)
{
    return rl_new_sized(rate_per_s, burst, RL_MAX_KEYS);
}

static size_t hash(const char *s)
{
    return (size_t)(net_hash_str(s) % BUCKETS);
}

static void lru_unlink(rl_table *t, ent *e)
{
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        t->lru_head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        t->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push_front(rl_table *t, ent *e)
{
    e->lru_prev = NULL;
    e->lru_next = t->lru_head;
    if (t->lru_head)
        t->lru_head->lru_prev = e;
    t->lru_head = e;
    if (!t->lru_tail)
        t->lru_tail = e;
}

/* Drop the least-recently-used entry. */
static void evict_lru(rl_table *t)
{
    ent *e = t->lru_tail;
    if (!e)
        return;
    lru_unlink(t, e);
    for (ent **pp = &t->tab[hash(e->key)]; *pp; pp = &(*pp)->next)
        if (*pp == e) {
            *pp = e->next;
            break;
        }
    free(e->key);
    free(e);
    t->n--;
}

bool rl_allow(rl_table *t, const char *key, int64_t now_ms, int *retry_after_s)
{
    pthread_mutex_lock(&t->mu);
    size_t b = hash(key);
    ent *e = t->tab[b];
    while (e && strcmp(e->key, key) != 0)
        e = e->next;
    if (e) {
        lru_unlink(t, e);
    } else {
        while (t->n >= t->max_keys)
            evict_lru(t);
        e = calloc(1, sizeof *e);
        if (!e || !(e->key = strdup(key))) {
            free(e);
            pthread_mutex_unlock(&t->mu);
            return true; /* fail open on allocation failure: never refuse for our own fault */
        }
        tbucket_init(&e->b, &t->rate, now_ms);
        e->next = t->tab[b];
        t->tab[b] = e;
        t->n++;
    }
    lru_push_front(t, e);
    bool ok = tbucket_take(&e->b, &t->rate, now_ms);
    if (!ok && retry_after_s)
        *retry_after_s = tbucket_retry_after_s(&e->b, &t->rate);
    pthread_mutex_unlock(&t->mu);
    return ok;
}

size_t rl_size(rl_table *t)
{
    pthread_mutex_lock(&t->mu);
    size_t n = t->n;
    pthread_mutex_unlock(&t->mu);
    return n;
}

void rl_free(rl_table *t)
{
    if (!t)
        return;
    for (ent *e = t->lru_head, *nx; e; e = nx) {
        nx = e->lru_next;
        free(e->key);
        free(e);
    }
    pthread_mutex_destroy(&t->mu);
    free(t);
}

void rl_client_key(const struct sockaddr *sa, char out[RL_KEY_LEN])
{
    snprintf(out, RL_KEY_LEN, "unknown");
    if (!sa)
        return;
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, RL_KEY_LEN);
        return;
    }
    if (sa->sa_family != AF_INET6)
        return;
    const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(a)) {
        inet_ntop(AF_INET, &a->s6_addr[12], out, RL_KEY_LEN);
        return;
    }
    struct in6_addr net = *a;
    memset(&net.s6_addr[8], 0, 8);
    char buf[INET6_ADDRSTRLEN];
    if (inet_ntop(AF_INET6, &net, buf, sizeof buf))
        snprintf(out, RL_KEY_LEN, "%s/64", buf);
}

void rl_client_key_text(const char *addr, char out[RL_KEY_LEN])
{
    struct sockaddr_in v4 = {.sin_family = AF_INET};
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
    if (addr && inet_pton(AF_INET, addr, &v4.sin_addr) == 1)
        rl_client_key((const struct sockaddr *)&v4, out);
    else if (addr && inet_pton(AF_INET6, addr, &v6.sin6_addr) == 1)
        rl_client_key((const struct sockaddr *)&v6, out);
    else
        snprintf(out, RL_KEY_LEN, "%s", addr && *addr ? addr : "unknown");
}
