/* jsread — peer for replay.sh: a plain nats.c JetStream ordered consumer
 * (DeliverAll, FilterSubject) reading COUNT messages from STREAM as fast as it can.
 *
 * usage: jsread [--url nats://127.0.0.1:24222] [--stream BENCH] [--subject 'bench.>']
 *               [--count 100000] [--timeout S]
 * Prints "RESULT tool=jsread count=N secs=S rate=R bytes=B last_seq=L". The clock
 * starts before the subscribe (consumer creation included, as in a herald
 * subscribe) and stops at the COUNT-th message. */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <inttypes.h>
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    const char *url = "nats://127.0.0.1:24222", *stream = "BENCH", *subject = "bench.>";
    long count = 100000, timeout = 60;
    static struct option lo[] = {{"url", 1, 0, 'u'},   {"stream", 1, 0, 's'},  {"subject", 1, 0, 'j'},
                                 {"count", 1, 0, 'n'}, {"timeout", 1, 0, 't'}, {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'u': url = optarg; break;
        case 's': stream = optarg; break;
        case 'j': subject = optarg; break;
        case 'n': count = atol(optarg); break;
        case 't': timeout = atol(optarg); break;
        default:
            fprintf(stderr, "usage: jsread [--url U] [--stream S] [--subject P] [--count N] [--timeout S]\n");
            return 2;
        }
    }
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsSubscription *sub = NULL;
    jsErrCode jerr = 0;
    natsStatus s = natsConnection_ConnectTo(&nc, url);
    if (s == NATS_OK)
        s = natsConnection_JetStream(&js, nc, NULL);
    if (s != NATS_OK) {
        fprintf(stderr, "jsread: connect: %s\n", natsStatus_GetText(s));
        return 1;
    }
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = stream;
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverAll;
    so.Config.FilterSubject = subject;
    double t0 = now_s();
    s = js_SubscribeSync(&sub, js, subject, NULL, &so, &jerr);
    if (s != NATS_OK) {
        fprintf(stderr, "jsread: subscribe: %s (jerr %d)\n", natsStatus_GetText(s), (int)jerr);
        nats_PrintLastErrorStack(stderr);
        return 1;
    }
    natsSubscription_SetPendingLimits(sub, -1, -1);
    long got = 0;
    uint64_t bytes = 0, last = 0, outoforder = 0;
    double deadline = t0 + (double)timeout;
    while (got < count) {
        natsMsg *m = NULL;
        s = natsSubscription_NextMsg(&m, sub, 1000);
        if (s == NATS_TIMEOUT) {
            if (now_s() > deadline)
                break;
            continue;
        }
        if (s != NATS_OK) {
            fprintf(stderr, "jsread: next: %s\n", natsStatus_GetText(s));
            break;
        }
        uint64_t seq = 0;
        jsMsgMetaData *md = NULL;
        if (natsMsg_GetMetaData(&md, m) == NATS_OK) {
            seq = md->Sequence.Stream;
            jsMsgMetaData_Destroy(md);
        }
        if (seq <= last)
            outoforder++;
        last = seq;
        bytes += (uint64_t)natsMsg_GetDataLength(m);
        got++;
        natsMsg_Destroy(m);
        if ((got & 1023) == 0 && now_s() > deadline)
            break;
    }
    double t1 = now_s();
    printf("RESULT tool=jsread count=%ld secs=%.3f rate=%.0f bytes=%" PRIu64 " last_seq=%" PRIu64
           " out_of_order=%" PRIu64 " status=%s\n",
           got, t1 - t0, (double)got / (t1 - t0), bytes, last, outoforder, got >= count ? "ok" : "timeout");
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    nats_Close();
    return got >= count ? 0 : 1;
}
