/* Unit tests for subject.c: validation, matching, containment and the
 * placeholder-value rule. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "herald/subject.h"

#define S(x) (x), strlen(x)

static bool sv(const char *s)
{
    return subject_valid(s, strlen(s));
}

static bool pv(const char *s)
{
    return subject_pattern_valid(s, strlen(s));
}

static bool match(const char *p, const char *s)
{
    return subject_matches(S(p), S(s));
}

static bool contains(const char *o, const char *i)
{
    return subject_contains(S(o), S(i));
}

static bool phv(const char *v)
{
    return subject_placeholder_value_valid(v, strlen(v));
}

/* ---- validation ---------------------------------------------------------- */

static void test_valid_basic(void **state)
{
    (void)state;
    const char *ok[] = {"a",   "a.b",   "foo.bar.baz", "A-b_c.9", "a.b.c.d.e", "ü.日本",
                        "x.😀", "a{.}b", "#.$.%",       "a:b",     "-"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        assert_true(sv(ok[i]));
        assert_true(pv(ok[i]));
    }
    const char *bad[] = {"",     ".",    "a.",     ".a",    "a..b", "a b", "a\tb", "a\nb",
                         "a\rb", "\x7f", "a.\x01", "a\x1f", " ",    "a. ", "..",   "a.b."};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_false(sv(bad[i]));
        assert_false(pv(bad[i]));
    }
    assert_false(subject_valid(NULL, 0));
    assert_false(subject_pattern_valid(NULL, 0));
}

static void test_valid_nul_byte(void **state)
{
    (void)state;
    assert_false(subject_valid("a\0b", 3));
    assert_false(subject_pattern_valid("a\0b", 3));
    assert_false(subject_valid("a.\0", 3));
    /* the length is honoured: "a.b" within a longer buffer */
    assert_true(subject_valid("a.b.c", 3));
    assert_false(subject_valid("a.b.c", 2)); /* "a." */
}

static void test_wildcards(void **state)
{
    (void)state;
    /* whole-token wildcards: patterns only */
    const char *pat_ok[] = {"*", ">", "a.*", "a.>", "*.b", "*.*", "a.*.c", "a.*.>", "*.>", "*.*.>"};
    for (size_t i = 0; i < sizeof pat_ok / sizeof *pat_ok; i++) {
        assert_true(pv(pat_ok[i]));
        assert_false(sv(pat_ok[i]));
    }
    /* wildcard characters inside tokens, or '>' not last: invalid everywhere */
    const char *bad[] = {"foo*", "*foo", "f*o",  "a.b*", "a.>b", ">a", "a.>.b", ">.a", ">.>",
                         "a.**", "a.>>", "a.*>", "a.>*", "**",   ">>", "a.b>",  ">.*"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_false(pv(bad[i]));
        assert_false(sv(bad[i]));
    }
    assert_true(subject_has_wildcard(S("*")));
    assert_true(subject_has_wildcard(S(">")));
    assert_true(subject_has_wildcard(S("a.*.c")));
    assert_true(subject_has_wildcard(S("a.b.>")));
    assert_false(subject_has_wildcard(S("a.b.c")));
    assert_false(subject_has_wildcard(S("a")));
}

/* Build "t.t.t..." with n tokens of `tok`. */
static size_t build_tokens(char *buf, size_t n, const char *tok)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf[len++] = '.';
        len += (size_t)sprintf(buf + len, "%s", tok);
    }
    buf[len] = '\0';
    return len;
}

static void test_limits(void **state)
{
    (void)state;
    char buf[4096];
    size_t len;

    len = build_tokens(buf, 64, "a");
    assert_true(subject_valid(buf, len));
    assert_true(subject_pattern_valid(buf, len));
    len = build_tokens(buf, 65, "a");
    assert_false(subject_valid(buf, len));
    assert_false(subject_pattern_valid(buf, len));

    /* 64 tokens ending in '>' is fine, 65 not */
    len = build_tokens(buf, 63, "*");
    memcpy(buf + len, ".>", 3);
    assert_true(subject_pattern_valid(buf, len + 2));
    len = build_tokens(buf, 64, "*");
    memcpy(buf + len, ".>", 3);
    assert_false(subject_pattern_valid(buf, len + 2));

    /* exactly 1024 bytes: one token */
    memset(buf, 'x', 1025);
    assert_true(subject_valid(buf, 1024));
    assert_false(subject_valid(buf, 1025));
    assert_false(subject_pattern_valid(buf, 1025));

    /* exactly 1024 bytes over 64 tokens (15 + '.' each, last one 79) */
    len = build_tokens(buf, 64, "aaaaaaaaaaaaaaa");
    assert_int_equal(len, 64 * 16 - 1);
    buf[len++] = 'b';
    assert_int_equal(len, 1024);
    assert_true(subject_valid(buf, len));
    buf[len++] = 'b';
    assert_false(subject_valid(buf, len));

    /* multi-byte characters count as bytes: 341 × 3 bytes + 1 = 1024 */
    len = 0;
    for (int i = 0; i < 341; i++) {
        memcpy(buf + len, "\xe2\x82\xac", 3); /* U+20AC */
        len += 3;
    }
    buf[len++] = 'e';
    assert_true(subject_valid(buf, len));
    buf[len++] = 'e';
    assert_false(subject_valid(buf, len));
}

static void test_utf8(void **state)
{
    (void)state;
    /* valid: 2, 3 and 4 byte forms at their bounds */
    assert_true(sv("\xc2\x80"));         /* U+0080 (a C1 control: allowed in subjects) */
    assert_true(sv("\xdf\xbf"));         /* U+07FF */
    assert_true(sv("\xe0\xa0\x80"));     /* U+0800 */
    assert_true(sv("\xed\x9f\xbf"));     /* U+D7FF */
    assert_true(sv("\xee\x80\x80"));     /* U+E000 */
    assert_true(sv("\xef\xbf\xbf"));     /* U+FFFF */
    assert_true(sv("\xf0\x90\x80\x80")); /* U+10000 */
    assert_true(sv("\xf4\x8f\xbf\xbf")); /* U+10FFFF */
    assert_true(sv("a.\xc3\xa9.b"));

    /* overlong */
    assert_false(sv("\xc0\xae"));             /* '.' */
    assert_false(sv("\xc1\xbf"));             /* 0x7f */
    assert_false(sv("\xe0\x80\xae"));         /* '.' */
    assert_false(sv("\xe0\x9f\xbf"));         /* U+07FF in 3 bytes */
    assert_false(sv("\xf0\x80\x80\xae"));     /* '.' in 4 bytes */
    assert_false(sv("\xf0\x8f\xbf\xbf"));     /* U+FFFF in 4 bytes */
    assert_false(sv("\xc0\xaa"));             /* '*' */
    assert_false(sv("\xe0\x80\xbe"));         /* '>' */
    assert_false(sv("\xc0\xa0"));             /* ' ' */
    assert_false(sv("\xf8\x88\x80\x80\x80")); /* 5-byte form */
    assert_false(sv("\xfc\x84\x80\x80\x80\x80"));
    /* surrogates */
    assert_false(sv("\xed\xa0\x80")); /* U+D800 */
    assert_false(sv("\xed\xbf\xbf")); /* U+DFFF */
    assert_false(sv("\xed\xa0\xbd\xed\xb8\x80"));
    /* above U+10FFFF */
    assert_false(sv("\xf4\x90\x80\x80"));
    assert_false(sv("\xf5\x80\x80\x80"));
    assert_false(sv("\xff"));
    assert_false(sv("\xfe"));
    /* stray continuation, truncated sequences */
    assert_false(sv("\x80"));
    assert_false(sv("a\xbf"));
    assert_false(sv("\xc3"));
    assert_false(sv("\xc3.a")); /* '.' is not a continuation byte */
    assert_false(sv("\xe2\x82"));
    assert_false(sv("\xe2\x82.a"));
    assert_false(sv("\xf0\x9f\x98"));
    assert_false(sv("\xc3\xc3\xa9"));
    /* truncated by len */
    assert_false(subject_valid("\xe2\x82\xac", 2));
    assert_true(subject_valid("\xe2\x82\xac", 3));
    /* patterns validate UTF-8 the same way */
    assert_false(pv("a.*.\xc0\xae"));
    assert_true(pv("\xc3\xa9.*.>"));
}

/* ---- matching ------------------------------------------------------------ */

static void test_matches(void **state)
{
    (void)state;
    assert_true(match("a", "a"));
    assert_true(match("a.b.c", "a.b.c"));
    assert_false(match("a.b.c", "a.b"));
    assert_false(match("a.b", "a.b.c"));
    assert_false(match("a.b", "a.c"));
    assert_false(match("ab", "a"));
    assert_false(match("a", "ab"));

    assert_true(match("*", "a"));
    assert_false(match("*", "a.b"));
    assert_true(match("a.*", "a.b"));
    assert_false(match("a.*", "a"));
    assert_false(match("a.*", "a.b.c"));
    assert_true(match("*.b", "a.b"));
    assert_true(match("a.*.c", "a.x.c"));
    assert_false(match("a.*.c", "a.x.d"));
    assert_true(match("*.*", "x.y"));

    assert_true(match(">", "a"));
    assert_true(match(">", "a.b.c"));
    assert_true(match("a.>", "a.b"));
    assert_true(match("a.>", "a.b.c.d"));
    assert_false(match("a.>", "a")); /* '>' needs at least one token */
    assert_false(match("a.>", "b.c"));
    assert_true(match("a.*.>", "a.b.c"));
    assert_false(match("a.*.>", "a.b"));

    /* the contract's deny example */
    assert_false(match("deployments.*.internal.>", "deployments.u42.internal"));
    assert_true(match("deployments.*.internal.>", "deployments.u42.internal.x"));
    assert_true(match("deployments.*.internal", "deployments.u42.internal"));
    assert_false(match("deployments.*.internal", "deployments.u42.internal.x"));

    /* prefix tricks */
    assert_false(match("public.>", "publicity.x"));
    assert_false(match("pub.>", "public.x"));
    assert_false(match("a.b", "a.bc"));
    assert_true(match("ü.*", "ü.日本"));
}

/* ---- containment --------------------------------------------------------- */

static void test_contains_matrix(void **state)
{
    (void)state;
    /* rows: outer; columns: inner; 1 = outer contains inner */
    static const char *const pats[] = {">",     "*",     "a",     "a.b",   "a.*",   "a.>",
                                       "a.b.c", "a.*.c", "a.b.>", "a.*.*", "a.*.>", "*.b",
                                       "*.>",   "b.>",   "*.*",   "*.*.>"};
    enum { N = sizeof pats / sizeof *pats };
    static const char expect[N][N + 1] = {
        /*            >  *  a  ab a* a> abc a*c ab> a** a*> *b *> b> ** **> */
        /* >     */ "1111111111111111",
        /* *     */ "0110000000000000",
        /* a     */ "0010000000000000",
        /* a.b   */ "0001000000000000",
        /* a.*   */ "0001100000000000",
        /* a.>   */ "0001111111100000",
        /* a.b.c */ "0000001000000000",
        /* a.*.c */ "0000001100000000",
        /* a.b.> */ "0000001010000000",
        /* a.*.* */ "0000001101000000",
        /* a.*.> */ "0000001111100000",
        /* *.b   */ "0001000000010000",
        /* *.>   */ "0001111111111111",
        /* b.>   */ "0000000000000100",
        /* *.*   */ "0001100000010010",
        /* *.*.> */ "0000001111100001",
    };
    for (size_t o = 0; o < N; o++) {
        for (size_t i = 0; i < N; i++) {
            bool want = expect[o][i] == '1';
            bool got = contains(pats[o], pats[i]);
            if (got != want)
                fail_msg("contains(\"%s\", \"%s\") = %d, want %d", pats[o], pats[i], got, want);
        }
    }
}

static void test_contains_cases(void **state)
{
    (void)state;
    /* from the brief */
    assert_true(contains("a.>", "a.*"));
    assert_true(contains("a.>", "a.b.>"));
    assert_true(contains("a.>", "a.*.c"));
    assert_true(contains("a.*", "a.b"));
    assert_false(contains("a.*", "a.>"));
    assert_true(contains(">", "x.y.z"));
    assert_true(contains(">", ">"));
    assert_true(contains("a.*.>", "a.b.c"));
    assert_true(contains("a.*.>", "a.*.*"));
    assert_false(contains("a.*.>", "a.b"));
    /* contract deny/allow shapes */
    assert_true(contains("deployments.u42.>", "deployments.u42.internal"));
    assert_true(contains("deployments.*.internal.>", "deployments.u42.internal.>"));
    assert_false(contains("deployments.*.internal.>", "deployments.u42.internal"));
    assert_false(contains("deployments.*.internal.>", "deployments.u42.>"));
    assert_false(contains("deployments.u42.>", "deployments.*.internal"));
    assert_false(contains("deployments.u42.>", "deployments.>"));
    assert_false(contains("deployments.u42.>", ">"));
    /* consistency with matching on literals */
    const char *subs[] = {"a", "a.b", "a.b.c", "x.b", "a.x.c", "a.b.c.d"};
    const char *ps[] = {">", "*", "a.>", "a.*", "*.b", "a.*.c", "a.b.>", "a.*.>", "*.*"};
    for (size_t p = 0; p < sizeof ps / sizeof *ps; p++) {
        for (size_t s = 0; s < sizeof subs / sizeof *subs; s++)
            assert_int_equal(contains(ps[p], subs[s]), match(ps[p], subs[s]));
    }
    /* every pattern contains itself */
    for (size_t p = 0; p < sizeof ps / sizeof *ps; p++)
        assert_true(contains(ps[p], ps[p]));
}

/* ---- placeholder values -------------------------------------------------- */

static void test_placeholder_values(void **state)
{
    (void)state;
    const char *ok[] = {
        "u42",         "a-b_c", "123", "-5",  "true", "ü",   "日本",
        "😀",           "a:b",   "a@b", "a/b", "#",    "{x}", "\xc2\xa1" /* U+00A1 */,
        "\xe2\x80\x8c" /* ZWNJ */};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        if (!phv(ok[i]))
            fail_msg("rejected %s", ok[i]);
    }
    const char *bad[] = {
        "",
        "a.b",
        ".",
        "*",
        ">",
        "u42.>",
        "a*",
        "a>",
        "a b",
        " ",
        "a\tb",
        "a\nb",
        "a\rb",
        "a\vb",
        "a\fb",
        "\x01",
        "\x1f",
        "\x7f",
        "\xc2\x80",         /* U+0080 C1 */
        "\xc2\x85",         /* U+0085 NEL */
        "\xc2\x9f",         /* U+009F C1 */
        "\xc2\xa0",         /* U+00A0 NBSP */
        "u42\xc2\xa0x",     /* NBSP inside */
        "\xe1\x9a\x80",     /* U+1680 */
        "\xe1\xa0\x8e",     /* U+180E */
        "\xe2\x80\x80",     /* U+2000 */
        "\xe2\x80\x83",     /* U+2003 */
        "\xe2\x80\x8a",     /* U+200A */
        "\xe2\x80\x8b",     /* U+200B ZWSP */
        "\xe2\x80\xa8",     /* U+2028 */
        "\xe2\x80\xa9",     /* U+2029 */
        "\xe2\x80\xaf",     /* U+202F */
        "\xe2\x81\x9f",     /* U+205F */
        "\xe2\x81\xa0",     /* U+2060 */
        "\xe3\x80\x80",     /* U+3000 */
        "\xef\xbb\xbf",     /* U+FEFF */
        "\xc0\xae",         /* overlong '.' */
        "\xc0\xaa",         /* overlong '*' */
        "\xe0\x80\xbe",     /* overlong '>' */
        "\xed\xa0\x80",     /* surrogate */
        "\xf4\x90\x80\x80", /* > U+10FFFF */
        "\xc3",             /* truncated */
        "\x80",             /* stray continuation */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (phv(bad[i]))
            fail_msg("accepted bad[%zu]", i);
    }
    assert_false(subject_placeholder_value_valid("a\0b", 3));
    assert_false(subject_placeholder_value_valid(NULL, 0));

    char buf[300];
    memset(buf, 'v', sizeof buf);
    assert_true(subject_placeholder_value_valid(buf, 256));
    assert_false(subject_placeholder_value_valid(buf, 257));
    /* 256 bytes of multi-byte text: the limit is in bytes */
    for (int i = 0; i < 128; i++)
        memcpy(buf + 2 * i, "\xc3\xa9", 2);
    assert_true(subject_placeholder_value_valid(buf, 256));
    memcpy(buf + 256, "\xc3\xa9", 2);
    assert_false(subject_placeholder_value_valid(buf, 258));
}

static void test_intersects(void **state)
{
    (void)state;
    static const struct {
        const char *a, *b;
        bool want;
    } cases[] = {
        {"a.b", "a.b", true},
        {"a.b", "a.c", false},
        {"a.*", "a.b", true},
        {"a.*", "*.b", true},
        {"a.*", "a.b.c", false},
        {"a.>", "a", false},
        {"a.>", "a.b.c", true},
        {">", "x", true},
        {"*.internal", "a.b", false},
        {"d.*.internal", "d.u42.>", true},
        {"d.*.internal.>", "d.u42.internal", false},
        {"a.*.c", "a.b.*", true},
        {"*", "a.b", false},
        {"a.b.>", "a.*.c", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        bool got =
            subject_intersects(cases[i].a, strlen(cases[i].a), cases[i].b, strlen(cases[i].b));
        bool rev =
            subject_intersects(cases[i].b, strlen(cases[i].b), cases[i].a, strlen(cases[i].a));
        if (got != cases[i].want || rev != cases[i].want)
            fail_msg("intersects(%s, %s) = %d/%d", cases[i].a, cases[i].b, got, rev);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_basic),
        cmocka_unit_test(test_valid_nul_byte),
        cmocka_unit_test(test_wildcards),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_matches),
        cmocka_unit_test(test_contains_matrix),
        cmocka_unit_test(test_contains_cases),
        cmocka_unit_test(test_intersects),
        cmocka_unit_test(test_placeholder_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
