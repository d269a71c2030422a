/* config.c - reading a Hugging Face config.json (and generation_config.json)
 * into px_model_config, with the defaults transformers uses for each
 * architecture and a clear error naming any field that is missing or wrong. */
#include "model.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct { const char *name; px_arch arch; } known_archs[] = {
    {"LlamaForCausalLM", PX_ARCH_LLAMA},
    {"Qwen2ForCausalLM", PX_ARCH_QWEN2},
    {"Qwen3ForCausalLM", PX_ARCH_QWEN3},
    {"MistralForCausalLM", PX_ARCH_MISTRAL},
};

/* Reads an integer field; missing -> def (or an error when def < 0 means required). */
static int read_int(const cJSON *root, const char *path, const char *field, long def, long min, int *out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, field);
    if (!it || cJSON_IsNull(it)) {
        if (def < min) {
            px_error_set("%s: missing required field \"%s\"", path, field);
            return -1;
        }
        *out = (int)def;
        return 0;
    }
    double v = cJSON_GetNumberValue(it);
    if (!cJSON_IsNumber(it) || v != floor(v) || v < (double)min || v > 1e9) {
        px_error_set("%s: field \"%s\" must be an integer >= %ld", path, field, min);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int read_double(const cJSON *root, const char *path, const char *field, double def, double *out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, field);
    if (!it || cJSON_IsNull(it)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble)) {
        px_error_set("%s: field \"%s\" must be a number", path, field);
        return -1;
    }
    *out = it->valuedouble;
    return 0;
}

static bool read_bool(const cJSON *root, const char *field, bool def) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, field);
    return cJSON_IsBool(it) ? cJSON_IsTrue(it) : def;
}

static int read_arch(const cJSON *root, const char *path, px_model_config *cfg) {
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const cJSON *first = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
    if (!cJSON_IsString(first)) {
        px_error_set("%s: missing \"architectures\" (expected e.g. [\"LlamaForCausalLM\"])", path);
        return -1;
    }
    for (size_t i = 0; i < PX_ARRAY_LEN(known_archs); i++) {
        if (!strcmp(first->valuestring, known_archs[i].name)) {
            cfg->arch = known_archs[i].arch;
            snprintf(cfg->arch_name, sizeof cfg->arch_name, "%s", first->valuestring);
            return 0;
        }
    }
    px_error_set("%s: unsupported architecture \"%s\" (supported: LlamaForCausalLM, Qwen2ForCausalLM, "
                 "Qwen3ForCausalLM, MistralForCausalLM)", path, first->valuestring);
    return -1;
}

static int read_rope_scaling(const cJSON *root, const char *path, px_model_config *cfg) {
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    cfg->rope_scaling = PX_ROPE_SCALING_NONE;
    if (!rs || cJSON_IsNull(rs)) return 0;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!cJSON_IsString(type)) type = cJSON_GetObjectItemCaseSensitive(rs, "type");
    if (!cJSON_IsString(type)) {
        px_error_set("%s: \"rope_scaling\" has no \"rope_type\"", path);
        return -1;
    }
    if (!strcmp(type->valuestring, "default")) return 0;
    if (read_double(rs, path, "factor", 1.0, &cfg->rope_factor)) return -1;
    if (!strcmp(type->valuestring, "linear")) {
        cfg->rope_scaling = PX_ROPE_SCALING_LINEAR;
    } else if (!strcmp(type->valuestring, "llama3")) {
        cfg->rope_scaling = PX_ROPE_SCALING_LLAMA3;
        if (read_double(rs, path, "low_freq_factor", 1.0, &cfg->rope_low_freq_factor) ||
            read_double(rs, path, "high_freq_factor", 4.0, &cfg->rope_high_freq_factor) ||
            read_int(rs, path, "original_max_position_embeddings", 8192, 1, &cfg->rope_original_max_pos))
            return -1;
        if (cfg->rope_high_freq_factor <= cfg->rope_low_freq_factor) {
            px_error_set("%s: rope_scaling high_freq_factor must exceed low_freq_factor", path);
            return -1;
        }
    } else {
        px_error_set("%s: unsupported rope_scaling type \"%s\" (supported: llama3, linear)", path, type->valuestring);
        return -1;
    }
    if (cfg->rope_factor <= 0) {
        px_error_set("%s: rope_scaling factor must be positive", path);
        return -1;
    }
    return 0;
}

static void add_eos(px_model_config *cfg, int id) {
    for (int i = 0; i < cfg->n_eos; i++)
        if (cfg->eos_ids[i] == id) return;
    if (cfg->n_eos < PX_MAX_EOS) cfg->eos_ids[cfg->n_eos++] = id;
}

/* eos_token_id may be a number or a list of numbers. */
static void read_eos(const cJSON *root, px_model_config *cfg) {
    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(root, "eos_token_id");
    if (cJSON_IsNumber(eos)) add_eos(cfg, eos->valueint);
    const cJSON *it;
    if (cJSON_IsArray(eos))
        cJSON_ArrayForEach(it, eos) if (cJSON_IsNumber(it)) add_eos(cfg, it->valueint);
    const cJSON *bos = cJSON_GetObjectItemCaseSensitive(root, "bos_token_id");
    if (cJSON_IsNumber(bos)) cfg->bos_id = bos->valueint;
}

static cJSON *parse_json_file(const char *path) {
    char *text = px_read_file(path, NULL);
    if (!text) return NULL;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root) px_error_set("%s: malformed JSON", path);
    else if (!cJSON_IsObject(root)) {
        px_error_set("%s: expected a JSON object", path);
        cJSON_Delete(root);
        root = NULL;
    }
    return root;
}

static int read_shape(const cJSON *root, const char *path, px_model_config *cfg) {
    if (read_int(root, path, "hidden_size", -1, 1, &cfg->hidden) ||
        read_int(root, path, "intermediate_size", -1, 1, &cfg->intermediate) ||
        read_int(root, path, "num_hidden_layers", -1, 1, &cfg->n_layers) ||
        read_int(root, path, "num_attention_heads", -1, 1, &cfg->n_heads) ||
        read_int(root, path, "num_key_value_heads", cfg->n_heads, 1, &cfg->n_kv_heads) ||
        read_int(root, path, "head_dim", cfg->hidden / cfg->n_heads, 1, &cfg->head_dim) ||
        read_int(root, path, "vocab_size", -1, 1, &cfg->vocab) ||
        read_int(root, path, "max_position_embeddings", 2048, 1, &cfg->max_pos))
        return -1;
    if (cfg->n_heads % cfg->n_kv_heads) {
        px_error_set("%s: num_attention_heads (%d) is not a multiple of num_key_value_heads (%d)", path,
                     cfg->n_heads, cfg->n_kv_heads);
        return -1;
    }
    if (cfg->head_dim % 2) {
        px_error_set("%s: head_dim (%d) must be even for RoPE", path, cfg->head_dim);
        return -1;
    }
    double eps, theta;
    if (read_double(root, path, "rms_norm_eps", 1e-6, &eps) || read_double(root, path, "rope_theta", 10000.0, &theta))
        return -1;
    cfg->norm_eps = (float)eps;
    cfg->rope_theta = theta;
    return 0;
}

static int read_attention_options(const cJSON *root, const char *path, px_model_config *cfg) {
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (cJSON_IsString(act) && strcmp(act->valuestring, "silu")) {
        px_error_set("%s: unsupported hidden_act \"%s\" (only silu)", path, act->valuestring);
        return -1;
    }
    cfg->tie_embeddings = read_bool(root, "tie_word_embeddings", false);
    cfg->qkv_bias = cfg->arch == PX_ARCH_QWEN2 || read_bool(root, "attention_bias", false);
    cfg->qk_norm = cfg->arch == PX_ARCH_QWEN3;
    /* Mistral applies sliding_window to every layer; Qwen2/3 only with
     * use_sliding_window, from layer max_window_layers on. */
    int window = 0;
    if (read_int(root, path, "sliding_window", 0, 0, &window)) return -1;
    cfg->sliding_window = 0;
    cfg->sliding_window_from = 0;
    if (cfg->arch == PX_ARCH_MISTRAL) {
        cfg->sliding_window = window;
    } else if ((cfg->arch == PX_ARCH_QWEN2 || cfg->arch == PX_ARCH_QWEN3) && read_bool(root, "use_sliding_window", false)) {
        cfg->sliding_window = window;
        if (read_int(root, path, "max_window_layers", 0, 0, &cfg->sliding_window_from)) return -1;
    }
    return 0;
}

static int read_torch_dtype(const cJSON *root, px_model_config *cfg) {
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(root, "torch_dtype");
    if (!cJSON_IsString(dt)) dt = cJSON_GetObjectItemCaseSensitive(root, "dtype");
    int t = cJSON_IsString(dt) ? px_dtype_parse(dt->valuestring) : -1;
    cfg->stored_dtype = t < 0 ? PX_DTYPE_F32 : (px_dtype)t;
    return 0;
}

int px_model_config_load(const char *dir, px_model_config *cfg) {
    char path[4096];
    memset(cfg, 0, sizeof *cfg);
    cfg->bos_id = -1;
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *root = parse_json_file(path);
    if (!root) return -1;
    int rc = read_arch(root, path, cfg) || read_shape(root, path, cfg) || read_rope_scaling(root, path, cfg) ||
             read_attention_options(root, path, cfg) || read_torch_dtype(root, cfg);
    if (!rc) read_eos(root, cfg);
    cJSON_Delete(root);
    if (rc) return -1;

    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    FILE *f = fopen(path, "rb");
    if (f) {
        fclose(f);
        cJSON *gen = parse_json_file(path);
        if (!gen) return -1;
        read_eos(gen, cfg);
        cJSON_Delete(gen);
    }
    return 0;
}
