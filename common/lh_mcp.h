/*  =========================================================================
    lh_mcp - the MCP server core (Model Context Protocol 2025-11-25):
    JSON-RPC 2.0 messages in, answers and notifications out, the lakehouse
    as tools (lh_mcp_tools.h) and its datasets as resources

    Transport-agnostic. A transport (stdio: lh_mcp_stdio.h; streamable
    HTTP: gateway/lh_mcp_http.h) hands each message it receives to
    lh_mcp_handle, sends the answer, makes the bus call the answer may
    wait on, and sends what the session's outbox holds (notifications).

        lh_mcp_t *mcp = lh_mcp_new (config);
        lh_mcp_session_t *session = lh_mcp_session_new (mcp);
        lh_mcp_result_t result;
        lh_mcp_handle (session, text, size, &result);
        if (result.answer)
            send (result.answer);           //  a JSON-RPC response, one line
        lh_mcp_call_t *call = result.call;  //  or: a bus call to make first
        while (call) {
            lh_reply_t *reply = bus_call (lh_mcp_call_service (call),
                                          lh_mcp_call_op (call), ...);
            char *answer = NULL;
            if (lh_mcp_call_finish (call, reply, &answer) == 0) {
                if (answer)                 //  NULL: the client cancelled it
                    send (answer);
                lh_mcp_call_destroy (&call);
            }                               //  1: another bus call is planned
        }
        char *note;
        while ((note = lh_mcp_session_next (session)))
            send (note);                    //  notifications, oldest first
        lh_mcp_session_destroy (&session);
        lh_mcp_destroy (&mcp);

    Protocol versions 2025-11-25, 2025-06-18 and 2025-03-26 are spoken;
    initialize answers the client's when it is one of them, else the
    newest. Batches (JSON arrays) are refused: 2025-11-25 has none.

    Sessions are reference counted and thread-safe: several threads may
    handle messages of one session at once (HTTP requests land on any
    thread), a call holds a reference to its session until destroyed, and
    lh_mcp_session_catalog_changed may come from yet another thread. The
    wake function, when set, is called (without any of the session's
    locks held) each time a notification is queued.
    =========================================================================
*/

#ifndef LH_MCP_H_INCLUDED
#define LH_MCP_H_INCLUDED

#include <jansson.h>
#include "lh_client.h"
#include "lh_config.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LH_MCP_PROTOCOL         "2025-11-25"    //  the newest version spoken
#define LH_MCP_SERVER_NAME      "lakehouse"
#define LH_MCP_SERVER_VERSION   "0.1.0"
#define LH_MCP_URI_PREFIX       "lakehouse://datasets/"

//  JSON-RPC 2.0 error codes, and MCP's
#define LH_MCP_PARSE_ERROR      -32700
#define LH_MCP_INVALID_REQUEST  -32600
#define LH_MCP_METHOD_NOT_FOUND -32601
#define LH_MCP_INVALID_PARAMS   -32602
#define LH_MCP_INTERNAL_ERROR   -32603
#define LH_MCP_NOT_FOUND        -32002          //  resource not found (MCP)

typedef struct _lh_mcp_t lh_mcp_t;
typedef struct _lh_mcp_session_t lh_mcp_session_t;
typedef struct _lh_mcp_call_t lh_mcp_call_t;

//  What a message was
typedef enum {
    LH_MCP_IN_INVALID = 0,              //  not a JSON-RPC message: answered with an error, id null
    LH_MCP_IN_REQUEST,                  //  a request: answered now, or after its call
    LH_MCP_IN_NOTIFICATION,             //  a notification: never answered
    LH_MCP_IN_RESPONSE                  //  a response to a request of ours: never answered
} lh_mcp_in_t;

//  What lh_mcp_handle made of a message
typedef struct {
    lh_mcp_in_t in;                     //  what the message was
    bool initialize;                    //  an initialize request that was answered with a result
    int error;                          //  JSON-RPC error code of the answer, 0 if none or a result
    char *answer;                       //  JSON text to send now (the caller's), or NULL
    lh_mcp_call_t *call;                //  a bus call to make before answering (the caller's), or NULL
} lh_mcp_result_t;

//  Called each time a session queues a notification
typedef void (lh_mcp_wake_fn) (void *arg);

//  ---------------------------------------------------------------------
//  The server

//  Create a server from the mcp/... keys of config (read once; config may
//  go after). Never NULL.
lh_mcp_t *
    lh_mcp_new (lh_config_t *config);

//  Destroy; nulls the caller's pointer. Every session must be gone.
void
    lh_mcp_destroy (lh_mcp_t **self_p);

//  Largest message accepted, bytes (mcp/body_max)
size_t
    lh_mcp_body_max (lh_mcp_t *self);

//  Is version a protocol version this server speaks?
bool
    lh_mcp_version_supported (const char *version);

//  A JSON-RPC error response with id null, as text (caller frees); for
//  transports that refuse a message before it reaches a session
char *
    lh_mcp_error_text (int code, const char *message);

//  ---------------------------------------------------------------------
//  Sessions

//  A new session (one reference, the caller's)
lh_mcp_session_t *
    lh_mcp_session_new (lh_mcp_t *mcp);

//  Drop the caller's reference; the session goes with its last one.
//  Nulls the caller's pointer.
void
    lh_mcp_session_destroy (lh_mcp_session_t **self_p);

//  Take another reference (for a thread that keeps the session)
lh_mcp_session_t *
    lh_mcp_session_ref (lh_mcp_session_t *self);

//  Set the function called when a notification is queued (NULL: none)
void
    lh_mcp_session_set_wake (lh_mcp_session_t *self, lh_mcp_wake_fn *wake, void *arg);

//  Handle one message: size bytes of JSON text. Fills result (see
//  lh_mcp_result_t); the caller frees result->answer and destroys
//  result->call.
void
    lh_mcp_handle (lh_mcp_session_t *self, const char *data, size_t size,
                   lh_mcp_result_t *result);

//  Take the oldest queued notification (JSON text, the caller's), or NULL
char *
    lh_mcp_session_next (lh_mcp_session_t *self);

//  Notifications dropped because the outbox was full (mcp/queue_max)
size_t
    lh_mcp_session_dropped (lh_mcp_session_t *self);

//  Has initialize been answered?
bool
    lh_mcp_session_initialized (lh_mcp_session_t *self);

//  Requests of this session waiting on the bus
size_t
    lh_mcp_session_pending (lh_mcp_session_t *self);

//  The catalog changed (a catalog.changed event naming dataset name, or
//  NULL): queue notifications/resources/list_changed, and
//  notifications/resources/updated when the session subscribed to the
//  dataset's URI
void
    lh_mcp_session_catalog_changed (lh_mcp_session_t *self, const char *name);

//  ---------------------------------------------------------------------
//  Bus calls a request waits on

//  The call to make: service, op, msgpack body (borrowed; may be NULL
//  with size 0), deadline, trace id to send
const char *
    lh_mcp_call_service (lh_mcp_call_t *self);
const char *
    lh_mcp_call_op (lh_mcp_call_t *self);
const void *
    lh_mcp_call_body (lh_mcp_call_t *self, size_t *size);
uint32_t
    lh_mcp_call_timeout (lh_mcp_call_t *self);

//  The bus answered (reply borrowed; NULL when the bus could not be
//  reached). Returns 1 when another bus call is planned (service, op and
//  body changed: make it and finish again), or 0 when the request is
//  answered: *answer_p is the JSON response (the caller's), or NULL when
//  the client cancelled the request (nothing is sent).
int
    lh_mcp_call_finish (lh_mcp_call_t *self, lh_reply_t *reply, char **answer_p);

//  Destroy a call (finished or not); nulls the caller's pointer
void
    lh_mcp_call_destroy (lh_mcp_call_t **self_p);

//  Self test of this class
void
    lh_mcp_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
