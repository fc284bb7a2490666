/* Unit tests for clientip.c: CIDR parsing, range checks, and choosing the
 * client address from a peer and X-Forwarded-For. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "herald/clientip.h"

static void test_parse_cidr(void **state)
{
    (void)state;
    cip_cidr c;
    assert_true(cip_parse_cidr("10.0.0.0/8", &c));
    assert_int_equal(c.family, 4);
    assert_int_equal(c.prefix, 8);
    assert_true(cip_parse_cidr("192.168.1.7", &c));
    assert_int_equal(c.prefix, 32);
    assert_true(cip_parse_cidr("0.0.0.0/0", &c));
    assert_int_equal(c.prefix, 0);
    assert_true(cip_parse_cidr("fd00::/8", &c));
    assert_int_equal(c.family, 6);
    assert_int_equal(c.prefix, 8);
    assert_true(cip_parse_cidr("::1", &c));
    assert_int_equal(c.prefix, 128);
    assert_true(cip_parse_cidr("2001:db8::/32", &c));
    assert_true(cip_parse_cidr("10.1.2.3/8", &c)); /* host bits ignored */
    const char *bad[] = {"",
                         "/8",
                         "10.0.0.0/",
                         "10.0.0.0/33",
                         "10.0.0/8",
                         "10.0.0.0/8/8",
                         "10.0.0.0/-1",
                         "10.0.0.0/ 8",
                         " 10.0.0.0",
                         "fd00::/129",
                         "[::1]",
                         "[::1]/128",
                         "10.0.0.1:80",
                         "::ffff:10.0.0.0/104",
                         "example.com",
                         "10.0.0.0/0x8",
                         "1.2.3.4/0008"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (cip_parse_cidr(bad[i], &c))
            fail_msg("accepted \"%s\"", bad[i]);
}

static cip_cidr ranges[4];
static size_t nranges;

static int setup(void **state)
{
    (void)state;
    const char *r[] = {"10.0.0.0/8", "192.168.1.0/26", "fd00::/8", "127.0.0.1"};
    nranges = 0;
    for (size_t i = 0; i < 4; i++)
        assert_true(cip_parse_cidr(r[i], &ranges[nranges++]));
    return 0;
}

static void test_trusted(void **state)
{
    (void)state;
    assert_true(cip_trusted(ranges, nranges, "10.255.0.1"));
    assert_true(cip_trusted(ranges, nranges, "192.168.1.63"));
    assert_false(cip_trusted(ranges, nranges, "192.168.1.64")); /* /26 edge */
    assert_false(cip_trusted(ranges, nranges, "11.0.0.1"));
    assert_true(cip_trusted(ranges, nranges, "fdab::1"));
    assert_false(cip_trusted(ranges, nranges, "fe80::1"));
    assert_true(cip_trusted(ranges, nranges, "::ffff:10.1.1.1")); /* mapped */
    assert_true(cip_trusted(ranges, nranges, "127.0.0.1"));
    assert_false(cip_trusted(ranges, nranges, "127.0.0.2"));
    assert_false(cip_trusted(ranges, nranges, "not-an-ip"));
    assert_false(cip_trusted(ranges, nranges, NULL));
    assert_false(cip_trusted(ranges, 0, "10.0.0.1"));
}

static void client_is(const char *peer, const char *xff, const char *want)
{
    char out[CIP_TEXT_MAX];
    cip_client(ranges, nranges, peer, xff, out, sizeof out);
    if (strcmp(out, want) != 0)
        fail_msg("peer %s xff \"%s\": got %s, want %s", peer, xff ? xff : "(none)", out, want);
}

static void test_client(void **state)
{
    (void)state;
    /* no header, or an untrusted peer: the peer, whatever the header says */
    client_is("203.0.113.9", NULL, "203.0.113.9");
    client_is("203.0.113.9", "1.1.1.1", "203.0.113.9");
    client_is("10.0.0.5", NULL, "10.0.0.5");
    /* a trusted peer: the right-most untrusted entry */
    client_is("10.0.0.5", "198.51.100.7", "198.51.100.7");
    client_is("10.0.0.5", "6.6.6.6, 198.51.100.7", "198.51.100.7"); /* spoofed left part */
    client_is("10.0.0.5", "6.6.6.6, 198.51.100.7, 10.1.1.1, 192.168.1.2", "198.51.100.7");
    client_is("10.0.0.5", "6.6.6.6,198.51.100.7", "198.51.100.7");
    /* several header lines joined with ',' */
    client_is("10.0.0.5", "6.6.6.6, 198.51.100.7,10.9.9.9", "198.51.100.7");
    /* IPv6, mapped peers, ports and brackets */
    client_is("fd00::1", "2001:db8::42", "2001:db8::42");
    client_is("::ffff:10.0.0.5", "198.51.100.7", "198.51.100.7");
    client_is("10.0.0.5", "[2001:db8::42]:4711", "2001:db8::42");
    client_is("10.0.0.5", "198.51.100.7:4711", "198.51.100.7");
    client_is("10.0.0.5", "::ffff:198.51.100.7", "198.51.100.7");
    client_is("::ffff:203.0.113.9", NULL, "203.0.113.9");
    /* all entries trusted: the left-most */
    client_is("10.0.0.5", "10.2.2.2, 10.3.3.3", "10.2.2.2");
    /* garbage stops the walk at the last trusted hop, never the garbage */
    client_is("10.0.0.5", "198.51.100.7, unknown", "10.0.0.5");
    client_is("10.0.0.5", "6.6.6.6, garbage, 10.3.3.3", "10.3.3.3");
    client_is("10.0.0.5", "", "10.0.0.5");
    client_is("10.0.0.5", " , ", "10.0.0.5");
    client_is("10.0.0.5", "1.2.3.4,,", "1.2.3.4");
    /* no ranges configured: the header is never believed */
    char out[CIP_TEXT_MAX];
    cip_client(ranges, 0, "10.0.0.5", "1.2.3.4", out, sizeof out);
    assert_string_equal(out, "10.0.0.5");
    /* an unparsable peer is kept as it is */
    cip_client(ranges, nranges, "unix", "1.2.3.4", out, sizeof out);
    assert_string_equal(out, "unix");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_cidr),
        cmocka_unit_test_setup(test_trusted, setup),
        cmocka_unit_test_setup(test_client, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
