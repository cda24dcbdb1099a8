/*  =========================================================================
    lh_tap_sse - GET /v1/tap/stream: the broker's tap as Server-Sent Events

    One hub per gateway. Its thread reads the broker's tap (a SUB on the
    tap link: in-process in `lakehouse up`, tcp with a tap certificate in
    a standalone gateway) while at least one stream is open, and for a
    while after the last one closed; lh_tap (common/lh_tap.c) pairs each
    reply with its request and renders bustap's JSON line.

    Each stream has its own ring of at most `buffer` events. The hub only
    ever appends to rings, dropping a full ring's oldest event and
    counting it; it never waits on a stream. So a stream that does not
    read (a stalled client, a slow link) costs its ring and nothing else:
    not the broker, not the hub, not the other streams. The stream's own
    HTTP thread takes events out of its ring as libmicrohttpd asks for
    bytes; an empty ring suspends the connection, and the hub resumes it
    when an event comes (or every heartbeat, which also finds a client
    that went away).

    When every open stream's ring is full, the hub stops reading the tap
    until a reader takes an event: the broker's tap then drops its copies
    (dropped.tap, at no cost to the broker) and the streams are told by a
    "gap" event how many they missed. A stalled client costs the broker
    nothing, not even the hub's CPU (bench/results/tap.md).

        lh_tap_sse_opts_t opts = { .tap = { .endpoint = "inproc://..." },
                                   .roles = "tap,admin", .buffer = 1000,
                                   .streams_max = 16, .heartbeat_ms = 15000 };
        lh_tap_sse_t *hub = lh_tap_sse_new (&opts);
        //  on an HTTP thread, for GET /v1/tap/stream:
        struct MHD_Response *response;
        if (lh_tap_sse_open (hub, connection, role, service, op, trace,
                             &response, &kind, &reason) == 0)
            MHD_queue_response (connection, 200, response);
        ...
        lh_tap_sse_stop (hub);          //  before the HTTP threads stop
        lh_tap_sse_destroy (&hub);      //  after they stopped

    The stream (Content-Type text/event-stream, docs/console.md):

        event: hello                                on open
        data: {"buffer":1000,"service":"echo","op":null,"trace":null}

        id: 1234                                    a tap message
        data: {"time":"...","bseq":1234,"kind":"REQ","src":"...",...}

        event: gap                                  the broker's tap dropped copies
        data: {"warning":"bseq_gap","after":1200,"next":1234,"missed":33}

        event: dropped                              this stream's ring dropped
        data: {"dropped":12,"total":40}             events (told before the next)

        : keepalive                                 after heartbeat_ms without events
    =========================================================================
*/

#ifndef LH_TAP_SSE_H_INCLUDED
#define LH_TAP_SSE_H_INCLUDED

#include "lh_client.h"
#include <microhttpd.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LH_TAP_SSE_CONTENT_TYPE "text/event-stream; charset=utf-8"

typedef struct _lh_tap_sse_t lh_tap_sse_t;

//  How a hub is made
typedef struct {
    lh_link_t tap;                      //  the broker's tap; endpoint NULL = none
                                        //  (its cert is borrowed for the hub's life)
    const char *no_tap;                 //  why there is none: the 503's reason
    const char *roles;                  //  roles that may open a stream, "tap,admin"
    size_t buffer;                      //  events held per stream, at least 1
    size_t streams_max;                 //  streams open at once, at least 1
    uint32_t heartbeat_ms;              //  keepalive after this long without events
} lh_tap_sse_opts_t;

//  Create a hub (its thread starts; the tap is read only while streams are
//  open). Never NULL.
lh_tap_sse_t *
    lh_tap_sse_new (const lh_tap_sse_opts_t *opts);

//  End every stream and refuse new ones (503). Call before the HTTP
//  threads stop: it resumes every suspended stream connection, which
//  libmicrohttpd requires before its daemons stop.
void
    lh_tap_sse_stop (lh_tap_sse_t *self);

//  Destroy the hub, after the HTTP threads have stopped (their streams
//  are gone); nulls the caller's pointer
void
    lh_tap_sse_destroy (lh_tap_sse_t **self_p);

//  Open a stream on connection for a caller of role, keeping only the
//  messages of service, op and trace (NULL or "": any). Returns 0 with
//  *response_p, a response to queue with status 200 and Content-Type
//  LH_TAP_SSE_CONTENT_TYPE; or an HTTP status (400 bad filter, 403 role,
//  429 too many streams, 503 no tap) with *kind_p (static) and *reason_p
//  (caller frees).
int
    lh_tap_sse_open (lh_tap_sse_t *self, struct MHD_Connection *connection,
                     const char *role, const char *service, const char *op,
                     const char *trace, struct MHD_Response **response_p,
                     const char **kind_p, char **reason_p);

//  Streams open now
size_t
    lh_tap_sse_streams (lh_tap_sse_t *self);

//  Self test of this class
void
    lh_tap_sse_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
