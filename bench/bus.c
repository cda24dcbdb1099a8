/*  =========================================================================
    bench_bus - bus round trip through our broker and runtime, beside a
    minimal hand-written ROUTER-ROUTER relay measured in the same run

    bench_bus [--seconds S] [--runs N] [--workers W] [--shape NAME] [--out FILE]
              [--curve] [--credit C]

    Three shapes, each on both systems, interleaved A B A B:
      lockstep-1    one client, one request at a time
      lockstep-16   16 client threads, one request at a time each
      inflight-16   one client keeping 16 requests in flight
    Everything runs in this process over tcp loopback: clients, the relay or
    the broker, and W echo workers (2 by default). The relay does the least
    a load-balancing relay can do (zguide's lbbroker: an LRU queue of worker
    ids, no header, no deadline, no accounting); ours decodes and stamps
    every header, keeps credit, deadlines and statistics. Reports req/s and
    p50/p99 latency (µs), the median over runs.

    --curve: every tcp link of both systems is CurveZMQ. The relay's two
    ROUTERs are CURVE servers with the same server key as our broker, and
    its clients and workers CURVE clients with the same certificates as
    ours; handshakes of both go through our broker's ZAP handler (domain
    lh-bus), which is what makes a key check possible at all. Rows are
    labelled "+CURVE".

    --credit C: our echo workers' credit (actors/echo/credit, default 8).
    The relay's workers take one request at a time (its ring of ready
    ids); credit 1 is the like-for-like comparison, 8 our default.
    =========================================================================
*/

#include "lh_proto.h"
#include "lh_client.h"
#include "lh_actor.h"
#include "lh_broker.h"
#include "echo.h"
#include "lh_cert.h"
#include <sodium.h>

#define BODY_SIZE 200

static int s_seconds = 2;
static int s_runs = 3;
static int s_workers = 2;
static bool s_curve = false;
static zcert_t *s_server_cert;          //  --curve: broker and relay key
static zcert_t *s_client_cert;          //  --curve: every client
static zcert_t *s_worker_cert;          //  --curve: every worker

//  Make a socket a CURVE client with cert (when --curve)
static void
s_curve_client (zsock_t *sock, zcert_t *cert)
{
    if (!s_curve)
        return;
    zcert_apply (cert, sock);
    zsock_set_curve_serverkey (sock, zcert_public_txt (s_server_cert));
}

//  Make a socket a CURVE server in our broker's ZAP domain (when --curve)
static void
s_curve_server (zsock_t *sock)
{
    if (!s_curve)
        return;
    zsock_set_zap_domain (sock, "lh-bus");
    zsock_set_curve_server (sock, 1);
    zcert_apply (s_server_cert, sock);
}

//  ---------------------------------------------------------------------
//  The anchor: a minimal LRU relay

typedef struct {
    char frontend [64];                 //  clients connect here
    char backend [64];                  //  workers connect here
} s_relay_ends_t;

//  Relay actor: frontend ROUTER for clients, backend ROUTER for workers
static void
s_relay_actor (zsock_t *pipe, void *args)
{
    s_relay_ends_t *ends = (s_relay_ends_t *) args;
    zsock_t *frontend = zsock_new (ZMQ_ROUTER);
    zsock_t *backend = zsock_new (ZMQ_ROUTER);
    s_curve_server (frontend);
    s_curve_server (backend);
    int port = zsock_bind (frontend, "tcp://127.0.0.1:*");
    snprintf (ends->frontend, sizeof (ends->frontend), "tcp://127.0.0.1:%d", port);
    port = zsock_bind (backend, "tcp://127.0.0.1:*");
    snprintf (ends->backend, sizeof (ends->backend), "tcp://127.0.0.1:%d", port);
    zsock_signal (pipe, 0);

    void *front = zsock_resolve (frontend);
    void *back = zsock_resolve (backend);
    zmq_pollitem_t items [] = {
        { zsock_resolve (pipe), 0, ZMQ_POLLIN, 0 },
        { back, 0, ZMQ_POLLIN, 0 },
        { front, 0, ZMQ_POLLIN, 0 }
    };
    //  Ready workers: a ring of routing ids
    zmq_msg_t ready [256];
    int head = 0, count = 0;
    while (true) {
        items [2].revents = 0;          //  not polled while no worker is ready
        if (zmq_poll (items, count? 3: 2, -1) == -1)
            break;
        if (items [0].revents & ZMQ_POLLIN)
            break;
        if (items [1].revents & ZMQ_POLLIN) {
            //  [worker][client|"R"][payload?]
            zmq_msg_t worker, part;
            zmq_msg_init (&worker);
            zmq_msg_recv (&worker, back, 0);
            zmq_msg_init (&part);
            zmq_msg_recv (&part, back, 0);
            if (zmq_msg_more (&part)) {
                zmq_msg_send (&part, front, ZMQ_SNDMORE);
                zmq_msg_init (&part);
                zmq_msg_recv (&part, back, 0);
                zmq_msg_send (&part, front, 0);
            }
            else
                zmq_msg_close (&part);
            ready [(head + count++) % 256] = worker;
        }
        if (count && (items [2].revents & ZMQ_POLLIN)) {
            //  [client][payload] -> [worker][client][payload]
            zmq_msg_t *worker = &ready [head];
            head = (head + 1) % 256;
            count--;
            zmq_msg_send (worker, back, ZMQ_SNDMORE);
            zmq_msg_t part;
            zmq_msg_init (&part);
            zmq_msg_recv (&part, front, 0);
            zmq_msg_send (&part, back, ZMQ_SNDMORE);
            zmq_msg_init (&part);
            zmq_msg_recv (&part, front, 0);
            zmq_msg_send (&part, back, 0);
        }
    }
    for (int index = 0; index < count; index++)
        zmq_msg_close (&ready [(head + index) % 256]);
    zsock_destroy (&frontend);
    zsock_destroy (&backend);
}

//  Relay worker: says ready, then echoes each request
static void
s_relay_worker (zsock_t *pipe, void *args)
{
    zsock_t *worker = zsock_new (ZMQ_DEALER);
    s_curve_client (worker, s_worker_cert);
    zsock_connect (worker, "%s", (const char *) args);
    zstr_send (worker, "R");
    zsock_signal (pipe, 0);
    zpoller_t *poller = zpoller_new (pipe, worker, NULL);
    while (true) {
        void *which = zpoller_wait (poller, -1);
        if (which != worker)
            break;
        zmsg_t *msg = zmsg_recv (worker);
        if (!msg)
            break;
        zmsg_send (&msg, worker);
    }
    zpoller_destroy (&poller);
    zsock_destroy (&worker);
}

//  ---------------------------------------------------------------------
//  Measurements

typedef struct {
    bool ours;                          //  through our broker, else relay
    const char *endpoint;               //  where clients connect
    int depth;                          //  requests in flight per client
    int64_t until;                      //  stop sending at this time (ms)
    int64_t *latencies;                 //  per request, µs
    size_t capacity;                    //  of latencies
    size_t count;                       //  filled
    size_t errors;                      //  non-200 replies
} s_client_t;

static uint8_t s_body [BODY_SIZE];

//  One client (thread): keeps `depth` requests in flight until `until`
static void *
s_client_thread (void *args)
{
    s_client_t *self = (s_client_t *) args;
    int64_t sent_at [64];
    if (self->ours) {
        lh_link_t link = { .endpoint = self->endpoint };
        if (s_curve) {
            link.cert = s_client_cert;
            link.server_key = zcert_public_txt (s_server_cert);
        }
        lh_client_t *client = lh_client_new (&link, "bench");
        if (!client) {
            self->errors++;
            return NULL;
        }
        uint64_t ids [64];
        int inflight = 0;
        while (true) {
            while (inflight < self->depth && zclock_mono () < self->until) {
                uint64_t id = lh_client_send (client, "echo", "echo", s_body, sizeof (s_body), NULL);
                if (!id)
                    break;
                ids [inflight] = id;
                sent_at [inflight++] = zclock_usecs ();
            }
            if (!inflight)
                break;
            lh_reply_t *reply;
            if (lh_client_recv (client, &reply, 5000) != 0) {
                self->errors++;
                break;
            }
            uint64_t cid = lh_reply_cid (reply);
            if (lh_reply_status (reply) != 200)
                self->errors++;
            lh_reply_destroy (&reply);
            for (int index = 0; index < inflight; index++)
                if (ids [index] == cid) {
                    if (self->count < self->capacity)
                        self->latencies [self->count++] = zclock_usecs () - sent_at [index];
                    ids [index] = ids [inflight - 1];
                    sent_at [index] = sent_at [inflight - 1];
                    inflight--;
                    break;
                }
        }
        lh_client_destroy (&client);
    }
    else {
        zsock_t *client = zsock_new (ZMQ_DEALER);
        s_curve_client (client, s_client_cert);
        zsock_connect (client, "%s", self->endpoint);
        uint32_t next = 0;
        uint32_t tags [64];
        int inflight = 0;
        uint8_t payload [BODY_SIZE + 4];
        memcpy (payload + 4, s_body, BODY_SIZE);
        while (true) {
            while (inflight < self->depth && zclock_mono () < self->until) {
                tags [inflight] = ++next;
                memcpy (payload, &next, 4);
                zmq_send (zsock_resolve (client), payload, sizeof (payload), 0);
                sent_at [inflight++] = zclock_usecs ();
            }
            if (!inflight)
                break;
            zmq_pollitem_t item = { zsock_resolve (client), 0, ZMQ_POLLIN, 0 };
            if (zmq_poll (&item, 1, 5000) <= 0) {
                self->errors++;
                break;
            }
            uint8_t reply [BODY_SIZE + 4];
            int size = zmq_recv (zsock_resolve (client), reply, sizeof (reply), 0);
            uint32_t tag;
            memcpy (&tag, reply, 4);
            if (size != (int) sizeof (reply))
                self->errors++;
            for (int index = 0; index < inflight; index++)
                if (tags [index] == tag) {
                    if (self->count < self->capacity)
                        self->latencies [self->count++] = zclock_usecs () - sent_at [index];
                    tags [index] = tags [inflight - 1];
                    sent_at [index] = sent_at [inflight - 1];
                    inflight--;
                    break;
                }
        }
        zsock_destroy (&client);
    }
    return NULL;
}

static int
s_compare (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return (x > y) - (x < y);
}

typedef struct {
    double rate;                        //  requests per second
    double p50;                         //  µs
    double p99;                         //  µs
    size_t errors;                      //  failed requests
} s_result_t;

//  Run `clients` clients with `depth` in flight each for s_seconds
static s_result_t
s_measure (bool ours, const char *endpoint, int clients, int depth)
{
    s_client_t *state = (s_client_t *) zmalloc (clients * sizeof (s_client_t));
    pthread_t *threads = (pthread_t *) zmalloc (clients * sizeof (pthread_t));
    int64_t start = zclock_mono ();
    for (int index = 0; index < clients; index++) {
        state [index].ours = ours;
        state [index].endpoint = endpoint;
        state [index].depth = depth;
        state [index].until = start + s_seconds * 1000;
        state [index].capacity = 4 * 1000 * 1000;
        state [index].latencies = (int64_t *) malloc (state [index].capacity * sizeof (int64_t));
        pthread_create (&threads [index], NULL, s_client_thread, &state [index]);
    }
    size_t total = 0, errors = 0;
    for (int index = 0; index < clients; index++) {
        pthread_join (threads [index], NULL);
        total += state [index].count;
        errors += state [index].errors;
    }
    double elapsed = (zclock_mono () - start) / 1000.0;
    int64_t *all = (int64_t *) malloc ((total? total: 1) * sizeof (int64_t));
    size_t filled = 0;
    for (int index = 0; index < clients; index++) {
        memcpy (all + filled, state [index].latencies, state [index].count * sizeof (int64_t));
        filled += state [index].count;
        free (state [index].latencies);
    }
    qsort (all, total, sizeof (int64_t), s_compare);
    s_result_t result = {
        .rate = total / elapsed,
        .p50 = total? all [total / 2]: 0,
        .p99 = total? all [(size_t) (total * 0.99)]: 0,
        .errors = errors
    };
    free (all);
    free (state);
    free (threads);
    return result;
}

static int
s_compare_result (const void *a, const void *b)
{
    double x = ((const s_result_t *) a)->rate, y = ((const s_result_t *) b)->rate;
    return (x > y) - (x < y);
}

int
main (int argc, char *argv [])
{
    const char *out = NULL;
    const char *only = NULL;
    const char *credit = NULL;
    for (int argn = 1; argn < argc; argn++) {
        if (streq (argv [argn], "--shape") && argn + 1 < argc)
            only = argv [++argn];
        else
        if (streq (argv [argn], "--seconds") && argn + 1 < argc)
            s_seconds = atoi (argv [++argn]);
        else
        if (streq (argv [argn], "--runs") && argn + 1 < argc)
            s_runs = atoi (argv [++argn]);
        else
        if (streq (argv [argn], "--workers") && argn + 1 < argc)
            s_workers = atoi (argv [++argn]);
        else
        if (streq (argv [argn], "--out") && argn + 1 < argc)
            out = argv [++argn];
        else
        if (streq (argv [argn], "--curve"))
            s_curve = true;
        else
        if (streq (argv [argn], "--credit") && argn + 1 < argc)
            credit = argv [++argn];
        else {
            fprintf (stderr, "usage: bench_bus [--seconds S] [--runs N] [--workers W] [--shape NAME] [--out FILE] [--curve] [--credit C]\n");
            return 2;
        }
    }
    if (s_runs > 15)
        s_runs = 15;
    zsys_init ();
    zsys_set_logstream (NULL);
    randombytes_buf (s_body, sizeof (s_body));
    s_body [0] = 0xc4;                  //  bin8 of 198 bytes: one valid msgpack object
    s_body [1] = BODY_SIZE - 2;

    //  --curve: certificates in a temporary directory, the broker's key
    //  and allow set configured before its tcp bind
    char certs [] = "/tmp/bench-bus-certs-XXXXXX";
    zactor_t *broker = zactor_new (lh_broker_actor, (void *) "bench");
    if (s_curve) {
        char *error = NULL;
        char *allow = NULL;
        if (!mkdtemp (certs)
        ||  !(allow = zsys_sprintf ("%s/allow", certs))
        ||  lh_cert_create (certs, "broker", "broker", 1, NULL, &error) != 0
        ||  lh_cert_create (certs, "bench", "admin", 1, allow, &error) != 0
        ||  lh_cert_create (certs, "bench-node", "actor", 1, allow, &error) != 0) {
            fprintf (stderr, "bench_bus: certificates: %s\n", error? error: strerror (errno));
            return 1;
        }
        char *path = zsys_sprintf ("%s/broker.cert", certs);
        s_server_cert = lh_cert_load (path, true, &error);
        free (path);
        path = zsys_sprintf ("%s/bench.cert", certs);
        s_client_cert = lh_cert_load (path, true, &error);
        free (path);
        path = zsys_sprintf ("%s/bench-node.cert", certs);
        s_worker_cert = lh_cert_load (path, true, &error);
        char *server_path = zsys_sprintf ("%s/broker.cert", certs);
        zstr_sendx (broker, "CONFIGURE", "cert", server_path, NULL);
        char *status = NULL, *detail = NULL;
        zsock_recv (broker, "ss", &status, &detail);
        zstr_free (&status);
        zstr_free (&detail);
        zstr_sendx (broker, "CONFIGURE", "allow", allow, NULL);
        zsock_recv (broker, "ss", &status, &detail);
        zstr_free (&status);
        zstr_free (&detail);
        free (server_path);
        free (path);
        free (allow);
    }
    //  Plain tcp peers (without --curve) are the bench's workers and clients
    {
        zstr_sendx (broker, "CONFIGURE", "plain_role", "actor", NULL);
        char *status = NULL, *detail = NULL;
        zsock_recv (broker, "ss", &status, &detail);
        zstr_free (&status);
        zstr_free (&detail);
    }
    //  Ours: broker actor on tcp (its ZAP handler also answers the relay's
    //  handshakes with --curve, so it binds first)
    zsock_send (broker, "ss", "BIND", "tcp://127.0.0.1:*");
    char *status = NULL, *endpoint = NULL;
    zsock_recv (broker, "ss", &status, &endpoint);
    if (!status || !streq (status, "0")) {
        fprintf (stderr, "bench_bus: broker did not bind: %s\n", endpoint? endpoint: "?");
        return 1;
    }
    free (status);

    //  The anchor
    s_relay_ends_t ends;
    zactor_t *relay = zactor_new (s_relay_actor, &ends);
    zactor_t *relay_workers [16];
    for (int index = 0; index < s_workers && index < 16; index++)
        relay_workers [index] = zactor_new (s_relay_worker, ends.backend);

    lh_link_t link = { .endpoint = endpoint };
    lh_link_t worker_link = link;
    if (s_curve) {
        link.cert = s_client_cert;
        link.server_key = zcert_public_txt (s_server_cert);
        worker_link.cert = s_worker_cert;
        worker_link.server_key = link.server_key;
    }
    lh_config_t *config = lh_config_load (NULL, NULL);
    if (credit)
        lh_config_set (config, "actors/echo/credit", credit);
    lh_service_runner_t *echo = lh_service_start (&lh_echo_service, &worker_link, config, s_workers);
    //  Wait until the echo service answers
    lh_client_t *probe = lh_client_new (&link, "bench-probe");
    for (int attempt = 0; attempt < 100; attempt++) {
        lh_reply_t *reply;
        lh_client_call (probe, "echo", "echo", s_body, sizeof (s_body), NULL, &reply);
        uint32_t st = lh_reply_status (reply);
        lh_reply_destroy (&reply);
        if (st == 200)
            break;
        zclock_sleep (50);
    }
    lh_client_destroy (&probe);

    struct { const char *name; int clients; int depth; } shapes [] = {
        { "lockstep-1", 1, 1 },
        { "lockstep-16", 16, 1 },
        { "inflight-16", 1, 16 }
    };
    FILE *file = out? fopen (out, "w"): stdout;
    if (!file)
        file = stdout;
    fprintf (file, "| shape | system | req/s | p50 µs | p99 µs | errors | ours/relay |\n");
    fprintf (file, "|---|---|---:|---:|---:|---:|---:|\n");
    for (size_t shape = 0; shape < sizeof (shapes) / sizeof (shapes [0]); shape++) {
        if (only && !streq (only, shapes [shape].name))
            continue;
        s_result_t relay_runs [15], our_runs [15];
        for (int run = 0; run < s_runs; run++) {
            relay_runs [run] = s_measure (false, ends.frontend, shapes [shape].clients, shapes [shape].depth);
            our_runs [run] = s_measure (true, endpoint, shapes [shape].clients, shapes [shape].depth);
            fprintf (stderr, "%s run %d: relay %.0f/s, ours %.0f/s\n", shapes [shape].name,
                     run + 1, relay_runs [run].rate, our_runs [run].rate);
        }
        qsort (relay_runs, s_runs, sizeof (s_result_t), s_compare_result);
        qsort (our_runs, s_runs, sizeof (s_result_t), s_compare_result);
        s_result_t *a = &relay_runs [s_runs / 2], *b = &our_runs [s_runs / 2];
        fprintf (file, "| %s | relay%s (anchor) | %.0f | %.0f | %.0f | %zu | |\n",
                 shapes [shape].name, s_curve? "+CURVE": "", a->rate, a->p50, a->p99, a->errors);
        fprintf (file, "| %s | lakehouse broker%s | %.0f | %.0f | %.0f | %zu | %.2f× |\n",
                 shapes [shape].name, s_curve? "+CURVE": "", b->rate, b->p50, b->p99, b->errors,
                 a->rate > 0? b->rate / a->rate: 0);
        fflush (file);
    }
    if (file != stdout)
        fclose (file);

    lh_service_stop (&echo);
    lh_config_destroy (&config);
    zactor_destroy (&broker);
    free (endpoint);
    for (int index = 0; index < s_workers && index < 16; index++)
        zactor_destroy (&relay_workers [index]);
    zactor_destroy (&relay);
    if (s_curve) {
        zcert_destroy (&s_server_cert);
        zcert_destroy (&s_client_cert);
        zcert_destroy (&s_worker_cert);
        char *command = zsys_sprintf ("rm -rf '%s'", certs);
        if (system (command) != 0)
            fprintf (stderr, "bench_bus: could not remove %s\n", certs);
        free (command);
    }
    return 0;
}
