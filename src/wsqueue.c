/* wsqueue: a session's outbound ring of shared frames and its overflow policies. */
#include "herald/wsqueue.h"

#include <stdlib.h>

static frame **slot(const wsqueue *q, size_t i)
{
    return &q->v[(q->head + i) % q->cap];
}

static bool grow(wsqueue *q)
{
    size_t cap = q->cap ? q->cap * 2 : 16;
    frame **nv = malloc(cap * sizeof *nv);
    if (!nv)
        return false;
    for (size_t i = 0; i < q->len; i++)
        nv[i] = *slot(q, i);
    free(q->v);
    q->v = nv;
    q->cap = cap;
    q->head = 0;
    return true;
}

bool wsq_push(wsqueue *q, frame *f)
{
    if (q->len == q->cap && !grow(q))
        return false;
    q->v[(q->head + q->len) % q->cap] = f;
    q->len++;
    q->bytes += f->len;
    return true;
}

frame *wsq_peek(const wsqueue *q)
{
    return q->len ? q->v[q->head] : NULL;
}

void wsq_pop(wsqueue *q)
{
    frame *f = q->v[q->head];
    q->v[q->head] = NULL;
    q->head = (q->head + 1) % q->cap;
    q->len--;
    q->bytes -= f->len;
    frame_release(f);
}

void wsq_clear(wsqueue *q)
{
    for (size_t i = 0; i < q->len; i++)
        frame_release(*slot(q, i));
    q->head = q->len = 0;
    q->bytes = 0;
}

void wsq_free(wsqueue *q)
{
    wsq_clear(q);
    free(q->v);
    q->v = NULL;
    q->cap = 0;
}

/* Only control frames can stand before the oldest event, so closing the
 * gap moves a handful of slots. */
bool wsq_drop_oldest_event(wsqueue *q)
{
    for (size_t i = 0; i < q->len; i++) {
        frame *f = *slot(q, i);
        if (!f->is_event)
            continue;
        q->bytes -= f->len;
        frame_release(f);
        for (size_t k = i; k > 0; k--)
            *slot(q, k) = *slot(q, k - 1);
        q->head = (q->head + 1) % q->cap;
        q->len--;
        return true;
    }
    return false;
}

void wsq_filter_events(wsqueue *q, bool (*keep)(void *ctx, const frame *f), void *ctx)
{
    size_t n = 0;
    for (size_t i = 0; i < q->len; i++) {
        frame *f = *slot(q, i);
        if (f->is_event && !keep(ctx, f)) {
            q->bytes -= f->len;
            frame_release(f);
            continue;
        }
        *slot(q, n) = f;
        n++;
    }
    q->len = n;
}

wsq_result wsq_offer_event(wsqueue *q, frame *f, size_t max, bool drop, uint64_t *dropped)
{
    if (q->bytes + f->len > max) {
        if (!drop)
            return WSQ_SLOW;
        while (q->bytes + f->len > max && wsq_drop_oldest_event(q))
            (*dropped)++;
        if (q->bytes + f->len > max) { /* larger than the whole queue allows */
            (*dropped)++;
            return WSQ_DROPPED;
        }
    }
    if (!wsq_push(q, frame_ref(f))) {
        frame_release(f);
        (*dropped)++;
        return WSQ_DROPPED;
    }
    return WSQ_QUEUED;
}
