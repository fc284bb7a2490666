/* tbucket: one token bucket (a rate and a burst), the arithmetic every
 * herald limiter shares: limits.http_requests_per_ip (ratelimit.c),
 * limits.ws_upgrades_per_ip and limits.ws_messages_per_session (ws.c).
 * Owns: the bucket's level and when it was last refilled.
 * Does not own: keys, tables or locks (the caller keeps buckets where it
 * likes and serialises access to each), the clock (the caller passes a
 * monotonic now_ms).
 * Pure: no I/O, no globals, no allocation. */
#ifndef HERALD_TBUCKET_H
#define HERALD_TBUCKET_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    double rate_per_s; /* tokens added per second, > 0 */
    double burst;      /* bucket size, >= 1 */
} tbucket_rate;

typedef struct {
    double tokens;   /* level at last_ms */
    int64_t last_ms; /* when the level was last brought up to date */
} tbucket;

/* A full bucket at now_ms. */
void tbucket_init(tbucket *b, const tbucket_rate *r, int64_t now_ms);

/* The level at now_ms (capped at the burst), without changing b. Time
 * running backwards adds nothing. */
double tbucket_level(const tbucket *b, const tbucket_rate *r, int64_t now_ms);

/* Bring b up to now_ms, then take one token if there is one. True if taken. */
bool tbucket_take(tbucket *b, const tbucket_rate *r, int64_t now_ms);

/* Is the bucket full at now_ms (an idle key that can be forgotten)? */
bool tbucket_full(const tbucket *b, const tbucket_rate *r, int64_t now_ms);

/* Whole seconds (>= 1) until b holds one token, after a refused tbucket_take. */
int tbucket_retry_after_s(const tbucket *b, const tbucket_rate *r);

#endif
