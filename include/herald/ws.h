/* ws: the WebSocket listener (libwebsockets), path /v1/ws, subprotocol
 * herald.v1. Owns the lws context and its one service thread; that thread
 * owns every session. Other threads never touch lws objects: they hand work
 * to the service thread through ws's inbox and lws_cancel_service().
 * Created and stopped by main. */
#ifndef HERALD_WS_H
#define HERALD_WS_H

#include "herald/bus.h"
#include "herald/config.h"
#include "herald/metrics.h"
#include "herald/status.h"

typedef struct ws_server ws_server;

typedef struct {
    const hr_config *cfg;
    bus *bus;
    metrics *metrics;
} ws_deps;

/* Open the listener and start the service thread. */
hr_status ws_start(ws_server **out, const ws_deps *deps, char *err, size_t errlen);

/* Shutdown: close every session with 1001, keep servicing until they are
 * gone or timeout_ms passes, then stop the thread and free. */
void ws_stop(ws_server *s, int timeout_ms);

#endif
