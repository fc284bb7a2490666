/* fuzz: helpers shared by the fuzz targets (tests/fuzz/fuzz_*.c): splitting
 * one input into fields, NUL-terminated copies, and the abort used on a
 * differential mismatch. Each target is built twice: with libFuzzer
 * (HERALD_FUZZ) and with replay_main.c as a corpus regression test. */
#ifndef HERALD_FUZZ_H
#define HERALD_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The remaining input; fields are cut from its front. */
typedef struct {
    const char *p;
    size_t n;
} fz_in;

static inline fz_in fz_make(const uint8_t *data, size_t size)
{
    fz_in in = {(const char *)data, size};
    return in;
}

/* The next byte (0 when exhausted). */
static inline uint8_t fz_byte(fz_in *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return (uint8_t) * (in->p++);
}

/* The next field: up to (not including) `sep`, or the rest. */
static inline void fz_field(fz_in *in, char sep, const char **f, size_t *flen)
{
    const char *e = in->n ? memchr(in->p, sep, in->n) : NULL;
    size_t len = e ? (size_t)(e - in->p) : in->n;
    *f = in->p;
    *flen = len;
    in->p += e ? len + 1 : len;
    in->n -= e ? len + 1 : len;
}

/* A NUL-terminated copy (the fuzzer's bytes are not terminated). */
static inline char *fz_strndup(const char *s, size_t n)
{
    char *c = malloc(n + 1);
    if (!c)
        abort();
    if (n)
        memcpy(c, s, n);
    c[n] = '\0';
    return c;
}

/* An exact-size copy without terminator, for functions taking a length:
 * ASan then flags any read past the end. */
static inline char *fz_memdup(const char *s, size_t n)
{
    char *c = malloc(n ? n : 1);
    if (!c)
        abort();
    if (n)
        memcpy(c, s, n);
    else
        c[0] = '\0';
    return c;
}

static inline char *fz_next_str(fz_in *in, char sep)
{
    const char *f;
    size_t n;
    fz_field(in, sep, &f, &n);
    return fz_strndup(f, n);
}

/* A differential or invariant check failed: report and crash, so libFuzzer
 * saves the input and the regression runner fails. */
#define FZ_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
