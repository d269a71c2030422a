/* bench_tokenizer.c - tokenizer benchmark (not a test): load time of a
 * model's tokenizer, encode throughput in MB/s and tokens/s on a text file
 * (best of N runs, as one encode call and in 4 KB chunks like requests),
 * decode and streaming-decode throughput. Compare with
 * tests/tokenizer_bench.mjs on the same file in the same session:
 *
 *   node tests/tokenizer_bench.mjs --make-text /tmp/mixed.txt
 *   build/tests/bench_tokenizer MODEL_DIR /tmp/mixed.txt [repeats]
 *   node tests/tokenizer_bench.mjs MODEL_DIR /tmp/mixed.txt [repeats]
 */
#include "px_base.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double encode_once(const px_tokenizer *tok, const char *text, size_t len, size_t chunk, size_t *n_tokens) {
    double t0 = px_time_now();
    *n_tokens = 0;
    for (size_t off = 0; off < len;) {
        size_t n = PX_MIN(chunk, len - off);
        while (off + n < len && ((unsigned char)text[off + n] & 0xC0) == 0x80) n++; /* keep characters whole */
        size_t k;
        int32_t *ids = px_tokenizer_encode(tok, text + off, n, 0, &k);
        if (!ids) {
            fprintf(stderr, "encode failed: %s\n", px_error_get());
            exit(1);
        }
        *n_tokens += k;
        free(ids);
        off += n;
    }
    return px_time_now() - t0;
}

static double best_encode(const px_tokenizer *tok, const char *text, size_t len, size_t chunk, int reps, size_t *n) {
    double best = 1e30;
    *n = 0;
    for (int r = 0; r < reps; r++) best = PX_MIN(best, encode_once(tok, text, len, chunk, n));
    return best;
}

static void bench_decode(const px_tokenizer *tok, const char *text, size_t len) {
    size_t n;
    int32_t *ids = px_tokenizer_encode(tok, text, len, 0, &n);
    double t0 = px_time_now();
    size_t out_len;
    free(px_tokenizer_decode(tok, ids, n, 0, &out_len));
    double t1 = px_time_now();
    px_tokenizer_stream *s = px_tokenizer_stream_new(tok, 0);
    size_t streamed = 0, k;
    for (size_t i = 0; i < n; i++) {
        px_tokenizer_stream_feed(s, ids[i], &k);
        streamed += k;
    }
    px_tokenizer_stream_finish(s, &k);
    streamed += k;
    double t2 = px_time_now();
    printf("  decode %zu tokens: one-shot %.1f M tokens/s, streaming %.2f M tokens/s (%.2f us/token)%s\n", n,
           n / (t1 - t0) / 1e6, n / (t2 - t1) / 1e6, (t2 - t1) / n * 1e6, streamed == out_len ? "" : " LENGTH MISMATCH");
    px_tokenizer_stream_free(s);
    free(ids);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL_DIR TEXT_FILE [repeats]\n", argv[0]);
        return 2;
    }
    int reps = argc > 3 ? atoi(argv[3]) : 3;
    size_t len;
    char *text = px_read_file(argv[2], &len);
    if (!text) {
        fprintf(stderr, "%s\n", px_error_get());
        return 1;
    }
    double t0 = px_time_now();
    px_tokenizer *tok = px_tokenizer_load(argv[1]);
    double load = px_time_now() - t0;
    if (!tok) {
        fprintf(stderr, "%s\n", px_error_get());
        return 1;
    }
    size_t n = 0;
    double whole = best_encode(tok, text, len, len, reps, &n);
    printf("parallax %s: load %.3f s (vocab %d), encode %zu bytes -> %zu tokens: best %.3f s = %.2f MB/s, %.0fk tokens/s\n",
           argv[1], load, px_tokenizer_vocab_size(tok), len, n, whole, len / whole / 1e6, n / whole / 1e3);
    double chunked = best_encode(tok, text, len, 4096, reps, &n);
    printf("  in 4 KB requests: %.2f MB/s, %.0fk tokens/s\n", len / chunked / 1e6, n / chunked / 1e3);
    bench_decode(tok, text, len);
    px_tokenizer_free(tok);
    free(text);
    return 0;
}
