/* Unit tests: a session's outbound queue and its overflow policies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "herald/wsqueue.h"

static frame *ev(size_t len)
{
    frame *f = frame_new(len);
    assert_non_null(f);
    f->is_event = true;
    memset(frame_payload(f), 'e', len);
    return f;
}

static frame *ctl(size_t len)
{
    frame *f = frame_new(len);
    assert_non_null(f);
    memset(frame_payload(f), 'c', len);
    return f;
}

static void test_fifo_and_wraparound(void **state)
{
    (void)state;
    wsqueue q = WSQUEUE_INIT;
    frame *fs[100];
    size_t popped = 0;
    for (size_t i = 0; i < 100; i++) {
        fs[i] = ev(i + 1);
        assert_true(wsq_push(&q, fs[i]));
        if (i % 3 == 2) { /* keep the ring wrapping while it grows */
            assert_ptr_equal(wsq_peek(&q), fs[popped]);
            wsq_pop(&q);
            popped++;
        }
    }
    size_t bytes = 0;
    for (size_t i = popped; i < 100; i++)
        bytes += i + 1;
    assert_int_equal(q.bytes, bytes);
    assert_int_equal(q.len, 100 - popped);
    for (size_t i = popped; i < 100; i++) {
        assert_ptr_equal(wsq_peek(&q), fs[i]);
        wsq_pop(&q);
    }
    assert_null(wsq_peek(&q));
    assert_int_equal(q.bytes, 0);
    wsq_free(&q);
}

/* One frame queued to several sessions: each queue holds a reference. */
static void test_shared_frame_references(void **state)
{
    (void)state;
    wsqueue a = WSQUEUE_INIT, b = WSQUEUE_INIT;
    frame *f = ev(10);
    uint64_t dropped = 0;
    assert_int_equal(wsq_offer_event(&a, f, 100, false, &dropped), WSQ_QUEUED);
    assert_int_equal(wsq_offer_event(&b, f, 100, false, &dropped), WSQ_QUEUED);
    assert_int_equal(atomic_load(&f->refs), 3);
    wsq_free(&a);
    assert_int_equal(atomic_load(&f->refs), 2);
    wsq_clear(&b);
    assert_int_equal(atomic_load(&f->refs), 1);
    frame_release(f);
    wsq_free(&b);
}

static void test_disconnect_policy(void **state)
{
    (void)state;
    wsqueue q = WSQUEUE_INIT;
    uint64_t dropped = 0;
    for (int i = 0; i < 4; i++) {
        frame *f = ev(25);
        assert_int_equal(wsq_offer_event(&q, f, 100, false, &dropped), WSQ_QUEUED);
        frame_release(f);
    }
    frame *f = ev(1);
    assert_int_equal(wsq_offer_event(&q, f, 100, false, &dropped), WSQ_SLOW);
    assert_int_equal(atomic_load(&f->refs), 1); /* not taken */
    assert_int_equal(dropped, 0);
    assert_int_equal(q.len, 4);
    frame_release(f);
    wsq_free(&q);
}

/* drop: the oldest events make room; control frames stay, in order. */
static void test_drop_policy(void **state)
{
    (void)state;
    wsqueue q = WSQUEUE_INIT;
    uint64_t dropped = 0;
    frame *c = ctl(10);
    assert_true(wsq_push(&q, c));
    frame *e[4];
    for (int i = 0; i < 4; i++) {
        e[i] = ev(20);
        assert_int_equal(wsq_offer_event(&q, e[i], 100, true, &dropped), WSQ_QUEUED);
    }
    assert_int_equal(q.bytes, 90);
    frame *big = ev(45); /* needs three events gone */
    assert_int_equal(wsq_offer_event(&q, big, 100, true, &dropped), WSQ_QUEUED);
    assert_int_equal(dropped, 2);
    assert_int_equal(q.bytes, 10 + 20 + 20 + 45);
    assert_ptr_equal(wsq_peek(&q), c); /* the control frame is still first */
    wsq_pop(&q);
    assert_ptr_equal(wsq_peek(&q), e[2]);
    wsq_pop(&q);
    assert_ptr_equal(wsq_peek(&q), e[3]);
    /* larger than the whole queue: dropped itself, after dropping the rest */
    frame *huge = ev(200);
    dropped = 0;
    assert_int_equal(wsq_offer_event(&q, huge, 100, true, &dropped), WSQ_DROPPED);
    assert_int_equal(dropped, 3);
    assert_int_equal(q.len, 0);
    assert_int_equal(atomic_load(&huge->refs), 1);
    for (int i = 0; i < 4; i++)
        frame_release(e[i]);
    frame_release(big);
    frame_release(huge);
    wsq_free(&q);
}

static bool keep_short(void *ctx, const frame *f)
{
    (void)ctx;
    return f->len < 15;
}

static void test_filter_events(void **state)
{
    (void)state;
    wsqueue q = WSQUEUE_INIT;
    frame *a = ev(10), *b = ev(20), *c = ctl(30), *d = ev(12);
    assert_true(wsq_push(&q, a));
    assert_true(wsq_push(&q, b));
    assert_true(wsq_push(&q, c));
    assert_true(wsq_push(&q, d));
    wsq_pop(&q); /* move head off zero */
    wsq_filter_events(&q, keep_short, NULL);
    assert_int_equal(q.len, 2); /* b dropped; the control frame stays */
    assert_int_equal(q.bytes, 42);
    assert_ptr_equal(wsq_peek(&q), c);
    wsq_pop(&q);
    assert_ptr_equal(wsq_peek(&q), d);
    assert_true(wsq_drop_oldest_event(&q));
    assert_int_equal(q.len, 0);
    assert_false(wsq_drop_oldest_event(&q)); /* empty now */
    wsq_free(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_and_wraparound), cmocka_unit_test(test_shared_frame_references),
        cmocka_unit_test(test_disconnect_policy),   cmocka_unit_test(test_drop_policy),
        cmocka_unit_test(test_filter_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
