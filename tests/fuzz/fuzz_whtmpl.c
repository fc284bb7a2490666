/* Fuzz target: webhook templates and JSON pointers (whtmpl.h).
 * Input: template '\n' source '\n' JSON pointer '\n' headers ("Name: value"
 * lines) '\n' '\n' JSON body. Checks: a rendered subject that is valid
 * matches the template's pattern; a pointer's value renders as its scalar
 * text. */
#include "fuzz.h"

#include <strings.h>

#include "herald/subject.h"
#include "herald/jsontext.h"
#include "herald/whtmpl.h"

#define MAX_HDRS 8

typedef struct {
    char *name[MAX_HDRS];
    char *value[MAX_HDRS];
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

/* A source name as config accepts it ([a-z0-9][a-z0-9_-]{0,63}); others are
 * replaced, since the caller never passes one. */
static bool source_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64 || s[0] == '_' || s[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
              s[i] == '-'))
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = fz_make(data, size);
    char *text = fz_next_str(&in, '\n');
    char *source = fz_next_str(&in, '\n');
    char *ptr = fz_next_str(&in, '\n');
    hdrs h = {.n = 0};
    while (in.n && h.n < MAX_HDRS) {
        char *line = fz_next_str(&in, '\n');
        if (!line[0]) {
            free(line);
            break;
        }
        char *colon = strchr(line, ':');
        char *v = colon ? colon + 1 : line + strlen(line);
        while (*v == ' ')
            v++;
        h.value[h.n] = fz_strndup(v, strlen(v));
        if (colon)
            *colon = '\0';
        h.name[h.n++] = line;
    }
    json_t *body = json_loadb(in.p, in.n, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    const char *src = source_ok(source) ? source : "src";

    const json_t *v = jt_pointer_get(body, ptr);
    if (body && ptr[0] == '\0')
        FZ_CHECK(v == body);
    char num[JT_INT_TEXT_MAX];
    const char *text_out = NULL;
    size_t text_len = 0;
    if (jt_scalar_text(v, num, &text_out, &text_len))
        FZ_CHECK(text_out && (json_is_string(v) || text_len == strlen(text_out)));
    else
        FZ_CHECK(!v || json_is_null(v) || json_is_real(v) || json_is_object(v) || json_is_array(v));

    whtmpl *t = NULL;
    hr_status st = whtmpl_compile(&t, text);
    if (st == HR_OK) {
        char out[SUBJECT_MAX_BYTES + 1], raw[SUBJECT_MAX_BYTES + 1], pat[SUBJECT_MAX_BYTES + 1];
        size_t outlen = 0, rawlen = 0;
        size_t cap = 1 + (size_t)(text[0] ? (unsigned char)text[0] : 0) * 4;
        if (cap > sizeof out)
            cap = sizeof out;
        whtmpl_result r = whtmpl_render(t, src, lookup, &h, body, out, sizeof out, &outlen);
        whtmpl_result rr = whtmpl_render_raw(t, src, lookup, &h, body, raw, sizeof raw, &rawlen);
        /* A small buffer only ever adds WHT_TOO_LONG. */
        char small[SUBJECT_MAX_BYTES + 1];
        size_t smalllen = 0;
        whtmpl_result rs = whtmpl_render(t, src, lookup, &h, body, small, cap, &smalllen);
        FZ_CHECK(rs == r || rs == WHT_TOO_LONG);
        if (rs == WHT_OK)
            FZ_CHECK(r == WHT_OK && smalllen == outlen && memcmp(small, out, outlen) == 0);
        if (r == WHT_OK) {
            FZ_CHECK(outlen < sizeof out && out[outlen] == '\0');
            /* The placeholder rules only refuse: the raw rendering agrees. */
            FZ_CHECK(rr == WHT_OK && rawlen == outlen && memcmp(raw, out, outlen) == 0);
            if (whtmpl_pattern(t, src, pat, sizeof pat) && subject_valid(out, outlen))
                FZ_CHECK(subject_matches(pat, strlen(pat), out, outlen));
        }
        if (!whtmpl_needs_json(t))
            FZ_CHECK(whtmpl_render(t, src, lookup, &h, NULL, out, sizeof out, &outlen) == r);
        whtmpl_free(t);
    } else {
        FZ_CHECK(t == NULL && (st == HR_ERR_INVALID || st == HR_ERR_NOMEM));
    }
    json_decref(body);
    for (size_t i = 0; i < h.n; i++) {
        free(h.name[i]);
        free(h.value[i]);
    }
    free(text);
    free(source);
    free(ptr);
    return 0;
}
