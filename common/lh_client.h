/*  =========================================================================
    lh_client - the bus client: call a service, synchronously or not

    A client is one DEALER connection to the broker. It says HELLO, learns
    the heartbeat rate from WELCOME, and then sends REQs and receives PART
    and REP messages for them. Not thread-safe: one client per thread.

        lh_link_t link = { .endpoint = "tcp://127.0.0.1:5570" };
        lh_client_t *client = lh_client_new (&link, "buscall");
        lh_reply_t *reply;
        if (lh_client_call (client, "echo", "echo", body, size, NULL, &reply) == 0) {
            printf ("status %u\n", lh_reply_status (reply));
            lh_reply_destroy (&reply);
        }
        lh_client_destroy (&client);

    If the broker has forgotten the client (it was idle past the liveness
    window, or the broker restarted), the broker answers BYE; the client says
    HELLO again and resends the request transparently: the request was never
    dispatched, so this is safe for any request.
    =========================================================================
*/

#ifndef LH_CLIENT_H_INCLUDED
#define LH_CLIENT_H_INCLUDED

#include "lh_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

//  How to reach the broker
typedef struct {
    const char *endpoint;               //  "inproc://lh-bus", "tcp://h:5570"
    const char *server_key;             //  broker's CURVE public key (Z85), or NULL
    zcert_t *cert;                      //  our CURVE certificate (borrowed), or NULL
} lh_link_t;

//  Options for one call; NULL means all defaults
typedef struct {
    uint32_t timeout_ms;                //  deadline; 0 = 5000
    const char *idem;                   //  idempotency key, or NULL
    bool queue;                         //  "q": wait for a worker until the deadline
    const char *trace;                  //  trace id, or NULL for the client's own
    const char *span;                   //  the caller's span id (16 hex), sent as
                                        //  "ps", or NULL; a client given a span
                                        //  (lh_client_set_span) sends its own
} lh_call_opts_t;

typedef struct _lh_client_t lh_client_t;
typedef struct _lh_reply_t lh_reply_t;

//  Connect to the broker and say HELLO. Waits up to 5 s for WELCOME.
//  Returns NULL (and logs why) if the broker could not be reached.
lh_client_t *
    lh_client_new (const lh_link_t *link, const char *name);

//  Destroy a client (says BYE); nulls the caller's pointer
void
    lh_client_destroy (lh_client_t **self_p);

//  Set the trace id sent with every following request (NULL: mint one per
//  call). An actor's runtime sets this to the trace of the request being
//  served, so a call from a handler carries it on.
void
    lh_client_set_trace (lh_client_t *self, const char *trace);

//  Set the span following requests are made in (NULL: none), and the
//  service.name of their spans (NULL: unchanged). While tracing is on
//  (lh_trace.h), each request carrying the client's trace then gets a
//  client span of its own: child of this span, parent of the server's
//  (its id travels as "ps"), ended when the reply comes. An actor's
//  runtime sets it to the span of the request being served.
void
    lh_client_set_span (lh_client_t *self, const char *span, const char *service);

//  Call svc.op with a msgpack body (may be NULL/0) and wait for the final
//  REP. PARTs received meanwhile are concatenated by the caller's choice:
//  they are kept in the reply (lh_reply_parts). Returns 0 when a reply
//  arrived (whatever its status), -1 if none did: then *reply_p is a
//  synthesized 504 (deadline) or 503 (broker unreachable) reply, so callers
//  can always read a status.
int
    lh_client_call (lh_client_t *self, const char *svc, const char *op,
                    const void *body, size_t size, const lh_call_opts_t *opts,
                    lh_reply_t **reply_p);

//  One of several calls made at once (lh_client_call_all)
typedef struct {
    const char *svc;                    //  service to call
    const char *op;                     //  its op
    const void *body;                   //  msgpack body (borrowed), or NULL
    size_t size;                        //  body size
    lh_reply_t *reply;                  //  out: its reply, the caller's
} lh_call_t;

//  Send every call at once, then wait for all their final REPs. Each
//  call's reply is set: the service's, or a synthesized 503/504/400 as
//  lh_client_call would give. Returns 0 if every call had a reply from the
//  bus, -1 if any was synthesized.
int
    lh_client_call_all (lh_client_t *self, lh_call_t *calls, size_t count,
                        const lh_call_opts_t *opts);

//  Send a request without waiting. Returns the request id (> 0), or 0 on
//  failure. Collect the answer with lh_client_recv.
uint64_t
    lh_client_send (lh_client_t *self, const char *svc, const char *op,
                    const void *body, size_t size, const lh_call_opts_t *opts);

//  Wait for the final REP of a request sent with lh_client_send, its PARTs
//  kept in the reply (lh_reply_parts); whatever else arrives meanwhile
//  (other replies, events) is held for lh_client_recv. Returns 0 when the
//  reply came, -1 with a synthesized 503/504 one (deadline, broker gone),
//  or a 400 one when no such request is waiting. *reply_p is always set.
int
    lh_client_wait (lh_client_t *self, uint64_t id, lh_reply_t **reply_p);

//  Receive the next PART, REP or PUB for this client, waiting up to
//  timeout_ms (-1 forever). Returns 0 and a reply, or -1 on timeout or
//  interrupt. Heartbeats and reconnects are handled inside.
int
    lh_client_recv (lh_client_t *self, lh_reply_t **reply_p, int timeout_ms);

//  Take the next PART, REP or PUB that has already arrived, without
//  blocking and without housekeeping (lh_client_recv does heartbeats,
//  silence and reconnects: call it now and then). Returns 0 and a reply,
//  or -1 when nothing is waiting. Taking until -1 leaves the socket's
//  ZMQ_FD safe to poll(2) directly, until the next send.
int
    lh_client_try_recv (lh_client_t *self, lh_reply_t **reply_p);

//  Subscribe to events whose topic starts with prefix
int
    lh_client_subscribe (lh_client_t *self, const char *prefix);

//  Publish an event (body may be NULL)
int
    lh_client_publish (lh_client_t *self, const char *topic,
                       const void *body, size_t size);

//  The client's socket, for polling alongside others
zsock_t *
    lh_client_sock (lh_client_t *self);

//  ---------------------------------------------------------------------
//  Helpers shared with the actor runtime

//  Called each time the client waits for the broker (at least once per
//  heartbeat interval while a call waits). The actor runtime uses it to
//  keep its worker's own session alive while a handler waits on a call.
typedef void (lh_client_idle_fn) (void *arg);

//  Set (or clear, with NULL) the idle function
void
    lh_client_set_idle (lh_client_t *self, lh_client_idle_fn *idle_fn, void *arg);

//  Create a DEALER connected to the link's endpoint, with the CURVE client
//  options applied when link->cert is set (then server_key is required).
//  Returns NULL (and logs why) on failure.
zsock_t *
    lh_link_connect (const lh_link_t *link);

//  Write a fresh random trace id (32 lowercase hex, never all zero, NUL-
//  terminated) into trace, which holds LH_TRACE_SIZE + 1 bytes
void
    lh_trace_mint (char *trace);

//  64 random bits from the per-thread generator trace and span ids are
//  made of: unique, not secret (a getrandom(2) per id would cost more
//  than a span)
uint64_t
    lh_trace_random (void);

//  ---------------------------------------------------------------------
//  Replies

//  Status of a reply (200, 404, ...)
uint32_t
    lh_reply_status (lh_reply_t *self);
//  Message type: LH_T_REP, LH_T_PART or LH_T_PUB
lh_type_t
    lh_reply_type (lh_reply_t *self);
//  Id of the request this answers (cid)
uint64_t
    lh_reply_cid (lh_reply_t *self);
//  Full decoded header
const lh_header_t *
    lh_reply_header (lh_reply_t *self);
//  Body bytes (borrowed), NULL if none
const void *
    lh_reply_body (lh_reply_t *self, size_t *size);
//  Decoded body (bounded check first), NULL if none or malformed. The
//  object lives as long as the reply.
const msgpack_object *
    lh_reply_object (lh_reply_t *self);
//  PARTs received before the REP of a call, in order (zframe_t * items),
//  or NULL if none. Owned by the reply.
zlist_t *
    lh_reply_parts (lh_reply_t *self);
//  Error reason from an {"error":{...}} body, or NULL (borrowed)
const char *
    lh_reply_reason (lh_reply_t *self);
//  The id of the client span of the call this reply answers ("" when the
//  call was not traced; lh_client_set_span)
const char *
    lh_reply_span (lh_reply_t *self);

//  A reply made locally with an error status and the SPEC error body (it
//  reads like one that came from the bus)
lh_reply_t *
    lh_reply_new_error (uint32_t status, const char *kind, const char *reason);

void
    lh_reply_destroy (lh_reply_t **self_p);

//  Self test of this class
void
    lh_client_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
