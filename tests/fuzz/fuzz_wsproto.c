/* Fuzz target: the herald.v1 client protocol (wsproto.h). The first byte
 * picks what is parsed: a client frame (the common case), the Origin
 * allow-list, Sec-WebSocket-Protocol, a Cookie header, or server framing
 * (checked by decoding the RFC 6455 headers it wrote). */
#include "fuzz.h"

#include <ctype.h>
#include <strings.h>

#include "herald/subject.h"
#include "herald/wsproto.h"

static void parse_frame(const char *p, size_t n)
{
    char *buf = fz_memdup(p, n);
    wsreq r;
    char *id = NULL;
    char msg[128];
    if (wsproto_parse(buf, n, &r, &id, msg, sizeof msg)) {
        FZ_CHECK(id == NULL && r.root != NULL);
        switch (r.type) {
        case WSREQ_AUTH:
            FZ_CHECK(r.token != NULL);
            break;
        case WSREQ_SUBSCRIBE:
        case WSREQ_UNSUBSCRIBE:
        case WSREQ_PUBLISH:
            FZ_CHECK(r.subject != NULL && strlen(r.subject) >= r.subject_len);
            if (r.type == WSREQ_PUBLISH)
                FZ_CHECK((r.data != NULL) != (r.bin != NULL));
            break;
        default:
            break;
        }
        wsproto_request_clear(&r);
    } else {
        FZ_CHECK(strnlen(msg, sizeof msg) < sizeof msg);
        free(id);
    }
    free(buf);
}

static void origins(fz_in *in)
{
    char *origin = fz_next_str(in, '\n');
    char *allowed[8] = {NULL};
    size_t n = 0;
    while (in->n && n < 8)
        allowed[n++] = fz_next_str(in, '\n');
    bool ok = wsproto_origin_allowed(origin, allowed, n);
    /* Scheme and host compare case-insensitively ("null" is exact). */
    if (strcasecmp(origin, "null") != 0) {
        char *up = fz_strndup(origin, strlen(origin));
        for (char *c = up; *c; c++)
            *c = (char)toupper((unsigned char)*c);
        FZ_CHECK(wsproto_origin_allowed(up, allowed, n) == ok);
        free(up);
    }
    for (size_t i = 0; i < n; i++)
        free(allowed[i]);
    free(origin);
}

static void protocol(fz_in *in)
{
    char *name = fz_next_str(in, '\n');
    char *header = fz_next_str(in, '\n');
    (void)wsproto_offers_protocol(header, name);
    free(name);
    free(header);
}

static void cookie(fz_in *in)
{
    size_t outlen = fz_byte(in);
    char *name = fz_next_str(in, '\n');
    char *header = fz_next_str(in, '\n');
    char *out = malloc(outlen ? outlen : 1);
    if (!out)
        abort();
    if (wsproto_cookie_value(header, name, out, outlen)) {
        FZ_CHECK(outlen > 0 && strnlen(out, outlen) < outlen);
        FZ_CHECK(strstr(header, out) != NULL);
    }
    free(out);
    free(name);
    free(header);
}

/* Decode the header wsproto wrote and check it announces `len` bytes. */
static size_t decode_header(const unsigned char *p, uint64_t *len)
{
    FZ_CHECK(p[0] == 0x81);
    uint8_t l7 = p[1];
    FZ_CHECK((l7 & 0x80) == 0); /* server frames are unmasked */
    if (l7 < 126) {
        *len = l7;
        return 2;
    }
    if (l7 == 126) {
        *len = (uint64_t)p[2] << 8 | p[3];
        FZ_CHECK(*len >= 126); /* minimal encoding (RFC 6455 §5.2) */
        return 4;
    }
    *len = 0;
    for (int i = 0; i < 8; i++)
        *len = *len << 8 | p[2 + i];
    FZ_CHECK(*len > 0xffff && (*len >> 63) == 0);
    return 10;
}

static void framing(fz_in *in)
{
    /* Messages of the remaining input's field lengths, some blown up past
     * the 7- and 16-bit length forms. */
    size_t cap = (size_t)fz_byte(in) << 10 | fz_byte(in) << 2;
    unsigned char *out = malloc(cap ? cap : 1);
    if (!out)
        abort();
    size_t n = 0, count = 0, lens[64];
    while (in->n && count < 64) {
        const char *f;
        size_t flen;
        fz_field(in, '\n', &f, &flen);
        size_t len = flen && f[0] == '!' ? flen * 1000 : flen;
        unsigned char *msg = calloc(1, len ? len : 1);
        if (!msg)
            abort();
        memcpy(msg, f, flen);
        size_t before = n;
        if (wsproto_frame_append(out, cap, &n, msg, len))
            lens[count++] = len;
        else
            FZ_CHECK(n == before);
        free(msg);
        FZ_CHECK(n <= cap);
    }
    size_t pos = 0;
    for (size_t i = 0; i < count; i++) {
        uint64_t len;
        unsigned char hdr[10];
        pos += decode_header(out + pos, &len);
        FZ_CHECK(len == lens[i]);
        FZ_CHECK(wsproto_frame_header(hdr, lens[i]) <= 10);
        pos += len;
    }
    FZ_CHECK(pos == n);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = fz_make(data, size);
    switch (fz_byte(&in) % 8) {
    case 4:
        origins(&in);
        break;
    case 5:
        protocol(&in);
        break;
    case 6:
        cookie(&in);
        break;
    case 7:
        framing(&in);
        break;
    default:
        parse_frame(in.p, in.n);
    }
    return 0;
}
