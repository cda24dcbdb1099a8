/*  =========================================================================
    lh_mcp_http - MCP's streamable HTTP transport; see lh_mcp_http.h

    Locking. One lock (self->lock) guards the session table and, for each
    session, its references, its stream and the stream's state. The
    protocol state (lh_mcp_session_t) has its own lock, always taken
    after ours or alone. A stream's connection is suspended and resumed
    only under our lock, so a resume always follows its suspend (a wake
    before the suspend finds the stream not suspended and leaves it: the
    reader looks at the outbox again before it suspends). libmicrohttpd
    never calls us with a lock of its own held, and its suspend/resume
    take only theirs, so there is no lock-order cycle.
    =========================================================================
*/

#include "lh_mcp_http.h"
#include "lh_mcp.h"
#include "lh_http_pool.h"
#include "lh_log.h"
#include "lh_body.h"
#include <sodium.h>
#include <pthread.h>
#include <inttypes.h>
#include <strings.h>

#define S_ACTOR         "gateway"
#define S_ID_SIZE       32              //  session id: 32 hex digits (128 random bits)
#define S_CONNECT_MS    1000            //  between attempts to connect the event client
#define S_STREAM_BLOCK  (16 * 1024)     //  bytes libmicrohttpd asks of a stream at a time
#define S_RETRY_MS      2000            //  SSE retry: when a client reconnects a stream
#define S_ORIGIN_MAX    256             //  longest Origin header looked at

typedef struct _s_session_t s_session_t;
typedef struct _s_stream_t s_stream_t;

struct _lh_mcp_http_t {
    lh_mcp_t *mcp;                      //  the protocol
    pthread_mutex_t lock;               //  guards sessions and each session's state
    zhashx_t *sessions;                 //  id -> s_session_t *
    size_t sessions_max;                //  mcp/sessions_max
    int64_t idle_ms;                    //  mcp/session_idle_s, ms
    int64_t keepalive_ms;               //  mcp/sse_keepalive_ms
    char **origins;                     //  mcp/origins, lowercased, NULL-ended
    bool stopping;                      //  no new streams
    lh_link_t link;                     //  the event client's link (strings copied)
    char *endpoint;                     //  link.endpoint's copy
    char *server_key;                   //  link.server_key's copy
    char *name;                         //  the event client's name
    lh_client_t *events;                //  subscribed to catalog.changed, or NULL
    int64_t next_connect;               //  zclock_mono of the next attempt
    size_t evicted;                     //  sessions replaced at mcp/sessions_max
    size_t expired;                     //  sessions ended idle
};

struct _s_session_t {
    lh_mcp_http_t *owner;               //  the transport
    char id [S_ID_SIZE + 1];            //  Mcp-Session-Id
    lh_mcp_session_t *core;             //  the protocol state (a reference)
    int refs;                           //  the table's, requests', streams'
    bool closed;                        //  out of the table
    int64_t used;                       //  zclock_mono of the last request
    int waiting;                        //  requests waiting on the bus
    s_stream_t *stream;                 //  the open GET stream, or NULL
};

struct _s_stream_t {
    s_session_t *session;               //  a reference
    struct MHD_Connection *connection;  //  the GET's connection
    bool suspended;                     //  waiting for something to send
    bool ended;                         //  the session ended or another GET took over
    bool primed;                        //  the retry line went out
    bool keepalive;                     //  send a comment next
    int64_t written;                    //  zclock_mono of the last bytes out
    char *pending;                      //  an event being sent, or NULL
    size_t pending_size;                //  its size
    size_t pending_at;                  //  bytes of it sent
};

//  One /mcp request's state between serve calls
typedef struct {
    s_session_t *session;               //  a reference, or NULL
    lh_mcp_call_t *call;                //  the call in flight, or NULL
    lh_reply_t *reply;                  //  its reply, once the pump answered
    struct MHD_Connection *connection;  //  to resume
    bool sse;                           //  answer as an SSE event
    const char *trace;                  //  trace id (the gateway's, lives as long)
    lh_mcp_http_allow_fn *allow;        //  the caller's check of each call, or NULL
    void *allow_arg;                    //  its argument
} s_context_t;


//  --------------------------------------------------------------------------
//  Drop a reference to a session (not under the lock); the last one
//  destroys it

static void
s_session_unref (s_session_t **session_p)
{
    s_session_t *session = *session_p;
    if (!session)
        return;
    lh_mcp_http_t *owner = session->owner;
    pthread_mutex_lock (&owner->lock);
    int refs = --session->refs;
    pthread_mutex_unlock (&owner->lock);
    if (refs == 0) {
        lh_mcp_session_set_wake (session->core, NULL, NULL);
        lh_mcp_session_destroy (&session->core);
        free (session);
    }
    *session_p = NULL;
}


//  --------------------------------------------------------------------------
//  A notification was queued for a session: resume its stream if it waits

static void
s_wake (void *arg)
{
    s_session_t *session = (s_session_t *) arg;
    lh_mcp_http_t *owner = session->owner;
    pthread_mutex_lock (&owner->lock);
    s_stream_t *stream = session->stream;
    if (stream && stream->suspended) {
        stream->suspended = false;
        MHD_resume_connection (stream->connection);
    }
    pthread_mutex_unlock (&owner->lock);
}


//  --------------------------------------------------------------------------
//  End a session's stream, under the lock

static void
s_stream_end (s_stream_t *stream)
{
    stream->ended = true;
    if (stream->suspended) {
        stream->suspended = false;
        MHD_resume_connection (stream->connection);
    }
}


//  --------------------------------------------------------------------------
//  Take a session out of the table, under the lock (the caller drops the
//  table's reference after unlocking)

static void
s_session_close (lh_mcp_http_t *self, s_session_t *session)
{
    zhashx_delete (self->sessions, session->id);
    session->closed = true;
    if (session->stream)
        s_stream_end (session->stream);
}


//  --------------------------------------------------------------------------
//  Create the transport

lh_mcp_http_t *
lh_mcp_http_new (lh_config_t *config, const lh_link_t *link, const char *name)
{
    lh_mcp_http_t *self = (lh_mcp_http_t *) zmalloc (sizeof (lh_mcp_http_t));
    assert (self);
    self->mcp = lh_mcp_new (config);
    pthread_mutex_init (&self->lock, NULL);
    self->sessions = zhashx_new ();
    assert (self->sessions);
    self->sessions_max = (size_t) lh_config_int (config, "mcp/sessions_max");
    self->idle_ms = lh_config_int (config, "mcp/session_idle_s") * 1000;
    self->keepalive_ms = lh_config_int (config, "mcp/sse_keepalive_ms");
    //  Allowed origins: "https://a.example, http://b:8080" -> lowercased, no '/' at the end
    zlist_t *origins = zlist_new ();
    char *list = strdup (lh_config_str (config, "mcp/origins"));
    assert (origins && list);
    char *saveptr = NULL;
    for (char *origin = strtok_r (list, ", \t", &saveptr); origin;
         origin = strtok_r (NULL, ", \t", &saveptr)) {
        size_t size = strlen (origin);
        while (size && origin [size - 1] == '/')
            origin [--size] = 0;
        for (char *at = origin; *at; at++)
            *at = (char) tolower ((unsigned char) *at);
        if (size)
            zlist_append (origins, origin);
    }
    self->origins = (char **) calloc (zlist_size (origins) + 1, sizeof (char *));
    assert (self->origins);
    size_t count = 0;
    for (char *origin = (char *) zlist_first (origins); origin; origin = (char *) zlist_next (origins))
        self->origins [count++] = strdup (origin);
    zlist_destroy (&origins);
    free (list);
    self->endpoint = strdup (link->endpoint? link->endpoint: "");
    self->server_key = link->server_key? strdup (link->server_key): NULL;
    self->link.endpoint = self->endpoint;
    self->link.server_key = self->server_key;
    self->link.cert = link->cert;
    self->name = zsys_sprintf ("%s-mcp", name? name: "gateway");
    return self;
}


//  --------------------------------------------------------------------------
//  Destroy the transport (the HTTP threads are gone: no stream is left
//  suspended, no request holds a session)

void
lh_mcp_http_destroy (lh_mcp_http_t **self_p)
{
    assert (self_p);
    lh_mcp_http_t *self = *self_p;
    if (self) {
        zlist_t *closed = zlist_new ();
        pthread_mutex_lock (&self->lock);
        for (s_session_t *session = (s_session_t *) zhashx_first (self->sessions); session;
             session = (s_session_t *) zhashx_next (self->sessions))
            zlist_append (closed, session);
        zhashx_purge (self->sessions);
        pthread_mutex_unlock (&self->lock);
        s_session_t *session;
        while ((session = (s_session_t *) zlist_pop (closed))) {
            session->closed = true;
            s_session_unref (&session);
        }
        zlist_destroy (&closed);
        zhashx_destroy (&self->sessions);
        lh_client_destroy (&self->events);
        for (size_t index = 0; self->origins [index]; index++)
            free (self->origins [index]);
        free (self->origins);
        pthread_mutex_destroy (&self->lock);
        lh_mcp_destroy (&self->mcp);
        free (self->endpoint);
        free (self->server_key);
        free (self->name);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Sessions held

size_t
lh_mcp_http_sessions (lh_mcp_http_t *self)
{
    assert (self);
    pthread_mutex_lock (&self->lock);
    size_t count = zhashx_size (self->sessions);
    pthread_mutex_unlock (&self->lock);
    return count;
}


//  --------------------------------------------------------------------------
//  Is this Origin allowed: a loopback origin (http or https, any port) or
//  one of mcp/origins?

static bool
s_origin_allowed (lh_mcp_http_t *self, const char *origin)
{
    size_t size = strlen (origin);
    if (size == 0 || size > S_ORIGIN_MAX)
        return false;
    char lower [S_ORIGIN_MAX + 1];
    for (size_t index = 0; index <= size; index++)
        lower [index] = (char) tolower ((unsigned char) origin [index]);
    while (size && lower [size - 1] == '/')
        lower [--size] = 0;
    for (size_t index = 0; self->origins [index]; index++)
        if (streq (self->origins [index], lower))
            return true;
    const char *host = NULL;
    if (strncmp (lower, "http://", 7) == 0)
        host = lower + 7;
    else
    if (strncmp (lower, "https://", 8) == 0)
        host = lower + 8;
    if (!host)
        return false;                   //  "null", file://, chrome-extension://, ...
    const char *loopback [] = { "localhost", "127.0.0.1", "[::1]" };
    for (size_t index = 0; index < 3; index++) {
        size_t length = strlen (loopback [index]);
        if (strncmp (host, loopback [index], length) != 0)
            continue;
        const char *rest = host + length;
        if (*rest == 0)
            return true;
        if (*rest != ':' || !rest [1])
            continue;
        for (rest++; *rest; rest++)
            if (!isdigit ((unsigned char) *rest))
                break;
        if (*rest == 0)
            return true;
    }
    return false;
}


//  --------------------------------------------------------------------------
//  Does an Accept header take this media type (or a wildcard for it)?
//  No header takes everything.

static bool
s_accepts (const char *accept, const char *type)
{
    if (!accept || !*accept)
        return true;
    char major [32];
    const char *slash = strchr (type, '/');
    snprintf (major, sizeof (major), "%.*s/*", (int) (slash - type), type);
    const char *at = accept;
    while (*at) {
        while (*at == ' ' || *at == '\t' || *at == ',')
            at++;
        size_t length = strcspn (at, ",;");
        //  The range, without trailing blanks
        size_t range = length;
        while (range && (at [range - 1] == ' ' || at [range - 1] == '\t'))
            range--;
        bool match = (range == strlen (type) && strncasecmp (at, type, range) == 0)
                  || (range == strlen (major) && strncasecmp (at, major, range) == 0)
                  || (range == 3 && strncmp (at, "*/*", 3) == 0);
        //  Parameters: q=0 refuses it
        const char *end = at + strcspn (at, ",");
        const char *q = at + length;
        bool refused = false;
        while (q < end) {
            q++;
            while (*q == ' ')
                q++;
            if (strncasecmp (q, "q=", 2) == 0 && strtod (q + 2, NULL) <= 0)
                refused = true;
            q += strcspn (q, ";,");
        }
        if (match && !refused)
            return true;
        at = end;
    }
    return false;
}


//  --------------------------------------------------------------------------
//  A response from a buffer (text taken; may be NULL for no body)

static void
s_answer_text (lh_mcp_http_answer_t *answer, unsigned status, char *text, const char *content_type)
{
    size_t size = text? strlen (text): 0;
    answer->status = status;
    answer->content_type = content_type;
    answer->size = size;
    answer->response = MHD_create_response_from_buffer (
        size, text? text: (char *) "", text? MHD_RESPMEM_MUST_FREE: MHD_RESPMEM_PERSISTENT);
    if (!answer->response)
        free (text);
}


//  --------------------------------------------------------------------------
//  Answer with a JSON-RPC error, id null, for a message refused by the
//  transport

static void
s_refuse (lh_mcp_http_answer_t *answer, unsigned status, int code, const char *message)
{
    s_answer_text (answer, status, lh_mcp_error_text (code, message), "application/json");
}


//  --------------------------------------------------------------------------
//  Answer with a JSON-RPC message (text taken): as JSON, or as one SSE
//  event. Errors of the message itself are 400 (parse error, invalid
//  request), anything else 200.

static void
s_answer_message (lh_mcp_http_answer_t *answer, char *text, bool sse, int error)
{
    unsigned status = error == LH_MCP_PARSE_ERROR || error == LH_MCP_INVALID_REQUEST? 400: 200;
    if (sse && status == 200) {
        char *event = zsys_sprintf ("event: message\ndata: %s\n\n", text);
        free (text);
        s_answer_text (answer, status, event, "text/event-stream");
        if (answer->response)
            MHD_add_response_header (answer->response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    }
    else
        s_answer_text (answer, status, text, "application/json");
}


//  --------------------------------------------------------------------------
//  A new session in the table for core (taken), replacing the longest idle
//  one at mcp/sessions_max. Returns it with a reference for the caller, or
//  NULL when the table is full of busy sessions.

static s_session_t *
s_session_add (lh_mcp_http_t *self, lh_mcp_session_t *core)
{
    s_session_t *session = (s_session_t *) zmalloc (sizeof (s_session_t));
    assert (session);
    session->owner = self;
    session->core = core;
    session->refs = 2;                  //  the table's and the caller's
    session->used = zclock_mono ();
    uint8_t random [S_ID_SIZE / 2];
    randombytes_buf (random, sizeof (random));
    for (size_t index = 0; index < sizeof (random); index++)
        snprintf (session->id + 2 * index, 3, "%02x", random [index]);
    s_session_t *evicted = NULL;
    pthread_mutex_lock (&self->lock);
    if (zhashx_size (self->sessions) >= self->sessions_max) {
        for (s_session_t *other = (s_session_t *) zhashx_first (self->sessions); other;
             other = (s_session_t *) zhashx_next (self->sessions))
            if (!other->stream && other->waiting == 0 && other->refs == 1
            &&  (!evicted || other->used < evicted->used))
                evicted = other;
        if (evicted) {
            s_session_close (self, evicted);
            self->evicted++;
        }
    }
    bool room = zhashx_size (self->sessions) < self->sessions_max;
    if (room)
        zhashx_insert (self->sessions, session->id, session);
    pthread_mutex_unlock (&self->lock);
    if (evicted) {
        lh_info (S_ACTOR, NULL, "MCP session %.8s... ended to make room (mcp/sessions_max %zu)",
                 evicted->id, self->sessions_max);
        s_session_unref (&evicted);
    }
    if (!room) {
        lh_mcp_session_destroy (&session->core);
        free (session);
        return NULL;
    }
    lh_mcp_session_set_wake (core, s_wake, session);
    return session;
}


//  --------------------------------------------------------------------------
//  The session a request names, with a reference for the caller, or NULL
//  with *status 400 (no header) or 404 (no such session)

static s_session_t *
s_session_find (lh_mcp_http_t *self, const char *id, unsigned *status)
{
    if (!id || !*id) {
        *status = 400;
        return NULL;
    }
    pthread_mutex_lock (&self->lock);
    s_session_t *session = strlen (id) == S_ID_SIZE
                         ? (s_session_t *) zhashx_lookup (self->sessions, id): NULL;
    if (session) {
        session->refs++;
        session->used = zclock_mono ();
    }
    pthread_mutex_unlock (&self->lock);
    *status = session? 200: 404;
    return session;
}


//  --------------------------------------------------------------------------
//  The pump answered a call: keep the reply and resume the connection (on
//  the connection's own HTTP thread)

static void
s_bus_done (void *arg, lh_reply_t *reply, zlist_t *parts)
{
    s_context_t *context = (s_context_t *) arg;
    context->reply = reply;
    if (parts) {
        zframe_t *part;
        while ((part = (zframe_t *) zlist_pop (parts)))
            zframe_destroy (&part);
        zlist_destroy (&parts);
    }
    MHD_resume_connection (context->connection);
}


//  --------------------------------------------------------------------------
//  Send the context's call on this HTTP thread's pump. Returns 1 (wait for
//  it), or 0 when it cannot go out: then context->reply is NULL (no bus)
//  or a 403 (the caller may not make it), and the caller finishes the
//  call at once.

static int
s_call_submit (s_context_t *context)
{
    lh_mcp_call_t *call = context->call;
    context->reply = NULL;
    if (context->allow && !context->allow (context->allow_arg, lh_mcp_call_service (call),
                                           lh_mcp_call_op (call))) {
        char *reason = zsys_sprintf ("this caller's role may not call %s.%s",
                                     lh_mcp_call_service (call), lh_mcp_call_op (call));
        context->reply = lh_reply_new_error (LH_ST_FORBIDDEN, "forbidden", reason);
        free (reason);
        return 0;
    }
    lh_bus_pump_t *pump = lh_http_pool_pump ();
    if (!pump)
        return 0;
    size_t size;
    const void *data = lh_mcp_call_body (call, &size);
    zframe_t *body = data? zframe_new (data, size): NULL;
    lh_call_opts_t opts = { .timeout_ms = lh_mcp_call_timeout (call), .trace = context->trace };
    if (lh_bus_pump_submit (pump, lh_mcp_call_service (call), lh_mcp_call_op (call), &body,
                            &opts, s_bus_done, context)) {
        zframe_destroy (&body);
        return 0;
    }
    return 1;
}


//  --------------------------------------------------------------------------
//  Drive the context's call: finish it with its reply, send the next one.
//  Returns 1 (waiting on the bus), or 0 with *answer set.

static int
s_call_drive (s_context_t *context, bool have_reply, lh_mcp_http_answer_t *answer)
{
    while (true) {
        if (!have_reply && s_call_submit (context))
            return 1;
        char *text = NULL;
        int rc = lh_mcp_call_finish (context->call, context->reply, &text);
        lh_reply_destroy (&context->reply);
        have_reply = false;
        if (rc == 1)
            continue;
        lh_mcp_call_destroy (&context->call);
        s_session_t *session = context->session;
        pthread_mutex_lock (&session->owner->lock);
        session->waiting--;
        session->used = zclock_mono ();
        pthread_mutex_unlock (&session->owner->lock);
        if (text)
            s_answer_message (answer, text, context->sse, 0);
        else                            //  cancelled: nothing to answer
            s_answer_text (answer, 202, NULL, "application/json");
        return 0;
    }
}


//  --------------------------------------------------------------------------
//  The stream's reader: the next event, a keep-alive, or suspend until
//  something is queued

static ssize_t
s_stream_read (void *cls, uint64_t pos, char *buf, size_t max)
{
    s_stream_t *stream = (s_stream_t *) cls;
    s_session_t *session = stream->session;
    lh_mcp_http_t *owner = session->owner;
    pthread_mutex_lock (&owner->lock);
    if (!stream->pending) {
        char *text = NULL;
        if (!stream->primed) {
            stream->primed = true;
            text = zsys_sprintf ("retry: %d\n\n", S_RETRY_MS);
        }
        else
        if (stream->ended) {
            pthread_mutex_unlock (&owner->lock);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        else {
            char *message = lh_mcp_session_next (session->core);
            if (message) {
                text = zsys_sprintf ("event: message\ndata: %s\n\n", message);
                free (message);
            }
            else
            if (stream->keepalive)
                text = strdup (": keep-alive\n\n");
        }
        stream->keepalive = false;
        if (!text) {
            //  Nothing to send: sleep until s_wake, the tick or the end
            stream->suspended = true;
            MHD_suspend_connection (stream->connection);
            pthread_mutex_unlock (&owner->lock);
            return 0;
        }
        stream->pending = text;
        stream->pending_size = strlen (text);
        stream->pending_at = 0;
    }
    size_t take = stream->pending_size - stream->pending_at;
    if (take > max)
        take = max;
    memcpy (buf, stream->pending + stream->pending_at, take);
    stream->pending_at += take;
    if (stream->pending_at == stream->pending_size)
        zstr_free (&stream->pending);
    stream->written = zclock_mono ();
    pthread_mutex_unlock (&owner->lock);
    return (ssize_t) take;
}


//  --------------------------------------------------------------------------
//  The stream's response is gone (its connection ended)

static void
s_stream_free (void *cls)
{
    s_stream_t *stream = (s_stream_t *) cls;
    s_session_t *session = stream->session;
    pthread_mutex_lock (&session->owner->lock);
    if (session->stream == stream)
        session->stream = NULL;
    session->used = zclock_mono ();
    pthread_mutex_unlock (&session->owner->lock);
    free (stream->pending);
    s_session_unref (&stream->session);
    free (stream);
}


//  --------------------------------------------------------------------------
//  GET: open the session's stream (taking the place of one already open)

static void
s_serve_get (lh_mcp_http_t *self, struct MHD_Connection *connection, s_session_t *session,
             lh_mcp_http_answer_t *answer)
{
    s_stream_t *stream = (s_stream_t *) zmalloc (sizeof (s_stream_t));
    assert (stream);
    stream->session = session;          //  the caller's reference becomes the stream's
    stream->connection = connection;
    stream->written = zclock_mono ();
    struct MHD_Response *response = MHD_create_response_from_callback (
        MHD_SIZE_UNKNOWN, S_STREAM_BLOCK, s_stream_read, stream, s_stream_free);
    if (!response) {
        s_stream_free (stream);
        answer->response = NULL;
        return;
    }
    MHD_add_response_header (response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header (response, "X-Accel-Buffering", "no");
    pthread_mutex_lock (&self->lock);
    if (session->stream)
        s_stream_end (session->stream);
    session->stream = stream;
    pthread_mutex_unlock (&self->lock);
    answer->status = 200;
    answer->response = response;
    answer->size = 0;
    answer->content_type = "text/event-stream";
}


//  --------------------------------------------------------------------------
//  POST: one JSON-RPC message

static int
s_serve_post (lh_mcp_http_t *self, const lh_mcp_http_request_t *request, const char *id,
              void **context_p, lh_mcp_http_answer_t *answer)
{
    struct MHD_Connection *connection = request->connection;
    const char *type = MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                                    MHD_HTTP_HEADER_CONTENT_TYPE);
    if (type && strncasecmp (type, "application/json", 16) != 0) {
        s_refuse (answer, 415, -32000, "Unsupported Media Type: POST a JSON-RPC message as "
                  "Content-Type: application/json");
        return 0;
    }
    const char *accept = MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                                      MHD_HTTP_HEADER_ACCEPT);
    bool json = s_accepts (accept, "application/json");
    bool sse = !json && s_accepts (accept, "text/event-stream");
    if (!json && !sse) {
        s_refuse (answer, 406, -32000, "Not Acceptable: Accept must take application/json "
                  "or text/event-stream");
        return 0;
    }
    //  No session yet: only initialize makes one
    s_session_t *session = NULL;
    lh_mcp_session_t *core = NULL;
    if (id) {
        unsigned status = 0;
        session = s_session_find (self, id, &status);
        if (!session) {
            s_refuse (answer, 404, -32001, "Session not found: it ended or expired; initialize "
                      "a new one (POST initialize without Mcp-Session-Id)");
            return 0;
        }
        core = session->core;
    }
    else
        core = lh_mcp_session_new (self->mcp);
    lh_mcp_result_t result;
    lh_mcp_handle (core, request->body? request->body: "", request->size, &result);
    if (!session) {
        if (result.initialize) {
            session = s_session_add (self, core);
            if (!session) {
                free (result.answer);
                s_refuse (answer, 503, -32000, "Service Unavailable: the gateway holds "
                          "mcp/sessions_max MCP sessions, all busy; try again later");
                return 0;
            }
            s_answer_message (answer, result.answer, sse, 0);
            if (answer->response)
                MHD_add_response_header (answer->response, "Mcp-Session-Id", session->id);
            lh_info (S_ACTOR, request->trace, "MCP session %.8s... initialized", session->id);
            s_session_unref (&session);
            return 0;
        }
        lh_mcp_session_destroy (&core);
        lh_mcp_call_destroy (&result.call);    //  none without initialize
        if (result.in == LH_MCP_IN_INVALID || (result.answer && result.in == LH_MCP_IN_REQUEST
                                               && result.error)) {
            //  Not JSON-RPC, or a refused initialize: the message's own error
            s_answer_text (answer, 400, result.answer, "application/json");
            return 0;
        }
        free (result.answer);
        s_refuse (answer, 400, -32000, "Bad Request: Mcp-Session-Id header is required "
                  "(POST initialize without it to start a session)");
        return 0;
    }
    if (result.call) {
        s_context_t *context = (s_context_t *) zmalloc (sizeof (s_context_t));
        assert (context);
        context->session = session;     //  the reference is the context's now
        context->call = result.call;
        context->connection = connection;
        context->sse = sse;
        context->trace = request->trace;
        context->allow = request->allow;
        context->allow_arg = request->allow_arg;
        *context_p = context;
        pthread_mutex_lock (&self->lock);
        session->waiting++;
        pthread_mutex_unlock (&self->lock);
        return s_call_drive (context, false, answer);
    }
    s_session_unref (&session);
    if (result.answer)
        s_answer_message (answer, result.answer, sse, result.error);
    else                                //  a notification or a response
        s_answer_text (answer, 202, NULL, "application/json");
    return 0;
}


//  --------------------------------------------------------------------------
//  Serve a request to /mcp

int
lh_mcp_http_serve (lh_mcp_http_t *self, const lh_mcp_http_request_t *request,
                   void **context_p, lh_mcp_http_answer_t *answer)
{
    assert (self && request && context_p && answer);
    memset (answer, 0, sizeof (*answer));
    s_context_t *context = (s_context_t *) *context_p;
    if (context && context->call)       //  resumed: the pump answered
        return s_call_drive (context, true, answer);

    struct MHD_Connection *connection = request->connection;
    const char *origin = MHD_lookup_connection_value (connection, MHD_HEADER_KIND, "Origin");
    if (origin && !s_origin_allowed (self, origin)) {
        lh_warn (S_ACTOR, request->trace, "MCP request from Origin '%.64s' refused "
                 "(not loopback, not in mcp/origins)", origin);
        s_refuse (answer, 403, -32000, "Forbidden: this Origin may not use the MCP endpoint "
                  "(loopback origins and mcp/origins only)");
        return 0;
    }
    const char *version = MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                                       "MCP-Protocol-Version");
    if (version && !lh_mcp_version_supported (version)) {
        char *message = zsys_sprintf ("Bad Request: unsupported MCP-Protocol-Version '%.32s' "
                                      "(this server speaks " LH_MCP_PROTOCOL ", 2025-06-18 and "
                                      "2025-03-26)", version);
        s_refuse (answer, 400, -32000, message);
        free (message);
        return 0;
    }
    const char *id = MHD_lookup_connection_value (connection, MHD_HEADER_KIND, "Mcp-Session-Id");
    if (streq (request->method, "POST"))
        return s_serve_post (self, request, id, context_p, answer);

    //  GET and DELETE name a session
    if (streq (request->method, "GET")) {
        const char *accept = MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                                          MHD_HTTP_HEADER_ACCEPT);
        if (!s_accepts (accept, "text/event-stream")) {
            s_refuse (answer, 406, -32000, "Not Acceptable: the MCP stream is text/event-stream");
            return 0;
        }
    }
    unsigned status = 0;
    s_session_t *session = s_session_find (self, id, &status);
    if (!session) {
        s_refuse (answer, status, status == 404? -32001: -32000, status == 404
                  ? "Session not found: it ended or expired; initialize a new one"
                  : "Bad Request: Mcp-Session-Id header is required");
        return 0;
    }
    if (streq (request->method, "DELETE")) {
        pthread_mutex_lock (&self->lock);
        bool open = !session->closed;
        if (open) {
            s_session_close (self, session);
            session->refs--;            //  the table's (ours is still held)
        }
        pthread_mutex_unlock (&self->lock);
        s_session_unref (&session);
        if (open)
            lh_info (S_ACTOR, request->trace, "MCP session %.8s... ended by its client", id);
        s_answer_text (answer, 204, NULL, "application/json");
        return 0;
    }
    pthread_mutex_lock (&self->lock);
    bool stopping = self->stopping;
    pthread_mutex_unlock (&self->lock);
    if (stopping) {
        s_session_unref (&session);
        s_refuse (answer, 503, -32000, "Service Unavailable: the gateway is stopping");
        return 0;
    }
    s_serve_get (self, connection, session, answer);
    return 0;
}


//  --------------------------------------------------------------------------
//  The request is over

void
lh_mcp_http_end (void **context_p)
{
    assert (context_p);
    s_context_t *context = (s_context_t *) *context_p;
    if (context) {
        //  A call still held (the connection ended while it was answered)
        if (context->call) {
            lh_mcp_call_destroy (&context->call);
            pthread_mutex_lock (&context->session->owner->lock);
            context->session->waiting--;
            pthread_mutex_unlock (&context->session->owner->lock);
        }
        lh_reply_destroy (&context->reply);
        s_session_unref (&context->session);
        free (context);
        *context_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  catalog.changed: tell every session (outside our lock: the sessions'
//  wakes take it)

static void
s_catalog_changed (lh_mcp_http_t *self, const char *name)
{
    zlist_t *sessions = zlist_new ();
    pthread_mutex_lock (&self->lock);
    for (s_session_t *session = (s_session_t *) zhashx_first (self->sessions); session;
         session = (s_session_t *) zhashx_next (self->sessions)) {
        session->refs++;
        zlist_append (sessions, session);
    }
    pthread_mutex_unlock (&self->lock);
    s_session_t *session;
    while ((session = (s_session_t *) zlist_pop (sessions))) {
        lh_mcp_session_catalog_changed (session->core, name);
        s_session_unref (&session);
    }
    zlist_destroy (&sessions);
}


//  --------------------------------------------------------------------------
//  Housekeeping: events, idle sessions, keep-alives

void
lh_mcp_http_tick (lh_mcp_http_t *self)
{
    assert (self);
    int64_t now = zclock_mono ();
    if (!self->events && now >= self->next_connect) {
        self->events = lh_client_new (&self->link, self->name);
        if (self->events && lh_client_subscribe (self->events, "catalog.changed")) {
            lh_warn (S_ACTOR, NULL, "MCP: cannot subscribe to catalog.changed");
            lh_client_destroy (&self->events);
        }
        self->next_connect = zclock_mono () + S_CONNECT_MS;
    }
    lh_reply_t *reply = NULL;
    while (self->events && lh_client_recv (self->events, &reply, 0) == 0) {
        const lh_header_t *header = lh_reply_header (reply);
        if (lh_reply_type (reply) == LH_T_PUB && streq (header->topic, "catalog.changed")) {
            const msgpack_object *object = lh_reply_object (reply);
            const char *name = NULL;
            size_t size = 0;
            char *copy = object && lh_obj_str (object, "name", &name, &size)
                       ? strndup (name, size): NULL;
            s_catalog_changed (self, copy);
            free (copy);
        }
        lh_reply_destroy (&reply);
    }
    zlist_t *ended = zlist_new ();
    pthread_mutex_lock (&self->lock);
    for (s_session_t *session = (s_session_t *) zhashx_first (self->sessions); session;
         session = (s_session_t *) zhashx_next (self->sessions)) {
        s_stream_t *stream = session->stream;
        if (stream) {
            if (stream->suspended && now - stream->written >= self->keepalive_ms) {
                stream->keepalive = true;
                stream->suspended = false;
                MHD_resume_connection (stream->connection);
            }
        }
        else
        if (session->waiting == 0 && now - session->used >= self->idle_ms)
            zlist_append (ended, session);
    }
    for (s_session_t *session = (s_session_t *) zlist_first (ended); session;
         session = (s_session_t *) zlist_next (ended)) {
        s_session_close (self, session);
        self->expired++;
    }
    pthread_mutex_unlock (&self->lock);
    s_session_t *session;
    while ((session = (s_session_t *) zlist_pop (ended))) {
        lh_info (S_ACTOR, NULL, "MCP session %.8s... expired (idle past mcp/session_idle_s)",
                 session->id);
        s_session_unref (&session);
    }
    zlist_destroy (&ended);
}


//  --------------------------------------------------------------------------
//  End every stream, refuse new ones

void
lh_mcp_http_stop (lh_mcp_http_t *self)
{
    assert (self);
    pthread_mutex_lock (&self->lock);
    self->stopping = true;
    for (s_session_t *session = (s_session_t *) zhashx_first (self->sessions); session;
         session = (s_session_t *) zhashx_next (self->sessions))
        if (session->stream)
            s_stream_end (session->stream);
    pthread_mutex_unlock (&self->lock);
}


//  --------------------------------------------------------------------------
//  A caller's check that refuses everything

static bool
s_test_refuse (void *arg, const char *svc, const char *op)
{
    return false;
}


//  --------------------------------------------------------------------------
//  Self test: origins, Accept, the caller's check of tool calls

void
lh_mcp_http_test (bool verbose)
{
    printf (" * lh_mcp_http: ");
    char *error = NULL;
    lh_config_t *config = lh_config_load (NULL, &error);
    assert (config);
    assert (lh_config_set (config, "mcp/origins", "https://App.Example.org/, http://b:8080") == 0);
    lh_link_t link = { .endpoint = "inproc://none" };
    lh_mcp_http_t *self = lh_mcp_http_new (config, &link, NULL);
    struct {
        const char *origin;
        bool allowed;
    } origins [] = {
        { "http://localhost", true }, { "http://localhost:3110", true },
        { "http://127.0.0.1:41234", true }, { "https://[::1]:8443", true },
        { "HTTP://LOCALHOST:80", true }, { "https://app.example.org", true },
        { "http://b:8080/", true }, { "http://b:8081", false },
        { "http://evil.example.com", false }, { "http://localhost.evil.com", false },
        { "http://127.0.0.1.evil.com:80", false }, { "http://localhost:", false },
        { "http://localhost:80x", false }, { "null", false }, { "file://", false },
        { "", false }, { "http://[::1]evil", false },
    };
    for (size_t index = 0; index < sizeof (origins) / sizeof (origins [0]); index++) {
        bool allowed = s_origin_allowed (self, origins [index].origin);
        if (verbose)
            printf ("\n   Origin '%s' -> %s", origins [index].origin, allowed? "allowed": "403");
        assert (allowed == origins [index].allowed);
    }
    char longest [S_ORIGIN_MAX + 10];
    memset (longest, 'a', sizeof (longest) - 1);
    longest [sizeof (longest) - 1] = 0;
    assert (!s_origin_allowed (self, longest));
    struct {
        const char *accept;
        bool json;
        bool sse;
    } accepts [] = {
        { NULL, true, true }, { "", true, true },
        { "application/json, text/event-stream", true, true },
        { "text/event-stream", false, true }, { "application/json", true, false },
        { "*/*", true, true }, { "application/*", true, false }, { "text/html", false, false },
        { "application/json;q=0, text/event-stream", false, true },
        { "Application/JSON; charset=utf-8", true, false },
        { "text/event-streamx", false, false },
    };
    for (size_t index = 0; index < sizeof (accepts) / sizeof (accepts [0]); index++) {
        assert (s_accepts (accepts [index].accept, "application/json") == accepts [index].json);
        assert (s_accepts (accepts [index].accept, "text/event-stream") == accepts [index].sse);
    }
    assert (lh_mcp_http_sessions (self) == 0);

    //  The caller's check: a tool's bus call it refuses is a 403 result
    lh_mcp_session_t *core = lh_mcp_session_new (self->mcp);
    const char *messages [] = {
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\"}}",
        "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"query_sql\","
        "\"arguments\":{\"sql\":\"SELECT 1\"}}}" };
    lh_mcp_result_t result;
    lh_mcp_handle (core, messages [0], strlen (messages [0]), &result);
    free (result.answer);
    lh_mcp_handle (core, messages [1], strlen (messages [1]), &result);
    assert (result.call);
    s_context_t context = { .call = result.call, .allow = s_test_refuse };
    assert (s_call_submit (&context) == 0 && context.reply
            && lh_reply_status (context.reply) == LH_ST_FORBIDDEN);
    char *answer = NULL;
    assert (lh_mcp_call_finish (context.call, context.reply, &answer) == 0);
    if (verbose)
        printf ("\n   refused call -> %s", answer);
    assert (strstr (answer, "\"isError\":true") && strstr (answer, "may not call queryd.sql"));
    free (answer);
    lh_reply_destroy (&context.reply);
    lh_mcp_call_destroy (&context.call);
    lh_mcp_session_destroy (&core);
    lh_mcp_http_destroy (&self);
    lh_config_destroy (&config);
    printf ("OK\n");
}
