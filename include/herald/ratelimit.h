/* ratelimit: token buckets keyed by a string (a client IP), for
 * limits.http_requests_per_ip (contract §6).
 * Owns the bucket table. No I/O, no clock reads (the caller passes now);
 * thread-safe (one mutex), so the MHD worker threads share one table.
 * Memory is bounded: at RL_MAX_KEYS distinct keys the idle (full) buckets
 * are dropped, and if none is idle the table is reset. */
#ifndef HERALD_RATELIMIT_H
#define HERALD_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#define RL_MAX_KEYS 65536

typedef struct rl_table rl_table;

/* rate_per_s > 0 tokens per second, burst >= 1 bucket size. NULL on
 * allocation failure. Freed with rl_free. */
rl_table *rl_new(double rate_per_s, int burst);
void rl_free(rl_table *t); /* NULL is a no-op */

/* Take one token from key's bucket at time now_ms (monotonic). True if
 * allowed. When refused, *retry_after_s (if non-NULL) is the whole number
 * of seconds until a token is available (>= 1). A key never seen starts
 * with a full bucket. */
bool rl_allow(rl_table *t, const char *key, int64_t now_ms, int *retry_after_s);

#endif
