/*  =========================================================================
    lh_bus_pump - many bus requests in flight for a thread that must not
    block on any of them

    A pump belongs to one thread (an HTTP thread of the gateway): that
    thread submits requests, polls the pump's socket beside its own, and
    runs the pump when the socket is readable (and every tick, so deadlines
    expire). Each submitted request is sent at once on the pump's bus
    client; when its REP arrives (PARTs before it are collected), run calls
    the request's done function, on the same thread. No hand-off between
    threads: the request goes from the submitting thread to the broker and
    the reply comes back to it.

        lh_bus_pump_t *pump = lh_bus_pump_new ();
        lh_bus_pump_set_client (pump, &client);     //  a connected client
        lh_bus_pump_submit (pump, "echo", "echo", &body, &opts, s_done, connection);
        ...                                         //  poll lh_bus_pump_sock
        lh_bus_pump_run (pump, tick, readable);
        ...
        static void s_done (void *arg, lh_reply_t *reply, zlist_t *parts) {...}
        lh_bus_pump_destroy (&pump);    //  answers what is still pending

    The client may be created on another thread and handed over (set_client
    takes it; the hand-over must pass a memory barrier, e.g. a mutex). done
    receives the reply (it takes it; NULL when none could be had: the pump
    is being destroyed) and the PART bodies received before it (zframe_t *,
    it takes the list; NULL when none). Every request that submit accepted
    gets exactly one done call, at the latest when the pump is destroyed.
    The client answers an expired request with a synthesized 504, and one
    it cannot deliver with a 503, so no request waits past its deadline.
    =========================================================================
*/

#ifndef LH_BUS_PUMP_H_INCLUDED
#define LH_BUS_PUMP_H_INCLUDED

#include "lh_client.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _lh_bus_pump_t lh_bus_pump_t;

//  Called on the pump's thread with the answer of a submitted request
typedef void (lh_bus_pump_done_fn) (void *arg, lh_reply_t *reply, zlist_t *parts);

//  Create a pump with no client yet (submit refuses until one is set)
lh_bus_pump_t *
    lh_bus_pump_new (void);

//  Destroy the pump: every request still pending gets done (reply NULL)
//  first, then its client says BYE. Nulls the caller's pointer.
void
    lh_bus_pump_destroy (lh_bus_pump_t **self_p);

//  Give the pump its bus client (taken; nulls the caller's pointer).
//  Only when it has none.
void
    lh_bus_pump_set_client (lh_bus_pump_t *self, lh_client_t **client_p);

//  True when the pump has a client
bool
    lh_bus_pump_ready (lh_bus_pump_t *self);

//  Send svc.op with a msgpack body (taken; may be NULL) and options
//  (NULL = defaults). Returns 0, or -1 if it could not be sent (no client
//  yet): then done is not called and the caller answers itself.
int
    lh_bus_pump_submit (lh_bus_pump_t *self, const char *svc, const char *op,
                        zframe_t **body_p, const lh_call_opts_t *opts,
                        lh_bus_pump_done_fn *done, void *arg);

//  The client's socket, to poll for ZMQ_POLLIN; NULL without a client
zsock_t *
    lh_bus_pump_sock (lh_bus_pump_t *self);

//  Handle what has arrived: PARTs are kept, each REP calls its done.
//  readable: the socket's ZMQ_FD fired. With tick, also let the client
//  keep its session and expire deadlines (call it so at least every 100
//  ms). Reads only when something may be waiting (readable, tick, or a
//  submit since the socket was last read dry), so a thread with no bus
//  traffic pays nothing. Returns the number of messages handled; 0 means
//  the socket was read dry (or nothing could be waiting), so its ZMQ_FD
//  may be polled directly until the next submit.
int
    lh_bus_pump_run (lh_bus_pump_t *self, bool tick, bool readable);

//  Requests submitted and not yet done
size_t
    lh_bus_pump_pending (lh_bus_pump_t *self);

//  Self test of this class
void
    lh_bus_pump_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
