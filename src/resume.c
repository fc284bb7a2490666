/* resume: history stream lookup and the replay-to-live hand-over. */
#include "herald/resume.h"

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
