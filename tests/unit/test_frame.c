/* Unit tests for frame.c: the herald.v1 server → client encoders (contract
 * §3, "Server → client"), the `data` encoding rules, refcounting and the
 * UTF-8 / JSON-string helpers. Every frame is parsed back with jansson. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/frame.h"
#include "herald/utf8.h"
#include "herald/encoding.h"

#define S(x) (x), strlen(x)

static const char TIME[] = "2026-11-22T14:00:00.123Z";

/* The frame's payload as a JSON object; fails the test unless it is one
 * valid, NUL-terminated JSON object without trailing bytes. */
static json_t *parse(frame *f)
{
    assert_non_null(f);
    const char *p = (const char *)frame_payload(f);
    assert_int_equal(p[f->len], '\0');
    json_error_t err;
    json_t *o = json_loadb(p, f->len, JSON_ALLOW_NUL, &err);
    if (!o)
        fail_msg("frame is not JSON (%s): %.200s", err.text, p);
    assert_true(json_is_object(o));
    return o;
}

static const char *sget(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

/* An event frame for payload p; checks type/subject/time and returns the
 * parsed frame. */
static json_t *event(const char *subject, const void *p, size_t plen, int64_t seq, frame **fout)
{
    frame *f = frame_event(S(subject), p, plen, TIME, seq);
    assert_non_null(f);
    assert_true(f->is_event);
    json_t *o = parse(f);
    assert_string_equal(sget(o, "type"), "event");
    assert_string_equal(sget(o, "subject"), subject);
    assert_string_equal(sget(o, "time"), TIME);
    if (fout)
        *fout = f;
    else
        frame_release(f);
    return o;
}

/* The payload must be embedded verbatim: the frame contains it byte for byte
 * and `data` equals its parse. */
static void check_verbatim(const char *payload)
{
    frame *f;
    json_t *o = event("a.b", S(payload), -1, &f);
    assert_null(json_object_get(o, "data_b64"));
    json_error_t err;
    json_t *want = json_loads(payload, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    assert_non_null(want);
    assert_true(json_equal(json_object_get(o, "data"), want));
    assert_non_null(memmem(frame_payload(f), f->len, payload, strlen(payload)));
    json_decref(want);
    json_decref(o);
    frame_release(f);
}

/* `data` must be a JSON string whose value is exactly the payload bytes. */
static void check_as_string(const void *payload, size_t plen)
{
    json_t *o = event("a.b", payload, plen, -1, NULL);
    assert_null(json_object_get(o, "data_b64"));
    json_t *d = json_object_get(o, "data");
    assert_true(json_is_string(d));
    assert_int_equal(json_string_length(d), plen);
    assert_memory_equal(json_string_value(d), payload, plen);
    json_decref(o);
}

/* `data_b64` must replace `data` and decode to exactly the payload bytes. */
static void check_as_b64(const void *payload, size_t plen)
{
    json_t *o = event("a.b", payload, plen, -1, NULL);
    assert_null(json_object_get(o, "data"));
    const char *b = sget(o, "data_b64");
    size_t bl = strlen(b), got = 0;
    assert_int_equal(bl, enc_base64_encoded_len(plen));
    unsigned char *out = malloc(enc_base64_decoded_max(bl) + 1);
    assert_non_null(out);
    assert_true(enc_base64_decode(b, bl, out, enc_base64_decoded_max(bl) + 1, &got));
    assert_int_equal(got, plen);
    assert_memory_equal(out, payload, plen);
    free(out);
    json_decref(o);
}

/* ---- event: data encoding ------------------------------------------------ */

static void test_event_json_object(void **state)
{
    (void)state;
    check_verbatim("{\"status\":\"ok\",\"n\":[1,2,{\"x\":null}],\"u\":\"\\u00e9\xc3\xa9\"}");
    check_verbatim("{}");
    check_verbatim("[]");
    check_verbatim("[1,\"two\",{\"three\":3.5}]");
    /* whitespace around the value is part of valid JSON text */
    check_verbatim("  {\"a\" : 1}\n");
    check_verbatim("\t[ 1e5 , -0 , 0.5E-3 , 1E+2 , -12.75e-1 , 0 ]\r\n");
    check_verbatim("{\"a\":[{\"b\":[]}],\"c\":{},\"\":\"\"}");
    check_verbatim("\"\\ud83d\\ude00 \\/ \\b\\f\\n\\r\\t \\\"\\\\ \\u00E9\"");
    check_verbatim("[\"caf\xc3\xa9\", \"\xf0\x9f\x98\x80\", \"\x7f\"]");
    /* key order and formatting are kept: byte-for-byte, not re-serialised */
    frame *f;
    json_t *o = event("a.b", S("{\"z\":1, \"a\":2}"), -1, &f);
    assert_non_null(strstr((const char *)frame_payload(f), "\"data\":{\"z\":1, \"a\":2}"));
    json_decref(o);
    frame_release(f);
}

static void test_event_json_scalars(void **state)
{
    (void)state;
    check_verbatim("42");
    check_verbatim("-3.25e2");
    check_verbatim("true");
    check_verbatim("false");
    check_verbatim("null");
    check_verbatim("\"str\"");
    check_verbatim("\"with \\\"escapes\\\" \\n \\u263a\"");

    json_t *o = event("a.b", S("42"), -1, NULL);
    assert_true(json_is_integer(json_object_get(o, "data")));
    assert_int_equal(json_integer_value(json_object_get(o, "data")), 42);
    json_decref(o);

    o = event("a.b", S("true"), -1, NULL);
    assert_true(json_is_true(json_object_get(o, "data")));
    json_decref(o);

    o = event("a.b", S("null"), -1, NULL);
    assert_true(json_is_null(json_object_get(o, "data")));
    json_decref(o);

    /* a JSON string payload stays a string value, not double-encoded */
    o = event("a.b", S("\"str\""), -1, NULL);
    assert_string_equal(sget(o, "data"), "str");
    json_decref(o);
}

static void test_event_json_big_numbers(void **state)
{
    (void)state;
    /* Valid JSON that does not fit int64/double is still valid JSON: it is
     * embedded verbatim, not turned into a string. */
    const char *nums[] = {"18446744073709551615", "123456789012345678901234567890", "1e400",
                          "{\"id\":18446744073709551616}", "[-99999999999999999999999]"};
    char want[128];
    for (size_t i = 0; i < sizeof nums / sizeof *nums; i++) {
        /* (jansson itself cannot read these numbers back; compare bytes) */
        frame *f = frame_event(S("a.b"), S(nums[i]), TIME, -1);
        assert_non_null(f);
        snprintf(want, sizeof want,
                 "{\"type\":\"event\",\"subject\":\"a.b\",\"data\":%s,\"time\":\"%s\"}", nums[i],
                 TIME);
        assert_string_equal((const char *)frame_payload(f), want);
        assert_int_equal(f->len, strlen(want));
        frame_release(f);
    }
}

static void test_event_json_deep_nesting(void **state)
{
    (void)state;
    /* Deep but valid nesting is still JSON (beyond jansson's parser depth). */
    size_t depth = 5000;
    char *p = malloc(2 * depth + 1);
    assert_non_null(p);
    memset(p, '[', depth);
    memset(p + depth, ']', depth);
    p[2 * depth] = '\0';
    frame *f = frame_event(S("a.b"), p, 2 * depth, TIME, -1);
    assert_non_null(f);
    assert_non_null(strstr((const char *)frame_payload(f), "\"data\":[[[["));
    frame_release(f);
    /* unbalanced: text */
    p[2 * depth - 1] = '}';
    check_as_string(p, 2 * depth);
    free(p);
}

static void test_event_empty_payload(void **state)
{
    (void)state;
    json_t *o = event("a.b", "", 0, -1, NULL);
    assert_string_equal(sget(o, "data"), "");
    assert_null(json_object_get(o, "data_b64"));
    json_decref(o);
    o = event("a.b", NULL, 0, -1, NULL);
    assert_string_equal(sget(o, "data"), "");
    json_decref(o);
}

static void test_event_text_payload(void **state)
{
    (void)state;
    const char *texts[] = {
        "hello world",
        "say \"hi\"",
        "back\\slash \\n not an escape",
        "line1\nline2\r\nline3\ttab",
        "ctl \x01\x02\x1f\x7f end",
        "\b\f",
        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe6\x97\xa5\xe6\x9c\xac",
        "{\"a\":1", /* truncated JSON */
        "{'a':1}",  /* not JSON */
        "[1,2,]",   /* trailing comma */
        "01",       /* leading zero */
        "\"unterminated",
        "{\"a\":1} x", /* trailing garbage */
        "NaN",
        "Infinity",
        "TRUE",
        "\"\\x41\"",   /* bad escape */
        "\"\\ud800\"", /* lone surrogate escape */
        " ",
        "/",
        "\xef\xbb\xbf{}", /* BOM */
        "\"a\tb\"",       /* raw control char inside a JSON string */
        "1.",
        ".5",
        "-",
        "1e",
        "--1",
        "{\"a\" 1}",
        "{1:2}",
        "[1 2]",
        "nul",
        "{\"a\":1,}",
        "{\"a\":}",
        "[,]",
        "{,}",
        "{\"a\"}",
        "{\"a\" 1}",
        "[1,]",
        "\"\\u12\"",
        "\"\\u12G4\"",
        "\"\\ud83d\\u0041\"",
        "\"\\ud83d\"",
        "\"\\ude00\"",
        "\"\\ud83d\\",
        "-01",
        "1.e5",
        "+1",
        "0x10",
        "[",
        "]",
        "}",
        "{\"a\":1}}",
        "[]]",
        "[][]",
        "1 2",
        "tru",
        "nulll",
        "\"\\\"",
        "\"\\",
        "{\"a\":1 \"b\":2}",
        "[\"a\" : 1]",
        "{\"a\",1}",
        "\xc2\xa0"
        "1", /* NBSP is not JSON whitespace */
    };
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++)
        check_as_string(S(texts[i]));

    /* every byte 0x01..0x7f, and the frame stays a single line of JSON */
    char all[128];
    for (int i = 1; i < 128; i++)
        all[i - 1] = (char)i;
    check_as_string(all, 127);
    frame *f = frame_event(S("a.b"), all, 127, TIME, -1);
    assert_null(memchr(frame_payload(f), '\n', f->len));
    assert_null(memchr(frame_payload(f), '\r', f->len));
    frame_release(f);
}

static void test_event_binary_payload(void **state)
{
    (void)state;
    static const unsigned char bad[][4] = {
        {0xff, 'a', 'b', 'c'},   {0xc0, 0x80, 'x', 'y'},   {'x', 0xe0, 0x80, 0x80},
        {'x', 0xed, 0xa0, 0x80}, {0xf4, 0x90, 0x80, 0x80}, {'a', 'b', 'c', 0xc3},
        {'"', 0xff, '"', ' '},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        check_as_b64(bad[i], 4);
    /* lengths 1..5 cover every base64 padding case */
    static const unsigned char bin[] = {0xff, 0x00, 0x80, 0xfe, 0x01};
    for (size_t n = 1; n <= sizeof bin; n++)
        check_as_b64(bin, n);
    /* a JSON string holding invalid UTF-8 is not JSON */
    static const unsigned char jbad[] = {'"', 0xc3, 0x28, '"'};
    check_as_b64(jbad, sizeof jbad);
    /* all 256 byte values */
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    check_as_b64(all, sizeof all);
}

static void test_event_nul_bytes(void **state)
{
    (void)state;
    /* NUL is a valid UTF-8 code point (contract: "a JSON string when it is
     * valid UTF-8"): such payloads become a string escaping it as \u0000,
     * and decode to exactly the original bytes. */
    static const unsigned char nul[] = {'a', 0, 'b'};
    check_as_string(nul, sizeof nul);
    static const unsigned char nul_json[] = {'{', '}', 0}; /* not JSON: raw NUL */
    check_as_string(nul_json, sizeof nul_json);
    static const unsigned char zero[] = {0};
    check_as_string(zero, 1);
    static const unsigned char str_nul[] = {'"', 'a', 0, '"'}; /* raw NUL inside a string */
    check_as_string(str_nul, sizeof str_nul);
    frame *f = frame_event(S("a.b"), nul, sizeof nul, TIME, -1);
    assert_non_null(strstr((const char *)frame_payload(f), "\"data\":\"a\\u0000b\""));
    assert_null(memchr(frame_payload(f), 0, f->len));
    frame_release(f);
    /* NUL plus invalid UTF-8: base64 */
    static const unsigned char nul_bin[] = {0, 0xff, 0};
    check_as_b64(nul_bin, sizeof nul_bin);
}

static void test_event_json_with_escaped_nul(void **state)
{
    (void)state;
    /* \u0000 is valid JSON: embedded verbatim */
    const char *p = "{\"k\":\"a\\u0000b\"}";
    frame *f;
    json_t *o = event("a.b", S(p), -1, &f);
    assert_non_null(memmem(frame_payload(f), f->len, p, strlen(p)));
    json_t *k = json_object_get(json_object_get(o, "data"), "k");
    assert_true(json_is_string(k));
    assert_int_equal(json_string_length(k), 3);
    assert_memory_equal(json_string_value(k), "a\0b", 3);
    json_decref(o);
    frame_release(f);
    check_verbatim("\"\\u0000\"");
}

static void test_event_seq(void **state)
{
    (void)state;
    json_t *o = event("a.b", S("1"), -1, NULL);
    assert_null(json_object_get(o, "seq"));
    json_decref(o);
    o = event("a.b", S("1"), INT64_MIN, NULL);
    assert_null(json_object_get(o, "seq"));
    json_decref(o);
    int64_t seqs[] = {0, 1, 118, INT64_MAX};
    for (size_t i = 0; i < sizeof seqs / sizeof *seqs; i++) {
        o = event("a.b", S("1"), seqs[i], NULL);
        json_t *s = json_object_get(o, "seq");
        assert_true(json_is_integer(s));
        assert_true(json_integer_value(s) == seqs[i]);
        json_decref(o);
    }
    /* seq on binary and text payloads too */
    o = event("a.b", "\xff", 1, 7, NULL);
    assert_int_equal(json_integer_value(json_object_get(o, "seq")), 7);
    json_decref(o);
    o = event("a.b", S("text"), 8, NULL);
    assert_int_equal(json_integer_value(json_object_get(o, "seq")), 8);
    json_decref(o);
}

static void test_event_fields(void **state)
{
    (void)state;
    frame *f;
    json_t *o = event("deployments.u42.status", S("{\"a\":1}"), 118, &f);
    /* exactly type, subject, data, seq, time */
    assert_int_equal(json_object_size(o), 5);
    assert_non_null(json_object_get(o, "data"));
    assert_string_equal(sget(o, "time"), TIME);
    /* type comes first, so clients can dispatch on a prefix */
    assert_memory_equal(frame_payload(f), "{\"type\":\"event\"", 15);
    json_decref(o);
    frame_release(f);

    o = event("a", S("x"), -1, NULL);
    assert_int_equal(json_object_size(o), 4);
    json_decref(o);
}

static void test_event_odd_subjects(void **state)
{
    (void)state;
    const char *subjects[] = {
        "a",         "A-b_c.9",    "caf\xc3\xa9.\xe6\x97\xa5\xe6\x9c\xac.\xf0\x9f\x98\x80",
        "a\"b.c\\d", "#.$.%.{}.:", "x/y.z+w.a=b",
        "a.>.*"};
    for (size_t i = 0; i < sizeof subjects / sizeof *subjects; i++) {
        json_t *o = event(subjects[i], S("{}"), -1, NULL);
        json_decref(o);
    }
    /* the subject is taken by length, not to the first NUL */
    frame *f = frame_event("a.bcd", 3, S("1"), TIME, -1);
    json_t *o = parse(f);
    assert_string_equal(sget(o, "subject"), "a.b");
    json_decref(o);
    frame_release(f);
}

static void test_event_large(void **state)
{
    (void)state;
    size_t n = 1 << 20;
    char *p = malloc(n + 1);
    assert_non_null(p);

    /* 1 MiB JSON string payload: verbatim */
    p[0] = '"';
    for (size_t i = 1; i < n - 1; i++)
        p[i] = (char)('a' + i % 26);
    p[n - 1] = '"';
    p[n] = '\0';
    frame *f = frame_event(S("big.json"), p, n, TIME, 5);
    assert_non_null(f);
    assert_true(f->len > n);
    assert_non_null(memmem(frame_payload(f), f->len, p, n));
    json_t *o = parse(f);
    assert_int_equal(json_string_length(json_object_get(o, "data")), n - 2);
    json_decref(o);
    frame_release(f);

    /* 1 MiB of control characters: each escapes to 6 bytes */
    memset(p, 0x01, n);
    check_as_string(p, n);
    /* 1 MiB of quotes and backslashes */
    for (size_t i = 0; i < n; i++)
        p[i] = i % 2 ? '"' : '\\';
    check_as_string(p, n);
    /* 1 MiB of 4-byte UTF-8 */
    for (size_t i = 0; i + 4 <= n; i += 4)
        memcpy(p + i, "\xf0\x9f\x98\x80", 4);
    check_as_string(p, n);
    /* 1 MiB binary */
    for (size_t i = 0; i < n; i++)
        p[i] = (char)(i * 7 + 3);
    check_as_b64(p, n);
    free(p);
}

/* ---- control frames ------------------------------------------------------ */

static json_t *parse_release(frame *f)
{
    assert_false(f->is_event);
    json_t *o = parse(f);
    frame_release(f);
    return o;
}

static void test_ok_pong(void **state)
{
    (void)state;
    json_t *o = parse_release(frame_ok("1"));
    assert_int_equal(json_object_size(o), 2);
    assert_string_equal(sget(o, "type"), "ok");
    assert_string_equal(sget(o, "id"), "1");
    json_decref(o);

    o = parse_release(frame_ok(NULL));
    assert_int_equal(json_object_size(o), 1);
    assert_string_equal(sget(o, "type"), "ok");
    json_decref(o);

    o = parse_release(frame_pong("4"));
    assert_int_equal(json_object_size(o), 2);
    assert_string_equal(sget(o, "type"), "pong");
    assert_string_equal(sget(o, "id"), "4");
    json_decref(o);

    o = parse_release(frame_pong(NULL));
    assert_int_equal(json_object_size(o), 1);
    assert_string_equal(sget(o, "type"), "pong");
    json_decref(o);

    /* ids needing escapes are echoed exactly */
    const char *id = "a\"b\\c\n\xc3\xa9";
    o = parse_release(frame_ok(id));
    assert_string_equal(sget(o, "id"), id);
    json_decref(o);
    o = parse_release(frame_ok(""));
    assert_string_equal(sget(o, "id"), "");
    json_decref(o);
}

static void test_error(void **state)
{
    (void)state;
    json_t *o = parse_release(frame_error("1", "forbidden", "not allowed", "a.b", -1));
    assert_int_equal(json_object_size(o), 5);
    assert_string_equal(sget(o, "type"), "error");
    assert_string_equal(sget(o, "id"), "1");
    assert_string_equal(sget(o, "code"), "forbidden");
    assert_string_equal(sget(o, "message"), "not allowed");
    assert_string_equal(sget(o, "subject"), "a.b");
    assert_null(json_object_get(o, "first_seq"));
    json_decref(o);

    o = parse_release(frame_error(NULL, "unauthorized", "bad token", NULL, -1));
    assert_int_equal(json_object_size(o), 3);
    assert_null(json_object_get(o, "id"));
    assert_null(json_object_get(o, "subject"));
    assert_null(json_object_get(o, "first_seq"));
    assert_string_equal(sget(o, "code"), "unauthorized");
    json_decref(o);

    o = parse_release(frame_error("7", "history_gap", "gap", NULL, 42));
    assert_int_equal(json_object_size(o), 5);
    assert_int_equal(json_integer_value(json_object_get(o, "first_seq")), 42);
    json_decref(o);

    o = parse_release(frame_error("7", "history_gap", "gap", "x.y", 0));
    assert_int_equal(json_object_size(o), 6);
    assert_true(json_is_integer(json_object_get(o, "first_seq")));
    assert_int_equal(json_integer_value(json_object_get(o, "first_seq")), 0);
    json_decref(o);

    o = parse_release(frame_error("7", "history_gap", "gap", NULL, INT64_MAX));
    assert_true(json_integer_value(json_object_get(o, "first_seq")) == INT64_MAX);
    json_decref(o);

    o = parse_release(frame_error("x", "bad_request", "field \"q\"\n", NULL, -5));
    assert_string_equal(sget(o, "message"), "field \"q\"\n");
    assert_null(json_object_get(o, "first_seq"));
    json_decref(o);
}

static void test_dropped(void **state)
{
    (void)state;
    uint64_t counts[] = {0, 1, 57, (uint64_t)INT64_MAX};
    for (size_t i = 0; i < sizeof counts / sizeof *counts; i++) {
        json_t *o = parse_release(frame_dropped(counts[i]));
        assert_int_equal(json_object_size(o), 2);
        assert_string_equal(sget(o, "type"), "dropped");
        assert_true(json_is_integer(json_object_get(o, "count")));
        assert_true((uint64_t)json_integer_value(json_object_get(o, "count")) == counts[i]);
        json_decref(o);
    }
    frame *f = frame_dropped(57);
    assert_string_equal((const char *)frame_payload(f), "{\"type\":\"dropped\",\"count\":57}");
    frame_release(f);
}

static void test_from_json(void **state)
{
    (void)state;
    json_t *o = json_pack("{s:s, s:s, s:[i,i]}", "type", "ready", "session", "s1", "roles", 1, 2);
    frame *f = frame_from_json(o);
    assert_non_null(f);
    assert_false(f->is_event);
    assert_string_equal((const char *)frame_payload(f),
                        "{\"type\":\"ready\",\"session\":\"s1\",\"roles\":[1,2]}");
    assert_int_equal(f->len, strlen((const char *)frame_payload(f)));
    assert_int_equal(o->refcount, 1); /* not stolen */
    frame_release(f);
    json_decref(o);
}

/* ---- refcounting --------------------------------------------------------- */

static void test_refcount(void **state)
{
    (void)state;
    frame *f = frame_ok("1");
    assert_int_equal(atomic_load(&f->refs), 1);
    assert_ptr_equal(frame_ref(f), f);
    assert_ptr_equal(frame_ref(f), f);
    assert_int_equal(atomic_load(&f->refs), 3);
    frame_release(f);
    frame_release(f);
    assert_int_equal(atomic_load(&f->refs), 1);
    /* still readable while referenced */
    json_t *o = parse(f);
    json_decref(o);
    frame_release(f); /* last: frees (ASan/LSan would report otherwise) */
    frame_release(NULL);

    frame *n = frame_new(10);
    assert_non_null(n);
    assert_int_equal(n->len, 10);
    assert_false(n->is_event);
    assert_int_equal(frame_payload(n)[10], '\0');
    assert_ptr_equal(frame_payload(n), n->data + FRAME_PRE);
    memset(frame_payload(n), 'x', 10);
    memset(n->data, 0, FRAME_PRE); /* the header room is writable */
    frame_release(n);

    frame *e = frame_event(S("a.b"), S("1"), TIME, -1);
    frame_ref(e);
    frame_release(e);
    frame_release(e);
}

/* ---- UTF-8 and JSON strings ---------------------------------------------- */

static void test_utf8_valid(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t len;
        bool ok;
    } t[] = {
        {"", 0, true},
        {"ascii", 5, true},
        {"\x00", 1, true}, /* NUL is valid UTF-8 */
        {"\x7f", 1, true},
        {"\xc2\x80", 2, true},         /* U+0080 */
        {"\xdf\xbf", 2, true},         /* U+07FF */
        {"\xe0\xa0\x80", 3, true},     /* U+0800 */
        {"\xed\x9f\xbf", 3, true},     /* U+D7FF */
        {"\xee\x80\x80", 3, true},     /* U+E000 */
        {"\xef\xbf\xbf", 3, true},     /* U+FFFF */
        {"\xf0\x90\x80\x80", 4, true}, /* U+10000 */
        {"\xf4\x8f\xbf\xbf", 4, true}, /* U+10FFFF */
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14, true},
        /* around the word-at-a-time ASCII scan */
        {"abcdefgh\xc3\xa9ijklmnop", 18, true},
        {"abcdefghijklmnop\xe2\x82\xac", 19, true},
        {"abcdefgh\xff", 9, false},
        {"abcdefghijklmno\x80", 16, false},
        {"abcdefg\xc3", 8, false}, /* truncated at the word's end */
        {"abcdefgh\xc3", 9, false},
        {"\x80", 1, false}, /* lone continuation */
        {"\xbf", 1, false},
        {"\xc0\x80", 2, false},                 /* overlong NUL */
        {"\xc1\xbf", 2, false},                 /* overlong */
        {"\xe0\x80\x80", 3, false},             /* overlong */
        {"\xe0\x9f\xbf", 3, false},             /* overlong U+07FF */
        {"\xf0\x80\x80\x80", 4, false},         /* overlong */
        {"\xf0\x8f\xbf\xbf", 4, false},         /* overlong U+FFFF */
        {"\xed\xa0\x80", 3, false},             /* U+D800 */
        {"\xed\xbf\xbf", 3, false},             /* U+DFFF */
        {"\xed\xa0\x80\xed\xb0\x80", 6, false}, /* CESU-8 pair */
        {"\xf4\x90\x80\x80", 4, false},         /* U+110000 */
        {"\xf5\x80\x80\x80", 4, false},
        {"\xf8\x88\x80\x80\x80", 5, false}, /* 5-byte form */
        {"\xfe", 1, false},
        {"\xff", 1, false},
        {"\xc3", 1, false}, /* truncated at end */
        {"ab\xc3", 3, false},
        {"ab\xe2\x82", 4, false},
        {"ab\xe2", 3, false},
        {"ab\xf0\x9f\x98", 5, false},
        {"ab\xf0\x9f", 4, false},
        {"ab\xf0", 3, false},
        {"\xc3\x28", 2, false}, /* bad continuation */
        {"\xe2\x28\xa1", 3, false},
        {"\xe2\x82\x28", 3, false},
        {"\xf0\x28\x8c\xbc", 4, false},
        {"\xf0\x9f\x98\x28", 4, false},
        {"\xc3\xa9\xc3", 3, false},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        if (utf8_valid(t[i].s, t[i].len) != t[i].ok)
            fail_msg("utf8_valid case %zu: expected %d", i, t[i].ok);
    }
    /* the length bounds the scan: a valid prefix of an invalid buffer */
    assert_true(utf8_valid("ab\xff", 2));
    assert_false(utf8_valid("\xe2\x82\xac", 2));
}

static void test_json_string(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t len;
        const char *out;
    } t[] = {
        {"", 0, "\"\""},
        {"abc", 3, "\"abc\""},
        {"a\"b", 3, "\"a\\\"b\""},
        {"a\\b", 3, "\"a\\\\b\""},
        {"\n\r\t", 3, "\"\\n\\r\\t\""},
        {"\x01\x1f", 2, "\"\\u0001\\u001f\""},
        {"a\0b", 3, "\"a\\u0000b\""},
        {"\x7f/", 2, "\"\x7f/\""},
        {"\xc3\xa9\xf0\x9f\x98\x80", 6, "\"\xc3\xa9\xf0\x9f\x98\x80\""},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        size_t need = strlen(t[i].out);
        /* at an offset, into an exactly-sized heap buffer (ASan checks bounds) */
        for (size_t off = 0; off <= 3; off += 3) {
            char *buf = malloc(off + need);
            assert_non_null(buf);
            memset(buf, '#', off);
            size_t pos = off;
            assert_true(frame_json_string(buf, off + need, &pos, t[i].in, t[i].len));
            assert_int_equal(pos, off + need);
            assert_memory_equal(buf + off, t[i].out, need);
            free(buf);
            /* every smaller capacity fails and leaves pos alone */
            for (size_t cap = off; cap < off + need; cap++) {
                buf = malloc(cap ? cap : 1);
                assert_non_null(buf);
                pos = off;
                assert_false(frame_json_string(buf, cap, &pos, t[i].in, t[i].len));
                assert_int_equal(pos, off);
                free(buf);
            }
        }
        /* jansson reads back the same bytes */
        char buf[64];
        size_t pos = 0;
        assert_true(frame_json_string(buf, sizeof buf, &pos, t[i].in, t[i].len));
        json_error_t err;
        json_t *j = json_loadb(buf, pos, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        assert_non_null(j);
        assert_int_equal(json_string_length(j), t[i].len);
        assert_memory_equal(json_string_value(j), t[i].in, t[i].len);
        json_decref(j);
    }
    /* pos beyond cap */
    char small[4];
    size_t pos = 10;
    assert_false(frame_json_string(small, sizeof small, &pos, "a", 1));
    assert_int_equal(pos, 10);
}

/* frame_event_is recognises the frame of another copy of the same message
 * (evcache.h) whatever the payload's encoding, and nothing else. */
static void test_event_is(void **state)
{
    (void)state;
    static const struct {
        const char *payload;
        size_t len;
    } payloads[] = {
        {"{\"a\":[1,2]}", 11}, /* verbatim JSON */
        {"plain text", 10},    /* JSON string */
        {"\xff\xfe\x00x", 4},  /* base64 */
        {"", 0},               /* "" */
    };
    for (size_t i = 0; i < sizeof payloads / sizeof *payloads; i++) {
        const char *p = payloads[i].payload;
        size_t n = payloads[i].len;
        frame *f = frame_event(S("a.b"), p, n, TIME, -1);
        frame *g = frame_event(S("a.b"), p, n, TIME, 7);
        assert_non_null(f);
        assert_non_null(g);
        assert_true(frame_event_is(f, S("a.b"), p, n, -1));
        assert_true(frame_event_is(f, S("a.b"), p, n, -5)); /* any negative: no seq */
        assert_false(frame_event_is(f, S("a.b"), p, n, 7));
        assert_true(frame_event_is(g, S("a.b"), p, n, 7));
        assert_false(frame_event_is(g, S("a.b"), p, n, 8));
        assert_false(frame_event_is(f, S("a.c"), p, n, -1));
        assert_false(frame_event_is(f, S("a.bb"), p, n, -1));
        assert_false(frame_event_is(f, S("a.b"), "{\"a\":[1,3]}", 11, -1));
        assert_false(frame_event_is(f, S("a.b"), p, n + (n ? -1 : 1) * 1, -1));
        frame_release(f);
        frame_release(g);
    }
    frame *c = frame_ok("1"); /* not an event */
    assert_false(frame_event_is(c, S("a.b"), "", 0, -1));
    frame_release(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_json_object),
        cmocka_unit_test(test_event_json_scalars),
        cmocka_unit_test(test_event_json_big_numbers),
        cmocka_unit_test(test_event_json_deep_nesting),
        cmocka_unit_test(test_event_empty_payload),
        cmocka_unit_test(test_event_text_payload),
        cmocka_unit_test(test_event_binary_payload),
        cmocka_unit_test(test_event_nul_bytes),
        cmocka_unit_test(test_event_json_with_escaped_nul),
        cmocka_unit_test(test_event_seq),
        cmocka_unit_test(test_event_fields),
        cmocka_unit_test(test_event_odd_subjects),
        cmocka_unit_test(test_event_large),
        cmocka_unit_test(test_event_is),
        cmocka_unit_test(test_ok_pong),
        cmocka_unit_test(test_error),
        cmocka_unit_test(test_dropped),
        cmocka_unit_test(test_from_json),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_json_string),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
