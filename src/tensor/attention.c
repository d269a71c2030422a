/* attention.c - causal attention over a paged K/V store (f32 or f16).
 *
 * px_attention() takes a tile of query vectors that share one kv head of one
 * sequence (the query heads of a GQA group, for one or several tokens) and
 * runs three passes over the positions the tile needs:
 *   1. scores: keys are read once per tile, 16 positions at a time, and
 *      transposed, so 4 queries x 16 positions accumulate over the head
 *      dimension with broadcast multiply-adds (no horizontal sums); the
 *      portable path dots each (query, key) pair;
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

/* r[i][j] <- r[j][i] for an 8 x 8 block */
AVX2 static inline void transpose8(__m256 r[8]) {
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

AVX2 static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

/* out[j][0 .. 8 NC) = inv[j] * sum_p w[j][p - lo] V[p][d ..], j < nq, p over the span in order */
__attribute__((target("avx2,fma,f16c"), always_inline)) static inline void
pv_chunk(const px_kv_view *kv, int kvh, int hd, int d, int lo, int span, bool f16, const int NC, const float *const w[3],
         const float *inv, int nq, float *const o[3]) {
    const size_t esz = f16 ? 2 : 4;
    __m256 acc[3][4];
    PX_UNROLL
    for (int j = 0; j < 3; j++)
        PX_UNROLL
        for (int c = 0; c < NC; c++) acc[j][c] = _mm256_setzero_ps();
    for (int p = lo; p < lo + span;) {
        const char *row = (const char *)kv->v + (row_offset(kv, p, kvh, hd) + (size_t)d) * esz;
        int run = PX_MIN(kv->block_size - p % kv->block_size, lo + span - p);
        for (int r = 0; r < run; r++, p++, row += (size_t)kv->row_stride * esz) {
            __m256 b0 = _mm256_broadcast_ss(w[0] + (p - lo)), b1 = _mm256_broadcast_ss(w[1] + (p - lo));
            __m256 b2 = _mm256_broadcast_ss(w[2] + (p - lo));
            PX_UNROLL
            for (int c = 0; c < NC; c++) {
                __m256 v = load8(row, f16, 8 * (size_t)c);
                acc[0][c] = _mm256_fmadd_ps(b0, v, acc[0][c]);
                acc[1][c] = _mm256_fmadd_ps(b1, v, acc[1][c]);
                acc[2][c] = _mm256_fmadd_ps(b2, v, acc[2][c]);
            }
        }
    }
    PX_UNROLL
    for (int j = 0; j < 3; j++) {
        if (j >= nq) break;
        __m256 s = _mm256_set1_ps(inv[j]);
        PX_UNROLL
        for (int c = 0; c < NC; c++) _mm256_storeu_ps(o[j] + 8 * c, _mm256_mul_ps(acc[j][c], s));
    }
}

AVX2 static void attention_avx2(float *const *out, const float *const *q, const int32_t *first, const int32_t *last,
                                int n, int hd, float scale, const px_kv_view *kv, int kvh, float *S, int lo, int span) {
    const bool f16 = kv->dtype == PX_DTYPE_F16;
    const size_t esz = f16 ? 2 : 4;
    /* 1. scores, 16 positions at a time: their keys transposed into kt[d][16], then
     * 4 queries x 16 positions accumulate over d with broadcasts of q[d] */
    float kt[256 * 16];
    for (int p0 = lo; p0 < lo + span; p0 += 16) {
        const int np = PX_MIN(16, lo + span - p0);
        if (hd > 256) break; /* (checked by the caller) */
        const void *rows[16];
        for (int j = 0; j < 16; j++) rows[j] = j < np ? (const char *)kv->k + row_offset(kv, p0 + j, kvh, hd) * esz : NULL;
        for (int jb = 0; jb < 16; jb += 8)
            for (int d = 0; d < hd; d += 8) {
                __m256 r[8];
                PX_UNROLL
                for (int l = 0; l < 8; l++)
                    r[l] = rows[jb + l] ? load8(rows[jb + l], f16, (size_t)d) : _mm256_setzero_ps();
                transpose8(r);
                PX_UNROLL
                for (int l = 0; l < 8; l++) _mm256_storeu_ps(kt + (d + l) * 16 + jb, r[l]);
            }
        for (int i0 = 0; i0 < n; i0 += 4) {
            const float *qq[4];
            PX_UNROLL
            for (int c = 0; c < 4; c++) qq[c] = q[PX_MIN(i0 + c, n - 1)];
            __m256 a[4][2];
            PX_UNROLL
            for (int c = 0; c < 4; c++) a[c][0] = a[c][1] = _mm256_setzero_ps();
            for (int d = 0; d < hd; d++) {
                __m256 k0 = _mm256_loadu_ps(kt + d * 16), k1 = _mm256_loadu_ps(kt + d * 16 + 8);
                PX_UNROLL
                for (int c = 0; c < 4; c++) {
                    __m256 b = _mm256_broadcast_ss(qq[c] + d);
                    a[c][0] = _mm256_fmadd_ps(b, k0, a[c][0]);
                    a[c][1] = _mm256_fmadd_ps(b, k1, a[c][1]);
                }
            }
            __m256 sc = _mm256_set1_ps(scale);
            PX_UNROLL
            for (int c = 0; c < 4; c++) {
                if (i0 + c >= n) break;
                float t[16];
                _mm256_storeu_ps(t, _mm256_mul_ps(a[c][0], sc));
                _mm256_storeu_ps(t + 8, _mm256_mul_ps(a[c][1], sc));
                memcpy(S + (size_t)(i0 + c) * span + (p0 - lo), t, (size_t)np * sizeof(float));
            }
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
        const float *w[3] = {S + (size_t)i0 * span, S + (size_t)(i0 + (nq > 1)) * span, S + (size_t)(i0 + 2 * (nq > 2)) * span};
        for (int d = 0; d < hd; d += 32) {
            if (hd - d >= 32) {
                float *o[3] = {out[i0] + d, out[i0 + (nq > 1)] + d, out[i0 + 2 * (nq > 2)] + d};
                pv_chunk(kv, kvh, hd, d, lo, span, f16, 4, w, inv + i0, nq, o);
            } else { /* the last columns, 8 at a time */
                for (int c = d; c < hd; c += 8) {
                    float *o[3] = {out[i0] + c, out[i0 + (nq > 1)] + c, out[i0 + 2 * (nq > 2)] + c};
                    pv_chunk(kv, kvh, hd, c, lo, span, f16, 1, w, inv + i0, nq, o);
                }
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
    if (px_cpu_level_get() >= PX_CPU_AVX2 && head_dim % 8 == 0 && head_dim <= 256 && n <= 64) {
        attention_avx2(out, q, first, last, n, head_dim, scale, kv, kv_head, scratch, lo, hi - lo + 1);
        return;
    }
#endif
    attention_portable(out, q, first, last, n, head_dim, scale, kv, kv_head, scratch, lo, hi - lo + 1);
}
