/*  =========================================================================
    storaged - the blob service (SPEC 5.1); docs/storaged.md has the details

    Ops (bodies are msgpack; shown as JSON, bin = msgpack bin):

    put           {key, data: bin, if_none_match?: "*", if_match?: ETAG}
                  -> {key, etag, size}
    get           {key, offset?: 0, length?: get_max}
                  -> {key, etag, size, offset, length, data: bin}
                  (at most storaged/get_max bytes per call: read in ranges)
    head          {key} -> {key, etag, size, mtime_ms}
    list          {prefix?, start_after?, continuation?, limit?: 1000}
                  -> {keys: [{key, size, etag, mtime_ms}], truncated, next?}
    delete        {key} -> {key, deleted: true}
    upload_begin  {key, if_none_match?, if_match?, size?, dry_run?}
                  -> {upload_id, key, part_max}
                  (size: 413 now if over the key's cap; dry_run: only the
                  checks, nothing begun, no PUT slot, no upload_id)
    upload_part   {upload_id, part: 1.., data: bin}
                  -> {upload_id, part, size}   (size = bytes so far)
    upload_commit {upload_id, if_none_match?, if_match?} -> {key, etag, size}
    upload_abort  {upload_id} -> {upload_id, aborted: true}
    upload_read   {upload_id, offset?: 0, length?: get_max}
                  -> {upload_id, key, size, offset, readable, data: bin}
                  (an upload in progress as written so far: size = its
                  final bytes so far, those before the last part, which
                  may still be sent again; data = up to length of them at offset; readable
                  false when the backend cannot show them before the
                  commit (s3): data is then empty. 404 once the upload is
                  committed, aborted or expired: read the key then)

    Errors: 400 bad key (reason names the rule) or bad body, 404 no such
    key / upload, 412 condition failed, 413 over the key's cap or part_max
    (the reason names the setting that raises it),
    503 + retry_after_ms when every PUT slot is taken.
    =========================================================================
*/

#ifndef STORAGED_H_INCLUDED
#define STORAGED_H_INCLUDED

#include "lh_actor.h"

#ifdef __cplusplus
extern "C" {
#endif

//  The storaged service, for lh_service_start and the registry
extern const lh_service_t lh_storaged_service;

//  Self test of this class
void
    lh_storaged_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
