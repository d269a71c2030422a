/* quant.c - block quantization: packing weights into q8_0/q4_0 groups (at
 * load time), unpacking one row back to f32 (embedding lookups, tests), and
 * quantizing activations to 8 bits before a quantized matmul.
 *
 * Weights, per row and block of 32 columns:
 *   q8_0  d = max|x| / 127, rounded to f16; q = round(x / d) in [-127, 127].
 *   q4_0  m = the element of largest magnitude, d = m / -8 rounded to f16;
 *         code = round(x / d) + 8 clamped to [0, 15]. m maps to code 0 and the
 *         opposite end to 15, so the 16 levels cover [-|m|, |m|] and m is
 *         exact: the error is at most |d|/2 except for elements near -m, which
 *         clamp to 7|d| (error at most |d|).
 * Activations: per token and block, d = max|x| / 127 (f32), q = round(x *
 * 127 / max|x|), s = sum of q. The AVX2 version rounds exactly like the
 * portable one (same multiply, round-to-nearest-even), so every instruction
 * set sees the same codes.
 */
#include "tensor_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- weights ---- */

size_t px_weight_bytes(px_dtype t, int64_t rows, int64_t cols) {
    if (px_dtype_is_quantized(t)) return (size_t)px_q_groups(rows) * px_q_group_bytes(t, px_q_blocks(cols));
    return (size_t)rows * (size_t)cols * px_dtype_size(t);
}

/* byte offset of the code of (row r of the group, column c of the block) inside the block's codes */
static inline size_t q8_pos(int r, int c) { return (size_t)(c / 4) * 32 + (size_t)r * 4 + (size_t)(c % 4); }
static inline size_t q4_pos(int r, int c) { return (size_t)((c % 16) / 4) * 32 + (size_t)r * 4 + (size_t)(c % 4); }

/* round to nearest, ties to even, for |x| < 2^22 (no libm call, no SSE4.1 needed) */
static inline float round_even(float x) {
    const float magic = 12582912.0f; /* 1.5 * 2^23: the sum has ulp 1 */
    return (x + magic) - magic;
}

static inline float clampf(float x, float lo, float hi) { return x < lo ? lo : x > hi ? hi : x; }

static void pack_block(uint8_t *codes, uint16_t *scales, px_dtype t, int r, const float *x) {
    float m = 0, amax = 0; /* m: the element of largest magnitude */
    for (int c = 0; c < PX_QBLOCK; c++) {
        float a = x[c] < 0 ? -x[c] : x[c];
        if (a > amax) amax = a, m = x[c];
    }
    if (t == PX_DTYPE_Q8_0) {
        uint16_t d16 = px_f32_to_f16(amax / 127.0f);
        float d = px_f16_to_f32(d16), id = d > 0 ? 1.0f / d : 0;
        scales[r] = d16;
        for (int c = 0; c < PX_QBLOCK; c++)
            codes[q8_pos(r, c)] = (uint8_t)(int8_t)clampf(round_even(x[c] * id), -127, 127);
    } else {
        uint16_t d16 = px_f32_to_f16(m / -8.0f);
        float d = px_f16_to_f32(d16), id = d != 0 ? 1.0f / d : 0;
        scales[r] = d16;
        for (int c = 0; c < PX_QBLOCK; c++) {
            int code = (int)clampf(round_even(x[c] * id) + 8, 0, 15);
            codes[q4_pos(r, c)] |= (uint8_t)(c < 16 ? code : code << 4);
        }
    }
}

typedef struct {
    void *dst;
    px_dtype t, src_type;
    const void *src;
    int64_t rows, cols;
} pack_job;

static void pack_groups(void *arg, int64_t g0, int64_t g1, int thread) {
    (void)thread;
    const pack_job *j = arg;
    const int64_t nb = px_q_blocks(j->cols);
    const size_t bb = px_q_block_bytes(j->t), gb = px_q_group_bytes(j->t, nb);
    float *row = px_malloc((size_t)(nb * PX_QBLOCK) * sizeof(float));
    memset((char *)j->dst + (size_t)g0 * gb, 0, (size_t)(g1 - g0) * gb);
    for (int64_t g = g0; g < g1; g++) {
        uint8_t *group = (uint8_t *)j->dst + (size_t)g * gb;
        for (int r = 0; r < PX_QROWS && g * PX_QROWS + r < j->rows; r++) {
            memset(row, 0, (size_t)(nb * PX_QBLOCK) * sizeof(float));
            px_row_to_f32(row, j->src, j->src_type, g * PX_QROWS + r, j->cols);
            for (int64_t b = 0; b < nb; b++)
                pack_block((uint8_t *)px_q_codes(group, bb, b), (uint16_t *)px_q_scales(group, bb, b), j->t, r,
                           row + b * PX_QBLOCK);
        }
    }
    free(row);
}

void px_weight_pack(px_pool *pool, void *dst, px_dtype t, const void *src, px_dtype src_type, int64_t rows,
                    int64_t cols) {
    if (!px_dtype_is_quantized(t)) {
        px_convert(dst, t, src, src_type, (size_t)rows * (size_t)cols);
        return;
    }
    pack_job j = {dst, t, src_type, src, rows, cols};
    px_pool_run(pool, px_q_groups(rows), 64, pack_groups, &j);
}

/* ---- float panels ---- */

size_t px_weight_panel_bytes(px_dtype t, int64_t rows, int64_t cols) {
    return (size_t)((rows + PX_PANEL - 1) / PX_PANEL) * PX_PANEL * (size_t)cols * px_dtype_size(t);
}

static void pack_panels(void *arg, int64_t p0, int64_t p1, int thread) {
    (void)thread;
    const pack_job *j = arg;
    const size_t esz = px_dtype_size(j->t);
    float *row = px_malloc((size_t)j->cols * sizeof(float));
    char *tmp = px_malloc((size_t)j->cols * esz);
    for (int64_t p = p0; p < p1; p++) {
        char *panel = (char *)j->dst + (size_t)(p * PX_PANEL * j->cols) * esz;
        for (int r = 0; r < PX_PANEL; r++) {
            if (p * PX_PANEL + r < j->rows) {
                px_row_to_f32(row, j->src, j->src_type, p * PX_PANEL + r, j->cols);
                px_convert(tmp, j->t, row, PX_DTYPE_F32, (size_t)j->cols);
            } else {
                memset(tmp, 0, (size_t)j->cols * esz);
            }
            if (esz == 4)
                for (int64_t k = 0; k < j->cols; k++) ((uint32_t *)panel)[k * PX_PANEL + r] = ((const uint32_t *)tmp)[k];
            else
                for (int64_t k = 0; k < j->cols; k++) ((uint16_t *)panel)[k * PX_PANEL + r] = ((const uint16_t *)tmp)[k];
        }
    }
    free(row);
    free(tmp);
}

void px_weight_pack_panels(px_pool *pool, void *dst, px_dtype t, const void *src, px_dtype src_type, int64_t rows,
                           int64_t cols) {
    pack_job j = {dst, t, src_type, src, rows, cols};
    px_pool_run(pool, (rows + PX_PANEL - 1) / PX_PANEL, 16, pack_panels, &j);
}

void px_weight_row_to_f32(float *dst, const px_weight *w, int64_t row) {
    if (!w->panels || px_dtype_is_quantized(w->dtype)) {
        px_row_to_f32(dst, w->data, w->dtype, row, w->cols);
        return;
    }
    const size_t esz = px_dtype_size(w->dtype);
    const char *base = (const char *)w->data + ((size_t)(row / PX_PANEL) * PX_PANEL * (size_t)w->cols + (size_t)(row % PX_PANEL)) * esz;
    for (int64_t k = 0; k < w->cols; k++) px_convert(dst + k, PX_DTYPE_F32, base + (size_t)k * PX_PANEL * esz, w->dtype, 1);
}

void px_quant_row_to_f32(float *dst, const void *w, px_dtype t, int64_t row, int64_t cols) {
    const int64_t nb = px_q_blocks(cols);
    const size_t bb = px_q_block_bytes(t);
    const uint8_t *group = (const uint8_t *)w + (size_t)(row / PX_QROWS) * px_q_group_bytes(t, nb);
    const int r = (int)(row % PX_QROWS);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *codes = px_q_codes(group, bb, b);
        float d = px_f16_to_f32(px_q_scales(group, bb, b)[r]);
        for (int c = 0; c < PX_QBLOCK && b * PX_QBLOCK + c < cols; c++) {
            float v;
            if (t == PX_DTYPE_Q8_0) v = (float)(int8_t)codes[q8_pos(r, c)];
            else v = (float)(((c < 16 ? codes[q4_pos(r, c)] : codes[q4_pos(r, c)] >> 4) & 15) - 8);
            dst[b * PX_QBLOCK + c] = d * v;
        }
    }
}

/* ---- activations ---- */

void px_qact_rows_portable(const px_qact *a, const float *x, int64_t K, int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; m++) {
        const float *xr = x + m * K;
        for (int64_t b = 0; b < a->nb; b++) {
            int64_t k0 = b * PX_QBLOCK, n = PX_MIN((int64_t)PX_QBLOCK, K - k0);
            float amax = 0;
            for (int64_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(xr[k0 + i]));
            float id = amax > 0 ? 127.0f / amax : 0;
            int8_t *q = a->q + (m * a->nb + b) * PX_QBLOCK;
            int32_t s = 0;
            for (int64_t i = 0; i < PX_QBLOCK; i++) {
                q[i] = i < n ? (int8_t)nearbyintf(xr[k0 + i] * id) : 0;
                s += q[i];
            }
            a->d[m * a->nb + b] = amax / 127.0f;
            a->s[m * a->nb + b] = s;
        }
    }
}

#ifdef PX_HAVE_X86
__attribute__((target("avx2,fma,f16c"))) void px_qact_rows_avx2(const px_qact *a, const float *x, int64_t K, int64_t m0,
                                                                 int64_t m1) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    float tail[PX_QBLOCK];
    for (int64_t m = m0; m < m1; m++) {
        const float *xr = x + m * K;
        for (int64_t b = 0; b < a->nb; b++) {
            int64_t k0 = b * PX_QBLOCK;
            const float *src = xr + k0;
            if (k0 + PX_QBLOCK > K) { /* last, partial block: zero-padded copy */
                memset(tail, 0, sizeof tail);
                memcpy(tail, src, (size_t)(K - k0) * sizeof(float));
                src = tail;
            }
            __m256 v0 = _mm256_loadu_ps(src), v1 = _mm256_loadu_ps(src + 8);
            __m256 v2 = _mm256_loadu_ps(src + 16), v3 = _mm256_loadu_ps(src + 24);
            __m256 mx = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                                      _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
            __m128 h = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
            h = _mm_max_ps(h, _mm_movehl_ps(h, h));
            h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
            float amax = _mm_cvtss_f32(h);
            float id = amax > 0 ? 127.0f / amax : 0;
            __m256 vid = _mm256_set1_ps(id);
#define ROUND_NEAREST (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
            __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v0, vid), ROUND_NEAREST));
            __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v1, vid), ROUND_NEAREST));
            __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v2, vid), ROUND_NEAREST));
            __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v3, vid), ROUND_NEAREST));
            __m256i sum = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
            __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
            s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
            s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
            /* packs work per 128-bit lane: (i0 lo, i1 lo, i0 hi, i1 hi) -> fix with a permute */
            __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
            p = _mm256_permutevar8x32_epi32(p, perm);
            _mm256_storeu_si256((__m256i *)(a->q + (m * a->nb + b) * PX_QBLOCK), p);
            a->d[m * a->nb + b] = amax / 127.0f;
            a->s[m * a->nb + b] = _mm_cvtsi128_si32(s4);
        }
    }
}
#endif

void px_qact_rows(const px_qact *a, const float *x, int64_t K, int64_t m0, int64_t m1) {
#ifdef PX_HAVE_X86
    if (px_cpu_level_get() >= PX_CPU_AVX2) {
        px_qact_rows_avx2(a, x, K, m0, m1);
        return;
    }
#endif
    px_qact_rows_portable(a, x, K, m0, m1);
}
