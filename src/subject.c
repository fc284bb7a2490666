/* subject: NATS subject and pattern rules (contract §2).
 * Pure: no I/O, no allocation, no globals. Every function works on
 * (pointer, length) and never reads past `len`. */
#include "herald/subject.h"
#include "herald/utf8.h"

#include <stdint.h>
#include <string.h>

/* Shared validator: `wildcards` allows whole-token '*' and a final '>'. */
static bool validate(const char *str, size_t len, bool wildcards)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t tokens = 1;
    size_t tok_start = 0;
    bool after_gt = false; /* a '>' token was seen: nothing may follow */

    if (s == NULL || len == 0 || len > SUBJECT_MAX_BYTES)
        return false;
    for (size_t i = 0; i <= len;) {
        if (i == len || s[i] == '.') {
            size_t tlen = i - tok_start;
            if (tlen == 0 || after_gt)
                return false;
            if (tlen == 1 && (s[tok_start] == '*' || s[tok_start] == '>')) {
                if (!wildcards)
                    return false;
                if (s[tok_start] == '>')
                    after_gt = true;
            } else {
                /* '*' and '>' inside a longer token make it invalid. */
                if (memchr(s + tok_start, '*', tlen) || memchr(s + tok_start, '>', tlen))
                    return false;
            }
            if (i == len)
                break;
            if (++tokens > SUBJECT_MAX_TOKENS)
                return false;
            i++;
            tok_start = i;
            continue;
        }
        if (s[i] <= 0x20 || s[i] == 0x7f)
            return false;
        uint32_t cp;
        if (!utf8_next(s, len, &i, &cp))
            return false;
    }
    return true;
}

bool subject_valid(const char *s, size_t len)
{
    return validate(s, len, false);
}

bool subject_pattern_valid(const char *s, size_t len)
{
    return validate(s, len, true);
}

/* Token cursor over a valid subject or pattern. */
typedef struct {
    const char *s;   /* whole string */
    size_t len;      /* its length */
    size_t pos;      /* start of the next token; > len when exhausted */
    const char *tok; /* current token */
    size_t tlen;     /* its length */
} tok_iter;

static void tok_init(tok_iter *it, const char *s, size_t len)
{
    it->s = s;
    it->len = len;
    it->pos = 0;
    it->tok = NULL;
    it->tlen = 0;
}

static bool tok_next(tok_iter *it)
{
    if (it->pos > it->len)
        return false;
    const char *start = it->s + it->pos;
    const char *dot = memchr(start, '.', it->len - it->pos);
    size_t tlen = dot ? (size_t)(dot - start) : it->len - it->pos;
    it->tok = start;
    it->tlen = tlen;
    it->pos += tlen + 1;
    return true;
}

static bool tok_is(const tok_iter *it, char c)
{
    return it->tlen == 1 && it->tok[0] == c;
}

bool subject_has_wildcard(const char *pattern, size_t len)
{
    tok_iter it;
    tok_init(&it, pattern, len);
    while (tok_next(&it)) {
        if (tok_is(&it, '*') || tok_is(&it, '>'))
            return true;
    }
    return false;
}

bool subject_matches(const char *pattern, size_t plen, const char *s, size_t slen)
{
    tok_iter p, t;
    tok_init(&p, pattern, plen);
    tok_init(&t, s, slen);
    for (;;) {
        bool hp = tok_next(&p);
        bool ht = tok_next(&t);
        if (!hp || !ht)
            return hp == ht;
        if (tok_is(&p, '>'))
            return true; /* ht: at least one token remains */
        if (tok_is(&p, '*'))
            continue;
        if (p.tlen != t.tlen || memcmp(p.tok, t.tok, p.tlen) != 0)
            return false;
    }
}

bool subject_contains(const char *outer, size_t olen, const char *inner, size_t ilen)
{
    tok_iter o, in;
    tok_init(&o, outer, olen);
    tok_init(&in, inner, ilen);
    for (;;) {
        bool ho = tok_next(&o);
        bool hi = tok_next(&in);
        if (!ho || !hi)
            return ho == hi;
        if (tok_is(&o, '>'))
            return true; /* inner has >= 1 token left, whatever it is */
        if (tok_is(&in, '>'))
            return false; /* inner covers any depth, outer a fixed one */
        if (tok_is(&o, '*'))
            continue; /* covers a literal or '*' */
        if (tok_is(&in, '*'))
            return false; /* a literal cannot cover every token */
        if (o.tlen != in.tlen || memcmp(o.tok, in.tok, o.tlen) != 0)
            return false;
    }
}

bool subject_intersects(const char *a, size_t alen, const char *b, size_t blen)
{
    tok_iter x, y;
    tok_init(&x, a, alen);
    tok_init(&y, b, blen);
    for (;;) {
        bool hx = tok_next(&x);
        bool hy = tok_next(&y);
        if (!hx || !hy)
            return hx == hy;
        if (tok_is(&x, '>') || tok_is(&y, '>'))
            return true; /* the other has a token here, and '>' takes any rest */
        if (tok_is(&x, '*') || tok_is(&y, '*'))
            continue;
        if (x.tlen != y.tlen || memcmp(x.tok, y.tok, x.tlen) != 0)
            return false;
    }
}

/* Unicode White_Space outside ASCII, plus invisible characters rejected as
 * a precaution (U+180E was White_Space before Unicode 6.3; U+200B, U+2060 and
 * U+FEFF are zero-width and would make look-alike subjects). */
static bool cp_forbidden(uint32_t cp)
{
    if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f))
        return true; /* C0, DEL, C1 (U+0085 NEL included) */
    switch (cp) {
    case ' ':
    case '.':
    case '*':
    case '>':
    case 0x00a0:
    case 0x1680:
    case 0x180e:
    case 0x2028:
    case 0x2029:
    case 0x202f:
    case 0x205f:
    case 0x2060:
    case 0x3000:
    case 0xfeff:
        return true;
    default:
        break;
    }
    return cp >= 0x2000 && cp <= 0x200b; /* U+2000-U+200A spaces, U+200B ZWSP */
}

bool subject_placeholder_value_valid(const char *v, size_t len)
{
    const unsigned char *s = (const unsigned char *)v;
    if (s == NULL || len == 0 || len > PLACEHOLDER_VALUE_MAX)
        return false;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        if (!utf8_next(s, len, &i, &cp) || cp_forbidden(cp))
            return false;
    }
    return true;
}
