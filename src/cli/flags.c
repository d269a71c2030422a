/* flags.c - parsing and validating command-line flag values with errors that
 * name the flag. */
#include "cli.h"
#include "px_base.h"
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int px_usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("parallax: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 2;
}

const char *px_flag_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        px_usage_error("%s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

bool px_flag_int(const char *flag, const char *value, long min, long max, long *out) {
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end) {
        px_usage_error("%s: '%s' is not an integer", flag, value);
        return false;
    }
    if (v < min || v > max) {
        px_usage_error("%s: %ld is out of range [%ld, %ld]", flag, v, min, max);
        return false;
    }
    *out = v;
    return true;
}

bool px_flag_float(const char *flag, const char *value, double min, double max, double *out) {
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || end == value || *end || v != v) {
        px_usage_error("%s: '%s' is not a number", flag, value);
        return false;
    }
    if (v < min || v > max) {
        px_usage_error("%s: %g is out of range [%g, %g]", flag, v, min, max);
        return false;
    }
    *out = v;
    return true;
}

bool px_flag_int_list(const char *flag, const char *value, int32_t **out, int *count) {
    int cap = 16, n = 0;
    int32_t *ids = px_malloc((size_t)cap * sizeof *ids);
    const char *p = value;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < 0 || v > INT32_MAX || (*end && *end != ',')) {
            free(ids);
            px_usage_error("%s: '%s' is not a comma-separated list of non-negative integers", flag, value);
            return false;
        }
        if (n == cap) ids = px_realloc(ids, (size_t)(cap *= 2) * sizeof *ids);
        ids[n++] = (int32_t)v;
        p = *end ? end + 1 : end;
    }
    if (n == 0) {
        free(ids);
        px_usage_error("%s: the list is empty", flag);
        return false;
    }
    *out = ids;
    *count = n;
    return true;
}

bool px_flag_memory(const char *flag, const char *v, int64_t *bytes, double *fraction) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || !(x > 0)) return px_usage_error("%s: '%s' is not a size or fraction", flag, v), false;
    if (!*end && x <= 1 && strchr(v, '.')) return *fraction = x, *bytes = 0, true;
    double mult = 1;
    switch (toupper((unsigned char)*end)) {
    case 0: break;
    case 'K': mult = 1024.0; break;
    case 'M': mult = 1024.0 * 1024; break;
    case 'G': mult = 1024.0 * 1024 * 1024; break;
    case 'T': mult = 1024.0 * 1024 * 1024 * 1024; break;
    default: return px_usage_error("%s: unknown unit in '%s' (K, M, G, T)", flag, v), false;
    }
    if (*end && end[1] && strcasecmp(end + 1, "B") && strcasecmp(end + 1, "iB"))
        return px_usage_error("%s: unknown unit in '%s'", flag, v), false;
    *bytes = (int64_t)(x * mult);
    *fraction = 0;
    return true;
}
