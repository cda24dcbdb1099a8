/*  =========================================================================
    lh_broker - the central broker: routing, queues, credit, heartbeats,
    deadlines, PUB/SUB, and the tap (security, the built-in `broker`
    service and the selftest have files of their own: lh_broker_internal.h)

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

#include "lh_broker_internal.h"
#include "lh_tap.h"
#include <poll.h>
#include <time.h>

//  Restart grace, defined with the timers below
static bool s_in_grace (self_t *self);
static void s_end_grace (self_t *self);


//  --------------------------------------------------------------------------
//  Clocks: monotonic ms for timers, wall-clock us for brx

int64_t
lh_broker_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


//  --------------------------------------------------------------------------
//  Wall-clock time in microseconds (brx)

uint64_t
lh_broker_wall_us (void)
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

bool
lh_broker_name_ok (const char *name)
{
    return s_name_valid (name, strlen (name));
}


//  --------------------------------------------------------------------------
//  Is an ops list "a,b,c" made of valid names?

bool
lh_broker_ops_valid (const char *ops)
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

bool
lh_broker_ops_accept (const char *ops, const char *op)
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

size_t
lh_broker_latency_bucket (uint64_t usecs)
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

uint64_t
lh_broker_latency_value (size_t bucket)
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

uint64_t
lh_broker_latency_percentile (service_t *service, double fraction)
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
            return lh_broker_latency_value (bucket);
    }
    return lh_broker_latency_value (S_LAT_BUCKETS - 1);
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
        self->latency [lh_broker_latency_bucket (latency_us)]++;
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
        if (lh_broker_ops_accept (worker->ops, op))
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
        if (lh_broker_ops_accept (worker->ops, op))
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
    request->has_ps = (header->has & LH_H_PS) != 0;
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
    if (request->has_ps)
        memcpy (request->ps, header->ps, sizeof request->ps);
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

void
lh_broker_peer_mark_dead (self_t *self, peer_t *peer)
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

void
lh_broker_reply_from_broker (self_t *self, zframe_t *client, uint64_t cid, uint64_t rseq,
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
    lh_broker_reply_from_broker (self, client, cid, rseq, tr, service, svc, op, status, &body);
}


//  --------------------------------------------------------------------------
//  Answer a received REQ with an error (the request was never queued)

void
lh_broker_reject_request (self_t *self, lh_msg_t *msg, service_t *service,
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

void
lh_broker_send_bye (self_t *self, zframe_t *rid, lh_header_t *cause, uint32_t status,
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
            lh_broker_peer_mark_dead (self, peer);
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
    if (request->has_ps)
        lh_header_set_str (out, LH_H_PS, request->ps);
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
            lh_broker_peer_mark_dead (self, worker);
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
//  HELLO from an unknown routing id: create the peer, answer WELCOME

static void
s_accept_peer (self_t *self, lh_msg_t *msg)
{
    lh_header_t *header = &msg->header;
    if (!(header->has & LH_H_NAME) || !lh_broker_name_ok (header->name)) {
        lh_broker_send_bye (self, msg->routing, header, LH_ST_BAD_REQUEST, "bad_name",
                    "HELLO name must be 1..64 bytes of [A-Za-z0-9_.:-]");
        return;
    }
    peer_t *peer = s_peer_new (&msg->routing);
    const char *reason = NULL;
    uint32_t refusal = lh_broker_peer_identify (self, peer, msg, &reason);
    if (refusal) {
        lh_broker_send_bye (self, peer->rid, header, refusal,
                            refusal == LH_ST_FORBIDDEN? "forbidden": "revoked", reason);
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
        lh_info ("broker", NULL, "peer %s joined (role %s)", peer->src, peer->role);
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
//  A READY for a service that other workers already serve must come from
//  the same single-instance process, when either side is single-instance
//  (READY "solo", the offering process's instance id): a service whose
//  state lives in one process must not be split across two. Workers of
//  one process share the id, so they all pass. A second process is
//  refused with BYE 409 naming the service and the holder, logged and
//  counted (refused.instance); no request ever goes to it. Returns true
//  when refused.

static bool
s_refuse_second_instance (self_t *self, peer_t *peer, lh_msg_t *msg)
{
    lh_header_t *header = &msg->header;
    service_t *service = (service_t *) zhashx_lookup (self->services, header->svc);
    size_t others = service? service->nworkers - (peer->service == service? 1: 0): 0;
    const char *solo = (header->has & LH_H_SOLO)? header->solo: "";
    if (others == 0 || streq (solo, service->solo))
        return false;
    self->refused_instance++;
    char *reason = *service->solo
        ? zsys_sprintf ("%s is single-instance and another process serves it (%s, "
                        "instance %s): stop that one first, or run %s in one process only",
                        service->name, service->holder, service->solo, service->name)
        : zsys_sprintf ("%s is single-instance here (instance %s) but other processes "
                        "serve it as several instances: run it in one process only",
                        service->name, solo);
    lh_warn ("broker", NULL, "refused %s's READY: %s", peer->src, reason);
    lh_broker_send_bye (self, peer->rid, header, LH_ST_CONFLICT, "single_instance", reason);
    free (reason);
    lh_broker_peer_mark_dead (self, peer);
    return true;
}


//  --------------------------------------------------------------------------
//  READY: the peer works for a service, with ops and credit

static void
s_register_worker (self_t *self, peer_t *peer, lh_msg_t *msg)
{
    lh_header_t *header = &msg->header;
    bool has_ops = (header->has & LH_H_OPS) && header->ops [0];
    if (!(header->has & LH_H_SVC) || !lh_broker_name_ok (header->svc)
    ||  streq (header->svc, "broker")
    ||  ((header->has & LH_H_SOLO) && !lh_broker_name_ok (header->solo))
    ||  (has_ops && !lh_broker_ops_valid (header->ops))) {
        lh_broker_send_bye (self, peer->rid, header, LH_ST_BAD_REQUEST, "bad_name",
                    "READY needs svc, ops and solo made of names of 1..64 [A-Za-z0-9_.:-]");
        lh_broker_peer_mark_dead (self, peer);
        return;
    }
    if (peer->service && !streq (peer->service->name, header->svc)) {
        lh_broker_send_bye (self, peer->rid, header, LH_ST_BAD_REQUEST, "one_service",
                    "a connection may offer only one service");
        lh_broker_peer_mark_dead (self, peer);
        return;
    }
    if (!lh_broker_may_serve (self, peer, header->svc)) {
        self->refused_serve++;
        lh_warn ("broker", NULL, "%s (role %s) may not serve %s: refused",
                 peer->src, peer->role, header->svc);
        char *reason = zsys_sprintf ("role %s may not serve %s (only role actor serves, "
                                     "as acl/actor/serve allows)", peer->role, header->svc);
        lh_broker_send_bye (self, peer->rid, header, LH_ST_FORBIDDEN, "forbidden", reason);
        free (reason);
        lh_broker_peer_mark_dead (self, peer);
        return;
    }
    if (s_refuse_second_instance (self, peer, msg))
        return;
    service_t *service = s_service_require (self, header->svc);
    service->offered = true;
    if (service->nworkers == 0 || (service->nworkers == 1 && peer->service == service)) {
        //  The first worker says whether the service is single-instance
        bool solo = (header->has & LH_H_SOLO) != 0;
        snprintf (service->solo, sizeof service->solo, "%s", solo? header->solo: "");
        snprintf (service->holder, sizeof service->holder, "%s", solo? peer->src: "");
    }
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
    ||  !lh_broker_name_ok (header->svc) || !lh_broker_name_ok (header->op)) {
        lh_broker_reject_request (self, msg, NULL, LH_ST_BAD_REQUEST, "bad_request",
                          "REQ needs svc and op, names of 1..64 [A-Za-z0-9_.:-]", 0);
        return;
    }
    if (!lh_broker_may_call (self, peer, header->svc, header->op)) {
        bool admin = lh_acl_admin_op (header->svc, header->op);
        if (admin)
            self->refused_admin++;
        else
            self->refused_call++;
        char *reason = admin
            ? zsys_sprintf ("role %s may not call broker.%s: broker admin ops need role admin",
                            peer->role, header->op)
            : zsys_sprintf ("role %s may not call %s.%s (acl/%s/call)",
                            peer->role, header->svc, header->op, peer->role);
        lh_broker_reject_request (self, msg, NULL, LH_ST_FORBIDDEN, "forbidden", reason, 0);
        free (reason);
        return;
    }
    bool queue = (header->has & LH_H_Q) && header->q;
    service_t *service = (service_t *) zhashx_lookup (self->services, header->svc);
    if (!service) {
        if (!queue && !s_in_grace (self)) {
            lh_broker_reject_request (self, msg, NULL, LH_ST_NOT_FOUND, "no_such_service",
                              "no worker has ever offered this service", 0);
            return;
        }
        service = s_service_require (self, header->svc);
    }
    service->requests++;
    if (service->builtin) {
        lh_broker_serve_builtin (self, peer, msg, service);
        return;
    }
    if (service->nworkers > 0 && !s_service_accepts (service, header->op)) {
        lh_broker_reject_request (self, msg, service, LH_ST_NOT_FOUND, "no_such_op",
                          "no worker of this service offers this op", 0);
        return;
    }
    if (service->nworkers == 0 && !queue && !(s_in_grace (self) && !service->offered)) {
        lh_broker_reject_request (self, msg, service, LH_ST_UNAVAILABLE, "no_worker",
                          "no worker of this service is connected", self->retry_after_ms);
        return;
    }
    uint64_t dl = (header->has & LH_H_DL)? header->dl: S_DEFAULT_DL;
    if (dl > S_DL_MAX)
        dl = S_DL_MAX;
    if (dl == 0) {
        lh_broker_reject_request (self, msg, service, LH_ST_TIMEOUT, "deadline",
                          "the request's deadline passed before it was served", 0);
        return;
    }
    peer_t *worker = s_list_empty (&service->queue)
                   ? s_service_find_worker (service, header->op): NULL;
    size_t body_size = msg->body? zframe_size (msg->body): 0;
    if (!worker
    &&  (service->queued >= self->queue_max
    ||   service->queued_bytes + body_size > self->queue_bytes)) {
        lh_broker_reject_request (self, msg, service, LH_ST_TOO_MANY, "queue_full",
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
                    lh_broker_peer_mark_dead (self, subscriber);
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
//  A PUB or SUB the ACL refuses: never routed nor tapped; answered with a
//  REP 403 whose cid is its id (when it has one), so a sender that waits
//  for a word learns why. list names the ACL list ("publish").

static void
s_refuse_event (self_t *self, peer_t *peer, lh_msg_t *msg, const char *list)
{
    lh_header_t *header = &msg->header;
    const char *service = peer->service? peer->service->name: NULL;
    char *reason = zsys_sprintf ("role %s%s%s may not %s %s'%s' (acl/%s/%s)",
                                 peer->role, service? " serving ": "", service? service: "",
                                 list, streq (list, "subscribe")? "to ": "",
                                 header->topic, peer->role, list);
    lh_debug ("broker", NULL, "%s: %s", peer->src, reason);
    if (header->has & LH_H_ID) {
        lh_header_t *out = &self->out;
        lh_header_init (out, LH_T_REP);
        out->has |= LH_H_T | LH_H_CID | LH_H_ST;
        out->cid = header->id;
        out->st = LH_ST_FORBIDDEN;
        lh_header_set_str (out, LH_H_SRC, "broker");
        int size = s_encode_out (self);
        zframe_t *body = lh_error_body (LH_ST_FORBIDDEN, "forbidden", reason, 0);
        if (size < 0
        ||  s_send_encoded (self, msg->routing, self->hbuf, (size_t) size, &body, false) == -1)
            zframe_destroy (&body);
        else
            s_peer_sent (self, peer);
    }
    free (reason);
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
    if (!lh_acl_may_publish (self->acl, peer->role,
                             peer->service? peer->service->name: NULL, header->topic)) {
        self->refused_publish++;
        s_refuse_event (self, peer, msg, "publish");
        return;
    }
    lh_header_t *out = &self->out;
    lh_header_init (out, LH_T_PUB);
    out->has |= LH_H_T | LH_H_BSEQ | LH_H_BRX;
    lh_header_set_str (out, LH_H_TOPIC, header->topic);
    lh_header_set_str (out, LH_H_SRC, peer->src);
    //  The publisher's trace context, as given (a REQ's tr and ps are
    //  forwarded the same way)
    if (header->has & LH_H_TR)
        lh_header_set_str (out, LH_H_TR, header->tr);
    if (header->has & LH_H_PS)
        lh_header_set_str (out, LH_H_PS, header->ps);
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
                lh_broker_peer_mark_dead (self, subscriber);
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
//  SUB: add a topic prefix ("" = every topic), as the ACL allows

static void
s_subscribe (self_t *self, peer_t *peer, lh_msg_t *msg)
{
    lh_header_t *header = &msg->header;
    if (!(header->has & LH_H_TOPIC)) {
        self->dropped_malformed++;
        return;
    }
    if (!lh_acl_may_subscribe (self->acl, peer->role,
                               peer->service? peer->service->name: NULL, header->topic)) {
        self->refused_subscribe++;
        s_refuse_event (self, peer, msg, "subscribe");
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
        if (header->t != LH_T_BYE && lh_broker_sender_revoked (self, msg, &uid)) {
            if (peer)
                s_forget_peer (self, peer);
            lh_broker_refuse_revoked (self, NULL, msg, uid);
        }
        else
        if (header->t == LH_T_HELLO) {
            if (peer)
                s_forget_peer (self, peer);
            s_accept_peer (self, msg);
        }
        else
        if (header->t != LH_T_BYE)
            lh_broker_send_bye (self, msg->routing, header, LH_ST_BAD_REQUEST, "hello_first",
                        "say HELLO first (the broker does not know this connection)");
        return;
    }
    if (peer->secure && !lh_broker_key_valid (self, peer)) {
        lh_broker_refuse_revoked (self, peer, msg, peer->uid);
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
            lh_broker_peer_mark_dead (self, peer);
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
        self->now = lh_broker_now_ms ();
        self->now_us = lh_broker_wall_us ();
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

int
lh_broker_parse_setting (const char *value, uint64_t min, uint64_t max, uint64_t *result)
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
    int rc = lh_broker_configure_security (self, key, value);
    if (rc != 1)
        return rc;
    if (streq (key, "name")) {
        if (!lh_broker_name_ok (value))
            return -1;
        snprintf (self->name, sizeof self->name, "%s", value);
        return 0;
    }
    if (streq (key, "restart_grace")) {
        if (streq (value, "-1"))
            self->restart_grace = -1;
        else
        if (lh_broker_parse_setting (value, 0, 3600000, &number) == 0)
            self->restart_grace = (int64_t) number;
        else
            return -1;
        return 0;
    }
    if (streq (key, "hb_ivl") && lh_broker_parse_setting (value, 10, 3600000, &number) == 0)
        self->hb_ivl = (uint32_t) number;
    else
    if (streq (key, "hb_live") && lh_broker_parse_setting (value, 1, 1000, &number) == 0)
        self->hb_live = (uint32_t) number;
    else
    if (streq (key, "max_msg") && lh_broker_parse_setting (value, 1024, 1ULL << 32, &number) == 0)
        self->max_msg = number;
    else
    if (streq (key, "queue_max") && lh_broker_parse_setting (value, 0, 100000000, &number) == 0)
        self->queue_max = (size_t) number;
    else
    if (streq (key, "queue_bytes") && lh_broker_parse_setting (value, 0, 1ULL << 40, &number) == 0)
        self->queue_bytes = number;
    else
    if (streq (key, "retry_after_ms") && lh_broker_parse_setting (value, 1, 3600000, &number) == 0)
        self->retry_after_ms = (uint32_t) number;
    else
    if (streq (key, "sub_queue") && lh_broker_parse_setting (value, 1, 10000000, &number) == 0)
        self->sub_queue = (size_t) number;
    else
    if (streq (key, "tap_hwm") && lh_broker_parse_setting (value, 0, 10000000, &number) == 0)
        self->tap_hwm = (int) number;
    else
    if (streq (key, "max_attempts") && lh_broker_parse_setting (value, 1, 100, &number) == 0)
        self->max_attempts = (uint32_t) number;
    else
        return -1;
    return 0;
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
            self->next_tick = lh_broker_now_ms () + s_tick_ivl (self);
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
            endpoint = streq (command, "BIND")? lh_broker_bind_router (self, first, second, &error)
                                              : lh_broker_bind_tap (self, first, &error);
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
        if (first && lh_broker_unbind_router (self, first, &error) == 0)
            zsock_send (self->pipe, "ss", "0", first);
        else
            zsock_send (self->pipe, "ss", "-1", error? error: "no endpoint");
        zstr_free (&error);
    }
    else
    if (streq (command, "RELOAD")) {
        self->now = lh_broker_now_ms ();
        self->now_us = lh_broker_wall_us ();
        lh_broker_reload_allow (self, true);
        char detail [32];
        snprintf (detail, sizeof detail, "%zu", self->allow? lh_allow_size (self->allow): 0);
        zsock_send (self->pipe, "ss", "0", detail);
    }
    else
    if (streq (command, "GRANT")) {
        char *grant = first? lh_broker_grant (self, first): NULL;
        zsock_send (self->pipe, "ss", grant? "0": "-1", grant? grant: "no such role");
        free (grant);
    }
    else
    if (streq (command, "STATS")) {
        self->now = lh_broker_now_ms ();
        json_t *stats = lh_broker_stats_json (self, false);
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
    snprintf (self->name, sizeof self->name, "%s", name && lh_broker_name_ok (name)? name: "lakehouse");
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
    self->acl = lh_acl_new ();
    self->grants = zhashx_new ();
    assert (self->grants);
    zhashx_set_destructor (self->grants, (zhashx_destructor_fn *) zstr_free);
    snprintf (self->inproc_role, sizeof self->inproc_role, "actor");
    snprintf (self->plain_role, sizeof self->plain_role, "client");

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

    self->now = lh_broker_now_ms ();
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
    lh_acl_destroy (&self->acl);
    zhashx_destroy (&self->grants);
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
        self->now = lh_broker_now_ms ();
        self->now_us = lh_broker_wall_us ();
        s_expire_requests (self);
        if (self->now >= self->next_tick) {
            s_tick (self);
            self->side_dirty = true;
        }
        if (self->allow && self->now >= self->next_reload)
            lh_broker_reload_allow (self, false);
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
                lh_broker_handle_zap (self);
            for (int index = 0; index < 2; index++)
                if (self->monitor [index])
                    lh_broker_handle_monitor (self, self->monitor [index]);
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
        self->now = lh_broker_now_ms ();
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

