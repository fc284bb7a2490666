/* Unit tests for whreplay.c: the webhook replay cache. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "herald/whreplay.h"

static void key_of(int i, unsigned char k[WHR_KEY_LEN])
{
    memset(k, 0, WHR_KEY_LEN);
    snprintf((char *)k, WHR_KEY_LEN, "key-%d", i);
    k[WHR_KEY_LEN - 1] = (unsigned char)(i * 7);
}

static whr_answer answer(const char *id, uint64_t seq)
{
    whr_answer a = {0};
    snprintf(a.id, sizeof a.id, "%s", id);
    snprintf(a.subject, sizeof a.subject, "webhooks.github.push");
    a.jetstream = seq > 0;
    snprintf(a.stream, sizeof a.stream, "WH");
    a.seq = seq;
    return a;
}

static void test_seen_within_window_with_first_answer(void **state)
{
    (void)state;
    whr_table *t = whr_new(100);
    unsigned char k[WHR_KEY_LEN];
    key_of(1, k);
    whr_answer out;
    assert_int_equal(whr_check(t, k, 1000, 300000, &out), WHR_NEW);
    assert_int_equal(whr_check(t, k, 1001, 300000, &out), WHR_PENDING);
    whr_answer a = answer("d1", 7);
    whr_complete(t, k, &a);
    memset(&out, 0, sizeof out);
    assert_int_equal(whr_check(t, k, 2000, 300000, &out), WHR_SEEN);
    assert_string_equal(out.id, "d1");
    assert_string_equal(out.stream, "WH");
    assert_int_equal(out.seq, 7);
    assert_true(out.jetstream);
    /* the window ends 300 s after the first sighting */
    assert_int_equal(whr_check(t, k, 1000 + 299999, 300000, &out), WHR_SEEN);
    assert_int_equal(whr_check(t, k, 1000 + 300000, 300000, &out), WHR_NEW);
    whr_free(t);
}

static void test_refused_request_is_forgotten(void **state)
{
    (void)state;
    whr_table *t = whr_new(100);
    unsigned char k[WHR_KEY_LEN];
    key_of(2, k);
    assert_int_equal(whr_check(t, k, 0, 1000, NULL), WHR_NEW);
    whr_forget(t, k); /* e.g. a 503: a retry is a new request */
    assert_int_equal(whr_size(t), 0);
    assert_int_equal(whr_check(t, k, 1, 1000, NULL), WHR_NEW);
    whr_free(t);
}

static void test_bounded_memory(void **state)
{
    (void)state;
    whr_table *t = whr_new(50);
    unsigned char k[WHR_KEY_LEN];
    whr_answer a = answer("x", 0);
    for (int i = 0; i < 1000; i++) {
        key_of(i, k);
        assert_int_equal(whr_check(t, k, i, 1000000, NULL), WHR_NEW);
        whr_complete(t, k, &a);
        assert_true(whr_size(t) <= 50);
    }
    key_of(999, k); /* the newest are kept, the oldest dropped */
    assert_int_equal(whr_check(t, k, 1000, 1000000, NULL), WHR_SEEN);
    key_of(0, k);
    assert_int_equal(whr_check(t, k, 1000, 1000000, NULL), WHR_NEW);
    whr_free(t);
    /* expired entries are released as time passes */
    t = whr_new(1000);
    for (int i = 0; i < 100; i++) {
        key_of(i, k);
        whr_check(t, k, 0, 10, NULL);
        whr_complete(t, k, &a);
    }
    key_of(5000, k);
    whr_check(t, k, 20, 10, NULL);
    assert_int_equal(whr_size(t), 1);
    whr_free(t);
    assert_null(whr_new(0));
    whr_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seen_within_window_with_first_answer),
        cmocka_unit_test(test_refused_request_is_forgotten),
        cmocka_unit_test(test_bounded_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
