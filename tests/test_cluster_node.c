/* test_cluster_node.c - the node model: per-layer cost from model dims
 * (checked against hand arithmetic for the Qwen3-0.6B shape and against the
 * tensor sizes in the aidreams-260k safetensors header), capacities with the
 * KV reserve and embedding/lm_head, the roofline, max load from the KV
 * budget, and RTT lookup with its symmetric fallback. */
#include "cluster_fixtures.h"
#include "px_test.h"
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#ifndef PX_AIDREAMS_DIR
#define PX_AIDREAMS_DIR ""
#endif

static void qwen3_shape_costs_what_the_arithmetic_says(void) {
    px_model_dims d = {.hidden = 1024, .intermediate = 3072, .n_heads = 16, .n_kv_heads = 8, .head_dim = 128,
                       .vocab = 151936, .n_layers = 28, .tied = true, .bytes_per_weight = 2};
    px_model_cost m;
    CHECK(px_model_cost_from_dims(&d, &m) == 0);
    /* q 1024x2048, k and v 1024x1024, o 2048x1024, MLP 3 x 1024x3072, two norms */
    CHECK(m.layer_bytes == 2ull * (3 * 2097152 + 9437184 + 2048));
    CHECK(m.layer_flops == 2.0 * (3 * 2097152 + 9437184 + 2048));
    CHECK(m.embed_bytes == 2ull * 151936 * 1024 && m.lm_head_bytes == m.embed_bytes + 4096 && m.tied);
    CHECK(m.kv_bytes_per_token == 2 * 1024 * 4 && m.n_layers == 28);
    d.context_tokens = 1000;
    px_model_cost with_attention;
    px_model_cost_from_dims(&d, &with_attention);
    CHECK(with_attention.layer_flops == m.layer_flops + 4.0 * 2048 * 1000);
    d.head_dim = 0; /* hidden / heads = 64 */
    px_model_cost_from_dims(&d, &m);
    CHECK(m.layer_bytes == 2ull * (1024 * 1024 * 2 + 2 * 1024 * 512 + 9437184 + 2048));
    d.n_layers = 0;
    CHECK(px_model_cost_from_dims(&d, &m) < 0);
}

/* Sum of the bytes of the tensors whose name contains `part`. */
static double tensor_bytes(const cJSON *header, const char *part) {
    double sum = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, header) {
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
        if (strstr(t->string, part) && cJSON_IsArray(off))
            sum += cJSON_GetArrayItem(off, 1)->valuedouble - cJSON_GetArrayItem(off, 0)->valuedouble;
    }
    return sum;
}

static void aidreams_config_matches_its_safetensors(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", PX_AIDREAMS_DIR);
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("skipped: %s not found\n", path);
        return;
    }
    uint64_t n = 0;
    CHECK(fread(&n, 8, 1, f) == 1 && n < 1000000);
    char *text = calloc(n + 1, 1);
    CHECK(fread(text, 1, n, f) == n);
    fclose(f);
    cJSON *header = cJSON_Parse(text);
    free(text);
    px_model_cost m;
    CHECK(px_model_cost_from_config(PX_AIDREAMS_DIR, &m) == 0);
    CHECK(m.n_layers == 4 && m.tied);
    CHECK_MSG(m.layer_bytes == (uint64_t)tensor_bytes(header, "layers.0."), "%llu vs %.0f",
              (unsigned long long)m.layer_bytes, tensor_bytes(header, "layers.0."));
    CHECK(m.embed_bytes == (uint64_t)tensor_bytes(header, "embed_tokens"));
    CHECK(m.lm_head_bytes == m.embed_bytes + (uint64_t)tensor_bytes(header, "model.norm"));
    cJSON_Delete(header);
    CHECK(px_model_cost_from_config("/nonexistent", &m) < 0);
}

static void capacity_reserves_kv_and_ends(void) {
    px_model_cost m = fx_model(40);
    m.embed_bytes = 3 * GB / 2;
    m.lm_head_bytes = 5 * GB / 2;
    px_node_info n;
    px_node_info_init(&n, "n");
    n.memory_bytes = 16 * GB; /* 12 GB usable at 25% reserve */
    px_layer_capacity c;
    px_node_layer_capacity(&n, &m, 0.25, &c);
    CHECK(c.mid == 12 && c.first == 10 && c.last == 9 && c.both == 8);
    CHECK(px_layer_capacity_at(&c, 0, 5, 40) == 10 && px_layer_capacity_at(&c, 5, 40, 40) == 9);
    CHECK(px_layer_capacity_at(&c, 0, 40, 40) == 8 && px_layer_capacity_at(&c, 5, 6, 40) == 12);
    px_node_layer_capacity(&n, &m, 0.5, &c);
    CHECK(c.mid == 8 && c.both == 4);
    n.memory_bytes = 1 * GB; /* can't even hold the lm_head: clamped to 0 */
    px_node_layer_capacity(&n, &m, 0.25, &c);
    CHECK(c.mid == 0 && c.first == 0 && c.last == 0 && c.both == 0);
    n.memory_bytes = 1000 * GB; /* clamped to the model */
    px_node_layer_capacity(&n, &m, 0.25, &c);
    CHECK(c.mid == 40 && c.both == 40);
}

static void roofline_takes_the_slower_bound(void) {
    px_model_cost m = fx_model(10); /* 1 GB and 1 GFLOP per layer */
    px_node_info n;
    px_node_info_init(&n, "n");
    n.bandwidth = 50.0 * GB;    /* 20 ms */
    n.flops = 1e12;             /* 1 ms */
    CHECK(fabs(px_node_roofline_latency(&n, &m) - 0.02) < 1e-15);
    n.flops = 1e10;             /* 100 ms: compute bound */
    CHECK(fabs(px_node_roofline_latency(&n, &m) - 0.1) < 1e-15);
    n.bandwidth = 0;            /* only one term known */
    CHECK(fabs(px_node_roofline_latency(&n, &m) - 0.1) < 1e-15);
    n.flops = 0;
    CHECK(px_node_roofline_latency(&n, &m) == 1.0);
    n.layer_latency = 0.004;    /* measured wins */
    CHECK(px_node_layer_latency(&n, &m) == 0.004);
}

static void max_load_follows_the_kv_budget(void) {
    px_model_cost m = fx_model(10);
    m.kv_bytes_per_token = 1000;
    px_node_info n;
    px_node_info_init(&n, "n");
    n.memory_bytes = 10 * GB;
    /* 5 layers: 5 GB weights, 5 GB left; one request = 5 * 1000 * 4096 bytes */
    CHECK(px_node_max_load(&n, &m, 2, 7, 4096, 16) == (int)(5e9 / (5.0 * 1000 * 4096)));
    n.max_load = 3;
    CHECK(px_node_max_load(&n, &m, 2, 7, 4096, 16) == 3);
    n.max_load = 0;
    m.kv_bytes_per_token = 0;
    CHECK(px_node_max_load(&n, &m, 2, 7, 4096, 16) == 16);
    m.kv_bytes_per_token = 1000000;
    CHECK(px_node_max_load(&n, &m, 0, 10, 4096, 16) == 1); /* no room: still one */
}

static void rtt_lookup_falls_back_symmetrically(void) {
    double rtt[9];
    fx_rtt_unknown(rtt, 3);
    rtt[0 * 3 + 1] = 0.004;
    rtt[2 * 3 + 1] = -1; /* negative: unknown */
    CHECK(px_rtt_lookup(rtt, 3, 0, 1, 9) == 0.004);
    CHECK(px_rtt_lookup(rtt, 3, 1, 0, 9) == 0.004);
    CHECK(px_rtt_lookup(rtt, 3, 1, 2, 9) == 9);
    CHECK(px_rtt_lookup(rtt, 3, 2, 2, 9) == 0);
    CHECK(isinf(px_rtt_lookup(NULL, 3, 0, 1, PX_RTT_UNREACHABLE)));
    rtt[1 * 3 + 0] = 0.006; /* both directions known: each its own */
    CHECK(px_rtt_lookup(rtt, 3, 1, 0, 9) == 0.006 && px_rtt_lookup(rtt, 3, 0, 1, 9) == 0.004);
}

static void defaults_are_the_documented_ones(void) {
    px_cluster_params p;
    px_cluster_params_default(&p);
    CHECK(p.alpha == 2.0 && p.kv_reserve == 0.25 && isinf(p.unknown_rtt) && p.planning_rtt == 0.005);
    CHECK(p.dp_max_nodes == 32 && p.dp_budget == 5000 && p.region_aware && p.place_leftovers && p.rebalance_cv == 0.25);
    CHECK(p.heartbeat_timeout == 10.0 && p.ewma_weight == 0.3 && p.default_max_load == 16);
    px_node_info n;
    px_node_info_init(&n, "a-very-long-node-name-that-is-longer-than-the-sixty-four-bytes-we-keep-for-ids");
    CHECK(strlen(n.id) == PX_CLUSTER_ID_MAX - 1 && n.manual_start == -1 && n.manual_end == -1);
}

int main(void) {
    qwen3_shape_costs_what_the_arithmetic_says();
    aidreams_config_matches_its_safetensors();
    capacity_reserves_kv_and_ends();
    roofline_takes_the_slower_bound();
    max_load_follows_the_kv_budget();
    rtt_lookup_falls_back_symmetrically();
    defaults_are_the_documented_ones();
    return px_test_finish();
}
