/* Unit tests for ratelimit.c: token buckets per key. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

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

/* At the limit the least-recently-used key goes, not every bucket: a flood
 * of fresh keys does not refill a limited client (issue 17, defect 6). */
static void test_lru_eviction_keeps_active_clients(void **state)
{
    (void)state;
    rl_table *t = rl_new_sized(0.001, 2, 100);
    assert_true(rl_allow(t, "attacker", 0, NULL));
    assert_true(rl_allow(t, "attacker", 0, NULL));
    assert_false(rl_allow(t, "attacker", 0, NULL)); /* limited */
    char key[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "fresh%d", i);
        assert_true(rl_allow(t, key, 0, NULL));
        assert_true(rl_size(t) <= 100);
        if (i % 50 == 0) /* still asking: stays recently used and limited */
            assert_false(rl_allow(t, "attacker", 0, NULL));
    }
    assert_false(rl_allow(t, "attacker", 0, NULL));
    assert_int_equal(rl_size(t), 100);
    /* the oldest fresh keys were dropped, the newest kept */
    assert_true(rl_allow(t, "fresh999", 0, NULL));
    assert_false(rl_allow(t, "fresh999", 0, NULL));
    rl_free(t);
    assert_null(rl_new_sized(1, 1, 0));
}

static void key_of(const char *addr, char out[RL_KEY_LEN])
{
    struct sockaddr_in v4 = {.sin_family = AF_INET};
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
    if (inet_pton(AF_INET, addr, &v4.sin_addr) == 1)
        rl_client_key((struct sockaddr *)&v4, out);
    else if (inet_pton(AF_INET6, addr, &v6.sin6_addr) == 1)
        rl_client_key((struct sockaddr *)&v6, out);
    else
        fail_msg("bad test address %s", addr);
}

static void test_client_key_ipv6_by_64(void **state)
{
    (void)state;
    char k[RL_KEY_LEN], k2[RL_KEY_LEN];
    key_of("192.0.2.7", k);
    assert_string_equal(k, "192.0.2.7");
    key_of("::ffff:192.0.2.7", k);
    assert_string_equal(k, "192.0.2.7");
    key_of("2001:db8:1:2:aaaa:bbbb:cccc:dddd", k);
    assert_string_equal(k, "2001:db8:1:2::/64");
    key_of("2001:db8:1:2::1", k2);
    assert_string_equal(k, k2);
    key_of("2001:db8:1:3::1", k2);
    assert_string_not_equal(k, k2);
    key_of("::1", k);
    assert_string_equal(k, "::/64");
    rl_client_key(NULL, k);
    assert_string_equal(k, "unknown");
    rl_client_key_text("2001:db8:1:2:aaaa::9", k);
    assert_string_equal(k, "2001:db8:1:2::/64");
    rl_client_key_text("::ffff:10.1.2.3", k);
    assert_string_equal(k, "10.1.2.3");
    rl_client_key_text("not-an-ip", k);
    assert_string_equal(k, "not-an-ip");
    struct sockaddr other = {.sa_family = AF_UNIX};
    rl_client_key(&other, k);
    assert_string_equal(k, "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_and_refill),
        cmocka_unit_test(test_slow_rate_retry_after),
        cmocka_unit_test(test_many_keys_bounded),
        cmocka_unit_test(test_lru_eviction_keeps_active_clients),
        cmocka_unit_test(test_client_key_ipv6_by_64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
