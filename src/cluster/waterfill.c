/* waterfill.c - splitting one pipeline's L layers over its stages in
 * proportion to their speed, capped by their capacity.
 *
 * The continuous split is x_i = min(cap_i, lambda * speed_i) where lambda
 * makes sum(x_i) = L; sum(x) grows monotonically with lambda, so lambda is
 * found by bisection between 0 and max(cap_i / speed_i) (where every stage is
 * full). Integers: floor each x_i, then hand the missing layers out one at a
 * time by largest fractional remainder (ties: lower index), skipping stages
 * already at capacity; a last pass fills any stage with room in index order. */
#include "cluster_internal.h"
#include <stdlib.h>

static double filled_layers(int n, const int *caps, const double *speeds, double lambda) {
    double total = 0;
    for (int i = 0; i < n; i++) total += PX_MIN((double)caps[i], lambda * speeds[i]);
    return total;
}

static double find_water_level(int n, const int *caps, const double *speeds, int n_layers) {
    double lo = 0, hi = 0;
    for (int i = 0; i < n; i++) hi = PX_MAX(hi, caps[i] / speeds[i]);
    for (int iter = 0; iter < 200 && hi - lo > 1e-15 * hi; iter++) {
        double mid = 0.5 * (lo + hi);
        if (filled_layers(n, caps, speeds, mid) >= n_layers) hi = mid;
        else lo = mid;
    }
    return hi;
}

/* Index of the stage with the largest remainder that still has room, or -1. */
static int largest_remainder_with_room(int n, const int *caps, const int *counts, const double *frac,
                                       const bool *taken) {
    int best = -1;
    for (int i = 0; i < n; i++) {
        if (taken[i] || counts[i] >= caps[i]) continue;
        if (best < 0 || frac[i] > frac[best]) best = i;
    }
    return best;
}

static int hand_out_remaining(int n, const int *caps, int *counts, const double *frac, int remaining) {
    bool *taken = px_calloc((size_t)n, sizeof *taken);
    while (remaining > 0) {
        int i = largest_remainder_with_room(n, caps, counts, frac, taken);
        if (i < 0) break;
        taken[i] = true;
        counts[i]++;
        remaining--;
    }
    for (int i = 0; i < n && remaining > 0; i++) {
        int room = caps[i] - counts[i];
        int add = PX_MIN(room, remaining);
        counts[i] += add;
        remaining -= add;
    }
    free(taken);
    return remaining;
}

int px_alloc_water_fill(int n, const int *caps, const double *speeds, int n_layers, int *counts) {
    long total_cap = 0;
    for (int i = 0; i < n; i++) {
        if (!(speeds[i] > 0) || caps[i] < 0) {
            px_error_set("water-filling: stage %d has speed %g and capacity %d (speed must be > 0)", i,
                         speeds[i], caps[i]);
            return -1;
        }
        total_cap += caps[i];
    }
    if (n <= 0 || total_cap < n_layers) {
        px_error_set("water-filling: %d stages hold %ld layers, the pipeline needs %d", n, total_cap, n_layers);
        return -1;
    }
    double lambda = find_water_level(n, caps, speeds, n_layers);
    double *frac = px_malloc((size_t)n * sizeof *frac);
    int assigned = 0;
    for (int i = 0; i < n; i++) {
        double x = PX_MIN((double)caps[i], lambda * speeds[i]);
        counts[i] = PX_MIN(caps[i], (int)floor(x));
        frac[i] = x - counts[i];
        assigned += counts[i];
    }
    /* bisection can overshoot by a hair: take back from the smallest remainders */
    while (assigned > n_layers) {
        int worst = -1;
        for (int i = 0; i < n; i++)
            if (counts[i] > 0 && (worst < 0 || frac[i] < frac[worst])) worst = i;
        counts[worst]--;
        frac[worst] += 1.0;
        assigned--;
    }
    int left = hand_out_remaining(n, caps, counts, frac, n_layers - assigned);
    free(frac);
    return left == 0 ? 0 : -1;
}
