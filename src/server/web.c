/* web.c - serves the web UI from the assets embedded at build time
 * (web.h; generated from web/ by embed_web.cmake). The bodies are static
 * arrays, handed to libmicrohttpd without copying. Every response carries an
 * ETag and "Cache-Control: no-cache": browsers revalidate on each load and get
 * a 304 without a body while the binary is the same. HTML pages carry a
 * strict Content-Security-Policy: the page's own code never builds HTML from
 * strings (docs/web.md), and the policy makes any slip fail loudly instead of
 * running injected script.
 */
#include "server_internal.h"
#include "web.h"

#include <string.h>

#define CSP                                                                                                   \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "   \
    "font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; " \
    "require-trusted-types-for 'script'; trusted-types 'none'"

const px_web_asset *px_web_find(const char *url) {
    if (!url || url[0] != '/') return NULL;
    if (!strcmp(url, "/")) url = "/index.html";
    for (size_t i = 0; i < px_web_asset_count; i++)
        if (!strcmp(px_web_assets[i].path, url)) return &px_web_assets[i];
    return NULL;
}

int px_web_etag_matches(const char *inm, const char *etag) {
    if (!inm || !etag) return 0;
    size_t n = strlen(etag);
    for (const char *p = inm; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        if (!*p) break;
        if (*p == '*') return 1;
        if (!strncmp(p, "W/", 2)) p += 2; /* weak comparison, as RFC 9110 asks for If-None-Match */
        if (!strncmp(p, etag, n) && (p[n] == 0 || p[n] == ',' || p[n] == ' ' || p[n] == '\t')) return 1;
        while (*p && *p != ',') p++;
    }
    return 0;
}

enum MHD_Result px_server_web_send(px_server *s, struct MHD_Connection *c, const px_web_asset *a) {
    const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
    bool fresh = px_web_etag_matches(inm, a->etag);
    unsigned status = fresh ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK;
    struct MHD_Response *r = MHD_create_response_from_buffer(fresh ? 0 : a->len, (void *)a->data,
                                                             MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    if (!fresh) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, a->type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, a->etag);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    if (!strncmp(a->type, "text/html", 9)) {
        MHD_add_response_header(r, "Content-Security-Policy", CSP);
        MHD_add_response_header(r, "X-Frame-Options", "DENY");
    }
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    px_server_metrics_request(s->metrics, PX_EP_OTHER, (int)status);
    return rc;
}
