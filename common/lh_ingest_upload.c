/*  =========================================================================
    lh_ingest_upload - stream bytes into storaged, then ingest them

    See lh_ingest_upload.h. Every storaged call goes through the typed
    storage client (lh_storage). The first part is buffered here, growing
    with what arrives up to part_size, so a small body costs what it is and
    goes as one put; once a whole part is waiting, a multipart upload is
    begun and the storage client's uploader holds the parts from then on.
    =========================================================================
*/

#include "lh_ingest_upload.h"
#include "lh_storage.h"
#include "lh_body.h"
#include "lh_log.h"

#define S_ACTOR         "ingest_upload"
#define S_READ_CHUNK    (256 * 1024)    //  bytes read from a file at a time

//  Upload state
typedef enum {
    S_OPEN = 0,                         //  taking bytes
    S_DONE,                             //  finished: the object is visible
    S_FAILED                            //  failed: status/kind/reason say why
} s_state_t;

struct _lh_ingest_upload_t {
    lh_storage_t *storage;              //  storaged, over the caller's client
    char *key;                          //  object key
    lh_ingest_upload_opts_t opts;       //  options (strings copied below)
    char *if_match;                     //  copy of opts.if_match
    lh_storage_cond_t cond;             //  the conditions, for every call
    s_state_t state;                    //  where we are
    char *buffer;                       //  the first part, until the upload begins
    size_t size;                        //  bytes in it
    size_t capacity;                    //  allocated
    lh_storage_upload_t *upload;        //  multipart upload, once begun
    uint64_t bytes;                     //  bytes taken
    uint64_t progress_mark;             //  bytes at the last progress call
    uint64_t records;                   //  CSV record ends seen
    bool in_quotes;                     //  CSV scanner: inside a quoted field
    bool line_open;                     //  CSV scanner: bytes since the last record end
    uint32_t status;                    //  error status, 0 = none
    char *kind;                         //  error kind
    char *reason;                       //  error reason
    uint64_t retry_after_ms;            //  advised retry, 0 = none
    char etag [LH_STORAGE_ETAG_MAX + 1];    //  ETag once finished
};


//  --------------------------------------------------------------------------
//  Record an error (first one wins)

static void
s_fail (lh_ingest_upload_t *self, uint32_t status, const char *kind,
        const char *reason, uint64_t retry_after_ms)
{
    if (self->status)
        return;
    self->status = status;
    self->kind = strdup (kind && *kind? kind: lh_status_kind (status));
    self->reason = strdup (reason && *reason? reason: lh_status_text (status));
    self->retry_after_ms = retry_after_ms;
    self->state = S_FAILED;
}


//  --------------------------------------------------------------------------
//  Record the failure of the storage client's last operation (status, as
//  it returned it); returns the status

static uint32_t
s_fail_storage (lh_ingest_upload_t *self, uint32_t status)
{
    lh_reply_t *reply = lh_storage_reply (self->storage);
    const msgpack_object *error = reply? lh_obj_get (lh_reply_object (reply), "error"): NULL;
    uint64_t retry = 0;
    if (error)
        lh_obj_uint (error, "retry_after_ms", &retry);
    s_fail (self, status >= 200 && status <= 599? status: LH_ST_BAD_GATEWAY,
            lh_storage_kind (self->storage), lh_storage_reason (self->storage), retry);
    return self->status;
}


//  --------------------------------------------------------------------------
//  Abort the multipart upload, if any (best effort)

static void
s_abort (lh_ingest_upload_t *self)
{
    lh_storage_upload_abort (&self->upload);
}


//  --------------------------------------------------------------------------
//  Tell the progress function, once per part_size bytes (and at the end)

static void
s_progress (lh_ingest_upload_t *self, bool end)
{
    if (self->opts.progress
    &&  (end || self->bytes - self->progress_mark >= self->opts.part_size)) {
        self->progress_mark = self->bytes;
        self->opts.progress (self->opts.progress_arg, self->bytes, lh_ingest_upload_rows (self));
    }
}


//  --------------------------------------------------------------------------
//  Begin the multipart upload and hand it the buffered first part.
//  Returns 0 or -1 (error recorded).

static int
s_begin (lh_ingest_upload_t *self)
{
    uint32_t status = lh_storage_upload_begin_sized (self->storage, self->key, &self->cond,
                                                     self->opts.size_declared,
                                                     self->opts.part_size, &self->upload);
    if (status != LH_ST_OK) {
        s_fail_storage (self, status);
        return -1;
    }
    status = lh_storage_upload_write (self->upload, self->buffer, self->size);
    free (self->buffer);
    self->buffer = NULL;
    self->size = self->capacity = 0;
    if (status != LH_ST_OK) {
        s_fail_storage (self, status);
        s_abort (self);
        return -1;
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Count CSV record ends in data (newlines outside quotes)

static void
s_scan (lh_ingest_upload_t *self, const char *data, size_t size)
{
    bool in_quotes = self->in_quotes;
    uint64_t records = self->records;
    const char *end = data + size;
    while (data < end) {
        if (in_quotes) {
            const char *quote = (const char *) memchr (data, '"', end - data);
            if (!quote)
                break;
            in_quotes = false;
            data = quote + 1;
            continue;
        }
        char c = *data++;
        if (c == '"')
            in_quotes = true;
        else
        if (c == '\n')
            records++;
    }
    self->in_quotes = in_quotes;
    self->records = records;
    self->line_open = size > 0? end [-1] != '\n': self->line_open;
}


//  --------------------------------------------------------------------------
//  Fail with 413, naming the setting, if total is over size_max; returns
//  -1 then, else 0

static int
s_over_limit (lh_ingest_upload_t *self, uint64_t total)
{
    if (!self->opts.size_max || total <= self->opts.size_max)
        return 0;
    char reason [192];
    if (self->opts.size_key)
        snprintf (reason, sizeof (reason), "the upload is over the limit of %" PRIu64
                  " bytes (raise %s to accept more)", self->opts.size_max, self->opts.size_key);
    else
        snprintf (reason, sizeof (reason), "the upload is over the limit of %" PRIu64 " bytes",
                  self->opts.size_max);
    s_fail (self, LH_ST_TOO_LARGE, "too_large", reason, 0);
    return -1;
}


//  --------------------------------------------------------------------------
//  Start an upload of key

lh_ingest_upload_t *
lh_ingest_upload_new (lh_client_t *client, const char *key,
                      const lh_ingest_upload_opts_t *opts)
{
    assert (client && key);
    lh_ingest_upload_t *self = (lh_ingest_upload_t *) zmalloc (sizeof (lh_ingest_upload_t));
    assert (self);
    self->key = strdup (key);
    if (opts)
        self->opts = *opts;
    if (self->opts.part_size == 0)
        self->opts.part_size = LH_INGEST_PART_SIZE;
    if (self->opts.timeout_ms == 0)
        self->opts.timeout_ms = LH_INGEST_CALL_MS;
    self->storage = lh_storage_new (client, self->opts.trace, self->opts.timeout_ms);
    lh_storage_set_busy_tries (self->storage, 1);   //  503 busy is the caller's to answer
    lh_storage_set_span (self->storage, self->opts.span);
    self->opts.trace = NULL;            //  not kept: the storage client has them
    self->opts.span = NULL;
    self->cond.if_none_match = opts && opts->if_none_match;
    self->if_match = opts && opts->if_match? strdup (opts->if_match): NULL;
    self->cond.if_match = self->if_match;
    return self;
}


//  --------------------------------------------------------------------------
//  Destroy; aborts an unfinished multipart upload

void
lh_ingest_upload_destroy (lh_ingest_upload_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        lh_ingest_upload_t *self = *self_p;
        s_abort (self);
        lh_storage_destroy (&self->storage);
        free (self->key);
        free (self->if_match);
        free (self->buffer);
        free (self->kind);
        free (self->reason);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Before any byte, when the size is known to be over one part: would
//  storaged take it? (a dry run of upload_begin)

int
lh_ingest_upload_check (lh_ingest_upload_t *self)
{
    assert (self);
    if (self->state != S_OPEN)
        return self->status? (int) self->status: LH_ST_INTERNAL;
    if (self->upload || self->opts.size_declared <= self->opts.part_size)
        return 0;
    if (s_over_limit (self, self->opts.size_declared))
        return (int) self->status;
    uint32_t status = lh_storage_upload_check (self->storage, self->key, &self->cond,
                                               self->opts.size_declared);
    return status == LH_ST_OK? 0: (int) s_fail_storage (self, status);
}


//  --------------------------------------------------------------------------
//  Take size bytes: into the first part's buffer until it is full, then
//  into the multipart upload (which sends each part as it fills)

int
lh_ingest_upload_write (lh_ingest_upload_t *self, const void *data, size_t size)
{
    assert (self);
    if (self->state != S_OPEN)
        return self->status? (int) self->status: LH_ST_INTERNAL;
    if (s_over_limit (self, self->bytes + size)) {
        s_abort (self);
        return (int) self->status;
    }
    //  Rows are counted for the progress function only (a scan of every
    //  byte: ~0.1 s of CPU on a 340 MB roster, on the receiving thread)
    if (self->opts.progress)
        s_scan (self, (const char *) data, size);
    self->bytes += size;
    if (!self->upload && self->size + size <= self->opts.part_size) {
        if (self->size + size > self->capacity) {
            size_t capacity = self->capacity? self->capacity * 2: 64 * 1024;
            while (capacity < self->size + size)
                capacity *= 2;
            if (capacity > self->opts.part_size)
                capacity = self->opts.part_size;
            char *buffer = (char *) realloc (self->buffer, capacity);
            assert (buffer);
            self->buffer = buffer;
            self->capacity = capacity;
        }
        memcpy (self->buffer + self->size, data, size);
        self->size += size;
        return 0;
    }
    if (!self->upload && s_begin (self))
        return (int) self->status;
    uint32_t status = lh_storage_upload_write (self->upload, data, size);
    if (status != LH_ST_OK) {
        s_fail_storage (self, status);
        s_abort (self);
        return (int) self->status;
    }
    s_progress (self, false);
    return 0;
}


//  --------------------------------------------------------------------------
//  Send what is left and make the object visible

int
lh_ingest_upload_finish (lh_ingest_upload_t *self)
{
    assert (self);
    if (self->state == S_DONE)
        return 0;
    if (self->state == S_FAILED)
        return (int) self->status;
    lh_storage_info_t info;
    uint32_t status;
    if (!self->upload)                  //  all of it fits in one put
        status = lh_storage_put (self->storage, self->key, self->buffer? self->buffer: "",
                                 self->size, &self->cond, &info);
    else
        status = lh_storage_upload_commit (&self->upload, &info);
    if (status != LH_ST_OK)
        return (int) s_fail_storage (self, status);
    snprintf (self->etag, sizeof (self->etag), "%s", info.etag);
    free (self->buffer);
    self->buffer = NULL;
    self->size = self->capacity = 0;
    self->state = S_DONE;
    s_progress (self, true);
    return 0;
}


//  --------------------------------------------------------------------------
//  Fail the upload from outside (client gone, limit passed)

void
lh_ingest_upload_fail (lh_ingest_upload_t *self, uint32_t status,
                       const char *kind, const char *reason)
{
    assert (self);
    if (self->state != S_OPEN)
        return;
    s_fail (self, status, kind, reason, 0);
    s_abort (self);
}


//  --------------------------------------------------------------------------
//  Accessors

uint32_t
lh_ingest_upload_status (lh_ingest_upload_t *self)
{
    assert (self);
    return self->status;
}

const char *
lh_ingest_upload_kind (lh_ingest_upload_t *self)
{
    assert (self);
    return self->kind;
}

const char *
lh_ingest_upload_reason (lh_ingest_upload_t *self)
{
    assert (self);
    return self->reason;
}

uint64_t
lh_ingest_upload_retry_after (lh_ingest_upload_t *self)
{
    assert (self);
    return self->retry_after_ms;
}

const char *
lh_ingest_upload_etag (lh_ingest_upload_t *self)
{
    assert (self);
    return self->etag;
}

uint64_t
lh_ingest_upload_bytes (lh_ingest_upload_t *self)
{
    assert (self);
    return self->bytes;
}

uint64_t
lh_ingest_upload_rows (lh_ingest_upload_t *self)
{
    assert (self);
    uint64_t records = self->records + (self->line_open? 1: 0);
    return records > 0? records - 1: 0;
}

const char *
lh_ingest_upload_key (lh_ingest_upload_t *self)
{
    assert (self);
    return self->key;
}

const char *
lh_ingest_upload_id (lh_ingest_upload_t *self)
{
    assert (self);
    return self->upload? lh_storage_upload_id (self->upload): NULL;
}


//  --------------------------------------------------------------------------
//  A fresh source key, "uploads/ingest/<32 random hex>.csv"

char *
lh_ingest_source_key (void)
{
    char random [LH_TRACE_SIZE + 1];
    lh_trace_mint (random);
    return zsys_sprintf (LH_INGEST_PREFIX "%s.csv", random);
}


//  --------------------------------------------------------------------------
//  The msgpack body of ingestd.ingest {name, source}

zframe_t *
lh_ingest_request (const char *name, const char *source)
{
    assert (name && source);
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 2);
    lh_pack_kv_str (pack, "name", name);
    lh_pack_kv_str (pack, "source", source);
    return lh_pack_frame (&pack);
}


//  --------------------------------------------------------------------------
//  The msgpack body of ingestd.ingest {name, source, upload_id}

zframe_t *
lh_ingest_request_follow (const char *name, const char *source, const char *upload_id)
{
    assert (name && source && upload_id);
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 3);
    lh_pack_kv_str (pack, "name", name);
    lh_pack_kv_str (pack, "source", source);
    lh_pack_kv_str (pack, "upload_id", upload_id);
    return lh_pack_frame (&pack);
}


//  --------------------------------------------------------------------------
//  Upload a file and ingest it as dataset name

int
lh_ingest_file (lh_client_t *client, const char *path, const char *name,
                const lh_ingest_opts_t *opts, lh_reply_t **reply_p, char **error_p)
{
    assert (client && path && name && reply_p && error_p);
    *reply_p = NULL;
    *error_p = NULL;
    lh_ingest_opts_t defaults;
    memset (&defaults, 0, sizeof (defaults));
    if (!opts)
        opts = &defaults;
    FILE *file = streq (path, "-")? stdin: fopen (path, "rb");
    if (!file) {
        *error_p = zsys_sprintf ("cannot open %s: %s", path, strerror (errno));
        return LH_ST_BAD_REQUEST;
    }
    char *key = lh_ingest_source_key ();
    lh_ingest_upload_opts_t upload_opts = opts->upload;
    upload_opts.if_none_match = "*";
    //  A regular file's size is known: storaged checks it against its cap
    //  (ingest/max_bytes) before a byte is sent
    struct stat info;
    if (file != stdin && fstat (fileno (file), &info) == 0 && S_ISREG (info.st_mode))
        upload_opts.size_declared = (uint64_t) info.st_size;
    lh_ingest_upload_t *upload = lh_ingest_upload_new (client, key, &upload_opts);
    char *chunk = (char *) malloc (S_READ_CHUNK);
    assert (chunk);
    int status = lh_ingest_upload_check (upload);
    while (status == 0) {
        size_t size = fread (chunk, 1, S_READ_CHUNK, file);
        if (size > 0)
            status = lh_ingest_upload_write (upload, chunk, size);
        if (size < S_READ_CHUNK) {
            if (ferror (file)) {
                lh_ingest_upload_fail (upload, LH_ST_BAD_REQUEST, "read_error", strerror (errno));
                status = LH_ST_BAD_REQUEST;
            }
            break;
        }
    }
    free (chunk);
    if (file != stdin)
        fclose (file);
    if (status == 0)
        status = lh_ingest_upload_finish (upload);
    if (status) {
        *error_p = zsys_sprintf ("upload of %s failed: %u %s: %s", path,
                                 lh_ingest_upload_status (upload),
                                 lh_ingest_upload_kind (upload),
                                 lh_ingest_upload_reason (upload));
        lh_ingest_upload_destroy (&upload);
        free (key);
        return status;
    }
    lh_ingest_upload_destroy (&upload);

    zframe_t *body = lh_ingest_request (name, key);
    lh_call_opts_t call_opts = {
        .timeout_ms = opts->ingest_timeout_ms? opts->ingest_timeout_ms: LH_INGEST_TIMEOUT_MS,
        .trace = opts->upload.trace
    };
    lh_client_call (client, "ingestd", "ingest", zframe_data (body), zframe_size (body),
                    &call_opts, reply_p);
    zframe_destroy (&body);
    if (!opts->keep_source) {
        lh_storage_t *storage = lh_storage_new (client, opts->upload.trace, LH_INGEST_CALL_MS);
        lh_storage_delete (storage, key);   //  best effort
        lh_storage_destroy (&storage);
    }
    free (key);
    return *reply_p? (int) lh_reply_status (*reply_p): LH_ST_UNAVAILABLE;
}


//  --------------------------------------------------------------------------
//  Self test: row counting, key shape, request body, a real upload through
//  a fake storaged is left to the integration tests (test_http_ingest.py)

void
lh_ingest_upload_test (bool verbose)
{
    printf (" * lh_ingest_upload: ");
    //  Row counting over pieces, quoted newlines not counted
    lh_ingest_upload_t scanner;
    memset (&scanner, 0, sizeof (scanner));
    const char *csv = "id,text\n1,\"a\nb\"\n2,\"say \"\"hi\"\"\n\"\n3,x";
    size_t size = strlen (csv);
    for (size_t step = 1; step <= size; step++) {
        memset (&scanner, 0, sizeof (scanner));
        for (size_t offset = 0; offset < size; offset += step)
            s_scan (&scanner, csv + offset, offset + step <= size? step: size - offset);
        if (verbose && step == 1)
            printf ("\n   records %" PRIu64 " open %d", scanner.records, scanner.line_open);
        assert (lh_ingest_upload_rows (&scanner) == 3);
    }
    memset (&scanner, 0, sizeof (scanner));
    s_scan (&scanner, "a,b\n1,2\n", 8);
    assert (lh_ingest_upload_rows (&scanner) == 1);
    memset (&scanner, 0, sizeof (scanner));
    assert (lh_ingest_upload_rows (&scanner) == 0);

    //  Source keys are fresh and well formed
    char *first = lh_ingest_source_key ();
    char *second = lh_ingest_source_key ();
    assert (strlen (first) == strlen ("uploads/ingest/") + LH_TRACE_SIZE + 4);
    assert (strncmp (first, "uploads/ingest/", 15) == 0);
    assert (!streq (first, second));
    zstr_free (&first);
    zstr_free (&second);

    //  The ingest request
    zframe_t *body = lh_ingest_request ("workers", "uploads/ingest/x.csv");
    msgpack_zone zone;
    msgpack_zone_init (&zone, 256);
    msgpack_object object;
    assert (lh_msgpack_unpack (zframe_data (body), zframe_size (body), &lh_limits_default,
                               &zone, &object) == 0);
    const char *text;
    assert (lh_obj_str (&object, "name", &text, &size) && size == 7);
    assert (lh_obj_str (&object, "source", &text, &size) && size == 20);
    msgpack_zone_destroy (&zone);
    zframe_destroy (&body);
    printf ("OK\n");
}
