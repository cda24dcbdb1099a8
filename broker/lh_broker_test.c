/*  =========================================================================
    lh_broker_test - the broker's selftest: drives a real broker actor over
    inproc with raw DEALER peers (part of the broker, see
    lh_broker_internal.h)
    =========================================================================
*/

#include "lh_broker_internal.h"
#include "lh_tap.h"

//  --------------------------------------------------------------------------
//  Self test: drive the broker over inproc with raw DEALER peers

#define T_ENDPOINT      "inproc://lh-broker-test"
#define T_TAP           "inproc://lh-broker-test-tap"
#define T_WAIT          2000            //  ms, longest wait for a message
#define T_LIVE_MAX      32

//  Peers the test keeps alive by heartbeating while it waits
static zsock_t *s_test_live [T_LIVE_MAX];
static uint64_t s_test_next_id = 1;


//  --------------------------------------------------------------------------
//  Add a peer to (or remove it from) the peers kept alive

static void
s_test_keep_alive (zsock_t *peer, bool alive)
{
    for (size_t index = 0; index < T_LIVE_MAX; index++) {
        if (alive && !s_test_live [index]) {
            s_test_live [index] = peer;
            return;
        }
        if (!alive && s_test_live [index] == peer) {
            s_test_live [index] = NULL;
            return;
        }
    }
}


//  --------------------------------------------------------------------------
//  Send a header (and a body, taken) from a test peer; sends never block,
//  so wait for room when the peer's queue is (or looks) full

static void
s_test_send (zsock_t *peer, lh_header_t *header, zframe_t *body)
{
    header->has |= LH_H_T;
    int64_t until = zclock_mono () + T_WAIT;
    while (lh_msg_send (peer, NULL, header, &body) == -1) {
        assert (errno == EAGAIN && zclock_mono () < until);
        zmq_pollitem_t item = { zsock_resolve (peer), 0, ZMQ_POLLOUT, 0 };
        zmq_poll (&item, 1, 10);
    }
}


//  --------------------------------------------------------------------------
//  Send HB from every live test peer

static void
s_test_heartbeat_all (void)
{
    for (size_t index = 0; index < T_LIVE_MAX; index++) {
        if (s_test_live [index]) {
            lh_header_t header;
            lh_header_init (&header, LH_T_HB);
            lh_msg_send (s_test_live [index], NULL, &header, NULL);
        }
    }
}


//  --------------------------------------------------------------------------
//  Wait up to timeout ms for a message other than HB; heartbeats the live
//  peers meanwhile. Returns true with msg filled, false on timeout.

static bool
s_test_recv (zsock_t *peer, lh_msg_t *msg, int timeout)
{
    int64_t until = zclock_mono () + timeout;
    int64_t next_hb = 0;
    while (true) {
        int64_t now = zclock_mono ();
        if (now >= next_hb) {
            s_test_heartbeat_all ();
            next_hb = now + 30;
        }
        if (now >= until)
            return false;
        zmq_pollitem_t item = { zsock_resolve (peer), 0, ZMQ_POLLIN, 0 };
        int64_t wait = (next_hb < until? next_hb: until) - now;
        if (zmq_poll (&item, 1, (long) wait) > 0) {
            int rc = lh_msg_recv (msg, peer, false, S_MAX_MSG);
            assert (rc == 0);
            if (msg->header.t != LH_T_HB)
                return true;
            lh_msg_reset (msg);
        }
    }
}


//  --------------------------------------------------------------------------
//  A msgpack string body

static zframe_t *
s_test_body (const char *text)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_str_with_body (&packer, text, strlen (text));
    zframe_t *frame = zframe_new (buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
    return frame;
}


//  --------------------------------------------------------------------------
//  Does the message's body hold this text (a string we know is in it)?

static bool
s_test_body_has (lh_msg_t *msg, const char *text)
{
    return msg->body
        && memmem (zframe_data (msg->body), zframe_size (msg->body), text, strlen (text));
}


//  --------------------------------------------------------------------------
//  Connect a peer at endpoint (routing id identity, or the socket's own)
//  and say HELLO; returns the first answer in msg

static zsock_t *
s_test_hello (const char *endpoint, const char *identity, const char *name, lh_msg_t *msg)
{
    zsock_t *peer = zsock_new (ZMQ_DEALER);
    assert (peer);
    if (identity)
        zsock_set_identity (peer, identity);
    int rc = zsock_connect (peer, "%s", endpoint);
    assert (rc == 0);
    lh_header_t header;
    lh_header_init (&header, LH_T_HELLO);
    header.id = s_test_next_id++;
    header.has |= LH_H_ID;
    lh_header_set_str (&header, LH_H_NAME, name);
    s_test_send (peer, &header, NULL);
    bool got = s_test_recv (peer, msg, T_WAIT);
    assert (got);
    return peer;
}


//  --------------------------------------------------------------------------
//  A grant for role from the broker (GRANT), caller frees

static char *
s_test_grant (zactor_t *broker, const char *role)
{
    zstr_sendx (broker, "GRANT", role, NULL);
    char *status, *grant;
    int rc = zsock_recv (broker, "ss", &status, &grant);
    assert (rc == 0 && streq (status, "0") && strlen (grant) == 32);
    zstr_free (&status);
    return grant;
}


//  --------------------------------------------------------------------------
//  Connect a peer with a grant (its routing id: the grant, ".", a nonce)
//  and check it is welcomed

static zsock_t *
s_test_peer_as (const char *name, const char *grant)
{
    char identity [64];
    snprintf (identity, sizeof identity, "%s.%016" PRIx64, grant, s_test_next_id++);
    lh_msg_t msg;
    zsock_t *peer = s_test_hello (T_ENDPOINT, identity, name, &msg);
    assert (msg.header.t == LH_T_WELCOME);
    lh_msg_reset (&msg);
    s_test_keep_alive (peer, true);
    return peer;
}


//  --------------------------------------------------------------------------
//  Connect a peer and say HELLO; checks the WELCOME

static zsock_t *
s_test_peer (const char *name)
{
    zsock_t *peer = zsock_new_dealer (T_ENDPOINT);
    assert (peer);
    lh_header_t header;
    lh_header_init (&header, LH_T_HELLO);
    header.id = s_test_next_id++;
    header.has |= LH_H_ID;
    lh_header_set_str (&header, LH_H_NAME, name);
    s_test_send (peer, &header, NULL);
    lh_msg_t msg;
    bool got = s_test_recv (peer, &msg, T_WAIT);
    assert (got);
    assert (msg.header.t == LH_T_WELCOME);
    assert (msg.header.hb_ivl == 100);
    assert (msg.header.hb_live == 8);
    assert (msg.header.max_msg == S_MAX_MSG);
    lh_msg_reset (&msg);
    s_test_keep_alive (peer, true);
    return peer;
}


//  --------------------------------------------------------------------------
//  Send a REQ; returns its id

static uint64_t
s_test_request (zsock_t *peer, const char *svc, const char *op, uint64_t dl,
                const char *idem, bool queue, const char *body)
{
    lh_header_t header;
    lh_header_init (&header, LH_T_REQ);
    header.id = s_test_next_id++;
    header.has |= LH_H_ID;
    lh_header_set_str (&header, LH_H_SVC, svc);
    lh_header_set_str (&header, LH_H_OP, op);
    if (dl) {
        header.dl = dl;
        header.has |= LH_H_DL;
    }
    if (idem)
        lh_header_set_str (&header, LH_H_IDEM, idem);
    if (queue) {
        header.q = true;
        header.has |= LH_H_Q;
    }
    s_test_send (peer, &header, body? s_test_body (body): NULL);
    return header.id;
}


//  --------------------------------------------------------------------------
//  Wait for a REP (or PART) answering cid with status; checks the body
//  holds text if given

static void
s_test_expect_reply (zsock_t *peer, lh_type_t type, uint64_t cid, uint32_t status,
                     const char *text)
{
    lh_msg_t msg;
    bool got = s_test_recv (peer, &msg, T_WAIT);
    assert (got);
    assert (msg.header.t == type);
    assert (msg.header.cid == cid);
    if (type == LH_T_REP)
        assert (msg.header.st == status);
    if (text)
        assert (s_test_body_has (&msg, text));
    lh_msg_reset (&msg);
}


//  --------------------------------------------------------------------------
//  Answer a request a worker received

static void
s_test_answer (zsock_t *worker, lh_type_t type, uint64_t id, uint32_t status, const char *body)
{
    lh_header_t header;
    lh_header_init (&header, type);
    header.cid = id;
    header.has |= LH_H_CID;
    if (type == LH_T_REP) {
        header.st = status;
        header.has |= LH_H_ST;
    }
    s_test_send (worker, &header, body? s_test_body (body): NULL);
}


//  --------------------------------------------------------------------------
//  Wait for a REQ on a worker; returns its (broker) id, fills att/src

static uint64_t
s_test_expect_request (zsock_t *worker, const char *op, uint32_t *att)
{
    lh_msg_t msg;
    bool got = s_test_recv (worker, &msg, T_WAIT);
    assert (got);
    assert (msg.header.t == LH_T_REQ);
    if (op)
        assert (streq (msg.header.op, op));
    if (att)
        *att = msg.header.att;
    uint64_t id = msg.header.id;
    lh_msg_reset (&msg);
    return id;
}


//  --------------------------------------------------------------------------
//  Nothing but heartbeats arrives for timeout ms

static void
s_test_expect_nothing (zsock_t *peer, int timeout)
{
    lh_msg_t msg;
    bool got = s_test_recv (peer, &msg, timeout);
    assert (!got);
}


//  --------------------------------------------------------------------------
//  A one-line sync: a broker.ping round trip, so everything the peer sent
//  before has been processed

static void
s_test_sync (zsock_t *peer)
{
    uint64_t id = s_test_request (peer, "broker", "ping", 0, NULL, false, NULL);
    s_test_expect_reply (peer, LH_T_REP, id, LH_ST_OK, "pong");
}


//  --------------------------------------------------------------------------
//  Connect a worker for svc with ops and credit; synced unless requests
//  are waiting for it (they would arrive before the sync's reply)

static zsock_t *
s_test_worker (const char *name, const char *svc, const char *ops, uint32_t credit,
               bool sync)
{
    zsock_t *worker = s_test_peer (name);
    lh_header_t header;
    lh_header_init (&header, LH_T_READY);
    lh_header_set_str (&header, LH_H_SVC, svc);
    if (ops)
        lh_header_set_str (&header, LH_H_OPS, ops);
    header.credit = credit;
    header.has |= LH_H_CREDIT;
    s_test_send (worker, &header, NULL);
    if (sync)
        s_test_sync (worker);
    return worker;
}


//  --------------------------------------------------------------------------
//  A counter from the STATS pipe command: "dropped.late_reply", etc.

static int64_t
s_test_stat (zactor_t *broker, const char *group, const char *name)
{
    zstr_send (broker, "STATS");
    char *status, *detail;
    int rc = zsock_recv (broker, "ss", &status, &detail);
    assert (rc == 0 && streq (status, "0"));
    json_t *stats = json_loads (detail, 0, NULL);
    assert (stats);
    json_t *value = json_object_get (group? json_object_get (stats, group): stats, name);
    int64_t result = json_is_integer (value)? json_integer_value (value): -1;
    json_decref (stats);
    zstr_free (&status);
    zstr_free (&detail);
    return result;
}


//  --------------------------------------------------------------------------
//  CONFIGURE a setting; returns the status answered

static bool
s_test_configure (zactor_t *broker, const char *key, const char *value)
{
    zstr_sendx (broker, "CONFIGURE", key, value, NULL);
    char *status, *detail;
    int rc = zsock_recv (broker, "ss", &status, &detail);
    assert (rc == 0);
    bool ok = streq (status, "0");
    zstr_free (&status);
    zstr_free (&detail);
    return ok;
}


//  --------------------------------------------------------------------------
//  Wait until a counter reaches a value (the messages that move it may
//  still be on their way from another socket)

static void
s_test_stat_wait (zactor_t *broker, zsock_t *peer, const char *group,
                  const char *name, int64_t value)
{
    int64_t until = zclock_mono () + T_WAIT;
    while (s_test_stat (broker, group, name) != value) {
        assert (zclock_mono () < until);
        s_test_sync (peer);
    }
}


//  --------------------------------------------------------------------------
//  Close a test peer

static void
s_test_destroy (zsock_t **peer_p)
{
    s_test_keep_alive (*peer_p, false);
    zsock_destroy (peer_p);
}


//  --------------------------------------------------------------------------
//  Self test of this class

void
lh_broker_test (bool verbose)
{
    printf (" * lh_broker: ");
    int64_t started = zclock_mono ();

    //  Latency histogram maps values to buckets monotonically
    assert (lh_broker_latency_bucket (0) == 0);
    assert (lh_broker_latency_bucket (7) == 7);
    assert (lh_broker_latency_bucket (8) == 8);
    assert (lh_broker_latency_bucket (1000) < lh_broker_latency_bucket (1200));
    uint64_t middle = lh_broker_latency_value (lh_broker_latency_bucket (1000));
    assert (middle > 900 && middle < 1100);
    assert (lh_broker_ops_accept ("get,put", "put") && !lh_broker_ops_accept ("get,put", "pu"));
    assert (lh_broker_ops_valid ("a,b.c") && !lh_broker_ops_valid ("a,,b") && !lh_broker_ops_valid ("a b"));

    zactor_t *broker = zactor_new (lh_broker_actor, "lakehouse");
    assert (broker);
    if (verbose) {
        zstr_send (broker, "VERBOSE");
        char *status, *detail;
        zsock_recv (broker, "ss", &status, &detail);
        zstr_free (&status);
        zstr_free (&detail);
    }
    const char *settings [][2] = {
        { "hb_ivl", "100" }, { "hb_live", "8" }, { "queue_max", "3" },
        { "retry_after_ms", "50" }, { "sub_queue", "5" }, { "acl/actor/publish", "news." }
    };
    for (size_t index = 0; index < sizeof settings / sizeof settings [0]; index++)
        assert (s_test_configure (broker, settings [index][0], settings [index][1]));
    assert (!s_test_configure (broker, "hb_ivl", "soon"));
    assert (!s_test_configure (broker, "no_such_key", "1"));
    assert (!s_test_configure (broker, "acl/nobody/call", "*"));
    assert (!s_test_configure (broker, "acl/client/call", "bad!name"));
    assert (!s_test_configure (broker, "plain_role", "root"));
    assert (!s_test_configure (broker, "plain_role", ""));
    const char *binds [][2] = { { "BIND", T_ENDPOINT }, { "TAP", T_TAP } };
    for (size_t index = 0; index < 2; index++) {
        zsock_send (broker, "ss", binds [index][0], binds [index][1]);
        char *status, *detail;
        zsock_recv (broker, "ss", &status, &detail);
        assert (streq (status, "0"));
        assert (streq (detail, binds [index][1]));
        zstr_free (&status);
        zstr_free (&detail);
    }
    lh_msg_t msg;

    //  A peer that never said HELLO gets BYE 400 hello_first, cid = its id
    zsock_t *stranger = zsock_new_dealer (T_ENDPOINT);
    uint64_t id = s_test_request (stranger, "echo", "echo", 0, NULL, false, NULL);
    assert (s_test_recv (stranger, &msg, T_WAIT));
    assert (msg.header.t == LH_T_BYE && msg.header.st == 400 && msg.header.cid == id);
    assert (s_test_body_has (&msg, "hello_first"));
    lh_msg_reset (&msg);

    //  Malformed messages are dropped and counted: bad signature, unknown
    //  t, a REQ without id, a WELCOME from a peer
    zmsg_t *junk = zmsg_new ();
    zmsg_addstr (junk, "LHB0");
    zmsg_addstr (junk, "x");
    zmsg_send (&junk, stranger);
    junk = zmsg_new ();
    zmsg_addstr (junk, "LHB1");
    zmsg_addmem (junk, "\x81\xa1t\xa3" "FOO", 6);
    zmsg_send (&junk, stranger);
    zsock_t *client = s_test_peer ("client");
    {
        lh_header_t header;
        lh_header_init (&header, LH_T_REQ);
        lh_header_set_str (&header, LH_H_SVC, "broker");
        lh_header_set_str (&header, LH_H_OP, "ping");
        s_test_send (client, &header, NULL);
        lh_header_init (&header, LH_T_WELCOME);
        s_test_send (client, &header, NULL);
    }
    s_test_sync (client);
    s_test_stat_wait (broker, client, "dropped", "malformed", 4);
    zsock_destroy (&stranger);

    //  Unknown service -> 404; bad names -> 400
    id = s_test_request (client, "nosuch", "op", 0, NULL, false, NULL);
    s_test_expect_reply (client, LH_T_REP, id, 404, "no_such_service");
    id = s_test_request (client, "bad name", "op", 0, NULL, false, NULL);
    s_test_expect_reply (client, LH_T_REP, id, 400, "bad_request");

    //  Request and reply through a worker: ids rewritten and mapped back,
    //  stamps set by the broker whatever the client sent
    zsock_t *tap = zsock_new_sub (T_TAP, "");
    assert (tap);
    zsock_t *w1 = s_test_worker ("w1", "echo", "echo,slow", 1, true);
    {
        lh_header_t header;
        lh_header_init (&header, LH_T_REQ);
        header.id = 777;
        header.has |= LH_H_ID;
        lh_header_set_str (&header, LH_H_SVC, "echo");
        lh_header_set_str (&header, LH_H_OP, "echo");
        lh_header_set_str (&header, LH_H_SRC, "forged");
        lh_header_set_str (&header, LH_H_UID, "forged-key");
        header.bseq = 999999;
        header.att = 7;
        header.has |= LH_H_BSEQ | LH_H_ATT;
        s_test_send (client, &header, s_test_body ("hello"));
    }
    assert (s_test_recv (w1, &msg, T_WAIT));
    assert (msg.header.t == LH_T_REQ);
    assert (streq (msg.header.src, "client"));
    assert (!(msg.header.has & LH_H_UID));
    assert (msg.header.att == 1);
    assert (msg.header.bseq < 999999);
    assert (msg.header.dl > 4000 && msg.header.dl <= 5000);
    assert (msg.header.id != 777);
    assert (s_test_body_has (&msg, "hello"));
    uint64_t key = msg.header.id;
    lh_msg_reset (&msg);
    {
        lh_header_t header;
        lh_header_init (&header, LH_T_REP);
        header.cid = key;
        header.st = 200;
        header.has |= LH_H_CID | LH_H_ST;
        lh_header_set_str (&header, LH_H_SRC, "someone-else");
        s_test_send (w1, &header, s_test_body ("hello back"));
    }
    assert (s_test_recv (client, &msg, T_WAIT));
    assert (msg.header.t == LH_T_REP && msg.header.cid == 777 && msg.header.st == 200);
    assert (streq (msg.header.src, "w1"));
    assert (s_test_body_has (&msg, "hello back"));
    lh_msg_reset (&msg);

    //  An op the worker does not offer -> 404 no_such_op
    id = s_test_request (client, "echo", "nope", 0, NULL, false, NULL);
    s_test_expect_reply (client, LH_T_REP, id, 404, "no_such_op");

    //  PART streaming: two PARTs then the REP, in order, cid mapped
    id = s_test_request (client, "echo", "echo", 0, NULL, false, NULL);
    key = s_test_expect_request (w1, "echo", NULL);
    s_test_answer (w1, LH_T_PART, key, 0, "part one");
    s_test_answer (w1, LH_T_PART, key, 0, "part two");
    s_test_answer (w1, LH_T_REP, key, 200, "the end");
    s_test_expect_reply (client, LH_T_PART, id, 0, "part one");
    s_test_expect_reply (client, LH_T_PART, id, 0, "part two");
    s_test_expect_reply (client, LH_T_REP, id, 200, "the end");

    //  The tap saw the REQ and the REP as routed (the tap's subscription
    //  reaches the broker at some point: round trips until it has)
    {
        bool saw_req = false, saw_rep = false;
        uint64_t req_bseq = 0;
        int64_t until = zclock_mono () + T_WAIT;
        while ((!saw_req || !saw_rep) && zclock_mono () < until) {
            id = s_test_request (client, "echo", "echo", 0, NULL, false, NULL);
            key = s_test_expect_request (w1, "echo", NULL);
            s_test_answer (w1, LH_T_REP, key, 200, NULL);
            s_test_expect_reply (client, LH_T_REP, id, 200, NULL);
            zpoller_t *poller = zpoller_new (tap, NULL);
            while (zpoller_wait (poller, 50)) {
                zmsg_t *copy = zmsg_recv (tap);
                char *topic = zmsg_popstr (copy);
                zframe_t *header_frame = zmsg_pop (copy);
                lh_header_t header;
                int rc = lh_header_decode (&header, zframe_data (header_frame),
                                           zframe_size (header_frame));
                assert (rc == 0);
                if (streq (topic, "echo.echo") && header.t == LH_T_REQ && header.id == id) {
                    saw_req = true;
                    req_bseq = header.bseq;
                    assert (lh_tap_rseq (zframe_data (header_frame), zframe_size (header_frame)) == 0);
                }
                //  The REP copy names its request's bseq (rseq)
                if (streq (topic, "echo.echo") && header.t == LH_T_REP && header.cid == id)
                    saw_rep = streq (header.src, "w1") && header.bseq > req_bseq
                           && lh_tap_rseq (zframe_data (header_frame),
                                           zframe_size (header_frame)) == req_bseq;
                zstr_free (&topic);
                zframe_destroy (&header_frame);
                zmsg_destroy (&copy);
            }
            zpoller_destroy (&poller);
        }
        assert (saw_req && saw_rep);
    }

    //  Queue bound: w1 holds one request, 3 queue, the 5th gets 429
    uint64_t ids [5];
    for (size_t index = 0; index < 5; index++)
        ids [index] = s_test_request (client, "echo", "slow", 0, NULL, false, NULL);
    s_test_expect_reply (client, LH_T_REP, ids [4], 429, "retry_after_ms");
    for (size_t index = 0; index < 4; index++) {
        key = s_test_expect_request (w1, "slow", NULL);
        s_test_answer (w1, LH_T_REP, key, 200, NULL);
        s_test_expect_reply (client, LH_T_REP, ids [index], 200, NULL);
    }

    //  The bound on queued bytes: with w1 busy, a body bigger than
    //  queue_bytes is refused 429 at once
    id = s_test_request (client, "echo", "slow", 0, NULL, false, NULL);
    key = s_test_expect_request (w1, "slow", NULL);
    assert (s_test_configure (broker, "queue_bytes", "40"));
    uint64_t big = s_test_request (client, "echo", "slow", 0, NULL, false,
                                   "a body of more than forty bytes, to be refused");
    s_test_expect_reply (client, LH_T_REP, big, 429, "queue_full");
    assert (s_test_configure (broker, "queue_bytes", "1000000"));
    s_test_answer (w1, LH_T_REP, key, 200, NULL);
    s_test_expect_reply (client, LH_T_REP, id, 200, NULL);

    //  Deadlines: one request in flight, one queued; both get 504; the late
    //  REP is dropped, counted, and gives the credit back
    uint64_t in_flight = s_test_request (client, "echo", "slow", 600, NULL, false, NULL);
    key = s_test_expect_request (w1, "slow", NULL);
    uint64_t queued = s_test_request (client, "echo", "slow", 150, NULL, false, NULL);
    for (size_t index = 0; index < 2; index++) {
        assert (s_test_recv (client, &msg, T_WAIT));
        assert (msg.header.t == LH_T_REP && msg.header.st == 504);
        assert (msg.header.cid == (index? in_flight: queued));
        assert (s_test_body_has (&msg, "deadline"));
        lh_msg_reset (&msg);
    }
    s_test_answer (w1, LH_T_REP, key, 200, "too late");
    id = s_test_request (client, "echo", "echo", 0, NULL, false, NULL);
    key = s_test_expect_request (w1, "echo", NULL);
    s_test_answer (w1, LH_T_REP, key, 200, NULL);
    s_test_expect_reply (client, LH_T_REP, id, 200, NULL);
    s_test_stat_wait (broker, client, "dropped", "late_reply", 1);

    //  Offered but no worker -> 503; with q it waits for a worker
    zsock_t *w2 = s_test_worker ("w2", "later", NULL, 1, true);
    s_test_destroy (&w2);          //  silent: reaped after hb_ivl * hb_live
    int64_t until = zclock_mono () + T_WAIT;
    while (true) {
        id = s_test_request (client, "later", "any", 0, NULL, false, NULL);
        assert (s_test_recv (client, &msg, T_WAIT));
        uint32_t status = msg.header.st;
        lh_msg_reset (&msg);
        if (status == 503)
            break;
        assert (zclock_mono () < until);
    }
    id = s_test_request (client, "later", "any", 2000, NULL, true, "wait for me");
    s_test_expect_nothing (client, 100);
    zsock_t *w3 = s_test_worker ("w3", "later", NULL, 1, false);
    key = s_test_expect_request (w3, "any", NULL);
    s_test_answer (w3, LH_T_REP, key, 201, "served");
    s_test_expect_reply (client, LH_T_REP, id, 201, "served");

    //  LRU across two workers with credit 2 each
    zsock_t *w4 = s_test_worker ("w4", "lru", NULL, 2, true);
    zsock_t *w5 = s_test_worker ("w5", "lru", NULL, 2, true);
    for (size_t index = 0; index < 4; index++)
        ids [index] = s_test_request (client, "lru", "op", 0, NULL, false, NULL);
    uint64_t keys4 [2], keys5 [2];
    keys4 [0] = s_test_expect_request (w4, "op", NULL);
    keys5 [0] = s_test_expect_request (w5, "op", NULL);
    keys4 [1] = s_test_expect_request (w4, "op", NULL);
    keys5 [1] = s_test_expect_request (w5, "op", NULL);
    assert (keys4 [0] < keys5 [0] && keys5 [0] < keys4 [1] && keys4 [1] < keys5 [1]);
    s_test_expect_nothing (w4, 50);
    for (size_t index = 0; index < 2; index++) {
        s_test_answer (w4, LH_T_REP, keys4 [index], 200, NULL);
        s_test_answer (w5, LH_T_REP, keys5 [index], 200, NULL);
    }
    for (size_t index = 0; index < 4; index++) {
        assert (s_test_recv (client, &msg, T_WAIT));
        assert (msg.header.t == LH_T_REP && msg.header.st == 200);
        lh_msg_reset (&msg);
    }

    //  Worker death: the idempotent request is redelivered (att 2) to the
    //  other worker, the other one fails 503 worker_lost
    zsock_t *w6 = s_test_worker ("w6", "idem", NULL, 2, true);
    uint64_t with_idem = s_test_request (client, "idem", "put", 0, "key-1", false, "again");
    uint64_t without = s_test_request (client, "idem", "put", 0, NULL, false, NULL);
    uint32_t att = 0;
    s_test_expect_request (w6, "put", &att);
    assert (att == 1);
    s_test_expect_request (w6, "put", NULL);
    zsock_t *w7 = s_test_worker ("w7", "idem", NULL, 2, true);
    s_test_keep_alive (w6, false);              //  w6 goes silent
    s_test_expect_reply (client, LH_T_REP, without, 503, "worker_lost");
    assert (s_test_recv (w7, &msg, T_WAIT));
    assert (msg.header.t == LH_T_REQ && msg.header.att == 2);
    assert (streq (msg.header.idem, "key-1"));
    assert (s_test_body_has (&msg, "again"));
    key = msg.header.id;
    lh_msg_reset (&msg);
    s_test_answer (w7, LH_T_REP, key, 200, "done");
    s_test_expect_reply (client, LH_T_REP, with_idem, 200, "done");
    //  The forgotten worker is told to HELLO again when it speaks
    s_test_answer (w6, LH_T_REP, key, 200, NULL);
    assert (s_test_recv (w6, &msg, T_WAIT));
    assert (msg.header.t == LH_T_BYE && msg.header.st == 400);
    lh_msg_reset (&msg);
    zsock_destroy (&w6);

    //  PUB/SUB: prefixes fan out; a subscriber that never reads does not
    //  block the others, its oldest events are dropped and counted
    zsock_t *s1 = s_test_peer ("s1");
    zsock_t *s2 = s_test_peer ("s2");
    zsock_t *slow = zsock_new (ZMQ_DEALER);
    zsock_set_rcvhwm (slow, 10);
    zsock_connect (slow, T_ENDPOINT);
    {
        lh_header_t header;
        lh_header_init (&header, LH_T_HELLO);
        lh_header_set_str (&header, LH_H_NAME, "slow");
        s_test_send (slow, &header, NULL);
        assert (s_test_recv (slow, &msg, T_WAIT));
        lh_msg_reset (&msg);
        s_test_keep_alive (slow, true);
    }
    zsock_t *subscribers [3] = { s1, s2, slow };
    const char *prefixes [3] = { "news.", "news.sport", "" };
    for (size_t index = 0; index < 3; index++) {
        lh_header_t header;
        lh_header_init (&header, LH_T_SUB);
        lh_header_set_str (&header, LH_H_TOPIC, prefixes [index]);
        s_test_send (subscribers [index], &header, NULL);
        s_test_sync (subscribers [index]);
    }
    size_t events = 1200;
    size_t got1 = 0, got2 = 0;
    uint64_t last_bseq = 0;
    int64_t next_hb = 0;
    for (size_t index = 0; index < events; index++) {
        if (zclock_mono () >= next_hb) {
            s_test_heartbeat_all ();
            next_hb = zclock_mono () + 30;
        }
        lh_header_t header;
        lh_header_init (&header, LH_T_PUB);
        lh_header_set_str (&header, LH_H_TOPIC, index % 2? "news.weather": "news.sport.ski");
        lh_header_set_str (&header, LH_H_SRC, "forged");
        s_test_send (client, &header, s_test_body ("event"));
        while (zsock_events (s1) & ZMQ_POLLIN) {
            lh_msg_recv (&msg, s1, false, S_MAX_MSG);
            if (msg.header.t == LH_T_PUB) {
                assert (streq (msg.header.src, "client"));
                assert (msg.header.bseq > last_bseq);
                last_bseq = msg.header.bseq;
                got1++;
            }
            lh_msg_reset (&msg);
        }
        while (zsock_events (s2) & ZMQ_POLLIN) {
            lh_msg_recv (&msg, s2, false, S_MAX_MSG);
            if (msg.header.t == LH_T_PUB) {
                assert (strncmp (msg.header.topic, "news.sport", 10) == 0);
                got2++;
            }
            lh_msg_reset (&msg);
        }
    }
    until = zclock_mono () + T_WAIT;
    while ((got1 < events || got2 < events / 2) && zclock_mono () < until) {
        zsock_t *which = got1 < events? s1: s2;
        if (!s_test_recv (which, &msg, 200))
            continue;
        if (msg.header.t == LH_T_PUB)
            (which == s1? got1++: got2++);
        lh_msg_reset (&msg);
    }
    assert (got1 == events);
    assert (got2 == events / 2);
    until = zclock_mono () + T_WAIT;
    while (s_test_stat (broker, "dropped", "sub") == 0 && zclock_mono () < until)
        s_test_sync (client);
    assert (s_test_stat (broker, "dropped", "sub") > 0);

    //  A peer the broker has sent nothing to for hb_ivl hears HB from it
    {
        zsock_t *idle = s_test_peer ("idle");
        bool heard = false;
        int64_t until = zclock_mono () + T_WAIT;
        while (!heard && zclock_mono () < until) {
            s_test_heartbeat_all ();
            zmq_pollitem_t item = { zsock_resolve (idle), 0, ZMQ_POLLIN, 0 };
            if (zmq_poll (&item, 1, 30) > 0) {
                assert (lh_msg_recv (&msg, idle, false, S_MAX_MSG) == 0);
                heard = msg.header.t == LH_T_HB;
                lh_msg_reset (&msg);
            }
        }
        assert (heard);
        s_test_destroy (&idle);
    }

    //  The broker service
    id = s_test_request (client, "broker", "ping", 0, NULL, false, NULL);
    s_test_expect_reply (client, LH_T_REP, id, 200, "lakehouse");
    id = s_test_request (client, "broker", "services", 0, NULL, false, NULL);
    s_test_expect_reply (client, LH_T_REP, id, 200, "lru");
    id = s_test_request (client, "broker", "workers", 0, NULL, false, NULL);
    s_test_expect_reply (client, LH_T_REP, id, 200, "w4");
    id = s_test_request (client, "broker", "stats", 0, NULL, false, NULL);
    s_test_expect_reply (client, LH_T_REP, id, 200, "p99_us");
    id = s_test_request (client, "broker", "nope", 0, NULL, false, NULL);
    s_test_expect_reply (client, LH_T_REP, id, 404, "no_such_op");

    //  Every peer has a role, and every message is checked against it.
    //  In-process peers: the role of the grant their routing id starts
    //  with; without one, inproc_role (here the default, actor)
    {
        char *as_client = s_test_grant (broker, "client");
        char *as_admin = s_test_grant (broker, "admin");
        char *as_gateway = s_test_grant (broker, "gateway");
        zstr_sendx (broker, "GRANT", "root", NULL);
        char *status, *detail;
        zsock_recv (broker, "ss", &status, &detail);
        assert (streq (status, "-1"));
        zstr_free (&status);
        zstr_free (&detail);

        //  A client calls services but not the admin ops, and may not serve
        zsock_t *granted = s_test_peer_as ("granted", as_client);
        id = s_test_request (granted, "lru", "op", 0, NULL, false, NULL);
        key = s_test_expect_request (w4, "op", NULL);
        s_test_answer (w4, LH_T_REP, key, 200, NULL);
        s_test_expect_reply (granted, LH_T_REP, id, 200, NULL);
        int64_t admin_refusals = s_test_stat (broker, "refused", "admin");
        id = s_test_request (granted, "broker", "unbind", 0, NULL, false, NULL);
        s_test_expect_reply (granted, LH_T_REP, id, 403, "need role admin");
        assert (s_test_stat (broker, "refused", "admin") == admin_refusals + 1);
        //  So is an ungranted in-process peer (role actor)
        id = s_test_request (client, "broker", "reload", 0, NULL, false, NULL);
        s_test_expect_reply (client, LH_T_REP, id, 403, "role actor");
        {
            lh_header_t header;
            lh_header_init (&header, LH_T_READY);
            lh_header_set_str (&header, LH_H_SVC, "stolen");
            s_test_send (granted, &header, NULL);
            assert (s_test_recv (granted, &msg, T_WAIT));
            assert (msg.header.t == LH_T_BYE && msg.header.st == 403);
            assert (s_test_body_has (&msg, "role client may not serve"));
            lh_msg_reset (&msg);
        }
        s_test_destroy (&granted);

        //  Admin may
        zsock_t *admin = s_test_peer_as ("admin", as_admin);
        id = s_test_request (admin, "broker", "reload", 0, NULL, false, NULL);
        s_test_expect_reply (admin, LH_T_REP, id, 200, "generation");

        //  A role's call list: gateway may call echo only
        assert (s_test_configure (broker, "acl/gateway/call", "echo, broker.ping"));
        zsock_t *gateway = s_test_peer_as ("gateway", as_gateway);
        int64_t call_refusals = s_test_stat (broker, "refused", "call");
        id = s_test_request (gateway, "lru", "op", 0, NULL, false, NULL);
        s_test_expect_reply (gateway, LH_T_REP, id, 403, "acl/gateway/call");
        assert (s_test_stat (broker, "refused", "call") == call_refusals + 1);
        id = s_test_request (gateway, "echo", "nope", 0, NULL, false, NULL);
        s_test_expect_reply (gateway, LH_T_REP, id, 404, "no_such_op");
        assert (s_test_configure (broker, "acl/gateway/call", "*"));

        //  Events: a client may neither publish nor subscribe by default;
        //  the refusal is a REP 403 naming its id, counted, and routes
        //  nothing to the subscribers
        zsock_t *publisher = s_test_peer_as ("publisher", as_client);
        lh_header_t header;
        lh_header_init (&header, LH_T_PUB);
        header.id = 4242;
        header.has |= LH_H_ID;
        lh_header_set_str (&header, LH_H_TOPIC, "news.forged");
        s_test_send (publisher, &header, s_test_body ("forged"));
        s_test_expect_reply (publisher, LH_T_REP, 4242, 403, "may not publish");
        assert (s_test_stat (broker, "refused", "publish") == 1);
        s_test_sync (s1);
        s_test_expect_nothing (s1, 50);
        lh_header_init (&header, LH_T_SUB);
        header.id = 4343;
        header.has |= LH_H_ID;
        lh_header_set_str (&header, LH_H_TOPIC, "news.");
        s_test_send (publisher, &header, NULL);
        s_test_expect_reply (publisher, LH_T_REP, 4343, 403, "may not subscribe");
        assert (s_test_stat (broker, "refused", "subscribe") == 1);
        //  An actor may publish what its list names (news. here), not more
        lh_header_init (&header, LH_T_PUB);
        header.id = 4444;
        header.has |= LH_H_ID;
        lh_header_set_str (&header, LH_H_TOPIC, "sport.ski");
        s_test_send (client, &header, NULL);
        s_test_expect_reply (client, LH_T_REP, 4444, 403, "acl/actor/publish");
        s_test_destroy (&publisher);

        //  Without inproc_role, an in-process peer needs a grant: a HELLO
        //  without one, or with one the broker never made, is refused
        assert (s_test_configure (broker, "inproc_role", ""));
        const char *identities [] = {
            NULL, "0123456789abcdef0123456789abcdef.0123456789abcdef", "short"
        };
        for (size_t index = 0; index < 3; index++) {
            zsock_t *stranger = s_test_hello (T_ENDPOINT, identities [index], "stranger", &msg);
            assert (msg.header.t == LH_T_BYE && msg.header.st == 403);
            assert (s_test_body_has (&msg, "needs a grant"));
            lh_msg_reset (&msg);
            zsock_destroy (&stranger);
        }
        assert (s_test_stat (broker, "refused", "grant") == 3);
        zsock_t *second = s_test_peer_as ("second", as_admin);
        s_test_destroy (&second);
        assert (s_test_configure (broker, "inproc_role", "actor"));

        //  A plain tcp endpoint: its peers have plain_role (client by
        //  default), never a bypass
        zsock_send (broker, "ss", "BIND", "tcp://127.0.0.1:*");
        char *endpoint;
        zsock_recv (broker, "ss", &status, &endpoint);
        assert (streq (status, "0"));
        zstr_free (&status);
        zsock_t *remote = s_test_hello (endpoint, NULL, "remote", &msg);
        assert (msg.header.t == LH_T_WELCOME);
        lh_msg_reset (&msg);
        id = s_test_request (remote, "broker", "unbind", 0, NULL, false, NULL);
        s_test_expect_reply (remote, LH_T_REP, id, 403, "role client");
        lh_header_init (&header, LH_T_READY);
        lh_header_set_str (&header, LH_H_SVC, "remote");
        s_test_send (remote, &header, NULL);
        assert (s_test_recv (remote, &msg, T_WAIT));
        assert (msg.header.t == LH_T_BYE && msg.header.st == 403);
        lh_msg_reset (&msg);
        zsock_destroy (&remote);
        assert (s_test_configure (broker, "plain_role", "actor"));
        remote = s_test_hello (endpoint, NULL, "remote-worker", &msg);
        lh_msg_reset (&msg);
        lh_header_init (&header, LH_T_READY);
        lh_header_set_str (&header, LH_H_SVC, "remote");
        s_test_send (remote, &header, NULL);
        s_test_keep_alive (remote, true);
        s_test_sync (remote);
        //  The admin unbinds it: its connections close
        id = s_test_request (admin, "broker", "unbind", 0, NULL, false, NULL);
        s_test_expect_reply (admin, LH_T_REP, id, 400, "endpoint");
        s_test_destroy (&remote);
        zstr_free (&endpoint);
        s_test_destroy (&admin);
        s_test_destroy (&gateway);
        zstr_free (&as_client);
        zstr_free (&as_admin);
        zstr_free (&as_gateway);
    }

    //  A single-instance service: workers of one process (the same solo
    //  instance id) share it; another process is refused 409, counted,
    //  and never gets a request; once the holder is gone, another may
    {
        const char *offers [][3] = {
            { "v1", "vec", "host-a:1:0001" }, { "v2", "vec", "host-a:1:0001" },
            { "v3", "vec", "host-b:2:0002" }, { "v4", "vec", NULL },
        };
        zsock_t *vworkers [4];
        for (size_t index = 0; index < 4; index++) {
            vworkers [index] = s_test_peer (offers [index][0]);
            lh_header_t header;
            lh_header_init (&header, LH_T_READY);
            lh_header_set_str (&header, LH_H_SVC, offers [index][1]);
            if (offers [index][2])
                lh_header_set_str (&header, LH_H_SOLO, offers [index][2]);
            header.credit = 5;
            header.has |= LH_H_CREDIT;
            s_test_send (vworkers [index], &header, NULL);
            if (index < 2)
                s_test_sync (vworkers [index]);
            else {
                assert (s_test_recv (vworkers [index], &msg, T_WAIT));
                s_test_keep_alive (vworkers [index], false);    //  forgotten
                assert (msg.header.t == LH_T_BYE && msg.header.st == 409);
                assert (s_test_body_has (&msg, "single_instance"));
                assert (s_test_body_has (&msg, "vec is single-instance"));
                if (index == 2)
                    assert (s_test_body_has (&msg, "v1, instance host-a:1:0001"));
                lh_msg_reset (&msg);
            }
        }
        assert (s_test_stat (broker, "refused", "instance") == 2);
        for (size_t index = 0; index < 4; index++) {
            id = s_test_request (client, "vec", "op", 0, NULL, false, NULL);
            key = s_test_expect_request (vworkers [index % 2], "op", NULL);
            s_test_answer (vworkers [index % 2], LH_T_REP, key, 200, NULL);
            s_test_expect_reply (client, LH_T_REP, id, 200, NULL);
        }
        //  (a heartbeat it sent before it stopped may still draw a BYE)
        int64_t drain_until = zclock_mono () + 100;
        while (zclock_mono () < drain_until && s_test_recv (vworkers [2], &msg, 20)) {
            assert (msg.header.t == LH_T_BYE);
            lh_msg_reset (&msg);
        }
        //  The holder's workers leave (BYE): the next instance may serve
        for (size_t index = 0; index < 4; index++) {
            if (index < 2) {
                lh_header_t header;
                lh_header_init (&header, LH_T_BYE);
                s_test_send (vworkers [index], &header, NULL);
            }
            s_test_destroy (&vworkers [index]);
        }
        zsock_t *v5 = s_test_peer ("v5");
        int64_t until = zclock_mono () + T_WAIT;
        while (true) {
            lh_header_t header;
            lh_header_init (&header, LH_T_READY);
            lh_header_set_str (&header, LH_H_SVC, "vec");
            lh_header_set_str (&header, LH_H_SOLO, "host-b:2:0002");
            s_test_send (v5, &header, NULL);
            id = s_test_request (v5, "broker", "ping", 0, NULL, false, NULL);
            assert (s_test_recv (v5, &msg, T_WAIT));
            bool served = msg.header.t == LH_T_REP;
            lh_msg_reset (&msg);
            if (served)
                break;                  //  not refused: v1 and v2 are gone
            assert (zclock_mono () < until);
            s_test_destroy (&v5);
            v5 = s_test_peer ("v5");
        }
        s_test_destroy (&v5);
    }

    //  A peer that says BYE is forgotten at once
    {
        lh_header_t header;
        lh_header_init (&header, LH_T_BYE);
        s_test_send (w3, &header, NULL);
        s_test_sync (client);
    }
    if (verbose) {
        zstr_send (broker, "STATS");
        char *status, *detail;
        zsock_recv (broker, "ss", &status, &detail);
        printf ("\n%s\n", detail);
        zstr_free (&status);
        zstr_free (&detail);
    }
    zsock_t *rest [] = { client, w1, w3, w4, w5, w7, s1, s2, slow, tap };
    for (size_t index = 0; index < sizeof rest / sizeof rest [0]; index++)
        s_test_destroy (&rest [index]);
    zactor_destroy (&broker);
    printf ("OK (%d ms)\n", (int) (zclock_mono () - started));
}

