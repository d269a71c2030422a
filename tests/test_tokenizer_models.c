/* test_tokenizer_models.c - the aidreams-260k tokenizer (SentencePiece-style
 * BPE with byte fallback, legacy ▁ handling) against the ids llama.cpp
 * produced for it: reference/tokenizer_cases.json (22 edge cases, special
 * tokens parsed) and reference/prompt_tokens.json (5 prompts). Also checks
 * the config values the rest of the system relies on (BOS/EOS, no chat
 * template) and that decode(encode(text)) gives the text back.
 *
 *   test_tokenizer_models AIDREAMS_DIR      (exit 77 = skipped: no model)
 */
#include "px_test.h"
#include "px_base.h"
#include "tokenizer.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static cJSON *load_json(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/reference/%s", dir, name);
    size_t len;
    char *text = px_read_file(path, &len);
    cJSON *j = text ? cJSON_ParseWithLength(text, len) : NULL;
    free(text);
    CHECK_MSG(j != NULL, "cannot read %s", path);
    return j;
}

static bool ids_match(const cJSON *want, const int32_t *got, size_t n) {
    if ((size_t)cJSON_GetArraySize(want) != n) return false;
    size_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, want) if ((int32_t)it->valuedouble != got[i++]) return false;
    return true;
}

/* Encodes text and compares with the reference ids; returns whether they matched. */
static bool check_text(const px_tokenizer *tok, const char *text, const cJSON *want) {
    size_t n;
    int32_t *ids = px_tokenizer_encode(tok, text, strlen(text), PX_TOK_ADD_SPECIAL, &n);
    bool ok = ids && ids_match(want, ids, n);
    CHECK_MSG(ok, "ids differ from llama.cpp for \"%s\"", text);
    if (ids && !strstr(text, "<")) { /* no literal special tokens: decode gives the text back */
        size_t len;
        char *back = px_tokenizer_decode(tok, ids, n, PX_TOK_SKIP_SPECIAL, &len);
        CHECK_MSG(back && len == strlen(text) && !memcmp(back, text, len), "decode(encode(\"%s\")) = \"%s\"", text,
                  back ? back : "(null)");
        free(back);
    }
    free(ids);
    return ok;
}

int main(int argc, char **argv) {
    if (argc != 2 || access(argv[1], R_OK) != 0) {
        fprintf(stderr, "skipped: no model directory '%s'\n", argc > 1 ? argv[1] : "");
        return 77;
    }
    px_tokenizer *tok = px_tokenizer_load(argv[1]);
    CHECK_MSG(tok != NULL, "%s", px_error_get());
    if (!tok) return px_test_finish();
    CHECK(px_tokenizer_vocab_size(tok) == 512);
    CHECK(px_tokenizer_bos_id(tok) == 1);
    CHECK(px_tokenizer_eos_id(tok) == 2);
    CHECK(px_tokenizer_adds_bos(tok));
    CHECK(px_tokenizer_is_eos(tok, 2) && !px_tokenizer_is_eos(tok, 1));
    CHECK(px_tokenizer_piece_to_id(tok, "\xE2\x96\x81") == 429);
    CHECK(!px_tokenizer_has_chat_template(tok));
    char *none = px_tokenizer_apply_chat_template(tok, "[{\"role\":\"user\",\"content\":\"hi\"}]", true, NULL, NULL);
    CHECK_MSG(!none && strstr(px_error_get(), "no chat template"), "expected a clear no-template error, got '%s'", px_error_get());
    free(none);

    int cases = 0, ok = 0;
    cJSON *tc = load_json(argv[1], "tokenizer_cases.json"), *pt = load_json(argv[1], "prompt_tokens.json"), *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(tc, "cases")) {
        cases++;
        ok += check_text(tok, cJSON_GetObjectItem(it, "text")->valuestring, cJSON_GetObjectItem(it, "ids"));
    }
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(pt, "prompts")) {
        cases++;
        ok += check_text(tok, cJSON_GetObjectItem(it, "prompt")->valuestring, cJSON_GetObjectItem(it, "ids"));
    }
    printf("aidreams-260k: %d/%d texts tokenize exactly as llama.cpp\n", ok, cases);
    CHECK(cases == 27);
    cJSON_Delete(tc);
    cJSON_Delete(pt);
    px_tokenizer_free(tok);
    return px_test_finish();
}
