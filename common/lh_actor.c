/*  =========================================================================
    lh_actor - the actor runtime: serve one named service on the bus

    lh_service_start creates the service's shared state, then one zactor
    per worker. Each worker owns a DEALER to the broker and runs one poll
    loop: pipe ($TERM), socket (WELCOME, REQ, HB, BYE), and timers
    (heartbeat when idle, broker silence, reconnect backoff, tick).

    Worker session, as BUS.md section 1, 2 and 5 ask:
    - connect: new socket, HELLO{name}, READY{svc, ops, credit} back to back
      (the broker reads them in order);
    - WELCOME: learn hb_ivl/hb_live/max_msg, reset the backoff;
    - broker silent for hb_ivl * hb_live: drop the socket, wait the backoff
      (1 s doubling to 32 s, +/-20 % jitter), connect again;
    - BYE from the broker (it restarted, or forgot us): HELLO + READY at
      once on the same socket; BYE 401/403: drop the socket and back off.

    zactor_new cannot report a failed start: each worker signals its pipe a
    second time after its first WELCOME (status 0) or after S_START_WAIT_MS
    without one (status 1: the broker is not up yet; the worker keeps
    trying on its own). lh_service_start waits for every worker's signal.

    Two conventions a handler can rely on, beyond lh_actor.h:
    - lh_request_header (request)->name is the worker's name, "SVC-INDEX";
    - lh_request_time_left also sends a heartbeat when the worker has been
      silent for hb_ivl, so a long handler that checks its time left now
      and then keeps its session alive; so does a handler waiting on a call
      through lh_request_client (its client's idle function).
    =========================================================================
*/

#include "lh_actor.h"
#include "lh_json.h"
#include "lh_log.h"
#include "lh_trace.h"
#include <sodium.h>
#include <poll.h>

#define S_HB_IVL            1000        //  heartbeat before WELCOME says
#define S_HB_LIVE           3           //  liveness before WELCOME says
#define S_MAX_MSG           (16 * 1024 * 1024)
#define S_BACKOFF_MIN       1000        //  first reconnect delay, ms
#define S_BACKOFF_MAX       32000       //  largest reconnect delay, ms
#define S_START_WAIT_MS     2000        //  start signal without WELCOME after
#define S_TICK_MS           1000        //  tick interval
#define S_DEFAULT_DL        5000        //  when a REQ carries no dl
#define S_SEND_WAIT_MIN     1000        //  least wait for room to send a reply
#define S_WORKERS_MAX       256         //  most workers one service may run
#define S_CREDIT_MAX        1000        //  most credit a worker offers
#define S_BATCH             100         //  bus messages handled between other duties
#define S_CONFLICT_TRIES    3           //  READYs refused 409 before a worker gives up

//  Every declared config key, to look actors/NAME/workers up only if it
//  exists (lh_config asserts on an undeclared key)
#define LH_KEY(path, type, value, range, comment) path,
static const char *s_config_keys [] = {
#include "lh_config_keys.h"
    NULL
};
#undef LH_KEY

typedef struct _s_worker_t s_worker_t;

//  The worker running on this thread, for lh_keepalive
static __thread s_worker_t *s_current_worker = NULL;

//  What a worker thread is started with
typedef struct {
    lh_service_runner_t *runner;        //  the service it belongs to
    int index;                          //  0 .. workers - 1
} s_worker_args_t;

struct _lh_service_runner_t {
    const lh_service_t *service;        //  the service served
    lh_config_t *config;                //  configuration (borrowed, or defaults)
    lh_config_t *defaults;              //  the default config, when none was given
    void *state;                        //  shared state from state_new
    char *endpoint;                     //  link endpoint (own copy)
    char *server_key;                   //  link server key (own copy), or NULL
    lh_link_t link;                     //  link pointing at the copies
    char ops [LH_OPS_MAX + 1];          //  READY ops, "op1,op2"
    char solo [LH_NAME_MAX + 1];        //  single-instance: our instance id, or ""
    char *refused;                      //  why the broker refused us for good (atomic)
    int count;                          //  number of workers
    uint32_t credit;                    //  each worker's credit in READY
    s_worker_args_t *args;              //  one per worker
    zactor_t **workers;                 //  one per worker
};

struct _s_worker_t {
    zsock_t *pipe;                      //  actor pipe
    lh_service_runner_t *runner;        //  our service
    const lh_service_t *service;        //  runner->service
    int index;                          //  worker index
    char name [LH_NAME_MAX + 1];        //  "SVC-INDEX"
    char hello_name [LH_NAME_MAX + 1];  //  name said in HELLO
    zsock_t *sock;                      //  DEALER to the broker, or NULL
    uint64_t next_id;                   //  last message id used
    uint64_t hello_id;                  //  id of the last HELLO sent
    bool welcomed;                      //  WELCOME since that HELLO
    bool ever_welcomed;                 //  any WELCOME at all
    bool started;                       //  start signal sent on the pipe
    bool terminated;                    //  $TERM received
    int64_t start_by;                   //  signal start by then regardless
    uint32_t hb_ivl;                    //  heartbeat interval, ms
    uint32_t hb_live;                   //  intervals of silence = dead
    uint64_t max_msg;                   //  largest body accepted
    int64_t last_send;                  //  monotonic ms of our last send
    int64_t last_recv;                  //  monotonic ms of the broker's last
    int64_t backoff;                    //  next reconnect delay, ms
    int64_t reconnect_at;               //  when to connect (sock == NULL)
    int64_t next_tick;                  //  when to call tick
    int conflicts;                      //  409s (single-instance) so far
    uint64_t refused_events;            //  our PUBs the broker refused (its ACL)
    lh_client_t *client;                //  for handlers' calls, lazily made
};

struct _lh_request_t {
    s_worker_t *worker;                 //  serving worker
    lh_header_t *header;                //  the REQ's header (in the message)
    zframe_t *body;                     //  body (borrowed), or NULL
    int64_t deadline;                   //  monotonic ms
    bool replied;                       //  final reply sent
    bool decoded;                       //  object valid
    bool zone_used;                     //  zone needs destroying
    msgpack_zone zone;                  //  holds object
    msgpack_object object;              //  decoded body
    char trace [LH_TRACE_SIZE + 1];     //  trace id (the REQ's or minted)
    lh_span_t *span;                    //  its span while tracing is on, else NULL
    uint32_t status;                    //  status of the final reply, once sent
};


//  --------------------------------------------------------------------------
//  Reconnect delay with +/-20 % jitter; doubles the next one

static int64_t
s_worker_backoff (s_worker_t *self)
{
    int64_t delay = self->backoff;
    int64_t spread = delay / 5;
    delay += (int64_t) randombytes_uniform ((uint32_t) (2 * spread + 1)) - spread;
    self->backoff *= 2;
    if (self->backoff > S_BACKOFF_MAX)
        self->backoff = S_BACKOFF_MAX;
    return delay;
}


//  --------------------------------------------------------------------------
//  Send a message with a fresh id. If the socket has no room and wait_ms
//  > 0, wait up to that long for room. Body taken on success. Returns 0/-1.

static int
s_worker_send (s_worker_t *self, lh_header_t *header, zframe_t **body_p, int64_t wait_ms)
{
    if (!self->sock)
        return -1;
    header->id = ++self->next_id;
    header->has |= LH_H_ID;
    int64_t until = zclock_mono () + wait_ms;
    while (lh_msg_send (self->sock, NULL, header, body_p) == -1) {
        int64_t left = until - zclock_mono ();
        if (zmq_errno () != EAGAIN || left <= 0 || zsys_interrupted)
            return -1;
        zmq_pollitem_t items [] = { { zsock_resolve (self->sock), 0, ZMQ_POLLOUT, 0 } };
        zmq_poll (items, 1, left);
    }
    self->last_send = zclock_mono ();
    return 0;
}


//  --------------------------------------------------------------------------
//  Say HELLO and READY on the current socket

static void
s_worker_hello (s_worker_t *self)
{
    lh_header_t header;
    lh_header_init (&header, LH_T_HELLO);
    lh_header_set_str (&header, LH_H_NAME, self->hello_name);
    if (s_worker_send (self, &header, NULL, 0))
        return;
    self->hello_id = header.id;
    self->welcomed = false;

    lh_header_init (&header, LH_T_READY);
    lh_header_set_str (&header, LH_H_SVC, self->service->name);
    if (*self->runner->ops)
        lh_header_set_str (&header, LH_H_OPS, self->runner->ops);
    header.credit = self->runner->credit;
    header.has |= LH_H_CREDIT;
    if (*self->runner->solo)
        lh_header_set_str (&header, LH_H_SOLO, self->runner->solo);
    s_worker_send (self, &header, NULL, 0);
}


//  --------------------------------------------------------------------------
//  Drop the socket and schedule the next connect after the backoff

static void
s_worker_disconnect (s_worker_t *self)
{
    zsock_destroy (&self->sock);
    self->welcomed = false;
    int64_t delay = s_worker_backoff (self);
    self->reconnect_at = zclock_mono () + delay;
    lh_debug (self->name, NULL, "reconnecting in %" PRId64 " ms", delay);
}


//  --------------------------------------------------------------------------
//  Connect a new socket and say HELLO + READY; the silence clock restarts

static void
s_worker_connect (s_worker_t *self)
{
    zsock_destroy (&self->sock);
    self->sock = lh_link_connect (&self->runner->link);
    if (!self->sock) {
        s_worker_disconnect (self);
        return;
    }
    self->last_recv = zclock_mono ();
    s_worker_hello (self);
}


//  --------------------------------------------------------------------------
//  Signal the start handshake once: 0 = welcomed, 1 = not (yet)

static void
s_worker_started (s_worker_t *self)
{
    if (!self->started) {
        self->started = true;
        zsock_signal (self->pipe, self->welcomed? 0: 1);
    }
}


//  --------------------------------------------------------------------------
//  Send the final reply or a PART for a request

static int
s_request_send (lh_request_t *self, lh_type_t type, uint32_t status, zframe_t **body_p)
{
    s_worker_t *worker = self->worker;
    if (self->replied) {
        lh_warn (worker->name, self->trace, "%s answered twice: extra %s dropped",
                 self->header->op, lh_type_name (type));
        return -1;
    }
    zframe_t *error = NULL;
    bool too_large = body_p && *body_p && zframe_size (*body_p) > worker->max_msg;
    if (too_large) {
        if (type == LH_T_PART) {
            lh_warn (worker->name, self->trace, "%s: PART of %zu bytes is over max_msg",
                     self->header->op, zframe_size (*body_p));
            return -1;
        }
        lh_warn (worker->name, self->trace, "%s: reply of %zu bytes is over max_msg",
                 self->header->op, zframe_size (*body_p));
        status = LH_ST_INTERNAL;
        error = lh_error_body (status, "reply_too_large",
                               "the reply is larger than the bus allows", 0);
        body_p = &error;
    }
    if (type == LH_T_REP && self->span && !self->span->end_ns)
        self->span->end_ns = lh_trace_now_ns ();       //  the span ends as it answers
    lh_header_t header;
    lh_header_init (&header, type);
    header.cid = self->header->id;
    header.has |= LH_H_CID;
    if (type == LH_T_REP) {
        header.st = status;
        header.has |= LH_H_ST;
    }
    lh_header_set_str (&header, LH_H_TR, self->trace);
    int64_t wait = self->deadline - zclock_mono ();
    if (wait < S_SEND_WAIT_MIN)
        wait = S_SEND_WAIT_MIN;
    int rc = s_worker_send (worker, &header, body_p, wait);
    zframe_destroy (&error);
    if (rc)
        lh_warn (worker->name, self->trace, "%s: could not send %s: %s",
                 self->header->op, lh_type_name (type), zmq_strerror (zmq_errno ()));
    if (type == LH_T_REP) {
        self->replied = true;
        self->status = status;
        if (too_large)
            rc = -1;
    }
    return rc;
}


//  --------------------------------------------------------------------------
//  Answer an error before or instead of a handler

static void
s_request_fail (lh_request_t *self, uint32_t status, const char *kind, const char *reason)
{
    zframe_t *body = lh_error_body (status, kind, reason, 0);
    if (s_request_send (self, LH_T_REP, status, &body))
        zframe_destroy (&body);
}


//  --------------------------------------------------------------------------
//  Start a request's span (SERVER: svc.op, child of the caller's span "ps")
//  and record the broker's part as a span of its own: from the broker's
//  receive (brx, its clock) to ours, the queue wait and the hop to us

static void
s_request_spans (lh_request_t *self, lh_span_t *span)
{
    s_worker_t *worker = self->worker;
    const lh_header_t *header = self->header;
    const char *parent = (header->has & LH_H_PS)? header->ps: NULL;
    const char *service = worker->service->name;
    char name [LH_SPAN_NAME_MAX + 1];
    snprintf (name, sizeof (name), "%s.%s", service, header->op);
    lh_span_start (span, self->trace, parent, service, name, LH_SPAN_SERVER);
    if (!span->active)
        return;
    self->span = span;
    lh_span_attr_str (span, "rpc.system", "lakehouse");
    lh_span_attr_str (span, "rpc.service", service);
    lh_span_attr_str (span, "rpc.method", header->op);
    lh_span_attr_str (span, "lh.worker", worker->name);
    if (header->has & LH_H_SRC)
        lh_span_attr_str (span, "lh.caller", header->src);
    if ((header->has & LH_H_ATT) && header->att > 1)
        lh_span_attr_int (span, "lh.attempt", header->att);
    if (header->has & LH_H_BRX) {
        lh_span_t queue;
        snprintf (name, sizeof (name), "queue %s.%s", service, header->op);
        lh_span_start (&queue, self->trace, parent, "broker", name, LH_SPAN_INTERNAL);
        //  Another host's clock may run ahead of ours: never a negative wait
        uint64_t brx_ns = header->brx * 1000;
        queue.start_ns = brx_ns < span->start_ns? brx_ns: span->start_ns;
        queue.end_ns = span->start_ns;
        lh_span_attr_str (&queue, "rpc.service", service);
        lh_span_attr_str (&queue, "rpc.method", header->op);
        lh_span_attr_int (&queue, "lh.queue_us", (int64_t) (queue.end_ns - queue.start_ns) / 1000);
        if (header->has & LH_H_BSEQ)
            lh_span_attr_int (&queue, "lh.bseq", (int64_t) header->bseq);
        lh_span_end (&queue, 0);
    }
}


//  --------------------------------------------------------------------------
//  Serve one REQ: find the op, check the body, call the handler, make sure
//  it answered

static void
s_worker_serve (s_worker_t *self, lh_msg_t *msg)
{
    lh_header_t *header = &msg->header;
    if (!(header->has & LH_H_ID)) {
        lh_debug (self->name, NULL, "dropped a REQ without id");
        return;
    }
    lh_request_t request;
    memset (&request, 0, sizeof (request));
    request.worker = self;
    request.header = header;
    request.body = msg->body;
    int64_t now = zclock_mono ();
    request.deadline = now + (int64_t) ((header->has & LH_H_DL)? header->dl: S_DEFAULT_DL);
    if ((header->has & LH_H_TR) && strlen (header->tr) == LH_TRACE_SIZE)
        memcpy (request.trace, header->tr, LH_TRACE_SIZE + 1);
    else
        lh_trace_mint (request.trace);
    if (!(header->has & LH_H_OP))
        header->op [0] = 0;
    lh_header_set_str (header, LH_H_NAME, self->name);

    lh_span_t span;                     //  filled only while tracing is on
    if (lh_trace_on ())
        s_request_spans (&request, &span);

    const lh_op_t *op = self->service->ops;
    while (op->name && !streq (op->name, header->op))
        op++;
    if (!op->name) {
        char reason [128 + LH_NAME_MAX * 2];
        snprintf (reason, sizeof (reason), "service '%s' has no op '%s'",
                  self->service->name, header->op);
        s_request_fail (&request, LH_ST_NOT_FOUND, "no_such_op", reason);
    }
    else
    if (request.body && zframe_size (request.body)
    &&  lh_msgpack_check (zframe_data (request.body), zframe_size (request.body),
                          &lh_limits_default) != 0)
        s_request_fail (&request, LH_ST_BAD_REQUEST, "bad_body",
                        "the request body is not valid msgpack (or exceeds the limits)");
    else
    if (request.deadline <= now)
        s_request_fail (&request, LH_ST_TIMEOUT, "deadline",
                        "the deadline passed before the request was served");
    else {
        lh_debug (self->name, request.trace, "%s.%s from %s", self->service->name,
                  header->op, (header->has & LH_H_SRC)? header->src: "-");
        op->handler (&request, self->runner->state);
        if (self->client) {
            lh_client_set_trace (self->client, NULL);
            lh_client_set_span (self->client, NULL, NULL);
        }
        if (!request.replied) {
            lh_warn (self->name, request.trace, "%s: handler did not reply", header->op);
            s_request_fail (&request, LH_ST_INTERNAL, "internal", "handler did not reply");
        }
    }
    if (request.span)
        lh_span_end (request.span, request.status);
    if (request.zone_used)
        msgpack_zone_destroy (&request.zone);
    //  We were busy, not the broker silent: its messages wait unread
    int64_t end = zclock_mono ();
    if (self->last_recv < end)
        self->last_recv = end;
}


//  --------------------------------------------------------------------------
//  Does a BYE body say "hello_first" (or carry no kind at all)?

static bool
s_bye_hello_first (zframe_t *body)
{
    if (!body || !zframe_size (body))
        return true;
    msgpack_zone zone;
    msgpack_zone_init (&zone, 512);
    msgpack_object object;
    bool hello_first = true;
    if (lh_msgpack_unpack (zframe_data (body), zframe_size (body), &lh_limits_default,
                           &zone, &object) == 0) {
        const msgpack_object *kind = lh_obj_get (lh_obj_get (&object, "error"), "kind");
        if (kind)
            hello_first = kind->type == MSGPACK_OBJECT_STR && kind->via.str.size == 11
                       && memcmp (kind->via.str.ptr, "hello_first", 11) == 0;
    }
    msgpack_zone_destroy (&zone);
    return hello_first;
}


//  --------------------------------------------------------------------------
//  The reason of a BYE's (or a REP's) error body, or NULL (caller frees)

static char *
s_bye_reason (zframe_t *body)
{
    if (!body)
        return NULL;
    msgpack_zone zone;
    msgpack_zone_init (&zone, 512);
    msgpack_object object;
    char *reason = NULL;
    if (lh_msgpack_unpack (zframe_data (body), zframe_size (body), &lh_limits_default,
                           &zone, &object) == 0)
        reason = lh_obj_strdup (lh_obj_get (lh_obj_get (&object, "error"), "reason"));
    msgpack_zone_destroy (&zone);
    return reason;
}


//  --------------------------------------------------------------------------
//  Receive and handle one message from the broker, if one is waiting.
//  Returns 0 (one handled, or a malformed one dropped), 1 when nothing is
//  waiting, -1 when the socket failed.

static int
s_worker_recv (s_worker_t *self)
{
    lh_msg_t msg;
    int rc = lh_msg_try_recv (&msg, self->sock, false, self->max_msg);
    if (rc == -2)
        lh_debug (self->name, NULL, "dropped a malformed message from the broker");
    if (rc)
        return rc == -2? 0: rc;
    self->last_recv = zclock_mono ();
    lh_header_t *header = &msg.header;
    switch (header->t) {
        case LH_T_WELCOME:
            lh_header_welcome (header, &self->hb_ivl, &self->hb_live, &self->max_msg);
            if (self->ever_welcomed)
                lh_info (self->name, NULL, "registered again with the broker");
            self->welcomed = self->ever_welcomed = true;
            self->backoff = S_BACKOFF_MIN;
            s_worker_started (self);
            break;
        case LH_T_REQ:
            self->conflicts = 0;            //  registered: a 409 is news again
            s_worker_serve (self, &msg);
            break;
        case LH_T_BYE: {
            uint32_t status = (header->has & LH_H_ST)? header->st: 0;
            if (status == LH_ST_CONFLICT) {
                //  Another process serves this single-instance service. It
                //  may be one that just died and the broker has not yet
                //  forgotten: try again after the broker's liveness window,
                //  S_CONFLICT_TRIES times in all (a loaded broker may notice
                //  the death late); refused each time, we stop for good
                //  (the runner says why)
                char *reason = s_bye_reason (msg.body);
                zsock_destroy (&self->sock);
                self->welcomed = false;
                int64_t window = (int64_t) self->hb_ivl * (self->hb_live + 1);
                if (++self->conflicts < S_CONFLICT_TRIES) {
                    lh_warn (self->name, NULL, "broker refused us (409): %s; trying again "
                             "in %" PRId64 " ms, in case that process has died",
                             reason? reason: "conflict", window);
                    self->reconnect_at = zclock_mono () + window;
                    free (reason);
                }
                else {
                    lh_error (self->name, NULL, "broker refused us (409) %d times: %s; not serving",
                              self->conflicts, reason? reason: "conflict");
                    char *expected = NULL;
                    if (!__atomic_compare_exchange_n (&self->runner->refused, &expected, reason,
                                                      false, __ATOMIC_RELEASE, __ATOMIC_RELAXED))
                        free (reason);
                    self->reconnect_at = INT64_MAX;
                }
            }
            else
            if (status == LH_ST_UNAUTHORIZED || status == LH_ST_FORBIDDEN) {
                lh_error (self->name, NULL, "broker refused us (%u): backing off", status);
                s_worker_disconnect (self);
            }
            else
            if (status == LH_ST_BAD_REQUEST && !s_bye_hello_first (msg.body))
                lh_warn (self->name, NULL, "broker said BYE 400 (not hello_first)");
            else
            if ((header->has & LH_H_CID)? header->cid > self->hello_id: self->welcomed) {
                lh_info (self->name, NULL, "broker said BYE (%u): HELLO again", status);
                s_worker_hello (self);
            }
            break;
        }
        case LH_T_REP:
            //  The broker refused an event of ours (acl/actor/publish): the
            //  event is lost, so say so loudly, the first and every 100th
            //  (broker.stats counts each in refused.publish)
            if ((header->has & LH_H_ST) && header->st == LH_ST_FORBIDDEN
            &&  self->refused_events++ % 100 == 0) {
                char *reason = s_bye_reason (msg.body);
                lh_error (self->name, NULL, "the broker refused our event (%" PRIu64 " so far): %s",
                          self->refused_events, reason? reason: "403");
                free (reason);
            }
            break;
        default:
            break;                      //  HB, and nothing else is for us
    }
    lh_msg_reset (&msg);
    return 0;
}


//  --------------------------------------------------------------------------
//  Handle a command on the pipe

static void
s_worker_pipe (s_worker_t *self)
{
    char *command = zstr_recv (self->pipe);
    if (!command || streq (command, "$TERM"))
        self->terminated = true;
    zstr_free (&command);
    zsock_flush (self->pipe);
}


//  --------------------------------------------------------------------------
//  Create a worker

static s_worker_t *
s_worker_new (zsock_t *pipe, s_worker_args_t *args)
{
    s_worker_t *self = (s_worker_t *) zmalloc (sizeof (s_worker_t));
    assert (self);
    self->pipe = pipe;
    self->runner = args->runner;
    self->service = args->runner->service;
    self->index = args->index;
    //  Keep the index whole if the service name is long
    char suffix [16];
    snprintf (suffix, sizeof (suffix), "-%d", self->index);
    snprintf (self->name, sizeof (self->name), "%.*s%s",
              (int) (LH_NAME_MAX - strlen (suffix)), self->service->name, suffix);
    const char *cert_name = self->runner->link.cert?
                            zcert_meta (self->runner->link.cert, "name"): NULL;
    snprintf (self->hello_name, sizeof (self->hello_name), "%s",
              cert_name && *cert_name? cert_name: self->name);
    self->hb_ivl = S_HB_IVL;
    self->hb_live = S_HB_LIVE;
    self->max_msg = S_MAX_MSG;
    self->backoff = S_BACKOFF_MIN;
    int64_t now = zclock_mono ();
    self->start_by = now + S_START_WAIT_MS;
    self->next_tick = now + S_TICK_MS;
    self->last_send = self->last_recv = now;
    return self;
}


//  --------------------------------------------------------------------------
//  Destroy a worker: say BYE, close the client and the socket

static void
s_worker_destroy (s_worker_t **self_p)
{
    s_worker_t *self = *self_p;
    if (self) {
        lh_client_destroy (&self->client);
        if (self->sock && self->welcomed) {
            lh_header_t header;
            lh_header_init (&header, LH_T_BYE);
            zsock_set_linger (self->sock, 100);
            s_worker_send (self, &header, NULL, 0);
        }
        zsock_destroy (&self->sock);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  The worker actor: one poll loop over the pipe, the socket and timers

static void
s_worker_actor (zsock_t *pipe, void *args)
{
    s_worker_t *self = s_worker_new (pipe, (s_worker_args_t *) args);
    s_current_worker = self;
    //  "echo-1" in top -H, perf and gdb (15 characters at most)
    char thread_name [16];
    snprintf (thread_name, sizeof (thread_name), "%.15s", self->name);
    pthread_setname_np (pthread_self (), thread_name);
    zsock_signal (pipe, 0);
    s_worker_connect (self);

    //  ZMQ_FDs are polled directly (zmq_poll would ask each socket for its
    //  events before and after every wait). That is safe only for a socket
    //  read dry since its last send: the bus socket is read until empty
    //  right before each wait, the pipe whenever its descriptor fired.
    bool pipe_dirty = true;             //  the pipe may hold a command
    while (!self->terminated && !zsys_interrupted) {
        //  Timers first: they may send (HELLO, heartbeats)
        int64_t now = zclock_mono ();
        int64_t live_ms = (int64_t) self->hb_ivl * self->hb_live;
        if (!self->started && now >= self->start_by) {
            lh_warn (self->name, NULL, "no WELCOME from %s yet: still trying",
                     self->runner->link.endpoint);
            s_worker_started (self);
        }
        if (self->sock && now - self->last_recv >= live_ms) {
            if (self->ever_welcomed)
                lh_warn (self->name, NULL, "broker silent for %" PRId64 " ms: reconnecting",
                         now - self->last_recv);
            s_worker_disconnect (self);
        }
        else
        if (!self->sock && now >= self->reconnect_at)
            s_worker_connect (self);
        else
        if (self->sock && now - self->last_send >= self->hb_ivl) {
            lh_header_t header;
            lh_header_init (&header, LH_T_HB);
            s_worker_send (self, &header, NULL, 0);
        }
        if (now >= self->next_tick) {
            if (self->service->tick)
                self->service->tick (self->runner->state);
            self->next_tick = zclock_mono () + S_TICK_MS;
        }
        //  The bus, a bounded batch so the pipe and timers are not starved
        int count = 0;
        while (self->sock && count < S_BATCH) {
            int rc = s_worker_recv (self);
            if (rc == -1 && zmq_errno () == ETERM)
                self->terminated = true;
            if (rc)
                break;
            count++;
        }
        if (self->terminated)
            break;
        if (pipe_dirty) {
            pipe_dirty = false;
            if (zsock_events (self->pipe) & ZMQ_POLLIN) {
                s_worker_pipe (self);
                pipe_dirty = true;
                continue;
            }
        }
        if (count == S_BATCH)
            continue;                   //  more is waiting: no wait

        now = zclock_mono ();
        live_ms = (int64_t) self->hb_ivl * self->hb_live;
        int64_t wake = self->next_tick;
        if (!self->started && wake > self->start_by)
            wake = self->start_by;
        if (self->sock) {
            if (wake > self->last_send + self->hb_ivl)
                wake = self->last_send + self->hb_ivl;
            if (wake > self->last_recv + live_ms)
                wake = self->last_recv + live_ms;
        }
        else
        if (wake > self->reconnect_at)
            wake = self->reconnect_at;
        struct pollfd items [2] = {
            { zsock_fd (self->pipe), POLLIN, 0 },
            { self->sock? zsock_fd (self->sock): -1, POLLIN, 0 }
        };
        if (poll (items, self->sock? 2: 1, wake > now? (int) (wake - now): 0) == -1
        &&  errno != EINTR)
            break;
        if (items [0].revents & POLLIN)
            pipe_dirty = true;
    }
    s_worker_destroy (&self);
}


//  --------------------------------------------------------------------------
//  A service setting from config actors/NAME/KEY, if that key is declared
//  (in range low..high), else fallback

static int64_t
s_config_setting (const lh_service_t *service, lh_config_t *config, const char *key,
                  int64_t low, int64_t high, int64_t fallback)
{
    if (!config)
        return fallback;
    char path [LH_NAME_MAX + 32];
    snprintf (path, sizeof (path), "actors/%s/%s", service->name, key);
    for (const char **name = s_config_keys; *name; name++)
        if (streq (*name, path)) {
            int64_t value = lh_config_int (config, path);
            if (value < low || value > high) {
                lh_warn (service->name, NULL, "%s = %" PRId64 " is out of range %" PRId64
                         "..%" PRId64 ": using %" PRId64, path, value, low, high, fallback);
                return fallback;
            }
            return value;
        }
    return fallback;
}


//  --------------------------------------------------------------------------
//  Start a service with `workers` worker threads. Returns NULL (and logs
//  why) if its state could not be created.

lh_service_runner_t *
lh_service_start (const lh_service_t *service, const lh_link_t *link,
                  lh_config_t *config, int workers)
{
    assert (service);
    assert (service->name);
    assert (service->ops);
    assert (link);
    lh_config_t *defaults = NULL;
    if (!config)
        config = defaults = lh_config_load (NULL, NULL);
    assert (config);
    if (workers <= 0)
        workers = (int) s_config_setting (service, config, "workers", 1, S_WORKERS_MAX, 1);
    if (workers > S_WORKERS_MAX)
        workers = S_WORKERS_MAX;

    lh_service_runner_t *self = (lh_service_runner_t *) zmalloc (sizeof (lh_service_runner_t));
    assert (self);
    self->service = service;
    self->config = config;
    self->defaults = defaults;
    self->credit = (uint32_t) s_config_setting (service, config, "credit", 1, S_CREDIT_MAX,
                                                service->credit? service->credit: 1);
    //  The ops a worker declares; a service's table is ours, so a table
    //  too long for READY is a programming error
    size_t used = 0;
    for (const lh_op_t *op = service->ops; op->name; op++) {
        assert (op->handler);
        int size = snprintf (self->ops + used, sizeof (self->ops) - used, "%s%s",
                             used? ",": "", op->name);
        assert (size > 0 && used + size < sizeof (self->ops));
        used += size;
    }
    self->endpoint = strdup (link->endpoint? link->endpoint: "");
    self->server_key = link->server_key? strdup (link->server_key): NULL;
    self->link.endpoint = self->endpoint;
    self->link.server_key = self->server_key;
    self->link.cert = link->cert;
    //  A single-instance service names this process in its READY:
    //  host, pid and a random part (pids repeat across hosts and time)
    bool single = service->is_single_instance && config
                ? service->is_single_instance (config): service->single_instance;
    if (single) {
        char host [256] = "";
        gethostname (host, sizeof (host) - 1);
        for (char *c = host; *c; c++)
            if (!isalnum ((unsigned char) *c) && *c != '-' && *c != '.')
                *c = '-';
        snprintf (self->solo, sizeof (self->solo), "%.32s:%d:%08x", *host? host: "host",
                  (int) getpid (), (unsigned) randombytes_random ());
    }

    if (service->state_new) {
        const char *error = NULL;
        self->state = service->state_new (config, &self->link, &error);
        if (!self->state) {
            lh_error (service->name, NULL, "cannot start: %s",
                      error? error: "state could not be created");
            lh_config_destroy (&self->defaults);
            free (self->endpoint);
            free (self->server_key);
            free (self);
            return NULL;
        }
    }
    self->count = workers;
    self->args = (s_worker_args_t *) zmalloc (workers * sizeof (s_worker_args_t));
    self->workers = (zactor_t **) zmalloc (workers * sizeof (zactor_t *));
    assert (self->args && self->workers);
    for (int index = 0; index < workers; index++) {
        self->args [index].runner = self;
        self->args [index].index = index;
        self->workers [index] = zactor_new (s_worker_actor, &self->args [index]);
        assert (self->workers [index]);
    }
    //  Every worker signals after its first WELCOME, or after a short wait
    int welcomed = 0;
    for (int index = 0; index < workers; index++)
        if (zsock_wait (self->workers [index]) == 0)
            welcomed++;
    lh_info (service->name, NULL, "started %d worker%s on %s (%d registered)",
             workers, workers == 1? "": "s", self->endpoint, welcomed);
    return self;
}


//  --------------------------------------------------------------------------
//  Stop all workers (each says BYE) and destroy the state; nulls the
//  caller's pointer

void
lh_service_stop (lh_service_runner_t **self_p)
{
    assert (self_p);
    lh_service_runner_t *self = *self_p;
    if (self) {
        for (int index = 0; index < self->count; index++)
            zactor_destroy (&self->workers [index]);
        if (self->service->state_destroy && self->state)
            self->service->state_destroy (&self->state);
        free (self->workers);
        free (self->args);
        free (self->endpoint);
        free (self->server_key);
        lh_config_destroy (&self->defaults);
        free (self->refused);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Why the broker refused this service's workers for good, or NULL

const char *
lh_service_refused (lh_service_runner_t *self)
{
    assert (self);
    return __atomic_load_n (&self->refused, __ATOMIC_ACQUIRE);
}


//  --------------------------------------------------------------------------
//  Request accessors (inside a handler)

const char *
lh_request_op (lh_request_t *self)
{
    assert (self);
    return self->header->op;
}

const char *
lh_request_trace (lh_request_t *self)
{
    assert (self);
    return self->trace;
}

const char *
lh_request_src (lh_request_t *self)
{
    assert (self);
    return (self->header->has & LH_H_SRC)? self->header->src: "";
}

uint32_t
lh_request_attempt (lh_request_t *self)
{
    assert (self);
    return (self->header->has & LH_H_ATT) && self->header->att? self->header->att: 1;
}

const lh_header_t *
lh_request_header (lh_request_t *self)
{
    assert (self);
    return self->header;
}


//  --------------------------------------------------------------------------
//  Heartbeat if the worker has sent nothing for hb_ivl. Safe from inside a
//  handler (same thread): used by lh_request_time_left and while a
//  handler's client waits.

static void
s_worker_keepalive (void *arg)
{
    s_worker_t *self = (s_worker_t *) arg;
    if (self->sock && zclock_mono () - self->last_send >= self->hb_ivl) {
        lh_header_t header;
        lh_header_init (&header, LH_T_HB);
        s_worker_send (self, &header, NULL, 0);
    }
}


//  --------------------------------------------------------------------------
//  Keep this thread's worker session alive from deep inside a handler
//  (a storage backend's curl progress callback, SQLite's progress handler)
//  that has no request at hand. Does nothing off a worker thread.

void
lh_keepalive (void)
{
    if (s_current_worker)
        s_worker_keepalive (s_current_worker);
}


//  --------------------------------------------------------------------------
//  Milliseconds left before the caller's deadline (0 if passed). Also
//  heartbeats when the worker has been silent for hb_ivl.

uint64_t
lh_request_time_left (lh_request_t *self)
{
    assert (self);
    s_worker_keepalive (self->worker);
    int64_t now = zclock_mono ();
    return self->deadline > now? (uint64_t) (self->deadline - now): 0;
}


//  --------------------------------------------------------------------------
//  Raw body bytes (borrowed), NULL if none

const void *
lh_request_body (lh_request_t *self, size_t *size)
{
    assert (self);
    if (size)
        *size = self->body? zframe_size (self->body): 0;
    return self->body? zframe_data (self->body): NULL;
}


//  --------------------------------------------------------------------------
//  Decoded body (checked before the handler was called), NULL if none

const msgpack_object *
lh_request_object (lh_request_t *self)
{
    assert (self);
    if (!self->decoded && !self->zone_used && self->body && zframe_size (self->body)) {
        msgpack_zone_init (&self->zone, 2048);
        self->zone_used = true;
        self->decoded = lh_msgpack_unpack (zframe_data (self->body), zframe_size (self->body),
                                           &lh_limits_default, &self->zone,
                                           &self->object) == 0;
    }
    return self->decoded? &self->object: NULL;
}


//  --------------------------------------------------------------------------
//  A bus client on this worker's thread, carrying this request's trace.
//  NULL if the broker cannot be reached.

lh_client_t *
lh_request_client (lh_request_t *self)
{
    assert (self);
    s_worker_t *worker = self->worker;
    if (!worker->client) {
        char name [LH_NAME_MAX + 1];
        snprintf (name, sizeof (name), "%.*s.client", LH_NAME_MAX - 7, worker->name);
        worker->client = lh_client_new (&worker->runner->link, name);
        if (worker->client)
            lh_client_set_idle (worker->client, s_worker_keepalive, worker);
    }
    if (worker->client) {
        lh_client_set_trace (worker->client, self->trace);
        if (self->span)
            lh_client_set_span (worker->client, self->span->id, worker->service->name);
    }
    return worker->client;
}


//  --------------------------------------------------------------------------
//  Stream a PART (body taken on success). Returns 0 or -1.

int
lh_request_part (lh_request_t *self, zframe_t **body_p)
{
    assert (self);
    return s_request_send (self, LH_T_PART, 0, body_p);
}


//  --------------------------------------------------------------------------
//  Final reply with a body (taken; NULL for no body). Returns 0 or -1.

int
lh_request_reply (lh_request_t *self, uint32_t status, zframe_t **body_p)
{
    assert (self);
    int rc = s_request_send (self, LH_T_REP, status, body_p);
    if (body_p)
        zframe_destroy (body_p);
    return rc;
}


//  --------------------------------------------------------------------------
//  Final reply from raw bytes (copied)

int
lh_request_reply_raw (lh_request_t *self, uint32_t status,
                      const void *data, size_t size)
{
    assert (self);
    zframe_t *body = data && size? zframe_new (data, size): NULL;
    return lh_request_reply (self, status, &body);
}


//  --------------------------------------------------------------------------
//  Final reply from a pack (destroyed)

int
lh_request_reply_pack (lh_request_t *self, uint32_t status, lh_pack_t **pack_p)
{
    assert (self);
    assert (pack_p);
    zframe_t *body = lh_pack_frame (pack_p);
    return lh_request_reply (self, status, &body);
}


//  --------------------------------------------------------------------------
//  Answer an error with the SPEC body; returns -1, always

static int
s_request_vfail (lh_request_t *self, uint32_t status, const char *kind,
                 const char *field, uint64_t retry_after_ms,
                 const char *format, va_list argptr)
{
    char *reason = zsys_vprintf (format, argptr);
    zframe_t *body = lh_error_body_field (status, kind, reason, field, retry_after_ms);
    free (reason);
    lh_request_reply (self, status, &body);
    return -1;
}

int
lh_request_fail (lh_request_t *self, uint32_t status, const char *kind,
                 const char *format, ...)
{
    assert (self);
    va_list argptr;
    va_start (argptr, format);
    s_request_vfail (self, status, kind, NULL, 0, format, argptr);
    va_end (argptr);
    return -1;
}

int
lh_request_fail_field (lh_request_t *self, uint32_t status, const char *kind,
                       const char *field, const char *format, ...)
{
    assert (self);
    va_list argptr;
    va_start (argptr, format);
    s_request_vfail (self, status, kind, field, 0, format, argptr);
    va_end (argptr);
    return -1;
}

int
lh_request_fail_retry (lh_request_t *self, uint32_t status, const char *kind,
                       uint64_t retry_after_ms, const char *format, ...)
{
    assert (self);
    va_list argptr;
    va_start (argptr, format);
    s_request_vfail (self, status, kind, NULL, retry_after_ms, format, argptr);
    va_end (argptr);
    return -1;
}

int
lh_request_bad (lh_request_t *self, const char *field, const char *format, ...)
{
    assert (self);
    va_list argptr;
    va_start (argptr, format);
    s_request_vfail (self, LH_ST_BAD_REQUEST, "bad_field", field, 0, format, argptr);
    va_end (argptr);
    return -1;
}


//  --------------------------------------------------------------------------
//  The body as a map (an absent or empty body is an empty map); NULL after
//  answering 400

const msgpack_object *
lh_request_map (lh_request_t *self)
{
    assert (self);
    static const msgpack_object s_empty = { .type = MSGPACK_OBJECT_MAP };
    if (!self->body || zframe_size (self->body) == 0)
        return &s_empty;
    const msgpack_object *body = lh_request_object (self);
    if (body && body->type == MSGPACK_OBJECT_NIL)
        return &s_empty;
    if (!body || body->type != MSGPACK_OBJECT_MAP) {
        lh_request_fail (self, LH_ST_BAD_REQUEST, "bad_body",
                         "the body must be a map (a JSON object)");
        return NULL;
    }
    return body;
}


//  --------------------------------------------------------------------------
//  Find a field for a reader. Returns 1 with *item, 0 when absent and
//  optional, -1 after answering 400 (absent and required).

static int
s_field (lh_request_t *self, const msgpack_object *map, const char *field,
         int flags, const msgpack_object **item)
{
    assert (map && field);
    *item = lh_obj_get (map, field);
    if (*item && (*item)->type != MSGPACK_OBJECT_NIL)
        return 1;
    if (flags & LH_FIELD_REQUIRED)
        return lh_request_bad (self, field, "'%s' is required", field);
    return 0;
}

//  Refuse a value over a size limit: 400, or 413 with LH_FIELD_LIMIT_413
static int
s_field_too_large (lh_request_t *self, const char *field, int flags,
                   const char *what, uint64_t size, uint64_t limit)
{
    if (flags & LH_FIELD_LIMIT_413)
        return lh_request_fail_field (self, LH_ST_TOO_LARGE, "too_large", field,
                                      "'%s' has %" PRIu64 " %s; at most %" PRIu64 " are allowed",
                                      field, size, what, limit);
    return lh_request_bad (self, field, "'%s' has %" PRIu64 " %s; at most %" PRIu64 " are allowed",
                           field, size, what, limit);
}


//  --------------------------------------------------------------------------
//  Typed field readers: 0 with the value (or absent and optional), -1
//  after answering 400 naming the field

int
lh_request_str (lh_request_t *self, const msgpack_object *map, const char *field,
                int flags, size_t max_size, const char **value, size_t *size)
{
    assert (self && value && size);
    const msgpack_object *item;
    int rc = s_field (self, map, field, flags, &item);
    if (rc <= 0)
        return rc;
    if (item->type != MSGPACK_OBJECT_STR)
        return lh_request_bad (self, field, "'%s' must be a string", field);
    if ((flags & LH_FIELD_NONEMPTY) && item->via.str.size == 0)
        return lh_request_bad (self, field, "'%s' must not be empty", field);
    if (max_size && item->via.str.size > max_size)
        return s_field_too_large (self, field, flags, "bytes", item->via.str.size, max_size);
    *value = item->via.str.ptr;
    *size = item->via.str.size;
    return 0;
}

int
lh_request_strdup (lh_request_t *self, const msgpack_object *map, const char *field,
                   int flags, size_t max_size, char **value_p)
{
    assert (value_p);
    const char *text = NULL;
    size_t size = 0;
    if (lh_request_str (self, map, field, flags, max_size, &text, &size))
        return -1;
    if (!text && !lh_obj_get (map, field))
        return 0;                       //  absent, optional
    if (memchr (text? text: "", 0, size))
        return lh_request_bad (self, field, "'%s' must not hold a NUL character", field);
    char *copy = (char *) malloc (size + 1);
    assert (copy);
    if (size)
        memcpy (copy, text, size);
    copy [size] = 0;
    free (*value_p);
    *value_p = copy;
    return 0;
}

int
lh_request_int (lh_request_t *self, const msgpack_object *map, const char *field,
                int flags, int64_t min, int64_t max, int64_t *value)
{
    assert (value);
    const msgpack_object *item;
    int rc = s_field (self, map, field, flags, &item);
    if (rc <= 0)
        return rc;
    bool fits = false;
    int64_t number = 0;
    if (item->type == MSGPACK_OBJECT_POSITIVE_INTEGER && item->via.u64 <= INT64_MAX) {
        number = (int64_t) item->via.u64;
        fits = true;
    }
    else
    if (item->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        number = item->via.i64;
        fits = true;
    }
    else
    if (item->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return lh_request_bad (self, field, "'%s' must be an integer from %" PRId64 " to %" PRId64,
                               field, min, max);
    if (!fits || number < min || number > max)
        return lh_request_bad (self, field, "'%s' must be from %" PRId64 " to %" PRId64,
                               field, min, max);
    *value = number;
    return 0;
}

int
lh_request_double (lh_request_t *self, const msgpack_object *map, const char *field,
                   int flags, double min, double max, double *value)
{
    assert (value);
    const msgpack_object *item;
    int rc = s_field (self, map, field, flags, &item);
    if (rc <= 0)
        return rc;
    double number;
    if (item->type == MSGPACK_OBJECT_FLOAT32 || item->type == MSGPACK_OBJECT_FLOAT64)
        number = item->via.f64;
    else
    if (item->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        number = (double) item->via.u64;
    else
    if (item->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        number = (double) item->via.i64;
    else
        return lh_request_bad (self, field, "'%s' must be a number from %g to %g", field, min, max);
    if (isnan (number) || number < min || number > max)
        return lh_request_bad (self, field, "'%s' must be from %g to %g", field, min, max);
    *value = number;
    return 0;
}

int
lh_request_bool (lh_request_t *self, const msgpack_object *map, const char *field,
                 int flags, bool *value)
{
    assert (value);
    const msgpack_object *item;
    int rc = s_field (self, map, field, flags, &item);
    if (rc <= 0)
        return rc;
    if (item->type != MSGPACK_OBJECT_BOOLEAN)
        return lh_request_bad (self, field, "'%s' must be true or false", field);
    *value = item->via.boolean;
    return 0;
}

int
lh_request_array (lh_request_t *self, const msgpack_object *map, const char *field,
                  int flags, uint32_t max_items, const msgpack_object **value)
{
    assert (value);
    const msgpack_object *item;
    int rc = s_field (self, map, field, flags, &item);
    if (rc <= 0)
        return rc;
    if (item->type != MSGPACK_OBJECT_ARRAY)
        return lh_request_bad (self, field, "'%s' must be an array", field);
    if ((flags & LH_FIELD_NONEMPTY) && item->via.array.size == 0)
        return lh_request_bad (self, field, "'%s' must not be empty", field);
    if (max_items && item->via.array.size > max_items)
        return s_field_too_large (self, field, flags, "items", item->via.array.size, max_items);
    *value = item;
    return 0;
}

int
lh_request_submap (lh_request_t *self, const msgpack_object *map, const char *field,
                   int flags, const msgpack_object **value)
{
    assert (value);
    const msgpack_object *item;
    int rc = s_field (self, map, field, flags, &item);
    if (rc <= 0)
        return rc;
    if (item->type != MSGPACK_OBJECT_MAP)
        return lh_request_bad (self, field, "'%s' must be a map (a JSON object)", field);
    if ((flags & LH_FIELD_NONEMPTY) && item->via.map.size == 0)
        return lh_request_bad (self, field, "'%s' must not be empty", field);
    *value = item;
    return 0;
}


//  --------------------------------------------------------------------------
//  The body as a new JSON object, or NULL after answering 400

json_t *
lh_request_json (lh_request_t *self)
{
    const msgpack_object *body = lh_request_map (self);
    if (!body)
        return NULL;
    char *error = NULL;
    json_t *json = lh_json_from_object (body, &error);
    if (!json_is_object (json)) {
        lh_request_fail (self, LH_ST_BAD_REQUEST, "bad_body", "the body cannot be read as a "
                         "JSON object: %s", error? error: "not a map");
        json_decref (json);
        json = NULL;
    }
    free (error);
    return json;
}


//  --------------------------------------------------------------------------
//  Final reply from a JSON value (reference taken)

int
lh_request_reply_json (lh_request_t *self, uint32_t status, json_t *json)
{
    assert (self);
    lh_pack_t *pack = lh_pack_new ();
    char *error = NULL;
    int rc;
    if (json && lh_json_to_pack (json, pack, &lh_limits_default, &error) == 0)
        rc = lh_request_reply_pack (self, status, &pack);
    else {
        lh_pack_destroy (&pack);
        lh_request_fail (self, LH_ST_INTERNAL, NULL, "the reply could not be encoded: %s",
                         error? error: "no value");
        rc = -1;
    }
    free (error);
    json_decref (json);
    return rc;
}


//  --------------------------------------------------------------------------
//  Options of a call made from a handler: this request's trace, the
//  smaller of timeout_ms and the time left, queued while no worker is live

void
lh_request_call_opts (lh_request_t *self, uint32_t timeout_ms, lh_call_opts_t *opts)
{
    assert (self);
    assert (opts);
    memset (opts, 0, sizeof (*opts));
    uint64_t left = lh_request_time_left (self);
    uint64_t timeout = timeout_ms? timeout_ms: S_DEFAULT_DL;
    if (left < timeout)
        timeout = left? left: 1;
    opts->timeout_ms = (uint32_t) timeout;
    opts->trace = self->trace;
    opts->queue = true;                 //  a restarting service is waited for
}


//  --------------------------------------------------------------------------
//  Call svc.op from a handler. Returns 0 with the reply, -1 with a
//  synthesized one; *reply_p is always set.

int
lh_request_call (lh_request_t *self, const char *svc, const char *op,
                 const void *body, size_t size, uint32_t timeout_ms,
                 lh_reply_t **reply_p)
{
    assert (self);
    assert (reply_p);
    *reply_p = NULL;
    lh_client_t *client = lh_request_client (self);
    if (!client) {
        *reply_p = lh_reply_new_error (LH_ST_UNAVAILABLE, "broker_unreachable",
                                       "this worker cannot reach the bus");
        return -1;
    }
    lh_call_opts_t opts;
    lh_request_call_opts (self, timeout_ms, &opts);
    return lh_client_call (client, svc, op, body, size, &opts, reply_p);
}

int
lh_request_call_pack (lh_request_t *self, const char *svc, const char *op,
                      lh_pack_t **pack_p, uint32_t timeout_ms, lh_reply_t **reply_p)
{
    assert (pack_p && *pack_p);
    size_t size;
    const void *data = lh_pack_data (*pack_p, &size);
    int rc = lh_request_call (self, svc, op, data, size, timeout_ms, reply_p);
    lh_pack_destroy (pack_p);
    return rc;
}

int
lh_request_call_all (lh_request_t *self, lh_call_t *calls, size_t count,
                     uint32_t timeout_ms)
{
    assert (self);
    lh_client_t *client = lh_request_client (self);
    if (!client) {
        for (size_t index = 0; index < count; index++)
            calls [index].reply = lh_reply_new_error (LH_ST_UNAVAILABLE, "broker_unreachable",
                                                      "this worker cannot reach the bus");
        return -1;
    }
    lh_call_opts_t opts;
    lh_request_call_opts (self, timeout_ms, &opts);
    return lh_client_call_all (client, calls, count, &opts);
}


//  --------------------------------------------------------------------------
//  Answer for a dependency's unexpected reply: 503 + retry_after_ms when it
//  did not answer or was busy, else 500. Returns -1, always.

int
lh_request_fail_dependency (lh_request_t *self, lh_reply_t *reply,
                            const char *svc, const char *what)
{
    assert (self);
    uint32_t status = reply? lh_reply_status (reply): LH_ST_UNAVAILABLE;
    const char *reason = reply? lh_reply_reason (reply): NULL;
    if (!reason)
        reason = "no reason given";
    lh_warn (self->worker->name, self->trace, "%s for %s: %u %s", svc, what, status, reason);
    if (status == LH_ST_UNAVAILABLE || status == LH_ST_TIMEOUT || status == LH_ST_TOO_MANY) {
        uint64_t retry_after_ms = 1000;
        const msgpack_object *error = lh_obj_get (reply? lh_reply_object (reply): NULL, "error");
        lh_obj_uint (error, "retry_after_ms", &retry_after_ms);
        if (retry_after_ms == 0)
            retry_after_ms = 1000;
        return lh_request_fail_retry (self, LH_ST_UNAVAILABLE, "dependency_unavailable",
                                      retry_after_ms, "%s did not answer %s (%u): %s",
                                      svc, what, status, reason);
    }
    return lh_request_fail (self, LH_ST_INTERNAL, "dependency_failed",
                            "%s refused %s (%u): %s", svc, what, status, reason);
}


//  --------------------------------------------------------------------------
//  Start a child span of this request's span (inactive when the request
//  has none: tracing off)

void
lh_request_span (lh_request_t *self, lh_span_t *span, const char *name,
                 lh_span_kind_t kind)
{
    assert (self);
    assert (span);
    if (!self->span) {
        span->active = false;
        return;
    }
    lh_span_start (span, self->trace, self->span->id, self->worker->service->name, name, kind);
}


//  --------------------------------------------------------------------------
//  This request's span id, or "" when it has no span

const char *
lh_request_span_id (lh_request_t *self)
{
    assert (self);
    return self->span? self->span->id: "";
}


//  --------------------------------------------------------------------------
//  Publish an event from a handler (body may be NULL)

int
lh_request_publish (lh_request_t *self, const char *topic,
                    const void *body, size_t size)
{
    assert (self);
    if (!topic || !*topic || strlen (topic) > LH_TOPIC_MAX)
        return -1;
    lh_header_t header;
    lh_header_init (&header, LH_T_PUB);
    lh_header_set_str (&header, LH_H_TOPIC, topic);
    //  The request's trace, and its span while traced: a subscriber that
    //  acts on the event (workflowd's triggers) continues that trace
    if (strlen (self->trace) == LH_TRACE_SIZE)
        lh_header_set_str (&header, LH_H_TR, self->trace);
    if (self->span && *self->span->id)
        lh_header_set_str (&header, LH_H_PS, self->span->id);
    zframe_t *frame = body && size? zframe_new (body, size): NULL;
    if (s_worker_send (self->worker, &header, &frame, 0)) {
        zframe_destroy (&frame);
        return -1;
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Publish an event whose body is a pack (destroyed); a failure is logged

int
lh_request_event (lh_request_t *self, const char *topic, lh_pack_t **pack_p)
{
    assert (self);
    assert (pack_p && *pack_p);
    size_t size;
    const void *data = lh_pack_data (*pack_p, &size);
    int rc = lh_request_publish (self, topic, data, size);
    if (rc)
        lh_warn (self->worker->name, self->trace, "could not publish %s: %s", topic,
                 zmq_strerror (zmq_errno ()));
    lh_pack_destroy (pack_p);
    return rc;
}


//  --------------------------------------------------------------------------
//  Self test: a test service "rt" on the real broker. Checks the runtime's
//  own answers (400 bad body, 404, 500 no reply), trace ids carried into
//  a nested call, re-registration after the broker is replaced, a start
//  while the broker is not up yet, and a refused start.

#include "lh_broker.h"
#include "echo.h"

#define S_TEST_ENDPOINT "inproc://lh-actor-test"
#define S_TEST_LATE     "inproc://lh-actor-test-late"
#define S_TEST_TRACE    "0123456789abcdef0123456789abcdef"

typedef struct {
    int ticks;                          //  tick calls, all workers
    int second_rc;                      //  what a second reply returned
} s_test_state_t;


//  --------------------------------------------------------------------------
//  Test service state

static void *
s_test_state_new (lh_config_t *config, const lh_link_t *link, const char **error)
{
    s_test_state_t *self = (s_test_state_t *) zmalloc (sizeof (s_test_state_t));
    assert (self);
    return self;
}


//  --------------------------------------------------------------------------
//  State that refuses to start

static void *
s_test_state_refuse (lh_config_t *config, const lh_link_t *link, const char **error)
{
    *error = "refused by the test";
    return NULL;
}


//  --------------------------------------------------------------------------
//  Destroy the test state

static void
s_test_state_destroy (void **state_p)
{
    free (*state_p);
    *state_p = NULL;
}


//  --------------------------------------------------------------------------
//  Count ticks

static void
s_test_tick (void *state)
{
    __atomic_add_fetch (&((s_test_state_t *) state)->ticks, 1, __ATOMIC_RELAXED);
}


//  --------------------------------------------------------------------------
//  trace: {"tr": trace, "worker": name}

static void
s_test_trace (lh_request_t *request, void *state)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 2);
    lh_pack_kv_str (pack, "tr", lh_request_trace (request));
    lh_pack_kv_str (pack, "worker", lh_request_header (request)->name);
    lh_request_reply_pack (request, LH_ST_OK, &pack);
}


//  --------------------------------------------------------------------------
//  nest: calls rt.trace from the handler; {"outer": tr, "inner": its tr}

static void
s_test_nest (lh_request_t *request, void *state)
{
    lh_client_t *client = lh_request_client (request);
    if (!client) {
        lh_request_fail (request, LH_ST_BAD_GATEWAY, NULL, "no client");
        return;
    }
    lh_call_opts_t opts = { .timeout_ms = (uint32_t) lh_request_time_left (request) };
    lh_reply_t *reply;
    lh_client_call (client, "rt", "trace", NULL, 0, &opts, &reply);
    char *inner = lh_obj_strdup (lh_obj_get (lh_reply_object (reply), "tr"));
    if (lh_reply_status (reply) != LH_ST_OK || !inner)
        lh_request_fail (request, LH_ST_BAD_GATEWAY, NULL, "nested call: %u",
                         lh_reply_status (reply));
    else {
        lh_pack_t *pack = lh_pack_new ();
        lh_pack_map (pack, 2);
        lh_pack_kv_str (pack, "outer", lh_request_trace (request));
        lh_pack_kv_str (pack, "inner", inner);
        lh_request_reply_pack (request, LH_ST_OK, &pack);
    }
    free (inner);
    lh_reply_destroy (&reply);
}


//  --------------------------------------------------------------------------
//  silent: never answers (the runtime answers 500)

static void
s_test_silent (lh_request_t *request, void *state)
{
}


//  --------------------------------------------------------------------------
//  twice: answers, then tries again

static void
s_test_twice (lh_request_t *request, void *state)
{
    lh_request_reply_raw (request, LH_ST_OK, NULL, 0);
    int rc = lh_request_reply_raw (request, LH_ST_OK, NULL, 0);
    __atomic_store_n (&((s_test_state_t *) state)->second_rc, rc, __ATOMIC_SEQ_CST);
}


//  --------------------------------------------------------------------------
//  publish: publishes the request body on "evt.rt", then answers

static void
s_test_publish (lh_request_t *request, void *state)
{
    size_t size;
    const void *body = lh_request_body (request, &size);
    int rc = lh_request_publish (request, "evt.rt", body, size);
    lh_request_reply_raw (request, rc == 0? LH_ST_OK: LH_ST_INTERNAL, NULL, 0);
}


//  --------------------------------------------------------------------------
//  slow: waits 1.8 s on a nested call to echo.sleep, longer than the
//  broker's liveness window (1.2 s in the test): the worker must keep its
//  session alive meanwhile. Answers the nested call's status.

static void
s_test_slow (lh_request_t *request, void *state)
{
    lh_client_t *client = lh_request_client (request);
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_uint (pack, "ms", 1800);
    size_t size;
    const void *data = lh_pack_data (pack, &size);
    lh_call_opts_t opts = { .timeout_ms = 4000 };
    lh_reply_t *reply;
    lh_client_call (client, "echo", "sleep", data, size, &opts, &reply);
    lh_pack_destroy (&pack);
    pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_uint (pack, "status", lh_reply_status (reply));
    lh_reply_destroy (&reply);
    lh_request_reply_pack (request, LH_ST_OK, &pack);
}

static const lh_op_t s_test_ops [] = {
    { "slow", s_test_slow },
    { "publish", s_test_publish },
    { "trace",  s_test_trace },
    { "nest",   s_test_nest },
    { "silent", s_test_silent },
    { "twice",  s_test_twice },
    { NULL, NULL }
};

static const lh_service_t s_test_service = {
    .name = "rt",
    .ops = s_test_ops,
    .state_new = s_test_state_new,
    .state_destroy = s_test_state_destroy,
    .tick = s_test_tick
};


//  --------------------------------------------------------------------------
//  Start the broker at an endpoint, hb_ivl 400 ms (3 intervals > the broker's first tick)

static zactor_t *
s_test_broker (const char *endpoint)
{
    zactor_t *broker = zactor_new (lh_broker_actor, "test");
    assert (broker);
    char *status, *detail;
    //  The test's peers are actors, in-process (the broker's default role
    //  for peers without a grant) or over plain tcp; they publish evt.*
    const char *settings [][2] = {
        { "hb_ivl", "400" }, { "plain_role", "actor" }, { "acl/actor/publish", "evt." }
    };
    for (size_t index = 0; index < 3; index++) {
        zstr_sendx (broker, "CONFIGURE", settings [index][0], settings [index][1], NULL);
        zsock_recv (broker, "ss", &status, &detail);
        assert (status && streq (status, "0"));
        zstr_free (&status);
        zstr_free (&detail);
    }
    //  An inproc endpoint is released a moment after its socket closes:
    //  retry the bind, bounded
    int64_t until = zclock_mono () + 5000;
    while (true) {
        zsock_send (broker, "ss", "BIND", endpoint);
        zsock_recv (broker, "ss", &status, &detail);
        bool bound = status && streq (status, "0");
        zstr_free (&status);
        zstr_free (&detail);
        if (bound)
            break;
        assert (zclock_mono () < until);
        zclock_sleep (10);
    }
    return broker;
}


//  --------------------------------------------------------------------------
//  Call rt.op with the test trace and a raw body; returns the reply

static lh_reply_t *
s_test_call (lh_client_t *client, const char *op, const void *body, size_t size)
{
    lh_call_opts_t opts = { .timeout_ms = 3000, .trace = S_TEST_TRACE };
    lh_reply_t *reply;
    lh_client_call (client, "rt", op, body, size, &opts, &reply);
    return reply;
}


//  --------------------------------------------------------------------------
//  Wait (bounded) until the broker lists `count` workers of rt

static void
s_test_wait_workers (lh_client_t *client, size_t count)
{
    int64_t until = zclock_mono () + 15000;
    while (true) {
        lh_call_opts_t opts = { .timeout_ms = 1000 };
        lh_reply_t *reply;
        lh_client_call (client, "broker", "workers", NULL, 0, &opts, &reply);
        const msgpack_object *workers = lh_obj_get (lh_reply_object (reply), "workers");
        size_t found = 0;
        if (workers && workers->type == MSGPACK_OBJECT_ARRAY)
            for (uint32_t index = 0; index < workers->via.array.size; index++) {
                const char *service;
                size_t size;
                if (lh_obj_str (&workers->via.array.ptr [index], "service", &service, &size)
                &&  size == 2 && memcmp (service, "rt", 2) == 0)
                    found++;
            }
        lh_reply_destroy (&reply);
        if (found == count)
            return;
        assert (zclock_mono () < until);
        zclock_sleep (50);
    }
}


//  --------------------------------------------------------------------------
//  Check a nested call carries the trace

static void
s_test_nested_trace (lh_client_t *client)
{
    lh_reply_t *reply = s_test_call (client, "nest", NULL, 0);
    assert (lh_reply_status (reply) == 200);
    char *outer = lh_obj_strdup (lh_obj_get (lh_reply_object (reply), "outer"));
    char *inner = lh_obj_strdup (lh_obj_get (lh_reply_object (reply), "inner"));
    assert (outer && streq (outer, S_TEST_TRACE));
    assert (inner && streq (inner, S_TEST_TRACE));
    free (outer);
    free (inner);
    lh_reply_destroy (&reply);
}


//  --------------------------------------------------------------------------
//  Self test of this class

//  --------------------------------------------------------------------------
//  Test: the reconnect schedule, 1 s doubling to the 32 s cap, each delay
//  within +/-20 %, and the jitter spanning that range at the cap
//  (tests/integration/test_reconnect_backoff.py times the first delays
//  from outside)

static void
s_test_backoff (void)
{
    s_worker_t worker;
    memset (&worker, 0, sizeof (worker));
    worker.backoff = S_BACKOFF_MIN;
    int64_t nominal = S_BACKOFF_MIN;
    for (int attempt = 0; attempt < 10; attempt++) {
        int64_t delay = s_worker_backoff (&worker);
        assert (delay >= nominal - nominal / 5 && delay <= nominal + nominal / 5);
        nominal = nominal * 2 > S_BACKOFF_MAX? S_BACKOFF_MAX: nominal * 2;
    }
    assert (nominal == S_BACKOFF_MAX && worker.backoff == S_BACKOFF_MAX);
    int64_t lowest = S_BACKOFF_MAX, highest = 0;
    for (int attempt = 0; attempt < 2000; attempt++) {
        int64_t delay = s_worker_backoff (&worker);
        assert (delay >= S_BACKOFF_MAX * 4 / 5 && delay <= S_BACKOFF_MAX * 6 / 5);
        lowest = delay < lowest? delay: lowest;
        highest = delay > highest? delay: highest;
    }
    assert (lowest < S_BACKOFF_MAX * 82 / 100 && highest > S_BACKOFF_MAX * 118 / 100);
}


void
lh_actor_test (bool verbose)
{
    printf (" * lh_actor: ");
    if (verbose)
        lh_log_set_level (LH_LOG_DEBUG);
    s_test_backoff ();

    zactor_t *broker = s_test_broker (S_TEST_ENDPOINT);
    lh_link_t link = { .endpoint = S_TEST_ENDPOINT };
    lh_service_runner_t *runner = lh_service_start (&s_test_service, &link, NULL, 2);
    assert (runner);
    s_test_state_t *state = (s_test_state_t *) runner->state;
    lh_client_t *client = lh_client_new (&link, "actor-test");
    assert (client);
    s_test_wait_workers (client, 2);

    //  The request's trace reaches the handler, and its nested calls
    lh_reply_t *reply = s_test_call (client, "trace", NULL, 0);
    assert (lh_reply_status (reply) == 200);
    char *trace = lh_obj_strdup (lh_obj_get (lh_reply_object (reply), "tr"));
    assert (trace && streq (trace, S_TEST_TRACE));
    free (trace);
    lh_reply_destroy (&reply);
    s_test_nested_trace (client);

    //  Without a trace set, the client mints one per call
    lh_call_opts_t opts = { .timeout_ms = 3000 };
    lh_client_call (client, "rt", "trace", NULL, 0, &opts, &reply);
    trace = lh_obj_strdup (lh_obj_get (lh_reply_object (reply), "tr"));
    assert (trace && strlen (trace) == LH_TRACE_SIZE && strneq (trace, S_TEST_TRACE));
    free (trace);
    lh_reply_destroy (&reply);

    //  The runtime's own answers
    reply = s_test_call (client, "silent", NULL, 0);
    assert (lh_reply_status (reply) == 500);
    assert (streq (lh_reply_reason (reply), "handler did not reply"));
    lh_reply_destroy (&reply);

    __atomic_store_n (&state->second_rc, 1, __ATOMIC_SEQ_CST);
    reply = s_test_call (client, "twice", NULL, 0);
    assert (lh_reply_status (reply) == 200);
    lh_reply_destroy (&reply);
    //  The handler's second try runs after the reply reached us
    int64_t until = zclock_mono () + 5000;
    while (__atomic_load_n (&state->second_rc, __ATOMIC_SEQ_CST) == 1) {
        assert (zclock_mono () < until);
        zclock_sleep (1);
    }
    assert (__atomic_load_n (&state->second_rc, __ATOMIC_SEQ_CST) == -1);

    const uint8_t garbage [] = { 0xc1 };        //  never valid msgpack
    reply = s_test_call (client, "trace", garbage, sizeof (garbage));
    assert (lh_reply_status (reply) == 400);
    lh_reply_destroy (&reply);

    const uint8_t truncated [] = { 0x82, 0xa1, 'x' };
    reply = s_test_call (client, "trace", truncated, sizeof (truncated));
    assert (lh_reply_status (reply) == 400);
    lh_reply_destroy (&reply);

    reply = s_test_call (client, "nosuchop", NULL, 0);
    assert (lh_reply_status (reply) == 404);
    lh_reply_destroy (&reply);

    //  A handler waiting on a nested call longer than the liveness window
    //  keeps its worker alive
    lh_service_runner_t *echo = lh_service_start (&lh_echo_service, &link, NULL, 1);
    assert (echo);
    lh_call_opts_t slow_opts = { .timeout_ms = 5000 };
    lh_client_call (client, "rt", "slow", NULL, 0, &slow_opts, &reply);
    assert (lh_reply_status (reply) == 200);
    uint64_t inner_status = 0;
    assert (lh_obj_uint (lh_reply_object (reply), "status", &inner_status));
    assert (inner_status == 200);
    lh_reply_destroy (&reply);
    lh_service_stop (&echo);

    //  Events: from a handler and from a client, to a subscribed client,
    //  also when they arrive during a call
    int rc = lh_client_subscribe (client, "evt.");
    assert (rc == 0);
    reply = s_test_call (client, "trace", NULL, 0);     //  SUB is in place
    lh_reply_destroy (&reply);
    const uint8_t event [] = { 0x2a };
    reply = s_test_call (client, "publish", event, sizeof (event));
    assert (lh_reply_status (reply) == 200);
    lh_reply_destroy (&reply);
    rc = lh_client_recv (client, &reply, 3000);
    assert (rc == 0);
    assert (lh_reply_type (reply) == LH_T_PUB);
    assert (streq (lh_reply_header (reply)->topic, "evt.rt"));
    size_t event_size;
    const uint8_t *event_data = (const uint8_t *) lh_reply_body (reply, &event_size);
    assert (event_size == 1 && event_data [0] == 0x2a);
    lh_reply_destroy (&reply);
    rc = lh_client_publish (client, "evt.client", event, sizeof (event));
    assert (rc == 0);
    rc = lh_client_recv (client, &reply, 3000);
    assert (rc == 0 && lh_reply_type (reply) == LH_T_PUB);
    assert (streq (lh_reply_header (reply)->topic, "evt.client"));
    lh_reply_destroy (&reply);
    rc = lh_client_publish (client, "other.topic", event, sizeof (event));
    assert (rc == 0);
    assert (lh_client_recv (client, &reply, 300) == -1);

    //  A new broker at the same endpoint: workers and clients come back by
    //  themselves
    zactor_destroy (&broker);
    broker = s_test_broker (S_TEST_ENDPOINT);
    s_test_wait_workers (client, 2);
    reply = s_test_call (client, "trace", NULL, 0);
    assert (lh_reply_status (reply) == 200);
    lh_reply_destroy (&reply);
    s_test_nested_trace (client);
    assert (__atomic_load_n (&state->ticks, __ATOMIC_RELAXED) > 0);

    lh_client_destroy (&client);
    lh_service_stop (&runner);
    assert (runner == NULL);

    //  Over tcp, a broker restarted at the same port: the sockets reconnect
    //  by themselves and the broker's BYE "hello_first" brings the worker
    //  and the client back at once
    zactor_destroy (&broker);
    broker = zactor_new (lh_broker_actor, "test");       //  hb_ivl 1000
    char *status, *detail;
    zstr_sendx (broker, "CONFIGURE", "plain_role", "actor", NULL);
    zsock_recv (broker, "ss", &status, &detail);
    zstr_free (&status);
    zstr_free (&detail);
    zsock_send (broker, "ss", "BIND", "tcp://127.0.0.1:*");
    zsock_recv (broker, "ss", &status, &detail);
    assert (status && streq (status, "0"));
    char *endpoint = strdup (detail);
    zstr_free (&status);
    zstr_free (&detail);
    link.endpoint = endpoint;
    runner = lh_service_start (&s_test_service, &link, NULL, 2);
    assert (runner);
    client = lh_client_new (&link, "actor-test");
    assert (client);
    s_test_wait_workers (client, 2);
    s_test_nested_trace (client);
    zactor_destroy (&broker);
    broker = s_test_broker (endpoint);
    int64_t start = zclock_mono ();
    s_test_wait_workers (client, 2);
    //  Faster than the silence window (3 s at hb_ivl 1000) + backoff
    assert (zclock_mono () - start < 2500);
    s_test_nested_trace (client);
    lh_client_destroy (&client);
    lh_service_stop (&runner);
    free (endpoint);
    link.endpoint = S_TEST_ENDPOINT;

    //  A refused start
    lh_service_t refused = s_test_service;
    refused.state_new = s_test_state_refuse;
    assert (lh_service_start (&refused, &link, NULL, 1) == NULL);

    //  Starting before the broker is up: start returns, workers keep trying
    link.endpoint = S_TEST_LATE;
    runner = lh_service_start (&s_test_service, &link, NULL, 1);
    assert (runner);
    zactor_t *late = s_test_broker (S_TEST_LATE);
    client = lh_client_new (&link, "actor-test");
    assert (client);
    s_test_wait_workers (client, 1);
    reply = s_test_call (client, "trace", NULL, 0);
    assert (lh_reply_status (reply) == 200);
    lh_reply_destroy (&reply);
    lh_client_destroy (&client);
    lh_service_stop (&runner);
    zactor_destroy (&late);
    zactor_destroy (&broker);
    printf ("OK\n");
}
