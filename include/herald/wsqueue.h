/* wsqueue: one WebSocket session's outbound queue (contract §3 limits).
 * Owns a ring of frame references and their byte count, and the overflow
 * policies: `disconnect` (the caller closes the session) and `drop` (the
 * oldest queued events make room; control frames are never dropped).
 * It does not own the frames' bytes (shared, refcounted: frame.h), the
 * socket, or the `dropped` notice (the session counts what was dropped).
 * Pure: no I/O, no globals. Owned by its session; the session's service
 * thread only. */
#ifndef HERALD_WSQUEUE_H
#define HERALD_WSQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "herald/frame.h"

typedef struct {
    frame **v;    /* ring of references */
    size_t head;  /* index of the oldest */
    size_t len;   /* frames queued */
    size_t cap;   /* ring slots */
    size_t bytes; /* payload bytes queued (the limit applies to these) */
} wsqueue;

#define WSQUEUE_INIT                                                                               \
    {                                                                                              \
        NULL, 0, 0, 0, 0                                                                           \
    }

/* Append `f`, taking the caller's reference. False on OOM (the reference
 * is still the caller's). */
bool wsq_push(wsqueue *q, frame *f);
/* The oldest frame (still queued), or NULL. */
frame *wsq_peek(const wsqueue *q);
/* Remove and release the oldest frame. The queue must not be empty. */
void wsq_pop(wsqueue *q);
/* Release every frame (the ring stays allocated). */
void wsq_clear(wsqueue *q);
/* Release every frame and the ring. */
void wsq_free(wsqueue *q);
/* Drop the oldest queued event (not a control frame); false if none. */
bool wsq_drop_oldest_event(wsqueue *q);
/* Keep only the frames `keep` accepts (control frames always stay). */
void wsq_filter_events(wsqueue *q, bool (*keep)(void *ctx, const frame *f), void *ctx);

typedef enum {
    WSQ_QUEUED,  /* queued (perhaps after dropping older events) */
    WSQ_DROPPED, /* not queued: drop policy, and it cannot fit however much is dropped */
    WSQ_SLOW,    /* not queued: disconnect policy and over the limit */
} wsq_result;

/* Queue an event (taking a new reference to `f` when queued) unless it
 * would push the queue past `max` bytes: then, with `drop`, the oldest
 * events go first (*dropped counts every event dropped, this one
 * included when it cannot fit at all); without it, WSQ_SLOW. OOM counts
 * as a drop. */
wsq_result wsq_offer_event(wsqueue *q, frame *f, size_t max, bool drop, uint64_t *dropped);

#endif
