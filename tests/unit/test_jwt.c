/* Unit tests for jwt.c. Every token comes from tests/fixtures/jwt/tokens.json,
 * minted by make_fixtures.py (PyJWT + cryptography), never by herald. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "herald/jwt.h"

#define FIX(name) HERALD_FIXTURES "/jwt/" name

static const int64_t NOW = 1700000000; /* make_fixtures.py NOW */
static const int64_t FAR = 4102444800;
static const char SECRET[] = "herald-test-secret-0123456789abcdef";
static const char *ISS = "https://issuer.test";
static const char *AUD = "herald";

static json_t *tokens;

static const char *tok(const char *name)
{
    const char *t = json_string_value(json_object_get(tokens, name));
    if (t == NULL)
        fail_msg("no fixture token %s", name);
    return t;
}

static hjwt_key hs_key(const char *kid)
{
    hjwt_key k = {.alg = "HS256",
                  .kid = kid,
                  .secret = (const unsigned char *)SECRET,
                  .secret_len = strlen(SECRET)};
    return k;
}

static hjwt_key pem_key(const char *alg, const char *kid, const char *file)
{
    hjwt_key k = {.alg = alg, .kid = kid, .public_key_file = file};
    return k;
}

static hjwt_verifier *make(const hjwt_key *keys, size_t n, const char *iss, const char *aud,
                           const char *roles_claim, int leeway)
{
    char err[256];
    hjwt_verifier *v = NULL;
    hjwt_verifier_new(&v, keys, n, iss, aud, roles_claim, leeway, err, sizeof err);
    if (v == NULL)
        fail_msg("hjwt_verifier_new: %s", err);
    return v;
}

/* HS256 + RS256 + ES256, no kids, no iss/aud, leeway 5. */
static hjwt_verifier *make_all(void)
{
    hjwt_key k[] = {hs_key(NULL), pem_key("RS256", NULL, FIX("rsa_a_public.pem")),
                    pem_key("ES256", NULL, FIX("ec_p256_public.pem"))};
    return make(k, 3, NULL, NULL, NULL, 5);
}

static hjwt_result verify_at(const hjwt_verifier *v, const char *name, int64_t now)
{
    hjwt_principal p;
    const char *t = tok(name);
    hjwt_result r = hjwt_verify(v, t, strlen(t), now, &p);
    if (r != HJWT_OK) {
        assert_null(p.sub);
        assert_null(p.roles);
        assert_int_equal(p.n_roles, 0);
        assert_null(p.claims);
    }
    hjwt_principal_clear(&p);
    return r;
}

static hjwt_result verify(const hjwt_verifier *v, const char *name)
{
    return verify_at(v, name, NOW);
}

#define assert_result(expr, want)                                                                  \
    do {                                                                                           \
        hjwt_result got_ = (expr);                                                                 \
        if (got_ != (want))                                                                        \
            fail_msg("%s: got %s, want %s", #expr, hjwt_result_str(got_), hjwt_result_str(want));  \
    } while (0)

/* ---- valid tokens ---------------------------------------------------- */

static void test_valid_hs256(void **state)
{
    hjwt_verifier *v = make_all();
    hjwt_principal p;
    const char *t = tok("hs_valid");
    assert_result(hjwt_verify(v, t, strlen(t), NOW, &p), HJWT_OK);
    assert_string_equal(p.sub, "u42");
    assert_int_equal(p.n_roles, 2);
    assert_string_equal(p.roles[0], "admin");
    assert_string_equal(p.roles[1], "ops");
    assert_int_equal(p.exp, FAR);
    assert_true(json_is_object(p.claims));
    assert_string_equal(json_string_value(json_object_get(p.claims, "tenant")), "acme");
    hjwt_principal_clear(&p);
    assert_null(p.sub);
    hjwt_principal_clear(&p); /* idempotent */
    assert_result(verify(v, "hs_no_typ"), HJWT_OK);
    hjwt_verifier_free(v);
}

static void test_valid_rs256_es256(void **state)
{
    hjwt_verifier *v = make_all();
    assert_result(verify(v, "rs_valid"), HJWT_OK);
    assert_result(verify(v, "es_valid"), HJWT_OK);
    hjwt_verifier_free(v);

    hjwt_key k = pem_key("RS256", NULL, FIX("rsa_a_pkcs1_public.pem")); /* BEGIN RSA PUBLIC KEY */
    v = make(&k, 1, NULL, NULL, NULL, 0);
    assert_result(verify(v, "rs_valid"), HJWT_OK);
    hjwt_verifier_free(v);
}

static void test_token_not_nul_terminated(void **state)
{
    hjwt_verifier *v = make_all();
    const char *t = tok("hs_valid");
    size_t n = strlen(t);
    char buf[HJWT_MAX_TOKEN_BYTES + 16];
    memcpy(buf, t, n);
    memcpy(buf + n, "garbage", 8);
    hjwt_principal p;
    assert_result(hjwt_verify(v, buf, n, NOW, &p), HJWT_OK);
    hjwt_principal_clear(&p);
    /* the same bytes with the trailing garbage counted are not a token */
    assert_result(hjwt_verify(v, buf, n + 7, NOW, &p), HJWT_BAD_SIGNATURE);
    hjwt_verifier_free(v);
}

/* ---- signature and algorithm ----------------------------------------- */

static void test_bad_signatures(void **state)
{
    hjwt_verifier *v = make_all();
    assert_result(verify(v, "hs_wrong_secret"), HJWT_BAD_SIGNATURE);
    assert_result(verify(v, "hs_tampered"), HJWT_BAD_SIGNATURE);
    assert_result(verify(v, "hs_bad_sig_b64"), HJWT_MALFORMED);
    assert_result(verify(v, "rs_other_key"), HJWT_BAD_SIGNATURE);
    hjwt_verifier_free(v);
}

static void test_alg_none_and_case(void **state)
{
    hjwt_verifier *v = make_all();
    assert_result(verify(v, "none_unsigned"), HJWT_BAD_SIGNATURE);
    assert_result(verify(v, "none_signed"), HJWT_BAD_SIGNATURE);
    assert_result(verify(v, "none_upper_unsigned"), HJWT_BAD_SIGNATURE);
    /* libjwt alone accepts these: its alg lookup is case-insensitive */
    assert_result(verify(v, "hs_lowercase_alg"), HJWT_BAD_SIGNATURE);
    assert_result(verify(v, "rs_lowercase_alg"), HJWT_BAD_SIGNATURE);
    assert_result(verify(v, "hs384"), HJWT_BAD_SIGNATURE);
    hjwt_verifier_free(v);
}

static void test_algorithm_confusion(void **state)
{
    /* libjwt alone accepts an HS256 token MAC'd with the RSA public PEM bytes
     * when handed those bytes as key. */
    hjwt_key rs = pem_key("RS256", NULL, FIX("rsa_a_public.pem"));
    hjwt_verifier *v = make(&rs, 1, NULL, NULL, NULL, 5);
    assert_result(verify(v, "hs_confusion"), HJWT_BAD_SIGNATURE);
    hjwt_verifier_free(v);

    hjwt_key both[] = {hs_key(NULL), pem_key("RS256", "rsa1", FIX("rsa_a_public.pem")),
                       pem_key("ES256", NULL, FIX("ec_p256_public.pem"))};
    v = make(both, 3, NULL, NULL, NULL, 5);
    assert_result(verify(v, "hs_confusion"), HJWT_BAD_SIGNATURE);
    assert_result(verify(v, "hs_confusion_kid"), HJWT_BAD_SIGNATURE);
    assert_result(verify(v, "hs_confusion_ec"), HJWT_BAD_SIGNATURE);
    hjwt_verifier_free(v);
}

static void test_cross_family(void **state)
{
    hjwt_key ec = pem_key("ES256", NULL, FIX("ec_p256_public.pem"));
    hjwt_verifier *v = make(&ec, 1, NULL, NULL, NULL, 5);
    assert_result(verify(v, "rs_valid"), HJWT_BAD_SIGNATURE); /* RS token vs EC key */
    assert_result(verify(v, "rs_as_es"), HJWT_BAD_SIGNATURE); /* RSA sig labelled ES256 */
    assert_result(verify(v, "hs_valid"), HJWT_BAD_SIGNATURE);
    hjwt_verifier_free(v);

    hjwt_key rs = pem_key("RS256", NULL, FIX("rsa_a_public.pem"));
    v = make(&rs, 1, NULL, NULL, NULL, 5);
    assert_result(verify(v, "es_valid"), HJWT_BAD_SIGNATURE);
    hjwt_verifier_free(v);
}

/* ---- kid ------------------------------------------------------------- */

static void test_kid_selection(void **state)
{
    hjwt_key k[] = {pem_key("RS256", "k1", FIX("rsa_a_public.pem")),
                    pem_key("RS256", "k2", FIX("rsa_b_public.pem")), hs_key("hs1")};
    hjwt_verifier *v = make(k, 3, NULL, NULL, NULL, 5);
    assert_result(verify(v, "rs_kid_k1"), HJWT_OK);
    assert_result(verify(v, "rs_kid_k2"), HJWT_OK);
    /* a kid pins one key: the other RSA key that would verify is not tried */
    assert_result(verify(v, "rs_kid_k1_signed_b"), HJWT_BAD_SIGNATURE);
    assert_result(verify(v, "rs_kid_unknown"), HJWT_BAD_SIGNATURE);
    /* kid names an RS256 key but the token is HS256 */
    assert_result(verify(v, "hs_kid_k1"), HJWT_BAD_SIGNATURE);
    assert_result(verify(v, "hs_kid_hs1"), HJWT_OK);
    assert_result(verify(v, "rs_kid_number"), HJWT_MALFORMED);
    /* no kid: every key of the token's alg is tried */
    assert_result(verify(v, "rs_valid"), HJWT_OK);
    assert_result(verify(v, "rs_other_key"), HJWT_OK);
    assert_result(verify(v, "hs_valid"), HJWT_OK);
    hjwt_verifier_free(v);

    /* a token with a kid against keys without kids is refused */
    v = make_all();
    assert_result(verify(v, "rs_kid_k1"), HJWT_BAD_SIGNATURE);
    hjwt_verifier_free(v);
}

/* ---- time ------------------------------------------------------------ */

static void test_expiry(void **state)
{
    hjwt_verifier *v = make_all(); /* leeway 5 */
    assert_result(verify(v, "hs_expired"), HJWT_EXPIRED);
    assert_result(verify(v, "hs_exp_minus3"), HJWT_OK);
    assert_result(verify(v, "hs_exp_now"), HJWT_OK);
    assert_result(verify_at(v, "hs_exp_now", NOW + 4), HJWT_OK);
    assert_result(verify_at(v, "hs_exp_now", NOW + 5), HJWT_EXPIRED);
    assert_result(verify_at(v, "hs_valid", FAR + 4), HJWT_OK);
    assert_result(verify_at(v, "hs_valid", FAR + 5), HJWT_EXPIRED);
    assert_result(verify_at(v, "hs_valid", INT64_MAX), HJWT_EXPIRED);
    /* an exp beyond year 9999 is malformed (contract v1.2 §3), whatever the clock */
    assert_result(verify(v, "hs_exp_huge"), HJWT_MALFORMED);
    assert_result(verify_at(v, "hs_exp_huge", INT64_MAX), HJWT_MALFORMED);
    assert_result(verify(v, "hs_exp_9e15"), HJWT_MALFORMED);
    assert_result(verify(v, "hs_exp_year_10000"), HJWT_MALFORMED);
    assert_result(verify(v, "hs_exp_year_9999"), HJWT_OK);
    assert_result(verify(v, "hs_exp_neg_huge"), HJWT_EXPIRED);
    assert_result(verify_at(v, "hs_exp_neg_huge", INT64_MIN), HJWT_OK);
    /* expired is reported only when it is the only fault */
    assert_result(verify(v, "hs_expired_wrong_secret"), HJWT_BAD_SIGNATURE);
    assert_result(verify(v, "hs_nbf_future_expired"), HJWT_NOT_YET_VALID);
    hjwt_verifier_free(v);

    hjwt_key k = hs_key(NULL);
    v = make(&k, 1, ISS, AUD, NULL, 0);
    assert_result(verify(v, "hs_exp_minus3"), HJWT_EXPIRED);
    assert_result(verify(v, "hs_exp_now"), HJWT_EXPIRED);
    assert_result(verify_at(v, "hs_exp_now", NOW - 1), HJWT_OK);
    assert_result(verify(v, "hs_expired_wrong_iss"), HJWT_BAD_ISSUER);
    assert_result(verify(v, "hs_expired_wrong_aud"), HJWT_BAD_AUDIENCE);
    hjwt_verifier_free(v);
}

static void test_not_before(void **state)
{
    hjwt_verifier *v = make_all();
    assert_result(verify(v, "hs_nbf_future"), HJWT_NOT_YET_VALID);
    assert_result(verify(v, "hs_nbf_plus3"), HJWT_OK);
    assert_result(verify(v, "hs_nbf_past"), HJWT_OK);
    assert_result(verify_at(v, "hs_nbf_future", NOW + 95), HJWT_OK);
    assert_result(verify_at(v, "hs_nbf_future", NOW + 94), HJWT_NOT_YET_VALID);
    assert_result(verify_at(v, "hs_nbf_future", INT64_MIN), HJWT_NOT_YET_VALID);
    hjwt_verifier_free(v);
    hjwt_key k = hs_key(NULL);
    v = make(&k, 1, NULL, NULL, NULL, 0);
    assert_result(verify(v, "hs_nbf_plus3"), HJWT_NOT_YET_VALID);
    hjwt_verifier_free(v);
}

static void test_claim_types(void **state)
{
    hjwt_verifier *v = make_all();
    assert_result(verify(v, "hs_no_exp"), HJWT_BAD_CLAIMS);
    assert_result(verify(v, "hs_exp_string"), HJWT_BAD_CLAIMS);
    assert_result(verify(v, "hs_exp_float"), HJWT_BAD_CLAIMS);
    assert_result(verify(v, "hs_nbf_string"), HJWT_BAD_CLAIMS);
    assert_result(verify(v, "hs_sub_number"), HJWT_BAD_CLAIMS);
    hjwt_verifier_free(v);
}

/* ---- issuer / audience ----------------------------------------------- */

static void test_issuer_audience(void **state)
{
    hjwt_key k = hs_key(NULL);
    hjwt_verifier *v = make(&k, 1, ISS, AUD, NULL, 5);
    assert_result(verify(v, "hs_valid"), HJWT_OK);
    assert_result(verify(v, "hs_iss_wrong"), HJWT_BAD_ISSUER);
    assert_result(verify(v, "hs_iss_missing"), HJWT_BAD_ISSUER);
    assert_result(verify(v, "hs_iss_number"), HJWT_BAD_ISSUER);
    assert_result(verify(v, "hs_aud_array_ok"), HJWT_OK);
    assert_result(verify(v, "hs_aud_array_no"), HJWT_BAD_AUDIENCE);
    assert_result(verify(v, "hs_aud_wrong"), HJWT_BAD_AUDIENCE);
    assert_result(verify(v, "hs_aud_missing"), HJWT_BAD_AUDIENCE);
    hjwt_verifier_free(v);

    /* unconfigured: not checked */
    v = make(&k, 1, NULL, NULL, NULL, 5);
    assert_result(verify(v, "hs_iss_wrong"), HJWT_OK);
    assert_result(verify(v, "hs_iss_missing"), HJWT_OK);
    assert_result(verify(v, "hs_aud_wrong"), HJWT_OK);
    assert_result(verify(v, "hs_aud_missing"), HJWT_OK);
    hjwt_verifier_free(v);
}

/* ---- subject and roles ----------------------------------------------- */

static void expect_roles(const hjwt_verifier *v, const char *name, size_t n, ...)
{
    hjwt_principal p;
    const char *t = tok(name);
    assert_result(hjwt_verify(v, t, strlen(t), NOW, &p), HJWT_OK);
    assert_int_equal(p.n_roles, n);
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(p.roles[i], va_arg(ap, const char *));
    va_end(ap);
    hjwt_principal_clear(&p);
}

static void test_roles(void **state)
{
    hjwt_verifier *v = make_all();
    expect_roles(v, "hs_valid", 2, "admin", "ops");
    expect_roles(v, "hs_roles_string", 3, "admin", "ops", "viewer");
    expect_roles(v, "hs_roles_missing", 0);
    expect_roles(v, "hs_roles_nested", 0);
    expect_roles(v, "hs_roles_empty_entries", 1, "a");
    /* documented choice: a roles claim that is not fully readable is refused */
    assert_result(verify(v, "hs_roles_nonstring"), HJWT_BAD_CLAIMS);
    assert_result(verify(v, "hs_roles_number"), HJWT_BAD_CLAIMS);
    hjwt_verifier_free(v);

    hjwt_key k = hs_key(NULL);
    v = make(&k, 1, NULL, NULL, "realm_access.roles", 5);
    expect_roles(v, "hs_roles_nested", 2, "offline", "uma");
    expect_roles(v, "hs_valid", 0);
    expect_roles(v, "hs_roles_literal_dotted", 1, "literal");
    hjwt_verifier_free(v);
}

static void test_no_sub(void **state)
{
    hjwt_verifier *v = make_all();
    hjwt_principal p;
    const char *t = tok("hs_no_sub");
    assert_result(hjwt_verify(v, t, strlen(t), NOW, &p), HJWT_OK);
    assert_null(p.sub);
    assert_int_equal(p.n_roles, 2);
    hjwt_principal_clear(&p);
    hjwt_verifier_free(v);
}

/* ---- shape ----------------------------------------------------------- */

static void test_malformed(void **state)
{
    hjwt_verifier *v = make_all();
    assert_result(verify(v, "hs_9k"), HJWT_MALFORMED);
    assert_result(verify(v, "hs_near_8k"), HJWT_OK);
    assert_result(verify(v, "two_segments"), HJWT_MALFORMED);
    assert_result(verify(v, "four_segments"), HJWT_MALFORMED);
    assert_result(verify(v, "empty_payload"), HJWT_MALFORMED);
    assert_result(verify(v, "padded_b64"), HJWT_MALFORMED);
    assert_result(verify(v, "std_b64_chars"), HJWT_MALFORMED);
    assert_result(verify(v, "hs_dup_claims"), HJWT_MALFORMED);
    assert_result(verify(v, "hs_dup_header"), HJWT_MALFORMED);
    assert_result(verify(v, "hs_crit"), HJWT_MALFORMED);
    assert_result(verify(v, "hs_typ_at_jwt"), HJWT_MALFORMED);
    assert_result(verify(v, "hs_payload_array"), HJWT_MALFORMED);
    assert_result(verify(v, "hs_payload_not_json"), HJWT_MALFORMED);
    assert_result(verify(v, "hs_header_no_alg"), HJWT_MALFORMED);

    hjwt_principal p;
    assert_result(hjwt_verify(v, "", 0, NOW, &p), HJWT_MALFORMED);
    assert_result(hjwt_verify(v, NULL, 10, NOW, &p), HJWT_MALFORMED);
    assert_result(hjwt_verify(v, "..", 2, NOW, &p), HJWT_MALFORMED);
    assert_result(hjwt_verify(v, "a b.c.d", 7, NOW, &p), HJWT_MALFORMED);
    const char *t = tok("hs_valid");
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", t);
    buf[10] = '\0'; /* embedded NUL inside len */
    assert_result(hjwt_verify(v, buf, strlen(t), NOW, &p), HJWT_MALFORMED);
    hjwt_verifier_free(v);
}

/* ---- construction ---------------------------------------------------- */

static void expect_refused(const hjwt_key *k, size_t n, const char *iss, const char *aud,
                           const char *roles, int leeway, const char *needle)
{
    char err[256] = "";
    hjwt_verifier *v = NULL;
    hr_status st = hjwt_verifier_new(&v, k, n, iss, aud, roles, leeway, err, sizeof err);
    assert_true((st == HR_OK) == (v != NULL));
    if (v != NULL) {
        hjwt_verifier_free(v);
        fail_msg("accepted, expected refusal containing \"%s\"", needle);
    }
    if (strstr(err, needle) == NULL)
        fail_msg("error \"%s\" does not contain \"%s\"", err, needle);
}

static void test_construction_refusals(void **state)
{
    hjwt_key empty = {.alg = "HS256", .secret = (const unsigned char *)"", .secret_len = 0};
    expect_refused(&empty, 1, NULL, NULL, NULL, 5, "secret is empty");
    hjwt_key nosecret = {.alg = "HS256"};
    expect_refused(&nosecret, 1, NULL, NULL, NULL, 5, "secret is empty");

    hjwt_key k = pem_key("RS256", NULL, FIX("rsa_a_private.pem"));
    expect_refused(&k, 1, NULL, NULL, NULL, 5, "private key");
    k = pem_key("ES256", NULL, FIX("ec_p256_private.pem"));
    expect_refused(&k, 1, NULL, NULL, NULL, 5, "private key");
    k = pem_key("RS256", NULL, FIX("rsa_a_cert.pem"));
    expect_refused(&k, 1, NULL, NULL, NULL, 5, "no PEM public key");
    k = pem_key("RS256", NULL, FIX("rsa_1024_public.pem"));
    expect_refused(&k, 1, NULL, NULL, NULL, 5, "1024 bits");
    k = pem_key("ES256", NULL, FIX("ec_p384_public.pem"));
    expect_refused(&k, 1, NULL, NULL, NULL, 5, "P-256");
    k = pem_key("ES256", NULL, FIX("rsa_a_public.pem"));
    expect_refused(&k, 1, NULL, NULL, NULL, 5, "needs an EC");
    k = pem_key("RS256", NULL, FIX("ec_p256_public.pem"));
    expect_refused(&k, 1, NULL, NULL, NULL, 5, "needs an RSA");
    k = pem_key("RS256", NULL, FIX("does_not_exist.pem"));
    expect_refused(&k, 1, NULL, NULL, NULL, 5, "cannot open");
    k = pem_key("RS256", NULL, NULL);
    expect_refused(&k, 1, NULL, NULL, NULL, 5, "public_key_file");
    k = pem_key("RS256", NULL, FIX("make_fixtures.py"));
    expect_refused(&k, 1, NULL, NULL, NULL, 5, "no PEM public key");

    hjwt_key bad_alg = hs_key(NULL);
    bad_alg.alg = "hs256";
    expect_refused(&bad_alg, 1, NULL, NULL, NULL, 5, "alg");
    bad_alg.alg = "none";
    expect_refused(&bad_alg, 1, NULL, NULL, NULL, 5, "alg");
    bad_alg.alg = "HS384";
    expect_refused(&bad_alg, 1, NULL, NULL, NULL, 5, "alg");

    hjwt_key dup[] = {hs_key("same"), pem_key("RS256", "same", FIX("rsa_a_public.pem"))};
    expect_refused(dup, 2, NULL, NULL, NULL, 5, "already used");
    hjwt_key hs = hs_key(NULL);
    expect_refused(&hs, 0, NULL, NULL, NULL, 5, "empty");
    expect_refused(NULL, 0, NULL, NULL, NULL, 5, "empty");
    expect_refused(&hs, 1, NULL, NULL, NULL, -1, "leeway");
    expect_refused(&hs, 1, NULL, NULL, NULL, 301, "leeway");
    expect_refused(&hs, 1, "", NULL, NULL, 5, "empty");
    expect_refused(&hs, 1, NULL, "", NULL, 5, "empty");
    expect_refused(&hs, 1, NULL, NULL, "", 5, "roles_claim");
    expect_refused(&hs, 1, NULL, NULL, "a..b", 5, "empty path segment");
    expect_refused(&hs, 1, NULL, NULL, "a.", 5, "empty path segment");
    hjwt_key emptykid = hs_key("");
    expect_refused(&emptykid, 1, NULL, NULL, NULL, 5, "empty kid");

    /* no err buffer: still refuses, without writing */
    hjwt_verifier *none = (hjwt_verifier *)1;
    assert_int_equal(hjwt_verifier_new(&none, &empty, 1, NULL, NULL, NULL, 5, NULL, 0),
                     HR_ERR_INVALID);
    assert_null(none);
    hjwt_verifier_free(NULL);
}

static void test_result_str(void **state)
{
    assert_string_equal(hjwt_result_str(HJWT_OK), "ok");
    assert_string_equal(hjwt_result_str(HJWT_MALFORMED), "malformed");
    assert_string_equal(hjwt_result_str(HJWT_BAD_SIGNATURE), "bad_signature");
    assert_string_equal(hjwt_result_str(HJWT_EXPIRED), "expired");
    assert_string_equal(hjwt_result_str(HJWT_NOT_YET_VALID), "not_yet_valid");
    assert_string_equal(hjwt_result_str(HJWT_BAD_ISSUER), "bad_issuer");
    assert_string_equal(hjwt_result_str(HJWT_BAD_AUDIENCE), "bad_audience");
    assert_string_equal(hjwt_result_str(HJWT_BAD_CLAIMS), "bad_claims");
    assert_string_equal(hjwt_result_str(HJWT_INTERNAL), "internal");
}

/* ---- threads --------------------------------------------------------- */

static void *verify_many(void *arg)
{
    const hjwt_verifier *v = arg;
    static const char *names[] = {"hs_valid", "rs_valid", "es_valid", "hs_wrong_secret",
                                  "hs_expired"};
    static const hjwt_result want[] = {HJWT_OK, HJWT_OK, HJWT_OK, HJWT_BAD_SIGNATURE, HJWT_EXPIRED};
    for (int i = 0; i < 100; i++) {
        size_t j = (size_t)i % 5;
        hjwt_principal p;
        const char *t = json_string_value(json_object_get(tokens, names[j]));
        hjwt_result r = hjwt_verify(v, t, strlen(t), NOW, &p);
        hjwt_principal_clear(&p);
        if (r != want[j])
            return (void *)1;
    }
    return NULL;
}

static void test_concurrent_verify(void **state)
{
    hjwt_verifier *v = make_all();
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, verify_many, v), 0);
    for (int i = 0; i < 4; i++) {
        void *ret = (void *)1;
        assert_int_equal(pthread_join(th[i], &ret), 0);
        assert_null(ret);
    }
    hjwt_verifier_free(v);
}

static int load_tokens(void **state)
{
    json_error_t e;
    tokens = json_load_file(FIX("tokens.json"), 0, &e);
    if (tokens == NULL) {
        fprintf(stderr, "tokens.json: %s (line %d)\n", e.text, e.line);
        return -1;
    }
    return 0;
}

static int free_tokens(void **state)
{
    json_decref(tokens);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_hs256),
        cmocka_unit_test(test_valid_rs256_es256),
        cmocka_unit_test(test_token_not_nul_terminated),
        cmocka_unit_test(test_bad_signatures),
        cmocka_unit_test(test_alg_none_and_case),
        cmocka_unit_test(test_algorithm_confusion),
        cmocka_unit_test(test_cross_family),
        cmocka_unit_test(test_kid_selection),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_not_before),
        cmocka_unit_test(test_claim_types),
        cmocka_unit_test(test_issuer_audience),
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_no_sub),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_construction_refusals),
        cmocka_unit_test(test_result_str),
        cmocka_unit_test(test_concurrent_verify),
    };
    return cmocka_run_group_tests(tests, load_tokens, free_tokens);
}
