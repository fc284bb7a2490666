/* clock: the two clocks herald reads, a leaf every module may use (log
 * included, so it must not depend on anything of herald's).
 * Any thread; no state. */
#ifndef HERALD_CLOCK_H
#define HERALD_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds on the monotonic clock. */
int64_t clock_now_ms(void);

/* RFC 3339 UTC with milliseconds, e.g. "2026-11-22T14:00:00.123Z" (buf >= 25). */
void clock_rfc3339_now(char *buf, size_t len);

#endif
