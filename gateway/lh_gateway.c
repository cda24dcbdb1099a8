/*  =========================================================================
    lh_gateway - the HTTP gateway actor: external HTTP in, bus requests out

    libmicrohttpd runs a pool of epoll threads. Bus calls of JSON routes
    go through the bus pump (lh_bus_pump.c): the connection is suspended,
    the pump thread sends the request and, when the REP arrives, resumes
    the connection; the access handler is then called again and answers.
    So each HTTP thread can have any number of bus calls in flight.
    Streaming routes (storage PUT/GET, ingest uploads) call storaged one
    part at a time on the HTTP thread's own bus client, created lazily and
    kept in a thread-specific slot (lh_client is not thread-safe),
    destroyed when the thread ends; their bodies are lh_gw_upload.c's
    (into storaged, the ingest form) and lh_gw_download.c's (out of it,
    ranges), this file dispatches them.

    One request, as the access handler sees it:
    1. first call (headers in): trace id, allow-list, route, token,
       deadline header and declared body size are checked. Any error is
       only recorded: libmicrohttpd closes the connection when a response
       is queued on this first call, which would break keep-alive. The
       exceptions, answered now (the connection then closes without the
       body being read): both Content-Length and Transfer-Encoding (400);
       a declared body over the route's limit (413); a declared PUT body
       over one part that storaged would refuse, asked at once (its cap
       for the key: 413; its conditions: 412).
    2. body calls: the body is kept up to the route's limit; past it, or
       once the request has failed, the rest is read and dropped, however
       large, within gateway/read_timeout_s of the failure (libmicrohttpd
       0.9.75 cannot answer while a body arrives), and answered at its end.
    3. last call: answer the recorded error, or serve the route (a local
       handler; a bus call through the pump, answered on the call after
       the resume; an upload's last part and commit; the first range of a
       streamed GET, the rest read as libmicrohttpd sends).
    The completion callback writes the request's log line.

    Slow clients: libmicrohttpd's idle timeout restarts with every byte, so
    a client sending one byte a second would never time out. The actor
    keeps a registry of connections and, every tick, shuts down the socket
    of any connection whose request has not fully arrived within
    gateway/read_timeout_s (libmicrohttpd then closes it normally).
    =========================================================================
*/

#include "lh_gateway.h"
#include "lh_routes.h"
#include "lh_http_auth.h"
#include "lh_acl.h"
#include "lh_http_pool.h"
#include "lh_ingest_upload.h"
#include "lh_gw_upload.h"
#include "lh_gw_download.h"
#include "lh_mcp_http.h"
#include "lh_multipart.h"
#include "lh_console.h"
#include "lh_tap_sse.h"
#include "lh_json.h"
#include "lh_log.h"
#include "lh_trace.h"
#include <microhttpd.h>
#include <jansson.h>
#include <sodium.h>
#include <pthread.h>
#include <signal.h>
#include <netdb.h>
#include <inttypes.h>
#include <sys/socket.h>

#define S_ACTOR         "gateway"
#define S_TICK_MS       100             //  actor housekeeping period
#define S_CONNECT_MS    1000            //  between attempts to give HTTP threads a bus client
#define S_METHOD_MAX    16              //  longest method kept for the log
#define S_BODY_PREALLOC (64 * 1024)     //  most body bytes allocated ahead of arrival
#define S_HEALTH_CALL_MS 1000           //  deadline of the health probes
#define S_STREAM_BLOCK  (64 * 1024)     //  bytes libmicrohttpd asks of a stream at a time
#define S_PROGRESS_STEP (1024 * 1024)   //  streamed body bytes that restart the read timeout

//  A connection, in the actor's registry (for the read timeout)
typedef struct _s_conn_t s_conn_t;
struct _s_conn_t {
    s_conn_t *prev;                     //  registry links
    s_conn_t *next;
    int fd;                             //  its socket
    int64_t since;                      //  us: the current request began (atomic)
    int busy;                           //  1 while the request is served (atomic)
    bool killed;                        //  read timeout fired (under conn_lock)
    char ip [INET6_ADDRSTRLEN + 1];     //  counted in per_ip under this key, or ""
};

typedef struct _s_early_t s_early_t;

//  One HTTP request in progress
typedef struct {
    int64_t started;                    //  us, first handler call
    s_conn_t *conn;                     //  its connection, or NULL
    char method [S_METHOD_MAX + 1];     //  request method (truncated)
    char *path;                         //  request path (copy)
    lh_route_match_t match;             //  the route, when found
    char detail [128];                  //  Allow methods, or a routing reason
    char trace [LH_TRACE_SIZE + 1];     //  trace id
    const char *role;                   //  the caller's role (its token's), or NULL
    char span [17];                     //  our span id (traceparent parent-id)
    char remote_parent [17];            //  the caller's span, from its traceparent, or ""
    char flags [3];                     //  trace flags
    uint32_t timeout_ms;                //  bus deadline
    uint32_t error_status;              //  recorded error, 0 = none
    const char *error_kind;             //  its kind
    char *error_reason;                 //  its reason (owned)
    char *body;                         //  body received so far
    size_t size;                        //  its size
    size_t capacity;                    //  allocated
    size_t body_max;                    //  the route's limit
    uint64_t discarded;                 //  body bytes dropped
    bool discarding;                    //  dropping the rest of a failed request's body
    uint64_t declared;                  //  Content-Length, 0 = none (or chunked)
    bool answered;                      //  a response is queued
    unsigned status;                    //  HTTP status sent
    size_t bytes;                       //  response body bytes
    void *owner;                        //  the gateway (self_t *)
    struct MHD_Connection *connection;  //  for resume, while waiting on the bus
    uint64_t error_retry_ms;            //  retry_after_ms of the recorded error
    char error_kind_copy [LH_NAME_MAX + 1];  //  a kind that is not a literal
    bool waiting;                       //  suspended until the pump answers
    lh_reply_t *reply;                  //  the pump's answer (NULL: none came)
    zlist_t *parts;                     //  PART bodies before it
    lh_gw_upload_t *upload;             //  body streaming into storaged
    s_early_t *early;                   //  ingestd.ingest asked while the body streams, or NULL
    bool early_tried;                   //  ... asked once already
    uint64_t received;                  //  streamed body bytes so far
    uint64_t progress_mark;             //  received when the timeout last restarted
    char etag [67];                     //  ETag header to send, or ""
    void *mcp;                          //  a /mcp request's state (lh_mcp_http), or NULL
} s_request_t;

//  An ingest asked while its source is still uploading (POST /v1/ingest
//  with the dataset name known early): ingestd follows the upload as it
//  lands; its answer waits here for the request, or is dropped when the
//  request ended first (a client gone, an upload refused)
struct _s_early_t {
    s_request_t *request;               //  the request, NULL once it ended
    bool done;                          //  the answer came
    lh_reply_t *reply;                  //  its reply
    zlist_t *parts;                     //  its PARTs, or NULL
};

//  The actor
typedef struct {
    zsock_t *pipe;                      //  actor command pipe
    char *endpoint;                     //  broker endpoint (copy)
    char *server_key;                   //  broker public key (copy), or NULL
    lh_link_t link;                     //  link for every bus client
    char *admin_endpoint;               //  admin link endpoint (copy), or NULL
    char *admin_server_key;             //  its broker key (copy), or NULL
    lh_link_t admin_link;               //  role admin link, endpoint NULL = none
    pthread_mutex_t admin_lock;         //  guards admin_client
    lh_client_t *admin_client;          //  on admin_link, made at first use
    lh_acl_t *acl;                      //  what each role may call
    char *name;                         //  bus client name
    lh_http_pool_t *pool;               //  the HTTP threads, when started
    int listen_fd;                      //  their listening socket, or -1
    unsigned idle_timeout_s;            //  gateway/idle_timeout_s
    size_t header_max;                  //  gateway/header_max
    unsigned conn_per_ip;               //  gateway/conn_per_ip (0 = no limit)
    zhashx_t *per_ip;                   //  address -> open connections (conn_lock)
    unsigned conn_max;                  //  gateway/conn_max
    unsigned conn_open;                 //  open connections, all threads (conn_lock)
    int64_t next_connect;               //  zclock_mono of the next bus connect
    char *url;                          //  bound URL
    lh_http_auth_t *auth;               //  tokens and allow-list
    pthread_key_t client_key;           //  per-thread bus client
    bool client_key_made;               //  client_key exists
    lh_limits_t limits;                 //  request body JSON limits
    size_t body_max;                    //  gateway/body_max
    uint32_t timeout_ms;                //  gateway/timeout_ms
    uint32_t timeout_max_ms;            //  gateway/timeout_max_ms
    int64_t read_timeout_us;            //  gateway/read_timeout_s, us
    int64_t token_check_ms;             //  gateway/token_check_ms
    int64_t health_ms;                  //  gateway/health_ms
    int threads;                        //  gateway/threads
    size_t *route_body_max;             //  per route: body limit
    uint32_t *route_timeout_ms;         //  per route: default deadline
    size_t part_size;                   //  gateway/part_size
    uint32_t storage_timeout_ms;        //  gateway/storage_timeout_ms
    int64_t started_ms;                 //  zclock_mono at start
    int64_t next_token_check;           //  zclock_mono of the next check
    int64_t next_health;                //  zclock_mono of the next refresh
    int sighups;                        //  SIGHUPs handled so far
    pthread_mutex_t health_lock;        //  guards the health snapshot
    char *health;                       //  "\"broker\":{...},\"services\":{...}"
    bool broker_ok;                     //  broker answered ping
    int64_t health_at;                  //  zclock_mono of the snapshot
    lh_client_t *health_client;         //  the actor's own bus client
    pthread_mutex_t conn_lock;          //  guards the registry
    s_conn_t *conns;                    //  open connections
    size_t read_timeouts;               //  connections cut by the read timeout
    lh_mcp_http_t *mcp;                 //  MCP at /mcp, or NULL (mcp/http off)
    lh_tap_sse_t *tap_sse;              //  GET /v1/tap/stream's hub
    char *tap_endpoint;                 //  the broker's tap (copy), or NULL
    char *tap_server_key;               //  its broker key (copy), or NULL
    lh_link_t tap_link;                 //  how the hub reads it
    char *no_tap;                       //  why there is none (copy), or NULL
} self_t;


//  --------------------------------------------------------------------------
//  SIGHUP: counted here, noticed by every gateway actor's tick. The
//  handler chains to whatever handler was installed before ours.

static volatile sig_atomic_t s_sighups = 0;
static struct sigaction s_sighup_previous;
static pthread_once_t s_sighup_once = PTHREAD_ONCE_INIT;

static void
s_sighup_handler (int signum)
{
    s_sighups++;
    if (s_sighup_previous.sa_handler != SIG_DFL
    &&  s_sighup_previous.sa_handler != SIG_IGN
    &&  s_sighup_previous.sa_handler != NULL)
        s_sighup_previous.sa_handler (signum);
}


//  --------------------------------------------------------------------------
//  Install our SIGHUP handler (once per process), keeping the previous one

static void
s_sighup_install (void)
{
    struct sigaction action;
    memset (&action, 0, sizeof (action));
    action.sa_handler = s_sighup_handler;
    action.sa_flags = SA_RESTART;
    sigemptyset (&action.sa_mask);
    sigaction (SIGHUP, &action, &s_sighup_previous);
}


//  --------------------------------------------------------------------------
//  Is text exactly size lowercase hex digits, and (if nonzero) not all '0'?

static bool
s_is_hex (const char *text, size_t size, bool nonzero)
{
    bool all_zero = true;
    for (size_t index = 0; index < size; index++) {
        char c = text [index];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
        if (c != '0')
            all_zero = false;
    }
    return !(nonzero && all_zero);
}

//  --------------------------------------------------------------------------
//  Parse a W3C traceparent ("00-<trace 32>-<parent 16>-<flags 2>").
//  Returns 0 with trace (33 bytes) and flags (3 bytes) set, or -1.

static int
s_traceparent_parse (const char *text, char *trace, char *flags)
{
    if (!text)
        return -1;
    size_t size = strlen (text);
    if (size < 55)
        return -1;
    if (!s_is_hex (text, 2, false) || memcmp (text, "ff", 2) == 0)
        return -1;
    if (text [2] != '-' || text [35] != '-' || text [52] != '-')
        return -1;
    if (!s_is_hex (text + 3, 32, true)
    ||  !s_is_hex (text + 36, 16, true)
    ||  !s_is_hex (text + 53, 2, false))
        return -1;
    //  Version 00 is exactly 55 characters; later versions may add fields
    if (memcmp (text, "00", 2) == 0? size != 55: (size > 55 && text [55] != '-'))
        return -1;
    memcpy (trace, text + 3, 32);
    trace [32] = 0;
    memcpy (flags, text + 53, 2);
    flags [2] = 0;
    return 0;
}

//  Random bytes for trace and span ids come from a per-thread pool refilled
//  S_RANDOM_POOL bytes at a time: one getrandom(2) per ~200 requests, not
//  two per request. Each byte is used once and wiped.

#define S_RANDOM_POOL   4096            //  bytes per refill of a thread's pool

static __thread uint8_t s_random_pool [S_RANDOM_POOL];   //  this thread's pool
static __thread size_t s_random_left = 0;                //  unused bytes at its end

//  --------------------------------------------------------------------------
//  Fill buffer with size random lowercase hex digits, not all zero

static void
s_random_hex (char *buffer, size_t size)
{
    static const char digits [] = "0123456789abcdef";
    assert (size <= 32 && size % 2 == 0);
    do {
        if (s_random_left < size / 2) {
            randombytes_buf (s_random_pool, sizeof (s_random_pool));
            s_random_left = sizeof (s_random_pool);
        }
        const uint8_t *bytes = s_random_pool + sizeof (s_random_pool) - s_random_left;
        for (size_t index = 0; index < size / 2; index++) {
            buffer [2 * index] = digits [bytes [index] >> 4];
            buffer [2 * index + 1] = digits [bytes [index] & 15];
        }
        sodium_memzero ((void *) bytes, size / 2);     //  used once only
        s_random_left -= size / 2;
        buffer [size] = 0;
    } while (!s_is_hex (buffer, size, true));
}

//  --------------------------------------------------------------------------
//  Choose the request's trace: a valid traceparent, else a valid
//  X-Lakehouse-Trace-Id, else a new one. Always mints our span id.

static void
s_trace_choose (s_request_t *request, const char *traceparent, const char *trace_id)
{
    request->remote_parent [0] = 0;
    if (s_traceparent_parse (traceparent, request->trace, request->flags) == 0) {
        memcpy (request->remote_parent, traceparent + 36, 16);      //  its parent-id
        request->remote_parent [16] = 0;
    }
    else
    if (trace_id && strlen (trace_id) == LH_TRACE_SIZE && s_is_hex (trace_id, LH_TRACE_SIZE, true)) {
        memcpy (request->trace, trace_id, LH_TRACE_SIZE + 1);
        strcpy (request->flags, "00");
    }
    else {
        s_random_hex (request->trace, LH_TRACE_SIZE);
        strcpy (request->flags, "00");
    }
    s_random_hex (request->span, 16);
}


//  --------------------------------------------------------------------------
//  Map a bus status to the HTTP status sent: bus st is an HTTP status, but
//  anything outside 200..599 from upstream is a bad gateway.

static unsigned
s_http_status (uint32_t status)
{
    return status >= 200 && status <= 599? status: LH_ST_BAD_GATEWAY;
}

//  --------------------------------------------------------------------------
//  Retry-After seconds for a retry_after_ms: ceil, at least 1

static uint64_t
s_retry_after_s (uint64_t retry_after_ms)
{
    uint64_t seconds = (retry_after_ms + 999) / 1000;
    return seconds? seconds: 1;
}

//  --------------------------------------------------------------------------
//  Parse X-Lakehouse-Timeout-Ms: 1..10 digits, > 0. Returns 0 or -1.

static int
s_timeout_parse (const char *text, uint64_t *value)
{
    size_t size = text? strlen (text): 0;
    if (size == 0 || size > 10)
        return -1;
    uint64_t number = 0;
    for (size_t index = 0; index < size; index++) {
        if (text [index] < '0' || text [index] > '9')
            return -1;
        number = number * 10 + (text [index] - '0');
    }
    if (number == 0)
        return -1;
    *value = number;
    return 0;
}


//  --------------------------------------------------------------------------
//  Create a request record for url and method

static s_request_t *
s_request_new (const char *url, const char *method)
{
    s_request_t *request = (s_request_t *) zmalloc (sizeof (s_request_t));
    assert (request);
    request->started = zclock_usecs ();
    snprintf (request->method, sizeof (request->method), "%s", method? method: "");
    request->path = strdup (url? url: "");
    assert (request->path);
    return request;
}


//  --------------------------------------------------------------------------
//  The request is done with its early ingest: an answer that came is
//  dropped; one still to come will be (the pump's callback frees it)

static void
s_early_forget (s_early_t **early_p)
{
    s_early_t *early = *early_p;
    if (early) {
        if (early->done) {
            lh_reply_destroy (&early->reply);
            if (early->parts) {
                zframe_t *part;
                while ((part = (zframe_t *) zlist_pop (early->parts)))
                    zframe_destroy (&part);
                zlist_destroy (&early->parts);
            }
            free (early);
        }
        else
            early->request = NULL;
        *early_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Destroy a request record; nulls the caller's pointer

static void
s_request_destroy (s_request_t **request_p)
{
    if (*request_p) {
        s_request_t *request = *request_p;
        lh_gw_upload_destroy (&request->upload);
        s_early_forget (&request->early);
        lh_mcp_http_end (&request->mcp);
        lh_reply_destroy (&request->reply);
        if (request->parts) {
            zframe_t *part;
            while ((part = (zframe_t *) zlist_pop (request->parts)))
                zframe_destroy (&part);
            zlist_destroy (&request->parts);
        }
        free (request->path);
        free (request->body);
        free (request->error_reason);
        free (request);
        *request_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Record an error to answer on the last handler call (first one wins)

static void
s_request_fail (s_request_t *request, uint32_t status, const char *kind,
                const char *format, ...) CHECK_PRINTF (4);

static void
s_request_fail (s_request_t *request, uint32_t status, const char *kind,
                const char *format, ...)
{
    if (request->error_status)
        return;
    request->error_status = status;
    request->error_kind = kind;
    va_list args;
    va_start (args, format);
    if (vasprintf (&request->error_reason, format, args) < 0)
        request->error_reason = NULL;
    va_end (args);
}


//  --------------------------------------------------------------------------
//  The config key of the request's body limit, for the 413's reason

static const char *
s_limit_key (s_request_t *request)
{
    const lh_route_t *route = request->match.route;
    return route && route->limit_key? route->limit_key: "gateway/body_max";
}


//  --------------------------------------------------------------------------
//  Drop a piece of the body of a request that has already failed, so that
//  the client, still sending, gets the answer when it is done, whatever
//  the size (libmicrohttpd 0.9.75 cannot queue a response while a body is
//  arriving). The rest must arrive within gateway/read_timeout_s of the
//  first byte dropped: the read timeout starts again then, and arriving
//  bytes no longer restart it, so a body that never ends is cut.

static void
s_request_discard (s_request_t *request, size_t size)
{
    if (!request->discarding) {
        request->discarding = true;
        if (request->conn)
            __atomic_store_n (&request->conn->since, zclock_usecs (), __ATOMIC_RELAXED);
    }
    request->discarded += size;
}


//  --------------------------------------------------------------------------
//  Responses

//  --------------------------------------------------------------------------
//  Queue a response with the trace headers. Takes body (malloc'd; may be
//  NULL when size is 0).

static enum MHD_Result
s_respond_with (struct MHD_Connection *connection, s_request_t *request,
                unsigned status, struct MHD_Response *response, size_t size,
                const char *content_type, uint64_t retry_after_ms)
{
    //  "00-TRACE-SPAN-FLAGS" (sizes fixed by s_trace_choose)
    char traceparent [64];
    size_t trace = strlen (request->trace);
    size_t span = strlen (request->span);
    size_t flags = strlen (request->flags);
    assert (3 + trace + 1 + span + 1 + flags < sizeof (traceparent));
    char *at = traceparent;
    memcpy (at, "00-", 3);
    at += 3;
    memcpy (at, request->trace, trace);
    at += trace;
    *at++ = '-';
    memcpy (at, request->span, span);
    at += span;
    *at++ = '-';
    memcpy (at, request->flags, flags);
    at [flags] = 0;
    MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header (response, "X-Lakehouse-Trace-Id", request->trace);
    MHD_add_response_header (response, "traceparent", traceparent);
    if (status == LH_ST_TOO_MANY || status == LH_ST_UNAVAILABLE) {
        char seconds [24];
        snprintf (seconds, sizeof (seconds), "%" PRIu64, s_retry_after_s (retry_after_ms));
        MHD_add_response_header (response, MHD_HTTP_HEADER_RETRY_AFTER, seconds);
    }
    if (status == LH_ST_UNAUTHORIZED)
        MHD_add_response_header (response, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                 "Bearer realm=\"lakehouse\"");
    if (status == 405 && request->detail [0])
        MHD_add_response_header (response, MHD_HTTP_HEADER_ALLOW, request->detail);
    if (status < 300 && request->etag [0])
        MHD_add_response_header (response, MHD_HTTP_HEADER_ETAG, request->etag);
    enum MHD_Result rc = MHD_queue_response (connection, status, response);
    MHD_destroy_response (response);
    request->answered = true;
    request->status = status;
    request->bytes = size;
    return rc;
}

//  --------------------------------------------------------------------------
//  Queue a response from a buffer with the trace headers. Takes body
//  (malloc'd; may be NULL when size is 0).

static enum MHD_Result
s_respond (struct MHD_Connection *connection, s_request_t *request,
           unsigned status, char *body, size_t size, const char *content_type,
           uint64_t retry_after_ms)
{
    struct MHD_Response *response = MHD_create_response_from_buffer (
        size, body? body: (char *) "", body? MHD_RESPMEM_MUST_FREE: MHD_RESPMEM_PERSISTENT);
    if (!response) {
        free (body);
        return MHD_NO;
    }
    return s_respond_with (connection, request, status, response, size,
                           content_type, retry_after_ms);
}

//  --------------------------------------------------------------------------
//  Render a JSON value compactly and respond with it (json is taken)

static enum MHD_Result
s_respond_json (struct MHD_Connection *connection, s_request_t *request,
                unsigned status, json_t *json, uint64_t retry_after_ms)
{
    char *text = json_dumps (json, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref (json);
    if (!text)
        return MHD_NO;
    return s_respond (connection, request, status, text, strlen (text),
                      "application/json", retry_after_ms);
}

//  --------------------------------------------------------------------------
//  Respond with the SPEC error body {"error":{"kind","reason"}}

static enum MHD_Result
s_respond_error (struct MHD_Connection *connection, s_request_t *request,
                 unsigned status, const char *kind, const char *reason,
                 uint64_t retry_after_ms)
{
    json_t *error = json_object ();
    json_object_set_new (error, "kind", json_string (kind? kind: lh_status_kind (status)));
    json_t *text = reason? json_string (reason): NULL;
    json_object_set_new (error, "reason", text? text: json_string (lh_status_text (status)));
    if (retry_after_ms)
        json_object_set_new (error, "retry_after_ms", json_integer ((json_int_t) retry_after_ms));
    json_t *body = json_object ();
    json_object_set_new (body, "error", error);
    return s_respond_json (connection, request, status, body, retry_after_ms);
}


//  --------------------------------------------------------------------------
//  Destroy a thread's bus client (the thread-specific slot's destructor)

static void
s_client_free (void *client)
{
    lh_client_t *self = (lh_client_t *) client;
    lh_client_destroy (&self);
}


//  --------------------------------------------------------------------------
//  The bus client of the calling HTTP thread, created on first use

static lh_client_t *
s_thread_client (self_t *self)
{
    lh_client_t *client = (lh_client_t *) pthread_getspecific (self->client_key);
    if (!client) {
        client = lh_client_new (&self->link, self->name);
        if (client)
            pthread_setspecific (self->client_key, client);
    }
    return client;
}


//  --------------------------------------------------------------------------
//  Answer a bus reply: status as is, body as JSON; error bodies are passed
//  on when they have the SPEC shape, otherwise one is made.

static enum MHD_Result
s_respond_reply (self_t *self, struct MHD_Connection *connection,
                 s_request_t *request, lh_reply_t *reply, zlist_t *parts)
{
    uint32_t bus_status = lh_reply_status (reply);
    unsigned status = s_http_status (bus_status);
    size_t size = 0;
    const void *data = lh_reply_body (reply, &size);
    char *error = NULL;

    if (bus_status != status) {
        char reason [96];
        snprintf (reason, sizeof (reason), "%s answered with status %u",
                  request->match.service, bus_status);
        return s_respond_error (connection, request, status, "bad_status", reason, 0);
    }
    if (status < 300) {
        const lh_route_t *route = request->match.route;
        if (route->out == LH_OUT_RAW) {
            const msgpack_object *object = lh_reply_object (reply);
            const msgpack_object *bytes = object? lh_obj_get (object, "data"): NULL;
            if (!bytes || bytes->type != MSGPACK_OBJECT_BIN)
                return s_respond_error (connection, request, LH_ST_BAD_GATEWAY, "bad_reply",
                                        "the reply carries no \"data\" bytes", 0);
            char *copy = malloc (bytes->via.bin.size + 1);
            assert (copy);
            memcpy (copy, bytes->via.bin.ptr, bytes->via.bin.size);
            char content_type [128] = "application/octet-stream";
            const char *type;
            size_t type_size;
            if (lh_obj_str (object, "content_type", &type, &type_size)
            &&  type_size > 0 && type_size < sizeof (content_type)
            &&  !memchr (type, '\r', type_size) && !memchr (type, '\n', type_size)) {
                memcpy (content_type, type, type_size);
                content_type [type_size] = 0;
            }
            return s_respond (connection, request, status, copy, bytes->via.bin.size,
                              content_type, 0);
        }
        if (!parts)
            parts = lh_reply_parts (reply);
        if (parts && zlist_size (parts) > 0) {
            //  A streamed reply: {"parts": [...], "reply": ...}
            json_t *list = json_array ();
            for (zframe_t *part = (zframe_t *) zlist_first (parts); part;
                 part = (zframe_t *) zlist_next (parts)) {
                json_t *item = lh_json_from_msgpack (zframe_data (part), zframe_size (part),
                                                     &lh_limits_default, &error);
                if (!item)
                    break;
                json_array_append_new (list, item);
            }
            json_t *last = !error && data? lh_json_from_msgpack (data, size, &lh_limits_default, &error)
                                         : json_null ();
            if (error || !last) {
                json_decref (list);
                json_decref (last);
                char reason [256];
                snprintf (reason, sizeof (reason), "the reply cannot be rendered as JSON: %s",
                          error? error: "no body");
                free (error);
                return s_respond_error (connection, request, LH_ST_BAD_GATEWAY, "bad_reply", reason, 0);
            }
            json_t *body = json_object ();
            json_object_set_new (body, "parts", list);
            json_object_set_new (body, "reply", last);
            return s_respond_json (connection, request, status, body, 0);
        }
        char *text = data? lh_json_text_from_msgpack (data, size, &lh_limits_default, &error)
                         : strdup ("null");
        if (!text) {
            char reason [256];
            snprintf (reason, sizeof (reason), "the reply cannot be rendered as JSON: %s",
                      error? error: "unknown error");
            free (error);
            return s_respond_error (connection, request, LH_ST_BAD_GATEWAY, "bad_reply", reason, 0);
        }
        return s_respond (connection, request, status, text, strlen (text),
                          "application/json", 0);
    }
    //  An error status: keep the upstream body when it has the SPEC shape
    json_t *json = data? lh_json_from_msgpack (data, size, &lh_limits_default, &error): NULL;
    free (error);
    //  validatord's 422 keeps the original system's tagged shape: as it is
    if (status == LH_ST_UNPROCESSABLE && json)
        return s_respond_json (connection, request, status, json, 0);
    json_t *inner = json_is_object (json)? json_object_get (json, "error"): NULL;
    if (json_is_object (inner)
    &&  json_is_string (json_object_get (inner, "kind"))
    &&  json_is_string (json_object_get (inner, "reason"))) {
        json_t *retry = json_object_get (inner, "retry_after_ms");
        uint64_t retry_after_ms = json_is_integer (retry) && json_integer_value (retry) > 0
                                ? (uint64_t) json_integer_value (retry): 0;
        return s_respond_json (connection, request, status, json, retry_after_ms);
    }
    json_decref (json);
    return s_respond_error (connection, request, status, NULL, lh_reply_reason (reply), 0);
}


//  --------------------------------------------------------------------------
//  Query parameter lookup for lh_routes_request

static const char *
s_query_lookup (void *arg, const char *name)
{
    return MHD_lookup_connection_value ((struct MHD_Connection *) arg,
                                        MHD_GET_ARGUMENT_KIND, name);
}


//  --------------------------------------------------------------------------
//  The pump answered a request: keep the reply and resume the connection
//  (runs on the connection's own HTTP thread, which answers it next)

static void
s_bus_done (void *arg, lh_reply_t *reply, zlist_t *parts)
{
    s_request_t *request = (s_request_t *) arg;
    request->reply = reply;
    request->parts = parts;
    MHD_resume_connection (request->connection);
}


//  --------------------------------------------------------------------------
//  A request nobody waits for (the ingest source's removal)

static void
s_bus_discard (void *arg, lh_reply_t *reply, zlist_t *parts)
{
    lh_reply_destroy (&reply);
    if (parts) {
        zframe_t *part;
        while ((part = (zframe_t *) zlist_pop (parts)))
            zframe_destroy (&part);
        zlist_destroy (&parts);
    }
}


static enum MHD_Result
    s_answer (self_t *self, struct MHD_Connection *connection, s_request_t *request);

//  --------------------------------------------------------------------------
//  Call a broker admin op for an admin-token caller on the admin link
//  (role admin), the only use of that link; the call waits on this HTTP
//  thread (the broker answers these itself, at once). Takes the body.
//  Returns the reply, or NULL when the broker cannot be reached.

static lh_reply_t *
s_admin_call (self_t *self, const char *service, const char *op, zframe_t **body_p,
              const lh_call_opts_t *opts)
{
    lh_reply_t *reply = NULL;
    pthread_mutex_lock (&self->admin_lock);
    if (!self->admin_client)
        self->admin_client = lh_client_new (&self->admin_link, "gateway-admin");
    if (self->admin_client) {
        const void *body = *body_p? zframe_data (*body_p): NULL;
        size_t size = *body_p? zframe_size (*body_p): 0;
        lh_client_call (self->admin_client, service, op, body, size, opts, &reply);
    }
    pthread_mutex_unlock (&self->admin_lock);
    zframe_destroy (body_p);
    lh_info (S_ACTOR, opts->trace, "admin caller: %s.%s on the admin link: %u", service, op,
             reply? lh_reply_status (reply): 503);
    return reply;
}

//  --------------------------------------------------------------------------
//  Send svc.op on this HTTP thread's bus pump and suspend the connection
//  until it answers; the access handler is called again then (s_answer).
//  Takes the body. No pump or no bus yet: answered now (503).

static enum MHD_Result
s_submit (self_t *self, struct MHD_Connection *connection, s_request_t *request,
          const char *service, const char *op, zframe_t **body_p)
{
    lh_call_opts_t opts = { .timeout_ms = request->timeout_ms, .trace = request->trace,
                            .span = lh_trace_on ()? request->span: NULL };
    if (self->admin_link.endpoint && request->role && streq (request->role, "admin")
    &&  lh_acl_admin_op (service, op)) {
        request->reply = s_admin_call (self, service, op, body_p, &opts);
        return s_answer (self, connection, request);
    }
    lh_bus_pump_t *pump = lh_http_pool_pump ();
    request->connection = connection;
    if (!pump || lh_bus_pump_submit (pump, service, op, body_p, &opts, s_bus_done, request)) {
        zframe_destroy (body_p);
        return s_answer (self, connection, request);
    }
    //  The answer comes on this thread, after this handler returns
    request->waiting = true;
    MHD_suspend_connection (connection);
    return MHD_YES;
}


//  --------------------------------------------------------------------------
//  Content of a HEAD response: never asked for (a HEAD sends no body)

static ssize_t
s_no_content (void *cls, uint64_t pos, char *buf, size_t max)
{
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

//  --------------------------------------------------------------------------
//  Answer storaged.head as headers: ETag and Content-Length, no body

static enum MHD_Result
s_respond_head (self_t *self, struct MHD_Connection *connection,
                s_request_t *request, lh_reply_t *reply)
{
    const msgpack_object *object = lh_reply_object (reply);
    uint64_t size = 0;
    const char *etag;
    size_t etag_size;
    if (lh_reply_status (reply) != LH_ST_OK || !object || !lh_obj_uint (object, "size", &size))
        return s_respond_reply (self, connection, request, reply, NULL);
    if (lh_obj_str (object, "etag", &etag, &etag_size) && etag_size < sizeof (request->etag) - 2)
        snprintf (request->etag, sizeof (request->etag), "\"%.*s\"", (int) etag_size, etag);
    struct MHD_Response *response = MHD_create_response_from_callback (
        size, S_STREAM_BLOCK, s_no_content, NULL, NULL);
    if (!response)
        return MHD_NO;
    enum MHD_Result rc = s_respond_with (connection, request, LH_ST_OK, response, 0,
                                         "application/octet-stream", 0);
    return rc;
}


//  --------------------------------------------------------------------------
//  The pump's answer is in: respond with it

static enum MHD_Result
s_answer (self_t *self, struct MHD_Connection *connection, s_request_t *request)
{
    lh_reply_t *reply = request->reply;
    zlist_t *parts = request->parts;
    request->reply = NULL;
    request->parts = NULL;
    enum MHD_Result rc;
    const lh_route_t *route = request->match.route;
    if (route->in == LH_IN_INGEST && request->upload) {
        //  The uploaded source has served its purpose
        lh_pack_t *pack = lh_pack_new ();
        lh_pack_map (pack, 1);
        lh_pack_kv_str (pack, "key", lh_gw_upload_key (request->upload));
        zframe_t *body = lh_pack_frame (&pack);
        lh_call_opts_t opts = { .timeout_ms = self->storage_timeout_ms, .trace = request->trace,
                                .span = lh_trace_on ()? request->span: NULL };
        lh_bus_pump_t *pump = lh_http_pool_pump ();
        if (!pump || lh_bus_pump_submit (pump, "storaged", "delete", &body, &opts, s_bus_discard, NULL))
            lh_warn (S_ACTOR, request->trace, "cannot remove the uploaded source %s: no bus",
                     lh_gw_upload_key (request->upload));
        zframe_destroy (&body);
    }
    if (!reply)
        rc = s_respond_error (connection, request, LH_ST_UNAVAILABLE, "bus_unreachable",
                              "the gateway cannot reach the broker", 1000);
    else
    if (route->out == LH_OUT_HEAD)
        rc = s_respond_head (self, connection, request, reply);
    else
        rc = s_respond_reply (self, connection, request, reply, parts);
    lh_reply_destroy (&reply);
    s_bus_discard (NULL, NULL, parts);
    return rc;
}


//  --------------------------------------------------------------------------
//  Serve a bus route: build the request and hand it to the pump

static enum MHD_Result
s_serve_bus (self_t *self, struct MHD_Connection *connection, s_request_t *request)
{
    zframe_t *body = NULL;
    char *error = NULL;
    int status = lh_routes_request (&request->match, request->body, request->size,
                                    s_query_lookup, connection, &self->limits, &body, &error);
    if (status) {
        enum MHD_Result rc = s_respond_error (connection, request, status, "bad_request", error, 0);
        free (error);
        return rc;
    }
    return s_submit (self, connection, request, request->match.service,
                     request->match.op, &body);
}


//  --------------------------------------------------------------------------
//  Streaming bodies into storaged (PUT /v1/storage/KEY, POST /v1/ingest):
//  the upload itself is lh_gw_upload's; here, its failure becomes the
//  request's error

static void
s_upload_failed (s_request_t *request)
{
    lh_gw_upload_t *upload = request->upload;
    if (request->error_status)
        return;
    snprintf (request->error_kind_copy, sizeof (request->error_kind_copy), "%s",
              lh_gw_upload_kind (upload));
    s_request_fail (request, lh_gw_upload_status (upload),
                    request->error_kind_copy, "%s", lh_gw_upload_reason (upload));
    request->error_retry_ms = lh_gw_upload_retry_after (upload);
}

//  --------------------------------------------------------------------------
//  The early ingest's answer came (on the connection's own HTTP thread).
//  Its success or a refusal (4xx: a bad CSV, a drift, too large) is the
//  answer: now if the request waits for it (its body is in), else kept,
//  a refusal stopping the upload (the rest of the body is dropped). A
//  failure of its own (5xx or none: a deadline that counted a slow upload,
//  a worker lost) is not the answer: the ingest is asked again once the
//  source is whole, as without the early call. The request is gone: drop
//  it.

static void
s_early_done (void *arg, lh_reply_t *reply, zlist_t *parts)
{
    s_early_t *early = (s_early_t *) arg;
    s_request_t *request = early->request;
    if (!request) {
        s_bus_discard (NULL, reply, parts);
        free (early);
        return;
    }
    uint32_t status = reply? lh_reply_status (reply): 0;
    bool final = status == LH_ST_OK || (status >= 400 && status < 500);
    if (!final) {
        lh_info (S_ACTOR, request->trace, "the ingest asked while the body streamed failed "
                 "(%u %s): asking again once the source is stored", status,
                 reply && lh_reply_reason (reply)? lh_reply_reason (reply): "no answer");
        s_bus_discard (NULL, reply, parts);
        request->early = NULL;
        free (early);
        if (request->waiting) {
            zframe_t *body = lh_ingest_request (lh_gw_upload_name (request->upload),
                                                lh_gw_upload_key (request->upload));
            lh_call_opts_t opts = { .timeout_ms = request->timeout_ms, .trace = request->trace,
                                    .span = lh_trace_on ()? request->span: NULL };
            lh_bus_pump_t *pump = lh_http_pool_pump ();
            if (!pump || lh_bus_pump_submit (pump, request->match.service, request->match.op,
                                             &body, &opts, s_bus_done, request)) {
                zframe_destroy (&body);
                MHD_resume_connection (request->connection);    //  no reply: 503
            }
        }
        return;
    }
    if (request->waiting) {
        request->early = NULL;
        free (early);
        s_bus_done (request, reply, parts);
        return;
    }
    early->done = true;
    early->reply = reply;
    early->parts = parts;
    if (status != LH_ST_OK)
        lh_gw_upload_destroy (&request->upload);        //  aborts it
}

//  --------------------------------------------------------------------------
//  POST /v1/ingest whose dataset name is known (?name=, or a form's name
//  field before its file) once the first part is in storaged: ask
//  ingestd.ingest now with the upload's id, so ingestd parses the body as
//  it lands instead of after the upload (docs/ingestd.md). Asked once; if
//  it cannot be sent, the ingest is asked after the upload as usual.

static void
s_early_start (s_request_t *request)
{
    if (request->early_tried || request->error_status
    ||  request->match.route->in != LH_IN_INGEST || !request->upload)
        return;
    const char *upload_id = lh_gw_upload_id (request->upload);
    const char *name = lh_gw_upload_name_known (request->upload);
    if (!upload_id || !name)
        return;
    request->early_tried = true;
    lh_bus_pump_t *pump = lh_http_pool_pump ();
    s_early_t *early = (s_early_t *) zmalloc (sizeof (s_early_t));
    assert (early);
    early->request = request;
    zframe_t *body = lh_ingest_request_follow (name, lh_gw_upload_key (request->upload),
                                               upload_id);
    lh_call_opts_t opts = { .timeout_ms = request->timeout_ms, .trace = request->trace,
                            .span = lh_trace_on ()? request->span: NULL };
    if (!pump || lh_bus_pump_submit (pump, request->match.service, request->match.op, &body,
                                     &opts, s_early_done, early)) {
        zframe_destroy (&body);
        free (early);
        return;
    }
    request->early = early;
}

//  --------------------------------------------------------------------------
//  A piece of a streaming route's body. Every S_PROGRESS_STEP bytes the
//  connection's read timeout starts again: a large body only needs to
//  keep arriving, not to arrive within gateway/read_timeout_s.

static enum MHD_Result
s_stream_take (s_request_t *request, const char *data, size_t size)
{
    if (request->error_status || (request->early && request->early->done)) {
        lh_gw_upload_destroy (&request->upload);        //  aborts it
        s_request_discard (request, size);
        return MHD_YES;
    }
    request->received += size;
    if (request->conn && request->received - request->progress_mark >= S_PROGRESS_STEP) {
        request->progress_mark = request->received;
        __atomic_store_n (&request->conn->since, zclock_usecs (), __ATOMIC_RELAXED);
    }
    self_t *self = (self_t *) request->owner;
    if (lh_gw_upload_take (request->upload, s_thread_client (self), data, size))
        s_upload_failed (request);
    else
        s_early_start (request);
    return MHD_YES;
}

//  --------------------------------------------------------------------------
//  PUT /v1/storage/KEY: the whole body is in; finish the upload

static enum MHD_Result
s_serve_upload (self_t *self, struct MHD_Connection *connection, s_request_t *request)
{
    lh_gw_upload_t *upload = request->upload;
    if (lh_gw_upload_finish (upload, s_thread_client (self)))
        s_upload_failed (request);
    if (request->error_status)
        return s_respond_error (connection, request, request->error_status, request->error_kind,
                                request->error_reason, request->error_retry_ms);
    snprintf (request->etag, sizeof (request->etag), "\"%s\"", lh_gw_upload_etag (upload));
    json_t *body = json_object ();
    json_object_set_new (body, "key", json_string (lh_gw_upload_key (upload)));
    json_object_set_new (body, "etag", json_string (lh_gw_upload_etag (upload)));
    json_object_set_new (body, "size", json_integer ((json_int_t) lh_gw_upload_size (upload)));
    return s_respond_json (connection, request, LH_ST_OK, body, 0);
}

//  --------------------------------------------------------------------------
//  POST /v1/ingest: the body is in storaged; ingestd, asked early, answers
//  when it has parsed the rest (the connection waits suspended), or is
//  called now through the pump. An early refusal is the answer as it is.

static enum MHD_Result
s_serve_ingest (self_t *self, struct MHD_Connection *connection, s_request_t *request)
{
    s_early_t *early = request->early;
    if (early && early->done) {
        request->reply = early->reply;
        request->parts = early->parts;
        early->reply = NULL;
        early->parts = NULL;
        if (lh_reply_status (request->reply) != LH_ST_OK || !request->upload)
            return s_answer (self, connection, request);
    }
    if (lh_gw_upload_finish (request->upload, s_thread_client (self)))
        s_upload_failed (request);
    if (request->error_status)
        return s_respond_error (connection, request, request->error_status, request->error_kind,
                                request->error_reason, request->error_retry_ms);
    if (early && early->done)
        return s_answer (self, connection, request);
    if (early) {
        //  The answer comes on this thread once ingestd has read the rest
        request->connection = connection;
        request->waiting = true;
        MHD_suspend_connection (connection);
        return MHD_YES;
    }
    zframe_t *body = lh_ingest_request (lh_gw_upload_name (request->upload),
                                        lh_gw_upload_key (request->upload));
    return s_submit (self, connection, request, request->match.service, request->match.op, &body);
}


//  --------------------------------------------------------------------------
//  GET /v1/storage/KEY: the object streamed from storaged (lh_gw_download:
//  the first range now, its errors the answer; the rest as it is sent)

static enum MHD_Result
s_serve_stream (self_t *self, struct MHD_Connection *connection, s_request_t *request)
{
    lh_client_t *client = s_thread_client (self);
    if (!client)
        return s_respond_error (connection, request, LH_ST_UNAVAILABLE, "bus_unreachable",
                                "the gateway cannot reach the broker", 1000);
    char *key = lh_routes_param (&request->match, "key");
    assert (key);
    lh_gw_download_t *download = lh_gw_download_new (client, key, request->trace,
                                                     request->timeout_ms, self->part_size);
    if (lh_trace_on ())
        lh_gw_download_set_span (download, request->span);
    free (key);
    unsigned status = lh_gw_download_open (download, MHD_lookup_connection_value (
        connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE));
    if (status != LH_ST_OK && status != 206 && status != 416) {
        enum MHD_Result rc = s_respond_reply (self, connection, request,
                                              lh_gw_download_reply (download), NULL);
        lh_gw_download_destroy (&download);
        return rc;
    }
    if (*lh_gw_download_etag (download))
        snprintf (request->etag, sizeof (request->etag), "\"%s\"", lh_gw_download_etag (download));
    size_t size;
    const char *content_type;
    struct MHD_Response *response = lh_gw_download_response (&download, &size, &content_type);
    if (!response)
        return MHD_NO;
    return s_respond_with (connection, request, status, response, size, content_type, 0);
}


//  --------------------------------------------------------------------------
//  GET /health: the gateway itself, plus the actor's latest view of the
//  broker and the services (refreshed every gateway/health_ms)

static enum MHD_Result
s_serve_health (self_t *self, struct MHD_Connection *connection, s_request_t *request)
{
    //  Rendered straight from the snapshot, under its lock: one allocation
    int64_t now = zclock_mono ();
    pthread_mutex_lock (&self->health_lock);
    const char *snapshot = self->health? self->health: "\"broker\":{\"ok\":false},\"services\":{}";
    bool ok = self->broker_ok;
    size_t room = strlen (snapshot) + 512;  //  the rest is under 256 bytes
    char *text = (char *) malloc (room);
    assert (text);
    int size = snprintf (text, room,
        "{\"status\":\"%s\",\"gateway\":{\"ok\":true,\"uptime_ms\":%" PRId64 ",\"threads\":%d},"
        "%s,\"checked_ms_ago\":%" PRId64 "%s}",
        ok? "ok": "unavailable", now - self->started_ms, self->threads,
        snapshot, now - self->health_at,
        ok? "": ",\"error\":{\"kind\":\"broker_down\",\"reason\":\"the broker does not answer\"}");
    pthread_mutex_unlock (&self->health_lock);
    if (size < 0 || (size_t) size >= room) {
        free (text);
        return MHD_NO;
    }
    return s_respond (connection, request, ok? LH_ST_OK: LH_ST_UNAVAILABLE, text, size,
                      "application/json", ok? 0: 1000);
}


//  --------------------------------------------------------------------------
//  GET /console, /console/FILE: the web console's files (lh_console.h)

static enum MHD_Result
s_serve_console (self_t *self, struct MHD_Connection *connection, s_request_t *request)
{
    const lh_console_file_t *file = lh_console_find (request->path);
    if (!file)
        return s_respond_error (connection, request, 404, "no_such_route",
                                "the console has no such file", 0);
    struct MHD_Response *response;
    unsigned status = lh_console_respond (file,
        MHD_lookup_connection_value (connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH),
        &response);
    if (!response)
        return MHD_NO;
    return s_respond_with (connection, request, status, response,
                           status == 200? file->size: 0, file->content_type, 0);
}


//  --------------------------------------------------------------------------
//  GET /v1/tap/stream?service=&op=&trace=: the broker's tap as Server-Sent
//  Events, for callers of a role in gateway/tap_roles (lh_tap_sse.h)

static enum MHD_Result
s_serve_tap_stream (self_t *self, struct MHD_Connection *connection, s_request_t *request)
{
    struct MHD_Response *response;
    const char *kind;
    char *reason = NULL;
    int status = lh_tap_sse_open (self->tap_sse, connection, request->role,
        MHD_lookup_connection_value (connection, MHD_GET_ARGUMENT_KIND, "service"),
        MHD_lookup_connection_value (connection, MHD_GET_ARGUMENT_KIND, "op"),
        MHD_lookup_connection_value (connection, MHD_GET_ARGUMENT_KIND, "trace"),
        &response, &kind, &reason);
    if (status) {
        enum MHD_Result rc = s_respond_error (connection, request, (unsigned) status, kind,
                                              reason, status == 503? 1000: 0);
        free (reason);
        return rc;
    }
    return s_respond_with (connection, request, LH_ST_OK, response, 0,
                           LH_TAP_SSE_CONTENT_TYPE, 0);
}


//  --------------------------------------------------------------------------
//  Headers of a streaming route: its upload, with the PUT conditions or
//  the ingest's multipart parser

static void
s_stream_begin (self_t *self, struct MHD_Connection *connection, s_request_t *request)
{
    bool put = request->match.route->in == LH_IN_UPLOAD;
    char *key = put? lh_routes_param (&request->match, "key"): NULL;
    const char *length = MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                                      MHD_HTTP_HEADER_CONTENT_LENGTH);
    lh_gw_upload_opts_t opts = {
        .ingest = !put,
        .key = key,
        .name = put? NULL: MHD_lookup_connection_value (connection, MHD_GET_ARGUMENT_KIND, "name"),
        .part_size = self->part_size,
        .timeout_ms = self->storage_timeout_ms,
        .trace = request->trace,
        .span = lh_trace_on ()? request->span: NULL,
        .size_max = request->body_max,
        .size_key = s_limit_key (request),
        .declared = length? strtoull (length, NULL, 10): 0
    };
    request->upload = lh_gw_upload_new (&opts);
    free (key);
    if (lh_gw_upload_headers (request->upload,
            MHD_lookup_connection_value (connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH),
            MHD_lookup_connection_value (connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_MATCH),
            MHD_lookup_connection_value (connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE)))
        s_upload_failed (request);
}


//  --------------------------------------------------------------------------
//  Check that the caller's role may call what a matched route calls, as
//  the broker would (acl/ROLE/call; the broker admin ops need role admin):
//  the route's service.op, and storaged.put for the routes that stream
//  a body into storaged. Records 403 when not.

static void
s_request_authorize (self_t *self, s_request_t *request)
{
    const lh_route_match_t *match = &request->match;
    if (!*match->service)
        return;                         //  answered by the gateway itself
    const char *calls [2][2] = { { match->service, match->op }, { NULL, NULL } };
    lh_route_in_t in = match->route->in;
    if (in == LH_IN_UPLOAD || in == LH_IN_INGEST) {
        calls [1][0] = "storaged";
        calls [1][1] = "put";
    }
    for (size_t index = 0; index < 2 && calls [index][0]; index++) {
        const char *svc = calls [index][0];
        const char *op = calls [index][1];
        if (lh_acl_may_call (self->acl, request->role, svc, op))
            continue;
        if (lh_acl_admin_op (svc, op))
            s_request_fail (request, LH_ST_FORBIDDEN, "forbidden",
                            "role %s may not call %s.%s: broker admin ops need an admin "
                            "token", request->role, svc, op);
        else
            s_request_fail (request, LH_ST_FORBIDDEN, "forbidden",
                            "role %s may not call %s.%s (acl/%s/call)",
                            request->role, svc, op, request->role);
        return;
    }
}


//  --------------------------------------------------------------------------
//  First handler call: the headers are in. Record the outcome of every
//  check; answer now only a declared body over the limit.

static enum MHD_Result
s_request_begin (self_t *self, struct MHD_Connection *connection, s_request_t *request)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info (connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    request->conn = info? (s_conn_t *) info->socket_context: NULL;

    s_trace_choose (request,
        MHD_lookup_connection_value (connection, MHD_HEADER_KIND, "traceparent"),
        MHD_lookup_connection_value (connection, MHD_HEADER_KIND, "X-Lakehouse-Trace-Id"));
    request->owner = self;
    request->timeout_ms = self->timeout_ms;
    request->body_max = self->body_max;

    //  Both Content-Length and Transfer-Encoding: the body's end is in
    //  doubt (RFC 9112 section 6.3; behind a proxy that reads the other
    //  header, the rest would be a smuggled request). Answered now, so
    //  the connection closes after the 400 and nothing is read from it.
    if (MHD_lookup_connection_value (connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH)
    &&  MHD_lookup_connection_value (connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING))
        return s_respond_error (connection, request, LH_ST_BAD_REQUEST, "bad_request",
                                "the request has both Content-Length and Transfer-Encoding, "
                                "so where its body ends is unclear: send one of them", 0);

    //  Client address
    info = MHD_get_connection_info (connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!lh_http_auth_allowed (self->auth, info? info->client_addr: NULL))
        s_request_fail (request, LH_ST_FORBIDDEN, "forbidden",
                        "this client address is not in the gateway's allow-list");

    //  Token, unless the route is open: checked before the route's own
    //  errors, so that without a token nothing tells which routes exist
    int status = lh_routes_match (request->method, request->path, &request->match,
                                  request->detail, sizeof (request->detail));
    bool open = status == 200 && (request->match.route->flags & LH_ROUTE_OPEN);
    if (!open)
        request->role = lh_http_auth_role (self->auth,
            MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                         MHD_HTTP_HEADER_AUTHORIZATION));
    if (!open && !request->role)
        s_request_fail (request, LH_ST_UNAUTHORIZED, "unauthorized",
                        "a valid bearer token is required (Authorization: Bearer TOKEN)");

    //  Route errors come after the token check
    if (status == 404)
        s_request_fail (request, 404, "no_such_route", "no route for %s %s",
                        request->method, request->path);
    else
    if (status == 405)
        s_request_fail (request, 405, "method_not_allowed",
                        "%s is not allowed on %s (allowed: %s)",
                        request->method, request->path, request->detail);
    else
    if (status == 400)
        s_request_fail (request, 400, "bad_request", "%s", request->detail);
    //  The caller's role may call what the route calls? (before anything
    //  reaches the bus, an upload's first part included)
    if (status == 200 && !open && request->role && !request->error_status)
        s_request_authorize (self, request);
    bool streaming = false;
    uint32_t timeout_max = self->timeout_max_ms;
    if (status == 200) {
        size_t index = lh_routes_index (request->match.route);
        request->body_max = self->route_body_max [index];
        request->timeout_ms = self->route_timeout_ms [index];
        if (request->match.route->timeout_key && timeout_max < request->timeout_ms)
            timeout_max = request->timeout_ms;     //  a long route may be asked for its own
        lh_route_in_t in = request->match.route->in;
        streaming = in == LH_IN_UPLOAD || in == LH_IN_INGEST;
        if (streaming && !request->error_status)
            s_stream_begin (self, connection, request);
    }

    //  Deadline
    const char *timeout = MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                                       "X-Lakehouse-Timeout-Ms");
    if (timeout) {
        uint64_t value = 0;
        if (s_timeout_parse (timeout, &value))
            s_request_fail (request, 400, "bad_request",
                            "X-Lakehouse-Timeout-Ms must be a positive whole number of milliseconds");
        else
            request->timeout_ms = value < timeout_max? (uint32_t) value: timeout_max;
    }

    //  Declared body size: over the limit answers now and closes
    const char *length = MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                                      MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (length) {
        char *end = NULL;
        unsigned long long declared = strtoull (length, &end, 10);
        request->declared = declared;
        if (declared > request->body_max) {
            char reason [192];
            snprintf (reason, sizeof (reason), "the request body (%llu bytes) is over this "
                      "route's limit of %zu bytes (raise %s to accept more)", declared,
                      request->body_max, s_limit_key (request));
            if (request->error_status)      //  an earlier error is the better answer
                return s_respond_error (connection, request, request->error_status,
                                        request->error_kind, request->error_reason, 0);
            return s_respond_error (connection, request, LH_ST_TOO_LARGE, "too_large", reason, 0);
        }
        //  A PUT that will be a multipart upload asks storaged now whether
        //  it would take the declared size under the key (its cap, the
        //  conditions; a dry run that holds no PUT slot), so a refusal is
        //  answered before the body is sent, whatever its size
        if (streaming && request->match.route->in == LH_IN_UPLOAD && !request->error_status
        &&  declared > self->part_size) {
            if (lh_gw_upload_check (request->upload, s_thread_client (self)))
                s_upload_failed (request);
            if (request->error_status) {
                lh_gw_upload_destroy (&request->upload);
                return s_respond_error (connection, request, request->error_status,
                                        request->error_kind, request->error_reason,
                                        request->error_retry_ms);
            }
        }
        //  Allocate for what arrives, not for what is declared: a client
        //  that declares 1 MiB and stalls costs no more than it sent
        if (declared > 0 && !request->error_status && !streaming) {
            request->capacity = declared < S_BODY_PREALLOC? declared: S_BODY_PREALLOC;
            request->body = malloc (request->capacity);
            assert (request->body);
        }
    }
    return MHD_YES;
}


//  --------------------------------------------------------------------------
//  A piece of body: keep it up to the limit, drop the rest (413 at the end)

static enum MHD_Result
s_request_take (s_request_t *request, const char *data, size_t size)
{
    if (request->error_status || request->size + size > request->body_max) {
        if (!request->error_status)
            s_request_fail (request, LH_ST_TOO_LARGE, "too_large",
                            "the request body is over this route's limit of %zu bytes "
                            "(raise %s to accept more)", request->body_max, s_limit_key (request));
        free (request->body);
        request->body = NULL;
        request->capacity = 0;
        s_request_discard (request, size);
        return MHD_YES;
    }
    if (request->size + size > request->capacity) {
        size_t capacity = request->capacity? request->capacity * 2: 4096;
        while (capacity < request->size + size)
            capacity *= 2;
        if (capacity > request->body_max)
            capacity = request->body_max;
        char *body = realloc (request->body, capacity);
        assert (body);
        request->body = body;
        request->capacity = capacity;
    }
    memcpy (request->body + request->size, data, size);
    request->size += size;
    return MHD_YES;
}


//  --------------------------------------------------------------------------
//  May the caller of an /mcp request call svc.op? The check its token's
//  role gets on /v1/bus/SVC/OP (acl/ROLE/call; admin ops need admin), for
//  each bus call one of its tool calls makes (lh_mcp_http_allow_fn)

static bool
s_mcp_allow (void *arg, const char *svc, const char *op)
{
    s_request_t *request = (s_request_t *) arg;
    self_t *self = (self_t *) request->owner;
    return request->role && lh_acl_may_call (self->acl, request->role, svc, op);
}


//  --------------------------------------------------------------------------
//  /mcp (lh_mcp_http.h): answered now, or suspended while it waits on the
//  bus and served again when resumed

static enum MHD_Result
s_serve_mcp (self_t *self, struct MHD_Connection *connection, s_request_t *request)
{
    if (!self->mcp)
        return s_respond_error (connection, request, 404, "no_such_route",
                                "MCP is off on this gateway (mcp/http)", 0);
    lh_mcp_http_request_t mcp = { connection, request->method, request->body, request->size,
                                  request->trace, s_mcp_allow, request };
    lh_mcp_http_answer_t answer;
    if (lh_mcp_http_serve (self->mcp, &mcp, &request->mcp, &answer) == 1) {
        request->waiting = true;
        MHD_suspend_connection (connection);
        return MHD_YES;
    }
    if (!answer.response)
        return MHD_NO;
    return s_respond_with (connection, request, answer.status, answer.response, answer.size,
                           answer.content_type, 0);
}


//  --------------------------------------------------------------------------
//  The access handler: called once with the headers, once per piece of
//  body, and once more when the request is complete.

static enum MHD_Result
s_access (void *cls, struct MHD_Connection *connection, const char *url,
          const char *method, const char *version, const char *upload_data,
          size_t *upload_data_size, void **con_cls)
{
    self_t *self = (self_t *) cls;
    s_request_t *request = (s_request_t *) *con_cls;
    if (!request) {
        request = s_request_new (url, method);
        *con_cls = request;
        return s_request_begin (self, connection, request);
    }
    if (request->answered) {
        *upload_data_size = 0;          //  answered early: drop the rest
        return MHD_YES;
    }
    if (request->waiting) {
        //  Resumed: the pump has answered
        request->waiting = false;
        if (request->mcp)
            return s_serve_mcp (self, connection, request);
        return s_answer (self, connection, request);
    }
    bool streaming = request->match.route
                  && (request->match.route->in == LH_IN_UPLOAD
                  ||  request->match.route->in == LH_IN_INGEST);
    if (*upload_data_size) {
        enum MHD_Result rc = streaming
                           ? s_stream_take (request, upload_data, *upload_data_size)
                           : s_request_take (request, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return rc;
    }
    //  The whole request is in: answer it
    if (request->conn)
        __atomic_store_n (&request->conn->busy, 1, __ATOMIC_RELAXED);
    if (request->error_status)
        return s_respond_error (connection, request, request->error_status,
                                request->error_kind, request->error_reason,
                                request->error_retry_ms);
    const lh_route_t *route = request->match.route;
    if (route->service == NULL) {
        if (streq (request->match.op, "health"))
            return s_serve_health (self, connection, request);
        if (streq (request->match.op, "mcp"))
            return s_serve_mcp (self, connection, request);
        if (streq (request->match.op, "console"))
            return s_serve_console (self, connection, request);
        if (streq (request->match.op, "tap_stream"))
            return s_serve_tap_stream (self, connection, request);
        return s_respond_error (connection, request, LH_ST_INTERNAL, "internal",
                                "route has no local handler", 0);
    }
    if (route->in == LH_IN_UPLOAD)
        return s_serve_upload (self, connection, request);
    if (route->in == LH_IN_INGEST)
        return s_serve_ingest (self, connection, request);
    if (route->out == LH_OUT_STREAM)
        return s_serve_stream (self, connection, request);
    return s_serve_bus (self, connection, request);
}


//  --------------------------------------------------------------------------
//  Write value in decimal at at; returns the end

static char *
s_decimal (char *at, uint64_t value)
{
    char digits [20];
    size_t size = 0;
    do {
        digits [size++] = (char) ('0' + value % 10);
        value /= 10;
    } while (value);
    while (size)
        *at++ = digits [--size];
    return at;
}


//  --------------------------------------------------------------------------
//  A request ended while tracing is on: its SERVER span, the root of its
//  trace (or the child of the caller's traceparent). Its id is the one the
//  response's traceparent named and its bus calls carried ("ps").

static void
s_request_span (s_request_t *request, int64_t now)
{
    const lh_route_t *route = request->match.route;
    char name [LH_SPAN_NAME_MAX + 1];
    snprintf (name, sizeof (name), "%s %s", request->method, route? route->pattern: "(no route)");
    lh_span_t span;
    lh_span_start (&span, request->trace, request->remote_parent, S_ACTOR, name, LH_SPAN_SERVER);
    if (!span.active)
        return;
    memcpy (span.id, request->span, sizeof (span.id));
    span.end_ns = lh_trace_now_ns ();
    uint64_t took = now > request->started? (uint64_t) (now - request->started) * 1000: 0;
    span.start_ns = span.end_ns > took? span.end_ns - took: 0;
    lh_span_attr_str (&span, "http.request.method", request->method);
    if (route)
        lh_span_attr_str (&span, "http.route", route->pattern);
    lh_span_attr_str (&span, "url.path", request->path);
    lh_span_attr_int (&span, "http.response.status_code", request->status);
    if (route && *request->match.service) {
        char bus [2 * LH_NAME_MAX + 2];
        snprintf (bus, sizeof (bus), "%s.%s", request->match.service, request->match.op);
        lh_span_attr_str (&span, "lh.bus", bus);
    }
    lh_span_end (&span, request->status);
}


//  --------------------------------------------------------------------------
//  A request ended (answered, or its connection closed): log one line

static void
s_completed (void *cls, struct MHD_Connection *connection, void **con_cls,
             enum MHD_RequestTerminationCode code)
{
    s_request_t *request = (s_request_t *) *con_cls;
    if (!request)
        return;
    int64_t now = zclock_usecs ();
    const char *ending = code == MHD_REQUEST_TERMINATED_COMPLETED_OK? ""
                       : code == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED? " (timed out)"
                       : code == MHD_REQUEST_TERMINATED_CLIENT_ABORT? " (client closed)"
                       : " (connection closed)";
    //  "POST /v1/bus/echo/echo 200 16 bytes 270 us": one line per request,
    //  so built without printf
    char line [512];
    size_t method = strlen (request->method);
    size_t path = strlen (request->path);
    if (method + path + strlen (ending) + 80 <= sizeof (line)) {
        char *at = line;
        memcpy (at, request->method, method);
        at += method;
        *at++ = ' ';
        memcpy (at, request->path, path);
        at += path;
        *at++ = ' ';
        at = s_decimal (at, request->status);
        *at++ = ' ';
        at = s_decimal (at, request->bytes);
        memcpy (at, " bytes ", 7);
        at += 7;
        at = s_decimal (at, (uint64_t) (now > request->started? now - request->started: 0));
        memcpy (at, " us", 3);
        at += 3;
        memcpy (at, ending, strlen (ending));
        at += strlen (ending);
        lh_log_text (LH_LOG_INFO, S_ACTOR, request->trace, line, (size_t) (at - line));
    }
    else
        lh_info (S_ACTOR, request->trace, "%s %s %u %zu bytes %" PRId64 " us%s",
                 request->method, request->path, request->status, request->bytes,
                 now - request->started, ending);
    if (lh_trace_on ())
        s_request_span (request, now);
    if (request->conn) {
        __atomic_store_n (&request->conn->since, now, __ATOMIC_RELAXED);
        __atomic_store_n (&request->conn->busy, 0, __ATOMIC_RELAXED);
    }
    s_request_destroy (&request);
    *con_cls = NULL;
}


//  --------------------------------------------------------------------------
//  The text form of an IP address (the per-address count's key). Returns
//  0, or -1 for an address that is not IPv4 or IPv6.

static int
s_address_key (const struct sockaddr *address, char *key, size_t size)
{
    const void *bytes = address->sa_family == AF_INET
                      ? (const void *) &((const struct sockaddr_in *) address)->sin_addr
                      : address->sa_family == AF_INET6
                      ? (const void *) &((const struct sockaddr_in6 *) address)->sin6_addr: NULL;
    if (!bytes || !inet_ntop (address->sa_family, bytes, key, (socklen_t) size))
        return -1;
    return 0;
}


//  --------------------------------------------------------------------------
//  Connections come and go: keep the registry the read timeout scans

static void
s_connection (void *cls, struct MHD_Connection *connection, void **socket_context,
              enum MHD_ConnectionNotificationCode code)
{
    self_t *self = (self_t *) cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info (connection, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!info)
            return;
        s_conn_t *conn = (s_conn_t *) zmalloc (sizeof (s_conn_t));
        assert (conn);
        conn->fd = info->connect_fd;
        conn->since = zclock_usecs ();
        const union MHD_ConnectionInfo *peer =
            MHD_get_connection_info (connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (self->conn_per_ip && peer && peer->client_addr
        &&  s_address_key (peer->client_addr, conn->ip, sizeof (conn->ip)))
            conn->ip [0] = 0;
        pthread_mutex_lock (&self->conn_lock);
        self->conn_open++;
        if (*conn->ip) {
            uintptr_t open = (uintptr_t) zhashx_lookup (self->per_ip, conn->ip);
            zhashx_update (self->per_ip, conn->ip, (void *) (open + 1));
        }
        conn->next = self->conns;
        if (self->conns)
            self->conns->prev = conn;
        self->conns = conn;
        pthread_mutex_unlock (&self->conn_lock);
        *socket_context = conn;
    }
    else
    if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        s_conn_t *conn = (s_conn_t *) *socket_context;
        pthread_mutex_lock (&self->conn_lock);
        self->conn_open--;
        if (conn->prev)
            conn->prev->next = conn->next;
        else
            self->conns = conn->next;
        if (conn->next)
            conn->next->prev = conn->prev;
        if (*conn->ip) {
            uintptr_t open = (uintptr_t) zhashx_lookup (self->per_ip, conn->ip);
            if (open > 1)
                zhashx_update (self->per_ip, conn->ip, (void *) (open - 1));
            else
                zhashx_delete (self->per_ip, conn->ip);
        }
        pthread_mutex_unlock (&self->conn_lock);
        free (conn);
        *socket_context = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Cut connections whose request has been arriving for too long. The
//  registry lock is held across shutdown(): a connection is removed (under
//  the same lock) before libmicrohttpd closes its socket, so the fd we
//  shut down is always still that connection's.

static void
s_read_timeouts (self_t *self)
{
    int64_t now = zclock_usecs ();
    pthread_mutex_lock (&self->conn_lock);
    for (s_conn_t *conn = self->conns; conn; conn = conn->next) {
        if (conn->killed || __atomic_load_n (&conn->busy, __ATOMIC_RELAXED))
            continue;
        if (now - __atomic_load_n (&conn->since, __ATOMIC_RELAXED) > self->read_timeout_us) {
            shutdown (conn->fd, SHUT_RDWR);
            conn->killed = true;
            self->read_timeouts++;
        }
    }
    pthread_mutex_unlock (&self->conn_lock);
}


//  --------------------------------------------------------------------------
//  libmicrohttpd's own messages go to our log

static void
s_mhd_log (void *cls, const char *format, va_list args)
{
    char text [512];
    vsnprintf (text, sizeof (text), format, args);
    size_t size = strlen (text);
    while (size && (text [size - 1] == '\n' || text [size - 1] == '\r'))
        text [--size] = 0;
    lh_debug (S_ACTOR, NULL, "libmicrohttpd: %s", text);
}


//  --------------------------------------------------------------------------
//  Refresh the health snapshot: broker.ping and broker.services

static void
s_health_refresh (self_t *self)
{
    if (!self->health_client) {
        char name [LH_NAME_MAX + 1];
        snprintf (name, sizeof (name), "%s-health", self->name);
        self->health_client = lh_client_new (&self->link, name);
    }
    json_t *broker = json_object ();
    json_t *services = json_object ();
    bool ok = false;
    lh_client_t *client = self->health_client;
    if (client) {
        lh_call_opts_t opts = { .timeout_ms = S_HEALTH_CALL_MS };
        lh_reply_t *reply = NULL;
        int64_t sent = zclock_usecs ();
        if (lh_client_call (client, "broker", "ping", NULL, 0, &opts, &reply) == 0
        &&  lh_reply_status (reply) == LH_ST_OK) {
            ok = true;
            json_object_set_new (broker, "rtt_us", json_integer (zclock_usecs () - sent));
            const msgpack_object *object = lh_reply_object (reply);
            const char *name;
            size_t size;
            if (object && lh_obj_str (object, "name", &name, &size))
                json_object_set_new (broker, "name", json_stringn (name, size));
        }
        lh_reply_destroy (&reply);
        if (ok && lh_client_call (client, "broker", "services", NULL, 0, &opts, &reply) == 0
        &&  lh_reply_status (reply) == LH_ST_OK) {
            const msgpack_object *object = lh_reply_object (reply);
            const msgpack_object *list = object? lh_obj_get (object, "services"): NULL;
            if (list && list->type == MSGPACK_OBJECT_ARRAY)
                for (uint32_t index = 0; index < list->via.array.size; index++) {
                    const msgpack_object *item = &list->via.array.ptr [index];
                    const char *name;
                    size_t size;
                    uint64_t workers = 0, queued = 0;
                    if (!lh_obj_str (item, "name", &name, &size)
                    ||  (size == 6 && memcmp (name, "broker", 6) == 0))
                        continue;       //  the broker has its own entry
                    lh_obj_uint (item, "workers", &workers);
                    lh_obj_uint (item, "queued", &queued);
                    json_t *service = json_object ();
                    json_object_set_new (service, "ok", json_boolean (workers > 0));
                    json_object_set_new (service, "workers", json_integer ((json_int_t) workers));
                    json_object_set_new (service, "queued", json_integer ((json_int_t) queued));
                    char key [LH_NAME_MAX + 1];
                    snprintf (key, sizeof (key), "%.*s", (int) size, name);
                    json_t *valid = json_stringn (name, size);
                    if (valid)
                        json_object_set_new (services, key, service);
                    else
                        json_decref (service);
                    json_decref (valid);
                }
        }
        lh_reply_destroy (&reply);
    }
    json_object_set_new (broker, "ok", json_boolean (ok));
    char *broker_text = json_dumps (broker, JSON_COMPACT);
    char *services_text = json_dumps (services, JSON_COMPACT);
    json_decref (broker);
    json_decref (services);
    char *snapshot = NULL;
    if (asprintf (&snapshot, "\"broker\":%s,\"services\":%s", broker_text, services_text) < 0)
        snapshot = NULL;
    free (broker_text);
    free (services_text);

    pthread_mutex_lock (&self->health_lock);
    if (snapshot) {
        free (self->health);
        self->health = snapshot;
    }
    self->broker_ok = ok;
    self->health_at = zclock_mono ();
    pthread_mutex_unlock (&self->health_lock);
}


//  --------------------------------------------------------------------------
//  Re-read the tokens; log what happened. Returns 0 or -1 with *detail_p.

static int
s_tokens_reload (self_t *self, bool force, char **detail_p)
{
    char *error = NULL;
    int rc = lh_http_auth_reload (self->auth, force, &error);
    if (rc == 1) {
        char *tokens = lh_http_auth_describe (self->auth);
        lh_info (S_ACTOR, NULL, "bearer tokens reloaded: %zu accepted: %s",
                 lh_http_auth_tokens (self->auth), tokens);
        free (tokens);
    }
    else
    if (rc == -1)
        lh_warn (S_ACTOR, NULL, "bearer tokens not reloaded: %s", error);
    if (detail_p)
        *detail_p = rc == -1? error
                  : zsys_sprintf ("%zu tokens", lh_http_auth_tokens (self->auth));
    else
        free (error);
    return rc == -1? -1: 0;
}


//  --------------------------------------------------------------------------
//  Parse gateway/listen into an address: HOST:PORT or [IPV6]:PORT, with or
//  without http:// before it (as the gateway prints its URL) and a lone
//  '/' after it. Returns 0, or -1 with *error_p.

#define S_LISTEN_FORMS  "HOST:PORT, [IPV6]:PORT, http://HOST:PORT or http://[IPV6]:PORT"

static int
s_listen_parse (const char *listen, struct sockaddr_storage *address,
                socklen_t *size, char **error_p)
{
    const char *given = listen;
    const char *scheme = strstr (listen, "://");
    if (scheme) {
        if (scheme - listen != 4 || strncasecmp (listen, "http", 4) != 0) {
            *error_p = zsys_sprintf ("gateway/listen '%s': the gateway serves plain http:// "
                                     "only (put a TLS proxy in front for https, docs/http.md); "
                                     "write " S_LISTEN_FORMS, given);
            return -1;
        }
        listen = scheme + 3;
    }
    char authority [300];
    size_t length = strcspn (listen, "/?#@");
    if (listen [length] && !(scheme && streq (listen + length, "/"))) {
        *error_p = zsys_sprintf ("gateway/listen '%s': only an address may be given, no path, "
                                 "query or user name; write " S_LISTEN_FORMS, given);
        return -1;
    }
    if (length >= sizeof (authority)) {
        *error_p = zsys_sprintf ("gateway/listen '%.64s...' is too long", given);
        return -1;
    }
    memcpy (authority, listen, length);
    authority [length] = 0;
    listen = authority;

    char host [256];
    const char *port;
    if (listen [0] == '[') {
        const char *close = strchr (listen, ']');
        if (!close || close [1] != ':' || (size_t) (close - listen - 1) >= sizeof (host)) {
            *error_p = zsys_sprintf ("gateway/listen '%s' must be " S_LISTEN_FORMS, given);
            return -1;
        }
        snprintf (host, sizeof (host), "%.*s", (int) (close - listen - 1), listen + 1);
        port = close + 2;
    }
    else {
        const char *colon = strrchr (listen, ':');
        if (!colon || (size_t) (colon - listen) >= sizeof (host)) {
            *error_p = zsys_sprintf ("gateway/listen '%s' must be " S_LISTEN_FORMS, given);
            return -1;
        }
        snprintf (host, sizeof (host), "%.*s", (int) (colon - listen), listen);
        port = colon + 1;
    }
    char *end = NULL;
    long number = strtol (port, &end, 10);
    if (*port == 0 || *end || number < 0 || number > 65535) {
        *error_p = zsys_sprintf ("gateway/listen '%s': the port must be 0..65535", given);
        return -1;
    }
    struct addrinfo hints, *result = NULL;
    memset (&hints, 0, sizeof (hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    int rc = getaddrinfo (*host? host: NULL, port, &hints, &result);
    if (rc || !result) {
        *error_p = zsys_sprintf ("gateway/listen '%s': %s", given, gai_strerror (rc));
        return -1;
    }
    memcpy (address, result->ai_addr, result->ai_addrlen);
    *size = result->ai_addrlen;
    freeaddrinfo (result);
    return 0;
}


//  --------------------------------------------------------------------------
//  Open the listening socket (non-blocking). Returns it, or -1 with the
//  reason in *error_p.

static int
s_listen_open (const struct sockaddr_storage *address, socklen_t size, char **error_p)
{
    int fd = socket (address->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *error_p = strdup (strerror (errno));
        return -1;
    }
    int on = 1;
    setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof (on));
    if (address->ss_family == AF_INET6)
        setsockopt (fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof (on));
    if (bind (fd, (const struct sockaddr *) address, size) || listen (fd, 511)) {
        *error_p = strdup (strerror (errno));
        close (fd);
        return -1;
    }
    return fd;
}


//  --------------------------------------------------------------------------
//  Accept policy: refuse (close at once) a connection past gateway/conn_max,
//  or from an address that already has gateway/conn_per_ip open (both
//  counted across all HTTP threads)

static enum MHD_Result
s_accept_policy (void *cls, const struct sockaddr *address, socklen_t size)
{
    self_t *self = (self_t *) cls;
    pthread_mutex_lock (&self->conn_lock);
    unsigned total = self->conn_open;
    pthread_mutex_unlock (&self->conn_lock);
    if (total >= self->conn_max) {
        lh_debug (S_ACTOR, NULL, "refused a connection: %u already open (gateway/conn_max)",
                  total);
        return MHD_NO;
    }
    if (self->conn_per_ip == 0)
        return MHD_YES;
    char key [INET6_ADDRSTRLEN + 1];
    if (s_address_key (address, key, sizeof (key)))
        return MHD_YES;                 //  not an IP address: not counted
    pthread_mutex_lock (&self->conn_lock);
    uintptr_t open = (uintptr_t) zhashx_lookup (self->per_ip, key);
    pthread_mutex_unlock (&self->conn_lock);
    if (open >= self->conn_per_ip) {
        lh_debug (S_ACTOR, NULL, "refused a connection from %s: %u already open", key,
                  self->conn_per_ip);
        return MHD_NO;
    }
    return MHD_YES;
}


//  --------------------------------------------------------------------------
//  Create one HTTP thread's daemon (lh_http_pool calls this per thread).
//  gateway/conn_max is enforced by the accept policy across all threads,
//  which closes a connection past it at once; libmicrohttpd's own limit
//  (it stops accepting, leaving new connections waiting unanswered in the
//  backlog) is set above anything one thread can reach.

static struct MHD_Daemon *
s_daemon_start (void *arg, unsigned flags, int listen_fd, unsigned share)
{
    self_t *self = (self_t *) arg;
    share = self->conn_max + (unsigned) self->threads;
    //  The logger comes first so that option warnings reach it too
    return MHD_start_daemon (flags, 0, s_accept_policy, self, s_access, self,
        MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log, self,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket) listen_fd,
        MHD_OPTION_CONNECTION_LIMIT, share,
        MHD_OPTION_CONNECTION_TIMEOUT, self->idle_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, self->header_max,
        MHD_OPTION_NOTIFY_COMPLETED, s_completed, self,
        MHD_OPTION_NOTIFY_CONNECTION, s_connection, self,
        MHD_OPTION_END);
}


//  --------------------------------------------------------------------------
//  Start serving. Returns 0 with *detail_p the URL, or -1 with the reason.

static int
s_self_start (self_t *self, lh_config_t *config, char **detail_p)
{
    self->threads = (int) lh_config_int (config, "gateway/threads");
    int64_t conn_max = lh_config_int (config, "gateway/conn_max");
    int64_t conn_per_ip = lh_config_int (config, "gateway/conn_per_ip");
    int64_t idle_timeout = lh_config_int (config, "gateway/idle_timeout_s");
    int64_t read_timeout = lh_config_int (config, "gateway/read_timeout_s");
    int64_t header_max = lh_config_int (config, "gateway/header_max");
    int64_t body_max = lh_config_int (config, "gateway/body_max");
    int64_t depth = lh_config_int (config, "gateway/json_depth");
    int64_t timeout = lh_config_int (config, "gateway/timeout_ms");
    int64_t timeout_max = lh_config_int (config, "gateway/timeout_max_ms");
    self->token_check_ms = lh_config_int (config, "gateway/token_check_ms");
    self->health_ms = lh_config_int (config, "gateway/health_ms");

    //  Each key's range was checked when the config loaded
    self->body_max = (size_t) body_max;
    self->limits = lh_limits_default;
    self->limits.max_depth = (size_t) depth;
    if (self->limits.max_string > self->body_max)
        self->limits.max_string = self->body_max? self->body_max: 1;
    self->timeout_ms = (uint32_t) timeout;
    self->timeout_max_ms = (uint32_t) timeout_max;
    self->read_timeout_us = read_timeout * 1000000;

    //  What each caller's role may call
    char *error = NULL;
    self->acl = lh_acl_new ();
    if (lh_acl_load (self->acl, config, &error)) {
        *detail_p = error;
        return -1;
    }
    //  Tap streams: who may open one, the broker's tap to read
    const char *tap_roles = lh_config_str (config, "gateway/tap_roles");
    char *roles = strdup (tap_roles);
    assert (roles);
    char *save = NULL;
    for (char *role = strtok_r (roles, ", ", &save); role; role = strtok_r (NULL, ", ", &save))
        if (!lh_acl_role_valid (role)) {
            *detail_p = zsys_sprintf ("config gateway/tap_roles: '%s' is not a role (%s)",
                                      role, LH_ACL_ROLES);
            free (roles);
            return -1;
        }
    free (roles);
    lh_tap_sse_opts_t tap_opts = {
        .tap = self->tap_link,
        .no_tap = self->no_tap? self->no_tap: "the gateway has no tap to read",
        .roles = tap_roles,
        .buffer = (size_t) lh_config_int (config, "gateway/tap_buffer"),
        .streams_max = (size_t) lh_config_int (config, "gateway/tap_streams"),
        .heartbeat_ms = 15000
    };
    self->tap_sse = lh_tap_sse_new (&tap_opts);

    //  Tokens and allow-list
    self->auth = lh_http_auth_new (lh_config_str (config, "gateway/token_file"),
                                   lh_config_str (config, "gateway/allow"), &error);
    if (!self->auth) {
        *detail_p = error;
        return -1;
    }
    //  Address; a non-loopback one needs a token
    const char *listen = lh_config_str (config, "gateway/listen");
    struct sockaddr_storage address;
    socklen_t address_size = 0;
    if (s_listen_parse (listen, &address, &address_size, detail_p))
        return -1;
    if (!lh_http_auth_loopback ((struct sockaddr *) &address)
    &&  lh_http_auth_tokens (self->auth) == 0) {
        *detail_p = zsys_sprintf ("refusing to listen on %s without a bearer token: set "
                                  "LAKEHOUSE_TOKEN (or LAKEHOUSE_TOKENS) or gateway/token_file, "
                                  "or listen on a loopback address", listen);
        return -1;
    }
    int rc = pthread_key_create (&self->client_key, s_client_free);
    assert (rc == 0);
    self->client_key_made = true;

    //  Per-route limits and deadlines, from the keys the rows name
    size_t routes = lh_routes_count ();
    self->route_body_max = (size_t *) calloc (routes, sizeof (size_t));
    self->route_timeout_ms = (uint32_t *) calloc (routes, sizeof (uint32_t));
    assert (self->route_body_max && self->route_timeout_ms);
    for (size_t index = 0; index < routes; index++) {
        const lh_route_t *route = lh_routes_at (index);
        int64_t limit = route->limit_key? lh_config_int (config, route->limit_key): body_max;
        int64_t deadline = route->timeout_key? lh_config_int (config, route->timeout_key): timeout;
        self->route_body_max [index] = (size_t) limit;
        self->route_timeout_ms [index] = (uint32_t) deadline;
    }
    int64_t part_size = lh_config_int (config, "gateway/part_size");
    int64_t storage_timeout = lh_config_int (config, "gateway/storage_timeout_ms");
    self->part_size = (size_t) part_size;
    self->storage_timeout_ms = (uint32_t) storage_timeout;
    self->idle_timeout_s = (unsigned) idle_timeout;
    self->header_max = (size_t) header_max;
    self->conn_per_ip = (unsigned) conn_per_ip;
    self->conn_max = (unsigned) conn_max;

    //  MCP at /mcp, before any HTTP thread may serve it
    if (lh_config_bool (config, "mcp/http"))
        self->mcp = lh_mcp_http_new (config, &self->link, self->name);

    //  One listening socket, shared by the HTTP threads' daemons
    self->listen_fd = s_listen_open (&address, address_size, detail_p);
    if (self->listen_fd < 0) {
        char *reason = *detail_p;
        *detail_p = zsys_sprintf ("cannot listen on %s: %s", listen, reason);
        free (reason);
        return -1;
    }
    self->pool = lh_http_pool_new (self->listen_fd, self->threads, (unsigned) conn_max,
                                   s_daemon_start, self, &error);
    if (!self->pool) {
        *detail_p = zsys_sprintf ("cannot serve on %s: %s", listen, error);
        free (error);
        return -1;
    }
    //  Each HTTP thread's bus client, now if the broker is there
    lh_http_pool_connect (self->pool, &self->link, self->name);
    self->next_connect = zclock_mono () + S_CONNECT_MS;

    struct sockaddr_storage bound;
    socklen_t bound_size = sizeof (bound);
    unsigned port = 0;
    if (getsockname (self->listen_fd, (struct sockaddr *) &bound, &bound_size) == 0)
        port = ntohs (bound.ss_family == AF_INET6? ((struct sockaddr_in6 *) &bound)->sin6_port
                                                 : ((struct sockaddr_in *) &bound)->sin_port);
    char host [INET6_ADDRSTRLEN] = "";
    if (address.ss_family == AF_INET6)
        inet_ntop (AF_INET6, &((struct sockaddr_in6 *) &address)->sin6_addr, host, sizeof (host));
    else
        inet_ntop (AF_INET, &((struct sockaddr_in *) &address)->sin_addr, host, sizeof (host));
    self->url = address.ss_family == AF_INET6? zsys_sprintf ("http://[%s]:%u", host, port)
                                             : zsys_sprintf ("http://%s:%u", host, port);

    pthread_once (&s_sighup_once, s_sighup_install);
    self->sighups = s_sighups;
    self->started_ms = zclock_mono ();
    s_health_refresh (self);
    self->next_health = zclock_mono () + self->health_ms;
    self->next_token_check = zclock_mono () + self->token_check_ms;
    char *tokens = lh_http_auth_describe (self->auth);
    lh_info (S_ACTOR, NULL, "listening on %s (%d threads, %zu tokens%s%s%s)", self->url,
             self->threads, lh_http_auth_tokens (self->auth), *tokens? ": ": "", tokens,
             *lh_config_str (config, "gateway/allow")? ", allow-list": "");
    free (tokens);
    *detail_p = strdup (self->url);
    return 0;
}


//  --------------------------------------------------------------------------
//  Housekeeping, every tick: SIGHUP, token file, read timeouts, health

static void
s_self_tick (self_t *self)
{
    if (!self->pool)
        return;
    int64_t now = zclock_mono ();
    if (now >= self->next_connect) {
        lh_http_pool_connect (self->pool, &self->link, self->name);
        self->next_connect = zclock_mono () + S_CONNECT_MS;
    }
    int sighups = s_sighups;
    if (sighups != self->sighups) {
        self->sighups = sighups;
        s_tokens_reload (self, true, NULL);
    }
    else
    if (now >= self->next_token_check) {
        s_tokens_reload (self, false, NULL);
        self->next_token_check = now + self->token_check_ms;
    }
    s_read_timeouts (self);
    if (self->mcp)
        lh_mcp_http_tick (self->mcp);
    if (now >= self->next_health) {
        s_health_refresh (self);
        self->next_health = zclock_mono () + self->health_ms;
    }
}


//  --------------------------------------------------------------------------
//  Create and destroy the actor's state

static self_t *
s_self_new (zsock_t *pipe, lh_gateway_args_t *args)
{
    self_t *self = (self_t *) zmalloc (sizeof (self_t));
    assert (self);
    self->pipe = pipe;
    self->endpoint = strdup (args->link.endpoint? args->link.endpoint: "");
    self->server_key = args->link.server_key? strdup (args->link.server_key): NULL;
    self->link.endpoint = self->endpoint;
    self->link.server_key = self->server_key;
    self->link.cert = args->link.cert;
    if (args->admin_link.endpoint) {
        self->admin_endpoint = strdup (args->admin_link.endpoint);
        self->admin_server_key = args->admin_link.server_key?
                                 strdup (args->admin_link.server_key): NULL;
        self->admin_link.endpoint = self->admin_endpoint;
        self->admin_link.server_key = self->admin_server_key;
        self->admin_link.cert = args->admin_link.cert;
    }
    if (args->tap.endpoint) {
        self->tap_endpoint = strdup (args->tap.endpoint);
        self->tap_server_key = args->tap.server_key? strdup (args->tap.server_key): NULL;
        self->tap_link.endpoint = self->tap_endpoint;
        self->tap_link.server_key = self->tap_server_key;
        self->tap_link.cert = args->tap.cert;
    }
    self->no_tap = args->no_tap? strdup (args->no_tap): NULL;
    pthread_mutex_init (&self->admin_lock, NULL);
    self->name = strdup (args->name? args->name: "gateway");
    pthread_mutex_init (&self->health_lock, NULL);
    pthread_mutex_init (&self->conn_lock, NULL);
    self->listen_fd = -1;
    self->per_ip = zhashx_new ();
    assert (self->per_ip);
    return self;
}

static void
s_self_destroy (self_t **self_p)
{
    if (*self_p) {
        self_t *self = *self_p;
        //  Each HTTP thread answers what waits on its pump, stops its
        //  daemon and ends; its streaming bus client is destroyed by the
        //  thread-specific destructor as it ends. MCP and tap streams end
        //  first: a connection still suspended would stop a daemon for good.
        if (self->mcp)
            lh_mcp_http_stop (self->mcp);
        lh_tap_sse_stop (self->tap_sse);
        lh_http_pool_destroy (&self->pool);
        lh_mcp_http_destroy (&self->mcp);
        lh_tap_sse_destroy (&self->tap_sse);
        free (self->tap_endpoint);
        free (self->tap_server_key);
        free (self->no_tap);
        if (self->listen_fd >= 0)
            close (self->listen_fd);
        zhashx_destroy (&self->per_ip);
        free (self->route_body_max);
        free (self->route_timeout_ms);
        if (self->client_key_made)
            pthread_key_delete (self->client_key);
        lh_client_destroy (&self->health_client);
        lh_client_destroy (&self->admin_client);
        pthread_mutex_destroy (&self->admin_lock);
        lh_acl_destroy (&self->acl);
        free (self->admin_endpoint);
        free (self->admin_server_key);
        lh_http_auth_destroy (&self->auth);
        pthread_mutex_destroy (&self->health_lock);
        pthread_mutex_destroy (&self->conn_lock);
        free (self->health);
        free (self->url);
        free (self->name);
        free (self->endpoint);
        free (self->server_key);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  The actor: start, send the start reply, then serve pipe commands and
//  tick until $TERM

void
lh_gateway_actor (zsock_t *pipe, void *args)
{
    lh_gateway_args_t *gateway_args = (lh_gateway_args_t *) args;
    assert (gateway_args && gateway_args->config);
    self_t *self = s_self_new (pipe, gateway_args);
    pthread_setname_np (pthread_self (), "gateway");
    zsock_signal (pipe, 0);

    char *detail = NULL;
    int rc = s_self_start (self, gateway_args->config, &detail);
    if (rc) {
        lh_error (S_ACTOR, NULL, "not started: %s", detail);
        lh_http_pool_destroy (&self->pool);
    }
    zsock_send (pipe, "ss", rc == 0? "0": "-1", detail? detail: "");
    free (detail);

    zpoller_t *poller = zpoller_new (pipe, NULL);
    while (!zsys_interrupted) {
        void *which = zpoller_wait (poller, S_TICK_MS);
        if (which == pipe) {
            char *command = zstr_recv (pipe);
            if (!command)
                break;
            if (streq (command, "$TERM")) {
                zstr_free (&command);
                break;
            }
            if (streq (command, "RELOAD")) {
                char *reload = NULL;
                int status = self->auth? s_tokens_reload (self, true, &reload): -1;
                zsock_send (pipe, "ss", status == 0? "0": "-1",
                            reload? reload: "the gateway is not running");
                free (reload);
            }
            else
            if (streq (command, "URL"))
                zsock_send (pipe, "ss", self->url? "0": "-1", self->url? self->url: "");
            else
                lh_warn (S_ACTOR, NULL, "unknown pipe command '%s'", command);
            zstr_free (&command);
        }
        else
        if (zpoller_terminated (poller))
            break;
        s_self_tick (self);
    }
    zpoller_destroy (&poller);
    s_self_destroy (&self);
}


//  --------------------------------------------------------------------------
//  Self test: trace ids, status mapping, deadline header, listen parsing

void
lh_gateway_test (bool verbose)
{
    printf (" * lh_gateway: ");
    char trace [LH_TRACE_SIZE + 1];
    char flags [3];

    //  traceparent: table of valid and invalid headers
    struct {
        const char *text;
        int rc;
    } cases [] = {
        { "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 0 },
        { "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", 0 },
        { "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", 0 },
        { "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 0 },
        { "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", -1 },
        { "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", -1 },
        { "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", -1 },
        { "00-00000000000000000000000000000000-00f067aa0ba902b7-01", -1 },
        { "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", -1 },
        { "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", -1 },
        { "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", -1 },
        { "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g", -1 },
        { "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", -1 },
        { "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", -1 },
        { "", -1 },
        { "garbage", -1 },
    };
    for (size_t index = 0; index < sizeof (cases) / sizeof (cases [0]); index++) {
        int rc = s_traceparent_parse (cases [index].text, trace, flags);
        if (verbose)
            printf ("\n   '%s' -> %d", cases [index].text, rc);
        assert (rc == cases [index].rc);
        if (rc == 0)
            assert (streq (trace, "4bf92f3577b34da6a3ce929d0e0e4736"));
    }
    assert (s_traceparent_parse (NULL, trace, flags) == -1);
    s_traceparent_parse (cases [0].text, trace, flags);
    assert (streq (flags, "01"));

    //  Choosing a trace: traceparent first, then the Lakehouse header, else new
    s_request_t *request = s_request_new ("/x", "GET");
    s_trace_choose (request, cases [0].text, "11111111111111111111111111111111");
    assert (streq (request->trace, "4bf92f3577b34da6a3ce929d0e0e4736"));
    assert (streq (request->flags, "01"));
    assert (streq (request->remote_parent, "00f067aa0ba902b7"));
    assert (strlen (request->span) == 16 && s_is_hex (request->span, 16, true));
    s_trace_choose (request, cases [6].text, "11111111111111111111111111111111");
    assert (streq (request->trace, "11111111111111111111111111111111"));
    assert (streq (request->remote_parent, ""));
    s_trace_choose (request, NULL, "1111111111111111111111111111111");
    assert (strlen (request->trace) == 32 && s_is_hex (request->trace, 32, true));
    assert (!streq (request->trace, "11111111111111111111111111111111"));
    char first [LH_TRACE_SIZE + 1];
    strcpy (first, request->trace);
    s_trace_choose (request, NULL, NULL);
    assert (!streq (first, request->trace));
    s_request_fail (request, 401, "unauthorized", "no %s", "token");
    s_request_fail (request, 404, "no_such_route", "later");
    assert (request->error_status == 401 && streq (request->error_reason, "no token"));
    s_request_destroy (&request);
    assert (request == NULL);

    //  Status mapping and Retry-After
    assert (s_http_status (200) == 200);
    assert (s_http_status (429) == 429);
    assert (s_http_status (504) == 504);
    assert (s_http_status (0) == 502);
    assert (s_http_status (99) == 502);
    assert (s_http_status (600) == 502);
    assert (s_retry_after_s (0) == 1);
    assert (s_retry_after_s (1) == 1);
    assert (s_retry_after_s (1000) == 1);
    assert (s_retry_after_s (1001) == 2);
    assert (s_retry_after_s (2500) == 3);

    //  Deadline header
    uint64_t value = 0;
    assert (s_timeout_parse ("250", &value) == 0 && value == 250);
    assert (s_timeout_parse ("0", &value) == -1);
    assert (s_timeout_parse ("-5", &value) == -1);
    assert (s_timeout_parse ("12a", &value) == -1);
    assert (s_timeout_parse ("", &value) == -1);
    assert (s_timeout_parse ("99999999999", &value) == -1);
    assert (s_timeout_parse (NULL, &value) == -1);

    //  Listen addresses
    struct sockaddr_storage address;
    socklen_t size;
    char *error = NULL;
    assert (s_listen_parse ("127.0.0.1:3110", &address, &size, &error) == 0);
    assert (address.ss_family == AF_INET && lh_http_auth_loopback ((struct sockaddr *) &address));
    assert (s_listen_parse ("[::1]:0", &address, &size, &error) == 0);
    assert (address.ss_family == AF_INET6 && lh_http_auth_loopback ((struct sockaddr *) &address));
    assert (s_listen_parse ("0.0.0.0:80", &address, &size, &error) == 0);
    assert (!lh_http_auth_loopback ((struct sockaddr *) &address));
    //  The URL form, as README and the ready line write it
    const char *urls [] = { "http://127.0.0.1:3110", "HTTP://127.0.0.1:3110/", "http://[::1]:0",
                            "http://localhost:0", "http://:0" };
    for (size_t index = 0; index < sizeof (urls) / sizeof (urls [0]); index++) {
        assert (s_listen_parse (urls [index], &address, &size, &error) == 0);
        assert (index == 4 || lh_http_auth_loopback ((struct sockaddr *) &address));
    }
    assert (s_listen_parse ("http://127.0.0.1:3110", &address, &size, &error) == 0);
    assert (ntohs (((struct sockaddr_in *) &address)->sin_port) == 3110);
    const char *bad [] = { "127.0.0.1", "127.0.0.1:x", "127.0.0.1:70000", "[::1:80", "[::1]80",
                           "https://127.0.0.1:3110", "tcp://127.0.0.1:3110", "http://127.0.0.1:3110/v1",
                           "http://127.0.0.1", "http://user@127.0.0.1:80", "127.0.0.1:3110/",
                           "http://127.0.0.1:3110?x", "ftp://[::1]:21", "http:/127.0.0.1:80" };
    for (size_t index = 0; index < sizeof (bad) / sizeof (bad [0]); index++) {
        assert (s_listen_parse (bad [index], &address, &size, &error) == -1);
        if (verbose)
            printf ("\n   %s", error);
        zstr_free (&error);
    }
    printf ("OK\n");
}
