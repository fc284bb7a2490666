/* ingest: publishing one inbound event (webhook or publish API) to NATS
 * with the delivery guarantee of contract §4.
 * Owns the JetStream context used for asynchronous publishing, the
 * subject → capturing-stream cache (a copy of $JS.API.STREAM.LIST read by
 * one background thread at start, every 60 s and on demand), the publishes
 * waiting for that read, the table of publishes waiting for their PubAck,
 * and the publish / ack-duration metrics. No caller thread waits on a NATS
 * round trip: a publish whose lookup needs a fresh read is suspended
 * (`prepare`) and published by the reading thread afterwards. (A caller
 * may block up to 50 ms inside js_PublishMsgAsync when 8192 publishes
 * already wait for their PubAck: nats.c's StallWait.)
 * Does not own the HTTP side: a caller that must not block hands in a
 * `prepare` hook (run just before the asynchronous publish, e.g.
 * MHD_suspend_connection) and a `done` callback (e.g. MHD_resume_connection).
 * Threads: ingest_publish runs on any caller thread; `done` runs on a nats.c
 * thread (the ack handler), on ingest's flusher thread (core), on its
 * stream-list thread (a publish that waited for the list), on the caller's
 * thread for synchronous failures, or in ingest_drain. */
#ifndef HERALD_INGEST_H
#define HERALD_INGEST_H

#include <stdbool.h>
#include <stdint.h>
#include <nats/nats.h>

#include "herald/bus.h"
#include "herald/config.h"
#include "herald/metrics.h"
#include "herald/status.h"

typedef struct ingest ingest;

/* Outcome of one publish. */
typedef struct {
    hr_status st;      /* HR_OK = taken; HR_ERR_UNAVAILABLE = 503 (never published later) */
    const char *why;   /* detail for a 503: static, or why_buf */
    char why_buf[192]; /* JetStream's own reason for a refusal, when it gave one */
    bool jetstream;    /* stored by JetStream (stream/seq/duplicate valid) */
    char stream[256];  /* capturing stream */
    uint64_t seq;      /* stream sequence (the stored message's when duplicate) */
    bool duplicate;    /* the Nats-Msg-Id was already stored */
} ingest_result;

typedef void (*ingest_fn)(void *ctx);

/* One publish in flight. Owned by the caller; it must stay valid until
 * `done` has been called (when ingest_publish returned true). */
typedef struct ingest_op {
    ingest_result res;
    ingest_fn prepare; /* called once right before an asynchronous publish */
    ingest_fn done;    /* called once when res is final (asynchronous path only) */
    void *ctx;
    /* private */
    natsMsg *msg_key;            /* JetStream: the published message, to match its ack */
    natsMsg *lookup_msg;         /* waiting for a stream-list read: the message... */
    hr_delivery lookup_delivery; /* ...and its delivery */
    int64_t t0_ns;               /* publish start, for the duration histograms */
    struct ingest_op *next,
        *prev; /* PubAck wait table bucket, or the flush or lookup queue (next) */
} ingest_op;

hr_status ingest_new(ingest **out, const hr_config *cfg, bus *b, metrics *m);

/* Publish *msg (subject and headers set, Nats-Msg-Id included) with the
 * given delivery. Takes ownership of *msg in every case (sets it NULL).
 * Returns false when op->res is already final (NATS down, stream lookup
 * failed, JetStream refused at once, or shutting down): `prepare` and
 * `done` were not called.
 * Returns true when the publish went asynchronous -- a core publish waiting
 * for the flusher's next flush (one flush confirms every publish queued
 * before it), or a JetStream publish waiting for its PubAck: `prepare` was
 * called and `done` will be called exactly once (possibly before this
 * returns). */
bool ingest_publish(ingest *g, natsMsg **msg, hr_delivery d, ingest_op *op);

/* Senders retry for hours; JetStream deduplicates a Nats-Msg-Id only within
 * a stream's duplicate_window (default two minutes). */
#define INGEST_DEDUP_HORIZON_S 3600

/* Watch the streams that may store `source`'s events (subjects matching
 * `pattern`): whenever the stream list is read, each such stream's
 * duplicate window is exposed as
 * herald_webhook_stream_duplicate_window_seconds{source,stream}, and a
 * window shorter than INGEST_DEDUP_HORIZON_S is logged as a warning (once
 * per value). Call at startup, from any thread. */
hr_status ingest_watch_dedup(ingest *g, const char *source, const char *pattern);

/* Shutdown step (after the HTTP daemon is quiesced): refuse new publishes,
 * flush and answer the queued core publishes, wait up to timeout_ms for
 * outstanding PubAcks, then finish every op still waiting with 503 (calling
 * its `done`). */
void ingest_drain(ingest *g, int timeout_ms);

/* Free (after ingest_drain). NULL is a no-op. If ingest_drain could not
 * see every running PubAck handler return, the state is left allocated
 * rather than freed under a handler (the process is exiting). */
void ingest_free(ingest *g);

#endif
