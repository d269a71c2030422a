/* net.h - the net module: how Parallax nodes talk. It knows nothing of
 * models; the scheduler (`parallax run`) and the workers (`parallax join`)
 * build on it.
 *
 *   Schema      proto/parallax.proto, compiled by protoc-c at build time;
 *               messages are the generated Parallax__* structs.
 *   Transport   ZeroMQ. The scheduler binds a ROUTER that every worker's
 *               DEALER connects to (control messages, requests in, tokens
 *               out); each worker binds a ROUTER for data from its peers and
 *               connects DEALERs to the peers it sends to. A message is frame
 *               0 = one protobuf Envelope, optional frame 1 = raw activations.
 *   Security    Every socket uses CURVE (encryption + authentication). The
 *               scheduler's cluster keypair and a random join secret live in
 *               its state dir; a join token = the cluster's public key + the
 *               secret. Every member derives the same "member" client
 *               keypair from the secret; each process runs a ZAP handler that
 *               admits only that client key, so a node without the secret
 *               cannot complete a handshake with any node (it is refused and
 *               logged), and nobody without keys can read the traffic.
 *   Validation  px_net_recv() checks the version first, then decodes and
 *               validates every field (sizes, ids, ranges, the activation
 *               frame's length against dtype x tokens x hidden) before the
 *               caller sees the message. A bad version or a malformed
 *               message is answered with an Error (unless it was one) and
 *               reported as -1; it never reaches the caller.
 *   Discovery   px_beacon_*: a UDP broadcast beacon (CZMQ zbeacon) that
 *               carries the scheduler's cluster port and public key, for
 *               `parallax join -s auto`.
 *
 * Errors: -1/NULL + px_error_get(). Threads: a px_net (context + ZAP thread)
 * may be shared; each px_sock is used by one thread at a time (ZeroMQ rule).
 * docs/net.md has the protocol, the key handling and the tests.
 */
#ifndef PX_NET_H
#define PX_NET_H

#include "engine.h"
#include "parallax.pb-c.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#define PX_NET_PROTOCOL_VERSION 1

/* Limits every received message is checked against. */
#define PX_NET_ID_MAX 64            /* node ids: 1..63 bytes of [A-Za-z0-9._:@-] */
#define PX_NET_MAX_ROUTE 64         /* stages in one route */
#define PX_NET_MAX_LAYERS 4096
#define PX_NET_MAX_TOKENS (1 << 20) /* tokens in one Forward */
#define PX_NET_MAX_POS (1 << 24)    /* sequence positions */
#define PX_NET_MAX_HIDDEN 65536
#define PX_NET_MAX_VOCAB (1 << 24)
#define PX_NET_MAX_PEERS 4096
#define PX_NET_MAX_HEADER (16u << 20)        /* bytes of frame 0 */
#define PX_NET_MAX_ACTIVATIONS (1ull << 31)  /* bytes of frame 1 */
#define PX_NET_MAX_TEXT 4096                 /* error / reason strings */
#define PX_NET_MAX_WEIGHT_DTYPE 5            /* JoinReply.weight_dtype: px_dtype + 1, up to q4_0 */
#define PX_NET_MAX_LOGIT_BIAS 4096
#define PX_NET_MAX_STOP_IDS 1024
#define PX_NET_MAX_TOP_LOGPROBS 20

/* ---- keys, join token, state dir (keys.c) ---- */

#define PX_NET_KEY_BYTES 32
#define PX_NET_SECRET_BYTES 16

typedef struct {
    uint8_t cluster_public[PX_NET_KEY_BYTES];   /* the scheduler's CURVE server key */
    uint8_t cluster_secret[PX_NET_KEY_BYTES];   /* only on the scheduler (has_cluster_secret) */
    bool has_cluster_secret;
    uint8_t join_secret[PX_NET_SECRET_BYTES];
    uint8_t member_public[PX_NET_KEY_BYTES];    /* derived from join_secret */
    uint8_t member_secret[PX_NET_KEY_BYTES];
} px_net_keys;

/* "$XDG_STATE_HOME/parallax", else "$HOME/.local/state/parallax" (new string). */
char *px_net_default_state_dir(void);
/* Reads DIR/cluster.key and DIR/join.secret, creating them (mode 0600, DIR
 * 0700) when missing: the same cluster keeps the same token across restarts. */
int px_net_state_load(const char *dir, px_net_keys *out);
/* The join token: "px1_" + base64url(cluster_public || join_secret) (new string). */
char *px_net_token_format(const px_net_keys *k);
/* Fills cluster_public, join_secret and the member keypair; no cluster secret. */
int px_net_token_parse(const char *token, px_net_keys *out);
/* member keypair = crypto_box_seed_keypair(BLAKE2b("parallax member key" || secret)). */
void px_net_keys_derive_member(px_net_keys *k);
/* A fresh random CURVE keypair (a worker's data socket). */
void px_net_keypair(uint8_t pub[PX_NET_KEY_BYTES], uint8_t sec[PX_NET_KEY_BYTES]);
/* Short printable fingerprint of a public key for logs ("a1b2c3d4"). */
void px_net_key_fingerprint(const uint8_t pub[PX_NET_KEY_BYTES], char out[9]);

/* ---- context and sockets (transport.c, zap.c) ---- */

typedef struct px_net px_net;
typedef struct px_sock px_sock;

/* A ZeroMQ context whose ZAP handler admits CURVE clients holding
 * keys->member_public and refuses (and logs) every other client. */
px_net *px_net_new(const px_net_keys *keys);
void px_net_free(px_net *n);  /* close every socket first */
/* Handshakes refused by the ZAP handler so far. */
uint64_t px_net_refused(const px_net *n);
const px_net_keys *px_net_keys_of(const px_net *n);
/* Our node id, the sender of the Errors px_net_recv() answers with (default "node"). */
void px_net_set_self(px_net *n, const char *id);

/* ROUTER bound to endpoint ("tcp://0.0.0.0:7000", port 0 or "*" picks one),
 * CURVE server with the given keypair. Reconnecting peers with the same
 * routing id take over (ROUTER_HANDOVER); sending to an unknown or gone
 * peer fails at once (ROUTER_MANDATORY). */
px_sock *px_net_bind(px_net *n, const char *endpoint, const uint8_t pub[PX_NET_KEY_BYTES],
                     const uint8_t sec[PX_NET_KEY_BYTES]);
/* DEALER with routing id `identity`, CURVE client (member keypair) of a
 * server whose public key is server_pub; connects in the background. */
px_sock *px_net_connect(px_net *n, const char *endpoint, const uint8_t server_pub[PX_NET_KEY_BYTES],
                        const char *identity);
void px_sock_close(px_sock *s);
/* How long close waits to deliver queued messages (default 0: drop them). */
void px_sock_set_linger(px_sock *s, int ms);
/* The port a bound socket listens on. */
int px_sock_port(const px_sock *s);
/* For zmq_poll. */
void *px_sock_handle(px_sock *s);
const char *px_sock_endpoint(const px_sock *s);
const char *px_sock_self(const px_sock *s); /* the px_net's node id */
/* Handshake failures seen on this socket (monitor): for a client, the server
 * refused our keys (auth) or spoke another mechanism (protocol). */
typedef struct {
    int handshakes_ok, auth_failed, protocol_failed;
} px_sock_events;
void px_sock_poll_events(px_sock *s, px_sock_events *out);

/* ---- messages (msg.c) ---- */

typedef struct {
    Parallax__Envelope *env;     /* decoded and validated; owned */
    const void *act;             /* frame 1 (NULL when absent); valid until px_msg_free */
    size_t act_len;
    char peer[PX_NET_ID_MAX];    /* ROUTER sockets: the sender's routing id */
    zmq_msg_t frame;             /* holds act */
    bool has_frame;
} px_msg;

void px_msg_free(px_msg *m);

/* Sends env (version filled in) + optional activations. `to`: the peer's
 * routing id on a ROUTER, NULL on a DEALER. Never blocks: a full queue or an
 * unknown peer is -1 + error. */
int px_net_send(px_sock *s, const char *to, Parallax__Envelope *env, const void *act, size_t act_len);
/* After a failed send on this thread: true when the peer's connection is
 * gone (a ROUTER knows no such routing id any more: it disconnected). */
bool px_net_send_peer_gone(void);
/* Receives one message: 1 = *out holds a valid message, 0 = nothing within
 * timeout_ms (0: do not wait, -1: wait forever), -1 = a message arrived but
 * was refused (bad version, undecodable, invalid: px_error_get() says why,
 * out->peer names the sender; an Error was sent back unless the refused
 * message was itself an Error). */
int px_net_recv(px_sock *s, px_msg *out, int timeout_ms);

/* The checks px_net_recv applies, on their own: version, sender, the body
 * (every field), and the activation frame length. 0 or -1 + error. */
int px_net_validate(const Parallax__Envelope *env, size_t act_len);
/* Valid node id: 1..63 bytes of [A-Za-z0-9._:@-]. */
bool px_net_id_valid(const char *id);
/* The version field of an undecodable header, or -1. */
int px_net_peek_version(const void *data, size_t len);
/* "forward", "token", ... for logs. */
const char *px_net_body_name(const Parallax__Envelope *env);
/* Bytes per value of a Dtype (4, 2, 2) or 0 when unknown. */
size_t px_net_dtype_size(int dtype);

/* Builds an envelope around a body: px_net_env(&env, "w1", PARALLAX__ENVELOPE__BODY_TOKEN, &tok). */
void px_net_env(Parallax__Envelope *env, const char *sender, Parallax__Envelope__BodyCase kind, void *body);
/* Packs env (version filled in) into a new buffer, for a thread that does
 * not own the socket: it packs, the socket's thread sends with
 * px_net_send_raw(). Returns the length; *out is malloc'd. */
size_t px_net_pack(Parallax__Envelope *env, uint8_t **out);
/* Sends an already packed header (+ activations), like px_net_send(). */
int px_net_send_raw(px_sock *s, const char *to, const uint8_t *hdr, size_t hdr_len, const void *act, size_t act_len);
/* Sends an Error{code, message} (and our version). */
int px_net_send_error(px_sock *s, const char *to, const char *sender, Parallax__ErrorCode code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* ---- sampling parameters (sampling.c) ---- */
/* px_sampling <-> Parallax__Sampling; the arrays are shared, not copied, so
 * the source must outlive the result. from_wire starts from the defaults. */
void px_net_sampling_to_wire(const px_sampling *s, Parallax__Sampling *out);
void px_net_sampling_from_wire(const Parallax__Sampling *in, px_sampling *s);

/* ---- LAN discovery (beacon.c) ---- */

#define PX_BEACON_PORT 5670  /* UDP */

typedef struct px_beacon px_beacon;
/* Broadcasts "PXB1" + version + cluster port + cluster public key every
 * interval_ms on UDP port udp_port (0: PX_BEACON_PORT). */
px_beacon *px_beacon_publish(int udp_port, int cluster_port, const uint8_t pub[PX_NET_KEY_BYTES], int interval_ms);
/* Listens up to timeout_ms for a beacon whose key equals pub (NULL: any);
 * writes "tcp://IP:PORT" into endpoint. 0, or -1 + error on timeout. */
int px_beacon_find(int udp_port, const uint8_t pub[PX_NET_KEY_BYTES], int timeout_ms, char *endpoint, size_t cap,
                   uint8_t found_pub[PX_NET_KEY_BYTES]);
void px_beacon_stop(px_beacon *b);

#endif
