/* test_tensor_kernels.c - every tensor kernel against a straightforward
 * scalar reference (double precision where it matters) on random inputs,
 * with odd sizes (not multiples of the 8-row group, the 32-column block or
 * the vector width), on every instruction-set path this CPU has (portable,
 * AVX2, AVX-512; px_cpu_level_set switches between them):
 *   - quantization: q8_0/q4_0 round trips within their error bounds, 8-bit
 *     activations identical on every path and within half a step;
 *   - matmul for every weight dtype against the product of the dequantized
 *     operands (float weights row-major and in panels); bit-identical across
 *     thread counts, tile positions (a token alone or in a batch) and the two
 *     float layouts, px_matmul_multi and px_matmul_swiglu against their
 *     unfused forms; quantized also across instruction-set paths;
 *   - attention over a paged, shuffled f32/f16 K/V store with GQA groups and
 *     sliding windows; a query alone and in a tile give identical results;
 *   - RMSNorm, RoPE (both layouts), SwiGLU, softmax, argmax.
 */
#include "px_test.h"
#include "tensor.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double urand(void) { /* [0, 1) */
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) * (1.0 / 9007199254740992.0);
}
static float nrand(void) { /* roughly normal */
    return (float)((urand() + urand() + urand() + urand() - 2.0) * 1.7320508);
}
static float *rand_vec(int64_t n, float scale) {
    float *v = px_malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) v[i] = nrand() * scale;
    return v;
}

static px_cpu_level levels[3];
static int n_levels;

static void find_levels(void) {
    px_cpu_level top = px_cpu_level_get();
    for (int l = PX_CPU_PORTABLE; l <= (int)top; l++) levels[n_levels++] = (px_cpu_level)l;
    printf("instruction-set paths tested:");
    for (int i = 0; i < n_levels; i++) printf(" %s", px_cpu_level_name(levels[i]));
    printf("\n");
}

/* ---- quantization ---- */

static void test_weight_roundtrip(void) {
    const int64_t shapes[][2] = {{1, 1}, {7, 31}, {9, 33}, {13, 100}, {16, 64}, {3, 172}};
    for (size_t s = 0; s < PX_ARRAY_LEN(shapes); s++) {
        int64_t rows = shapes[s][0], cols = shapes[s][1];
        float *w = rand_vec(rows * cols, 0.05f), *back = px_malloc((size_t)cols * sizeof(float));
        w[0] = 0.3f; /* an outlier in the first block */
        for (int t = PX_DTYPE_Q8_0; t <= PX_DTYPE_Q4_0; t++) {
            void *q = px_aligned_alloc(px_weight_bytes((px_dtype)t, rows, cols));
            px_weight_pack(NULL, q, (px_dtype)t, w, PX_DTYPE_F32, rows, cols);
            int bad = 0;
            for (int64_t r = 0; r < rows; r++) {
                px_row_to_f32(back, q, (px_dtype)t, r, cols);
                for (int64_t b = 0; b * 32 < cols; b++) {
                    float amax = 0;
                    for (int64_t c = b * 32; c < PX_MIN(cols, b * 32 + 32); c++) amax = fmaxf(amax, fabsf(w[r * cols + c]));
                    for (int64_t c = b * 32; c < PX_MIN(cols, b * 32 + 32); c++) {
                        float err = fabsf(back[c] - w[r * cols + c]);
                        /* q8_0: half a step (amax/127), plus the f16 rounding of the scale;
                         * q4_0: a step of amax/8 at most (the clamped end), else half of it */
                        float bound = t == PX_DTYPE_Q8_0 ? amax / 254 * 1.002f + 1e-7f : amax / 8 * 1.002f + 1e-7f;
                        if (err > bound) bad++;
                    }
                }
            }
            CHECK_MSG(bad == 0, "%s %lldx%lld: %d elements beyond the error bound", px_dtype_name((px_dtype)t),
                      (long long)rows, (long long)cols, bad);
            px_aligned_free(q);
        }
        free(w);
        free(back);
    }
    /* q4_0: the element of largest magnitude is exact, and the RMS error is near |d|/sqrt(12) */
    float blk[32], back[32];
    for (int i = 0; i < 32; i++) blk[i] = nrand();
    blk[5] = -4.0f;
    void *q = px_aligned_alloc(px_weight_bytes(PX_DTYPE_Q4_0, 1, 32));
    px_weight_pack(NULL, q, PX_DTYPE_Q4_0, blk, PX_DTYPE_F32, 1, 32);
    px_row_to_f32(back, q, PX_DTYPE_Q4_0, 0, 32);
    CHECK(back[5] == -4.0f);
    px_aligned_free(q);
}

static void test_float_dtypes(void) {
    /* f32 -> f16 -> f32 and bf16: round to nearest even */
    CHECK(px_f16_to_f32(px_f32_to_f16(1.0f)) == 1.0f);
    CHECK(px_f32_to_f16(65520.0f) == 0x7c00);                 /* rounds to inf */
    CHECK(px_f16_to_f32(px_f32_to_f16(5.9604645e-8f)) == 5.9604645e-8f); /* smallest subnormal */
    CHECK(px_f32_to_bf16(1.00390625f) == 0x3f80);             /* tie to even */
    CHECK(px_dtype_parse("Q8_0") == PX_DTYPE_Q8_0 && px_dtype_parse("q4_0") == PX_DTYPE_Q4_0);
    /* px_convert f32 -> f16 (vectorized on AVX2) equals the scalar rounding, on every path */
    enum { NC = 1003 };
    float v[NC];
    uint16_t h[NC];
    for (int i = 0; i < NC; i++) v[i] = nrand() * (float)pow(10.0, (int)(urand() * 14) - 9);
    v[0] = 70000.0f, v[1] = -65519.0f, v[2] = 1e-8f, v[3] = -0.0f;
    for (int li = 0; li < n_levels; li++) {
        px_cpu_level_set(levels[li]);
        px_convert(h, PX_DTYPE_F16, v, PX_DTYPE_F32, NC);
        int bad = 0;
        for (int i = 0; i < NC; i++) bad += h[i] != px_f32_to_f16(v[i]);
        CHECK_MSG(bad == 0, "f32 -> f16 %s: %d values differ from px_f32_to_f16", px_cpu_level_name(levels[li]), bad);
    }
    px_cpu_level_set(PX_CPU_AVX512);
    CHECK(px_dtype_is_quantized(PX_DTYPE_Q4_0) && !px_dtype_is_quantized(PX_DTYPE_BF16));
}

/* ---- matmul ---- */

/* y = x w^T in double from the dequantized weights (and, for quantized
 * weights, the activations as the kernels see them: 8-bit per block) */
static void reference_matmul(double *y, const float *x, int64_t M, const px_weight *w) {
    const int64_t N = w->rows, K = w->cols;
    float *row = px_malloc((size_t)K * sizeof(float)), *xq = px_malloc((size_t)K * sizeof(float));
    for (int64_t m = 0; m < M; m++) {
        const float *xm = x + m * K;
        if (px_dtype_is_quantized(w->dtype)) { /* the activation quantization, spelled out */
            for (int64_t b = 0; b * 32 < K; b++) {
                float amax = 0;
                for (int64_t k = b * 32; k < PX_MIN(K, b * 32 + 32); k++) amax = fmaxf(amax, fabsf(xm[k]));
                float id = amax > 0 ? 127.0f / amax : 0, d = amax / 127.0f;
                for (int64_t k = b * 32; k < PX_MIN(K, b * 32 + 32); k++) xq[k] = d * nearbyintf(xm[k] * id);
            }
            xm = xq;
        }
        for (int64_t n = 0; n < N; n++) {
            px_weight_row_to_f32(row, w, n);
            double s = 0;
            for (int64_t k = 0; k < K; k++) s += (double)xm[k] * row[k];
            y[m * N + n] = s;
        }
    }
    free(row);
    free(xq);
}

static px_weight make_weight(px_dtype t, int64_t N, int64_t K, const float *src, bool panels) {
    panels = panels && !px_dtype_is_quantized(t);
    void *data = px_aligned_alloc(panels ? px_weight_panel_bytes(t, N, K) : px_weight_bytes(t, N, K));
    if (panels) px_weight_pack_panels(NULL, data, t, src, PX_DTYPE_F32, N, K);
    else px_weight_pack(NULL, data, t, src, PX_DTYPE_F32, N, K);
    return (px_weight){t, N, K, data, panels};
}

static void test_matmul(px_pool *p1, px_pool *p3) {
    const int64_t shapes[][3] = {/* M, N, K */
                                 {1, 1, 1},    {1, 9, 33},   {2, 17, 64},  {3, 31, 100}, {5, 40, 172},
                                 {9, 13, 257}, {17, 24, 96}, {1, 67, 1024}, {4, 8, 32},   {11, 5, 7}};
    for (size_t s = 0; s < PX_ARRAY_LEN(shapes); s++) {
        const int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *x = rand_vec(M * K, 1.0f), *wsrc = rand_vec(N * K, 0.05f), *bias = rand_vec(N, 0.1f);
        x[0] = 4.0f; /* an activation outlier */
        double *ref = px_malloc((size_t)(M * N) * sizeof(double));
        float *y = px_malloc((size_t)(M * N) * sizeof(float)), *y0 = px_malloc((size_t)(M * N) * sizeof(float));
        for (int t = 0; t < PX_DTYPE_COUNT + 3; t++) { /* the float dtypes twice: row-major, then panels */
            const bool panels = t >= PX_DTYPE_COUNT;
            if (panels) t -= PX_DTYPE_COUNT;
            px_weight w = make_weight((px_dtype)t, N, K, wsrc, panels);
            reference_matmul(ref, x, M, &w);
            for (int li = 0; li < n_levels; li++) {
                px_cpu_level_set(levels[li]);
                for (int pi = 0; pi < 2; pi++) {
                    px_matmul(pi ? p3 : p1, y, x, M, &w, bias);
                    double worst = 0;
                    for (int64_t i = 0; i < M * N; i++) {
                        double scale = 0; /* |x|.|w| bounds the rounding of the sum */
                        for (int64_t k = 0; k < K; k++) scale += fabs(x[(i / N) * K + k]) * fabs(wsrc[(i % N) * K + k]);
                        double err = fabs(y[i] - bias[i % N] - ref[i]) / (scale + 1e-30);
                        worst = fmax(worst, err);
                    }
                    CHECK_MSG(worst < 1e-5, "%s M=%lld N=%lld K=%lld path %s threads %d: relative error %g",
                              px_dtype_name((px_dtype)t), (long long)M, (long long)N, (long long)K,
                              px_cpu_level_name(levels[li]), pi ? 3 : 1, worst);
                    if (li == 0 && pi == 0) memcpy(y0, y, (size_t)(M * N) * sizeof(float));
                    else if (px_dtype_is_quantized((px_dtype)t)) /* integer dot products: every path identical */
                        CHECK_MSG(memcmp(y, y0, (size_t)(M * N) * sizeof(float)) == 0,
                                  "%s M=%lld N=%lld K=%lld: path %s threads %d differs from portable, 1 thread",
                                  px_dtype_name((px_dtype)t), (long long)M, (long long)N, (long long)K,
                                  px_cpu_level_name(levels[li]), pi ? 3 : 1);
                }
                /* thread counts agree on every path */
                float *ya = px_malloc((size_t)(M * N) * sizeof(float));
                px_matmul(p1, ya, x, M, &w, bias);
                px_matmul(p3, y, x, M, &w, bias);
                CHECK(memcmp(ya, y, (size_t)(M * N) * sizeof(float)) == 0);
                /* a token gives the same result alone as in the batch */
                if (M > 1) {
                    int64_t m = M - 1;
                    px_matmul(p3, ya, x + m * K, 1, &w, bias);
                    CHECK_MSG(memcmp(ya, y + m * N, (size_t)N * sizeof(float)) == 0,
                              "%s: token %lld alone differs from the batch", px_dtype_name((px_dtype)t), (long long)m);
                }
                free(ya);
            }
            /* the other layout gives the same numbers */
            if (!px_dtype_is_quantized((px_dtype)t)) {
                px_weight w2 = make_weight((px_dtype)t, N, K, wsrc, !panels);
                float *y2 = px_malloc((size_t)(M * N) * sizeof(float));
                for (int li = 0; li < n_levels; li++) {
                    px_cpu_level_set(levels[li]);
                    px_matmul(p3, y, x, M, &w, bias);
                    px_matmul(p3, y2, x, M, &w2, bias);
                    CHECK_MSG(!memcmp(y, y2, (size_t)(M * N) * sizeof(float)), "%s M=%lld N=%lld K=%lld %s: layouts differ",
                              px_dtype_name((px_dtype)t), (long long)M, (long long)N, (long long)K, px_cpu_level_name(levels[li]));
                }
                free(y2);
                px_aligned_free((void *)w2.data);
            }
            px_cpu_level_set(PX_CPU_AVX512);
            px_aligned_free((void *)w.data);
            if (panels) t += PX_DTYPE_COUNT;
        }
        free(x), free(wsrc), free(bias), free(ref), free(y), free(y0);
    }
}

static void test_fused(px_pool *pool) {
    const int64_t M = 6, K = 100, N1 = 24, N2 = 9, N3 = 9;
    float *x = rand_vec(M * K, 1.0f), *w1 = rand_vec(N1 * K, 0.05f), *w2 = rand_vec(N2 * K, 0.05f);
    float *w3 = rand_vec(N3 * K, 0.05f), *b2 = rand_vec(N2, 0.1f);
    for (int t = 0; t < PX_DTYPE_COUNT; t++)
        for (int li = 0; li < n_levels; li++) {
            px_cpu_level_set(levels[li]);
            px_weight a = make_weight((px_dtype)t, N1, K, w1, true), b = make_weight((px_dtype)t, N2, K, w2, true);
            px_weight c = make_weight((px_dtype)t, N3, K, w3, false);
            float y1[M * N1], y2[M * N2], y3[M * N3], z1[M * N1], z2[M * N2], z3[M * N3];
            px_matmul(pool, y1, x, M, &a, NULL);
            px_matmul(pool, y2, x, M, &b, b2);
            px_matmul(pool, y3, x, M, &c, NULL);
            px_matmul_out outs[3] = {{z1, &a, NULL}, {z2, &b, b2}, {z3, &c, NULL}};
            px_matmul_multi(pool, x, M, outs, 3);
            CHECK_MSG(!memcmp(y1, z1, sizeof y1) && !memcmp(y2, z2, sizeof y2) && !memcmp(y3, z3, sizeof y3),
                      "%s %s: px_matmul_multi differs from px_matmul", px_dtype_name((px_dtype)t),
                      px_cpu_level_name(levels[li]));
            /* swiglu: silu(x b^T) * (x c^T) */
            float g[M * N2];
            px_swiglu(y2, y3, M * N2); /* y2 had a bias: recompute without */
            px_matmul(pool, g, x, M, &b, NULL);
            px_swiglu(g, y3, M * N2);
            px_matmul_swiglu(pool, z2, x, M, &b, &c);
            CHECK_MSG(!memcmp(g, z2, sizeof g), "%s %s: px_matmul_swiglu differs from matmul + px_swiglu",
                      px_dtype_name((px_dtype)t), px_cpu_level_name(levels[li]));
            px_aligned_free((void *)a.data), px_aligned_free((void *)b.data), px_aligned_free((void *)c.data);
        }
    px_cpu_level_set(PX_CPU_AVX512);
    free(x), free(w1), free(w2), free(w3), free(b2);
}

/* ---- attention ---- */

static void test_attention(void) {
    const int hds[] = {8, 16, 24, 72, 128, 12};
    for (size_t hi = 0; hi < PX_ARRAY_LEN(hds); hi++)
        for (int dt = PX_DTYPE_F32; dt <= PX_DTYPE_F16; dt++) {
            const int hd = hds[hi], n_kv = 2, kv_dim = n_kv * hd, bs = 5, n_blocks = 9, max_pos = bs * n_blocks;
            const size_t esz = px_dtype_size((px_dtype)dt);
            /* a store of 12 physical blocks; the sequence uses 9 of them, shuffled */
            const int phys = 12, n_layers = 2, layer = 1;
            int32_t table[9] = {7, 2, 11, 0, 5, 9, 3, 10, 1};
            int64_t block_stride = (int64_t)n_layers * bs * kv_dim;
            char *k = px_calloc((size_t)phys * block_stride, esz), *v = px_calloc((size_t)phys * block_stride, esz);
            float *kf = rand_vec((int64_t)max_pos * kv_dim, 1.0f), *vf = rand_vec((int64_t)max_pos * kv_dim, 1.0f);
            for (int p = 0; p < max_pos; p++) {
                size_t off = (size_t)table[p / bs] * block_stride + (size_t)layer * bs * kv_dim + (size_t)(p % bs) * kv_dim;
                px_convert(k + off * esz, (px_dtype)dt, kf + (size_t)p * kv_dim, PX_DTYPE_F32, (size_t)kv_dim);
                px_convert(v + off * esz, (px_dtype)dt, vf + (size_t)p * kv_dim, PX_DTYPE_F32, (size_t)kv_dim);
                /* the reference sees the stored (rounded) values */
                px_convert(kf + (size_t)p * kv_dim, PX_DTYPE_F32, k + off * esz, (px_dtype)dt, (size_t)kv_dim);
                px_convert(vf + (size_t)p * kv_dim, PX_DTYPE_F32, v + off * esz, (px_dtype)dt, (size_t)kv_dim);
            }
            px_kv_view view = {.k = k + (size_t)layer * bs * kv_dim * esz, .v = v + (size_t)layer * bs * kv_dim * esz,
                               .dtype = (px_dtype)dt, .blocks = table, .block_size = bs, .block_stride = block_stride,
                               .row_stride = kv_dim};
            /* 7 queries of kv head 1: positions 3..44, two with a sliding window */
            enum { NQ = 7 };
            int32_t first[NQ] = {0, 0, 0, 30, 0, 0, 20}, last[NQ] = {3, 10, 11, 40, 44, 0, 25};
            float *qs[NQ], *outs[NQ], *alone = px_malloc((size_t)hd * sizeof(float));
            float *scratch = px_malloc((size_t)NQ * max_pos * sizeof(float));
            for (int i = 0; i < NQ; i++) qs[i] = rand_vec(hd, 1.0f), outs[i] = px_malloc((size_t)hd * sizeof(float));
            const float scale = 1.0f / sqrtf((float)hd);
            for (int li = 0; li < n_levels; li++) {
                px_cpu_level_set(levels[li]);
                px_attention(outs, (const float *const *)qs, first, last, NQ, hd, scale, &view, 1, scratch);
                double worst = 0;
                for (int i = 0; i < NQ; i++) {
                    double w[64], sum = 0, mx = -1e300;
                    for (int p = first[i]; p <= last[i]; p++) {
                        double s = 0;
                        for (int d = 0; d < hd; d++) s += (double)qs[i][d] * kf[(size_t)p * kv_dim + hd + d];
                        w[p] = s * scale;
                        mx = fmax(mx, w[p]);
                    }
                    for (int p = first[i]; p <= last[i]; p++) sum += w[p] = exp(w[p] - mx);
                    for (int d = 0; d < hd; d++) {
                        double o = 0;
                        for (int p = first[i]; p <= last[i]; p++) o += w[p] / sum * vf[(size_t)p * kv_dim + hd + d];
                        worst = fmax(worst, fabs(o - outs[i][d]));
                    }
                    /* the same query alone: bit-identical */
                    float *ao[1] = {alone};
                    const float *aq[1] = {qs[i]};
                    px_attention(ao, aq, &first[i], &last[i], 1, hd, scale, &view, 1, scratch);
                    CHECK_MSG(!memcmp(alone, outs[i], (size_t)hd * sizeof(float)),
                              "attention hd %d %s %s: query %d alone differs from the tile", hd,
                              px_dtype_name((px_dtype)dt), px_cpu_level_name(levels[li]), i);
                }
                CHECK_MSG(worst < 2e-5, "attention hd %d %s %s: error %g", hd, px_dtype_name((px_dtype)dt),
                          px_cpu_level_name(levels[li]), worst);
            }
            px_cpu_level_set(PX_CPU_AVX512);
            for (int i = 0; i < NQ; i++) free(qs[i]), free(outs[i]);
            free(alone), free(scratch), free(k), free(v), free(kf), free(vf);
        }
}

/* ---- element-wise and row-wise ops ---- */

static void test_ops(void) {
    const int64_t n = 1000 + 3;
    for (int li = 0; li < n_levels; li++) {
        px_cpu_level_set(levels[li]);
        const char *path = px_cpu_level_name(levels[li]);
        /* softmax: against exp in double, sums to 1; large and tiny inputs */
        float *x = rand_vec(n, 30.0f), *ref = px_malloc((size_t)n * sizeof(float));
        x[5] = -1e30f;
        memcpy(ref, x, (size_t)n * sizeof(float));
        px_softmax(x, n);
        double mx = -1e300, sum = 0, worst = 0, total = 0;
        for (int64_t i = 0; i < n; i++) mx = fmax(mx, ref[i]);
        for (int64_t i = 0; i < n; i++) sum += exp(ref[i] - mx);
        for (int64_t i = 0; i < n; i++) {
            double want = exp(ref[i] - mx) / sum;
            worst = fmax(worst, fabs(x[i] - want) / fmax(want, 1e-30));
            total += x[i];
        }
        CHECK_MSG(worst < 1e-5 && fabs(total - 1) < 1e-5, "softmax %s: relative error %g, sum %g", path, worst, total);
        for (int64_t m = 1; m <= 9; m++) { /* short rows, the scalar tails */
            float s[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
            px_softmax(s, m);
            double t = 0;
            for (int64_t i = 0; i < m; i++) t += s[i];
            CHECK(fabs(t - 1) < 1e-6 && (m == 1 || s[m - 1] > s[0]));
        }
        /* swiglu */
        float *g = rand_vec(n, 6.0f), *u = rand_vec(n, 1.0f), *g0 = px_malloc((size_t)n * sizeof(float));
        g[7] = -100.0f, g[8] = 100.0f;
        memcpy(g0, g, (size_t)n * sizeof(float));
        px_swiglu(g, u, n);
        worst = 0;
        for (int64_t i = 0; i < n; i++) {
            double want = g0[i] / (1 + exp(-(double)g0[i])) * u[i];
            worst = fmax(worst, fabs(g[i] - want) / (fabs(want) + 1e-6));
        }
        CHECK_MSG(worst < 1e-5, "swiglu %s: relative error %g", path, worst);
        /* argmax: ties to the lowest index, every position */
        for (int64_t len = 1; len < 40; len++)
            for (int64_t at = 0; at < len; at++) {
                float a[40];
                for (int64_t i = 0; i < len; i++) a[i] = (float)(i % 3);
                a[at] = 5;
                if (at + 1 < len) a[len - 1] = 5;
                CHECK(px_argmax(a, len) == at);
            }
        free(x), free(ref), free(g), free(u), free(g0);
    }
    px_cpu_level_set(PX_CPU_AVX512);
    /* rmsnorm */
    float *x = rand_vec(3 * 37, 2.0f), *w = rand_vec(37, 1.0f), *o = px_malloc(3 * 37 * sizeof(float));
    px_rmsnorm(o, x, w, 3, 37, 1e-6f);
    double worst = 0;
    for (int r = 0; r < 3; r++) {
        double ss = 0;
        for (int i = 0; i < 37; i++) ss += (double)x[r * 37 + i] * x[r * 37 + i];
        double sc = 1 / sqrt(ss / 37 + 1e-6);
        for (int i = 0; i < 37; i++) worst = fmax(worst, fabs(o[r * 37 + i] - x[r * 37 + i] * sc * w[i]));
    }
    CHECK_MSG(worst < 1e-5, "rmsnorm error %g", worst);
    /* rope: both layouts against the rotation written out; the _cs form equals px_rope_neox */
    const int hd = 24, nh = 3, pos = 17;
    float inv[12], cs[24], *a = rand_vec(nh * hd, 1.0f), *b = px_malloc(nh * hd * sizeof(float));
    float *c = px_malloc(nh * hd * sizeof(float));
    for (int i = 0; i < hd / 2; i++) inv[i] = (float)pow(10000.0, -2.0 * i / hd);
    memcpy(b, a, nh * hd * sizeof(float));
    memcpy(c, a, nh * hd * sizeof(float));
    px_rope_neox(b, nh, hd, pos, inv);
    px_rope_angles(cs, hd, pos, inv);
    px_rope_interleaved_cs(c, nh, hd, cs);
    double wn = 0, wi = 0;
    for (int h = 0; h < nh; h++)
        for (int i = 0; i < hd / 2; i++) {
            double th = pos * (double)inv[i], cth = cos(th), sth = sin(th);
            const float *v = a + h * hd;
            wn = fmax(wn, fabs(b[h * hd + i] - (v[i] * cth - v[i + hd / 2] * sth)));
            wn = fmax(wn, fabs(b[h * hd + i + hd / 2] - (v[i + hd / 2] * cth + v[i] * sth)));
            wi = fmax(wi, fabs(c[h * hd + 2 * i] - (v[2 * i] * cth - v[2 * i + 1] * sth)));
            wi = fmax(wi, fabs(c[h * hd + 2 * i + 1] - (v[2 * i + 1] * cth + v[2 * i] * sth)));
        }
    CHECK_MSG(wn < 1e-5 && wi < 1e-5, "rope error neox %g interleaved %g", wn, wi);
    free(x), free(w), free(o), free(a), free(b), free(c);
}

int main(void) {
    find_levels();
    px_pool *p1 = px_pool_create(1), *p3 = px_pool_create(3);
    test_float_dtypes();
    test_weight_roundtrip();
    test_matmul(p1, p3);
    test_fused(p3);
    test_attention();
    test_ops();
    px_pool_destroy(p1);
    px_pool_destroy(p3);
    return px_test_finish();
}
