/* alloc.c - allocation that never returns NULL, aligned buffers, whole-file reads. */
#include "px_base.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die_out_of_memory(size_t n) {
    fprintf(stderr, "parallax error: out of memory allocating %zu bytes\n", n);
    abort();
}

void *px_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) die_out_of_memory(n);
    return p;
}

void *px_calloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) die_out_of_memory(count * size);
    return p;
}

void *px_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) die_out_of_memory(n);
    return q;
}

char *px_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(px_malloc(n), s, n);
}

void *px_aligned_alloc(size_t n) {
    size_t rounded = (n + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (!p) die_out_of_memory(n);
    memset(p, 0, rounded ? rounded : 64);
    return p;
}

void px_aligned_free(void *p) { free(p); }

char *px_read_file(const char *path, size_t *len_out) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        px_error_set("%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = px_malloc(cap);
    for (;;) {
        if (len + 1 >= cap) buf = px_realloc(buf, cap *= 2);
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) break;
    }
    bool failed = ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        px_error_set("%s: read error", path);
        return NULL;
    }
    buf[len] = 0;
    if (len_out) *len_out = len;
    return buf;
}

int px_write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return px_error_set("%s: %s", path, strerror(errno)), -1;
    bool wrote = fwrite(data, 1, len, f) == len;
    int saved = errno;
    if (fclose(f) != 0 && wrote) wrote = false, saved = errno;
    if (!wrote) return px_error_set("%s: %s", path, strerror(saved)), -1;
    return 0;
}
