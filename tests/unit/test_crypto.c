/* Unit tests for crypto: FIPS 180-2 SHA-256 and RFC 4231 HMAC-SHA256
 * vectors, the incremental API against the one-shot one (chunked as a body
 * streams), constant-time compare, random ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "herald/crypto.h"
#include "herald/encoding.h"

static void hex_of(const unsigned char d[HC_SHA256_LEN], char out[HC_SHA256_HEX_LEN + 1])
{
    enc_hex_encode(d, HC_SHA256_LEN, out);
}

static void test_sha256(void **state)
{
    char hex[HC_SHA256_HEX_LEN + 1];
    assert_true(hc_sha256_hex("abc", 3, hex));
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_true(hc_sha256_hex(NULL, 0, hex));
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    static const char two_blocks[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    unsigned char d[HC_SHA256_LEN];
    assert_true(hc_sha256(two_blocks, strlen(two_blocks), d));
    hex_of(d, hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");

    /* Incremental, one byte at a time, then reused. */
    hc_hash *h = hc_hash_new();
    assert_non_null(h);
    for (size_t i = 0; i < strlen(two_blocks); i++)
        assert_true(hc_hash_update(h, two_blocks + i, 1));
    unsigned char d2[HC_SHA256_LEN];
    assert_true(hc_hash_final(h, d2));
    assert_memory_equal(d, d2, sizeof d);
    assert_true(hc_hash_init(h));
    assert_true(hc_hash_update(h, NULL, 0));
    assert_true(hc_hash_final(h, d2));
    hex_of(d2, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    hc_hash_free(h);
    hc_hash_free(NULL);
}

/* RFC 4231 test cases 1, 2 and 6 (a key longer than the block). */
static void test_hmac_rfc4231(void **state)
{
    unsigned char key1[20], key6[131];
    memset(key1, 0x0b, sizeof key1);
    memset(key6, 0xaa, sizeof key6);
    static const char data6[] = "Test Using Larger Than Block-Size Key - Hash Key First";
    const struct {
        const void *key;
        size_t klen;
        const char *data;
        const char *mac;
    } vec[] = {
        {key1, sizeof key1, "Hi There",
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
        {"Jefe", 4, "what do ya want for nothing?",
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
        {key6, sizeof key6, data6,
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
    };
    hc_hmac *m = hc_hmac_new();
    assert_non_null(m);
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
        unsigned char mac[HC_SHA256_LEN];
        char hex[HC_SHA256_HEX_LEN + 1];
        assert_true(hc_hmac_sha256(vec[i].key, vec[i].klen, vec[i].data, strlen(vec[i].data), mac));
        hex_of(mac, hex);
        assert_string_equal(hex, vec[i].mac);
        /* The same streamed in uneven chunks, with the object reused. */
        assert_true(hc_hmac_init(m, vec[i].key, vec[i].klen));
        size_t len = strlen(vec[i].data);
        for (size_t off = 0, step = 1; off < len; off += step, step += 2)
            assert_true(hc_hmac_update(m, vec[i].data + off, off + step > len ? len - off : step));
        memset(mac, 0, sizeof mac);
        assert_true(hc_hmac_final(m, mac));
        hex_of(mac, hex);
        assert_string_equal(hex, vec[i].mac);
    }
    /* Empty key and empty data work in both forms. */
    unsigned char a[HC_SHA256_LEN], b[HC_SHA256_LEN];
    assert_true(hc_hmac_sha256(NULL, 0, NULL, 0, a));
    assert_true(hc_hmac_init(m, NULL, 0));
    assert_true(hc_hmac_update(m, NULL, 0));
    assert_true(hc_hmac_final(m, b));
    assert_memory_equal(a, b, sizeof a);
    hc_hmac_free(m);
    hc_hmac_free(NULL);
}

static void test_ct_equal_and_wipe(void **state)
{
    unsigned char a[32], b[32];
    memset(a, 7, sizeof a);
    memset(b, 7, sizeof b);
    assert_true(hc_ct_equal(a, b, sizeof a));
    b[31] ^= 1;
    assert_false(hc_ct_equal(a, b, sizeof a));
    assert_true(hc_ct_equal(a, b, 31));
    assert_true(hc_ct_equal(a, b, 0));
    hc_wipe(a, sizeof a);
    for (size_t i = 0; i < sizeof a; i++)
        assert_int_equal(a[i], 0);
}

static void test_random_and_uuid(void **state)
{
    unsigned char r1[16] = {0}, r2[16] = {0};
    assert_true(hc_random(r1, sizeof r1));
    assert_true(hc_random(r2, sizeof r2));
    assert_memory_not_equal(r1, r2, sizeof r1);

    char u1[HC_UUID_LEN + 1], u2[HC_UUID_LEN + 1];
    hc_uuid4(u1);
    hc_uuid4(u2);
    assert_int_equal(strlen(u1), HC_UUID_LEN);
    assert_string_not_equal(u1, u2);
    for (size_t i = 0; i < HC_UUID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(u1[i], '-');
        else
            assert_non_null(strchr("0123456789abcdef", u1[i]));
    }
    assert_int_equal(u1[14], '4');           /* version 4 */
    assert_non_null(strchr("89ab", u1[19])); /* RFC 4122 variant */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_hmac_rfc4231),
        cmocka_unit_test(test_ct_equal_and_wipe),
        cmocka_unit_test(test_random_and_uuid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
