/* px_base.h - the base module: errors, logging, allocation, thread pool, time.
 *
 * Errors: a function that can fail returns int (0 ok, -1 failed) or a pointer
 * (NULL failed) and records one human-readable line with px_error_set(). The
 * caller that reports it reads px_error_get(). The message is thread-local, so
 * threads never see each other's errors. Every message names the thing that was
 * wrong (file, tensor, field, flag).
 *
 * Allocation: px_malloc/px_calloc/px_realloc abort with a message on
 * out-of-memory (an LLM server cannot do anything useful after that);
 * px_aligned_alloc returns 64-byte aligned memory released with px_aligned_free.
 *
 * Thread pool: px_pool runs one function over [0, n) split into contiguous
 * chunks, one per thread, and returns when all chunks are done. The calling
 * thread takes part. A pool is used from one thread at a time.
 */
#ifndef PX_BASE_H
#define PX_BASE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* ---- errors ---- */
void px_error_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *px_error_get(void);
void px_error_clear(void);

/* ---- logging (stderr) ---- */
typedef enum { PX_LOG_DEBUG, PX_LOG_INFO, PX_LOG_WARN, PX_LOG_ERROR } px_log_level;
void px_log_set_level(px_log_level level);
void px_log(px_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define px_log_info(...) px_log(PX_LOG_INFO, __VA_ARGS__)
#define px_log_warn(...) px_log(PX_LOG_WARN, __VA_ARGS__)
#define px_log_debug(...) px_log(PX_LOG_DEBUG, __VA_ARGS__)

/* ---- allocation ---- */
void *px_malloc(size_t n);
void *px_calloc(size_t count, size_t size);
void *px_realloc(void *p, size_t n);
char *px_strdup(const char *s);
void *px_aligned_alloc(size_t n); /* 64-byte aligned, zeroed */
void px_aligned_free(void *p);
/* Reads a whole file into a NUL-terminated buffer; NULL + error on failure. */
char *px_read_file(const char *path, size_t *len_out);
/* Writes len bytes to path (created or truncated): 0, or -1 + error naming the
 * path and the reason (a full disk shows up at the final flush, and is caught). */
int px_write_file(const char *path, const void *data, size_t len);

/* ---- thread pool ---- */
typedef struct px_pool px_pool;
/* fn(arg, start, end, thread_index) handles items [start, end). */
typedef void (*px_pool_fn)(void *arg, int64_t start, int64_t end, int thread);
px_pool *px_pool_create(int n_threads); /* n_threads <= 0: number of CPUs */
void px_pool_destroy(px_pool *pool);
int px_pool_size(const px_pool *pool);
/* Runs fn over [0, n); grain is the least number of items per chunk. */
void px_pool_run(px_pool *pool, int64_t n, int64_t grain, px_pool_fn fn, void *arg);
int px_cpu_count(void);

/* ---- time ---- */
double px_time_now(void); /* monotonic seconds */

/* ---- small helpers ---- */
#define PX_MIN(a, b) ((a) < (b) ? (a) : (b))
#define PX_MAX(a, b) ((a) > (b) ? (a) : (b))
#define PX_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
