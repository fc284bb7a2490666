/* metrics: a small Prometheus registry (text format 0.0.4).
 * Owns metric families (counter, gauge, histogram) with fixed label names,
 * their cells (one per label-value tuple) and the text exposition, plus the
 * standard process_* metrics. Cells are created under a lock and never move
 * or die before the registry, so a caller may keep a cell pointer and update
 * it lock-free (atomics) from any thread. Freed by its creator (main). */
#ifndef HERALD_METRICS_H
#define HERALD_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct metrics metrics;               /* the registry */
typedef struct metrics_family metrics_family; /* one metric name; owned by the registry */
typedef struct metrics_cell metrics_cell;     /* one label tuple; owned by its family */

/* Appends extra exposition text at render time (e.g. a gauge read from
 * another module's state). Must append complete lines to the buffer. */
typedef void (*metrics_collect_fn)(void *ctx, char **buf, size_t *len, size_t *cap);

metrics *metrics_new(void);
void metrics_free(metrics *m);

/* `labels`: comma-separated label names ("route,code") or NULL. Returns NULL
 * only on allocation failure. */
metrics_family *metrics_counter(metrics *m, const char *name, const char *help, const char *labels);
metrics_family *metrics_gauge(metrics *m, const char *name, const char *help, const char *labels);
/* `bounds`: ascending upper bounds (le), not including +Inf. */
metrics_family *metrics_histogram(metrics *m, const char *name, const char *help,
                                  const char *labels, const double *bounds, size_t nbounds);

/* The cell for these label values (as many as the family has labels; values
 * are copied). Same pointer for the same values. NULL on allocation failure;
 * every update function accepts NULL and does nothing. */
metrics_cell *metrics_cell_get(metrics_family *f, const char *const *values);
/* Shortcut for families without labels. */
metrics_cell *metrics_cell0(metrics_family *f);

void metrics_add(metrics_cell *c, int64_t n);    /* counter or gauge */
void metrics_set(metrics_cell *c, int64_t v);    /* gauge */
void metrics_observe(metrics_cell *c, double v); /* histogram */
int64_t metrics_value(const metrics_cell *c);

/* Convenience: add to the cell with these label values (looked up each call). */
void metrics_inc_labels(metrics_family *f, const char *const *values, int64_t n);

void metrics_add_collector(metrics *m, metrics_collect_fn fn, void *ctx);

/* Render the whole exposition; caller frees *out. 0 on success. */
int metrics_render(metrics *m, char **out, size_t *len);

/* Append printf-formatted text to a growing buffer (for collectors). */
void metrics_appendf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
