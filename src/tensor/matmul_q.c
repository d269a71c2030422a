/* matmul_q.c - the quantized tile kernels: T tokens x one group of 8 rows,
 * over all blocks of the row, for q8_0 and q4_0 weights and 8-bit
 * activations (layouts in tensor_internal.h).
 *
 * Per block, each path forms the exact integer dot product of the 32 weight
 * codes with the 32 activation codes for every (token, row) and then adds
 * (float)dot * (d_w * d_x) to that pair's f32 sum with one fused
 * multiply-add. The integer part is exact and the float steps are the same
 * in every path, so portable, AVX2 and AVX-512 give bit-identical results,
 * whatever the tile size.
 *
 * How each path gets the integer dot product, 32 bytes (8 rows x 4 columns)
 * of codes at a time, against the token's 4 activation bytes broadcast:
 *   AVX2 q8_0    maddubs wants unsigned x signed bytes: |w| times x with w's
 *                sign (vpsignb), then vpmaddwd with ones to int32 per row.
 *   AVX2 q4_0    codes are 0..15, unsigned already: vpmaddubsw straight on
 *                the nibbles; eight of those fit in int16 (8 * 2*15*127 <
 *                32768) before one vpmaddwd per block; the zero point comes
 *                off as 8 * (sum of the block's activation codes).
 *   AVX-512 VNNI vpdpbusd (u8 x s8, summed by 4 into int32): q4_0 nibbles
 *                as they are; q8_0 as w + 128 (one xor), the extra 128 * sum
 *                of activation codes preloaded negated into the accumulator.
 * Weights are loaded once per tile and reused for its T tokens.
 */
#include "tensor_internal.h"
#include <math.h>
#include <string.h>

/* ---- portable ---- */

static void q8_tile_portable(const uint8_t *group, int64_t nb, const px_qact *a, int64_t m0, int T, float *out) {
    for (int i = 0; i < T * PX_QROWS; i++) out[i] = 0;
    for (int64_t b = 0; b < nb; b++) {
        const int8_t *codes = (const int8_t *)px_q_codes(group, 256, b);
        const uint16_t *scales = px_q_scales(group, 256, b);
        for (int t = 0; t < T; t++) {
            const int8_t *xq = a->q + ((m0 + t) * a->nb + b) * PX_QBLOCK;
            const float dx = a->d[(m0 + t) * a->nb + b];
            for (int r = 0; r < PX_QROWS; r++) {
                int32_t dot = 0;
                for (int j = 0; j < 8; j++)
                    for (int c = 0; c < 4; c++) dot += codes[j * 32 + r * 4 + c] * xq[j * 4 + c];
                float *o = &out[t * PX_QROWS + r];
                *o = fmaf((float)dot, px_f16_to_f32(scales[r]) * dx, *o);
            }
        }
    }
}

static void q4_tile_portable(const uint8_t *group, int64_t nb, const px_qact *a, int64_t m0, int T, float *out) {
    for (int i = 0; i < T * PX_QROWS; i++) out[i] = 0;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *codes = px_q_codes(group, 128, b);
        const uint16_t *scales = px_q_scales(group, 128, b);
        for (int t = 0; t < T; t++) {
            const int8_t *xq = a->q + ((m0 + t) * a->nb + b) * PX_QBLOCK;
            const float dx = a->d[(m0 + t) * a->nb + b];
            const int32_t sx = a->s[(m0 + t) * a->nb + b];
            for (int r = 0; r < PX_QROWS; r++) {
                int32_t dot = 0;
                for (int p = 0; p < 4; p++)
                    for (int c = 0; c < 4; c++) {
                        uint8_t v = codes[p * 32 + r * 4 + c];
                        dot += (v & 15) * xq[p * 4 + c] + (v >> 4) * xq[16 + p * 4 + c];
                    }
                dot -= 8 * sx;
                float *o = &out[t * PX_QROWS + r];
                *o = fmaf((float)dot, px_f16_to_f32(scales[r]) * dx, *o);
            }
        }
    }
}

const px_qkernels px_qkernels_portable = {q8_tile_portable, q4_tile_portable, 4};

#ifdef PX_HAVE_X86

/* loops over tokens, groups and the codes of a block are short and fixed:
 * unrolled, their accumulators live in registers */

#define AVX512_TARGET_STR "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"
#define AVX2_FN __attribute__((target("avx2,fma,f16c"), always_inline)) static inline
#define AVX512_FN __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"), always_inline)) static inline

static inline int32_t load_i32(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* ---- AVX2 ---- */

AVX2_FN void q8_tile_avx2(const uint8_t *group, int64_t nb, const px_qact *a, int64_t m0, const int T, float *out) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[8];
    const int8_t *xq[8];
    const float *xd[8];
    PX_UNROLL
    for (int t = 0; t < T; t++) {
        acc[t] = _mm256_setzero_ps();
        xq[t] = a->q + (m0 + t) * a->nb * PX_QBLOCK;
        xd[t] = a->d + (m0 + t) * a->nb;
    }
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *codes = px_q_codes(group, 256, b);
        const __m128i *scales = (const __m128i *)px_q_scales(group, 256, b);
        __m256i isum[8];
        PX_UNROLL
        for (int t = 0; t < T; t++) isum[t] = _mm256_setzero_si256();
        PX_UNROLL
        for (int j = 0; j < 8; j++) {
            __m256i w = _mm256_load_si256((const __m256i *)(codes + 32 * j));
            __m256i aw = _mm256_sign_epi8(w, w);
            PX_UNROLL
            for (int t = 0; t < T; t++) {
                __m256i xb = _mm256_set1_epi32(load_i32(xq[t] + b * PX_QBLOCK + 4 * j));
                __m256i p = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(xb, w));
                isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(p, ones));
            }
        }
        __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(scales));
        PX_UNROLL
        for (int t = 0; t < T; t++)
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_mul_ps(dw, _mm256_set1_ps(xd[t][b])), acc[t]);
    }
    PX_UNROLL
    for (int t = 0; t < T; t++) _mm256_storeu_ps(out + t * PX_QROWS, acc[t]);
}

AVX2_FN void q4_tile_avx2(const uint8_t *group, int64_t nb, const px_qact *a, int64_t m0, const int T, float *out) {
    const __m256i ones = _mm256_set1_epi16(1), low = _mm256_set1_epi8(15);
    __m256 acc[8];
    const int8_t *xq[8];
    const float *xd[8];
    const int32_t *xs[8];
    PX_UNROLL
    for (int t = 0; t < T; t++) {
        acc[t] = _mm256_setzero_ps();
        xq[t] = a->q + (m0 + t) * a->nb * PX_QBLOCK;
        xd[t] = a->d + (m0 + t) * a->nb;
        xs[t] = a->s + (m0 + t) * a->nb;
    }
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *codes = px_q_codes(group, 128, b);
        const __m128i *scales = (const __m128i *)px_q_scales(group, 128, b);
        __m256i s16[8];
        PX_UNROLL
        for (int t = 0; t < T; t++) s16[t] = _mm256_setzero_si256();
        PX_UNROLL
        for (int p = 0; p < 4; p++) {
            __m256i v = _mm256_load_si256((const __m256i *)(codes + 32 * p));
            __m256i lo = _mm256_and_si256(v, low), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
            PX_UNROLL
            for (int t = 0; t < T; t++) {
                const int8_t *x = xq[t] + b * PX_QBLOCK + 4 * p;
                s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(lo, _mm256_set1_epi32(load_i32(x))));
                s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(hi, _mm256_set1_epi32(load_i32(x + 16))));
            }
        }
        __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(scales));
        PX_UNROLL
        for (int t = 0; t < T; t++) {
            __m256i dot = _mm256_sub_epi32(_mm256_madd_epi16(s16[t], ones), _mm256_set1_epi32(8 * xs[t][b]));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_mul_ps(dw, _mm256_set1_ps(xd[t][b])), acc[t]);
        }
    }
    PX_UNROLL
    for (int t = 0; t < T; t++) _mm256_storeu_ps(out + t * PX_QROWS, acc[t]);
}

/* ---- AVX-512 VNNI (on 256-bit registers: 8 rows x 4 columns per instruction) ---- */

AVX512_FN void q8_tile_avx512(const uint8_t *group, int64_t nb, const px_qact *a, int64_t m0, const int T, float *out) {
    const __m256i bias = _mm256_set1_epi8((char)0x80);
    __m256 acc[8];
    const int8_t *xq[8];
    const float *xd[8];
    const int32_t *xs[8];
    PX_UNROLL
    for (int t = 0; t < T; t++) {
        acc[t] = _mm256_setzero_ps();
        xq[t] = a->q + (m0 + t) * a->nb * PX_QBLOCK;
        xd[t] = a->d + (m0 + t) * a->nb;
        xs[t] = a->s + (m0 + t) * a->nb;
    }
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *codes = px_q_codes(group, 256, b);
        const __m128i *scales = (const __m128i *)px_q_scales(group, 256, b);
        /* vpdpbusd takes ~5 cycles: independent chains per token, 4 of them for a single token */
        const int CH = T == 1 ? 4 : 2;
        __m256i isum[8][4];
        PX_UNROLL
        for (int t = 0; t < T; t++) {
            isum[t][0] = _mm256_set1_epi32(-128 * xs[t][b]);
            PX_UNROLL
            for (int c = 1; c < CH; c++) isum[t][c] = _mm256_setzero_si256();
        }
        PX_UNROLL
        for (int j = 0; j < 8; j += CH) {
            __m256i w[4];
            PX_UNROLL
            for (int c = 0; c < CH; c++)
                w[c] = _mm256_xor_si256(_mm256_load_si256((const __m256i *)(codes + 32 * (j + c))), bias);
            PX_UNROLL
            for (int t = 0; t < T; t++) {
                const int8_t *x = xq[t] + b * PX_QBLOCK + 4 * j;
                PX_UNROLL
                for (int c = 0; c < CH; c++)
                    isum[t][c] = _mm256_dpbusd_epi32(isum[t][c], w[c], _mm256_set1_epi32(load_i32(x + 4 * c)));
            }
        }
        __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(scales));
        PX_UNROLL
        for (int t = 0; t < T; t++) {
            __m256i dot = isum[t][0];
            PX_UNROLL
            for (int c = 1; c < CH; c++) dot = _mm256_add_epi32(dot, isum[t][c]);
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_mul_ps(dw, _mm256_set1_ps(xd[t][b])), acc[t]);
        }
    }
    for (int t = 0; t < T; t++) _mm256_storeu_ps(out + t * PX_QROWS, acc[t]);
}

AVX512_FN void q4_tile_avx512(const uint8_t *group, int64_t nb, const px_qact *a, int64_t m0, const int T, float *out) {
    const __m256i low = _mm256_set1_epi8(15);
    __m256 acc[8];
    const int8_t *xq[8];
    const float *xd[8];
    const int32_t *xs[8];
    PX_UNROLL
    for (int t = 0; t < T; t++) {
        acc[t] = _mm256_setzero_ps();
        xq[t] = a->q + (m0 + t) * a->nb * PX_QBLOCK;
        xd[t] = a->d + (m0 + t) * a->nb;
        xs[t] = a->s + (m0 + t) * a->nb;
    }
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *codes = px_q_codes(group, 128, b);
        const __m128i *scales = (const __m128i *)px_q_scales(group, 128, b);
        /* vpdpbusd takes ~5 cycles: independent chains per token (low and high nibbles), and for a
         * single token also even and odd p */
        const int CH = T == 1 ? 4 : 2;
        __m256i isum[8][4];
        PX_UNROLL
        for (int t = 0; t < T; t++) {
            isum[t][0] = _mm256_set1_epi32(-8 * xs[t][b]);
            PX_UNROLL
            for (int c = 1; c < CH; c++) isum[t][c] = _mm256_setzero_si256();
        }
        PX_UNROLL
        for (int p = 0; p < 4; p++) {
            __m256i v = _mm256_load_si256((const __m256i *)(codes + 32 * p));
            __m256i lo = _mm256_and_si256(v, low), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
            const int c0 = CH == 4 ? 2 * (p & 1) : 0;
            PX_UNROLL
            for (int t = 0; t < T; t++) {
                const int8_t *x = xq[t] + b * PX_QBLOCK + 4 * p;
                isum[t][c0] = _mm256_dpbusd_epi32(isum[t][c0], lo, _mm256_set1_epi32(load_i32(x)));
                isum[t][c0 + 1] = _mm256_dpbusd_epi32(isum[t][c0 + 1], hi, _mm256_set1_epi32(load_i32(x + 16)));
            }
        }
        __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(scales));
        PX_UNROLL
        for (int t = 0; t < T; t++) {
            __m256i dot = isum[t][0];
            PX_UNROLL
            for (int c = 1; c < CH; c++) dot = _mm256_add_epi32(dot, isum[t][c]);
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_mul_ps(dw, _mm256_set1_ps(xd[t][b])), acc[t]);
        }
    }
    for (int t = 0; t < T; t++) _mm256_storeu_ps(out + t * PX_QROWS, acc[t]);
}

/* One entry point per (kernel, path): a switch on T so every tile size is
 * compiled with its own fully unrolled token loop. */
#define AVX2_TARGET "avx2,fma,f16c"
#define AVX512_TARGET "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"
#define CASE(k, n) case n: k(group, nb, a, m0, n, out); break;
#define DISPATCH4(name, tgt, k)                                                                               \
    __attribute__((target(tgt))) static void name(const uint8_t *group, int64_t nb, const px_qact *a, int64_t m0, \
                                                  int T, float *out) {                                          \
        switch (T) { CASE(k, 1) CASE(k, 2) CASE(k, 3) default: k(group, nb, a, m0, 4, out); }                   \
    }
#define DISPATCH8(name, tgt, k)                                                                               \
    __attribute__((target(tgt))) static void name(const uint8_t *group, int64_t nb, const px_qact *a, int64_t m0, \
                                                  int T, float *out) {                                          \
        switch (T) {                                                                                          \
            CASE(k, 1) CASE(k, 2) CASE(k, 3) CASE(k, 4) CASE(k, 5) CASE(k, 6) CASE(k, 7)                      \
        default: k(group, nb, a, m0, 8, out);                                                                 \
        }                                                                                                     \
    }
DISPATCH4(q8_avx2, AVX2_TARGET, q8_tile_avx2)
DISPATCH4(q4_avx2, AVX2_TARGET, q4_tile_avx2)
DISPATCH8(q8_avx512, AVX512_TARGET, q8_tile_avx512)
DISPATCH8(q4_avx512, AVX512_TARGET, q4_tile_avx512)

const px_qkernels px_qkernels_avx2 = {q8_avx2, q4_avx2, 4};
const px_qkernels px_qkernels_avx512 = {q8_avx512, q4_avx512, 8};
#endif
