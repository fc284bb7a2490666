/* resume: the pure parts of resume and snapshot (contract §3 "Resume").
 * Owns which history stream feeds a pattern, and the sequence bookkeeping
 * of one subscription handed over from its replay to the shared live feed:
 * while the replay runs, live events are held back (only their highest
 * sequence is remembered); the replay continues until it has passed every
 * live event held back; from then on only events above the last sequence
 * delivered go through. So the hand-over has no gap and no duplicate
 * whatever the order in which the two feeds arrive.
 * Pure: no I/O, no allocation, no globals. Callers: the hub's owner thread. */
#ifndef HERALD_RESUME_H
#define HERALD_RESUME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "herald/config.h"

/* The stream of the first history entry with a subject pattern that
 * contains `pattern` wholly, or NULL. `pattern` must be a valid pattern. */
const char *resume_history_stream(const hr_history_conf *h, size_t n, const char *pattern,
                                  size_t len);

typedef struct {
    bool replaying;    /* the replay feeds the subscription; live events held back */
    uint64_t floor;    /* every event delivered from now on has seq > floor */
    uint64_t live_max; /* highest live seq held back during the replay (0: none) */
} resume_state;

/* A subscription fed live only: events above `floor` go through. */
void resume_init_live(resume_state *st, uint64_t floor);
/* A subscription that replays first; nothing at or below `floor` is
 * replayed or delivered (since: N → N, snapshot → 0). */
void resume_init_replay(resume_state *st, uint64_t floor);

/* A live event with stream sequence `seq`: true = deliver it. */
bool resume_on_live(resume_state *st, uint64_t seq);
/* A replayed event: true = deliver it. */
bool resume_on_replayed(resume_state *st, uint64_t seq);

/* The replay found nothing more to read (its last event had nothing
 * pending after it). `gone_upto` (0: no claim): the replayer proved that
 * the stream holds nothing more up to this sequence although live events
 * up to it were held back (removed since, e.g. by max_msgs), so those are
 * given up. Returns true when the hand-over is complete: the subscription
 * is live from here and `synced` carries st->floor. False: replay on (a
 * live event held back is still ahead of the replay). */
bool resume_caught_up(resume_state *st, uint64_t gone_upto);

/* The stream sequence and pending count carried by a JetStream message's
 * reply subject: "$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.
 * <ts>.<pending>" or the v2 form with <domain>.<account hash> after
 * "$JS.ACK." and a random last token. False if `reply` is not one. */
bool resume_parse_ack(const char *reply, uint64_t *sseq, uint64_t *pending);

/* Where a `since: N` replay starts, given the stream's first stored
 * sequence: N+1, or first_seq when N+1 is gone (*gap set; then the reply
 * is history_gap with first_seq). since = first_seq-1 is not a gap. */
uint64_t resume_start_seq(uint64_t since, uint64_t first_seq, bool *gap);

#endif
