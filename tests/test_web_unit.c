/* test_web_unit.c - the embedded web UI table (src/server/web.h): every file
 * of web/ is there with its bytes, a Content-Type and an ETag; "/" finds
 * index.html; lookups are exact (no prefix, no "..", no query part); the
 * If-None-Match parser follows RFC 9110 (lists, weak tags, "*").
 *   test_web_unit WEB_DIR
 */
#include "px_test.h"
#include "web.h"

#include <stdlib.h>
#include <string.h>

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = 0, *len = (size_t)n;
    return buf;
}

int main(int argc, char **argv) {
    const char *web = argc > 1 ? argv[1] : "web";
    CHECK_MSG(px_web_asset_count >= 5, "%zu assets", px_web_asset_count);
    CHECK(px_web_assets[px_web_asset_count].path == NULL);
    for (size_t i = 0; i < px_web_asset_count; i++) {
        const px_web_asset *a = &px_web_assets[i];
        CHECK_MSG(a->path[0] == '/' && !strstr(a->path, ".."), "%s", a->path);
        CHECK_MSG(a->type && *a->type, "%s has a type", a->path);
        CHECK_MSG(strlen(a->etag) == 18 && a->etag[0] == '"' && a->etag[17] == '"', "%s etag %s", a->path, a->etag);
        CHECK_MSG(a->data[a->len] == 0, "%s is NUL-terminated", a->path);
        CHECK(px_web_find(a->path) == a);
        char path[1024];
        snprintf(path, sizeof path, "%s%s", web, a->path);
        size_t n = 0;
        char *disk = read_file(path, &n);
        CHECK_MSG(disk && n == a->len && !memcmp(disk, a->data, n), "%s equals %s", a->path, path);
        free(disk);
        for (size_t j = 0; j < i; j++) CHECK_MSG(strcmp(a->etag, px_web_assets[j].etag) || a->len == px_web_assets[j].len,
                                                 "%s and %s share an ETag", a->path, px_web_assets[j].path);
    }
    const px_web_asset *idx = px_web_find("/");
    CHECK(idx && !strcmp(idx->path, "/index.html") && !strncmp(idx->type, "text/html", 9));
    CHECK(px_web_find("/index.html") == idx);
    const px_web_asset *js = px_web_find("/js/main.js");
    CHECK(js && !strcmp(js->type, "text/javascript; charset=utf-8"));
    CHECK(px_web_find("/css/app.css") && !strcmp(px_web_find("/css/app.css")->type, "text/css; charset=utf-8"));
    CHECK(px_web_find(NULL) == NULL);
    CHECK(px_web_find("") == NULL);
    CHECK(px_web_find("index.html") == NULL);
    CHECK(px_web_find("/index.htm") == NULL);
    CHECK(px_web_find("/index.html/") == NULL);
    CHECK(px_web_find("/js/../index.html") == NULL);
    CHECK(px_web_find("//index.html") == NULL);
    CHECK(px_web_find("/INDEX.HTML") == NULL);
    CHECK(px_web_find("/js") == NULL);

    const char *e = "\"0123456789abcdef\"";
    CHECK(px_web_etag_matches(e, e));
    CHECK(px_web_etag_matches("W/\"0123456789abcdef\"", e));
    CHECK(px_web_etag_matches("\"x\", \"0123456789abcdef\"", e));
    CHECK(px_web_etag_matches("\"x\",W/\"0123456789abcdef\" ", e));
    CHECK(px_web_etag_matches("*", e));
    CHECK(!px_web_etag_matches(NULL, e));
    CHECK(!px_web_etag_matches("", e));
    CHECK(!px_web_etag_matches("\"0123456789abcde\"", e));
    CHECK(!px_web_etag_matches("\"0123456789abcdef0\"", e));
    CHECK(!px_web_etag_matches("0123456789abcdef", e));
    CHECK(!px_web_etag_matches("\"x\", \"y\"", e));
    return px_test_finish();
}
