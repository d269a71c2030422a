/* test_net.c - the net module on loopback, without any model:
 *
 *   keys        the state dir keeps one keypair + secret across loads, files
 *               are 0600, tokens round-trip, malformed tokens are refused
 *   validate    px_net_validate() on hand-built envelopes, field by field
 *   processes   a forked "worker" process joins over CURVE, receives a
 *               Forward with a bf16 activation frame, sends it back and
 *               answers with a Token: bytes and fields arrive intact
 *   malformed   a raw ZeroMQ client (with valid keys) sends garbage,
 *               undecodable headers, a future version, wrong frame counts,
 *               wrong activation lengths, out-of-range fields: each is
 *               refused (-1 with a clear error), answered with an Error of
 *               the right code, and the socket keeps working afterwards
 *   no secret   a client whose join secret is wrong, one that speaks plain
 *               ZeroMQ (no CURVE) and one that trusts the wrong server key
 *               never get a message through; the server logs and counts the
 *               refusal and the wrong-secret client sees its handshake fail
 *   capture     a TCP relay between client and server records every byte:
 *               a distinctive text and token sequence sent through it never
 *               appear in the captured stream (CURVE encrypts)
 *   beacon      a published beacon is found with the right key (skipped when
 *               the machine has no broadcast-capable interface)
 */
#include "net.h"
#include "px_base.h"
#include "px_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_dir[256];

/* ---- helpers ---- */

static void make_keys(px_net_keys *server, px_net_keys *member) {
    CHECK(px_net_state_load(g_dir, server) == 0);
    char *tok = px_net_token_format(server);
    CHECK(px_net_token_parse(tok, member) == 0);
    free(tok);
}

static px_msg recv_ok(px_sock *s, int timeout_ms) {
    px_msg m;
    int rc = px_net_recv(s, &m, timeout_ms);
    CHECK_MSG(rc == 1, "recv rc %d: %s", rc, rc < 0 ? px_error_get() : "timeout");
    return m;
}

/* ---- keys ---- */

static void test_keys(void) {
    px_net_keys a, b, t;
    CHECK(px_net_state_load(g_dir, &a) == 0);
    CHECK(a.has_cluster_secret);
    CHECK(px_net_state_load(g_dir, &b) == 0);
    CHECK(!memcmp(a.cluster_public, b.cluster_public, 32) && !memcmp(a.cluster_secret, b.cluster_secret, 32));
    CHECK(!memcmp(a.join_secret, b.join_secret, 16) && !memcmp(a.member_public, b.member_public, 32));
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/cluster.key", g_dir);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    snprintf(path, sizeof path, "%s/join.secret", g_dir);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    char *tok = px_net_token_format(&a);
    CHECK(strlen(tok) == 4 + 64 && !strncmp(tok, "px1_", 4));
    CHECK(strspn(tok + 4, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == 64);
    CHECK(px_net_token_parse(tok, &t) == 0);
    CHECK(!memcmp(t.cluster_public, a.cluster_public, 32) && !t.has_cluster_secret);
    CHECK(!memcmp(t.member_public, a.member_public, 32) && !memcmp(t.member_secret, a.member_secret, 32));
    tok[10] = tok[10] == 'A' ? 'B' : 'A';
    CHECK(px_net_token_parse(tok, &t) == 0 && memcmp(t.cluster_public, a.cluster_public, 32)); /* still well-formed */
    tok[30] = 0;
    CHECK(px_net_token_parse(tok, &t) < 0);
    CHECK(px_net_token_parse("px2_AAAA", &t) < 0 && strstr(px_error_get(), "px1_"));
    CHECK(px_net_token_parse("", &t) < 0);
    free(tok);
    /* a corrupted key file is an error naming the file, not a new key */
    char dir2[300];
    snprintf(dir2, sizeof dir2, "%s/bad", g_dir);
    CHECK(px_net_state_load(dir2, &t) == 0);
    snprintf(path, sizeof path, "%s/cluster.key", dir2);
    FILE *f = fopen(path, "w");
    fputs("public 00\nsecret 11\n", f);
    fclose(f);
    CHECK(px_net_state_load(dir2, &t) < 0 && strstr(px_error_get(), "cluster.key"));
}

/* ---- validation ---- */

static void test_validate(void) {
    Parallax__Envelope e;
    Parallax__Forward f;
    char *route[2] = {"w1", "w2"};
    int32_t toks[3] = {1, 2, 3};
    parallax__forward__init(&f);
    f.req = 7, f.n_route = 2, f.route = route, f.hop = 1, f.n_tokens = 3, f.tokens = toks;
    f.dtype = PARALLAX__DTYPE__BF16, f.hidden = 8;
    px_net_env(&e, "w1", PARALLAX__ENVELOPE__BODY_FORWARD, &f);
    e.version = PX_NET_PROTOCOL_VERSION;
    CHECK(px_net_validate(&e, 3 * 8 * 2) == 0);
    CHECK(px_net_validate(&e, 3 * 8 * 2 - 1) < 0 && strstr(px_error_get(), "activation frame"));
    CHECK(px_net_validate(&e, 0) < 0);
    f.dtype = 9;
    CHECK(px_net_validate(&e, 48) < 0 && strstr(px_error_get(), "dtype"));
    f.dtype = PARALLAX__DTYPE__F32;
    CHECK(px_net_validate(&e, 3 * 8 * 4) == 0);
    f.hop = 2;
    CHECK(px_net_validate(&e, 96) < 0 && strstr(px_error_get(), "hop"));
    f.hop = 0;
    CHECK(px_net_validate(&e, 96) < 0 && strstr(px_error_get(), "first stage"));
    CHECK(px_net_validate(&e, 0) == 0);
    toks[1] = -4;
    CHECK(px_net_validate(&e, 0) < 0 && strstr(px_error_get(), "token 1"));
    toks[1] = 2;
    f.pos = PX_NET_MAX_POS - 1;
    CHECK(px_net_validate(&e, 0) < 0 && strstr(px_error_get(), "positions"));
    f.pos = 0;
    route[1] = "bad id";
    CHECK(px_net_validate(&e, 0) < 0 && strstr(px_error_get(), "route entry 1"));
    route[1] = "w2";
    f.req = 0;
    CHECK(px_net_validate(&e, 0) < 0);
    f.req = 7;
    /* a start needs sampling, pos 0, a sane prompt length */
    Parallax__Sampling s;
    parallax__sampling__init(&s);
    s.top_p = 1, s.repetition_penalty = 1, s.max_tokens = 4, s.top_logprobs = -1;
    f.start = true;
    CHECK(px_net_validate(&e, 0) < 0 && strstr(px_error_get(), "without sampling"));
    f.sampling = &s, f.n_prompt = 3, f.total = 3;
    CHECK(px_net_validate(&e, 0) == 0);
    s.top_p = 0;
    CHECK(px_net_validate(&e, 0) < 0 && strstr(px_error_get(), "top_p"));
    s.top_p = 1, s.temperature = -1;
    CHECK(px_net_validate(&e, 0) < 0 && strstr(px_error_get(), "temperature"));
    s.temperature = 0;
    int32_t bias_ids[2] = {1, 2};
    float bias_v[1] = {1};
    s.n_logit_bias_ids = 2, s.logit_bias_ids = bias_ids, s.n_logit_bias_values = 1, s.logit_bias_values = bias_v;
    CHECK(px_net_validate(&e, 0) < 0 && strstr(px_error_get(), "logit_bias"));
    s.n_logit_bias_ids = s.n_logit_bias_values = 0;
    f.total = 2;
    CHECK(px_net_validate(&e, 0) < 0 && strstr(px_error_get(), "n_prompt"));
    f.total = 0;
    CHECK(px_net_validate(&e, 0) == 0);
    f.total = 3;
    f.start = false;
    CHECK(px_net_validate(&e, 0) < 0 && strstr(px_error_get(), "outside a start"));
    f.sampling = NULL;
    /* envelope-level checks */
    e.version = 2;
    CHECK(px_net_validate(&e, 0) < 0 && strstr(px_error_get(), "protocol version 2"));
    e.version = PX_NET_PROTOCOL_VERSION;
    e.sender = "";
    CHECK(px_net_validate(&e, 0) < 0 && strstr(px_error_get(), "sender"));
    e.sender = "w1";
    e.body_case = PARALLAX__ENVELOPE__BODY__NOT_SET;
    CHECK(px_net_validate(&e, 0) < 0 && strstr(px_error_get(), "without a body"));
    /* token */
    Parallax__Token t;
    parallax__token__init(&t);
    t.req = 1, t.token = 5;
    px_net_env(&e, "w2", PARALLAX__ENVELOPE__BODY_TOKEN, &t);
    e.version = PX_NET_PROTOCOL_VERSION;
    CHECK(px_net_validate(&e, 0) == 0);
    CHECK(px_net_validate(&e, 4) < 0 && strstr(px_error_get(), "only forward"));
    t.finish = PARALLAX__FINISH__ABORT;
    CHECK(px_net_validate(&e, 0) < 0);
    t.token = -1;
    CHECK(px_net_validate(&e, 0) == 0);
    t.finish = 9;
    CHECK(px_net_validate(&e, 0) < 0 && strstr(px_error_get(), "finish"));
    t.finish = 0, t.token = 5;
    int32_t ids[2] = {1, 2};
    float lps[1] = {0};
    t.n_top_ids = 2, t.top_ids = ids, t.n_top_logprobs = 1, t.top_logprobs = lps;
    CHECK(px_net_validate(&e, 0) < 0 && strstr(px_error_get(), "top"));
    /* join */
    Parallax__Join j;
    Parallax__Hardware hw;
    uint8_t key[32] = {0};
    parallax__join__init(&j);
    parallax__hardware__init(&hw);
    j.hw = &hw, j.data_endpoint = "tcp://127.0.0.1:5000", j.data_key.data = key, j.data_key.len = 32;
    px_net_env(&e, "w1", PARALLAX__ENVELOPE__BODY_JOIN, &j);
    e.version = PX_NET_PROTOCOL_VERSION;
    CHECK(px_net_validate(&e, 0) == 0);
    j.data_key.len = 31;
    CHECK(px_net_validate(&e, 0) < 0 && strstr(px_error_get(), "data_key"));
    j.data_key.len = 32, j.manual = true, j.manual_start = 4, j.manual_end = 4;
    CHECK(px_net_validate(&e, 0) < 0 && strstr(px_error_get(), "slice"));
    j.manual = false, j.data_endpoint = "udp://x";
    CHECK(px_net_validate(&e, 0) < 0 && strstr(px_error_get(), "data_endpoint"));
    j.data_endpoint = "tcp://127.0.0.1:5000", hw.bandwidth = -1;
    CHECK(px_net_validate(&e, 0) < 0);
    /* join_reply: a model with layers, or no model yet (model "", 0 layers: stand by) */
    Parallax__JoinReply jr;
    parallax__join_reply__init(&jr);
    jr.accepted = true, jr.model = "/models/m", jr.n_layers = 4, jr.wire_dtype = PARALLAX__DTYPE__BF16, jr.heartbeat_ms = 500;
    px_net_env(&e, "scheduler", PARALLAX__ENVELOPE__BODY_JOIN_REPLY, &jr);
    e.version = PX_NET_PROTOCOL_VERSION;
    CHECK(px_net_validate(&e, 0) == 0);
    jr.model = "", jr.n_layers = 0;
    CHECK(px_net_validate(&e, 0) == 0);
    jr.n_layers = 4; /* layers without a model */
    CHECK(px_net_validate(&e, 0) < 0 && strstr(px_error_get(), "join_reply"));
    jr.model = "/models/m", jr.n_layers = 0; /* a model without layers */
    CHECK(px_net_validate(&e, 0) < 0 && strstr(px_error_get(), "join_reply"));
    jr.n_layers = 4, jr.weight_dtype = PX_NET_MAX_WEIGHT_DTYPE; /* q4_0 weights (run --dtype q4_0) */
    CHECK(px_net_validate(&e, 0) == 0);
    jr.weight_dtype = PX_NET_MAX_WEIGHT_DTYPE + 1;
    CHECK(px_net_validate(&e, 0) < 0 && strstr(px_error_get(), "join_reply"));
    /* heartbeat: loading progress can not pass its total */
    Parallax__Heartbeat hb;
    parallax__heartbeat__init(&hb);
    hb.load_done = 10, hb.load_total = 100;
    px_net_env(&e, "w1", PARALLAX__ENVELOPE__BODY_HEARTBEAT, &hb);
    e.version = PX_NET_PROTOCOL_VERSION;
    CHECK(px_net_validate(&e, 0) == 0);
    hb.load_done = 101;
    CHECK(px_net_validate(&e, 0) < 0 && strstr(px_error_get(), "loaded 101 of 100"));
    CHECK(px_net_id_valid("node-1.lan:7@x") && !px_net_id_valid("a b") && !px_net_id_valid("") &&
          !px_net_id_valid("0123456789012345678901234567890123456789012345678901234567890123"));
    uint8_t hdr[3] = {0x08, 0x85, 0x01};
    CHECK(px_net_peek_version(hdr, 3) == 133);
    CHECK(px_net_peek_version("\x12\x01", 2) == -1);
}

/* ---- two processes: a worker joins and exchanges Forward / Token ---- */

static const int H = 8, T = 3;

static int child_worker(int port_fd, const px_net_keys *member) {
    int port = 0;
    if (read(port_fd, &port, sizeof port) != sizeof port) return 10;
    px_net *net = px_net_new(member);
    if (!net) return 11;
    px_net_set_self(net, "w1");
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port);
    px_sock *s = px_net_connect(net, ep, member->cluster_public, "w1");
    int rc = 0;
    Parallax__Join j;
    Parallax__Hardware hw;
    uint8_t dpub[32], dsec[32];
    px_net_keypair(dpub, dsec);
    parallax__join__init(&j);
    parallax__hardware__init(&hw);
    hw.cores = 2, hw.memory_bytes = 1ull << 30, hw.bandwidth = 2e10, hw.flops = 1e11, hw.hostname = "child";
    j.hw = &hw, j.data_endpoint = "tcp://127.0.0.1:1", j.data_key.data = dpub, j.data_key.len = 32;
    Parallax__Envelope env;
    px_net_env(&env, "w1", PARALLAX__ENVELOPE__BODY_JOIN, &j);
    if (px_net_send(s, NULL, &env, NULL, 0)) rc = 12;
    px_msg m;
    if (!rc && px_net_recv(s, &m, 10000) != 1) rc = 13;
    if (!rc && m.env->body_case != PARALLAX__ENVELOPE__BODY_FORWARD) rc = 14;
    if (!rc) {
        /* echo the activations back to hop 0 of a reversed route, then a token */
        Parallax__Forward *in = m.env->forward, out;
        parallax__forward__init(&out);
        char *route[2] = {"scheduler", "w1"};
        out.req = in->req, out.epoch = in->epoch, out.n_route = 2, out.route = route, out.hop = 1;
        out.n_tokens = in->n_tokens, out.tokens = in->tokens, out.dtype = in->dtype, out.hidden = in->hidden;
        out.pos = in->pos;
        px_net_env(&env, "w1", PARALLAX__ENVELOPE__BODY_FORWARD, &out);
        if (px_net_send(s, NULL, &env, m.act, m.act_len)) rc = 15;
        Parallax__Token t;
        parallax__token__init(&t);
        int32_t top[2] = {5, 6};
        float lp[2] = {-0.5f, -1.5f};
        t.req = in->req, t.epoch = in->epoch, t.pos = 3, t.token = in->tokens[0] + in->tokens[1] + in->tokens[2];
        t.logprob = -0.25f, t.n_top_ids = 2, t.top_ids = top, t.n_top_logprobs = 2, t.top_logprobs = lp;
        t.finish = PARALLAX__FINISH__LENGTH, t.prompt_tokens = 3;
        px_net_env(&env, "w1", PARALLAX__ENVELOPE__BODY_TOKEN, &t);
        if (!rc && px_net_send(s, NULL, &env, NULL, 0)) rc = 16;
        px_msg_free(&m);
    }
    /* wait for the parent's goodbye so our messages are flushed first */
    if (!rc && px_net_recv(s, &m, 10000) == 1) px_msg_free(&m);
    px_sock_close(s);
    px_net_free(net);
    return rc;
}

static void test_processes(const px_net_keys *server_keys, const px_net_keys *member) {
    int fds[2];
    CHECK(pipe(fds) == 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[1]);
        _exit(child_worker(fds[0], member));
    }
    close(fds[0]);
    px_net *net = px_net_new(server_keys);
    px_net_set_self(net, "scheduler");
    px_sock *srv = px_net_bind(net, "tcp://127.0.0.1:0", server_keys->cluster_public, server_keys->cluster_secret);
    CHECK(srv && px_sock_port(srv) > 0);
    int port = px_sock_port(srv);
    CHECK(write(fds[1], &port, sizeof port) == sizeof port);
    close(fds[1]);

    px_msg m = recv_ok(srv, 10000);
    CHECK(m.env && m.env->body_case == PARALLAX__ENVELOPE__BODY_JOIN);
    CHECK(!strcmp(m.peer, "w1") && !strcmp(m.env->sender, "w1"));
    if (m.env && m.env->join) {
        CHECK(m.env->join->hw->cores == 2 && m.env->join->hw->memory_bytes == 1ull << 30);
        CHECK(!strcmp(m.env->join->hw->hostname, "child") && m.env->join->data_key.len == 32);
    }
    px_msg_free(&m);

    uint16_t act[3 * 8];
    for (int i = 0; i < T * H; i++) act[i] = (uint16_t)(0x3f80 + i * 7); /* bf16 bit patterns */
    Parallax__Forward f;
    parallax__forward__init(&f);
    char *route[2] = {"scheduler", "w1"};
    int32_t toks[3] = {10, 20, 30};
    f.req = 42, f.epoch = 3, f.n_route = 2, f.route = route, f.hop = 1, f.pos = 5, f.n_tokens = T, f.tokens = toks;
    f.dtype = PARALLAX__DTYPE__BF16, f.hidden = H;
    Parallax__Envelope env;
    px_net_env(&env, "scheduler", PARALLAX__ENVELOPE__BODY_FORWARD, &f);
    CHECK(px_net_send(srv, "w1", &env, act, sizeof act) == 0);
    CHECK(px_net_send(srv, "nobody", &env, act, sizeof act) < 0 && strstr(px_error_get(), "not connected"));

    m = recv_ok(srv, 10000);
    CHECK(m.env && m.env->body_case == PARALLAX__ENVELOPE__BODY_FORWARD);
    if (m.env && m.env->forward) {
        CHECK(m.env->forward->req == 42 && m.env->forward->epoch == 3 && m.env->forward->pos == 5);
        CHECK(m.act_len == sizeof act && !memcmp(m.act, act, sizeof act));
    }
    px_msg_free(&m);
    m = recv_ok(srv, 10000);
    CHECK(m.env && m.env->body_case == PARALLAX__ENVELOPE__BODY_TOKEN);
    if (m.env && m.env->token) {
        Parallax__Token *t = m.env->token;
        CHECK(t->req == 42 && t->epoch == 3 && t->pos == 3 && t->token == 60 && t->finish == PARALLAX__FINISH__LENGTH);
        CHECK(t->n_top_ids == 2 && t->top_ids[1] == 6 && t->top_logprobs[1] == -1.5f && t->logprob == -0.25f);
    }
    px_msg_free(&m);
    Parallax__Leave lv;
    parallax__leave__init(&lv);
    px_net_env(&env, "scheduler", PARALLAX__ENVELOPE__BODY_LEAVE, &lv);
    px_net_send(srv, "w1", &env, NULL, 0);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "worker process exit status %d", WEXITSTATUS(status));
    px_sock_close(srv);
    px_net_free(net);
}

/* ---- malformed messages from a client that holds valid keys ---- */

static void raw_send(void *z, const void *a, size_t al, const void *b, size_t bl, const void *c, size_t cl) {
    zmq_send(z, a, al, b ? ZMQ_SNDMORE : 0);
    if (b) zmq_send(z, b, bl, c ? ZMQ_SNDMORE : 0);
    if (c) zmq_send(z, c, cl, 0);
}

static size_t pack_env(Parallax__Envelope *e, uint32_t version, uint8_t *buf) {
    e->version = version;
    return parallax__envelope__pack(e, buf);
}

/* Expects the server to refuse the next message (with `what` in the error),
 * and the client to get an Error of `code`. */
static void expect_refused(px_sock *srv, px_sock *cli, const char *what, Parallax__ErrorCode code) {
    px_msg m;
    int rc = px_net_recv(srv, &m, 5000);
    CHECK_MSG(rc == -1, "expected a refusal (%s), got %d", what, rc);
    if (rc == -1) CHECK_MSG(strstr(px_error_get(), what) != NULL, "error '%s' lacks '%s'", px_error_get(), what);
    if (rc == 1) px_msg_free(&m);
    rc = px_net_recv(cli, &m, 5000);
    CHECK_MSG(rc == 1 && m.env->body_case == PARALLAX__ENVELOPE__BODY_ERROR, "no Error answer for %s", what);
    if (rc == 1) {
        CHECK_MSG(m.env->error->code == code, "error code %d for %s", (int)m.env->error->code, what);
        CHECK(m.env->error->version == PX_NET_PROTOCOL_VERSION);
        px_msg_free(&m);
    }
}

static void test_malformed(const px_net_keys *server_keys, const px_net_keys *member) {
    px_net *ns = px_net_new(server_keys), *nc = px_net_new(member);
    px_net_set_self(ns, "scheduler");
    px_sock *srv = px_net_bind(ns, "tcp://127.0.0.1:0", server_keys->cluster_public, server_keys->cluster_secret);
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", px_sock_port(srv));
    px_sock *cli = px_net_connect(nc, ep, member->cluster_public, "evil");
    void *z = px_sock_handle(cli);
    uint8_t buf[4096];
    Parallax__Envelope e;
    Parallax__Ping ping;
    parallax__ping__init(&ping);
    px_net_env(&e, "evil", PARALLAX__ENVELOPE__BODY_PING, &ping);

    /* a valid ping first: the connection works */
    CHECK(px_net_send(cli, NULL, &e, NULL, 0) == 0);
    px_msg m = recv_ok(srv, 5000);
    CHECK(m.env && !strcmp(m.peer, "evil"));
    px_msg_free(&m);

    raw_send(z, "\xff\xff\xff\xff", 4, NULL, 0, NULL, 0);
    expect_refused(srv, cli, "undecodable", PARALLAX__ERROR_CODE__INVALID);

    size_t n = pack_env(&e, 2, buf);
    raw_send(z, buf, n, NULL, 0, NULL, 0);
    expect_refused(srv, cli, "protocol version 2", PARALLAX__ERROR_CODE__VERSION);

    const uint8_t future[] = {0x08, 0x07, 0xff, 0xff, 0xff, 0x0f, 0x99}; /* version 7, then bytes we cannot parse */
    raw_send(z, future, sizeof future, NULL, 0, NULL, 0);
    expect_refused(srv, cli, "protocol version 7", PARALLAX__ERROR_CODE__VERSION);

    n = pack_env(&e, 1, buf);
    raw_send(z, buf, n, "x", 1, "y", 1);
    expect_refused(srv, cli, "more than two frames", PARALLAX__ERROR_CODE__INVALID);
    raw_send(z, buf, n, "abcd", 4, NULL, 0);
    expect_refused(srv, cli, "only forward", PARALLAX__ERROR_CODE__INVALID);

    Parallax__Forward f;
    parallax__forward__init(&f);
    char *route[2] = {"a", "b"};
    int32_t toks[2] = {1, 2};
    f.req = 1, f.n_route = 2, f.route = route, f.hop = 1, f.n_tokens = 2, f.tokens = toks, f.dtype = PARALLAX__DTYPE__F16;
    f.hidden = 4;
    px_net_env(&e, "evil", PARALLAX__ENVELOPE__BODY_FORWARD, &f);
    n = pack_env(&e, 1, buf);
    uint8_t act[64] = {0};
    raw_send(z, buf, n, act, 15, NULL, 0);
    expect_refused(srv, cli, "activation frame of 15 bytes", PARALLAX__ERROR_CODE__INVALID);
    raw_send(z, buf, n, NULL, 0, NULL, 0);
    expect_refused(srv, cli, "activation frame of 0 bytes", PARALLAX__ERROR_CODE__INVALID);
    toks[0] = 1 << 25;
    n = pack_env(&e, 1, buf);
    raw_send(z, buf, n, act, 16, NULL, 0);
    expect_refused(srv, cli, "token 0", PARALLAX__ERROR_CODE__INVALID);
    toks[0] = 1;
    e.sender = "has space";
    n = pack_env(&e, 1, buf);
    raw_send(z, buf, n, act, 16, NULL, 0);
    expect_refused(srv, cli, "sender", PARALLAX__ERROR_CODE__INVALID);
    e.sender = "evil";
    raw_send(z, "", 0, NULL, 0, NULL, 0); /* an empty protobuf decodes, with version 0 */
    expect_refused(srv, cli, "protocol version 0", PARALLAX__ERROR_CODE__VERSION);

    /* an Error with a bad version is refused but not answered (no ping-pong) */
    Parallax__Error err;
    parallax__error__init(&err);
    err.message = "x";
    px_net_env(&e, "evil", PARALLAX__ENVELOPE__BODY_ERROR, &err);
    n = pack_env(&e, 9, buf);
    raw_send(z, buf, n, NULL, 0, NULL, 0);
    CHECK(px_net_recv(srv, &m, 5000) == -1);
    CHECK(px_net_recv(cli, &m, 300) == 0);

    /* still serving: a good forward goes through intact */
    n = pack_env(&e, 1, buf); /* (unused) */
    px_net_env(&e, "evil", PARALLAX__ENVELOPE__BODY_FORWARD, &f);
    CHECK(px_net_send(cli, NULL, &e, act, 16) == 0);
    m = recv_ok(srv, 5000);
    CHECK(m.env && m.env->forward && m.act_len == 16);
    px_msg_free(&m);
    px_sock_close(cli);
    px_sock_close(srv);
    px_net_free(nc);
    px_net_free(ns);
}

/* ---- nodes without the secret ---- */

static void test_no_secret(const px_net_keys *server_keys, const px_net_keys *member) {
    px_net *ns = px_net_new(server_keys);
    px_sock *srv = px_net_bind(ns, "tcp://127.0.0.1:0", server_keys->cluster_public, server_keys->cluster_secret);
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", px_sock_port(srv));

    /* right server key, wrong join secret */
    px_net_keys wrong = *member;
    wrong.join_secret[0] ^= 1;
    px_net_keys_derive_member(&wrong);
    px_net *nw = px_net_new(&wrong);
    px_sock *cw = px_net_connect(nw, ep, wrong.cluster_public, "intruder");
    Parallax__Envelope e;
    Parallax__Ping ping;
    parallax__ping__init(&ping);
    px_net_env(&e, "intruder", PARALLAX__ENVELOPE__BODY_PING, &ping);
    px_net_send(cw, NULL, &e, NULL, 0);
    px_msg m;
    CHECK(px_net_recv(srv, &m, 1500) == 0);
    CHECK(px_net_refused(ns) >= 1);
    px_sock_events ev = {0};
    for (int i = 0; i < 50 && !ev.auth_failed; i++) {
        px_sock_poll_events(cw, &ev);
        usleep(20000);
    }
    CHECK_MSG(ev.auth_failed >= 1, "the client saw no auth failure (ok %d, proto %d)", ev.handshakes_ok, ev.protocol_failed);
    CHECK(ev.handshakes_ok == 0);

    /* plain ZeroMQ, no CURVE at all */
    void *ctx = zmq_ctx_new(), *plain = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(plain, ZMQ_LINGER, &zero, sizeof zero);
    zmq_connect(plain, ep);
    uint8_t buf[256];
    e.version = 1;
    size_t n = parallax__envelope__pack(&e, buf);
    zmq_send(plain, buf, n, ZMQ_DONTWAIT);
    CHECK(px_net_recv(srv, &m, 1500) == 0);
    px_sock_events sev;
    px_sock_poll_events(srv, &sev);
    CHECK(sev.protocol_failed + sev.auth_failed >= 1);
    zmq_close(plain);
    zmq_ctx_term(ctx);

    /* right secret, but trusting another server key (an impostor scheduler's) */
    uint8_t other_pub[32], other_sec[32];
    px_net_keypair(other_pub, other_sec);
    px_net *nm = px_net_new(member);
    px_sock *cm = px_net_connect(nm, ep, other_pub, "confused");
    px_net_send(cm, NULL, &e, NULL, 0);
    CHECK(px_net_recv(srv, &m, 1500) == 0);

    px_sock_close(cm);
    px_net_free(nm);
    px_sock_close(cw);
    px_net_free(nw);
    px_sock_close(srv);
    px_net_free(ns);
}

/* ---- capture: a TCP relay records every byte between client and server ---- */

typedef struct {
    int listen_fd, target_port;
    char *buf;
    size_t len, cap;
    volatile int stop;
} relay;

static void relay_add(relay *r, const char *d, size_t n) {
    if (r->len + n > r->cap) {
        r->cap = (r->len + n) * 2;
        r->buf = px_realloc(r->buf, r->cap);
    }
    memcpy(r->buf + r->len, d, n);
    r->len += n;
}

static void *relay_main(void *arg) {
    relay *r = arg;
    int a = accept(r->listen_fd, NULL, NULL);
    int b = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)r->target_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (a < 0 || connect(b, (struct sockaddr *)&sa, sizeof sa)) return NULL;
    char buf[65536];
    while (!r->stop) {
        struct pollfd p[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
        if (poll(p, 2, 50) <= 0) continue;
        for (int i = 0; i < 2; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP))) continue;
            ssize_t n = read(p[i].fd, buf, sizeof buf);
            if (n <= 0) {
                r->stop = 1;
                break;
            }
            relay_add(r, buf, (size_t)n);
            if (write(i ? a : b, buf, (size_t)n) != n) r->stop = 1;
        }
    }
    close(a);
    close(b);
    return NULL;
}

static bool contains(const char *hay, size_t n, const void *needle, size_t m) {
    return memmem(hay, n, needle, m) != NULL;
}

static void test_capture(const px_net_keys *server_keys, const px_net_keys *member) {
    px_net *ns = px_net_new(server_keys), *nc = px_net_new(member);
    px_sock *srv = px_net_bind(ns, "tcp://127.0.0.1:0", server_keys->cluster_public, server_keys->cluster_secret);
    relay r = {.target_port = px_sock_port(srv)};
    r.listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    CHECK(bind(r.listen_fd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(r.listen_fd, 1) == 0);
    getsockname(r.listen_fd, (struct sockaddr *)&sa, &sl);
    pthread_t th;
    pthread_create(&th, NULL, relay_main, &r);
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", ntohs(sa.sin_port));
    px_sock *cli = px_net_connect(nc, ep, member->cluster_public, "w1");

    const char *secret_text = "The quick brown prompt about PLAINTEXT-NEEDLE-4711";
    Parallax__Error err;
    parallax__error__init(&err);
    err.message = (char *)secret_text;
    Parallax__Envelope e;
    px_net_env(&e, "w1", PARALLAX__ENVELOPE__BODY_ERROR, &err);
    CHECK(px_net_send(cli, NULL, &e, NULL, 0) == 0);
    int32_t toks[8] = {1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008};
    char *route[1] = {"w1"};
    Parallax__Forward f;
    parallax__forward__init(&f);
    f.req = 1, f.n_route = 1, f.route = route, f.n_tokens = 8, f.tokens = toks;
    px_net_env(&e, "w1", PARALLAX__ENVELOPE__BODY_FORWARD, &f);
    CHECK(px_net_send(cli, NULL, &e, NULL, 0) == 0);
    px_msg m = recv_ok(srv, 5000);
    CHECK(m.env && m.env->error && !strcmp(m.env->error->message, secret_text));
    px_msg_free(&m);
    m = recv_ok(srv, 5000);
    CHECK(m.env && m.env->forward && m.env->forward->tokens[7] == 1008);
    /* what a packed token list looks like in plaintext protobuf */
    uint8_t plain[256];
    e.version = 1;
    size_t pn = parallax__envelope__pack(&e, plain);
    px_msg_free(&m);
    r.stop = 1;
    pthread_join(th, NULL);
    close(r.listen_fd);
    CHECK(r.len > 200);
    CHECK(!contains(r.buf, r.len, "PLAINTEXT-NEEDLE", 16));
    CHECK(!contains(r.buf, r.len, "quick brown", 11));
    CHECK(!contains(r.buf, r.len, plain + pn - 16, 16)); /* the tail: the packed token ids */
    CHECK(contains(r.buf, r.len, "CURVE", 5));           /* the ZMTP greeting names the mechanism */
    printf("capture: %zu bytes relayed, no plaintext\n", r.len);
    free(r.buf);
    px_sock_close(cli);
    px_sock_close(srv);
    px_net_free(nc);
    px_net_free(ns);
}

/* ---- beacon ---- */

static void test_beacon(const px_net_keys *k) {
    int udp = 20000 + (int)(getpid() % 20000);
    px_beacon *b = px_beacon_publish(udp, 4321, k->cluster_public, 100);
    if (!b) {
        printf("beacon: SKIP (%s)\n", px_error_get());
        return;
    }
    char ep[128];
    uint8_t pub[32];
    int rc = px_beacon_find(udp, k->cluster_public, 5000, ep, sizeof ep, pub);
    CHECK_MSG(rc == 0, "beacon not found: %s", px_error_get());
    if (!rc) {
        CHECK(strstr(ep, ":4321") && !strncmp(ep, "tcp://", 6) && !memcmp(pub, k->cluster_public, 32));
        printf("beacon: found %s\n", ep);
    }
    uint8_t other[32];
    memset(other, 7, sizeof other);
    CHECK(px_beacon_find(udp, other, 600, ep, sizeof ep, NULL) < 0 && strstr(px_error_get(), "no scheduler"));
    px_beacon_stop(b);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/px-test-net-%d/state", (int)getpid());
    test_keys();
    test_validate();
    px_net_keys server_keys, member;
    make_keys(&server_keys, &member);
    test_processes(&server_keys, &member);
    test_malformed(&server_keys, &member);
    test_no_secret(&server_keys, &member);
    test_capture(&server_keys, &member);
    test_beacon(&server_keys);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf /tmp/px-test-net-%d", (int)getpid());
    if (system(cmd)) {}
    return px_test_finish();
}
