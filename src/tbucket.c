/* tbucket: token bucket arithmetic. Pure. */
#include "herald/tbucket.h"

#include <math.h>

void tbucket_init(tbucket *b, const tbucket_rate *r, int64_t now_ms)
{
    b->tokens = r->burst;
    b->last_ms = now_ms;
}

double tbucket_level(const tbucket *b, const tbucket_rate *r, int64_t now_ms)
{
    if (now_ms <= b->last_ms)
        return b->tokens;
    return fmin(r->burst, b->tokens + (double)(now_ms - b->last_ms) * r->rate_per_s / 1000.0);
}

bool tbucket_take(tbucket *b, const tbucket_rate *r, int64_t now_ms)
{
    b->tokens = tbucket_level(b, r, now_ms);
    if (now_ms > b->last_ms)
        b->last_ms = now_ms;
    if (b->tokens < 1.0)
        return false;
    b->tokens -= 1.0;
    return true;
}

bool tbucket_full(const tbucket *b, const tbucket_rate *r, int64_t now_ms)
{
    return tbucket_level(b, r, now_ms) >= r->burst;
}

int tbucket_retry_after_s(const tbucket *b, const tbucket_rate *r)
{
    double s = ceil((1.0 - b->tokens) / r->rate_per_s);
    return s < 1 ? 1 : (int)s;
}
