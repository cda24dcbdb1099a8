/*  =========================================================================
    lh_mcp_http - MCP's streamable HTTP transport at /mcp on the gateway

    The protocol is lh_mcp's (lh_mcp.h); this class adds what HTTP needs
    (MCP 2025-11-25, "Streamable HTTP"):
    - sessions: initialize (POSTed without Mcp-Session-Id) makes one and
      its answer carries Mcp-Session-Id; every other message must carry
      it (none: 400, unknown or ended: 404); DELETE ends it. The sessions
      live in one table, under one lock, so a session's requests may land
      on any HTTP thread. Bounded by mcp/sessions_max (a new one replaces
      the longest idle session without a stream or a call in flight, else
      503) and mcp/session_idle_s;
    - headers: MCP-Protocol-Version, when given, must be a version we
      speak (else 400); Origin, when given, must be a loopback origin or
      one of mcp/origins (else 403: DNS-rebinding protection); a POST's
      Content-Type must be JSON (415) and its Accept must take JSON or
      SSE (406);
    - POST: a request is answered with one JSON object, or as an SSE
      event when the client accepts only text/event-stream; a notification
      or a response is answered 202. A request that waits on the bus is
      sent on the HTTP thread's bus pump and its connection suspended: no
      HTTP thread waits;
    - GET: the session's SSE stream of notifications (list_changed on
      catalog.changed, updated, log messages). Its connection is
      suspended while there is nothing to send and resumed (from any
      thread) when a notification is queued, or every mcp/sse_keepalive_ms
      for a comment line. A second GET takes the stream's place.

    The gateway calls, on an HTTP thread, once the whole request is in:

        lh_mcp_http_request_t request = { connection, "POST", body, size, trace };
        lh_mcp_http_answer_t answer;
        if (lh_mcp_http_serve (mcp, &request, &context, &answer) == 1)
            ... suspend the connection; call serve again when it is resumed
        else
            ... queue answer.response with answer.status
        lh_mcp_http_end (&context);                     //  when the request is over

    and, on its own thread: lh_mcp_http_tick every 100 ms (catalog.changed
    events from its own bus client, expiry, keep-alives), lh_mcp_http_stop
    before the HTTP threads stop (every stream ends), then destroy.
    =========================================================================
*/

#ifndef LH_MCP_HTTP_H_INCLUDED
#define LH_MCP_HTTP_H_INCLUDED

#include "lh_client.h"
#include "lh_config.h"
#include <microhttpd.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _lh_mcp_http_t lh_mcp_http_t;

//  May the caller of a request call svc.op? (the gateway's per-caller
//  check: acl/ROLE/call for its token's role)
typedef bool (lh_mcp_http_allow_fn) (void *arg, const char *svc, const char *op);

//  One request to /mcp, all of it in
typedef struct {
    struct MHD_Connection *connection;  //  its connection
    const char *method;                 //  "POST", "GET" or "DELETE"
    const char *body;                   //  the body (POST), or NULL
    size_t size;                        //  its size
    const char *trace;                  //  trace id for its bus calls
    lh_mcp_http_allow_fn *allow;        //  checks each bus call a tool makes, NULL: none
    void *allow_arg;                    //  its argument (lives as long as the request)
} lh_mcp_http_request_t;

//  The answer to queue
typedef struct {
    unsigned status;                    //  HTTP status
    struct MHD_Response *response;      //  the response (the caller queues and destroys it)
    size_t size;                        //  body bytes, for the log (0 for a stream)
    const char *content_type;           //  its Content-Type
} lh_mcp_http_answer_t;

//  Create the transport from the config (mcp/... keys); its bus client
//  for catalog.changed connects on link, named NAME-mcp, at the first tick
lh_mcp_http_t *
    lh_mcp_http_new (lh_config_t *config, const lh_link_t *link, const char *name);

//  Destroy; nulls the caller's pointer. After the HTTP threads stopped.
void
    lh_mcp_http_destroy (lh_mcp_http_t **self_p);

//  Serve a request (see above). *context_p is the request's state, NULL
//  at first. Returns 0 with *answer set (its response may be NULL when
//  libmicrohttpd could not make one: close the connection), or 1 when the
//  request waits on the bus: suspend the connection and call again, with
//  the same context, once it is resumed.
int
    lh_mcp_http_serve (lh_mcp_http_t *self, const lh_mcp_http_request_t *request,
                       void **context_p, lh_mcp_http_answer_t *answer);

//  The request is over: free its state. Nulls the caller's pointer.
void
    lh_mcp_http_end (void **context_p);

//  Housekeeping, on the gateway's own thread: catalog.changed, expiry,
//  keep-alives
void
    lh_mcp_http_tick (lh_mcp_http_t *self);

//  End every stream and refuse new ones (before the HTTP threads stop)
void
    lh_mcp_http_stop (lh_mcp_http_t *self);

//  Sessions held now
size_t
    lh_mcp_http_sessions (lh_mcp_http_t *self);

//  Self test of this class (origins, Accept)
void
    lh_mcp_http_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
