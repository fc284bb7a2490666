/* metrics: registry, atomic cells, Prometheus text exposition. */
#include "herald/metrics.h"

#include <dirent.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define MAX_LABELS 4

typedef enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } kind_t;

struct metrics_cell {
    struct metrics_cell *next;
    metrics_family *family;
    char *values[MAX_LABELS];
    _Atomic int64_t value;       /* counter / gauge */
    _Atomic uint64_t *buckets;   /* histogram: nbounds + 1 (last = +Inf) */
    _Atomic uint64_t sum_micros; /* histogram sum, in millionths */
};

struct metrics_family {
    struct metrics_family *next;
    metrics *reg;
    kind_t kind;
    char *name, *help;
    char *labels[MAX_LABELS];
    size_t nlabels;
    double *bounds;
    size_t nbounds;
    metrics_cell *_Atomic cells; /* pushed at the head under reg->lock */
};

typedef struct collector {
    struct collector *next;
    metrics_collect_fn fn;
    void *ctx;
} collector;

struct metrics {
    pthread_mutex_t lock;
    metrics_family *families, **tail;
    collector *collectors, **ctail;
};

metrics *metrics_new(void)
{
    metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    pthread_mutex_init(&m->lock, NULL);
    m->tail = &m->families;
    m->ctail = &m->collectors;
    return m;
}

static void cell_free(metrics_cell *c, size_t nlabels)
{
    for (size_t i = 0; i < nlabels; i++)
        free(c->values[i]);
    free(c->buckets);
    free(c);
}

void metrics_free(metrics *m)
{
    if (!m)
        return;
    for (metrics_family *f = m->families, *fn; f; f = fn) {
        fn = f->next;
        for (metrics_cell *c = f->cells, *cn; c; c = cn) {
            cn = c->next;
            cell_free(c, f->nlabels);
        }
        free(f->name);
        free(f->help);
        for (size_t i = 0; i < f->nlabels; i++)
            free(f->labels[i]);
        free(f->bounds);
        free(f);
    }
    for (collector *c = m->collectors, *cn; c; c = cn) {
        cn = c->next;
        free(c);
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static metrics_family *family_new(metrics *m, kind_t kind, const char *name, const char *help,
                                  const char *labels)
{
    metrics_family *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->reg = m;
    f->kind = kind;
    f->name = strdup(name);
    f->help = strdup(help);
    if (labels) {
        char *copy = strdup(labels), *save = NULL;
        for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t && f->nlabels < MAX_LABELS;
             t = strtok_r(NULL, ",", &save))
            f->labels[f->nlabels++] = strdup(t);
        free(copy);
    }
    pthread_mutex_lock(&m->lock);
    *m->tail = f;
    m->tail = &f->next;
    pthread_mutex_unlock(&m->lock);
    return f;
}

metrics_family *metrics_counter(metrics *m, const char *name, const char *help, const char *labels)
{
    return family_new(m, KIND_COUNTER, name, help, labels);
}

metrics_family *metrics_gauge(metrics *m, const char *name, const char *help, const char *labels)
{
    return family_new(m, KIND_GAUGE, name, help, labels);
}

metrics_family *metrics_histogram(metrics *m, const char *name, const char *help,
                                  const char *labels, const double *bounds, size_t nbounds)
{
    metrics_family *f = family_new(m, KIND_HISTOGRAM, name, help, labels);
    if (!f)
        return NULL;
    f->bounds = malloc(nbounds * sizeof *bounds);
    if (f->bounds) {
        memcpy(f->bounds, bounds, nbounds * sizeof *bounds);
        f->nbounds = nbounds;
    }
    return f;
}

static bool same_values(const metrics_cell *c, const char *const *values, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(c->values[i], values[i]) != 0)
            return false;
    return true;
}

metrics_cell *metrics_cell_get(metrics_family *f, const char *const *values)
{
    if (!f)
        return NULL;
    for (metrics_cell *c = atomic_load(&f->cells); c; c = c->next)
        if (same_values(c, values, f->nlabels))
            return c;
    pthread_mutex_lock(&f->reg->lock);
    metrics_cell *c;
    for (c = atomic_load(&f->cells); c; c = c->next)
        if (same_values(c, values, f->nlabels))
            break;
    if (!c) {
        c = calloc(1, sizeof *c);
        if (c) {
            c->family = f;
            bool ok = true;
            for (size_t i = 0; i < f->nlabels; i++)
                ok &= (c->values[i] = strdup(values[i])) != NULL;
            if (f->kind == KIND_HISTOGRAM)
                ok &= (c->buckets = calloc(f->nbounds + 1, sizeof *c->buckets)) != NULL;
            if (ok) {
                c->next = atomic_load(&f->cells);
                atomic_store(&f->cells, c);
            } else {
                cell_free(c, f->nlabels);
                c = NULL;
            }
        }
    }
    pthread_mutex_unlock(&f->reg->lock);
    return c;
}

metrics_cell *metrics_cell0(metrics_family *f)
{
    return metrics_cell_get(f, NULL);
}

void metrics_add(metrics_cell *c, int64_t n)
{
    if (c)
        atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

void metrics_set(metrics_cell *c, int64_t v)
{
    if (c)
        atomic_store_explicit(&c->value, v, memory_order_relaxed);
}

int64_t metrics_value(const metrics_cell *c)
{
    return c ? atomic_load_explicit(&((metrics_cell *)c)->value, memory_order_relaxed) : 0;
}

void metrics_observe(metrics_cell *c, double v)
{
    if (!c || !c->buckets)
        return;
    metrics_family *f = c->family;
    size_t i = 0;
    while (i < f->nbounds && v > f->bounds[i])
        i++;
    atomic_fetch_add_explicit(&c->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->sum_micros, (uint64_t)(v * 1e6 + 0.5), memory_order_relaxed);
}

void metrics_inc_labels(metrics_family *f, const char *const *values, int64_t n)
{
    metrics_add(metrics_cell_get(f, values), n);
}

void metrics_add_collector(metrics *m, metrics_collect_fn fn, void *ctx)
{
    collector *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->fn = fn;
    c->ctx = ctx;
    pthread_mutex_lock(&m->lock);
    *m->ctail = c;
    m->ctail = &c->next;
    pthread_mutex_unlock(&m->lock);
}

void metrics_appendf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(*buf ? *buf + *len : NULL, *buf ? *cap - *len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (*buf && *len + (size_t)n < *cap) {
            *len += (size_t)n;
            return;
        }
        size_t ncap = (*cap ? *cap * 2 : 4096);
        while (ncap < *len + (size_t)n + 1)
            ncap *= 2;
        char *nb = realloc(*buf, ncap);
        if (!nb)
            return;
        *buf = nb;
        *cap = ncap;
    }
}

/* Label values are escaped per the exposition format: \\, \" and \n. */
static void append_labels(char **b, size_t *l, size_t *cap, const metrics_family *f,
                          const metrics_cell *c, const char *extra)
{
    if (f->nlabels == 0 && !extra)
        return;
    metrics_appendf(b, l, cap, "{");
    for (size_t i = 0; i < f->nlabels; i++) {
        metrics_appendf(b, l, cap, "%s%s=\"", i ? "," : "", f->labels[i]);
        for (const char *p = c->values[i]; *p; p++) {
            if (*p == '\\' || *p == '"')
                metrics_appendf(b, l, cap, "\\%c", *p);
            else if (*p == '\n')
                metrics_appendf(b, l, cap, "\\n");
            else
                metrics_appendf(b, l, cap, "%c", *p);
        }
        metrics_appendf(b, l, cap, "\"");
    }
    if (extra)
        metrics_appendf(b, l, cap, "%s%s", f->nlabels ? "," : "", extra);
    metrics_appendf(b, l, cap, "}");
}

static void render_family(char **b, size_t *l, size_t *cap, metrics_family *f)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    metrics_appendf(b, l, cap, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
                    types[f->kind]);
    if (f->nlabels == 0 && !atomic_load(&f->cells))
        metrics_cell0(f); /* unlabelled metrics are always exposed, at 0 */
    for (metrics_cell *c = atomic_load(&f->cells); c; c = c->next) {
        if (f->kind != KIND_HISTOGRAM) {
            metrics_appendf(b, l, cap, "%s", f->name);
            append_labels(b, l, cap, f, c, NULL);
            metrics_appendf(b, l, cap, " %lld\n", (long long)metrics_value(c));
            continue;
        }
        uint64_t cum = 0;
        for (size_t i = 0; i <= f->nbounds; i++) {
            char le[64];
            if (i < f->nbounds)
                snprintf(le, sizeof le, "le=\"%g\"", f->bounds[i]);
            else
                snprintf(le, sizeof le, "le=\"+Inf\"");
            cum += atomic_load(&c->buckets[i]);
            metrics_appendf(b, l, cap, "%s_bucket", f->name);
            append_labels(b, l, cap, f, c, le);
            metrics_appendf(b, l, cap, " %llu\n", (unsigned long long)cum);
        }
        metrics_appendf(b, l, cap, "%s_sum", f->name);
        append_labels(b, l, cap, f, c, NULL);
        metrics_appendf(b, l, cap, " %.6f\n", (double)atomic_load(&c->sum_micros) / 1e6);
        metrics_appendf(b, l, cap, "%s_count", f->name);
        append_labels(b, l, cap, f, c, NULL);
        metrics_appendf(b, l, cap, " %llu\n", (unsigned long long)cum);
    }
}

static void render_process(char **b, size_t *l, size_t *cap)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
        metrics_appendf(b, l, cap,
                        "# HELP process_cpu_seconds_total Total user and system CPU time.\n"
                        "# TYPE process_cpu_seconds_total counter\n"
                        "process_cpu_seconds_total %.3f\n",
                        cpu);
    }
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        unsigned long size, resident;
        if (fscanf(f, "%lu %lu", &size, &resident) == 2) {
            long page = sysconf(_SC_PAGESIZE);
            metrics_appendf(b, l, cap,
                            "# HELP process_resident_memory_bytes Resident memory size.\n"
                            "# TYPE process_resident_memory_bytes gauge\n"
                            "process_resident_memory_bytes %lu\n"
                            "# HELP process_virtual_memory_bytes Virtual memory size.\n"
                            "# TYPE process_virtual_memory_bytes gauge\n"
                            "process_virtual_memory_bytes %lu\n",
                            resident * (unsigned long)page, size * (unsigned long)page);
        }
        fclose(f);
    }
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        long n = 0;
        for (struct dirent *e; (e = readdir(d));)
            if (e->d_name[0] != '.')
                n++;
        closedir(d);
        metrics_appendf(b, l, cap,
                        "# HELP process_open_fds Open file descriptors.\n"
                        "# TYPE process_open_fds gauge\nprocess_open_fds %ld\n",
                        n - 1 /* the DIR's own */);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        metrics_appendf(b, l, cap,
                        "# HELP process_max_fds Maximum open file descriptors.\n"
                        "# TYPE process_max_fds gauge\nprocess_max_fds %llu\n",
                        (unsigned long long)rl.rlim_cur);
}

int metrics_render(metrics *m, char **out, size_t *len)
{
    char *b = NULL;
    size_t l = 0, cap = 0;
    metrics_appendf(&b, &l, &cap, "%s", "");
    pthread_mutex_lock(&m->lock);
    metrics_family *families = m->families;
    collector *collectors = m->collectors;
    pthread_mutex_unlock(&m->lock);
    /* Families and collectors are only appended, never removed: walk unlocked. */
    for (collector *c = collectors; c; c = c->next)
        c->fn(c->ctx, &b, &l, &cap);
    for (metrics_family *f = families; f; f = f->next)
        render_family(&b, &l, &cap, f);
    render_process(&b, &l, &cap);
    if (!b)
        return -1;
    *out = b;
    *len = l;
    return 0;
}
