/*  =========================================================================
    bench_tap - broker throughput with a stalled tap reader beside the same
    broker without a tap (the anchor), measured in the same run

    bench_tap [--seconds S] [--runs N] [--depth D] [--body BYTES] [--sse]

    Two brokers in this process, each with 2 echo workers over tcp
    loopback: A has no tap; B has a tap (default tap_hwm 1000) with one
    subscriber that connected, subscribed and never reads, so after a few
    MB every tap copy is dropped (EAGAIN at the XPUB's HWM). One client
    keeps D requests in flight (16 by default) with BYTES bodies (1024)
    for S seconds; A and B are interleaved A B A B (A B B A with --sse),
    the median of N runs
    reported with B's dropped.tap. Target (issue 5): B >= 0.9 x A.

    --sse (issue 22): the tap as `lakehouse up` serves it to the console.
    Both brokers bind an inproc tap read by a gateway actor of their own
    (GET /v1/tap/stream, lh_tap_sse.h). A's gateway has no stream open
    (the anchor: its hub reads nothing); B's has one SSE client that read
    the stream's first event and then never reads again (a 4 KiB receive
    buffer): once its ring is full B's hub pauses and B's tap drops its
    copies (lh_tap_sse.h). Afterwards the stalled client reads until the
    stream is quiet, and what it was told it missed is reported (its ring's
    "dropped" total, the "gap" events' missed). Target: B >= 0.95 x A.
    BENCH_TAP_NO_STALL=1 opens no stream on B either (an A/A check of
    the two systems); BENCH_TAP_DUMP=FILE appends what the stalled client
    read at last to FILE.
    =========================================================================
*/

#include "lh_proto.h"
#include "lh_client.h"
#include "lh_actor.h"
#include "lh_broker.h"
#include "lh_gateway.h"
#include "lh_log.h"
#include "echo.h"
#include <jansson.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <dirent.h>

static int s_seconds = 2;
static int s_runs = 3;
static int s_depth = 16;
static size_t s_body_size = 1024;
static bool s_sse = false;

//  One broker under test
typedef struct {
    zactor_t *broker;                   //  the broker actor
    char *endpoint;                     //  its bus endpoint
    char *tap;                          //  its tap endpoint, or NULL
    lh_service_runner_t *echo;          //  its echo workers
    zsock_t *stalled;                   //  tap reader that never reads
    zactor_t *gateway;                  //  --sse: the gateway reading the tap
    char *url;                          //  --sse: its URL
    int sse_fd;                         //  --sse: the stalled SSE client, or -1
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
    self->sse_fd = -1;
    self->broker = zactor_new (lh_broker_actor, (void *) (tap? "bench-tap": "bench"));
    zstr_sendx (self->broker, "CONFIGURE", "plain_role", "actor", NULL);   //  our workers
    free (s_command_answer (self->broker));
    self->endpoint = s_command (self->broker, "BIND", "tcp://127.0.0.1:*");
    if (!self->endpoint)
        return -1;
    if (s_sse) {
        //  Both systems: an inproc tap read by their gateway's hub
        char endpoint [64];
        snprintf (endpoint, sizeof endpoint, "inproc://bench-tap-%s", tap? "b": "a");
        self->tap = s_command (self->broker, "TAP", endpoint);
        if (!self->tap)
            return -1;
        lh_gateway_args_t args = {
            .config = config, .link = { .endpoint = self->endpoint },
            .name = "bench-gateway", .tap = { .endpoint = self->tap }
        };
        self->gateway = zactor_new (lh_gateway_actor, &args);
        char *status = NULL;
        zsock_recv (self->gateway, "ss", &status, &self->url);
        bool started = status && streq (status, "0");
        free (status);
        if (!started) {
            fprintf (stderr, "bench_tap: the gateway did not start: %s\n", self->url? self->url: "?");
            return -1;
        }
    }
    else
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
    if (self->sse_fd >= 0)
        close (self->sse_fd);
    zactor_destroy (&self->gateway);
    free (self->url);
    lh_service_stop (&self->echo);
    zsock_destroy (&self->stalled);
    zactor_destroy (&self->broker);
    free (self->endpoint);
    free (self->tap);
}


//  --------------------------------------------------------------------------
//  Read from fd until text has come (or timeout_ms passed, or the peer
//  closed); returns what was read (caller frees), NULL on none of it

static char *
s_read_until (int fd, const char *text, int timeout_ms)
{
    size_t size = 0, max = 64 * 1024 * 1024;
    char *buffer = (char *) zmalloc (max + 1);
    int64_t until = zclock_mono () + timeout_ms;
    while (size < max && !strstr (buffer, text) && zclock_mono () < until) {
        struct timeval tv = { .tv_sec = 0, .tv_usec = 100000 };
        setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ssize_t got = recv (fd, buffer + size, max - size, 0);
        if (got == 0)
            break;
        if (got > 0) {
            size += (size_t) got;
            buffer [size] = 0;
        }
    }
    if (!strstr (buffer, text))
        zstr_free (&buffer);
    return buffer;
}


//  --------------------------------------------------------------------------
//  --sse: open GET /v1/tap/stream on the system's gateway, read up to its
//  hello event, and read no more; returns 0 or -1

static int
s_sse_stall (s_system_t *self)
{
    int port = 0;
    if (!self->url || sscanf (self->url, "http://127.0.0.1:%d", &port) != 1)
        return -1;
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    setsockopt (fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) port) };
    address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    const char *request = "GET /v1/tap/stream HTTP/1.1\r\nHost: bench\r\n\r\n";
    if (connect (fd, (struct sockaddr *) &address, sizeof address) != 0
    ||  send (fd, request, strlen (request), 0) != (ssize_t) strlen (request)) {
        close (fd);
        return -1;
    }
    char *hello = s_read_until (fd, "event: hello", 5000);
    if (!hello || !strstr (hello, " 200 ")) {
        fprintf (stderr, "bench_tap: the tap stream did not open: %.300s\n", hello? hello: "(nothing)");
        free (hello);
        close (fd);
        return -1;
    }
    free (hello);
    self->sse_fd = fd;
    return 0;
}


//  --------------------------------------------------------------------------
//  --sse: the stalled client reads on until its stream is quiet for two
//  seconds; what it was told it missed: its ring's "dropped" total (the
//  last one seen) into *dropped_p, the "gap" events' missed (the tap's
//  drops while the hub paused) added to *missed_p

static void
s_sse_told (s_system_t *self, long *dropped_p, long *missed_p)
{
    size_t size = 0, max = 256 * 1024 * 1024;
    char *stream = (char *) zmalloc (max + 1);
    struct timeval tv = { .tv_sec = 2, .tv_usec = 0 };
    setsockopt (self->sse_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int large = 1024 * 1024;            //  4 KiB and delayed ACKs: ~100 KB/s
    setsockopt (self->sse_fd, SOL_SOCKET, SO_RCVBUF, &large, sizeof large);
    ssize_t got;
    while (size < max && (got = recv (self->sse_fd, stream + size, max - size, 0)) > 0)
        size += (size_t) got;
    stream [size] = 0;
    if (getenv ("BENCH_TAP_DUMP")) {
        FILE *dump = fopen (getenv ("BENCH_TAP_DUMP"), "a");
        if (dump) {
            fwrite (stream, 1, size, dump);
            fclose (dump);
        }
    }
    for (char *at = stream; (at = strstr (at, "\"total\":")); at++)
        *dropped_p = atol (at + strlen ("\"total\":"));
    for (char *at = stream; (at = strstr (at, "\"missed\":")); at++)
        *missed_p += atol (at + strlen ("\"missed\":"));
    free (stream);
}


//  --------------------------------------------------------------------------
//  --sse: CPU seconds used so far by this process's threads named
//  "tap-sse" (the gateways' hubs; A's reads nothing)

static double
s_hub_cpu (void)
{
    double seconds = 0;
    DIR *dir = opendir ("/proc/self/task");
    struct dirent *entry;
    while (dir && (entry = readdir (dir))) {
        if (entry->d_name [0] == '.')
            continue;
        char path [300], text [1024] = "";
        snprintf (path, sizeof path, "/proc/self/task/%s/stat", entry->d_name);
        FILE *file = fopen (path, "r");
        if (!file)
            continue;
        size_t size = fread (text, 1, sizeof text - 1, file);
        fclose (file);
        text [size] = 0;
        //  pid (comm) state ... utime is field 14, stime 15
        char *close_paren = strrchr (text, ')');
        if (!strstr (text, "(tap-sse)") || !close_paren)
            continue;
        unsigned long utime = 0, stime = 0;
        if (sscanf (close_paren + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                    &utime, &stime) == 2)
            seconds += (double) (utime + stime) / sysconf (_SC_CLK_TCK);
    }
    if (dir)
        closedir (dir);
    return seconds;
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
    for (int argn = 1; argn < argc; argn++) {
        if (streq (argv [argn], "--sse")) {
            s_sse = true;
            continue;
        }
        if (argn + 1 == argc)
            break;
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
        argn++;
    }
    if (s_seconds < 1 || s_runs < 1 || s_runs > 15 || s_depth < 1 || s_body_size < 1
    ||  s_body_size > 1000000) {
        fprintf (stderr, "usage: bench_tap [--seconds S] [--runs 1..15] [--depth D] [--body BYTES] [--sse]\n");
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
    //  --sse: gateways on ephemeral ports, no tokens (every caller is
    //  client), which may open the tap stream
    lh_config_set (config, "gateway/listen", "127.0.0.1:0");
    lh_config_set (config, "gateway/tap_roles", "client");
    lh_config_set (config, "gateway/threads", "2");
    //  A stalled client moves no bytes: the gateway would close it after
    //  gateway/idle_timeout_s (30 s), before the runs end
    lh_config_set (config, "gateway/idle_timeout_s", "3600");
    s_system_t plain, tapped;
    if (s_system_start (&plain, false, config) || s_system_start (&tapped, true, config)
    ||  (s_sse && !getenv ("BENCH_TAP_NO_STALL") && s_sse_stall (&tapped))) {
        fprintf (stderr, "bench_tap: could not start the brokers\n");
        return 1;
    }
    const char *a_name = s_sse? "no SSE client": "no tap";
    const char *b_name = s_sse? "stalled SSE client": "stalled tap";
    double plain_runs [15], tapped_runs [15], in_order [15][2];
    double hub_cpu = s_hub_cpu ();
    for (int run = 0; run < s_runs; run++) {
        //  --sse: A B, then B A, and so on, so that neither is always first
        if (s_sse && run % 2) {
            tapped_runs [run] = s_measure (&tapped, body);
            plain_runs [run] = s_measure (&plain, body);
        }
        else {
            plain_runs [run] = s_measure (&plain, body);
            tapped_runs [run] = s_measure (&tapped, body);
        }
        in_order [run][0] = plain_runs [run];
        in_order [run][1] = tapped_runs [run];
        fprintf (stderr, "run %d: %s %.0f/s, %s %.0f/s\n",
                 run + 1, a_name, plain_runs [run], b_name, tapped_runs [run]);
    }
    hub_cpu = s_hub_cpu () - hub_cpu;
    long dropped = s_dropped_tap (&tapped);
    long sse_dropped = 0, sse_missed = 0;
    if (s_sse) {
        //  The stalled client reads what it holds; then a few requests, so
        //  that the hub finds the gap after the last message it read (the
        //  first copy after a long stall may be dropped too: the XPUB
        //  learns late that its pipe has room)
        s_sse_told (&tapped, &sse_dropped, &sse_missed);
        lh_link_t link = { .endpoint = tapped.endpoint };
        lh_client_t *client = lh_client_new (&link, "bench-last");
        lh_reply_t *reply = NULL;
        for (int count = 0; client && count < (getenv ("BENCH_TAP_LAST")? atoi (getenv ("BENCH_TAP_LAST")): 5); count++) {
            lh_client_call (client, "echo", "echo", NULL, 0, NULL, &reply);
            lh_reply_destroy (&reply);
            zclock_sleep (200);
        }
        lh_client_destroy (&client);
        s_sse_told (&tapped, &sse_dropped, &sse_missed);
    }
    qsort (plain_runs, s_runs, sizeof (double), s_compare);
    qsort (tapped_runs, s_runs, sizeof (double), s_compare);
    double a = plain_runs [s_runs / 2], b = tapped_runs [s_runs / 2];
    if (s_sse) {
        printf ("| broker (inproc tap, gateway) | req/s (median of %d) | vs no SSE client | dropped.tap | the stream, read at last: ring dropped / gap missed |\n", s_runs);
        printf ("|---|---:|---:|---:|---:|\n");
        printf ("| no SSE client (anchor) | %.0f | | %ld | |\n", a, s_dropped_tap (&plain));
        printf ("| one SSE client, stalled | %.0f | %.3f× | %ld | %ld / %ld |\n", b, a > 0? b / a: 0,
                dropped, sse_dropped, sse_missed);
        printf ("\nThe gateways' tap-sse threads used %.2f s of CPU in the %d s of runs.\n",
                hub_cpu, 2 * s_runs * s_seconds);
        printf ("\nRuns in the order measured (req/s), A / B:");
        for (int run = 0; run < s_runs; run++)
            printf (" %.0f / %.0f%s", in_order [run][0], in_order [run][1], run + 1 < s_runs? ",": "\n");
    }
    else {
        printf ("| broker | req/s (median of %d) | vs no tap | dropped.tap |\n", s_runs);
        printf ("|---|---:|---:|---:|\n");
        printf ("| no tap (anchor) | %.0f | | |\n", a);
        printf ("| tap, reader stalled | %.0f | %.2f× | %ld |\n", b, a > 0? b / a: 0, dropped);
    }
    s_system_stop (&tapped);
    s_system_stop (&plain);
    lh_config_destroy (&config);
    free (body);
    return 0;
}
