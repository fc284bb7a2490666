/* htab: intrusive chained hash table plus an age list. */
#include "herald/htab.h"

#include <stdlib.h>

bool htab_init(htab *t, size_t nbuckets)
{
    size_t nb = 1;
    while (nb < nbuckets)
        nb <<= 1;
    *t = (htab){0};
    t->buckets = calloc(nb, sizeof *t->buckets);
    if (!t->buckets)
        return false;
    t->mask = nb - 1;
    return true;
}

void htab_fini(htab *t, void (*free_entry)(htab_node *n))
{
    for (htab_node *n = t->oldest, *nx; n && free_entry; n = nx) {
        nx = n->newer;
        free_entry(n);
    }
    t->oldest = t->newest = NULL;
    t->n = 0;
    free(t->buckets);
    t->buckets = NULL;
}

htab_node *htab_find(const htab *t, uint64_t hash, htab_eq_fn eq, const void *key)
{
    for (htab_node *n = t->buckets[hash & t->mask]; n; n = n->chain)
        if (n->hash == hash && eq(n, key))
            return n;
    return NULL;
}

static void age_unlink(htab *t, htab_node *n)
{
    if (n->older)
        n->older->newer = n->newer;
    else
        t->oldest = n->newer;
    if (n->newer)
        n->newer->older = n->older;
    else
        t->newest = n->older;
    n->older = n->newer = NULL;
}

static void age_push_newest(htab *t, htab_node *n)
{
    n->newer = NULL;
    n->older = t->newest;
    if (t->newest)
        t->newest->newer = n;
    else
        t->oldest = n;
    t->newest = n;
}

void htab_insert(htab *t, htab_node *n, uint64_t hash)
{
    htab_node **b = &t->buckets[hash & t->mask];
    n->hash = hash;
    n->chain = *b;
    *b = n;
    age_push_newest(t, n);
    t->n++;
}

void htab_remove(htab *t, htab_node *n)
{
    for (htab_node **pp = &t->buckets[n->hash & t->mask]; *pp; pp = &(*pp)->chain)
        if (*pp == n) {
            *pp = n->chain;
            break;
        }
    n->chain = NULL;
    age_unlink(t, n);
    t->n--;
}

void htab_touch(htab *t, htab_node *n)
{
    if (t->newest == n)
        return;
    age_unlink(t, n);
    age_push_newest(t, n);
}
