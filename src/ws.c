/* ws: lws context, service thread, upgrade handling. */
#include "herald/ws.h"

#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "herald/log.h"
#include "herald/netutil.h"

struct ws_server {
    ws_deps deps;
    struct lws_context *ctx;
    pthread_t thread;
    bool thread_started;
    _Atomic bool stopping; /* set by ws_stop; read by the service thread */
    int64_t stop_deadline_ms;
    char iface[64];
};

static void on_lws_log(int level, const char *line)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s", line);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_msg(level == LLL_ERR ? LOG_WARN : LOG_DEBUG, "websocket library", "{s:s}", "detail", msg);
}

static int cb_http(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len)
{
    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return -1; /* never serve WebSocket sessions on the HTTP protocol */
    case LWS_CALLBACK_HTTP:
        /* Plain HTTP on the WebSocket port: not an upgrade. */
        lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL);
        return -1;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static int cb_herald(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len)
{
    return 0;
}

static const struct lws_protocols protocols[] = {
    {"http-only", cb_http, 0, 0, 0, NULL, 0},
    {"herald.v1", cb_herald, 0, 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* herald.v1 is the default protocol when the client offers none. */
static const struct lws_protocol_vhost_options pvo_default = {NULL, NULL, "default", "1"};
static const struct lws_protocol_vhost_options pvo = {NULL, &pvo_default, "herald.v1", ""};

/* Disable lws's built-in idle hangup: herald runs its own ping timer. */
static const lws_retry_bo_t no_idle = {0};

static void *service_main(void *arg)
{
    ws_server *s = arg;
    while (lws_service(s->ctx, 0) >= 0) {
        if (atomic_load(&s->stopping))
            break;
    }
    return NULL;
}

hr_status ws_start(ws_server **out, const ws_deps *deps, char *err, size_t errlen)
{
    *out = NULL;
    ws_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return HR_ERR_NOMEM;
    }
    s->deps = *deps;
    const hr_config *cfg = deps->cfg;

    /* lws reports a busy port only in its own log: probe it first for a clear message. */
    int probe = net_listen(&cfg->ws_listen, err, errlen);
    if (probe < 0) {
        free(s);
        return HR_ERR_LISTEN;
    }
    close(probe);

    lws_set_log_level(LLL_ERR | LLL_WARN, on_lws_log);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = cfg->ws_listen.port;
    if (strcmp(cfg->ws_listen.host, "0.0.0.0") != 0 && strcmp(cfg->ws_listen.host, "::") != 0) {
        snprintf(s->iface, sizeof s->iface, "%s", cfg->ws_listen.host);
        info.iface = s->iface;
    }
    info.protocols = protocols;
    info.pvo = &pvo;
    info.retry_and_idle_policy = &no_idle;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_DISABLE_IPV6 * 0;
    info.max_http_header_data = 16384;
    info.user = s;
    s->ctx = lws_create_context(&info);
    if (!s->ctx) {
        snprintf(err, errlen, "cannot start the WebSocket listener on %s:%d", cfg->ws_listen.host,
                 cfg->ws_listen.port);
        free(s);
        return HR_ERR_LISTEN;
    }
    if (pthread_create(&s->thread, NULL, service_main, s) != 0) {
        snprintf(err, errlen, "cannot start the WebSocket service thread");
        lws_context_destroy(s->ctx);
        free(s);
        return HR_ERR_IO;
    }
    s->thread_started = true;
    *out = s;
    return HR_OK;
}

void ws_stop(ws_server *s, int timeout_ms)
{
    if (!s)
        return;
    s->stop_deadline_ms = net_now_ms() + timeout_ms;
    atomic_store(&s->stopping, true);
    lws_cancel_service(s->ctx);
    if (s->thread_started)
        pthread_join(s->thread, NULL);
    lws_context_destroy(s->ctx);
    free(s);
}
