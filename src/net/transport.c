/* transport.c - ZeroMQ context, the ZAP handler, CURVE sockets.
 *
 * px_net owns one ZeroMQ context and a ZAP handler thread (RFC 27: a REP
 * socket on inproc://zeromq.zap.01, bound before any server socket exists,
 * so no handshake is ever admitted without it). The handler admits a CURVE
 * client only when its long-term public key is the cluster's member key
 * (derived from the join secret); anything else gets status 400 and one log
 * line with the peer's address and key fingerprint.
 *
 * Sockets: servers are ROUTERs (CURVE server keypair given; HANDOVER, so a
 * restarted worker with the same id takes its routing slot over; MANDATORY,
 * so a send to a gone peer fails instead of vanishing), clients are DEALERs
 * (CURVE client with the member keypair, the server's public key, our node
 * id as routing id). All sockets: linger 0, ZMTP heartbeats (1 s, 3 s
 * timeout) to notice dead TCP peers, a maximum message size, and a monitor
 * that counts handshake results (a client learns that its keys were
 * refused; a server logs failed handshakes). */
#include "net.h"
#include "px_base.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct px_net {
    void *ctx;
    px_net_keys keys;
    void *zap;            /* REP, owned by the ZAP thread once it runs */
    pthread_t zap_thread;
    atomic_bool stop;
    atomic_uint_fast64_t refused;
    atomic_int mon_seq;
    char self[PX_NET_ID_MAX];
};

struct px_sock {
    px_net *net;
    void *z, *mon;
    bool server;
    int port;
    char endpoint[256];
    px_sock_events ev;
};

/* ---- refusal logs: the first at once, then at most one line per 10 s
 * (a refused peer reconnects every second; the log must stay readable) ---- */

static pthread_mutex_t g_log_mu = PTHREAD_MUTEX_INITIALIZER;

static bool log_allowed(double *last, int *suppressed, int *report) {
    pthread_mutex_lock(&g_log_mu);
    double now = px_time_now();
    bool ok = *last == 0 || now - *last >= 10.0;
    if (ok) {
        *report = *suppressed;
        *suppressed = 0;
        *last = now;
    } else (*suppressed)++;
    pthread_mutex_unlock(&g_log_mu);
    return ok;
}

/* ---- ZAP ---- */

static void zap_send(void *sock, const zmq_msg_t *req_id, const char *status, const char *text, const char *user) {
    zmq_send(sock, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(sock, zmq_msg_data((zmq_msg_t *)req_id), zmq_msg_size((zmq_msg_t *)req_id), ZMQ_SNDMORE);
    zmq_send(sock, status, strlen(status), ZMQ_SNDMORE);
    zmq_send(sock, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(sock, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(sock, "", 0, 0);
}

/* One request: version, request id, domain, address, routing id, mechanism, credentials... */
static void zap_handle(px_net *n) {
    zmq_msg_t f[8];
    int nf = 0;
    for (;;) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, n->zap, 0) < 0) {
            zmq_msg_close(&part);
            break;
        }
        bool more = zmq_msg_more(&part);
        if (nf < 8) f[nf++] = part;
        else zmq_msg_close(&part);
        if (!more) break;
    }
    if (nf >= 6) {
        char address[64] = "", mech[16] = "";
        size_t al = PX_MIN(zmq_msg_size(&f[3]), sizeof address - 1), ml = PX_MIN(zmq_msg_size(&f[5]), sizeof mech - 1);
        memcpy(address, zmq_msg_data(&f[3]), al);
        memcpy(mech, zmq_msg_data(&f[5]), ml);
        bool ok = false;
        char fp[9] = "-";
        if (!strcmp(mech, "CURVE") && nf >= 7 && zmq_msg_size(&f[6]) == PX_NET_KEY_BYTES) {
            px_net_key_fingerprint(zmq_msg_data(&f[6]), fp);
            ok = !memcmp(zmq_msg_data(&f[6]), n->keys.member_public, PX_NET_KEY_BYTES);
        }
        if (ok) zap_send(n->zap, &f[1], "200", "OK", "member");
        else {
            atomic_fetch_add(&n->refused, 1);
            static double last;
            static int suppressed;
            int more = 0;
            if (log_allowed(&last, &suppressed, &more))
                px_log_warn("net: refused a %s connection from %s (client key %s): not this cluster's member key "
                            "(missing or wrong join secret)%s",
                            mech, address, fp, more ? " [and earlier refusals not logged]" : "");
            zap_send(n->zap, &f[1], "400", "not a cluster member", "");
        }
    }
    for (int i = 0; i < nf; i++) zmq_msg_close(&f[i]);
}

static void *zap_main(void *arg) {
    px_net *n = arg;
    while (!atomic_load(&n->stop)) {
        zmq_pollitem_t it = {.socket = n->zap, .events = ZMQ_POLLIN};
        int rc = zmq_poll(&it, 1, 100);
        if (rc > 0) zap_handle(n);
        else if (rc < 0 && zmq_errno() == ETERM) break;
    }
    return NULL;
}

px_net *px_net_new(const px_net_keys *keys) {
    px_net *n = px_calloc(1, sizeof *n);
    n->keys = *keys;
    strcpy(n->self, "node");
    if (!(n->ctx = zmq_ctx_new())) {
        px_error_set("net: zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
        free(n);
        return NULL;
    }
    n->zap = zmq_socket(n->ctx, ZMQ_REP);
    int linger = 0;
    zmq_setsockopt(n->zap, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(n->zap, "inproc://zeromq.zap.01")) {
        px_error_set("net: ZAP handler: %s", zmq_strerror(zmq_errno()));
        zmq_close(n->zap);
        zmq_ctx_term(n->ctx);
        free(n);
        return NULL;
    }
    if (pthread_create(&n->zap_thread, NULL, zap_main, n)) {
        px_error_set("net: cannot start the ZAP thread");
        zmq_close(n->zap);
        zmq_ctx_term(n->ctx);
        free(n);
        return NULL;
    }
    return n;
}

void px_net_free(px_net *n) {
    if (!n) return;
    atomic_store(&n->stop, true);
    pthread_join(n->zap_thread, NULL);
    zmq_close(n->zap);
    zmq_ctx_term(n->ctx);
    free(n);
}

uint64_t px_net_refused(const px_net *n) { return atomic_load(&((px_net *)n)->refused); }
const px_net_keys *px_net_keys_of(const px_net *n) { return &n->keys; }
void px_net_set_self(px_net *n, const char *id) {
    if (px_net_id_valid(id)) snprintf(n->self, sizeof n->self, "%s", id);
}

/* ---- sockets ---- */

static void common_options(void *z) {
    int linger = 0, ivl = 1000, tmo = 3000, ttl = 3000, hwm = 100000;
    int64_t maxmsg = (int64_t)PX_NET_MAX_ACTIVATIONS;
    zmq_setsockopt(z, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(z, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(z, ZMQ_HEARTBEAT_TIMEOUT, &tmo, sizeof tmo);
    zmq_setsockopt(z, ZMQ_HEARTBEAT_TTL, &ttl, sizeof ttl);
    zmq_setsockopt(z, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(z, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(z, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
}

static void attach_monitor(px_sock *s) {
    char addr[64];
    snprintf(addr, sizeof addr, "inproc://px-monitor-%p-%d", (void *)s->net, atomic_fetch_add(&s->net->mon_seq, 1));
    if (zmq_socket_monitor(s->z, addr,
                           ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL))
        return;
    s->mon = zmq_socket(s->net->ctx, ZMQ_PAIR);
    int linger = 0;
    zmq_setsockopt(s->mon, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(s->mon, addr)) {
        zmq_close(s->mon);
        s->mon = NULL;
    }
}

static px_sock *sock_new(px_net *n, int type) {
    px_sock *s = px_calloc(1, sizeof *s);
    s->net = n;
    if (!(s->z = zmq_socket(n->ctx, type))) {
        px_error_set("net: zmq_socket: %s", zmq_strerror(zmq_errno()));
        free(s);
        return NULL;
    }
    common_options(s->z);
    return s;
}

/* "tcp://HOST:0" -> "tcp://HOST:*" (ZeroMQ's spelling of "any port"). */
static void normalise_endpoint(const char *in, char *out, size_t cap) {
    snprintf(out, cap, "%s", in);
    size_t n = strlen(out);
    if (n >= 2 && !strcmp(out + n - 2, ":0")) out[n - 1] = '*';
}

px_sock *px_net_bind(px_net *n, const char *endpoint, const uint8_t pub[PX_NET_KEY_BYTES],
                     const uint8_t sec[PX_NET_KEY_BYTES]) {
    px_sock *s = sock_new(n, ZMQ_ROUTER);
    if (!s) return NULL;
    int one = 1;
    zmq_setsockopt(s->z, ZMQ_ROUTER_HANDOVER, &one, sizeof one);
    zmq_setsockopt(s->z, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt(s->z, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(s->z, ZMQ_CURVE_PUBLICKEY, pub, PX_NET_KEY_BYTES);
    zmq_setsockopt(s->z, ZMQ_CURVE_SECRETKEY, sec, PX_NET_KEY_BYTES);
    zmq_setsockopt(s->z, ZMQ_ZAP_DOMAIN, "parallax", 8);
    s->server = true;
    attach_monitor(s);
    char ep[256];
    normalise_endpoint(endpoint, ep, sizeof ep);
    if (zmq_bind(s->z, ep)) {
        px_error_set("net: cannot listen on %s: %s", endpoint, zmq_strerror(zmq_errno()));
        px_sock_close(s);
        return NULL;
    }
    size_t len = sizeof s->endpoint;
    zmq_getsockopt(s->z, ZMQ_LAST_ENDPOINT, s->endpoint, &len);
    const char *colon = strrchr(s->endpoint, ':');
    s->port = colon ? atoi(colon + 1) : 0;
    return s;
}

px_sock *px_net_connect(px_net *n, const char *endpoint, const uint8_t server_pub[PX_NET_KEY_BYTES],
                        const char *identity) {
    px_sock *s = sock_new(n, ZMQ_DEALER);
    if (!s) return NULL;
    zmq_setsockopt(s->z, ZMQ_CURVE_SERVERKEY, server_pub, PX_NET_KEY_BYTES);
    zmq_setsockopt(s->z, ZMQ_CURVE_PUBLICKEY, n->keys.member_public, PX_NET_KEY_BYTES);
    zmq_setsockopt(s->z, ZMQ_CURVE_SECRETKEY, n->keys.member_secret, PX_NET_KEY_BYTES);
    if (identity) zmq_setsockopt(s->z, ZMQ_ROUTING_ID, identity, strlen(identity));
    int ivl = 100, max = 1000;
    zmq_setsockopt(s->z, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(s->z, ZMQ_RECONNECT_IVL_MAX, &max, sizeof max);
    attach_monitor(s);
    if (zmq_connect(s->z, endpoint)) {
        px_error_set("net: cannot connect to %s: %s", endpoint, zmq_strerror(zmq_errno()));
        px_sock_close(s);
        return NULL;
    }
    snprintf(s->endpoint, sizeof s->endpoint, "%s", endpoint);
    return s;
}

void px_sock_close(px_sock *s) {
    if (!s) return;
    if (s->mon) {
        zmq_socket_monitor(s->z, NULL, 0);
        zmq_close(s->mon);
    }
    zmq_close(s->z);
    free(s);
}

void px_sock_set_linger(px_sock *s, int ms) { zmq_setsockopt(s->z, ZMQ_LINGER, &ms, sizeof ms); }

int px_sock_port(const px_sock *s) { return s->port; }
void *px_sock_handle(px_sock *s) { return s->z; }
const char *px_sock_endpoint(const px_sock *s) { return s->endpoint; }
const char *px_sock_self(const px_sock *s) { return s->net->self; }

void px_sock_poll_events(px_sock *s, px_sock_events *out) {
    while (s->mon) {
        zmq_msg_t a, b;
        zmq_msg_init(&a);
        if (zmq_msg_recv(&a, s->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&a);
            break;
        }
        zmq_msg_init(&b);
        if (zmq_msg_more(&a)) zmq_msg_recv(&b, s->mon, 0);
        uint16_t ev = 0;
        if (zmq_msg_size(&a) >= 2) memcpy(&ev, zmq_msg_data(&a), 2);
        switch (ev) {
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED: s->ev.handshakes_ok++; break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: s->ev.auth_failed++; break;
        default:
            s->ev.protocol_failed++;
            if (s->server) {
                static double last;
                static int suppressed;
                int more = 0;
                if (log_allowed(&last, &suppressed, &more))
                    px_log_warn("net: a connection to %s failed its handshake (not CURVE, or not this cluster's "
                                "key)%s",
                                s->endpoint, more ? " [and earlier failures not logged]" : "");
            }
            break;
        }
        zmq_msg_close(&a);
        zmq_msg_close(&b);
    }
    if (out) *out = s->ev;
}
