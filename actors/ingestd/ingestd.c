/*  =========================================================================
    ingestd - CSV to tables; see ingestd.h and docs/ingestd.md
    =========================================================================
*/

#include "ingestd.h"
#include "lh_csv.h"
#include "lh_storage.h"
#include "lh_log.h"
#include "lh_ingest_upload.h"
#include <sqlite3.h>
#include "lh_sha256.h"

#define S_NAME          "ingestd"
#define S_NAME_MAX      128             //  longest dataset name
#define S_VALUE_MAX     64              //  longest value counted as distinct
#define S_INDEX_COLUMNS 8               //  leading / numeric columns in an index
#define S_BATCH_BYTES   (1024 * 1024)   //  rows per batch to the loader
#define S_BATCH_COUNT   4               //  batches in flight
#define S_SAMPLE_ROWS   1000            //  rows whose types start the table
#define S_SAMPLE_BYTES  (4 * 1024 * 1024)
#define S_FOLLOW_WAIT_MS 10             //  wait for the next part of a followed upload
#define S_UPLOAD_ID_MAX 64              //  longest upload_id

//  Per column, while the file is read: are its values integers that rise
//  strictly, line after line (an id)? Non-negative integers without
//  leading zeros order as (length, bytes), so no parse is needed.
typedef struct {
    bool rising;                        //  so far, yes
    uint8_t size;                       //  bytes of the last value (0: none yet)
    char last [20];                     //  the last value
} s_rising_t;

typedef enum {
    S_SPEC_SAMPLING,                    //  keeping the first rows
    S_SPEC_LOADING,                     //  table created, rows inserted
    S_SPEC_FAILED                       //  a value did not fit: second pass
} s_spec_t;

//  A row kept before the table exists
typedef struct {
    char *data;                         //  fields, each NUL-terminated
    size_t *sizes;                      //  their sizes
    uint64_t line;                      //  line the row starts on
} s_sample_t;

typedef struct {
    int64_t max_bytes;                  //  largest source, bytes (ingest/max_bytes)
    size_t record_max;                  //  longest record, bytes
    uint64_t read_chunk;                //  bytes per storaged get
    uint32_t timeout_ms;                //  deadline of each call we make
    char *tmp_dir;                      //  where table files are built
    int page_size;                      //  SQLite page size
    int cache_kib;                      //  SQLite cache while building
    int sort_threads;                   //  SQLite's sorter helper threads
    int index_max;                      //  covering indexes per table
    int distinct_max;                   //  distinct values of an indexed column
} s_state_t;

//  A batch of rows handed from the parsing thread to the loading thread:
//  each row is [line u64][count u32], then per field [size u32][bytes][NUL]
typedef struct {
    uint8_t *data;                      //  encoded rows
    size_t size;                        //  bytes used
    size_t capacity;                    //  bytes allocated
} s_batch_t;

//  The loading thread: inserts the rows the parsing thread batches, so
//  parsing and inference (this thread) run beside SQLite (that one)
typedef struct {
    pthread_t thread;                   //  the loading thread
    pthread_mutex_t lock;               //  guards the fields below
    pthread_cond_t changed;             //  a batch moved, or the end
    s_batch_t *full [S_BATCH_COUNT];    //  batches to insert, in order
    size_t full_head;                   //  first of them
    size_t full_count;                  //  how many
    s_batch_t *spare [S_BATCH_COUNT];   //  empty batches
    size_t spare_count;                 //  how many
    bool closed;                        //  no more batches will come
    bool done;                          //  the thread has finished
    volatile bool stop;                 //  interrupt SQLite (deadline)
    s_batch_t *filling;                 //  batch the parser fills
    uint32_t status;                    //  the thread's failure, 0 = none
    char kind [32];                     //  its kind
    char reason [600];                  //  its reason
} s_loader_t;

//  One ingest in progress
typedef struct {
    s_state_t *state;                   //  service state
    lh_request_t *request;              //  the request being served
    lh_storage_t *storage;              //  storaged, through the request
    const char *trace;                  //  trace id, for logs
    char name [S_NAME_MAX + 1];         //  dataset name
    char *source;                       //  storaged key of the CSV
    char *upload_id;                    //  its upload, followed as it lands, or NULL
    uint64_t size;                      //  source size
    char etag [LH_STORAGE_ETAG_MAX + 1];    //  source ETag (SHA-256 hex)
    uint32_t status;                    //  failure status, 0 = none yet
    bool answered;                      //  the failure was answered already
    char kind [32];                     //  failure kind
    char reason [600];                  //  failure reason
    zhash_t **distinct;                 //  per column: values seen, or NULL
    s_rising_t *rising;                 //  per column: strictly rising integers?
    size_t columns;                     //  column count
    lh_csv_type_t *types;               //  column types of the table
    lh_csv_table_t *schema;             //  the first pass's table reader
    lh_csv_infer_t *infer;              //  whole-file inference
    s_spec_t spec;                      //  speculative load state
    s_sample_t *samples;                //  first rows, while sampling
    size_t sample_count;                //  rows sampled
    size_t sample_bytes;                //  their bytes
    sqlite3 *db;                        //  table file being built
    sqlite3_stmt *insert;               //  the prepared INSERT
    uint64_t rows;                      //  rows inserted
    s_loader_t *loader;                 //  loading thread, while loading
} s_ingest_t;

//  A growing SQL text
typedef struct {
    char *text;                         //  NUL-terminated text
    size_t size;                        //  bytes used
    size_t capacity;                    //  bytes allocated
} s_sql_t;


//  --------------------------------------------------------------------------
//  Append printf-style text to an SQL string

static void
s_sql_add (s_sql_t *self, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *piece = zsys_vprintf (format, args);
    va_end (args);
    assert (piece);
    size_t size = strlen (piece);
    if (self->size + size + 1 > self->capacity) {
        self->capacity = (self->size + size + 1) * 2;
        self->text = (char *) realloc (self->text, self->capacity);
        assert (self->text);
    }
    memcpy (self->text + self->size, piece, size + 1);
    self->size += size;
    free (piece);
}


//  --------------------------------------------------------------------------
//  Append an identifier, double-quoted ("" inside)

static void
s_sql_ident (s_sql_t *self, const char *name)
{
    s_sql_add (self, "\"");
    for (const char *at = name; *at; at++)
        s_sql_add (self, *at == '"'? "\"\"": "%c", *at);
    s_sql_add (self, "\"");
}


//  --------------------------------------------------------------------------
//  True if name is a valid dataset name

bool
lh_ingestd_name_valid (const char *name, size_t size)
{
    if (!name || size == 0 || size > S_NAME_MAX)
        return false;
    if (size >= 7 && strncasecmp (name, "sqlite_", 7) == 0)
        return false;
    for (size_t index = 0; index < size; index++) {
        char c = name [index];
        bool ok = isalnum ((unsigned char) c) || c == '_'
               || (index > 0 && (c == '.' || c == '-'));
        if (!ok)
            return false;
    }
    return true;
}


//  --------------------------------------------------------------------------
//  Note the first failure of an ingest (later ones are consequences)

static void
s_fail (s_ingest_t *self, uint32_t status, const char *kind, const char *format, ...)
    CHECK_PRINTF (4);

static void
s_fail (s_ingest_t *self, uint32_t status, const char *kind, const char *format, ...)
{
    if (self->status)
        return;
    self->status = status;
    snprintf (self->kind, sizeof (self->kind), "%s", kind);
    va_list args;
    va_start (args, format);
    vsnprintf (self->reason, sizeof (self->reason), format, args);
    va_end (args);
}


//  --------------------------------------------------------------------------
//  Fail with a dependency's unexpected reply (svc did not answer what we
//  asked, or refused it): answered at once as lh_request_fail_dependency
//  maps it, and the ingest winds down. what names the step.

static void
s_fail_dependency (s_ingest_t *self, lh_reply_t *reply, const char *svc, const char *what)
{
    if (self->status)
        return;
    self->status = lh_reply_status (reply);
    snprintf (self->kind, sizeof (self->kind), "dependency");
    snprintf (self->reason, sizeof (self->reason), "%s, %s: %s", svc, what,
              lh_reply_reason (reply)? lh_reply_reason (reply): "no reason given");
    self->answered = true;
    lh_request_fail_dependency (self->request, reply, svc, what);
}


//  --------------------------------------------------------------------------
//  Fail with the outcome of a storaged operation: past the deadline is
//  504, else the dependency's failure

static void
s_fail_storage (s_ingest_t *self, const char *what)
{
    if (lh_request_time_left (self->request) == 0)
        s_fail (self, LH_ST_TIMEOUT, "deadline", "the ingest ran past its deadline");
    else
        s_fail_dependency (self, lh_storage_reply (self->storage), "storaged", what);
}


//  --------------------------------------------------------------------------
//  Pass 1 row: count distinct short values per column, dropping a column
//  once it has too many (it will not be indexed)

static int
s_row_distinct (void *arg, char **fields, const size_t *sizes, size_t count, uint64_t line)
{
    s_ingest_t *self = (s_ingest_t *) arg;
    if (!self->distinct) {
        self->columns = count;
        self->distinct = (zhash_t **) zmalloc (count * sizeof (zhash_t *));
        assert (self->distinct);
        for (size_t column = 0; column < count; column++)
            self->distinct [column] = zhash_new ();
    }
    for (size_t column = 0; column < count; column++) {
        zhash_t *seen = self->distinct [column];
        if (!seen || sizes [column] == 0)
            continue;
        if (sizes [column] > S_VALUE_MAX || memchr (fields [column], 0, sizes [column])
        ||  (zhash_size (seen) >= (size_t) self->state->distinct_max
             && !zhash_lookup (seen, fields [column])))
            zhash_destroy (&self->distinct [column]);
        else
            zhash_insert (seen, fields [column], (void *) 1);
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Feed one range of the source to the table reader (lh_storage_read_fn)

typedef struct {
    s_ingest_t *ingest;                 //  the ingest
    lh_csv_table_t *table;              //  the reader fed
} s_feed_t;

static uint32_t
s_feed (void *arg, const void *data, size_t size)
{
    s_feed_t *self = (s_feed_t *) arg;
    int fed = lh_csv_table_feed (self->table, data, size);
    if (fed == -2)
        s_fail (self->ingest, LH_ST_BAD_REQUEST, "bad_csv", "%s", lh_csv_table_error (self->table));
    return fed? LH_ST_BAD_REQUEST: 0;
}


//  --------------------------------------------------------------------------
//  Read the source from byte start to its end from storaged in ranges into
//  a table reader, two gets in flight so storaged reads and sends the next
//  range while this one is parsed, and finish the reader. Returns 0, or -1
//  with the failure noted.

static int
s_read_rest (s_ingest_t *self, lh_csv_table_t *table, uint64_t start)
{
    lh_storage_info_t head = { .size = self->size };
    snprintf (head.etag, sizeof (head.etag), "%s", self->etag);
    s_feed_t feed = { self, table };
    uint32_t status = lh_storage_read_at (self->storage, self->source, &head, start,
                                          self->state->read_chunk, s_feed, &feed);
    if (status == LH_ST_NOT_FOUND)
        s_fail (self, LH_ST_CONFLICT, "source_changed",
                "the source '%s' was deleted during the ingest", self->source);
    else
    if (status == LH_ST_CONFLICT)
        s_fail (self, LH_ST_CONFLICT, "source_changed",
                "the source '%s' changed during the ingest", self->source);
    else
    if (status != LH_ST_OK)
        s_fail_storage (self, "the source read");      //  or the reader's, noted first
    if (status != LH_ST_OK)
        return -1;
    int rc = lh_csv_table_finish (table);
    if (rc == -2)
        s_fail (self, LH_ST_BAD_REQUEST, "bad_csv", "%s", lh_csv_table_error (table));
    return rc? -1: 0;
}


//  --------------------------------------------------------------------------
//  Read the whole source (its head is known) into a table reader

static int
s_read_source (s_ingest_t *self, lh_csv_table_t *table)
{
    return s_read_rest (self, table, 0);
}


static int s_head_source (s_ingest_t *self);

//  --------------------------------------------------------------------------
//  Read the source while it is still being uploaded (ingest with an
//  upload_id): the upload's bytes as they land (storaged's upload_read),
//  waiting S_FOLLOW_WAIT_MS when nothing new has, until the upload ends;
//  then the source's head (so size and ETag) and the rest from the key.
//  An upload that ends without a commit fails the ingest. Returns 0, or
//  -1 with the failure noted.

static int
s_follow_source (s_ingest_t *self, lh_csv_table_t *table)
{
    s_feed_t feed = { self, table };
    uint64_t offset = 0;
    while (true) {
        uint64_t so_far;
        bool readable;
        const void *data;
        size_t size;
        uint32_t status = lh_storage_upload_read (self->storage, self->upload_id,
                                                  self->source, offset,
                                                  self->state->read_chunk, &so_far,
                                                  &readable, &data, &size);
        if (status == LH_ST_NOT_FOUND)
            break;                      //  committed, or aborted: the key says
        if (status == LH_ST_CONFLICT) {
            s_fail (self, LH_ST_CONFLICT, "source_changed", "the upload '%s' is not one of "
                    "the source '%s'", self->upload_id, self->source);
            return -1;
        }
        if (status != LH_ST_OK) {
            s_fail_storage (self, "the source upload's read");
            return -1;
        }
        if (offset + size > (uint64_t) self->state->max_bytes) {
            s_fail (self, LH_ST_TOO_LARGE, "too_large",
                    "the source is over %" PRId64 " bytes; ingestd accepts at most that "
                    "(raise ingest/max_bytes to ingest more)", self->state->max_bytes);
            return -1;
        }
        if (size) {
            if (s_feed (&feed, data, size)) {
                if (!self->status)
                    s_fail (self, LH_ST_BAD_REQUEST, "bad_csv", "%s",
                            lh_csv_table_error (table));
                return -1;
            }
            offset += size;
            continue;
        }
        //  Nothing new has landed: wait a little for the next part
        if (lh_request_time_left (self->request) <= S_FOLLOW_WAIT_MS) {
            s_fail (self, LH_ST_TIMEOUT, "deadline", "the ingest ran past its deadline");
            return -1;
        }
        zclock_sleep (S_FOLLOW_WAIT_MS);
        lh_keepalive ();
    }
    lh_storage_info_t info;
    if (lh_storage_head (self->storage, self->source, &info) == LH_ST_NOT_FOUND) {
        s_fail (self, LH_ST_CONFLICT, "source_changed", "the upload of the source '%s' ended "
                "without a commit (aborted) during the ingest", self->source);
        return -1;
    }
    if (s_head_source (self))
        return -1;
    if (self->size < offset) {
        s_fail (self, LH_ST_CONFLICT, "source_changed",
                "the source '%s' changed during the ingest", self->source);
        return -1;
    }
    return s_read_rest (self, table, offset);
}


//  --------------------------------------------------------------------------
//  Pass 2 row: bind each value by the column's type and insert

static int
s_row_insert (void *arg, char **fields, const size_t *sizes, size_t count, uint64_t line);

//  Bind and insert one row; on failure fills status, kind and reason
static int
s_row_store (s_ingest_t *self, char **fields, const size_t *sizes, size_t count,
             uint64_t line, uint32_t *status, char *kind, size_t kind_size,
             char *reason, size_t reason_size)
{
    sqlite3_stmt *insert = self->insert;
    for (size_t column = 0; column < count; column++) {
        int slot = (int) column + 1;
        const char *value = fields [column];
        if (sizes [column] == 0) {
            sqlite3_bind_null (insert, slot);
            continue;
        }
        switch (self->types [column]) {
            case LH_CSV_BOOLEAN:
                sqlite3_bind_int (insert, slot, value [0] == 't' || value [0] == 'T');
                break;
            case LH_CSV_BIGINT:
                sqlite3_bind_int64 (insert, slot, strtoll (value, NULL, 10));
                break;
            case LH_CSV_DOUBLE:
                sqlite3_bind_double (insert, slot, lh_csv_decimal (value, sizes [column]));
                break;
            default:
                sqlite3_bind_text (insert, slot, value, (int) sizes [column], SQLITE_STATIC);
                break;
        }
    }
    int rc = sqlite3_step (insert);
    sqlite3_reset (insert);
    if (rc != SQLITE_DONE) {
        if (rc == SQLITE_INTERRUPT) {
            *status = LH_ST_TIMEOUT;
            snprintf (kind, kind_size, "deadline");
            snprintf (reason, reason_size, "the ingest ran past its deadline");
        }
        else {
            *status = LH_ST_INTERNAL;
            snprintf (kind, kind_size, "table_failed");
            snprintf (reason, reason_size, "line %" PRIu64 ": insert failed: %s",
                      line, sqlite3_errmsg (self->db));
        }
        return -1;
    }
    self->rows++;
    return 0;
}


//  --------------------------------------------------------------------------
//  Insert one row on this thread (lh_csv_record_fn; the failure is noted)

static int
s_row_insert (void *arg, char **fields, const size_t *sizes, size_t count, uint64_t line)
{
    s_ingest_t *self = (s_ingest_t *) arg;
    uint32_t status = 0;
    char kind [32], reason [600];
    if (s_row_store (self, fields, sizes, count, line, &status, kind, sizeof (kind),
                     reason, sizeof (reason)) == 0)
        return 0;
    s_fail (self, status, kind, "%s", reason);
    return -1;
}


//  --------------------------------------------------------------------------
//  The loading thread: insert every batch in order until closed

static void *
s_loader_run (void *arg)
{
    s_ingest_t *self = (s_ingest_t *) arg;
    s_loader_t *loader = self->loader;
    char **fields = (char **) malloc ((self->columns + 1) * sizeof (char *));
    size_t *sizes = (size_t *) malloc ((self->columns + 1) * sizeof (size_t));
    assert (fields && sizes);
    bool failed = false;
    while (true) {
        pthread_mutex_lock (&loader->lock);
        while (loader->full_count == 0 && !loader->closed)
            pthread_cond_wait (&loader->changed, &loader->lock);
        if (loader->full_count == 0) {
            pthread_mutex_unlock (&loader->lock);
            break;
        }
        s_batch_t *batch = loader->full [loader->full_head];
        loader->full_head = (loader->full_head + 1) % S_BATCH_COUNT;
        loader->full_count--;
        pthread_mutex_unlock (&loader->lock);

        for (size_t at = 0; !failed && at < batch->size; ) {
            uint64_t line;
            uint32_t count;
            memcpy (&line, batch->data + at, sizeof (line));
            memcpy (&count, batch->data + at + 8, sizeof (count));
            at += 12;
            for (uint32_t column = 0; column < count && column < self->columns; column++) {
                uint32_t size;
                memcpy (&size, batch->data + at, sizeof (size));
                fields [column] = (char *) batch->data + at + 4;
                sizes [column] = size;
                at += 4 + (size_t) size + 1;
            }
            uint32_t status = 0;
            char kind [32], reason [600];
            if (s_row_store (self, fields, sizes, count, line, &status, kind, sizeof (kind),
                             reason, sizeof (reason))) {
                pthread_mutex_lock (&loader->lock);
                loader->status = status;
                snprintf (loader->kind, sizeof (loader->kind), "%s", kind);
                snprintf (loader->reason, sizeof (loader->reason), "%s", reason);
                pthread_mutex_unlock (&loader->lock);
                failed = true;
            }
        }
        batch->size = 0;
        pthread_mutex_lock (&loader->lock);
        loader->spare [loader->spare_count++] = batch;
        pthread_cond_broadcast (&loader->changed);
        pthread_mutex_unlock (&loader->lock);
    }
    free (fields);
    free (sizes);
    pthread_mutex_lock (&loader->lock);
    loader->done = true;
    pthread_cond_broadcast (&loader->changed);
    pthread_mutex_unlock (&loader->lock);
    return NULL;
}


//  --------------------------------------------------------------------------
//  On the parsing thread, with the loader's lock held: wait for the loader
//  to move a batch, at most 100 ms, then heartbeat this worker's bus
//  session (the wait may be long: a slow disk) and stop the loader when
//  the caller's deadline has passed

static void
s_loader_wait (s_ingest_t *self)
{
    s_loader_t *loader = self->loader;
    struct timespec until;
    clock_gettime (CLOCK_REALTIME, &until);
    until.tv_nsec += 100 * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait (&loader->changed, &loader->lock, &until);
    pthread_mutex_unlock (&loader->lock);
    if (lh_request_time_left (self->request) == 0)
        loader->stop = true;
    pthread_mutex_lock (&loader->lock);
}


//  --------------------------------------------------------------------------
//  Start the loading thread (the table and its INSERT exist)

static void
s_loader_start (s_ingest_t *self)
{
    s_loader_t *loader = (s_loader_t *) zmalloc (sizeof (s_loader_t));
    assert (loader);
    pthread_mutex_init (&loader->lock, NULL);
    pthread_cond_init (&loader->changed, NULL);
    for (size_t index = 0; index < S_BATCH_COUNT; index++) {
        s_batch_t *batch = (s_batch_t *) zmalloc (sizeof (s_batch_t));
        assert (batch);
        batch->capacity = S_BATCH_BYTES;
        batch->data = (uint8_t *) malloc (batch->capacity);
        assert (batch->data);
        loader->spare [loader->spare_count++] = batch;
    }
    loader->filling = loader->spare [--loader->spare_count];
    self->loader = loader;
    int rc = pthread_create (&loader->thread, NULL, s_loader_run, self);
    assert (rc == 0);
}


//  --------------------------------------------------------------------------
//  Hand the filling batch to the loader and take an empty one. Returns 0,
//  or -1 if the loader has failed (its failure is merged at the end).

static int
s_loader_push (s_ingest_t *self)
{
    s_loader_t *loader = self->loader;
    pthread_mutex_lock (&loader->lock);
    size_t tail = (loader->full_head + loader->full_count) % S_BATCH_COUNT;
    loader->full [tail] = loader->filling;
    loader->full_count++;
    loader->filling = NULL;
    pthread_cond_broadcast (&loader->changed);
    while (loader->spare_count == 0 && !loader->status)
        s_loader_wait (self);
    if (loader->spare_count)
        loader->filling = loader->spare [--loader->spare_count];
    int rc = loader->status? -1: 0;
    pthread_mutex_unlock (&loader->lock);
    return rc;
}


//  --------------------------------------------------------------------------
//  Queue one row for the loader. Returns 0, or -1 if the loader failed.

static int
s_loader_add (s_ingest_t *self, char **fields, const size_t *sizes, size_t count,
              uint64_t line)
{
    s_loader_t *loader = self->loader;
    size_t need = 12;
    for (size_t column = 0; column < count; column++)
        need += 4 + sizes [column] + 1;
    s_batch_t *batch = loader->filling;
    if (batch->size + need > batch->capacity && batch->size > 0) {
        if (s_loader_push (self))
            return -1;
        batch = loader->filling;
    }
    if (need > batch->capacity) {
        //  One record larger than a batch (record_max bounds it)
        batch->capacity = need;
        batch->data = (uint8_t *) realloc (batch->data, batch->capacity);
        assert (batch->data);
    }
    uint8_t *at = batch->data + batch->size;
    uint32_t fields_count = (uint32_t) count;
    memcpy (at, &line, 8);
    memcpy (at + 8, &fields_count, 4);
    at += 12;
    for (size_t column = 0; column < count; column++) {
        uint32_t size = (uint32_t) sizes [column];
        memcpy (at, &size, 4);
        memcpy (at + 4, fields [column], sizes [column] + 1);
        at += 4 + sizes [column] + 1;
    }
    batch->size += need;
    return 0;
}


//  --------------------------------------------------------------------------
//  Insert what is queued, stop the loader and merge its failure. With
//  abort, the rows still queued are not wanted: SQLite is interrupted.
//  Keeps this worker's bus session alive while it waits.

static int
s_loader_finish (s_ingest_t *self, bool abort)
{
    s_loader_t *loader = self->loader;
    if (!loader)
        return 0;
    pthread_mutex_lock (&loader->lock);
    if (loader->filling && loader->filling->size && !abort) {
        size_t tail = (loader->full_head + loader->full_count) % S_BATCH_COUNT;
        loader->full [tail] = loader->filling;
        loader->full_count++;
        loader->filling = NULL;
    }
    if (abort)
        loader->stop = true;
    loader->closed = true;
    pthread_cond_broadcast (&loader->changed);
    while (!loader->done)
        s_loader_wait (self);
    pthread_mutex_unlock (&loader->lock);
    pthread_join (loader->thread, NULL);
    //  With abort, an interrupt is ours, not a failure
    int rc = 0;
    if (loader->status && !(abort && loader->status == LH_ST_TIMEOUT)) {
        s_fail (self, loader->status, loader->kind, "%s", loader->reason);
        rc = -1;
    }
    if (loader->filling) {
        free (loader->filling->data);
        free (loader->filling);
    }
    for (size_t index = 0; index < loader->full_count; index++) {
        s_batch_t *batch = loader->full [(loader->full_head + index) % S_BATCH_COUNT];
        free (batch->data);
        free (batch);
    }
    for (size_t index = 0; index < loader->spare_count; index++) {
        free (loader->spare [index]->data);
        free (loader->spare [index]);
    }
    pthread_mutex_destroy (&loader->lock);
    pthread_cond_destroy (&loader->changed);
    free (loader);
    self->loader = NULL;
    return rc;
}


//  --------------------------------------------------------------------------
//  SQLite progress handler: heartbeat, and stop past the deadline

static int
s_progress (void *arg)
{
    s_ingest_t *self = (s_ingest_t *) arg;
    if (self->loader)                   //  on the loading thread: no bus here
        return self->loader->stop;
    return lh_request_time_left (self->request) == 0;
}


//  --------------------------------------------------------------------------
//  Run SQL on the table file; notes a failure and returns -1 if it fails

static int
s_exec (s_ingest_t *self, const char *sql)
{
    char *error = NULL;
    int rc = sqlite3_exec (self->db, sql, NULL, NULL, &error);
    if (rc != SQLITE_OK) {
        if (rc == SQLITE_INTERRUPT)
            s_fail (self, LH_ST_TIMEOUT, "deadline", "the ingest ran past its deadline");
        else
            s_fail (self, LH_ST_INTERNAL, "table_failed", "building the table failed: %s",
                    error? error: sqlite3_errstr (rc));
        sqlite3_free (error);
        return -1;
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Open a new table file at path with the build pragmas. Returns 0 or -1.

static int
s_build_open (s_ingest_t *self, const char *path)
{
    //  One thread uses the connection: no SQLite mutexes
    if (sqlite3_open_v2 (path, &self->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
                                          | SQLITE_OPEN_NOMUTEX, NULL)
        != SQLITE_OK) {
        s_fail (self, LH_ST_INTERNAL, "table_failed", "cannot create a table file: %s",
                sqlite3_errmsg (self->db));
        sqlite3_close (self->db);
        self->db = NULL;
        return -1;
    }
    sqlite3_progress_handler (self->db, 20000, s_progress, self);
    char sql [300];
    snprintf (sql, sizeof (sql), "PRAGMA page_size = %d; PRAGMA journal_mode = OFF; "
              "PRAGMA synchronous = OFF; PRAGMA locking_mode = EXCLUSIVE; "
              "PRAGMA cache_size = -%d; PRAGMA temp_store = FILE; PRAGMA threads = %d",
              self->state->page_size, self->state->cache_kib, self->state->sort_threads);
    return s_exec (self, sql);
}


//  --------------------------------------------------------------------------
//  Create the table with self->types, prepare the INSERT, begin the one
//  transaction. Returns 0 or -1.

static int
s_build_create (s_ingest_t *self, lh_csv_table_t *schema)
{
    s_sql_t sql = { NULL, 0, 0 };
    s_sql_add (&sql, "CREATE TABLE ");
    s_sql_ident (&sql, self->name);
    s_sql_add (&sql, " (");
    for (size_t column = 0; column < self->columns; column++) {
        s_sql_add (&sql, column? ", ": "");
        s_sql_ident (&sql, lh_csv_table_name (schema, column));
        s_sql_add (&sql, " %s", lh_csv_type_name (self->types [column]));
    }
    s_sql_add (&sql, ")");
    int rc = s_exec (self, sql.text);
    sql.size = 0;
    if (rc == 0) {
        s_sql_add (&sql, "INSERT INTO ");
        s_sql_ident (&sql, self->name);
        s_sql_add (&sql, " VALUES (");
        for (size_t column = 0; column < self->columns; column++)
            s_sql_add (&sql, column? ", ?": "?");
        s_sql_add (&sql, ")");
        if (sqlite3_prepare_v2 (self->db, sql.text, -1, &self->insert, NULL) != SQLITE_OK) {
            s_fail (self, LH_ST_INTERNAL, "table_failed", "cannot prepare the insert: %s",
                    sqlite3_errmsg (self->db));
            rc = -1;
        }
    }
    free (sql.text);
    return rc == 0? s_exec (self, "BEGIN"): -1;
}


//  --------------------------------------------------------------------------
//  Drop a table file being built (a speculation that failed, or an error)

static void
s_build_discard (s_ingest_t *self, const char *path)
{
    sqlite3_finalize (self->insert);
    self->insert = NULL;
    sqlite3_close (self->db);
    self->db = NULL;
    self->rows = 0;
    if (truncate (path, 0))
        lh_warn (S_NAME, self->trace, "cannot truncate a temporary table file");
}


//  --------------------------------------------------------------------------
//  Commit the rows, build the covering indexes, close the file

static int
s_build_finish (s_ingest_t *self, lh_csv_table_t *schema)
{
    s_state_t *state = self->state;
    sqlite3_finalize (self->insert);
    self->insert = NULL;
    int rc = s_exec (self, "COMMIT");
    //  Covering indexes over the low-cardinality text / boolean columns and
    //  the numeric ones. The first leads with the first such column and
    //  holds every such column (up to S_INDEX_COLUMNS) and the numeric
    //  ones: GROUP BY its first column reads it in order, and any count,
    //  filter or aggregate over those columns scans it instead of the wide
    //  rows (one table scan to build, where an index per column costs a
    //  scan each). Each further index (up to index_max) leads with the
    //  next such column, for seeks on it. After the first column come the
    //  numeric ones, an id (integers rising strictly through the file)
    //  first, then the other low-cardinality ones: the sort that builds
    //  the index settles most comparisons at the second column instead of
    //  going through several of few values each (on the 500k roster the
    //  index took 0.32-0.37 s instead of 0.56 s; the filter on a later
    //  low-cardinality column got ~6 ms slower: docs/ingestd.md).
    size_t *lead = (size_t *) malloc ((self->columns + 1) * sizeof (size_t));
    size_t *numeric = (size_t *) malloc ((self->columns + 1) * sizeof (size_t));
    assert (lead && numeric);
    size_t leads = 0, numerics = 0;
    for (size_t column = 0; column < self->columns; column++)
        if (self->distinct && self->distinct [column]
        &&  (self->types [column] == LH_CSV_VARCHAR || self->types [column] == LH_CSV_BOOLEAN))
            lead [leads++] = column;
    for (int pass = 0; pass < 2; pass++)
        for (size_t column = 0; column < self->columns && numerics < S_INDEX_COLUMNS; column++) {
            bool id = self->types [column] == LH_CSV_BIGINT
                   && self->rising && self->rising [column].rising;
            if ((self->types [column] == LH_CSV_BIGINT || self->types [column] == LH_CSV_DOUBLE)
            &&  (pass == 0) == id)
                numeric [numerics++] = column;
        }
    s_sql_t sql = { NULL, 0, 0 };
    int indexes = 0;
    for (size_t first = 0; rc == 0 && first < leads && indexes < state->index_max; first++) {
        sql.size = 0;
        s_sql_add (&sql, "CREATE INDEX \"_lh_%zu\" ON ", lead [first]);
        s_sql_ident (&sql, self->name);
        s_sql_add (&sql, " (");
        s_sql_ident (&sql, lh_csv_table_name (schema, lead [first]));
        for (size_t index = 0; index < numerics; index++) {
            s_sql_add (&sql, ", ");
            s_sql_ident (&sql, lh_csv_table_name (schema, numeric [index]));
        }
        size_t width = first == 0? (leads < S_INDEX_COLUMNS? leads: S_INDEX_COLUMNS): 1;
        for (size_t index = 1; index < width; index++) {
            s_sql_add (&sql, ", ");
            s_sql_ident (&sql, lh_csv_table_name (schema, lead [first + index]));
        }
        s_sql_add (&sql, ")");
        rc = s_exec (self, sql.text);
        indexes++;
    }
    free (numeric);
    free (lead);
    if (rc == 0 && indexes)
        rc = s_exec (self, "PRAGMA analysis_limit = 1000; ANALYZE");
    free (sql.text);
    if (sqlite3_close (self->db) != SQLITE_OK && rc == 0) {
        s_fail (self, LH_ST_INTERNAL, "table_failed", "closing the table file failed");
        rc = -1;
    }
    self->db = NULL;
    return rc;
}


//  --------------------------------------------------------------------------
//  Does a value with these LH_CSV_IS_* bits fit a column of this type?

static bool
s_fits (lh_csv_type_t type, int bits)
{
    return type == LH_CSV_VARCHAR
        || (type == LH_CSV_BIGINT && (bits & LH_CSV_IS_INT))
        || (type == LH_CSV_DOUBLE && (bits & LH_CSV_IS_NUM))
        || (type == LH_CSV_BOOLEAN && (bits & LH_CSV_IS_BOOL))
        || (type == LH_CSV_TIMESTAMP && (bits & LH_CSV_IS_TS));
}


//  --------------------------------------------------------------------------
//  Keep a copy of a sampled row (the first rows, before the table exists)

static void
s_sample_add (s_ingest_t *self, char **fields, const size_t *sizes, size_t count,
              uint64_t line)
{
    size_t total = 0;
    for (size_t column = 0; column < count; column++)
        total += sizes [column] + 1;
    s_sample_t *sample = &self->samples [self->sample_count++];
    sample->data = (char *) malloc (total);
    sample->sizes = (size_t *) malloc (count * sizeof (size_t));
    assert (sample->data && sample->sizes);
    sample->line = line;
    char *at = sample->data;
    for (size_t column = 0; column < count; column++) {
        memcpy (at, fields [column], sizes [column] + 1);
        at += sizes [column] + 1;
        sample->sizes [column] = sizes [column];
    }
    self->sample_bytes += total;
}


//  --------------------------------------------------------------------------
//  Free the sampled rows

static void
s_sample_free (s_ingest_t *self)
{
    for (size_t index = 0; index < self->sample_count; index++) {
        free (self->samples [index].data);
        free (self->samples [index].sizes);
    }
    self->sample_count = 0;
    self->sample_bytes = 0;
}


//  --------------------------------------------------------------------------
//  The speculation starts: create the table with the types of the rows
//  seen so far and insert them. Returns 0 or -1.

static int
s_speculate (s_ingest_t *self, lh_csv_table_t *schema)
{
    for (size_t column = 0; column < self->columns; column++)
        self->types [column] = lh_csv_infer_type (self->infer, column);
    if (s_build_create (self, schema))
        return -1;
    self->spec = S_SPEC_LOADING;
    char **fields = (char **) malloc (self->columns * sizeof (char *));
    assert (fields);
    int rc = 0;
    for (size_t index = 0; rc == 0 && index < self->sample_count; index++) {
        s_sample_t *sample = &self->samples [index];
        char *at = sample->data;
        for (size_t column = 0; column < self->columns; column++) {
            fields [column] = at;
            at += sample->sizes [column] + 1;
        }
        rc = s_row_insert (self, fields, sample->sizes, self->columns, sample->line);
    }
    free (fields);
    s_sample_free (self);
    return rc;
}


//  --------------------------------------------------------------------------
//  The single pass: classify every value (whole-file inference), count
//  distinct values, and load the rows into a table typed by the first
//  S_SAMPLE_ROWS rows. If a later value does not fit its column's type,
//  the speculation fails and a second pass loads the rows with the final
//  types; otherwise the final types equal the speculated ones (they are
//  the same inference) and the file is done.

static int
s_row_first (void *arg, char **fields, const size_t *sizes, size_t count, uint64_t line)
{
    s_ingest_t *self = (s_ingest_t *) arg;
    s_row_distinct (self, fields, sizes, count, line);
    if (!self->infer) {
        self->infer = lh_csv_infer_new (count);
        self->types = (lh_csv_type_t *) calloc (count, sizeof (lh_csv_type_t));
        self->samples = (s_sample_t *) calloc (S_SAMPLE_ROWS, sizeof (s_sample_t));
        assert (self->types && self->samples);
    }
    bool fits = true;
    if (!self->rising) {
        self->rising = (s_rising_t *) calloc (count, sizeof (s_rising_t));
        assert (self->rising);
        for (size_t column = 0; column < count; column++)
            self->rising [column].rising = true;
    }
    for (size_t column = 0; column < count; column++) {
        s_rising_t *rising = &self->rising [column];
        if (sizes [column] == 0) {
            rising->rising = false;
            continue;
        }
        int bits = lh_csv_infer_value (self->infer, column, fields [column], sizes [column]);
        if (self->spec == S_SPEC_LOADING && !s_fits (self->types [column], bits))
            fits = false;
        if (rising->rising) {
            size_t size = sizes [column];
            if (!(bits & LH_CSV_IS_INT) || fields [column][0] == '-' || size > sizeof (rising->last)
            ||  (rising->size && (size < rising->size || (size == rising->size
                 && memcmp (fields [column], rising->last, size) <= 0))))
                rising->rising = false;
            else {
                memcpy (rising->last, fields [column], size);
                rising->size = (uint8_t) size;
            }
        }
    }
    if (self->spec == S_SPEC_SAMPLING) {
        s_sample_add (self, fields, sizes, count, line);
        if (self->sample_count == S_SAMPLE_ROWS || self->sample_bytes >= S_SAMPLE_BYTES) {
            if (s_speculate (self, self->schema))
                return -1;
            s_loader_start (self);
        }
    }
    else
    if (self->spec == S_SPEC_LOADING) {
        if (fits)
            return s_loader_add (self, fields, sizes, count, line);
        lh_debug (S_NAME, self->trace, "line %" PRIu64 " does not fit the types of the first "
                  "rows: a second pass will load the file", line);
        self->spec = S_SPEC_FAILED;
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Upload the built table file and name it by its content (SPEC 5.3):
//  the parts go out as the file is read and hashed, and the commit names
//  the object DATASETS/NAME/FP/SHA256.sqlite, so the file is read once.
//  The file's pages are given back as they are sent. An object already
//  under the key (412) is the same version: nothing to do. Fills key;
//  returns 0 or -1.

static int
s_upload (s_ingest_t *self, const char *path, const char *fingerprint, char *key,
          size_t key_size)
{
    struct stat info;
    if (stat (path, &info)) {
        s_fail (self, LH_ST_INTERNAL, "table_failed", "cannot read the table file back");
        return -1;
    }
    //  Begun under a name of its own, never seen on the filesystem backend
    //  (an S3 backend copies it to the real key and deletes it)
    char staging [400];
    snprintf (staging, sizeof (staging), LH_INGEST_TABLE_PREFIX "%s/%s/building-%08x.sqlite",
              self->name, fingerprint, randombytes_random ());
    lh_storage_cond_t create = { .if_none_match = true };
    lh_storage_upload_t *upload;
    uint32_t status = lh_storage_upload_begin_sized (self->storage, staging, &create,
                                                     (uint64_t) info.st_size, 0, &upload);
    if (status == LH_ST_OK) {
        crypto_hash_sha256_state hash;
        crypto_hash_sha256_init (&hash);
        status = lh_storage_upload_send_file (upload, path, LH_STORAGE_RELEASE, &hash);
        char content [65];
        lh_sha256_final_hex (&hash, content);
        snprintf (key, key_size, LH_INGEST_TABLE_PREFIX "%s/%s/%s.sqlite", self->name,
                  fingerprint, content);
        if (status == LH_ST_OK)
            status = lh_storage_upload_commit_as (&upload, key, NULL);
        else
            lh_storage_upload_abort (&upload);
    }
    if (status == LH_ST_OK || status == LH_ST_PRECONDITION)
        return 0;
    if (status == LH_ST_TOO_LARGE)
        s_fail (self, LH_ST_TOO_LARGE, "too_large", "the table file is larger than storaged "
                "accepts: %s", *lh_storage_reason (self->storage)?
                lh_storage_reason (self->storage): "over the cap for its key");
    else
    if (streq (lh_storage_kind (self->storage), "local_io"))
        s_fail (self, LH_ST_INTERNAL, "table_failed", "cannot read the table file back");
    else
    if (status == LH_ST_TIMEOUT)
        s_fail (self, LH_ST_TIMEOUT, "deadline", "the ingest ran past its deadline");
    else
        s_fail_storage (self, "the table upload");
    return -1;
}


//  --------------------------------------------------------------------------
//  Refuse early when the dataset exists with another schema. Returns 0, or
//  -1 with the failure noted (409).

static int
s_check_drift (s_ingest_t *self, const char *fingerprint)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_str (pack, "name", self->name);
    lh_reply_t *reply;
    lh_request_call_pack (self->request, "catalogd", "get", &pack, self->state->timeout_ms, &reply);
    const char *live;
    size_t live_size;
    int rc = 0;
    if (lh_reply_status (reply) == LH_ST_OK
    &&  lh_obj_str (lh_reply_object (reply), "schema_fingerprint", &live, &live_size)
    &&  (live_size != strlen (fingerprint) || memcmp (live, fingerprint, live_size))) {
        s_fail (self, LH_ST_CONFLICT, "schema_drift",
                "dataset '%s' exists with schema fingerprint %.*s; this file's schema has %s "
                "(the live dataset is unchanged)", self->name, (int) (live_size > 64? 64: live_size),
                live, fingerprint);
        rc = -1;
    }
    lh_reply_destroy (&reply);
    return rc;
}


//  --------------------------------------------------------------------------
//  Register the version with catalogd; on success fills dataset_id

static int
s_register (s_ingest_t *self, lh_csv_table_t *schema, const char *fingerprint,
            const char *key, char *dataset_id, size_t dataset_id_size)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 5);
    lh_pack_kv_str (pack, "name", self->name);
    lh_pack_kv_str (pack, "schema_fingerprint", fingerprint);
    lh_pack_str (pack, "schema");
    lh_pack_array (pack, (uint32_t) self->columns);
    for (size_t column = 0; column < self->columns; column++) {
        lh_pack_map (pack, 2);
        lh_pack_kv_str (pack, "name", lh_csv_table_name (schema, column));
        lh_pack_kv_str (pack, "type", lh_csv_type_name (self->types [column]));
    }
    lh_pack_str (pack, "objects");
    lh_pack_array (pack, 1);
    lh_pack_str (pack, key);
    lh_pack_kv_uint (pack, "row_count", self->rows);
    lh_reply_t *reply;
    lh_request_call_pack (self->request, "catalogd", "register", &pack, self->state->timeout_ms,
                          &reply);
    uint32_t status = lh_reply_status (reply);
    const char *id;
    size_t id_size;
    int rc = 0;
    if (status == LH_ST_CONFLICT) {
        s_fail (self, LH_ST_CONFLICT, "schema_drift",
                "dataset '%s' exists with another schema; this file's schema has fingerprint "
                "%s (the live dataset is unchanged)", self->name, fingerprint);
        rc = -1;
    }
    else
    if ((status == LH_ST_OK || status == LH_ST_CREATED)
    &&  lh_obj_str (lh_reply_object (reply), "dataset_id", &id, &id_size)
    &&  id_size < dataset_id_size) {
        memcpy (dataset_id, id, id_size);
        dataset_id [id_size] = 0;
    }
    else {
        s_fail_dependency (self, reply, "catalogd", "the register");
        rc = -1;
    }
    lh_reply_destroy (&reply);
    return rc;
}


//  --------------------------------------------------------------------------
//  Find the source's size and ETag; refuse it if too large

static int
s_head_source (s_ingest_t *self)
{
    lh_storage_info_t info;
    uint32_t status = lh_storage_head (self->storage, self->source, &info);
    if (status == LH_ST_NOT_FOUND)
        s_fail (self, LH_ST_NOT_FOUND, "no_such_source",
                "no object '%.200s' in storage (upload the CSV first)", self->source);
    else
    if (status == LH_ST_BAD_REQUEST)
        s_fail (self, LH_ST_BAD_REQUEST, "bad_body", "source: %s",
                *lh_storage_reason (self->storage)? lh_storage_reason (self->storage):
                                                    "not a valid key");
    else
    if (status != LH_ST_OK)
        s_fail_storage (self, "the source head");
    if (status != LH_ST_OK)
        return -1;
    self->size = info.size;
    int rc = -1;
    if (self->size > (uint64_t) self->state->max_bytes)
        s_fail (self, LH_ST_TOO_LARGE, "too_large",
                "the source is %" PRIu64 " bytes; ingestd accepts at most %" PRId64
                " (raise ingest/max_bytes to ingest more)", self->size, self->state->max_bytes);
    else {
        snprintf (self->etag, sizeof (self->etag), "%s", info.etag);
        rc = 0;
    }
    return rc;
}


//  --------------------------------------------------------------------------
//  ingest {name, source}

static void
s_ingest (lh_request_t *request, void *state)
{
    s_ingest_t self = {
        .state = (s_state_t *) state, .request = request, .trace = lh_request_trace (request)
    };
    const msgpack_object *body = lh_request_map (request);
    const char *name = NULL;
    size_t name_size = 0;
    if (!body
    ||  lh_request_str (request, body, "name", LH_FIELD_REQUIRED, 0, &name, &name_size))
        return;
    if (!lh_ingestd_name_valid (name, name_size)) {
        lh_request_fail_field (request, LH_ST_BAD_REQUEST, "bad_body", "name",
                               "name: a dataset name is 1..128 of [A-Za-z0-9_.-], starting with "
                               "a letter, digit or '_', and not with 'sqlite_'");
        return;
    }
    if (lh_request_strdup (request, body, "source", LH_FIELD_REQUIRED | LH_FIELD_NONEMPTY,
                           1024, &self.source)
    ||  lh_request_strdup (request, body, "upload_id", LH_FIELD_NONEMPTY, S_UPLOAD_ID_MAX,
                           &self.upload_id)) {
        free (self.source);
        return;
    }
    memcpy (self.name, name, name_size);
    self.name [name_size] = 0;
    self.storage = lh_storage_new_request (request, self.state->timeout_ms);
    int64_t started = zclock_mono ();
    char fingerprint [65] = "", key [400] = "", dataset_id [64] = "", *path = NULL;
    //  A source still being uploaded is followed as it lands: its head
    //  comes at the end of the first pass
    int rc = self.upload_id? 0: s_head_source (&self);
    if (rc == 0) {
        path = zsys_sprintf ("%s/build-XXXXXX", self.state->tmp_dir);
        int fd = mkstemp (path);
        if (fd == -1) {
            s_fail (&self, LH_ST_INTERNAL, "table_failed", "cannot create a temporary table file");
            zstr_free (&path);
            rc = -1;
        }
        else
            close (fd);
    }
    //  One pass: infer over the whole file while loading speculatively
    if (rc == 0)
        rc = s_build_open (&self, path);
    if (rc == 0) {
        self.schema = lh_csv_table_new (self.state->record_max, false, s_row_first, &self);
        rc = self.upload_id? s_follow_source (&self, self.schema)
                           : s_read_source (&self, self.schema);
        //  The rows still queued go in (or, on failure, are dropped)
        if (s_loader_finish (&self, rc != 0 || self.spec == S_SPEC_FAILED))
            rc = -1;
    }
    if (rc == 0) {
        self.columns = lh_csv_table_columns (self.schema);
        if (!self.infer) {
            //  A header and no rows
            self.infer = lh_csv_infer_new (self.columns);
            self.types = (lh_csv_type_t *) calloc (self.columns + 1, sizeof (lh_csv_type_t));
            assert (self.types);
        }
        if (self.spec == S_SPEC_SAMPLING)
            rc = s_speculate (&self, self.schema);
    }
    bool second_pass = false;
    if (rc == 0) {
        lh_csv_type_t *final = (lh_csv_type_t *) malloc (self.columns * sizeof (lh_csv_type_t));
        assert (final);
        for (size_t column = 0; column < self.columns; column++) {
            final [column] = lh_csv_infer_type (self.infer, column);
            if (final [column] != self.types [column])
                self.spec = S_SPEC_FAILED;
        }
        memcpy (self.types, final, self.columns * sizeof (lh_csv_type_t));
        free (final);
        const char **names = (const char **) malloc (self.columns * sizeof (char *));
        assert (names);
        for (size_t column = 0; column < self.columns; column++)
            names [column] = lh_csv_table_name (self.schema, column);
        lh_csv_fingerprint (names, self.types, self.columns, fingerprint);
        free (names);
        rc = s_check_drift (&self, fingerprint);
    }
    int64_t inferred = zclock_mono ();
    //  Second pass, only when a value contradicted the first rows' types
    if (rc == 0 && self.spec == S_SPEC_FAILED) {
        second_pass = true;
        s_build_discard (&self, path);
        rc = s_build_open (&self, path);
        if (rc == 0)
            rc = s_build_create (&self, self.schema);
        if (rc == 0) {
            lh_csv_table_t *table = lh_csv_table_new (self.state->record_max, false,
                                                      s_row_insert, &self);
            rc = s_read_source (&self, table);
            lh_csv_table_destroy (&table);
        }
    }
    if (rc == 0)
        rc = s_build_finish (&self, self.schema);
    //  The version is named by the table file's content (SPEC 5.3): the
    //  build is deterministic, so the same CSV always makes the same key
    int64_t built = zclock_mono ();
    if (rc == 0)
        rc = s_upload (&self, path, fingerprint, key, sizeof (key));
    int64_t uploaded = zclock_mono ();
    if (self.db)
        s_build_discard (&self, path);
    if (path) {
        unlink (path);
        zstr_free (&path);
    }
    if (rc == 0)
        rc = s_register (&self, self.schema, fingerprint, key, dataset_id, sizeof (dataset_id));
    if (rc == 0) {
        lh_info (S_NAME, self.trace, "ingested '%s': %" PRIu64 " rows x %zu columns, %" PRIu64
                 " bytes in %" PRId64 " ms (read %" PRId64 ", %s %" PRId64 ", upload %" PRId64
                 ", register %" PRId64 ") -> %s",
                 self.name, self.rows, self.columns, self.size, zclock_mono () - started,
                 inferred - started, second_pass? "second pass": "indexes", built - inferred,
                 uploaded - built, zclock_mono () - uploaded, key);
        lh_pack_t *pack = lh_pack_new ();
        lh_pack_map (pack, 7);
        lh_pack_kv_str (pack, "name", self.name);
        lh_pack_kv_str (pack, "dataset_id", dataset_id);
        lh_pack_kv_str (pack, "schema_fingerprint", fingerprint);
        lh_pack_kv_uint (pack, "row_count", self.rows);
        lh_pack_kv_uint (pack, "columns", self.columns);
        lh_pack_kv_str (pack, "key", key);
        lh_pack_kv_str (pack, "source", self.source);
        lh_request_event (request, "ingest.done", &pack);
        pack = lh_pack_new ();
        lh_pack_map (pack, 5);
        lh_pack_kv_str (pack, "dataset_id", dataset_id);
        lh_pack_kv_str (pack, "schema_fingerprint", fingerprint);
        lh_pack_str (pack, "columns");
        lh_pack_array (pack, (uint32_t) self.columns);
        for (size_t column = 0; column < self.columns; column++) {
            lh_pack_map (pack, 2);
            lh_pack_kv_str (pack, "name", lh_csv_table_name (self.schema, column));
            lh_pack_kv_str (pack, "type", lh_csv_type_name (self.types [column]));
        }
        lh_pack_kv_uint (pack, "row_count", self.rows);
        lh_pack_kv_str (pack, "key", key);
        lh_request_reply_pack (request, LH_ST_OK, &pack);
    }
    else {
        if (!self.status)
            s_fail (&self, LH_ST_INTERNAL, "internal", "the ingest failed");
        lh_info (S_NAME, self.trace, "ingest of '%s' refused: %u %s", self.name, self.status,
                 self.reason);
        if (!self.answered)
            lh_request_fail (request, self.status, self.kind, "%s", self.reason);
    }
    if (self.distinct) {
        for (size_t column = 0; column < self.columns; column++)
            zhash_destroy (&self.distinct [column]);
        free (self.distinct);
    }
    free (self.rising);
    s_sample_free (&self);
    free (self.samples);
    lh_csv_infer_destroy (&self.infer);
    lh_csv_table_destroy (&self.schema);
    free (self.types);
    free (self.source);
    free (self.upload_id);
    lh_storage_destroy (&self.storage);
}


//  --------------------------------------------------------------------------
//  Destroy the state

static void
s_state_destroy (void **state_p)
{
    s_state_t *self = (s_state_t *) *state_p;
    if (self) {
        free (self->tmp_dir);
        free (self);
        *state_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Create the state from the config; refuse bad values naming the key

static void *
s_state_new (lh_config_t *config, const lh_link_t *link, const char **error)
{
    s_state_t *self = (s_state_t *) zmalloc (sizeof (s_state_t));
    assert (self);
    self->max_bytes = lh_config_int (config, "ingest/max_bytes");
    int64_t record_max = lh_config_int (config, "ingestd/record_max");
    int64_t read_chunk = lh_config_int (config, "ingestd/read_chunk");
    int64_t timeout = lh_config_int (config, "ingestd/timeout_ms");
    int64_t page_size = lh_config_int (config, "ingestd/page_size");
    int64_t cache_kib = lh_config_int (config, "ingestd/cache_kib");
    int64_t index_max = lh_config_int (config, "ingestd/index_max");
    int64_t distinct_max = lh_config_int (config, "ingestd/index_distinct_max");
    const char *tmp_dir = lh_config_str (config, "ingestd/tmp_dir");
    self->tmp_dir = *tmp_dir? strdup (tmp_dir)
                            : zsys_sprintf ("%s/ingestd", lh_config_str (config, "data/dir"));
    *error = NULL;
    if (zsys_dir_create ("%s", self->tmp_dir) != 0)
        *error = "ingestd/tmp_dir cannot be created";
    if (*error) {
        s_state_destroy ((void **) &self);
        return NULL;
    }
    self->record_max = (size_t) record_max;
    self->read_chunk = (uint64_t) read_chunk;
    self->timeout_ms = (uint32_t) (timeout > UINT32_MAX? UINT32_MAX: timeout);
    self->page_size = (int) page_size;
    self->cache_kib = (int) cache_kib;
    self->sort_threads = (int) lh_config_int (config, "ingestd/sort_threads");
    self->index_max = (int) index_max;
    self->distinct_max = (int) distinct_max;
    lh_info (S_NAME, NULL, "building tables in %s", self->tmp_dir);
    return self;
}


static const lh_op_t s_ops [] = {
    { "ingest", s_ingest },
    { NULL, NULL }
};

const lh_service_t lh_ingestd_service = {
    .name = "ingestd",
    .ops = s_ops,
    .state_new = s_state_new,
    .state_destroy = s_state_destroy,
    .credit = 1
};


//  --------------------------------------------------------------------------
//  Self test: name rules, and the service on a test bus (its CSV rules and
//  limits are tested over the bus by tests/integration/test_ingest*.py)

#include "lh_testbus.h"
#include "storaged.h"
#include "catalogd.h"

//  The body of an ingest that follows an upload
static zframe_t *
s_test_follow_body (const char *name, const char *source, const char *upload_id)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 3);
    lh_pack_kv_str (pack, "name", name);
    lh_pack_kv_str (pack, "source", source);
    lh_pack_kv_str (pack, "upload_id", upload_id);
    return lh_pack_frame (&pack);
}

void
lh_ingestd_test (bool verbose)
{
    printf (" * lh_ingestd: ");
    assert (lh_ingestd_name_valid ("workers", 7));
    assert (lh_ingestd_name_valid ("w_2024-01.v2", 12));
    assert (lh_ingestd_name_valid ("_x", 2));
    assert (!lh_ingestd_name_valid ("", 0));
    assert (!lh_ingestd_name_valid ("-x", 2));
    assert (!lh_ingestd_name_valid (".x", 2));
    assert (!lh_ingestd_name_valid ("a/b", 3));
    assert (!lh_ingestd_name_valid ("a b", 3));
    assert (!lh_ingestd_name_valid ("a\"b", 3));
    assert (!lh_ingestd_name_valid ("sqlite_master", 13));
    assert (!lh_ingestd_name_valid ("SQLITE_x", 8));
    char long_name [130];
    memset (long_name, 'a', sizeof (long_name));
    assert (lh_ingestd_name_valid (long_name, 128));
    assert (!lh_ingestd_name_valid (long_name, 129));

    lh_testbus_t *bus = lh_testbus_new ("ingestd");
    lh_testbus_start (bus, &lh_storaged_service, 1);
    lh_testbus_start (bus, &lh_catalogd_service, 1);
    lh_testbus_start (bus, &lh_ingestd_service, 1);
    assert (lh_testbus_status (bus, "storaged", "put",
                               "{\"key\": \"uploads/w.csv\", \"data\": \"id,name\\n1,ann\\n2,bo\\n\"}") == 200);
    lh_reply_t *reply = lh_testbus_call (bus, "ingestd", "ingest",
                                         "{\"name\": \"w\", \"source\": \"uploads/w.csv\"}");
    assert (lh_reply_status (reply) == 200);
    uint64_t rows = 0;
    assert (lh_obj_uint (lh_reply_object (reply), "row_count", &rows) && rows == 2);
    lh_reply_destroy (&reply);
    assert (lh_testbus_status (bus, "catalogd", "get", "{\"name\": \"w\"}") == 200);
    //  Bad bodies: one 400 each, naming the field; a missing source is 404
    struct {
        const char *json, *field;
    } bad [] = {
        { NULL, "name" },
        { "{\"name\": \"a b\", \"source\": \"uploads/w.csv\"}", "name" },
        { "{\"name\": 5, \"source\": \"uploads/w.csv\"}", "name" },
        { "{\"name\": \"w\"}", "source" },
        { "{\"name\": \"w\", \"source\": \"\"}", "source" },
        { "{\"name\": \"w\", \"source\": [1]}", "source" },
    };
    for (size_t index = 0; index < sizeof (bad) / sizeof (bad [0]); index++)
        lh_testbus_expect (bus, "ingestd", "ingest", bad [index].json, 400, NULL, bad [index].field);
    assert (lh_testbus_status (bus, "ingestd", "ingest",
                               "{\"name\": \"w\", \"source\": \"uploads/none.csv\"}") == 404);
    lh_testbus_expect (bus, "ingestd", "ingest", "{\"name\": \"w\", \"source\": \"x\", "
                       "\"upload_id\": 7}", 400, NULL, "upload_id");

    //  A source followed while it is uploaded: the ingest is asked first,
    //  the parts come after, the answer after the commit
    lh_client_t *client = lh_testbus_client_new (bus, "ingestd-test");
    lh_storage_t *storage = lh_storage_new (client, NULL, 5000);
    lh_storage_upload_t *upload;
    assert (lh_storage_upload_begin_sized (storage, "uploads/f.csv", NULL, 0, 64, &upload) == 200);
    zframe_t *frame = s_test_follow_body ("f", "uploads/f.csv", lh_storage_upload_id (upload));
    lh_call_opts_t opts = { .timeout_ms = 10000 };
    uint64_t id = lh_client_send (client, "ingestd", "ingest", zframe_data (frame),
                                  zframe_size (frame), &opts);
    assert (id);
    zframe_destroy (&frame);
    assert (lh_storage_upload_write (upload, "id,name\n", 8) == 200);
    for (int row = 0; row < 300; row++) {
        char line [32];
        snprintf (line, sizeof (line), "%d,n%d\n", row, row);
        assert (lh_storage_upload_write (upload, line, strlen (line)) == 200);
        if (row % 100 == 0)
            zclock_sleep (20);          //  the ingest waits for parts meanwhile
    }
    assert (lh_storage_upload_commit (&upload, NULL) == 200);
    assert (lh_client_wait (client, id, &reply) == 0 && lh_reply_status (reply) == 200);
    assert (lh_obj_uint (lh_reply_object (reply), "row_count", &rows) && rows == 300);
    lh_reply_destroy (&reply);
    //  ... and one aborted under it (after some parts): 409
    assert (lh_storage_upload_begin_sized (storage, "uploads/g.csv", NULL, 0, 64, &upload) == 200);
    frame = s_test_follow_body ("g", "uploads/g.csv", lh_storage_upload_id (upload));
    id = lh_client_send (client, "ingestd", "ingest", zframe_data (frame), zframe_size (frame),
                         &opts);
    zframe_destroy (&frame);
    for (int row = 0; row < 20; row++)
        assert (lh_storage_upload_write (upload, "1,abcdefgh\n", 11) == 200);
    zclock_sleep (50);
    lh_storage_upload_abort (&upload);
    assert (lh_client_wait (client, id, &reply) == 0 && lh_reply_status (reply) == 409);
    lh_reply_destroy (&reply);
    lh_storage_destroy (&storage);
    lh_client_destroy (&client);
    lh_testbus_destroy (&bus);
    printf ("OK\n");
}
