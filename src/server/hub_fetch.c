/* hub_fetch.c - the libcurl side of hub downloads: small GETs (model info),
 * HEADs that read the hub's X-Linked-Etag / ETag / X-Repo-Commit headers, and
 * resumable file downloads.
 *
 * A download appends to its partial file: when the file already holds n
 * bytes it asks for "Range: bytes=n-"; a 206 answer is appended, a 200 answer
 * (the server ignored the range) restarts the file from zero, a 416 restarts
 * it too. Transient failures (connection lost, timeouts, 5xx) are retried a
 * few times with a growing pause, each retry resuming where the last stopped.
 * The Bearer token goes only to the hub host: libcurl drops a custom
 * Authorization header when a redirect leads to another host.
 * Progress: a bar redrawn at most 10 times a second when stderr is a
 * terminal, otherwise one line per finished file. */
#include "hub_internal.h"
#include "px_base.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HUB_ATTEMPTS 5
#define HUB_USER_AGENT "parallax/0.1 (hf-hub compatible)"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* ---- common request setup ---- */

static struct curl_slist *auth_headers(const px_hub_conn *c) {
    if (!c->token || !*c->token) return NULL;
    size_t n = strlen(c->token) + 32;
    char *h = px_malloc(n);
    snprintf(h, n, "Authorization: Bearer %s", c->token);
    struct curl_slist *l = curl_slist_append(NULL, h);
    free(h);
    return l;
}

static CURL *new_handle(const px_hub_conn *c, const char *url, struct curl_slist *headers) {
    pthread_once(&curl_once, curl_init_once);
    CURL *h = curl_easy_init();
    if (!h) return NULL;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_USERAGENT, HUB_USER_AGENT);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 15L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    if (headers) curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    (void)c;
    return h;
}

static bool is_network_error(CURLcode rc) {
    return rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_RESOLVE_PROXY ||
           rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR ||
           rc == CURLE_GOT_NOTHING || rc == CURLE_PARTIAL_FILE || rc == CURLE_SSL_CONNECT_ERROR;
}

/* ---- GET of a small document ---- */

typedef struct {
    char *data;
    size_t len;
} membuf;

static size_t mem_write(char *p, size_t size, size_t n, void *ud) {
    membuf *b = ud;
    size_t add = size * n;
    if (b->len + add > (64u << 20)) return 0; /* model info is small; refuse absurd answers */
    b->data = px_realloc(b->data, b->len + add + 1);
    memcpy(b->data + b->len, p, add);
    b->len += add;
    b->data[b->len] = 0;
    return add;
}

int px_hub_get(const px_hub_conn *c, const char *url, char **body, long *status, bool *offline) {
    struct curl_slist *hdr = auth_headers(c);
    CURL *h = new_handle(c, url, hdr);
    membuf b = {px_strdup(""), 0};
    *offline = false;
    if (!h) return curl_slist_free_all(hdr), free(b.data), px_error_set("hub: cannot create a curl handle"), -1;
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, mem_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdr);
    if (rc != CURLE_OK) {
        *offline = is_network_error(rc);
        px_error_set("hub: GET %s: %s", url, curl_easy_strerror(rc));
        free(b.data);
        return -1;
    }
    *body = b.data;
    return 0;
}

/* ---- HEAD ---- */

/* Copies a header value without surrounding space, quotes and a W/ prefix. */
static void header_value(const char *v, size_t n, char *out, size_t cap) {
    while (n && isspace((unsigned char)*v)) v++, n--;
    while (n && isspace((unsigned char)v[n - 1])) n--;
    if (n >= 2 && v[0] == 'W' && v[1] == '/') v += 2, n -= 2;
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') v++, n -= 2;
    if (n >= cap) n = cap - 1;
    memcpy(out, v, n);
    out[n] = 0;
}

static bool header_is(const char *line, size_t n, const char *name, const char **value, size_t *vlen) {
    size_t k = strlen(name);
    if (n <= k || strncasecmp(line, name, k) || line[k] != ':') return false;
    *value = line + k + 1;
    *vlen = n - k - 1;
    return true;
}

typedef struct {
    px_hub_head_info *info;
    char linked_etag[160], etag[160];
    int64_t linked_size, length;
} head_state;

static size_t head_header(char *line, size_t size, size_t n, void *ud) {
    head_state *s = ud;
    size_t len = size * n, vlen;
    const char *v;
    char tmp[160];
    if (len > 5 && !strncmp(line, "HTTP/", 5)) { /* a new response: forget the last one's headers */
        s->linked_etag[0] = s->etag[0] = 0;
        s->linked_size = s->length = -1;
    } else if (header_is(line, len, "X-Linked-Etag", &v, &vlen)) header_value(v, vlen, s->linked_etag, sizeof s->linked_etag);
    else if (header_is(line, len, "ETag", &v, &vlen)) header_value(v, vlen, s->etag, sizeof s->etag);
    else if (header_is(line, len, "X-Repo-Commit", &v, &vlen))
        header_value(v, vlen, s->info->commit, sizeof s->info->commit);
    else if (header_is(line, len, "X-Linked-Size", &v, &vlen)) header_value(v, vlen, tmp, sizeof tmp), s->linked_size = atoll(tmp);
    else if (header_is(line, len, "Content-Length", &v, &vlen)) header_value(v, vlen, tmp, sizeof tmp), s->length = atoll(tmp);
    return len;
}

int px_hub_head(const px_hub_conn *c, const char *url, px_hub_head_info *out, bool *offline) {
    struct curl_slist *hdr = auth_headers(c);
    CURL *h = new_handle(c, url, hdr);
    memset(out, 0, sizeof *out);
    head_state s = {.info = out, .linked_size = -1, .length = -1};
    *offline = false;
    if (!h) return curl_slist_free_all(hdr), px_error_set("hub: cannot create a curl handle"), -1;
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, head_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &s);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdr);
    if (rc != CURLE_OK) {
        *offline = is_network_error(rc);
        return px_error_set("hub: HEAD %s: %s", url, curl_easy_strerror(rc)), -1;
    }
    header_value(s.linked_etag[0] ? s.linked_etag : s.etag, strlen(s.linked_etag[0] ? s.linked_etag : s.etag),
                 out->etag, sizeof out->etag);
    out->size = s.linked_size >= 0 ? s.linked_size : (out->status == 200 ? s.length : -1);
    return 0;
}

/* ---- resumable download ---- */

typedef struct {
    CURL *h;
    int fd;
    int64_t offset;  /* bytes in the file when this attempt started */
    int64_t written; /* bytes in the file now */
    int64_t expected;
    bool decided;    /* 200/206 seen: file position settled */
    const char *label;
    bool tty, show;
    double last_draw, t0;
} fetch_state;

static size_t fetch_write(char *p, size_t size, size_t n, void *ud) {
    fetch_state *s = ud;
    size_t len = size * n;
    if (!s->decided) {
        long code = 0;
        curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &code);
        if (code == 200 && s->offset > 0) { /* range ignored: start over */
            if (ftruncate(s->fd, 0) || lseek(s->fd, 0, SEEK_SET) < 0) return 0;
            s->offset = s->written = 0;
        }
        s->decided = true;
    }
    for (size_t done = 0; done < len;) {
        ssize_t w = write(s->fd, p + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return 0;
        done += (size_t)w;
    }
    s->written += (int64_t)len;
    return len;
}

static void draw_progress(fetch_state *s, bool final) {
    double now = px_time_now();
    if (!s->show || (!final && now - s->last_draw < 0.1)) return;
    s->last_draw = now;
    double mb = (double)s->written / 1e6, total = s->expected > 0 ? (double)s->expected / 1e6 : 0;
    double rate = now > s->t0 ? (double)(s->written - s->offset) / 1e6 / (now - s->t0) : 0;
    if (!s->tty) {
        if (final) fprintf(stderr, "hub: %s: %.1f MB done\n", s->label, mb);
        return;
    }
    char bar[31];
    int fill = total > 0 ? (int)(30 * mb / total) : 0;
    for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
    bar[30] = 0;
    fprintf(stderr, "\r%-28.28s [%s] %5.1f%% %9.1f/%.1f MB %6.1f MB/s%s", s->label, bar,
            total > 0 ? 100 * mb / total : 0.0, mb, total, rate, final ? "\n" : "");
}

static int fetch_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ult, curl_off_t uln) {
    (void)dltotal, (void)dlnow, (void)ult, (void)uln;
    draw_progress(ud, false);
    return 0;
}

static int64_t file_size(const char *path) {
    struct stat st;
    return stat(path, &st) ? 0 : (int64_t)st.st_size;
}

/* One attempt. Returns 0 done, 1 retry, -1 fatal (error set). */
static int fetch_once(const px_hub_conn *c, const char *url, const char *path, fetch_state *s) {
    s->offset = s->written = file_size(path);
    if (s->expected >= 0 && s->offset > s->expected) {
        if (truncate(path, 0)) return px_error_set("hub: %s: %s", path, strerror(errno)), -1;
        s->offset = s->written = 0;
    }
    if (s->expected >= 0 && s->offset == s->expected) return 0;
    s->fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (s->fd < 0) return px_error_set("hub: cannot write %s: %s", path, strerror(errno)), -1;
    struct curl_slist *hdr = auth_headers(c);
    s->h = new_handle(c, url, hdr);
    char range[48];
    snprintf(range, sizeof range, "%lld-", (long long)s->offset);
    curl_easy_setopt(s->h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(s->h, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(s->h, CURLOPT_FAILONERROR, 1L);
    if (s->offset > 0) curl_easy_setopt(s->h, CURLOPT_RANGE, range);
    curl_easy_setopt(s->h, CURLOPT_WRITEFUNCTION, fetch_write);
    curl_easy_setopt(s->h, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(s->h, CURLOPT_XFERINFOFUNCTION, fetch_progress);
    curl_easy_setopt(s->h, CURLOPT_XFERINFODATA, s);
    s->decided = false;
    CURLcode rc = curl_easy_perform(s->h);
    long code = 0;
    curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(s->h);
    curl_slist_free_all(hdr);
    close(s->fd);
    if (rc == CURLE_OK) {
        if (s->expected < 0 || s->written == s->expected) return 0;
        px_error_set("hub: %s: got %lld bytes, expected %lld", s->label, (long long)s->written, (long long)s->expected);
        return 1;
    }
    if (rc == CURLE_HTTP_RETURNED_ERROR && code == 416) return truncate(path, 0) ? -1 : 1;
    px_error_set("hub: %s: %s (HTTP %ld)", s->label, curl_easy_strerror(rc), code);
    if (rc == CURLE_HTTP_RETURNED_ERROR && code < 500 && code != 408 && code != 429) return -1;
    return 1;
}

int px_hub_fetch(const px_hub_conn *c, const char *url, const char *partial_path, int64_t expected_size,
                 const char *label) {
    fetch_state s = {.expected = expected_size, .label = label, .tty = isatty(2), .show = c->progress,
                     .t0 = px_time_now()};
    for (int attempt = 1; attempt <= HUB_ATTEMPTS; attempt++) {
        int r = fetch_once(c, url, partial_path, &s);
        if (r <= 0) {
            if (r == 0) draw_progress(&s, true);
            return r;
        }
        if (s.show && s.tty) fputc('\n', stderr);
        px_log_warn("%s; retrying (%d of %d), resuming at byte %lld", px_error_get(), attempt, HUB_ATTEMPTS - 1,
                    (long long)file_size(partial_path));
        if (attempt < HUB_ATTEMPTS) usleep((useconds_t)(250000u << (attempt - 1)));
    }
    return -1;
}

int px_hub_sha256_file(const char *path, char out[65]) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return px_error_set("hub: cannot read %s: %s", path, strerror(errno)), -1;
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    unsigned char *buf = px_malloc(1 << 20), digest[32];
    ssize_t n;
    while ((n = read(fd, buf, 1 << 20)) > 0) crypto_hash_sha256_update(&st, buf, (unsigned long long)n);
    close(fd);
    free(buf);
    if (n < 0) return px_error_set("hub: reading %s failed", path), -1;
    crypto_hash_sha256_final(&st, digest);
    for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", digest[i]);
    return 0;
}
