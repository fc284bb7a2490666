/* Unit tests for tbucket: refill, burst cap, clock going backwards,
 * fractional rates and the Retry-After figure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "herald/tbucket.h"

static void test_burst_and_refill(void **state)
{
    const tbucket_rate r = {2.0, 3}; /* 2/s, burst 3 */
    tbucket b;
    tbucket_init(&b, &r, 1000);
    assert_true(tbucket_full(&b, &r, 1000));
    for (int i = 0; i < 3; i++)
        assert_true(tbucket_take(&b, &r, 1000));
    assert_false(tbucket_take(&b, &r, 1000));
    assert_int_equal(tbucket_retry_after_s(&b, &r), 1);
    assert_false(tbucket_full(&b, &r, 1000));
    assert_true(tbucket_take(&b, &r, 1500)); /* 500 ms: one token back */
    assert_false(tbucket_take(&b, &r, 1500));
    /* Never above the burst. */
    assert_true(tbucket_level(&b, &r, 100000) == 3.0);
    assert_true(tbucket_full(&b, &r, 100000));
    for (int i = 0; i < 3; i++)
        assert_true(tbucket_take(&b, &r, 100000));
    assert_false(tbucket_take(&b, &r, 100000));
    /* Time going backwards adds nothing and does not move last_ms back. */
    assert_false(tbucket_take(&b, &r, 50000));
    assert_true(b.last_ms == 100000);
    assert_true(tbucket_take(&b, &r, 100500));
}

static void test_slow_rate(void **state)
{
    const tbucket_rate r = {0.1, 1}; /* one every 10 s */
    tbucket b;
    tbucket_init(&b, &r, 0);
    assert_true(tbucket_take(&b, &r, 0));
    assert_false(tbucket_take(&b, &r, 0));
    assert_int_equal(tbucket_retry_after_s(&b, &r), 10);
    assert_false(tbucket_take(&b, &r, 5000));
    assert_int_equal(tbucket_retry_after_s(&b, &r), 5);
    assert_false(tbucket_take(&b, &r, 9999));
    assert_int_equal(tbucket_retry_after_s(&b, &r), 1); /* never 0 */
    assert_true(tbucket_take(&b, &r, 10000));
    /* tbucket_level does not change the bucket. */
    double l = tbucket_level(&b, &r, 15000);
    assert_true(l > 0.49 && l < 0.51);
    assert_true(b.tokens < 0.01);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_and_refill),
        cmocka_unit_test(test_slow_rate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
