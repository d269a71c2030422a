/* cmd_template.c - `parallax template`: render a conversation (a JSON file
 * of messages) with the model's chat template and print the prompt, as
 * transformers' apply_chat_template(tokenize=False) would. */
#include "cli.h"
#include "px_base.h"
#include "tokenizer.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *model_dir, *messages, *kwargs, *tools;
    bool no_gen;
} template_args;

static void print_help(void) {
    printf("usage: parallax template -m MODEL_DIR --messages FILE.json [options]\n"
           "  -m, --model DIR           model directory (tokenizer_config.json with a chat_template)\n"
           "      --messages FILE       JSON array of {\"role\", \"content\", ...} messages\n"
           "                            (or an object with \"messages\" and optional \"tools\")\n"
           "      --tools FILE          JSON array of tool definitions\n"
           "      --kwargs JSON         extra template variables, e.g. '{\"enable_thinking\": false}'\n"
           "      --no-generation-prompt  do not open an assistant turn at the end\n");
}

static int parse_args(int argc, char **argv, template_args *a) {
    *a = (template_args){0};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v;
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) return print_help(), 1;
        if (!strcmp(f, "--no-generation-prompt")) {
            a->no_gen = true;
            continue;
        }
        const char **slot = !strcmp(f, "-m") || !strcmp(f, "--model") ? &a->model_dir
                          : !strcmp(f, "--messages")                  ? &a->messages
                          : !strcmp(f, "--kwargs")                    ? &a->kwargs
                          : !strcmp(f, "--tools")                     ? &a->tools
                                                                      : NULL;
        if (!slot) return px_usage_error("template: unknown argument '%s' (see parallax template --help)", f);
        if (!(v = px_flag_value(argc, argv, &i))) return 2;
        *slot = v;
    }
    if (!a->model_dir) return px_usage_error("template: -m MODEL_DIR is required");
    if (!a->messages) return px_usage_error("template: --messages FILE.json is required");
    return 0;
}

/* Reads and parses a JSON file; prints "parallax: FLAG: ..." on failure. */
static cJSON *json_file(const char *flag, const char *path) {
    size_t len;
    char *text = px_read_file(path, &len);
    if (!text) {
        px_usage_error("%s: %s", flag, px_error_get());
        return NULL;
    }
    cJSON *j = cJSON_ParseWithLength(text, len);
    if (!j) {
        int line = 1;
        const char *at = cJSON_GetErrorPtr();
        for (const char *p = text; at && p < at && p < text + len; p++) line += *p == '\n';
        px_usage_error("%s: %s is not valid JSON (near line %d)", flag, path, line);
    }
    free(text);
    return j;
}

static int render(const px_tokenizer *tok, const template_args *a, cJSON *doc, cJSON *tools, cJSON *kwargs) {
    const cJSON *messages = doc;
    if (cJSON_IsObject(doc)) {
        messages = cJSON_GetObjectItemCaseSensitive(doc, "messages");
        if (!tools) tools = cJSON_GetObjectItemCaseSensitive(doc, "tools");
    }
    if (!cJSON_IsArray(messages)) return px_usage_error("--messages: %s must hold a JSON array of messages", a->messages);
    size_t len;
    char *out = px_tokenizer_apply_chat_template_json(tok, messages, tools, !a->no_gen, kwargs, &len);
    if (!out) {
        fprintf(stderr, "parallax: template: %s\n", px_error_get());
        return 1;
    }
    fwrite(out, 1, len, stdout);
    free(out);
    return 0;
}

int px_cmd_template(int argc, char **argv) {
    template_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc == 1 ? 0 : rc;
    cJSON *doc = json_file("--messages", a.messages), *tools = NULL, *kwargs = NULL;
    if (!doc) return 2;
    if (a.tools && !(tools = json_file("--tools", a.tools))) rc = 2;
    if (!rc && a.kwargs && !cJSON_IsObject(kwargs = cJSON_Parse(a.kwargs)))
        rc = px_usage_error("--kwargs: '%s' is not a JSON object", a.kwargs);
    px_tokenizer *tok = rc ? NULL : px_tokenizer_load(a.model_dir);
    if (!rc && !tok) {
        fprintf(stderr, "parallax: -m: %s\n", px_error_get());
        rc = 1;
    }
    if (!rc) rc = render(tok, &a, doc, tools, kwargs);
    px_tokenizer_free(tok);
    cJSON_Delete(doc);
    cJSON_Delete(tools);
    cJSON_Delete(kwargs);
    return rc;
}
