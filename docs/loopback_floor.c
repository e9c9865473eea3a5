// The cost floor of fan-out over loopback TCP on this machine, with no
// application work at all: what any gateway pays to deliver one small message
// to one client running on the same box (docs/bench.md, "The loopback floor").
//
// One thread writes MSG-byte messages, FANOUT of them per "event" (each to
// another of N connected sockets, TCP_NODELAY, non-blocking), at EVENTS_PER_S
// (0: as fast as it can) for SECONDS. Another thread reads every socket through
// one epoll. Each message carries its event's send time; the reader records
// the latency of each. Prints msgs/s, CPU per message of each thread, and the
// latency percentiles.
//
//   gcc -O2 -pthread docs/loopback_floor.c -o /tmp/loopback_floor
//   /tmp/loopback_floor N FANOUT EVENTS_PER_S SECONDS MSG
//   /tmp/loopback_floor 1000 145 850 8 450   # like `bench --scenario steady`
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES 50000000L

static int n_sockets, fanout, rate, seconds, msg_len;
static int *server_side, *client_side;
static volatile int done;
static long received;
static double reader_cpu;
static float *latency_ms;
static long samples;

static double seconds_now(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void *reader(void *unused) {
    (void)unused;
    int ep = epoll_create1(0);
    for (int i = 0; i < n_sockets; i++) {
        struct epoll_event e = {.events = EPOLLIN, .data.fd = client_side[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, client_side[i], &e);
    }
    // Every write is one message, and reads return whole ones (one segment
    // each on loopback); a read that does not is counted but not timed.
    static char buf[1 << 20];
    struct epoll_event ready[256];
    long bytes = 0;
    double cpu0 = seconds_now(CLOCK_THREAD_CPUTIME_ID);
    while (!done) {
        int n = epoll_wait(ep, ready, 256, 100);
        for (int i = 0; i < n; i++) {
            for (;;) {
                ssize_t r = read(ready[i].data.fd, buf, sizeof buf);
                if (r <= 0) break;
                bytes += r;
                double now = seconds_now(CLOCK_MONOTONIC);
                for (ssize_t at = 0; r % msg_len == 0 && at < r; at += msg_len) {
                    double sent;
                    memcpy(&sent, buf + at, sizeof sent);
                    if (samples < MAX_SAMPLES) latency_ms[samples++] = (float)((now - sent) * 1e3);
                }
            }
        }
    }
    received = bytes / msg_len;
    reader_cpu = seconds_now(CLOCK_THREAD_CPUTIME_ID) - cpu0;
    return NULL;
}

static int by_value(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s N FANOUT EVENTS_PER_S SECONDS MSG\n", argv[0]);
        return 2;
    }
    n_sockets = atoi(argv[1]);
    fanout = atoi(argv[2]);
    rate = atoi(argv[3]);
    seconds = atoi(argv[4]);
    msg_len = atoi(argv[5]);
    if (n_sockets < 1 || fanout < 1 || seconds < 1 || msg_len < (int)sizeof(double)) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    server_side = calloc(n_sockets, sizeof(int));
    client_side = calloc(n_sockets, sizeof(int));
    latency_ms = malloc(sizeof(float) * MAX_SAMPLES);
    int one = 1;
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t addr_len = sizeof addr;
    if (bind(listener, (void *)&addr, sizeof addr) || listen(listener, 4096) ||
        getsockname(listener, (void *)&addr, &addr_len)) {
        perror("listen");
        return 1;
    }
    for (int i = 0; i < n_sockets; i++) {
        client_side[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(client_side[i], (void *)&addr, sizeof addr)) {
            perror("connect");
            return 1;
        }
        server_side[i] = accept(listener, NULL, NULL);
        setsockopt(server_side[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(client_side[i], F_SETFL, O_NONBLOCK);
        fcntl(server_side[i], F_SETFL, O_NONBLOCK);
    }
    pthread_t reader_thread;
    pthread_create(&reader_thread, NULL, reader, NULL);
    char *msg = calloc(1, msg_len);
    unsigned seed = 1;
    long sent = 0, events = 0;
    double start = seconds_now(CLOCK_MONOTONIC);
    double cpu0 = seconds_now(CLOCK_THREAD_CPUTIME_ID);
    while (seconds_now(CLOCK_MONOTONIC) - start < seconds) {
        if (rate > 0) {
            double due = start + events / (double)rate;
            while (seconds_now(CLOCK_MONOTONIC) < due) {
                struct timespec nap = {0, 20000};
                nanosleep(&nap, NULL);
            }
        }
        double now = seconds_now(CLOCK_MONOTONIC);
        memcpy(msg, &now, sizeof now);
        int first = rand_r(&seed) % n_sockets;
        for (int k = 0; k < fanout; k++) {
            if (write(server_side[(first + k * 7) % n_sockets], msg, msg_len) == msg_len) sent++;
        }
        events++;
    }
    double writer_cpu = seconds_now(CLOCK_THREAD_CPUTIME_ID) - cpu0;
    double elapsed = seconds_now(CLOCK_MONOTONIC) - start;
    sleep(1);
    done = 1;
    pthread_join(reader_thread, NULL);
    qsort(latency_ms, samples, sizeof(float), by_value);
    printf("%d sockets, fan-out %d, %d events/s, %d-byte messages: %.0f msgs/s, %ld of %ld received\n",
           n_sockets, fanout, rate, msg_len, sent / elapsed, received, sent);
    printf("  writer %.2f us/msg (%.0f %% of a core), reader %.2f us/msg (%.0f %%)\n",
           writer_cpu / sent * 1e6, writer_cpu / elapsed * 100, reader_cpu / sent * 1e6,
           reader_cpu / (elapsed + 1) * 100);
    if (samples > 0)
        printf("  latency ms p50 %.3f p99 %.3f p99.9 %.3f max %.3f\n", latency_ms[samples / 2],
               latency_ms[(long)(samples * 0.99)], latency_ms[(long)(samples * 0.999)],
               latency_ms[samples - 1]);
    return received == sent ? 0 : 1;
}
