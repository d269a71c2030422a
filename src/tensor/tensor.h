/* tensor.h - dtypes and CPU kernels of the tensor module.
 *
 * A weight matrix is [rows, cols] in one dtype: row-major for f32/f16/bf16,
 * and for the block-quantized q8_0/q4_0 a layout of our own that interleaves
 * groups of 8 rows (see "quantized weights" below). Activations are always
 * f32 at the interface; kernels quantize them to 8 bits internally where the
 * weights are quantized. Kernels take plain pointers and sizes (no framework
 * between the reader and the math) and an optional px_pool to spread rows
 * over threads. Every kernel produces results that do not depend on the
 * number of threads, and the matmul gives a token the same result whatever
 * other tokens share its batch.
 *
 * Instruction sets: each kernel has a portable C version and x86-64 versions
 * chosen at run time (AVX2+FMA+F16C; AVX-512 VNNI for the int8 dot products).
 * PX_NO_AVX512=1 and PX_NO_AVX2=1 in the environment cap the choice, so every
 * path can be tested on one machine.
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
    PX_DTYPE_Q8_0, /* blocks of 32 int8 + one f16 scale: x = d * q */
    PX_DTYPE_Q4_0, /* blocks of 32 4-bit codes + one f16 scale, zero point 8: x = d * (q - 8) */
    PX_DTYPE_COUNT,
} px_dtype;

const char *px_dtype_name(px_dtype t);
/* Parses "f32"/"float32", "f16"/"float16", "bf16"/"bfloat16", "q8_0", "q4_0"
 * (any case) and the safetensors spellings "F32"/"F16"/"BF16"; -1 when unknown. */
int px_dtype_parse(const char *s);
/* Bytes per element; 0 for the block-quantized types (use px_weight_bytes). */
size_t px_dtype_size(px_dtype t);
bool px_dtype_is_quantized(px_dtype t);

/* ---- instruction set of the kernels ---- */
typedef enum { PX_CPU_PORTABLE, PX_CPU_AVX2, PX_CPU_AVX512 } px_cpu_level;
/* The best level this CPU supports, capped by PX_NO_AVX2 / PX_NO_AVX512. */
px_cpu_level px_cpu_level_get(void);
/* Caps the level for the rest of the process (tests use it to run every path);
 * returns the level in effect (never above what the CPU supports). */
px_cpu_level px_cpu_level_set(px_cpu_level level);
const char *px_cpu_level_name(px_cpu_level level);

float px_f16_to_f32(uint16_t h);
uint16_t px_f32_to_f16(float f); /* round to nearest even */
static inline float px_bf16_to_f32(uint16_t h) {
    union { uint32_t u; float f; } v = {.u = (uint32_t)h << 16};
    return v.f;
}
uint16_t px_f32_to_bf16(float f); /* round to nearest even */

/* Converts n elements between two of f32/f16/bf16 (src and dst may not overlap). */
void px_convert(void *dst, px_dtype dst_type, const void *src, px_dtype src_type, size_t n);
/* Converts row `row` of a [*, cols] matrix of `type` (any dtype) to f32. */
void px_row_to_f32(float *dst, const void *w, px_dtype type, int64_t row, int64_t cols);

/* ---- quantized weights ----
 * A q8_0/q4_0 matrix is stored as groups of PX_QROWS consecutive rows; each
 * row is cut into blocks of PX_QBLOCK columns (the last one zero-padded), and
 * rows past the end of the last group are zero. A group holds, block after
 * block, the codes of its 8 rows for that block interleaved 4 columns at a
 * time (32 bytes = 8 rows x 4 columns for q8_0; for q4_0 each byte carries
 * column c in its low nibble and column c+16 in its high nibble), followed by
 * the f16 scales of every block, 8 per block (one per row). One 32-byte load
 * thus feeds 8 rows at once, and the int32 lanes of an 8-bit dot product are
 * the 8 rows: no horizontal sums. Scales: q8_0 d = max|x| / 127; q4_0 d = -m/8
 * where m is the element of largest magnitude (so m itself is exact and the
 * codes use all of [-8, 7]). */
#define PX_QBLOCK 32
#define PX_QROWS 8
size_t px_weight_bytes(px_dtype t, int64_t rows, int64_t cols);
/* Writes a row-major [rows, cols] matrix of src_type (f32/f16/bf16) as dtype
 * t (any dtype) into dst, which holds px_weight_bytes(t, rows, cols);
 * quantizing runs over the pool (may be NULL). */
void px_weight_pack(px_pool *pool, void *dst, px_dtype t, const void *src, px_dtype src_type, int64_t rows,
                    int64_t cols);

/* A 2-D weight [rows, cols]. `data` is borrowed (mmap or owned elsewhere).
 * Layouts: q8_0/q4_0 always their group layout (above); f32/f16/bf16
 * row-major, or, with `panels`, in panels of PX_PANEL rows stored k-major:
 * element (r, k) at ((r / 16) * cols + k) * 16 + r % 16, rows past the end
 * zero (px_weight_pack_panels writes it; the matmul then reads the weights
 * as they are, where row-major ones are repacked on the fly). */
#define PX_PANEL 16
typedef struct {
    px_dtype dtype;
    int64_t rows, cols;
    const void *data;
    bool panels;
} px_weight;

/* Row `row` of w in any dtype and layout, as f32. */
void px_weight_row_to_f32(float *dst, const px_weight *w, int64_t row);
/* Bytes and packing of the panel layout of a float dtype t (f32/f16/bf16), from
 * a row-major [rows, cols] src of src_type. */
size_t px_weight_panel_bytes(px_dtype t, int64_t rows, int64_t cols);
void px_weight_pack_panels(px_pool *pool, void *dst, px_dtype t, const void *src, px_dtype src_type, int64_t rows,
                           int64_t cols);

/* y[m, n] = sum_k x[m, k] * w[n, k] (+ bias[n] when bias != NULL).
 * x: [M, K] f32 with row stride K; y: [M, N] f32. With q8_0/q4_0 weights the
 * rows of x are first quantized to 8 bits in blocks of 32 (one f32 scale per
 * block) and the dot products run on integers, one block at a time. */
void px_matmul(px_pool *pool, float *y, const float *x, int64_t M, const px_weight *w, const float *bias);

/* Several products of the same x in one pass over the pool (q, k, v): outs[i].y =
 * x * outs[i].w^T + outs[i].bias. All weights have the same number of columns. */
typedef struct {
    float *y;
    const px_weight *w;
    const float *bias; /* may be NULL */
} px_matmul_out;
void px_matmul_multi(px_pool *pool, const float *x, int64_t M, const px_matmul_out *outs, int n);

/* y = silu(x * gate^T) * (x * up^T), the gated MLP's first half, computed
 * tile by tile without the two intermediate matrices. y: [M, gate->rows]. */
void px_matmul_swiglu(px_pool *pool, float *y, const float *x, int64_t M, const px_weight *gate, const px_weight *up);

/* sum_k a[k] * b[k], summed in the same order as px_matmul's dot products. */
float px_dot(const float *a, const float *b, int64_t n);
/* y[i] += alpha * x[i] */
void px_axpy(float *y, float alpha, const float *x, int64_t n);

/* out[i] = x[i] / sqrt(mean(x^2) + eps) * weight[i], for `rows` rows of n. In place allowed. */
void px_rmsnorm(float *out, const float *x, const float *weight, int64_t rows, int64_t n, float eps);

/* Rotates x[n_heads, head_dim] in the "rotate_half" (NeoX / HF) layout: pair
 * (i, i + head_dim/2) is rotated by pos * inv_freq[i]. */
void px_rope_neox(float *x, int n_heads, int head_dim, int pos, const float *inv_freq);
/* The same with the angles' cos/sin given (cs[i] = cos, cs[half + i] = sin of
 * pos * inv_freq[i]; px_rope_angles() fills them), so a batch computes them
 * once per token rather than once per layer. */
void px_rope_angles(float *cs, int head_dim, int pos, const float *inv_freq);
void px_rope_neox_cs(float *x, int n_heads, int head_dim, const float *cs);
/* The interleaved layout (GPT-J, Meta's original Llama): pair (2i, 2i+1)
 * rotated by pos * inv_freq[i]. */
void px_rope_interleaved_cs(float *x, int n_heads, int head_dim, const float *cs);

/* gate[i] = silu(gate[i]) * up[i] */
void px_swiglu(float *gate, const float *up, int64_t n);

/* In-place softmax of x[n] (max-subtracted). */
void px_softmax(float *x, int64_t n);

/* index of the largest value; ties go to the lowest index. */
int64_t px_argmax(const float *x, int64_t n);

/* ---- attention over a paged K/V store ----
 * The keys (values likewise) of one sequence in one layer: position p is at
 * element  blocks[p / block_size] * block_stride + (p % block_size) * row_stride
 * of k, and its kv head h starts head_dim elements further per head. */
typedef struct {
    const void *k, *v;
    px_dtype dtype;          /* f32 or f16 */
    const int32_t *blocks;   /* the sequence's block table */
    int block_size;
    int64_t block_stride;    /* elements from one physical block to the next */
    int64_t row_stride;      /* elements from one position to the next (kv_dim) */
} px_kv_view;

/* Causal attention of n query vectors that share kv head kv_head of one
 * sequence: query i (q[i], head_dim floats) attends to positions
 * [first[i], last[i]]: out[i] = softmax(scale * q[i] . K^T) V. scratch holds
 * n * (max(last) - min(first) + 1) floats. Each out[i] is computed the same
 * way whatever the other queries are (so tiles and threads do not change it). */
void px_attention(float *const *out, const float *const *q, const int32_t *first, const int32_t *last, int n,
                  int head_dim, float scale, const px_kv_view *kv, int kv_head, float *scratch);

#endif
