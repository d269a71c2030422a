/* web.h - the web UI's files, embedded in the binary at build time
 * (src/server/embed_web.cmake turns web/ into web_assets.c), and the server's
 * handler that answers GET / and the asset paths with them (web.c).
 * docs/web.md describes the UI.
 */
#ifndef PX_SERVER_WEB_H
#define PX_SERVER_WEB_H

#include <microhttpd.h>
#include <stddef.h>

typedef struct px_server px_server;

typedef struct {
    const char *path;          /* URL path, e.g. "/js/chat.js" */
    const char *type;          /* Content-Type */
    const char *etag;          /* quoted strong ETag: "\"0123456789abcdef\"" */
    const unsigned char *data; /* NUL-terminated; len excludes the NUL */
    size_t len;
} px_web_asset;

/* Generated: every asset, then a zeroed entry. */
extern const px_web_asset px_web_assets[];
extern const size_t px_web_asset_count;

/* The asset for a URL path ("/" is "/index.html"), or NULL. */
const px_web_asset *px_web_find(const char *url);

/* True when an If-None-Match header value names etag (or is "*"). */
int px_web_etag_matches(const char *if_none_match, const char *etag);

/* Queues the asset's response: 200 with the body (none for HEAD, which
 * libmicrohttpd handles), or 304 when the request's If-None-Match names its
 * ETag. Headers: Content-Type, ETag, Cache-Control: no-cache (the browser
 * revalidates, so a new binary's files are picked up at once), nosniff, and
 * for HTML a strict Content-Security-Policy (scripts and styles from this
 * origin only, no inline script, Trusted Types required for DOM sinks). */
enum MHD_Result px_server_web_send(px_server *s, struct MHD_Connection *c, const px_web_asset *a);

#endif
