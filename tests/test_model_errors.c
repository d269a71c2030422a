/* test_model_errors.c - every kind of bad model directory gives one clear
 * error naming the file/tensor/field, and never a crash. Each case builds a
 * small model directory in a temp folder (a valid tiny Llama, then one thing
 * broken) and checks px_model_load() fails with the expected words. */
#include "model.h"
#include "px_test.h"
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

static void write_text(const char *name, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

static const char *good_config =
    "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":8,\"intermediate_size\":12,"
    "\"num_hidden_layers\":2,\"num_attention_heads\":2,\"num_key_value_heads\":1,\"vocab_size\":10,"
    "\"rms_norm_eps\":1e-5,\"tie_word_embeddings\":true}";

typedef struct { const char *name; int64_t d0, d1; } tensor_spec; /* d1 = 0: 1-D */

static const tensor_spec good_tensors[] = {
    {"model.embed_tokens.weight", 10, 8}, {"model.norm.weight", 8, 0},
    {"model.layers.0.input_layernorm.weight", 8, 0}, {"model.layers.0.post_attention_layernorm.weight", 8, 0},
    {"model.layers.0.self_attn.q_proj.weight", 8, 8}, {"model.layers.0.self_attn.k_proj.weight", 4, 8},
    {"model.layers.0.self_attn.v_proj.weight", 4, 8}, {"model.layers.0.self_attn.o_proj.weight", 8, 8},
    {"model.layers.0.mlp.gate_proj.weight", 12, 8}, {"model.layers.0.mlp.up_proj.weight", 12, 8},
    {"model.layers.0.mlp.down_proj.weight", 8, 12},
    {"model.layers.1.input_layernorm.weight", 8, 0}, {"model.layers.1.post_attention_layernorm.weight", 8, 0},
    {"model.layers.1.self_attn.q_proj.weight", 8, 8}, {"model.layers.1.self_attn.k_proj.weight", 4, 8},
    {"model.layers.1.self_attn.v_proj.weight", 4, 8}, {"model.layers.1.self_attn.o_proj.weight", 8, 8},
    {"model.layers.1.mlp.gate_proj.weight", 12, 8}, {"model.layers.1.mlp.up_proj.weight", 12, 8},
    {"model.layers.1.mlp.down_proj.weight", 8, 12},
};

/* Writes model.safetensors with the good tensors (F32, value 0.01), applying
 * `skip` (a tensor name to leave out) and `reshape` (a tensor to give d0+1 rows). */
static void write_safetensors(const char *skip, const char *reshape, long truncate_by, const char *raw_header) {
    char header[8192] = "{";
    uint64_t off = 0;
    for (size_t i = 0; i < PX_ARRAY_LEN(good_tensors); i++) {
        tensor_spec t = good_tensors[i];
        if (skip && !strcmp(skip, t.name)) continue;
        if (reshape && !strcmp(reshape, t.name)) t.d0++;
        uint64_t bytes = (uint64_t)(t.d0 * (t.d1 ? t.d1 : 1) * 4);
        char shape[64];
        if (t.d1) snprintf(shape, sizeof shape, "[%lld,%lld]", (long long)t.d0, (long long)t.d1);
        else snprintf(shape, sizeof shape, "[%lld]", (long long)t.d0);
        snprintf(header + strlen(header), sizeof header - strlen(header),
                 "%s\"%s\":{\"dtype\":\"F32\",\"shape\":%s,\"data_offsets\":[%llu,%llu]}", off ? "," : "", t.name,
                 shape, (unsigned long long)off, (unsigned long long)(off + bytes));
        off += bytes;
    }
    strcat(header, "}");
    if (raw_header) snprintf(header, sizeof header, "%s", raw_header);
    while (strlen(header) % 8) strcat(header, " ");
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *f = fopen(path, "wb");
    uint64_t n = strlen(header);
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)(n >> (8 * i));
    fwrite(len, 1, 8, f);
    fwrite(header, 1, n, f);
    float v = 0.01f;
    for (uint64_t i = 0; i + 4 <= off - (uint64_t)truncate_by; i += 4) fwrite(&v, 4, 1, f);
    fclose(f);
}

static void make_good_model(void) {
    write_text("config.json", good_config);
    write_safetensors(NULL, NULL, 0, NULL);
}

/* Loading must fail and the error must contain every one of the words. */
static void expect_failure(const char *what, px_load_options *opt, const char *w1, const char *w2) {
    px_error_clear();
    px_model *m = px_model_load(dir, opt);
    const char *err = px_error_get();
    bool ok = !m && strstr(err, w1) && (!w2 || strstr(err, w2));
    CHECK_MSG(ok, "%s: got %s \"%s\"", what, m ? "success" : "error", err);
    px_model_free(m);
    make_good_model();
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/px_model_errors_XXXXXX");
    if (!mkdtemp(dir)) return 1;
    make_good_model();
    px_model *m = px_model_load(dir, NULL);
    CHECK_MSG(m != NULL, "the good model loads: %s", px_error_get());
    px_model_free(m);

    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    expect_failure("missing config", NULL, "config.json", "No such file");
    write_text("config.json", "{\"architectures\": [\"Llama");
    expect_failure("malformed config", NULL, "config.json", "malformed JSON");
    write_text("config.json", "{\"architectures\":[\"GPT2LMHeadModel\"],\"hidden_size\":8}");
    expect_failure("unknown architecture", NULL, "unsupported architecture", "GPT2LMHeadModel");
    write_text("config.json", "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":8}");
    expect_failure("missing field", NULL, "config.json", "intermediate_size");
    write_text("config.json", "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":8,\"intermediate_size\":-3}");
    expect_failure("negative field", NULL, "intermediate_size", NULL);

    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    expect_failure("missing weights", NULL, "no model.safetensors", NULL);
    write_safetensors(NULL, NULL, 0, "{\"model.norm.weight\": {\"dtype\": \"F32\", \"shape\": [8], \"data_");
    expect_failure("malformed header", NULL, "model.safetensors", "malformed safetensors header");
    write_safetensors(NULL, NULL, 40, NULL);
    expect_failure("truncated data", NULL, "model.safetensors", "truncated");
    FILE *f = fopen(path, "wb");
    fwrite("\x10\x00\x00\x00\x00\x00\x00\x00{\"a\"", 1, 12, f); /* header says 16 bytes, file ends */
    fclose(f);
    expect_failure("truncated header", NULL, "model.safetensors", "header length");
    write_safetensors(NULL, NULL, 0,
                      "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,8]}}");
    expect_failure("offsets disagree with shape", NULL, "\"x\"", "data_offsets");
    write_safetensors(NULL, NULL, 0, "{\"x\":{\"dtype\":\"Q9\",\"shape\":[1],\"data_offsets\":[0,1]}}");
    expect_failure("unknown dtype", NULL, "\"x\"", "unknown dtype");
    write_safetensors(NULL, "model.layers.1.self_attn.k_proj.weight", 0, NULL);
    expect_failure("wrong shape", NULL, "model.layers.1.self_attn.k_proj.weight", "expected [4, 8]");
    write_safetensors("model.layers.0.mlp.up_proj.weight", NULL, 0, NULL);
    expect_failure("missing tensor", NULL, "model.layers.0.mlp.up_proj.weight", "not found");

    px_load_options bad_range = {.start = 1, .end = 3, .dtype = -1};
    expect_failure("range past the end", &bad_range, "layer range [1, 3)", "2 layers");
    px_load_options empty_range = {.start = 2, .end = 2, .dtype = -1};
    expect_failure("empty range", &empty_range, "layer range", NULL);

    /* a slice only needs its own tensors: layer 0 broken, slice [1, 2) still loads */
    write_safetensors("model.layers.0.mlp.up_proj.weight", NULL, 0, NULL);
    px_load_options tail = {.start = 1, .end = 2, .dtype = -1};
    m = px_model_load(dir, &tail);
    CHECK_MSG(m && !px_model_is_first(m) && px_model_is_last(m), "slice [1,2) loads without layer 0: %s",
              px_error_get());
    px_model_free(m);

    snprintf(path, sizeof path, "rm -rf '%s'", dir);
    CHECK(system(path) == 0);
    return px_test_finish();
}
