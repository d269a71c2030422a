/* msg.c - messages on the wire: encoding, receiving, validation.
 *
 * Sending packs the Envelope (version filled in here) into frame 0 and
 * copies the activations into frame 1; on a ROUTER the peer's routing id goes
 * first. Nothing blocks (ZMQ_DONTWAIT): a full queue or a gone peer is an
 * error the caller handles (the peer is dead or slow; the scheduler re-routes).
 *
 * Receiving reads all frames of one message, then refuses, in this order:
 * too many frames or an oversized header; a version other than ours (read
 * from the raw bytes when the rest does not decode, so even a future
 * incompatible schema gets a clear answer); undecodable protobuf; and then
 * px_net_validate(): sender id, body present, every field of the body in
 * range, repeated fields of matching lengths, the activation frame present
 * exactly when a Forward's hop > 0 and exactly tokens x hidden x dtype bytes.
 * A refused message is answered with an Error (unless it is an Error, so two
 * nodes never ping-pong complaints) and never handed to the caller. */
#include "net.h"
#include "px_base.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAIL(...) return px_error_set(__VA_ARGS__), -1

/* ---- small helpers ---- */

bool px_net_id_valid(const char *id) {
    if (!id) return false;
    size_t n = strlen(id);
    if (n == 0 || n >= PX_NET_ID_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("._:@-", c)))
            return false;
    }
    return true;
}

size_t px_net_dtype_size(int dtype) {
    switch (dtype) {
    case PARALLAX__DTYPE__F32: return 4;
    case PARALLAX__DTYPE__F16:
    case PARALLAX__DTYPE__BF16: return 2;
    default: return 0;
    }
}

int px_net_peek_version(const void *data, size_t len) {
    const uint8_t *p = data;
    if (len < 2 || p[0] != 0x08) return -1; /* field 1, varint */
    uint64_t v = 0;
    for (size_t i = 1, shift = 0; i < len && shift < 35; i++, shift += 7) {
        v |= (uint64_t)(p[i] & 0x7f) << shift;
        if (!(p[i] & 0x80)) return v > INT32_MAX ? -1 : (int)v;
    }
    return -1;
}

const char *px_net_body_name(const Parallax__Envelope *env) {
    switch (env ? env->body_case : 0) {
    case PARALLAX__ENVELOPE__BODY_JOIN: return "join";
    case PARALLAX__ENVELOPE__BODY_JOIN_REPLY: return "join_reply";
    case PARALLAX__ENVELOPE__BODY_HEARTBEAT: return "heartbeat";
    case PARALLAX__ENVELOPE__BODY_LEAVE: return "leave";
    case PARALLAX__ENVELOPE__BODY_ASSIGN: return "assign";
    case PARALLAX__ENVELOPE__BODY_READY: return "ready";
    case PARALLAX__ENVELOPE__BODY_PEERS: return "peers";
    case PARALLAX__ENVELOPE__BODY_FORWARD: return "forward";
    case PARALLAX__ENVELOPE__BODY_TOKEN: return "token";
    case PARALLAX__ENVELOPE__BODY_RELEASE: return "release";
    case PARALLAX__ENVELOPE__BODY_PING: return "ping";
    case PARALLAX__ENVELOPE__BODY_PONG: return "pong";
    case PARALLAX__ENVELOPE__BODY_ERROR: return "error";
    default: return "none";
    }
}

void px_net_env(Parallax__Envelope *env, const char *sender, Parallax__Envelope__BodyCase kind, void *body) {
    parallax__envelope__init(env);
    env->sender = (char *)sender;
    env->body_case = kind;
    switch (kind) {
    case PARALLAX__ENVELOPE__BODY_JOIN: env->join = body; break;
    case PARALLAX__ENVELOPE__BODY_JOIN_REPLY: env->join_reply = body; break;
    case PARALLAX__ENVELOPE__BODY_HEARTBEAT: env->heartbeat = body; break;
    case PARALLAX__ENVELOPE__BODY_LEAVE: env->leave = body; break;
    case PARALLAX__ENVELOPE__BODY_ASSIGN: env->assign = body; break;
    case PARALLAX__ENVELOPE__BODY_READY: env->ready = body; break;
    case PARALLAX__ENVELOPE__BODY_PEERS: env->peers = body; break;
    case PARALLAX__ENVELOPE__BODY_FORWARD: env->forward = body; break;
    case PARALLAX__ENVELOPE__BODY_TOKEN: env->token = body; break;
    case PARALLAX__ENVELOPE__BODY_RELEASE: env->release = body; break;
    case PARALLAX__ENVELOPE__BODY_PING: env->ping = body; break;
    case PARALLAX__ENVELOPE__BODY_PONG: env->pong = body; break;
    case PARALLAX__ENVELOPE__BODY_ERROR: env->error = body; break;
    default: env->body_case = PARALLAX__ENVELOPE__BODY__NOT_SET; break;
    }
}

/* ---- validation ---- */

static bool text_ok(const char *s, size_t max) { return s && strlen(s) <= max; }
static bool finite_ok(double x) { return isfinite(x); }

static int check_slice(bool on, int start, int end, const char *what) {
    if (!on) return 0;
    if (start < 0 || end <= start || end > PX_NET_MAX_LAYERS) FAIL("%s: slice [%d, %d) out of range", what, start, end);
    return 0;
}

static int check_join(const Parallax__Join *j) {
    if (!j->hw) FAIL("join: hardware missing");
    const Parallax__Hardware *h = j->hw;
    if (!finite_ok(h->bandwidth) || h->bandwidth < 0 || !finite_ok(h->flops) || h->flops < 0)
        FAIL("join: bandwidth/flops must be finite and >= 0");
    if (h->cores > 1u << 20) FAIL("join: %u cores", h->cores);
    if (!text_ok(h->gpu_name, 256) || !text_ok(h->hostname, 256) || !text_ok(j->region, 64))
        FAIL("join: gpu_name/hostname/region too long");
    if (!text_ok(j->data_endpoint, 255) || strncmp(j->data_endpoint, "tcp://", 6))
        FAIL("join: data_endpoint must be tcp://HOST:PORT");
    if (j->data_key.len != PX_NET_KEY_BYTES) FAIL("join: data_key must be %d bytes", PX_NET_KEY_BYTES);
    if (check_slice(j->manual, j->manual_start, j->manual_end, "join: manual")) return -1;
    if (j->threads > 4096 || j->max_batch > 1u << 16) FAIL("join: threads/max_batch out of range");
    return 0;
}

static int check_sampling(const Parallax__Sampling *s) {
    if (!finite_ok(s->temperature) || s->temperature < 0) FAIL("sampling: temperature %g", s->temperature);
    if (s->top_k < 0) FAIL("sampling: top_k %d", s->top_k);
    if (!(s->top_p > 0 && s->top_p <= 1)) FAIL("sampling: top_p %g", s->top_p);
    if (!(s->min_p >= 0 && s->min_p <= 1)) FAIL("sampling: min_p %g", s->min_p);
    if (!(s->repetition_penalty > 0) || !finite_ok(s->repetition_penalty))
        FAIL("sampling: repetition_penalty %g", s->repetition_penalty);
    if (!finite_ok(s->presence_penalty) || !finite_ok(s->frequency_penalty)) FAIL("sampling: penalties must be finite");
    if (s->top_logprobs < -1 || s->top_logprobs > PX_NET_MAX_TOP_LOGPROBS) FAIL("sampling: top_logprobs %d", s->top_logprobs);
    if (s->n_logit_bias_ids != s->n_logit_bias_values || s->n_logit_bias_ids > PX_NET_MAX_LOGIT_BIAS)
        FAIL("sampling: %zu logit_bias ids, %zu values", s->n_logit_bias_ids, s->n_logit_bias_values);
    for (size_t i = 0; i < s->n_logit_bias_ids; i++)
        if (s->logit_bias_ids[i] < 0 || s->logit_bias_ids[i] >= PX_NET_MAX_VOCAB || !finite_ok(s->logit_bias_values[i]))
            FAIL("sampling: logit_bias entry %zu", i);
    if (s->max_tokens < 1 || s->max_tokens > PX_NET_MAX_POS) FAIL("sampling: max_tokens %d", s->max_tokens);
    if (s->n_stop_ids > PX_NET_MAX_STOP_IDS) FAIL("sampling: %zu stop ids", s->n_stop_ids);
    for (size_t i = 0; i < s->n_stop_ids; i++)
        if (s->stop_ids[i] < 0 || s->stop_ids[i] >= PX_NET_MAX_VOCAB) FAIL("sampling: stop id %d", s->stop_ids[i]);
    return 0;
}

static int check_forward(const Parallax__Forward *f, size_t act_len) {
    if (f->req == 0) FAIL("forward: request id 0");
    if (f->n_route < 1 || f->n_route > PX_NET_MAX_ROUTE) FAIL("forward: %zu stages in the route", f->n_route);
    for (size_t i = 0; i < f->n_route; i++)
        if (!px_net_id_valid(f->route[i])) FAIL("forward: route entry %zu is not a node id", i);
    if (f->hop >= f->n_route) FAIL("forward: hop %u of a %zu-stage route", f->hop, f->n_route);
    if (f->n_tokens < 1 || f->n_tokens > PX_NET_MAX_TOKENS) FAIL("forward: %zu tokens", f->n_tokens);
    for (size_t i = 0; i < f->n_tokens; i++)
        if (f->tokens[i] < 0 || f->tokens[i] >= PX_NET_MAX_VOCAB) FAIL("forward: token %zu = %d", i, f->tokens[i]);
    if ((uint64_t)f->pos + f->n_tokens > PX_NET_MAX_POS) FAIL("forward: positions %u + %zu out of range", f->pos, f->n_tokens);
    if (f->start) {
        if (!f->sampling) FAIL("forward: a start without sampling parameters");
        if (f->pos != 0) FAIL("forward: a start at position %u (must be 0)", f->pos);
        if (f->n_prompt < 1 || f->n_prompt > PX_NET_MAX_POS || (f->total && f->total < f->n_prompt) ||
            f->total > PX_NET_MAX_POS)
            FAIL("forward: start with n_prompt %u, total %u", f->n_prompt, f->total);
        if (check_sampling(f->sampling)) return -1;
    } else if (f->sampling) FAIL("forward: sampling parameters outside a start");
    if (f->hop == 0) {
        if (act_len) FAIL("forward: %zu activation bytes for the first stage (it takes token ids)", act_len);
        return 0;
    }
    size_t dsz = px_net_dtype_size(f->dtype);
    if (!dsz) FAIL("forward: unknown activation dtype %d", (int)f->dtype);
    if (f->hidden < 1 || f->hidden > PX_NET_MAX_HIDDEN) FAIL("forward: hidden %u", f->hidden);
    uint64_t want = (uint64_t)f->n_tokens * f->hidden * dsz;
    if (want != act_len) FAIL("forward: activation frame of %zu bytes, expected %zu x %u x %zu = %llu", act_len, f->n_tokens,
                              f->hidden, dsz, (unsigned long long)want);
    return 0;
}

static int check_token(const Parallax__Token *t) {
    if (t->req == 0) FAIL("token: request id 0");
    if (t->pos >= PX_NET_MAX_POS) FAIL("token: position %u", t->pos);
    if (t->finish < PARALLAX__FINISH__NONE || t->finish > PARALLAX__FINISH__ERROR) FAIL("token: finish %d", (int)t->finish);
    bool tokenless = t->finish == PARALLAX__FINISH__ABORT || t->finish == PARALLAX__FINISH__ERROR;
    if (tokenless ? t->token != -1 : (t->token < 0 || t->token >= PX_NET_MAX_VOCAB)) FAIL("token: id %d", t->token);
    if (t->n_top_ids != t->n_top_logprobs || t->n_top_ids > PX_NET_MAX_TOP_LOGPROBS)
        FAIL("token: %zu top ids, %zu top logprobs", t->n_top_ids, t->n_top_logprobs);
    for (size_t i = 0; i < t->n_top_ids; i++)
        if (t->top_ids[i] < 0 || t->top_ids[i] >= PX_NET_MAX_VOCAB) FAIL("token: top id %d", t->top_ids[i]);
    if (!text_ok(t->error, PX_NET_MAX_TEXT)) FAIL("token: error text too long");
    return 0;
}

static int check_body(const Parallax__Envelope *e, size_t act_len) {
    if (e->body_case != PARALLAX__ENVELOPE__BODY_FORWARD && act_len)
        FAIL("%s: carries %zu bytes of activations (only forward may)", px_net_body_name(e), act_len);
    switch (e->body_case) {
    case PARALLAX__ENVELOPE__BODY_JOIN: return check_join(e->join);
    case PARALLAX__ENVELOPE__BODY_JOIN_REPLY: {
        const Parallax__JoinReply *r = e->join_reply;
        if (!text_ok(r->reason, PX_NET_MAX_TEXT) || !text_ok(r->model, 4096) || !text_ok(r->revision, 256))
            FAIL("join_reply: text too long");
        /* model "" with n_layers 0: accepted, no model chosen yet (stand by) */
        bool none = !*r->model && r->n_layers == 0;
        if (r->accepted && ((!none && (r->n_layers < 1 || r->n_layers > PX_NET_MAX_LAYERS || !*r->model)) ||
                            !px_net_dtype_size(r->wire_dtype) || r->weight_dtype > PX_NET_MAX_WEIGHT_DTYPE || r->heartbeat_ms < 10 ||
                            r->heartbeat_ms > 60000))
            FAIL("join_reply: model, layers, dtypes or heartbeat out of range");
        return 0;
    }
    case PARALLAX__ENVELOPE__BODY_HEARTBEAT: {
        const Parallax__Heartbeat *h = e->heartbeat;
        if (!finite_ok(h->layer_latency) || h->layer_latency < 0) FAIL("heartbeat: layer_latency %g", h->layer_latency);
        if (h->n_rtts > PX_NET_MAX_PEERS) FAIL("heartbeat: %zu RTTs", h->n_rtts);
        if (h->load_done > h->load_total) FAIL("heartbeat: loaded %llu of %llu bytes", (unsigned long long)h->load_done,
                                               (unsigned long long)h->load_total);
        for (size_t i = 0; i < h->n_rtts; i++)
            if (!px_net_id_valid(h->rtts[i]->peer) || !finite_ok(h->rtts[i]->seconds) || h->rtts[i]->seconds < 0)
                FAIL("heartbeat: RTT entry %zu", i);
        return 0;
    }
    case PARALLAX__ENVELOPE__BODY_LEAVE:
        if (!text_ok(e->leave->reason, PX_NET_MAX_TEXT)) FAIL("leave: reason too long");
        return 0;
    case PARALLAX__ENVELOPE__BODY_ASSIGN: return check_slice(e->assign->serve, e->assign->start, e->assign->end, "assign");
    case PARALLAX__ENVELOPE__BODY_READY:
        if (!text_ok(e->ready->error, PX_NET_MAX_TEXT) || !finite_ok(e->ready->load_seconds)) FAIL("ready: bad error/time");
        if (e->ready->start == -1 && e->ready->end == -1) return 0; /* standing by */
        return check_slice(e->ready->ok, e->ready->start, e->ready->end, "ready");
    case PARALLAX__ENVELOPE__BODY_PEERS:
        if (e->peers->n_peers > PX_NET_MAX_PEERS) FAIL("peers: %zu entries", e->peers->n_peers);
        for (size_t i = 0; i < e->peers->n_peers; i++) {
            const Parallax__Peer *p = e->peers->peers[i];
            if (!px_net_id_valid(p->id) || !text_ok(p->endpoint, 255) || strncmp(p->endpoint, "tcp://", 6) ||
                p->key.len != PX_NET_KEY_BYTES)
                FAIL("peers: entry %zu malformed", i);
        }
        return 0;
    case PARALLAX__ENVELOPE__BODY_FORWARD: return check_forward(e->forward, act_len);
    case PARALLAX__ENVELOPE__BODY_TOKEN: return check_token(e->token);
    case PARALLAX__ENVELOPE__BODY_RELEASE:
        if (!e->release->req) FAIL("release: request id 0");
        return 0;
    case PARALLAX__ENVELOPE__BODY_PING:
        if (!finite_ok(e->ping->sent)) FAIL("ping: time not finite");
        return 0;
    case PARALLAX__ENVELOPE__BODY_PONG:
        if (!finite_ok(e->pong->sent)) FAIL("pong: time not finite");
        return 0;
    case PARALLAX__ENVELOPE__BODY_ERROR:
        if (!text_ok(e->error->message, PX_NET_MAX_TEXT)) FAIL("error: text too long");
        return 0;
    default: FAIL("message without a body");
    }
}

int px_net_validate(const Parallax__Envelope *env, size_t act_len) {
    if (!env) FAIL("no message");
    if (env->version != PX_NET_PROTOCOL_VERSION)
        FAIL("protocol version %u, this build speaks %d", env->version, PX_NET_PROTOCOL_VERSION);
    if (!px_net_id_valid(env->sender)) FAIL("sender is not a valid node id");
    return check_body(env, act_len);
}

/* ---- sending ---- */

static _Thread_local int g_send_errno; /* of the last failed send on this thread */

bool px_net_send_peer_gone(void) { return g_send_errno == EHOSTUNREACH; }

static int send_frame(void *z, const void *data, size_t len, int more) {
    g_send_errno = 0;
    if (zmq_send(z, data, len, ZMQ_DONTWAIT | (more ? ZMQ_SNDMORE : 0)) < 0) return -1;
    return 0;
}

int px_net_send(px_sock *s, const char *to, Parallax__Envelope *env, const void *act, size_t act_len) {
    env->version = PX_NET_PROTOCOL_VERSION;
    size_t n = parallax__envelope__get_packed_size(env);
    uint8_t stackbuf[512], *buf = n <= sizeof stackbuf ? stackbuf : px_malloc(n);
    parallax__envelope__pack(env, buf);
    void *z = px_sock_handle(s);
    int rc = 0;
    if (to && send_frame(z, to, strlen(to), 1)) rc = -1;
    else if (send_frame(z, buf, n, act_len > 0)) rc = -1; /* after the routing id the rest always queues */
    else if (act_len && send_frame(z, act, act_len, 0)) rc = -1;
    g_send_errno = 0;
    if (rc) {
        int err = g_send_errno = zmq_errno();
        px_error_set("net: send %s to %s: %s", px_net_body_name(env), to ? to : px_sock_endpoint(s),
                     err == EHOSTUNREACH ? "peer not connected" : zmq_strerror(err));
    }
    if (buf != stackbuf) free(buf);
    return rc;
}

size_t px_net_pack(Parallax__Envelope *env, uint8_t **out) {
    env->version = PX_NET_PROTOCOL_VERSION;
    size_t n = parallax__envelope__get_packed_size(env);
    *out = px_malloc(n ? n : 1);
    parallax__envelope__pack(env, *out);
    return n;
}

int px_net_send_raw(px_sock *s, const char *to, const uint8_t *hdr, size_t hdr_len, const void *act, size_t act_len) {
    void *z = px_sock_handle(s);
    if ((to && send_frame(z, to, strlen(to), 1)) || send_frame(z, hdr, hdr_len, act_len > 0) ||
        (act_len && send_frame(z, act, act_len, 0))) {
        int err = g_send_errno = zmq_errno();
        px_error_set("net: send to %s: %s", to ? to : px_sock_endpoint(s),
                     err == EHOSTUNREACH ? "peer not connected" : zmq_strerror(err));
        return -1;
    }
    return 0;
}

int px_net_send_error(px_sock *s, const char *to, const char *sender, Parallax__ErrorCode code, const char *fmt, ...) {
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    Parallax__Error err;
    parallax__error__init(&err);
    err.code = code;
    err.message = text;
    err.version = PX_NET_PROTOCOL_VERSION;
    Parallax__Envelope env;
    px_net_env(&env, sender, PARALLAX__ENVELOPE__BODY_ERROR, &err);
    return px_net_send(s, to, &env, NULL, 0);
}

/* ---- receiving ---- */

void px_msg_free(px_msg *m) {
    if (m->env) parallax__envelope__free_unpacked(m->env, NULL);
    if (m->has_frame) zmq_msg_close(&m->frame);
    memset(m, 0, sizeof *m);
}

static int wait_readable(void *z, int timeout_ms) {
    if (timeout_ms == 0) return 1;
    zmq_pollitem_t it = {.socket = z, .events = ZMQ_POLLIN};
    int rc = zmq_poll(&it, 1, timeout_ms);
    if (rc < 0) return px_error_set("net: poll: %s", zmq_strerror(zmq_errno())), -1;
    return rc;
}

/* Reads the frames of one message: [routing id], header, [activations]. */
static int read_frames(void *z, bool router, zmq_msg_t *frames, int *n_frames, int *extra) {
    *n_frames = *extra = 0;
    for (;;) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        int flags = *n_frames == 0 && !*extra ? ZMQ_DONTWAIT : 0;
        if (zmq_msg_recv(&part, z, flags) < 0) {
            zmq_msg_close(&part);
            if (*n_frames == 0 && zmq_errno() == EAGAIN) return 0;
            return px_error_set("net: recv: %s", zmq_strerror(zmq_errno())), -1;
        }
        bool more = zmq_msg_more(&part);
        if (*n_frames < (router ? 3 : 2)) frames[(*n_frames)++] = part;
        else {
            (*extra)++;
            zmq_msg_close(&part);
        }
        if (!more) return 1;
    }
}

int px_net_recv(px_sock *s, px_msg *out, int timeout_ms) {
    memset(out, 0, sizeof *out);
    void *z = px_sock_handle(s);
    int w = wait_readable(z, timeout_ms);
    if (w <= 0) return w;
    int type = 0;
    size_t tl = sizeof type;
    zmq_getsockopt(z, ZMQ_TYPE, &type, &tl);
    bool router = type == ZMQ_ROUTER;
    zmq_msg_t f[3];
    int nf, extra;
    int rc = read_frames(z, router, f, &nf, &extra);
    if (rc <= 0) return rc;
    int i = 0;
    if (router) {
        size_t l = PX_MIN(zmq_msg_size(&f[0]), PX_NET_ID_MAX - 1);
        memcpy(out->peer, zmq_msg_data(&f[0]), l);
        out->peer[l] = 0;
        i = 1;
    }
    const char *why = NULL;
    int bad_version = -1;
    Parallax__ErrorCode code = PARALLAX__ERROR_CODE__INVALID;
    bool reply = true;
    char whybuf[600];
    if (nf <= i) why = "an empty message";
    else if (extra) why = "more than two frames";
    else if (zmq_msg_size(&f[i]) > PX_NET_MAX_HEADER) why = "a header over the size limit";
    if (!why) {
        const uint8_t *hdr = zmq_msg_data(&f[i]);
        size_t hl = zmq_msg_size(&f[i]);
        out->env = parallax__envelope__unpack(NULL, hl, hdr);
        int v = out->env ? (int)out->env->version : px_net_peek_version(hdr, hl);
        if (v != PX_NET_PROTOCOL_VERSION && v >= 0) {
            bad_version = v;
            code = PARALLAX__ERROR_CODE__VERSION;
            snprintf(whybuf, sizeof whybuf, "protocol version %d from %s; this build speaks version %d", v,
                     out->peer[0] ? out->peer : "the peer", PX_NET_PROTOCOL_VERSION);
            why = whybuf;
            if (out->env && out->env->body_case == PARALLAX__ENVELOPE__BODY_ERROR) reply = false;
        } else if (!out->env) why = "an undecodable header";
        else {
            if (out->env->body_case == PARALLAX__ENVELOPE__BODY_ERROR) reply = false;
            size_t act_len = nf > i + 1 ? zmq_msg_size(&f[i + 1]) : 0;
            if (px_net_validate(out->env, act_len)) {
                snprintf(whybuf, sizeof whybuf, "%s", px_error_get());
                why = whybuf;
            }
        }
    }
    if (why) {
        char msg[700];
        if (bad_version >= 0) snprintf(msg, sizeof msg, "%s", why);
        else snprintf(msg, sizeof msg, "refused a message from %s: %s", out->peer[0] ? out->peer : "the peer", why);
        for (int k = 0; k < nf; k++) zmq_msg_close(&f[k]);
        if (out->env) parallax__envelope__free_unpacked(out->env, NULL);
        out->env = NULL;
        if (reply) px_net_send_error(s, router ? out->peer : NULL, px_sock_self(s), code, "%s", why);
        px_error_set("%s", msg);
        return -1;
    }
    if (router) zmq_msg_close(&f[0]);
    zmq_msg_close(&f[i]);
    if (nf > i + 1) {
        out->frame = f[i + 1];
        out->has_frame = true;
        out->act = zmq_msg_data(&out->frame);
        out->act_len = zmq_msg_size(&out->frame);
        if (!out->act_len) out->act = NULL;
    }
    return 1;
}
