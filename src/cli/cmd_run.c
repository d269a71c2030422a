/* cmd_run.c - `parallax run`: the cluster's scheduler process. It starts
 * the scheduler (src/scheduler/: cluster keys in the state dir, the CURVE
 * cluster port, the LAN beacon) and the same OpenAI HTTP server as
 * `parallax serve` with the scheduler as its backend, chooses the model
 * given with -m (config + tokenizer only are used here; it holds no
 * weights) or, without -m, waits in the "setup" state for the web UI's
 * Setup page (POST /cluster/setup) to choose one among the --model-dir
 * directories, the Hugging Face cache or a typed path / repo id; prints the
 * exact `parallax join` command for other machines, logs when the cluster
 * becomes available (N workers joined and a whole pipeline loaded) and shuts
 * down on SIGINT/SIGTERM (HTTP first, then the scheduler). Signals are
 * blocked before any thread starts so only sigwait() here sees them. */
#include "cli.h"
#include "hub.h"
#include "net.h"
#include "px_base.h"
#include "scheduler.h"
#include "server.h"
#include "tensor.h"
#include "tokenizer.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_MODEL_DIRS 64

typedef struct {
    const char *model, *host, *cluster_host, *api_key, *name, *revision, *state_dir;
    const char *model_dirs[MAX_MODEL_DIRS];
    int n_model_dirs;
    long port, cluster_port, workers, heartbeat_ms, beacon_port, context, max_body, max_requests;
    double dead_after;
    int wire_dtype, dtype;
    int64_t worker_kv;
    bool no_beacon;
} run_args;

static void print_help(void) {
    printf("usage: parallax run [-m MODEL] [options]\n"
           "Starts a cluster scheduler: the OpenAI-compatible API of `parallax serve`, whose requests run\n"
           "as a pipeline over the workers that join (`parallax join`). It holds no weights.\n"
           "  -m, --model MODEL             a model directory, or a hub repo id (workers load the same); without\n"
           "                                it, choose the model on the web page's Setup (http://HOST:PORT/#/setup)\n"
           "      --model-dir DIR           a directory Setup offers models from (DIR itself, or the models one\n"
           "                                level down); repeatable. Setup also lists the Hugging Face cache\n"
           "      --revision REV            hub revision (main)\n"
           "  -n, --workers N               workers to wait for before the cluster counts as available (1)\n"
           "      --host ADDR               HTTP address (127.0.0.1)\n"
           "      --port N                  HTTP port (3001; 0 picks one)\n"
           "      --cluster-host ADDR       address workers connect to (0.0.0.0 = all)\n"
           "      --cluster-port P          cluster port, CURVE-encrypted (7000; 0 picks one)\n"
           "      --state-dir DIR           cluster keypair + join secret ($XDG_STATE_HOME/parallax)\n"
           "      --wire-dtype D            activations between stages: bf16 (default), f16, f32 (exact)\n"
           "      --dtype D                 weight dtype on the workers: f32, f16, bf16, q8_0, q4_0 (default: as stored)\n"
           "      --worker-kv-cache-memory M  KV cache per worker (4G, 512M; default: the worker's own)\n"
           "      --context-length N        longest prompt + completion (the model's)\n"
           "      --heartbeat-ms N          worker heartbeat period (500)\n"
           "      --dead-after S            seconds of silence before a worker counts as dead (3)\n"
           "      --no-beacon               do not announce the cluster on the LAN (UDP broadcast)\n"
           "      --beacon-port P           UDP port of the beacon (%d)\n"
           "      --api-key KEY             require 'Authorization: Bearer KEY' on /v1 ($PARALLAX_API_KEY)\n"
           "      --served-model-name NAME  the model id clients use\n"
           "      --max-body-bytes N, --max-requests N   as for parallax serve\n"
           "Endpoints: those of parallax serve, plus GET /cluster/status and /cluster/status/stream (NDJSON),\n"
           "GET /cluster/models, POST /cluster/setup {\"model\", \"nodes\"} and GET /cluster/join (docs/web.md).\n"
           "The join token is printed at start; it is the key to the cluster: keep it private.\n",
           PX_BEACON_PORT);
}

static bool parse_size(const char *flag, const char *v, int64_t *out) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || !(x > 0)) return px_usage_error("%s: '%s' is not a size", flag, v), false;
    double mult = 1;
    switch (toupper((unsigned char)*end)) {
    case 0: break;
    case 'K': mult = 1024.0; break;
    case 'M': mult = 1024.0 * 1024; break;
    case 'G': mult = 1024.0 * 1024 * 1024; break;
    case 'T': mult = 1024.0 * 1024 * 1024 * 1024; break;
    default: return px_usage_error("%s: unknown unit in '%s' (K, M, G, T)", flag, v), false;
    }
    *out = (int64_t)(x * mult);
    return true;
}

static int wire_dtype_parse(const char *v) {
    if (!strcasecmp(v, "bf16") || !strcasecmp(v, "bfloat16")) return PARALLAX__DTYPE__BF16;
    if (!strcasecmp(v, "f16") || !strcasecmp(v, "float16")) return PARALLAX__DTYPE__F16;
    if (!strcasecmp(v, "f32") || !strcasecmp(v, "float32")) return PARALLAX__DTYPE__F32;
    return -1;
}

static int parse_flag(const char *f, const char *v, run_args *a) {
    struct { const char *name; long *out; long lo, hi; } ints[] = {
        {"--port", &a->port, 0, 65535}, {"--cluster-port", &a->cluster_port, 0, 65535}, {"-n", &a->workers, 1, 4096},
        {"--workers", &a->workers, 1, 4096}, {"--heartbeat-ms", &a->heartbeat_ms, 10, 60000},
        {"--beacon-port", &a->beacon_port, 1, 65535}, {"--context-length", &a->context, 2, 1 << 24},
        {"--max-body-bytes", &a->max_body, 1024, 1L << 30}, {"--max-requests", &a->max_requests, 1, 1 << 20}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (!strcmp(f, ints[i].name)) return px_flag_int(f, v, ints[i].lo, ints[i].hi, ints[i].out) ? 0 : 2;
    if (!strcmp(f, "-m") || !strcmp(f, "--model")) a->model = v;
    else if (!strcmp(f, "--model-dir")) {
        if (a->n_model_dirs == MAX_MODEL_DIRS) return px_usage_error("--model-dir: at most %d", MAX_MODEL_DIRS);
        a->model_dirs[a->n_model_dirs++] = v;
    }
    else if (!strcmp(f, "--host")) a->host = v;
    else if (!strcmp(f, "--cluster-host")) a->cluster_host = v;
    else if (!strcmp(f, "--api-key")) a->api_key = v;
    else if (!strcmp(f, "--served-model-name")) a->name = v;
    else if (!strcmp(f, "--revision")) a->revision = v;
    else if (!strcmp(f, "--state-dir")) a->state_dir = v;
    else if (!strcmp(f, "--dead-after")) return px_flag_float(f, v, 0.2, 3600, &a->dead_after) ? 0 : 2;
    else if (!strcmp(f, "--worker-kv-cache-memory")) return parse_size(f, v, &a->worker_kv) ? 0 : 2;
    else if (!strcmp(f, "--wire-dtype")) {
        if ((a->wire_dtype = wire_dtype_parse(v)) < 0) return px_usage_error("--wire-dtype: '%s' (bf16, f16, f32)", v);
    } else if (!strcmp(f, "--dtype")) {
        if ((a->dtype = px_dtype_parse(v)) < 0) return px_usage_error("--dtype: unknown dtype '%s' (f32, f16, bf16, q8_0, q4_0)", v);
    } else return px_usage_error("run: unknown flag '%s' (see parallax run --help)", f);
    return 0;
}

static int parse_args(int argc, char **argv, run_args *a) {
    *a = (run_args){.host = "127.0.0.1", .port = 3001, .cluster_host = "0.0.0.0", .cluster_port = 7000, .workers = 1,
                    .wire_dtype = PARALLAX__DTYPE__BF16, .dtype = -1, .api_key = getenv("PARALLAX_API_KEY")};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v;
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) return print_help(), 1;
        if (!strcmp(f, "--no-beacon")) { a->no_beacon = true; continue; }
        if (!(v = px_flag_value(argc, argv, &i))) return 2;
        int rc = parse_flag(f, v, a);
        if (rc) return rc;
    }
    return 0;
}

/* An address of this machine other machines can use: the cluster host when
 * it is a specific one, else the source address of the default route (no
 * packet is sent), else the host name. */
static void public_address(const char *cluster_host, char *out, size_t cap) {
    if (strcmp(cluster_host, "0.0.0.0") && strcmp(cluster_host, "::") && strcmp(cluster_host, "*")) {
        snprintf(out, cap, strchr(cluster_host, ':') ? "[%s]" : "%s", cluster_host);
        return;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(9)}, me;
    socklen_t ml = sizeof me;
    inet_pton(AF_INET, "192.0.2.1", &sa.sin_addr);
    if (fd >= 0 && !connect(fd, (struct sockaddr *)&sa, sizeof sa) && !getsockname(fd, (struct sockaddr *)&me, &ml) &&
        inet_ntop(AF_INET, &me.sin_addr, out, (socklen_t)cap)) {
        close(fd);
        return;
    }
    if (fd >= 0) close(fd);
    if (gethostname(out, cap)) snprintf(out, cap, "127.0.0.1");
}

typedef struct {
    px_sched *sched;
    px_server *server;
} run_state;

static void teardown(run_state *st) {
    px_server_free(st->server); /* first: aborts HTTP requests in flight */
    px_sched_free(st->sched);
}

static int start_all(const run_args *a, run_state *st) {
    char addr[256];
    public_address(a->cluster_host, addr, sizeof addr);
    px_sched_options so = {.served_name = a->name, .revision = a->revision, .model_dirs = a->model_dirs,
                           .n_model_dirs = a->n_model_dirs, .join_address = addr, .host = a->cluster_host,
                           .port = a->cluster_port ? (int)a->cluster_port : -1, .state_dir = a->state_dir,
                           .wire_dtype = a->wire_dtype, .weight_dtype = a->dtype, .heartbeat_ms = (int)a->heartbeat_ms,
                           .dead_after = a->dead_after, .beacon = !a->no_beacon, .beacon_port = (int)a->beacon_port,
                           .min_workers = (int)a->workers, .worker_kv_bytes = a->worker_kv,
                           .context_length = (int)a->context};
    if (!(st->sched = px_sched_create(&so))) return -1;
    px_server_backend be = px_sched_backend(st->sched);
    px_server_options svo = {.host = a->host, .port = a->port ? (int)a->port : -1, .api_key = a->api_key,
                             .model_name = a->name, .max_body_bytes = (size_t)a->max_body,
                             .max_requests = (int)a->max_requests};
    if (!(st->server = px_server_create_backend(&be, NULL, 0, &svo))) return -1;
    px_sched_attach_server(st->sched, st->server);
    if (a->model && px_sched_setup(st->sched, a->model, (int)a->workers)) return -1;
    if (px_server_start(st->server)) return -1;
    char *cmd = px_sched_join_command(st->sched), *name = px_sched_model_name(st->sched),
         *dir = px_sched_model_dir(st->sched);
    const char *lb = strchr(a->host, ':') ? "[" : "", *rb = strchr(a->host, ':') ? "]" : "";
    int cport = px_sched_port(st->sched), hport = px_server_port(st->server);
    if (name)
        px_log_info("scheduler for %s as '%s' (%d layers): HTTP on http://%s%s%s:%d, cluster port %d; waiting for %ld "
                    "worker%s",
                    dir, name, px_sched_n_layers(st->sched), lb, a->host, rb, hport, cport, a->workers,
                    a->workers == 1 ? "" : "s");
    else
        px_log_info("scheduler without a model yet: HTTP on http://%s%s%s:%d, cluster port %d; choose the model at "
                    "http://%s%s%s:%d/#/setup (or POST /cluster/setup); workers that join meanwhile wait for it",
                    lb, a->host, rb, hport, cport, lb, a->host, rb, hport);
    printf("To add a worker, run on each machine:\n  %s\n", cmd);
    if (!a->no_beacon) printf("or, on this LAN:\n  parallax join -s auto --token %s\n", px_sched_token(st->sched));
    fflush(stdout);
    free(cmd);
    free(name);
    free(dir);
    return 0;
}

int px_cmd_run(int argc, char **argv) {
    run_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc == 1 ? 0 : rc;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    run_state st = {0};
    if (start_all(&a, &st)) {
        fprintf(stderr, "parallax: %s\n", px_error_get());
        teardown(&st);
        return 1;
    }
    int sig = 0;
    sigwait(&set, &sig);
    px_log_info("%s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    teardown(&st);
    return 0;
}
