/* error.c - the thread-local "last error" line every failing call leaves behind. */
#include "px_base.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char error_line[1024];

/* Formats into a scratch line first, so a message may wrap the current one:
 * px_error_set("%s: %s", path, px_error_get()). */
void px_error_set(const char *fmt, ...) {
    char line[sizeof error_line];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    memcpy(error_line, line, sizeof line);
}

const char *px_error_get(void) { return error_line[0] ? error_line : "unknown error"; }

void px_error_clear(void) { error_line[0] = 0; }
