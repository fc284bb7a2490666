/* evcache: the event frames encoded lately, so that the copies of one NATS
 * message that arrive on several of the process's interests share one frame.
 *
 * Why (issue 17, defect 2): herald holds one NATS subscription per distinct
 * pattern, and NATS delivers a message once per matching subscription. One
 * anonymous session with 100 patterns that all match a subject
 * (`public.*.b.>`, `public.a.*.>`, ...) makes each event arrive 100 times;
 * the contract (§3) wants 100 deliveries to that session, but the work per
 * copy must stay a lookup and a reference, not a validation, an encoding
 * and two allocations. NATS core messages carry no identity, so a copy is
 * recognised by content: a frame is reused for a message with the same
 * subject, payload and seq (compared in full, frame_event_is) that arrives
 * within `window_ms` of the one it was built for, on a receiver (a NATS
 * subscription) that has not taken that frame yet: one that has is getting
 * a new message with the same content, which gets its own frame. A reused
 * frame is byte-for-byte what encoding would give, but for `time`, which is
 * then the time herald received the first copy (at most window_ms earlier;
 * for a new message only when its receiver took other messages in between).
 *
 * Bounded: EVCACHE_SETS × EVCACHE_WAYS entries (a keyed hash of the content
 * picks a set, where a new frame replaces the oldest: the copies of up to
 * ~EVCACHE_SETS messages can be in flight at once, e.g. when one nats.c
 * delivery thread lags the other, before an eviction costs an encode), and
 * the frames held here total at most `max_bytes` (one that would pass it is
 * not remembered). Frames are held until replaced or the cache is freed.
 *
 * Threads: any; one lock per set. A frame is built under its set's lock,
 * so copies arriving at once on other threads wait for it instead of
 * building it again. Pure: no I/O, no globals. */
#ifndef HERALD_EVCACHE_H
#define HERALD_EVCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "herald/frame.h"

#define EVCACHE_SETS 512 /* a hash of the content picks a set */
#define EVCACHE_WAYS 8   /* frames per set: a new one replaces the oldest */

typedef struct evcache evcache;

/* Builds the frame for the message being looked up (a new reference), or
 * NULL. Called with its set's lock held. */
typedef frame *(*evcache_make_fn)(void *ctx);

/* `seed` keys the set hash (random per process). NULL on OOM. */
evcache *evcache_new(uint64_t seed, int64_t window_ms, size_t max_bytes);
/* Release every frame held and the cache. */
void evcache_free(evcache *c);

/* The event frame for (subject, payload, seq) at `now_ms` (any monotonic
 * milliseconds) for a receiver whose last frame was `taken` (NULL: none):
 * a new reference to the one remembered for exactly that content if it was
 * built at most window_ms before now_ms (or after it: a lookup stamped
 * before another thread built it) and is not `taken` (*made = false), else
 * make(ctx)'s, remembered when it fits (*made = true; `made` may be NULL).
 * NULL when make fails. The caller keeps the result's address as the
 * receiver's next `taken`, without a reference: it is only compared, and if
 * the frame is freed and its address reused, the worst case is one encode
 * more. */
frame *evcache_get(evcache *c, const char *subject, size_t slen, const void *payload, size_t plen,
                   int64_t seq, int64_t now_ms, const frame *taken, evcache_make_fn make, void *ctx,
                   bool *made);

/* Bytes of the frames held (for tests and metrics). */
size_t evcache_bytes(evcache *c);

#endif
