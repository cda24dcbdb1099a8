/*  =========================================================================
    lh_corpus - turn a catalogued dataset into a vector corpus; see
    lh_corpus.h

    The pipeline is three batches deep. Each step sends, in one
    lh_client_call_all: the add of the batch embedded last step, the embed
    calls of the batch read last step, and the read of the next page; then
    it waits for all of them and moves every batch one stage on. The add
    (HNSW insertion under vectord's write lock) is the slow stage, so the
    reads and embeds hide behind it.
    =========================================================================
*/

#include "lh_corpus.h"
#include "lh_body.h"
#include "lh_cert.h"
#include "lh_tool.h"
#include "lh_log.h"
#include "lh_json.h"

#define S_RETRIES           3           //  retries of a 429/503/504 call
#define S_BACKOFF_MS        250         //  first retry delay, doubled each time
#define S_ID_MAX            256         //  longest id vectord takes
#define S_PROGRESS_MS       5000        //  progress line period off a terminal
#define S_EXIT_FAILURE      1
#define S_EXIT_USAGE        2

//  One batch of rows on its way through the pipeline
typedef struct {
    uint64_t number;                    //  1, 2, ... in read order
    lh_reply_t *page;                   //  the queryd reply holding the rows
    uint64_t rows;                      //  rows in the page
    size_t count;                       //  rows kept (an id and a text)
    const msgpack_object **row;         //  kept rows, borrowed from page
    char **ids;                         //  their ids
    char **texts;                       //  their texts
    float *vectors;                     //  count x dim once embedded
    size_t dim;                         //  components
} s_batch_t;

//  A build in progress
typedef struct {
    lh_client_t *client;                //  the bus client (borrowed)
    const lh_corpus_opts_t *opts;       //  the options (borrowed)
    lh_corpus_stats_t *stats;           //  the caller's counters
    size_t batch;                       //  rows per batch
    size_t texts_max;                   //  texts per embed call
    size_t text_max;                    //  longest text
    uint32_t timeout_ms;                //  each call's deadline
    char *sql;                          //  the page statement
    size_t text_at [64];                //  row positions of the text columns
    size_t *metadata_at;                //  row positions of the metadata columns
    const char **metadata_names;        //  their names (borrowed)
    size_t metadata_count;              //  how many
    int64_t last_rowid;                 //  keyset cursor
    bool read_all;                      //  a page came back empty
    size_t index_dim;                   //  dim of the index, 0 = not there yet
    int64_t started;                    //  zclock_mono at the start
    char *error;                        //  what stopped the build, or NULL
} s_build_t;


//  --------------------------------------------------------------------------
//  Destroy a batch

static void
s_batch_destroy (s_batch_t **self_p)
{
    s_batch_t *self = *self_p;
    if (self) {
        for (size_t index = 0; index < self->count; index++) {
            free (self->ids [index]);
            free (self->texts [index]);
        }
        free (self->ids);
        free (self->texts);
        free (self->row);
        free (self->vectors);
        lh_reply_destroy (&self->page);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  A SQL identifier, double-quoted (caller frees)

static char *
s_quote (const char *name)
{
    char *quoted = (char *) malloc (strlen (name) * 2 + 3);
    assert (quoted);
    char *at = quoted;
    *at++ = '"';
    for (const char *from = name; *from; from++) {
        if (*from == '"')
            *at++ = '"';
        *at++ = *from;
    }
    *at++ = '"';
    *at = 0;
    return quoted;
}


//  --------------------------------------------------------------------------
//  A scalar as text into buffer (size bytes); false for nil, maps, arrays.
//  Strings are returned borrowed in *text with *size.

static bool
s_scalar (const msgpack_object *value, char *buffer, size_t capacity,
          const char **text, size_t *size)
{
    switch (value->type) {
        case MSGPACK_OBJECT_STR:
            *text = value->via.str.ptr;
            *size = value->via.str.size;
            return true;
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            *size = (size_t) snprintf (buffer, capacity, "%" PRIu64, value->via.u64);
            break;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            *size = (size_t) snprintf (buffer, capacity, "%" PRId64, value->via.i64);
            break;
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
            *size = (size_t) snprintf (buffer, capacity, "%.17g", value->via.f64);
            break;
        case MSGPACK_OBJECT_BOOLEAN:
            *size = (size_t) snprintf (buffer, capacity, "%s", value->via.boolean? "true": "false");
            break;
        default:
            return false;
    }
    *text = buffer;
    return true;
}


//  --------------------------------------------------------------------------
//  Call svc.op, retrying a 429/503/504 up to S_RETRIES times with backoff.
//  *reply_p is always set; returns its status.

static uint32_t
s_call (s_build_t *self, const char *svc, const char *op, const void *body, size_t size,
        lh_reply_t **reply_p)
{
    lh_call_opts_t opts = { .timeout_ms = self->timeout_ms, .queue = true };
    uint32_t status = 0;
    for (int attempt = 0; attempt <= S_RETRIES; attempt++) {
        if (attempt) {
            lh_reply_destroy (reply_p);
            zclock_sleep (S_BACKOFF_MS << (attempt - 1));
        }
        lh_client_call (self->client, svc, op, body, size, &opts, reply_p);
        status = lh_reply_status (*reply_p);
        if (status != 429 && status != 503 && status != 504)
            break;
    }
    return status;
}


//  --------------------------------------------------------------------------
//  A call's reply when it failed: retried as s_call does when it may be.
//  Returns its (final) status.

static uint32_t
s_settle (s_build_t *self, lh_call_t *call)
{
    uint32_t status = lh_reply_status (call->reply);
    if (status == 429 || status == 503 || status == 504) {
        lh_reply_destroy (&call->reply);
        status = s_call (self, call->svc, call->op, call->body, call->size, &call->reply);
    }
    return status;
}


//  --------------------------------------------------------------------------
//  One statement through queryd; the reply when it answered 200, else NULL
//  with self->error set

static lh_reply_t *
s_sql (s_build_t *self, const char *sql, const char *what)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_kv_str (pack, "sql", sql);
    lh_pack_close (pack);
    size_t size;
    const void *data = lh_pack_data (pack, &size);
    lh_reply_t *reply = NULL;
    uint32_t status = s_call (self, "queryd", "sql", data, size, &reply);
    lh_pack_destroy (&pack);
    if (status == 200)
        return reply;
    const char *reason = lh_reply_reason (reply);
    self->error = zsys_sprintf ("%s: queryd answered %u: %s", what, status,
                                reason? reason: "no reason given");
    lh_reply_destroy (&reply);
    return NULL;
}


//  --------------------------------------------------------------------------
//  Position of a named column in a column list (case-insensitive, as
//  SQLite), or -1

static int
s_column (const msgpack_object *columns, const char *name)
{
    for (uint32_t index = 0; index < columns->via.array.size; index++) {
        const char *text;
        size_t size;
        if (lh_obj_str (&columns->via.array.ptr [index], "name", &text, &size)
        &&  size == strlen (name) && strncasecmp (text, name, size) == 0)
            return (int) index;
    }
    return -1;
}


//  --------------------------------------------------------------------------
//  Check the columns, count the rows, look at the index, write the page
//  statement. 0, or -1 with self->error.

static int
s_prepare (s_build_t *self)
{
    const lh_corpus_opts_t *opts = self->opts;
    char *table = s_quote (opts->dataset);
    char *sql = zsys_sprintf ("SELECT * FROM %s LIMIT 0", table);
    lh_reply_t *reply = s_sql (self, sql, "reading the dataset's columns");
    zstr_free (&sql);
    if (!reply) {
        free (table);
        return -1;
    }
    const msgpack_object *columns = lh_obj_get (lh_reply_object (reply), "columns");
    //  Every column named must exist; rowid must not be hidden by one
    const char *missing = NULL;
    if (columns && s_column (columns, opts->id_column) < 0)
        missing = opts->id_column;
    for (size_t index = 0; columns && !missing && index < opts->text_count; index++)
        if (s_column (columns, opts->text_columns [index]) < 0)
            missing = opts->text_columns [index];
    for (size_t index = 0; columns && !missing && index < opts->metadata_count; index++)
        if (s_column (columns, opts->metadata_columns [index]) < 0)
            missing = opts->metadata_columns [index];
    const char *rowid = NULL;
    const char *rowids [] = { "rowid", "_rowid_", "oid" };
    for (size_t choice = 0; columns && !rowid && choice < 3; choice++)
        if (s_column (columns, rowids [choice]) < 0)
            rowid = rowids [choice];
    if (!columns || missing || !rowid) {
        self->error = !columns? strdup ("queryd answered without a column list"):
                      missing? zsys_sprintf ("dataset '%s' has no column '%s'", opts->dataset, missing):
                      zsys_sprintf ("dataset '%s' has columns named rowid, _rowid_ and oid: "
                                    "its rows cannot be paged", opts->dataset);
        lh_reply_destroy (&reply);
        free (table);
        return -1;
    }
    lh_reply_destroy (&reply);

    //  SELECT rowid, id, texts..., metadata... (each position recorded)
    const char **names = (const char **) calloc (1 + opts->text_count + self->metadata_count,
                                                 sizeof (char *));
    assert (names);
    size_t selected = 0;
    names [selected++] = opts->id_column;
    char *list = s_quote (opts->id_column);
    for (size_t pass = 0; pass < 2; pass++) {
        size_t count = pass? self->metadata_count: opts->text_count;
        for (size_t index = 0; index < count; index++) {
            const char *name = pass? self->metadata_names [index]: opts->text_columns [index];
            size_t at = 0;
            while (at < selected && strcasecmp (names [at], name) != 0)
                at++;
            if (at == selected) {
                names [selected++] = name;
                char *quoted = s_quote (name);
                char *longer = zsys_sprintf ("%s, %s", list, quoted);
                free (quoted);
                free (list);
                list = longer;
            }
            if (pass)
                self->metadata_at [index] = at + 1;
            else
                self->text_at [index] = at + 1;
        }
    }
    free (names);
    self->sql = zsys_sprintf ("SELECT %s, %s FROM %s WHERE %s > ?1 ORDER BY %s LIMIT %zu",
                              rowid, list, table, rowid, rowid, self->batch);
    free (list);

    sql = zsys_sprintf ("SELECT count(*) FROM %s", table);
    free (table);
    reply = s_sql (self, sql, "counting the dataset's rows");
    zstr_free (&sql);
    if (!reply)
        return -1;
    const msgpack_object *rows = lh_obj_get (lh_reply_object (reply), "rows");
    if (rows && rows->type == MSGPACK_OBJECT_ARRAY && rows->via.array.size == 1
    &&  rows->via.array.ptr [0].type == MSGPACK_OBJECT_ARRAY
    &&  rows->via.array.ptr [0].via.array.size == 1
    &&  rows->via.array.ptr [0].via.array.ptr [0].type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        self->stats->total = rows->via.array.ptr [0].via.array.ptr [0].via.u64;
    lh_reply_destroy (&reply);

    //  The index: its dim when it exists
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_kv_str (pack, "name", opts->index);
    lh_pack_close (pack);
    size_t size;
    const void *data = lh_pack_data (pack, &size);
    uint32_t status = s_call (self, "vectord", "info", data, size, &reply);
    lh_pack_destroy (&pack);
    uint64_t dim = 0;
    if (status == 200 && lh_obj_uint (lh_reply_object (reply), "dim", &dim))
        self->index_dim = (size_t) dim;
    else
    if (status != 404) {
        const char *reason = lh_reply_reason (reply);
        self->error = zsys_sprintf ("vectord info of '%s' answered %u: %s", opts->index, status,
                                    reason? reason: "no reason given");
    }
    lh_reply_destroy (&reply);
    return self->error? -1: 0;
}


//  --------------------------------------------------------------------------
//  The body of the next page's read

static lh_pack_t *
s_read_pack (s_build_t *self)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_kv_str (pack, "sql", self->sql);
    lh_pack_str (pack, "params");
    lh_pack_open_array (pack);
    lh_pack_int (pack, self->last_rowid);
    lh_pack_close (pack);
    lh_pack_kv_uint (pack, "limit", self->batch);
    lh_pack_close (pack);
    return pack;
}


//  --------------------------------------------------------------------------
//  Turn a page reply (taken) into a batch: each row's id and text. NULL
//  when the page is empty (everything read) or on an error (self->error).

static s_batch_t *
s_batch_new (s_build_t *self, lh_reply_t **page_p, uint64_t number)
{
    const lh_corpus_opts_t *opts = self->opts;
    const msgpack_object *rows = lh_obj_get (lh_reply_object (*page_p), "rows");
    if (!rows || rows->type != MSGPACK_OBJECT_ARRAY) {
        self->error = strdup ("queryd answered a page without rows");
        lh_reply_destroy (page_p);
        return NULL;
    }
    if (rows->via.array.size == 0) {
        self->read_all = true;
        lh_reply_destroy (page_p);
        return NULL;
    }
    s_batch_t *batch = (s_batch_t *) zmalloc (sizeof (s_batch_t));
    assert (batch);
    batch->number = number;
    batch->page = *page_p;
    *page_p = NULL;
    batch->rows = rows->via.array.size;
    batch->row = (const msgpack_object **) calloc (batch->rows, sizeof (void *));
    batch->ids = (char **) calloc (batch->rows, sizeof (char *));
    batch->texts = (char **) calloc (batch->rows, sizeof (char *));
    assert (batch->row && batch->ids && batch->texts);
    for (uint32_t index = 0; index < rows->via.array.size; index++) {
        const msgpack_object *row = &rows->via.array.ptr [index];
        if (row->type != MSGPACK_OBJECT_ARRAY || row->via.array.size < 2
        ||  (row->via.array.ptr [0].type != MSGPACK_OBJECT_POSITIVE_INTEGER
          && row->via.array.ptr [0].type != MSGPACK_OBJECT_NEGATIVE_INTEGER)) {
            self->error = strdup ("queryd answered a row without its rowid");
            s_batch_destroy (&batch);
            return NULL;
        }
        self->last_rowid = row->via.array.ptr [0].via.i64;
        char number_text [32], buffer [32];
        const char *id;
        size_t id_size;
        if (!s_scalar (&row->via.array.ptr [1], number_text, sizeof (number_text), &id, &id_size)
        ||  id_size == 0 || id_size > S_ID_MAX) {
            self->stats->skipped++;
            continue;
        }
        //  The text: the text columns' values joined by ", ", cut at
        //  text_max on a UTF-8 character boundary
        char *text = (char *) malloc (self->text_max + 1);
        assert (text);
        size_t length = 0;
        for (size_t column = 0; column < opts->text_count; column++) {
            if (self->text_at [column] >= row->via.array.size)
                continue;
            const msgpack_object *value = &row->via.array.ptr [self->text_at [column]];
            const char *part;
            size_t part_size;
            if (!s_scalar (value, buffer, sizeof (buffer), &part, &part_size) || part_size == 0)
                continue;
            if (length && length + 2 <= self->text_max) {
                memcpy (text + length, ", ", 2);
                length += 2;
            }
            size_t room = self->text_max - length;
            if (part_size > room) {
                part_size = room;
                while (part_size > 0 && ((unsigned char) part [part_size] & 0xC0) == 0x80)
                    part_size--;
            }
            memcpy (text + length, part, part_size);
            length += part_size;
        }
        text [length] = 0;
        if (length == 0 || memchr (text, 0, length)) {
            free (text);
            self->stats->skipped++;
            continue;
        }
        batch->row [batch->count] = row;
        batch->ids [batch->count] = strndup (id, id_size);
        batch->texts [batch->count++] = text;
    }
    return batch;
}


//  --------------------------------------------------------------------------
//  The bodies of a batch's embed calls (texts_max texts each)

static size_t
s_embed_packs (s_build_t *self, s_batch_t *batch, lh_pack_t **packs)
{
    size_t calls = (batch->count + self->texts_max - 1) / self->texts_max;
    for (size_t call = 0; call < calls; call++) {
        size_t first = call * self->texts_max;
        size_t last = first + self->texts_max < batch->count? first + self->texts_max: batch->count;
        packs [call] = lh_pack_new ();
        lh_pack_open_map (packs [call]);
        lh_pack_str (packs [call], "texts");
        lh_pack_open_array (packs [call]);
        for (size_t index = first; index < last; index++)
            lh_pack_str (packs [call], batch->texts [index]);
        lh_pack_close (packs [call]);
        if (self->opts->model)
            lh_pack_kv_str (packs [call], "model", self->opts->model);
        lh_pack_close (packs [call]);
    }
    return calls;
}


//  --------------------------------------------------------------------------
//  Take the vectors of a batch's embed replies. 0, or -1 with a sentence
//  in *why (caller frees).

static int
s_embed_take (s_build_t *self, s_batch_t *batch, lh_call_t *calls, size_t count, char **why)
{
    for (size_t call = 0; call < count; call++) {
        uint32_t status = s_settle (self, &calls [call]);
        const msgpack_object *list = status == 200?
                                     lh_obj_get (lh_reply_object (calls [call].reply), "vectors"): NULL;
        size_t first = call * self->texts_max;
        size_t expected = first + self->texts_max < batch->count? self->texts_max: batch->count - first;
        if (!list || list->type != MSGPACK_OBJECT_ARRAY || list->via.array.size != expected) {
            const char *reason = lh_reply_reason (calls [call].reply);
            *why = zsys_sprintf ("embedd answered %u: %s", status, reason? reason: "no vectors");
            return -1;
        }
        for (size_t index = 0; index < expected; index++) {
            const msgpack_object *vector = &list->via.array.ptr [index];
            if (vector->type != MSGPACK_OBJECT_ARRAY || vector->via.array.size == 0
            ||  (batch->dim && vector->via.array.size != batch->dim)) {
                *why = strdup ("embedd answered vectors of different dims");
                return -1;
            }
            if (!batch->vectors) {
                batch->dim = vector->via.array.size;
                batch->vectors = (float *) malloc (batch->count * batch->dim * sizeof (float));
                assert (batch->vectors);
            }
            float *into = batch->vectors + (first + index) * batch->dim;
            for (size_t component = 0; component < batch->dim; component++) {
                const msgpack_object *value = &vector->via.array.ptr [component];
                into [component] = value->type == MSGPACK_OBJECT_FLOAT32
                                || value->type == MSGPACK_OBJECT_FLOAT64? (float) value->via.f64: 0;
            }
        }
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Create the index with the embedder's dim when it is not there, or check
//  its dim. 0, or -1 with self->error.

static int
s_index_ready (s_build_t *self, size_t dim)
{
    if (self->index_dim) {
        if (self->index_dim == dim)
            return 0;
        self->error = zsys_sprintf ("index '%s' has dim %zu; the embedder gives %zu: name "
                                    "another --index or drop that one", self->opts->index,
                                    self->index_dim, dim);
        return -1;
    }
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_kv_str (pack, "name", self->opts->index);
    lh_pack_kv_uint (pack, "dim", dim);
    lh_pack_kv_str (pack, "metric", "cosine");
    lh_pack_close (pack);
    size_t size;
    const void *data = lh_pack_data (pack, &size);
    lh_reply_t *reply = NULL;
    uint32_t status = s_call (self, "vectord", "create", data, size, &reply);
    lh_pack_destroy (&pack);
    if (status != 201 && status != 409) {
        const char *reason = lh_reply_reason (reply);
        self->error = zsys_sprintf ("creating index '%s': vectord answered %u: %s",
                                    self->opts->index, status, reason? reason: "no reason given");
        lh_reply_destroy (&reply);
        return -1;
    }
    lh_reply_destroy (&reply);
    self->index_dim = dim;
    return 0;
}


//  --------------------------------------------------------------------------
//  The body of a batch's add: {name, items: [{id, vector, metadata}]}

static lh_pack_t *
s_add_pack (s_build_t *self, s_batch_t *batch)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_kv_str (pack, "name", self->opts->index);
    lh_pack_str (pack, "items");
    lh_pack_open_array (pack);
    for (size_t index = 0; index < batch->count; index++) {
        const msgpack_object *row = batch->row [index];
        lh_pack_open_map (pack);
        lh_pack_kv_str (pack, "id", batch->ids [index]);
        lh_pack_str (pack, "vector");
        lh_pack_bin (pack, batch->vectors + index * batch->dim, batch->dim * sizeof (float));
        lh_pack_str (pack, "metadata");
        lh_pack_open_map (pack);
        for (size_t column = 0; column < self->metadata_count; column++) {
            const msgpack_object *value = self->metadata_at [column] < row->via.array.size?
                                          &row->via.array.ptr [self->metadata_at [column]]: NULL;
            if (value && value->type != MSGPACK_OBJECT_NIL) {
                lh_pack_str (pack, self->metadata_names [column]);
                lh_pack_object (pack, value);
            }
        }
        lh_pack_close (pack);
        lh_pack_close (pack);
    }
    lh_pack_close (pack);
    lh_pack_close (pack);
    return pack;
}


//  --------------------------------------------------------------------------
//  Count a failed batch and tell the caller

static void
s_batch_failed (s_build_t *self, s_batch_t *batch, const char *stage, const char *why)
{
    self->stats->failed_batches++;
    self->stats->failed_rows += batch->count;
    if (self->opts->failure) {
        char *message = zsys_sprintf ("batch %" PRIu64 " (%zu rows, ids %s..%s): %s failed: %s",
                                      batch->number, batch->count, batch->ids [0],
                                      batch->ids [batch->count - 1], stage, why);
        self->opts->failure (self->opts->arg, message);
        free (message);
    }
}


//  --------------------------------------------------------------------------
//  Run the pipeline until every page is read and every batch added or
//  failed. 0, or -1 with self->error.

static int
s_run (s_build_t *self)
{
    s_batch_t *reading = NULL, *embedded = NULL;
    uint64_t number = 0;
    size_t embed_slots = (self->batch + self->texts_max - 1) / self->texts_max;
    lh_pack_t **packs = (lh_pack_t **) calloc (embed_slots + 2, sizeof (lh_pack_t *));
    lh_call_t *calls = (lh_call_t *) calloc (embed_slots + 2, sizeof (lh_call_t));
    assert (packs && calls);
    while (!self->error && (!self->read_all || reading || embedded)) {
        //  This step's calls: add, embeds, read
        size_t count = 0, add_at = SIZE_MAX, embed_at = 0, embeds = 0, read_at = SIZE_MAX;
        if (embedded) {
            add_at = count;
            packs [count] = s_add_pack (self, embedded);
            calls [count++] = (lh_call_t) { .svc = "vectord", .op = "add" };
        }
        if (reading) {
            embed_at = count;
            embeds = s_embed_packs (self, reading, packs + count);
            for (size_t index = 0; index < embeds; index++)
                calls [count++] = (lh_call_t) { .svc = "embedd", .op = "embed" };
        }
        if (!self->read_all) {
            read_at = count;
            packs [count] = s_read_pack (self);
            calls [count++] = (lh_call_t) { .svc = "queryd", .op = "sql" };
        }
        for (size_t index = 0; index < count; index++)
            calls [index].body = lh_pack_data (packs [index], &calls [index].size);
        lh_call_opts_t opts = { .timeout_ms = self->timeout_ms, .queue = true };
        lh_client_call_all (self->client, calls, count, &opts);

        //  The add of the batch embedded last step
        if (add_at != SIZE_MAX) {
            uint32_t status = s_settle (self, &calls [add_at]);
            if (status == 200) {
                self->stats->added += embedded->count;
                self->stats->batches++;
            }
            else {
                const char *reason = lh_reply_reason (calls [add_at].reply);
                char *why = zsys_sprintf ("vectord answered %u: %s", status,
                                          reason? reason: "no reason given");
                s_batch_failed (self, embedded, "add", why);
                free (why);
            }
            s_batch_destroy (&embedded);
        }
        //  The embeds of the batch read last step
        if (reading) {
            char *why = NULL;
            if (s_embed_take (self, reading, calls + embed_at, embeds, &why)) {
                s_batch_failed (self, reading, "embed", why);
                free (why);
                s_batch_destroy (&reading);
            }
            else
            if (s_index_ready (self, reading->dim) == 0) {
                embedded = reading;
                reading = NULL;
            }
        }
        //  The next page
        if (read_at != SIZE_MAX && !self->error) {
            uint32_t status = s_settle (self, &calls [read_at]);
            if (status == 200) {
                s_batch_t *batch = s_batch_new (self, &calls [read_at].reply, ++number);
                if (batch) {
                    self->stats->read += batch->rows;
                    if (batch->count)
                        reading = batch;
                    else
                        s_batch_destroy (&batch);
                }
            }
            else {
                const char *reason = lh_reply_reason (calls [read_at].reply);
                self->error = zsys_sprintf ("reading the rows after rowid %" PRId64 ": queryd "
                                            "answered %u: %s", self->last_rowid, status,
                                            reason? reason: "no reason given");
            }
        }
        for (size_t index = 0; index < count; index++) {
            lh_reply_destroy (&calls [index].reply);
            lh_pack_destroy (&packs [index]);
        }
        self->stats->elapsed_ms = zclock_mono () - self->started;
        if (self->opts->progress)
            self->opts->progress (self->opts->arg, self->stats, false);
    }
    s_batch_destroy (&reading);
    s_batch_destroy (&embedded);
    free (packs);
    free (calls);
    return self->error? -1: 0;
}


//  --------------------------------------------------------------------------
//  Build the corpus

int
lh_corpus_build (lh_client_t *client, const lh_corpus_opts_t *opts,
                 lh_corpus_stats_t *stats, char **error_p)
{
    assert (client && opts && stats && error_p);
    assert (opts->dataset && opts->id_column && opts->index);
    assert (opts->text_columns && opts->text_count > 0 && opts->text_count <= 64);
    memset (stats, 0, sizeof (*stats));
    *error_p = NULL;
    s_build_t self = {
        .client = client, .opts = opts, .stats = stats,
        .batch = opts->batch? opts->batch: LH_CORPUS_BATCH,
        .texts_max = opts->texts_max? opts->texts_max: 256,
        .text_max = opts->text_max? opts->text_max: 65536,
        .timeout_ms = opts->timeout_ms? opts->timeout_ms: LH_CORPUS_TIMEOUT,
        .last_rowid = INT64_MIN,
        .started = zclock_mono ()
    };
    //  Metadata: the columns asked for, else the id and the text columns
    self.metadata_count = opts->metadata_count? opts->metadata_count: 1 + opts->text_count;
    self.metadata_names = (const char **) calloc (self.metadata_count, sizeof (char *));
    self.metadata_at = (size_t *) calloc (self.metadata_count, sizeof (size_t));
    assert (self.metadata_names && self.metadata_at);
    for (size_t index = 0; index < self.metadata_count; index++)
        self.metadata_names [index] = opts->metadata_count? opts->metadata_columns [index]:
                                      index == 0? opts->id_column: opts->text_columns [index - 1];
    int rc = s_prepare (&self);
    if (rc == 0)
        rc = s_run (&self);
    //  The index's count at the end
    if (self.index_dim) {
        lh_pack_t *pack = lh_pack_new ();
        lh_pack_open_map (pack);
        lh_pack_kv_str (pack, "name", opts->index);
        lh_pack_close (pack);
        size_t size;
        const void *data = lh_pack_data (pack, &size);
        lh_reply_t *reply = NULL;
        if (s_call (&self, "vectord", "info", data, size, &reply) == 200)
            lh_obj_uint (lh_reply_object (reply), "count", &stats->index_count);
        lh_reply_destroy (&reply);
        lh_pack_destroy (&pack);
    }
    stats->elapsed_ms = zclock_mono () - self.started;
    if (opts->progress)
        opts->progress (opts->arg, stats, true);
    free (self.sql);
    free (self.metadata_names);
    free (self.metadata_at);
    if (rc) {
        *error_p = self.error;
        return -1;
    }
    return stats->failed_batches? 1: 0;
}


//  --------------------------------------------------------------------------
//  The command line: progress and failures on stderr

typedef struct {
    bool tty;                           //  stderr is a terminal
    int64_t printed;                    //  when the last line was printed
} s_show_t;

//  Seconds as "1h02m", "3m12s", "45s"
static void
s_duration (double seconds, char *text, size_t size)
{
    uint64_t whole = seconds > 0? (uint64_t) (seconds + 0.5): 0;
    if (whole >= 3600)
        snprintf (text, size, "%" PRIu64 "h%02" PRIu64 "m", whole / 3600, whole / 60 % 60);
    else
    if (whole >= 60)
        snprintf (text, size, "%" PRIu64 "m%02" PRIu64 "s", whole / 60, whole % 60);
    else
        snprintf (text, size, "%" PRIu64 "s", whole);
}

static void
s_show_progress (void *arg, const lh_corpus_stats_t *stats, bool final)
{
    s_show_t *show = (s_show_t *) arg;
    int64_t now = zclock_mono ();
    if (!final && !show->tty && now - show->printed < S_PROGRESS_MS)
        return;
    if (!final && show->tty && now - show->printed < 200)
        return;
    show->printed = now;
    double seconds = stats->elapsed_ms / 1000.0;
    double rate = seconds > 0? stats->read / seconds: 0;
    char eta [32] = "?";
    if (rate > 0 && stats->total >= stats->read)
        s_duration ((stats->total - stats->read) / rate, eta, sizeof (eta));
    fprintf (stderr, "%s%" PRIu64 "/%" PRIu64 " rows read, %" PRIu64 " added, %.0f rows/s, "
             "ETA %s, %" PRIu64 " failed batches%s", show->tty? "\r\033[K": "", stats->read,
             stats->total, stats->added, rate, final? "0s": eta, stats->failed_batches,
             show->tty && !final? "": "\n");
    fflush (stderr);
}

static void
s_show_failure (void *arg, const char *message)
{
    s_show_t *show = (s_show_t *) arg;
    fprintf (stderr, "%slakehouse: corpus build: %s\n", show->tty? "\r\033[K": "", message);
}

//  Complain about the command line; returns the usage exit code
static int
s_bad_usage (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    fprintf (stderr, "lakehouse corpus: ");
    vfprintf (stderr, format, args);
    fprintf (stderr, "\n(lakehouse --help for usage)\n");
    va_end (args);
    return S_EXIT_USAGE;
}

//  The summary line: the stats as one JSON object on stdout
static void
s_show_summary (const lh_corpus_opts_t *opts, const lh_corpus_stats_t *stats)
{
    double seconds = stats->elapsed_ms / 1000.0;
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_kv_str (pack, "dataset", opts->dataset);
    lh_pack_kv_str (pack, "index", opts->index);
    lh_pack_kv_uint (pack, "rows", stats->total);
    lh_pack_kv_uint (pack, "read", stats->read);
    lh_pack_kv_uint (pack, "added", stats->added);
    lh_pack_kv_uint (pack, "skipped", stats->skipped);
    lh_pack_kv_uint (pack, "batches", stats->batches);
    lh_pack_kv_uint (pack, "failed_batches", stats->failed_batches);
    lh_pack_kv_uint (pack, "failed_rows", stats->failed_rows);
    lh_pack_kv_uint (pack, "index_count", stats->index_count);
    lh_pack_kv_double (pack, "seconds", seconds);
    lh_pack_kv_double (pack, "rows_per_s", seconds > 0? stats->read / seconds: 0.0);
    lh_pack_close (pack);
    size_t size;
    const void *data = lh_pack_data (pack, &size);
    char *text = lh_json_text_from_msgpack (data, size, NULL, NULL);
    printf ("%s\n", text? text: "{}");
    fflush (stdout);
    free (text);
    lh_pack_destroy (&pack);
}

//  Split a comma-separated list into a fresh array of borrowed pointers
//  into text (which is cut in place); returns the count
static size_t
s_split (char *text, const char ***list_p)
{
    size_t count = 1;
    for (const char *at = text; *at; at++)
        count += *at == ',';
    const char **list = (const char **) calloc (count, sizeof (char *));
    assert (list);
    size_t used = 0;
    for (char *part = strtok (text, ","); part; part = strtok (NULL, ","))
        if (*part)
            list [used++] = part;
    *list_p = list;
    return used;
}

int
lh_corpus_command (lh_config_t *config, zlist_t *words)
{
    int argc = (int) zlist_size (words);
    char **argv = (char **) calloc ((size_t) argc + 1, sizeof (char *));
    assert (argv);
    int argn = 0;
    for (char *word = (char *) zlist_first (words); word; word = (char *) zlist_next (words))
        argv [argn++] = word;
    lh_corpus_opts_t opts = { .texts_max = (size_t) lh_config_int (config, "embedd/texts_max"),
                              .text_max = (size_t) lh_config_int (config, "embedd/text_max") };
    const char *texts = NULL, *metadata = NULL, *batch = NULL, *timeout = NULL;
    int rc = 0;
    if (argc < 1 || !streq (argv [0], "build"))
        rc = s_bad_usage ("give 'corpus build --dataset NAME --id-column C --text-columns A,B "
                      "--index NAME'");
    for (argn = 1; rc == 0 && argn < argc; argn++) {
        int taken = 0;
        const char *names [] = { "--dataset", "--id-column", "--text-columns", "--index",
                                 "--metadata-columns", "--batch", "--model", "--timeout-ms" };
        const char **values [] = { &opts.dataset, &opts.id_column, &texts, &opts.index,
                                   &metadata, &batch, &opts.model, &timeout };
        for (size_t option = 0; option < 8 && taken == 0; option++)
            taken = lh_tool_option (argc, argv, &argn, names [option], values [option]);
        if (taken < 0)
            rc = s_bad_usage ("%s needs a value", argv [argn]);
        else
        if (taken == 0)
            rc = s_bad_usage ("unexpected argument '%s'", argv [argn]);
    }
    uint64_t number = 0;
    char *text_list = texts? strdup (texts): NULL;
    char *metadata_list = metadata? strdup (metadata): NULL;
    if (rc == 0 && (!opts.dataset || !opts.id_column || !texts || !opts.index))
        rc = s_bad_usage ("--dataset, --id-column, --text-columns and --index are required");
    if (rc == 0 && batch && lh_tool_number (batch, 1, LH_CORPUS_BATCH_MAX, &number) == 0)
        opts.batch = (size_t) number;
    else
    if (rc == 0 && batch)
        rc = s_bad_usage ("--batch '%s': give 1 to %d rows", batch, LH_CORPUS_BATCH_MAX);
    if (rc == 0 && timeout && lh_tool_number (timeout, 1, 3600000, &number) == 0)
        opts.timeout_ms = (uint32_t) number;
    else
    if (rc == 0 && timeout)
        rc = s_bad_usage ("--timeout-ms '%s': give 1 to 3600000", timeout);
    if (rc == 0) {
        opts.text_count = s_split (text_list, &opts.text_columns);
        if (metadata_list)
            opts.metadata_count = s_split (metadata_list, &opts.metadata_columns);
        if (opts.text_count == 0 || opts.text_count > 64)
            rc = s_bad_usage ("--text-columns: give 1 to 64 column names, comma-separated");
    }
    zcert_t *cert = NULL;
    char *server_key = NULL, *error = NULL;
    lh_client_t *client = NULL;
    if (rc == 0 && !(client = lh_tool_connect (config, "lakehouse corpus", &cert, &server_key)))
        rc = S_EXIT_FAILURE;
    if (rc == 0) {
        s_show_t show = { .tty = isatty (STDERR_FILENO), .printed = zclock_mono () };
        opts.progress = s_show_progress;
        opts.failure = s_show_failure;
        opts.arg = &show;
        lh_corpus_stats_t stats;
        int built = lh_corpus_build (client, &opts, &stats, &error);
        s_show_summary (&opts, &stats);
        if (built < 0)
            fprintf (stderr, "lakehouse corpus: %s\n", error);
        else
        if (built > 0)
            fprintf (stderr, "lakehouse corpus: %" PRIu64 " batch(es) failed (%" PRIu64
                     " rows); re-run to retry them\n", stats.failed_batches, stats.failed_rows);
        rc = built? S_EXIT_FAILURE: 0;
    }
    lh_client_destroy (&client);
    zcert_destroy (&cert);
    free (server_key);
    free (error);
    free ((void *) opts.text_columns);
    free ((void *) opts.metadata_columns);
    free (text_list);
    free (metadata_list);
    free (argv);
    return rc;
}


//  --------------------------------------------------------------------------
//  Self test: a fake queryd serving an in-memory table (rowids with gaps,
//  one page cut short, one 503), the real embedd and vectord

#include "lh_testbus.h"
#include "embedd.h"
#include "vectord.h"

#define S_TEST_ROWS     700             //  rows of the fake table
#define S_TEST_LONG     40              //  this row's note is too long for embedd
#define S_TEST_NO_ID    13              //  this row has no id
#define S_TEST_NO_TEXT  20              //  this row has no text

static bool s_test_long = true;         //  row S_TEST_LONG too long to embed
static int s_test_pages;                //  page reads answered
static int s_test_busy;                 //  503s answered

//  The fake table's value of a column at row index
static void
s_test_value (lh_pack_t *pack, size_t row, const char *column)
{
    static const char *roles [] = { "welder", "cook", "nurse", "driver", "machinist" };
    if (streq (column, "id")) {
        if (row == S_TEST_NO_ID)
            lh_pack_nil (pack);
        else
            lh_pack_int (pack, (int64_t) (1000 + row));
    }
    else
    if (streq (column, "name")) {
        char name [32];
        snprintf (name, sizeof (name), "Worker %zu", row);
        lh_pack_str (pack, row == S_TEST_NO_TEXT? "": name);
    }
    else
    if (streq (column, "role"))
        lh_pack_str (pack, row == S_TEST_NO_TEXT? NULL: roles [row % 5]);
    else
    if (streq (column, "note")) {
        char note [600];
        size_t size = row == S_TEST_LONG && s_test_long? 500: 10;
        memset (note, 'n', size);
        note [size] = 0;
        lh_pack_str (pack, row == S_TEST_NO_TEXT? NULL: note);
    }
    else
        lh_pack_nil (pack);
}

//  sql: LIMIT 0 -> columns; count(*) -> the count; else a page of rows
//  with rowid (3 x row + 1) > ?1
static void
s_test_sql (lh_request_t *request, void *state)
{
    const msgpack_object *body = lh_request_object (request);
    char *sql = lh_obj_strdup (lh_obj_get (body, "sql"));
    assert (sql);
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    if (strstr (sql, "LIMIT 0")) {
        lh_pack_str (pack, "columns");
        lh_pack_open_array (pack);
        const char *names [] = { "id", "name", "role", "note" };
        for (size_t index = 0; index < 4; index++) {
            lh_pack_open_map (pack);
            lh_pack_kv_str (pack, "name", names [index]);
            lh_pack_close (pack);
        }
        lh_pack_close (pack);
        lh_pack_str (pack, "rows");
        lh_pack_array (pack, 0);
    }
    else
    if (strstr (sql, "count(*)")) {
        lh_pack_str (pack, "rows");
        lh_pack_array (pack, 1);
        lh_pack_array (pack, 1);
        lh_pack_uint (pack, S_TEST_ROWS);
    }
    else {
        if (++s_test_pages == 3 && s_test_busy == 0) {
            s_test_busy++;
            lh_pack_destroy (&pack);
            free (sql);
            lh_request_fail_retry (request, 503, "busy", 10, "try again");
            return;
        }
        //  The select list: "SELECT rowid, "a", "b" FROM ..."
        zlistx_t *columns = zlistx_new ();
        zlistx_set_destructor (columns, (zlistx_destructor_fn *) zstr_free);
        char *list = strstr (sql, ", ") + 2;
        *strstr (list, " FROM ") = 0;
        for (char *name = strtok (list, ", "); name; name = strtok (NULL, ", ")) {
            char *unquoted = strdup (name + 1);
            unquoted [strlen (unquoted) - 1] = 0;
            zlistx_add_end (columns, unquoted);
        }
        const msgpack_object *params = lh_obj_get (body, "params");
        int64_t after = params->via.array.ptr [0].via.i64;
        uint64_t limit = 0;
        assert (lh_obj_uint (body, "limit", &limit));
        if (s_test_pages == 5)
            limit = limit / 2;          //  cut short, as a full reply would be
        lh_pack_str (pack, "rows");
        lh_pack_open_array (pack);
        for (size_t row = 0; row < S_TEST_ROWS && limit; row++) {
            int64_t rowid = 3 * (int64_t) row + 1;
            if (rowid <= after)
                continue;
            lh_pack_open_array (pack);
            lh_pack_int (pack, rowid);
            for (char *name = (char *) zlistx_first (columns); name;
                 name = (char *) zlistx_next (columns))
                s_test_value (pack, row, name);
            lh_pack_close (pack);
            limit--;
        }
        lh_pack_close (pack);
        zlistx_destroy (&columns);
    }
    lh_pack_close (pack);
    lh_request_reply_pack (request, 200, &pack);
    free (sql);
}

static const lh_op_t s_test_ops [] = { { "sql", s_test_sql }, { NULL, NULL } };
static const lh_service_t s_test_queryd = { .name = "queryd", .ops = s_test_ops };

static void
s_test_failure (void *arg, const char *message)
{
    (*(int *) arg)++;
    assert (strstr (message, "embed failed") && strstr (message, "413"));
}

void
lh_corpus_test (bool verbose)
{
    printf (" * lh_corpus: ");
    lh_testbus_t *bus = lh_testbus_new ("corpus");
    lh_testbus_set (bus, "embedd/dim", "16");
    lh_testbus_set (bus, "embedd/text_max", "200");
    lh_testbus_set (bus, "vectord/snapshot_ms", "0");
    lh_testbus_set (bus, "vectord/map_bytes", "67108864");
    lh_testbus_start (bus, &s_test_queryd, 1);
    lh_testbus_start (bus, &lh_embedd_service, 1);
    lh_testbus_start (bus, &lh_vectord_service, 1);
    lh_client_t *client = lh_testbus_client (bus);

    const char *texts [] = { "name", "role", "note" };
    int failures = 0;
    lh_corpus_opts_t opts = { .dataset = "roster", .id_column = "id", .text_columns = texts,
                              .text_count = 3, .index = "people", .batch = 64,
                              .text_max = 1000, .timeout_ms = 5000,
                              .failure = s_test_failure, .arg = &failures };
    lh_corpus_stats_t stats;
    char *error = NULL;
    //  One batch fails (a text over embedd/text_max): counted, the rest in
    int rc = lh_corpus_build (client, &opts, &stats, &error);
    if (verbose)
        printf ("\n    rc %d: total %" PRIu64 " read %" PRIu64 " added %" PRIu64 " skipped %" PRIu64
                " failed %" PRIu64 " (%" PRIu64 " rows) index %" PRIu64, rc, stats.total, stats.read,
                stats.added, stats.skipped, stats.failed_batches, stats.failed_rows,
                stats.index_count);
    if (verbose)
        fflush (stdout);
    assert (rc == 1 && error == NULL && failures == 1);
    assert (stats.total == S_TEST_ROWS && stats.read == S_TEST_ROWS && stats.skipped == 2);
    assert (stats.failed_batches == 1 && stats.failed_rows > 0 && stats.failed_rows <= 64);
    assert (stats.added == S_TEST_ROWS - 2 - stats.failed_rows);
    assert (stats.index_count == stats.added);
    assert (s_test_busy == 1);          //  the 503 was retried

    //  Re-run with the row fixed: every row in, nothing duplicated
    s_test_long = false;
    rc = lh_corpus_build (client, &opts, &stats, &error);
    assert (rc == 0 && stats.added == S_TEST_ROWS - 2 && stats.index_count == S_TEST_ROWS - 2);
    assert (stats.failed_batches == 0 && failures == 1);
    //  Metadata: the id and text columns (nil left out)
    lh_reply_t *reply = lh_testbus_call (bus, "embedd", "embed", "{\"texts\": [\"Worker 8, driver, nnnnnnnnnn\"]}");
    const msgpack_object *vector = &lh_obj_get (lh_reply_object (reply), "vectors")->via.array.ptr [0];
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_kv_str (pack, "name", "people");
    lh_pack_str (pack, "vector");
    lh_pack_object (pack, vector);
    lh_pack_kv_int (pack, "k", 1);
    lh_pack_close (pack);
    size_t size;
    const void *data = lh_pack_data (pack, &size);
    lh_reply_t *found = lh_testbus_call_raw (bus, "vectord", "search", data, size);
    char *text = lh_testbus_json (found);
    if (verbose)
        printf ("\n    %s", text);
    fflush (stdout);
    assert (strstr (text, "\"id\":\"1008\"") && strstr (text, "\"role\":\"driver\"")
            && strstr (text, "\"id\":1008"));
    zstr_free (&text);
    lh_reply_destroy (&found);
    lh_reply_destroy (&reply);
    lh_pack_destroy (&pack);

    //  A column the dataset lacks, an index of another dim: errors, nothing added
    const char *wrong [] = { "name", "salary" };
    lh_corpus_opts_t bad = opts;
    bad.text_columns = wrong;
    bad.text_count = 2;
    rc = lh_corpus_build (client, &bad, &stats, &error);
    assert (rc == -1 && error && strstr (error, "no column 'salary'"));
    zstr_free (&error);
    assert (lh_testbus_status (bus, "vectord", "create", "{\"name\": \"narrow\", \"dim\": 3}") == 201);
    bad = opts;
    bad.index = "narrow";
    rc = lh_corpus_build (client, &bad, &stats, &error);
    if (verbose)
        printf ("\n    %s", error);
    assert (rc == -1 && error && strstr (error, "has dim 3") && stats.added == 0);
    zstr_free (&error);
    lh_testbus_destroy (&bus);
    printf ("OK\n");
}
