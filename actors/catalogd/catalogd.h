/*  =========================================================================
    catalogd - dataset manifests (SPEC 5.2); docs/catalogd.md has details

    Ops (bodies are msgpack; shown as JSON):

    register  {name, schema_fingerprint, schema?: [{name, type}],
               objects?: [key], row_count?: 0}
              -> 201 manifest (new name), 200 manifest (same name, same
              fingerprint: objects and row_count updated), 409
              schema_drift (same name, other fingerprint: nothing changes),
              400 (empty name or fingerprint, bad shapes)
    get       {name} or {dataset_id} -> manifest, or 404
    list      {} -> {datasets: [manifest], count}
    delete    {name} or {dataset_id} -> {deleted: true, name, dataset_id}

    A manifest is {name, dataset_id, schema_fingerprint, schema, objects,
    row_count, created_ms, updated_ms}. dataset_id is the UUIDv5 of the
    name under namespace a8f3c1d2-4e5b-5a6c-9d8e-7f0a1b2c3d4e.

    Manifests live in storaged under catalogd/prefix ("_catalog/" + id),
    written with if_none_match / if_match so concurrent registers on any
    number of catalogd processes never lose an update. catalogd reads
    through to storaged on every op: a restarted catalogd, or one on
    another host, serves the same catalog. Every change publishes
    "catalog.changed" {op: "register"|"delete", name, dataset_id,
    schema_fingerprint}.
    =========================================================================
*/

#ifndef CATALOGD_H_INCLUDED
#define CATALOGD_H_INCLUDED

#include "lh_actor.h"

#ifdef __cplusplus
extern "C" {
#endif

//  The catalogd service, for lh_service_start and the registry
extern const lh_service_t lh_catalogd_service;

//  Self test of this class
void
    lh_catalogd_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
