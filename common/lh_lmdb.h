/*  =========================================================================
    lh_lmdb - opening an LMDB store the same way everywhere

    The actors that keep state in LMDB (pathwayd, workflowd) open their
    environment the same way and stamp the store with its format, so a
    directory written by another version of the code is refused instead of
    misread:

        MDB_env *env;
        if (lh_lmdb_env_open (&env, dir, 5, 126, map_bytes))
            ... "cannot open the LMDB environment in pathwayd/dir"
        ...
        int rc = lh_lmdb_stamp (txn, meta_dbi, "pathway-1");
        if (rc > 0)
            ... "pathwayd/dir holds a store of another format"

    The callers word the errors: each names its own setting.
    =========================================================================
*/

#ifndef LH_LMDB_H_INCLUDED
#define LH_LMDB_H_INCLUDED

#include <czmq.h>
#include <lmdb.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Create and open an LMDB environment in the directory dir (which must
//  exist): maxdbs named databases, maxreaders readers, a map of map_bytes,
//  one transaction per thread not tied to it (MDB_NOTLS); the slots of
//  readers whose process died are cleared. Returns 0, or -1 with *env_p
//  NULL.
int
    lh_lmdb_env_open (MDB_env **env_p, const char *dir, unsigned maxdbs,
                      unsigned maxreaders, size_t map_bytes);

//  In the write transaction txn: check the store's format (the key
//  "format" of the database meta) against format, writing it into a store
//  that has none yet. Returns 0 if it matches (or was written), 1 if the
//  store holds another format, -1 if it cannot be read or written.
int
    lh_lmdb_stamp (MDB_txn *txn, MDB_dbi meta, const char *format);

//  Self test of this class
void
    lh_lmdb_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
