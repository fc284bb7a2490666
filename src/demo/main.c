/* herald-demo: the demo publisher `./herald.sh run` starts. It creates the
 * DEPLOYMENTS JetStream stream if missing, simulates deployments of one demo
 * user (deploysim.c) and publishes each status change on
 * deployments.{user}.{id}.status as {"id","name","status","progress","updated_at"}.
 * With --token-file it also mints a development JWT for that user from the
 * dev secret (HERALD_DEV_JWT_SECRET) and keeps the file fresh, so the
 * dashboard connects with no manual step. Local development only: a real
 * frontend gets its JWT from its own backend. */
#include "deploysim.h"

#include <errno.h>
#include <stdarg.h>
#include <getopt.h>
#include <jansson.h>
#include <jwt.h>
#include <nats/nats.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_SLOTS 16

typedef struct {
    const char *nats_url;   /* comma-separated URLs */
    const char *user;       /* the demo user's `sub` */
    const char *stream;     /* created when missing */
    const char *token_file; /* NULL: no token minted */
    const char *secret_env; /* env var holding the HS256 dev secret */
    int token_ttl_s;        /* lifetime of each minted token */
    int interval_ms;        /* one simulation step */
    int slots;              /* deployments running at once */
    int max_age_s;          /* the stream's max_age when this program creates it */
    double fail_rate;       /* per-step chance of failing while building/deploying */
    uint64_t seed;          /* 0: from the clock */
} demo_opts;

typedef struct {
    ds_deployment d;
    bool used;    /* holds a deployment (running or finished) */
    int cooldown; /* steps to wait after it finished before the next one */
} slot;

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("herald-demo: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void rfc3339_now(char *buf, size_t n)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t k = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + k, n - k, ".%03dZ", (int)(tv.tv_usec / 1000));
}

/* Sleep up to ms, returning early once a stop was requested. */
static void nap(int ms)
{
    while (ms > 0 && !stop_requested) {
        int step = ms < 100 ? ms : 100;
        struct timespec ts = {0, (long)step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

/* ---- development token -------------------------------------------------- */

/* Mint an HS256 token for `user` with role "user" and write
 * {"token","sub","expires"} to path atomically. Returns 0 or -1. */
static int write_dev_token(const demo_opts *o, const char *secret)
{
    jwt_t *jwt = NULL;
    char *tok = NULL, *text = NULL, tmp[4096];
    json_t *doc = NULL;
    int rc = -1;
    time_t now = time(NULL);
    if (jwt_new(&jwt) != 0)
        goto fail;
    if (jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret, (int)strlen(secret)) ||
        jwt_add_grant(jwt, "sub", o->user) || jwt_add_grant_int(jwt, "iat", now) ||
        jwt_add_grant_int(jwt, "exp", now + o->token_ttl_s) ||
        jwt_add_grants_json(jwt, "{\"roles\":[\"user\"]}"))
        goto fail;
    tok = jwt_encode_str(jwt);
    if (!tok)
        goto fail;
    doc = json_pack("{s:s, s:s, s:I}", "token", tok, "sub", o->user, "expires",
                    (json_int_t)(now + o->token_ttl_s));
    text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    if (!text)
        goto fail;
    snprintf(tmp, sizeof tmp, "%s.tmp", o->token_file);
    FILE *f = fopen(tmp, "w");
    if (!f)
        goto fail;
    int bad = fputs(text, f) < 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, o->token_file) != 0) {
        unlink(tmp);
        goto fail;
    }
    rc = 0;
fail:
    if (rc)
        logf_("cannot write the development token to %s: %s", o->token_file, strerror(errno));
    free(text);
    json_decref(doc);
    free(tok);
    jwt_free(jwt);
    return rc;
}

/* ---- NATS ----------------------------------------------------------------- */

/* Create the stream (subjects deployments.>) unless it exists. */
static natsStatus ensure_stream(jsCtx *js, const demo_opts *o)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, js, o->stream, NULL, &jerr);
    if (s == NATS_OK) {
        jsStreamInfo_Destroy(si);
        return NATS_OK;
    }
    if (s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr)
        return s;
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char *subjects[] = {"deployments.>"};
    cfg.Name = o->stream;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.MaxAge = (int64_t)o->max_age_s * 1000000000LL;
    s = js_AddStream(&si, js, &cfg, NULL, &jerr);
    if (s == NATS_OK) {
        logf_("created stream %s (deployments.>, max_age %ds)", o->stream, o->max_age_s);
        jsStreamInfo_Destroy(si);
    }
    return s;
}

static natsStatus publish_status(jsCtx *js, const demo_opts *o, const ds_deployment *d)
{
    char subject[256], ts[40];
    rfc3339_now(ts, sizeof ts);
    snprintf(subject, sizeof subject, "deployments.%s.%s.status", o->user, d->id);
    json_t *doc = json_pack("{s:s, s:s, s:s, s:i, s:s}", "id", d->id, "name", d->name, "status",
                            ds_status_str(d->status), "progress", d->progress, "updated_at", ts);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text)
        return NATS_NO_MEMORY;
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_Publish(&pa, js, subject, text, (int)strlen(text), NULL, &jerr);
    jsPubAck_Destroy(pa);
    free(text);
    return s;
}

static natsStatus connect_nats(natsConnection **nc, const demo_opts *o)
{
    natsOptions *opts = NULL;
    natsStatus s = natsOptions_Create(&opts);
    if (s == NATS_OK)
        s = natsOptions_SetURL(opts, o->nats_url);
    if (s == NATS_OK)
        s = natsOptions_SetName(opts, "herald-demo");
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(opts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(opts, 250);
    /* Wait for nats-server when it is still starting, as under ./herald.sh run. */
    for (int tries = 0; s == NATS_OK && !stop_requested; tries++) {
        s = natsConnection_Connect(nc, opts);
        if (s != NATS_NO_SERVER || tries >= 100)
            break;
        s = NATS_OK;
        nap(100);
    }
    natsOptions_Destroy(opts);
    return s;
}

/* ---- simulation loop -------------------------------------------------------- */

static const char *const services[] = {"web", "api", "worker", "billing", "search", "auth"};
#define NSERVICES (sizeof services / sizeof services[0])

static void start_slot(slot *sl, ds_rng *rng, uint32_t *serial)
{
    const char *svc = services[(size_t)(ds_rng_next(rng) * NSERVICES) % NSERVICES];
    ds_start(&sl->d, svc, (*serial)++);
    sl->used = true;
    sl->cooldown = 2 + (int)(ds_rng_next(rng) * 4);
}

static int run(const demo_opts *o, const char *secret)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    int rc = 1;
    natsStatus s = connect_nats(&nc, o);
    if (s == NATS_OK)
        s = natsConnection_JetStream(&js, nc, NULL);
    if (s == NATS_OK)
        s = ensure_stream(js, o);
    if (s != NATS_OK) {
        if (!stop_requested)
            logf_("NATS at %s: %s", o->nats_url, natsStatus_GetText(s));
        rc = stop_requested ? 0 : 1;
        goto done;
    }

    ds_rng rng;
    ds_rng_seed(&rng, o->seed ? o->seed : (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid());
    uint32_t serial = (uint32_t)(ds_rng_next(&rng) * 0xffffff);
    slot slots[MAX_SLOTS] = {0};
    time_t token_due = 0;
    logf_("publishing deployments.%s.*.status every %d ms (stream %s)", o->user, o->interval_ms,
          o->stream);
    /* Start with deployments at different stages, so the page has something to show. */
    for (int i = 0; i < o->slots; i++) {
        start_slot(&slots[i], &rng, &serial);
        for (int k = (int)(ds_rng_next(&rng) * 4); k > 0; k--)
            ds_step(&slots[i].d, &rng, 0);
        if (publish_status(js, o, &slots[i].d) != NATS_OK)
            logf_("publish failed (is JetStream up?)");
    }
    while (!stop_requested) {
        if (o->token_file && time(NULL) >= token_due) {
            if (write_dev_token(o, secret) == 0)
                token_due = time(NULL) + o->token_ttl_s * 2 / 3;
            else
                token_due = time(NULL) + 5;
        }
        nap(o->interval_ms);
        for (int i = 0; i < o->slots && !stop_requested; i++) {
            slot *sl = &slots[i];
            bool changed = false;
            if (ds_done(&sl->d)) {
                if (--sl->cooldown > 0)
                    continue;
                start_slot(sl, &rng, &serial);
                changed = true;
            } else if (ds_rng_next(&rng) < 0.6) {
                changed = ds_step(&sl->d, &rng, o->fail_rate);
            }
            if (changed && (s = publish_status(js, o, &sl->d)) != NATS_OK)
                logf_("publish %s: %s", sl->d.id, natsStatus_GetText(s));
        }
    }
    /* Deployments still running would otherwise look stuck in every snapshot
     * until the stream ages them out: this run ends them. */
    for (int i = 0; i < o->slots; i++) {
        if (slots[i].used && !ds_done(&slots[i].d)) {
            slots[i].d.status = DS_FAILED;
            if ((s = publish_status(js, o, &slots[i].d)) != NATS_OK)
                logf_("publish %s: %s", slots[i].d.id, natsStatus_GetText(s));
        }
    }
    rc = 0;
done:
    jsCtx_Destroy(js);
    if (nc) {
        natsConnection_Close(nc);
        natsConnection_Destroy(nc);
    }
    return rc;
}

static void usage(FILE *f)
{
    fputs("usage: herald-demo [--nats URLS] [--user SUB] [--stream NAME] [--token-file PATH]\n"
          "                   [--secret-env VAR] [--token-ttl-s N] [--interval-ms N] [--slots N]\n"
          "                   [--fail-rate P] [--max-age-s N] [--seed N]\n",
          f);
}

static bool valid_token(const char *s)
{
    if (!*s || strlen(s) > 64)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_'))
            return false;
    return true;
}

/* Parse argv into o; returns 0, or 2 after printing the problem. */
static int parse_args(int argc, char **argv, demo_opts *o)
{
    static const struct option longopts[] = {
        {"nats", required_argument, NULL, 'n'},
        {"user", required_argument, NULL, 'u'},
        {"stream", required_argument, NULL, 's'},
        {"token-file", required_argument, NULL, 't'},
        {"secret-env", required_argument, NULL, 'e'},
        {"token-ttl-s", required_argument, NULL, 'T'},
        {"interval-ms", required_argument, NULL, 'i'},
        {"slots", required_argument, NULL, 'c'},
        {"fail-rate", required_argument, NULL, 'f'},
        {"max-age-s", required_argument, NULL, 'a'},
        {"seed", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'n':
            o->nats_url = optarg;
            break;
        case 'u':
            o->user = optarg;
            break;
        case 's':
            o->stream = optarg;
            break;
        case 't':
            o->token_file = optarg;
            break;
        case 'e':
            o->secret_env = optarg;
            break;
        case 'T':
            o->token_ttl_s = atoi(optarg);
            break;
        case 'i':
            o->interval_ms = atoi(optarg);
            break;
        case 'c':
            o->slots = atoi(optarg);
            break;
        case 'f':
            o->fail_rate = atof(optarg);
            break;
        case 'a':
            o->max_age_s = atoi(optarg);
            break;
        case 'S':
            o->seed = strtoull(optarg, NULL, 10);
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc || !valid_token(o->user) || !valid_token(o->stream) || o->token_ttl_s < 10 ||
        o->interval_ms < 10 || o->slots < 1 || o->slots > MAX_SLOTS || o->fail_rate < 0 ||
        o->fail_rate > 1 || o->max_age_s < 1) {
        usage(stderr);
        return 2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *addr = getenv("NATS_ADDR");
    demo_opts o = {
        .nats_url = addr && *addr ? addr : "nats://127.0.0.1:4222",
        .user = "demo",
        .stream = "DEPLOYMENTS",
        .secret_env = "HERALD_DEV_JWT_SECRET",
        .token_ttl_s = 900,
        .interval_ms = 1000,
        .slots = 4,
        .max_age_s = 600,
        .fail_rate = 0.06,
    };
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : rc;
    const char *secret = NULL;
    if (o.token_file) {
        secret = getenv(o.secret_env);
        if (!secret || !*secret) {
            logf_("--token-file needs the dev secret in $%s", o.secret_env);
            return 2;
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    rc = run(&o, secret);
    if (o.token_file)
        unlink(o.token_file); /* the token is only for this run */
    nats_Close();
    return rc;
}
