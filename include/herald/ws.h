/* ws: the WebSocket listener (libwebsockets), path /v1/ws, subprotocol
 * herald.v1. Owns ws.threads service threads, each with its own lws context
 * and hub shard, each owning its sessions completely; with more than one,
 * an acceptor thread owns the listening socket and hands every new
 * connection to the next thread in turn (lws adopts it on that thread).
 * Other threads never touch lws objects: they hand work to a service
 * thread through its hub shard's inbox (or its accepted-fd list) and
 * lws_cancel_service() on its context. Shared by all threads: the per-IP
 * table (a mutex, taken at upgrades and closes) and the session count and
 * metrics (atomics).
 * Implements the herald.v1 protocol of contract §3: authentication (first
 * frame, header, cookie, query), Origin and subprotocol checks at the
 * upgrade, requests, limits, slow consumers, pings, shutdown with 1001.
 * In three parts: this one (ws.c) is the lws glue — contexts, threads,
 * the acceptor, upgrades, reading and writing sessions' sockets;
 * ws_session.h is a session and its requests; ws_limits.h the connection
 * limits. Created and stopped by main. */
#ifndef HERALD_WS_H
#define HERALD_WS_H

#include <stdint.h>

#include "herald/status.h"
#include "herald/ws_deps.h"

typedef struct ws_server ws_server;

/* Open the listener and start the service thread. */
hr_status ws_start(ws_server **out, const ws_deps *deps, char *err, size_t errlen);

/* Shutdown (lifecycle.h): close every session with 1001, keep servicing
 * until they are gone or the absolute monotonic deadline_ms passes, drop
 * every NATS subscription, stop the threads and destroy the lws contexts.
 * Blocks; idempotent; NULL is a no-op. */
void ws_stop(ws_server *s, int64_t deadline_ms);

/* Free what NATS callbacks may still point at; call after bus_free (stops
 * at once if ws_stop did not run). NULL is a no-op. */
void ws_free(ws_server *s);

#endif
