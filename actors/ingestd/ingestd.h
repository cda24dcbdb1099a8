/*  =========================================================================
    ingestd - CSV to tables (SPEC 5.3); docs/ingestd.md has the details

    Ops (bodies are msgpack; shown as JSON):

    ingest  {name, source}
            name: the dataset (and table) name, [A-Za-z0-9_][A-Za-z0-9_.-]*,
            at most 128 bytes, not starting with "sqlite_"; source: the
            storaged key of an uploaded CSV.
            -> 200 {dataset_id, schema_fingerprint, columns: [{name, type}],
                    row_count, key}

    The source is read from storaged in ranges and parsed (RFC 4180);
    every value is classified, so the types are inferred over the whole
    file, while the rows are loaded into one SQLite file (one transaction,
    one prepared INSERT) typed by the first rows. If a later value does
    not fit those types, a second pass loads the file again with the final
    types. The file is uploaded to storaged at
    datasets/NAME/FINGERPRINT/CONTENT_SHA256.sqlite (the SHA-256 of the
    table file itself, SPEC 5.3) by multipart upload and
    registered with catalogd. Memory stays bounded by a few read chunks,
    one record, the first rows and SQLite's page cache, whatever the file
    size.

    Errors: 400 bad_body / bad_field (name/source; "field" names it), 400
    bad_csv (the reason names the line), 404 no_such_source, 409
    schema_drift (the live dataset is left as it was), 409 source_changed,
    413 too_large (over ingest/max_bytes), 503 dependency_unavailable /
    500 dependency_failed (storaged or catalogd), 504 deadline.
    =========================================================================
*/

#ifndef INGESTD_H_INCLUDED
#define INGESTD_H_INCLUDED

#include "lh_actor.h"

#ifdef __cplusplus
extern "C" {
#endif

//  The ingestd service, for lh_service_start and the registry
extern const lh_service_t lh_ingestd_service;

//  True if name is a valid dataset name (see above)
bool
    lh_ingestd_name_valid (const char *name, size_t size);

//  Self test of this class
void
    lh_ingestd_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
