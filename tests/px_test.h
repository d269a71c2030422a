/* px_test.h - the few assertion macros our C tests use (no framework needed
 * for these; cmocka is available for modules that want fixtures).
 * A test executable returns non-zero when any CHECK failed and prints
 * "N passed, N failed" at the end. */
#ifndef PX_TEST_H
#define PX_TEST_H
#include <stdio.h>
#include <math.h>

static int px_test_passed, px_test_failed;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (cond) px_test_passed++;                                                  \
        else {                                                                       \
            px_test_failed++;                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

#define CHECK_MSG(cond, ...)                                                 \
    do {                                                                     \
        if (cond) px_test_passed++;                                          \
        else {                                                               \
            px_test_failed++;                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
        }                                                                    \
    } while (0)

static inline int px_test_finish(void) {
    printf("%d passed, %d failed\n", px_test_passed, px_test_failed);
    return px_test_failed ? 1 : 0;
}
#endif
