/* tensor_internal.h - what the tensor module's files share and nobody else
 * needs: the quantized layout's address arithmetic, 8-bit activations, and
 * the per-instruction-set kernel tables.
 *
 * Quantized group layout (see tensor.h): for nb = ceil(cols / 32) blocks, a
 * group of 8 rows is a run of superblocks of 8 blocks (the last may be
 * short), each [scales: 8 blocks x 8 rows f16 = 128 bytes][codes of its
 * blocks], codes being 256 bytes per block for q8_0 and 128 for q4_0. A
 * kernel thus reads a group as one forward stream (scales just ahead of the
 * codes they scale); with 128-byte scale areas every code load stays 32-byte
 * aligned, and groups follow each other 64-byte aligned when the buffer is.
 */
#ifndef PX_TENSOR_INTERNAL_H
#define PX_TENSOR_INTERNAL_H
#include "tensor.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define PX_HAVE_X86 1
#endif

/* short loops of fixed trip count (tokens of a tile, rows, chains): unrolled,
 * so their accumulators live in registers */
#define PX_UNROLL _Pragma("GCC unroll 16")

static inline int64_t px_q_blocks(int64_t cols) { return (cols + PX_QBLOCK - 1) / PX_QBLOCK; }
static inline int64_t px_q_groups(int64_t rows) { return (rows + PX_QROWS - 1) / PX_QROWS; }
#define PX_QSUPER 8 /* blocks per superblock */
static inline size_t px_q_block_bytes(px_dtype t) { return t == PX_DTYPE_Q8_0 ? 256 : 128; }
static inline size_t px_q_group_bytes(px_dtype t, int64_t nb) {
    size_t sb = (size_t)(nb + PX_QSUPER - 1) / PX_QSUPER, bytes = (size_t)nb * px_q_block_bytes(t) + sb * 128;
    return (bytes + 63) & ~(size_t)63;
}
/* where block b's codes and its 8 scales (one per row) are, inside a group */
static inline const uint8_t *px_q_codes(const uint8_t *group, size_t block_bytes, int64_t b) {
    return group + (size_t)(b / PX_QSUPER) * (128 + PX_QSUPER * block_bytes) + 128 + (size_t)(b % PX_QSUPER) * block_bytes;
}
static inline const uint16_t *px_q_scales(const uint8_t *group, size_t block_bytes, int64_t b) {
    return (const uint16_t *)(group + (size_t)(b / PX_QSUPER) * (128 + PX_QSUPER * block_bytes) +
                              (size_t)(b % PX_QSUPER) * 16);
}

#ifdef PX_HAVE_X86
/* e^x for 8 floats: x = n ln2 + r with |r| <= ln2/2, e^r by its Taylor
 * polynomial to degree 7 (relative error ~1e-7), 2^n through the exponent
 * bits. Inputs are clamped to [-87, 88] (e^-87 stands in for 0). */
__attribute__((target("avx2,fma"))) static inline __m256 px_exp8_avx2(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* silu(g) * u for 8 floats */
__attribute__((target("avx2,fma"))) static inline __m256 px_silu_mul8_avx2(__m256 g, __m256 u) {
    __m256 e = px_exp8_avx2(_mm256_sub_ps(_mm256_setzero_ps(), g));
    return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
}
#endif

void px_quant_row_to_f32(float *dst, const void *w, px_dtype type, int64_t row, int64_t cols);

/* ---- 8-bit activations: row m of x [M, K] becomes nb blocks of 32 int8
 * codes q (the tail of the last block zero), a scale d = max|x| / 127 and the
 * code sum s of each block (the kernels subtract zero points with it). ---- */
typedef struct {
    int8_t *q;    /* [M][nb * 32] */
    float *d;     /* [M][nb] */
    int32_t *s;   /* [M][nb] */
    int64_t M, nb;
} px_qact;

/* Quantizes rows [m0, m1) of x (row stride K) into a (sized for them). */
void px_qact_rows(const px_qact *a, const float *x, int64_t K, int64_t m0, int64_t m1);
void px_qact_rows_portable(const px_qact *a, const float *x, int64_t K, int64_t m0, int64_t m1);
void px_qact_rows_avx2(const px_qact *a, const float *x, int64_t K, int64_t m0, int64_t m1);

/* A quantized tile kernel: out[t][r] = row r of the group (8 rows) dotted with
 * activation row m0 + t, for t < T (1 <= T <= the table's max_t); nb blocks.
 * Every path computes, per block, the exact integer dot product, and adds
 * (float)dot * (d_w * d_x) to the row's f32 sum with one fused multiply-add,
 * block after block: all paths and tile sizes give bit-identical results. */
typedef void (*px_qtile_fn)(const uint8_t *group, int64_t nb, const px_qact *a, int64_t m0, int T, float *out);

typedef struct {
    px_qtile_fn q8_0, q4_0;
    int max_t;
} px_qkernels;

extern const px_qkernels px_qkernels_portable;
#ifdef PX_HAVE_X86
extern const px_qkernels px_qkernels_avx2;
extern const px_qkernels px_qkernels_avx512;
#endif
const px_qkernels *px_qkernels_get(void);

#endif
