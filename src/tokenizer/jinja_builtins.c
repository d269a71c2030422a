/* jinja_builtins.c - the template library: Jinja2's filters and tests, the
 * Python string / dict / list methods templates call (s.strip('\n'),
 * s.split('</think>'), d.get(k), d.items(), ...), and the globals
 * transformers provides (range, namespace, dict, raise_exception,
 * strftime_now).
 *
 * Each builtin is a small function looked up by name in a table. Semantics
 * follow Python (str methods count code points and know Unicode whitespace)
 * and Jinja2 (e.g. `default` only replaces undefined unless boolean=true,
 * `sort` is stable and case-insensitive by default); transformers' tojson
 * (json.dumps with ensure_ascii=False) replaces Jinja's HTML-safe one.
 */
#include "jinja_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

jv ja_arg(jargs *a, int pos, const char *kw, jv dflt) {
    if (pos >= 0 && pos < a->npos) return a->pos[pos];
    for (int k = 0; kw && k < a->nkw; k++)
        if (!strcmp(a->kwn[k], kw)) return a->kwv[k];
    return dflt;
}

static jv need_str(jctx *c, jv v, const char *what) {
    if (v.t == JV_UNDEF) {
        const char *name = v.u.s.p ? v.u.s.p : "value";
        if (name[0] == 1) jx_fail(c, "%s: %s", what, name + 1);
        jx_fail(c, "%s: '%s' is undefined", what, name);
    }
    if (v.t != JV_STR) jx_fail(c, "%s expects a string, got %s", what, jv_type_name(v));
    return v;
}

static int64_t need_int(jctx *c, jv v, const char *what) {
    if (v.t != JV_INT && v.t != JV_BOOL) jx_fail(c, "%s expects an integer, got %s", what, jv_type_name(v));
    return v.t == JV_INT ? v.u.i : v.u.b;
}

/* ---- string helpers ---- */

static bool py_space(uint32_t c) {
    return (c >= 9 && c <= 13) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

static bool in_chars(uint32_t cp, jv chars) {
    if (chars.t != JV_STR) return py_space(cp);
    for (size_t i = 0; i < chars.u.s.n;) {
        uint32_t x;
        size_t k = tk_utf8_decode(chars.u.s.p + i, chars.u.s.n - i, &x);
        if (!k) k = 1, x = (unsigned char)chars.u.s.p[i];
        if (x == cp) return true;
        i += k;
    }
    return false;
}

static size_t prev_char(const char *s, size_t end) {
    size_t st = end - 1;
    while (st > 0 && ((unsigned char)s[st] & 0xC0) == 0x80) st--;
    return st;
}

static jv strip_impl(jv s, jv chars, bool left, bool right) {
    size_t a = 0, b = s.u.s.n;
    uint32_t cp;
    size_t k;
    while (left && a < b && (k = tk_utf8_decode(s.u.s.p + a, b - a, &cp)) && in_chars(cp, chars)) a += k;
    while (right && b > a) {
        size_t st = prev_char(s.u.s.p, b);
        if (!tk_utf8_decode(s.u.s.p + st, b - st, &cp) || !in_chars(cp, chars)) break;
        b = st;
    }
    return jv_str_ref(s.u.s.p + a, b - a);
}

static jv map_case(jctx *c, jv s, int mode) { /* 0 lower, 1 upper, 2 title, 3 capitalize */
    tk_buf b = {0};
    bool word_start = true;
    for (size_t i = 0; i < s.u.s.n;) {
        uint32_t cp;
        size_t k = tk_utf8_decode(s.u.s.p + i, s.u.s.n - i, &cp);
        if (!k) {
            tk_buf_putc(&b, s.u.s.p[i++]);
            continue;
        }
        bool up = mode == 1 || (mode == 2 && word_start) || (mode == 3 && i == 0);
        uint32_t m = (uint32_t)(up ? utf8proc_toupper((utf8proc_int32_t)cp) : utf8proc_tolower((utf8proc_int32_t)cp));
        utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)cp);
        word_start = !(cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO);
        char enc[4];
        tk_buf_put(&b, enc, tk_utf8_encode(m, enc));
        i += k;
    }
    jv r = jv_str(c, b.p ? b.p : "", b.n);
    tk_buf_free(&b);
    return r;
}

static jv replace_impl(jctx *c, jv s, jv old, jv with, int64_t count) {
    tk_buf b = {0};
    size_t i = 0;
    for (int64_t done = 0; count < 0 || done < count; done++) {
        if (!old.u.s.n) { /* Python inserts between characters */
            tk_buf_put(&b, with.u.s.p, with.u.s.n);
            if (i >= s.u.s.n) break;
            size_t k = 1;
            while (i + k < s.u.s.n && ((unsigned char)s.u.s.p[i + k] & 0xC0) == 0x80) k++;
            tk_buf_put(&b, s.u.s.p + i, k);
            i += k;
            continue;
        }
        const char *hit = old.u.s.n <= s.u.s.n - i ? memmem(s.u.s.p + i, s.u.s.n - i, old.u.s.p, old.u.s.n) : NULL;
        if (!hit) break;
        tk_buf_put(&b, s.u.s.p + i, (size_t)(hit - s.u.s.p) - i);
        tk_buf_put(&b, with.u.s.p, with.u.s.n);
        i = (size_t)(hit - s.u.s.p) + old.u.s.n;
    }
    if (i < s.u.s.n) tk_buf_put(&b, s.u.s.p + i, s.u.s.n - i);
    jv r = jv_str(c, b.p ? b.p : "", b.n);
    tk_buf_free(&b);
    return r;
}

/* str.split(sep=None, maxsplit=-1) */
static jv split_impl(jctx *c, jv s, jv sep, int64_t maxsplit) {
    jv out = jv_list(c, 0);
    const char *p = s.u.s.p;
    size_t n = s.u.s.n, i = 0;
    if (sep.t == JV_STR) {
        if (!sep.u.s.n) jx_fail(c, "split(): empty separator");
        for (int64_t done = 0; maxsplit < 0 || done < maxsplit; done++) {
            const char *hit = sep.u.s.n <= n - i ? memmem(p + i, n - i, sep.u.s.p, sep.u.s.n) : NULL;
            if (!hit) break;
            jl_push(c, out, jv_str_ref(p + i, (size_t)(hit - p) - i));
            i = (size_t)(hit - p) + sep.u.s.n;
        }
        jl_push(c, out, jv_str_ref(p + i, n - i));
        return out;
    }
    for (int64_t done = 0;; done++) { /* whitespace runs; no empty strings */
        uint32_t cp;
        size_t k;
        while (i < n && (k = tk_utf8_decode(p + i, n - i, &cp)) && py_space(cp)) i += k;
        if (i >= n) break;
        if (maxsplit >= 0 && done >= maxsplit) {
            jl_push(c, out, strip_impl(jv_str_ref(p + i, n - i), jv_none(), false, true));
            break;
        }
        size_t st = i;
        while (i < n && !((k = tk_utf8_decode(p + i, n - i, &cp)) && py_space(cp))) i += k ? k : 1;
        jl_push(c, out, jv_str_ref(p + st, i - st));
    }
    return out;
}

static bool affix_match(jctx *c, jv s, jv fix, bool start) {
    if (fix.t == JV_LIST) {
        for (size_t i = 0; i < fix.u.l->n; i++)
            if (affix_match(c, s, fix.u.l->v[i], start)) return true;
        return false;
    }
    need_str(c, fix, start ? "startswith" : "endswith");
    if (fix.u.s.n > s.u.s.n) return false;
    return !memcmp(start ? s.u.s.p : s.u.s.p + s.u.s.n - fix.u.s.n, fix.u.s.p, fix.u.s.n);
}

static int64_t find_impl(jv s, jv sub, bool last) {
    if (sub.u.s.n > s.u.s.n) return -1;
    const char *hit = NULL;
    if (!last) hit = sub.u.s.n ? memmem(s.u.s.p, s.u.s.n, sub.u.s.p, sub.u.s.n) : s.u.s.p;
    else
        for (size_t i = s.u.s.n - sub.u.s.n + 1; i-- > 0 && !hit;)
            if (!memcmp(s.u.s.p + i, sub.u.s.p, sub.u.s.n)) hit = s.u.s.p + i;
    return hit ? (int64_t)ju_len(s.u.s.p, (size_t)(hit - s.u.s.p)) : -1;
}

static jv join_impl(jctx *c, jv sep, jv items) {
    jv list;
    jx_iter_items(c, items, &list);
    tk_buf b = {0};
    for (size_t i = 0; i < list.u.l->n; i++) {
        if (i) tk_buf_put(&b, sep.u.s.p, sep.u.s.n);
        jv_to_str(c, list.u.l->v[i], &b);
    }
    jv r = jv_str(c, b.p ? b.p : "", b.n);
    tk_buf_free(&b);
    return r;
}

static bool all_chars(jv s, int kind) { /* 0 digit, 1 alpha, 2 alnum, 3 space */
    if (!s.u.s.n) return false;
    for (size_t i = 0; i < s.u.s.n;) {
        uint32_t cp;
        size_t k = tk_utf8_decode(s.u.s.p + i, s.u.s.n - i, &cp);
        if (!k) return false;
        utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)cp);
        bool alpha = cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
        bool digit = cat == UTF8PROC_CATEGORY_ND;
        bool ok = kind == 0 ? digit : kind == 1 ? alpha : kind == 2 ? alpha || digit : py_space(cp);
        if (!ok) return false;
        i += k;
    }
    return true;
}

/* ---- str methods ---- */

static jv m_strip(jctx *c, jv s, jargs *a) { (void)c; return strip_impl(s, ja_arg(a, 0, "chars", jv_none()), true, true); }
static jv m_lstrip(jctx *c, jv s, jargs *a) { (void)c; return strip_impl(s, ja_arg(a, 0, "chars", jv_none()), true, false); }
static jv m_rstrip(jctx *c, jv s, jargs *a) { (void)c; return strip_impl(s, ja_arg(a, 0, "chars", jv_none()), false, true); }
static jv m_split(jctx *c, jv s, jargs *a) {
    return split_impl(c, s, ja_arg(a, 0, "sep", jv_none()), need_int(c, ja_arg(a, 1, "maxsplit", jv_int(-1)), "split"));
}
static jv m_startswith(jctx *c, jv s, jargs *a) { return jv_bool(affix_match(c, s, ja_arg(a, 0, "prefix", jv_undef("prefix")), true)); }
static jv m_endswith(jctx *c, jv s, jargs *a) { return jv_bool(affix_match(c, s, ja_arg(a, 0, "suffix", jv_undef("suffix")), false)); }
static jv m_upper(jctx *c, jv s, jargs *a) { (void)a; return map_case(c, s, 1); }
static jv m_lower(jctx *c, jv s, jargs *a) { (void)a; return map_case(c, s, 0); }
static jv m_title(jctx *c, jv s, jargs *a) { (void)a; return map_case(c, s, 2); }
static jv m_capitalize(jctx *c, jv s, jargs *a) { (void)a; return map_case(c, s, 3); }
static jv m_replace(jctx *c, jv s, jargs *a) {
    jv old = need_str(c, ja_arg(a, 0, "old", jv_undef("old")), "replace"), with = need_str(c, ja_arg(a, 1, "new", jv_undef("new")), "replace");
    return replace_impl(c, s, old, with, need_int(c, ja_arg(a, 2, "count", jv_int(-1)), "replace"));
}
static jv m_find(jctx *c, jv s, jargs *a) { return jv_int(find_impl(s, need_str(c, ja_arg(a, 0, "sub", jv_undef("sub")), "find"), false)); }
static jv m_rfind(jctx *c, jv s, jargs *a) { return jv_int(find_impl(s, need_str(c, ja_arg(a, 0, "sub", jv_undef("sub")), "rfind"), true)); }
static jv m_count(jctx *c, jv s, jargs *a) {
    jv sub = need_str(c, ja_arg(a, 0, "sub", jv_undef("sub")), "count");
    if (!sub.u.s.n) return jv_int((int64_t)ju_len(s.u.s.p, s.u.s.n) + 1);
    int64_t n = 0;
    for (const char *p = s.u.s.p, *end = s.u.s.p + s.u.s.n; (size_t)(end - p) >= sub.u.s.n;) {
        const char *hit = memmem(p, (size_t)(end - p), sub.u.s.p, sub.u.s.n);
        if (!hit) break;
        n++;
        p = hit + sub.u.s.n;
    }
    return jv_int(n);
}
static jv m_join(jctx *c, jv s, jargs *a) { return join_impl(c, s, ja_arg(a, 0, "iterable", jv_undef("iterable"))); }
static jv m_removeprefix(jctx *c, jv s, jargs *a) {
    jv p = need_str(c, ja_arg(a, 0, "prefix", jv_undef("prefix")), "removeprefix");
    return affix_match(c, s, p, true) ? jv_str_ref(s.u.s.p + p.u.s.n, s.u.s.n - p.u.s.n) : s;
}
static jv m_removesuffix(jctx *c, jv s, jargs *a) {
    jv p = need_str(c, ja_arg(a, 0, "suffix", jv_undef("suffix")), "removesuffix");
    return affix_match(c, s, p, false) ? jv_str_ref(s.u.s.p, s.u.s.n - p.u.s.n) : s;
}
static jv m_isdigit(jctx *c, jv s, jargs *a) { (void)c, (void)a; return jv_bool(all_chars(s, 0)); }
static jv m_isalpha(jctx *c, jv s, jargs *a) { (void)c, (void)a; return jv_bool(all_chars(s, 1)); }
static jv m_isalnum(jctx *c, jv s, jargs *a) { (void)c, (void)a; return jv_bool(all_chars(s, 2)); }
static jv m_isspace(jctx *c, jv s, jargs *a) { (void)c, (void)a; return jv_bool(all_chars(s, 3)); }

/* ---- dict / list methods ---- */

static jv m_get(jctx *c, jv d, jargs *a) {
    (void)c;
    jv *v = jd_get_v(d, ja_arg(a, 0, "key", jv_none()));
    return v ? *v : ja_arg(a, 1, "default", jv_none());
}
static jv dict_items(jctx *c, jv d) {
    jv l = jv_list(c, d.u.d->n);
    for (size_t i = 0; i < d.u.d->n; i++) {
        jv t = jv_list(c, 2);
        t.tuple = true;
        jl_push(c, t, d.u.d->k[i]);
        jl_push(c, t, d.u.d->v[i]);
        jl_push(c, l, t);
    }
    return l;
}
static jv m_items(jctx *c, jv d, jargs *a) { (void)a; return dict_items(c, d); }
static jv m_keys(jctx *c, jv d, jargs *a) {
    (void)a;
    jv l;
    jx_iter_items(c, d, &l);
    return l;
}
static jv m_values(jctx *c, jv d, jargs *a) {
    (void)a;
    jv l = jv_list(c, d.u.d->n);
    for (size_t i = 0; i < d.u.d->n; i++) jl_push(c, l, d.u.d->v[i]);
    return l;
}
static jv m_index(jctx *c, jv l, jargs *a) {
    jv x = ja_arg(a, 0, "value", jv_undef("value"));
    for (size_t i = 0; i < l.u.l->n; i++)
        if (jv_equal(l.u.l->v[i], x)) return jv_int((int64_t)i);
    jx_fail(c, "list.index(x): x not in list");
}
static jv m_lcount(jctx *c, jv l, jargs *a) {
    (void)c;
    jv x = ja_arg(a, 0, "value", jv_undef("value"));
    int64_t n = 0;
    for (size_t i = 0; i < l.u.l->n; i++) n += jv_equal(l.u.l->v[i], x);
    return jv_int(n);
}

typedef struct {
    const char *name;
    jnative fn;
} method;

static const method str_methods[] = {
    {"strip", m_strip}, {"lstrip", m_lstrip}, {"rstrip", m_rstrip}, {"split", m_split}, {"startswith", m_startswith},
    {"endswith", m_endswith}, {"upper", m_upper}, {"lower", m_lower}, {"title", m_title}, {"capitalize", m_capitalize},
    {"replace", m_replace}, {"find", m_find}, {"rfind", m_rfind}, {"count", m_count}, {"join", m_join},
    {"removeprefix", m_removeprefix}, {"removesuffix", m_removesuffix}, {"isdigit", m_isdigit}, {"isalpha", m_isalpha},
    {"isalnum", m_isalnum}, {"isspace", m_isspace}};
static const method dict_methods[] = {{"get", m_get}, {"items", m_items}, {"keys", m_keys}, {"values", m_values}};
static const method list_methods[] = {{"index", m_index}, {"count", m_lcount}};

static jv find_method(jctx *c, const method *t, size_t n, jv obj, const char *name, size_t len) {
    for (size_t i = 0; i < n; i++)
        if (strlen(t[i].name) == len && !memcmp(t[i].name, name, len)) return jv_func(c, t[i].name, t[i].fn, obj);
    return jv_undef(ja_strndup(&c->arena, name, len));
}

jv jx_method(jctx *c, jv obj, const char *name, size_t n) {
    if (obj.t == JV_STR) return find_method(c, str_methods, PX_ARRAY_LEN(str_methods), obj, name, n);
    if (obj.t == JV_DICT) return find_method(c, dict_methods, PX_ARRAY_LEN(dict_methods), obj, name, n);
    if (obj.t == JV_LIST) return find_method(c, list_methods, PX_ARRAY_LEN(list_methods), obj, name, n);
    return jv_undef(ja_strndup(&c->arena, name, n));
}

/* ---- sorting (stable merge sort with Jinja's key rules) ---- */

typedef struct {
    jctx *c;
    bool case_sensitive;
    const char *attr;
} sort_key;

static jv attr_path(jctx *c, jv v, const char *path) {
    if (!path) return v;
    const char *p = path;
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        char *end;
        long idx = strtol(p, &end, 10);
        if (end == p + len && len) v = jx_getitem(c, v, jv_int(idx));
        else v = jx_getitem(c, v, jv_str_ref(p, len));
        p += len + (dot != NULL);
        if (v.t == JV_UNDEF) return v;
    }
    return v;
}

static jv sort_value(sort_key *k, jv v) {
    v = attr_path(k->c, v, k->attr);
    return !k->case_sensitive && v.t == JV_STR ? map_case(k->c, v, 0) : v;
}

static void merge_sort(sort_key *k, jv *items, jv *keys, jv *tmp_i, jv *tmp_k, size_t n) {
    if (n < 2) return;
    size_t h = n / 2;
    merge_sort(k, items, keys, tmp_i, tmp_k, h);
    merge_sort(k, items + h, keys + h, tmp_i, tmp_k, n - h);
    size_t i = 0, j = h, o = 0;
    while (i < h || j < n) {
        bool left = j >= n || (i < h && jv_compare(k->c, keys[j], keys[i]) >= 0);
        tmp_i[o] = left ? items[i] : items[j];
        tmp_k[o++] = left ? keys[i++] : keys[j++];
    }
    memcpy(items, tmp_i, n * sizeof *items);
    memcpy(keys, tmp_k, n * sizeof *keys);
}

static jv sorted(jctx *c, jv list, bool reverse, bool case_sensitive, const char *attr) {
    size_t n = list.u.l->n;
    sort_key k = {c, case_sensitive, attr};
    jv out = jv_list(c, n);
    jv *keys = ja_alloc(&c->arena, (n + 1) * sizeof *keys), *ti = ja_alloc(&c->arena, (n + 1) * sizeof *ti);
    jv *tk = ja_alloc(&c->arena, (n + 1) * sizeof *tk);
    for (size_t i = 0; i < n; i++) {
        jl_push(c, out, list.u.l->v[reverse ? n - 1 - i : i]);
        keys[i] = sort_value(&k, out.u.l->v[i]);
    }
    merge_sort(&k, out.u.l->v, keys, ti, tk, n);
    if (reverse) /* Python's sort(reverse=True) keeps equal items in original order */
        for (size_t i = 0; i < n / 2; i++) {
            jv t = out.u.l->v[i];
            out.u.l->v[i] = out.u.l->v[n - 1 - i];
            out.u.l->v[n - 1 - i] = t;
        }
    return out;
}

/* ---- filters ---- */

typedef jv (*filter_fn)(jctx *c, jv v, jargs *a);

static jv as_list(jctx *c, jv v) {
    jv l;
    jx_iter_items(c, v, &l);
    return l;
}

static jv f_length(jctx *c, jv v, jargs *a) {
    (void)a;
    if (v.t == JV_STR) return jv_int((int64_t)ju_len(v.u.s.p, v.u.s.n));
    if (v.t == JV_LIST) return jv_int((int64_t)v.u.l->n);
    if (v.t == JV_DICT || v.t == JV_NS) return jv_int((int64_t)v.u.d->n);
    if (v.t == JV_UNDEF) return jv_int(0);
    jx_fail(c, "object of type '%s' has no len()", jv_type_name(v));
}
static jv f_default(jctx *c, jv v, jargs *a) {
    (void)c;
    bool boolean = jv_truthy(ja_arg(a, 1, "boolean", jv_bool(false)));
    if (v.t == JV_UNDEF || (boolean && !jv_truthy(v))) return ja_arg(a, 0, "default_value", jv_strz(""));
    return v;
}
static jv f_trim(jctx *c, jv v, jargs *a) { return strip_impl(need_str(c, jv_stringify(c, v), "trim"), ja_arg(a, 0, "chars", jv_none()), true, true); }
static jv f_upper(jctx *c, jv v, jargs *a) { (void)a; return map_case(c, jv_stringify(c, v), 1); }
static jv f_lower(jctx *c, jv v, jargs *a) { (void)a; return map_case(c, jv_stringify(c, v), 0); }
static jv f_title(jctx *c, jv v, jargs *a) { (void)a; return map_case(c, jv_stringify(c, v), 2); }
static jv f_capitalize(jctx *c, jv v, jargs *a) { (void)a; return map_case(c, jv_stringify(c, v), 3); }
static jv f_string(jctx *c, jv v, jargs *a) { (void)a; return jv_stringify(c, v); }
static jv f_safe(jctx *c, jv v, jargs *a) { (void)c, (void)a; return v; }
static jv f_list(jctx *c, jv v, jargs *a) {
    (void)a;
    jv src = as_list(c, v), l = jv_list(c, src.u.l->n);
    for (size_t i = 0; i < src.u.l->n; i++) jl_push(c, l, src.u.l->v[i]);
    return l;
}
static jv f_first(jctx *c, jv v, jargs *a) {
    (void)a;
    jv l = as_list(c, v);
    return l.u.l->n ? l.u.l->v[0] : jv_undef("first");
}
static jv f_last(jctx *c, jv v, jargs *a) {
    (void)a;
    jv l = as_list(c, v);
    return l.u.l->n ? l.u.l->v[l.u.l->n - 1] : jv_undef("last");
}
static jv f_reverse(jctx *c, jv v, jargs *a) {
    (void)a;
    jv l = as_list(c, v), r = jv_list(c, l.u.l->n);
    for (size_t i = l.u.l->n; i-- > 0;) jl_push(c, r, l.u.l->v[i]);
    if (v.t != JV_STR) return r;
    return join_impl(c, jv_strz(""), r);
}
static jv f_join(jctx *c, jv v, jargs *a) {
    jv sep = jv_stringify(c, ja_arg(a, 0, "d", jv_strz("")));
    jv attr = ja_arg(a, 1, "attribute", jv_none());
    jv l = as_list(c, v);
    if (attr.t == JV_STR) {
        jv m = jv_list(c, l.u.l->n);
        for (size_t i = 0; i < l.u.l->n; i++) jl_push(c, m, attr_path(c, l.u.l->v[i], attr.u.s.p));
        l = m;
    }
    return join_impl(c, sep, l);
}
static jv f_tojson(jctx *c, jv v, jargs *a) {
    jv indent = ja_arg(a, 1, "indent", jv_none()), seps = ja_arg(a, 2, "separators", jv_none());
    jjson_opts o = {.indent = indent.t == JV_NONE ? -1 : (int)need_int(c, indent, "tojson indent"),
                    .ensure_ascii = jv_truthy(ja_arg(a, 0, "ensure_ascii", jv_bool(false))),
                    .sort_keys = jv_truthy(ja_arg(a, 3, "sort_keys", jv_bool(false)))};
    o.item_sep = o.indent >= 0 ? "," : ", ";
    o.key_sep = ": ";
    if (seps.t == JV_LIST && seps.u.l->n == 2) {
        o.item_sep = need_str(c, seps.u.l->v[0], "tojson separators").u.s.p;
        o.key_sep = need_str(c, seps.u.l->v[1], "tojson separators").u.s.p;
    }
    tk_buf b = {0};
    jx_track(c, &b);
    jv_to_json(c, v, &o, 0, &b);
    jx_untrack(c, &b);
    jv r = jv_str(c, b.p ? b.p : "", b.n);
    tk_buf_free(&b);
    return r;
}
static jv f_items(jctx *c, jv v, jargs *a) {
    (void)a;
    if (v.t == JV_UNDEF) return jv_list(c, 0);
    if (v.t != JV_DICT) jx_fail(c, "items filter expects a mapping, got %s", jv_type_name(v));
    return dict_items(c, v);
}
static jv f_int(jctx *c, jv v, jargs *a) {
    jv dflt = ja_arg(a, 0, "default", jv_int(0));
    if (v.t == JV_INT || v.t == JV_BOOL) return jv_int(v.t == JV_INT ? v.u.i : v.u.b);
    if (v.t == JV_FLOAT) return isfinite(v.u.f) ? jv_int((int64_t)v.u.f) : dflt;
    if (v.t != JV_STR) return dflt;
    char *buf = ja_strndup(&c->arena, v.u.s.p, v.u.s.n), *end;
    long long i = strtoll(buf, &end, 10);
    while (*end == ' ' || *end == '\n' || *end == '\t') end++;
    if (!*end && end != buf) return jv_int(i);
    double d = strtod(buf, &end);
    return !*end && end != buf && isfinite(d) ? jv_int((int64_t)d) : dflt;
}
static jv f_float(jctx *c, jv v, jargs *a) {
    jv dflt = ja_arg(a, 0, "default", jv_float(0));
    if (jv_is_num(v)) return jv_float(jv_num(v));
    if (v.t != JV_STR) return dflt;
    char *buf = ja_strndup(&c->arena, v.u.s.p, v.u.s.n), *end;
    double d = strtod(buf, &end);
    return !*end && end != buf ? jv_float(d) : dflt;
}
static jv f_abs(jctx *c, jv v, jargs *a) {
    (void)a;
    if (v.t == JV_FLOAT) return jv_float(fabs(v.u.f));
    return jv_int(llabs(need_int(c, v, "abs")));
}
static jv f_round(jctx *c, jv v, jargs *a) {
    int64_t prec = need_int(c, ja_arg(a, 0, "precision", jv_int(0)), "round");
    jv method = ja_arg(a, 1, "method", jv_strz("common"));
    if (!jv_is_num(v)) jx_fail(c, "round expects a number, got %s", jv_type_name(v));
    double m = pow(10, (double)prec), x = jv_num(v) * m;
    const char *how = method.t == JV_STR ? method.u.s.p : "common";
    x = !strcmp(how, "ceil") ? ceil(x) : !strcmp(how, "floor") ? floor(x) : round(x);
    return jv_float(x / m);
}
static jv f_replace(jctx *c, jv v, jargs *a) {
    jv s = need_str(c, jv_stringify(c, v), "replace");
    jv old = jv_stringify(c, ja_arg(a, 0, "old", jv_undef("old"))), with = jv_stringify(c, ja_arg(a, 1, "new", jv_undef("new")));
    jv count = ja_arg(a, 2, "count", jv_none());
    return replace_impl(c, s, old, with, count.t == JV_NONE ? -1 : need_int(c, count, "replace"));
}
static jv repeat_spaces(jctx *c, int64_t n) {
    if (n < 0 || n > 1000) jx_fail(c, "indent width %lld is out of range", (long long)n);
    char *p = ja_alloc(&c->arena, (size_t)n + 1);
    memset(p, ' ', (size_t)n);
    return jv_str_ref(p, (size_t)n);
}

static jv f_indent(jctx *c, jv v, jargs *a) {
    jv s = jv_stringify(c, v), w = ja_arg(a, 0, "width", jv_int(4));
    bool first = jv_truthy(ja_arg(a, 1, "first", jv_bool(false))), blank = jv_truthy(ja_arg(a, 2, "blank", jv_bool(false)));
    jv pad = w.t == JV_STR ? w : repeat_spaces(c, need_int(c, w, "indent"));
    jv lines = split_impl(c, s, jv_strz("\n"), -1);
    tk_buf b = {0};
    for (size_t i = 0; i < lines.u.l->n; i++) {
        jv ln = lines.u.l->v[i];
        if (i) tk_buf_putc(&b, '\n');
        if ((i || first) && (ln.u.s.n || blank)) tk_buf_put(&b, pad.u.s.p, pad.u.s.n);
        tk_buf_put(&b, ln.u.s.p, ln.u.s.n);
    }
    jv r = jv_str(c, b.p ? b.p : "", b.n);
    tk_buf_free(&b);
    return r;
}

static jv f_sort(jctx *c, jv v, jargs *a) {
    jv attr = ja_arg(a, 2, "attribute", jv_none());
    return sorted(c, as_list(c, v), jv_truthy(ja_arg(a, 0, "reverse", jv_bool(false))),
                  jv_truthy(ja_arg(a, 1, "case_sensitive", jv_bool(false))), attr.t == JV_STR ? attr.u.s.p : NULL);
}
static jv f_dictsort(jctx *c, jv v, jargs *a) {
    if (v.t != JV_DICT) jx_fail(c, "dictsort expects a mapping, got %s", jv_type_name(v));
    jv by = ja_arg(a, 1, "by", jv_strz("key"));
    bool by_value = by.t == JV_STR && !strcmp(by.u.s.p, "value");
    return sorted(c, dict_items(c, v), jv_truthy(ja_arg(a, 2, "reverse", jv_bool(false))),
                  jv_truthy(ja_arg(a, 0, "case_sensitive", jv_bool(false))), by_value ? "1" : "0");
}
static jv f_unique(jctx *c, jv v, jargs *a) {
    jv l = as_list(c, v), out = jv_list(c, 0), seen = jv_list(c, 0), attr = ja_arg(a, 1, "attribute", jv_none());
    sort_key k = {c, jv_truthy(ja_arg(a, 0, "case_sensitive", jv_bool(false))), attr.t == JV_STR ? attr.u.s.p : NULL};
    for (size_t i = 0; i < l.u.l->n; i++) {
        jv key = sort_value(&k, l.u.l->v[i]);
        bool dup = false;
        for (size_t j = 0; j < seen.u.l->n && !dup; j++) dup = jv_equal(seen.u.l->v[j], key);
        if (dup) continue;
        jl_push(c, seen, key);
        jl_push(c, out, l.u.l->v[i]);
    }
    return out;
}
static jv f_sum(jctx *c, jv v, jargs *a) {
    jv l = as_list(c, v), attr = ja_arg(a, 0, "attribute", jv_none()), total = ja_arg(a, 1, "start", jv_int(0));
    for (size_t i = 0; i < l.u.l->n; i++) {
        jv x = attr_path(c, l.u.l->v[i], attr.t == JV_STR ? attr.u.s.p : NULL);
        if (!jv_is_num(x) || !jv_is_num(total)) jx_fail(c, "sum: cannot add %s", jv_type_name(x));
        total = total.t != JV_FLOAT && x.t != JV_FLOAT ? jv_int((int64_t)jv_num(total) + (int64_t)jv_num(x))
                                                       : jv_float(jv_num(total) + jv_num(x));
    }
    return total;
}
static jv extreme(jctx *c, jv v, jargs *a, int sign) {
    jv l = as_list(c, v), attr = ja_arg(a, 1, "attribute", jv_none());
    sort_key k = {c, jv_truthy(ja_arg(a, 0, "case_sensitive", jv_bool(false))), attr.t == JV_STR ? attr.u.s.p : NULL};
    if (!l.u.l->n) return jv_undef("max/min of an empty sequence");
    jv best = l.u.l->v[0];
    for (size_t i = 1; i < l.u.l->n; i++)
        if (jv_compare(c, sort_value(&k, l.u.l->v[i]), sort_value(&k, best)) * sign > 0) best = l.u.l->v[i];
    return best;
}
static jv f_max(jctx *c, jv v, jargs *a) { return extreme(c, v, a, 1); }
static jv f_min(jctx *c, jv v, jargs *a) { return extreme(c, v, a, -1); }
static jv f_wordcount(jctx *c, jv v, jargs *a) {
    (void)a;
    return jv_int((int64_t)split_impl(c, jv_stringify(c, v), jv_none(), -1).u.l->n);
}
static jv f_escape(jctx *c, jv v, jargs *a) {
    (void)a;
    jv s = jv_stringify(c, v);
    tk_buf b = {0};
    for (size_t i = 0; i < s.u.s.n; i++) {
        char ch = s.u.s.p[i];
        const char *e = ch == '&' ? "&amp;" : ch == '<' ? "&lt;" : ch == '>' ? "&gt;" : ch == '"' ? "&#34;" : ch == '\'' ? "&#39;" : NULL;
        if (e) tk_buf_puts(&b, e);
        else tk_buf_putc(&b, ch);
    }
    jv r = jv_str(c, b.p ? b.p : "", b.n);
    tk_buf_free(&b);
    return r;
}
static jv f_attr(jctx *c, jv v, jargs *a) {
    jv name = need_str(c, ja_arg(a, 0, "name", jv_undef("name")), "attr");
    return jx_getattr(c, v, name.u.s.p, name.u.s.n);
}
static jv f_center(jctx *c, jv v, jargs *a) {
    jv s = jv_stringify(c, v);
    int64_t w = need_int(c, ja_arg(a, 0, "width", jv_int(80)), "center"), len = (int64_t)ju_len(s.u.s.p, s.u.s.n);
    if (w <= len) return s;
    int64_t left = (w - len) / 2 + ((w - len) & w & 1); /* Python's str.center split */
    jv l = repeat_spaces(c, left), r = repeat_spaces(c, w - len - left);
    jv out = jv_str(c, l.u.s.p, l.u.s.n);
    tk_buf b = {0};
    tk_buf_put(&b, out.u.s.p, out.u.s.n);
    tk_buf_put(&b, s.u.s.p, s.u.s.n);
    tk_buf_put(&b, r.u.s.p, r.u.s.n);
    out = jv_str(c, b.p, b.n);
    tk_buf_free(&b);
    return out;
}

/* Applies a test or filter named by args[first] with the remaining args. */
static jargs shift_args(jctx *c, jargs *a, int first) {
    jargs r = *a;
    r.npos = a->npos > first ? a->npos - first : 0;
    r.pos = r.npos ? a->pos + first : ja_alloc(&c->arena, sizeof(jv));
    return r;
}

static jv select_impl(jctx *c, jv v, jargs *a, bool by_attr, bool keep) {
    jv l = as_list(c, v), out = jv_list(c, 0);
    int first = by_attr ? 1 : 0;
    jv attr = by_attr ? need_str(c, ja_arg(a, 0, NULL, jv_undef("attribute")), "selectattr") : jv_none();
    jv test = ja_arg(a, first, NULL, jv_none());
    jargs rest = shift_args(c, a, first + 1);
    for (size_t i = 0; i < l.u.l->n; i++) {
        jv x = by_attr ? attr_path(c, l.u.l->v[i], attr.u.s.p) : l.u.l->v[i];
        bool ok = test.t == JV_STR ? jx_test(c, test.u.s.p, x, &rest) : jv_truthy(x);
        if (ok == keep) jl_push(c, out, l.u.l->v[i]);
    }
    return out;
}
static jv f_select(jctx *c, jv v, jargs *a) { return select_impl(c, v, a, false, true); }
static jv f_reject(jctx *c, jv v, jargs *a) { return select_impl(c, v, a, false, false); }
static jv f_selectattr(jctx *c, jv v, jargs *a) { return select_impl(c, v, a, true, true); }
static jv f_rejectattr(jctx *c, jv v, jargs *a) { return select_impl(c, v, a, true, false); }
static jv f_map(jctx *c, jv v, jargs *a) {
    jv l = as_list(c, v), out = jv_list(c, l.u.l->n), attr = ja_arg(a, -1, "attribute", jv_none());
    jv dflt = ja_arg(a, -1, "default", jv_undef("default"));
    jv name = ja_arg(a, 0, NULL, jv_none());
    jargs rest = shift_args(c, a, 1);
    rest.nkw = 0;
    if (attr.t != JV_STR && name.t != JV_STR) jx_fail(c, "map needs a filter name or attribute=");
    for (size_t i = 0; i < l.u.l->n; i++) {
        jv x;
        if (attr.t == JV_STR) {
            x = attr_path(c, l.u.l->v[i], attr.u.s.p);
            if (x.t == JV_UNDEF && dflt.t != JV_UNDEF) x = dflt;
        } else x = jx_filter(c, name.u.s.p, l.u.l->v[i], &rest);
        jl_push(c, out, x);
    }
    return out;
}

static const struct {
    const char *name;
    filter_fn fn;
} filters[] = {
    {"length", f_length}, {"count", f_length}, {"default", f_default}, {"d", f_default}, {"trim", f_trim},
    {"upper", f_upper}, {"lower", f_lower}, {"title", f_title}, {"capitalize", f_capitalize}, {"string", f_string},
    {"safe", f_safe}, {"list", f_list}, {"first", f_first}, {"last", f_last}, {"reverse", f_reverse},
    {"join", f_join}, {"tojson", f_tojson}, {"items", f_items}, {"int", f_int}, {"float", f_float}, {"abs", f_abs},
    {"round", f_round}, {"replace", f_replace}, {"indent", f_indent}, {"sort", f_sort}, {"dictsort", f_dictsort},
    {"unique", f_unique}, {"sum", f_sum}, {"max", f_max}, {"min", f_min}, {"wordcount", f_wordcount},
    {"escape", f_escape}, {"e", f_escape}, {"attr", f_attr}, {"center", f_center}, {"select", f_select},
    {"reject", f_reject}, {"selectattr", f_selectattr}, {"rejectattr", f_rejectattr}, {"map", f_map}};

jv jx_filter(jctx *c, const char *name, jv v, jargs *a) {
    for (size_t i = 0; i < PX_ARRAY_LEN(filters); i++)
        if (!strcmp(filters[i].name, name)) return filters[i].fn(c, v, a);
    jx_fail(c, "unknown filter '%s'", name);
}

/* ---- tests ---- */

typedef bool (*test_fn)(jctx *c, jv v, jargs *a);

static jv arg0(jargs *a) { return ja_arg(a, 0, NULL, jv_undef("argument")); }
static bool t_defined(jctx *c, jv v, jargs *a) { (void)c, (void)a; return v.t != JV_UNDEF; }
static bool t_undefined(jctx *c, jv v, jargs *a) { (void)c, (void)a; return v.t == JV_UNDEF; }
static bool t_none(jctx *c, jv v, jargs *a) { (void)c, (void)a; return v.t == JV_NONE; }
static bool t_boolean(jctx *c, jv v, jargs *a) { (void)c, (void)a; return v.t == JV_BOOL; }
static bool t_true(jctx *c, jv v, jargs *a) { (void)c, (void)a; return v.t == JV_BOOL && v.u.b; }
static bool t_false(jctx *c, jv v, jargs *a) { (void)c, (void)a; return v.t == JV_BOOL && !v.u.b; }
static bool t_string(jctx *c, jv v, jargs *a) { (void)c, (void)a; return v.t == JV_STR; }
static bool t_number(jctx *c, jv v, jargs *a) { (void)c, (void)a; return jv_is_num(v) && v.t != JV_BOOL; }
static bool t_integer(jctx *c, jv v, jargs *a) { (void)c, (void)a; return v.t == JV_INT; }
static bool t_float(jctx *c, jv v, jargs *a) { (void)c, (void)a; return v.t == JV_FLOAT; }
static bool t_mapping(jctx *c, jv v, jargs *a) { (void)c, (void)a; return v.t == JV_DICT; }
static bool t_iterable(jctx *c, jv v, jargs *a) {
    (void)c, (void)a;
    return v.t == JV_STR || v.t == JV_LIST || v.t == JV_DICT || v.t == JV_UNDEF;
}
static bool t_sequence(jctx *c, jv v, jargs *a) { (void)c, (void)a; return v.t == JV_STR || v.t == JV_LIST || v.t == JV_DICT; }
static bool t_callable(jctx *c, jv v, jargs *a) { (void)c, (void)a; return v.t == JV_FUNC; }
static bool t_odd(jctx *c, jv v, jargs *a) { (void)a; return need_int(c, v, "odd") % 2 != 0; }
static bool t_even(jctx *c, jv v, jargs *a) { (void)a; return need_int(c, v, "even") % 2 == 0; }
static bool t_divisibleby(jctx *c, jv v, jargs *a) {
    int64_t d = need_int(c, arg0(a), "divisibleby");
    if (!d) jx_fail(c, "divisibleby 0");
    return need_int(c, v, "divisibleby") % d == 0;
}
static bool t_eq(jctx *c, jv v, jargs *a) { (void)c; return jv_equal(v, arg0(a)); }
static bool t_ne(jctx *c, jv v, jargs *a) { (void)c; return !jv_equal(v, arg0(a)); }
static bool t_lt(jctx *c, jv v, jargs *a) { return jv_compare(c, v, arg0(a)) < 0; }
static bool t_le(jctx *c, jv v, jargs *a) { return jv_compare(c, v, arg0(a)) <= 0; }
static bool t_gt(jctx *c, jv v, jargs *a) { return jv_compare(c, v, arg0(a)) > 0; }
static bool t_ge(jctx *c, jv v, jargs *a) { return jv_compare(c, v, arg0(a)) >= 0; }
static bool t_in(jctx *c, jv v, jargs *a) {
    jv seq = arg0(a), l;
    if (seq.t == JV_STR) return v.t == JV_STR && (!v.u.s.n || memmem(seq.u.s.p, seq.u.s.n, v.u.s.p, v.u.s.n));
    if (seq.t == JV_DICT) return jd_get_v(seq, v) != NULL;
    jx_iter_items(c, seq, &l);
    for (size_t i = 0; i < l.u.l->n; i++)
        if (jv_equal(l.u.l->v[i], v)) return true;
    return false;
}
static bool t_sameas(jctx *c, jv v, jargs *a) {
    (void)c;
    jv o = arg0(a);
    if (v.t != o.t) return false;
    if (v.t == JV_NONE || v.t == JV_UNDEF) return true;
    if (v.t == JV_BOOL || v.t == JV_INT || v.t == JV_FLOAT) return jv_equal(v, o);
    return v.t == JV_STR ? v.u.s.p == o.u.s.p && v.u.s.n == o.u.s.n : v.u.l == o.u.l;
}
static bool t_lower(jctx *c, jv v, jargs *a) { (void)a; return v.t == JV_STR && jv_equal(map_case(c, v, 0), v); }
static bool t_upper(jctx *c, jv v, jargs *a) { (void)a; return v.t == JV_STR && jv_equal(map_case(c, v, 1), v); }
static bool t_escaped(jctx *c, jv v, jargs *a) { (void)c, (void)v, (void)a; return false; }

static const struct {
    const char *name;
    test_fn fn;
} tests[] = {
    {"defined", t_defined}, {"undefined", t_undefined}, {"none", t_none}, {"boolean", t_boolean}, {"true", t_true},
    {"false", t_false}, {"string", t_string}, {"number", t_number}, {"integer", t_integer}, {"float", t_float},
    {"mapping", t_mapping}, {"iterable", t_iterable}, {"sequence", t_sequence}, {"callable", t_callable},
    {"odd", t_odd}, {"even", t_even}, {"divisibleby", t_divisibleby}, {"eq", t_eq}, {"equalto", t_eq}, {"==", t_eq},
    {"ne", t_ne}, {"!=", t_ne}, {"lt", t_lt}, {"lessthan", t_lt}, {"<", t_lt}, {"le", t_le}, {"<=", t_le},
    {"gt", t_gt}, {"greaterthan", t_gt}, {">", t_gt}, {"ge", t_ge}, {">=", t_ge}, {"in", t_in}, {"sameas", t_sameas},
    {"lower", t_lower}, {"upper", t_upper}, {"escaped", t_escaped}};

bool jx_test(jctx *c, const char *name, jv v, jargs *a) {
    for (size_t i = 0; i < PX_ARRAY_LEN(tests); i++)
        if (!strcmp(tests[i].name, name)) return tests[i].fn(c, v, a);
    jx_fail(c, "unknown test '%s'", name);
}

/* ---- globals ---- */

static jv g_range(jctx *c, jv self, jargs *a) {
    (void)self;
    int64_t start = 0, stop, step = 1;
    if (a->npos == 1) stop = need_int(c, a->pos[0], "range");
    else if (a->npos >= 2) {
        start = need_int(c, a->pos[0], "range");
        stop = need_int(c, a->pos[1], "range");
        if (a->npos > 2) step = need_int(c, a->pos[2], "range");
    } else jx_fail(c, "range expected at least 1 argument");
    if (!step) jx_fail(c, "range() arg 3 must not be zero");
    int64_t count = step > 0 ? (stop > start ? (stop - start + step - 1) / step : 0) : (start > stop ? (start - stop - step - 1) / -step : 0);
    if (count > 1000000) jx_fail(c, "range() of %lld items is too long", (long long)count);
    jv l = jv_list(c, (size_t)count);
    for (int64_t i = 0; i < count; i++) jl_push(c, l, jv_int(start + i * step));
    return l;
}

static jv make_dict(jctx *c, jargs *a, uint8_t type) {
    jv d = jv_dict(c, 0);
    d.t = type;
    if (a->npos && a->pos[0].t == JV_DICT)
        for (size_t i = 0; i < a->pos[0].u.d->n; i++) jd_set(c, d, a->pos[0].u.d->k[i], a->pos[0].u.d->v[i]);
    for (int k = 0; k < a->nkw; k++) jd_set(c, d, jv_strz(a->kwn[k]), a->kwv[k]);
    return d;
}
static jv g_namespace(jctx *c, jv self, jargs *a) { (void)self; return make_dict(c, a, JV_NS); }
static jv g_dict(jctx *c, jv self, jargs *a) { (void)self; return make_dict(c, a, JV_DICT); }

static jv g_raise(jctx *c, jv self, jargs *a) {
    (void)self;
    jv msg = jv_stringify(c, ja_arg(a, 0, "message", jv_strz("raise_exception() called")));
    jx_fail(c, "template error: %.*s", (int)PX_MIN(msg.u.s.n, 400), msg.u.s.p);
}

static jv g_strftime_now(jctx *c, jv self, jargs *a) {
    (void)self;
    jv fmt = need_str(c, ja_arg(a, 0, "format", jv_undef("format")), "strftime_now");
    char buf[256];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    size_t n = strftime(buf, sizeof buf, ja_strndup(&c->arena, fmt.u.s.p, fmt.u.s.n), &tm);
    return jv_str(c, buf, n);
}

void jx_install_globals(jctx *c, jscope *g) {
    static const struct {
        const char *name;
        jnative fn;
    } fns[] = {{"range", g_range}, {"namespace", g_namespace}, {"dict", g_dict}, {"raise_exception", g_raise},
               {"strftime_now", g_strftime_now}};
    for (size_t i = 0; i < PX_ARRAY_LEN(fns); i++) {
        if (g->n == g->cap) {
            g->cap = 16;
            g->names = ja_alloc(&c->arena, 16 * sizeof *g->names);
            g->vals = ja_alloc(&c->arena, 16 * sizeof *g->vals);
        }
        g->names[g->n] = fns[i].name;
        g->vals[g->n++] = jv_func(c, fns[i].name, fns[i].fn, jv_none());
    }
}
