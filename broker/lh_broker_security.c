/*  =========================================================================
    lh_broker_security - who a peer is and what it may do: identity from
    the ZAP handler's metadata, the ACL, revocation against the allow set,
    and binding endpoints (CURVE, or plain on loopback)

    Part of the broker (see lh_broker_internal.h); the rules are SPEC 3 and
    docs/operations.md ("Security").
    =========================================================================
*/

#include "lh_broker_internal.h"
#include <sodium.h>

//  --------------------------------------------------------------------------
//  May this peer offer svc? Only role actor, as far as acl/actor/serve
//  allows, whichever way the peer came in.

bool
lh_broker_may_serve (self_t *self, peer_t *peer, const char *svc)
{
    return lh_acl_may_serve (self->acl, peer->role, svc);
}


//  --------------------------------------------------------------------------
//  May this peer call svc.op? As acl/ROLE/call says; the admin ops need
//  role admin too.

bool
lh_broker_may_call (self_t *self, peer_t *peer, const char *svc, const char *op)
{
    return lh_acl_may_call (self->acl, peer->role, svc, op);
}


//  --------------------------------------------------------------------------
//  A new in-process grant for role: 16 random bytes as 32 hex characters,
//  remembered with the role for the broker's lifetime. The process that
//  runs the broker hands it to the peers it starts (lh_cert_inproc); a
//  peer presents it as the start of its routing id. Returns the grant
//  (caller frees), or NULL if role is not a role.

char *
lh_broker_grant (self_t *self, const char *role)
{
    if (!lh_acl_role_valid (role))
        return NULL;
    uint8_t secret [S_GRANT_SIZE / 2];
    randombytes_buf (secret, sizeof secret);
    char *grant = (char *) malloc (S_GRANT_SIZE + 1);
    assert (grant);
    sodium_bin2hex (grant, S_GRANT_SIZE + 1, secret, sizeof secret);
    zhashx_update (self->grants, grant, strdup (role));
    return grant;
}


//  --------------------------------------------------------------------------
//  Is a CURVE peer's key still allowed? Checked on every message: an
//  expiry compare and a generation compare, with a lookup only after the
//  allow set was reloaded.

bool
lh_broker_key_valid (self_t *self, peer_t *peer)
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

void
lh_broker_refuse_revoked (self_t *self, peer_t *peer, lh_msg_t *msg, const char *uid)
{
    lh_header_t *header = &msg->header;
    self->refused_revoked++;
    lh_warn ("broker", NULL, "%s (key %.8s) is revoked: refused %s",
             peer? peer->src: "a forgotten peer", uid, lh_type_name (header->t));
    header->has &= ~LH_H_STAMPS;        //  not stamped: its bseq is the peer's
    if (header->t == LH_T_REQ && (header->has & LH_H_ID))
        lh_broker_reject_request (self, msg, NULL, LH_ST_UNAUTHORIZED, "revoked",
                          "this key is no longer in the broker's allow set", 0);
    lh_broker_send_bye (self, msg->routing, header, LH_ST_UNAUTHORIZED, "revoked",
                "this key is no longer in the broker's allow set");
    if (peer)
        lh_broker_peer_mark_dead (self, peer);
}


//  --------------------------------------------------------------------------
//  Is a message from a routing id the broker does not know sent with a key
//  that is no longer allowed? (Its connection outlived its certificate.)

bool
lh_broker_sender_revoked (self_t *self, lh_msg_t *msg, const char **uid_p)
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
        if (!peer->secure || peer->dead || lh_broker_key_valid (self, peer))
            continue;
        if (peer->service) {
            self->refused_revoked++;
            lh_warn ("broker", NULL, "worker %s (key %.8s) is revoked: forgotten",
                     peer->src, peer->uid);
            lh_broker_send_bye (self, peer->rid, NULL, LH_ST_UNAUTHORIZED, "revoked",
                        "this key is no longer in the broker's allow set");
            lh_broker_peer_mark_dead (self, peer);
        }
    }
}


//  --------------------------------------------------------------------------
//  Check the allow directory (force: reload it even if it looks the same);
//  after a change, revoked peers are swept

void
lh_broker_reload_allow (self_t *self, bool force)
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
//  Decide who a peer saying HELLO is: the name stamped as src on all it
//  sends, and its role. Every peer gets a role, whichever way it came in:
//  - over CURVE: its certificate's name and role (our ZAP handler put them
//    in the connection's metadata with its key as User-Id); the key must
//    still be allowed (401) and the HELLO must say the certificate's name
//    (403);
//  - over a plain tcp/ipc endpoint (ZMTP metadata, no User-Id): the
//    configured plain_role, named by its HELLO;
//  - in-process (no metadata at all): the role of the grant its routing id
//    starts with (GRANT, lh_cert_inproc), else inproc_role, else refused
//    (403); named by its HELLO.
//  Returns 0, or the status to refuse the peer with and *reason_p.

uint32_t
lh_broker_peer_identify (self_t *self, peer_t *peer, lh_msg_t *msg, const char **reason_p)
{
    zframe_t *frame = msg->header_frame;
    const char *uid = frame? zframe_meta (frame, "User-Id"): NULL;
    if (uid && *uid) {
        const lh_allow_entry_t *entry = self->allow? lh_allow_lookup (self->allow, uid): NULL;
        const char *name = zframe_meta (frame, "name");
        const char *role = zframe_meta (frame, "role");
        if (!entry || !name || !role) {
            self->refused_revoked++;
            *reason_p = "this key is not (or no longer) in the broker's allow set";
            return LH_ST_UNAUTHORIZED;
        }
        if (!streq (name, msg->header.name)) {
            self->refused_name++;
            *reason_p = "HELLO name does not match the peer's certificate";
            return LH_ST_FORBIDDEN;
        }
        peer->secure = true;
        snprintf (peer->uid, sizeof peer->uid, "%s", uid);
        snprintf (peer->role, sizeof peer->role, "%s", role);
        peer->expires = entry->expires;
        peer->allow_gen = self->allow_gen;
    }
    else
    if (frame && zframe_meta (frame, "Socket-Type"))
        snprintf (peer->role, sizeof peer->role, "%s", self->plain_role);
    else {
        //  In-process: the grant is the routing id's first S_GRANT_SIZE
        //  characters, then "." and a nonce that keeps ids unique
        const char *role = NULL;
        size_t size = zframe_size (peer->rid);
        const char *rid = (const char *) zframe_data (peer->rid);
        if (size == S_GRANT_SIZE + 1 + S_NONCE_SIZE && rid [S_GRANT_SIZE] == '.') {
            char grant [S_GRANT_SIZE + 1];
            memcpy (grant, rid, S_GRANT_SIZE);
            grant [S_GRANT_SIZE] = 0;
            role = (const char *) zhashx_lookup (self->grants, grant);
        }
        if (!role && *self->inproc_role)
            role = self->inproc_role;
        if (!role) {
            self->refused_grant++;
            lh_warn ("broker", NULL, "in-process peer %s has no grant: refused",
                     msg->header.name);
            *reason_p = "an in-process peer needs a grant from the process that runs "
                        "the broker (docs/broker.md, Roles)";
            return LH_ST_FORBIDDEN;
        }
        snprintf (peer->role, sizeof peer->role, "%s", role);
    }
    snprintf (peer->name, sizeof peer->name, "%s", msg->header.name);
    snprintf (peer->src, sizeof peer->src, "%s", msg->header.name);
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
    lh_broker_reload_allow (self, true);
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

char *
lh_broker_bind_router (self_t *self, const char *endpoint, const char *cert_path, char **error_p)
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
        self->grace_until = lh_broker_now_ms () + (self->restart_grace > 0
                          ? self->restart_grace: (int64_t) self->hb_ivl * self->hb_live);
    self->bound = true;
    return bound;
}


//  --------------------------------------------------------------------------
//  UNBIND endpoint: stop listening there (the connections it accepted
//  close). Returns 0, or -1 and *error_p.

int
lh_broker_unbind_router (self_t *self, const char *endpoint, char **error_p)
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

char *
lh_broker_bind_tap (self_t *self, const char *endpoint, char **error_p)
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

void
lh_broker_handle_zap (self_t *self)
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
            lh_broker_reload_allow (self, false);
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

void
lh_broker_handle_monitor (self_t *self, zsock_t *monitor)
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
//  CONFIGURE for the security keys: cert, allow, acl/ROLE/LIST, inproc_role,
//  plain_role and reload_ms. Returns 0 (set), -1 (bad value), or 1 (not a
//  security key).

int
lh_broker_configure_security (self_t *self, const char *key, const char *value)
{
    uint64_t number = 0;
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
            self->now = lh_broker_now_ms ();
            lh_broker_reload_allow (self, true);
        }
        return 0;
    }
    if (strncmp (key, "acl/", 4) == 0) {
        char *error = NULL;
        if (lh_acl_set (self->acl, key + 4, value, &error) == 0)
            return 0;
        lh_error ("broker", NULL, "%s", error);
        free (error);
        return -1;
    }
    if (streq (key, "inproc_role") || streq (key, "plain_role")) {
        bool inproc = streq (key, "inproc_role");
        if (!lh_acl_role_valid (value) && !(inproc && *value == 0))
            return -1;
        char *field = inproc? self->inproc_role: self->plain_role;
        snprintf (field, LH_ROLE_MAX + 1, "%s", value);
        return 0;
    }
    if (streq (key, "reload_ms")) {
        if (lh_broker_parse_setting (value, 10, 3600000, &number) != 0)
            return -1;
        self->reload_ms = (uint32_t) number;
        return 0;
    }
    return 1;
}
