/* threadpool.c - a fork-join pool for data-parallel kernels.
 *
 * px_pool_run() publishes a job (fn, arg, n) by bumping a generation counter,
 * runs chunk 0 on the calling thread, and waits until every worker has done its
 * chunk. Workers, and the caller waiting for them, spin for up to 200 µs
 * (decode steps issue thousands of jobs a second, and a futex wake costs tens
 * of microseconds, more in a VM whose idle vCPU the host deschedules), then
 * sleep on a condition variable. The spin is timed, not counted: 20,000
 * iterations of a load were ~7 µs here, shorter than the imbalance between
 * two halves of a matmul, so the caller slept on most jobs (raising it to
 * 20-200 µs: f16 decode 25.5 -> 28 tok/s, q8_0 47-49 -> 53-55 tok/s, Qwen3-0.6B
 * shape, 2 threads). Chunks are contiguous and depend only on
 * (n, grain, thread count), so results never depend on timing.
 */
#include "px_base.h"
#include <pthread.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <unistd.h>

#define SPIN_SECONDS 200e-6

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

struct px_pool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    atomic_uint generation;
    atomic_int pending;
    bool stopping;
    /* the current job */
    px_pool_fn fn;
    void *arg;
    int64_t n;
    int active; /* threads that get a non-empty chunk */
};

typedef struct { px_pool *pool; int index; } worker_arg;

int px_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void run_chunk(px_pool *pool, int t) {
    if (t >= pool->active) return;
    int64_t start = pool->n * t / pool->active;
    int64_t end = pool->n * (t + 1) / pool->active;
    if (end > start) pool->fn(pool->arg, start, end, t);
}

static void finish_chunk(px_pool *pool) {
    if (atomic_fetch_sub(&pool->pending, 1) == 1) {
        pthread_mutex_lock(&pool->mu);
        pthread_cond_signal(&pool->done);
        pthread_mutex_unlock(&pool->mu);
    }
}

/* true once SPIN_SECONDS have passed since *start (set when i == 0) */
static bool spun_long_enough(unsigned i, double *start) {
    if (i == 0) *start = px_time_now();
    return (i & 63) == 63 && px_time_now() - *start > SPIN_SECONDS;
}

static unsigned wait_for_new_generation(px_pool *pool, unsigned seen) {
    double t0 = 0;
    for (unsigned i = 0; !spun_long_enough(i, &t0); i++) {
        unsigned g = atomic_load_explicit(&pool->generation, memory_order_acquire);
        if (g != seen) return g;
        cpu_relax();
    }
    pthread_mutex_lock(&pool->mu);
    unsigned g;
    while ((g = atomic_load(&pool->generation)) == seen && !pool->stopping)
        pthread_cond_wait(&pool->wake, &pool->mu);
    pthread_mutex_unlock(&pool->mu);
    return g;
}

static void *worker_main(void *p) {
    worker_arg *wa = p;
    px_pool *pool = wa->pool;
    int index = wa->index;
    free(wa);
    unsigned seen = 0; /* the generation at creation: a job published before we got here is still ours */
    for (;;) {
        seen = wait_for_new_generation(pool, seen);
        if (pool->stopping) return NULL;
        run_chunk(pool, index);
        finish_chunk(pool);
    }
}

px_pool *px_pool_create(int n_threads) {
    if (n_threads <= 0) n_threads = px_cpu_count();
    px_pool *pool = px_calloc(1, sizeof *pool);
    pool->n_threads = n_threads;
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->done, NULL);
    pool->threads = px_calloc((size_t)n_threads, sizeof(pthread_t));
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = px_malloc(sizeof *wa);
        wa->pool = pool;
        wa->index = i;
        pthread_create(&pool->threads[i], NULL, worker_main, wa);
    }
    return pool;
}

void px_pool_destroy(px_pool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->mu);
    pool->stopping = true;
    atomic_fetch_add(&pool->generation, 1);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 1; i < pool->n_threads; i++) pthread_join(pool->threads[i], NULL);
    pthread_mutex_destroy(&pool->mu);
    pthread_cond_destroy(&pool->wake);
    pthread_cond_destroy(&pool->done);
    free(pool->threads);
    free(pool);
}

int px_pool_size(const px_pool *pool) { return pool ? pool->n_threads : 1; }

void px_pool_run(px_pool *pool, int64_t n, int64_t grain, px_pool_fn fn, void *arg) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int64_t max_active = (n + grain - 1) / grain;
    int threads = pool ? pool->n_threads : 1;
    if (threads == 1 || max_active == 1) {
        fn(arg, 0, n, 0);
        return;
    }
    pool->fn = fn;
    pool->arg = arg;
    pool->n = n;
    pool->active = (int)PX_MIN((int64_t)threads, max_active);
    atomic_store(&pool->pending, threads - 1);
    pthread_mutex_lock(&pool->mu);
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mu);
    run_chunk(pool, 0);
    double t0 = 0;
    for (unsigned i = 0; atomic_load(&pool->pending) > 0 && !spun_long_enough(i, &t0); i++) cpu_relax();
    if (atomic_load(&pool->pending) > 0) {
        pthread_mutex_lock(&pool->mu);
        while (atomic_load(&pool->pending) > 0) pthread_cond_wait(&pool->done, &pool->mu);
        pthread_mutex_unlock(&pool->mu);
    }
}
