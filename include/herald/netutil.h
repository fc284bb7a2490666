/* netutil: listening sockets and small time helpers shared by the HTTP and
 * WebSocket listeners. */
#ifndef HERALD_NETUTIL_H
#define HERALD_NETUTIL_H

#include <stdint.h>
#include <stddef.h>

#include "herald/config.h"

/* Open a non-blocking listening TCP socket on `l` (SO_REUSEADDR, backlog
 * 1024). Returns the fd, or -1 with a one-line reason in err. */
int net_listen(const hr_listen *l, char *err, size_t errlen);

/* The local port of a bound socket (for port 0). */
int net_local_port(int fd);

/* FNV-1a of a NUL-terminated string (hash tables keyed by subject, IP...). */
static inline uint64_t net_hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* Milliseconds on the monotonic clock. */
int64_t net_now_ms(void);

/* RFC 3339 UTC with milliseconds, e.g. "2026-11-22T14:00:00.123Z" (buf >= 25). */
void net_rfc3339_now(char *buf, size_t len);

#endif
