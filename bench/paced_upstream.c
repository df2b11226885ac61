/* A paced SSE upstream for bench/streams.py: every request is answered with the same stream, its
 * events sent one write at a time, 50-100 ms apart, the way a model streams its tokens.
 *
 *     cc -O2 -o paced_upstream bench/paced_upstream.c
 *     paced_upstream PORT BODY_FILE WRITES MIN_MS MAX_MS SEED
 *
 * BODY_FILE is the SSE body to replay (the mock's own stream, captured at start-up): its events
 * are the blocks ending in a blank line. The head and the first event go out as soon as a request
 * has arrived; then WRITES more writes follow, one event each, the last with whatever events are
 * left ("finish_reason" and "[DONE]") and the end of the chunked body. The gap before each write
 * is drawn from MIN_MS..MAX_MS by a generator seeded with SEED and the request's serial number,
 * so the same run gives the same gaps. Connections are kept alive.
 *
 * One thread on epoll, one timer wheel of 1 ms slots for every stream (no timer per stream): it
 * holds tens of thousands of open streams for little CPU, so the stream's pace, not the
 * upstream, is what a client or a gateway in front of it sees. Listens on 127.0.0.1 only.
 *
 * GET /_stats answers {"started", "finished", "cut", "active", "peak"}: streams begun, sent to
 * their end, cut by a close midway, open now, and most open at once since the last /_stats (the
 * concurrency a client or a gateway really held, whatever it had queued).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WHEEL_SLOTS 1024 /* 1 ms each: longer than any gap */
#define REQUEST_MAX 65536
#define HEAD "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n" \
             "Transfer-Encoding: chunked\r\n\r\n"

struct piece {
    char *data;
    size_t len;
};

struct conn {
    int fd;
    int open;
    int next; /* the next write of the stream; -1: waiting for a request */
    uint64_t due_ms;
    uint64_t rng;
    const char *pending; /* the rest of a write the socket did not take */
    size_t pending_len;
    struct conn *prev, *after; /* its slot in the wheel */
    int in_wheel;
    size_t in_len;
    char *in;
};

static struct piece *writes;
static int n_writes;
static int min_ms, max_ms;
static uint64_t seed, serial;
static long started, finished, cut, active, peak;
static struct conn **conns;
static int max_fd;
static struct conn *wheel[WHEEL_SLOTS];
static long in_wheel; /* streams waiting for their next write */
static int epfd;

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void append(struct piece *p, const char *data, size_t len) {
    p->data = realloc(p->data, p->len + len);
    if (!p->data) die("realloc");
    memcpy(p->data + p->len, data, len);
    p->len += len;
}

static void append_chunk(struct piece *p, const char *data, size_t len) {
    char size[32];
    int n = snprintf(size, sizeof size, "%zx\r\n", len);
    append(p, size, (size_t)n);
    append(p, data, len);
    append(p, "\r\n", 2);
}

/* The body's events framed as HTTP chunks and grouped into the stream's writes. */
static void load_writes(const char *path, int paced) {
    FILE *f = fopen(path, "rb");
    if (!f) die(path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *body = malloc((size_t)size + 1);
    if (!body || fread(body, 1, (size_t)size, f) != (size_t)size) die("read body");
    fclose(f);
    int events = 0;
    for (long i = 0; i + 1 < size; i++)
        if (body[i] == '\n' && body[i + 1] == '\n') events++, i++;
    if (events < 2) {
        fprintf(stderr, "%s: fewer than two SSE events\n", path);
        exit(2);
    }
    n_writes = 1 + (paced < events - 1 ? paced : events - 1);
    writes = calloc((size_t)n_writes, sizeof *writes);
    append(&writes[0], HEAD, sizeof HEAD - 1);
    long start = 0;
    int event = 0;
    for (long i = 0; i + 1 < size; i++) {
        if (body[i] != '\n' || body[i + 1] != '\n') continue;
        int w = event < n_writes ? event : n_writes - 1;
        append_chunk(&writes[w], body + start, (size_t)(i + 2 - start));
        start = i + 2;
        i++;
        event++;
    }
    append(&writes[n_writes - 1], "0\r\n\r\n", 5);
    free(body);
}

static void unschedule(struct conn *c) {
    if (!c->in_wheel) return;
    if (c->prev) c->prev->after = c->after;
    else wheel[c->due_ms % WHEEL_SLOTS] = c->after;
    if (c->after) c->after->prev = c->prev;
    c->in_wheel = 0;
    in_wheel--;
}

static void schedule(struct conn *c, uint64_t due) {
    unschedule(c);
    c->due_ms = due;
    struct conn **slot = &wheel[due % WHEEL_SLOTS];
    c->prev = NULL;
    c->after = *slot;
    if (*slot) (*slot)->prev = c;
    *slot = c;
    c->in_wheel = 1;
    in_wheel++;
}

static void close_conn(struct conn *c) {
    unschedule(c);
    if (c->next >= 0) { /* closed midway */
        cut++;
        active--;
        c->next = -1;
    }
    close(c->fd);
    c->open = 0;
}

static int gap(struct conn *c) {
    c->rng ^= c->rng << 13;
    c->rng ^= c->rng >> 7;
    c->rng ^= c->rng << 17;
    return min_ms + (int)(c->rng % (uint64_t)(max_ms - min_ms + 1));
}

/* Write what is pending; 1 when all of it went, 0 when the socket is full, -1 on failure. */
static int flush(struct conn *c) {
    while (c->pending_len) {
        ssize_t n = send(c->fd, c->pending, c->pending_len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN) {
                struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.fd = c->fd};
                epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
                return 0;
            }
            if (errno == EINTR) continue;
            return -1;
        }
        c->pending += n;
        c->pending_len -= (size_t)n;
    }
    return 1;
}

/* The stream's next write; then the next one is scheduled, or the stream is over. */
static void step(struct conn *c, uint64_t now) {
    if (c->pending_len) { /* the client is slow to read: the stream waits for it */
        schedule(c, now + 1);
        return;
    }
    struct piece *p = &writes[c->next];
    c->pending = p->data;
    c->pending_len = p->len;
    c->next++;
    if (c->next == n_writes) {
        c->next = -1;
        finished++;
        active--;
    } else {
        schedule(c, now + (uint64_t)gap(c));
    }
    if (flush(c) < 0) close_conn(c);
}

/* A whole request in the buffer (head and Content-Length body): its length, else 0. */
static size_t request_length(struct conn *c) {
    char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (!end) return 0;
    size_t head = (size_t)(end - c->in) + 4;
    size_t body = 0;
    for (char *line = c->in; line < end;) {
        char *eol = memmem(line, (size_t)(end - line) + 2, "\r\n", 2);
        if (!eol) break;
        if ((size_t)(eol - line) > 15 && strncasecmp(line, "content-length:", 15) == 0)
            body = strtoul(line + 15, NULL, 10);
        line = eol + 2;
    }
    return c->in_len >= head + body ? head + body : 0;
}

/* The counters, as JSON; the peak starts again from the streams open now. */
static void send_stats(struct conn *c) {
    static char answer[512];
    char body[256];
    int n = snprintf(body, sizeof body,
                     "{\"started\":%ld,\"finished\":%ld,\"cut\":%ld,\"active\":%ld,\"peak\":%ld}", started,
                     finished, cut, active, peak);
    peak = active;
    int len = snprintf(answer, sizeof answer,
                       "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", n,
                       body);
    c->pending = answer;
    c->pending_len = (size_t)len;
    if (flush(c) < 0) close_conn(c);
}

static void readable(struct conn *c, uint64_t now) {
    for (;;) {
        if (c->in_len == REQUEST_MAX) { /* not a request this server can read */
            close_conn(c);
            return;
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, REQUEST_MAX - c->in_len, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            close_conn(c);
            return;
        }
        if (n < 0) break;
        c->in_len += (size_t)n;
    }
    size_t len;
    while (c->next < 0 && (len = request_length(c)) > 0) {
        int stats = c->in_len >= 11 && memcmp(c->in, "GET /_stats", 11) == 0;
        memmove(c->in, c->in + len, c->in_len - len);
        c->in_len -= len;
        if (stats) {
            send_stats(c);
            if (!c->open) return;
            continue;
        }
        started++;
        if (++active > peak) peak = active;
        c->rng = splitmix64(seed + serial++) | 1;
        c->next = 0;
        step(c, now);
        if (!c->open) return;
    }
}

static void accept_all(int listener) {
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        if (fd >= max_fd) {
            close(fd);
            continue;
        }
        int one = 1; /* paced small writes: Nagle's algorithm would hold one back for an ACK */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = conns[fd];
        if (!c) {
            c = conns[fd] = calloc(1, sizeof *c);
            c->in = malloc(REQUEST_MAX);
            if (!c || !c->in) die("calloc");
        }
        c->fd = fd;
        c->open = 1;
        c->next = -1;
        c->in_len = 0;
        c->pending_len = 0;
        c->in_wheel = 0;
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) close_conn(c);
    }
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s PORT BODY_FILE WRITES MIN_MS MAX_MS SEED\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    min_ms = atoi(argv[4]);
    max_ms = atoi(argv[5]);
    seed = strtoull(argv[6], NULL, 10);
    if (min_ms < 0 || max_ms < min_ms || max_ms >= WHEEL_SLOTS) {
        fprintf(stderr, "gaps must satisfy 0 <= MIN_MS <= MAX_MS < %d\n", WHEEL_SLOTS);
        return 2;
    }
    load_writes(argv[2], atoi(argv[3]));
    signal(SIGPIPE, SIG_IGN);

    struct rlimit lim;
    getrlimit(RLIMIT_NOFILE, &lim);
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
    max_fd = lim.rlim_cur > 1 << 20 ? 1 << 20 : (int)lim.rlim_cur;
    conns = calloc((size_t)max_fd, sizeof *conns);

    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    if (listen(listener, 4096) < 0) die("listen");
    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.fd = listener};
    epoll_ctl(epfd, EPOLL_CTL_ADD, listener, &lev);
    fprintf(stderr, "paced upstream on 127.0.0.1:%d: %d writes per stream, %d-%d ms apart\n", port,
            n_writes, min_ms, max_ms);

    struct epoll_event events[1024];
    uint64_t tick = now_ms();
    for (;;) {
        /* While any stream is paced the loop wakes every millisecond; otherwise it sleeps. */
        int paced = in_wheel > 0;
        int n = epoll_wait(epfd, events, 1024, paced ? 1 : -1);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        uint64_t now = now_ms();
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == listener) {
                accept_all(listener);
                continue;
            }
            struct conn *c = conns[fd];
            if (!c || !c->open) continue;
            if (events[i].events & EPOLLOUT) {
                int r = flush(c);
                if (r < 0) {
                    close_conn(c);
                    continue;
                }
                if (r > 0) {
                    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
                    epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
                }
            }
            if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) readable(c, now);
        }
        if (!paced) tick = now;
        for (; tick <= now; tick++) {
            struct conn *c = wheel[tick % WHEEL_SLOTS];
            while (c) {
                struct conn *after = c->after;
                if (c->due_ms <= now) {
                    unschedule(c);
                    step(c, now);
                }
                c = after;
            }
        }
    }
}
