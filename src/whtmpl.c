/* whtmpl: webhook templates. Pure: no I/O, no globals. */
#include "herald/whtmpl.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/jsontext.h"
#include "herald/subject.h"

typedef enum { P_LITERAL = 0, P_SOURCE, P_HEADER, P_JSON } part_kind;

typedef struct {
    part_kind kind;
    bool multi; /* the {+...} form */
    char *text; /* literal text, header name, or json pointer */
} part;

struct whtmpl {
    part *parts;
    size_t nparts;
    bool needs_json;
};

void whtmpl_free(whtmpl *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nparts; i++)
        free(t->parts[i].text);
    free(t->parts);
    free(t);
}

static hr_status add_part(whtmpl *t, part_kind k, bool multi, const char *s, size_t n)
{
    part *np = realloc(t->parts, (t->nparts + 1) * sizeof *np);
    if (!np)
        return HR_ERR_NOMEM;
    t->parts = np;
    char *text = strndup(s, n);
    if (!text)
        return HR_ERR_NOMEM;
    t->parts[t->nparts++] = (part){k, multi, text};
    return HR_OK;
}

static bool header_name_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
            return false;
    return true;
}

#define PLACEHOLDER_MAX 255 /* bytes of one "{...}", braces included */

#define COMPILE_ERR(...)                                                                           \
    do {                                                                                           \
        if (err && errsz)                                                                          \
            snprintf(err, errsz, __VA_ARGS__);                                                     \
        st = HR_ERR_INVALID;                                                                       \
    } while (0)

hr_status whtmpl_compile_err(whtmpl **out, const char *text, char *err, size_t errsz)
{
    *out = NULL;
    if (err && errsz)
        err[0] = '\0';
    whtmpl *t = calloc(1, sizeof *t);
    if (!t)
        return HR_ERR_NOMEM;
    hr_status st = HR_OK;
    const char *p = text;
    while (*p && st == HR_OK) {
        if (*p == '}') {
            COMPILE_ERR("unbalanced '}'");
            break;
        }
        if (*p != '{') {
            size_t n = strcspn(p, "{}");
            st = add_part(t, P_LITERAL, false, p, n);
            p += n;
            continue;
        }
        const char *end = strchr(p, '}');
        if (!end) {
            COMPILE_ERR("unterminated placeholder");
            break;
        }
        int whole = (int)(end - p + 1); /* the placeholder as written, for messages */
        if (whole > PLACEHOLDER_MAX) {
            COMPILE_ERR("placeholder too long");
            break;
        }
        const char *b = p + 1;
        size_t n = (size_t)(end - b);
        bool multi = false;
        if (n && *b == '+') {
            multi = true;
            b++;
            n--;
        }
        if (!multi && n == 6 && memcmp(b, "source", 6) == 0) {
            st = add_part(t, P_SOURCE, false, "", 0);
        } else if (n > 7 && memcmp(b, "header:", 7) == 0 && header_name_ok(b + 7, n - 7)) {
            st = add_part(t, P_HEADER, multi, b + 7, n - 7);
        } else if (n > 5 && memcmp(b, "json:", 5) == 0 && b[5] == '/' &&
                   !memchr(b + 5, '{', n - 5)) {
            st = add_part(t, P_JSON, multi, b + 5, n - 5);
            t->needs_json = true;
        } else if (n > 5 && memcmp(b, "json:", 5) == 0 && b[5] == '/') {
            COMPILE_ERR("'{' inside placeholder %.*s", whole, p);
        } else {
            COMPILE_ERR("unknown placeholder %.*s", whole, p);
        }
        p = end + 1;
    }
    if (st != HR_OK) {
        if (st == HR_ERR_NOMEM && err && errsz)
            snprintf(err, errsz, "out of memory");
        whtmpl_free(t);
        return st;
    }
    *out = t;
    return HR_OK;
}

hr_status whtmpl_compile(whtmpl **out, const char *text)
{
    return whtmpl_compile_err(out, text, NULL, 0);
}

bool whtmpl_subject_shaped(const whtmpl *t)
{
    char sample[SUBJECT_MAX_BYTES + 1];
    size_t n = 0;
    for (size_t i = 0; t && i < t->nparts; i++) {
        const part *pt = &t->parts[i];
        size_t vlen = pt->kind == P_LITERAL ? strlen(pt->text) : 1;
        if (n + vlen > SUBJECT_MAX_BYTES)
            return false;
        memcpy(sample + n, pt->kind == P_LITERAL ? pt->text : "x", vlen);
        n += vlen;
    }
    return t && subject_valid(sample, n);
}

bool whtmpl_needs_json(const whtmpl *t)
{
    return t && t->needs_json;
}

/* ---- rendering ------------------------------------------------------------- */

/* Is v (a {+...} value) a '.'-separated list of 1..16 placeholder values? */
static bool multi_value_valid(const char *v, size_t len)
{
    size_t parts = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || v[i] == '.') {
            if (++parts > WHTMPL_MAX_PARTS ||
                !subject_placeholder_value_valid(v + start, i - start))
                return false;
            start = i + 1;
        }
    }
    return true;
}

static whtmpl_result render(const whtmpl *t, const char *source, whtmpl_header_fn hdr, void *hctx,
                            const json_t *body, bool check, char *out, size_t cap, size_t *outlen)
{
    size_t n = 0;
    char val[PLACEHOLDER_VALUE_MAX * WHTMPL_MAX_PARTS + WHTMPL_MAX_PARTS + 1];
    if (cap == 0)
        return WHT_TOO_LONG;
    out[0] = '\0';
    for (size_t i = 0; i < t->nparts; i++) {
        const part *pt = &t->parts[i];
        const char *v = NULL;
        size_t vlen = 0;
        switch (pt->kind) {
        case P_LITERAL:
            v = pt->text;
            vlen = strlen(v);
            break;
        case P_SOURCE:
            v = source;
            vlen = strlen(v);
            break;
        case P_HEADER:
            v = hdr ? hdr(hctx, pt->text) : NULL;
            if (!v)
                return WHT_UNRESOLVED;
            vlen = strlen(v);
            break;
        case P_JSON: {
            if (!jt_scalar_text(jt_pointer_get(body, pt->text), val, &v, &vlen) ||
                vlen + 1 > sizeof val || memchr(v, '\0', vlen))
                return WHT_UNRESOLVED;
            break;
        }
        }
        if (check && pt->kind != P_LITERAL) {
            bool ok =
                pt->multi ? multi_value_valid(v, vlen) : subject_placeholder_value_valid(v, vlen);
            if (!ok)
                return WHT_UNRESOLVED;
        }
        if (n + vlen + 1 > cap)
            return WHT_TOO_LONG;
        memcpy(out + n, v, vlen);
        n += vlen;
        out[n] = '\0';
    }
    if (outlen)
        *outlen = n;
    return WHT_OK;
}

whtmpl_result whtmpl_render(const whtmpl *t, const char *source, whtmpl_header_fn hdr, void *hctx,
                            const json_t *body, char *out, size_t cap, size_t *outlen)
{
    return render(t, source, hdr, hctx, body, true, out, cap, outlen);
}

whtmpl_result whtmpl_render_raw(const whtmpl *t, const char *source, whtmpl_header_fn hdr,
                                void *hctx, const json_t *body, char *out, size_t cap,
                                size_t *outlen)
{
    return render(t, source, hdr, hctx, body, false, out, cap, outlen);
}

/* ---- the subjects a template can produce ------------------------------------ */

#define MARK_ONE   '\x01' /* a placeholder yielding one token (or part of one) */
#define MARK_MULTI '\x02' /* a {+...} placeholder: one or more tokens */

bool whtmpl_pattern(const whtmpl *t, const char *source, char *out, size_t cap)
{
    char tmp[SUBJECT_MAX_BYTES + 1];
    size_t n = 0;
    for (size_t i = 0; i < t->nparts; i++) {
        const part *pt = &t->parts[i];
        const char *v = pt->kind == P_LITERAL ? pt->text : pt->kind == P_SOURCE ? source : NULL;
        char mark = pt->multi ? MARK_MULTI : MARK_ONE;
        size_t vlen = v ? strlen(v) : 1;
        if (n + vlen >= sizeof tmp)
            return false;
        if (v)
            memcpy(tmp + n, v, vlen);
        else
            tmp[n] = mark;
        n += vlen;
    }
    tmp[n] = '\0';
    /* Token by token: a token holding a placeholder matches any one token;
     * a {+...} placeholder may yield several, so the pattern ends there. */
    size_t o = 0;
    for (char *tok = tmp, *end;; tok = end + 1) {
        end = strchr(tok, '.');
        size_t tl = end ? (size_t)(end - tok) : strlen(tok);
        const char *w = tok;
        size_t wl = tl;
        bool last = !end;
        if (memchr(tok, MARK_MULTI, tl)) {
            w = ">";
            wl = 1;
            last = true;
        } else if (memchr(tok, MARK_ONE, tl)) {
            w = "*";
            wl = 1;
        }
        if (o + wl + 2 > cap)
            return false;
        if (o)
            out[o++] = '.';
        memcpy(out + o, w, wl);
        o += wl;
        if (last)
            break;
    }
    out[o] = '\0';
    return subject_pattern_valid(out, o);
}
