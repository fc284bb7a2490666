/* Unit tests for ratelimit.c: token buckets per key. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "herald/ratelimit.h"

static void test_burst_and_refill(void **state)
{
    (void)state;
    rl_table *t = rl_new(2.0, 3); /* 2/s, burst 3 */
    assert_non_null(t);
    int ra = 0;
    for (int i = 0; i < 3; i++)
        assert_true(rl_allow(t, "10.0.0.1", 1000, &ra));
    assert_false(rl_allow(t, "10.0.0.1", 1000, &ra));
    assert_int_equal(ra, 1);
    /* another key has its own bucket */
    assert_true(rl_allow(t, "10.0.0.2", 1000, NULL));
    /* 500 ms later one token is back */
    assert_true(rl_allow(t, "10.0.0.1", 1500, &ra));
    assert_false(rl_allow(t, "10.0.0.1", 1500, &ra));
    /* refill never exceeds the burst */
    for (int i = 0; i < 3; i++)
        assert_true(rl_allow(t, "10.0.0.1", 100000, NULL));
    assert_false(rl_allow(t, "10.0.0.1", 100000, NULL));
    /* time going backwards is harmless */
    assert_false(rl_allow(t, "10.0.0.1", 50000, NULL));
    rl_free(t);
}

static void test_slow_rate_retry_after(void **state)
{
    (void)state;
    rl_table *t = rl_new(0.1, 1); /* one every 10 s */
    int ra = 0;
    assert_true(rl_allow(t, "a", 0, &ra));
    assert_false(rl_allow(t, "a", 0, &ra));
    assert_int_equal(ra, 10);
    assert_false(rl_allow(t, "a", 5000, &ra));
    assert_int_equal(ra, 5);
    assert_true(rl_allow(t, "a", 10000, &ra));
    rl_free(t);
    assert_null(rl_new(0, 1));
    assert_null(rl_new(1, 0));
    rl_free(NULL);
}

static void test_many_keys_bounded(void **state)
{
    (void)state;
    rl_table *t = rl_new(1.0, 1);
    char key[32];
    for (int i = 0; i < RL_MAX_KEYS + 10; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_true(rl_allow(t, key, 0, NULL));
    }
    /* the table was reset or trimmed, and still works */
    assert_true(rl_allow(t, "fresh", 0, NULL));
    assert_false(rl_allow(t, "fresh", 0, NULL));
    rl_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_and_refill),
        cmocka_unit_test(test_slow_rate_retry_after),
        cmocka_unit_test(test_many_keys_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
