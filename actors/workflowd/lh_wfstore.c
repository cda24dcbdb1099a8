/*  =========================================================================
    lh_wfstore - workflowd's durable state in one LMDB environment; see
    lh_wfstore.h

    The environment is opened with MDB_NOTLS (read transactions may be
    used by any worker thread) and default sync: a commit returns once its
    pages and meta page are on disk. LMDB lets one writer in at a time;
    a batch holds the write transaction from begin to commit.
    =========================================================================
*/

#include "lh_wfstore.h"
#include "lh_lmdb.h"
#include <sodium.h>

#define S_MAX_READERS       510         //  concurrent read transactions
#define S_FORMAT            "workflowd-1"

struct _lh_wfstore_t {
    MDB_env *env;                       //  the environment
    MDB_dbi tables [LH_WF_TABLES];      //  defs, runs, audit, active
    MDB_dbi meta;                       //  the format
};

struct _lh_wfbatch_t {
    lh_wfstore_t *store;                //  whose
    MDB_txn *txn;                       //  the write transaction
    int rc;                             //  first error of a put, or 0
};


//  --------------------------------------------------------------------------
//  Write a fresh ULID: 48 bits of ms since the epoch, 80 random bits, in
//  Crockford's base 32

void
lh_wfstore_ulid (char *id)
{
    static const char s_alphabet [] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    //  Monotonic within the process: an id made in the same millisecond as
    //  the last one (or with the clock gone back) is the last one plus 1,
    //  so ids sort in the order they were made (run_list, newest first)
    static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
    static uint64_t s_last_ms;
    static uint8_t s_last [10];
    uint64_t ms = (uint64_t) zclock_time ();
    uint8_t bytes [16];
    pthread_mutex_lock (&s_lock);
    if (ms <= s_last_ms) {
        ms = s_last_ms;
        for (int index = 9; index >= 0 && ++s_last [index] == 0; index--)
            ;
    }
    else {
        s_last_ms = ms;
        randombytes_buf (s_last, sizeof (s_last));
    }
    memcpy (bytes + 6, s_last, sizeof (s_last));
    pthread_mutex_unlock (&s_lock);
    for (int index = 5; index >= 0; index--, ms >>= 8)
        bytes [index] = (uint8_t) ms;
    //  128 bits, 5 at a time from the top (26 x 5 = 130: two leading zeros)
    for (int index = 0; index < LH_WF_RUN_ID_SIZE; index++) {
        int bit = index * 5 - 2;
        unsigned value = 0;
        for (int one = 0; one < 5; one++, bit++)
            value = (value << 1) | (bit >= 0? (bytes [bit / 8] >> (7 - bit % 8)) & 1: 0);
        id [index] = s_alphabet [value];
    }
    id [LH_WF_RUN_ID_SIZE] = 0;
}


//  --------------------------------------------------------------------------
//  Open (create) the environment

lh_wfstore_t *
lh_wfstore_open (const char *dir, size_t map_bytes, const char **error)
{
    assert (dir && error);
    *error = NULL;
    if (sodium_init () < 0) {
        *error = "libsodium cannot start";
        return NULL;
    }
    if (zsys_dir_create ("%s", dir) != 0) {
        *error = "cannot create the store's directory (workflowd/dir)";
        return NULL;
    }
    lh_wfstore_t *self = (lh_wfstore_t *) zmalloc (sizeof (lh_wfstore_t));
    assert (self);
    MDB_txn *txn = NULL;
    if (lh_lmdb_env_open (&self->env, dir, LH_WF_TABLES + 1, S_MAX_READERS, map_bytes)) {
        *error = "cannot open the LMDB environment in workflowd/dir";
        goto failed;
    }
    if (mdb_txn_begin (self->env, NULL, 0, &txn)) {
        *error = "cannot begin an LMDB transaction";
        goto failed;
    }
    static const char *s_names [LH_WF_TABLES] = { "defs", "runs", "audit", "active" };
    for (int table = 0; table < LH_WF_TABLES; table++)
        if (mdb_dbi_open (txn, s_names [table], MDB_CREATE, &self->tables [table])) {
            *error = "cannot open the store's tables";
            goto failed;
        }
    if (mdb_dbi_open (txn, "meta", MDB_CREATE, &self->meta)) {
        *error = "cannot open the store's tables";
        goto failed;
    }
    int rc = lh_lmdb_stamp (txn, self->meta, S_FORMAT);
    if (rc) {
        *error = rc > 0? "workflowd/dir holds a store of another format"
                       : "cannot read the store's format";
        goto failed;
    }
    rc = mdb_txn_commit (txn);
    txn = NULL;
    if (rc) {
        *error = "cannot write to workflowd/dir";
        goto failed;
    }
    return self;

failed:
    if (txn)
        mdb_txn_abort (txn);
    lh_wfstore_destroy (&self);
    return NULL;
}


//  --------------------------------------------------------------------------
//  Close the store

void
lh_wfstore_destroy (lh_wfstore_t **self_p)
{
    assert (self_p);
    lh_wfstore_t *self = *self_p;
    if (self) {
        if (self->env)
            mdb_env_close (self->env);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Read one value into pack. Returns 0, 1 (none) or -1.

int
lh_wfstore_get (lh_wfstore_t *self, lh_wftable_t table, const void *key, size_t key_size,
                lh_pack_t *pack)
{
    assert (self && table < LH_WF_TABLES);
    if (key_size == 0 || key_size > 511)
        return 1;
    MDB_txn *txn;
    if (mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn))
        return -1;
    MDB_val name = { key_size, (void *) key }, value;
    int rc = mdb_get (txn, self->tables [table], &name, &value);
    if (rc == 0)
        lh_pack_raw (pack, value.mv_data, value.mv_size);
    mdb_txn_abort (txn);
    return rc == 0? 0: rc == MDB_NOTFOUND? 1: -1;
}


//  --------------------------------------------------------------------------
//  Scan the entries with a key prefix, in key order

int
lh_wfstore_scan (lh_wfstore_t *self, lh_wftable_t table, const void *prefix,
                 size_t prefix_size, lh_wfstore_fn *fn, void *arg)
{
    assert (self && table < LH_WF_TABLES && fn);
    MDB_txn *txn;
    MDB_cursor *cursor;
    if (mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn))
        return -1;
    if (mdb_cursor_open (txn, self->tables [table], &cursor)) {
        mdb_txn_abort (txn);
        return -1;
    }
    MDB_val key = { prefix_size, (void *) prefix }, value;
    int rc = prefix_size? mdb_cursor_get (cursor, &key, &value, MDB_SET_RANGE):
                          mdb_cursor_get (cursor, &key, &value, MDB_FIRST);
    while (rc == 0) {
        if (prefix_size && (key.mv_size < prefix_size || memcmp (key.mv_data, prefix, prefix_size)))
            break;
        if (fn (arg, key.mv_data, key.mv_size, value.mv_data, value.mv_size))
            break;
        rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT);
    }
    mdb_cursor_close (cursor);
    mdb_txn_abort (txn);
    return rc == 0 || rc == MDB_NOTFOUND? 0: -1;
}


//  --------------------------------------------------------------------------
//  Scan backwards from the last key before `before`

int
lh_wfstore_scan_back (lh_wfstore_t *self, lh_wftable_t table, const void *before,
                      size_t before_size, lh_wfstore_fn *fn, void *arg)
{
    assert (self && table < LH_WF_TABLES && fn);
    MDB_txn *txn;
    MDB_cursor *cursor;
    if (mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn))
        return -1;
    if (mdb_cursor_open (txn, self->tables [table], &cursor)) {
        mdb_txn_abort (txn);
        return -1;
    }
    MDB_val key = { before_size, (void *) before }, value;
    int rc;
    if (before && before_size) {
        //  The first key >= before, then one back; none >= before: the last
        rc = mdb_cursor_get (cursor, &key, &value, MDB_SET_RANGE);
        rc = rc == 0? mdb_cursor_get (cursor, &key, &value, MDB_PREV):
             rc == MDB_NOTFOUND? mdb_cursor_get (cursor, &key, &value, MDB_LAST): rc;
    }
    else
        rc = mdb_cursor_get (cursor, &key, &value, MDB_LAST);
    while (rc == 0) {
        if (fn (arg, key.mv_data, key.mv_size, value.mv_data, value.mv_size))
            break;
        rc = mdb_cursor_get (cursor, &key, &value, MDB_PREV);
    }
    mdb_cursor_close (cursor);
    mdb_txn_abort (txn);
    return rc == 0 || rc == MDB_NOTFOUND? 0: -1;
}


//  --------------------------------------------------------------------------
//  Entries in a table

size_t
lh_wfstore_count (lh_wfstore_t *self, lh_wftable_t table)
{
    assert (self && table < LH_WF_TABLES);
    MDB_txn *txn;
    if (mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn))
        return 0;
    MDB_stat stat;
    size_t count = mdb_stat (txn, self->tables [table], &stat) == 0? stat.ms_entries: 0;
    mdb_txn_abort (txn);
    return count;
}


//  --------------------------------------------------------------------------
//  Begin a write batch

lh_wfbatch_t *
lh_wfstore_begin (lh_wfstore_t *self)
{
    assert (self);
    lh_wfbatch_t *batch = (lh_wfbatch_t *) zmalloc (sizeof (lh_wfbatch_t));
    assert (batch);
    batch->store = self;
    if (mdb_txn_begin (self->env, NULL, 0, &batch->txn)) {
        free (batch);
        return NULL;
    }
    return batch;
}


//  --------------------------------------------------------------------------
//  Put or replace a value

int
lh_wfbatch_put (lh_wfbatch_t *self, lh_wftable_t table, const void *key, size_t key_size,
                const void *value, size_t value_size)
{
    assert (self && table < LH_WF_TABLES);
    if (self->rc)
        return -1;
    MDB_val name = { key_size, (void *) key }, data = { value_size, (void *) value };
    self->rc = mdb_put (self->txn, self->store->tables [table], &name, &data, 0);
    return self->rc? -1: 0;
}


//  --------------------------------------------------------------------------
//  Delete a key, or every key with a prefix

int
lh_wfbatch_delete (lh_wfbatch_t *self, lh_wftable_t table, const void *key, size_t key_size,
                   bool prefix)
{
    assert (self && table < LH_WF_TABLES);
    if (self->rc)
        return -1;
    MDB_dbi dbi = self->store->tables [table];
    MDB_val name = { key_size, (void *) key };
    if (!prefix) {
        int rc = mdb_del (self->txn, dbi, &name, NULL);
        if (rc && rc != MDB_NOTFOUND)
            self->rc = rc;
        return self->rc? -1: 0;
    }
    MDB_cursor *cursor;
    if ((self->rc = mdb_cursor_open (self->txn, dbi, &cursor)) != 0)
        return -1;
    MDB_val found = name, value;
    int rc = mdb_cursor_get (cursor, &found, &value, MDB_SET_RANGE);
    while (rc == 0 && found.mv_size >= key_size && memcmp (found.mv_data, key, key_size) == 0) {
        if ((rc = mdb_cursor_del (cursor, 0)) != 0)
            break;
        rc = mdb_cursor_get (cursor, &found, &value, MDB_GET_CURRENT);
    }
    mdb_cursor_close (cursor);
    if (rc && rc != MDB_NOTFOUND && rc != EINVAL)
        self->rc = rc;
    return self->rc? -1: 0;
}


//  --------------------------------------------------------------------------
//  Commit a batch. Returns 0, or -1 with nothing written.

int
lh_wfstore_commit (lh_wfbatch_t **self_p, const char **reason)
{
    assert (self_p && *self_p);
    lh_wfbatch_t *self = *self_p;
    int rc = self->rc;
    if (rc)
        mdb_txn_abort (self->txn);
    else
        rc = mdb_txn_commit (self->txn);
    if (reason)
        *reason = rc == 0? NULL: rc == MDB_MAP_FULL? "the workflow store is full "
                  "(raise workflowd/map_bytes, or lower workflowd/runs_max)":
                  "the workflow store cannot be written";
    free (self);
    *self_p = NULL;
    return rc? -1: 0;
}


//  --------------------------------------------------------------------------
//  Drop a batch unwritten

void
lh_wfstore_abort (lh_wfbatch_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        mdb_txn_abort ((*self_p)->txn);
        free (*self_p);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Self test: ULIDs, batches, scans both ways, prefix deletes, reopen

//  Append "KEY=VALUE;" for each entry scanned
static int
s_test_collect (void *arg, const void *key, size_t key_size, const void *value, size_t size)
{
    zchunk_t *out = (zchunk_t *) arg;
    zchunk_extend (out, key, key_size);
    zchunk_extend (out, "=", 1);
    zchunk_extend (out, value, size);
    zchunk_extend (out, ";", 1);
    return 0;
}

//  A scan's result as a string (caller frees)
static char *
s_test_scan (lh_wfstore_t *store, lh_wftable_t table, const char *prefix, bool back)
{
    zchunk_t *out = zchunk_new (NULL, 64);
    if (back)
        assert (lh_wfstore_scan_back (store, table, prefix, prefix? strlen (prefix): 0,
                                      s_test_collect, out) == 0);
    else
        assert (lh_wfstore_scan (store, table, prefix, prefix? strlen (prefix): 0,
                                 s_test_collect, out) == 0);
    zchunk_extend (out, "", 1);
    char *text = strdup ((char *) zchunk_data (out));
    zchunk_destroy (&out);
    return text;
}

void
lh_wfstore_test (bool verbose)
{
    printf (" * lh_wfstore: ");
    char first [LH_WF_RUN_ID_SIZE + 1], second [LH_WF_RUN_ID_SIZE + 1];
    lh_wfstore_ulid (first);
    zclock_sleep (2);
    lh_wfstore_ulid (second);
    assert (strlen (first) == 26 && strcmp (first, second) < 0);
    assert (strspn (first, "0123456789ABCDEFGHJKMNPQRSTVWXYZ") == 26 && first [0] <= '7');
    //  Many in the same millisecond still sort in the order made
    for (int round = 0; round < 1000; round++) {
        memcpy (first, second, sizeof (first));
        lh_wfstore_ulid (second);
        assert (strcmp (first, second) < 0);
    }

    char dir [] = "/tmp/lh_wfstore.XXXXXX";
    assert (mkdtemp (dir));
    const char *error = NULL;
    lh_wfstore_t *store = lh_wfstore_open (dir, 16 << 20, &error);
    assert (store && !error);
    lh_wfbatch_t *batch = lh_wfstore_begin (store);
    assert (batch);
    const char *keys [] = { "a1", "a2", "a3", "b1", "b2" };
    for (size_t index = 0; index < 5; index++)
        assert (lh_wfbatch_put (batch, LH_WF_AUDIT, keys [index], 2, "v", 1) == 0);
    assert (lh_wfbatch_put (batch, LH_WF_RUNS, "r", 1, "x", 1) == 0);
    assert (lh_wfstore_commit (&batch, &error) == 0 && !batch);
    char *text = s_test_scan (store, LH_WF_AUDIT, "a", false);
    assert (streq (text, "a1=v;a2=v;a3=v;"));
    zstr_free (&text);
    text = s_test_scan (store, LH_WF_AUDIT, NULL, true);
    assert (streq (text, "b2=v;b1=v;a3=v;a2=v;a1=v;"));
    zstr_free (&text);
    text = s_test_scan (store, LH_WF_AUDIT, "b1", true);
    assert (streq (text, "a3=v;a2=v;a1=v;"));
    zstr_free (&text);
    text = s_test_scan (store, LH_WF_AUDIT, "zz", true);
    assert (streq (text, "b2=v;b1=v;a3=v;a2=v;a1=v;"));
    zstr_free (&text);
    assert (lh_wfstore_count (store, LH_WF_AUDIT) == 5);
    //  An aborted batch writes nothing; a prefix delete takes the run's rows
    batch = lh_wfstore_begin (store);
    lh_wfbatch_put (batch, LH_WF_DEFS, "d", 1, "1", 1);
    lh_wfstore_abort (&batch);
    lh_pack_t *pack = lh_pack_new ();
    assert (lh_wfstore_get (store, LH_WF_DEFS, "d", 1, pack) == 1);
    assert (lh_wfstore_get (store, LH_WF_RUNS, "r", 1, pack) == 0);
    size_t size;
    assert (lh_pack_data (pack, &size) && size == 1);
    lh_pack_destroy (&pack);
    batch = lh_wfstore_begin (store);
    assert (lh_wfbatch_delete (batch, LH_WF_AUDIT, "a", 1, true) == 0);
    assert (lh_wfbatch_delete (batch, LH_WF_RUNS, "nope", 4, false) == 0);
    assert (lh_wfstore_commit (&batch, NULL) == 0);
    text = s_test_scan (store, LH_WF_AUDIT, NULL, false);
    assert (streq (text, "b1=v;b2=v;"));
    zstr_free (&text);
    //  Reopen: what was committed is there
    lh_wfstore_destroy (&store);
    store = lh_wfstore_open (dir, 16 << 20, &error);
    assert (store);
    assert (lh_wfstore_count (store, LH_WF_AUDIT) == 2 && lh_wfstore_count (store, LH_WF_RUNS) == 1);
    //  A full map fails the commit, writes nothing
    batch = lh_wfstore_begin (store);
    char *big = (char *) zmalloc (1 << 20);
    for (int index = 0; index < 40; index++) {
        char key [16];
        snprintf (key, sizeof (key), "big%02d", index);
        lh_wfbatch_put (batch, LH_WF_RUNS, key, strlen (key), big, 1 << 20);
    }
    assert (lh_wfstore_commit (&batch, &error) == -1 && strstr (error, "workflowd/map_bytes"));
    free (big);
    assert (lh_wfstore_count (store, LH_WF_RUNS) == 1);
    lh_wfstore_destroy (&store);
    char *command = zsys_sprintf ("rm -rf '%s'", dir);
    assert (system (command) == 0);
    zstr_free (&command);
    if (verbose)
        printf ("(%s) ", first);
    printf ("OK\n");
}
