/* matmul.c - y = x · wᵀ for f32 activations and weights of every dtype.
 *
 * The shape of every linear layer in a transformer: x [M, K] (M tokens),
 * w [N, K] (one row per output feature), y [M, N]. Work is split over output
 * rows in units of 8 (a quantized group) across the pool; px_matmul_multi
 * concatenates the units of several weights (q, k, v) so one pool run
 * covers them all, and px_matmul_swiglu computes gate and up for the same
 * units side by side and writes silu(gate) * up.
 *
 * Quantized weights (q8_0, q4_0): x is first quantized to 8 bits (once, in
 * parallel over tokens when there are many), then each thread walks its
 * groups; for each group it runs the tile kernel of matmul_q.c over tiles of
 * T tokens, so the group's codes stay in L1 while all tokens pass by.
 *
 * Float weights: each thread walks its rows in blocks sized to stay in L2;
 * f16/bf16 rows are widened to f32 once per block and reused for all M
 * tokens. The inner kernel computes a 2×4 tile of dot products with AVX2+FMA
 * when the CPU has it (chosen at run time), otherwise portable C. Every dot
 * product is summed in the same order whichever path or tile computes it (8
 * lanes over k, a fixed lane reduction, then the tail), so the result does
 * not depend on thread count or on where a row falls in a tile.
 */
#include "tensor_internal.h"
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    float *y;
    const float *x;
    int64_t M, N, K;
    const px_weight *w;
    bool use_avx2;
} matmul_job;

static inline const float *x_row(const matmul_job *job, int64_t m) { return job->x + m * job->K; }

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


/* Computes y[:, n0:n0+nr) for all M rows, with the nr weight rows given as f32
 * pointers; y has row stride N (job->N, or the width of a scratch buffer). */
static void compute_block(const matmul_job *job, const float *const *wrows, int64_t n0, int64_t nr) {
    const int64_t K = job->K, M = job->M, N = job->N;
    float *y = job->y;
    int64_t j = 0;
#ifdef PX_HAVE_X86
    if (job->use_avx2) {
        for (; j + 4 <= nr; j += 4) {
            int64_t m = 0;
            for (; m + 2 <= M; m += 2) {
                float out[2][4];
                tile2x4_avx2(x_row(job, m), x_row(job, m + 1), wrows + j, K, out);
                memcpy(y + m * N + n0 + j, out[0], sizeof out[0]);
                memcpy(y + (m + 1) * N + n0 + j, out[1], sizeof out[1]);
            }
            if (m < M) {
                float out[4];
                tile1x4_avx2(x_row(job, m), wrows + j, K, out);
                memcpy(y + m * N + n0 + j, out, sizeof out);
            }
        }
        for (; j < nr; j++)
            for (int64_t m = 0; m < M; m++) y[m * N + n0 + j] = dot_avx2(x_row(job, m), wrows[j], K);
        return;
    }
#endif
    for (; j < nr; j++)
        for (int64_t m = 0; m < M; m++) y[m * N + n0 + j] = dot_portable(x_row(job, m), wrows[j], K);
}

/* ---- per-thread scratch, freed when the thread exits ---- */

enum { TLS_WIDEN, TLS_UP, TLS_COUNT };
static _Thread_local float *tls_buf[TLS_COUNT];
static _Thread_local size_t tls_cap[TLS_COUNT];
static pthread_key_t tls_key[TLS_COUNT];
static pthread_once_t tls_key_once = PTHREAD_ONCE_INIT;

static void create_tls_keys(void) {
    for (int i = 0; i < TLS_COUNT; i++) pthread_key_create(&tls_key[i], px_aligned_free);
}

static float *tls_buffer(int which, size_t floats) {
    if (tls_cap[which] < floats) {
        pthread_once(&tls_key_once, create_tls_keys);
        px_aligned_free(tls_buf[which]);
        tls_cap[which] = floats;
        tls_buf[which] = px_aligned_alloc(floats * sizeof(float));
        pthread_setspecific(tls_key[which], tls_buf[which]);
    }
    return tls_buf[which];
}

/* ---- the job: one or more weights over the same x, split in units of 8 rows ---- */

#define MAX_SEGMENTS 4

typedef struct {
    float *y;
    const px_weight *w, *up; /* up: swiglu's second weight, else NULL */
    const float *bias;
    int64_t first_unit, units;
} segment;

typedef struct {
    const float *x;
    int64_t M, K;
    segment seg[MAX_SEGMENTS];
    int n_seg;
    px_qact act;       /* x quantized, when a weight is */
    const px_qkernels *qk;
    bool use_avx2;
} mm_job;

/* rows [r0, r1) of a float weight: blocks of rows widened once, then every token */
static void float_rows(const mm_job *job, const segment *s, int64_t r0, int64_t r1) {
    const px_weight *w = s->w;
    const int64_t K = job->K, M = job->M, N = w->rows;
    /* rows per block: about 128 KiB of f32 weights, at least 4 */
    int64_t block = PX_MAX((int64_t)4, (int64_t)(128 * 1024 / (K * 4)) & ~(int64_t)3);
    if (block > 256) block = 256;
    const float *rows[256];
    float *widened = w->dtype == PX_DTYPE_F32 && (!s->up || s->up->dtype == PX_DTYPE_F32)
                         ? NULL : tls_buffer(TLS_WIDEN, (size_t)(block * K));
    float *upbuf = s->up ? tls_buffer(TLS_UP, (size_t)(block * M)) : NULL;
    for (int64_t n0 = r0; n0 < r1; n0 += block) {
        int64_t nr = PX_MIN(block, r1 - n0);
        for (int pass = 0; pass < (s->up ? 2 : 1); pass++) {
            const px_weight *pw = pass ? s->up : w;
            for (int64_t j = 0; j < nr; j++) {
                if (pw->dtype == PX_DTYPE_F32) {
                    rows[j] = (const float *)pw->data + (n0 + j) * K;
                } else {
                    px_row_to_f32(widened + j * K, pw->data, pw->dtype, n0 + j, K);
                    rows[j] = widened + j * K;
                }
            }
            /* pass 0 writes y[:, n0..); pass 1 (up) writes upbuf[M][nr] */
            matmul_job mj = {.y = pass ? upbuf : s->y, .x = job->x, .M = M, .N = pass ? nr : N, .K = K,
                             .w = pw, .use_avx2 = job->use_avx2};
            compute_block(&mj, rows, pass ? 0 : n0, nr);
        }
        if (s->up)
            for (int64_t m = 0; m < M; m++) px_swiglu(s->y + m * N + n0, upbuf + m * nr, nr);
        if (s->bias)
            for (int64_t m = 0; m < M; m++)
                for (int64_t j = 0; j < nr; j++) s->y[m * N + n0 + j] += s->bias[n0 + j];
    }
}

/* Writes rows [n0, n0 + nr) of token m from out[0..nr) (+ bias), gating with up when given. */
static inline void put_rows(const segment *s, int64_t m, int64_t n0, int64_t nr, float *out, float *up) {
    if (up) px_swiglu(out, up, nr);
    float *yr = s->y + m * s->w->rows + n0;
    if (s->bias)
        for (int64_t j = 0; j < nr; j++) yr[j] = out[j] + s->bias[n0 + j];
    else
        memcpy(yr, out, (size_t)nr * sizeof(float));
}

/* groups [g0, g1) of a quantized weight: each group against every token tile;
 * a single token takes 4 groups at a time (the decode kernel) */
static void quant_groups(const mm_job *job, const segment *s, int64_t g0, int64_t g1) {
    const px_weight *w = s->w;
    const int64_t M = job->M, N = w->rows, nb = job->act.nb;
    const size_t gb = px_q_group_bytes(w->dtype, nb);
    const bool q8 = w->dtype == PX_DTYPE_Q8_0;
    const px_qtile_fn fn = q8 ? job->qk->q8_0 : job->qk->q4_0;
    const px_qgemv4_fn gemv4 = q8 ? job->qk->q8_0_gemv4 : job->qk->q4_0_gemv4;
    const int max_t = job->qk->max_t;
    const uint8_t *wdata = w->data, *updata = s->up ? s->up->data : NULL;
    float out[8 * PX_QROWS], up[8 * PX_QROWS];
    int64_t g = g0;
    if (M == 1 && gemv4 && !getenv("PX_NO_GEMV4")) {
        for (; g + 4 <= g1; g += 4) {
            gemv4(wdata + (size_t)g * gb, gb, nb, &job->act, 0, out);
            if (updata) gemv4(updata + (size_t)g * gb, gb, nb, &job->act, 0, up);
            int64_t n0 = g * PX_QROWS, nr = PX_MIN((int64_t)4 * PX_QROWS, N - n0);
            put_rows(s, 0, n0, nr, out, updata ? up : NULL);
        }
    }
    for (; g < g1; g++) {
        const int64_t n0 = g * PX_QROWS, nr = PX_MIN((int64_t)PX_QROWS, N - n0);
        for (int64_t m0 = 0; m0 < M; m0 += max_t) {
            int T = (int)PX_MIN((int64_t)max_t, M - m0);
            fn(wdata + (size_t)g * gb, nb, &job->act, m0, T, out);
            if (updata) fn(updata + (size_t)g * gb, nb, &job->act, m0, T, up);
            for (int t = 0; t < T; t++)
                put_rows(s, m0 + t, n0, nr, out + t * PX_QROWS, updata ? up + t * PX_QROWS : NULL);
        }
    }
}

static void mm_units(void *arg, int64_t start, int64_t end, int thread) {
    (void)thread;
    const mm_job *job = arg;
    for (int i = 0; i < job->n_seg; i++) {
        const segment *s = &job->seg[i];
        int64_t u0 = PX_MAX(start, s->first_unit) - s->first_unit;
        int64_t u1 = PX_MIN(end, s->first_unit + s->units) - s->first_unit;
        if (u0 >= u1) continue;
        if (px_dtype_is_quantized(s->w->dtype)) quant_groups(job, s, u0, u1);
        else float_rows(job, s, u0 * PX_QROWS, PX_MIN(u1 * PX_QROWS, s->w->rows));
    }
}

/* ---- quantizing x: in the calling thread's buffer, over the pool when M is large ---- */

static _Thread_local void *act_buf;
static _Thread_local size_t act_cap;
static pthread_key_t act_key;
static pthread_once_t act_key_once = PTHREAD_ONCE_INIT;
static void create_act_key(void) { pthread_key_create(&act_key, px_aligned_free); }

typedef struct {
    const px_qact *a;
    const float *x;
    int64_t K;
} qact_job;

static void qact_range(void *arg, int64_t start, int64_t end, int thread) {
    (void)thread;
    const qact_job *j = arg;
    px_qact_rows(j->a, j->x, j->K, start, end);
}

static void quantize_x(px_pool *pool, px_qact *a, const float *x, int64_t M, int64_t K) {
    a->M = M;
    a->nb = px_q_blocks(K);
    size_t qbytes = ((size_t)(M * a->nb * PX_QBLOCK) + 63) & ~(size_t)63;
    size_t need = qbytes + (size_t)(M * a->nb) * (sizeof(float) + sizeof(int32_t));
    if (act_cap < need) {
        pthread_once(&act_key_once, create_act_key);
        px_aligned_free(act_buf);
        act_cap = need;
        act_buf = px_aligned_alloc(need);
        pthread_setspecific(act_key, act_buf);
    }
    a->q = act_buf;
    a->d = (float *)((char *)act_buf + qbytes);
    a->s = (int32_t *)(a->d + M * a->nb);
    qact_job j = {a, x, K};
    px_pool_run(pool, M, PX_MAX((int64_t)1, 16384 / K), qact_range, &j);
}

static void run_job(px_pool *pool, mm_job *job) {
    bool any_quant = false;
    int64_t units = 0;
    for (int i = 0; i < job->n_seg; i++) {
        segment *s = &job->seg[i];
        any_quant |= px_dtype_is_quantized(s->w->dtype) || (s->up && px_dtype_is_quantized(s->up->dtype));
        s->first_unit = units;
        s->units = px_q_groups(s->w->rows);
        units += s->units;
    }
    job->use_avx2 = px_cpu_level_get() >= PX_CPU_AVX2;
    job->qk = px_qkernels_get();
    if (any_quant) quantize_x(pool, &job->act, job->x, job->M, job->K);
    /* each thread should get a few units; tiny matrices run on one thread */
    int64_t grain = PX_MAX((int64_t)2, (int64_t)(8192 / PX_MAX((int64_t)1, job->K * job->M)));
    px_pool_run(pool, units, grain, mm_units, job);
}

void px_matmul(px_pool *pool, float *y, const float *x, int64_t M, const px_weight *w, const float *bias) {
    px_matmul_out o = {y, w, bias};
    px_matmul_multi(pool, x, M, &o, 1);
}

void px_matmul_multi(px_pool *pool, const float *x, int64_t M, const px_matmul_out *outs, int n) {
    for (int i0 = 0; i0 < n; i0 += MAX_SEGMENTS) {
        mm_job job = {.x = x, .M = M, .K = outs[i0].w->cols, .n_seg = PX_MIN(n - i0, MAX_SEGMENTS)};
        for (int i = 0; i < job.n_seg; i++)
            job.seg[i] = (segment){.y = outs[i0 + i].y, .w = outs[i0 + i].w, .bias = outs[i0 + i].bias};
        run_job(pool, &job);
    }
}

void px_matmul_swiglu(px_pool *pool, float *y, const float *x, int64_t M, const px_weight *gate, const px_weight *up) {
    mm_job job = {.x = x, .M = M, .K = gate->cols, .n_seg = 1};
    job.seg[0] = (segment){.y = y, .w = gate, .up = up};
    if (gate->dtype != up->dtype) { /* mixed dtypes: two plain products, then the gate */
        float *u = px_aligned_alloc((size_t)(M * up->rows) * sizeof(float));
        px_matmul(pool, y, x, M, gate, NULL);
        px_matmul(pool, u, x, M, up, NULL);
        px_swiglu(y, u, M * up->rows);
        px_aligned_free(u);
        return;
    }
    run_job(pool, &job);
}

float px_dot(const float *a, const float *b, int64_t n) {
#ifdef PX_HAVE_X86
    if (px_cpu_level_get() >= PX_CPU_AVX2) return dot_avx2(a, b, n);
#endif
    return dot_portable(a, b, n);
}

void px_axpy(float *y, float alpha, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += alpha * x[i];
}
