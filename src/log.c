/* log: JSON lines on stderr. */
#include "herald/log.h"
#include "herald/clock.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_int min_level = HLOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

bool log_level_parse(const char *s, log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (log_level)i;
            return true;
        }
    }
    return false;
}

void log_set_level(log_level lvl)
{
    atomic_store(&min_level, (int)lvl);
}

bool log_enabled(log_level lvl)
{
    return (int)lvl >= atomic_load(&min_level);
}

void log_msg(log_level lvl, const char *msg, const char *fields, ...)
{
    if (!log_enabled(lvl))
        return;
    char tsbuf[40];
    clock_rfc3339_now(tsbuf, sizeof tsbuf);

    json_t *o = NULL;
    if (fields) {
        va_list ap;
        va_start(ap, fields);
        json_error_t err;
        o = json_vpack_ex(&err, 0, fields, ap);
        va_end(ap);
    }
    json_t *line = json_pack("{s:s, s:s, s:s}", "ts", tsbuf, "level", level_names[lvl], "msg", msg);
    if (!line) {
        json_decref(o);
        return;
    }
    if (o) {
        json_t *v;
        const char *k;
        json_object_foreach(o, k, v)
        {
            if (!json_object_get(line, k))
                json_object_set(line, k, v);
        }
        json_decref(o);
    }
    char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(line);
    if (!text)
        return;
    size_t n = strlen(text);
    text[n] = '\n'; /* overwrite the NUL: one write(2) per line */
    ssize_t w = write(STDERR_FILENO, text, n + 1);
    (void)w;
    free(text);
}

void log_library(log_level lvl, const char *library, const char *line)
{
    if (!log_enabled(lvl))
        return;
    char msg[512], name[64];
    snprintf(msg, sizeof msg, "%s", line);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    snprintf(name, sizeof name, "%s library", library);
    log_msg(lvl, name, "{s:s}", "detail", msg);
}
