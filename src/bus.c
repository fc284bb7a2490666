/* bus: the NATS connection, its state and its reconnect policy. */
#include "herald/bus.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "herald/lifecycle.h"
#include "herald/log.h"

struct bus {
    natsConnection *nc;
    natsOptions *opts;
    _Atomic int state;           /* bus_state */
    _Atomic uint64_t reconnects; /* successful reconnections */
    _Atomic int64_t max_payload;
    metrics_cell *m_connected, *m_reconnects;
    pthread_mutex_t closed_mu; /* with closed_cv: bus_free waits for the drain's close */
    pthread_cond_t closed_cv;  /* CLOCK_MONOTONIC; broadcast by on_closed */
    bool closed;               /* nats.c reported the connection closed (under closed_mu) */
};

const char *bus_state_str(bus_state s)
{
    static const char *const names[] = {"connecting", "connected", "reconnecting", "closed"};
    return (unsigned)s < 4 ? names[s] : "unknown";
}

static void set_state(bus *b, bus_state s)
{
    atomic_store(&b->state, (int)s);
    metrics_set(b->m_connected, s == BUS_CONNECTED);
}

static void note_server(bus *b, natsConnection *nc, const char *event)
{
    char url[256] = "";
    natsConnection_GetConnectedUrl(nc, url, sizeof url);
    b->max_payload = natsConnection_GetMaxPayload(nc);
    log_info(event, "{s:s, s:I}", "url", url, "reconnects", (json_int_t)b->reconnects);
}

static void on_connected(natsConnection *nc, void *closure)
{
    bus *b = closure;
    set_state(b, BUS_CONNECTED);
    note_server(b, nc, "nats connected");
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    bus *b = closure;
    if (atomic_load(&b->state) == BUS_CLOSED)
        return;
    bus_state prev = (bus_state)atomic_exchange(&b->state, BUS_RECONNECTING);
    metrics_set(b->m_connected, 0);
    /* One line per transition, not per retry. */
    if (prev == BUS_CONNECTED)
        log_warn("nats disconnected, reconnecting", NULL);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    bus *b = closure;
    atomic_fetch_add(&b->reconnects, 1);
    metrics_add(b->m_reconnects, 1);
    set_state(b, BUS_CONNECTED);
    note_server(b, nc, "nats reconnected");
}

static void on_closed(natsConnection *nc, void *closure)
{
    bus *b = closure;
    set_state(b, BUS_CLOSED);
    pthread_mutex_lock(&b->closed_mu);
    b->closed = true;
    pthread_cond_broadcast(&b->closed_cv);
    pthread_mutex_unlock(&b->closed_mu);
}

static void on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    log_warn("nats async error", "{s:s}", "error", natsStatus_GetText(err));
}

/* Capped exponential backoff: 100 ms doubling to 2 s, plus up to 25% jitter.
 * Called after each full pass over the server list. */
static int64_t reconnect_delay(natsConnection *nc, int attempts, void *closure)
{
    int64_t d = 100;
    for (int i = 1; i < attempts && d < 2000; i++)
        d *= 2;
    if (d > 2000)
        d = 2000;
    return d + (int64_t)(rand() % (int)(d / 4 + 1));
}

hr_status bus_new(bus **out, const hr_config *cfg, metrics *m)
{
    *out = NULL;
    bus *b = calloc(1, sizeof *b);
    if (!b)
        return HR_ERR_NOMEM;
    pthread_mutex_init(&b->closed_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->closed_cv, &ca);
    pthread_condattr_destroy(&ca);
    b->m_connected = metrics_cell0(
        metrics_gauge(m, "herald_nats_connected", "1 while the NATS connection is up.", NULL));
    b->m_reconnects = metrics_cell0(
        metrics_counter(m, "herald_nats_reconnects_total", "Successful NATS reconnections.", NULL));
    natsStatus s = natsOptions_Create(&b->opts);
    if (s == NATS_OK)
        s = natsOptions_SetServers(b->opts, (const char **)cfg->nats_servers,
                                   (int)cfg->nnats_servers);
    if (s == NATS_OK)
        s = natsOptions_SetName(b->opts, cfg->nats_name);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(b->opts, -1); /* forever (srvpool.c: <0 = unlimited) */
    if (s == NATS_OK)
        s = natsOptions_SetCustomReconnectDelay(b->opts, reconnect_delay, b);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectBufSize(b->opts, 0); /* 0 disables buffering in 3.4.1 */
    if (s == NATS_OK)
        s = natsOptions_SetRetryOnFailedConnect(b->opts, true, on_connected, b);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(b->opts, on_disconnected, b);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(b->opts, on_reconnected, b);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(b->opts, on_closed, b);
    if (s == NATS_OK)
        s = natsOptions_SetErrorHandler(b->opts, on_error, b);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(b->opts, 2000);
    /* One delivery pool instead of a thread per subscription: herald keeps
     * one subscription per distinct pattern, possibly thousands. */
    if (s == NATS_OK)
        s = nats_SetMessageDeliveryPoolSize(2);
    if (s == NATS_OK)
        s = natsOptions_UseGlobalMessageDelivery(b->opts, true);
    if (s == NATS_OK && cfg->nats_user)
        s = natsOptions_SetUserInfo(b->opts, cfg->nats_user, cfg->nats_password);
    if (s == NATS_OK && cfg->nats_token)
        s = natsOptions_SetToken(b->opts, cfg->nats_token);
    if (s == NATS_OK && cfg->nats_creds_file)
        s = natsOptions_SetUserCredentialsFromFiles(b->opts, cfg->nats_creds_file, NULL);
    if (s != NATS_OK) {
        log_error("invalid NATS options", "{s:s}", "error", natsStatus_GetText(s));
        bus_free(b, clock_now_ms());
        return HR_ERR_NATS;
    }
    s = natsConnection_Connect(&b->nc, b->opts);
    if (s == NATS_OK) {
        on_connected(b->nc, b);
    } else if (s == NATS_NOT_YET_CONNECTED) {
        log_warn("nats not reachable yet, retrying in the background", "{s:s}", "servers",
                 cfg->nats_servers[0]);
    } else {
        log_error("cannot create the NATS connection", "{s:s}", "error", natsStatus_GetText(s));
        bus_free(b, clock_now_ms());
        return HR_ERR_NATS;
    }
    *out = b;
    return HR_OK;
}

bus_state bus_get_state(const bus *b)
{
    return (bus_state)atomic_load(&((bus *)b)->state);
}

uint64_t bus_reconnects(const bus *b)
{
    return atomic_load(&((bus *)b)->reconnects);
}

int64_t bus_max_payload(bus *b)
{
    return atomic_load(&b->max_payload);
}

natsConnection *bus_conn(bus *b)
{
    return b->nc;
}

void bus_free(bus *b, int64_t deadline_ms)
{
    int timeout_ms = (int)deadline_left_ms(deadline_ms);
    if (!b)
        return;
    if (b->nc) {
        /* Drain flushes pending publishes and unsubscribes, then closes the
         * connection asynchronously: wait for that, bounded. */
        bool connected = bus_get_state(b) == BUS_CONNECTED;
        set_state(b, BUS_CLOSED); /* the drain's disconnect is not an outage */
        if (connected && timeout_ms > 0 &&
            natsConnection_DrainTimeout(b->nc, timeout_ms) == NATS_OK) {
            int64_t until = clock_now_ms() + timeout_ms;
            pthread_mutex_lock(&b->closed_mu);
            while (!b->closed && deadline_left_ms(until) > 0) {
                struct timespec ts = deadline_timespec(until);
                pthread_cond_timedwait(&b->closed_cv, &b->closed_mu, &ts);
            }
            pthread_mutex_unlock(&b->closed_mu);
        }
        natsConnection_Close(b->nc);
        natsConnection_Destroy(b->nc);
    }
    natsOptions_Destroy(b->opts);
    /* nats.c runs the connection callbacks asynchronously, even after
     * Destroy: wait for its threads before freeing what they point to. */
    nats_CloseAndWait(2000);
    pthread_mutex_destroy(&b->closed_mu);
    pthread_cond_destroy(&b->closed_cv);
    free(b);
}
