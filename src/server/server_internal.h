/* server_internal.h - the parts of the server module and how they meet:
 *
 *   util.c      string buffers, UTF-8 checks, OpenAI error bodies, ids
 *   request.c   a request body -> validated px_server_params (sampling,
 *               stop strings, prompt tokens via the chat template)
 *   textproc.c  generated text -> (reasoning, content): stop strings with
 *               hold-back, then the <think>...</think> split
 *   job.c       one generation: engine submission, the event queue the
 *               engine callback fills, the pump that turns events into text
 *   respond.c   OpenAI JSON: non-stream bodies, SSE chunks, logprobs, usage
 *   metrics.c   counters and histograms, Prometheus text
 *   http.c      libmicrohttpd: routing, bodies, auth, SSE responses
 *
 * None of this is the module's interface (server.h); unit tests use it.
 */
#ifndef PX_SERVER_INTERNAL_H
#define PX_SERVER_INTERNAL_H

#include "server.h"
#include "px_base.h"
#include <pthread.h>
#include <stdatomic.h>

/* ---- util.c ---- */

typedef struct {
    char *data; /* NUL-terminated when non-NULL */
    size_t len, cap;
} px_sbuf;

void px_sbuf_add(px_sbuf *b, const char *s, size_t n);
void px_sbuf_adds(px_sbuf *b, const char *s);
void px_sbuf_printf(px_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void px_sbuf_free(px_sbuf *b);
/* Returns the (malloc'd, NUL-terminated) contents and empties b. */
char *px_sbuf_take(px_sbuf *b);

bool px_server_utf8_valid(const char *s, size_t n);
/* Appends s to out with every invalid UTF-8 sequence (and NUL) replaced by U+FFFD. */
void px_server_utf8_sanitize(const char *s, size_t n, px_sbuf *out);

typedef struct {
    int status;       /* HTTP status */
    const char *type; /* "invalid_request_error", "server_error", ... */
    char param[64];   /* "" -> null */
    char code[64];    /* "" -> null */
    char message[512];
} px_server_error;

/* Fills e; type follows from the status. Returns -1. */
int px_server_fail(px_server_error *e, int status, const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* {"error":{"message","type","param","code"}} (new string). */
char *px_server_error_json(const px_server_error *e);
/* "PREFIX-" + 24 random hex digits. */
void px_server_make_id(const char *prefix, char *out, size_t cap);

/* ---- request.c ---- */

typedef enum { PX_API_CHAT, PX_API_COMPLETIONS } px_api_kind;
typedef enum { PX_THINK_OFF, PX_THINK_START, PX_THINK_IN, PX_THINK_DONE } px_think_state;

typedef struct {
    const px_tokenizer *tok;
    const char *model_name;
    int context_length;
    int max_tokens_limit;
} px_server_config;

typedef struct {
    px_api_kind kind;
    bool stream, include_usage, echo;
    int logprobs;            /* -1: none; else top logprobs per token (0..20) */
    char **stop;             /* stop strings */
    int n_stop;
    px_sampling sampling;    /* its arrays point into the fields below */
    int32_t *bias_ids, *stop_ids;
    float *bias_values;
    int32_t *prompt;
    int n_prompt;
    char *echo_text;         /* completions with echo: the prompt text */
    px_think_state think;    /* START/IN: split <think> reasoning out of the output */
} px_server_params;

int px_server_parse_request(const px_server_config *cfg, px_api_kind kind, const char *body, size_t len,
                            px_server_params *p, px_server_error *e);
void px_server_params_free(px_server_params *p);

/* ---- textproc.c ---- */

typedef struct {
    char **stop;
    int n_stop;
    px_sbuf hold;  /* text that may be the start of a stop string */
    bool stopped;
    px_think_state think;
    px_sbuf thold; /* text that may be (part of) a <think> tag */
    bool reasoning_started, content_started;
} px_textproc;

void px_textproc_init(px_textproc *tp, char **stop, int n_stop, px_think_state think);
/* Routes new text; appends what is final to reasoning/content. Returns true
 * when a stop string matched (the text from it on is dropped; the processor
 * takes no more text). */
bool px_textproc_feed(px_textproc *tp, const char *text, size_t len, px_sbuf *reasoning, px_sbuf *content);
/* End of generation: releases what was held back. */
void px_textproc_flush(px_textproc *tp, px_sbuf *reasoning, px_sbuf *content);
void px_textproc_free(px_textproc *tp);

/* ---- metrics.c ---- */

typedef enum { PX_EP_CHAT, PX_EP_COMPLETIONS, PX_EP_MODELS, PX_EP_HEALTH, PX_EP_METRICS, PX_EP_OTHER, PX_EP_COUNT } px_endpoint;

typedef struct px_server_metrics px_server_metrics;
px_server_metrics *px_server_metrics_new(void);
void px_server_metrics_free(px_server_metrics *m);
void px_server_metrics_request(px_server_metrics *m, px_endpoint ep, int status);
void px_server_metrics_ttft(px_server_metrics *m, double seconds);
void px_server_metrics_itl(px_server_metrics *m, double seconds);
/* A finished generation: reason "stop", "length", "abort" or "error". */
void px_server_metrics_done(px_server_metrics *m, const char *reason, double e2e_seconds, int prompt_tokens,
                            int completion_tokens, int cached_tokens);
void px_server_metrics_render(px_server_metrics *m, const px_engine_stats_t *es, int in_flight, px_sbuf *out);

/* ---- the server object (http.c) ---- */

struct px_server {
    px_server_backend backend; /* the engine, or the cluster scheduler */
    /* the model (px_server_set_model): cfg.tok NULL while there is none.
     * Generations copy cfg under model_mu and count themselves in
     * model_users until they end; the model changes only at model_users 0. */
    pthread_mutex_t model_mu;
    px_server_config cfg;
    px_server_model model;     /* release/owner of cfg.tok */
    int model_users;
    int max_tokens_opt;        /* px_server_options.max_tokens_limit */
    char *host, *api_key, *model_name;
    int port;
    size_t max_body;
    int max_connections, max_requests;
    long created;
    struct MHD_Daemon *daemon;
    px_server_metrics *metrics;
    atomic_int in_flight;
    atomic_bool stopping;
};

/* ---- job.c ---- */

typedef struct {
    int32_t token;
    float logprob;
    int n_top;
    int32_t top_ids[PX_MAX_TOP_LOGPROBS];
    float top_logprobs[PX_MAX_TOP_LOGPROBS];
    size_t text_offset;
} px_lp_entry;

typedef struct {
    px_sbuf content, reasoning;
    px_lp_entry *lp;
    int n_lp, cap_lp;
} px_delta;

typedef enum { PX_END_NONE, PX_END_STOP, PX_END_LENGTH, PX_END_ABORT, PX_END_ERROR } px_end;

typedef struct px_server_job {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    /* filled by the engine callback (under mu) */
    px_token_event *q;
    double *q_time;
    int q_len, q_cap;
    bool engine_done;
    char *engine_error;
    /* HTTP side (one thread at a time) */
    px_server *srv;
    px_server_config cfg;   /* the model it runs on (held until job_free) */
    uint64_t engine_id;
    px_server_params p;
    px_tokenizer_stream *detok;
    px_textproc tp;
    int fd;               /* the client's socket: polled for a hang-up */
    char id[48];
    long created;
    double t_start, t_first, t_last;
    int prompt_tokens, cached_tokens, completion_tokens;
    size_t text_len;      /* bytes of generated text so far (logprob offsets) */
    px_end end;           /* set once: the HTTP side's final state */
    bool gone;            /* the client went away / the server stops */
    px_delta delta;       /* produced by the last pump */
    px_delta total;       /* non-stream: everything */
    /* SSE */
    px_sbuf out;
    size_t out_pos;
    bool sent_start, sent_done;
} px_server_job;

/* The current model for one generation: copies it into *cfg and counts the
 * caller as a user (false: no model). Every true is matched by one
 * px_server_model_release(); a job does that when it is freed. */
bool px_server_model_acquire(px_server *s, px_server_config *cfg);
void px_server_model_release(px_server *s);

/* Takes ownership of *p (zeroed) and of one model use (cfg: from
 * px_server_model_acquire). */
px_server_job *px_server_job_new(px_server *srv, const px_server_config *cfg, px_server_params *p, int fd,
                                 double t_start);
void px_server_job_ref(px_server_job *j);
void px_server_job_unref(px_server_job *j);
int px_server_job_submit(px_server_job *j, px_server_error *e);
/* Waits up to timeout_ms for engine events and turns them into j->delta.
 * Returns 1 when something happened (j->end may now be set), 0 on timeout,
 * -1 when the client is gone or the server stops (the request is aborted). */
int px_server_job_pump(px_server_job *j, int timeout_ms);
void px_server_job_abort(px_server_job *j);
/* The client left or the server stops: abort and end the job as "abort". */
void px_server_job_cancel(px_server_job *j);
void px_delta_clear(px_delta *d);
void px_delta_append(px_delta *dst, const px_delta *src);
void px_delta_free(px_delta *d);

/* ---- respond.c ---- */

const char *px_server_finish_reason(px_end end);
/* The non-stream response body (new string). */
char *px_server_final_json(px_server_job *j);
/* Appends the SSE events for j->delta (and, once j->end is set, the final
 * chunk, usage and [DONE]) to j->out. */
void px_server_sse_emit(px_server_job *j);

#endif
