/* tokenizer.c - the public face of the tokenizer module: loading a model
 * directory, encoding, one-shot decoding and the vocabulary accessors.
 *
 * Encoding follows `tokenizers`' Tokenizer::encode: split the text on added
 * tokens that are matched before normalization, normalize each remaining
 * segment, split again on added tokens matched after normalization,
 * pre-tokenize, run BPE on every piece, then let the post-processor add
 * BOS/EOS. All per-call state lives on the caller's stack or in buffers freed
 * before returning, so a tokenizer can be shared by threads.
 */
#include "tok_internal.h"
#include "jinja.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- loading ---- */

static char *join_path(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = px_malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static char *existing(const char *dir, const char *name) {
    char *p = join_path(dir, name);
    if (access(p, R_OK) == 0) return p;
    free(p);
    return NULL;
}

static bool compile_templates(px_tokenizer *tok) {
    const char *which[2] = {tok->chat_template, tok->tool_template};
    struct px_jinja **slot[2] = {&tok->tmpl, &tok->tool_tmpl};
    for (int i = 0; i < 2; i++) {
        if (!which[i]) continue;
        *slot[i] = px_jinja_compile(which[i], strlen(which[i]), i ? "tool_use chat template" : "chat template");
        if (!*slot[i] && !tok->template_error) tok->template_error = px_strdup(px_error_get());
    }
    px_error_clear();
    return true;
}

px_tokenizer *px_tokenizer_load_files(const char *tokenizer_json_path, const char *config_path,
                                      const char *generation_path) {
    static uint32_t serials;
    px_tokenizer *tok = px_calloc(1, sizeof *tok);
    tok->serial = __atomic_add_fetch(&serials, 1, __ATOMIC_RELAXED);
    tok->source = px_strdup(tokenizer_json_path);
    tok->unk_id = -1;
    if (!tk_load_tokenizer_json(tok, tokenizer_json_path) || !tk_load_configs(tok, config_path, generation_path)) {
        px_tokenizer_free(tok);
        return NULL;
    }
    compile_templates(tok);
    return tok;
}

px_tokenizer *px_tokenizer_load(const char *model_dir) {
    char *json = existing(model_dir, "tokenizer.json");
    if (!json) {
        px_error_set("%s: no readable tokenizer.json (SentencePiece tokenizer.model alone is not supported)", model_dir);
        return NULL;
    }
    char *cfg = existing(model_dir, "tokenizer_config.json"), *gen = existing(model_dir, "generation_config.json");
    char *tmpl = existing(model_dir, "chat_template.jinja");
    px_tokenizer *tok = px_tokenizer_load_files(json, cfg, gen);
    if (tok && tmpl) {
        if (tok->tmpl) px_jinja_free(tok->tmpl);
        tok->tmpl = NULL;
        free(tok->template_error);
        tok->template_error = NULL;
        if (!tk_load_template(tok, tmpl)) {
            px_tokenizer_free(tok);
            tok = NULL;
        } else compile_templates(tok);
    }
    free(json);
    free(cfg);
    free(gen);
    free(tmpl);
    return tok;
}

void px_tokenizer_free(px_tokenizer *tok) {
    if (!tok) return;
    for (int32_t i = 0; i < tok->n_vocab; i++) free(tok->pieces[i]);
    free(tok->pieces);
    free(tok->piece_len);
    free(tok->id_flags);
    tk_strmap_free(&tok->vocab);
    tk_strmap_free(&tok->piece_map);
    tk_pairmap_free(&tok->merges);
    for (size_t i = 0; i < tok->n_added; i++) free(tok->added[i].content);
    free(tok->added);
    tk_trie_free(&tok->trie_raw);
    tk_trie_free(&tok->trie_norm);
    tk_norm_free(tok->norm);
    tk_pre_free(tok->pre);
    tk_dec_free(tok->dec);
    free(tok->norm);
    free(tok->pre);
    free(tok->dec);
    free(tok->post.pre.v);
    free(tok->post.post.v);
    free(tok->eos_ids);
    free(tok->cont_prefix);
    free(tok->eow_suffix);
    free(tok->bos_token);
    free(tok->eos_token);
    free(tok->pad_token);
    free(tok->unk_token);
    free(tok->chat_template);
    free(tok->tool_template);
    free(tok->template_error);
    px_jinja_free(tok->tmpl);
    px_jinja_free(tok->tool_tmpl);
    free(tok->source);
    free(tok);
}

/* ---- encoding ---- */

typedef struct {
    const px_tokenizer *tok;
    tk_ids *out;
    tk_bpe_scratch bpe;
    tk_pieces pieces;
    tk_buf norm;
    tk_segs segs;
    pcre2_match_data *md;
} encoder;

/* BPE on one word. When no token of the vocabulary has a ▁ after another
 * character (SentencePiece vocabularies), no merge can cross such a place,
 * so the word is cut there first: same ids, much smaller merge heaps, and
 * the pieces hit the word cache. */
static void encode_word(encoder *e, const char *s, size_t n) {
    if (!e->tok->split_meta) {
        tk_bpe_word(e->tok, &e->bpe, s, n, e->out);
        return;
    }
    size_t start = 0;
    for (const char *p = s; (p = memmem(p, n - (size_t)(p - s), "\xE2\x96\x81", 3)); p += 3) {
        size_t at = (size_t)(p - s);
        if (at > start && !(at >= 3 && !memcmp(p - 3, "\xE2\x96\x81", 3))) {
            tk_bpe_word(e->tok, &e->bpe, s + start, at - start, e->out);
            start = at;
        }
    }
    tk_bpe_word(e->tok, &e->bpe, s + start, n - start, e->out);
}

static void encode_piece_text(encoder *e, const char *s, size_t n, bool first) {
    tk_pieces *p = &e->pieces;
    tk_pieces_clear(p);
    tk_pieces_add_text(p, s, n, first);
    if (e->tok->pre) tk_pre_apply(e->tok->pre, p, e->md);
    for (size_t i = 0; i < p->n; i++) encode_word(e, p->text.p + p->v[i].off, p->v[i].len);
}

/* One segment of text between added tokens: normalize, split on normalized
 * added tokens, pre-tokenize, BPE. */
static void encode_segment(encoder *e, const char *s, size_t n, bool first) {
    const char *t = s;
    size_t tn = n;
    if (e->tok->norm) {
        tk_norm_apply(e->tok->norm, s, n, &e->norm);
        t = e->norm.p ? e->norm.p : "";
        tn = e->norm.n;
    }
    if (e->tok->trie_norm.n <= 1) {
        encode_piece_text(e, t, tn, first);
        return;
    }
    tk_segs segs = {0};
    tk_split_added(e->tok, &e->tok->trie_norm, t, tn, false, &segs);
    for (size_t i = 0; i < segs.n; i++) {
        if (segs.v[i].id >= 0) tk_ids_push(e->out, segs.v[i].id);
        else encode_piece_text(e, t + segs.v[i].off, segs.v[i].len, first && segs.v[i].off == 0);
    }
    free(segs.v);
}

int32_t *px_tokenizer_encode(const px_tokenizer *tok, const char *text, size_t len, int flags, size_t *n_out) {
    size_t bad = tk_utf8_check(text, len);
    if (bad < len) {
        px_error_set("text is not valid UTF-8 (byte %zu of %zu is 0x%02X)", bad, len, (unsigned char)text[bad]);
        return NULL;
    }
    tk_ids out = {0};
    encoder e = {.tok = tok, .out = &out, .md = pcre2_match_data_create(16, NULL)};
    if (flags & PX_TOK_ADD_SPECIAL) tk_ids_append(&out, tok->post.pre.v, tok->post.pre.n);
    tk_split_added(tok, &tok->trie_raw, text, len, flags & PX_TOK_SPLIT_SPECIAL, &e.segs);
    for (size_t i = 0; i < e.segs.n; i++) {
        const tk_seg *s = &e.segs.v[i];
        if (s->id >= 0) tk_ids_push(&out, s->id);
        else encode_segment(&e, text + s->off, s->len, s->off == 0);
    }
    if (flags & PX_TOK_ADD_SPECIAL) tk_ids_append(&out, tok->post.post.v, tok->post.post.n);
    pcre2_match_data_free(e.md);
    tk_bpe_scratch_free(&e.bpe);
    tk_pieces_free(&e.pieces);
    tk_buf_free(&e.norm);
    free(e.segs.v);
    *n_out = out.n;
    return out.v ? out.v : px_malloc(sizeof(int32_t));
}

/* ---- decoding ---- */

static bool check_ids(const px_tokenizer *tok, const int32_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= tok->n_vocab) {
            px_error_set("token id %d (position %zu) is outside the vocabulary [0, %d)", ids[i], i, tok->n_vocab);
            return false;
        }
    return true;
}

char *px_tokenizer_decode(const px_tokenizer *tok, const int32_t *ids, size_t n, int flags, size_t *len_out) {
    if (!check_ids(tok, ids, n)) return NULL;
    tk_buf raw = {0};
    tk_decode_ids(tok, ids, n, flags & PX_TOK_SKIP_SPECIAL, false, &raw, NULL);
    if (!tok->cleanup_spaces || (flags & PX_TOK_NO_CLEANUP)) return tk_buf_detach(&raw, len_out);
    tk_buf clean = {0};
    tk_cleanup_spaces(raw.p ? raw.p : "", raw.n, &clean);
    tk_buf_free(&raw);
    return tk_buf_detach(&clean, len_out);
}

/* ---- vocabulary ---- */

int32_t px_tokenizer_vocab_size(const px_tokenizer *tok) { return tok->n_vocab; }
int32_t px_tokenizer_bos_id(const px_tokenizer *tok) { return tok->bos_id; }
int32_t px_tokenizer_eos_id(const px_tokenizer *tok) { return tok->eos_id; }
int32_t px_tokenizer_pad_id(const px_tokenizer *tok) { return tok->pad_id; }
int32_t px_tokenizer_unk_id(const px_tokenizer *tok) { return tok->unk_id >= 0 ? tok->unk_id : tok->cfg_unk_id; }

const int32_t *px_tokenizer_eos_ids(const px_tokenizer *tok, size_t *n_out) {
    *n_out = tok->n_eos;
    return tok->eos_ids;
}

bool px_tokenizer_is_eos(const px_tokenizer *tok, int32_t id) {
    for (size_t i = 0; i < tok->n_eos; i++)
        if (tok->eos_ids[i] == id) return true;
    return false;
}

bool px_tokenizer_is_special(const px_tokenizer *tok, int32_t id) {
    return id >= 0 && id < tok->n_vocab && (tok->id_flags[id] & TK_ID_SPECIAL);
}

bool px_tokenizer_adds_bos(const px_tokenizer *tok) {
    return tok->post.pre.n > 0 && tok->bos_id >= 0 && tok->post.pre.v[0] == tok->bos_id;
}

const char *px_tokenizer_piece(const px_tokenizer *tok, int32_t id) {
    return id >= 0 && id < tok->n_vocab ? tok->pieces[id] : NULL;
}

int32_t px_tokenizer_piece_to_id(const px_tokenizer *tok, const char *piece) {
    return tk_strmap_get(&tok->piece_map, piece, strlen(piece));
}
