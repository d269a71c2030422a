/* test_template_oracle.c - our chat-template rendering against npm
 * @huggingface/jinja, conversation by conversation, through the public
 * px_tokenizer_apply_chat_template_json API (expectations written by
 * tests/template_oracle.mjs). A conversation the oracle rejects (the
 * template calls raise_exception) must fail here too, with an error.
 *
 *   test_template_oracle TEMPLATES.json
 */
#include "px_test.h"
#include "px_base.h"
#include "tokenizer.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *dir;
    px_tokenizer *tok;
} cached;

static px_tokenizer *tokenizer_for(cached *cache, int *n, const char *dir) {
    for (int i = 0; i < *n; i++)
        if (!strcmp(cache[i].dir, dir)) return cache[i].tok;
    cache[*n] = (cached){dir, px_tokenizer_load(dir)};
    CHECK_MSG(cache[*n].tok != NULL, "%s", px_error_get());
    return cache[(*n)++].tok;
}

/* Prints where two renderings first differ. */
static void show_diff(const char *want, const char *got, size_t glen) {
    size_t i = 0, wlen = strlen(want);
    while (i < wlen && i < glen && want[i] == got[i]) i++;
    size_t from = i > 60 ? i - 60 : 0;
    fprintf(stderr, "    first difference at byte %zu\n    want: ...%.*s\n    got:  ...%.*s\n", i, (int)PX_MIN(wlen - from, 160),
            want + from, (int)PX_MIN(glen - from, 160), got + from);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s TEMPLATES.json\n", argv[0]);
        return 2;
    }
    size_t len;
    char *json = px_read_file(argv[1], &len);
    cJSON *root = json ? cJSON_ParseWithLength(json, len) : NULL;
    CHECK_MSG(root != NULL, "cannot read %s", argv[1]);
    if (!root) return px_test_finish();
    cached cache[8];
    int n_cached = 0, total = 0, same = 0, errors_ok = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        px_tokenizer *tok = tokenizer_for(cache, &n_cached, cJSON_GetObjectItem(c, "dir")->valuestring);
        if (!tok) continue;
        const char *model = cJSON_GetObjectItem(c, "model")->valuestring;
        const cJSON *expected = cJSON_GetObjectItem(c, "expected");
        size_t glen = 0;
        char *got = px_tokenizer_apply_chat_template_json(tok, cJSON_GetObjectItem(c, "messages"), cJSON_GetObjectItem(c, "tools"),
                                                          cJSON_IsTrue(cJSON_GetObjectItem(c, "add_generation_prompt")),
                                                          cJSON_GetObjectItem(c, "kwargs"), &glen);
        total++;
        if (!expected) { /* the oracle raised: so must we */
            const char *want = cJSON_GetObjectItem(c, "error")->valuestring;
            bool ok = !got;
            errors_ok += ok;
            CHECK_MSG(ok, "%s conversation %d: expected an error like '%s'", model, total - 1, want);
            if (ok) printf("  %s conversation %d: oracle: \"%s\"; we: \"%s\"\n", model, total - 1, want, px_error_get());
        } else {
            bool ok = got && glen == strlen(expected->valuestring) && !memcmp(got, expected->valuestring, glen);
            same += ok;
            CHECK_MSG(ok, "%s conversation %d renders differently%s%s", model, total - 1, got ? "" : ": ", got ? "" : px_error_get());
            if (!ok && got) show_diff(expected->valuestring, got, glen);
        }
        free(got);
    }
    printf("chat templates: %d conversations: %d rendered identically to @huggingface/jinja, %d expected errors raised\n",
           total, same, errors_ok);
    CHECK(total >= 30);
    for (int i = 0; i < n_cached; i++) px_tokenizer_free(cache[i].tok);
    cJSON_Delete(root);
    free(json);
    return px_test_finish();
}
