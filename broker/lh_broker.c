/*  =========================================================================
    lh_broker - the central broker: routing, queues, credit, heartbeats,
    deadlines, PUB/SUB, the built-in `broker` service, and the tap

    A small engine in the malamute manner: one switch on the message type,
    each action a short static function named for what it does. All state
    lives in a few tables (see docs/broker.md):

    - peers     zhashx keyed by the ROUTER routing id frame -> peer_t
    - services  zhashx keyed by name -> service_t (workers, LRU list of
                workers with credit, FIFO queue, stats)
    - requests  zhashx keyed by the broker-unique request key -> request_t
                (queued, in flight, or expired waiting for a late REP)
    - a min-heap of live requests by deadline, and two intrusive lists of
      peers ordered by last receive / last send for liveness and HB.

    The hot path (REQ in, REQ out, REP in, REP out) allocates nothing of
    its own except the zhashx item: request structs are recycled, bodies
    are forwarded as received, and copies for the tap, idempotent retries
    and PUB fan-out share the body by reference (zmq_msg_copy).
    =========================================================================
*/

#include "lh_broker.h"
#include <poll.h>
#include "lh_cert.h"
#include "lh_body.h"
#include "lh_log.h"
#include "lh_tap.h"
#include <jansson.h>
#include <time.h>

//  Defaults (see lh_broker.h)
#define S_HB_IVL            1000        //  ms
#define S_HB_LIVE           3           //  intervals
#define S_MAX_MSG           (16 * 1024 * 1024)
#define S_QUEUE_MAX         1000        //  requests per service
#define S_QUEUE_BYTES       (64 * 1024 * 1024)
#define S_RETRY_AFTER       100         //  ms
#define S_SUB_QUEUE         1000        //  held events per subscriber
#define S_TAP_HWM           1000
#define S_MAX_ATTEMPTS      3

#define S_DEFAULT_DL        5000        //  ms, when a REQ has no dl
#define S_DL_MAX            (7 * 24 * 3600 * 1000ULL)
#define S_CREDIT_MAX        1000000     //  most credit one worker may hold
#define S_SUBS_MAX          256         //  topic prefixes per subscriber
#define S_BATCH             256         //  messages read per wakeup
#define S_HOLD_RETRY        10          //  ms between retries of held events
#define S_SPARE_MAX         1024        //  recycled request structs kept
#define S_SCAN_MAX          64          //  queued requests scanned per dispatch
#define S_LAT_SUB           8           //  latency buckets per octave
#define S_LAT_BUCKETS       (40 * S_LAT_SUB)
#define S_ERROR_SLOTS       16          //  distinct error statuses counted
#define S_RELOAD_MS         1000        //  allow directory check interval
#define S_ZAP_ENDPOINT      "inproc://zeromq.zap.01"
#define S_ZAP_BUS           "lh-bus"    //  ZAP domain of the bus endpoints
#define S_ZAP_TAP           "lh-tap"    //  ZAP domain of the tap (role tap)
#define S_ZAP_ENFORCE       93          //  ZMQ_ZAP_ENFORCE_DOMAIN (draft name,
                                        //  stable option in libzmq 4.3)

//  Intrusive doubly-linked list; an unlinked item points to itself
typedef struct _link_t link_t;
struct _link_t {
    link_t *prev;                       //  previous item (or list head)
    link_t *next;                       //  next item (or list head)
};

#define s_container(ptr, type, member) \
    ((type *) ((char *) (ptr) - offsetof (type, member)))

typedef struct _service_t service_t;
typedef struct _peer_t peer_t;
typedef struct _request_t request_t;

//  A PUB held for one or more slow subscribers, shared by reference
typedef struct {
    size_t refs;                        //  holders
    zframe_t *body;                     //  body, or NULL
    size_t header_size;                 //  bytes in header
    uint8_t header [];                  //  encoded PUB header as sent
} event_t;

//  Count of replies with one error status
typedef struct {
    uint32_t status;                    //  st, 0 = free slot
    uint64_t count;                     //  replies with it
} error_count_t;

//  A service: its workers, its queue, its stats
struct _service_t {
    char name [LH_NAME_MAX + 1];        //  service name
    bool offered;                       //  a worker ever said READY
    bool builtin;                       //  the broker's own service
    link_t workers;                     //  all workers (peer.worker_link)
    size_t nworkers;                    //  length of workers
    link_t waiting;                     //  workers with credit, LRU first
    link_t queue;                       //  queued requests, oldest first
    size_t queued;                      //  length of queue
    uint64_t queued_bytes;              //  body bytes in queue
    uint64_t requests;                  //  REQs received
    uint64_t replies;                   //  REPs sent to clients
    uint64_t dropped;                   //  late or undeliverable replies
    uint64_t errors_other;              //  error statuses past the slots
    error_count_t errors [S_ERROR_SLOTS];   //  replies by error status
    uint64_t latency_count;             //  samples in latency
    uint64_t latency [S_LAT_BUCKETS];   //  log histogram of REQ->REP, us
};

//  A connected peer: client, worker, subscriber, or all three
struct _peer_t {
    zframe_t *rid;                      //  ROUTER routing id, the hash key
    char name [LH_NAME_MAX + 1];        //  name it said in HELLO
    char src [LH_NAME_MAX + 1];         //  name stamped as src
    link_t rx_link;                     //  in self->by_rx, least recent first
    link_t tx_link;                     //  in self->by_tx, least recent first
    int64_t last_rx;                    //  ms, last heard from
    int64_t last_tx;                    //  ms, last sent to
    bool dead;                          //  to be forgotten at the next reap
    service_t *service;                 //  service it works for, or NULL
    char *ops;                          //  "op1,op2" it accepts; NULL: any
    uint32_t credit;                    //  requests it may still take
    size_t inflight;                    //  requests dispatched, unanswered
    int64_t idle_since;                 //  ms, last dispatch or reply
    link_t worker_link;                 //  in service->workers
    link_t wait_link;                   //  in service->waiting iff credit
    link_t requests;                    //  in-flight requests (request.link)
    char **subs;                        //  SUB topic prefixes
    size_t nsubs;                       //  number of subs
    link_t sub_link;                    //  in self->subscribers if nsubs
    event_t **held;                     //  ring of events not yet sent
    size_t held_head;                   //  index of oldest held event
    size_t held_count;                  //  events held
    size_t held_max;                    //  ring capacity
    link_t hold_link;                   //  in self->holding if held_count
    bool secure;                        //  came over CURVE: uid and role set
    bool revoked;                       //  key revoked: next message gets 401
    char uid [LH_UID_SIZE + 1];         //  CURVE public key (Z85), or ""
    char role [LH_ROLE_MAX + 1];        //  certificate role, or ""
    int64_t expires;                    //  certificate expiry, UTC s; 0 never
    uint64_t allow_gen;                 //  allow-set generation last checked
};

//  A request, from receipt until its REP (or its 504 and late REP)
struct _request_t {
    link_t link;                        //  in service queue or worker list
    uint64_t key;                       //  broker-unique id the worker sees
    uint64_t cid;                       //  client's id
    zframe_t *client;                   //  client routing id
    service_t *service;                 //  service asked
    peer_t *worker;                     //  worker holding it, or NULL
    zframe_t *body;                     //  body while queued / kept for retry
    size_t body_size;                   //  bytes counted in queue
    int64_t deadline;                   //  ms, monotonic
    uint64_t brx;                       //  us, broker receive time
    uint64_t bseq;                      //  broker sequence at receipt
    size_t heap_index;                  //  in self->heap, or SIZE_MAX
    uint32_t att;                       //  delivery attempt
    bool expired;                       //  504 sent, awaiting a late REP
    bool q;                             //  may wait for a worker
    bool has_idem;                      //  idem is set
    bool has_tr;                        //  tr is set
    char op [LH_NAME_MAX + 1];          //  operation
    char src [LH_NAME_MAX + 1];         //  client's src
    char uid [LH_UID_SIZE + 1];         //  client's key, or ""
    char idem [LH_IDEM_MAX + 1];        //  idempotency key
    char tr [LH_TRACE_SIZE + 1];        //  trace id
};

//  The broker
typedef struct {
    zsock_t *pipe;                      //  actor command pipe
    zsock_t *router;                    //  the bus
    void *router_handle;                //  its libzmq socket
    zsock_t *tap;                       //  XPUB tap, or NULL
    void *tap_handle;                   //  its libzmq socket
    bool pipe_dirty;                    //  pipe may hold a command
    bool side_dirty;                    //  tap, ZAP or monitors may hold messages
    bool verbose;                       //  log every message
    bool terminated;                    //  $TERM received
    bool bound;                         //  router bound at least once
    char name [LH_NAME_MAX + 1];        //  broker name (ping)

    uint32_t hb_ivl;                    //  ms
    uint32_t hb_live;                   //  intervals
    uint64_t max_msg;                   //  bytes
    size_t queue_max;                   //  requests per service
    uint64_t queue_bytes;               //  bytes per service
    uint32_t retry_after_ms;            //  advertised with 429 / 503
    size_t sub_queue;                   //  held events per subscriber
    int tap_hwm;                        //  tap SNDHWM
    uint32_t max_attempts;              //  deliveries of an idem request
    int64_t restart_grace;              //  ms; -1 = hb_ivl x hb_live, 0 = off

    zhashx_t *peers;                    //  rid frame -> peer_t
    zhashx_t *services;                 //  name -> service_t
    zhashx_t *requests;                 //  &key -> request_t
    link_t by_rx;                       //  peers, least recently heard first
    link_t by_tx;                       //  peers, least recently sent first
    link_t subscribers;                 //  peers with SUBs
    link_t holding;                     //  peers with held events
    request_t **heap;                   //  live requests by deadline
    size_t heap_size;                   //  entries in heap
    size_t heap_max;                    //  capacity of heap
    request_t *spare;                   //  recycled requests (via link.next)
    size_t nspare;                      //  length of spare

    uint64_t next_key;                  //  last request key issued
    uint64_t bseq;                      //  last broker sequence number
    int64_t now;                        //  ms, monotonic, this message
    uint64_t now_us;                    //  us, wall clock, this message
    int64_t started;                    //  ms, monotonic
    int64_t next_tick;                  //  ms, heartbeats and reaping
    int64_t grace_until;                //  ms, restart grace (see s_in_grace)
    int64_t next_flush;                 //  ms, retry of held events

    uint64_t dropped_malformed;         //  bad messages dropped
    uint64_t dropped_unroutable;        //  sends to a vanished peer
    uint64_t dropped_full;              //  sends to a full peer queue
    uint64_t dropped_late;              //  REPs after 504 / for nothing
    uint64_t dropped_tap;               //  tap copies not sent
    uint64_t dropped_sub;               //  events dropped for slow subs
    uint64_t redelivered;               //  idem requests sent again

    zsock_t *zap;                       //  our ZAP handler (REP), or NULL
    zsock_t *monitor [2];               //  handshake events: router, tap
    zcert_t *cert;                      //  server certificate for tcp binds
    lh_allow_t *allow;                  //  accepted client keys, or NULL
    char *allow_dir;                    //  their directory, or NULL
    uint32_t reload_ms;                 //  allow directory check interval
    int64_t next_reload;                //  ms, next check
    uint64_t allow_gen;                 //  generation of the allow set
    zhashx_t *acl;                      //  "ROLE/serve|call" -> pattern list

    uint64_t refused_handshake;         //  CURVE handshakes that failed
    uint64_t refused_zap;               //  keys ZAP refused (unknown, role)
    uint64_t refused_revoked;           //  messages from revoked keys (401)
    uint64_t refused_name;              //  HELLO names not the cert's (403)
    uint64_t refused_serve;             //  READY not allowed (403)
    uint64_t refused_call;              //  REQ not allowed (403)
    uint64_t refused_admin;             //  broker admin op by non-admin (403)

    lh_header_t out;                    //  header being built
    uint8_t hbuf [LH_HEADER_MAX];       //  encoded header being sent
    uint8_t tbuf [LH_HEADER_MAX + 16];  //  tap copy of a reply, with rseq
} self_t;

//  Restart grace, defined with the timers below
static bool s_in_grace (self_t *self);
static void s_end_grace (self_t *self);
//  Binding, defined with the pipe commands below
static char *s_bind_router (self_t *self, const char *endpoint,
                            const char *cert_path, char **error_p);
static int s_unbind_router (self_t *self, const char *endpoint, char **error_p);


//  --------------------------------------------------------------------------
//  Make an empty list head, or an unlinked item

static inline void
s_list_init (link_t *item)
{
    item->prev = item->next = item;
}


//  --------------------------------------------------------------------------
//  Is the list empty?

static inline bool
s_list_empty (const link_t *list)
{
    return list->next == list;
}


//  --------------------------------------------------------------------------
//  Unlink an item (safe on an unlinked item)

static inline void
s_list_remove (link_t *item)
{
    item->prev->next = item->next;
    item->next->prev = item->prev;
    item->prev = item->next = item;
}


//  --------------------------------------------------------------------------
//  Link an unlinked item at the tail of a list

static inline void
s_list_append (link_t *list, link_t *item)
{
    item->prev = list->prev;
    item->next = list;
    list->prev->next = item;
    list->prev = item;
}


//  --------------------------------------------------------------------------
//  Link an unlinked item at the head of a list

static inline void
s_list_prepend (link_t *list, link_t *item)
{
    item->next = list->next;
    item->prev = list;
    list->next->prev = item;
    list->next = item;
}


//  --------------------------------------------------------------------------
//  Move an item (linked or not) to the tail of a list

static inline void
s_list_move_tail (link_t *list, link_t *item)
{
    s_list_remove (item);
    s_list_append (list, item);
}


//  --------------------------------------------------------------------------
//  Clocks: monotonic ms for timers, wall-clock us for brx

static int64_t
s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


//  --------------------------------------------------------------------------
//  Wall-clock time in microseconds (brx)

static uint64_t
s_wall_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


//  --------------------------------------------------------------------------
//  Is this a valid name: 1..64 bytes of [A-Za-z0-9_.:-]?

static bool
s_name_valid (const char *name, size_t size)
{
    if (size < 1 || size > LH_NAME_MAX)
        return false;
    for (size_t index = 0; index < size; index++) {
        char c = name [index];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        ||    (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' || c == '-'))
            return false;
    }
    return true;
}


//  --------------------------------------------------------------------------
//  Is this NUL-terminated string a valid name?

static bool
s_name_ok (const char *name)
{
    return s_name_valid (name, strlen (name));
}


//  --------------------------------------------------------------------------
//  Is an ops list "a,b,c" made of valid names?

static bool
s_ops_valid (const char *ops)
{
    const char *token = ops;
    while (true) {
        const char *comma = strchr (token, ',');
        size_t size = comma? (size_t) (comma - token): strlen (token);
        if (!s_name_valid (token, size))
            return false;
        if (!comma)
            return true;
        token = comma + 1;
    }
}


//  --------------------------------------------------------------------------
//  Does an ops list accept op? A NULL list accepts any op.

static bool
s_ops_accept (const char *ops, const char *op)
{
    if (!ops)
        return true;
    size_t op_size = strlen (op);
    const char *token = ops;
    while (true) {
        const char *comma = strchr (token, ',');
        size_t size = comma? (size_t) (comma - token): strlen (token);
        if (size == op_size && memcmp (token, op, size) == 0)
            return true;
        if (!comma)
            return false;
        token = comma + 1;
    }
}


//  --------------------------------------------------------------------------
//  Hash table callbacks: peers keyed by routing id frame, requests by key

static size_t
s_rid_hash (const void *key)
{
    zframe_t *frame = (zframe_t *) key;
    const byte *data = zframe_data (frame);
    size_t size = zframe_size (frame);
    uint64_t hash = 14695981039346656037ULL;
    for (size_t index = 0; index < size; index++) {
        hash ^= data [index];
        hash *= 1099511628211ULL;
    }
    return (size_t) hash;
}


//  --------------------------------------------------------------------------
//  Compare two routing id frames (peers table)

static int
s_rid_compare (const void *key1, const void *key2)
{
    zframe_t *frame1 = (zframe_t *) key1;
    zframe_t *frame2 = (zframe_t *) key2;
    size_t size1 = zframe_size (frame1);
    size_t size2 = zframe_size (frame2);
    if (size1 != size2)
        return size1 < size2? -1: 1;
    return memcmp (zframe_data (frame1), zframe_data (frame2), size1);
}


//  --------------------------------------------------------------------------
//  Latency histogram: 8 buckets per power of two, so a percentile read
//  from it is within 1/16 of the true value. Fixed size, never grows.

static size_t
s_latency_bucket (uint64_t usecs)
{
    if (usecs < S_LAT_SUB)
        return (size_t) usecs;
    int msb = 63 - __builtin_clzll (usecs);
    size_t bucket = (size_t) (msb - 2) * S_LAT_SUB
                  + (size_t) ((usecs >> (msb - 3)) & (S_LAT_SUB - 1));
    return bucket < S_LAT_BUCKETS? bucket: S_LAT_BUCKETS - 1;
}


//  --------------------------------------------------------------------------
//  Middle value of a bucket, us

static uint64_t
s_latency_value (size_t bucket)
{
    if (bucket < S_LAT_SUB)
        return bucket;
    int msb = (int) (bucket / S_LAT_SUB) + 2;
    uint64_t low = (uint64_t) (S_LAT_SUB + bucket % S_LAT_SUB) << (msb - 3);
    uint64_t width = 1ULL << (msb - 3);
    return low + width / 2;
}


//  --------------------------------------------------------------------------
//  Percentile (0 < fraction <= 1) of a service's latencies, us

static uint64_t
s_latency_percentile (service_t *service, double fraction)
{
    if (service->latency_count == 0)
        return 0;
    uint64_t target = (uint64_t) (fraction * (double) service->latency_count);
    if (target < 1)
        target = 1;
    uint64_t seen = 0;
    for (size_t bucket = 0; bucket < S_LAT_BUCKETS; bucket++) {
        seen += service->latency [bucket];
        if (seen >= target)
            return s_latency_value (bucket);
    }
    return s_latency_value (S_LAT_BUCKETS - 1);
}


//  --------------------------------------------------------------------------
//  Create a service entry

static service_t *
s_service_new (const char *name)
{
    service_t *self = (service_t *) zmalloc (sizeof (service_t));
    assert (self);
    snprintf (self->name, sizeof self->name, "%s", name);
    s_list_init (&self->workers);
    s_list_init (&self->waiting);
    s_list_init (&self->queue);
    return self;
}


//  --------------------------------------------------------------------------
//  Destroy a service entry (zhashx destructor)

static void
s_service_destroy (void **self_p)
{
    free (*self_p);
    *self_p = NULL;
}


//  --------------------------------------------------------------------------
//  Count one reply delivered for a service: its status, and latency for
//  replies that came from a worker (latency_us > 0)

static void
s_service_count_reply (service_t *self, uint32_t status, uint64_t latency_us)
{
    self->replies++;
    if (latency_us) {
        self->latency [s_latency_bucket (latency_us)]++;
        self->latency_count++;
    }
    if (status < 400)
        return;
    for (size_t slot = 0; slot < S_ERROR_SLOTS; slot++) {
        if (self->errors [slot].status == status || self->errors [slot].status == 0) {
            self->errors [slot].status = status;
            self->errors [slot].count++;
            return;
        }
    }
    self->errors_other++;
}


//  --------------------------------------------------------------------------
//  Look a service up, creating it if needed

static service_t *
s_service_require (self_t *self, const char *name)
{
    service_t *service = (service_t *) zhashx_lookup (self->services, name);
    if (!service) {
        service = s_service_new (name);
        zhashx_insert (self->services, name, service);
    }
    return service;
}


//  --------------------------------------------------------------------------
//  Does any worker of this service accept op?

static bool
s_service_accepts (service_t *service, const char *op)
{
    for (link_t *link = service->workers.next; link != &service->workers; link = link->next) {
        peer_t *worker = s_container (link, peer_t, worker_link);
        if (s_ops_accept (worker->ops, op))
            return true;
    }
    return false;
}


//  --------------------------------------------------------------------------
//  The least recently used worker with credit that accepts op, or NULL

static peer_t *
s_service_find_worker (service_t *service, const char *op)
{
    for (link_t *link = service->waiting.next; link != &service->waiting; link = link->next) {
        peer_t *worker = s_container (link, peer_t, wait_link);
        if (s_ops_accept (worker->ops, op))
            return worker;
    }
    return NULL;
}


//  --------------------------------------------------------------------------
//  Events held for slow subscribers

static event_t *
s_event_new (const uint8_t *header, size_t size, zframe_t *body)
{
    event_t *self = (event_t *) malloc (sizeof (event_t) + size);
    assert (self);
    self->refs = 1;
    self->body = body;
    self->header_size = size;
    memcpy (self->header, header, size);
    return self;
}


//  --------------------------------------------------------------------------
//  Drop one reference to an event; the last frees it

static void
s_event_release (event_t **self_p)
{
    event_t *self = *self_p;
    if (self && --self->refs == 0) {
        zframe_destroy (&self->body);
        free (self);
    }
    *self_p = NULL;
}


//  --------------------------------------------------------------------------
//  Create a peer for a routing id (takes the frame)

static peer_t *
s_peer_new (zframe_t **rid_p)
{
    peer_t *self = (peer_t *) zmalloc (sizeof (peer_t));
    assert (self);
    self->rid = *rid_p;
    *rid_p = NULL;
    s_list_init (&self->rx_link);
    s_list_init (&self->tx_link);
    s_list_init (&self->worker_link);
    s_list_init (&self->wait_link);
    s_list_init (&self->requests);
    s_list_init (&self->sub_link);
    s_list_init (&self->hold_link);
    return self;
}


//  --------------------------------------------------------------------------
//  Destroy a peer already unlinked from every table

static void
s_peer_destroy (peer_t **self_p)
{
    peer_t *self = *self_p;
    if (!self)
        return;
    while (self->held_count) {
        s_event_release (&self->held [self->held_head]);
        self->held_head = (self->held_head + 1) % self->held_max;
        self->held_count--;
    }
    free (self->held);
    for (size_t index = 0; index < self->nsubs; index++)
        free (self->subs [index]);
    free (self->subs);
    free (self->ops);
    zframe_destroy (&self->rid);
    free (self);
    *self_p = NULL;
}


//  --------------------------------------------------------------------------
//  Decide the name a peer is known by, stamped as src on everything it
//  sends. A peer that came over CURVE is known by its certificate: the
//  User-Id (its key) and the name and role that our ZAP handler attached
//  as metadata; its key must still be in the allow set (401) and its HELLO
//  must say the certificate's name (403). A peer without User-Id (inproc,
//  or plain tcp on loopback) is known by its HELLO name.
//  Returns 0, or the status to refuse the peer with.

static uint32_t
s_peer_identify (self_t *self, peer_t *peer, lh_msg_t *msg)
{
    const char *uid = msg->header_frame? zframe_meta (msg->header_frame, "User-Id"): NULL;
    if (uid && *uid) {
        const lh_allow_entry_t *entry = self->allow? lh_allow_lookup (self->allow, uid): NULL;
        const char *name = zframe_meta (msg->header_frame, "name");
        const char *role = zframe_meta (msg->header_frame, "role");
        if (!entry || !name || !role) {
            self->refused_revoked++;
            return LH_ST_UNAUTHORIZED;
        }
        if (!streq (name, msg->header.name)) {
            self->refused_name++;
            return LH_ST_FORBIDDEN;
        }
        peer->secure = true;
        snprintf (peer->uid, sizeof peer->uid, "%s", uid);
        snprintf (peer->role, sizeof peer->role, "%s", role);
        peer->expires = entry->expires;
        peer->allow_gen = self->allow_gen;
    }
    snprintf (peer->name, sizeof peer->name, "%s", msg->header.name);
    snprintf (peer->src, sizeof peer->src, "%s", msg->header.name);
    return 0;
}


//  --------------------------------------------------------------------------
//  Deadline heap of live requests

static void
s_heap_swap (self_t *self, size_t a, size_t b)
{
    request_t *request = self->heap [a];
    self->heap [a] = self->heap [b];
    self->heap [b] = request;
    self->heap [a]->heap_index = a;
    self->heap [b]->heap_index = b;
}


//  --------------------------------------------------------------------------
//  Move an entry up to its place

static void
s_heap_up (self_t *self, size_t index)
{
    while (index > 0) {
        size_t parent = (index - 1) / 2;
        if (self->heap [parent]->deadline <= self->heap [index]->deadline)
            break;
        s_heap_swap (self, parent, index);
        index = parent;
    }
}


//  --------------------------------------------------------------------------
//  Move an entry down to its place

static void
s_heap_down (self_t *self, size_t index)
{
    while (true) {
        size_t least = index;
        size_t left = 2 * index + 1;
        size_t right = left + 1;
        if (left < self->heap_size
        &&  self->heap [left]->deadline < self->heap [least]->deadline)
            least = left;
        if (right < self->heap_size
        &&  self->heap [right]->deadline < self->heap [least]->deadline)
            least = right;
        if (least == index)
            break;
        s_heap_swap (self, index, least);
        index = least;
    }
}


//  --------------------------------------------------------------------------
//  Add a request to the deadline heap

static void
s_heap_push (self_t *self, request_t *request)
{
    if (self->heap_size == self->heap_max) {
        self->heap_max = self->heap_max? self->heap_max * 2: 256;
        self->heap = (request_t **) realloc (self->heap, self->heap_max * sizeof (request_t *));
        assert (self->heap);
    }
    request->heap_index = self->heap_size;
    self->heap [self->heap_size++] = request;
    s_heap_up (self, request->heap_index);
}


//  --------------------------------------------------------------------------
//  Take a request off the deadline heap (if it is on it)

static void
s_heap_remove (self_t *self, request_t *request)
{
    size_t index = request->heap_index;
    if (index == SIZE_MAX)
        return;
    assert (index < self->heap_size && self->heap [index] == request);
    request->heap_index = SIZE_MAX;
    self->heap_size--;
    if (index < self->heap_size) {
        self->heap [index] = self->heap [self->heap_size];
        self->heap [index]->heap_index = index;
        s_heap_down (self, index);
        s_heap_up (self, index);
    }
}


//  --------------------------------------------------------------------------
//  Create a request from a received REQ (takes its routing id and body)

static request_t *
s_request_new (self_t *self, service_t *service, lh_msg_t *msg, uint64_t dl)
{
    request_t *request = self->spare;
    if (request) {
        self->spare = (request_t *) request->link.next;
        self->nspare--;
    }
    else {
        request = (request_t *) malloc (sizeof (request_t));
        assert (request);
    }
    lh_header_t *header = &msg->header;
    s_list_init (&request->link);
    request->key = ++self->next_key;
    request->cid = header->id;
    request->client = msg->routing;
    msg->routing = NULL;
    request->service = service;
    request->worker = NULL;
    request->body = msg->body;
    msg->body = NULL;
    request->body_size = request->body? zframe_size (request->body): 0;
    request->deadline = self->now + (int64_t) dl;
    request->brx = header->brx;
    request->bseq = header->bseq;
    request->heap_index = SIZE_MAX;
    request->att = 1;
    request->expired = false;
    request->q = (header->has & LH_H_Q) && header->q;
    request->has_idem = (header->has & LH_H_IDEM) != 0;
    request->has_tr = (header->has & LH_H_TR) != 0;
    memcpy (request->op, header->op, sizeof request->op);
    memcpy (request->src, header->src, sizeof request->src);
    if (header->has & LH_H_UID)
        memcpy (request->uid, header->uid, sizeof request->uid);
    else
        request->uid [0] = 0;
    if (request->has_idem)
        memcpy (request->idem, header->idem, sizeof request->idem);
    if (request->has_tr)
        memcpy (request->tr, header->tr, sizeof request->tr);
    return request;
}


//  --------------------------------------------------------------------------
//  Put a request in its service's queue, at the tail or (redelivery) head

static void
s_enqueue (request_t *request, bool front)
{
    service_t *service = request->service;
    if (front)
        s_list_prepend (&service->queue, &request->link);
    else
        s_list_append (&service->queue, &request->link);
    service->queued++;
    service->queued_bytes += request->body_size;
}


//  --------------------------------------------------------------------------
//  Take a request off the queue or its worker's in-flight list

static void
s_request_detach (request_t *request)
{
    if (request->worker) {
        s_list_remove (&request->link);
        request->worker->inflight--;
        request->worker = NULL;
    }
    else
    if (request->link.next != &request->link) {
        service_t *service = request->service;
        s_list_remove (&request->link);
        service->queued--;
        service->queued_bytes -= request->body_size;
    }
}


//  --------------------------------------------------------------------------
//  Forget a request: detach it from every table and recycle it

static void
s_request_destroy (self_t *self, request_t **request_p)
{
    request_t *request = *request_p;
    s_request_detach (request);
    s_heap_remove (self, request);
    zhashx_delete (self->requests, &request->key);
    zframe_destroy (&request->client);
    zframe_destroy (&request->body);
    if (self->nspare < S_SPARE_MAX) {
        request->link.next = (link_t *) self->spare;
        self->spare = request;
        self->nspare++;
    }
    else
        free (request);
    *request_p = NULL;
}


//  --------------------------------------------------------------------------
//  Record that we sent to / heard from a peer

static void
s_peer_sent (self_t *self, peer_t *peer)
{
    peer->last_tx = self->now;
    s_list_move_tail (&self->by_tx, &peer->tx_link);
}


//  --------------------------------------------------------------------------
//  Record that we heard from a peer: it is alive

static void
s_peer_heard (self_t *self, peer_t *peer)
{
    peer->last_rx = self->now;
    s_list_move_tail (&self->by_rx, &peer->rx_link);
}


//  --------------------------------------------------------------------------
//  Mark a peer dead (its routing id is gone); the next reap forgets it.
//  Never forgets it here, so callers may keep using the pointer.

static void
s_peer_mark_dead (self_t *self, peer_t *peer)
{
    peer->dead = true;
    s_list_remove (&peer->wait_link);
    s_list_remove (&peer->rx_link);
    s_list_prepend (&self->by_rx, &peer->rx_link);
}


//  --------------------------------------------------------------------------
//  Send one message on the bus: routing id, signature, encoded header and
//  the body if any. With reuse the body is sent by reference and stays the
//  caller's; otherwise it is taken on success. Never blocks. Returns 0, or
//  -1 with errno EAGAIN (peer's queue full) or EHOSTUNREACH (peer gone).

static int
s_send_encoded (self_t *self, zframe_t *rid, const uint8_t *header, size_t size,
                zframe_t **body_p, bool reuse)
{
    void *handle = self->router_handle;
    bool has_body = body_p && *body_p;
    if (zmq_send (handle, zframe_data (rid), zframe_size (rid), ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1)
        return -1;
    //  Once the routing frame is accepted the rest of the message is too
    zmq_send (handle, LH_SIGNATURE, LH_SIGNATURE_SIZE, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send (handle, header, size, has_body? ZMQ_SNDMORE | ZMQ_DONTWAIT: ZMQ_DONTWAIT);
    if (has_body)
        zframe_send (body_p, handle, ZFRAME_DONTWAIT | (reuse? ZFRAME_REUSE: 0));
    return 0;
}


//  --------------------------------------------------------------------------
//  Encode self->out into self->hbuf; returns the size or -1

static int
s_encode_out (self_t *self)
{
    return lh_header_encode (&self->out, self->hbuf, sizeof self->hbuf);
}


//  --------------------------------------------------------------------------
//  Count a failed send of a message that is now dropped

static void
s_count_send_failure (self_t *self)
{
    if (errno == EAGAIN)
        self->dropped_full++;
    else
        self->dropped_unroutable++;
}


//  --------------------------------------------------------------------------
//  Publish a copy of a routed message on the tap: [first.second] [header]
//  [body].
//  Never blocks; a copy that cannot be sent is dropped and counted.

static void
s_tap_copy (self_t *self, const char *first, const char *second,
            const uint8_t *header, size_t size, zframe_t *body)
{
    if (!self->tap_handle)
        return;
    char topic [LH_TOPIC_MAX + LH_NAME_MAX + 8];
    int topic_size = snprintf (topic, sizeof topic, "%s.%s", first, second);
    if (zmq_send (self->tap_handle, topic, (size_t) topic_size, ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1) {
        self->dropped_tap++;
        return;
    }
    zmq_send (self->tap_handle, header, size, body? ZMQ_SNDMORE | ZMQ_DONTWAIT: ZMQ_DONTWAIT);
    if (body)
        zframe_send (&body, self->tap_handle, ZFRAME_DONTWAIT | ZFRAME_REUSE);
}


//  --------------------------------------------------------------------------
//  Tap a PART/REP: its header as routed plus key "rseq", the bseq of the
//  request it answers, so a tap reader pairs replies with requests without
//  guessing (client ids repeat across clients). Only the tap copy carries
//  rseq; the message routed to the client is not touched.

static void
s_tap_reply (self_t *self, const char *svc, const char *op, uint64_t rseq,
             const uint8_t *header, size_t size, zframe_t *body)
{
    if (!self->tap_handle)
        return;
    if (rseq == 0) {                    //  a request that was never stamped
        s_tap_copy (self, svc, op, header, size, body);
        return;
    }
    //  Our encoder writes a fixmap (up to 15 keys) or a map16 head
    uint8_t *buffer = self->tbuf;
    size_t skip, at;
    if (size > 0 && header [0] >= 0x80 && header [0] < 0x8f) {
        buffer [0] = header [0] + 1;
        skip = at = 1;
    }
    else
    if (size > 0 && header [0] == 0x8f) {
        buffer [0] = 0xde;
        buffer [1] = 0;
        buffer [2] = 16;
        skip = 1;
        at = 3;
    }
    else
    if (size > 2 && header [0] == 0xde) {
        uint32_t count = ((uint32_t) header [1] << 8 | header [2]) + 1;
        buffer [0] = 0xde;
        buffer [1] = (uint8_t) (count >> 8);
        buffer [2] = (uint8_t) count;
        skip = at = 3;
    }
    else {
        self->dropped_tap++;
        return;
    }
    assert (size - skip + at + 14 <= sizeof self->tbuf);
    memcpy (buffer + at, header + skip, size - skip);
    at += size - skip;
    memcpy (buffer + at, "\xa4rseq\xcf", 6);
    at += 6;
    for (int shift = 56; shift >= 0; shift -= 8)
        buffer [at++] = (uint8_t) (rseq >> shift);
    s_tap_copy (self, svc, op, buffer, at, body);
}


//  --------------------------------------------------------------------------
//  Tap a REQ as received and stamped (topic "svc.op")

static void
s_tap_request (self_t *self, lh_header_t *header, zframe_t *body)
{
    if (!self->tap_handle)
        return;
    int size = lh_header_encode (header, self->hbuf, sizeof self->hbuf);
    if (size > 0)
        s_tap_copy (self, (header->has & LH_H_SVC)? header->svc: "?",
                    (header->has & LH_H_OP)? header->op: "?",
                    self->hbuf, (size_t) size, body);
    else
        self->dropped_tap++;
}


//  --------------------------------------------------------------------------
//  Stamp a received header: whatever the peer sent in src, uid, bseq, brx
//  and att is replaced by the broker's values

static void
s_stamp (self_t *self, peer_t *peer, lh_header_t *header)
{
    header->has &= ~LH_H_STAMPS;
    lh_header_set_str (header, LH_H_SRC, peer->src);
    if (peer->secure)
        lh_header_set_str (header, LH_H_UID, peer->uid);
    header->bseq = ++self->bseq;
    header->brx = self->now_us;
    header->has |= LH_H_BSEQ | LH_H_BRX;
}


//  --------------------------------------------------------------------------
//  Send a REP from the broker itself (src "broker") to a client; counts it
//  against service (may be NULL) and taps it (rseq: the request's bseq).
//  Takes the body.

static void
s_reply_from_broker (self_t *self, zframe_t *client, uint64_t cid, uint64_t rseq,
                     const char *tr, service_t *service, const char *svc,
                     const char *op, uint32_t status, zframe_t **body_p)
{
    lh_header_t *out = &self->out;
    lh_header_init (out, LH_T_REP);
    out->has |= LH_H_T | LH_H_CID | LH_H_ST | LH_H_BSEQ | LH_H_BRX;
    out->cid = cid;
    out->st = status;
    lh_header_set_str (out, LH_H_SRC, "broker");
    out->bseq = ++self->bseq;
    out->brx = self->now_us;
    if (tr)
        lh_header_set_str (out, LH_H_TR, tr);
    int size = s_encode_out (self);
    if (size < 0) {
        zframe_destroy (body_p);
        return;
    }
    s_tap_reply (self, svc, op, rseq, self->hbuf, (size_t) size, *body_p);
    if (service)
        s_service_count_reply (service, status, 0);
    if (s_send_encoded (self, client, self->hbuf, (size_t) size, body_p, false) == -1) {
        s_count_send_failure (self);
        if (service)
            service->dropped++;
        zframe_destroy (body_p);
        return;
    }
    peer_t *peer = (peer_t *) zhashx_lookup (self->peers, client);
    if (peer)
        s_peer_sent (self, peer);
}


//  --------------------------------------------------------------------------
//  Answer a request with an error REP {"error": {kind, reason, ...}}

static void
s_reply_error (self_t *self, zframe_t *client, uint64_t cid, uint64_t rseq,
               const char *tr, service_t *service, const char *svc, const char *op,
               uint32_t status, const char *kind, const char *reason,
               uint64_t retry_after_ms)
{
    zframe_t *body = lh_error_body (status, kind, reason, retry_after_ms);
    s_reply_from_broker (self, client, cid, rseq, tr, service, svc, op, status, &body);
}


//  --------------------------------------------------------------------------
//  Answer a received REQ with an error (the request was never queued)

static void
s_reject_request (self_t *self, lh_msg_t *msg, service_t *service,
                  uint32_t status, const char *kind, const char *reason,
                  uint64_t retry_after_ms)
{
    lh_header_t *header = &msg->header;
    s_reply_error (self, msg->routing, header->id,
                   (header->has & LH_H_BSEQ)? header->bseq: 0,
                   (header->has & LH_H_TR)? header->tr: NULL, service,
                   (header->has & LH_H_SVC)? header->svc: "-",
                   (header->has & LH_H_OP)? header->op: "-",
                   status, kind, reason, retry_after_ms);
}


//  --------------------------------------------------------------------------
//  Say BYE to a routing id: st and an error body; cid names the message
//  that caused it (when it had an id)

static void
s_send_bye (self_t *self, zframe_t *rid, lh_header_t *cause, uint32_t status,
            const char *kind, const char *reason)
{
    lh_header_t *out = &self->out;
    lh_header_init (out, LH_T_BYE);
    out->has |= LH_H_T | LH_H_ST;
    out->st = status;
    if (cause && (cause->has & LH_H_ID)) {
        out->cid = cause->id;
        out->has |= LH_H_CID;
    }
    lh_header_set_str (out, LH_H_SRC, "broker");
    int size = s_encode_out (self);
    zframe_t *body = lh_error_body (status, kind, reason, 0);
    if (size < 0
    ||  s_send_encoded (self, rid, self->hbuf, (size_t) size, &body, false) == -1)
        zframe_destroy (&body);
}


//  --------------------------------------------------------------------------
//  Send a header-only message (WELCOME, HB) to a peer

static void
s_send_simple (self_t *self, peer_t *peer)
{
    int size = s_encode_out (self);
    if (size < 0)
        return;
    if (s_send_encoded (self, peer->rid, self->hbuf, (size_t) size, NULL, false) == -1) {
        if (errno == EHOSTUNREACH)
            s_peer_mark_dead (self, peer);
    }
    s_peer_sent (self, peer);
}


//  --------------------------------------------------------------------------
//  Give a worker credit; a worker with credit is in its service's LRU list

static void
s_worker_add_credit (peer_t *worker, uint64_t credit)
{
    uint64_t total = (uint64_t) worker->credit + credit;
    worker->credit = (uint32_t) (total > S_CREDIT_MAX? S_CREDIT_MAX: total);
    if (worker->credit > 0 && !worker->dead && worker->wait_link.next == &worker->wait_link)
        s_list_append (&worker->service->waiting, &worker->wait_link);
}


//  --------------------------------------------------------------------------
//  Build the REQ header a worker receives for a request

static void
s_build_request_header (self_t *self, request_t *request)
{
    lh_header_t *out = &self->out;
    lh_header_init (out, LH_T_REQ);
    out->has |= LH_H_T | LH_H_ID | LH_H_DL | LH_H_BSEQ | LH_H_BRX | LH_H_ATT;
    out->id = request->key;
    int64_t remaining = request->deadline - self->now;
    out->dl = remaining > 0? (uint64_t) remaining: 0;
    out->bseq = request->bseq;
    out->brx = request->brx;
    out->att = request->att;
    lh_header_set_str (out, LH_H_SVC, request->service->name);
    lh_header_set_str (out, LH_H_OP, request->op);
    lh_header_set_str (out, LH_H_SRC, request->src);
    if (request->uid [0])
        lh_header_set_str (out, LH_H_UID, request->uid);
    if (request->has_idem)
        lh_header_set_str (out, LH_H_IDEM, request->idem);
    if (request->has_tr)
        lh_header_set_str (out, LH_H_TR, request->tr);
}


//  --------------------------------------------------------------------------
//  Send a request to a worker with credit; the worker takes one credit
//  and moves to the back of the LRU list. An idempotent request keeps its
//  body (shared) for a redelivery. Returns 0, or -1 if the worker could
//  not take it (the caller queues it again).

static int
s_dispatch_to_worker (self_t *self, request_t *request, peer_t *worker)
{
    s_build_request_header (self, request);
    int size = s_encode_out (self);
    assert (size > 0);          //  every field is bounded well under the max
    bool keep = request->has_idem;
    if (s_send_encoded (self, worker->rid, self->hbuf, (size_t) size, &request->body, keep) == -1) {
        if (errno == EHOSTUNREACH)
            s_peer_mark_dead (self, worker);
        else
            s_list_move_tail (&worker->service->waiting, &worker->wait_link);
        return -1;
    }
    if (--worker->credit == 0)
        s_list_remove (&worker->wait_link);
    else
        s_list_move_tail (&worker->service->waiting, &worker->wait_link);
    request->worker = worker;
    s_list_append (&worker->requests, &request->link);
    worker->inflight++;
    worker->idle_since = self->now;
    s_peer_sent (self, worker);
    return 0;
}


//  --------------------------------------------------------------------------
//  Hand queued requests to workers with credit, oldest first. A request
//  no waiting worker accepts is skipped (up to S_SCAN_MAX of them).

static void
s_dispatch_queued (self_t *self, service_t *service)
{
    size_t skipped = 0;
    link_t *link = service->queue.next;
    while (link != &service->queue && !s_list_empty (&service->waiting)
    &&     skipped < S_SCAN_MAX) {
        request_t *request = s_container (link, request_t, link);
        link_t *next = link->next;
        peer_t *worker = s_service_find_worker (service, request->op);
        if (!worker) {
            skipped++;
            link = next;
            continue;
        }
        s_request_detach (request);
        if (s_dispatch_to_worker (self, request, worker) == -1) {
            s_enqueue (request, true);
            break;              //  retried on the next tick
        }
        link = next;
    }
}


//  --------------------------------------------------------------------------
//  Does a pattern list "a,b.*,c.op,*" allow svc (and op, when not NULL)?
//  A pattern is `*`, a service (any op), `svc.*`, or `svc.op`.

static bool
s_acl_match (const char *list, const char *svc, const char *op)
{
    size_t svc_size = strlen (svc);
    const char *token = list;
    while (*token) {
        while (*token == ' ' || *token == ',')
            token++;
        size_t size = strcspn (token, ", ");
        if (size == 0)
            break;
        if (size == 1 && token [0] == '*')
            return true;
        if (size >= svc_size && memcmp (token, svc, svc_size) == 0) {
            const char *rest = token + svc_size;
            size_t rest_size = size - svc_size;
            if (rest_size == 0)
                return true;
            if (rest [0] == '.' && op && rest_size == 2 && rest [1] == '*')
                return true;
            if (rest [0] == '.' && op && rest_size - 1 == strlen (op)
            &&  memcmp (rest + 1, op, rest_size - 1) == 0)
                return true;
        }
        token += size;
    }
    return false;
}


//  --------------------------------------------------------------------------
//  May this peer offer svc? Only role actor, as far as acl actor/serve
//  allows. A peer without a certificate (inproc, plain loopback) may.

static bool
s_may_serve (self_t *self, peer_t *peer, const char *svc)
{
    if (!peer->secure)
        return true;
    if (!streq (peer->role, "actor"))
        return false;
    const char *list = (const char *) zhashx_lookup (self->acl, "actor/serve");
    return list && s_acl_match (list, svc, NULL);
}


//  --------------------------------------------------------------------------
//  May this peer call svc.op? As acl ROLE/call says; no list, no calls.

static bool
s_may_call (self_t *self, peer_t *peer, const char *svc, const char *op)
{
    if (!peer->secure)
        return true;
    char key [LH_ROLE_MAX + 8];
    snprintf (key, sizeof key, "%s/call", peer->role);
    const char *list = (const char *) zhashx_lookup (self->acl, key);
    return list && s_acl_match (list, svc, op);
}


//  --------------------------------------------------------------------------
//  Is a CURVE peer's key still allowed? Checked on every message: an
//  expiry compare and a generation compare, with a lookup only after the
//  allow set was reloaded.

static bool
s_key_valid (self_t *self, peer_t *peer)
{
    if (!peer->secure)
        return true;
    if (peer->revoked)
        return false;
    if (peer->expires && peer->expires <= (int64_t) (self->now_us / 1000000))
        peer->revoked = true;
    else
    if (peer->allow_gen != self->allow_gen) {
        const lh_allow_entry_t *entry = self->allow? lh_allow_lookup (self->allow, peer->uid): NULL;
        if (entry) {
            peer->allow_gen = self->allow_gen;
            peer->expires = entry->expires;
        }
        else
            peer->revoked = true;
    }
    return !peer->revoked;
}


//  --------------------------------------------------------------------------
//  A message from a revoked key: 401 to its request (if it is one), BYE
//  401, and the peer (if the broker still knew it) is forgotten

static void
s_refuse_revoked (self_t *self, peer_t *peer, lh_msg_t *msg, const char *uid)
{
    lh_header_t *header = &msg->header;
    self->refused_revoked++;
    lh_warn ("broker", NULL, "%s (key %.8s) is revoked: refused %s",
             peer? peer->src: "a forgotten peer", uid, lh_type_name (header->t));
    header->has &= ~LH_H_STAMPS;        //  not stamped: its bseq is the peer's
    if (header->t == LH_T_REQ && (header->has & LH_H_ID))
        s_reject_request (self, msg, NULL, LH_ST_UNAUTHORIZED, "revoked",
                          "this key is no longer in the broker's allow set", 0);
    s_send_bye (self, msg->routing, header, LH_ST_UNAUTHORIZED, "revoked",
                "this key is no longer in the broker's allow set");
    if (peer)
        s_peer_mark_dead (self, peer);
}


//  --------------------------------------------------------------------------
//  Is a message from a routing id the broker does not know sent with a key
//  that is no longer allowed? (Its connection outlived its certificate.)

static bool
s_sender_revoked (self_t *self, lh_msg_t *msg, const char **uid_p)
{
    const char *uid = msg->header_frame? zframe_meta (msg->header_frame, "User-Id"): NULL;
    *uid_p = uid;
    return uid && *uid && !(self->allow && lh_allow_lookup (self->allow, uid));
}


//  --------------------------------------------------------------------------
//  After the allow set changed: a worker whose key went is sent BYE 401
//  and forgotten at once (no request goes to it any more); any other
//  revoked peer is refused at its next message

static void
s_sweep_revoked (self_t *self)
{
    for (peer_t *peer = (peer_t *) zhashx_first (self->peers); peer;
         peer = (peer_t *) zhashx_next (self->peers)) {
        if (!peer->secure || peer->dead || s_key_valid (self, peer))
            continue;
        if (peer->service) {
            self->refused_revoked++;
            lh_warn ("broker", NULL, "worker %s (key %.8s) is revoked: forgotten",
                     peer->src, peer->uid);
            s_send_bye (self, peer->rid, NULL, LH_ST_UNAUTHORIZED, "revoked",
                        "this key is no longer in the broker's allow set");
            s_peer_mark_dead (self, peer);
        }
    }
}


//  --------------------------------------------------------------------------
//  Check the allow directory (force: reload it even if it looks the same);
//  after a change, revoked peers are swept

static void
s_reload_allow (self_t *self, bool force)
{
    if (!self->allow)
        return;
    if (force)
        lh_allow_touch (self->allow);
    int rc = lh_allow_refresh (self->allow);
    if (rc == -1 && force)
        lh_warn ("broker", NULL, "cannot read the allow directory %s: no key is "
                 "accepted", self->allow_dir);
    if (lh_allow_generation (self->allow) != self->allow_gen) {
        self->allow_gen = lh_allow_generation (self->allow);
        lh_debug ("broker", NULL, "allow set reloaded: %zu keys", lh_allow_size (self->allow));
        s_sweep_revoked (self);
    }
    self->next_reload = self->now + self->reload_ms;
}


//  --------------------------------------------------------------------------
//  HELLO from an unknown routing id: create the peer, answer WELCOME

static void
s_accept_peer (self_t *self, lh_msg_t *msg)
{
    lh_header_t *header = &msg->header;
    if (!(header->has & LH_H_NAME) || !s_name_ok (header->name)) {
        s_send_bye (self, msg->routing, header, LH_ST_BAD_REQUEST, "bad_name",
                    "HELLO name must be 1..64 bytes of [A-Za-z0-9_.:-]");
        return;
    }
    peer_t *peer = s_peer_new (&msg->routing);
    uint32_t refusal = s_peer_identify (self, peer, msg);
    if (refusal) {
        if (refusal == LH_ST_FORBIDDEN)
            s_send_bye (self, peer->rid, header, LH_ST_FORBIDDEN, "forbidden",
                        "HELLO name does not match the peer's certificate");
        else
            s_send_bye (self, peer->rid, header, LH_ST_UNAUTHORIZED, "revoked",
                        "this key is not (or no longer) in the broker's allow set");
        s_peer_destroy (&peer);
        return;
    }
    zhashx_insert (self->peers, peer->rid, peer);
    s_peer_heard (self, peer);
    peer->idle_since = self->now;

    lh_header_t *out = &self->out;
    lh_header_init (out, LH_T_WELCOME);
    out->has |= LH_H_T | LH_H_HB_IVL | LH_H_HB_LIVE | LH_H_MAX_MSG;
    out->hb_ivl = self->hb_ivl;
    out->hb_live = self->hb_live;
    out->max_msg = self->max_msg;
    lh_header_set_str (out, LH_H_SRC, "broker");
    if (header->has & LH_H_ID) {
        out->cid = header->id;
        out->has |= LH_H_CID;
    }
    s_send_simple (self, peer);
    if (self->verbose)
        lh_info ("broker", NULL, "peer %s joined", peer->src);
}


//  --------------------------------------------------------------------------
//  The last worker of a service went: queued requests that did not ask to
//  wait for one (q) get 503 no_worker. Redelivered requests keep waiting,
//  for the worker's restart, until their deadline.

static void
s_fail_orphans (self_t *self, service_t *service)
{
    link_t *link = service->queue.next;
    while (link != &service->queue) {
        request_t *request = s_container (link, request_t, link);
        link = link->next;
        if (request->q || request->att > 1)
            continue;
        s_reply_error (self, request->client, request->cid, request->bseq,
                       request->has_tr? request->tr: NULL, service,
                       service->name, request->op, LH_ST_UNAVAILABLE, "no_worker",
                       "no worker of this service is connected", self->retry_after_ms);
        s_request_destroy (self, &request);
    }
}


//  --------------------------------------------------------------------------
//  Forget a peer: it said BYE, went silent, vanished, or broke the
//  protocol. Its in-flight requests are redelivered if idempotent (and
//  attempts remain), else answered 503 worker_lost.

static void
s_forget_peer (self_t *self, peer_t *peer)
{
    if (self->verbose)
        lh_info ("broker", NULL, "peer %s gone", peer->src);
    zhashx_delete (self->peers, peer->rid);
    s_list_remove (&peer->rx_link);
    s_list_remove (&peer->tx_link);
    s_list_remove (&peer->sub_link);
    s_list_remove (&peer->hold_link);
    service_t *service = peer->service;
    if (service) {
        s_list_remove (&peer->worker_link);
        s_list_remove (&peer->wait_link);
        service->nworkers--;
        //  Walk back to front so redelivered requests keep their order
        while (!s_list_empty (&peer->requests)) {
            request_t *request = s_container (peer->requests.prev, request_t, link);
            s_request_detach (request);
            if (request->expired)
                s_request_destroy (self, &request);
            else
            if (request->has_idem && request->att < self->max_attempts) {
                request->att++;
                self->redelivered++;
                s_enqueue (request, true);
            }
            else {
                s_reply_error (self, request->client, request->cid, request->bseq,
                               request->has_tr? request->tr: NULL, service,
                               service->name, request->op,
                               LH_ST_UNAVAILABLE, "worker_lost",
                               "the worker handling this request went away",
                               self->retry_after_ms);
                s_request_destroy (self, &request);
            }
        }
        if (service->nworkers == 0)
            s_fail_orphans (self, service);
        else
            s_dispatch_queued (self, service);
    }
    s_peer_destroy (&peer);
}


//  --------------------------------------------------------------------------
//  READY: the peer works for a service, with ops and credit

static void
s_register_worker (self_t *self, peer_t *peer, lh_msg_t *msg)
{
    lh_header_t *header = &msg->header;
    bool has_ops = (header->has & LH_H_OPS) && header->ops [0];
    if (!(header->has & LH_H_SVC) || !s_name_ok (header->svc)
    ||  streq (header->svc, "broker")
    ||  (has_ops && !s_ops_valid (header->ops))) {
        s_send_bye (self, peer->rid, header, LH_ST_BAD_REQUEST, "bad_name",
                    "READY needs svc and ops made of names of 1..64 [A-Za-z0-9_.:-]");
        s_peer_mark_dead (self, peer);
        return;
    }
    if (peer->service && !streq (peer->service->name, header->svc)) {
        s_send_bye (self, peer->rid, header, LH_ST_BAD_REQUEST, "one_service",
                    "a connection may offer only one service");
        s_peer_mark_dead (self, peer);
        return;
    }
    if (!s_may_serve (self, peer, header->svc)) {
        self->refused_serve++;
        lh_warn ("broker", NULL, "%s (role %s) may not serve %s: refused",
                 peer->src, peer->role, header->svc);
        s_send_bye (self, peer->rid, header, LH_ST_FORBIDDEN, "forbidden",
                    "this certificate's role may not serve this service");
        s_peer_mark_dead (self, peer);
        return;
    }
    service_t *service = s_service_require (self, header->svc);
    service->offered = true;
    if (!peer->service) {
        peer->service = service;
        s_list_append (&service->workers, &peer->worker_link);
        service->nworkers++;
    }
    free (peer->ops);
    peer->ops = has_ops? strdup (header->ops): NULL;
    peer->credit = 0;
    s_list_remove (&peer->wait_link);
    s_worker_add_credit (peer, (header->has & LH_H_CREDIT)? header->credit: 1);
    peer->idle_since = self->now;
    if (self->verbose)
        lh_info ("broker", NULL, "worker %s ready for %s credit %u",
                 peer->src, service->name, peer->credit);
    s_dispatch_queued (self, service);
}


//  --------------------------------------------------------------------------
//  CREDIT: a worker takes more requests

static void
s_add_credit (self_t *self, peer_t *peer, lh_msg_t *msg)
{
    if (!peer->service || !(msg->header.has & LH_H_CREDIT)) {
        self->dropped_malformed++;
        return;
    }
    s_worker_add_credit (peer, msg->header.credit);
    s_dispatch_queued (self, peer->service);
}


//  --------------------------------------------------------------------------
//  Pack a JSON value as msgpack (for the built-in service's replies)

static void
s_pack_json (msgpack_packer *packer, json_t *json)
{
    switch (json_typeof (json)) {
        case JSON_OBJECT: {
            msgpack_pack_map (packer, json_object_size (json));
            const char *key;
            json_t *value;
            json_object_foreach (json, key, value) {
                size_t size = strlen (key);
                msgpack_pack_str (packer, size);
                msgpack_pack_str_body (packer, key, size);
                s_pack_json (packer, value);
            }
            break;
        }
        case JSON_ARRAY: {
            msgpack_pack_array (packer, json_array_size (json));
            size_t index;
            json_t *value;
            json_array_foreach (json, index, value)
                s_pack_json (packer, value);
            break;
        }
        case JSON_STRING: {
            size_t size = json_string_length (json);
            msgpack_pack_str (packer, size);
            msgpack_pack_str_body (packer, json_string_value (json), size);
            break;
        }
        case JSON_INTEGER: {
            json_int_t value = json_integer_value (json);
            if (value >= 0)
                msgpack_pack_uint64 (packer, (uint64_t) value);
            else
                msgpack_pack_int64 (packer, value);
            break;
        }
        case JSON_REAL:
            msgpack_pack_double (packer, json_real_value (json));
            break;
        case JSON_TRUE:
            msgpack_pack_true (packer);
            break;
        case JSON_FALSE:
            msgpack_pack_false (packer);
            break;
        default:
            msgpack_pack_nil (packer);
            break;
    }
}


//  --------------------------------------------------------------------------
//  Turn a JSON value into a msgpack frame; destroys the value

static zframe_t *
s_json_frame (json_t **json_p)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    s_pack_json (&packer, *json_p);
    zframe_t *frame = zframe_new (buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
    json_decref (*json_p);
    *json_p = NULL;
    return frame;
}


//  --------------------------------------------------------------------------
//  broker.services: every service, its ops, workers and queue depth

static json_t *
s_services_json (self_t *self)
{
    json_t *list = json_array ();
    for (service_t *service = (service_t *) zhashx_first (self->services);
         service; service = (service_t *) zhashx_next (self->services)) {
        json_t *ops = json_array ();
        for (link_t *link = service->workers.next; link != &service->workers; link = link->next) {
            peer_t *worker = s_container (link, peer_t, worker_link);
            const char *token = worker->ops? worker->ops: "*";
            while (*token) {
                const char *comma = strchr (token, ',');
                size_t size = comma? (size_t) (comma - token): strlen (token);
                bool known = false;
                size_t index;
                json_t *value;
                json_array_foreach (ops, index, value) {
                    if (json_string_length (value) == size
                    &&  memcmp (json_string_value (value), token, size) == 0)
                        known = true;
                }
                if (!known)
                    json_array_append_new (ops, json_stringn (token, size));
                token = comma? comma + 1: token + size;
            }
        }
        json_array_append_new (list, json_pack ("{s:s, s:o, s:I, s:I}",
            "name", service->name, "ops", ops,
            "workers", (json_int_t) service->nworkers,
            "queued", (json_int_t) service->queued));
    }
    return json_pack ("{s:o}", "services", list);
}


//  --------------------------------------------------------------------------
//  broker.workers: every worker, its credit, load and idle time

static json_t *
s_workers_json (self_t *self)
{
    json_t *list = json_array ();
    for (service_t *service = (service_t *) zhashx_first (self->services);
         service; service = (service_t *) zhashx_next (self->services)) {
        for (link_t *link = service->workers.next; link != &service->workers; link = link->next) {
            peer_t *worker = s_container (link, peer_t, worker_link);
            json_array_append_new (list, json_pack ("{s:s, s:s, s:I, s:I, s:I}",
                "service", service->name, "src", worker->src,
                "credit", (json_int_t) worker->credit,
                "inflight", (json_int_t) worker->inflight,
                "idle_ms", (json_int_t) (self->now - worker->idle_since)));
        }
    }
    return json_pack ("{s:o}", "workers", list);
}


//  --------------------------------------------------------------------------
//  broker.stats (and the STATS pipe command): counters of everything

static json_t *
s_stats_json (self_t *self)
{
    json_t *services = json_object ();
    for (service_t *service = (service_t *) zhashx_first (self->services);
         service; service = (service_t *) zhashx_next (self->services)) {
        json_t *errors = json_object ();
        for (size_t slot = 0; slot < S_ERROR_SLOTS && service->errors [slot].status; slot++) {
            char status [16];
            snprintf (status, sizeof status, "%u", service->errors [slot].status);
            json_object_set_new (errors, status,
                                 json_integer ((json_int_t) service->errors [slot].count));
        }
        if (service->errors_other)
            json_object_set_new (errors, "other", json_integer ((json_int_t) service->errors_other));
        json_object_set_new (services, service->name, json_pack (
            "{s:I, s:I, s:o, s:I, s:I, s:I, s:I, s:I}",
            "requests", (json_int_t) service->requests,
            "replies", (json_int_t) service->replies,
            "errors", errors,
            "queued", (json_int_t) service->queued,
            "workers", (json_int_t) service->nworkers,
            "p50_us", (json_int_t) s_latency_percentile (service, 0.50),
            "p99_us", (json_int_t) s_latency_percentile (service, 0.99),
            "dropped", (json_int_t) service->dropped));
    }
    return json_pack ("{s:I, s:I, s:I, s:I, s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I},"
                      " s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I},"
                      " s:{s:b, s:I, s:I}}",
        "uptime_ms", (json_int_t) (s_now_ms () - self->started),
        "bseq", (json_int_t) self->bseq,
        "peers", (json_int_t) zhashx_size (self->peers),
        "redelivered", (json_int_t) self->redelivered,
        "services", services,
        "dropped",
            "malformed", (json_int_t) self->dropped_malformed,
            "unroutable", (json_int_t) self->dropped_unroutable,
            "full", (json_int_t) self->dropped_full,
            "late_reply", (json_int_t) self->dropped_late,
            "tap", (json_int_t) self->dropped_tap,
            "sub", (json_int_t) self->dropped_sub,
        "refused",
            "handshake", (json_int_t) self->refused_handshake,
            "zap", (json_int_t) self->refused_zap,
            "revoked", (json_int_t) self->refused_revoked,
            "name", (json_int_t) self->refused_name,
            "serve", (json_int_t) self->refused_serve,
            "call", (json_int_t) self->refused_call,
            "admin", (json_int_t) self->refused_admin,
        "curve",
            "on", self->zap != NULL,
            "keys", (json_int_t) (self->allow? lh_allow_size (self->allow): 0),
            "generation", (json_int_t) self->allow_gen);
}


//  --------------------------------------------------------------------------
//  A string field of a request body, or NULL (copied, caller frees)

static char *
s_body_str (lh_msg_t *msg, const char *key)
{
    if (!msg->body)
        return NULL;
    msgpack_zone zone;
    msgpack_zone_init (&zone, 256);
    msgpack_object object;
    char *value = NULL;
    if (lh_msgpack_unpack (zframe_data (msg->body), zframe_size (msg->body),
                           &lh_limits_default, &zone, &object) == 0)
        value = lh_obj_strdup (lh_obj_get (&object, key));
    msgpack_zone_destroy (&zone);
    return value;
}


//  --------------------------------------------------------------------------
//  broker.bind / unbind / reload (role admin): bind a second endpoint with
//  a new server key, unbind the old one, reload the allow set now. Returns
//  the reply body, or NULL after answering an error.

static json_t *
s_serve_admin (self_t *self, lh_msg_t *msg, service_t *service)
{
    lh_header_t *header = &msg->header;
    if (streq (header->op, "reload")) {
        s_reload_allow (self, true);
        return json_pack ("{s:I, s:I}", "keys",
                          (json_int_t) (self->allow? lh_allow_size (self->allow): 0),
                          "generation", (json_int_t) self->allow_gen);
    }
    char *endpoint = s_body_str (msg, "endpoint");
    char *cert = s_body_str (msg, "cert");
    char *error = NULL;
    json_t *json = NULL;
    if (!endpoint)
        error = strdup ("the body needs \"endpoint\"");
    else
    if (streq (header->op, "bind")) {
        char *bound = s_bind_router (self, endpoint, cert, &error);
        if (bound) {
            lh_info ("broker", NULL, "bound %s%s%s", bound, cert? " with ": "", cert? cert: "");
            json = json_pack ("{s:s}", "endpoint", bound);
        }
        free (bound);
    }
    else
    if (s_unbind_router (self, endpoint, &error) == 0) {
        lh_info ("broker", NULL, "unbound %s", endpoint);
        json = json_pack ("{s:s}", "endpoint", endpoint);
    }
    if (!json)
        s_reject_request (self, msg, service, LH_ST_BAD_REQUEST, "bad_request",
                          error? error: "failed", 0);
    free (error);
    free (endpoint);
    free (cert);
    return json;
}


//  --------------------------------------------------------------------------
//  A REQ to the built-in `broker` service: ping, services, workers, stats;
//  and for role admin: bind, unbind, reload

static void
s_serve_builtin (self_t *self, peer_t *peer, lh_msg_t *msg, service_t *service)
{
    lh_header_t *header = &msg->header;
    json_t *json = NULL;
    if (streq (header->op, "ping"))
        json = json_pack ("{s:b, s:s}", "pong", 1, "name", self->name);
    else
    if (streq (header->op, "services"))
        json = s_services_json (self);
    else
    if (streq (header->op, "workers"))
        json = s_workers_json (self);
    else
    if (streq (header->op, "stats"))
        json = s_stats_json (self);
    else
    if (streq (header->op, "bind") || streq (header->op, "unbind")
    ||  streq (header->op, "reload")) {
        if (peer->secure && !streq (peer->role, "admin")) {
            self->refused_admin++;
            s_reject_request (self, msg, service, LH_ST_FORBIDDEN, "forbidden",
                              "broker admin ops need role admin", 0);
            return;
        }
        json = s_serve_admin (self, msg, service);
        if (!json)
            return;
    }
    else {
        s_reject_request (self, msg, service, LH_ST_NOT_FOUND, "no_such_op",
                          "the broker service has ping, services, workers, stats, "
                          "bind, unbind and reload", 0);
        return;
    }
    zframe_t *body = s_json_frame (&json);
    s_reply_from_broker (self, msg->routing, header->id, header->bseq,
                         (header->has & LH_H_TR)? header->tr: NULL,
                         service, service->name, header->op, LH_ST_OK, &body);
}


//  --------------------------------------------------------------------------
//  REQ: route to a worker with credit, queue it, or answer it at once

static void
s_handle_request (self_t *self, peer_t *peer, lh_msg_t *msg)
{
    lh_header_t *header = &msg->header;
    if (!(header->has & LH_H_ID)) {
        self->dropped_malformed++;      //  nothing to answer to
        return;
    }
    s_stamp (self, peer, header);
    header->att = 1;
    header->has |= LH_H_ATT;
    //  Tapped before any check, so every bseq a REQ takes shows on the tap
    s_tap_request (self, header, msg->body);
    if (!(header->has & LH_H_SVC) || !(header->has & LH_H_OP)
    ||  !s_name_ok (header->svc) || !s_name_ok (header->op)) {
        s_reject_request (self, msg, NULL, LH_ST_BAD_REQUEST, "bad_request",
                          "REQ needs svc and op, names of 1..64 [A-Za-z0-9_.:-]", 0);
        return;
    }
    if (!s_may_call (self, peer, header->svc, header->op)) {
        self->refused_call++;
        s_reject_request (self, msg, NULL, LH_ST_FORBIDDEN, "forbidden",
                          "this certificate's role may not call this service", 0);
        return;
    }
    bool queue = (header->has & LH_H_Q) && header->q;
    service_t *service = (service_t *) zhashx_lookup (self->services, header->svc);
    if (!service) {
        if (!queue && !s_in_grace (self)) {
            s_reject_request (self, msg, NULL, LH_ST_NOT_FOUND, "no_such_service",
                              "no worker has ever offered this service", 0);
            return;
        }
        service = s_service_require (self, header->svc);
    }
    service->requests++;
    if (service->builtin) {
        s_serve_builtin (self, peer, msg, service);
        return;
    }
    if (service->nworkers > 0 && !s_service_accepts (service, header->op)) {
        s_reject_request (self, msg, service, LH_ST_NOT_FOUND, "no_such_op",
                          "no worker of this service offers this op", 0);
        return;
    }
    if (service->nworkers == 0 && !queue && !(s_in_grace (self) && !service->offered)) {
        s_reject_request (self, msg, service, LH_ST_UNAVAILABLE, "no_worker",
                          "no worker of this service is connected", self->retry_after_ms);
        return;
    }
    uint64_t dl = (header->has & LH_H_DL)? header->dl: S_DEFAULT_DL;
    if (dl > S_DL_MAX)
        dl = S_DL_MAX;
    if (dl == 0) {
        s_reject_request (self, msg, service, LH_ST_TIMEOUT, "deadline",
                          "the request's deadline passed before it was served", 0);
        return;
    }
    peer_t *worker = s_list_empty (&service->queue)
                   ? s_service_find_worker (service, header->op): NULL;
    size_t body_size = msg->body? zframe_size (msg->body): 0;
    if (!worker
    &&  (service->queued >= self->queue_max
    ||   service->queued_bytes + body_size > self->queue_bytes)) {
        s_reject_request (self, msg, service, LH_ST_TOO_MANY, "queue_full",
                          "the service's queue is full", self->retry_after_ms);
        return;
    }
    request_t *request = s_request_new (self, service, msg, dl);
    zhashx_insert (self->requests, &request->key, request);
    s_heap_push (self, request);
    if (!worker || s_dispatch_to_worker (self, request, worker) == -1)
        s_enqueue (request, false);
}


//  --------------------------------------------------------------------------
//  PART or REP from a worker: map cid back to the client's id and forward.
//  A REP ends the request and gives the worker back one credit.

static void
s_forward_reply (self_t *self, peer_t *peer, lh_msg_t *msg)
{
    lh_header_t *header = &msg->header;
    bool final = header->t == LH_T_REP;
    if (!(header->has & LH_H_CID)) {
        self->dropped_malformed++;
        return;
    }
    request_t *request = (request_t *) zhashx_lookup (self->requests, &header->cid);
    if (!request) {
        self->dropped_late++;           //  for a request long forgotten
        return;
    }
    if (request->worker != peer) {
        self->dropped_malformed++;      //  not this peer's to answer
        return;
    }
    service_t *service = request->service;
    if (request->expired) {
        self->dropped_late++;
        service->dropped++;
        if (final) {
            s_request_destroy (self, &request);
            peer->idle_since = self->now;
            s_worker_add_credit (peer, 1);
            s_dispatch_queued (self, service);
        }
        return;
    }
    s_stamp (self, peer, header);
    header->cid = request->cid;
    if (final && !(header->has & LH_H_ST)) {
        header->st = LH_ST_OK;
        header->has |= LH_H_ST;
    }
    int size = lh_header_encode (header, self->hbuf, sizeof self->hbuf);
    if (size < 0) {
        //  Stamps pushed the worker's header past LH_HEADER_MAX
        self->dropped_malformed++;
        if (final)
            s_reply_error (self, request->client, request->cid, request->bseq,
                           request->has_tr? request->tr: NULL, service,
                           service->name, request->op, LH_ST_BAD_GATEWAY, "bad_reply",
                           "the worker's reply header was too large to forward", 0);
    }
    else {
        s_tap_reply (self, service->name, request->op, request->bseq,
                     self->hbuf, (size_t) size, msg->body);
        if (s_send_encoded (self, request->client, self->hbuf, (size_t) size, &msg->body, false) == -1) {
            s_count_send_failure (self);
            service->dropped++;
        }
        else {
            peer_t *client = (peer_t *) zhashx_lookup (self->peers, request->client);
            if (client)
                s_peer_sent (self, client);
        }
    }
    if (final) {
        uint64_t latency = self->now_us > request->brx? self->now_us - request->brx: 1;
        if (size >= 0)
            s_service_count_reply (service, header->st, latency);
        s_request_destroy (self, &request);
        peer->idle_since = self->now;
        s_worker_add_credit (peer, 1);
        s_dispatch_queued (self, service);
    }
}


//  --------------------------------------------------------------------------
//  Hold an event for a slow subscriber; when its hold queue is full the
//  oldest event is dropped and counted

static void
s_hold_event (self_t *self, peer_t *subscriber, event_t *event)
{
    size_t limit = self->sub_queue? self->sub_queue: 1;
    if (subscriber->held_count >= limit) {
        s_event_release (&subscriber->held [subscriber->held_head]);
        subscriber->held_head = (subscriber->held_head + 1) % subscriber->held_max;
        subscriber->held_count--;
        self->dropped_sub++;
    }
    if (subscriber->held_count == subscriber->held_max) {
        size_t held_max = subscriber->held_max? subscriber->held_max * 2: 16;
        event_t **held = (event_t **) malloc (held_max * sizeof (event_t *));
        assert (held);
        for (size_t index = 0; index < subscriber->held_count; index++)
            held [index] = subscriber->held [(subscriber->held_head + index) % subscriber->held_max];
        free (subscriber->held);
        subscriber->held = held;
        subscriber->held_head = 0;
        subscriber->held_max = held_max;
    }
    size_t tail = (subscriber->held_head + subscriber->held_count) % subscriber->held_max;
    subscriber->held [tail] = event;
    subscriber->held_count++;
    event->refs++;
    if (subscriber->hold_link.next == &subscriber->hold_link)
        s_list_append (&self->holding, &subscriber->hold_link);
}


//  --------------------------------------------------------------------------
//  Try again to send the events held for slow subscribers

static void
s_flush_held (self_t *self)
{
    link_t *link = self->holding.next;
    while (link != &self->holding) {
        link_t *next = link->next;
        peer_t *subscriber = s_container (link, peer_t, hold_link);
        while (subscriber->held_count) {
            event_t *event = subscriber->held [subscriber->held_head];
            if (s_send_encoded (self, subscriber->rid, event->header, event->header_size,
                                &event->body, true) == -1) {
                if (errno == EHOSTUNREACH)
                    s_peer_mark_dead (self, subscriber);
                break;
            }
            s_event_release (&subscriber->held [subscriber->held_head]);
            subscriber->held_head = (subscriber->held_head + 1) % subscriber->held_max;
            subscriber->held_count--;
            s_peer_sent (self, subscriber);
        }
        if (subscriber->held_count == 0)
            s_list_remove (&subscriber->hold_link);
        link = next;
    }
}


//  --------------------------------------------------------------------------
//  Does a subscriber have a prefix of topic?

static bool
s_subscriber_wants (peer_t *subscriber, const char *topic)
{
    for (size_t index = 0; index < subscriber->nsubs; index++) {
        const char *prefix = subscriber->subs [index];
        if (strncmp (topic, prefix, strlen (prefix)) == 0)
            return true;
    }
    return false;
}


//  --------------------------------------------------------------------------
//  PUB: fan out to every subscriber with a matching prefix. A subscriber
//  whose queue is full (or who already has events held) gets the event
//  held, shared by reference; routing never waits for it.

static void
s_publish (self_t *self, peer_t *peer, lh_msg_t *msg)
{
    lh_header_t *header = &msg->header;
    if (!(header->has & LH_H_TOPIC) || header->topic [0] == 0) {
        self->dropped_malformed++;
        return;
    }
    lh_header_t *out = &self->out;
    lh_header_init (out, LH_T_PUB);
    out->has |= LH_H_T | LH_H_BSEQ | LH_H_BRX;
    lh_header_set_str (out, LH_H_TOPIC, header->topic);
    lh_header_set_str (out, LH_H_SRC, peer->src);
    out->bseq = ++self->bseq;
    out->brx = self->now_us;
    int size = s_encode_out (self);
    if (size < 0) {
        self->dropped_malformed++;
        return;
    }
    s_tap_copy (self, "evt", header->topic, self->hbuf, (size_t) size, msg->body);
    event_t *event = NULL;
    for (link_t *link = self->subscribers.next; link != &self->subscribers; link = link->next) {
        peer_t *subscriber = s_container (link, peer_t, sub_link);
        if (subscriber->dead || subscriber->revoked
        ||  !s_subscriber_wants (subscriber, header->topic))
            continue;
        if (subscriber->held_count == 0) {
            zframe_t *body = event? event->body: msg->body;
            if (s_send_encoded (self, subscriber->rid, self->hbuf, (size_t) size, &body, true) == 0) {
                s_peer_sent (self, subscriber);
                continue;
            }
            if (errno == EHOSTUNREACH) {
                self->dropped_unroutable++;
                s_peer_mark_dead (self, subscriber);
                continue;
            }
        }
        if (!event) {
            event = s_event_new (self->hbuf, (size_t) size, msg->body);
            msg->body = NULL;
        }
        s_hold_event (self, subscriber, event);
    }
    s_event_release (&event);
    if (!s_list_empty (&self->holding) && self->next_flush <= self->now)
        self->next_flush = self->now + S_HOLD_RETRY;
}


//  --------------------------------------------------------------------------
//  SUB: add a topic prefix ("" = every topic)

static void
s_subscribe (self_t *self, peer_t *peer, lh_msg_t *msg)
{
    lh_header_t *header = &msg->header;
    if (!(header->has & LH_H_TOPIC)) {
        self->dropped_malformed++;
        return;
    }
    for (size_t index = 0; index < peer->nsubs; index++)
        if (streq (peer->subs [index], header->topic))
            return;
    if (peer->nsubs >= S_SUBS_MAX) {
        self->dropped_malformed++;
        return;
    }
    char **subs = (char **) realloc (peer->subs, (peer->nsubs + 1) * sizeof (char *));
    assert (subs);
    peer->subs = subs;
    peer->subs [peer->nsubs++] = strdup (header->topic);
    if (peer->sub_link.next == &peer->sub_link)
        s_list_append (&self->subscribers, &peer->sub_link);
}


//  --------------------------------------------------------------------------
//  One message from the bus: the engine's switch on message type

static void
s_handle_message (self_t *self, lh_msg_t *msg)
{
    lh_header_t *header = &msg->header;
    peer_t *peer = (peer_t *) zhashx_lookup (self->peers, msg->routing);
    if (self->verbose)
        lh_info ("broker", (header->has & LH_H_TR)? header->tr: NULL, "%s from %s",
                 lh_type_name (header->t), peer? peer->src: "unknown peer");
    if (!peer || peer->dead) {
        const char *uid = NULL;
        if (header->t != LH_T_BYE && s_sender_revoked (self, msg, &uid)) {
            if (peer)
                s_forget_peer (self, peer);
            s_refuse_revoked (self, NULL, msg, uid);
        }
        else
        if (header->t == LH_T_HELLO) {
            if (peer)
                s_forget_peer (self, peer);
            s_accept_peer (self, msg);
        }
        else
        if (header->t != LH_T_BYE)
            s_send_bye (self, msg->routing, header, LH_ST_BAD_REQUEST, "hello_first",
                        "say HELLO first (the broker does not know this connection)");
        return;
    }
    if (peer->secure && !s_key_valid (self, peer)) {
        s_refuse_revoked (self, peer, msg, peer->uid);
        return;
    }
    s_peer_heard (self, peer);
    switch (header->t) {
        case LH_T_HELLO:
            s_forget_peer (self, peer);
            s_accept_peer (self, msg);
            break;
        case LH_T_READY:
            s_register_worker (self, peer, msg);
            break;
        case LH_T_CREDIT:
            s_add_credit (self, peer, msg);
            break;
        case LH_T_REQ:
            s_handle_request (self, peer, msg);
            break;
        case LH_T_PART:
        case LH_T_REP:
            s_forward_reply (self, peer, msg);
            break;
        case LH_T_PUB:
            s_publish (self, peer, msg);
            break;
        case LH_T_SUB:
            s_subscribe (self, peer, msg);
            break;
        case LH_T_HB:
            break;
        case LH_T_BYE:
            s_peer_mark_dead (self, peer);
            break;
        default:
            self->dropped_malformed++;      //  WELCOME or worse, from a peer
            break;
    }
}


//  --------------------------------------------------------------------------
//  Forget peers marked dead or silent for hb_ivl * hb_live

static void
s_reap_dead (self_t *self)
{
    int64_t silence = (int64_t) self->hb_ivl * self->hb_live;
    while (!s_list_empty (&self->by_rx)) {
        peer_t *peer = s_container (self->by_rx.next, peer_t, rx_link);
        if (!peer->dead && self->now - peer->last_rx <= silence)
            break;
        s_forget_peer (self, peer);
    }
}


//  --------------------------------------------------------------------------
//  Answer 504 to every request whose deadline has passed. A request in
//  flight stays with its worker as a tombstone until its late REP.

static void
s_expire_requests (self_t *self)
{
    while (self->heap_size && self->heap [0]->deadline <= self->now) {
        request_t *request = self->heap [0];
        service_t *service = request->service;
        s_heap_remove (self, request);
        s_reply_error (self, request->client, request->cid, request->bseq,
                       request->has_tr? request->tr: NULL, service,
                       service->name, request->op, LH_ST_TIMEOUT, "deadline",
                       "the request's deadline passed before its reply", 0);
        if (request->worker) {
            request->expired = true;
            zframe_destroy (&request->body);
        }
        else {
            s_request_destroy (self, &request);
            //  A service made only by q=true requests goes when they do
            if (!service->offered && !service->builtin && service->queued == 0)
                zhashx_delete (self->services, service->name);
        }
    }
}


//  --------------------------------------------------------------------------
//  HB to every peer we have sent nothing to for a heartbeat interval

static void
s_send_heartbeats (self_t *self)
{
    while (!s_list_empty (&self->by_tx)) {
        peer_t *peer = s_container (self->by_tx.next, peer_t, tx_link);
        if (self->now - peer->last_tx < (int64_t) self->hb_ivl)
            break;
        lh_header_init (&self->out, LH_T_HB);
        self->out.has |= LH_H_T;
        s_send_simple (self, peer);
    }
}


//  --------------------------------------------------------------------------
//  The tick runs four times per heartbeat interval, so heartbeats leave at
//  most a quarter interval late and the dead are reaped as promptly

static int64_t
s_tick_ivl (self_t *self)
{
    return self->hb_ivl >= 40? self->hb_ivl / 4: 10;
}


//  --------------------------------------------------------------------------
//  Restart grace. A broker that has just bound does not know the services
//  its peers served before it (re)started; they say HELLO/READY again
//  within about a heartbeat interval of hearing from it. For the first
//  hb_ivl x hb_live after the first bind, a request for a service nobody
//  has offered yet waits (as if it carried q) instead of getting 404; when
//  the grace ends, those still waiting for a never-offered service get the
//  404 they would have had, unless they asked for q themselves.

static bool
s_in_grace (self_t *self)
{
    return self->grace_until && self->now < self->grace_until;
}

static void
s_end_grace (self_t *self)
{
    self->grace_until = 0;
    zlist_t *gone = zlist_new ();
    for (service_t *service = (service_t *) zhashx_first (self->services);
         service; service = (service_t *) zhashx_next (self->services)) {
        if (service->offered || service->builtin)
            continue;
        link_t *link = service->queue.next;
        while (link != &service->queue) {
            request_t *request = s_container (link, request_t, link);
            link = link->next;
            if (request->q)
                continue;
            s_reply_error (self, request->client, request->cid, request->bseq,
                           request->has_tr? request->tr: NULL, service,
                           service->name, request->op, LH_ST_NOT_FOUND, "no_such_service",
                           "no worker has ever offered this service", 0);
            s_request_destroy (self, &request);
        }
        if (service->queued == 0)
            zlist_append (gone, service->name);
    }
    for (const char *name = (const char *) zlist_first (gone); name;
         name = (const char *) zlist_next (gone))
        zhashx_delete (self->services, name);
    zlist_destroy (&gone);
}


//  --------------------------------------------------------------------------
//  Once per heartbeat interval: heartbeats, reaping, and another try at
//  dispatching queues a busy worker refused

static void
s_tick (self_t *self)
{
    s_send_heartbeats (self);
    s_reap_dead (self);
    for (service_t *service = (service_t *) zhashx_first (self->services);
         service; service = (service_t *) zhashx_next (self->services)) {
        if (service->queued && !s_list_empty (&service->waiting))
            s_dispatch_queued (self, service);
    }
    s_reap_dead (self);
    if (self->grace_until && self->now >= self->grace_until)
        s_end_grace (self);
    self->next_tick = self->now + s_tick_ivl (self);
}


//  --------------------------------------------------------------------------
//  Read what the router has, up to a batch, without blocking. Returns
//  true when the batch ended it (more may wait), false when read dry.

static bool
s_drain_router (self_t *self)
{
    for (int count = 0; count < S_BATCH; count++) {
        lh_msg_t msg;
        int rc = lh_msg_try_recv (&msg, self->router, true, (size_t) self->max_msg);
        if (rc == -2) {
            self->dropped_malformed++;
            continue;
        }
        if (rc != 0)
            return false;               //  read dry (or failed)
        self->now = s_now_ms ();
        self->now_us = s_wall_us ();
        if (msg.routing)
            s_handle_message (self, &msg);
        else
            self->dropped_malformed++;
        lh_msg_reset (&msg);
        s_reap_dead (self);
    }
    return true;
}


//  --------------------------------------------------------------------------
//  Read and discard the tap's subscription messages

static void
s_drain_tap (self_t *self)
{
    uint8_t buffer [256];
    while (zsock_events (self->tap) & ZMQ_POLLIN) {
        if (zmq_recv (self->tap_handle, buffer, sizeof buffer, ZMQ_DONTWAIT) == -1)
            break;
    }
}


//  --------------------------------------------------------------------------
//  Parse an unsigned setting; returns 0, or -1 if not a number in range

static int
s_parse_setting (const char *value, uint64_t min, uint64_t max, uint64_t *result)
{
    if (!value || !*value)
        return -1;
    char *end;
    errno = 0;
    unsigned long long number = strtoull (value, &end, 10);
    if (errno || *end || value [0] == '-' || number < min || number > max)
        return -1;
    *result = number;
    return 0;
}


//  --------------------------------------------------------------------------
//  CONFIGURE key value; returns 0 or -1

static int
s_configure (self_t *self, const char *key, const char *value)
{
    uint64_t number = 0;
    if (!key || !value)
        return -1;
    if (streq (key, "cert")) {
        zcert_t *cert = NULL;
        if (*value) {
            char *error = NULL;
            cert = lh_cert_load (value, true, &error);
            if (!cert) {
                lh_error ("broker", NULL, "server certificate: %s", error);
                free (error);
                return -1;
            }
        }
        zcert_destroy (&self->cert);
        self->cert = cert;
        return 0;
    }
    if (streq (key, "allow")) {
        lh_allow_destroy (&self->allow);
        zstr_free (&self->allow_dir);
        if (*value) {
            self->allow = lh_allow_new (value);
            self->allow_dir = strdup (value);
            self->now = s_now_ms ();
            s_reload_allow (self, true);
        }
        return 0;
    }
    if (strncmp (key, "acl/", 4) == 0) {
        const char *role = key + 4;
        const char *slash = strchr (role, '/');
        if (!slash || slash == role || (size_t) (slash - role) > LH_ROLE_MAX
        ||  !(streq (slash + 1, "serve") || streq (slash + 1, "call")))
            return -1;
        zhashx_update (self->acl, role, strdup (value));
        return 0;
    }
    if (streq (key, "reload_ms")) {
        if (s_parse_setting (value, 10, 3600000, &number) != 0)
            return -1;
        self->reload_ms = (uint32_t) number;
        return 0;
    }
    if (streq (key, "name")) {
        if (!s_name_ok (value))
            return -1;
        snprintf (self->name, sizeof self->name, "%s", value);
        return 0;
    }
    if (streq (key, "restart_grace")) {
        if (streq (value, "-1"))
            self->restart_grace = -1;
        else
        if (s_parse_setting (value, 0, 3600000, &number) == 0)
            self->restart_grace = (int64_t) number;
        else
            return -1;
        return 0;
    }
    if (streq (key, "hb_ivl") && s_parse_setting (value, 10, 3600000, &number) == 0)
        self->hb_ivl = (uint32_t) number;
    else
    if (streq (key, "hb_live") && s_parse_setting (value, 1, 1000, &number) == 0)
        self->hb_live = (uint32_t) number;
    else
    if (streq (key, "max_msg") && s_parse_setting (value, 1024, 1ULL << 32, &number) == 0)
        self->max_msg = number;
    else
    if (streq (key, "queue_max") && s_parse_setting (value, 0, 100000000, &number) == 0)
        self->queue_max = (size_t) number;
    else
    if (streq (key, "queue_bytes") && s_parse_setting (value, 0, 1ULL << 40, &number) == 0)
        self->queue_bytes = number;
    else
    if (streq (key, "retry_after_ms") && s_parse_setting (value, 1, 3600000, &number) == 0)
        self->retry_after_ms = (uint32_t) number;
    else
    if (streq (key, "sub_queue") && s_parse_setting (value, 1, 10000000, &number) == 0)
        self->sub_queue = (size_t) number;
    else
    if (streq (key, "tap_hwm") && s_parse_setting (value, 0, 10000000, &number) == 0)
        self->tap_hwm = (int) number;
    else
    if (streq (key, "max_attempts") && s_parse_setting (value, 1, 100, &number) == 0)
        self->max_attempts = (uint32_t) number;
    else
        return -1;
    return 0;
}


//  --------------------------------------------------------------------------
//  Start our ZAP handler (once), before any CURVE endpoint is bound: with
//  no handler answering, Debian's libzmq would accept any client key.
//  Returns 0, or -1 and *error_p.

static int
s_zap_start (self_t *self, char **error_p)
{
    if (self->zap)
        return 0;
    if (!self->allow) {
        *error_p = strdup ("CURVE needs an allow directory (CONFIGURE allow DIR)");
        return -1;
    }
    self->zap = zsock_new (ZMQ_REP);
    assert (self->zap);
    zsock_set_linger (self->zap, 0);
    if (zsock_bind (self->zap, "%s", S_ZAP_ENDPOINT) == -1) {
        *error_p = zsys_sprintf ("cannot start the ZAP handler (%s): another one "
                                 "runs in this process", zmq_strerror (zmq_errno ()));
        zsock_destroy (&self->zap);
        return -1;
    }
    self->side_dirty = true;
    s_reload_allow (self, true);
    return 0;
}


//  --------------------------------------------------------------------------
//  Watch a socket's failed handshakes, to count them (index 0 router, 1 tap)

static void
s_monitor_start (self_t *self, int index, zsock_t *sock)
{
    if (self->monitor [index])
        return;
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "inproc://lh-broker-monitor-%p-%d", (void *) self, index);
    int events = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
               | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
    if (zmq_socket_monitor (zsock_resolve (sock), endpoint, events) == -1)
        return;
    self->monitor [index] = zsock_new (ZMQ_PAIR);
    assert (self->monitor [index]);
    if (zsock_connect (self->monitor [index], "%s", endpoint) == -1) {
        zsock_destroy (&self->monitor [index]);
        return;
    }
    self->side_dirty = true;
}


//  --------------------------------------------------------------------------
//  Make a socket's next binds CURVE servers with cert's key, in ZAP domain
//  domain, with ZMQ_ZAP_ENFORCE_DOMAIN set by a raw zmq_setsockopt (czmq's
//  setter is a no-op without the draft API) and read back: if it did not
//  take, nothing is bound. Returns 0, or -1 and *error_p.

static int
s_curve_prepare (self_t *self, zsock_t *sock, int index, const char *domain,
                 zcert_t *cert, char **error_p)
{
    if (s_zap_start (self, error_p) == -1)
        return -1;
    void *handle = zsock_resolve (sock);
    int on = 1;
    int value = 0;
    size_t size = sizeof value;
    if (zmq_setsockopt (handle, ZMQ_ZAP_DOMAIN, domain, strlen (domain)) == -1
    ||  zmq_setsockopt (handle, S_ZAP_ENFORCE, &on, sizeof on) == -1
    ||  zmq_getsockopt (handle, S_ZAP_ENFORCE, &value, &size) == -1 || value != 1) {
        *error_p = strdup ("this libzmq does not take ZMQ_ZAP_ENFORCE_DOMAIN: refusing "
                           "to bind with CURVE (any client key would be accepted)");
        return -1;
    }
    int server = 1;
    if (zmq_setsockopt (handle, ZMQ_CURVE_SERVER, &server, sizeof server) == -1
    ||  zmq_setsockopt (handle, ZMQ_CURVE_SECRETKEY, zcert_secret_key (cert), 32) == -1) {
        *error_p = zsys_sprintf ("cannot set the CURVE server key: %s",
                                 zmq_strerror (zmq_errno ()));
        return -1;
    }
    s_monitor_start (self, index, sock);
    return 0;
}


//  --------------------------------------------------------------------------
//  Make a socket's next binds plain (NULL mechanism, no ZAP)

static void
s_plain_prepare (zsock_t *sock)
{
    void *handle = zsock_resolve (sock);
    int off = 0;
    zmq_setsockopt (handle, ZMQ_CURVE_SERVER, &off, sizeof off);
    zmq_setsockopt (handle, ZMQ_ZAP_DOMAIN, "", 0);
    zmq_setsockopt (handle, S_ZAP_ENFORCE, &off, sizeof off);
}


//  --------------------------------------------------------------------------
//  Bind a socket. inproc:// binds as is. Any other transport is CURVE with
//  cert_path's key (else the configured server cert), or plain when there
//  is no cert and the endpoint is loopback; plain on a network address is
//  refused. Returns the bound endpoint (caller frees), or NULL and *error_p.

static char *
s_bind_socket (self_t *self, zsock_t *sock, int index, const char *domain,
               const char *endpoint, const char *cert_path, char **error_p)
{
    if (strncmp (endpoint, "inproc://", 9) != 0) {
        zcert_t *loaded = NULL;
        if (cert_path && *cert_path) {
            loaded = lh_cert_load (cert_path, true, error_p);
            if (!loaded)
                return NULL;
        }
        zcert_t *cert = loaded? loaded: self->cert;
        int rc = 0;
        if (cert)
            rc = s_curve_prepare (self, sock, index, domain, cert, error_p);
        else
        if (lh_endpoint_is_local (endpoint))
            s_plain_prepare (sock);
        else {
            *error_p = zsys_sprintf ("%s is not loopback: plain tcp is refused there, "
                                     "configure a server certificate (CURVE)", endpoint);
            rc = -1;
        }
        zcert_destroy (&loaded);
        if (rc == -1)
            return NULL;
    }
    if (zsock_bind (sock, "%s", endpoint) == -1) {
        *error_p = strdup (zmq_strerror (zmq_errno ()));
        return NULL;
    }
    return zsock_last_endpoint (sock);
}


//  --------------------------------------------------------------------------
//  BIND endpoint [cert]: bind the bus router. Returns the bound endpoint
//  (caller frees) or NULL and *error_p.

static char *
s_bind_router (self_t *self, const char *endpoint, const char *cert_path, char **error_p)
{
    if (!self->bound) {
        int64_t max_size = (int64_t) self->max_msg + LH_HEADER_MAX;
        zmq_setsockopt (self->router_handle, ZMQ_MAXMSGSIZE, &max_size, sizeof max_size);
    }
    char *bound = s_bind_socket (self, self->router, 0, S_ZAP_BUS, endpoint,
                                 cert_path, error_p);
    if (!bound)
        return NULL;
    if (!self->bound && self->restart_grace)
        self->grace_until = s_now_ms () + (self->restart_grace > 0
                          ? self->restart_grace: (int64_t) self->hb_ivl * self->hb_live);
    self->bound = true;
    return bound;
}


//  --------------------------------------------------------------------------
//  UNBIND endpoint: stop listening there (the connections it accepted
//  close). Returns 0, or -1 and *error_p.

static int
s_unbind_router (self_t *self, const char *endpoint, char **error_p)
{
    if (zsock_unbind (self->router, "%s", endpoint) == -1) {
        *error_p = zsys_sprintf ("cannot unbind %s: %s", endpoint, zmq_strerror (zmq_errno ()));
        return -1;
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  TAP endpoint: create (once) and bind the tap XPUB; with CURVE only role
//  tap passes our ZAP handler. Returns the bound endpoint (caller frees)
//  or NULL and *error_p.

static char *
s_bind_tap (self_t *self, const char *endpoint, char **error_p)
{
    if (!self->tap) {
        self->tap = zsock_new (ZMQ_XPUB);
        assert (self->tap);
        self->tap_handle = zsock_resolve (self->tap);
        int on = 1;
        zmq_setsockopt (self->tap_handle, ZMQ_XPUB_NODROP, &on, sizeof on);
        zsock_set_sndhwm (self->tap, self->tap_hwm);
        zsock_set_linger (self->tap, 0);
        self->side_dirty = true;
    }
    return s_bind_socket (self, self->tap, 1, S_ZAP_TAP, endpoint, NULL, error_p);
}


//  --------------------------------------------------------------------------
//  Encode ZAP metadata: each property as name length (1 byte), name,
//  value length (4 bytes, network order), value

static size_t
s_zap_property (uint8_t *buffer, size_t at, const char *name, const char *value)
{
    size_t name_size = strlen (name);
    size_t value_size = strlen (value);
    buffer [at++] = (uint8_t) name_size;
    memcpy (buffer + at, name, name_size);
    at += name_size;
    buffer [at++] = (uint8_t) (value_size >> 24);
    buffer [at++] = (uint8_t) (value_size >> 16);
    buffer [at++] = (uint8_t) (value_size >> 8);
    buffer [at++] = (uint8_t) value_size;
    memcpy (buffer + at, value, value_size);
    return at + value_size;
}


//  --------------------------------------------------------------------------
//  Answer the ZAP requests waiting (RFC 27). A CURVE client key passes if
//  it is in the allow set (and, on the tap's domain, has role tap); the
//  User-Id is the key (Z85) and the metadata carries name, role, keyid.
//  Each handshake checks the allow directory first (a listing and a stat
//  per file, cheaper than the handshake that asked), so a certificate just
//  added works at once and one just removed is refused at once.

static void
s_handle_zap (self_t *self)
{
    while (zsock_events (self->zap) & ZMQ_POLLIN) {
        zmsg_t *request = zmsg_recv (self->zap);
        if (!request)
            break;
        char *version = zmsg_popstr (request);
        char *sequence = zmsg_popstr (request);
        char *domain = zmsg_popstr (request);
        char *address = zmsg_popstr (request);
        char *identity = zmsg_popstr (request);
        char *mechanism = zmsg_popstr (request);
        zframe_t *key = zmsg_pop (request);
        const char *status = "400";
        const char *text = "key not allowed";
        char user [LH_UID_SIZE + 1] = "";
        uint8_t metadata [512];
        size_t metadata_size = 0;
        if (!version || !streq (version, "1.0") || !mechanism || !domain
        ||  !streq (mechanism, "CURVE") || !key || zframe_size (key) != 32)
            text = "only CURVE is accepted";
        else
        if (!streq (domain, S_ZAP_BUS) && !streq (domain, S_ZAP_TAP))
            text = "unknown ZAP domain";
        else {
            zmq_z85_encode (user, zframe_data (key), 32);
            s_reload_allow (self, false);
            const lh_allow_entry_t *entry = lh_allow_lookup (self->allow, user);
            if (!entry)
                text = "key not allowed";
            else
            if (streq (domain, S_ZAP_TAP) && !streq (entry->role, "tap"))
                text = "only role tap may tap";
            else {
                status = "200";
                text = "OK";
                metadata_size = s_zap_property (metadata, 0, "name", entry->name);
                metadata_size = s_zap_property (metadata, metadata_size, "role", entry->role);
                metadata_size = s_zap_property (metadata, metadata_size, "keyid", entry->keyid);
            }
        }
        if (!streq (status, "200")) {
            self->refused_zap++;
            lh_info ("broker", NULL, "refused a %s handshake from %s (key %.8s): %s",
                     domain && streq (domain, S_ZAP_TAP)? "tap": "bus",
                     address? address: "?", user [0]? user: "-", text);
            user [0] = 0;
        }
        zmsg_t *reply = zmsg_new ();
        zmsg_addstr (reply, "1.0");
        zmsg_addstr (reply, sequence? sequence: "");
        zmsg_addstr (reply, status);
        zmsg_addstr (reply, text);
        zmsg_addstr (reply, user);
        zmsg_addmem (reply, metadata, metadata_size);
        zmsg_send (&reply, self->zap);
        zframe_destroy (&key);
        zstr_free (&version);
        zstr_free (&sequence);
        zstr_free (&domain);
        zstr_free (&address);
        zstr_free (&identity);
        zstr_free (&mechanism);
        zmsg_destroy (&request);
    }
}


//  --------------------------------------------------------------------------
//  Count failed handshakes (a peer without CURVE, a bad key exchange);
//  ZAP refusals are counted by the ZAP handler

static void
s_handle_monitor (self_t *self, zsock_t *monitor)
{
    while (zsock_events (monitor) & ZMQ_POLLIN) {
        zmsg_t *event = zmsg_recv (monitor);
        if (!event)
            break;
        zframe_t *first = zmsg_first (event);
        if (first && zframe_size (first) >= 2) {
            uint16_t id;
            memcpy (&id, zframe_data (first), 2);
            if (id == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL
            ||  id == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
                self->refused_handshake++;
        }
        zmsg_destroy (&event);
    }
}


//  --------------------------------------------------------------------------
//  A command on the actor pipe; each is answered "ss" status, detail

static void
s_handle_pipe (self_t *self)
{
    zmsg_t *request = zmsg_recv (self->pipe);
    if (!request)
        return;
    char *command = zmsg_popstr (request);
    char *first = zmsg_popstr (request);
    char *second = zmsg_popstr (request);
    if (!command) {
        zmsg_destroy (&request);
        return;
    }
    if (streq (command, "$TERM"))
        self->terminated = true;
    else
    if (streq (command, "CONFIGURE")) {
        if (s_configure (self, first, second) == 0) {
            self->next_tick = s_now_ms () + s_tick_ivl (self);
            zsock_send (self->pipe, "ss", "0", "");
        }
        else {
            char *detail = zsys_sprintf ("bad value '%s' for '%s' (or no such setting)",
                                         second? second: "", first? first: "");
            zsock_send (self->pipe, "ss", "-1", detail);
            zstr_free (&detail);
        }
    }
    else
    if (streq (command, "BIND") || streq (command, "TAP")) {
        char *endpoint = NULL;
        char *error = NULL;
        if (first)
            endpoint = streq (command, "BIND")? s_bind_router (self, first, second, &error)
                                              : s_bind_tap (self, first, &error);
        if (endpoint)
            zsock_send (self->pipe, "ss", "0", endpoint);
        else
            zsock_send (self->pipe, "ss", "-1", first? (error? error: "bind failed"): "no endpoint");
        zstr_free (&endpoint);
        zstr_free (&error);
    }
    else
    if (streq (command, "UNBIND")) {
        char *error = NULL;
        if (first && s_unbind_router (self, first, &error) == 0)
            zsock_send (self->pipe, "ss", "0", first);
        else
            zsock_send (self->pipe, "ss", "-1", error? error: "no endpoint");
        zstr_free (&error);
    }
    else
    if (streq (command, "RELOAD")) {
        self->now = s_now_ms ();
        self->now_us = s_wall_us ();
        s_reload_allow (self, true);
        char detail [32];
        snprintf (detail, sizeof detail, "%zu", self->allow? lh_allow_size (self->allow): 0);
        zsock_send (self->pipe, "ss", "0", detail);
    }
    else
    if (streq (command, "STATS")) {
        self->now = s_now_ms ();
        json_t *stats = s_stats_json (self);
        char *text = json_dumps (stats, JSON_COMPACT);
        zsock_send (self->pipe, "ss", "0", text? text: "{}");
        free (text);
        json_decref (stats);
    }
    else
    if (streq (command, "VERBOSE")) {
        self->verbose = true;
        zsock_send (self->pipe, "ss", "0", "");
    }
    else
        zsock_send (self->pipe, "ss", "-1", "unknown command");
    zstr_free (&command);
    zstr_free (&first);
    zstr_free (&second);
    zmsg_destroy (&request);
}


//  --------------------------------------------------------------------------
//  Create the broker

static self_t *
s_self_new (zsock_t *pipe, const char *name)
{
    self_t *self = (self_t *) zmalloc (sizeof (self_t));
    assert (self);
    self->pipe = pipe;
    snprintf (self->name, sizeof self->name, "%s", name && s_name_ok (name)? name: "lakehouse");
    self->hb_ivl = S_HB_IVL;
    self->hb_live = S_HB_LIVE;
    self->max_msg = S_MAX_MSG;
    self->queue_max = S_QUEUE_MAX;
    self->queue_bytes = S_QUEUE_BYTES;
    self->retry_after_ms = S_RETRY_AFTER;
    self->sub_queue = S_SUB_QUEUE;
    self->tap_hwm = S_TAP_HWM;
    self->max_attempts = S_MAX_ATTEMPTS;
    self->reload_ms = S_RELOAD_MS;
    self->acl = zhashx_new ();
    assert (self->acl);
    zhashx_set_destructor (self->acl, (zhashx_destructor_fn *) zstr_free);
    const char *acl_defaults [][2] = {
        { "actor/serve", "*" }, { "actor/call", "*" }, { "gateway/call", "*" },
        { "client/call", "*" }, { "admin/call", "*" }, { "tap/call", "" }
    };
    for (size_t index = 0; index < sizeof acl_defaults / sizeof acl_defaults [0]; index++)
        zhashx_update (self->acl, acl_defaults [index][0], strdup (acl_defaults [index][1]));

    self->router = zsock_new (ZMQ_ROUTER);
    assert (self->router);
    self->router_handle = zsock_resolve (self->router);
    int on = 1;
    zmq_setsockopt (self->router_handle, ZMQ_ROUTER_MANDATORY, &on, sizeof on);
    zsock_set_linger (self->router, 0);
    self->pipe_dirty = true;

    self->peers = zhashx_new ();
    zhashx_set_key_hasher (self->peers, s_rid_hash);
    zhashx_set_key_comparator (self->peers, s_rid_compare);
    zhashx_set_key_duplicator (self->peers, NULL);
    zhashx_set_key_destructor (self->peers, NULL);
    self->services = zhashx_new ();
    zhashx_set_destructor (self->services, s_service_destroy);
    self->requests = zhashx_new ();
    zhashx_set_key_hasher (self->requests, lh_id_hash);
    zhashx_set_key_comparator (self->requests, lh_id_compare);
    zhashx_set_key_duplicator (self->requests, NULL);
    zhashx_set_key_destructor (self->requests, NULL);
    s_list_init (&self->by_rx);
    s_list_init (&self->by_tx);
    s_list_init (&self->subscribers);
    s_list_init (&self->holding);

    service_t *builtin = s_service_require (self, "broker");
    builtin->builtin = true;
    builtin->offered = true;

    self->now = s_now_ms ();
    self->started = self->now;
    self->next_tick = self->now + self->hb_ivl;
    return self;
}


//  --------------------------------------------------------------------------
//  Destroy the broker and everything it holds

static void
s_self_destroy (self_t **self_p)
{
    self_t *self = *self_p;
    if (!self)
        return;
    request_t *request;
    while ((request = (request_t *) zhashx_first (self->requests)))
        s_request_destroy (self, &request);
    while (!s_list_empty (&self->by_rx)) {
        peer_t *peer = s_container (self->by_rx.next, peer_t, rx_link);
        zhashx_delete (self->peers, peer->rid);
        s_list_remove (&peer->rx_link);
        s_peer_destroy (&peer);
    }
    while (self->spare) {
        request = self->spare;
        self->spare = (request_t *) request->link.next;
        free (request);
    }
    free (self->heap);
    zhashx_destroy (&self->requests);
    zhashx_destroy (&self->peers);
    zhashx_destroy (&self->services);
    zsock_destroy (&self->tap);
    zsock_destroy (&self->router);
    zsock_destroy (&self->monitor [0]);
    zsock_destroy (&self->monitor [1]);
    zsock_destroy (&self->zap);
    zcert_destroy (&self->cert);
    lh_allow_destroy (&self->allow);
    zstr_free (&self->allow_dir);
    zhashx_destroy (&self->acl);
    free (self);
    *self_p = NULL;
}


//  --------------------------------------------------------------------------
//  Milliseconds until the next timer (deadline, tick, held-event retry)

static int
s_poll_timeout (self_t *self)
{
    int64_t next = self->next_tick;
    if (self->heap_size && self->heap [0]->deadline < next)
        next = self->heap [0]->deadline;
    if (!s_list_empty (&self->holding) && self->next_flush < next)
        next = self->next_flush;
    if (self->allow && self->next_reload < next)
        next = self->next_reload;
    int64_t timeout = next - self->now;
    return timeout < 0? 0: timeout > (int64_t) self->hb_ivl? (int) self->hb_ivl: (int) timeout;
}


//  --------------------------------------------------------------------------
//  The broker actor

void
lh_broker_actor (zsock_t *pipe, void *args)
{
    self_t *self = s_self_new (pipe, (const char *) args);
    pthread_setname_np (pthread_self (), "broker");
    zsock_signal (pipe, 0);
    //  ZMQ_FDs are polled directly: zmq_poll would ask every socket for
    //  its events before and after each wait, a system call or two each.
    //  A socket's descriptor only signals what arrives after the socket was
    //  last read dry, so: the router is read dry last, after every send of
    //  the round; the pipe, tap, ZAP and monitors are read when their
    //  descriptor fired (and the tap every tick too: sending on it may
    //  take the signal of a subscription).
    while (!self->terminated) {
        self->now = s_now_ms ();
        self->now_us = s_wall_us ();
        s_expire_requests (self);
        if (self->now >= self->next_tick) {
            s_tick (self);
            self->side_dirty = true;
        }
        if (self->allow && self->now >= self->next_reload)
            s_reload_allow (self, false);
        if (!s_list_empty (&self->holding) && self->now >= self->next_flush) {
            s_flush_held (self);
            s_reap_dead (self);
            self->next_flush = self->now + S_HOLD_RETRY;
        }
        if (self->pipe_dirty) {
            self->pipe_dirty = false;
            if (zsock_events (self->pipe) & ZMQ_POLLIN) {
                s_handle_pipe (self);
                self->pipe_dirty = true;
                continue;
            }
        }
        if (self->side_dirty) {
            self->side_dirty = false;
            if (self->tap)
                s_drain_tap (self);
            if (self->zap)
                s_handle_zap (self);
            for (int index = 0; index < 2; index++)
                if (self->monitor [index])
                    s_handle_monitor (self, self->monitor [index]);
        }
        if (s_drain_router (self))
            continue;                   //  more waiting: no wait

        struct pollfd items [6];
        int count = 0;
        items [count++] = (struct pollfd) { zsock_fd (self->pipe), POLLIN, 0 };
        items [count++] = (struct pollfd) { zsock_fd (self->router), POLLIN, 0 };
        zsock_t *side [4] = { self->tap, self->zap, self->monitor [0], self->monitor [1] };
        for (int index = 0; index < 4; index++)
            if (side [index])
                items [count++] = (struct pollfd) { zsock_fd (side [index]), POLLIN, 0 };
        self->now = s_now_ms ();
        if (poll (items, (nfds_t) count, s_poll_timeout (self)) == -1 && errno != EINTR)
            break;
        if (items [0].revents & POLLIN)
            self->pipe_dirty = true;
        for (int index = 2; index < count; index++)
            if (items [index].revents & POLLIN)
                self->side_dirty = true;
    }
    s_self_destroy (&self);
}


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
    assert (s_latency_bucket (0) == 0);
    assert (s_latency_bucket (7) == 7);
    assert (s_latency_bucket (8) == 8);
    assert (s_latency_bucket (1000) < s_latency_bucket (1200));
    uint64_t middle = s_latency_value (s_latency_bucket (1000));
    assert (middle > 900 && middle < 1100);
    assert (s_ops_accept ("get,put", "put") && !s_ops_accept ("get,put", "pu"));
    assert (s_ops_valid ("a,b.c") && !s_ops_valid ("a,,b") && !s_ops_valid ("a b"));

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
        { "retry_after_ms", "50" }, { "sub_queue", "5" }
    };
    for (size_t index = 0; index < sizeof settings / sizeof settings [0]; index++)
        assert (s_test_configure (broker, settings [index][0], settings [index][1]));
    assert (!s_test_configure (broker, "hb_ivl", "soon"));
    assert (!s_test_configure (broker, "no_such_key", "1"));
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
