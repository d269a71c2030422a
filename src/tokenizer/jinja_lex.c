/* jinja_lex.c - the template lexer: source text to tokens.
 *
 * Outside tags the source is text; {{ }}, {% %} and {# #} open expression,
 * statement and comment tags. Whitespace control follows Jinja2 with
 * transformers' settings: "{%-" / "-%}" strip all whitespace before / after,
 * trim_blocks drops the newline right after a block or comment tag, and
 * lstrip_blocks drops spaces and tabs between the start of a line and a
 * block or comment tag ("+" on the tag disables both). Newlines are
 * normalized to "\n" and one trailing newline of the template is dropped.
 * {% raw %} ... {% endraw %} is passed through as text. Inside tags the
 * lexer produces names, numbers, strings (Python escapes) and operators.
 */
#include "jinja_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    jarena *a;
    const char *s, *name;
    size_t n, pos;
    int line;
    bool line_starting;
    jtoks *out;
    char err[300];
} lexer;

static bool lfail(lexer *L, const char *fmt, const char *arg) {
    char msg[200];
    snprintf(msg, sizeof msg, fmt, arg ? arg : "");
    px_error_set("%s line %d: %s", L->name, L->line, msg);
    return false;
}

static jtok *push(lexer *L, jtok_kind kind, const char *s, size_t n) {
    if (L->out->n == L->out->cap) {
        size_t cap = L->out->cap ? L->out->cap * 2 : 256;
        jtok *v = ja_alloc(L->a, cap * sizeof *v);
        if (L->out->n) memcpy(v, L->out->v, L->out->n * sizeof *v);
        L->out->v = v;
        L->out->cap = cap;
    }
    jtok *t = &L->out->v[L->out->n++];
    *t = (jtok){.kind = kind, .line = L->line, .s = s ? ja_strndup(L->a, s, n) : "", .n = n};
    return t;
}

static void count_lines(lexer *L, size_t from, size_t to) {
    for (size_t i = from; i < to; i++) L->line += L->s[i] == '\n';
}

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* Next "{{", "{%" or "{#" at or after from; n when none. */
static size_t next_tag(const lexer *L, size_t from) {
    for (size_t i = from; i + 1 < L->n; i++)
        if (L->s[i] == '{' && (L->s[i + 1] == '{' || L->s[i + 1] == '%' || L->s[i + 1] == '#')) return i;
    return L->n;
}

/* Emits the text before a tag, applying "-" and lstrip_blocks. */
static void emit_text(lexer *L, size_t start, size_t end, char kind, char modifier) {
    size_t stop = end;
    if (modifier == '-')
        while (stop > start && is_ws(L->s[stop - 1])) stop--;
    else if ((kind == '%' || kind == '#') && modifier != '+') {
        size_t l = stop;
        while (l > start && L->s[l - 1] != '\n') l--;
        bool blank = true;
        for (size_t i = l; i < stop; i++) blank = blank && (L->s[i] == ' ' || L->s[i] == '\t');
        if (blank && (l > start || L->line_starting)) stop = l;
    }
    if (stop > start) push(L, TK_TEXT, L->s + start, stop - start);
    count_lines(L, start, end);
}

/* After a closing tag: "-" strips following whitespace, trim_blocks one newline. */
static void after_tag(lexer *L, char modifier, bool block) {
    size_t p = L->pos;
    if (modifier == '-')
        while (p < L->n && is_ws(L->s[p])) p++;
    else if (block && modifier != '+' && p < L->n && L->s[p] == '\n') p++;
    L->line_starting = p > 0 && L->s[p - 1] == '\n';
    count_lines(L, L->pos, p);
    L->pos = p;
}

static bool lex_comment(lexer *L) {
    const char *end = memmem(L->s + L->pos + 2, L->n - L->pos - 2, "#}", 2);
    if (!end) return lfail(L, "unclosed comment", NULL);
    size_t close = (size_t)(end - L->s);
    char modifier = close > L->pos + 2 && (L->s[close - 1] == '-' || L->s[close - 1] == '+') ? L->s[close - 1] : 0;
    count_lines(L, L->pos, close + 2);
    L->pos = close + 2;
    after_tag(L, modifier, true);
    return true;
}

/* ---- expression tokens ---- */

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Python string-literal escapes; unknown escapes stay as written. */
static size_t unescape_one(const char *s, size_t n, tk_buf *b) {
    static const char from[] = "ntr\\'\"abfv0", to[] = "\n\t\r\\'\"\a\b\f\v";
    const char *f = n ? memchr(from, s[0], sizeof from - 1) : NULL;
    if (f && *f != '0') {
        tk_buf_putc(b, to[f - from]);
        return 1;
    }
    size_t digits = s[0] == 'x' ? 2 : s[0] == 'u' ? 4 : s[0] == 'U' ? 8 : 0;
    uint32_t cp = 0;
    size_t k = 0;
    if (digits)
        for (k = 1; k <= digits && k < n && hexval(s[k]) >= 0; k++) cp = cp * 16 + (uint32_t)hexval(s[k]);
    else
        for (; k < 3 && k < n && s[k] >= '0' && s[k] <= '7'; k++) cp = cp * 8 + (uint32_t)(s[k] - '0');
    if ((digits && k == digits + 1) || (!digits && k > 0)) {
        char enc[4];
        tk_buf_put(b, enc, tk_utf8_encode(cp > 0x10FFFF ? 0xFFFD : cp, enc));
        return k;
    }
    tk_buf_putc(b, '\\');
    return 0;
}

static bool lex_string(lexer *L) {
    char q = L->s[L->pos];
    tk_buf b = {0};
    size_t i = L->pos + 1;
    while (i < L->n && L->s[i] != q) {
        if (L->s[i] == '\\' && i + 1 < L->n) {
            i++;
            i += unescape_one(L->s + i, L->n - i, &b);
            continue;
        }
        tk_buf_putc(&b, L->s[i++]);
    }
    if (i >= L->n) {
        tk_buf_free(&b);
        return lfail(L, "unterminated string literal", NULL);
    }
    push(L, TK_STRING, b.p ? b.p : "", b.n);
    tk_buf_free(&b);
    count_lines(L, L->pos, i + 1);
    L->pos = i + 1;
    return true;
}

static bool lex_number(lexer *L) {
    size_t i = L->pos;
    char buf[64];
    size_t k = 0;
    bool is_float = false;
    while (i < L->n && (isdigit((unsigned char)L->s[i]) || L->s[i] == '_'))
        if (L->s[i++] != '_' && k < 60) buf[k++] = L->s[i - 1];
    bool after_dot = L->pos > 0 && L->s[L->pos - 1] == '.';
    if (!after_dot && i + 1 < L->n && L->s[i] == '.' && isdigit((unsigned char)L->s[i + 1])) {
        is_float = true;
        buf[k++] = L->s[i++];
        while (i < L->n && (isdigit((unsigned char)L->s[i]) || L->s[i] == '_'))
            if (L->s[i++] != '_' && k < 60) buf[k++] = L->s[i - 1];
    }
    if (!after_dot && i < L->n && (L->s[i] == 'e' || L->s[i] == 'E')) {
        size_t j = i + 1 + (i + 1 < L->n && (L->s[i + 1] == '+' || L->s[i + 1] == '-'));
        if (j < L->n && isdigit((unsigned char)L->s[j])) {
            is_float = true;
            while (i < j && k < 60) buf[k++] = L->s[i++];
            while (i < L->n && isdigit((unsigned char)L->s[i]))
                if (k < 60) buf[k++] = L->s[i++];
                else i++;
        }
    }
    buf[k] = 0;
    jtok *t = push(L, is_float ? TK_FLOAT : TK_INT, L->s + L->pos, i - L->pos);
    if (is_float) t->f = strtod(buf, NULL);
    else t->i = strtoll(buf, NULL, 10);
    L->pos = i;
    return true;
}

static bool lex_operator(lexer *L) {
    static const char *const ops[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<",
                                      ">",  "=",  "(",  ")",  "[",  "]",  "{", "}", ",", ".", ":", "|"};
    for (size_t k = 0; k < PX_ARRAY_LEN(ops); k++) {
        size_t len = strlen(ops[k]);
        if (L->pos + len <= L->n && !memcmp(L->s + L->pos, ops[k], len)) {
            push(L, TK_OP, ops[k], len);
            L->pos += len;
            return true;
        }
    }
    char c[2] = {L->s[L->pos], 0};
    return lfail(L, "unexpected character '%s' in a tag", c);
}

static bool lex_token(lexer *L) {
    char c = L->s[L->pos];
    if (c == '"' || c == '\'') return lex_string(L);
    if (isdigit((unsigned char)c)) return lex_number(L);
    if (isalpha((unsigned char)c) || c == '_') {
        size_t i = L->pos;
        while (i < L->n && (isalnum((unsigned char)L->s[i]) || L->s[i] == '_')) i++;
        push(L, TK_NAME, L->s + L->pos, i - L->pos);
        L->pos = i;
        return true;
    }
    return lex_operator(L);
}

/* Whether a tag closes at pos; sets *modifier and *len of the closer. */
static bool at_close(const lexer *L, bool block, char *modifier, size_t *len) {
    const char *s = L->s + L->pos;
    size_t left = L->n - L->pos;
    char e = block ? '%' : '}';
    if (left >= 3 && (s[0] == '-' || s[0] == '+') && s[1] == e && s[2] == '}') {
        *modifier = s[0];
        *len = 3;
        return true;
    }
    if (left >= 2 && s[0] == e && s[1] == '}') {
        *modifier = 0;
        *len = 2;
        return true;
    }
    return false;
}

static bool lex_tag(lexer *L, bool block) {
    int depth = 0;
    int start_line = L->line;
    push(L, block ? TK_BLOCK_BEGIN : TK_VAR_BEGIN, NULL, 0);
    for (;;) {
        while (L->pos < L->n && is_ws(L->s[L->pos])) L->line += L->s[L->pos++] == '\n';
        if (L->pos >= L->n) {
            L->line = start_line;
            return lfail(L, block ? "unclosed '{%%' tag" : "unclosed '{{' tag", NULL);
        }
        char modifier;
        size_t len;
        if (depth == 0 && at_close(L, block, &modifier, &len)) {
            push(L, block ? TK_BLOCK_END : TK_VAR_END, NULL, 0);
            L->pos += len;
            after_tag(L, modifier, block);
            return true;
        }
        char c = L->s[L->pos];
        depth += (c == '(' || c == '[' || c == '{') - (c == ')' || c == ']' || c == '}');
        if (depth < 0) depth = 0;
        if (!lex_token(L)) return false;
    }
}

/* {% raw %}: everything up to {% endraw %} is text. Returns 1 if handled. */
static int lex_raw(lexer *L, size_t tag) {
    size_t p = tag + 2 + (L->s[tag + 2] == '-' || L->s[tag + 2] == '+');
    while (p < L->n && is_ws(L->s[p])) p++;
    if (L->n - p < 3 || memcmp(L->s + p, "raw", 3)) return 0;
    p += 3;
    while (p < L->n && is_ws(L->s[p])) p++;
    size_t body = p + (p < L->n && (L->s[p] == '-' || L->s[p] == '+'));
    if (L->n - body < 2 || memcmp(L->s + body, "%}", 2)) return 0;
    char open_mod = L->s[p];
    body += 2;
    if (open_mod == '-')
        while (body < L->n && is_ws(L->s[body])) body++;
    for (size_t i = body; i + 1 < L->n; i++) {
        if (L->s[i] != '{' || L->s[i + 1] != '%') continue;
        size_t q = i + 2 + (L->s[i + 2] == '-' || L->s[i + 2] == '+');
        char close_mod = L->s[i + 2];
        while (q < L->n && is_ws(L->s[q])) q++;
        if (L->n - q < 6 || memcmp(L->s + q, "endraw", 6)) continue;
        q += 6;
        while (q < L->n && is_ws(L->s[q])) q++;
        char mod = q < L->n && (L->s[q] == '-' || L->s[q] == '+') ? L->s[q++] : 0;
        if (L->n - q < 2 || memcmp(L->s + q, "%}", 2)) continue;
        size_t text_end = i;
        if (close_mod == '-')
            while (text_end > body && is_ws(L->s[text_end - 1])) text_end--;
        if (text_end > body) push(L, TK_TEXT, L->s + body, text_end - body);
        count_lines(L, tag, q + 2);
        L->pos = q + 2;
        after_tag(L, mod, true);
        return 1;
    }
    lfail(L, "unclosed '{%% raw %%}' block", NULL);
    return -1;
}

static bool lex_all(lexer *L) {
    while (L->pos < L->n) {
        size_t tag = next_tag(L, L->pos);
        char kind = tag < L->n ? L->s[tag + 1] : 0;
        char modifier = tag + 2 < L->n && (L->s[tag + 2] == '-' || L->s[tag + 2] == '+') ? L->s[tag + 2] : 0;
        emit_text(L, L->pos, tag, kind, modifier);
        L->pos = tag;
        if (tag >= L->n) break;
        if (kind == '#') {
            if (!lex_comment(L)) return false;
            continue;
        }
        if (kind == '%') {
            int raw = lex_raw(L, tag);
            if (raw < 0) return false;
            if (raw) continue;
        }
        L->pos = tag + 2 + (modifier != 0);
        if (!lex_tag(L, kind == '%')) return false;
    }
    push(L, TK_EOF, NULL, 0);
    return true;
}

bool jx_lex(jarena *a, const char *src, size_t len, const char *name, jtoks *out) {
    tk_buf norm = {0};
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            tk_buf_putc(&norm, '\n');
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else tk_buf_putc(&norm, src[i]);
    }
    if (norm.n && norm.p[norm.n - 1] == '\n') norm.n--;
    lexer L = {.a = a, .s = norm.p ? norm.p : "", .n = norm.n, .line = 1, .line_starting = true, .out = out, .name = name};
    bool ok = lex_all(&L);
    tk_buf_free(&norm);
    return ok;
}
