/*  =========================================================================
    lh_testbus - a broker and some services in this process, for selftests;
    see lh_testbus.h
    =========================================================================
*/

#include "lh_testbus.h"
#include "lh_broker.h"
#include "lh_json.h"

#define S_CALL_TIMEOUT  10000           //  deadline of lh_testbus_call, ms

//  Every declared config key, to give the broker the acl/ ones
#define LH_KEY(path, type, value, range, comment) path,
static const char *s_config_keys [] = {
#include "lh_config_keys.h"
    NULL
};
#undef LH_KEY
#define S_WAIT_MS       5000            //  longest wait for workers to register

//  A service started on the bus
typedef struct {
    char *name;                         //  service name
    lh_service_runner_t *runner;        //  its workers
} s_started_t;

struct _lh_testbus_t {
    char dir [64];                      //  temporary directory
    char endpoint [96];                 //  broker's inproc endpoint
    zactor_t *broker;                   //  the broker actor
    lh_config_t *config;                //  config the services read
    lh_link_t link;                     //  how to reach the broker
    zlistx_t *started;                  //  s_started_t items, in start order
    lh_client_t *client;                //  the bus's own client, or NULL
};


//  --------------------------------------------------------------------------
//  Start a broker on a fresh inproc endpoint and make a config

lh_testbus_t *
lh_testbus_new (const char *name)
{
    assert (name);
    lh_testbus_t *self = (lh_testbus_t *) zmalloc (sizeof (lh_testbus_t));
    assert (self);
    snprintf (self->dir, sizeof (self->dir), "/tmp/lh_testbus.XXXXXX");
    assert (mkdtemp (self->dir));
    snprintf (self->endpoint, sizeof (self->endpoint), "inproc://lh-testbus-%.32s-%s",
              name, self->dir + strlen ("/tmp/lh_testbus."));
    self->broker = zactor_new (lh_broker_actor, "testbus");
    assert (self->broker);
    char *status = NULL, *detail = NULL;
    zsock_send (self->broker, "ss", "BIND", self->endpoint);
    zsock_recv (self->broker, "ss", &status, &detail);
    assert (status && streq (status, "0"));
    zstr_free (&status);
    zstr_free (&detail);
    //  Selftests run under valgrind on loaded machines, where a whole
    //  process can stall for seconds: peers tolerate 30 s of silence (a
    //  worker that reconnected mid-call failed its caller's request). A
    //  request for a service not offered yet still waits 3 s, as before.
    const char *settings [][2] = { { "hb_live", "30" }, { "restart_grace", "3000" } };
    for (size_t index = 0; index < sizeof (settings) / sizeof (settings [0]); index++) {
        zsock_send (self->broker, "sss", "CONFIGURE", settings [index][0], settings [index][1]);
        zsock_recv (self->broker, "ss", &status, &detail);
        assert (status && streq (status, "0"));
        zstr_free (&status);
        zstr_free (&detail);
    }
    self->config = lh_config_load (NULL, NULL);
    assert (self->config);
    char *data = zsys_sprintf ("%s/var", self->dir);
    lh_testbus_set (self, "data/dir", data);
    zstr_free (&data);
    self->link.endpoint = self->endpoint;
    self->started = zlistx_new ();
    assert (self->started);
    return self;
}


//  --------------------------------------------------------------------------
//  Stop one started service

static void
s_started_destroy (s_started_t **self_p)
{
    s_started_t *self = *self_p;
    if (self) {
        lh_service_stop (&self->runner);
        free (self->name);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Stop everything and remove the temporary directory

void
lh_testbus_destroy (lh_testbus_t **self_p)
{
    assert (self_p);
    lh_testbus_t *self = *self_p;
    if (!self)
        return;
    lh_client_destroy (&self->client);
    //  Stop in the reverse of the start order: a service may call one
    //  started before it while it stops
    s_started_t *started;
    while ((started = (s_started_t *) zlistx_last (self->started))) {
        zlistx_detach_cur (self->started);
        s_started_destroy (&started);
    }
    zlistx_destroy (&self->started);
    zactor_destroy (&self->broker);
    lh_config_destroy (&self->config);
    char *command = zsys_sprintf ("rm -rf '%s'", self->dir);
    int rc = system (command);
    assert (rc == 0);
    zstr_free (&command);
    free (self);
    *self_p = NULL;
}


//  --------------------------------------------------------------------------
//  Set a config key

void
lh_testbus_set (lh_testbus_t *self, const char *path, const char *value)
{
    assert (self);
    if (lh_config_set (self->config, path, value) != 0) {
        char *why = lh_config_explain (path, value);
        fprintf (stderr, "lh_testbus_set: %s\n", why? why: path);
        free (why);
        assert (false);
    }
}


lh_config_t *
lh_testbus_config (lh_testbus_t *self)
{
    assert (self);
    return self->config;
}

const lh_link_t *
lh_testbus_link (lh_testbus_t *self)
{
    assert (self);
    return &self->link;
}

const char *
lh_testbus_dir (lh_testbus_t *self)
{
    assert (self);
    return self->dir;
}


//  --------------------------------------------------------------------------
//  How many live workers the broker lists for a service

static size_t
s_workers (lh_testbus_t *self, const char *name)
{
    lh_reply_t *reply = lh_testbus_call (self, "broker", "workers", NULL);
    size_t count = 0;
    const msgpack_object *workers = lh_obj_get (lh_reply_object (reply), "workers");
    for (uint32_t index = 0; workers && workers->type == MSGPACK_OBJECT_ARRAY
                             && index < workers->via.array.size; index++) {
        const char *service;
        size_t size;
        if (lh_obj_str (&workers->via.array.ptr [index], "service", &service, &size)
        &&  size == strlen (name) && memcmp (service, name, size) == 0)
            count++;
    }
    lh_reply_destroy (&reply);
    return count;
}


//  --------------------------------------------------------------------------
//  Give the broker the config's ACL (acl/ keys), as the launcher does, so a
//  test sees what the real system enforces; set acl/ keys before a start

static void
s_configure_acl (lh_testbus_t *self)
{
    for (const char **path = s_config_keys; *path; path++) {
        if (strncmp (*path, "acl/", 4) != 0)
            continue;
        char *status = NULL, *detail = NULL;
        zsock_send (self->broker, "sss", "CONFIGURE", *path, lh_config_str (self->config, *path));
        zsock_recv (self->broker, "ss", &status, &detail);
        assert (status && streq (status, "0"));
        zstr_free (&status);
        zstr_free (&detail);
    }
}


//  --------------------------------------------------------------------------
//  Start workers of a service and wait until the broker lists them

void
lh_testbus_start (lh_testbus_t *self, const lh_service_t *service, int workers)
{
    assert (self);
    assert (service);
    s_configure_acl (self);
    s_started_t *started = (s_started_t *) zmalloc (sizeof (s_started_t));
    assert (started);
    started->name = strdup (service->name);
    started->runner = lh_service_start (service, &self->link, self->config, workers);
    if (!started->runner) {
        fprintf (stderr, "lh_testbus_start: %s did not start (see the log)\n", service->name);
        assert (false);
    }
    zlistx_add_end (self->started, started);
    int64_t until = zclock_mono () + S_WAIT_MS;
    while (s_workers (self, service->name) == 0) {
        assert (zclock_mono () < until);
        zclock_sleep (5);
    }
}


//  --------------------------------------------------------------------------
//  Stop a service started before

void
lh_testbus_stop (lh_testbus_t *self, const char *name)
{
    assert (self);
    for (s_started_t *started = (s_started_t *) zlistx_first (self->started); started;
         started = (s_started_t *) zlistx_next (self->started))
        if (streq (started->name, name)) {
            zlistx_detach_cur (self->started);
            s_started_destroy (&started);
            return;
        }
    assert (false);                     //  never started
}


//  --------------------------------------------------------------------------
//  Clients

lh_client_t *
lh_testbus_client (lh_testbus_t *self)
{
    assert (self);
    if (!self->client)
        self->client = lh_testbus_client_new (self, "testbus");
    return self->client;
}

lh_client_t *
lh_testbus_client_new (lh_testbus_t *self, const char *name)
{
    assert (self);
    lh_client_t *client = lh_client_new (&self->link, name);
    assert (client);
    return client;
}


//  --------------------------------------------------------------------------
//  Calls

lh_reply_t *
lh_testbus_call_raw (lh_testbus_t *self, const char *svc, const char *op,
                     const void *body, size_t size)
{
    assert (self);
    lh_call_opts_t opts = { .timeout_ms = S_CALL_TIMEOUT, .queue = true };
    lh_reply_t *reply = NULL;
    lh_client_call (lh_testbus_client (self), svc, op, body, size, &opts, &reply);
    assert (reply);
    return reply;
}

lh_reply_t *
lh_testbus_call (lh_testbus_t *self, const char *svc, const char *op,
                 const char *json)
{
    assert (self);
    if (!json)
        return lh_testbus_call_raw (self, svc, op, NULL, 0);
    char *error = NULL;
    zframe_t *body = lh_json_text_to_frame (json, strlen (json), NULL, &error);
    if (!body) {
        fprintf (stderr, "lh_testbus_call: bad JSON in the test: %s\n", error);
        assert (false);
    }
    lh_reply_t *reply = lh_testbus_call_raw (self, svc, op, zframe_data (body), zframe_size (body));
    zframe_destroy (&body);
    return reply;
}

uint32_t
lh_testbus_status (lh_testbus_t *self, const char *svc, const char *op,
                   const char *json)
{
    lh_reply_t *reply = lh_testbus_call (self, svc, op, json);
    uint32_t status = lh_reply_status (reply);
    lh_reply_destroy (&reply);
    return status;
}

//  The string at error.NAME of a reply as a fresh string ("" if none)
static char *
s_error_str (lh_reply_t *reply, const char *name)
{
    const msgpack_object *error = lh_obj_get (lh_reply_object (reply), "error");
    const char *text = "";
    size_t size = 0;
    lh_obj_str (error, name, &text, &size);
    return zsys_sprintf ("%.*s", (int) size, text);
}

void
lh_testbus_expect (lh_testbus_t *self, const char *svc, const char *op, const char *json,
                   uint32_t status, const char *kind, const char *field)
{
    lh_reply_t *reply = lh_testbus_call (self, svc, op, json);
    char *got_kind = s_error_str (reply, "kind");
    char *got_field = s_error_str (reply, "field");
    if (lh_reply_status (reply) != status
    ||  (kind && !streq (kind, got_kind)) || (field && !streq (field, got_field))) {
        fprintf (stderr, "%s.%s %s: expected %u %s/%s, got %u %s/%s\n", svc, op,
                 json? json: "(no body)", status, kind? kind: "*", field? field: "*",
                 lh_reply_status (reply), got_kind, got_field);
        assert (false);
    }
    zstr_free (&got_kind);
    zstr_free (&got_field);
    lh_reply_destroy (&reply);
    //  Exactly one answer: nothing else arrives for the request
    assert (lh_client_recv (lh_testbus_client (self), &reply, 0) == -1);
}

lh_reply_t *
lh_testbus_call_status (lh_testbus_t *self, const char *svc, const char *op, const char *json,
                        uint32_t status)
{
    lh_reply_t *reply = lh_testbus_call (self, svc, op, json);
    if (lh_reply_status (reply) != status) {
        char *text = lh_testbus_json (reply);
        fprintf (stderr, "%s.%s %.300s: %u %s (wanted %u)\n", svc, op, json? json: "(none)",
                 lh_reply_status (reply), text, status);
        zstr_free (&text);
        assert (false);
    }
    return reply;
}

char *
lh_testbus_error (lh_reply_t *reply)
{
    assert (reply);
    if (!lh_obj_get (lh_reply_object (reply), "error"))
        return strdup ("");
    char *kind = s_error_str (reply, "kind");
    char *field = s_error_str (reply, "field");
    char *error = zsys_sprintf ("%s/%s", kind, field);
    zstr_free (&kind);
    zstr_free (&field);
    return error;
}

char *
lh_testbus_json (lh_reply_t *reply)
{
    assert (reply);
    size_t size;
    const void *body = lh_reply_body (reply, &size);
    if (!body || !size)
        return strdup ("");
    char *error = NULL;
    char *text = lh_json_text_from_msgpack (body, size, NULL, &error);
    if (!text) {
        fprintf (stderr, "lh_testbus_json: reply is not renderable: %s\n", error);
        assert (false);
    }
    return text;
}


//  --------------------------------------------------------------------------
//  Self test: the request helpers of lh_actor, on a test service

//  One handler that reads every kind of field, replying with what it read
static void
s_test_fields (lh_request_t *request, void *state)
{
    const msgpack_object *body = lh_request_map (request);
    char *name = NULL;
    const char *tag = NULL;
    size_t tag_size = 0;
    int64_t k = 10;
    double score = 0.5;
    bool flag = false;
    const msgpack_object *items = NULL, *filter = NULL;
    if (!body
    ||  lh_request_strdup (request, body, "name", LH_FIELD_REQUIRED | LH_FIELD_NONEMPTY, 16, &name)
    ||  lh_request_str (request, body, "tag", LH_FIELD_LIMIT_413, 8, &tag, &tag_size)
    ||  lh_request_int (request, body, "k", 0, 1, 100, &k)
    ||  lh_request_double (request, body, "score", 0, 0.0, 1.0, &score)
    ||  lh_request_bool (request, body, "flag", 0, &flag)
    ||  lh_request_array (request, body, "items", LH_FIELD_LIMIT_413, 3, &items)
    ||  lh_request_submap (request, body, "filter", 0, &filter)) {
        free (name);
        return;
    }
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_kv_str (pack, "name", name);
    if (tag) {
        lh_pack_str (pack, "tag");
        lh_pack_strn (pack, tag, tag_size);
    }
    lh_pack_kv_int (pack, "k", k);
    lh_pack_kv_double (pack, "score", score);
    lh_pack_kv_bool (pack, "flag", flag);
    if (items)
        lh_pack_kv_uint (pack, "items", items->via.array.size);
    lh_pack_close (pack);
    lh_request_reply_pack (request, 200, &pack);
    free (name);
}

//  Calls echo twice at once and itself once, with each helper
static void
s_test_calls (lh_request_t *request, void *state)
{
    lh_call_t calls [3] = {
        { .svc = "echo", .op = "echo", .body = "\x81\xa1n\x01", .size = 4 },
        { .svc = "echo", .op = "echo", .body = "\x81\xa1n\x02", .size = 4 },
        { .svc = "echo", .op = "nosuch" }
    };
    int rc = lh_request_call_all (request, calls, 3, 2000);
    assert (rc == 0);
    uint64_t one = 0, two = 0;
    assert (lh_reply_status (calls [0].reply) == 200);
    assert (lh_obj_uint (lh_reply_object (calls [0].reply), "n", &one) && one == 1);
    assert (lh_obj_uint (lh_reply_object (calls [1].reply), "n", &two) && two == 2);
    assert (lh_reply_status (calls [2].reply) == 404);
    //  The trace id rode along
    assert (streq (lh_reply_header (calls [0].reply)->tr, lh_request_trace (request)));
    for (size_t index = 0; index < 3; index++)
        lh_reply_destroy (&calls [index].reply);
    lh_reply_t *reply;
    assert (lh_request_call (request, "echo", "echo", NULL, 0, 0, &reply) == 0);
    lh_reply_destroy (&reply);
    //  A dependency that does not answer: 503 with retry_after_ms
    lh_request_call (request, "slow", "sleep", NULL, 0, 100, &reply);
    assert (lh_reply_status (reply) == 504);
    assert (lh_request_fail_dependency (request, reply, "slow", "the nap") == -1);
    lh_reply_destroy (&reply);
}

//  Reads the body as JSON and answers it back with "seen": true
static void
s_test_json (lh_request_t *request, void *state)
{
    json_t *body = lh_request_json (request);
    if (!body)
        return;
    json_object_set_new (body, "seen", json_true ());
    lh_request_reply_json (request, 200, body);
}

//  Never answers in time
static void
s_test_sleep (lh_request_t *request, void *state)
{
    zclock_sleep (300);
    lh_request_reply_raw (request, 200, NULL, 0);
}

static const lh_op_t s_test_ops [] = {
    { "fields", s_test_fields },
    { "calls", s_test_calls },
    { "json", s_test_json },
    { NULL, NULL }
};
static const lh_service_t s_test_service = { .name = "fields", .ops = s_test_ops };
static const lh_op_t s_slow_ops [] = { { "sleep", s_test_sleep }, { NULL, NULL } };
static const lh_service_t s_slow_service = { .name = "slow", .ops = s_slow_ops };

#include "echo.h"

void
lh_testbus_test (bool verbose)
{
    printf (" * lh_testbus: ");
    lh_testbus_t *bus = lh_testbus_new ("selftest");
    assert (strstr (lh_config_str (lh_testbus_config (bus), "data/dir"), lh_testbus_dir (bus)));
    lh_testbus_start (bus, &s_test_service, 1);
    lh_testbus_start (bus, &lh_echo_service, 1);
    lh_testbus_start (bus, &s_slow_service, 1);

    //  Every wrong shape: exactly one answer, the status, kind and field
    struct {
        const char *json;               //  request body, NULL = none
        uint32_t status;                //  expected status
        const char *error;              //  expected "kind/field", or NULL
    } cases [] = {
        { "{\"name\": \"a\"}", 200, NULL },
        { NULL, 400, "bad_field/name" },
        { "[]", 400, "bad_body/" },
        { "\"text\"", 400, "bad_body/" },
        { "{}", 400, "bad_field/name" },
        { "{\"name\": null}", 400, "bad_field/name" },
        { "{\"name\": \"\"}", 400, "bad_field/name" },
        { "{\"name\": 7}", 400, "bad_field/name" },
        { "{\"name\": \"a\\u0000b\"}", 400, "bad_field/name" },
        { "{\"name\": \"abcdefghijklmnopq\"}", 400, "bad_field/name" },
        { "{\"name\": \"a\", \"tag\": \"123456789\"}", 413, "too_large/tag" },
        { "{\"name\": \"a\", \"tag\": 1}", 400, "bad_field/tag" },
        { "{\"name\": \"a\", \"k\": 0}", 400, "bad_field/k" },
        { "{\"name\": \"a\", \"k\": 101}", 400, "bad_field/k" },
        { "{\"name\": \"a\", \"k\": 5.0}", 400, "bad_field/k" },
        { "{\"name\": \"a\", \"k\": \"5\"}", 400, "bad_field/k" },
        { "{\"name\": \"a\", \"k\": -9223372036854775807}", 400, "bad_field/k" },
        { "{\"name\": \"a\", \"score\": 1.5}", 400, "bad_field/score" },
        { "{\"name\": \"a\", \"score\": true}", 400, "bad_field/score" },
        { "{\"name\": \"a\", \"score\": 1}", 200, NULL },
        { "{\"name\": \"a\", \"flag\": 1}", 400, "bad_field/flag" },
        { "{\"name\": \"a\", \"items\": {}}", 400, "bad_field/items" },
        { "{\"name\": \"a\", \"items\": [1,2,3,4]}", 413, "too_large/items" },
        { "{\"name\": \"a\", \"filter\": []}", 400, "bad_field/filter" },
        { "{\"name\": \"a\", \"tag\": \"t\", \"k\": 3, \"score\": 0, \"flag\": true, "
          "\"items\": [1], \"filter\": {}}", 200, NULL },
    };
    for (size_t index = 0; index < sizeof (cases) / sizeof (cases [0]); index++) {
        char *kind = NULL, *field = NULL;
        if (cases [index].error) {
            kind = strdup (cases [index].error);
            field = strchr (kind, '/');
            *field++ = 0;
        }
        lh_testbus_expect (bus, "fields", "fields", cases [index].json, cases [index].status,
                           kind? kind: "", field? field: "");
        free (kind);
    }
    //  An integer past int64 (msgpack uint64 max)
    const char huge [] = "\x82\xa4name\xa1x\xa1k\xcf\xff\xff\xff\xff\xff\xff\xff\xff";
    lh_reply_t *reply = lh_testbus_call_raw (bus, "fields", "fields", huge, sizeof (huge) - 1);
    assert (lh_reply_status (reply) == 400);
    lh_reply_destroy (&reply);
    reply = lh_testbus_call (bus, "fields", "fields", "{\"name\": \"x\", \"k\": 7}");
    char *text = lh_testbus_json (reply);
    assert (streq (text, "{\"name\":\"x\",\"k\":7,\"score\":0.5,\"flag\":false}"));
    zstr_free (&text);
    lh_reply_destroy (&reply);

    reply = lh_testbus_call (bus, "fields", "fields", "{\"name\": 7}");
    text = lh_testbus_error (reply);
    assert (streq (text, "bad_field/name"));
    zstr_free (&text);
    lh_reply_destroy (&reply);

    //  JSON-shaped bodies both ways
    reply = lh_testbus_call (bus, "fields", "json", "{\"a\": [1, \"x\"]}");
    text = lh_testbus_json (reply);
    assert (lh_reply_status (reply) == 200 && streq (text, "{\"a\":[1,\"x\"],\"seen\":true}"));
    zstr_free (&text);
    lh_reply_destroy (&reply);
    assert (lh_testbus_status (bus, "fields", "json", NULL) == 200);
    assert (lh_testbus_status (bus, "fields", "json", "[1]") == 400);
    const char bad_key [] = "\x81\x01\x02";       //  {1: 2}: no JSON for it
    reply = lh_testbus_call_raw (bus, "fields", "json", bad_key, sizeof (bad_key) - 1);
    assert (lh_reply_status (reply) == 400);
    lh_reply_destroy (&reply);

    //  Calls from a handler: several at once, trace carried, a dependency
    //  past its deadline mapped to 503 with retry_after_ms
    reply = lh_testbus_call (bus, "fields", "calls", NULL);
    assert (lh_reply_status (reply) == 503);
    uint64_t retry = 0;
    assert (lh_obj_uint (lh_obj_get (lh_reply_object (reply), "error"), "retry_after_ms", &retry));
    assert (retry > 0);
    lh_reply_destroy (&reply);

    //  A stopped service is gone; started again, it serves
    lh_testbus_stop (bus, "echo");
    lh_testbus_start (bus, &lh_echo_service, 2);
    assert (lh_testbus_status (bus, "echo", "echo", "{}") == 200);
    lh_testbus_destroy (&bus);
    assert (bus == NULL);
    printf ("OK\n");
}
