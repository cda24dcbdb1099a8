/*  =========================================================================
    lh_bus_pump - many bus requests in flight for a thread that must not
    block on any of them

    Requests are sent at once on the pump's client and kept by id until
    their REP; PARTs before it are collected. The client handles heart-
    beats, reconnects and deadlines (an expired request gets a synthesized
    504/503 reply from lh_client_recv), so every request sent ends with
    exactly one REP. Everything runs on the owning thread.
    =========================================================================
*/

#include "lh_bus_pump.h"
#include "lh_log.h"
#include "lh_body.h"
#include "lh_config.h"
#include "lh_actor.h"
#include "lh_broker.h"
#include "echo.h"

#define S_DRAIN_MAX     4096            //  messages handled per run

//  One request in flight
typedef struct {
    uint64_t id;                        //  the client's request id (the key)
    lh_bus_pump_done_fn *done;          //  answer callback
    void *arg;                          //  its argument
    zlist_t *parts;                     //  PART bodies received, or NULL
} s_item_t;

struct _lh_bus_pump_t {
    lh_client_t *client;                //  bus client, once given
    zhashx_t *inflight;                 //  &id -> s_item_t
    bool unread;                        //  sent since last read dry: ZMQ_FD unreliable
};


//  --------------------------------------------------------------------------
//  Answer an item and free it

static void
s_item_done (s_item_t **item_p, lh_reply_t *reply)
{
    s_item_t *item = *item_p;
    zlist_t *parts = item->parts;
    item->done (item->arg, reply, parts);
    free (item);
    *item_p = NULL;
}


//  --------------------------------------------------------------------------
//  Create a pump with no client yet

lh_bus_pump_t *
lh_bus_pump_new (void)
{
    lh_bus_pump_t *self = (lh_bus_pump_t *) zmalloc (sizeof (lh_bus_pump_t));
    assert (self);
    self->inflight = zhashx_new ();
    assert (self->inflight);
    zhashx_set_key_hasher (self->inflight, lh_id_hash);
    zhashx_set_key_comparator (self->inflight, lh_id_compare);
    zhashx_set_key_duplicator (self->inflight, NULL);
    zhashx_set_key_destructor (self->inflight, NULL);
    return self;
}


//  --------------------------------------------------------------------------
//  Destroy the pump: pending requests are answered NULL first

void
lh_bus_pump_destroy (lh_bus_pump_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        lh_bus_pump_t *self = *self_p;
        s_item_t *item = (s_item_t *) zhashx_first (self->inflight);
        while (item) {
            zhashx_delete (self->inflight, &item->id);
            s_item_done (&item, NULL);
            item = (s_item_t *) zhashx_first (self->inflight);
        }
        zhashx_destroy (&self->inflight);
        lh_client_destroy (&self->client);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Give the pump its client (taken)

void
lh_bus_pump_set_client (lh_bus_pump_t *self, lh_client_t **client_p)
{
    assert (self && client_p && !self->client);
    self->client = *client_p;
    *client_p = NULL;
    self->unread = true;                //  not read dry on this thread yet
}


//  --------------------------------------------------------------------------
//  True when the pump has a client

bool
lh_bus_pump_ready (lh_bus_pump_t *self)
{
    assert (self);
    return self->client != NULL;
}


//  --------------------------------------------------------------------------
//  Send a request now; returns 0, or -1 if it could not be sent

int
lh_bus_pump_submit (lh_bus_pump_t *self, const char *svc, const char *op,
                    zframe_t **body_p, const lh_call_opts_t *opts,
                    lh_bus_pump_done_fn *done, void *arg)
{
    assert (self && svc && op && done);
    zframe_t *body = body_p? *body_p: NULL;
    uint64_t id = 0;
    if (self->client)
        id = lh_client_send (self->client, svc, op, body? zframe_data (body): NULL,
                             body? zframe_size (body): 0, opts);
    if (body_p)
        zframe_destroy (body_p);
    self->unread = true;                //  a send may take the socket's signal
    if (!id)
        return -1;
    s_item_t *item = (s_item_t *) zmalloc (sizeof (s_item_t));
    assert (item);
    item->id = id;
    item->done = done;
    item->arg = arg;
    zhashx_insert (self->inflight, &item->id, item);
    return 0;
}


//  --------------------------------------------------------------------------
//  The client's socket, to poll; NULL without a client

zsock_t *
lh_bus_pump_sock (lh_bus_pump_t *self)
{
    assert (self);
    return self->client? lh_client_sock (self->client): NULL;
}


//  --------------------------------------------------------------------------
//  Handle one message from the bus: PART kept, REP answered, others dropped

static void
s_on_reply (lh_bus_pump_t *self, lh_reply_t *reply)
{
    lh_type_t type = lh_reply_type (reply);
    uint64_t id = lh_reply_cid (reply);
    s_item_t *item = type == LH_T_PUB? NULL: (s_item_t *) zhashx_lookup (self->inflight, &id);
    if (!item) {
        lh_reply_destroy (&reply);
        return;
    }
    if (type == LH_T_PART) {
        size_t size = 0;
        const void *data = lh_reply_body (reply, &size);
        if (!item->parts)
            item->parts = zlist_new ();
        zlist_append (item->parts, data? zframe_new (data, size): zframe_new_empty ());
        lh_reply_destroy (&reply);
        return;
    }
    zhashx_delete (self->inflight, &id);
    s_item_done (&item, reply);
}


//  --------------------------------------------------------------------------
//  Handle what has arrived; with tick, also housekeeping and deadlines.
//  Reads only when something may be waiting: readable, tick, or a send
//  since the socket was last read dry. Returns the number of messages
//  handled (0: the socket is drained, or nothing could be waiting).

int
lh_bus_pump_run (lh_bus_pump_t *self, bool tick, bool readable)
{
    assert (self);
    if (!self->client || !(tick || readable || self->unread))
        return 0;
    int handled = 0;
    lh_reply_t *reply = NULL;
    //  Housekeeping: lh_client_recv sends heartbeats, notices silence and
    //  expires deadlines; it may also return a message
    if (tick && lh_client_recv (self->client, &reply, 0) == 0) {
        s_on_reply (self, reply);
        handled++;
    }
    while (handled < S_DRAIN_MAX && lh_client_try_recv (self->client, &reply) == 0) {
        s_on_reply (self, reply);
        handled++;
    }
    //  Read dry, unless the batch ended it (then we are called again)
    self->unread = handled >= S_DRAIN_MAX;
    return handled;
}


//  --------------------------------------------------------------------------
//  Requests submitted and not yet done

size_t
lh_bus_pump_pending (lh_bus_pump_t *self)
{
    assert (self);
    return zhashx_size (self->inflight);
}


//  --------------------------------------------------------------------------
//  Self test: 200 requests in flight at once, all answered, and a PART
//  stream collected; destroy answers what is pending

typedef struct {
    int answered;
    int ok;
    int nulls;
    int parts;
} s_test_state_t;

//  --------------------------------------------------------------------------
//  Test done function: count the answers

static void
s_test_done (void *arg, lh_reply_t *reply, zlist_t *parts)
{
    s_test_state_t *state = (s_test_state_t *) arg;
    state->answered++;
    if (!reply)
        state->nulls++;
    else
    if (lh_reply_status (reply) == LH_ST_OK)
        state->ok++;
    lh_reply_destroy (&reply);
    if (parts) {
        zframe_t *part;
        while ((part = (zframe_t *) zlist_pop (parts))) {
            state->parts++;
            zframe_destroy (&part);
        }
        zlist_destroy (&parts);
    }
}

//  --------------------------------------------------------------------------
//  Test: poll and run the pump until state has answered answers (5 s most)

static void
s_test_wait (lh_bus_pump_t *pump, s_test_state_t *state, int answers)
{
    int64_t until = zclock_mono () + 5000;
    while (state->answered < answers && zclock_mono () < until) {
        zmq_pollitem_t items [] = { { zsock_resolve (lh_bus_pump_sock (pump)), 0, ZMQ_POLLIN, 0 } };
        zmq_poll (items, 1, 100);
        lh_bus_pump_run (pump, items [0].revents == 0, items [0].revents != 0);
    }
}

void
lh_bus_pump_test (bool verbose)
{
    printf (" * lh_bus_pump: ");
    s_test_state_t state;
    memset (&state, 0, sizeof (state));

    //  A real broker and echo on inproc
    zactor_t *broker = zactor_new (lh_broker_actor, "pump-test");
    char *status, *detail;
    zsock_send (broker, "ss", "BIND", "inproc://lh-bus-pump-test");
    zsock_recv (broker, "ss", &status, &detail);
    assert (status && streq (status, "0"));
    zstr_free (&status);
    zstr_free (&detail);
    lh_link_t link = { .endpoint = "inproc://lh-bus-pump-test" };
    lh_config_t *config = lh_config_load (NULL, &detail);
    assert (config);
    lh_service_runner_t *echo = lh_service_start (&lh_echo_service, &link, config, 2);
    assert (echo);

    //  No client yet: submit refuses and takes the body
    lh_bus_pump_t *pump = lh_bus_pump_new ();
    assert (!lh_bus_pump_ready (pump));
    assert (lh_bus_pump_sock (pump) == NULL);
    zframe_t *body = zframe_new ("\x80", 1);
    lh_call_opts_t opts = { .timeout_ms = 5000, .queue = true };
    assert (lh_bus_pump_submit (pump, "echo", "echo", &body, &opts, s_test_done, &state) == -1);
    assert (body == NULL);
    lh_bus_pump_run (pump, true, true);     //  harmless without a client

    //  200 requests in flight at once
    lh_client_t *client = lh_client_new (&link, "pump-test");
    assert (client);
    lh_bus_pump_set_client (pump, &client);
    assert (client == NULL && lh_bus_pump_ready (pump));
    int total = 200;
    for (int index = 0; index < total; index++) {
        lh_pack_t *pack = lh_pack_new ();
        lh_pack_map (pack, 1);
        lh_pack_kv_int (pack, "i", index);
        body = lh_pack_frame (&pack);
        assert (lh_bus_pump_submit (pump, "echo", "echo", &body, &opts, s_test_done, &state) == 0);
        assert (body == NULL);
    }
    assert (lh_bus_pump_pending (pump) == (size_t) total);
    s_test_wait (pump, &state, total);
    if (verbose)
        printf ("\n   %d answered, %d ok, %d NULL", state.answered, state.ok, state.nulls);
    assert (state.answered == total && state.ok == total && state.nulls == 0);
    assert (lh_bus_pump_pending (pump) == 0);

    //  PARTs before the REP are collected for done
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 2);
    lh_pack_kv_uint (pack, "n", 3);
    lh_pack_kv_uint (pack, "size", 10);
    body = lh_pack_frame (&pack);
    assert (lh_bus_pump_submit (pump, "echo", "stream", &body, &opts, s_test_done, &state) == 0);
    s_test_wait (pump, &state, total + 1);
    assert (state.ok == total + 1);
    if (verbose)
        printf (", %d parts", state.parts);
    assert (state.parts == 3);

    //  A deadline that passes: the pump answers a 504 on a tick
    pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_uint (pack, "ms", 2000);
    body = lh_pack_frame (&pack);
    lh_call_opts_t quick = { .timeout_ms = 200 };
    assert (lh_bus_pump_submit (pump, "echo", "sleep", &body, &quick, s_test_done, &state) == 0);
    s_test_wait (pump, &state, total + 2);
    assert (state.answered == total + 2 && state.ok == total + 1 && state.nulls == 0);

    //  Destroy answers what is still pending
    pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_uint (pack, "ms", 2000);
    body = lh_pack_frame (&pack);
    assert (lh_bus_pump_submit (pump, "echo", "sleep", &body, &opts, s_test_done, &state) == 0);
    lh_bus_pump_destroy (&pump);
    assert (state.answered == total + 3 && state.nulls == 1);
    lh_service_stop (&echo);
    zactor_destroy (&broker);
    lh_config_destroy (&config);
    printf ("OK\n");
}
