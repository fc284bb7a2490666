/* ws_session: one herald.v1 session (contract §3) and what it does with
 * the client's frames: authentication and token refresh, subscribe /
 * unsubscribe / publish / ping, the per-session rate limit, its timers
 * (auth deadline, pings, token expiry), its outbound queue and the hub
 * callbacks that fill it, and closing with the contract's codes.
 * Owns: a session's state and everything it points to (freed by
 * session_end). Does not own: the connection — the lws glue (ws.c) reads
 * and writes the socket, frames the queue, and tells the session what
 * happened; the connection limits (ws_limits); the hub.
 * Threads: a session, and every function here taking one, belong to the
 * service thread that owns it (the thread of its lws context). ws_env is
 * shared by all threads: read-only after ws_start but for its atomics. */
#ifndef HERALD_WS_SESSION_H
#define HERALD_WS_SESSION_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "herald/hub.h"
#include "herald/jwt.h"
#include "herald/perms.h"
#include "herald/tbucket.h"
#include "herald/ws_deps.h"
#include "herald/wsqueue.h"

struct lws;

/* What every session of a server shares: configuration, dependencies,
 * the shutdown state and the metrics. Part of ws_server; lives as long. */
typedef struct ws_env {
    ws_deps deps;
    const hr_config *cfg;
    bool has_anonymous;            /* the permission table has an "anonymous" role */
    _Atomic bool stopping;         /* set by ws_stop */
    _Atomic int64_t deadline;      /* ws_stop's deadline (monotonic ms) */
    _Atomic uint64_t next_session; /* session ids */
    metrics_cell *m_sessions, *m_subs, *m_delivered, *m_dropped, *m_slow;
    metrics_family *m_closed, *m_auth_fail;
} ws_env;

/* One subscription of a session. */
typedef struct {
    hub_sub *hs;
    char *pending_id; /* id of the subscribe awaiting its reply, or (since) its `synced` */
    bool pending;
    bool replaying; /* since: `synced` not sent yet */
} sub_entry;

/* Per-connection state: lws allocates it zeroed (per_session_data_size) and
 * frees it after LWS_CALLBACK_CLOSED; everything it points to is freed by
 * session_end on the service thread. `live` tells a session that went
 * through session_init from one lws refused before that. The glue reads
 * the queue and closing fields to write; the rest is this module's. */
typedef struct session {
    ws_env *env;
    hub_shard *shard; /* its service thread's */
    struct lws *wsi;  /* the glue's handle */
    void *thr;        /* the glue's service thread */
    bool live;
    char id[24];
    char ip[64];
    bool authed;    /* a session may serve requests (token or anonymous) */
    bool anonymous; /* authed without a token */
    char *sub;      /* token `sub`, NULL when absent / anonymous */
    char **roles;
    size_t nroles;
    int64_t exp; /* token exp (wall seconds), 0 = none */
    perms_set *perms;
    sub_entry *subs;
    size_t nsubs, subs_cap;
    size_t nready;            /* subscriptions counted in the gauge */
    size_t nreplaying;        /* subscriptions replaying (paced by the queue) */
    wsqueue q;                /* outbound: shared frames */
    uint64_t dropped_pending; /* events dropped since the last `dropped` notice */
    /* inbound message assembly (the glue's) */
    char *rx;
    size_t rxlen, rxcap;
    bool rx_binary;
    /* closing */
    int close_code; /* non-zero: close after the queue drained */
    const char *close_reason;
    const char *close_label; /* metrics reason */
    bool close_sent;
    /* timers, monotonic ms; 0 = unset */
    int64_t auth_deadline;
    int64_t next_ping;
    int64_t pong_deadline;
    bool ping_due;
    /* rate limit (limits.ws_messages_per_session) */
    tbucket bucket;
    int strikes;
    struct session *prev, *next; /* the glue's list of its thread's sessions */
} session;

/* A new connection's session (zeroes it; counts it in the metrics). */
void session_init(session *s, ws_env *env, hub_shard *shard, struct lws *wsi, void *thr,
                  const char *ip);

/* Authenticate at the start: `token` is what the upgrade offered (NULL:
 * none), `verified` its principal when the upgrade verified it already
 * (contents taken), else NULL. Sends `ready`, or arms the auth deadline,
 * or closes. While the server stops: closes with 1001 at once. */
void session_open(session *s, const char *token, hjwt_principal *verified);

/* Free everything the session holds (idempotent); counts the close. */
void session_end(session *s);

/* Close after what is queued (or at once, discarding the queue). */
void session_close(session *s, int code, const char *reason, const char *label, bool discard);

/* One whole client message. */
void session_message(session *s, const char *buf, size_t len, bool binary);
/* A pong came back. */
void session_pong(session *s);
/* The session's timer fired (ws_io_set_timer). */
void session_timer(session *s);
/* The glue wrote from the queue: paused replays may read on. */
void session_wrote(session *s);

/* Hub callbacks (hub.h), ctx unused: the session is the hub_sub's owner. */
void session_on_deliver(void *ctx, hub_sub *hs, frame *f);
void session_on_lost(void *ctx, hub_sub *hs, uint64_t n);
void session_on_sub_ready(void *ctx, hub_sub *hs, bool ok, int64_t gap_first_seq);
void session_on_synced(void *ctx, hub_sub *hs, uint64_t seq);
size_t session_on_room(void *ctx, hub_sub *hs);

/* A token check (any thread): HJWT_BAD_SIGNATURE when no key is set. */
hjwt_result ws_verify_token(const ws_env *env, const char *token, size_t len, hjwt_principal *p);
/* Count a refused authentication (herald_auth_failures_total). */
void ws_auth_failure(const ws_env *env, const char *reason);

/* Provided by the lws glue (ws.c), owner thread: ask for a WRITEABLE
 * callback; arm the session's one timer `ms` from now; close the
 * connection if it is still open `secs` from now (a peer that never reads). */
void ws_io_want_write(session *s);
void ws_io_set_timer(session *s, int64_t ms);
void ws_io_close_within(session *s, int secs);

#endif
