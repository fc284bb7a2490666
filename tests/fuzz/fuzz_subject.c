/* Fuzz target: subject and pattern rules (subject.h), differential against
 * the plain reference below. Input: pattern/subject A, '\n', B.
 * Validation, matching, containment and intersection are each compared with
 * a definition written for obviousness, not speed. */
#include "fuzz.h"

#include "herald/subject.h"

#define REF_MAX_TOKENS 80

typedef struct {
    const char *p[REF_MAX_TOKENS];
    size_t n[REF_MAX_TOKENS];
    size_t count;
} toks;

/* Split at '.'; false when there are too many tokens for the reference. */
static bool split(const char *s, size_t len, toks *t)
{
    t->count = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '.') {
            if (t->count == REF_MAX_TOKENS)
                return false;
            t->p[t->count] = s + start;
            t->n[t->count] = i - start;
            t->count++;
            start = i + 1;
        }
    }
    return true;
}

static bool tok_eq(const toks *a, size_t i, const toks *b, size_t j)
{
    return a->n[i] == b->n[j] && memcmp(a->p[i], b->p[j], a->n[i]) == 0;
}

static bool is_tok(const toks *t, size_t i, char c)
{
    return t->n[i] == 1 && t->p[i][0] == c;
}

/* UTF-8 per RFC 3629's table of well-formed byte sequences. */
static bool ref_utf8(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t need;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c < 0x80)
            need = 0;
        else if (c >= 0xC2 && c <= 0xDF)
            need = 1;
        else if (c == 0xE0)
            need = 2, lo = 0xA0;
        else if (c >= 0xE1 && c <= 0xEC)
            need = 2;
        else if (c == 0xED)
            need = 2, hi = 0x9F;
        else if (c >= 0xEE && c <= 0xEF)
            need = 2;
        else if (c == 0xF0)
            need = 3, lo = 0x90;
        else if (c >= 0xF1 && c <= 0xF3)
            need = 3;
        else if (c == 0xF4)
            need = 3, hi = 0x8F;
        else
            return false;
        if (len - i - 1 < need)
            return false;
        for (size_t k = 1; k <= need; k++) {
            unsigned char b = s[i + k];
            if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF))
                return false;
        }
        i += need + 1;
    }
    return true;
}

static bool ref_valid(const char *s, size_t len, bool wildcards)
{
    if (len == 0 || len > SUBJECT_MAX_BYTES || !ref_utf8((const unsigned char *)s, len))
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
            return false;
    toks t;
    if (!split(s, len, &t) || t.count > SUBJECT_MAX_TOKENS)
        return false;
    for (size_t i = 0; i < t.count; i++) {
        if (t.n[i] == 0)
            return false;
        bool star = is_tok(&t, i, '*'), gt = is_tok(&t, i, '>');
        if ((star || gt) && !wildcards)
            return false;
        if (gt && i != t.count - 1)
            return false;
        if (!star && !gt && (memchr(t.p[i], '*', t.n[i]) || memchr(t.p[i], '>', t.n[i])))
            return false;
    }
    return true;
}

/* NATS matching, token by token. */
static bool ref_match(const toks *p, const toks *s)
{
    for (size_t i = 0; i < p->count; i++) {
        if (is_tok(p, i, '>'))
            return s->count > i;
        if (i >= s->count)
            return false;
        if (!is_tok(p, i, '*') && !tok_eq(p, i, s, i))
            return false;
    }
    return p->count == s->count;
}

/* Candidate subjects: at each position a literal token of either pattern at
 * that position, or a token neither has. Matching is positional, so if some
 * subject tells the patterns apart, one of these does. */
typedef struct {
    const toks *a, *b;
    const char *fresh;
    size_t fresh_len;
    toks cur;
    int want; /* 0: intersects (both match), 1: a contains b (b matches, a not) */
} search;

static bool enumerate(search *st, size_t depth, size_t total)
{
    if (depth == total) {
        st->cur.count = total;
        bool ma = ref_match(st->a, &st->cur), mb = ref_match(st->b, &st->cur);
        return st->want == 0 ? (ma && mb) : (mb && !ma);
    }
    const toks *src[2] = {st->a, st->b};
    for (int k = 0; k < 2; k++) {
        const toks *t = src[k];
        if (depth < t->count && !is_tok(t, depth, '*') && !is_tok(t, depth, '>')) {
            st->cur.p[depth] = t->p[depth];
            st->cur.n[depth] = t->n[depth];
            if (enumerate(st, depth + 1, total))
                return true;
        }
    }
    st->cur.p[depth] = st->fresh;
    st->cur.n[depth] = st->fresh_len;
    return enumerate(st, depth + 1, total);
}

/* Is there a candidate subject with the property `want`? */
static bool exists(const toks *a, const toks *b, int want)
{
    static char fresh[SUBJECT_MAX_BYTES + 2];
    memset(fresh, 'z', sizeof fresh); /* longer than any token: equal to none */
    search st = {a, b, fresh, sizeof fresh, {.count = 0}, want};
    size_t max = (a->count > b->count ? a->count : b->count) + 1;
    for (size_t len = 1; len <= max; len++)
        if (enumerate(&st, 0, len))
            return true;
    return false;
}

/* The brute-force search is exponential in the token count (3^n). */
#define SMALL 6

static void check_pair(const char *a, size_t alen, const char *b, size_t blen)
{
    bool a_pat = subject_pattern_valid(a, alen), b_pat = subject_pattern_valid(b, blen);
    bool b_sub = subject_valid(b, blen);
    toks ta, tb;
    if (a_pat && b_sub) {
        FZ_CHECK(split(a, alen, &ta) && split(b, blen, &tb));
        FZ_CHECK(subject_matches(a, alen, b, blen) == ref_match(&ta, &tb));
    }
    if (!a_pat || !b_pat)
        return;
    FZ_CHECK(split(a, alen, &ta) && split(b, blen, &tb));
    bool contains = subject_contains(a, alen, b, blen);
    bool inter = subject_intersects(a, alen, b, blen);
    FZ_CHECK(inter == subject_intersects(b, blen, a, alen));
    if (ta.count <= SMALL && tb.count <= SMALL) {
        FZ_CHECK(contains == !exists(&ta, &tb, 1));
        FZ_CHECK(inter == exists(&ta, &tb, 0));
    }
    /* Containment implies intersection (every pattern matches something). */
    if (contains)
        FZ_CHECK(inter);
    FZ_CHECK(subject_contains(a, alen, a, alen));
}

static void check_one(const char *s, size_t len)
{
    bool sub = subject_valid(s, len), pat = subject_pattern_valid(s, len);
    FZ_CHECK(sub == ref_valid(s, len, false));
    FZ_CHECK(pat == ref_valid(s, len, true));
    FZ_CHECK(!sub || pat);
    if (pat) {
        bool wild = memchr(s, '*', len) || memchr(s, '>', len);
        FZ_CHECK(subject_has_wildcard(s, len) == wild);
        FZ_CHECK(sub == !wild);
    }
    bool ph = subject_placeholder_value_valid(s, len);
    if (ph) {
        /* A placeholder value is one token of any subject. */
        FZ_CHECK(len > 0 && len <= PLACEHOLDER_VALUE_MAX);
        FZ_CHECK(subject_valid(s, len));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = fz_make(data, size);
    const char *a, *b;
    size_t alen, blen;
    fz_field(&in, '\n', &a, &alen);
    fz_field(&in, '\n', &b, &blen);
    /* Exact-size copies, so reading past a field is an ASan error. */
    char *ca = fz_memdup(a, alen), *cb = fz_memdup(b, blen);
    check_one(ca, alen);
    check_one(cb, blen);
    check_pair(ca, alen, cb, blen);
    check_pair(cb, blen, ca, alen);
    free(ca);
    free(cb);
    return 0;
}
