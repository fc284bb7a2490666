/* Fuzz target: permission templates and decisions (perms.h).
 * Input: roles JSON '\n' claims JSON '\n' role names (',' separated) '\n'
 * then one pattern or subject per line. Checks the decisions agree with each
 * other: deliver_all(p) means every subject matching p is deliverable. */
#include "fuzz.h"

#include "herald/perms.h"
#include "herald/subject.h"

static void report(void *ctx, const char *path, const char *msg)
{
    FZ_CHECK(path != NULL && msg != NULL && msg[0] != '\0');
    (*(int *)ctx)++;
}

#define MAX_LINES 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = fz_make(data, size);
    const char *f;
    size_t n;
    fz_field(&in, '\n', &f, &n);
    json_t *roles = n ? json_loadb(f, n, JSON_REJECT_DUPLICATES, NULL) : NULL;
    fz_field(&in, '\n', &f, &n);
    json_t *claims = json_loadb(f, n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
    char *names = fz_next_str(&in, '\n');
    const char *role[8];
    size_t nrole = 0;
    for (char *save = NULL, *r = strtok_r(names, ",", &save); r && nrole < 8;
         r = strtok_r(NULL, ",", &save))
        role[nrole++] = r;
    char *lines[MAX_LINES];
    size_t lens[MAX_LINES], nlines = 0;
    while (in.n && nlines < MAX_LINES) {
        fz_field(&in, '\n', &f, &n);
        lines[nlines] = fz_memdup(f, n);
        lens[nlines++] = n;
    }

    int problems = 0;
    perms_table *t = NULL;
    perms_table_new(&t, roles, report, &problems);
    FZ_CHECK((t == NULL) == (problems > 0));
    if (t) {
        for (size_t i = 0; i < nrole; i++)
            (void)perms_table_has_role(t, role[i]);
        perms_set *s = perms_set_new(t, role, nrole, claims);
        FZ_CHECK(s != NULL);
        for (size_t i = 0; i < nlines; i++) {
            const char *p = lines[i];
            size_t pl = lens[i];
            bool sub = perms_can_subscribe(s, p, pl);
            bool all = perms_deliver_all(s, p, pl);
            bool deliver = perms_can_deliver(s, p, pl);
            bool publish = perms_can_publish(s, p, pl);
            if (!subject_pattern_valid(p, pl))
                FZ_CHECK(!sub && !all && !deliver && !publish);
            if (!subject_valid(p, pl))
                FZ_CHECK(!deliver && !publish);
            if (all)
                FZ_CHECK(sub);
            for (size_t j = 0; all && j < nlines; j++)
                if (subject_valid(lines[j], lens[j]) && subject_matches(p, pl, lines[j], lens[j]))
                    FZ_CHECK(perms_can_deliver(s, lines[j], lens[j]));
            /* For a literal subject the three subscriber checks agree. */
            if (subject_valid(p, pl))
                FZ_CHECK(all == deliver && sub == deliver);
        }
        perms_set_free(s);
        /* The same table for a principal without claims. */
        s = perms_set_new(t, role, nrole, NULL);
        FZ_CHECK(s != NULL);
        for (size_t i = 0; i < nlines; i++)
            (void)perms_can_subscribe(s, lines[i], lens[i]);
        perms_set_free(s);
        perms_table_free(t);
    }
    for (size_t i = 0; i < nlines; i++)
        free(lines[i]);
    free(names);
    json_decref(roles);
    json_decref(claims);
    return 0;
}
