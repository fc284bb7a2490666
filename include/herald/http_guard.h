/* http_guard: deadlines for HTTP connections that libmicrohttpd cannot
 * enforce itself (contract §6 http.request_timeout_s / idle_timeout_s).
 * MHD's own timeout is an idle timeout: every byte resets it, so a client
 * trickling one header line every few seconds holds a connection forever.
 * The guard keeps one record per connection (MHD_OPTION_NOTIFY_CONNECTION)
 * and a watchdog thread that ends a connection past its deadline:
 *   - receiving a request (from accept, or from its request line on a
 *     kept-alive connection, until the handler has it all):
 *     request_timeout_s, then 408 problem+json (written by the watchdog:
 *     MHD has sent nothing on it yet) and close;
 *   - idle between requests: idle_timeout_s, then close;
 *   - while herald answers (a route runs, a request is suspended for NATS):
 *     no deadline of the guard (MHD's idle timeout covers a client that
 *     stops reading the answer).
 * A connection is ended with shutdown(2) on its socket; MHD sees the EOF
 * and closes it on its own thread. The record is dropped at MHD's CLOSED
 * notification, which MHD sends before it closes the socket, so the
 * watchdog never touches a reused descriptor. It also counts the open
 * connections for limits.max_http_connections and _per_ip.
 * Threads: the notify callback and the phase calls run on MHD workers; the
 * watchdog is the guard's own thread. One mutex guards the table. */
#ifndef HERALD_HTTP_GUARD_H
#define HERALD_HTTP_GUARD_H

#include <stdbool.h>
#include <stdint.h>
#include <microhttpd.h>

#include "herald/status.h"

typedef struct http_guard http_guard;

/* Start the watchdog. Timeouts in seconds (>= 1); max_connections open
 * connections at most, max_per_ip from one peer address (0 = unlimited). */
hr_status http_guard_new(http_guard **out, int request_timeout_s, int idle_timeout_s,
                         int64_t max_connections, int64_t max_per_ip);

/* Stop the watchdog and free (after MHD_stop_daemon). NULL is a no-op. */
void http_guard_free(http_guard *g);

/* MHD_OPTION_NOTIFY_CONNECTION callback; cls is the guard. A connection
 * beyond max_connections is hung up on at once, before it is read
 * (limits.max_http_connections: refused at accept, open ones unaffected).
 * MHD_OPTION_CONNECTION_LIMIT will not do: it is split between the pool's
 * workers, and a worker at its share stops accepting (new clients hang in
 * the listen backlog instead of being refused). */
void http_guard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                       enum MHD_ConnectionNotificationCode toe);

/* A request line arrived (MHD's URI log callback): an idle connection now
 * receives a request. */
void http_guard_request_line(struct MHD_Connection *c);

/* The handler now has the request (headers, or the whole body) and may
 * queue an answer: no deadline, no 408. False if the watchdog already ended
 * the connection (the handler should return MHD_NO). */
bool http_guard_answering(struct MHD_Connection *c);

/* The body is still to come: the request's deadline (set when it began)
 * applies again. may_408: no answer is queued yet, so the watchdog may
 * write the 408 itself; else it only closes. */
void http_guard_receiving(struct MHD_Connection *c, bool may_408);

/* The request was answered (MHD_OPTION_NOTIFY_COMPLETED): idle deadline. */
void http_guard_idle(struct MHD_Connection *c);

#endif
