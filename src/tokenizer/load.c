/* load.c - reading tokenizer.json, tokenizer_config.json and
 * generation_config.json into a px_tokenizer.
 *
 * tokenizer.json is parsed with cJSON; its pre-tokenizer is read first so we
 * know whether the model is byte-level, because then vocabulary and merge
 * strings are converted to raw bytes. Every unsupported or malformed part is
 * a load error naming the file and the field. Special tokens of the config may
 * be strings or {"content": ...} objects. As transformers' LlamaTokenizerFast
 * does, an explicit add_bos_token / add_eos_token in the config of a Llama or
 * Gemma tokenizer decides whether BOS / EOS are added.
 */
#include "tok_internal.h"
#include "jinja.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *tk_json_str(const cJSON *obj, const char *key) {
    const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

bool tk_json_bool(const cJSON *obj, const char *key, bool dflt) {
    const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

/* Parses a JSON file; the error names the file and the line of a syntax error. */
static cJSON *parse_json_file(const char *path) {
    size_t len;
    char *text = px_read_file(path, &len);
    if (!text) return NULL;
    cJSON *j = cJSON_ParseWithLength(text, len);
    if (!j) {
        const char *at = cJSON_GetErrorPtr();
        int line = 1;
        for (const char *p = text; at && p < at && p < text + len; p++) line += *p == '\n';
        px_error_set("%s: malformed JSON near line %d", path, line);
    }
    free(text);
    return j;
}

/* ---- vocabulary ---- */

static bool vocab_extent(px_tokenizer *tok, const cJSON *vocab, const cJSON *added) {
    int32_t max_id = -1;
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > 1e8) {
            px_error_set("%s: model.vocab['%s'] is not a valid id", tok->source, it->string);
            return false;
        }
        max_id = PX_MAX(max_id, (int32_t)it->valuedouble);
    }
    cJSON_ArrayForEach(it, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > 1e8 || !tk_json_str(it, "content")) {
            px_error_set("%s: added_tokens entry without a valid 'id' and 'content'", tok->source);
            return false;
        }
        max_id = PX_MAX(max_id, (int32_t)id->valuedouble);
    }
    tok->n_vocab = max_id + 1;
    tok->pieces = px_calloc((size_t)tok->n_vocab + 1, sizeof *tok->pieces);
    tok->piece_len = px_calloc((size_t)tok->n_vocab + 1, sizeof *tok->piece_len);
    tok->id_flags = px_calloc((size_t)tok->n_vocab + 1, 1);
    return true;
}

static void set_piece(px_tokenizer *tok, int32_t id, const char *s) {
    free(tok->pieces[id]);
    tok->pieces[id] = px_strdup(s);
    tok->piece_len[id] = (uint32_t)strlen(s);
}

/* Whether s has a ▁ right after a character other than ▁. */
static bool inner_metaspace(const char *s, size_t len) {
    for (const char *p = s; (p = memmem(p, len - (size_t)(p - s), "\xE2\x96\x81", 3)); p += 3)
        if (p > s && !(p - s >= 3 && !memcmp(p - 3, "\xE2\x96\x81", 3))) return true;
    return false;
}

static bool load_vocab(px_tokenizer *tok, const cJSON *vocab) {
    tk_buf raw = {0};
    const cJSON *it;
    tk_strmap_init(&tok->vocab, (size_t)cJSON_GetArraySize(vocab));
    tok->split_meta = !tok->byte_level;
    cJSON_ArrayForEach(it, vocab) {
        int32_t id = (int32_t)it->valuedouble;
        size_t len = strlen(it->string);
        if (tok->split_meta && inner_metaspace(it->string, len)) tok->split_meta = false;
        if (!tok->pieces[id]) set_piece(tok, id, it->string);
        tk_strmap_put(&tok->piece_map, it->string, len, id);
        raw.n = 0;
        if (!tok->byte_level) tk_strmap_put(&tok->vocab, it->string, len, id);
        else if (tk_bytelevel_decode(it->string, len, &raw)) tk_strmap_put(&tok->vocab, raw.p ? raw.p : "", raw.n, id);
    }
    tk_buf_free(&raw);
    return true;
}

/* continuing_subword_prefix / end_of_word_suffix, in the model's key space. */
static void load_affix(px_tokenizer *tok, const cJSON *model, const char *key, char **out, size_t *len) {
    const char *s = tk_json_str(model, key);
    if (!s || !*s) return;
    tk_buf b = {0};
    if (!tok->byte_level || !tk_bytelevel_decode(s, strlen(s), &b)) {
        b.n = 0;
        tk_buf_puts(&b, s);
    }
    *out = tk_buf_detach(&b, len);
}

static void load_byte_ids(px_tokenizer *tok) {
    for (int b = 0; b < 256; b++) {
        char key[8];
        tok->byte_ids[b] = -1;
        if (tok->byte_level) {
            char c = (char)b;
            tok->byte_ids[b] = tk_strmap_get(&tok->vocab, &c, 1);
        } else if (tok->byte_fallback) {
            snprintf(key, sizeof key, "<0x%02X>", b);
            tok->byte_ids[b] = tk_strmap_get(&tok->vocab, key, strlen(key));
        }
        if (tok->byte_fallback && tok->byte_ids[b] >= 0 && !tok->byte_level) tok->id_flags[tok->byte_ids[b]] |= TK_ID_BYTE;
    }
}

static bool load_model(px_tokenizer *tok, const cJSON *model) {
    const char *type = tk_json_str(model, "type");
    if (!cJSON_IsObject(model) || (type && strcmp(type, "BPE"))) {
        px_error_set("%s: model type '%s' is not supported (only BPE)", tok->source, type ? type : "(missing)");
        return false;
    }
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (!cJSON_IsObject(vocab)) {
        px_error_set("%s: model.vocab is not an object", tok->source);
        return false;
    }
    if (cJSON_IsNumber(dropout) && dropout->valuedouble > 0 && dropout->valuedouble < 1)
        px_log_warn("%s: BPE dropout %g ignored (inference tokenizes deterministically)", tok->source, dropout->valuedouble);
    tok->byte_fallback = tk_json_bool(model, "byte_fallback", false);
    tok->fuse_unk = tk_json_bool(model, "fuse_unk", false);
    tok->ignore_merges = tk_json_bool(model, "ignore_merges", false);
    load_vocab(tok, vocab);
    const char *unk = tk_json_str(model, "unk_token");
    tok->unk_id = unk ? tk_strmap_get(&tok->piece_map, unk, strlen(unk)) : -1;
    load_affix(tok, model, "continuing_subword_prefix", &tok->cont_prefix, &tok->cont_prefix_len);
    load_affix(tok, model, "end_of_word_suffix", &tok->eow_suffix, &tok->eow_suffix_len);
    load_byte_ids(tok);
    /* cutting words before ▁ needs ▁ itself in the vocab and no word-position affixes */
    if (tk_strmap_get(&tok->vocab, "\xE2\x96\x81", 3) < 0 || tok->cont_prefix || tok->eow_suffix) tok->split_meta = false;
    return tk_bpe_load_merges(tok, cJSON_GetObjectItemCaseSensitive(model, "merges"));
}

/* ---- added tokens ---- */

static void load_added(px_tokenizer *tok, const cJSON *added) {
    tok->n_added = (size_t)cJSON_GetArraySize(added);
    tok->added = px_calloc(tok->n_added + 1, sizeof *tok->added);
    size_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, added) {
        tk_added *a = &tok->added[i++];
        a->id = (int32_t)cJSON_GetObjectItemCaseSensitive(it, "id")->valuedouble;
        a->content = px_strdup(tk_json_str(it, "content"));
        a->len = strlen(a->content);
        a->special = tk_json_bool(it, "special", false);
        a->lstrip = tk_json_bool(it, "lstrip", false);
        a->rstrip = tk_json_bool(it, "rstrip", false);
        a->single_word = tk_json_bool(it, "single_word", false);
        a->normalized = tk_json_bool(it, "normalized", !a->special);
        set_piece(tok, a->id, a->content);
        tok->id_flags[a->id] |= (uint8_t)(TK_ID_ADDED | (a->special ? TK_ID_SPECIAL : 0));
    }
}

/* Tokens with normalized=true are matched after normalization, so their
 * content is normalized too before it goes into the trie. */
static void build_tries(px_tokenizer *tok) {
    tk_buf b = {0};
    for (size_t i = 0; i < tok->n_added && tok->norm; i++) {
        tk_added *a = &tok->added[i];
        if (!a->normalized) continue;
        tk_norm_apply(tok->norm, a->content, a->len, &b);
        free(a->content);
        a->content = tk_buf_detach(&b, &a->len);
    }
    tk_buf_free(&b);
    tk_trie_build(&tok->trie_raw, tok->added, tok->n_added, false);
    tk_trie_build(&tok->trie_norm, tok->added, tok->n_added, true);
}

/* ---- post-processor ---- */

static bool template_special(px_tokenizer *tok, const cJSON *specials, const char *name, tk_ids *out) {
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(specials, name), "ids");
    const cJSON *it;
    if (!cJSON_IsArray(ids)) {
        px_error_set("%s: post_processor special token '%s' has no 'ids'", tok->source, name);
        return false;
    }
    cJSON_ArrayForEach(it, ids) tk_ids_push(out, (int32_t)it->valuedouble);
    return true;
}

static bool load_template_processing(px_tokenizer *tok, const cJSON *pp) {
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single"), *it;
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(pp, "special_tokens");
    bool after = false;
    cJSON_ArrayForEach(it, single) {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
        if (cJSON_GetObjectItemCaseSensitive(it, "Sequence")) after = true;
        else if (tk_json_str(sp, "id")) {
            if (!template_special(tok, specials, tk_json_str(sp, "id"), after ? &tok->post.post : &tok->post.pre))
                return false;
        } else {
            px_error_set("%s: post_processor.single has an item that is neither SpecialToken nor Sequence", tok->source);
            return false;
        }
    }
    return true;
}

static bool load_post(px_tokenizer *tok, const cJSON *pp) {
    const char *type = tk_json_str(pp, "type");
    if (!pp || cJSON_IsNull(pp) || (type && !strcmp(type, "ByteLevel"))) return true;
    if (type && !strcmp(type, "TemplateProcessing")) return load_template_processing(tok, pp);
    if (type && (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing"))) {
        const cJSON *cls = cJSON_GetObjectItemCaseSensitive(pp, "cls"), *sep = cJSON_GetObjectItemCaseSensitive(pp, "sep");
        if (cJSON_GetArraySize(cls) == 2 && cJSON_GetArraySize(sep) == 2) {
            tk_ids_push(&tok->post.pre, (int32_t)cJSON_GetArrayItem(cls, 1)->valuedouble);
            tk_ids_push(&tok->post.post, (int32_t)cJSON_GetArrayItem(sep, 1)->valuedouble);
            return true;
        }
    }
    if (type && !strcmp(type, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(pp, "processors")) if (!load_post(tok, it)) return false;
        return true;
    }
    px_error_set("%s: post_processor type '%s' is not supported", tok->source, type ? type : "(missing)");
    return false;
}

/* ---- tokenizer.json ---- */

static bool load_pipeline(px_tokenizer *tok, const cJSON *root) {
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    if (norm && !cJSON_IsNull(norm)) {
        tok->norm = px_calloc(1, sizeof *tok->norm);
        if (!tk_norm_parse(norm, tok->norm)) return false;
    }
    if (dec && !cJSON_IsNull(dec)) {
        tok->dec = px_calloc(1, sizeof *tok->dec);
        tok->has_decoder = true;
        if (!tk_dec_parse(dec, tok->dec)) return false;
    }
    return load_post(tok, cJSON_GetObjectItemCaseSensitive(root, "post_processor"));
}

static bool load_root(px_tokenizer *tok, const cJSON *root) {
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (pre && !cJSON_IsNull(pre)) {
        tok->pre = px_calloc(1, sizeof *tok->pre);
        if (!tk_pre_parse(pre, tok->pre, &tok->byte_level)) return false;
    }
    if (added && !cJSON_IsArray(added)) {
        px_error_set("%s: added_tokens is not an array", tok->source);
        return false;
    }
    if (!vocab_extent(tok, cJSON_GetObjectItemCaseSensitive(model, "vocab"), added)) return false;
    tk_strmap_init(&tok->piece_map, (size_t)tok->n_vocab);
    load_added(tok, added); /* first, so piece_to_id prefers added tokens */
    for (size_t i = 0; i < tok->n_added; i++) tk_strmap_put(&tok->piece_map, tok->added[i].content, tok->added[i].len, tok->added[i].id);
    if (!load_model(tok, model) || !load_pipeline(tok, root)) return false;
    build_tries(tok);
    return true;
}

bool tk_load_tokenizer_json(px_tokenizer *tok, const char *path) {
    cJSON *root = parse_json_file(path);
    if (!root) return false;
    bool ok = cJSON_IsObject(root) && cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "model"));
    if (!ok) px_error_set("%s: not a tokenizer.json (no 'model' object)", path);
    else {
        px_error_set("%s: error", path); /* replaced by any real error below */
        ok = load_root(tok, root);
        if (ok) px_error_clear();
        else {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", px_error_get());
            if (!strstr(msg, path)) px_error_set("%s: %s", path, msg);
        }
    }
    cJSON_Delete(root);
    return ok;
}

/* ---- tokenizer_config.json / generation_config.json ---- */

/* A special token given as "text" or {"content": "text"}. */
static char *config_token(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsString(v)) return px_strdup(v->valuestring);
    const char *c = tk_json_str(v, "content");
    return c ? px_strdup(c) : NULL;
}

static int32_t token_id(const px_tokenizer *tok, const char *s) { return s ? px_tokenizer_piece_to_id(tok, s) : -1; }

static void add_eos(px_tokenizer *tok, int32_t id) {
    if (id < 0 || id >= tok->n_vocab) return;
    for (size_t i = 0; i < tok->n_eos; i++)
        if (tok->eos_ids[i] == id) return;
    tok->eos_ids = px_realloc(tok->eos_ids, (tok->n_eos + 1) * sizeof *tok->eos_ids);
    tok->eos_ids[tok->n_eos++] = id;
}

static void llama_post_override(px_tokenizer *tok, const cJSON *cfg) {
    const char *cls = tk_json_str(cfg, "tokenizer_class");
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token");
    const cJSON *ae = cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token");
    if (!cls || (!strstr(cls, "Llama") && !strstr(cls, "Gemma")) || (!cJSON_IsBool(ab) && !cJSON_IsBool(ae))) return;
    bool add_bos = cJSON_IsBool(ab) ? cJSON_IsTrue(ab) : true, add_eos = cJSON_IsTrue(ae);
    tok->post.pre.n = tok->post.post.n = 0;
    if (add_bos && tok->bos_id >= 0) tk_ids_push(&tok->post.pre, tok->bos_id);
    if (add_eos && tok->eos_id >= 0) tk_ids_push(&tok->post.post, tok->eos_id);
}

static void load_chat_template_field(px_tokenizer *tok, const cJSON *t) {
    if (cJSON_IsString(t)) {
        tok->chat_template = px_strdup(t->valuestring);
        return;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, t) { /* [{"name": "default", "template": "..."}, {"name": "tool_use", ...}] */
        const char *name = tk_json_str(it, "name"), *body = tk_json_str(it, "template");
        if (!name || !body) continue;
        if (!strcmp(name, "default") && !tok->chat_template) tok->chat_template = px_strdup(body);
        if (!strcmp(name, "tool_use") && !tok->tool_template) tok->tool_template = px_strdup(body);
    }
}

static bool load_config(px_tokenizer *tok, const char *path) {
    cJSON *cfg = parse_json_file(path);
    if (!cfg) return false;
    tok->bos_token = config_token(cfg, "bos_token");
    tok->eos_token = config_token(cfg, "eos_token");
    tok->pad_token = config_token(cfg, "pad_token");
    tok->unk_token = config_token(cfg, "unk_token");
    tok->bos_id = token_id(tok, tok->bos_token);
    tok->eos_id = token_id(tok, tok->eos_token);
    tok->pad_id = token_id(tok, tok->pad_token);
    tok->cfg_unk_id = token_id(tok, tok->unk_token);
    tok->cleanup_spaces = tk_json_bool(cfg, "clean_up_tokenization_spaces", false);
    load_chat_template_field(tok, cJSON_GetObjectItemCaseSensitive(cfg, "chat_template"));
    llama_post_override(tok, cfg);
    cJSON_Delete(cfg);
    return true;
}

static bool load_generation(px_tokenizer *tok, const char *path) {
    cJSON *gen = parse_json_file(path);
    if (!gen) return false;
    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(gen, "eos_token_id"), *it;
    if (cJSON_IsNumber(eos)) add_eos(tok, (int32_t)eos->valuedouble);
    cJSON_ArrayForEach(it, (cJSON_IsArray(eos) ? eos : NULL)) if (cJSON_IsNumber(it)) add_eos(tok, (int32_t)it->valuedouble);
    const cJSON *bos = cJSON_GetObjectItemCaseSensitive(gen, "bos_token_id");
    if (tok->bos_id < 0 && cJSON_IsNumber(bos) && bos->valuedouble < tok->n_vocab) tok->bos_id = (int32_t)bos->valuedouble;
    cJSON_Delete(gen);
    return true;
}

bool tk_load_configs(px_tokenizer *tok, const char *config_path, const char *generation_path) {
    tok->bos_id = tok->eos_id = tok->pad_id = tok->cfg_unk_id = -1;
    if (config_path && !load_config(tok, config_path)) return false;
    if (generation_path && !load_generation(tok, generation_path)) return false;
    add_eos(tok, tok->eos_id);
    return true;
}

bool tk_load_template(px_tokenizer *tok, const char *path) {
    size_t len;
    char *text = px_read_file(path, &len);
    if (!text) return false;
    free(tok->chat_template);
    tok->chat_template = text;
    return true;
}
