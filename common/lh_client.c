/*  =========================================================================
    lh_client - the bus client: call a service, synchronously or not

    One DEALER to the broker. Every message we send carries a fresh id from
    one monotonic counter; a request keeps its id for life, also when it is
    resent after the broker said BYE "hello_first" (it was never dispatched,
    so the resend is safe). Requests in flight are kept in a table until
    their REP arrives or their deadline passes; a REP or PART whose cid is
    not in the table (it answers a call that already gave up) is dropped
    silently.

    Liveness: we send HB when we have sent nothing for hb_ivl while we are
    waiting; a broker silent for hb_ivl * hb_live while we wait gets a new
    socket and a new HELLO (inproc peers never reconnect by themselves).
    =========================================================================
*/

#include "lh_client.h"
#include "lh_body.h"
#include "lh_log.h"
#include "lh_trace.h"
#include <sodium.h>

#define S_HELLO_WAIT_MS     5000        //  lh_client_new waits this for WELCOME
#define S_DEFAULT_DL        5000        //  deadline when the caller gives none
#define S_GRACE_MS          200         //  wait past dl for the broker's 504
#define S_EXPIRY_CHECK_MS   10          //  how often local deadlines are checked
#define S_INBOX_MAX         10000       //  replies held for lh_client_recv
#define S_HB_IVL            1000        //  heartbeat before WELCOME says
#define S_HB_LIVE           3           //  liveness before WELCOME says
#define S_MAX_MSG           (16 * 1024 * 1024)
#define S_RCVHWM            10000       //  messages queued from the broker

//  A request in flight
typedef struct {
    lh_header_t header;                 //  the REQ as sent, for a resend
    zframe_t *body;                     //  copy of the body, or NULL
    int64_t expires;                    //  monotonic ms: dl + grace
    bool resent;                        //  already resent after a BYE
    uint64_t span_start;                //  its call span's start, ns
    char span [LH_SPAN_SIZE + 1];       //  its call span's id (sent as "ps"), or ""
    char parent [LH_SPAN_SIZE + 1];     //  that span's parent (the caller's span)
} s_pending_t;

struct _lh_reply_t {
    lh_header_t header;                 //  decoded (or synthesized) header
    zframe_t *body;                     //  body, or NULL
    zlist_t *parts;                     //  PART bodies before the REP, or NULL
    int decoded;                        //  0 not tried, 1 ok, -1 none/bad
    msgpack_zone zone;                  //  holds the decoded body
    msgpack_object object;              //  decoded body
    char *reason;                       //  error.reason, once looked up
    bool local;                         //  synthesized here, not received
    char span [LH_SPAN_SIZE + 1];       //  the call span of the request, or ""
};

struct _lh_client_t {
    char *endpoint;                     //  broker endpoint (own copy)
    char *server_key;                   //  broker's public key, or NULL
    zcert_t *cert;                      //  our certificate (borrowed), or NULL
    char name [LH_NAME_MAX + 1];        //  name we say in HELLO
    zsock_t *sock;                      //  DEALER to the broker, or NULL
    uint64_t next_id;                   //  last message id used
    uint64_t hello_id;                  //  id of the last HELLO sent
    bool welcomed;                      //  WELCOME seen since that HELLO
    uint32_t refused;                   //  BYE 401/403 status, or 0
    uint32_t hb_ivl;                    //  heartbeat interval, ms
    uint32_t hb_live;                   //  intervals of silence = dead
    uint64_t max_msg;                   //  largest body we accept
    int64_t last_send;                  //  monotonic ms of our last send
    int64_t last_recv;                  //  monotonic ms of the broker's last
    int64_t last_active;                //  monotonic ms we last polled
    int64_t next_expiry_check;          //  monotonic ms of the next deadline scan
    char trace [LH_TRACE_SIZE + 1];     //  trace set by the caller, or ""
    char span [LH_SPAN_SIZE + 1];       //  span the caller's calls are made in, or ""
    char span_service [LH_NAME_MAX + 1];    //  service.name of our call spans
    zhashx_t *pending;                  //  "id" -> s_pending_t
    zlist_t *inbox;                     //  lh_reply_t held for lh_client_recv
    zlist_t *subs;                      //  SUB prefixes, resent after HELLO
    lh_client_idle_fn *idle_fn;         //  called while we wait, or NULL
    void *idle_arg;                     //  its argument
};


//  --------------------------------------------------------------------------
//  Is this a valid bus name: 1..64 bytes of [A-Za-z0-9_.:-]

static bool
s_name_valid (const char *name)
{
    if (!name)
        return false;
    size_t size = strlen (name);
    if (size == 0 || size > LH_NAME_MAX)
        return false;
    for (const char *scan = name; *scan; scan++)
        if (!isalnum ((unsigned char) *scan) && !strchr ("_.:-", *scan))
            return false;
    return true;
}


//  --------------------------------------------------------------------------
//  Create a DEALER connected to the link's endpoint, with CURVE when the
//  link carries a certificate

zsock_t *
lh_link_connect (const lh_link_t *link)
{
    assert (link);
    if (!link->endpoint || !*link->endpoint) {
        lh_error (NULL, NULL, "bus link has no endpoint");
        return NULL;
    }
    //  An in-process certificate (lh_cert_inproc) carries a grant instead
    const char *grant = link->cert? zcert_meta (link->cert, "grant"): NULL;
    if (grant && strncmp (link->endpoint, "inproc://", 9) != 0) {
        lh_error (NULL, NULL, "bus link to %s has an in-process certificate: it works "
                  "only on inproc://", link->endpoint);
        return NULL;
    }
    if (link->cert && !grant && !link->server_key) {
        lh_error (NULL, NULL, "bus link to %s has a certificate but no server key",
                  link->endpoint);
        return NULL;
    }
    zsock_t *sock = zsock_new (ZMQ_DEALER);
    if (!sock) {
        lh_error (NULL, NULL, "cannot create a socket: %s", zmq_strerror (zmq_errno ()));
        return NULL;
    }
    zsock_set_linger (sock, 0);
    //  The broker never blocks on us: what does not fit our queue is dropped.
    //  Room for a whole stream (echo.stream sends up to 10000 PARTs)
    zsock_set_rcvhwm (sock, S_RCVHWM);
    if (grant) {
        //  The broker reads our role from the grant; a random nonce after
        //  it keeps every connection's routing id unique
        uint8_t nonce [8];
        randombytes_buf (nonce, sizeof (nonce));
        char identity [256];
        int size = snprintf (identity, sizeof (identity), "%s.", grant);
        if (size > 0 && (size_t) size + 17 <= sizeof (identity))
            sodium_bin2hex (identity + size, 17, nonce, sizeof (nonce));
        zsock_set_identity (sock, identity);
    }
    else
    if (link->cert) {
        zcert_apply (link->cert, sock);
        zsock_set_curve_serverkey (sock, link->server_key);
    }
    if (zsock_connect (sock, "%s", link->endpoint) == -1) {
        lh_error (NULL, NULL, "cannot connect to %s: %s", link->endpoint,
                  zmq_strerror (zmq_errno ()));
        zsock_destroy (&sock);
        return NULL;
    }
    return sock;
}


//  --------------------------------------------------------------------------
//  64 random bits: a per-thread xorshift128+ seeded once from the system's
//  randomness (libsodium's randombytes costs a getrandom(2) per call, too
//  much for every request; ids need to be unique, not secret)

uint64_t
lh_trace_random (void)
{
    static __thread uint64_t state [2];
    if (state [0] == 0 && state [1] == 0) {
        if (sodium_init () >= 0)
            randombytes_buf (state, sizeof (state));
        else {
            state [0] = (uint64_t) zclock_usecs () ^ ((uint64_t) getpid () << 32);
            state [1] = (uint64_t) (uintptr_t) &state ^ 0x9e3779b97f4a7c15ULL;
        }
        state [1] |= 1;
    }
    uint64_t s1 = state [0];
    const uint64_t s0 = state [1];
    state [0] = s0;
    s1 ^= s1 << 23;
    state [1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return state [1] + s0;
}


//  --------------------------------------------------------------------------
//  Write a fresh random trace id: 32 lowercase hex, never all zero

void
lh_trace_mint (char *trace)
{
    assert (trace);
    static const char hex [] = "0123456789abcdef";
    uint8_t bytes [LH_TRACE_SIZE / 2];
    for (size_t half = 0; half < 2; half++) {
        uint64_t value = lh_trace_random ();
        memcpy (bytes + half * 8, &value, 8);
    }
    bytes [sizeof (bytes) - 1] |= 1;    //  never all zero
    for (size_t index = 0; index < sizeof (bytes); index++) {
        trace [index * 2] = hex [bytes [index] >> 4];
        trace [index * 2 + 1] = hex [bytes [index] & 15];
    }
    trace [LH_TRACE_SIZE] = 0;
}


//  --------------------------------------------------------------------------
//  Replies: create from a received message (frames taken) or synthesize

static lh_reply_t *
s_reply_new (lh_msg_t *msg)
{
    lh_reply_t *self = (lh_reply_t *) zmalloc (sizeof (lh_reply_t));
    assert (self);
    self->header = msg->header;
    self->body = msg->body;
    msg->body = NULL;
    return self;
}

static lh_reply_t *
s_reply_synth (uint64_t cid, uint32_t status, const char *kind, const char *reason)
{
    lh_reply_t *self = (lh_reply_t *) zmalloc (sizeof (lh_reply_t));
    assert (self);
    lh_header_init (&self->header, LH_T_REP);
    self->header.cid = cid;
    self->header.st = status;
    self->header.has |= LH_H_CID | LH_H_ST;
    self->body = lh_error_body (status, kind, reason, 0);
    self->local = true;
    return self;
}


//  --------------------------------------------------------------------------
//  The id of the call span of the request this reply answers, or ""

const char *
lh_reply_span (lh_reply_t *self)
{
    assert (self);
    return self->span;
}


//  --------------------------------------------------------------------------
//  A reply made here, not received: status and the SPEC error body

lh_reply_t *
lh_reply_new_error (uint32_t status, const char *kind, const char *reason)
{
    return s_reply_synth (0, status, kind, reason);
}


//  --------------------------------------------------------------------------
//  Pending requests

static void
s_pending_destroy (void **item_p)
{
    s_pending_t *self = (s_pending_t *) *item_p;
    if (self) {
        zframe_destroy (&self->body);
        free (self);
        *item_p = NULL;
    }
}

static s_pending_t *
s_pending_lookup (lh_client_t *self, uint64_t id)
{
    return (s_pending_t *) zhashx_lookup (self->pending, &id);
}

//  --------------------------------------------------------------------------
//  End a request's call span (when it has one) with its reply's status

static void
s_call_span_end (lh_client_t *self, s_pending_t *pending, lh_reply_t *reply)
{
    lh_span_t span;
    char name [2 * LH_NAME_MAX + 2];
    snprintf (name, sizeof (name), "%s.%s", pending->header.svc, pending->header.op);
    lh_span_start (&span, pending->header.tr, pending->parent, self->span_service, name,
                   LH_SPAN_CLIENT);
    if (!span.active)
        return;
    memcpy (span.id, pending->span, sizeof (span.id));
    span.start_ns = pending->span_start;
    lh_span_attr_str (&span, "rpc.system", "lakehouse");
    lh_span_attr_str (&span, "rpc.service", pending->header.svc);
    lh_span_attr_str (&span, "rpc.method", pending->header.op);
    if (reply && reply->local)
        lh_span_attr_str (&span, "lh.reply", "synthesized");
    lh_span_end (&span, reply? reply->header.st: 0);
}

//  A request's answer is in (reply, or NULL when it is given up): forget
//  it, ending its call span

static void
s_pending_remove (lh_client_t *self, uint64_t id, lh_reply_t *reply)
{
    s_pending_t *pending = lh_trace_on ()? s_pending_lookup (self, id): NULL;
    if (pending && *pending->span) {
        s_call_span_end (self, pending, reply);
        if (reply)
            memcpy (reply->span, pending->span, sizeof (reply->span));
    }
    zhashx_delete (self->pending, &id);
}

//  Pending requests are keyed by their id (a pointer to the uint64 inside
//  the pending item: no key copies, no formatting): lh_id_hash, lh_id_compare


//  --------------------------------------------------------------------------
//  Send a control message (HELLO, HB, SUB, PUB, BYE) with a fresh id.
//  The body is taken on success. Returns 0 or -1.

static int
s_send_control (lh_client_t *self, lh_header_t *header, zframe_t **body_p)
{
    if (!self->sock)
        return -1;
    header->id = ++self->next_id;
    header->has |= LH_H_ID;
    if (lh_msg_send (self->sock, NULL, header, body_p) == -1)
        return -1;
    self->last_send = zclock_mono ();
    return 0;
}


//  --------------------------------------------------------------------------
//  Say HELLO on the current socket, then SUB again for every prefix (the
//  broker may be a new one that knows nothing of us)

static int
s_hello (lh_client_t *self)
{
    lh_header_t header;
    lh_header_init (&header, LH_T_HELLO);
    lh_header_set_str (&header, LH_H_NAME, self->name);
    if (s_send_control (self, &header, NULL))
        return -1;
    self->hello_id = header.id;
    self->welcomed = false;
    const char *prefix = (const char *) zlist_first (self->subs);
    while (prefix) {
        lh_header_init (&header, LH_T_SUB);
        lh_header_set_str (&header, LH_H_TOPIC, prefix);
        s_send_control (self, &header, NULL);
        prefix = (const char *) zlist_next (self->subs);
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Drop the socket and connect a new one, then say HELLO. The silence clock
//  restarts: the broker gets a whole liveness window to answer.

static int
s_connect (lh_client_t *self)
{
    zsock_destroy (&self->sock);
    lh_link_t link = { self->endpoint, self->server_key, self->cert };
    self->sock = lh_link_connect (&link);
    self->last_recv = zclock_mono ();
    self->welcomed = false;
    if (!self->sock)
        return -1;
    return s_hello (self);
}


//  --------------------------------------------------------------------------
//  Send (or resend) a pending request. A request that cannot be queued on
//  the socket (no peer: an inproc broker went away) was never sent, so we
//  reconnect and try once more. Returns 0 or -1.

static int
s_pending_send (lh_client_t *self, s_pending_t *pending)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (attempt && s_connect (self))
            return -1;
        if (!self->sock)
            continue;
        zframe_t *body = pending->body? zframe_dup (pending->body): NULL;
        if (lh_msg_send (self->sock, NULL, &pending->header, &body) == 0) {
            self->last_send = zclock_mono ();
            return 0;
        }
        zframe_destroy (&body);
    }
    return -1;
}


//  --------------------------------------------------------------------------
//  Handle a BYE from the broker. "hello_first" means it does not know us:
//  say HELLO again (once per rejection of a message sent after our last
//  HELLO) and resend the request it names, at most once per request.
//  401/403 mean we are refused: remembered so calls fail at once.

static void
s_on_bye (lh_client_t *self, lh_reply_t *bye)
{
    const lh_header_t *header = &bye->header;
    uint32_t status = (header->has & LH_H_ST)? header->st: 0;
    if (status == LH_ST_UNAUTHORIZED || status == LH_ST_FORBIDDEN) {
        const char *reason = lh_reply_reason (bye);
        lh_warn (self->name, NULL, "broker refused us: %u %s", status,
                 reason? reason: "");
        self->refused = status;
        return;
    }
    bool has_cid = (header->has & LH_H_CID) != 0;
    if (status != LH_ST_BAD_REQUEST) {
        //  The broker is leaving; the next message finds the new one
        lh_debug (self->name, NULL, "broker said BYE (%u)", status);
        self->welcomed = false;
        return;
    }
    const msgpack_object *kind = lh_obj_get (lh_obj_get (lh_reply_object (bye), "error"), "kind");
    if (kind && !(kind->type == MSGPACK_OBJECT_STR && kind->via.str.size == 11
               && memcmp (kind->via.str.ptr, "hello_first", 11) == 0)) {
        const char *reason = lh_reply_reason (bye);
        lh_warn (self->name, NULL, "broker said BYE 400: %s", reason? reason: "");
        return;
    }
    if (has_cid? header->cid > self->hello_id: self->welcomed) {
        lh_debug (self->name, NULL, "broker does not know us: HELLO again");
        s_hello (self);
    }
    s_pending_t *pending = has_cid? s_pending_lookup (self, header->cid): NULL;
    if (pending && !pending->resent) {
        pending->resent = true;
        s_pending_send (self, pending);
    }
}


//  --------------------------------------------------------------------------
//  Handle a message from the broker: control messages here; a REP or PART
//  someone waits for, or a PUB, becomes *reply_p (returns 1). Returns 0
//  when there is nothing for the caller.

static int
s_on_msg (lh_client_t *self, lh_msg_t *msg, lh_reply_t **reply_p)
{
    int result = 0;
    self->last_recv = zclock_mono ();
    lh_header_t *header = &msg->header;
    if (header->t == LH_T_WELCOME) {
        lh_header_welcome (header, &self->hb_ivl, &self->hb_live, &self->max_msg);
        self->welcomed = true;
        self->refused = 0;
    }
    else
    if (header->t == LH_T_BYE) {
        lh_reply_t *bye = s_reply_new (msg);
        s_on_bye (self, bye);
        lh_reply_destroy (&bye);
    }
    else
    if (header->t == LH_T_REP || header->t == LH_T_PART) {
        if ((header->has & LH_H_CID)
        &&  s_pending_lookup (self, header->cid)) {
            *reply_p = s_reply_new (msg);
            result = 1;
        }
        else
        if (header->t == LH_T_REP && (header->has & LH_H_ST) && header->st == LH_ST_FORBIDDEN) {
            //  The broker refused a PUB or SUB of ours (the ACL)
            lh_reply_t *refusal = s_reply_new (msg);
            const char *reason = lh_reply_reason (refusal);
            lh_warn (self->name, NULL, "the broker refused our message %" PRIu64 ": %s",
                     header->cid, reason? reason: "403");
            lh_reply_destroy (&refusal);
        }
        else
            lh_debug (self->name, NULL, "dropped a reply to %" PRIu64
                      " (nobody waits for it)", header->cid);
    }
    else
    if (header->t == LH_T_PUB) {
        *reply_p = s_reply_new (msg);
        result = 1;
    }
    return result;
}


//  --------------------------------------------------------------------------
//  Wait up to timeout_ms for one message from the broker and handle the
//  protocol part of it. Heartbeats and silence are handled here too.
//  Returns 1 and a reply for a REP/PART of a pending request or a PUB,
//  0 when nothing for the caller arrived, -1 if interrupted.

static int
s_poll (lh_client_t *self, int64_t timeout_ms, lh_reply_t **reply_p)
{
    *reply_p = NULL;
    int64_t now = zclock_mono ();
    //  A client that was not polled for a while gives the broker a fresh
    //  window: its silence was ours
    if (now - self->last_active > self->hb_ivl)
        self->last_recv = now;
    int64_t live_ms = (int64_t) self->hb_ivl * self->hb_live;

    if (!self->sock && s_connect (self)) {
        zclock_sleep ((int) (timeout_ms < 100? timeout_ms: 100));
        self->last_active = zclock_mono ();
        return 0;
    }
    //  Never sleep past our next heartbeat or the silence limit
    int64_t wake = now + timeout_ms;
    if (wake > self->last_send + self->hb_ivl)
        wake = self->last_send + self->hb_ivl;
    if (wake > self->last_recv + live_ms)
        wake = self->last_recv + live_ms;
    long wait = wake > now? (long) (wake - now): 0;

    //  A message already queued needs no poll(2)
    zmq_pollitem_t items [] = { { zsock_resolve (self->sock), 0, ZMQ_POLLIN, 0 } };
    int rc;
    if (zsock_events (self->sock) & ZMQ_POLLIN) {
        items [0].revents = ZMQ_POLLIN;
        rc = 1;
    }
    else
        rc = zmq_poll (items, 1, wait);
    if (rc == -1 && zmq_errno () == EINTR && zsys_interrupted)
        return -1;
    int result = 0;
    if (rc > 0 && (items [0].revents & ZMQ_POLLIN)) {
        lh_msg_t msg;
        rc = lh_msg_recv (&msg, self->sock, false, self->max_msg);
        if (rc == 0) {
            result = s_on_msg (self, &msg, reply_p);
            lh_msg_reset (&msg);
        }
        else
        if (rc == -2)
            lh_debug (self->name, NULL, "dropped a malformed message from the broker");
    }
    if (self->idle_fn)
        self->idle_fn (self->idle_arg);
    now = zclock_mono ();
    self->last_active = now;
    if (now - self->last_recv >= live_ms) {
        lh_debug (self->name, NULL, "broker silent for %" PRId64 " ms: reconnecting",
                  now - self->last_recv);
        s_connect (self);
    }
    else
    if (now - self->last_send >= self->hb_ivl) {
        lh_header_t header;
        lh_header_init (&header, LH_T_HB);
        s_send_control (self, &header, NULL);
    }
    return result;
}


//  --------------------------------------------------------------------------
//  Connect to the broker and say HELLO. Waits up to 5 s for WELCOME.

lh_client_t *
lh_client_new (const lh_link_t *link, const char *name)
{
    assert (link);
    lh_client_t *self = (lh_client_t *) zmalloc (sizeof (lh_client_t));
    assert (self);
    self->endpoint = strdup (link->endpoint? link->endpoint: "");
    self->server_key = link->server_key? strdup (link->server_key): NULL;
    self->cert = link->cert;
    //  With a certificate, the broker only accepts the name it carries
    const char *cert_name = link->cert? zcert_meta (link->cert, "name"): NULL;
    if (cert_name && s_name_valid (cert_name))
        name = cert_name;
    snprintf (self->name, sizeof (self->name), "%s", s_name_valid (name)? name: "client");
    self->hb_ivl = S_HB_IVL;
    self->hb_live = S_HB_LIVE;
    self->max_msg = S_MAX_MSG;
    self->pending = zhashx_new ();
    zhashx_set_destructor (self->pending, s_pending_destroy);
    zhashx_set_key_hasher (self->pending, lh_id_hash);
    zhashx_set_key_comparator (self->pending, lh_id_compare);
    zhashx_set_key_duplicator (self->pending, NULL);
    zhashx_set_key_destructor (self->pending, NULL);
    self->inbox = zlist_new ();
    self->subs = zlist_new ();
    zlist_autofree (self->subs);
    self->last_active = self->last_send = self->last_recv = zclock_mono ();

    if (s_connect (self) == 0) {
        int64_t until = zclock_mono () + S_HELLO_WAIT_MS;
        while (!self->welcomed && !self->refused && !zsys_interrupted) {
            int64_t left = until - zclock_mono ();
            if (left <= 0)
                break;
            lh_reply_t *reply;
            if (s_poll (self, left, &reply) == 1)
                lh_reply_destroy (&reply);
        }
    }
    if (!self->welcomed) {
        lh_error (self->name, NULL, "no WELCOME from the broker at %s", self->endpoint);
        lh_client_destroy (&self);
    }
    return self;
}


//  --------------------------------------------------------------------------
//  Destroy a client (says BYE); nulls the caller's pointer

void
lh_client_destroy (lh_client_t **self_p)
{
    assert (self_p);
    lh_client_t *self = *self_p;
    if (self) {
        if (self->sock && self->welcomed) {
            lh_header_t header;
            lh_header_init (&header, LH_T_BYE);
            zsock_set_linger (self->sock, 100);
            s_send_control (self, &header, NULL);
        }
        zsock_destroy (&self->sock);
        zhashx_destroy (&self->pending);
        lh_reply_t *reply;
        while ((reply = (lh_reply_t *) zlist_pop (self->inbox)))
            lh_reply_destroy (&reply);
        zlist_destroy (&self->inbox);
        zlist_destroy (&self->subs);
        free (self->endpoint);
        free (self->server_key);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Set the trace id sent with every following request (NULL: mint per call)

void
lh_client_set_trace (lh_client_t *self, const char *trace)
{
    assert (self);
    snprintf (self->trace, sizeof (self->trace), "%s", trace? trace: "");
}


//  --------------------------------------------------------------------------
//  Set the span following requests are made in (NULL: none) and the
//  service.name their call spans carry (NULL: unchanged)

void
lh_client_set_span (lh_client_t *self, const char *span, const char *service)
{
    assert (self);
    if (span && lh_span_id_valid (span, LH_SPAN_SIZE))
        memcpy (self->span, span, sizeof (self->span));
    else
        self->span [0] = 0;
    if (service)
        snprintf (self->span_service, sizeof (self->span_service), "%s", service);
}


//  --------------------------------------------------------------------------
//  Set (or clear) the function called while the client waits

void
lh_client_set_idle (lh_client_t *self, lh_client_idle_fn *idle_fn, void *arg)
{
    assert (self);
    self->idle_fn = idle_fn;
    self->idle_arg = arg;
}


//  --------------------------------------------------------------------------
//  Build and send a REQ, keeping it in the pending table. Returns the new
//  request's id, or 0 with *error_p naming a local refusal.

static uint64_t
s_request (lh_client_t *self, const char *svc, const char *op,
           const void *body, size_t size, const lh_call_opts_t *opts,
           const char **error_p)
{
    *error_p = NULL;
    if (!s_name_valid (svc) || !s_name_valid (op)) {
        *error_p = "service and op names are 1..64 bytes of [A-Za-z0-9_.:-]";
        return 0;
    }
    if (opts && opts->idem && strlen (opts->idem) > LH_IDEM_MAX) {
        *error_p = "idempotency key longer than 128 bytes";
        return 0;
    }
    if (size > self->max_msg) {
        *error_p = "request body larger than the broker's max_msg";
        return 0;
    }
    uint32_t timeout = opts && opts->timeout_ms? opts->timeout_ms: S_DEFAULT_DL;
    s_pending_t *pending = (s_pending_t *) zmalloc (sizeof (s_pending_t));
    assert (pending);
    lh_header_t *header = &pending->header;
    lh_header_init (header, LH_T_REQ);
    header->id = ++self->next_id;
    header->dl = timeout;
    header->has |= LH_H_ID | LH_H_DL;
    lh_header_set_str (header, LH_H_SVC, svc);
    lh_header_set_str (header, LH_H_OP, op);
    if (opts && opts->idem && *opts->idem)
        lh_header_set_str (header, LH_H_IDEM, opts->idem);
    if (opts && opts->queue) {
        header->q = true;
        header->has |= LH_H_Q;
    }
    const char *trace = opts && opts->trace && *opts->trace? opts->trace: self->trace;
    if (*trace && strlen (trace) == LH_TRACE_SIZE)
        lh_header_set_str (header, LH_H_TR, trace);
    else {
        char minted [LH_TRACE_SIZE + 1];
        lh_trace_mint (minted);
        lh_header_set_str (header, LH_H_TR, minted);
    }
    //  A call made inside a traced span (a handler's) gets a span of its
    //  own, the parent of the server's; else the caller's span, if given
    if (*self->span && lh_trace_on () && streq (header->tr, self->trace)) {
        lh_span_mint (pending->span);
        memcpy (pending->parent, self->span, sizeof (pending->parent));
        pending->span_start = lh_trace_now_ns ();
        lh_header_set_str (header, LH_H_PS, pending->span);
    }
    else
    if (opts && opts->span && lh_span_id_valid (opts->span, LH_SPAN_SIZE))
        lh_header_set_str (header, LH_H_PS, opts->span);
    if (body && size)
        pending->body = zframe_new (body, size);
    pending->expires = zclock_mono () + timeout + S_GRACE_MS;

    zhashx_insert (self->pending, &pending->header.id, pending);
    //  A send that fails is not an error yet: the silence handling
    //  reconnects and the deadline answers for it
    if (s_pending_send (self, pending))
        lh_debug (self->name, header->tr, "could not send %s.%s yet", svc, op);
    return header->id;
}


//  --------------------------------------------------------------------------
//  Synthesize the answer for a request whose deadline passed without a REP:
//  503 if the broker was silent past its liveness window, else 504

static lh_reply_t *
s_expired (lh_client_t *self, uint64_t id)
{
    int64_t live_ms = (int64_t) self->hb_ivl * self->hb_live;
    bool unreachable = !self->welcomed
                    || zclock_mono () - self->last_recv >= live_ms;
    lh_reply_t *reply = unreachable
        ? s_reply_synth (id, LH_ST_UNAVAILABLE, "broker_unreachable",
                         "the broker could not be reached before the deadline")
        : s_reply_synth (id, LH_ST_TIMEOUT, "deadline", "no reply before the deadline");
    s_pending_remove (self, id, reply);
    return reply;
}


//  --------------------------------------------------------------------------
//  Hold a reply for lh_client_recv, dropping the oldest past the bound. A
//  held REP's request is no longer pending: its answer has arrived, and a
//  pending entry left behind would later expire into a false 504.

static void
s_inbox_add (lh_client_t *self, lh_reply_t *reply)
{
    if (reply->header.t == LH_T_REP)
        s_pending_remove (self, reply->header.cid, reply);
    if (zlist_size (self->inbox) >= S_INBOX_MAX) {
        lh_reply_t *oldest = (lh_reply_t *) zlist_pop (self->inbox);
        lh_warn (self->name, NULL, "inbox full: dropped a held reply");
        lh_reply_destroy (&oldest);
    }
    zlist_append (self->inbox, reply);
}


//  --------------------------------------------------------------------------
//  Call svc.op and wait for the final REP (PARTs kept in the reply).
//  Returns 0 when a reply arrived, -1 with a synthesized one if none did.

int
lh_client_call (lh_client_t *self, const char *svc, const char *op,
                const void *body, size_t size, const lh_call_opts_t *opts,
                lh_reply_t **reply_p)
{
    assert (self);
    assert (reply_p);
    *reply_p = NULL;
    if (self->refused) {
        *reply_p = s_reply_synth (0, self->refused, NULL, "the broker refused this client");
        return -1;
    }
    const char *error;
    uint64_t id = s_request (self, svc, op, body, size, opts, &error);
    if (!id) {
        *reply_p = s_reply_synth (0, LH_ST_BAD_REQUEST, NULL, error);
        return -1;
    }
    return lh_client_wait (self, id, reply_p);
}


//  --------------------------------------------------------------------------
//  Wait for the final REP of request id (sent with lh_client_send), its
//  PARTs kept in the reply; anything else that arrives is held for
//  lh_client_recv. Returns 0 with the reply, -1 with a synthesized one.

int
lh_client_wait (lh_client_t *self, uint64_t id, lh_reply_t **reply_p)
{
    assert (self);
    assert (reply_p);
    *reply_p = NULL;
    zlist_t *parts = NULL;
    //  Its PARTs, even its REP, may be held already (they came while
    //  another call waited)
    bool again = true;
    while (again && !*reply_p) {
        lh_reply_t *held = (lh_reply_t *) zlist_first (self->inbox);
        while (held && (held->header.t == LH_T_PUB || held->header.cid != id))
            held = (lh_reply_t *) zlist_next (self->inbox);
        again = held != NULL;
        if (!held)
            break;
        zlist_remove (self->inbox, held);
        if (held->header.t == LH_T_REP) {
            *reply_p = held;            //  its request left pending when held
            break;
        }
        if (!parts)
            parts = zlist_new ();
        zlist_append (parts, held->body? held->body: zframe_new_empty ());
        held->body = NULL;
        lh_reply_destroy (&held);
    }
    while (!*reply_p) {
        s_pending_t *pending = s_pending_lookup (self, id);
        if (!pending) {
            *reply_p = s_reply_synth (id, LH_ST_BAD_REQUEST, NULL,
                                      "no such request is waiting for its reply");
            break;
        }
        int64_t left = pending->expires - zclock_mono ();
        if (left <= 0 || self->refused || zsys_interrupted) {
            if (self->refused) {
                *reply_p = s_reply_synth (id, self->refused, NULL,
                                          "the broker refused this client");
                s_pending_remove (self, id, *reply_p);
            }
            else
                *reply_p = s_expired (self, id);
            break;
        }
        lh_reply_t *reply;
        int rc = s_poll (self, left, &reply);
        if (rc != 1)
            continue;
        if (reply->header.t == LH_T_PUB || reply->header.cid != id) {
            s_inbox_add (self, reply);
            continue;
        }
        if (reply->header.t == LH_T_PART) {
            if (!parts)
                parts = zlist_new ();
            zlist_append (parts, reply->body? reply->body: zframe_new_empty ());
            reply->body = NULL;
            lh_reply_destroy (&reply);
            continue;
        }
        s_pending_remove (self, id, reply);
        *reply_p = reply;
    }
    assert (!(*reply_p)->parts);
    (*reply_p)->parts = parts;
    return (*reply_p)->local? -1: 0;
}


//  --------------------------------------------------------------------------
//  Send every call at once, then wait for all their final REPs. Returns 0
//  if each had a reply from the bus, -1 if any was synthesized.

int
lh_client_call_all (lh_client_t *self, lh_call_t *calls, size_t count,
                    const lh_call_opts_t *opts)
{
    assert (self);
    assert (calls || count == 0);
    uint64_t *ids = (uint64_t *) calloc (count? count: 1, sizeof (uint64_t));
    zlist_t **parts = (zlist_t **) calloc (count? count: 1, sizeof (zlist_t *));
    assert (ids && parts);
    size_t waiting = 0;
    for (size_t index = 0; index < count; index++) {
        calls [index].reply = NULL;
        if (self->refused) {
            calls [index].reply = s_reply_synth (0, self->refused, NULL,
                                                 "the broker refused this client");
            continue;
        }
        const char *error;
        ids [index] = s_request (self, calls [index].svc, calls [index].op,
                                 calls [index].body, calls [index].size, opts, &error);
        if (ids [index])
            waiting++;
        else
            calls [index].reply = s_reply_synth (0, LH_ST_BAD_REQUEST, NULL, error);
    }
    while (waiting > 0) {
        //  The earliest deadline among those still waiting
        int64_t now = zclock_mono ();
        int64_t left = INT64_MAX;
        for (size_t index = 0; index < count; index++)
            if (ids [index] && !calls [index].reply) {
                s_pending_t *pending = s_pending_lookup (self, ids [index]);
                assert (pending);
                if (pending->expires - now < left)
                    left = pending->expires - now;
            }
        if (left <= 0 || self->refused || zsys_interrupted) {
            for (size_t index = 0; index < count; index++)
                if (ids [index] && !calls [index].reply) {
                    s_pending_t *pending = s_pending_lookup (self, ids [index]);
                    if (!self->refused && !zsys_interrupted && pending->expires > now)
                        continue;
                    if (self->refused) {
                        calls [index].reply = s_reply_synth (ids [index], self->refused, NULL,
                                                             "the broker refused this client");
                        s_pending_remove (self, ids [index], calls [index].reply);
                    }
                    else
                        calls [index].reply = s_expired (self, ids [index]);
                    waiting--;
                }
            continue;
        }
        lh_reply_t *reply;
        if (s_poll (self, left, &reply) != 1)
            continue;
        size_t index = 0;
        if (reply->header.t != LH_T_PUB)
            while (index < count && !(ids [index] == reply->header.cid && !calls [index].reply))
                index++;
        if (reply->header.t == LH_T_PUB || index == count) {
            s_inbox_add (self, reply);
            continue;
        }
        if (reply->header.t == LH_T_PART) {
            if (!parts [index])
                parts [index] = zlist_new ();
            zlist_append (parts [index], reply->body? reply->body: zframe_new_empty ());
            reply->body = NULL;
            lh_reply_destroy (&reply);
            continue;
        }
        s_pending_remove (self, ids [index], reply);
        calls [index].reply = reply;
        waiting--;
    }
    int rc = 0;
    for (size_t index = 0; index < count; index++) {
        calls [index].reply->parts = parts [index];
        if (calls [index].reply->local)
            rc = -1;
    }
    free (ids);
    free (parts);
    return rc;
}


//  --------------------------------------------------------------------------
//  Send a request without waiting; returns its id (> 0), or 0 on failure

uint64_t
lh_client_send (lh_client_t *self, const char *svc, const char *op,
                const void *body, size_t size, const lh_call_opts_t *opts)
{
    assert (self);
    if (self->refused)
        return 0;
    const char *error;
    uint64_t id = s_request (self, svc, op, body, size, opts, &error);
    if (!id)
        lh_warn (self->name, NULL, "request %s.%s refused: %s",
                 svc? svc: "(null)", op? op: "(null)", error);
    return id;
}


//  --------------------------------------------------------------------------
//  Return a synthesized reply for the first pending request past its
//  deadline, or NULL

static lh_reply_t *
s_first_expired (lh_client_t *self)
{
    //  Deadlines are checked at most every S_EXPIRY_CHECK_MS: a scan of every
    //  pending request per received reply would cost more than the reply
    int64_t now = zclock_mono ();
    if (now < self->next_expiry_check)
        return NULL;
    self->next_expiry_check = now + S_EXPIRY_CHECK_MS;
    s_pending_t *pending = (s_pending_t *) zhashx_first (self->pending);
    while (pending) {
        if (pending->expires <= now)
            return s_expired (self, pending->header.id);
        pending = (s_pending_t *) zhashx_next (self->pending);
    }
    return NULL;
}


//  --------------------------------------------------------------------------
//  Receive the next PART, REP or PUB, waiting up to timeout_ms (-1 forever).
//  A request whose deadline passed yields a synthesized 504/503 REP.

int
lh_client_recv (lh_client_t *self, lh_reply_t **reply_p, int timeout_ms)
{
    assert (self);
    assert (reply_p);
    *reply_p = (lh_reply_t *) zlist_pop (self->inbox);
    if (*reply_p)
        return 0;
    int64_t until = timeout_ms < 0? INT64_MAX: zclock_mono () + timeout_ms;
    while (!zsys_interrupted) {
        lh_reply_t *reply = s_first_expired (self);
        if (reply) {
            *reply_p = reply;
            return 0;
        }
        //  Poll at least once (timeout 0 reads what is already there);
        //  wake at least every 100 ms to expire deadlines
        int64_t left = until - zclock_mono ();
        if (left < 0)
            left = 0;
        int rc = s_poll (self, left < 100? left: 100, &reply);
        if (rc == -1)
            break;
        if (rc == 1) {
            if (reply->header.t == LH_T_REP)
                s_pending_remove (self, reply->header.cid, reply);
            *reply_p = reply;
            return 0;
        }
        if (left == 0)
            break;
    }
    return -1;
}


//  --------------------------------------------------------------------------
//  Take the next PART, REP or PUB that has already arrived, without
//  blocking and without housekeeping. Returns 0 and a reply, or -1.

int
lh_client_try_recv (lh_client_t *self, lh_reply_t **reply_p)
{
    assert (self);
    assert (reply_p);
    *reply_p = (lh_reply_t *) zlist_pop (self->inbox);
    if (*reply_p)
        return 0;
    *reply_p = s_first_expired (self);
    if (*reply_p)
        return 0;
    while (self->sock) {
        lh_msg_t msg;
        int rc = lh_msg_try_recv (&msg, self->sock, false, self->max_msg);
        if (rc == -2) {
            lh_debug (self->name, NULL, "dropped a malformed message from the broker");
            continue;
        }
        if (rc != 0)
            break;                      //  nothing more waiting
        lh_reply_t *reply = NULL;
        int result = s_on_msg (self, &msg, &reply);
        lh_msg_reset (&msg);
        if (result == 1) {
            if (reply->header.t == LH_T_REP)
                s_pending_remove (self, reply->header.cid, reply);
            *reply_p = reply;
            return 0;
        }
    }
    return -1;
}


//  --------------------------------------------------------------------------
//  Subscribe to events whose topic starts with prefix

int
lh_client_subscribe (lh_client_t *self, const char *prefix)
{
    assert (self);
    if (!prefix || strlen (prefix) > LH_TOPIC_MAX)
        return -1;
    lh_header_t header;
    lh_header_init (&header, LH_T_SUB);
    lh_header_set_str (&header, LH_H_TOPIC, prefix);
    if (s_send_control (self, &header, NULL))
        return -1;
    zlist_append (self->subs, (void *) prefix);     //  autofree copies
    return 0;
}


//  --------------------------------------------------------------------------
//  Publish an event (body may be NULL)

int
lh_client_publish (lh_client_t *self, const char *topic,
                   const void *body, size_t size)
{
    assert (self);
    if (!topic || !*topic || strlen (topic) > LH_TOPIC_MAX)
        return -1;
    lh_header_t header;
    lh_header_init (&header, LH_T_PUB);
    lh_header_set_str (&header, LH_H_TOPIC, topic);
    zframe_t *frame = body && size? zframe_new (body, size): NULL;
    if (s_send_control (self, &header, &frame)) {
        zframe_destroy (&frame);
        return -1;
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  The client's socket, for polling alongside others (it changes when the
//  client reconnects)

zsock_t *
lh_client_sock (lh_client_t *self)
{
    assert (self);
    return self->sock;
}


//  --------------------------------------------------------------------------
//  Reply accessors

uint32_t
lh_reply_status (lh_reply_t *self)
{
    assert (self);
    return (self->header.has & LH_H_ST)? self->header.st: 0;
}

lh_type_t
lh_reply_type (lh_reply_t *self)
{
    assert (self);
    return self->header.t;
}

uint64_t
lh_reply_cid (lh_reply_t *self)
{
    assert (self);
    return self->header.cid;
}

const lh_header_t *
lh_reply_header (lh_reply_t *self)
{
    assert (self);
    return &self->header;
}

const void *
lh_reply_body (lh_reply_t *self, size_t *size)
{
    assert (self);
    if (size)
        *size = self->body? zframe_size (self->body): 0;
    return self->body? zframe_data (self->body): NULL;
}


//  --------------------------------------------------------------------------
//  Decoded body (bounded check first), NULL if none or malformed

const msgpack_object *
lh_reply_object (lh_reply_t *self)
{
    assert (self);
    if (self->decoded == 0) {
        self->decoded = -1;
        if (self->body && zframe_size (self->body)) {
            msgpack_zone_init (&self->zone, 2048);
            if (lh_msgpack_unpack (zframe_data (self->body), zframe_size (self->body),
                                   &lh_limits_default, &self->zone, &self->object) == 0)
                self->decoded = 1;
            else
                msgpack_zone_destroy (&self->zone);
        }
    }
    return self->decoded == 1? &self->object: NULL;
}


//  --------------------------------------------------------------------------
//  PARTs received before the REP of a call, or NULL

zlist_t *
lh_reply_parts (lh_reply_t *self)
{
    assert (self);
    return self->parts;
}


//  --------------------------------------------------------------------------
//  Error reason from an {"error":{...}} body, or NULL (borrowed)

const char *
lh_reply_reason (lh_reply_t *self)
{
    assert (self);
    if (!self->reason) {
        const msgpack_object *error = lh_obj_get (lh_reply_object (self), "error");
        const msgpack_object *reason = lh_obj_get (error, "reason");
        if (reason)
            self->reason = lh_obj_strdup (reason);
    }
    return self->reason;
}


//  --------------------------------------------------------------------------
//  Destroy a reply; nulls the caller's pointer

void
lh_reply_destroy (lh_reply_t **self_p)
{
    assert (self_p);
    lh_reply_t *self = *self_p;
    if (self) {
        zframe_destroy (&self->body);
        if (self->parts) {
            zframe_t *part;
            while ((part = (zframe_t *) zlist_pop (self->parts)))
                zframe_destroy (&part);
            zlist_destroy (&self->parts);
        }
        if (self->decoded == 1)
            msgpack_zone_destroy (&self->zone);
        free (self->reason);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Self test. First against a scripted fake broker (a ROUTER in an actor)
//  that lets us see the client's own behaviour: PART collection, a late
//  reply dropped, BYE "hello_first" answered with HELLO and one resend, a
//  broker gone for the whole deadline. Then against the real broker with
//  the echo service.

#include "lh_actor.h"
#include "lh_broker.h"
#include "echo.h"

#define S_FAKE_ENDPOINT "inproc://lh-client-test-fake"
#define S_REAL_ENDPOINT "inproc://lh-client-test-real"


//  --------------------------------------------------------------------------
//  Send a message from the fake broker to a peer

static void
s_fake_send (zsock_t *router, zframe_t *routing, lh_type_t type, uint64_t cid,
             uint32_t status, zframe_t *body)
{
    lh_header_t header;
    lh_header_init (&header, type);
    if (type == LH_T_WELCOME) {
        header.hb_ivl = 100;
        header.hb_live = 3;
        header.has |= LH_H_HB_IVL | LH_H_HB_LIVE;
    }
    if (cid) {
        header.cid = cid;
        header.has |= LH_H_CID;
    }
    if (status) {
        header.st = status;
        header.has |= LH_H_ST;
    }
    lh_header_set_str (&header, LH_H_SRC, "fake");
    int rc = lh_msg_send (router, routing, &header, &body);
    assert (rc == 0);
}


//  --------------------------------------------------------------------------
//  The fake broker: ops echo, parts, late (answered only when the next
//  request arrives), forget (BYE hello_first once per request id)

static void
s_fake_broker (zsock_t *pipe, void *args)
{
    zsock_t *router = zsock_new_router (S_FAKE_ENDPOINT);
    assert (router);
    zsock_signal (pipe, 0);
    int hellos = 0;
    zframe_t *late_routing = NULL;
    uint64_t late_id = 0;
    uint64_t forgotten = 0;
    zpoller_t *poller = zpoller_new (pipe, router, NULL);
    while (true) {
        void *which = zpoller_wait (poller, -1);
        if (which == pipe) {
            char *command = zstr_recv (pipe);
            bool stop = !command || streq (command, "$TERM");
            if (command && streq (command, "HELLOS"))
                zsock_send (pipe, "i", hellos);
            zstr_free (&command);
            if (stop)
                break;
            continue;
        }
        if (which != router)
            break;
        lh_msg_t msg;
        if (lh_msg_recv (&msg, router, true, 1 << 20))
            continue;
        lh_header_t *header = &msg.header;
        if (header->t == LH_T_HELLO) {
            hellos++;
            s_fake_send (router, msg.routing, LH_T_WELCOME, 0, 0, NULL);
        }
        else
        if (header->t == LH_T_HB)
            s_fake_send (router, msg.routing, LH_T_HB, 0, 0, NULL);
        else
        if (header->t == LH_T_REQ) {
            if (late_routing) {
                s_fake_send (router, late_routing, LH_T_REP, late_id, 200, NULL);
                zframe_destroy (&late_routing);
            }
            if (streq (header->op, "echo"))
                s_fake_send (router, msg.routing, LH_T_REP, header->id, 200,
                             msg.body? zframe_dup (msg.body): NULL);
            else
            if (streq (header->op, "parts")) {
                for (uint8_t index = 0; index < 3; index++) {
                    uint8_t byte = index;   //  positive fixint
                    s_fake_send (router, msg.routing, LH_T_PART, header->id, 0,
                                 zframe_new (&byte, 1));
                }
                s_fake_send (router, msg.routing, LH_T_REP, header->id, 200, NULL);
            }
            else
            if (streq (header->op, "late")) {
                late_routing = zframe_dup (msg.routing);
                late_id = header->id;
            }
            else
            if (streq (header->op, "forget")) {
                if (forgotten != header->id) {
                    forgotten = header->id;
                    s_fake_send (router, msg.routing, LH_T_BYE, header->id, 400,
                                 lh_error_body (400, "hello_first", "say HELLO first", 0));
                }
                else {
                    lh_pack_t *pack = lh_pack_new ();
                    lh_pack_map (pack, 1);
                    lh_pack_kv_uint (pack, "hellos", hellos);
                    s_fake_send (router, msg.routing, LH_T_REP, header->id, 200,
                                 lh_pack_frame (&pack));
                }
            }
        }
        lh_msg_reset (&msg);
    }
    zframe_destroy (&late_routing);
    zpoller_destroy (&poller);
    zsock_destroy (&router);
}


//  --------------------------------------------------------------------------
//  Start the real broker on an endpoint, heartbeat hb_ivl ms

static zactor_t *
s_test_broker (const char *endpoint, const char *hb_ivl)
{
    zactor_t *broker = zactor_new (lh_broker_actor, "test");
    assert (broker);
    char *status, *detail;
    zstr_sendx (broker, "CONFIGURE", "hb_ivl", hb_ivl, NULL);
    zsock_recv (broker, "ss", &status, &detail);
    assert (status && streq (status, "0"));
    zstr_free (&status);
    zstr_free (&detail);
    zsock_send (broker, "ss", "BIND", endpoint);
    zsock_recv (broker, "ss", &status, &detail);
    assert (status && streq (status, "0"));
    zstr_free (&status);
    zstr_free (&detail);
    return broker;
}


//  --------------------------------------------------------------------------
//  Call until the service answers other than 404/503 (workers register
//  asynchronously); bounded

static void
s_test_wait_service (lh_client_t *client, const char *svc, const char *op)
{
    int64_t until = zclock_mono () + 10000;
    lh_call_opts_t opts = { .timeout_ms = 1000 };
    while (true) {
        lh_reply_t *reply;
        lh_client_call (client, svc, op, NULL, 0, &opts, &reply);
        uint32_t status = lh_reply_status (reply);
        lh_reply_destroy (&reply);
        if (status != 404 && status != 503 && status != 504)
            return;
        assert (zclock_mono () < until);
        zclock_sleep (20);
    }
}


//  --------------------------------------------------------------------------
//  Self test of this class

void
lh_client_test (bool verbose)
{
    printf (" * lh_client: ");
    if (verbose)
        lh_log_set_level (LH_LOG_DEBUG);

    //  Trace ids
    char trace [LH_TRACE_SIZE + 1], other [LH_TRACE_SIZE + 1];
    lh_trace_mint (trace);
    lh_trace_mint (other);
    assert (strlen (trace) == LH_TRACE_SIZE);
    assert (strspn (trace, "0123456789abcdef") == LH_TRACE_SIZE);
    assert (strneq (trace, other));

    //  CURVE options come from the link
    zcert_t *cert = zcert_new ();
    zcert_t *server = zcert_new ();
    lh_link_t secure = { .endpoint = "tcp://127.0.0.1:9", .cert = cert };
    assert (lh_link_connect (&secure) == NULL);         //  no server key
    secure.server_key = zcert_public_txt (server);
    zsock_t *sock = lh_link_connect (&secure);
    assert (sock);
    char *key = zsock_curve_serverkey (sock);
    assert (key && streq (key, zcert_public_txt (server)));
    zstr_free (&key);
    key = zsock_curve_publickey (sock);
    assert (key && streq (key, zcert_public_txt (cert)));
    zstr_free (&key);
    zsock_destroy (&sock);
    zcert_destroy (&server);
    zcert_destroy (&cert);

    //  Fake broker
    zactor_t *fake = zactor_new (s_fake_broker, NULL);
    lh_link_t link = { .endpoint = S_FAKE_ENDPOINT };
    lh_client_t *client = lh_client_new (&link, "client-test");
    assert (client);

    //  Round trip, body verbatim
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_uint (pack, "x", 1);
    size_t size;
    const void *data = lh_pack_data (pack, &size);
    lh_reply_t *reply;
    int rc = lh_client_call (client, "fake", "echo", data, size, NULL, &reply);
    assert (rc == 0);
    assert (lh_reply_status (reply) == 200);
    assert (lh_reply_type (reply) == LH_T_REP);
    size_t reply_size;
    const void *reply_data = lh_reply_body (reply, &reply_size);
    assert (reply_size == size && memcmp (reply_data, data, size) == 0);
    uint64_t x = 0;
    assert (lh_obj_uint (lh_reply_object (reply), "x", &x) && x == 1);
    assert (lh_reply_reason (reply) == NULL);
    assert (lh_reply_parts (reply) == NULL);
    lh_reply_destroy (&reply);

    //  PARTs are collected into the reply, in order
    rc = lh_client_call (client, "fake", "parts", NULL, 0, NULL, &reply);
    assert (rc == 0 && lh_reply_status (reply) == 200);
    zlist_t *parts = lh_reply_parts (reply);
    assert (parts && zlist_size (parts) == 3);
    uint8_t expect = 0;
    for (zframe_t *part = (zframe_t *) zlist_first (parts); part;
         part = (zframe_t *) zlist_next (parts))
        assert (zframe_size (part) == 1 && zframe_data (part) [0] == expect++);
    lh_reply_destroy (&reply);

    //  No reply before the deadline: synthesized 504; the late reply that
    //  comes before the next call's is dropped
    lh_call_opts_t opts = { .timeout_ms = 100 };
    int64_t start = zclock_mono ();
    rc = lh_client_call (client, "fake", "late", NULL, 0, &opts, &reply);
    assert (rc == -1);
    assert (lh_reply_status (reply) == 504);
    assert (lh_reply_reason (reply));
    assert (zclock_mono () - start < 1000);
    lh_reply_destroy (&reply);
    rc = lh_client_call (client, "fake", "echo", data, size, NULL, &reply);
    assert (rc == 0 && lh_reply_status (reply) == 200);
    lh_reply_body (reply, &reply_size);
    assert (reply_size == size);
    lh_reply_destroy (&reply);

    //  BYE hello_first: HELLO again, the request resent once
    int hellos_before;
    zstr_send (fake, "HELLOS");
    zsock_recv (fake, "i", &hellos_before);
    rc = lh_client_call (client, "fake", "forget", NULL, 0, NULL, &reply);
    assert (rc == 0 && lh_reply_status (reply) == 200);
    uint64_t hellos = 0;
    assert (lh_obj_uint (lh_reply_object (reply), "hellos", &hellos));
    assert ((int) hellos == hellos_before + 1);
    lh_reply_destroy (&reply);

    //  Asynchronous: send three, collect three, by cid
    uint64_t id;
    uint64_t ids [3];
    for (int index = 0; index < 3; index++) {
        ids [index] = lh_client_send (client, "fake", "echo", data, size, NULL);
        assert (ids [index] > 0);
    }
    for (int index = 0; index < 3; index++) {
        rc = lh_client_recv (client, &reply, 2000);
        assert (rc == 0);
        assert (lh_reply_cid (reply) == ids [index]);
        lh_reply_destroy (&reply);
    }
    assert (lh_client_recv (client, &reply, 50) == -1);
    //  Waiting for one request by id: the last first, then the others
    //  (their replies were held meanwhile); a PART stream is collected
    for (int index = 0; index < 3; index++)
        ids [index] = lh_client_send (client, "fake", index? "echo": "parts", data, size, NULL);
    for (int index = 2; index >= 0; index--) {
        rc = lh_client_wait (client, ids [index], &reply);
        assert (rc == 0 && lh_reply_cid (reply) == ids [index] && lh_reply_status (reply) == 200);
        assert (index? !lh_reply_parts (reply): zlist_size (lh_reply_parts (reply)) == 3);
        lh_reply_destroy (&reply);
    }
    assert (lh_client_recv (client, &reply, 50) == -1);
    rc = lh_client_wait (client, ids [0], &reply);
    assert (rc == -1 && lh_reply_status (reply) == 400);
    lh_reply_destroy (&reply);
    //  An async reply that arrives during a call is held for recv, and its
    //  request is no longer pending: past its deadline no false 504 comes
    lh_call_opts_t short_opts = { .timeout_ms = 200 };
    id = lh_client_send (client, "fake", "echo", data, size, &short_opts);
    rc = lh_client_call (client, "fake", "echo", data, size, NULL, &reply);
    assert (rc == 0 && lh_reply_cid (reply) != id);
    lh_reply_destroy (&reply);
    rc = lh_client_recv (client, &reply, 2000);
    assert (rc == 0 && lh_reply_cid (reply) == id && lh_reply_status (reply) == 200);
    lh_reply_destroy (&reply);
    assert (lh_client_recv (client, &reply, 600) == -1);
    //  An async request that is never answered expires as a 504
    id = lh_client_send (client, "fake", "late", NULL, 0, &opts);
    rc = lh_client_recv (client, &reply, 2000);
    assert (rc == 0 && lh_reply_cid (reply) == id && lh_reply_status (reply) == 504);
    lh_reply_destroy (&reply);

    //  Invalid names are refused locally
    rc = lh_client_call (client, "bad service", "echo", NULL, 0, NULL, &reply);
    assert (rc == -1 && lh_reply_status (reply) == 400);
    lh_reply_destroy (&reply);

    //  The broker goes away for the whole deadline: 503
    zactor_destroy (&fake);
    opts.timeout_ms = 500;
    rc = lh_client_call (client, "fake", "echo", data, size, &opts, &reply);
    assert (rc == -1);
    assert (lh_reply_status (reply) == 503);
    lh_reply_destroy (&reply);
    lh_client_destroy (&client);
    assert (client == NULL);
    lh_pack_destroy (&pack);

    //  The real broker and the echo service
    zactor_t *broker = s_test_broker (S_REAL_ENDPOINT, "400");
    link.endpoint = S_REAL_ENDPOINT;
    lh_service_runner_t *echo = lh_service_start (&lh_echo_service, &link, NULL, 2);
    assert (echo);
    client = lh_client_new (&link, "client-test");
    assert (client);
    s_test_wait_service (client, "echo", "whoami");

    pack = lh_pack_new ();
    lh_pack_map (pack, 2);
    lh_pack_kv_str (pack, "hello", "world");
    lh_pack_kv_int (pack, "n", -5);
    data = lh_pack_data (pack, &size);
    rc = lh_client_call (client, "echo", "echo", data, size, NULL, &reply);
    assert (rc == 0 && lh_reply_status (reply) == 200);
    reply_data = lh_reply_body (reply, &reply_size);
    assert (reply_size == size && memcmp (reply_data, data, size) == 0);
    lh_reply_destroy (&reply);

    //  Errors from the broker carry a reason
    rc = lh_client_call (client, "nosuchservice", "x", NULL, 0, NULL, &reply);
    assert (rc == 0 && lh_reply_status (reply) == 404);
    assert (lh_reply_reason (reply));
    lh_reply_destroy (&reply);

    //  Streams
    lh_pack_t *stream = lh_pack_new ();
    lh_pack_map (stream, 2);
    lh_pack_kv_uint (stream, "n", 50);
    lh_pack_kv_uint (stream, "size", 100);
    const void *stream_data = lh_pack_data (stream, &size);
    rc = lh_client_call (client, "echo", "stream", stream_data, size, NULL, &reply);
    assert (rc == 0 && lh_reply_status (reply) == 200);
    assert (lh_reply_parts (reply) && zlist_size (lh_reply_parts (reply)) == 50);
    lh_reply_destroy (&reply);
    lh_pack_destroy (&stream);

    //  A deadline that passes at the broker: 504, and the next call is fine
    lh_pack_t *sleep = lh_pack_new ();
    lh_pack_map (sleep, 1);
    lh_pack_kv_uint (sleep, "ms", 600);
    const void *sleep_data = lh_pack_data (sleep, &size);
    opts.timeout_ms = 100;
    rc = lh_client_call (client, "echo", "sleep", sleep_data, size, &opts, &reply);
    assert (lh_reply_status (reply) == 504);
    lh_reply_destroy (&reply);
    lh_pack_destroy (&sleep);
    data = lh_pack_data (pack, &size);
    rc = lh_client_call (client, "echo", "echo", data, size, NULL, &reply);
    assert (rc == 0 && lh_reply_status (reply) == 200);
    lh_reply_body (reply, &reply_size);
    assert (reply_size == size);
    lh_reply_destroy (&reply);
    lh_pack_destroy (&pack);

    lh_client_destroy (&client);
    lh_service_stop (&echo);
    assert (echo == NULL);
    zactor_destroy (&broker);
    printf ("OK\n");
}
