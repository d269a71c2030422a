/* dtype.c - the weight dtypes and exact conversions between the float ones.
 *
 * f16 -> f32 goes through a 65536-entry table built once (exact); f32 -> f16
 * and f32 -> bf16 round to nearest even, like torch and numpy. The quantized
 * dtypes (q8_0, q4_0) have their packing and unpacking in quant.c.
 */
#include "tensor_internal.h"
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>

static const char *dtype_names[PX_DTYPE_COUNT] = {"f32", "f16", "bf16", "q8_0", "q4_0"};
static const size_t dtype_sizes[PX_DTYPE_COUNT] = {4, 2, 2, 0, 0};

const char *px_dtype_name(px_dtype t) { return t < PX_DTYPE_COUNT ? dtype_names[t] : "?"; }
size_t px_dtype_size(px_dtype t) { return t < PX_DTYPE_COUNT ? dtype_sizes[t] : 0; }
bool px_dtype_is_quantized(px_dtype t) { return t == PX_DTYPE_Q8_0 || t == PX_DTYPE_Q4_0; }

int px_dtype_parse(const char *s) {
    static const struct { const char *name; px_dtype t; } names[] = {
        {"f32", PX_DTYPE_F32}, {"float32", PX_DTYPE_F32}, {"f16", PX_DTYPE_F16},
        {"float16", PX_DTYPE_F16}, {"half", PX_DTYPE_F16}, {"bf16", PX_DTYPE_BF16},
        {"bfloat16", PX_DTYPE_BF16}, {"q8_0", PX_DTYPE_Q8_0}, {"q4_0", PX_DTYPE_Q4_0},
    };
    for (size_t i = 0; i < PX_ARRAY_LEN(names); i++)
        if (!strcasecmp(s, names[i].name)) return (int)names[i].t;
    return -1;
}

static float f16_table[65536];
static pthread_once_t f16_table_once = PTHREAD_ONCE_INIT;

static float f16_bits_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    union { uint32_t u; float f; } v;
    if (exp == 0) {
        float f = ldexpf((float)mant, -24); /* zero or subnormal */
        return sign ? -f : f;
    }
    if (exp == 31) v.u = sign | 0x7f800000u | (mant << 13); /* inf / nan */
    else v.u = sign | ((exp + 112) << 23) | (mant << 13);
    return v.f;
}

static void build_f16_table(void) {
    for (uint32_t i = 0; i < 65536; i++) f16_table[i] = f16_bits_to_f32((uint16_t)i);
}

float px_f16_to_f32(uint16_t h) {
    pthread_once(&f16_table_once, build_f16_table);
    return f16_table[h];
}

uint16_t px_f32_to_f16(float f) {
    union { float f; uint32_t u; } v = {.f = f};
    uint32_t sign = (v.u >> 16) & 0x8000, x = v.u & 0x7fffffffu;
    if (x >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (x > 0x7f800000u ? 0x200 : 0));
    if (x >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds to inf */
    if (x < 0x38800000u) { /* subnormal or zero in f16 */
        float a = fabsf(f) * 16777216.0f; /* / 2^-24 */
        uint32_t m = (uint32_t)nearbyintf(a);
        return (uint16_t)(sign | m);
    }
    uint32_t rounded = x + 0x0fffu + ((x >> 13) & 1);
    return (uint16_t)(sign | ((rounded - 0x38000000u) >> 13));
}

uint16_t px_f32_to_bf16(float f) {
    union { float f; uint32_t u; } v = {.f = f};
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40);
    return (uint16_t)((v.u + 0x7fffu + ((v.u >> 16) & 1)) >> 16);
}

static float load_as_f32(const void *src, px_dtype t, size_t i) {
    switch (t) {
    case PX_DTYPE_F32: { float f; memcpy(&f, (const char *)src + 4 * i, 4); return f; }
    case PX_DTYPE_F16: { uint16_t h; memcpy(&h, (const char *)src + 2 * i, 2); return px_f16_to_f32(h); }
    case PX_DTYPE_BF16: { uint16_t h; memcpy(&h, (const char *)src + 2 * i, 2); return px_bf16_to_f32(h); }
    default: return 0;
    }
}

static void store_from_f32(void *dst, px_dtype t, size_t i, float f) {
    switch (t) {
    case PX_DTYPE_F32: memcpy((char *)dst + 4 * i, &f, 4); break;
    case PX_DTYPE_F16: { uint16_t h = px_f32_to_f16(f); memcpy((char *)dst + 2 * i, &h, 2); break; }
    case PX_DTYPE_BF16: { uint16_t h = px_f32_to_bf16(f); memcpy((char *)dst + 2 * i, &h, 2); break; }
    default: break;
    }
}

#ifdef PX_HAVE_X86
/* f32 -> f16 with F16C (round to nearest even, like px_f32_to_f16; NaNs may keep other payload bits) */
__attribute__((target("avx2,f16c"))) static size_t f32_to_f16_avx2(uint16_t *dst, const float *src, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    return i;
}
#endif

void px_convert(void *dst, px_dtype dst_type, const void *src, px_dtype src_type, size_t n) {
    if (dst_type == src_type) {
        memcpy(dst, src, n * px_dtype_size(src_type));
        return;
    }
    size_t i = 0;
#ifdef PX_HAVE_X86
    if (dst_type == PX_DTYPE_F16 && src_type == PX_DTYPE_F32 && px_cpu_level_get() >= PX_CPU_AVX2)
        i = f32_to_f16_avx2(dst, src, n); /* the KV cache's writes */
#endif
    for (; i < n; i++) store_from_f32(dst, dst_type, i, load_as_f32(src, src_type, i));
}

#ifdef PX_HAVE_X86
__attribute__((target("avx2,f16c"))) static void widen_avx2(float *dst, const uint16_t *h, px_dtype type, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i v = _mm_loadu_si128((const __m128i *)(h + i));
        __m256 f = type == PX_DTYPE_F16 ? _mm256_cvtph_ps(v)
                                        : _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16));
        _mm256_storeu_ps(dst + i, f);
    }
    for (; i < n; i++) dst[i] = type == PX_DTYPE_F16 ? px_f16_to_f32(h[i]) : px_bf16_to_f32(h[i]);
}
#endif

void px_row_to_f32(float *dst, const void *w, px_dtype type, int64_t row, int64_t cols) {
    if (px_dtype_is_quantized(type)) {
        px_quant_row_to_f32(dst, w, type, row, cols);
        return;
    }
    const char *base = (const char *)w + (size_t)row * (size_t)cols * px_dtype_size(type);
    if (type == PX_DTYPE_F32) {
        memcpy(dst, base, (size_t)cols * 4);
        return;
    }
#ifdef PX_HAVE_X86
    if (px_cpu_level_get() >= PX_CPU_AVX2) {
        widen_avx2(dst, (const uint16_t *)base, type, cols);
        return;
    }
#endif
    if (type == PX_DTYPE_BF16) {
        const uint16_t *h = (const uint16_t *)base;
        for (int64_t i = 0; i < cols; i++) dst[i] = px_bf16_to_f32(h[i]);
    } else {
        pthread_once(&f16_table_once, build_f16_table);
        const uint16_t *h = (const uint16_t *)base;
        for (int64_t i = 0; i < cols; i++) dst[i] = f16_table[h[i]];
    }
}
