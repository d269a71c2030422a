/* stream.c - incremental detokenization for streaming generation.
 *
 * The stream keeps every fed id and a window start `prefix`. Each feed
 * decodes ids[prefix:] in stream mode (an unfinished UTF-8 character at the
 * end is left out) and emits the part of that text not emitted before. When
 * the text is complete, the window moves up to the previous complete point
 * (`read`), so it stays a few tokens long and a feed costs O(1) decodes.
 * Decoding from a window start instead of from the first token only changes
 * the text of the window's first token (SentencePiece's "strip the leading
 * space", Metaspace's first-token rule), and that token's text was already
 * emitted, so the deltas add up to the one-shot decode.
 *
 * transformers' clean_up_tokenization_spaces (" ." -> "." and friends) is
 * applied by a second stage that holds back text from a space that a later
 * token could still turn into such a pattern.
 */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

struct px_tokenizer_stream {
    const px_tokenizer *tok;
    bool skip_special, cleanup;
    tk_ids ids;
    size_t prefix, read, emitted; /* emitted: bytes of decode(ids[prefix:]) already returned */
    tk_buf raw, hold, out;
};

px_tokenizer_stream *px_tokenizer_stream_new(const px_tokenizer *tok, int flags) {
    px_tokenizer_stream *s = px_calloc(1, sizeof *s);
    s->tok = tok;
    s->skip_special = flags & PX_TOK_SKIP_SPECIAL;
    s->cleanup = tok->cleanup_spaces && !(flags & PX_TOK_NO_CLEANUP);
    return s;
}

void px_tokenizer_stream_free(px_tokenizer_stream *s) {
    if (!s) return;
    free(s->ids.v);
    tk_buf_free(&s->raw);
    tk_buf_free(&s->hold);
    tk_buf_free(&s->out);
    free(s);
}

static size_t window_text(px_tokenizer_stream *s, size_t from, bool stream, bool *incomplete) {
    s->raw.n = 0;
    tk_decode_ids(s->tok, s->ids.v + from, s->ids.n - from, s->skip_special, stream, &s->raw, incomplete);
    return s->raw.n;
}

/* Where held raw text can be cut so that no cleanup pattern spans the cut. */
static size_t cleanup_cut(const char *h, size_t n) {
    size_t tail = n > 8 ? n - 8 : 0;
    if (!memchr(h + tail, ' ', n - tail)) return n;
    for (size_t c = n; c-- > 1;)
        if (h[c] == ' ' && h[c - 1] != ' ' && h[c - 1] != '\'') return c;
    return 0;
}

/* Passes new raw text through the cleanup stage into s->out. */
static void emit(px_tokenizer_stream *s, const char *text, size_t n, bool final) {
    if (!s->cleanup) {
        tk_buf_put(&s->out, text, n);
        return;
    }
    tk_buf_put(&s->hold, text, n);
    size_t cut = final ? s->hold.n : cleanup_cut(s->hold.p, s->hold.n);
    if (!cut) return;
    tk_cleanup_spaces(s->hold.p, cut, &s->out);
    memmove(s->hold.p, s->hold.p + cut, s->hold.n - cut);
    s->hold.n -= cut;
}

static const char *result(px_tokenizer_stream *s, size_t *len_out) {
    tk_buf_reserve(&s->out, 0);
    s->out.p[s->out.n] = 0;
    if (len_out) *len_out = s->out.n;
    return s->out.p;
}

const char *px_tokenizer_stream_feed(px_tokenizer_stream *s, int32_t id, size_t *len_out) {
    s->out.n = 0;
    if (id < 0 || id >= s->tok->n_vocab) {
        px_error_set("token id %d is outside the vocabulary [0, %d)", id, s->tok->n_vocab);
        return NULL;
    }
    if (s->skip_special && (s->tok->id_flags[id] & TK_ID_SPECIAL)) return result(s, len_out);
    tk_ids_push(&s->ids, id);
    bool incomplete;
    size_t len = window_text(s, s->prefix, true, &incomplete);
    if (len > s->emitted) emit(s, s->raw.p + s->emitted, len - s->emitted, false);
    s->emitted = PX_MAX(s->emitted, len);
    if (!incomplete) {
        if (s->read != s->prefix) s->emitted = window_text(s, s->read, true, &incomplete);
        s->prefix = s->read;
        s->read = s->ids.n;
    }
    return result(s, len_out);
}

const char *px_tokenizer_stream_finish(px_tokenizer_stream *s, size_t *len_out) {
    s->out.n = 0;
    size_t len = window_text(s, s->prefix, false, NULL);
    emit(s, s->raw.p + PX_MIN(s->emitted, len), len > s->emitted ? len - s->emitted : 0, true);
    s->ids.n = s->prefix = s->read = s->emitted = 0;
    return result(s, len_out);
}
