/* crypto: the digests, MACs and random values herald's modules share
 * (webhook signatures, bearer token and API key digests, the replay cache
 * key, Nats-Msg-Ids), over OpenSSL 3 libcrypto. hc_ = herald crypto.
 * Owns: SHA-256 and HMAC-SHA256, one-shot and incremental (hc_hash,
 * hc_hmac: feed a body chunk by chunk as it streams), constant-time
 * comparison, random bytes and UUIDs.
 * Does not own: text encodings (encoding.h), keys or secrets (callers own
 * and wipe them).
 * No I/O but libcrypto's random source; no mutable globals (the HMAC
 * implementation is fetched once, then only read). Any thread may call any
 * function; one hc_hash / hc_hmac is used by one thread at a time. */
#ifndef HERALD_CRYPTO_H
#define HERALD_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>

#define HC_SHA256_LEN     32 /* bytes in a SHA-256 digest / HMAC-SHA256 */
#define HC_SHA256_HEX_LEN 64 /* hex characters for one digest (no NUL) */
#define HC_UUID_LEN       36 /* characters in a UUID's text (no NUL) */

/* ---- one-shot --------------------------------------------------------------- */

/* SHA-256 of data[0..len). False only if libcrypto fails. */
bool hc_sha256(const void *data, size_t len, unsigned char out[HC_SHA256_LEN]);

/* SHA-256 of data as 64 lowercase hex characters plus NUL. */
bool hc_sha256_hex(const void *data, size_t len, char out[HC_SHA256_HEX_LEN + 1]);

/* HMAC-SHA256 of data under key (either may be empty). */
bool hc_hmac_sha256(const void *key, size_t klen, const void *data, size_t len,
                    unsigned char out[HC_SHA256_LEN]);

/* ---- incremental: new → (init → update* → final)* → free ---------------------- */

typedef struct hc_hash hc_hash; /* SHA-256 in progress */
typedef struct hc_hmac hc_hmac; /* HMAC-SHA256 in progress */

/* NULL on allocation failure. A new hc_hash is ready for update; a new
 * hc_hmac needs hc_hmac_init. Free with the matching _free (NULL is a
 * no-op). After final, init starts over (the same object serves any number
 * of digests or keys). Every call returns false only if libcrypto fails;
 * after a failure only init or free may follow. */
hc_hash *hc_hash_new(void);
bool hc_hash_init(hc_hash *h);
bool hc_hash_update(hc_hash *h, const void *data, size_t len);
bool hc_hash_final(hc_hash *h, unsigned char out[HC_SHA256_LEN]);
void hc_hash_free(hc_hash *h);

hc_hmac *hc_hmac_new(void);
/* Start a MAC under key[0..klen) (copied by libcrypto; klen may be 0). */
bool hc_hmac_init(hc_hmac *m, const void *key, size_t klen);
bool hc_hmac_update(hc_hmac *m, const void *data, size_t len);
bool hc_hmac_final(hc_hmac *m, unsigned char out[HC_SHA256_LEN]);
void hc_hmac_free(hc_hmac *m); /* wipes the key state */

/* ---- comparison and randomness ------------------------------------------------ */

/* Constant-time equality of two n-byte buffers (time depends on n only). */
bool hc_ct_equal(const void *a, const void *b, size_t n);

/* Overwrite n bytes so the compiler cannot drop it (secrets, MACs). */
void hc_wipe(void *p, size_t n);

/* n bytes from libcrypto's CSPRNG. False if it failed (out is then
 * undefined). */
bool hc_random(void *out, size_t n);

/* A random UUID v4 as 36 lowercase characters + NUL. Never fails: should
 * the CSPRNG fail, rand() fills in (a unique id, not a secret). */
void hc_uuid4(char out[HC_UUID_LEN + 1]);

#endif
