/* deploysim: the demo's simulated deployments. Pure: no I/O, no globals,
 * no clock; randomness comes from the caller's ds_rng so runs repeat. */
#ifndef HERALD_DEMO_DEPLOYSIM_H
#define HERALD_DEMO_DEPLOYSIM_H

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    DS_PENDING,   /* queued, progress 0 */
    DS_BUILDING,  /* progress 5..50 */
    DS_DEPLOYING, /* progress 55..99 */
    DS_READY,     /* done, progress 100 */
    DS_FAILED,    /* done, progress where it stopped */
} ds_status;

typedef struct {
    uint64_t s; /* xorshift64 state, never 0 */
} ds_rng;

typedef struct {
    char id[32];   /* subject token: [a-z0-9-] */
    char name[48]; /* human-readable, e.g. "api v1.3.12" */
    ds_status status;
    int progress; /* 0..100 */
} ds_deployment;

void ds_rng_seed(ds_rng *r, uint64_t seed);
/* Uniform in [0, 1). */
double ds_rng_next(ds_rng *r);

const char *ds_status_str(ds_status s);
bool ds_done(const ds_deployment *d);

/* A new pending deployment of service `service`; `serial` makes id and name
 * unique (the caller passes a counter mixed with the start time). */
void ds_start(ds_deployment *d, const char *service, uint32_t serial);

/* Advance one step: pending → building → deploying → ready, with a chance of
 * `fail_rate` per step of failing while building or deploying. Returns true
 * when the deployment changed (a done one never does). */
bool ds_step(ds_deployment *d, ds_rng *r, double fail_rate);

#endif
