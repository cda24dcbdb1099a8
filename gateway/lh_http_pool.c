/*  =========================================================================
    lh_http_pool - HTTP threads that each serve HTTP and the bus

    One worker per thread: a libmicrohttpd daemon (external epoll mode, its
    own dup of the listening socket) and a bus pump. The loop:

        poll (daemon's epoll fd, pump's bus socket, stop eventfd)
        run the pump: each REP calls its done (which resumes a connection)
        run the daemon: reads requests, answers resumed connections

    Clients come from lh_http_pool_connect on another thread through a
    mutex-guarded slot; the worker takes one at the top of its loop.
    =========================================================================
*/

#include "lh_http_pool.h"
#include "lh_log.h"
#include <pthread.h>
#include <sys/eventfd.h>
#include <poll.h>

#define S_TICK_MS       100             //  pump housekeeping period

//  One HTTP thread
typedef struct {
    lh_http_pool_t *pool;               //  our pool
    struct MHD_Daemon *daemon;          //  its own daemon
    int epoll_fd;                       //  the daemon's epoll descriptor
    pthread_t thread;                   //  the thread
    bool started;                       //  thread was created
    pthread_mutex_t lock;               //  guards incoming and connected
    lh_client_t *incoming;              //  client handed over, not yet taken
    bool connected;                     //  has (or is being handed) a client
    lh_bus_pump_t *pump;                //  thread only
} s_worker_t;

struct _lh_http_pool_t {
    s_worker_t *workers;                //  the threads
    int threads;                        //  how many
    int stop_fd;                        //  eventfd: readable once stopping
};

//  The calling thread's worker (NULL off the pool's threads)
static __thread s_worker_t *s_current = NULL;


//  --------------------------------------------------------------------------
//  Take a client that was handed over

static void
s_worker_take (s_worker_t *self)
{
    pthread_mutex_lock (&self->lock);
    lh_client_t *client = self->incoming;
    self->incoming = NULL;
    pthread_mutex_unlock (&self->lock);
    if (client)
        lh_bus_pump_set_client (self->pump, &client);
}


//  --------------------------------------------------------------------------
//  The HTTP thread

static void *
s_worker_thread (void *arg)
{
    s_worker_t *self = (s_worker_t *) arg;
    s_current = self;
    char name [16];
    snprintf (name, sizeof (name), "http-%d", (int) ((self - self->pool->workers) % 1000) + 1);
    pthread_setname_np (pthread_self (), name);
    int stop_fd = self->pool->stop_fd;
    int64_t next_tick = zclock_mono () + S_TICK_MS;
    bool tick = false;
    bool readable = false;              //  the bus socket's descriptor fired
    //  One request log line per request: written in batches, before each wait
    lh_log_hold ();
    while (true) {
        if (!lh_bus_pump_ready (self->pump))
            s_worker_take (self);
        //  HTTP first (it may send requests), then the bus read dry: a REP
        //  resumes its connection, so HTTP runs again before any wait
        MHD_run (self->daemon);
        if (lh_bus_pump_run (self->pump, tick, readable) > 0) {
            tick = readable = false;
            continue;
        }
        //  Wait on the daemon, the bus (ZMQ_FD is safe to poll now that the
        //  socket was read dry after our last send) and the stop signal
        zsock_t *sock = lh_bus_pump_sock (self->pump);
        struct pollfd items [3] = {
            { self->epoll_fd, POLLIN, 0 },
            { stop_fd, POLLIN, 0 },
            { sock? zsock_fd (sock): -1, POLLIN, 0 }
        };
        int64_t now = zclock_mono ();
        int wait = next_tick > now? (int) (next_tick - now): 0;
        MHD_UNSIGNED_LONG_LONG mhd_wait;
        if (MHD_get_timeout (self->daemon, &mhd_wait) == MHD_YES && mhd_wait < (MHD_UNSIGNED_LONG_LONG) wait)
            wait = (int) mhd_wait;
        lh_log_flush ();
        if (poll (items, sock? 3: 2, wait) == -1 && errno != EINTR)
            lh_warn ("gateway", NULL, "HTTP thread poll failed: %s", strerror (errno));
        if (items [1].revents & POLLIN)
            break;
        readable = sock && (items [2].revents & POLLIN);
        now = zclock_mono ();
        tick = now >= next_tick;
        if (tick)
            next_tick = now + S_TICK_MS;
    }
    //  Stopping: answer what waits on the bus, let the daemon send those
    //  answers, then stop it. Streaming calls' thread clients go with the
    //  thread (their thread-specific destructor).
    lh_bus_pump_destroy (&self->pump);
    MHD_run (self->daemon);
    MHD_stop_daemon (self->daemon);
    self->daemon = NULL;
    lh_log_release ();
    s_current = NULL;
    return NULL;
}


//  --------------------------------------------------------------------------
//  Start the HTTP threads

lh_http_pool_t *
lh_http_pool_new (int listen_fd, int threads, unsigned conn_limit,
                  lh_http_pool_start_fn *start, void *arg, char **error_p)
{
    assert (listen_fd >= 0 && threads > 0 && start && error_p);
    lh_http_pool_t *self = (lh_http_pool_t *) zmalloc (sizeof (lh_http_pool_t));
    assert (self);
    self->stop_fd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
    assert (self->stop_fd >= 0);
    self->threads = threads;
    self->workers = (s_worker_t *) calloc ((size_t) threads, sizeof (s_worker_t));
    assert (self->workers);
    unsigned share = (conn_limit + (unsigned) threads - 1) / (unsigned) threads;
    for (int index = 0; index < threads; index++) {
        s_worker_t *worker = &self->workers [index];
        worker->pool = self;
        pthread_mutex_init (&worker->lock, NULL);
        worker->pump = lh_bus_pump_new ();
        int fd = dup (listen_fd);
        if (fd < 0) {
            *error_p = zsys_sprintf ("cannot share the listening socket: %s", strerror (errno));
            lh_http_pool_destroy (&self);
            return NULL;
        }
        worker->daemon = start (arg, MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME,
                                fd, share);
        const union MHD_DaemonInfo *info = worker->daemon
            ? MHD_get_daemon_info (worker->daemon, MHD_DAEMON_INFO_EPOLL_FD): NULL;
        if (!info) {
            if (!worker->daemon)
                close (fd);
            *error_p = zsys_sprintf ("libmicrohttpd refused to start HTTP thread %d", index + 1);
            lh_http_pool_destroy (&self);
            return NULL;
        }
        worker->epoll_fd = info->epoll_fd;
    }
    for (int index = 0; index < threads; index++) {
        s_worker_t *worker = &self->workers [index];
        int rc = pthread_create (&worker->thread, NULL, s_worker_thread, worker);
        assert (rc == 0);
        worker->started = true;
    }
    return self;
}


//  --------------------------------------------------------------------------
//  Stop the threads

void
lh_http_pool_destroy (lh_http_pool_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        lh_http_pool_t *self = *self_p;
        uint64_t one = 1;
        if (write (self->stop_fd, &one, sizeof (one)) < 0)
            lh_warn ("gateway", NULL, "cannot stop the HTTP threads: %s", strerror (errno));
        for (int index = 0; index < self->threads; index++) {
            s_worker_t *worker = &self->workers [index];
            if (worker->started)
                pthread_join (worker->thread, NULL);
            else {
                //  Never ran: stop what start made here
                lh_bus_pump_destroy (&worker->pump);
                if (worker->daemon)
                    MHD_stop_daemon (worker->daemon);
            }
            lh_client_destroy (&worker->incoming);
            pthread_mutex_destroy (&worker->lock);
        }
        close (self->stop_fd);
        free (self->workers);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Give a bus client to every thread that has none

int
lh_http_pool_connect (lh_http_pool_t *self, const lh_link_t *link, const char *name)
{
    assert (self && link && name);
    int missing = 0;
    for (int index = 0; index < self->threads; index++) {
        s_worker_t *worker = &self->workers [index];
        pthread_mutex_lock (&worker->lock);
        bool connected = worker->connected;
        pthread_mutex_unlock (&worker->lock);
        if (connected)
            continue;
        lh_client_t *client = missing? NULL: lh_client_new (link, name);
        if (!client) {
            missing++;
            continue;
        }
        pthread_mutex_lock (&worker->lock);
        worker->incoming = client;
        worker->connected = true;
        pthread_mutex_unlock (&worker->lock);
    }
    return missing;
}


//  --------------------------------------------------------------------------
//  The calling HTTP thread's bus pump

lh_bus_pump_t *
lh_http_pool_pump (void)
{
    return s_current? s_current->pump: NULL;
}


//  --------------------------------------------------------------------------
//  Self test: two HTTP threads serve requests that go through the broker
//  to echo; a request still waiting on the bus when the pool stops is
//  answered 503

#include "lh_body.h"
#include "lh_config.h"
#include "lh_actor.h"
#include "lh_broker.h"
#include "echo.h"
#include <curl/curl.h>
#include <arpa/inet.h>

static int s_test_sleeping = 0;         //  a /sleep request is on the bus

typedef struct {
    struct MHD_Connection *connection;
    lh_reply_t *reply;
    bool waiting;
    bool answered;
} s_test_request_t;

//  --------------------------------------------------------------------------
//  Test: the bus answered; resume (on this same HTTP thread)

static void
s_test_done (void *arg, lh_reply_t *reply, zlist_t *parts)
{
    s_test_request_t *request = (s_test_request_t *) arg;
    assert (lh_http_pool_pump () != NULL);
    request->reply = reply;
    assert (parts == NULL);
    MHD_resume_connection (request->connection);
}

//  --------------------------------------------------------------------------
//  Test: access handler; /sleep calls echo.sleep, anything else echo.echo;
//  answers the bus status with the reply's size as body

static enum MHD_Result
s_test_access (void *cls, struct MHD_Connection *connection, const char *url,
               const char *method, const char *version, const char *upload_data,
               size_t *upload_data_size, void **con_cls)
{
    s_test_request_t *request = (s_test_request_t *) *con_cls;
    if (!request) {
        request = (s_test_request_t *) zmalloc (sizeof (s_test_request_t));
        *con_cls = request;
        return MHD_YES;
    }
    if (!request->waiting) {
        lh_pack_t *pack = lh_pack_new ();
        lh_pack_map (pack, 1);
        lh_pack_kv_uint (pack, "ms", 1000);
        zframe_t *body = lh_pack_frame (&pack);
        lh_call_opts_t opts = { .timeout_ms = 5000 };
        bool sleep = streq (url, "/sleep");
        request->connection = connection;
        if (lh_bus_pump_submit (lh_http_pool_pump (), "echo", sleep? "sleep": "echo",
                                &body, &opts, s_test_done, request) == 0) {
            request->waiting = true;
            MHD_suspend_connection (connection);
            if (sleep)
                __atomic_store_n (&s_test_sleeping, 1, __ATOMIC_RELEASE);
            return MHD_YES;
        }
    }
    unsigned status = request->reply? lh_reply_status (request->reply): 503;
    char text [32];
    snprintf (text, sizeof (text), "%u", status);
    struct MHD_Response *response = MHD_create_response_from_buffer (
        strlen (text), text, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result rc = MHD_queue_response (connection, status, response);
    MHD_destroy_response (response);
    return rc;
}

//  --------------------------------------------------------------------------
//  Test: free a request

static void
s_test_completed (void *cls, struct MHD_Connection *connection, void **con_cls,
                  enum MHD_RequestTerminationCode code)
{
    s_test_request_t *request = (s_test_request_t *) *con_cls;
    if (request) {
        lh_reply_destroy (&request->reply);
        free (request);
        *con_cls = NULL;
    }
}

//  --------------------------------------------------------------------------
//  Test: the start function

static struct MHD_Daemon *
s_test_start (void *arg, unsigned flags, int listen_fd, unsigned share)
{
    (*(int *) arg)++;
    return MHD_start_daemon (flags, 0, NULL, NULL, s_test_access, NULL,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket) listen_fd,
        MHD_OPTION_CONNECTION_LIMIT, share,
        MHD_OPTION_NOTIFY_COMPLETED, s_test_completed, NULL,
        MHD_OPTION_END);
}

//  --------------------------------------------------------------------------
//  Test: collect a curl response body

static size_t
s_test_write (char *data, size_t size, size_t count, void *arg)
{
    strncat ((char *) arg, data, size * count < 31? size * count: 31);
    return size * count;
}

void
lh_http_pool_test (bool verbose)
{
    printf (" * lh_http_pool: ");
    assert (lh_http_pool_pump () == NULL);

    //  A real broker and echo on inproc
    zactor_t *broker = zactor_new (lh_broker_actor, "http-pool-test");
    char *status, *detail;
    zsock_send (broker, "ss", "BIND", "inproc://lh-http-pool-test");
    zsock_recv (broker, "ss", &status, &detail);
    assert (status && streq (status, "0"));
    zstr_free (&status);
    zstr_free (&detail);
    lh_link_t link = { .endpoint = "inproc://lh-http-pool-test" };
    lh_config_t *config = lh_config_load (NULL, &detail);
    assert (config);
    lh_service_runner_t *echo = lh_service_start (&lh_echo_service, &link, config, 2);
    assert (echo);

    //  Listening socket on an ephemeral loopback port
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert (fd >= 0);
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
    socklen_t size = sizeof (address);
    assert (bind (fd, (struct sockaddr *) &address, size) == 0 && listen (fd, 64) == 0);
    assert (getsockname (fd, (struct sockaddr *) &address, &size) == 0);
    char url [64];
    snprintf (url, sizeof (url), "http://127.0.0.1:%u/echo", ntohs (address.sin_port));

    int started = 0;
    char *error = NULL;
    lh_http_pool_t *pool = lh_http_pool_new (fd, 2, 64, s_test_start, &started, &error);
    assert (pool && started == 2);

    //  Before the pool has bus clients, requests are answered 503
    CURL *curl = curl_easy_init ();
    assert (curl);
    char body [32] = "";
    long code = 0;
    curl_easy_setopt (curl, CURLOPT_URL, url);
    curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, s_test_write);
    curl_easy_setopt (curl, CURLOPT_WRITEDATA, body);
    assert (curl_easy_perform (curl) == CURLE_OK);
    curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &code);
    assert (code == 503);

    //  With clients, through the broker to echo and back: 20 requests,
    //  new connections each, so both threads serve some
    assert (lh_http_pool_connect (pool, &link, "http-pool-test") == 0);
    int64_t until = zclock_mono () + 2000;
    while (code != 200 && zclock_mono () < until) {
        *body = 0;                      //  threads take their client at their next wake-up
        assert (curl_easy_perform (curl) == CURLE_OK);
        curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &code);
    }
    assert (code == 200);
    int ok = 0;
    curl_easy_setopt (curl, CURLOPT_FORBID_REUSE, 1L);
    for (int index = 0; index < 20; index++) {
        *body = 0;
        assert (curl_easy_perform (curl) == CURLE_OK);
        curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &code);
        ok += code == 200 && streq (body, "200");
    }
    if (verbose)
        printf ("\n   %d of 20 answered 200 through the bus", ok);
    assert (ok == 20);
    curl_easy_cleanup (curl);

    //  A request waiting on the bus when the pool stops: answered 503
    int raw = socket (AF_INET, SOCK_STREAM, 0);
    assert (connect (raw, (struct sockaddr *) &address, sizeof (address)) == 0);
    const char *request = "GET /sleep HTTP/1.1\r\nHost: x\r\n\r\n";
    assert (write (raw, request, strlen (request)) == (ssize_t) strlen (request));
    until = zclock_mono () + 2000;
    while (!__atomic_load_n (&s_test_sleeping, __ATOMIC_ACQUIRE) && zclock_mono () < until)
        zclock_sleep (5);
    assert (s_test_sleeping);
    lh_http_pool_destroy (&pool);
    assert (pool == NULL);
    char reply [256] = "";
    struct timeval timeout = { 2, 0 };
    setsockopt (raw, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof (timeout));
    ssize_t got = read (raw, reply, sizeof (reply) - 1);
    if (verbose)
        printf (", pending at stop: %.12s", got > 0? reply: "(nothing)");
    assert (got > 0 && strncmp (reply, "HTTP/1.1 503", 12) == 0);
    close (raw);
    close (fd);

    lh_service_stop (&echo);
    zactor_destroy (&broker);
    lh_config_destroy (&config);
    printf ("OK\n");
}
