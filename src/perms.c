/* perms: the subject-permission table (contract §2).
 * A perms_table holds each role's four pattern lists as parsed templates
 * (text and placeholder segments). perms_set_new expands them once for one
 * principal into a single text buffer; the checks then only compare tokens
 * and never allocate.
 * Pure: no I/O, no globals. */
#include "herald/perms.h"
#include "herald/jsontext.h"
#include "herald/subject.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROLE_NAME_MAX 64
#define PATH_MAX_LEN  512

/* The four lists of a role, in this order everywhere. */
enum { L_SUB_ALLOW, L_SUB_DENY, L_PUB_ALLOW, L_PUB_DENY, L_COUNT };

static const char *const section_names[2] = {"subscribe", "publish"};

/* One segment of a pattern template. */
typedef struct {
    bool claim;       /* false: literal text; true: claim lookup */
    const char *text; /* literal bytes, or the dotted claim path ("sub", "org.id") */
    size_t len;       /* their length */
} tpl_seg;

/* One configured pattern. */
typedef struct {
    char *raw;     /* owned copy of the configured string */
    size_t len;    /* its length */
    tpl_seg *segs; /* owned; point into raw */
    size_t nsegs;  /* number of segments (>= 1) */
} tpl;

typedef struct {
    tpl *v;   /* owned array */
    size_t n; /* entries */
} tpl_list;

typedef struct {
    char *name;              /* owned role name */
    tpl_list lists[L_COUNT]; /* subscribe/publish × allow/deny */
} role;

struct perms_table {
    role *roles;   /* owned array, in configuration order */
    size_t nroles; /* entries */
};

/* An expanded pattern inside perms_set.text. */
typedef struct {
    size_t off; /* offset into text */
    size_t len; /* length */
} set_pat;

/* One granted role: list k is pats[first[k] .. first[k + 1]). */
typedef struct {
    size_t first[L_COUNT + 1];
} set_role;

struct perms_set {
    char *text;      /* owned: all expanded patterns, back to back */
    set_pat *pats;   /* owned */
    set_role *roles; /* owned */
    size_t nroles;   /* entries in roles */
};

/* ---- table construction ------------------------------------------------ */

/* State for one perms_table_new call. */
typedef struct {
    perms_report_fn report; /* may be NULL */
    void *ctx;              /* for report */
    int problems;           /* reported so far */
} builder;

static void problem(builder *b, const char *path, const char *msg)
{
    b->problems++;
    if (b->report)
        b->report(b->ctx, path, msg);
}

static bool role_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > ROLE_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (i > 0)
            ok = ok || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* A claim path: one or more non-empty segments separated by '.', no
 * whitespace, control bytes, braces. */
static bool claim_path_valid(const char *s, size_t len)
{
    if (len == 0 || s[0] == '.' || s[len - 1] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f || c == '{' || c == '}')
            return false;
        if (c == '.' && s[i + 1] == '.')
            return false;
    }
    return true;
}

static void tpl_clear(tpl *t)
{
    free(t->raw);
    free(t->segs);
}

/* Parse and validate one pattern into *out. Problems are reported at `path`;
 * returns 0 on success, 1 on a reported problem, -1 on allocation failure. */
static int tpl_parse(builder *b, const char *path, const char *src, size_t len, tpl *out)
{
    memset(out, 0, sizeof *out);
    size_t nph = 0;
    for (size_t i = 0; i < len; i++)
        nph += src[i] == '{';

    out->raw = malloc(len + 1);
    out->segs = calloc(2 * nph + 1, sizeof *out->segs);
    char *probe = malloc(len + 1); /* pattern with each placeholder replaced by "x" */
    if (!out->raw || !out->segs || !probe)
        goto nomem;
    memcpy(out->raw, src, len);
    out->raw[len] = '\0';
    out->len = len;

    const char *r = out->raw;
    size_t plen = 0;
    size_t lit_start = 0;
    bool bad = false;
    for (size_t i = 0; i < len;) {
        if (r[i] == '}') {
            problem(b, path, "unmatched '}'");
            bad = true;
            break;
        }
        if (r[i] != '{') {
            probe[plen++] = r[i++];
            continue;
        }
        const char *close = memchr(r + i, '}', len - i);
        if (!close) {
            problem(b, path, "unterminated placeholder");
            bad = true;
            break;
        }
        const char *in = r + i + 1;
        size_t inlen = (size_t)(close - in);
        char msg[96];
        const char *name = NULL;
        size_t namelen = 0;
        if (inlen == 3 && memcmp(in, "sub", 3) == 0) {
            name = in;
            namelen = 3;
        } else if (inlen >= 6 && memcmp(in, "claim:", 6) == 0 && !memchr(in, '{', inlen)) {
            if (!claim_path_valid(in + 6, inlen - 6)) {
                snprintf(msg, sizeof msg, "invalid claim name {%.*s}",
                         (int)(inlen > 64 ? 64 : inlen), in);
                problem(b, path, msg);
                bad = true;
                break;
            }
            name = in + 6;
            namelen = inlen - 6;
        } else {
            snprintf(msg, sizeof msg, "unknown placeholder {%.*s}", (int)(inlen > 64 ? 64 : inlen),
                     in);
            problem(b, path, msg);
            bad = true;
            break;
        }
        if (i > lit_start)
            out->segs[out->nsegs++] = (tpl_seg){false, r + lit_start, i - lit_start};
        out->segs[out->nsegs++] = (tpl_seg){true, name, namelen};
        probe[plen++] = 'x';
        i = (size_t)(close - r) + 1;
        lit_start = i;
    }
    if (!bad) {
        if (lit_start < len || out->nsegs == 0)
            out->segs[out->nsegs++] = (tpl_seg){false, r + lit_start, len - lit_start};
        /* A placeholder value is one or more bytes with no '.', '*', '>' or
         * space, so if "x" fits, every valid value fits (up to length). */
        if (!subject_pattern_valid(probe, plen)) {
            problem(b, path, "invalid pattern");
            bad = true;
        }
    }
    free(probe);
    if (bad) {
        tpl_clear(out);
        memset(out, 0, sizeof *out);
        return 1;
    }
    return 0;

nomem:
    free(probe);
    tpl_clear(out);
    memset(out, 0, sizeof *out);
    return -1;
}

/* Compile one "allow"/"deny" array; returns -1 only on allocation failure. */
static int list_build(builder *b, const char *path, const json_t *arr, tpl_list *out)
{
    out->v = NULL;
    out->n = 0;
    if (!json_is_array(arr)) {
        problem(b, path, "must be an array of strings");
        return 0;
    }
    size_t n = json_array_size(arr);
    if (n == 0)
        return 0;
    out->v = calloc(n, sizeof *out->v);
    if (!out->v)
        return -1;
    size_t idx;
    const json_t *item;
    json_array_foreach(arr, idx, item)
    {
        char ipath[PATH_MAX_LEN];
        snprintf(ipath, sizeof ipath, "%s[%zu]", path, idx);
        if (!json_is_string(item)) {
            problem(b, ipath, "must be a string");
            continue;
        }
        int rc =
            tpl_parse(b, ipath, json_string_value(item), json_string_length(item), &out->v[out->n]);
        if (rc < 0)
            return -1;
        if (rc == 0)
            out->n++;
    }
    return 0;
}

/* Compile {allow, deny} of one section into lists[0..1]. */
static int section_build(builder *b, const char *path, const json_t *obj, tpl_list *lists)
{
    if (!json_is_object(obj)) {
        problem(b, path, "must be an object");
        return 0;
    }
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)obj, key, val)
    {
        char kpath[PATH_MAX_LEN];
        snprintf(kpath, sizeof kpath, "%s.%s", path, key);
        int k = strcmp(key, "allow") == 0 ? 0 : strcmp(key, "deny") == 0 ? 1 : -1;
        if (k < 0) {
            problem(b, kpath, "unknown key");
            continue;
        }
        if (list_build(b, kpath, val, &lists[k]) < 0)
            return -1;
    }
    return 0;
}

static void role_clear(role *r)
{
    free(r->name);
    for (int k = 0; k < L_COUNT; k++) {
        for (size_t i = 0; i < r->lists[k].n; i++)
            tpl_clear(&r->lists[k].v[i]);
        free(r->lists[k].v);
    }
}

static int role_build(builder *b, const char *name, const json_t *obj, role *out)
{
    memset(out, 0, sizeof *out);
    if (!role_name_valid(name))
        problem(b, name, "invalid role name");
    out->name = strdup(name);
    if (!out->name)
        return -1;
    if (!json_is_object(obj)) {
        problem(b, name, "must be an object");
        return 0;
    }
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)obj, key, val)
    {
        char kpath[PATH_MAX_LEN];
        snprintf(kpath, sizeof kpath, "%s.%s", name, key);
        int sec = strcmp(key, section_names[0]) == 0   ? 0
                  : strcmp(key, section_names[1]) == 0 ? 1
                                                       : -1;
        if (sec < 0) {
            problem(b, kpath, "unknown key");
            continue;
        }
        if (section_build(b, kpath, val, &out->lists[2 * sec]) < 0)
            return -1;
    }
    return 0;
}

hr_status perms_table_new(perms_table **out, const json_t *roles, perms_report_fn report, void *ctx)
{
    *out = NULL;
    builder b = {report, ctx, 0};
    json_t *owned = NULL;
    perms_table *t = NULL;

    if (roles == NULL) {
        owned = json_pack("{s:{s:{s:[s]}}}", "anonymous", "subscribe", "allow", "public.>");
        if (!owned)
            goto nomem;
        roles = owned;
    }
    if (!json_is_object(roles)) {
        problem(&b, "", "must be an object");
        return HR_ERR_INVALID;
    }
    t = calloc(1, sizeof *t);
    if (!t)
        goto nomem;
    size_t n = json_object_size(roles);
    if (n > 0) {
        t->roles = calloc(n, sizeof *t->roles);
        if (!t->roles)
            goto nomem;
    }
    const char *name;
    const json_t *val;
    json_object_foreach((json_t *)roles, name, val)
    {
        int rc = role_build(&b, name, val, &t->roles[t->nroles]);
        t->nroles++; /* counted even on failure so that it is freed */
        if (rc < 0)
            goto nomem;
    }
    json_decref(owned);
    if (b.problems > 0) {
        perms_table_free(t);
        return HR_ERR_INVALID;
    }
    *out = t;
    return HR_OK;

nomem:
    json_decref(owned);
    perms_table_free(t);
    problem(&b, "", "out of memory");
    return HR_ERR_NOMEM;
}

void perms_table_free(perms_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nroles; i++)
        role_clear(&t->roles[i]);
    free(t->roles);
    free(t);
}

static const role *table_find(const perms_table *t, const char *name)
{
    if (!t || !name)
        return NULL;
    for (size_t i = 0; i < t->nroles; i++) {
        if (strcmp(t->roles[i].name, name) == 0)
            return &t->roles[i];
    }
    return NULL;
}

bool perms_table_has_role(const perms_table *t, const char *name)
{
    return table_find(t, name) != NULL;
}

/* ---- per-principal expansion -------------------------------------------- */

/* Growing byte buffer for perms_set.text. */
typedef struct {
    char *p;
    size_t len;
    size_t cap;
} textbuf;

static bool tb_append(textbuf *tb, const char *s, size_t n)
{
    if (tb->cap - tb->len < n) {
        size_t cap = tb->cap ? tb->cap : 256;
        while (cap - tb->len < n)
            cap *= 2;
        char *np = realloc(tb->p, cap);
        if (!np)
            return false;
        tb->p = np;
        tb->cap = cap;
    }
    memcpy(tb->p + tb->len, s, n);
    tb->len += n;
    return true;
}

/* Follow a dotted claim path through nested objects. */
static const json_t *claim_lookup(const json_t *claims, const char *path, size_t len)
{
    const json_t *cur = claims;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && path[i] != '.')
            continue;
        if (!json_is_object(cur))
            return NULL;
        cur = json_object_getn(cur, path + start, i - start);
        if (!cur)
            return NULL;
        start = i + 1;
    }
    return cur;
}

/* The text of a claim used as a placeholder value (jsontext's scalar rule),
 * if it is a valid placeholder value. `buf` holds number text. */
static bool claim_text(const json_t *v, char buf[JT_INT_TEXT_MAX], const char **out, size_t *outlen)
{
    return jt_scalar_text(v, buf, out, outlen) && subject_placeholder_value_valid(*out, *outlen);
}

/* Expand one template onto tb. Returns false if it matches nothing (then
 * tb is rolled back). */
static bool tpl_expand(const tpl *t, const json_t *claims, textbuf *tb, bool *nomem)
{
    size_t mark = tb->len;
    for (size_t i = 0; i < t->nsegs; i++) {
        const tpl_seg *sg = &t->segs[i];
        const char *s = sg->text;
        size_t n = sg->len;
        char num[JT_INT_TEXT_MAX];
        if (sg->claim) {
            const json_t *v = claims ? claim_lookup(claims, sg->text, sg->len) : NULL;
            if (!v || !claim_text(v, num, &s, &n))
                goto drop;
        }
        if (!tb_append(tb, s, n)) {
            *nomem = true;
            goto drop;
        }
    }
    /* Values cannot add tokens or wildcards, but may exceed 1024 bytes. */
    if (subject_pattern_valid(tb->p + mark, tb->len - mark))
        return true;
drop:
    tb->len = mark;
    return false;
}

perms_set *perms_set_new(const perms_table *t, const char *const *roles, size_t nroles,
                         const json_t *claims)
{
    perms_set *s = calloc(1, sizeof *s);
    textbuf tb = {NULL, 0, 0};
    size_t npats = 0, cap = 0;
    if (!s)
        return NULL;
    if (nroles > 0) {
        s->roles = calloc(nroles, sizeof *s->roles);
        if (!s->roles)
            goto nomem;
    }
    for (size_t ri = 0; ri < nroles; ri++) {
        const role *r = table_find(t, roles[ri]);
        bool dup = false;
        for (size_t j = 0; j < ri && r; j++)
            dup = dup || (roles[j] && strcmp(roles[j], roles[ri]) == 0);
        if (!r || dup)
            continue;
        set_role *sr = &s->roles[s->nroles++];
        for (int k = 0; k < L_COUNT; k++) {
            sr->first[k] = npats;
            for (size_t i = 0; i < r->lists[k].n; i++) {
                if (npats == cap) {
                    size_t ncap = cap ? cap * 2 : 16;
                    set_pat *np = realloc(s->pats, ncap * sizeof *np);
                    if (!np)
                        goto nomem;
                    s->pats = np;
                    cap = ncap;
                }
                size_t off = tb.len;
                bool nomem = false;
                if (tpl_expand(&r->lists[k].v[i], claims, &tb, &nomem))
                    s->pats[npats++] = (set_pat){off, tb.len - off};
                else if (nomem)
                    goto nomem;
            }
        }
        sr->first[L_COUNT] = npats;
    }
    s->text = tb.p;
    return s;

nomem:
    free(tb.p);
    perms_set_free(s);
    return NULL;
}

void perms_set_free(perms_set *s)
{
    if (!s)
        return;
    free(s->text);
    free(s->pats);
    free(s->roles);
    free(s);
}

/* ---- checks (no allocation) --------------------------------------------- */

static bool any_contains(const perms_set *s, const set_role *r, int k, const char *p, size_t len)
{
    for (size_t i = r->first[k]; i < r->first[k + 1]; i++) {
        const set_pat *sp = &s->pats[i];
        if (subject_contains(s->text + sp->off, sp->len, p, len))
            return true;
    }
    return false;
}

static bool any_matches(const perms_set *s, const set_role *r, int k, const char *subj, size_t len)
{
    for (size_t i = r->first[k]; i < r->first[k + 1]; i++) {
        const set_pat *sp = &s->pats[i];
        if (subject_matches(s->text + sp->off, sp->len, subj, len))
            return true;
    }
    return false;
}

bool perms_can_subscribe(const perms_set *s, const char *pattern, size_t len)
{
    if (!s || !subject_pattern_valid(pattern, len))
        return false;
    for (size_t i = 0; i < s->nroles; i++) {
        const set_role *r = &s->roles[i];
        if (any_contains(s, r, L_SUB_ALLOW, pattern, len) &&
            !any_contains(s, r, L_SUB_DENY, pattern, len))
            return true;
    }
    return false;
}

static bool any_intersects(const perms_set *s, const set_role *r, int k, const char *p, size_t len)
{
    for (size_t i = r->first[k]; i < r->first[k + 1]; i++) {
        const set_pat *sp = &s->pats[i];
        if (subject_intersects(s->text + sp->off, sp->len, p, len))
            return true;
    }
    return false;
}

bool perms_deliver_all(const perms_set *s, const char *pattern, size_t len)
{
    if (!s || !subject_pattern_valid(pattern, len))
        return false;
    for (size_t i = 0; i < s->nroles; i++) {
        const set_role *r = &s->roles[i];
        if (any_contains(s, r, L_SUB_ALLOW, pattern, len) &&
            !any_intersects(s, r, L_SUB_DENY, pattern, len))
            return true;
    }
    return false;
}

static bool literal_allowed(const perms_set *s, int allow, const char *subj, size_t len)
{
    if (!s || !subject_valid(subj, len))
        return false;
    for (size_t i = 0; i < s->nroles; i++) {
        const set_role *r = &s->roles[i];
        if (any_matches(s, r, allow, subj, len) && !any_matches(s, r, allow + 1, subj, len))
            return true;
    }
    return false;
}

bool perms_can_deliver(const perms_set *s, const char *subject, size_t len)
{
    return literal_allowed(s, L_SUB_ALLOW, subject, len);
}

bool perms_can_publish(const perms_set *s, const char *subject, size_t len)
{
    return literal_allowed(s, L_PUB_ALLOW, subject, len);
}
