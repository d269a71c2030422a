/* routes.c - request id -> route (node ids in stage order) and our hop in it.
 *
 * The network thread records the route of every Forward it hands to the
 * stage; the stage's executor thread looks it up to address what the stage
 * emits (next hop, the first stage, the scheduler). A chained hash table
 * under one mutex; entries are dropped when a request finishes, fails or is
 * released here. */
#include "px_base.h"
#include "worker_internal.h"

#include <stdlib.h>
#include <string.h>

#define N_BUCKETS 1024

typedef struct route_entry {
    struct route_entry *next;
    uint64_t req;
    uint32_t epoch;
    int hop, n;
    char **route;
} route_entry;

struct px_routes {
    pthread_mutex_t mu;
    route_entry *b[N_BUCKETS];
    int count;
};

static unsigned bucket(uint64_t req) { return (unsigned)((req * 0x9e3779b97f4a7c15ull) >> 54) % N_BUCKETS; }

px_routes *px_routes_new(void) {
    px_routes *r = px_calloc(1, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

static void entry_free(route_entry *e) {
    px_routes_list_free(e->route, e->n);
    free(e);
}

void px_routes_list_free(char **route, int n) {
    if (!route) return;
    for (int i = 0; i < n; i++) free(route[i]);
    free(route);
}

void px_routes_clear(px_routes *r) {
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < N_BUCKETS; i++) {
        while (r->b[i]) {
            route_entry *e = r->b[i];
            r->b[i] = e->next;
            entry_free(e);
        }
    }
    r->count = 0;
    pthread_mutex_unlock(&r->mu);
}

void px_routes_free(px_routes *r) {
    if (!r) return;
    px_routes_clear(r);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static route_entry **find(px_routes *r, uint64_t req) {
    route_entry **p = &r->b[bucket(req)];
    while (*p && (*p)->req != req) p = &(*p)->next;
    return p;
}

void px_routes_put(px_routes *r, uint64_t req, uint32_t epoch, char *const *route, int n_route, int hop) {
    pthread_mutex_lock(&r->mu);
    route_entry **p = find(r, req);
    if (*p && (*p)->n == n_route && (*p)->hop == hop) { /* the usual case: every decode step of a known request */
        pthread_mutex_unlock(&r->mu);
        return;
    }
    route_entry *e = *p;
    if (!e) {
        e = px_calloc(1, sizeof *e);
        e->req = req;
        *p = e;
        r->count++;
    } else px_routes_list_free(e->route, e->n);
    e->epoch = epoch, e->hop = hop, e->n = n_route;
    e->route = px_malloc((size_t)n_route * sizeof *e->route);
    for (int i = 0; i < n_route; i++) e->route[i] = px_strdup(route[i]);
    pthread_mutex_unlock(&r->mu);
}

bool px_routes_peer(px_routes *r, uint64_t req, int delta, char out[PX_NET_ID_MAX], uint32_t *epoch) {
    pthread_mutex_lock(&r->mu);
    route_entry *e = *find(r, req);
    bool ok = false;
    if (e) {
        int i = delta == PX_ROUTES_FIRST ? 0 : e->hop + delta;
        if (i >= 0 && i < e->n) {
            snprintf(out, PX_NET_ID_MAX, "%s", e->route[i]);
            ok = true;
        }
        if (epoch) *epoch = e->epoch;
    }
    pthread_mutex_unlock(&r->mu);
    return ok;
}

int px_routes_get(px_routes *r, uint64_t req, char ***route, int *hop, uint32_t *epoch) {
    pthread_mutex_lock(&r->mu);
    route_entry *e = *find(r, req);
    int n = -1;
    if (e) {
        n = e->n;
        *hop = e->hop;
        if (epoch) *epoch = e->epoch;
        *route = px_malloc((size_t)n * sizeof **route);
        for (int i = 0; i < n; i++) (*route)[i] = px_strdup(e->route[i]);
    }
    pthread_mutex_unlock(&r->mu);
    return n;
}

void px_routes_drop(px_routes *r, uint64_t req) {
    pthread_mutex_lock(&r->mu);
    route_entry **p = find(r, req), *e = *p;
    if (e) {
        *p = e->next;
        entry_free(e);
        r->count--;
    }
    pthread_mutex_unlock(&r->mu);
}

int px_routes_count(px_routes *r) {
    pthread_mutex_lock(&r->mu);
    int n = r->count;
    pthread_mutex_unlock(&r->mu);
    return n;
}
