/* http_deps: what the HTTP side (http, http_ingest) reads from the rest of
 * herald, handed in by main. A header of its own so that http_ingest does
 * not include http (http includes http_ingest to route to it).
 * Owns nothing: every pointer is borrowed and outlives the HTTP server.
 * Read-only after start-up; any thread may read it. */
#ifndef HERALD_HTTP_DEPS_H
#define HERALD_HTTP_DEPS_H

#include "herald/bus.h"
#include "herald/config.h"
#include "herald/metrics.h"

typedef struct {
    const hr_config *cfg; /* compiled: sources, permissions, the JWT verifier (cfg->jwt) */
    bus *bus;
    metrics *metrics;
    const char *static_dir;  /* resolved directory served at / and /static/ */
    const char *openapi_dir; /* directory holding openapi.json and asyncapi.json */
} http_deps;

#endif
