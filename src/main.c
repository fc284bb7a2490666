/* main: command line, startup order, signals and shutdown order. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "herald/bus.h"
#include "herald/config.h"
#include "herald/http.h"
#include "herald/lifecycle.h"
#include "herald/log.h"
#include "herald/metrics.h"
#include "herald/netutil.h"
#include "herald/ws.h"

typedef struct {
    hr_config *cfg;
    metrics *metrics;
    bus *bus;
    http_server *http;
    ws_server *ws;
    int64_t started_ms;
    int64_t deadline; /* shutdown: every step ends by it (lifecycle.h) */
    atomic_bool done;
} app;

static void usage(FILE *f)
{
    fprintf(f, "usage: herald [--config FILE]   run (FILE also from HERALD_CONFIG)\n"
               "       herald --check-config FILE\n"
               "       herald --version\n");
}

static const char *env_lookup(const char *name)
{
    return getenv(name);
}

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The installed share/herald/<what>, or the source tree's copy when running
 * from the build tree (the binary sits next to CMakeCache.txt). */
static void default_data_dir(char *out, size_t len, const char *source_dir, const char *what)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            char probe[PATH_MAX + 32];
            snprintf(probe, sizeof probe, "%s/CMakeCache.txt", exe);
            if (access(probe, F_OK) == 0 && is_dir(source_dir)) {
                snprintf(out, len, "%s", source_dir);
                return;
            }
            snprintf(probe, sizeof probe, "%s/../share/herald/%s", exe, what);
            if (is_dir(probe)) {
                snprintf(out, len, "%s", probe);
                return;
            }
        }
    }
    snprintf(out, len, "/usr/local/share/herald/%s", what);
}

static void collect_uptime(void *ctx, char **b, size_t *l, size_t *cap)
{
    app *a = ctx;
    metrics_appendf(b, l, cap,
                    "# HELP herald_uptime_seconds Seconds since herald started.\n"
                    "# TYPE herald_uptime_seconds gauge\nherald_uptime_seconds %.3f\n",
                    (double)(clock_now_ms() - a->started_ms) / 1000.0);
}

static void *shutdown_main(void *arg)
{
    app *a = arg;
    /* Order: stop taking HTTP work and finish it; close WebSocket sessions
     * with 1001; then drain NATS, which nothing uses any more. Each step
     * ends by its share of the one deadline (what an earlier step leaves
     * unused goes to the later ones): HTTP at most 6/10 of it, the
     * sessions half of what is left, the NATS drain half of the rest (the
     * other half is for nats.c's threads to close). */
    http_stop(a->http, deadline_share(a->deadline, 6, 10));
    http_free(a->http);
    a->http = NULL;
    ws_stop(a->ws, deadline_share(a->deadline, 1, 2));
    bus_free(a->bus, deadline_share(a->deadline, 1, 2));
    a->bus = NULL;
    atomic_store(&a->done, true);
    return NULL;
}

/* The same load as startup: config_load compiles everything the listeners
 * use (verifiers, templates, permissions, the JWT verifier), so a
 * configuration that passes here fails at startup only for what it cannot
 * know -- ports in use, NATS unreachable. */
static int check_config(const char *path)
{
    config_problems probs = {0};
    hr_config *cfg = config_load(path, env_lookup, &probs);
    for (size_t i = 0; i < probs.n; i++)
        fprintf(stderr, "%s\n", probs.lines[i]);
    config_problems_free(&probs);
    if (!cfg)
        return 2;
    config_free(cfg);
    printf("%s: configuration OK\n", path);
    return 0;
}

/* Descriptors kept for herald's own use: listeners, the NATS connection,
 * event loops and their wake-up pipes, log and static files, and a client
 * connection being refused. */
#define FD_RESERVE 64

/* A connection the process has no descriptor for is not refused: it waits
 * unaccepted in the listen backlog, a hang for its client (and the probes).
 * So the connection limits must fit RLIMIT_NOFILE less a reserve: then one
 * beyond them is accepted while a descriptor is free and refused (HTTP:
 * closed at accept; WebSocket: 503 at the upgrade). A limit set above what
 * the descriptors allow is lowered, with a warning; an unset WebSocket
 * limit becomes what HTTP leaves (at least half), silently. */
static void fit_fd_limit(hr_config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
        rl.rlim_cur > (rlim_t)INT64_MAX / 4)
        return;
    int64_t avail = (int64_t)rl.rlim_cur - FD_RESERVE;
    if (avail < 16)
        avail = 16;
    int64_t half = avail / 2;
    int64_t http = cfg->max_http_connections > 0 ? cfg->max_http_connections : INT64_MAX / 4;
    int64_t ws = cfg->max_ws_connections > 0 ? cfg->max_ws_connections : INT64_MAX / 4;
    if (http + ws <= avail)
        return;
    if (http <= half)
        ws = avail - http;
    else if (ws <= half)
        http = avail - ws;
    else
        http = half, ws = avail - half;
    if (http != cfg->max_http_connections || cfg->max_ws_connections > 0)
        log_warn("connection limits lowered to fit the file-descriptor limit", "{s:I, s:I, s:I}",
                 "nofile", (json_int_t)rl.rlim_cur, "max_http_connections", (json_int_t)http,
                 "max_ws_connections", (json_int_t)ws);
    cfg->max_http_connections = http;
    cfg->max_ws_connections = ws;
}

int main(int argc, char **argv)
{
    const char *config_path = getenv("HERALD_CONFIG");
    if (config_path && !*config_path)
        config_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--version") == 0) {
            printf("herald %s\n", HERALD_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--check-config") == 0 && i + 1 < argc) {
            return check_config(argv[i + 1]);
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_path = argv[++i];
        } else {
            usage(stderr);
            return 2;
        }
    }

    config_problems probs = {0};
    hr_config *cfg = config_load(config_path, env_lookup, &probs);
    if (!cfg) {
        for (size_t i = 0; i < probs.n; i++)
            log_error("invalid configuration", "{s:s}", "problem", probs.lines[i]);
        config_problems_free(&probs);
        return 2;
    }
    log_set_level((log_level)cfg->log_level);
    fit_fd_limit(cfg);

    /* Signals are taken by sigwait in this thread only; every thread created
     * from here on inherits the mask. */
    /* A shell may start us with SIGINT ignored (background jobs); an ignored
     * signal never reaches sigwait, so restore the defaults first. */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    srand((unsigned)time(NULL) ^ (unsigned)getpid());

    app a = {.cfg = cfg, .started_ms = clock_now_ms()};
    int rc = 1;
    char err[256] = "";
    char static_dir[PATH_MAX], openapi_dir[PATH_MAX];
    if (cfg->static_dir)
        snprintf(static_dir, sizeof static_dir, "%s", cfg->static_dir);
    else
        default_data_dir(static_dir, sizeof static_dir, HERALD_SOURCE_STATIC_DIR, "static");
    const char *oa_env = getenv("HERALD_OPENAPI_DIR");
    if (oa_env && *oa_env)
        snprintf(openapi_dir, sizeof openapi_dir, "%s", oa_env);
    else
        default_data_dir(openapi_dir, sizeof openapi_dir, HERALD_SOURCE_OPENAPI_DIR, "openapi");

    a.metrics = metrics_new();
    if (!a.metrics)
        goto out;
    const char *version[] = {HERALD_VERSION};
    metrics_set(metrics_cell_get(metrics_gauge(a.metrics, "herald_build_info",
                                               "Build information; always 1.", "version"),
                                 version),
                1);
    metrics_add_collector(a.metrics, collect_uptime, &a);

    if (bus_new(&a.bus, cfg, a.metrics) != HR_OK)
        goto out;
    ws_deps wd = {cfg, a.bus, a.metrics};
    if (ws_start(&a.ws, &wd, err, sizeof err) != HR_OK) {
        log_error("cannot start the WebSocket listener", "{s:s}", "error", err);
        goto out;
    }
    http_deps hd = {cfg, a.bus, a.metrics, static_dir, openapi_dir};
    if (http_start(&a.http, &hd, err, sizeof err) != HR_OK) {
        log_error("cannot start the HTTP listener", "{s:s}", "error", err);
        goto out;
    }
    char http_url[128], ws_url[128];
    snprintf(http_url, sizeof http_url, "http://%s:%d/", cfg->http_listen.host, http_port(a.http));
    snprintf(ws_url, sizeof ws_url, "ws://%s:%d/v1/ws", cfg->ws_listen.host, cfg->ws_listen.port);
    log_info("herald started", "{s:s, s:s, s:s, s:s}", "version", HERALD_VERSION, "http", http_url,
             "ws", ws_url, "static_dir", static_dir);

    int sig = 0;
    while (sigwait(&sigs, &sig) != 0)
        ;
    log_info("shutting down", "{s:s, s:i}", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT",
             "timeout_s", cfg->shutdown_timeout_s);
    a.deadline = deadline_after_ms((int64_t)cfg->shutdown_timeout_s * 1000);
    int64_t deadline = a.deadline;
    pthread_t t;
    if (pthread_create(&t, NULL, shutdown_main, &a) != 0)
        _exit(1);
    struct timespec tick = {0, 50 * 1000 * 1000};
    while (!atomic_load(&a.done)) {
        if (sigtimedwait(&sigs, NULL, &tick) > 0) {
            log_warn("second signal: exiting at once", NULL);
            _exit(1);
        }
        if (clock_now_ms() > deadline) {
            log_warn("shutdown timeout reached: exiting", NULL);
            _exit(0);
        }
    }
    pthread_join(t, NULL);
    rc = 0;
    log_info("herald stopped", NULL);
out:
    http_free(a.http); /* stops at once if it is still running */
    ws_stop(a.ws, clock_now_ms());
    bus_free(a.bus, clock_now_ms());
    ws_free(a.ws); /* after bus_free: NATS callbacks point into the hub */
    metrics_free(a.metrics);
    config_free(cfg);
    return rc;
}
