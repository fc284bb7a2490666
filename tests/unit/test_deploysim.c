/* The demo's deployment simulation (src/demo/deploysim.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "deploysim.h"

static void test_lifecycle_reaches_ready_without_failures(void **state)
{
    ds_rng r;
    ds_rng_seed(&r, 42);
    ds_deployment d;
    ds_start(&d, "api", 0x1234);
    assert_string_equal(d.id, "api-001234");
    assert_string_equal(ds_status_str(d.status), "pending");
    ds_status seen[8];
    int n = 0, last = -1, steps = 0;
    seen[n++] = d.status;
    while (!ds_done(&d) && steps++ < 100) {
        assert_true(ds_step(&d, &r, 0.0));
        assert_true(d.progress >= last); /* progress never goes back */
        last = d.progress;
        if (d.status != seen[n - 1])
            seen[n++] = d.status;
    }
    assert_int_equal(n, 4);
    assert_int_equal(seen[0], DS_PENDING);
    assert_int_equal(seen[1], DS_BUILDING);
    assert_int_equal(seen[2], DS_DEPLOYING);
    assert_int_equal(seen[3], DS_READY);
    assert_int_equal(d.progress, 100);
    assert_false(ds_step(&d, &r, 0.0)); /* done stays done */
}

static void test_failure_rate_one_fails_at_first_chance(void **state)
{
    ds_rng r;
    ds_rng_seed(&r, 7);
    ds_deployment d;
    ds_start(&d, "web", 1);
    assert_true(ds_step(&d, &r, 1.0)); /* pending never fails */
    assert_int_equal(d.status, DS_BUILDING);
    assert_true(ds_step(&d, &r, 1.0));
    assert_int_equal(d.status, DS_FAILED);
    assert_int_equal(d.progress, 5); /* stays where it stopped */
    assert_false(ds_step(&d, &r, 1.0));
    assert_string_equal(ds_status_str(d.status), "failed");
}

static void test_rng_is_uniform_enough_and_repeatable(void **state)
{
    ds_rng a, b;
    ds_rng_seed(&a, 5);
    ds_rng_seed(&b, 5);
    int buckets[10] = {0};
    for (int i = 0; i < 10000; i++) {
        double x = ds_rng_next(&a);
        assert_true(x >= 0.0 && x < 1.0);
        assert_true(x == ds_rng_next(&b));
        buckets[(int)(x * 10)]++;
    }
    for (int i = 0; i < 10; i++)
        assert_true(buckets[i] > 800 && buckets[i] < 1200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lifecycle_reaches_ready_without_failures),
        cmocka_unit_test(test_failure_rate_one_fails_at_first_chance),
        cmocka_unit_test(test_rng_is_uniform_enough_and_repeatable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
