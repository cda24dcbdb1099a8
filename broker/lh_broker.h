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
                            acl/ROLE/serve, acl/ROLE/call   pattern lists
                                          ("svc", "svc.op", "svc.*", "*",
                                          comma-separated); defaults: actor
                                          serve/call "*", gateway, client,
                                          admin call "*", tap call "". Only
                                          role actor may serve at all.
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
                   "dropped"}}, "dropped": {"malformed", "unroutable",
                   "full", "late_reply", "tap", "sub"},
                   "refused": {"handshake", "zap", "revoked", "name",
                   "serve", "call", "admin"}, "curve": {"on", "keys",
                   "generation"}}

    Security (SPEC 3, docs/security.md). A peer that came over CURVE is
    known by its certificate: src = its name, uid = its key (stamped on
    every REQ); its HELLO must say that name (else BYE 403); READY and REQ
    are checked against the acl (403); every message's key is checked
    against the current allow set (a removed or expired key: 401 to the
    request, BYE 401, the peer forgotten; a revoked worker is forgotten as
    soon as the allow set changes). Peers without a certificate (inproc,
    plain loopback) are trusted as before.
                   (p50/p99: REQ received -> worker's REP forwarded, from a
                   fixed log histogram, within ~6 %; docs/broker.md)
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
