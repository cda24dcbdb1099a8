/*  =========================================================================
    lh_routes - the gateway's HTTP routes, declared in one table

    See lh_routes.h for the pattern syntax and how a request is mapped.
    docs/http.md documents every row with a curl example.
    =========================================================================
*/

#include "lh_routes.h"
#include "lh_json.h"

//  The route table. One row per route; each service issue adds its rows.
//  Columns: method, pattern, service, op, query params, body in, reply
//  out, flags, body limit (0 = gateway/body_max).

static const lh_route_t s_routes [] = {
    LH_ROUTE ("GET",    "/health",            NULL,    "health", NULL, LH_IN_NONE, LH_OUT_JSON, LH_ROUTE_OPEN, NULL, NULL),
    LH_ROUTE ("POST",   "/v1/bus/{svc}/{op}", "{svc}", "{op}",   NULL, LH_IN_JSON, LH_OUT_JSON, 0, NULL, NULL),
    //  The console (docs/console.md): its files, the tap as Server-Sent Events
    LH_ROUTE ("GET",    "/console",           NULL,    "console", NULL, LH_IN_NONE, LH_OUT_JSON, LH_ROUTE_OPEN, NULL, NULL),
    LH_ROUTE ("GET",    "/console/{file*}",   NULL,    "console", NULL, LH_IN_NONE, LH_OUT_JSON, LH_ROUTE_OPEN, NULL, NULL),
    LH_ROUTE ("GET",    "/v1/tap/stream",     NULL,    "tap_stream", NULL, LH_IN_NONE, LH_OUT_JSON, 0, NULL, NULL),
    //  storaged (SPEC 5.1, docs/storaged.md)
    LH_ROUTE ("GET",    "/v1/storage",        "storaged", "list", "prefix,start_after,continuation,limit:int",
                                                                         LH_IN_NONE,   LH_OUT_JSON,   0, NULL, NULL),
    LH_ROUTE ("PUT",    "/v1/storage/{key*}", "storaged", "put",    NULL, LH_IN_UPLOAD, LH_OUT_JSON,   0,
              "gateway/storage_max", "gateway/storage_timeout_ms"),
    LH_ROUTE ("GET",    "/v1/storage/{key*}", "storaged", "get",    NULL, LH_IN_NONE,   LH_OUT_STREAM, 0,
              NULL, "gateway/storage_timeout_ms"),
    LH_ROUTE ("HEAD",   "/v1/storage/{key*}", "storaged", "head",   NULL, LH_IN_NONE,   LH_OUT_HEAD,   0, NULL, NULL),
    LH_ROUTE ("DELETE", "/v1/storage/{key*}", "storaged", "delete", NULL, LH_IN_NONE,   LH_OUT_JSON,   0, NULL, NULL),
    //  catalogd (SPEC 5.2, docs/catalogd.md)
    LH_ROUTE ("GET",    "/v1/catalog/list",   "catalogd", "list",   NULL, LH_IN_NONE,   LH_OUT_JSON,   0, NULL, NULL),
    LH_ROUTE ("GET",    "/v1/catalog/manifest/{name}", "catalogd", "get", NULL, LH_IN_NONE, LH_OUT_JSON, 0, NULL, NULL),
    //  ingestd and queryd (SPEC 5.3, 5.4)
    LH_ROUTE ("POST",   "/v1/ingest",         "ingestd",  "ingest", "name", LH_IN_INGEST, LH_OUT_JSON, 0,
              "ingest/max_bytes", "gateway/ingest_timeout_ms"),
    LH_ROUTE ("POST",   "/v1/sql",            "queryd",   "sql",    NULL, LH_IN_JSON,   LH_OUT_JSON,   0,
              NULL, "gateway/sql_timeout_ms"),
    //  chatd and validatord (SPEC 5.7, 5.8)
    LH_ROUTE ("POST",   "/v1/chat",           "chatd",    "chat",   NULL, LH_IN_JSON,   LH_OUT_JSON,   0,
              NULL, "gateway/chat_timeout_ms"),
    LH_ROUTE ("GET",    "/v1/chat/providers", "chatd",    "providers", NULL, LH_IN_NONE, LH_OUT_JSON,  0, NULL, NULL),
    LH_ROUTE ("POST",   "/v1/validate",       "validatord", "validate", NULL, LH_IN_JSON, LH_OUT_JSON, 0, NULL, NULL),
    LH_ROUTE ("POST",   "/v1/iterate",        "validatord", "iterate",  NULL, LH_IN_JSON, LH_OUT_JSON, 0,
              NULL, "gateway/iterate_timeout_ms"),
    LH_ROUTE ("GET",    "/v1/iterate/sessions", "validatord", "sessions", "limit:int,since", LH_IN_NONE,
                                                                         LH_OUT_JSON,   0, NULL, NULL),
    //  vectord and embedd (SPEC 5.5, 5.6; docs/vectord.md, docs/embedd.md)
    LH_ROUTE ("POST",   "/v1/vectors/index",  "vectord",  "create", NULL, LH_IN_JSON,   LH_OUT_JSON,   0,
              NULL, "gateway/vectors_timeout_ms"),
    LH_ROUTE ("GET",    "/v1/vectors/index",  "vectord",  "list",   NULL, LH_IN_NONE,   LH_OUT_JSON,   0, NULL, NULL),
    LH_ROUTE ("GET",    "/v1/vectors/index/{name}", "vectord", "info", NULL, LH_IN_NONE, LH_OUT_JSON,  0, NULL, NULL),
    LH_ROUTE ("DELETE", "/v1/vectors/index/{name}", "vectord", "drop", NULL, LH_IN_NONE, LH_OUT_JSON,  0,
              NULL, "gateway/vectors_timeout_ms"),
    LH_ROUTE ("POST",   "/v1/vectors/index/{name}/add", "vectord", "add", NULL, LH_IN_JSON, LH_OUT_JSON, 0,
              "gateway/vectors_max", "gateway/vectors_timeout_ms"),
    LH_ROUTE ("POST",   "/v1/vectors/index/{name}/search", "vectord", "search", NULL, LH_IN_JSON, LH_OUT_JSON, 0,
              "gateway/vectors_max", "gateway/vectors_timeout_ms"),
    LH_ROUTE ("POST",   "/v1/vectors/index/{name}/delete", "vectord", "delete", NULL, LH_IN_JSON, LH_OUT_JSON, 0,
              NULL, "gateway/vectors_timeout_ms"),
    LH_ROUTE ("POST",   "/v1/embed",          "embedd",   "embed",  NULL, LH_IN_JSON,   LH_OUT_JSON,   0,
              NULL, "gateway/embed_timeout_ms"),
    LH_ROUTE ("GET",    "/v1/embed/stats",    "embedd",   "stats",  NULL, LH_IN_NONE,   LH_OUT_JSON,   0, NULL, NULL),
    //  pathwayd (SPEC 5.9, docs/pathwayd.md)
    LH_ROUTE ("POST",   "/v1/pathway/add",    "pathwayd", "add",    NULL, LH_IN_JSON,   LH_OUT_JSON,   0,
              "gateway/pathway_max", NULL),
    LH_ROUTE ("POST",   "/v1/pathway/add_idempotent", "pathwayd", "add_idempotent", NULL, LH_IN_JSON, LH_OUT_JSON, 0,
              "gateway/pathway_max", NULL),
    LH_ROUTE ("POST",   "/v1/pathway/update", "pathwayd", "update", NULL, LH_IN_JSON,   LH_OUT_JSON,   0,
              "gateway/pathway_max", NULL),
    LH_ROUTE ("POST",   "/v1/pathway/revise", "pathwayd", "revise", NULL, LH_IN_JSON,   LH_OUT_JSON,   0,
              "gateway/pathway_max", NULL),
    LH_ROUTE ("POST",   "/v1/pathway/retire", "pathwayd", "retire", NULL, LH_IN_JSON,   LH_OUT_JSON,   0, NULL, NULL),
    LH_ROUTE ("POST",   "/v1/pathway/search", "pathwayd", "search", NULL, LH_IN_JSON,   LH_OUT_JSON,   0, NULL, NULL),
    LH_ROUTE ("GET",    "/v1/pathway/get/{uid}", "pathwayd", "get", "version:int", LH_IN_NONE, LH_OUT_JSON, 0, NULL, NULL),
    LH_ROUTE ("GET",    "/v1/pathway/history/{uid}", "pathwayd", "history", "limit:int", LH_IN_NONE, LH_OUT_JSON, 0, NULL, NULL),
    LH_ROUTE ("GET",    "/v1/pathway/stats",  "pathwayd", "stats",  NULL, LH_IN_NONE,   LH_OUT_JSON,   0, NULL, NULL),
    //  matrixd (SPEC 5.9, docs/matrixd.md)
    LH_ROUTE ("POST",   "/v1/matrix/search",  "matrixd",  "search", NULL, LH_IN_JSON,   LH_OUT_JSON,   0, NULL, NULL),
    LH_ROUTE ("POST",   "/v1/matrix/relevance", "matrixd", "relevance", NULL, LH_IN_JSON, LH_OUT_JSON, 0, NULL, NULL),
    LH_ROUTE ("POST",   "/v1/matrix/downgrade", "matrixd", "downgrade", NULL, LH_IN_JSON, LH_OUT_JSON, 0, NULL, NULL),
    LH_ROUTE ("POST",   "/v1/matrix/playbooks/record", "matrixd", "playbook_record", NULL, LH_IN_JSON, LH_OUT_JSON, 0,
              NULL, "gateway/matrix_timeout_ms"),
    LH_ROUTE ("POST",   "/v1/matrix/playbooks/bulk", "matrixd", "playbook_bulk", NULL, LH_IN_JSON, LH_OUT_JSON, 0,
              NULL, "gateway/matrix_timeout_ms"),
    LH_ROUTE ("GET",    "/v1/matrix/corpora", "matrixd",  "corpora", NULL, LH_IN_NONE,  LH_OUT_JSON,   0, NULL, NULL),
    //  distilld (SPEC 5.9, docs/distilld.md)
    LH_ROUTE ("POST",   "/v1/distill/materialize", "distilld", "materialize", NULL, LH_IN_JSON, LH_OUT_JSON, 0,
              NULL, "gateway/distill_timeout_ms"),
    LH_ROUTE ("POST",   "/v1/distill/score",  "distilld", "score",  NULL, LH_IN_JSON,   LH_OUT_JSON,   0,
              NULL, "gateway/distill_timeout_ms"),
    LH_ROUTE ("POST",   "/v1/distill/export", "distilld", "export", NULL, LH_IN_JSON,   LH_OUT_JSON,   0,
              NULL, "gateway/distill_timeout_ms"),
    LH_ROUTE ("POST",   "/v1/distill/drift",  "distilld", "drift",  NULL, LH_IN_JSON,   LH_OUT_JSON,   0, NULL, NULL),
    LH_ROUTE ("POST",   "/v1/distill/run",    "distilld", "run",    NULL, LH_IN_JSON,   LH_OUT_JSON,   0,
              NULL, "gateway/distill_timeout_ms"),
    LH_ROUTE ("POST",   "/v1/distill/replay", "distilld", "replay", NULL, LH_IN_JSON,   LH_OUT_JSON,   0,
              NULL, "gateway/distill_timeout_ms"),
    LH_ROUTE ("GET",    "/v1/distill/runs",   "distilld", "runs",   NULL, LH_IN_NONE,   LH_OUT_JSON,   0, NULL, NULL),
    LH_ROUTE ("GET",    "/v1/distill/runs/{run_id}", "distilld", "report", NULL, LH_IN_NONE, LH_OUT_JSON, 0, NULL, NULL),
    //  observerd (SPEC 5.9, docs/observerd.md)
    LH_ROUTE ("GET",    "/v1/observer/events", "observerd", "events", "since,since_bseq:int,type,source,limit:int",
                                                                         LH_IN_NONE,   LH_OUT_JSON,   0, NULL, NULL),
    LH_ROUTE ("POST",   "/v1/observer/events", "observerd", "events", NULL, LH_IN_JSON, LH_OUT_JSON,   0, NULL, NULL),
    LH_ROUTE ("GET",    "/v1/observer/stats", "observerd", "stats",  NULL, LH_IN_NONE,   LH_OUT_JSON,   0, NULL, NULL),
    LH_ROUTE ("POST",   "/v1/observer/inbox", "observerd", "inbox",  NULL, LH_IN_JSON,   LH_OUT_JSON,   0, NULL, NULL),
    //  workflowd (SPEC 5.9, docs/workflows.md)
    LH_ROUTE ("POST",   "/v1/workflows/put",  "workflowd", "workflow_put", NULL, LH_IN_JSON, LH_OUT_JSON, 0, NULL, NULL),
    LH_ROUTE ("GET",    "/v1/workflows/list", "workflowd", "workflow_list", NULL, LH_IN_NONE, LH_OUT_JSON, 0, NULL, NULL),
    LH_ROUTE ("GET",    "/v1/workflows/get/{name}", "workflowd", "workflow_get", NULL, LH_IN_NONE, LH_OUT_JSON, 0, NULL, NULL),
    LH_ROUTE ("POST",   "/v1/workflows/delete", "workflowd", "workflow_delete", NULL, LH_IN_JSON, LH_OUT_JSON, 0, NULL, NULL),
    LH_ROUTE ("POST",   "/v1/workflows/run",  "workflowd", "workflow_run", NULL, LH_IN_JSON, LH_OUT_JSON, 0,
              NULL, "gateway/workflow_timeout_ms"),
    LH_ROUTE ("GET",    "/v1/workflows/runs", "workflowd", "run_list", "name,status,before,limit:int",
                                                                         LH_IN_NONE,   LH_OUT_JSON,   0, NULL, NULL),
    LH_ROUTE ("GET",    "/v1/workflows/runs/{run_id}", "workflowd", "run_get", NULL, LH_IN_NONE, LH_OUT_JSON, 0, NULL, NULL),
    LH_ROUTE ("GET",    "/v1/workflows/stats", "workflowd", "stats", NULL, LH_IN_NONE,  LH_OUT_JSON,   0, NULL, NULL),
    //  MCP, streamable HTTP (SPEC 5.9, docs/mcp.md): answered by the gateway (lh_mcp_http.c)
    LH_ROUTE ("POST",   "/mcp",               NULL,       "mcp",    NULL, LH_IN_JSON,   LH_OUT_JSON,   0,
              "mcp/body_max", NULL),
    LH_ROUTE ("GET",    "/mcp",               NULL,       "mcp",    NULL, LH_IN_NONE,   LH_OUT_JSON,   0, NULL, NULL),
    LH_ROUTE ("DELETE", "/mcp",               NULL,       "mcp",    NULL, LH_IN_NONE,   LH_OUT_JSON,   0, NULL, NULL),
};

#define S_ROUTE_COUNT   (sizeof (s_routes) / sizeof (s_routes [0]))

//  Longest query parameter name in a row's query list
#define S_QUERY_NAME_MAX    64


//  --------------------------------------------------------------------------
//  Is name a valid bus name: 1..64 bytes of [A-Za-z0-9_.:-]?

bool
lh_routes_valid_name (const char *name, size_t size)
{
    if (size == 0 || size > LH_NAME_MAX)
        return false;
    for (size_t index = 0; index < size; index++) {
        char c = name [index];
        if (!(isalnum ((unsigned char) c) || c == '_' || c == '.' || c == ':' || c == '-'))
            return false;
    }
    return true;
}


//  --------------------------------------------------------------------------
//  Match a path against one pattern, recording path parameters. Returns
//  true if the whole path matches.

static bool
s_pattern_match (const char *pattern, const char *path, lh_route_match_t *match)
{
    match->params = 0;
    const char *p = pattern;
    const char *s = path;
    while (*p) {
        if (*p == '{') {
            const char *end = strchr (p, '}');
            assert (end);               //  a pattern in our own table
            const char *name = p + 1;
            size_t name_size = end - name;
            bool rest = name_size > 0 && name [name_size - 1] == '*';
            if (rest)
                name_size--;
            const char *value = s;
            if (rest)
                s += strlen (s);
            else
                while (*s && *s != '/')
                    s++;
            if (s == value)
                return false;           //  parameters are never empty
            assert (match->params < LH_ROUTE_PARAMS_MAX);
            lh_route_param_t *param = &match->param [match->params++];
            param->name = name;
            param->name_size = name_size;
            param->value = value;
            param->value_size = s - value;
            p = end + 1;
        }
        else
        if (*p++ != *s++)
            return false;
    }
    return *s == 0;
}


//  --------------------------------------------------------------------------
//  Find a path parameter by its "{name}" reference; NULL if none

static const lh_route_param_t *
s_param_for (const lh_route_match_t *match, const char *reference)
{
    if (!reference || reference [0] != '{')
        return NULL;
    size_t size = strlen (reference) - 2;
    for (size_t index = 0; index < match->params; index++) {
        const lh_route_param_t *param = &match->param [index];
        if (param->name_size == size && memcmp (param->name, reference + 1, size) == 0)
            return param;
    }
    return NULL;
}


//  --------------------------------------------------------------------------
//  Resolve a service or op column into buffer (LH_NAME_MAX + 1). Returns
//  true, or false if a parameter's value is not a valid bus name.

static bool
s_resolve_name (const lh_route_match_t *match, const char *column, char *buffer)
{
    if (!column) {
        buffer [0] = 0;
        return true;
    }
    const lh_route_param_t *param = s_param_for (match, column);
    if (!param) {
        snprintf (buffer, LH_NAME_MAX + 1, "%s", column);
        return true;
    }
    if (!lh_routes_valid_name (param->value, param->value_size))
        return false;
    memcpy (buffer, param->value, param->value_size);
    buffer [param->value_size] = 0;
    return true;
}


//  --------------------------------------------------------------------------
//  Find the route for method and path. Returns 200, 404, 405 or 400.

int
lh_routes_match (const char *method, const char *path,
                 lh_route_match_t *match, char *allow, size_t allow_size)
{
    assert (method && path && match && allow && allow_size > 0);
    allow [0] = 0;
    const lh_route_t *found = NULL;
    const lh_route_t *head_as_get = NULL;
    lh_route_match_t head_match;
    bool path_known = false;

    for (size_t index = 0; index < S_ROUTE_COUNT && !found; index++) {
        const lh_route_t *route = &s_routes [index];
        lh_route_match_t candidate;
        if (!s_pattern_match (route->pattern, path, &candidate))
            continue;
        path_known = true;
        if (streq (route->method, method)) {
            found = route;
            *match = candidate;
        }
        else {
            if (streq (method, "HEAD") && streq (route->method, "GET") && !head_as_get) {
                head_as_get = route;
                head_match = candidate;
            }
            if (!strstr (allow, route->method)) {
                size_t used = strlen (allow);
                snprintf (allow + used, allow_size - used, "%s%s",
                          used? ", ": "", route->method);
            }
        }
    }
    if (!found && head_as_get) {
        found = head_as_get;
        *match = head_match;
    }
    if (!found)
        return path_known? 405: 404;

    allow [0] = 0;
    match->route = found;
    if (!s_resolve_name (match, found->service, match->service)
    ||  !s_resolve_name (match, found->op, match->op)) {
        snprintf (allow, allow_size,
                  "service and op names are 1 to %d characters of A-Z a-z 0-9 _ . : -",
                  LH_NAME_MAX);
        return 400;
    }
    return 200;
}


//  --------------------------------------------------------------------------
//  Return a new error sentence (printf style)

static char *
s_error (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *text = NULL;
    if (vasprintf (&text, format, args) < 0)
        text = NULL;
    va_end (args);
    return text? text: strdup ("out of memory");
}


//  --------------------------------------------------------------------------
//  Collect the path parameters (other than those naming service/op) and
//  the listed query parameters into a new JSON object. Returns 0, or 400
//  with *error_p set.

static int
s_collect_params (const lh_route_match_t *match, lh_route_query_fn *query,
                  void *query_arg, json_t **params_p, char **error_p)
{
    const lh_route_t *route = match->route;
    json_t *params = json_object ();
    for (size_t index = 0; index < match->params; index++) {
        const lh_route_param_t *param = &match->param [index];
        if (param == s_param_for (match, route->service)
        ||  param == s_param_for (match, route->op))
            continue;
        char name [S_QUERY_NAME_MAX + 1];
        snprintf (name, sizeof (name), "%.*s", (int) param->name_size, param->name);
        json_t *value = json_stringn (param->value, param->value_size);
        if (!value) {
            json_decref (params);
            *error_p = s_error ("path parameter '%s' is not valid UTF-8", name);
            return 400;
        }
        json_object_set_new (params, name, value);
    }
    const char *list = route->query;
    while (list && *list && query) {
        size_t size = strcspn (list, ",");
        char name [S_QUERY_NAME_MAX + 1];
        snprintf (name, sizeof (name), "%.*s", (int) size, list);
        list += size + (list [size] == ',');
        bool integer = false;
        char *colon = strchr (name, ':');
        if (colon) {
            integer = streq (colon + 1, "int");
            *colon = 0;
        }
        const char *text = query (query_arg, name);
        if (!text)
            continue;
        json_t *value;
        if (integer) {
            char *end = NULL;
            errno = 0;
            long long number = strtoll (text, &end, 10);
            if (*text == 0 || *end || errno) {
                json_decref (params);
                *error_p = s_error ("query parameter '%s' must be an integer", name);
                return 400;
            }
            value = json_integer (number);
        }
        else
            value = json_string (text);
        if (!value) {
            json_decref (params);
            *error_p = s_error ("query parameter '%s' is not valid UTF-8", name);
            return 400;
        }
        json_object_set_new (params, name, value);
    }
    *params_p = params;
    return 0;
}


//  --------------------------------------------------------------------------
//  Pack the parameters object's fields (strings, integers) as map pairs

static void
s_pack_params (lh_pack_t *pack, json_t *params)
{
    const char *key;
    json_t *value;
    json_object_foreach (params, key, value) {
        lh_pack_str (pack, key);
        if (json_is_integer (value))
            lh_pack_int (pack, json_integer_value (value));
        else
            lh_pack_strn (pack, json_string_value (value), json_string_length (value));
    }
}


//  --------------------------------------------------------------------------
//  Build the bus request body of a matched route. Returns 0 (body or NULL
//  in *body_p) or 400 with *error_p set.

int
lh_routes_request (const lh_route_match_t *match, const char *body,
                   size_t size, lh_route_query_fn *query, void *query_arg,
                   const lh_limits_t *limits, zframe_t **body_p,
                   char **error_p)
{
    assert (match && match->route && body_p && error_p);
    *body_p = NULL;
    *error_p = NULL;
    const lh_route_t *route = match->route;
    json_t *params = NULL;
    int rc = s_collect_params (match, query, query_arg, &params, error_p);
    if (rc)
        return rc;
    size_t extra = json_object_size (params);
    lh_pack_t *pack = NULL;

    if (route->in == LH_IN_RAW) {
        pack = lh_pack_new ();
        lh_pack_map (pack, extra + 1);
        s_pack_params (pack, params);
        lh_pack_str (pack, "data");
        lh_pack_bin (pack, body, size);
    }
    else
    if (route->in == LH_IN_NONE || size == 0) {
        if (size > 0) {
            json_decref (params);
            *error_p = s_error ("%s %s takes no request body", route->method, route->pattern);
            return 400;
        }
        if (extra) {
            pack = lh_pack_new ();
            lh_pack_map (pack, extra);
            s_pack_params (pack, params);
        }
    }
    else {
        //  The common case is packed straight from the text; the rest, and
        //  every error with its line and column, goes through jansson
        pack = lh_pack_new ();
        if (extra > 0 || lh_json_quick_pack (body, size, pack, limits)) {
            lh_pack_destroy (&pack);
            char *reason = NULL;
            json_t *json = lh_json_parse (body, size, limits, &reason);
            if (!json) {
                json_decref (params);
                *error_p = s_error ("invalid JSON: %s", reason);
                free (reason);
                return 400;
            }
            if (extra) {
                if (!json_is_object (json)) {
                    json_decref (json);
                    json_decref (params);
                    *error_p = s_error ("the request body must be a JSON object");
                    return 400;
                }
                json_object_update (json, params);
            }
            pack = lh_pack_new ();
            if (lh_json_to_pack (json, pack, limits, &reason)) {
                json_decref (json);
                json_decref (params);
                lh_pack_destroy (&pack);
                *error_p = s_error ("invalid request body: %s", reason? reason: "cannot encode");
                free (reason);
                return 400;
            }
            json_decref (json);
        }
    }
    json_decref (params);
    if (pack)
        *body_p = lh_pack_frame (&pack);
    return 0;
}


//  --------------------------------------------------------------------------
//  The route table, for docs and tests

const lh_route_t *
lh_routes_at (size_t index)
{
    return index < S_ROUTE_COUNT? &s_routes [index]: NULL;
}


//  --------------------------------------------------------------------------
//  Number of routes in the table

size_t
lh_routes_count (void)
{
    return S_ROUTE_COUNT;
}


//  --------------------------------------------------------------------------
//  Index of a row of the table

size_t
lh_routes_index (const lh_route_t *route)
{
    assert (route >= s_routes && route < s_routes + S_ROUTE_COUNT);
    return (size_t) (route - s_routes);
}


//  --------------------------------------------------------------------------
//  A path parameter's value by name as a new string, or NULL

char *
lh_routes_param (const lh_route_match_t *match, const char *name)
{
    assert (match && name);
    size_t size = strlen (name);
    for (size_t index = 0; index < match->params; index++) {
        const lh_route_param_t *param = &match->param [index];
        if (param->name_size == size && memcmp (param->name, name, size) == 0) {
            char *value = (char *) malloc (param->value_size + 1);
            assert (value);
            memcpy (value, param->value, param->value_size);
            value [param->value_size] = 0;
            return value;
        }
    }
    return NULL;
}


//  --------------------------------------------------------------------------
//  Self test: matching, names, parameter mapping

static const char *
s_test_query (void *arg, const char *name)
{
    if (streq (name, "limit"))
        return (const char *) arg;
    if (streq (name, "prefix"))
        return "a/b";
    return NULL;
}

static const char *
s_test_pathway_query (void *arg, const char *name)
{
    if (streq (name, "version"))
        return "2";
    if (streq (name, "limit"))
        return "5";
    return NULL;
}

void
lh_routes_test (bool verbose)
{
    printf (" * lh_routes: ");

    //  Every pattern in the table is well formed
    for (size_t index = 0; lh_routes_at (index); index++) {
        const lh_route_t *route = lh_routes_at (index);
        assert (route->pattern [0] == '/');
        assert (route->method && route->op);
    }

    //  Table-driven matching
    struct {
        const char *method, *path;
        int status;
        const char *service, *op;
    } cases [] = {
        { "GET",    "/health",              200, "",     "health" },
        { "HEAD",   "/health",              200, "",     "health" },
        { "POST",   "/health",              405, NULL,   NULL },
        { "GET",    "/health/",             404, NULL,   NULL },
        { "GET",    "/healthz",             404, NULL,   NULL },
        { "POST",   "/v1/bus/echo/echo",    200, "echo", "echo" },
        { "POST",   "/v1/bus/broker/ping",  200, "broker", "ping" },
        { "GET",    "/v1/bus/echo/echo",    405, NULL,   NULL },
        { "POST",   "/v1/bus/echo",         404, NULL,   NULL },
        { "POST",   "/v1/bus//echo",        404, NULL,   NULL },
        { "POST",   "/v1/bus/echo/echo/x",  404, NULL,   NULL },
        { "POST",   "/v1/bus/ec ho/echo",   400, NULL,   NULL },
        { "POST",   "/v1/bus/echo/a$b",     400, NULL,   NULL },
        { "FOO",    "/v1/bus/echo/echo",    405, NULL,   NULL },
        { "GET",    "/",                    404, NULL,   NULL },
        { "GET",    "",                     404, NULL,   NULL },
        { "GET",    "/v1/storage",          200, "storaged", "list" },
        { "PUT",    "/v1/storage/a/b.csv",  200, "storaged", "put" },
        { "GET",    "/v1/storage/a/b.csv",  200, "storaged", "get" },
        { "HEAD",   "/v1/storage/a/b.csv",  200, "storaged", "head" },
        { "DELETE", "/v1/storage/a",        200, "storaged", "delete" },
        { "POST",   "/v1/storage/a",        405, NULL,   NULL },
        { "PUT",    "/v1/storage/",         404, NULL,   NULL },
        { "GET",    "/v1/catalog/list",     200, "catalogd", "list" },
        { "GET",    "/v1/catalog/manifest/workers", 200, "catalogd", "get" },
        { "GET",    "/v1/catalog/manifest/a/b", 404, NULL, NULL },
        { "POST",   "/v1/ingest",           200, "ingestd", "ingest" },
        { "POST",   "/v1/sql",              200, "queryd", "sql" },
        { "GET",    "/v1/sql",              405, NULL,   NULL },
        { "POST",   "/v1/chat",             200, "chatd", "chat" },
        { "GET",    "/v1/chat/providers",   200, "chatd", "providers" },
        { "POST",   "/v1/validate",         200, "validatord", "validate" },
        { "POST",   "/v1/iterate",          200, "validatord", "iterate" },
        { "GET",    "/v1/iterate/sessions", 200, "validatord", "sessions" },
        { "POST",   "/v1/iterate/sessions", 405, NULL,   NULL },
        { "GET",    "/console",             200, "",     "console" },
        { "GET",    "/console/console.js",  200, "",     "console" },
        { "GET",    "/console/",            404, NULL,   NULL },
        { "POST",   "/console",             405, NULL,   NULL },
        { "GET",    "/v1/tap/stream",       200, "",     "tap_stream" },
        { "POST",   "/v1/tap/stream",       405, NULL,   NULL },
        { "POST",   "/v1/pathway/add",      200, "pathwayd", "add" },
        { "POST",   "/v1/pathway/add_idempotent", 200, "pathwayd", "add_idempotent" },
        { "POST",   "/v1/pathway/update",   200, "pathwayd", "update" },
        { "POST",   "/v1/pathway/revise",   200, "pathwayd", "revise" },
        { "POST",   "/v1/pathway/retire",   200, "pathwayd", "retire" },
        { "POST",   "/v1/pathway/search",   200, "pathwayd", "search" },
        { "GET",    "/v1/pathway/get/01JB8ZQ4G5X3V9T6N2M7K1R0AB", 200, "pathwayd", "get" },
        { "GET",    "/v1/pathway/history/a.b:c-d_e", 200, "pathwayd", "history" },
        { "GET",    "/v1/pathway/stats",    200, "pathwayd", "stats" },
        { "GET",    "/v1/pathway/add",      405, NULL,   NULL },
        { "POST",   "/v1/pathway/get/x",    405, NULL,   NULL },
        { "GET",    "/v1/pathway/get/",     404, NULL,   NULL },
        { "GET",    "/v1/pathway/get/a/b",  404, NULL,   NULL },
        { "GET",    "/v1/pathway/history",  404, NULL,   NULL },
        { "POST",   "/v1/pathway/delete",   404, NULL,   NULL },
        { "POST",   "/v1/matrix/search",    200, "matrixd", "search" },
        { "GET",    "/v1/matrix/search",    405, NULL,   NULL },
        { "POST",   "/v1/matrix/relevance", 200, "matrixd", "relevance" },
        { "POST",   "/v1/matrix/downgrade", 200, "matrixd", "downgrade" },
        { "POST",   "/v1/matrix/playbooks/record", 200, "matrixd", "playbook_record" },
        { "POST",   "/v1/matrix/playbooks/bulk", 200, "matrixd", "playbook_bulk" },
        { "POST",   "/v1/matrix/playbooks", 404, NULL,   NULL },
        { "GET",    "/v1/matrix/corpora",   200, "matrixd", "corpora" },
        { "POST",   "/v1/matrix/corpora",   405, NULL,   NULL },
        { "GET",    "/v1/observer/events",  200, "observerd", "events" },
        { "POST",   "/v1/observer/events",  200, "observerd", "events" },
        { "GET",    "/v1/observer/stats",   200, "observerd", "stats" },
        { "POST",   "/v1/observer/inbox",   200, "observerd", "inbox" },
        { "GET",    "/v1/observer/inbox",   405, NULL,   NULL },
        { "POST",   "/v1/workflows/put",    200, "workflowd", "workflow_put" },
        { "GET",    "/v1/workflows/list",   200, "workflowd", "workflow_list" },
        { "GET",    "/v1/workflows/get/nightly", 200, "workflowd", "workflow_get" },
        { "POST",   "/v1/workflows/delete", 200, "workflowd", "workflow_delete" },
        { "POST",   "/v1/workflows/run",    200, "workflowd", "workflow_run" },
        { "GET",    "/v1/workflows/runs",   200, "workflowd", "run_list" },
        { "GET",    "/v1/workflows/runs/01JB8ZQ4G5X3V9T6N2M7K1R0AB", 200, "workflowd", "run_get" },
        { "GET",    "/v1/workflows/stats",  200, "workflowd", "stats" },
        { "GET",    "/v1/workflows/run",    405, NULL,   NULL },
        { "GET",    "/v1/workflows/runs/a/b", 404, NULL, NULL },
    };
    for (size_t index = 0; index < sizeof (cases) / sizeof (cases [0]); index++) {
        lh_route_match_t match;
        char allow [64];
        int status = lh_routes_match (cases [index].method, cases [index].path,
                                      &match, allow, sizeof (allow));
        if (verbose)
            printf ("\n   %s %s -> %d %s", cases [index].method, cases [index].path, status, allow);
        assert (status == cases [index].status);
        if (status == 200) {
            assert (streq (match.service, cases [index].service));
            assert (streq (match.op, cases [index].op));
        }
        if (status == 405)
            assert (strlen (allow) > 0);
    }
    char long_name [LH_NAME_MAX + 20];
    memset (long_name, 'a', sizeof (long_name));
    long_name [sizeof (long_name) - 1] = 0;
    assert (lh_routes_valid_name (long_name, LH_NAME_MAX));
    assert (!lh_routes_valid_name (long_name, LH_NAME_MAX + 1));
    assert (!lh_routes_valid_name ("", 0));
    assert (lh_routes_valid_name ("a.b:c-d_e", 9));

    //  Pattern matching with parameters, including a rest parameter
    lh_route_match_t match;
    assert (s_pattern_match ("/v1/storage/{key*}", "/v1/storage/a/b/c", &match));
    assert (match.params == 1 && match.param [0].value_size == 5);
    assert (memcmp (match.param [0].name, "key", 3) == 0 && match.param [0].name_size == 3);
    assert (!s_pattern_match ("/v1/storage/{key*}", "/v1/storage/", &match));
    assert (s_pattern_match ("/v1/x/{name}/add", "/v1/x/idx/add", &match));
    assert (!s_pattern_match ("/v1/x/{name}/add", "/v1/x/idx/sub", &match));

    //  Path parameters by name, and row indexes
    char detail [64];
    assert (lh_routes_match ("GET", "/v1/storage/a/b c", &match, detail, sizeof (detail)) == 200);
    char *key = lh_routes_param (&match, "key");
    assert (key && streq (key, "a/b c"));
    zstr_free (&key);
    assert (lh_routes_param (&match, "nope") == NULL);
    assert (lh_routes_at (lh_routes_index (match.route)) == match.route);
    assert (lh_routes_count () > 10 && !lh_routes_at (lh_routes_count ()));

    //  Request mapping: generic bus route sends the body as it is
    lh_limits_t limits = lh_limits_default;
    limits.max_depth = 8;
    char allow [64];
    assert (lh_routes_match ("POST", "/v1/bus/echo/echo", &match, allow, sizeof (allow)) == 200);
    zframe_t *body = NULL;
    char *error = NULL;
    assert (lh_routes_request (&match, "[1,2]", 5, NULL, NULL, &limits, &body, &error) == 0);
    assert (body && zframe_size (body) == 3);     //  fixarray of two fixints
    zframe_destroy (&body);
    assert (lh_routes_request (&match, "", 0, NULL, NULL, &limits, &body, &error) == 0);
    assert (body == NULL);
    assert (lh_routes_request (&match, "{\"a\":", 5, NULL, NULL, &limits, &body, &error) == 400);
    assert (error && strstr (error, "line 1"));
    if (verbose)
        printf ("\n   %s", error);
    zstr_free (&error);
    assert (lh_routes_request (&match, "\"\xff\"", 3, NULL, NULL, &limits, &body, &error) == 400);
    zstr_free (&error);
    assert (lh_routes_request (&match, "{\"a\":1,\"a\":2}", 13, NULL, NULL, &limits, &body, &error) == 400);
    zstr_free (&error);
    const char *deep = "[[[[[[[[[[[[1]]]]]]]]]]]]";
    assert (lh_routes_request (&match, deep, strlen (deep), NULL, NULL, &limits, &body, &error) == 400);
    if (verbose)
        printf ("\n   %s", error);
    zstr_free (&error);

    //  Parameters merged into an object body, query typed
    lh_route_t row = LH_ROUTE ("GET", "/v1/x/{name}", "x", "get", "prefix,limit:int", LH_IN_JSON, LH_OUT_JSON, 0, NULL, NULL);
    assert (s_pattern_match (row.pattern, "/v1/x/idx", &match));
    match.route = &row;
    assert (lh_routes_request (&match, "{\"k\":true}", 10, s_test_query, "12", &limits, &body, &error) == 0);
    assert (body);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 1024);
    msgpack_object object;
    assert (lh_msgpack_unpack (zframe_data (body), zframe_size (body), &limits, &zone, &object) == 0);
    int64_t limit = 0;
    const char *name;
    size_t name_size;
    bool flag = false;
    assert (lh_obj_int (&object, "limit", &limit) && limit == 12);
    assert (lh_obj_str (&object, "name", &name, &name_size) && name_size == 3);
    assert (lh_obj_str (&object, "prefix", &name, &name_size) && name_size == 3);
    assert (lh_obj_bool (&object, "k", &flag) && flag);
    msgpack_zone_destroy (&zone);
    zframe_destroy (&body);
    assert (lh_routes_request (&match, "[1]", 3, s_test_query, "12", &limits, &body, &error) == 400);
    zstr_free (&error);
    assert (lh_routes_request (&match, NULL, 0, s_test_query, "x12", &limits, &body, &error) == 400);
    zstr_free (&error);

    //  Raw body travels as bin "data"
    row.in = LH_IN_RAW;
    assert (lh_routes_request (&match, "\x00\x01", 2, NULL, NULL, &limits, &body, &error) == 0);
    msgpack_zone_init (&zone, 1024);
    assert (lh_msgpack_unpack (zframe_data (body), zframe_size (body), &limits, &zone, &object) == 0);
    const msgpack_object *data = lh_obj_get (&object, "data");
    assert (data && data->type == MSGPACK_OBJECT_BIN && data->via.bin.size == 2);
    msgpack_zone_destroy (&zone);
    zframe_destroy (&body);

    //  No-body route refuses a body
    row.in = LH_IN_NONE;
    assert (lh_routes_request (&match, "{}", 2, NULL, NULL, &limits, &body, &error) == 400);
    zstr_free (&error);

    //  pathwayd's GET routes: the path's UID and the typed query become
    //  the body's uid and version
    assert (lh_routes_match ("GET", "/v1/pathway/get/order-1", &match, allow, sizeof (allow)) == 200);
    assert (lh_routes_request (&match, NULL, 0, s_test_pathway_query, NULL, &limits, &body, &error) == 0);
    msgpack_zone_init (&zone, 1024);
    assert (lh_msgpack_unpack (zframe_data (body), zframe_size (body), &limits, &zone, &object) == 0);
    assert (lh_obj_str (&object, "uid", &name, &name_size) && name_size == 7);
    assert (lh_obj_int (&object, "version", &limit) && limit == 2);
    assert (object.via.map.size == 2);
    msgpack_zone_destroy (&zone);
    zframe_destroy (&body);
    assert (lh_routes_match ("GET", "/v1/pathway/history/order-1", &match, allow, sizeof (allow)) == 200);
    assert (lh_routes_request (&match, NULL, 0, s_test_pathway_query, NULL, &limits, &body, &error) == 0);
    msgpack_zone_init (&zone, 1024);
    assert (lh_msgpack_unpack (zframe_data (body), zframe_size (body), &limits, &zone, &object) == 0);
    assert (lh_obj_int (&object, "limit", &limit) && limit == 5);
    assert (!lh_obj_get (&object, "version"));
    msgpack_zone_destroy (&zone);
    zframe_destroy (&body);

    printf ("OK\n");
}
