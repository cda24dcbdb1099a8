/*  =========================================================================
    lh_store - the blob store behind storaged: key rules, and one interface
    over two backends (fs, s3)

    A store holds objects (bytes) under keys. Every object carries an ETag,
    the lowercase hex SHA-256 of its content, computed as the bytes stream
    through (never by reading the object back).

        lh_store_error_t error;
        lh_store_t *store = lh_store_new_fs ("./var/storage", &error);
        lh_store_info_t info;
        lh_store_put (store, "a/b", "hello", 5, NULL, &info, &error);
        ...
        lh_store_destroy (&store);

    Every call returns 0, or -1 with *error filled in: a SPEC status (400,
    404, 412, 413, 500, 502, 503), a short kind ("no_such_key") and a
    sentence a user can act on. Calls are thread-safe: storaged's workers
    share one store.

    Multipart uploads take parts in order (1, 2, 3, ...): each part is
    appended and hashed as it arrives, so memory stays bounded by one part
    whatever the object size. Resending the last part again replaces it
    (a retry after a lost reply is safe). Nothing is visible under the key
    until commit, which is atomic.
    =========================================================================
*/

#ifndef LH_STORE_H_INCLUDED
#define LH_STORE_H_INCLUDED

#include <czmq.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LH_STORE_KEY_MAX     1024       //  longest key, bytes
#define LH_STORE_ETAG_SIZE   64         //  hex SHA-256
#define LH_STORE_UPLOAD_MAX  64         //  longest upload id

//  An error at the store boundary
typedef struct {
    uint32_t status;                    //  SPEC status, 0 if none
    char kind [32];                     //  error kind ("no_such_key")
    char reason [320];                  //  human sentence
} lh_store_error_t;

//  What a store knows about one object
typedef struct {
    char etag [LH_STORE_ETAG_SIZE + 1]; //  hex SHA-256 of the content
    uint64_t size;                      //  content bytes
    int64_t mtime_ms;                   //  last modified, ms since epoch
} lh_store_info_t;

//  Conditions of a conditional put / commit (NULL = unconditional)
typedef struct {
    bool if_none_match;                 //  only if no object has the key
    const char *if_match;               //  only if the current ETag is this
} lh_store_cond_t;

//  Called by get_into once the byte count is known: returns room for size
//  bytes of content, or NULL to refuse (the get then fails with 503)
typedef void *(lh_store_alloc_fn) (void *arg, size_t size);

//  Called by list for each key in order; return 0 to go on
typedef int (lh_store_list_fn) (const char *key, const lh_store_info_t *info,
                                void *arg);

//  A backend: a table of functions over an opaque handle
typedef struct {
    const char *name;                   //  "fs", "s3"
    void (*destroy) (void **handle_p);
    int (*put) (void *handle, const char *key, const void *data, size_t size,
                const lh_store_cond_t *cond, lh_store_info_t *info,
                lh_store_error_t *error);
    int (*get) (void *handle, const char *key, uint64_t offset,
                size_t length, void **data_p, size_t *got,
                lh_store_info_t *info, lh_store_error_t *error);
    int (*head) (void *handle, const char *key, lh_store_info_t *info,
                 lh_store_error_t *error);
    int (*list) (void *handle, const char *prefix, const char *start_after,
                 uint32_t limit, lh_store_list_fn *fn, void *arg,
                 bool *truncated, lh_store_error_t *error);
    int (*remove) (void *handle, const char *key, lh_store_error_t *error);
    int (*upload_begin) (void *handle, const char *key, char *upload_id,
                         lh_store_error_t *error);
    int (*upload_stat) (void *handle, const char *upload_id, char **key_p,
                        uint64_t *size, uint32_t *next_part,
                        lh_store_error_t *error);
    int (*upload_part) (void *handle, const char *upload_id, uint32_t part,
                        const void *data, size_t size, uint64_t *total,
                        lh_store_error_t *error);
    int (*upload_commit) (void *handle, const char *upload_id, const char *key,
                          const lh_store_cond_t *cond, char **key_p,
                          lh_store_info_t *info, lh_store_error_t *error);
    int (*upload_abort) (void *handle, const char *upload_id,
                         lh_store_error_t *error);
    void (*sweep) (void *handle, int64_t max_age_ms);
    //  Optional (NULL: lh_store_get_into falls back on get + a copy)
    int (*get_into) (void *handle, const char *key, uint64_t offset,
                     size_t length, lh_store_alloc_fn *alloc_fn, void *arg,
                     size_t *got, lh_store_info_t *info,
                     lh_store_error_t *error);
    //  Optional, both or neither: upload_part in two halves (see
    //  lh_store_upload_part_accept)
    int (*upload_part_accept) (void *handle, const char *upload_id,
                               uint32_t part, size_t size, void **ticket_p,
                               uint64_t *total, lh_store_error_t *error);
    int (*upload_part_write) (void *handle, void **ticket_p, const void *data,
                              lh_store_error_t *error);
    //  Optional (NULL: an upload's bytes cannot be read before its commit)
    int (*upload_read) (void *handle, const char *upload_id, uint64_t offset,
                        size_t length, void **data_p, size_t *got, char **key_p,
                        uint64_t *size, lh_store_error_t *error);
} lh_store_backend_t;

typedef struct _lh_store_t lh_store_t;

//  ---------------------------------------------------------------------
//  Key rules (lh_keys.c)

//  Check a key against the SPEC rules. Returns 0, or -1 with *reason set to
//  a static sentence naming the rule broken ("key contains a '..' path
//  component"). size is the key's length in bytes (it may hold a NUL).
int
    lh_store_key_check (const char *key, size_t size, const char **reason);

//  Self test of the key rules
void
    lh_store_keys_test (bool verbose);

//  ---------------------------------------------------------------------
//  The store

//  A store over a backend's handle (taken)
lh_store_t *
    lh_store_new (const lh_store_backend_t *backend, void *handle);

//  A store on the local filesystem under dir (created if missing). Returns
//  NULL with *error set if dir cannot be used.
lh_store_t *
    lh_store_new_fs (const char *dir, lh_store_error_t *error);

//  Destroy a store; nulls the caller's pointer
void
    lh_store_destroy (lh_store_t **self_p);

//  Name of the backend ("fs")
const char *
    lh_store_backend_name (lh_store_t *self);

//  Store an object whole (keys must have passed lh_store_key_check)
int
    lh_store_put (lh_store_t *self, const char *key, const void *data,
                  size_t size, const lh_store_cond_t *cond,
                  lh_store_info_t *info, lh_store_error_t *error);

//  Read up to length bytes from offset. *data_p is a fresh buffer of *got
//  bytes (caller frees; NULL when *got is 0). offset past the end -> 400.
int
    lh_store_get (lh_store_t *self, const char *key, uint64_t offset,
                  size_t length, void **data_p, size_t *got,
                  lh_store_info_t *info, lh_store_error_t *error);

//  Read up to length bytes from offset straight into a buffer the caller
//  provides: alloc_fn (arg, n) is called once, after *info is filled in,
//  with the byte count n (possibly 0) and returns room for n bytes (or
//  NULL: 503). *got = n.
int
    lh_store_get_into (lh_store_t *self, const char *key, uint64_t offset,
                       size_t length, lh_store_alloc_fn *alloc_fn, void *arg,
                       size_t *got, lh_store_info_t *info,
                       lh_store_error_t *error);

//  Describe an object; 404 if there is none
int
    lh_store_head (lh_store_t *self, const char *key, lh_store_info_t *info,
                   lh_store_error_t *error);

//  Call fn for up to limit keys starting with prefix (NULL = all) and
//  after start_after (NULL = from the start), in byte order. *truncated is
//  set when more keys follow.
int
    lh_store_list (lh_store_t *self, const char *prefix,
                   const char *start_after, uint32_t limit,
                   lh_store_list_fn *fn, void *arg, bool *truncated,
                   lh_store_error_t *error);

//  Delete an object; 404 if there is none
int
    lh_store_remove (lh_store_t *self, const char *key,
                     lh_store_error_t *error);

//  Begin a multipart upload; upload_id gets LH_STORE_UPLOAD_MAX + 1 bytes
int
    lh_store_upload_begin (lh_store_t *self, const char *key,
                           char *upload_id, lh_store_error_t *error);

//  The key (*key_p fresh, caller frees), bytes so far and next expected
//  part of an upload; 404 if there is no such upload
int
    lh_store_upload_stat (lh_store_t *self, const char *upload_id,
                          char **key_p, uint64_t *size, uint32_t *next_part,
                          lh_store_error_t *error);

//  Bytes of an upload in progress, as written so far: up to length at
//  offset into *data_p (malloc'd, caller frees; NULL when *got is 0),
//  *key_p its key (caller frees), *size its final bytes so far (those
//  before its last part, which may still be sent again and replaced). A backend that
//  cannot read an upload before its commit gives no bytes and *readable
//  false. 404 when there is no such upload (committed, aborted, expired).
int
    lh_store_upload_read (lh_store_t *self, const char *upload_id, uint64_t offset,
                          size_t length, void **data_p, size_t *got, char **key_p,
                          uint64_t *size, bool *readable, lh_store_error_t *error);

//  Append part number `part` (the next one, or the last one again)
int
    lh_store_upload_part (lh_store_t *self, const char *upload_id,
                          uint32_t part, const void *data, size_t size,
                          uint64_t *total, lh_store_error_t *error);

//  The first half of upload_part, for backends that can split it (else
//  returns 1 and does nothing: call lh_store_upload_part): checks the
//  part and takes the upload for it (other calls on the upload wait),
//  *total = bytes once written. 0 = accepted: the caller may answer now,
//  then must call lh_store_upload_part_write with the ticket; -1 = refused
//  (error filled in).
int
    lh_store_upload_part_accept (lh_store_t *self, const char *upload_id,
                                 uint32_t part, size_t size, void **ticket_p,
                                 uint64_t *total, lh_store_error_t *error);

//  The second half: write the accepted part (size bytes of data) and
//  release the upload. On failure the upload is aborted, so its next part
//  or commit fails (404) and no object is made of it. data NULL releases
//  the upload without writing the part (the upload is as it was before
//  it). Nulls *ticket_p.
int
    lh_store_upload_part_write (lh_store_t *self, void **ticket_p,
                                const void *data, lh_store_error_t *error);

//  Make the upload the object under key (NULL: the key it was begun
//  with; the caller has checked it), atomically; *key_p gets the key
//  written, cond applies to it
int
    lh_store_upload_commit (lh_store_t *self, const char *upload_id, const char *key,
                            const lh_store_cond_t *cond, char **key_p,
                            lh_store_info_t *info, lh_store_error_t *error);

//  Forget an upload and its parts
int
    lh_store_upload_abort (lh_store_t *self, const char *upload_id,
                           lh_store_error_t *error);

//  Remove uploads and temporary files untouched for max_age_ms
void
    lh_store_sweep (lh_store_t *self, int64_t max_age_ms);

//  ---------------------------------------------------------------------
//  Helpers for backends

//  Fill an error; returns -1 so a backend can `return lh_store_error (...)`
int
    lh_store_error (lh_store_error_t *error, uint32_t status, const char *kind,
                    const char *format, ...) CHECK_PRINTF (4);

//  Check a condition against the current object (exists false = none).
//  Returns 0, or -1 with a 412 error.
int
    lh_store_cond_check (const lh_store_cond_t *cond, bool exists,
                         const char *current_etag, const char *key,
                         lh_store_error_t *error);

//  Hex-encode size bytes into text (2 * size + 1 bytes)
void
    lh_store_hex (const uint8_t *data, size_t size, char *text);

//  Self test of the fs backend
void
    lh_store_fs_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
