/* wsproto: client frame parsing, Origin matching, header helpers. */
#include "herald/wsproto.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "herald/encoding.h"

void wsproto_request_clear(wsreq *r)
{
    json_decref(r->root);
    free(r->bin);
    memset(r, 0, sizeof *r);
}

/* A string without embedded NUL (usable as a C string). */
static bool cstring(const json_t *v)
{
    return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v);
}

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(msg, msglen, __VA_ARGS__);                                                        \
        goto fail;                                                                                 \
    } while (0)

bool wsproto_parse(const char *buf, size_t len, wsreq *out, char **id_out, char *msg, size_t msglen)
{
    memset(out, 0, sizeof *out);
    *id_out = NULL;
    json_error_t err;
    json_t *root =
        json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!root) {
        snprintf(msg, msglen, "malformed JSON: %s", err.text);
        return false;
    }
    out->root = root;
    if (!json_is_object(root))
        FAIL("a request must be a JSON object");
    json_t *id = json_object_get(root, "id");
    if (id) {
        if (!cstring(id))
            FAIL("id must be a string");
        out->id = json_string_value(id);
    }
    json_t *type = json_object_get(root, "type");
    if (!cstring(type))
        FAIL("type must be a string");
    static const char *const names[] = {"auth", "subscribe", "unsubscribe", "publish", "ping"};
    const char *t = json_string_value(type);
    int ty = -1;
    for (int i = 0; i < 5; i++)
        if (strcmp(t, names[i]) == 0)
            ty = i;
    if (ty < 0)
        FAIL("unknown type \"%.40s\"", t);
    out->type = (wsreq_type)ty;
    /* Fields a request type does not define are ignored (contract v1.2 §3:
     * a newer client may send them). */
    if (out->type == WSREQ_AUTH) {
        /* Any string is a token to verify: "" or one with a NUL is a bad
         * token (unauthorized), not a malformed request. */
        json_t *tok = json_object_get(root, "token");
        if (!json_is_string(tok))
            FAIL("token must be a string");
        out->token = json_string_value(tok);
        out->token_len = json_string_length(tok);
    }
    if (out->type == WSREQ_SUBSCRIBE || out->type == WSREQ_UNSUBSCRIBE ||
        out->type == WSREQ_PUBLISH) {
        json_t *s = json_object_get(root, "subject");
        if (!json_is_string(s))
            FAIL("subject must be a string");
        out->subject = json_string_value(s);
        out->subject_len = json_string_length(s);
    }
    if (out->type == WSREQ_SUBSCRIBE) {
        json_t *s = json_object_get(root, "since");
        if (s) {
            bool last = json_is_string(s) && strcmp(json_string_value(s), "last") == 0 &&
                        json_string_length(s) == 4;
            if (!last && (!json_is_integer(s) || json_integer_value(s) < 0))
                FAIL("since must be a non-negative integer or \"last\"");
            out->has_since = true;
            out->since_last = last;
            out->since = last ? 0 : json_integer_value(s);
        }
    }
    if (out->type == WSREQ_PUBLISH) {
        json_t *d = json_object_get(root, "data"), *b = json_object_get(root, "data_b64");
        if ((d != NULL) == (b != NULL))
            FAIL("publish needs exactly one of data and data_b64");
        if (d) {
            out->data = d;
        } else {
            if (!json_is_string(b))
                FAIL("data_b64 must be a base64 string");
            size_t bl = json_string_length(b);
            out->bin = malloc(enc_base64_decoded_max(bl) + 1);
            if (!out->bin || !enc_base64_decode(json_string_value(b), bl, out->bin,
                                                enc_base64_decoded_max(bl) + 1, &out->bin_len))
                FAIL("data_b64 is not valid base64");
        }
    }
    return true;
fail:
    if (out->id)
        *id_out = strdup(out->id);
    wsproto_request_clear(out);
    return false;
}

/* Host characters: a DNS name (or IPv4), or an IPv6 literal in brackets; an
 * allow-list entry (pattern) may start with "*.". */
static bool host_chars(const char *h, size_t n, bool pattern)
{
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        for (size_t i = 1; i + 1 < n; i++)
            if (!isxdigit((unsigned char)h[i]) && h[i] != ':' && h[i] != '.')
                return false;
        return n > 2;
    }
    if (pattern && n > 2 && h[0] == '*' && h[1] == '.') {
        h += 2;
        n -= 2;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)h[i]) && h[i] != '-' && h[i] != '.' && h[i] != '_')
            return false;
        if (h[i] == '.' && (i == 0 || h[i - 1] == '.'))
            return false; /* empty label */
    }
    return n > 0;
}

/* Split "scheme://host[:port]" into parts; host lower-cased. */
static bool split_origin(const char *o, bool pattern, char *scheme, size_t sl, char *host,
                         size_t hl, int *port)
{
    const char *sep = strstr(o, "://");
    if (!sep || sep == o || (size_t)(sep - o) >= sl || !isalpha((unsigned char)o[0]))
        return false;
    size_t n = (size_t)(sep - o);
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)o[i]) && o[i] != '+' && o[i] != '-' && o[i] != '.')
            return false;
        scheme[i] = (char)tolower((unsigned char)o[i]);
    }
    scheme[n] = '\0';
    const char *h = sep + 3, *end = h + strlen(h);
    if (end > h && end[-1] == '/')
        end--; /* tolerate a trailing slash */
    const char *colon = NULL;
    if (*h == '[') {
        const char *rb = memchr(h, ']', (size_t)(end - h));
        if (!rb)
            return false;
        colon = (rb + 1 < end && rb[1] == ':') ? rb + 1 : NULL;
        if (!colon && rb + 1 != end)
            return false;
    } else {
        colon = memchr(h, ':', (size_t)(end - h));
    }
    const char *hend = colon ? colon : end;
    if (hend == h || (size_t)(hend - h) >= hl || !host_chars(h, (size_t)(hend - h), pattern))
        return false;
    for (size_t i = 0; i < (size_t)(hend - h); i++)
        host[i] = (char)tolower((unsigned char)h[i]);
    host[hend - h] = '\0';
    if (colon) {
        if (colon + 1 == end || end - colon > 6)
            return false;
        int p = 0;
        for (const char *q = colon + 1; q < end; q++) {
            if (!isdigit((unsigned char)*q))
                return false;
            p = p * 10 + (*q - '0');
        }
        if (p < 1 || p > 65535)
            return false;
        *port = p;
    } else if (strcmp(scheme, "https") == 0 || strcmp(scheme, "wss") == 0) {
        *port = 443;
    } else if (strcmp(scheme, "http") == 0 || strcmp(scheme, "ws") == 0) {
        *port = 80;
    } else {
        *port = 0;
    }
    return true;
}

bool wsproto_origin_allowed(const char *origin, char *const *allowed, size_t n)
{
    if (strcmp(origin, "null") == 0) {
        for (size_t i = 0; i < n; i++)
            if (strcmp(allowed[i], "null") == 0)
                return true;
        return false;
    }
    char s1[32], h1[256];
    int p1;
    if (!split_origin(origin, false, s1, sizeof s1, h1, sizeof h1, &p1))
        return false;
    for (size_t i = 0; i < n; i++) {
        char s2[32], h2[256];
        int p2;
        if (!split_origin(allowed[i], true, s2, sizeof s2, h2, sizeof h2, &p2))
            continue;
        if (strcmp(s1, s2) != 0 || p1 != p2)
            continue;
        if (strncmp(h2, "*.", 2) == 0) {
            size_t dl = strlen(h2 + 1), hl = strlen(h1); /* ".example.com" */
            if (hl > dl && strcmp(h1 + hl - dl, h2 + 1) == 0)
                return true;
        } else if (strcmp(h1, h2) == 0) {
            return true;
        }
    }
    return false;
}

bool wsproto_offers_protocol(const char *header, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = header; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ' && *e != '\t')
            e++;
        if ((size_t)(e - p) == nl && strncmp(p, name, nl) == 0)
            return true;
        p = e;
    }
    return false;
}

bool wsproto_cookie_value(const char *header, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    for (const char *p = header; *p;) {
        while (*p == ' ' || *p == ';')
            p++;
        const char *e = strchr(p, ';');
        if (!e)
            e = p + strlen(p);
        if ((size_t)(e - p) > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            size_t vl = (size_t)(e - p) - nl - 1;
            if (vl + 1 > outlen)
                return false;
            memcpy(out, p + nl + 1, vl);
            out[vl] = '\0';
            return vl > 0;
        }
        p = e;
    }
    return false;
}

size_t wsproto_frame_header(unsigned char *p, size_t len)
{
    p[0] = 0x81;
    if (len < 126) {
        p[1] = (unsigned char)len;
        return 2;
    }
    if (len < 65536) {
        p[1] = 126;
        p[2] = (unsigned char)(len >> 8);
        p[3] = (unsigned char)len;
        return 4;
    }
    p[1] = 127;
    for (int i = 0; i < 8; i++)
        p[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

bool wsproto_frame_append(unsigned char *out, size_t cap, size_t *n, const unsigned char *data,
                          size_t len)
{
    if (*n > cap || cap - *n < 10 || cap - *n - 10 < len)
        return false;
    *n += wsproto_frame_header(out + *n, len);
    memcpy(out + *n, data, len);
    *n += len;
    return true;
}
