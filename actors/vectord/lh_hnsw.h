/*  =========================================================================
    lh_hnsw - an HNSW index of float vectors under numeric labels: a small
    C shim over hnswlib (the only C++ in the tree, lh_hnsw.cpp)

    hnswlib is not safe for adds while searching, so every index carries a
    readers-writer lock (writer-preferring): searches run in parallel,
    adds / removes / compaction are exclusive and take a whole batch at
    once. Below LH_HNSW_EXACT_BELOW live vectors, and when a filter turns
    out to be very selective, search is an exact scan. Removes are
    tombstones (hnswlib markDelete); lh_hnsw_compact rebuilds the graph
    without them. Labels are the caller's (vectord gives every add a fresh
    label, so a replaced vector is a remove + an add).

        lh_hnsw_t *index = lh_hnsw_new (128, LH_METRIC_COSINE, 16, 200, 64);
        uint64_t labels [2] = { 1, 2 };
        lh_hnsw_add (index, labels, vectors, 2);
        lh_hit_t hits [10];
        size_t found = lh_hnsw_search (index, query, 10, 0, NULL, NULL, 0, hits);
        lh_hnsw_destroy (&index);

    Distances: cosine 1 - cos(a, b) (vectors are normalised on the way in),
    ip 1 - a.b, l2 the squared Euclidean distance (as hnswlib reports it).
    =========================================================================
*/

#ifndef LH_HNSW_H_INCLUDED
#define LH_HNSW_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LH_HNSW_EXACT_BELOW 32          //  exact scan below this many live vectors

typedef enum {
    LH_METRIC_COSINE = 0,
    LH_METRIC_L2 = 1,
    LH_METRIC_IP = 2
} lh_metric_t;

typedef struct {
    uint64_t label;                     //  the caller's label
    float distance;                     //  smaller is nearer
} lh_hit_t;

//  A search filter: true keeps the label. Called under the index's read
//  lock, possibly from several threads at once.
typedef bool (lh_hnsw_filter_fn) (uint64_t label, void *arg);

typedef struct _lh_hnsw_t lh_hnsw_t;

//  Create an empty index. ef is the default search ef. Returns NULL on a
//  bad parameter (dim 0, m < 2) or when memory runs out.
lh_hnsw_t *
    lh_hnsw_new (size_t dim, lh_metric_t metric, size_t m, size_t ef_construction,
                 size_t ef);

//  Destroy an index; nulls the caller's pointer
void
    lh_hnsw_destroy (lh_hnsw_t **self_p);

//  Parse / name a metric ("cosine", "l2", "ip"); parse returns -1 if unknown
int
    lh_metric_parse (const char *name, size_t size, lh_metric_t *metric);
const char *
    lh_metric_name (lh_metric_t metric);

//  Check one vector for the metric: 0 fine, -1 NaN or infinite component,
//  -2 zero norm (cosine only)
int
    lh_hnsw_vector_check (const float *vector, size_t dim, lh_metric_t metric);

//  Add count vectors (count x dim floats, already checked) under new
//  labels, as one exclusive batch. A label already present is replaced.
//  Returns 0, or -1 if memory ran out (then none of the batch is added
//  past the failing vector; the caller treats it as fatal).
int
    lh_hnsw_add (lh_hnsw_t *self, const uint64_t *labels, const float *vectors,
                 size_t count);

//  Add count vectors under new labels and tombstone removed_count labels,
//  all under one exclusive lock (a replace is never seen half done).
//  Returns 0 or -1 as lh_hnsw_add.
int
    lh_hnsw_apply (lh_hnsw_t *self, const uint64_t *labels, const float *vectors,
                   size_t count, const uint64_t *removed, size_t removed_count);

//  Tombstone labels (unknown ones are ignored). Returns how many were live.
size_t
    lh_hnsw_remove (lh_hnsw_t *self, const uint64_t *labels, size_t count);

//  The k nearest live vectors that pass the filter (NULL: all), nearest
//  first, into hits (room for k). ef 0 = the index's ef. skip_hint is how
//  many near vectors the filter is known to drop (excluded ids): the
//  first fetch asks for k + skip_hint. Returns the number of hits.
size_t
    lh_hnsw_search (lh_hnsw_t *self, const float *query, size_t k, size_t ef,
                    lh_hnsw_filter_fn *filter, void *arg, size_t skip_hint,
                    lh_hit_t *hits);

//  The same by exact scan (the reference for recall)
size_t
    lh_hnsw_search_exact (lh_hnsw_t *self, const float *query, size_t k,
                          lh_hnsw_filter_fn *filter, void *arg, lh_hit_t *hits);

//  Live vectors, tombstones, default ef
size_t lh_hnsw_size (lh_hnsw_t *self);
size_t lh_hnsw_deleted (lh_hnsw_t *self);
size_t lh_hnsw_ef (lh_hnsw_t *self);
void lh_hnsw_set_ef (lh_hnsw_t *self, size_t ef);
size_t lh_hnsw_dim (lh_hnsw_t *self);

//  Does the index hold this label (live)?
bool
    lh_hnsw_has (lh_hnsw_t *self, uint64_t label);

//  Bytes of memory the index holds (hnswlib's structures, estimated)
size_t
    lh_hnsw_memory (lh_hnsw_t *self);

//  Rebuild the graph without tombstones (exclusive). Returns 0 or -1.
int
    lh_hnsw_compact (lh_hnsw_t *self);

//  Write the graph to a file (hnswlib's format), under the read lock so
//  searches go on. Returns 0 or -1.
int
    lh_hnsw_save (lh_hnsw_t *self, const char *path);

//  Load a graph written by lh_hnsw_save. Returns NULL if the file is not
//  a graph of this dim (a bad file never crashes: sizes are checked).
lh_hnsw_t *
    lh_hnsw_load (const char *path, size_t dim, lh_metric_t metric, size_t ef);

//  Call fn for every live label (under the read lock)
void
    lh_hnsw_each (lh_hnsw_t *self, void (*fn) (uint64_t label, void *arg), void *arg);

//  Self test of this class
void
    lh_hnsw_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
