/*  =========================================================================
    lh_pathstore - pathwayd's traces in one LMDB environment, written by
    group commit, read straight from the map

    A trace is {uid, version, created_at, updated_at, content, tags,
    predecessor?, retired, replay_count}. The environment (DIR/data.mdb)
    holds five databases; integers are big-endian, so keys sort by value:

        traces    uid -> u8 format (1) | u64 seq | u64 version |
                  u64 replay_count | i64 created_ms | u8 retired |
                  u8 predecessor size | predecessor
        versions  uid | 0x00 | u64 version -> i64 updated_ms |
                  u32 tags size | tags (msgpack array of str) |
                  content (msgpack, any JSON value)
        search    u64 seq -> u8 retired | u8 uid size | uid | u8 tag count |
                  (u16 size | folded tag) x count | folded text
        tags      folded tag -> u64 seq (sorted duplicates: one posting
                  list per tag, oldest first)
        meta      "counts" -> u64 total | u64 retired | u64 versions |
                  u64 next_seq;  "format" -> "pathwayd 1"

    seq numbers traces in creation (commit) order; search walks it
    newest first. Every version of every trace is kept (append-only: an
    update adds a version record, it never rewrites one). "Folded" text
    is lowercased with the C.UTF-8 locale's towlower (simple Unicode case
    mapping); the folded text of a content is each of its strings (keys
    and values) and numbers, each followed by a NUL byte, so a match
    never spans two of them.

    Writes: lh_pathstore_write queues a write and waits; one waiting
    thread at a time becomes the leader, takes every queued write (up to
    batch_max), applies them in order in one write transaction and
    commits it (fsync), then wakes the others. Each write is answered
    only after the commit that carries it. Several threads, or several
    processes on the same directory (LMDB's writer lock), may write at
    once: every version number is decided inside the transaction, so none
    is ever lost or given twice.

    Reads (get, history, search, stats) run in their own read
    transactions, in parallel with everything, and see every write that
    was acknowledged before they began.
    =========================================================================
*/

#ifndef LH_PATHSTORE_H_INCLUDED
#define LH_PATHSTORE_H_INCLUDED

#include "lh_body.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LH_PATH_UID_MAX     128         //  longest uid, bytes
#define LH_PATH_TAG_MAX     256         //  longest tag, bytes
#define LH_PATH_TEXT_MAX    1024        //  longest search text, bytes

typedef struct _lh_pathstore_t lh_pathstore_t;

//  What went wrong, for an error reply
typedef struct {
    const char *kind;                   //  error kind ("no_such_trace")
    const char *field;                  //  request field at fault, or NULL
    char reason [320];                  //  a sentence a user can act on
} lh_patherror_t;

//  The writes
typedef enum {
    LH_PATH_ADD = 1,                    //  new trace, new uid
    LH_PATH_ADD_IDEMPOTENT,             //  new trace with uid, or replay_count + 1
    LH_PATH_UPDATE,                     //  new version of uid
    LH_PATH_REVISE,                     //  new trace whose predecessor is uid
    LH_PATH_RETIRE                      //  uid hidden from search
} lh_path_op_t;

//  One write: the caller fills the inputs (borrowed; they must stay valid
//  until lh_pathstore_write returns), the store the outputs
typedef struct _lh_pathwrite_t lh_pathwrite_t;
struct _lh_pathwrite_t {
    lh_path_op_t op;                    //  what to do
    const char *uid;                    //  target uid (not for LH_PATH_ADD)
    size_t uid_size;                    //  its size
    const void *content;                //  msgpack content (add, update, revise)
    size_t content_size;                //  its size
    const void *folded;                 //  folded text of the content
    size_t folded_size;                 //  its size
    const void *tags;                   //  msgpack array of tags, or NULL: none
                                        //  (add) / keep or inherit (update, revise)
    size_t tags_size;                   //  its size
    const void *folded_tags;            //  (u16 size | folded tag) x count
    size_t folded_tags_size;            //  its size
    size_t tag_count;                   //  how many tags
    //  Outputs
    uint32_t status;                    //  200, 201, or an error status
    lh_patherror_t error;               //  when status >= 400
    lh_pack_t *trace;                   //  the trace, when status < 400 (caller
                                        //  takes it)
    //  The store's own
    lh_pathwrite_t *next;               //  in the queue
    bool done;                          //  committed (or failed)
};

//  A search
typedef struct {
    const void *folded_tags;            //  (u16 size | folded tag) x count: all must match
    size_t folded_tags_size;            //  its size
    size_t tag_count;                   //  0: no tag filter
    const char *text;                   //  folded text to find, or NULL
    size_t text_size;                   //  its size
    bool include_retired;               //  retired traces match too
    size_t limit;                       //  most results
    size_t reply_max;                   //  most reply bytes (at least one result)
} lh_pathquery_t;

//  Counts
typedef struct {
    uint64_t total;                     //  traces
    uint64_t retired;                   //  of which retired
    uint64_t versions;                  //  version records
    uint64_t next_seq;                  //  seq of the next trace
    uint64_t transactions;              //  write transactions ever committed
                                        //  (LMDB's last txn id)
} lh_pathcounts_t;

//  Open (creating if needed) the store in dir. batch_max bounds the writes
//  of one commit. Returns NULL with *error (static) set when it cannot.
lh_pathstore_t *
    lh_pathstore_open (const char *dir, size_t map_bytes, size_t batch_max,
                       const char **error);

//  Close the store; nulls the caller's pointer
void
    lh_pathstore_destroy (lh_pathstore_t **self_p);

//  Apply a write; returns when it is committed (or failed), with
//  write->status, ->trace or ->error set
void
    lh_pathstore_write (lh_pathstore_t *self, lh_pathwrite_t *write);

//  Pack a trace (version 0: the current one; another adds
//  current_version). Returns 200, or 404 / 500 with error set.
uint32_t
    lh_pathstore_get (lh_pathstore_t *self, const char *uid, size_t uid_size,
                      uint64_t version, lh_pack_t *pack, lh_patherror_t *error);

//  Pack {uid, chain: [trace], count, truncated, missing?, cycle?, next?}:
//  the chain from uid backwards through predecessors, at most limit
//  traces and about reply_max bytes. A predecessor that is not there ends
//  the chain with missing; a uid seen twice ends it with cycle. Returns
//  200, or 404 (no uid) / 500 with error set.
uint32_t
    lh_pathstore_history (lh_pathstore_t *self, const char *uid, size_t uid_size,
                          size_t limit, size_t reply_max, lh_pack_t *pack,
                          lh_patherror_t *error);

//  Pack {results: [trace], count, truncated}, newest first. Returns 200,
//  or 500 with error set.
uint32_t
    lh_pathstore_search (lh_pathstore_t *self, const lh_pathquery_t *query,
                         lh_pack_t *pack, lh_patherror_t *error);

//  The counts; 0, or -1 if the store cannot be read
int
    lh_pathstore_counts (lh_pathstore_t *self, lh_pathcounts_t *counts);

//  Commits made and writes they carried since open (group commit at work)
void
    lh_pathstore_commits (lh_pathstore_t *self, uint64_t *commits, uint64_t *writes);

//  Validate a content and append its folded text to folded. Returns 0, or
//  -1 with reason set naming where in the content ("content.a[2]") the
//  value JSON cannot carry is: a map key that is not a string, invalid
//  UTF-8, NaN or an infinite number.
int
    lh_pathstore_content (const msgpack_object *content, zchunk_t *folded,
                          char *reason, size_t reason_size);

//  Append text folded to out; returns 0, or -1 if it is not valid UTF-8
int
    lh_pathstore_fold (const void *text, size_t size, zchunk_t *out);

//  Is this a valid uid: 1..LH_PATH_UID_MAX bytes of A-Z a-z 0-9 . _ : -
bool
    lh_pathstore_uid_valid (const char *uid, size_t size);

//  For tests: set (or with NULL clear) the predecessor of a trace directly,
//  the way corrupt data could; how a cycle is injected. Returns 0 or -1.
int
    lh_pathstore_set_predecessor (lh_pathstore_t *self, const char *uid,
                                  const char *predecessor);

//  Self test of this class
void
    lh_pathstore_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
