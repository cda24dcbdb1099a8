/*  =========================================================================
    lh_broker - the central broker: routing, queues, credit, heartbeats,
    deadlines, PUB/SUB, the built-in `broker` service, and the tap

    The broker is a czmq actor. Create it, configure it, bind it:

        zactor_t *broker = zactor_new (lh_broker_actor, "lakehouse");
        zstr_sendx (broker, "CONFIGURE", "hb_ivl", "1000", NULL);
        zsock_send (broker, "ss", "BIND", "inproc://lh-bus");
        char *status, *detail;
        zsock_recv (broker, "ss", &status, &detail);    //  "0" and the endpoint,
                                                        //  or "-1" and why
        ...
        zactor_destroy (&broker);

    Pipe commands (each answered as noted; all answers are "ss" frames:
    status "0" or "-1", then a detail string):

    CONFIGURE key value     set a setting (before BIND; hb_*, queue_*,
                            retry_after_ms, sub_queue, max_attempts and
                            name also apply later); answers status.
                            Keys: hb_ivl (ms, 1000), hb_live (3),
                            max_msg (bytes, 16 MiB), queue_max (requests
                            per service, 1000), queue_bytes (per service,
                            64 MiB), retry_after_ms (for 429, 100),
                            sub_queue (PUBs held per slow subscriber, 1000),
                            tap_hwm (1000), max_attempts (3), name.
                            Security keys:
                            cert PATH     server certificate (with its
                                          _secret); tcp/ipc binds are then
                                          CURVE; "" = none (plain, loopback
                                          only)
                            allow DIR     directory of accepted public certs
                                          (one file per key); required for
                                          CURVE; checked every reload_ms and
                                          at each handshake
                            reload_ms     allow directory check (ms, 1000)
                            acl/ROLE/serve|call|publish|subscribe
                                          the ACL's lists (common/lh_acl.h;
                                          defaults: the config's). Only
                                          role actor may serve at all; the
                                          admin ops need role admin.
                            plain_role R  role of every peer of a plain
                                          tcp/ipc endpoint (client)
                            inproc_role R role of an in-process peer
                                          without a grant (actor); ""
                                          refuses such peers (BYE 403)
    BIND endpoint [cert]    bind the bus ROUTER; detail = the bound
                            endpoint (a "tcp://h:*" bind reports its port).
                            inproc:// binds as is. Any other endpoint is
                            CURVE with cert's key (a second endpoint with
                            a new key = server key rotation) or the
                            configured cert; without one, plain, and only
                            on loopback. Before the first CURVE bind the
                            broker starts its ZAP handler, sets
                            ZMQ_ZAP_ENFORCE_DOMAIN with zmq_setsockopt and
                            reads it back; if it did not take, nothing is
                            bound ("-1").
    UNBIND endpoint         stop listening on a bound endpoint.
    TAP endpoint            bind the tap PUB socket; detail as BIND. With
                            CURVE only role tap passes the handshake (its
                            own ZAP domain, lh-tap).
    RELOAD                  re-read the allow directory now (SIGHUP);
                            detail = number of keys.
    GRANT role              a new in-process grant for role: detail = 32
                            hex characters. An in-process peer whose
                            routing id is GRANT.NONCE (lh_cert_inproc +
                            lh_link_connect) has that role.
    STATS                   detail = stats as JSON (what `broker.stats`
                            answers on the bus).
    VERBOSE                 log every message.
    $TERM                   end the actor.

    Bus service "broker" (built in), ops:
    ping        -> {"pong": true, "name": NAME}
    services    -> {"services": [{"name","ops","workers","queued"}]}
    workers     -> {"workers": [{"service","src","credit","inflight","idle_ms"}]}
    bind        -> {"endpoint"}; body {"endpoint", "cert"?}   (role admin)
    unbind      -> {"endpoint"}; body {"endpoint"}            (role admin)
    reload      -> {"keys", "generation"}                     (role admin)
    stats       -> {"uptime_ms", "bseq", "peers", "redelivered",
                   "services": {NAME: {"requests", "replies", "errors":
                   {"404": n, ...}, "queued", "workers", "p50_us", "p99_us",
                   "dropped", "latency"?}}, "dropped": {"malformed", "unroutable",
                   "full", "late_reply", "tap", "sub"},
                   "refused": {"handshake", "zap", "revoked", "name",
                   "serve", "call", "admin", "grant", "publish",
                   "subscribe", "instance"}, "curve": {"on", "keys",
                   "generation"}}

    Security (SPEC 3, docs/broker.md "Roles"). Every peer has a role,
    whichever way it came in, fixed at its HELLO: a CURVE peer's from its
    certificate (src = its name, uid = its key, stamped on every REQ; its
    HELLO must say that name, else BYE 403), a plain tcp/ipc peer's
    plain_role, an in-process peer's from its grant (else inproc_role,
    else BYE 403). READY, REQ, PUB and SUB are checked against the ACL:
    a refused READY gets BYE 403, a refused REQ a REP 403, a refused PUB
    or SUB a REP 403 whose cid is its id. A READY carrying "solo" (a
    single-instance service, its process's instance id) is refused with
    BYE 409 when another instance (or non-solo workers) serve the service. Every CURVE peer's key is checked
    against the current allow set (a removed or expired key: 401 to the
    request, BYE 401, the peer forgotten; a revoked worker is forgotten as
    soon as the allow set changes).
                   (p50/p99: REQ received -> worker's REP forwarded, from a
                   fixed log histogram, within ~6 %; docs/broker.md;
                   body {"latency": true} adds each service's histogram,
                   "latency": [[value_us, count], ...] for its non-empty
                   buckets, for percentiles between two samples)
    =========================================================================
*/

#ifndef LH_BROKER_H_INCLUDED
#define LH_BROKER_H_INCLUDED

#include "lh_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

//  The broker actor; args is the broker's name (const char *), or NULL
void
    lh_broker_actor (zsock_t *pipe, void *args);

//  Self test of this class
void
    lh_broker_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
