/* cloudevent: CloudEvents 1.0 structured mode (JSON) to the NATS binding's
 * binary mode, for the publish API (contract §4).
 * Owns validating a structured event and producing its ce-<name> headers,
 * payload and Content-Type. Does not own publishing.
 * Pure: no I/O, no globals. */
#ifndef HERALD_CLOUDEVENT_H
#define HERALD_CLOUDEVENT_H

#include <stddef.h>

#include "herald/status.h"

typedef struct {
    char *name;  /* "ce-id", "ce-source", ... (owned) */
    char *value; /* text value (owned) */
} ce_header;

/* A CloudEvent in binary mode. Everything is owned; release with ce_binary_clear. */
typedef struct {
    ce_header *headers; /* one per attribute and extension, datacontenttype excluded */
    size_t nheaders;
    char *content_type;  /* datacontenttype, default "application/json" */
    char *id;            /* the `id` attribute */
    unsigned char *data; /* payload; NULL when len is 0 */
    size_t len;
} ce_binary;

/* Parse body[0..len) as a structured CloudEvent. Requirements: a JSON
 * object (no duplicate keys), specversion "1.0", non-empty string id, source
 * and type; attribute names [a-z0-9]{1,20}; attribute values strings,
 * integers or booleans (as text), null = absent; string values without
 * control characters; at most one of data and data_base64 (valid standard
 * base64). `data` becomes the payload as its compact JSON text when the
 * content type is JSON (absent, application/json, or a +json type), else a
 * string's raw text (other JSON values as JSON text).
 * HR_ERR_INVALID with a reason in err when malformed; HR_ERR_NOMEM. On any
 * error *out is zeroed and owns nothing. */
hr_status ce_from_structured(const char *body, size_t len, ce_binary *out, char *err,
                             size_t errlen);

void ce_binary_clear(ce_binary *b);

#endif
