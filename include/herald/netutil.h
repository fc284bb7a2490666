/* netutil: listening sockets shared by the HTTP and WebSocket listeners,
 * and the FNV-1a hash of their tables. The clocks are in clock.h
 * (included here for the listeners' users). */
#ifndef HERALD_NETUTIL_H
#define HERALD_NETUTIL_H

#include <stdint.h>
#include <stddef.h>

#include "herald/clock.h"
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

#endif
