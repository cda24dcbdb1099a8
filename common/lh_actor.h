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

    Every handler must answer exactly once (a reply, or one of the
    lh_request_fail family below, which return -1 so the handler stops);
    if it returns without answering, the runtime answers 500 "handler did
    not reply", and a second answer is dropped and logged ("answered
    twice").
    =========================================================================
*/

#ifndef LH_ACTOR_H_INCLUDED
#define LH_ACTOR_H_INCLUDED

#include "lh_proto.h"
#include "lh_client.h"
#include "lh_body.h"
#include "lh_config.h"
#include "lh_trace.h"

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
    //  *error (static string) to refuse to start. config is never NULL
    //  (the defaults when the service was started without one). May be
    //  NULL.
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
//  "actors/NAME/workers", default 1). config (borrowed, must outlive the
//  runner) may be NULL: the defaults. Returns NULL (and logs why) if its
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

//  ---------------------------------------------------------------------
//  Answering with an error. Each of these answers the request with the
//  SPEC error body {"error": {kind, reason, field?, retry_after_ms?}} and
//  returns -1, always, so that a handler or a helper can stop with
//
//      if (rows < 0)
//          return lh_request_fail (request, 400, "bad_rows", "...");
//
//  and its caller, seeing -1, knows the request is answered and returns
//  too. kind NULL = the status's default kind.

int lh_request_fail (lh_request_t *self, uint32_t status, const char *kind,
                     const char *format, ...) CHECK_PRINTF (4);
//  The same, naming the request field at fault ("field")
int lh_request_fail_field (lh_request_t *self, uint32_t status, const char *kind,
                           const char *field, const char *format, ...)
                           CHECK_PRINTF (5);
//  The same, with retry_after_ms (429, 503)
int lh_request_fail_retry (lh_request_t *self, uint32_t status, const char *kind,
                           uint64_t retry_after_ms, const char *format, ...)
                           CHECK_PRINTF (5);
//  400 "bad_field" naming the field at fault
int lh_request_bad (lh_request_t *self, const char *field, const char *format, ...)
                    CHECK_PRINTF (3);

//  ---------------------------------------------------------------------
//  Reading the body. Validate the whole body before the first write, so a
//  refused request leaves stored state exactly as it was. Each reader
//  returns 0 with the value, or answers 400 (the SPEC error body, `field`
//  naming the field) and returns -1; then the handler returns at once.
//
//      const msgpack_object *body = lh_request_map (request);
//      char *name = NULL;
//      int64_t k = 10;                                 //  the default
//      if (!body
//      ||  lh_request_strdup (request, body, "name", LH_FIELD_REQUIRED, 1024, &name)
//      ||  lh_request_int (request, body, "k", 0, 1, 1000, &k)) {
//          free (name);
//          return;
//      }

#define LH_FIELD_REQUIRED   1           //  absent (or nil) is refused; else
                                        //  absent leaves *value as it was
#define LH_FIELD_NONEMPTY   2           //  "" or [] or {} is refused
#define LH_FIELD_LIMIT_413  4           //  over a size limit is 413 too_large,
                                        //  not 400

//  The body as a map; no body (or an empty one) reads as an empty map.
//  Returns NULL after answering 400 "bad_body" when the body is anything
//  else.
const msgpack_object *
    lh_request_map (lh_request_t *self);

//  A string field, borrowed (not NUL-terminated: use size), of at most
//  max_size bytes (0 = any). *value is left as it was when absent.
int lh_request_str (lh_request_t *self, const msgpack_object *map,
                    const char *field, int flags, size_t max_size,
                    const char **value, size_t *size);
//  A string field as a fresh NUL-terminated copy the caller frees (*value_p
//  is left as it was when absent); a string holding a NUL byte is refused
int lh_request_strdup (lh_request_t *self, const msgpack_object *map,
                       const char *field, int flags, size_t max_size,
                       char **value_p);
//  An integer field in min..max (a float, even 3.0, is refused)
int lh_request_int (lh_request_t *self, const msgpack_object *map,
                    const char *field, int flags, int64_t min, int64_t max,
                    int64_t *value);
//  A number field (integer or float) in min..max; NaN is refused
int lh_request_double (lh_request_t *self, const msgpack_object *map,
                       const char *field, int flags, double min, double max,
                       double *value);
//  A boolean field
int lh_request_bool (lh_request_t *self, const msgpack_object *map,
                     const char *field, int flags, bool *value);
//  An array field of at most max_items items (0 = any), borrowed
int lh_request_array (lh_request_t *self, const msgpack_object *map,
                      const char *field, int flags, uint32_t max_items,
                      const msgpack_object **value);
//  A map field, borrowed
int lh_request_submap (lh_request_t *self, const msgpack_object *map,
                       const char *field, int flags,
                       const msgpack_object **value);

//  ---------------------------------------------------------------------
//  JSON-shaped bodies, for handlers that work on jansson values (the JSON
//  conventions of docs/json.md: bin as {"$base64": ...}, ...)

struct json_t;

//  The body as a new JSON object (the caller decrefs it); no body reads as
//  {}. Returns NULL after answering 400 "bad_body" when the body is not a
//  map or holds what JSON cannot (a non-string key ...).
struct json_t *
    lh_request_json (lh_request_t *self);

//  Final reply whose body is a JSON value, encoded as msgpack (the value's
//  reference is taken). A value that cannot be encoded is answered 500
//  instead. Returns 0 when the reply was sent.
int lh_request_reply_json (lh_request_t *self, uint32_t status, struct json_t *json);

//  ---------------------------------------------------------------------
//  Calling another service from a handler. The call carries this
//  request's trace id, and its deadline is the smaller of timeout_ms (0:
//  5000) and this request's own time left, so no call outlives the caller.
//  Calls queue ("q") until the deadline when the service has no live
//  worker, so a dependency that is restarting is waited for.

//  Call svc.op with a msgpack body (may be NULL/0). Returns 0 with the
//  reply (whatever its status), or -1 with a synthesized 503/504 reply when
//  none came (no client, broker unreachable, deadline); *reply_p is always
//  set, for the caller to destroy.
int lh_request_call (lh_request_t *self, const char *svc, const char *op,
                     const void *body, size_t size, uint32_t timeout_ms,
                     lh_reply_t **reply_p);
//  The same with the body in a pack (destroyed)
int lh_request_call_pack (lh_request_t *self, const char *svc, const char *op,
                          lh_pack_t **pack_p, uint32_t timeout_ms,
                          lh_reply_t **reply_p);
//  Several calls at once, all in flight together; waits for every reply
//  (each call's reply is set, synthesized where none came). Returns 0 when
//  every call had a reply from its service, -1 if any was synthesized.
int lh_request_call_all (lh_request_t *self, lh_call_t *calls, size_t count,
                         uint32_t timeout_ms);
//  The options such a call carries (this request's trace; timeout_ms, 0 =
//  5000, capped by the time left; queued while the service has no live
//  worker), for code that keeps several calls in flight on
//  lh_request_client with lh_client_send and lh_client_wait
void lh_request_call_opts (lh_request_t *self, uint32_t timeout_ms,
                           lh_call_opts_t *opts);
//  The one mapping of a dependency's unexpected reply to our answer: 503
//  "dependency_unavailable" with retry_after_ms when svc did not answer or
//  was busy (no reply, 429, 503, 504), else 500 "dependency_failed"; the
//  reason names svc, what we asked for, its status and its reason. what
//  is a few words ("the manifest read"). Returns -1, always.
int lh_request_fail_dependency (lh_request_t *self, lh_reply_t *reply,
                                const char *svc, const char *what);

//  Heartbeat this thread's worker if it has been silent for hb_ivl. Call it
//  now and then from work that can outlast hb_ivl x hb_live (a slow upload,
//  a long query) where no request is at hand; cheap when nothing is due,
//  and a no-op on a thread that is not a worker.
void lh_keepalive (void);

//  Publish an event from a handler or tick (body may be NULL)
int lh_request_publish (lh_request_t *self, const char *topic,
                        const void *body, size_t size);
//  The same with the body in a pack (destroyed). A failure to publish is
//  logged, never the request's: publish after the change is durable, and
//  only for a request that changed something.
int lh_request_event (lh_request_t *self, const char *topic, lh_pack_t **pack_p);

//  ---------------------------------------------------------------------
//  Traces (lh_trace.h). While tracing is on, the runtime gives each request
//  a SERVER span "svc.op" (child of the caller's span, header "ps") and a
//  span "queue svc.op" for the broker's part (from its brx to our
//  receive); each call made on lh_request_client gets a CLIENT span.

//  Start a child span of this request's span, in this service (ended with
//  lh_span_end). Inactive, every lh_span_* a no-op, when the request has
//  no span (tracing off).
void lh_request_span (lh_request_t *self, lh_span_t *span, const char *name,
                      lh_span_kind_t kind);
//  This request's span id (16 hex), or "" when it has none
const char *lh_request_span_id (lh_request_t *self);

//  Self test of this class
void
    lh_actor_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
