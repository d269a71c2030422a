/* matmul.c - y = x · wᵀ for f32 activations and weights of every dtype.
 *
 * The shape of every linear layer in a transformer: x [M, K] (M tokens),
 * w [N, K] (one row per output feature), y [M, N]. Work is split over output
 * rows in units (a quantized group of 8 rows, a float panel of 16) across the
 * pool; px_matmul_multi concatenates the units of several weights (q, k, v)
 * so one pool run covers them all, and px_matmul_swiglu computes gate and up
 * for the same units side by side and writes silu(gate) * up.
 *
 * Quantized weights (q8_0, q4_0): x is first quantized to 8 bits (once, in
 * parallel over tokens when there are many), then each thread walks its
 * groups; for each group it runs the tile kernel of matmul_q.c over tiles of
 * T tokens, so the group's codes stay in L1 while all tokens pass by.
 *
 * Float weights (AVX2): panels of 16 rows stored k-major (as the loader packs
 * them; row-major weights are packed on the fly, chunk by chunk). The tile
 * kernel broadcasts x[t][k] and multiply-adds it into 16 rows at once: up
 * to 6 tokens x 1 panel (a batch split into even tiles: 8 tokens as 4 + 4),
 * or for decode 1 token x 4 panels / 2 x 2, so there are always enough
 * independent chains. Each output is one FMA chain over k in
 * order whatever the tile, so the result does not depend on thread count, on
 * where a row falls in a tile, or on the other tokens of the batch. Portable
 * C: one dot product per output.
 *
 * Both paths block for the caches: a thread takes a chunk of its rows (about
 * 256 KiB of weights) and runs every block of tokens (about 256 KiB of
 * activations) against it before moving on, so weights come from memory once
 * and activations from L2/L3, whatever M is.
 */
#include "tensor_internal.h"
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- float weights: panels of 16 rows stored k-major (panel[k][16]); each
 * output is one FMA chain over k in order, whichever tile computes it ---- */

static float elem_f(const void *data, px_dtype t, size_t i) {
    if (t == PX_DTYPE_F32) return ((const float *)data)[i];
    uint16_t h = ((const uint16_t *)data)[i];
    return t == PX_DTYPE_F16 ? px_f16_to_f32(h) : px_bf16_to_f32(h);
}

/* element (r, k) of a float weight in either layout */
static inline size_t float_index(const px_weight *w, int64_t r, int64_t k) {
    if (!w->panels) return (size_t)(r * w->cols + k);
    return ((size_t)(r / PX_PANEL) * (size_t)w->cols + (size_t)k) * PX_PANEL + (size_t)(r % PX_PANEL);
}

/* portable: x . row r, one chain over k (like the AVX2 tiles, without fusing) */
static float dot_portable(const float *x, const px_weight *w, int64_t r) {
    float s = 0;
    for (int64_t k = 0; k < w->cols; k++) s += x[k] * elem_f(w->data, w->dtype, float_index(w, r, k));
    return s;
}

#ifdef PX_HAVE_X86
#define AVX2_INLINE __attribute__((target("avx2,fma,f16c"), always_inline)) static inline

/* 8 consecutive elements of a panel row (f32, f16 or bf16) as f32 */
AVX2_INLINE __m256 load_f8(const void *p, px_dtype t, size_t i) {
    if (t == PX_DTYPE_F32) return _mm256_loadu_ps((const float *)p + i);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)p + i));
    if (t == PX_DTYPE_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* r[i][j] <- r[j][i] for an 8 x 8 block */
AVX2_INLINE void transpose8(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xee);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xee);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xee);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xee);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20), r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20), r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20), r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20), r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/* rows [r0, r0 + nr) (nr <= 16) of a row-major w into an f32 panel[K][16], zero past nr */
__attribute__((target("avx2,fma,f16c"))) static void pack_panel_f32(float *panel, const px_weight *w, int64_t r0, int nr) {
    const int64_t K = w->cols;
    const size_t esz = px_dtype_size(w->dtype);
    for (int h = 0; h < PX_PANEL; h += 8) {
        const void *rows[8];
        for (int j = 0; j < 8; j++)
            rows[j] = h + j < nr ? (const char *)w->data + (size_t)((r0 + h + j) * K) * esz : NULL;
        int64_t k = 0;
        for (; k + 8 <= K; k += 8) {
            __m256 v[8];
            PX_UNROLL
            for (int j = 0; j < 8; j++) v[j] = rows[j] ? load_f8(rows[j], w->dtype, (size_t)k) : _mm256_setzero_ps();
            transpose8(v);
            PX_UNROLL
            for (int l = 0; l < 8; l++) _mm256_storeu_ps(panel + (k + l) * PX_PANEL + h, v[l]);
        }
        for (; k < K; k++)
            for (int j = 0; j < 8; j++) panel[k * PX_PANEL + h + j] = rows[j] ? elem_f(rows[j], w->dtype, (size_t)k) : 0;
    }
}

/* T tokens (x rows K apart) x P panels of 16 rows: out[t][16 p + j]; every
 * output one FMA chain over k. T * P * 2 accumulators (at most 12). */
AVX2_INLINE void ptile_avx2(const float *x, int64_t K, const int T, const int P, const void *const *panel, px_dtype pt,
                            float *out /* [T][P * 16] */) {
    __m256 acc[6][4][2];
    PX_UNROLL
    for (int t = 0; t < T; t++)
        PX_UNROLL
        for (int p = 0; p < P; p++) acc[t][p][0] = acc[t][p][1] = _mm256_setzero_ps();
    for (int64_t k = 0; k < K; k++) {
        __m256 w[4][2];
        PX_UNROLL
        for (int p = 0; p < P; p++) {
            w[p][0] = load_f8(panel[p], pt, (size_t)k * PX_PANEL);
            w[p][1] = load_f8(panel[p], pt, (size_t)k * PX_PANEL + 8);
        }
        PX_UNROLL
        for (int t = 0; t < T; t++) {
            __m256 b = _mm256_broadcast_ss(x + t * K + k);
            PX_UNROLL
            for (int p = 0; p < P; p++) {
                acc[t][p][0] = _mm256_fmadd_ps(b, w[p][0], acc[t][p][0]);
                acc[t][p][1] = _mm256_fmadd_ps(b, w[p][1], acc[t][p][1]);
            }
        }
    }
    PX_UNROLL
    for (int t = 0; t < T; t++)
        PX_UNROLL
        for (int p = 0; p < P; p++) {
            _mm256_storeu_ps(out + (t * P + p) * PX_PANEL, acc[t][p][0]);
            _mm256_storeu_ps(out + (t * P + p) * PX_PANEL + 8, acc[t][p][1]);
        }
}

/* every (T, P) the float path uses, for each panel dtype */
#define PT_SHAPES(dt)                                                                                 \
    switch (T * 8 + P) {                                                                              \
    case 1 * 8 + 4: ptile_avx2(x, K, 1, 4, panel, dt, out); break;                                   \
    case 1 * 8 + 3: ptile_avx2(x, K, 1, 3, panel, dt, out); break;                                   \
    case 1 * 8 + 2: ptile_avx2(x, K, 1, 2, panel, dt, out); break;                                   \
    case 2 * 8 + 2: ptile_avx2(x, K, 2, 2, panel, dt, out); break;                                   \
    case 1 * 8 + 1: ptile_avx2(x, K, 1, 1, panel, dt, out); break;                                   \
    case 2 * 8 + 1: ptile_avx2(x, K, 2, 1, panel, dt, out); break;                                   \
    case 3 * 8 + 1: ptile_avx2(x, K, 3, 1, panel, dt, out); break;                                   \
    case 4 * 8 + 1: ptile_avx2(x, K, 4, 1, panel, dt, out); break;                                   \
    case 5 * 8 + 1: ptile_avx2(x, K, 5, 1, panel, dt, out); break;                                   \
    default: ptile_avx2(x, K, 6, 1, panel, dt, out); break;                                          \
    }
__attribute__((target("avx2,fma,f16c"))) static void ptile(const float *x, int64_t K, int T, int P,
                                                           const void *const *panel, px_dtype pt, float *out) {
    if (pt == PX_DTYPE_F32) PT_SHAPES(PX_DTYPE_F32)
    else if (pt == PX_DTYPE_F16) PT_SHAPES(PX_DTYPE_F16)
    else PT_SHAPES(PX_DTYPE_BF16)
}

AVX2_INLINE float hsum_avx2(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma,f16c"))) static float dot_avx2(const float *a, const float *b, int64_t n) {
    __m256 acc = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= n; k += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), acc);
    float s = hsum_avx2(acc);
    for (; k < n; k++) s = __builtin_fmaf(a[k], b[k], s);
    return s;
}
#endif

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

/* Writes rows [n0, n0 + nr) of token m from out[0..nr) (+ bias), gating with up when given. */
static inline void put_rows(const segment *s, int64_t m, int64_t n0, int64_t nr, float *out, float *up) {
    if (up) px_swiglu(out, up, nr);
    float *yr = s->y + m * s->w->rows + n0;
    if (s->bias)
        for (int64_t j = 0; j < nr; j++) yr[j] = out[j] + s->bias[n0 + j];
    else
        memcpy(yr, out, (size_t)nr * sizeof(float));
}

/* The tile size that splits n tokens into the fewest tiles of at most max_t,
 * evenly: 8 tokens run as 4 + 4, not 6 + 2 (a small last tile has too few
 * independent FMA chains to hide their latency: 6 + 2 measured 19% slower). */
static inline int64_t balanced_tile(int64_t n, int64_t max_t) {
    const int64_t tiles = (n + max_t - 1) / max_t;
    return (n + tiles - 1) / tiles;
}

/* rows [r0, r1) of a float weight (r0 a multiple of 16), every token.
 * AVX2: panels as stored (weights loaded by the model are), or chunks of a
 * row-major weight packed into f32 panels once and run against every block
 * of tokens; one or two tokens take 4 or 2 panels per tile, more take 6
 * tokens per panel. Portable: one dot product per output. */
static void float_rows(const mm_job *job, const segment *s, int64_t r0, int64_t r1) {
    const px_weight *w = s->w, *u = s->up;
    const int64_t K = job->K, M = job->M;
#ifdef PX_HAVE_X86
    if (job->use_avx2) {
        const bool rw = !w->panels, ru = u && !u->panels, repack = rw || ru; /* row-major: packed here */
        const int64_t chunk = repack ? PX_MAX((int64_t)PX_PANEL, (int64_t)((u ? 128 : 256) * 1024 / (K * 4)) / PX_PANEL * PX_PANEL)
                                     : PX_MAX((int64_t)PX_PANEL, (int64_t)(256 * 1024 / (K * 2)) / PX_PANEL * PX_PANEL);
        const int64_t mblock = PX_MAX((int64_t)6, (int64_t)(256 * 1024 / (K * 4)) / 6 * 6);
        float *wp = rw ? tls_buffer(TLS_WIDEN, (size_t)(chunk * K)) : NULL;
        float *upk = ru ? tls_buffer(TLS_UP, (size_t)(chunk * K)) : NULL;
        const px_dtype wt = rw ? PX_DTYPE_F32 : w->dtype, ut = !u ? wt : ru ? PX_DTYPE_F32 : u->dtype;
        const size_t wes = px_dtype_size(wt), ues = px_dtype_size(ut);
        for (int64_t c0 = r0; c0 < r1; c0 += chunk) {
            const int64_t c1 = PX_MIN(r1, c0 + chunk);
            for (int64_t p = c0; p < c1 && repack; p += PX_PANEL) {
                if (rw) pack_panel_f32(wp + (p - c0) * K, w, p, (int)PX_MIN((int64_t)PX_PANEL, c1 - p));
                if (ru) pack_panel_f32(upk + (p - c0) * K, u, p, (int)PX_MIN((int64_t)PX_PANEL, c1 - p));
            }
            const char *wbase = rw ? (const char *)wp - (size_t)(c0 * K) * 4 : (const char *)w->data;
            const char *ubase = !u ? NULL : ru ? (const char *)upk - (size_t)(c0 * K) * 4 : (const char *)u->data;
            for (int64_t mb = 0; mb < M; mb += mblock) {
                const int64_t me = PX_MIN(M, mb + mblock);
                for (int64_t p = c0; p < c1;) {
                    /* one token: 4 panels; two: 2; more: one panel, 6 tokens at a time */
                    const int P = (int)PX_MIN((int64_t)(M == 1 ? 4 : M == 2 ? 2 : 1), (c1 - p + PX_PANEL - 1) / PX_PANEL);
                    const int64_t nr = PX_MIN((int64_t)P * PX_PANEL, c1 - p);
                    const void *wpan[4], *upan[4];
                    for (int q = 0; q < P; q++) {
                        wpan[q] = wbase + (size_t)((p + q * PX_PANEL) * K) * wes;
                        if (u) upan[q] = ubase + (size_t)((p + q * PX_PANEL) * K) * ues;
                    }
                    const int64_t tsize = P > 1 ? M : balanced_tile(me - mb, 6);
                    for (int64_t m = mb, T = 0; m < me; m += T) {
                        T = PX_MIN(tsize, me - m);
                        float out[6 * 4 * PX_PANEL], uo[6 * 4 * PX_PANEL];
                        ptile(job->x + m * K, K, (int)T, P, wpan, wt, out);
                        if (u) ptile(job->x + m * K, K, (int)T, P, upan, ut, uo);
                        for (int t = 0; t < T; t++)
                            put_rows(s, m + t, p, nr, out + t * P * PX_PANEL, u ? uo + t * P * PX_PANEL : NULL);
                    }
                    p += (int64_t)P * PX_PANEL;
                }
            }
        }
        return;
    }
#endif
    float out[1], uo[1];
    for (int64_t r = r0; r < r1; r++)
        for (int64_t m = 0; m < M; m++) {
            out[0] = dot_portable(job->x + m * K, w, r);
            if (u) uo[0] = dot_portable(job->x + m * K, u, r);
            put_rows(s, m, r, 1, out, u ? uo : NULL);
        }
}

/* groups [g0, g1) of a quantized weight: chunks of groups (about 256 KiB),
 * each against every block of tokens, tile by tile */
static void quant_groups(const mm_job *job, const segment *s, int64_t g0, int64_t g1) {
    const px_weight *w = s->w;
    const int64_t M = job->M, N = w->rows, nb = job->act.nb;
    const size_t gb = px_q_group_bytes(w->dtype, nb);
    const bool q8 = w->dtype == PX_DTYPE_Q8_0;
    const px_qtile_fn fn = q8 ? job->qk->q8_0 : job->qk->q4_0;
    const int max_t = job->qk->max_t;
    const uint8_t *wdata = w->data, *updata = s->up ? s->up->data : NULL;
    const int64_t chunk = PX_MAX((int64_t)1, (int64_t)((s->up ? 128 : 256) * 1024 / gb));
    const int64_t mblock = PX_MAX((int64_t)max_t, (384 * 1024 / (nb * PX_QBLOCK)) / max_t * max_t);
    float out[8 * PX_QROWS], up[8 * PX_QROWS];
    for (int64_t c0 = g0; c0 < g1; c0 += chunk)
        for (int64_t mb = 0; mb < M; mb += mblock)
            for (int64_t g = c0; g < PX_MIN(g1, c0 + chunk); g++) {
                const int64_t n0 = g * PX_QROWS, nr = PX_MIN((int64_t)PX_QROWS, N - n0);
                const int64_t me = PX_MIN(M, mb + mblock), tsize = balanced_tile(me - mb, max_t);
                for (int64_t m0 = mb; m0 < me; m0 += tsize) {
                    const int T = (int)PX_MIN(tsize, me - m0);
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
        else float_rows(job, s, u0 * PX_PANEL, PX_MIN(u1 * PX_PANEL, s->w->rows));
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
        s->units = px_dtype_is_quantized(s->w->dtype) ? px_q_groups(s->w->rows)
                                                      : (s->w->rows + PX_PANEL - 1) / PX_PANEL;
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
    float s = 0;
    for (int64_t k = 0; k < n; k++) s += a[k] * b[k];
    return s;
}

void px_axpy(float *y, float alpha, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += alpha * x[i];
}
