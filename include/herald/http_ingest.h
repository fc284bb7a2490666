/* http_ingest: the two inbound-event routes of contract §4 on top of MHD:
 * POST /v1/webhooks/{source} (signature, content type, size, subject and
 * ce-type templates, source permission) and POST /v1/publish/{subject}
 * (JWT or API key, publish permission, raw or CloudEvents bodies).
 * Owns the webhook sources' metric cells, the per-request state (body
 * buffer, the pending publish) and the ingest publisher. Each source's
 * verifier, templates, publish permission and scheme facts are the
 * hr_config's, compiled by config_load (read-only here). A request
 * waiting for its PubAck is suspended (MHD_suspend_connection) and resumed
 * by the ack, so no worker thread blocks on JetStream.
 * Does not own: routing, framing checks and accounting (http.c), the shape
 * of replies (http_reply). */
#ifndef HERALD_HTTP_INGEST_H
#define HERALD_HTTP_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <microhttpd.h>

#include "herald/http_deps.h"
#include "herald/status.h"

typedef struct http_ingest http_ingest;
typedef struct hi_req hi_req; /* one request's state; freed by http_ingest_req_free */

/* Set up every (already compiled) webhook source and the publisher. On
 * failure err holds a one-line reason. */
hr_status http_ingest_new(http_ingest **out, const http_deps *deps, char *err, size_t errlen);

/* Shutdown step once no new requests arrive: stop publishing, wait up to
 * timeout_ms for PubAcks, answer every still-suspended request with 503. */
void http_ingest_drain(http_ingest *h, int timeout_ms);
void http_ingest_free(http_ingest *h); /* after drain and MHD_stop_daemon; NULL is a no-op */

/* MHD access-handler bodies for the two routes. Called for every handler
 * invocation of the request (headers, each upload chunk, final, resumed).
 * *st is the request's state (NULL at first); *status receives the HTTP
 * status once a response is queued. */
enum MHD_Result http_ingest_webhook(http_ingest *h, hi_req **st, struct MHD_Connection *c,
                                    const char *url, const char *upload, size_t *upload_size,
                                    int *status);
enum MHD_Result http_ingest_publish(http_ingest *h, hi_req **st, struct MHD_Connection *c,
                                    const char *url, const char *upload, size_t *upload_size,
                                    int *status);
void http_ingest_req_free(hi_req *q); /* NULL is a no-op */

/* http.c refused this request with 429 (limits.http_requests_per_ip): count
 * it in herald_webhooks_total{outcome="rate_limited"} when url names a
 * webhook source. */
void http_ingest_count_rate_limited(http_ingest *h, const char *url);

#endif
