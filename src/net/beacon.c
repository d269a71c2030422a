/* beacon.c - LAN discovery for `parallax join -s auto`, on CZMQ's zbeacon
 * (UDP broadcast).
 *
 * The scheduler publishes, every interval, 39 bytes: "PXB1", the protocol
 * version (1 byte), its cluster port (2 bytes, big-endian) and its cluster
 * public key (32 bytes). A worker listens for beacons with that prefix and
 * takes the first whose key matches its join token (a beacon is only a
 * hint: the CURVE handshake against that key is what proves the scheduler
 * is the right one); the sender's IP comes from the UDP packet.
 *
 * CZMQ would otherwise install its own SIGINT/SIGTERM handlers; they are
 * turned off before the first actor starts (our commands use sigwait). The
 * interface is CZMQ's choice unless ZSYS_INTERFACE names one ("*" = all). */
#include "net.h"
#include "px_base.h"

#include <czmq.h>
#include <stdio.h>
#include <string.h>

#define MAGIC "PXB1"
#define BEACON_LEN (4 + 1 + 2 + PX_NET_KEY_BYTES)

struct px_beacon {
    zactor_t *actor;
};

static void czmq_quiet(void) {
    static bool done;
    if (done) return;
    done = true;
    zsys_handler_set(NULL);
}

px_beacon *px_beacon_publish(int udp_port, int cluster_port, const uint8_t pub[PX_NET_KEY_BYTES], int interval_ms) {
    czmq_quiet();
    px_beacon *b = px_calloc(1, sizeof *b);
    if (!(b->actor = zactor_new(zbeacon, NULL))) {
        free(b);
        px_error_set("beacon: cannot start zbeacon");
        return NULL;
    }
    zsock_send(b->actor, "si", "CONFIGURE", udp_port > 0 ? udp_port : PX_BEACON_PORT);
    char *host = zstr_recv(b->actor);
    bool ok = host && *host;
    zstr_free(&host);
    if (!ok) {
        px_beacon_stop(b);
        px_error_set("beacon: no interface for UDP broadcast (set ZSYS_INTERFACE, or give workers -s HOST:PORT)");
        return NULL;
    }
    uint8_t data[BEACON_LEN];
    memcpy(data, MAGIC, 4);
    data[4] = PX_NET_PROTOCOL_VERSION;
    data[5] = (uint8_t)(cluster_port >> 8);
    data[6] = (uint8_t)cluster_port;
    memcpy(data + 7, pub, PX_NET_KEY_BYTES);
    zsock_send(b->actor, "sbi", "PUBLISH", data, (size_t)BEACON_LEN, interval_ms > 0 ? interval_ms : 1000);
    return b;
}

void px_beacon_stop(px_beacon *b) {
    if (!b) return;
    zactor_destroy(&b->actor);
    free(b);
}

int px_beacon_find(int udp_port, const uint8_t pub[PX_NET_KEY_BYTES], int timeout_ms, char *endpoint, size_t cap,
                   uint8_t found_pub[PX_NET_KEY_BYTES]) {
    czmq_quiet();
    zactor_t *l = zactor_new(zbeacon, NULL);
    if (!l) return px_error_set("beacon: cannot start zbeacon"), -1;
    zsock_send(l, "si", "CONFIGURE", udp_port > 0 ? udp_port : PX_BEACON_PORT);
    char *host = zstr_recv(l);
    bool ok = host && *host;
    zstr_free(&host);
    if (!ok) {
        zactor_destroy(&l);
        return px_error_set("beacon: no interface for UDP broadcast (give -s HOST:PORT)"), -1;
    }
    zsock_send(l, "sb", "SUBSCRIBE", MAGIC, (size_t)4);
    double deadline = px_time_now() + timeout_ms / 1000.0;
    int rc = -1, other_versions = 0;
    while (rc && px_time_now() < deadline) {
        int left = (int)((deadline - px_time_now()) * 1000) + 1;
        zsock_set_rcvtimeo(l, left);
        zmsg_t *m = zmsg_recv(l);
        if (!m) break;
        char *ip = zmsg_popstr(m);
        zframe_t *f = zmsg_pop(m);
        if (ip && f && zframe_size(f) == BEACON_LEN) {
            const uint8_t *d = zframe_data(f);
            int port = d[5] << 8 | d[6];
            if (d[4] != PX_NET_PROTOCOL_VERSION) other_versions++;
            else if (port > 0 && (!pub || !memcmp(d + 7, pub, PX_NET_KEY_BYTES))) {
                snprintf(endpoint, cap, "tcp://%s:%d", ip, port);
                if (found_pub) memcpy(found_pub, d + 7, PX_NET_KEY_BYTES);
                rc = 0;
            }
        }
        zstr_free(&ip);
        zframe_destroy(&f);
        zmsg_destroy(&m);
    }
    zactor_destroy(&l);
    if (rc) {
        if (other_versions)
            px_error_set("beacon: found only schedulers speaking another protocol version (this build: %d)",
                         PX_NET_PROTOCOL_VERSION);
        else
            px_error_set("beacon: no scheduler of this cluster answered on UDP port %d within %d ms (give -s HOST:PORT)",
                         udp_port > 0 ? udp_port : PX_BEACON_PORT, timeout_ms);
    }
    return rc;
}
