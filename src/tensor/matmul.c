/* matmul.c - y = x · wᵀ for f32 activations and f32/f16/bf16 weights.
 *
 * The shape of every linear layer in a transformer: x [M, K] (M tokens),
 * w [N, K] (one row per output feature), y [M, N]. Work is split over output
 * rows N across the pool. Each thread walks its rows in blocks sized to stay
 * in L2; f16/bf16 rows are widened to f32 once per block and reused for all M
 * tokens. The inner kernel computes a 2×4 tile of dot products with AVX2+FMA
 * when the CPU has it (chosen at run time), otherwise portable C.
 *
 * Every dot product is summed in the same order whichever path or tile
 * computes it (8 lanes over k, a fixed lane reduction, then the tail), so the
 * result does not depend on thread count or on where a row falls in a tile.
 */
#include "tensor.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define PX_HAVE_X86 1
#endif

typedef struct {
    float *y;
    const float *x;
    int64_t M, N, K;
    const px_weight *w;
    const float *bias;
    bool use_avx2;
} matmul_job;

/* ---- portable path ---- */

static float dot_portable(const float *a, const float *b, int64_t K) {
    float lane[8] = {0};
    int64_t k = 0;
    for (; k + 8 <= K; k += 8)
        for (int l = 0; l < 8; l++) lane[l] += a[k + l] * b[k + l];
    float s = ((lane[0] + lane[4]) + (lane[1] + lane[5])) + ((lane[2] + lane[6]) + (lane[3] + lane[7]));
    for (; k < K; k++) s += a[k] * b[k];
    return s;
}

/* ---- AVX2 + FMA path ---- */
#ifdef PX_HAVE_X86
__attribute__((target("avx2,fma"))) static inline float hsum_avx2(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    __m128 s = _mm_add_ps(lo, hi);                 /* (0+4) (1+5) (2+6) (3+7) */
    __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s)); /* (0+4)+(2+6), (1+5)+(3+7) */
    t = _mm_add_ss(t, _mm_shuffle_ps(t, t, 1));
    return _mm_cvtss_f32(t);
}

__attribute__((target("avx2,fma"))) static float tail_avx2(float s, const float *a, const float *b, int64_t k, int64_t K) {
    for (; k < K; k++) s = __builtin_fmaf(a[k], b[k], s);
    return s;
}

__attribute__((target("avx2,fma"))) static float dot_avx2(const float *a, const float *b, int64_t K) {
    __m256 acc = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), acc);
    return tail_avx2(hsum_avx2(acc), a, b, k, K);
}

/* y[0..1][0..3] = x rows (x0, x1) · w rows (w[0..3]) */
__attribute__((target("avx2,fma"))) static void tile2x4_avx2(const float *x0, const float *x1, const float *const w[4],
                                                            int64_t K, float out[2][4]) {
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a03 = a00;
    __m256 a10 = a00, a11 = a00, a12 = a00, a13 = a00;
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 v0 = _mm256_loadu_ps(x0 + k), v1 = _mm256_loadu_ps(x1 + k);
        __m256 w0 = _mm256_loadu_ps(w[0] + k), w1 = _mm256_loadu_ps(w[1] + k);
        __m256 w2 = _mm256_loadu_ps(w[2] + k), w3 = _mm256_loadu_ps(w[3] + k);
        a00 = _mm256_fmadd_ps(v0, w0, a00); a01 = _mm256_fmadd_ps(v0, w1, a01);
        a02 = _mm256_fmadd_ps(v0, w2, a02); a03 = _mm256_fmadd_ps(v0, w3, a03);
        a10 = _mm256_fmadd_ps(v1, w0, a10); a11 = _mm256_fmadd_ps(v1, w1, a11);
        a12 = _mm256_fmadd_ps(v1, w2, a12); a13 = _mm256_fmadd_ps(v1, w3, a13);
    }
    __m256 acc[2][4] = {{a00, a01, a02, a03}, {a10, a11, a12, a13}};
    const float *xs[2] = {x0, x1};
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++) out[i][j] = tail_avx2(hsum_avx2(acc[i][j]), xs[i], w[j], k, K);
}

/* y[0][0..3] = x0 · w rows (w[0..3]), for decode (M = 1) */
__attribute__((target("avx2,fma"))) static void tile1x4_avx2(const float *x0, const float *const w[4], int64_t K,
                                                            float out[4]) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 v0 = _mm256_loadu_ps(x0 + k);
        a0 = _mm256_fmadd_ps(v0, _mm256_loadu_ps(w[0] + k), a0);
        a1 = _mm256_fmadd_ps(v0, _mm256_loadu_ps(w[1] + k), a1);
        a2 = _mm256_fmadd_ps(v0, _mm256_loadu_ps(w[2] + k), a2);
        a3 = _mm256_fmadd_ps(v0, _mm256_loadu_ps(w[3] + k), a3);
    }
    __m256 acc[4] = {a0, a1, a2, a3};
    for (int j = 0; j < 4; j++) out[j] = tail_avx2(hsum_avx2(acc[j]), x0, w[j], k, K);
}
#endif

static bool cpu_has_avx2_fma(void) {
#ifdef PX_HAVE_X86
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && !getenv("PX_NO_AVX2");
    }
    return cached;
#else
    return false;
#endif
}

/* Computes y[:, n0:n0+nr) for all M rows, with the nr weight rows given as f32 pointers. */
static void compute_block(const matmul_job *job, const float *const *wrows, int64_t n0, int64_t nr) {
    const int64_t K = job->K, M = job->M, N = job->N;
    float *y = job->y;
    const float *x = job->x;
    int64_t j = 0;
#ifdef PX_HAVE_X86
    if (job->use_avx2) {
        for (; j + 4 <= nr; j += 4) {
            int64_t m = 0;
            for (; m + 2 <= M; m += 2) {
                float out[2][4];
                tile2x4_avx2(x + m * K, x + (m + 1) * K, wrows + j, K, out);
                memcpy(y + m * N + n0 + j, out[0], sizeof out[0]);
                memcpy(y + (m + 1) * N + n0 + j, out[1], sizeof out[1]);
            }
            if (m < M) {
                float out[4];
                tile1x4_avx2(x + m * K, wrows + j, K, out);
                memcpy(y + m * N + n0 + j, out, sizeof out);
            }
        }
        for (; j < nr; j++)
            for (int64_t m = 0; m < M; m++) y[m * N + n0 + j] = dot_avx2(x + m * K, wrows[j], K);
        return;
    }
#endif
    for (; j < nr; j++)
        for (int64_t m = 0; m < M; m++) y[m * N + n0 + j] = dot_portable(x + m * K, wrows[j], K);
}

/* Per-thread buffer for f16/bf16 rows widened to f32; freed when the thread exits. */
static _Thread_local float *widen_buf;
static _Thread_local size_t widen_cap;
static pthread_key_t widen_key;
static pthread_once_t widen_key_once = PTHREAD_ONCE_INIT;

static void create_widen_key(void) { pthread_key_create(&widen_key, free); }

static float *widen_buffer(size_t floats) {
    if (widen_cap < floats) {
        pthread_once(&widen_key_once, create_widen_key);
        free(widen_buf);
        widen_cap = floats;
        widen_buf = px_malloc(widen_cap * sizeof(float));
        pthread_setspecific(widen_key, widen_buf);
    }
    return widen_buf;
}

static void matmul_rows(void *arg, int64_t start, int64_t end, int thread) {
    (void)thread;
    const matmul_job *job = arg;
    const px_weight *w = job->w;
    const int64_t K = job->K;
    /* rows per block: about 128 KiB of f32 weights, at least 4 */
    int64_t block = PX_MAX((int64_t)4, (int64_t)(128 * 1024 / (K * 4)) & ~(int64_t)3);
    const float *rows[256];
    if (block > 256) block = 256;
    float *widened = w->dtype == PX_DTYPE_F32 ? NULL : widen_buffer((size_t)(block * K));
    for (int64_t n0 = start; n0 < end; n0 += block) {
        int64_t nr = PX_MIN(block, end - n0);
        for (int64_t j = 0; j < nr; j++) {
            if (w->dtype == PX_DTYPE_F32) {
                rows[j] = (const float *)w->data + (n0 + j) * K;
            } else {
                px_row_to_f32(widened + j * K, w->data, w->dtype, n0 + j, K);
                rows[j] = widened + j * K;
            }
        }
        compute_block(job, rows, n0, nr);
    }
    if (job->bias)
        for (int64_t m = 0; m < job->M; m++)
            for (int64_t n = start; n < end; n++) job->y[m * job->N + n] += job->bias[n];
}

void px_matmul(px_pool *pool, float *y, const float *x, int64_t M, const px_weight *w, const float *bias) {
    matmul_job job = {.y = y, .x = x, .M = M, .N = w->rows, .K = w->cols, .w = w, .bias = bias,
                      .use_avx2 = cpu_has_avx2_fma()};
    /* each thread should get a few blocks of rows; tiny matrices run on one thread */
    int64_t grain = PX_MAX((int64_t)16, (int64_t)(65536 / PX_MAX((int64_t)1, w->cols * M)));
    px_pool_run(pool, w->rows, grain, matmul_rows, &job);
}

float px_dot(const float *a, const float *b, int64_t n) {
#ifdef PX_HAVE_X86
    if (cpu_has_avx2_fma()) return dot_avx2(a, b, n);
#endif
    return dot_portable(a, b, n);
}

void px_axpy(float *y, float alpha, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += alpha * x[i];
}
