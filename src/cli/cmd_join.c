/* cmd_join.c - `parallax join`: a cluster worker. Parses the flags into
 * px_worker_options and runs the worker (src/worker/) on this thread; a
 * signal thread turns SIGINT/SIGTERM into a stop request, after which the
 * worker leaves the cluster cleanly. Exit code 1 with one clear line on a
 * fatal error (refused token, version mismatch, unloadable model).
 * $PARALLAX_TEST_LOAD_DELAY_MS (tests only) slows loading down by that many
 * milliseconds per tensor, so a test can watch the loading progress. */
#include "cli.h"
#include "net.h"
#include "px_base.h"
#include "worker.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_help(void) {
    printf("usage: parallax join [-s auto|HOST:PORT] --token TOKEN [options]\n"
           "Joins a cluster started with `parallax run`, loads the layers the scheduler assigns and serves them.\n"
           "  -s, --scheduler ADDR          HOST:PORT of the scheduler's cluster port, or auto (LAN beacon; default)\n"
           "      --token TOKEN             the join token parallax run printed ($PARALLAX_JOIN_TOKEN)\n"
           "  -t, --threads N               compute threads (all CPUs)\n"
           "      --max-batch-size B        requests per step (32)\n"
           "      --start-layer S --end-layer E   hold exactly layers [S, E) (a manual slice)\n"
           "  -m, --model MODEL             where to find the model here (default: the scheduler's path or repo id)\n"
           "      --kv-cache-memory M       KV cache: bytes (4G, 512M) or a fraction of free memory (0.3)\n"
           "      --memory BYTES            memory to report for weights + KV (default: MemAvailable)\n"
           "      --node-id ID              this worker's name in the cluster (HOSTNAME-XXXX)\n"
           "      --data-port P             port for data from other workers (any free port)\n"
           "      --advertise HOST[:PORT]   where other workers reach this one (default: our address towards the\n"
           "                                scheduler and the data port; a PORT for a port forward)\n"
           "      --region R                a region label (pipelines stay inside one when they can)\n"
           "      --beacon-port P           UDP port of the LAN beacon (%d)\n"
           "      --join-timeout S          give up when no scheduler answers within S seconds (wait forever)\n"
           "      --no-probe                do not measure memory bandwidth and matmul speed at start\n",
           PX_BEACON_PORT);
}

static int parse_args(int argc, char **argv, px_worker_options *o) {
    px_worker_options_defaults(o);
    o->token = getenv("PARALLAX_JOIN_TOKEN");
    long threads = 0, batch = 0, start = -1, end = -1, data_port = 0, beacon_port = 0;
    double memory = 0, timeout = 0;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v;
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) return print_help(), 1;
        if (!strcmp(f, "--no-probe")) { o->skip_probe = true; continue; }
        if (!(v = px_flag_value(argc, argv, &i))) return 2;
        bool ok = true;
        if (!strcmp(f, "-s") || !strcmp(f, "--scheduler")) o->scheduler = v;
        else if (!strcmp(f, "--token")) o->token = v;
        else if (!strcmp(f, "-m") || !strcmp(f, "--model")) o->model = v;
        else if (!strcmp(f, "--node-id")) o->node_id = v;
        else if (!strcmp(f, "--advertise")) o->advertise = v;
        else if (!strcmp(f, "--region")) o->region = v;
        else if (!strcmp(f, "-t") || !strcmp(f, "--threads")) ok = px_flag_int(f, v, 1, 1024, &threads);
        else if (!strcmp(f, "--max-batch-size")) ok = px_flag_int(f, v, 1, 65536, &batch);
        else if (!strcmp(f, "--start-layer")) ok = px_flag_int(f, v, 0, PX_NET_MAX_LAYERS - 1, &start);
        else if (!strcmp(f, "--end-layer")) ok = px_flag_int(f, v, 1, PX_NET_MAX_LAYERS, &end);
        else if (!strcmp(f, "--data-port")) ok = px_flag_int(f, v, 0, 65535, &data_port);
        else if (!strcmp(f, "--beacon-port")) ok = px_flag_int(f, v, 1, 65535, &beacon_port);
        else if (!strcmp(f, "--memory")) ok = px_flag_float(f, v, 1, 1e18, &memory);
        else if (!strcmp(f, "--join-timeout")) ok = px_flag_float(f, v, 0.1, 1e9, &timeout);
        else if (!strcmp(f, "--kv-cache-memory")) ok = px_flag_memory("--kv-cache-memory", v, &o->kv_cache_bytes, &o->kv_fraction);
        else return px_usage_error("join: unknown flag '%s' (see parallax join --help)", f);
        if (!ok) return 2;
    }
    if ((start >= 0) != (end >= 0)) return px_usage_error("--start-layer and --end-layer go together");
    if (start >= 0 && end <= start) return px_usage_error("--end-layer %ld must be above --start-layer %ld", end, start);
    if (!o->token || !*o->token)
        return px_usage_error("join: --token is required (parallax run prints it; or set $PARALLAX_JOIN_TOKEN)");
    o->threads = (int)threads, o->max_batch = (int)batch;
    o->manual_start = (int)start, o->manual_end = (int)end;
    o->data_port = (int)data_port, o->beacon_port = (int)beacon_port;
    o->memory_bytes = (uint64_t)memory;
    o->join_timeout = timeout;
    const char *delay = getenv("PARALLAX_TEST_LOAD_DELAY_MS"); /* tests: watch loading progress */
    if (delay && *delay) o->load_delay_ms = (int)PX_MAX(0L, PX_MIN(strtol(delay, NULL, 10), 10000L));
    return 0;
}

static atomic_bool g_stop;
static sigset_t g_set;

static void *signal_main(void *arg) {
    (void)arg;
    int sig = 0;
    sigwait(&g_set, &sig);
    px_log_info("%s: leaving the cluster", sig == SIGINT ? "SIGINT" : "SIGTERM");
    atomic_store(&g_stop, true);
    return NULL;
}

int px_cmd_join(int argc, char **argv) {
    px_worker_options o;
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc == 1 ? 0 : rc;
    sigemptyset(&g_set);
    sigaddset(&g_set, SIGINT);
    sigaddset(&g_set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &g_set, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_t th;
    pthread_create(&th, NULL, signal_main, NULL);
    pthread_detach(th);
    if (px_worker_run(&o, &g_stop)) {
        fprintf(stderr, "parallax: %s\n", px_error_get());
        return 1;
    }
    return 0;
}
