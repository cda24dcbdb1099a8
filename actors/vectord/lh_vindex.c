/*  =========================================================================
    lh_vindex - one durable vector index; see lh_vindex.h
    =========================================================================
*/

#include "lh_vindex.h"
#include "lh_vmeta.h"
#include "lh_log.h"
#include <lmdb.h>
#include <pthread.h>
#include <sodium.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#define S_NAME          "vectord"
#define S_OP_ADD        1
#define S_OP_DELETE     2
#define S_BATCH         256             //  vectors per graph step on restore
#define S_NAME_MAX      64
#define S_CACHE_WAYS    4               //  result cache: entries per set
#define S_CACHE_REPLY_MAX 8192          //  larger replies are not cached
#define S_RELEASE_MS    1000            //  LMDB map pages let go at most this often
#define S_RELEASE_ITEMS 4096            //  ... and every this many items a scan reads

//  One cached search reply
typedef struct {
    unsigned char key [16];             //  BLAKE2b-128 of the request
    uint64_t version;                   //  the index's version it holds for
    uint64_t used;                      //  tick of its last use
    size_t found;                       //  results in it
    size_t size;                        //  reply bytes
    char *reply;                        //  the packed array, or NULL (empty slot)
} s_cached_t;

//  Search results by request, valid while the index's version holds
typedef struct {
    pthread_mutex_t lock;               //  guards the rest
    s_cached_t *slots;                  //  sets x S_CACHE_WAYS, or NULL (off)
    size_t sets;                        //  sets
    uint64_t tick;                      //  use counter
    uint64_t hits, misses;              //  lookups
    size_t bytes;                       //  reply bytes held
} s_cache_t;

struct _lh_vindex_t {
    char *name;                         //  index name
    char *dir;                          //  its directory
    lh_vparams_t params;                //  dim, metric, m, ...
    MDB_env *env;                       //  LMDB environment
    MDB_dbi params_db;                  //  "params"
    MDB_dbi items_db;                   //  id -> label | vector | metadata
    MDB_dbi labels_db;                  //  label -> id
    MDB_dbi log_db;                     //  seq -> op | label
    lh_hnsw_t *graph;                   //  the HNSW graph
    lh_vmeta_t *meta;                   //  label <-> id, metadata, in memory
    pthread_rwlock_t view_lock;         //  searches read graph + meta under it;
                                        //  a change applies both under it
    uint64_t version;                   //  bumped at every applied change
    s_cache_t cache;                    //  search results by request
    int64_t released_ms;                //  last let-go of LMDB's map pages
    void *map_addr;                     //  LMDB's read-only map of data.mdb, or NULL
    size_t map_size;                    //  its length
    pthread_mutex_t write_lock;         //  serialises every change
    uint64_t next_label;                //  next fresh label
    uint64_t seq;                       //  last change number
    uint64_t snapshot_seq;              //  change the stored snapshot has
    int64_t created_ms;                 //  creation time
};


static void
    s_map_locate (lh_vindex_t *self);


//  --------------------------------------------------------------------------
//  Big-endian u64 key

static void
s_key64 (uint64_t value, unsigned char *key)
{
    for (int index = 7; index >= 0; index--) {
        key [index] = (unsigned char) (value & 0xff);
        value >>= 8;
    }
}

static uint64_t
s_read64 (const unsigned char *key)
{
    uint64_t value = 0;
    for (int index = 0; index < 8; index++)
        value = (value << 8) | key [index];
    return value;
}


//  --------------------------------------------------------------------------
//  Write the params record in a write transaction

static int
s_params_write (lh_vindex_t *self, MDB_txn *txn)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 10);
    lh_pack_kv_str (pack, "name", self->name);
    lh_pack_kv_uint (pack, "dim", self->params.dim);
    lh_pack_kv_str (pack, "metric", lh_metric_name (self->params.metric));
    lh_pack_kv_uint (pack, "m", self->params.m);
    lh_pack_kv_uint (pack, "ef_construction", self->params.ef_construction);
    lh_pack_kv_uint (pack, "ef", self->params.ef);
    lh_pack_kv_uint (pack, "next_label", self->next_label);
    lh_pack_kv_uint (pack, "seq", self->seq);
    lh_pack_kv_uint (pack, "snapshot_seq", self->snapshot_seq);
    lh_pack_kv_int (pack, "created_ms", self->created_ms);
    size_t size;
    const void *data = lh_pack_data (pack, &size);
    MDB_val key = { 6, "params" }, value = { size, (void *) data };
    int rc = mdb_put (txn, self->params_db, &key, &value, 0);
    lh_pack_destroy (&pack);
    return rc == 0? 0: -1;
}


//  --------------------------------------------------------------------------
//  Read the params record; returns 0 or -1

static int
s_params_read (lh_vindex_t *self, MDB_txn *txn)
{
    MDB_val key = { 6, "params" }, value;
    if (mdb_get (txn, self->params_db, &key, &value))
        return -1;
    msgpack_zone zone;
    msgpack_zone_init (&zone, 1024);
    msgpack_object object;
    int rc = -1;
    uint64_t dim, m, efc, ef;
    const char *metric;
    size_t metric_size;
    if (msgpack_unpack (value.mv_data, value.mv_size, NULL, &zone, &object) == MSGPACK_UNPACK_SUCCESS
    &&  lh_obj_uint (&object, "dim", &dim) && lh_obj_uint (&object, "m", &m)
    &&  lh_obj_uint (&object, "ef_construction", &efc) && lh_obj_uint (&object, "ef", &ef)
    &&  lh_obj_str (&object, "metric", &metric, &metric_size)
    &&  lh_metric_parse (metric, metric_size, &self->params.metric) == 0
    &&  lh_obj_uint (&object, "next_label", &self->next_label)
    &&  lh_obj_uint (&object, "seq", &self->seq)
    &&  lh_obj_uint (&object, "snapshot_seq", &self->snapshot_seq)
    &&  (self->name = lh_obj_strdup (lh_obj_get (&object, "name")))) {
        lh_obj_int (&object, "created_ms", &self->created_ms);
        self->params.dim = (size_t) dim;
        self->params.m = (size_t) m;
        self->params.ef_construction = (size_t) efc;
        self->params.ef = (size_t) ef;
        rc = 0;
    }
    msgpack_zone_destroy (&zone);
    return rc;
}


//  --------------------------------------------------------------------------
//  Open the environment and its databases in self->dir

static int
s_env_open (lh_vindex_t *self, size_t map_bytes, bool create, const char **error)
{
    if (mdb_env_create (&self->env)) {
        *error = "cannot create an LMDB environment";
        return -1;
    }
    mdb_env_set_maxdbs (self->env, 4);
    mdb_env_set_mapsize (self->env, map_bytes);
    if (mdb_env_open (self->env, self->dir, MDB_NOTLS, 0600)) {
        *error = "cannot open the index's LMDB environment";
        return -1;
    }
    s_map_locate (self);
    MDB_txn *txn;
    if (mdb_txn_begin (self->env, NULL, 0, &txn)) {
        *error = "cannot begin an LMDB transaction";
        return -1;
    }
    unsigned flags = create? MDB_CREATE: 0;
    if (mdb_dbi_open (txn, "params", flags, &self->params_db)
    ||  mdb_dbi_open (txn, "items", flags, &self->items_db)
    ||  mdb_dbi_open (txn, "labels", flags, &self->labels_db)
    ||  mdb_dbi_open (txn, "log", flags, &self->log_db)) {
        mdb_txn_abort (txn);
        *error = "the index's LMDB environment lacks its databases";
        return -1;
    }
    if (create) {
        if (s_params_write (self, txn) || mdb_txn_commit (txn)) {
            *error = "cannot write the index's parameters";
            return -1;
        }
    }
    else {
        int rc = s_params_read (self, txn);
        mdb_txn_commit (txn);
        if (rc) {
            *error = "the index's parameters are unreadable";
            return -1;
        }
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  A fresh shell

static lh_vindex_t *
s_new (const char *dir)
{
    lh_vindex_t *self = (lh_vindex_t *) zmalloc (sizeof (lh_vindex_t));
    assert (self);
    self->dir = strdup (dir);
    pthread_mutex_init (&self->write_lock, NULL);
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init (&attr);
    //  Writers first, as the graph's own lock: searches must not starve adds
    pthread_rwlockattr_setkind_np (&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init (&self->view_lock, &attr);
    pthread_rwlockattr_destroy (&attr);
    pthread_mutex_init (&self->cache.lock, NULL);
    self->meta = lh_vmeta_new ();
    lh_vindex_set_cache (self, LH_VINDEX_CACHE_ENTRIES);
    return self;
}


//  --------------------------------------------------------------------------
//  Let go of the LMDB map's pages this process has mapped. The map is
//  read-only and shared (no MDB_WRITEMAP): the pages stay in the page
//  cache and a later read maps them again, but they leave our RSS. Every
//  read faults in the 64 KiB around it, so writes and restores would
//  otherwise leave most of the file mapped. At most every S_RELEASE_MS
//  unless forced.

static void
s_map_release (lh_vindex_t *self, bool force)
{
    int64_t now = zclock_mono ();
    if (!self->map_addr || (!force && now - self->released_ms < S_RELEASE_MS))
        return;
    self->released_ms = now;
    MDB_envinfo info;
    size_t used = self->map_size;
    if (mdb_env_info (self->env, &info) == 0) {
        //  Only the part of the map the file covers can have pages mapped
        size_t file = (info.me_last_pgno + 1) * (size_t) sysconf (_SC_PAGESIZE);
        used = file < used? file: used;
    }
    if (madvise (self->map_addr, used, MADV_DONTNEED))
        lh_warn (S_NAME, NULL, "index '%s': madvise of its LMDB map failed: %s", self->name,
                 strerror (errno));
}


//  --------------------------------------------------------------------------
//  Where LMDB mapped data.mdb (it does not say unless the map is fixed):
//  the mapping of the file's inode in /proc/self/maps. Leaves map_addr
//  NULL when the map is writable (MDB_WRITEMAP) or not found.

static void
s_map_locate (lh_vindex_t *self)
{
    unsigned flags = 0;
    struct stat file;
    char *path = zsys_sprintf ("%s/data.mdb", self->dir);
    int found = stat (path, &file);
    zstr_free (&path);
    if (mdb_env_get_flags (self->env, &flags) || (flags & MDB_WRITEMAP) || found)
        return;
    FILE *maps = fopen ("/proc/self/maps", "r");
    char line [4096 + 128];
    while (maps && fgets (line, sizeof (line), maps)) {
        unsigned long start, end, offset, inode;
        unsigned int major, minor;
        char perms [8];
        if (sscanf (line, "%lx-%lx %7s %lx %x:%x %lu", &start, &end, perms, &offset,
                    &major, &minor, &inode) == 7
        &&  inode == (unsigned long) file.st_ino && offset == 0
        &&  makedev (major, minor) == file.st_dev && perms [1] == '-') {
            self->map_addr = (void *) start;
            self->map_size = end - start;
            break;
        }
    }
    if (maps)
        fclose (maps);
}


//  --------------------------------------------------------------------------
//  Fill the in-memory records from the items (caller holds the view lock
//  for writing, or nobody else sees the index yet)

static int
s_meta_load (lh_vindex_t *self, MDB_txn *txn)
{
    lh_vmeta_destroy (&self->meta);
    self->meta = lh_vmeta_new ();
    size_t vector_bytes = self->params.dim * sizeof (float);
    MDB_cursor *cursor;
    MDB_val key, value;
    if (mdb_cursor_open (txn, self->items_db, &cursor))
        return -1;
    int rc = mdb_cursor_get (cursor, &key, &value, MDB_FIRST);
    for (size_t count = 1; rc == 0; count++) {
        if (value.mv_size >= 8 + vector_bytes && key.mv_size > 0
        &&  key.mv_size <= LH_VINDEX_ID_MAX)
            lh_vmeta_put (self->meta, s_read64 ((const unsigned char *) value.mv_data),
                          (const char *) key.mv_data, key.mv_size,
                          (const char *) value.mv_data + 8 + vector_bytes,
                          value.mv_size - 8 - vector_bytes);
        if (count % S_RELEASE_ITEMS == 0)
            s_map_release (self, true);
        rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT);
    }
    mdb_cursor_close (cursor);
    return rc == MDB_NOTFOUND? 0: -1;
}


//  --------------------------------------------------------------------------
//  The result cache: empty it (caller holds its lock, or owns the index)

static void
s_cache_clear (s_cache_t *cache)
{
    for (size_t slot = 0; cache->slots && slot < cache->sets * S_CACHE_WAYS; slot++)
        free (cache->slots [slot].reply);
    free (cache->slots);
    cache->slots = NULL;
    cache->sets = 0;
    cache->bytes = 0;
}

//  The key of a search request: what decides its answer
static void
s_cache_key (lh_vindex_t *self, const float *query, size_t k, size_t ef,
             const msgpack_object *exclude, const msgpack_object *filter, unsigned char *key)
{
    crypto_generichash_state state;
    crypto_generichash_init (&state, NULL, 0, 16);
    crypto_generichash_update (&state, (const unsigned char *) query,
                               self->params.dim * sizeof (float));
    uint64_t numbers [2] = { k, ef };
    crypto_generichash_update (&state, (const unsigned char *) numbers, sizeof (numbers));
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    if (exclude)
        msgpack_pack_object (&packer, *exclude);
    else
        msgpack_pack_nil (&packer);
    if (filter)
        msgpack_pack_object (&packer, *filter);
    else
        msgpack_pack_nil (&packer);
    crypto_generichash_update (&state, (const unsigned char *) buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
    crypto_generichash_final (&state, key, 16);
}

//  Pack the cached answer of key at version into pack; true on a hit
static bool
s_cache_get (lh_vindex_t *self, const unsigned char *key, uint64_t version, lh_pack_t *pack,
             size_t *found)
{
    s_cache_t *cache = &self->cache;
    bool hit = false;
    pthread_mutex_lock (&cache->lock);
    if (cache->slots) {
        s_cached_t *set = cache->slots + (key [0] | key [1] << 8 | key [2] << 16) % cache->sets
                                       * S_CACHE_WAYS;
        for (size_t way = 0; way < S_CACHE_WAYS && !hit; way++)
            if (set [way].reply && set [way].version == version
            &&  memcmp (set [way].key, key, 16) == 0) {
                set [way].used = ++cache->tick;
                lh_pack_raw (pack, set [way].reply, set [way].size);
                *found = set [way].found;
                hit = true;
            }
        if (hit)
            cache->hits++;
        else
            cache->misses++;
    }
    pthread_mutex_unlock (&cache->lock);
    return hit;
}

//  Keep an answer: in its set, over a stale entry, else the least used
static void
s_cache_put (lh_vindex_t *self, const unsigned char *key, uint64_t version,
             const void *reply, size_t size, size_t found)
{
    s_cache_t *cache = &self->cache;
    if (size > S_CACHE_REPLY_MAX)
        return;
    pthread_mutex_lock (&cache->lock);
    if (cache->slots) {
        s_cached_t *set = cache->slots + (key [0] | key [1] << 8 | key [2] << 16) % cache->sets
                                       * S_CACHE_WAYS;
        s_cached_t *victim = &set [0];
        for (size_t way = 0; way < S_CACHE_WAYS; way++) {
            s_cached_t *slot = &set [way];
            if (!slot->reply || slot->version != version || memcmp (slot->key, key, 16) == 0) {
                victim = slot;
                break;
            }
            if (slot->used < victim->used)
                victim = slot;
        }
        cache->bytes -= victim->size;
        free (victim->reply);
        victim->reply = (char *) malloc (size);
        assert (victim->reply);
        memcpy (victim->reply, reply, size);
        memcpy (victim->key, key, 16);
        victim->version = version;
        victim->used = ++cache->tick;
        victim->found = found;
        victim->size = size;
        cache->bytes += size;
    }
    pthread_mutex_unlock (&cache->lock);
}


//  --------------------------------------------------------------------------
//  Size the result cache: about entries answers (0 = off); clears it

void
lh_vindex_set_cache (lh_vindex_t *self, size_t entries)
{
    assert (self);
    pthread_mutex_lock (&self->cache.lock);
    s_cache_clear (&self->cache);
    if (entries > 0) {
        self->cache.sets = (entries + S_CACHE_WAYS - 1) / S_CACHE_WAYS;
        self->cache.slots = (s_cached_t *) calloc (self->cache.sets * S_CACHE_WAYS,
                                                   sizeof (s_cached_t));
        assert (self->cache.slots);
    }
    pthread_mutex_unlock (&self->cache.lock);
}


//  --------------------------------------------------------------------------
//  Create a new index in dir

lh_vindex_t *
lh_vindex_create (const char *dir, const char *name, const lh_vparams_t *params,
                  size_t map_bytes, const char **error)
{
    assert (dir && name && params && error);
    if (mkdir (dir, 0700) != 0) {
        *error = errno == EEXIST? "the index directory exists already": "cannot create the index directory";
        return NULL;
    }
    lh_vindex_t *self = s_new (dir);
    self->name = strdup (name);
    self->params = *params;
    self->next_label = 1;
    self->created_ms = zclock_time ();
    self->graph = lh_hnsw_new (params->dim, params->metric, params->m,
                               params->ef_construction, params->ef);
    if (!self->graph) {
        *error = "bad index parameters";
        lh_vindex_drop (&self);
        return NULL;
    }
    if (s_env_open (self, map_bytes, true, error))
        lh_vindex_drop (&self);
    return self;
}


//  --------------------------------------------------------------------------
//  Open an existing index (graph empty until restored)

lh_vindex_t *
lh_vindex_open (const char *dir, size_t map_bytes, const char **error)
{
    lh_vindex_t *self = s_new (dir);
    if (s_env_open (self, map_bytes, false, error)) {
        lh_vindex_destroy (&self);
        return NULL;
    }
    self->graph = lh_hnsw_new (self->params.dim, self->params.metric, self->params.m,
                               self->params.ef_construction, self->params.ef);
    if (!self->graph) {
        *error = "the index's stored parameters are invalid";
        lh_vindex_destroy (&self);
    }
    return self;
}


//  --------------------------------------------------------------------------
//  Close (memory only)

void
lh_vindex_destroy (lh_vindex_t **self_p)
{
    assert (self_p);
    lh_vindex_t *self = *self_p;
    if (self) {
        if (self->env)
            mdb_env_close (self->env);
        lh_hnsw_destroy (&self->graph);
        lh_vmeta_destroy (&self->meta);
        s_cache_clear (&self->cache);
        pthread_mutex_destroy (&self->cache.lock);
        pthread_rwlock_destroy (&self->view_lock);
        pthread_mutex_destroy (&self->write_lock);
        free (self->name);
        free (self->dir);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Close and delete the files

void
lh_vindex_drop (lh_vindex_t **self_p)
{
    assert (self_p);
    lh_vindex_t *self = *self_p;
    if (self) {
        char *dir = strdup (self->dir);
        lh_vindex_destroy (self_p);
        const char *files [] = { "data.mdb", "lock.mdb" };
        for (size_t index = 0; index < 2; index++) {
            char *path = zsys_sprintf ("%s/%s", dir, files [index]);
            unlink (path);
            zstr_free (&path);
        }
        rmdir (dir);
        free (dir);
    }
}


//  --------------------------------------------------------------------------
//  Add a graph batch under new labels from the items of a read txn:
//  used by the restore paths

typedef struct {
    lh_vindex_t *index;                 //  the index
    uint64_t *labels;                   //  S_BATCH labels
    float *vectors;                     //  S_BATCH x dim
    size_t count;                       //  filled
    int rc;                             //  -1 if the graph refused
} s_batch_t;

static void
s_batch_flush (s_batch_t *self)
{
    if (self->count && lh_hnsw_add (self->index->graph, self->labels, self->vectors, self->count))
        self->rc = -1;
    self->count = 0;
}

static void
s_batch_push (s_batch_t *self, uint64_t label, const void *vector)
{
    size_t dim = self->index->params.dim;
    self->labels [self->count] = label;
    memcpy (self->vectors + self->count * dim, vector, dim * sizeof (float));
    if (++self->count == S_BATCH)
        s_batch_flush (self);
}


//  --------------------------------------------------------------------------
//  Rebuild the graph from every item

static int
s_rebuild (lh_vindex_t *self, MDB_txn *txn)
{
    lh_hnsw_destroy (&self->graph);
    self->graph = lh_hnsw_new (self->params.dim, self->params.metric, self->params.m,
                               self->params.ef_construction, self->params.ef);
    if (!self->graph)
        return -1;
    s_batch_t batch = { self, malloc (S_BATCH * sizeof (uint64_t)),
                        malloc (S_BATCH * self->params.dim * sizeof (float)), 0, 0 };
    size_t vector_bytes = self->params.dim * sizeof (float);
    MDB_cursor *cursor;
    MDB_val key, value;
    mdb_cursor_open (txn, self->items_db, &cursor);
    int rc = mdb_cursor_get (cursor, &key, &value, MDB_FIRST);
    for (size_t count = 1; rc == 0 && batch.rc == 0; count++) {
        if (value.mv_size >= 8 + vector_bytes)
            s_batch_push (&batch, s_read64 ((const unsigned char *) value.mv_data),
                          (const char *) value.mv_data + 8);
        if (count % S_RELEASE_ITEMS == 0)
            s_map_release (self, true);
        rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT);
    }
    mdb_cursor_close (cursor);
    s_batch_flush (&batch);
    free (batch.labels);
    free (batch.vectors);
    return batch.rc;
}


//  --------------------------------------------------------------------------
//  Replay the log after seq onto the loaded graph

static int
s_replay (lh_vindex_t *self, MDB_txn *txn, uint64_t seq)
{
    s_batch_t batch = { self, malloc (S_BATCH * sizeof (uint64_t)),
                        malloc (S_BATCH * self->params.dim * sizeof (float)), 0, 0 };
    size_t vector_bytes = self->params.dim * sizeof (float);
    unsigned char start [8];
    s_key64 (seq + 1, start);
    MDB_cursor *cursor;
    MDB_val key = { 8, start }, value;
    mdb_cursor_open (txn, self->log_db, &cursor);
    int rc = mdb_cursor_get (cursor, &key, &value, MDB_SET_RANGE);
    size_t replayed = 0;
    while (rc == 0 && batch.rc == 0) {
        if (value.mv_size == 9) {
            const unsigned char *entry = (const unsigned char *) value.mv_data;
            uint64_t label = s_read64 (entry + 1);
            if (entry [0] == S_OP_ADD) {
                unsigned char label_key [8];
                s_key64 (label, label_key);
                MDB_val lkey = { 8, label_key }, id, item;
                //  Added and still current (else a later entry removed it)
                if (mdb_get (txn, self->labels_db, &lkey, &id) == 0
                &&  mdb_get (txn, self->items_db, &id, &item) == 0
                &&  item.mv_size >= 8 + vector_bytes
                &&  s_read64 ((const unsigned char *) item.mv_data) == label)
                    s_batch_push (&batch, label, (const char *) item.mv_data + 8);
            }
            else {
                s_batch_flush (&batch);
                lh_hnsw_remove (self->graph, &label, 1);
            }
            replayed++;
        }
        rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT);
    }
    mdb_cursor_close (cursor);
    s_batch_flush (&batch);
    free (batch.labels);
    free (batch.vectors);
    lh_debug (S_NAME, NULL, "index '%s': replayed %zu log entries after seq %" PRIu64,
              self->name, replayed, seq);
    return batch.rc;
}


//  --------------------------------------------------------------------------
//  Build the graph from a snapshot + log, or from the items

int
lh_vindex_restore (lh_vindex_t *self, const char *graph_path, uint64_t graph_seq,
                   bool *rebuilt)
{
    assert (self);
    pthread_mutex_lock (&self->write_lock);
    pthread_rwlock_wrlock (&self->view_lock);
    MDB_txn *txn;
    int rc = -1;
    *rebuilt = true;
    if (mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn) == 0) {
        lh_hnsw_t *loaded = NULL;
        //  The log must hold every change after graph_seq
        if (graph_path && graph_seq >= self->snapshot_seq && graph_seq <= self->seq)
            loaded = lh_hnsw_load (graph_path, self->params.dim, self->params.metric,
                                   self->params.ef);
        if (loaded) {
            lh_hnsw_destroy (&self->graph);
            self->graph = loaded;
            rc = s_replay (self, txn, graph_seq);
            *rebuilt = false;
        }
        if (rc) {
            rc = s_rebuild (self, txn);
            *rebuilt = true;
        }
        if (rc == 0)
            rc = s_meta_load (self, txn);
        mdb_txn_abort (txn);
    }
    self->version++;
    s_map_release (self, true);
    pthread_rwlock_unlock (&self->view_lock);
    pthread_mutex_unlock (&self->write_lock);
    return rc;
}


//  --------------------------------------------------------------------------
//  Append a log entry in txn

static int
s_log (lh_vindex_t *self, MDB_txn *txn, int op, uint64_t label)
{
    unsigned char key_bytes [8], entry [9];
    s_key64 (++self->seq, key_bytes);
    entry [0] = (unsigned char) op;
    s_key64 (label, entry + 1);
    MDB_val key = { 8, key_bytes }, value = { 9, entry };
    return mdb_put (txn, self->log_db, &key, &value, MDB_APPEND);
}


//  --------------------------------------------------------------------------
//  Remove an id's item and label in txn; returns its label, 0 if none

static uint64_t
s_unlink (lh_vindex_t *self, MDB_txn *txn, MDB_val *id)
{
    MDB_val item;
    if (mdb_get (txn, self->items_db, id, &item) || item.mv_size < 8)
        return 0;
    uint64_t label = s_read64 ((const unsigned char *) item.mv_data);
    unsigned char label_key [8];
    s_key64 (label, label_key);
    MDB_val lkey = { 8, label_key };
    mdb_del (txn, self->labels_db, &lkey, NULL);
    return label;
}


//  --------------------------------------------------------------------------
//  Add (or replace) items durably. An item re-added with the very vector
//  it has keeps its label: only its metadata is written, the graph is
//  left alone (a playbook entry recorded again is such a re-add; a fresh
//  label would leave a tombstone behind each time, and the tombstones a
//  graph rebuild every few hundred records).

int
lh_vindex_add (lh_vindex_t *self, const lh_vitem_t *items, size_t count,
               const char **error)
{
    assert (self);
    size_t dim = self->params.dim;
    size_t vector_bytes = dim * sizeof (float);
    uint64_t *labels = (uint64_t *) malloc ((count + 1) * sizeof (uint64_t));
    uint64_t *graph_labels = (uint64_t *) malloc ((count + 1) * sizeof (uint64_t));
    uint64_t *removed = (uint64_t *) malloc ((count + 1) * sizeof (uint64_t));
    float *vectors = (float *) malloc ((count + 1) * vector_bytes);
    size_t *metadata_at = (size_t *) malloc ((count + 1) * 2 * sizeof (size_t));
    size_t removed_count = 0, graph_count = 0;
    zchunk_t *value_buffer = zchunk_new (NULL, 8 + vector_bytes + 256);
    zchunk_t *metadata = zchunk_new (NULL, 4096);
    assert (labels && graph_labels && removed && vectors && metadata_at && value_buffer && metadata);
    int rc = -1;

    pthread_mutex_lock (&self->write_lock);
    uint64_t old_label = self->next_label, old_seq = self->seq;
    MDB_txn *txn;
    if (mdb_txn_begin (self->env, NULL, 0, &txn)) {
        *error = "cannot begin an LMDB write transaction";
        goto done;
    }
    for (size_t index = 0; index < count; index++) {
        const lh_vitem_t *item = &items [index];
        MDB_val id = { item->id_size, (void *) item->id }, old;
        bool exists = mdb_get (txn, self->items_db, &id, &old) == 0 && old.mv_size >= 8 + vector_bytes;
        bool same = exists && memcmp ((const char *) old.mv_data + 8, item->vector, vector_bytes) == 0;
        uint64_t label = same? s_read64 ((const unsigned char *) old.mv_data): self->next_label++;
        //  The value: label, vector, metadata (given, or kept from before)
        zchunk_set (value_buffer, NULL, 0);
        unsigned char label_bytes [8];
        s_key64 (label, label_bytes);
        zchunk_extend (value_buffer, label_bytes, 8);
        zchunk_extend (value_buffer, item->vector, vector_bytes);
        if (item->metadata_given) {
            if (item->metadata_size > 1)       //  an empty map (1 byte) clears
                zchunk_extend (value_buffer, item->metadata, item->metadata_size);
        }
        else
        if (exists && old.mv_size > 8 + vector_bytes)
            zchunk_extend (value_buffer, (const char *) old.mv_data + 8 + vector_bytes,
                           old.mv_size - 8 - vector_bytes);
        //  The metadata as stored, for the in-memory record after the commit
        metadata_at [2 * index] = zchunk_size (metadata);
        metadata_at [2 * index + 1] = zchunk_size (value_buffer) - 8 - vector_bytes;
        zchunk_extend (metadata, zchunk_data (value_buffer) + 8 + vector_bytes,
                       metadata_at [2 * index + 1]);
        MDB_val value = { zchunk_size (value_buffer), zchunk_data (value_buffer) };
        labels [index] = label;
        if (same) {
            if (mdb_put (txn, self->items_db, &id, &value, 0))
                goto failed;
            continue;
        }
        uint64_t previous = s_unlink (self, txn, &id);
        if (previous) {
            removed [removed_count++] = previous;
            if (s_log (self, txn, S_OP_DELETE, previous))
                goto failed;
        }
        MDB_val lkey = { 8, label_bytes };
        if (mdb_put (txn, self->items_db, &id, &value, 0)
        ||  mdb_put (txn, self->labels_db, &lkey, &id, 0)
        ||  s_log (self, txn, S_OP_ADD, label))
            goto failed;
        graph_labels [graph_count] = label;
        memcpy (vectors + graph_count * dim, item->vector, vector_bytes);
        graph_count++;
    }
    if (s_params_write (self, txn))
        goto failed;
    if (mdb_txn_commit (txn)) {
        txn = NULL;
        goto failed;
    }
    //  Durable: now the graph and the records, together for searches
    rc = 0;
    pthread_rwlock_wrlock (&self->view_lock);
    if ((graph_count || removed_count)
    &&  lh_hnsw_apply (self->graph, graph_labels, vectors, graph_count, removed, removed_count)) {
        *error = "out of memory adding to the graph";
        lh_error (S_NAME, NULL, "index '%s': graph add failed after commit", self->name);
        rc = -1;
    }
    for (size_t index = 0; index < count; index++)
        lh_vmeta_put (self->meta, labels [index], items [index].id, items [index].id_size,
                      zchunk_data (metadata) + metadata_at [2 * index],
                      metadata_at [2 * index + 1]);
    self->version++;
    pthread_rwlock_unlock (&self->view_lock);
    s_map_release (self, false);
    goto done;
failed:
    if (txn)
        mdb_txn_abort (txn);
    self->next_label = old_label;
    self->seq = old_seq;
    *error = "the index's LMDB write failed (disk full or map full?)";
done:
    pthread_mutex_unlock (&self->write_lock);
    zchunk_destroy (&value_buffer);
    zchunk_destroy (&metadata);
    free (labels);
    free (graph_labels);
    free (removed);
    free (vectors);
    free (metadata_at);
    return rc;
}


//  --------------------------------------------------------------------------
//  Delete ids durably

int
lh_vindex_delete (lh_vindex_t *self, const char **ids, const size_t *sizes,
                  size_t count, const char **error)
{
    assert (self);
    uint64_t *removed = (uint64_t *) malloc ((count + 1) * sizeof (uint64_t));
    assert (removed);
    size_t removed_count = 0;
    int rc = -1;
    pthread_mutex_lock (&self->write_lock);
    uint64_t old_seq = self->seq;
    MDB_txn *txn;
    if (mdb_txn_begin (self->env, NULL, 0, &txn) == 0) {
        bool failed = false;
        for (size_t index = 0; index < count && !failed; index++) {
            MDB_val id = { sizes [index], (void *) ids [index] };
            uint64_t label = s_unlink (self, txn, &id);
            if (label) {
                removed [removed_count++] = label;
                failed = mdb_del (txn, self->items_db, &id, NULL) != 0
                      || s_log (self, txn, S_OP_DELETE, label) != 0;
            }
        }
        if (!failed && removed_count == 0) {
            mdb_txn_abort (txn);
            rc = 0;
        }
        else
        if (!failed && s_params_write (self, txn) == 0 && mdb_txn_commit (txn) == 0) {
            pthread_rwlock_wrlock (&self->view_lock);
            lh_hnsw_remove (self->graph, removed, removed_count);
            for (size_t index = 0; index < removed_count; index++)
                lh_vmeta_remove (self->meta, removed [index]);
            self->version++;
            pthread_rwlock_unlock (&self->view_lock);
            s_map_release (self, false);
            rc = (int) removed_count;
        }
        else {
            if (failed)
                mdb_txn_abort (txn);
            self->seq = old_seq;
        }
    }
    if (rc < 0)
        *error = "the index's LMDB write failed";
    pthread_mutex_unlock (&self->write_lock);
    free (removed);
    return rc;
}


//  --------------------------------------------------------------------------
//  Search: the filter sees exclusions and metadata in the in-memory
//  records; nothing is read from LMDB

typedef struct {
    lh_vindex_t *index;                 //  the index
    uint64_t *excluded;                 //  sorted labels to leave out
    size_t excluded_count;              //  how many
    const msgpack_object *filter;       //  metadata equalities, or NULL
} s_search_t;

static int
s_compare64 (const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return x < y? -1: x > y;
}

static bool
s_search_filter (uint64_t label, void *arg)
{
    s_search_t *self = (s_search_t *) arg;
    if (self->excluded_count
    &&  bsearch (&label, self->excluded, self->excluded_count, sizeof (uint64_t), s_compare64))
        return false;
    if (!self->filter || self->filter->via.map.size == 0)
        return true;
    const lh_vrecord_t *record = lh_vmeta_by_label (self->index->meta, label);
    if (!record || record->metadata_size == 0)
        return false;
    msgpack_zone zone;
    msgpack_zone_init (&zone, 512);
    msgpack_object metadata;
    bool pass = false;
    if (msgpack_unpack (lh_vrecord_metadata (record), record->metadata_size, NULL, &zone,
                        &metadata) == MSGPACK_UNPACK_SUCCESS
    &&  metadata.type == MSGPACK_OBJECT_MAP) {
        pass = true;
        for (uint32_t index = 0; pass && index < self->filter->via.map.size; index++) {
            const msgpack_object_kv *want = &self->filter->via.map.ptr [index];
            pass = false;
            for (uint32_t other = 0; other < metadata.via.map.size; other++) {
                const msgpack_object_kv *have = &metadata.via.map.ptr [other];
                if (msgpack_object_equal (want->key, have->key)) {
                    pass = msgpack_object_equal (want->val, have->val);
                    break;
                }
            }
        }
    }
    msgpack_zone_destroy (&zone);
    return pass;
}

size_t
lh_vindex_search (lh_vindex_t *self, const float *query, size_t k, size_t ef,
                  const msgpack_object *exclude, const msgpack_object *filter,
                  lh_pack_t *pack)
{
    assert (self);
    unsigned char key [16];
    bool cached = self->cache.slots != NULL;
    if (cached)
        s_cache_key (self, query, k, ef, exclude, filter, key);
    pthread_rwlock_rdlock (&self->view_lock);
    //  The version cannot change while the view is held
    size_t found = 0;
    if (cached && s_cache_get (self, key, self->version, pack, &found)) {
        pthread_rwlock_unlock (&self->view_lock);
        return found;
    }
    s_search_t search = { self, NULL, 0, filter };
    if (exclude && exclude->type == MSGPACK_OBJECT_ARRAY && exclude->via.array.size) {
        search.excluded = (uint64_t *) malloc (exclude->via.array.size * sizeof (uint64_t));
        assert (search.excluded);
        for (uint32_t index = 0; index < exclude->via.array.size; index++) {
            const msgpack_object *id = &exclude->via.array.ptr [index];
            if (id->type != MSGPACK_OBJECT_STR || id->via.str.size == 0)
                continue;
            const lh_vrecord_t *record = lh_vmeta_by_id (self->meta, id->via.str.ptr,
                                                         id->via.str.size);
            if (record)
                search.excluded [search.excluded_count++] = record->label;
        }
        qsort (search.excluded, search.excluded_count, sizeof (uint64_t), s_compare64);
    }
    lh_hit_t *hits = (lh_hit_t *) malloc ((k + 1) * sizeof (lh_hit_t));
    assert (hits);
    bool filtered = search.excluded_count || (filter && filter->via.map.size);
    found = lh_hnsw_search (self->graph, query, k, ef, filtered? s_search_filter: NULL,
                            &search, search.excluded_count, hits);
    //  Every label the graph returns has its record: both change together
    const lh_vrecord_t **records = (const lh_vrecord_t **) calloc (found + 1, sizeof (void *));
    size_t kept = 0;
    for (size_t index = 0; index < found; index++)
        if ((records [index] = lh_vmeta_by_label (self->meta, hits [index].label)))
            kept++;
    size_t start = 0;
    lh_pack_data (pack, &start);
    lh_pack_array (pack, (uint32_t) kept);
    for (size_t index = 0; index < found; index++) {
        const lh_vrecord_t *record = records [index];
        if (!record)
            continue;
        lh_pack_map (pack, 3);
        lh_pack_str (pack, "id");
        lh_pack_strn (pack, record->id, record->id_size);
        lh_pack_kv_double (pack, "distance", hits [index].distance);
        lh_pack_str (pack, "metadata");
        if (record->metadata_size > 0)
            lh_pack_raw (pack, lh_vrecord_metadata (record), record->metadata_size);
        else
            lh_pack_map (pack, 0);
    }
    if (cached) {
        size_t end;
        const char *data = (const char *) lh_pack_data (pack, &end);
        s_cache_put (self, key, self->version, data + start, end - start, kept);
    }
    pthread_rwlock_unlock (&self->view_lock);
    free (records);
    free (search.excluded);
    free (hits);
    return kept;
}


//  --------------------------------------------------------------------------
//  Pack the index's description

void
lh_vindex_info (lh_vindex_t *self, lh_pack_t *pack)
{
    pthread_mutex_lock (&self->write_lock);
    uint64_t seq = self->seq, snapshot_seq = self->snapshot_seq;
    pthread_mutex_unlock (&self->write_lock);
    size_t count = lh_hnsw_size (self->graph);
    pthread_rwlock_rdlock (&self->view_lock);
    size_t memory = lh_hnsw_memory (self->graph) + lh_vmeta_memory (self->meta);
    pthread_rwlock_unlock (&self->view_lock);
    pthread_mutex_lock (&self->cache.lock);
    uint64_t hits = self->cache.hits, misses = self->cache.misses;
    memory += self->cache.bytes + self->cache.sets * S_CACHE_WAYS * sizeof (s_cached_t);
    pthread_mutex_unlock (&self->cache.lock);
    lh_pack_map (pack, 15);
    lh_pack_kv_str (pack, "name", self->name);
    lh_pack_kv_uint (pack, "dim", self->params.dim);
    lh_pack_kv_str (pack, "metric", lh_metric_name (self->params.metric));
    lh_pack_kv_uint (pack, "m", self->params.m);
    lh_pack_kv_uint (pack, "ef_construction", self->params.ef_construction);
    lh_pack_kv_uint (pack, "ef", self->params.ef);
    lh_pack_kv_uint (pack, "count", count);
    lh_pack_kv_uint (pack, "deleted", lh_hnsw_deleted (self->graph));
    lh_pack_kv_uint (pack, "seq", seq);
    lh_pack_kv_uint (pack, "snapshot_seq", snapshot_seq);
    lh_pack_kv_uint (pack, "memory_bytes", memory);
    lh_pack_kv_uint (pack, "bytes_per_vector", count? memory / count: 0);
    lh_pack_kv_uint (pack, "cache_hits", hits);
    lh_pack_kv_uint (pack, "cache_misses", misses);
    lh_pack_kv_int (pack, "created_ms", self->created_ms);
}


//  --------------------------------------------------------------------------
//  Accessors

const char *
lh_vindex_name (lh_vindex_t *self)
{
    return self->name;
}

const lh_vparams_t *
lh_vindex_params (lh_vindex_t *self)
{
    return &self->params;
}

uint64_t
lh_vindex_seq (lh_vindex_t *self)
{
    pthread_mutex_lock (&self->write_lock);
    uint64_t seq = self->seq;
    pthread_mutex_unlock (&self->write_lock);
    return seq;
}

uint64_t
lh_vindex_snapshot_seq (lh_vindex_t *self)
{
    pthread_mutex_lock (&self->write_lock);
    uint64_t seq = self->snapshot_seq;
    pthread_mutex_unlock (&self->write_lock);
    return seq;
}

size_t
lh_vindex_size (lh_vindex_t *self)
{
    return lh_hnsw_size (self->graph);
}

lh_hnsw_t *
lh_vindex_graph (lh_vindex_t *self)
{
    return self->graph;
}


//  --------------------------------------------------------------------------
//  Save the graph as of now

int
lh_vindex_snapshot (lh_vindex_t *self, const char *path, uint64_t *seq)
{
    pthread_mutex_lock (&self->write_lock);
    int rc = lh_hnsw_save (self->graph, path);
    *seq = self->seq;
    pthread_mutex_unlock (&self->write_lock);
    return rc;
}


//  --------------------------------------------------------------------------
//  Record a stored snapshot and drop the log up to it

int
lh_vindex_snapshot_done (lh_vindex_t *self, uint64_t seq)
{
    pthread_mutex_lock (&self->write_lock);
    int rc = -1;
    MDB_txn *txn;
    if (seq > self->snapshot_seq && seq <= self->seq
    &&  mdb_txn_begin (self->env, NULL, 0, &txn) == 0) {
        MDB_cursor *cursor;
        MDB_val key, value;
        mdb_cursor_open (txn, self->log_db, &cursor);
        int found = mdb_cursor_get (cursor, &key, &value, MDB_FIRST);
        while (found == 0 && key.mv_size == 8 && s_read64 ((const unsigned char *) key.mv_data) <= seq) {
            if (mdb_cursor_del (cursor, 0))
                break;
            found = mdb_cursor_get (cursor, &key, &value, MDB_FIRST);
        }
        mdb_cursor_close (cursor);
        uint64_t old = self->snapshot_seq;
        self->snapshot_seq = seq;
        if (s_params_write (self, txn) == 0 && mdb_txn_commit (txn) == 0)
            rc = 0;
        else {
            self->snapshot_seq = old;
            mdb_txn_abort (txn);
        }
    }
    pthread_mutex_unlock (&self->write_lock);
    return rc;
}


//  --------------------------------------------------------------------------
//  Compact the graph when tombstones pass ratio_pct of the live vectors

int
lh_vindex_maybe_compact (lh_vindex_t *self, int ratio_pct)
{
    size_t deleted = lh_hnsw_deleted (self->graph);
    size_t live = lh_hnsw_size (self->graph);
    if (deleted < 64 || deleted * 100 < live * (size_t) ratio_pct)
        return 0;
    pthread_mutex_lock (&self->write_lock);
    pthread_rwlock_wrlock (&self->view_lock);
    int rc = lh_hnsw_compact (self->graph) == 0? 1: 0;
    self->version++;
    pthread_rwlock_unlock (&self->view_lock);
    pthread_mutex_unlock (&self->write_lock);
    if (rc)
        lh_info (S_NAME, NULL, "index '%s': compacted %zu tombstones (%zu live)",
                 self->name, deleted, live);
    return rc;
}


//  --------------------------------------------------------------------------
//  Self test

static size_t
s_test_search (lh_vindex_t *index, const float *query, size_t k,
               const msgpack_object *exclude, const msgpack_object *filter,
               msgpack_zone *zone, msgpack_object *results)
{
    lh_pack_t *pack = lh_pack_new ();
    size_t found = lh_vindex_search (index, query, k, 0, exclude, filter, pack);
    size_t size;
    const void *data = lh_pack_data (pack, &size);
    //  Results decoded into the caller's zone (the bytes are copied there)
    char *copy = (char *) msgpack_zone_malloc (zone, size);
    memcpy (copy, data, size);
    assert (msgpack_unpack (copy, size, NULL, zone, results) == MSGPACK_UNPACK_SUCCESS);
    lh_pack_destroy (&pack);
    assert (results->type == MSGPACK_OBJECT_ARRAY && results->via.array.size == found);
    return found;
}

//  A number of the index's info
static uint64_t
s_test_info (lh_vindex_t *index, const char *field)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_vindex_info (index, pack);
    size_t size;
    const void *data = lh_pack_data (pack, &size);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 1024);
    msgpack_object info;
    assert (msgpack_unpack ((const char *) data, size, NULL, &zone, &info) == MSGPACK_UNPACK_SUCCESS);
    uint64_t value = 0;
    assert (lh_obj_uint (&info, field, &value));
    msgpack_zone_destroy (&zone);
    lh_pack_destroy (&pack);
    return value;
}

static bool
s_test_id (const msgpack_object *result, const char *id)
{
    const char *text;
    size_t size;
    return lh_obj_str (result, "id", &text, &size) && size == strlen (id)
        && memcmp (text, id, size) == 0;
}

void
lh_vindex_test (bool verbose)
{
    printf (" * lh_vindex: ");
    char dir [] = "/tmp/lh_vindex_test.XXXXXX";
    assert (mkdtemp (dir));
    char *path = zsys_sprintf ("%s/idx", dir);
    lh_vparams_t params = { .dim = 4, .metric = LH_METRIC_COSINE, .m = 8,
                            .ef_construction = 50, .ef = 32 };
    const char *error = NULL;
    lh_vindex_t *index = lh_vindex_create (path, "idx", &params, 1 << 26, &error);
    assert (index);
    assert (lh_vindex_create (path, "idx", &params, 1 << 26, &error) == NULL);

    //  Metadata: {"color": "red"} as msgpack, and {}
    lh_pack_t *red = lh_pack_new ();
    lh_pack_map (red, 1);
    lh_pack_kv_str (red, "color", "red");
    size_t red_size;
    const void *red_data = lh_pack_data (red, &red_size);
    const unsigned char empty_map [1] = { 0x80 };
    float vectors [3][4] = { { 1, 0, 0, 0 }, { 0, 1, 0, 0 }, { 1, 1, 0, 0 } };
    lh_vitem_t items [3] = {
        { "a", 1, vectors [0], red_data, red_size, true },
        { "b", 1, vectors [1], NULL, 0, false },
        { "c", 1, vectors [2], red_data, red_size, true }
    };
    assert (lh_vindex_add (index, items, 3, &error) == 0);
    assert (lh_vindex_size (index) == 3);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 4096);
    msgpack_object results;
    assert (s_test_search (index, vectors [0], 2, NULL, NULL, &zone, &results) == 2);
    assert (s_test_id (&results.via.array.ptr [0], "a"));
    assert (s_test_id (&results.via.array.ptr [1], "c"));
    const msgpack_object *metadata = lh_obj_get (&results.via.array.ptr [0], "metadata");
    assert (metadata && metadata->type == MSGPACK_OBJECT_MAP && metadata->via.map.size == 1);

    //  The same search again is answered from the cache, the same bytes
    uint64_t hits = s_test_info (index, "cache_hits");
    lh_pack_t *first = lh_pack_new (), *again = lh_pack_new ();
    assert (lh_vindex_search (index, vectors [2], 3, 0, NULL, NULL, first) == 3);
    assert (lh_vindex_search (index, vectors [2], 3, 0, NULL, NULL, again) == 3);
    size_t first_size, again_size;
    const void *first_data = lh_pack_data (first, &first_size);
    const void *again_data = lh_pack_data (again, &again_size);
    assert (first_size == again_size && memcmp (first_data, again_data, first_size) == 0);
    assert (s_test_info (index, "cache_hits") == hits + 1);
    lh_pack_destroy (&first);
    lh_pack_destroy (&again);
    //  c re-added with its own vector and new metadata: the same label
    //  (no tombstone), and the next search sees the new metadata, not the
    //  cached answer
    lh_pack_t *blue = lh_pack_new ();
    lh_pack_map (blue, 1);
    lh_pack_kv_str (blue, "color", "blue");
    size_t blue_size;
    const void *blue_data = lh_pack_data (blue, &blue_size);
    uint64_t seq_before = lh_vindex_seq (index);
    lh_vitem_t recolor = { "c", 1, vectors [2], blue_data, blue_size, true };
    assert (lh_vindex_add (index, &recolor, 1, &error) == 0);
    assert (lh_hnsw_deleted (lh_vindex_graph (index)) == 0 && lh_vindex_size (index) == 3);
    assert (lh_vindex_seq (index) == seq_before);
    assert (s_test_search (index, vectors [2], 1, NULL, NULL, &zone, &results) == 1);
    assert (s_test_id (&results.via.array.ptr [0], "c"));
    metadata = lh_obj_get (&results.via.array.ptr [0], "metadata");
    const char *color;
    size_t color_size;
    assert (lh_obj_str (metadata, "color", &color, &color_size) && color_size == 4
            && memcmp (color, "blue", 4) == 0);
    lh_vitem_t back = { "c", 1, vectors [2], red_data, red_size, true };
    assert (lh_vindex_add (index, &back, 1, &error) == 0);
    lh_pack_destroy (&blue);

    //  Re-add a without metadata: vector replaced, metadata kept
    float moved [4] = { 0, 0, 1, 0 };
    lh_vitem_t readd = { "a", 1, moved, NULL, 0, false };
    assert (lh_vindex_add (index, &readd, 1, &error) == 0);
    assert (lh_vindex_size (index) == 3);
    assert (s_test_search (index, moved, 1, NULL, NULL, &zone, &results) == 1);
    assert (s_test_id (&results.via.array.ptr [0], "a"));
    metadata = lh_obj_get (&results.via.array.ptr [0], "metadata");
    assert (metadata->via.map.size == 1);
    //  Filter color = red, excluding c: only a
    msgpack_object filter;
    assert (msgpack_unpack ((const char *) red_data, red_size, NULL, &zone, &filter) == MSGPACK_UNPACK_SUCCESS);
    lh_pack_t *ex = lh_pack_new ();
    lh_pack_array (ex, 2);
    lh_pack_str (ex, "c");
    lh_pack_str (ex, "nope");
    size_t ex_size;
    const void *ex_data = lh_pack_data (ex, &ex_size);
    msgpack_object exclude;
    assert (msgpack_unpack ((const char *) ex_data, ex_size, NULL, &zone, &exclude) == MSGPACK_UNPACK_SUCCESS);
    assert (s_test_search (index, vectors [2], 3, &exclude, &filter, &zone, &results) == 1);
    assert (s_test_id (&results.via.array.ptr [0], "a"));
    //  {} clears
    lh_vitem_t clear = { "a", 1, moved, empty_map, 1, true };
    assert (lh_vindex_add (index, &clear, 1, &error) == 0);
    assert (s_test_search (index, moved, 1, NULL, NULL, &zone, &results) == 1);
    metadata = lh_obj_get (&results.via.array.ptr [0], "metadata");
    assert (metadata->type == MSGPACK_OBJECT_MAP && metadata->via.map.size == 0);
    assert (s_test_search (index, vectors [2], 3, NULL, &filter, &zone, &results) == 1);
    assert (s_test_id (&results.via.array.ptr [0], "c"));

    //  Delete b, then search; unknown ids are ignored
    const char *ids [2] = { "b", "zz" };
    size_t sizes [2] = { 1, 2 };
    assert (lh_vindex_delete (index, ids, sizes, 2, &error) == 1);
    assert (lh_vindex_delete (index, ids, sizes, 2, &error) == 0);
    assert (s_test_search (index, vectors [1], 5, NULL, NULL, &zone, &results) == 2);
    uint64_t seq = lh_vindex_seq (index);
    assert (seq > 0);

    //  Snapshot, more changes, then restore from snapshot + log
    char *graph = zsys_sprintf ("%s/graph", dir);
    uint64_t graph_seq;
    assert (lh_vindex_snapshot (index, graph, &graph_seq) == 0 && graph_seq == seq);
    assert (lh_vindex_snapshot_done (index, graph_seq) == 0);
    lh_vitem_t late = { "d", 1, vectors [1], NULL, 0, false };
    assert (lh_vindex_add (index, &late, 1, &error) == 0);
    const char *gone [1] = { "c" };
    size_t gone_size [1] = { 1 };
    assert (lh_vindex_delete (index, gone, gone_size, 1, &error) == 1);
    lh_vindex_destroy (&index);
    index = lh_vindex_open (path, 1 << 26, &error);
    assert (index);
    bool rebuilt;
    assert (lh_vindex_restore (index, graph, graph_seq, &rebuilt) == 0 && !rebuilt);
    assert (lh_vindex_size (index) == 2);
    assert (lh_vindex_snapshot_seq (index) == graph_seq);
    assert (s_test_search (index, vectors [1], 5, NULL, NULL, &zone, &results) == 2);
    assert (s_test_id (&results.via.array.ptr [0], "d"));
    //  A graph older than the log reaches: rebuilt from the items
    lh_vindex_destroy (&index);
    index = lh_vindex_open (path, 1 << 26, &error);
    assert (lh_vindex_restore (index, graph, graph_seq - 1, &rebuilt) == 0 && rebuilt);
    assert (lh_vindex_size (index) == 2);
    //  A garbage graph file: rebuilt
    FILE *file = fopen (graph, "wb");
    fputs ("torn", file);
    fclose (file);
    lh_vindex_destroy (&index);
    index = lh_vindex_open (path, 1 << 26, &error);
    assert (lh_vindex_restore (index, graph, graph_seq, &rebuilt) == 0 && rebuilt);
    assert (lh_vindex_size (index) == 2);
    lh_pack_t *info = lh_pack_new ();
    lh_vindex_info (index, info);
    lh_pack_destroy (&info);
    unlink (graph);
    zstr_free (&graph);

    lh_vindex_drop (&index);
    assert (!index);
    assert (access (path, F_OK) != 0);
    msgpack_zone_destroy (&zone);
    lh_pack_destroy (&red);
    lh_pack_destroy (&ex);
    zstr_free (&path);
    rmdir (dir);
    printf ("OK\n");
}
