/* deploysim: simulated deployment life cycle for the demo publisher.
 * Pure: no I/O, no globals (see deploysim.h). */
#include "deploysim.h"

#include <stdio.h>

void ds_rng_seed(ds_rng *r, uint64_t seed)
{
    r->s = seed ? seed : 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 8; i++) /* small seeds start with small outputs */
        ds_rng_next(r);
}

double ds_rng_next(ds_rng *r)
{
    uint64_t x = r->s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    r->s = x;
    return (double)(x >> 11) / (double)(1ull << 53);
}

const char *ds_status_str(ds_status s)
{
    switch (s) {
    case DS_PENDING:
        return "pending";
    case DS_BUILDING:
        return "building";
    case DS_DEPLOYING:
        return "deploying";
    case DS_READY:
        return "ready";
    case DS_FAILED:
        return "failed";
    }
    return "unknown";
}

bool ds_done(const ds_deployment *d)
{
    return d->status == DS_READY || d->status == DS_FAILED;
}

void ds_start(ds_deployment *d, const char *service, uint32_t serial)
{
    snprintf(d->id, sizeof d->id, "%.16s-%06x", service, serial & 0xffffffu);
    snprintf(d->name, sizeof d->name, "%.16s v1.%u.%u", service, (serial >> 4) % 20, serial % 16);
    d->status = DS_PENDING;
    d->progress = 0;
}

/* 8..22 points of progress per step. */
static int advance(ds_rng *r)
{
    return 8 + (int)(ds_rng_next(r) * 15);
}

bool ds_step(ds_deployment *d, ds_rng *r, double fail_rate)
{
    switch (d->status) {
    case DS_PENDING:
        d->status = DS_BUILDING;
        d->progress = 5;
        return true;
    case DS_BUILDING:
    case DS_DEPLOYING:
        if (ds_rng_next(r) < fail_rate) {
            d->status = DS_FAILED;
            return true;
        }
        d->progress += advance(r);
        if (d->status == DS_BUILDING && d->progress >= 50) {
            d->status = DS_DEPLOYING;
            d->progress = 55;
        } else if (d->status == DS_DEPLOYING && d->progress >= 100) {
            d->status = DS_READY;
            d->progress = 100;
        }
        return true;
    case DS_READY:
    case DS_FAILED:
        return false;
    }
    return false;
}
