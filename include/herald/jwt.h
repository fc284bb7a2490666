/* jwt: bearer-token verification (contract §3 "Authentication", §6 auth.jwt.*).
 * Owns: the configured verification keys (HS256 secrets, RS256/ES256 public
 * keys), the checks of a compact JWS (size, shape, header, algorithm pinning,
 * kid selection, signature via libjwt) and of its claims (exp, nbf, iss, aud,
 * sub, roles), and the principal extracted from a good token.
 * No I/O except reading the PEM public-key files inside hjwt_verifier_new();
 * no clock (the caller passes `now`), no globals, no logging.
 * Prefix hjwt_: libjwt's own header is <jwt.h> and owns the jwt_ prefix.
 *
 * Ownership: the caller owns the hjwt_key array and everything it points to;
 * hjwt_verifier_new() copies what it keeps. The verifier is freed with
 * hjwt_verifier_free(). A principal lives in the caller's storage; its fields
 * are owned by it and released with hjwt_principal_clear().
 * Threads: a verifier is immutable after construction; any number of threads
 * may call hjwt_verify() on it at once. */
#ifndef HERALD_JWT_H
#define HERALD_JWT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "herald/status.h"

#define HJWT_MAX_TOKEN_BYTES 8192 /* longer tokens are refused before decoding */
#define HJWT_MAX_LEEWAY_S    300
#define HJWT_RSA_MIN_BITS    2048
/* Latest accepted `exp`: 9999-12-31T23:59:59Z. A later one is malformed
 * (contract §3): it could not be turned into milliseconds or a timer. */
#define HJWT_MAX_EXP_S 253402300799LL

/* One configured key (one entry of auth.jwt.keys). Each key is bound to its
 * algorithm: a token is only ever checked against keys of its own `alg`. */
typedef struct {
    const char *alg;             /* "HS256", "RS256" or "ES256", exact case */
    const char *kid;             /* optional key id; NULL = none */
    const unsigned char *secret; /* HS256: secret bytes (caller resolved secret_env) */
    size_t secret_len;           /* HS256: must be > 0 */
    const char *public_key_file; /* RS256/ES256: PEM public key (SPKI or PKCS#1 RSA) */
} hjwt_key;

typedef struct hjwt_verifier hjwt_verifier;

typedef enum {
    HJWT_OK = 0,
    HJWT_MALFORMED,     /* not a well-formed compact JWS: size, segments, base64url, JSON,
                           duplicate keys, non-object, `crit`, `typ` other than JWT; or an
                           `exp` after HJWT_MAX_EXP_S */
    HJWT_BAD_SIGNATURE, /* signature wrong, or alg not pinned by a key (none, case variant,
                           unsupported alg, alg/key mismatch, unknown kid) */
    HJWT_EXPIRED,       /* only fault: now >= exp + leeway */
    HJWT_NOT_YET_VALID, /* nbf > now + leeway */
    HJWT_BAD_ISSUER,    /* issuer configured and iss missing or different */
    HJWT_BAD_AUDIENCE,  /* audience configured and not aud / not in aud[] */
    HJWT_BAD_CLAIMS,    /* exp missing or not an integer, nbf/sub/roles of the wrong type */
    HJWT_INTERNAL,      /* allocation failure: not the token's fault */
} hjwt_result;

/* Short, stable reason usable as a metrics label: "ok", "malformed",
 * "bad_signature", "expired", "not_yet_valid", "bad_issuer", "bad_audience",
 * "bad_claims", "internal". Static storage. */
const char *hjwt_result_str(hjwt_result r);

/* The identity a verified token carries. */
typedef struct {
    char *sub;      /* `sub` claim; NULL when the token has none ({sub} templates then match
                       nothing) */
    char **roles;   /* roles from roles_claim, in token order, empty entries dropped */
    size_t n_roles; /* 0 when the claim is absent */
    int64_t exp;    /* `exp` claim, seconds since the epoch */
    json_t *claims; /* every claim (a JSON object) for {claim:NAME}; one reference owned */
} hjwt_principal;

/* Builds a verifier. keys/n: at least one key; kids must be unique.
 * issuer/audience: NULL = not checked; else the claim is required and must
 * match. roles_claim: NULL = "roles"; a dotted path ("realm_access.roles")
 * walks nested objects (a claim whose name literally equals roles_claim wins).
 * leeway_s: 0..HJWT_MAX_LEEWAY_S, applied to exp and nbf.
 * RS256 keys must be RSA >= 2048 bits, ES256 keys EC P-256; files holding a
 * private key or only a certificate are refused. HS256 secrets must be
 * non-empty.
 * On failure *out is NULL and err (if non-NULL with errlen > 0) says why:
 * HR_ERR_INVALID for a bad key or setting, HR_ERR_NOMEM. The caller frees
 * *out with hjwt_verifier_free(). */
hr_status hjwt_verifier_new(hjwt_verifier **out, const hjwt_key *keys, size_t n, const char *issuer,
                            const char *audience, const char *roles_claim, int leeway_s, char *err,
                            size_t errlen);

void hjwt_verifier_free(hjwt_verifier *v); /* NULL is a no-op */

/* Verifies the compact JWS token[0..len) at time `now` (seconds since the
 * epoch, CLOCK_REALTIME). The signature is checked before any claim, and
 * HJWT_EXPIRED is returned only when expiry is the token's only fault.
 * On HJWT_OK fills *out (which the caller later releases with
 * hjwt_principal_clear()); on any other result *out is zeroed and owns
 * nothing. */
hjwt_result hjwt_verify(const hjwt_verifier *v, const char *token, size_t len, int64_t now,
                        hjwt_principal *out);

/* Frees what a principal owns and zeroes it. Safe on a zeroed principal. */
void hjwt_principal_clear(hjwt_principal *p);

#endif
