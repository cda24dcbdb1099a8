/*  =========================================================================
    lh_broker_internal - what the broker's files share; not an API

    The broker is one class in four files: lh_broker.c (routing, queues,
    credit, liveness, PUB/SUB, the tap, the actor and its pipe),
    lh_broker_security.c (peer identity, ZAP, the ACL, revocation, binds),
    lh_broker_service.c (the built-in `broker` service) and
    lh_broker_test.c (the selftest). This header holds their shared state
    (self_t and the tables it owns) and the functions one file calls in
    another, named lh_broker_*. Nothing outside broker/ includes it.
    =========================================================================
*/

#ifndef LH_BROKER_INTERNAL_H_INCLUDED
#define LH_BROKER_INTERNAL_H_INCLUDED

#include "lh_broker.h"
#include "lh_cert.h"
#include "lh_body.h"
#include "lh_log.h"
#include "lh_acl.h"
#include <jansson.h>

//  Defaults (see lh_broker.h) and bounds
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
#define S_GRANT_SIZE        32          //  hex characters of an in-process grant
#define S_NONCE_SIZE        16          //  hex characters after it in a routing id
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
    char solo [LH_NAME_MAX + 1];        //  single-instance: the instance serving it, or ""
    char holder [LH_NAME_MAX + 1];      //  src of the worker that made it so
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
    bool secure;                        //  came over CURVE: has a key (uid)
    bool revoked;                       //  key revoked: next message gets 401
    char uid [LH_UID_SIZE + 1];         //  CURVE public key (Z85), or ""
    char role [LH_ROLE_MAX + 1];        //  its role, whichever way it came
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
    bool has_ps;                        //  ps is set
    char op [LH_NAME_MAX + 1];          //  operation
    char src [LH_NAME_MAX + 1];         //  client's src
    char uid [LH_UID_SIZE + 1];         //  client's key, or ""
    char idem [LH_IDEM_MAX + 1];        //  idempotency key
    char tr [LH_TRACE_SIZE + 1];        //  trace id
    char ps [LH_SPAN_SIZE + 1];         //  the caller's span id (forwarded as is)
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
    lh_acl_t *acl;                      //  who may serve, call, publish, subscribe
    zhashx_t *grants;                   //  in-process grant (hex) -> role
    char inproc_role [LH_ROLE_MAX + 1]; //  in-process peer without a grant, or ""
    char plain_role [LH_ROLE_MAX + 1];  //  peers of a plain tcp/ipc endpoint

    uint64_t refused_handshake;         //  CURVE handshakes that failed
    uint64_t refused_zap;               //  keys ZAP refused (unknown, role)
    uint64_t refused_revoked;           //  messages from revoked keys (401)
    uint64_t refused_name;              //  HELLO names not the cert's (403)
    uint64_t refused_serve;             //  READY not allowed (403)
    uint64_t refused_call;              //  REQ not allowed (403)
    uint64_t refused_admin;             //  broker admin op by non-admin (403)
    uint64_t refused_grant;             //  in-process HELLO without a grant (403)
    uint64_t refused_publish;           //  PUB not allowed (403)
    uint64_t refused_subscribe;         //  SUB not allowed (403)
    uint64_t refused_instance;          //  READY for a single-instance service
                                        //  another process serves (409)

    lh_header_t out;                    //  header being built
    uint8_t hbuf [LH_HEADER_MAX];       //  encoded header being sent
    uint8_t tbuf [LH_HEADER_MAX + 16];  //  tap copy of a reply, with rseq
} self_t;

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


//  ---------------------------------------------------------------------
//  lh_broker.c: clocks, names, the latency histogram, sending

//  Monotonic clock, ms (timers)
int64_t
    lh_broker_now_ms (void);

//  Wall clock, us (brx)
uint64_t
    lh_broker_wall_us (void);

//  Is this string a valid name: 1..64 bytes of [A-Za-z0-9_.:-]?
bool
    lh_broker_name_ok (const char *name);

//  Is an ops list "a,b,c" made of valid names?
bool
    lh_broker_ops_valid (const char *ops);

//  Does an ops list accept op? A NULL list accepts any op.
bool
    lh_broker_ops_accept (const char *ops, const char *op);

//  Parse an unsigned setting in min..max; returns 0, or -1
int
    lh_broker_parse_setting (const char *value, uint64_t min, uint64_t max,
                             uint64_t *result);

//  Latency histogram: bucket of a value, middle value of a bucket, and a
//  percentile (0 < fraction <= 1) of a service's latencies, all in us
size_t
    lh_broker_latency_bucket (uint64_t usecs);
uint64_t
    lh_broker_latency_value (size_t bucket);
uint64_t
    lh_broker_latency_percentile (service_t *service, double fraction);

//  Mark a peer dead; the next reap forgets it (the pointer stays valid)
void
    lh_broker_peer_mark_dead (self_t *self, peer_t *peer);

//  Send a REP from the broker itself to a client; counts it against
//  service (may be NULL) and taps it. Takes the body.
void
    lh_broker_reply_from_broker (self_t *self, zframe_t *client, uint64_t cid,
                                 uint64_t rseq, const char *tr, service_t *service,
                                 const char *svc, const char *op, uint32_t status,
                                 zframe_t **body_p);

//  Answer a received REQ with an error REP (the request was never queued)
void
    lh_broker_reject_request (self_t *self, lh_msg_t *msg, service_t *service,
                              uint32_t status, const char *kind, const char *reason,
                              uint64_t retry_after_ms);

//  Say BYE to a routing id with a status and an error body
void
    lh_broker_send_bye (self_t *self, zframe_t *rid, lh_header_t *cause,
                        uint32_t status, const char *kind, const char *reason);


//  ---------------------------------------------------------------------
//  lh_broker_security.c: identity, ACL, revocation, binds, ZAP

//  Decide who a peer saying HELLO is (name, src, role, key). Returns 0, or
//  the status to refuse it with (401, 403) and a sentence in *reason_p.
uint32_t
    lh_broker_peer_identify (self_t *self, peer_t *peer, lh_msg_t *msg,
                             const char **reason_p);

//  May this peer offer svc?
bool
    lh_broker_may_serve (self_t *self, peer_t *peer, const char *svc);

//  May this peer call svc.op?
bool
    lh_broker_may_call (self_t *self, peer_t *peer, const char *svc, const char *op);

//  A new in-process grant for role (32 hex characters, caller frees), or
//  NULL if role is not a role
char *
    lh_broker_grant (self_t *self, const char *role);

//  Is a CURVE peer's key still in the allow set (and not expired)?
bool
    lh_broker_key_valid (self_t *self, peer_t *peer);

//  A message from a revoked key: 401 to its request, BYE 401, forget it
void
    lh_broker_refuse_revoked (self_t *self, peer_t *peer, lh_msg_t *msg, const char *uid);

//  Does a message from an unknown routing id carry a key no longer allowed?
bool
    lh_broker_sender_revoked (self_t *self, lh_msg_t *msg, const char **uid_p);

//  Check the allow directory (force: reload it even if it looks the same)
void
    lh_broker_reload_allow (self_t *self, bool force);

//  CONFIGURE for the security keys. Returns 0, -1, or 1 (not one of them).
int
    lh_broker_configure_security (self_t *self, const char *key, const char *value);

//  BIND / UNBIND the bus router, TAP: the bound endpoint (caller frees) or
//  NULL / -1 with *error_p
char *
    lh_broker_bind_router (self_t *self, const char *endpoint, const char *cert_path,
                           char **error_p);
int
    lh_broker_unbind_router (self_t *self, const char *endpoint, char **error_p);
char *
    lh_broker_bind_tap (self_t *self, const char *endpoint, char **error_p);

//  Answer the waiting ZAP requests; count the failed handshakes a monitor saw
void
    lh_broker_handle_zap (self_t *self);
void
    lh_broker_handle_monitor (self_t *self, zsock_t *monitor);


//  ---------------------------------------------------------------------
//  lh_broker_service.c: the built-in `broker` service

//  A REQ to the `broker` service (answers it)
void
    lh_broker_serve_builtin (self_t *self, peer_t *peer, lh_msg_t *msg, service_t *service);

//  broker.stats (and the STATS pipe command) as a new JSON value; with
//  latency, each service's non-empty histogram buckets too
json_t *
    lh_broker_stats_json (self_t *self, bool latency);

#endif
