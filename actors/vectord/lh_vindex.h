/*  =========================================================================
    lh_vindex - one durable vector index: string ids, metadata, an HNSW
    graph (lh_hnsw) and an LMDB environment that holds everything needed
    to rebuild it

    The LMDB environment (DIR/data.mdb) has four databases:

        params   "params" -> msgpack {name, dim, metric, m, ef_construction,
                 ef, next_label, seq, snapshot_seq, created_ms}
        items    id -> u64 label | dim x float32 | metadata (msgpack, or
                 nothing when the item has none)
        labels   u64 label (big-endian) -> id
        log      u64 seq (big-endian) -> u8 op (1 add, 2 delete) | u64 label

    An add or delete is one LMDB write transaction (fsynced at commit)
    before the graph changes and before the caller acknowledges it, so an
    acknowledged change survives kill -9. An add gets fresh labels (a
    re-added id is a delete of its old label and an add), except an id
    re-added with the very vector it has: it keeps its label and only its
    metadata is written (no log entry, the graph untouched). The log holds
    the changes since the last graph snapshot: restoring loads the snapshot
    and replays the log after its seq, or, without a usable snapshot,
    rebuilds the graph from the items.

    Beside the graph, every live item's label, id and metadata are kept in
    memory (lh_vmeta): searches read nothing from LMDB. LMDB's map is read
    only by writes and restores, and the pages they fault in are let go
    (madvise MADV_DONTNEED on the read-only map) after a restore, during
    its scans, and at most once a second after writes, so the index's RSS
    is its graph and records, not its file. A cache of search answers
    (lh_vindex_set_cache) is keyed by the request (vector, k, ef,
    exclude_ids, filter) and valid for the index's version, which every
    applied change bumps.

    Thread safety: searches run in parallel with each other and see the
    graph and the records of one moment (a readers-writer lock, the
    writers applying a change hold briefly); writes (add, delete,
    snapshot, compaction) are serialised by the index.
    =========================================================================
*/

#ifndef LH_VINDEX_H_INCLUDED
#define LH_VINDEX_H_INCLUDED

#include "lh_body.h"
#include "lh_hnsw.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LH_VINDEX_ID_MAX    256         //  longest id, bytes
#define LH_VINDEX_CACHE_ENTRIES 2048    //  search answers cached by default

//  One item of an add: borrowed pointers
typedef struct {
    const char *id;                     //  id bytes (not NUL-terminated)
    size_t id_size;                     //  1..LH_VINDEX_ID_MAX
    const float *vector;                //  dim floats, checked
    const void *metadata;               //  msgpack map bytes, or NULL
    size_t metadata_size;               //  their size
    bool metadata_given;                //  false: keep the stored metadata
} lh_vitem_t;

//  Parameters of an index
typedef struct {
    size_t dim;                         //  components per vector
    lh_metric_t metric;                 //  cosine, l2, ip
    size_t m;                           //  HNSW M
    size_t ef_construction;             //  HNSW ef_construction
    size_t ef;                          //  default search ef
} lh_vparams_t;

typedef struct _lh_vindex_t lh_vindex_t;

//  Create a new index in directory dir (created; must not hold an index).
//  Returns NULL and sets *error (static string) on failure.
lh_vindex_t *
    lh_vindex_create (const char *dir, const char *name, const lh_vparams_t *params,
                      size_t map_bytes, const char **error);

//  Open an existing index's LMDB; the graph is empty until restored.
lh_vindex_t *
    lh_vindex_open (const char *dir, size_t map_bytes, const char **error);

//  Build the graph: from a saved graph file (NULL: none) taken at seq
//  graph_seq, plus the log after it; if the file is unusable or the log
//  does not reach back to graph_seq, rebuild from the items. Returns 0,
//  or -1 when even the rebuild failed. *rebuilt tells which path ran.
int
    lh_vindex_restore (lh_vindex_t *self, const char *graph_path, uint64_t graph_seq,
                       bool *rebuilt);

//  Close (memory only); nulls the caller's pointer
void
    lh_vindex_destroy (lh_vindex_t **self_p);

//  Close and delete the index's files
void
    lh_vindex_drop (lh_vindex_t **self_p);

//  Add (or replace) items durably. Returns 0, or -1 with *error set.
int
    lh_vindex_add (lh_vindex_t *self, const lh_vitem_t *items, size_t count,
                   const char **error);

//  Delete ids durably; unknown ids are ignored. Returns the number
//  deleted, or -1 with *error set.
int
    lh_vindex_delete (lh_vindex_t *self, const char **ids, const size_t *sizes,
                      size_t count, const char **error);

//  Search: pack an array of {id, distance, metadata} (nearest first) into
//  pack. exclude: array of id strings or NULL; filter: a map of
//  metadata key -> value that must all be equal, or NULL. ef 0 = the
//  index's. Returns the number of results.
size_t
    lh_vindex_search (lh_vindex_t *self, const float *query, size_t k, size_t ef,
                      const msgpack_object *exclude, const msgpack_object *filter,
                      lh_pack_t *pack);

//  Size the search cache: about entries answers are kept (0: none), each
//  valid until the index next changes. Clears it.
void
    lh_vindex_set_cache (lh_vindex_t *self, size_t entries);

//  Pack {name, dim, metric, m, ef_construction, ef, count, deleted, seq,
//  snapshot_seq, memory_bytes, bytes_per_vector, cache_hits, cache_misses,
//  created_ms} as one map
void
    lh_vindex_info (lh_vindex_t *self, lh_pack_t *pack);

//  Accessors
const char *lh_vindex_name (lh_vindex_t *self);
const lh_vparams_t *lh_vindex_params (lh_vindex_t *self);
uint64_t lh_vindex_seq (lh_vindex_t *self);
uint64_t lh_vindex_snapshot_seq (lh_vindex_t *self);
size_t lh_vindex_size (lh_vindex_t *self);
lh_hnsw_t *lh_vindex_graph (lh_vindex_t *self);

//  Save the graph to path as of now; sets *seq to the change it includes.
//  Writers wait meanwhile, searches go on. Returns 0 or -1.
int
    lh_vindex_snapshot (lh_vindex_t *self, const char *path, uint64_t *seq);

//  A snapshot at seq is safely stored: record it, drop the log up to it
int
    lh_vindex_snapshot_done (lh_vindex_t *self, uint64_t seq);

//  Rebuild the graph if tombstones pass ratio_pct percent of the live
//  vectors (and at least 64). Returns 1 if it did, 0 if not needed.
int
    lh_vindex_maybe_compact (lh_vindex_t *self, int ratio_pct);

//  Self test of this class
void
    lh_vindex_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
