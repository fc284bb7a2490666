/* cloudevent: structured → binary mode. Pure: no I/O, no globals. */
#include "herald/cloudevent.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>

#include "herald/encoding.h"
#include "herald/jsontext.h"

void ce_binary_clear(ce_binary *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->nheaders; i++) {
        free(b->headers[i].name);
        free(b->headers[i].value);
    }
    free(b->headers);
    free(b->content_type);
    free(b->id);
    free(b->data);
    memset(b, 0, sizeof *b);
}

static bool name_ok(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > 20)
        return false;
    for (const char *p = k; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
            return false;
    return true;
}

static bool text_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

/* Attribute value as text (owned), or NULL with a reason. */
static char *attr_text(const json_t *v, const char **why)
{
    char buf[JT_INT_TEXT_MAX];
    const char *t;
    size_t n;
    if (!jt_scalar_text(v, buf, &t, &n)) {
        *why = "attribute values must be strings, integers or booleans";
        return NULL;
    }
    if (!text_ok(t, n)) {
        *why = "control character in an attribute value";
        return NULL;
    }
    return strndup(t, n);
}

static bool is_json_type(const char *ct)
{
    size_t n = strcspn(ct, ";");
    while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    if (n == 16 && strncasecmp(ct, "application/json", 16) == 0)
        return true;
    return n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0;
}

#define FAIL(msg)                                                                                  \
    do {                                                                                           \
        why = (msg);                                                                               \
        st = HR_ERR_INVALID;                                                                       \
        goto fail;                                                                                 \
    } while (0)

hr_status ce_from_structured(const char *body, size_t len, ce_binary *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    hr_status st = HR_OK;
    const char *why = NULL;
    json_error_t je;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        FAIL("not valid JSON");
    if (!json_is_object(root))
        FAIL("a structured CloudEvent must be a JSON object");
    const json_t *sv = json_object_get(root, "specversion");
    if (!json_is_string(sv) || strcmp(json_string_value(sv), "1.0") != 0)
        FAIL("specversion must be \"1.0\"");
    static const char *const required[] = {"id", "source", "type"};
    for (size_t i = 0; i < 3; i++) {
        const json_t *v = json_object_get(root, required[i]);
        if (!json_is_string(v) || json_string_length(v) == 0) {
            why = i == 0   ? "id must be a non-empty string"
                  : i == 1 ? "source must be a non-empty string"
                           : "type must be a non-empty string";
            st = HR_ERR_INVALID;
            goto fail;
        }
    }
    const json_t *data = json_object_get(root, "data");
    const json_t *data64 = json_object_get(root, "data_base64");
    if (data && data64)
        FAIL("data and data_base64 are mutually exclusive");
    size_t n = json_object_size(root);
    out->headers = calloc(n ? n : 1, sizeof *out->headers);
    if (!out->headers)
        FAIL("out of memory");
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "data") == 0 || strcmp(key, "data_base64") == 0)
            continue;
        if (!name_ok(key))
            FAIL("attribute names must be 1-20 lowercase letters or digits");
        if (json_is_null(v))
            continue;
        char *text = attr_text(v, &why);
        if (!text) {
            st = why ? HR_ERR_INVALID : HR_ERR_NOMEM;
            if (!why)
                why = "out of memory";
            goto fail;
        }
        if (strcmp(key, "datacontenttype") == 0) {
            free(out->content_type);
            out->content_type = text;
            continue;
        }
        size_t hl = strlen(key) + 4;
        char *hn = malloc(hl);
        if (!hn) {
            free(text);
            FAIL("out of memory");
        }
        snprintf(hn, hl, "ce-%s", key);
        out->headers[out->nheaders++] = (ce_header){hn, text};
        if (strcmp(key, "id") == 0 && !(out->id = strdup(text)))
            FAIL("out of memory");
    }
    if (!out->content_type && !(out->content_type = strdup("application/json")))
        FAIL("out of memory");
    if (data64 && !json_is_null(data64)) {
        if (!json_is_string(data64))
            FAIL("data_base64 must be a string");
        size_t l64 = json_string_length(data64);
        size_t cap = enc_base64_decoded_max(l64) + 1;
        out->data = malloc(cap);
        if (!out->data)
            FAIL("out of memory");
        if (!enc_base64_decode(json_string_value(data64), l64, out->data, cap, &out->len))
            FAIL("data_base64 is not valid base64");
    } else if (data && !json_is_null(data)) {
        if (json_is_string(data) && !is_json_type(out->content_type)) {
            out->len = json_string_length(data);
            out->data = malloc(out->len + 1);
            if (!out->data)
                FAIL("out of memory");
            memcpy(out->data, json_string_value(data), out->len);
        } else {
            size_t need = json_dumpb(data, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
            out->data = malloc(need + 1);
            if (!out->data)
                FAIL("out of memory");
            out->len = json_dumpb(data, (char *)out->data, need, JSON_COMPACT | JSON_ENCODE_ANY);
        }
    }
    if (out->len == 0) {
        free(out->data);
        out->data = NULL;
    }
    json_decref(root);
    return HR_OK;
fail:
    json_decref(root);
    ce_binary_clear(out);
    if (err && errlen)
        snprintf(err, errlen, "%s", why ? why : "malformed CloudEvent");
    return st == HR_OK ? HR_ERR_INVALID : st;
}
