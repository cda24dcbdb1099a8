/*  =========================================================================
    pathwayd - versioned memory traces (SPEC 5.9); docs/pathwayd.md has
    the details

    Ops (bodies are msgpack; shown as JSON). A trace is {uid, version,
    created_at, updated_at, content, tags, predecessor?, retired,
    replay_count}; uids are ULIDs (or the caller's, for add_idempotent),
    times RFC 3339 UTC with milliseconds.

    add             {content, tags?: [str]} -> 201 trace
    add_idempotent  {uid, content, tags?} -> 201 trace (created), or 200
                    trace with replay_count + 1 (uid known: nothing else
                    changes, the stored content is kept)
    update          {uid, content, tags?} -> 200 trace, version + 1 (tags
                    absent: kept); every earlier version stays readable
    revise          {uid, content, tags?} -> 201 a new trace whose
                    predecessor is uid (tags absent: uid's)
    retire          {uid} -> 200 trace, retired: hidden from search, still
                    readable by get and history
    get             {uid, version?} -> 200 trace (with version: that
                    version, and current_version)
    history         {uid, limit?} -> 200 {uid, chain: [trace], count,
                    truncated, missing?, cycle?, next?}: uid, then its
                    predecessor, and so on
    search          {tags?: [str], text?, include_retired?, limit?} -> 200
                    {results: [trace], count, truncated}, newest first;
                    every tag must match and text is a substring of one of
                    the content's strings or numbers, both ignoring case
    stats           {} -> 200 {total, active, retired, versions}

    Errors: 400 bad_body / bad_field (naming the field), 404
    no_such_trace / no_such_version, 413 too_large (content over
    pathwayd/content_max), 500 storage_full / storage_failed.

    Every write is committed to LMDB (pathwayd/dir) before its reply;
    concurrent writes share commits (lh_pathstore).
    =========================================================================
*/

#ifndef PATHWAYD_H_INCLUDED
#define PATHWAYD_H_INCLUDED

#include "lh_actor.h"

#ifdef __cplusplus
extern "C" {
#endif

//  The pathwayd service, for lh_service_start and the registry
extern const lh_service_t lh_pathwayd_service;

//  Self test of this class
void
    lh_pathwayd_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
