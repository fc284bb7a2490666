/* lifecycle: the one convention for creating, stopping and freeing herald's
 * long-lived objects and for reporting their errors, and the absolute
 * deadline that shutdown passes down. Header only; any thread.
 *
 * Convention (new code follows it; "applied" lists where it holds today):
 *   hr_status X_new(X **out, <borrowed inputs…>, char *err, size_t errlen)
 *       *out is set only on HR_OK (NULL otherwise); on failure err (when
 *       non-NULL) holds one line saying why. Inputs are borrowed unless the
 *       parameter's comment says the object takes them.
 *       (X_start for objects that begin serving at once: http_start,
 *       ws_start.)
 *   void X_stop(X *x, int64_t deadline_ms)
 *       Stops serving and waits for in-flight work, until the absolute
 *       monotonic deadline_ms (clock_now_ms() time); may block. Idempotent:
 *       a second call returns at once. NULL is a no-op. Does not free.
 *   void X_free(X *x)
 *       Releases memory; NULL is a no-op; never waits for work (an object
 *       still running is stopped with an expired deadline first).
 *   X *X_new(<inputs…>)
 *       Only for constructors whose one way to fail is running out of
 *       memory (small data structures: frame_new, evcache_new, rl_new,
 *       whr_new, metrics_new, ws_limits_new, perms_set_new, hc_*_new):
 *       the object or NULL, nothing more to say.
 *   Errors are hr_status (status.h); module-specific result enums
 *   (wv_result, hjwt_result, whtmpl_result…) are for pure checks whose
 *   outcomes are not failures of herald's. Compilers of configuration
 *   that report every problem at once take a report callback or problem
 *   list instead of err (config_load, perms_table_new).
 * Applied: http (http_start / http_stop / http_free), ws (ws_start /
 * ws_stop / ws_free), bus (bus_new; bus_free(b, deadline_ms) both drains
 * and frees, since nats.c's shutdown is one step), hub_new, replayer_new,
 * http_ingest_new, http_guard_new, ingest_new, hjwt_verifier_new,
 * wv_config_new, whtmpl_compile(_err), perms_table_new.
 *
 * Shutdown: main computes one deadline from shutdown_timeout_s and each
 * step gets an absolute deadline derived from it (never a relative
 * budget that restarts per step), and waits on condition variables with
 * deadline_timespec rather than polling (http_stop for its in-flight
 * requests, ws_stop for its service threads, which arm an lws timer for
 * the deadline themselves). */
#ifndef HERALD_LIFECYCLE_H
#define HERALD_LIFECYCLE_H

#include <stdint.h>
#include <time.h>

#include "herald/clock.h"

/* The absolute monotonic deadline ms milliseconds from now. */
static inline int64_t deadline_after_ms(int64_t ms)
{
    return clock_now_ms() + ms;
}

/* Milliseconds left until deadline_ms (0 when passed). */
static inline int64_t deadline_left_ms(int64_t deadline_ms)
{
    int64_t left = deadline_ms - clock_now_ms();
    return left > 0 ? left : 0;
}

/* The point between now and deadline_ms at num/den of the time left (a
 * step that must leave the rest to the steps after it). */
static inline int64_t deadline_share(int64_t deadline_ms, int num, int den)
{
    return clock_now_ms() + deadline_left_ms(deadline_ms) * num / den;
}

/* deadline_ms as a timespec on CLOCK_MONOTONIC, for pthread_cond_timedwait
 * on a condition variable created with pthread_condattr_setclock(…,
 * CLOCK_MONOTONIC). */
static inline struct timespec deadline_timespec(int64_t deadline_ms)
{
    struct timespec ts = {(time_t)(deadline_ms / 1000), (long)(deadline_ms % 1000) * 1000000L};
    return ts;
}

#endif
