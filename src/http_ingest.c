/* http_ingest: POST /v1/webhooks/{source} and POST /v1/publish/{subject}. */
#include "herald/http_ingest.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "herald/cloudevent.h"
#include "herald/http_reply.h"
#include "herald/ingest.h"
#include "herald/jwt.h"
#include "herald/log.h"
#include "herald/netutil.h"
#include "herald/perms.h"
#include "herald/whreplay.h"
#include "herald/subject.h"
#include "herald/crypto.h"
#include "herald/webhook_verify.h"
#include "herald/whtmpl.h"

#define HEADROOM      4096 /* bytes of max_payload kept for herald's headers */
#define MAX_ID_LEN    256  /* longest delivery id taken from a request */
#define MAX_CTYPE_LEN 256  /* longest Content-Type republished as a NATS header */
/* A chunked upload that passes its limit is answered 413 at once, written
 * to the socket, which is then half-closed; the rest of the body is read
 * and discarded (lingering close, as nginx does) so that the sender reads
 * the 413 instead of a reset, but at most this much and this long. */
#define LINGER_MAX_BYTES (8 * 1024 * 1024)
#define LINGER_MAX_MS    10000
#define LINGER_IDLE_S    2 /* MHD's idle timeout for the connection meanwhile */
#define MAX_TYPE_LEN     1024
#define MAX_API_KEY      4096
#define MAX_JWT_LEN      8192
/* limits.max_buffered_body_bytes reached: 503 + Retry-After, as for any
 * capacity shortage; the sender retries later. */
#define OVERLOADED                                                                                 \
    "too many request bodies are being received at once; retry after Retry-After seconds"

typedef enum {
    O_ACCEPTED = 0,
    O_DUPLICATE,
    O_BAD_SIGNATURE,
    O_TOO_LARGE,
    O_UNSUPPORTED_MEDIA_TYPE,
    O_BAD_REQUEST,
    O_UNBUILDABLE_SUBJECT,
    O_FORBIDDEN,
    O_UNAVAILABLE,
    O_RATE_LIMITED,
    O_URL_VERIFICATION, /* Slack's handshake answered; nothing published */
    O_COUNT,
} outcome;

static const char *const outcome_names[O_COUNT] = {"accepted",
                                                   "duplicate",
                                                   "bad_signature",
                                                   "too_large",
                                                   "unsupported_media_type",
                                                   "bad_request",
                                                   "unbuildable_subject",
                                                   "forbidden",
                                                   "unavailable",
                                                   "rate_limited",
                                                   "url_verification"};

/* A webhook source: its compiled configuration (verifier, templates,
 * permission, scheme row -- all owned by the hr_config) and its metrics. */
typedef struct {
    const hr_webhook_conf *conf;
    metrics_cell *m[O_COUNT];
} wh_source;

struct http_ingest {
    const hr_config *cfg;
    bus *bus;
    const hjwt_verifier *jwt;
    ingest *ing;
    wh_source *src;
    size_t nsrc;
    char retry_after[16];
    whr_table *replay;        /* accepted signed webhooks (verify.replay_window_s) */
    int64_t max_buffered;     /* limits.max_buffered_body_bytes */
    _Atomic int64_t buffered; /* body bytes reserved by requests now, all workers */
};

enum { PH_HEADERS = 0, PH_BODY, PH_WAIT, PH_ANSWERED, PH_LINGER };

struct hi_req {
    http_ingest *h;
    struct MHD_Connection *conn;
    int phase;
    bool is_webhook;
    wh_source *src;
    perms_set *perms; /* publish API principal */
    char *buf;        /* the body */
    size_t len, cap;
    size_t limit;        /* effective body limit */
    bool too_large;      /* a chunked upload passed the limit */
    size_t discarded;    /* PH_LINGER: bytes discarded since the 413 */
    int64_t linger_ms;   /* PH_LINGER: when the 413 was written */
    bool overloaded;     /* no room in limits.max_buffered_body_bytes for this body */
    size_t reserved;     /* bytes of h->buffered this request holds */
    wv_stream *wvs;      /* the signature check, fed as the body streams (NULL: none) */
    wv_result early;     /* what the headers alone said (wv_stream_begin), then the answer */
    bool checked;        /* wvs finished: `early` is the whole answer */
    bool replay_pending; /* replay_key is pending in h->replay: complete or forget it */
    unsigned char replay_key[WHR_KEY_LEN];
    whr_answer first; /* a replay's first answer */
    char id[MAX_ID_LEN + 1];
    char subject[SUBJECT_MAX_BYTES + 1];
    ingest_op op;
};

/* ---- helpers ---------------------------------------------------------------- */

static const char *conn_header(void *ctx, const char *name)
{
    return MHD_lookup_connection_value(ctx, MHD_HEADER_KIND, name);
}

static void count(hi_req *q, outcome o)
{
    if (q->src && o < O_COUNT)
        metrics_add(q->src->m[o], 1);
}

/* The replay cache learns how a signed request it is holding ended. */
static void replay_settle(hi_req *q, const ingest_result *accepted)
{
    if (!q->replay_pending)
        return;
    q->replay_pending = false;
    if (!accepted) {
        whr_forget(q->h->replay, q->replay_key);
        return;
    }
    whr_answer a = {0};
    snprintf(a.id, sizeof a.id, "%s", q->id);
    snprintf(a.subject, sizeof a.subject, "%s", q->subject);
    a.jetstream = accepted->jetstream;
    snprintf(a.stream, sizeof a.stream, "%s", accepted->stream);
    a.seq = accepted->seq;
    whr_complete(q->h->replay, q->replay_key, &a);
}

static enum MHD_Result problem(hi_req *q, int *status, int code, outcome o, const char *slug,
                               const char *detail)
{
    replay_settle(q, NULL);
    count(q, o);
    q->phase = PH_ANSWERED;
    *status = code;
    bool close_conn = code == 413;
    if (code == 503)
        return http_reply_problem(q->conn, code, slug, detail, MHD_HTTP_HEADER_RETRY_AFTER,
                                  q->h->retry_after, close_conn);
    if (code == 401 && !q->is_webhook)
        return http_reply_problem(q->conn, code, slug, detail, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                  "Bearer", close_conn);
    return http_reply_problem(q->conn, code, slug, detail, NULL, NULL, close_conn);
}

/* sha256(ce-source "\n" id) in hex: a stable Nats-Msg-Id for a CloudEvent
 * whose own id cannot serve (too long, spaces, control characters). */
static void ce_digest_id(const ce_binary *ce, char out[65])
{
    const char *source = "";
    for (size_t i = 0; i < ce->nheaders; i++)
        if (strcmp(ce->headers[i].name, "ce-source") == 0)
            source = ce->headers[i].value;
    size_t sl = strlen(source), il = ce->id ? strlen(ce->id) : 0;
    char *buf = malloc(sl + il + 2);
    if (!buf ||
        !hc_sha256_hex(
            buf, (size_t)snprintf(buf, sl + il + 2, "%s\n%s", source, ce->id ? ce->id : ""), out))
        hc_uuid4(out);
    free(buf);
}

/* Printable ASCII without spaces, 1..MAX_ID_LEN bytes. */
static bool id_ok(const char *v)
{
    if (!v)
        return false;
    size_t n = strlen(v);
    if (n == 0 || n > MAX_ID_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] <= 0x20 || (unsigned char)v[i] >= 0x7f)
            return false;
    return true;
}

/* Valid UTF-8 text without control characters. */
static bool text_ok(const char *v, size_t n)
{
    if (n == 0 || n > MAX_TYPE_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x20 || (unsigned char)v[i] == 0x7f)
            return false;
    return true;
}

static size_t effective_limit(http_ingest *h, int64_t configured)
{
    int64_t lim = configured;
    int64_t mp = bus_max_payload(h->bus);
    if (mp > 0 && mp - HEADROOM < lim)
        lim = mp - HEADROOM;
    return lim > 0 ? (size_t)lim : 0;
}

/* Decide 413 from Content-Length at the first call. 1 = over, 0 = fine or
 * absent, -1 = unparsable. */
static int content_length_over(struct MHD_Connection *c, size_t limit)
{
    const char *cl =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!cl)
        return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(cl, &end, 10);
    if (end == cl || *end || errno)
        return -1;
    return v > limit ? 1 : 0;
}

/* Media type of a Content-Type value, lowercased, without parameters. */
static bool media_type(const char *ct, char *out, size_t cap)
{
    if (!ct)
        return false;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strcspn(ct, ";");
    while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    if (n == 0 || n >= cap)
        return false;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)ct[i]);
    out[n] = '\0';
    return strchr(out, '/') != NULL;
}

static bool ctype_accepted(const wh_source *s, const char *ct)
{
    if (ct && strlen(ct) > MAX_CTYPE_LEN)
        return false;
    char mt[256], pat[256];
    if (!media_type(ct, mt, sizeof mt))
        return false;
    if (s->conf->content_types) {
        for (size_t i = 0; i < s->conf->ncontent_types; i++)
            if (media_type(s->conf->content_types[i], pat, sizeof pat) &&
                fnmatch(pat, mt, FNM_PATHNAME) == 0)
                return true;
        return false;
    }
    for (const char *const *d = s->conf->scheme_info->media_types; *d; d++)
        if (fnmatch(*d, mt, FNM_PATHNAME) == 0)
            return true;
    return false;
}

/* Grow this request's share of limits.max_buffered_body_bytes to `want`
 * bytes; false (nothing changed) when that would pass the cap. */
static bool reserve(hi_req *q, size_t want)
{
    if (want <= q->reserved)
        return true;
    int64_t delta = (int64_t)(want - q->reserved);
    if (atomic_fetch_add(&q->h->buffered, delta) + delta > q->h->max_buffered) {
        atomic_fetch_sub(&q->h->buffered, delta);
        return false;
    }
    q->reserved = want;
    return true;
}

static void unreserve(hi_req *q)
{
    atomic_fetch_sub(&q->h->buffered, (int64_t)q->reserved);
    q->reserved = 0;
}

/* Append an upload chunk; past the limit set too_large and free the body. */
static bool take_chunk(hi_req *q, const char *data, size_t n)
{
    if (q->len + n > q->limit) {
        q->too_large = true;
        free(q->buf);
        q->buf = NULL;
        q->len = q->cap = 0;
        return true;
    }
    if (q->len + n > q->cap) {
        size_t cap = q->cap ? q->cap : 4096;
        while (cap < q->len + n)
            cap *= 2;
        if (cap > q->limit)
            cap = q->limit;
        if (!reserve(q, cap)) {
            /* No room for more bodies now: drop what we hold and answer
             * 503 (with Retry-After) at once, as a 413 mid-upload. */
            q->overloaded = true;
            free(q->buf);
            q->buf = NULL;
            q->len = q->cap = 0;
            unreserve(q);
            return true;
        }
        char *nb = realloc(q->buf, cap ? cap : 1);
        if (!nb)
            return false;
        q->buf = nb;
        q->cap = cap;
    }
    memcpy(q->buf + q->len, data, n);
    q->len += n;
    wv_stream_update(q->wvs, data, n); /* a libcrypto failure is finish's 500 */
    return true;
}

/* ---- publishing and answering ------------------------------------------------ */

static void on_prepare(void *ctx)
{
    hi_req *q = ctx;
    MHD_suspend_connection(q->conn);
}

static void on_done(void *ctx)
{
    hi_req *q = ctx;
    /* Last touch of q from this thread: MHD may free it right after. */
    MHD_resume_connection(q->conn);
}

static enum MHD_Result send_accepted(hi_req *q, int *status, const char *id, const char *subject,
                                     bool jetstream, const char *stream, uint64_t seq,
                                     bool duplicate);

static enum MHD_Result answer_result(hi_req *q, int *status)
{
    const ingest_result *r = &q->op.res;
    if (r->st == HR_ERR_INVALID) /* never publishable: do not invite a retry */
        return problem(q, status, 413, O_TOO_LARGE, "too-large",
                       r->why ? r->why : "the message with its headers exceeds NATS max_payload");
    if (r->st != HR_OK)
        return problem(q, status, 503, O_UNAVAILABLE, "unavailable",
                       r->why ? r->why : "NATS cannot take the message now");
    replay_settle(q, r);
    return send_accepted(q, status, q->id, q->subject, r->jetstream, r->stream, r->seq,
                         r->duplicate);
}

/* 202 {"id","subject"} plus "stream","seq","duplicate" when JetStream has
 * it; a replayed request says "duplicate": true either way. */
static enum MHD_Result send_accepted(hi_req *q, int *status, const char *id, const char *subject,
                                     bool jetstream, const char *stream, uint64_t seq,
                                     bool duplicate)
{
    json_t *o = json_pack("{s:s, s:s}", "id", id, "subject", subject);
    if (o && jetstream) {
        json_object_set_new(o, "stream", json_string(stream));
        json_object_set_new(o, "seq", json_integer((json_int_t)seq));
    }
    if (o && (jetstream || duplicate))
        json_object_set_new(o, "duplicate", json_boolean(duplicate));
    if (!o)
        return MHD_NO;
    count(q, duplicate ? O_DUPLICATE : O_ACCEPTED);
    q->phase = PH_ANSWERED;
    *status = 202;
    enum MHD_Result ret = http_reply_json(q->conn, 202, o);
    json_decref(o);
    return ret;
}

/* Hand msg to ingest; answer now or suspend until the PubAck. */
static enum MHD_Result publish(hi_req *q, natsMsg *msg, hr_delivery d, int *status)
{
    q->op.prepare = on_prepare;
    q->op.done = on_done;
    q->op.ctx = q;
    q->phase = PH_WAIT;
    if (ingest_publish(q->h->ing, &msg, d, &q->op))
        return MHD_YES; /* suspended; the re-called handler answers */
    return answer_result(q, status);
}

static natsStatus set_header(natsMsg *m, const char *k, const char *v)
{
    return v ? natsMsgHeader_Set(m, k, v) : NATS_OK;
}

/* ---- webhooks ---------------------------------------------------------------- */

static wh_source *find_source(http_ingest *h, const char *name)
{
    for (size_t i = 0; i < h->nsrc; i++)
        if (strcmp(h->src[i].conf->name, name) == 0)
            return &h->src[i];
    return NULL;
}

static const char *verify_detail(wv_result r)
{
    switch (r) {
    case WV_MISSING:
        return "the signature headers are missing";
    case WV_MALFORMED:
        return "the signature or timestamp header is malformed";
    case WV_STALE:
        return "the timestamp is outside the tolerance";
    default:
        return "the signature does not match";
    }
}

/* Slack's Events API handshake: {"type":"url_verification","challenge":…}. */
static bool is_url_verification(const json_t *doc)
{
    const char *t = json_string_value(json_object_get(doc, "type"));
    return t && strcmp(t, "url_verification") == 0;
}

/* Answer the (verified) handshake with 200 {"challenge": …}; nothing is
 * published. Slack registers the Request URL only after this answer. */
static enum MHD_Result slack_url_verification(hi_req *q, const json_t *doc, int *status)
{
    const json_t *ch = json_object_get(doc, "challenge");
    if (!json_is_string(ch))
        return problem(q, status, 400, O_BAD_REQUEST, "bad-body",
                       "a url_verification request needs a string challenge");
    json_t *o = json_pack("{s:O}", "challenge", ch);
    if (!o)
        return MHD_NO;
    count(q, O_URL_VERIFICATION);
    q->phase = PH_ANSWERED;
    *status = 200;
    enum MHD_Result ret = http_reply_json(q->conn, 200, o);
    json_decref(o);
    return ret;
}

/* The delivery id (ce-id, Nats-Msg-Id) into q->id: the source's `id`
 * template when set (its value must pass id_ok, else false: 422), else the
 * scheme's rule, then Idempotency-Key, then a generated UUID. */
static bool delivery_id(hi_req *q, const json_t *doc)
{
    const hr_webhook_conf *w = q->src->conf;
    struct MHD_Connection *c = q->conn;
    if (w->id_tmpl) {
        size_t n = 0;
        return whtmpl_render_raw(w->id_tmpl, w->name, conn_header, c, doc, q->id, sizeof q->id,
                                 &n) == WHT_OK &&
               id_ok(q->id);
    }
    const wv_scheme_info *info = w->scheme_info;
    const char *id = NULL;
    const json_t *v;
    switch (info->id_rule) {
    case WV_ID_HEADER:
        for (size_t i = 0; !id && i < sizeof info->id_from / sizeof *info->id_from; i++)
            id = info->id_from[i] ? conn_header(c, info->id_from[i]) : NULL;
        break;
    case WV_ID_BODY_FIELD:
        v = json_object_get(doc, info->id_from[0]);
        id = json_is_string(v) ? json_string_value(v) : NULL;
        break;
    case WV_ID_NONE:
        break;
    }
    if (!id_ok(id))
        id = conn_header(c, "Idempotency-Key");
    if (id_ok(id))
        snprintf(q->id, sizeof q->id, "%s", id);
    else
        hc_uuid4(q->id);
    return true;
}

/* The scheme's default ce-type (contract §4) into type[0..cap). */
static void default_type(const hr_webhook_conf *w, struct MHD_Connection *c, const json_t *doc,
                         char *type, size_t cap)
{
    const wv_scheme_info *info = w->scheme_info;
    if (info->type_rule == WV_TYPE_BODY_FIELD) {
        const json_t *bt = json_object_get(doc, info->type_from);
        if (json_is_string(bt) && text_ok(json_string_value(bt), json_string_length(bt))) {
            snprintf(type, cap, "%s", json_string_value(bt));
            return;
        }
    } else if (info->type_rule == WV_TYPE_HEADER) {
        const char *ev = conn_header(c, info->type_from);
        if (ev && subject_placeholder_value_valid(ev, strlen(ev))) {
            snprintf(type, cap, "%s%s", info->type_prefix, ev);
            return;
        }
    }
    snprintf(type, cap, "herald.webhook.%s", w->name);
}

/* q->replay_key = sha256(source NUL digest of the signed content). */
static bool replay_key(hi_req *q, const unsigned char *body)
{
    unsigned char d[WV_SHA256_LEN];
    if (!q->h->replay || !wv_stream_signed_digest(q->wvs, d))
        return false;
    size_t nl = strlen(q->src->conf->name);
    unsigned char buf[128 + WV_SHA256_LEN];
    if (nl + 1 + WV_SHA256_LEN > sizeof buf)
        return false;
    memcpy(buf, q->src->conf->name, nl + 1);
    memcpy(buf + nl + 1, d, WV_SHA256_LEN);
    return hc_sha256(buf, nl + 1 + WV_SHA256_LEN, q->replay_key);
}

static enum MHD_Result webhook_final(hi_req *q, int *status)
{
    const hr_webhook_conf *w = q->src->conf;
    struct MHD_Connection *c = q->conn;
    if (q->too_large)
        return problem(q, status, 413, O_TOO_LARGE, "too-large",
                       "the body is larger than this source accepts");
    if (q->overloaded)
        return problem(q, status, 503, O_UNAVAILABLE, "overloaded", OVERLOADED);
    const char *ctype = conn_header(c, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!ctype_accepted(q->src, ctype))
        return problem(q, status, 415, O_UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type",
                       ctype ? "this source does not accept that Content-Type"
                             : "the Content-Type header is missing");
    const unsigned char *body = (const unsigned char *)(q->buf ? q->buf : "");
    if (q->wvs && !q->checked) {
        q->early = wv_stream_finish(q->wvs, (int64_t)time(NULL), NULL);
        q->checked = true;
    }
    wv_result vr = q->early;
    if (vr == WV_ERROR) {
        q->phase = PH_ANSWERED;
        *status = 500;
        return http_reply_problem(c, 500, "internal", "signature verification failed internally",
                                  NULL, NULL, false);
    }
    if (vr != WV_OK)
        return problem(q, status, 401, O_BAD_SIGNATURE, "bad-signature", verify_detail(vr));
    /* Replay (contract §4): right after the signature, before anything is
     * built from the request. */
    if (w->replay_window_s > 0 && replay_key(q, body))
        switch (whr_check(q->h->replay, q->replay_key, clock_now_ms(),
                          (int64_t)w->replay_window_s * 1000, &q->first)) {
        case WHR_SEEN:
            return send_accepted(q, status, q->first.id, q->first.subject, q->first.jetstream,
                                 q->first.stream, q->first.seq, true);
        case WHR_PENDING:
            return problem(q, status, 503, O_UNAVAILABLE, "in-progress",
                           "the same signed request is being processed; retry after "
                           "Retry-After seconds");
        case WHR_NEW:
            q->replay_pending = true;
            break;
        }

    json_t *doc = NULL;
    if (w->parse_body) {
        json_error_t je;
        doc = json_loadb((const char *)body, q->len, JSON_DECODE_ANY, &je);
        if (!doc && w->templates_read_body)
            return problem(q, status, 400, O_BAD_REQUEST, "bad-body",
                           "the body is not JSON, but the subject template reads it");
    }
    if (w->scheme_info->url_verification && is_url_verification(doc)) {
        enum MHD_Result r = slack_url_verification(q, doc, status);
        json_decref(doc);
        return r;
    }
    enum MHD_Result ret;
    natsMsg *msg = NULL;
    size_t sl = 0;
    whtmpl_result tr = whtmpl_render(w->subject_tmpl, w->name, conn_header, c, doc, q->subject,
                                     sizeof q->subject, &sl);
    if (tr != WHT_OK || !subject_valid(q->subject, sl)) {
        ret = problem(q, status, 422, O_UNBUILDABLE_SUBJECT, "unbuildable-subject",
                      "the subject template cannot be resolved to a valid subject from this "
                      "request");
        goto out;
    }
    char type[MAX_TYPE_LEN + 1];
    size_t tl = 0;
    if (w->type_tmpl) {
        tr = whtmpl_render(w->type_tmpl, w->name, conn_header, c, doc, type, sizeof type, &tl);
        if (tr != WHT_OK) {
            ret = problem(q, status, 422, O_UNBUILDABLE_SUBJECT, "unbuildable-type",
                          "the type template cannot be resolved from this request");
            goto out;
        }
    } else {
        default_type(w, c, doc, type, sizeof type);
    }
    if (!delivery_id(q, doc)) {
        ret = problem(q, status, 422, O_UNBUILDABLE_SUBJECT, "unbuildable-id",
                      "the delivery id template cannot be resolved from this request to 1-256 "
                      "printable ASCII characters without spaces");
        goto out;
    }
    if (w->publish_perms && !perms_can_publish(w->publish_perms, q->subject, sl)) {
        ret = problem(q, status, 403, O_FORBIDDEN, "forbidden",
                      "this source may not publish to the resolved subject");
        goto out;
    }
    char source[80], now[40];
    snprintf(source, sizeof source, "/webhooks/%s", w->name);
    clock_rfc3339_now(now, sizeof now);
    natsStatus ns = natsMsg_Create(&msg, q->subject, NULL, (const char *)body, (int)q->len);
    if (ns == NATS_OK)
        ns = natsMsgHeader_Set(msg, "ce-specversion", "1.0");
    if (ns == NATS_OK)
        ns = natsMsgHeader_Set(msg, "ce-id", q->id);
    if (ns == NATS_OK)
        ns = natsMsgHeader_Set(msg, "ce-source", source);
    if (ns == NATS_OK)
        ns = natsMsgHeader_Set(msg, "ce-type", type);
    if (ns == NATS_OK)
        ns = natsMsgHeader_Set(msg, "ce-time", now);
    if (ns == NATS_OK)
        ns = set_header(msg, "Content-Type", ctype);
    if (ns == NATS_OK)
        ns = natsMsgHeader_Set(msg, "Nats-Msg-Id", q->id);
    if (ns != NATS_OK) {
        natsMsg_Destroy(msg);
        msg = NULL;
        q->phase = PH_ANSWERED;
        *status = 500;
        ret = http_reply_problem(c, 500, "internal", "cannot build the NATS message", NULL, NULL,
                                 false);
        goto out;
    }
    json_decref(doc);
    doc = NULL;
    return publish(q, msg, w->delivery, status);
out:
    json_decref(doc);
    return ret;
}

static hi_req *req_new(http_ingest *h, hi_req **st, struct MHD_Connection *c, bool webhook)
{
    hi_req *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->h = h;
    q->conn = c;
    q->is_webhook = webhook;
    *st = q;
    return q;
}

/* A chunked upload just passed its limit. MHD cannot queue a response
 * while the body streams in (STACK-NOTES §2), so herald writes the 413 to
 * the socket itself -- nothing else has been written for this request --
 * half-closes, and keeps discarding the body (PH_LINGER) within bounds. */
static enum MHD_Result too_large_mid_upload(hi_req *q, int *status)
{
    bool over = q->overloaded; /* else too large */
    count(q, over ? O_UNAVAILABLE : O_TOO_LARGE);
    q->phase = PH_LINGER;
    q->linger_ms = clock_now_ms();
    *status = over ? 503 : 413;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(q->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    char resp[1024];
    int n = over
                ? http_reply_problem_raw(resp, sizeof resp, 503, "overloaded", OVERLOADED,
                                         MHD_HTTP_HEADER_RETRY_AFTER, q->h->retry_after)
                : http_reply_problem_raw(resp, sizeof resp, 413, "too-large",
                                         q->is_webhook
                                             ? "the body is larger than this source accepts"
                                             : "the body is larger than publish_api.max_body_bytes",
                                         NULL, NULL);
    if (!ci || n < 0)
        return MHD_NO;
    /* A fresh response on a socket with nothing queued fits its send
     * buffer; a short write means the peer is gone: just close. */
    bool sent = send(ci->connect_fd, resp, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) == n;
    if (!sent || shutdown(ci->connect_fd, SHUT_WR) != 0)
        return MHD_NO;
    MHD_set_connection_option(q->conn, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned int)LINGER_IDLE_S);
    return MHD_YES;
}

/* PH_LINGER: discard within bounds; MHD_NO closes the connection (the
 * answer has been written already). */
static enum MHD_Result linger(hi_req *q, size_t *upload_size)
{
    q->discarded += *upload_size;
    bool more = *upload_size && q->discarded <= LINGER_MAX_BYTES &&
                clock_now_ms() - q->linger_ms <= LINGER_MAX_MS;
    *upload_size = 0;
    return more ? MHD_YES : MHD_NO;
}

/* Common to both routes after the first call. */
static enum MHD_Result later_call(hi_req *q, const char *upload, size_t *upload_size, int *status,
                                  enum MHD_Result (*final)(hi_req *, int *))
{
    if (q->phase == PH_ANSWERED) {
        *upload_size = 0;
        return MHD_YES;
    }
    if (q->phase == PH_LINGER)
        return linger(q, upload_size);
    if (q->phase == PH_WAIT)
        return answer_result(q, status); /* resumed after the PubAck */
    if (*upload_size) {
        bool ok = take_chunk(q, upload, *upload_size);
        *upload_size = 0;
        if (ok && (q->too_large || q->overloaded))
            return too_large_mid_upload(q, status);
        return ok ? MHD_YES : MHD_NO;
    }
    return final(q, status);
}

enum MHD_Result http_ingest_webhook(http_ingest *h, hi_req **st, struct MHD_Connection *c,
                                    const char *url, const char *upload, size_t *upload_size,
                                    int *status)
{
    hi_req *q = *st;
    if (q)
        return later_call(q, upload, upload_size, status, webhook_final);
    q = req_new(h, st, c, true);
    if (!q)
        return MHD_NO;
    q->phase = PH_BODY;
    const char *name = url + strlen("/v1/webhooks/");
    q->src = find_source(h, name);
    if (!q->src)
        return problem(q, status, 404, O_COUNT, "unknown-source", "no webhook source by that name");
    q->limit = effective_limit(h, q->src->conf->max_body_bytes);
    int over = content_length_over(c, q->limit);
    if (over < 0)
        return problem(q, status, 400, O_BAD_REQUEST, "bad-request", "invalid Content-Length");
    if (over > 0)
        return problem(q, status, 413, O_TOO_LARGE, "too-large",
                       "the body is larger than this source accepts");
    /* With a Content-Length the whole check order up to 415 is decidable
     * now: do not read a body that will be refused. */
    const char *ctype = conn_header(c, MHD_HTTP_HEADER_CONTENT_TYPE);
    bool has_cl = conn_header(c, MHD_HTTP_HEADER_CONTENT_LENGTH) != NULL;
    if (has_cl && !ctype_accepted(q->src, ctype))
        return problem(q, status, 415, O_UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type",
                       ctype ? "this source does not accept that Content-Type"
                             : "the Content-Type header is missing");
    /* What the headers alone refuse is refused before the body is read: a
     * bearer token, or signature headers that are missing or malformed
     * (issue 17: an unauthenticated sender's body is never buffered). Only
     * with a Content-Length: a chunked body's 413 comes first in the
     * contract's check order and can only be known as it streams (bounded
     * by its limit, http.request_timeout_s and max_buffered_body_bytes). */
    /* The signature check starts now and is fed as the body streams (HMAC
     * per chunk): nothing is computed over the whole body at the end. */
    q->early = wv_stream_begin(q->src->conf->verifier, conn_header, c, &q->wvs, NULL);
    if (!has_cl)
        return MHD_YES;
    if (q->early != WV_OK && q->early != WV_ERROR)
        return problem(q, status, 401, O_BAD_SIGNATURE, "bad-signature", verify_detail(q->early));
    if (has_cl &&
        !reserve(q, (size_t)strtoull(conn_header(c, MHD_HTTP_HEADER_CONTENT_LENGTH), NULL, 10)))
        return problem(q, status, 503, O_UNAVAILABLE, "overloaded", OVERLOADED);
    return MHD_YES;
}

/* ---- publish API -------------------------------------------------------------- */

/* 401 detail, or NULL with q->perms set. */
static const char *authenticate(hi_req *q)
{
    http_ingest *h = q->h;
    struct MHD_Connection *c = q->conn;
    const char *authz = conn_header(c, MHD_HTTP_HEADER_AUTHORIZATION);
    const char *key = conn_header(c, "X-Api-Key");
    if (authz) {
        if (strncasecmp(authz, "Bearer ", 7) != 0)
            return "the Authorization header must be \"Bearer <JWT>\"";
        const char *tok = authz + 7;
        while (*tok == ' ')
            tok++;
        size_t tl = strlen(tok);
        if (!h->jwt || tl == 0 || tl > MAX_JWT_LEN)
            return "the token is not valid";
        hjwt_principal p;
        hjwt_result r = hjwt_verify(h->jwt, tok, tl, (int64_t)time(NULL), &p);
        if (r != HJWT_OK)
            return r == HJWT_EXPIRED ? "the token has expired" : "the token is not valid";
        q->perms = perms_set_new(h->cfg->perms, (const char *const *)p.roles, p.n_roles, p.claims);
        hjwt_principal_clear(&p);
        return q->perms ? NULL : "out of memory";
    }
    if (key) {
        size_t kl = strlen(key);
        char hex[HC_SHA256_HEX_LEN + 1];
        if (kl == 0 || kl > MAX_API_KEY || !hc_sha256_hex(key, kl, hex))
            return "the API key is not valid";
        const hr_api_key *match = NULL;
        for (size_t i = 0; i < h->cfg->napi_keys; i++) /* no early exit */
            if (hc_ct_equal(hex, h->cfg->api_keys[i].sha256, HC_SHA256_HEX_LEN) && !match)
                match = &h->cfg->api_keys[i];
        if (!match)
            return "the API key is not valid";
        q->perms =
            perms_set_new(h->cfg->perms, (const char *const *)match->roles, match->nroles, NULL);
        return q->perms ? NULL : "out of memory";
    }
    return "credentials are missing: send Authorization: Bearer <JWT> or X-Api-Key";
}

static enum MHD_Result publish_final(hi_req *q, int *status)
{
    struct MHD_Connection *c = q->conn;
    if (q->too_large)
        return problem(q, status, 413, O_TOO_LARGE, "too-large",
                       "the body is larger than publish_api.max_body_bytes");
    if (q->overloaded)
        return problem(q, status, 503, O_COUNT, "overloaded", OVERLOADED);
    const char *ctype = conn_header(c, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ctype && strlen(ctype) > MAX_CTYPE_LEN)
        return problem(q, status, 415, O_COUNT, "unsupported-media-type",
                       "the Content-Type header is too long");
    const char *idem = conn_header(c, "Idempotency-Key");
    char mt[256];
    natsMsg *msg = NULL;
    natsStatus ns;
    ce_binary ce = {0};
    if (media_type(ctype, mt, sizeof mt) && strcmp(mt, "application/cloudevents+json") == 0) {
        char err[160];
        hr_status st = ce_from_structured(q->buf ? q->buf : "", q->len, &ce, err, sizeof err);
        if (st != HR_OK) {
            char detail[224];
            snprintf(detail, sizeof detail, "malformed CloudEvent: %s", err);
            return problem(q, status, 400, O_BAD_REQUEST, "bad-cloudevent", detail);
        }
        /* Never truncate an id into another event's: an id unusable as
         * Nats-Msg-Id is replaced by a digest of (source, id), which keeps
         * retries of the same CloudEvent deduplicated. */
        if (id_ok(idem))
            snprintf(q->id, sizeof q->id, "%s", idem);
        else if (id_ok(ce.id))
            snprintf(q->id, sizeof q->id, "%s", ce.id);
        else
            ce_digest_id(&ce, q->id);
        ns = natsMsg_Create(&msg, q->subject, NULL, (const char *)ce.data, (int)ce.len);
        for (size_t i = 0; ns == NATS_OK && i < ce.nheaders; i++)
            ns = natsMsgHeader_Set(msg, ce.headers[i].name, ce.headers[i].value);
        if (ns == NATS_OK)
            ns = natsMsgHeader_Set(msg, "Content-Type", ce.content_type);
    } else {
        if (id_ok(idem))
            snprintf(q->id, sizeof q->id, "%s", idem);
        else
            hc_uuid4(q->id);
        ns = natsMsg_Create(&msg, q->subject, NULL, q->buf ? q->buf : "", (int)q->len);
        if (ns == NATS_OK)
            ns = set_header(msg, "Content-Type", ctype);
    }
    if (ns == NATS_OK)
        ns = natsMsgHeader_Set(msg, "Nats-Msg-Id", q->id);
    ce_binary_clear(&ce);
    if (ns != NATS_OK) {
        natsMsg_Destroy(msg);
        q->phase = PH_ANSWERED;
        *status = 500;
        return http_reply_problem(c, 500, "internal", "cannot build the NATS message", NULL, NULL,
                                  false);
    }
    return publish(q, msg, DELIVERY_AUTO, status);
}

enum MHD_Result http_ingest_publish(http_ingest *h, hi_req **st, struct MHD_Connection *c,
                                    const char *url, const char *upload, size_t *upload_size,
                                    int *status)
{
    hi_req *q = *st;
    if (q)
        return later_call(q, upload, upload_size, status, publish_final);
    q = req_new(h, st, c, false);
    if (!q)
        return MHD_NO;
    q->phase = PH_BODY;
    const char *why = authenticate(q);
    if (why)
        return problem(q, status, 401, O_COUNT, "unauthorized", why);
    const char *subj = url + strlen("/v1/publish/");
    size_t sl = strlen(subj);
    if (sl >= sizeof q->subject || !subject_valid(subj, sl))
        return problem(q, status, 400, O_COUNT, "invalid-subject",
                       "the subject is not a valid NATS subject (wildcards are not allowed)");
    memcpy(q->subject, subj, sl + 1);
    if (!perms_can_publish(q->perms, subj, sl))
        return problem(q, status, 403, O_COUNT, "forbidden",
                       "your roles do not allow publishing to this subject");
    q->limit = effective_limit(h, h->cfg->publish_max_body_bytes);
    int over = content_length_over(c, q->limit);
    if (over < 0)
        return problem(q, status, 400, O_COUNT, "bad-request", "invalid Content-Length");
    if (over > 0)
        return problem(q, status, 413, O_COUNT, "too-large",
                       "the body is larger than publish_api.max_body_bytes");
    const char *cl = conn_header(c, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && !reserve(q, (size_t)strtoull(cl, NULL, 10)))
        return problem(q, status, 503, O_COUNT, "overloaded", OVERLOADED);
    return MHD_YES;
}

void http_ingest_count_rate_limited(http_ingest *h, const char *url)
{
    const char *prefix = "/v1/webhooks/";
    wh_source *s =
        strncmp(url, prefix, strlen(prefix)) == 0 ? find_source(h, url + strlen(prefix)) : NULL;
    if (s)
        metrics_add(s->m[O_RATE_LIMITED], 1);
}

void http_ingest_req_free(hi_req *q)
{
    if (!q)
        return;
    replay_settle(q, NULL); /* ended without an answer (client gone, 500) */
    perms_set_free(q->perms);
    wv_stream_free(q->wvs);
    free(q->buf);
    unreserve(q);
    free(q);
}

/* ---- lifecycle ---------------------------------------------------------------- */

/* What startup adds to a compiled source: the duplicate-window watch and
 * the metric cells. Nothing is compiled here (config.c did it). */
static hr_status source_init(wh_source *s, const hr_webhook_conf *w, metrics_family *fam,
                             ingest *ing, char *err, size_t errlen)
{
    s->conf = w;
    /* A source a stream may store: warn when that stream's duplicate window
     * is shorter than senders retry. */
    char pat[SUBJECT_MAX_BYTES + 1];
    if (w->delivery != DELIVERY_CORE && whtmpl_pattern(w->subject_tmpl, w->name, pat, sizeof pat) &&
        ing && ingest_watch_dedup(ing, w->name, pat) != HR_OK) {
        snprintf(err, errlen, "out of memory");
        return HR_ERR_NOMEM;
    }
    for (int o = 0; o < O_COUNT; o++) {
        const char *labels[] = {w->name, outcome_names[o]};
        s->m[o] = metrics_cell_get(fam, labels);
    }
    return HR_OK;
}

hr_status http_ingest_new(http_ingest **out, const http_deps *deps, char *err, size_t errlen)
{
    *out = NULL;
    http_ingest *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return HR_ERR_NOMEM;
    }
    h->cfg = deps->cfg;
    h->bus = deps->bus;
    h->jwt = deps->cfg->jwt;
    snprintf(h->retry_after, sizeof h->retry_after, "%d", deps->cfg->http_retry_after_s);
    h->max_buffered = deps->cfg->max_buffered_body_bytes;
    if (!(h->replay = whr_new(WHR_MAX_ENTRIES))) {
        snprintf(err, errlen, "out of memory");
        free(h);
        return HR_ERR_NOMEM;
    }
    hr_status st = ingest_new(&h->ing, deps->cfg, deps->bus, deps->metrics);
    if (st != HR_OK) {
        snprintf(err, errlen, "cannot set up JetStream publishing");
        goto fail;
    }
    metrics_family *fam =
        metrics_counter(deps->metrics, "herald_webhooks_total",
                        "Webhook deliveries by source and outcome.", "source,outcome");
    if (deps->cfg->nwebhooks) {
        h->src = calloc(deps->cfg->nwebhooks, sizeof *h->src);
        if (!h->src) {
            st = HR_ERR_NOMEM;
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    for (size_t i = 0; i < deps->cfg->nwebhooks; i++) {
        h->nsrc = i + 1;
        st = source_init(&h->src[i], &deps->cfg->webhooks[i], fam, h->ing, err, errlen);
        if (st != HR_OK)
            goto fail;
    }
    *out = h;
    return HR_OK;
fail:
    http_ingest_free(h);
    return st;
}

void http_ingest_drain(http_ingest *h, int timeout_ms)
{
    if (h)
        ingest_drain(h->ing, timeout_ms);
}

void http_ingest_free(http_ingest *h)
{
    if (!h)
        return;
    free(h->src);
    ingest_free(h->ing);
    whr_free(h->replay);
    free(h);
}
