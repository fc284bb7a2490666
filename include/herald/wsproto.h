/* wsproto: the pure parts of the herald.v1 WebSocket protocol (contract §3):
 * parsing and validating one client frame into a request, framing server
 * messages, the Origin allow-list, and the protocol's error and close codes.
 * Pure: no I/O, no globals. */
#ifndef HERALD_WSPROTO_H
#define HERALD_WSPROTO_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Close codes. */
#define WS_CLOSE_GOING_AWAY    1001
#define WS_CLOSE_TOO_LARGE     1009
#define WS_CLOSE_UNAUTHORIZED  4001
#define WS_CLOSE_PING_TIMEOUT  4002
#define WS_CLOSE_SLOW_CONSUMER 4008
#define WS_CLOSE_RATE_LIMITED  4029

typedef enum {
    WSREQ_AUTH,
    WSREQ_SUBSCRIBE,
    WSREQ_UNSUBSCRIBE,
    WSREQ_PUBLISH,
    WSREQ_PING,
} wsreq_type;

/* One parsed client request. Strings point into `root`, which the request
 * owns; free with wsproto_request_clear. */
typedef struct {
    wsreq_type type;
    json_t *root;
    const char *id;      /* NULL when absent */
    const char *token;   /* auth: any string, "" included (the verifier refuses it) */
    size_t token_len;    /* auth: bytes (may hold NUL) */
    const char *subject; /* subscribe, unsubscribe, publish */
    size_t subject_len;
    bool has_since;     /* subscribe */
    bool since_last;    /* since: "last" (snapshot) */
    int64_t since;      /* since: N */
    const json_t *data; /* publish: the `data` value, or NULL when data_b64 */
    unsigned char *bin; /* publish: decoded data_b64 (owned), or NULL */
    size_t bin_len;
} wsreq;

/* Parse one text frame. Fields a request type does not define are ignored.
 * On success returns true. On failure returns false,
 * writes a short reason to `msg`, and sets *id_out to a malloc'ed copy of
 * the request's `id` when one could be read (caller frees), else NULL. The
 * caller answers error `bad_request`. On success *id_out is NULL (use out->id). */
bool wsproto_parse(const char *buf, size_t len, wsreq *out, char **id_out, char *msg,
                   size_t msglen);
void wsproto_request_clear(wsreq *r);

/* RFC 6455 server → client framing (unmasked, FIN, text), so a session's
 * queued frames can be coalesced into one write. The header of a frame
 * with `len` payload bytes, written to p (at most 10 bytes); returns its
 * size. */
size_t wsproto_frame_header(unsigned char *p, size_t len);
/* Append one framed message to out[0..cap) at *n; false (nothing written)
 * if it does not fit. */
bool wsproto_frame_append(unsigned char *out, size_t cap, size_t *n, const unsigned char *data,
                          size_t len);

/* Origin allow-list (contract §3): scheme and host case-insensitively, port
 * with defaults applied (http/ws 80, https/wss 443); an entry "https://" + "*.d"
 * matches subdomains of d at any depth but not d itself; "null" only when
 * listed. */
bool wsproto_origin_allowed(const char *origin, char *const *allowed, size_t n);

/* Does a Sec-WebSocket-Protocol header value (comma-separated list) offer
 * `name`? */
bool wsproto_offers_protocol(const char *header, const char *name);

/* The value of cookie `name` in a Cookie header, copied to out; false if
 * absent or too long. */
bool wsproto_cookie_value(const char *header, const char *name, char *out, size_t outlen);

#endif
