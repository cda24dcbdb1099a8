/*  =========================================================================
    lh_wfstore - workflowd's durable state in one LMDB environment

    Four tables of msgpack values, written in batches (one transaction,
    committed with an fsync before the commit call returns):

        defs    NAME -> {name, version, updated_ms, definition}
        runs    RUN_ID -> the run record (docs/workflows.md "Runs")
        audit   RUN_ID | seq (4 bytes, big-endian) -> one audit row
        active  RUN_ID -> "" while the run is running

    RUN_IDs are ULIDs (26 characters, time first), so key order is start
    order. Reads run in a read transaction of their own, from any thread.

        lh_wfstore_t *store = lh_wfstore_open ("var/workflowd", 1 << 30, &error);
        lh_wfbatch_t *batch = lh_wfstore_begin (store);
        lh_wfbatch_put (batch, LH_WF_RUNS, id, 26, record, size);
        if (lh_wfstore_commit (&batch))
            ...;                        //  nothing of the batch was written
    =========================================================================
*/

#ifndef LH_WFSTORE_H_INCLUDED
#define LH_WFSTORE_H_INCLUDED

#include "lh_body.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LH_WF_RUN_ID_SIZE   26          //  a ULID

typedef enum {
    LH_WF_DEFS = 0,                     //  definitions by name
    LH_WF_RUNS,                         //  runs by id
    LH_WF_AUDIT,                        //  audit rows by run id and seq
    LH_WF_ACTIVE,                       //  runs still running
    LH_WF_TABLES
} lh_wftable_t;

typedef struct _lh_wfstore_t lh_wfstore_t;
typedef struct _lh_wfbatch_t lh_wfbatch_t;

//  Called for each entry of a scan (value borrowed for the call); return
//  0 to go on, 1 to stop
typedef int (lh_wfstore_fn) (void *arg, const void *key, size_t key_size,
                             const void *value, size_t value_size);

//  Open (create) the environment in dir. NULL with *error set (static).
lh_wfstore_t *
    lh_wfstore_open (const char *dir, size_t map_bytes, const char **error);

//  Close it; nulls the caller's pointer
void
    lh_wfstore_destroy (lh_wfstore_t **self_p);

//  Read one value, appended raw to pack. Returns 0, 1 if there is none,
//  -1 on a storage error.
int
    lh_wfstore_get (lh_wfstore_t *self, lh_wftable_t table, const void *key,
                    size_t key_size, lh_pack_t *pack);

//  Scan the entries whose key starts with prefix (NULL/0: all), in key
//  order. Returns 0, or -1 on a storage error.
int
    lh_wfstore_scan (lh_wfstore_t *self, lh_wftable_t table, const void *prefix,
                     size_t prefix_size, lh_wfstore_fn *fn, void *arg);

//  Scan backwards from the last key before `before` (NULL: from the very
//  last). Returns 0, or -1.
int
    lh_wfstore_scan_back (lh_wfstore_t *self, lh_wftable_t table, const void *before,
                          size_t before_size, lh_wfstore_fn *fn, void *arg);

//  Entries in a table (0 on error)
size_t
    lh_wfstore_count (lh_wfstore_t *self, lh_wftable_t table);

//  Begin a write batch (waits for another writer to finish). NULL on a
//  storage error.
lh_wfbatch_t *
    lh_wfstore_begin (lh_wfstore_t *self);

//  Put or replace a value. Returns 0, or -1 (then the commit fails).
int
    lh_wfbatch_put (lh_wfbatch_t *self, lh_wftable_t table, const void *key,
                    size_t key_size, const void *value, size_t value_size);

//  Delete a key (absent is fine), or every key starting with prefix
int
    lh_wfbatch_delete (lh_wfbatch_t *self, lh_wftable_t table, const void *key,
                       size_t key_size, bool prefix);

//  Commit the batch (or abort it if a put failed). Returns 0, or -1 with
//  nothing of it written: *reason says why (static). Nulls the pointer.
int
    lh_wfstore_commit (lh_wfbatch_t **self_p, const char **reason);

//  Drop a batch unwritten; nulls the pointer
void
    lh_wfstore_abort (lh_wfbatch_t **self_p);

//  Write a fresh ULID (26 characters + NUL) into id
void
    lh_wfstore_ulid (char *id);

//  Self test of this class
void
    lh_wfstore_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
