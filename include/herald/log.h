/* log: one JSON object per line on stderr ({"ts","level","msg",...fields}).
 * Thread-safe; each line is written with one write(2). Never pass secrets,
 * tokens or signatures as fields. */
#ifndef HERALD_LOG_H
#define HERALD_LOG_H

#include <stdbool.h>

/* HLOG_, not LOG_: <syslog.h> defines LOG_DEBUG, LOG_INFO... as macros. */
typedef enum { HLOG_DEBUG = 0, HLOG_INFO, HLOG_WARN, HLOG_ERROR } log_level;

/* Parse "debug" | "info" | "warn" | "error"; false if unknown. */
bool log_level_parse(const char *s, log_level *out);
/* Set the minimum level written (set once at startup; read atomically). */
void log_set_level(log_level lvl);
bool log_enabled(log_level lvl);

/* Write one line. `fields` is a jansson json_pack() format for an object
 * ("{s:s, s:i}") followed by its arguments, or NULL for no fields. */
void log_msg(log_level lvl, const char *msg, const char *fields, ...);

/* A line from a library's own logger (trailing newlines trimmed), as
 * {"msg": "<library> library", "detail": line}. */
void log_library(log_level lvl, const char *library, const char *line);

#define log_debug(msg, ...) log_msg(HLOG_DEBUG, msg, __VA_ARGS__)
#define log_info(msg, ...)  log_msg(HLOG_INFO, msg, __VA_ARGS__)
#define log_warn(msg, ...)  log_msg(HLOG_WARN, msg, __VA_ARGS__)
#define log_error(msg, ...) log_msg(HLOG_ERROR, msg, __VA_ARGS__)

#endif
