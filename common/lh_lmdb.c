/*  =========================================================================
    lh_lmdb - opening an LMDB store the same way everywhere; see lh_lmdb.h
    =========================================================================
*/

#include "lh_lmdb.h"


//  --------------------------------------------------------------------------
//  Create and open the environment

int
lh_lmdb_env_open (MDB_env **env_p, const char *dir, unsigned maxdbs, unsigned maxreaders,
                  size_t map_bytes)
{
    assert (env_p && dir);
    *env_p = NULL;
    MDB_env *env;
    if (mdb_env_create (&env))
        return -1;
    mdb_env_set_maxdbs (env, maxdbs);
    mdb_env_set_maxreaders (env, maxreaders);
    mdb_env_set_mapsize (env, map_bytes);
    if (mdb_env_open (env, dir, MDB_NOTLS, 0600)) {
        mdb_env_close (env);
        return -1;
    }
    int stale = 0;
    mdb_reader_check (env, &stale);
    *env_p = env;
    return 0;
}


//  --------------------------------------------------------------------------
//  Check or write the format stamp

int
lh_lmdb_stamp (MDB_txn *txn, MDB_dbi meta, const char *format)
{
    assert (txn && format);
    MDB_val key = { 6, (void *) "format" }, value;
    int rc = mdb_get (txn, meta, &key, &value);
    if (rc == MDB_NOTFOUND) {
        value.mv_data = (void *) format;
        value.mv_size = strlen (format);
        return mdb_put (txn, meta, &key, &value, 0)? -1: 0;
    }
    if (rc)
        return -1;
    return value.mv_size == strlen (format) && memcmp (value.mv_data, format, value.mv_size) == 0?
           0: 1;
}


//  --------------------------------------------------------------------------
//  Self test: a fresh store takes its stamp, keeps it, refuses another

static int
s_test_stamp (const char *dir, const char *format)
{
    MDB_env *env;
    assert (lh_lmdb_env_open (&env, dir, 2, 8, 1 << 20) == 0);
    MDB_txn *txn;
    MDB_dbi meta;
    assert (mdb_txn_begin (env, NULL, 0, &txn) == 0);
    assert (mdb_dbi_open (txn, "meta", MDB_CREATE, &meta) == 0);
    int rc = lh_lmdb_stamp (txn, meta, format);
    if (rc == 0)
        assert (mdb_txn_commit (txn) == 0);
    else
        mdb_txn_abort (txn);
    mdb_env_close (env);
    return rc;
}

void
lh_lmdb_test (bool verbose)
{
    printf (" * lh_lmdb: ");
    char dir [] = "/tmp/lh_lmdb_test.XXXXXX";
    assert (mkdtemp (dir));
    assert (s_test_stamp (dir, "test-1") == 0);         //  written
    assert (s_test_stamp (dir, "test-1") == 0);         //  kept
    assert (s_test_stamp (dir, "test-2") == 1);         //  another format
    assert (s_test_stamp (dir, "test-1") == 0);         //  unchanged by that
    MDB_env *env;
    assert (lh_lmdb_env_open (&env, "/nonexistent/lh_lmdb", 2, 8, 1 << 20) == -1 && !env);
    const char *files [] = { "data.mdb", "lock.mdb" };
    for (size_t index = 0; index < 2; index++) {
        char path [PATH_MAX];
        snprintf (path, sizeof (path), "%s/%s", dir, files [index]);
        unlink (path);
    }
    rmdir (dir);
    printf ("OK\n");
}
