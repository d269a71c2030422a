/* tok_internal.h - what the tokenizer module's files share: byte buffers,
 * UTF-8 helpers, the hash maps behind the vocabulary and the merge table, and
 * the parsed tokenizer.json pipeline (normalizer, pre-tokenizer, BPE model,
 * added tokens, post-processor, decoder) inside struct px_tokenizer.
 *
 * Text inside the pipeline is always bytes + length. For byte-level
 * tokenizers the model works on raw bytes: vocabulary keys are converted back
 * from the GPT-2 byte-to-unicode alphabet ("Ġ" -> 0x20) at load time, so the
 * ByteLevel pre-tokenizer needs no per-character mapping while encoding.
 */
#ifndef PX_TOK_INTERNAL_H
#define PX_TOK_INTERNAL_H

#include "px_base.h"
#include "tokenizer.h"

#include <cjson/cJSON.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

/* ---- growable buffers (util.c) ---- */
typedef struct {
    char *p;
    size_t n, cap;
} tk_buf;
void tk_buf_reserve(tk_buf *b, size_t extra);
void tk_buf_put(tk_buf *b, const void *s, size_t n);
void tk_buf_putc(tk_buf *b, char c);
void tk_buf_puts(tk_buf *b, const char *s);
void tk_buf_free(tk_buf *b);
/* Returns the contents NUL-terminated (never NULL) and leaves b empty. */
char *tk_buf_detach(tk_buf *b, size_t *len_out);

typedef struct {
    int32_t *v;
    size_t n, cap;
} tk_ids;
void tk_ids_push(tk_ids *a, int32_t id);
void tk_ids_append(tk_ids *a, const int32_t *ids, size_t n);

/* ---- UTF-8 (util.c) ---- */
/* Decodes one scalar value; returns bytes used, 0 if s does not start with a
 * valid, complete sequence. */
size_t tk_utf8_decode(const char *s, size_t n, uint32_t *cp);
size_t tk_utf8_encode(uint32_t cp, char out[4]);
/* Byte offset of the first invalid byte, or n when all of s is valid. */
size_t tk_utf8_check(const char *s, size_t n);
/* Appends s to out with every maximal invalid subpart replaced by U+FFFD
 * (what Rust's from_utf8_lossy and WHATWG TextDecoder do). */
void tk_utf8_lossy(tk_buf *out, const char *s, size_t n);
/* Length of a trailing sequence that is a valid but unfinished prefix of a
 * character (0 when s ends on a character boundary). */
size_t tk_utf8_incomplete_tail(const char *s, size_t n);

/* ---- hash maps (util.c) ---- */
uint64_t tk_hash(const void *p, size_t n);
typedef struct {
    uint64_t hash;
    uint32_t off, len;
    int32_t val;
} tk_strslot;
typedef struct {
    tk_strslot *slots; /* val < 0: empty */
    size_t cap, count;
    tk_buf keys;
} tk_strmap;
void tk_strmap_init(tk_strmap *m, size_t expected);
/* Inserts k -> v unless k is present; returns false when it was. */
bool tk_strmap_put(tk_strmap *m, const char *k, size_t n, int32_t v);
int32_t tk_strmap_get(const tk_strmap *m, const char *k, size_t n); /* -1 if absent */
void tk_strmap_free(tk_strmap *m);

typedef struct {
    uint64_t key; /* UINT64_MAX: empty */
    int32_t rank, id;
} tk_pairslot;
typedef struct {
    tk_pairslot *slots;
    size_t cap, count;
} tk_pairmap;
void tk_pairmap_init(tk_pairmap *m, size_t expected);
bool tk_pairmap_put(tk_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t id);
const tk_pairslot *tk_pairmap_get(const tk_pairmap *m, int32_t a, int32_t b);
void tk_pairmap_free(tk_pairmap *m);

/* ---- pieces: a list of spans over one text buffer ---- */
typedef struct {
    size_t off, len;
    bool first; /* starts at offset 0 of the original text (Metaspace "first") */
} tk_span;
typedef struct {
    tk_buf text;
    tk_span *v;
    size_t n, cap;
} tk_pieces;
void tk_pieces_add(tk_pieces *p, size_t off, size_t len, bool first);
void tk_pieces_add_text(tk_pieces *p, const char *s, size_t len, bool first);
void tk_pieces_clear(tk_pieces *p);
void tk_pieces_free(tk_pieces *p);

/* ---- regex (util.c): PCRE2 with UTF + UCP, JIT when available ---- */
typedef struct {
    pcre2_code *code;
    bool jit;
} tk_regex;
bool tk_regex_compile(tk_regex *re, const char *pattern, size_t len, const char *what);
/* Finds the next match at or after start; returns false when there is none. */
bool tk_regex_next(const tk_regex *re, pcre2_match_data *md, const char *s, size_t n, size_t start,
                   size_t *mstart, size_t *mend);
void tk_regex_free(tk_regex *re);
/* Quotes a literal string as a PCRE2 pattern (\Q..\E is not safe for all). */
char *tk_regex_quote(const char *s, size_t n, size_t *len_out);

/* ---- normalizers (normalize.c) ---- */
typedef enum { NORM_NFC, NORM_NFD, NORM_NFKC, NORM_NFKD, NORM_LOWER, NORM_PREPEND, NORM_REPLACE, NORM_STRIP, NORM_SEQ } tk_norm_kind;
typedef struct tk_norm {
    tk_norm_kind kind;
    char *a, *b; /* Prepend: a; Replace: pattern a (if no regex) -> b */
    size_t alen, blen;
    tk_regex re; /* Replace with a Regex pattern */
    bool left, right; /* Strip */
    struct tk_norm *items;
    int n_items;
} tk_norm;
bool tk_norm_parse(const cJSON *j, tk_norm *out);
void tk_norm_free(tk_norm *n);
/* Normalizes s into out (out is overwritten). */
void tk_norm_apply(const tk_norm *n, const char *s, size_t len, tk_buf *out);

/* ---- pre-tokenizers (pretokenize.c) ---- */
typedef enum { PRE_SPLIT, PRE_BYTELEVEL, PRE_METASPACE, PRE_DIGITS, PRE_WSSPLIT, PRE_SEQ } tk_pre_kind;
typedef enum { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT, SPLIT_CONTIGUOUS } tk_split_behavior;
typedef enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER } tk_prepend_scheme;
typedef struct tk_pre {
    tk_pre_kind kind;
    tk_regex re;
    tk_split_behavior behavior;
    bool invert, add_prefix_space, use_regex, split, individual_digits;
    tk_prepend_scheme prepend;
    char repl[4];
    size_t repl_len;
    struct tk_pre *items;
    int n_items;
} tk_pre;
bool tk_pre_parse(const cJSON *j, tk_pre *out, bool *byte_level);
void tk_pre_free(tk_pre *p);
/* Splits every piece of p (in place). */
void tk_pre_apply(const tk_pre *pre, tk_pieces *p, pcre2_match_data *md);

/* ---- decoders (decode.c) ---- */
typedef enum { DEC_BYTELEVEL, DEC_REPLACE, DEC_BYTEFALLBACK, DEC_FUSE, DEC_STRIP, DEC_METASPACE, DEC_SEQ } tk_dec_kind;
typedef struct tk_dec {
    tk_dec_kind kind;
    char *pat, *content;
    size_t plen, clen;
    uint32_t strip_cp;
    int start, stop;
    bool prefix; /* Metaspace: strip the replacement from the first token */
    struct tk_dec *items;
    int n_items;
} tk_dec;
bool tk_dec_parse(const cJSON *j, tk_dec *out);
void tk_dec_free(tk_dec *d);

/* ---- added tokens (added.c) ---- */
typedef struct {
    int32_t id;
    char *content;
    size_t len;
    bool special, lstrip, rstrip, single_word, normalized;
} tk_added;
typedef struct {
    int32_t child, sibling; /* -1 when none */
    int32_t token;          /* index into added[], -1 when no token ends here */
    unsigned char byte;
} tk_trie_node;
typedef struct {
    tk_trie_node *nodes;
    size_t n, cap;
    uint8_t first[32]; /* bitmap of first bytes */
} tk_trie;
void tk_trie_build(tk_trie *t, const tk_added *added, size_t n, bool normalized);
void tk_trie_free(tk_trie *t);
/* One piece of text after added-token splitting: a token or a text span. */
typedef struct {
    int32_t id; /* >= 0: an added token; -1: text [off, off+len) */
    size_t off, len;
} tk_seg;
typedef struct {
    tk_seg *v;
    size_t n, cap;
} tk_segs;
void tk_segs_push(tk_segs *s, int32_t id, size_t off, size_t len);
/* Splits s on the added tokens of trie t; skip_special leaves special ones as text. */
void tk_split_added(const px_tokenizer *tok, const tk_trie *t, const char *s, size_t n, bool skip_special,
                    tk_segs *out);

/* ---- BPE model (bpe.c) ---- */
typedef struct {
    struct tk_sym *sym;
    struct tk_merge *heap;
    size_t sym_cap, heap_cap;
} tk_bpe_scratch;
/* Appends the ids of one pre-tokenized word. */
void tk_bpe_word(const px_tokenizer *tok, tk_bpe_scratch *sc, const char *s, size_t n, tk_ids *out);
void tk_bpe_scratch_free(tk_bpe_scratch *sc);
/* GPT-2's byte <-> printable character alphabet used by ByteLevel. */
uint32_t tk_byte_to_char(uint8_t b);
int tk_char_to_byte(uint32_t cp); /* -1 when cp is not in the alphabet */
/* Converts a ByteLevel-encoded string to raw bytes; false if a character is not in the alphabet. */
bool tk_bytelevel_decode(const char *s, size_t n, tk_buf *out);
/* Builds the merge table from the model's "merges" array. */
bool tk_bpe_load_merges(px_tokenizer *tok, const cJSON *merges);

/* ---- post-processor ---- */
typedef struct {
    tk_ids pre, post; /* ids added before / after the sequence */
} tk_post;

/* ---- the tokenizer ---- */
struct px_tokenizer {
    char *source;    /* path of tokenizer.json, for messages */
    uint32_t serial; /* unique per loaded tokenizer (word-cache tag) */
    /* vocabulary */
    int32_t n_vocab;     /* largest id + 1 */
    char **pieces;       /* id -> token string as in tokenizer.json, NULL when unused */
    uint32_t *piece_len; /* byte length of pieces[id] */
    uint8_t *id_flags;   /* TK_ID_* */
    tk_strmap vocab;     /* model key -> id (raw bytes for byte-level models) */
    tk_strmap piece_map; /* tokenizer.json string -> id, added tokens included */
    /* BPE model */
    tk_pairmap merges;
    bool byte_level, byte_fallback, fuse_unk, ignore_merges;
    bool split_meta; /* no token has ▁ after another character: words can be cut before such a ▁ */
    int32_t unk_id;
    char *cont_prefix, *eow_suffix;
    size_t cont_prefix_len, eow_suffix_len;
    int32_t byte_ids[256]; /* byte-level: id of each byte; byte_fallback: id of <0xXX>; -1 none */
    /* added tokens */
    tk_added *added;
    size_t n_added;
    tk_trie trie_raw, trie_norm;
    /* pipeline */
    tk_norm *norm;
    tk_pre *pre;
    tk_post post;
    tk_dec *dec;
    bool has_decoder;
    /* config */
    int32_t bos_id, eos_id, pad_id, cfg_unk_id;
    int32_t *eos_ids;
    size_t n_eos;
    bool cleanup_spaces;
    char *bos_token, *eos_token, *pad_token, *unk_token;
    char *chat_template, *tool_template; /* tool_template: the named "tool_use" template if any */
    struct px_jinja *tmpl, *tool_tmpl;
    char *template_error; /* compile error, reported when a template is used */
};
enum { TK_ID_SPECIAL = 1, TK_ID_ADDED = 2, TK_ID_BYTE = 4 };

/* load.c */
bool tk_load_tokenizer_json(px_tokenizer *tok, const char *path);
bool tk_load_configs(px_tokenizer *tok, const char *config_path, const char *generation_path);
bool tk_load_template(px_tokenizer *tok, const char *path);

/* decode.c: runs the decoder chain over ids; in stream mode an unfinished UTF-8
 * tail is left out and *incomplete is set. */
void tk_decode_ids(const px_tokenizer *tok, const int32_t *ids, size_t n, bool skip_special, bool stream,
                   tk_buf *out, bool *incomplete);
void tk_cleanup_spaces(const char *s, size_t n, tk_buf *out);

/* chat.c */
void tk_chat_free(px_tokenizer *tok);

/* small JSON helpers (load.c) */
const char *tk_json_str(const cJSON *obj, const char *key); /* NULL unless a string */
bool tk_json_bool(const cJSON *obj, const char *key, bool dflt);

#endif
