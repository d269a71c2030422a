/* request.c - an OpenAI request body -> px_server_params, or a 4xx error that
 * names the offending parameter.
 *
 * Every field is type-checked (a wrong type is a 400, never a silent
 * default) and range-checked; unknown fields are ignored as OpenAI does.
 * Chat requests: messages are normalized (content parts joined into a
 * string, "developer" -> "system") and rendered with the model's chat
 * template (add_generation_prompt, chat_template_kwargs), then encoded
 * without adding special tokens (the template wrote them). Completions: a
 * prompt string is encoded with the tokenizer's special tokens (BOS), or
 * token ids are taken as given. Lengths: the prompt must leave room for one
 * token; max_tokens must fit the context; without max_tokens the rest of
 * the context is allowed. */
#include "server_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STOP 16
#define MAX_STOP_LEN 1024
#define MAX_BIAS 1024

typedef struct {
    const px_server_config *cfg;
    const cJSON *root;
    px_server_params *p;
    px_server_error *e;
} parse_ctx;

/* ---- typed field access ---- */

static const cJSON *field(const parse_ctx *c, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->root, name);
    return cJSON_IsNull(v) ? NULL : v;
}

static int bad_type(const parse_ctx *c, const char *name, const char *want) {
    return px_server_fail(c->e, 400, name, "invalid_type", "'%s' must be %s", name, want);
}

static int get_bool(const parse_ctx *c, const char *name, bool *out) {
    const cJSON *v = field(c, name);
    if (!v) return 0;
    if (!cJSON_IsBool(v)) return bad_type(c, name, "a boolean");
    *out = cJSON_IsTrue(v);
    return 0;
}

static int get_number(const parse_ctx *c, const char *name, double lo, double hi, double *out, bool *given) {
    const cJSON *v = field(c, name);
    if (given) *given = v != NULL;
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return bad_type(c, name, "a number");
    if (v->valuedouble < lo || v->valuedouble > hi)
        return px_server_fail(c->e, 400, name, "invalid_value", "'%s' must be between %g and %g, got %g", name, lo,
                              hi, v->valuedouble);
    *out = v->valuedouble;
    return 0;
}

static bool is_integer(const cJSON *v) {
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) && v->valuedouble == floor(v->valuedouble) &&
           fabs(v->valuedouble) < 9007199254740992.0;
}

static int get_int(const parse_ctx *c, const char *name, double lo, double hi, double *out, bool *given) {
    const cJSON *v = field(c, name);
    if (given) *given = v != NULL;
    if (!v) return 0;
    if (!is_integer(v)) return bad_type(c, name, "an integer");
    if (v->valuedouble < lo || v->valuedouble > hi)
        return px_server_fail(c->e, 400, name, "invalid_value", "'%s' must be between %.0f and %.0f, got %.0f",
                              name, lo, hi, v->valuedouble);
    *out = v->valuedouble;
    return 0;
}

/* ---- model, n, stream ---- */

static int parse_model(const parse_ctx *c) {
    const cJSON *m = field(c, "model");
    if (!m) return 0;
    if (!cJSON_IsString(m)) return bad_type(c, "model", "a string");
    if (strcmp(m->valuestring, c->cfg->model_name))
        return px_server_fail(c->e, 404, "model", "model_not_found",
                              "The model '%.200s' does not exist; this server serves '%s' (GET /v1/models)",
                              m->valuestring, c->cfg->model_name);
    return 0;
}

static int parse_unsupported(const parse_ctx *c) {
    double n = 1, best_of = 1;
    if (get_int(c, "n", 1, 1e9, &n, NULL) || get_int(c, "best_of", 1, 1e9, &best_of, NULL)) return -1;
    if (n != 1) return px_server_fail(c->e, 400, "n", "unsupported_value", "only n=1 is supported");
    if (best_of != 1) return px_server_fail(c->e, 400, "best_of", "unsupported_value", "only best_of=1 is supported");
    const cJSON *suffix = field(c, "suffix"), *rf = field(c, "response_format");
    if (suffix && !(cJSON_IsString(suffix) && !*suffix->valuestring))
        return px_server_fail(c->e, 400, "suffix", "unsupported_value", "'suffix' is not supported");
    if (rf) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(rf, "type");
        if (!cJSON_IsObject(rf) || !cJSON_IsString(t))
            return bad_type(c, "response_format", "an object with a 'type'");
        if (strcmp(t->valuestring, "text"))
            return px_server_fail(c->e, 400, "response_format", "unsupported_value",
                                  "response_format '%.64s' is not supported (only 'text')", t->valuestring);
    }
    return 0;
}

static int parse_stream(const parse_ctx *c) {
    if (get_bool(c, "stream", &c->p->stream)) return -1;
    const cJSON *so = field(c, "stream_options");
    if (!so) return 0;
    if (!cJSON_IsObject(so)) return bad_type(c, "stream_options", "an object");
    const cJSON *iu = cJSON_GetObjectItemCaseSensitive(so, "include_usage");
    if (iu && !cJSON_IsNull(iu) && !cJSON_IsBool(iu)) return bad_type(c, "stream_options.include_usage", "a boolean");
    c->p->include_usage = cJSON_IsTrue(iu);
    return 0;
}

/* ---- sampling ---- */

static int parse_sampling(const parse_ctx *c) {
    px_sampling *s = &c->p->sampling;
    double v;
    bool given;
    if (get_number(c, "temperature", 0, 2, &v, &given)) return -1;
    if (given) s->temperature = (float)v;
    if (get_number(c, "top_p", 0, 1, &v, &given)) return -1;
    if (given && v <= 0) return px_server_fail(c->e, 400, "top_p", "invalid_value", "'top_p' must be in (0, 1]");
    if (given) s->top_p = (float)v;
    if (get_int(c, "top_k", -1, 1e9, &v, &given)) return -1;
    if (given) s->top_k = v > 0 ? (int)v : 0;
    if (get_number(c, "min_p", 0, 1, &v, &given)) return -1;
    if (given) s->min_p = (float)v;
    if (get_number(c, "presence_penalty", -2, 2, &v, &given)) return -1;
    if (given) s->presence_penalty = (float)v;
    if (get_number(c, "frequency_penalty", -2, 2, &v, &given)) return -1;
    if (given) s->frequency_penalty = (float)v;
    if (get_number(c, "repetition_penalty", 0, 10, &v, &given)) return -1;
    if (given && v <= 0)
        return px_server_fail(c->e, 400, "repetition_penalty", "invalid_value", "'repetition_penalty' must be > 0");
    if (given) s->repetition_penalty = (float)v;
    if (get_int(c, "seed", -9007199254740991.0, 9007199254740991.0, &v, &given)) return -1;
    if (given) s->has_seed = true, s->seed = (uint64_t)(int64_t)v;
    return get_bool(c, "ignore_eos", &s->ignore_eos);
}

static int parse_logit_bias(const parse_ctx *c) {
    const cJSON *lb = field(c, "logit_bias"), *it;
    if (!lb) return 0;
    if (!cJSON_IsObject(lb)) return bad_type(c, "logit_bias", "an object of token id -> bias");
    int n = cJSON_GetArraySize(lb), vocab = px_tokenizer_vocab_size(c->cfg->tok);
    if (n > MAX_BIAS) return px_server_fail(c->e, 400, "logit_bias", "invalid_value", "at most %d logit_bias entries", MAX_BIAS);
    c->p->bias_ids = px_malloc((size_t)(n + 1) * sizeof(int32_t));
    c->p->bias_values = px_malloc((size_t)(n + 1) * sizeof(float));
    int k = 0;
    cJSON_ArrayForEach(it, lb) {
        char *end;
        long id = strtol(it->string, &end, 10);
        if (end == it->string || *end || id < 0 || id >= vocab)
            return px_server_fail(c->e, 400, "logit_bias", "invalid_value", "logit_bias key '%.32s' is not a token id in [0, %d)", it->string, vocab);
        if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || fabs(it->valuedouble) > 100)
            return px_server_fail(c->e, 400, "logit_bias", "invalid_value", "logit_bias values must be numbers in [-100, 100]");
        c->p->bias_ids[k] = (int32_t)id;
        c->p->bias_values[k++] = (float)it->valuedouble;
    }
    c->p->sampling.n_logit_bias = k;
    c->p->sampling.logit_bias_ids = c->p->bias_ids;
    c->p->sampling.logit_bias_values = c->p->bias_values;
    return 0;
}

static int add_stop(const parse_ctx *c, const cJSON *v) {
    if (!cJSON_IsString(v)) return bad_type(c, "stop", "a string or an array of strings");
    size_t n = strlen(v->valuestring);
    if (!n || n > MAX_STOP_LEN)
        return px_server_fail(c->e, 400, "stop", "invalid_value", "stop strings must have 1 to %d bytes", MAX_STOP_LEN);
    if (c->p->n_stop == MAX_STOP)
        return px_server_fail(c->e, 400, "stop", "invalid_value", "at most %d stop strings", MAX_STOP);
    c->p->stop[c->p->n_stop++] = px_strdup(v->valuestring);
    return 0;
}

static int parse_stop(const parse_ctx *c) {
    const cJSON *st = field(c, "stop"), *it;
    c->p->stop = px_calloc(MAX_STOP, sizeof(char *));
    if (st && cJSON_IsArray(st)) {
        cJSON_ArrayForEach(it, st) if (add_stop(c, it)) return -1;
    } else if (st && add_stop(c, st)) return -1;
    const cJSON *ids = field(c, "stop_token_ids");
    if (ids && !cJSON_IsArray(ids)) return bad_type(c, "stop_token_ids", "an array of token ids");
    size_t n_eos = 0;
    const int32_t *eos = px_tokenizer_eos_ids(c->cfg->tok, &n_eos);
    int vocab = px_tokenizer_vocab_size(c->cfg->tok), k = 0;
    c->p->stop_ids = px_malloc((size_t)cJSON_GetArraySize(ids) * sizeof(int32_t) + (n_eos + 1) * sizeof(int32_t));
    cJSON_ArrayForEach(it, ids) {
        if (!is_integer(it) || it->valuedouble < 0 || it->valuedouble >= vocab)
            return px_server_fail(c->e, 400, "stop_token_ids", "invalid_value", "stop_token_ids must be token ids in [0, %d)", vocab);
        c->p->stop_ids[k++] = (int32_t)it->valuedouble;
    }
    /* the tokenizer's end tokens (e.g. <|im_end|>) end a turn even when config.json names another EOS */
    for (size_t i = 0; i < n_eos && !c->p->sampling.ignore_eos; i++) c->p->stop_ids[k++] = eos[i];
    c->p->sampling.n_stop_ids = k;
    c->p->sampling.stop_ids = c->p->stop_ids;
    return 0;
}

static int parse_logprobs(const parse_ctx *c) {
    double v = 0;
    bool given;
    if (c->p->kind == PX_API_COMPLETIONS) {
        if (get_int(c, "logprobs", 0, PX_MAX_TOP_LOGPROBS, &v, &given)) return -1;
        c->p->logprobs = given ? (int)v : -1;
    } else {
        bool lp = false;
        if (get_bool(c, "logprobs", &lp) || get_int(c, "top_logprobs", 0, PX_MAX_TOP_LOGPROBS, &v, &given)) return -1;
        if (given && !lp)
            return px_server_fail(c->e, 400, "top_logprobs", "invalid_value", "'top_logprobs' needs 'logprobs': true");
        c->p->logprobs = lp ? (int)v : -1;
    }
    c->p->sampling.top_logprobs = c->p->logprobs;
    return 0;
}

/* ---- prompts ---- */

static int encode(const parse_ctx *c, const char *text, int flags) {
    size_t n = 0;
    int32_t *ids = px_tokenizer_encode(c->cfg->tok, text, strlen(text), flags, &n);
    if (!ids) return px_server_fail(c->e, 400, NULL, "invalid_prompt", "cannot tokenize the prompt: %s", px_error_get());
    c->p->prompt = ids;
    c->p->n_prompt = (int)n;
    return 0;
}

static int prompt_ids(const parse_ctx *c, const cJSON *arr) {
    int n = cJSON_GetArraySize(arr), vocab = px_tokenizer_vocab_size(c->cfg->tok), k = 0;
    const cJSON *it;
    c->p->prompt = px_malloc((size_t)(n + 1) * sizeof(int32_t));
    cJSON_ArrayForEach(it, arr) {
        if (!is_integer(it) || it->valuedouble < 0 || it->valuedouble >= vocab)
            return px_server_fail(c->e, 400, "prompt", "invalid_value", "prompt token ids must be integers in [0, %d)", vocab);
        c->p->prompt[k++] = (int32_t)it->valuedouble;
    }
    c->p->n_prompt = k;
    if (c->p->echo) {
        c->p->echo_text = px_tokenizer_decode(c->cfg->tok, c->p->prompt, (size_t)k, PX_TOK_SKIP_SPECIAL, NULL);
        if (!c->p->echo_text) c->p->echo_text = px_strdup("");
    }
    return 0;
}

static int parse_prompt(const parse_ctx *c) {
    const cJSON *pr = field(c, "prompt");
    if (!pr) return px_server_fail(c->e, 400, "prompt", "missing_required_parameter", "'prompt' is required");
    if (cJSON_IsArray(pr) && cJSON_GetArraySize(pr) == 1 && !cJSON_IsNumber(pr->child)) pr = pr->child;
    if (cJSON_IsString(pr)) {
        if (c->p->echo) c->p->echo_text = px_strdup(pr->valuestring);
        return encode(c, pr->valuestring, PX_TOK_ADD_SPECIAL);
    }
    if (!cJSON_IsArray(pr))
        return bad_type(c, "prompt", "a string, an array of token ids, or an array with one of those");
    if (cJSON_GetArraySize(pr) == 0) return px_server_fail(c->e, 400, "prompt", "invalid_value", "'prompt' is empty");
    if (!cJSON_IsNumber(pr->child))
        return px_server_fail(c->e, 400, "prompt", "unsupported_value", "only one prompt per request is supported");
    return prompt_ids(c, pr);
}

/* ---- chat ---- */

static bool role_ok(const char *r) {
    static const char *roles[] = {"system", "user", "assistant", "tool", "developer", "function"};
    for (size_t i = 0; i < PX_ARRAY_LEN(roles); i++)
        if (!strcmp(r, roles[i])) return true;
    return false;
}

/* Content parts [{type:"text", text}] -> one string. */
static int join_parts(const parse_ctx *c, const cJSON *parts, int idx, px_sbuf *out) {
    const cJSON *it;
    cJSON_ArrayForEach(it, parts) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(it, "type"), *text = cJSON_GetObjectItemCaseSensitive(it, "text");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") || !cJSON_IsString(text))
            return px_server_fail(c->e, 400, "messages", "unsupported_value",
                                  "messages[%d].content: only parts of type 'text' are supported", idx);
        px_sbuf_adds(out, text->valuestring);
    }
    return 0;
}

/* A copy of message idx for the template, or NULL + error. */
static cJSON *normalize_message(const parse_ctx *c, const cJSON *m, int idx) {
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role"), *content = cJSON_GetObjectItemCaseSensitive(m, "content");
    if (!cJSON_IsObject(m)) return px_server_fail(c->e, 400, "messages", "invalid_type", "messages[%d] must be an object", idx), NULL;
    if (!cJSON_IsString(role) || !role_ok(role->valuestring))
        return px_server_fail(c->e, 400, "messages", "invalid_value",
                              "messages[%d].role must be one of system, user, assistant, tool, developer", idx), NULL;
    bool is_assistant = !strcmp(role->valuestring, "assistant");
    if (!(cJSON_IsString(content) || cJSON_IsArray(content) || ((!content || cJSON_IsNull(content)) && is_assistant)))
        return px_server_fail(c->e, 400, "messages", "invalid_type",
                              "messages[%d].content must be a string or an array of text parts", idx), NULL;
    cJSON *copy = cJSON_Duplicate(m, true);
    if (!strcmp(role->valuestring, "developer")) cJSON_ReplaceItemInObjectCaseSensitive(copy, "role", cJSON_CreateString("system"));
    if (cJSON_IsArray(content)) {
        px_sbuf s = {0};
        if (join_parts(c, content, idx, &s)) return px_sbuf_free(&s), cJSON_Delete(copy), NULL;
        cJSON_ReplaceItemInObjectCaseSensitive(copy, "content", cJSON_CreateString(s.data ? s.data : ""));
        px_sbuf_free(&s);
    } else if (!content || cJSON_IsNull(content)) {
        cJSON_DeleteItemFromObjectCaseSensitive(copy, "content");
        cJSON_AddStringToObject(copy, "content", "");
    }
    return copy;
}

static cJSON *parse_messages(const parse_ctx *c) {
    const cJSON *msgs = field(c, "messages"), *it;
    if (!msgs) return px_server_fail(c->e, 400, "messages", "missing_required_parameter", "'messages' is required"), NULL;
    if (!cJSON_IsArray(msgs)) return bad_type(c, "messages", "an array"), NULL;
    if (!cJSON_GetArraySize(msgs)) return px_server_fail(c->e, 400, "messages", "invalid_value", "'messages' must not be empty"), NULL;
    cJSON *out = cJSON_CreateArray();
    int idx = 0;
    cJSON_ArrayForEach(it, msgs) {
        cJSON *m = normalize_message(c, it, idx++);
        if (!m) return cJSON_Delete(out), NULL;
        cJSON_AddItemToArray(out, m);
    }
    return out;
}

static int chat_options(const parse_ctx *c, const cJSON **tools, const cJSON **kwargs) {
    *tools = field(c, "tools");
    *kwargs = field(c, "chat_template_kwargs");
    const cJSON *tc = field(c, "tool_choice");
    if (*tools && !cJSON_IsArray(*tools)) return bad_type(c, "tools", "an array");
    if (*kwargs && !cJSON_IsObject(*kwargs)) return bad_type(c, "chat_template_kwargs", "an object");
    if (tc && !(cJSON_IsString(tc) && (!strcmp(tc->valuestring, "none") || !strcmp(tc->valuestring, "auto"))))
        return px_server_fail(c->e, 400, "tool_choice", "unsupported_value", "only tool_choice 'auto' or 'none' is supported");
    return 0;
}

static px_think_state think_state(const parse_ctx *c, const cJSON *kwargs, const char *rendered) {
    const cJSON *et = cJSON_GetObjectItemCaseSensitive(kwargs, "enable_thinking");
    if (cJSON_IsFalse(et) || px_tokenizer_piece_to_id(c->cfg->tok, "</think>") < 0) return PX_THINK_OFF;
    size_t n = strlen(rendered);
    while (n && (rendered[n - 1] == '\n' || rendered[n - 1] == ' ')) n--;
    return n >= 7 && !memcmp(rendered + n - 7, "<think>", 7) ? PX_THINK_IN : PX_THINK_START;
}

static int parse_chat(const parse_ctx *c) {
    const cJSON *tools, *kwargs;
    if (chat_options(c, &tools, &kwargs)) return -1;
    cJSON *msgs = parse_messages(c);
    if (!msgs) return -1;
    if (!px_tokenizer_has_chat_template(c->cfg->tok)) {
        cJSON_Delete(msgs);
        return px_server_fail(c->e, 400, "messages", "chat_template_missing",
                              "the model '%s' has no chat template (tokenizer_config.json or chat_template.jinja); "
                              "use /v1/completions with a plain prompt", c->cfg->model_name);
    }
    char *text = px_tokenizer_apply_chat_template_json(c->cfg->tok, msgs, tools, true, kwargs, NULL);
    cJSON_Delete(msgs);
    if (!text) return px_server_fail(c->e, 400, "messages", "invalid_messages", "chat template: %s", px_error_get());
    c->p->think = think_state(c, kwargs, text);
    int rc = encode(c, text, 0);
    free(text);
    return rc;
}

/* ---- lengths ---- */

static int parse_lengths(const parse_ctx *c) {
    int ctx = c->cfg->context_length, np = c->p->n_prompt;
    double mt = 0, mct = 0;
    bool has_mt, has_mct;
    if (get_int(c, "max_tokens", -1e15, 1e15, &mt, &has_mt) || get_int(c, "max_completion_tokens", -1e15, 1e15, &mct, &has_mct))
        return -1;
    const char *which = has_mct ? "max_completion_tokens" : "max_tokens";
    if (has_mct) mt = mct, has_mt = true;
    if (np == 0) return px_server_fail(c->e, 400, "prompt", "invalid_value", "the prompt is empty (0 tokens)");
    if (np >= ctx)
        return px_server_fail(c->e, 400, c->p->kind == PX_API_CHAT ? "messages" : "prompt", "context_length_exceeded",
                              "This model's maximum context length is %d tokens. However, your prompt has %d tokens "
                              "(at most %d leave room for the completion).", ctx, np, ctx - 1);
    if (has_mt && (mt < 1 || mt > c->cfg->max_tokens_limit))
        return px_server_fail(c->e, 400, which, "invalid_value", "'%s' must be between 1 and %d, got %.0f", which,
                              c->cfg->max_tokens_limit, mt);
    if (has_mt && np + mt > ctx)
        return px_server_fail(c->e, 400, which, "context_length_exceeded",
                              "This model's maximum context length is %d tokens. However, you requested %.0f tokens "
                              "(%d in the prompt, %.0f for the completion). Please reduce the prompt or %s.",
                              ctx, np + mt, np, mt, which);
    c->p->sampling.max_tokens = has_mt ? (int)mt : PX_MIN(ctx - np, c->cfg->max_tokens_limit);
    return 0;
}

/* ---- entry ---- */

static int parse_all(const parse_ctx *c) {
    if (parse_model(c) || parse_unsupported(c) || parse_stream(c) || parse_sampling(c) || parse_logit_bias(c) ||
        parse_stop(c) || parse_logprobs(c))
        return -1;
    if (c->p->kind == PX_API_COMPLETIONS) {
        if (get_bool(c, "echo", &c->p->echo) || parse_prompt(c)) return -1;
    } else if (parse_chat(c)) return -1;
    return parse_lengths(c);
}

int px_server_parse_request(const px_server_config *cfg, px_api_kind kind, const char *body, size_t len,
                            px_server_params *p, px_server_error *e) {
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->logprobs = -1;
    px_sampling_defaults(&p->sampling);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, false);
    while (root && end < body + len && *end && strchr(" \t\r\n", *end)) end++;
    if (root && end != body + len) cJSON_Delete(root), root = NULL; /* trailing garbage */
    if (!root) {
        size_t at = end && end >= body ? (size_t)(end - body) : 0;
        return px_server_fail(e, 400, NULL, "invalid_json", "the request body is not valid JSON (near byte %zu)", at);
    }
    int rc;
    if (!cJSON_IsObject(root)) rc = px_server_fail(e, 400, NULL, "invalid_json", "the request body must be a JSON object");
    else rc = parse_all(&(parse_ctx){cfg, root, p, e});
    cJSON_Delete(root);
    if (rc) px_server_params_free(p);
    return rc;
}

void px_server_params_free(px_server_params *p) {
    for (int i = 0; i < p->n_stop; i++) free(p->stop[i]);
    free(p->stop);
    free(p->bias_ids);
    free(p->bias_values);
    free(p->stop_ids);
    free(p->prompt);
    free(p->echo_text);
    memset(p, 0, sizeof *p);
}
