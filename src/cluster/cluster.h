/* cluster.h - the cluster module: Parallax's two-phase scheduler as pure C
 * over plain structs, with no network (docs/cluster.md has the formulas).
 *
 *   Node model   px_model_cost (what one decoder layer of the model costs),
 *                px_node_info (what a node has), layer capacity with a KV
 *                reserve, per-layer latency (roofline, or the measured EWMA),
 *                RTT lookup with symmetric fallback.
 *   Phase 1      px_alloc_plan(): choose the number of pipelines k that
 *                maximises Z(k) = k^alpha / (T_comp + (s*(k)/k) * RTT_avg),
 *                where s*(k) is the fewest stages that realise k pipelines
 *                (exact search with pruning and memoisation, or the greedy
 *                fallback), then split each pipeline's layers by water-filling;
 *                leftover nodes replicate the most needed layers.
 *   Phase 2      px_router: the cheapest chain of slices covering [0, L) by a
 *                DP over the slice DAG (load-inflated compute + RTT per hop).
 *   Membership   px_cluster: join / leave / heartbeat / timeout / rebalance as
 *                events; each event returns the slice changes to apply.
 *   plan         px_cluster_cmd_plan(): the `parallax plan` subcommand (JSON
 *                nodes in, JSON allocation and routes out).
 *
 * Conventions: functions that can fail return 0 / -1 (or NULL) and leave a
 * message in px_error_get(). Times are seconds, sizes bytes, speeds per second.
 * Node indices in every input and output are positions in the caller's node
 * array (for px_cluster: the slot numbers px_cluster_node_status() reports).
 *
 * Ownership: plain input structs are borrowed for the duration of a call and
 * never kept. px_allocation and px_change_list own their arrays (release with
 * their _free function). px_router and px_cluster are opaque handles that copy
 * everything they are given.
 *
 * Threading: every function without a handle is reentrant. A px_router or a
 * px_cluster is used by one thread at a time (the live cluster holds a lock
 * around its px_cluster); different handles are independent.
 */
#ifndef PX_CLUSTER_H
#define PX_CLUSTER_H

#include "px_base.h"
#include <math.h>
#include <stdio.h>

#define PX_CLUSTER_ID_MAX 64
#define PX_CLUSTER_REGION_MAX 32
#define PX_CLUSTER_MAX_LAYERS 1024

/* ===================================================================== */
/* Model cost                                                             */
/* ===================================================================== */

/* What one replica of the model costs, per decoder layer and at the ends.
 * The live cluster fills it from config.json; px_model_cost_from_dims()
 * computes it from the basic dimensions. */
typedef struct {
    int n_layers;                /* decoder layers L (1..PX_CLUSTER_MAX_LAYERS) */
    uint64_t layer_bytes;        /* weights of one decoder layer */
    double layer_flops;          /* FLOPs of one decoder layer for one decoded token */
    uint64_t embed_bytes;        /* token embedding: held by the first stage */
    uint64_t lm_head_bytes;      /* final norm + lm_head: held by the last stage */
    bool tied;                   /* lm_head is the embedding: a stage that is both first
                                    and last holds it once */
    uint64_t kv_bytes_per_token; /* KV cache of one token in one layer (0 = unknown) */
} px_model_cost;

typedef struct {
    int hidden, intermediate, n_heads, n_kv_heads, head_dim, vocab, n_layers;
    bool tied;                   /* tie_word_embeddings */
    double bytes_per_weight;     /* 2 for f16/bf16, 1.0625 for q8_0, 0.5625 for q4_0 */
    double kv_bytes_per_value;   /* <= 0: 4 (the engine keeps an f32 KV cache) */
    int context_tokens;          /* > 0 adds the attention FLOPs at this context length */
} px_model_dims;

/* Standard dense decoder layer (q, k, v, o projections, gated MLP, two
 * norms): bytes = params * bytes_per_weight, FLOPs = 2 * params per token
 * (+ 4 * heads * head_dim * context for attention). head_dim <= 0 means
 * hidden / n_heads. */
int px_model_cost_from_dims(const px_model_dims *d, px_model_cost *out);

/* ===================================================================== */
/* Node model                                                             */
/* ===================================================================== */

typedef struct {
    char id[PX_CLUSTER_ID_MAX];
    char region[PX_CLUSTER_REGION_MAX]; /* "" is a region of its own name too */
    int cores;                   /* informational */
    bool gpu;                    /* informational */
    uint64_t memory_bytes;       /* memory the worker may use for weights + KV cache */
    double bandwidth;            /* memory bandwidth, bytes/s (measured or reported) */
    double flops;                /* matmul throughput, FLOP/s (measured or reported) */
    double layer_latency;        /* measured seconds per layer per token; <= 0: not yet */
    int load;                    /* requests it is running now */
    int max_load;                /* most concurrent requests; <= 0: derived (px_node_max_load) */
    int manual_start, manual_end; /* a fixed slice [start, end) the operator chose; -1 = none */
} px_node_info;

/* Zeroes *n, copies id (truncated to fit), sets manual_start/end to -1. */
void px_node_info_init(px_node_info *n, const char *id);

/* How many decoder layers fit, by position in a pipeline. usable = memory *
 * (1 - kv_reserve); mid = floor(usable / layer_bytes); first also holds the
 * embedding, last the lm_head, both (a whole-model stage) holds both (once if
 * tied). Negative results are clamped to 0 and everything to n_layers. */
typedef struct {
    int mid, first, last, both;
} px_layer_capacity;
void px_node_layer_capacity(const px_node_info *n, const px_model_cost *m, double kv_reserve,
                            px_layer_capacity *out);
/* Capacity of a stage [start, end) on this node (picks mid/first/last/both). */
int px_layer_capacity_at(const px_layer_capacity *c, int start, int end, int n_layers);

/* Roofline seconds per layer per token: max(layer_flops / flops, layer_bytes / bandwidth).
 * A missing flops or bandwidth (<= 0) drops its term; both missing: 1 s. */
double px_node_roofline_latency(const px_node_info *n, const px_model_cost *m);
/* The measured latency when there is one, else the roofline. */
double px_node_layer_latency(const px_node_info *n, const px_model_cost *m);
/* Exponentially weighted moving average: current <= 0 (no history) returns sample. */
double px_ewma_update(double current, double sample, double weight);
/* n->max_load when > 0; else the KV budget (memory left after the slice's
 * weights) over (layers * kv_bytes_per_token * context_tokens), at least 1;
 * default_max_load when the model gives no KV size. */
int px_node_max_load(const px_node_info *n, const px_model_cost *m, int start, int end,
                     int context_tokens, int default_max_load);

/* RTT matrix: n x n, row-major, seconds; NAN or a negative entry is unknown.
 * Lookup: i == j is 0; else rtt[i][j] when known, else rtt[j][i] (symmetric
 * fallback), else `unknown` (PX_RTT_UNREACHABLE by default: no edge). A NULL
 * matrix is all unknown. */
#define PX_RTT_UNREACHABLE INFINITY
double px_rtt_lookup(const double *rtt, int n, int i, int j, double unknown);

/* ===================================================================== */
/* Parameters (one struct for the whole module)                           */
/* ===================================================================== */

typedef enum { PX_ALLOC_AUTO, PX_ALLOC_DP, PX_ALLOC_GREEDY } px_alloc_strategy;
typedef enum {
    PX_OBJECTIVE_LATENCY_AWARE, /* Z(k) = k^a / (T_comp + (s/k) RTT_avg): ours */
    PX_OBJECTIVE_PUBLISHED,     /* Z(k) = k^a / s: what the published Parallax code uses */
} px_alloc_objective;

typedef struct {
    px_alloc_strategy strategy;   /* AUTO: DP for groups up to dp_max_nodes, else greedy */
    px_alloc_objective objective; /* LATENCY_AWARE */
    double alpha;                 /* 2.0 */
    double kv_reserve;            /* 0.25: share of memory kept for the KV cache */
    double unknown_rtt;           /* PX_RTT_UNREACHABLE: RTT assumed for an unmeasured pair */
    double planning_rtt;          /* 0.005 s: RTT_avg for Z when a group has no known pair */
    int dp_max_nodes;             /* 32 */
    long dp_budget;               /* 5000 exact-search steps per plan (about 1 ms at worst),
                                     after which the remaining k keep the greedy count */
    bool region_aware;            /* true: pipelines stay inside a region that can host one */
    bool place_leftovers;         /* true: nodes outside the k pipelines replicate layers */
    int default_max_load;         /* 16 */
    int context_tokens;           /* 4096: KV per request when deriving max_load */
    double rebalance_cv;          /* 0.25: imbalance that makes a leave re-run phase 1 */
    double heartbeat_timeout;     /* 10 s */
    double ewma_weight;           /* 0.3: weight of a new latency sample */
} px_cluster_params;

void px_cluster_params_default(px_cluster_params *p);

/* ===================================================================== */
/* Phase 1: allocation                                                    */
/* ===================================================================== */

typedef struct {
    int node;        /* index into the node array */
    int start, end;  /* layers [start, end) */
} px_stage;

typedef enum { PX_SLICE_NONE, PX_SLICE_PIPELINE, PX_SLICE_REPLICA, PX_SLICE_MANUAL } px_slice_role;

typedef struct {
    int k;           /* pipelines */
    int stages;      /* s*(k) (or the greedy count) */
    double z;        /* objective */
    bool exact;      /* stages proven minimal */
} px_alloc_option;

typedef struct {
    int n_nodes, n_layers;
    int *start, *end;            /* per node; -1, -1 when the node is on standby */
    px_slice_role *role;         /* per node */
    int n_pipelines;
    int *pipeline_offset;        /* n_pipelines + 1 offsets into stages */
    px_stage *stages;            /* pipeline p is stages[offset[p] .. offset[p+1]) in order */
    int k, s;                    /* the choice (spare nodes that joined pipelines add stages
                                    beyond s: pipeline_offset[n_pipelines] counts them) */
    double z, t_comp, rtt_avg;   /* its objective and the terms that went in */
    int n_options;
    px_alloc_option *options;    /* every k that was evaluated, ascending */
    bool exact;                  /* every s*(k) in options is proven minimal */
    px_alloc_strategy used;      /* DP or GREEDY (GREEDY if any group used it) */
    int n_groups;                /* allocation groups (regions, plus one pool) */
} px_allocation;

/* Phase 1 over n nodes. Nodes with a manual slice keep it; the others are
 * allocated. Fails (with the shortfall in bytes, or the layer count the
 * nodes can hold) when no full pipeline can be formed and the manual slices
 * do not form one either. rtt may be NULL. */
int px_alloc_plan(const px_node_info *nodes, int n, const px_model_cost *cost, const double *rtt,
                  const px_cluster_params *p, px_allocation *out);
void px_allocation_free(px_allocation *a);

/* s*(k) for k = 0..max_k over integer capacities (layer units, any order):
 * stages_out[k] = fewest capacities whose multiset splits into k groups each
 * summing to >= need, or -1 when impossible. DP: exact search (budget steps
 * for the whole table; *exact false when it ran out); GREEDY: largest-
 * residual fit. Returns max_k = floor(sum(min(cap, need)) / need), capped at n. */
int px_alloc_stage_table(const int *caps, int n, int need, px_alloc_strategy strategy, long budget,
                         int *stages_out, int max_k, bool *exact);

/* Z for k pipelines of s total stages (see px_alloc_objective). */
double px_alloc_objective_value(int k, int s, double t_comp, double rtt_avg, const px_cluster_params *p);

/* Water-filling: counts[i] = round(min(caps[i], lambda * speeds[i])) with
 * lambda found by bisection so the sum is n_layers; integer rounding by
 * largest remainder (ties: lower index), never above caps. Fails when
 * sum(caps) < n_layers or a speed is not positive. */
int px_alloc_water_fill(int n, const int *caps, const double *speeds, int n_layers, int *counts);

/* ===================================================================== */
/* Phase 2: routing                                                       */
/* ===================================================================== */

typedef struct {
    int node;              /* index for RTT lookups (one slice per node) */
    int start, end;        /* layers [start, end) */
    double layer_latency;  /* seconds per layer per token */
    int load, max_load;    /* load >= max_load: skipped */
} px_route_slice;

typedef struct {
    int n_stages;
    double cost;                          /* seconds per token along the chain */
    int slice[PX_CLUSTER_MAX_LAYERS];     /* indices into the router's slices */
    int node[PX_CLUSTER_MAX_LAYERS];      /* their nodes */
} px_route;

/* Stage cost: layer_latency * (end - start) * (1 + load / max_load). */
double px_route_stage_cost(const px_route_slice *s);

typedef struct px_router px_router;
/* Copies the slices and the RTTs between their nodes (n_nodes x n_nodes
 * matrix, may be NULL). Edge j -> i exists when end_j == start_i and the RTT
 * between their nodes is finite. */
px_router *px_router_create(const px_route_slice *slices, int n_slices, int n_layers, const double *rtt,
                            int n_nodes, double unknown_rtt);
void px_router_destroy(px_router *r);
void px_router_set_load(px_router *r, int slice, int load);
void px_router_set_latency(px_router *r, int slice, double layer_latency);
/* The cheapest chain from layer 0 to L: cost = sum of stage costs + sum of
 * RTTs between consecutive stages. Ties (equal cost): fewer stages, then the
 * lower slice index, compared from the last stage backwards. Returns -1 with
 * an error when no chain exists (uncovered layer, unknown RTT, all at max
 * load). */
int px_router_find(px_router *r, px_route *out);

/* ===================================================================== */
/* Membership: an event-driven state machine                              */
/* ===================================================================== */

typedef enum { PX_NODE_STANDBY, PX_NODE_SERVING, PX_NODE_GONE } px_node_state;

typedef enum {
    PX_CHANGE_ASSIGN,  /* a node without a slice gets [new_start, new_end) */
    PX_CHANGE_MOVE,    /* a node's slice changes from old to new */
    PX_CHANGE_RELEASE, /* a node gives up its slice and goes on standby */
    PX_CHANGE_DROP,    /* a node left (or timed out); its slice is gone */
} px_change_kind;

typedef struct {
    char node_id[PX_CLUSTER_ID_MAX];
    int node;                 /* slot */
    px_change_kind kind;
    int old_start, old_end;   /* -1 when none */
    int new_start, new_end;   /* -1 when none */
} px_slice_change;

typedef struct {
    int n, cap;
    px_slice_change *items;
    bool reallocated;         /* the event re-ran phase 1 */
} px_change_list;
void px_change_list_free(px_change_list *l);

typedef struct {
    int load;                 /* requests running now; < 0 keeps the last value */
    double layer_latency;     /* measured seconds per layer per token; <= 0: no sample */
} px_heartbeat;

typedef struct {
    const char *id;           /* owned by the cluster; valid until the slot is reused */
    px_node_state state;
    int start, end;           /* -1 when not serving */
    double layer_latency;     /* what routing uses (EWMA or roofline) */
    int load, max_load;
    double last_seen;
    bool manual;
    px_layer_capacity capacity; /* layers it can hold, by position */
} px_node_status;

typedef struct px_cluster px_cluster;

px_cluster *px_cluster_create(const px_model_cost *cost, const px_cluster_params *p);
void px_cluster_destroy(px_cluster *c);

/* Join: a manual slice is taken as given; otherwise the newcomer takes the
 * most needed window of layers (uncovered layers first, then the least
 * hosting power) that lines up with existing stage boundaries, or waits on
 * standby; whenever the standby nodes can form a whole pipeline, phase 1 runs
 * over them (over everyone when no full pipeline exists). An id that is
 * already present leaves first. */
int px_cluster_join(px_cluster *c, const px_node_info *info, double now, px_change_list *out);
/* Leave: drops the node's slice; when no full chain [0, L) remains, or the
 * coefficient of variation of per-layer hosting power exceeds rebalance_cv
 * and a fresh phase 1 would lower it, re-runs phase 1. */
int px_cluster_leave(px_cluster *c, const char *id, px_change_list *out);
int px_cluster_heartbeat(px_cluster *c, const char *id, double now, const px_heartbeat *hb);
/* Treats every node silent for longer than heartbeat_timeout as a leave. */
int px_cluster_tick(px_cluster *c, double now, px_change_list *out);
/* Re-runs phase 1 over every node now (manual slices kept). */
int px_cluster_rebalance(px_cluster *c, px_change_list *out);
int px_cluster_set_rtt(px_cluster *c, const char *from, const char *to, double seconds);

int px_cluster_route(px_cluster *c, px_route *out);           /* node[] are slots */
void px_cluster_route_acquire(px_cluster *c, const px_route *r); /* load += 1 on its nodes */
void px_cluster_route_release(px_cluster *c, const px_route *r); /* load -= 1 */

bool px_cluster_has_full_pipeline(const px_cluster *c);
/* Coefficient of variation of per-layer hosting power (sum of 1/latency of
 * the nodes serving the layer); INFINITY when a layer has no host. */
double px_cluster_imbalance(const px_cluster *c);
int px_cluster_slot_count(const px_cluster *c);  /* slots, including GONE ones */
int px_cluster_find(const px_cluster *c, const char *id); /* slot or -1 */
int px_cluster_node_status(const px_cluster *c, int slot, px_node_status *out);

/* ===================================================================== */
/* `parallax plan`                                                        */
/* ===================================================================== */

/* Reads a nodes document (see docs/cluster.md), runs phase 1 and n_routes
 * successive phase-2 routes (each adds one request of load to its chain) and
 * writes one JSON document to out. Returns 0, or -1 with an error. */
int px_cluster_plan_json(const char *nodes_json, const px_model_cost *cost, const px_cluster_params *p,
                         int n_routes, FILE *out);
/* Fills *cost from a Hugging Face config.json (dims, torch_dtype). */
int px_model_cost_from_config(const char *model_dir, px_model_cost *cost);
/* `parallax plan --nodes NODES.json (-m DIR | --layers L --layer-bytes B ...)`:
 * exit code 0 ok, 1 failure, 2 usage. */
int px_cluster_cmd_plan(int argc, char **argv);

#endif
