/* setup.c - choosing the model of a running scheduler (`parallax run` with
 * or without -m; the web UI's Setup view) and the routes behind Setup and
 * Join.
 *
 *   px_sched_setup()       resolve the model argument (a directory, e.g. a
 *                          listed model's path, or a Hugging Face repo id:
 *                          configs + tokenizer fetched, or found in the cache), load its config, tokenizer and
 *                          chat template, build an empty membership for it,
 *                          then switch: through px_server_set_model(), whose
 *                          commit callback swaps the scheduler's model while
 *                          no generation is in flight and none can start
 *                          (409 otherwise), so the server's tokenizer and the
 *                          workers' model change together.
 *   px_sched_models_json() the candidates: the current model, every
 *                          --model-dir (itself, or its subdirectories, with a
 *                          config.json), every snapshot in the Hugging Face
 *                          cache; with architecture, layers, hidden size,
 *                          context, and the bytes of weights on disk (the
 *                          memory the model needs), or an estimate from
 *                          config.json when the files are not here.
 *   px_sched_route()       GET /cluster/models, POST /cluster/setup,
 *                          GET /cluster/join. Access: a request from a page
 *                          of another origin is refused (403) on all three.
 *                          setup changes the cluster: with an API key it
 *                          needs the key (401), without one only loopback
 *                          clients may call it (403). join hands out the join
 *                          secret: loopback clients or the API key. models
 *                          lists local paths: loopback clients or the API
 *                          key, like join. "Loopback" also
 *                          needs a loopback Host header (no DNS rebinding).
 * Errors are OpenAI error bodies with a status: 400 bad input, 401/403
 * access, 404 unknown model, 405 method, 409 busy. */
#include "hub.h"
#include "px_base.h"
#include "sched_internal.h"
#include "tokenizer.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_CANDIDATES 256
#define MAX_MODEL_ARG 4096

static void model_clear(sched_model *m) {
    free(m->dir);
    free(m->ref);
    free(m->revision);
    free(m->name);
    px_cluster_destroy(m->cluster);
    memset(m, 0, sizeof *m);
}

/* ---- files ---- */

static bool is_dir(const char *p) {
    struct stat st;
    return p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool has_file(const char *dir, const char *name) {
    char p[PATH_MAX];
    struct stat st;
    return snprintf(p, sizeof p, "%s/%s", dir, name) < (int)sizeof p && stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static char *join_path(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = px_malloc(n);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

/* Bytes of the *.safetensors files in dir (links followed: the HF cache). */
static uint64_t weight_file_bytes(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    uint64_t total = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (n < 12 || strcmp(e->d_name + n - 12, ".safetensors")) continue;
        char *p = join_path(dir, e->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) total += (uint64_t)st.st_size;
        free(p);
    }
    closedir(d);
    return total;
}

/* Weights of one replica from config.json (when the files are elsewhere). */
static uint64_t estimated_bytes(const px_model_cost *c) {
    return (uint64_t)c->n_layers * c->layer_bytes + c->embed_bytes + (c->tied ? 0 : c->lm_head_bytes);
}

/* "Qwen/Qwen3-0.6B" stays; a path becomes its last component. */
static char *name_of(const char *model) {
    char *s = px_strdup(model);
    size_t n = strlen(s);
    while (n > 1 && s[n - 1] == '/') s[--n] = 0;
    if (px_hub_is_repo_id(s)) return s;
    const char *slash = strrchr(s, '/');
    char *name = px_strdup(slash ? slash + 1 : s);
    free(s);
    return name;
}

/* ---- candidates ---- */

typedef struct {
    char *id, *name, *path, *revision;
    const char *source; /* "current", "model-dir", "hf-cache" */
} candidate;

typedef struct {
    candidate *items;
    int n, cap;
} cand_list;

static void cand_free(cand_list *l) {
    for (int i = 0; i < l->n; i++) {
        free(l->items[i].id);
        free(l->items[i].name);
        free(l->items[i].path);
        free(l->items[i].revision);
    }
    free(l->items);
    memset(l, 0, sizeof *l);
}

/* Adds a model directory (real path) unless it is listed already. */
static void cand_add(cand_list *l, const char *dir, const char *id, const char *name, const char *revision,
                     const char *source) {
    if (l->n >= MAX_CANDIDATES || !has_file(dir, "config.json")) return;
    char *real = realpath(dir, NULL);
    if (!real) return;
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->items[i].path, real)) {
            free(real);
            return;
        }
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->items = px_realloc(l->items, (size_t)l->cap * sizeof *l->items);
    }
    candidate *c = &l->items[l->n++];
    c->path = real;
    c->id = px_strdup(id ? id : real);
    c->name = name ? px_strdup(name) : name_of(real);
    c->revision = revision ? px_strdup(revision) : NULL;
    c->source = source;
}

static int by_name(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->path, y->path);
}

/* DIR itself when it is a model, and every subdirectory that is one. */
static void scan_model_dir(cand_list *l, const char *dir) {
    if (has_file(dir, "config.json")) cand_add(l, dir, NULL, NULL, NULL, "model-dir");
    DIR *d = opendir(dir);
    if (!d) return;
    int first = l->n;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char *p = join_path(dir, e->d_name);
        if (is_dir(p)) cand_add(l, p, NULL, NULL, NULL, "model-dir");
        free(p);
    }
    closedir(d);
    qsort(l->items + first, (size_t)(l->n - first), sizeof *l->items, by_name);
}

/* CACHE/models--ORG--NAME/snapshots/COMMIT with a config.json: "ORG/NAME"
 * (with "@COMMIT" when the repo has several such snapshots). */
static void scan_hf_cache(cand_list *l) {
    char *cache = px_hub_cache_dir(NULL);
    DIR *d = opendir(cache);
    if (!d) {
        free(cache);
        return;
    }
    int first = l->n;
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, "models--", 8) || !e->d_name[8]) continue;
        char repo[256];
        snprintf(repo, sizeof repo, "%s", e->d_name + 8);
        char *sep = strstr(repo, "--");
        if (sep) {
            memmove(sep + 1, sep + 2, strlen(sep + 2) + 1);
            *sep = '/';
        }
        char *snaps = join_path(cache, e->d_name), *snap_dir = join_path(snaps, "snapshots");
        DIR *sd = opendir(snap_dir);
        char *commits[16];
        int nc = 0;
        for (struct dirent *f; sd && (f = readdir(sd));) {
            if (f->d_name[0] == '.' || nc == 16) continue;
            char *p = join_path(snap_dir, f->d_name);
            if (has_file(p, "config.json")) commits[nc++] = px_strdup(f->d_name);
            free(p);
        }
        if (sd) closedir(sd);
        for (int i = 0; i < nc; i++) {
            char id[300], *p = join_path(snap_dir, commits[i]);
            if (nc == 1) snprintf(id, sizeof id, "%s", repo);
            else snprintf(id, sizeof id, "%s@%.12s", repo, commits[i]);
            cand_add(l, p, id, repo, commits[i], "hf-cache");
            free(p);
            free(commits[i]);
        }
        free(snaps);
        free(snap_dir);
    }
    closedir(d);
    free(cache);
    qsort(l->items + first, (size_t)(l->n - first), sizeof *l->items, by_name);
}

static void collect(px_sched *s, cand_list *l, char **current_dir) {
    pthread_mutex_lock(&s->mu);
    *current_dir = s->has_model && s->model_dir ? realpath(s->model_dir, NULL) : NULL;
    char *current_name = s->has_model ? px_strdup(s->model_name) : NULL;
    pthread_mutex_unlock(&s->mu);
    if (*current_dir) cand_add(l, *current_dir, NULL, current_name, NULL, "current");
    free(current_name);
    for (int i = 0; i < s->n_model_dirs; i++) scan_model_dir(l, s->model_dirs[i]);
    scan_hf_cache(l);
}

static cJSON *candidate_json(const candidate *c, const char *current_dir) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", c->id);
    cJSON_AddStringToObject(o, "name", c->name);
    cJSON_AddStringToObject(o, "path", c->path);
    cJSON_AddStringToObject(o, "source", c->source);
    if (c->revision) cJSON_AddStringToObject(o, "revision", c->revision);
    cJSON_AddBoolToObject(o, "current", current_dir && !strcmp(current_dir, c->path));
    px_model_config cfg = {0};
    px_model_cost cost = {0};
    const char *why = NULL;
    char err[600] = "";
    if (px_model_config_load(c->path, &cfg) || px_model_cost_from_config(c->path, &cost)) {
        snprintf(err, sizeof err, "%s", px_error_get());
        why = err;
    } else if (!has_file(c->path, "tokenizer.json")) why = "no tokenizer.json";
    if (!*err) { /* config.json was read */
        cJSON_AddStringToObject(o, "architecture", cfg.arch_name);
        cJSON_AddNumberToObject(o, "layers", cfg.n_layers);
        cJSON_AddNumberToObject(o, "hidden", cfg.hidden);
        cJSON_AddNumberToObject(o, "context_length", cfg.max_pos);
        cJSON_AddNumberToObject(o, "vocab", cfg.vocab);
        uint64_t bytes = weight_file_bytes(c->path);
        cJSON_AddNumberToObject(o, "bytes", (double)(bytes ? bytes : estimated_bytes(&cost)));
        cJSON_AddBoolToObject(o, "bytes_estimated", bytes == 0);
    }
    cJSON_AddBoolToObject(o, "usable", why == NULL);
    if (why) cJSON_AddStringToObject(o, "error", why);
    return o;
}

char *px_sched_models_json(px_sched *s) {
    cand_list l = {0};
    char *current = NULL;
    collect(s, &l, &current);
    cJSON *o = cJSON_CreateObject(), *data = cJSON_AddArrayToObject(o, "data");
    cJSON_AddStringToObject(o, "object", "list");
    for (int i = 0; i < l.n; i++) cJSON_AddItemToArray(data, candidate_json(&l.items[i], current));
    char *hf = px_hub_cache_dir(NULL);
    cJSON_AddStringToObject(o, "hf_cache", hf);
    free(hf);
    cJSON *dirs = cJSON_AddArrayToObject(o, "model_dirs");
    for (int i = 0; i < s->n_model_dirs; i++) cJSON_AddItemToArray(dirs, cJSON_CreateString(s->model_dirs[i]));
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    cand_free(&l);
    free(current);
    return text;
}

/* ---- choosing ---- */

/* The model argument -> dir (local), ref (for workers), name, revision.
 * 0, or 404 with an error. */
static int resolve(px_sched *s, const char *model, sched_model *m) {
    if (is_dir(model)) {
        m->dir = realpath(model, NULL);
        if (!m->dir) return px_error_set("model '%s': %s", model, strerror(errno)), 404;
        m->ref = px_strdup(m->dir); /* a cache snapshot: workers look for the same repo + commit */
        m->name = name_of(model);
        cand_list l = {0}; /* a listed model keeps its listed name (a cache entry: its repo id) */
        char *current = NULL;
        collect(s, &l, &current);
        free(current);
        for (int i = 0; i < l.n; i++)
            if (!strcmp(l.items[i].path, m->dir)) {
                free(m->name);
                m->name = px_strdup(l.items[i].name);
                break;
            }
        cand_free(&l);
        return 0;
    }
    if (!px_hub_is_repo_id(model))
        return px_error_set("model '%s': no such directory on the scheduler, and not a Hugging Face repo id (ORG/NAME)",
                            model), 404;
    px_hub_options ho = {.revision = s->revision, .skip_weights = true, .progress = true}; /* config + tokenizer */
    m->dir = px_hub_model_dir(model, &ho);
    if (!m->dir) {
        char err[800];
        snprintf(err, sizeof err, "%s", px_error_get());
        return px_error_set("model '%s' not found: no such directory on the scheduler, and the Hugging Face hub: %s",
                            model, err), 404;
    }
    m->ref = px_strdup(model);
    m->revision = s->revision ? px_strdup(s->revision) : NULL;
    m->name = px_strdup(model);
    return 0;
}

/* Config, cost, tokenizer, size, an empty membership. 0, or 400. */
static int load(px_sched *s, const char *model, sched_model *m, px_tokenizer **tok) {
    char err[800];
    if (px_model_config_load(m->dir, &m->cfg) || px_model_cost_from_config(m->dir, &m->cost)) {
        snprintf(err, sizeof err, "%s", px_error_get());
        return px_error_set("model '%s' cannot be served: %s", model, err), 400;
    }
    m->context_length = s->opt.context_length > 0 ? PX_MIN(s->opt.context_length, m->cfg.max_pos) : m->cfg.max_pos;
    if (!(*tok = px_tokenizer_load(m->dir))) {
        snprintf(err, sizeof err, "%s", px_error_get());
        return px_error_set("model '%s': its tokenizer: %s", model, err), 400;
    }
    m->bytes = weight_file_bytes(m->dir);
    m->bytes_estimated = m->bytes == 0;
    if (!m->bytes) m->bytes = estimated_bytes(&m->cost);
    if (!(m->cluster = px_cluster_create(&m->cost, &s->cparams))) {
        snprintf(err, sizeof err, "%s", px_error_get());
        return px_error_set("model '%s': %s", model, err), 400;
    }
    if (s->served_name) {
        free(m->name);
        m->name = px_strdup(s->served_name);
    }
    return 0;
}

typedef struct {
    px_sched *s;
    sched_model *m;
    int nodes;
} commit_ctx;

/* Under the server's model lock (no generation in flight or starting). */
static int commit(void *user) {
    commit_ctx *c = user;
    px_sched *s = c->s;
    pthread_mutex_lock(&s->mu);
    int busy = s->running + s->waiting;
    if (busy) {
        pthread_mutex_unlock(&s->mu);
        return px_error_set("%d request%s in flight: the model changes only when none is (retry when they are done)",
                            busy, busy == 1 ? " is" : "s are"), 409;
    }
    if (c->nodes > 0) s->opt.min_workers = c->nodes;
    px_sched_use_model_locked(s, c->m);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static void release_tokenizer(void *tok) { px_tokenizer_free(tok); }

static bool text_ok(const char *s, size_t max) {
    size_t n = strlen(s);
    if (!n || n > max) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return false;
    return true;
}

int px_sched_setup(px_sched *s, const char *model, int nodes) {
    if (!model || !text_ok(model, MAX_MODEL_ARG))
        return px_error_set("model: a directory, a listed model or a repo id (1..%d characters, no control "
                            "characters)", MAX_MODEL_ARG), 400;
    if (nodes < 0 || nodes > PX_SCHED_MAX_NODES)
        return px_error_set("nodes: %d is outside 1..%d", nodes, PX_SCHED_MAX_NODES), 400;
    pthread_mutex_lock(&s->setup_mu);
    sched_model m = {0};
    px_tokenizer *tok = NULL;
    int rc = resolve(s, model, &m);
    if (!rc) {
        pthread_mutex_lock(&s->mu);
        bool same = s->has_model && !strcmp(s->model_ref, m.ref) &&
                    !strcmp(s->revision ? s->revision : "", m.revision ? m.revision : "");
        if (same && nodes > 0) s->opt.min_workers = nodes;
        int want = s->opt.min_workers;
        pthread_mutex_unlock(&s->mu);
        if (same) {
            px_log_info("scheduler: setup keeps %s; waiting for %d worker%s", model, want, want == 1 ? "" : "s");
            model_clear(&m);
            pthread_mutex_unlock(&s->setup_mu);
            return 0;
        }
    }
    if (!rc) rc = load(s, model, &m, &tok);
    if (!rc) {
        char name[512];
        snprintf(name, sizeof name, "%s", m.name); /* m's strings move into s during the commit */
        px_server_model sm = {.tok = tok, .name = name, .context_length = m.context_length,
                              .release = release_tokenizer, .owner = tok};
        commit_ctx cc = {s, &m, nodes};
        rc = s->server ? px_server_set_model(s->server, &sm, commit, &cc) : commit(&cc);
        if (rc == 1) {
            px_error_set("requests are in flight: the model changes only when none is (retry when they are done)");
            rc = 409;
        }
        if (!rc && s->server) tok = NULL; /* the server owns it now */
        px_sched_deliver(s);
    }
    char err[1200];
    snprintf(err, sizeof err, "%s", px_error_get());
    px_tokenizer_free(tok);
    model_clear(&m);
    pthread_mutex_unlock(&s->setup_mu);
    if (rc) px_error_set("%s", err);
    return rc;
}

void px_sched_attach_server(px_sched *s, px_server *srv) { s->server = srv; }

/* ---- routes ---- */

static int answer(char **json, cJSON *o) {
    *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return 200;
}

static int refuse(char **json, int status, const char *code, const char *msg) {
    *json = px_server_error_body(status, code, "%s", msg);
    return status;
}

static int route_setup(px_sched *s, const px_server_call *c, char **json) {
    cJSON *body = cJSON_ParseWithLength(c->body, c->body_len);
    if (!cJSON_IsObject(body)) {
        cJSON_Delete(body);
        return refuse(json, 400, "invalid_json", "the body must be a JSON object: {\"model\": \"...\", \"nodes\": N}");
    }
    const cJSON *jm = cJSON_GetObjectItemCaseSensitive(body, "model"), *jn = cJSON_GetObjectItemCaseSensitive(body, "nodes");
    int nodes = 0;
    if (!cJSON_IsString(jm) || !*jm->valuestring) {
        cJSON_Delete(body);
        return refuse(json, 400, "invalid_model", "model: a string is required (a directory, a listed model or a repo id)");
    }
    if (jn && !cJSON_IsNull(jn)) {
        double v = cJSON_IsNumber(jn) ? jn->valuedouble : -1;
        if (!(v >= 1 && v <= PX_SCHED_MAX_NODES) || v != (double)(int)v) {
            cJSON_Delete(body);
            *json = px_server_error_body(400, "invalid_nodes", "nodes: an integer from 1 to %d is required",
                                         PX_SCHED_MAX_NODES);
            return 400;
        }
        nodes = (int)v;
    }
    int rc = px_sched_setup(s, jm->valuestring, nodes);
    cJSON_Delete(body);
    if (rc) {
        const char *code = rc == 404 ? "model_not_found" : rc == 409 ? "busy" : "invalid_model";
        *json = px_server_error_body(rc, code, "%s", px_error_get());
        return rc;
    }
    cJSON *o = cJSON_CreateObject();
    pthread_mutex_lock(&s->mu);
    cJSON_AddStringToObject(o, "model", s->model_name);
    cJSON_AddStringToObject(o, "model_path", s->model_ref);
    cJSON_AddNumberToObject(o, "n_layers", s->cfg.n_layers);
    cJSON_AddNumberToObject(o, "context_length", s->context_length);
    cJSON_AddNumberToObject(o, "model_bytes", (double)s->model_bytes);
    cJSON_AddNumberToObject(o, "workers_needed", s->opt.min_workers);
    pthread_mutex_unlock(&s->mu);
    return answer(json, o);
}

static int route_join(px_sched *s, char **json) {
    cJSON *o = cJSON_CreateObject();
    char *cmd = px_sched_join_command(s);
    cJSON_AddStringToObject(o, "command", cmd);
    free(cmd);
    cJSON_AddStringToObject(o, "token", s->token);
    cJSON_AddStringToObject(o, "address", s->join_address);
    cJSON_AddNumberToObject(o, "cluster_port", px_sched_port(s));
    if (s->beacon) {
        char auto_cmd[600];
        snprintf(auto_cmd, sizeof auto_cmd, "parallax join -s auto --token %s", s->token);
        cJSON_AddStringToObject(o, "auto_command", auto_cmd);
    } else cJSON_AddNullToObject(o, "auto_command");
    return answer(json, o);
}

int px_sched_route(void *ctx, const px_server_call *c, char **json) {
    px_sched *s = ctx;
    bool get = !strcmp(c->method, "GET") || !strcmp(c->method, "HEAD"), post = !strcmp(c->method, "POST");
    int which = !strcmp(c->path, "/cluster/models") ? 1 : !strcmp(c->path, "/cluster/setup") ? 2
              : !strcmp(c->path, "/cluster/join")   ? 3 : 0;
    if (!which) return 0;
    if (which == 2 ? !post : !get) return refuse(json, 405, "method_not_allowed", which == 2 ? "use POST" : "use GET");
    if (!c->same_origin)
        return refuse(json, 403, "cross_origin", "a page of another site may not call this (the Origin header does not "
                                                  "name this server)");
    if (which == 1) {
        if (c->api_key_set && !c->api_key_ok && !c->loopback)
            return refuse(json, 401, "invalid_api_key", "this server runs with --api-key: send Authorization: Bearer KEY");
        if (!c->api_key_set && !c->loopback)
            return refuse(json, 403, "forbidden", "the model list shows the scheduler's local paths: only loopback "
                                                  "clients or holders of the API key (start parallax run with "
                                                  "--api-key) may read it");
        *json = px_sched_models_json(s);
        return 200;
    }
    if (which == 2) {
        if (c->api_key_set && !c->api_key_ok)
            return refuse(json, 401, "invalid_api_key",
                          "setting up the cluster needs the API key (Authorization: Bearer KEY; the page sends the one in "
                          "its Settings)");
        if (!c->api_key_set && !c->loopback)
            return refuse(json, 403, "forbidden",
                          "only a client on the scheduler's own machine (loopback) may set up the cluster, or start "
                          "parallax run with --api-key and send the key");
        return route_setup(s, c, json);
    }
    if (!c->loopback && !c->api_key_ok) {
        if (c->api_key_set)
            return refuse(json, 401, "invalid_api_key", "the join command holds the cluster's secret: send the API key "
                                                        "(Authorization: Bearer KEY), or read it where parallax run "
                                                        "printed it");
        return refuse(json, 403, "forbidden", "the join command holds the cluster's secret: only loopback clients or "
                                              "holders of the API key get it (parallax run prints it at start)");
    }
    return route_join(s, json);
}
