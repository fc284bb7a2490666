/* config: the configuration reference (contract §6) as one typed struct,
 * compiled.
 * Owns reading the JSON file, applying defaults and environment overrides
 * (NATS_ADDR, HERALD_LOG_LEVEL, HERALD_STATIC_DIR, every *_env secret),
 * compiling everything startup needs -- the JWT verifier (reading its PEM
 * key files), the permission table, each webhook source's signature
 * verifier, subject/type/id templates and publish permission, the scheme
 * and encoding enums -- and reporting every problem with its JSON path, all
 * at once. A configuration that loads is one that starts: `--check-config`
 * and startup run this same code, and the listeners use what it compiled
 * instead of compiling again.
 * I/O: the file itself, the named key and credentials files (PEM public
 * keys are read and parsed), nothing else; environment variables are read
 * through a caller-supplied lookup so tests stay deterministic.
 * Ownership and threads: config_load / config_from_json run on main's
 * thread; the hr_config they return owns every compiled object in it and is
 * freed by its creator (main) with config_free after everything using it
 * has stopped. Between the two (once main has fitted the connection
 * limits to RLIMIT_NOFILE, before any thread starts) it is immutable: any
 * thread (MHD workers, WebSocket service threads, nats.c callbacks) may
 * read it and use its compiled objects concurrently, as their own headers
 * allow. */
#ifndef HERALD_CONFIG_H
#define HERALD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "herald/clientip.h"
#include "herald/jwt.h"
#include "herald/perms.h"
#include "herald/webhook_verify.h"
#include "herald/whtmpl.h"

/* One parsed "host:port" (IPv6 as "[::1]:8080"). */
typedef struct {
    char host[64]; /* numeric address or "localhost"; "" never */
    int port;      /* 0-65535; 0 = any free port (tests) */
} hr_listen;

typedef struct {
    bool on; /* false = limit off (key absent) */
    double rate_per_s;
    int burst;
} hr_rate;

typedef enum { SLOW_DISCONNECT = 0, SLOW_DROP } hr_slow_policy;
typedef enum { DELIVERY_AUTO = 0, DELIVERY_JETSTREAM, DELIVERY_CORE } hr_delivery;

typedef struct {
    char alg[8];  /* "HS256" | "RS256" | "ES256" */
    char *kid;    /* NULL if unset */
    char *secret; /* HS256: resolved from secret / secret_env */
    size_t secret_len;
    char *public_key_file; /* RS256/ES256: PEM path (exists, readable) */
} hr_jwt_key;

typedef struct {
    char *name;                        /* source name, [a-z0-9][a-z0-9_-]{0,63} */
    wv_scheme scheme;                  /* verify.scheme */
    const wv_scheme_info *scheme_info; /* its row of the scheme table (static) */
    char **secrets;                    /* resolved secret values (secret[_env] / secrets[_env]) */
    size_t nsecrets;
    int tolerance_s;      /* default 300 */
    int replay_window_s;  /* signature schemes: replay cache window, 0 = off (bearer: 0) */
    char *header;         /* hmac-sha256 */
    wv_encoding encoding; /* hmac-sha256: hex (default) or base64 */
    char *prefix;         /* hmac-sha256: optional */
    char **tokens_sha256; /* bearer: lowercase hex digests */
    size_t ntokens_sha256;
    char **tokens; /* bearer: resolved tokens_env values */
    size_t ntokens;
    char *subject; /* subject template as written */
    char *type;    /* ce-type template or NULL for the scheme default */
    char *id;      /* delivery-id template or NULL for the scheme default */
    hr_delivery delivery;
    json_t *publish; /* {allow,deny} or NULL */
    int64_t max_body_bytes;
    char **content_types; /* NULL = the scheme default */
    size_t ncontent_types;
    /* Compiled at load (owned; freed by config_free): */
    wv_config *verifier;        /* verify.* */
    whtmpl *subject_tmpl;       /* subject; whtmpl_subject_shaped */
    whtmpl *type_tmpl;          /* type; NULL = the scheme default */
    whtmpl *id_tmpl;            /* id; NULL = the scheme default */
    perms_table *publish_table; /* publish as the one role "source"; NULL when unset */
    perms_set *publish_perms;   /* that role expanded (no claims); NULL when unset */
    bool templates_read_body;   /* a {json:} placeholder: a body that is not JSON is refused */
    bool parse_body;            /* the body is parsed as JSON: a template or a scheme rule
                                   (wv_scheme_reads_body) reads it */
} hr_webhook_conf;

typedef struct {
    char *name;
    char sha256[65]; /* lowercase hex */
    char **roles;
    size_t nroles;
} hr_api_key;

typedef struct {
    char *stream;
    char **subjects;
    size_t nsubjects;
} hr_history_conf;

typedef struct hr_config {
    /* http */
    hr_listen http_listen;
    int http_retry_after_s;
    int http_request_timeout_s; /* whole request (headers and body) deadline */
    int http_idle_timeout_s;    /* idle keep-alive connection */
    char *static_dir;
    cip_cidr *trusted_proxies; /* http.trusted_proxies: whose X-Forwarded-For is believed */
    size_t ntrusted_proxies;
    /* ws */
    hr_listen ws_listen;
    char **allowed_origins; /* NULL = any */
    size_t nallowed_origins;
    int ws_threads; /* WebSocket service threads (1-64; default online CPUs, at most 8) */
    int ws_max_frame_bytes;
    int ws_max_subscriptions;
    int64_t ws_max_queue_bytes;
    hr_slow_policy ws_slow_consumer;
    int ws_auth_timeout_ms;
    int ws_ping_interval_s;
    int ws_ping_timeout_s;
    char *ws_auth_cookie; /* NULL = off */
    bool ws_query_token;
    /* nats */
    char **nats_servers;
    size_t nnats_servers;
    char *nats_name;
    char *nats_user, *nats_password, *nats_token; /* resolved from *_env */
    char *nats_creds_file;
    int nats_publish_timeout_ms;
    /* auth.jwt */
    hr_jwt_key *jwt_keys;
    size_t njwt_keys;
    char *jwt_issuer, *jwt_audience;
    char *jwt_roles_claim;
    int jwt_leeway_s;
    hjwt_verifier *jwt; /* compiled from the above; NULL when no key is configured */
    /* permissions */
    perms_table *perms;
    /* webhooks */
    hr_webhook_conf *webhooks;
    size_t nwebhooks;
    /* publish_api */
    hr_api_key *api_keys;
    size_t napi_keys;
    int64_t publish_max_body_bytes;
    /* history */
    hr_history_conf *history;
    size_t nhistory;
    /* limits */
    hr_rate ws_upgrades_per_ip, http_requests_per_ip, ws_messages_per_session;
    int64_t max_ws_connections;          /* 0 = off */
    int64_t max_ws_connections_per_ip;   /* 0 = off */
    int64_t max_http_connections;        /* open HTTP connections, default 1000 */
    int64_t max_http_connections_per_ip; /* 0 = off */
    int64_t max_buffered_body_bytes;     /* request bodies held in memory at once, all requests */
    /* misc */
    int log_level; /* log_level */
    int shutdown_timeout_s;
} hr_config;

/* Problems found while loading: one line each, "path: message". */
typedef struct {
    char **lines;
    size_t n, cap;
} config_problems;

void config_problems_free(config_problems *p);

/* Environment lookup (getenv in production). Returns NULL when unset. */
typedef const char *(*config_env_fn)(const char *name);

/* Build a config from parsed JSON (NULL = no file: all defaults). On any
 * problem returns NULL and fills `probs` (all problems, not just the first). */
hr_config *config_from_json(const json_t *root, config_env_fn env, config_problems *probs);

/* Read and parse `path` (NULL = defaults), then config_from_json. A missing
 * file or invalid JSON is a problem like any other (with line and column). */
hr_config *config_load(const char *path, config_env_fn env, config_problems *probs);

/* config_load from text in memory (buf[0..len), need not be NUL-terminated);
 * `name` stands for the file in messages. */
hr_config *config_load_buffer(const char *buf, size_t len, const char *name, config_env_fn env,
                              config_problems *probs);

void config_free(hr_config *c);

/* Parse "host:port" / "[v6]:port"; false if malformed. */
bool config_parse_listen(const char *s, hr_listen *out);

#endif
