/* htab: an intrusive chained hash table whose entries also form one list
 * from oldest to newest, for the bounded caches that evict from the old
 * end: the rate-limit buckets (ratelimit.c, recency order: htab_touch on
 * every use) and the webhook replay cache (whreplay.c, insertion order),
 * and for ws_limits' per-IP table (its sweep walks the list; order unused).
 * Owns: the bucket array and the links inside each htab_node.
 * Does not own: the entries (the caller allocates them, embeds an htab_node
 * and frees them after htab_remove), keys and equality (the caller hashes
 * and compares), locking (the caller serialises every call on one table).
 * Pure: no I/O, no globals; only htab_init allocates.
 *
 * Why the other hand-written tables stay as they are: hub.c's two tables
 * (interests by pattern, local receivers by id) are each one index among
 * several lists an entry belongs to, one per service thread or under the
 * hub's table lock, and walked in bucket order at shutdown; ingest.c's
 * PubAck wait table links the caller's ingest_op (public in ingest.h)
 * through the same `next` pointer that also queues it for the flusher or
 * the stream-list thread, so an htab_node there would add a second link
 * to every publish for a find / insert / unlink of a few lines. */
#ifndef HERALD_HTAB_H
#define HERALD_HTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct htab_node {
    struct htab_node *chain;         /* next in the same bucket */
    struct htab_node *older, *newer; /* neighbours in the age list */
    uint64_t hash;                   /* the caller's hash of the entry's key */
} htab_node;

typedef struct {
    htab_node **buckets;
    size_t mask;                /* bucket count - 1 (a power of two) */
    htab_node *oldest, *newest; /* ends of the age list */
    size_t n;                   /* entries held */
} htab;

/* The entry that embeds node `ptr` as member `member`. */
#define HTAB_ENTRY(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* True if `key` is the key of the entry holding n. */
typedef bool (*htab_eq_fn)(const htab_node *n, const void *key);

/* An empty table of nbuckets (rounded up to a power of two, >= 1). False on
 * allocation failure. */
bool htab_init(htab *t, size_t nbuckets);

/* Hand every entry still held to free_entry (when non-NULL; oldest first),
 * then free the bucket array. The table is empty afterwards; a zeroed or
 * already finished htab is fine. */
void htab_fini(htab *t, void (*free_entry)(htab_node *n));

/* The entry with this hash and key (eq decides), or NULL. */
htab_node *htab_find(const htab *t, uint64_t hash, htab_eq_fn eq, const void *key);

/* Add n (not in any table) as the newest entry. */
void htab_insert(htab *t, htab_node *n, uint64_t hash);

/* Unlink n from the table; the caller then owns it again. */
void htab_remove(htab *t, htab_node *n);

/* Make n the newest entry (recency order). */
void htab_touch(htab *t, htab_node *n);

/* The oldest entry and the entry after it towards the newest; NULL at the
 * end. */
static inline htab_node *htab_oldest(const htab *t)
{
    return t->oldest;
}

static inline htab_node *htab_newer(const htab_node *n)
{
    return n->newer;
}

#endif
