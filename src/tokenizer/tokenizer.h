/* tokenizer.h - the tokenizer module: Hugging Face tokenizer.json tokenizers
 * (byte-level BPE as in GPT-2/Qwen2/Qwen3/Llama-3, and SentencePiece-style BPE
 * with byte fallback as in Llama-2/Mistral), streaming detokenization and chat
 * templates (a Jinja interpreter), matching Hugging Face `tokenizers` and
 * `transformers` exactly.
 *
 * Loading: px_tokenizer_load(dir) reads DIR/tokenizer.json (required),
 * DIR/tokenizer_config.json (special tokens, add_bos_token, chat_template,
 * clean_up_tokenization_spaces), DIR/chat_template.jinja (preferred over the
 * config's template when present) and DIR/generation_config.json (eos ids).
 * Unsupported tokenizer.json components (e.g. a Unigram or WordPiece model)
 * are a load error naming the component, never a silent approximation.
 *
 * Errors: functions returning a pointer return NULL on failure and record one
 * line with px_error_set() (read it with px_error_get()); the line names the
 * file, field, byte offset or template line that was wrong.
 *
 * Ownership: every char * / int32_t * returned by a function here is a new
 * malloc'd buffer the caller releases with free(); strings are NUL-terminated
 * (they may also contain NUL bytes, so use the returned length). Pointers
 * returned as `const` (pieces, eos id list, stream deltas) belong to the
 * tokenizer or stream object.
 *
 * Threads: a loaded px_tokenizer is immutable, so every function taking a
 * `const px_tokenizer *` may run concurrently from any number of threads.
 * A px_tokenizer_stream is one request's state: use it from one thread at a
 * time; it must not outlive its tokenizer.
 */
#ifndef PX_TOKENIZER_H
#define PX_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct px_tokenizer px_tokenizer;
typedef struct px_tokenizer_stream px_tokenizer_stream;
struct cJSON;

/* ---- loading ---- */
px_tokenizer *px_tokenizer_load(const char *model_dir);
/* The same from explicit files; config_path and generation_path may be NULL. */
px_tokenizer *px_tokenizer_load_files(const char *tokenizer_json_path, const char *config_path,
                                      const char *generation_path);
void px_tokenizer_free(px_tokenizer *tok);

/* ---- encoding ---- */
enum {
    PX_TOK_ADD_SPECIAL = 1,   /* run the post-processor: add BOS/EOS as tokenizer.json says */
    PX_TOK_SPLIT_SPECIAL = 2, /* treat special tokens written in the text as plain text */
};
/* Encodes len bytes of UTF-8 text. Returns a new id array (never NULL on
 * success, even when *n_out is 0) or NULL with an error for invalid UTF-8. */
int32_t *px_tokenizer_encode(const px_tokenizer *tok, const char *text, size_t len, int flags, size_t *n_out);

/* ---- decoding ---- */
enum {
    PX_TOK_SKIP_SPECIAL = 1, /* leave out special tokens (BOS, EOS, <|im_end|>, ...) */
    PX_TOK_NO_CLEANUP = 2,   /* skip transformers' clean_up_tokenization_spaces even if configured */
};
/* Decodes ids to text exactly as `tokenizers` + transformers' decode do.
 * Returns a new string (length in *len_out if not NULL) or NULL with an
 * error for an id outside [0, vocab size). */
char *px_tokenizer_decode(const px_tokenizer *tok, const int32_t *ids, size_t n, int flags, size_t *len_out);

/* Incremental detokenizer for streaming: feed ids one at a time; each call
 * returns only text that is final (complete UTF-8, leading-space rules of
 * SentencePiece decoders resolved). The concatenation of all deltas plus
 * px_tokenizer_stream_finish() equals px_tokenizer_decode() of all ids with
 * the same flags (for any ids that decode to valid UTF-8). */
px_tokenizer_stream *px_tokenizer_stream_new(const px_tokenizer *tok, int flags);
/* Returns the new text (may be ""); valid until the next call on this stream.
 * NULL with an error only for an id out of range. */
const char *px_tokenizer_stream_feed(px_tokenizer_stream *s, int32_t id, size_t *len_out);
/* End of stream: returns the text still held back (an incomplete UTF-8 tail
 * becomes U+FFFD, as in the one-shot decode). The stream can then be reused. */
const char *px_tokenizer_stream_finish(px_tokenizer_stream *s, size_t *len_out);
void px_tokenizer_stream_free(px_tokenizer_stream *s);

/* ---- vocabulary and special tokens ---- */
int32_t px_tokenizer_vocab_size(const px_tokenizer *tok); /* largest id + 1, added tokens included */
int32_t px_tokenizer_bos_id(const px_tokenizer *tok);     /* -1 when the model has none */
int32_t px_tokenizer_eos_id(const px_tokenizer *tok);     /* tokenizer_config's eos_token, -1 if none */
int32_t px_tokenizer_pad_id(const px_tokenizer *tok);     /* -1 if none */
int32_t px_tokenizer_unk_id(const px_tokenizer *tok);     /* -1 if none */
/* All ids that end generation: generation_config.json's eos_token_id (int or
 * list) plus tokenizer_config's eos_token, without duplicates. */
const int32_t *px_tokenizer_eos_ids(const px_tokenizer *tok, size_t *n_out);
bool px_tokenizer_is_eos(const px_tokenizer *tok, int32_t id);
bool px_tokenizer_is_special(const px_tokenizer *tok, int32_t id);
/* Whether encode with PX_TOK_ADD_SPECIAL puts a BOS first. */
bool px_tokenizer_adds_bos(const px_tokenizer *tok);
/* The token string as written in tokenizer.json ("Ġthe", "▁the", "<0x0A>",
 * "<|im_end|>"); NULL for an id out of range or unused. */
const char *px_tokenizer_piece(const px_tokenizer *tok, int32_t id);
/* Id of a piece string (vocab or added token); -1 when there is none. */
int32_t px_tokenizer_piece_to_id(const px_tokenizer *tok, const char *piece);

/* ---- chat templates ---- */
bool px_tokenizer_has_chat_template(const px_tokenizer *tok);
/* Renders the model's chat template like transformers' apply_chat_template
 * (tokenize=False): messages_json is a JSON array of {"role", "content", ...}
 * messages; kwargs_json (may be NULL) is a JSON object of extra template
 * variables, e.g. {"enable_thinking": false, "tools": [...]}. bos_token,
 * eos_token, pad_token and unk_token are provided from the config. Returns a
 * new string, or NULL with an error: no template for this model, malformed
 * JSON, a template construct we do not support, or raise_exception(). */
char *px_tokenizer_apply_chat_template(const px_tokenizer *tok, const char *messages_json,
                                       bool add_generation_prompt, const char *kwargs_json, size_t *len_out);
/* The same with already parsed JSON (messages: array; tools, kwargs: NULL or
 * array / object). */
char *px_tokenizer_apply_chat_template_json(const px_tokenizer *tok, const struct cJSON *messages,
                                            const struct cJSON *tools, bool add_generation_prompt,
                                            const struct cJSON *kwargs, size_t *len_out);

#endif
