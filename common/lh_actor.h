/*  =========================================================================
    lh_actor - the actor runtime: serve one named service on the bus

    A service is declared once as an lh_service_t: its name, its ops and
    their handlers, and optional shared state. The runtime starts N worker
    threads (zactors); each holds its own DEALER to the broker, says HELLO
    and READY (with its ops and credit), answers heartbeats, reconnects with
    backoff (1 s doubling to 32 s, +/-20 % jitter) when the broker goes
    silent, re-registers after a broker restart, and calls the handler for
    each REQ. Handlers run on the worker's thread; state shared between
    workers is the service's to lock.

        static void
        s_echo (lh_request_t *request, void *state)
        {
            size_t size;
            const void *body = lh_request_body (request, &size);
            lh_request_reply_raw (request, 200, body, size);
        }
        static const lh_op_t s_ops [] = { { "echo", s_echo }, { NULL, NULL } };
        const lh_service_t lh_echo_service = { .name = "echo", .ops = s_ops };

        lh_service_runner_t *runner = lh_service_start (&lh_echo_service,
                                                        &link, config, 2);
        ...
        lh_service_stop (&runner);

    Every handler must answer exactly once (reply, error); if it returns
    without answering, the runtime answers 500 "handler did not reply".
    =========================================================================
*/

#ifndef LH_ACTOR_H_INCLUDED
#define LH_ACTOR_H_INCLUDED

#include "lh_proto.h"
#include "lh_client.h"
#include "lh_body.h"
#include "lh_config.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _lh_request_t lh_request_t;
typedef void (lh_op_fn) (lh_request_t *request, void *state);

typedef struct {
    const char *name;                   //  op name
    lh_op_fn *handler;                  //  called for each REQ of this op
} lh_op_t;

typedef struct {
    const char *name;                   //  service name ("storaged")
    const lh_op_t *ops;                 //  table ending with { NULL, NULL }
    //  Create shared state once before workers start; return NULL and set
    //  *error (static string) to refuse to start. May be NULL.
    void *(*state_new) (lh_config_t *config, const lh_link_t *link,
                        const char **error);
    void (*state_destroy) (void **state_p);
    //  Called on each worker about once a second, may be NULL
    void (*tick) (void *state);
    uint32_t credit;                    //  requests in flight per worker; 0 = 1
                                        //  (config actors/NAME/credit, when declared, wins)
    //  Its state lives in this process (an index in memory, files on this
    //  host): one process at a time may offer it. Its workers' READY says
    //  so (header "solo", docs/protocol.md) and the broker refuses another
    //  process's (BYE 409). is_single_instance, when set, decides at start
    //  from the config instead (storaged: only on the fs backend).
    bool single_instance;
    bool (*is_single_instance) (lh_config_t *config);
} lh_service_t;

typedef struct _lh_service_runner_t lh_service_runner_t;

//  Start a service with `workers` worker threads (0 = config
//  "actors/NAME/workers", default 1). Returns NULL (and logs why) if its
//  state could not be created.
lh_service_runner_t *
    lh_service_start (const lh_service_t *service, const lh_link_t *link,
                      lh_config_t *config, int workers);

//  Stop all workers and destroy the state; nulls the caller's pointer
void
    lh_service_stop (lh_service_runner_t **self_p);

//  Why the broker refused this service's workers for good (a single-
//  instance service another process already offers: BYE 409, and again
//  after the broker's liveness window, in case that process had just
//  died), or NULL. The workers then stop trying. Thread-safe.
const char *
    lh_service_refused (lh_service_runner_t *self);

//  ---------------------------------------------------------------------
//  Inside a handler

const char *lh_request_op (lh_request_t *self);
const char *lh_request_trace (lh_request_t *self);     //  32 hex chars
const char *lh_request_src (lh_request_t *self);       //  stamped sender
uint32_t lh_request_attempt (lh_request_t *self);      //  1, 2, 3
const lh_header_t *lh_request_header (lh_request_t *self);
//  Milliseconds left before the caller's deadline (0 if passed)
uint64_t lh_request_time_left (lh_request_t *self);
//  Raw body bytes (borrowed), NULL if none
const void *lh_request_body (lh_request_t *self, size_t *size);
//  Decoded body, checked against the body limits; NULL if there is no body.
//  If the body is malformed the runtime has already answered 400 and does
//  not call the handler.
const msgpack_object *lh_request_object (lh_request_t *self);
//  A bus client on this worker's thread, carrying this request's trace
lh_client_t *lh_request_client (lh_request_t *self);

//  Stream a PART (body taken). Returns 0 or -1.
int lh_request_part (lh_request_t *self, zframe_t **body_p);
//  Final reply with a body (taken; NULL for no body)
int lh_request_reply (lh_request_t *self, uint32_t status, zframe_t **body_p);
//  Final reply from raw bytes (copied)
int lh_request_reply_raw (lh_request_t *self, uint32_t status,
                          const void *data, size_t size);
//  Final reply from a pack (destroyed)
int lh_request_reply_pack (lh_request_t *self, uint32_t status,
                           lh_pack_t **pack_p);
//  Final error reply with the SPEC error body; kind NULL = default for the
//  status. retry_after_ms > 0 adds "retry_after_ms".
int lh_request_error (lh_request_t *self, uint32_t status, const char *kind,
                      uint64_t retry_after_ms, const char *format, ...)
                      CHECK_PRINTF (5);

//  Heartbeat this thread's worker if it has been silent for hb_ivl. Call it
//  now and then from work that can outlast hb_ivl x hb_live (a slow upload,
//  a long query) where no request is at hand; cheap when nothing is due,
//  and a no-op on a thread that is not a worker.
void lh_keepalive (void);

//  Publish an event from a handler or tick (body may be NULL)
int lh_request_publish (lh_request_t *self, const char *topic,
                        const void *body, size_t size);

//  Self test of this class
void
    lh_actor_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
