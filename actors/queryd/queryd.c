/*  =========================================================================
    queryd - SQL over the catalogued datasets; see queryd.h, docs/queryd.md
    =========================================================================
*/

#include "queryd.h"
#include "lh_storage.h"
#include "lh_log.h"
#include <sqlite3.h>

#define S_NAME          "queryd"
#define S_SLOTS_MAX     10              //  SQLite's attach limit here
#define S_SQL_MAX       (1024 * 1024)   //  longest statement text
#define S_PROGRESS_OPS  1000            //  VM steps between deadline checks
#define S_TABLE_MAX     300             //  longest table name we look up

//  A dataset the catalog knows
typedef struct {
    char *name;                         //  dataset (table) name
    char *key;                          //  storaged key of its table file
} s_dataset_t;

typedef struct {
    uint32_t timeout_ms;                //  statement timeout
    uint64_t row_limit;                 //  rows when no limit is given
    uint64_t row_max;                   //  largest limit
    size_t reply_max;                   //  largest reply, bytes
    size_t attach_max;                  //  datasets attached per connection
    int64_t refresh_ms;                 //  full catalog refresh period
    uint32_t storage_timeout_ms;        //  deadline of calls we make
    int64_t mmap_bytes;                 //  mmap_size of attached files
    char *cache_dir;                    //  local cache of table files
    char *endpoint;                     //  broker endpoint (follower)
    char *server_key;                   //  broker's CURVE key, or NULL
    lh_link_t link;                     //  link for the follower
    pthread_mutex_t lock;               //  guards what follows
    zhash_t *datasets;                  //  lowercased name -> s_dataset_t
    uint64_t version;                   //  bumped on every catalog change
    zlist_t *pool;                      //  idle connections
    zactor_t *follower;                 //  catalog follower thread
} s_state_t;

//  One attached dataset of a connection
typedef struct {
    char alias [8];                     //  schema name, "ds0" ..
    char *name;                         //  lowercased dataset name, or NULL
    char *key;                          //  version attached
    uint64_t used;                      //  LRU stamp
    bool pinned;                        //  named by the statement at hand
} s_slot_t;

//  A connection, used by one request at a time
typedef struct {
    sqlite3 *db;                        //  in-memory main + attached files
    s_slot_t slots [S_SLOTS_MAX];       //  attached datasets
    uint64_t clock;                     //  LRU clock
    uint64_t version;                   //  catalog version last checked
    bool internal;                      //  our own ATTACH/DETACH/PRAGMA
    char denied [300];                  //  why the authorizer refused
    bool denied_weak;                   //  a generic reason, may be replaced
    int64_t deadline;                   //  statement deadline, mono ms
    lh_request_t *request;              //  request being served
} s_conn_t;


//  --------------------------------------------------------------------------
//  Destroy a dataset entry (zhash destructor)

static void
s_dataset_destroy (void *item)
{
    s_dataset_t *self = (s_dataset_t *) item;
    if (self) {
        free (self->name);
        free (self->key);
        free (self);
    }
}


//  --------------------------------------------------------------------------
//  Lowercase copy of a name (SQL names are case-insensitive in ASCII)

static char *
s_lower (const char *name, size_t size)
{
    char *lower = (char *) malloc (size + 1);
    assert (lower);
    for (size_t index = 0; index < size; index++)
        lower [index] = (char) tolower ((unsigned char) name [index]);
    lower [size] = 0;
    return lower;
}


//  --------------------------------------------------------------------------
//  Insert or replace a dataset from a manifest; returns true if it was
//  usable (a name and at least one object). Takes the lock.

static bool
s_catalog_put (s_state_t *self, const msgpack_object *manifest)
{
    const char *name;
    size_t name_size;
    const msgpack_object *objects = lh_obj_get (manifest, "objects");
    if (!lh_obj_str (manifest, "name", &name, &name_size) || name_size == 0
    ||  !objects || objects->type != MSGPACK_OBJECT_ARRAY || objects->via.array.size == 0)
        return false;
    char *key = lh_obj_strdup (&objects->via.array.ptr [0]);
    if (!key)
        return false;
    s_dataset_t *dataset = (s_dataset_t *) zmalloc (sizeof (s_dataset_t));
    assert (dataset);
    dataset->name = (char *) malloc (name_size + 1);
    assert (dataset->name);
    memcpy (dataset->name, name, name_size);
    dataset->name [name_size] = 0;
    dataset->key = key;
    char *lower = s_lower (name, name_size);
    pthread_mutex_lock (&self->lock);
    s_dataset_t *old = (s_dataset_t *) zhash_lookup (self->datasets, lower);
    if (!old || !streq (old->key, key))
        self->version++;
    zhash_update (self->datasets, lower, dataset);
    zhash_freefn (self->datasets, lower, s_dataset_destroy);
    pthread_mutex_unlock (&self->lock);
    free (lower);
    return true;
}


//  --------------------------------------------------------------------------
//  Forget a dataset by name. Takes the lock.

static void
s_catalog_remove (s_state_t *self, const char *name, size_t size)
{
    char *lower = s_lower (name, size);
    pthread_mutex_lock (&self->lock);
    if (zhash_lookup (self->datasets, lower)) {
        zhash_delete (self->datasets, lower);
        self->version++;
    }
    pthread_mutex_unlock (&self->lock);
    free (lower);
}


//  --------------------------------------------------------------------------
//  The current key of a dataset (lowercased name), copied, or NULL

static char *
s_catalog_key (s_state_t *self, const char *lower)
{
    pthread_mutex_lock (&self->lock);
    s_dataset_t *dataset = (s_dataset_t *) zhash_lookup (self->datasets, lower);
    char *key = dataset? strdup (dataset->key): NULL;
    pthread_mutex_unlock (&self->lock);
    return key;
}


//  --------------------------------------------------------------------------
//  Apply catalogd's answer to a get of one dataset (register event, or a
//  table name the local catalog does not know): record it (200) or forget
//  it (404). Returns 1 if it exists, 0 if not, -1 if catalogd did not say.

static int
s_catalog_apply (s_state_t *self, const char *name, lh_reply_t *reply)
{
    uint32_t status = lh_reply_status (reply);
    if (status == LH_ST_OK)
        return s_catalog_put (self, lh_reply_object (reply))? 1: 0;
    if (status == LH_ST_NOT_FOUND) {
        s_catalog_remove (self, name, strlen (name));
        return 0;
    }
    return -1;
}


//  --------------------------------------------------------------------------
//  The body of catalogd.get {name}, in a pack

static lh_pack_t *
s_catalog_get_body (const char *name)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_str (pack, "name", name);
    return pack;
}


//  --------------------------------------------------------------------------
//  Replace the whole catalog with catalogd's list. Returns 0 or -1.

static int
s_catalog_refresh (s_state_t *self, lh_job_t *job)
{
    lh_reply_t *reply;
    lh_job_call (job, "catalogd", "list", "\x80", 1, self->storage_timeout_ms, &reply);
    const msgpack_object *list = lh_reply_status (reply) == LH_ST_OK?
                                 lh_obj_get (lh_reply_object (reply), "datasets"): NULL;
    if (!list || list->type != MSGPACK_OBJECT_ARRAY) {
        lh_debug (S_NAME, job->trace, "catalog refresh failed: %u", lh_reply_status (reply));
        lh_reply_destroy (&reply);
        return -1;
    }
    zhash_t *fresh = zhash_new ();
    for (uint32_t index = 0; index < list->via.array.size; index++) {
        const msgpack_object *manifest = &list->via.array.ptr [index];
        const char *name;
        size_t name_size;
        const msgpack_object *objects = lh_obj_get (manifest, "objects");
        if (!lh_obj_str (manifest, "name", &name, &name_size) || name_size == 0
        ||  !objects || objects->type != MSGPACK_OBJECT_ARRAY || objects->via.array.size == 0)
            continue;
        char *key = lh_obj_strdup (&objects->via.array.ptr [0]);
        if (!key)
            continue;
        s_dataset_t *dataset = (s_dataset_t *) zmalloc (sizeof (s_dataset_t));
        assert (dataset);
        dataset->name = (char *) malloc (name_size + 1);
        assert (dataset->name);
        memcpy (dataset->name, name, name_size);
        dataset->name [name_size] = 0;
        dataset->key = key;
        char *lower = s_lower (name, name_size);
        zhash_update (fresh, lower, dataset);
        zhash_freefn (fresh, lower, s_dataset_destroy);
        free (lower);
    }
    lh_reply_destroy (&reply);
    pthread_mutex_lock (&self->lock);
    zhash_t *old = self->datasets;
    self->datasets = fresh;
    self->version++;
    pthread_mutex_unlock (&self->lock);
    zhash_destroy (&old);
    return 0;
}


//  --------------------------------------------------------------------------
//  The follower: subscribes to catalog.changed, applies each event, and
//  refreshes the whole catalog every refresh_ms. Runs until $TERM.

static void
s_follower (zsock_t *pipe, void *arg)
{
    s_state_t *self = (s_state_t *) arg;
    zsock_signal (pipe, 0);
    lh_client_t *client = NULL;
    int64_t next_refresh = 0;
    zpoller_t *poller = zpoller_new (pipe, NULL);
    while (!zsys_interrupted) {
        if (zpoller_wait (poller, client? 0: 500) == pipe) {
            char *command = zstr_recv (pipe);
            bool term = !command || streq (command, "$TERM");
            zstr_free (&command);
            if (term)
                break;
        }
        if (!client) {
            client = lh_client_new (&self->link, "queryd-follower");
            if (!client)
                continue;
            lh_client_subscribe (client, "catalog.changed");
            next_refresh = 0;
        }
        if (zclock_mono () >= next_refresh) {
            lh_job_t job;
            lh_job_start (&job, client, NULL, self->storage_timeout_ms);
            bool ok = s_catalog_refresh (self, &job) == 0;
            next_refresh = zclock_mono () + (ok? self->refresh_ms: 1000);
        }
        lh_reply_t *event = NULL;
        if (lh_client_recv (client, &event, 200) != 0)
            continue;
        if (lh_reply_type (event) == LH_T_PUB) {
            const msgpack_object *body = lh_reply_object (event);
            const char *op, *name;
            size_t op_size, name_size;
            if (lh_obj_str (body, "op", &op, &op_size)
            &&  lh_obj_str (body, "name", &name, &name_size) && name_size > 0) {
                if (op_size == 6 && memcmp (op, "delete", 6) == 0)
                    s_catalog_remove (self, name, name_size);
                else {
                    char *copy = s_lower (name, name_size);
                    memcpy (copy, name, name_size);
                    //  The event's trace, when it carries one, goes on
                    const lh_header_t *header = lh_reply_header (event);
                    lh_job_t job;
                    lh_job_start (&job, client, (header->has & LH_H_TR)? header->tr: NULL,
                                  self->storage_timeout_ms);
                    lh_pack_t *pack = s_catalog_get_body (copy);
                    lh_reply_t *reply;
                    lh_job_call_pack (&job, "catalogd", "get", &pack, self->storage_timeout_ms,
                                      &reply);
                    s_catalog_apply (self, copy, reply);
                    lh_reply_destroy (&reply);
                    free (copy);
                }
            }
        }
        lh_reply_destroy (&event);
    }
    zpoller_destroy (&poller);
    lh_client_destroy (&client);
}


//  --------------------------------------------------------------------------
//  The authorizer: a read-only SQL surface. Our own ATTACH, DETACH and
//  PRAGMA run with self->internal set.

static int
s_authorize (void *arg, int action, const char *one, const char *two,
             const char *schema, const char *trigger)
{
    s_conn_t *self = (s_conn_t *) arg;
    if (self->internal)
        return SQLITE_OK;
    static const char *s_pragmas [] = {
        "table_info", "table_xinfo", "index_list", "index_info", "index_xinfo",
        "foreign_key_list", "collation_list", "function_list", NULL
    };
    const char *reason = NULL;
    switch (action) {
        case SQLITE_SELECT:
        case SQLITE_READ:
        case SQLITE_RECURSIVE:
            return SQLITE_OK;
        case SQLITE_FUNCTION:
            if (two && strcasecmp (two, "load_extension") == 0)
                reason = "load_extension is not allowed: extensions cannot be loaded";
            else
                return SQLITE_OK;
            break;
        case SQLITE_PRAGMA:
            for (size_t index = 0; one && s_pragmas [index]; index++)
                if (strcasecmp (one, s_pragmas [index]) == 0)
                    return SQLITE_OK;
            snprintf (self->denied, sizeof (self->denied),
                      "PRAGMA %.64s is not allowed: queryd is read-only (only schema "
                      "reads such as PRAGMA table_info are)", one? one: "");
            return SQLITE_DENY;
        case SQLITE_ATTACH:
        case SQLITE_DETACH:
            reason = "ATTACH and DETACH are not allowed: every dataset is already a table";
            break;
        case SQLITE_TRANSACTION:
        case SQLITE_SAVEPOINT:
            reason = "transactions are not allowed: queryd runs one read-only statement";
            break;
        case SQLITE_INSERT:
        case SQLITE_UPDATE:
        case SQLITE_DELETE:
            //  Writes to SQLite's own tables come with DDL and ANALYZE,
            //  whose reason says more
            if (one && strncasecmp (one, "sqlite_", 7) == 0) {
                if (!*self->denied) {
                    snprintf (self->denied, sizeof (self->denied), "writes and schema changes "
                              "are not allowed: queryd is read-only");
                    self->denied_weak = true;
                }
                return SQLITE_DENY;
            }
            reason = "writes are not allowed: queryd is read-only (INSERT, UPDATE and DELETE "
                     "are refused)";
            break;
        case SQLITE_ALTER_TABLE:
        case SQLITE_REINDEX:
        case SQLITE_ANALYZE:
            reason = "schema changes are not allowed: queryd is read-only";
            break;
        default:
            reason = "writes and schema changes are not allowed: queryd is read-only "
                     "(CREATE and DROP are refused)";
            break;
    }
    if (!*self->denied || self->denied_weak) {
        snprintf (self->denied, sizeof (self->denied), "%s", reason);
        self->denied_weak = false;
    }
    return SQLITE_DENY;
}


//  --------------------------------------------------------------------------
//  Progress handler: heartbeat, and interrupt past the deadline

static int
s_progress (void *arg)
{
    s_conn_t *self = (s_conn_t *) arg;
    if (self->request)
        lh_request_time_left (self->request);
    return zclock_mono () >= self->deadline;
}


//  --------------------------------------------------------------------------
//  Run internal SQL on a connection; returns the SQLite code

static int
s_conn_exec (s_conn_t *self, const char *sql)
{
    self->internal = true;
    int rc = sqlite3_exec (self->db, sql, NULL, NULL, NULL);
    self->internal = false;
    return rc;
}


//  --------------------------------------------------------------------------
//  Create a connection: an empty in-memory main database

static s_conn_t *
s_conn_new (s_state_t *state)
{
    s_conn_t *self = (s_conn_t *) zmalloc (sizeof (s_conn_t));
    assert (self);
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI
              | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2 (":memory:", &self->db, flags, NULL) != SQLITE_OK) {
        sqlite3_close (self->db);
        free (self);
        return NULL;
    }
    for (size_t index = 0; index < S_SLOTS_MAX; index++)
        snprintf (self->slots [index].alias, sizeof (self->slots [index].alias), "ds%zu", index);
    sqlite3_db_config (self->db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, NULL);
    sqlite3_db_config (self->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    sqlite3_limit (self->db, SQLITE_LIMIT_ATTACHED, (int) state->attach_max);
    sqlite3_limit (self->db, SQLITE_LIMIT_LENGTH, (int) (state->reply_max + 1024));
    sqlite3_set_authorizer (self->db, s_authorize, self);
    sqlite3_progress_handler (self->db, S_PROGRESS_OPS, s_progress, self);
    self->deadline = INT64_MAX;
    return self;
}


//  --------------------------------------------------------------------------
//  Destroy a connection

static void
s_conn_destroy (s_conn_t **self_p)
{
    s_conn_t *self = *self_p;
    if (self) {
        sqlite3_close (self->db);
        for (size_t index = 0; index < S_SLOTS_MAX; index++) {
            free (self->slots [index].name);
            free (self->slots [index].key);
        }
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Detach a slot

static void
s_slot_detach (s_conn_t *self, s_slot_t *slot)
{
    if (!slot->name)
        return;
    char sql [64];
    snprintf (sql, sizeof (sql), "DETACH DATABASE %s", slot->alias);
    s_conn_exec (self, sql);
    zstr_free (&slot->name);
    zstr_free (&slot->key);
    slot->pinned = false;
}


//  --------------------------------------------------------------------------
//  Detach datasets the catalog dropped or replaced since we last looked

static void
s_conn_revalidate (s_conn_t *self, s_state_t *state)
{
    pthread_mutex_lock (&state->lock);
    uint64_t version = state->version;
    pthread_mutex_unlock (&state->lock);
    if (version == self->version)
        return;
    self->version = version;
    for (size_t index = 0; index < state->attach_max; index++) {
        s_slot_t *slot = &self->slots [index];
        if (!slot->name)
            continue;
        char *key = s_catalog_key (state, slot->name);
        if (!key || !streq (key, slot->key))
            s_slot_detach (self, slot);
        free (key);
    }
}


//  --------------------------------------------------------------------------
//  Make sure the table file of key is in the local cache; returns its path
//  (caller frees) or NULL with a reason (never a path) in reason.

static char *
s_cache_file (s_state_t *state, lh_storage_t *storage, const char *key, char *reason,
              size_t reason_size)
{
    lh_storage_info_t info;
    uint32_t status = lh_storage_head (storage, key, &info);
    if (status != LH_ST_OK || strlen (info.etag) != 64
    ||  strspn (info.etag, "0123456789abcdef") < 64) {
        snprintf (reason, reason_size, "its table file could not be found in storage (%u)",
                  status);
        return NULL;
    }
    char *path = zsys_sprintf ("%s/%s.sqlite", state->cache_dir, info.etag);
    if (access (path, R_OK) == 0)
        return path;
    //  Fetch in ranges into a temporary file, its content hash checked,
    //  then rename into place (the cache holds only whole, checked files)
    char *tmp = zsys_sprintf ("%s/fetch-XXXXXX", state->cache_dir);
    int fd = mkstemp (tmp);
    if (fd != -1)
        close (fd);
    status = fd == -1? LH_ST_INTERNAL: lh_storage_download (storage, key, tmp, info.etag, NULL);
    if (fd == -1 || streq (lh_storage_kind (storage), "local_io"))
        snprintf (reason, reason_size, "the local cache cannot be written");
    else
    if (status == LH_ST_INTERNAL)
        snprintf (reason, reason_size, "its table file in storage does not match its hash");
    else
    if (status != LH_ST_OK)
        snprintf (reason, reason_size, "its table file could not be read from storage (%u)",
                  status);
    else
    if (rename (tmp, path) != 0) {
        snprintf (reason, reason_size, "the local cache cannot be written");
        status = LH_ST_INTERNAL;
    }
    if (status != LH_ST_OK) {
        unlink (tmp);
        zstr_free (&path);
    }
    zstr_free (&tmp);
    return path;
}


//  --------------------------------------------------------------------------
//  Attach the dataset (lowercased name) into a free or least recently used
//  unpinned slot, and pin it. Returns 0; -1 if every slot is pinned; -2 if
//  the dataset is unavailable (reason says why, without paths).

static int
s_conn_attach (s_conn_t *self, s_state_t *state, lh_storage_t *storage, const char *lower,
               const char *key, char *reason, size_t reason_size)
{
    s_slot_t *slot = NULL;
    for (size_t index = 0; index < state->attach_max; index++) {
        s_slot_t *candidate = &self->slots [index];
        if (candidate->pinned)
            continue;
        if (!candidate->name) {
            slot = candidate;
            break;
        }
        if (!slot || candidate->used < slot->used)
            slot = candidate;
    }
    if (!slot)
        return -1;
    char *path = s_cache_file (state, storage, key, reason, reason_size);
    if (!path)
        return -2;
    s_slot_detach (self, slot);
    //  A URI, read-only and immutable: the file never changes (content-
    //  addressed), so SQLite needs no locks on it
    char *uri = (char *) malloc (strlen (path) * 3 + 64);
    assert (uri);
    size_t used = (size_t) sprintf (uri, "file:");
    for (const char *at = path; *at; at++)
        if (*at == '%' || *at == '?' || *at == '#')
            used += (size_t) sprintf (uri + used, "%%%02X", (unsigned char) *at);
        else
            uri [used++] = *at;
    sprintf (uri + used, "?mode=ro&immutable=1");
    char sql [160];
    snprintf (sql, sizeof (sql), "ATTACH DATABASE ?1 AS %s", slot->alias);
    sqlite3_stmt *stmt = NULL;
    self->internal = true;
    int rc = sqlite3_prepare_v2 (self->db, sql, -1, &stmt, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text (stmt, 1, uri, -1, SQLITE_TRANSIENT);
        rc = sqlite3_step (stmt);
    }
    sqlite3_finalize (stmt);
    self->internal = false;
    free (uri);
    free (path);
    if (rc != SQLITE_DONE) {
        snprintf (reason, reason_size, "its table file cannot be opened");
        return -2;
    }
    //  Check the file is a database holding the table now, not mid-query
    char check [200];
    snprintf (check, sizeof (check), "SELECT count(*) FROM %s.sqlite_master", slot->alias);
    if (s_conn_exec (self, check) != SQLITE_OK) {
        snprintf (check, sizeof (check), "DETACH DATABASE %s", slot->alias);
        s_conn_exec (self, check);
        snprintf (reason, reason_size, "its table file is not a valid database");
        return -2;
    }
    if (state->mmap_bytes > 0) {
        snprintf (check, sizeof (check), "PRAGMA %s.mmap_size = %" PRId64, slot->alias,
                  state->mmap_bytes);
        s_conn_exec (self, check);
    }
    slot->name = strdup (lower);
    slot->key = strdup (key);
    slot->used = ++self->clock;
    slot->pinned = true;
    return 0;
}


//  --------------------------------------------------------------------------
//  Is only whitespace, comments and semicolons left in the statement tail?

static bool
s_tail_empty (const char *tail)
{
    while (tail && *tail) {
        if (isspace ((unsigned char) *tail) || *tail == ';')
            tail++;
        else
        if (tail [0] == '-' && tail [1] == '-') {
            while (*tail && *tail != '\n')
                tail++;
        }
        else
        if (tail [0] == '/' && tail [1] == '*') {
            const char *end = strstr (tail + 2, "*/");
            if (!end)
                return true;
            tail = end + 2;
        }
        else
            return false;
    }
    return true;
}


//  --------------------------------------------------------------------------
//  Bind one msgpack value to a parameter; returns the SQLite code

static int
s_bind (sqlite3_stmt *stmt, int slot, const msgpack_object *value)
{
    switch (value->type) {
        case MSGPACK_OBJECT_NIL:
            return sqlite3_bind_null (stmt, slot);
        case MSGPACK_OBJECT_BOOLEAN:
            return sqlite3_bind_int (stmt, slot, value->via.boolean);
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            if (value->via.u64 > INT64_MAX)
                return sqlite3_bind_double (stmt, slot, (double) value->via.u64);
            return sqlite3_bind_int64 (stmt, slot, (sqlite3_int64) value->via.u64);
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            return sqlite3_bind_int64 (stmt, slot, value->via.i64);
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
            return sqlite3_bind_double (stmt, slot, value->via.f64);
        case MSGPACK_OBJECT_STR:
            return sqlite3_bind_text (stmt, slot, value->via.str.ptr, (int) value->via.str.size,
                                      SQLITE_TRANSIENT);
        case MSGPACK_OBJECT_BIN:
            return sqlite3_bind_blob (stmt, slot, value->via.bin.ptr, (int) value->via.bin.size,
                                      SQLITE_TRANSIENT);
        default:
            return SQLITE_MISMATCH;
    }
}


//  --------------------------------------------------------------------------
//  Bind the request's params (array: positional; map: by name, with or
//  without its :, @ or $). Returns 0, or -1 with the reason in reason.

static int
s_bind_params (sqlite3_stmt *stmt, const msgpack_object *params, char *reason, size_t size)
{
    if (!params || params->type == MSGPACK_OBJECT_NIL)
        return 0;
    if (params->type == MSGPACK_OBJECT_ARRAY) {
        if ((int) params->via.array.size > sqlite3_bind_parameter_count (stmt)) {
            snprintf (reason, size, "params: %u values for %d parameters",
                      params->via.array.size, sqlite3_bind_parameter_count (stmt));
            return -1;
        }
        for (uint32_t index = 0; index < params->via.array.size; index++)
            if (s_bind (stmt, (int) index + 1, &params->via.array.ptr [index]) != SQLITE_OK) {
                snprintf (reason, size, "params: value %u is not a string, number, "
                          "boolean, null or bytes", index + 1);
                return -1;
            }
        return 0;
    }
    if (params->type != MSGPACK_OBJECT_MAP) {
        snprintf (reason, size, "params must be an array or a map");
        return -1;
    }
    for (uint32_t index = 0; index < params->via.map.size; index++) {
        const msgpack_object *name = &params->via.map.ptr [index].key;
        if (name->type != MSGPACK_OBJECT_STR || name->via.str.size == 0
        ||  name->via.str.size > 100) {
            snprintf (reason, size, "params: names must be strings of 1..100 bytes");
            return -1;
        }
        char text [104];
        int slot = 0;
        const char *prefixes = ":@$";
        if (strchr (prefixes, name->via.str.ptr [0])) {
            snprintf (text, sizeof (text), "%.*s", (int) name->via.str.size, name->via.str.ptr);
            slot = sqlite3_bind_parameter_index (stmt, text);
        }
        for (size_t prefix = 0; !slot && prefix < 3; prefix++) {
            snprintf (text, sizeof (text), "%c%.*s", prefixes [prefix],
                      (int) name->via.str.size, name->via.str.ptr);
            slot = sqlite3_bind_parameter_index (stmt, text);
        }
        if (!slot) {
            snprintf (reason, size, "params: the statement has no parameter '%.*s'",
                      (int) name->via.str.size, name->via.str.ptr);
            return -1;
        }
        if (s_bind (stmt, slot, &params->via.map.ptr [index].val) != SQLITE_OK) {
            snprintf (reason, size, "params: '%.*s' is not a string, number, boolean, "
                      "null or bytes", (int) name->via.str.size, name->via.str.ptr);
            return -1;
        }
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Prepare the statement, attaching every dataset it names (asking
//  catalogd for a name it does not know, storaged for a table file it has
//  not cached). Returns the statement, or NULL after answering the request.

static sqlite3_stmt *
s_prepare (s_conn_t *self, s_state_t *state, lh_request_t *request, lh_storage_t *storage,
           const char *sql)
{
    for (size_t index = 0; index < S_SLOTS_MAX; index++)
        self->slots [index].pinned = false;
    sqlite3_stmt *stmt = NULL;
    for (size_t attempt = 0; attempt < 2 * state->attach_max + 2; attempt++) {
        *self->denied = 0;
        self->denied_weak = false;
        const char *tail = NULL;
        int rc = sqlite3_prepare_v2 (self->db, sql, -1, &stmt, &tail);
        if (rc == SQLITE_OK) {
            if (!stmt) {
                lh_request_fail_field (request, LH_ST_BAD_REQUEST, "bad_sql", "sql",
                                       "sql holds no statement");
                return NULL;
            }
            if (!s_tail_empty (tail)) {
                sqlite3_finalize (stmt);
                lh_request_fail_field (request, LH_ST_BAD_REQUEST, "bad_sql", "sql",
                                       "one statement only: sql holds more than one");
                return NULL;
            }
            if (!sqlite3_stmt_readonly (stmt)) {
                sqlite3_finalize (stmt);
                lh_request_fail (request, LH_ST_FORBIDDEN, "forbidden",
                                 "only read-only statements are allowed: queryd is read-only");
                return NULL;
            }
            //  Mark what the statement uses as recently used
            for (size_t index = 0; index < state->attach_max; index++)
                if (self->slots [index].pinned)
                    self->slots [index].used = ++self->clock;
            return stmt;
        }
        if (rc == SQLITE_AUTH || *self->denied) {
            lh_request_fail (request, LH_ST_FORBIDDEN, "forbidden", "%s",
                             *self->denied? self->denied: "writes and schema changes are "
                             "not allowed: queryd is read-only");
            return NULL;
        }
        const char *message = sqlite3_errmsg (self->db);
        const char *prefix = "no such table: ";
        if (strncmp (message, prefix, strlen (prefix))) {
            lh_request_fail_field (request, LH_ST_BAD_REQUEST, "bad_sql", "sql", "%s", message);
            return NULL;
        }
        //  Copied: the next SQLite call invalidates the message
        char table [S_TABLE_MAX];
        snprintf (table, sizeof (table), "%s", message + strlen (prefix));
        char *lower = s_lower (table, strlen (table));
        char *key = s_catalog_key (state, lower);
        if (!key) {
            lh_pack_t *pack = s_catalog_get_body (table);
            lh_reply_t *reply;
            lh_request_call_pack (request, "catalogd", "get", &pack, state->storage_timeout_ms,
                                  &reply);
            int found = s_catalog_apply (state, table, reply);
            if (found < 0) {
                lh_request_fail_dependency (request, reply, "catalogd", "the dataset lookup");
                lh_reply_destroy (&reply);
                free (lower);
                return NULL;
            }
            lh_reply_destroy (&reply);
            if (found)
                key = s_catalog_key (state, lower);
        }
        if (!key) {
            lh_request_fail_field (request, LH_ST_BAD_REQUEST, "bad_sql", "sql",
                                   "no such table: %s (no dataset has this name)", table);
            free (lower);
            return NULL;
        }
        //  Already attached: the statement needs it again after another
        //  attach pushed it out, or its file lacks the table
        bool attached = false;
        for (size_t index = 0; index < state->attach_max; index++)
            if (self->slots [index].name && streq (self->slots [index].name, lower))
                attached = true;
        char reason [200] = "";
        rc = attached? -2: s_conn_attach (self, state, storage, lower, key, reason, sizeof (reason));
        if (attached)
            snprintf (reason, sizeof (reason), "its table file does not hold the table");
        free (key);
        free (lower);
        if (rc == -1)
            break;
        if (rc == -2) {
            lh_warn (S_NAME, lh_request_trace (request), "dataset '%s' unavailable: %s",
                     table, reason);
            lh_request_fail (request, LH_ST_UNAVAILABLE, "dataset_unavailable",
                             "dataset '%s' is unavailable: %s", table, reason);
            return NULL;
        }
    }
    lh_request_fail_field (request, LH_ST_BAD_REQUEST, "too_many_datasets", "sql",
                           "a statement may use at most %zu datasets (queryd/attach_max)",
                           state->attach_max);
    return NULL;
}


//  --------------------------------------------------------------------------
//  Canonical type of a declared column type, or NULL

static const char *
s_declared_type (const char *declared)
{
    static const char *s_types [] = { "BOOLEAN", "BIGINT", "DOUBLE", "TIMESTAMP", "VARCHAR", NULL };
    for (size_t index = 0; declared && s_types [index]; index++)
        if (strcasecmp (declared, s_types [index]) == 0)
            return s_types [index];
    return NULL;
}


//  --------------------------------------------------------------------------
//  Step the statement and answer with its rows

static void
s_run (s_conn_t *self, s_state_t *state, lh_request_t *request, sqlite3_stmt *stmt,
       uint64_t limit, int64_t timeout_ms)
{
    int columns = sqlite3_column_count (stmt);
    const char **types = (const char **) calloc ((size_t) columns + 1, sizeof (char *));
    bool *boolean = (bool *) calloc ((size_t) columns + 1, sizeof (bool));
    assert (types && boolean);
    for (int column = 0; column < columns; column++) {
        types [column] = s_declared_type (sqlite3_column_decltype (stmt, column));
        boolean [column] = types [column] && streq (types [column], "BOOLEAN");
    }
    lh_pack_t *rows = lh_pack_new ();
    lh_pack_t *row = lh_pack_new ();
    size_t rows_size = 0;
    uint64_t count = 0;
    bool truncated = false;
    int rc;
    self->deadline = zclock_mono () + timeout_ms;
    self->request = request;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        if (count >= limit) {
            truncated = true;
            break;
        }
        lh_pack_destroy (&row);
        row = lh_pack_new ();
        lh_pack_array (row, (uint32_t) columns);
        for (int column = 0; column < columns; column++) {
            int kind = sqlite3_column_type (stmt, column);
            if (kind == SQLITE_INTEGER) {
                sqlite3_int64 value = sqlite3_column_int64 (stmt, column);
                if (boolean [column])
                    lh_pack_bool (row, value != 0);
                else
                    lh_pack_int (row, value);
                if (!types [column])
                    types [column] = "BIGINT";
            }
            else
            if (kind == SQLITE_FLOAT) {
                lh_pack_double (row, sqlite3_column_double (stmt, column));
                if (!types [column])
                    types [column] = "DOUBLE";
            }
            else
            if (kind == SQLITE_TEXT) {
                const unsigned char *text = sqlite3_column_text (stmt, column);
                lh_pack_strn (row, (const char *) text, (size_t) sqlite3_column_bytes (stmt, column));
                if (!types [column])
                    types [column] = "VARCHAR";
            }
            else
            if (kind == SQLITE_BLOB) {
                const void *blob = sqlite3_column_blob (stmt, column);
                lh_pack_bin (row, blob, (size_t) sqlite3_column_bytes (stmt, column));
                if (!types [column])
                    types [column] = "BLOB";
            }
            else
                lh_pack_nil (row);
        }
        size_t size;
        const void *data = lh_pack_data (row, &size);
        if (rows_size + size > state->reply_max) {
            truncated = true;
            break;
        }
        lh_pack_raw (rows, data, size);
        rows_size += size;
        count++;
    }
    self->request = NULL;
    self->deadline = INT64_MAX;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        if (rc == SQLITE_INTERRUPT)
            lh_request_fail (request, LH_ST_TIMEOUT, "deadline",
                             "the statement ran past its timeout of %" PRId64 " ms", timeout_ms);
        else
            lh_request_fail_field (request, LH_ST_BAD_REQUEST, "bad_sql", "sql", "%s",
                                   sqlite3_errmsg (self->db));
    }
    else {
        lh_pack_t *pack = lh_pack_new ();
        lh_pack_map (pack, 4);
        lh_pack_str (pack, "columns");
        lh_pack_array (pack, (uint32_t) columns);
        for (int column = 0; column < columns; column++) {
            lh_pack_map (pack, 2);
            lh_pack_kv_str (pack, "name", sqlite3_column_name (stmt, column));
            lh_pack_kv_str (pack, "type", types [column]? types [column]: "NULL");
        }
        lh_pack_str (pack, "rows");
        lh_pack_array (pack, (uint32_t) count);
        size_t size;
        const void *data = lh_pack_data (rows, &size);
        lh_pack_raw (pack, data, size);
        lh_pack_kv_uint (pack, "row_count", count);
        lh_pack_kv_bool (pack, "truncated", truncated);
        lh_request_reply_pack (request, LH_ST_OK, &pack);
    }
    lh_pack_destroy (&row);
    lh_pack_destroy (&rows);
    free (types);
    free (boolean);
}


//  --------------------------------------------------------------------------
//  sql {sql, params?, limit?}

static void
s_sql (lh_request_t *request, void *arg)
{
    s_state_t *state = (s_state_t *) arg;
    const msgpack_object *body = lh_request_map (request);
    char *sql = NULL;
    int64_t limit = (int64_t) state->row_limit;
    if (!body
    ||  lh_request_strdup (request, body, "sql", LH_FIELD_REQUIRED | LH_FIELD_NONEMPTY,
                           S_SQL_MAX, &sql)
    ||  lh_request_int (request, body, "limit", 0, 0, INT64_MAX, &limit))
        goto done;
    const msgpack_object *params = lh_obj_get (body, "params");
    if (params && params->type != MSGPACK_OBJECT_NIL && params->type != MSGPACK_OBJECT_ARRAY
    &&  params->type != MSGPACK_OBJECT_MAP) {
        lh_request_bad (request, "params", "params must be an array or a map");
        goto done;
    }
    if ((uint64_t) limit > state->row_max)
        limit = (int64_t) state->row_max;
    pthread_mutex_lock (&state->lock);
    s_conn_t *conn = (s_conn_t *) zlist_pop (state->pool);
    pthread_mutex_unlock (&state->lock);
    if (!conn)
        conn = s_conn_new (state);
    if (!conn) {
        lh_request_fail (request, LH_ST_INTERNAL, "internal", "cannot open a connection");
        goto done;
    }
    s_conn_revalidate (conn, state);
    lh_storage_t *storage = lh_storage_new_request (request, state->storage_timeout_ms);
    sqlite3_stmt *stmt = s_prepare (conn, state, request, storage, sql);
    lh_storage_destroy (&storage);
    if (stmt) {
        char reason [256];
        if (s_bind_params (stmt, params, reason, sizeof (reason)))
            lh_request_bad (request, "params", "%s", reason);
        else {
            int64_t timeout = state->timeout_ms;
            int64_t left = (int64_t) lh_request_time_left (request);
            if (left > 0 && left < timeout)
                timeout = left;
            s_run (conn, state, request, stmt, (uint64_t) limit, timeout);
        }
        sqlite3_finalize (stmt);
    }
    pthread_mutex_lock (&state->lock);
    zlist_append (state->pool, conn);
    pthread_mutex_unlock (&state->lock);
done:
    free (sql);
}


//  --------------------------------------------------------------------------
//  Destroy the state: stop the follower, close every connection

static void
s_state_destroy (void **state_p)
{
    s_state_t *self = (s_state_t *) *state_p;
    if (self) {
        zactor_destroy (&self->follower);
        if (self->pool) {
            s_conn_t *conn;
            while ((conn = (s_conn_t *) zlist_pop (self->pool)))
                s_conn_destroy (&conn);
            zlist_destroy (&self->pool);
        }
        zhash_destroy (&self->datasets);
        pthread_mutex_destroy (&self->lock);
        free (self->cache_dir);
        free (self->endpoint);
        free (self->server_key);
        free (self);
        *state_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Create the state from the config; start the catalog follower

static void *
s_state_new (lh_config_t *config, const lh_link_t *link, const char **error)
{
    s_state_t *self = (s_state_t *) zmalloc (sizeof (s_state_t));
    assert (self);
    pthread_mutex_init (&self->lock, NULL);
    self->datasets = zhash_new ();
    self->pool = zlist_new ();
    int64_t timeout = lh_config_int (config, "queryd/timeout_ms");
    int64_t row_limit = lh_config_int (config, "queryd/row_limit");
    int64_t row_max = lh_config_int (config, "queryd/row_max");
    int64_t reply_max = lh_config_int (config, "queryd/reply_max");
    int64_t attach_max = lh_config_int (config, "queryd/attach_max");
    int64_t storage_timeout = lh_config_int (config, "queryd/storage_timeout_ms");
    self->refresh_ms = lh_config_int (config, "queryd/refresh_ms");
    self->mmap_bytes = lh_config_int (config, "queryd/mmap_bytes");
    const char *cache_dir = lh_config_str (config, "queryd/cache_dir");
    self->cache_dir = *cache_dir? strdup (cache_dir)
                                : zsys_sprintf ("%s/queryd", lh_config_str (config, "data/dir"));
    //  Each key's own range is checked when the config loads; what is left
    //  is how two keys relate
    *error = row_max < row_limit? "queryd/row_max must be at least queryd/row_limit": NULL;
    if (!*error && zsys_dir_create ("%s", self->cache_dir) != 0)
        *error = "queryd/cache_dir cannot be created";
    if (*error) {
        s_state_destroy ((void **) &self);
        return NULL;
    }
    self->timeout_ms = (uint32_t) (timeout > UINT32_MAX? UINT32_MAX: timeout);
    self->row_limit = (uint64_t) row_limit;
    self->row_max = (uint64_t) row_max;
    self->reply_max = (size_t) reply_max;
    self->attach_max = (size_t) attach_max;
    self->storage_timeout_ms = (uint32_t) (storage_timeout > UINT32_MAX? UINT32_MAX: storage_timeout);
    self->endpoint = strdup (link->endpoint? link->endpoint: "");
    self->server_key = link->server_key? strdup (link->server_key): NULL;
    self->link.endpoint = self->endpoint;
    self->link.server_key = self->server_key;
    self->link.cert = link->cert;
    self->follower = zactor_new (s_follower, self);
    assert (self->follower);
    lh_info (S_NAME, NULL, "dataset cache in %s, %zu attached per connection",
             self->cache_dir, self->attach_max);
    return self;
}


static const lh_op_t s_ops [] = {
    { "sql", s_sql },
    { NULL, NULL }
};

const lh_service_t lh_queryd_service = {
    .name = "queryd",
    .ops = s_ops,
    .state_new = s_state_new,
    .state_destroy = s_state_destroy,
    .credit = 1
};


//  --------------------------------------------------------------------------
//  Self test: the authorizer and the statement checks on a bare
//  connection, then the service on a test bus (more over the bus in
//  tests/integration/test_query*.py)

#include "lh_testbus.h"
#include "storaged.h"
#include "catalogd.h"
#include "ingestd.h"

void
lh_queryd_test (bool verbose)
{
    printf (" * lh_queryd: ");
    s_state_t state = { .attach_max = 10, .reply_max = 1 << 20 };
    s_conn_t *conn = s_conn_new (&state);
    assert (conn);
    assert (s_conn_exec (conn, "CREATE TABLE t (x BIGINT, b BOOLEAN)") == SQLITE_OK);
    assert (s_conn_exec (conn, "INSERT INTO t VALUES (1, 1), (2, 0)") == SQLITE_OK);
    struct {
        const char *sql;
        bool allowed;
    } cases [] = {
        { "SELECT x FROM t", true },
        { "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 5) "
          "SELECT count(*) FROM c", true },
        { "PRAGMA table_info(t)", true },
        { "INSERT INTO t VALUES (3, 1)", false },
        { "UPDATE t SET x = 0", false },
        { "DELETE FROM t", false },
        { "DROP TABLE t", false },
        { "CREATE TABLE u (y)", false },
        { "CREATE TEMP VIEW v AS SELECT 1", false },
        { "ALTER TABLE t ADD COLUMN z", false },
        { "ATTACH DATABASE ':memory:' AS other", false },
        { "DETACH DATABASE main", false },
        { "PRAGMA journal_mode = WAL", false },
        { "PRAGMA database_list", false },
        { "SELECT load_extension('x')", false },
        { "BEGIN", false },
        { "ANALYZE", false },
    };
    for (size_t index = 0; index < sizeof (cases) / sizeof (cases [0]); index++) {
        *conn->denied = 0;
        conn->denied_weak = false;
        sqlite3_stmt *stmt = NULL;
        int rc = sqlite3_prepare_v2 (conn->db, cases [index].sql, -1, &stmt, NULL);
        bool allowed = rc == SQLITE_OK && sqlite3_stmt_readonly (stmt);
        if (verbose)
            printf ("\n   %-50.50s %s %s", cases [index].sql, allowed? "allowed": "refused",
                    conn->denied);
        if (allowed != cases [index].allowed)
            fprintf (stderr, "\n%s: %s (%s)\n", cases [index].sql, allowed? "allowed": "refused",
                    sqlite3_errmsg (conn->db));
        assert (allowed == cases [index].allowed);
        assert (allowed || rc == SQLITE_OK || *conn->denied);
        sqlite3_finalize (stmt);
    }
    assert (s_tail_empty ("  ;  -- done\n /* c */ ;"));
    assert (!s_tail_empty ("; SELECT 2"));
    assert (streq (s_declared_type ("bigint"), "BIGINT"));
    assert (s_declared_type ("INTEGER") == NULL);
    //  The progress handler interrupts a statement past its deadline
    conn->deadline = zclock_mono () + 100;
    sqlite3_stmt *stmt = NULL;
    assert (sqlite3_prepare_v2 (conn->db, "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL "
                                "SELECT n + 1 FROM c) SELECT count(*) FROM c", -1, &stmt,
                                NULL) == SQLITE_OK);
    int64_t start = zclock_mono ();
    assert (sqlite3_step (stmt) == SQLITE_INTERRUPT);
    assert (zclock_mono () - start < 2000);
    sqlite3_finalize (stmt);
    s_conn_destroy (&conn);

    //  The service on a test bus: a dataset ingested and queried, bad
    //  bodies answered 400 naming their field, and a table the catalog
    //  cannot be asked about is 503 (it used to be 400 "no such table")
    lh_testbus_t *bus = lh_testbus_new ("queryd");
    //  The follower's calls to a stopped catalogd end soon, so it stops soon
    lh_testbus_set (bus, "queryd/storage_timeout_ms", "1000");
    lh_testbus_start (bus, &lh_storaged_service, 1);
    lh_testbus_start (bus, &lh_catalogd_service, 1);
    lh_testbus_start (bus, &lh_ingestd_service, 1);
    lh_testbus_start (bus, &lh_queryd_service, 1);
    assert (lh_testbus_status (bus, "storaged", "put",
                               "{\"key\": \"uploads/w.csv\", \"data\": \"id,name\\n1,ann\\n2,bo\\n\"}") == 200);
    assert (lh_testbus_status (bus, "ingestd", "ingest",
                               "{\"name\": \"w\", \"source\": \"uploads/w.csv\"}") == 200);
    lh_reply_t *reply = lh_testbus_call (bus, "queryd", "sql",
                                         "{\"sql\": \"SELECT name FROM w WHERE id = ?\", \"params\": [2]}");
    char *text = lh_testbus_json (reply);
    assert (lh_reply_status (reply) == 200);
    assert (strstr (text, "\"rows\":[[\"bo\"]]"));
    zstr_free (&text);
    lh_reply_destroy (&reply);
    struct {
        const char *json, *field;
    } bad [] = {
        { NULL, "sql" },
        { "{\"sql\": \"\"}", "sql" },
        { "{\"sql\": 5}", "sql" },
        { "{\"sql\": \"SELECT 1\", \"limit\": -1}", "limit" },
        { "{\"sql\": \"SELECT 1\", \"limit\": \"9\"}", "limit" },
        { "{\"sql\": \"SELECT 1\", \"params\": 3}", "params" },
        { "{\"sql\": \"SELECT ?\", \"params\": [1, 2]}", "params" },
        { "{\"sql\": \"SELEC 1\"}", "sql" },
        { "{\"sql\": \"SELECT * FROM nosuch\"}", "sql" },
    };
    for (size_t index = 0; index < sizeof (bad) / sizeof (bad [0]); index++)
        lh_testbus_expect (bus, "queryd", "sql", bad [index].json, 400, NULL, bad [index].field);
    lh_testbus_stop (bus, "catalogd");
    lh_call_opts_t opts = { .timeout_ms = 500 };
    lh_client_call (lh_testbus_client (bus), "queryd", "sql", "\x81\xa3sql\xb4SELECT * FROM other1", 26,
                    &opts, &reply);
    assert (lh_reply_status (reply) == 503 || lh_reply_status (reply) == 504);
    lh_reply_destroy (&reply);
    lh_testbus_destroy (&bus);
    printf ("OK\n");
}
