/* frame: immutable, refcounted WebSocket text frames and the encoders of
 * every server → client message of the herald.v1 protocol (contract §3).
 * A frame's bytes are laid out as [FRAME_PRE spare bytes | payload] so lws
 * can write its header in front without copying, and one frame can be
 * queued to many sessions: each queue holds a reference. The refcount is
 * atomic (frames are built on NATS threads, released on the service thread).
 * Pure: no I/O, no globals. */
#ifndef HERALD_FRAME_H
#define HERALD_FRAME_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME_PRE 16 /* = LWS_PRE on every platform herald builds for (checked in ws.c) */

typedef struct frame {
    _Atomic int refs;    /* the creator holds the first reference */
    bool is_event;       /* an `event` (droppable under slow_consumer=drop) */
    size_t len;          /* payload bytes */
    const char *subject; /* event: the raw NATS subject (NUL-terminated, inside data) */
    size_t subject_len;
    const unsigned char *raw; /* event: the raw NATS payload (inside data) */
    size_t raw_len;
    int64_t seq;          /* event: its `seq`, < 0 when none */
    unsigned char data[]; /* FRAME_PRE + len + 1 (NUL, for logging) [+ subject + NUL [+ raw]] */
} frame;

/* A frame with room for `len` payload bytes (uninitialised). NULL on OOM. */
frame *frame_new(size_t len);
static inline unsigned char *frame_payload(frame *f)
{
    return f->data + FRAME_PRE;
}
frame *frame_ref(frame *f);
/* Drop one reference; frees on the last. NULL is ignored. */
void frame_release(frame *f);

/* The `event` frame for one NATS message, sized exactly, carrying a copy of
 * the raw subject (for delivery checks after the NATS message is gone): `data` is the payload
 * verbatim when it is valid JSON (empty → ""), else a JSON string when it is valid UTF-8, else
 * `data_b64`. `time` is RFC 3339; seq < 0 means no `seq`. The raw payload stays reachable
 * (`raw`: inside the JSON when embedded verbatim, else a copy behind the subject) so that
 * frame_event_is may tell the frame of another copy of the same message (hub.h). */
frame *frame_event(const char *subject, size_t slen, const void *payload, size_t plen,
                   const char *time, int64_t seq);
/* `f` is the event frame_event builds for exactly this subject, payload and seq (any time). */
bool frame_event_is(const frame *f, const char *subject, size_t slen, const void *payload,
                    size_t plen, int64_t seq);

/* A control frame from a JSON object (compact). Does not steal `o`. */
frame *frame_from_json(const json_t *o);

/* Control frames. `id` may be NULL (then omitted). */
frame *frame_ok(const char *id);
frame *frame_pong(const char *id);
/* error: `subject` may be NULL; `first_seq` < 0 omitted. */
frame *frame_error(const char *id, const char *code, const char *message, const char *subject,
                   int64_t first_seq);
frame *frame_dropped(uint64_t count);
/* `synced` (resume): the subscription `subject` has caught up at `seq`. */
frame *frame_synced(const char *id, const char *subject, uint64_t seq);

/* Append `s` as a JSON string literal (quotes included) to buf at *pos;
 * returns false if it does not fit. `s` must be valid UTF-8. */
bool frame_json_string(char *buf, size_t cap, size_t *pos, const char *s, size_t len);

#endif
