/* hub.h - Hugging Face hub downloads: turns a model argument that is a repo
 * id ("Qwen/Qwen3-0.6B") into a local model directory, using the standard
 * Hugging Face cache layout so that Python tools and we share one cache:
 *
 *   CACHE/models--ORG--NAME/blobs/ETAG              file contents
 *   CACHE/models--ORG--NAME/snapshots/COMMIT/FILE   -> ../../blobs/ETAG
 *   CACHE/models--ORG--NAME/refs/REVISION           the commit REVISION points to
 *   CACHE/.locks/models--ORG--NAME/ETAG.lock         flock()ed while ETAG downloads
 *
 * CACHE is $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub,
 * else ~/.cache/huggingface/hub. The hub is $HF_ENDPOINT (default
 * https://huggingface.co); $HF_TOKEN is sent as a Bearer token (never to
 * other hosts a download redirects to); $HF_HUB_OFFLINE=1 uses only the cache.
 *
 * Only what a serving node needs is fetched: configs, tokenizer files, chat
 * templates and *.safetensors (+ index). A file already in the snapshot is not
 * fetched again; an interrupted download resumes from its
 * blobs/ETAG.incomplete file with an HTTP Range request (also retried within
 * one run); LFS files are checked against their sha256. Processes that share
 * a cache (workers on one machine) download each blob once: the others wait
 * on its lock. When the hub cannot be
 * reached, a previously downloaded snapshot of the revision is used.
 *
 * This is a small part of its own (library px_hub): it knows nothing of the
 * server. Errors: NULL + px_error_set().
 */
#ifndef PX_HUB_H
#define PX_HUB_H

#include <stdbool.h>

typedef struct {
    const char *endpoint;  /* NULL: $HF_ENDPOINT or https://huggingface.co */
    const char *token;     /* NULL: $HF_TOKEN (none if unset) */
    const char *cache_dir; /* NULL: the standard cache (see above) */
    const char *revision;  /* NULL: "main" (a branch, tag or 40-hex commit) */
    bool progress;         /* progress on stderr (a bar on a terminal, lines otherwise) */
    bool offline;          /* only the cache (also when $HF_HUB_OFFLINE=1) */
    bool skip_weights;     /* configs and tokenizer only, no *.safetensors (a cluster scheduler) */
} px_hub_options;

/* "org/name" (or "name") made of [A-Za-z0-9._-], no "..", not an existing path. */
bool px_hub_is_repo_id(const char *s);

/* MODEL as given when it is an existing directory; a repo id is downloaded
 * (or found in the cache) and its snapshot directory returned. Returns a new
 * string (free it), or NULL with an error. */
char *px_hub_model_dir(const char *model, const px_hub_options *opt);

/* The cache directory the options resolve to (new string). */
char *px_hub_cache_dir(const px_hub_options *opt);

#endif
