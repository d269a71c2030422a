/* test_cluster_plan.c - `parallax plan` end to end: a nodes document in (as a
 * list or with an RTT matrix or pair object), the JSON plan out (parsed back
 * and checked), successive routes that spread load, clear errors for bad
 * input and for a model that does not fit (shortfall in bytes), and the
 * command's flag handling. */
#include "cluster_fixtures.h"
#include "px_test.h"
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Runs the plan into a temporary file and parses it; NULL on failure. */
static cJSON *plan(const char *nodes_json, const px_model_cost *m, const px_cluster_params *p, int routes) {
    FILE *out = tmpfile();
    int rc = px_cluster_plan_json(nodes_json, m, p, routes, out);
    if (rc < 0) {
        fclose(out);
        return NULL;
    }
    long n = ftell(out);
    rewind(out);
    char *text = calloc((size_t)n + 1, 1);
    CHECK(fread(text, 1, (size_t)n, out) == (size_t)n);
    fclose(out);
    cJSON *doc = cJSON_Parse(text);
    CHECK_MSG(doc != NULL, "output is not JSON: %.200s", text);
    free(text);
    return doc;
}

static double num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static const char *six_nodes =
    "[{\"id\":\"g0\",\"memory_gb\":80,\"bandwidth_gbs\":2000,\"tflops\":300},"
    " {\"id\":\"g1\",\"memory_gb\":80,\"bandwidth_gbs\":2000,\"tflops\":300},"
    " {\"id\":\"g2\",\"memory_gb\":80,\"bandwidth_gbs\":2000,\"tflops\":300},"
    " {\"id\":\"g3\",\"memory_gb\":80,\"bandwidth_gbs\":2000,\"tflops\":300},"
    " {\"id\":\"g4\",\"memory_gb\":80,\"bandwidth_gbs\":2000,\"tflops\":300},"
    " {\"id\":\"g5\",\"memory_gb\":80,\"bandwidth_gbs\":2000,\"tflops\":300}]";

static void a_node_list_gives_pipelines_and_slices(void) {
    px_model_cost m = fx_model(36);
    m.layer_bytes = 4 * GB;
    px_cluster_params p;
    px_cluster_params_default(&p);
    cJSON *doc = plan(six_nodes, &m, &p, 0);
    CHECK(doc != NULL);
    CHECK(num(doc, "k") == 2 && num(doc, "stages") == 6);
    const cJSON *pipes = cJSON_GetObjectItemCaseSensitive(doc, "pipelines");
    CHECK(cJSON_GetArraySize(pipes) == 2);
    const cJSON *pipe;
    cJSON_ArrayForEach(pipe, pipes) {
        CHECK(cJSON_GetArraySize(pipe) == 3);
        double at = 0;
        const cJSON *stage;
        cJSON_ArrayForEach(stage, pipe) {
            CHECK(num(stage, "start") == at && num(stage, "end") == at + 12);
            at = num(stage, "end");
        }
    }
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(doc, "nodes")) == 6);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(doc, "standby")) == 0);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(doc, "options")) == 2);
    CHECK(cJSON_GetObjectItemCaseSensitive(doc, "routes") == NULL);
    cJSON_Delete(doc);
}

static void routes_spread_over_replicas_and_need_rtts(void) {
    px_model_cost m = fx_model(36);
    m.layer_bytes = 4 * GB;
    px_cluster_params p;
    px_cluster_params_default(&p);
    /* no RTT at all: every route is an error entry */
    cJSON *doc = plan(six_nodes, &m, &p, 2);
    const cJSON *routes = cJSON_GetObjectItemCaseSensitive(doc, "routes");
    CHECK(cJSON_GetArraySize(routes) == 2 && cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(routes, 0), "error"));
    cJSON_Delete(doc);
    /* RTTs as a matrix: two routes use different nodes for every stage */
    char text[4096];
    int len = snprintf(text, sizeof text, "{\"nodes\":%s,\"rtt_ms\":[", six_nodes);
    for (int i = 0; i < 6; i++) {
        len += snprintf(text + len, sizeof text - len, "%s[", i ? "," : "");
        for (int j = 0; j < 6; j++) len += snprintf(text + len, sizeof text - len, "%s%s", j ? "," : "", i == j ? "0" : "1.5");
        len += snprintf(text + len, sizeof text - len, "]");
    }
    snprintf(text + len, sizeof text - len, "]}");
    doc = plan(text, &m, &p, 2);
    CHECK(doc != NULL);
    routes = cJSON_GetObjectItemCaseSensitive(doc, "routes");
    CHECK(cJSON_GetArraySize(routes) == 2);
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(routes, 0), "stages");
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(routes, 1), "stages");
    CHECK(cJSON_GetArraySize(a) == 3 && cJSON_GetArraySize(b) == 3);
    for (int k = 0; k < 3; k++) {
        const char *na = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(a, k), "node")->valuestring;
        const char *nb = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(b, k), "node")->valuestring;
        CHECK(strcmp(na, nb) != 0);
    }
    /* 36 layers * 2 ms (4 GB / 2000 GB/s) + 2 hops of 1.5 ms */
    CHECK(fabs(num(cJSON_GetArrayItem(routes, 0), "cost_ms") - (36 * 2.0 + 3.0)) < 1e-9);
    cJSON_Delete(doc);
}

static void rtt_pairs_regions_and_manual_slices_are_read(void) {
    px_model_cost m = fx_model(36);
    px_cluster_params p;
    px_cluster_params_default(&p);
    const char *doc_text =
        "{\"nodes\":["
        " {\"id\":\"w\",\"memory_bytes\":60000000000,\"bandwidth\":1e12,\"region\":\"eu\"},"
        " {\"id\":\"p1\",\"memory_gb\":30,\"bandwidth_gbs\":2000,\"region\":\"eu\",\"slice\":[0,18]},"
        " {\"id\":\"p2\",\"memory_gb\":30,\"layer_latency_ms\":0.25,\"region\":\"eu\",\"load\":1,\"max_load\":4}],"
        " \"rtt_ms\":{\"w\":{\"p1\":1},\"p1\":{\"p2\":2}}}";
    cJSON *doc = plan(doc_text, &m, &p, 1);
    CHECK(doc != NULL);
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(doc, "nodes");
    const cJSON *p1 = cJSON_GetArrayItem(nodes, 1), *p2 = cJSON_GetArrayItem(nodes, 2);
    CHECK(!strcmp(cJSON_GetObjectItemCaseSensitive(p1, "role")->valuestring, "manual") && num(p1, "end") == 18);
    CHECK(num(p2, "layer_latency_ms") == 0.25);
    /* p2 replicates [18, 36) behind the manual p1: p1 -> p2 is 18*0.5 + 2 + 18*0.25*1.25 ms,
       cheaper than w alone at 36 ms */
    CHECK(!strcmp(cJSON_GetObjectItemCaseSensitive(p2, "role")->valuestring, "replica") && num(p2, "start") == 18);
    const cJSON *route = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(doc, "routes"), 0);
    CHECK_MSG(fabs(num(route, "cost_ms") - (9 + 2 + 5.625)) < 1e-9, "cost %g", num(route, "cost_ms"));
    cJSON_Delete(doc);
}

static void bad_documents_are_clear_errors(void) {
    px_model_cost m = fx_model(36);
    px_cluster_params p;
    px_cluster_params_default(&p);
    CHECK(plan("[{\"id\":\"a\"", &m, &p, 0) == NULL && strstr(px_error_get(), "not valid JSON"));
    CHECK(plan("[]", &m, &p, 0) == NULL && strstr(px_error_get(), "non-empty list"));
    CHECK(plan("[{\"memory_gb\":1}]", &m, &p, 0) == NULL && strstr(px_error_get(), "\"id\""));
    CHECK(plan("[{\"id\":\"a\",\"bandwidth_gbs\":1}]", &m, &p, 0) == NULL && strstr(px_error_get(), "memory"));
    CHECK(plan("[{\"id\":\"a\",\"memory_gb\":1}]", &m, &p, 0) == NULL && strstr(px_error_get(), "bandwidth"));
    CHECK(plan("[{\"id\":\"a\",\"memory_gb\":100,\"tflops\":1},{\"id\":\"a\",\"memory_gb\":1,\"tflops\":1}]", &m, &p, 0) ==
              NULL &&
          strstr(px_error_get(), "twice"));
    CHECK(plan("{\"nodes\":[{\"id\":\"a\",\"memory_gb\":100,\"tflops\":1}],\"rtt_ms\":{\"zz\":{}}}", &m, &p, 0) == NULL &&
          strstr(px_error_get(), "zz"));
    CHECK(plan("{\"nodes\":[{\"id\":\"a\",\"memory_gb\":100,\"tflops\":1}],\"rtt_ms\":[[0,1]]}", &m, &p, 0) == NULL);
    CHECK(plan("[{\"id\":\"a\",\"memory_gb\":100,\"tflops\":1,\"slice\":[3]}]", &m, &p, 0) == NULL &&
          strstr(px_error_get(), "slice"));
    /* the model does not fit: 2 x 24 GB usable vs 36 GB + 2 GB ends */
    m.embed_bytes = m.lm_head_bytes = GB;
    CHECK(plan("[{\"id\":\"a\",\"memory_gb\":32,\"tflops\":1},{\"id\":\"b\",\"memory_gb\":16,\"tflops\":1}]", &m, &p, 0) ==
          NULL);
    CHECK_MSG(strstr(px_error_get(), "2000000000 bytes short") != NULL, "%s", px_error_get());
}

static int run_command(const char *const *args) {
    char *argv[32];
    int argc = 0;
    for (; args[argc]; argc++) argv[argc] = (char *)args[argc];
    argv[argc] = NULL;
    fflush(stdout);
    int saved = dup(1);
    FILE *sink = freopen("/dev/null", "w", stdout);
    (void)sink;
    int rc = px_cluster_cmd_plan(argc, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    return rc;
}

static void the_command_checks_its_flags(void) {
    char path[] = "/tmp/px_plan_nodesXXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0 && write(fd, six_nodes, strlen(six_nodes)) == (ssize_t)strlen(six_nodes));
    close(fd);
    CHECK(run_command((const char *[]){"plan", "--help", NULL}) == 0);
    CHECK(run_command((const char *[]){"plan", "--layers", "36", "--layer-bytes", "4e9", NULL}) == 2);
    CHECK(run_command((const char *[]){"plan", "--nodes", path, NULL}) == 2);
    CHECK(run_command((const char *[]){"plan", "--nodes", path, "--layers", "36", "--layer-bytes", "4e9", "--route", "3",
                                       "--strategy", "greedy", NULL}) == 0);
    CHECK(run_command((const char *[]){"plan", "--nodes", path, "--layers", "x", "--layer-bytes", "4e9", NULL}) == 2);
    CHECK(run_command((const char *[]){"plan", "--nodes", path, "--layers", "36", "--layer-bytes", "4e9", "--strategy",
                                       "best", NULL}) == 2);
    CHECK(run_command((const char *[]){"plan", "--nodes", path, "--bogus", NULL}) == 2);
    CHECK(run_command((const char *[]){"plan", "--nodes", path, "--layers", "36", "--layer-bytes", "1e12", NULL}) == 1);
    CHECK(run_command((const char *[]){"plan", "--nodes", "/nonexistent.json", "--layers", "36", "--layer-bytes", "4e9",
                                       NULL}) == 1);
    if (access(PX_AIDREAMS_DIR "/config.json", R_OK) == 0)
        CHECK(run_command((const char *[]){"plan", "--nodes", path, "-m", PX_AIDREAMS_DIR, "--dtype", "q8_0", NULL}) == 0);
    unlink(path);
}

int main(void) {
    a_node_list_gives_pipelines_and_slices();
    routes_spread_over_replicas_and_need_rtts();
    rtt_pairs_regions_and_manual_slices_are_read();
    bad_documents_are_clear_errors();
    the_command_checks_its_flags();
    return px_test_finish();
}
