/* Unit tests for wsproto.c: parsing client frames (contract §3, "Client →
 * server"), the Origin allow-list, Sec-WebSocket-Protocol and Cookie
 * helpers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/wsproto.h"

/* ---- parsing ------------------------------------------------------------- */

static bool parse(const char *s, wsreq *r, char **id)
{
    char msg[160];
    msg[0] = '\0';
    bool ok = wsproto_parse(s, strlen(s), r, id, msg, sizeof msg);
    if (!ok) {
        assert_true(msg[0] != '\0'); /* a reason is always given */
        /* a failed parse leaves nothing to free */
        assert_null(r->root);
        assert_null(r->bin);
    } else {
        assert_null(*id);
    }
    return ok;
}

static void ok(const char *s, wsreq *r)
{
    char *id = NULL;
    if (!parse(s, r, &id))
        fail_msg("expected to parse: %s", s);
}

/* Rejected; returns the id_out (caller frees). */
static char *bad(const char *s)
{
    wsreq r;
    char *id = (char *)"sentinel";
    if (parse(s, &r, &id)) {
        wsproto_request_clear(&r);
        fail_msg("expected bad_request: %s", s);
    }
    return id;
}

static void bad_noid(const char *s)
{
    char *id = bad(s);
    if (id) {
        free(id);
        fail_msg("expected no id for: %s", s);
    }
}

static void bad_id(const char *s, const char *want)
{
    char *id = bad(s);
    if (!id)
        fail_msg("expected id \"%s\" for: %s", want, s);
    assert_string_equal(id, want);
    free(id);
}

static void test_parse_valid(void **state)
{
    (void)state;
    wsreq r;
    ok("{\"type\":\"auth\",\"id\":\"0\",\"token\":\"abc.def.ghi\"}", &r);
    assert_int_equal(r.type, WSREQ_AUTH);
    assert_string_equal(r.id, "0");
    assert_string_equal(r.token, "abc.def.ghi");
    wsproto_request_clear(&r);
    assert_null(r.root);

    ok("{\"type\":\"subscribe\",\"id\":\"1\",\"subject\":\"deployments.u42.>\"}", &r);
    assert_int_equal(r.type, WSREQ_SUBSCRIBE);
    assert_string_equal(r.id, "1");
    assert_string_equal(r.subject, "deployments.u42.>");
    assert_int_equal(r.subject_len, strlen("deployments.u42.>"));
    assert_false(r.has_since);
    wsproto_request_clear(&r);

    ok("{\"type\":\"subscribe\",\"id\":\"1\",\"subject\":\"a.b\",\"since\":117}", &r);
    assert_true(r.has_since);
    assert_int_equal(r.since, 117);
    wsproto_request_clear(&r);

    ok("{\"type\":\"unsubscribe\",\"id\":\"2\",\"subject\":\"deployments.u42.>\"}", &r);
    assert_int_equal(r.type, WSREQ_UNSUBSCRIBE);
    assert_string_equal(r.subject, "deployments.u42.>");
    wsproto_request_clear(&r);

    ok("{\"type\":\"publish\",\"id\":\"3\",\"subject\":\"ui.u42.click\",\"data\":{\"x\":1}}", &r);
    assert_int_equal(r.type, WSREQ_PUBLISH);
    assert_string_equal(r.subject, "ui.u42.click");
    assert_true(json_is_object(r.data));
    assert_int_equal(json_integer_value(json_object_get(r.data, "x")), 1);
    assert_null(r.bin);
    wsproto_request_clear(&r);

    ok("{\"type\":\"publish\",\"id\":\"3\",\"subject\":\"ui.u42.blob\",\"data_b64\":\"AAE=\"}", &r);
    assert_int_equal(r.type, WSREQ_PUBLISH);
    assert_null(r.data);
    assert_non_null(r.bin);
    assert_int_equal(r.bin_len, 2);
    assert_memory_equal(r.bin, "\x00\x01", 2);
    wsproto_request_clear(&r);
    assert_null(r.bin);

    ok("{\"type\":\"ping\",\"id\":\"4\"}", &r);
    assert_int_equal(r.type, WSREQ_PING);
    assert_string_equal(r.id, "4");
    wsproto_request_clear(&r);

    /* id is optional; field order is free; whitespace allowed */
    ok(" { \"id\" : \"x\" , \"type\" : \"ping\" } \n", &r);
    assert_int_equal(r.type, WSREQ_PING);
    assert_string_equal(r.id, "x");
    wsproto_request_clear(&r);
    ok("{\"type\":\"ping\"}", &r);
    assert_null(r.id);
    wsproto_request_clear(&r);

    /* clearing twice is harmless */
    wsproto_request_clear(&r);
}

static void test_parse_id_echo(void **state)
{
    (void)state;
    const char *ids[] = {"", "0", "abc-123", "caf\xc3\xa9", "with \"quote\""};
    const char *frames[] = {
        "{\"type\":\"ping\",\"id\":\"\"}",
        "{\"type\":\"ping\",\"id\":\"0\"}",
        "{\"type\":\"ping\",\"id\":\"abc-123\"}",
        "{\"type\":\"ping\",\"id\":\"caf\\u00e9\"}",
        "{\"type\":\"ping\",\"id\":\"with \\\"quote\\\"\"}",
    };
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++) {
        wsreq r;
        ok(frames[i], &r);
        assert_string_equal(r.id, ids[i]);
        wsproto_request_clear(&r);
    }
}

static void test_parse_malformed(void **state)
{
    (void)state;
    bad_noid("");
    bad_noid(" ");
    bad_noid("{");
    bad_noid("{\"type\":\"ping\",\"id\":\"1\"");
    bad_noid("{\"type\":\"ping\",\"id\":\"1\"}}");
    bad_noid("{\"type\":\"ping\",\"id\":\"1\"} x");
    bad_noid("{'type':'ping'}");
    bad_noid("{type:\"ping\"}");
    bad_noid("{\"type\":\"ping\",}");
    bad_noid("\xff\xfe");
    bad_noid("{\"type\":\"ping\",\"id\":\"\xc3\x28\"}"); /* invalid UTF-8 */
    /* an embedded NUL byte in the frame */
    wsreq r;
    char *id = NULL;
    char msg[64];
    assert_false(wsproto_parse("{\"type\":\"ping\"}\0", 16, &r, &id, msg, sizeof msg));
    assert_null(id);
    assert_null(r.root);
    /* a tiny message buffer is fine */
    assert_false(wsproto_parse("{", 1, &r, &id, msg, 1));
    assert_int_equal(msg[0], '\0');
}

static void test_parse_non_object(void **state)
{
    (void)state;
    bad_noid("[]");
    bad_noid("[{\"type\":\"ping\",\"id\":\"1\"}]");
    bad_noid("\"ping\"");
    bad_noid("42");
    bad_noid("true");
    bad_noid("null");
}

static void test_parse_type(void **state)
{
    (void)state;
    bad_noid("{}");
    bad_id("{\"id\":\"1\"}", "1");
    bad_id("{\"id\":\"1\",\"type\":1}", "1");
    bad_id("{\"id\":\"1\",\"type\":null}", "1");
    bad_id("{\"id\":\"1\",\"type\":[\"ping\"]}", "1");
    bad_id("{\"id\":\"1\",\"type\":{}}", "1");
    bad_id("{\"id\":\"1\",\"type\":\"\"}", "1");
    bad_id("{\"id\":\"1\",\"type\":\"PING\"}", "1");
    bad_id("{\"id\":\"1\",\"type\":\"pong\"}", "1");
    bad_id("{\"id\":\"1\",\"type\":\"event\"}", "1");
    bad_id("{\"id\":\"1\",\"type\":\"ping \"}", "1");
    bad_id("{\"id\":\"1\",\"type\":\"ping\\u0000\"}", "1");
    bad_noid("{\"type\":\"nope\"}");
}

/* v1.2 §3: fields a request type does not define are ignored. */
static void test_parse_unknown_field_ignored(void **state)
{
    (void)state;
    const char *cases[] = {
        "{\"type\":\"ping\",\"id\":\"1\",\"extra\":1}",
        "{\"type\":\"ping\",\"id\":\"1\",\"subject\":\"a\"}",
        "{\"type\":\"auth\",\"id\":\"1\",\"token\":\"t\",\"subject\":\"a\"}",
        "{\"type\":\"subscribe\",\"id\":\"1\",\"subject\":\"a\",\"data\":1}",
        "{\"type\":\"unsubscribe\",\"id\":\"1\",\"subject\":\"a\",\"since\":\"x\"}",
        "{\"type\":\"publish\",\"id\":\"1\",\"subject\":\"a\",\"data\":1,\"since\":1}",
        "{\"type\":\"publish\",\"id\":\"1\",\"subject\":\"a\",\"data\":1,\"Data\":1}",
        "{\"type\":\"ping\",\"id\":\"1\",\"future\":{\"nested\":[1,2]}}",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wsreq r;
        ok(cases[i], &r);
        assert_string_equal(r.id, "1");
        wsproto_request_clear(&r);
    }
    /* an ignored field never changes the request: unsubscribe has no since */
    wsreq r;
    ok("{\"type\":\"unsubscribe\",\"subject\":\"a\",\"since\":5}", &r);
    assert_false(r.has_since);
    wsproto_request_clear(&r);
}

static void test_parse_id_types(void **state)
{
    (void)state;
    /* id not a string: the id cannot be echoed */
    bad_noid("{\"type\":\"ping\",\"id\":1}");
    bad_noid("{\"type\":\"ping\",\"id\":null}");
    bad_noid("{\"type\":\"ping\",\"id\":[\"1\"]}");
    bad_noid("{\"type\":\"ping\",\"id\":{}}");
    bad_noid("{\"type\":\"ping\",\"id\":true}");
    /* a string id is echoed even when another field is bad */
    bad_id("{\"type\":\"subscribe\",\"id\":\"9\",\"subject\":5}", "9");
    bad_id("{\"type\":\"bogus\",\"id\":\"9\"}", "9");
    bad_id("{\"id\":\"9\",\"type\":\"auth\"}", "9");
}

static void test_parse_auth(void **state)
{
    (void)state;
    bad_id("{\"type\":\"auth\",\"id\":\"0\"}", "0");
    bad_id("{\"type\":\"auth\",\"id\":\"0\",\"token\":null}", "0");
    bad_id("{\"type\":\"auth\",\"id\":\"0\",\"token\":42}", "0");
    bad_id("{\"type\":\"auth\",\"id\":\"0\",\"token\":[\"t\"]}", "0");
    wsreq r;
    ok("{\"type\":\"auth\",\"token\":\"t\"}", &r);
    assert_string_equal(r.token, "t");
    assert_int_equal(r.token_len, 1);
    assert_null(r.id);
    wsproto_request_clear(&r);
    /* an empty string is a (bad) token for the verifier, not a malformed frame */
    ok("{\"type\":\"auth\",\"id\":\"0\",\"token\":\"\"}", &r);
    assert_string_equal(r.token, "");
    assert_int_equal(r.token_len, 0);
    wsproto_request_clear(&r);
}

static void test_parse_subject(void **state)
{
    (void)state;
    const char *types[] = {"subscribe", "unsubscribe", "publish"};
    const char *vals[] = {"5", "null", "true", "[\"a\"]", "{}"};
    char buf[160];
    for (size_t t = 0; t < 3; t++) {
        const char *extra = t == 2 ? ",\"data\":1" : "";
        snprintf(buf, sizeof buf, "{\"type\":\"%s\",\"id\":\"s\"%s}", types[t], extra);
        bad_id(buf, "s"); /* missing */
        for (size_t v = 0; v < sizeof vals / sizeof *vals; v++) {
            snprintf(buf, sizeof buf, "{\"type\":\"%s\",\"id\":\"s\",\"subject\":%s%s}", types[t],
                     vals[v], extra);
            bad_id(buf, "s");
        }
    }
    /* subject validity is not wsproto's business (invalid_subject comes later) */
    wsreq r;
    ok("{\"type\":\"subscribe\",\"subject\":\"a..b\"}", &r);
    assert_string_equal(r.subject, "a..b");
    wsproto_request_clear(&r);
    /* an embedded NUL: subject_len tells */
    ok("{\"type\":\"unsubscribe\",\"subject\":\"a\\u0000b\"}", &r);
    assert_int_equal(r.subject_len, 3);
    wsproto_request_clear(&r);
}

static void test_parse_since(void **state)
{
    (void)state;
    const char *badv[] = {"-1",   "1.5",         "1.0",      "\"1\"",
                          "null", "true",        "[1]",      "-9223372036854775808",
                          "1e3",  "\"first\"",   "\"LAST\"", "\"last \"",
                          "\"\"", "{\"last\":1}"};
    char buf[160];
    for (size_t i = 0; i < sizeof badv / sizeof *badv; i++) {
        snprintf(buf, sizeof buf,
                 "{\"type\":\"subscribe\",\"id\":\"q\",\"subject\":\"a\",\"since\":%s}", badv[i]);
        bad_id(buf, "q");
    }
    /* beyond int64: malformed for jansson, still a bad_request */
    bad("{\"type\":\"subscribe\",\"subject\":\"a\",\"since\":99999999999999999999}");

    static const struct {
        const char *v;
        int64_t want;
    } good[] = {{"0", 0}, {"1", 1}, {"117", 117}, {"9223372036854775807", INT64_MAX}};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        snprintf(buf, sizeof buf, "{\"type\":\"subscribe\",\"subject\":\"a\",\"since\":%s}",
                 good[i].v);
        wsreq r;
        ok(buf, &r);
        assert_true(r.has_since);
        assert_true(r.since == good[i].want);
        assert_false(r.since_last);
        wsproto_request_clear(&r);
    }
    wsreq r;
    ok("{\"type\":\"subscribe\",\"subject\":\"a\",\"since\":\"last\"}", &r);
    assert_true(r.has_since);
    assert_true(r.since_last);
    wsproto_request_clear(&r);
}

static void test_parse_publish(void **state)
{
    (void)state;
    /* exactly one of data and data_b64 */
    bad_id("{\"type\":\"publish\",\"id\":\"p\",\"subject\":\"a\"}", "p");
    bad_id("{\"type\":\"publish\",\"id\":\"p\",\"subject\":\"a\",\"data\":1,\"data_b64\":\"AA==\"}",
           "p");
    bad_id("{\"type\":\"publish\",\"id\":\"p\",\"subject\":\"a\",\"data\":null,\"data_b64\":\"\"}",
           "p");
    /* data_b64 must be valid standard base64 in a string */
    const char *b64bad[] = {"1",           "null",      "[\"AA==\"]",  "\"A\"",
                            "\"AA=A\"",    "\"A===\"",  "\"!!!!\"",    "\"AA-_\"",
                            "\"AA==\\n\"", "\" AA==\"", "\"AAA=AAAA\""};
    char buf[200];
    for (size_t i = 0; i < sizeof b64bad / sizeof *b64bad; i++) {
        snprintf(buf, sizeof buf,
                 "{\"type\":\"publish\",\"id\":\"p\",\"subject\":\"a\",\"data_b64\":%s}",
                 b64bad[i]);
        bad_id(buf, "p");
    }
    /* valid base64 decodes to bytes */
    static const struct {
        const char *b64;
        const char *bytes;
        size_t n;
    } good[] = {
        {"", "", 0},
        {"AA==", "\0", 1},
        {"AAE=", "\0\1", 2},
        {"AAEC", "\0\1\2", 3},
        {"aGVsbG8=", "hello", 5},
        {"aGVsbG8", "hello", 5}, /* unpadded */
        {"/+8=", "\xff\xef", 2},
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        snprintf(buf, sizeof buf, "{\"type\":\"publish\",\"subject\":\"a\",\"data_b64\":\"%s\"}",
                 good[i].b64);
        wsreq r;
        ok(buf, &r);
        assert_null(r.data);
        assert_non_null(r.bin);
        assert_int_equal(r.bin_len, good[i].n);
        assert_memory_equal(r.bin, good[i].bytes, good[i].n);
        wsproto_request_clear(&r);
    }
    /* data is any JSON value, null included */
    const char *datas[] = {"null",  "0",  "-1.5",    "true", "false",
                           "\"s\"", "[]", "[1,[2]]", "{}",   "{\"a\":{\"b\":null}}"};
    for (size_t i = 0; i < sizeof datas / sizeof *datas; i++) {
        snprintf(buf, sizeof buf, "{\"type\":\"publish\",\"subject\":\"a\",\"data\":%s}", datas[i]);
        wsreq r;
        ok(buf, &r);
        assert_non_null(r.data);
        assert_null(r.bin);
        json_error_t err;
        json_t *want = json_loads(datas[i], JSON_DECODE_ANY, &err);
        assert_non_null(want);
        assert_true(json_equal(r.data, want));
        json_decref(want);
        wsproto_request_clear(&r);
    }
    wsreq r;
    ok("{\"type\":\"publish\",\"subject\":\"a\",\"data\":null}", &r);
    assert_true(json_is_null(r.data));
    wsproto_request_clear(&r);
}

static void test_parse_nul(void **state)
{
    (void)state;
    /* \u0000 is valid JSON: publish data may carry it */
    wsreq r;
    ok("{\"type\":\"publish\",\"id\":\"n\",\"subject\":\"a\",\"data\":{\"k\":\"a\\u0000b\"}}", &r);
    assert_string_equal(r.id, "n");
    json_t *k = json_object_get(r.data, "k");
    assert_int_equal(json_string_length(k), 3);
    assert_memory_equal(json_string_value(k), "a\0b", 3);
    wsproto_request_clear(&r);
    ok("{\"type\":\"publish\",\"subject\":\"a\",\"data\":\"\\u0000\"}", &r);
    wsproto_request_clear(&r);
    /* but fields used as C strings must not hide a NUL */
    bad_noid("{\"type\":\"ping\",\"id\":\"1\\u00002\"}");
    bad_id("{\"id\":\"1\",\"type\":\"ping\\u0000\"}", "1");
    /* a token is passed on with its length, NUL included, for the verifier to refuse */
    ok("{\"id\":\"1\",\"type\":\"auth\",\"token\":\"good\\u0000junk\"}", &r);
    assert_int_equal(r.token_len, 9);
    wsproto_request_clear(&r);
}

static void test_parse_duplicates(void **state)
{
    (void)state;
    bad("{\"type\":\"ping\",\"type\":\"ping\"}");
    char *id = bad("{\"type\":\"ping\",\"id\":\"1\",\"id\":\"2\"}");
    free(id);
    id = bad("{\"type\":\"subscribe\",\"subject\":\"a\",\"subject\":\"b\"}");
    free(id);
    id = bad("{\"type\":\"publish\",\"subject\":\"a\",\"data\":1,\"data\":2}");
    free(id);
    id = bad("{\"type\":\"auth\",\"token\":\"a\",\"token\":\"b\"}");
    free(id);
    /* duplicates nested inside data are rejected too */
    id = bad("{\"type\":\"publish\",\"subject\":\"a\",\"data\":{\"k\":1,\"k\":2}}");
    free(id);
}

/* ---- Origin -------------------------------------------------------------- */

static bool origin(const char *o, const char *const *allowed, size_t n)
{
    return wsproto_origin_allowed(o, (char *const *)allowed, n);
}

#define ALLOWED(o, ...)                                                                            \
    origin(o, (const char *const[]){__VA_ARGS__},                                                  \
           sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

static void test_origin_exact(void **state)
{
    (void)state;
    assert_true(ALLOWED("https://a.com", "https://a.com"));
    assert_true(ALLOWED("https://a.com", "https://b.com", "https://a.com"));
    assert_false(ALLOWED("https://b.com", "https://a.com"));
    assert_false(ALLOWED("https://a.co", "https://a.com"));
    assert_false(ALLOWED("https://a.comm", "https://a.com"));
    assert_false(ALLOWED("https://xa.com", "https://a.com"));
    assert_false(ALLOWED("https://a.com", "https://a.com.evil"));
    assert_false(origin("https://a.com", NULL, 0));
    /* trailing slash tolerated */
    assert_true(ALLOWED("https://a.com/", "https://a.com"));
    assert_true(ALLOWED("https://a.com", "https://a.com/"));
}

static void test_origin_case(void **state)
{
    (void)state;
    assert_true(ALLOWED("HTTPS://A.COM", "https://a.com"));
    assert_true(ALLOWED("https://a.com", "HTTPS://A.Com"));
    assert_true(ALLOWED("hTTps://App.Example.COM", "https://*.example.com"));
    assert_true(ALLOWED("https://a.example.com", "https://*.EXAMPLE.com"));
}

static void test_origin_ports(void **state)
{
    (void)state;
    assert_true(ALLOWED("https://a.com", "https://a.com:443"));
    assert_true(ALLOWED("https://a.com:443", "https://a.com"));
    assert_true(ALLOWED("http://a.com:80", "http://a.com"));
    assert_true(ALLOWED("http://a.com", "http://a.com:80"));
    assert_true(ALLOWED("http://a.com:8080", "http://a.com:8080"));
    assert_false(ALLOWED("http://a.com:8080", "http://a.com"));
    assert_false(ALLOWED("http://a.com", "http://a.com:8080"));
    assert_false(ALLOWED("https://a.com:80", "https://a.com"));
    assert_false(ALLOWED("https://a.com:8443", "https://a.com"));
    assert_false(ALLOWED("http://a.com:443", "https://a.com"));
    assert_true(ALLOWED("https://x.example.com:8443", "https://*.example.com:8443"));
    assert_false(ALLOWED("https://x.example.com", "https://*.example.com:8443"));
    /* bad ports are garbage */
    assert_false(ALLOWED("http://a.com:", "http://a.com"));
    assert_false(ALLOWED("http://a.com:0", "http://a.com:0"));
    assert_false(ALLOWED("http://a.com:65536", "http://a.com:65536"));
    assert_false(ALLOWED("http://a.com:123456", "http://a.com:123456"));
    assert_false(ALLOWED("http://a.com:80a", "http://a.com"));
    assert_false(ALLOWED("http://a.com:-80", "http://a.com"));
    assert_true(ALLOWED("http://a.com:65535", "http://a.com:65535"));
}

static void test_origin_wildcard(void **state)
{
    (void)state;
    const char *w = "https://*.example.com";
    assert_true(ALLOWED("https://a.example.com", w));
    assert_true(ALLOWED("https://x.y.example.com", w));
    assert_true(ALLOWED("https://a.example.com:443", w));
    assert_false(ALLOWED("https://example.com", w));
    assert_false(ALLOWED("https://evil-example.com", w));
    assert_false(ALLOWED("https://evilexample.com", w));
    assert_false(ALLOWED("https://a.example.com.evil.com", w));
    assert_false(ALLOWED("https://a.example.co", w));
    assert_false(ALLOWED("http://a.example.com", w));
    assert_false(ALLOWED("https://.example.com", w));
    /* a wildcard in the origin is not a wildcard */
    assert_false(ALLOWED("https://*.example.com", "https://a.example.com"));
    /* the wildcard only counts at the start of the host */
    assert_false(ALLOWED("https://a.example.com", "https://a.*.com"));
}

static void test_origin_scheme(void **state)
{
    (void)state;
    assert_false(ALLOWED("http://a.com", "https://a.com"));
    assert_false(ALLOWED("https://a.com", "http://a.com"));
    assert_false(ALLOWED("wss://a.com", "https://a.com"));
    assert_true(ALLOWED("wss://a.com", "wss://a.com"));
    assert_false(ALLOWED("ftp://a.com", "https://a.com"));
    assert_true(ALLOWED("chrome-extension://abcdef", "chrome-extension://abcdef"));
    assert_false(ALLOWED("chrome-extension://abcdef", "chrome-extension://abcdeg"));
}

static void test_origin_null(void **state)
{
    (void)state;
    assert_false(ALLOWED("null", "https://a.com"));
    assert_false(ALLOWED("null", "https://*.example.com"));
    assert_true(ALLOWED("null", "https://a.com", "null"));
    assert_false(ALLOWED("NULL", "null"));
    assert_false(ALLOWED("https://a.com", "null"));
}

static void test_origin_garbage(void **state)
{
    (void)state;
    const char *all[] = {"https://a.com", "https://*.example.com", "http://[::1]:8080"};
    const char *garbage[] = {"",
                             "a.com",
                             "https://",
                             "https:/a.com",
                             "://a.com",
                             "https://a.com/path",
                             "https://a.com//",
                             "https:// a.com",
                             "https://a.com ",
                             "https://a.com\t",
                             "https://evil.com#.example.com",
                             "https://evil.com?.example.com",
                             "https://evil.com/.example.com",
                             "https://evil.com\\.example.com",
                             "https://u@a.example.com",
                             "https://evil.com@a.example.com",
                             "https://evil.com .example.com",
                             "https://..example.com",
                             "https://a..example.com",
                             "https://.a.example.com",
                             "https://a.example.com:443:443",
                             "https://a.com\r\n",
                             "1https://a.com",
                             "ht tps://a.com",
                             "https://[::1",
                             "http://[::1]x",
                             "http://[::1]:",
                             "averyveryverylongscheme://a.com",
                             "*",
                             "https://*.example.com"};
    for (size_t i = 0; i < sizeof garbage / sizeof *garbage; i++)
        if (origin(garbage[i], all, 3))
            fail_msg("garbage origin accepted: \"%s\"", garbage[i]);
    /* an overlong host */
    char lng[400] = "https://";
    memset(lng + 8, 'a', 300);
    strcpy(lng + 308, ".example.com");
    assert_false(origin(lng, all, 3));
    /* garbage entries are skipped, not fatal */
    assert_true(ALLOWED("https://a.com", "not an origin", "", "https://a.com"));
}

static void test_origin_ipv6(void **state)
{
    (void)state;
    assert_true(ALLOWED("http://[::1]:8080", "http://[::1]:8080"));
    assert_false(ALLOWED("http://[::1]:8081", "http://[::1]:8080"));
    assert_false(ALLOWED("http://[::1]", "http://[::1]:8080"));
    assert_true(ALLOWED("http://[::1]", "http://[::1]:80"));
    assert_true(ALLOWED("http://[::1]:80", "http://[::1]"));
    assert_false(ALLOWED("http://[::2]:8080", "http://[::1]:8080"));
    assert_true(ALLOWED("http://[FE80::1]:8080", "http://[fe80::1]:8080"));
    assert_true(ALLOWED("http://127.0.0.1:8080", "http://127.0.0.1:8080"));
    assert_false(ALLOWED("http://127.0.0.1:8080", "http://[::1]:8080"));
}

/* ---- Sec-WebSocket-Protocol ---------------------------------------------- */

static void test_offers_protocol(void **state)
{
    (void)state;
    const char *p = "herald.v1";
    assert_true(wsproto_offers_protocol("herald.v1", p));
    assert_true(wsproto_offers_protocol("foo, herald.v1", p));
    assert_true(wsproto_offers_protocol("foo,herald.v1", p));
    assert_true(wsproto_offers_protocol("herald.v1, foo", p));
    assert_true(wsproto_offers_protocol("herald.v1,foo", p));
    assert_true(wsproto_offers_protocol("  herald.v1  ", p));
    assert_true(wsproto_offers_protocol("a,\therald.v1\t,b", p));
    assert_true(wsproto_offers_protocol("foo , herald.v1 , bar", p));
    assert_false(wsproto_offers_protocol("herald.v1x", p));
    assert_false(wsproto_offers_protocol("xherald.v1", p));
    assert_false(wsproto_offers_protocol("herald.v", p));
    assert_false(wsproto_offers_protocol("herald.v2", p));
    assert_false(wsproto_offers_protocol("foo, herald.v1x", p));
    assert_false(wsproto_offers_protocol("foo,herald.v10", p));
    assert_false(wsproto_offers_protocol("herald", p));
    assert_false(wsproto_offers_protocol("", p));
    assert_false(wsproto_offers_protocol(" ", p));
    assert_false(wsproto_offers_protocol(",", p));
    assert_false(wsproto_offers_protocol(", ,", p));
    assert_false(wsproto_offers_protocol("foo", p));
}

/* ---- Cookie -------------------------------------------------------------- */

static void test_cookie_value(void **state)
{
    (void)state;
    char out[32];
    assert_true(wsproto_cookie_value("a=1; tok=xyz; b=2", "tok", out, sizeof out));
    assert_string_equal(out, "xyz");
    assert_true(wsproto_cookie_value("tok=xyz", "tok", out, sizeof out));
    assert_string_equal(out, "xyz");
    assert_true(wsproto_cookie_value("a=1;tok=first", "tok", out, sizeof out));
    assert_string_equal(out, "first");
    assert_true(wsproto_cookie_value("a=1; tok=last", "tok", out, sizeof out));
    assert_string_equal(out, "last");
    assert_true(wsproto_cookie_value("xtok=1; tok=2", "tok", out, sizeof out));
    assert_string_equal(out, "2");
    assert_true(wsproto_cookie_value("tok=a.b-c_d=e==", "tok", out, sizeof out));
    assert_string_equal(out, "a.b-c_d=e==");

    /* a name that only shares a prefix or suffix does not match */
    assert_false(wsproto_cookie_value("xtok=1", "tok", out, sizeof out));
    assert_false(wsproto_cookie_value("tokx=1", "tok", out, sizeof out));
    assert_false(wsproto_cookie_value("to=1", "tok", out, sizeof out));
    assert_false(wsproto_cookie_value("a=tok=1", "tok", out, sizeof out));
    assert_false(wsproto_cookie_value("a=1; b=2", "tok", out, sizeof out));
    assert_false(wsproto_cookie_value("", "tok", out, sizeof out));
    assert_false(wsproto_cookie_value("tok", "tok", out, sizeof out));
    assert_false(wsproto_cookie_value(";;; ", "tok", out, sizeof out));
    /* empty value */
    assert_false(wsproto_cookie_value("tok=", "tok", out, sizeof out));
    assert_false(wsproto_cookie_value("a=1; tok=; b=2", "tok", out, sizeof out));

    /* too long for the buffer: exactly fits, one over */
    char small[4];
    assert_true(wsproto_cookie_value("tok=abc", "tok", small, sizeof small));
    assert_string_equal(small, "abc");
    assert_false(wsproto_cookie_value("tok=abcd", "tok", small, sizeof small));
    assert_false(wsproto_cookie_value("a=1; tok=abcdefgh; b=2", "tok", small, sizeof small));
    assert_false(wsproto_cookie_value("tok=x", "tok", small, 0));
}

static void test_frame_header(void **state)
{
    (void)state;
    unsigned char h[10];
    assert_int_equal(wsproto_frame_header(h, 0), 2);
    assert_int_equal(h[0], 0x81);
    assert_int_equal(h[1], 0);
    assert_int_equal(wsproto_frame_header(h, 125), 2);
    assert_int_equal(h[1], 125);
    assert_int_equal(wsproto_frame_header(h, 126), 4);
    assert_int_equal(h[1], 126);
    assert_int_equal(h[2] << 8 | h[3], 126);
    assert_int_equal(wsproto_frame_header(h, 65535), 4);
    assert_int_equal(h[2] << 8 | h[3], 65535);
    assert_int_equal(wsproto_frame_header(h, 65536), 10);
    assert_int_equal(h[1], 127);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | h[2 + i];
    assert_int_equal(v, 65536);
}

static void test_frame_append(void **state)
{
    (void)state;
    unsigned char out[40];
    size_t n = 0;
    assert_true(wsproto_frame_append(out, sizeof out, &n, (const unsigned char *)"hello", 5));
    assert_int_equal(n, 7);
    assert_memory_equal(out, "\x81\x05hello", 7);
    assert_true(wsproto_frame_append(out, sizeof out, &n, (const unsigned char *)"ab", 2));
    assert_int_equal(n, 11);
    /* does not fit (10 bytes kept for the largest header): nothing written */
    assert_false(wsproto_frame_append(out, sizeof out, &n,
                                      (const unsigned char *)"0123456789abcdefghij", 20));
    assert_int_equal(n, 11);
    assert_true(wsproto_frame_append(out, sizeof out, &n,
                                     (const unsigned char *)"0123456789abcdefghi", 19));
    assert_int_equal(n, 32);
}

int main(void)
{
    // clang-format off
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_header),
        cmocka_unit_test(test_frame_append),
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_id_echo),
        cmocka_unit_test(test_parse_malformed),
        cmocka_unit_test(test_parse_non_object),
        cmocka_unit_test(test_parse_type),
        cmocka_unit_test(test_parse_unknown_field_ignored),
        cmocka_unit_test(test_parse_id_types),
        cmocka_unit_test(test_parse_auth),
        cmocka_unit_test(test_parse_subject),
        cmocka_unit_test(test_parse_since),
        cmocka_unit_test(test_parse_publish),
        cmocka_unit_test(test_parse_nul),
        cmocka_unit_test(test_parse_duplicates),
        cmocka_unit_test(test_origin_exact),
        cmocka_unit_test(test_origin_case),
        cmocka_unit_test(test_origin_ports),
        cmocka_unit_test(test_origin_wildcard),
        cmocka_unit_test(test_origin_scheme),
        cmocka_unit_test(test_origin_null),
        cmocka_unit_test(test_origin_garbage),
        cmocka_unit_test(test_origin_ipv6),
        cmocka_unit_test(test_offers_protocol),
        cmocka_unit_test(test_cookie_value),
    };
    // clang-format on
    return cmocka_run_group_tests(tests, NULL, NULL);
}
