/* Fuzz target: the six webhook signature schemes (webhook_verify.h) and
 * their helpers. Input: byte 0 picks the scheme (6 and 7: the hex, base64
 * and timestamp helpers against plain references), byte 1 flags (bit 0
 * base64 for hmac-sha256, bit 1 a prefix, bit 2 sign mode, bit 3 two
 * secrets), then secret lines, "Name: value" header lines, an empty line and
 * the body. In sign mode the target signs the body itself the way each
 * sender does, and the verifier must accept it. */
#include "fuzz.h"

#include <strings.h>

#include "herald/crypto.h"
#include "herald/encoding.h"
#include "herald/webhook_verify.h"

#define NOW      1700000000
#define MAX_HDRS 12

typedef struct {
    const char *name[MAX_HDRS];
    char *value[MAX_HDRS];
    bool owned_name[MAX_HDRS];
    size_t n;
} hdrs;

static const char *lookup(void *ctx, const char *name)
{
    const hdrs *h = ctx;
    for (size_t i = 0; i < h->n; i++)
        if (strcasecmp(h->name[i], name) == 0)
            return h->value[i];
    return NULL;
}

static void add(hdrs *h, const char *name, bool owned, char *value)
{
    if (h->n == MAX_HDRS) {
        if (owned)
            free((char *)name);
        free(value);
        return;
    }
    h->name[h->n] = name;
    h->owned_name[h->n] = owned;
    h->value[h->n++] = value;
}

static char *dup_str(const char *s)
{
    return fz_strndup(s, strlen(s));
}

/* ---- helpers against references ------------------------------------------ */

static void helpers(fz_in *in)
{
    const char *s = in->p;
    size_t n = in->n;
    unsigned char out[512];
    size_t ol = 0;
    char *c = fz_memdup(s, n);
    if (n <= 2 * sizeof out && enc_hex_decode(c, n, out, sizeof out, &ol)) {
        FZ_CHECK(n % 2 == 0 && ol == n / 2);
        char enc[2 * sizeof out + 1];
        enc_hex_encode(out, ol, enc);
        for (size_t i = 0; i < n; i++)
            FZ_CHECK(enc[i] == ((c[i] >= 'A' && c[i] <= 'F') ? c[i] - 'A' + 'a' : c[i]));
    }
    if (enc_base64_decode(c, n, out, sizeof out, &ol)) {
        FZ_CHECK(ol <= enc_base64_decoded_max(n));
        char enc[4 * sizeof out / 3 + 8];
        size_t el = enc_base64_encode(out, ol, enc);
        FZ_CHECK(el == enc_base64_encoded_len(ol) && enc[el] == '\0');
        unsigned char again[sizeof out];
        size_t al = 0;
        FZ_CHECK(enc_base64_decode(enc, el, again, sizeof again, &al));
        FZ_CHECK(al == ol && memcmp(again, out, ol) == 0);
    }
    /* Any bytes survive an encode/decode round trip. */
    {
        size_t m = n < 300 ? n : 300;
        char enc[4 * 300 / 3 + 8];
        size_t el = enc_base64_encode((const unsigned char *)c, m, enc);
        FZ_CHECK(enc_base64_decode(enc, el, out, sizeof out, &ol));
        FZ_CHECK(ol == m && memcmp(out, c, m) == 0);
        char hex[601];
        enc_hex_encode((const unsigned char *)c, m, hex);
        FZ_CHECK(enc_hex_decode(hex, 2 * m, out, sizeof out, &ol) && ol == m &&
                 memcmp(out, c, m) == 0);
    }
    /* Timestamps: digits only, at most 19, value <= INT64_MAX. */
    int64_t ts = -1;
    bool ok = wv_parse_timestamp(c, n, &ts);
    bool ref = n >= 1 && n <= WV_MAX_TIMESTAMP_LEN;
    unsigned __int128 v = 0;
    for (size_t i = 0; ref && i < n; i++) {
        ref = c[i] >= '0' && c[i] <= '9';
        v = v * 10 + (unsigned)(c[i] - '0');
    }
    ref = ref && v <= (unsigned __int128)INT64_MAX;
    FZ_CHECK(ok == ref);
    if (ok)
        FZ_CHECK((unsigned __int128)ts == v);
    if (n >= 24) {
        int64_t a, b, t;
        memcpy(&a, c, 8);
        memcpy(&b, c + 8, 8);
        memcpy(&t, c + 16, 8);
        __int128 d = (__int128)a - (__int128)b;
        bool fresh = t >= 0 && (d < 0 ? -d : d) <= (__int128)t;
        FZ_CHECK(wv_timestamp_fresh(a, b, t) == fresh);
    }
    free(c);
}

/* ---- signing as the senders do --------------------------------------------- */

static void hex_mac(const unsigned char *key, size_t klen, const char *pre, size_t plen,
                    const unsigned char *body, size_t blen, char *hex)
{
    size_t n = plen + blen;
    unsigned char *msg = malloc(n ? n : 1), mac[WV_SHA256_LEN];
    if (!msg)
        abort();
    memcpy(msg, pre, plen);
    if (blen)
        memcpy(msg + plen, body, blen);
    FZ_CHECK(hc_hmac_sha256(key, klen, msg, n, mac));
    free(msg);
    enc_hex_encode(mac, WV_SHA256_LEN, hex);
}

static void b64_mac(const unsigned char *key, size_t klen, const char *pre, size_t plen,
                    const unsigned char *body, size_t blen, char *b64)
{
    char hex[HC_SHA256_HEX_LEN + 1];
    unsigned char mac[WV_SHA256_LEN];
    size_t ml;
    hex_mac(key, klen, pre, plen, body, blen, hex);
    FZ_CHECK(enc_hex_decode(hex, HC_SHA256_HEX_LEN, mac, sizeof mac, &ml));
    enc_base64_encode(mac, WV_SHA256_LEN, b64);
}

/* Add the headers a sender signing `body` with `secret` would send.
 * False when the secret is not usable for signing (standard-webhooks: not
 * base64), which config would have refused. */
static bool sign(hdrs *h, wv_scheme sch, const wv_bytes *secret, bool base64, const char *prefix,
                 const char *hmac_header, const unsigned char *body, size_t blen)
{
    char sig[160], pre[64];
    const char *ts = "1700000000";
    switch (sch) {
    case WV_SCHEME_STANDARD_WEBHOOKS: {
        const char *k = (const char *)secret->data;
        size_t kl = secret->len;
        if (kl >= 6 && memcmp(k, "whsec_", 6) == 0)
            k += 6, kl -= 6;
        unsigned char key[256];
        size_t keylen;
        if (!enc_base64_decode(k, kl, key, sizeof key, &keylen))
            return false;
        int pl = snprintf(pre, sizeof pre, "msg_fz.%s.", ts);
        char b64[64];
        b64_mac(key, keylen, pre, (size_t)pl, body, blen, b64);
        snprintf(sig, sizeof sig, "v0,xx v1,%s", b64);
        add(h, "webhook-id", false, dup_str("msg_fz"));
        add(h, "webhook-timestamp", false, dup_str(ts));
        add(h, "webhook-signature", false, dup_str(sig));
        return true;
    }
    case WV_SCHEME_GITHUB: {
        char hex[HC_SHA256_HEX_LEN + 1];
        hex_mac(secret->data, secret->len, "", 0, body, blen, hex);
        snprintf(sig, sizeof sig, "sha256=%s", hex);
        add(h, "X-Hub-Signature-256", false, dup_str(sig));
        return true;
    }
    case WV_SCHEME_STRIPE: {
        char hex[HC_SHA256_HEX_LEN + 1];
        int pl = snprintf(pre, sizeof pre, "%s.", ts);
        hex_mac(secret->data, secret->len, pre, (size_t)pl, body, blen, hex);
        snprintf(sig, sizeof sig, "t=%s,v0=abc,v1=%s", ts, hex);
        add(h, "Stripe-Signature", false, dup_str(sig));
        return true;
    }
    case WV_SCHEME_SLACK: {
        char hex[HC_SHA256_HEX_LEN + 1];
        int pl = snprintf(pre, sizeof pre, "v0:%s:", ts);
        hex_mac(secret->data, secret->len, pre, (size_t)pl, body, blen, hex);
        snprintf(sig, sizeof sig, "v0=%s", hex);
        add(h, "X-Slack-Signature", false, dup_str(sig));
        add(h, "X-Slack-Request-Timestamp", false, dup_str(ts));
        return true;
    }
    case WV_SCHEME_HMAC_SHA256: {
        char mac[HC_SHA256_HEX_LEN + 1];
        if (base64)
            b64_mac(secret->data, secret->len, "", 0, body, blen, mac);
        else
            hex_mac(secret->data, secret->len, "", 0, body, blen, mac);
        snprintf(sig, sizeof sig, "%s%s", prefix ? prefix : "", mac);
        add(h, hmac_header, false, dup_str(sig));
        return true;
    }
    case WV_SCHEME_BEARER:
        if (memchr(secret->data, '\0', secret->len))
            return false;
        for (size_t i = 0; i < secret->len; i++)
            if (secret->data[i] <= 0x20 || secret->data[i] == 0x7f)
                return false;
        snprintf(sig, sizeof sig, "Bearer %.*s", (int)(secret->len > 140 ? 140 : secret->len),
                 (const char *)secret->data);
        if (secret->len > 140)
            return false;
        add(h, "Authorization", false, dup_str(sig));
        return true;
    default:
        break;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = fz_make(data, size);
    uint8_t sel = fz_byte(&in), flags = fz_byte(&in);
    if (sel % 8 >= 6) {
        helpers(&in);
        return 0;
    }
    wv_scheme sch = (wv_scheme)(sel % 8);
    bool base64 = flags & 1, signing = flags & 4;
    const char *prefix = (flags & 2) ? "sha256=" : NULL;
    size_t nsec = (flags & 8) ? 2 : 1;
    const char *f;
    size_t fl;
    wv_bytes secrets[2];
    char *sec_copy[2];
    for (size_t i = 0; i < nsec; i++) {
        fz_field(&in, '\n', &f, &fl);
        sec_copy[i] = fz_memdup(f, fl);
        secrets[i].data = (const unsigned char *)sec_copy[i];
        secrets[i].len = fl;
    }
    hdrs h = {.n = 0};
    bool sign_ok = false;
    const char *hmac_header = "X-Signature";
    /* The body follows the first empty line; generated headers come first,
     * so the lookup finds them. */
    fz_in hdr_in = in;
    while (hdr_in.n) {
        fz_field(&hdr_in, '\n', &f, &fl);
        if (fl == 0)
            break;
    }
    const unsigned char *body = (const unsigned char *)hdr_in.p;
    size_t blen = hdr_in.n;
    unsigned char *body_copy = (unsigned char *)fz_memdup((const char *)body, blen);
    if (signing)
        sign_ok = sign(&h, sch, &secrets[nsec - 1], base64, prefix, hmac_header, body_copy, blen);
    while (in.n) {
        fz_field(&in, '\n', &f, &fl);
        if (fl == 0)
            break;
        const char *colon = memchr(f, ':', fl);
        if (!colon)
            continue;
        const char *v = colon + 1;
        while (v < f + fl && *v == ' ')
            v++;
        add(&h, fz_strndup(f, (size_t)(colon - f)), true, fz_strndup(v, (size_t)(f + fl - v)));
    }

    char digest_hex[HC_SHA256_HEX_LEN + 1];
    hc_sha256_hex(secrets[0].data, secrets[0].len, digest_hex);
    const char *tokens_sha256[1] = {digest_hex};
    wv_params p;
    wv_params_init(&p, sch);
    if (sch == WV_SCHEME_BEARER) {
        /* One token by digest, the other(s) in plain text. */
        p.tokens_sha256 = tokens_sha256;
        p.n_tokens_sha256 = 1;
        p.tokens = secrets;
        p.n_tokens = nsec;
    } else {
        p.secrets = secrets;
        p.n_secrets = nsec;
    }
    if (sch == WV_SCHEME_HMAC_SHA256) {
        p.header = hmac_header;
        p.encoding = base64 ? WV_ENC_BASE64 : WV_ENC_HEX;
        p.prefix = prefix;
    }
    wv_config *c = NULL;
    char err[200];
    hr_status st = wv_config_new(&c, &p, err, sizeof err);
    if (st == HR_OK) {
        FZ_CHECK(wv_config_scheme(c) == sch);
        const char *detail = NULL;
        wv_result r = wv_verify(c, lookup, &h, body_copy, blen, NOW, &detail);
        FZ_CHECK(r >= WV_OK && r <= WV_ERROR && wv_result_str(r) != NULL);
        if (r != WV_OK)
            FZ_CHECK(detail != NULL);
        if (signing && sign_ok) {
            if (r != WV_OK)
                fprintf(stderr, "signed request refused: %s (%s)\n", wv_result_str(r), detail);
            FZ_CHECK(r == WV_OK);
        }
        if (r == WV_OK && sch != WV_SCHEME_BEARER) {
            unsigned char d1[WV_SHA256_LEN], d2[WV_SHA256_LEN];
            FZ_CHECK(wv_signed_digest(c, lookup, &h, body_copy, blen, d1));
            FZ_CHECK(wv_signed_digest(c, lookup, &h, body_copy, blen, d2));
            FZ_CHECK(memcmp(d1, d2, sizeof d1) == 0);
        }
        /* Streamed in chunks (sizes from the flags' high bits), the answer and
         * the signed digest are the one-shot ones. */
        wv_stream *stm = NULL;
        wv_result sr = wv_stream_begin(c, lookup, &h, &stm, &detail);
        if (sr == WV_OK) {
            FZ_CHECK(stm != NULL);
            size_t chunk = 1 + (size_t)(flags >> 4) * 5;
            for (size_t off = 0; off < blen; off += chunk)
                FZ_CHECK(wv_stream_update(stm, body_copy + off,
                                          blen - off < chunk ? blen - off : chunk));
            sr = wv_stream_finish(stm, NOW, &detail);
            if (sr == WV_OK && sch != WV_SCHEME_BEARER) {
                unsigned char d1[WV_SHA256_LEN], d2[WV_SHA256_LEN];
                FZ_CHECK(wv_stream_signed_digest(stm, d1));
                FZ_CHECK(wv_signed_digest(c, lookup, &h, body_copy, blen, d2));
                FZ_CHECK(memcmp(d1, d2, sizeof d1) == 0);
            }
            wv_stream_free(stm);
        } else {
            FZ_CHECK(stm == NULL);
        }
        FZ_CHECK(sr == r);
        /* A stale clock only ever turns OK into STALE. */
        wv_result r2 = wv_verify(c, lookup, &h, body_copy, blen, 0, &detail);
        FZ_CHECK(r2 == r || (r == WV_OK && r2 == WV_STALE) || (r == WV_STALE && r2 == WV_OK));
        wv_config_free(c);
    } else {
        FZ_CHECK(c == NULL && (st == HR_ERR_INVALID || st == HR_ERR_NOMEM));
    }
    for (size_t i = 0; i < h.n; i++) {
        if (h.owned_name[i])
            free((char *)h.name[i]);
        free(h.value[i]);
    }
    for (size_t i = 0; i < nsec; i++)
        free(sec_copy[i]);
    free(body_copy);
    return 0;
}
