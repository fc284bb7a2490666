/* Unit tests for jsontext: RFC 6901 pointers and the scalar-as-text rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "herald/jsontext.h"

static void test_pointer(void **state)
{
    json_t *doc = json_loads("{\"\":1,\"a\":{\"b\":[10,20,{\"c\":3}]},\"0\":\"zero\","
                             "\"m~n\":4,\"x/y\":5}",
                             0, NULL);
    assert_non_null(doc);
    assert_ptr_equal(jt_pointer_get(doc, ""), doc);
    assert_int_equal(json_integer_value(jt_pointer_get(doc, "/")), 1);
    assert_int_equal(json_integer_value(jt_pointer_get(doc, "/a/b/0")), 10);
    assert_int_equal(json_integer_value(jt_pointer_get(doc, "/a/b/2/c")), 3);
    assert_string_equal(json_string_value(jt_pointer_get(doc, "/0")), "zero");
    assert_int_equal(json_integer_value(jt_pointer_get(doc, "/m~0n")), 4);
    assert_int_equal(json_integer_value(jt_pointer_get(doc, "/x~1y")), 5);
    assert_null(jt_pointer_get(doc, "/a/b/01"));
    assert_null(jt_pointer_get(doc, "/a/b/-"));
    assert_null(jt_pointer_get(doc, "/a/b/3"));
    assert_null(jt_pointer_get(doc, "/a/b/x"));
    assert_null(jt_pointer_get(doc, "a"));
    assert_null(jt_pointer_get(doc, "/a/~2"));
    assert_null(jt_pointer_get(doc, "/nope/x"));
    assert_null(jt_pointer_get(NULL, "/a"));
    assert_null(jt_pointer_get(doc, NULL));
    json_decref(doc);
}

static void expect_text(json_t *v, const char *want, size_t wantlen)
{
    char buf[JT_INT_TEXT_MAX];
    const char *t = NULL;
    size_t n = 99;
    assert_true(jt_scalar_text(v, buf, &t, &n));
    assert_int_equal(n, wantlen);
    assert_memory_equal(t, want, n);
    json_decref(v);
}

static void expect_none(json_t *v)
{
    char buf[JT_INT_TEXT_MAX];
    const char *t = NULL;
    size_t n = 0;
    assert_false(jt_scalar_text(v, buf, &t, &n));
    json_decref(v);
}

static void test_scalar_text(void **state)
{
    expect_text(json_integer(-7), "-7", 2);
    expect_text(json_integer(INT64_MIN), "-9223372036854775808", 20);
    expect_text(json_integer(INT64_MAX), "9223372036854775807", 19);
    expect_text(json_true(), "true", 4);
    expect_text(json_false(), "false", 5);
    expect_text(json_string("push"), "push", 4);
    expect_text(json_string(""), "", 0);
    expect_text(json_stringn("a\0b", 3), "a\0b", 3); /* the caller decides about NUL */
    expect_none(json_real(1.0));
    expect_none(json_null());
    expect_none(json_object());
    expect_none(json_array());
    expect_none(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pointer),
        cmocka_unit_test(test_scalar_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
