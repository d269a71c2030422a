/* bench_kernels.c - tooling: the speed of px_matmul alone, for tuning the
 * kernels without a whole model around them.
 *
 *   bench_kernels [--dtype q8_0] [-M 1] [-N 3072] [-K 1024] [-t 1] [--mats 32] [-r 5]
 *
 * Makes --mats random weight matrices (together larger than the caches, so a
 * decode-shaped M = 1 product streams from memory as in a model) and
 * multiplies x [M, K] by each in turn, r times; prints the best and median
 * weight bandwidth (GB/s) and throughput (GMAC/s) of a pass, and the memory
 * read bandwidth of a plain sum over the same bytes for reference.
 */
#include "px_base.h"
#include "tensor.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 88172645463325252ull;
static float frand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2 - 1;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    const uint64_t *p;
    uint64_t *out;
} sum_job;

static void sum_range(void *arg, int64_t s, int64_t e, int thread) {
    const sum_job *j = arg;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (int64_t i = s; i + 4 <= e; i += 4) a += j->p[i], b += j->p[i + 1], c += j->p[i + 2], d += j->p[i + 3];
    j->out[thread] = a + b + c + d;
}

int main(int argc, char **argv) {
    int dtype = PX_DTYPE_Q8_0, threads = 1, mats = 32, reps = 5;
    long M = 1, N = 3072, K = 1024;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *f = argv[i], *v = argv[i + 1];
        if (!strcmp(f, "--dtype")) dtype = px_dtype_parse(v);
        else if (!strcmp(f, "-M")) M = atol(v);
        else if (!strcmp(f, "-N")) N = atol(v);
        else if (!strcmp(f, "-K")) K = atol(v);
        else if (!strcmp(f, "-t")) threads = atoi(v);
        else if (!strcmp(f, "--mats")) mats = atoi(v);
        else if (!strcmp(f, "-r")) reps = atoi(v);
        else return fprintf(stderr, "bench_kernels: unknown flag %s\n", f), 2;
    }
    if (dtype < 0 || M < 1 || N < 1 || K < 1 || threads < 1 || mats < 1 || reps < 1)
        return fprintf(stderr, "bench_kernels: bad arguments\n"), 2;
    px_pool *pool = px_pool_create(threads);
    float *src = px_malloc((size_t)(N * K) * sizeof(float));
    px_weight *w = px_calloc((size_t)mats, sizeof *w);
    size_t bytes = px_dtype_is_quantized((px_dtype)dtype) ? px_weight_bytes((px_dtype)dtype, N, K)
                                                          : px_weight_panel_bytes((px_dtype)dtype, N, K);
    for (int i = 0; i < mats; i++) {
        for (long k = 0; k < N * K; k++) src[k] = frand() * 0.05f;
        bool panels = !px_dtype_is_quantized((px_dtype)dtype); /* as the model loader packs them */
        void *data = px_aligned_alloc(bytes);
        if (panels) px_weight_pack_panels(pool, data, (px_dtype)dtype, src, PX_DTYPE_F32, N, K);
        else px_weight_pack(pool, data, (px_dtype)dtype, src, PX_DTYPE_F32, N, K);
        w[i] = (px_weight){(px_dtype)dtype, N, K, data, panels};
    }
    float *x = px_malloc((size_t)(M * K) * sizeof(float)), *y = px_malloc((size_t)(M * N) * sizeof(float));
    for (long k = 0; k < M * K; k++) x[k] = frand();
    double *pass = px_malloc((size_t)reps * sizeof(double));
    for (int r = -1; r < reps; r++) {
        double t0 = px_time_now();
        for (int i = 0; i < mats; i++) px_matmul(pool, y, x, M, &w[i], NULL);
        if (r >= 0) pass[r] = px_time_now() - t0;
    }
    qsort(pass, (size_t)reps, sizeof *pass, cmp_double);
    double total = (double)bytes * mats, macs = (double)M * N * K * mats;
    /* plain read bandwidth over the same buffers, as one big array would not be */
    uint64_t sums[1024];
    double best_sum = 1e9;
    for (int r = 0; r < reps; r++) {
        double t0 = px_time_now();
        for (int i = 0; i < mats; i++) {
            sum_job j = {w[i].data, sums};
            px_pool_run(pool, (int64_t)(bytes / 8), 1 << 14, sum_range, &j);
        }
        double dt = px_time_now() - t0;
        if (dt < best_sum) best_sum = dt;
    }
    printf("%s M=%ld N=%ld K=%ld t=%d cpu=%s: best %.2f GB/s %.1f GMAC/s, median %.2f GB/s; plain read %.2f GB/s\n",
           px_dtype_name((px_dtype)dtype), M, N, K, threads, px_cpu_level_name(px_cpu_level_get()), total / pass[0] / 1e9,
           macs / pass[0] / 1e9, total / pass[reps / 2] / 1e9, total / best_sum / 1e9);
    for (int i = 0; i < mats; i++) px_aligned_free((void *)w[i].data);
    free(w);
    free(src);
    free(x);
    free(y);
    free(pass);
    px_pool_destroy(pool);
    return 0;
}
