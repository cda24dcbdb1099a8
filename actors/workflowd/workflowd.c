/*  =========================================================================
    workflowd - the workflow runner; see workflowd.h

    Two sides share the state:
    - the workers (the handlers) check definitions, write a new run's
      first record and queue the run for the runner; a caller that waits
      sleeps on the state's condition until the runner says its run ended,
      then reads the run back from the store;
    - the runner thread owns every run in flight and one bus client. It
      sends node calls with lh_client_send, takes replies and events as
      they come (lh_client_try_recv), and commits what changed in one
      LMDB batch per turn of its loop (run records, audit rows, the active
      set) before it tells anyone: a waiting caller, workflow.* events.

    The runner sleeps in poll(2) on an eventfd (new runs) and its client's
    ZMQ_FD, made safe by reading the client dry after the last send of
    each turn (lh_client.h, lh_client_try_recv).

    Shared fields (queue, counters, triggers, a run's done/refs) are
    guarded by the state's lock; a run's nodes are the runner's alone.
    =========================================================================
*/

#include "workflowd.h"
#include "lh_wfdef.h"
#include "lh_wfstore.h"
#include "lh_json.h"
#include "lh_log.h"
#include "lh_trace.h"
#include <sodium.h>
#include <pthread.h>
#include <poll.h>
#include <sys/eventfd.h>

#define S_NAME              "workflowd"
#define S_WAKE_MS           250         //  the runner turns at least this often
#define S_REPLY_MARGIN_MS   250         //  a waiting workflow_run answers this long before its deadline
#define S_LIST_MAX          1000        //  largest run_list limit
#define S_BACKOFF_MAX_MS    30000       //  longest wait before a retry
#define S_CONNECT_RETRY_MS  500         //  the runner's broker unreachable: try again after

typedef enum { S_PENDING = 0, S_RUNNING, S_SUCCEEDED, S_FAILED, S_SKIPPED } s_status_t;
static const char *s_status_names [] = { "pending", "running", "succeeded", "failed", "skipped" };

//  One node of a run (the runner's)
typedef struct {
    s_status_t status;                  //  where it is
    int64_t started_ms;                 //  wall ms of its first attempt, 0 if none
    int64_t ended_ms;                   //  wall ms it ended, 0 if not yet
    uint32_t attempts;                  //  calls sent
    uint64_t request;                   //  bus request in flight, 0 if none
    int64_t retry_at;                   //  monotonic ms of the next attempt, 0 if none
    char *error;                        //  why it failed or was skipped
    char sha256 [65];                   //  of its output, hex ("" if none)
    zframe_t *output;                   //  its reply body (nil if none)
    msgpack_zone zone;                  //  holds object
    msgpack_object object;              //  output, decoded
    bool decoded;                       //  object is valid
    lh_span_t *span;                    //  its call's CLIENT span while traced
                                        //  and in flight, else NULL
} s_node_t;

//  One run
typedef struct {
    char id [LH_WF_RUN_ID_SIZE + 1];    //  its ULID
    lh_wfdef_t *def;                    //  the definition run
    const char *trigger;                //  "call" or "event"
    char trace [LH_TRACE_SIZE + 1];     //  trace id every call carries
    lh_span_t span;                     //  the run's span (active while traced)
    zframe_t *inputs;                   //  the inputs, a msgpack map
    msgpack_zone zone;                  //  holds inputs_object
    msgpack_object inputs_object;       //  inputs, decoded
    s_node_t *nodes;                    //  one per node of def
    s_status_t status;                  //  running, succeeded or failed
    int64_t started_ms;                 //  wall ms
    int64_t ended_ms;                   //  wall ms, 0 while running
    uint32_t audit_seq;                 //  audit rows written so far
    zlist_t *audit;                     //  rows (zframe_t) not yet committed
    bool dirty;                         //  changed since the last commit
    bool done;                          //  ended and committed (state lock)
    int refs;                           //  runner + a waiting worker (state lock)
} s_run_t;

typedef struct {
    lh_wfstore_t *store;                //  definitions, runs, audit rows
    lh_link_t link;                     //  how the runner reaches the broker
    char *idempotent;                   //  ops that may be retried
    lh_wfcheck_t check;                 //  definition limits (services per call)
    uint32_t node_timeout_ms;           //  a node's default timeout
    uint32_t retry_backoff_ms;          //  first wait before a retry
    size_t definition_max;              //  largest definition, bytes
    size_t output_max;                  //  largest output kept in a run record
    size_t runs_max;                    //  runs kept
    size_t active_max;                  //  runs at once
    pthread_mutex_t lock;               //  what follows
    pthread_cond_t ended;               //  a run ended (waiting workers)
    zlist_t *queue;                     //  runs for the runner
    zhashx_t *triggers;                 //  workflow name -> its on prefix
    bool triggers_changed;              //  the runner should subscribe again
    size_t active;                      //  runs queued or running
    uint64_t started;                   //  runs started
    uint64_t succeeded;                 //  runs succeeded
    uint64_t failed;                    //  runs failed
    uint64_t triggered;                 //  runs started by an event
    uint64_t trigger_dropped;           //  events that found active_max runs
    uint64_t nodes_run;                 //  node calls sent (attempts)
    uint64_t retried;                   //  of which retries
    uint64_t store_errors;              //  commits that failed
    uint64_t recovered;                 //  runs found running at start, failed
    size_t subscribed;                  //  on prefixes the runner has subscribed to
    pthread_t runner;                   //  the runner thread
    bool runner_started;                //  it runs
    volatile bool stop;                 //  it should end
    int wake;                           //  eventfd: wakes the runner
} s_state_t;

//  The runner thread's own context
typedef struct {
    s_state_t *state;                   //  shared state
    lh_client_t *client;                //  its bus client, or NULL
    zlist_t *runs;                      //  runs in flight
    zhashx_t *requests;                 //  "request id" -> s_call_t
    zhashx_t *subscribed;               //  prefixes subscribed on this client
} s_runner_t;

//  A call in flight: which node of which run
typedef struct {
    s_run_t *run;                       //  the run
    size_t index;                       //  the node
} s_call_t;


//  --------------------------------------------------------------------------
//  Free a call entry

static void
s_call_destroy (void **item_p)
{
    free (*item_p);
    *item_p = NULL;
}


//  --------------------------------------------------------------------------
//  Wall clock, ms since the epoch

static int64_t
s_now_ms (void)
{
    return zclock_time ();
}


//  --------------------------------------------------------------------------
//  Wake the runner

static void
s_wake (s_state_t *self)
{
    uint64_t one = 1;
    if (write (self->wake, &one, sizeof (one)) < 0 && errno != EAGAIN)
        lh_warn (S_NAME, NULL, "cannot wake the runner: %s", strerror (errno));
}


//  --------------------------------------------------------------------------
//  Create a run (def and inputs taken). While tracing is on the run gets
//  a span of its own, a child of parent (the workflow_run request's span,
//  or the span that published the event that started it; NULL or "": a
//  root), ended when the run ends.

static s_run_t *
s_run_new (lh_wfdef_t **def_p, zframe_t **inputs_p, const char *trigger, const char *trace,
           const char *parent)
{
    s_run_t *run = (s_run_t *) zmalloc (sizeof (s_run_t));
    assert (run);
    lh_wfstore_ulid (run->id);
    run->def = *def_p;
    *def_p = NULL;
    run->inputs = *inputs_p;
    *inputs_p = NULL;
    run->trigger = trigger;
    if (trace && strlen (trace) == LH_TRACE_SIZE)
        snprintf (run->trace, sizeof (run->trace), "%s", trace);
    else
        lh_trace_mint (run->trace);
    char name [LH_SPAN_NAME_MAX + 1];
    snprintf (name, sizeof (name), "workflow %s", lh_wfdef_name (run->def));
    lh_span_start (&run->span, run->trace, parent, S_NAME, name, LH_SPAN_INTERNAL);
    lh_span_attr_str (&run->span, "lh.run_id", run->id);
    lh_span_attr_str (&run->span, "lh.trigger", trigger);
    msgpack_zone_init (&run->zone, 1024);
    int rc = lh_msgpack_unpack (zframe_data (run->inputs), zframe_size (run->inputs),
                                &lh_limits_default, &run->zone, &run->inputs_object);
    assert (rc == 0);                   //  we packed them
    run->nodes = (s_node_t *) calloc (lh_wfdef_count (run->def), sizeof (s_node_t));
    assert (run->nodes);
    run->status = S_RUNNING;
    run->started_ms = s_now_ms ();
    run->audit = zlist_new ();
    run->dirty = true;
    return run;
}


//  --------------------------------------------------------------------------
//  Destroy a run

static void
s_run_destroy (s_run_t **run_p)
{
    s_run_t *run = *run_p;
    if (run) {
        for (size_t index = 0; index < lh_wfdef_count (run->def); index++) {
            s_node_t *node = &run->nodes [index];
            free (node->span);
            free (node->error);
            zframe_destroy (&node->output);
            if (node->decoded)
                msgpack_zone_destroy (&node->zone);
        }
        free (run->nodes);
        while (zlist_size (run->audit)) {
            zframe_t *row = (zframe_t *) zlist_pop (run->audit);
            zframe_destroy (&row);
        }
        zlist_destroy (&run->audit);
        msgpack_zone_destroy (&run->zone);
        zframe_destroy (&run->inputs);
        lh_wfdef_destroy (&run->def);
        free (run);
        *run_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Drop one reference to a run (the last one destroys it)

static void
s_run_release (s_state_t *self, s_run_t *run)
{
    pthread_mutex_lock (&self->lock);
    bool last = --run->refs == 0;
    pthread_mutex_unlock (&self->lock);
    if (last)
        s_run_destroy (&run);
}


//  --------------------------------------------------------------------------
//  Pack a run's record (docs/workflows.md "Runs")

static void
s_run_pack (s_state_t *self, s_run_t *run, lh_pack_t *pack)
{
    lh_pack_open_map (pack);
    lh_pack_kv_str (pack, "run_id", run->id);
    lh_pack_kv_str (pack, "name", lh_wfdef_name (run->def));
    lh_pack_kv_str (pack, "status", s_status_names [run->status]);
    lh_pack_kv_str (pack, "trigger", run->trigger);
    lh_pack_kv_str (pack, "trace", run->trace);
    lh_pack_kv_int (pack, "started_ms", run->started_ms);
    if (run->ended_ms)
        lh_pack_kv_int (pack, "ended_ms", run->ended_ms);
    lh_pack_str (pack, "inputs");
    lh_pack_raw (pack, zframe_data (run->inputs), zframe_size (run->inputs));
    lh_pack_str (pack, "nodes");
    lh_pack_open_map (pack);
    for (size_t index = 0; index < lh_wfdef_count (run->def); index++) {
        s_node_t *node = &run->nodes [index];
        lh_pack_str (pack, lh_wfdef_node_id (run->def, index));
        lh_pack_open_map (pack);
        lh_pack_kv_str (pack, "status", s_status_names [node->status]);
        char call [2 * LH_NAME_MAX + 2];
        snprintf (call, sizeof (call), "%s.%s", lh_wfdef_node_svc (run->def, index),
                  lh_wfdef_node_op (run->def, index));
        lh_pack_kv_str (pack, "call", call);
        if (node->started_ms)
            lh_pack_kv_int (pack, "started_ms", node->started_ms);
        if (node->ended_ms)
            lh_pack_kv_int (pack, "ended_ms", node->ended_ms);
        lh_pack_kv_uint (pack, "attempts", node->attempts);
        if (node->error)
            lh_pack_kv_str (pack, "error", node->error);
        if (node->output) {
            lh_pack_kv_str (pack, "output_sha256", node->sha256);
            if (zframe_size (node->output) <= self->output_max) {
                lh_pack_str (pack, "output");
                lh_pack_raw (pack, zframe_data (node->output), zframe_size (node->output));
            }
            else {
                lh_pack_kv_bool (pack, "output_omitted", true);
                lh_pack_kv_uint (pack, "output_bytes", zframe_size (node->output));
            }
        }
        lh_pack_close (pack);
    }
    lh_pack_close (pack);
    lh_pack_close (pack);
}


//  --------------------------------------------------------------------------
//  Add a run's record (and its uncommitted audit rows, and its place in
//  the active set) to a batch

static void
s_run_save (s_state_t *self, lh_wfbatch_t *batch, s_run_t *run)
{
    lh_pack_t *pack = lh_pack_new ();
    s_run_pack (self, run, pack);
    size_t size;
    const void *data = lh_pack_data (pack, &size);
    lh_wfbatch_put (batch, LH_WF_RUNS, run->id, LH_WF_RUN_ID_SIZE, data, size);
    lh_pack_destroy (&pack);
    for (zframe_t *row = (zframe_t *) zlist_first (run->audit); row;
         row = (zframe_t *) zlist_next (run->audit)) {
        uint8_t key [LH_WF_RUN_ID_SIZE + 4];
        memcpy (key, run->id, LH_WF_RUN_ID_SIZE);
        //  The seq sits in the frame's first 4 bytes (s_audit_add)
        memcpy (key + LH_WF_RUN_ID_SIZE, zframe_data (row), 4);
        lh_wfbatch_put (batch, LH_WF_AUDIT, key, sizeof (key), zframe_data (row) + 4,
                        zframe_size (row) - 4);
    }
    if (run->status == S_RUNNING)
        lh_wfbatch_put (batch, LH_WF_ACTIVE, run->id, LH_WF_RUN_ID_SIZE, "", 0);
    else
        lh_wfbatch_delete (batch, LH_WF_ACTIVE, run->id, LH_WF_RUN_ID_SIZE, false);
}


//  --------------------------------------------------------------------------
//  Queue the audit row of a node that just ended: seq | msgpack row

static void
s_audit_add (s_run_t *run, size_t index)
{
    s_node_t *node = &run->nodes [index];
    uint32_t seq = ++run->audit_seq;
    lh_pack_t *pack = lh_pack_new ();
    uint8_t prefix [4] = { (uint8_t) (seq >> 24), (uint8_t) (seq >> 16),
                           (uint8_t) (seq >> 8), (uint8_t) seq };
    lh_pack_raw (pack, prefix, 4);
    lh_pack_open_map (pack);
    lh_pack_kv_uint (pack, "seq", seq);
    lh_pack_kv_str (pack, "run_id", run->id);
    lh_pack_kv_str (pack, "node", lh_wfdef_node_id (run->def, index));
    char call [2 * LH_NAME_MAX + 2];
    snprintf (call, sizeof (call), "%s.%s", lh_wfdef_node_svc (run->def, index),
              lh_wfdef_node_op (run->def, index));
    lh_pack_kv_str (pack, "call", call);
    lh_pack_kv_str (pack, "status", s_status_names [node->status]);
    if (node->started_ms)
        lh_pack_kv_int (pack, "started_ms", node->started_ms);
    lh_pack_kv_int (pack, "ended_ms", node->ended_ms);
    lh_pack_kv_uint (pack, "attempts", node->attempts);
    if (node->error)
        lh_pack_kv_str (pack, "error", node->error);
    if (node->output)
        lh_pack_kv_str (pack, "output_sha256", node->sha256);
    lh_pack_close (pack);
    zlist_append (run->audit, lh_pack_frame (&pack));
}


//  --------------------------------------------------------------------------
//  Publish a workflow event from the runner (best effort: at most once,
//  like every event)

static void
s_publish (s_runner_t *runner, const char *topic, lh_pack_t **pack_p)
{
    size_t size;
    const void *data = lh_pack_data (*pack_p, &size);
    if (runner->client && lh_client_publish (runner->client, topic, data, size))
        lh_debug (S_NAME, NULL, "could not publish %s", topic);
    lh_pack_destroy (pack_p);
}


//  --------------------------------------------------------------------------
//  Publish workflow.run for a run that starts or ends

static void
s_publish_run (s_runner_t *runner, s_run_t *run)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_kv_str (pack, "run_id", run->id);
    lh_pack_kv_str (pack, "name", lh_wfdef_name (run->def));
    lh_pack_kv_str (pack, "status", s_status_names [run->status]);
    lh_pack_kv_str (pack, "trigger", run->trigger);
    lh_pack_close (pack);
    s_publish (runner, "workflow.run", &pack);
}

static void s_node_start (s_runner_t *runner, s_run_t *run, size_t index);


//  --------------------------------------------------------------------------
//  End a node's call span, if one is in flight, with status

static void
s_node_span_end (s_node_t *node, uint32_t status)
{
    if (node->span) {
        lh_span_end (node->span, status);
        free (node->span);
        node->span = NULL;
    }
}


//  --------------------------------------------------------------------------
//  A node ended (succeeded, failed, or skipped): its audit row and event;
//  then start what can start now, or skip what never can; end the run
//  when nothing is left. error is copied (NULL: none); output is taken.

static void
s_node_end (s_runner_t *runner, s_run_t *run, size_t index, s_status_t status,
            const char *error, zframe_t **output_p)
{
    s_node_t *node = &run->nodes [index];
    s_node_span_end (node, status == S_SUCCEEDED? LH_ST_OK: LH_ST_INTERNAL);
    node->status = status;
    node->ended_ms = s_now_ms ();
    node->retry_at = 0;
    free (node->error);
    node->error = error? strdup (error): NULL;
    if (output_p && *output_p) {
        //  Kept as canonical msgpack (each value in its shortest form), so
        //  its digest depends on the value, not on how a service packed it
        zframe_t *output = *output_p;
        *output_p = NULL;
        msgpack_zone zone;
        msgpack_zone_init (&zone, 1024);
        msgpack_object object;
        if (lh_msgpack_unpack (zframe_data (output), zframe_size (output), &lh_limits_default,
                               &zone, &object) == 0) {
            lh_pack_t *pack = lh_pack_new ();
            lh_pack_object (pack, &object);
            zframe_destroy (&output);
            output = lh_pack_frame (&pack);
        }
        msgpack_zone_destroy (&zone);
        node->output = output;
        //  The decoded output points into the frame it was read from
        msgpack_zone_init (&node->zone, 1024);
        node->decoded = true;
        if (lh_msgpack_unpack (zframe_data (node->output), zframe_size (node->output),
                               &lh_limits_default, &node->zone, &node->object))
            node->object.type = MSGPACK_OBJECT_NIL;
        uint8_t digest [crypto_hash_sha256_BYTES];
        crypto_hash_sha256 (digest, zframe_data (node->output), zframe_size (node->output));
        sodium_bin2hex (node->sha256, sizeof (node->sha256), digest, sizeof (digest));
    }
    s_audit_add (run, index);
    run->dirty = true;
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_kv_str (pack, "run_id", run->id);
    lh_pack_kv_str (pack, "name", lh_wfdef_name (run->def));
    lh_pack_kv_str (pack, "node", lh_wfdef_node_id (run->def, index));
    lh_pack_kv_str (pack, "status", s_status_names [status]);
    if (node->started_ms)
        lh_pack_kv_int (pack, "started_ms", node->started_ms);
    lh_pack_kv_int (pack, "ended_ms", node->ended_ms);
    if (node->error)
        lh_pack_kv_str (pack, "error", node->error);
    lh_pack_close (pack);
    s_publish (runner, "workflow.node", &pack);
    lh_debug (S_NAME, run->trace, "run %s node %s %s%s%s", run->id, lh_wfdef_node_id (run->def, index),
              s_status_names [status], error? ": ": "", error? error: "");

    //  What this changes for the others, until nothing more does
    size_t count = lh_wfdef_count (run->def);
    bool changed = true;
    while (changed) {
        changed = false;
        for (size_t other = 0; other < count; other++) {
            if (run->nodes [other].status != S_PENDING)
                continue;
            size_t need_count;
            const size_t *needs = lh_wfdef_node_needs (run->def, other, &need_count);
            size_t blocked = SIZE_MAX, waiting = 0;
            for (size_t need = 0; need < need_count; need++) {
                s_status_t state = run->nodes [needs [need]].status;
                if (state == S_FAILED || state == S_SKIPPED)
                    blocked = needs [need];
                else
                if (state != S_SUCCEEDED)
                    waiting++;
            }
            if (blocked != SIZE_MAX) {
                char reason [200];
                snprintf (reason, sizeof (reason), "not run: it needs '%s', which %s",
                          lh_wfdef_node_id (run->def, blocked),
                          run->nodes [blocked].status == S_FAILED? "failed": "was skipped");
                s_node_end (runner, run, other, S_SKIPPED, reason, NULL);
                changed = true;
            }
            else
            if (waiting == 0 && status == S_SUCCEEDED) {
                s_node_start (runner, run, other);
                changed = true;
            }
        }
    }
    //  The run ends when no node is pending or running
    if (run->status == S_RUNNING) {
        bool all_done = true, all_succeeded = true;
        for (size_t other = 0; other < count; other++) {
            s_status_t state = run->nodes [other].status;
            all_done &= state != S_PENDING && state != S_RUNNING;
            all_succeeded &= state == S_SUCCEEDED;
        }
        if (all_done) {
            run->status = all_succeeded? S_SUCCEEDED: S_FAILED;
            run->ended_ms = s_now_ms ();
            lh_span_attr_str (&run->span, "lh.run_status", s_status_names [run->status]);
            lh_span_end (&run->span, all_succeeded? LH_ST_OK: LH_ST_INTERNAL);
        }
    }
}


//  --------------------------------------------------------------------------
//  Send a node's call (first attempt or a retry). A node whose input
//  cannot be built, or whose call cannot be sent, fails at once.

static void
s_node_start (s_runner_t *runner, s_run_t *run, size_t index)
{
    s_state_t *self = runner->state;
    s_node_t *node = &run->nodes [index];
    if (node->status == S_PENDING) {
        node->status = S_RUNNING;
        node->started_ms = s_now_ms ();
        run->dirty = true;
    }
    size_t count = lh_wfdef_count (run->def);
    const msgpack_object **outputs = (const msgpack_object **) calloc (count, sizeof (msgpack_object *));
    assert (outputs);
    for (size_t other = 0; other < count; other++)
        if (run->nodes [other].decoded)
            outputs [other] = &run->nodes [other].object;
    lh_pack_t *pack = lh_pack_new ();
    lh_wferror_t error;
    int rc = lh_wfdef_node_input (run->def, index, &run->inputs_object,
                                  (const msgpack_object *const *) outputs, pack, &error);
    free (outputs);
    if (rc) {
        lh_pack_destroy (&pack);
        char *reason = zsys_sprintf ("its input cannot be built: %s", error.reason);
        s_node_end (runner, run, index, S_FAILED, reason, NULL);
        zstr_free (&reason);
        return;
    }
    const char *svc = lh_wfdef_node_svc (run->def, index), *op = lh_wfdef_node_op (run->def, index);
    uint32_t timeout = lh_wfdef_node_timeout (run->def, index);
    char idem [LH_IDEM_MAX + 1];
    snprintf (idem, sizeof (idem), "wf-%s-%s", run->id, lh_wfdef_node_id (run->def, index));
    //  Traced: the call's CLIENT span, a child of the run's; its id is the
    //  callee's parent ("ps")
    if (run->span.active && !node->span) {
        node->span = (lh_span_t *) malloc (sizeof (lh_span_t));
        assert (node->span);
        char name [LH_SPAN_NAME_MAX + 1];
        snprintf (name, sizeof (name), "%s.%s", svc, op);
        lh_span_start (node->span, run->trace, run->span.id, S_NAME, name, LH_SPAN_CLIENT);
        lh_span_attr_str (node->span, "rpc.service", svc);
        lh_span_attr_str (node->span, "rpc.method", op);
        lh_span_attr_str (node->span, "lh.node", lh_wfdef_node_id (run->def, index));
        lh_span_attr_int (node->span, "lh.attempt", node->attempts + 1);
    }
    lh_call_opts_t opts = {
        .timeout_ms = timeout? timeout: self->node_timeout_ms,
        .idem = lh_wfdef_node_retries (run->def, index)? idem: NULL,
        .queue = true,
        .trace = run->trace,
        .span = node->span? node->span->id: NULL
    };
    size_t size;
    const void *data = lh_pack_data (pack, &size);
    uint64_t id = runner->client? lh_client_send (runner->client, svc, op, data, size, &opts): 0;
    lh_pack_destroy (&pack);
    node->attempts++;
    pthread_mutex_lock (&self->lock);
    self->nodes_run++;
    if (node->attempts > 1)
        self->retried++;
    pthread_mutex_unlock (&self->lock);
    if (!id) {
        char *reason = zsys_sprintf ("%s.%s could not be sent (no bus, or its input is larger "
                                     "than the broker's max_msg)", svc, op);
        s_node_end (runner, run, index, S_FAILED, reason, NULL);
        zstr_free (&reason);
        return;
    }
    node->request = id;
    s_call_t *call = (s_call_t *) zmalloc (sizeof (s_call_t));
    assert (call);
    call->run = run;
    call->index = index;
    char key [24];
    snprintf (key, sizeof (key), "%" PRIu64, id);
    zhashx_update (runner->requests, key, call);
}


//  --------------------------------------------------------------------------
//  Start the nodes of a new run that need nothing

static void
s_run_begin (s_runner_t *runner, s_run_t *run)
{
    zlist_append (runner->runs, run);
    s_publish_run (runner, run);
    for (size_t index = 0; index < lh_wfdef_count (run->def); index++) {
        size_t need_count;
        lh_wfdef_node_needs (run->def, index, &need_count);
        if (need_count == 0 && run->nodes [index].status == S_PENDING)
            s_node_start (runner, run, index);
    }
}


//  --------------------------------------------------------------------------
//  A reply for a node's call

static void
s_on_reply (s_runner_t *runner, lh_reply_t *reply)
{
    s_state_t *self = runner->state;
    char key [24];
    snprintf (key, sizeof (key), "%" PRIu64, lh_reply_cid (reply));
    s_call_t *call = (s_call_t *) zhashx_lookup (runner->requests, key);
    if (!call || lh_reply_type (reply) != LH_T_REP)
        return;                         //  a PART, or a late reply
    s_run_t *run = call->run;
    size_t index = call->index;
    zhashx_delete (runner->requests, key);
    s_node_t *node = &run->nodes [index];
    node->request = 0;
    uint32_t status = lh_reply_status (reply);
    s_node_span_end (node, status);     //  a retry makes a new one
    const char *svc = lh_wfdef_node_svc (run->def, index), *op = lh_wfdef_node_op (run->def, index);
    if (status >= 200 && status < 300) {
        size_t size;
        const void *body = lh_reply_body (reply, &size);
        zframe_t *output = body && size? zframe_new (body, size): zframe_new ("\xc0", 1);
        s_node_end (runner, run, index, S_SUCCEEDED, NULL, &output);
        return;
    }
    const char *reason = lh_reply_reason (reply);
    char *error = zsys_sprintf ("%s.%s answered %u: %s", svc, op, status,
                                reason? reason: lh_status_text (status));
    uint32_t retries = lh_wfdef_node_retries (run->def, index);
    if (node->attempts <= retries && (status == LH_ST_TOO_MANY || status >= 500)) {
        uint64_t backoff = (uint64_t) self->retry_backoff_ms << (node->attempts - 1 < 16? node->attempts - 1: 16);
        if (backoff > S_BACKOFF_MAX_MS)
            backoff = S_BACKOFF_MAX_MS;
        node->retry_at = zclock_mono () + (int64_t) backoff;
        free (node->error);
        node->error = error;
        lh_info (S_NAME, run->trace, "run %s node %s: %s; retry %u of %u in %" PRIu64 " ms",
                 run->id, lh_wfdef_node_id (run->def, index), error, node->attempts, retries, backoff);
        run->dirty = true;
        return;
    }
    s_node_end (runner, run, index, S_FAILED, error, NULL);
    zstr_free (&error);
}


//  --------------------------------------------------------------------------
//  Load a saved definition; NULL if it is gone or does not load

static lh_wfdef_t *
s_def_stored (s_state_t *self, const char *name, lh_wferror_t *error)
{
    lh_pack_t *pack = lh_pack_new ();
    int rc = lh_wfstore_get (self->store, LH_WF_DEFS, name, strlen (name), pack);
    lh_wfdef_t *def = NULL;
    snprintf (error->kind, sizeof (error->kind), "%s", rc == 1? "no_such_workflow": "storage_failed");
    snprintf (error->reason, sizeof (error->reason), rc == 1? "no workflow named '%s' is saved":
              "the workflow '%s' cannot be read from the store", name);
    if (rc == 0) {
        size_t size;
        const void *data = lh_pack_data (pack, &size);
        msgpack_zone zone;
        msgpack_zone_init (&zone, 4096);
        msgpack_object record;
        if (lh_msgpack_unpack (data, size, &lh_limits_default, &zone, &record) == 0) {
            lh_wfcheck_t check = self->check;
            check.services = NULL;      //  checked when it was saved
            const msgpack_object *definition = lh_obj_get (&record, "definition");
            if (definition)
                def = lh_wfdef_load (definition, &check, error);
        }
        msgpack_zone_destroy (&zone);
    }
    lh_pack_destroy (&pack);
    return def;
}


//  --------------------------------------------------------------------------
//  An event: start a run of every saved workflow whose on prefix it has,
//  with the event as inputs.event

static void
s_on_event (s_runner_t *runner, lh_reply_t *event)
{
    s_state_t *self = runner->state;
    const lh_header_t *header = lh_reply_header (event);
    zlist_t *names = zlist_new ();
    zlist_autofree (names);
    pthread_mutex_lock (&self->lock);
    for (const char *on = (const char *) zhashx_first (self->triggers); on;
         on = (const char *) zhashx_next (self->triggers))
        if (strncmp (header->topic, on, strlen (on)) == 0)
            zlist_append (names, (void *) zhashx_cursor (self->triggers));
    pthread_mutex_unlock (&self->lock);
    for (const char *name = (const char *) zlist_first (names); name;
         name = (const char *) zlist_next (names)) {
        pthread_mutex_lock (&self->lock);
        bool room = self->active < self->active_max;
        if (room) {
            self->active++;
            self->started++;
            self->triggered++;
        }
        else
            self->trigger_dropped++;
        pthread_mutex_unlock (&self->lock);
        if (!room) {
            lh_warn (S_NAME, NULL, "%s: workflow %s not started: workflowd/active_max runs "
                     "are running", header->topic, name);
            continue;
        }
        lh_wferror_t error;
        lh_wfdef_t *def = s_def_stored (self, name, &error);
        //  inputs.event: the event as observerd keeps it
        lh_pack_t *given = lh_pack_new ();
        lh_pack_open_map (given);
        lh_pack_str (given, "event");
        lh_pack_open_map (given);
        lh_pack_kv_str (given, "topic", header->topic);
        lh_pack_kv_str (given, "source", header->src);
        lh_pack_kv_uint (given, "bseq", header->bseq);
        lh_pack_kv_uint (given, "time_us", header->brx);
        lh_pack_str (given, "body");
        const msgpack_object *body = lh_reply_object (event);
        if (body)
            lh_pack_object (given, body);
        else
            lh_pack_nil (given);
        lh_pack_close (given);
        lh_pack_close (given);
        size_t size;
        const void *data = lh_pack_data (given, &size);
        msgpack_zone zone;
        msgpack_zone_init (&zone, 1024);
        msgpack_object object;
        lh_pack_t *inputs = lh_pack_new ();
        bool ok = def && lh_msgpack_unpack (data, size, &lh_limits_default, &zone, &object) == 0
               && lh_wfdef_inputs (def, &object, inputs, &error) == 0;
        msgpack_zone_destroy (&zone);
        lh_pack_destroy (&given);
        if (!ok) {
            lh_warn (S_NAME, NULL, "%s: workflow %s not started: %s", header->topic, name, error.reason);
            lh_pack_destroy (&inputs);
            lh_wfdef_destroy (&def);
            pthread_mutex_lock (&self->lock);
            self->active--;
            self->started--;
            self->triggered--;
            pthread_mutex_unlock (&self->lock);
            continue;
        }
        zframe_t *frame = lh_pack_frame (&inputs);
        //  In the publishing request's trace, a child of its span (when
        //  the event carries them): one trace from the request to the run
        s_run_t *run = s_run_new (&def, &frame, "event",
                                  (header->has & LH_H_TR)? header->tr: NULL,
                                  (header->has & LH_H_PS)? header->ps: NULL);
        run->refs = 1;
        lh_info (S_NAME, run->trace, "%s (bseq %" PRIu64 ") started run %s of %s", header->topic,
                 header->bseq, run->id, name);
        s_run_begin (runner, run);
    }
    zlist_destroy (&names);
}


//  --------------------------------------------------------------------------
//  Remove the oldest ended runs past runs_max (into a batch)

typedef struct {
    lh_wfbatch_t *batch;                //  where the deletes go
    size_t excess;                      //  runs still to remove
} s_prune_t;

static int
s_prune_one (void *arg, const void *key, size_t key_size, const void *value, size_t size)
{
    s_prune_t *prune = (s_prune_t *) arg;
    if (prune->excess == 0)
        return 1;
    msgpack_zone zone;
    msgpack_zone_init (&zone, 1024);
    msgpack_object record;
    const char *status = NULL;
    size_t status_size = 0;
    if (lh_msgpack_unpack (value, size, &lh_limits_default, &zone, &record) == 0)
        lh_obj_str (&record, "status", &status, &status_size);
    msgpack_zone_destroy (&zone);
    if (status && status_size == 7 && memcmp (status, "running", 7) == 0)
        return 0;
    lh_wfbatch_delete (prune->batch, LH_WF_RUNS, key, key_size, false);
    lh_wfbatch_delete (prune->batch, LH_WF_AUDIT, key, key_size, true);
    prune->excess--;
    return 0;
}


//  --------------------------------------------------------------------------
//  Commit every run that changed, in one batch; then tell whoever waits
//  for the runs that ended, and let them go

static void
s_commit (s_runner_t *runner)
{
    s_state_t *self = runner->state;
    lh_wfbatch_t *batch = lh_wfstore_begin (self->store);
    if (!batch) {
        self->store_errors++;
        return;
    }
    for (s_run_t *run = (s_run_t *) zlist_first (runner->runs); run;
         run = (s_run_t *) zlist_next (runner->runs))
        if (run->dirty)
            s_run_save (self, batch, run);
    size_t stored = lh_wfstore_count (self->store, LH_WF_RUNS);
    if (stored > self->runs_max) {
        s_prune_t prune = { batch, stored - self->runs_max };
        lh_wfstore_scan (self->store, LH_WF_RUNS, NULL, 0, s_prune_one, &prune);
    }
    const char *reason = NULL;
    if (lh_wfstore_commit (&batch, &reason)) {
        //  Everything stays in memory and is written again next turn
        pthread_mutex_lock (&self->lock);
        self->store_errors++;
        pthread_mutex_unlock (&self->lock);
        lh_warn (S_NAME, NULL, "runs not saved: %s", reason);
        return;
    }
    zlist_t *ended = zlist_new ();
    for (s_run_t *run = (s_run_t *) zlist_first (runner->runs); run;
         run = (s_run_t *) zlist_next (runner->runs)) {
        if (run->dirty) {
            run->dirty = false;
            while (zlist_size (run->audit)) {
                zframe_t *row = (zframe_t *) zlist_pop (run->audit);
                zframe_destroy (&row);
            }
        }
        if (run->status != S_RUNNING)
            zlist_append (ended, run);
    }
    for (s_run_t *run = (s_run_t *) zlist_first (ended); run; run = (s_run_t *) zlist_next (ended)) {
        lh_info (S_NAME, run->trace, "run %s of %s %s in %" PRId64 " ms", run->id,
                 lh_wfdef_name (run->def), s_status_names [run->status],
                 run->ended_ms - run->started_ms);
        s_publish_run (runner, run);
        zlist_remove (runner->runs, run);
        pthread_mutex_lock (&self->lock);
        run->done = true;
        self->active--;
        if (run->status == S_SUCCEEDED)
            self->succeeded++;
        else
            self->failed++;
        pthread_cond_broadcast (&self->ended);
        pthread_mutex_unlock (&self->lock);
        s_run_release (self, run);
    }
    zlist_destroy (&ended);
}


//  --------------------------------------------------------------------------
//  Is any run waiting for a commit?

static bool
s_dirty (s_runner_t *runner)
{
    for (s_run_t *run = (s_run_t *) zlist_first (runner->runs); run;
         run = (s_run_t *) zlist_next (runner->runs))
        if (run->dirty || run->status != S_RUNNING)
            return true;
    return false;
}


//  --------------------------------------------------------------------------
//  Send the retries that are due; returns the monotonic ms of the next
//  one (INT64_MAX: none)

static int64_t
s_retries (s_runner_t *runner)
{
    int64_t now = zclock_mono (), next = INT64_MAX;
    zlist_t *runs = zlist_dup (runner->runs);
    for (s_run_t *run = (s_run_t *) zlist_first (runs); run; run = (s_run_t *) zlist_next (runs))
        for (size_t index = 0; index < lh_wfdef_count (run->def); index++) {
            s_node_t *node = &run->nodes [index];
            if (!node->retry_at || node->status != S_RUNNING)
                continue;
            if (node->retry_at <= now) {
                node->retry_at = 0;
                s_node_start (runner, run, index);
            }
            else
            if (node->retry_at < next)
                next = node->retry_at;
        }
    zlist_destroy (&runs);
    return next;
}


//  --------------------------------------------------------------------------
//  Subscribe the runner's client to every on prefix it does not have yet
//  (no unsubscribe: events no workflow wants any more are ignored)

static void
s_subscriptions (s_runner_t *runner)
{
    s_state_t *self = runner->state;
    pthread_mutex_lock (&self->lock);
    bool changed = self->triggers_changed;
    self->triggers_changed = false;
    zlist_t *prefixes = zlist_new ();
    zlist_autofree (prefixes);
    if (changed)
        for (const char *on = (const char *) zhashx_first (self->triggers); on;
             on = (const char *) zhashx_next (self->triggers))
            zlist_append (prefixes, (void *) on);
    pthread_mutex_unlock (&self->lock);
    for (const char *on = (const char *) zlist_first (prefixes); on;
         on = (const char *) zlist_next (prefixes))
        if (!zhashx_lookup (runner->subscribed, on)) {
            if (lh_client_subscribe (runner->client, on) == 0)
                zhashx_insert (runner->subscribed, on, (void *) "on");
            else
                lh_warn (S_NAME, NULL, "cannot subscribe to '%s'", on);
        }
    zlist_destroy (&prefixes);
    pthread_mutex_lock (&self->lock);
    self->subscribed = zhashx_size (runner->subscribed);
    pthread_mutex_unlock (&self->lock);
}


//  --------------------------------------------------------------------------
//  One message from the bus

static void
s_dispatch (s_runner_t *runner, lh_reply_t **reply_p)
{
    if (lh_reply_type (*reply_p) == LH_T_PUB)
        s_on_event (runner, *reply_p);
    else
        s_on_reply (runner, *reply_p);
    lh_reply_destroy (reply_p);
}


//  --------------------------------------------------------------------------
//  The runner thread: new runs, replies, events, retries, commits

static void *
s_runner (void *arg)
{
    s_state_t *self = (s_state_t *) arg;
    pthread_setname_np (pthread_self (), "workflowd-run");
    s_runner_t runner = { .state = self, .runs = zlist_new (), .requests = zhashx_new (),
                          .subscribed = zhashx_new () };
    zhashx_set_destructor (runner.requests, s_call_destroy);
    while (!self->stop) {
        if (!runner.client) {
            runner.client = lh_client_new (&self->link, "workflowd-runner");
            if (!runner.client) {
                struct pollfd item = { self->wake, POLLIN, 0 };
                poll (&item, 1, S_CONNECT_RETRY_MS);
                continue;
            }
            zhashx_purge (runner.subscribed);
            pthread_mutex_lock (&self->lock);
            self->triggers_changed = true;
            pthread_mutex_unlock (&self->lock);
        }
        //  New runs from the workers
        pthread_mutex_lock (&self->lock);
        zlist_t *fresh = self->queue;
        self->queue = zlist_new ();
        pthread_mutex_unlock (&self->lock);
        for (s_run_t *run = (s_run_t *) zlist_first (fresh); run; run = (s_run_t *) zlist_next (fresh))
            s_run_begin (&runner, run);
        zlist_destroy (&fresh);
        s_subscriptions (&runner);
        int64_t next_retry = s_retries (&runner);

        //  The bus: housekeeping (heartbeats, deadlines) once, then read it
        //  dry; commits publish, so read again after them, until a read
        //  finds nothing and nothing is left to commit
        lh_reply_t *reply;
        if (lh_client_recv (runner.client, &reply, 0) == 0)
            s_dispatch (&runner, &reply);
        while (true) {
            bool got = false;
            while (lh_client_try_recv (runner.client, &reply) == 0) {
                s_dispatch (&runner, &reply);
                got = true;
            }
            if (s_dirty (&runner)) {
                s_commit (&runner);
                if (s_dirty (&runner))
                    break;              //  the store failed: again next turn
                continue;               //  the commit published: read again
            }
            if (!got)
                break;
        }
        int64_t wait = S_WAKE_MS;
        if (next_retry != INT64_MAX && next_retry - zclock_mono () < wait)
            wait = next_retry - zclock_mono () > 0? next_retry - zclock_mono (): 0;
        zsock_t *sock = lh_client_sock (runner.client);
        struct pollfd items [2] = {
            { self->wake, POLLIN, 0 },
            { sock? zsock_fd (sock): -1, POLLIN, 0 }
        };
        if (poll (items, sock? 2: 1, (int) wait) > 0 && (items [0].revents & POLLIN)) {
            uint64_t count;
            if (read (self->wake, &count, sizeof (count)) < 0 && errno != EAGAIN)
                lh_warn (S_NAME, NULL, "cannot read the wake descriptor: %s", strerror (errno));
        }
    }
    //  Runs still in flight stay in the active set: the next start fails
    //  them (they are not resumed)
    while (zlist_size (runner.runs)) {
        s_run_t *run = (s_run_t *) zlist_pop (runner.runs);
        pthread_mutex_lock (&self->lock);
        run->done = true;
        pthread_cond_broadcast (&self->ended);
        pthread_mutex_unlock (&self->lock);
        s_run_release (self, run);
    }
    zlist_destroy (&runner.runs);
    zhashx_destroy (&runner.requests);
    zhashx_destroy (&runner.subscribed);
    lh_client_destroy (&runner.client);
    return NULL;
}


//  --------------------------------------------------------------------------
//  Is a msgpack object the string text?

static bool
s_str_equal (const msgpack_object *object, const char *text)
{
    return object->type == MSGPACK_OBJECT_STR && object->via.str.size == strlen (text)
        && memcmp (object->via.str.ptr, text, object->via.str.size) == 0;
}


//  --------------------------------------------------------------------------
//  Free a string value of a hash

static void
s_string_destroy (void **item_p)
{
    free (*item_p);
    *item_p = NULL;
}


//  --------------------------------------------------------------------------
//  The services the bus knows, with their ops (broker.services): name ->
//  "op1,op2" ("" when no worker is up to say). NULL after answering.

static zhashx_t *
s_services (lh_request_t *request)
{
    lh_reply_t *reply = NULL;
    lh_request_call (request, "broker", "services", NULL, 0, 5000, &reply);
    const msgpack_object *list = lh_reply_status (reply) == LH_ST_OK?
                                 lh_obj_get (lh_reply_object (reply), "services"): NULL;
    if (!list || list->type != MSGPACK_OBJECT_ARRAY) {
        lh_request_fail_dependency (request, reply, "broker", "the list of services");
        lh_reply_destroy (&reply);
        return NULL;
    }
    zhashx_t *services = zhashx_new ();
    zhashx_set_destructor (services, s_string_destroy);
    for (uint32_t index = 0; index < list->via.array.size; index++) {
        const msgpack_object *service = &list->via.array.ptr [index];
        char *name = lh_obj_strdup (lh_obj_get (service, "name"));
        const msgpack_object *ops = lh_obj_get (service, "ops");
        if (!name)
            continue;
        zchunk_t *joined = zchunk_new (NULL, 64);
        for (uint32_t op = 0; ops && ops->type == MSGPACK_OBJECT_ARRAY && op < ops->via.array.size; op++)
            if (ops->via.array.ptr [op].type == MSGPACK_OBJECT_STR) {
                if (zchunk_size (joined))
                    zchunk_extend (joined, ",", 1);
                zchunk_extend (joined, ops->via.array.ptr [op].via.str.ptr,
                               ops->via.array.ptr [op].via.str.size);
            }
        zchunk_extend (joined, "", 1);
        zhashx_update (services, name, strdup ((const char *) zchunk_data (joined)));
        zchunk_destroy (&joined);
        free (name);
    }
    lh_reply_destroy (&reply);
    return services;
}


//  --------------------------------------------------------------------------
//  Read and load the definition field (a map, or YAML or JSON text),
//  checked against the services on the bus. 0 with *def_p, or -1 after
//  answering (400 naming what is wrong, 413 past definition_max).

static int
s_read_definition (s_state_t *self, lh_request_t *request, const msgpack_object *body,
                   lh_wfdef_t **def_p)
{
    const msgpack_object *definition = lh_obj_get (body, "definition");
    if (!definition || definition->type == MSGPACK_OBJECT_NIL)
        return lh_request_bad (request, "definition", "'definition' is required: a map, or "
                               "the workflow as YAML or JSON text");
    lh_wferror_t error;
    lh_pack_t *pack = lh_pack_new ();
    if (definition->type == MSGPACK_OBJECT_STR) {
        if (definition->via.str.size > self->definition_max) {
            lh_pack_destroy (&pack);
            return lh_request_fail_field (request, LH_ST_TOO_LARGE, "too_large", "definition",
                                          "'definition' is %u bytes; workflowd/definition_max "
                                          "allows %zu", definition->via.str.size,
                                          self->definition_max);
        }
        if (lh_wfdef_parse_text (definition->via.str.ptr, definition->via.str.size, pack, &error)) {
            lh_pack_destroy (&pack);
            return lh_request_fail_field (request, LH_ST_BAD_REQUEST, error.kind, "definition",
                                          "%s", error.reason);
        }
    }
    else
    if (definition->type == MSGPACK_OBJECT_MAP)
        lh_pack_object (pack, definition);
    else {
        lh_pack_destroy (&pack);
        return lh_request_bad (request, "definition", "'definition' must be a map, or the "
                               "workflow as YAML or JSON text");
    }
    size_t size;
    const void *data = lh_pack_data (pack, &size);
    if (size > self->definition_max) {
        lh_pack_destroy (&pack);
        return lh_request_fail_field (request, LH_ST_TOO_LARGE, "too_large", "definition",
                                      "the definition is %zu bytes as msgpack; "
                                      "workflowd/definition_max allows %zu", size,
                                      self->definition_max);
    }
    msgpack_zone zone;
    msgpack_zone_init (&zone, 4096);
    msgpack_object object;
    if (lh_msgpack_unpack (data, size, &lh_limits_default, &zone, &object)) {
        msgpack_zone_destroy (&zone);
        lh_pack_destroy (&pack);
        return lh_request_bad (request, "definition", "the definition is nested too deeply");
    }
    zhashx_t *services = s_services (request);
    if (!services) {
        msgpack_zone_destroy (&zone);
        lh_pack_destroy (&pack);
        return -1;
    }
    lh_wfcheck_t check = self->check;
    check.services = services;
    *def_p = lh_wfdef_load (&object, &check, &error);
    zhashx_destroy (&services);
    msgpack_zone_destroy (&zone);
    lh_pack_destroy (&pack);
    if (!*def_p)
        return lh_request_fail_field (request, LH_ST_BAD_REQUEST, error.kind, "definition",
                                      "%s", error.reason);
    return 0;
}


//  --------------------------------------------------------------------------
//  Read a workflow name field; 0, or -1 after answering 400

static int
s_read_name (lh_request_t *request, const msgpack_object *body, int flags, char *name)
{
    const char *value = NULL;
    size_t size = 0;
    if (lh_request_str (request, body, "name", flags | LH_FIELD_NONEMPTY, LH_WF_ID_MAX, &value, &size))
        return -1;
    if (!value)
        return 0;
    for (size_t index = 0; index < size; index++)
        if (!isalnum ((unsigned char) value [index]) && !strchr ("_.:-", value [index]))
            return lh_request_bad (request, "name", "'name' must be 1..%d characters of letters, "
                                   "digits, _ . : -", LH_WF_ID_MAX);
    memcpy (name, value, size);
    name [size] = 0;
    return 0;
}


//  --------------------------------------------------------------------------
//  Pack a list of the required inputs as an array

static void
s_pack_required (lh_pack_t *pack, const char *list)
{
    lh_pack_open_array (pack);
    while (*list) {
        const char *comma = strchr (list, ',');
        size_t size = comma? (size_t) (comma - list): strlen (list);
        lh_pack_strn (pack, list, size);
        list += size + (comma? 1: 0);
    }
    lh_pack_close (pack);
}


//  --------------------------------------------------------------------------
//  workflow_put {definition}: save (or replace) it under its name

static void
s_workflow_put (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    const msgpack_object *body = lh_request_map (request);
    lh_wfdef_t *def = NULL;
    if (!body || s_read_definition (self, request, body, &def))
        return;
    const char *name = lh_wfdef_name (def);
    //  The version goes up by one each time a name is saved
    uint64_t version = 1;
    lh_pack_t *old = lh_pack_new ();
    if (lh_wfstore_get (self->store, LH_WF_DEFS, name, strlen (name), old) == 0) {
        size_t size;
        const void *data = lh_pack_data (old, &size);
        msgpack_zone zone;
        msgpack_zone_init (&zone, 1024);
        msgpack_object record;
        if (lh_msgpack_unpack (data, size, &lh_limits_default, &zone, &record) == 0
        &&  lh_obj_uint (&record, "version", &version))
            version++;
        msgpack_zone_destroy (&zone);
    }
    lh_pack_destroy (&old);
    lh_pack_t *record = lh_pack_new ();
    lh_pack_open_map (record);
    lh_pack_kv_str (record, "name", name);
    lh_pack_kv_uint (record, "version", version);
    lh_pack_kv_int (record, "updated_ms", s_now_ms ());
    size_t size;
    const void *data = lh_wfdef_packed (def, &size);
    lh_pack_str (record, "definition");
    lh_pack_raw (record, data, size);
    lh_pack_close (record);
    data = lh_pack_data (record, &size);
    lh_wfbatch_t *batch = lh_wfstore_begin (self->store);
    const char *reason = "the workflow store cannot be written";
    if (!batch
    ||  lh_wfbatch_put (batch, LH_WF_DEFS, name, strlen (name), data, size)
    ||  lh_wfstore_commit (&batch, &reason)) {
        lh_wfstore_abort (&batch);
        lh_pack_destroy (&record);
        lh_wfdef_destroy (&def);
        lh_request_fail (request, LH_ST_INTERNAL, "storage_failed", "%s", reason);
        return;
    }
    lh_pack_destroy (&record);
    pthread_mutex_lock (&self->lock);
    if (lh_wfdef_on (def))
        zhashx_update (self->triggers, name, strdup (lh_wfdef_on (def)));
    else
        zhashx_delete (self->triggers, name);
    self->triggers_changed = true;
    pthread_mutex_unlock (&self->lock);
    s_wake (self);
    lh_info (S_NAME, lh_request_trace (request), "workflow %s version %" PRIu64 " saved (%zu nodes%s%s)",
             name, version, lh_wfdef_count (def), lh_wfdef_on (def)? ", on ": "",
             lh_wfdef_on (def)? lh_wfdef_on (def): "");
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_kv_str (pack, "name", name);
    lh_pack_kv_uint (pack, "version", version);
    lh_pack_str (pack, "nodes");
    lh_pack_open_array (pack);
    for (size_t index = 0; index < lh_wfdef_count (def); index++)
        lh_pack_str (pack, lh_wfdef_node_id (def, index));
    lh_pack_close (pack);
    if (lh_wfdef_on (def))
        lh_pack_kv_str (pack, "on", lh_wfdef_on (def));
    lh_pack_str (pack, "inputs");
    s_pack_required (pack, lh_wfdef_required (def));
    lh_pack_close (pack);
    lh_request_reply_pack (request, version == 1? LH_ST_CREATED: LH_ST_OK, &pack);
    lh_wfdef_destroy (&def);
}


//  --------------------------------------------------------------------------
//  Read the request's "name" into name and the saved workflow's record
//  into pack. Returns 0, or -1 with the request answered (400 for the
//  name, 404 no_such_workflow, 500 storage_failed).

static int
s_saved (s_state_t *self, lh_request_t *request, char *name, lh_pack_t *pack)
{
    const msgpack_object *body = lh_request_map (request);
    if (!body || s_read_name (request, body, LH_FIELD_REQUIRED, name))
        return -1;
    int rc = lh_wfstore_get (self->store, LH_WF_DEFS, name, strlen (name), pack);
    if (rc == 1)
        lh_request_fail_field (request, LH_ST_NOT_FOUND, "no_such_workflow", "name",
                               "no workflow named '%s' is saved", name);
    else
    if (rc)
        lh_request_fail (request, LH_ST_INTERNAL, "storage_failed", "the workflow store cannot be read");
    return rc? -1: 0;
}


//  --------------------------------------------------------------------------
//  workflow_get {name}

static void
s_workflow_get (lh_request_t *request, void *state)
{
    char name [LH_WF_ID_MAX + 1];
    lh_pack_t *pack = lh_pack_new ();
    if (s_saved ((s_state_t *) state, request, name, pack) == 0)
        lh_request_reply_pack (request, LH_ST_OK, &pack);
    lh_pack_destroy (&pack);
}


//  --------------------------------------------------------------------------
//  Pack the summary of one saved workflow (a scan's callback)

static int
s_list_one (void *arg, const void *key, size_t key_size, const void *value, size_t size)
{
    lh_pack_t *pack = (lh_pack_t *) arg;
    msgpack_zone zone;
    msgpack_zone_init (&zone, 4096);
    msgpack_object record;
    if (lh_msgpack_unpack (value, size, &lh_limits_default, &zone, &record) == 0) {
        const msgpack_object *definition = lh_obj_get (&record, "definition");
        const msgpack_object *nodes = lh_obj_get (definition, "nodes");
        const msgpack_object *on = lh_obj_get (definition, "on");
        uint64_t version = 0;
        int64_t updated = 0;
        lh_obj_uint (&record, "version", &version);
        lh_obj_int (&record, "updated_ms", &updated);
        lh_pack_open_map (pack);
        lh_pack_str (pack, "name");
        lh_pack_strn (pack, (const char *) key, key_size);
        lh_pack_kv_uint (pack, "version", version);
        lh_pack_kv_int (pack, "updated_ms", updated);
        lh_pack_kv_uint (pack, "nodes", nodes && nodes->type == MSGPACK_OBJECT_MAP? nodes->via.map.size: 0);
        if (on && on->type == MSGPACK_OBJECT_STR) {
            lh_pack_str (pack, "on");
            lh_pack_object (pack, on);
        }
        lh_pack_close (pack);
    }
    msgpack_zone_destroy (&zone);
    return 0;
}

//  --------------------------------------------------------------------------
//  workflow_list {}: one summary per saved workflow, by name

static void
s_workflow_list (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    if (!lh_request_map (request))
        return;
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_str (pack, "workflows");
    lh_pack_open_array (pack);
    int rc = lh_wfstore_scan (self->store, LH_WF_DEFS, NULL, 0, s_list_one, pack);
    lh_pack_close (pack);
    lh_pack_kv_uint (pack, "count", lh_wfstore_count (self->store, LH_WF_DEFS));
    lh_pack_close (pack);
    if (rc)
        lh_request_fail (request, LH_ST_INTERNAL, "storage_failed", "the workflow store cannot be read");
    else
        lh_request_reply_pack (request, LH_ST_OK, &pack);
    lh_pack_destroy (&pack);
}


//  --------------------------------------------------------------------------
//  workflow_delete {name}

static void
s_workflow_delete (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    char name [LH_WF_ID_MAX + 1];
    lh_pack_t *pack = lh_pack_new ();
    int rc = s_saved (self, request, name, pack);
    lh_pack_destroy (&pack);
    if (rc)
        return;
    lh_wfbatch_t *batch = lh_wfstore_begin (self->store);
    const char *reason = "the workflow store cannot be written";
    if (!batch
    ||  lh_wfbatch_delete (batch, LH_WF_DEFS, name, strlen (name), false)
    ||  lh_wfstore_commit (&batch, &reason)) {
        lh_wfstore_abort (&batch);
        lh_request_fail (request, LH_ST_INTERNAL, "storage_failed", "%s", reason);
        return;
    }
    pthread_mutex_lock (&self->lock);
    zhashx_delete (self->triggers, name);
    pthread_mutex_unlock (&self->lock);
    pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_kv_str (pack, "name", name);
    lh_pack_kv_bool (pack, "deleted", true);
    lh_pack_close (pack);
    lh_request_reply_pack (request, LH_ST_OK, &pack);
}


//  --------------------------------------------------------------------------
//  Is text a run id (26 characters of Crockford's base 32)?

static bool
s_run_id_valid (const char *text, size_t size)
{
    if (size != LH_WF_RUN_ID_SIZE || text [0] > '7')
        return false;
    for (size_t index = 0; index < size; index++)
        if (!text [index] || !strchr ("0123456789ABCDEFGHJKMNPQRSTVWXYZ", text [index]))
            return false;
    return true;
}


//  --------------------------------------------------------------------------
//  Collect the audit rows of a run into an array

static int
s_audit_one (void *arg, const void *key, size_t key_size, const void *value, size_t size)
{
    lh_pack_raw ((lh_pack_t *) arg, value, size);
    return 0;
}


//  --------------------------------------------------------------------------
//  Pack a stored run with its audit rows (outputs left out unless asked).
//  Returns 0, 1 (no such run) or -1.

static int
s_run_read (s_state_t *self, const char *id, bool outputs, lh_pack_t *pack)
{
    lh_pack_t *stored = lh_pack_new ();
    int rc = lh_wfstore_get (self->store, LH_WF_RUNS, id, LH_WF_RUN_ID_SIZE, stored);
    if (rc) {
        lh_pack_destroy (&stored);
        return rc;
    }
    size_t size;
    const void *data = lh_pack_data (stored, &size);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 4096);
    msgpack_object record;
    if (lh_msgpack_unpack (data, size, &lh_limits_default, &zone, &record)
    ||  record.type != MSGPACK_OBJECT_MAP) {
        msgpack_zone_destroy (&zone);
        lh_pack_destroy (&stored);
        return -1;
    }
    lh_pack_open_map (pack);
    for (uint32_t index = 0; index < record.via.map.size; index++) {
        const msgpack_object *key = &record.via.map.ptr [index].key;
        const msgpack_object *value = &record.via.map.ptr [index].val;
        lh_pack_object (pack, key);
        if (outputs || value->type != MSGPACK_OBJECT_MAP
        ||  key->type != MSGPACK_OBJECT_STR || key->via.str.size != 5
        ||  memcmp (key->via.str.ptr, "nodes", 5) != 0) {
            lh_pack_object (pack, value);
            continue;
        }
        //  nodes, without their outputs
        lh_pack_open_map (pack);
        for (uint32_t node = 0; node < value->via.map.size; node++) {
            lh_pack_object (pack, &value->via.map.ptr [node].key);
            const msgpack_object *fields = &value->via.map.ptr [node].val;
            lh_pack_open_map (pack);
            for (uint32_t field = 0; fields->type == MSGPACK_OBJECT_MAP && field < fields->via.map.size; field++)
                if (!(fields->via.map.ptr [field].key.type == MSGPACK_OBJECT_STR
                   && fields->via.map.ptr [field].key.via.str.size == 6
                   && memcmp (fields->via.map.ptr [field].key.via.str.ptr, "output", 6) == 0)) {
                    lh_pack_object (pack, &fields->via.map.ptr [field].key);
                    lh_pack_object (pack, &fields->via.map.ptr [field].val);
                }
            lh_pack_close (pack);
        }
        lh_pack_close (pack);
    }
    lh_pack_str (pack, "audit");
    lh_pack_open_array (pack);
    rc = lh_wfstore_scan (self->store, LH_WF_AUDIT, id, LH_WF_RUN_ID_SIZE, s_audit_one, pack);
    lh_pack_close (pack);
    lh_pack_close (pack);
    msgpack_zone_destroy (&zone);
    lh_pack_destroy (&stored);
    return rc;
}


//  --------------------------------------------------------------------------
//  Answer with a stored run

static void
s_reply_run (s_state_t *self, lh_request_t *request, const char *id, bool outputs,
             uint32_t status)
{
    lh_pack_t *pack = lh_pack_new ();
    int rc = s_run_read (self, id, outputs, pack);
    if (rc == 0)
        lh_request_reply_pack (request, status, &pack);
    else
    if (rc == 1)
        lh_request_fail_field (request, LH_ST_NOT_FOUND, "no_such_run", "run_id",
                               "no run %s is stored (runs past workflowd/runs_max are removed, "
                               "oldest first)", id);
    else
        lh_request_fail (request, LH_ST_INTERNAL, "storage_failed", "the run store cannot be read");
    lh_pack_destroy (&pack);
}


//  --------------------------------------------------------------------------
//  workflow_run {name | definition, inputs?, wait?}

static void
s_workflow_run (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    const msgpack_object *body = lh_request_map (request);
    char name [LH_WF_ID_MAX + 1] = "";
    const msgpack_object *inputs = NULL;
    bool wait = true;
    if (!body
    ||  s_read_name (request, body, 0, name)
    ||  lh_request_bool (request, body, "wait", 0, &wait))
        return;
    inputs = lh_obj_get (body, "inputs");
    if (inputs && inputs->type != MSGPACK_OBJECT_MAP && inputs->type != MSGPACK_OBJECT_NIL) {
        lh_request_bad (request, "inputs", "'inputs' must be a map of names to values");
        return;
    }
    const msgpack_object *definition = lh_obj_get (body, "definition");
    bool inline_def = definition && definition->type != MSGPACK_OBJECT_NIL;
    if (*name && inline_def) {
        lh_request_bad (request, "definition", "give 'name' (a saved workflow) or "
                        "'definition', not both");
        return;
    }
    if (!*name && !inline_def) {
        lh_request_bad (request, "name", "give 'name' (a saved workflow) or 'definition' "
                        "(the workflow itself)");
        return;
    }
    lh_wfdef_t *def = NULL;
    lh_wferror_t error;
    if (inline_def) {
        if (s_read_definition (self, request, body, &def))
            return;
    }
    else {
        def = s_def_stored (self, name, &error);
        if (!def) {
            lh_request_fail_field (request, streq (error.kind, "no_such_workflow")? LH_ST_NOT_FOUND:
                                   streq (error.kind, "storage_failed")? LH_ST_INTERNAL: LH_ST_BAD_REQUEST,
                                   error.kind, "name", "%s", error.reason);
            return;
        }
    }
    lh_pack_t *pack = lh_pack_new ();
    if (lh_wfdef_inputs (def, inputs, pack, &error)) {
        lh_pack_destroy (&pack);
        lh_wfdef_destroy (&def);
        lh_request_fail_field (request, LH_ST_BAD_REQUEST, error.kind, "inputs", "%s", error.reason);
        return;
    }
    size_t size;
    lh_pack_data (pack, &size);
    if (size > self->definition_max) {
        lh_pack_destroy (&pack);
        lh_wfdef_destroy (&def);
        lh_request_fail_field (request, LH_ST_TOO_LARGE, "too_large", "inputs", "the inputs are "
                               "%zu bytes; workflowd/definition_max allows %zu", size,
                               self->definition_max);
        return;
    }
    pthread_mutex_lock (&self->lock);
    bool room = self->active < self->active_max;
    if (room) {
        self->active++;
        self->started++;
    }
    pthread_mutex_unlock (&self->lock);
    if (!room) {
        lh_pack_destroy (&pack);
        lh_wfdef_destroy (&def);
        lh_request_fail_retry (request, LH_ST_UNAVAILABLE, "busy", 1000, "%zu runs are running "
                               "(workflowd/active_max): try again later", self->active_max);
        return;
    }
    zframe_t *frame = lh_pack_frame (&pack);
    s_run_t *run = s_run_new (&def, &frame, "call", lh_request_trace (request),
                              lh_request_span_id (request));
    //  The first record is written before anything runs: the run id we
    //  answer with is always there to ask about
    lh_wfbatch_t *batch = lh_wfstore_begin (self->store);
    const char *reason = "the run store cannot be written";
    if (batch)
        s_run_save (self, batch, run);
    if (!batch || lh_wfstore_commit (&batch, &reason)) {
        lh_wfstore_abort (&batch);
        pthread_mutex_lock (&self->lock);
        self->active--;
        self->started--;
        pthread_mutex_unlock (&self->lock);
        s_run_destroy (&run);
        lh_request_fail (request, LH_ST_INTERNAL, "storage_failed", "%s", reason);
        return;
    }
    char id [LH_WF_RUN_ID_SIZE + 1];
    snprintf (id, sizeof (id), "%s", run->id);
    lh_info (S_NAME, lh_request_trace (request), "run %s of %s started", id, lh_wfdef_name (run->def));
    pthread_mutex_lock (&self->lock);
    run->refs = wait? 2: 1;
    zlist_append (self->queue, run);
    pthread_mutex_unlock (&self->lock);
    s_wake (self);
    if (!wait) {
        s_reply_run (self, request, id, true, LH_ST_CREATED);
        return;
    }
    //  Wait for the end, or answer just before the caller's deadline
    pthread_mutex_lock (&self->lock);
    while (!run->done) {
        pthread_mutex_unlock (&self->lock);
        uint64_t left = lh_request_time_left (request);      //  heartbeats too
        pthread_mutex_lock (&self->lock);
        if (run->done || left <= S_REPLY_MARGIN_MS)
            break;
        uint64_t slice = left - S_REPLY_MARGIN_MS < 200? left - S_REPLY_MARGIN_MS: 200;
        struct timespec until;
        clock_gettime (CLOCK_MONOTONIC, &until);
        uint64_t nanos = (uint64_t) until.tv_nsec + slice * 1000000;
        until.tv_sec += (time_t) (nanos / 1000000000);
        until.tv_nsec = (long) (nanos % 1000000000);
        pthread_cond_timedwait (&self->ended, &self->lock, &until);
    }
    pthread_mutex_unlock (&self->lock);
    s_run_release (self, run);
    s_reply_run (self, request, id, true, LH_ST_OK);
}


//  --------------------------------------------------------------------------
//  run_get {run_id, outputs?}

static void
s_run_get (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    const msgpack_object *body = lh_request_map (request);
    const char *id = NULL;
    size_t size = 0;
    bool outputs = true;
    if (!body
    ||  lh_request_str (request, body, "run_id", LH_FIELD_REQUIRED | LH_FIELD_NONEMPTY, 64, &id, &size)
    ||  lh_request_bool (request, body, "outputs", 0, &outputs))
        return;
    if (!s_run_id_valid (id, size)) {
        lh_request_bad (request, "run_id", "'run_id' must be a run id: 26 characters of "
                        "0-9 A-Z (a ULID)");
        return;
    }
    char key [LH_WF_RUN_ID_SIZE + 1];
    memcpy (key, id, LH_WF_RUN_ID_SIZE);
    key [LH_WF_RUN_ID_SIZE] = 0;
    s_reply_run (self, request, key, outputs, LH_ST_OK);
}


//  What a run_list scan collects
typedef struct {
    lh_pack_t *pack;                    //  the summaries
    const char *name;                   //  only this workflow, or NULL
    const char *status;                 //  only this status, or NULL
    size_t limit;                       //  most summaries
    size_t count;                       //  summaries packed
    bool truncated;                     //  another one matched
    char next [LH_WF_RUN_ID_SIZE + 1];  //  the last run id packed
} s_list_t;


//  --------------------------------------------------------------------------
//  Pack one run's summary if it matches (a scan's callback, newest first);
//  stops once one more than the limit matched

static int
s_run_list_one (void *arg, const void *key, size_t key_size, const void *value, size_t size)
{
    s_list_t *list = (s_list_t *) arg;
    msgpack_zone zone;
    msgpack_zone_init (&zone, 4096);
    msgpack_object record;
    int stop = 0;
    if (lh_msgpack_unpack (value, size, &lh_limits_default, &zone, &record) == 0) {
        const char *name = "", *status = "";
        size_t name_size = 0, status_size = 0;
        lh_obj_str (&record, "name", &name, &name_size);
        lh_obj_str (&record, "status", &status, &status_size);
        bool match = (!list->name || (strlen (list->name) == name_size
                                   && memcmp (list->name, name, name_size) == 0))
                  && (!list->status || (strlen (list->status) == status_size
                                     && memcmp (list->status, status, status_size) == 0));
        if (match && list->count == list->limit) {
            list->truncated = true;
            stop = 1;
        }
        else
        if (match) {
            lh_pack_open_map (list->pack);
            static const char *s_fields [] = { "run_id", "name", "status", "trigger",
                                               "started_ms", "ended_ms", NULL };
            for (const char **field = s_fields; *field; field++) {
                const msgpack_object *item = lh_obj_get (&record, *field);
                if (item) {
                    lh_pack_str (list->pack, *field);
                    lh_pack_object (list->pack, item);
                }
            }
            lh_pack_close (list->pack);
            list->count++;
            snprintf (list->next, sizeof (list->next), "%.*s", (int) key_size, (const char *) key);
        }
    }
    msgpack_zone_destroy (&zone);
    return stop;
}

//  --------------------------------------------------------------------------
//  run_list {name?, status?, before?, limit?}: newest first

static void
s_run_list (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    const msgpack_object *body = lh_request_map (request);
    char name [LH_WF_ID_MAX + 1] = "";
    const char *status = NULL, *before = NULL;
    size_t status_size = 0, before_size = 0;
    int64_t limit = 100;
    if (!body
    ||  s_read_name (request, body, 0, name)
    ||  lh_request_str (request, body, "status", 0, 16, &status, &status_size)
    ||  lh_request_str (request, body, "before", 0, 64, &before, &before_size)
    ||  lh_request_int (request, body, "limit", 0, 1, S_LIST_MAX, &limit))
        return;
    char status_text [16] = "";
    if (status) {
        snprintf (status_text, sizeof (status_text), "%.*s", (int) status_size, status);
        if (!streq (status_text, "running") && !streq (status_text, "succeeded")
        &&  !streq (status_text, "failed")) {
            lh_request_bad (request, "status", "'status' must be running, succeeded or failed");
            return;
        }
    }
    if (before && !s_run_id_valid (before, before_size)) {
        lh_request_bad (request, "before", "'before' must be a run id (the next of a previous page)");
        return;
    }
    s_list_t list = { .pack = lh_pack_new (), .name = *name? name: NULL,
                      .status = status? status_text: NULL, .limit = (size_t) limit };
    lh_pack_open_map (list.pack);
    lh_pack_str (list.pack, "runs");
    lh_pack_open_array (list.pack);
    int rc = lh_wfstore_scan_back (self->store, LH_WF_RUNS, before, before? before_size: 0,
                                   s_run_list_one, &list);
    lh_pack_close (list.pack);
    lh_pack_kv_uint (list.pack, "count", list.count);
    lh_pack_kv_bool (list.pack, "truncated", list.truncated);
    if (list.truncated)
        lh_pack_kv_str (list.pack, "next", list.next);
    lh_pack_close (list.pack);
    if (rc)
        lh_request_fail (request, LH_ST_INTERNAL, "storage_failed", "the run store cannot be read");
    else
        lh_request_reply_pack (request, LH_ST_OK, &list.pack);
    lh_pack_destroy (&list.pack);
}


//  --------------------------------------------------------------------------
//  stats {}

static void
s_stats (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    if (!lh_request_map (request))
        return;
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    pthread_mutex_lock (&self->lock);
    lh_pack_kv_uint (pack, "active", self->active);
    lh_pack_kv_uint (pack, "active_max", self->active_max);
    lh_pack_kv_uint (pack, "started", self->started);
    lh_pack_kv_uint (pack, "succeeded", self->succeeded);
    lh_pack_kv_uint (pack, "failed", self->failed);
    lh_pack_kv_uint (pack, "triggered", self->triggered);
    lh_pack_kv_uint (pack, "trigger_dropped", self->trigger_dropped);
    lh_pack_kv_uint (pack, "node_calls", self->nodes_run);
    lh_pack_kv_uint (pack, "retries", self->retried);
    lh_pack_kv_uint (pack, "store_errors", self->store_errors);
    lh_pack_kv_uint (pack, "recovered", self->recovered);
    lh_pack_kv_uint (pack, "triggers", zhashx_size (self->triggers));
    lh_pack_kv_uint (pack, "subscribed", self->subscribed);
    pthread_mutex_unlock (&self->lock);
    lh_pack_kv_uint (pack, "workflows", lh_wfstore_count (self->store, LH_WF_DEFS));
    lh_pack_kv_uint (pack, "runs", lh_wfstore_count (self->store, LH_WF_RUNS));
    lh_pack_close (pack);
    lh_request_reply_pack (request, LH_ST_OK, &pack);
}


//  --------------------------------------------------------------------------
//  Collect the id of a run in the active set (a scan's callback)

static int
s_active_one (void *arg, const void *key, size_t key_size, const void *value, size_t size)
{
    if (key_size == LH_WF_RUN_ID_SIZE) {
        char id [LH_WF_RUN_ID_SIZE + 1];
        memcpy (id, key, LH_WF_RUN_ID_SIZE);
        id [LH_WF_RUN_ID_SIZE] = 0;
        zlist_append ((zlist_t *) arg, id);         //  copied (autofree)
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Count one entry (a scan's callback)

static int
s_count_one (void *arg, const void *key, size_t key_size, const void *value, size_t size)
{
    (*(uint32_t *) arg)++;
    return 0;
}

//  --------------------------------------------------------------------------
//  Rewrite a run that was running when workflowd stopped: failed, its
//  running nodes failed, its pending ones skipped, each with an audit row
//  (into the batch)

static void
s_recover_run (s_state_t *self, lh_wfbatch_t *batch, const char *id, const msgpack_object *record)
{
    uint32_t seq = 0;
    lh_wfstore_scan (self->store, LH_WF_AUDIT, id, LH_WF_RUN_ID_SIZE, s_count_one, &seq);
    int64_t now = s_now_ms ();
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    for (uint32_t index = 0; index < record->via.map.size; index++) {
        const msgpack_object *key = &record->via.map.ptr [index].key;
        const msgpack_object *value = &record->via.map.ptr [index].val;
        if (s_str_equal (key, "status") || s_str_equal (key, "ended_ms") || s_str_equal (key, "error"))
            continue;
        lh_pack_object (pack, key);
        if (!s_str_equal (key, "nodes") || value->type != MSGPACK_OBJECT_MAP) {
            lh_pack_object (pack, value);
            continue;
        }
        lh_pack_open_map (pack);
        for (uint32_t node = 0; node < value->via.map.size; node++) {
            const msgpack_object *node_id = &value->via.map.ptr [node].key;
            const msgpack_object *fields = &value->via.map.ptr [node].val;
            const char *status = "";
            size_t status_size = 0;
            lh_obj_str (fields, "status", &status, &status_size);
            bool running = status_size == 7 && memcmp (status, "running", 7) == 0;
            bool pending = status_size == 7 && memcmp (status, "pending", 7) == 0;
            lh_pack_object (pack, node_id);
            if (!running && !pending) {
                lh_pack_object (pack, fields);
                continue;
            }
            const char *ended = running? "failed": "skipped";
            const char *error = running? "interrupted: workflowd stopped while the call was in "
                                         "flight (runs are not resumed)":
                                         "not run: workflowd stopped before it could start";
            lh_pack_open_map (pack);
            for (uint32_t field = 0; fields->type == MSGPACK_OBJECT_MAP && field < fields->via.map.size; field++) {
                const msgpack_object *name = &fields->via.map.ptr [field].key;
                if (!s_str_equal (name, "status") && !s_str_equal (name, "error")
                &&  !s_str_equal (name, "ended_ms")) {
                    lh_pack_object (pack, name);
                    lh_pack_object (pack, &fields->via.map.ptr [field].val);
                }
            }
            lh_pack_kv_str (pack, "status", ended);
            lh_pack_kv_int (pack, "ended_ms", now);
            lh_pack_kv_str (pack, "error", error);
            lh_pack_close (pack);
            //  Its audit row
            seq++;
            lh_pack_t *row = lh_pack_new ();
            lh_pack_open_map (row);
            lh_pack_kv_uint (row, "seq", seq);
            lh_pack_kv_str (row, "run_id", id);
            lh_pack_str (row, "node");
            lh_pack_object (row, node_id);
            static const char *s_copied [] = { "call", "started_ms", "attempts", NULL };
            for (const char **copied = s_copied; *copied; copied++) {
                const msgpack_object *item = lh_obj_get (fields, *copied);
                if (item) {
                    lh_pack_str (row, *copied);
                    lh_pack_object (row, item);
                }
            }
            lh_pack_kv_str (row, "status", ended);
            lh_pack_kv_int (row, "ended_ms", now);
            lh_pack_kv_str (row, "error", error);
            lh_pack_close (row);
            uint8_t key_bytes [LH_WF_RUN_ID_SIZE + 4];
            memcpy (key_bytes, id, LH_WF_RUN_ID_SIZE);
            key_bytes [LH_WF_RUN_ID_SIZE] = (uint8_t) (seq >> 24);
            key_bytes [LH_WF_RUN_ID_SIZE + 1] = (uint8_t) (seq >> 16);
            key_bytes [LH_WF_RUN_ID_SIZE + 2] = (uint8_t) (seq >> 8);
            key_bytes [LH_WF_RUN_ID_SIZE + 3] = (uint8_t) seq;
            size_t size;
            const void *data = lh_pack_data (row, &size);
            lh_wfbatch_put (batch, LH_WF_AUDIT, key_bytes, sizeof (key_bytes), data, size);
            lh_pack_destroy (&row);
        }
        lh_pack_close (pack);
    }
    lh_pack_kv_str (pack, "status", "failed");
    lh_pack_kv_int (pack, "ended_ms", now);
    lh_pack_kv_str (pack, "error", "workflowd stopped while the run was running (runs are not resumed)");
    lh_pack_close (pack);
    size_t size;
    const void *data = lh_pack_data (pack, &size);
    lh_wfbatch_put (batch, LH_WF_RUNS, id, LH_WF_RUN_ID_SIZE, data, size);
    lh_pack_destroy (&pack);
}

//  --------------------------------------------------------------------------
//  At start: a run still in the active set was running when workflowd
//  stopped. It is not resumed: s_recover_run fails it.

static void
s_recover (s_state_t *self)
{
    zlist_t *ids = zlist_new ();
    zlist_autofree (ids);
    lh_wfstore_scan (self->store, LH_WF_ACTIVE, NULL, 0, s_active_one, ids);
    if (zlist_size (ids) == 0) {
        zlist_destroy (&ids);
        return;
    }
    lh_wfbatch_t *batch = lh_wfstore_begin (self->store);
    size_t count = 0;
    for (const char *id = (const char *) zlist_first (ids); batch && id;
         id = (const char *) zlist_next (ids)) {
        lh_pack_t *pack = lh_pack_new ();
        if (lh_wfstore_get (self->store, LH_WF_RUNS, id, LH_WF_RUN_ID_SIZE, pack) == 0) {
            size_t size;
            const void *data = lh_pack_data (pack, &size);
            msgpack_zone zone;
            msgpack_zone_init (&zone, 4096);
            msgpack_object record;
            const char *status = NULL;
            size_t status_size = 0;
            if (lh_msgpack_unpack (data, size, &lh_limits_default, &zone, &record) == 0
            &&  record.type == MSGPACK_OBJECT_MAP
            &&  lh_obj_str (&record, "status", &status, &status_size)
            &&  status_size == 7 && memcmp (status, "running", 7) == 0) {
                s_recover_run (self, batch, id, &record);
                count++;
            }
            msgpack_zone_destroy (&zone);
        }
        lh_pack_destroy (&pack);
        lh_wfbatch_delete (batch, LH_WF_ACTIVE, id, LH_WF_RUN_ID_SIZE, false);
    }
    const char *reason = NULL;
    if (batch && lh_wfstore_commit (&batch, &reason) == 0) {
        self->recovered = count;
        self->failed += count;
        lh_warn (S_NAME, NULL, "%zu runs were running when workflowd stopped: marked failed", count);
    }
    else
        lh_warn (S_NAME, NULL, "cannot mark the interrupted runs failed: %s",
                 reason? reason: "the run store cannot be written");
    zlist_destroy (&ids);
}


//  --------------------------------------------------------------------------
//  Note each saved definition's on prefix

static int
s_trigger_one (void *arg, const void *key, size_t key_size, const void *value, size_t size)
{
    s_state_t *self = (s_state_t *) arg;
    msgpack_zone zone;
    msgpack_zone_init (&zone, 4096);
    msgpack_object record;
    if (lh_msgpack_unpack (value, size, &lh_limits_default, &zone, &record) == 0) {
        char *on = lh_obj_strdup (lh_obj_get (lh_obj_get (&record, "definition"), "on"));
        if (on) {
            char *name = zsys_sprintf ("%.*s", (int) key_size, (const char *) key);
            zhashx_update (self->triggers, name, on);
            zstr_free (&name);
        }
    }
    msgpack_zone_destroy (&zone);
    return 0;
}


//  --------------------------------------------------------------------------
//  Destroy the state: stop the runner, close the store

static void
s_state_destroy (void **state_p)
{
    s_state_t *self = (s_state_t *) *state_p;
    if (self) {
        if (self->runner_started) {
            self->stop = true;
            s_wake (self);
            pthread_join (self->runner, NULL);
        }
        while (self->queue && zlist_size (self->queue)) {
            s_run_t *run = (s_run_t *) zlist_pop (self->queue);
            s_run_destroy (&run);
        }
        zlist_destroy (&self->queue);
        zhashx_destroy (&self->triggers);
        lh_wfstore_destroy (&self->store);
        if (self->wake >= 0)
            close (self->wake);
        pthread_cond_destroy (&self->ended);
        pthread_mutex_destroy (&self->lock);
        free (self->idempotent);
        free (self);
        *state_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Create the state: the store (interrupted runs failed), the triggers of
//  the saved definitions, the runner thread

static void *
s_state_new (lh_config_t *config, const lh_link_t *link, const char **error)
{
    s_state_t *self = (s_state_t *) zmalloc (sizeof (s_state_t));
    assert (self);
    self->link = *link;
    self->wake = -1;
    pthread_mutex_init (&self->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init (&attr);
    pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
    pthread_cond_init (&self->ended, &attr);
    pthread_condattr_destroy (&attr);
    self->queue = zlist_new ();
    self->triggers = zhashx_new ();
    zhashx_set_destructor (self->triggers, s_string_destroy);
    self->idempotent = strdup (lh_config_str (config, "workflowd/idempotent"));
    self->check = (lh_wfcheck_t) {
        .idempotent = self->idempotent,
        .nodes_max = (size_t) lh_config_int (config, "workflowd/nodes_max"),
        .retries_max = (uint32_t) lh_config_int (config, "workflowd/retries_max"),
        .timeout_max_ms = (uint32_t) lh_config_int (config, "workflowd/node_timeout_max_ms")
    };
    self->node_timeout_ms = (uint32_t) lh_config_int (config, "workflowd/node_timeout_ms");
    self->retry_backoff_ms = (uint32_t) lh_config_int (config, "workflowd/retry_backoff_ms");
    self->definition_max = (size_t) lh_config_int (config, "workflowd/definition_max");
    self->output_max = (size_t) lh_config_int (config, "workflowd/output_max");
    self->runs_max = (size_t) lh_config_int (config, "workflowd/runs_max");
    self->active_max = (size_t) lh_config_int (config, "workflowd/active_max");
    size_t map_bytes = (size_t) lh_config_int (config, "workflowd/map_bytes");
    const char *dir = lh_config_str (config, "workflowd/dir");
    char *store_dir = *dir? strdup (dir): zsys_sprintf ("%s/workflowd", lh_config_str (config, "data/dir"));
    self->store = lh_wfstore_open (store_dir, map_bytes, error);
    if (self->store) {
        s_recover (self);
        lh_wfstore_scan (self->store, LH_WF_DEFS, NULL, 0, s_trigger_one, self);
        self->triggers_changed = true;
        self->wake = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (self->wake < 0)
            *error = "cannot create an eventfd for the runner";
        else
        if (pthread_create (&self->runner, NULL, s_runner, self) != 0)
            *error = "cannot start the runner thread";
        else
            self->runner_started = true;
    }
    if (*error) {
        free (store_dir);
        void *state = self;
        s_state_destroy (&state);
        return NULL;
    }
    lh_info (S_NAME, NULL, "%zu workflows (%zu with a trigger), %zu runs in %s",
             lh_wfstore_count (self->store, LH_WF_DEFS), zhashx_size (self->triggers),
             lh_wfstore_count (self->store, LH_WF_RUNS), store_dir);
    free (store_dir);
    return self;
}


static const lh_op_t s_ops [] = {
    { "workflow_put", s_workflow_put },
    { "workflow_get", s_workflow_get },
    { "workflow_list", s_workflow_list },
    { "workflow_delete", s_workflow_delete },
    { "workflow_run", s_workflow_run },
    { "run_get", s_run_get },
    { "run_list", s_run_list },
    { "stats", s_stats },
    { NULL, NULL }
};

const lh_service_t lh_workflowd_service = {
    .name = "workflowd",
    .ops = s_ops,
    .state_new = s_state_new,
    .state_destroy = s_state_destroy,
    .credit = 1,
    .single_instance = true             //  its store is one LMDB on this host
};


//  --------------------------------------------------------------------------
//  Self test: workflowd on a test bus with echo. Parallel nodes, a
//  failing node and its skipped dependants, audit rows, retries, a
//  timeout, saved workflows, inputs, an event trigger, a restart with a
//  run in flight, and every refusal answered once with nothing written.

#include "lh_testbus.h"
#include "echo.h"

//  A node's field of a run reply
static const msgpack_object *
s_test_node (lh_reply_t *reply, const char *node, const char *field)
{
    return lh_obj_get (lh_obj_get (lh_obj_get (lh_reply_object (reply), "nodes"), node), field);
}

//  A node's status in a run reply, as a fresh string
static char *
s_test_status (lh_reply_t *reply, const char *node)
{
    return lh_obj_strdup (node? s_test_node (reply, node, "status"):
                                lh_obj_get (lh_reply_object (reply), "status"));
}

//  Check a node's status
static void
s_test_expect (lh_reply_t *reply, const char *node, const char *status)
{
    char *got = s_test_status (reply, node);
    if (!got || !streq (got, status)) {
        char *text = lh_testbus_json (reply);
        fprintf (stderr, "%s is %s, wanted %s: %s\n", node? node: "run", got? got: "(none)",
                 status, text);
        zstr_free (&text);
        assert (false);
    }
    zstr_free (&got);
}

//  A node's time field (ms)
static int64_t
s_test_ms (lh_reply_t *reply, const char *node, const char *field)
{
    const msgpack_object *value = s_test_node (reply, node, field);
    assert (value && value->type == MSGPACK_OBJECT_POSITIVE_INTEGER);
    return (int64_t) value->via.u64;
}

//  The audit rows must match the nodes: one per node, same status and
//  times, the output's SHA-256 for those that succeeded
static void
s_test_audit (lh_reply_t *reply, size_t nodes)
{
    const msgpack_object *audit = lh_obj_get (lh_reply_object (reply), "audit");
    assert (audit && audit->type == MSGPACK_OBJECT_ARRAY && audit->via.array.size == nodes);
    for (uint32_t index = 0; index < audit->via.array.size; index++) {
        const msgpack_object *row = &audit->via.array.ptr [index];
        char *node = lh_obj_strdup (lh_obj_get (row, "node"));
        char *status = lh_obj_strdup (lh_obj_get (row, "status"));
        uint64_t seq;
        assert (node && status && lh_obj_uint (row, "seq", &seq) && seq == index + 1);
        char *node_status = lh_obj_strdup (s_test_node (reply, node, "status"));
        assert (node_status && streq (node_status, status));
        int64_t ended = 0;
        assert (lh_obj_int (row, "ended_ms", &ended) && ended == s_test_ms (reply, node, "ended_ms"));
        if (streq (status, "succeeded")) {
            const msgpack_object *output = s_test_node (reply, node, "output");
            lh_pack_t *pack = lh_pack_new ();
            lh_pack_object (pack, output);
            size_t size;
            const void *data = lh_pack_data (pack, &size);
            uint8_t digest [crypto_hash_sha256_BYTES];
            crypto_hash_sha256 (digest, data, size);
            char hex [65];
            sodium_bin2hex (hex, sizeof (hex), digest, sizeof (digest));
            char *sha = lh_obj_strdup (lh_obj_get (row, "output_sha256"));
            char *node_sha = lh_obj_strdup (s_test_node (reply, node, "output_sha256"));
            assert (sha && node_sha && streq (sha, hex) && streq (node_sha, hex));
            zstr_free (&sha);
            zstr_free (&node_sha);
            lh_pack_destroy (&pack);
        }
        else
            assert (lh_obj_get (row, "error"));
        zstr_free (&node_status);
        zstr_free (&status);
        zstr_free (&node);
    }
}

//  Wait (bounded) until a run is no longer running; returns run_get's reply
static lh_reply_t *
s_test_wait (lh_testbus_t *bus, const char *run_id)
{
    char *body = zsys_sprintf ("{\"run_id\": \"%s\"}", run_id);
    int64_t until = zclock_mono () + 15000;
    lh_reply_t *reply = NULL;
    while (true) {
        reply = lh_testbus_call_status (bus, "workflowd", "run_get", body, 200);
        char *status = s_test_status (reply, NULL);
        bool running = streq (status, "running");
        zstr_free (&status);
        if (!running || zclock_mono () > until)
            break;
        lh_reply_destroy (&reply);
        zclock_sleep (20);
    }
    zstr_free (&body);
    return reply;
}

//  The stats and the saved workflows, as text: what a refusal must not change
static char *
s_test_state (lh_testbus_t *bus)
{
    lh_reply_t *reply = lh_testbus_call_status (bus, "workflowd", "stats", NULL, 200);
    uint64_t started = 0, runs = 0, workflows = 0;
    lh_obj_uint (lh_reply_object (reply), "started", &started);
    lh_obj_uint (lh_reply_object (reply), "runs", &runs);
    lh_obj_uint (lh_reply_object (reply), "workflows", &workflows);
    lh_reply_destroy (&reply);
    reply = lh_testbus_call_status (bus, "workflowd", "workflow_list", NULL, 200);
    char *list = lh_testbus_json (reply);
    lh_reply_destroy (&reply);
    char *text = zsys_sprintf ("%" PRIu64 "/%" PRIu64 "/%" PRIu64 " %s", started, runs, workflows, list);
    zstr_free (&list);
    return text;
}

//  A refused request: status, "kind/field", one reply, nothing written
static void
s_test_refused (lh_testbus_t *bus, const char *op, const char *json, uint32_t status,
                const char *error, const char *reason, bool verbose)
{
    char *before = s_test_state (bus);
    lh_reply_t *reply = lh_testbus_call (bus, "workflowd", op, json);
    const msgpack_object *fault = lh_obj_get (lh_reply_object (reply), "error");
    const char *kind = "", *field = "", *text = "";
    size_t kind_size = 0, field_size = 0, text_size = 0;
    lh_obj_str (fault, "kind", &kind, &kind_size);
    lh_obj_str (fault, "field", &field, &field_size);
    lh_obj_str (fault, "reason", &text, &text_size);
    char *got = zsys_sprintf ("%.*s/%.*s", (int) kind_size, kind, (int) field_size, field);
    char *said = zsys_sprintf ("%.*s", (int) text_size, text);
    if (verbose)
        printf ("\n    %s %.50s -> %u %s %.100s", op, json? json: "(none)", lh_reply_status (reply), got, said);
    if (lh_reply_status (reply) != status || !streq (got, error) || (reason && !strstr (said, reason))) {
        char *all = lh_testbus_json (reply);
        fprintf (stderr, "workflowd.%s %.300s: %u %s, wanted %u %s ...%s...\n", op, json? json: "(none)",
                 lh_reply_status (reply), all, status, error, reason? reason: "");
        zstr_free (&all);
        assert (false);
    }
    zstr_free (&got);
    zstr_free (&said);
    lh_reply_destroy (&reply);
    assert (lh_client_recv (lh_testbus_client (bus), &reply, 0) == -1);
    char *after = s_test_state (bus);
    assert (streq (before, after));
    zstr_free (&before);
    zstr_free (&after);
}

void
lh_workflowd_test (bool verbose)
{
    printf (" * workflowd: ");
    lh_testbus_t *bus = lh_testbus_new ("workflowd");
    lh_testbus_set (bus, "acl/actor/publish", "*");     //  the test publishes its triggers
    lh_testbus_set (bus, "workflowd/retry_backoff_ms", "20");
    lh_testbus_set (bus, "workflowd/definition_max", "4096");
    lh_testbus_set (bus, "workflowd/map_bytes", "67108864");
    lh_testbus_set (bus, "actors/echo/credit", "1");
    lh_testbus_start (bus, &lh_echo_service, 4);
    lh_testbus_start (bus, &lh_workflowd_service, 2);

    //  Two independent nodes run together; the third reads both outputs
    int64_t started = zclock_mono ();
    lh_reply_t *reply = lh_testbus_call_status (bus, "workflowd", "workflow_run",
                                                "{\"definition\": {\"name\": \"pair\", "
                                                "\"nodes\": {\"a\": {\"call\": \"echo.sleep\", \"input\": {\"ms\": 300}}, "
                                                "\"b\": {\"call\": \"echo.sleep\", \"input\": {\"ms\": 300}}, "
                                                "\"c\": {\"call\": \"echo.echo\", \"needs\": [\"a\", \"b\"], \"input\": "
                                                "{\"a\": \"${nodes.a.output.slept_ms}\", \"text\": \"b slept ${nodes.b.output.slept_ms} ms\"}}}}}", 200);
    int64_t took = zclock_mono () - started;
    s_test_expect (reply, NULL, "succeeded");
    s_test_expect (reply, "a", "succeeded");
    s_test_expect (reply, "c", "succeeded");
    assert (s_test_ms (reply, "a", "started_ms") < s_test_ms (reply, "b", "ended_ms"));
    assert (s_test_ms (reply, "b", "started_ms") < s_test_ms (reply, "a", "ended_ms"));
    assert (s_test_ms (reply, "c", "started_ms") >= s_test_ms (reply, "a", "ended_ms"));
    if (verbose)
        printf ("\n    a and b in parallel: the run took %" PRId64 " ms", took);
    char *text = lh_testbus_json (reply);
    assert (strstr (text, "\"output\":{\"a\":300,\"text\":\"b slept 300 ms\"}"));
    assert (strstr (text, "\"trigger\":\"call\""));
    zstr_free (&text);
    s_test_audit (reply, 3);
    lh_reply_destroy (&reply);

    //  A failing node: what needs it (directly or not) is skipped, the
    //  other branch finishes, the run fails
    reply = lh_testbus_call_status (bus, "workflowd", "workflow_run",
                                    "{\"definition\": {\"name\": \"broken\", \"nodes\": {"
                                    "\"a\": {\"call\": \"echo.fail\", \"input\": {\"status\": 422, \"reason\": \"bad artifact\"}}, "
                                    "\"b\": {\"call\": \"echo.sleep\", \"input\": {\"ms\": 50}}, "
                                    "\"c\": {\"call\": \"echo.echo\", \"needs\": [\"a\", \"b\"]}, "
                                    "\"d\": {\"call\": \"echo.echo\", \"needs\": [\"c\"]}, "
                                    "\"e\": {\"call\": \"echo.echo\", \"needs\": [\"b\"]}}}}", 200);
    s_test_expect (reply, NULL, "failed");
    s_test_expect (reply, "a", "failed");
    s_test_expect (reply, "b", "succeeded");
    s_test_expect (reply, "c", "skipped");
    s_test_expect (reply, "d", "skipped");
    s_test_expect (reply, "e", "succeeded");
    text = lh_testbus_json (reply);
    assert (strstr (text, "echo.fail answered 422: bad artifact"));
    assert (strstr (text, "not run: it needs 'a', which failed"));
    assert (strstr (text, "not run: it needs 'c', which was skipped"));
    zstr_free (&text);
    s_test_audit (reply, 5);
    lh_reply_destroy (&reply);

    //  Retries on 5xx for an idempotent op (echo.*), with the same
    //  idempotency key; a timeout fails the node
    reply = lh_testbus_call_status (bus, "workflowd", "workflow_run",
                                    "{\"definition\": {\"name\": \"flaky\", \"nodes\": {"
                                    "\"a\": {\"call\": \"echo.fail\", \"retries\": 2, \"input\": {\"status\": 503}}, "
                                    "\"slow\": {\"call\": \"echo.sleep\", \"timeout_ms\": 200, \"input\": {\"ms\": 2000}}}}}", 200);
    s_test_expect (reply, "a", "failed");
    s_test_expect (reply, "slow", "failed");
    assert (s_test_node (reply, "a", "attempts")->via.u64 == 3);
    assert (s_test_ms (reply, "slow", "ended_ms") - s_test_ms (reply, "slow", "started_ms") < 1500);
    text = lh_testbus_json (reply);
    assert (strstr (text, "echo.sleep answered 504"));
    zstr_free (&text);
    lh_reply_destroy (&reply);

    //  Saved workflows: put (201, then 200 and version 2), get, list, run by
    //  name with inputs, YAML text
    char *escaped = zsys_sprintf ("{\"definition\": \"%s\"}", "name: greet\\ninputs: [who]\\nnodes:\\n"
                                  "  hello:\\n    call: echo.echo\\n    input: {greeting: \\\"hello "
                                  "${inputs.who}\\\", who: \\\"${inputs.who}\\\"}\\n");
    reply = lh_testbus_call_status (bus, "workflowd", "workflow_put", escaped, 201);
    text = lh_testbus_json (reply);
    assert (streq (text, "{\"name\":\"greet\",\"version\":1,\"nodes\":[\"hello\"],\"inputs\":[\"who\"]}"));
    zstr_free (&text);
    lh_reply_destroy (&reply);
    reply = lh_testbus_call_status (bus, "workflowd", "workflow_put", escaped, 200);
    text = lh_testbus_json (reply);
    assert (strstr (text, "\"version\":2"));
    zstr_free (&text);
    lh_reply_destroy (&reply);
    zstr_free (&escaped);
    reply = lh_testbus_call_status (bus, "workflowd", "workflow_get", "{\"name\": \"greet\"}", 200);
    text = lh_testbus_json (reply);
    assert (strstr (text, "\"definition\":{\"name\":\"greet\",\"inputs\":[\"who\"]"));
    zstr_free (&text);
    lh_reply_destroy (&reply);
    reply = lh_testbus_call_status (bus, "workflowd", "workflow_run",
                                    "{\"name\": \"greet\", \"inputs\": {\"who\": [1, 2]}}", 200);
    text = lh_testbus_json (reply);
    assert (strstr (text, "\"output\":{\"greeting\":\"hello [1,2]\",\"who\":[1,2]}"));
    zstr_free (&text);
    lh_reply_destroy (&reply);

    //  wait: false answers at once (201, running); run_get follows it
    reply = lh_testbus_call_status (bus, "workflowd", "workflow_run",
                                    "{\"wait\": false, \"definition\": {\"name\": \"later\", "
                                    "\"nodes\": {\"z\": {\"call\": \"echo.sleep\", \"input\": {\"ms\": 200}}}}}", 201);
    s_test_expect (reply, NULL, "running");
    char *run_id = lh_obj_strdup (lh_obj_get (lh_reply_object (reply), "run_id"));
    lh_reply_destroy (&reply);
    reply = s_test_wait (bus, run_id);
    s_test_expect (reply, NULL, "succeeded");
    s_test_audit (reply, 1);
    lh_reply_destroy (&reply);
    //  outputs: false leaves the outputs out
    char *body = zsys_sprintf ("{\"run_id\": \"%s\", \"outputs\": false}", run_id);
    reply = lh_testbus_call_status (bus, "workflowd", "run_get", body, 200);
    assert (!s_test_node (reply, "z", "output") && s_test_node (reply, "z", "output_sha256"));
    lh_reply_destroy (&reply);
    zstr_free (&body);

    //  run_list: newest first, by name, pages
    reply = lh_testbus_call_status (bus, "workflowd", "run_list", "{\"limit\": 2}", 200);
    text = lh_testbus_json (reply);
    char *want = zsys_sprintf ("\"runs\":[{\"run_id\":\"%s\",\"name\":\"later\"", run_id);
    assert (strstr (text, want) && strstr (text, "\"truncated\":true") && strstr (text, "\"next\""));
    zstr_free (&want);
    zstr_free (&text);
    lh_reply_destroy (&reply);
    reply = lh_testbus_call_status (bus, "workflowd", "run_list", "{\"name\": \"pair\"}", 200);
    text = lh_testbus_json (reply);
    assert (strstr (text, "\"count\":1,") && strstr (text, "\"status\":\"succeeded\""));
    zstr_free (&text);
    lh_reply_destroy (&reply);
    reply = lh_testbus_call_status (bus, "workflowd", "run_list", "{\"status\": \"failed\"}", 200);
    text = lh_testbus_json (reply);
    assert (strstr (text, "\"count\":2,"));
    zstr_free (&text);
    lh_reply_destroy (&reply);

    //  An event starts a saved workflow with the event as inputs.event
    reply = lh_testbus_call_status (bus, "workflowd", "workflow_put",
                                    "{\"definition\": {\"name\": \"on-ping\", \"on\": \"test.ping\", "
                                    "\"nodes\": {\"a\": {\"call\": \"echo.echo\", \"input\": "
                                    "{\"name\": \"${inputs.event.body.name}\", \"topic\": \"${inputs.event.topic}\"}}}}}", 201);
    lh_reply_destroy (&reply);
    lh_client_t *publisher = lh_testbus_client_new (bus, "publisher");
    int64_t until = zclock_mono () + 10000;
    text = NULL;
    while (zclock_mono () < until) {
        //  The runner subscribes on its own thread: publish until it hears
        assert (lh_client_publish (publisher, "test.ping.one", "\x81\xa4name\xa7workers", 14) == 0);
        zclock_sleep (50);
        reply = lh_testbus_call_status (bus, "workflowd", "run_list",
                                        "{\"name\": \"on-ping\", \"status\": \"succeeded\"}", 200);
        zstr_free (&text);
        text = lh_testbus_json (reply);
        lh_reply_destroy (&reply);
        if (!strstr (text, "\"count\":0,"))
            break;
    }
    assert (strstr (text, "\"trigger\":\"event\""));
    char *event_run = strstr (text, "\"run_id\":\"");
    assert (event_run);
    body = zsys_sprintf ("{\"run_id\": \"%.26s\"}", event_run + 10);
    reply = lh_testbus_call_status (bus, "workflowd", "run_get", body, 200);
    zstr_free (&text);
    text = lh_testbus_json (reply);
    assert (strstr (text, "\"output\":{\"name\":\"workers\",\"topic\":\"test.ping.one\"}"));
    zstr_free (&text);
    lh_reply_destroy (&reply);
    zstr_free (&body);
    lh_client_destroy (&publisher);
    reply = lh_testbus_call_status (bus, "workflowd", "workflow_delete",
                                    "{\"name\": \"on-ping\"}", 200);
    lh_reply_destroy (&reply);

    //  Every refusal: one reply, the status, kind and field, nothing written
    char *big = (char *) zmalloc (5000);
    memset (big, 'x', 4999);
    char *big_text = zsys_sprintf ("{\"definition\": \"name: %s\"}", big);
    char *big_map = zsys_sprintf ("{\"definition\": {\"name\": \"w\", \"nodes\": {\"a\": {\"call\": "
                                  "\"echo.echo\", \"input\": \"%s\"}}}}", big);
    free (big);
    struct {
        const char *op;                 //  the op
        const char *json;               //  its body (NULL: none)
        uint32_t status;                //  expected status
        const char *error;              //  expected "kind/field"
        const char *reason;             //  expected in the reason, or NULL
    } cases [] = {
        { "workflow_put", NULL,                         400, "bad_field/definition", NULL },
        { "workflow_put", "[]",                         400, "bad_body/", NULL },
        { "workflow_put", "{\"definition\": 5}",        400, "bad_field/definition", NULL },
        { "workflow_put", "{\"definition\": \"\"}",     400, "bad_definition/definition", "empty" },
        { "workflow_put", "{\"definition\": \"a: [1\"}", 400, "bad_definition/definition", "YAML" },
        { "workflow_put", "{\"definition\": \"{\\\"a\\\": \"}", 400, "bad_definition/definition", "JSON" },
        { "workflow_put", "{\"definition\": {\"name\": \"w\", \"nodes\": {\"a\": {\"call\": \"echo.echo\", "
          "\"needs\": [\"b\"]}, \"b\": {\"call\": \"echo.echo\", \"needs\": [\"a\"]}}}}",
                                                        400, "cycle/definition", "a -> b -> a" },
        { "workflow_put", "{\"definition\": {\"name\": \"w\", \"nodes\": {\"a\": {\"call\": \"echo.echo\", "
          "\"needs\": [\"ingest\"]}}}}",                400, "missing_dependency/definition", "'ingest'" },
        { "workflow_put", "{\"definition\": {\"name\": \"w\", \"nodes\": {\"a\": {\"call\": \"nosuchd.get\"}}}}",
                                                        400, "unknown_service/definition", "'nosuchd'" },
        { "workflow_put", "{\"definition\": {\"name\": \"w\", \"nodes\": {\"a\": {\"call\": \"echo.nope\"}}}}",
                                                        400, "unknown_op/definition", "echo.nope" },
        { "workflow_put", "{\"definition\": {\"name\": \"w\", \"nodes\": {\"a\": {\"call\": \"echo.echo\", "
          "\"input\": \"${nodes.x.output}\"}}}}",       400, "unknown_node/definition", "'x'" },
        { "workflow_put", "{\"definition\": {\"name\": \"w\", \"nodes\": {\"a\": {\"call\": "
          "\"workflowd.stats\", \"retries\": 1}}}}",    400, "not_idempotent/definition", "workflowd.stats" },
        { "workflow_put", big_text,                     413, "too_large/definition", "workflowd/definition_max" },
        { "workflow_put", big_map,                      413, "too_large/definition", "workflowd/definition_max" },
        { "workflow_get", "{}",                         400, "bad_field/name", NULL },
        { "workflow_get", "{\"name\": \"\"}",           400, "bad_field/name", NULL },
        { "workflow_get", "{\"name\": \"a b\"}",        400, "bad_field/name", NULL },
        { "workflow_get", "{\"name\": 5}",              400, "bad_field/name", NULL },
        { "workflow_get", "{\"name\": \"nope\"}",       404, "no_such_workflow/name", "'nope'" },
        { "workflow_list", "[1]",                       400, "bad_body/", NULL },
        { "workflow_delete", NULL,                      400, "bad_field/name", NULL },
        { "workflow_delete", "{\"name\": \"nope\"}",    404, "no_such_workflow/name", NULL },
        { "workflow_run", NULL,                         400, "bad_field/name", NULL },
        { "workflow_run", "\"greet\"",                  400, "bad_body/", NULL },
        { "workflow_run", "{\"name\": \"greet\", \"definition\": {}}", 400, "bad_field/definition", "not both" },
        { "workflow_run", "{\"name\": \"nope\"}",       404, "no_such_workflow/name", NULL },
        { "workflow_run", "{\"name\": \"greet\"}",      400, "missing_input/inputs", "inputs.who" },
        { "workflow_run", "{\"name\": \"greet\", \"inputs\": [1]}", 400, "bad_field/inputs", NULL },
        { "workflow_run", "{\"name\": \"greet\", \"inputs\": {\"x\": 1}}", 400, "missing_input/inputs", NULL },
        { "workflow_run", "{\"name\": \"greet\", \"wait\": \"no\"}", 400, "bad_field/wait", NULL },
        { "workflow_run", "{\"definition\": {\"name\": \"w\", \"nodes\": {\"a\": {\"call\": \"echo.echo\", "
          "\"needs\": [\"a\"]}}}}",                     400, "cycle/definition", "a -> a" },
        { "workflow_run", "{\"definition\": {\"name\": \"w\", \"nodes\": {\"a\": {\"call\": \"nosuchd.x\"}}}}",
                                                        400, "unknown_service/definition", "'nosuchd'" },
        { "run_get", "{}",                              400, "bad_field/run_id", NULL },
        { "run_get", "{\"run_id\": \"abc\"}",           400, "bad_field/run_id", NULL },
        { "run_get", "{\"run_id\": 7}",                 400, "bad_field/run_id", NULL },
        { "run_get", "{\"run_id\": \"01ARZ3NDEKTSV4RRFFQ69G5FAV\"}", 404, "no_such_run/run_id", NULL },
        { "run_get", "{\"run_id\": \"01ARZ3NDEKTSV4RRFFQ69G5FAV\", \"outputs\": 1}", 400, "bad_field/outputs", NULL },
        { "run_list", "{\"limit\": 0}",                 400, "bad_field/limit", NULL },
        { "run_list", "{\"limit\": 1001}",              400, "bad_field/limit", NULL },
        { "run_list", "{\"status\": \"done\"}",         400, "bad_field/status", NULL },
        { "run_list", "{\"before\": \"yesterday\"}",    400, "bad_field/before", NULL },
        { "run_list", "{\"name\": 5}",                  400, "bad_field/name", NULL },
        { "stats", "[1]",                               400, "bad_body/", NULL },
    };
    for (size_t index = 0; index < sizeof (cases) / sizeof (cases [0]); index++)
        s_test_refused (bus, cases [index].op, cases [index].json, cases [index].status,
                        cases [index].error, cases [index].reason, verbose);
    zstr_free (&big_text);
    zstr_free (&big_map);

    //  A restart with a run in flight: it is not resumed but failed, each
    //  node with its audit row; saved workflows are still there
    reply = lh_testbus_call_status (bus, "workflowd", "workflow_run",
                                    "{\"wait\": false, \"definition\": {\"name\": \"cut\", "
                                    "\"nodes\": {\"long\": {\"call\": \"echo.sleep\", \"input\": {\"ms\": 3000}}, "
                                    "\"after\": {\"call\": \"echo.echo\", \"needs\": [\"long\"]}}}}", 201);
    zstr_free (&run_id);
    run_id = lh_obj_strdup (lh_obj_get (lh_reply_object (reply), "run_id"));
    lh_reply_destroy (&reply);
    body = zsys_sprintf ("{\"run_id\": \"%s\"}", run_id);
    until = zclock_mono () + 5000;
    while (zclock_mono () < until) {
        reply = lh_testbus_call_status (bus, "workflowd", "run_get", body, 200);
        char *status = lh_obj_strdup (s_test_node (reply, "long", "status"));
        lh_reply_destroy (&reply);
        bool running = streq (status, "running");
        zstr_free (&status);
        if (running)
            break;
        zclock_sleep (10);
    }
    lh_testbus_stop (bus, "workflowd");
    lh_testbus_start (bus, &lh_workflowd_service, 1);
    reply = lh_testbus_call_status (bus, "workflowd", "run_get", body, 200);
    s_test_expect (reply, NULL, "failed");
    s_test_expect (reply, "long", "failed");
    s_test_expect (reply, "after", "skipped");
    text = lh_testbus_json (reply);
    assert (strstr (text, "workflowd stopped while the run was running"));
    zstr_free (&text);
    s_test_audit (reply, 2);
    lh_reply_destroy (&reply);
    zstr_free (&body);
    reply = lh_testbus_call_status (bus, "workflowd", "stats", NULL, 200);
    uint64_t recovered = 0;
    assert (lh_obj_uint (lh_reply_object (reply), "recovered", &recovered) && recovered == 1);
    lh_reply_destroy (&reply);
    reply = lh_testbus_call_status (bus, "workflowd", "workflow_run",
                                    "{\"name\": \"greet\", \"inputs\": {\"who\": \"again\"}}", 200);
    s_test_expect (reply, NULL, "succeeded");
    lh_reply_destroy (&reply);

    zstr_free (&run_id);
    lh_testbus_destroy (&bus);
    printf ("OK\n");
}
