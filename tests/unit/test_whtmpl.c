/* Unit tests for whtmpl.c: template parsing and rendering, JSON pointers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "herald/whtmpl.h"

static const char *hdr(void *ctx, const char *name)
{
    const char *const *kv = ctx;
    for (; kv && kv[0]; kv += 2)
        if (strcasecmp(kv[0], name) == 0)
            return kv[1];
    return NULL;
}

/* Render `tmpl` with headers kv and body JSON text; returns the result code
 * and the text in out. */
static whtmpl_result render(const char *tmpl, const char *const *kv, const char *body, char *out,
                            size_t cap)
{
    whtmpl *t = NULL;
    assert_int_equal(whtmpl_compile(&t, tmpl), HR_OK);
    json_t *doc = body ? json_loads(body, JSON_DECODE_ANY, NULL) : NULL;
    if (body)
        assert_non_null(doc);
    size_t n = 0;
    whtmpl_result r = whtmpl_render(t, "github", hdr, (void *)kv, doc, out, cap, &n);
    if (r == WHT_OK)
        assert_int_equal(n, strlen(out));
    json_decref(doc);
    whtmpl_free(t);
    return r;
}

static void test_compile(void **state)
{
    (void)state;
    const char *ok[] = {"a.b",
                        "webhooks.{source}",
                        "w.{header:X-GitHub-Event}",
                        "w.{+header:X-Type}",
                        "w.{json:/type}",
                        "w.{+json:/a/b~1c}",
                        "w.pre-{json:/x}-post.{source}",
                        ""};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        whtmpl *t = NULL;
        assert_int_equal(whtmpl_compile(&t, ok[i]), HR_OK);
        whtmpl_free(t);
    }
    const char *bad[] = {"w.{hdr:X}", "w.{header:}", "w.{json:type}",  "w.{source",
                         "w.}",       "w.{+source}", "w.{header:a b}", "{}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        whtmpl *t = (whtmpl *)1;
        assert_int_equal(whtmpl_compile(&t, bad[i]), HR_ERR_INVALID);
        assert_null(t);
    }
    whtmpl *t;
    assert_int_equal(whtmpl_compile(&t, "a.{json:/x}"), HR_OK);
    assert_true(whtmpl_needs_json(t));
    whtmpl_free(t);
    assert_int_equal(whtmpl_compile(&t, "a.{header:X}.{source}"), HR_OK);
    assert_false(whtmpl_needs_json(t));
    whtmpl_free(t);
    assert_false(whtmpl_needs_json(NULL));
}

/* The messages configuration problems carry, and the subject shape check
 * config.c runs on a compiled subject template. */
static void test_compile_err(void **state)
{
    (void)state;
    static const struct {
        const char *text, *msg;
    } cases[] = {
        {"w.{hdr:X}", "unknown placeholder {hdr:X}"},
        {"w.{header:}", "unknown placeholder {header:}"},
        {"w.{json:type}", "unknown placeholder {json:type}"},
        {"w.{+source}", "unknown placeholder {+source}"},
        {"gh.{json:/a{b}", "'{' inside placeholder {json:/a{b}"},
        {"w.{source", "unterminated placeholder"},
        {"w.source}", "unbalanced '}'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        whtmpl *t = (whtmpl *)1;
        char err[128] = "x";
        assert_int_equal(whtmpl_compile_err(&t, cases[i].text, err, sizeof err), HR_ERR_INVALID);
        assert_null(t);
        assert_string_equal(err, cases[i].msg);
    }
    char long_ph[300] = "{header:";
    memset(long_ph + 8, 'a', 250);
    strcpy(long_ph + 258, "}");
    whtmpl *t = NULL;
    char err[128];
    assert_int_equal(whtmpl_compile_err(&t, long_ph, err, sizeof err), HR_ERR_INVALID);
    assert_string_equal(err, "placeholder too long");
    assert_int_equal(whtmpl_compile_err(&t, "ok.{source}", err, sizeof err), HR_OK);
    assert_string_equal(err, "");
    assert_true(whtmpl_subject_shaped(t));
    whtmpl_free(t);

    const char *shaped[] = {"a.b", "w.{source}", "w.pre-{json:/x}", "{+json:/t}.x"};
    for (size_t i = 0; i < sizeof shaped / sizeof *shaped; i++) {
        assert_int_equal(whtmpl_compile(&t, shaped[i]), HR_OK);
        assert_true(whtmpl_subject_shaped(t));
        whtmpl_free(t);
    }
    const char *unshaped[] = {"w..x", "w.*", "w.>", "", "w.{source}."};
    for (size_t i = 0; i < sizeof unshaped / sizeof *unshaped; i++) {
        assert_int_equal(whtmpl_compile(&t, unshaped[i]), HR_OK);
        assert_false(whtmpl_subject_shaped(t));
        whtmpl_free(t);
    }
    assert_false(whtmpl_subject_shaped(NULL));
}

static void test_render_basic(void **state)
{
    (void)state;
    char out[1100];
    const char *kv[] = {"X-GitHub-Event", "push", "X-Multi", "a.b.c", NULL};
    assert_int_equal(render("webhooks.{source}.{header:x-github-event}", kv, NULL, out, sizeof out),
                     WHT_OK);
    assert_string_equal(out, "webhooks.github.push");
    assert_int_equal(render("w.{+header:X-Multi}.end", kv, NULL, out, sizeof out), WHT_OK);
    assert_string_equal(out, "w.a.b.c.end");
    /* a non-plus placeholder refuses '.' */
    assert_int_equal(render("w.{header:X-Multi}", kv, NULL, out, sizeof out), WHT_UNRESOLVED);
    /* missing header */
    assert_int_equal(render("w.{header:Nope}", kv, NULL, out, sizeof out), WHT_UNRESOLVED);
    /* json without a body */
    assert_int_equal(render("w.{json:/type}", kv, NULL, out, sizeof out), WHT_UNRESOLVED);
    /* partial tokens */
    assert_int_equal(render("w.pre-{header:X-GitHub-Event}", kv, NULL, out, sizeof out), WHT_OK);
    assert_string_equal(out, "w.pre-push");
}

static void test_render_json(void **state)
{
    (void)state;
    char out[1100];
    const char *body = "{\"type\":\"invoice.paid\",\"n\":42,\"b\":true,\"f\":false,\"r\":1.5,"
                       "\"o\":{},\"a\":[\"x\",\"y\"],\"nul\":null,\"e\":\"\",\"s\":\"a b\","
                       "\"star\":\"*\",\"gt\":\">\",\"dot\":\".\",\"nbsp\":\"a\xc2\xa0"
                       "b\",\"a/b\":\"slash\",\"m~n\":\"tilde\"}";
    assert_int_equal(render("w.{+json:/type}", NULL, body, out, sizeof out), WHT_OK);
    assert_string_equal(out, "w.invoice.paid");
    assert_int_equal(render("w.{json:/type}", NULL, body, out, sizeof out), WHT_UNRESOLVED);
    assert_int_equal(render("w.{json:/n}.{json:/b}.{json:/f}", NULL, body, out, sizeof out),
                     WHT_OK);
    assert_string_equal(out, "w.42.true.false");
    assert_int_equal(render("w.{json:/a/1}", NULL, body, out, sizeof out), WHT_OK);
    assert_string_equal(out, "w.y");
    assert_int_equal(render("w.{json:/a~1b}.{json:/m~0n}", NULL, body, out, sizeof out), WHT_OK);
    assert_string_equal(out, "w.slash.tilde");
    const char *bad[] = {"w.{json:/r}",    "w.{json:/o}",    "w.{json:/a}",    "w.{json:/nul}",
                         "w.{json:/e}",    "w.{json:/s}",    "w.{json:/star}", "w.{json:/gt}",
                         "w.{json:/dot}",  "w.{json:/nbsp}", "w.{json:/none}", "w.{+json:/e}",
                         "w.{+json:/dot}", "w.{+json:/star}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(render(bad[i], NULL, body, out, sizeof out), WHT_UNRESOLVED);
}

static void test_plus_limits(void **state)
{
    (void)state;
    char out[2048], body[1024], v[256] = "";
    /* 16 parts are fine, 17 are not */
    for (int i = 0; i < 16; i++)
        strcat(v, i ? ".p" : "p");
    snprintf(body, sizeof body, "{\"t\":\"%s\",\"u\":\"%s.p\",\"e\":\"a..b\",\"l\":\"a.\"}", v, v);
    assert_int_equal(render("w.{+json:/t}", NULL, body, out, sizeof out), WHT_OK);
    assert_int_equal(render("w.{+json:/u}", NULL, body, out, sizeof out), WHT_UNRESOLVED);
    assert_int_equal(render("w.{+json:/e}", NULL, body, out, sizeof out), WHT_UNRESOLVED);
    assert_int_equal(render("w.{+json:/l}", NULL, body, out, sizeof out), WHT_UNRESOLVED);
    /* output capacity */
    assert_int_equal(render("abcdef", NULL, NULL, out, 4), WHT_TOO_LONG);
}

/* Delivery-id templates: values inserted as they are (the caller checks
 * the whole id), still resolved from headers and the body. */
static void test_render_raw(void **state)
{
    (void)state;
    whtmpl *t = NULL;
    assert_int_equal(whtmpl_compile(&t, "{header:X-Shopify-Webhook-Id}"), HR_OK);
    const char *kv[] = {"x-shopify-webhook-id", "b54557e4.bdd9*>", NULL};
    char out[64];
    size_t n = 0;
    assert_int_equal(whtmpl_render_raw(t, "s", hdr, (void *)kv, NULL, out, sizeof out, &n), WHT_OK);
    assert_string_equal(out, "b54557e4.bdd9*>");
    assert_int_equal(n, 15);
    /* the checked form refuses the same value */
    assert_int_equal(whtmpl_render(t, "s", hdr, (void *)kv, NULL, out, sizeof out, &n),
                     WHT_UNRESOLVED);
    const char *none[] = {NULL};
    assert_int_equal(whtmpl_render_raw(t, "s", hdr, (void *)none, NULL, out, sizeof out, &n),
                     WHT_UNRESOLVED);
    assert_int_equal(whtmpl_render_raw(t, "s", hdr, (void *)kv, NULL, out, 4, &n), WHT_TOO_LONG);
    whtmpl_free(t);
    assert_int_equal(whtmpl_compile(&t, "{json:/event_id}"), HR_OK);
    json_t *doc = json_loads("{\"event_id\":\"Ev0A.1\",\"n\":{}}", 0, NULL);
    assert_int_equal(whtmpl_render_raw(t, "s", hdr, NULL, doc, out, sizeof out, &n), WHT_OK);
    assert_string_equal(out, "Ev0A.1");
    json_decref(doc);
    doc = json_loads("{\"event_id\":{}}", 0, NULL);
    assert_int_equal(whtmpl_render_raw(t, "s", hdr, NULL, doc, out, sizeof out, &n),
                     WHT_UNRESOLVED);
    json_decref(doc);
    whtmpl_free(t);
}

static void pattern_is(const char *tmpl, const char *want)
{
    whtmpl *t = NULL;
    assert_int_equal(whtmpl_compile(&t, tmpl), HR_OK);
    char out[256];
    bool ok = whtmpl_pattern(t, "billing", out, sizeof out);
    if (want) {
        assert_true(ok);
        assert_string_equal(out, want);
    } else {
        assert_false(ok);
    }
    whtmpl_free(t);
}

static void test_pattern(void **state)
{
    (void)state;
    pattern_is("core.small", "core.small");
    pattern_is("webhooks.{source}.events", "webhooks.billing.events");
    pattern_is("webhooks.{source}.{+json:/type}", "webhooks.billing.>");
    pattern_is("webhooks.github.{header:X-GitHub-Event}", "webhooks.github.*");
    pattern_is("a.x{header:H}y.b", "a.*.b");
    pattern_is("a.{+header:H}.b", "a.>");
    pattern_is("{json:/a}{json:/b}.c", "*.c");
    pattern_is("{source}", "billing");
    /* too long for the output */
    whtmpl *t = NULL;
    assert_int_equal(whtmpl_compile(&t, "aaaa.bbbb.{header:H}"), HR_OK);
    char small[8];
    assert_false(whtmpl_pattern(t, "s", small, sizeof small));
    whtmpl_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compile),      cmocka_unit_test(test_compile_err),
        cmocka_unit_test(test_render_basic), cmocka_unit_test(test_render_json),
        cmocka_unit_test(test_plus_limits),  cmocka_unit_test(test_render_raw),
        cmocka_unit_test(test_pattern),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
