/*  =========================================================================
    lh_bus_pump - a bus thread that keeps many requests in flight for
    threads that must not block

    The gateway's HTTP threads hand a request to the pump and suspend the
    HTTP connection; the pump's own thread owns one bus client, sends the
    request at once (lh_client_send) and, when the REP arrives (PARTs before
    it are collected), calls the request's done function on the pump
    thread. So one HTTP thread can have any number of bus calls in flight.

        lh_bus_pump_t *pump = lh_bus_pump_new (&link, "gateway-pump");
        lh_bus_pump_submit (pump, "echo", "echo", &body, &opts, s_done, connection);
        ...
        static void s_done (void *arg, lh_reply_t *reply, zlist_t *parts) {...}
        lh_bus_pump_destroy (&pump);    //  answers what is still pending

    Submit is thread-safe. done receives the reply (it takes it; NULL when
    no reply could be had: the pump is stopping or the request could not
    be sent) and the PART bodies received before it (zframe_t *, it takes
    the list; NULL when none). Every submitted request gets exactly one
    done call, at the latest when the pump is destroyed.
    =========================================================================
*/

#ifndef LH_BUS_PUMP_H_INCLUDED
#define LH_BUS_PUMP_H_INCLUDED

#include "lh_client.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _lh_bus_pump_t lh_bus_pump_t;

//  Called on the pump thread with the answer of a submitted request
typedef void (lh_bus_pump_done_fn) (void *arg, lh_reply_t *reply, zlist_t *parts);

//  Start a pump: a thread with one bus client named name on link (the
//  link and its cert must outlive the pump)
lh_bus_pump_t *
    lh_bus_pump_new (const lh_link_t *link, const char *name);

//  Stop the pump: every request still pending gets done (reply NULL)
//  first. Nulls the caller's pointer.
void
    lh_bus_pump_destroy (lh_bus_pump_t **self_p);

//  Submit svc.op with a msgpack body (taken; may be NULL) and options
//  (copied; NULL = defaults). Returns 0, or -1 if the pump is stopping
//  (then done is not called and the caller answers itself).
int
    lh_bus_pump_submit (lh_bus_pump_t *self, const char *svc, const char *op,
                        zframe_t **body_p, const lh_call_opts_t *opts,
                        lh_bus_pump_done_fn *done, void *arg);

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
