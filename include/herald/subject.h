/* subject: NATS subject and pattern rules (contract §2).
 * Owns validation of subjects and patterns, matching a subject against a
 * pattern, containment of one pattern in another, and the placeholder-value
 * rule shared by permission and webhook templates.
 * Pure: no I/O, no allocation, no globals. */
#ifndef HERALD_SUBJECT_H
#define HERALD_SUBJECT_H

#include <stdbool.h>
#include <stddef.h>

#define SUBJECT_MAX_BYTES     1024
#define SUBJECT_MAX_TOKENS    64
#define PLACEHOLDER_VALUE_MAX 256

/* A literal subject: tokens separated by '.', no empty token, no wildcard
 * token, no byte 0x00-0x20 or 0x7f, valid UTF-8 (no overlong form, surrogate
 * or code point above U+10FFFF), <= 64 tokens, <= 1024 bytes.
 * A token that merely contains '*' or '>' ("foo*") is invalid too. */
bool subject_valid(const char *s, size_t len);

/* A pattern: like a subject, but whole-token '*' anywhere and whole-token
 * '>' as the last token are allowed. */
bool subject_pattern_valid(const char *s, size_t len);

/* True if the pattern has a '*' or '>' token. Input must be a valid pattern. */
bool subject_has_wildcard(const char *pattern, size_t len);

/* Does literal subject s match pattern p (NATS semantics: '*' one token,
 * '>' one or more trailing tokens)? Both must already be valid. */
bool subject_matches(const char *pattern, size_t plen, const char *s, size_t slen);

/* Is every subject matched by `inner` also matched by `outer`?
 * Both must already be valid patterns. */
bool subject_contains(const char *outer, size_t olen, const char *inner, size_t ilen);

/* Is there a subject matched by both patterns? Both must be valid. */
bool subject_intersects(const char *a, size_t alen, const char *b, size_t blen);

/* Placeholder value (contract §2): non-empty, <= 256 bytes, valid UTF-8, no
 * '.', '*', '>', no control character (C0, DEL, C1), no whitespace of any
 * kind (ASCII or Unicode White_Space: U+0085, U+00A0, U+1680, U+2000-U+200A,
 * U+2028, U+2029, U+202F, U+205F, U+3000). As a precaution the invisible
 * U+180E, U+200B, U+2060 and U+FEFF are refused too. */
bool subject_placeholder_value_valid(const char *v, size_t len);

#endif
