/* floor.c: the least work a server can do for the load generator's fanout
 * scenario, as a baseline for latency and CPU per delivery on this machine
 * (benches/BENCHMARKS.md, "Where the 50 k tail comes from").
 *
 * One thread, level-triggered epoll, non-blocking sockets with TCP_NODELAY.
 * It speaks the subset of the NATS client protocol that
 * `confab-loadgen fanout --url nats://…` uses (loadgen/src/nats.rs): INFO on
 * connect, CONNECT (ignored), SUB room.<n> <sid>, PING → PONG, and
 * PUB room.<n> <size>, which it writes at once as MSG to every subscriber of
 * room.<n>, the publisher included: one write(2) per delivery, straight from
 * the publisher's read, queued only if the socket will not take it. No
 * persistence, no acknowledgement, no allocation per message.
 *
 *   cc -O2 -o /tmp/floor benches/floor/floor.c
 *   taskset -c 0 /tmp/floor 4399 &
 *   taskset -c 1 target/release/confab-loadgen fanout --url nats://127.0.0.1:4399 --server-pid $! \
 *       --rooms 100 --members 10 --rate 5000 --warmup 3 --duration 8
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FD 65536
#define MAX_ROOMS 100000

struct buf { char *p; size_t len, cap; };
struct sub { int fd, sid; };
struct room { struct sub *s; size_t n, cap; };

static struct buf in[MAX_FD], out[MAX_FD];
static struct room rooms[MAX_ROOMS];
static int ep;

static void put(struct buf *b, const char *p, size_t n) {
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p) { perror("realloc"); exit(1); }
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void watch(int fd, int out_too) {
    struct epoll_event e = { .events = EPOLLIN | (out_too ? EPOLLOUT : 0), .data.fd = fd };
    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e);
}

/* Writes what is queued for fd; returns -1 if the connection failed. */
static int flush(int fd) {
    struct buf *b = &out[fd];
    while (b->len) {
        ssize_t w = write(fd, b->p, b->len);
        if (w < 0) {
            if (errno == EAGAIN) { watch(fd, 1); return 0; }
            return -1;
        }
        memmove(b->p, b->p + w, b->len - w);
        b->len -= w;
    }
    watch(fd, 0);
    return 0;
}

/* Sends n bytes to fd: written at once unless something is already queued. */
static void send_to(int fd, const char *p, size_t n) {
    if (out[fd].len == 0) {
        ssize_t w = write(fd, p, n);
        if (w == (ssize_t)n) return;
        if (w < 0) { if (errno != EAGAIN) return; w = 0; }
        p += w; n -= w;
        put(&out[fd], p, n);
        watch(fd, 1);
        return;
    }
    put(&out[fd], p, n);
}

static long room_of(const char *subject, size_t len) {
    if (len < 6 || memcmp(subject, "room.", 5)) return -1;
    long r = 0;
    for (size_t i = 5; i < len; i++) {
        if (subject[i] < '0' || subject[i] > '9') return -1;
        r = r * 10 + (subject[i] - '0');
    }
    return r < MAX_ROOMS ? r : -1;
}

static void drop(int fd) {
    for (int r = 0; r < MAX_ROOMS; r++)
        for (size_t i = 0; i < rooms[r].n; i++)
            if (rooms[r].s[i].fd == fd) rooms[r].s[i--] = rooms[r].s[--rooms[r].n];
    in[fd].len = out[fd].len = 0;
    close(fd);
}

/* Handles every whole operation in fd's input; returns -1 on a protocol error. */
static int handle(int fd) {
    struct buf *b = &in[fd];
    size_t at = 0;
    char msg[65536 + 128];
    for (;;) {
        char *line = b->p + at, *nl = memchr(line, '\n', b->len - at);
        if (!nl) break;
        size_t ll = nl - line, total = ll + 1;
        if (ll && line[ll - 1] == '\r') ll--;
        if (ll >= 3 && !strncasecmp(line, "PUB", 3)) {
            char subj[256]; size_t size;
            char tmp[512];
            if (ll >= sizeof tmp) return -1;
            memcpy(tmp, line, ll); tmp[ll] = 0;
            if (sscanf(tmp + 3, "%255s %zu", subj, &size) != 2 || size > 65536) return -1;
            if (b->len - at < total + size + 2) break;
            const char *payload = nl + 1;
            long r = room_of(subj, strlen(subj));
            if (r >= 0) {
                for (size_t i = 0; i < rooms[r].n; i++) {
                    int n = snprintf(msg, 128, "MSG %s %d %zu\r\n", subj, rooms[r].s[i].sid, size);
                    memcpy(msg + n, payload, size);
                    memcpy(msg + n + size, "\r\n", 2);
                    send_to(rooms[r].s[i].fd, msg, n + size + 2);
                }
            }
            total += size + 2;
        } else if (ll >= 3 && !strncasecmp(line, "SUB", 3)) {
            char subj[256]; int sid; char tmp[512];
            if (ll >= sizeof tmp) return -1;
            memcpy(tmp, line, ll); tmp[ll] = 0;
            if (sscanf(tmp + 3, "%255s %d", subj, &sid) != 2) return -1;
            long r = room_of(subj, strlen(subj));
            if (r >= 0) {
                struct room *rm = &rooms[r];
                if (rm->n == rm->cap) {
                    rm->cap = rm->cap ? rm->cap * 2 : 16;
                    rm->s = realloc(rm->s, rm->cap * sizeof *rm->s);
                }
                rm->s[rm->n++] = (struct sub){ fd, sid };
            }
        } else if (ll >= 4 && !strncasecmp(line, "PING", 4)) {
            send_to(fd, "PONG\r\n", 6);
        } /* CONNECT, PONG and anything else: ignored */
        at += total;
    }
    memmove(b->p, b->p + at, b->len - at);
    b->len -= at;
    return 0;
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 4399, one = 1;
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (bind(ls, (void *)&a, sizeof a) || listen(ls, 4096)) { perror("listen"); return 1; }
    ep = epoll_create1(0);
    struct epoll_event e = { .events = EPOLLIN, .data.fd = ls }, ev[256];
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &e);
    static const char info[] = "INFO {\"server_id\":\"floor\",\"version\":\"floor\",\"proto\":1,\"max_payload\":65536}\r\n";
    for (;;) {
        int n = epoll_wait(ep, ev, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = ev[i].data.fd;
            if (fd == ls) {
                int c;
                while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (c >= MAX_FD) { close(c); continue; }
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event ce = { .events = EPOLLIN, .data.fd = c };
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                    send_to(c, info, sizeof info - 1);
                }
                continue;
            }
            if (ev[i].events & EPOLLOUT && flush(fd) < 0) { drop(fd); continue; }
            if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                struct buf *b = &in[fd];
                if (b->cap - b->len < 65536) { b->cap = b->len + 131072; b->p = realloc(b->p, b->cap); }
                ssize_t r = read(fd, b->p + b->len, b->cap - b->len);
                if (r == 0 || (r < 0 && errno != EAGAIN)) { drop(fd); continue; }
                if (r > 0) { b->len += r; if (handle(fd) < 0) drop(fd); }
            }
        }
    }
}
