/* jinja_eval.c - the template evaluator: runs the syntax tree against a
 * scope chain and writes the output.
 *
 * Scoping follows Jinja2: the template has a root scope over the globals
 * (builtins, then the render variables); a for loop gets one scope for all
 * its iterations, a macro call a fresh scope over the scope the macro was
 * defined in; `if` opens none. `set` writes to the current scope, and only
 * namespace objects can be changed from inside a loop. Attribute access
 * tries methods first for dicts (so msg.items is the method, like Python)
 * and keys first for subscripts. Undefined values print as "" and are false,
 * but using them for arithmetic, attributes or calls is an error.
 * Errors (including raise_exception) longjmp to px_jinja_render, which frees
 * the render arena and the buffers registered with jx_track.
 */
#include "jinja_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jx_fail(jctx *c, const char *fmt, ...) {
    char msg[500];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(c->err, sizeof c->err, "%s line %d: %s", c->tname, c->line, msg);
    longjmp(*c->jmp, 1);
}

void jx_track(jctx *c, tk_buf *b) {
    if (c->nlive == (int)PX_ARRAY_LEN(c->live)) jx_fail(c, "template nesting too deep");
    c->live[c->nlive++] = b;
}

void jx_untrack(jctx *c, tk_buf *b) {
    for (int i = c->nlive; i-- > 0;)
        if (c->live[i] == b) {
            c->live[i] = c->live[--c->nlive];
            return;
        }
}

/* ---- scopes ---- */

static jscope *scope_new(jctx *c, jscope *parent) {
    jscope *s = ja_alloc(&c->arena, sizeof *s);
    s->parent = parent;
    return s;
}

static void scope_set(jctx *c, jscope *s, const char *name, jv v) {
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->names[i], name)) {
            s->vals[i] = v;
            return;
        }
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 8;
        const char **names = ja_alloc(&c->arena, (size_t)cap * sizeof *names);
        jv *vals = ja_alloc(&c->arena, (size_t)cap * sizeof *vals);
        if (s->n) {
            memcpy(names, s->names, (size_t)s->n * sizeof *names);
            memcpy(vals, s->vals, (size_t)s->n * sizeof *vals);
        }
        s->names = names, s->vals = vals, s->cap = cap;
    }
    s->names[s->n] = name;
    s->vals[s->n++] = v;
}

jv jx_scope_get(jscope *s, const char *name) {
    for (; s; s = s->parent)
        for (int i = s->n; i-- > 0;)
            if (!strcmp(s->names[i], name)) return s->vals[i];
    return jv_undef(name);
}

static void exec_body(jctx *c, jscope *sc, const jnode *body);

/* ---- attribute and item access ---- */

/* An undefined value carries a variable name, or (marked by a leading \1) a
 * whole message such as "'dict object' has no attribute 'x'". */
static _Noreturn void undefined_error(jctx *c, jv v) {
    const char *s = v.u.s.p ? v.u.s.p : "value";
    if (s[0] == 1) jx_fail(c, "%s", s + 1);
    jx_fail(c, "'%s' is undefined", s);
}

static jv missing(jctx *c, jv obj, const char *what, const char *key, size_t n) {
    char buf[200];
    snprintf(buf, sizeof buf, "\1'%s object' has no %s '%.*s'", jv_type_name(obj), what, (int)PX_MIN(n, 100), key);
    return jv_undef(ja_strndup(&c->arena, buf, strlen(buf)));
}

static jv missing_index(jctx *c, jv obj, int64_t i) {
    char buf[100];
    snprintf(buf, sizeof buf, "\1'%s object' has no element %lld", jv_type_name(obj), (long long)i);
    return jv_undef(ja_strndup(&c->arena, buf, strlen(buf)));
}

jv jx_getattr(jctx *c, jv obj, const char *name, size_t n) {
    if (obj.t == JV_UNDEF) undefined_error(c, obj);
    if (obj.t == JV_NS) {
        jv *v = jd_get(obj, name, n);
        return v ? *v : missing(c, obj, "attribute", name, n);
    }
    jv m = jx_method(c, obj, name, n);
    if (m.t != JV_UNDEF) return m;
    jv *v = obj.t == JV_DICT ? jd_get(obj, name, n) : NULL;
    return v ? *v : missing(c, obj, "attribute", name, n);
}

static int64_t list_index(jv key, size_t n, bool *ok) {
    int64_t i = key.t == JV_BOOL ? key.u.b : key.u.i;
    if (i < 0) i += (int64_t)n;
    *ok = i >= 0 && (size_t)i < n;
    return i;
}

jv jx_getitem(jctx *c, jv obj, jv key) {
    bool ok;
    if (obj.t == JV_UNDEF) undefined_error(c, obj);
    if (obj.t == JV_DICT || obj.t == JV_NS) {
        jv *v = jd_get_v(obj, key);
        if (v) return *v;
    } else if (obj.t == JV_LIST && (key.t == JV_INT || key.t == JV_BOOL)) {
        int64_t i = list_index(key, obj.u.l->n, &ok);
        return ok ? obj.u.l->v[i] : missing_index(c, obj, key.t == JV_INT ? key.u.i : key.u.b);
    } else if (obj.t == JV_STR && (key.t == JV_INT || key.t == JV_BOOL)) {
        int64_t i = list_index(key, ju_len(obj.u.s.p, obj.u.s.n), &ok);
        if (!ok) return missing_index(c, obj, key.t == JV_INT ? key.u.i : key.u.b);
        size_t a = ju_offset(obj.u.s.p, obj.u.s.n, (size_t)i), b = ju_offset(obj.u.s.p, obj.u.s.n, (size_t)i + 1);
        return jv_str_ref(obj.u.s.p + a, b - a);
    }
    if (key.t == JV_STR && obj.t != JV_NS) return jx_getattr(c, obj, key.u.s.p, key.u.s.n);
    if (key.t == JV_STR) return missing(c, obj, "attribute", key.u.s.p, key.u.s.n);
    return missing(c, obj, "item of type", jv_type_name(key), strlen(jv_type_name(key)));
}

/* One slice bound: *has is false for a missing or None bound. */
static int64_t slice_arg(jctx *c, jscope *sc, const jnode *e, bool *has) {
    *has = false;
    if (!e) return 0;
    jv v = jx_eval(c, sc, e);
    if (v.t == JV_NONE) return 0;
    if (v.t != JV_INT && v.t != JV_BOOL) jx_fail(c, "slice indices must be integers or None");
    *has = true;
    return v.t == JV_INT ? v.u.i : v.u.b;
}

/* Python's slice.indices(): clamps start / stop for a sequence of length n. */
static void slice_bounds(int64_t n, int64_t step, int64_t *start, int64_t *stop, bool has_start, bool has_stop) {
    int64_t lo = step < 0 ? -1 : 0, hi = step < 0 ? n - 1 : n;
    if (!has_start) *start = step < 0 ? n - 1 : 0;
    else {
        if (*start < 0) *start += n;
        *start = *start < lo ? lo : *start > hi ? hi : *start;
    }
    if (!has_stop) *stop = step < 0 ? -1 : n;
    else {
        if (*stop < 0) *stop += n;
        *stop = *stop < lo ? lo : *stop > hi ? hi : *stop;
    }
}

static jv eval_slice(jctx *c, jscope *sc, jv obj, const jnode *s) {
    bool has_start, has_stop, has_step;
    int64_t start = slice_arg(c, sc, s->a, &has_start), stop = slice_arg(c, sc, s->b, &has_stop);
    int64_t step = slice_arg(c, sc, s->c, &has_step);
    if (!has_step) step = 1;
    if (step == 0) jx_fail(c, "slice step cannot be zero");
    if (obj.t == JV_UNDEF) undefined_error(c, obj);
    bool is_str = obj.t == JV_STR;
    if (!is_str && obj.t != JV_LIST) jx_fail(c, "'%s' object is not subscriptable", jv_type_name(obj));
    int64_t n = is_str ? (int64_t)ju_len(obj.u.s.p, obj.u.s.n) : (int64_t)obj.u.l->n;
    slice_bounds(n, step, &start, &stop, has_start, has_stop);
    jv out = jv_list(c, 0);
    out.tuple = obj.tuple;
    tk_buf sb = {0};
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
        if (!is_str) {
            jl_push(c, out, obj.u.l->v[i]);
            continue;
        }
        size_t a = ju_offset(obj.u.s.p, obj.u.s.n, (size_t)i), b = ju_offset(obj.u.s.p, obj.u.s.n, (size_t)i + 1);
        tk_buf_put(&sb, obj.u.s.p + a, b - a);
    }
    if (is_str) out = jv_str(c, sb.p ? sb.p : "", sb.n);
    tk_buf_free(&sb);
    return out;
}

/* ---- calls ---- */

static void eval_args(jctx *c, jscope *sc, const jnode *n, int skip, jargs *a) {
    int npos = n->list.n - skip;
    jv star = n->star ? jx_eval(c, sc, n->star) : jv_none();
    size_t extra = star.t == JV_LIST ? star.u.l->n : 0;
    a->pos = ja_alloc(&c->arena, ((size_t)npos + extra + 1) * sizeof(jv));
    a->npos = 0;
    for (int i = 0; i < npos; i++) a->pos[a->npos++] = jx_eval(c, sc, n->list.v[i + skip]);
    for (size_t i = 0; i < extra; i++) a->pos[a->npos++] = star.u.l->v[i];
    jv dstar = n->dstar ? jx_eval(c, sc, n->dstar) : jv_none();
    size_t dn = dstar.t == JV_DICT ? dstar.u.d->n : 0;
    a->kwn = ja_alloc(&c->arena, ((size_t)n->n_names + dn + 1) * sizeof *a->kwn);
    a->kwv = ja_alloc(&c->arena, ((size_t)n->n_names + dn + 1) * sizeof *a->kwv);
    a->nkw = 0;
    for (int i = 0; i < n->n_names; i++) {
        a->kwn[a->nkw] = n->names[i];
        a->kwv[a->nkw++] = jx_eval(c, sc, n->list2.v[i]);
    }
    for (size_t i = 0; i < dn; i++)
        if (dstar.u.d->k[i].t == JV_STR) {
            a->kwn[a->nkw] = dstar.u.d->k[i].u.s.p;
            a->kwv[a->nkw++] = dstar.u.d->v[i];
        }
}

static jv capture(jctx *c, jscope *sc, const jnode *body) {
    tk_buf buf = {0}, *saved = c->out;
    jx_track(c, &buf);
    c->out = &buf;
    exec_body(c, sc, body);
    c->out = saved;
    jx_untrack(c, &buf);
    jv r = jv_str(c, buf.p ? buf.p : "", buf.n);
    tk_buf_free(&buf);
    return r;
}

static jv call_macro(jctx *c, const jfunc *f, jargs *a) {
    const jnode *m = f->macro;
    if (++c->depth > 50) jx_fail(c, "macro recursion deeper than 50 calls");
    jscope *s = scope_new(c, f->closure);
    jv varargs = jv_list(c, 0), kwargs = jv_dict(c, 0);
    for (int i = 0; i < m->n_names; i++) {
        jv v = jv_undef(m->names[i]);
        bool given = i < a->npos;
        if (given) v = a->pos[i];
        for (int k = 0; !given && k < a->nkw; k++)
            if (!strcmp(a->kwn[k], m->names[i])) v = a->kwv[k], given = true;
        scope_set(c, s, m->names[i], v);
    }
    for (int i = 0; i < m->n_names; i++) /* defaults see earlier parameters */
        if (jx_scope_get(s, m->names[i]).t == JV_UNDEF && i >= a->npos && m->list2.v[i])
            scope_set(c, s, m->names[i], jx_eval(c, s, m->list2.v[i]));
    for (int i = m->n_names; i < a->npos; i++) jl_push(c, varargs, a->pos[i]);
    for (int k = 0; k < a->nkw; k++) {
        bool param = false;
        for (int i = 0; i < m->n_names; i++) param = param || !strcmp(a->kwn[k], m->names[i]);
        if (!param) jd_set(c, kwargs, jv_strz(a->kwn[k]), a->kwv[k]);
    }
    scope_set(c, s, "varargs", varargs);
    scope_set(c, s, "kwargs", kwargs);
    jv r = capture(c, s, m->b);
    c->depth--;
    return r;
}

jv jx_call(jctx *c, jv fn, jargs *a) {
    if (fn.t == JV_UNDEF) undefined_error(c, fn);
    if (fn.t != JV_FUNC) jx_fail(c, "'%s' object is not callable", jv_type_name(fn));
    if (fn.u.fn->native) return fn.u.fn->native(c, fn.u.fn->self, a);
    return call_macro(c, fn.u.fn, a);
}

/* ---- operators ---- */

static _Noreturn void bad_operands(jctx *c, const char *op, jv a, jv b) {
    if (a.t == JV_UNDEF) undefined_error(c, a);
    if (b.t == JV_UNDEF) undefined_error(c, b);
    jx_fail(c, "unsupported operand type(s) for %s: '%s' and '%s'", op, jv_type_name(a), jv_type_name(b));
}

static jv concat(jctx *c, jv a, jv b) {
    if (a.t == JV_STR) {
        char *p = ja_alloc(&c->arena, a.u.s.n + b.u.s.n + 1);
        memcpy(p, a.u.s.p, a.u.s.n);
        memcpy(p + a.u.s.n, b.u.s.p, b.u.s.n);
        return jv_str_ref(p, a.u.s.n + b.u.s.n);
    }
    jv l = jv_list(c, a.u.l->n + b.u.l->n);
    l.tuple = a.tuple;
    for (size_t i = 0; i < a.u.l->n; i++) jl_push(c, l, a.u.l->v[i]);
    for (size_t i = 0; i < b.u.l->n; i++) jl_push(c, l, b.u.l->v[i]);
    return l;
}

static jv repeat(jctx *c, jv seq, int64_t times) {
    jv r = seq.t == JV_STR ? jv_strz("") : jv_list(c, 0);
    if (times > 0 && (seq.t == JV_STR ? seq.u.s.n : seq.u.l->n) * (uint64_t)times > 10000000)
        jx_fail(c, "repetition result too large");
    for (int64_t i = 0; i < times; i++) r = concat(c, r, seq);
    return r;
}

static jv int_op(jctx *c, char op, int64_t x, int64_t y) {
    int64_t r = 0;
    bool over = false;
    if (op == '+') over = __builtin_add_overflow(x, y, &r);
    else if (op == '-') over = __builtin_sub_overflow(x, y, &r);
    else if (op == '*') over = __builtin_mul_overflow(x, y, &r);
    else {
        if (y == 0) jx_fail(c, "integer division or modulo by zero");
        if (x == INT64_MIN && y == -1) jx_fail(c, "integer overflow");
        r = op == '/' ? x / y : x % y;
        if (op == '/' && (x % y != 0) && ((x < 0) != (y < 0))) r--; /* floor division */
        if (op == '%' && r != 0 && ((r < 0) != (y < 0))) r += y;
    }
    if (over) jx_fail(c, "integer overflow");
    return jv_int(r);
}

static jv power(jctx *c, jv a, jv b) {
    if (a.t != JV_FLOAT && b.t != JV_FLOAT && jv_num(b) >= 0) {
        int64_t base = (int64_t)jv_num(a), e = (int64_t)jv_num(b), r = 1;
        for (int64_t i = 0; i < e; i++)
            if (__builtin_mul_overflow(r, base, &r)) jx_fail(c, "integer overflow");
        return jv_int(r);
    }
    return jv_float(pow(jv_num(a), jv_num(b)));
}

static jv arith(jctx *c, const char *op, jv a, jv b) {
    bool ints = a.t != JV_FLOAT && b.t != JV_FLOAT;
    double x = jv_num(a), y = jv_num(b);
    if (!strcmp(op, "**")) return power(c, a, b);
    if (!strcmp(op, "/")) {
        if (y == 0) jx_fail(c, "division by zero");
        return jv_float(x / y);
    }
    char o = !strcmp(op, "//") ? '/' : op[0];
    if (ints) return int_op(c, o, a.t == JV_INT ? a.u.i : a.u.b, b.t == JV_INT ? b.u.i : b.u.b);
    if ((o == '/' || o == '%') && y == 0) jx_fail(c, "float division by zero");
    switch (o) {
    case '+': return jv_float(x + y);
    case '-': return jv_float(x - y);
    case '*': return jv_float(x * y);
    case '/': return jv_float(floor(x / y));
    default: return jv_float(x - y * floor(x / y));
    }
}

static jv binop(jctx *c, const char *op, jv a, jv b) {
    if (!strcmp(op, "~")) {
        jv x = jv_stringify(c, a), y = jv_stringify(c, b);
        return concat(c, x, y);
    }
    if (jv_is_num(a) && jv_is_num(b)) return arith(c, op, a, b);
    if (!strcmp(op, "+") && a.t == b.t && (a.t == JV_STR || a.t == JV_LIST)) return concat(c, a, b);
    if (!strcmp(op, "*") && (a.t == JV_STR || a.t == JV_LIST) && (b.t == JV_INT || b.t == JV_BOOL))
        return repeat(c, a, (int64_t)jv_num(b));
    if (!strcmp(op, "*") && (b.t == JV_STR || b.t == JV_LIST) && (a.t == JV_INT || a.t == JV_BOOL))
        return repeat(c, b, (int64_t)jv_num(a));
    bad_operands(c, op, a, b);
}

static bool contains(jctx *c, jv container, jv item) {
    switch (container.t) {
    case JV_STR:
        if (item.t != JV_STR) jx_fail(c, "'in <string>' requires string as left operand, not %s", jv_type_name(item));
        return !item.u.s.n || memmem(container.u.s.p, container.u.s.n, item.u.s.p, item.u.s.n);
    case JV_LIST:
        for (size_t i = 0; i < container.u.l->n; i++)
            if (jv_equal(container.u.l->v[i], item)) return true;
        return false;
    case JV_DICT:
    case JV_NS: return jd_get_v(container, item) != NULL;
    case JV_UNDEF: return false;
    default: jx_fail(c, "argument of type '%s' is not iterable", jv_type_name(container));
    }
}

static bool compare1(jctx *c, const char *op, jv a, jv b) {
    if (!strcmp(op, "==")) return jv_equal(a, b);
    if (!strcmp(op, "!=")) return !jv_equal(a, b);
    if (!strcmp(op, "in")) return contains(c, b, a);
    if (!strcmp(op, "not in")) return !contains(c, b, a);
    if (a.t == JV_UNDEF) undefined_error(c, a);
    if (b.t == JV_UNDEF) undefined_error(c, b);
    int r = jv_compare(c, a, b);
    return !strcmp(op, "<") ? r < 0 : !strcmp(op, "<=") ? r <= 0 : !strcmp(op, ">") ? r > 0 : r >= 0;
}

static jv eval_compare(jctx *c, jscope *sc, const jnode *e) {
    jv left = jx_eval(c, sc, e->list.v[0]);
    for (int i = 1; i < e->list.n; i++) {
        jv right = jx_eval(c, sc, e->list.v[i]);
        if (!compare1(c, e->ops[i - 1], left, right)) return jv_bool(false);
        left = right;
    }
    return jv_bool(true);
}

static jv eval_unary(jctx *c, jscope *sc, const jnode *e) {
    jv v = jx_eval(c, sc, e->a);
    if (v.t == JV_UNDEF) undefined_error(c, v);
    if (!jv_is_num(v)) jx_fail(c, "bad operand type for unary %s: '%s'", e->kind == E_NEG ? "-" : "+", jv_type_name(v));
    if (e->kind == E_POS) return v.t == JV_BOOL ? jv_int(v.u.b) : v;
    if (v.t == JV_FLOAT) return jv_float(-v.u.f);
    int64_t i = v.t == JV_INT ? v.u.i : v.u.b;
    if (i == INT64_MIN) jx_fail(c, "integer overflow");
    return jv_int(-i);
}

static jv eval_literal(jctx *c, jscope *sc, const jnode *e) {
    if (e->kind == E_DICT) {
        jv d = jv_dict(c, (size_t)e->list.n);
        for (int i = 0; i < e->list.n; i++) jd_set(c, d, jx_eval(c, sc, e->list.v[i]), jx_eval(c, sc, e->list2.v[i]));
        return d;
    }
    jv l = jv_list(c, (size_t)e->list.n);
    l.tuple = e->kind == E_TUPLE;
    for (int i = 0; i < e->list.n; i++) jl_push(c, l, jx_eval(c, sc, e->list.v[i]));
    return l;
}

static jv eval_filter(jctx *c, jscope *sc, const jnode *e, jv operand) {
    jargs a;
    eval_args(c, sc, e, 1, &a);
    return jx_filter(c, e->name, operand, &a);
}

jv jx_eval(jctx *c, jscope *sc, const jnode *e) {
    c->line = e->line;
    switch (e->kind) {
    case E_CONST: return e->cval;
    case E_NAME: return jx_scope_get(sc, e->name);
    case E_ATTR: return jx_getattr(c, jx_eval(c, sc, e->a), e->name, strlen(e->name));
    case E_ITEM: {
        jv obj = jx_eval(c, sc, e->a);
        return e->b->kind == E_SLICE ? eval_slice(c, sc, obj, e->b) : jx_getitem(c, obj, jx_eval(c, sc, e->b));
    }
    case E_CALL: {
        jv fn = jx_eval(c, sc, e->a);
        jargs a;
        eval_args(c, sc, e, 0, &a);
        c->line = e->line;
        return jx_call(c, fn, &a);
    }
    case E_FILTER: return eval_filter(c, sc, e, jx_eval(c, sc, e->list.v[0]));
    case E_TEST: {
        jv v = jx_eval(c, sc, e->list.v[0]);
        jargs a;
        eval_args(c, sc, e, 1, &a);
        return jv_bool(jx_test(c, e->name, v, &a) != e->negate);
    }
    case E_NEG:
    case E_POS: return eval_unary(c, sc, e);
    case E_NOT: return jv_bool(!jv_truthy(jx_eval(c, sc, e->a)));
    case E_BINOP: {
        jv a = jx_eval(c, sc, e->a), b = jx_eval(c, sc, e->b);
        c->line = e->line;
        return binop(c, e->op, a, b);
    }
    case E_COMPARE: return eval_compare(c, sc, e);
    case E_AND: {
        jv l = jx_eval(c, sc, e->a);
        return jv_truthy(l) ? jx_eval(c, sc, e->b) : l;
    }
    case E_OR: {
        jv l = jx_eval(c, sc, e->a);
        return jv_truthy(l) ? l : jx_eval(c, sc, e->b);
    }
    case E_COND:
        if (jv_truthy(jx_eval(c, sc, e->a))) return jx_eval(c, sc, e->b);
        return e->c ? jx_eval(c, sc, e->c) : jv_undef("conditional");
    case E_LIST:
    case E_TUPLE:
    case E_DICT: return eval_literal(c, sc, e);
    default: jx_fail(c, "internal: cannot evaluate node %d", (int)e->kind);
    }
}

/* ---- statements ---- */

void jx_iter_items(jctx *c, jv v, jv *out) {
    if (v.t == JV_LIST) {
        *out = v;
        return;
    }
    jv l = jv_list(c, 0);
    if (v.t == JV_DICT || v.t == JV_NS)
        for (size_t i = 0; i < v.u.d->n; i++) jl_push(c, l, v.u.d->k[i]);
    else if (v.t == JV_STR)
        for (size_t i = 0; i < v.u.s.n;) {
            size_t k = 1;
            while (i + k < v.u.s.n && ((unsigned char)v.u.s.p[i + k] & 0xC0) == 0x80) k++;
            jl_push(c, l, jv_str_ref(v.u.s.p + i, k));
            i += k;
        }
    else if (v.t != JV_UNDEF) jx_fail(c, "'%s' object is not iterable", jv_type_name(v));
    *out = l;
}

static void assign_targets(jctx *c, jscope *s, const jnode *n, jv v) {
    if (!n->is_tuple_target) {
        scope_set(c, s, n->names[0], v);
        return;
    }
    jv items;
    jx_iter_items(c, v, &items);
    if (items.u.l->n != (size_t)n->n_names)
        jx_fail(c, "%s values to unpack (expected %d, got %zu)", items.u.l->n > (size_t)n->n_names ? "too many" : "not enough",
                n->n_names, items.u.l->n);
    for (int i = 0; i < n->n_names; i++) scope_set(c, s, n->names[i], items.u.l->v[i]);
}

static jv loop_cycle(jctx *c, jv self, jargs *a) {
    if (!a->npos) jx_fail(c, "loop.cycle() needs at least one argument");
    return a->pos[self.u.i % a->npos];
}

static jv loop_object(jctx *c, jv items, size_t i) {
    size_t n = items.u.l->n;
    jv d = jv_dict(c, 12);
    static const char *const keys[] = {"index", "index0", "revindex", "revindex0", "length"};
    const int64_t vals[] = {(int64_t)i + 1, (int64_t)i, (int64_t)(n - i), (int64_t)(n - i - 1), (int64_t)n};
    for (int k = 0; k < 5; k++) jd_set(c, d, jv_strz(keys[k]), jv_int(vals[k]));
    jd_set(c, d, jv_strz("first"), jv_bool(i == 0));
    jd_set(c, d, jv_strz("last"), jv_bool(i + 1 == n));
    jd_set(c, d, jv_strz("previtem"), i ? items.u.l->v[i - 1] : jv_undef("previtem"));
    jd_set(c, d, jv_strz("nextitem"), i + 1 < n ? items.u.l->v[i + 1] : jv_undef("nextitem"));
    jd_set(c, d, jv_strz("depth"), jv_int(1));
    jd_set(c, d, jv_strz("depth0"), jv_int(0));
    jd_set(c, d, jv_strz("cycle"), jv_func(c, "cycle", loop_cycle, jv_int((int64_t)i)));
    return d;
}

static void exec_for(jctx *c, jscope *sc, const jnode *n) {
    jv items;
    jx_iter_items(c, jx_eval(c, sc, n->a), &items);
    jscope *ls = scope_new(c, sc);
    jnode target = {.names = n->names, .n_names = n->n_names, .is_tuple_target = n->is_tuple_target};
    if (n->c) { /* {% for x in xs if cond %}: filter first, so loop.length counts what remains */
        jv kept = jv_list(c, 0);
        for (size_t i = 0; i < items.u.l->n; i++) {
            assign_targets(c, ls, &target, items.u.l->v[i]);
            if (jv_truthy(jx_eval(c, ls, n->c))) jl_push(c, kept, items.u.l->v[i]);
        }
        items = kept;
    }
    if (!items.u.l->n) {
        jnode body = {.kind = N_BODY, .list = n->list2};
        exec_body(c, ls, &body);
        return;
    }
    for (size_t i = 0; i < items.u.l->n; i++) {
        scope_set(c, ls, "loop", loop_object(c, items, i));
        assign_targets(c, ls, &target, items.u.l->v[i]);
        exec_body(c, ls, n->b);
        int ctl = c->loop_ctl;
        c->loop_ctl = 0;
        if (ctl == 1) break;
    }
}

static void exec_set(jctx *c, jscope *sc, const jnode *n) {
    jv v = jx_eval(c, sc, n->b);
    if (n->a) {
        jv ns = jx_eval(c, sc, n->a);
        if (ns.t != JV_NS) jx_fail(c, "cannot assign attribute on non-namespace object ('%s')", jv_type_name(ns));
        jd_set(c, ns, jv_strz(n->name), v);
        return;
    }
    assign_targets(c, sc, n, v);
}

/* Applies a filter chain whose innermost operand is a placeholder. */
static jv apply_chain(jctx *c, jscope *sc, const jnode *chain, jv v) {
    if (chain->kind != E_FILTER) return v;
    v = apply_chain(c, sc, chain->list.v[0], v);
    return eval_filter(c, sc, chain, v);
}

static void exec(jctx *c, jscope *sc, const jnode *n) {
    c->line = n->line;
    switch (n->kind) {
    case N_TEXT: tk_buf_put(c->out, n->cval.u.s.p, n->cval.u.s.n); return;
    case N_OUTPUT: jv_to_str(c, jx_eval(c, sc, n->a), c->out); return;
    case N_IF:
        if (jv_truthy(jx_eval(c, sc, n->a))) exec_body(c, sc, n->b);
        else if (n->c) exec_body(c, sc, n->c);
        return;
    case N_FOR: exec_for(c, sc, n); return;
    case N_SET: exec_set(c, sc, n); return;
    case N_SET_BLOCK: {
        jv v = capture(c, sc, n->b);
        scope_set(c, sc, n->name, n->c ? apply_chain(c, sc, n->c, v) : v);
        return;
    }
    case N_MACRO: {
        jv f = jv_func(c, n->name, NULL, jv_none());
        f.u.fn->macro = n;
        f.u.fn->closure = sc;
        scope_set(c, sc, n->name, f);
        return;
    }
    case N_FILTER_BLOCK: jv_to_str(c, apply_chain(c, sc, n->c, capture(c, sc, n->b)), c->out); return;
    case N_BREAK: c->loop_ctl = 1; return;
    case N_CONTINUE: c->loop_ctl = 2; return;
    case N_BODY: exec_body(c, sc, n); return;
    default: jv_to_str(c, jx_eval(c, sc, n), c->out);
    }
}

static void exec_body(jctx *c, jscope *sc, const jnode *body) {
    for (int i = 0; i < body->list.n && !c->loop_ctl; i++) exec(c, sc, body->list.v[i]);
}

/* ---- entry points ---- */

px_jinja *px_jinja_compile(const char *src, size_t len, const char *name) {
    px_jinja *t = px_calloc(1, sizeof *t);
    t->name = ja_strndup(&t->arena, name, strlen(name));
    jtoks toks = {0};
    if (jx_lex(&t->arena, src, len, t->name, &toks)) t->root = jx_parse(&t->arena, &toks, t->name);
    if (!t->root) {
        px_jinja_free(t);
        return NULL;
    }
    return t;
}

void px_jinja_free(px_jinja *t) {
    if (!t) return;
    ja_free(&t->arena);
    free(t);
}

static void render_into(jctx *c, const px_jinja *t, const cJSON *vars) {
    jscope *g = scope_new(c, NULL);
    jx_install_globals(c, g);
    c->globals = g;
    const cJSON *it;
    cJSON_ArrayForEach(it, (cJSON_IsObject(vars) ? vars : NULL)) scope_set(c, g, it->string, jv_from_cjson(c, it));
    exec_body(c, scope_new(c, g), t->root);
}

char *px_jinja_render(const px_jinja *t, const cJSON *vars, size_t *len_out) {
    jctx *c = px_calloc(1, sizeof *c);
    jmp_buf jmp;
    char *result = NULL;
    c->tname = t->name;
    c->jmp = &jmp;
    c->out = &c->root_out;
    if (!setjmp(jmp)) {
        render_into(c, t, vars);
        result = tk_buf_detach(&c->root_out, len_out);
    } else {
        px_error_set("%s", c->err);
        for (int i = 0; i < c->nlive; i++) tk_buf_free(c->live[i]);
        tk_buf_free(&c->root_out);
    }
    ja_free(&c->arena);
    free(c);
    return result;
}
