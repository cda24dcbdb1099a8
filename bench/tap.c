/*  =========================================================================
    bench_tap - broker throughput with a stalled tap reader beside the same
    broker without a tap (the anchor), measured in the same run

    bench_tap [--seconds S] [--runs N] [--depth D] [--body BYTES]

    Two brokers in this process, each with 2 echo workers over tcp
    loopback: A has no tap; B has a tap (default tap_hwm 1000) with one
    subscriber that connected, subscribed and never reads, so after a few
    MB every tap copy is dropped (EAGAIN at the XPUB's HWM). One client
    keeps D requests in flight (16 by default) with BYTES bodies (1024)
    for S seconds; A and B are interleaved A B A B, the median of N runs
    reported with B's dropped.tap. Target (issue 5): B >= 0.9 x A.
    =========================================================================
*/

#include "lh_proto.h"
#include "lh_client.h"
#include "lh_actor.h"
#include "lh_broker.h"
#include "lh_log.h"
#include "echo.h"
#include <jansson.h>

static int s_seconds = 2;
static int s_runs = 3;
static int s_depth = 16;
static size_t s_body_size = 1024;

//  One broker under test
typedef struct {
    zactor_t *broker;                   //  the broker actor
    char *endpoint;                     //  its bus endpoint
    char *tap;                          //  its tap endpoint, or NULL
    lh_service_runner_t *echo;          //  its echo workers
    zsock_t *stalled;                   //  tap reader that never reads
} s_system_t;


//  --------------------------------------------------------------------------
//  Send a pipe command; returns the detail (caller frees) or NULL

static char *
s_command (zactor_t *broker, const char *command, const char *arg)
{
    zsock_send (broker, "ss", command, arg);
    char *status = NULL, *detail = NULL;
    zsock_recv (broker, "ss", &status, &detail);
    bool ok = status && streq (status, "0");
    free (status);
    if (!ok) {
        fprintf (stderr, "bench_tap: %s %s failed: %s\n", command, arg, detail? detail: "?");
        free (detail);
        return NULL;
    }
    return detail;
}


//  --------------------------------------------------------------------------
//  Read a pipe command's answer; returns its detail (caller frees)

static char *
s_command_answer (zactor_t *broker)
{
    char *status = NULL, *detail = NULL;
    zsock_recv (broker, "ss", &status, &detail);
    free (status);
    return detail;
}


//  --------------------------------------------------------------------------
//  Start a broker (with a tap and a stalled reader when tap is true) and
//  its echo workers; returns 0 or -1

static int
s_system_start (s_system_t *self, bool tap, lh_config_t *config)
{
    memset (self, 0, sizeof *self);
    self->broker = zactor_new (lh_broker_actor, (void *) (tap? "bench-tap": "bench"));
    zstr_sendx (self->broker, "CONFIGURE", "plain_role", "actor", NULL);   //  our workers
    free (s_command_answer (self->broker));
    self->endpoint = s_command (self->broker, "BIND", "tcp://127.0.0.1:*");
    if (!self->endpoint)
        return -1;
    if (tap) {
        self->tap = s_command (self->broker, "TAP", "tcp://127.0.0.1:*");
        if (!self->tap)
            return -1;
        self->stalled = zsock_new (ZMQ_SUB);
        zsock_set_rcvhwm (self->stalled, 100);
        zsock_set_subscribe (self->stalled, "");
        zsock_connect (self->stalled, "%s", self->tap);
    }
    lh_link_t link = { .endpoint = self->endpoint };
    self->echo = lh_service_start (&lh_echo_service, &link, config, 2);
    lh_client_t *probe = lh_client_new (&link, "bench-probe");
    int st = 0;
    for (int attempt = 0; probe && attempt < 100 && st != 200; attempt++) {
        lh_reply_t *reply;
        lh_client_call (probe, "echo", "echo", NULL, 0, NULL, &reply);
        st = (int) lh_reply_status (reply);
        lh_reply_destroy (&reply);
        if (st != 200)
            zclock_sleep (50);          //  waiting for the workers to register
    }
    lh_client_destroy (&probe);
    return st == 200? 0: -1;
}


//  --------------------------------------------------------------------------
//  Stop a system

static void
s_system_stop (s_system_t *self)
{
    lh_service_stop (&self->echo);
    zsock_destroy (&self->stalled);
    zactor_destroy (&self->broker);
    free (self->endpoint);
    free (self->tap);
}


//  --------------------------------------------------------------------------
//  dropped.tap from the broker's STATS

static long
s_dropped_tap (s_system_t *self)
{
    zstr_send (self->broker, "STATS");
    char *status = NULL, *detail = NULL;
    zsock_recv (self->broker, "ss", &status, &detail);
    long dropped = -1;
    json_error_t error;
    json_t *json = detail? json_loads (detail, 0, &error): NULL;
    json_t *value = json? json_object_get (json_object_get (json, "dropped"), "tap"): NULL;
    if (json_is_integer (value))
        dropped = (long) json_integer_value (value);
    json_decref (json);
    free (status);
    free (detail);
    return dropped;
}


//  --------------------------------------------------------------------------
//  One run: depth requests in flight for s_seconds; returns req/s

static double
s_measure (s_system_t *self, const uint8_t *body)
{
    lh_link_t link = { .endpoint = self->endpoint };
    lh_client_t *client = lh_client_new (&link, "bench");
    if (!client)
        return 0;
    int64_t start = zclock_mono ();
    int64_t until = start + s_seconds * 1000;
    int inflight = 0;
    size_t done = 0;
    while (true) {
        while (inflight < s_depth && zclock_mono () < until
        &&     lh_client_send (client, "echo", "echo", body, s_body_size, NULL))
            inflight++;
        if (!inflight)
            break;
        lh_reply_t *reply;
        if (lh_client_recv (client, &reply, 5000) != 0)
            break;
        if (lh_reply_type (reply) == LH_T_REP) {
            inflight--;
            if (lh_reply_status (reply) == 200)
                done++;
        }
        lh_reply_destroy (&reply);
    }
    double rate = done / ((zclock_mono () - start) / 1000.0);
    lh_client_destroy (&client);
    return rate;
}


//  --------------------------------------------------------------------------
//  Sort doubles

static int
s_compare (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return (x > y) - (x < y);
}


int
main (int argc, char *argv [])
{
    for (int argn = 1; argn + 1 < argc; argn += 2) {
        if (streq (argv [argn], "--seconds"))
            s_seconds = atoi (argv [argn + 1]);
        else
        if (streq (argv [argn], "--runs"))
            s_runs = atoi (argv [argn + 1]);
        else
        if (streq (argv [argn], "--depth"))
            s_depth = atoi (argv [argn + 1]);
        else
        if (streq (argv [argn], "--body"))
            s_body_size = (size_t) atol (argv [argn + 1]);
    }
    if (s_seconds < 1 || s_runs < 1 || s_runs > 15 || s_depth < 1 || s_body_size < 1
    ||  s_body_size > 1000000) {
        fprintf (stderr, "usage: bench_tap [--seconds S] [--runs 1..15] [--depth D] [--body BYTES]\n");
        return 2;
    }
    //  A msgpack bin body of s_body_size bytes in all
    uint8_t *body = (uint8_t *) zmalloc (s_body_size);
    body [0] = 0xc6;
    uint32_t length = s_body_size > 5? (uint32_t) (s_body_size - 5): 0;
    if (s_body_size < 5) {
        s_body_size = 1;
        body [0] = 0xc0;
    }
    else {
        body [1] = (uint8_t) (length >> 24);
        body [2] = (uint8_t) (length >> 16);
        body [3] = (uint8_t) (length >> 8);
        body [4] = (uint8_t) length;
    }
    lh_log_set_level (LH_LOG_WARN);
    lh_config_t *config = lh_config_load (NULL, NULL);
    s_system_t plain, tapped;
    if (s_system_start (&plain, false, config) || s_system_start (&tapped, true, config)) {
        fprintf (stderr, "bench_tap: could not start the brokers\n");
        return 1;
    }
    double plain_runs [15], tapped_runs [15];
    for (int run = 0; run < s_runs; run++) {
        plain_runs [run] = s_measure (&plain, body);
        tapped_runs [run] = s_measure (&tapped, body);
        fprintf (stderr, "run %d: no tap %.0f/s, stalled tap %.0f/s\n",
                 run + 1, plain_runs [run], tapped_runs [run]);
    }
    long dropped = s_dropped_tap (&tapped);
    qsort (plain_runs, s_runs, sizeof (double), s_compare);
    qsort (tapped_runs, s_runs, sizeof (double), s_compare);
    double a = plain_runs [s_runs / 2], b = tapped_runs [s_runs / 2];
    printf ("| broker | req/s (median of %d) | vs no tap | dropped.tap |\n", s_runs);
    printf ("|---|---:|---:|---:|\n");
    printf ("| no tap (anchor) | %.0f | | |\n", a);
    printf ("| tap, reader stalled | %.0f | %.2f× | %ld |\n", b, a > 0? b / a: 0, dropped);
    s_system_stop (&tapped);
    s_system_stop (&plain);
    lh_config_destroy (&config);
    free (body);
    return 0;
}
