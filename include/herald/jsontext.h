/* jsontext: reading values out of parsed JSON as text, shared by the
 * webhook templates ({json:/ptr}), the permission templates (claims) and
 * CloudEvents attributes. jt_ = JSON text (jansson owns the json_ prefix).
 * Owns: RFC 6901 pointer lookup, and the one rule for a JSON scalar as
 * text: a string as it is, an integer in decimal, true/false; null, reals,
 * objects and arrays have no text.
 * Does not own: parsing (jansson), what text a caller then accepts (each
 * checks its own rule: subject tokens, control characters).
 * Pure: no I/O, no globals, no allocation; any thread may call it (jansson
 * values are only read). */
#ifndef HERALD_JSONTEXT_H
#define HERALD_JSONTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#define JT_INT_TEXT_MAX 24 /* "-9223372036854775808" + NUL, with room */

/* RFC 6901: the value `ptr` designates in `doc`, or NULL. "" is the whole
 * document; "~1" is '/', "~0" is '~'; array indexes are decimal without
 * leading zeros ("-" designates nothing). Borrowed reference. */
const json_t *jt_pointer_get(const json_t *doc, const char *ptr);

/* v's text: *out points into v (a string, which may hold NUL bytes: check
 * *outlen), into buf (an integer) or at a static literal (a boolean), and
 * stays valid while v and buf do. False for NULL, null, a real, an object
 * or an array. */
bool jt_scalar_text(const json_t *v, char buf[JT_INT_TEXT_MAX], const char **out, size_t *outlen);

#endif
