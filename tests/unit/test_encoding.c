/* Unit tests for encoding: hex, base64, base64url (RFC 4648 §10 vectors,
 * the edge cases each decoder must refuse, round trips). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "herald/encoding.h"

static void test_hex(void **state)
{
    unsigned char buf[8];
    size_t n = 99;
    char out[17];
    enc_hex_encode((const unsigned char *)"\x00\xff\x10\xab", 4, out);
    assert_string_equal(out, "00ff10ab");
    enc_hex_encode(buf, 0, out);
    assert_string_equal(out, "");
    assert_true(enc_hex_decode("00fF10Ab", 8, buf, sizeof buf, &n));
    assert_int_equal(n, 4);
    assert_memory_equal(buf, "\x00\xff\x10\xab", 4);
    assert_true(enc_hex_decode("", 0, buf, 0, &n));
    assert_int_equal(n, 0);
    assert_false(enc_hex_decode("abc", 3, buf, sizeof buf, &n));
    assert_false(enc_hex_decode("0g", 2, buf, sizeof buf, &n));
    assert_false(enc_hex_decode(" 0", 2, buf, sizeof buf, &n));
    assert_false(enc_hex_decode("000000", 6, buf, 2, &n)); /* too long for out */
}

static void test_base64(void **state)
{
    unsigned char buf[16];
    size_t n = 99;
    char out[32];

    assert_int_equal(enc_base64_encoded_len(0), 0);
    assert_int_equal(enc_base64_encoded_len(1), 4);
    assert_int_equal(enc_base64_encoded_len(3), 4);
    assert_int_equal(enc_base64_encoded_len(4), 8);
    assert_int_equal(enc_base64_encode((const unsigned char *)"a", 1, out), 4);
    assert_string_equal(out, "YQ==");
    assert_int_equal(enc_base64_encode((const unsigned char *)"ab\0", 3, out), 4);
    assert_string_equal(out, "YWIA");
    assert_int_equal(enc_base64_encode(buf, 0, out), 0);
    assert_string_equal(out, "");

    static const struct {
        const char *in;
        const char *out;
        size_t n;
    } good[] = {
        {"", "", 0},
        {"YQ==", "a", 1},
        {"YQ", "a", 1},
        {"YWI=", "ab", 2},
        {"YWI", "ab", 2},
        {"YWJj", "abc", 3},
        {"YWIA", "ab\0", 3},
        {"+/+/", "\xfb\xff\xbf", 3},
        {"AAAAAA==", "\0\0\0\0", 4},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (!enc_base64_decode(good[i].in, strlen(good[i].in), buf, sizeof buf, &n))
            fail_msg("good case %zu (%s) rejected", i, good[i].in);
        assert_int_equal(n, good[i].n);
        assert_memory_equal(buf, good[i].out, n);
    }
    static const char *const bad[] = {
        "Y",    "YQ=",   "YQ===", "Y===",   "====", "=",    "YQ==YQ==",
        "Y=Q=", " YQ==", "YQ== ", "YQ\n==", "-_-_", "YW*j", "YWJjZ",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (enc_base64_decode(bad[i], strlen(bad[i]), buf, sizeof buf, &n))
            fail_msg("bad case %zu (%s) accepted", i, bad[i]);
    /* Capacity: 3 bytes do not fit in 2. */
    assert_false(enc_base64_decode("YWJj", 4, buf, 2, &n));
    assert_true(enc_base64_decode("YWI=", 4, buf, 2, &n));
    assert_true(enc_base64_decoded_max(4) >= 3);
    assert_true(enc_base64_decoded_max(3) >= 2);

    /* Round trip over all lengths 0..15 of bytes 0..255. */
    unsigned char src[16];
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (unsigned char)(i * 37 + 200);
    for (size_t len = 0; len <= sizeof src; len++) {
        size_t w = enc_base64_encode(src, len, out);
        assert_int_equal(w, enc_base64_encoded_len(len));
        assert_true(enc_base64_decode(out, w, buf, sizeof buf, &n));
        assert_int_equal(n, len);
        assert_memory_equal(buf, src, len);
    }
}

static void test_base64_rfc4648(void **state)
{
    static const char *const vec[][2] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    char out[16];
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
        enc_base64_encode((const unsigned char *)vec[i][0], strlen(vec[i][0]), out);
        assert_string_equal(out, vec[i][1]);
    }
}

static void test_base64url(void **state)
{
    unsigned char buf[16];
    size_t n = 99;
    char out[32];

    /* RFC 4648 §10 without padding, and the two characters that differ. */
    static const char *const vec[][2] = {
        {"", ""},           {"f", "Zg"},          {"fo", "Zm8"},          {"foo", "Zm9v"},
        {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}, {"\xfb\xff\xbf", "-_-_"},
    };
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
        size_t len = strlen(vec[i][0]);
        assert_int_equal(enc_base64url_encode((const unsigned char *)vec[i][0], len, out),
                         strlen(vec[i][1]));
        assert_string_equal(out, vec[i][1]);
        assert_int_equal(enc_base64url_encoded_len(len), strlen(vec[i][1]));
        assert_true(enc_base64url_decode(vec[i][1], strlen(vec[i][1]), buf, sizeof buf, &n));
        assert_int_equal(n, len);
        assert_memory_equal(buf, vec[i][0], len);
    }
    /* Strict: no padding, no standard alphabet, no 1 mod 4, no stray bits. */
    static const char *const bad[] = {"Zg==", "Zm8=", "+/+/", "Z", "Zm9vY", "Zh", "Zm9", "Zm 9v"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (enc_base64url_decode(bad[i], strlen(bad[i]), buf, sizeof buf, &n))
            fail_msg("bad case %zu (%s) accepted", i, bad[i]);
    assert_false(enc_base64url_decode("Zm9v", 4, buf, 2, &n)); /* capacity */

    assert_true(enc_base64url_char('-'));
    assert_true(enc_base64url_char('_'));
    assert_true(enc_base64url_char('z'));
    assert_false(enc_base64url_char('+'));
    assert_false(enc_base64url_char('/'));
    assert_false(enc_base64url_char('='));
    assert_false(enc_base64url_char('.'));

    /* Round trip over all lengths 0..15. */
    unsigned char src[16];
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (unsigned char)(i * 37 + 200);
    for (size_t len = 0; len <= sizeof src; len++) {
        size_t w = enc_base64url_encode(src, len, out);
        assert_int_equal(w, enc_base64url_encoded_len(len));
        assert_true(enc_base64url_decode(out, w, buf, sizeof buf, &n));
        assert_int_equal(n, len);
        assert_memory_equal(buf, src, len);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_base64_rfc4648),
        cmocka_unit_test(test_base64url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
