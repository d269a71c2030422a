/* timeutil.c - monotonic wall time for timings and benchmarks. */
#include "px_base.h"
#include <time.h>

double px_time_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
