/*  =========================================================================
    lh_routes - the gateway's HTTP routes, declared in one table

    Every HTTP route is one row of s_routes in lh_routes.c: method, path
    pattern, the bus service and op it becomes, and how the path, query
    and body map into the msgpack request. Adding a route is one line:

        LH_ROUTE ("GET", "/v1/catalog/manifest/{name}", "catalogd", "get",
                  NULL, LH_IN_NONE, LH_OUT_JSON, 0, NULL, NULL),

    Patterns: literal segments, "{name}" (one non-empty segment) and, as the
    last segment, "{name*}" (the rest of the path, slashes included).
    A service or op written "{svc}" takes the value of that path parameter
    (it must then be a valid bus name). A service of NULL means the gateway
    answers the route itself (op names the local handler, e.g. "health").

    Request mapping (lh_routes_request):
    - LH_IN_JSON: the body is JSON (empty body = none). Path parameters not
      used for service/op, and the query parameters the row lists, become
      string fields of a map merged over the body (which must then be an
      object); "name:int" in the query list makes that parameter an
      integer. With no such parameters the body is sent as it is.
    - LH_IN_RAW: the body bytes travel as bin under "data", beside the
      parameters.
    - LH_IN_NONE: the route takes no body (a non-empty one is 400).
    - LH_IN_UPLOAD: the gateway streams the body into storaged under the
      path parameter "key" (put, or a multipart upload part by part); the
      row's op is not called as such.
    - LH_IN_INGEST: the body (raw CSV, or the multipart/form-data field
      "file") is streamed into storaged under uploads/ingest/RANDOM.csv,
      then SERVICE.OP is called with {name, source}.
    Reply mapping: LH_OUT_JSON renders the reply body as JSON;
    LH_OUT_RAW sends the bytes of the reply's "data" bin (content type from
    its "content_type" string, else application/octet-stream);
    LH_OUT_STREAM streams an object from storaged.get in ranges (path
    parameter "key"); LH_OUT_HEAD answers storaged.head as ETag and
    Content-Length headers.

    limit_key and timeout_key name the config keys of the row's body
    limit and default bus deadline (NULL: gateway/body_max and
    gateway/timeout_ms); the gateway reads them once at start.
    =========================================================================
*/

#ifndef LH_ROUTES_H_INCLUDED
#define LH_ROUTES_H_INCLUDED

#include "lh_proto.h"
#include "lh_body.h"

#ifdef __cplusplus
extern "C" {
#endif

//  How a request body maps into the bus request
typedef enum {
    LH_IN_NONE = 0,                     //  no body
    LH_IN_JSON,                         //  JSON body, parameters merged in
    LH_IN_RAW,                          //  raw bytes as "data" (bin)
    LH_IN_UPLOAD,                       //  streamed into storaged under {key}
    LH_IN_INGEST                        //  streamed into storaged, then ingested
} lh_route_in_t;

//  How the reply body maps into the HTTP response
typedef enum {
    LH_OUT_JSON = 0,                    //  reply rendered as JSON
    LH_OUT_RAW,                         //  reply's "data" bin, verbatim
    LH_OUT_STREAM,                      //  object streamed from storaged.get
    LH_OUT_HEAD                         //  storaged.head as headers
} lh_route_out_t;

//  Route flags
#define LH_ROUTE_OPEN   (1u << 0)       //  no bearer token needed

//  One route
typedef struct {
    const char *method;                 //  "GET", "POST", ...
    const char *pattern;                //  "/v1/bus/{svc}/{op}"
    const char *service;                //  bus service, "{param}", or NULL = local
    const char *op;                     //  bus op, "{param}", or local handler
    const char *query;                  //  query params mapped: "prefix,limit:int"
    lh_route_in_t in;                   //  body mapping
    lh_route_out_t out;                 //  reply mapping
    uint32_t flags;                     //  LH_ROUTE_*
    const char *limit_key;              //  config key of the body limit, or NULL
    const char *timeout_key;            //  config key of the deadline, or NULL
} lh_route_t;

#define LH_ROUTE(method, pattern, service, op, query, in, out, flags, limit_key, timeout_key) \
    { method, pattern, service, op, query, in, out, flags, limit_key, timeout_key }

#define LH_ROUTE_PARAMS_MAX 8           //  path parameters in one pattern

//  One path parameter of a match; value points into the matched path
typedef struct {
    const char *name;                   //  name in the pattern (not NUL-ended)
    size_t name_size;                   //  its length
    const char *value;                  //  value in the path (not NUL-ended)
    size_t value_size;                  //  its length
} lh_route_param_t;

//  A matched route
typedef struct {
    const lh_route_t *route;            //  the row
    size_t params;                      //  path parameters found
    lh_route_param_t param [LH_ROUTE_PARAMS_MAX];
    char service [LH_NAME_MAX + 1];     //  resolved service ("" when local)
    char op [LH_NAME_MAX + 1];          //  resolved op
} lh_route_match_t;

//  Looks a query parameter up by name; returns NULL if absent
typedef const char *(lh_route_query_fn) (void *arg, const char *name);

//  Find the route for method and path (the path must stay alive as long as
//  the match). Returns 200 and fills match; 404 if no pattern matches the
//  path; 405 if patterns match but not the method (allow gets the methods
//  that would, "GET, POST"); 400 if a service/op parameter is not a valid
//  bus name (reason in allow).
int
    lh_routes_match (const char *method, const char *path,
                     lh_route_match_t *match, char *allow, size_t allow_size);

//  Build the bus request body of a matched route from the HTTP body and
//  query. Returns 0 with *body_p a new frame (or NULL for no body), or an
//  HTTP status (400) with *error_p a sentence the caller frees.
int
    lh_routes_request (const lh_route_match_t *match, const char *body,
                       size_t size, lh_route_query_fn *query, void *query_arg,
                       const lh_limits_t *limits, zframe_t **body_p,
                       char **error_p);

//  Is name a valid bus name: 1..64 bytes of [A-Za-z0-9_.:-]?
bool
    lh_routes_valid_name (const char *name, size_t size);

//  The route table, for docs and tests: route at index, NULL past the end
const lh_route_t *
    lh_routes_at (size_t index);

//  Number of routes in the table
size_t
    lh_routes_count (void);

//  Index of a row of the table (from a match)
size_t
    lh_routes_index (const lh_route_t *route);

//  A path parameter's value by name as a new string (caller frees), or
//  NULL if the match has no such parameter
char *
    lh_routes_param (const lh_route_match_t *match, const char *name);

//  Self test of this class
void
    lh_routes_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
