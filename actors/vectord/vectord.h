/*  =========================================================================
    vectord - durable vector indexes (SPEC 5.5); docs/vectord.md has the
    details

    Ops (bodies are msgpack; shown as JSON):

    create  {name, dim, metric?: cosine|l2|ip, m?, ef_construction?, ef?}
            -> 201 info                  (409 index_exists)
    list    {} -> {indexes: [info, ...], count}
    info    {name} -> info: {name, dim, metric, m, ef_construction, ef,
            count, deleted, seq, snapshot_seq, memory_bytes,
            bytes_per_vector, created_ms}
    drop    {name} -> {name, dropped: true}
    add     {name, items: [{id, vector, metadata?}]} -> {name, added, count}
            all-or-nothing: every item is checked (dim, NaN/Inf, zero norm
            under cosine) before anything is written; re-adding an id
            replaces it; metadata absent keeps the stored one, {} clears
    search  {name, vector, k?: 10, ef?, exclude_ids?: [id], filter?: {key:
            value}} -> [{id, distance, metadata}] nearest first
    delete  {name, ids: [id]} -> {name, deleted, count}

    Errors: 400 bad_field / dim_mismatch / bad_vector / zero_norm, 404
    no_such_index, 409 index_exists, 413 too_large (batch_max).
    =========================================================================
*/

#ifndef VECTORD_H_INCLUDED
#define VECTORD_H_INCLUDED

#include "lh_actor.h"

#ifdef __cplusplus
extern "C" {
#endif

//  The vectord service, for lh_service_start and the registry
extern const lh_service_t lh_vectord_service;

//  Self test of this class
void
    lh_vectord_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
