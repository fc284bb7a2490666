/* ws_limits: global and per-IP WebSocket connection limits (see the header). */
#include "herald/ws_limits.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/clock.h"
#include "herald/htab.h"
#include "herald/netutil.h"
#include "herald/tbucket.h"

#define IP_BUCKETS 1024

/* Per-client-IP state: open sessions and the upgrade token bucket. Under
 * ws_limits.lock; freed when idle. */
typedef struct ip_entry {
    htab_node node; /* in ws_limits.ips, keyed by ip */
    char ip[64];
    int64_t sessions;
    tbucket bucket; /* limits.ws_upgrades_per_ip */
} ip_entry;

struct ws_limits {
    const hr_config *cfg;
    pthread_mutex_t lock;      /* the per-IP table */
    htab ips;                  /* ip_entry by address (under lock) */
    _Atomic int64_t nsessions; /* places taken (limits.max_ws_connections) */
};

static bool ip_eq(const htab_node *n, const void *ip)
{
    return strcmp(HTAB_ENTRY(n, ip_entry, node)->ip, ip) == 0;
}

static void ip_node_free(htab_node *n)
{
    free(HTAB_ENTRY(n, ip_entry, node));
}

static ip_entry *ip_find(ws_limits *w, const char *ip)
{
    htab_node *n = htab_find(&w->ips, net_hash_str(ip), ip_eq, ip);
    return n ? HTAB_ENTRY(n, ip_entry, node) : NULL;
}

static ip_entry *ip_get(ws_limits *w, const char *ip)
{
    const hr_rate *rl = &w->cfg->ws_upgrades_per_ip;
    ip_entry *e = ip_find(w, ip);
    if (!e) {
        if (!(e = calloc(1, sizeof *e)))
            return NULL;
        snprintf(e->ip, sizeof e->ip, "%s", ip);
        tbucket_init(&e->bucket, &(tbucket_rate){rl->rate_per_s, rl->burst}, clock_now_ms());
        htab_insert(&w->ips, &e->node, net_hash_str(e->ip));
    }
    return e;
}
/* Drop an entry that holds no session and whose bucket is full again. */
static void ip_maybe_free(ws_limits *w, ip_entry *e)
{
    const hr_rate *rl = &w->cfg->ws_upgrades_per_ip;
    if (e->sessions > 0)
        return;
    if (rl->on &&
        !tbucket_full(&e->bucket, &(tbucket_rate){rl->rate_per_s, rl->burst}, clock_now_ms()))
        return;
    htab_remove(&w->ips, &e->node);
    free(e);
}
/* limits.ws_upgrades_per_ip and max_ws_connections_per_ip: 0 = allowed,
 * else the HTTP status to refuse with. */
static unsigned ip_admit(ws_limits *w, const char *ip)
{
    const hr_rate *rl = &w->cfg->ws_upgrades_per_ip;
    if (!rl->on && !w->cfg->max_ws_connections_per_ip)
        return 0;
    ip_entry *e = ip_get(w, ip);
    if (!e)
        return 503;
    unsigned refuse = 0;
    if (rl->on &&
        !tbucket_take(&e->bucket, &(tbucket_rate){rl->rate_per_s, rl->burst}, clock_now_ms()))
        refuse = 429;
    if (!refuse && w->cfg->max_ws_connections_per_ip &&
        e->sessions >= w->cfg->max_ws_connections_per_ip)
        refuse = 429;
    if (refuse)
        ip_maybe_free(w, e);
    else
        e->sessions++; /* its place, held from the upgrade on */
    return refuse;
}
static bool per_ip_limits(const ws_limits *w)
{
    return w->cfg->ws_upgrades_per_ip.on || w->cfg->max_ws_connections_per_ip;
}

ws_limits *ws_limits_new(const hr_config *cfg)
{
    ws_limits *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    if (!htab_init(&w->ips, IP_BUCKETS)) {
        free(w);
        return NULL;
    }
    w->cfg = cfg;
    pthread_mutex_init(&w->lock, NULL);
    return w;
}

void ws_limits_free(ws_limits *w)
{
    if (!w)
        return;
    htab_fini(&w->ips, ip_node_free);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

unsigned ws_limits_take(ws_limits *w, const char *ip, const char **why)
{
    int64_t max = w->cfg->max_ws_connections;
    if (atomic_fetch_add(&w->nsessions, 1) >= max && max) {
        atomic_fetch_sub(&w->nsessions, 1);
        *why = "too many connections";
        return 503;
    }
    unsigned over = 0;
    if (per_ip_limits(w)) {
        pthread_mutex_lock(&w->lock);
        over = ip_admit(w, ip);
        pthread_mutex_unlock(&w->lock);
    }
    if (over) {
        atomic_fetch_sub(&w->nsessions, 1);
        *why = over == 429 ? "too many connections from this address" : "out of memory";
    }
    return over;
}

void ws_limits_force(ws_limits *w, const char *ip)
{
    if (per_ip_limits(w)) {
        pthread_mutex_lock(&w->lock);
        ip_entry *e = ip_get(w, ip);
        if (e)
            e->sessions++;
        pthread_mutex_unlock(&w->lock);
    }
    atomic_fetch_add(&w->nsessions, 1);
}

/* Give back a place in the connection limits (a session ended, or an
 * admitted upgrade never became one). */
void ws_limits_release(ws_limits *w, const char *ip)
{
    if (per_ip_limits(w)) {
        pthread_mutex_lock(&w->lock);
        ip_entry *e = ip_find(w, ip);
        if (e) {
            e->sessions--;
            ip_maybe_free(w, e);
        }
        pthread_mutex_unlock(&w->lock);
    }
    atomic_fetch_sub(&w->nsessions, 1);
}
/* Free per-IP entries that hold nothing any more (refused or rate-limited
 * clients that went away). */
void ws_limits_sweep(ws_limits *w)
{
    pthread_mutex_lock(&w->lock);
    for (htab_node *n = htab_oldest(&w->ips), *next; n; n = next) {
        next = htab_newer(n);
        ip_maybe_free(w, HTAB_ENTRY(n, ip_entry, node));
    }
    pthread_mutex_unlock(&w->lock);
}
