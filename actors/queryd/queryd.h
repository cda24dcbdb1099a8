/*  =========================================================================
    queryd - SQL over the catalogued datasets (SPEC 5.4); docs/queryd.md
    has the details

    Ops (bodies are msgpack; shown as JSON):

    sql  {sql, params?: [v, ...] | {name: v}, limit?}
         -> 200 {columns: [{name, type}], rows: [[v, ...]], row_count,
                 truncated}

    Every dataset in the catalog is a table named by its dataset name
    (quoted identifiers work). Each worker holds one SQLite connection; a
    dataset's table file is fetched from storaged into a local cache named
    by its content hash (immutable) and ATTACHed read-only when a statement
    first names it (found by preparing the statement: "no such table"),
    at most queryd/attach_max at once, least recently used detached first.
    So any number of datasets is queryable and any attach_max of them
    meet in one statement (JOIN).

    Read-only: one statement only; an authorizer refuses writes, ATTACH /
    DETACH, PRAGMA (but a few schema reads), transactions and
    load_extension -> 403 forbidden with the reason. A statement running
    past queryd/timeout_ms (or the caller's deadline) is interrupted ->
    504. More rows than the limit (or queryd/reply_max bytes) ->
    truncated: true.

    Catalog: follows catalog.changed events and refreshes the whole
    catalog every queryd/refresh_ms; a table name the local catalog does
    not know is looked up in catalogd before the statement fails. A dataset
    that cannot be fetched or opened fails only the statements that name
    it (503 dataset_unavailable). Errors never show file paths.
    =========================================================================
*/

#ifndef QUERYD_H_INCLUDED
#define QUERYD_H_INCLUDED

#include "lh_actor.h"

#ifdef __cplusplus
extern "C" {
#endif

//  The queryd service, for lh_service_start and the registry
extern const lh_service_t lh_queryd_service;

//  Self test of this class
void
    lh_queryd_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
