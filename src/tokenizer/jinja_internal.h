/* jinja_internal.h - what the Jinja interpreter's files share: the arena
 * allocator, runtime values, lexer tokens, syntax tree nodes and the render
 * context.
 *
 * Memory: a compiled template owns one arena (tokens and syntax tree); each
 * render owns another (every value created while rendering). Nothing is freed
 * individually, so values can be shared freely and an error can unwind with
 * longjmp without leaking: the arena goes away as a whole.
 *
 * Values follow Python/Jinja2 semantics: undefined, None, bool, int (64-bit),
 * float, str (UTF-8 bytes), list/tuple, dict (insertion ordered),
 * namespace (a mutable dict) and callables (builtins, bound methods, macros).
 */
#ifndef PX_JINJA_INTERNAL_H
#define PX_JINJA_INTERNAL_H

#include "jinja.h"
#include "tok_internal.h"

#include <setjmp.h>

/* ---- arena ---- */
typedef struct ja_block {
    struct ja_block *next;
    size_t used, cap;
    _Alignas(16) char data[];
} ja_block;
typedef struct {
    ja_block *head;
} jarena;
void *ja_alloc(jarena *a, size_t n); /* zeroed, 16-byte aligned */
char *ja_strndup(jarena *a, const char *s, size_t n);
void ja_free(jarena *a);

/* ---- values ---- */
typedef enum { JV_UNDEF, JV_NONE, JV_BOOL, JV_INT, JV_FLOAT, JV_STR, JV_LIST, JV_DICT, JV_NS, JV_FUNC } jtype;
struct jlistv;
struct jdictv;
struct jfunc;
typedef struct jv {
    uint8_t t;
    bool tuple; /* JV_LIST: a tuple */
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            const char *p;
            size_t n;
        } s; /* JV_STR; JV_UNDEF: the name, for messages */
        struct jlistv *l;
        struct jdictv *d; /* JV_DICT and JV_NS */
        struct jfunc *fn;
    } u;
} jv;
typedef struct jlistv {
    jv *v;
    size_t n, cap;
} jlistv;
typedef struct jdictv {
    jv *k, *v;
    size_t n, cap;
} jdictv;

struct jctx;
typedef struct {
    jv *pos;
    int npos;
    const char **kwn;
    jv *kwv;
    int nkw;
} jargs;
typedef jv (*jnative)(struct jctx *c, jv self, jargs *a);
struct jnode;
struct jscope;
typedef struct jfunc {
    const char *name;
    jnative native;          /* builtin or bound method */
    jv self;                 /* bound object */
    const struct jnode *macro; /* a macro when native is NULL */
    struct jscope *closure;
} jfunc;

/* ---- lexer ---- */
typedef enum {
    TK_EOF, TK_TEXT, TK_VAR_BEGIN, TK_VAR_END, TK_BLOCK_BEGIN, TK_BLOCK_END, TK_NAME, TK_STRING, TK_INT, TK_FLOAT, TK_OP
} jtok_kind;
typedef struct {
    jtok_kind kind;
    int line;
    const char *s; /* text, name, string value or operator (NUL-terminated, arena) */
    size_t n;
    int64_t i;
    double f;
} jtok;
typedef struct {
    jtok *v;
    size_t n, cap;
} jtoks;

/* ---- syntax tree ---- */
typedef enum {
    N_TEXT, N_OUTPUT, N_IF, N_FOR, N_SET, N_SET_BLOCK, N_MACRO, N_FILTER_BLOCK, N_BREAK, N_CONTINUE, N_BODY,
    E_CONST, E_NAME, E_ATTR, E_ITEM, E_SLICE, E_CALL, E_FILTER, E_TEST, E_NEG, E_POS, E_NOT, E_BINOP, E_COMPARE,
    E_AND, E_OR, E_COND, E_LIST, E_TUPLE, E_DICT
} jnode_kind;
typedef struct {
    struct jnode **v;
    int n, cap;
} jnodes;
typedef struct jnode {
    jnode_kind kind;
    int line;
    const char *op;   /* E_BINOP operator; E_COMPARE: unused (ops below) */
    const char *name; /* E_NAME, E_ATTR, E_FILTER, E_TEST, N_MACRO, N_SET (simple target), E_CALL kw */
    jv cval;          /* E_CONST */
    struct jnode *a, *b, *c;
    jnodes list;  /* items, positional args, body, compare operands */
    jnodes list2; /* else body, dict values, keyword argument values, macro defaults */
    const char **names; /* keyword names, macro parameters, loop / set targets */
    int n_names;
    const char **ops; /* E_COMPARE operators */
    struct jnode *star, *dstar; /* *args, **kwargs in calls */
    bool negate;      /* E_TEST: "is not" */
    bool is_tuple_target;
} jnode;

struct px_jinja {
    jarena arena;
    jnode *root;
    const char *name;
};

/* lexer / parser (jinja_lex.c, jinja_parse.c): on error they set px_error and return false / NULL */
bool jx_lex(jarena *a, const char *src, size_t len, const char *name, jtoks *out);
jnode *jx_parse(jarena *a, const jtoks *toks, const char *name);

/* ---- rendering ---- */
typedef struct jscope {
    struct jscope *parent;
    const char **names;
    jv *vals;
    int n, cap;
} jscope;
typedef struct jctx {
    jarena arena;
    const char *tname;
    jmp_buf *jmp;
    int line, depth;
    int loop_ctl; /* 1 break, 2 continue */
    tk_buf *out, root_out;
    jscope *globals;
    tk_buf *live[128]; /* temporary buffers to free if an error unwinds */
    int nlive;
    char err[600];
} jctx;
/* Register / release a temporary malloc'd buffer while calls that may fail run. */
void jx_track(jctx *c, tk_buf *b);
void jx_untrack(jctx *c, tk_buf *b);

_Noreturn void jx_fail(jctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* value helpers (jinja_value.c) */
jv jv_undef(const char *name);
jv jv_none(void);
jv jv_bool(bool b);
jv jv_int(int64_t i);
jv jv_float(double f);
jv jv_str(jctx *c, const char *s, size_t n); /* copies */
jv jv_strz(const char *s);                   /* no copy: s must outlive the render */
jv jv_str_ref(const char *s, size_t n);      /* no copy */
jv jv_list(jctx *c, size_t cap);
jv jv_dict(jctx *c, size_t cap);
jv jv_func(jctx *c, const char *name, jnative fn, jv self);
void jl_push(jctx *c, jv list, jv item);
void jd_set(jctx *c, jv dict, jv key, jv val);
jv *jd_get(jv dict, const char *key, size_t n); /* NULL if absent */
jv *jd_get_v(jv dict, jv key);
const char *jv_type_name(jv v);
bool jv_truthy(jv v);
bool jv_equal(jv a, jv b);
int jv_compare(jctx *c, jv a, jv b); /* <0, 0, >0; fails for unorderable types */
bool jv_is_num(jv v);
double jv_num(jv v);
void jv_to_str(jctx *c, jv v, tk_buf *out);  /* Python str() */
void jv_repr(jctx *c, jv v, tk_buf *out);    /* Python repr() */
jv jv_stringify(jctx *c, jv v);              /* str() as a value */
void jv_float_repr(double f, tk_buf *out);
typedef struct {
    int indent; /* < 0: none */
    const char *item_sep, *key_sep;
    bool ensure_ascii, sort_keys;
} jjson_opts;
void jv_to_json(jctx *c, jv v, const jjson_opts *o, int level, tk_buf *out);
jv jv_from_cjson(jctx *c, const cJSON *j);
size_t ju_len(const char *s, size_t n); /* code points */
/* byte offset of code point index i (clamped to n) */
size_t ju_offset(const char *s, size_t n, size_t i);

/* evaluation (jinja_eval.c) */
jv jx_eval(jctx *c, jscope *sc, const jnode *e);
jv jx_call(jctx *c, jv fn, jargs *a);
jv jx_getattr(jctx *c, jv obj, const char *name, size_t n);
jv jx_getitem(jctx *c, jv obj, jv key);
void jx_iter_items(jctx *c, jv v, jv *out_list); /* list of items for iteration */
jv jx_scope_get(jscope *sc, const char *name);

/* builtins (jinja_builtins.c) */
jv jx_filter(jctx *c, const char *name, jv v, jargs *a);
bool jx_test(jctx *c, const char *name, jv v, jargs *a);
jv jx_method(jctx *c, jv obj, const char *name, size_t n); /* bound method or undefined */
void jx_install_globals(jctx *c, jscope *g);
/* argument helpers */
jv ja_arg(jargs *a, int pos, const char *kw, jv dflt);

#endif
