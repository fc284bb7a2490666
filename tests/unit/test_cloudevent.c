/* Unit tests for cloudevent.c: structured → binary mode. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "herald/cloudevent.h"

static const char *header(const ce_binary *b, const char *name)
{
    for (size_t i = 0; i < b->nheaders; i++)
        if (strcmp(b->headers[i].name, name) == 0)
            return b->headers[i].value;
    return NULL;
}

static hr_status conv(const char *s, ce_binary *b)
{
    char err[128];
    return ce_from_structured(s, strlen(s), b, err, sizeof err);
}

static void test_json_data(void **state)
{
    (void)state;
    ce_binary b;
    assert_int_equal(conv("{\"specversion\":\"1.0\",\"id\":\"e1\",\"source\":\"/billing\","
                          "\"type\":\"invoice.paid\",\"time\":\"2026-01-01T00:00:00Z\","
                          "\"subject\":\"inv-1\",\"tenant\":\"acme\",\"attempt\":2,\"test\":true,"
                          "\"nothing\":null,\"data\":{\"amount\": 10, \"cur\":\"EUR\"}}",
                          &b),
                     HR_OK);
    assert_string_equal(header(&b, "ce-specversion"), "1.0");
    assert_string_equal(header(&b, "ce-id"), "e1");
    assert_string_equal(header(&b, "ce-source"), "/billing");
    assert_string_equal(header(&b, "ce-type"), "invoice.paid");
    assert_string_equal(header(&b, "ce-tenant"), "acme");
    assert_string_equal(header(&b, "ce-attempt"), "2");
    assert_string_equal(header(&b, "ce-test"), "true");
    assert_null(header(&b, "ce-nothing"));
    assert_null(header(&b, "ce-data"));
    assert_null(header(&b, "ce-datacontenttype"));
    assert_string_equal(b.content_type, "application/json");
    assert_string_equal(b.id, "e1");
    assert_int_equal(b.len, strlen("{\"amount\":10,\"cur\":\"EUR\"}"));
    assert_memory_equal(b.data, "{\"amount\":10,\"cur\":\"EUR\"}", b.len);
    ce_binary_clear(&b);
}

static void test_other_data(void **state)
{
    (void)state;
    ce_binary b;
    assert_int_equal(conv("{\"specversion\":\"1.0\",\"id\":\"e2\",\"source\":\"s\",\"type\":\"t\","
                          "\"datacontenttype\":\"text/plain\",\"data\":\"hello\"}",
                          &b),
                     HR_OK);
    assert_string_equal(b.content_type, "text/plain");
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "hello", 5);
    ce_binary_clear(&b);

    assert_int_equal(conv("{\"specversion\":\"1.0\",\"id\":\"e3\",\"source\":\"s\",\"type\":\"t\","
                          "\"datacontenttype\":\"application/octet-stream\","
                          "\"data_base64\":\"AAEC/w==\"}",
                          &b),
                     HR_OK);
    assert_string_equal(b.content_type, "application/octet-stream");
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.data, "\x00\x01\x02\xff", 4);
    ce_binary_clear(&b);

    /* a JSON string as data under a JSON content type stays a JSON string */
    assert_int_equal(conv("{\"specversion\":\"1.0\",\"id\":\"e4\",\"source\":\"s\",\"type\":\"t\","
                          "\"data\":\"x\"}",
                          &b),
                     HR_OK);
    assert_memory_equal(b.data, "\"x\"", 3);
    ce_binary_clear(&b);

    /* no data: empty payload */
    assert_int_equal(
        conv("{\"specversion\":\"1.0\",\"id\":\"e5\",\"source\":\"s\",\"type\":\"t\"}", &b), HR_OK);
    assert_int_equal(b.len, 0);
    assert_null(b.data);
    ce_binary_clear(&b);
}

static void test_malformed(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "[]",
        "not json",
        "{\"id\":\"e\",\"source\":\"s\",\"type\":\"t\"}",
        "{\"specversion\":\"0.3\",\"id\":\"e\",\"source\":\"s\",\"type\":\"t\"}",
        "{\"specversion\":\"1.0\",\"source\":\"s\",\"type\":\"t\"}",
        "{\"specversion\":\"1.0\",\"id\":\"\",\"source\":\"s\",\"type\":\"t\"}",
        "{\"specversion\":\"1.0\",\"id\":\"e\",\"type\":\"t\"}",
        "{\"specversion\":\"1.0\",\"id\":\"e\",\"source\":\"s\"}",
        "{\"specversion\":\"1.0\",\"id\":1,\"source\":\"s\",\"type\":\"t\"}",
        "{\"specversion\":\"1.0\",\"id\":\"e\",\"source\":\"s\",\"type\":\"t\",\"Bad\":\"x\"}",
        "{\"specversion\":\"1.0\",\"id\":\"e\",\"source\":\"s\",\"type\":\"t\",\"x\":{}}",
        "{\"specversion\":\"1.0\",\"id\":\"e\",\"source\":\"s\",\"type\":\"t\",\"x\":1.5}",
        "{\"specversion\":\"1.0\",\"id\":\"e\",\"source\":\"s\",\"type\":\"t\",\"x\":\"a\\nb\"}",
        "{\"specversion\":\"1.0\",\"id\":\"e\",\"source\":\"s\",\"type\":\"t\",\"data\":1,"
        "\"data_base64\":\"AA==\"}",
        "{\"specversion\":\"1.0\",\"id\":\"e\",\"source\":\"s\",\"type\":\"t\",\"data_base64\":\"*"
        "\"}",
        "{\"specversion\":\"1.0\",\"id\":\"e\",\"source\":\"s\",\"type\":\"t\",\"data_base64\":3}",
        "{\"specversion\":\"1.0\",\"id\":\"e\",\"id\":\"f\",\"source\":\"s\",\"type\":\"t\"}",
        "{\"specversion\":\"1.0\",\"id\":\"e\",\"source\":\"s\",\"type\":\"t\","
        "\"averyveryverylongattributename\":\"x\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ce_binary b;
        char err[128] = "";
        assert_int_equal(ce_from_structured(bad[i], strlen(bad[i]), &b, err, sizeof err),
                         HR_ERR_INVALID);
        assert_true(err[0] != '\0');
        assert_null(b.headers);
        assert_null(b.data);
        ce_binary_clear(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_data),
        cmocka_unit_test(test_other_data),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
