/*  =========================================================================
    lh_tap_sse - GET /v1/tap/stream: the broker's tap as Server-Sent Events
    (see lh_tap_sse.h)

    Threads. The hub's thread owns the SUB socket and the lh_tap reader; it
    formats each line once, as a reference-counted event, and appends it
    to the ring of every stream whose filters it passes. Each stream's HTTP
    thread takes events out in s_stream_read. The rings, the stream list
    and the reference counts are guarded by one mutex, held only for
    pointer moves and memcpy, never across a libmicrohttpd call.

    Suspending. A content reader that finds its ring empty suspends its
    connection (libmicrohttpd allows that from the reader) and returns 0.
    The stream's state says who may resume it, so that a resume never
    comes before its suspend (undefined in libmicrohttpd):
        RUNNING     the reader may be called
        SUSPENDING  the reader is about to suspend: an event that comes now
                    sets WAKE, and the reader resumes its connection itself
        SUSPENDED   suspended: the hub's thread (only it) resumes it
    Every other resume happens on the hub's thread, so no connection is
    resumed twice. A suspended connection cannot close (libmicrohttpd does
    not look at it), so its stream stays valid until it is resumed.

    Pausing. When every open stream's ring is full (every client stalled
    or slower than the tap), the hub stops reading the tap: formatting
    lines only to drop them would take CPU the broker may need. The tap's
    SUB then fills to its high-water mark and the broker's XPUB drops its
    copies (dropped.tap), which costs the broker nothing (issue 5). A
    reader that takes events out of a full ring wakes the hub, which
    reads on; lh_tap finds the broker's bseq gap and every stream gets a
    "gap" event saying how many messages it missed.
    =========================================================================
*/

#include "lh_tap_sse.h"
#include "lh_routes.h"
#include "lh_tap.h"
#include "lh_log.h"
#include <jansson.h>
#include <pthread.h>
#include <sys/eventfd.h>

#define S_ACTOR         "gateway"
#define S_TICK_MS       1000            //  heartbeats and the linger checked this often
#define S_LINGER_MS     10000           //  the tap stays subscribed this long after the last stream
#define S_DRAIN_MAX     512             //  tap messages handled before the pipe is looked at
#define S_BLOCK         (16 * 1024)     //  bytes libmicrohttpd asks of a stream at a time
#define S_NOTICE_MAX    128             //  longest "dropped" notice
#define S_TAP_HWM       10000           //  the hub's SUB receive high-water mark

//  One formatted event, shared by the rings that hold it
typedef struct {
    uint32_t refs;                      //  rings holding it (under the hub's lock)
    size_t size;                        //  bytes of text
    char text [];                       //  "id: N\ndata: {...}\n\n"
} s_event_t;

//  Who may resume a stream's connection (see the top of this file)
typedef enum {
    S_RUNNING = 0,                      //  not suspended
    S_SUSPENDING,                       //  the reader is suspending it
    S_SUSPENDED,                        //  suspended; the hub resumes it
    S_WAKE                              //  an event came while suspending
} s_state_t;

//  One open stream
typedef struct _s_stream_t s_stream_t;
struct _s_stream_t {
    lh_tap_sse_t *hub;                  //  its hub
    struct MHD_Connection *connection;  //  its connection
    s_stream_t *prev;                   //  the hub's list
    s_stream_t *next;
    char service [LH_NAME_MAX + 1];     //  filter, "" = any
    char op [LH_TOPIC_MAX + 1];         //  filter, "" = any
    char trace [LH_TRACE_SIZE + 1];     //  filter, "" = any
    s_event_t **ring;                   //  events not yet sent
    size_t head;                        //  index of the oldest
    size_t count;                       //  events held
    size_t offset;                      //  bytes of the oldest already sent
    uint64_t dropped;                   //  dropped, not yet told
    uint64_t dropped_total;             //  dropped since it opened
    int64_t last_event;                 //  zclock_mono of the last event queued
    s_state_t state;                    //  suspend state
    bool ended;                         //  the hub stopped: end after the ring
};

struct _lh_tap_sse_t {
    pthread_mutex_t lock;               //  guards streams, rings, refs, stopping
    s_stream_t *streams;                //  open streams
    size_t stream_count;                //  how many
    size_t buffer;                      //  ring size
    size_t streams_max;                 //  most streams
    uint32_t heartbeat_ms;              //  keepalive period
    char *roles;                        //  ",tap,admin,"
    char *roles_text;                   //  "tap or admin", for reasons
    char *no_tap;                       //  the 503's reason when no tap
    char *endpoint;                     //  tap endpoint, or NULL
    char *server_key;                   //  its broker key, or NULL
    zcert_t *cert;                      //  our certificate (borrowed), or NULL
    bool stopping;                      //  no new streams; all ended
    int wake_fd;                        //  eventfd: a stream opened
    zactor_t *actor;                    //  the hub's thread
    struct MHD_Connection **resume;     //  the thread's list of connections to resume
    size_t resumes;                     //  entries in it
    uint64_t lines;                     //  tap lines handled (hub thread)
    bool paused;                        //  every stream's ring is full: the tap is not read
};


//  --------------------------------------------------------------------------
//  Wake the hub's thread (a stream opened, or a paused hub has room again)

static void
s_hub_wake (lh_tap_sse_t *self)
{
    uint64_t one = 1;
    ssize_t rc = write (self->wake_fd, &one, sizeof (one));
    (void) rc;                          //  a counter at its maximum is signalled already
}


//  --------------------------------------------------------------------------
//  Release one reference to an event (under the lock)

static void
s_event_release (s_event_t *event)
{
    assert (event->refs > 0);
    if (--event->refs == 0)
        free (event);
}


//  --------------------------------------------------------------------------
//  A new event of text (refs 0), or NULL if out of memory

static s_event_t *
s_event_new (const char *text, size_t size)
{
    s_event_t *event = (s_event_t *) malloc (sizeof (s_event_t) + size + 1);
    if (event) {
        event->refs = 0;
        event->size = size;
        memcpy (event->text, text, size);
        event->text [size] = 0;
    }
    return event;
}


//  --------------------------------------------------------------------------
//  Append an event to a stream's ring (under the lock), dropping the
//  oldest when full. A suspended stream's connection is added to the
//  hub's resume list; one being suspended will resume itself.

static void
s_stream_push (s_stream_t *stream, s_event_t *event, int64_t now)
{
    lh_tap_sse_t *hub = stream->hub;
    if (stream->count == hub->buffer) {
        s_event_t *oldest = stream->ring [stream->head];
        stream->ring [stream->head] = NULL;
        stream->head = (stream->head + 1) % hub->buffer;
        stream->count--;
        stream->offset = 0;             //  a partly sent event is cut: said by the notice
        stream->dropped++;
        stream->dropped_total++;
        s_event_release (oldest);
    }
    event->refs++;
    stream->ring [(stream->head + stream->count) % hub->buffer] = event;
    stream->count++;
    stream->last_event = now;
    if (stream->state == S_SUSPENDED) {
        stream->state = S_RUNNING;
        hub->resume [hub->resumes++] = stream->connection;
    }
    else
    if (stream->state == S_SUSPENDING)
        stream->state = S_WAKE;
}


//  --------------------------------------------------------------------------
//  Resume the connections collected while the lock was held (hub thread)

static void
s_hub_resume (lh_tap_sse_t *self)
{
    for (size_t index = 0; index < self->resumes; index++)
        MHD_resume_connection (self->resume [index]);
    self->resumes = 0;
}


//  --------------------------------------------------------------------------
//  Does a tap line pass a stream's filters

static bool
s_stream_wants (s_stream_t *stream, const lh_tap_line_t *line)
{
    if (line->warning)
        return true;
    return (!*stream->service || streq (stream->service, line->svc))
        && (!*stream->op || streq (stream->op, line->op))
        && (!*stream->trace || streq (stream->trace, line->tr));
}


//  --------------------------------------------------------------------------
//  lh_tap's line handler (hub thread): format the line once, as an event,
//  and append it to each stream that wants it

static void
s_hub_line (void *arg, const lh_tap_line_t *line)
{
    lh_tap_sse_t *self = (lh_tap_sse_t *) arg;
    self->lines++;
    s_event_t *event = NULL;
    int64_t now = zclock_mono ();
    bool full = true;                   //  every stream's ring full after this line
    pthread_mutex_lock (&self->lock);
    for (s_stream_t *stream = self->streams; stream; stream = stream->next) {
        if (stream->ended || !s_stream_wants (stream, line)) {
            if (stream->count < self->buffer)
                full = false;
            continue;
        }
        if (!event) {
            char *text = line->warning
                       ? zsys_sprintf ("event: gap\ndata: %.*s\n\n", (int) line->size, line->json)
                       : zsys_sprintf ("id: %" PRIu64 "\ndata: %.*s\n\n", line->bseq,
                                       (int) line->size, line->json);
            event = text? s_event_new (text, strlen (text)): NULL;
            free (text);
            if (!event)
                break;
        }
        s_stream_push (stream, event, now);
        if (stream->count < self->buffer)
            full = false;
    }
    if (event && event->refs == 0)
        free (event);
    self->paused = full && self->streams && !self->stopping;
    pthread_mutex_unlock (&self->lock);
    s_hub_resume (self);
}


//  --------------------------------------------------------------------------
//  Is the hub paused: every stream's ring full (hub thread)

static bool
s_hub_paused (lh_tap_sse_t *self)
{
    pthread_mutex_lock (&self->lock);
    bool paused = self->paused;
    pthread_mutex_unlock (&self->lock);
    return paused;
}


//  --------------------------------------------------------------------------
//  A keepalive comment to every stream quiet for heartbeat_ms (hub
//  thread): a client that went away is found when it is written to

static void
s_hub_heartbeat (lh_tap_sse_t *self)
{
    static const char keepalive [] = ": keepalive\n\n";
    int64_t now = zclock_mono ();
    s_event_t *event = NULL;
    pthread_mutex_lock (&self->lock);
    for (s_stream_t *stream = self->streams; stream; stream = stream->next) {
        if (stream->ended || stream->count || now - stream->last_event < self->heartbeat_ms)
            continue;
        if (!event && !(event = s_event_new (keepalive, sizeof (keepalive) - 1)))
            break;
        s_stream_push (stream, event, now);
    }
    if (event && event->refs == 0)
        free (event);
    pthread_mutex_unlock (&self->lock);
    s_hub_resume (self);
}


//  --------------------------------------------------------------------------
//  End every stream and refuse new ones (hub thread)

static void
s_hub_end (lh_tap_sse_t *self)
{
    pthread_mutex_lock (&self->lock);
    self->stopping = true;
    for (s_stream_t *stream = self->streams; stream; stream = stream->next) {
        stream->ended = true;
        if (stream->state == S_SUSPENDED) {
            stream->state = S_RUNNING;
            self->resume [self->resumes++] = stream->connection;
        }
        else
        if (stream->state == S_SUSPENDING)
            stream->state = S_WAKE;
    }
    pthread_mutex_unlock (&self->lock);
    s_hub_resume (self);
}


//  --------------------------------------------------------------------------
//  Subscribe to the tap (hub thread). Returns the SUB socket, or NULL
//  (logged once per failure).

static zsock_t *
s_hub_connect (lh_tap_sse_t *self)
{
    zsock_t *sub = zsock_new (ZMQ_SUB);
    assert (sub);
    zsock_set_rcvhwm (sub, S_TAP_HWM);
    zsock_set_linger (sub, 0);
    if (self->cert && self->server_key && strncmp (self->endpoint, "inproc://", 9) != 0) {
        zcert_apply (self->cert, sub);
        zsock_set_curve_serverkey (sub, self->server_key);
    }
    zsock_set_subscribe (sub, "");
    if (zsock_connect (sub, "%s", self->endpoint) == -1) {
        lh_warn (S_ACTOR, NULL, "tap stream: cannot connect to the tap at %s: %s",
                 self->endpoint, zmq_strerror (zmq_errno ()));
        zsock_destroy (&sub);
        return NULL;
    }
    lh_info (S_ACTOR, NULL, "tap stream: reading the tap at %s", self->endpoint);
    return sub;
}


//  --------------------------------------------------------------------------
//  The hub's thread: read the tap while streams are open, heartbeats

static void
s_hub_actor (zsock_t *pipe, void *args)
{
    lh_tap_sse_t *self = (lh_tap_sse_t *) args;
    pthread_setname_np (pthread_self (), "tap-sse");
    zsock_signal (pipe, 0);
    zsock_t *sub = NULL;
    lh_tap_t *tap = NULL;
    int64_t quiet_since = zclock_mono ();      //  no stream open since
    int64_t next_tick = zclock_mono () + S_TICK_MS;
    bool terminated = false;
    while (!terminated) {
        bool paused = s_hub_paused (self);
        zmq_pollitem_t items [3] = {
            { zsock_resolve (pipe), 0, ZMQ_POLLIN, 0 },
            { NULL, self->wake_fd, ZMQ_POLLIN, 0 },
            { sub? zsock_resolve (sub): NULL, 0, ZMQ_POLLIN, 0 }
        };
        int64_t now = zclock_mono ();
        long wait = next_tick > now? (long) (next_tick - now): 0;
        if (zmq_poll (items, sub && !paused? 3: 2, wait) == -1 && zmq_errno () != EINTR)
            break;
        if (items [0].revents & ZMQ_POLLIN) {
            char *command = zstr_recv (pipe);
            if (!command || streq (command, "$TERM"))
                terminated = true;
            else
            if (streq (command, "STOP")) {
                s_hub_end (self);
                zsock_destroy (&sub);
                lh_tap_destroy (&tap);
                zsock_signal (pipe, 0);
            }
            zstr_free (&command);
            continue;
        }
        if (items [1].revents & ZMQ_POLLIN) {
            uint64_t value;
            ssize_t rc = read (self->wake_fd, &value, sizeof (value));
            (void) rc;                  //  nothing to read is fine
        }
        pthread_mutex_lock (&self->lock);
        size_t streams = self->stream_count;
        bool stopping = self->stopping;
        pthread_mutex_unlock (&self->lock);
        now = zclock_mono ();
        if (streams)
            quiet_since = now;
        if (streams && !sub && !stopping && self->endpoint) {
            sub = s_hub_connect (self);
            if (sub) {
                tap = lh_tap_new ("gateway");
                lh_tap_set_handler (tap, s_hub_line, self);
            }
        }
        else
        if (!streams && sub && now - quiet_since >= S_LINGER_MS) {
            lh_info (S_ACTOR, NULL, "tap stream: no stream open, unsubscribed from the tap "
                     "(%" PRIu64 " lines read)", self->lines);
            zsock_destroy (&sub);
            lh_tap_destroy (&tap);
        }
        //  Read what the tap has, a bounded batch at a time, unless every
        //  stream's ring is full
        for (size_t count = 0; sub && count < S_DRAIN_MAX && !s_hub_paused (self)
                            && (zsock_events (sub) & ZMQ_POLLIN); count++) {
            zmsg_t *msg = zmsg_recv (sub);
            if (!msg)
                break;
            lh_tap_handle (tap, msg);
            zmsg_destroy (&msg);
        }
        if (now >= next_tick) {
            s_hub_heartbeat (self);
            next_tick = now + S_TICK_MS;
        }
    }
    zsock_destroy (&sub);
    lh_tap_destroy (&tap);
}


//  --------------------------------------------------------------------------
//  Create a hub

lh_tap_sse_t *
lh_tap_sse_new (const lh_tap_sse_opts_t *opts)
{
    assert (opts);
    lh_tap_sse_t *self = (lh_tap_sse_t *) zmalloc (sizeof (lh_tap_sse_t));
    assert (self);
    pthread_mutex_init (&self->lock, NULL);
    self->buffer = opts->buffer? opts->buffer: 1;
    self->streams_max = opts->streams_max? opts->streams_max: 1;
    self->heartbeat_ms = opts->heartbeat_ms? opts->heartbeat_ms: 15000;
    //  "tap, admin" -> ",tap,admin," (for lookups) and "tap or admin"
    self->roles = zsys_sprintf (",%s,", opts->roles? opts->roles: "");
    assert (self->roles);
    for (char *blank; (blank = strchr (self->roles, ' ')); )
        memmove (blank, blank + 1, strlen (blank));
    size_t size = strlen (self->roles);
    self->roles_text = strndup (self->roles + 1, size > 2? size - 2: 0);
    assert (self->roles_text);
    for (char *comma; (comma = strchr (self->roles_text, ',')); ) {
        char *longer = zsys_sprintf ("%.*s or %s", (int) (comma - self->roles_text),
                                     self->roles_text, comma + 1);
        free (self->roles_text);
        self->roles_text = longer;
    }
    self->no_tap = strdup (opts->no_tap? opts->no_tap: "the gateway has no tap to read");
    if (opts->tap.endpoint) {
        self->endpoint = strdup (opts->tap.endpoint);
        self->server_key = opts->tap.server_key? strdup (opts->tap.server_key): NULL;
        self->cert = opts->tap.cert;
    }
    self->resume = (struct MHD_Connection **) calloc (self->streams_max,
                                                      sizeof (struct MHD_Connection *));
    assert (self->resume);
    self->wake_fd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
    assert (self->wake_fd >= 0);
    self->actor = zactor_new (s_hub_actor, self);
    assert (self->actor);
    return self;
}


//  --------------------------------------------------------------------------
//  End every stream and refuse new ones

void
lh_tap_sse_stop (lh_tap_sse_t *self)
{
    if (self && self->actor) {
        zstr_send (self->actor, "STOP");
        zsock_wait (self->actor);
    }
}


//  --------------------------------------------------------------------------
//  Destroy a hub

void
lh_tap_sse_destroy (lh_tap_sse_t **self_p)
{
    assert (self_p);
    lh_tap_sse_t *self = *self_p;
    if (!self)
        return;
    zactor_destroy (&self->actor);
    //  Streams still listed have no connection left to read them (their
    //  HTTP threads are gone): free them
    while (self->streams) {
        s_stream_t *stream = self->streams;
        self->streams = stream->next;
        while (stream->count) {
            s_event_release (stream->ring [stream->head]);
            stream->head = (stream->head + 1) % self->buffer;
            stream->count--;
        }
        free (stream->ring);
        free (stream);
    }
    close (self->wake_fd);
    pthread_mutex_destroy (&self->lock);
    free (self->resume);
    free (self->roles);
    free (self->roles_text);
    free (self->no_tap);
    free (self->endpoint);
    free (self->server_key);
    free (self);
    *self_p = NULL;
}


//  --------------------------------------------------------------------------
//  libmicrohttpd wants bytes of a stream (its HTTP thread): the "dropped"
//  notice if any, then as many events as fit. An empty ring suspends the
//  connection until the hub resumes it.

static ssize_t
s_stream_read (void *cls, uint64_t pos, char *buf, size_t max)
{
    s_stream_t *stream = (s_stream_t *) cls;
    lh_tap_sse_t *hub = stream->hub;
    size_t size = 0;
    bool wake_hub = false;
    pthread_mutex_lock (&hub->lock);
    if (stream->dropped && max >= S_NOTICE_MAX) {
        size = (size_t) snprintf (buf, max, "event: dropped\ndata: {\"dropped\":%" PRIu64
                                  ",\"total\":%" PRIu64 "}\n\n", stream->dropped,
                                  stream->dropped_total);
        stream->dropped = 0;
    }
    while (size < max && stream->count) {
        s_event_t *event = stream->ring [stream->head];
        size_t take = event->size - stream->offset;
        if (take > max - size)
            take = max - size;
        memcpy (buf + size, event->text + stream->offset, take);
        size += take;
        stream->offset += take;
        if (stream->offset == event->size) {
            stream->ring [stream->head] = NULL;
            stream->head = (stream->head + 1) % hub->buffer;
            stream->count--;
            stream->offset = 0;
            s_event_release (event);
        }
    }
    //  Room in a ring: a paused hub reads the tap again
    if (hub->paused && stream->count < hub->buffer) {
        hub->paused = false;
        wake_hub = true;
    }
    if (size || stream->ended) {
        pthread_mutex_unlock (&hub->lock);
        if (wake_hub)
            s_hub_wake (hub);
        return size? (ssize_t) size: MHD_CONTENT_READER_END_OF_STREAM;
    }
    //  Nothing to send: suspend until an event comes
    stream->state = S_SUSPENDING;
    pthread_mutex_unlock (&hub->lock);
    if (wake_hub)
        s_hub_wake (hub);
    MHD_suspend_connection (stream->connection);
    pthread_mutex_lock (&hub->lock);
    bool wake = stream->state == S_WAKE;
    stream->state = wake? S_RUNNING: S_SUSPENDED;
    pthread_mutex_unlock (&hub->lock);
    if (wake)
        MHD_resume_connection (stream->connection);
    return 0;
}


//  --------------------------------------------------------------------------
//  The response is done with a stream (its connection closed): forget it

static void
s_stream_free (void *cls)
{
    s_stream_t *stream = (s_stream_t *) cls;
    lh_tap_sse_t *hub = stream->hub;
    pthread_mutex_lock (&hub->lock);
    if (stream->prev)
        stream->prev->next = stream->next;
    else
        hub->streams = stream->next;
    if (stream->next)
        stream->next->prev = stream->prev;
    hub->stream_count--;
    while (stream->count) {
        s_event_release (stream->ring [stream->head]);
        stream->head = (stream->head + 1) % hub->buffer;
        stream->count--;
    }
    uint64_t dropped = stream->dropped_total;
    pthread_mutex_unlock (&hub->lock);
    if (dropped)
        lh_info (S_ACTOR, NULL, "tap stream closed; its buffer dropped %" PRIu64 " events",
                 dropped);
    free (stream->ring);
    free (stream);
}


//  --------------------------------------------------------------------------
//  Is text a trace id: 32 lowercase hex digits

static bool
s_is_trace (const char *text)
{
    size_t size = strlen (text);
    if (size != LH_TRACE_SIZE)
        return false;
    for (size_t index = 0; index < size; index++)
        if (!isdigit ((unsigned char) text [index]) && !(text [index] >= 'a' && text [index] <= 'f'))
            return false;
    return true;
}


//  --------------------------------------------------------------------------
//  Is text an op or event topic filter: 1..LH_TOPIC_MAX printable
//  characters, no blank

static bool
s_is_topic (const char *text)
{
    size_t size = strlen (text);
    if (size == 0 || size > LH_TOPIC_MAX)
        return false;
    for (size_t index = 0; index < size; index++)
        if (text [index] <= ' ' || text [index] > '~')
            return false;
    return true;
}


//  --------------------------------------------------------------------------
//  The hello event of a stream: its buffer and filters (caller frees)

static char *
s_hello (size_t buffer, const char *service, const char *op, const char *trace)
{
    json_t *hello = json_object ();
    json_object_set_new (hello, "buffer", json_integer ((json_int_t) buffer));
    json_object_set_new (hello, "service", *service? json_string (service): json_null ());
    json_object_set_new (hello, "op", *op? json_string (op): json_null ());
    json_object_set_new (hello, "trace", *trace? json_string (trace): json_null ());
    char *json = json_dumps (hello, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref (hello);
    assert (json);
    char *text = zsys_sprintf ("event: hello\ndata: %s\n\n", json);
    free (json);
    assert (text);
    return text;
}


//  --------------------------------------------------------------------------
//  Open a stream

int
lh_tap_sse_open (lh_tap_sse_t *self, struct MHD_Connection *connection,
                 const char *role, const char *service, const char *op,
                 const char *trace, struct MHD_Response **response_p,
                 const char **kind_p, char **reason_p)
{
    assert (self && response_p && kind_p && reason_p);
    *response_p = NULL;
    char key [LH_NAME_MAX + 3];
    snprintf (key, sizeof (key), ",%s,", role? role: "");
    if (!role || !strstr (self->roles, key)) {
        *kind_p = "forbidden";
        *reason_p = zsys_sprintf ("role %s may not read the tap: GET /v1/tap/stream needs "
                                  "a token of role %s (gateway/tap_roles)",
                                  role? role: "(none)", self->roles_text);
        return 403;
    }
    service = service? service: "";
    op = op? op: "";
    trace = trace? trace: "";
    const char *field = *service && !lh_routes_valid_name (service, strlen (service))? "service"
                      : *op && !s_is_topic (op)? "op"
                      : *trace && !s_is_trace (trace)? "trace": NULL;
    if (field) {
        *kind_p = "bad_request";
        *reason_p = zsys_sprintf ("the filter '%s' is not valid: service is 1 to %d "
                                  "characters of A-Z a-z 0-9 _ . : -, op 1 to %d printable "
                                  "characters, trace 32 lowercase hex digits", field,
                                  LH_NAME_MAX, LH_TOPIC_MAX);
        return 400;
    }
    s_stream_t *stream = (s_stream_t *) zmalloc (sizeof (s_stream_t));
    assert (stream);
    stream->hub = self;
    stream->connection = connection;
    snprintf (stream->service, sizeof (stream->service), "%s", service);
    snprintf (stream->op, sizeof (stream->op), "%s", op);
    snprintf (stream->trace, sizeof (stream->trace), "%s", trace);
    stream->ring = (s_event_t **) calloc (self->buffer, sizeof (s_event_t *));
    assert (stream->ring);
    char *hello = s_hello (self->buffer, service, op, trace);
    s_event_t *event = s_event_new (hello, strlen (hello));
    free (hello);
    assert (event);

    pthread_mutex_lock (&self->lock);
    int status = 0;
    if (self->stopping || !self->endpoint) {
        status = 503;
        *kind_p = "tap_unavailable";
        *reason_p = strdup (self->stopping? "the gateway is stopping": self->no_tap);
    }
    else
    if (self->stream_count >= self->streams_max) {
        status = 429;
        *kind_p = "too_many_streams";
        *reason_p = zsys_sprintf ("%zu tap streams are open, the most the gateway serves "
                                  "(gateway/tap_streams): close one, or raise the limit",
                                  self->stream_count);
    }
    else {
        s_stream_push (stream, event, zclock_mono ());
        self->paused = false;           //  its ring has room
        stream->next = self->streams;
        if (self->streams)
            self->streams->prev = stream;
        self->streams = stream;
        self->stream_count++;
    }
    pthread_mutex_unlock (&self->lock);
    if (status) {
        free (event);
        free (stream->ring);
        free (stream);
        return status;
    }
    s_hub_wake (self);
    struct MHD_Response *response = MHD_create_response_from_callback (
        MHD_SIZE_UNKNOWN, S_BLOCK, s_stream_read, stream, s_stream_free);
    if (!response) {
        s_stream_free (stream);
        *kind_p = "internal";
        *reason_p = strdup ("cannot create the stream's response");
        return 500;
    }
    MHD_add_response_header (response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header (response, "X-Accel-Buffering", "no");
    *response_p = response;
    return 0;
}


//  --------------------------------------------------------------------------
//  Streams open now

size_t
lh_tap_sse_streams (lh_tap_sse_t *self)
{
    assert (self);
    pthread_mutex_lock (&self->lock);
    size_t count = self->stream_count;
    pthread_mutex_unlock (&self->lock);
    return count;
}


//  --------------------------------------------------------------------------
//  Selftest helper: a stream as lh_tap_sse_open makes it, without a
//  connection (the test never lets its ring run empty, so it is never
//  suspended), listed in the hub

static s_stream_t *
s_test_stream (lh_tap_sse_t *hub, const char *service)
{
    s_stream_t *stream = (s_stream_t *) zmalloc (sizeof (s_stream_t));
    assert (stream);
    stream->hub = hub;
    snprintf (stream->service, sizeof (stream->service), "%s", service);
    stream->ring = (s_event_t **) calloc (hub->buffer, sizeof (s_event_t *));
    assert (stream->ring);
    pthread_mutex_lock (&hub->lock);
    stream->next = hub->streams;
    if (hub->streams)
        hub->streams->prev = stream;
    hub->streams = stream;
    hub->stream_count++;
    pthread_mutex_unlock (&hub->lock);
    return stream;
}

//  A tap line for the selftest
static void
s_test_line (lh_tap_sse_t *hub, const char *svc, uint64_t bseq)
{
    char json [64];
    snprintf (json, sizeof (json), "{\"bseq\":%" PRIu64 "}", bseq);
    lh_tap_line_t line = { .svc = svc, .op = "echo", .tr = "", .bseq = bseq,
                           .json = json, .size = strlen (json) };
    s_hub_line (hub, &line);
}

void
lh_tap_sse_test (bool verbose)
{
    printf (" * lh_tap_sse: ");
    //  A hub without a tap: opens are refused, for the right reasons
    lh_tap_sse_opts_t opts = { .no_tap = "no tap here", .roles = "tap, admin",
                               .buffer = 4, .streams_max = 2 };
    lh_tap_sse_t *hub = lh_tap_sse_new (&opts);
    assert (streq (hub->roles, ",tap,admin,") && streq (hub->roles_text, "tap or admin"));
    struct MHD_Response *response;
    const char *kind;
    char *reason = NULL;
    struct {
        const char *role, *service, *op, *trace;
        int status;
    } cases [] = {
        { "client", NULL, NULL, NULL, 403 },
        { NULL, NULL, NULL, NULL, 403 },
        { "ta", NULL, NULL, NULL, 403 },
        { "tap", "bad name", NULL, NULL, 400 },
        { "tap", NULL, "a\x01", NULL, 400 },
        { "tap", NULL, NULL, "ABCDEF0123456789abcdef0123456789", 400 },
        { "tap", NULL, NULL, "abc", 400 },
        { "tap", "echo", "catalog.changed", "abcdef0123456789abcdef0123456789", 503 },
        { "admin", "", "", "", 503 },
    };
    for (size_t index = 0; index < sizeof (cases) / sizeof (cases [0]); index++) {
        int status = lh_tap_sse_open (hub, NULL, cases [index].role, cases [index].service,
                                      cases [index].op, cases [index].trace, &response,
                                      &kind, &reason);
        if (verbose)
            printf ("\n   %d %s: %s", status, kind, reason);
        assert (status == cases [index].status && !response);
        zstr_free (&reason);
    }

    //  Rings: a filter keeps its service only; a full ring drops the
    //  oldest and says how many before the newest
    s_stream_t *all = s_test_stream (hub, "");
    s_stream_t *echo = s_test_stream (hub, "echo");
    for (uint64_t bseq = 1; bseq <= 10; bseq++)
        s_test_line (hub, bseq % 2? "echo": "other", bseq);
    assert (all->count == 4 && all->dropped == 6);
    assert (echo->count == 4 && echo->dropped == 1);
    //  Both rings full: the hub pauses (reads no tap); a reader that takes
    //  an event unpauses it
    assert (hub->paused);
    char buffer [1024];
    ssize_t size = s_stream_read (all, 0, buffer, sizeof (buffer) - 1);
    assert (size > 0);
    buffer [size] = 0;
    if (verbose)
        printf ("\n%s", buffer);
    assert (strncmp (buffer, "event: dropped\ndata: {\"dropped\":6,\"total\":6}\n\n"
                             "id: 7\ndata: {\"bseq\":7}\n\n", 70) == 0);
    assert (strstr (buffer, "id: 10\ndata: {\"bseq\":10}\n\n") && all->count == 0);
    assert (!hub->paused);
    s_test_line (hub, "other", 12);     //  echo's ring is full, all's is not
    assert (!hub->paused && all->count == 1);
    s_stream_read (all, 0, buffer, sizeof (buffer) - 1);
    //  A reader with little room takes an event in pieces
    size = s_stream_read (echo, 0, buffer, S_NOTICE_MAX);
    assert (size == S_NOTICE_MAX && echo->dropped == 0 && echo->offset > 0);
    s_test_line (hub, "echo", 11);
    //  Gap warnings go to every stream
    lh_tap_line_t gap = { .svc = "", .op = "", .tr = "", .warning = true,
                          .json = "{\"warning\":\"bseq_gap\"}", .size = 22 };
    s_hub_line (hub, &gap);
    assert (all->count == 2 && strstr (all->ring [(all->head + 1) % 4]->text, "event: gap\n"));
    //  Ended streams send what they hold, then end
    lh_tap_sse_stop (hub);
    assert (all->ended && echo->ended);
    size = s_stream_read (all, 0, buffer, sizeof (buffer));
    assert (size > 0);
    assert (s_stream_read (all, 0, buffer, sizeof (buffer)) == MHD_CONTENT_READER_END_OF_STREAM);
    s_stream_free (all);
    assert (lh_tap_sse_streams (hub) == 1);
    assert (lh_tap_sse_open (hub, NULL, "tap", NULL, NULL, NULL, &response, &kind,
                             &reason) == 503 && strstr (reason, "stopping"));
    zstr_free (&reason);
    lh_tap_sse_destroy (&hub);          //  frees echo, still listed
    lh_tap_sse_destroy (&hub);
    printf ("OK\n");
}
