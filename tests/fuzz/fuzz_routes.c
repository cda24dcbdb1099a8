/*  =========================================================================
    fuzz_routes - libFuzzer target for the gateway's route table: matching
    a method and path, resolving path parameters into bus names, and
    building the bus request from the query and body (gateway/lh_routes.c)

    An input is "METHOD PATH[?QUERY]", a newline, then the body. The query
    is split and decoded as libmicrohttpd does (& and =, %XX and '+') and
    looked up by name. Matching must answer 200, 400, 404 or 405 with the
    documented shapes (a 200 names a row whose method fits, with
    parameters that are slices of the path and valid bus names for
    service and op; a 405 names the methods allowed); building the request
    must give a valid msgpack body or a 400 with a sentence, with the
    default limits and with small ones.

    Built by `make fuzz` with clang -fsanitize=fuzzer and run under
    -rss_limit_mb / -malloc_limit_mb; built by `make` with replay_main.c as
    a corpus replayer that `make check` runs over tests/fuzz/corpus/routes.
    =========================================================================
*/

#include "lh_routes.h"

//  The query string, and a buffer for the value last looked up
typedef struct {
    const char *query;                  //  after '?', NUL-ended, or NULL
    char *value;                        //  last value returned (owned)
    size_t lookups;                     //  lookups so far
} s_query_t;

//  Decode %XX and '+' of size bytes into out (size + 1 bytes); returns
//  the decoded length (a bad escape is kept as it is, as MHD does)
static size_t
s_decode (const char *text, size_t size, char *out)
{
    size_t written = 0;
    for (size_t index = 0; index < size; index++) {
        if (text [index] == '+')
            out [written++] = ' ';
        else
        if (text [index] == '%' && index + 2 < size
        &&  isxdigit ((unsigned char) text [index + 1]) && isxdigit ((unsigned char) text [index + 2])) {
            char hex [3] = { text [index + 1], text [index + 2], 0 };
            out [written++] = (char) strtol (hex, NULL, 16);
            index += 2;
        }
        else
            out [written++] = text [index];
    }
    out [written] = 0;
    return written;
}

//  lh_route_query_fn: the first value of name in the query, or NULL
static const char *
s_query_lookup (void *arg, const char *name)
{
    s_query_t *self = (s_query_t *) arg;
    self->lookups++;
    if (!self->query)
        return NULL;
    const char *pair = self->query;
    while (*pair) {
        size_t pair_size = strcspn (pair, "&");
        const char *equals = (const char *) memchr (pair, '=', pair_size);
        size_t name_size = equals? (size_t) (equals - pair): pair_size;
        char *decoded = (char *) malloc (name_size + 1);
        assert (decoded);
        s_decode (pair, name_size, decoded);
        bool same = streq (decoded, name);
        free (decoded);
        if (same) {
            const char *value = equals? equals + 1: pair + pair_size;
            size_t value_size = (size_t) (pair + pair_size - value);
            free (self->value);
            self->value = (char *) malloc (value_size + 1);
            assert (self->value);
            s_decode (value, value_size, self->value);
            return self->value;
        }
        pair += pair_size + (pair [pair_size] == '&');
    }
    return NULL;
}

//  Check a match's shapes against the path it came from
static void
s_check_match (const char *method, const char *path, const lh_route_match_t *match)
{
    const lh_route_t *route = match->route;
    assert (route && lh_routes_index (route) < lh_routes_count ());
    assert (lh_routes_at (lh_routes_index (route)) == route);
    assert (streq (route->method, method) || (streq (method, "HEAD") && streq (route->method, "GET")));
    assert (match->params <= LH_ROUTE_PARAMS_MAX);
    size_t path_size = strlen (path);
    for (size_t index = 0; index < match->params; index++) {
        const lh_route_param_t *param = &match->param [index];
        assert (param->value >= path && param->value + param->value_size <= path + path_size);
        assert (param->value_size > 0);
        char name [64];
        assert (param->name_size < sizeof (name));
        memcpy (name, param->name, param->name_size);
        name [param->name_size] = 0;
        char *value = lh_routes_param (match, name);
        assert (value);
        free (value);
    }
    if (route->service)
        assert (lh_routes_valid_name (match->service, strlen (match->service)));
    else
        assert (*match->service == 0);
    assert (lh_routes_valid_name (match->op, strlen (match->op)));
}

//  Build the request with limits; check the outcome's shape
static void
s_check_request (const lh_route_match_t *match, const char *body, size_t size,
                 s_query_t *query, const lh_limits_t *limits)
{
    zframe_t *frame = NULL;
    char *error = NULL;
    int rc = lh_routes_request (match, body, size, s_query_lookup, query, limits, &frame, &error);
    if (rc == 0) {
        assert (error == NULL);
        if (frame)
            assert (lh_msgpack_check (zframe_data (frame), zframe_size (frame), &lh_limits_default) == 0);
    }
    else {
        assert (rc == 400 && error && *error && frame == NULL);
    }
    zframe_destroy (&frame);
    free (error);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    const uint8_t *newline = (const uint8_t *) memchr (data, '\n', size);
    size_t line_size = newline? (size_t) (newline - data): size;
    char *line = (char *) malloc (line_size + 1);
    assert (line);
    memcpy (line, data, line_size);
    line [line_size] = 0;
    const char *body = newline? (const char *) newline + 1: "";
    size_t body_size = newline? size - line_size - 1: 0;

    //  "METHOD PATH?QUERY"; no space: the whole line is a path for GET
    char *space = strchr (line, ' ');
    const char *method = "GET";
    char *path = line;
    if (space) {
        *space = 0;
        method = line;
        path = space + 1;
    }
    s_query_t query = { NULL, NULL, 0 };
    char *mark = strchr (path, '?');
    if (mark) {
        *mark = 0;
        query.query = mark + 1;
    }
    lh_route_match_t match;
    char allow [128];
    memset (allow, 'x', sizeof (allow));
    int status = lh_routes_match (method, path, &match, allow, sizeof (allow));
    assert (memchr (allow, 0, sizeof (allow)));
    if (status == 200) {
        assert (*allow == 0);
        s_check_match (method, path, &match);
        lh_limits_t small = { .max_depth = 4, .max_elements = 64, .max_string = 16 };
        s_check_request (&match, body, body_size, &query, &lh_limits_default);
        s_check_request (&match, body, body_size, &query, &small);
    }
    else
    if (status == 405)
        assert (*allow);
    else
    if (status == 400)
        assert (strstr (allow, "service and op names"));
    else
        assert (status == 404 && *allow == 0);
    free (query.value);
    free (line);
    return 0;
}
