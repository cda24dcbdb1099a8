/*  =========================================================================
    lh_mcp - the MCP server core; see lh_mcp.h

    One message goes: size check, JSON parse (lh_json_parse: UTF-8,
    depth, duplicate keys), JSON-RPC shape (jsonrpc "2.0", id a string
    or an integer, method a string, params an object), then the method.
    Methods answered at once: initialize, ping, tools/list,
    resources/templates/list, resources/subscribe, resources/unsubscribe,
    logging/setLevel. Methods that wait on the bus become a call:
    tools/call (one or more bus calls, lh_mcp_tools.h), resources/list
    (catalogd.list, paged here) and resources/read (catalogd.get).

    Errors. A message that is not JSON-RPC is answered -32700 or -32600
    with id null; an unknown method -32601; bad params -32602 (an unknown
    tool, a bad cursor, an invalid log level); a resource that does not
    exist -32002. A tool that fails - its arguments refused by its
    schema, its service answering an error status, no bus - answers a
    result with isError: true and a sentence saying why.
    =========================================================================
*/

#include "lh_mcp.h"
#include "lh_mcp_tools.h"
#include "lh_json.h"
#include "lh_log.h"
#include <sodium.h>
#include <pthread.h>
#include <inttypes.h>

#define S_LOGGER        "lakehouse"
#define S_ID_MAX        256             //  longest request id kept as a pending key
#define S_URI_MAX       2048            //  longest resource URI taken
#define S_CURSOR_MAX    128             //  longest cursor taken
#define S_DESCRIBE_COLUMNS 24           //  columns named in a resource's description

//  Protocol versions spoken, newest first
static const char *s_versions [] = { LH_MCP_PROTOCOL, "2025-06-18", "2025-03-26" };
#define S_VERSIONS      (sizeof (s_versions) / sizeof (s_versions [0]))

//  Log levels (RFC 5424 names), least severe first
static const char *s_levels [] = { "debug", "info", "notice", "warning", "error",
                                   "critical", "alert", "emergency" };
#define S_LEVELS        (sizeof (s_levels) / sizeof (s_levels [0]))
#define S_DEBUG         0
#define S_WARNING       3
#define S_ERROR         4

//  What a call is for
typedef enum {
    S_CALL_TOOL,                        //  tools/call
    S_CALL_LIST,                        //  resources/list
    S_CALL_READ                         //  resources/read
} s_kind_t;

struct _lh_mcp_t {
    size_t body_max;                    //  mcp/body_max
    size_t queue_max;                   //  mcp/queue_max
    size_t subscriptions_max;           //  mcp/subscriptions_max
    size_t page_size;                   //  mcp/page_size
    uint32_t timeout_ms;                //  mcp/timeout_ms
    int level;                          //  mcp/log_level (index in s_levels)
    bool fixtures;                      //  mcp/test_tools
    size_t tools;                       //  tools offered
    json_t **inputs;                    //  per tool: its input schema
    uint32_t *timeouts;                 //  per tool: its deadline
    char *tools_list;                   //  the tools/list result, as text
    char *templates_list;               //  the resources/templates/list result, as text
};

struct _lh_mcp_session_t {
    lh_mcp_t *mcp;                      //  the server (borrowed)
    pthread_mutex_t lock;               //  guards everything below
    int refs;                           //  references
    bool initialized;                   //  initialize was answered
    bool ready;                         //  notifications/initialized came
    char version [16];                  //  the protocol version agreed
    int level;                          //  least severe log level sent
    zlist_t *outbox;                    //  queued notifications (char *)
    size_t dropped;                     //  notifications dropped, outbox full
    zhashx_t *subscriptions;            //  resource URIs subscribed to
    zhashx_t *pending;                  //  request id text -> lh_mcp_call_t *
    lh_mcp_wake_fn *wake;               //  called when a notification is queued
    void *wake_arg;                     //  its argument
};

struct _lh_mcp_call_t {
    lh_mcp_session_t *session;          //  a reference
    json_t *id;                         //  the request's id
    char *key;                          //  the id as JSON text, its pending key
    s_kind_t kind;                      //  what the call is for
    const lh_mcp_tool_t *tool;          //  the tool, for S_CALL_TOOL
    json_t *args;                       //  its arguments
    lh_mcp_plan_t plan;                 //  its calls, step by step
    char *after;                        //  resources/list: the dataset_id to start after
    char *uri;                          //  resources/read: the URI asked for
    char service [LH_NAME_MAX + 1];     //  the bus call to make
    char op [LH_NAME_MAX + 1];          //  its op
    zframe_t *body;                     //  its body, or NULL
    uint32_t timeout_ms;                //  its deadline
    bool cancelled;                     //  notifications/cancelled named it
    int64_t started;                    //  zclock_mono when the request came
};


//  --------------------------------------------------------------------------
//  The index of a log level name, or -1

static int
s_level_index (const char *name)
{
    for (size_t index = 0; index < S_LEVELS; index++)
        if (streq (s_levels [index], name))
            return (int) index;
    return -1;
}


//  --------------------------------------------------------------------------
//  Is this a protocol version we speak?

bool
lh_mcp_version_supported (const char *version)
{
    if (!version)
        return false;
    for (size_t index = 0; index < S_VERSIONS; index++)
        if (streq (s_versions [index], version))
            return true;
    return false;
}


//  --------------------------------------------------------------------------
//  Annotations of a tool from its hints

static json_t *
s_annotations (const lh_mcp_tool_t *tool)
{
    json_t *annotations = json_object ();
    json_object_set_new (annotations, "title", json_string (tool->title));
    json_object_set_new (annotations, "readOnlyHint", json_boolean (tool->hints & LH_MCP_READ_ONLY));
    if (!(tool->hints & LH_MCP_READ_ONLY))
        json_object_set_new (annotations, "destructiveHint",
                             json_boolean (tool->hints & LH_MCP_DESTRUCTIVE));
    json_object_set_new (annotations, "idempotentHint", json_boolean (tool->hints & LH_MCP_IDEMPOTENT));
    json_object_set_new (annotations, "openWorldHint", json_boolean (tool->hints & LH_MCP_OPEN_WORLD));
    return annotations;
}


//  --------------------------------------------------------------------------
//  Create a server from the mcp/... keys

lh_mcp_t *
lh_mcp_new (lh_config_t *config)
{
    lh_mcp_t *self = (lh_mcp_t *) zmalloc (sizeof (lh_mcp_t));
    assert (self);
    self->body_max = (size_t) lh_config_int (config, "mcp/body_max");
    self->queue_max = (size_t) lh_config_int (config, "mcp/queue_max");
    self->subscriptions_max = (size_t) lh_config_int (config, "mcp/subscriptions_max");
    self->page_size = (size_t) lh_config_int (config, "mcp/page_size");
    self->timeout_ms = (uint32_t) lh_config_int (config, "mcp/timeout_ms");
    self->fixtures = lh_config_bool (config, "mcp/test_tools");
    self->level = s_level_index (lh_config_str (config, "mcp/log_level"));
    assert (self->level >= 0);          //  the key's range allows only the names

    //  The tool table, parsed once: input schemas, deadlines, tools/list
    while (lh_mcp_tools_at (self->tools, self->fixtures))
        self->tools++;
    self->inputs = (json_t **) calloc (self->tools, sizeof (json_t *));
    self->timeouts = (uint32_t *) calloc (self->tools, sizeof (uint32_t));
    assert (self->inputs && self->timeouts);
    json_t *list = json_array ();
    for (size_t index = 0; index < self->tools; index++) {
        const lh_mcp_tool_t *tool = lh_mcp_tools_at (index, self->fixtures);
        json_error_t error;
        self->inputs [index] = json_loads (tool->input_schema, 0, &error);
        assert (self->inputs [index]);  //  our own table (lh_mcp_tools_test)
        self->timeouts [index] = tool->timeout_key
                               ? (uint32_t) lh_config_int (config, tool->timeout_key)
                               : self->timeout_ms;
        json_t *entry = json_pack ("{s:s, s:s, s:s, s:O, s:o}", "name", tool->name,
                                   "title", tool->title, "description", tool->description,
                                   "inputSchema", self->inputs [index],
                                   "annotations", s_annotations (tool));
        if (tool->output_schema)
            json_object_set_new (entry, "outputSchema", json_loads (tool->output_schema, 0, &error));
        json_array_append_new (list, entry);
    }
    json_t *result = json_pack ("{s:o}", "tools", list);
    self->tools_list = json_dumps (result, JSON_COMPACT);
    json_decref (result);
    result = json_pack ("{s:[{s:s, s:s, s:s, s:s, s:s}]}", "resourceTemplates",
                        "uriTemplate", LH_MCP_URI_PREFIX "{name}", "name", "dataset",
                        "title", "A dataset's manifest",
                        "description", "The manifest of the dataset NAME (its schema, row count, "
                                       "storage objects), as catalogd keeps it",
                        "mimeType", "application/json");
    self->templates_list = json_dumps (result, JSON_COMPACT);
    json_decref (result);
    assert (self->tools_list && self->templates_list);
    return self;
}


//  --------------------------------------------------------------------------
//  Destroy a server

void
lh_mcp_destroy (lh_mcp_t **self_p)
{
    assert (self_p);
    lh_mcp_t *self = *self_p;
    if (self) {
        for (size_t index = 0; index < self->tools; index++)
            json_decref (self->inputs [index]);
        free (self->inputs);
        free (self->timeouts);
        free (self->tools_list);
        free (self->templates_list);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Largest message accepted

size_t
lh_mcp_body_max (lh_mcp_t *self)
{
    assert (self);
    return self->body_max;
}


//  --------------------------------------------------------------------------
//  A response as text: {"jsonrpc":"2.0","id":ID,"result":RESULT}. Takes
//  result.

static char *
s_result_text (const json_t *id, json_t *result)
{
    json_t *message = json_pack ("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result", result);
    char *text = json_dumps (message, JSON_COMPACT);
    json_decref (message);
    assert (text);
    return text;
}


//  --------------------------------------------------------------------------
//  A response whose result is already text (a cached list)

static char *
s_result_raw (const json_t *id, const char *result)
{
    char *id_text = json_dumps (id, JSON_COMPACT | JSON_ENCODE_ANY);
    assert (id_text);
    char *text = zsys_sprintf ("{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":%s}", id_text, result);
    free (id_text);
    assert (text);
    return text;
}


//  --------------------------------------------------------------------------
//  An error response as text (id NULL: null). Takes data (may be NULL).

static char *
s_error_text (const json_t *id, int code, const char *message, json_t *data)
{
    json_t *error = json_pack ("{s:i, s:s}", "code", code, "message", message);
    if (!error)                         //  a message that is not UTF-8: ours never are
        error = json_pack ("{s:i, s:s}", "code", code, "message", "(unprintable)");
    if (data)
        json_object_set_new (error, "data", data);
    json_t *message_json = json_pack ("{s:s, s:O, s:o}", "jsonrpc", "2.0",
                                      "id", id? id: json_null (), "error", error);
    char *text = json_dumps (message_json, JSON_COMPACT);
    json_decref (message_json);
    assert (text);
    return text;
}


//  --------------------------------------------------------------------------
//  A JSON-RPC error response with id null, as text

char *
lh_mcp_error_text (int code, const char *message)
{
    return s_error_text (NULL, code, message, NULL);
}


//  --------------------------------------------------------------------------
//  Set result to an error answer

static void
s_fail (lh_mcp_result_t *result, const json_t *id, int code, const char *message, json_t *data)
{
    result->error = code;
    result->answer = s_error_text (id, code, message, data);
}


//  --------------------------------------------------------------------------
//  A tool result with isError and a sentence

static json_t *
s_tool_error (const char *text)
{
    return json_pack ("{s:[{s:s, s:s}], s:b}", "content", "type", "text", "text", text, "isError", 1);
}


//  --------------------------------------------------------------------------
//  A tool result from a structured result (taken)

static json_t *
s_tool_result (json_t *structured)
{
    char *text = json_dumps (structured, JSON_COMPACT);
    assert (text);
    json_t *result = json_pack ("{s:[{s:s, s:s}], s:o}", "content", "type", "text", "text", text,
                                "structuredContent", structured);
    free (text);
    return result;
}


//  ---------------------------------------------------------------------
//  Sessions

//  --------------------------------------------------------------------------
//  A new session

lh_mcp_session_t *
lh_mcp_session_new (lh_mcp_t *mcp)
{
    assert (mcp);
    lh_mcp_session_t *self = (lh_mcp_session_t *) zmalloc (sizeof (lh_mcp_session_t));
    assert (self);
    self->mcp = mcp;
    pthread_mutex_init (&self->lock, NULL);
    self->refs = 1;
    self->level = mcp->level;
    self->outbox = zlist_new ();
    self->subscriptions = zhashx_new ();
    self->pending = zhashx_new ();
    assert (self->outbox && self->subscriptions && self->pending);
    return self;
}


//  --------------------------------------------------------------------------
//  Another reference

lh_mcp_session_t *
lh_mcp_session_ref (lh_mcp_session_t *self)
{
    assert (self);
    pthread_mutex_lock (&self->lock);
    self->refs++;
    pthread_mutex_unlock (&self->lock);
    return self;
}


//  --------------------------------------------------------------------------
//  Drop a reference; the last one destroys the session

void
lh_mcp_session_destroy (lh_mcp_session_t **self_p)
{
    assert (self_p);
    lh_mcp_session_t *self = *self_p;
    if (self) {
        pthread_mutex_lock (&self->lock);
        int refs = --self->refs;
        pthread_mutex_unlock (&self->lock);
        if (refs == 0) {
            char *text;
            while ((text = (char *) zlist_pop (self->outbox)))
                free (text);
            zlist_destroy (&self->outbox);
            zhashx_destroy (&self->subscriptions);
            //  Calls hold references: none can be pending now
            assert (zhashx_size (self->pending) == 0);
            zhashx_destroy (&self->pending);
            pthread_mutex_destroy (&self->lock);
            free (self);
        }
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Set the wake function

void
lh_mcp_session_set_wake (lh_mcp_session_t *self, lh_mcp_wake_fn *wake, void *arg)
{
    assert (self);
    pthread_mutex_lock (&self->lock);
    self->wake = wake;
    self->wake_arg = arg;
    pthread_mutex_unlock (&self->lock);
}


//  --------------------------------------------------------------------------
//  Queue a notification {"jsonrpc":"2.0","method":M,"params":P} (params
//  taken, may be NULL), dropping the oldest past mcp/queue_max; then wake

static void
s_notify (lh_mcp_session_t *self, const char *method, json_t *params)
{
    json_t *message = json_pack ("{s:s, s:s}", "jsonrpc", "2.0", "method", method);
    if (params)
        json_object_set_new (message, "params", params);
    char *text = json_dumps (message, JSON_COMPACT);
    json_decref (message);
    assert (text);
    pthread_mutex_lock (&self->lock);
    while (zlist_size (self->outbox) >= self->mcp->queue_max) {
        char *oldest = (char *) zlist_pop (self->outbox);
        free (oldest);
        self->dropped++;
    }
    zlist_append (self->outbox, text);
    lh_mcp_wake_fn *wake = self->wake;
    void *arg = self->wake_arg;
    pthread_mutex_unlock (&self->lock);
    if (wake)
        wake (arg);
}


//  --------------------------------------------------------------------------
//  Queue a log message (notifications/message) when the session's level
//  lets it through. Takes data.

static void
s_log (lh_mcp_session_t *self, int level, json_t *data)
{
    pthread_mutex_lock (&self->lock);
    bool wanted = self->initialized && level >= self->level;
    pthread_mutex_unlock (&self->lock);
    if (wanted)
        s_notify (self, "notifications/message",
                  json_pack ("{s:s, s:s, s:o}", "level", s_levels [level], "logger", S_LOGGER,
                             "data", data));
    else
        json_decref (data);
}


//  --------------------------------------------------------------------------
//  The oldest queued notification, or NULL

char *
lh_mcp_session_next (lh_mcp_session_t *self)
{
    assert (self);
    pthread_mutex_lock (&self->lock);
    char *text = (char *) zlist_pop (self->outbox);
    pthread_mutex_unlock (&self->lock);
    return text;
}


//  --------------------------------------------------------------------------
//  Notifications dropped so far

size_t
lh_mcp_session_dropped (lh_mcp_session_t *self)
{
    assert (self);
    pthread_mutex_lock (&self->lock);
    size_t dropped = self->dropped;
    pthread_mutex_unlock (&self->lock);
    return dropped;
}


//  --------------------------------------------------------------------------
//  Has initialize been answered?

bool
lh_mcp_session_initialized (lh_mcp_session_t *self)
{
    assert (self);
    pthread_mutex_lock (&self->lock);
    bool initialized = self->initialized;
    pthread_mutex_unlock (&self->lock);
    return initialized;
}


//  --------------------------------------------------------------------------
//  Requests waiting on the bus

size_t
lh_mcp_session_pending (lh_mcp_session_t *self)
{
    assert (self);
    pthread_mutex_lock (&self->lock);
    size_t pending = zhashx_size (self->pending);
    pthread_mutex_unlock (&self->lock);
    return pending;
}


//  --------------------------------------------------------------------------
//  Write name into a resource URI, percent-encoding all but the unreserved
//  characters of RFC 3986. Returns a new string.

static char *
s_uri_from_name (const char *name)
{
    size_t size = strlen (name);
    char *uri = (char *) malloc (strlen (LH_MCP_URI_PREFIX) + 3 * size + 1);
    assert (uri);
    char *at = uri + sprintf (uri, "%s", LH_MCP_URI_PREFIX);
    for (size_t index = 0; index < size; index++) {
        unsigned char c = (unsigned char) name [index];
        if (isalnum (c) || c == '-' || c == '.' || c == '_' || c == '~')
            *at++ = (char) c;
        else
            at += sprintf (at, "%%%02X", c);
    }
    *at = 0;
    return uri;
}


//  --------------------------------------------------------------------------
//  The dataset name of a resource URI (percent-decoded), or NULL if the
//  URI is not one of ours

static char *
s_name_from_uri (const char *uri)
{
    size_t prefix = strlen (LH_MCP_URI_PREFIX);
    if (strncmp (uri, LH_MCP_URI_PREFIX, prefix) != 0 || uri [prefix] == 0)
        return NULL;
    const char *from = uri + prefix;
    char *name = (char *) malloc (strlen (from) + 1);
    assert (name);
    char *at = name;
    while (*from) {
        if (*from == '%') {
            if (!isxdigit ((unsigned char) from [1]) || !isxdigit ((unsigned char) from [2]))
                break;
            char hex [3] = { from [1], from [2], 0 };
            *at = (char) strtol (hex, NULL, 16);
            if (*at == 0)
                break;
            at++;
            from += 3;
        }
        else
        if (*from == '/' || *from == '?' || *from == '#')
            break;
        else
            *at++ = *from++;
    }
    *at = 0;
    if (*from) {                        //  a bad escape, or more path after the name
        free (name);
        return NULL;
    }
    return name;
}


//  --------------------------------------------------------------------------
//  The catalog changed

void
lh_mcp_session_catalog_changed (lh_mcp_session_t *self, const char *name)
{
    assert (self);
    char *uri = name? s_uri_from_name (name): NULL;
    pthread_mutex_lock (&self->lock);
    bool initialized = self->initialized;
    bool subscribed = uri && zhashx_lookup (self->subscriptions, uri);
    pthread_mutex_unlock (&self->lock);
    if (initialized) {
        s_notify (self, "notifications/resources/list_changed", NULL);
        if (subscribed)
            s_notify (self, "notifications/resources/updated", json_pack ("{s:s}", "uri", uri));
    }
    free (uri);
}


//  ---------------------------------------------------------------------
//  Calls

//  --------------------------------------------------------------------------
//  A new call for request id (its key already checked free) of session

static lh_mcp_call_t *
s_call_new (lh_mcp_session_t *session, const json_t *id, char *key, s_kind_t kind)
{
    lh_mcp_call_t *self = (lh_mcp_call_t *) zmalloc (sizeof (lh_mcp_call_t));
    assert (self);
    self->session = lh_mcp_session_ref (session);
    self->id = json_deep_copy (id);
    self->key = key;
    self->kind = kind;
    self->started = zclock_mono ();
    self->timeout_ms = session->mcp->timeout_ms;
    pthread_mutex_lock (&session->lock);
    zhashx_insert (session->pending, key, self);
    pthread_mutex_unlock (&session->lock);
    return self;
}


//  --------------------------------------------------------------------------
//  Set the bus call to make. Takes body (NULL: none). Returns 0, or -1
//  with *error_p when the body cannot be packed.

static int
s_call_set (lh_mcp_call_t *self, const char *service, const char *op, const json_t *body,
            char **error_p)
{
    snprintf (self->service, sizeof (self->service), "%s", service);
    snprintf (self->op, sizeof (self->op), "%s", op);
    zframe_destroy (&self->body);
    if (body) {
        lh_pack_t *pack = lh_pack_new ();
        if (lh_json_to_pack (body, pack, &lh_limits_default, error_p)) {
            lh_pack_destroy (&pack);
            return -1;
        }
        self->body = lh_pack_frame (&pack);
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Destroy a call

void
lh_mcp_call_destroy (lh_mcp_call_t **self_p)
{
    assert (self_p);
    lh_mcp_call_t *self = *self_p;
    if (self) {
        lh_mcp_session_t *session = self->session;
        pthread_mutex_lock (&session->lock);
        if (zhashx_lookup (session->pending, self->key) == self)
            zhashx_delete (session->pending, self->key);
        pthread_mutex_unlock (&session->lock);
        lh_mcp_session_destroy (&self->session);
        json_decref (self->id);
        json_decref (self->args);
        json_decref (self->plan.body);
        free (self->plan.error);
        free (self->key);
        free (self->after);
        free (self->uri);
        zframe_destroy (&self->body);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  The bus service of the call to make

const char *
lh_mcp_call_service (lh_mcp_call_t *self)
{
    assert (self);
    return self->service;
}


//  --------------------------------------------------------------------------
//  Its op

const char *
lh_mcp_call_op (lh_mcp_call_t *self)
{
    assert (self);
    return self->op;
}


//  --------------------------------------------------------------------------
//  Its msgpack body (borrowed), NULL with *size 0 for none

const void *
lh_mcp_call_body (lh_mcp_call_t *self, size_t *size)
{
    assert (self && size);
    *size = self->body? zframe_size (self->body): 0;
    return self->body? zframe_data (self->body): NULL;
}


//  --------------------------------------------------------------------------
//  Its deadline, ms

uint32_t
lh_mcp_call_timeout (lh_mcp_call_t *self)
{
    assert (self);
    return self->timeout_ms;
}


//  --------------------------------------------------------------------------
//  A sentence for a bus error reply: "queryd.sql failed: 400 bad_sql:
//  near ..."; the body's JSON is added when it has not the SPEC shape or
//  the status is 422 (a validation verdict: the model needs all of it).
//  body may be NULL.

static char *
s_bus_error (const char *service, const char *op, lh_reply_t *reply, const json_t *body)
{
    uint32_t status = reply? lh_reply_status (reply): LH_ST_UNAVAILABLE;
    if (!reply)
        return zsys_sprintf ("%s.%s failed: the lakehouse bus cannot be reached", service, op);
    const json_t *error = json_object_get (body, "error");
    const char *kind = json_string_value (json_object_get (error, "kind"));
    const char *reason = json_string_value (json_object_get (error, "reason"));
    const char *field = json_string_value (json_object_get (error, "field"));
    char *text = json_dumps (body, JSON_COMPACT | JSON_ENCODE_ANY);
    bool whole = text && !json_is_null (body) && (status == LH_ST_UNPROCESSABLE || !reason);
    char *sentence = zsys_sprintf ("%s.%s failed: %u %s%s%s", service, op, status,
                                   kind? kind: lh_status_kind (status),
                                   reason? ": ": "", reason? reason: "");
    if (field) {
        char *longer = zsys_sprintf ("%s (field %s)", sentence, field);
        free (sentence);
        sentence = longer;
    }
    if (whole) {
        char *longer = zsys_sprintf ("%s: %s", sentence, text);
        free (sentence);
        sentence = longer;
    }
    free (text);
    return sentence;
}


//  --------------------------------------------------------------------------
//  Finish a tools/call. Returns 1 (another call planned), or 0 with the
//  result in *result_p.

static int
s_finish_tool (lh_mcp_call_t *self, lh_reply_t *reply, json_t *body, json_t **result_p)
{
    const lh_mcp_tool_t *tool = self->tool;
    uint32_t status = reply? lh_reply_status (reply): 0;
    char *error = NULL;
    if (status >= 200 && status < 300) {
        int rc = 0;
        if (tool->plan) {
            self->plan.step++;
            json_decref (self->plan.body);
            self->plan.body = NULL;
            rc = tool->plan (&self->plan, body);
            if (rc == 1 && s_call_set (self, self->plan.service, self->plan.op,
                                       self->plan.body, &error) == 0)
                return 1;
            if (rc == 1)
                rc = -1;
            else
            if (rc == -1) {
                error = self->plan.error;
                self->plan.error = NULL;
            }
        }
        if (rc == 0) {
            json_t *structured = tool->shape? tool->shape (body, &error)
                               : json_is_object (body)? json_incref (body): NULL;
            if (structured) {
                *result_p = s_tool_result (structured);
                return 0;
            }
            if (!error)
                error = strdup ("the reply is not a JSON object");
        }
        char *sentence = zsys_sprintf ("%s: %s.%s: %s", tool->name, self->service, self->op, error);
        *result_p = s_tool_error (sentence);
        free (sentence);
        free (error);
        return 0;
    }
    char *sentence = s_bus_error (self->service, self->op, reply, body);
    *result_p = s_tool_error (sentence);
    s_log (self->session, status >= 500 || !reply? S_ERROR: S_WARNING,
           json_pack ("{s:s, s:i, s:s}", "tool", tool->name, "status", (int) status,
                      "error", sentence));
    free (sentence);
    return 0;
}


//  --------------------------------------------------------------------------
//  A resource entry for a manifest (NULL if it has no name)

static json_t *
s_resource (const json_t *manifest)
{
    const char *name = json_string_value (json_object_get (manifest, "name"));
    if (!name)
        return NULL;
    char *uri = s_uri_from_name (name);
    json_t *rows = json_object_get (manifest, "row_count");
    json_t *schema = json_object_get (manifest, "schema");
    char *description = zsys_sprintf ("Dataset %s (table %s in query_sql): %" JSON_INTEGER_FORMAT
                                      " rows", name, name,
                                      json_is_integer (rows)? json_integer_value (rows): 0);
    if (json_is_array (schema) && json_array_size (schema)) {
        size_t columns = json_array_size (schema);
        char *longer = zsys_sprintf ("%s, %zu column%s:", description, columns, columns == 1? "": "s");
        free (description);
        description = longer;
        for (size_t index = 0; index < columns && index < S_DESCRIBE_COLUMNS; index++) {
            json_t *column = json_array_get (schema, index);
            const char *column_name = json_string_value (json_object_get (column, "name"));
            const char *type = json_string_value (json_object_get (column, "type"));
            longer = zsys_sprintf ("%s%s %s %s", description, index? ",": "",
                                   column_name? column_name: "?", type? type: "?");
            free (description);
            description = longer;
        }
        if (columns > S_DESCRIBE_COLUMNS) {
            longer = zsys_sprintf ("%s, ...", description);
            free (description);
            description = longer;
        }
    }
    json_t *resource = json_pack ("{s:s, s:s, s:s, s:s, s:s}", "uri", uri, "name", name,
                                  "title", name, "description", description,
                                  "mimeType", "application/json");
    free (uri);
    free (description);
    json_t *updated = json_object_get (manifest, "updated_ms");
    if (resource && json_is_integer (updated) && json_integer_value (updated) > 0) {
        time_t seconds = (time_t) (json_integer_value (updated) / 1000);
        struct tm tm;
        char when [32];
        if (gmtime_r (&seconds, &tm) && strftime (when, sizeof (when), "%Y-%m-%dT%H:%M:%SZ", &tm))
            json_object_set_new (resource, "annotations", json_pack ("{s:s}", "lastModified", when));
    }
    return resource;
}


//  --------------------------------------------------------------------------
//  A cursor for "after this dataset_id" (opaque: base64url of "after:ID")

static char *
s_cursor_make (const char *dataset_id)
{
    char *plain = zsys_sprintf ("after:%s", dataset_id);
    size_t size = sodium_base64_encoded_len (strlen (plain), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *cursor = (char *) malloc (size);
    assert (cursor);
    sodium_bin2base64 (cursor, size, (const unsigned char *) plain, strlen (plain),
                       sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    free (plain);
    return cursor;
}


//  --------------------------------------------------------------------------
//  The dataset_id a cursor names, or NULL if it is not one of ours

static char *
s_cursor_read (const char *cursor)
{
    size_t size = strlen (cursor);
    if (size == 0 || size > S_CURSOR_MAX)
        return NULL;
    unsigned char plain [S_CURSOR_MAX];
    size_t plain_size = 0;
    if (sodium_base642bin (plain, sizeof (plain) - 1, cursor, size, NULL, &plain_size, NULL,
                           sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0
    ||  plain_size <= 6 || memcmp (plain, "after:", 6) != 0)
        return NULL;
    for (size_t index = 6; index < plain_size; index++)
        if (!isxdigit (plain [index]) && plain [index] != '-')
            return NULL;
    return strndup ((const char *) plain + 6, plain_size - 6);
}


//  --------------------------------------------------------------------------
//  Finish resources/list: a page of catalogd.list's datasets (in
//  dataset_id order) after the cursor's

static char *
s_finish_list (lh_mcp_call_t *self, lh_reply_t *reply, json_t *body)
{
    uint32_t status = reply? lh_reply_status (reply): 0;
    if (status != LH_ST_OK || !json_is_array (json_object_get (body, "datasets"))) {
        char *sentence = status == LH_ST_OK
                       ? strdup ("catalogd.list answered without a list of datasets")
                       : s_bus_error ("catalogd", "list", reply, body);
        char *text = s_error_text (self->id, LH_MCP_INTERNAL_ERROR, sentence, NULL);
        free (sentence);
        return text;
    }
    json_t *datasets = json_object_get (body, "datasets");
    json_t *resources = json_array ();
    const char *last = NULL;
    bool more = false;
    size_t index;
    json_t *manifest;
    json_array_foreach (datasets, index, manifest) {
        const char *id = json_string_value (json_object_get (manifest, "dataset_id"));
        if (!id || (self->after && strcmp (id, self->after) <= 0))
            continue;
        if (json_array_size (resources) == self->session->mcp->page_size) {
            more = true;
            break;
        }
        json_t *resource = s_resource (manifest);
        if (resource) {
            json_array_append_new (resources, resource);
            last = id;
        }
    }
    json_t *result = json_pack ("{s:o}", "resources", resources);
    if (more && last) {
        char *cursor = s_cursor_make (last);
        json_object_set_new (result, "nextCursor", json_string (cursor));
        free (cursor);
    }
    return s_result_text (self->id, result);
}


//  --------------------------------------------------------------------------
//  Finish resources/read: the manifest as the resource's text

static char *
s_finish_read (lh_mcp_call_t *self, lh_reply_t *reply, json_t *body)
{
    uint32_t status = reply? lh_reply_status (reply): 0;
    if (status == LH_ST_NOT_FOUND)
        return s_error_text (self->id, LH_MCP_NOT_FOUND, "Resource not found",
                             json_pack ("{s:s}", "uri", self->uri));
    if (status != LH_ST_OK || !json_is_object (body)) {
        char *sentence = s_bus_error ("catalogd", "get", reply, body);
        char *text = s_error_text (self->id, LH_MCP_INTERNAL_ERROR, sentence, NULL);
        free (sentence);
        return text;
    }
    char *manifest = json_dumps (body, JSON_COMPACT);
    assert (manifest);
    json_t *result = json_pack ("{s:[{s:s, s:s, s:s}]}", "contents", "uri", self->uri,
                                "mimeType", "application/json", "text", manifest);
    free (manifest);
    return s_result_text (self->id, result);
}


//  --------------------------------------------------------------------------
//  The bus answered a call

int
lh_mcp_call_finish (lh_mcp_call_t *self, lh_reply_t *reply, char **answer_p)
{
    assert (self && answer_p);
    *answer_p = NULL;
    lh_mcp_session_t *session = self->session;
    pthread_mutex_lock (&session->lock);
    bool cancelled = self->cancelled;
    pthread_mutex_unlock (&session->lock);
    if (cancelled)
        return 0;
    //  The reply's body as JSON (null when it has none or is not JSON)
    json_t *body = NULL;
    size_t size = 0;
    const void *data = reply? lh_reply_body (reply, &size): NULL;
    if (data && size) {
        char *error = NULL;
        body = lh_json_from_msgpack (data, size, &lh_limits_default, &error);
        free (error);
    }
    if (!body)
        body = json_null ();
    if (self->kind == S_CALL_TOOL) {
        json_t *result = NULL;
        int rc = s_finish_tool (self, reply, body, &result);
        json_decref (body);
        if (rc == 1)
            return 1;
        uint32_t status = reply? lh_reply_status (reply): 0;
        s_log (session, S_DEBUG, json_pack ("{s:s, s:s, s:i, s:I}", "tool", self->tool->name,
                                            "call", self->service, "status", (int) status, "ms",
                                            (json_int_t) (zclock_mono () - self->started)));
        *answer_p = s_result_text (self->id, result);
        return 0;
    }
    *answer_p = self->kind == S_CALL_LIST? s_finish_list (self, reply, body)
                                         : s_finish_read (self, reply, body);
    json_decref (body);
    return 0;
}


//  ---------------------------------------------------------------------
//  Methods

//  --------------------------------------------------------------------------
//  initialize: agree a version, say what we offer

static void
s_initialize (lh_mcp_session_t *self, const json_t *id, const json_t *params,
              lh_mcp_result_t *result)
{
    const json_t *version = json_object_get (params, "protocolVersion");
    const json_t *capabilities = json_object_get (params, "capabilities");
    const json_t *client = json_object_get (params, "clientInfo");
    if (!json_is_string (version))
        return s_fail (result, id, LH_MCP_INVALID_PARAMS,
                       "initialize needs params.protocolVersion, a string such as \""
                       LH_MCP_PROTOCOL "\"", NULL);
    if ((capabilities && !json_is_object (capabilities)) || (client && !json_is_object (client)))
        return s_fail (result, id, LH_MCP_INVALID_PARAMS,
                       "initialize: params.capabilities and params.clientInfo must be objects", NULL);
    pthread_mutex_lock (&self->lock);
    bool again = self->initialized;
    const char *agreed = lh_mcp_version_supported (json_string_value (version))
                       ? json_string_value (version): LH_MCP_PROTOCOL;
    if (!again) {
        snprintf (self->version, sizeof (self->version), "%s", agreed);
        self->initialized = true;
    }
    pthread_mutex_unlock (&self->lock);
    if (again)
        return s_fail (result, id, LH_MCP_INVALID_REQUEST,
                       "this session is already initialized: start a new session to initialize again",
                       NULL);
    json_t *answer = json_pack (
        "{s:s, s:{s:{}, s:{s:b}, s:{s:b, s:b}}, s:{s:s, s:s, s:s}, s:s}",
        "protocolVersion", agreed,
        "capabilities", "logging", "tools", "listChanged", 0,
        "resources", "subscribe", 1, "listChanged", 1,
        "serverInfo", "name", LH_MCP_SERVER_NAME, "title", "Lakehouse",
        "version", LH_MCP_SERVER_VERSION,
        "instructions",
        "Lakehouse holds datasets (CSV files ingested as SQL tables), vector indexes, "
        "playbook memory and memory traces. Start with list_datasets, then query_sql; "
        "each dataset is also a resource (" LH_MCP_URI_PREFIX "NAME) whose contents are "
        "its manifest. A tool that fails answers an error result saying why.");
    result->initialize = true;
    result->answer = s_result_text (id, answer);
}


//  --------------------------------------------------------------------------
//  tools/call: check the arguments, then plan the first bus call

static void
s_tools_call (lh_mcp_session_t *self, const json_t *id, char *key, const json_t *params,
              lh_mcp_result_t *result)
{
    lh_mcp_t *mcp = self->mcp;
    const json_t *name = json_object_get (params, "name");
    const json_t *args = json_object_get (params, "arguments");
    if (!json_is_string (name)) {
        free (key);
        return s_fail (result, id, LH_MCP_INVALID_PARAMS,
                       "tools/call needs params.name, the tool's name (tools/list names them)", NULL);
    }
    const lh_mcp_tool_t *tool = NULL;
    size_t index;
    for (index = 0; index < mcp->tools; index++) {
        tool = lh_mcp_tools_at (index, mcp->fixtures);
        if (streq (tool->name, json_string_value (name)))
            break;
    }
    if (index == mcp->tools) {
        free (key);
        char *message = zsys_sprintf ("Unknown tool: %.128s (tools/list names the tools)",
                                      json_string_value (name));
        s_fail (result, id, LH_MCP_INVALID_PARAMS, message, NULL);
        free (message);
        return;
    }
    if (args && !json_is_object (args)) {
        free (key);
        return s_fail (result, id, LH_MCP_INVALID_PARAMS,
                       "tools/call: params.arguments must be an object", NULL);
    }
    json_t *arguments = args? json_incref ((json_t *) args): json_object ();
    char *error = NULL;
    if (lh_mcp_schema_check (mcp->inputs [index], arguments, &error)) {
        char *sentence = zsys_sprintf ("%s: %s", tool->name, error);
        result->answer = s_result_text (id, s_tool_error (sentence));
        free (sentence);
        free (error);
        free (key);
        json_decref (arguments);
        return;
    }
    if (tool->hints & LH_MCP_LOCAL) {
        bool is_error = false;
        const char *text = lh_mcp_tools_fixture (tool, &is_error);
        json_t *answer = json_pack ("{s:[{s:s, s:s}]}", "content", "type", "text", "text", text);
        if (is_error)
            json_object_set_new (answer, "isError", json_true ());
        result->answer = s_result_text (id, answer);
        free (key);
        json_decref (arguments);
        return;
    }
    lh_mcp_call_t *call = s_call_new (self, id, key, S_CALL_TOOL);
    call->tool = tool;
    call->args = arguments;
    call->timeout_ms = mcp->timeouts [index];
    call->plan.args = arguments;
    int rc = 1;
    if (tool->plan)
        rc = tool->plan (&call->plan, NULL);
    const char *service = tool->plan? call->plan.service: tool->service;
    const char *op = tool->plan? call->plan.op: tool->op;
    const json_t *body = tool->plan? call->plan.body: arguments;
    if (rc == 1 && s_call_set (call, service, op, body, &error) == 0) {
        result->call = call;
        return;
    }
    char *sentence = zsys_sprintf ("%s: %s", tool->name,
                                   rc == 1? error: call->plan.error? call->plan.error: "refused");
    result->answer = s_result_text (id, s_tool_error (sentence));
    free (sentence);
    free (error);
    lh_mcp_call_destroy (&call);
}


//  --------------------------------------------------------------------------
//  A request, once its shape was checked. key is the id as text (taken).

static void
s_request (lh_mcp_session_t *self, const json_t *id, char *key, const char *method,
           const json_t *params, lh_mcp_result_t *result)
{
    lh_mcp_t *mcp = self->mcp;
    if (streq (method, "ping")) {
        free (key);
        result->answer = s_result_text (id, json_object ());
        return;
    }
    if (streq (method, "initialize")) {
        free (key);
        return s_initialize (self, id, params, result);
    }
    if (!lh_mcp_session_initialized (self)) {
        free (key);
        return s_fail (result, id, LH_MCP_INVALID_REQUEST,
                       "this session is not initialized: send initialize first", NULL);
    }
    pthread_mutex_lock (&self->lock);
    bool taken = zhashx_lookup (self->pending, key) != NULL;
    pthread_mutex_unlock (&self->lock);
    if (taken) {
        free (key);
        return s_fail (result, id, LH_MCP_INVALID_REQUEST,
                       "this request id is in use by a request still in progress", NULL);
    }
    const json_t *cursor = json_object_get (params, "cursor");
    if (cursor && !json_is_string (cursor)) {
        free (key);
        return s_fail (result, id, LH_MCP_INVALID_PARAMS, "params.cursor must be a string", NULL);
    }
    if (streq (method, "tools/call"))
        return s_tools_call (self, id, key, params, result);
    if (streq (method, "tools/list") || streq (method, "resources/templates/list")) {
        free (key);
        if (cursor)                     //  we never hand out cursors for these
            return s_fail (result, id, LH_MCP_INVALID_PARAMS,
                           "invalid cursor: this list has one page", NULL);
        result->answer = s_result_raw (id, streq (method, "tools/list")? mcp->tools_list
                                                                      : mcp->templates_list);
        return;
    }
    if (streq (method, "resources/list")) {
        char *after = cursor? s_cursor_read (json_string_value (cursor)): NULL;
        if (cursor && !after) {
            free (key);
            return s_fail (result, id, LH_MCP_INVALID_PARAMS,
                           "invalid cursor: give back a nextCursor as resources/list returned it",
                           NULL);
        }
        lh_mcp_call_t *call = s_call_new (self, id, key, S_CALL_LIST);
        call->after = after;
        s_call_set (call, "catalogd", "list", NULL, NULL);
        result->call = call;
        return;
    }
    const json_t *uri = json_object_get (params, "uri");
    bool with_uri = streq (method, "resources/read") || streq (method, "resources/subscribe")
                 || streq (method, "resources/unsubscribe");
    if (with_uri && (!json_is_string (uri) || json_string_length (uri) == 0
                 ||  json_string_length (uri) > S_URI_MAX)) {
        free (key);
        return s_fail (result, id, LH_MCP_INVALID_PARAMS,
                       "params.uri must be a resource URI (a string of 1 to 2048 bytes)", NULL);
    }
    if (streq (method, "resources/read")) {
        char *name = s_name_from_uri (json_string_value (uri));
        if (!name) {
            free (key);
            return s_fail (result, id, LH_MCP_NOT_FOUND, "Resource not found",
                           json_pack ("{s:O, s:s}", "uri", uri, "reason",
                                      "lakehouse resources are " LH_MCP_URI_PREFIX "NAME"));
        }
        lh_mcp_call_t *call = s_call_new (self, id, key, S_CALL_READ);
        call->uri = strdup (json_string_value (uri));
        json_t *body = json_pack ("{s:s}", "name", name);
        char *error = NULL;
        s_call_set (call, "catalogd", "get", body, &error);
        json_decref (body);
        free (name);
        result->call = call;
        return;
    }
    if (streq (method, "resources/subscribe") || streq (method, "resources/unsubscribe")) {
        free (key);
        bool subscribe = streq (method, "resources/subscribe");
        pthread_mutex_lock (&self->lock);
        bool full = subscribe && !zhashx_lookup (self->subscriptions, json_string_value (uri))
                 && zhashx_size (self->subscriptions) >= mcp->subscriptions_max;
        if (!full && subscribe)
            zhashx_update (self->subscriptions, json_string_value (uri), (void *) 1);
        else
        if (!full)
            zhashx_delete (self->subscriptions, json_string_value (uri));
        pthread_mutex_unlock (&self->lock);
        if (full)
            return s_fail (result, id, LH_MCP_INVALID_PARAMS,
                           "too many subscriptions in this session (mcp/subscriptions_max): "
                           "unsubscribe from one first", NULL);
        result->answer = s_result_text (id, json_object ());
        return;
    }
    if (streq (method, "logging/setLevel")) {
        free (key);
        const json_t *level = json_object_get (params, "level");
        int index = json_is_string (level)? s_level_index (json_string_value (level)): -1;
        if (index < 0)
            return s_fail (result, id, LH_MCP_INVALID_PARAMS,
                           "params.level must be one of debug, info, notice, warning, error, "
                           "critical, alert, emergency", NULL);
        pthread_mutex_lock (&self->lock);
        self->level = index;
        pthread_mutex_unlock (&self->lock);
        result->answer = s_result_text (id, json_object ());
        return;
    }
    free (key);
    char *message = zsys_sprintf ("Method not found: %.128s", method);
    s_fail (result, id, LH_MCP_METHOD_NOT_FOUND, message, NULL);
    free (message);
}


//  --------------------------------------------------------------------------
//  A notification: initialized, cancelled; any other is ignored

static void
s_notification (lh_mcp_session_t *self, const char *method, const json_t *params)
{
    if (streq (method, "notifications/initialized")) {
        pthread_mutex_lock (&self->lock);
        self->ready = true;
        pthread_mutex_unlock (&self->lock);
    }
    else
    if (streq (method, "notifications/cancelled")) {
        const json_t *request = json_object_get (params, "requestId");
        if (!json_is_string (request) && !json_is_integer (request))
            return;                     //  malformed: ignored, as the spec says
        char *key = json_dumps (request, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!key)
            return;
        pthread_mutex_lock (&self->lock);
        lh_mcp_call_t *call = (lh_mcp_call_t *) zhashx_lookup (self->pending, key);
        if (call)
            call->cancelled = true;
        pthread_mutex_unlock (&self->lock);
        free (key);
    }
}


//  --------------------------------------------------------------------------
//  Handle one message

void
lh_mcp_handle (lh_mcp_session_t *self, const char *data, size_t size, lh_mcp_result_t *result)
{
    assert (self && result);
    memset (result, 0, sizeof (*result));
    result->in = LH_MCP_IN_INVALID;
    lh_mcp_t *mcp = self->mcp;
    if (size > mcp->body_max) {
        char *message = zsys_sprintf ("Invalid Request: the message is %zu bytes, over the limit "
                                      "of %zu (mcp/body_max)", size, mcp->body_max);
        s_fail (result, NULL, LH_MCP_INVALID_REQUEST, message, NULL);
        free (message);
        return;
    }
    char *error = NULL;
    json_t *message = lh_json_parse (data, size, &lh_limits_default, &error);
    if (!message) {
        char *text = zsys_sprintf ("Parse error: %s", error? error: "not JSON");
        s_fail (result, NULL, LH_MCP_PARSE_ERROR, text, NULL);
        free (text);
        free (error);
        return;
    }
    if (json_is_array (message))
        s_fail (result, NULL, LH_MCP_INVALID_REQUEST,
                "Invalid Request: batches (JSON arrays) are not part of protocol " LH_MCP_PROTOCOL
                ": send one message at a time", NULL);
    else
    if (!json_is_object (message))
        s_fail (result, NULL, LH_MCP_INVALID_REQUEST,
                "Invalid Request: a JSON-RPC message is an object", NULL);
    if (result->answer) {
        json_decref (message);
        return;
    }
    const json_t *id = json_object_get (message, "id");
    const json_t *method = json_object_get (message, "method");
    const json_t *params = json_object_get (message, "params");
    const json_t *version = json_object_get (message, "jsonrpc");
    bool id_valid = id && (json_is_string (id) || json_is_integer (id));
    char *key = id_valid? json_dumps (id, JSON_COMPACT | JSON_ENCODE_ANY): NULL;
    if (key && strlen (key) > S_ID_MAX) {
        id_valid = false;
        zstr_free (&key);
    }
    const json_t *reply_id = id_valid? id: NULL;
    if (!json_is_string (version) || !streq (json_string_value (version), "2.0"))
        s_fail (result, reply_id, LH_MCP_INVALID_REQUEST,
                "Invalid Request: jsonrpc must be \"2.0\"", NULL);
    else
    if (id && !id_valid)
        s_fail (result, NULL, LH_MCP_INVALID_REQUEST, json_is_string (id)
                ? "Invalid Request: the id is longer than 256 bytes"
                : "Invalid Request: id must be a string or an integer (not null)", NULL);
    else
    if (!method) {
        bool response = id && (json_object_get (message, "result") != NULL)
                           != (json_object_get (message, "error") != NULL);
        if (response)
            result->in = LH_MCP_IN_RESPONSE;    //  we send no requests: nothing to match
        else
            s_fail (result, reply_id, LH_MCP_INVALID_REQUEST,
                    "Invalid Request: a message needs a method (a request or a notification), "
                    "or an id and one of result or error (a response)", NULL);
    }
    else
    if (!json_is_string (method))
        s_fail (result, reply_id, LH_MCP_INVALID_REQUEST, "Invalid Request: method must be a string",
                NULL);
    else
    if (params && !json_is_object (params))
        s_fail (result, reply_id, id? LH_MCP_INVALID_PARAMS: LH_MCP_INVALID_REQUEST,
                "params must be an object", NULL);
    else
    if (!id) {
        result->in = LH_MCP_IN_NOTIFICATION;
        s_notification (self, json_string_value (method), params);
    }
    else {
        result->in = LH_MCP_IN_REQUEST;
        s_request (self, id, key, json_string_value (method), params, result);
        key = NULL;
    }
    //  A request is a request even when answered with an error
    if (result->error && id_valid && method && json_is_string (method))
        result->in = LH_MCP_IN_REQUEST;
    free (key);
    json_decref (message);
}


//  ---------------------------------------------------------------------
//  Self test

#include "lh_testbus.h"
#include "storaged.h"
#include "catalogd.h"

//  --------------------------------------------------------------------------
//  Handle text, expect an answer; returns it parsed (caller decrefs)

static json_t *
s_test_answer (lh_mcp_session_t *session, const char *text, lh_mcp_in_t in, int error)
{
    lh_mcp_result_t result;
    lh_mcp_handle (session, text, strlen (text), &result);
    if (result.in != in || result.error != error || !result.answer)
        printf ("\n   %s -> in %d error %d answer %s\n", text, result.in, result.error,
                result.answer? result.answer: "(none)");
    assert (result.in == in && result.error == error && result.answer && !result.call);
    assert (!strchr (result.answer, '\n'));
    json_t *answer = json_loads (result.answer, 0, NULL);
    assert (answer);
    free (result.answer);
    return answer;
}

//  --------------------------------------------------------------------------
//  Run a request's bus calls through client; returns the answer parsed

static json_t *
s_test_call (lh_mcp_session_t *session, lh_client_t *client, const char *text)
{
    lh_mcp_result_t result;
    lh_mcp_handle (session, text, strlen (text), &result);
    if (!result.call)
        printf ("\n   %s -> %s\n", text, result.answer? result.answer: "(none)");
    assert (result.in == LH_MCP_IN_REQUEST && result.call && !result.answer);
    lh_mcp_call_t *call = result.call;
    char *answer = NULL;
    while (true) {
        size_t size;
        const void *body = lh_mcp_call_body (call, &size);
        lh_call_opts_t opts = { .timeout_ms = lh_mcp_call_timeout (call) };
        lh_reply_t *reply = NULL;
        lh_client_call (client, lh_mcp_call_service (call), lh_mcp_call_op (call), body, size,
                        &opts, &reply);
        int rc = lh_mcp_call_finish (call, reply, &answer);
        lh_reply_destroy (&reply);
        if (rc == 0)
            break;
    }
    lh_mcp_call_destroy (&call);
    assert (answer);
    json_t *parsed = json_loads (answer, 0, NULL);
    assert (parsed);
    free (answer);
    return parsed;
}

//  --------------------------------------------------------------------------
//  Count wakes

static void
s_test_wake (void *arg)
{
    (*(int *) arg)++;
}


//  --------------------------------------------------------------------------
//  Self test: malformed messages, initialize, tools, resources through
//  catalogd on a test bus, failures, cancellation, notifications

void
lh_mcp_test (bool verbose)
{
    printf (" * lh_mcp: ");
    lh_testbus_t *bus = lh_testbus_new ("mcp");
    lh_testbus_set (bus, "mcp/page_size", "2");
    lh_testbus_set (bus, "mcp/test_tools", "true");
    lh_testbus_set (bus, "mcp/queue_max", "4");
    lh_mcp_t *mcp = lh_mcp_new (lh_testbus_config (bus));
    lh_mcp_session_t *session = lh_mcp_session_new (mcp);
    int wakes = 0;
    lh_mcp_session_set_wake (session, s_test_wake, &wakes);

    //  Not JSON-RPC: each answered with an error, id null
    struct {
        const char *text;
        int error;
    } bad [] = {         //  all answered with id null but the last two (their id is readable)
        { "", LH_MCP_PARSE_ERROR },
        { "{", LH_MCP_PARSE_ERROR },
        { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"} x", LH_MCP_PARSE_ERROR },
        { "{\"a\":1,\"a\":2}", LH_MCP_PARSE_ERROR },
        { "\xff\xfe", LH_MCP_PARSE_ERROR },
        { "{\"jsonrpc\":\"2.0\",\"id\":99999999999999999999999,\"method\":\"ping\"}", LH_MCP_PARSE_ERROR },
        { "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]", LH_MCP_INVALID_REQUEST },
        { "[]", LH_MCP_INVALID_REQUEST },
        { "42", LH_MCP_INVALID_REQUEST },
        { "\"ping\"", LH_MCP_INVALID_REQUEST },
        { "null", LH_MCP_INVALID_REQUEST },
        { "{}", LH_MCP_INVALID_REQUEST },
        { "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}", LH_MCP_INVALID_REQUEST },
        { "{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}", LH_MCP_INVALID_REQUEST },
        { "{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"ping\"}", LH_MCP_INVALID_REQUEST },
        { "{\"jsonrpc\":\"2.0\",\"id\":[1],\"method\":\"ping\"}", LH_MCP_INVALID_REQUEST },
        { "{\"jsonrpc\":\"2.0\",\"method\":7}", LH_MCP_INVALID_REQUEST },
        { "{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"params\":[1]}", LH_MCP_INVALID_REQUEST },
        { "{\"jsonrpc\":\"2.0\",\"id\":1}", LH_MCP_INVALID_REQUEST },
        { "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},\"error\":{}}", LH_MCP_INVALID_REQUEST },
    };
    for (size_t index = 0; index < sizeof (bad) / sizeof (bad [0]); index++) {
        json_t *answer = s_test_answer (session, bad [index].text, LH_MCP_IN_INVALID, bad [index].error);
        assert (json_is_null (json_object_get (answer, "id"))
                == (index < sizeof (bad) / sizeof (bad [0]) - 2));
        assert (json_integer_value (json_object_get (json_object_get (answer, "error"), "code"))
                == bad [index].error);
        if (verbose)
            printf ("\n   %.40s -> %s", bad [index].text,
                    json_string_value (json_object_get (json_object_get (answer, "error"), "message")));
        json_decref (answer);
    }
    //  Requests with a readable id keep it, even in errors
    json_t *answer = s_test_answer (session, "{\"jsonrpc\":\"1.0\",\"id\":\"a\",\"method\":\"ping\"}",
                                    LH_MCP_IN_REQUEST, LH_MCP_INVALID_REQUEST);
    assert (streq (json_string_value (json_object_get (answer, "id")), "a"));
    json_decref (answer);
    answer = s_test_answer (session, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\",\"params\":3}",
                            LH_MCP_IN_REQUEST, LH_MCP_INVALID_PARAMS);
    json_decref (answer);
    //  Ping before initialize; anything else is refused until then
    answer = s_test_answer (session, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}",
                            LH_MCP_IN_REQUEST, 0);
    assert (json_object_size (json_object_get (answer, "result")) == 0);
    json_decref (answer);
    answer = s_test_answer (session, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}",
                            LH_MCP_IN_REQUEST, LH_MCP_INVALID_REQUEST);
    json_decref (answer);
    //  A response, a notification: nothing to answer
    lh_mcp_result_t result;
    const char *quiet [] = { "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}",
                             "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/whatever\"}",
                             "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{}}" };
    for (size_t index = 0; index < 3; index++) {
        lh_mcp_handle (session, quiet [index], strlen (quiet [index]), &result);
        assert (!result.answer && !result.call && result.error == 0);
        assert (result.in == (index == 0? LH_MCP_IN_RESPONSE: LH_MCP_IN_NOTIFICATION));
    }
    //  initialize: params checked, version agreed, then only once
    answer = s_test_answer (session, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"initialize\",\"params\":{}}",
                            LH_MCP_IN_REQUEST, LH_MCP_INVALID_PARAMS);
    json_decref (answer);
    const char *init = "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"initialize\",\"params\":{"
                       "\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},"
                       "\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}";
    lh_mcp_handle (session, init, strlen (init), &result);
    assert (result.initialize && result.answer);
    answer = json_loads (result.answer, 0, NULL);
    free (result.answer);
    json_t *value = json_object_get (answer, "result");
    assert (streq (json_string_value (json_object_get (value, "protocolVersion")), "2025-06-18"));
    assert (json_is_true (json_object_get (json_object_get (json_object_get (value, "capabilities"),
                                                            "resources"), "listChanged")));
    json_decref (answer);
    answer = s_test_answer (session, init, LH_MCP_IN_REQUEST, LH_MCP_INVALID_REQUEST);
    json_decref (answer);
    lh_mcp_session_t *other = lh_mcp_session_new (mcp);
    answer = s_test_answer (other, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":"
                            "{\"protocolVersion\":\"1999-01-01\"}}", LH_MCP_IN_REQUEST, 0);
    assert (streq (json_string_value (json_object_get (json_object_get (answer, "result"),
                                                       "protocolVersion")), LH_MCP_PROTOCOL));
    json_decref (answer);
    lh_mcp_session_destroy (&other);
    assert (lh_mcp_version_supported ("2025-03-26") && !lh_mcp_version_supported ("2024-11-05"));

    //  tools/list: every tool with a description and schemas; unknown
    //  methods, unknown tools, bad arguments, bad levels
    answer = s_test_answer (session, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/list\"}",
                            LH_MCP_IN_REQUEST, 0);
    json_t *tools = json_object_get (json_object_get (answer, "result"), "tools");
    assert (json_array_size (tools) == mcp->tools && mcp->tools >= 15);
    size_t index;
    json_array_foreach (tools, index, value)
        assert (json_is_string (json_object_get (value, "description"))
                && json_is_object (json_object_get (value, "inputSchema")));
    json_decref (answer);
    struct {
        const char *text;
        int error;
    } refused [] = {
        { "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"prompts/list\"}", LH_MCP_METHOD_NOT_FOUND },
        { "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{\"name\":\"nope\"}}",
          LH_MCP_INVALID_PARAMS },
        { "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{}}", LH_MCP_INVALID_PARAMS },
        { "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{\"name\":\"query_sql\","
          "\"arguments\":[1]}}", LH_MCP_INVALID_PARAMS },
        { "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/list\",\"params\":{\"cursor\":\"x\"}}",
          LH_MCP_INVALID_PARAMS },
        { "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"resources/list\",\"params\":{\"cursor\":\"bm9wZQ\"}}",
          LH_MCP_INVALID_PARAMS },
        { "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"resources/list\",\"params\":{\"cursor\":5}}",
          LH_MCP_INVALID_PARAMS },
        { "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"resources/read\",\"params\":{\"uri\":\"file:///etc\"}}",
          LH_MCP_NOT_FOUND },
        { "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"resources/read\",\"params\":{}}", LH_MCP_INVALID_PARAMS },
        { "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"logging/setLevel\",\"params\":{\"level\":\"loud\"}}",
          LH_MCP_INVALID_PARAMS },
    };
    for (index = 0; index < sizeof (refused) / sizeof (refused [0]); index++) {
        answer = s_test_answer (session, refused [index].text, LH_MCP_IN_REQUEST, refused [index].error);
        assert (json_integer_value (json_object_get (answer, "id")) == 5);
        json_decref (answer);
    }
    //  Bad arguments and fixtures: results, isError where they fail
    answer = s_test_answer (session, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/call\",\"params\":"
                            "{\"name\":\"query_sql\",\"arguments\":{\"sql\":5}}}", LH_MCP_IN_REQUEST, 0);
    value = json_object_get (answer, "result");
    assert (json_is_true (json_object_get (value, "isError")));
    assert (strstr (json_string_value (json_object_get (json_array_get (json_object_get (value, "content"),
                                                                        0), "text")),
                    "arguments.sql: must be a string"));
    json_decref (answer);
    answer = s_test_answer (session, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/call\",\"params\":"
                            "{\"name\":\"test_error_handling\"}}", LH_MCP_IN_REQUEST, 0);
    assert (json_is_true (json_object_get (json_object_get (answer, "result"), "isError")));
    json_decref (answer);
    answer = s_test_answer (session, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"logging/setLevel\","
                            "\"params\":{\"level\":\"debug\"}}", LH_MCP_IN_REQUEST, 0);
    json_decref (answer);

    //  Through the bus: catalogd over storaged, five datasets paged by two
    lh_testbus_start (bus, &lh_storaged_service, 1);
    lh_testbus_start (bus, &lh_catalogd_service, 1);
    lh_client_t *client = lh_testbus_client (bus);
    const char *names [] = { "alpha", "beta", "gamma set", "delta", "eps" };
    for (index = 0; index < 5; index++) {
        char *body = zsys_sprintf ("{\"name\": \"%s\", \"schema_fingerprint\": \"f%zu\", \"schema\": "
                                   "[{\"name\": \"id\", \"type\": \"BIGINT\"}], \"row_count\": %zu}",
                                   names [index], index, index);
        assert (lh_testbus_status (bus, "catalogd", "register", body) == 201);
        free (body);
    }
    zhashx_t *seen = zhashx_new ();
    char *cursor = NULL;
    size_t pages = 0;
    do {
        char *text = cursor
            ? zsys_sprintf ("{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"resources/list\",\"params\":"
                            "{\"cursor\":\"%s\"}}", cursor)
            : strdup ("{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"resources/list\"}");
        answer = s_test_call (session, client, text);
        free (text);
        zstr_free (&cursor);
        value = json_object_get (answer, "result");
        json_t *resources = json_object_get (value, "resources");
        assert (json_array_size (resources) <= 2);
        json_t *resource;
        json_array_foreach (resources, index, resource) {
            const char *uri = json_string_value (json_object_get (resource, "uri"));
            assert (uri && !zhashx_lookup (seen, uri));
            zhashx_insert (seen, uri, (void *) 1);
            assert (json_is_string (json_object_get (resource, "description")));
        }
        if (json_is_string (json_object_get (value, "nextCursor")))
            cursor = strdup (json_string_value (json_object_get (value, "nextCursor")));
        json_decref (answer);
        pages++;
    } while (cursor && pages < 10);
    assert (zhashx_size (seen) == 5 && pages == 3);
    assert (zhashx_lookup (seen, LH_MCP_URI_PREFIX "gamma%20set"));
    zhashx_destroy (&seen);
    //  Read one, read one that is not there
    answer = s_test_call (session, client, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"resources/read\","
                          "\"params\":{\"uri\":\"" LH_MCP_URI_PREFIX "gamma%20set\"}}");
    value = json_array_get (json_object_get (json_object_get (answer, "result"), "contents"), 0);
    assert (strstr (json_string_value (json_object_get (value, "text")), "\"gamma set\""));
    json_decref (answer);
    answer = s_test_call (session, client, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"resources/read\","
                          "\"params\":{\"uri\":\"" LH_MCP_URI_PREFIX "zeta\"}}");
    assert (json_integer_value (json_object_get (json_object_get (answer, "error"), "code"))
            == LH_MCP_NOT_FOUND);
    json_decref (answer);
    //  Tools: list_datasets, get_manifest, and one that fails (isError)
    answer = s_test_call (session, client, "{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"tools/call\","
                          "\"params\":{\"name\":\"list_datasets\"}}");
    value = json_object_get (json_object_get (answer, "result"), "structuredContent");
    assert (json_integer_value (json_object_get (value, "count")) == 5);
    json_decref (answer);
    char *text_before = lh_mcp_session_next (session);    //  the debug log of that call
    assert (text_before && strstr (text_before, "notifications/message"));
    zstr_free (&text_before);
    answer = s_test_call (session, client, "{\"jsonrpc\":\"2.0\",\"id\":\"m\",\"method\":\"tools/call\","
                          "\"params\":{\"name\":\"get_manifest\",\"arguments\":{\"name\":\"nope\"}}}");
    value = json_object_get (answer, "result");
    const char *text = json_string_value (json_object_get (json_array_get (json_object_get (value, "content"),
                                                                          0), "text"));
    if (verbose)
        printf ("\n   get_manifest nope -> %s", text);
    assert (json_is_true (json_object_get (value, "isError")) && strstr (text, "404 no_such_dataset"));
    assert (!json_object_get (value, "structuredContent"));
    json_decref (answer);
    //  No bus: an error result
    const char *listing = "{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"tools/call\",\"params\":"
                          "{\"name\":\"list_datasets\"}}";
    lh_mcp_handle (session, listing, strlen (listing), &result);
    assert (result.call);
    char *reply_text = NULL;
    assert (lh_mcp_call_finish (result.call, NULL, &reply_text) == 0 && reply_text);
    assert (strstr (reply_text, "cannot be reached") && strstr (reply_text, "\"isError\":true"));
    free (reply_text);
    lh_mcp_call_destroy (&result.call);
    //  Cancelled: no answer; the id is free again after
    listing = "{\"jsonrpc\":\"2.0\",\"id\":12,\"method\":\"tools/call\",\"params\":"
              "{\"name\":\"list_datasets\"}}";
    lh_mcp_handle (session, listing, strlen (listing), &result);
    assert (result.call && lh_mcp_session_pending (session) == 1);
    lh_mcp_call_t *held = result.call;
    answer = s_test_answer (session, "{\"jsonrpc\":\"2.0\",\"id\":12,\"method\":\"ping\"}",
                            LH_MCP_IN_REQUEST, 0);           //  ping is never held
    json_decref (answer);
    answer = s_test_answer (session, "{\"jsonrpc\":\"2.0\",\"id\":12,\"method\":\"tools/list\"}",
                            LH_MCP_IN_REQUEST, LH_MCP_INVALID_REQUEST);
    json_decref (answer);
    const char *cancel = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":12}}";
    lh_mcp_handle (session, cancel, strlen (cancel), &result);
    assert (!result.answer && !result.call);
    assert (lh_mcp_call_finish (held, NULL, &reply_text) == 0 && reply_text == NULL);
    lh_mcp_call_destroy (&held);
    assert (lh_mcp_session_pending (session) == 0);

    //  Notifications: list_changed for everyone, updated for a subscriber;
    //  the outbox keeps the newest mcp/queue_max (4)
    while ((text_before = lh_mcp_session_next (session)))
        zstr_free (&text_before);
    answer = s_test_answer (session, "{\"jsonrpc\":\"2.0\",\"id\":13,\"method\":\"resources/subscribe\","
                            "\"params\":{\"uri\":\"" LH_MCP_URI_PREFIX "gamma%20set\"}}", LH_MCP_IN_REQUEST, 0);
    json_decref (answer);
    int wakes_before = wakes;
    lh_mcp_session_catalog_changed (session, "gamma set");
    assert (wakes == wakes_before + 2);
    char *first = lh_mcp_session_next (session);
    char *second = lh_mcp_session_next (session);
    assert (first && strstr (first, "notifications/resources/list_changed"));
    assert (second && strstr (second, "notifications/resources/updated")
            && strstr (second, "gamma%20set"));
    free (first);
    free (second);
    for (index = 0; index < 6; index++)
        lh_mcp_session_catalog_changed (session, "alpha");
    size_t queued = 0;
    while ((first = lh_mcp_session_next (session))) {
        free (first);
        queued++;
    }
    assert (queued == 4 && lh_mcp_session_dropped (session) == 2);

    lh_mcp_session_destroy (&session);
    lh_mcp_destroy (&mcp);
    lh_testbus_destroy (&bus);
    printf ("OK\n");
}
