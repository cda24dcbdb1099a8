/*  =========================================================================
    lh_storage - a typed client of storaged; see lh_storage.h
    =========================================================================
*/

#include "lh_storage.h"
#include "lh_sha256.h"

#define S_LIST_MAX      1000            //  storaged's most keys per page
#define S_PART_HEAD     256             //  room for an upload part's msgpack head
#define S_READ_AHEAD    2               //  gets in flight while reading
#define S_BUSY_TRIES    20              //  upload_begin tries while storaged is busy
#define S_BUSY_WAIT_MAX 2000            //  longest wait between them, ms

struct _lh_storage_t {
    lh_request_t *request;              //  the request calls serve, or NULL
    lh_job_t *job;                      //  or the job they belong to
    lh_job_t own_job;                   //  the job of a plain client
    uint32_t timeout_ms;                //  cap of each call
    lh_reply_t *reply;                  //  last reply kept (get's data), or
                                        //  the failure of the last operation
    bool failed;                        //  reply describes a failure
    lh_storage_upload_t *upload;        //  the upload open on this client
    char kind [64];                     //  lh_storage_kind's answer
    int busy_tries;                     //  upload_begin tries while storaged is busy
};

struct _lh_storage_upload_t {
    lh_storage_t *storage;              //  the client it runs on
    char *upload_id;                    //  storaged's id of the upload
    char *if_match;                     //  the begin's condition, copied
    bool if_none_match;                 //  ...
    size_t part_max;                    //  bytes per part
    uint8_t *buffer;                    //  S_PART_HEAD + part_max, or NULL
    size_t held;                        //  bytes held after the head room
    uint32_t parts;                     //  parts sent
    uint64_t bytes;                     //  bytes taken
    uint32_t status;                    //  the failure that ended it, or 0
    uint64_t in_flight;                 //  id of the part sent, not yet answered, or 0
};


//  --------------------------------------------------------------------------
//  Constructors and destructor

static lh_storage_t *
s_new (uint32_t timeout_ms)
{
    lh_storage_t *self = (lh_storage_t *) zmalloc (sizeof (lh_storage_t));
    assert (self);
    self->timeout_ms = timeout_ms;
    self->busy_tries = S_BUSY_TRIES;
    return self;
}

lh_storage_t *
lh_storage_new_request (lh_request_t *request, uint32_t timeout_ms)
{
    assert (request);
    lh_storage_t *self = s_new (timeout_ms);
    self->request = request;
    return self;
}

lh_storage_t *
lh_storage_new_job (lh_job_t *job, uint32_t timeout_ms)
{
    assert (job);
    lh_storage_t *self = s_new (timeout_ms);
    self->job = job;
    return self;
}

lh_storage_t *
lh_storage_new (lh_client_t *client, const char *trace, uint32_t timeout_ms)
{
    lh_storage_t *self = s_new (timeout_ms);
    lh_job_start (&self->own_job, client, trace, 0);
    self->job = &self->own_job;
    return self;
}

void
lh_storage_set_span (lh_storage_t *self, const char *span)
{
    assert (self);
    if (self->job == &self->own_job)
        lh_job_set_span (self->job, span);
}

void
lh_storage_set_busy_tries (lh_storage_t *self, int tries)
{
    assert (self && tries >= 1);
    self->busy_tries = tries;
}

void
lh_storage_destroy (lh_storage_t **self_p)
{
    assert (self_p);
    lh_storage_t *self = *self_p;
    if (self) {
        lh_storage_upload_abort (&self->upload);
        lh_reply_destroy (&self->reply);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  The outcome of an operation

lh_reply_t *
lh_storage_reply (lh_storage_t *self)
{
    assert (self);
    return self->failed? self->reply: NULL;
}

const char *
lh_storage_reason (lh_storage_t *self)
{
    assert (self);
    const char *reason = self->failed? lh_reply_reason (self->reply): NULL;
    return reason? reason: "";
}

const char *
lh_storage_kind (lh_storage_t *self)
{
    assert (self);
    const msgpack_object *error = self->failed?
                                  lh_obj_get (lh_reply_object (self->reply), "error"): NULL;
    const char *kind;
    size_t size;
    if (!lh_obj_str (error, "kind", &kind, &size) || size >= sizeof (self->kind))
        return "";
    memcpy (self->kind, kind, size);
    self->kind [size] = 0;
    return self->kind;
}

//  Forget the last operation's reply
static void
s_reset (lh_storage_t *self)
{
    lh_reply_destroy (&self->reply);
    self->failed = false;
}

//  Keep a reply (taken) as the last one; returns its status, a failure
//  unless 200
static uint32_t
s_keep (lh_storage_t *self, lh_reply_t **reply_p)
{
    lh_reply_destroy (&self->reply);
    self->reply = *reply_p;
    *reply_p = NULL;
    uint32_t status = lh_reply_status (self->reply);
    self->failed = status != LH_ST_OK;
    return status;
}

//  A failure found here: status, kind and reason; returns the status
static uint32_t
s_fail (lh_storage_t *self, uint32_t status, const char *kind, const char *format, ...)
    CHECK_PRINTF (4);

static uint32_t
s_fail (lh_storage_t *self, uint32_t status, const char *kind, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *reason = zsys_vprintf (format, args);
    va_end (args);
    lh_reply_t *reply = lh_reply_new_error (status, kind, reason);
    free (reason);
    return s_keep (self, &reply);
}

//  storaged answered 200 with a body we cannot read: 502
static uint32_t
s_bad_reply (lh_storage_t *self, lh_reply_t **reply_p, const char *op, const char *what)
{
    lh_reply_destroy (reply_p);
    return s_fail (self, LH_ST_BAD_GATEWAY, "bad_reply",
                   "storaged's answer to %s has no %s", op, what);
}


//  --------------------------------------------------------------------------
//  Calls: through the request, or the job

//  Milliseconds left to the caller
static uint64_t
s_time_left (lh_storage_t *self)
{
    return self->request? lh_request_time_left (self->request): lh_job_time_left (self->job);
}

//  Call storaged.op with a pack (destroyed); *reply_p is always set
static void
s_call (lh_storage_t *self, const char *op, lh_pack_t **pack_p, lh_reply_t **reply_p)
{
    if (self->request)
        lh_request_call_pack (self->request, "storaged", op, pack_p, self->timeout_ms, reply_p);
    else
        lh_job_call_pack (self->job, "storaged", op, pack_p, self->timeout_ms, reply_p);
}

//  The client and the options of a call sent without waiting
static lh_client_t *
s_client (lh_storage_t *self, lh_call_opts_t *opts)
{
    if (self->request) {
        lh_request_call_opts (self->request, self->timeout_ms, opts);
        return lh_request_client (self->request);
    }
    lh_job_opts (self->job, self->timeout_ms, opts);
    return self->job->client;
}

//  Send storaged.op without waiting; returns the request id, 0 if it
//  could not be sent
static uint64_t
s_send (lh_storage_t *self, const char *op, const void *body, size_t size)
{
    lh_call_opts_t opts;
    lh_client_t *client = s_client (self, &opts);
    return client? lh_client_send (client, "storaged", op, body, size, &opts): 0;
}

//  Wait for the reply of a request sent with s_send; never NULL
static lh_reply_t *
s_wait (lh_storage_t *self, uint64_t id)
{
    lh_call_opts_t opts;
    lh_client_t *client = s_client (self, &opts);
    lh_reply_t *reply = NULL;
    if (client)
        lh_client_wait (client, id, &reply);
    else
        reply = lh_reply_new_error (LH_ST_UNAVAILABLE, "broker_unreachable",
                                    "the bus cannot be reached");
    return reply;
}


//  --------------------------------------------------------------------------
//  Read an object's description from a reply body

static bool
s_info_read (const msgpack_object *body, lh_storage_info_t *info)
{
    const char *etag;
    size_t etag_size;
    if (!lh_obj_uint (body, "size", &info->size)
    ||  !lh_obj_str (body, "etag", &etag, &etag_size) || etag_size > LH_STORAGE_ETAG_MAX)
        return false;
    memcpy (info->etag, etag, etag_size);
    info->etag [etag_size] = 0;
    info->mtime_ms = 0;
    lh_obj_int (body, "mtime_ms", &info->mtime_ms);
    return true;
}

//  Pack a put / upload condition
static void
s_cond_pack (lh_pack_t *pack, bool if_none_match, const char *if_match)
{
    if (if_none_match)
        lh_pack_kv_str (pack, "if_none_match", "*");
    if (if_match)
        lh_pack_kv_str (pack, "if_match", if_match);
}


//  --------------------------------------------------------------------------
//  head {key}

uint32_t
lh_storage_head (lh_storage_t *self, const char *key, lh_storage_info_t *info)
{
    assert (self && key && info);
    s_reset (self);
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_str (pack, "key", key);
    lh_reply_t *reply;
    s_call (self, "head", &pack, &reply);
    if (lh_reply_status (reply) == LH_ST_OK && !s_info_read (lh_reply_object (reply), info))
        return s_bad_reply (self, &reply, "head", "size and etag");
    return s_keep (self, &reply);
}


//  --------------------------------------------------------------------------
//  get {key, offset, length}

uint32_t
lh_storage_get (lh_storage_t *self, const char *key, uint64_t offset, uint64_t length,
                lh_storage_info_t *info, const void **data, size_t *size)
{
    assert (self && key && data && size);
    s_reset (self);
    *data = NULL;
    *size = 0;
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_kv_str (pack, "key", key);
    if (offset)
        lh_pack_kv_uint (pack, "offset", offset);
    if (length)
        lh_pack_kv_uint (pack, "length", length);
    lh_pack_close (pack);
    lh_reply_t *reply;
    s_call (self, "get", &pack, &reply);
    if (lh_reply_status (reply) == LH_ST_OK) {
        const msgpack_object *body = lh_reply_object (reply);
        const msgpack_object *bytes = lh_obj_get (body, "data");
        lh_storage_info_t found;
        if (!bytes || bytes->type != MSGPACK_OBJECT_BIN || !s_info_read (body, &found))
            return s_bad_reply (self, &reply, "get", "data, size and etag");
        *data = bytes->via.bin.ptr;
        *size = bytes->via.bin.size;
        if (info)
            *info = found;
    }
    return s_keep (self, &reply);
}


//  --------------------------------------------------------------------------
//  put {key, data, if_none_match?, if_match?}

uint32_t
lh_storage_put (lh_storage_t *self, const char *key, const void *data, size_t size,
                const lh_storage_cond_t *cond, lh_storage_info_t *info)
{
    assert (self && key && (data || size == 0));
    s_reset (self);
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_kv_str (pack, "key", key);
    lh_pack_str (pack, "data");
    lh_pack_bin (pack, data, size);
    if (cond)
        s_cond_pack (pack, cond->if_none_match, cond->if_match);
    lh_pack_close (pack);
    lh_reply_t *reply;
    s_call (self, "put", &pack, &reply);
    lh_storage_info_t written;
    if (lh_reply_status (reply) == LH_ST_OK) {
        if (!s_info_read (lh_reply_object (reply), &written))
            return s_bad_reply (self, &reply, "put", "size and etag");
        if (info)
            *info = written;
    }
    return s_keep (self, &reply);
}


//  --------------------------------------------------------------------------
//  delete {key}

uint32_t
lh_storage_delete (lh_storage_t *self, const char *key)
{
    assert (self && key);
    s_reset (self);
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_str (pack, "key", key);
    lh_reply_t *reply;
    s_call (self, "delete", &pack, &reply);
    return s_keep (self, &reply);
}


//  --------------------------------------------------------------------------
//  list {prefix?, continuation?, limit}: one page

//  Calls fn for each key of a page; false when fn stopped
static bool
s_list_walk (const msgpack_object *keys, lh_storage_list_fn *fn, void *arg)
{
    for (uint32_t index = 0; index < keys->via.array.size; index++) {
        const msgpack_object *item = &keys->via.array.ptr [index];
        char *key = lh_obj_strdup (lh_obj_get (item, "key"));
        lh_storage_info_t info;
        bool stop = key && s_info_read (item, &info) && fn (arg, key, &info) != 0;
        free (key);
        if (stop)
            return false;
    }
    return true;
}

//  One page; *stopped_p (may be NULL) says whether fn stopped it
static uint32_t
s_list_page (lh_storage_t *self, const char *prefix, const char *after, uint32_t limit,
             lh_storage_list_fn *fn, void *arg, char **next_p, bool *stopped_p)
{
    s_reset (self);
    if (next_p)
        *next_p = NULL;
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    if (prefix)
        lh_pack_kv_str (pack, "prefix", prefix);
    if (after)
        lh_pack_kv_str (pack, "continuation", after);
    lh_pack_kv_uint (pack, "limit", limit && limit < S_LIST_MAX? limit: S_LIST_MAX);
    lh_pack_close (pack);
    lh_reply_t *reply;
    s_call (self, "list", &pack, &reply);
    if (lh_reply_status (reply) != LH_ST_OK)
        return s_keep (self, &reply);
    const msgpack_object *body = lh_reply_object (reply);
    const msgpack_object *keys = lh_obj_get (body, "keys");
    if (!keys || keys->type != MSGPACK_OBJECT_ARRAY)
        return s_bad_reply (self, &reply, "list", "keys");
    bool truncated = false;
    lh_obj_bool (body, "truncated", &truncated);
    bool stopped = !s_list_walk (keys, fn, arg);
    if (stopped_p)
        *stopped_p = stopped;
    if (next_p && truncated && !stopped)
        *next_p = lh_obj_strdup (lh_obj_get (body, "next"));
    return s_keep (self, &reply);
}

uint32_t
lh_storage_list (lh_storage_t *self, const char *prefix, const char *after,
                 uint32_t limit, lh_storage_list_fn *fn, void *arg, char **next_p)
{
    assert (self && fn);
    return s_list_page (self, prefix, after, limit, fn, arg, next_p, NULL);
}

uint32_t
lh_storage_list_all (lh_storage_t *self, const char *prefix,
                     lh_storage_list_fn *fn, void *arg)
{
    assert (self && fn);
    char *after = NULL;
    uint32_t status;
    do {
        char *next = NULL;
        bool stopped = false;
        status = s_list_page (self, prefix, after, S_LIST_MAX, fn, arg, &next, &stopped);
        free (after);
        after = next;
    } while (status == LH_ST_OK && after);
    free (after);
    return status;
}


//  --------------------------------------------------------------------------
//  Read an object in ranges, S_READ_AHEAD gets in flight

typedef struct {
    uint64_t id;                        //  request id, 0 = slot free
    uint64_t offset;                    //  where its range starts
} s_ahead_t;

//  Pack and send a get of [offset, offset + length); returns its id or 0
static uint64_t
s_get_send (lh_storage_t *self, const char *key, uint64_t offset, uint64_t length)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 3);
    lh_pack_kv_str (pack, "key", key);
    lh_pack_kv_uint (pack, "offset", offset);
    lh_pack_kv_uint (pack, "length", length);
    size_t size;
    const void *data = lh_pack_data (pack, &size);
    uint64_t id = s_send (self, "get", data, size);
    lh_pack_destroy (&pack);
    return id;
}

//  Check one range's reply against the head; 200, or the failure (noted)
static uint32_t
s_range_check (lh_storage_t *self, lh_reply_t **reply_p, const char *key,
               const lh_storage_info_t *info, uint64_t offset,
               const msgpack_object **bytes_p)
{
    lh_reply_t *reply = *reply_p;
    uint32_t status = lh_reply_status (reply);
    if (status == LH_ST_NOT_FOUND) {
        lh_reply_destroy (reply_p);
        return s_fail (self, LH_ST_NOT_FOUND, "not_found",
                       "'%s' was deleted while it was read", key);
    }
    //  A range past the end of an object that shrank meanwhile is a 400
    bool shrank = status == LH_ST_BAD_REQUEST && offset > 0;
    if (status != LH_ST_OK && !shrank)
        return s_keep (self, reply_p);
    const msgpack_object *body = lh_reply_object (reply);
    const msgpack_object *bytes = lh_obj_get (body, "data");
    lh_storage_info_t found;
    if (!shrank && (!bytes || bytes->type != MSGPACK_OBJECT_BIN || !s_info_read (body, &found)))
        return s_bad_reply (self, reply_p, "get", "data, size and etag");
    if (shrank || !streq (found.etag, info->etag)) {
        lh_reply_destroy (reply_p);
        return s_fail (self, LH_ST_CONFLICT, "changed",
                       "'%s' changed while it was read", key);
    }
    if (bytes->via.bin.size == 0) {
        lh_reply_destroy (reply_p);
        return s_fail (self, LH_ST_BAD_GATEWAY, "bad_reply",
                       "storaged gave no bytes of '%s' at offset %" PRIu64 " of %" PRIu64,
                       key, offset, info->size);
    }
    *bytes_p = bytes;
    return LH_ST_OK;
}

uint32_t
lh_storage_read (lh_storage_t *self, const char *key, const lh_storage_info_t *info,
                 uint64_t chunk, lh_storage_read_fn *fn, void *arg)
{
    return lh_storage_read_at (self, key, info, 0, chunk, fn, arg);
}

uint32_t
lh_storage_read_at (lh_storage_t *self, const char *key, const lh_storage_info_t *info,
                    uint64_t start, uint64_t chunk, lh_storage_read_fn *fn, void *arg)
{
    assert (self && key && info && fn);
    s_reset (self);
    if (!chunk)
        chunk = LH_STORAGE_PART_MAX;
    s_ahead_t ahead [S_READ_AHEAD];
    memset (ahead, 0, sizeof (ahead));
    uint64_t offset = start;            //  next byte to hand to fn
    uint64_t asked = start;             //  next byte to ask for
    uint32_t status = LH_ST_OK;
    while (status == LH_ST_OK && offset < info->size) {
        //  Keep the read-ahead full
        for (int slot = 0; slot < S_READ_AHEAD && asked < info->size; slot++)
            if (ahead [slot].id == 0) {
                ahead [slot].id = s_get_send (self, key, asked, chunk);
                ahead [slot].offset = asked;
                if (ahead [slot].id == 0) {
                    status = s_fail (self, LH_ST_UNAVAILABLE, "broker_unreachable",
                                     "storaged could not be asked for '%s'", key);
                    break;
                }
                asked += chunk;
            }
        if (status != LH_ST_OK)
            break;
        s_ahead_t *next = NULL;
        for (int slot = 0; slot < S_READ_AHEAD; slot++)
            if (ahead [slot].id && ahead [slot].offset == offset)
                next = &ahead [slot];
        if (!next) {
            status = s_fail (self, LH_ST_INTERNAL, "internal",
                             "reading '%s' lost its place at offset %" PRIu64, key, offset);
            break;
        }
        lh_reply_t *reply = s_wait (self, next->id);
        next->id = 0;
        const msgpack_object *bytes = NULL;
        status = s_range_check (self, &reply, key, info, offset, &bytes);
        if (status == LH_ST_OK && (bytes->via.bin.size > chunk
                                   || bytes->via.bin.size > info->size - offset)) {
            lh_reply_destroy (&reply);
            status = s_fail (self, LH_ST_BAD_GATEWAY, "bad_reply",
                             "storaged gave more of '%s' than was asked", key);
        }
        if (status != LH_ST_OK)
            break;
        size_t length = bytes->via.bin.size;
        status = fn (arg, bytes->via.bin.ptr, length);
        lh_reply_destroy (&reply);
        if (status) {
            s_fail (self, status, "stopped", "reading '%s' stopped at offset %" PRIu64,
                    key, offset);
            break;
        }
        status = LH_ST_OK;
        offset += length;
        if (length < chunk && offset < info->size) {
            //  storaged answers at most its get_max: the ranges asked ahead
            //  start at the wrong place. Take its size from here on.
            chunk = length;
            for (int slot = 0; slot < S_READ_AHEAD; slot++)
                if (ahead [slot].id) {
                    lh_reply_t *stale = s_wait (self, ahead [slot].id);
                    lh_reply_destroy (&stale);
                    ahead [slot].id = 0;
                }
            asked = offset;
        }
    }
    //  Nothing is left waiting on the client
    for (int slot = 0; slot < S_READ_AHEAD; slot++)
        if (ahead [slot].id) {
            lh_reply_t *stale = s_wait (self, ahead [slot].id);
            lh_reply_destroy (&stale);
        }
    return status;
}


//  --------------------------------------------------------------------------
//  upload_read {upload_id, offset, length}: another caller's upload as it
//  lands

uint32_t
lh_storage_upload_read (lh_storage_t *self, const char *upload_id, const char *key,
                        uint64_t offset, uint64_t length, uint64_t *so_far, bool *readable,
                        const void **data, size_t *size)
{
    assert (self && upload_id && so_far && readable && data && size);
    s_reset (self);
    *data = NULL;
    *size = 0;
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_kv_str (pack, "upload_id", upload_id);
    lh_pack_kv_uint (pack, "offset", offset);
    if (length)
        lh_pack_kv_uint (pack, "length", length);
    lh_pack_close (pack);
    lh_reply_t *reply;
    s_call (self, "upload_read", &pack, &reply);
    if (lh_reply_status (reply) == LH_ST_OK) {
        const msgpack_object *body = lh_reply_object (reply);
        const msgpack_object *bytes = lh_obj_get (body, "data");
        if (!bytes || bytes->type != MSGPACK_OBJECT_BIN || !lh_obj_uint (body, "size", so_far)
        ||  !lh_obj_bool (body, "readable", readable))
            return s_bad_reply (self, &reply, "upload_read", "data, size and readable");
        const char *upload_key = NULL;
        size_t key_size = 0;
        if (key && (!lh_obj_str (body, "key", &upload_key, &key_size)
                    || key_size != strlen (key) || memcmp (upload_key, key, key_size))) {
            lh_reply_destroy (&reply);
            return s_fail (self, LH_ST_CONFLICT, "other_key",
                           "upload '%s' is not one of '%s'", upload_id, key);
        }
        *data = bytes->via.bin.ptr;
        *size = bytes->via.bin.size;
    }
    return s_keep (self, &reply);
}


//  --------------------------------------------------------------------------
//  Download into a file, checking the content's SHA-256

typedef struct {
    int fd;                             //  the file
    int error;                          //  errno of a failed write, or 0
    crypto_hash_sha256_state sha;       //  hash so far
} s_download_t;

static uint32_t
s_download_take (void *arg, const void *data, size_t size)
{
    s_download_t *self = (s_download_t *) arg;
    lh_sha256_update (&self->sha, data, size);
    const uint8_t *at = (const uint8_t *) data;
    while (size) {
        ssize_t wrote = write (self->fd, at, size);
        if (wrote < 0 && errno == EINTR)
            continue;
        if (wrote <= 0) {
            self->error = wrote < 0? errno: ENOSPC;
            return LH_ST_INTERNAL;
        }
        at += wrote;
        size -= (size_t) wrote;
    }
    return 0;
}

uint32_t
lh_storage_download (lh_storage_t *self, const char *key, const char *path,
                     const char *sha256, lh_storage_info_t *info)
{
    assert (self && key && path);
    lh_storage_info_t head;
    uint32_t status = lh_storage_head (self, key, &head);
    if (status != LH_ST_OK)
        return status;
    if (info)
        *info = head;
    s_download_t download = { .fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) };
    if (download.fd < 0)
        return s_fail (self, LH_ST_INTERNAL, "local_io", "a local file for '%s' cannot be "
                       "written: %s", key, strerror (errno));
    crypto_hash_sha256_init (&download.sha);
    status = lh_storage_read (self, key, &head, 0, s_download_take, &download);
    if (close (download.fd) != 0 && !download.error)
        download.error = errno;
    if (download.error && (status == LH_ST_OK || status == LH_ST_INTERNAL))
        status = s_fail (self, LH_ST_INTERNAL, "local_io",
                         "the local file for '%s' cannot be written: %s", key,
                         strerror (download.error));
    if (status == LH_ST_OK) {
        char hex [crypto_hash_sha256_BYTES * 2 + 1];
        lh_sha256_final_hex (&download.sha, hex);
        const char *expected = sha256? sha256: head.etag;
        if (strcasecmp (hex, expected) != 0)
            status = s_fail (self, LH_ST_INTERNAL, "checksum_mismatch",
                             "'%s' does not match its SHA-256 (torn or corrupt)", key);
    }
    if (status != LH_ST_OK)
        unlink (path);
    return status;
}


//  --------------------------------------------------------------------------
//  Multipart uploads

//  Pack upload_begin {key, conditions, size?, dry_run?}
static lh_pack_t *
s_begin_pack (const char *key, const lh_storage_cond_t *cond, uint64_t size, bool dry_run)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_kv_str (pack, "key", key);
    if (cond)
        s_cond_pack (pack, cond->if_none_match, cond->if_match);
    if (size)
        lh_pack_kv_uint (pack, "size", size);
    if (dry_run)
        lh_pack_kv_bool (pack, "dry_run", true);
    lh_pack_close (pack);
    return pack;
}

//  upload_begin {key, conditions}; *upload_p on 200
uint32_t
lh_storage_upload_begin (lh_storage_t *self, const char *key,
                         const lh_storage_cond_t *cond, lh_storage_upload_t **upload_p)
{
    return lh_storage_upload_begin_sized (self, key, cond, 0, 0, upload_p);
}

//  upload_begin {key, conditions, size?}; *upload_p on 200
uint32_t
lh_storage_upload_begin_sized (lh_storage_t *self, const char *key,
                               const lh_storage_cond_t *cond, uint64_t size,
                               size_t part_size, lh_storage_upload_t **upload_p)
{
    assert (self && key && upload_p);
    assert (!self->upload);             //  one upload at a time per client
    *upload_p = NULL;
    bool if_none_match = cond && cond->if_none_match;
    const char *if_match = cond? cond->if_match: NULL;
    lh_reply_t *reply = NULL;
    for (int attempt = 0; attempt < self->busy_tries; attempt++) {
        s_reset (self);
        lh_pack_t *pack = s_begin_pack (key, cond, size, false);
        s_call (self, "upload_begin", &pack, &reply);
        //  Every PUT slot taken: wait as storaged says, and try again
        const msgpack_object *error = lh_obj_get (lh_reply_object (reply), "error");
        const char *kind;
        size_t kind_size;
        uint64_t wait = 250;
        if (lh_reply_status (reply) != LH_ST_UNAVAILABLE
        ||  !lh_obj_str (error, "kind", &kind, &kind_size)
        ||  kind_size != 4 || memcmp (kind, "busy", 4) != 0)
            break;
        lh_obj_uint (error, "retry_after_ms", &wait);
        if (wait > S_BUSY_WAIT_MAX)
            wait = S_BUSY_WAIT_MAX;
        if (s_time_left (self) <= wait || attempt + 1 == self->busy_tries)
            break;
        lh_reply_destroy (&reply);
        zclock_sleep ((int) wait);
        lh_keepalive ();
    }
    if (lh_reply_status (reply) != LH_ST_OK)
        return s_keep (self, &reply);
    const msgpack_object *body = lh_reply_object (reply);
    char *upload_id = lh_obj_strdup (lh_obj_get (body, "upload_id"));
    uint64_t part_max = 0;
    if (!upload_id || !*upload_id || !lh_obj_uint (body, "part_max", &part_max) || !part_max) {
        free (upload_id);
        return s_bad_reply (self, &reply, "upload_begin", "upload_id and part_max");
    }
    lh_reply_destroy (&reply);
    if (part_max > LH_STORAGE_PART_MAX)
        part_max = LH_STORAGE_PART_MAX;
    if (part_size && part_size < part_max)
        part_max = part_size;
    lh_storage_upload_t *upload = (lh_storage_upload_t *) zmalloc (sizeof (lh_storage_upload_t));
    assert (upload);
    upload->storage = self;
    upload->upload_id = upload_id;
    upload->if_none_match = if_none_match;
    upload->if_match = if_match? strdup (if_match): NULL;
    upload->part_max = (size_t) part_max;
    self->upload = upload;
    *upload_p = upload;
    return LH_ST_OK;
}

//  upload_begin {key, conditions, size, dry_run: true}: the checks only
uint32_t
lh_storage_upload_check (lh_storage_t *self, const char *key,
                         const lh_storage_cond_t *cond, uint64_t size)
{
    assert (self && key);
    s_reset (self);
    lh_pack_t *pack = s_begin_pack (key, cond, size, true);
    lh_reply_t *reply;
    s_call (self, "upload_begin", &pack, &reply);
    return s_keep (self, &reply);
}

//  Free an upload and forget it on its client
static void
s_upload_free (lh_storage_upload_t **upload_p)
{
    lh_storage_upload_t *upload = *upload_p;
    if (upload) {
        if (upload->storage->upload == upload)
            upload->storage->upload = NULL;
        free (upload->upload_id);
        free (upload->if_match);
        free (upload->buffer);
        free (upload);
        *upload_p = NULL;
    }
}

//  The body of part number part, whose size bytes stand at content (with
//  S_PART_HEAD bytes of room before them): the msgpack head is written
//  just before the content, so the part goes out without a copy.
//  Returns where the body starts; *body_size its size.
static const uint8_t *
s_part_body (lh_storage_upload_t *upload, uint8_t *content, size_t size, uint32_t part,
             size_t *body_size)
{
    msgpack_sbuffer head;
    msgpack_sbuffer_init (&head);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &head, msgpack_sbuffer_write);
    size_t id_size = strlen (upload->upload_id);
    msgpack_pack_map (&packer, 3);
    msgpack_pack_str_with_body (&packer, "upload_id", 9);
    msgpack_pack_str_with_body (&packer, upload->upload_id, id_size);
    msgpack_pack_str_with_body (&packer, "part", 4);
    msgpack_pack_uint32 (&packer, part);
    msgpack_pack_str_with_body (&packer, "data", 4);
    msgpack_pack_bin (&packer, size);
    assert (head.size <= S_PART_HEAD);
    uint8_t *body = content - head.size;
    memcpy (body, head.data, head.size);
    *body_size = head.size + size;
    msgpack_sbuffer_destroy (&head);
    return body;
}

//  The reply to a part: 200, or the failure (the upload is over)
static uint32_t
s_part_done (lh_storage_upload_t *upload, lh_reply_t **reply_p)
{
    uint32_t status = s_keep (upload->storage, reply_p);
    if (status != LH_ST_OK)
        upload->status = status;
    return status;
}

//  Wait for the answer to the part in flight, if any: 200, or the
//  failure that ended the upload
static uint32_t
s_part_settle (lh_storage_upload_t *upload)
{
    if (!upload->in_flight)
        return upload->status? upload->status: LH_ST_OK;
    lh_reply_t *reply = s_wait (upload->storage, upload->in_flight);
    upload->in_flight = 0;
    return s_part_done (upload, &reply);
}

//  Send the held bytes as the next part without waiting for its answer
//  (the bus client keeps its own copy, so the buffer fills again while
//  storaged writes); the part before it is answered first. 200, or the
//  failure that ended the upload.
static uint32_t
s_part_flush (lh_storage_upload_t *upload)
{
    uint32_t status = s_part_settle (upload);
    if (status != LH_ST_OK)
        return status;
    lh_storage_t *self = upload->storage;
    s_reset (self);
    size_t body_size;
    const uint8_t *body = s_part_body (upload, upload->buffer + S_PART_HEAD, upload->held,
                                       ++upload->parts, &body_size);
    upload->in_flight = s_send (self, "upload_part", body, body_size);
    upload->held = 0;
    if (!upload->in_flight)
        upload->status = s_fail (self, LH_ST_UNAVAILABLE, "broker_unreachable",
                                 "storaged could not be sent part %u of an upload",
                                 upload->parts);
    return upload->status? upload->status: LH_ST_OK;
}

uint32_t
lh_storage_upload_write (lh_storage_upload_t *upload, const void *data, size_t size)
{
    assert (upload);
    if (upload->status)
        return upload->status;
    if (!upload->buffer) {
        upload->buffer = (uint8_t *) malloc (S_PART_HEAD + upload->part_max);
        assert (upload->buffer);
    }
    const uint8_t *at = (const uint8_t *) data;
    while (size) {
        size_t room = upload->part_max - upload->held;
        size_t take = size < room? size: room;
        memcpy (upload->buffer + S_PART_HEAD + upload->held, at, take);
        upload->held += take;
        upload->bytes += take;
        at += take;
        size -= take;
        if (upload->held == upload->part_max && s_part_flush (upload) != LH_ST_OK)
            return upload->status;
    }
    return LH_ST_OK;
}

const char *
lh_storage_upload_id (lh_storage_upload_t *upload)
{
    assert (upload);
    return upload->upload_id;
}

uint64_t
lh_storage_upload_bytes (lh_storage_upload_t *upload)
{
    assert (upload);
    return upload->bytes;
}

//  upload_commit {upload_id, key?, conditions}
static uint32_t
s_commit (lh_storage_upload_t *upload, const char *key, lh_storage_info_t *info)
{
    lh_storage_t *self = upload->storage;
    s_reset (self);
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_kv_str (pack, "upload_id", upload->upload_id);
    if (key)
        lh_pack_kv_str (pack, "key", key);
    s_cond_pack (pack, upload->if_none_match, upload->if_match);
    lh_pack_close (pack);
    lh_reply_t *reply;
    s_call (self, "upload_commit", &pack, &reply);
    lh_storage_info_t written;
    if (lh_reply_status (reply) == LH_ST_OK) {
        if (!s_info_read (lh_reply_object (reply), &written))
            return s_bad_reply (self, &reply, "upload_commit", "size and etag");
        if (info)
            *info = written;
    }
    return s_keep (self, &reply);
}

//  Send the rest and commit under key (NULL: the begin's key)
static uint32_t
s_upload_finish (lh_storage_upload_t **upload_p, const char *key, lh_storage_info_t *info)
{
    assert (upload_p && *upload_p);
    lh_storage_upload_t *upload = *upload_p;
    uint32_t status = upload->status;
    //  The rest, and at least one part
    if (!status && (upload->held || upload->parts == 0)) {
        if (!upload->buffer) {
            upload->buffer = (uint8_t *) malloc (S_PART_HEAD);
            assert (upload->buffer);
        }
        status = s_part_flush (upload);
        if (status == LH_ST_OK)
            status = 0;
    }
    if (!status) {
        status = s_part_settle (upload);
        if (status == LH_ST_OK)
            status = 0;
    }
    if (!status) {
        status = s_commit (upload, key, info);
        //  A commit ends the upload whatever it answers (412 included)
        s_upload_free (upload_p);
        return status;
    }
    //  The failure stays the outcome (the abort's answer is not kept)
    lh_storage_upload_abort (upload_p);
    return status;
}

uint32_t
lh_storage_upload_commit (lh_storage_upload_t **upload_p, lh_storage_info_t *info)
{
    return s_upload_finish (upload_p, NULL, info);
}

uint32_t
lh_storage_upload_commit_as (lh_storage_upload_t **upload_p, const char *key,
                             lh_storage_info_t *info)
{
    assert (key);
    return s_upload_finish (upload_p, key, info);
}


void
lh_storage_upload_abort (lh_storage_upload_t **upload_p)
{
    assert (upload_p);
    lh_storage_upload_t *upload = *upload_p;
    if (!upload)
        return;
    lh_storage_t *self = upload->storage;
    if (upload->in_flight) {
        lh_reply_t *reply = s_wait (self, upload->in_flight);
        lh_reply_destroy (&reply);
    }
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_str (pack, "upload_id", upload->upload_id);
    lh_reply_t *reply;
    s_call (self, "upload_abort", &pack, &reply);
    lh_reply_destroy (&reply);
    s_upload_free (upload_p);
}


//  --------------------------------------------------------------------------
//  Upload a file: the next part is read while the last one travels

//  Read up to size bytes into buffer; returns the count (short only at
//  the end of the file), or -1
static ssize_t
s_read_full (int fd, uint8_t *buffer, size_t size)
{
    size_t got = 0;
    while (got < size) {
        ssize_t rc = read (fd, buffer + got, size - got);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return -1;
        if (rc == 0)
            break;
        got += (size_t) rc;
    }
    return (ssize_t) got;
}

uint32_t
lh_storage_upload_send_file (lh_storage_upload_t *upload, const char *path, int flags,
                             crypto_hash_sha256_state *hash)
{
    assert (upload && path);
    if (upload->status)
        return upload->status;
    lh_storage_t *self = upload->storage;
    bool release = (flags & LH_STORAGE_RELEASE) != 0;
    int fd = open (path, (release? O_RDWR: O_RDONLY) | O_CLOEXEC);
    if (fd < 0) {
        upload->status = s_fail (self, LH_ST_INTERNAL, "local_io", "the file '%s' cannot be "
                                 "read: %s", path, strerror (errno));
        return upload->status;
    }
    if (!upload->buffer) {
        upload->buffer = (uint8_t *) malloc (S_PART_HEAD + upload->part_max);
        assert (upload->buffer);
    }
    off_t offset = 0;
    while (true) {
        //  Fill the part straight from the file; the part before it is
        //  on its way meanwhile (s_part_flush does not wait for it)
        uint8_t *room = upload->buffer + S_PART_HEAD + upload->held;
        size_t wanted = upload->part_max - upload->held;
        ssize_t got = s_read_full (fd, room, wanted);
        if (got < 0) {
            upload->status = s_fail (self, LH_ST_INTERNAL, "local_io", "the file '%s' cannot "
                                     "be read: %s", path, strerror (errno));
            break;
        }
        if (hash)
            lh_sha256_update (hash, room, (size_t) got);
        //  The bytes are ours now: the file's pages go back at once, so
        //  what storaged writes next can reuse them (best effort: on a
        //  filesystem without holes they stay until the file is gone)
        if (release && got > 0
        &&  fallocate (fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, (off_t) got))
            release = false;
        offset += (off_t) got;
        upload->held += (size_t) got;
        upload->bytes += (uint64_t) got;
        if ((size_t) got < wanted || s_part_flush (upload) != LH_ST_OK)
            break;
    }
    close (fd);
    return upload->status? upload->status: LH_ST_OK;
}

uint32_t
lh_storage_upload_file (lh_storage_t *self, const char *key, const char *path,
                        const lh_storage_cond_t *cond, lh_storage_info_t *info)
{
    assert (self && key && path);
    if (access (path, R_OK))
        return s_fail (self, LH_ST_INTERNAL, "local_io", "the file to store as '%s' cannot "
                       "be read: %s", key, strerror (errno));
    lh_storage_upload_t *upload;
    uint32_t status = lh_storage_upload_begin (self, key, cond, &upload);
    if (status != LH_ST_OK)
        return status;
    lh_storage_upload_send_file (upload, path, 0, NULL);
    return lh_storage_upload_commit (&upload, info);
}


//  --------------------------------------------------------------------------
//  Self test: storaged on a test bus with small parts and gets, each
//  operation from a plain client, and from a handler (trace, deadline)

#include "lh_testbus.h"
#include "storaged.h"

//  A handler that heads the key it is given through a request's client
static void
s_test_probe (lh_request_t *request, void *state)
{
    const msgpack_object *body = lh_request_map (request);
    char *key = NULL;
    if (!body || lh_request_strdup (request, body, "key", LH_FIELD_REQUIRED, 1024, &key))
        return;
    lh_storage_t *storage = lh_storage_new_request (request, 0);
    lh_storage_info_t info;
    uint32_t status = lh_storage_head (storage, key, &info);
    if (status == LH_ST_OK) {
        lh_pack_t *pack = lh_pack_new ();
        lh_pack_open_map (pack);
        lh_pack_kv_uint (pack, "size", info.size);
        lh_pack_kv_str (pack, "tr", lh_request_trace (request));
        lh_pack_close (pack);
        lh_request_reply_pack (request, LH_ST_OK, &pack);
    }
    else
        lh_request_fail_dependency (request, lh_storage_reply (storage), "storaged", "the head");
    lh_storage_destroy (&storage);
    free (key);
}

static const lh_op_t s_test_ops [] = { { "probe", s_test_probe }, { NULL, NULL } };
static const lh_service_t s_test_service = { .name = "probe", .ops = s_test_ops };

//  List callback: count keys, stop at arg's limit
typedef struct {
    int seen;                           //  keys seen
    int stop_at;                        //  stop after this many (0: never)
} s_test_list_t;

static int
s_test_list (void *arg, const char *key, const lh_storage_info_t *info)
{
    s_test_list_t *self = (s_test_list_t *) arg;
    assert (strncmp (key, "t/", 2) == 0 && strlen (info->etag) == 64);
    self->seen++;
    return self->stop_at && self->seen >= self->stop_at? -1: 0;
}

//  Read callback: append into a buffer; at the first range, replace the
//  object (arg->bus set) so that a later range sees another ETag
typedef struct {
    uint8_t data [8192];                //  what was read
    size_t size;                        //  bytes read
    lh_testbus_t *bus;                  //  replace t/file while reading
} s_test_read_t;

static uint32_t
s_test_read (void *arg, const void *data, size_t size)
{
    s_test_read_t *self = (s_test_read_t *) arg;
    assert (self->size + size <= sizeof (self->data));
    memcpy (self->data + self->size, data, size);
    self->size += size;
    if (self->bus) {
        lh_reply_t *reply = lh_testbus_call (self->bus, "storaged", "put",
                                             "{\"key\": \"t/file\", \"data\": \"changed\"}");
        assert (lh_reply_status (reply) == 200);
        lh_reply_destroy (&reply);
        self->bus = NULL;
    }
    return 0;
}

void
lh_storage_test (bool verbose)
{
    printf (" * lh_storage: ");
    lh_testbus_t *bus = lh_testbus_new ("storage");
    lh_testbus_set (bus, "storaged/part_max", "1000");
    lh_testbus_set (bus, "storaged/get_max", "700");
    lh_testbus_set (bus, "storaged/cap_default", "6000");
    lh_testbus_start (bus, &lh_storaged_service, 1);
    lh_testbus_start (bus, &s_test_service, 1);
    lh_client_t *client = lh_testbus_client_new (bus, "storage-test");
    lh_storage_t *storage = lh_storage_new (client, NULL, 5000);

    //  put, head, get (ranged), conditions, delete
    lh_storage_info_t info, other;
    assert (lh_storage_put (storage, "t/a", "hello world", 11, NULL, &info) == 200);
    assert (info.size == 11 && strlen (info.etag) == 64);
    assert (lh_storage_reply (storage) == NULL && streq (lh_storage_reason (storage), ""));
    assert (lh_storage_head (storage, "t/a", &other) == 200);
    assert (other.size == 11 && streq (other.etag, info.etag) && other.mtime_ms > 0);
    const void *data;
    size_t size;
    assert (lh_storage_get (storage, "t/a", 6, 5, &other, &data, &size) == 200);
    assert (size == 5 && memcmp (data, "world", 5) == 0 && other.size == 11);
    lh_storage_cond_t create = { .if_none_match = true };
    assert (lh_storage_put (storage, "t/a", "x", 1, &create, NULL) == 412);
    assert (lh_storage_reply (storage) && lh_reply_status (lh_storage_reply (storage)) == 412);
    assert (*lh_storage_reason (storage));
    lh_storage_cond_t stale = { .if_match = "0000000000000000000000000000000000000000000000000000000000000000" };
    assert (lh_storage_put (storage, "t/a", "x", 1, &stale, NULL) == 412);
    lh_storage_cond_t current = { .if_match = info.etag };
    assert (lh_storage_put (storage, "t/a", "v2", 2, &current, NULL) == 200);
    assert (lh_storage_put (storage, "..", "x", 1, NULL, NULL) == 400);
    assert (lh_storage_put (storage, "t/big", "x", 0, NULL, NULL) == 200);
    assert (lh_storage_delete (storage, "t/big") == 200);
    assert (lh_storage_delete (storage, "t/big") == 404);
    assert (lh_storage_head (storage, "t/big", &info) == 404);
    assert (lh_storage_get (storage, "t/big", 0, 0, NULL, &data, &size) == 404);

    //  Multipart by writes of odd sizes: 2,500 bytes in parts of 1,000
    uint8_t content [5000];
    for (size_t index = 0; index < sizeof (content); index++)
        content [index] = (uint8_t) (index * 7 + index / 251);
    lh_storage_upload_t *upload;
    assert (lh_storage_upload_begin (storage, "t/multi", &create, &upload) == 200);
    for (size_t at = 0; at < 2500; at += 333)
        assert (lh_storage_upload_write (upload, content + at, at + 333 > 2500? 2500 - at: 333) == 200);
    assert (lh_storage_upload_bytes (upload) == 2500);
    assert (lh_storage_upload_commit (&upload, &info) == 200);
    assert (!upload && info.size == 2500);
    //  The same key again, create-only: 412 at begin
    assert (lh_storage_upload_begin (storage, "t/multi", &create, &upload) == 412 && !upload);
    //  A size said at begin: over the key's cap (6000) is 413 at once,
    //  and a dry run begins nothing; parts of a size chosen
    assert (lh_storage_upload_check (storage, "t/sized", &create, 7000) == 413);
    assert (strstr (lh_storage_reason (storage), "6000"));
    assert (lh_storage_upload_check (storage, "t/multi", &create, 10) == 412);
    assert (lh_storage_upload_check (storage, "t/sized", &create, 5000) == 200);
    assert (lh_storage_head (storage, "t/sized", &info) == 404);
    assert (lh_storage_upload_begin_sized (storage, "t/sized", NULL, 7000, 0, &upload) == 413);
    assert (!upload);
    assert (lh_storage_upload_begin_sized (storage, "t/sized", NULL, 2500, 400, &upload) == 200);
    for (size_t at = 0; at < 2500; at += 1000)
        assert (lh_storage_upload_write (upload, content + at, at + 1000 > 2500? 2500 - at: 1000) == 200);
    assert (upload->parts == 6);
    assert (lh_storage_upload_commit (&upload, &info) == 200 && info.size == 2500);
    assert (upload == NULL);
    //  Another client follows an upload as it lands, then reads the rest
    //  from the key once it is committed
    assert (lh_storage_upload_begin_sized (storage, "t/follow", NULL, 0, 500, &upload) == 200);
    assert (lh_storage_upload_write (upload, content, 2200) == 200);
    lh_storage_t *follower = lh_storage_new (client, NULL, 5000);
    uint64_t so_far = 0, followed = 0;
    bool readable = false;
    for (int round = 0; round < 200 && followed < 1500; round++) {
        assert (lh_storage_upload_read (follower, lh_storage_upload_id (upload), "t/follow",
                                        followed, 300, &so_far, &readable, &data,
                                        &size) == 200);
        assert (readable && size <= 300 && followed + size <= so_far && so_far <= 2200);
        assert (memcmp (data, content + followed, size) == 0);
        followed += size;
        if (!size)
            zclock_sleep (5);
    }
    assert (followed >= 1500);
    //  Only the bytes before the last part are final: 2000 of them sent, 1500 final
    assert (so_far == 1500);
    assert (lh_storage_upload_read (follower, lh_storage_upload_id (upload), NULL, 1501, 0,
                                    &so_far, &readable, &data, &size) == 400);
    //  ... and only an upload of the key the follower names
    assert (lh_storage_upload_read (follower, lh_storage_upload_id (upload), "t/other", 0, 0,
                                    &so_far, &readable, &data, &size) == 409);
    assert (lh_storage_upload_read (follower, "00000000000000000000000000000000", NULL, 0, 0,
                                    &so_far, &readable, &data, &size) == 404);
    char *follow_id = strdup (lh_storage_upload_id (upload));
    assert (lh_storage_upload_commit (&upload, &info) == 200 && info.size == 2200);
    assert (lh_storage_upload_read (follower, follow_id, NULL, followed, 0, &so_far, &readable,
                                    &data, &size) == 404);
    free (follow_id);
    s_test_read_t *rest = (s_test_read_t *) zmalloc (sizeof (s_test_read_t));
    assert (lh_storage_read_at (follower, "t/follow", &info, followed, 256, s_test_read, rest) == 200);
    assert (rest->size == 2200 - followed && memcmp (rest->data, content + followed, rest->size) == 0);
    free (rest);
    lh_storage_destroy (&follower);
    //  An empty upload is one empty part
    assert (lh_storage_upload_begin (storage, "t/empty", NULL, &upload) == 200);
    assert (lh_storage_upload_commit (&upload, &info) == 200 && info.size == 0);
    //  Over the key's cap: 413, the upload ends, later writes say so
    assert (lh_storage_upload_begin (storage, "t/huge", NULL, &upload) == 200);
    uint32_t status = 200;
    for (int round = 0; round < 3 && status == 200; round++)
        status = lh_storage_upload_write (upload, content, sizeof (content));
    assert (status == 413);
    assert (lh_storage_upload_write (upload, content, 1) == 413);
    assert (lh_storage_upload_commit (&upload, NULL) == 413 && !upload);
    assert (lh_storage_head (storage, "t/huge", &info) == 404);
    //  Destroying a client with an upload open aborts it
    lh_storage_t *doomed = lh_storage_new (client, NULL, 5000);
    assert (lh_storage_upload_begin (doomed, "t/doomed", NULL, &upload) == 200);
    assert (lh_storage_upload_write (upload, content, 10) == 200);
    lh_storage_destroy (&doomed);
    assert (lh_storage_head (storage, "t/doomed", &info) == 404);

    //  A file up, down (SHA-256 checked), and read in ranges
    char *path = zsys_sprintf ("%s/up", lh_testbus_dir (bus));
    char *down = zsys_sprintf ("%s/down", lh_testbus_dir (bus));
    FILE *file = fopen (path, "wb");
    assert (file && fwrite (content, 1, sizeof (content), file) == sizeof (content));
    fclose (file);
    assert (lh_storage_upload_file (storage, "t/file", path, &create, &info) == 200);
    assert (info.size == sizeof (content));
    assert (lh_storage_upload_file (storage, "t/file", path, &create, NULL) == 412);
    assert (lh_storage_upload_file (storage, "t/x", "/nonexistent/file", NULL, NULL) == 500);
    lh_storage_info_t head;
    //  The same file sent into an upload, hashed on the way and released
    //  (its pages given back, its size kept), then committed under a key
    //  named by the hash; the begun key is never written
    lh_storage_upload_t *sent;
    assert (lh_storage_upload_begin_sized (storage, "t/staged", &create, 0, 700, &sent) == 200);
    crypto_hash_sha256_state sent_hash;
    crypto_hash_sha256_init (&sent_hash);
    assert (lh_storage_upload_send_file (sent, path, LH_STORAGE_RELEASE, &sent_hash) == 200);
    assert (lh_storage_upload_bytes (sent) == sizeof (content) && sent->parts == 7);
    char sent_hex [65];
    lh_sha256_final_hex (&sent_hash, sent_hex);
    assert (streq (sent_hex, info.etag));
    char *named = zsys_sprintf ("t/%s", sent_hex);
    lh_storage_info_t named_info;
    assert (lh_storage_upload_commit_as (&sent, named, &named_info) == 200 && !sent);
    assert (streq (named_info.etag, info.etag) && named_info.size == sizeof (content));
    assert (lh_storage_head (storage, named, &head) == 200 && streq (head.etag, info.etag));
    assert (lh_storage_head (storage, "t/staged", &head) == 404);
    zstr_free (&named);
    struct stat released;
    assert (stat (path, &released) == 0 && released.st_size == (off_t) sizeof (content));
    //  Given back where the filesystem can punch holes: it reads as zeros
    int probe = open (path, O_RDWR);
    assert (probe >= 0);
    if (fallocate (probe, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 1) == 0) {
        uint8_t zeros [sizeof (content)];
        assert (pread (probe, zeros, sizeof (zeros), 0) == (ssize_t) sizeof (zeros));
        for (size_t at = 0; at < sizeof (zeros); at++)
            assert (zeros [at] == 0);
    }
    close (probe);
    //  Sending a file that cannot be read ends the upload
    assert (lh_storage_upload_begin (storage, "t/never", NULL, &sent) == 200);
    assert (lh_storage_upload_send_file (sent, "/nonexistent/file", 0, NULL) == 500);
    assert (lh_storage_upload_commit (&sent, NULL) == 500 && !sent);
    assert (lh_storage_head (storage, "t/never", &head) == 404);
    //  The file again, for the downloads below
    file = fopen (path, "wb");
    assert (file && fwrite (content, 1, sizeof (content), file) == sizeof (content));
    fclose (file);
    assert (lh_storage_download (storage, "t/file", down, NULL, &head) == 200);
    assert (streq (head.etag, info.etag));
    file = fopen (down, "rb");
    uint8_t back [sizeof (content) + 1];
    assert (file && fread (back, 1, sizeof (back), file) == sizeof (content));
    fclose (file);
    assert (memcmp (back, content, sizeof (content)) == 0);
    assert (lh_storage_download (storage, "t/file", down, "00", NULL) == 500);
    assert (streq (lh_storage_kind (storage), "checksum_mismatch"));
    assert (strstr (lh_storage_reason (storage), "SHA-256"));
    assert (access (down, F_OK) != 0);
    assert (lh_storage_download (storage, "t/none", down, NULL, NULL) == 404);
    s_test_read_t *read = (s_test_read_t *) zmalloc (sizeof (s_test_read_t));
    assert (lh_storage_read (storage, "t/file", &head, 300, s_test_read, read) == 200);
    assert (read->size == sizeof (content) && memcmp (read->data, content, sizeof (content)) == 0);
    //  Ranges larger than storaged's get_max (700): it adapts
    read->size = 0;
    assert (lh_storage_read (storage, "t/file", &head, 0, s_test_read, read) == 200);
    assert (read->size == sizeof (content) && memcmp (read->data, content, sizeof (content)) == 0);
    //  The object replaced during the read: 409
    read->size = 0;
    read->bus = bus;
    assert (lh_storage_read (storage, "t/file", &head, 300, s_test_read, read) == 409);
    free (read);
    zstr_free (&path);
    zstr_free (&down);

    //  list: pages, and every page
    for (int index = 0; index < 5; index++) {
        char key [32];
        snprintf (key, sizeof (key), "t/list/%d", index);
        assert (lh_storage_put (storage, key, "x", 1, NULL, NULL) == 200);
    }
    s_test_list_t seen = { 0 };
    char *next = NULL;
    assert (lh_storage_list (storage, "t/list/", NULL, 2, s_test_list, &seen, &next) == 200);
    assert (seen.seen == 2 && next && streq (next, "t/list/1"));
    assert (lh_storage_list (storage, "t/list/", next, 10, s_test_list, &seen, NULL) == 200);
    assert (seen.seen == 5);
    zstr_free (&next);
    seen = (s_test_list_t) { 0 };
    assert (lh_storage_list_all (storage, "t/", s_test_list, &seen) == 200);
    assert (seen.seen == 12);             //  the named upload among them
    seen = (s_test_list_t) { .stop_at = 3 };
    assert (lh_storage_list_all (storage, "t/", s_test_list, &seen) == 200 && seen.seen == 3);

    //  From a handler: the request's trace rides along; with storaged
    //  gone, the request's deadline ends the call and the handler answers
    //  503 with retry_after_ms
    lh_reply_t *reply = lh_testbus_call (bus, "probe", "probe", "{\"key\": \"t/a\"}");
    uint64_t got = 0;
    assert (lh_reply_status (reply) == 200);
    assert (lh_obj_uint (lh_reply_object (reply), "size", &got) && got == 2);
    lh_reply_destroy (&reply);
    lh_testbus_stop (bus, "storaged");
    lh_call_opts_t opts = { .timeout_ms = 400 };
    int64_t started = zclock_mono ();
    lh_client_call (client, "probe", "probe", "\x81\xa3key\xa3t/a", 9, &opts, &reply);
    assert (zclock_mono () - started < 2000);
    assert (lh_reply_status (reply) == 503 || lh_reply_status (reply) == 504);
    lh_reply_destroy (&reply);
    //  ... and a plain client's call ends at its own timeout
    lh_storage_destroy (&storage);
    storage = lh_storage_new (client, NULL, 200);
    assert (lh_storage_head (storage, "t/a", &info) == 504);
    assert (lh_storage_reply (storage));
    lh_storage_destroy (&storage);
    lh_client_destroy (&client);
    lh_testbus_destroy (&bus);
    printf ("OK\n");
}
