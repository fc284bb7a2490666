/* ws_limits: the WebSocket connection limits of contract §6 —
 * limits.max_ws_connections, max_ws_connections_per_ip and
 * ws_upgrades_per_ip — global and exact across the service threads.
 * A connection takes its place at the upgrade (checked and counted in one
 * step, so upgrades racing on other threads see it) and gives it back when
 * its session ends or when no session follows.
 * Owns: the session count (atomic) and the per-IP table (one mutex, taken
 * at upgrades and closes, never per event; idle entries are freed).
 * Does not own: the addresses (the caller's; clientip decides them).
 * Threads: any. */
#ifndef HERALD_WS_LIMITS_H
#define HERALD_WS_LIMITS_H

#include <stdint.h>

#include "herald/config.h"

typedef struct ws_limits ws_limits;

/* NULL on OOM. `cfg` must outlive it. */
ws_limits *ws_limits_new(const hr_config *cfg);
void ws_limits_free(ws_limits *l);

/* Take a place for a connection from `ip`: 0, or the HTTP status to refuse
 * with (503: every place taken; 429: that address's limit or upgrade rate),
 * *why saying which. */
unsigned ws_limits_take(ws_limits *l, const char *ip, const char **why);
/* Take a place without checking (a session the upgrade did not see). */
void ws_limits_force(ws_limits *l, const char *ip);
/* Give a place back. */
void ws_limits_release(ws_limits *l, const char *ip);
/* Free per-IP entries that hold nothing any more (call now and then). */
void ws_limits_sweep(ws_limits *l);

#endif
