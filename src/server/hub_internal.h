/* hub_internal.h - what hub.c (cache layout, model info, file selection) and
 * hub_fetch.c (libcurl transfers: JSON GET, HEAD, resumable file download
 * with progress) share. Not part of the public interface (hub.h). */
#ifndef PX_HUB_INTERNAL_H
#define PX_HUB_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    char *endpoint; /* without a trailing slash */
    char *token;    /* NULL: anonymous */
    bool progress;
} px_hub_conn;

/* What a HEAD of /{repo}/resolve/{rev}/{file} tells (redirects not followed). */
typedef struct {
    long status;
    char etag[160];   /* X-Linked-Etag (LFS) or ETag, quotes and W/ removed */
    char commit[64];  /* X-Repo-Commit */
    int64_t size;     /* X-Linked-Size or Content-Length; -1 unknown */
} px_hub_head_info;

/* GETs a small document (model info JSON). Returns 0 with *body (free it) and
 * *status, or -1 + error when the hub could not be reached at all (*offline
 * set to true then, so the caller may fall back to the cache). */
int px_hub_get(const px_hub_conn *c, const char *url, char **body, long *status, bool *offline);
int px_hub_head(const px_hub_conn *c, const char *url, px_hub_head_info *out, bool *offline);
/* Downloads url into partial_path, resuming from its current size with a
 * Range request and retrying transient failures a few times. expected_size
 * < 0: unknown. label names the file in progress output and errors. */
int px_hub_fetch(const px_hub_conn *c, const char *url, const char *partial_path, int64_t expected_size,
                 const char *label);
/* Lower-case hex sha256 of a file (65 bytes out). */
int px_hub_sha256_file(const char *path, char out[65]);

#endif
