/*  =========================================================================
    lh_storage - a typed client of storaged (SPEC 5.1, docs/storaged.md)

    Every service that keeps something in storaged - manifests, table
    files, index snapshots, uploads - talks to it through one of these
    instead of packing bodies and reading replies itself. A storage client
    is made for one caller, either

        - a request being served: every call goes through lh_request_call,
          so it carries the request's trace and ends by its deadline;
        - a job (lh_job_t), for work outside any request: every call carries
          the job's trace and ends by the job's deadline;
        - a plain bus client with a trace (NULL: a fresh one) and no
          overall deadline, for tools and the gateway.

    timeout_ms (0 = 5000) caps each call on top of that.

        lh_storage_t *storage = lh_storage_new_request (request, 5000);
        lh_storage_info_t info;
        uint32_t status = lh_storage_head (storage, "datasets/w.sqlite", &info);
        if (status == LH_ST_NOT_FOUND)
            ...                                 //  a 404 of our own
        else
        if (status != LH_ST_OK)
            lh_request_fail_dependency (request, lh_storage_reply (storage),
                                        "storaged", "the table head");
        lh_storage_destroy (&storage);

    Every operation returns a status: 200 when it did what was asked, else
    storaged's own status (400, 404, 409, 412, 413, 503 ...), a synthesized
    503 or 504 when storaged did not answer in time, 502 when its reply
    was malformed, or 500 for a failure here (a file that cannot be read
    or written, content that does not match its SHA-256). After anything
    but 200, lh_storage_reply is a reply describing the failure (the one
    storaged sent, or one made here with the SPEC error body) and
    lh_storage_reason its sentence and lh_storage_kind its error kind, all
    valid until the next operation.

    Memory stays bounded whatever the object size: uploads hold one part,
    reads and downloads at most two ranges in flight.

    A storage client is not thread-safe; it uses its caller's bus client,
    which no other code may use while an operation runs.
    =========================================================================
*/

#ifndef LH_STORAGE_H_INCLUDED
#define LH_STORAGE_H_INCLUDED

#include "lh_actor.h"
#include "lh_job.h"
#include <sodium.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LH_STORAGE_ETAG_MAX     80      //  longest ETag kept
#define LH_STORAGE_PART_MAX     (8 * 1024 * 1024)   //  largest part sent

//  What storaged says about an object
typedef struct {
    uint64_t size;                      //  object size, bytes
    char etag [LH_STORAGE_ETAG_MAX + 1];    //  its ETag (hex SHA-256 of the content)
    int64_t mtime_ms;                   //  last change (head, list), or 0
} lh_storage_info_t;

//  Conditions of a put or an upload (both false/NULL: unconditional)
typedef struct {
    bool if_none_match;                 //  only if the key does not exist
    const char *if_match;               //  only if the key holds this ETag
} lh_storage_cond_t;

typedef struct _lh_storage_t lh_storage_t;
typedef struct _lh_storage_upload_t lh_storage_upload_t;

//  A storage client for a handler: calls through lh_request_call
lh_storage_t *
    lh_storage_new_request (lh_request_t *request, uint32_t timeout_ms);

//  A storage client for a job: its trace, its deadline (the job is
//  borrowed and must outlive the client)
lh_storage_t *
    lh_storage_new_job (lh_job_t *job, uint32_t timeout_ms);

//  A storage client over a plain bus client (borrowed): trace NULL mints
//  one for all its calls; no overall deadline
lh_storage_t *
    lh_storage_new (lh_client_t *client, const char *trace, uint32_t timeout_ms);

//  How many times upload_begin tries while storaged answers 503 busy
//  (every PUT slot taken), waiting as it says between tries: default 20;
//  1 answers the 503 at once, for a caller that must not sleep (the
//  gateway's HTTP threads)
void
    lh_storage_set_busy_tries (lh_storage_t *self, int tries);

//  Make every call a child of span (a traced caller's span id, 16 hex;
//  NULL: none). Only for a client made by lh_storage_new (a request's
//  calls are under its own span already).
void
    lh_storage_set_span (lh_storage_t *self, const char *span);

//  Destroy a storage client (an upload still open is aborted first);
//  nulls the caller's pointer
void
    lh_storage_destroy (lh_storage_t **self_p);

//  After a failed operation: the reply at fault (storaged's, or one made
//  here), for lh_request_fail_dependency; NULL after a success
lh_reply_t *
    lh_storage_reply (lh_storage_t *self);

//  After a failed operation: its reason, a sentence ("" after a success)
const char *
    lh_storage_reason (lh_storage_t *self);

//  After a failed operation: its error kind ("not_found", "checksum_mismatch"
//  ...; "" after a success)
const char *
    lh_storage_kind (lh_storage_t *self);

//  ---------------------------------------------------------------------
//  Objects

//  head: the object's size, ETag and mtime into *info
uint32_t
    lh_storage_head (lh_storage_t *self, const char *key, lh_storage_info_t *info);

//  get length bytes (0: as many as storaged gives at once, storaged/get_max)
//  at offset. *data points into the reply (valid until the next
//  operation), *size is what came (less at the end of the object, or past
//  get_max); info (may be NULL) gets the whole object's size and ETag.
uint32_t
    lh_storage_get (lh_storage_t *self, const char *key, uint64_t offset,
                    uint64_t length, lh_storage_info_t *info,
                    const void **data, size_t *size);

//  put an object of at most storaged/part_max bytes, under cond (may be
//  NULL); 412 when the condition fails. info (may be NULL) gets the new
//  ETag and size.
uint32_t
    lh_storage_put (lh_storage_t *self, const char *key, const void *data,
                    size_t size, const lh_storage_cond_t *cond,
                    lh_storage_info_t *info);

//  delete an object; 404 when there was none
uint32_t
    lh_storage_delete (lh_storage_t *self, const char *key);

//  Called for each listed key (borrowed); return 0 to go on, -1 to stop.
//  It must not use the storage client (the page's reply is being read).
typedef int (lh_storage_list_fn) (void *arg, const char *key,
                                  const lh_storage_info_t *info);

//  list one page: the keys under prefix (NULL: all) after `after` (a
//  continuation from the last page, or a key; NULL: from the start), at
//  most limit (0 = 1000) of them, in key order. *next_p (may be NULL) is
//  set to the continuation of the next page when this one was truncated,
//  else NULL (caller frees).
uint32_t
    lh_storage_list (lh_storage_t *self, const char *prefix, const char *after,
                     uint32_t limit, lh_storage_list_fn *fn, void *arg,
                     char **next_p);

//  list every page under prefix (fn may stop it early: still 200)
uint32_t
    lh_storage_list_all (lh_storage_t *self, const char *prefix,
                         lh_storage_list_fn *fn, void *arg);

//  ---------------------------------------------------------------------
//  Reading in ranges

//  Called with each range of the object, in order; return 0 to go on,
//  else a status to stop with (lh_storage_read returns it). It must not
//  use the storage client.
typedef uint32_t (lh_storage_read_fn) (void *arg, const void *data, size_t size);

//  Read the object whose head is *info (size and ETag, from
//  lh_storage_head) from its start, chunk bytes per get (0: storaged's
//  get_max), two gets in flight so storaged reads the next range while fn
//  takes this one. Every range must carry info's ETag: an object that
//  changes meanwhile is 409 ("changed"), one deleted meanwhile 404.
uint32_t
    lh_storage_read (lh_storage_t *self, const char *key,
                     const lh_storage_info_t *info, uint64_t chunk,
                     lh_storage_read_fn *fn, void *arg);

//  As lh_storage_read, from byte start of the object on (start <= its size)
uint32_t
    lh_storage_read_at (lh_storage_t *self, const char *key,
                        const lh_storage_info_t *info, uint64_t start, uint64_t chunk,
                        lh_storage_read_fn *fn, void *arg);

//  Follow a multipart upload in progress, begun by any caller who shared
//  its id (storaged's upload_read): up to length bytes (0: storaged's
//  get_max) at offset, as written so far. *data points into the reply
//  (valid until the next operation) and *size is what came: 0 when
//  nothing past offset has landed yet. *so_far is the upload's final
//  bytes so far (before its last part, which may still be replaced);
//  *readable is false when storaged cannot show an upload before its
//  commit (its s3 backend: no bytes then). 409 when the upload is not
//  one of key (key NULL: any). 404 once the upload is committed, aborted
//  or expired: read its key then (lh_storage_read_at).
uint32_t
    lh_storage_upload_read (lh_storage_t *self, const char *upload_id, const char *key,
                            uint64_t offset, uint64_t length, uint64_t *so_far,
                            bool *readable, const void **data, size_t *size);

//  The id of an upload (storaged's), to let another caller follow it
//  (lh_storage_upload_read)
const char *
    lh_storage_upload_id (lh_storage_upload_t *upload);

//  Download the object into the file at path (created or truncated),
//  checking that its content's SHA-256 is sha256 (64 hex; NULL: the ETag
//  the object has when the download starts). A content that does not
//  match is 500 "checksum_mismatch" and the file is removed; so is the
//  file on any other failure. info (may be NULL) gets the object's head.
uint32_t
    lh_storage_download (lh_storage_t *self, const char *key, const char *path,
                         const char *sha256, lh_storage_info_t *info);

//  ---------------------------------------------------------------------
//  Multipart uploads (objects larger than one message)

//  Begin a multipart upload of key under cond (may be NULL; storaged
//  checks it now and again at commit: 412). While every PUT slot is
//  taken (503 busy) it waits as storaged says and tries again, up to 20
//  times (lh_storage_set_busy_tries) and never past the deadline. On 200, *upload_p is the upload,
//  owned by the caller (commit or abort ends it).
uint32_t
    lh_storage_upload_begin (lh_storage_t *self, const char *key,
                             const lh_storage_cond_t *cond,
                             lh_storage_upload_t **upload_p);

//  Begin as lh_storage_upload_begin, saying more: size (0 = unknown) is
//  the whole size when it is known ahead, so an object over the key's cap
//  is refused now (413) rather than at the part that passes it; part_size
//  (0 = storaged's part_max) is the bytes per part, at most part_max.
uint32_t
    lh_storage_upload_begin_sized (lh_storage_t *self, const char *key,
                                   const lh_storage_cond_t *cond, uint64_t size,
                                   size_t part_size, lh_storage_upload_t **upload_p);

//  Ask storaged whether it would take an upload of size bytes under key
//  and cond, by a dry run of upload_begin: nothing is begun and no PUT
//  slot is held. 200, or the refusal the upload would get (413 over the
//  key's cap, 412 condition failed, 400 bad key).
uint32_t
    lh_storage_upload_check (lh_storage_t *self, const char *key,
                             const lh_storage_cond_t *cond, uint64_t size);

//  Bytes of any size, in order: whole parts (storaged's part_max, at most
//  LH_STORAGE_PART_MAX) go out as they fill, each sent without waiting
//  for storaged's answer, which comes while the next part fills (the bus
//  client holds a copy of the part in flight: two parts at most). A
//  failure (413 over the key's cap ...) ends the upload on storaged's
//  side; the write that learns of it, and later ones, return its status.
uint32_t
    lh_storage_upload_write (lh_storage_upload_t *upload, const void *data,
                             size_t size);

//  Send what is held and commit under the begin's cond: the object is
//  whole and visible at once, or not at all. Destroys the upload (nulls
//  the pointer), aborting it on failure. info (may be NULL) gets the ETag
//  and size.
uint32_t
    lh_storage_upload_commit (lh_storage_upload_t **upload_p,
                              lh_storage_info_t *info);

//  As lh_storage_upload_commit, but the object is named key, not the
//  begin's key: for a name known only once the bytes are (content
//  addressing). storaged checks key and its cap at the commit.
uint32_t
    lh_storage_upload_commit_as (lh_storage_upload_t **upload_p, const char *key,
                                 lh_storage_info_t *info);

//  Send the whole file at path as the upload's next bytes: each part is
//  read from the file straight into the message buffer while the part
//  before it travels. hash (may be NULL) is updated with every byte, in
//  order. With LH_STORAGE_RELEASE the file's pages are given back as they
//  are sent (a temporary file, deleted after: its memory is reused at
//  once instead of the file and the object both holding it). 200, or the
//  failure that ended the upload (500 local_io if the file cannot be
//  read); commit or abort after either.
#define LH_STORAGE_RELEASE  1
uint32_t
    lh_storage_upload_send_file (lh_storage_upload_t *upload, const char *path, int flags,
                                 crypto_hash_sha256_state *hash);

//  Abort an upload (storaged forgets its parts) and destroy it; nulls
//  the pointer
void
    lh_storage_upload_abort (lh_storage_upload_t **upload_p);

//  Bytes taken by an upload so far
uint64_t
    lh_storage_upload_bytes (lh_storage_upload_t *upload);

//  Upload the file at path as key under cond (may be NULL): a multipart
//  upload whose next part is read from the file while the last one
//  travels, straight into the message buffer (no copy). 412 when the
//  condition fails at begin or commit (a content-addressed caller takes
//  that as "already there"). info (may be NULL) gets the ETag and size.
uint32_t
    lh_storage_upload_file (lh_storage_t *self, const char *key, const char *path,
                            const lh_storage_cond_t *cond, lh_storage_info_t *info);

//  Self test of this class
void
    lh_storage_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
