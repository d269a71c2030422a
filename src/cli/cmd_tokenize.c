/* cmd_tokenize.c - `parallax tokenize`: encode text to token ids (printed
 * comma-separated on one line) or, with --decode, ids back to text, using
 * the model directory's tokenizer.json. The text comes from the command
 * line, from --file, or from stdin when TEXT is "-". */
#include "cli.h"
#include "px_base.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *model_dir, *text, *file, *decode;
    bool no_special, split_special, skip_special, pieces;
} tokenize_args;

static void print_help(void) {
    printf("usage: parallax tokenize -m MODEL_DIR [options] TEXT\n"
           "       parallax tokenize -m MODEL_DIR --decode 1,2,3 [--skip-special]\n"
           "  -m, --model DIR     model directory with tokenizer.json (+ tokenizer_config.json)\n"
           "      --no-special    do not add BOS/EOS (add_special_tokens=False)\n"
           "      --split-special special tokens written in the text are plain text\n"
           "      --file F        read the text from file F (TEXT '-' reads stdin)\n"
           "      --pieces        print the token strings instead of ids (one per line)\n"
           "      --decode LIST   decode comma-separated ids and print the text\n"
           "      --skip-special  with --decode: leave out special tokens\n");
}

static int parse_args(int argc, char **argv, tokenize_args *a) {
    *a = (tokenize_args){0};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v;
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) return print_help(), 1;
        if (!strcmp(f, "--no-special")) a->no_special = true;
        else if (!strcmp(f, "--split-special")) a->split_special = true;
        else if (!strcmp(f, "--skip-special")) a->skip_special = true;
        else if (!strcmp(f, "--pieces")) a->pieces = true;
        else if (!strcmp(f, "-m") || !strcmp(f, "--model") || !strcmp(f, "--file") || !strcmp(f, "--decode")) {
            if (!(v = px_flag_value(argc, argv, &i))) return 2;
            if (f[1] == 'm' || f[2] == 'm') a->model_dir = v;
            else if (f[2] == 'f') a->file = v;
            else a->decode = v;
        } else if (f[0] == '-' && f[1]) return px_usage_error("tokenize: unknown flag '%s' (see parallax tokenize --help)", f);
        else if (a->text) return px_usage_error("tokenize: give the text as one argument (quote it)");
        else a->text = f;
    }
    if (!a->model_dir) return px_usage_error("tokenize: -m MODEL_DIR is required");
    int sources = (a->text != NULL) + (a->file != NULL) + (a->decode != NULL);
    if (sources != 1) return px_usage_error("tokenize: give exactly one of TEXT, --file F or --decode LIST");
    return 0;
}

static char *read_stdin(size_t *len) {
    size_t cap = 1 << 16, n = 0, k;
    char *buf = px_malloc(cap);
    while ((k = fread(buf + n, 1, cap - n - 1, stdin)) > 0)
        if ((n += k) + 1 >= cap) buf = px_realloc(buf, cap *= 2);
    buf[n] = 0;
    *len = n;
    return buf;
}

static int do_decode(const px_tokenizer *tok, const tokenize_args *a) {
    int32_t *ids;
    int n;
    if (!px_flag_int_list("--decode", a->decode, &ids, &n)) return 2;
    size_t len;
    char *text = px_tokenizer_decode(tok, ids, (size_t)n, a->skip_special ? PX_TOK_SKIP_SPECIAL : 0, &len);
    free(ids);
    if (!text) return px_usage_error("--decode: %s", px_error_get());
    fwrite(text, 1, len, stdout);
    putchar('\n');
    free(text);
    return 0;
}

static int do_encode(const px_tokenizer *tok, const tokenize_args *a) {
    size_t len = 0;
    char *owned = NULL;
    const char *text = a->text;
    if (a->file && !(text = owned = px_read_file(a->file, &len))) return px_usage_error("--file: %s", px_error_get());
    if (a->text && !strcmp(a->text, "-")) text = owned = read_stdin(&len);
    else if (a->text) len = strlen(a->text);
    int flags = (a->no_special ? 0 : PX_TOK_ADD_SPECIAL) | (a->split_special ? PX_TOK_SPLIT_SPECIAL : 0);
    size_t n;
    int32_t *ids = px_tokenizer_encode(tok, text, len, flags, &n);
    free(owned);
    if (!ids) {
        fprintf(stderr, "parallax: tokenize: %s\n", px_error_get());
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        if (a->pieces) printf("%d\t%s\n", ids[i], px_tokenizer_piece(tok, ids[i]));
        else printf(i ? ",%d" : "%d", ids[i]);
    }
    if (!a->pieces) putchar('\n');
    free(ids);
    return 0;
}

int px_cmd_tokenize(int argc, char **argv) {
    tokenize_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc == 1 ? 0 : rc;
    px_tokenizer *tok = px_tokenizer_load(a.model_dir);
    if (!tok) {
        fprintf(stderr, "parallax: -m: %s\n", px_error_get());
        return 1;
    }
    rc = a.decode ? do_decode(tok, &a) : do_encode(tok, &a);
    px_tokenizer_free(tok);
    return rc;
}
