/* clientip: who the client is when herald sits behind proxies
 * (http.trusted_proxies, contract §6).
 * Owns parsing IPv4 and IPv6 CIDRs ("10.0.0.0/8", "fd00::/8", a bare
 * address = one host) and choosing the client address from the peer's
 * address and X-Forwarded-For: the header is believed only when the peer
 * is a trusted proxy, and then the client is the right-most address in it
 * that is not itself trusted. Addresses are compared as bytes, so
 * "::ffff:10.0.0.1" (an IPv4-mapped peer on a dual-stack socket) is
 * 10.0.0.1.
 * Pure: no I/O, no globals; a cip_cidr array is immutable once parsed and
 * may be read by any number of threads (both listeners share one). */
#ifndef HERALD_CLIENTIP_H
#define HERALD_CLIENTIP_H

#include <stdbool.h>
#include <stddef.h>

#define CIP_TEXT_MAX 46 /* INET6_ADDRSTRLEN: the longest address text plus NUL */

typedef struct {
    int family;             /* 4 or 6 */
    unsigned char addr[16]; /* network order; IPv4 in the first 4 bytes */
    int prefix;             /* 0..32 or 0..128 */
} cip_cidr;

/* Parse "addr/prefix" or a bare address (then the whole address). Host bits
 * beyond the prefix are allowed and ignored ("10.1.2.3/8" = 10.0.0.0/8).
 * False when malformed. */
bool cip_parse_cidr(const char *s, cip_cidr *out);

/* Is the address text `ip` inside one of the n ranges? False when `ip` is
 * not an address. */
bool cip_trusted(const cip_cidr *ranges, size_t n, const char *ip);

/* The client address for a request from `peer` (address text) carrying the
 * X-Forwarded-For value `xff` (NULL when absent; several header lines
 * joined with ','), written to out (at least CIP_TEXT_MAX) in canonical
 * text form. With no trusted ranges, an untrusted peer or no header: the
 * peer. Otherwise the entries are read right to left, skipping trusted
 * ones; the first untrusted one is the client. An entry that is not an
 * address (a port or brackets are tolerated) stops the walk: the client is
 * then the last address read (a trusted proxy), never attacker text. */
void cip_client(const cip_cidr *ranges, size_t n, const char *peer, const char *xff, char *out,
                size_t cap);

#endif
