/* hub: live delivery from NATS to sessions (contract §3, §7).
 * Owns one NATS subscription per distinct pattern per process, shared by
 * every session subscription (hub_sub) on every service thread that asked
 * for it and removed when the last one leaves; the interest table; the
 * encoding of each NATS message into one refcounted `event` frame; and one
 * shard per service thread: its inbox, through which NATS threads hand it
 * those frames, and its own view of the interests it receives.
 *
 * Threads: a NATS delivery thread encodes each message once and pushes a
 * reference to the same frame into the inbox of every shard with receivers
 * (an atomic mask per interest), then calls that shard's wake function;
 * the only locks on that path are the receiving shards' own. Each inbox is
 * bounded (bytes): past it events are dropped before fan-out and each
 * receiver on that shard is told how many (`lost`). A private worker
 * thread does the blocking NATS calls (subscribes batched and confirmed by
 * one flush, unsubscribes, re-created consumers). A shard, its hub_subs and the callbacks for
 * them belong to that shard's service thread (its "owner thread"):
 * hub_subscribe, hub_process and every hub_sub function must be called
 * there. The interest table is shared under a lock taken on subscribe and
 * unsubscribe only. hub_new, hub_close, hub_shutdown and hub_free: the
 * thread that starts and stops the service threads.
 *
 * Overlapping patterns (issue 17): NATS delivers a message once per
 * matching subscription, so a message that matches k of the process's
 * patterns arrives k times, and the contract wants each of a session's k
 * matching subscriptions to get it. Herald keeps the k deliveries and makes
 * everything after the first copy cheap instead: the first copy is
 * validated and encoded, the others find that frame by content in a small
 * bounded cache (evcache.h; `herald_frames_encoded_total` counts one per
 * message) and cost a lookup, one reference per receiving shard and a
 * pointer pushed into its inbox; each delivery is then a pointer in the
 * session's ring (under `drop` a full ring drops its oldest reference:
 * nothing is allocated or encoded for a client that never reads, which the
 * ping timeout closes). Matching locally from one NATS subscription instead
 * would make NATS send herald more than its clients asked for; charging
 * deliveries against a session budget would break "once per matching
 * subscription". What remains per copy is nats.c's (parse, allocation,
 * hand-over to a delivery thread), bounded by ws.max_subscriptions per
 * session (bench/overlap.sh measures both).
 *
 * History (contract §3 "Resume"): an interest whose pattern a history
 * stream holds is fed by one JetStream ordered consumer instead of a core
 * subscription, and its frames carry `seq`. A subscription with `since`
 * first replays through its own paced reader (replay.h), holding the live
 * feed back, then joins it with no gap and no duplicate (resume.h) and
 * reports `synced`. After a NATS reconnection the worker replaces each
 * such consumer with one starting after the last sequence received (it
 * does not wait for nats.c to miss heartbeats); each shard's floor drops
 * what the two overlapping consumers repeat. */
#ifndef HERALD_HUB_H
#define HERALD_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "herald/bus.h"
#include "herald/frame.h"
#include "herald/metrics.h"
#include "herald/status.h"

#define HUB_MAX_SHARDS 64

typedef struct hub hub;
/* One service thread's share of the hub; owned by the hub. */
typedef struct hub_shard hub_shard;
/* One session's subscription to one pattern. Created by hub_subscribe, freed
 * by hub_unsubscribe (by its owner, on the owner thread). */
typedef struct hub_sub hub_sub;

/* Every callback gets the ctx of the shard it concerns. */
typedef struct {
    /* Wake the shard's owner thread so it calls hub_process (any thread). */
    void (*wake)(void *ctx);
    /* An event (f->subject) matched `s`'s pattern: queue `f` (take a
     * reference to keep it). Called from hub_process. */
    void (*deliver)(void *ctx, hub_sub *s, frame *f);
    /* `n` events for `s` were dropped before fan-out because the owner
     * thread fell behind (the inbox is bounded). Called from hub_process. */
    void (*lost)(void *ctx, hub_sub *s, uint64_t n);
    /* A pending subscribe finished: `ok` false means NATS could not confirm
     * the interest (or set up the replay); the owner must
     * hub_unsubscribe(s). Also called with `ok` false on a ready `s` whose
     * replay failed for good (its stream is gone): end it the same way. With `since`, ready comes
     * once the replay is set up; `gap_first_seq` >= 0 then says the resume point is gone and the
     * replay starts at that sequence (history_gap). Called from hub_process. */
    void (*ready)(void *ctx, hub_sub *s, bool ok, int64_t gap_first_seq);
    /* A since-subscription caught up: every later event has seq > `seq`.
     * Called from hub_process. */
    void (*synced)(void *ctx, hub_sub *s, uint64_t seq);
    /* Bytes the owner can queue for `s` now without pushing it past its
     * limits; 0 pauses its replay until hub_sub_pump. */
    size_t (*room)(void *ctx, hub_sub *s);
} hub_callbacks;

/* `nshards` (1..HUB_MAX_SHARDS) shards; ctxs[i] is shard i's callback ctx.
 * lifecycle.h's convention: *out only on HR_OK, err says why otherwise. */
hr_status hub_new(hub **out, bus *b, metrics *m, int nshards, const hub_callbacks *cb,
                  void *const *ctxs, char *err, size_t errlen);
hub_shard *hub_shard_at(hub *h, int i);

/* A subscribe's `since`: a sequence, or the last message per subject. */
typedef struct {
    bool last;
    uint64_t seq;
} hub_since;

/* Subscribe `owner` to a valid pattern, fed by history `stream` (NULL: core
 * NATS). `since` (NULL: none; ignored without a stream) replays first. When
 * the pattern's interest is already confirmed and there is no replay, the
 * returned hub_sub is ready at once (hub_sub_is_ready); otherwise `ready`
 * is called later. NULL on OOM. */
hub_sub *hub_subscribe(hub_shard *sh, const char *pattern, const char *stream,
                       const hub_since *since, void *owner);
void hub_unsubscribe(hub_sub *s);

bool hub_sub_is_ready(const hub_sub *s);
/* The owner has room again: let a paced replay read its next batch. */
void hub_sub_pump(hub_sub *s);
/* A value the owner keeps with its subscription (0 initially). */
void hub_sub_set_tag(hub_sub *s, uintptr_t tag);
uintptr_t hub_sub_tag(const hub_sub *s);
const char *hub_sub_pattern(const hub_sub *s);
void *hub_sub_owner(const hub_sub *s);

/* Work through the inbox: finished subscribes and pending events, at most a
 * bounded number per call (it wakes the owner again when more is left).
 * Owner thread. */
void hub_process(hub_shard *sh);

/* Stop taking events and wake-ups (any thread): after it returns the wake
 * function is never called again. Subscriptions may still be removed. */
void hub_close(hub *h);

/* Close, stop the worker and drop every NATS subscription (before bus_free). */
void hub_shutdown(hub *h);
/* Drop the owner's reference (after bus_free). Each NATS subscription
 * holds one too, released when nats.c completes it: the last one frees the
 * hub, so it is never freed under a running handler and never waited for
 * (normally at once, as bus_free has shut nats.c down). */
void hub_free(hub *h);

#endif
