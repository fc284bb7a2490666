/* utf8: strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing
 * above U+10FFFF. Pure. */
#ifndef HERALD_UTF8_H
#define HERALD_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Decode one sequence at s[*i] (*i < len): stores the code point, advances
 * *i and returns true; false on an invalid or truncated sequence. */
bool utf8_next(const unsigned char *s, size_t len, size_t *i, uint32_t *cp);

/* Is all of s valid UTF-8? */
bool utf8_valid(const void *s, size_t len);

#endif
