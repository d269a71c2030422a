/* jinja_parse.c - the template parser: tokens to a syntax tree.
 *
 * A recursive-descent parser with Jinja2's grammar and operator precedence
 * (lowest first): conditional expression `a if c else b`, or, and, not,
 * comparisons (==, !=, <, <=, >, >=, in, not in; chainable), + -, ~,
 * * / // %, **, unary - +, then primaries with postfix .attr / [index] /
 * [a:b:c] / (call) and filters (|f(args)) and tests (is [not] t(args)).
 * Statements: if/elif/else, for (tuple targets, `if` filter, else), set
 * (name, tuple, namespace attribute, block form), macro, filter blocks,
 * break/continue, transformers' generation blocks. Anything else is an
 * error naming the construct and its line. Errors unwind with longjmp; all
 * nodes live in the template's arena.
 */
#include "jinja_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    jarena *a;
    const jtoks *t;
    size_t pos;
    const char *name;
    jmp_buf jmp;
} parser;

static _Noreturn void perr(parser *P, const char *fmt, const char *arg) {
    char msg[256];
    snprintf(msg, sizeof msg, fmt, arg ? arg : "");
    px_error_set("%s line %d: %s", P->name, P->t->v[P->pos].line, msg);
    longjmp(P->jmp, 1);
}

static const jtok *cur(parser *P) { return &P->t->v[P->pos]; }
static const jtok *peek(parser *P, size_t k) {
    return P->pos + k < P->t->n ? &P->t->v[P->pos + k] : &P->t->v[P->t->n - 1];
}
static void advance(parser *P) {
    if (cur(P)->kind != TK_EOF) P->pos++;
}
static bool is_op(parser *P, const char *op) { return cur(P)->kind == TK_OP && !strcmp(cur(P)->s, op); }
static bool is_name(parser *P, const char *n) { return cur(P)->kind == TK_NAME && !strcmp(cur(P)->s, n); }
static bool skip_op(parser *P, const char *op) {
    if (!is_op(P, op)) return false;
    advance(P);
    return true;
}
static bool skip_name(parser *P, const char *n) {
    if (!is_name(P, n)) return false;
    advance(P);
    return true;
}
static void expect_op(parser *P, const char *op) {
    if (!skip_op(P, op)) perr(P, "expected '%s'", op);
}
static const char *expect_name(parser *P) {
    if (cur(P)->kind != TK_NAME) perr(P, "expected a name", NULL);
    const char *s = cur(P)->s;
    advance(P);
    return s;
}
static void expect_block_end(parser *P) {
    if (cur(P)->kind != TK_BLOCK_END) perr(P, "expected '%%}' (end of the statement)", NULL);
    advance(P);
}

static jnode *mk(parser *P, jnode_kind kind) {
    jnode *n = ja_alloc(P->a, sizeof *n);
    n->kind = kind;
    n->line = cur(P)->line;
    return n;
}

static void add(parser *P, jnodes *l, jnode *n) {
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 4;
        jnode **v = ja_alloc(P->a, (size_t)cap * sizeof *v);
        if (l->n) memcpy(v, l->v, (size_t)l->n * sizeof *v);
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = n;
}

static void add_name(parser *P, jnode *n, const char *name) {
    const char **v = ja_alloc(P->a, (size_t)(n->n_names + 1) * sizeof *v);
    if (n->n_names) memcpy(v, n->names, (size_t)n->n_names * sizeof *v);
    v[n->n_names++] = name;
    n->names = v;
}

static jnode *parse_expr(parser *P);
static jnode *parse_or(parser *P);
static jnode *parse_unary(parser *P, bool with_filter);
static jnode *parse_primary(parser *P);
static jnode *parse_postfix(parser *P, jnode *n);

/* ---- expressions ---- */

static jnode *parse_cond(parser *P) {
    jnode *e = parse_or(P);
    while (skip_name(P, "if")) {
        jnode *c = mk(P, E_COND);
        c->a = parse_or(P);
        c->b = e;
        c->c = skip_name(P, "else") ? parse_cond(P) : NULL;
        e = c;
    }
    return e;
}

static jnode *parse_expr(parser *P) { return parse_cond(P); }

static jnode *binary(parser *P, jnode_kind kind, const char *op, jnode *l, jnode *r) {
    jnode *n = mk(P, kind);
    n->op = op;
    n->a = l;
    n->b = r;
    return n;
}

static jnode *parse_not(parser *P);
static jnode *parse_and(parser *P) {
    jnode *l = parse_not(P);
    while (skip_name(P, "and")) l = binary(P, E_AND, "and", l, parse_not(P));
    return l;
}

static jnode *parse_or(parser *P) {
    jnode *l = parse_and(P);
    while (skip_name(P, "or")) l = binary(P, E_OR, "or", l, parse_and(P));
    return l;
}

static jnode *parse_math1(parser *P);

static const char *compare_op(parser *P) {
    static const char *const ops[] = {"==", "!=", "<", "<=", ">", ">="};
    for (size_t i = 0; i < PX_ARRAY_LEN(ops); i++)
        if (skip_op(P, ops[i])) return ops[i];
    if (skip_name(P, "in")) return "in";
    if (is_name(P, "not") && peek(P, 1)->kind == TK_NAME && !strcmp(peek(P, 1)->s, "in")) {
        P->pos += 2;
        return "not in";
    }
    return NULL;
}

static jnode *parse_compare(parser *P) {
    jnode *first = parse_math1(P), *n = NULL;
    const char *op;
    while ((op = compare_op(P))) {
        if (!n) {
            n = mk(P, E_COMPARE);
            add(P, &n->list, first);
        }
        const char **ops = ja_alloc(P->a, (size_t)n->list.n * sizeof *ops);
        if (n->list.n > 1) memcpy(ops, n->ops, (size_t)(n->list.n - 1) * sizeof *ops);
        ops[n->list.n - 1] = op;
        n->ops = ops;
        add(P, &n->list, parse_math1(P));
    }
    return n ? n : first;
}

static jnode *parse_not(parser *P) {
    if (skip_name(P, "not")) {
        jnode *n = mk(P, E_NOT);
        n->a = parse_not(P);
        return n;
    }
    return parse_compare(P);
}

static jnode *parse_pow(parser *P) {
    jnode *l = parse_unary(P, true);
    while (skip_op(P, "**")) l = binary(P, E_BINOP, "**", l, parse_unary(P, true));
    return l;
}

static jnode *parse_math2(parser *P) {
    jnode *l = parse_pow(P);
    for (;;) {
        const char *op = is_op(P, "*") ? "*" : is_op(P, "/") ? "/" : is_op(P, "//") ? "//" : is_op(P, "%") ? "%" : NULL;
        if (!op) return l;
        advance(P);
        l = binary(P, E_BINOP, op, l, parse_pow(P));
    }
}

static jnode *parse_concat(parser *P) {
    jnode *l = parse_math2(P);
    while (skip_op(P, "~")) l = binary(P, E_BINOP, "~", l, parse_math2(P));
    return l;
}

static jnode *parse_math1(parser *P) {
    jnode *l = parse_concat(P);
    for (;;) {
        const char *op = is_op(P, "+") ? "+" : is_op(P, "-") ? "-" : NULL;
        if (!op) return l;
        advance(P);
        l = binary(P, E_BINOP, op, l, parse_concat(P));
    }
}

/* (args) of a call, filter or test into n->list / names+list2 / star / dstar. */
static void parse_call_args(parser *P, jnode *n) {
    expect_op(P, "(");
    for (int count = 0; !skip_op(P, ")"); count++) {
        if (count) expect_op(P, ",");
        if (skip_op(P, ")")) break; /* trailing comma */
        if (skip_op(P, "**")) n->dstar = parse_expr(P);
        else if (skip_op(P, "*")) n->star = parse_expr(P);
        else if (cur(P)->kind == TK_NAME && peek(P, 1)->kind == TK_OP && !strcmp(peek(P, 1)->s, "=")) {
            add_name(P, n, expect_name(P));
            advance(P);
            add(P, &n->list2, parse_expr(P));
        } else {
            if (n->n_names) perr(P, "positional argument after a keyword argument", NULL);
            add(P, &n->list, parse_expr(P));
        }
    }
}

static const char *dotted_name(parser *P) {
    const char *s = expect_name(P);
    while (is_op(P, ".") && peek(P, 1)->kind == TK_NAME) {
        advance(P);
        size_t a = strlen(s), b = strlen(cur(P)->s);
        char *j = ja_alloc(P->a, a + b + 2);
        memcpy(j, s, a);
        j[a] = '.';
        memcpy(j + a + 1, cur(P)->s, b);
        s = j;
        advance(P);
    }
    return s;
}

static jnode *parse_test(parser *P, jnode *operand) {
    jnode *n = mk(P, E_TEST);
    n->negate = skip_name(P, "not");
    n->name = dotted_name(P);
    add(P, &n->list, operand);
    jtok_kind k = cur(P)->kind;
    if (is_op(P, "(")) parse_call_args(P, n);
    else if ((k == TK_NAME || k == TK_STRING || k == TK_INT || k == TK_FLOAT || is_op(P, "[") || is_op(P, "{")) &&
             !is_name(P, "else") && !is_name(P, "or") && !is_name(P, "and") && !is_name(P, "is"))
        add(P, &n->list, parse_postfix(P, parse_primary(P)));
    return n;
}

static jnode *parse_filter_expr(parser *P, jnode *n) {
    for (;;) {
        if (skip_op(P, "|")) {
            jnode *f = mk(P, E_FILTER);
            f->name = dotted_name(P);
            add(P, &f->list, n);
            if (is_op(P, "(")) parse_call_args(P, f);
            n = f;
        } else if (skip_name(P, "is")) n = parse_test(P, n);
        else if (is_op(P, "(")) {
            jnode *c = mk(P, E_CALL);
            c->a = n;
            parse_call_args(P, c);
            n = c;
        } else return n;
    }
}

static jnode *parse_unary(parser *P, bool with_filter) {
    jnode *n;
    if (is_op(P, "-") || is_op(P, "+")) {
        n = mk(P, is_op(P, "-") ? E_NEG : E_POS);
        advance(P);
        n->a = parse_unary(P, false);
    } else n = parse_primary(P);
    n = parse_postfix(P, n);
    return with_filter ? parse_filter_expr(P, n) : n;
}

/* One subscript element: an expression or a slice a:b:c. */
static jnode *parse_subscribed(parser *P) {
    jnode *start = NULL;
    if (!is_op(P, ":")) {
        start = parse_expr(P);
        if (!is_op(P, ":")) return start;
    }
    advance(P);
    jnode *s = mk(P, E_SLICE);
    s->a = start;
    if (!is_op(P, "]") && !is_op(P, ",") && !is_op(P, ":")) s->b = parse_expr(P);
    if (skip_op(P, ":") && !is_op(P, "]") && !is_op(P, ",")) s->c = parse_expr(P);
    return s;
}

static jnode *parse_subscript(parser *P, jnode *obj) {
    jnode *n = mk(P, E_ITEM), *idx = parse_subscribed(P);
    if (is_op(P, ",")) {
        jnode *t = mk(P, E_TUPLE);
        add(P, &t->list, idx);
        while (skip_op(P, ",") && !is_op(P, "]")) add(P, &t->list, parse_subscribed(P));
        idx = t;
    }
    expect_op(P, "]");
    n->a = obj;
    n->b = idx;
    return n;
}

static jnode *parse_postfix(parser *P, jnode *n) {
    for (;;) {
        if (is_op(P, ".")) {
            advance(P);
            if (cur(P)->kind == TK_INT) {
                jnode *i = mk(P, E_ITEM), *k = mk(P, E_CONST);
                k->cval = jv_int(cur(P)->i);
                advance(P);
                i->a = n;
                i->b = k;
                n = i;
                continue;
            }
            jnode *a = mk(P, E_ATTR);
            a->name = expect_name(P);
            a->a = n;
            n = a;
        } else if (skip_op(P, "[")) n = parse_subscript(P, n);
        else if (is_op(P, "(")) {
            jnode *c = mk(P, E_CALL);
            c->a = n;
            parse_call_args(P, c);
            n = c;
        } else return n;
    }
}

/* Comma-separated expressions; a tuple when there is a comma. */
static jnode *parse_tuple(parser *P, bool with_cond, const char *close) {
    jnode *first = NULL, *t = NULL;
    for (;;) {
        if (first && !skip_op(P, ",")) break;
        if (close && is_op(P, close)) break;
        if (cur(P)->kind == TK_BLOCK_END || cur(P)->kind == TK_VAR_END || is_op(P, "=") || is_name(P, "in") ||
            is_name(P, "if") || is_name(P, "recursive"))
            break;
        jnode *e = with_cond ? parse_expr(P) : parse_or(P);
        if (!first) first = e;
        else {
            if (!t) {
                t = mk(P, E_TUPLE);
                add(P, &t->list, first);
            }
            add(P, &t->list, e);
        }
        if (!is_op(P, ",")) break;
        if (!t) {
            t = mk(P, E_TUPLE);
            add(P, &t->list, first);
        }
    }
    if (!first) {
        if (close) return mk(P, E_TUPLE); /* () */
        perr(P, "expected an expression", NULL);
    }
    return t ? t : first;
}

static jnode *parse_list(parser *P) {
    jnode *n = mk(P, E_LIST);
    while (!skip_op(P, "]")) {
        if (n->list.n) expect_op(P, ",");
        if (skip_op(P, "]")) break;
        add(P, &n->list, parse_expr(P));
    }
    return n;
}

static jnode *parse_dict(parser *P) {
    jnode *n = mk(P, E_DICT);
    while (!skip_op(P, "}")) {
        if (n->list.n) expect_op(P, ",");
        if (skip_op(P, "}")) break;
        add(P, &n->list, parse_expr(P));
        expect_op(P, ":");
        add(P, &n->list2, parse_expr(P));
    }
    return n;
}

static jnode *const_node(parser *P, jv v) {
    jnode *n = mk(P, E_CONST);
    n->cval = v;
    advance(P);
    return n;
}

static jnode *parse_primary(parser *P) {
    const jtok *t = cur(P);
    if (t->kind == TK_NAME) {
        if (!strcmp(t->s, "true") || !strcmp(t->s, "True")) return const_node(P, jv_bool(true));
        if (!strcmp(t->s, "false") || !strcmp(t->s, "False")) return const_node(P, jv_bool(false));
        if (!strcmp(t->s, "none") || !strcmp(t->s, "None")) return const_node(P, jv_none());
        jnode *n = mk(P, E_NAME);
        n->name = t->s;
        advance(P);
        return n;
    }
    if (t->kind == TK_STRING) {
        tk_buf b = {0};
        while (cur(P)->kind == TK_STRING) {
            tk_buf_put(&b, cur(P)->s, cur(P)->n);
            advance(P);
        }
        jnode *n = mk(P, E_CONST);
        n->cval = jv_str_ref(ja_strndup(P->a, b.p ? b.p : "", b.n), b.n);
        tk_buf_free(&b);
        return n;
    }
    if (t->kind == TK_INT) return const_node(P, jv_int(t->i));
    if (t->kind == TK_FLOAT) return const_node(P, jv_float(t->f));
    if (skip_op(P, "(")) {
        jnode *e = parse_tuple(P, true, ")");
        expect_op(P, ")");
        return e;
    }
    if (skip_op(P, "[")) return parse_list(P);
    if (skip_op(P, "{")) return parse_dict(P);
    perr(P, "unexpected '%s' in an expression", t->kind == TK_EOF ? "end of template" : t->kind == TK_OP ? t->s : "tag end");
}

/* ---- statements ---- */

static jnode *parse_body(parser *P, const char *const *ends, const char **which);

/* A for / set target: a name, names separated by commas, or ns.attr. */
static jnode *parse_target(parser *P, bool allow_attr) {
    jnode *n = mk(P, N_SET);
    bool paren = skip_op(P, "(");
    do {
        if (paren && is_op(P, ")")) break;
        add_name(P, n, expect_name(P));
        if (allow_attr && n->n_names == 1 && skip_op(P, ".")) {
            n->a = mk(P, E_NAME);
            n->a->name = n->names[0];
            n->name = expect_name(P);
            return n;
        }
    } while (skip_op(P, ","));
    if (paren) expect_op(P, ")");
    n->is_tuple_target = n->n_names > 1 || paren;
    return n;
}

static jnode *parse_if(parser *P) {
    jnode *n = mk(P, N_IF);
    n->a = parse_expr(P);
    expect_block_end(P);
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    const char *which;
    n->b = parse_body(P, ends, &which);
    advance(P);
    if (!strcmp(which, "elif")) {
        jnode *body = mk(P, N_BODY);
        add(P, &body->list, parse_if(P));
        n->c = body;
        return n;
    }
    if (!strcmp(which, "else")) {
        expect_block_end(P);
        static const char *const end[] = {"endif", NULL};
        n->c = parse_body(P, end, &which);
        advance(P);
    }
    expect_block_end(P);
    return n;
}

static jnode *parse_for(parser *P) {
    jnode *n = mk(P, N_FOR), *target = parse_target(P, false);
    n->names = target->names;
    n->n_names = target->n_names;
    n->is_tuple_target = target->is_tuple_target;
    if (!skip_name(P, "in")) perr(P, "expected 'in' in a for loop", NULL);
    n->a = parse_tuple(P, false, NULL);
    if (skip_name(P, "if")) n->c = parse_expr(P);
    if (skip_name(P, "recursive")) perr(P, "recursive for loops are not supported", NULL);
    expect_block_end(P);
    static const char *const ends[] = {"else", "endfor", NULL};
    const char *which;
    n->b = parse_body(P, ends, &which);
    advance(P);
    if (!strcmp(which, "else")) {
        expect_block_end(P);
        static const char *const end[] = {"endfor", NULL};
        jnode *alt = parse_body(P, end, &which);
        n->list2 = alt->list;
        advance(P);
    }
    expect_block_end(P);
    return n;
}

static jnode *parse_set(parser *P) {
    jnode *n = parse_target(P, true);
    if (skip_op(P, "=")) {
        n->b = parse_tuple(P, true, NULL);
        expect_block_end(P);
        return n;
    }
    if (n->a || n->is_tuple_target) perr(P, "a block set needs a single name", NULL);
    n->kind = N_SET_BLOCK;
    n->name = n->names[0];
    if (is_op(P, "|")) n->c = parse_filter_expr(P, mk(P, E_CONST)); /* filter chain on a placeholder */
    expect_block_end(P);
    static const char *const end[] = {"endset", NULL};
    const char *which;
    n->b = parse_body(P, end, &which);
    advance(P);
    expect_block_end(P);
    return n;
}

static jnode *parse_macro(parser *P) {
    jnode *n = mk(P, N_MACRO);
    n->name = expect_name(P);
    expect_op(P, "(");
    while (!skip_op(P, ")")) {
        if (n->n_names) expect_op(P, ",");
        if (skip_op(P, ")")) break;
        add_name(P, n, expect_name(P));
        add(P, &n->list2, skip_op(P, "=") ? parse_expr(P) : NULL);
    }
    expect_block_end(P);
    static const char *const end[] = {"endmacro", NULL};
    const char *which;
    n->b = parse_body(P, end, &which);
    advance(P);
    if (cur(P)->kind == TK_NAME) advance(P); /* {% endmacro name %} */
    expect_block_end(P);
    return n;
}

static jnode *parse_filter_block(parser *P) {
    jnode *n = mk(P, N_FILTER_BLOCK), *f = mk(P, E_FILTER);
    f->name = dotted_name(P);
    add(P, &f->list, mk(P, E_CONST)); /* placeholder for the rendered body */
    if (is_op(P, "(")) parse_call_args(P, f);
    n->c = parse_filter_expr(P, f);
    expect_block_end(P);
    static const char *const end[] = {"endfilter", NULL};
    const char *which;
    n->b = parse_body(P, end, &which);
    advance(P);
    expect_block_end(P);
    return n;
}

static jnode *parse_statement(parser *P) {
    const char *kw = cur(P)->kind == TK_NAME ? cur(P)->s : NULL;
    if (!kw) perr(P, "expected a statement name after '{%%'", NULL);
    advance(P);
    if (!strcmp(kw, "if")) return parse_if(P);
    if (!strcmp(kw, "for")) return parse_for(P);
    if (!strcmp(kw, "set")) return parse_set(P);
    if (!strcmp(kw, "macro")) return parse_macro(P);
    if (!strcmp(kw, "filter")) return parse_filter_block(P);
    if (!strcmp(kw, "break") || !strcmp(kw, "continue")) {
        jnode *n = mk(P, !strcmp(kw, "break") ? N_BREAK : N_CONTINUE);
        expect_block_end(P);
        return n;
    }
    if (!strcmp(kw, "generation")) { /* transformers' assistant-mask marker: render the body */
        expect_block_end(P);
        static const char *const end[] = {"endgeneration", NULL};
        const char *which;
        jnode *body = parse_body(P, end, &which);
        advance(P);
        expect_block_end(P);
        return body;
    }
    P->pos--;
    perr(P, "unsupported template construct '{%% %s %%}'", kw);
}

/* Statements until a tag whose keyword is one of ends; returns with the
 * '{%' consumed and the keyword (stored in *which) next. ends NULL: to EOF. */
static jnode *parse_body(parser *P, const char *const *ends, const char **which) {
    jnode *body = mk(P, N_BODY);
    for (;;) {
        const jtok *t = cur(P);
        if (t->kind == TK_EOF) {
            if (ends) {
                int last = 0;
                while (ends[last + 1]) last++;
                perr(P, "missing '{%% %s %%}'", ends[last]);
            }
            return body;
        }
        if (t->kind == TK_TEXT) {
            jnode *n = mk(P, N_TEXT);
            n->cval = jv_str_ref(t->s, t->n);
            add(P, &body->list, n);
            advance(P);
        } else if (t->kind == TK_VAR_BEGIN) {
            advance(P);
            jnode *n = mk(P, N_OUTPUT);
            n->a = parse_tuple(P, true, NULL);
            if (cur(P)->kind != TK_VAR_END) perr(P, "expected '}}' (end of the expression)", NULL);
            advance(P);
            add(P, &body->list, n);
        } else if (t->kind == TK_BLOCK_BEGIN) {
            const jtok *kw = peek(P, 1);
            for (int i = 0; ends && ends[i]; i++)
                if (kw->kind == TK_NAME && !strcmp(kw->s, ends[i])) {
                    P->pos++; /* the caller consumes the keyword */
                    *which = ends[i];
                    return body;
                }
            advance(P);
            add(P, &body->list, parse_statement(P));
        } else perr(P, "unexpected token outside a tag", NULL);
    }
}

jnode *jx_parse(jarena *a, const jtoks *toks, const char *name) {
    parser *P = px_calloc(1, sizeof *P);
    P->a = a;
    P->t = toks;
    P->name = name;
    jnode *root = NULL;
    if (!setjmp(P->jmp)) root = parse_body(P, NULL, NULL);
    free(P);
    return root;
}
