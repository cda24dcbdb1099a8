/*  =========================================================================
    lh_ingest_upload - stream bytes into storaged, then ingest them

    The upload half: an lh_ingest_upload_t takes bytes in pieces of any
    size and moves them into storaged under one key, holding at most one
    part in memory (and the bus client's copy of the part in flight). A
    body that ends before the first part is full goes as one `put`;
    anything larger becomes a multipart upload (`upload_begin`,
    `upload_part` 1, 2, ... in order, each sent while the next one fills,
    `upload_commit`), aborted (`upload_abort`) on any error or when
    destroyed unfinished. Every call goes through the typed storage client
    (lh_storage.h).
    Used by the gateway (PUT /v1/storage/KEY, POST /v1/ingest) and by
    `lakehouse ingest`.

        lh_ingest_upload_opts_t opts = { .part_size = 4 << 20 };
        lh_ingest_upload_t *upload = lh_ingest_upload_new (client, "uploads/x.csv", &opts);
        while (... more bytes ...)
            if (lh_ingest_upload_write (upload, data, size))
                break;                              //  status/kind/reason say why
        if (lh_ingest_upload_finish (upload) == 0)
            printf ("%s\n", lh_ingest_upload_etag (upload));
        lh_ingest_upload_destroy (&upload);

    The ingest half: lh_ingest_file does the whole `lakehouse ingest FILE
    --name N`: streams the file into a fresh key uploads/ingest/RANDOM.csv,
    calls ingestd.ingest {name, source} with a long deadline, and removes
    the uploaded source, reporting progress (bytes, rows) as it goes.

    Every call uses the given bus client (blocking, one at a time); the
    client must not be used by another thread meanwhile.
    =========================================================================
*/

#ifndef LH_INGEST_UPLOAD_H_INCLUDED
#define LH_INGEST_UPLOAD_H_INCLUDED

#include "lh_client.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LH_INGEST_PART_SIZE     (4 * 1024 * 1024)   //  default part size
#define LH_INGEST_CALL_MS       30000               //  default storaged deadline
#define LH_INGEST_TIMEOUT_MS    600000              //  default ingestd deadline

//  Where ingest sources are uploaded (lh_ingest_source_key), and where
//  ingestd stores the tables it builds. storaged caps the first at
//  ingest/max_bytes and the second at LH_INGEST_TABLE_FACTOR times it
//  (unless storaged/caps names it): a table is about 1.2 times its CSV
//  with the default index, more with more indexes.
#define LH_INGEST_PREFIX        "uploads/ingest/"
#define LH_INGEST_TABLE_PREFIX  "datasets/"
#define LH_INGEST_TABLE_FACTOR  4

//  Progress: bytes stored so far and CSV rows seen (records after the
//  header; quoted newlines are not record ends)
typedef void (lh_ingest_progress_fn) (void *arg, uint64_t bytes, uint64_t rows);

//  Options of an upload; zero values mean the defaults
typedef struct {
    size_t part_size;                   //  bytes per part; 0 = LH_INGEST_PART_SIZE
    uint32_t timeout_ms;                //  each storaged call; 0 = LH_INGEST_CALL_MS
    const char *trace;                  //  trace id sent with each call, or NULL
    const char *span;                   //  parent span id sent with each call
                                        //  ("ps", lh_client.h), or NULL
    const char *if_none_match;          //  "*" for create-only, or NULL
    const char *if_match;               //  ETag the key must hold, or NULL
    uint64_t size_max;                  //  413 past this many bytes; 0 = no limit
    const char *size_key;               //  the setting the 413 names (not copied), or NULL
    uint64_t size_declared;             //  the whole size when known ahead, 0 = unknown
    lh_ingest_progress_fn *progress;    //  called every part_size bytes and at the end, or NULL
    void *progress_arg;                 //  its argument
} lh_ingest_upload_opts_t;

typedef struct _lh_ingest_upload_t lh_ingest_upload_t;

//  Start an upload of key (nothing is sent until a part is full or
//  finish is called). opts may be NULL.
lh_ingest_upload_t *
    lh_ingest_upload_new (lh_client_t *client, const char *key,
                          const lh_ingest_upload_opts_t *opts);

//  Destroy; aborts a multipart upload that was not finished. Nulls the
//  caller's pointer.
void
    lh_ingest_upload_destroy (lh_ingest_upload_t **self_p);

//  Before any byte is written, when the upload will be a multipart one
//  (size_declared over one part): ask storaged whether it would take an
//  object of size_declared bytes under the key (its cap, the conditions),
//  by a dry run of upload_begin that begins nothing and holds no PUT slot.
//  So a refusal (413, 412) comes before the body is sent. Returns 0
//  (accepted, or nothing to check), or the error status (the upload has
//  failed).
int
    lh_ingest_upload_check (lh_ingest_upload_t *self);

//  Take size bytes. Returns 0, or the error status once the upload has
//  failed (later writes are dropped and return it again).
int
    lh_ingest_upload_write (lh_ingest_upload_t *self, const void *data, size_t size);

//  Send what is left and make the object visible (put, or last part +
//  commit). Returns 0, or the error status.
int
    lh_ingest_upload_finish (lh_ingest_upload_t *self);

//  Fail the upload with status, kind and reason (e.g. the client went
//  away); a multipart upload is aborted. Does nothing if it already failed.
void
    lh_ingest_upload_fail (lh_ingest_upload_t *self, uint32_t status,
                           const char *kind, const char *reason);

//  The error of a failed upload: HTTP status (0 = none), kind, reason,
//  and retry_after_ms (0 = none) as storaged answered them
uint32_t
    lh_ingest_upload_status (lh_ingest_upload_t *self);
const char *
    lh_ingest_upload_kind (lh_ingest_upload_t *self);
const char *
    lh_ingest_upload_reason (lh_ingest_upload_t *self);
uint64_t
    lh_ingest_upload_retry_after (lh_ingest_upload_t *self);

//  After a successful finish: the object's ETag (hex SHA-256)
const char *
    lh_ingest_upload_etag (lh_ingest_upload_t *self);
//  Bytes taken so far
uint64_t
    lh_ingest_upload_bytes (lh_ingest_upload_t *self);
//  CSV rows seen so far (records after the header); counted only when
//  opts.progress is set, else 0
uint64_t
    lh_ingest_upload_rows (lh_ingest_upload_t *self);
//  The key
const char *
    lh_ingest_upload_key (lh_ingest_upload_t *self);
//  storaged's id of the multipart upload once it has begun (a whole part
//  was taken), else NULL: ingestd can follow the upload by it
const char *
    lh_ingest_upload_id (lh_ingest_upload_t *self);

//  A fresh source key, "uploads/ingest/<32 random hex>.csv"; caller frees
char *
    lh_ingest_source_key (void);

//  The msgpack body of ingestd.ingest {name, source}
zframe_t *
    lh_ingest_request (const char *name, const char *source);

//  The msgpack body of ingestd.ingest {name, source, upload_id}: ingestd
//  parses the source while it is still being uploaded by upload_id
zframe_t *
    lh_ingest_request_follow (const char *name, const char *source,
                              const char *upload_id);

//  Options of lh_ingest_file; zero values mean the defaults
typedef struct {
    lh_ingest_upload_opts_t upload;     //  how the file is uploaded
    uint32_t ingest_timeout_ms;         //  ingestd.ingest; 0 = LH_INGEST_TIMEOUT_MS
    bool keep_source;                   //  leave the uploaded CSV in storaged
} lh_ingest_opts_t;

//  Upload the file at path ("-" = stdin) and ingest it as dataset name.
//  Returns the final status (200 on success). When ingestd was called,
//  *reply_p is its reply (the caller destroys it); otherwise *reply_p is
//  NULL and *error_p a sentence (caller frees) saying what failed.
int
    lh_ingest_file (lh_client_t *client, const char *path, const char *name,
                    const lh_ingest_opts_t *opts, lh_reply_t **reply_p,
                    char **error_p);

//  Self test of this class (row counting, key shape, request body)
void
    lh_ingest_upload_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
