/* utf8: strict UTF-8 decoding shared by subjects and event frames. */
#include "herald/utf8.h"

#include <string.h>

/* Decode one UTF-8 sequence starting at s[*i] (i < len). Rejects overlong
 * forms, surrogates (U+D800-U+DFFF) and code points above U+10FFFF. On
 * success stores the code point, advances *i and returns true. */
bool utf8_next(const unsigned char *s, size_t len, size_t *i, uint32_t *cp)
{
    size_t p = *i;
    unsigned char c = s[p];
    uint32_t v;
    size_t n;
    uint32_t min;

    if (c < 0x80) {
        *cp = c;
        *i = p + 1;
        return true;
    } else if (c >= 0xc2 && c <= 0xdf) {
        v = c & 0x1f;
        n = 1;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        v = c & 0x0f;
        n = 2;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        v = c & 0x07;
        n = 3;
        min = 0x10000;
    } else {
        return false; /* continuation byte, 0xc0/0xc1 (overlong) or 0xf5-0xff */
    }
    if (len - p - 1 < n)
        return false;
    for (size_t k = 1; k <= n; k++) {
        unsigned char cc = s[p + k];
        if ((cc & 0xc0) != 0x80)
            return false;
        v = (v << 6) | (cc & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return false;
    *cp = v;
    *i = p + 1 + n;
    return true;
}

bool utf8_valid(const void *s, size_t len)
{
    const unsigned char *p = s;
    uint32_t cp;
    for (size_t i = 0; i < len;) {
        /* ASCII runs, a word at a time: most payloads are plain JSON. */
        uint64_t w;
        while (len - i >= sizeof w && (memcpy(&w, p + i, sizeof w), !(w & 0x8080808080808080ULL)))
            i += sizeof w;
        if (i < len && !utf8_next(p, len, &i, &cp))
            return false;
    }
    return true;
}
