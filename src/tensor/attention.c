/* attention.c - causal attention over a paged K/V store (f32 or f16).
 *
 * px_attention() takes a tile of query vectors that share one kv head of one
 * sequence (the query heads of a GQA group, for one or several tokens) and
 * runs three passes over the positions the tile needs:
 *   1. scores: each key row is read once for the whole tile and dotted with
 *      every query (positions outside a query's range are skipped);
 *   2. softmax of each query's row over its own range [first, last], kept
 *      unnormalized: out is divided by the row's sum at the end;
 *   3. values: out[i] = sum_p w[i][p] V[p], with V read in 32-wide column
 *      chunks for up to 3 queries at a time (12 accumulators in registers).
 * Every float of out[i] is produced by the same operations in the same order
 * whatever else is in the tile (the value sum runs over p in order, and
 * masked positions contribute exactly 0), so tiling and threading do not
 * change results. AVX2 (+F16C for an f16 cache) when available, portable C
 * otherwise.
 */
#include "tensor_internal.h"
#include <math.h>
#include <string.h>

static inline size_t row_offset(const px_kv_view *kv, int p, int kv_head, int head_dim) {
    return (size_t)kv->blocks[p / kv->block_size] * (size_t)kv->block_stride +
           (size_t)(p % kv->block_size) * (size_t)kv->row_stride + (size_t)kv_head * (size_t)head_dim;
}

/* ---- portable ---- */

static float load_f(const void *base, px_dtype t, size_t i) {
    return t == PX_DTYPE_F16 ? px_f16_to_f32(((const uint16_t *)base)[i]) : ((const float *)base)[i];
}

static void attention_portable(float *const *out, const float *const *q, const int32_t *first, const int32_t *last,
                               int n, int hd, float scale, const px_kv_view *kv, int kvh, float *S, int lo, int span) {
    for (int p = lo; p < lo + span; p++) {
        size_t off = row_offset(kv, p, kvh, hd);
        for (int i = 0; i < n; i++) {
            if (p < first[i] || p > last[i]) continue;
            float lane[8] = {0}, s = 0;
            int d = 0;
            for (; d + 8 <= hd; d += 8)
                for (int l = 0; l < 8; l++) lane[l] += q[i][d + l] * load_f(kv->k, kv->dtype, off + d + l);
            for (int l = 0; l < 8; l++) s += lane[l];
            for (; d < hd; d++) s += q[i][d] * load_f(kv->k, kv->dtype, off + d);
            S[(size_t)i * span + (p - lo)] = s * scale;
        }
    }
    for (int i = 0; i < n; i++) {
        float *row = S + (size_t)i * span, max = -INFINITY;
        for (int p = first[i]; p <= last[i]; p++) max = fmaxf(max, row[p - lo]);
        double sum = 0;
        for (int p = lo; p < lo + span; p++) {
            bool in = p >= first[i] && p <= last[i];
            row[p - lo] = in ? expf(row[p - lo] - max) : 0;
            sum += row[p - lo];
        }
        memset(out[i], 0, (size_t)hd * sizeof(float));
        for (int p = lo; p < lo + span; p++) {
            size_t off = row_offset(kv, p, kvh, hd);
            float w = row[p - lo];
            for (int d = 0; d < hd; d++) out[i][d] += w * load_f(kv->v, kv->dtype, off + d);
        }
        float inv = (float)(1.0 / sum);
        for (int d = 0; d < hd; d++) out[i][d] *= inv;
    }
}

/* ---- AVX2 ---- */
#ifdef PX_HAVE_X86
#define AVX2 __attribute__((target("avx2,fma,f16c")))

AVX2 static inline __m256 load8(const void *base, bool f16, size_t i) {
    if (f16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)base + i)));
    return _mm256_loadu_ps((const float *)base + i);
}

AVX2 static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

AVX2 static void attention_avx2(float *const *out, const float *const *q, const int32_t *first, const int32_t *last,
                                int n, int hd, float scale, const px_kv_view *kv, int kvh, float *S, int lo, int span) {
    const bool f16 = kv->dtype == PX_DTYPE_F16;
    /* 1. scores */
    for (int p = lo; p < lo + span; p++) {
        size_t off = row_offset(kv, p, kvh, hd);
        for (int i = 0; i < n; i++) {
            if (p < first[i] || p > last[i]) continue;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0;
            int d = 0;
            for (; d + 16 <= hd; d += 16) {
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q[i] + d), load8(kv->k, f16, off + d), a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q[i] + d + 8), load8(kv->k, f16, off + d + 8), a1);
            }
            for (; d < hd; d += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q[i] + d), load8(kv->k, f16, off + d), a0);
            S[(size_t)i * span + (p - lo)] = hsum8(_mm256_add_ps(a0, a1)) * scale;
        }
    }
    /* 2. softmax, unnormalized; lanes start at each row's own first position */
    float inv[64 * 8];
    for (int i = 0; i < n; i++) {
        float *row = S + (size_t)i * span, *r = row + (first[i] - lo);
        int len = last[i] - first[i] + 1, p = 0;
        __m256 vmax = _mm256_set1_ps(-INFINITY);
        for (; p + 8 <= len; p += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(r + p));
        float lanes[8], max = -INFINITY;
        _mm256_storeu_ps(lanes, vmax);
        for (int l = 0; l < 8; l++) max = fmaxf(max, lanes[l]);
        for (; p < len; p++) max = fmaxf(max, r[p]);
        __m256 vm = _mm256_set1_ps(max), vs = _mm256_setzero_ps();
        for (p = 0; p + 8 <= len; p += 8) {
            __m256 e = px_exp8_avx2(_mm256_sub_ps(_mm256_loadu_ps(r + p), vm));
            _mm256_storeu_ps(r + p, e);
            vs = _mm256_add_ps(vs, e);
        }
        if (p < len) { /* the tail through the same exp */
            float t[8] = {0};
            memcpy(t, r + p, (size_t)(len - p) * sizeof(float));
            _mm256_storeu_ps(t, px_exp8_avx2(_mm256_sub_ps(_mm256_loadu_ps(t), vm)));
            memcpy(r + p, t, (size_t)(len - p) * sizeof(float));
        }
        float sum = hsum8(vs);
        for (; p < len; p++) sum += r[p];
        for (int k = 0; k < first[i] - lo; k++) row[k] = 0;
        for (int k = last[i] - lo + 1; k < span; k++) row[k] = 0;
        inv[i] = 1.0f / sum;
    }
    /* 3. values: up to 3 queries x 32 columns in registers, p in order */
    for (int i0 = 0; i0 < n; i0 += 3) {
        int nq = PX_MIN(3, n - i0);
        const float *w0 = S + (size_t)i0 * span, *w1 = nq > 1 ? w0 + span : w0, *w2 = nq > 2 ? w0 + 2 * (size_t)span : w0;
        int pa = lo, pb = lo + span - 1; /* positions any of these queries needs */
        for (int d = 0; d < hd; d += 32) {
            int nc = PX_MIN(4, (hd - d) / 8);
            __m256 acc[3][4];
            for (int j = 0; j < 3; j++)
                for (int c = 0; c < 4; c++) acc[j][c] = _mm256_setzero_ps();
            for (int p = pa; p <= pb; p++) {
                size_t off = row_offset(kv, p, kvh, hd) + (size_t)d;
                __m256 b0 = _mm256_set1_ps(w0[p - lo]), b1 = _mm256_set1_ps(w1[p - lo]), b2 = _mm256_set1_ps(w2[p - lo]);
                for (int c = 0; c < nc; c++) {
                    __m256 v = load8(kv->v, f16, off + 8 * (size_t)c);
                    acc[0][c] = _mm256_fmadd_ps(b0, v, acc[0][c]);
                    acc[1][c] = _mm256_fmadd_ps(b1, v, acc[1][c]);
                    acc[2][c] = _mm256_fmadd_ps(b2, v, acc[2][c]);
                }
            }
            for (int j = 0; j < nq; j++) {
                __m256 s = _mm256_set1_ps(inv[i0 + j]);
                for (int c = 0; c < nc; c++) _mm256_storeu_ps(out[i0 + j] + d + 8 * c, _mm256_mul_ps(acc[j][c], s));
            }
        }
    }
}
#endif

void px_attention(float *const *out, const float *const *q, const int32_t *first, const int32_t *last, int n,
                  int head_dim, float scale, const px_kv_view *kv, int kv_head, float *scratch) {
    int lo = first[0], hi = last[0];
    for (int i = 1; i < n; i++) lo = PX_MIN(lo, first[i]), hi = PX_MAX(hi, last[i]);
#ifdef PX_HAVE_X86
    if (px_cpu_level_get() >= PX_CPU_AVX2 && head_dim % 8 == 0 && n <= 64) {
        attention_avx2(out, q, first, last, n, head_dim, scale, kv, kv_head, scratch, lo, hi - lo + 1);
        return;
    }
#endif
    attention_portable(out, q, first, last, n, head_dim, scale, kv, kv_head, scratch, lo, hi - lo + 1);
}
