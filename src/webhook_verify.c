/* webhook_verify: webhook signature schemes as one table over shared HMAC and
 * encoding helpers. Each HMAC scheme only says how to read its headers (the
 * signed bytes before the body, the signature list, the timestamp); one
 * driver computes the MACs, compares them and checks freshness.
 * Pure: no I/O, no globals, no clock reads. */
#include "herald/webhook_verify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h> /* OPENSSL_malloc / clear_free for keys */

#include "herald/crypto.h"
#include "herald/encoding.h"

struct wv_config {
    wv_scheme scheme;
    int64_t tolerance_s;
    wv_encoding encoding;                    /* hmac-sha256 signature encoding */
    char *header;                            /* hmac-sha256 signature header, else NULL */
    char *prefix;                            /* hmac-sha256 literal before the signature ("") */
    size_t n_keys;                           /* HMAC keys in use */
    unsigned char *keys[WV_MAX_SECRETS];     /* decoded HMAC keys, owned, wiped on free */
    size_t key_lens[WV_MAX_SECRETS];         /* byte length of each key */
    size_t n_digests;                        /* bearer: accepted token digests */
    unsigned char (*digests)[WV_SHA256_LEN]; /* bearer: SHA-256 of each accepted token */
};

/* ---- helpers ------------------------------------------------------------ */

bool wv_parse_timestamp(const char *s, size_t len, int64_t *out)
{
    if (len == 0 || len > WV_MAX_TIMESTAMP_LEN)
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        int d = s[i] - '0';
        if (v > (INT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

bool wv_timestamp_fresh(int64_t ts, int64_t now, int64_t tol)
{
    if (tol < 0)
        return false;
    /* Two's-complement difference in uint64_t is exact when taken as
     * larger minus smaller. */
    uint64_t diff = ts >= now ? (uint64_t)ts - (uint64_t)now : (uint64_t)now - (uint64_t)ts;
    return diff <= (uint64_t)tol;
}

/* ---- schemes ------------------------------------------------------------ */

/* What a scheme's header reader found in one request. */
typedef struct {
    wv_bytes pre[4]; /* signed content preceding the body */
    size_t n_pre;
    const char *sigs; /* signature header value */
    char sep;         /* list separator, or 0 for exactly one signature */
    const char *tag;  /* literal before each signature ("v1,", "sha256=", ...) */
    wv_encoding enc;  /* encoding of each signature after its tag */
    bool has_ts;      /* the scheme carries a timestamp to check */
    int64_t ts;
} signed_req;

typedef enum {
    KEY_NONE, /* bearer: no HMAC keys */
    KEY_RAW,  /* the secret's bytes are the key */
    KEY_WHSEC /* "whsec_"-prefix optional, base64; the decoded bytes are the key */
} key_kind;

typedef wv_result (*read_fn)(const wv_config *c, wv_header_fn h, void *hctx, signed_req *s,
                             const char **detail);
typedef wv_result (*verify_fn)(const wv_config *c, wv_header_fn h, void *hctx, const char **detail);

static void add_pre(signed_req *s, const char *p, size_t n)
{
    s->pre[s->n_pre].data = (const unsigned char *)p;
    s->pre[s->n_pre].len = n;
    s->n_pre++;
}

#define FAIL(r, why)                                                                               \
    do {                                                                                           \
        *detail = (why);                                                                           \
        return (r);                                                                                \
    } while (0)

static wv_result read_standard(const wv_config *c, wv_header_fn h, void *hctx, signed_req *s,
                               const char **detail)
{
    const char *id = h(hctx, "webhook-id");
    const char *ts = h(hctx, "webhook-timestamp");
    const char *sig = h(hctx, "webhook-signature");
    if (!id && !ts && !sig) { /* Svix's names for the same headers */
        id = h(hctx, "svix-id");
        ts = h(hctx, "svix-timestamp");
        sig = h(hctx, "svix-signature");
    }
    if (!id)
        FAIL(WV_MISSING, "webhook-id missing");
    if (!ts)
        FAIL(WV_MISSING, "webhook-timestamp missing");
    if (!sig)
        FAIL(WV_MISSING, "webhook-signature missing");
    if (*id == '\0')
        FAIL(WV_MALFORMED, "webhook-id empty");
    size_t tslen = strlen(ts);
    if (!wv_parse_timestamp(ts, tslen, &s->ts))
        FAIL(WV_MALFORMED, "webhook-timestamp not decimal seconds");
    s->has_ts = true;
    add_pre(s, id, strlen(id));
    add_pre(s, ".", 1);
    add_pre(s, ts, tslen);
    add_pre(s, ".", 1);
    s->sigs = sig;
    s->sep = ' ';
    s->tag = "v1,";
    s->enc = WV_ENC_BASE64;
    return WV_OK;
}

static wv_result read_github(const wv_config *c, wv_header_fn h, void *hctx, signed_req *s,
                             const char **detail)
{
    s->sigs = h(hctx, "X-Hub-Signature-256");
    if (!s->sigs)
        FAIL(WV_MISSING, "X-Hub-Signature-256 missing");
    s->tag = "sha256=";
    s->enc = WV_ENC_HEX;
    return WV_OK;
}

static wv_result read_stripe(const wv_config *c, wv_header_fn h, void *hctx, signed_req *s,
                             const char **detail)
{
    const char *v = h(hctx, "Stripe-Signature");
    if (!v)
        FAIL(WV_MISSING, "Stripe-Signature missing");
    const char *t = NULL;
    size_t tlen = 0;
    for (const char *p = v;;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        if (!eq || eq == p)
            FAIL(WV_MALFORMED, "Stripe-Signature item is not key=value");
        if (eq - p == 1 && *p == 't') {
            if (t)
                FAIL(WV_MALFORMED, "Stripe-Signature has several t=");
            t = eq + 1;
            tlen = n - 2;
        }
        if (!end)
            break;
        p = end + 1;
    }
    if (!t)
        FAIL(WV_MALFORMED, "Stripe-Signature has no t=");
    if (!wv_parse_timestamp(t, tlen, &s->ts))
        FAIL(WV_MALFORMED, "Stripe-Signature t= not decimal seconds");
    s->has_ts = true;
    add_pre(s, t, tlen);
    add_pre(s, ".", 1);
    s->sigs = v;
    s->sep = ',';
    s->tag = "v1=";
    s->enc = WV_ENC_HEX;
    return WV_OK;
}

static wv_result read_slack(const wv_config *c, wv_header_fn h, void *hctx, signed_req *s,
                            const char **detail)
{
    const char *sig = h(hctx, "X-Slack-Signature");
    const char *ts = h(hctx, "X-Slack-Request-Timestamp");
    if (!sig)
        FAIL(WV_MISSING, "X-Slack-Signature missing");
    if (!ts)
        FAIL(WV_MISSING, "X-Slack-Request-Timestamp missing");
    size_t tslen = strlen(ts);
    if (!wv_parse_timestamp(ts, tslen, &s->ts))
        FAIL(WV_MALFORMED, "X-Slack-Request-Timestamp not decimal seconds");
    s->has_ts = true;
    add_pre(s, "v0:", 3);
    add_pre(s, ts, tslen);
    add_pre(s, ":", 1);
    s->sigs = sig;
    s->tag = "v0=";
    s->enc = WV_ENC_HEX;
    return WV_OK;
}

static wv_result read_hmac(const wv_config *c, wv_header_fn h, void *hctx, signed_req *s,
                           const char **detail)
{
    s->sigs = h(hctx, c->header);
    if (!s->sigs)
        FAIL(WV_MISSING, "signature header missing");
    s->tag = c->prefix;
    s->enc = c->encoding;
    return WV_OK;
}

/* Decode one signature (after its tag) to exactly WV_SHA256_LEN bytes. */
static bool decode_sig(const char *p, size_t n, wv_encoding enc, unsigned char out[WV_SHA256_LEN])
{
    size_t got = 0;
    bool ok = enc == WV_ENC_HEX ? enc_hex_decode(p, n, out, WV_SHA256_LEN, &got)
                                : enc_base64_decode(p, n, out, WV_SHA256_LEN, &got);
    return ok && got == WV_SHA256_LEN;
}

/* Compare every tagged signature in s->sigs against every MAC. Items with
 * another tag are ignored in lists; a single-signature header must carry the
 * tag. In a list, a tagged item that does not decode to a MAC is skipped
 * (another may still match); a list where none decodes, or a single
 * signature that does not, is malformed. */
static wv_result match_sigs(const signed_req *s, unsigned char (*macs)[WV_SHA256_LEN],
                            size_t n_macs, const char **detail)
{
    size_t tag_len = strlen(s->tag);
    size_t found = 0;
    int matched = 0;
    for (const char *p = s->sigs;;) {
        const char *end = s->sep ? strchr(p, s->sep) : NULL;
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n >= tag_len && memcmp(p, s->tag, tag_len) == 0) {
            unsigned char sig[WV_SHA256_LEN];
            if (decode_sig(p + tag_len, n - tag_len, s->enc, sig)) {
                found++;
                for (size_t k = 0; k < n_macs; k++)
                    matched |= hc_ct_equal(sig, macs[k], WV_SHA256_LEN);
            } else if (!s->sep) {
                FAIL(WV_MALFORMED, "signature does not decode to 32 bytes");
            }
        } else if (!s->sep) {
            FAIL(WV_MALFORMED, "signature lacks the expected prefix");
        }
        if (!end)
            break;
        p = end + 1;
    }
    if (found == 0)
        FAIL(WV_MALFORMED, "no decodable signature with a supported version");
    if (!matched)
        FAIL(WV_BAD_SIGNATURE, "no signature matches");
    return WV_OK;
}

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t';
}

static wv_result verify_bearer(const wv_config *c, wv_header_fn h, void *hctx, const char **detail)
{
    const char *v = h(hctx, "Authorization");
    if (!v)
        FAIL(WV_MISSING, "Authorization missing");
    if (strncasecmp(v, "Bearer", 6) != 0 || !is_space(v[6]))
        FAIL(WV_MALFORMED, "Authorization is not Bearer");
    const char *tok = v + 7;
    while (is_space(*tok))
        tok++;
    size_t n = strlen(tok);
    if (n == 0)
        FAIL(WV_MALFORMED, "Bearer token empty");
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)tok[i] <= 0x20 || tok[i] == 0x7f)
            FAIL(WV_MALFORMED, "Bearer token has a space or control character");

    unsigned char d[WV_SHA256_LEN];
    if (!hc_sha256(tok, n, d))
        FAIL(WV_ERROR, "SHA-256 failed");
    int matched = 0;
    for (size_t k = 0; k < c->n_digests; k++)
        matched |= CRYPTO_memcmp(d, c->digests[k], WV_SHA256_LEN) == 0;
    if (!matched)
        FAIL(WV_BAD_SIGNATURE, "token not accepted");
    return WV_OK;
}

/* Keys under webhooks.<source>.verify, by kind of scheme. */
static const char *const KEYS_TIMED[] = {"secret",      "secret_env",      "secrets_env",
                                         "tolerance_s", "replay_window_s", NULL};
static const char *const KEYS_UNTIMED[] = {"secret", "secret_env", "secrets_env", "replay_window_s",
                                           NULL};
static const char *const KEYS_HMAC[] = {"secret", "secret_env", "secrets_env", "replay_window_s",
                                        "header", "encoding",   "prefix",      NULL};
static const char *const KEYS_BEARER[] = {"tokens_sha256", "tokens_env", NULL};

/* Media types accepted unless a source sets content_types. */
static const char *const MEDIA_JSON[] = {"application/json", "application/*+json", NULL};
static const char *const MEDIA_JSON_OR_FORM[] = {"application/json", "application/*+json",
                                                 "application/x-www-form-urlencoded", NULL};

static const struct scheme_ops {
    wv_scheme_info info;
    key_kind keys;
    read_fn read;     /* HMAC schemes: the header reader (the MACs follow the body) */
    verify_fn verify; /* schemes that sign nothing: the whole check, from the headers */
} SCHEMES[] = {
    [WV_SCHEME_STANDARD_WEBHOOKS] = {{.name = "standard-webhooks",
                                      .config_keys = KEYS_TIMED,
                                      .media_types = MEDIA_JSON,
                                      .id_rule = WV_ID_HEADER,
                                      .id_from = {"webhook-id", "svix-id"},
                                      .type_rule = WV_TYPE_BODY_FIELD,
                                      .type_from = "type"},
                                     KEY_WHSEC,
                                     read_standard,
                                     NULL},
    [WV_SCHEME_GITHUB] = {{.name = "github",
                           .config_keys = KEYS_UNTIMED,
                           .media_types = MEDIA_JSON,
                           .id_rule = WV_ID_HEADER,
                           .id_from = {"X-GitHub-Delivery"},
                           .type_rule = WV_TYPE_HEADER,
                           .type_from = "X-GitHub-Event",
                           .type_prefix = "com.github."},
                          KEY_RAW,
                          read_github,
                          NULL},
    [WV_SCHEME_STRIPE] = {{.name = "stripe",
                           .config_keys = KEYS_TIMED,
                           .media_types = MEDIA_JSON,
                           .id_rule = WV_ID_BODY_FIELD,
                           .id_from = {"id"},
                           .type_rule = WV_TYPE_BODY_FIELD,
                           .type_from = "type"},
                          KEY_RAW,
                          read_stripe,
                          NULL},
    [WV_SCHEME_SLACK] = {{.name = "slack",
                          .config_keys = KEYS_TIMED,
                          .media_types = MEDIA_JSON_OR_FORM,
                          .id_rule = WV_ID_BODY_FIELD, /* Events API */
                          .id_from = {"event_id"},
                          .type_rule = WV_TYPE_SOURCE,
                          .url_verification = true},
                         KEY_RAW,
                         read_slack,
                         NULL},
    [WV_SCHEME_HMAC_SHA256] = {{.name = "hmac-sha256",
                                .config_keys = KEYS_HMAC,
                                .media_types = MEDIA_JSON,
                                .id_rule = WV_ID_NONE,
                                .type_rule = WV_TYPE_SOURCE},
                               KEY_RAW,
                               read_hmac,
                               NULL},
    [WV_SCHEME_BEARER] = {{.name = "bearer",
                           .config_keys = KEYS_BEARER,
                           .media_types = MEDIA_JSON,
                           .id_rule = WV_ID_NONE,
                           .type_rule = WV_TYPE_SOURCE,
                           .headers_only = true},
                          KEY_NONE,
                          NULL,
                          verify_bearer},
};

#define N_SCHEMES (sizeof SCHEMES / sizeof SCHEMES[0])
_Static_assert(N_SCHEMES == WV_SCHEME_COUNT, "one SCHEMES row per wv_scheme");

static const struct scheme_ops *scheme_ops(wv_scheme s)
{
    return (unsigned)s < N_SCHEMES ? &SCHEMES[s] : NULL;
}

bool wv_scheme_from_name(const char *name, wv_scheme *out)
{
    for (size_t i = 0; name && i < N_SCHEMES; i++) {
        if (strcmp(name, SCHEMES[i].info.name) == 0) {
            *out = (wv_scheme)i;
            return true;
        }
    }
    return false;
}

const wv_scheme_info *wv_scheme_get(wv_scheme s)
{
    const struct scheme_ops *ops = scheme_ops(s);
    return ops ? &ops->info : NULL;
}

bool wv_scheme_has_key(const wv_scheme_info *info, const char *key)
{
    for (const char *const *k = info ? info->config_keys : NULL; k && *k; k++)
        if (strcmp(*k, key) == 0)
            return true;
    return false;
}

bool wv_scheme_reads_body(const wv_scheme_info *info, bool has_id_template, bool has_type_template)
{
    if (!info)
        return false;
    return info->url_verification || (!has_id_template && info->id_rule == WV_ID_BODY_FIELD) ||
           (!has_type_template && info->type_rule == WV_TYPE_BODY_FIELD);
}

const char *wv_scheme_name(wv_scheme s)
{
    const struct scheme_ops *ops = scheme_ops(s);
    return ops ? ops->info.name : "unknown";
}

/* ---- verification while the body streams -------------------------------- */

/* One request being verified: what its headers said (copied: pre[] and
 * sigs point into `text`), one MAC per key and the digest of the signed
 * content, fed chunk by chunk. */
struct wv_stream {
    const wv_config *c;
    bool headers_only; /* the scheme signs nothing: begin gave the answer */
    signed_req s;
    char *text;
    hc_hmac *macs[WV_MAX_SECRETS];
    hc_hash *content;
    bool failed; /* libcrypto failed: the answer is WV_ERROR */
    bool finished;
    bool has_digest;
    unsigned char digest[WV_SHA256_LEN];
};

void wv_stream_free(wv_stream *st)
{
    if (!st)
        return;
    for (size_t k = 0; k < WV_MAX_SECRETS; k++)
        hc_hmac_free(st->macs[k]);
    hc_hash_free(st->content);
    free(st->text);
    hc_wipe(st->digest, sizeof st->digest);
    free(st);
}

/* Copy what the header reader pointed at (the caller's header strings). */
static bool keep_headers(wv_stream *st, const signed_req *s)
{
    size_t total = strlen(s->sigs) + 1;
    for (size_t i = 0; i < s->n_pre; i++)
        total += s->pre[i].len;
    st->text = malloc(total);
    if (!st->text)
        return false;
    st->s = *s;
    size_t n = strlen(s->sigs) + 1;
    memcpy(st->text, s->sigs, n);
    st->s.sigs = st->text;
    for (size_t i = 0; i < s->n_pre; i++) {
        memcpy(st->text + n, s->pre[i].data, s->pre[i].len);
        st->s.pre[i].data = (const unsigned char *)st->text + n;
        n += s->pre[i].len;
    }
    return true;
}

wv_result wv_stream_begin(const wv_config *c, wv_header_fn get_header, void *hctx, wv_stream **out,
                          const char **detail)
{
    const char *ignored;
    if (!detail)
        detail = &ignored;
    *detail = "ok";
    *out = NULL;
    if (!c || !get_header)
        FAIL(WV_ERROR, "bad arguments");
    const struct scheme_ops *ops = scheme_ops(c->scheme);
    wv_stream *st = calloc(1, sizeof *st);
    if (!st)
        FAIL(WV_ERROR, "out of memory");
    st->c = c;
    if (!ops->read) {
        wv_result r = ops->verify(c, get_header, hctx, detail);
        if (r != WV_OK) {
            free(st);
            return r;
        }
        st->headers_only = true;
        *out = st;
        return WV_OK;
    }
    signed_req s = {0};
    wv_result r = ops->read(c, get_header, hctx, &s, detail);
    /* A signature list that cannot match whatever the body (no decodable
     * signature with the scheme's tag) is malformed already. */
    if (r == WV_OK && match_sigs(&s, NULL, 0, detail) == WV_MALFORMED)
        r = WV_MALFORMED;
    if (r != WV_OK) {
        free(st);
        return r;
    }
    *detail = "ok";
    bool ok = keep_headers(st, &s) && (st->content = hc_hash_new()) != NULL;
    for (size_t k = 0; ok && k < c->n_keys; k++)
        ok = (st->macs[k] = hc_hmac_new()) != NULL &&
             hc_hmac_init(st->macs[k], c->keys[k], c->key_lens[k]);
    for (size_t i = 0; ok && i < st->s.n_pre; i++) {
        ok = hc_hash_update(st->content, st->s.pre[i].data, st->s.pre[i].len);
        for (size_t k = 0; ok && k < c->n_keys; k++)
            ok = hc_hmac_update(st->macs[k], st->s.pre[i].data, st->s.pre[i].len);
    }
    if (!ok) {
        wv_stream_free(st);
        FAIL(WV_ERROR, "HMAC setup failed");
    }
    *out = st;
    return WV_OK;
}

bool wv_stream_update(wv_stream *st, const void *data, size_t len)
{
    if (!st || st->finished || (!data && len > 0))
        return false;
    if (st->headers_only || st->failed || len == 0)
        return !st->failed;
    bool ok = hc_hash_update(st->content, data, len);
    for (size_t k = 0; ok && k < st->c->n_keys; k++)
        ok = hc_hmac_update(st->macs[k], data, len);
    st->failed = !ok;
    return ok;
}

wv_result wv_stream_finish(wv_stream *st, int64_t now, const char **detail)
{
    const char *ignored;
    if (!detail)
        detail = &ignored;
    *detail = "ok";
    if (!st || st->finished)
        FAIL(WV_ERROR, "bad arguments");
    st->finished = true;
    if (st->headers_only)
        return WV_OK;
    if (st->failed)
        FAIL(WV_ERROR, "HMAC computation failed");
    const wv_config *c = st->c;
    unsigned char macs[WV_MAX_SECRETS][WV_SHA256_LEN];
    bool ok = hc_hash_final(st->content, st->digest);
    for (size_t k = 0; ok && k < c->n_keys; k++)
        ok = hc_hmac_final(st->macs[k], macs[k]);
    if (!ok) {
        hc_wipe(macs, sizeof macs);
        FAIL(WV_ERROR, "HMAC computation failed");
    }
    st->has_digest = true;
    wv_result r = match_sigs(&st->s, macs, c->n_keys, detail);
    hc_wipe(macs, sizeof macs);
    if (r != WV_OK)
        return r;
    if (st->s.has_ts && !wv_timestamp_fresh(st->s.ts, now, c->tolerance_s))
        FAIL(WV_STALE, "timestamp outside tolerance");
    return WV_OK;
}

bool wv_stream_signed_digest(const wv_stream *st, unsigned char out[WV_SHA256_LEN])
{
    if (!st || !st->has_digest)
        return false;
    memcpy(out, st->digest, WV_SHA256_LEN);
    return true;
}

/* ---- one-shot: the same driver over the whole body ------------------------- */

wv_result wv_verify(const wv_config *c, wv_header_fn get_header, void *hctx,
                    const unsigned char *body, size_t len, int64_t now, const char **detail)
{
    const char *ignored;
    if (!detail)
        detail = &ignored;
    if (!body && len > 0) {
        *detail = "bad arguments";
        return WV_ERROR;
    }
    wv_stream *st;
    wv_result r = wv_stream_begin(c, get_header, hctx, &st, detail);
    if (r != WV_OK)
        return r;
    r = wv_stream_update(st, body, len) ? wv_stream_finish(st, now, detail) : WV_ERROR;
    if (r == WV_ERROR && strcmp(*detail, "ok") == 0)
        *detail = "HMAC computation failed";
    wv_stream_free(st);
    return r;
}

bool wv_signed_digest(const wv_config *c, wv_header_fn get_header, void *hctx,
                      const unsigned char *body, size_t len, unsigned char out[WV_SHA256_LEN])
{
    if (!body && len > 0)
        return false;
    wv_stream *st;
    if (wv_stream_begin(c, get_header, hctx, &st, NULL) != WV_OK)
        return false;
    bool ok = wv_stream_update(st, body, len);
    if (ok) {
        wv_stream_finish(st, 0, NULL);
        ok = wv_stream_signed_digest(st, out);
    }
    wv_stream_free(st);
    return ok;
}

const char *wv_result_str(wv_result r)
{
    switch (r) {
    case WV_OK:
        return "ok";
    case WV_MISSING:
        return "signature header missing";
    case WV_MALFORMED:
        return "signature header malformed";
    case WV_BAD_SIGNATURE:
        return "bad signature";
    case WV_STALE:
        return "timestamp outside tolerance";
    case WV_ERROR:
        return "internal error";
    }
    return "unknown";
}

/* ---- configuration ------------------------------------------------------ */

void wv_params_init(wv_params *p, wv_scheme scheme)
{
    memset(p, 0, sizeof *p);
    p->scheme = scheme;
    p->tolerance_s = WV_TOLERANCE_DEFAULT;
    p->encoding = WV_ENC_HEX;
}

wv_scheme wv_config_scheme(const wv_config *c)
{
    return c->scheme;
}

void wv_config_free(wv_config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_keys; i++)
        OPENSSL_clear_free(c->keys[i], c->key_lens[i]);
    if (c->digests)
        OPENSSL_clear_free(c->digests, c->n_digests * sizeof c->digests[0]);
    free(c->header);
    free(c->prefix);
    free(c);
}

static bool is_tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static bool valid_header_name(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if (!is_tchar((unsigned char)*s))
            return false;
    return true;
}

static bool valid_prefix(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

#define CONFIG_ERR(...)                                                                            \
    do {                                                                                           \
        if (err && errsz)                                                                          \
            snprintf(err, errsz, __VA_ARGS__);                                                     \
        st = HR_ERR_INVALID;                                                                       \
        goto fail;                                                                                 \
    } while (0)

/* Turn secret i into an HMAC key owned by c. */
static hr_status add_key(wv_config *c, key_kind kind, const wv_bytes *sec, size_t i, char *err,
                         size_t errsz)
{
    hr_status st = HR_OK;
    unsigned char *key = NULL;
    size_t klen = 0, cap = 0;
    if (!sec->data || sec->len == 0)
        CONFIG_ERR("verify.secrets_env[%zu]: empty", i);
    if (kind == KEY_WHSEC) {
        const char *b64 = (const char *)sec->data;
        size_t n = sec->len;
        if (n >= 6 && memcmp(b64, "whsec_", 6) == 0) {
            b64 += 6;
            n -= 6;
        }
        cap = enc_base64_decoded_max(n);
        key = OPENSSL_malloc(cap);
        if (!key)
            return HR_ERR_NOMEM;
        if (!enc_base64_decode(b64, n, key, cap, &klen))
            CONFIG_ERR("verify.secrets_env[%zu]: not valid base64", i);
        if (klen == 0)
            CONFIG_ERR("verify.secrets_env[%zu]: empty key after whsec_", i);
    } else {
        key = OPENSSL_malloc(sec->len);
        if (!key)
            return HR_ERR_NOMEM;
        memcpy(key, sec->data, sec->len);
        klen = sec->len;
    }
    c->keys[c->n_keys] = key;
    c->key_lens[c->n_keys] = klen;
    c->n_keys++;
    return HR_OK;
fail:
    OPENSSL_clear_free(key, cap);
    return st;
}

hr_status wv_config_new(wv_config **out, const wv_params *p, char *err, size_t errsz)
{
    hr_status st = HR_OK;
    wv_config *c = NULL;
    *out = NULL;
    if (err && errsz)
        err[0] = '\0';
    const struct scheme_ops *ops = p ? scheme_ops(p->scheme) : NULL;
    if (!ops)
        CONFIG_ERR("verify.scheme: unknown");

    bool is_hmac = p->scheme == WV_SCHEME_HMAC_SHA256;
    bool is_bearer = p->scheme == WV_SCHEME_BEARER;
    if (p->tolerance_s < 0)
        CONFIG_ERR("verify.tolerance_s: must be >= 0");
    if (!is_hmac && p->header)
        CONFIG_ERR("verify.header: only for scheme hmac-sha256");
    if (!is_hmac && p->prefix && *p->prefix)
        CONFIG_ERR("verify.prefix: only for scheme hmac-sha256");
    if (!is_hmac && p->encoding != WV_ENC_HEX)
        CONFIG_ERR("verify.encoding: only for scheme hmac-sha256");
    if (is_hmac && !valid_header_name(p->header))
        CONFIG_ERR("verify.header: %s",
                   p->header ? "not a valid header name" : "required for scheme hmac-sha256");
    if (is_hmac && p->encoding != WV_ENC_HEX && p->encoding != WV_ENC_BASE64)
        CONFIG_ERR("verify.encoding: must be hex or base64");
    if (is_hmac && p->prefix && !valid_prefix(p->prefix))
        CONFIG_ERR("verify.prefix: must be printable ASCII without spaces");
    if (is_bearer && p->n_secrets > 0)
        CONFIG_ERR("verify.secrets_env: not used by scheme bearer");
    if (!is_bearer && (p->n_tokens_sha256 > 0 || p->n_tokens > 0))
        CONFIG_ERR("verify.%s: only for scheme bearer",
                   p->n_tokens_sha256 ? "tokens_sha256" : "tokens_env");
    if (is_bearer && p->n_tokens_sha256 + p->n_tokens == 0)
        CONFIG_ERR("verify: scheme bearer needs tokens_sha256 or tokens_env");
    if (!is_bearer && p->n_secrets == 0)
        CONFIG_ERR("verify.secrets_env: at least one secret required for scheme %s",
                   ops->info.name);
    if (p->n_secrets > WV_MAX_SECRETS)
        CONFIG_ERR("verify.secrets_env: at most %d secrets", WV_MAX_SECRETS);

    c = calloc(1, sizeof *c);
    if (!c)
        return HR_ERR_NOMEM;
    c->scheme = p->scheme;
    c->tolerance_s = p->tolerance_s;
    c->encoding = p->encoding;
    if (is_hmac) {
        c->header = strdup(p->header);
        c->prefix = strdup(p->prefix ? p->prefix : "");
        if (!c->header || !c->prefix) {
            st = HR_ERR_NOMEM;
            goto fail;
        }
    }
    for (size_t i = 0; i < p->n_secrets; i++) {
        st = add_key(c, ops->keys, &p->secrets[i], i, err, errsz);
        if (st != HR_OK)
            goto fail;
    }
    if (is_bearer) {
        size_t n = p->n_tokens_sha256 + p->n_tokens;
        c->digests = OPENSSL_zalloc(n * sizeof c->digests[0]);
        if (!c->digests) {
            st = HR_ERR_NOMEM;
            goto fail;
        }
        c->n_digests = n;
        for (size_t i = 0; i < p->n_tokens_sha256; i++) {
            const char *hex = p->tokens_sha256[i];
            size_t got = 0;
            if (!hex || strlen(hex) != HC_SHA256_HEX_LEN ||
                !enc_hex_decode(hex, HC_SHA256_HEX_LEN, c->digests[i], WV_SHA256_LEN, &got))
                CONFIG_ERR("verify.tokens_sha256[%zu]: not a 64-digit hex SHA-256 digest", i);
        }
        for (size_t i = 0; i < p->n_tokens; i++) {
            const wv_bytes *t = &p->tokens[i];
            if (!t->data || t->len == 0)
                CONFIG_ERR("verify.tokens_env[%zu]: empty", i);
            if (!hc_sha256(t->data, t->len, c->digests[p->n_tokens_sha256 + i])) {
                st = HR_ERR_INVALID;
                goto fail;
            }
        }
    } else {
        hc_hmac *probe = hc_hmac_new(); /* fail at startup, not per request */
        bool have_hmac = probe != NULL;
        hc_hmac_free(probe);
        if (!have_hmac) {
            st = HR_ERR_INVALID;
            if (err && errsz)
                snprintf(err, errsz, "verify: libcrypto has no HMAC");
            goto fail;
        }
    }
    *out = c;
    return HR_OK;
fail:
    wv_config_free(c);
    return st;
}
