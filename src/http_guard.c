/* http_guard: request and idle deadlines for MHD connections. */
#include "herald/http_guard.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "herald/http_reply.h"
#include "herald/netutil.h"

#define WATCH_PERIOD_MS 200

typedef enum { PH_RECEIVING = 0, PH_ANSWERING, PH_IDLE } phase;
/* PH_RECEIVING with may_408 false: an answer is already queued (MHD sends
 * it when it has read the body): past the deadline the connection is only
 * closed. */

typedef struct guarded {
    http_guard *g;
    int fd;
    phase ph;
    bool may_408;
    int64_t request_deadline_ms; /* set when the request began */
    int64_t idle_deadline_ms;    /* set when the previous request completed */
    bool ended;                  /* the watchdog shut it down */
    bool counted;                /* in `open` (not refused over the limit) */
    unsigned char addr[16];      /* the peer's address (IPv4 in the first 4 bytes) */
    size_t addr_len;             /* 0: unknown */
    struct guarded *prev, *next;
} guarded;

struct http_guard {
    int64_t request_ms, idle_ms;
    int64_t max_conns;  /* open connections allowed; 0 = unlimited */
    int64_t max_per_ip; /* open connections per peer address; 0 = unlimited */
    int64_t open;       /* records in the list (guarded by mu) */
    pthread_mutex_t mu; /* guards the list, every record's fields and stop */
    pthread_cond_t cv;
    guarded *head;
    bool stop;
    pthread_t thread;
    bool running;
    char resp408[512]; /* the whole 408 problem+json response, built once */
    size_t resp408_len;
};

static void end_connection(const http_guard *g, guarded *r, bool send_408)
{
    if (send_408) {
        ssize_t n;
        do
            n = send(r->fd, g->resp408, g->resp408_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        shutdown(r->fd, SHUT_WR); /* the FIN follows the answer */
    }
    shutdown(r->fd, SHUT_RDWR); /* MHD reads EOF and closes it */
    r->ended = true;
}

static void *watch_main(void *arg)
{
    http_guard *g = arg;
    pthread_mutex_lock(&g->mu);
    while (!g->stop) {
        int64_t now = clock_now_ms();
        for (guarded *r = g->head; r; r = r->next) {
            if (r->ended)
                continue;
            if (r->ph == PH_RECEIVING && now >= r->request_deadline_ms)
                end_connection(g, r, r->may_408);
            else if (r->ph == PH_IDLE && now >= r->idle_deadline_ms)
                end_connection(g, r, false);
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += WATCH_PERIOD_MS * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&g->cv, &g->mu, &ts);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

hr_status http_guard_new(http_guard **out, int request_timeout_s, int idle_timeout_s,
                         int64_t max_connections, int64_t max_per_ip)
{
    *out = NULL;
    http_guard *g = calloc(1, sizeof *g);
    if (!g)
        return HR_ERR_NOMEM;
    g->request_ms = (int64_t)request_timeout_s * 1000;
    g->idle_ms = (int64_t)idle_timeout_s * 1000;
    g->max_conns = max_connections;
    g->max_per_ip = max_per_ip;
    /* The 408 a connection gets when its request is not complete in time. */
    int n = http_reply_problem_raw(g->resp408, sizeof g->resp408, 408, "request-timeout",
                                   "the request did not arrive within http.request_timeout_s", NULL,
                                   NULL);
    if (n < 0) {
        free(g);
        return HR_ERR_NOMEM;
    }
    g->resp408_len = (size_t)n;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    if (pthread_create(&g->thread, NULL, watch_main, g) != 0) {
        http_guard_free(g);
        return HR_ERR_NOMEM;
    }
    g->running = true;
    *out = g;
    return HR_OK;
}

void http_guard_free(http_guard *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->mu);
    g->stop = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    if (g->running)
        pthread_join(g->thread, NULL);
    for (guarded *r = g->head, *nx; r; r = nx) { /* MHD stopped: normally none */
        nx = r->next;
        free(r);
    }
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

/* The peer's address bytes (an IPv4-mapped IPv6 peer counts as IPv4). */
static void peer_address(struct MHD_Connection *c, guarded *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    if (sa && sa->sa_family == AF_INET) {
        memcpy(r->addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        r->addr_len = 4;
    } else if (sa && sa->sa_family == AF_INET6) {
        const unsigned char *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        bool v4 = memcmp(a, mapped, 12) == 0;
        memcpy(r->addr, v4 ? a + 12 : a, v4 ? 4 : 16);
        r->addr_len = v4 ? 4 : 16;
    }
}

/* Open connections from r's peer (under mu). The pool's workers each keep
 * their own count for MHD's per-IP limit, so it is counted here, across
 * all of them. */
static int64_t open_from(http_guard *g, const guarded *r)
{
    int64_t n = 0;
    for (const guarded *o = g->head; o; o = o->next)
        n += o->counted && o->addr_len == r->addr_len && memcmp(o->addr, r->addr, r->addr_len) == 0;
    return n;
}

void http_guard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                       enum MHD_ConnectionNotificationCode toe)
{
    http_guard *g = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        guarded *r = ci ? calloc(1, sizeof *r) : NULL;
        *socket_context = r;
        if (!r)
            return; /* unguarded: MHD's idle timeout still applies */
        r->g = g;
        r->fd = ci->connect_fd;
        r->ph = PH_RECEIVING;
        r->may_408 = true;
        r->request_deadline_ms = clock_now_ms() + g->request_ms;
        peer_address(c, r);
        pthread_mutex_lock(&g->mu);
        if ((g->max_conns > 0 && g->open >= g->max_conns) ||
            (g->max_per_ip > 0 && r->addr_len && open_from(g, r) >= g->max_per_ip)) {
            /* Over the limit: hang up at once (MHD reads EOF and closes it). */
            shutdown(r->fd, SHUT_RDWR);
            r->ended = true;
        } else {
            r->counted = true;
            g->open++;
        }
        r->next = g->head;
        if (g->head)
            g->head->prev = r;
        g->head = r;
        pthread_mutex_unlock(&g->mu);
        return;
    }
    guarded *r = *socket_context;
    if (!r)
        return;
    pthread_mutex_lock(&g->mu);
    if (r->counted)
        g->open--;
    if (r->prev)
        r->prev->next = r->next;
    else
        g->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    pthread_mutex_unlock(&g->mu);
    free(r);
    *socket_context = NULL;
}

static guarded *record(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

void http_guard_request_line(struct MHD_Connection *c)
{
    guarded *r = record(c);
    if (!r)
        return;
    pthread_mutex_lock(&r->g->mu);
    if (r->ph == PH_IDLE) {
        r->ph = PH_RECEIVING;
        r->may_408 = true;
        r->request_deadline_ms = clock_now_ms() + r->g->request_ms;
    }
    pthread_mutex_unlock(&r->g->mu);
}

bool http_guard_answering(struct MHD_Connection *c)
{
    guarded *r = record(c);
    if (!r)
        return true;
    pthread_mutex_lock(&r->g->mu);
    bool alive = !r->ended;
    r->ph = PH_ANSWERING;
    pthread_mutex_unlock(&r->g->mu);
    return alive;
}

void http_guard_receiving(struct MHD_Connection *c, bool may_408)
{
    guarded *r = record(c);
    if (!r)
        return;
    pthread_mutex_lock(&r->g->mu);
    r->ph = PH_RECEIVING;
    r->may_408 = may_408;
    pthread_mutex_unlock(&r->g->mu);
}

void http_guard_idle(struct MHD_Connection *c)
{
    guarded *r = record(c);
    if (!r)
        return;
    pthread_mutex_lock(&r->g->mu);
    r->ph = PH_IDLE;
    r->idle_deadline_ms = clock_now_ms() + r->g->idle_ms;
    pthread_mutex_unlock(&r->g->mu);
}
