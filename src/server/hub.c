/* hub.c - resolving a model argument to a local directory: an existing path
 * is used as is; a repo id is looked up on the hub (GET /api/models/REPO[
 * /revision/REV] gives the commit sha and the file list), the files a serving
 * node needs are selected, and each one missing from the snapshot is fetched
 * (HEAD /REPO/resolve/SHA/FILE names its blob by ETag, then a resumable GET
 * into blobs/ETAG.incomplete, a sha256 check for LFS files, a rename and a
 * relative symlink from the snapshot). refs/REV records the commit last, so a
 * snapshot that refs point to is complete. A blob is fetched under a flock()
 * in CACHE/.locks/, so processes sharing one cache fetch it once. See hub.h
 * for the layout. */
#include "hub.h"
#include "hub_internal.h"
#include "px_base.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- small path helpers ---- */

static char *path_join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = px_malloc(n);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

static bool is_dir(const char *p) {
    struct stat st;
    return !stat(p, &st) && S_ISDIR(st.st_mode);
}

static bool is_file(const char *p) {
    struct stat st;
    return !stat(p, &st) && S_ISREG(st.st_mode);
}

/* mkdir -p; 0 or -1 + error. */
static int make_dirs(const char *path) {
    char *p = px_strdup(path);
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s) continue;
        char c = *s;
        *s = 0;
        if (mkdir(p, 0755) && errno != EEXIST) {
            px_error_set("hub: cannot create %s: %s", p, strerror(errno));
            return free(p), -1;
        }
        if (!(*s = c)) break;
    }
    free(p);
    return 0;
}

static int make_parent_dirs(const char *path) {
    char *p = px_strdup(path), *slash = strrchr(p, '/');
    int rc = 0;
    if (slash && slash != p) *slash = 0, rc = make_dirs(p);
    free(p);
    return rc;
}

/* ---- names ---- */

static bool name_chars_ok(const char *s, size_t n, const char *extra) {
    if (!n || s[0] == '.' || s[0] == '-') return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr(extra, s[i])) return false;
    return !strstr(s, "..");
}

bool px_hub_is_repo_id(const char *s) {
    if (!s || !*s || strlen(s) > 200 || is_dir(s)) return false;
    const char *slash = strchr(s, '/');
    if (!slash) return name_chars_ok(s, strlen(s), "._-");
    if (strchr(slash + 1, '/')) return false;
    return name_chars_ok(s, (size_t)(slash - s), "._-") && name_chars_ok(slash + 1, strlen(slash + 1), "._-");
}

static bool is_commit(const char *s) {
    if (strlen(s) != 40) return false;
    for (int i = 0; i < 40; i++)
        if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i])) return false;
    return true;
}

static bool revision_ok(const char *s) {
    return *s && strlen(s) < 200 && name_chars_ok(s, strlen(s), "._-/") && s[strlen(s) - 1] != '/';
}

/* Files a serving node needs; top-level names only. */
static bool wanted_file(const char *f) {
    static const char *exact[] = {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                                  "special_tokens_map.json", "chat_template.jinja", "chat_template.json",
                                  "added_tokens.json", "vocab.json", "merges.txt", "tokenizer.model",
                                  "model.safetensors.index.json"};
    if (!name_chars_ok(f, strlen(f), "._-")) return false;
    for (size_t i = 0; i < PX_ARRAY_LEN(exact); i++)
        if (!strcmp(f, exact[i])) return true;
    size_t n = strlen(f);
    return n > 12 && !strcmp(f + n - 12, ".safetensors") && strncmp(f, "consolidated", 12);
}

/* ---- locations ---- */

char *px_hub_cache_dir(const px_hub_options *opt) {
    const char *v;
    if (opt && opt->cache_dir) return px_strdup(opt->cache_dir);
    if ((v = getenv("HF_HUB_CACHE")) && *v) return px_strdup(v);
    if ((v = getenv("HUGGINGFACE_HUB_CACHE")) && *v) return px_strdup(v);
    if ((v = getenv("HF_HOME")) && *v) return path_join(v, "hub");
    if ((v = getenv("XDG_CACHE_HOME")) && *v) return path_join(v, "huggingface/hub");
    return path_join((v = getenv("HOME")) && *v ? v : "/tmp", ".cache/huggingface/hub");
}

static char *repo_cache_dir(const char *cache, const char *repo) {
    size_t n = strlen(cache) + strlen(repo) + 32;
    char *p = px_malloc(n), *q = p + snprintf(p, n, "%s/models--", cache);
    for (const char *r = repo; *r; r++) {
        if (*r == '/') *q++ = '-', *q++ = '-';
        else *q++ = *r;
    }
    *q = 0;
    return p;
}

/* The revision escaped for a URL path segment ("refs/pr/1" -> "refs%2Fpr%2F1"). */
static char *escape_revision(const char *rev) {
    char *out = px_malloc(strlen(rev) * 3 + 1), *q = out;
    for (; *rev; rev++) {
        if (*rev == '/') q += sprintf(q, "%%2F");
        else *q++ = *rev;
    }
    *q = 0;
    return out;
}

/* ---- the cache without the network ---- */

static char *read_ref(const char *repo_dir, const char *rev) {
    if (is_commit(rev)) return px_strdup(rev);
    char *refs = path_join(repo_dir, "refs"), *path = path_join(refs, rev);
    size_t len = 0;
    char *sha = px_read_file(path, &len);
    free(refs);
    free(path);
    if (!sha) return NULL;
    while (len && isspace((unsigned char)sha[len - 1])) sha[--len] = 0;
    if (!is_commit(sha)) return free(sha), NULL;
    return sha;
}

static char *cached_snapshot(const char *repo_dir, const char *repo, const char *rev) {
    char *sha = read_ref(repo_dir, rev);
    if (!sha) {
        px_error_set("hub: %s (revision %s) is not in the cache %s", repo, rev, repo_dir);
        return NULL;
    }
    char *snaps = path_join(repo_dir, "snapshots"), *dir = path_join(snaps, sha), *cfg = path_join(dir, "config.json");
    bool ok = is_file(cfg);
    free(snaps);
    free(sha);
    free(cfg);
    if (!ok) {
        px_error_set("hub: the cached snapshot %s has no config.json", dir);
        return free(dir), NULL;
    }
    return dir;
}

/* ---- model info ---- */

typedef struct {
    char sha[41];
    char **files;
    int n_files;
} model_info;

static void model_info_free(model_info *mi) {
    for (int i = 0; i < mi->n_files; i++) free(mi->files[i]);
    free(mi->files);
}

static int parse_model_info(const char *repo, const char *body, model_info *mi) {
    cJSON *root = cJSON_Parse(body);
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(root, "sha");
    const cJSON *sib = cJSON_GetObjectItemCaseSensitive(root, "siblings"), *it;
    if (!cJSON_IsString(sha) || !is_commit(sha->valuestring) || !cJSON_IsArray(sib)) {
        cJSON_Delete(root);
        return px_error_set("hub: %s: the model info has no commit sha or file list", repo), -1;
    }
    snprintf(mi->sha, sizeof mi->sha, "%s", sha->valuestring);
    mi->files = px_calloc((size_t)cJSON_GetArraySize(sib) + 1, sizeof *mi->files);
    cJSON_ArrayForEach(it, sib) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(it, "rfilename");
        if (cJSON_IsString(f) && wanted_file(f->valuestring)) mi->files[mi->n_files++] = px_strdup(f->valuestring);
    }
    cJSON_Delete(root);
    bool has_cfg = false, has_weights = false;
    for (int i = 0; i < mi->n_files; i++) {
        has_cfg |= !strcmp(mi->files[i], "config.json");
        has_weights |= strstr(mi->files[i], ".safetensors") != NULL;
    }
    if (!has_cfg || !has_weights)
        return px_error_set("hub: %s has no %s (only safetensors models are supported)", repo,
                            has_cfg ? "*.safetensors weights" : "config.json"), -1;
    return 0;
}

/* Returns 0, -1 (error), or 1 when the hub could not be reached. */
static int fetch_model_info(const px_hub_conn *c, const char *repo, const char *rev, model_info *mi) {
    char *erev = escape_revision(rev), url[1024];
    if (!strcmp(rev, "main")) snprintf(url, sizeof url, "%s/api/models/%s", c->endpoint, repo);
    else snprintf(url, sizeof url, "%s/api/models/%s/revision/%s", c->endpoint, repo, erev);
    free(erev);
    char *body = NULL;
    long status = 0;
    bool offline = false;
    if (px_hub_get(c, url, &body, &status, &offline)) return offline ? 1 : -1;
    int rc = 0;
    if (status == 401 || status == 403)
        rc = (px_error_set("hub: %s: access denied (HTTP %ld): a gated or private repo needs HF_TOKEN", repo, status), -1);
    else if (status == 404) rc = (px_error_set("hub: %s: no such repository or revision '%s' on %s", repo, rev, c->endpoint), -1);
    else if (status != 200) rc = (px_error_set("hub: %s: model info failed (HTTP %ld)", repo, status), -1);
    else rc = parse_model_info(repo, body, mi);
    free(body);
    return rc;
}

/* ---- one file ---- */

static bool etag_ok(const char *e) { return name_chars_ok(e, strlen(e), "-_"); }

static bool is_sha256(const char *e) {
    if (strlen(e) != 64) return false;
    for (int i = 0; i < 64; i++)
        if (!isxdigit((unsigned char)e[i])) return false;
    return true;
}

/* Takes the lock of blob ETAG of repo_dir: CACHE/.locks/models--ORG--NAME/ETAG.lock,
 * where huggingface_hub keeps its own, held with flock() until the returned
 * descriptor is closed (also by a crash). Several processes on one machine (a
 * scheduler and workers) may fetch one repo at once; the lock makes the later
 * ones wait and then find the blob in place. -1 + error when it cannot be taken. */
static int lock_blob(const char *repo_dir, const char *etag, const char *file, bool progress) {
    const char *base = strrchr(repo_dir, '/');
    char path[4096];
    snprintf(path, sizeof path, "%.*s/.locks/%s/%s.lock", (int)(base - repo_dir), repo_dir, base + 1, etag);
    if (make_parent_dirs(path)) return -1;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return px_error_set("hub: cannot open %s: %s", path, strerror(errno)), -1;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) return fd;
    if (progress) px_log_info("hub: %s: another process is downloading it; waiting", file);
    while (flock(fd, LOCK_EX))
        if (errno != EINTR) return px_error_set("hub: cannot lock %s: %s", path, strerror(errno)), close(fd), -1;
    return fd;
}

/* Downloads blobs/ETAG unless present; 0 or -1 + error. Call with the blob's lock. */
static int fetch_blob(const px_hub_conn *c, const char *url, const char *blob, const px_hub_head_info *hi,
                      const char *file) {
    if (is_file(blob)) return 0;
    size_t n = strlen(blob) + 16;
    char *part = px_malloc(n);
    snprintf(part, n, "%s.incomplete", blob);
    int rc = px_hub_fetch(c, url, part, hi->size, file);
    if (!rc && is_sha256(hi->etag)) {
        char digest[65];
        rc = px_hub_sha256_file(part, digest);
        if (!rc && strcasecmp(digest, hi->etag)) {
            px_error_set("hub: %s: sha256 %s does not match the hub's %s (deleted; run again)", file, digest, hi->etag);
            unlink(part);
            rc = -1;
        }
    }
    if (!rc && rename(part, blob)) rc = (px_error_set("hub: cannot rename %s: %s", part, strerror(errno)), -1);
    free(part);
    return rc;
}

/* snapshots/SHA/FILE -> ../../blobs/ETAG, made beside it and renamed over it,
 * so a process that links the same file at the same moment never fails. */
static int link_snapshot(const char *snap_file, const char *etag) {
    char target[256], tmp[4200];
    snprintf(target, sizeof target, "../../blobs/%s", etag);
    snprintf(tmp, sizeof tmp, "%s.link%d", snap_file, (int)getpid());
    unlink(tmp);
    if (symlink(target, tmp) || rename(tmp, snap_file))
        return px_error_set("hub: cannot link %s: %s", snap_file, strerror(errno)), unlink(tmp), -1;
    return 0;
}

static int fetch_file(const px_hub_conn *c, const char *repo, const char *repo_dir, const char *sha, const char *file) {
    char snap[4096], url[2048], blob[4096];
    snprintf(snap, sizeof snap, "%s/snapshots/%s/%s", repo_dir, sha, file);
    if (is_file(snap)) return 0; /* already cached (stat follows the link) */
    snprintf(url, sizeof url, "%s/%s/resolve/%s/%s", c->endpoint, repo, sha, file);
    px_hub_head_info hi;
    bool offline;
    if (px_hub_head(c, url, &hi, &offline)) return -1;
    if (hi.status >= 400) return px_error_set("hub: %s/%s: HTTP %ld", repo, file, hi.status), -1;
    if (!etag_ok(hi.etag)) return px_error_set("hub: %s/%s: the hub sent no usable ETag", repo, file), -1;
    snprintf(blob, sizeof blob, "%s/blobs/%s", repo_dir, hi.etag);
    int lock = lock_blob(repo_dir, hi.etag, file, c->progress);
    if (lock < 0) return -1;
    int rc = fetch_blob(c, url, blob, &hi, file);
    close(lock);
    return rc ? rc : link_snapshot(snap, hi.etag);
}

static int write_ref(const char *repo_dir, const char *rev, const char *sha) {
    if (!strcmp(rev, sha)) return 0;
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/refs/%s", repo_dir, rev);
    snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid());
    if (make_parent_dirs(path)) return -1;
    if (px_write_file(tmp, sha, strlen(sha))) return px_error_set("hub: cannot write %s", px_error_get()), -1;
    if (rename(tmp, path)) return unlink(tmp), px_error_set("hub: cannot rename to %s: %s", path, strerror(errno)), -1;
    return 0;
}

/* ---- download of a repo ---- */

static int prepare_dirs(const char *repo_dir, const char *sha) {
    char p[4096];
    snprintf(p, sizeof p, "%s/blobs", repo_dir);
    if (make_dirs(p)) return -1;
    snprintf(p, sizeof p, "%s/snapshots/%s", repo_dir, sha);
    return make_dirs(p);
}

static char *download_repo(const px_hub_conn *c, const char *repo, const char *repo_dir, const char *rev,
                           bool skip_weights) {
    model_info mi = {0};
    int rc = fetch_model_info(c, repo, rev, &mi);
    if (rc == 1) {
        px_log_warn("%s; using the cache", px_error_get());
        return cached_snapshot(repo_dir, repo, rev);
    }
    if (rc == 0) rc = prepare_dirs(repo_dir, mi.sha);
    if (c->progress && rc == 0) px_log_info("hub: %s@%s: %d files into %s", repo, mi.sha, mi.n_files, repo_dir);
    for (int i = 0; i < mi.n_files && rc == 0; i++) {
        size_t n = strlen(mi.files[i]);
        if (skip_weights && n > 12 && !strcmp(mi.files[i] + n - 12, ".safetensors")) continue;
        rc = fetch_file(c, repo, repo_dir, mi.sha, mi.files[i]);
    }
    if (rc == 0) rc = write_ref(repo_dir, rev, mi.sha);
    char *dir = NULL;
    if (rc == 0) {
        char p[4096];
        snprintf(p, sizeof p, "%s/snapshots/%s", repo_dir, mi.sha);
        dir = px_strdup(p);
    }
    model_info_free(&mi);
    return dir;
}

static bool env_true(const char *name) {
    const char *v = getenv(name);
    return v && (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on"));
}

static char *trimmed_endpoint(const px_hub_options *opt) {
    const char *e = opt && opt->endpoint ? opt->endpoint : getenv("HF_ENDPOINT");
    char *s = px_strdup(e && *e ? e : "https://huggingface.co");
    for (size_t n = strlen(s); n && s[n - 1] == '/'; n--) s[n - 1] = 0;
    return s;
}

char *px_hub_model_dir(const char *model, const px_hub_options *opt) {
    if (!model || !*model) return px_error_set("hub: no model given"), NULL;
    if (is_dir(model)) return px_strdup(model);
    if (!px_hub_is_repo_id(model))
        return px_error_set("%s: no such directory, and not a Hugging Face repo id (ORG/NAME)", model), NULL;
    const char *rev = opt && opt->revision ? opt->revision : "main";
    if (!revision_ok(rev)) return px_error_set("hub: bad revision '%s'", rev), NULL;
    const char *token = opt && opt->token ? opt->token : getenv("HF_TOKEN");
    px_hub_conn c = {trimmed_endpoint(opt), token && *token ? px_strdup(token) : NULL, opt && opt->progress};
    char *cache = px_hub_cache_dir(opt), *repo_dir = repo_cache_dir(cache, model), *dir;
    if ((opt && opt->offline) || env_true("HF_HUB_OFFLINE")) dir = cached_snapshot(repo_dir, model, rev);
    else dir = download_repo(&c, model, repo_dir, rev, opt && opt->skip_weights);
    free(cache);
    free(repo_dir);
    free(c.endpoint);
    free(c.token);
    return dir;
}
