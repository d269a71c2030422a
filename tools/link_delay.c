/* link_delay.c - tooling: a network cable with a delay, for tests that need a
 * WAN-like link on a kernel without tc netem (the development VM's has none).
 *
 *   link_delay IF_A IF_B MS_A_TO_B [MS_B_TO_A]
 *
 * Joins two interfaces at layer 2, like a bridge with two ports: every frame
 * that arrives on IF_A leaves on IF_B MS_A_TO_B milliseconds later, and the
 * other way round after MS_B_TO_A (default 0). Frames keep their order in each
 * direction. Rate limits are left to tc tbf on the endpoints, which every
 * kernel here has. Runs until SIGTERM or SIGINT, until the process that
 * started it ends, or until an interface disappears (its namespace deleted).
 *
 * How: one raw AF_PACKET socket per interface, in promiscuous mode, with
 * PACKET_VNET_HDR so a large GSO frame (veth passes 64 KiB segments) travels
 * whole with its offload header and the kernel segments it on the way out.
 * Frames this program sends come back to its own socket as PACKET_OUTGOING
 * and are ignored. A direction holds at most 32 MiB in flight; more is
 * dropped, as a router's full queue would.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_FRAME (65536 + sizeof(struct virtio_net_hdr) + 64)
#define MAX_QUEUED_BYTES (32u << 20)

typedef struct frame {
    struct frame *next;
    int64_t due_ns;
    size_t len;
    unsigned char data[];
} frame;

typedef struct {
    int in_fd, out_fd;
    int64_t delay_ns;
    frame *head, *tail;
    size_t queued;
    unsigned long forwarded, dropped;
} direction;

static volatile sig_atomic_t stopping;
static void on_signal(int sig) { (void)sig, stopping = 1; }

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int open_port(const char *ifname) {
    unsigned idx = if_nametoindex(ifname);
    if (!idx) return fprintf(stderr, "link_delay: no interface %s: %s\n", ifname, strerror(errno)), -1;
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(ETH_P_ALL));
    int on = 1;
    if (fd < 0 || setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &on, sizeof on))
        return fprintf(stderr, "link_delay: packet socket on %s: %s\n", ifname, strerror(errno)), -1;
    struct sockaddr_ll a = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = (int)idx};
    struct packet_mreq mr = {.mr_ifindex = (int)idx, .mr_type = PACKET_MR_PROMISC};
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr))
        return fprintf(stderr, "link_delay: bind to %s: %s\n", ifname, strerror(errno)), close(fd), -1;
    return fd;
}

/* Reads every frame waiting on d->in_fd into d's queue. */
static void take_arrivals(direction *d, unsigned char *buf) {
    for (;;) {
        struct sockaddr_ll from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(d->in_fd, buf, MAX_FRAME, 0, (struct sockaddr *)&from, &fl);
        if (n < 0) return; /* EAGAIN, or an error the next poll reports again */
        if (from.sll_pkttype == PACKET_OUTGOING) continue; /* our own sends */
        if (d->queued + (size_t)n > MAX_QUEUED_BYTES) {
            d->dropped++;
            continue;
        }
        frame *f = malloc(sizeof *f + (size_t)n);
        if (!f) {
            d->dropped++;
            continue;
        }
        *f = (frame){NULL, now_ns() + d->delay_ns, (size_t)n};
        memcpy(f->data, buf, (size_t)n);
        if (d->tail) d->tail->next = f;
        else d->head = f;
        d->tail = f;
        d->queued += (size_t)n;
    }
}

/* Sends the frames whose time has come; returns ns until the next one (-1: none). */
static int64_t send_due(direction *d) {
    int64_t t = now_ns();
    while (d->head && d->head->due_ns <= t) {
        frame *f = d->head;
        if (send(d->out_fd, f->data, f->len, 0) < 0) {
            if (errno == EAGAIN || errno == ENOBUFS) return 1000000; /* the device is busy: retry in 1 ms */
            d->dropped++;
        } else {
            d->forwarded++;
        }
        d->head = f->next;
        if (!d->head) d->tail = NULL;
        d->queued -= f->len;
        free(f);
    }
    return d->head ? d->head->due_ns - t : -1;
}

static int parse_ms(const char *s, int64_t *ns) {
    char *end;
    double ms = strtod(s, &end);
    if (end == s || *end || ms < 0 || ms > 60000) return -1;
    *ns = (int64_t)(ms * 1e6);
    return 0;
}

int main(int argc, char **argv) {
    int64_t ab = 0, ba = 0;
    if (argc < 4 || argc > 5 || parse_ms(argv[3], &ab) || (argc == 5 && parse_ms(argv[4], &ba))) {
        fprintf(stderr, "usage: link_delay IF_A IF_B MS_A_TO_B [MS_B_TO_A]  (0 to 60000 ms)\n");
        return 2;
    }
    int a = open_port(argv[1]), b = a < 0 ? -1 : open_port(argv[2]);
    if (a < 0 || b < 0) return 1;
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* a test killed mid-run leaves no wire behind */
    direction dir[2] = {{.in_fd = a, .out_fd = b, .delay_ns = ab}, {.in_fd = b, .out_fd = a, .delay_ns = ba}};
    unsigned char *buf = malloc(MAX_FRAME);
    fprintf(stderr, "link_delay: %s -> %s %.1f ms, %s -> %s %.1f ms\n", argv[1], argv[2], ab / 1e6, argv[2], argv[1], ba / 1e6);
    while (!stopping) {
        int64_t wait = -1;
        for (int i = 0; i < 2; i++) {
            int64_t w = send_due(&dir[i]);
            if (w >= 0 && (wait < 0 || w < wait)) wait = w;
        }
        struct pollfd p[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
        int timeout_ms = wait < 0 ? 200 : (int)((wait + 999999) / 1000000);
        if (poll(p, 2, timeout_ms) < 0 && errno != EINTR) return perror("link_delay: poll"), 1;
        if ((p[0].revents | p[1].revents) & (POLLERR | POLLHUP | POLLNVAL) &&
            (!if_nametoindex(argv[1]) || !if_nametoindex(argv[2]))) {
            fprintf(stderr, "link_delay: an interface is gone; stopping\n");
            break;
        }
        for (int i = 0; i < 2; i++) /* reading SO_ERROR clears a pending error (link down) */
            if (p[i].revents & POLLERR) {
                int e;
                socklen_t el = sizeof e;
                getsockopt(p[i].fd, SOL_SOCKET, SO_ERROR, &e, &el);
            }
        if (p[0].revents & POLLIN) take_arrivals(&dir[0], buf);
        if (p[1].revents & POLLIN) take_arrivals(&dir[1], buf);
    }
    fprintf(stderr, "link_delay: forwarded %lu / %lu frames, dropped %lu / %lu\n", dir[0].forwarded, dir[1].forwarded,
            dir[0].dropped, dir[1].dropped);
    free(buf);
    return 0;
}
