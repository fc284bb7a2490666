/* http: MHD daemon, routing, problem+json, operational routes. */
#include "herald/http.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "herald/clientip.h"
#include "herald/http_guard.h"
#include "herald/http_ingest.h"
#include "herald/http_reply.h"
#include "herald/lifecycle.h"
#include "herald/log.h"
#include "herald/netutil.h"
#include "herald/ratelimit.h"

/* MHD refuses (with its own HTML page) what does not fit its per-connection
 * memory; herald's limits are lower and answered with problem+json. The pool
 * is zeroed per request, so it stays small: at 128 KiB /healthz throughput
 * halved (wrk, 64 connections). */
#define MHD_MEMORY_LIMIT (32 * 1024)
#define MAX_URI_BYTES    (8 * 1024)
#define MAX_HEADER_BYTES (16 * 1024)

typedef struct http_req http_req;
typedef enum MHD_Result (*route_fn)(http_server *s, http_req *r, struct MHD_Connection *c,
                                    const char *url);
/* A route that reads a body: called for every handler invocation. */
typedef enum MHD_Result (*body_fn)(http_ingest *h, hi_req **st, struct MHD_Connection *c,
                                   const char *url, const char *upload, size_t *upload_size,
                                   int *status);

enum { M_GET = 1, M_HEAD = 2, M_POST = 4 };

typedef struct {
    const char *path; /* exact path, or prefix when it ends with '/' and prefix is set */
    bool prefix;
    unsigned methods;
    const char *allow; /* Allow header for 405 */
    route_fn fn;
    const char *label; /* metrics route label */
    body_fn body;      /* POST routes with a body (fn is then unused) */
} route;

/* Per-request state (MHD's con_cls). Created by the URI log callback,
 * freed by the request-completed callback. */
struct http_req {
    http_server *srv;
    const route *route;
    const char *label;
    int status;                /* status of the queued response */
    bool started;              /* first handler call seen */
    bool bad_path;             /* raw URI held a percent-encoded control byte */
    size_t uri_len;            /* raw request-target length */
    bool after_stop;           /* its request line arrived after shutdown began */
    hi_req *ingest;            /* state of a body route (webhooks, publish API) */
    char client[CIP_TEXT_MAX]; /* the client address herald believes (for logs) */
    int retry_after;           /* seconds, when refused by the rate limit */
};

struct http_server {
    _Atomic bool stopping;         /* http_stop began: refuse new requests */
    bool stopped;                  /* http_stop ran (main thread only) */
    pthread_mutex_t idle_mu;       /* with idle_cv: http_stop waits for inflight == 0 */
    pthread_cond_t idle_cv;        /* on CLOCK_MONOTONIC; broadcast at inflight 0 once stopping */
    _Atomic bool js_ok;            /* last JetStream probe (readyz) */
    _Atomic int64_t js_checked_ms; /* ...and when it ran */
    pthread_t probe;               /* js_probe_main, when JetStream is needed */
    bool probe_running, probe_stop;
    pthread_mutex_t probe_mu; /* guards probe_stop */
    pthread_cond_t probe_cv;
    struct MHD_Daemon *d;
    int listen_fd;
    int port;
    http_deps deps;
    int64_t started_ms;
    _Atomic int inflight; /* requests begun and not completed */
    metrics_family *m_requests;
    http_ingest *ingest; /* webhooks and publish API */
    http_guard *guard;   /* request and idle deadlines */
    rl_table *rl;        /* limits.http_requests_per_ip, or NULL when off */
    char real_static[PATH_MAX];
};

/* ---- responses ------------------------------------------------------------ */

static enum MHD_Result send_response(http_req *r, struct MHD_Connection *c, int status,
                                     const char *ctype, const void *body, size_t len,
                                     bool must_copy)
{
    if (r)
        r->status = status;
    return http_reply_buffer(c, status, ctype, (void *)body, len,
                             must_copy ? MHD_RESPMEM_MUST_COPY : MHD_RESPMEM_PERSISTENT);
}

/* RFC 9457 problem+json, recorded as r's status. */
static enum MHD_Result send_problem(http_req *r, struct MHD_Connection *c, int status,
                                    const char *slug, const char *detail, const char *extra_header,
                                    const char *extra_value, bool close_conn)
{
    if (r)
        r->status = status;
    return http_reply_problem(c, status, slug, detail, extra_header, extra_value, close_conn);
}

/* ---- the client address ------------------------------------------------------ */

/* Every X-Forwarded-For line, joined with ',' in order (RFC 9110 §5.3). */
typedef struct {
    char buf[2048];
    size_t len;
    bool overflow;
} xff_join;

static enum MHD_Result join_xff(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value)
{
    xff_join *j = cls;
    (void)kind;
    if (strcasecmp(key, "X-Forwarded-For") != 0 || !value)
        return MHD_YES;
    size_t vl = strlen(value);
    if (j->len + vl + 2 > sizeof j->buf) {
        j->overflow = true; /* not believed at all: see client_ip */
        return MHD_YES;
    }
    if (j->len)
        j->buf[j->len++] = ',';
    memcpy(j->buf + j->len, value, vl + 1);
    j->len += vl;
    return MHD_YES;
}

/* The client address herald believes for this request: the peer, or behind
 * http.trusted_proxies the right-most untrusted X-Forwarded-For entry
 * (clientip.h). out holds CIP_TEXT_MAX. */
static void client_ip(struct MHD_Connection *c, const hr_config *cfg, char *out, size_t cap)
{
    char peer[CIP_TEXT_MAX] = "unknown";
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, peer, sizeof peer);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, peer, sizeof peer);
    }
    if (!cfg->ntrusted_proxies || !cip_trusted(cfg->trusted_proxies, cfg->ntrusted_proxies, peer)) {
        cip_client(NULL, 0, peer, NULL, out, cap);
        return;
    }
    xff_join *j = malloc(sizeof *j);
    if (j) {
        j->len = 0;
        j->overflow = false;
        j->buf[0] = '\0';
        MHD_get_connection_values(c, MHD_HEADER_KIND, join_xff, j);
    }
    /* an over-long header is not believed: the trusted proxy is the client */
    cip_client(cfg->trusted_proxies, cfg->ntrusted_proxies, peer,
               j && !j->overflow && j->len ? j->buf : NULL, out, cap);
    free(j);
}

/* ---- operational routes --------------------------------------------------- */

static enum MHD_Result h_healthz(http_server *s, http_req *r, struct MHD_Connection *c,
                                 const char *url)
{
    static const char body[] = "{\"status\":\"ok\"}";
    return send_response(r, c, 200, "application/json", body, sizeof body - 1, false);
}

/* JetStream is needed when a source must deliver through it or history
 * streams are configured. */
static bool needs_jetstream(const hr_config *cfg)
{
    if (cfg->nhistory)
        return true;
    for (size_t i = 0; i < cfg->nwebhooks; i++)
        if (cfg->webhooks[i].delivery == DELIVERY_JETSTREAM)
            return true;
    return false;
}

/* The JetStream probe thread: asks for the account info ($JS.API.INFO,
 * bounded by 1 s) every JS_PROBE_PERIOD_MS, one request at a time, so
 * /readyz answers from the last result and never waits on NATS on an MHD
 * worker (issue 17, defect 3). Runs only when JetStream is needed. */
#define JS_PROBE_PERIOD_MS  2000
#define JS_PROBE_TIMEOUT_MS 1000

static void *js_probe_main(void *arg)
{
    http_server *s = arg;
    pthread_mutex_lock(&s->probe_mu);
    while (!s->probe_stop) {
        pthread_mutex_unlock(&s->probe_mu);
        bool ok = false;
        if (bus_get_state(s->deps.bus) == BUS_CONNECTED) {
            natsMsg *reply = NULL;
            natsStatus st = natsConnection_RequestString(&reply, bus_conn(s->deps.bus),
                                                         "$JS.API.INFO", "", JS_PROBE_TIMEOUT_MS);
            ok = st == NATS_OK && natsMsg_GetDataLength(reply) > 0 &&
                 !strstr(natsMsg_GetData(reply), "\"error\"");
            natsMsg_Destroy(reply);
        }
        atomic_store(&s->js_ok, ok);
        atomic_store(&s->js_checked_ms, clock_now_ms());
        pthread_mutex_lock(&s->probe_mu);
        if (s->probe_stop)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)(JS_PROBE_PERIOD_MS % 1000) * 1000000L;
        ts.tv_sec += JS_PROBE_PERIOD_MS / 1000 + ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&s->probe_cv, &s->probe_mu, &ts);
    }
    pthread_mutex_unlock(&s->probe_mu);
    return NULL;
}

/* The last probe's answer; a result older than two periods (the probe is
 * stuck in a request) counts as "does not answer". */
static bool jetstream_answers(http_server *s)
{
    int64_t age = clock_now_ms() - atomic_load(&s->js_checked_ms);
    return atomic_load(&s->js_ok) && age <= 2 * JS_PROBE_PERIOD_MS + JS_PROBE_TIMEOUT_MS;
}

static enum MHD_Result h_readyz(http_server *s, http_req *r, struct MHD_Connection *c,
                                const char *url)
{
    bus_state st = bus_get_state(s->deps.bus);
    if (st == BUS_CONNECTED && needs_jetstream(s->deps.cfg) && !jetstream_answers(s)) {
        return send_problem(r, c, 503, "not-ready",
                            "NATS is connected but JetStream does not answer, and a webhook "
                            "source or history entry needs it",
                            NULL, NULL, false);
    }
    if (st == BUS_CONNECTED) {
        static const char body[] = "{\"status\":\"ready\",\"nats\":\"connected\"}";
        return send_response(r, c, 200, "application/json", body, sizeof body - 1, false);
    }
    char detail[256];
    snprintf(detail, sizeof detail, "NATS is not connected (%s): %s", bus_state_str(st),
             st == BUS_CONNECTING ? "no server reachable yet" : "connection lost, reconnecting");
    return send_problem(r, c, 503, "not-ready", detail, NULL, NULL, false);
}

static enum MHD_Result h_metrics(http_server *s, http_req *r, struct MHD_Connection *c,
                                 const char *url)
{
    char *text;
    size_t len;
    if (metrics_render(s->deps.metrics, &text, &len) != 0)
        return send_problem(r, c, 500, "internal", "cannot render metrics", NULL, NULL, false);
    r->status = 200;
    return http_reply_buffer(c, 200, "text/plain; version=0.0.4; charset=utf-8", text, len,
                             MHD_RESPMEM_MUST_FREE);
}

static const char *content_type_for(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
        {".map", "application/json"},
    };
    const char *dot = strrchr(path, '.');
    if (dot && !strchr(dot, '/'))
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcmp(dot, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

/* Serve `rel` (relative, already free of ".." segments) from `dir`, refusing
 * anything whose real path leaves `realdir` (symlinks included). */
static enum MHD_Result serve_file(http_req *r, struct MHD_Connection *c, const char *dir,
                                  const char *realdir, const char *rel)
{
    char path[PATH_MAX], real[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, rel) >= (int)sizeof path ||
        !realpath(path, real) || !realdir[0] || strncmp(real, realdir, strlen(realdir)) != 0 ||
        (real[strlen(realdir)] != '/' && real[strlen(realdir)] != '\0'))
        return send_problem(r, c, 404, "not-found", "no such file", NULL, NULL, false);
    int fd = open(real, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        return send_problem(r, c, 404, "not-found", "no such file", NULL, NULL, false);
    }
    struct MHD_Response *resp = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (!resp) {
        close(fd);
        return MHD_NO;
    }
    r->status = 200;
    return http_reply_queue(c, 200, resp, content_type_for(real), "X-Content-Type-Options",
                            "nosniff", false);
}

static enum MHD_Result h_index(http_server *s, http_req *r, struct MHD_Connection *c,
                               const char *url)
{
    return serve_file(r, c, s->deps.static_dir, s->real_static, "index.html");
}

static bool has_dotdot(const char *p)
{
    for (const char *q = p; (q = strstr(q, "..")); q += 2)
        if ((q == p || q[-1] == '/') && (q[2] == '/' || q[2] == '\0'))
            return true;
    return false;
}

static enum MHD_Result h_static(http_server *s, http_req *r, struct MHD_Connection *c,
                                const char *url)
{
    const char *rel = url + strlen("/static/");
    if (!*rel || has_dotdot(rel))
        return send_problem(r, c, 404, "not-found", "no such file", NULL, NULL, false);
    return serve_file(r, c, s->deps.static_dir, s->real_static, rel);
}

/* The API documents live in deps->openapi_dir (not in the static tree). */
static enum MHD_Result serve_document(http_server *s, http_req *r, struct MHD_Connection *c,
                                      const char *name, const char *missing)
{
    char real[PATH_MAX];
    if (!realpath(s->deps.openapi_dir, real))
        return send_problem(r, c, 404, "not-found", missing, NULL, NULL, false);
    return serve_file(r, c, s->deps.openapi_dir, real, name);
}

static enum MHD_Result h_openapi(http_server *s, http_req *r, struct MHD_Connection *c,
                                 const char *url)
{
    return serve_document(s, r, c, "openapi.json", "the OpenAPI document is not installed");
}

static enum MHD_Result h_asyncapi(http_server *s, http_req *r, struct MHD_Connection *c,
                                  const char *url)
{
    return serve_document(s, r, c, "asyncapi.json", "the AsyncAPI document is not installed");
}

static enum MHD_Result h_docs(http_server *s, http_req *r, struct MHD_Connection *c,
                              const char *url)
{
    return serve_file(r, c, s->deps.static_dir, s->real_static, "docs.html");
}

static const route routes[] = {
    {"/healthz", false, M_GET | M_HEAD, "GET, HEAD", h_healthz, "/healthz", NULL},
    {"/readyz", false, M_GET | M_HEAD, "GET, HEAD", h_readyz, "/readyz", NULL},
    {"/metrics", false, M_GET | M_HEAD, "GET, HEAD", h_metrics, "/metrics", NULL},
    {"/openapi.json", false, M_GET | M_HEAD, "GET, HEAD", h_openapi, "/openapi.json", NULL},
    {"/asyncapi.json", false, M_GET | M_HEAD, "GET, HEAD", h_asyncapi, "/asyncapi.json", NULL},
    {"/docs", false, M_GET | M_HEAD, "GET, HEAD", h_docs, "/docs", NULL},
    {"/", false, M_GET | M_HEAD, "GET, HEAD", h_index, "/", NULL},
    {"/static/", true, M_GET | M_HEAD, "GET, HEAD", h_static, "/static/{path}", NULL},
    {"/v1/webhooks/", true, M_POST, "POST", NULL, "/v1/webhooks/{source}", http_ingest_webhook},
    {"/v1/publish/", true, M_POST, "POST", NULL, "/v1/publish/{subject}", http_ingest_publish},
};

static const route *find_route(const char *url)
{
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const route *rt = &routes[i];
        if (rt->prefix ? strncmp(url, rt->path, strlen(rt->path)) == 0 : strcmp(url, rt->path) == 0)
            return rt;
    }
    return NULL;
}

static unsigned method_bit(const char *m)
{
    if (strcmp(m, "GET") == 0)
        return M_GET;
    if (strcmp(m, "HEAD") == 0)
        return M_HEAD;
    if (strcmp(m, "POST") == 0)
        return M_POST;
    return 0;
}

/* ---- MHD callbacks -------------------------------------------------------- */

static bool raw_path_has_control(const char *uri)
{
    for (const char *p = uri; *p && *p != '?'; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch < 0x20 || ch == 0x7f)
            return true;
        if (ch == '%' && isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2])) {
            char hex[3] = {p[1], p[2], 0};
            long v = strtol(hex, NULL, 16);
            if (v < 0x20 || v == 0x7f)
                return true;
        }
    }
    return false;
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    http_server *s = cls;
    http_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->srv = s;
    r->label = "unmatched";
    r->bad_path = raw_path_has_control(uri);
    r->uri_len = strlen(uri);
    r->after_stop = atomic_load(&s->stopping);
    atomic_fetch_add(&s->inflight, 1);
    http_guard_request_line(c);
    return r;
}

/* Framing facts gathered from the request headers in one pass. */
typedef struct {
    int ncl;             /* Content-Length headers */
    bool cl_differ;      /* ...with different values */
    const char *cl;      /* the first one */
    size_t header_bytes; /* names + values */
} header_scan;

static int scan_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    header_scan *h = cls;
    h->header_bytes += strlen(key) + (value ? strlen(value) : 0) + 4;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        if (h->ncl++ == 0)
            h->cl = value;
        else if (!value || !h->cl || strcmp(value, h->cl) != 0)
            h->cl_differ = true;
    }
    return MHD_YES;
}

/* limits.http_requests_per_ip applies to every route but the probes, which
 * must stay cheap and always answer (contract §6; issue 17, defect 6). The
 * refusal's Retry-After is left in r->retry_after. */
static bool over_rate(http_server *s, http_req *r, struct MHD_Connection *c, const char *url)
{
    if (!s->rl || (r->route && (r->route->fn == h_healthz || r->route->fn == h_readyz)))
        return false;
    char key[RL_KEY_LEN];
    rl_client_key_text(r->client, key); /* the address herald believes (trusted proxies) */
    return !rl_allow(s->rl, key, clock_now_ms(), &r->retry_after);
}

static enum MHD_Result send_rate_limited(http_server *s, http_req *r, struct MHD_Connection *c,
                                         const char *url)
{
    if (r->route)
        r->label = r->route->label;
    http_ingest_count_rate_limited(s->ingest, url);
    char ra[16];
    snprintf(ra, sizeof ra, "%d", r->retry_after > 0 ? r->retry_after : 1);
    return send_problem(r, c, 429, "rate-limited",
                        "too many requests from this address; retry after Retry-After seconds",
                        MHD_HTTP_HEADER_RETRY_AFTER, ra, false);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    http_server *s = cls;
    http_req *r = *con_cls;
    if (!r)
        return MHD_NO; /* allocation failed in on_uri */
    /* Past http.request_timeout_s the guard answered 408 and hung up. */
    if ((!r->started || *upload_data_size == 0) && !http_guard_answering(c))
        return MHD_NO;
    if (!r->started) {
        r->started = true;
        client_ip(c, s->deps.cfg, r->client, sizeof r->client);
        /* Shutting down: a new request on a kept-alive connection is not
         * taken (in-flight ones finish); the client retries elsewhere. */
        if (r->after_stop) {
            char ra[16];
            snprintf(ra, sizeof ra, "%d", s->deps.cfg->http_retry_after_s);
            return send_problem(r, c, 503, "shutting-down", "herald is shutting down",
                                "Retry-After", ra, true);
        }
        if (r->bad_path)
            return send_problem(r, c, 400, "bad-path",
                                "the path contains an encoded control character", NULL, NULL,
                                false);
        /* herald's own limits sit below MHD's memory limit, so that an
         * over-long request gets problem+json rather than MHD's HTML. */
        if (r->uri_len > MAX_URI_BYTES)
            return send_problem(r, c, 414, "uri-too-long", "the request target is too long", NULL,
                                NULL, true);
        header_scan hs = {0};
        MHD_get_connection_values(c, MHD_HEADER_KIND, (MHD_KeyValueIterator)scan_header, &hs);
        if (hs.header_bytes > MAX_HEADER_BYTES)
            return send_problem(r, c, 431, "headers-too-large", "the request headers are too large",
                                NULL, NULL, true);
        const char *te =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
        if (hs.cl_differ || (hs.ncl && te))
            return send_problem(r, c, 400, "ambiguous-framing",
                                "both Content-Length and Transfer-Encoding, or two different "
                                "Content-Length headers",
                                NULL, NULL, true);
        if (te && strcasecmp(te, "chunked") != 0)
            return send_problem(r, c, 501, "unsupported-transfer-encoding",
                                "only Transfer-Encoding: chunked is supported", NULL, NULL, true);
        r->route = find_route(url);
        if (over_rate(s, r, c, url))
            return send_rate_limited(s, r, c, url);
        if (!r->route)
            return send_problem(r, c, 404, "not-found", "no such route", NULL, NULL, false);
        r->label = r->route->label;
        if (!(method_bit(method) & r->route->methods))
            return send_problem(r, c, 405, "method-not-allowed",
                                "this route does not accept that method", MHD_HTTP_HEADER_ALLOW,
                                r->route->allow, false);
        if (r->route->body) {
            enum MHD_Result ret = r->route->body(s->ingest, &r->ingest, c, url, upload_data,
                                                 upload_data_size, &r->status);
            if (ret == MHD_YES)
                http_guard_receiving(c, !r->status); /* the body is still to come */
            return ret;
        }
        /* Answer on the next call: MHD 0.9.75 closes a connection whose
         * response was queued in the first call (keep-alive lost, and with
         * it /healthz on an open connection at max_http_connections). */
        return MHD_YES;
    }
    if (r->route->body)
        return r->route->body(s->ingest, &r->ingest, c, url, upload_data, upload_data_size,
                              &r->status);
    if (*upload_data_size) {
        *upload_data_size = 0; /* no route reads a body yet */
        return MHD_YES;
    }
    return r->route->fn(s, r, c, url);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    http_server *s = cls;
    http_req *r = *con_cls;
    if (!r)
        return;
    char code[16];
    if (r->status)
        snprintf(code, sizeof code, "%dxx", r->status / 100);
    else
        snprintf(code, sizeof code, "none");
    const char *labels[] = {r->label, code};
    metrics_inc_labels(s->m_requests, labels, 1);
    /* Refused requests name the client herald believed (behind trusted
     * proxies: the X-Forwarded-For address, which per-IP limits use). */
    if (r->status >= 400 && log_enabled(HLOG_INFO))
        log_info("request refused", "{s:s, s:i, s:s}", "route", r->label, "status", r->status,
                 "client", r->client[0] ? r->client : "unknown");
    if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        http_guard_idle(c);
    http_ingest_req_free(r->ingest);
    if (atomic_fetch_sub(&s->inflight, 1) == 1 && atomic_load(&s->stopping)) {
        pthread_mutex_lock(&s->idle_mu);
        pthread_cond_broadcast(&s->idle_cv);
        pthread_mutex_unlock(&s->idle_mu);
    }
    free(r);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    log_library(HLOG_DEBUG, "http", msg);
}

/* ---- lifecycle ------------------------------------------------------------ */

/* One MHD worker per core: more only adds context switches (measured with
 * bench/webhooks.sh); requests waiting on NATS are suspended, not parked. */
static unsigned int pool_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 2 ? 2u : n > 16 ? 16u : (unsigned int)n;
}

/* MHD splits its connection limit between the pool's workers and a worker
 * at its share stops accepting; the guard enforces the real limit at
 * accept, so give every worker room for all of it. */
static unsigned int mhd_connection_limit(const hr_config *cfg)
{
    int64_t n = cfg->max_http_connections * pool_threads() + 64;
    return n > 1000000 ? 1000000u : (unsigned int)n;
}

hr_status http_start(http_server **out, const http_deps *deps, char *err, size_t errlen)
{
    *out = NULL;
    http_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return HR_ERR_NOMEM;
    }
    s->deps = *deps;
    s->started_ms = clock_now_ms();
    pthread_mutex_init(&s->probe_mu, NULL);
    pthread_cond_init(&s->probe_cv, NULL);
    pthread_mutex_init(&s->idle_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->idle_cv, &ca);
    pthread_condattr_destroy(&ca);
    if (!realpath(deps->static_dir, s->real_static))
        s->real_static[0] = '\0';
    s->m_requests = metrics_counter(deps->metrics, "herald_http_requests_total",
                                    "HTTP requests by route and status class.", "route,code");
    const hr_rate *lim = &deps->cfg->http_requests_per_ip;
    if (lim->on && !(s->rl = rl_new(lim->rate_per_s, lim->burst))) {
        snprintf(err, errlen, "limits.http_requests_per_ip: cannot set up");
        free(s);
        return HR_ERR_INVALID;
    }
    hr_status st = http_ingest_new(&s->ingest, deps, err, errlen);
    if (st != HR_OK) {
        rl_free(s->rl);
        free(s);
        return st;
    }
    if (http_guard_new(&s->guard, deps->cfg->http_request_timeout_s, deps->cfg->http_idle_timeout_s,
                       deps->cfg->max_http_connections,
                       deps->cfg->max_http_connections_per_ip) != HR_OK) {
        snprintf(err, errlen, "cannot start the HTTP deadline watchdog");
        http_ingest_free(s->ingest);
        rl_free(s->rl);
        free(s);
        return HR_ERR_NOMEM;
    }
    s->listen_fd = net_listen(&deps->cfg->http_listen, err, errlen);
    if (s->listen_fd < 0) {
        http_guard_free(s->guard);
        http_ingest_free(s->ingest);
        rl_free(s->rl);
        free(s);
        return HR_ERR_LISTEN;
    }
    s->port = net_local_port(s->listen_fd);
    s->d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
            MHD_USE_ERROR_LOG,
        0, NULL, NULL, on_request, s, MHD_OPTION_LISTEN_SOCKET, s->listen_fd,
        MHD_OPTION_THREAD_POOL_SIZE, pool_threads(), MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)deps->cfg->http_idle_timeout_s, MHD_OPTION_CONNECTION_LIMIT,
        mhd_connection_limit(deps->cfg), MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)MHD_MEMORY_LIMIT, MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION,
        http_guard_notify, s->guard, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s, MHD_OPTION_END);
    if (!s->d) {
        snprintf(err, errlen, "cannot start the HTTP server on port %d", s->port);
        http_guard_free(s->guard);
        close(s->listen_fd);
        http_ingest_free(s->ingest);
        rl_free(s->rl);
        free(s);
        return HR_ERR_LISTEN;
    }
    if (needs_jetstream(deps->cfg) && pthread_create(&s->probe, NULL, js_probe_main, s) == 0)
        s->probe_running = true;
    *out = s;
    return HR_OK;
}

static void stop_probe(http_server *s)
{
    pthread_mutex_lock(&s->probe_mu);
    s->probe_stop = true;
    pthread_cond_broadcast(&s->probe_cv);
    pthread_mutex_unlock(&s->probe_mu);
    if (s->probe_running)
        pthread_join(s->probe, NULL);
    s->probe_running = false;
}

int http_port(const http_server *s)
{
    return s->port;
}

/* Wait until no request is in flight or `until` passes. */
static void wait_idle(http_server *s, int64_t until)
{
    pthread_mutex_lock(&s->idle_mu);
    while (atomic_load(&s->inflight) > 0 && deadline_left_ms(until) > 0) {
        struct timespec ts = deadline_timespec(until);
        pthread_cond_timedwait(&s->idle_cv, &s->idle_mu, &ts);
    }
    pthread_mutex_unlock(&s->idle_mu);
}

void http_stop(http_server *s, int64_t deadline_ms)
{
    if (!s || s->stopped)
        return;
    s->stopped = true;
    atomic_store(&s->stopping, true);
    MHD_socket fd = MHD_quiesce_daemon(s->d);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    /* In-flight requests finish normally first, including uploads and
     * requests suspended while JetStream acknowledges them (their acks keep
     * arriving: MaxWait bounds each), for four fifths of the time left.
     * Then publishing stops (ingest_drain waits for PubAcks for half of
     * what is left), any request still waiting is answered 503 and resumed,
     * and the resumed handlers get the rest to queue their answers:
     * MHD_stop_daemon must never see a suspended connection. */
    wait_idle(s, deadline_share(deadline_ms, 4, 5));
    http_ingest_drain(s->ingest, (int)(deadline_left_ms(deadline_ms) / 2));
    wait_idle(s, deadline_ms);
    if (atomic_load(&s->inflight) > 0)
        log_warn("shutdown: HTTP requests still in flight at the deadline", "{s:i}", "requests",
                 atomic_load(&s->inflight));
    MHD_stop_daemon(s->d);
    s->d = NULL;
    http_guard_free(s->guard); /* joins its watchdog */
    s->guard = NULL;
    stop_probe(s);
}

void http_free(http_server *s)
{
    if (!s)
        return;
    http_stop(s, clock_now_ms()); /* a no-op once stopped */
    http_ingest_free(s->ingest);
    rl_free(s->rl);
    pthread_mutex_destroy(&s->probe_mu);
    pthread_cond_destroy(&s->probe_cv);
    pthread_mutex_destroy(&s->idle_mu);
    pthread_cond_destroy(&s->idle_cv);
    free(s);
}
