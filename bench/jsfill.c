/* jsfill — (re)create JetStream stream STREAM on SUBJECTS (file storage) and fill
 * it with N messages of BYTES bytes using nats.c async JetStream publish; waits
 * for every PubAck and checks that the stream holds N messages.
 *
 * usage: jsfill [--url nats://127.0.0.1:24222] [--stream BENCH] [--subjects 'bench.>']
 *               [--subject bench.fill] [--count 100000] [--bytes 200] [--timeout S]
 * Prints "RESULT tool=jsfill count=N bytes=B secs=S rate=R stream_msgs=M last_seq=L". */
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

#define CHECK(s, what)                                                                            \
    do {                                                                                          \
        if ((s) != NATS_OK) {                                                                     \
            fprintf(stderr, "jsfill: %s: %s (jerr %d)\n", what, natsStatus_GetText(s), (int)jerr); \
            nats_PrintLastErrorStack(stderr);                                                     \
            return 1;                                                                             \
        }                                                                                         \
    } while (0)

int main(int argc, char **argv)
{
    const char *url = "nats://127.0.0.1:24222", *stream = "BENCH", *subjects = "bench.>",
               *subject = "bench.fill";
    long count = 100000, bytes = 200, timeout = 120;
    static struct option lo[] = {{"url", 1, 0, 'u'},     {"stream", 1, 0, 's'}, {"subjects", 1, 0, 'S'},
                                 {"subject", 1, 0, 'j'}, {"count", 1, 0, 'n'},  {"bytes", 1, 0, 'b'},
                                 {"timeout", 1, 0, 't'}, {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'u': url = optarg; break;
        case 's': stream = optarg; break;
        case 'S': subjects = optarg; break;
        case 'j': subject = optarg; break;
        case 'n': count = atol(optarg); break;
        case 'b': bytes = atol(optarg); break;
        case 't': timeout = atol(optarg); break;
        default:
            fprintf(stderr, "usage: jsfill [--url U] [--stream S] [--subjects P] [--subject S] "
                            "[--count N] [--bytes B] [--timeout S]\n");
            return 2;
        }
    }
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsErrCode jerr = 0;
    natsStatus s = natsConnection_ConnectTo(&nc, url);
    CHECK(s, "connect");
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 10000;
    jo.PublishAsync.MaxPending = 4096;
    jo.PublishAsync.StallWait = 5000;
    s = natsConnection_JetStream(&js, nc, &jo);
    CHECK(s, "jetstream");

    /* fresh stream */
    js_DeleteStream(js, stream, NULL, &jerr);
    jerr = 0;
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = stream;
    const char *subjv[1] = {subjects};
    sc.Subjects = subjv;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    jsStreamInfo *si = NULL;
    s = js_AddStream(&si, js, &sc, NULL, &jerr);
    CHECK(s, "add stream");
    jsStreamInfo_Destroy(si);
    si = NULL;

    /* ~BYTES-byte JSON payloads (herald events carry JSON data) */
    char *buf = malloc((size_t)bytes + 64);
    double t0 = now_s();
    for (long i = 0; i < count; i++) {
        int n = snprintf(buf, (size_t)bytes + 64, "{\"i\":%ld,\"pad\":\"", i);
        while (n < bytes - 2)
            buf[n++] = 'x';
        buf[n++] = '"';
        buf[n++] = '}';
        s = js_PublishAsync(js, subject, buf, n, NULL);
        CHECK(s, "publish async");
        if (now_s() - t0 > (double)timeout) {
            fprintf(stderr, "jsfill: timeout while publishing (%ld sent)\n", i);
            return 1;
        }
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = timeout * 1000;
    s = js_PublishAsyncComplete(js, &po);
    CHECK(s, "publish async complete");
    double t1 = now_s();
    natsMsgList pending = {0};
    if (js_PublishAsyncGetPendingList(&pending, js) == NATS_OK && pending.Count > 0) {
        fprintf(stderr, "jsfill: %d publishes not acknowledged\n", pending.Count);
        natsMsgList_Destroy(&pending);
        return 1;
    }
    s = js_GetStreamInfo(&si, js, stream, NULL, &jerr);
    CHECK(s, "stream info");
    uint64_t msgs = si->State.Msgs, last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    printf("RESULT tool=jsfill count=%ld bytes=%ld secs=%.3f rate=%.0f stream_msgs=%" PRIu64
           " last_seq=%" PRIu64 "\n",
           count, bytes, t1 - t0, (double)count / (t1 - t0), msgs, last);
    free(buf);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    nats_Close();
    return msgs >= (uint64_t)count ? 0 : 1;
}
