/*  =========================================================================
    lh_gateway - the HTTP gateway actor: external HTTP in, bus requests out

    Serves HTTP/1.1 with libmicrohttpd (epoll, a pool of gateway/threads
    threads). Each HTTP request matching a route (lh_routes.c) becomes one
    bus request, sent by the gateway's bus pump (lh_bus_pump.h) while the
    connection is suspended, so no HTTP thread waits on the bus; the
    reply's status is the HTTP status and its body, as JSON, the HTTP
    body. Storage and ingest bodies stream in and out through storaged in
    parts (lh_ingest_upload.h), on each HTTP thread's own bus client.
    docs/http.md lists the routes, limits, auth and error bodies.

        lh_gateway_args_t args = { .config = config, .link = { .endpoint = "inproc://lh-bus" } };
        zactor_t *gateway = zactor_new (lh_gateway_actor, &args);
        char *status, *detail;
        zsock_recv (gateway, "ss", &status, &detail);   //  sent once, unasked:
                                                        //  "0" + "http://127.0.0.1:3110"
                                                        //  or "-1" + why it refused
        ...
        zactor_destroy (&gateway);

    The start reply comes right after zactor_new returns; on "-1" the actor
    serves nothing and waits for $TERM. args (and the config and link it
    points to) only need to live until the start reply has been received;
    the link's cert, if any, must live as long as the actor.

    Pipe commands (after the start reply):

    RELOAD          re-read the bearer tokens now (what SIGHUP does);
                    answers "ss": "0"/"-1" and a detail.
    URL             answers "ss": "0" and the bound URL.
    $TERM           stop serving and end the actor.

    The actor also re-reads the tokens when the token file changes
    (checked every gateway/token_check_ms) and on a SIGHUP its own handler
    sees (it chains to any handler installed before it). A process that
    takes its signals itself, as `lakehouse` does (sigwait, every thread
    blocking them), sends RELOAD on SIGHUP instead.

    Roles (docs/http.md, "Authentication"): each HTTP caller has the role
    of its bearer token (client, or admin), client when no token is
    configured; a route or /v1/bus/SERVICE/OP the role may not call (the
    config's acl section, lh_acl.h) is answered 403 before anything goes
    to the bus. The gateway's own bus connection has its own role
    (gateway: its certificate, or the launcher's in-process grant), which
    the broker checks again and which may not call the broker admin ops.
    Those go, for admin-token callers only, over admin_link, a second
    connection with role admin, when the process gives one.

    The console (lh_console.h): GET /console and /console/FILE serve the
    web console's files, compiled in. GET /v1/tap/stream (lh_tap_sse.h)
    streams the broker's tap, read on args' tap link, as Server-Sent
    Events to callers of a role in gateway/tap_roles. docs/console.md.
    =========================================================================
*/

#ifndef LH_GATEWAY_H_INCLUDED
#define LH_GATEWAY_H_INCLUDED

#include "lh_client.h"
#include "lh_config.h"

#ifdef __cplusplus
extern "C" {
#endif

//  What the gateway actor needs to start
typedef struct {
    lh_config_t *config;                //  gateway/... keys (borrowed)
    lh_link_t link;                     //  how each HTTP thread reaches the broker
    lh_link_t admin_link;               //  role admin, for admin callers of the broker
                                        //  admin ops; endpoint NULL = none
    const char *name;                   //  bus client name; NULL = "gateway"
    lh_link_t tap;                      //  the broker's tap, read for GET /v1/tap/stream
                                        //  (lh_tap_sse.h); endpoint NULL = none
    const char *no_tap;                 //  why there is none (that route's 503), or NULL
} lh_gateway_args_t;

//  The gateway actor; args is an lh_gateway_args_t *
void
    lh_gateway_actor (zsock_t *pipe, void *args);

//  Self test of this class (pure parts: trace ids, status mapping)
void
    lh_gateway_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
