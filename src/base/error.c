/* error.c - the thread-local "last error" line every failing call leaves behind. */
#include "px_base.h"
#include <stdarg.h>
#include <stdio.h>

static _Thread_local char error_line[1024];

void px_error_set(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_line, sizeof error_line, fmt, ap);
    va_end(ap);
}

const char *px_error_get(void) { return error_line[0] ? error_line : "unknown error"; }

void px_error_clear(void) { error_line[0] = 0; }
