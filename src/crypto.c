/* crypto: SHA-256, HMAC-SHA256 (EVP_MAC: the HMAC_CTX API is deprecated in
 * OpenSSL 3, STACK-NOTES §8), CRYPTO_memcmp, RAND_bytes. */
#include "herald/crypto.h"
#include "herald/encoding.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <openssl/rand.h>

struct hc_hash {
    EVP_MD_CTX *md;
};

struct hc_hmac {
    EVP_MAC_CTX *ctx;
};

static const unsigned char EMPTY = 0; /* a valid pointer for empty inputs */

bool hc_sha256(const void *data, size_t len, unsigned char out[HC_SHA256_LEN])
{
    unsigned int n = 0;
    return EVP_Digest(len ? data : &EMPTY, len, out, &n, EVP_sha256(), NULL) == 1 &&
           n == HC_SHA256_LEN;
}

bool hc_sha256_hex(const void *data, size_t len, char out[HC_SHA256_HEX_LEN + 1])
{
    unsigned char d[HC_SHA256_LEN];
    if (!hc_sha256(data, len, d))
        return false;
    enc_hex_encode(d, sizeof d, out);
    return true;
}

bool hc_hmac_sha256(const void *key, size_t klen, const void *data, size_t len,
                    unsigned char out[HC_SHA256_LEN])
{
    unsigned int n = 0;
    return HMAC(EVP_sha256(), klen ? key : &EMPTY, (int)klen,
                len ? (const unsigned char *)data : &EMPTY, len, out, &n) != NULL &&
           n == HC_SHA256_LEN;
}

hc_hash *hc_hash_new(void)
{
    hc_hash *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    if (!(h->md = EVP_MD_CTX_new()) || !hc_hash_init(h)) {
        hc_hash_free(h);
        return NULL;
    }
    return h;
}

bool hc_hash_init(hc_hash *h)
{
    return EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) == 1;
}

bool hc_hash_update(hc_hash *h, const void *data, size_t len)
{
    return len == 0 || EVP_DigestUpdate(h->md, data, len) == 1;
}

bool hc_hash_final(hc_hash *h, unsigned char out[HC_SHA256_LEN])
{
    unsigned int n = 0;
    return EVP_DigestFinal_ex(h->md, out, &n) == 1 && n == HC_SHA256_LEN;
}

void hc_hash_free(hc_hash *h)
{
    if (!h)
        return;
    EVP_MD_CTX_free(h->md);
    free(h);
}

/* The HMAC implementation, fetched once per process and then only read
 * (EVP_MAC objects are reference counted and thread-safe to share). */
static EVP_MAC *hmac_impl;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void fetch_hmac(void)
{
    hmac_impl = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
}

hc_hmac *hc_hmac_new(void)
{
    pthread_once(&hmac_once, fetch_hmac);
    if (!hmac_impl)
        return NULL;
    hc_hmac *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    if (!(m->ctx = EVP_MAC_CTX_new(hmac_impl))) {
        free(m);
        return NULL;
    }
    return m;
}

bool hc_hmac_init(hc_hmac *m, const void *key, size_t klen)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    return EVP_MAC_init(m->ctx, klen ? key : &EMPTY, klen, params) == 1;
}

bool hc_hmac_update(hc_hmac *m, const void *data, size_t len)
{
    return len == 0 || EVP_MAC_update(m->ctx, data, len) == 1;
}

bool hc_hmac_final(hc_hmac *m, unsigned char out[HC_SHA256_LEN])
{
    size_t n = 0;
    return EVP_MAC_final(m->ctx, out, &n, HC_SHA256_LEN) == 1 && n == HC_SHA256_LEN;
}

void hc_hmac_free(hc_hmac *m)
{
    if (!m)
        return;
    EVP_MAC_CTX_free(m->ctx); /* cleanses the key schedule */
    free(m);
}

bool hc_ct_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

void hc_wipe(void *p, size_t n)
{
    OPENSSL_cleanse(p, n);
}

bool hc_random(void *out, size_t n)
{
    return n <= (size_t)INT32_MAX && RAND_bytes(out, (int)n) == 1;
}

void hc_uuid4(char out[HC_UUID_LEN + 1])
{
    unsigned char b[16];
    if (!hc_random(b, sizeof b)) {
        for (size_t i = 0; i < sizeof b; i++)
            b[i] = (unsigned char)rand();
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, HC_UUID_LEN + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}
