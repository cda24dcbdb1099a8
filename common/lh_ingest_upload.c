/*  =========================================================================
    lh_ingest_upload - stream bytes into storaged, then ingest them

    See lh_ingest_upload.h. The part buffer grows with what arrives, up to
    part_size, so a small body costs what it is; a multipart upload is only
    begun once a whole part is waiting.
    =========================================================================
*/

#include "lh_ingest_upload.h"
#include "lh_body.h"
#include "lh_log.h"
#include <sodium.h>

#define S_ACTOR         "ingest_upload"
#define S_READ_CHUNK    (256 * 1024)    //  bytes read from a file at a time

//  Upload state
typedef enum {
    S_OPEN = 0,                         //  taking bytes
    S_DONE,                             //  finished: the object is visible
    S_FAILED                            //  failed: status/kind/reason say why
} s_state_t;

struct _lh_ingest_upload_t {
    lh_client_t *client;                //  bus client (borrowed)
    char *key;                          //  object key
    lh_ingest_upload_opts_t opts;       //  options (strings copied below)
    char *trace;                        //  copy of opts.trace
    char *span;                         //  copy of opts.span
    char *if_none_match;                //  copy of opts.if_none_match
    char *if_match;                     //  copy of opts.if_match
    s_state_t state;                    //  where we are
    char *buffer;                       //  the part being filled
    size_t size;                        //  bytes in it
    size_t capacity;                    //  allocated
    char *upload_id;                    //  multipart upload, once begun
    size_t part_max;                    //  storaged's largest part
    uint32_t part;                      //  last part number sent
    uint64_t bytes;                     //  bytes taken
    uint64_t records;                   //  CSV record ends seen
    bool in_quotes;                     //  CSV scanner: inside a quoted field
    bool line_open;                     //  CSV scanner: bytes since the last record end
    uint32_t status;                    //  error status, 0 = none
    char *kind;                         //  error kind
    char *reason;                       //  error reason
    uint64_t retry_after_ms;            //  advised retry, 0 = none
    char etag [65];                     //  ETag once finished
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
    self->kind = strdup (kind? kind: lh_status_kind (status));
    self->reason = strdup (reason? reason: lh_status_text (status));
    self->retry_after_ms = retry_after_ms;
    self->state = S_FAILED;
}


//  --------------------------------------------------------------------------
//  Record the error a non-200 reply carries

static void
s_fail_reply (lh_ingest_upload_t *self, lh_reply_t *reply, const char *op)
{
    uint32_t status = lh_reply_status (reply);
    const msgpack_object *object = lh_reply_object (reply);
    const msgpack_object *error = object? lh_obj_get (object, "error"): NULL;
    char kind [LH_NAME_MAX + 1] = "";
    const char *text;
    size_t size;
    if (error && lh_obj_str (error, "kind", &text, &size) && size < sizeof (kind)) {
        memcpy (kind, text, size);
        kind [size] = 0;
    }
    uint64_t retry = 0;
    if (error)
        lh_obj_uint (error, "retry_after_ms", &retry);
    const char *reason = lh_reply_reason (reply);
    char fallback [128];
    if (!reason) {
        snprintf (fallback, sizeof (fallback), "storaged.%s answered %u", op, status);
        reason = fallback;
    }
    s_fail (self, status >= 200 && status <= 599? status: LH_ST_BAD_GATEWAY,
            *kind? kind: NULL, reason, retry);
}


//  --------------------------------------------------------------------------
//  One storaged call; returns the reply when it is 200, else records the
//  error and returns NULL

static lh_reply_t *
s_call (lh_ingest_upload_t *self, const char *op, lh_pack_t **pack_p)
{
    zframe_t *body = lh_pack_frame (pack_p);
    lh_call_opts_t opts = { .timeout_ms = self->opts.timeout_ms, .trace = self->trace,
                            .span = self->span };
    lh_reply_t *reply = NULL;
    lh_client_call (self->client, "storaged", op, zframe_data (body), zframe_size (body),
                    &opts, &reply);
    zframe_destroy (&body);
    if (reply && lh_reply_status (reply) == LH_ST_OK)
        return reply;
    if (reply)
        s_fail_reply (self, reply, op);
    else
        s_fail (self, LH_ST_UNAVAILABLE, "storage_unavailable", "storaged did not answer", 0);
    lh_reply_destroy (&reply);
    return NULL;
}


//  --------------------------------------------------------------------------
//  Abort the multipart upload, if any (best effort)

static void
s_abort (lh_ingest_upload_t *self)
{
    if (!self->upload_id)
        return;
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_str (pack, "upload_id", self->upload_id);
    zframe_t *body = lh_pack_frame (&pack);
    lh_call_opts_t opts = { .timeout_ms = self->opts.timeout_ms, .trace = self->trace,
                            .span = self->span };
    lh_reply_t *reply = NULL;
    lh_client_call (self->client, "storaged", "upload_abort", zframe_data (body),
                    zframe_size (body), &opts, &reply);
    zframe_destroy (&body);
    lh_reply_destroy (&reply);
    zstr_free (&self->upload_id);
}


//  --------------------------------------------------------------------------
//  Pack the conditions (if any) as map pairs; returns how many

static uint32_t
s_conditions (lh_ingest_upload_t *self, lh_pack_t *pack)
{
    uint32_t count = 0;
    if (self->if_none_match) {
        if (pack)
            lh_pack_kv_str (pack, "if_none_match", self->if_none_match);
        count++;
    }
    if (self->if_match) {
        if (pack)
            lh_pack_kv_str (pack, "if_match", self->if_match);
        count++;
    }
    return count;
}


//  --------------------------------------------------------------------------
//  Begin the multipart upload. Returns 0 or -1 (error recorded).

static int
s_begin (lh_ingest_upload_t *self)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 1 + s_conditions (self, NULL) + (self->opts.size_declared > 0));
    lh_pack_kv_str (pack, "key", self->key);
    s_conditions (self, pack);
    if (self->opts.size_declared > 0)
        lh_pack_kv_uint (pack, "size", self->opts.size_declared);
    lh_reply_t *reply = s_call (self, "upload_begin", &pack);
    if (!reply)
        return -1;
    const msgpack_object *object = lh_reply_object (reply);
    uint64_t part_max = 0;
    const char *text;
    size_t size;
    if (object && lh_obj_str (object, "upload_id", &text, &size)) {
        self->upload_id = (char *) malloc (size + 1);
        assert (self->upload_id);
        memcpy (self->upload_id, text, size);
        self->upload_id [size] = 0;
    }
    if (object)
        lh_obj_uint (object, "part_max", &part_max);
    lh_reply_destroy (&reply);
    if (!self->upload_id) {
        s_fail (self, LH_ST_BAD_GATEWAY, "bad_reply", "storaged.upload_begin gave no upload_id", 0);
        return -1;
    }
    self->part_max = part_max > 0 && part_max < self->opts.part_size? (size_t) part_max
                                                                    : self->opts.part_size;
    return 0;
}


//  --------------------------------------------------------------------------
//  Send the buffer as parts (of at most part_max each). Returns 0 or -1.

static int
s_flush (lh_ingest_upload_t *self)
{
    if (!self->upload_id && s_begin (self))
        return -1;
    size_t offset = 0;
    while (offset < self->size) {
        size_t size = self->size - offset;
        if (size > self->part_max)
            size = self->part_max;
        lh_pack_t *pack = lh_pack_new ();
        lh_pack_map (pack, 3);
        lh_pack_kv_str (pack, "upload_id", self->upload_id);
        lh_pack_kv_uint (pack, "part", ++self->part);
        lh_pack_str (pack, "data");
        lh_pack_bin (pack, self->buffer + offset, size);
        lh_reply_t *reply = s_call (self, "upload_part", &pack);
        if (!reply) {
            s_abort (self);
            return -1;
        }
        lh_reply_destroy (&reply);
        offset += size;
    }
    self->size = 0;
    if (self->opts.progress)
        self->opts.progress (self->opts.progress_arg, self->bytes, lh_ingest_upload_rows (self));
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
    self->client = client;
    self->key = strdup (key);
    if (opts)
        self->opts = *opts;
    if (self->opts.part_size == 0)
        self->opts.part_size = LH_INGEST_PART_SIZE;
    if (self->opts.timeout_ms == 0)
        self->opts.timeout_ms = LH_INGEST_CALL_MS;
    self->trace = opts && opts->trace? strdup (opts->trace): NULL;
    self->span = opts && opts->span? strdup (opts->span): NULL;
    self->if_none_match = opts && opts->if_none_match? strdup (opts->if_none_match): NULL;
    self->if_match = opts && opts->if_match? strdup (opts->if_match): NULL;
    self->part_max = self->opts.part_size;
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
        if (self->state != S_DONE)
            s_abort (self);
        free (self->key);
        free (self->trace);
        free (self->span);
        free (self->if_none_match);
        free (self->if_match);
        free (self->buffer);
        free (self->upload_id);
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
    if (self->upload_id || self->opts.size_declared <= self->opts.part_size)
        return 0;
    if (s_over_limit (self, self->opts.size_declared))
        return (int) self->status;
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 3 + s_conditions (self, NULL));
    lh_pack_kv_str (pack, "key", self->key);
    s_conditions (self, pack);
    lh_pack_kv_uint (pack, "size", self->opts.size_declared);
    lh_pack_kv_bool (pack, "dry_run", true);
    lh_reply_t *reply = s_call (self, "upload_begin", &pack);
    if (!reply)
        return (int) self->status;
    lh_reply_destroy (&reply);
    return 0;
}


//  --------------------------------------------------------------------------
//  Take size bytes; sends a part each time one is full

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
    s_scan (self, (const char *) data, size);
    self->bytes += size;
    const char *bytes = (const char *) data;
    while (size > 0) {
        size_t room = self->opts.part_size - self->size;
        if (room == 0) {
            if (s_flush (self))
                return (int) self->status;
            continue;
        }
        size_t take = size < room? size: room;
        if (self->size + take > self->capacity) {
            size_t capacity = self->capacity? self->capacity * 2: 64 * 1024;
            while (capacity < self->size + take)
                capacity *= 2;
            if (capacity > self->opts.part_size)
                capacity = self->opts.part_size;
            char *buffer = (char *) realloc (self->buffer, capacity);
            assert (buffer);
            self->buffer = buffer;
            self->capacity = capacity;
        }
        memcpy (self->buffer + self->size, bytes, take);
        self->size += take;
        bytes += take;
        size -= take;
    }
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
    lh_reply_t *reply = NULL;
    if (!self->upload_id) {
        //  All of it fits in one put
        lh_pack_t *pack = lh_pack_new ();
        lh_pack_map (pack, 2 + s_conditions (self, NULL));
        lh_pack_kv_str (pack, "key", self->key);
        lh_pack_str (pack, "data");
        lh_pack_bin (pack, self->buffer? self->buffer: "", self->size);
        s_conditions (self, pack);
        reply = s_call (self, "put", &pack);
    }
    else {
        if (self->size > 0 && s_flush (self))
            return (int) self->status;
        lh_pack_t *pack = lh_pack_new ();
        lh_pack_map (pack, 1 + s_conditions (self, NULL));
        lh_pack_kv_str (pack, "upload_id", self->upload_id);
        s_conditions (self, pack);
        reply = s_call (self, "upload_commit", &pack);
        if (!reply)
            s_abort (self);             //  a failed commit may leave it open
    }
    if (!reply)
        return (int) self->status;
    const char *etag;
    size_t size;
    const msgpack_object *object = lh_reply_object (reply);
    if (object && lh_obj_str (object, "etag", &etag, &size) && size < sizeof (self->etag)) {
        memcpy (self->etag, etag, size);
        self->etag [size] = 0;
    }
    lh_reply_destroy (&reply);
    zstr_free (&self->upload_id);
    free (self->buffer);
    self->buffer = NULL;
    self->size = self->capacity = 0;
    self->state = S_DONE;
    if (self->opts.progress)
        self->opts.progress (self->opts.progress_arg, self->bytes, lh_ingest_upload_rows (self));
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
//  Remove a key from storaged (best effort)

static void
s_delete (lh_client_t *client, const char *key, const char *trace)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_str (pack, "key", key);
    zframe_t *body = lh_pack_frame (&pack);
    lh_call_opts_t opts = { .timeout_ms = LH_INGEST_CALL_MS, .trace = trace };
    lh_reply_t *reply = NULL;
    lh_client_call (client, "storaged", "delete", zframe_data (body), zframe_size (body),
                    &opts, &reply);
    zframe_destroy (&body);
    lh_reply_destroy (&reply);
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
    if (!opts->keep_source)
        s_delete (client, key, opts->upload.trace);
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
