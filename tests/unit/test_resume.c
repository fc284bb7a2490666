/* Unit tests: the replay-to-live hand-over bookkeeping and history lookup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "herald/resume.h"

static void test_history_stream(void **state)
{
    (void)state;
    char *s1[] = {"deployments.>"}, *s2[] = {"movies.*.reviews", "books.>"};
    hr_history_conf h[] = {{"DEPLOYMENTS", s1, 1}, {"MEDIA", s2, 2}};
#define LOOK(p) resume_history_stream(h, 2, p, strlen(p))
    assert_string_equal(LOOK("deployments.u42.>"), "DEPLOYMENTS");
    assert_string_equal(LOOK("deployments.*.status"), "DEPLOYMENTS");
    assert_string_equal(LOOK("movies.m1.reviews"), "MEDIA");
    assert_string_equal(LOOK("books.x"), "MEDIA");
    assert_null(LOOK("deployments")); /* `>` needs one more token */
    assert_null(LOOK(">"));           /* only partly inside */
    assert_null(LOOK("movies.*.>"));
    assert_null(LOOK("users.u42.>"));
    assert_null(resume_history_stream(NULL, 0, "a", 1));
#undef LOOK
}

static void test_start_seq(void **state)
{
    (void)state;
    bool gap;
    assert_int_equal(resume_start_seq(0, 1, &gap), 1);
    assert_false(gap);
    assert_int_equal(resume_start_seq(0, 0, &gap), 1); /* empty stream */
    assert_false(gap);
    assert_int_equal(resume_start_seq(14, 15, &gap), 15); /* first_seq - 1: no gap */
    assert_false(gap);
    assert_int_equal(resume_start_seq(13, 15, &gap), 15);
    assert_true(gap);
    assert_int_equal(resume_start_seq(3, 16, &gap), 16);
    assert_true(gap);
    assert_int_equal(resume_start_seq(100, 16, &gap), 101);
    assert_false(gap);
}

/* Live only: repeats (a re-created consumer) are dropped. */
static void test_live(void **state)
{
    (void)state;
    resume_state st;
    resume_init_live(&st, 10);
    assert_false(resume_on_live(&st, 9));
    assert_false(resume_on_live(&st, 10));
    assert_true(resume_on_live(&st, 11));
    assert_false(resume_on_live(&st, 11));
    assert_true(resume_on_live(&st, 15));
    assert_false(resume_on_replayed(&st, 16)); /* no replay running */
    assert_false(resume_caught_up(&st, 0));
}

/* The replay reads ahead of the live feed: live events arrive late and
 * are all duplicates after the hand-over. */
static void test_replay_ahead_of_live(void **state)
{
    (void)state;
    resume_state st;
    resume_init_replay(&st, 4);
    assert_false(resume_on_replayed(&st, 4));
    for (uint64_t s = 5; s <= 9; s++)
        assert_true(resume_on_replayed(&st, s));
    assert_false(resume_on_live(&st, 8)); /* held back */
    assert_true(resume_caught_up(&st, 0));
    assert_int_equal(st.floor, 9); /* synced seq */
    assert_false(resume_on_live(&st, 9));
    assert_true(resume_on_live(&st, 10));
    assert_false(resume_on_replayed(&st, 11)); /* the replay is over */
}

/* Live runs ahead: the replay must go on until it passes what live held
 * back, then nothing is lost and nothing repeats. */
static void test_live_ahead_of_replay(void **state)
{
    (void)state;
    resume_state st;
    resume_init_replay(&st, 0);
    assert_true(resume_on_replayed(&st, 1));
    assert_false(resume_on_live(&st, 2));
    assert_false(resume_on_live(&st, 3));
    assert_false(resume_caught_up(&st, 0)); /* 2 and 3 still ahead */
    assert_true(resume_on_replayed(&st, 2));
    assert_true(resume_on_replayed(&st, 3));
    assert_true(resume_caught_up(&st, 0));
    assert_int_equal(st.floor, 3);
    assert_true(resume_on_live(&st, 4));
}

/* Held-back live events the stream no longer holds (max_msgs evicted them
 * before the replay got there) are given up, but only up to what the
 * replayer proved gone. */
static void test_vanished(void **state)
{
    (void)state;
    resume_state st;
    resume_init_replay(&st, 5);
    assert_false(resume_on_live(&st, 7));
    assert_false(resume_on_live(&st, 9));
    assert_false(resume_caught_up(&st, 7)); /* 8-9 may still come */
    assert_int_equal(st.floor, 7);
    assert_true(resume_on_replayed(&st, 9));
    assert_true(resume_caught_up(&st, 0));
    assert_true(resume_on_live(&st, 10));
}

/* A random interleaving: whatever the order of the two feeds, the events
 * delivered are exactly 1..N in order. */
static void test_interleavings(void **state)
{
    (void)state;
    uint32_t rnd = 12345;
    for (int round = 0; round < 500; round++) {
        enum { N = 60 };
        uint64_t since = (rnd = rnd * 1103515245 + 12345) % 20;
        uint64_t live_from = since + 1 + (rnd = rnd * 1103515245 + 12345) % 30;
        resume_state st;
        resume_init_replay(&st, since);
        uint64_t next_replay = since + 1, next_live = live_from, delivered = since;
        bool handed = false;
        while (next_live <= N || !handed) {
            rnd = rnd * 1103515245 + 12345;
            bool take_live = (rnd >> 16) & 1;
            if (!handed && (!take_live || next_live > N)) {
                if (next_replay <= N) {
                    if (resume_on_replayed(&st, next_replay))
                        assert_int_equal(next_replay, ++delivered);
                    next_replay++;
                }
                if (next_replay > N || ((rnd >> 20) & 3) == 0) {
                    /* nothing pending at that moment only once it read all */
                    if (next_replay > N && resume_caught_up(&st, 0))
                        handed = true;
                }
            } else if (next_live <= N) {
                if (resume_on_live(&st, next_live))
                    assert_int_equal(next_live, ++delivered);
                next_live++;
            }
        }
        assert_int_equal(delivered, N);
    }
}

static void test_parse_ack(void **state)
{
    (void)state;
    uint64_t seq = 0, pend = 0;
    assert_true(
        resume_parse_ack("$JS.ACK.DEPLOYMENTS.c1.1.118.7.1765000000000000000.3", &seq, &pend));
    assert_int_equal(seq, 118);
    assert_int_equal(pend, 3);
    assert_true(
        resume_parse_ack("$JS.ACK.hub.ACCHASH.S.c.2.18446744073709551615.1.5.0.rnd", &seq, &pend));
    assert_true(seq == UINT64_MAX);
    assert_int_equal(pend, 0);
    assert_true(
        resume_parse_ack("$JS.ACK._.ACCHASH.S.c.2.9.1.5.0.rnd", &seq, &pend)); /* domain _ */
    assert_int_equal(seq, 9);
    const char *bad[] = {
        NULL,
        "",
        "_INBOX.x",
        "$JS.ACK.S.c.1.118.7.1",                    /* 6 tokens */
        "$JS.ACK.S.c.1.118.7.1.3.4",                /* 8 */
        "$JS.ACK.S.c.1.1x8.7.1.3",                  /* not a number */
        "$JS.ACK.S.c.1.18446744073709551616.7.1.3", /* > 2^64-1 */
        "$JS.ACK.S.c.1..7.1.3",                     /* empty */
        "$JS.ACK..c.1.118.7.1.3",                   /* empty stream */
        "$JS.ACK.d.h.S.c.1.118.7.1.3.r.extra.more", /* too many */
        "$JS.AC.S.c.1.118.7.1.3",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_false(resume_parse_ack(bad[i], &seq, &pend));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_history_stream),
        cmocka_unit_test(test_start_seq),
        cmocka_unit_test(test_live),
        cmocka_unit_test(test_replay_ahead_of_live),
        cmocka_unit_test(test_live_ahead_of_replay),
        cmocka_unit_test(test_vanished),
        cmocka_unit_test(test_interleavings),
        cmocka_unit_test(test_parse_ack),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
