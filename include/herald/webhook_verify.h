/* webhook_verify: authenticity checks for inbound webhooks (contract §4,
 * webhooks.<source>.verify in §6).
 * Owns the scheme table -- for each of standard-webhooks, github, stripe,
 * slack, hmac-sha256 and bearer: how it verifies, and the facts the rest of
 * herald asks about it (wv_scheme_info: its keys under verify, its default
 * media types, delivery-id and ce-type rules, Slack's handshake) -- a
 * compiled per-source verifier (wv_config), the verification of one request
 * against it, and the timestamp rules those schemes share. Adding a scheme
 * is one row of the table (and one enum value).
 * Does not own: hex/base64 (encoding.h), SHA-256/HMAC/constant-time compare
 * (crypto.h), reading configuration or environment variables (the caller
 * resolves *_env names to bytes), header lookup (the caller's callback does
 * it, case-insensitively), mapping results to HTTP (every non-OK is a 401).
 * Pure: no I/O, no globals, no clock reads (the caller passes `now`).
 * A wv_config is immutable after wv_config_new, so one may be shared by any
 * number of threads calling wv_verify concurrently. */
#ifndef HERALD_WEBHOOK_VERIFY_H
#define HERALD_WEBHOOK_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "herald/crypto.h"
#include "herald/status.h"

#define WV_SHA256_LEN        HC_SHA256_LEN /* bytes in a signature / signed digest */
#define WV_TOLERANCE_DEFAULT 300           /* seconds, tolerance_s default */
#define WV_MAX_SECRETS       16            /* secrets per source (rotation) */
#define WV_MAX_TIMESTAMP_LEN 19            /* digits; longer timestamps are malformed */

typedef enum {
    WV_SCHEME_STANDARD_WEBHOOKS = 0, /* "standard-webhooks" (Svix headers too) */
    WV_SCHEME_GITHUB,                /* "github" */
    WV_SCHEME_STRIPE,                /* "stripe" */
    WV_SCHEME_SLACK,                 /* "slack" */
    WV_SCHEME_HMAC_SHA256,           /* "hmac-sha256" */
    WV_SCHEME_BEARER,                /* "bearer" */
    WV_SCHEME_COUNT,                 /* number of schemes, not a scheme */
} wv_scheme;

/* Where a source's delivery id (ce-id, Nats-Msg-Id) comes from when it has
 * no `id` template (contract §4); Idempotency-Key, then a generated UUID,
 * when the rule finds nothing usable. */
typedef enum {
    WV_ID_NONE = 0,   /* no rule of the scheme's own */
    WV_ID_HEADER,     /* the first of id_from[] present in the request */
    WV_ID_BODY_FIELD, /* the string member id_from[0] of the JSON body */
} wv_id_rule;

/* The default ce-type when a source has no `type` template. */
typedef enum {
    WV_TYPE_SOURCE = 0, /* "herald.webhook.{source}" */
    WV_TYPE_HEADER,     /* type_prefix + header type_from (a valid placeholder value), else
                           WV_TYPE_SOURCE */
    WV_TYPE_BODY_FIELD, /* the string member type_from of the JSON body (printable text), else
                           WV_TYPE_SOURCE */
} wv_type_rule;

/* What herald knows about one scheme besides verifying it. Static storage. */
typedef struct {
    const char *name;               /* "standard-webhooks", ... as in configuration */
    const char *const *config_keys; /* keys webhooks.<source>.verify may hold besides "scheme",
                                       NULL-terminated; the configuration reads exactly these */
    const char *const *media_types; /* Content-Types accepted by default (fnmatch patterns on the
                                       lowercased media type), NULL-terminated */
    wv_id_rule id_rule;             /* the default delivery id */
    const char *id_from[2];         /* its header names (in order) or body member */
    wv_type_rule type_rule;         /* the default ce-type */
    const char *type_from;          /* its header name or body member */
    const char *type_prefix;        /* WV_TYPE_HEADER: text before the header's value */
    bool url_verification;          /* Slack's handshake: a verified JSON body with "type":
                                       "url_verification" is answered with its challenge */
    bool headers_only;              /* nothing is signed: wv_verify's answer does not depend on
                                       the body (bearer), so it is final before the body */
} wv_scheme_info;

typedef enum {
    WV_ENC_HEX = 0, /* either case accepted; the default */
    WV_ENC_BASE64,  /* standard alphabet, padded or unpadded */
} wv_encoding;

typedef enum {
    WV_OK = 0,        /* authentic and (where the scheme has one) timestamp fresh */
    WV_MISSING,       /* a required header is absent */
    WV_MALFORMED,     /* a signature or timestamp header cannot be parsed */
    WV_BAD_SIGNATURE, /* well-formed, but no signature matches any secret/token */
    WV_STALE,         /* signature matches, timestamp outside tolerance (past or future) */
    WV_ERROR,         /* internal failure (libcrypto, NULL config): answer 500 */
} wv_result;

/* A byte string the caller owns; need not be NUL-terminated. */
typedef struct {
    const unsigned char *data;
    size_t len;
} wv_bytes;

/* Returns the value of request header `name` (looked up case-insensitively by
 * the caller), or NULL when absent. The string must stay valid for the
 * duration of the wv_verify call. */
typedef const char *(*wv_header_fn)(void *ctx, const char *name);

/* Input to wv_config_new. Everything here is borrowed: wv_config_new copies
 * what it keeps, so the caller may free it (and should wipe secrets) after.
 * Initialise with wv_params_init, then set the fields the scheme needs. */
typedef struct {
    wv_scheme scheme;
    const wv_bytes *secrets;          /* HMAC schemes: resolved secret_env / secrets_env values;
                                         standard-webhooks: "whsec_<base64>" or bare base64 */
    size_t n_secrets;                 /* 1..WV_MAX_SECRETS for HMAC schemes, 0 for bearer */
    int64_t tolerance_s;              /* >= 0; standard-webhooks, stripe, slack only */
    const char *header;               /* hmac-sha256: header carrying the signature (required) */
    wv_encoding encoding;             /* hmac-sha256: signature encoding */
    const char *prefix;               /* hmac-sha256: literal before the signature, e.g. "sha256=";
                                         NULL or "" for none */
    const char *const *tokens_sha256; /* bearer: SHA-256 hex digests of accepted tokens */
    size_t n_tokens_sha256;
    const wv_bytes *tokens; /* bearer: plaintext tokens (from tokens_env); only their
                               SHA-256 is kept */
    size_t n_tokens;
} wv_params;

/* Compiled, immutable verifier for one source. Opaque; owns copies of its
 * keys (wiped on free). */
typedef struct wv_config wv_config;

/* Zero *p and set the defaults (scheme, tolerance_s = WV_TOLERANCE_DEFAULT,
 * encoding = hex). */
void wv_params_init(wv_params *p, wv_scheme scheme);

/* "standard-webhooks", "github", ... -> scheme. False if unknown. */
bool wv_scheme_from_name(const char *name, wv_scheme *out);
const char *wv_scheme_name(wv_scheme s);

/* The table row of s; NULL when s is not a scheme (WV_SCHEME_COUNT...). */
const wv_scheme_info *wv_scheme_get(wv_scheme s);

/* Does the scheme take `key` under webhooks.<source>.verify? */
bool wv_scheme_has_key(const wv_scheme_info *info, const char *key);

/* Must the body be parsed as JSON for the scheme's own rules, given which
 * templates the source sets (an `id` / `type` template replaces the
 * default rule)? Templates reading the body are the caller's to add. */
bool wv_scheme_reads_body(const wv_scheme_info *info, bool has_id_template, bool has_type_template);

/* Compile a verifier. On success *out is a new config the caller owns and
 * releases with wv_config_free. On HR_ERR_INVALID, err (if non-NULL) holds a
 * NUL-terminated message naming the config key and list index, e.g.
 * "verify.secrets_env[1]: not valid base64" (index i is p->secrets[i]; a
 * single secret_env is index 0). HR_ERR_NOMEM on allocation failure. */
hr_status wv_config_new(wv_config **out, const wv_params *p, char *err, size_t errsz);

/* Wipe and free. NULL is a no-op. */
void wv_config_free(wv_config *c);

wv_scheme wv_config_scheme(const wv_config *c);

/* Verify one request. body/len are the raw body bytes exactly as received
 * (may contain NUL). now is the current Unix time in seconds. detail, if
 * non-NULL, receives a static string saying why (for debug logs; never
 * contains request data). Every secret is compared against every signature
 * in constant time per comparison, without early exit. The signature is
 * checked before freshness, so WV_STALE means "authentic but too old/new".
 * Parsing: in list headers (webhook-signature, Stripe-Signature) entries of
 * other versions/schemes, and v1 entries that do not decode to 32 bytes,
 * are skipped (another entry may still match); a list with no decodable v1
 * entry at all is WV_MALFORMED; a
 * single-signature header must start with its tag ("sha256=", "v0=", the
 * configured prefix; case-sensitive). webhook-* headers are used if any of
 * the three is present, else svix-*. An empty header value is malformed. */
wv_result wv_verify(const wv_config *c, wv_header_fn get_header, void *hctx,
                    const unsigned char *body, size_t len, int64_t now, const char **detail);

/* SHA-256 of the content a request's signature covers (the scheme's signed
 * prefix -- id and timestamp, "t.", "v0:ts:" -- then the body): the same
 * signed request has the same digest, whatever its unsigned headers or
 * extra signature-list entries say (the replay cache's key). False for
 * bearer (nothing is signed), when the headers cannot be read, or if
 * libcrypto fails. Call after wv_verify returned WV_OK. */
bool wv_signed_digest(const wv_config *c, wv_header_fn get_header, void *hctx,
                      const unsigned char *body, size_t len, unsigned char out[WV_SHA256_LEN]);

/* The same check while the body streams: wv_stream_begin reads (and
 * copies) the headers, so a missing or malformed one is the answer before
 * any of the body is read, as is every answer of a scheme that signs
 * nothing (bearer); it returns WV_OK with *out set, or the answer with *out
 * NULL. Each chunk then goes through wv_stream_update (false: libcrypto
 * failed, the answer will be WV_ERROR) and wv_stream_finish gives exactly
 * what wv_verify gives for the whole body. After finish,
 * wv_stream_signed_digest is wv_signed_digest's value. One thread at a time
 * per stream; the config must outlive it. wv_verify is this driver over
 * one chunk. */
typedef struct wv_stream wv_stream;
wv_result wv_stream_begin(const wv_config *c, wv_header_fn get_header, void *hctx, wv_stream **out,
                          const char **detail);
bool wv_stream_update(wv_stream *st, const void *data, size_t len);
wv_result wv_stream_finish(wv_stream *st, int64_t now, const char **detail);
bool wv_stream_signed_digest(const wv_stream *st, unsigned char out[WV_SHA256_LEN]);
void wv_stream_free(wv_stream *st); /* NULL is a no-op */

const char *wv_result_str(wv_result r);

/* ---- timestamps --------------------------------------------------------- */

/* Strict timestamp: 1..WV_MAX_TIMESTAMP_LEN ASCII digits, no sign, space or
 * fraction, value <= INT64_MAX. */
bool wv_parse_timestamp(const char *s, size_t len, int64_t *out);

/* Is ts within tol seconds of now, in either direction (overflow-safe)? */
bool wv_timestamp_fresh(int64_t ts, int64_t now, int64_t tol);

#endif
