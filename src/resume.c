/* resume: history stream lookup and the replay-to-live hand-over. */
#include "herald/resume.h"

#include <stdint.h>
#include <string.h>

#include "herald/subject.h"

const char *resume_history_stream(const hr_history_conf *h, size_t n, const char *pattern,
                                  size_t len)
{
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < h[i].nsubjects; k++)
            if (subject_contains(h[i].subjects[k], strlen(h[i].subjects[k]), pattern, len))
                return h[i].stream;
    return NULL;
}

void resume_init_live(resume_state *st, uint64_t floor)
{
    st->replaying = false;
    st->floor = floor;
    st->live_max = 0;
}

void resume_init_replay(resume_state *st, uint64_t floor)
{
    st->replaying = true;
    st->floor = floor;
    st->live_max = 0;
}

bool resume_on_live(resume_state *st, uint64_t seq)
{
    if (st->replaying) {
        if (seq > st->live_max)
            st->live_max = seq;
        return false;
    }
    if (seq <= st->floor)
        return false;
    st->floor = seq;
    return true;
}

bool resume_on_replayed(resume_state *st, uint64_t seq)
{
    if (!st->replaying || seq <= st->floor)
        return false;
    st->floor = seq;
    return true;
}

bool resume_caught_up(resume_state *st, uint64_t gone_upto)
{
    if (!st->replaying)
        return false;
    if (gone_upto > st->floor)
        st->floor = gone_upto < st->live_max ? gone_upto : st->live_max;
    if (st->live_max > st->floor)
        return false;
    st->replaying = false;
    return true;
}

uint64_t resume_start_seq(uint64_t since, uint64_t first_seq, bool *gap)
{
    *gap = since + 1 < first_seq;
    return *gap ? first_seq : since + 1;
}

/* A whole decimal token [p, end): false when empty, non-digit or > 2^64-1. */
static bool parse_u64(const char *p, const char *end, uint64_t *out)
{
    if (p == end)
        return false;
    uint64_t v = 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *out = v;
    return true;
}

bool resume_parse_ack(const char *reply, uint64_t *sseq, uint64_t *pending)
{
    static const char prefix[] = "$JS.ACK.";
    if (!reply || strncmp(reply, prefix, sizeof prefix - 1) != 0)
        return false;
    const char *tok[12];
    size_t len[12], n = 0;
    for (const char *p = reply + sizeof prefix - 1;;) {
        const char *dot = strchr(p, '.');
        if (n == 12)
            return false;
        tok[n] = p;
        len[n] = dot ? (size_t)(dot - p) : strlen(p);
        n++;
        if (!dot)
            break;
        p = dot + 1;
    }
    /* v1: 7 tokens after the prefix; v2: 10 (domain, account hash first) */
    size_t base = n == 7 ? 0 : n == 10 ? 2 : SIZE_MAX;
    if (base == SIZE_MAX || !len[base] || !len[base + 1])
        return false;
    uint64_t delivered, cseq, ts;
    return parse_u64(tok[base + 2], tok[base + 2] + len[base + 2], &delivered) &&
           parse_u64(tok[base + 3], tok[base + 3] + len[base + 3], sseq) &&
           parse_u64(tok[base + 4], tok[base + 4] + len[base + 4], &cseq) &&
           parse_u64(tok[base + 5], tok[base + 5] + len[base + 5], &ts) &&
           parse_u64(tok[base + 6], tok[base + 6] + len[base + 6], pending);
}
