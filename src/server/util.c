/* util.c - small helpers of the server module: growing string buffers, a
 * strict UTF-8 validator (overlongs, surrogates and code points past
 * U+10FFFF are invalid, as in RFC 3629) and a sanitizer that replaces each
 * invalid sequence (a bad byte and the continuation bytes after it) with U+FFFD, OpenAI-style error bodies, and
 * random request ids. */
#include "server_internal.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* ---- string buffers ---- */

static void sbuf_reserve(px_sbuf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap && b->data) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) cap *= 2;
    b->data = px_realloc(b->data, cap);
    b->cap = cap;
}

void px_sbuf_add(px_sbuf *b, const char *s, size_t n) {
    sbuf_reserve(b, n);
    if (n) memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}

void px_sbuf_adds(px_sbuf *b, const char *s) { px_sbuf_add(b, s, strlen(s)); }

void px_sbuf_printf(px_sbuf *b, const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n > 0) {
        sbuf_reserve(b, (size_t)n);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
        b->len += (size_t)n;
    }
    va_end(ap2);
}

void px_sbuf_free(px_sbuf *b) {
    free(b->data);
    *b = (px_sbuf){0};
}

char *px_sbuf_take(px_sbuf *b) {
    char *s = b->data ? b->data : px_strdup("");
    *b = (px_sbuf){0};
    return s;
}

/* ---- UTF-8 ---- */

/* Length of the valid sequence at s (1..4), or 0 when it is invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    if (!len || c > 0xF4 || len > n) return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && s[1] < 0xA0) return 0; /* overlong */
    if (c == 0xED && s[1] > 0x9F) return 0; /* surrogate */
    if (c == 0xF0 && s[1] < 0x90) return 0; /* overlong */
    if (c == 0xF4 && s[1] > 0x8F) return 0; /* > U+10FFFF */
    return len;
}

bool px_server_utf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(p + i, n - i);
        if (!k) return false;
        i += k;
    }
    return true;
}

void px_server_utf8_sanitize(const char *s, size_t n, px_sbuf *out) {
    const unsigned char *p = (const unsigned char *)s;
    size_t run = 0; /* start of the current valid run */
    for (size_t i = 0; i < n;) {
        size_t k = p[i] ? utf8_seq(p + i, n - i) : 0; /* NUL too: JSON strings here are C strings */
        if (k) {
            i += k;
            continue;
        }
        px_sbuf_add(out, s + run, i - run);
        px_sbuf_add(out, "\xEF\xBF\xBD", 3);
        i++;
        while (i < n && (p[i] & 0xC0) == 0x80) i++; /* stray continuation bytes of the same sequence */
        run = i;
    }
    px_sbuf_add(out, s + run, n - run);
}

/* ---- errors ---- */

static const char *type_for(int status) {
    switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "invalid_request_error";
    case 429: return "rate_limit_error";
    case 500: return "server_error";
    case 503: return "server_error";
    default: return "invalid_request_error";
    }
}

int px_server_fail(px_server_error *e, int status, const char *param, const char *code, const char *fmt, ...) {
    e->status = status;
    e->type = type_for(status);
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    snprintf(e->code, sizeof e->code, "%s", code ? code : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

char *px_server_error_body(int status, const char *code, const char *fmt, ...) {
    px_server_error e = {.status = status, .type = type_for(status)};
    snprintf(e.code, sizeof e.code, "%s", code ? code : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof e.message, fmt, ap);
    va_end(ap);
    return px_server_error_json(&e);
}

char *px_server_error_json(const px_server_error *e) {
    cJSON *root = cJSON_CreateObject(), *err = cJSON_AddObjectToObject(root, "error");
    px_sbuf msg = {0};
    px_server_utf8_sanitize(e->message, strlen(e->message), &msg); /* messages may quote client bytes */
    cJSON_AddStringToObject(err, "message", msg.data);
    cJSON_AddStringToObject(err, "type", e->type ? e->type : type_for(e->status));
    if (e->param[0]) cJSON_AddStringToObject(err, "param", e->param);
    else cJSON_AddNullToObject(err, "param");
    if (e->code[0]) cJSON_AddStringToObject(err, "code", e->code);
    else cJSON_AddNullToObject(err, "code");
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    px_sbuf_free(&msg);
    return s;
}

void px_server_make_id(const char *prefix, char *out, size_t cap) {
    unsigned char r[12];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        static atomic_ulong counter;
        unsigned long c = atomic_fetch_add(&counter, 1) ^ (unsigned long)(px_time_now() * 1e9);
        memcpy(r, &c, sizeof c < sizeof r ? sizeof c : sizeof r);
    }
    int n = snprintf(out, cap, "%s-", prefix);
    for (size_t i = 0; i < sizeof r && n + 2 < (int)cap; i++) n += snprintf(out + n, cap - (size_t)n, "%02x", r[i]);
}
