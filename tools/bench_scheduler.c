/* bench_scheduler.c - how fast the two-phase scheduler is, and how a cluster
 * bigger than our machines would behave under it. Not a test.
 *
 *   bench_scheduler [bench] [--sizes 4,16,64,256,1024] [--regions R] [--seed S]
 *       For each size, generates a cluster from a hardware mix (fast GPU,
 *       slow GPU, big-memory CPU, laptop) spread over R regions with an RTT
 *       matrix (0.5-2 ms inside a region, 20-120 ms across), and times phase 1
 *       (px_alloc_plan, best of several runs, AUTO and GREEDY) and phase 2 (one
 *       route per request with load accounting, averaged over many requests).
 *
 *   bench_scheduler sim [--nodes N] [--seconds T] [--rate REQ_PER_S]
 *                       [--churn LEAVES_PER_MIN] [--regions R] [--prompt P]
 *                       [--output O] [--seed S]
 *       Time-stepped simulation (10 ms steps of modelled time) of a cluster
 *       run by px_cluster: Poisson arrivals routed by phase 2, nodes that
 *       leave (Poisson) and rejoin a minute later, heartbeats every second
 *       carrying the true per-layer latency. The truth model of a stage with b
 *       running requests is max(b * FLOPs / flops, bytes / bandwidth) per
 *       layer per token (batched decode reads the weights once per step);
 *       prefill is compute-bound over the prompt. Requests whose chain loses
 *       a node are re-routed and re-prefilled. Reports modelled throughput and
 *       latency and the scheduler's own (wall-clock) time.
 *
 * The model is a 70B-class dense decoder (Llama-3-70B dims, bf16). */
#include "cluster.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------- generated clusters ---------------- */

typedef struct {
    const char *name;
    double memory_gb, bandwidth_gbs, tflops, share;
} hw_kind;

static const hw_kind hardware_mix[] = {
    {"fast-gpu", 80, 3350, 400, 0.2}, /* H100-class */
    {"slow-gpu", 24, 1000, 80, 0.3},  /* RTX 4090-class */
    {"big-cpu", 512, 200, 4, 0.2},    /* server with lots of DDR */
    {"laptop", 32, 120, 8, 0.3},      /* unified-memory laptop */
};

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double uniform(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}
static double exponential(double mean) { return -mean * log(1.0 - uniform()); }

static px_model_cost model_70b(void) {
    px_model_dims d = {.hidden = 8192, .intermediate = 28672, .n_heads = 64, .n_kv_heads = 8, .head_dim = 128,
                       .vocab = 128256, .n_layers = 80, .tied = false, .bytes_per_weight = 2,
                       .kv_bytes_per_value = 2};
    px_model_cost m;
    px_model_cost_from_dims(&d, &m);
    return m;
}

static const hw_kind *draw_hardware(void) {
    double u = uniform(), acc = 0;
    for (size_t k = 0; k < PX_ARRAY_LEN(hardware_mix); k++) {
        acc += hardware_mix[k].share;
        if (u < acc) return &hardware_mix[k];
    }
    return &hardware_mix[0];
}

static px_node_info make_node(int i, int regions) {
    const hw_kind *hw = draw_hardware();
    char id[32];
    snprintf(id, sizeof id, "%s-%d", hw->name, i);
    px_node_info n;
    px_node_info_init(&n, id);
    snprintf(n.region, sizeof n.region, "r%d", (int)(uniform() * regions));
    n.memory_bytes = (uint64_t)(hw->memory_gb * 1e9);
    n.bandwidth = hw->bandwidth_gbs * 1e9;
    n.flops = hw->tflops * 1e12;
    n.gpu = strstr(hw->name, "gpu") != NULL;
    return n;
}

static double draw_rtt(const px_node_info *a, const px_node_info *b) {
    if (!strcmp(a->region, b->region)) return (0.5 + 1.5 * uniform()) / 1e3;
    return (20 + 100 * uniform()) / 1e3;
}

static void make_cluster(int n, int regions, px_node_info *nodes, double *rtt) {
    for (int i = 0; i < n; i++) nodes[i] = make_node(i, regions);
    for (int i = 0; i < n; i++) {
        rtt[(size_t)i * n + i] = 0;
        for (int j = i + 1; j < n; j++) rtt[(size_t)i * n + j] = rtt[(size_t)j * n + i] = draw_rtt(&nodes[i], &nodes[j]);
    }
}

/* ---------------- bench ---------------- */

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    double best, median;
} timing;

static timing time_phase1(const px_node_info *nodes, int n, const px_model_cost *m, const double *rtt,
                          const px_cluster_params *p, int reps, px_allocation *keep) {
    double *t = px_malloc((size_t)reps * sizeof *t);
    for (int r = 0; r < reps; r++) {
        px_allocation a;
        double t0 = px_time_now();
        int rc = px_alloc_plan(nodes, n, m, rtt, p, &a);
        t[r] = px_time_now() - t0;
        if (rc < 0) {
            fprintf(stderr, "bench: phase 1 failed: %s\n", px_error_get());
            exit(1);
        }
        if (r == reps - 1 && keep) *keep = a;
        else px_allocation_free(&a);
    }
    qsort(t, (size_t)reps, sizeof *t, compare_double);
    timing out = {t[0], t[reps / 2]};
    free(t);
    return out;
}

static px_router *router_over(const px_allocation *a, const px_node_info *nodes, const px_model_cost *m,
                              const double *rtt, const px_cluster_params *p, int *n_slices) {
    px_route_slice *s = px_malloc((size_t)(a->n_nodes + 1) * sizeof *s);
    int k = 0;
    for (int i = 0; i < a->n_nodes; i++)
        if (a->start[i] >= 0)
            s[k++] = (px_route_slice){i, a->start[i], a->end[i], px_node_layer_latency(&nodes[i], m), 0,
                                      px_node_max_load(&nodes[i], m, a->start[i], a->end[i], p->context_tokens,
                                                       p->default_max_load)};
    px_router *r = px_router_create(s, k, m->n_layers, rtt, a->n_nodes, p->unknown_rtt);
    free(s);
    *n_slices = k;
    return r;
}

/* Microseconds per routed request, with each request holding load until
 * `window` later requests have been routed. */
static double time_phase2(px_router *r, int n_slices, int requests, int window, int *routed) {
    int *load = px_calloc((size_t)n_slices + 1, sizeof *load);
    px_route *held = px_calloc((size_t)window, sizeof *held);
    px_route route;
    *routed = 0;
    double t0 = px_time_now();
    for (int q = 0; q < requests; q++) {
        px_route *old = &held[q % window];
        for (int k = 0; k < old->n_stages; k++) px_router_set_load(r, old->slice[k], --load[old->slice[k]]);
        old->n_stages = 0;
        if (px_router_find(r, &route) < 0) continue;
        (*routed)++;
        for (int k = 0; k < route.n_stages; k++) px_router_set_load(r, route.slice[k], ++load[route.slice[k]]);
        *old = route;
    }
    double us = (px_time_now() - t0) / requests * 1e6;
    free(load);
    free(held);
    return us;
}

static int parse_sizes(const char *text, int *sizes, int max) {
    int n = 0;
    for (const char *p = text; *p && n < max;) {
        sizes[n++] = atoi(p);
        p = strchr(p, ',');
        if (!p) break;
        p++;
    }
    return n;
}

static void bench_one_size(int n, int regions, const px_model_cost *m) {
    px_node_info *nodes = px_malloc((size_t)n * sizeof *nodes);
    double *rtt = px_malloc((size_t)n * n * sizeof *rtt);
    make_cluster(n, regions, nodes, rtt);
    px_cluster_params p;
    px_cluster_params_default(&p);
    int reps = n >= 1024 ? 5 : n >= 256 ? 20 : 100;
    px_allocation a;
    timing t_auto = time_phase1(nodes, n, m, rtt, &p, reps, &a);
    p.strategy = PX_ALLOC_GREEDY;
    timing t_greedy = time_phase1(nodes, n, m, rtt, &p, reps, NULL);
    p.strategy = PX_ALLOC_DP;
    px_allocation exact;
    timing t_dp = time_phase1(nodes, n, m, rtt, &p, n >= 256 ? 3 : reps, &exact);
    p.strategy = PX_ALLOC_AUTO;
    int n_slices, routed;
    px_router *r = router_over(&a, nodes, m, rtt, &p, &n_slices);
    int requests = 20000, window = PX_MAX(2, a.k * 4);
    double us = time_phase2(r, n_slices, requests, window, &routed);
    printf("%6d %4d %4d %5d %6d %7s %5s | %9.3f %9.3f %9.3f %9.3f %4d %5s | %8.2f %7.1f%%\n", n, regions,
           a.n_groups, a.k, a.s, a.used == PX_ALLOC_GREEDY ? "greedy" : "dp", a.exact ? "yes" : "no",
           t_auto.best * 1e3, t_auto.median * 1e3, t_greedy.median * 1e3, t_dp.median * 1e3, exact.s,
           exact.exact ? "yes" : "no", us, 100.0 * routed / requests);
    px_allocation_free(&exact);
    px_router_destroy(r);
    px_allocation_free(&a);
    free(nodes);
    free(rtt);
}

static int run_bench(int argc, char **argv) {
    int sizes[16] = {4, 16, 64, 256, 1024}, n_sizes = 5, regions = 4;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--sizes") && i + 1 < argc) n_sizes = parse_sizes(argv[++i], sizes, 16);
        else if (!strcmp(argv[i], "--regions") && i + 1 < argc) regions = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) rng_state = strtoull(argv[++i], NULL, 10) | 1;
    }
    px_model_cost m = model_70b();
    printf("model: 70B-class, %d layers of %.2f GB (bf16); hardware mix: 20%% 80 GB GPU, 30%% 24 GB GPU, "
           "20%% 512 GB CPU, 30%% 32 GB laptop\n",
           m.n_layers, m.layer_bytes / 1e9);
    printf("phase 1 = px_alloc_plan (best / median of repeated runs); phase 2 = one route per request with load "
           "accounting\n\n");
    printf("%6s %4s %4s %5s %6s %7s %5s | %9s %9s %9s %9s %4s %5s | %8s %8s\n", "nodes", "regs", "grps", "k",
           "stages", "search", "exact", "p1 best", "p1 med", "greedy", "all-dp", "s", "exact", "p2 us/rq", "routed");
    printf("%6s %4s %4s %5s %6s %7s %5s | %9s %9s %9s %9s %4s %5s | %8s %8s\n", "", "", "", "", "", "(auto)", "", "ms",
           "ms", "ms med", "ms med", "", "", "", "");
    for (int s = 0; s < n_sizes; s++) bench_one_size(sizes[s], regions, &m);
    return 0;
}

/* ---------------- simulation ---------------- */

typedef struct {
    px_node_info info;  /* the truth: memory, bandwidth, flops */
    bool present;
    double back_at;     /* when a node that left rejoins */
    int batch;          /* requests running through it */
} sim_node;

typedef struct {
    bool active;
    px_route route;
    double arrived, started, prefill_left, tokens_done, first_token_at;
    int tokens_wanted, prompt;
} sim_request;

typedef struct {
    int n_nodes, regions, prompt, output;
    double seconds, rate, churn_per_min, step, downtime;
    px_model_cost m;
    px_cluster *cluster;
    sim_node *nodes;
    int *node_of_slot; /* px_cluster slot -> index into nodes */
    double *rtt;
    sim_request *req;
    int n_req, cap_req;
    /* results */
    long completed, tokens, reroutes, rejected_steps, leaves, joins, reallocations;
    double token_latency_sum, *ttft;
    long n_ttft;
    double route_time, plan_time, plan_time_max;
    long routes, plans;
} sim;

static double true_layer_time(const sim *S, const sim_node *n, int batch) {
    double b = PX_MAX(batch, 1);
    return PX_MAX(b * S->m.layer_flops / n->info.flops, (double)S->m.layer_bytes / n->info.bandwidth);
}

static int stage_node(const sim *S, const px_route *r, int k) { return S->node_of_slot[r->node[k]]; }

static int stage_layers(const sim *S, const px_route *r, int k) {
    px_node_status st;
    px_cluster_node_status(S->cluster, r->node[k], &st);
    return st.end - st.start;
}

static double hop_time(const sim *S, const px_route *r, int k, int next) {
    return S->rtt[(size_t)stage_node(S, r, k) * S->n_nodes + stage_node(S, r, next)];
}

/* Seconds per token for a request on its chain right now, ring hop included. */
static double chain_token_time(const sim *S, const px_route *r) {
    double t = 0;
    for (int k = 0; k < r->n_stages; k++) {
        const sim_node *n = &S->nodes[stage_node(S, r, k)];
        t += stage_layers(S, r, k) * true_layer_time(S, n, n->batch);
        if (r->n_stages > 1) t += hop_time(S, r, k, (k + 1) % r->n_stages);
    }
    return t;
}

static double chain_prefill_time(const sim *S, const px_route *r, int prompt) {
    double t = 0;
    for (int k = 0; k < r->n_stages; k++) {
        const sim_node *n = &S->nodes[stage_node(S, r, k)];
        t += stage_layers(S, r, k) * true_layer_time(S, n, prompt + n->batch);
        if (k + 1 < r->n_stages) t += hop_time(S, r, k, k + 1);
    }
    return t;
}

static void track_changes(sim *S, const px_change_list *ch, double plan_seconds) {
    S->plan_time += plan_seconds;
    S->plan_time_max = PX_MAX(S->plan_time_max, plan_seconds);
    S->plans++;
    if (ch->reallocated) S->reallocations++;
}

static void sim_join(sim *S, int i, double now) {
    px_change_list ch = {0};
    double t0 = px_time_now();
    px_cluster_join(S->cluster, &S->nodes[i].info, now, &ch);
    track_changes(S, &ch, px_time_now() - t0);
    px_change_list_free(&ch);
    S->nodes[i].present = true;
    S->node_of_slot[px_cluster_find(S->cluster, S->nodes[i].info.id)] = i;
    for (int j = 0; j < S->n_nodes; j++)
        if (S->nodes[j].present && j != i) {
            px_cluster_set_rtt(S->cluster, S->nodes[i].info.id, S->nodes[j].info.id, S->rtt[(size_t)i * S->n_nodes + j]);
            px_cluster_set_rtt(S->cluster, S->nodes[j].info.id, S->nodes[i].info.id, S->rtt[(size_t)j * S->n_nodes + i]);
        }
    S->joins++;
}

static bool route_uses(const px_route *r, int slot) {
    for (int k = 0; k < r->n_stages; k++)
        if (r->node[k] == slot) return true;
    return false;
}

static void release_request(sim *S, sim_request *q) {
    for (int k = 0; k < q->route.n_stages; k++) S->nodes[stage_node(S, &q->route, k)].batch--;
    px_cluster_route_release(S->cluster, &q->route);
    q->route.n_stages = 0;
}

static bool start_request(sim *S, sim_request *q, double now) {
    double t0 = px_time_now();
    int rc = px_cluster_route(S->cluster, &q->route);
    S->route_time += px_time_now() - t0;
    S->routes++;
    if (rc < 0) {
        q->route.n_stages = 0;
        return false;
    }
    px_cluster_route_acquire(S->cluster, &q->route);
    for (int k = 0; k < q->route.n_stages; k++) S->nodes[stage_node(S, &q->route, k)].batch++;
    q->started = now;
    q->prefill_left = chain_prefill_time(S, &q->route, q->prompt + (int)q->tokens_done);
    return true;
}

static int slot_of(const sim *S, int i) { return px_cluster_find(S->cluster, S->nodes[i].info.id); }

static void sim_leave(sim *S, int i, double now) {
    int slot = slot_of(S, i);
    for (int r = 0; r < S->n_req; r++) {
        sim_request *q = &S->req[r];
        if (q->active && q->route.n_stages && route_uses(&q->route, slot)) {
            release_request(S, q);
            S->reroutes++;
        }
    }
    px_change_list ch = {0};
    double t0 = px_time_now();
    px_cluster_leave(S->cluster, S->nodes[i].info.id, &ch);
    track_changes(S, &ch, px_time_now() - t0);
    px_change_list_free(&ch);
    S->nodes[i].present = false;
    S->nodes[i].back_at = now + S->downtime;
    S->leaves++;
}

static void add_request(sim *S, double now) {
    if (S->n_req == S->cap_req) {
        S->cap_req = S->cap_req ? 2 * S->cap_req : 1024;
        S->req = px_realloc(S->req, (size_t)S->cap_req * sizeof *S->req);
    }
    sim_request *q = &S->req[S->n_req++];
    memset(q, 0, sizeof *q);
    q->active = true;
    q->arrived = now;
    q->prompt = S->prompt;
    q->tokens_wanted = PX_MAX(1, (int)exponential(S->output));
    q->first_token_at = -1;
}

static void finish_request(sim *S, sim_request *q, double now) {
    release_request(S, q);
    q->active = false;
    S->completed++;
    S->tokens += q->tokens_wanted;
    S->token_latency_sum += (now - q->started);
    if (S->n_ttft % 1024 == 0) S->ttft = px_realloc(S->ttft, (size_t)(S->n_ttft + 1024) * sizeof *S->ttft);
    S->ttft[S->n_ttft++] = q->first_token_at - q->arrived;
}

static void advance_request(sim *S, sim_request *q, double now) {
    if (!q->route.n_stages && !start_request(S, q, now)) {
        S->rejected_steps++;
        return;
    }
    double dt = S->step;
    if (q->prefill_left > 0) {
        double used = PX_MIN(dt, q->prefill_left);
        q->prefill_left -= used;
        dt -= used;
        if (q->prefill_left > 0) return;
    }
    q->tokens_done += dt / chain_token_time(S, &q->route);
    if (q->first_token_at < 0 && q->tokens_done >= 1) q->first_token_at = now;
    if (q->tokens_done >= q->tokens_wanted) finish_request(S, q, now);
}

static void send_heartbeats(sim *S, double now) {
    for (int i = 0; i < S->n_nodes; i++) {
        if (!S->nodes[i].present) continue;
        px_heartbeat hb = {.load = -1, .layer_latency = true_layer_time(S, &S->nodes[i], S->nodes[i].batch)};
        px_cluster_heartbeat(S->cluster, S->nodes[i].info.id, now, &hb);
    }
}

static void churn(sim *S, double now) {
    double p_leave = S->churn_per_min / 60.0 * S->step;
    if (uniform() < p_leave) {
        int i = (int)(uniform() * S->n_nodes);
        if (S->nodes[i].present) sim_leave(S, i, now);
    }
    for (int i = 0; i < S->n_nodes; i++)
        if (!S->nodes[i].present && now >= S->nodes[i].back_at) sim_join(S, i, now);
}

static void compact_requests(sim *S) {
    int k = 0;
    for (int r = 0; r < S->n_req; r++)
        if (S->req[r].active) S->req[k++] = S->req[r];
    S->n_req = k;
}

static void report(const sim *S) {
    qsort(S->ttft, (size_t)S->n_ttft, sizeof *S->ttft, compare_double);
    double p50 = S->n_ttft ? S->ttft[S->n_ttft / 2] : 0, p99 = S->n_ttft ? S->ttft[S->n_ttft * 99 / 100] : 0;
    printf("modelled: %.0f s, %d nodes over %d regions, %.2f req/s offered, churn %.1f leaves/min\n", S->seconds,
           S->n_nodes, S->regions, S->rate, S->churn_per_min);
    printf("completed %ld requests, %ld tokens: %.1f tokens/s; mean decode time per request %.2f s\n", S->completed,
           S->tokens, S->tokens / S->seconds, S->completed ? S->token_latency_sum / S->completed : 0);
    printf("time to first token: p50 %.3f s, p99 %.3f s; still running or queued at the end: %d\n", p50, p99, S->n_req);
    printf("churn: %ld leaves, %ld joins, %ld re-allocations, %ld requests re-routed\n", S->leaves, S->joins,
           S->reallocations, S->reroutes);
    printf("scheduler (wall clock): membership events %.3f ms mean, %.3f ms max over %ld; routing %.2f us mean "
           "over %ld calls\n",
           S->plans ? S->plan_time / S->plans * 1e3 : 0, S->plan_time_max * 1e3, S->plans,
           S->routes ? S->route_time / S->routes * 1e6 : 0, S->routes);
}

static bool parse_sim_flags(sim *S, int argc, char **argv) {
    for (int i = 0; i + 1 < argc; i++) {
        const char *f = argv[i], *v = argv[i + 1];
        if (!strcmp(f, "--nodes")) S->n_nodes = atoi(v), i++;
        else if (!strcmp(f, "--seconds")) S->seconds = atof(v), i++;
        else if (!strcmp(f, "--rate")) S->rate = atof(v), i++;
        else if (!strcmp(f, "--churn")) S->churn_per_min = atof(v), i++;
        else if (!strcmp(f, "--regions")) S->regions = atoi(v), i++;
        else if (!strcmp(f, "--prompt")) S->prompt = atoi(v), i++;
        else if (!strcmp(f, "--output")) S->output = atoi(v), i++;
        else if (!strcmp(f, "--seed")) rng_state = strtoull(v, NULL, 10) | 1, i++;
    }
    if (S->n_nodes >= 1 && S->regions >= 1 && S->seconds > 0 && S->rate > 0) return true;
    fprintf(stderr, "sim: --nodes, --regions, --seconds and --rate must be positive\n");
    return false;
}

static void build_sim_cluster(sim *S) {
    S->m = model_70b();
    px_cluster_params p;
    px_cluster_params_default(&p);
    S->cluster = px_cluster_create(&S->m, &p);
    S->nodes = px_calloc((size_t)S->n_nodes, sizeof *S->nodes);
    S->node_of_slot = px_calloc((size_t)S->n_nodes + 1, sizeof *S->node_of_slot);
    S->rtt = px_malloc((size_t)S->n_nodes * S->n_nodes * sizeof *S->rtt);
    px_node_info *infos = px_malloc((size_t)S->n_nodes * sizeof *infos);
    make_cluster(S->n_nodes, S->regions, infos, S->rtt);
    for (int i = 0; i < S->n_nodes; i++) S->nodes[i].info = infos[i];
    free(infos);
    for (int i = 0; i < S->n_nodes; i++) sim_join(S, i, 0);
}

static void free_sim(sim *S) {
    px_cluster_destroy(S->cluster);
    free(S->nodes);
    free(S->node_of_slot);
    free(S->rtt);
    free(S->req);
    free(S->ttft);
}

static int run_sim(int argc, char **argv) {
    sim S = {.n_nodes = 32, .regions = 2, .prompt = 512, .output = 256, .seconds = 600, .rate = 2,
             .churn_per_min = 1, .step = 0.01, .downtime = 60};
    if (!parse_sim_flags(&S, argc, argv)) return 2;
    build_sim_cluster(&S);
    double next_arrival = exponential(1.0 / S.rate), next_heartbeat = 1;
    for (double now = 0; now < S.seconds; now += S.step) {
        while (next_arrival <= now) add_request(&S, now), next_arrival += exponential(1.0 / S.rate);
        if (now >= next_heartbeat) send_heartbeats(&S, now), px_cluster_tick(S.cluster, now, NULL), next_heartbeat += 1;
        churn(&S, now);
        for (int r = 0; r < S.n_req; r++)
            if (S.req[r].active) advance_request(&S, &S.req[r], now);
        compact_requests(&S);
    }
    report(&S);
    free_sim(&S);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "sim")) return run_sim(argc - 2, argv + 2);
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: bench_scheduler [bench] [--sizes 4,16,64,256,1024] [--regions R] [--seed S]\n"
               "       bench_scheduler sim [--nodes N] [--seconds T] [--rate R] [--churn PER_MIN] [--regions R]\n"
               "                           [--prompt P] [--output O] [--seed S]\n");
        return 0;
    }
    int skip = argc > 1 && !strcmp(argv[1], "bench") ? 2 : 1;
    return run_bench(argc - skip, argv + skip);
}
