/* cluster_internal.h - helpers shared by the cluster module's files (not part
 * of the public interface): the slice-window placement used by phase 1 for
 * leftover nodes and by membership for joins, chain reachability, and the
 * per-layer hosting power behind the imbalance measure. */
#ifndef PX_CLUSTER_INTERNAL_H
#define PX_CLUSTER_INTERNAL_H
#include "cluster.h"

/* A slice as the placement helpers see it. */
typedef struct {
    int start, end;
    double speed; /* layers per second (1 / per-layer latency) */
} px_span;

/* hosting[l] = sum of speed over spans covering layer l. */
void px_hosting_power(const px_span *spans, int n, int n_layers, double *hosting);
/* Coefficient of variation of hosting[0..L); INFINITY when a layer is 0. */
double px_hosting_cv(const double *hosting, int n_layers);
/* True when spans chain from 0 to n_layers (end of one == start of next). */
bool px_spans_chain(const px_span *spans, int n, int n_layers);
/* Picks the window [start, end) that lines up with span boundaries (start is
 * 0 or some span's end, end is L or some span's start) and fits the capacity
 * at that position. Best: most uncovered layers (hosting 0), then the largest
 * sum of 1 / hosting over its layers (equal within 1e-9 relative), then
 * longer, then lower start. Returns false when no window fits. */
bool px_best_window(const px_span *spans, int n, int n_layers, const double *hosting,
                    const px_layer_capacity *cap, int *start, int *end);

/* Capacity in layer units used by the stage-count search: mid capacity, or
 * `need` for a node that holds the whole model alone. */
int px_stage_units(const px_layer_capacity *cap, int n_layers, int need);
/* need = L + ceil(embed / layer) + ceil(lm_head / layer): enough that any
 * group of nodes whose units reach it can be split with position capacities. */
int px_stage_need(const px_model_cost *m);

#endif
