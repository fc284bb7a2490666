/* Unit tests for htab: find / insert / remove across colliding hashes, the
 * age list in insertion and recency order, walking and freeing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "herald/htab.h"

typedef struct {
    int key;
    htab_node node;
} item;

static bool eq(const htab_node *n, const void *key)
{
    return HTAB_ENTRY(n, item, node)->key == *(const int *)key;
}

static int key_at(const htab_node *n)
{
    return HTAB_ENTRY(n, item, node)->key;
}

static void free_item(htab_node *n)
{
    free(HTAB_ENTRY(n, item, node));
}

static void expect_order(const htab *t, const int *keys, size_t n)
{
    size_t i = 0;
    for (const htab_node *x = htab_oldest(t); x; x = htab_newer(x), i++) {
        assert_true(i < n);
        assert_int_equal(key_at(x), keys[i]);
    }
    assert_int_equal(i, n);
    assert_int_equal(t->n, n);
}

static void test_find_insert_remove(void **state)
{
    htab t;
    assert_true(htab_init(&t, 3)); /* rounded up to 4 buckets */
    assert_int_equal(t.mask, 3);
    item it[10];
    for (int i = 0; i < 10; i++) {
        it[i].key = i;
        /* hashes collide on purpose: i % 2 */
        htab_insert(&t, &it[i].node, (uint64_t)(i % 2));
    }
    for (int i = 0; i < 10; i++) {
        htab_node *n = htab_find(&t, (uint64_t)(i % 2), eq, &i);
        assert_ptr_equal(n, &it[i].node);
    }
    int missing = 11;
    assert_null(htab_find(&t, 1, eq, &missing));
    int k = 4;
    assert_null(htab_find(&t, 1, eq, &k)); /* right key, wrong hash */
    htab_remove(&t, &it[4].node);
    assert_null(htab_find(&t, 0, eq, &k));
    htab_remove(&t, &it[0].node); /* the oldest */
    htab_remove(&t, &it[9].node); /* the newest */
    static const int left[] = {1, 2, 3, 5, 6, 7, 8};
    expect_order(&t, left, 7);
    htab_fini(&t, NULL); /* the items are on the stack */
}

static void test_recency(void **state)
{
    htab t;
    assert_true(htab_init(&t, 16));
    item *its[4];
    for (int i = 0; i < 4; i++) {
        its[i] = calloc(1, sizeof *its[i]);
        its[i]->key = i;
        htab_insert(&t, &its[i]->node, (uint64_t)i * 7919);
    }
    htab_touch(&t, &its[0]->node);
    htab_touch(&t, &its[2]->node);
    htab_touch(&t, &its[2]->node); /* already the newest */
    static const int order[] = {1, 3, 0, 2};
    expect_order(&t, order, 4);
    /* Evict from the old end, as the caches do, then free the rest. */
    htab_node *old = htab_oldest(&t);
    htab_remove(&t, old);
    free(HTAB_ENTRY(old, item, node));
    static const int after[] = {3, 0, 2};
    expect_order(&t, after, 3);
    htab_fini(&t, free_item); /* frees the three left (ASan would see a leak) */
    assert_int_equal(t.n, 0);
    assert_null(htab_oldest(&t));
    htab_fini(&t, free_item); /* twice is harmless */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find_insert_remove),
        cmocka_unit_test(test_recency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
