/* whreplay: the webhook replay cache (contract v1.2 §4 "Replay",
 * webhooks.<source>.verify.replay_window_s).
 * Owns a bounded table of accepted signed requests, keyed by a 32-byte
 * digest the caller derives (source and signed content), each with the
 * fields of the first answer. A request is "pending" from its check until
 * the caller completes it (202 given: the answer is kept until the window
 * ends) or forgets it (refused: a retry is a new request).
 * Memory is bounded: at max_entries the oldest entry is dropped.
 * No I/O, no clock reads (the caller passes now); thread-safe (one mutex):
 * the MHD workers and the threads that finish publishes share one table. */
#ifndef HERALD_WHREPLAY_H
#define HERALD_WHREPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WHR_KEY_LEN     32
#define WHR_MAX_ENTRIES 65536 /* default bound */
#define WHR_MAX_FIELD   256   /* longest id / subject / stream kept */

typedef struct whr_table whr_table;

/* The first answer's fields (contract §4: id, subject, and stream/seq when
 * JetStream stored it). */
typedef struct {
    char id[WHR_MAX_FIELD + 1];
    char subject[WHR_MAX_FIELD + 1];
    bool jetstream;
    char stream[WHR_MAX_FIELD + 1];
    uint64_t seq;
} whr_answer;

typedef enum {
    WHR_NEW = 0, /* not seen: now pending; complete or forget it */
    WHR_PENDING, /* the same request is being processed right now */
    WHR_SEEN,    /* answered within the window: *out holds the first answer */
} whr_state;

/* NULL on allocation failure or max_entries == 0. */
whr_table *whr_new(size_t max_entries);
void whr_free(whr_table *t); /* NULL is a no-op */

/* Look key up at now_ms; an unseen key is inserted as pending, to expire
 * window_ms after now_ms once completed. */
whr_state whr_check(whr_table *t, const unsigned char key[WHR_KEY_LEN], int64_t now_ms,
                    int64_t window_ms, whr_answer *out);

/* The pending request was accepted with answer a. */
void whr_complete(whr_table *t, const unsigned char key[WHR_KEY_LEN], const whr_answer *a);

/* The pending request was refused: drop it. */
void whr_forget(whr_table *t, const unsigned char key[WHR_KEY_LEN]);

size_t whr_size(whr_table *t); /* entries held, pending included */

#endif
