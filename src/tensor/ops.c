/* ops.c - the element-wise and row-wise transformer ops: RMSNorm, RoPE,
 * SwiGLU, softmax, argmax. Straightforward loops, with AVX2 versions of the
 * ones that call exp (SwiGLU, softmax) and of argmax, chosen at run time;
 * the heavy lifting is in matmul*.c and attention.c.
 *
 * RoPE: px_rope_angles() computes cos/sin of pos * inv_freq[i] (in double,
 * as before) once per token; px_rope_*_cs() apply them to every head.
 */
#include "tensor_internal.h"
#include <math.h>
#include <string.h>

void px_rmsnorm(float *out, const float *x, const float *weight, int64_t rows, int64_t n, float eps) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        float *o = out + r * n;
        double ss = 0;
        for (int64_t i = 0; i < n; i++) ss += (double)xr[i] * xr[i];
        float scale = (float)(1.0 / sqrt(ss / (double)n + eps));
        for (int64_t i = 0; i < n; i++) o[i] = xr[i] * scale * weight[i];
    }
}

void px_rope_angles(float *cs, int head_dim, int pos, const float *inv_freq) {
    int half = head_dim / 2;
    for (int i = 0; i < half; i++) {
        double angle = (double)pos * (double)inv_freq[i];
        cs[i] = (float)cos(angle);
        cs[half + i] = (float)sin(angle);
    }
}

void px_rope_neox_cs(float *x, int n_heads, int head_dim, const float *cs) {
    int half = head_dim / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (int64_t)h * head_dim;
        for (int i = 0; i < half; i++) {
            float c = cs[i], s = cs[half + i], a = v[i], b = v[i + half];
            v[i] = a * c - b * s;
            v[i + half] = b * c + a * s;
        }
    }
}

void px_rope_interleaved_cs(float *x, int n_heads, int head_dim, const float *cs) {
    int half = head_dim / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (int64_t)h * head_dim;
        for (int i = 0; i < half; i++) {
            float c = cs[i], s = cs[half + i], a = v[2 * i], b = v[2 * i + 1];
            v[2 * i] = a * c - b * s;
            v[2 * i + 1] = b * c + a * s;
        }
    }
}

void px_rope_neox(float *x, int n_heads, int head_dim, int pos, const float *inv_freq) {
    float cs[1024];
    if (head_dim <= 1024) {
        px_rope_angles(cs, head_dim, pos, inv_freq);
        px_rope_neox_cs(x, n_heads, head_dim, cs);
        return;
    }
    int half = head_dim / 2;
    for (int i = 0; i < half; i++) {
        double angle = (double)pos * (double)inv_freq[i];
        float c = (float)cos(angle), s = (float)sin(angle);
        for (int h = 0; h < n_heads; h++) {
            float *v = x + (int64_t)h * head_dim;
            float a = v[i], b = v[i + half];
            v[i] = a * c - b * s;
            v[i + half] = b * c + a * s;
        }
    }
}

#ifdef PX_HAVE_X86
__attribute__((target("avx2,fma"))) static void swiglu_avx2(float *gate, const float *up, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(gate + i, px_silu_mul8_avx2(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
    if (i < n) { /* the tail through the same vector code, so a value's result does not depend on its place */
        float g[8] = {0}, u[8] = {0};
        memcpy(g, gate + i, (size_t)(n - i) * sizeof(float));
        memcpy(u, up + i, (size_t)(n - i) * sizeof(float));
        _mm256_storeu_ps(g, px_silu_mul8_avx2(_mm256_loadu_ps(g), _mm256_loadu_ps(u)));
        memcpy(gate + i, g, (size_t)(n - i) * sizeof(float));
    }
}

__attribute__((target("avx2,fma"))) static void softmax_avx2(float *x, int64_t n) {
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(x + i));
    float lanes[8], max = -INFINITY;
    _mm256_storeu_ps(lanes, vmax);
    for (int l = 0; l < 8; l++) max = lanes[l] > max ? lanes[l] : max;
    for (; i < n; i++) max = x[i] > max ? x[i] : max;
    __m256 vm = _mm256_set1_ps(max), vsum = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = px_exp8_avx2(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(x + i, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    if (i < n) { /* the tail through the same exp, padded with -inf (exp gives ~0, not counted) */
        float t[8];
        for (int l = 0; l < 8; l++) t[l] = i + l < n ? x[i + l] : -INFINITY;
        _mm256_storeu_ps(t, px_exp8_avx2(_mm256_sub_ps(_mm256_loadu_ps(t), vm)));
        memcpy(x + i, t, (size_t)(n - i) * sizeof(float));
        for (int64_t k = i; k < n; k++) vsum = _mm256_add_ps(vsum, _mm256_setr_ps(x[k], 0, 0, 0, 0, 0, 0, 0));
    }
    _mm256_storeu_ps(lanes, vsum);
    double sum = 0;
    for (int l = 0; l < 8; l++) sum += lanes[l];
    __m256 inv = _mm256_set1_ps((float)(1.0 / sum));
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
    for (; i < n; i++) x[i] *= (float)(1.0 / sum);
}

__attribute__((target("avx2,fma"))) static int64_t argmax_avx2(const float *x, int64_t n) {
    if (n < 16) {
        int64_t best = 0;
        for (int64_t i = 1; i < n; i++)
            if (x[i] > x[best]) best = i;
        return best;
    }
    /* lane-wise max, then the first index holding it */
    __m256 vmax = _mm256_loadu_ps(x);
    int64_t i = 8;
    for (; i + 8 <= n; i += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(x + i));
    float lanes[8], max = -INFINITY;
    _mm256_storeu_ps(lanes, vmax);
    for (int l = 0; l < 8; l++) max = lanes[l] > max ? lanes[l] : max;
    for (; i < n; i++) max = x[i] > max ? x[i] : max;
    for (i = 0; i < n; i++)
        if (x[i] == max) return i;
    /* NaNs: fall back to the scalar rule */
    int64_t best = 0;
    for (i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}
#endif

void px_swiglu(float *gate, const float *up, int64_t n) {
#ifdef PX_HAVE_X86
    if (px_cpu_level_get() >= PX_CPU_AVX2) {
        swiglu_avx2(gate, up, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void px_softmax(float *x, int64_t n) {
    if (n <= 0) return;
#ifdef PX_HAVE_X86
    if (px_cpu_level_get() >= PX_CPU_AVX2) {
        softmax_avx2(x, n);
        return;
    }
#endif
    float max = x[0];
    for (int64_t i = 1; i < n; i++) max = x[i] > max ? x[i] : max;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

int64_t px_argmax(const float *x, int64_t n) {
#ifdef PX_HAVE_X86
    if (px_cpu_level_get() >= PX_CPU_AVX2) return argmax_avx2(x, n);
#endif
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}
