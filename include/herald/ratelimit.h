/* ratelimit: token buckets keyed by a string (a client address), for
 * limits.http_requests_per_ip (contract §6), and the client key an address
 * is limited under (IPv6 by its /64).
 * Owns the bucket table. No I/O, no clock reads (the caller passes now);
 * thread-safe (one mutex), so the MHD worker threads share one table.
 * Memory is bounded: at max_keys distinct keys the least-recently-used
 * bucket is dropped for the new one (never all of them: a flood of fresh
 * keys cannot reset the buckets of clients that are being limited). */
#ifndef HERALD_RATELIMIT_H
#define HERALD_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define RL_MAX_KEYS 65536 /* default table size */
#define RL_KEY_LEN  48    /* room for any key rl_client_key writes, NUL included */

typedef struct rl_table rl_table;

/* rate_per_s > 0 tokens per second, burst >= 1 bucket size, at most
 * RL_MAX_KEYS keys. NULL on bad arguments or allocation failure. Freed with
 * rl_free. */
rl_table *rl_new(double rate_per_s, int burst);
/* The same with max_keys >= 1 keys kept. */
rl_table *rl_new_sized(double rate_per_s, int burst, size_t max_keys);
void rl_free(rl_table *t); /* NULL is a no-op */

/* Take one token from key's bucket at time now_ms (monotonic). True if
 * allowed. When refused, *retry_after_s (if non-NULL) is the whole number
 * of seconds until a token is available (>= 1). A key never seen starts
 * with a full bucket; a key is "used" (for LRU) whenever it is asked for. */
bool rl_allow(rl_table *t, const char *key, int64_t now_ms, int *retry_after_s);

size_t rl_size(rl_table *t); /* keys held now */

/* The key a client address is limited under, into out[RL_KEY_LEN]: an IPv4
 * address as dotted quad (also when IPv4-mapped in IPv6), an IPv6 address
 * as its /64 ("2001:db8:1:2::/64"), since one subscriber holds a whole /64.
 * "unknown" for NULL or another family. */
void rl_client_key(const struct sockaddr *sa, char out[RL_KEY_LEN]);

/* The same from an address's text ("192.0.2.7", "2001:db8::1"); text that
 * is not an address is used as it is (truncated to RL_KEY_LEN - 1). */
void rl_client_key_text(const char *addr, char out[RL_KEY_LEN]);

#endif
