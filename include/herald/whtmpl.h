/* whtmpl: webhook subject and ce-type templates (contract §4) and RFC 6901
 * JSON pointers.
 * Owns parsing a template ("webhooks.{source}.{+json:/type}") into literal
 * and placeholder parts once at startup, and rendering it for one request:
 * {source}, {header:Name}, {json:/pointer} (string, integer or boolean
 * values as text) and the multi-token forms {+header:Name}, {+json:/ptr}
 * (the value split at '.', each part a placeholder value, at most 16 parts).
 * Does not own: header lookup (the caller's callback), parsing the body (the
 * caller passes the parsed document), subject validation of the result
 * beyond the placeholder rules (the caller runs subject_valid).
 * Pure: no I/O, no globals. A compiled whtmpl is immutable and may be
 * rendered from any number of threads. */
#ifndef HERALD_WHTMPL_H
#define HERALD_WHTMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "herald/status.h"

#define WHTMPL_MAX_PARTS 16 /* tokens one {+...} placeholder may yield */

typedef struct whtmpl whtmpl;

/* Returns the value of request header `name` (case-insensitive lookup by the
 * caller) or NULL when absent. */
typedef const char *(*whtmpl_header_fn)(void *ctx, const char *name);

typedef enum {
    WHT_OK = 0,
    WHT_UNRESOLVED, /* a placeholder is missing, of the wrong type, or not a valid value */
    WHT_TOO_LONG,   /* the result does not fit the output buffer */
} whtmpl_result;

/* Parse `text`. On success *out is owned by the caller (whtmpl_free).
 * HR_ERR_INVALID for a syntax error (unknown placeholder, unbalanced
 * braces, a json pointer not starting with '/' or holding '{', a
 * placeholder over 255 bytes), HR_ERR_NOMEM. The first error stops the
 * parse; err (if non-NULL) then holds a short message for a configuration
 * problem line: "unknown placeholder {hdr:X}", "unterminated placeholder",
 * "unbalanced '}'", "'{' inside placeholder {json:/a{b}", "placeholder too
 * long", "out of memory". This is the one template parser: the
 * configuration (config.c) compiles with it and keeps the result. */
hr_status whtmpl_compile_err(whtmpl **out, const char *text, char *err, size_t errsz);

/* whtmpl_compile_err without the message. */
hr_status whtmpl_compile(whtmpl **out, const char *text);

/* Can t be a subject template: is the text with every placeholder replaced
 * by one plain character a valid subject (no wildcard, no empty token)?
 * False for NULL. */
bool whtmpl_subject_shaped(const whtmpl *t);
void whtmpl_free(whtmpl *t); /* NULL is a no-op */

/* True when rendering needs the parsed body (a {json:} placeholder). */
bool whtmpl_needs_json(const whtmpl *t);

/* Render into out[0..cap) (NUL-terminated, length in *outlen). `body` may be
 * NULL when the template needs no JSON (a {json:} placeholder then does not
 * resolve). `source` replaces {source}. */
whtmpl_result whtmpl_render(const whtmpl *t, const char *source, whtmpl_header_fn hdr, void *hctx,
                            const json_t *body, char *out, size_t cap, size_t *outlen);

/* Like whtmpl_render, but placeholder values are inserted as they are,
 * without the placeholder-value rules (the caller validates the whole
 * result: a delivery id allows '.', for instance). */
whtmpl_result whtmpl_render_raw(const whtmpl *t, const char *source, whtmpl_header_fn hdr,
                                void *hctx, const json_t *body, char *out, size_t cap,
                                size_t *outlen);

/* A NATS pattern covering every subject template t can render for this
 * source: each token holding a placeholder becomes '*', and a {+...}
 * placeholder (one or more tokens) ends the pattern with '>'. So
 * "webhooks.{source}.{+json:/type}" for "billing" is "webhooks.billing.>".
 * False when the result does not fit cap or is not a valid pattern. */
bool whtmpl_pattern(const whtmpl *t, const char *source, char *out, size_t cap);

#endif
