/* replay: per-subscription reads of a JetStream stream for resume and
 * snapshot (contract §3 "Resume"), paced by the reader.
 * Owns two private threads (the replayer) and, per replay, an ephemeral pull
 * consumer filtered on the pattern (by start sequence for `since: N`, last
 * per subject for `since: "last"`). Nothing is read without credit: the
 * owner grants a batch of messages when its queue has room, the
 * replayer fetches at most that, encodes each message once into an `event`
 * frame with its `seq`, and reports the batch's end with how much the
 * stream still holds after it. A lost consumer (node failure, deletion,
 * inactivity) is re-created from the next unread sequence.
 * It does not own the hand-over to live delivery (resume.h, hub.h).
 *
 * Threads: replay_start/grant/cancel from the owner thread (any single
 * thread); the sink callbacks run on a replayer thread and must only hand
 * their arguments over (they take references). */
#ifndef HERALD_REPLAY_H
#define HERALD_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "herald/bus.h"
#include "herald/frame.h"
#include "herald/metrics.h"
#include "herald/status.h"

typedef struct replayer replayer;
/* One replay. Refcounted: the owner holds one reference from replay_start
 * until replay_cancel; the replayer its own; the sink takes more. */
typedef struct replay replay;

typedef struct {
    bool ok;            /* false: the stream or consumer could not be set up */
    bool gap;           /* since: N+1 is no longer stored; reading from first_seq */
    uint64_t first_seq; /* the stream's first stored sequence */
    uint64_t last_seq;  /* the stream's last sequence when the replay began */
    uint64_t pending;   /* matching messages to read (0: nothing to replay) */
} replay_started;

typedef struct {
    bool error;       /* the fetch failed; the consumer is re-created on the next grant */
    bool fatal;       /* ...and has failed so long (stream gone) that the replay should end */
    bool idle;        /* nothing came; `pending` is from the consumer's info */
    uint64_t pending; /* messages still to read after this batch */
} replay_batch;

typedef struct {
    void (*started)(void *ctx, replay *rp, const replay_started *st);
    /* One message, encoded (the callee takes the frame's reference). */
    void (*event)(void *ctx, replay *rp, frame *f, uint64_t seq);
    void (*batch_end)(void *ctx, replay *rp, const replay_batch *b);
    void *ctx;
} replay_sink;

/* Start the replayer threads (lifecycle.h's convention: *out only on HR_OK,
 * err says why otherwise). `consumers`: a gauge counting live pull
 * consumers; `invalid`: a counter of stored messages skipped for an
 * invalid subject (both may be NULL). */
hr_status replayer_new(replayer **out, bus *b, metrics_cell *consumers, metrics_cell *invalid,
                       const replay_sink *sink, char *err, size_t errlen);
/* Stop the thread, delete every consumer, free (before bus_free). NULL ok. */
void replayer_free(replayer *r);

/* Begin reading `stream` on subjects matching `filter`: every message with
 * sequence > since, or (last) the last message of each subject. `started`
 * follows; nothing is read before a grant. `route` is the owner's: the
 * sink reads it (replay_route) to hand results to the right thread. NULL
 * on OOM. */
replay *replay_start(replayer *r, const char *stream, const char *filter, bool last, uint64_t since,
                     void *route);
/* Allow one batch of at most `msgs` messages; batch_end follows it. Call
 * again only after batch_end. */
void replay_grant(replayer *r, replay *rp, unsigned msgs);
/* End the replay and drop the owner's reference (its consumer is deleted
 * in the background). Events already handed to the sink may still arrive. */
void replay_cancel(replayer *r, replay *rp);

replay *replay_ref(replay *rp);
void replay_release(replay *rp);
/* The `route` given to replay_start (immutable: any thread). */
void *replay_route(const replay *rp);
/* A value the owner keeps with the replay (owner thread only). */
void replay_set_tag(replay *rp, void *tag);
void *replay_tag(const replay *rp);

#endif
