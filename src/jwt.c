/* jwt: verify bearer JWTs with libjwt 1.10.2 behind strict pre- and post-checks.
 * libjwt only checks the signature, and loosely (STACK-NOTES §4): the token's
 * alg picks the verifier, case-insensitively, "none" passes without a key, and
 * no claim is checked. So this file caps the size, parses the header itself to
 * pin the algorithm and pick keys, requires jwt_get_alg() to equal the key's
 * alg after jwt_decode(), and checks the claims from its own strict parse of
 * the signed payload (libjwt's parse keeps the last of duplicate keys).
 * No I/O except reading PEM files in hjwt_verifier_new(). */
#include "herald/jwt.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "herald/encoding.h"

#define PEM_FILE_MAX_BYTES  (64 * 1024)
#define DEFAULT_ROLES_CLAIM "roles"

struct verifier_key {
    jwt_alg_t alg;           /* the only algorithm this key verifies */
    char *kid;               /* NULL = no kid */
    unsigned char *material; /* HS256 secret, or canonical SPKI PEM of the public key */
    size_t material_len;
};

struct hjwt_verifier {
    struct verifier_key *keys;
    size_t n_keys;
    char *issuer;      /* NULL = not checked */
    char *audience;    /* NULL = not checked */
    char *roles_claim; /* whole name, tried literally first */
    char **roles_path; /* roles_claim split on '.' */
    size_t n_roles_path;
    int64_t leeway_s;
};

const char *hjwt_result_str(hjwt_result r)
{
    switch (r) {
    case HJWT_OK:
        return "ok";
    case HJWT_MALFORMED:
        return "malformed";
    case HJWT_BAD_SIGNATURE:
        return "bad_signature";
    case HJWT_EXPIRED:
        return "expired";
    case HJWT_NOT_YET_VALID:
        return "not_yet_valid";
    case HJWT_BAD_ISSUER:
        return "bad_issuer";
    case HJWT_BAD_AUDIENCE:
        return "bad_audience";
    case HJWT_BAD_CLAIMS:
        return "bad_claims";
    case HJWT_INTERNAL:
        return "internal";
    }
    return "unknown";
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- construction ---------------------------------------------------- */

static jwt_alg_t alg_from_name(const char *name)
{
    /* Exact case on purpose: libjwt's jwt_str_alg() is case-insensitive. */
    if (name == NULL)
        return JWT_ALG_INVAL;
    if (strcmp(name, "HS256") == 0)
        return JWT_ALG_HS256;
    if (strcmp(name, "RS256") == 0)
        return JWT_ALG_RS256;
    if (strcmp(name, "ES256") == 0)
        return JWT_ALG_ES256;
    return JWT_ALG_INVAL;
}

static char *read_small_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        set_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(PEM_FILE_MAX_BYTES + 1);
    if (buf == NULL) {
        fclose(f);
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    size_t n = fread(buf, 1, PEM_FILE_MAX_BYTES + 1, f);
    bool failed = ferror(f) != 0;
    fclose(f);
    if (failed) {
        set_err(err, errlen, "cannot read %s", path);
        free(buf);
        return NULL;
    }
    if (n > PEM_FILE_MAX_BYTES) {
        set_err(err, errlen, "%s is larger than %d bytes", path, PEM_FILE_MAX_BYTES);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Loads a PEM public key bound to alg and returns it re-encoded as SPKI PEM
 * (what libjwt's PEM_read_bio_PUBKEY reads), so nothing else from the file
 * reaches libjwt. */
static bool load_public_key(const char *path, jwt_alg_t alg, unsigned char **out, size_t *outlen,
                            char *err, size_t errlen)
{
    bool ok = false;
    size_t len = 0;
    BIO *in = NULL, *mem = NULL;
    EVP_PKEY *pkey = NULL;
    char *text = read_small_file(path, &len, err, errlen);
    if (text == NULL)
        return false;
    if (strstr(text, "PRIVATE KEY") != NULL) {
        set_err(err, errlen, "%s holds a private key; give the public key only", path);
        goto done;
    }
    in = BIO_new_mem_buf(text, (int)len);
    if (in == NULL) {
        set_err(err, errlen, "out of memory");
        goto done;
    }
    pkey = PEM_read_bio_PUBKEY(in, NULL, NULL, NULL);
    if (pkey == NULL) {
        set_err(err, errlen, "%s: no PEM public key (\"BEGIN PUBLIC KEY\") found", path);
        goto done;
    }
    if (alg == JWT_ALG_RS256) {
        if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA) {
            set_err(err, errlen, "%s: RS256 needs an RSA public key", path);
            goto done;
        }
        if (EVP_PKEY_get_bits(pkey) < HJWT_RSA_MIN_BITS) {
            set_err(err, errlen, "%s: RSA key has %d bits, RS256 needs at least %d", path,
                    EVP_PKEY_get_bits(pkey), HJWT_RSA_MIN_BITS);
            goto done;
        }
    } else {
        char group[64] = "";
        size_t glen = 0;
        if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC) {
            set_err(err, errlen, "%s: ES256 needs an EC public key", path);
            goto done;
        }
        if (EVP_PKEY_get_group_name(pkey, group, sizeof group, &glen) != 1 ||
            (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0)) {
            set_err(err, errlen, "%s: EC key on curve %s, ES256 needs P-256", path,
                    group[0] ? group : "(unknown)");
            goto done;
        }
    }
    mem = BIO_new(BIO_s_mem());
    if (mem == NULL || PEM_write_bio_PUBKEY(mem, pkey) != 1) {
        set_err(err, errlen, "%s: cannot re-encode the public key", path);
        goto done;
    }
    char *data = NULL;
    long dlen = BIO_get_mem_data(mem, &data);
    if (dlen <= 0 || (*out = malloc((size_t)dlen)) == NULL) {
        set_err(err, errlen, "out of memory");
        goto done;
    }
    memcpy(*out, data, (size_t)dlen);
    *outlen = (size_t)dlen;
    ok = true;
done:
    ERR_clear_error();
    BIO_free(mem);
    EVP_PKEY_free(pkey);
    BIO_free(in);
    free(text);
    return ok;
}

static bool split_roles_path(hjwt_verifier *v, const char *claim, char *err, size_t errlen)
{
    size_t parts = 1;
    for (const char *p = claim; *p; p++)
        parts += *p == '.';
    v->roles_path = calloc(parts, sizeof *v->roles_path);
    if (v->roles_path == NULL) {
        set_err(err, errlen, "out of memory");
        return false;
    }
    const char *start = claim;
    for (;;) {
        const char *dot = strchr(start, '.');
        size_t n = dot ? (size_t)(dot - start) : strlen(start);
        if (n == 0) {
            set_err(err, errlen, "auth.jwt.roles_claim \"%s\" has an empty path segment", claim);
            return false;
        }
        char *seg = strndup(start, n);
        if (seg == NULL) {
            set_err(err, errlen, "out of memory");
            return false;
        }
        v->roles_path[v->n_roles_path++] = seg;
        if (dot == NULL)
            break;
        start = dot + 1;
    }
    return true;
}

static bool init_key(struct verifier_key *dst, const hjwt_key *src, size_t i, char *err,
                     size_t errlen)
{
    dst->alg = alg_from_name(src->alg);
    if (dst->alg == JWT_ALG_INVAL) {
        set_err(err, errlen, "auth.jwt.keys[%zu]: alg \"%s\" is not HS256, RS256 or ES256", i,
                src->alg ? src->alg : "(null)");
        return false;
    }
    if (src->kid != NULL) {
        if (src->kid[0] == '\0') {
            set_err(err, errlen, "auth.jwt.keys[%zu]: empty kid", i);
            return false;
        }
        if ((dst->kid = strdup(src->kid)) == NULL) {
            set_err(err, errlen, "out of memory");
            return false;
        }
    }
    if (dst->alg == JWT_ALG_HS256) {
        /* libjwt verifies nothing when given an empty key. */
        if (src->secret == NULL || src->secret_len == 0) {
            set_err(err, errlen, "auth.jwt.keys[%zu]: HS256 secret is empty", i);
            return false;
        }
        if (src->secret_len > INT_MAX) {
            set_err(err, errlen, "auth.jwt.keys[%zu]: HS256 secret too long", i);
            return false;
        }
        if ((dst->material = malloc(src->secret_len)) == NULL) {
            set_err(err, errlen, "out of memory");
            return false;
        }
        memcpy(dst->material, src->secret, src->secret_len);
        dst->material_len = src->secret_len;
        return true;
    }
    if (src->public_key_file == NULL || src->public_key_file[0] == '\0') {
        set_err(err, errlen, "auth.jwt.keys[%zu]: %s needs public_key_file", i, src->alg);
        return false;
    }
    char sub[512];
    if (!load_public_key(src->public_key_file, dst->alg, &dst->material, &dst->material_len, sub,
                         sizeof sub)) {
        set_err(err, errlen, "auth.jwt.keys[%zu]: %s", i, sub);
        return false;
    }
    return true;
}

hr_status hjwt_verifier_new(hjwt_verifier **out, const hjwt_key *keys, size_t n, const char *issuer,
                            const char *audience, const char *roles_claim, int leeway_s, char *err,
                            size_t errlen)
{
    *out = NULL;
    set_err(err, errlen, "%s", "");
    if (keys == NULL || n == 0) {
        set_err(err, errlen, "auth.jwt.keys is empty");
        return HR_ERR_INVALID;
    }
    if (leeway_s < 0 || leeway_s > HJWT_MAX_LEEWAY_S) {
        set_err(err, errlen, "auth.jwt.leeway_s %d is outside 0..%d", leeway_s, HJWT_MAX_LEEWAY_S);
        return HR_ERR_INVALID;
    }
    if ((issuer != NULL && issuer[0] == '\0') || (audience != NULL && audience[0] == '\0')) {
        set_err(err, errlen, "auth.jwt.issuer/audience must not be empty strings");
        return HR_ERR_INVALID;
    }
    if (roles_claim == NULL)
        roles_claim = DEFAULT_ROLES_CLAIM;
    if (roles_claim[0] == '\0') {
        set_err(err, errlen, "auth.jwt.roles_claim is empty");
        return HR_ERR_INVALID;
    }

    hr_status st = HR_ERR_NOMEM;
    hjwt_verifier *v = calloc(1, sizeof *v);
    if (v == NULL || (v->keys = calloc(n, sizeof *v->keys)) == NULL) {
        set_err(err, errlen, "out of memory");
        goto fail;
    }
    v->leeway_s = leeway_s;
    if ((issuer && (v->issuer = strdup(issuer)) == NULL) ||
        (audience && (v->audience = strdup(audience)) == NULL) ||
        (v->roles_claim = strdup(roles_claim)) == NULL) {
        set_err(err, errlen, "out of memory");
        goto fail;
    }
    st = HR_ERR_INVALID;
    if (!split_roles_path(v, roles_claim, err, errlen))
        goto fail;
    for (size_t i = 0; i < n; i++) {
        v->n_keys = i + 1; /* so that fail: frees a partly built key */
        if (!init_key(&v->keys[i], &keys[i], i, err, errlen))
            goto fail;
        for (size_t j = 0; j < i && v->keys[i].kid; j++) {
            if (v->keys[j].kid && strcmp(v->keys[j].kid, v->keys[i].kid) == 0) {
                set_err(err, errlen, "auth.jwt.keys[%zu]: kid \"%s\" already used by keys[%zu]", i,
                        v->keys[i].kid, j);
                goto fail;
            }
        }
    }
    *out = v;
    return HR_OK;
fail:
    hjwt_verifier_free(v);
    return st;
}

void hjwt_verifier_free(hjwt_verifier *v)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < v->n_keys; i++) {
        free(v->keys[i].kid);
        if (v->keys[i].material != NULL) {
            OPENSSL_cleanse(v->keys[i].material, v->keys[i].material_len);
            free(v->keys[i].material);
        }
    }
    free(v->keys);
    for (size_t i = 0; i < v->n_roles_path; i++)
        free(v->roles_path[i]);
    free(v->roles_path);
    free(v->roles_claim);
    free(v->issuer);
    free(v->audience);
    free(v);
}

/* ---- verification ---------------------------------------------------- */

/* Decodes one segment into a JSON object, rejecting duplicate keys. */
static hjwt_result decode_json_object(const char *seg, size_t n, json_t **out)
{
    size_t blen = 0, cap = enc_base64_decoded_max(n);
    unsigned char *bytes = malloc(cap);
    if (bytes == NULL)
        return HJWT_INTERNAL;
    if (!enc_base64url_decode(seg, n, bytes, cap, &blen)) {
        free(bytes);
        return HJWT_MALFORMED;
    }
    json_error_t e;
    json_t *j = json_loadb((const char *)bytes, blen, JSON_REJECT_DUPLICATES, &e);
    free(bytes);
    if (!json_is_object(j)) {
        json_decref(j);
        return HJWT_MALFORMED;
    }
    *out = j;
    return HJWT_OK;
}

/* Header checks that make a token malformed whatever its key. */
static hjwt_result check_header(const json_t *hdr, const char **alg, const char **kid)
{
    const json_t *a = json_object_get(hdr, "alg");
    const json_t *k = json_object_get(hdr, "kid");
    const json_t *typ = json_object_get(hdr, "typ");
    if (!json_is_string(a))
        return HJWT_MALFORMED;
    if (k != NULL && !json_is_string(k))
        return HJWT_MALFORMED;
    /* RFC 7515 §4.1.11: we understand no extension, so any crit is unknown. */
    if (json_object_get(hdr, "crit") != NULL)
        return HJWT_MALFORMED;
    /* libjwt 1.10.2 refuses any typ but "JWT" (any case); say so precisely. */
    if (typ != NULL && (!json_is_string(typ) || strcasecmp(json_string_value(typ), "JWT") != 0))
        return HJWT_MALFORMED;
    *alg = json_string_value(a);
    *kid = k ? json_string_value(k) : NULL;
    return HJWT_OK;
}

/* Tries one key. Returns HJWT_OK if libjwt verified the signature with the
 * algorithm this key is bound to. */
static hjwt_result try_key(const struct verifier_key *key, const char *token)
{
    jwt_t *jwt = NULL;
    int rc = jwt_decode(&jwt, token, key->material, (int)key->material_len);
    hjwt_result r = HJWT_BAD_SIGNATURE;
    if (rc == 0 && jwt != NULL && jwt_get_alg(jwt) == key->alg)
        r = HJWT_OK;
    else if (rc == ENOMEM)
        r = HJWT_INTERNAL;
    jwt_free(jwt);
    return r;
}

static hjwt_result check_signature(const hjwt_verifier *v, const char *token, const char *alg_name,
                                   const char *kid)
{
    jwt_alg_t alg = alg_from_name(alg_name); /* "none", "hs256", "HS384"... → INVAL */
    if (alg == JWT_ALG_INVAL)
        return HJWT_BAD_SIGNATURE;
    hjwt_result r = HJWT_BAD_SIGNATURE;
    for (size_t i = 0; i < v->n_keys; i++) {
        const struct verifier_key *key = &v->keys[i];
        if (kid != NULL) {
            if (key->kid == NULL || strcmp(key->kid, kid) != 0)
                continue;
            /* kids are unique: this is the only candidate */
            return key->alg == alg ? try_key(key, token) : HJWT_BAD_SIGNATURE;
        }
        if (key->alg != alg)
            continue;
        r = try_key(key, token);
        if (r == HJWT_OK || r == HJWT_INTERNAL)
            return r;
    }
    return r;
}

static const json_t *find_roles(const hjwt_verifier *v, const json_t *claims)
{
    const json_t *j = json_object_get(claims, v->roles_claim);
    if (j != NULL || v->n_roles_path == 1)
        return j;
    j = claims;
    for (size_t i = 0; i < v->n_roles_path; i++) {
        if (!json_is_object(j))
            return NULL;
        j = json_object_get(j, v->roles_path[i]);
    }
    return j;
}

static hjwt_result add_role(hjwt_principal *p, const char *s, size_t n)
{
    if (n == 0)
        return HJWT_OK;
    char **grown = realloc(p->roles, (p->n_roles + 1) * sizeof *grown);
    if (grown == NULL)
        return HJWT_INTERNAL;
    p->roles = grown;
    if ((p->roles[p->n_roles] = strndup(s, n)) == NULL)
        return HJWT_INTERNAL;
    p->n_roles++;
    return HJWT_OK;
}

/* Roles: an array of strings, or one space-separated string. Absent or null
 * means none. Any other shape, including a non-string array entry, makes the
 * token bad_claims: a roles claim that cannot be read in full is refused
 * rather than silently narrowed. */
static hjwt_result extract_roles(const hjwt_verifier *v, const json_t *claims, hjwt_principal *p)
{
    const json_t *roles = find_roles(v, claims);
    hjwt_result r = HJWT_OK;
    if (roles == NULL || json_is_null(roles))
        return HJWT_OK;
    if (json_is_string(roles)) {
        const char *s = json_string_value(roles);
        size_t n = json_string_length(roles);
        size_t start = 0;
        for (size_t i = 0; i <= n && r == HJWT_OK; i++) {
            if (i == n || s[i] == ' ') {
                r = add_role(p, s + start, i - start);
                start = i + 1;
            }
        }
        return r;
    }
    if (!json_is_array(roles))
        return HJWT_BAD_CLAIMS;
    size_t i;
    const json_t *item;
    json_array_foreach(roles, i, item)
    {
        if (!json_is_string(item))
            return HJWT_BAD_CLAIMS;
        r = add_role(p, json_string_value(item), json_string_length(item));
        if (r != HJWT_OK)
            return r;
    }
    return HJWT_OK;
}

static bool audience_matches(const json_t *aud, const char *want)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    if (!json_is_array(aud))
        return false;
    size_t i;
    const json_t *item;
    json_array_foreach(aud, i, item)
    {
        if (json_is_string(item) && strcmp(json_string_value(item), want) == 0)
            return true;
    }
    return false;
}

/* now < exp + leeway, without overflow */
static bool before_expiry(int64_t now, json_int_t exp, int64_t leeway)
{
    if (now < exp)
        return true;
    return (uint64_t)now - (uint64_t)exp < (uint64_t)leeway;
}

/* nbf <= now + leeway, without overflow */
static bool after_not_before(int64_t now, json_int_t nbf, int64_t leeway)
{
    if (nbf <= now)
        return true;
    return (uint64_t)nbf - (uint64_t)now <= (uint64_t)leeway;
}

/* Claim checks, in an order that leaves expiry last (so EXPIRED means it is
 * the only fault). Fills roles and sub of p. */
static hjwt_result check_claims(const hjwt_verifier *v, const json_t *claims, int64_t now,
                                hjwt_principal *p)
{
    const json_t *exp = json_object_get(claims, "exp");
    const json_t *nbf = json_object_get(claims, "nbf");
    const json_t *sub = json_object_get(claims, "sub");
    if (!json_is_integer(exp))
        return HJWT_BAD_CLAIMS;
    if (json_integer_value(exp) > HJWT_MAX_EXP_S)
        return HJWT_MALFORMED;
    if (nbf != NULL && !json_is_integer(nbf))
        return HJWT_BAD_CLAIMS;
    if (sub != NULL && !json_is_string(sub))
        return HJWT_BAD_CLAIMS;
    if (v->issuer != NULL) {
        const json_t *iss = json_object_get(claims, "iss");
        if (!json_is_string(iss) || strcmp(json_string_value(iss), v->issuer) != 0)
            return HJWT_BAD_ISSUER;
    }
    if (v->audience != NULL && !audience_matches(json_object_get(claims, "aud"), v->audience))
        return HJWT_BAD_AUDIENCE;
    hjwt_result r = extract_roles(v, claims, p);
    if (r != HJWT_OK)
        return r;
    if (nbf != NULL && !after_not_before(now, json_integer_value(nbf), v->leeway_s))
        return HJWT_NOT_YET_VALID;
    if (!before_expiry(now, json_integer_value(exp), v->leeway_s))
        return HJWT_EXPIRED;
    if (sub != NULL && (p->sub = strdup(json_string_value(sub))) == NULL)
        return HJWT_INTERNAL;
    p->exp = json_integer_value(exp);
    return HJWT_OK;
}

static bool is_token_char(unsigned char c)
{
    return c == '.' || enc_base64url_char(c);
}

hjwt_result hjwt_verify(const hjwt_verifier *v, const char *token, size_t len, int64_t now,
                        hjwt_principal *out)
{
    if (out == NULL)
        return HJWT_INTERNAL;
    memset(out, 0, sizeof *out);
    if (v == NULL || token == NULL || len == 0 || len > HJWT_MAX_TOKEN_BYTES)
        return HJWT_MALFORMED;

    size_t dots[2], n_dots = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)token[i];
        if (!is_token_char(c))
            return HJWT_MALFORMED;
        if (c == '.') {
            if (n_dots == 2)
                return HJWT_MALFORMED;
            dots[n_dots++] = i;
        }
    }
    if (n_dots != 2 || dots[0] == 0 || dots[1] == dots[0] + 1)
        return HJWT_MALFORMED; /* not 3 segments, or an empty header/payload */

    json_t *hdr = NULL, *claims = NULL;
    char *copy = NULL;
    const char *alg = NULL, *kid = NULL;
    hjwt_result r = decode_json_object(token, dots[0], &hdr);
    if (r != HJWT_OK)
        goto done;
    if ((r = check_header(hdr, &alg, &kid)) != HJWT_OK)
        goto done;
    r = decode_json_object(token + dots[0] + 1, dots[1] - dots[0] - 1, &claims);
    if (r != HJWT_OK)
        goto done;

    /* jwt_decode() wants a C string; len <= 8 KiB bounds libjwt's alloca(). */
    if ((copy = malloc(len + 1)) == NULL) {
        r = HJWT_INTERNAL;
        goto done;
    }
    memcpy(copy, token, len);
    copy[len] = '\0';
    if ((r = check_signature(v, copy, alg, kid)) != HJWT_OK)
        goto done;

    if ((r = check_claims(v, claims, now, out)) != HJWT_OK)
        goto done;
    out->claims = claims;
    claims = NULL;
done:
    if (r != HJWT_OK)
        hjwt_principal_clear(out);
    free(copy);
    json_decref(claims);
    json_decref(hdr);
    return r;
}

void hjwt_principal_clear(hjwt_principal *p)
{
    if (p == NULL)
        return;
    free(p->sub);
    for (size_t i = 0; i < p->n_roles; i++)
        free(p->roles[i]);
    free(p->roles);
    json_decref(p->claims);
    memset(p, 0, sizeof *p);
}
