/* Fuzz target: bearer-token verification up to and including the libjwt
 * call (jwt.h). Byte 0 picks the form: a raw token, or (odd) a header JSON
 * '\n' claims JSON that the target signs with the HS256 key, so the claim
 * checks behind the signature are reached too. */
#include "fuzz.h"

#include "herald/jwt.h"
#include "herald/crypto.h"
#include "herald/encoding.h"

#define NOW 1700000000

static const char SECRET[] = "herald-test-secret-0123456789abcdef";
static hjwt_verifier *strict, *loose;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    hjwt_key keys[3] = {
        {.alg = "HS256", .secret = (const unsigned char *)SECRET, .secret_len = sizeof SECRET - 1},
        {.alg = "RS256", .kid = "rsa", .public_key_file = HERALD_FIXTURES "/jwt/rsa_a_public.pem"},
        {.alg = "ES256", .kid = "ec", .public_key_file = HERALD_FIXTURES "/jwt/ec_p256_public.pem"},
    };
    char err[256];
    hjwt_verifier_new(&strict, keys, 3, "https://issuer.test", "herald", NULL, 5, err, sizeof err);
    hjwt_verifier_new(&loose, keys, 1, NULL, NULL, "realm_access.roles", 0, err, sizeof err);
    if (!strict || !loose) {
        fprintf(stderr, "hjwt_verifier_new: %s\n", err);
        abort();
    }
    return 0;
}

static size_t b64url(const char *in, size_t len, char *out)
{
    return enc_base64url_encode((const unsigned char *)in, len, out);
}

static void check(const hjwt_verifier *v, const char *tok, size_t len, int leeway)
{
    hjwt_principal p;
    hjwt_result r = hjwt_verify(v, tok, len, NOW, &p);
    FZ_CHECK(r >= HJWT_OK && r <= HJWT_INTERNAL && hjwt_result_str(r) != NULL);
    if (r == HJWT_OK) {
        FZ_CHECK(json_is_object(p.claims));
        FZ_CHECK(p.exp <= HJWT_MAX_EXP_S && NOW < p.exp + leeway);
        for (size_t i = 0; i < p.n_roles; i++)
            FZ_CHECK(p.roles[i] && p.roles[i][0]);
        hjwt_principal_clear(&p);
    } else {
        FZ_CHECK(p.sub == NULL && p.roles == NULL && p.claims == NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = fz_make(data, size);
    if (!(fz_byte(&in) & 1)) {
        char *tok = fz_memdup(in.p, in.n);
        check(strict, tok, in.n, 5);
        check(loose, tok, in.n, 0);
        free(tok);
        return 0;
    }
    const char *h, *c;
    size_t hl, cl;
    fz_field(&in, '\n', &h, &hl);
    c = in.p;
    cl = in.n;
    if (hl > 3000 || cl > 3000)
        return 0;
    size_t cap = (hl + cl) * 4 / 3 + 128;
    char *tok = malloc(cap);
    if (!tok)
        abort();
    size_t n = b64url(h, hl, tok);
    tok[n++] = '.';
    n += b64url(c, cl, tok + n);
    unsigned char mac[HC_SHA256_LEN];
    FZ_CHECK(hc_hmac_sha256(SECRET, sizeof SECRET - 1, tok, n, mac));
    tok[n++] = '.';
    n += b64url((const char *)mac, sizeof mac, tok + n);
    char *exact = fz_memdup(tok, n);
    check(strict, exact, n, 5);
    check(loose, exact, n, 0);
    free(exact);
    free(tok);
    return 0;
}
