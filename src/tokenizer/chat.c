/* chat.c - rendering a conversation with the model's chat template, like
 * transformers' apply_chat_template(tokenize=False).
 *
 * The template sees: messages, tools (None when not given), documents (None),
 * add_generation_prompt, the config's special tokens as strings (bos_token,
 * eos_token, pad_token, unk_token) and every member of the caller's kwargs
 * (enable_thinking, date_string, ...; kwargs win over special tokens, as in
 * transformers). When tools are given and the config has a template named
 * "tool_use", that one is used. A model without a template is an error.
 */
#include "jinja.h"
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

static void add_token(cJSON *vars, const char *name, const char *value) {
    if (value) cJSON_AddStringToObject(vars, name, value);
}

/* Builds the variables object; NULL with an error for malformed input. */
static cJSON *build_vars(const px_tokenizer *tok, const cJSON *messages, const cJSON *tools, bool add_gen,
                         const cJSON *kwargs) {
    if (!cJSON_IsArray(messages)) {
        px_error_set("chat template: messages must be a JSON array of {\"role\": ..., \"content\": ...} objects");
        return NULL;
    }
    if (kwargs && !cJSON_IsObject(kwargs) && !cJSON_IsNull(kwargs)) {
        px_error_set("chat template: kwargs must be a JSON object");
        return NULL;
    }
    cJSON *vars = cJSON_CreateObject();
    add_token(vars, "bos_token", tok->bos_token);
    add_token(vars, "eos_token", tok->eos_token);
    add_token(vars, "pad_token", tok->pad_token);
    add_token(vars, "unk_token", tok->unk_token);
    const cJSON *it;
    cJSON_ArrayForEach(it, (cJSON_IsObject(kwargs) ? kwargs : NULL)) {
        if (!strcmp(it->string, "messages") || !strcmp(it->string, "add_generation_prompt")) continue;
        cJSON_DeleteItemFromObjectCaseSensitive(vars, it->string);
        cJSON_AddItemToObject(vars, it->string, cJSON_Duplicate(it, true));
    }
    if (tools && !cJSON_IsNull(tools)) {
        cJSON_DeleteItemFromObjectCaseSensitive(vars, "tools");
        cJSON_AddItemToObject(vars, "tools", cJSON_Duplicate(tools, true));
    }
    if (!cJSON_GetObjectItemCaseSensitive(vars, "tools")) cJSON_AddNullToObject(vars, "tools");
    if (!cJSON_GetObjectItemCaseSensitive(vars, "documents")) cJSON_AddNullToObject(vars, "documents");
    cJSON_AddItemToObject(vars, "messages", cJSON_Duplicate(messages, true));
    cJSON_AddBoolToObject(vars, "add_generation_prompt", add_gen);
    return vars;
}

char *px_tokenizer_apply_chat_template_json(const px_tokenizer *tok, const cJSON *messages, const cJSON *tools,
                                            bool add_generation_prompt, const cJSON *kwargs, size_t *len_out) {
    if (!tok->chat_template) {
        px_error_set("%s: this model has no chat template (tokenizer_config.json has no chat_template and there is "
                     "no chat_template.jinja); use a plain prompt instead",
                     tok->source);
        return NULL;
    }
    if (tok->template_error) {
        px_error_set("%s", tok->template_error);
        return NULL;
    }
    const cJSON *kw_tools = cJSON_IsObject(kwargs) ? cJSON_GetObjectItemCaseSensitive(kwargs, "tools") : NULL;
    bool has_tools = (tools && !cJSON_IsNull(tools)) || (kw_tools && !cJSON_IsNull(kw_tools));
    const struct px_jinja *t = has_tools && tok->tool_tmpl ? tok->tool_tmpl : tok->tmpl;
    cJSON *vars = build_vars(tok, messages, tools, add_generation_prompt, kwargs);
    if (!vars) return NULL;
    char *out = px_jinja_render(t, vars, len_out);
    cJSON_Delete(vars);
    return out;
}

static cJSON *parse_arg(const char *json, const char *what) {
    cJSON *j = cJSON_Parse(json);
    if (!j) px_error_set("chat template: %s is not valid JSON (near '%.20s')", what, cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() : "");
    return j;
}

char *px_tokenizer_apply_chat_template(const px_tokenizer *tok, const char *messages_json, bool add_generation_prompt,
                                       const char *kwargs_json, size_t *len_out) {
    cJSON *messages = parse_arg(messages_json, "messages");
    if (!messages) return NULL;
    cJSON *kwargs = NULL;
    if (kwargs_json && !(kwargs = parse_arg(kwargs_json, "kwargs"))) {
        cJSON_Delete(messages);
        return NULL;
    }
    char *out = px_tokenizer_apply_chat_template_json(tok, messages, NULL, add_generation_prompt, kwargs, len_out);
    cJSON_Delete(messages);
    cJSON_Delete(kwargs);
    return out;
}

bool px_tokenizer_has_chat_template(const px_tokenizer *tok) { return tok->chat_template != NULL; }
