/* cluster_fixtures.h - small builders shared by the cluster tests: a model
 * whose layers cost 1 GB (so capacities are easy to state in layers), nodes
 * with a given layer capacity and speed, and a deterministic PRNG. */
#ifndef PX_CLUSTER_FIXTURES_H
#define PX_CLUSTER_FIXTURES_H
#include "cluster.h"
#include <string.h>

#define GB 1000000000ull

/* L layers of 1 GB and 1 GFLOP each, no embedding or lm_head bytes. */
static inline px_model_cost fx_model(int n_layers) {
    px_model_cost m = {0};
    m.n_layers = n_layers;
    m.layer_bytes = GB;
    m.layer_flops = 1e9;
    return m;
}

/* A node that holds exactly `layers` mid-pipeline layers under the default
 * 25% KV reserve, with a per-layer latency of 1 / speed seconds (bandwidth
 * bound). */
static inline px_node_info fx_node(const char *id, int layers, double speed) {
    px_node_info n;
    px_node_info_init(&n, id);
    n.memory_bytes = (uint64_t)(((double)layers + 0.5) * (double)GB / 0.75);
    n.bandwidth = speed * (double)GB;
    n.flops = 1e30;
    return n;
}

static uint64_t fx_rand_state = 88172645463325252ull;
static inline uint64_t fx_rand(void) {
    fx_rand_state ^= fx_rand_state << 13;
    fx_rand_state ^= fx_rand_state >> 7;
    fx_rand_state ^= fx_rand_state << 17;
    return fx_rand_state;
}
/* Uniform integer in [lo, hi]. */
static inline int fx_between(int lo, int hi) { return lo + (int)(fx_rand() % (uint64_t)(hi - lo + 1)); }

/* NAN-filled n x n RTT matrix. */
static inline void fx_rtt_unknown(double *rtt, int n) {
    for (int i = 0; i < n * n; i++) rtt[i] = NAN;
}
static inline void fx_rtt_set(double *rtt, int n, int a, int b, double seconds) {
    rtt[a * n + b] = seconds;
    rtt[b * n + a] = seconds;
}
#endif
