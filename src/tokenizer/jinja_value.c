/* jinja_value.c - runtime values of the template interpreter: the arena,
 * constructors, Python truthiness / equality / ordering, str() and repr()
 * (so {{ x }} prints what Python would: True, None, 1.0, ['a']), JSON
 * output exactly like Python's json.dumps (transformers' tojson filter) and
 * conversion of cJSON input (messages, tools, kwargs) to values.
 */
#include "jinja_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ---- */

void *ja_alloc(jarena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (!a->head || a->head->used + n > a->head->cap) {
        size_t cap = n > 65536 ? n : 65536;
        ja_block *b = px_malloc(sizeof *b + cap);
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
    }
    void *p = a->head->data + a->head->used;
    a->head->used += n;
    memset(p, 0, n);
    return p;
}

char *ja_strndup(jarena *a, const char *s, size_t n) {
    char *p = ja_alloc(a, n + 1);
    if (n) memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void ja_free(jarena *a) {
    while (a->head) {
        ja_block *next = a->head->next;
        free(a->head);
        a->head = next;
    }
}

/* ---- constructors ---- */

jv jv_undef(const char *name) {
    jv v = {.t = JV_UNDEF};
    v.u.s.p = name;
    return v;
}
jv jv_none(void) { return (jv){.t = JV_NONE}; }
jv jv_bool(bool b) { return (jv){.t = JV_BOOL, .u.b = b}; }
jv jv_int(int64_t i) { return (jv){.t = JV_INT, .u.i = i}; }
jv jv_float(double f) { return (jv){.t = JV_FLOAT, .u.f = f}; }
jv jv_str_ref(const char *s, size_t n) {
    jv v = {.t = JV_STR};
    v.u.s.p = s;
    v.u.s.n = n;
    return v;
}
jv jv_strz(const char *s) { return jv_str_ref(s, strlen(s)); }
jv jv_str(jctx *c, const char *s, size_t n) { return jv_str_ref(ja_strndup(&c->arena, s, n), n); }

jv jv_list(jctx *c, size_t cap) {
    jv v = {.t = JV_LIST};
    v.u.l = ja_alloc(&c->arena, sizeof *v.u.l);
    if (cap) {
        v.u.l->v = ja_alloc(&c->arena, cap * sizeof(jv));
        v.u.l->cap = cap;
    }
    return v;
}

jv jv_dict(jctx *c, size_t cap) {
    jv v = {.t = JV_DICT};
    v.u.d = ja_alloc(&c->arena, sizeof *v.u.d);
    if (cap) {
        v.u.d->k = ja_alloc(&c->arena, cap * sizeof(jv));
        v.u.d->v = ja_alloc(&c->arena, cap * sizeof(jv));
        v.u.d->cap = cap;
    }
    return v;
}

jv jv_func(jctx *c, const char *name, jnative fn, jv self) {
    jv v = {.t = JV_FUNC};
    v.u.fn = ja_alloc(&c->arena, sizeof *v.u.fn);
    v.u.fn->name = name;
    v.u.fn->native = fn;
    v.u.fn->self = self;
    return v;
}

void jl_push(jctx *c, jv list, jv item) {
    jlistv *l = list.u.l;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        jv *v = ja_alloc(&c->arena, cap * sizeof *v);
        if (l->n) memcpy(v, l->v, l->n * sizeof *v);
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = item;
}

jv *jd_get_v(jv dict, jv key) {
    jdictv *d = dict.u.d;
    for (size_t i = 0; i < d->n; i++)
        if (jv_equal(d->k[i], key)) return &d->v[i];
    return NULL;
}

jv *jd_get(jv dict, const char *key, size_t n) {
    jdictv *d = dict.u.d;
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].t == JV_STR && d->k[i].u.s.n == n && !memcmp(d->k[i].u.s.p, key, n)) return &d->v[i];
    return NULL;
}

void jd_set(jctx *c, jv dict, jv key, jv val) {
    jv *slot = jd_get_v(dict, key);
    if (slot) {
        *slot = val;
        return;
    }
    jdictv *d = dict.u.d;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        jv *k = ja_alloc(&c->arena, cap * sizeof *k), *v = ja_alloc(&c->arena, cap * sizeof *v);
        if (d->n) {
            memcpy(k, d->k, d->n * sizeof *k);
            memcpy(v, d->v, d->n * sizeof *v);
        }
        d->k = k, d->v = v, d->cap = cap;
    }
    d->k[d->n] = key;
    d->v[d->n++] = val;
}

/* ---- Python semantics ---- */

const char *jv_type_name(jv v) {
    static const char *const names[] = {"Undefined", "NoneType", "bool", "int", "float",
                                        "str",       "list",     "dict", "Namespace", "function"};
    return v.t == JV_LIST && v.tuple ? "tuple" : names[v.t];
}

bool jv_is_num(jv v) { return v.t == JV_BOOL || v.t == JV_INT || v.t == JV_FLOAT; }

double jv_num(jv v) { return v.t == JV_FLOAT ? v.u.f : v.t == JV_INT ? (double)v.u.i : (double)v.u.b; }

bool jv_truthy(jv v) {
    switch (v.t) {
    case JV_UNDEF:
    case JV_NONE: return false;
    case JV_BOOL: return v.u.b;
    case JV_INT: return v.u.i != 0;
    case JV_FLOAT: return v.u.f != 0;
    case JV_STR: return v.u.s.n > 0;
    case JV_LIST: return v.u.l->n > 0;
    case JV_DICT: return v.u.d->n > 0;
    default: return true;
    }
}

static bool dict_equal(jv a, jv b) {
    if (a.u.d->n != b.u.d->n) return false;
    for (size_t i = 0; i < a.u.d->n; i++) {
        jv *o = jd_get_v(b, a.u.d->k[i]);
        if (!o || !jv_equal(a.u.d->v[i], *o)) return false;
    }
    return true;
}

bool jv_equal(jv a, jv b) {
    if (jv_is_num(a) && jv_is_num(b)) {
        if (a.t != JV_FLOAT && b.t != JV_FLOAT)
            return (a.t == JV_INT ? a.u.i : a.u.b) == (b.t == JV_INT ? b.u.i : b.u.b);
        return jv_num(a) == jv_num(b);
    }
    if (a.t != b.t) return false;
    switch (a.t) {
    case JV_UNDEF:
    case JV_NONE: return true;
    case JV_STR: return a.u.s.n == b.u.s.n && !memcmp(a.u.s.p, b.u.s.p, a.u.s.n);
    case JV_LIST:
        if (a.tuple != b.tuple || a.u.l->n != b.u.l->n) return false;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!jv_equal(a.u.l->v[i], b.u.l->v[i])) return false;
        return true;
    case JV_DICT: return dict_equal(a, b);
    default: return a.u.d == b.u.d;
    }
}

int jv_compare(jctx *c, jv a, jv b) {
    if (jv_is_num(a) && jv_is_num(b)) {
        double x = jv_num(a), y = jv_num(b);
        return (x > y) - (x < y);
    }
    if (a.t == JV_STR && b.t == JV_STR) {
        int r = memcmp(a.u.s.p, b.u.s.p, PX_MIN(a.u.s.n, b.u.s.n));
        return r ? r : (a.u.s.n > b.u.s.n) - (a.u.s.n < b.u.s.n);
    }
    if (a.t == JV_LIST && b.t == JV_LIST) {
        for (size_t i = 0; i < a.u.l->n && i < b.u.l->n; i++) {
            int r = jv_compare(c, a.u.l->v[i], b.u.l->v[i]);
            if (r) return r;
        }
        return (a.u.l->n > b.u.l->n) - (a.u.l->n < b.u.l->n);
    }
    jx_fail(c, "'<' not supported between instances of '%s' and '%s'", jv_type_name(a), jv_type_name(b));
}

/* ---- unicode helpers ---- */

size_t ju_len(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

size_t ju_offset(const char *s, size_t n, size_t idx) {
    size_t i = 0;
    for (size_t k = 0; i < n; i++) {
        if (((unsigned char)s[i] & 0xC0) == 0x80) continue;
        if (k++ == idx) return i;
    }
    return n;
}

/* ---- str() / repr() ---- */

void jv_float_repr(double f, tk_buf *out) {
    char buf[64];
    if (isnan(f)) {
        tk_buf_puts(out, "nan");
        return;
    }
    if (isinf(f)) {
        tk_buf_puts(out, f < 0 ? "-inf" : "inf");
        return;
    }
    int prec = 1;
    for (; prec < 17; prec++) { /* shortest digits that round-trip, like Python's repr */
        snprintf(buf, sizeof buf, "%.*e", prec - 1, f);
        if (strtod(buf, NULL) == f) break;
    }
    snprintf(buf, sizeof buf, "%.*e", prec - 1, f);
    char *e = strchr(buf, 'e');
    int exp = atoi(e + 1);
    *e = 0;
    char digits[32];
    size_t nd = 0;
    for (char *p = buf; *p; p++)
        if (*p >= '0' && *p <= '9') digits[nd++] = *p;
    if (f < 0 || (f == 0 && signbit(f))) tk_buf_putc(out, '-');
    if (exp < -4 || exp >= 16) {
        tk_buf_putc(out, digits[0]);
        if (nd > 1) {
            tk_buf_putc(out, '.');
            tk_buf_put(out, digits + 1, nd - 1);
        }
        snprintf(buf, sizeof buf, "e%c%02d", exp < 0 ? '-' : '+', abs(exp));
        tk_buf_puts(out, buf);
        return;
    }
    if (exp < 0) {
        tk_buf_puts(out, "0.");
        for (int i = -1; i > exp; i--) tk_buf_putc(out, '0');
        tk_buf_put(out, digits, nd);
        return;
    }
    for (int i = 0; i <= exp; i++) tk_buf_putc(out, (size_t)i < nd ? digits[i] : '0');
    tk_buf_putc(out, '.');
    if ((size_t)exp + 1 < nd) tk_buf_put(out, digits + exp + 1, nd - (size_t)exp - 1);
    else tk_buf_putc(out, '0');
}

static void str_repr(const char *s, size_t n, tk_buf *out) {
    bool has_sq = memchr(s, '\'', n), has_dq = memchr(s, '"', n);
    char q = has_sq && !has_dq ? '"' : '\'';
    tk_buf_putc(out, q);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[8];
        if (ch == '\\' || ch == (unsigned char)q) {
            tk_buf_putc(out, '\\');
            tk_buf_putc(out, (char)ch);
        } else if (ch == '\n') tk_buf_puts(out, "\\n");
        else if (ch == '\r') tk_buf_puts(out, "\\r");
        else if (ch == '\t') tk_buf_puts(out, "\\t");
        else if (ch < 0x20 || ch == 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", ch);
            tk_buf_puts(out, esc);
        } else tk_buf_putc(out, (char)ch);
    }
    tk_buf_putc(out, q);
}

void jv_repr(jctx *c, jv v, tk_buf *out) {
    if (v.t == JV_STR) str_repr(v.u.s.p, v.u.s.n, out);
    else if (v.t == JV_UNDEF) tk_buf_puts(out, "Undefined");
    else jv_to_str(c, v, out);
}

static void seq_str(jctx *c, jv v, tk_buf *out) {
    tk_buf_putc(out, v.tuple ? '(' : '[');
    for (size_t i = 0; i < v.u.l->n; i++) {
        if (i) tk_buf_puts(out, ", ");
        jv_repr(c, v.u.l->v[i], out);
    }
    if (v.tuple && v.u.l->n == 1) tk_buf_putc(out, ',');
    tk_buf_putc(out, v.tuple ? ')' : ']');
}

static void dict_str(jctx *c, jv v, tk_buf *out) {
    tk_buf_puts(out, v.t == JV_NS ? "<Namespace {" : "{");
    for (size_t i = 0; i < v.u.d->n; i++) {
        if (i) tk_buf_puts(out, ", ");
        jv_repr(c, v.u.d->k[i], out);
        tk_buf_puts(out, ": ");
        jv_repr(c, v.u.d->v[i], out);
    }
    tk_buf_puts(out, v.t == JV_NS ? "}>" : "}");
}

void jv_to_str(jctx *c, jv v, tk_buf *out) {
    char buf[32];
    switch (v.t) {
    case JV_UNDEF: return;
    case JV_NONE: tk_buf_puts(out, "None"); return;
    case JV_BOOL: tk_buf_puts(out, v.u.b ? "True" : "False"); return;
    case JV_INT:
        snprintf(buf, sizeof buf, "%lld", (long long)v.u.i);
        tk_buf_puts(out, buf);
        return;
    case JV_FLOAT: jv_float_repr(v.u.f, out); return;
    case JV_STR: tk_buf_put(out, v.u.s.p, v.u.s.n); return;
    case JV_LIST: seq_str(c, v, out); return;
    case JV_DICT:
    case JV_NS: dict_str(c, v, out); return;
    case JV_FUNC:
        tk_buf_puts(out, "<function ");
        tk_buf_puts(out, v.u.fn->name ? v.u.fn->name : "?");
        tk_buf_putc(out, '>');
        return;
    }
}

jv jv_stringify(jctx *c, jv v) {
    if (v.t == JV_STR) return v;
    tk_buf b = {0};
    jv_to_str(c, v, &b);
    jv r = jv_str(c, b.p ? b.p : "", b.n);
    tk_buf_free(&b);
    return r;
}

/* ---- JSON (Python json.dumps) ---- */

static void json_string(const char *s, size_t n, bool ascii, tk_buf *out) {
    char esc[16];
    tk_buf_putc(out, '"');
    for (size_t i = 0; i < n;) {
        unsigned char ch = (unsigned char)s[i];
        const char *simple = ch == '"' ? "\\\"" : ch == '\\' ? "\\\\" : ch == '\n' ? "\\n" : ch == '\r' ? "\\r"
                           : ch == '\t' ? "\\t" : ch == '\b' ? "\\b" : ch == '\f' ? "\\f" : NULL;
        uint32_t cp;
        size_t k;
        if (simple) tk_buf_puts(out, simple), i++;
        else if (ch < 0x20 || (ascii && ch == 0x7f)) {
            snprintf(esc, sizeof esc, "\\u%04x", ch);
            tk_buf_puts(out, esc);
            i++;
        } else if (ch >= 0x80 && ascii && (k = tk_utf8_decode(s + i, n - i, &cp))) {
            if (cp >= 0x10000)
                snprintf(esc, sizeof esc, "\\u%04x\\u%04x", 0xD800 + ((cp - 0x10000) >> 10), 0xDC00 + ((cp - 0x10000) & 0x3FF));
            else snprintf(esc, sizeof esc, "\\u%04x", cp);
            tk_buf_puts(out, esc);
            i += k;
        } else tk_buf_putc(out, (char)ch), i++;
    }
    tk_buf_putc(out, '"');
}

static void json_newline(const jjson_opts *o, int level, tk_buf *out) {
    tk_buf_putc(out, '\n');
    for (int i = 0; i < o->indent * level; i++) tk_buf_putc(out, ' ');
}

static void json_key(jctx *c, jv k, const jjson_opts *o, tk_buf *out) {
    if (k.t == JV_STR) {
        json_string(k.u.s.p, k.u.s.n, o->ensure_ascii, out);
        return;
    }
    tk_buf tmp = {0};
    if (k.t == JV_BOOL || k.t == JV_NONE) tk_buf_puts(&tmp, k.t == JV_NONE ? "null" : k.u.b ? "true" : "false");
    else if (k.t == JV_INT || k.t == JV_FLOAT) jv_to_str(c, k, &tmp);
    else {
        tk_buf_free(&tmp);
        jx_fail(c, "tojson: keys must be str, int, float, bool or None, not %s", jv_type_name(k));
    }
    json_string(tmp.p, tmp.n, false, out);
    tk_buf_free(&tmp);
}

static int key_order(const void *a, const void *b) {
    const jv *x = *(const jv *const *)a, *y = *(const jv *const *)b;
    int r = memcmp(x->u.s.p, y->u.s.p, PX_MIN(x->u.s.n, y->u.s.n));
    return r ? r : (x->u.s.n > y->u.s.n) - (x->u.s.n < y->u.s.n);
}

static void json_dict(jctx *c, jv v, const jjson_opts *o, int level, tk_buf *out) {
    size_t n = v.u.d->n;
    if (!n) {
        tk_buf_puts(out, "{}");
        return;
    }
    jv **keys = ja_alloc(&c->arena, n * sizeof *keys);
    for (size_t i = 0; i < n; i++) keys[i] = &v.u.d->k[i];
    if (o->sort_keys) qsort(keys, n, sizeof *keys, key_order);
    tk_buf_putc(out, '{');
    for (size_t i = 0; i < n; i++) {
        if (i) tk_buf_puts(out, o->item_sep);
        if (o->indent >= 0) json_newline(o, level + 1, out);
        json_key(c, *keys[i], o, out);
        tk_buf_puts(out, o->key_sep);
        jv_to_json(c, v.u.d->v[keys[i] - v.u.d->k], o, level + 1, out);
    }
    if (o->indent >= 0) json_newline(o, level, out);
    tk_buf_putc(out, '}');
}

void jv_to_json(jctx *c, jv v, const jjson_opts *o, int level, tk_buf *out) {
    switch (v.t) {
    case JV_NONE: tk_buf_puts(out, "null"); return;
    case JV_BOOL: tk_buf_puts(out, v.u.b ? "true" : "false"); return;
    case JV_INT: jv_to_str(c, v, out); return;
    case JV_FLOAT:
        if (isnan(v.u.f)) tk_buf_puts(out, "NaN");
        else if (isinf(v.u.f)) tk_buf_puts(out, v.u.f < 0 ? "-Infinity" : "Infinity");
        else jv_float_repr(v.u.f, out);
        return;
    case JV_STR: json_string(v.u.s.p, v.u.s.n, o->ensure_ascii, out); return;
    case JV_LIST:
        if (!v.u.l->n) {
            tk_buf_puts(out, "[]");
            return;
        }
        tk_buf_putc(out, '[');
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i) tk_buf_puts(out, o->item_sep);
            if (o->indent >= 0) json_newline(o, level + 1, out);
            jv_to_json(c, v.u.l->v[i], o, level + 1, out);
        }
        if (o->indent >= 0) json_newline(o, level, out);
        tk_buf_putc(out, ']');
        return;
    case JV_DICT: json_dict(c, v, o, level, out); return;
    default: jx_fail(c, "tojson: Object of type %s is not JSON serializable", jv_type_name(v));
    }
}

/* ---- cJSON input ---- */

jv jv_from_cjson(jctx *c, const cJSON *j) {
    if (!j || cJSON_IsNull(j)) return jv_none();
    if (cJSON_IsBool(j)) return jv_bool(cJSON_IsTrue(j));
    if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        if (d == floor(d) && fabs(d) < 9007199254740992.0) return jv_int((int64_t)d);
        return jv_float(d);
    }
    if (cJSON_IsString(j)) return jv_strz(j->valuestring);
    const cJSON *it;
    if (cJSON_IsArray(j)) {
        jv l = jv_list(c, (size_t)cJSON_GetArraySize(j));
        cJSON_ArrayForEach(it, j) jl_push(c, l, jv_from_cjson(c, it));
        return l;
    }
    jv d = jv_dict(c, (size_t)cJSON_GetArraySize(j));
    cJSON_ArrayForEach(it, j) jd_set(c, d, jv_strz(it->string), jv_from_cjson(c, it));
    return d;
}
