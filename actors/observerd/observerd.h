/*  =========================================================================
    observerd - the system watching itself: every event on the bus, kept
    (SPEC 5.9); docs/observerd.md has the details

    A subscriber thread of its own holds one bus client subscribed to
    every topic (config observerd/prefixes, default *) and appends each
    PUB it receives to an lh_evring: a bounded ring in memory
    (observerd/ring_max events, observerd/ring_bytes bytes; the oldest
    evicted, an event never refused) and a JSONL log under observerd/dir,
    written every observerd/flush_ms and reloaded at start. The worker
    threads answer the ops from the ring.

    Ops (bodies are msgpack; shown as JSON). An event is {seq, bseq, time,
    topic, source, body, body_omitted?}: seq is observerd's own (1, 2, ...,
    kept across restarts), bseq the broker's, time RFC 3339 UTC with
    microseconds (the broker's receive time), source the publisher's
    stamped name, body the event's body as it was published.

    events  {since?: seq | "RFC 3339 time", since_bseq?, type?: topic
            prefix, source?, limit?: 1..1000 (100)}
            -> 200 {events: [event], count, next, truncated, missed,
            oldest, newest}: events after seq `since` (or at or after
            that time), oldest first; pass `next` as since for the next
            page; missed counts events evicted before they could be read
    stats   {} -> 200 {ring_size, ring_max, ring_bytes, evicted, logged,
            log_errors, flushed_seq, last_flush, topics: {TOPIC: n}, ...}
    inbox   {subject, sender, tag?, priority?: urgent|high|medium|low
            (absent or "" = medium), body?: text <= 8 KiB}
            -> 201 event (topic inbox.PRIORITY): control characters are
            dropped (the body keeps \n and \t), subject, sender and tag
            are cut at 256 characters

    Errors: 400 bad_body / bad_field (naming the field), 413 too_large
    (inbox body over 8 KiB).

    observerd must be allowed to subscribe to every topic: when the event
    ACL lands, its role (actor) needs "*" in the subscribe list.
    =========================================================================
*/

#ifndef OBSERVERD_H_INCLUDED
#define OBSERVERD_H_INCLUDED

#include "lh_actor.h"

#ifdef __cplusplus
extern "C" {
#endif

//  The observerd service, for lh_service_start and the registry
extern const lh_service_t lh_observerd_service;

//  Self test of this class
void
    lh_observerd_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
