/* plan_cmd.c - the flags of `parallax plan` (the cli dispatches here):
 * builds the model cost from -m DIR or from --layers/--layer-bytes..., the
 * parameters from the tuning flags, and runs px_cluster_plan_json(). */
#include "cluster_internal.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: parallax plan --nodes NODES.json (-m MODEL_DIR | --layers L --layer-bytes B\n"
    "                     [--layer-flops F] [--embed-bytes E] [--lm-head-bytes H] [--tied])\n"
    "                     [--dtype f16|bf16|f32|q8_0|q4_0] [--strategy auto|dp|greedy] [--route N]\n"
    "                     [--alpha A] [--kv-reserve R] [--unknown-rtt-ms MS] [--published-objective]\n"
    "                     [--no-regions] [--no-leftovers]\n"
    "Prints the phase-1 allocation (and N phase-2 routes) as JSON; formats in docs/cluster.md.\n";

typedef struct {
    const char *nodes_path, *model_dir, *dtype;
    double layers, layer_bytes, layer_flops, embed_bytes, lm_head_bytes;
    bool tied;
    int routes;
    px_cluster_params p;
} plan_flags;

static int usage_error(const char *flag, const char *why) {
    fprintf(stderr, "parallax: %s: %s\n%s", flag, why, usage_text);
    return 2;
}

static bool parse_number(const char *flag, const char *text, double min, double *out) {
    char *end;
    errno = 0;
    double v = text ? strtod(text, &end) : 0;
    if (!text || errno || end == text || *end || !(v >= min)) {
        fprintf(stderr, "parallax: %s: expected a number >= %g, got '%s'\n", flag, min, text ? text : "");
        return false;
    }
    *out = v;
    return true;
}

static px_alloc_strategy strategy_named(const char *s, bool *ok) {
    *ok = true;
    if (!strcmp(s, "dp")) return PX_ALLOC_DP;
    if (!strcmp(s, "greedy")) return PX_ALLOC_GREEDY;
    *ok = !strcmp(s, "auto");
    return PX_ALLOC_AUTO;
}

/* A flag that takes a value: true when known (*ok says whether the value parsed). */
static bool take_valued_flag(plan_flags *f, const char *flag, const char *value, bool *ok) {
    double v = 0;
    *ok = true;
    if (!strcmp(flag, "--nodes")) f->nodes_path = value;
    else if (!strcmp(flag, "-m") || !strcmp(flag, "--model")) f->model_dir = value;
    else if (!strcmp(flag, "--dtype")) f->dtype = value;
    else if (!strcmp(flag, "--strategy")) f->p.strategy = strategy_named(value, ok);
    else if (!strcmp(flag, "--layers")) *ok = parse_number(flag, value, 1, &f->layers);
    else if (!strcmp(flag, "--layer-bytes")) *ok = parse_number(flag, value, 1, &f->layer_bytes);
    else if (!strcmp(flag, "--layer-flops")) *ok = parse_number(flag, value, 0, &f->layer_flops);
    else if (!strcmp(flag, "--embed-bytes")) *ok = parse_number(flag, value, 0, &f->embed_bytes);
    else if (!strcmp(flag, "--lm-head-bytes")) *ok = parse_number(flag, value, 0, &f->lm_head_bytes);
    else if (!strcmp(flag, "--alpha")) *ok = parse_number(flag, value, 0, &f->p.alpha);
    else if (!strcmp(flag, "--kv-reserve")) *ok = parse_number(flag, value, 0, &f->p.kv_reserve) && f->p.kv_reserve < 1;
    else if (!strcmp(flag, "--unknown-rtt-ms")) {
        *ok = parse_number(flag, value, 0, &v);
        f->p.unknown_rtt = v / 1e3;
    } else if (!strcmp(flag, "--route")) {
        *ok = parse_number(flag, value, 0, &v) && v <= 1e6;
        f->routes = (int)v;
    } else return false;
    return true;
}

/* One flag at argv[*i]: 0 ok, 2 bad usage. */
static int take_flag(plan_flags *f, int argc, char **argv, int *i) {
    const char *flag = argv[*i];
    if (!strcmp(flag, "--tied")) f->tied = true;
    else if (!strcmp(flag, "--published-objective")) f->p.objective = PX_OBJECTIVE_PUBLISHED;
    else if (!strcmp(flag, "--no-regions")) f->p.region_aware = false;
    else if (!strcmp(flag, "--no-leftovers")) f->p.place_leftovers = false;
    else {
        bool ok;
        plan_flags probe = *f;
        if (!take_valued_flag(&probe, flag, "1", &ok)) return usage_error(flag, "unknown flag");
        if (*i + 1 >= argc) return usage_error(flag, "needs a value");
        take_valued_flag(f, flag, argv[*i + 1], &ok);
        (*i)++;
        if (!ok) return usage_error(flag, "bad value");
    }
    return 0;
}

static double dtype_bytes(const char *dtype, bool *ok) {
    *ok = true;
    if (!strcmp(dtype, "f16") || !strcmp(dtype, "bf16")) return 2.0;
    if (!strcmp(dtype, "f32")) return 4.0;
    if (!strcmp(dtype, "q8_0")) return 34.0 / 32.0;
    if (!strcmp(dtype, "q4_0")) return 18.0 / 32.0;
    *ok = false;
    return 0;
}

/* From -m: config.json, rescaled to --dtype when given. */
static int cost_from_model(const plan_flags *f, px_model_cost *cost) {
    if (px_model_cost_from_config(f->model_dir, cost) < 0) {
        fprintf(stderr, "parallax: -m: %s\n", px_error_get());
        return 1;
    }
    if (!f->dtype) return 0;
    bool ok;
    double bytes = dtype_bytes(f->dtype, &ok);
    if (!ok) return usage_error("--dtype", "expected f16, bf16, f32, q8_0 or q4_0");
    double scale = bytes / 2.0; /* config sizes assume the stored dtype; rescale from 2 bytes */
    cost->layer_bytes = (uint64_t)(cost->layer_bytes * scale);
    cost->embed_bytes = (uint64_t)(cost->embed_bytes * scale);
    cost->lm_head_bytes = (uint64_t)(cost->lm_head_bytes * scale);
    return 0;
}

static int cost_from_flags(const plan_flags *f, px_model_cost *cost) {
    if (f->layers <= 0 || f->layer_bytes <= 0) return usage_error("--layers", "give -m MODEL_DIR or --layers and --layer-bytes");
    if (f->layers > PX_CLUSTER_MAX_LAYERS) return usage_error("--layers", "too many layers");
    memset(cost, 0, sizeof *cost);
    cost->n_layers = (int)f->layers;
    cost->layer_bytes = (uint64_t)f->layer_bytes;
    cost->layer_flops = f->layer_flops > 0 ? f->layer_flops : f->layer_bytes; /* 2 FLOPs per 2-byte weight */
    cost->embed_bytes = (uint64_t)f->embed_bytes;
    cost->lm_head_bytes = f->lm_head_bytes > 0 ? (uint64_t)f->lm_head_bytes : (uint64_t)f->embed_bytes;
    cost->tied = f->tied;
    return 0;
}

int px_cluster_cmd_plan(int argc, char **argv) {
    plan_flags f = {0};
    px_cluster_params_default(&f.p);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage_text, stdout);
            return 0;
        }
        int rc = take_flag(&f, argc, argv, &i);
        if (rc) return rc;
    }
    if (!f.nodes_path) return usage_error("--nodes", "is required");
    px_model_cost cost;
    int rc = f.model_dir ? cost_from_model(&f, &cost) : cost_from_flags(&f, &cost);
    if (rc) return rc;
    char *json = px_read_file(f.nodes_path, NULL);
    if (!json) {
        fprintf(stderr, "parallax: --nodes: %s\n", px_error_get());
        return 1;
    }
    rc = px_cluster_plan_json(json, &cost, &f.p, f.routes, stdout);
    free(json);
    if (rc < 0) {
        fprintf(stderr, "parallax: plan: %s\n", px_error_get());
        return 1;
    }
    return 0;
}
