/* http: the HTTP API listener (libmicrohttpd, internal epoll thread pool).
 * Owns the MHD daemon, routing (404 unknown route, 405 + Allow wrong method),
 * request accounting, and the operational routes:
 * /healthz, /readyz, /metrics, /openapi.json, /asyncapi.json, /docs, / and
 * /static/ (files under the static directory only). Created and stopped by
 * main; handlers run on MHD's worker threads. Replies are built by
 * http_reply; the webhook and publish routes are http_ingest's. */
#ifndef HERALD_HTTP_H
#define HERALD_HTTP_H

#include <stdint.h>

#include "herald/http_deps.h"
#include "herald/status.h"

typedef struct http_server http_server;

/* Open the listener and start serving. On failure writes a one-line reason. */
hr_status http_start(http_server **out, const http_deps *deps, char *err, size_t errlen);

/* The bound port (useful with port 0). */
int http_port(const http_server *s);

/* Shutdown (lifecycle.h): stop accepting, let in-flight requests finish
 * (requests waiting for a PubAck included) until the absolute monotonic
 * deadline_ms, answer any request still waiting for JetStream with 503,
 * then stop the daemon. Blocks; idempotent; NULL is a no-op. */
void http_stop(http_server *s, int64_t deadline_ms);

/* Free (after http_stop; stops at once if it did not run). NULL is a no-op. */
void http_free(http_server *s);

#endif
