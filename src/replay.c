/* replay: paced per-subscription reads of a JetStream stream. */
#include "herald/replay.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "herald/log.h"
#include "herald/netutil.h"
#include "herald/resume.h"
#include "herald/subject.h"

#define REQUEST_MS     3000 /* JetStream API requests */
#define FETCH_WAIT_MS  1000 /* a fetch that finds nothing waits this long */
#define INACTIVE_S     300  /* the server drops a consumer unread this long */
#define RETRY_PAUSE_MS 250  /* after a failed fetch, before the next */
#define MAX_FAILURES   40   /* consecutive failed fetches (about 10 s) end a replay */
#define THREADS        2    /* replays read in parallel (each by one thread at a time) */

struct replay {
    _Atomic int refs;
    char *stream, *filter;
    bool last;
    uint64_t since;
    /* replayer thread only */
    natsSubscription *pull; /* NULL: (re)create before the next fetch */
    uint64_t next_seq;      /* first sequence not read yet; 0 = none read */
    int failures;           /* consecutive failed fetches */
    bool started;
    /* under replayer.lock */
    unsigned credit; /* messages the owner can take now (0: wait) */
    bool cancelled;
    struct replay *next; /* the replayer's list */
    void *route;         /* immutable */
    /* owner thread only */
    void *tag;
};

struct replayer {
    bus *bus;
    replay_sink sink;
    metrics_cell *m_consumers, *m_invalid;
    jsCtx *js;
    pthread_t threads[THREADS];
    int nthreads;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    replay *list; /* under lock */
    bool stop;    /* under lock */
};

replay *replay_ref(replay *rp)
{
    atomic_fetch_add(&rp->refs, 1);
    return rp;
}

void replay_release(replay *rp)
{
    if (!rp || atomic_fetch_sub(&rp->refs, 1) != 1)
        return;
    free(rp->stream);
    free(rp->filter);
    free(rp);
}

void replay_set_tag(replay *rp, void *tag)
{
    rp->tag = tag;
}

void *replay_route(const replay *rp)
{
    return rp->route;
}

void *replay_tag(const replay *rp)
{
    return rp->tag;
}

static void drop_consumer(replayer *r, replay *rp)
{
    if (!rp->pull)
        return;
    natsSubscription_Unsubscribe(rp->pull); /* deletes the ephemeral consumer */
    natsSubscription_Destroy(rp->pull);
    rp->pull = NULL;
    metrics_add(r->m_consumers, -1);
}

/* Create the pull consumer: at `start_seq`, or last per subject when 0. */
static bool create_consumer(replayer *r, replay *rp, uint64_t start_seq)
{
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = rp->stream;
    so.Config.AckPolicy = js_AckNone;
    so.Config.InactiveThreshold = (int64_t)INACTIVE_S * 1000000000;
    if (start_seq) {
        so.Config.DeliverPolicy = js_DeliverByStartSequence;
        so.Config.OptStartSeq = start_seq;
    } else {
        so.Config.DeliverPolicy = js_DeliverLastPerSubject;
    }
    jsErrCode jerr = 0;
    if (js_PullSubscribe(&rp->pull, r->js, rp->filter, NULL, NULL, &so, &jerr) != NATS_OK) {
        rp->pull = NULL;
        return false;
    }
    metrics_add(r->m_consumers, 1);
    return true;
}

static bool consumer_pending(replay *rp, uint64_t *pending)
{
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    if (natsSubscription_GetConsumerInfo(&ci, rp->pull, NULL, &jerr) != NATS_OK)
        return false;
    *pending = ci->NumPending;
    jsConsumerInfo_Destroy(ci);
    return true;
}

static void do_start(replayer *r, replay *rp)
{
    replay_started st = {0};
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    if (js_GetStreamInfo(&si, r->js, rp->stream, NULL, &jerr) == NATS_OK) {
        st.first_seq = si->State.FirstSeq;
        st.last_seq = si->State.LastSeq;
        jsStreamInfo_Destroy(si);
        uint64_t start = 0;
        if (!rp->last)
            start = resume_start_seq(rp->since, st.first_seq, &st.gap);
        st.ok = create_consumer(r, rp, start) && consumer_pending(rp, &st.pending);
        if (!st.ok)
            drop_consumer(r, rp);
        else
            rp->next_seq = start;
    }
    rp->started = true;
    r->sink.started(r->sink.ctx, rp, &st);
}

static void do_fetch(replayer *r, replay *rp, unsigned credit)
{
    replay_batch b = {0};
    /* A snapshot re-created mid-way asks for the last per subject again
     * and skips what it already passed (a by-sequence restart would
     * replay every superseded message). */
    if (!rp->pull && !create_consumer(r, rp, rp->last ? 0 : rp->next_seq)) {
        b.error = true;
        b.fatal = ++rp->failures >= MAX_FAILURES;
        usleep(RETRY_PAUSE_MS * 1000);
        r->sink.batch_end(r->sink.ctx, rp, &b);
        return;
    }
    jsFetchRequest fr;
    jsFetchRequest_Init(&fr);
    fr.Batch = (int)credit;
    fr.NoWait = true; /* with Expires: answer at once when something is stored */
    fr.Expires = (int64_t)FETCH_WAIT_MS * 1000000;
    natsMsgList list = {0};
    natsStatus s = natsSubscription_FetchRequest(&list, rp->pull, &fr);
    if (s == NATS_OK) {
        char now[40];
        clock_rfc3339_now(now, sizeof now);
        for (int i = 0; i < list.Count; i++) {
            natsMsg *m = list.Msgs[i];
            uint64_t seq;
            if (!resume_parse_ack(natsMsg_GetReply(m), &seq, &b.pending) || seq < rp->next_seq)
                continue;
            rp->next_seq = seq + 1;
            const char *subj = natsMsg_GetSubject(m);
            if (!subject_valid(subj, strlen(subj))) { /* never to a browser (contract §3) */
                metrics_add(r->m_invalid, 1);
                continue;
            }
            frame *f = frame_event(subj, strlen(subj), natsMsg_GetData(m),
                                   (size_t)natsMsg_GetDataLength(m), now, (int64_t)seq);
            if (f)
                r->sink.event(r->sink.ctx, rp, f, seq);
        }
        natsMsgList_Destroy(&list);
    } else if (s == NATS_TIMEOUT || s == NATS_NOT_FOUND) {
        b.idle = true;
        if (!consumer_pending(rp, &b.pending)) {
            b.idle = false;
            b.error = true;
        }
    } else {
        b.error = true;
    }
    if (b.error) {
        /* Gone with a node, deleted, or timed out: read on from next_seq
         * with a new consumer. A stream gone for good ends the replay. */
        drop_consumer(r, rp);
        b.fatal = ++rp->failures >= MAX_FAILURES;
        usleep(RETRY_PAUSE_MS * 1000);
    } else {
        rp->failures = 0;
    }
    r->sink.batch_end(r->sink.ctx, rp, &b);
}

static void *replayer_main(void *arg)
{
    replayer *r = arg;
    pthread_mutex_lock(&r->lock);
    for (;;) {
        replay **pp = NULL;
        for (replay **it = &r->list; *it; it = &(*it)->next)
            if ((*it)->cancelled || !(*it)->started || (*it)->credit) {
                pp = it;
                break;
            }
        if (!pp) {
            if (r->stop)
                break;
            pthread_cond_wait(&r->cond, &r->lock);
            continue;
        }
        replay *rp = *pp;
        *pp = rp->next; /* taken out; back at the tail unless it ends (round robin) */
        bool cancelled = rp->cancelled || r->stop;
        unsigned credit = rp->credit;
        rp->credit = 0;
        pthread_mutex_unlock(&r->lock);
        if (cancelled) {
            drop_consumer(r, rp);
            replay_release(rp);
        } else if (!rp->started) {
            do_start(r, rp);
        } else {
            do_fetch(r, rp, credit);
        }
        pthread_mutex_lock(&r->lock);
        if (!cancelled) {
            rp->next = NULL;
            replay **tail = &r->list;
            while (*tail)
                tail = &(*tail)->next;
            *tail = rp;
        }
    }
    /* Stopping: delete what is left (the last thread out finds it all). */
    replay *rest = r->list;
    r->list = NULL;
    pthread_mutex_unlock(&r->lock);
    for (replay *rp = rest, *n; rp; rp = n) {
        n = rp->next;
        drop_consumer(r, rp);
        replay_release(rp);
    }
    return NULL;
}

hr_status replayer_new(replayer **out, bus *b, metrics_cell *consumers, metrics_cell *invalid,
                       const replay_sink *sink, char *err, size_t errlen)
{
    *out = NULL;
    replayer *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return HR_ERR_NOMEM;
    }
    r->bus = b;
    r->sink = *sink;
    r->m_consumers = consumers;
    r->m_invalid = invalid;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = REQUEST_MS;
    if (natsConnection_JetStream(&r->js, bus_conn(b), &jo) != NATS_OK) {
        replayer_free(r);
        snprintf(err, errlen, "cannot create the replayers' JetStream context");
        return HR_ERR_NATS;
    }
    for (; r->nthreads < THREADS; r->nthreads++)
        if (pthread_create(&r->threads[r->nthreads], NULL, replayer_main, r) != 0) {
            replayer_free(r);
            snprintf(err, errlen, "cannot start a replayer thread");
            return HR_ERR_IO;
        }
    *out = r;
    return HR_OK;
}

void replayer_free(replayer *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->stop = true;
    for (replay *rp = r->list; rp; rp = rp->next)
        rp->cancelled = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    for (int i = 0; i < r->nthreads; i++)
        pthread_join(r->threads[i], NULL);
    jsCtx_Destroy(r->js);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    free(r);
}

replay *replay_start(replayer *r, const char *stream, const char *filter, bool last, uint64_t since,
                     void *route)
{
    replay *rp = calloc(1, sizeof *rp);
    if (!rp)
        return NULL;
    rp->stream = strdup(stream);
    rp->filter = strdup(filter);
    if (!rp->stream || !rp->filter) {
        free(rp->stream);
        free(rp->filter);
        free(rp);
        return NULL;
    }
    rp->last = last;
    rp->since = since;
    rp->route = route;
    atomic_store(&rp->refs, 2); /* the owner's and the replayer's */
    pthread_mutex_lock(&r->lock);
    replay **tail = &r->list;
    while (*tail)
        tail = &(*tail)->next;
    *tail = rp;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
    return rp;
}

void replay_grant(replayer *r, replay *rp, unsigned msgs)
{
    pthread_mutex_lock(&r->lock);
    rp->credit = msgs ? msgs : 1;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

void replay_cancel(replayer *r, replay *rp)
{
    if (!rp)
        return;
    rp->tag = NULL;
    pthread_mutex_lock(&r->lock);
    rp->cancelled = true;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
    replay_release(rp);
}
