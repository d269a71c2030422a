/* hw.c - what a worker tells the scheduler about its machine: CPU count,
 * available memory (MemAvailable in /proc/meminfo), and two quick
 * measurements the scheduler's node model uses until real per-layer
 * latencies arrive in heartbeats:
 *   bandwidth  bytes/s summing a 64 MiB f32 buffer (best of 3 passes, so
 *              page faults of the first pass do not count), over the pool
 *   flops      FLOP/s of px_matmul on [32, 1024] x [1024, 1024] bf16 (the
 *              dtype models are stored in), best of 3
 * Together they take ~0.1-0.3 s on a small machine. */
#include "model.h"
#include "tensor.h"
#include "worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    fclose(f);
    return (uint64_t)kb * 1024;
}

typedef struct {
    const float *data;
    double *partial;
} sum_arg;

static void sum_range(void *arg, int64_t start, int64_t end, int thread) {
    sum_arg *a = arg;
    double s = 0;
    for (int64_t i = start; i < end; i++) s += a->data[i];
    a->partial[thread] += s;
}

static double measure_bandwidth(px_pool *pool) {
    const int64_t n = (64 << 20) / sizeof(float);
    float *buf = px_aligned_alloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) buf[i] = (float)(i & 7);
    double *partial = px_calloc((size_t)px_pool_size(pool), sizeof(double)), best = 1e9;
    sum_arg a = {buf, partial};
    for (int r = 0; r < 3; r++) {
        double t0 = px_time_now();
        px_pool_run(pool, n, 1 << 16, sum_range, &a);
        best = PX_MIN(best, px_time_now() - t0);
    }
    px_aligned_free(buf);
    free(partial);
    return best > 0 ? (double)n * sizeof(float) / best : 0;
}

static double measure_flops(px_pool *pool) {
    const int64_t M = 32, K = 1024, N = 1024;
    uint16_t *w = px_aligned_alloc((size_t)(N * K) * sizeof(uint16_t));
    float *x = px_aligned_alloc((size_t)(M * K) * sizeof(float)), *y = px_aligned_alloc((size_t)(M * N) * sizeof(float));
    for (int64_t i = 0; i < N * K; i++) w[i] = px_f32_to_bf16((float)((i * 7919) % 13) / 13.0f - 0.5f);
    for (int64_t i = 0; i < M * K; i++) x[i] = (float)(i % 5) * 0.1f;
    px_weight wt = {.dtype = PX_DTYPE_BF16, .rows = N, .cols = K, .data = w};
    double best = 1e9;
    for (int r = 0; r < 3; r++) {
        double t0 = px_time_now();
        px_matmul(pool, y, x, M, &wt, NULL);
        best = PX_MIN(best, px_time_now() - t0);
    }
    px_aligned_free(w);
    px_aligned_free(x);
    px_aligned_free(y);
    return best > 0 ? 2.0 * M * K * N / best : 0;
}

void px_worker_probe(int threads, bool measure, px_worker_hw *out) {
    memset(out, 0, sizeof *out);
    out->cores = threads > 0 ? threads : px_cpu_count();
    out->memory_bytes = mem_available();
    if (gethostname(out->hostname, sizeof out->hostname - 1)) snprintf(out->hostname, sizeof out->hostname, "worker");
    if (!measure) return;
    px_pool *pool = px_pool_create(out->cores);
    out->bandwidth = measure_bandwidth(pool);
    out->flops = measure_flops(pool);
    px_pool_destroy(pool);
}
