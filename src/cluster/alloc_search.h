/* alloc_search.h - private: the stage-count searches of alloc_search.c over
 * unit capacities v[0..n) sorted descending. bin_of (n entries) receives each
 * item's pipeline (0..k-1) or -1 when unused. */
#ifndef PX_ALLOC_SEARCH_H
#define PX_ALLOC_SEARCH_H
#include "cluster.h"

/* Largest-residual greedy: items used, or -1 when k pipelines do not form. */
int px_search_greedy(const int *v, int n, int need, int k, int *bin_of);
/* Least s whose top items v[0..s) could cover k bins by counting bounds
 * (sum, item counts, pairs), or -1. */
int px_search_lower_bound(const int *v, int n, int need, int k);
/* Exact s*(k) scanning s down from the greedy count to max(lower bound,
 * lower), spending search steps from *budget_left; *exact false when it ran
 * out (the answer is then the best found, possibly greedy's). */
int px_search_exact(const int *v, int n, int need, int k, int lower, long *budget_left, int *bin_of, bool *exact);

#endif
