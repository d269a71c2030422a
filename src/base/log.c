/* log.c - leveled logging to stderr; PX_LOG=debug|info|warn|error sets the level. */
#include "px_base.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static px_log_level current_level = PX_LOG_INFO;
static bool level_from_env_done;

void px_log_set_level(px_log_level level) {
    current_level = level;
    level_from_env_done = true;
}

static void read_level_from_env(void) {
    const char *v = getenv("PX_LOG");
    level_from_env_done = true;
    if (!v) return;
    if (!strcmp(v, "debug")) current_level = PX_LOG_DEBUG;
    else if (!strcmp(v, "info")) current_level = PX_LOG_INFO;
    else if (!strcmp(v, "warn")) current_level = PX_LOG_WARN;
    else if (!strcmp(v, "error")) current_level = PX_LOG_ERROR;
}

void px_log(px_log_level level, const char *fmt, ...) {
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (!level_from_env_done) read_level_from_env();
    if (level < current_level) return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "parallax %s: %s\n", names[level], line);
}
