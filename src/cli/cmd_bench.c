/* cmd_bench.c - `parallax bench`: a serving benchmark for any OpenAI-compatible
 * server (ours, llama.cpp's llama-server, vLLM, ...).
 *
 * For each concurrency level C in turn it keeps C streaming requests in
 * flight (closed loop: a request that ends is replaced at once) until the
 * level's request count (or --duration) is reached, and reports per level:
 *   TTFT   request sent -> first chunk carrying text
 *   ITL    gaps between successive text-carrying chunks of a request
 *   TPOT   (end-to-end - TTFT) / (completion tokens - 1), per request
 *   E2E    request sent -> [DONE]
 * (mean, p50, p99, min, max; percentiles interpolate between order
 * statistics) and the aggregate output tokens/s = all completion tokens /
 * the level's wall time (first request sent -> last stream ended). A request
 * whose tokens all detokenize to nothing (a random-weight model repeating a
 * special token) streams no text: its tokens and E2E count, it has no TTFT.
 *
 * Every request gets its own prompt: random "token-ish" text (P common
 * English words, about one token each) or, with --prompt-ids, P random token
 * ids, from a seeded generator and a running request number, so no two
 * prompts of a run share a prefix (no prefix-cache hits) while two runs with
 * the same seed send exactly the same prompts (fair between servers).
 * Requests ask for max_tokens with "ignore_eos": true (ours, llama-server and
 * vLLM honour it), so every request generates exactly that many tokens;
 * completion tokens are read from the usage chunk
 * (stream_options.include_usage), else counted as text chunks.
 *
 * One thread drives all streams with libcurl's multi interface; chunk times
 * are taken when the bytes arrive. Exit code: 0 when every request
 * completed, 1 when any failed (or the warmup did), 2 on bad usage. */
#include "cli.h"
#include "px_base.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    const char *url, *model, *api_key, *json_out;
    bool chat, ignore_eos, quiet;
    int32_t *levels;
    int n_levels;
    long requests, rounds, prompt_tokens, max_tokens, prompt_ids_below, warmup, timeout_s;
    double duration, temperature;
    uint64_t seed;
    char endpoint[2048];
} bench_args;

/* ---- one request ---- */

typedef struct {
    CURL *curl;
    struct curl_slist *headers;
    char *body;
    char errbuf[CURL_ERROR_SIZE];
    /* SSE parsing */
    char *line;
    size_t line_len, line_cap;
    char *data; /* the data: lines of the current event */
    size_t data_len, data_cap;
    char *http_body; /* a non-SSE (error) body, first 4 KiB */
    size_t http_body_len;
    /* results */
    double t_start, t_first, t_last, t_done, t_end; /* t_done: data: [DONE] arrived */
    double *chunk_t;
    int n_chunks, cap_chunks;
    long completion_tokens, prompt_tokens; /* -1: no usage seen */
    bool done, got_finish;
    char *error; /* set when the request failed */
} bench_req;

static size_t grow(void **p, size_t cap, size_t need, size_t elem) {
    if (need <= cap) return cap;
    size_t c = cap ? cap : 64;
    while (c < need) c *= 2;
    *p = px_realloc(*p, c * elem);
    return c;
}

static void req_fail(bench_req *r, const char *fmt, const char *arg) {
    if (r->error) return;
    char buf[512];
    snprintf(buf, sizeof buf, fmt, arg);
    r->error = px_strdup(buf);
}

/* The text of a completions or chat chunk ("" when none). */
static const char *chunk_text(const cJSON *choice) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(choice, "text");
    if (cJSON_IsString(t) && t->valuestring[0]) return t->valuestring;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(choice, "delta");
    const char *keys[] = {"content", "reasoning_content", "reasoning"};
    for (size_t i = 0; d && i < PX_ARRAY_LEN(keys); i++) {
        t = cJSON_GetObjectItemCaseSensitive(d, keys[i]);
        if (cJSON_IsString(t) && t->valuestring[0]) return t->valuestring;
    }
    return "";
}

static void on_event_data(bench_req *r, const char *data, double now) {
    if (!strcmp(data, "[DONE]")) {
        r->done = true;
        r->t_done = now;
        return;
    }
    cJSON *j = cJSON_Parse(data);
    if (!j) return req_fail(r, "unparsable SSE data: %.200s", data);
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (err && !cJSON_IsNull(err)) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(err, "message");
        req_fail(r, "error in the stream: %.300s", cJSON_IsString(m) ? m->valuestring : data);
    }
    const cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
    if (choice) {
        if (chunk_text(choice)[0]) {
            r->cap_chunks = (int)grow((void **)&r->chunk_t, (size_t)r->cap_chunks, (size_t)r->n_chunks + 1, sizeof(double));
            r->chunk_t[r->n_chunks++] = now;
            if (r->n_chunks == 1) r->t_first = now;
            r->t_last = now;
        }
        const cJSON *fr = cJSON_GetObjectItemCaseSensitive(choice, "finish_reason");
        if (cJSON_IsString(fr)) r->got_finish = true;
    }
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(j, "usage");
    if (cJSON_IsObject(usage)) {
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens");
        const cJSON *pt = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens");
        if (cJSON_IsNumber(ct)) r->completion_tokens = (long)ct->valuedouble;
        if (cJSON_IsNumber(pt)) r->prompt_tokens = (long)pt->valuedouble;
    }
    cJSON_Delete(j);
}

/* One SSE line (without its line ending). */
static void on_line(bench_req *r, const char *line, size_t n, double now) {
    if (n == 0) { /* blank line: dispatch the event */
        if (r->data_len) {
            r->data[r->data_len] = 0;
            on_event_data(r, r->data, now);
        }
        r->data_len = 0;
        return;
    }
    if (n >= 5 && !memcmp(line, "data:", 5)) {
        line += 5, n -= 5;
        if (n && *line == ' ') line++, n--;
        size_t need = r->data_len + n + 2;
        r->data_cap = grow((void **)&r->data, r->data_cap, need, 1);
        if (r->data_len) r->data[r->data_len++] = '\n';
        memcpy(r->data + r->data_len, line, n);
        r->data_len += n;
    } /* comments (":...") and other fields are ignored */
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *user) {
    bench_req *r = user;
    size_t n = size * nmemb;
    double now = px_time_now();
    long status = 0;
    curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) { /* keep the start of an error body for the message */
        size_t k = PX_MIN(n, 4096 - r->http_body_len);
        if (!r->http_body) r->http_body = px_calloc(4097, 1);
        memcpy(r->http_body + r->http_body_len, ptr, k);
        r->http_body_len += k;
        return n;
    }
    for (size_t i = 0; i < n; i++) {
        char c = ptr[i];
        if (c == '\n') {
            size_t len = r->line_len;
            if (len && r->line[len - 1] == '\r') len--;
            on_line(r, r->line, len, now);
            r->line_len = 0;
        } else {
            r->line_cap = grow((void **)&r->line, r->line_cap, r->line_len + 1, 1);
            r->line[r->line_len++] = c;
        }
    }
    return n;
}

static void req_free(bench_req *r) {
    if (r->curl) curl_easy_cleanup(r->curl);
    curl_slist_free_all(r->headers);
    free(r->body);
    free(r->line);
    free(r->data);
    free(r->http_body);
    free(r->chunk_t);
    free(r->error);
    memset(r, 0, sizeof *r);
}

/* ---- prompts ---- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Short common words: one token each (with the leading space) in the usual
 * byte-level BPE vocabularies, so P words make a prompt of about P tokens. */
static const char *const words[] = {
    "the", "of", "and", "to", "in", "is", "was", "for", "on", "that", "with", "as", "it", "by", "at", "from",
    "his", "her", "an", "were", "are", "which", "this", "be", "or", "has", "had", "one", "their", "not", "but",
    "new", "first", "they", "after", "two", "been", "who", "its", "all", "also", "time", "year", "when", "would",
    "there", "into", "more", "other", "over", "can", "some", "only", "most", "years", "city", "school", "world",
    "made", "many", "game", "war", "team", "up", "out", "about", "state", "used", "water", "she", "he", "we", "you",
    "music", "house", "river", "book", "light", "night", "day", "road", "town", "black", "white", "red", "green",
    "small", "large", "long", "old", "young", "good", "great", "high", "low", "left", "right", "north", "south",
    "east", "west", "king", "life", "name", "part", "line", "word", "work", "home", "hand", "head", "side", "end",
    "way", "man", "men", "people", "family", "story", "film", "song", "album", "band", "season", "club", "church",
    "field", "power", "land", "sea", "air", "fire", "stone", "tree", "bird", "horse", "dog", "cat", "food", "money",
};

static void append_json_prompt(cJSON *body, const bench_args *a, uint64_t request_no) {
    uint64_t x = a->seed * 0x9e3779b97f4a7c15ull ^ (request_no + 1) * 0xd1b54a32d192ed03ull;
    if (a->prompt_ids_below > 0) {
        cJSON *ids = cJSON_AddArrayToObject(body, "prompt");
        uint64_t lo = a->prompt_ids_below > 16 ? 3 : 0, span = (uint64_t)a->prompt_ids_below - lo;
        for (long i = 0; i < a->prompt_tokens; i++)
            cJSON_AddItemToArray(ids, cJSON_CreateNumber((double)(lo + splitmix64(&x) % span)));
        return;
    }
    size_t cap = (size_t)a->prompt_tokens * 8 + 1, len = 0;
    char *text = px_malloc(cap);
    text[0] = 0;
    for (long i = 0; i < a->prompt_tokens; i++) {
        const char *w = words[splitmix64(&x) % PX_ARRAY_LEN(words)];
        size_t wl = strlen(w);
        cap = grow((void **)&text, cap, len + wl + 2, 1);
        if (i) text[len++] = ' ';
        memcpy(text + len, w, wl + 1);
        len += wl;
    }
    if (a->chat) {
        cJSON *msgs = cJSON_AddArrayToObject(body, "messages"), *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "user");
        cJSON_AddStringToObject(m, "content", text);
        cJSON_AddItemToArray(msgs, m);
    } else cJSON_AddStringToObject(body, "prompt", text);
    free(text);
}

static void req_start(bench_req *r, const bench_args *a, uint64_t request_no, long max_tokens, CURLM *multi,
                      CURLSH *share) {
    memset(r, 0, sizeof *r);
    r->completion_tokens = r->prompt_tokens = -1;
    cJSON *body = cJSON_CreateObject();
    if (a->model) cJSON_AddStringToObject(body, "model", a->model);
    append_json_prompt(body, a, request_no);
    cJSON_AddNumberToObject(body, "max_tokens", (double)max_tokens);
    cJSON_AddNumberToObject(body, "temperature", a->temperature);
    cJSON_AddBoolToObject(body, "stream", true);
    cJSON_AddBoolToObject(cJSON_AddObjectToObject(body, "stream_options"), "include_usage", true);
    if (a->ignore_eos) cJSON_AddBoolToObject(body, "ignore_eos", true);
    r->body = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);

    r->headers = curl_slist_append(r->headers, "Content-Type: application/json");
    r->headers = curl_slist_append(r->headers, "Accept: text/event-stream");
    if (a->api_key && a->api_key[0]) {
        char h[1024];
        snprintf(h, sizeof h, "Authorization: Bearer %s", a->api_key);
        r->headers = curl_slist_append(r->headers, h);
    }
    r->curl = curl_easy_init();
    if (!r->curl) {
        fprintf(stderr, "parallax: curl_easy_init failed\n");
        abort();
    }
    curl_easy_setopt(r->curl, CURLOPT_URL, a->endpoint);
    curl_easy_setopt(r->curl, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(r->curl, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(r->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(r->curl, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(r->curl, CURLOPT_PRIVATE, r);
    curl_easy_setopt(r->curl, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(r->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(r->curl, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(r->curl, CURLOPT_TIMEOUT, a->timeout_s);
    curl_easy_setopt(r->curl, CURLOPT_SHARE, share);
    r->t_start = px_time_now();
    curl_multi_add_handle(multi, r->curl);
}

/* Settles a finished transfer: r->error is set unless it fully succeeded. */
static void req_finish(bench_req *r, CURLcode rc) {
    r->t_end = px_time_now();
    long status = 0;
    curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK) req_fail(r, "%s", r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc));
    else if (status != 200) {
        char msg[512];
        const char *text = r->http_body ? r->http_body : "";
        cJSON *j = cJSON_Parse(text);
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "error"), "message");
        snprintf(msg, sizeof msg, "HTTP %ld: %.400s", status, cJSON_IsString(m) ? m->valuestring : text);
        cJSON_Delete(j);
        req_fail(r, "%s", msg);
    } else if (!r->done) req_fail(r, "%s", "the stream ended without data: [DONE]");
    else if (!r->n_chunks && r->completion_tokens <= 0) req_fail(r, "%s", "no tokens were streamed");
    if (r->completion_tokens < 0) r->completion_tokens = r->n_chunks; /* no usage chunk: count text chunks */
}

/* ---- statistics ---- */

typedef struct {
    double *v;
    int n, cap;
} sample;

static void sample_add(sample *s, double x) {
    s->cap = (int)grow((void **)&s->v, (size_t)s->cap, (size_t)s->n + 1, sizeof(double));
    s->v[s->n++] = x;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    int n;
    double mean, p50, p99, min, max;
} summary;

/* Percentile q in [0,1] of sorted v: linear between the order statistics. */
static double percentile(const double *v, int n, double q) {
    double pos = q * (n - 1);
    int i = (int)floor(pos);
    if (i >= n - 1) return v[n - 1];
    return v[i] + (pos - i) * (v[i + 1] - v[i]);
}

static summary summarize(sample *s) {
    summary r = {.n = s->n};
    if (!s->n) {
        r.mean = r.p50 = r.p99 = r.min = r.max = NAN;
        return r;
    }
    qsort(s->v, (size_t)s->n, sizeof(double), cmp_double);
    double sum = 0;
    for (int i = 0; i < s->n; i++) sum += s->v[i];
    r.mean = sum / s->n;
    r.p50 = percentile(s->v, s->n, 0.50);
    r.p99 = percentile(s->v, s->n, 0.99);
    r.min = s->v[0];
    r.max = s->v[s->n - 1];
    return r;
}

typedef struct {
    int concurrency, started, completed, failed, short_outputs, no_text;
    long output_tokens, prompt_tokens;
    int with_usage;
    double wall, tok_s, req_s;
    summary ttft, itl, tpot, e2e;
    char *first_error;
} level_result;

/* ---- running a level ---- */

typedef struct {
    CURLM *multi;
    CURLSH *share;
    uint64_t next_request_no;
} bench_ctx;

static bool is_tty;

/* total: the level's request count, or 0 when it runs for a duration */
static void progress(const level_result *lr, long total, int running, long tokens, double elapsed, bool final) {
    fprintf(stderr, "%sbench: concurrency %d: %d/%ld done (%d failed), %d running, %ld tokens, %.1f tok/s, %.1f s%s",
            is_tty ? "\r" : "", lr->concurrency, lr->completed + lr->failed, total ? total : (long)lr->started,
            lr->failed, running, tokens, elapsed > 0 ? (double)tokens / elapsed : 0.0, elapsed,
            is_tty && !final ? "   " : "\n");
    fflush(stderr);
}

/* Runs `total` requests (or requests started within `duration` seconds) with
 * at most `conc` in flight. With lr == NULL (warmup) nothing is recorded and
 * the first error is returned (caller frees). */
static char *run_level(bench_ctx *cx, const bench_args *a, int conc, long total, double duration, long max_tokens,
                       level_result *lr) {
    bench_req *slots = px_calloc((size_t)conc, sizeof *slots);
    bool *busy = px_calloc((size_t)conc, sizeof *busy);
    sample ttft = {0}, itl = {0}, tpot = {0}, e2e = {0};
    level_result dummy = {.concurrency = conc};
    level_result *res = lr ? lr : &dummy;
    char *warm_error = NULL;
    long live_tokens = 0;
    int running = 0;
    double t0 = px_time_now(), t_last_progress = t0, t_end = t0;

    for (;;) {
        double now = px_time_now();
        bool may_start = duration > 0 ? now - t0 < duration : res->started < total;
        for (int i = 0; i < conc && may_start; i++) {
            if (busy[i]) continue;
            req_start(&slots[i], a, cx->next_request_no++, max_tokens, cx->multi, cx->share);
            busy[i] = true;
            running++;
            res->started++;
            may_start = duration > 0 ? now - t0 < duration : res->started < total;
        }
        if (!running) break;
        int still = 0;
        curl_multi_perform(cx->multi, &still);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(cx->multi, &left))) {
            if (m->msg != CURLMSG_DONE) continue;
            bench_req *r = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
            CURLcode rc = m->data.result;
            curl_multi_remove_handle(cx->multi, m->easy_handle);
            req_finish(r, rc);
            t_end = r->t_end;
            if (r->error) {
                res->failed++;
                if (!res->first_error) res->first_error = px_strdup(r->error);
                if (!lr && !warm_error) warm_error = px_strdup(r->error);
            } else {
                res->completed++;
                res->output_tokens += r->completion_tokens;
                live_tokens += r->completion_tokens;
                if (r->prompt_tokens >= 0) res->prompt_tokens += r->prompt_tokens, res->with_usage++;
                if (a->ignore_eos && r->completion_tokens != max_tokens) res->short_outputs++;
                sample_add(&e2e, r->t_done - r->t_start);
                if (!r->n_chunks) res->no_text++; /* every token detokenized to nothing: no TTFT */
                else {
                    sample_add(&ttft, r->t_first - r->t_start);
                    if (r->completion_tokens > 1)
                        sample_add(&tpot, (r->t_done - r->t_first) / (double)(r->completion_tokens - 1));
                    for (int k = 1; k < r->n_chunks; k++) sample_add(&itl, r->chunk_t[k] - r->chunk_t[k - 1]);
                }
            }
            for (int i = 0; i < conc; i++)
                if (&slots[i] == r) busy[i] = false;
            req_free(r);
            running--;
        }
        now = px_time_now();
        if (lr && !a->quiet && now - t_last_progress >= (is_tty ? 0.5 : 10.0)) {
            long in_flight_tokens = 0;
            for (int i = 0; i < conc; i++)
                if (busy[i]) in_flight_tokens += slots[i].n_chunks;
            progress(res, duration > 0 ? 0 : total, running, live_tokens + in_flight_tokens, now - t0, false);
            t_last_progress = now;
        }
        if (running) curl_multi_poll(cx->multi, NULL, 0, 100, NULL);
    }
    res->wall = t_end - t0;
    if (lr) {
        if (!a->quiet) progress(res, res->started, 0, res->output_tokens, res->wall, true);
        res->tok_s = res->wall > 0 ? (double)res->output_tokens / res->wall : 0;
        res->req_s = res->wall > 0 ? res->completed / res->wall : 0;
        res->ttft = summarize(&ttft);
        res->itl = summarize(&itl);
        res->tpot = summarize(&tpot);
        res->e2e = summarize(&e2e);
    } else free(dummy.first_error);
    free(ttft.v), free(itl.v), free(tpot.v), free(e2e.v);
    free(slots);
    free(busy);
    return warm_error;
}

/* ---- output ---- */

static void print_level(const level_result *r, long max_tokens) {
    printf("concurrency %d: %d requests, %d completed, %d failed in %.2f s\n", r->concurrency, r->started,
           r->completed, r->failed, r->wall);
    if (r->first_error) printf("  first error: %s\n", r->first_error);
    printf("  output tokens %ld (%.1f per request, max_tokens %ld)", r->output_tokens,
           r->completed ? (double)r->output_tokens / r->completed : 0.0, max_tokens);
    if (r->with_usage) printf(", prompt tokens %.1f per request", (double)r->prompt_tokens / r->with_usage);
    printf("\n  aggregate %.2f output tok/s, %.3f req/s\n", r->tok_s, r->req_s);
    if (r->short_outputs) printf("  warning: %d requests ended before max_tokens\n", r->short_outputs);
    if (r->no_text)
        printf("  note: %d requests streamed no text at all (their tokens detokenize to nothing): counted, but not in "
               "TTFT/ITL/TPOT\n", r->no_text);
    printf("  %-6s %10s %10s %10s %10s %10s  (ms)\n", "", "mean", "p50", "p99", "min", "max");
    const struct { const char *name; const summary *s; } rows[] = {
        {"TTFT", &r->ttft}, {"ITL", &r->itl}, {"TPOT", &r->tpot}, {"E2E", &r->e2e}};
    for (size_t i = 0; i < PX_ARRAY_LEN(rows); i++) {
        const summary *s = rows[i].s;
        printf("  %-6s %10.1f %10.1f %10.1f %10.1f %10.1f\n", rows[i].name, s->mean * 1e3, s->p50 * 1e3,
               s->p99 * 1e3, s->min * 1e3, s->max * 1e3);
    }
}

static void print_table(const level_result *r, int n) {
    printf("\n%5s %5s %5s %8s %9s %9s %9s %8s %8s %9s %9s\n", "conc", "reqs", "fail", "out_tok", "tok/s",
           "ttft_p50", "ttft_p99", "itl_p50", "itl_p99", "e2e_p50", "e2e_p99");
    for (int i = 0; i < n; i++)
        printf("%5d %5d %5d %8ld %9.2f %9.1f %9.1f %8.1f %8.1f %9.1f %9.1f\n", r[i].concurrency, r[i].started,
               r[i].failed, r[i].output_tokens, r[i].tok_s, r[i].ttft.p50 * 1e3, r[i].ttft.p99 * 1e3,
               r[i].itl.p50 * 1e3, r[i].itl.p99 * 1e3, r[i].e2e.p50 * 1e3, r[i].e2e.p99 * 1e3);
    printf("(latencies in ms; tok/s = all output tokens / wall time of the level)\n");
}

static void add_num(cJSON *o, const char *k, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

static void add_summary(cJSON *o, const char *k, const summary *s) {
    cJSON *j = cJSON_AddObjectToObject(o, k);
    cJSON_AddNumberToObject(j, "n", s->n);
    add_num(j, "mean", s->mean * 1e3);
    add_num(j, "p50", s->p50 * 1e3);
    add_num(j, "p99", s->p99 * 1e3);
    add_num(j, "min", s->min * 1e3);
    add_num(j, "max", s->max * 1e3);
}

static int write_json(const bench_args *a, const level_result *r, int n) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "url", a->endpoint);
    cJSON_AddStringToObject(o, "api", a->chat ? "chat" : "completions");
    if (a->model) cJSON_AddStringToObject(o, "model", a->model);
    cJSON_AddStringToObject(o, "prompt_kind", a->prompt_ids_below > 0 ? "ids" : "text");
    cJSON_AddNumberToObject(o, "prompt_tokens", (double)a->prompt_tokens);
    cJSON_AddNumberToObject(o, "max_tokens", (double)a->max_tokens);
    cJSON_AddNumberToObject(o, "temperature", a->temperature);
    cJSON_AddBoolToObject(o, "ignore_eos", a->ignore_eos);
    cJSON_AddNumberToObject(o, "seed", (double)a->seed);
    cJSON *levels = cJSON_AddArrayToObject(o, "levels");
    for (int i = 0; i < n; i++) {
        cJSON *l = cJSON_CreateObject();
        cJSON_AddNumberToObject(l, "concurrency", r[i].concurrency);
        cJSON_AddNumberToObject(l, "requests", r[i].started);
        cJSON_AddNumberToObject(l, "completed", r[i].completed);
        cJSON_AddNumberToObject(l, "failed", r[i].failed);
        cJSON_AddNumberToObject(l, "short_outputs", r[i].short_outputs);
        cJSON_AddNumberToObject(l, "no_text", r[i].no_text);
        cJSON_AddNumberToObject(l, "output_tokens", (double)r[i].output_tokens);
        add_num(l, "prompt_tokens_mean", r[i].with_usage ? (double)r[i].prompt_tokens / r[i].with_usage : NAN);
        cJSON_AddNumberToObject(l, "wall_s", r[i].wall);
        cJSON_AddNumberToObject(l, "output_tok_s", r[i].tok_s);
        cJSON_AddNumberToObject(l, "req_s", r[i].req_s);
        add_summary(l, "ttft_ms", &r[i].ttft);
        add_summary(l, "itl_ms", &r[i].itl);
        add_summary(l, "tpot_ms", &r[i].tpot);
        add_summary(l, "e2e_ms", &r[i].e2e);
        if (r[i].first_error) cJSON_AddStringToObject(l, "first_error", r[i].first_error);
        cJSON_AddItemToArray(levels, l);
    }
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    size_t len = strlen(s);
    s = px_realloc(s, len + 1); /* cJSON allocates with malloc */
    s[len++] = '\n';
    int rc = px_write_file(a->json_out, s, len);
    free(s);
    if (rc) fprintf(stderr, "parallax: --json: cannot write %s\n", px_error_get());
    return rc;
}

/* ---- flags ---- */

static void print_help(void) {
    printf("usage: parallax bench [options]   (a serving benchmark for any OpenAI-compatible server)\n"
           "  -u, --url URL            the server (default http://127.0.0.1:3000); /v1/completions or\n"
           "                           /v1/chat/completions is appended (after /v1 if the URL ends with it)\n"
           "      --chat               use /v1/chat/completions (default /v1/completions)\n"
           "      --model NAME         the request's model field (default: left out)\n"
           "  -c, --concurrency LIST   streams kept in flight, levels run in turn (default 1,4,8)\n"
           "      --rounds K           requests per level = K x concurrency (default 4)\n"
           "      --requests N         instead: N requests per level\n"
           "      --duration S         instead: start requests for S seconds per level, then let them end\n"
           "      --prompt-tokens P    prompt length (default 128): P words of seeded random text, about\n"
           "                           one token each (the usage chunk reports the real count)\n"
           "      --prompt-ids V       send P random token ids in [3, V) instead of text (completions;\n"
           "                           exact prompt length on every server that takes token-id prompts)\n"
           "  -n, --max-tokens N       tokens per request (default 128)\n"
           "      --temperature T      sampling temperature (default 0: greedy)\n"
           "      --no-ignore-eos      do not send \"ignore_eos\": true (requests may end early)\n"
           "      --seed S             prompt seed (default 1); prompts never repeat within a run\n"
           "      --warmup N           untimed requests before the first level (default 1)\n"
           "      --timeout S          per-request limit in seconds (default 600)\n"
           "      --api-key KEY        Bearer token (default $PARALLAX_API_KEY, else $OPENAI_API_KEY)\n"
           "      --json FILE          also write the results as JSON\n"
           "  -q, --quiet              no progress lines on stderr\n"
           "Reports per level: TTFT, ITL (gaps between text chunks), TPOT ((E2E - TTFT) / (tokens - 1)),\n"
           "E2E latency (mean, p50, p99, min, max) and aggregate output tokens/s (docs/server.md).\n");
}

static int parse_args(int argc, char **argv, bench_args *a) {
    a->url = "http://127.0.0.1:3000";
    a->ignore_eos = true;
    a->prompt_tokens = 128;
    a->max_tokens = 128;
    a->warmup = 1;
    a->timeout_s = 600;
    a->seed = 1;
    a->requests = -1;
    a->api_key = getenv("PARALLAX_API_KEY");
    if (!a->api_key || !a->api_key[0]) a->api_key = getenv("OPENAI_API_KEY");
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v;
        long n;
        double d;
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) {
            print_help();
            return -1;
        } else if (!strcmp(f, "--chat")) a->chat = true;
        else if (!strcmp(f, "--no-ignore-eos")) a->ignore_eos = false;
        else if (!strcmp(f, "-q") || !strcmp(f, "--quiet")) a->quiet = true;
        else if (!(v = px_flag_value(argc, argv, &i))) return 2;
        else if (!strcmp(f, "-u") || !strcmp(f, "--url")) a->url = v;
        else if (!strcmp(f, "--model")) a->model = v;
        else if (!strcmp(f, "--api-key")) a->api_key = v;
        else if (!strcmp(f, "--json")) a->json_out = v;
        else if (!strcmp(f, "-c") || !strcmp(f, "--concurrency")) {
            free(a->levels);
            a->levels = NULL;
            if (!px_flag_int_list(f, v, &a->levels, &a->n_levels)) return 2;
            for (int k = 0; k < a->n_levels; k++)
                if (a->levels[k] < 1 || a->levels[k] > 4096)
                    return px_usage_error("%s: %d is out of range [1, 4096]", f, (int)a->levels[k]);
        } else if (!strcmp(f, "--requests")) {
            if (!px_flag_int(f, v, 1, 1000000, &a->requests)) return 2;
        } else if (!strcmp(f, "--rounds")) {
            if (!px_flag_int(f, v, 1, 1000000, &a->rounds)) return 2;
        } else if (!strcmp(f, "--duration")) {
            if (!px_flag_float(f, v, 0.001, 1e6, &a->duration)) return 2;
        } else if (!strcmp(f, "--prompt-tokens")) {
            if (!px_flag_int(f, v, 1, 1 << 20, &a->prompt_tokens)) return 2;
        } else if (!strcmp(f, "--prompt-ids")) {
            if (!px_flag_int(f, v, 1, INT32_MAX, &a->prompt_ids_below)) return 2;
        } else if (!strcmp(f, "-n") || !strcmp(f, "--max-tokens")) {
            if (!px_flag_int(f, v, 1, 1 << 24, &a->max_tokens)) return 2;
        } else if (!strcmp(f, "--temperature")) {
            if (!px_flag_float(f, v, 0, 2, &a->temperature)) return 2;
        } else if (!strcmp(f, "--seed")) {
            if (!px_flag_int(f, v, 0, INT64_MAX, &n)) return 2;
            a->seed = (uint64_t)n;
        } else if (!strcmp(f, "--warmup")) {
            if (!px_flag_int(f, v, 0, 1000, &a->warmup)) return 2;
        } else if (!strcmp(f, "--timeout")) {
            if (!px_flag_float(f, v, 1, 1e6, &d)) return 2;
            a->timeout_s = (long)ceil(d);
        } else return px_usage_error("bench: unknown flag '%s' (parallax bench --help)", f);
    }
    if (a->chat && a->prompt_ids_below > 0)
        return px_usage_error("--prompt-ids: token-id prompts need /v1/completions (leave out --chat)");
    if ((a->requests > 0) + (a->duration > 0) + (a->rounds > 0) > 1)
        return px_usage_error("--requests, --rounds and --duration exclude each other");
    if (strncmp(a->url, "http://", 7) && strncmp(a->url, "https://", 8))
        return px_usage_error("--url: '%s' is not an http:// or https:// URL", a->url);
    if (!a->levels) {
        static const int32_t def[] = {1, 4, 8};
        a->levels = px_malloc(sizeof def);
        memcpy(a->levels, def, sizeof def);
        a->n_levels = 3;
    }
    size_t ul = strlen(a->url);
    while (ul && a->url[ul - 1] == '/') ul--;
    const char *route = a->chat ? "chat/completions" : "completions";
    bool has_v1 = ul >= 3 && !memcmp(a->url + ul - 3, "/v1", 3);
    bool full = ul >= 12 && !memcmp(a->url + ul - 12, "/completions", 12);
    int w = full ? snprintf(a->endpoint, sizeof a->endpoint, "%.*s", (int)ul, a->url)
                 : snprintf(a->endpoint, sizeof a->endpoint, "%.*s%s/%s", (int)ul, a->url, has_v1 ? "" : "/v1", route);
    if (w < 0 || (size_t)w >= sizeof a->endpoint) return px_usage_error("--url: too long");
    return 0;
}

int px_cmd_bench(int argc, char **argv) {
    bench_args a = {0};
    int rc = parse_args(argc, argv, &a);
    if (rc) {
        free(a.levels);
        return rc < 0 ? 0 : rc;
    }
    is_tty = isatty(STDERR_FILENO);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        free(a.levels);
        fprintf(stderr, "parallax: curl_global_init failed\n");
        return 1;
    }
    bench_ctx cx = {.multi = curl_multi_init(), .share = curl_share_init()};
    curl_share_setopt(cx.share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_multi_setopt(cx.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 0L);

    if (!a.quiet)
        fprintf(stderr, "bench: %s, %s prompts of %ld tokens, max_tokens %ld%s, temperature %g, levels", a.endpoint,
                a.prompt_ids_below > 0 ? "token-id" : "text", a.prompt_tokens, a.max_tokens,
                a.ignore_eos ? " (ignore_eos)" : "", a.temperature);
    for (int i = 0; i < a.n_levels && !a.quiet; i++) fprintf(stderr, "%s%d", i ? "," : " ", (int)a.levels[i]);
    if (!a.quiet) fputc('\n', stderr);

    level_result *res = px_calloc((size_t)a.n_levels, sizeof *res);
    int n_done = 0;
    bool warmup_failed = false;
    rc = 0;
    if (a.warmup > 0) {
        char *err = run_level(&cx, &a, 1, a.warmup, 0, PX_MIN(a.max_tokens, 16), NULL);
        if (err) {
            fprintf(stderr, "parallax: bench: the warmup request failed (%s): %s\n", a.endpoint, err);
            free(err);
            warmup_failed = true;
            rc = 1;
        }
    }
    printf("bench %s: %s prompts of %ld tokens, max_tokens %ld%s, temperature %g\n", a.endpoint,
           a.prompt_ids_below > 0 ? "token-id" : "text", a.prompt_tokens, a.max_tokens,
           a.ignore_eos ? " (ignore_eos)" : "", a.temperature);
    for (int i = 0; i < a.n_levels && !warmup_failed; i++) {
        int c = a.levels[i];
        res[i].concurrency = c;
        long total = a.requests > 0 ? a.requests : (a.rounds > 0 ? a.rounds : 4) * (long)c;
        run_level(&cx, &a, c, total, a.duration, a.max_tokens, &res[i]);
        print_level(&res[i], a.max_tokens);
        fflush(stdout);
        n_done++;
        if (res[i].failed) rc = 1;
    }
    if (n_done) print_table(res, n_done);
    if (a.json_out && write_json(&a, res, n_done) != 0) rc = 1;

    for (int i = 0; i < a.n_levels; i++) free(res[i].first_error);
    free(res);
    free(a.levels);
    curl_multi_cleanup(cx.multi);
    curl_share_cleanup(cx.share);
    curl_global_cleanup();
    return rc;
}
