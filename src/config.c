/* config: JSON configuration → hr_config, with every problem reported by path. */
#include "herald/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "herald/log.h"
#include "herald/subject.h"

#define PATH_MAX_LEN 256

typedef struct {
    config_problems *probs;
    config_env_fn env;
} ctx_t;

/* ---- problems ---------------------------------------------------------- */

static void problems_push(config_problems *p, char *line)
{
    if (!line)
        return;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 8;
        char **l = realloc(p->lines, cap * sizeof *l);
        if (!l) {
            free(line);
            return;
        }
        p->lines = l;
        p->cap = cap;
    }
    p->lines[p->n++] = line;
}

static void problem(ctx_t *c, const char *path, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *line = NULL;
    if (asprintf(&line, "%s: %s", path && *path ? path : "(root)", msg) < 0)
        line = NULL;
    problems_push(c->probs, line);
}

void config_problems_free(config_problems *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->lines[i]);
    free(p->lines);
    memset(p, 0, sizeof *p);
}

static void join(char *out, const char *base, const char *key)
{
    if (base && *base)
        snprintf(out, PATH_MAX_LEN, "%s.%s", base, key);
    else
        snprintf(out, PATH_MAX_LEN, "%s", key);
}

static void join_idx(char *out, const char *base, size_t i)
{
    snprintf(out, PATH_MAX_LEN, "%s[%zu]", base, i);
}

/* ---- typed getters ------------------------------------------------------ */

/* Report keys of `obj` that are not in the NULL-terminated `allowed` list. */
static void check_keys(ctx_t *c, const json_t *obj, const char *path, const char *const *allowed)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        bool ok = false;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(*a, k) == 0)
                ok = true;
        if (!ok) {
            char p[PATH_MAX_LEN];
            join(p, path, k);
            problem(c, p, "unknown key");
        }
    }
}

/* An object member that must itself be an object; NULL if absent or wrong. */
static const json_t *get_obj(ctx_t *c, const json_t *obj, const char *key, const char *path)
{
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (!v)
        return NULL;
    char p[PATH_MAX_LEN];
    join(p, path, key);
    if (!json_is_object(v)) {
        problem(c, p, "must be an object");
        return NULL;
    }
    return v;
}

static int64_t get_int(ctx_t *c, const json_t *obj, const char *key, const char *path, int64_t min,
                       int64_t max, int64_t def)
{
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (!v)
        return def;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        char p[PATH_MAX_LEN];
        join(p, path, key);
        problem(c, p, "must be an integer between %lld and %lld", (long long)min, (long long)max);
        return def;
    }
    return json_integer_value(v);
}

static bool get_bool(ctx_t *c, const json_t *obj, const char *key, const char *path, bool def)
{
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (!v)
        return def;
    if (!json_is_boolean(v)) {
        char p[PATH_MAX_LEN];
        join(p, path, key);
        problem(c, p, "must be true or false");
        return def;
    }
    return json_is_true(v);
}

/* A non-empty string, strdup'ed; `def` (may be NULL) when absent. */
static char *get_str(ctx_t *c, const json_t *obj, const char *key, const char *path,
                     const char *def)
{
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (!v || (json_is_null(v) && !def))
        return def ? strdup(def) : NULL;
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        char p[PATH_MAX_LEN];
        join(p, path, key);
        problem(c, p, "must be a non-empty string");
        return def ? strdup(def) : NULL;
    }
    return strdup(json_string_value(v));
}

/* One of `choices` (NULL-terminated); returns its index or `def`. */
static int get_enum(ctx_t *c, const json_t *obj, const char *key, const char *path,
                    const char *const *choices, int def)
{
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (!v)
        return def;
    if (json_is_string(v)) {
        for (int i = 0; choices[i]; i++)
            if (strcmp(choices[i], json_string_value(v)) == 0)
                return i;
    }
    char p[PATH_MAX_LEN], list[256] = "";
    join(p, path, key);
    for (int i = 0; choices[i]; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, choices[i], sizeof list - strlen(list) - 1);
    }
    problem(c, p, "must be one of %s", list);
    return def;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

/* An array of non-empty strings. Returns false (and reports) if malformed.
 * Absent → *out NULL, *n 0, true. `check` may validate each entry. */
typedef bool (*str_check_fn)(ctx_t *c, const char *path, const char *s);

static bool get_strv(ctx_t *c, const json_t *obj, const char *key, const char *path, char ***out,
                     size_t *n, str_check_fn check)
{
    *out = NULL;
    *n = 0;
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (!v)
        return true;
    char p[PATH_MAX_LEN];
    join(p, path, key);
    if (!json_is_array(v)) {
        problem(c, p, "must be an array of strings");
        return false;
    }
    size_t len = json_array_size(v);
    char **arr = calloc(len ? len : 1, sizeof *arr);
    if (!arr)
        return false;
    bool ok = true;
    for (size_t i = 0; i < len; i++) {
        json_t *e = json_array_get(v, i);
        char ep[PATH_MAX_LEN];
        join_idx(ep, p, i);
        if (!json_is_string(e) || json_string_length(e) == 0 ||
            strlen(json_string_value(e)) != json_string_length(e)) {
            problem(c, ep, "must be a non-empty string");
            ok = false;
            continue;
        }
        if (check && !check(c, ep, json_string_value(e))) {
            ok = false;
            continue;
        }
        arr[(*n)++] = strdup(json_string_value(e));
    }
    if (!ok) {
        free_strv(arr, *n);
        *n = 0;
        return false;
    }
    *out = arr;
    return true;
}

/* Resolve an environment variable holding a secret: set and non-empty. */
static char *env_secret(ctx_t *c, const char *path, const char *var)
{
    const char *v = c->env(var);
    if (!v || !*v) {
        problem(c, path, "environment variable %s is %s", var, v ? "empty" : "not set");
        return NULL;
    }
    return strdup(v);
}

/* A secret given inline as `key` or by name as `key_env` (exactly one).
 * Returns the resolved value, or NULL (absent when *present is false). */
static char *get_secret(ctx_t *c, const json_t *obj, const char *key, const char *path,
                        bool *present)
{
    char env_key[64];
    snprintf(env_key, sizeof env_key, "%s_env", key);
    json_t *inl = json_object_get(obj, key), *env = json_object_get(obj, env_key);
    *present = inl || env;
    char p[PATH_MAX_LEN];
    if (inl && env) {
        join(p, path, key);
        problem(c, p, "give either %s or %s, not both", key, env_key);
        return NULL;
    }
    if (inl)
        return get_str(c, obj, key, path, NULL);
    if (!env)
        return NULL;
    join(p, path, env_key);
    if (!json_is_string(env) || json_string_length(env) == 0) {
        problem(c, p, "must be the name of an environment variable");
        return NULL;
    }
    return env_secret(c, p, json_string_value(env));
}

/* ---- value checks ------------------------------------------------------- */

/* A key or credentials file: readable and not a directory (errno set if not). */
static bool file_readable(const char *path)
{
    struct stat st;
    if (access(path, R_OK) != 0 || stat(path, &st) != 0)
        return false;
    if (S_ISDIR(st.st_mode)) {
        errno = EISDIR;
        return false;
    }
    return true;
}

bool config_parse_listen(const char *s, hr_listen *out)
{
    const char *colon;
    size_t hlen;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':')
            return false;
        hlen = (size_t)(end - s - 1);
        if (hlen == 0 || hlen >= sizeof out->host)
            return false;
        memcpy(out->host, s + 1, hlen);
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || memchr(s, ':', (size_t)(colon - s)))
            return false;
        hlen = (size_t)(colon - s);
        if (hlen == 0 || hlen >= sizeof out->host)
            return false;
        memcpy(out->host, s, hlen);
    }
    out->host[hlen] = '\0';
    for (size_t i = 0; i < hlen; i++) {
        unsigned char ch = (unsigned char)out->host[i];
        if (!isalnum(ch) && ch != '.' && ch != ':' && ch != '-' && ch != '%')
            return false;
    }
    const char *ps = colon + 1;
    if (!*ps || strlen(ps) > 5)
        return false;
    long port = 0;
    for (const char *q = ps; *q; q++) {
        if (!isdigit((unsigned char)*q))
            return false;
        port = port * 10 + (*q - '0');
    }
    if (port > 65535)
        return false;
    out->port = (int)port;
    return true;
}

static void get_listen(ctx_t *c, const json_t *obj, const char *path, const char *def,
                       hr_listen *out)
{
    config_parse_listen(def, out);
    json_t *v = obj ? json_object_get(obj, "listen") : NULL;
    if (!v)
        return;
    char p[PATH_MAX_LEN];
    join(p, path, "listen");
    if (!json_is_string(v) || !config_parse_listen(json_string_value(v), out)) {
        problem(c, p, "must be \"host:port\" (IPv6 as \"[addr]:port\", port 0-65535)");
        config_parse_listen(def, out);
    }
}

static bool check_name(ctx_t *c, const char *path, const char *s)
{
    size_t n = strlen(s);
    bool ok = n >= 1 && n <= 64 && (islower((unsigned char)s[0]) || isdigit((unsigned char)s[0]));
    for (size_t i = 1; ok && i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        ok = islower(ch) || isdigit(ch) || ch == '_' || ch == '-';
    }
    if (!ok)
        problem(c, path, "name \"%s\" must match [a-z0-9][a-z0-9_-]{0,63}", s);
    return ok;
}

static bool check_pattern(ctx_t *c, const char *path, const char *s)
{
    if (!subject_pattern_valid(s, strlen(s))) {
        problem(c, path, "invalid subject pattern \"%s\"", s);
        return false;
    }
    return true;
}

static bool check_url(ctx_t *c, const char *path, const char *s)
{
    static const char *const schemes[] = {"nats://", "tls://", "ws://", "wss://", NULL};
    for (int i = 0; schemes[i]; i++)
        if (strncmp(s, schemes[i], strlen(schemes[i])) == 0 && s[strlen(schemes[i])])
            return true;
    problem(c, path, "must be a nats://, tls://, ws:// or wss:// URL");
    return false;
}

static bool check_origin(ctx_t *c, const char *path, const char *s)
{
    if (strcmp(s, "null") == 0)
        return true;
    const char *sep = strstr(s, "://");
    bool ok = sep && sep > s && sep[3] && !strchr(sep + 3, '/');
    if (!ok)
        problem(c, path, "must be an origin like \"https://app.example.com\" or \"null\"");
    return ok;
}

static bool check_hex64(ctx_t *c, const char *path, const char *s)
{
    bool ok = strlen(s) == 64;
    for (size_t i = 0; ok && i < 64; i++)
        ok = isdigit((unsigned char)s[i]) || (s[i] >= 'a' && s[i] <= 'f');
    if (!ok)
        problem(c, path, "must be a lowercase hex SHA-256 digest (64 characters)");
    return ok;
}

static bool check_cidr(ctx_t *c, const char *path, const char *s)
{
    cip_cidr r;
    bool ok = cip_parse_cidr(s, &r);
    if (!ok)
        problem(c, path, "must be an IPv4 or IPv6 address or CIDR like \"10.0.0.0/8\"");
    return ok;
}

static bool check_content_type(ctx_t *c, const char *path, const char *s)
{
    const char *slash = strchr(s, '/');
    bool ok = slash && slash > s && slash[1] && !strchr(s, ' ') && !strchr(s, ';');
    if (!ok)
        problem(c, path, "must be a media type like \"application/json\"");
    return ok;
}

/* Compile a webhook template with the one template parser (whtmpl); a
 * subject template must also be subject-shaped. NULL on a problem. */
static whtmpl *compile_template(ctx_t *c, const char *path, const char *text, bool subject)
{
    whtmpl *t = NULL;
    char err[320];
    if (whtmpl_compile_err(&t, text, err, sizeof err) != HR_OK) {
        problem(c, path, "%s", err);
        return NULL;
    }
    if (subject && !whtmpl_subject_shaped(t)) {
        problem(c, path, "not a valid subject template");
        whtmpl_free(t);
        return NULL;
    }
    return t;
}

/* ---- sections ------------------------------------------------------------ */

static void parse_http(ctx_t *c, hr_config *cfg, const json_t *root)
{
    static const char *const keys[] = {"listen",
                                       "retry_after_s",
                                       "static_dir",
                                       "trusted_proxies",
                                       "request_timeout_s",
                                       "idle_timeout_s",
                                       NULL};
    const json_t *o = get_obj(c, root, "http", "");
    if (o)
        check_keys(c, o, "http", keys);
    get_listen(c, o, "http", "0.0.0.0:8080", &cfg->http_listen);
    cfg->http_retry_after_s = (int)get_int(c, o, "retry_after_s", "http", 1, 3600, 5);
    cfg->http_request_timeout_s = (int)get_int(c, o, "request_timeout_s", "http", 1, 600, 30);
    cfg->http_idle_timeout_s = (int)get_int(c, o, "idle_timeout_s", "http", 1, 3600, 30);
    const char *env_dir = c->env("HERALD_STATIC_DIR");
    cfg->static_dir = get_str(c, o, "static_dir", "http", NULL);
    if (!cfg->static_dir && env_dir && *env_dir)
        cfg->static_dir = strdup(env_dir);
    char **cidrs;
    size_t n;
    if (!get_strv(c, o, "trusted_proxies", "http", &cidrs, &n, check_cidr))
        return;
    cfg->trusted_proxies = n ? calloc(n, sizeof *cfg->trusted_proxies) : NULL;
    for (size_t i = 0; cfg->trusted_proxies && i < n; i++)
        if (cip_parse_cidr(cidrs[i], &cfg->trusted_proxies[cfg->ntrusted_proxies]))
            cfg->ntrusted_proxies++;
    free_strv(cidrs, n);
}

static void parse_ws(ctx_t *c, hr_config *cfg, const json_t *root)
{
    static const char *const keys[] = {"listen",
                                       "allowed_origins",
                                       "max_frame_bytes",
                                       "max_subscriptions",
                                       "max_queue_bytes",
                                       "slow_consumer",
                                       "auth_timeout_ms",
                                       "ping_interval_s",
                                       "ping_timeout_s",
                                       "auth_cookie",
                                       "query_token",
                                       "threads",
                                       NULL};
    static const char *const slow[] = {"disconnect", "drop", NULL};
    const json_t *o = get_obj(c, root, "ws", "");
    if (o)
        check_keys(c, o, "ws", keys);
    get_listen(c, o, "ws", "0.0.0.0:8081", &cfg->ws_listen);
    get_strv(c, o, "allowed_origins", "ws", &cfg->allowed_origins, &cfg->nallowed_origins,
             check_origin);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int dflt_threads = cpus < 1 ? 1 : cpus > 8 ? 8 : (int)cpus;
    cfg->ws_threads = (int)get_int(c, o, "threads", "ws", 1, 64, dflt_threads);
    cfg->ws_max_frame_bytes = (int)get_int(c, o, "max_frame_bytes", "ws", 1024, 16777216, 65536);
    cfg->ws_max_subscriptions = (int)get_int(c, o, "max_subscriptions", "ws", 1, 10000, 100);
    cfg->ws_max_queue_bytes = get_int(c, o, "max_queue_bytes", "ws", 4096, 1073741824, 1048576);
    cfg->ws_slow_consumer = (hr_slow_policy)get_enum(c, o, "slow_consumer", "ws", slow, 0);
    cfg->ws_auth_timeout_ms = (int)get_int(c, o, "auth_timeout_ms", "ws", 100, 600000, 5000);
    cfg->ws_ping_interval_s = (int)get_int(c, o, "ping_interval_s", "ws", 1, 3600, 25);
    cfg->ws_ping_timeout_s = (int)get_int(c, o, "ping_timeout_s", "ws", 1, 3600, 10);
    cfg->ws_auth_cookie = get_str(c, o, "auth_cookie", "ws", NULL);
    /* A browser sends the cookie with any site's WebSocket request: without
     * an Origin allow-list every website could act as the visiting user. */
    if (cfg->ws_auth_cookie && !cfg->allowed_origins)
        problem(c, "ws.auth_cookie",
                "requires ws.allowed_origins (cookies ride along on cross-site requests)");
    cfg->ws_query_token = get_bool(c, o, "query_token", "ws", false);
}

static void parse_nats(ctx_t *c, hr_config *cfg, const json_t *root)
{
    static const char *const keys[] = {
        "servers", "name",      "user",       "user_env",           "password", "password_env",
        "token",   "token_env", "creds_file", "publish_timeout_ms", NULL};
    const json_t *o = get_obj(c, root, "nats", "");
    if (o)
        check_keys(c, o, "nats", keys);
    const char *addr = c->env("NATS_ADDR");
    if (addr && *addr) {
        /* NATS_ADDR wins: comma-separated URLs; bare host:port gets nats://. */
        char *copy = strdup(addr), *save = NULL;
        size_t cap = 1;
        for (const char *q = addr; *q; q++)
            cap += *q == ',';
        cfg->nats_servers = calloc(cap, sizeof(char *));
        for (char *tok = strtok_r(copy, ",", &save); tok && cfg->nats_servers;
             tok = strtok_r(NULL, ",", &save)) {
            while (*tok == ' ')
                tok++;
            size_t tl = strlen(tok);
            while (tl && tok[tl - 1] == ' ')
                tok[--tl] = '\0';
            if (!*tok)
                continue;
            char *url = NULL;
            if (strstr(tok, "://"))
                url = strdup(tok);
            else if (asprintf(&url, "nats://%s", tok) < 0)
                url = NULL;
            if (url && check_url(c, "NATS_ADDR", url))
                cfg->nats_servers[cfg->nnats_servers++] = url;
            else
                free(url);
        }
        free(copy);
        if (cfg->nnats_servers == 0)
            problem(c, "NATS_ADDR", "no NATS URL in \"%s\"", addr);
    } else {
        get_strv(c, o, "servers", "nats", &cfg->nats_servers, &cfg->nnats_servers, check_url);
        if (o && json_object_get(o, "servers") && cfg->nnats_servers == 0 &&
            json_is_array(json_object_get(o, "servers")) &&
            json_array_size(json_object_get(o, "servers")) == 0)
            problem(c, "nats.servers", "must list at least one URL");
        if (cfg->nnats_servers == 0 && !cfg->nats_servers) {
            cfg->nats_servers = calloc(1, sizeof(char *));
            if (cfg->nats_servers) {
                cfg->nats_servers[0] = strdup("nats://127.0.0.1:4222");
                cfg->nnats_servers = 1;
            }
        }
    }
    cfg->nats_name = get_str(c, o, "name", "nats", "herald");
    if (o) {
        bool present;
        cfg->nats_user = get_secret(c, o, "user", "nats", &present);
        cfg->nats_password = get_secret(c, o, "password", "nats", &present);
        cfg->nats_token = get_secret(c, o, "token", "nats", &present);
        cfg->nats_creds_file = get_str(c, o, "creds_file", "nats", NULL);
        if (cfg->nats_creds_file && !file_readable(cfg->nats_creds_file))
            problem(c, "nats.creds_file", "cannot read %s: %s", cfg->nats_creds_file,
                    strerror(errno));
    }
    cfg->nats_publish_timeout_ms =
        (int)get_int(c, o, "publish_timeout_ms", "nats", 100, 60000, 5000);
}

/* A "path: message" line from a module (hjwt, wv) as a problem; `base`
 * prefixes the path ("" for none), `dflt` is the path when there is none. */
static void problem_line(ctx_t *c, const char *base, const char *dflt, const char *line)
{
    const char *sep = strstr(line, ": ");
    char p[PATH_MAX_LEN];
    if (!sep || memchr(line, ' ', (size_t)(sep - line))) {
        problem(c, dflt, "%s", line);
        return;
    }
    snprintf(p, sizeof p, "%s%s%.*s", base, *base ? "." : "", (int)(sep - line), line);
    problem(c, p, "%s", sep + 2);
}

/* The one JWT verifier (WebSocket and publish API): key files are read and
 * checked here, so a bad key is a configuration problem. */
static void compile_jwt(ctx_t *c, hr_config *cfg)
{
    hjwt_key *keys = calloc(cfg->njwt_keys, sizeof *keys);
    if (!keys) {
        problem(c, "auth.jwt.keys", "out of memory");
        return;
    }
    for (size_t i = 0; i < cfg->njwt_keys; i++) {
        keys[i].alg = cfg->jwt_keys[i].alg;
        keys[i].kid = cfg->jwt_keys[i].kid;
        keys[i].secret = (const unsigned char *)cfg->jwt_keys[i].secret;
        keys[i].secret_len = cfg->jwt_keys[i].secret_len;
        keys[i].public_key_file = cfg->jwt_keys[i].public_key_file;
    }
    char err[320] = "";
    hr_status st =
        hjwt_verifier_new(&cfg->jwt, keys, cfg->njwt_keys, cfg->jwt_issuer, cfg->jwt_audience,
                          cfg->jwt_roles_claim, cfg->jwt_leeway_s, err, sizeof err);
    free(keys);
    if (st != HR_OK)
        problem_line(c, "", "auth.jwt", *err ? err : "cannot build the JWT verifier");
}

static void parse_jwt(ctx_t *c, hr_config *cfg, const json_t *root)
{
    size_t before = c->probs->n;
    const json_t *auth = get_obj(c, root, "auth", "");
    static const char *const auth_keys[] = {"jwt", NULL};
    if (auth)
        check_keys(c, auth, "auth", auth_keys);
    const json_t *o = get_obj(c, auth, "jwt", "auth");
    static const char *const keys[] = {"keys",        "issuer",   "audience",
                                       "roles_claim", "leeway_s", NULL};
    if (o)
        check_keys(c, o, "auth.jwt", keys);
    cfg->jwt_issuer = get_str(c, o, "issuer", "auth.jwt", NULL);
    cfg->jwt_audience = get_str(c, o, "audience", "auth.jwt", NULL);
    cfg->jwt_roles_claim = get_str(c, o, "roles_claim", "auth.jwt", "roles");
    cfg->jwt_leeway_s = (int)get_int(c, o, "leeway_s", "auth.jwt", 0, 300, 5);
    json_t *keys_v = o ? json_object_get(o, "keys") : NULL;
    if (!keys_v)
        return;
    if (!json_is_array(keys_v)) {
        problem(c, "auth.jwt.keys", "must be an array of key objects");
        return;
    }
    size_t n = json_array_size(keys_v);
    cfg->jwt_keys = calloc(n ? n : 1, sizeof *cfg->jwt_keys);
    if (!cfg->jwt_keys)
        return;
    static const char *const key_keys[] = {"alg", "kid", "secret", "secret_env", "public_key_file",
                                           NULL};
    static const char *const algs[] = {"HS256", "RS256", "ES256", NULL};
    for (size_t i = 0; i < n; i++) {
        char p[PATH_MAX_LEN];
        snprintf(p, sizeof p, "auth.jwt.keys[%zu]", i);
        json_t *k = json_array_get(keys_v, i);
        if (!json_is_object(k)) {
            problem(c, p, "must be an object");
            continue;
        }
        check_keys(c, k, p, key_keys);
        hr_jwt_key *key = &cfg->jwt_keys[cfg->njwt_keys++];
        if (!json_object_get(k, "alg")) {
            char ap[PATH_MAX_LEN];
            join(ap, p, "alg");
            problem(c, ap, "is required (HS256, RS256 or ES256)");
            continue;
        }
        int alg = get_enum(c, k, "alg", p, algs, -1);
        if (alg < 0)
            continue;
        strcpy(key->alg, algs[alg]);
        key->kid = get_str(c, k, "kid", p, NULL);
        bool present;
        if (alg == 0) {
            key->secret = get_secret(c, k, "secret", p, &present);
            if (!present)
                problem(c, p, "HS256 needs secret_env (or secret)");
            key->secret_len = key->secret ? strlen(key->secret) : 0;
            if (json_object_get(k, "public_key_file"))
                problem(c, p, "public_key_file is for RS256/ES256 keys");
        } else {
            key->public_key_file = get_str(c, k, "public_key_file", p, NULL);
            char fp[PATH_MAX_LEN];
            join(fp, p, "public_key_file");
            if (!key->public_key_file && !json_object_get(k, "public_key_file"))
                problem(c, fp, "is required for %s", algs[alg]);
            else if (key->public_key_file && !file_readable(key->public_key_file))
                problem(c, fp, "cannot read %s: %s", key->public_key_file, strerror(errno));
            if (json_object_get(k, "secret") || json_object_get(k, "secret_env"))
                problem(c, p, "secret is for HS256 keys");
        }
    }
    if (c->probs->n == before && cfg->njwt_keys)
        compile_jwt(c, cfg);
}

struct perms_report_ctx {
    ctx_t *c;
    const char *prefix;
};

static void perms_report(void *vctx, const char *path, const char *msg)
{
    struct perms_report_ctx *r = vctx;
    char p[PATH_MAX_LEN * 2];
    snprintf(p, sizeof p, "%s%s%s", r->prefix, *path ? "." : "", path);
    problem(r->c, p, "%s", msg);
}

static void parse_permissions(ctx_t *c, hr_config *cfg, const json_t *root)
{
    static const char *const keys[] = {"roles", NULL};
    const json_t *o = get_obj(c, root, "permissions", "");
    if (o)
        check_keys(c, o, "permissions", keys);
    const json_t *roles = get_obj(c, o, "roles", "permissions");
    if (o && json_object_get(o, "roles") && !roles)
        return;
    struct perms_report_ctx r = {c, "permissions.roles"};
    size_t before = c->probs->n;
    if (perms_table_new(&cfg->perms, roles, perms_report, &r) != HR_OK && c->probs->n == before)
        problem(c, "permissions.roles", "cannot be compiled");
}

static bool check_allow_deny(ctx_t *c, const json_t *o, const char *path)
{
    static const char *const keys[] = {"allow", "deny", NULL};
    if (!json_is_object(o)) {
        problem(c, path, "must be an object with allow/deny lists");
        return false;
    }
    size_t before = c->probs->n;
    check_keys(c, o, path, keys);
    char **v;
    size_t n;
    get_strv(c, o, "allow", path, &v, &n, check_pattern);
    free_strv(v, n);
    get_strv(c, o, "deny", path, &v, &n, check_pattern);
    free_strv(v, n);
    return c->probs->n == before;
}

/* Absent, or an empty array: names nothing (a malformed value is reported
 * where it is read, not here). */
static bool no_entries(const json_t *v)
{
    return !v || (json_is_array(v) && json_array_size(v) == 0);
}

/* Problems reported by perms_table_new for a source's `publish`, compiled
 * as the one role "source": "source.publish.allow[0]" is reported at
 * "<path>.allow[0]". */
struct publish_report_ctx {
    ctx_t *c;
    const char *path; /* webhooks.<source>.publish */
};

static void publish_report(void *vctx, const char *ppath, const char *msg)
{
    struct publish_report_ctx *r = vctx;
    static const char role[] = "source.publish";
    const char *rest = strncmp(ppath, role, strlen(role)) == 0 ? ppath + strlen(role) : "";
    char p[PATH_MAX_LEN * 2];
    snprintf(p, sizeof p, "%s%s", r->path, rest);
    problem(r->c, p, "%s", msg);
}

static void compile_publish(ctx_t *c, hr_webhook_conf *w, const char *path)
{
    json_t *roles = json_pack("{s:{s:O}}", "source", "publish", w->publish);
    struct publish_report_ctx r = {c, path};
    size_t before = c->probs->n;
    if (roles)
        perms_table_new(&w->publish_table, roles, publish_report, &r); /* problems reported */
    json_decref(roles);
    const char *rn[] = {"source"};
    w->publish_perms = w->publish_table ? perms_set_new(w->publish_table, rn, 1, NULL) : NULL;
    if (!w->publish_perms && c->probs->n == before)
        problem(c, path, "cannot be compiled (out of memory)");
}

/* The source's signature verifier, from what parse_verify read. `single`
 * names the key a lone secret came from (secret, secret_env), or NULL for
 * secrets_env: the verifier reports secrets by their secrets_env index. */
static void compile_verifier(ctx_t *c, hr_webhook_conf *w, const char *path, const char *single)
{
    wv_params p;
    wv_params_init(&p, w->scheme);
    wv_bytes *secrets = calloc(w->nsecrets + 1, sizeof *secrets);
    wv_bytes *tokens = calloc(w->ntokens + 1, sizeof *tokens);
    if (!secrets || !tokens) {
        problem(c, path, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < w->nsecrets; i++)
        secrets[i] = (wv_bytes){(const unsigned char *)w->secrets[i], strlen(w->secrets[i])};
    for (size_t i = 0; i < w->ntokens; i++)
        tokens[i] = (wv_bytes){(const unsigned char *)w->tokens[i], strlen(w->tokens[i])};
    p.secrets = secrets;
    p.n_secrets = w->nsecrets;
    p.tolerance_s = w->tolerance_s;
    p.header = w->header;
    p.encoding = w->encoding;
    p.prefix = w->prefix;
    p.tokens_sha256 = (const char *const *)w->tokens_sha256;
    p.n_tokens_sha256 = w->ntokens_sha256;
    p.tokens = tokens;
    p.n_tokens = w->ntokens;
    char err[256] = "", line[320];
    hr_status st = wv_config_new(&w->verifier, &p, err, sizeof err);
    if (st == HR_OK)
        goto out;
    static const char first[] = "verify.secrets_env[0]";
    if (single && strncmp(err, first, strlen(first)) == 0)
        snprintf(line, sizeof line, "verify.%s%s", single, err + strlen(first));
    else
        snprintf(line, sizeof line, "%s", *err ? err : "verify: cannot be compiled");
    /* path is webhooks.<source>.verify; the verifier's lines start at verify. */
    char base[PATH_MAX_LEN];
    snprintf(base, sizeof base, "%.*s", (int)(strlen(path) - strlen(".verify")), path);
    problem_line(c, base, path, st == HR_ERR_NOMEM ? "verify: out of memory" : line);
out:
    free(secrets);
    free(tokens);
}

/* webhooks.<source>.verify, asking the scheme table which keys the scheme
 * takes. Compiles the verifier when the section has no problem. */
static void parse_verify(ctx_t *c, hr_webhook_conf *w, const json_t *o, const char *path)
{
    char p[PATH_MAX_LEN];
    join(p, path, "verify");
    const json_t *v = get_obj(c, o, "verify", path);
    if (!v) {
        if (!json_object_get(o, "verify"))
            problem(c, p, "is required");
        return;
    }
    char sp[PATH_MAX_LEN];
    join(sp, p, "scheme");
    if (!json_object_get(v, "scheme")) {
        problem(c, sp, "is required");
        return;
    }
    const char *schemes[WV_SCHEME_COUNT + 1];
    for (int i = 0; i < WV_SCHEME_COUNT; i++)
        schemes[i] = wv_scheme_name((wv_scheme)i);
    schemes[WV_SCHEME_COUNT] = NULL;
    int scheme = get_enum(c, v, "scheme", p, schemes, -1);
    if (scheme < 0)
        return;
    size_t before = c->probs->n;
    w->scheme = (wv_scheme)scheme;
    const wv_scheme_info *info = w->scheme_info = wv_scheme_get(w->scheme);

    const char *allowed[32];
    size_t na = 0;
    allowed[na++] = "scheme";
    for (const char *const *k = info->config_keys; *k && na + 1 < sizeof allowed / sizeof *allowed;
         k++)
        allowed[na++] = *k;
    allowed[na] = NULL;
    check_keys(c, v, p, allowed);
    w->tolerance_s = wv_scheme_has_key(info, "tolerance_s")
                         ? (int)get_int(c, v, "tolerance_s", p, 1, 86400, WV_TOLERANCE_DEFAULT)
                         : WV_TOLERANCE_DEFAULT;
    w->replay_window_s = wv_scheme_has_key(info, "replay_window_s")
                             ? (int)get_int(c, v, "replay_window_s", p, 0, 86400, 300)
                             : 0;

    if (wv_scheme_has_key(info, "tokens_sha256")) {
        get_strv(c, v, "tokens_sha256", p, &w->tokens_sha256, &w->ntokens_sha256, check_hex64);
        char **names;
        size_t nn;
        char tp[PATH_MAX_LEN];
        join(tp, p, "tokens_env");
        if (get_strv(c, v, "tokens_env", p, &names, &nn, NULL) && nn) {
            w->tokens = calloc(nn, sizeof(char *));
            for (size_t i = 0; w->tokens && i < nn; i++) {
                char ep[PATH_MAX_LEN];
                join_idx(ep, tp, i);
                char *s = env_secret(c, ep, names[i]);
                if (s)
                    w->tokens[w->ntokens++] = s;
            }
        }
        free_strv(names, nn);
        if (no_entries(json_object_get(v, "tokens_sha256")) &&
            no_entries(json_object_get(v, "tokens_env")))
            problem(c, p, "%s needs tokens_sha256 or tokens_env", info->name);
    }

    /* Secrets: secret | secret_env | secrets_env (several, for rotation). */
    const char *single = NULL;
    if (wv_scheme_has_key(info, "secret_env")) {
        bool present;
        char *one = get_secret(c, v, "secret", p, &present);
        single = json_object_get(v, "secret") ? "secret" : "secret_env";
        char **names = NULL;
        size_t nn = 0;
        char sep[PATH_MAX_LEN];
        join(sep, p, "secrets_env");
        get_strv(c, v, "secrets_env", p, &names, &nn, NULL);
        if (present && json_object_get(v, "secrets_env"))
            problem(c, p, "give secret_env or secrets_env, not both");
        w->secrets = calloc(nn + 1, sizeof(char *));
        if (w->secrets) {
            if (one)
                w->secrets[w->nsecrets++] = one;
            else
                free(one);
            for (size_t i = 0; i < nn; i++) {
                char ep[PATH_MAX_LEN];
                join_idx(ep, sep, i);
                char *s = env_secret(c, ep, names[i]);
                if (s)
                    w->secrets[w->nsecrets++] = s;
            }
        } else {
            free(one);
        }
        free_strv(names, nn);
        if (!present)
            single = NULL;
        if (!present && no_entries(json_object_get(v, "secrets_env")))
            problem(c, p, "%s needs secret_env or secrets_env", info->name);
    }

    if (wv_scheme_has_key(info, "header")) {
        static const char *const encs[] = {"hex", "base64", NULL};
        w->header = get_str(c, v, "header", p, NULL);
        char hp[PATH_MAX_LEN];
        join(hp, p, "header");
        if (!w->header && !json_object_get(v, "header"))
            problem(c, hp, "is required for %s", info->name);
        w->encoding = get_enum(c, v, "encoding", p, encs, 0) == 1 ? WV_ENC_BASE64 : WV_ENC_HEX;
        w->prefix = get_str(c, v, "prefix", p, NULL);
    }
    if (c->probs->n == before)
        compile_verifier(c, w, p, single);
}

static void parse_webhook(ctx_t *c, hr_webhook_conf *w, const char *name, const json_t *o,
                          const char *path)
{
    static const char *const keys[] = {"verify",   "subject", "type",           "id",
                                       "delivery", "publish", "max_body_bytes", "content_types",
                                       NULL};
    static const char *const deliveries[] = {"auto", "jetstream", "core", NULL};
    w->name = strdup(name);
    check_keys(c, o, path, keys);
    char p[PATH_MAX_LEN];

    w->subject = get_str(c, o, "subject", path, NULL);
    join(p, path, "subject");
    if (!w->subject && !json_object_get(o, "subject"))
        problem(c, p, "is required");
    else if (w->subject)
        w->subject_tmpl = compile_template(c, p, w->subject, true);
    w->type = get_str(c, o, "type", path, NULL);
    if (w->type) {
        join(p, path, "type");
        w->type_tmpl = compile_template(c, p, w->type, false);
    }
    w->id = get_str(c, o, "id", path, NULL);
    if (w->id) {
        join(p, path, "id");
        w->id_tmpl = compile_template(c, p, w->id, false);
    }
    w->delivery = (hr_delivery)get_enum(c, o, "delivery", path, deliveries, 0);
    w->max_body_bytes = get_int(c, o, "max_body_bytes", path, 1, 67108864, 1048576);
    get_strv(c, o, "content_types", path, &w->content_types, &w->ncontent_types,
             check_content_type);
    json_t *pub = json_object_get(o, "publish");
    if (pub) {
        join(p, path, "publish");
        if (check_allow_deny(c, pub, p)) {
            w->publish = json_incref(pub);
            compile_publish(c, w, p);
        }
    }
    parse_verify(c, w, o, path);
    w->templates_read_body = whtmpl_needs_json(w->subject_tmpl) ||
                             whtmpl_needs_json(w->type_tmpl) || whtmpl_needs_json(w->id_tmpl);
    w->parse_body = w->templates_read_body ||
                    wv_scheme_reads_body(w->scheme_info, w->id != NULL, w->type != NULL);
}

static void parse_webhooks(ctx_t *c, hr_config *cfg, const json_t *root)
{
    const json_t *o = get_obj(c, root, "webhooks", "");
    if (!o)
        return;
    size_t n = json_object_size(o);
    cfg->webhooks = calloc(n ? n : 1, sizeof *cfg->webhooks);
    if (!cfg->webhooks)
        return;
    const char *name;
    json_t *src;
    json_object_foreach((json_t *)o, name, src)
    {
        char p[PATH_MAX_LEN];
        join(p, "webhooks", name);
        if (!check_name(c, p, name))
            continue;
        if (!json_is_object(src)) {
            problem(c, p, "must be an object");
            continue;
        }
        parse_webhook(c, &cfg->webhooks[cfg->nwebhooks++], name, src, p);
    }
}

static void parse_publish_api(ctx_t *c, hr_config *cfg, const json_t *root)
{
    static const char *const keys[] = {"api_keys", "max_body_bytes", NULL};
    const json_t *o = get_obj(c, root, "publish_api", "");
    if (o)
        check_keys(c, o, "publish_api", keys);
    cfg->publish_max_body_bytes =
        get_int(c, o, "max_body_bytes", "publish_api", 1, 67108864, 1048576);
    json_t *arr = o ? json_object_get(o, "api_keys") : NULL;
    if (!arr)
        return;
    if (!json_is_array(arr)) {
        problem(c, "publish_api.api_keys", "must be an array of {name, sha256, roles}");
        return;
    }
    size_t n = json_array_size(arr);
    cfg->api_keys = calloc(n ? n : 1, sizeof *cfg->api_keys);
    if (!cfg->api_keys)
        return;
    static const char *const kkeys[] = {"name", "sha256", "roles", NULL};
    for (size_t i = 0; i < n; i++) {
        char p[PATH_MAX_LEN];
        snprintf(p, sizeof p, "publish_api.api_keys[%zu]", i);
        json_t *k = json_array_get(arr, i);
        if (!json_is_object(k)) {
            problem(c, p, "must be an object");
            continue;
        }
        check_keys(c, k, p, kkeys);
        hr_api_key *ak = &cfg->api_keys[cfg->napi_keys++];
        ak->name = get_str(c, k, "name", p, NULL);
        char fp[PATH_MAX_LEN];
        join(fp, p, "name");
        if (!ak->name && !json_object_get(k, "name"))
            problem(c, fp, "is required");
        char *h = get_str(c, k, "sha256", p, NULL);
        join(fp, p, "sha256");
        if (!h && !json_object_get(k, "sha256"))
            problem(c, fp, "is required");
        if (h && check_hex64(c, fp, h))
            memcpy(ak->sha256, h, 65);
        free(h);
        get_strv(c, k, "roles", p, &ak->roles, &ak->nroles, check_name);
        join(fp, p, "roles");
        if (!json_object_get(k, "roles"))
            problem(c, fp, "is required");
    }
}

static void parse_history(ctx_t *c, hr_config *cfg, const json_t *root)
{
    json_t *arr = json_object_get(root, "history");
    if (!arr)
        return;
    if (!json_is_array(arr)) {
        problem(c, "history", "must be an array of {stream, subjects}");
        return;
    }
    size_t n = json_array_size(arr);
    cfg->history = calloc(n ? n : 1, sizeof *cfg->history);
    if (!cfg->history)
        return;
    static const char *const keys[] = {"stream", "subjects", NULL};
    for (size_t i = 0; i < n; i++) {
        char p[PATH_MAX_LEN], fp[PATH_MAX_LEN];
        snprintf(p, sizeof p, "history[%zu]", i);
        json_t *h = json_array_get(arr, i);
        if (!json_is_object(h)) {
            problem(c, p, "must be an object");
            continue;
        }
        check_keys(c, h, p, keys);
        hr_history_conf *hc = &cfg->history[cfg->nhistory++];
        hc->stream = get_str(c, h, "stream", p, NULL);
        join(fp, p, "stream");
        if (!hc->stream && !json_object_get(h, "stream"))
            problem(c, fp, "is required");
        else if (hc->stream && strpbrk(hc->stream, " \t.*>/\\"))
            problem(c, fp, "is not a valid stream name");
        get_strv(c, h, "subjects", p, &hc->subjects, &hc->nsubjects, check_pattern);
        join(fp, p, "subjects");
        if (!json_object_get(h, "subjects"))
            problem(c, fp, "is required");
    }
}

static void get_rate(ctx_t *c, const json_t *o, const char *key, hr_rate *out)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return;
    char p[PATH_MAX_LEN];
    join(p, "limits", key);
    if (!json_is_object(v)) {
        problem(c, p, "must be {\"rate_per_s\": number, \"burst\": integer}");
        return;
    }
    static const char *const keys[] = {"rate_per_s", "burst", NULL};
    check_keys(c, v, p, keys);
    json_t *r = json_object_get(v, "rate_per_s");
    char rp[PATH_MAX_LEN];
    join(rp, p, "rate_per_s");
    if (!json_is_number(r) || json_number_value(r) <= 0 || json_number_value(r) > 1e6) {
        problem(c, rp, "must be a number above 0 and at most 1000000");
        return;
    }
    out->rate_per_s = json_number_value(r);
    out->burst = (int)get_int(c, v, "burst", p, 1, 1000000, (int64_t)(out->rate_per_s + 0.999));
    out->on = true;
}

static void parse_limits(ctx_t *c, hr_config *cfg, const json_t *root)
{
    static const char *const keys[] = {
        "ws_upgrades_per_ip",          "http_requests_per_ip",      "ws_messages_per_session",
        "max_ws_connections",          "max_ws_connections_per_ip", "max_http_connections",
        "max_http_connections_per_ip", "max_buffered_body_bytes",   NULL};
    const json_t *o = get_obj(c, root, "limits", "");
    cfg->max_http_connections = get_int(c, o, "max_http_connections", "limits", 1, 1000000, 1000);
    cfg->max_http_connections_per_ip =
        get_int(c, o, "max_http_connections_per_ip", "limits", 1, 1000000, 0);
    cfg->max_buffered_body_bytes = get_int(c, o, "max_buffered_body_bytes", "limits", 65536,
                                           INT64_C(68719476736), 64 * 1024 * 1024);
    if (!o)
        return;
    check_keys(c, o, "limits", keys);
    get_rate(c, o, "ws_upgrades_per_ip", &cfg->ws_upgrades_per_ip);
    get_rate(c, o, "http_requests_per_ip", &cfg->http_requests_per_ip);
    get_rate(c, o, "ws_messages_per_session", &cfg->ws_messages_per_session);
    cfg->max_ws_connections = get_int(c, o, "max_ws_connections", "limits", 1, 10000000, 0);
    cfg->max_ws_connections_per_ip =
        get_int(c, o, "max_ws_connections_per_ip", "limits", 1, 10000000, 0);
}

hr_config *config_from_json(const json_t *root, config_env_fn env, config_problems *probs)
{
    ctx_t c = {probs, env};
    size_t before = probs->n;
    hr_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg) {
        problem(&c, "", "out of memory");
        return NULL;
    }
    json_t *empty = NULL;
    if (!root)
        root = empty = json_object();
    if (!json_is_object(root)) {
        problem(&c, "", "the configuration must be a JSON object");
        config_free(cfg);
        return NULL;
    }
    static const char *const keys[] = {
        "http",        "ws",      "nats",   "auth", "permissions",        "webhooks",
        "publish_api", "history", "limits", "log",  "shutdown_timeout_s", NULL};
    check_keys(&c, root, "", keys);
    parse_http(&c, cfg, root);
    parse_ws(&c, cfg, root);
    parse_nats(&c, cfg, root);
    parse_jwt(&c, cfg, root);
    parse_permissions(&c, cfg, root);
    parse_webhooks(&c, cfg, root);
    parse_publish_api(&c, cfg, root);
    parse_history(&c, cfg, root);
    parse_limits(&c, cfg, root);

    static const char *const log_keys[] = {"level", NULL};
    static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
    const json_t *lg = get_obj(&c, root, "log", "");
    if (lg)
        check_keys(&c, lg, "log", log_keys);
    cfg->log_level = get_enum(&c, lg, "level", "log", levels, HLOG_INFO);
    const char *lvl_env = env("HERALD_LOG_LEVEL");
    if (lvl_env && *lvl_env) {
        log_level l;
        if (log_level_parse(lvl_env, &l))
            cfg->log_level = (int)l;
        else
            problem(&c, "HERALD_LOG_LEVEL", "must be one of debug, info, warn, error");
    }
    cfg->shutdown_timeout_s = (int)get_int(&c, root, "shutdown_timeout_s", "", 1, 300, 10);

    /* Cross-checks. */
    for (size_t i = 0; i < cfg->napi_keys; i++)
        for (size_t r = 0; cfg->perms && r < cfg->api_keys[i].nroles; r++)
            if (!perms_table_has_role(cfg->perms, cfg->api_keys[i].roles[r])) {
                char p[PATH_MAX_LEN];
                snprintf(p, sizeof p, "publish_api.api_keys[%zu].roles[%zu]", i, r);
                problem(&c, p, "unknown role \"%s\"", cfg->api_keys[i].roles[r]);
            }
    if (cfg->http_listen.port != 0 && cfg->http_listen.port == cfg->ws_listen.port &&
        strcmp(cfg->http_listen.host, cfg->ws_listen.host) == 0)
        problem(&c, "ws.listen", "must differ from http.listen");

    json_decref(empty);
    if (probs->n > before) {
        config_free(cfg);
        return NULL;
    }
    return cfg;
}

hr_config *config_load_buffer(const char *buf, size_t len, const char *name, config_env_fn env,
                              config_problems *probs)
{
    ctx_t c = {probs, env};
    json_error_t err;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &err);
    if (!root) {
        problem(&c, "", "invalid JSON in %s at line %d, column %d: %s", name, err.line, err.column,
                err.text);
        return NULL;
    }
    hr_config *cfg = config_from_json(root, env, probs);
    json_decref(root);
    return cfg;
}

hr_config *config_load(const char *path, config_env_fn env, config_problems *probs)
{
    if (!path)
        return config_from_json(NULL, env, probs);
    ctx_t c = {probs, env};
    FILE *f = fopen(path, "rb");
    if (!f) {
        problem(&c, "", "cannot read config file %s: %s", path, strerror(errno));
        return NULL;
    }
    json_error_t err;
    json_t *root = json_loadf(f, JSON_REJECT_DUPLICATES, &err);
    fclose(f);
    if (!root) {
        problem(&c, "", "invalid JSON in %s at line %d, column %d: %s", path, err.line, err.column,
                err.text);
        return NULL;
    }
    hr_config *cfg = config_from_json(root, env, probs);
    json_decref(root);
    return cfg;
}

static void free_webhook(hr_webhook_conf *w)
{
    wv_config_free(w->verifier);
    whtmpl_free(w->subject_tmpl);
    whtmpl_free(w->type_tmpl);
    whtmpl_free(w->id_tmpl);
    perms_set_free(w->publish_perms);
    perms_table_free(w->publish_table);
    free(w->name);
    free_strv(w->secrets, w->nsecrets);
    free(w->header);
    free(w->prefix);
    free_strv(w->tokens_sha256, w->ntokens_sha256);
    free_strv(w->tokens, w->ntokens);
    free(w->subject);
    free(w->type);
    free(w->id);
    json_decref(w->publish);
    free_strv(w->content_types, w->ncontent_types);
}

void config_free(hr_config *c)
{
    if (!c)
        return;
    free(c->static_dir);
    free(c->trusted_proxies);
    free_strv(c->allowed_origins, c->nallowed_origins);
    free(c->ws_auth_cookie);
    free_strv(c->nats_servers, c->nnats_servers);
    free(c->nats_name);
    free(c->nats_user);
    free(c->nats_password);
    free(c->nats_token);
    free(c->nats_creds_file);
    for (size_t i = 0; i < c->njwt_keys; i++) {
        free(c->jwt_keys[i].kid);
        free(c->jwt_keys[i].secret);
        free(c->jwt_keys[i].public_key_file);
    }
    free(c->jwt_keys);
    free(c->jwt_issuer);
    free(c->jwt_audience);
    free(c->jwt_roles_claim);
    hjwt_verifier_free(c->jwt);
    perms_table_free(c->perms);
    for (size_t i = 0; i < c->nwebhooks; i++)
        free_webhook(&c->webhooks[i]);
    free(c->webhooks);
    for (size_t i = 0; i < c->napi_keys; i++) {
        free(c->api_keys[i].name);
        free_strv(c->api_keys[i].roles, c->api_keys[i].nroles);
    }
    free(c->api_keys);
    for (size_t i = 0; i < c->nhistory; i++) {
        free(c->history[i].stream);
        free_strv(c->history[i].subjects, c->history[i].nsubjects);
    }
    free(c->history);
    free(c);
}
