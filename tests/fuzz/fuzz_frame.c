/* Fuzz target: the event-frame encoder (frame.h), differential against
 * jansson. Input: byte 0 flags (bit 0: with seq), subject '\n' payload. The
 * frame jansson reads back must hold the subject, and `data` equal to
 * jansson's reading of the payload when it is JSON, the payload as a string
 * when it is other UTF-8, else data_b64 decoding to the payload. */
#include "fuzz.h"

#include "herald/frame.h"
#include "herald/subject.h"
#include "herald/encoding.h"

#define TIME "2026-12-06T08:00:00.123Z"

/* jansson refuses some JSON that RFC 8259 allows (numbers it cannot hold,
 * escaped lone surrogates, \u0000 without JSON_ALLOW_NUL, nesting deeper than
 * 2048): for those only the frame's own shape is checked. */
static bool jansson_limit(const json_error_t *e)
{
    return strstr(e->text, "too big") || strstr(e->text, "overflow") ||
           strstr(e->text, "invalid Unicode") || strstr(e->text, "maximum parsing depth") ||
           strstr(e->text, "\\u0000");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = fz_make(data, size);
    uint8_t flags = fz_byte(&in);
    const char *s;
    size_t slen;
    fz_field(&in, '\n', &s, &slen);
    /* Callers validate subjects first (hub.c on_msg). */
    if (!subject_valid(s, slen)) {
        s = "a.b";
        slen = 3;
    }
    char *subject = fz_memdup(s, slen);
    char *payload = fz_memdup(in.p, in.n);
    size_t plen = in.n;
    int64_t seq = (flags & 1) ? (int64_t)flags << 40 : -1;
    frame *f = frame_event(subject, slen, payload, plen, TIME, seq);
    FZ_CHECK(f != NULL && f->is_event && f->subject_len == slen);
    FZ_CHECK(memcmp(f->subject, subject, slen) == 0 && f->subject[slen] == '\0');
    /* The raw payload stays reachable, and the frame knows its own message. */
    FZ_CHECK(f->raw_len == plen && (plen == 0 || memcmp(f->raw, payload, plen) == 0));
    FZ_CHECK(f->seq == seq);
    FZ_CHECK(frame_event_is(f, subject, slen, payload, plen, seq));
    FZ_CHECK(!frame_event_is(f, subject, slen, payload, plen, seq + 1));
    if (plen)
        FZ_CHECK(!frame_event_is(f, subject, slen, payload, plen - 1, seq));
    const char *out = (const char *)frame_payload(f);
    FZ_CHECK(out[f->len] == '\0');

    json_error_t e;
    /* jansson stops at a raw NUL byte, which JSON does not allow anywhere. */
    json_t *want = memchr(payload, '\0', plen)
                       ? NULL
                       : json_loadb(payload, plen, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    bool limit = !want && plen && !memchr(payload, '\0', plen) && jansson_limit(&e);
    /* Duplicate keys in the verbatim payload are the publisher's: allowed. */
    json_t *got = json_loadb(out, f->len, JSON_ALLOW_NUL, &e);
    if (!got) {
        /* Only a payload jansson cannot hold either may make the frame unreadable. */
        if (!limit)
            fprintf(stderr, "frame unreadable: %s: %.*s\n", e.text, (int)f->len, out);
        FZ_CHECK(limit);
        goto done;
    }
    FZ_CHECK(json_is_object(got));
    FZ_CHECK(strcmp(json_string_value(json_object_get(got, "type")), "event") == 0);
    json_t *js = json_object_get(got, "subject");
    FZ_CHECK(json_string_length(js) == slen && memcmp(json_string_value(js), subject, slen) == 0);
    FZ_CHECK(strcmp(json_string_value(json_object_get(got, "time")), TIME) == 0);
    json_t *jseq = json_object_get(got, "seq");
    FZ_CHECK(seq < 0 ? jseq == NULL : json_integer_value(jseq) == seq);
    json_t *d = json_object_get(got, "data"), *b = json_object_get(got, "data_b64");
    FZ_CHECK((d != NULL) != (b != NULL));
    if (want) {
        /* JSON: carried verbatim. */
        FZ_CHECK(d != NULL && json_equal(d, want));
    } else if (plen == 0) {
        FZ_CHECK(json_is_string(d) && json_string_length(d) == 0);
    } else if (d && json_is_string(d)) {
        /* Not JSON: a string of exactly the payload's bytes. */
        FZ_CHECK(json_string_length(d) == plen && memcmp(json_string_value(d), payload, plen) == 0);
    } else if (d) {
        FZ_CHECK(limit); /* carried as JSON although jansson could not read it alone */
    } else {
        FZ_CHECK(json_is_string(b));
        size_t bl = json_string_length(b), ol = 0;
        unsigned char *dec = malloc(enc_base64_decoded_max(bl) + 1);
        if (!dec)
            abort();
        FZ_CHECK(
            enc_base64_decode(json_string_value(b), bl, dec, enc_base64_decoded_max(bl) + 1, &ol));
        FZ_CHECK(ol == plen && memcmp(dec, payload, plen) == 0);
        free(dec);
    }
    json_decref(got);
done:
    json_decref(want);
    frame_release(f);
    free(subject);
    free(payload);
    return 0;
}
