/*  =========================================================================
    echo - the echo service: a test double for the bus and the runtime

    Ops: echo, sleep, fail, stream, whoami (see echo.h and README.md).
    Config: actors/echo/tag (adds "tag" to echoed maps), actors/echo/workers.
    =========================================================================
*/

#include "echo.h"
#include "lh_log.h"

#define S_STREAM_MAX        10000       //  most PARTs one stream request sends
#define S_PAD_MAX           (1024 * 1024)   //  largest pad of one PART
#define S_SLEEP_SLICE       50          //  sleep in slices of this many ms

//  Shared state: read-only after start, so no lock
typedef struct {
    char *tag;                          //  actors/echo/tag, or NULL if empty
} s_state_t;


//  --------------------------------------------------------------------------
//  Create the shared state from the configuration (config may be NULL)

static void *
s_state_new (lh_config_t *config, const lh_link_t *link, const char **error)
{
    s_state_t *self = (s_state_t *) zmalloc (sizeof (s_state_t));
    assert (self);
    const char *tag = lh_config_str (config, "actors/echo/tag");
    if (tag && *tag)
        self->tag = strdup (tag);
    return self;
}


//  --------------------------------------------------------------------------
//  Destroy the shared state

static void
s_state_destroy (void **state_p)
{
    s_state_t *self = (s_state_t *) *state_p;
    if (self) {
        free (self->tag);
        free (self);
        *state_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Is this map key the string "tag"

static bool
s_is_tag (const msgpack_object *key)
{
    return key->type == MSGPACK_OBJECT_STR && key->via.str.size == 3
        && memcmp (key->via.str.ptr, "tag", 3) == 0;
}


//  --------------------------------------------------------------------------
//  echo: the body verbatim; a map gets "tag" when actors/echo/tag is set

static void
s_echo (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    size_t size;
    const void *body = lh_request_body (request, &size);
    const msgpack_object *object = self->tag? lh_request_object (request): NULL;
    if (!object || object->type != MSGPACK_OBJECT_MAP) {
        lh_request_reply_raw (request, LH_ST_OK, body, size);
        return;
    }
    //  The map without any "tag" key it had, then our tag
    const msgpack_object_map *map = &object->via.map;
    uint32_t count = 0;
    for (uint32_t index = 0; index < map->size; index++)
        if (!s_is_tag (&map->ptr [index].key))
            count++;
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, count + 1);
    for (uint32_t index = 0; index < map->size; index++)
        if (!s_is_tag (&map->ptr [index].key)) {
            lh_pack_object (pack, &map->ptr [index].key);
            lh_pack_object (pack, &map->ptr [index].val);
        }
    lh_pack_kv_str (pack, "tag", self->tag);
    lh_request_reply_pack (request, LH_ST_OK, &pack);
}


//  --------------------------------------------------------------------------
//  sleep {ms}: sleep min(ms, time left + 1000), reply {"slept_ms": n}.
//  Sleeps in slices, checking the time left (which keeps the session
//  alive, see lh_actor.c).

static void
s_sleep (lh_request_t *request, void *state)
{
    const msgpack_object *body = lh_request_map (request);
    int64_t asked = 0;
    if (!body || lh_request_int (request, body, "ms", LH_FIELD_REQUIRED, 0, INT64_MAX, &asked))
        return;
    uint64_t ms = (uint64_t) asked;
    uint64_t limit = lh_request_time_left (request) + 1000;
    if (ms > limit)
        ms = limit;
    int64_t until = zclock_mono () + (int64_t) ms;
    while (!zsys_interrupted) {
        int64_t left = until - zclock_mono ();
        if (left <= 0)
            break;
        zclock_sleep ((int) (left < S_SLEEP_SLICE? left: S_SLEEP_SLICE));
        lh_request_time_left (request);
    }
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_uint (pack, "slept_ms", ms);
    lh_request_reply_pack (request, LH_ST_OK, &pack);
}


//  --------------------------------------------------------------------------
//  fail {status, reason?, kind?}: an error reply with that status (400 if
//  it is not in 400..599)

static void
s_fail (lh_request_t *request, void *state)
{
    const msgpack_object *object = lh_request_object (request);
    uint64_t status = LH_ST_BAD_REQUEST;
    if (!lh_obj_uint (object, "status", &status) || status < 400 || status > 599)
        status = LH_ST_BAD_REQUEST;
    char *reason = lh_obj_strdup (lh_obj_get (object, "reason"));
    char *kind = lh_obj_strdup (lh_obj_get (object, "kind"));
    lh_request_fail (request, (uint32_t) status, kind && *kind? kind: NULL, "%s",
                     reason? reason: lh_status_text ((uint32_t) status));
    free (reason);
    free (kind);
}


//  --------------------------------------------------------------------------
//  stream {n, size?}: n PARTs {"i": i, "pad": size bytes}, then {"parts": n}

static void
s_stream (lh_request_t *request, void *state)
{
    const msgpack_object *body = lh_request_map (request);
    int64_t count = 0, pad = 0;
    if (!body
    ||  lh_request_int (request, body, "n", LH_FIELD_REQUIRED, 0, S_STREAM_MAX, &count)
    ||  lh_request_int (request, body, "size", 0, 0, S_PAD_MAX, &pad))
        return;
    char *padding = (char *) malloc ((size_t) pad + 1);
    assert (padding);
    memset (padding, 'x', (size_t) pad);
    for (int64_t index = 0; index < count; index++) {
        lh_pack_t *pack = lh_pack_new ();
        lh_pack_map (pack, 2);
        lh_pack_kv_uint (pack, "i", (uint64_t) index);
        lh_pack_str (pack, "pad");
        lh_pack_strn (pack, padding, (size_t) pad);
        zframe_t *part = lh_pack_frame (&pack);
        if (lh_request_part (request, &part)) {
            zframe_destroy (&part);
            free (padding);
            lh_request_fail (request, LH_ST_INTERNAL, NULL, "stream broken after %" PRId64
                             " parts", index);
            return;
        }
    }
    free (padding);
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_uint (pack, "parts", (uint64_t) count);
    lh_request_reply_pack (request, LH_ST_OK, &pack);
}


//  --------------------------------------------------------------------------
//  whoami: {"pid": pid, "worker": "echo-INDEX"}

static void
s_whoami (lh_request_t *request, void *state)
{
    const lh_header_t *header = lh_request_header (request);
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 2);
    lh_pack_kv_uint (pack, "pid", (uint64_t) getpid ());
    lh_pack_kv_str (pack, "worker", (header->has & LH_H_NAME)? header->name: "");
    lh_request_reply_pack (request, LH_ST_OK, &pack);
}


static const lh_op_t s_ops [] = {
    { "echo",   s_echo },
    { "sleep",  s_sleep },
    { "fail",   s_fail },
    { "stream", s_stream },
    { "whoami", s_whoami },
    { NULL, NULL }
};

const lh_service_t lh_echo_service = {
    .name = "echo",
    .ops = s_ops,
    .state_new = s_state_new,
    .state_destroy = s_state_destroy,
    .credit = 8
};


//  --------------------------------------------------------------------------
//  Self test: every op through the real broker, on a test bus

#include "lh_testbus.h"


//  --------------------------------------------------------------------------
//  Call echo.OP with a body; returns the reply (status checked by caller)

static lh_reply_t *
s_test_call (lh_client_t *client, const char *op, lh_pack_t **pack_p, uint32_t timeout)
{
    size_t size = 0;
    const void *data = *pack_p? lh_pack_data (*pack_p, &size): NULL;
    lh_call_opts_t opts = { .timeout_ms = timeout };
    lh_reply_t *reply;
    lh_client_call (client, "echo", op, data, size, &opts, &reply);
    lh_pack_destroy (pack_p);
    return reply;
}


//  --------------------------------------------------------------------------
//  Self test: every op through the real broker

void
lh_echo_test (bool verbose)
{
    printf (" * echo: ");
    if (verbose)
        lh_log_set_level (LH_LOG_DEBUG);

    lh_testbus_t *bus = lh_testbus_new ("echo");
    lh_testbus_start (bus, &lh_echo_service, 2);
    lh_client_t *client = lh_testbus_client (bus);

    //  echo: verbatim, also without a body, also a non-map
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_uint (pack, "x", 1);
    size_t size;
    const void *data = lh_pack_data (pack, &size);
    lh_reply_t *reply;
    int rc = lh_client_call (client, "echo", "echo", data, size, NULL, &reply);
    assert (rc == 0 && lh_reply_status (reply) == 200);
    size_t reply_size;
    const void *reply_data = lh_reply_body (reply, &reply_size);
    assert (reply_size == size && memcmp (reply_data, data, size) == 0);
    lh_reply_destroy (&reply);
    lh_pack_destroy (&pack);

    rc = lh_client_call (client, "echo", "echo", NULL, 0, NULL, &reply);
    assert (rc == 0 && lh_reply_status (reply) == 200);
    assert (lh_reply_body (reply, &reply_size) == NULL && reply_size == 0);
    lh_reply_destroy (&reply);

    //  sleep: short, then one past the deadline (504), then a bad body
    pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_uint (pack, "ms", 30);
    reply = s_test_call (client, "sleep", &pack, 2000);
    uint64_t value = 0;
    assert (lh_reply_status (reply) == 200);
    assert (lh_obj_uint (lh_reply_object (reply), "slept_ms", &value) && value == 30);
    lh_reply_destroy (&reply);

    pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_uint (pack, "ms", 60000);
    int64_t start = zclock_mono ();
    reply = s_test_call (client, "sleep", &pack, 100);
    assert (lh_reply_status (reply) == 504);
    assert (zclock_mono () - start < 1000);
    lh_reply_destroy (&reply);

    pack = lh_pack_new ();
    lh_pack_str (pack, "not a map");
    reply = s_test_call (client, "sleep", &pack, 2000);
    assert (lh_reply_status (reply) == 400);
    lh_reply_destroy (&reply);

    //  fail: status, reason, kind; out-of-range status becomes 400
    pack = lh_pack_new ();
    lh_pack_map (pack, 3);
    lh_pack_kv_uint (pack, "status", 503);
    lh_pack_kv_str (pack, "reason", "not today");
    lh_pack_kv_str (pack, "kind", "custom");
    reply = s_test_call (client, "fail", &pack, 2000);
    assert (lh_reply_status (reply) == 503);
    assert (streq (lh_reply_reason (reply), "not today"));
    const msgpack_object *error = lh_obj_get (lh_reply_object (reply), "error");
    const char *kind;
    size_t kind_size;
    assert (lh_obj_str (error, "kind", &kind, &kind_size));
    assert (kind_size == 6 && memcmp (kind, "custom", 6) == 0);
    lh_reply_destroy (&reply);

    pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_uint (pack, "status", 700);
    reply = s_test_call (client, "fail", &pack, 2000);
    assert (lh_reply_status (reply) == 400);
    assert (lh_reply_reason (reply));
    lh_reply_destroy (&reply);

    //  stream: n PARTs then the REP; too many is refused
    pack = lh_pack_new ();
    lh_pack_map (pack, 2);
    lh_pack_kv_uint (pack, "n", 3000);
    lh_pack_kv_uint (pack, "size", 10);
    reply = s_test_call (client, "stream", &pack, 10000);
    assert (lh_reply_status (reply) == 200);
    assert (lh_obj_uint (lh_reply_object (reply), "parts", &value) && value == 3000);
    zlist_t *parts = lh_reply_parts (reply);
    assert (parts && zlist_size (parts) == 3000);
    uint64_t expect = 0;
    for (zframe_t *part = (zframe_t *) zlist_first (parts); part;
         part = (zframe_t *) zlist_next (parts)) {
        msgpack_zone zone;
        msgpack_zone_init (&zone, 256);
        msgpack_object object;
        rc = lh_msgpack_unpack (zframe_data (part), zframe_size (part), NULL, &zone, &object);
        assert (rc == 0);
        assert (lh_obj_uint (&object, "i", &value) && value == expect++);
        const char *pad;
        size_t pad_size;
        assert (lh_obj_str (&object, "pad", &pad, &pad_size) && pad_size == 10);
        msgpack_zone_destroy (&zone);
    }
    lh_reply_destroy (&reply);

    pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_uint (pack, "n", S_STREAM_MAX + 1);
    reply = s_test_call (client, "stream", &pack, 2000);
    assert (lh_reply_status (reply) == 400);
    assert (lh_reply_parts (reply) == NULL);
    lh_reply_destroy (&reply);

    //  whoami: this process, one of our two workers
    pack = NULL;
    reply = s_test_call (client, "whoami", &pack, 2000);
    assert (lh_reply_status (reply) == 200);
    assert (lh_obj_uint (lh_reply_object (reply), "pid", &value) && value == (uint64_t) getpid ());
    char *worker = lh_obj_strdup (lh_obj_get (lh_reply_object (reply), "worker"));
    assert (worker && (streq (worker, "echo-0") || streq (worker, "echo-1")));
    free (worker);
    lh_reply_destroy (&reply);

    //  Unknown op: 404 (from the broker, which knows our ops)
    pack = NULL;
    reply = s_test_call (client, "nosuchop", &pack, 2000);
    assert (lh_reply_status (reply) == 404);
    lh_reply_destroy (&reply);

    //  Bad bodies name their field
    lh_testbus_expect (bus, "echo", "stream", "{\"n\": \"3\"}", 400, "bad_field", "n");
    lh_testbus_expect (bus, "echo", "sleep", "{}", 400, "bad_field", "ms");

    //  With actors/echo/tag set, echoed maps carry the tag
    lh_testbus_stop (bus, "echo");
    lh_testbus_set (bus, "actors/echo/tag", "replayed");
    lh_testbus_start (bus, &lh_echo_service, 1);
    pack = lh_pack_new ();
    lh_pack_map (pack, 2);
    lh_pack_kv_uint (pack, "x", 1);
    lh_pack_kv_str (pack, "tag", "old");
    reply = s_test_call (client, "echo", &pack, 2000);
    assert (lh_reply_status (reply) == 200);
    const msgpack_object *object = lh_reply_object (reply);
    assert (object && object->type == MSGPACK_OBJECT_MAP && object->via.map.size == 2);
    assert (lh_obj_uint (object, "x", &value) && value == 1);
    char *tag = lh_obj_strdup (lh_obj_get (object, "tag"));
    assert (tag && streq (tag, "replayed"));
    free (tag);
    lh_reply_destroy (&reply);
    //  A non-map is still echoed verbatim
    pack = lh_pack_new ();
    lh_pack_uint (pack, 7);
    reply = s_test_call (client, "echo", &pack, 2000);
    assert (lh_reply_status (reply) == 200);
    assert (lh_reply_object (reply)->type == MSGPACK_OBJECT_POSITIVE_INTEGER);
    lh_reply_destroy (&reply);
    lh_testbus_destroy (&bus);
    printf ("OK\n");
}
