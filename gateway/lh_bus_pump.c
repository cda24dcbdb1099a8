/*  =========================================================================
    lh_bus_pump - a bus thread that keeps many requests in flight for
    threads that must not block

    Submitters append to a queue under a mutex and wake the pump thread
    through an eventfd (written only when the queue went from idle to
    busy). The pump thread sends what is queued, then polls its client's
    socket and the eventfd; replies are matched to requests by id. The
    client handles heartbeats, reconnects and deadlines (an expired request
    gets a synthesized 504/503 reply from lh_client_recv), so every request
    sent ends with exactly one REP.
    =========================================================================
*/

#include "lh_bus_pump.h"
#include "lh_log.h"
#include "lh_body.h"
#include "lh_config.h"
#include "lh_actor.h"
#include "lh_broker.h"
#include "echo.h"
#include <pthread.h>
#include <sys/eventfd.h>
#include <inttypes.h>

#define S_TICK_MS       100             //  client housekeeping period
#define S_RETRY_MS      500             //  between attempts to reach the broker
#define S_DRAIN_MAX     4096            //  messages handled per wake-up

//  One submitted request
typedef struct _s_item_t s_item_t;
struct _s_item_t {
    s_item_t *next;                     //  queue link
    char svc [LH_NAME_MAX + 1];         //  service
    char op [LH_NAME_MAX + 1];          //  op
    zframe_t *body;                     //  msgpack body, or NULL
    lh_call_opts_t opts;                //  options (trace, idem point below)
    char trace [LH_TRACE_SIZE + 1];     //  trace id, or ""
    char *idem;                         //  idempotency key, or NULL
    lh_bus_pump_done_fn *done;          //  answer callback
    void *arg;                          //  its argument
    zlist_t *parts;                     //  PART bodies received, or NULL
};

struct _lh_bus_pump_t {
    lh_link_t link;                     //  how to reach the broker
    char *endpoint;                     //  copy of link.endpoint
    char *server_key;                   //  copy of link.server_key
    char *name;                         //  client name
    pthread_t thread;                   //  the pump thread
    pthread_mutex_t lock;               //  guards the fields below
    s_item_t *head;                     //  queued, not yet sent
    s_item_t *tail;
    bool stopping;                      //  destroy has begun
    bool signalled;                     //  wake_fd written since the last take
    int wake_fd;                        //  eventfd
    size_t pending;                     //  submitted, not yet done (atomic)
    //  Pump thread only
    lh_client_t *client;                //  bus client, once connected
    zhashx_t *inflight;                 //  "id" -> s_item_t
    int64_t next_connect;               //  zclock_mono of the next attempt
};


//  --------------------------------------------------------------------------
//  Free an item's own data (not the parts handed to done)

static void
s_item_destroy (s_item_t **item_p)
{
    if (*item_p) {
        s_item_t *item = *item_p;
        zframe_destroy (&item->body);
        if (item->parts) {
            zframe_t *part;
            while ((part = (zframe_t *) zlist_pop (item->parts)))
                zframe_destroy (&part);
            zlist_destroy (&item->parts);
        }
        free (item->idem);
        free (item);
        *item_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Answer an item and free it

static void
s_item_done (lh_bus_pump_t *self, s_item_t **item_p, lh_reply_t *reply)
{
    s_item_t *item = *item_p;
    zlist_t *parts = item->parts;
    item->parts = NULL;
    __atomic_sub_fetch (&self->pending, 1, __ATOMIC_RELAXED);
    item->done (item->arg, reply, parts);
    s_item_destroy (item_p);
}


//  --------------------------------------------------------------------------
//  Send one item, or answer it NULL if it cannot be sent

static void
s_item_send (lh_bus_pump_t *self, s_item_t *item)
{
    uint64_t id = 0;
    if (self->client) {
        item->opts.trace = *item->trace? item->trace: NULL;
        item->opts.idem = item->idem;
        id = lh_client_send (self->client, item->svc, item->op,
                             item->body? zframe_data (item->body): NULL,
                             item->body? zframe_size (item->body): 0, &item->opts);
    }
    zframe_destroy (&item->body);
    if (!id) {
        s_item_done (self, &item, NULL);
        return;
    }
    char key [24];
    snprintf (key, sizeof (key), "%" PRIu64, id);
    zhashx_insert (self->inflight, key, item);
}


//  --------------------------------------------------------------------------
//  Handle a message from the bus: PART kept, REP answered, others dropped

static void
s_on_reply (lh_bus_pump_t *self, lh_reply_t *reply)
{
    lh_type_t type = lh_reply_type (reply);
    char key [24];
    snprintf (key, sizeof (key), "%" PRIu64, lh_reply_cid (reply));
    s_item_t *item = type == LH_T_PUB? NULL: (s_item_t *) zhashx_lookup (self->inflight, key);
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
    zhashx_delete (self->inflight, key);
    s_item_done (self, &item, reply);
}


//  --------------------------------------------------------------------------
//  Take the queue (under the lock); returns its head

static s_item_t *
s_take (lh_bus_pump_t *self, bool *stopping)
{
    pthread_mutex_lock (&self->lock);
    s_item_t *head = self->head;
    self->head = self->tail = NULL;
    self->signalled = false;
    *stopping = self->stopping;
    pthread_mutex_unlock (&self->lock);
    return head;
}


//  --------------------------------------------------------------------------
//  The pump thread

static void *
s_pump_thread (void *arg)
{
    lh_bus_pump_t *self = (lh_bus_pump_t *) arg;
    int64_t next_tick = zclock_mono () + S_TICK_MS;
    while (true) {
        bool stopping;
        s_item_t *item = s_take (self, &stopping);
        if (!self->client && !stopping && item && zclock_mono () >= self->next_connect) {
            self->client = lh_client_new (&self->link, self->name);
            if (!self->client)
                self->next_connect = zclock_mono () + S_RETRY_MS;
        }
        while (item) {
            s_item_t *next = item->next;
            if (stopping)
                s_item_done (self, &item, NULL);
            else
                s_item_send (self, item);
            item = next;
        }
        if (stopping)
            break;

        zsock_t *sock = self->client? lh_client_sock (self->client): NULL;
        zmq_pollitem_t items [2] = {
            { NULL, self->wake_fd, ZMQ_POLLIN, 0 },
            { sock? zsock_resolve (sock): NULL, 0, ZMQ_POLLIN, 0 }
        };
        int64_t wait = next_tick - zclock_mono ();
        zmq_poll (items, sock? 2: 1, wait > 0? (long) wait: 0);
        if (items [0].revents & ZMQ_POLLIN) {
            uint64_t value;
            ssize_t got = read (self->wake_fd, &value, sizeof (value));
            (void) got;                 //  EAGAIN: nothing to clear
        }
        if (!self->client)
            continue;
        bool tick = zclock_mono () >= next_tick;
        if (tick)
            next_tick = zclock_mono () + S_TICK_MS;
        for (int round = 0; round < S_DRAIN_MAX; round++) {
            sock = lh_client_sock (self->client);
            bool ready = sock && (zsock_events (sock) & ZMQ_POLLIN);
            if (!ready && !tick)
                break;
            tick = false;
            lh_reply_t *reply = NULL;
            if (lh_client_recv (self->client, &reply, 1) != 0)
                break;
            s_on_reply (self, reply);
        }
    }
    //  Stopping: answer what is still in flight
    s_item_t *item = (s_item_t *) zhashx_first (self->inflight);
    while (item) {
        const char *key = (const char *) zhashx_cursor (self->inflight);
        char copy [24];
        snprintf (copy, sizeof (copy), "%s", key);
        zhashx_delete (self->inflight, copy);
        s_item_done (self, &item, NULL);
        item = (s_item_t *) zhashx_first (self->inflight);
    }
    lh_client_destroy (&self->client);
    return NULL;
}


//  --------------------------------------------------------------------------
//  Start a pump

lh_bus_pump_t *
lh_bus_pump_new (const lh_link_t *link, const char *name)
{
    assert (link && name);
    lh_bus_pump_t *self = (lh_bus_pump_t *) zmalloc (sizeof (lh_bus_pump_t));
    assert (self);
    self->endpoint = strdup (link->endpoint? link->endpoint: "");
    self->server_key = link->server_key? strdup (link->server_key): NULL;
    self->link.endpoint = self->endpoint;
    self->link.server_key = self->server_key;
    self->link.cert = link->cert;
    self->name = strdup (name);
    self->wake_fd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
    assert (self->wake_fd >= 0);
    self->inflight = zhashx_new ();
    pthread_mutex_init (&self->lock, NULL);
    int rc = pthread_create (&self->thread, NULL, s_pump_thread, self);
    assert (rc == 0);
    return self;
}


//  --------------------------------------------------------------------------
//  Stop the pump; pending requests are answered NULL

void
lh_bus_pump_destroy (lh_bus_pump_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        lh_bus_pump_t *self = *self_p;
        pthread_mutex_lock (&self->lock);
        self->stopping = true;
        pthread_mutex_unlock (&self->lock);
        uint64_t one = 1;
        if (write (self->wake_fd, &one, sizeof (one)) < 0)
            lh_warn ("pump", NULL, "cannot wake the pump thread: %s", strerror (errno));
        pthread_join (self->thread, NULL);
        close (self->wake_fd);
        zhashx_destroy (&self->inflight);
        pthread_mutex_destroy (&self->lock);
        free (self->endpoint);
        free (self->server_key);
        free (self->name);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Submit a request; returns 0, or -1 if the pump is stopping

int
lh_bus_pump_submit (lh_bus_pump_t *self, const char *svc, const char *op,
                    zframe_t **body_p, const lh_call_opts_t *opts,
                    lh_bus_pump_done_fn *done, void *arg)
{
    assert (self && svc && op && done);
    s_item_t *item = (s_item_t *) zmalloc (sizeof (s_item_t));
    assert (item);
    snprintf (item->svc, sizeof (item->svc), "%s", svc);
    snprintf (item->op, sizeof (item->op), "%s", op);
    if (body_p) {
        item->body = *body_p;
        *body_p = NULL;
    }
    if (opts) {
        item->opts = *opts;
        if (opts->trace)
            snprintf (item->trace, sizeof (item->trace), "%s", opts->trace);
        if (opts->idem)
            item->idem = strdup (opts->idem);
    }
    item->done = done;
    item->arg = arg;

    pthread_mutex_lock (&self->lock);
    if (self->stopping) {
        pthread_mutex_unlock (&self->lock);
        s_item_destroy (&item);
        return -1;
    }
    if (self->tail)
        self->tail->next = item;
    else
        self->head = item;
    self->tail = item;
    bool wake = !self->signalled;
    self->signalled = true;
    __atomic_add_fetch (&self->pending, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock (&self->lock);
    if (wake) {
        uint64_t one = 1;
        if (write (self->wake_fd, &one, sizeof (one)) < 0)
            lh_warn ("pump", NULL, "cannot wake the pump thread: %s", strerror (errno));
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Requests submitted and not yet done

size_t
lh_bus_pump_pending (lh_bus_pump_t *self)
{
    assert (self);
    return __atomic_load_n (&self->pending, __ATOMIC_RELAXED);
}


//  --------------------------------------------------------------------------
//  Self test: 200 requests in flight at once, all answered; destroy
//  answers what is pending

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int answered;
    int ok;
    int nulls;
} s_test_state_t;

//  --------------------------------------------------------------------------
//  Test done function: count the answers

static void
s_test_done (void *arg, lh_reply_t *reply, zlist_t *parts)
{
    s_test_state_t *state = (s_test_state_t *) arg;
    pthread_mutex_lock (&state->lock);
    state->answered++;
    if (!reply)
        state->nulls++;
    else
    if (lh_reply_status (reply) == LH_ST_OK)
        state->ok++;
    pthread_cond_signal (&state->cond);
    pthread_mutex_unlock (&state->lock);
    lh_reply_destroy (&reply);
    if (parts) {
        zframe_t *part;
        while ((part = (zframe_t *) zlist_pop (parts)))
            zframe_destroy (&part);
        zlist_destroy (&parts);
    }
}

void
lh_bus_pump_test (bool verbose)
{
    printf (" * lh_bus_pump: ");
    s_test_state_t state;
    memset (&state, 0, sizeof (state));
    pthread_mutex_init (&state.lock, NULL);
    pthread_cond_init (&state.cond, NULL);

    //  A real broker and echo on inproc: 200 requests in flight at once
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
    lh_bus_pump_t *pump = lh_bus_pump_new (&link, "pump-test");
    lh_call_opts_t opts = { .timeout_ms = 5000, .queue = true };
    int total = 200;
    for (int index = 0; index < total; index++) {
        lh_pack_t *pack = lh_pack_new ();
        lh_pack_map (pack, 1);
        lh_pack_kv_int (pack, "i", index);
        zframe_t *body = lh_pack_frame (&pack);
        assert (lh_bus_pump_submit (pump, "echo", "echo", &body, &opts, s_test_done, &state) == 0);
        assert (body == NULL);
    }
    pthread_mutex_lock (&state.lock);
    while (state.answered < total)
        pthread_cond_wait (&state.cond, &state.lock);
    pthread_mutex_unlock (&state.lock);
    if (verbose)
        printf ("\n   %d answered, %d ok, %d NULL", state.answered, state.ok, state.nulls);
    assert (state.ok == total);
    assert (lh_bus_pump_pending (pump) == 0);

    //  Destroy answers what is still pending (a slow request)
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_uint (pack, "ms", 2000);
    zframe_t *body = lh_pack_frame (&pack);
    assert (lh_bus_pump_submit (pump, "echo", "sleep", &body, &opts, s_test_done, &state) == 0);
    lh_bus_pump_destroy (&pump);
    assert (state.answered == total + 1);
    lh_service_stop (&echo);
    zactor_destroy (&broker);
    lh_config_destroy (&config);
    pthread_mutex_destroy (&state.lock);
    pthread_cond_destroy (&state.cond);
    printf ("OK\n");
}
