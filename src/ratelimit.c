/* ratelimit: per-key token buckets in an htab kept in recency order. */
#include "herald/ratelimit.h"
#include "herald/htab.h"
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
    htab_node node; /* keyed by key; age order = recency (oldest evicted) */
    char *key;
    tbucket b;
} ent;

struct rl_table {
    tbucket_rate rate;
    size_t max_keys;
    pthread_mutex_t mu;
    htab tab; /* under mu */
};

rl_table *rl_new_sized(double rate_per_s, int burst, size_t max_keys)
{
    if (!(rate_per_s > 0) || burst < 1 || max_keys < 1)
        return NULL;
    rl_table *t = calloc(1, sizeof *t);
    if (!t || !htab_init(&t->tab, BUCKETS)) {
        free(t);
        return NULL;
    }
    t->rate = (tbucket_rate){rate_per_s, burst};
    t->max_keys = max_keys;
    pthread_mutex_init(&t->mu, NULL);
    return t;
}

rl_table *rl_new(double rate_per_s, int burst)
{
    return rl_new_sized(rate_per_s, burst, RL_MAX_KEYS);
}

static bool key_eq(const htab_node *n, const void *key)
{
    return strcmp(HTAB_ENTRY(n, ent, node)->key, key) == 0;
}

static void ent_free(ent *e)
{
    free(e->key);
    free(e);
}

static void node_free(htab_node *n)
{
    ent_free(HTAB_ENTRY(n, ent, node));
}

bool rl_allow(rl_table *t, const char *key, int64_t now_ms, int *retry_after_s)
{
    pthread_mutex_lock(&t->mu);
    uint64_t h = net_hash_str(key);
    htab_node *n = htab_find(&t->tab, h, key_eq, key);
    ent *e;
    if (n) {
        e = HTAB_ENTRY(n, ent, node);
        htab_touch(&t->tab, n);
    } else {
        while (t->tab.n >= t->max_keys) { /* drop the least recently used */
            ent *old = HTAB_ENTRY(htab_oldest(&t->tab), ent, node);
            htab_remove(&t->tab, &old->node);
            ent_free(old);
        }
        e = calloc(1, sizeof *e);
        if (!e || !(e->key = strdup(key))) {
            free(e);
            pthread_mutex_unlock(&t->mu);
            return true; /* fail open on allocation failure: never refuse for our own fault */
        }
        tbucket_init(&e->b, &t->rate, now_ms);
        htab_insert(&t->tab, &e->node, h);
    }
    bool ok = tbucket_take(&e->b, &t->rate, now_ms);
    if (!ok && retry_after_s)
        *retry_after_s = tbucket_retry_after_s(&e->b, &t->rate);
    pthread_mutex_unlock(&t->mu);
    return ok;
}

size_t rl_size(rl_table *t)
{
    pthread_mutex_lock(&t->mu);
    size_t n = t->tab.n;
    pthread_mutex_unlock(&t->mu);
    return n;
}

void rl_free(rl_table *t)
{
    if (!t)
        return;
    htab_fini(&t->tab, node_free);
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
