/* ws_deps: what the WebSocket side (ws, ws_session) reads from the rest of
 * herald, handed in by main. A header of its own so that ws_session does
 * not include ws (ws includes ws_session to run sessions).
 * Owns nothing: every pointer is borrowed and outlives the server.
 * Read-only after start-up; any thread may read it. */
#ifndef HERALD_WS_DEPS_H
#define HERALD_WS_DEPS_H

#include "herald/bus.h"
#include "herald/config.h"
#include "herald/metrics.h"

typedef struct {
    const hr_config *cfg; /* also the JWT verifier (cfg->jwt; NULL: every token is refused) */
    bus *bus;
    metrics *metrics;
} ws_deps;

#endif
