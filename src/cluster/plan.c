/* plan.c - `parallax plan`: phase 1 (and optionally phase 2) for a cluster
 * described in JSON, printed as one JSON document.
 *
 * Input (docs/cluster.md): either a list of nodes or {"nodes": [...],
 * "rtt_ms": ...}. A node: id, memory_bytes | memory_gb, bandwidth (bytes/s) |
 * bandwidth_gbs, flops | tflops, region, layer_latency_ms, load, max_load,
 * slice [start, end]. rtt_ms: a matrix in node order (null = unknown) or an
 * object {"a": {"b": ms}}. Output: the choice of k, the option table, the
 * pipelines, every node's slice, standby nodes, and N successive routes (each
 * adds one request of load to its chain). The model comes from config.json
 * (-m) or from flags. */
#include "cluster_internal.h"
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

/* ---------------- reading nodes ---------------- */

static double number_or(const cJSON *obj, const char *key, double fallback) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) ? v->valuedouble : fallback;
}

static bool has_number(const cJSON *obj, const char *key) {
    return cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(obj, key));
}

static int read_slice(const cJSON *node, px_node_info *n) {
    const cJSON *slice = cJSON_GetObjectItemCaseSensitive(node, "slice");
    if (!slice || cJSON_IsNull(slice)) return 0;
    if (!cJSON_IsArray(slice) || cJSON_GetArraySize(slice) != 2 || !cJSON_IsNumber(cJSON_GetArrayItem(slice, 0)) ||
        !cJSON_IsNumber(cJSON_GetArrayItem(slice, 1))) {
        px_error_set("nodes: node %s: slice must be [start, end]", n->id);
        return -1;
    }
    n->manual_start = cJSON_GetArrayItem(slice, 0)->valueint;
    n->manual_end = cJSON_GetArrayItem(slice, 1)->valueint;
    return 0;
}

static int read_node(const cJSON *node, int index, px_node_info *n) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(node, "id");
    if (!cJSON_IsObject(node) || !cJSON_IsString(id) || !id->valuestring[0]) {
        px_error_set("nodes: entry %d needs a string \"id\"", index);
        return -1;
    }
    px_node_info_init(n, id->valuestring);
    const cJSON *region = cJSON_GetObjectItemCaseSensitive(node, "region");
    if (cJSON_IsString(region)) snprintf(n->region, sizeof n->region, "%s", region->valuestring);
    double memory = has_number(node, "memory_bytes") ? number_or(node, "memory_bytes", 0)
                                                     : number_or(node, "memory_gb", 0) * 1e9;
    if (!(memory > 0)) {
        px_error_set("nodes: node %s needs memory_bytes or memory_gb > 0", n->id);
        return -1;
    }
    n->memory_bytes = (uint64_t)memory;
    n->bandwidth = has_number(node, "bandwidth") ? number_or(node, "bandwidth", 0)
                                                 : number_or(node, "bandwidth_gbs", 0) * 1e9;
    n->flops = has_number(node, "flops") ? number_or(node, "flops", 0) : number_or(node, "tflops", 0) * 1e12;
    n->layer_latency = number_or(node, "layer_latency_ms", 0) / 1e3;
    n->load = (int)number_or(node, "load", 0);
    n->max_load = (int)number_or(node, "max_load", 0);
    n->cores = (int)number_or(node, "cores", 0);
    n->gpu = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(node, "gpu"));
    if (n->bandwidth <= 0 && n->flops <= 0 && n->layer_latency <= 0) {
        px_error_set("nodes: node %s needs bandwidth, flops or layer_latency_ms", n->id);
        return -1;
    }
    return read_slice(node, n);
}

static int node_named(const px_node_info *nodes, int n, const char *id) {
    for (int i = 0; i < n; i++)
        if (!strcmp(nodes[i].id, id)) return i;
    return -1;
}

static int read_rtt_matrix(const cJSON *m, int n, double *rtt) {
    if (cJSON_GetArraySize(m) != n) {
        px_error_set("nodes: rtt_ms has %d rows for %d nodes", cJSON_GetArraySize(m), n);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const cJSON *row = cJSON_GetArrayItem(m, i);
        if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != n) {
            px_error_set("nodes: rtt_ms row %d must have %d entries", i, n);
            return -1;
        }
        for (int j = 0; j < n; j++) {
            const cJSON *v = cJSON_GetArrayItem(row, j);
            rtt[(size_t)i * n + j] = cJSON_IsNumber(v) ? v->valuedouble / 1e3 : NAN;
        }
    }
    return 0;
}

static int read_rtt_pairs(const cJSON *m, const px_node_info *nodes, int n, double *rtt) {
    const cJSON *from;
    cJSON_ArrayForEach(from, m) {
        int a = node_named(nodes, n, from->string);
        if (a < 0 || !cJSON_IsObject(from)) {
            px_error_set("nodes: rtt_ms names unknown node '%s'", from->string);
            return -1;
        }
        const cJSON *to;
        cJSON_ArrayForEach(to, from) {
            int b = node_named(nodes, n, to->string);
            if (b < 0 || !cJSON_IsNumber(to)) {
                px_error_set("nodes: rtt_ms[%s] names unknown node '%s' or is not a number", from->string, to->string);
                return -1;
            }
            rtt[(size_t)a * n + b] = to->valuedouble / 1e3;
        }
    }
    return 0;
}

typedef struct {
    px_node_info *nodes;
    int n;
    double *rtt;
} cluster_doc;

static void free_doc(cluster_doc *d) {
    free(d->nodes);
    free(d->rtt);
    memset(d, 0, sizeof *d);
}

static int read_nodes(const cJSON *list, cluster_doc *d) {
    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) == 0) {
        px_error_set("nodes: expected a non-empty list of nodes");
        return -1;
    }
    d->n = cJSON_GetArraySize(list);
    d->nodes = px_calloc((size_t)d->n, sizeof *d->nodes);
    for (int i = 0; i < d->n; i++) {
        if (read_node(cJSON_GetArrayItem(list, i), i, &d->nodes[i]) < 0) return -1;
        if (node_named(d->nodes, i, d->nodes[i].id) >= 0) {
            px_error_set("nodes: id '%s' appears twice", d->nodes[i].id);
            return -1;
        }
    }
    return 0;
}

static int read_doc(const char *json, cluster_doc *d) {
    memset(d, 0, sizeof *d);
    cJSON *root = cJSON_Parse(json);
    if (!root) {
        px_error_set("nodes: not valid JSON near '%.20s'", cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() : "");
        return -1;
    }
    const cJSON *list = cJSON_IsArray(root) ? root : cJSON_GetObjectItemCaseSensitive(root, "nodes");
    int rc = read_nodes(list, d);
    const cJSON *rtt = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "rtt_ms") : NULL;
    if (rc == 0) {
        d->rtt = px_malloc((size_t)d->n * d->n * sizeof *d->rtt);
        for (size_t i = 0; i < (size_t)d->n * d->n; i++) d->rtt[i] = NAN;
        if (cJSON_IsArray(rtt)) rc = read_rtt_matrix(rtt, d->n, d->rtt);
        else if (cJSON_IsObject(rtt)) rc = read_rtt_pairs(rtt, d->nodes, d->n, d->rtt);
        else if (rtt && !cJSON_IsNull(rtt)) {
            px_error_set("nodes: rtt_ms must be a matrix or an object of objects");
            rc = -1;
        }
    }
    cJSON_Delete(root);
    if (rc < 0) free_doc(d);
    return rc;
}

/* ---------------- writing the plan ---------------- */

static const char *role_name(px_slice_role r) {
    switch (r) {
    case PX_SLICE_PIPELINE: return "pipeline";
    case PX_SLICE_REPLICA: return "replica";
    case PX_SLICE_MANUAL: return "manual";
    default: return "standby";
    }
}

static cJSON *stage_json(const char *id, int start, int end) {
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "node", id);
    cJSON_AddNumberToObject(s, "start", start);
    cJSON_AddNumberToObject(s, "end", end);
    return s;
}

static void add_model(cJSON *root, const px_model_cost *m) {
    cJSON *o = cJSON_AddObjectToObject(root, "model");
    cJSON_AddNumberToObject(o, "layers", m->n_layers);
    cJSON_AddNumberToObject(o, "layer_bytes", (double)m->layer_bytes);
    cJSON_AddNumberToObject(o, "layer_flops", m->layer_flops);
    cJSON_AddNumberToObject(o, "embed_bytes", (double)m->embed_bytes);
    cJSON_AddNumberToObject(o, "lm_head_bytes", (double)m->lm_head_bytes);
    cJSON_AddBoolToObject(o, "tied", m->tied);
}

static void add_choice(cJSON *root, const px_allocation *a, const px_cluster_params *p) {
    cJSON_AddStringToObject(root, "strategy", a->used == PX_ALLOC_GREEDY ? "greedy" : "dp");
    cJSON_AddStringToObject(root, "objective",
                            p->objective == PX_OBJECTIVE_PUBLISHED ? "k^alpha/s" : "k^alpha/(T_comp+(s/k)RTT_avg)");
    cJSON_AddNumberToObject(root, "alpha", p->alpha);
    cJSON_AddNumberToObject(root, "k", a->k);
    cJSON_AddNumberToObject(root, "stages", a->s);
    cJSON_AddNumberToObject(root, "stages_built", a->pipeline_offset[a->n_pipelines]);
    cJSON_AddNumberToObject(root, "z", a->z);
    cJSON_AddNumberToObject(root, "t_comp_ms", a->t_comp * 1e3);
    cJSON_AddNumberToObject(root, "rtt_avg_ms", a->rtt_avg * 1e3);
    cJSON_AddBoolToObject(root, "exact", a->exact);
    cJSON_AddNumberToObject(root, "groups", a->n_groups);
    cJSON *options = cJSON_AddArrayToObject(root, "options");
    for (int i = 0; i < a->n_options; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "k", a->options[i].k);
        cJSON_AddNumberToObject(o, "stages", a->options[i].stages);
        cJSON_AddNumberToObject(o, "z", a->options[i].z);
        cJSON_AddItemToArray(options, o);
    }
}

static void add_pipelines(cJSON *root, const px_allocation *a, const px_node_info *nodes) {
    cJSON *pipes = cJSON_AddArrayToObject(root, "pipelines");
    for (int p = 0; p < a->n_pipelines; p++) {
        cJSON *pipe = cJSON_CreateArray();
        for (int s = a->pipeline_offset[p]; s < a->pipeline_offset[p + 1]; s++)
            cJSON_AddItemToArray(pipe, stage_json(nodes[a->stages[s].node].id, a->stages[s].start, a->stages[s].end));
        cJSON_AddItemToArray(pipes, pipe);
    }
}

static void add_nodes(cJSON *root, const px_allocation *a, const cluster_doc *d, const px_model_cost *m,
                      const px_cluster_params *p) {
    cJSON *list = cJSON_AddArrayToObject(root, "nodes");
    cJSON *standby = cJSON_AddArrayToObject(root, "standby");
    for (int i = 0; i < d->n; i++) {
        px_layer_capacity cap;
        px_node_layer_capacity(&d->nodes[i], m, p->kv_reserve, &cap);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "node", d->nodes[i].id);
        cJSON_AddStringToObject(o, "role", role_name(a->role[i]));
        if (a->start[i] >= 0) {
            cJSON_AddNumberToObject(o, "start", a->start[i]);
            cJSON_AddNumberToObject(o, "end", a->end[i]);
        } else {
            cJSON_AddItemToArray(standby, cJSON_CreateString(d->nodes[i].id));
        }
        cJSON_AddNumberToObject(o, "capacity_layers", cap.mid);
        cJSON_AddNumberToObject(o, "layer_latency_ms", px_node_layer_latency(&d->nodes[i], m) * 1e3);
        cJSON_AddItemToArray(list, o);
    }
}

static px_router *router_for(const px_allocation *a, const cluster_doc *d, const px_model_cost *m,
                             const px_cluster_params *p, int *slice_node) {
    px_route_slice *slices = px_malloc((size_t)(d->n + 1) * sizeof *slices);
    int n = 0;
    for (int i = 0; i < d->n; i++) {
        if (a->start[i] < 0) continue;
        const px_node_info *nd = &d->nodes[i];
        slices[n] = (px_route_slice){i, a->start[i], a->end[i], px_node_layer_latency(nd, m), nd->load,
                                     px_node_max_load(nd, m, a->start[i], a->end[i], p->context_tokens,
                                                      p->default_max_load)};
        slice_node[n++] = i;
    }
    px_router *r = px_router_create(slices, n, m->n_layers, d->rtt, d->n, p->unknown_rtt);
    free(slices);
    return r;
}

static cJSON *route_json(const px_route *route, const cluster_doc *d, const px_allocation *a) {
    cJSON *o = cJSON_CreateObject();
    cJSON *stages = cJSON_AddArrayToObject(o, "stages");
    for (int k = 0; k < route->n_stages; k++) {
        int i = route->node[k];
        cJSON_AddItemToArray(stages, stage_json(d->nodes[i].id, a->start[i], a->end[i]));
    }
    cJSON_AddNumberToObject(o, "cost_ms", route->cost * 1e3);
    return o;
}

static void add_routes(cJSON *root, const px_allocation *a, const cluster_doc *d, const px_model_cost *m,
                       const px_cluster_params *p, int n_routes) {
    if (n_routes <= 0) return;
    int *slice_node = px_malloc((size_t)(d->n + 1) * sizeof *slice_node);
    px_router *r = router_for(a, d, m, p, slice_node);
    cJSON *routes = cJSON_AddArrayToObject(root, "routes");
    px_route *route = px_malloc(sizeof *route);
    for (int q = 0; q < n_routes && r; q++) {
        if (px_router_find(r, route) < 0) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "error", px_error_get());
            cJSON_AddItemToArray(routes, o);
            continue;
        }
        cJSON_AddItemToArray(routes, route_json(route, d, a));
        for (int k = 0; k < route->n_stages; k++) {
            int s = route->slice[k];
            d->nodes[slice_node[s]].load++;
            px_router_set_load(r, s, d->nodes[slice_node[s]].load);
        }
    }
    free(route);
    px_router_destroy(r);
    free(slice_node);
}

int px_cluster_plan_json(const char *nodes_json, const px_model_cost *cost, const px_cluster_params *p, int n_routes,
                         FILE *out) {
    cluster_doc d;
    if (read_doc(nodes_json, &d) < 0) return -1;
    px_allocation a;
    if (px_alloc_plan(d.nodes, d.n, cost, d.rtt, p, &a) < 0) {
        free_doc(&d);
        return -1;
    }
    cJSON *root = cJSON_CreateObject();
    add_model(root, cost);
    add_choice(root, &a, p);
    add_pipelines(root, &a, d.nodes);
    add_nodes(root, &a, &d, cost, p);
    add_routes(root, &a, &d, cost, p, n_routes);
    char *text = cJSON_Print(root);
    fprintf(out, "%s\n", text);
    free(text);
    cJSON_Delete(root);
    px_allocation_free(&a);
    free_doc(&d);
    return 0;
}

/* ---------------- config.json ---------------- */

static int int_field(const cJSON *cfg, const char *key, int fallback) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    return cJSON_IsNumber(v) ? v->valueint : fallback;
}

static double bytes_for_dtype(const char *dtype) {
    if (!dtype) return 2.0;
    if (!strcmp(dtype, "float32") || !strcmp(dtype, "f32")) return 4.0;
    if (!strcmp(dtype, "q8_0")) return 34.0 / 32.0;
    if (!strcmp(dtype, "q4_0")) return 18.0 / 32.0;
    return 2.0; /* float16, bfloat16 */
}

static int dims_from_config(const cJSON *cfg, px_model_dims *d) {
    memset(d, 0, sizeof *d);
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(cfg, "text_config");
    if (cJSON_IsObject(text) && !cJSON_GetObjectItemCaseSensitive(cfg, "hidden_size")) cfg = text;
    d->hidden = int_field(cfg, "hidden_size", 0);
    d->intermediate = int_field(cfg, "intermediate_size", 0);
    d->n_heads = int_field(cfg, "num_attention_heads", 0);
    d->n_kv_heads = int_field(cfg, "num_key_value_heads", d->n_heads);
    d->head_dim = int_field(cfg, "head_dim", 0);
    d->vocab = int_field(cfg, "vocab_size", 0);
    d->n_layers = int_field(cfg, "num_hidden_layers", 0);
    d->tied = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "tie_word_embeddings"));
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(cfg, "torch_dtype");
    d->bytes_per_weight = bytes_for_dtype(cJSON_IsString(dtype) ? dtype->valuestring : NULL);
    return 0;
}

int px_model_cost_from_config(const char *model_dir, px_model_cost *cost) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", model_dir);
    char *text = px_read_file(path, NULL);
    if (!text) return -1;
    cJSON *cfg = cJSON_Parse(text);
    free(text);
    if (!cfg) {
        px_error_set("%s: not valid JSON", path);
        return -1;
    }
    px_model_dims d;
    dims_from_config(cfg, &d);
    cJSON_Delete(cfg);
    if (px_model_cost_from_dims(&d, cost) < 0) {
        px_error_set("%s: %s", path, px_error_get());
        return -1;
    }
    return 0;
}
