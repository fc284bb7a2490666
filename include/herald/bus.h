/* bus: herald's one NATS connection.
 * Owns the nats.c connection and its options: reconnect forever with capped
 * exponential backoff and jitter, no reconnect buffer (a publish during an
 * outage fails at once instead of being sent later), connection state and
 * reconnect count for /readyz and /metrics, and logging once per state
 * transition. nats.c's callbacks run on its own threads; the state here is
 * atomic. Created and freed by main; bus_free drains the connection. */
#ifndef HERALD_BUS_H
#define HERALD_BUS_H

#include <stdbool.h>
#include <stdint.h>
#include <nats/nats.h>

#include "herald/config.h"
#include "herald/metrics.h"
#include "herald/status.h"

typedef struct bus bus;

typedef enum {
    BUS_CONNECTING = 0, /* never connected yet */
    BUS_CONNECTED,
    BUS_RECONNECTING, /* lost, retrying */
    BUS_CLOSED,       /* shut down */
} bus_state;

/* Called (on a nats.c thread) after every (re)connection, e.g. to refresh
 * state that depends on the server. */
typedef void (*bus_connected_fn)(void *ctx);

/* Start connecting. Returns HR_OK even when no server is reachable yet (the
 * connection keeps trying in the background); errors only for bad options. */
hr_status bus_new(bus **out, const hr_config *cfg, metrics *m);

bus_state bus_get_state(const bus *b);
const char *bus_state_str(bus_state s);
/* Successful reconnections so far (a change tells a reconnection happened). */
uint64_t bus_reconnects(const bus *b);
/* The server's max_payload (0 when never connected). */
int64_t bus_max_payload(bus *b);

/* The underlying connection, for publishing and subscribing. Valid until
 * bus_free; nats.c calls on it are thread-safe. */
natsConnection *bus_conn(bus *b);

/* Drain until the absolute monotonic deadline_ms (lifecycle.h), close and
 * free; then wait up to 2 s more for nats.c's threads to end. Also shuts
 * the nats.c library down (its callback threads hold pointers into the
 * bus), so every other NATS object must be destroyed first. */
void bus_free(bus *b, int64_t deadline_ms);

#endif
