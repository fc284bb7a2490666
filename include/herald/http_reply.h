/* http_reply: how herald answers HTTP (contract §5 errors): the status
 * titles, RFC 9457 problem+json documents, JSON replies, and the one
 * create → add headers → queue → destroy sequence for libmicrohttpd.
 * Used by http (routes, framing errors), http_ingest (webhooks, publish
 * API) and ws (refused WebSocket upgrades, written raw on the lws socket).
 * Owns: the titles and the problem document's shape
 * {"type":"urn:herald:problem:<slug>","title","status","detail"}.
 * Does not own: routing, request state, metrics, which status a route
 * answers with.
 * A leaf: no herald module below it. No I/O but MHD_queue_response; any
 * thread may call the text functions, the MHD ones on the connection's
 * MHD worker thread (MHD's rule). */
#ifndef HERALD_HTTP_REPLY_H
#define HERALD_HTTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include <microhttpd.h>

/* Reason phrase / problem title for status: "Not Found", "Too Many
 * Requests"…; "Internal Server Error" for an unlisted 5xx, "Error" else. */
const char *http_reply_title(int status);

/* The problem+json document for status (malloc'ed, caller frees; NULL on
 * OOM). detail is escaped as JSON. */
char *http_reply_problem_text(int status, const char *slug, const char *detail);

/* A whole HTTP/1.1 problem+json response (status line, Content-Type, the
 * optional extra header, Content-Length, Connection: close, body) into out,
 * for a writer that bypasses MHD. Returns its length, or -1 when it does not
 * fit cap or on OOM. extra_header may be NULL. */
int http_reply_problem_raw(char *out, size_t cap, int status, const char *slug, const char *detail,
                           const char *extra_header, const char *extra_value);

/* Queue resp with status on c, after adding Content-Type (if ctype), the
 * extra header (if extra_header) and "Connection: close" (if close_conn);
 * always destroys resp (NULL: MHD_NO). The one place herald queues. */
enum MHD_Result http_reply_queue(struct MHD_Connection *c, int status, struct MHD_Response *resp,
                                 const char *ctype, const char *extra_header,
                                 const char *extra_value, bool close_conn);

/* A body from memory: mode as MHD's (MHD_RESPMEM_MUST_FREE hands body over
 * in every case, also on failure). */
enum MHD_Result http_reply_buffer(struct MHD_Connection *c, int status, const char *ctype,
                                  void *body, size_t len, enum MHD_ResponseMemoryMode mode);

/* RFC 9457 problem+json. extra_header may be NULL. */
enum MHD_Result http_reply_problem(struct MHD_Connection *c, int status, const char *slug,
                                   const char *detail, const char *extra_header,
                                   const char *extra_value, bool close_conn);

/* doc as compact application/json, keys in insertion order (doc is only
 * read; NULL: MHD_NO). */
enum MHD_Result http_reply_json(struct MHD_Connection *c, int status, const json_t *doc);

#endif
