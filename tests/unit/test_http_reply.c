/* Unit tests for http_reply's text: titles, the problem+json document
 * (escaping included) and the raw HTTP/1.1 response refused WebSocket
 * upgrades and mid-upload 413/503 write. (Queueing on MHD is covered by
 * the integration suites.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "herald/http_reply.h"

static void test_titles(void **state)
{
    assert_string_equal(http_reply_title(400), "Bad Request");
    assert_string_equal(http_reply_title(404), "Not Found");
    assert_string_equal(http_reply_title(408), "Request Timeout");
    assert_string_equal(http_reply_title(413), "Content Too Large");
    assert_string_equal(http_reply_title(429), "Too Many Requests");
    assert_string_equal(http_reply_title(503), "Service Unavailable");
    assert_string_equal(http_reply_title(500), "Internal Server Error");
    assert_string_equal(http_reply_title(502), "Internal Server Error");
    assert_string_equal(http_reply_title(418), "Error");
}

static void test_problem_text(void **state)
{
    char *t = http_reply_problem_text(403, "forbidden", "origin \"x\" not allowed");
    assert_non_null(t);
    assert_string_equal(t, "{\"type\":\"urn:herald:problem:forbidden\",\"title\":\"Forbidden\","
                           "\"status\":403,\"detail\":\"origin \\\"x\\\" not allowed\"}");
    free(t);
}

static void test_problem_raw(void **state)
{
    char out[512];
    static const char body[] = "{\"type\":\"urn:herald:problem:upgrade-refused\",\"title\":"
                               "\"Too Many Requests\",\"status\":429,\"detail\":\"slow down\"}";
    char want[512];
    snprintf(want, sizeof want,
             "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/problem+json\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
             strlen(body), body);
    int n =
        http_reply_problem_raw(out, sizeof out, 429, "upgrade-refused", "slow down", NULL, NULL);
    assert_int_equal(n, strlen(want));
    assert_string_equal(out, want);

    n = http_reply_problem_raw(out, sizeof out, 503, "overloaded", "busy", "Retry-After", "2");
    assert_true(n > 0);
    assert_non_null(strstr(out, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
                                "application/problem+json\r\nRetry-After: 2\r\nContent-Length: "));
    /* Too small a buffer is refused, not truncated. */
    assert_int_equal(http_reply_problem_raw(out, 40, 503, "overloaded", "busy", NULL, NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_titles),
        cmocka_unit_test(test_problem_text),
        cmocka_unit_test(test_problem_raw),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
