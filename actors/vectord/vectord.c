/*  =========================================================================
    vectord - durable vector indexes over lh_vindex; see vectord.h

    Each index lives in VECTORD_DIR/NAME (LMDB: the durable log, see
    lh_vindex.h). A snapshot thread saves each changed index's graph at
    most every vectord/snapshot_ms to storaged: PREFIX/NAME/graph-SEQ by
    multipart upload (atomic at commit), then PREFIX/NAME/manifest {name,
    dim, metric, m, ef_construction, ef, seq, graph, size, sha256} by put,
    then the log up to SEQ is dropped and older graphs deleted. At start
    every index is opened and restored from its snapshot (checked against
    the manifest's SHA-256) plus the log after it; a missing or torn
    snapshot means a rebuild from the log's items.
    =========================================================================
*/

#include "vectord.h"
#include "lh_vindex.h"
#include "lh_storage.h"
#include "lh_log.h"
#include <dirent.h>

#define S_NAME          "vectord"

//  One open index, shared by the workers
typedef struct {
    lh_vindex_t *index;                 //  the index
    char *dir;                          //  its directory now
    int refs;                           //  registry + handlers using it
    bool dropped;                       //  drop asked: delete at last release
    int64_t snapshot_ms;                //  last snapshot attempt
} s_entry_t;

typedef struct {
    pthread_mutex_t lock;               //  guards indexes and entry refs
    zhashx_t *indexes;                  //  name -> s_entry_t
    char *dir;                          //  where the indexes live
    char *prefix;                       //  storaged snapshot prefix
    size_t map_bytes;                   //  LMDB map size per index
    int64_t snapshot_ms;                //  snapshot period, 0 = off
    uint32_t timeout_ms;                //  storaged calls
    lh_vparams_t defaults;              //  m, ef_construction, ef
    size_t dim_max;                     //  largest dim
    size_t k_max;                       //  largest k / ef
    size_t batch_max;                   //  most items per add
    int compact_pct;                    //  tombstone ratio for compaction
    size_t cache_entries;               //  search answers cached per index
    char *endpoint;                     //  link for the snapshot thread
    char *server_key;                   //  link server key or NULL
    zcert_t *cert;                      //  link certificate (borrowed)
    zactor_t *snapshotter;              //  snapshot thread
} s_state_t;


//  --------------------------------------------------------------------------
//  Take a reference to an index by name; NULL if none

static s_entry_t *
s_acquire (s_state_t *self, const char *name)
{
    pthread_mutex_lock (&self->lock);
    s_entry_t *entry = (s_entry_t *) zhashx_lookup (self->indexes, name);
    if (entry)
        entry->refs++;
    pthread_mutex_unlock (&self->lock);
    return entry;
}


//  --------------------------------------------------------------------------
//  Drop a reference; the last one of a dropped index deletes its files

static void
s_release (s_state_t *self, s_entry_t *entry)
{
    pthread_mutex_lock (&self->lock);
    bool last = --entry->refs == 0;
    pthread_mutex_unlock (&self->lock);
    if (last) {
        if (entry->dropped) {
            lh_vindex_destroy (&entry->index);
            const char *files [] = { "data.mdb", "lock.mdb" };
            for (size_t index = 0; index < 2; index++) {
                char *path = zsys_sprintf ("%s/%s", entry->dir, files [index]);
                unlink (path);
                zstr_free (&path);
            }
            rmdir (entry->dir);
        }
        else
            lh_vindex_destroy (&entry->index);
        free (entry->dir);
        free (entry);
    }
}


//  --------------------------------------------------------------------------
//  Collect the snapshot keys of an index that are not keep (NULL: all)

typedef struct {
    const char *keep;                   //  graph key to keep, or NULL
    zlist_t *doomed;                    //  keys to delete
} s_prune_t;

static int
s_prune_key (void *arg, const char *key, const lh_storage_info_t *info)
{
    s_prune_t *self = (s_prune_t *) arg;
    if (!self->keep || (!streq (key, self->keep) && !strstr (key, "/manifest")))
        zlist_append (self->doomed, strdup (key));
    return 0;
}


//  --------------------------------------------------------------------------
//  Delete every snapshot object of an index except keep (NULL: all)

static void
s_snapshot_prune (s_state_t *self, lh_storage_t *storage, const char *name, const char *keep)
{
    char *prefix = zsys_sprintf ("%s%s/", self->prefix, name);
    s_prune_t prune = { .keep = keep, .doomed = zlist_new () };
    zlist_autofree (prune.doomed);
    lh_storage_list_all (storage, prefix, s_prune_key, &prune);
    for (char *key = (char *) zlist_first (prune.doomed); key;
         key = (char *) zlist_next (prune.doomed))
        lh_storage_delete (storage, key);
    zlist_destroy (&prune.doomed);
    zstr_free (&prefix);
}


//  --------------------------------------------------------------------------
//  Snapshot one index to storaged: the graph by multipart upload (its
//  SHA-256 is the ETag storaged computes), then the manifest naming it.
//  Returns 0 or -1.

static int
s_snapshot (s_state_t *self, lh_storage_t *storage, s_entry_t *entry)
{
    lh_vindex_t *index = entry->index;
    const char *name = lh_vindex_name (index);
    char *path = zsys_sprintf ("%s/.snapshot-%s.tmp", self->dir, name);
    uint64_t seq;
    int64_t started = zclock_mono ();
    int rc = lh_vindex_snapshot (index, path, &seq);
    char *graph_key = zsys_sprintf ("%s%s/graph-%020" PRIu64, self->prefix, name, seq);
    lh_storage_info_t graph;
    if (rc == 0 && lh_storage_upload_file (storage, graph_key, path, NULL, &graph) != LH_ST_OK)
        rc = -1;
    if (rc == 0) {
        const lh_vparams_t *params = lh_vindex_params (index);
        lh_pack_t *manifest = lh_pack_new ();
        lh_pack_open_map (manifest);
        lh_pack_kv_str (manifest, "name", name);
        lh_pack_kv_uint (manifest, "dim", params->dim);
        lh_pack_kv_str (manifest, "metric", lh_metric_name (params->metric));
        lh_pack_kv_uint (manifest, "m", params->m);
        lh_pack_kv_uint (manifest, "ef_construction", params->ef_construction);
        lh_pack_kv_uint (manifest, "ef", params->ef);
        lh_pack_kv_uint (manifest, "seq", seq);
        lh_pack_kv_str (manifest, "graph", graph_key);
        lh_pack_kv_uint (manifest, "size", graph.size);
        lh_pack_kv_str (manifest, "sha256", graph.etag);
        lh_pack_kv_int (manifest, "created_ms", zclock_time ());
        lh_pack_close (manifest);
        size_t manifest_size;
        const void *manifest_data = lh_pack_data (manifest, &manifest_size);
        char *key = zsys_sprintf ("%s%s/manifest", self->prefix, name);
        if (lh_storage_put (storage, key, manifest_data, manifest_size, NULL, NULL) != LH_ST_OK)
            rc = -1;
        lh_pack_destroy (&manifest);
        zstr_free (&key);
    }
    if (rc == 0) {
        lh_vindex_snapshot_done (index, seq);
        s_snapshot_prune (self, storage, name, graph_key);
        lh_info (S_NAME, NULL, "index '%s': snapshot at seq %" PRIu64 " (%" PRIu64 " bytes) in %" PRId64 " ms",
                 name, seq, graph.size, zclock_mono () - started);
    }
    else
        lh_warn (S_NAME, NULL, "index '%s': snapshot at seq %" PRIu64 " failed (%s); will retry",
                 name, seq, *lh_storage_reason (storage)? lh_storage_reason (storage): "local");
    unlink (path);
    zstr_free (&path);
    zstr_free (&graph_key);
    return rc;
}


//  --------------------------------------------------------------------------
//  The snapshot thread: once a second, snapshot indexes that changed and
//  whose period has passed. Each snapshot is one job: one trace for its
//  calls, each call capped by vectord/storage_timeout_ms.

static void
s_snapshotter (zsock_t *pipe, void *args)
{
    s_state_t *self = (s_state_t *) args;
    lh_client_t *client = NULL;
    zsock_signal (pipe, 0);
    zpoller_t *poller = zpoller_new (pipe, NULL);
    while (true) {
        void *which = zpoller_wait (poller, 1000);
        if (which == pipe) {
            char *command = zstr_recv (pipe);
            bool term = !command || streq (command, "$TERM");
            zstr_free (&command);
            if (term)
                break;
        }
        else
        if (zpoller_terminated (poller))
            break;
        //  Candidates: changed since the last snapshot, period passed
        int64_t now = zclock_mono ();
        zlist_t *due = zlist_new ();
        pthread_mutex_lock (&self->lock);
        for (s_entry_t *entry = (s_entry_t *) zhashx_first (self->indexes); entry;
             entry = (s_entry_t *) zhashx_next (self->indexes))
            if (now - entry->snapshot_ms >= self->snapshot_ms) {
                entry->refs++;
                zlist_append (due, entry);
            }
        pthread_mutex_unlock (&self->lock);
        for (s_entry_t *entry = (s_entry_t *) zlist_first (due); entry;
             entry = (s_entry_t *) zlist_next (due)) {
            if (!entry->dropped
            &&  lh_vindex_seq (entry->index) > lh_vindex_snapshot_seq (entry->index)) {
                if (!client) {
                    lh_link_t link = { .endpoint = self->endpoint, .server_key = self->server_key,
                                       .cert = self->cert };
                    client = lh_client_new (&link, "vectord-snapshot");
                }
                if (client) {
                    entry->snapshot_ms = now;
                    lh_job_t job;
                    lh_job_start (&job, client, NULL, 0);
                    lh_storage_t *storage = lh_storage_new_job (&job, self->timeout_ms);
                    s_snapshot (self, storage, entry);
                    lh_storage_destroy (&storage);
                }
            }
            s_release (self, entry);
        }
        zlist_destroy (&due);
    }
    zpoller_destroy (&poller);
    lh_client_destroy (&client);
}


//  --------------------------------------------------------------------------
//  Fetch an index's snapshot into path; returns its seq and sets *found,
//  or *found false when there is none or it does not check out

static uint64_t
s_fetch_snapshot (s_state_t *self, lh_storage_t *storage, lh_vindex_t *index,
                  const char *path, bool *found)
{
    *found = false;
    const char *name = lh_vindex_name (index);
    char *key = zsys_sprintf ("%s%s/manifest", self->prefix, name);
    const void *data;
    size_t size;
    uint32_t status = lh_storage_get (storage, key, 0, 0, NULL, &data, &size);
    zstr_free (&key);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 1024);
    msgpack_object manifest;
    uint64_t seq = 0, graph_size = 0, dim = 0;
    char *graph = NULL, *sha = NULL;
    if (status == LH_ST_OK
    &&  lh_msgpack_unpack (data, size, &lh_limits_default, &zone, &manifest) == 0
    &&  lh_obj_uint (&manifest, "seq", &seq) && lh_obj_uint (&manifest, "size", &graph_size)
    &&  lh_obj_uint (&manifest, "dim", &dim) && dim == lh_vindex_params (index)->dim) {
        graph = lh_obj_strdup (lh_obj_get (&manifest, "graph"));
        sha = lh_obj_strdup (lh_obj_get (&manifest, "sha256"));
    }
    msgpack_zone_destroy (&zone);
    if (graph && sha) {
        lh_storage_info_t info;
        status = lh_storage_download (storage, graph, path, sha, &info);
        if (status == LH_ST_OK && info.size == graph_size)
            *found = true;
        else
        if (status == LH_ST_OK || streq (lh_storage_kind (storage), "checksum_mismatch"))
            lh_warn (S_NAME, NULL, "index '%s': snapshot %s fails its checksum (torn or "
                     "corrupt): rebuilding from the log", name, graph);
        else
        if (status != LH_ST_NOT_FOUND)
            lh_warn (S_NAME, NULL, "index '%s': snapshot %s cannot be read (%s): "
                     "rebuilding from the log", name, graph, lh_storage_reason (storage));
    }
    free (graph);
    free (sha);
    return *found? seq: 0;
}


//  --------------------------------------------------------------------------
//  Open and restore every index under the directory

static void
s_restore_all (s_state_t *self, const lh_link_t *link)
{
    DIR *dir = opendir (self->dir);
    if (!dir)
        return;
    lh_client_t *client = NULL;
    bool tried = false;
    struct dirent *dirent;
    while ((dirent = readdir (dir))) {
        if (dirent->d_name [0] == '.') {
            //  Leftovers of a crash: a dropped index, temporary graphs
            char *path = zsys_sprintf ("%s/%s", self->dir, dirent->d_name);
            if (strncmp (dirent->d_name, ".dropped-", 9) == 0) {
                const char *files [] = { "data.mdb", "lock.mdb" };
                for (size_t index = 0; index < 2; index++) {
                    char *file = zsys_sprintf ("%s/%s", path, files [index]);
                    unlink (file);
                    zstr_free (&file);
                }
                rmdir (path);
            }
            else
            if (strlen (dirent->d_name) > 4
            &&  streq (dirent->d_name + strlen (dirent->d_name) - 4, ".tmp"))
                unlink (path);
            zstr_free (&path);
            continue;
        }
        char *path = zsys_sprintf ("%s/%s", self->dir, dirent->d_name);
        const char *error = NULL;
        int64_t started = zclock_mono ();
        lh_vindex_t *index = lh_vindex_open (path, self->map_bytes, &error);
        if (!index) {
            lh_error (S_NAME, NULL, "cannot open index at %s: %s", path, error);
            zstr_free (&path);
            continue;
        }
        lh_vindex_set_cache (index, self->cache_entries);
        if (!tried) {
            tried = true;
            client = lh_client_new (link, "vectord-restore");
        }
        char *graph = zsys_sprintf ("%s/.restore-%s.tmp", self->dir, dirent->d_name);
        bool found = false;
        uint64_t seq = 0;
        if (client) {
            //  One job per index: one trace for its calls
            lh_job_t job;
            lh_job_start (&job, client, NULL, 0);
            lh_storage_t *storage = lh_storage_new_job (&job, self->timeout_ms);
            seq = s_fetch_snapshot (self, storage, index, graph, &found);
            lh_storage_destroy (&storage);
        }
        bool rebuilt = true;
        if (lh_vindex_restore (index, found? graph: NULL, seq, &rebuilt) == 0) {
            lh_info (S_NAME, NULL, "index '%s': %zu vectors restored %s in %" PRId64 " ms",
                     lh_vindex_name (index), lh_vindex_size (index),
                     rebuilt? "by rebuilding from the log": "from snapshot + log",
                     zclock_mono () - started);
            s_entry_t *entry = (s_entry_t *) zmalloc (sizeof (s_entry_t));
            entry->index = index;
            entry->dir = strdup (path);
            entry->refs = 1;
            entry->snapshot_ms = zclock_mono ();
            zhashx_insert (self->indexes, lh_vindex_name (index), entry);
        }
        else {
            lh_error (S_NAME, NULL, "index at %s could not be restored", path);
            lh_vindex_destroy (&index);
        }
        unlink (graph);
        zstr_free (&graph);
        zstr_free (&path);
    }
    closedir (dir);
    lh_client_destroy (&client);
}


//  --------------------------------------------------------------------------
//  Destroy the state

static void
s_state_destroy (void **state_p)
{
    s_state_t *self = (s_state_t *) *state_p;
    if (self) {
        zactor_destroy (&self->snapshotter);
        zlistx_t *names = zhashx_keys (self->indexes);
        for (char *name = (char *) zlistx_first (names); name; name = (char *) zlistx_next (names)) {
            s_entry_t *entry = (s_entry_t *) zhashx_lookup (self->indexes, name);
            zhashx_delete (self->indexes, name);
            s_release (self, entry);
        }
        zlistx_destroy (&names);
        zhashx_destroy (&self->indexes);
        pthread_mutex_destroy (&self->lock);
        free (self->dir);
        free (self->prefix);
        free (self->endpoint);
        free (self->server_key);
        free (self);
        *state_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Create the state: read config, restore every index, start snapshots

static void *
s_state_new (lh_config_t *config, const lh_link_t *link, const char **error)
{
    s_state_t *self = (s_state_t *) zmalloc (sizeof (s_state_t));
    assert (self);
    pthread_mutex_init (&self->lock, NULL);
    self->indexes = zhashx_new ();
    const char *dir = lh_config_str (config, "vectord/dir");
    self->dir = *dir? strdup (dir): zsys_sprintf ("%s/vectord", lh_config_str (config, "data/dir"));
    self->prefix = strdup (lh_config_str (config, "vectord/snapshot_prefix"));
    int64_t map_bytes = lh_config_int (config, "vectord/map_bytes");
    self->snapshot_ms = lh_config_int (config, "vectord/snapshot_ms");
    int64_t timeout = lh_config_int (config, "vectord/storage_timeout_ms");
    int64_t m = lh_config_int (config, "vectord/m");
    int64_t efc = lh_config_int (config, "vectord/ef_construction");
    int64_t ef = lh_config_int (config, "vectord/ef");
    int64_t dim_max = lh_config_int (config, "vectord/dim_max");
    int64_t k_max = lh_config_int (config, "vectord/k_max");
    int64_t batch_max = lh_config_int (config, "vectord/batch_max");
    self->compact_pct = (int) lh_config_int (config, "vectord/compact_pct");
    self->cache_entries = (size_t) lh_config_int (config, "vectord/cache_entries");
    self->endpoint = strdup (link && link->endpoint? link->endpoint: "");
    self->server_key = link && link->server_key? strdup (link->server_key): NULL;
    self->cert = link? link->cert: NULL;

    if (!*self->prefix || self->prefix [strlen (self->prefix) - 1] != '/')
        *error = "vectord/snapshot_prefix must be a key prefix ending in '/'";
    else
    if (zsys_dir_create ("%s", self->dir) != 0)
        *error = "cannot create vectord/dir";
    if (*error) {
        void *state = self;
        s_state_destroy (&state);
        return NULL;
    }
    self->map_bytes = (size_t) map_bytes;
    self->timeout_ms = (uint32_t) timeout;
    self->defaults = (lh_vparams_t) { .m = (size_t) m, .ef_construction = (size_t) efc,
                                      .ef = (size_t) ef };
    self->dim_max = (size_t) dim_max;
    self->k_max = (size_t) k_max;
    self->batch_max = (size_t) batch_max;
    s_restore_all (self, link);
    if (self->snapshot_ms > 0)
        self->snapshotter = zactor_new (s_snapshotter, self);
    lh_info (S_NAME, NULL, "%zu index(es) under %s", zhashx_size (self->indexes), self->dir);
    return self;
}


//  --------------------------------------------------------------------------
//  Request helpers. Each returns 0, or -1 after answering (400 naming the
//  field, 404); the handler then returns at once.

//  The index name of a request (name, or index) into name
static int
s_name (lh_request_t *request, const msgpack_object *body, char *name)
{
    const char *field = lh_obj_get (body, "index") && !lh_obj_get (body, "name")? "index": "name";
    const char *text = NULL;
    size_t size = 0;
    if (lh_request_str (request, body, field, LH_FIELD_REQUIRED, 0, &text, &size))
        return -1;
    bool valid = size >= 1 && size <= 64 && text [0] != '.';
    for (size_t index = 0; valid && index < size; index++)
        valid = isalnum ((unsigned char) text [index]) || strchr ("_.-", text [index]);
    if (!valid)
        return lh_request_bad (request, field, "'%s' must be 1..64 characters of A-Z a-z 0-9 "
                               "_ . - not starting with '.'", field);
    memcpy (name, text, size);
    name [size] = 0;
    return 0;
}

//  The index named in the request, referenced; NULL after answering
static s_entry_t *
s_target (s_state_t *self, lh_request_t *request, const msgpack_object *body, char *name)
{
    if (s_name (request, body, name))
        return NULL;
    s_entry_t *entry = s_acquire (self, name);
    if (!entry)
        lh_request_fail (request, LH_ST_NOT_FOUND, "no_such_index", "no index named '%s'", name);
    return entry;
}

//  Read a vector (array of numbers, or bin of dim little-endian float32)
//  into out
static int
s_vector (lh_request_t *request, const msgpack_object *object, size_t dim,
          lh_metric_t metric, float *out, const char *field)
{
    if (!object || object->type == MSGPACK_OBJECT_NIL)
        return lh_request_bad (request, field, "'%s' is required", field);
    if (object->type == MSGPACK_OBJECT_BIN) {
        if (object->via.bin.size != dim * sizeof (float))
            return lh_request_fail_field (request, LH_ST_BAD_REQUEST, "dim_mismatch", field,
                                          "'%s' has %u bytes; the index wants %zu float32 (%zu bytes)",
                                          field, object->via.bin.size, dim, dim * sizeof (float));
        memcpy (out, object->via.bin.ptr, dim * sizeof (float));
    }
    else
    if (object->type == MSGPACK_OBJECT_ARRAY) {
        if (object->via.array.size != dim)
            return lh_request_fail_field (request, LH_ST_BAD_REQUEST, "dim_mismatch", field,
                                          "'%s' has %u components; the index has dim %zu",
                                          field, object->via.array.size, dim);
        for (size_t index = 0; index < dim; index++) {
            const msgpack_object *item = &object->via.array.ptr [index];
            if (item->type == MSGPACK_OBJECT_FLOAT32 || item->type == MSGPACK_OBJECT_FLOAT64)
                out [index] = (float) item->via.f64;
            else
            if (item->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                out [index] = (float) item->via.u64;
            else
            if (item->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
                out [index] = (float) item->via.i64;
            else
                return lh_request_fail_field (request, LH_ST_BAD_REQUEST, "bad_vector", field,
                                              "'%s' component %zu is not a number", field, index);
        }
    }
    else
        return lh_request_bad (request, field, "'%s' must be an array of numbers (or bin of "
                               "float32)", field);
    int check = lh_hnsw_vector_check (out, dim, metric);
    if (check == -1)
        return lh_request_fail_field (request, LH_ST_BAD_REQUEST, "bad_vector", field,
                                      "'%s' holds NaN or an infinite value", field);
    if (check == -2)
        return lh_request_fail_field (request, LH_ST_BAD_REQUEST, "zero_norm", field,
                                      "'%s' has zero norm: cosine distance is undefined", field);
    return 0;
}

//  An array of ids (strings of 1..LH_VINDEX_ID_MAX bytes) named field
static int
s_ids (lh_request_t *request, const msgpack_object *ids, const char *field)
{
    for (uint32_t index = 0; ids && index < ids->via.array.size; index++) {
        const msgpack_object *id = &ids->via.array.ptr [index];
        if (id->type != MSGPACK_OBJECT_STR || id->via.str.size == 0
        ||  id->via.str.size > LH_VINDEX_ID_MAX)
            return lh_request_bad (request, field, "%s[%u] must be a string of 1..%d bytes",
                                   field, index, LH_VINDEX_ID_MAX);
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  create {name, dim, metric?, m?, ef_construction?, ef?}; the original
//  system's names "dims" and "distance" are taken for dim and metric

static void
s_create (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    const msgpack_object *body = lh_request_map (request);
    char name [65];
    if (!body || s_name (request, body, name))
        return;
    const char *dim_field = lh_obj_get (body, "dims") && !lh_obj_get (body, "dim")? "dims": "dim";
    const char *metric_field = lh_obj_get (body, "distance") && !lh_obj_get (body, "metric")?
                               "distance": "metric";
    lh_vparams_t params = self->defaults;
    int64_t dim = 0, m = (int64_t) params.m, efc = (int64_t) params.ef_construction,
            ef = (int64_t) params.ef;
    const char *metric = NULL;
    size_t metric_size = 0;
    if (lh_request_int (request, body, dim_field, LH_FIELD_REQUIRED, 1, (int64_t) self->dim_max, &dim)
    ||  lh_request_int (request, body, "m", 0, 2, 100, &m)
    ||  lh_request_int (request, body, "ef_construction", 0, 1, 4096, &efc)
    ||  lh_request_int (request, body, "ef", 0, 1, (int64_t) self->k_max, &ef)
    ||  lh_request_str (request, body, metric_field, 0, 0, &metric, &metric_size))
        return;
    params = (lh_vparams_t) { .dim = (size_t) dim, .metric = LH_METRIC_COSINE, .m = (size_t) m,
                              .ef_construction = (size_t) efc, .ef = (size_t) ef };
    if (metric && lh_metric_parse (metric, metric_size, &params.metric)) {
        lh_request_bad (request, metric_field, "'%s' must be cosine, l2 or ip", metric_field);
        return;
    }
    pthread_mutex_lock (&self->lock);
    if (zhashx_lookup (self->indexes, name)) {
        pthread_mutex_unlock (&self->lock);
        lh_request_fail (request, LH_ST_CONFLICT, "index_exists", "index '%s' exists", name);
        return;
    }
    char *path = zsys_sprintf ("%s/%s", self->dir, name);
    const char *error = NULL;
    lh_vindex_t *index = lh_vindex_create (path, name, &params, self->map_bytes, &error);
    s_entry_t *entry = NULL;
    if (index) {
        lh_vindex_set_cache (index, self->cache_entries);
        entry = (s_entry_t *) zmalloc (sizeof (s_entry_t));
        entry->index = index;
        entry->dir = path;
        entry->refs = 2;                //  the registry's and ours
        entry->snapshot_ms = zclock_mono ();
        zhashx_insert (self->indexes, name, entry);
    }
    else
        zstr_free (&path);
    pthread_mutex_unlock (&self->lock);
    if (!entry) {
        lh_request_fail (request, LH_ST_INTERNAL, "create_failed",
                         "cannot create index '%s': %s", name, error);
        return;
    }
    lh_info (S_NAME, lh_request_trace (request), "created index '%s' (dim %zu, %s)",
             name, params.dim, lh_metric_name (params.metric));
    lh_pack_t *pack = lh_pack_new ();
    lh_vindex_info (entry->index, pack);
    lh_request_reply_pack (request, LH_ST_CREATED, &pack);
    s_release (self, entry);
}


//  --------------------------------------------------------------------------
//  list {}

static void
s_list (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    if (!lh_request_map (request))
        return;
    zlist_t *entries = zlist_new ();
    pthread_mutex_lock (&self->lock);
    for (s_entry_t *entry = (s_entry_t *) zhashx_first (self->indexes); entry;
         entry = (s_entry_t *) zhashx_next (self->indexes)) {
        entry->refs++;
        zlist_append (entries, entry);
    }
    pthread_mutex_unlock (&self->lock);
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 2);
    lh_pack_str (pack, "indexes");
    lh_pack_array (pack, (uint32_t) zlist_size (entries));
    for (s_entry_t *entry = (s_entry_t *) zlist_first (entries); entry;
         entry = (s_entry_t *) zlist_next (entries))
        lh_vindex_info (entry->index, pack);
    lh_pack_kv_uint (pack, "count", zlist_size (entries));
    for (s_entry_t *entry = (s_entry_t *) zlist_first (entries); entry;
         entry = (s_entry_t *) zlist_next (entries))
        s_release (self, entry);
    zlist_destroy (&entries);
    lh_request_reply_pack (request, LH_ST_OK, &pack);
}


//  --------------------------------------------------------------------------
//  info {name}

static void
s_info (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    const msgpack_object *body = lh_request_map (request);
    char name [65];
    s_entry_t *entry = body? s_target (self, request, body, name): NULL;
    if (!entry)
        return;
    lh_pack_t *pack = lh_pack_new ();
    lh_vindex_info (entry->index, pack);
    lh_request_reply_pack (request, LH_ST_OK, &pack);
    s_release (self, entry);
}


//  --------------------------------------------------------------------------
//  drop {name}: gone from the registry now, files deleted when the last
//  request using it ends; snapshots deleted from storaged

static void
s_drop (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    const msgpack_object *body = lh_request_map (request);
    char name [65];
    if (!body || s_name (request, body, name))
        return;
    pthread_mutex_lock (&self->lock);
    s_entry_t *entry = (s_entry_t *) zhashx_lookup (self->indexes, name);
    if (entry) {
        zhashx_delete (self->indexes, name);
        entry->dropped = true;
        //  Out of the way at once, so a create of the same name can follow
        char *trash = zsys_sprintf ("%s/.dropped-%s-%" PRId64, self->dir, name, zclock_usecs ());
        if (rename (entry->dir, trash) == 0) {
            free (entry->dir);
            entry->dir = trash;
        }
        else
            zstr_free (&trash);
    }
    pthread_mutex_unlock (&self->lock);
    if (!entry) {
        lh_request_fail (request, LH_ST_NOT_FOUND, "no_such_index", "no index named '%s'", name);
        return;
    }
    s_release (self, entry);
    lh_storage_t *storage = lh_storage_new_request (request, self->timeout_ms);
    s_snapshot_prune (self, storage, name, NULL);
    lh_storage_destroy (&storage);
    lh_info (S_NAME, lh_request_trace (request), "dropped index '%s'", name);
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 2);
    lh_pack_kv_str (pack, "name", name);
    lh_pack_kv_bool (pack, "dropped", true);
    lh_request_reply_pack (request, LH_ST_OK, &pack);
}


//  --------------------------------------------------------------------------
//  add {name, items: [{id, vector, metadata?}]}

static void
s_add (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    const msgpack_object *body = lh_request_map (request);
    char name [65];
    s_entry_t *entry = body? s_target (self, request, body, name): NULL;
    if (!entry)
        return;
    const lh_vparams_t *params = lh_vindex_params (entry->index);
    const msgpack_object *items = NULL;
    lh_vitem_t *vitems = NULL;
    float *vectors = NULL;
    if (lh_request_array (request, body, "items", LH_FIELD_REQUIRED | LH_FIELD_LIMIT_413,
                          (uint32_t) self->batch_max, &items))
        goto done;
    size_t count = items->via.array.size;
    vitems = (lh_vitem_t *) calloc (count + 1, sizeof (lh_vitem_t));
    vectors = (float *) malloc ((count + 1) * params->dim * sizeof (float));
    assert (vitems && vectors);
    //  Every item is checked before anything is written
    for (size_t index = 0; index < count; index++) {
        const msgpack_object *item = &items->via.array.ptr [index];
        char field [48];
        const char *id;
        size_t id_size;
        if (!lh_obj_str (item, "id", &id, &id_size) || id_size == 0 || id_size > LH_VINDEX_ID_MAX) {
            snprintf (field, sizeof (field), "items[%zu].id", index);
            lh_request_bad (request, field, "items[%zu].id must be a string of 1..%d bytes",
                            index, LH_VINDEX_ID_MAX);
            goto done;
        }
        snprintf (field, sizeof (field), "items[%zu].vector", index);
        if (s_vector (request, lh_obj_get (item, "vector"), params->dim, params->metric,
                      vectors + index * params->dim, field))
            goto done;
        const msgpack_object *metadata = lh_obj_get (item, "metadata");
        vitems [index] = (lh_vitem_t) { id, id_size, vectors + index * params->dim, NULL, 0, false };
        if (metadata && metadata->type != MSGPACK_OBJECT_NIL) {
            if (metadata->type != MSGPACK_OBJECT_MAP) {
                snprintf (field, sizeof (field), "items[%zu].metadata", index);
                lh_request_bad (request, field, "items[%zu].metadata must be a map", index);
                goto done;
            }
            vitems [index].metadata_given = true;
        }
    }
    //  Metadata re-encoded into one buffer (the request's bytes are not
    //  addressable per field)
    lh_pack_t *metadata_pack = lh_pack_new ();
    size_t *offsets = (size_t *) calloc (count + 1, sizeof (size_t));
    for (size_t index = 0; index < count; index++) {
        size_t before;
        lh_pack_data (metadata_pack, &before);
        offsets [index] = before;
        if (vitems [index].metadata_given)
            lh_pack_object (metadata_pack, lh_obj_get (&items->via.array.ptr [index], "metadata"));
    }
    size_t total;
    const char *metadata_data = (const char *) lh_pack_data (metadata_pack, &total);
    for (size_t index = 0; index < count; index++)
        if (vitems [index].metadata_given) {
            size_t end = index + 1 < count? offsets [index + 1]: total;
            vitems [index].metadata = metadata_data + offsets [index];
            vitems [index].metadata_size = end - offsets [index];
        }
    const char *error = NULL;
    int rc = lh_vindex_add (entry->index, vitems, count, &error);
    lh_pack_destroy (&metadata_pack);
    free (offsets);
    if (rc) {
        lh_request_fail (request, LH_ST_INTERNAL, "write_failed", "index '%s': %s", name, error);
        goto done;
    }
    lh_vindex_maybe_compact (entry->index, self->compact_pct);
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 3);
    lh_pack_kv_str (pack, "name", name);
    lh_pack_kv_uint (pack, "added", count);
    lh_pack_kv_uint (pack, "count", lh_vindex_size (entry->index));
    lh_request_reply_pack (request, LH_ST_OK, &pack);
done:
    free (vitems);
    free (vectors);
    s_release (self, entry);
}


//  --------------------------------------------------------------------------
//  search {name, vector, k?, ef?, exclude_ids?, filter?}

static void
s_search (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    const msgpack_object *body = lh_request_map (request);
    char name [65];
    s_entry_t *entry = body? s_target (self, request, body, name): NULL;
    if (!entry)
        return;
    const lh_vparams_t *params = lh_vindex_params (entry->index);
    float *query = (float *) malloc (params->dim * sizeof (float));
    int64_t k = 10, ef = 0;
    const msgpack_object *exclude = NULL, *filter = NULL;
    if (s_vector (request, lh_obj_get (body, "vector"), params->dim, params->metric, query, "vector")
    ||  lh_request_int (request, body, "k", 0, 1, (int64_t) self->k_max, &k)
    ||  lh_request_int (request, body, "ef", 0, 1, (int64_t) self->k_max, &ef)
    ||  lh_request_array (request, body, "exclude_ids", 0, 0, &exclude)
    ||  s_ids (request, exclude, "exclude_ids")
    ||  lh_request_submap (request, body, "filter", 0, &filter))
        goto done;
    lh_pack_t *pack = lh_pack_new ();
    lh_vindex_search (entry->index, query, (size_t) k, (size_t) ef, exclude, filter, pack);
    lh_request_reply_pack (request, LH_ST_OK, &pack);
done:
    free (query);
    s_release (self, entry);
}


//  --------------------------------------------------------------------------
//  delete {name, ids}

static void
s_delete (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    const msgpack_object *body = lh_request_map (request);
    char name [65];
    s_entry_t *entry = body? s_target (self, request, body, name): NULL;
    if (!entry)
        return;
    const msgpack_object *ids = NULL;
    const char **texts = NULL;
    size_t *sizes = NULL;
    if (lh_request_array (request, body, "ids", LH_FIELD_REQUIRED, (uint32_t) self->batch_max, &ids)
    ||  s_ids (request, ids, "ids"))
        goto done;
    size_t count = ids->via.array.size;
    texts = (const char **) calloc (count + 1, sizeof (char *));
    sizes = (size_t *) calloc (count + 1, sizeof (size_t));
    for (size_t index = 0; index < count; index++) {
        texts [index] = ids->via.array.ptr [index].via.str.ptr;
        sizes [index] = ids->via.array.ptr [index].via.str.size;
    }
    const char *error = NULL;
    int deleted = lh_vindex_delete (entry->index, texts, sizes, count, &error);
    if (deleted < 0) {
        lh_request_fail (request, LH_ST_INTERNAL, "write_failed", "index '%s': %s", name, error);
        goto done;
    }
    lh_vindex_maybe_compact (entry->index, self->compact_pct);
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 3);
    lh_pack_kv_str (pack, "name", name);
    lh_pack_kv_uint (pack, "deleted", (uint64_t) deleted);
    lh_pack_kv_uint (pack, "count", lh_vindex_size (entry->index));
    lh_request_reply_pack (request, LH_ST_OK, &pack);
done:
    free (texts);
    free (sizes);
    s_release (self, entry);
}


static const lh_op_t s_ops [] = {
    { "create", s_create },
    { "list", s_list },
    { "info", s_info },
    { "drop", s_drop },
    { "add", s_add },
    { "search", s_search },
    { "delete", s_delete },
    { NULL, NULL }
};

const lh_service_t lh_vectord_service = {
    .name = "vectord",
    .ops = s_ops,
    .state_new = s_state_new,
    .state_destroy = s_state_destroy,
    .credit = 1,
    .single_instance = true             //  its indexes live in this process
};


//  --------------------------------------------------------------------------
//  Self test: storaged + vectord on a test bus

#include "lh_testbus.h"
#include "storaged.h"

static lh_reply_t *
s_test_call (lh_testbus_t *bus, const char *op, lh_pack_t *pack)
{
    size_t size = 0;
    const void *data = pack? lh_pack_data (pack, &size): NULL;
    lh_reply_t *reply = lh_testbus_call_raw (bus, "vectord", op, data, size);
    lh_pack_destroy (&pack);
    return reply;
}

static uint32_t
s_test_status (lh_testbus_t *bus, const char *op, lh_pack_t *pack)
{
    lh_reply_t *reply = s_test_call (bus, op, pack);
    uint32_t status = lh_reply_status (reply);
    lh_reply_destroy (&reply);
    return status;
}

static lh_pack_t *
s_test_named (const char *name, uint32_t extra)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 1 + extra);
    lh_pack_kv_str (pack, "name", name);
    return pack;
}

static void
s_test_vector (lh_pack_t *pack, double a, double b)
{
    lh_pack_array (pack, 2);
    lh_pack_double (pack, a);
    lh_pack_double (pack, b);
}

void
lh_vectord_test (bool verbose)
{
    printf (" * vectord: ");
    lh_testbus_t *bus = lh_testbus_new ("vectord");
    lh_testbus_set (bus, "vectord/snapshot_ms", "0");
    //  Small maps: valgrind cannot map the 64 GiB default
    lh_testbus_set (bus, "vectord/map_bytes", "67108864");
    lh_testbus_start (bus, &lh_storaged_service, 1);
    lh_testbus_start (bus, &lh_vectord_service, 1);

    //  create: 201, again 409, bad metric 400, no dim 400
    lh_pack_t *pack = s_test_named ("docs", 2);
    lh_pack_kv_uint (pack, "dim", 2);
    lh_pack_kv_str (pack, "metric", "cosine");
    assert (s_test_status (bus, "create", pack) == 201);
    pack = s_test_named ("docs", 1);
    lh_pack_kv_uint (pack, "dim", 2);
    assert (s_test_status (bus, "create", pack) == 409);
    pack = s_test_named ("other", 2);
    lh_pack_kv_uint (pack, "dim", 2);
    lh_pack_kv_str (pack, "metric", "dot");
    assert (s_test_status (bus, "create", pack) == 400);
    assert (s_test_status (bus, "create", s_test_named ("other", 0)) == 400);
    assert (s_test_status (bus, "create", s_test_named ("../x", 0)) == 400);

    //  add: a good pair; a batch with one zero vector changes nothing
    pack = s_test_named ("docs", 1);
    lh_pack_str (pack, "items");
    lh_pack_array (pack, 2);
    lh_pack_map (pack, 2);
    lh_pack_kv_str (pack, "id", "x");
    lh_pack_str (pack, "vector");
    s_test_vector (pack, 1, 0);
    lh_pack_map (pack, 3);
    lh_pack_kv_str (pack, "id", "y");
    lh_pack_str (pack, "vector");
    s_test_vector (pack, 0, 1);
    lh_pack_str (pack, "metadata");
    lh_pack_map (pack, 1);
    lh_pack_kv_str (pack, "kind", "doc");
    assert (s_test_status (bus, "add", pack) == 200);
    pack = s_test_named ("docs", 1);
    lh_pack_str (pack, "items");
    lh_pack_array (pack, 2);
    lh_pack_map (pack, 2);
    lh_pack_kv_str (pack, "id", "z");
    lh_pack_str (pack, "vector");
    s_test_vector (pack, 1, 1);
    lh_pack_map (pack, 2);
    lh_pack_kv_str (pack, "id", "zero");
    lh_pack_str (pack, "vector");
    s_test_vector (pack, 0, 0);
    lh_reply_t *reply = s_test_call (bus, "add", pack);
    assert (lh_reply_status (reply) == 400);
    const char *text;
    size_t size;
    assert (lh_obj_str (lh_obj_get (lh_reply_object (reply), "error"), "kind", &text, &size)
            && size == 9 && memcmp (text, "zero_norm", 9) == 0);
    assert (lh_obj_str (lh_obj_get (lh_reply_object (reply), "error"), "field", &text, &size)
            && size == 15 && memcmp (text, "items[1].vector", 15) == 0);
    lh_reply_destroy (&reply);
    //  Every 400 names its field
    struct {
        const char *op, *json, *field;
    } bad [] = {
        { "add", "{\"name\": \"docs\"}", "items" },
        { "add", "{\"name\": \"docs\", \"items\": [{\"vector\": [1, 0]}]}", "items[0].id" },
        { "add", "{\"name\": \"docs\", \"items\": [{\"id\": \"a\", \"vector\": [1, 0], "
                 "\"metadata\": 3}]}", "items[0].metadata" },
        { "search", "{\"name\": \"docs\", \"vector\": [1, 0], \"k\": 0}", "k" },
        { "search", "{\"name\": \"docs\", \"vector\": \"x\"}", "vector" },
        { "search", "{\"name\": \"docs\", \"vector\": [1, 0], \"exclude_ids\": [1]}", "exclude_ids" },
        { "search", "{\"name\": \"docs\", \"vector\": [1, 0], \"filter\": []}", "filter" },
        { "delete", "{\"name\": \"docs\", \"ids\": \"x\"}", "ids" },
        { "create", "{\"name\": \"n\", \"dim\": 0}", "dim" },
        { "create", "{\"name\": \"n\", \"dims\": 2, \"distance\": \"dot\"}", "distance" },
        { "info", "{\"name\": 7}", "name" },
        { "info", "{}", "name" },
    };
    for (size_t index = 0; index < sizeof (bad) / sizeof (bad [0]); index++)
        lh_testbus_expect (bus, "vectord", bad [index].op, bad [index].json, 400, NULL,
                           bad [index].field);
    //  The original system's names: dims for dim, distance for metric
    assert (lh_testbus_status (bus, "vectord", "create",
                               "{\"name\": \"orig\", \"dims\": 2, \"distance\": \"l2\"}") == 201);
    assert (lh_testbus_status (bus, "vectord", "drop", "{\"name\": \"orig\"}") == 200);
    //  dim mismatch
    pack = s_test_named ("docs", 1);
    lh_pack_str (pack, "items");
    lh_pack_array (pack, 1);
    lh_pack_map (pack, 2);
    lh_pack_kv_str (pack, "id", "w");
    lh_pack_str (pack, "vector");
    lh_pack_array (pack, 3);
    lh_pack_double (pack, 1);
    lh_pack_double (pack, 1);
    lh_pack_double (pack, 1);
    assert (s_test_status (bus, "add", pack) == 400);
    //  missing index: 404
    pack = s_test_named ("nope", 1);
    lh_pack_kv_uint (pack, "k", 1);
    assert (s_test_status (bus, "search", pack) == 404);

    //  search: y first for (0.1, 1), filter kind=doc; count still 2
    pack = s_test_named ("docs", 3);
    lh_pack_str (pack, "vector");
    s_test_vector (pack, 0.1, 1);
    lh_pack_kv_uint (pack, "k", 5);
    lh_pack_str (pack, "filter");
    lh_pack_map (pack, 1);
    lh_pack_kv_str (pack, "kind", "doc");
    reply = s_test_call (bus, "search", pack);
    assert (lh_reply_status (reply) == 200);
    const msgpack_object *results = lh_reply_object (reply);
    assert (results->type == MSGPACK_OBJECT_ARRAY && results->via.array.size == 1);
    assert (lh_obj_str (&results->via.array.ptr [0], "id", &text, &size) && size == 1 && *text == 'y');
    lh_reply_destroy (&reply);
    reply = s_test_call (bus, "info", s_test_named ("docs", 0));
    uint64_t count = 0;
    assert (lh_obj_uint (lh_reply_object (reply), "count", &count) && count == 2);
    lh_reply_destroy (&reply);

    //  A restarted vectord (no snapshot: rebuilt from the log) has both
    lh_testbus_stop (bus, "vectord");
    lh_testbus_start (bus, &lh_vectord_service, 1);
    reply = s_test_call (bus, "list", NULL);
    assert (lh_obj_uint (lh_reply_object (reply), "count", &count) && count == 1);
    lh_reply_destroy (&reply);
    pack = s_test_named ("docs", 1);
    lh_pack_str (pack, "ids");
    lh_pack_array (pack, 1);
    lh_pack_str (pack, "x");
    reply = s_test_call (bus, "delete", pack);
    assert (lh_reply_status (reply) == 200);
    assert (lh_obj_uint (lh_reply_object (reply), "count", &count) && count == 1);
    lh_reply_destroy (&reply);

    //  drop then create again
    assert (s_test_status (bus, "drop", s_test_named ("docs", 0)) == 200);
    assert (s_test_status (bus, "drop", s_test_named ("docs", 0)) == 404);
    assert (s_test_status (bus, "info", s_test_named ("docs", 0)) == 404);
    pack = s_test_named ("docs", 1);
    lh_pack_kv_uint (pack, "dim", 3);
    assert (s_test_status (bus, "create", pack) == 201);
    reply = s_test_call (bus, "info", s_test_named ("docs", 0));
    assert (lh_obj_uint (lh_reply_object (reply), "count", &count) && count == 0);
    lh_reply_destroy (&reply);

    lh_testbus_destroy (&bus);
    printf ("OK\n");
}
