/* Unit tests for evcache.c: the copies of one message share one frame,
 * anything else gets its own, the window and the byte bound hold, and two
 * threads asking at once build the frame once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "herald/evcache.h"

#define S(x) (x), strlen(x)

typedef struct {
    const char *subject;
    const char *payload;
    int64_t seq;
    _Atomic int calls;
    useconds_t delay; /* make sleeps this long (concurrency test) */
} maker;

static frame *make(void *ctx)
{
    maker *m = ctx;
    atomic_fetch_add(&m->calls, 1);
    if (m->delay)
        usleep(m->delay);
    return frame_event(S(m->subject), S(m->payload), "2026-11-22T14:00:00.123Z", m->seq);
}

static frame *get(evcache *c, maker *m, int64_t now, bool *made)
{
    return evcache_get(c, S(m->subject), S(m->payload), m->seq, now, NULL, make, m, made);
}

static void test_copies_share_one_frame(void **state)
{
    (void)state;
    evcache *c = evcache_new(42, 1000, 1 << 20);
    assert_non_null(c);
    maker m = {.subject = "a.b", .payload = "{\"n\":1}", .seq = -1};
    bool made;
    frame *first = get(c, &m, 5, &made);
    assert_non_null(first);
    assert_true(made);
    for (int i = 0; i < 100; i++) {
        frame *f = get(c, &m, 5 + i, &made);
        assert_ptr_equal(f, first);
        assert_false(made);
        frame_release(f);
    }
    assert_int_equal(atomic_load(&m.calls), 1);
    /* made is optional */
    frame *f = evcache_get(c, S("a.b"), S("{\"n\":1}"), -1, 6, NULL, make, &m, NULL);
    assert_ptr_equal(f, first);
    frame_release(f);
    frame_release(first);
    evcache_free(c); /* releases what it holds (ASan: no leak) */
}

static void test_other_content_gets_its_own(void **state)
{
    (void)state;
    evcache *c = evcache_new(7, 1000, 1 << 20);
    maker base = {.subject = "a.b", .payload = "{\"n\":1}", .seq = -1};
    maker other_subject = {.subject = "a.c", .payload = "{\"n\":1}", .seq = -1};
    maker other_payload = {.subject = "a.b", .payload = "{\"n\":2}", .seq = -1};
    maker with_seq = {.subject = "a.b", .payload = "{\"n\":1}", .seq = 9};
    maker other_seq = {.subject = "a.b", .payload = "{\"n\":1}", .seq = 10};
    maker *all[] = {&base, &other_subject, &other_payload, &with_seq, &other_seq};
    frame *fs[5];
    bool made;
    for (int i = 0; i < 5; i++) {
        fs[i] = get(c, all[i], 1, &made);
        assert_true(made);
        for (int j = 0; j < i; j++)
            assert_ptr_not_equal(fs[i], fs[j]);
    }
    for (int i = 0; i < 5; i++) { /* each still found */
        frame *f = get(c, all[i], 2, &made);
        assert_ptr_equal(f, fs[i]);
        assert_false(made);
        frame_release(f);
        frame_release(fs[i]);
        assert_int_equal(atomic_load(&all[i]->calls), 1);
    }
    evcache_free(c);
}

static void test_window(void **state)
{
    (void)state;
    evcache *c = evcache_new(1, 100, 1 << 20);
    maker m = {.subject = "a.b", .payload = "x", .seq = -1};
    bool made;
    frame *a = get(c, &m, 1000, &made);
    frame *b = get(c, &m, 1100, &made); /* at the edge: still a copy */
    assert_ptr_equal(a, b);
    assert_false(made);
    frame *d = get(c, &m, 1101, &made); /* later: a new message, a new frame */
    assert_true(made);
    assert_ptr_not_equal(d, a);
    frame_release(a);
    frame_release(b);
    frame_release(d);
    evcache_free(c);
    /* A lookup stamped before the frame was built (its time taken before
     * another thread, holding the lock, built it) is still a copy. */
    c = evcache_new(1, 100, 1 << 20);
    a = get(c, &m, 1000, &made);
    b = get(c, &m, 950, &made);
    assert_ptr_equal(a, b);
    assert_false(made);
    frame_release(a);
    frame_release(b);
    evcache_free(c);
}

/* A receiver that already took the frame is getting a new message with the
 * same content: it gets a new frame, which the other receivers then share. */
static void test_taken_means_a_new_message(void **state)
{
    (void)state;
    evcache *c = evcache_new(11, 1000, 1 << 20);
    maker m = {.subject = "a.b", .payload = "{\"beat\":true}", .seq = -1};
    bool made;
    /* receivers A and B each get two identical messages */
    const frame *a_taken = NULL, *b_taken = NULL;
    frame *a1 = evcache_get(c, S(m.subject), S(m.payload), -1, 1, a_taken, make, &m, &made);
    assert_true(made);
    a_taken = a1;
    frame *b1 = evcache_get(c, S(m.subject), S(m.payload), -1, 2, b_taken, make, &m, &made);
    assert_false(made); /* B's copy of the first */
    assert_ptr_equal(b1, a1);
    b_taken = b1;
    frame *a2 = evcache_get(c, S(m.subject), S(m.payload), -1, 500, a_taken, make, &m, &made);
    assert_true(made); /* A took a1 already: the second message */
    assert_ptr_not_equal(a2, a1);
    a_taken = a2;
    frame *b2 = evcache_get(c, S(m.subject), S(m.payload), -1, 501, b_taken, make, &m, &made);
    assert_false(made); /* B's copy of the second */
    assert_ptr_equal(b2, a2);
    assert_int_equal(atomic_load(&m.calls), 2);
    frame_release(a1);
    frame_release(b1);
    frame_release(a2);
    frame_release(b2);
    evcache_free(c);
}

static frame *fail_make(void *ctx)
{
    atomic_fetch_add(&((maker *)ctx)->calls, 1);
    return NULL;
}

static void test_make_fails(void **state)
{
    (void)state;
    evcache *c = evcache_new(3, 1000, 1 << 20);
    maker m = {.subject = "a.b", .payload = "x", .seq = -1};
    bool made = true;
    for (int i = 0; i < 3; i++) {
        assert_null(evcache_get(c, S("a.b"), S("x"), -1, 1, NULL, fail_make, &m, &made));
        assert_false(made);
    }
    assert_int_equal(atomic_load(&m.calls), 3); /* a failure is never remembered */
    assert_int_equal(evcache_bytes(c), 0);
    evcache_free(c);
}

static void test_bounded(void **state)
{
    (void)state;
    size_t max = 64 << 10;
    evcache *c = evcache_new(9, 1000, max);
    char payload[600];
    memset(payload, 'p', sizeof payload - 1);
    payload[sizeof payload - 1] = '\0';
    maker m = {.subject = "a.b", .payload = payload, .seq = -1};
    for (int i = 0; i < 20000; i++) { /* far more than the entries and the bytes */
        char num[16];
        int n = snprintf(num, sizeof num, "%d", i);
        memcpy(payload, num, (size_t)n);
        bool made;
        frame *f = get(c, &m, 1, &made);
        assert_true(made);
        frame_release(f);
        assert_true(evcache_bytes(c) <= max);
    }
    assert_true(evcache_bytes(c) > max / 2); /* it does keep frames */
    /* one larger than the whole bound is built but never kept */
    static char big[100 << 10];
    memset(big, 'b', sizeof big - 1);
    maker b = {.subject = "a.b", .payload = big, .seq = -1};
    bool made;
    for (int i = 0; i < 2; i++) {
        frame *f = get(c, &b, 1, &made);
        assert_true(made);
        frame_release(f);
    }
    assert_int_equal(atomic_load(&b.calls), 2);
    assert_true(evcache_bytes(c) <= max);
    evcache_free(c);
}

typedef struct {
    evcache *c;
    maker *m;
    frame *got;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    r->got = get(r->c, r->m, 1, NULL);
    return NULL;
}

static void test_concurrent_copies_build_once(void **state)
{
    (void)state;
    evcache *c = evcache_new(5, 1000, 1 << 20);
    maker m = {.subject = "a.b", .payload = "{\"n\":1}", .seq = -1, .delay = 20000};
    racer r[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (racer){c, &m, NULL};
        assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&m.calls), 1);
    for (int i = 0; i < 4; i++) {
        assert_ptr_equal(r[i].got, r[0].got);
        frame_release(r[i].got);
    }
    evcache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copies_share_one_frame),
        cmocka_unit_test(test_other_content_gets_its_own),
        cmocka_unit_test(test_window),
        cmocka_unit_test(test_taken_means_a_new_message),
        cmocka_unit_test(test_make_fails),
        cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_concurrent_copies_build_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
