/* tensor.h - dtypes and CPU kernels of the tensor module.
 *
 * A weight matrix is row-major [rows, cols] in one dtype; activations are
 * always f32. Kernels take plain pointers and sizes (no framework between the
 * reader and the math) and an optional px_pool to spread rows over threads.
 * Every kernel produces results that do not depend on the number of threads.
 *
 * Threading: kernels may be called from one thread at a time per pool.
 */
#ifndef PX_TENSOR_H
#define PX_TENSOR_H

#include "px_base.h"

typedef enum {
    PX_DTYPE_F32,
    PX_DTYPE_F16,
    PX_DTYPE_BF16,
    PX_DTYPE_COUNT,
} px_dtype;

const char *px_dtype_name(px_dtype t);
/* Parses "f32"/"float32", "f16"/"float16", "bf16"/"bfloat16" (any case) and the
 * safetensors spellings "F32"/"F16"/"BF16"; -1 when unknown. */
int px_dtype_parse(const char *s);
size_t px_dtype_size(px_dtype t);

float px_f16_to_f32(uint16_t h);
uint16_t px_f32_to_f16(float f); /* round to nearest even */
static inline float px_bf16_to_f32(uint16_t h) {
    union { uint32_t u; float f; } v = {.u = (uint32_t)h << 16};
    return v.f;
}
uint16_t px_f32_to_bf16(float f); /* round to nearest even */

/* Converts n elements between any two dtypes (src and dst may not overlap). */
void px_convert(void *dst, px_dtype dst_type, const void *src, px_dtype src_type, size_t n);
/* Converts row `row` of a [*, cols] matrix of `type` to f32. */
void px_row_to_f32(float *dst, const void *w, px_dtype type, int64_t row, int64_t cols);

/* A 2-D weight: row-major [rows, cols]. `data` is borrowed (mmap or owned elsewhere). */
typedef struct {
    px_dtype dtype;
    int64_t rows, cols;
    const void *data;
} px_weight;

/* y[m, n] = sum_k x[m, k] * w[n, k] (+ bias[n] when bias != NULL).
 * x: [M, K] f32 with row stride K; y: [M, N] f32. */
void px_matmul(px_pool *pool, float *y, const float *x, int64_t M, const px_weight *w, const float *bias);

/* sum_k a[k] * b[k], summed in the same order as px_matmul's dot products. */
float px_dot(const float *a, const float *b, int64_t n);
/* y[i] += alpha * x[i] */
void px_axpy(float *y, float alpha, const float *x, int64_t n);

/* out[i] = x[i] / sqrt(mean(x^2) + eps) * weight[i], for `rows` rows of n. In place allowed. */
void px_rmsnorm(float *out, const float *x, const float *weight, int64_t rows, int64_t n, float eps);

/* Rotates x[n_heads, head_dim] in the "rotate_half" (NeoX / HF) layout: pair
 * (i, i + head_dim/2) is rotated by pos * inv_freq[i]. */
void px_rope_neox(float *x, int n_heads, int head_dim, int pos, const float *inv_freq);

/* gate[i] = silu(gate[i]) * up[i] */
void px_swiglu(float *gate, const float *up, int64_t n);

/* In-place softmax of x[n] (max-subtracted, f32 accumulation in double-free order). */
void px_softmax(float *x, int64_t n);

/* index of the largest value; ties go to the lowest index. */
int64_t px_argmax(const float *x, int64_t n);

#endif
