/* cpu.c - which instruction set the kernels use.
 *
 * Detected once with the compiler's cpuid builtins: AVX2 needs avx2, fma and
 * f16c; AVX-512 (for the int8 dot products) needs avx512f/bw/vl/vnni on top.
 * PX_NO_AVX2 (any value) caps at portable C, PX_NO_AVX512 at AVX2. Tests lower
 * the cap at run time with px_cpu_level_set() to compare every path.
 */
#include "tensor_internal.h"
#include <stdatomic.h>
#include <stdlib.h>

static atomic_int detected = -1, current = -1;

static int detect(void) {
    int level = PX_CPU_PORTABLE;
#ifdef PX_HAVE_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
        level = PX_CPU_AVX2;
    if (level == PX_CPU_AVX2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni"))
        level = PX_CPU_AVX512;
#endif
    if (getenv("PX_NO_AVX512") && level > PX_CPU_AVX2) level = PX_CPU_AVX2;
    if (getenv("PX_NO_AVX2")) level = PX_CPU_PORTABLE;
    return level;
}

px_cpu_level px_cpu_level_get(void) {
    int c = atomic_load_explicit(&current, memory_order_relaxed);
    if (c >= 0) return (px_cpu_level)c;
    int d = detect();
    atomic_store(&detected, d);
    atomic_store(&current, d);
    return (px_cpu_level)d;
}

px_cpu_level px_cpu_level_set(px_cpu_level level) {
    px_cpu_level_get();
    int d = atomic_load(&detected);
    int l = (int)level < d ? (int)level : d;
    atomic_store(&current, l);
    return (px_cpu_level)l;
}

const char *px_cpu_level_name(px_cpu_level level) {
    static const char *names[] = {"portable", "avx2", "avx512"};
    return (unsigned)level < 3 ? names[level] : "?";
}

const px_qkernels *px_qkernels_get(void) {
#ifdef PX_HAVE_X86
    switch (px_cpu_level_get()) {
    case PX_CPU_AVX512: return &px_qkernels_avx512;
    case PX_CPU_AVX2: return &px_qkernels_avx2;
    default: break;
    }
#endif
    return &px_qkernels_portable;
}
