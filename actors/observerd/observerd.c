/*  =========================================================================
    observerd - every event on the bus, kept; see observerd.h

    The state holds the ring (lh_evring) and one subscriber thread. The
    subscriber is the only place that subscribes (s_subscribe): one bus
    client, named "observerd-sub" (or its certificate's name), that says
    SUB for each prefix of observerd/prefixes and appends every PUB it
    receives. Its client reconnects and subscribes again by itself after
    a broker restart (lh_client); if the broker cannot be reached at all
    the thread retries every S_RETRY_MS.

    The handlers read and check their whole body before touching the ring,
    so a refused request leaves the ring as it was.
    =========================================================================
*/

#include "observerd.h"
#include "lh_evring.h"
#include "lh_log.h"
#include <pthread.h>

#define S_NAME              "observerd"
#define S_RETRY_MS          500         //  broker unreachable: try again after
#define S_RECV_MS           200         //  the subscriber checks stop this often
#define S_INBOX_BODY_MAX    8192        //  largest inbox body, bytes (SPEC 5.9)
#define S_INBOX_FIELD_MAX   256         //  subject, sender, tag: characters kept
#define S_PREFIXES_MAX      64          //  topic prefixes in observerd/prefixes

typedef struct {
    lh_evring_t *ring;                  //  the events
    lh_link_t link;                     //  how the subscriber reaches the broker
    char *prefixes [S_PREFIXES_MAX];    //  topic prefixes subscribed
    size_t prefix_count;                //  how many
    size_t reply_max;                   //  largest events reply, bytes
    pthread_t subscriber;               //  the subscriber thread
    bool started;                       //  it runs
    volatile bool stop;                 //  it should end
    volatile bool connected;            //  its client is up
    volatile uint64_t connects;         //  clients it made
} s_state_t;


//  --------------------------------------------------------------------------
//  Subscribe a fresh client to every configured prefix: the one place
//  that says SUB (when PUB/SUB gets an ACL, observerd's role must be
//  allowed these prefixes). Returns 0, or -1.

static int
s_subscribe (s_state_t *self, lh_client_t *client)
{
    for (size_t index = 0; index < self->prefix_count; index++)
        if (lh_client_subscribe (client, self->prefixes [index])) {
            lh_warn (S_NAME, NULL, "cannot subscribe to '%s'", self->prefixes [index]);
            return -1;
        }
    return 0;
}


//  --------------------------------------------------------------------------
//  Keep one event received from the bus

static void
s_keep (s_state_t *self, lh_reply_t *event)
{
    const lh_header_t *header = lh_reply_header (event);
    size_t size;
    const void *body = lh_reply_body (event, &size);
    uint64_t time_us = (header->has & LH_H_BRX) && header->brx? header->brx: lh_evring_now_us ();
    lh_evring_append (self->ring, (header->has & LH_H_BSEQ)? header->bseq: 0, time_us,
                      header->topic, strlen (header->topic), header->src, strlen (header->src),
                      body, size, NULL);
}


//  --------------------------------------------------------------------------
//  The subscriber thread: one client, every PUB into the ring, until stop

static void *
s_subscriber (void *arg)
{
    s_state_t *self = (s_state_t *) arg;
    pthread_setname_np (pthread_self (), "observerd-sub");
    lh_client_t *client = NULL;
    while (!self->stop && !zsys_interrupted) {
        if (!client) {
            client = lh_client_new (&self->link, "observerd-sub");
            if (client && s_subscribe (self, client))
                lh_client_destroy (&client);
            if (!client) {
                for (int waited = 0; waited < S_RETRY_MS && !self->stop; waited += 50)
                    zclock_sleep (50);
                continue;
            }
            self->connects++;
            self->connected = true;
        }
        lh_reply_t *event = NULL;
        if (lh_client_recv (client, &event, S_RECV_MS) != 0)
            continue;
        if (lh_reply_type (event) == LH_T_PUB)
            s_keep (self, event);
        lh_reply_destroy (&event);
    }
    self->connected = false;
    lh_client_destroy (&client);
    return NULL;
}


//  --------------------------------------------------------------------------
//  Read the since field: a seq (integer, or a string of digits) or an RFC
//  3339 time. 0, or -1 after answering 400.

static int
s_read_since (lh_request_t *request, const msgpack_object *body, lh_evquery_t *query)
{
    const msgpack_object *since = lh_obj_get (body, "since");
    if (!since || since->type == MSGPACK_OBJECT_NIL)
        return 0;
    if (since->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        query->since_seq = since->via.u64;
        return 0;
    }
    if (since->type == MSGPACK_OBJECT_STR && since->via.str.size > 0) {
        const char *text = since->via.str.ptr;
        size_t size = since->via.str.size, index = 0;
        uint64_t seq = 0;
        while (index < size && index < 20 && isdigit ((unsigned char) text [index])) {
            uint64_t digit = (uint64_t) (text [index] - '0');
            if (seq > (UINT64_MAX - digit) / 10)
                break;
            seq = seq * 10 + digit;
            index++;
        }
        if (index == size) {
            query->since_seq = seq;
            return 0;
        }
        if (lh_evring_time_parse (text, size, &query->since_time_us) == 0)
            return 0;
    }
    return lh_request_bad (request, "since", "'since' must be an event seq (a number >= 0) "
                           "or an RFC 3339 time such as 2026-01-02T03:04:05Z");
}


//  --------------------------------------------------------------------------
//  events {since?, since_bseq?, type?, source?, limit?}

static void
s_events (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    const msgpack_object *body = lh_request_map (request);
    lh_evquery_t query = { .reply_max = self->reply_max };
    int64_t since_bseq = 0, limit = 100;
    if (!body
    ||  s_read_since (request, body, &query)
    ||  lh_request_int (request, body, "since_bseq", 0, 0, INT64_MAX, &since_bseq)
    ||  lh_request_str (request, body, "type", LH_FIELD_NONEMPTY, LH_EVRING_TOPIC_MAX,
                        &query.type, &query.type_size)
    ||  lh_request_str (request, body, "source", LH_FIELD_NONEMPTY, LH_EVRING_SOURCE_MAX,
                        &query.source, &query.source_size)
    ||  lh_request_int (request, body, "limit", 0, 1, LH_EVRING_LIMIT_MAX, &limit))
        return;
    query.since_bseq = (uint64_t) since_bseq;
    query.limit = (size_t) limit;
    lh_pack_t *pack = lh_pack_new ();
    lh_evring_query (self->ring, &query, pack);
    lh_request_reply_pack (request, LH_ST_OK, &pack);
}


//  --------------------------------------------------------------------------
//  stats {}

static void
s_stats (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    if (!lh_request_map (request))
        return;
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_evring_stats (self->ring, pack);
    lh_pack_kv_bool (pack, "subscribed", self->connected);
    lh_pack_kv_uint (pack, "subscriber_connects", self->connects);
    lh_pack_str (pack, "prefixes");
    lh_pack_open_array (pack);
    for (size_t index = 0; index < self->prefix_count; index++)
        lh_pack_str (pack, *self->prefixes [index]? self->prefixes [index]: "*");
    lh_pack_close (pack);
    lh_pack_close (pack);
    lh_request_reply_pack (request, LH_ST_OK, &pack);
}


//  --------------------------------------------------------------------------
//  Read one inbox text field, cleaned (control characters dropped, cut at
//  max_chars), into out; required ones must keep a character. 0, or -1
//  after answering.

static int
s_read_text (lh_request_t *request, const msgpack_object *body, const char *field,
             int flags, size_t max_bytes, size_t max_chars, bool keep_lines, zchunk_t *out)
{
    const char *text = NULL;
    size_t size = 0;
    if (lh_request_str (request, body, field, flags, max_bytes, &text, &size))
        return -1;
    if (text && lh_evring_clean_text (text, size, keep_lines, max_chars, out))
        return lh_request_bad (request, field, "'%s' is not valid UTF-8", field);
    if ((flags & LH_FIELD_REQUIRED) && zchunk_size (out) == 0)
        return lh_request_bad (request, field, "'%s' must hold a character that is not a "
                               "control character", field);
    return 0;
}


//  --------------------------------------------------------------------------
//  inbox {subject, sender, tag?, priority?, body?}: stored as an event of
//  topic inbox.PRIORITY, returned

static void
s_inbox (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    const msgpack_object *body = lh_request_map (request);
    zchunk_t *subject = zchunk_new (NULL, 64), *sender = zchunk_new (NULL, 64);
    zchunk_t *tag = zchunk_new (NULL, 64), *text = zchunk_new (NULL, 256);
    const char *priority = NULL;
    size_t priority_size = 0;
    //  Fields as given are bounded by the broker's max_msg; what is kept
    //  is cut to 256 characters (1 KiB of UTF-8)
    if (!body
    ||  s_read_text (request, body, "subject", LH_FIELD_REQUIRED, 0, S_INBOX_FIELD_MAX, false, subject)
    ||  s_read_text (request, body, "sender", LH_FIELD_REQUIRED, 0, S_INBOX_FIELD_MAX, false, sender)
    ||  s_read_text (request, body, "tag", 0, 0, S_INBOX_FIELD_MAX, false, tag)
    ||  lh_request_str (request, body, "priority", 0, 16, &priority, &priority_size)
    ||  s_read_text (request, body, "body", LH_FIELD_LIMIT_413, S_INBOX_BODY_MAX, 0, true, text))
        goto done;
    static const char *s_priorities [] = { "urgent", "high", "medium", "low", NULL };
    const char *level = "medium";
    if (priority && priority_size > 0) {
        level = NULL;
        for (const char **known = s_priorities; *known && !level; known++)
            if (strlen (*known) == priority_size && memcmp (*known, priority, priority_size) == 0)
                level = *known;
        if (!level) {
            lh_request_bad (request, "priority", "'priority' must be urgent, high, medium "
                            "or low (absent or empty: medium)");
            goto done;
        }
    }
    lh_pack_t *event = lh_pack_new ();
    lh_pack_open_map (event);
    lh_pack_str (event, "subject");
    lh_pack_strn (event, (const char *) zchunk_data (subject), zchunk_size (subject));
    lh_pack_str (event, "sender");
    lh_pack_strn (event, (const char *) zchunk_data (sender), zchunk_size (sender));
    if (zchunk_size (tag) > 0) {
        lh_pack_str (event, "tag");
        lh_pack_strn (event, (const char *) zchunk_data (tag), zchunk_size (tag));
    }
    lh_pack_kv_str (event, "priority", level);
    lh_pack_str (event, "body");
    lh_pack_strn (event, (const char *) zchunk_data (text), zchunk_size (text));
    lh_pack_close (event);
    char topic [32];
    snprintf (topic, sizeof (topic), "inbox.%s", level);
    const char *source = lh_request_src (request);
    const lh_header_t *header = lh_request_header (request);
    size_t event_size;
    const void *event_data = lh_pack_data (event, &event_size);
    lh_pack_t *pack = lh_pack_new ();
    lh_evring_append (self->ring, (header->has & LH_H_BSEQ)? header->bseq: 0,
                      lh_evring_now_us (), topic, strlen (topic),
                      source? source: "", source? strlen (source): 0,
                      event_data, event_size, pack);
    lh_pack_destroy (&event);
    lh_request_reply_pack (request, LH_ST_CREATED, &pack);
done:
    zchunk_destroy (&subject);
    zchunk_destroy (&sender);
    zchunk_destroy (&tag);
    zchunk_destroy (&text);
}


//  --------------------------------------------------------------------------
//  Destroy the state: stop the subscriber, flush and close the ring

static void
s_state_destroy (void **state_p)
{
    s_state_t *self = (s_state_t *) *state_p;
    if (self) {
        if (self->started) {
            self->stop = true;
            pthread_join (self->subscriber, NULL);
        }
        lh_evring_destroy (&self->ring);
        for (size_t index = 0; index < self->prefix_count; index++)
            free (self->prefixes [index]);
        free (self);
        *state_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Create the state: the ring (reloaded from the log), then the
//  subscriber thread

static void *
s_state_new (lh_config_t *config, const lh_link_t *link, const char **error)
{
    s_state_t *self = (s_state_t *) zmalloc (sizeof (s_state_t));
    assert (self);
    self->link = *link;
    //  Prefixes: comma-separated, * (or an empty item) = every topic
    const char *list = lh_config_str (config, "observerd/prefixes");
    char *copy = strdup (list), *save = NULL;
    for (char *item = strtok_r (copy, ",", &save); item; item = strtok_r (NULL, ",", &save)) {
        while (*item == ' ')
            item++;
        size_t size = strlen (item);
        while (size && item [size - 1] == ' ')
            item [--size] = 0;
        if (streq (item, "*"))
            *item = 0;
        if (self->prefix_count < S_PREFIXES_MAX && size <= LH_TOPIC_MAX)
            self->prefixes [self->prefix_count++] = strdup (item);
    }
    free (copy);
    if (self->prefix_count == 0)
        self->prefixes [self->prefix_count++] = strdup ("");
    const char *dir = lh_config_str (config, "observerd/dir");
    char *log_dir = *dir? strdup (dir): zsys_sprintf ("%s/observerd", lh_config_str (config, "data/dir"));
    lh_evring_opts_t opts = {
        .ring_max = (size_t) lh_config_int (config, "observerd/ring_max"),
        .ring_bytes = (size_t) lh_config_int (config, "observerd/ring_bytes"),
        .body_max = (size_t) lh_config_int (config, "observerd/body_max"),
        .dir = log_dir,
        .log_max_bytes = (size_t) lh_config_int (config, "observerd/log_max_bytes"),
        .log_files = (size_t) lh_config_int (config, "observerd/log_files"),
        .flush_ms = (int) lh_config_int (config, "observerd/flush_ms"),
        .fsync = lh_config_bool (config, "observerd/fsync"),
        .buffer_max = (size_t) lh_config_int (config, "observerd/log_buffer_max"),
        .topics_max = (size_t) lh_config_int (config, "observerd/topics_max")
    };
    self->reply_max = (size_t) lh_config_int (config, "observerd/reply_max");
    int64_t started = zclock_mono ();
    self->ring = lh_evring_new (&opts);
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_evring_stats (self->ring, pack);
    lh_pack_close (pack);
    size_t size;
    const void *data = lh_pack_data (pack, &size);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 1024);
    msgpack_object stats;
    uint64_t reloaded = 0, skipped = 0, newest = 0;
    if (lh_msgpack_unpack (data, size, &lh_limits_default, &zone, &stats) == 0) {
        lh_obj_uint (&stats, "reloaded", &reloaded);
        lh_obj_uint (&stats, "reload_skipped", &skipped);
        lh_obj_uint (&stats, "newest", &newest);
    }
    msgpack_zone_destroy (&zone);
    lh_pack_destroy (&pack);
    lh_info (S_NAME, NULL, "%" PRIu64 " events reloaded from %s in %" PRId64 " ms (newest seq %"
             PRIu64 ", %" PRIu64 " lines skipped)", reloaded, log_dir, zclock_mono () - started,
             newest, skipped);
    free (log_dir);
    if (pthread_create (&self->subscriber, NULL, s_subscriber, self) != 0) {
        *error = "cannot start the subscriber thread";
        void *state = self;
        s_state_destroy (&state);
        return NULL;
    }
    self->started = true;
    return self;
}


static const lh_op_t s_ops [] = {
    { "events", s_events },
    { "stats", s_stats },
    { "inbox", s_inbox },
    { NULL, NULL }
};

const lh_service_t lh_observerd_service = {
    .name = "observerd",
    .ops = s_ops,
    .state_new = s_state_new,
    .state_destroy = s_state_destroy,
    .credit = 1,
    .single_instance = true             //  its ring and log live in this process
};


//  --------------------------------------------------------------------------
//  Self test: observerd on a test bus. Events published by a client are
//  kept and served (since, type, source, limit, pages); the ring bound;
//  inbox rules; every refusal answered once, nothing written; a restart
//  serves the events again from the log.

#include "lh_testbus.h"
#include "lh_json.h"

//  A counter of the stats
static uint64_t
s_test_stat (lh_testbus_t *bus, const char *name)
{
    lh_reply_t *reply = lh_testbus_call_status (bus, "observerd", "stats", NULL, 200);
    uint64_t value = UINT64_MAX;
    lh_obj_uint (lh_reply_object (reply), name, &value);
    lh_reply_destroy (&reply);
    return value;
}

//  The events of a query, as JSON text (caller frees)
static char *
s_test_events (lh_testbus_t *bus, const char *json)
{
    lh_reply_t *reply = lh_testbus_call_status (bus, "observerd", "events", json, 200);
    char *text = lh_testbus_json (reply);
    lh_reply_destroy (&reply);
    return text;
}

//  Publish from a client and wait until observerd holds that many events
static void
s_test_publish (lh_testbus_t *bus, lh_client_t *client, const char *topic, const char *json,
                uint64_t want)
{
    zframe_t *body = lh_json_text_to_frame (json, strlen (json), NULL, NULL);
    assert (body);
    assert (lh_client_publish (client, topic, zframe_data (body), zframe_size (body)) == 0);
    zframe_destroy (&body);
    int64_t until = zclock_mono () + 10000;
    while (s_test_stat (bus, "received") < want && zclock_mono () < until)
        zclock_sleep (10);
    assert (s_test_stat (bus, "received") == want);
}

//  A refused request: status, "kind/field", one reply, nothing kept
static void
s_test_refused (lh_testbus_t *bus, const char *op, const char *json, uint32_t status,
                const char *error, bool verbose)
{
    uint64_t received = s_test_stat (bus, "received");
    lh_reply_t *reply = lh_testbus_call (bus, "observerd", op, json);
    const msgpack_object *fault = lh_obj_get (lh_reply_object (reply), "error");
    const char *kind = "", *field = "";
    size_t kind_size = 0, field_size = 0;
    lh_obj_str (fault, "kind", &kind, &kind_size);
    lh_obj_str (fault, "field", &field, &field_size);
    char *got = zsys_sprintf ("%.*s/%.*s", (int) kind_size, kind, (int) field_size, field);
    if (verbose)
        printf ("\n    %s %.60s -> %u %s", op, json? json: "(none)", lh_reply_status (reply), got);
    if (lh_reply_status (reply) != status || !streq (got, error)) {
        char *text = lh_testbus_json (reply);
        fprintf (stderr, "observerd.%s %.200s: %u %s, wanted %u %s\n", op, json? json: "(none)",
                 lh_reply_status (reply), text, status, error);
        zstr_free (&text);
        assert (false);
    }
    zstr_free (&got);
    lh_reply_destroy (&reply);
    assert (lh_client_recv (lh_testbus_client (bus), &reply, 0) == -1);
    assert (s_test_stat (bus, "received") == received);
}

void
lh_observerd_test (bool verbose)
{
    printf (" * observerd: ");
    lh_testbus_t *bus = lh_testbus_new ("observerd");
    //  The test's own client publishes every kind of topic
    lh_testbus_set (bus, "acl/actor/publish", "*");
    lh_testbus_set (bus, "observerd/ring_max", "20");
    lh_testbus_set (bus, "observerd/flush_ms", "20");
    lh_testbus_start (bus, &lh_observerd_service, 2);
    lh_client_t *publisher = lh_testbus_client_new (bus, "publisher");

    //  The subscriber connects on its own thread: publish a probe until
    //  it is seen (bounded), then every event is
    int64_t until = zclock_mono () + 10000;
    while (s_test_stat (bus, "received") == 0 && zclock_mono () < until) {
        assert (lh_client_publish (publisher, "probe", NULL, 0) == 0);
        zclock_sleep (20);
    }
    uint64_t received = s_test_stat (bus, "received");
    assert (received >= 1 && received < UINT64_MAX);
    s_test_publish (bus, publisher, "catalog.changed", "{\"op\": \"register\", \"name\": \"workers\"}",
                    received + 1);
    s_test_publish (bus, publisher, "storage.put", "{\"key\": \"a/b\"}", received + 2);
    uint64_t first = received + 1;

    //  events: stamped by the broker, body as published
    char *body = zsys_sprintf ("{\"since\": %" PRIu64 ", \"limit\": 1}", first - 1);
    char *text = s_test_events (bus, body);
    char *want = zsys_sprintf ("\"seq\":%" PRIu64 ",", first);
    assert (strstr (text, want) && strstr (text, "\"topic\":\"catalog.changed\""));
    assert (strstr (text, "\"source\":\"publisher\"") && strstr (text, "\"truncated\":true"));
    assert (strstr (text, "\"body\":{\"op\":\"register\",\"name\":\"workers\"}"));
    assert (strstr (text, "\"bseq\":") && !strstr (text, "\"bseq\":0,"));
    zstr_free (&want);
    zstr_free (&text);
    zstr_free (&body);
    //  since as a string of digits, a type prefix, a source
    body = zsys_sprintf ("{\"since\": \"%" PRIu64 "\", \"type\": \"storage.\"}", first - 1);
    text = s_test_events (bus, body);
    assert (strstr (text, "\"count\":1,") && strstr (text, "\"topic\":\"storage.put\""));
    zstr_free (&text);
    zstr_free (&body);
    text = s_test_events (bus, "{\"source\": \"nobody\"}");
    assert (strstr (text, "\"count\":0,") && strstr (text, "\"truncated\":false"));
    zstr_free (&text);
    //  since as a time: everything since the year 2000, nothing after 2100
    text = s_test_events (bus, "{\"since\": \"2000-01-01T00:00:00Z\", \"type\": \"catalog.\"}");
    assert (strstr (text, "\"count\":1,"));
    zstr_free (&text);
    text = s_test_events (bus, "{\"since\": \"2100-01-01T00:00:00+01:00\"}");
    assert (strstr (text, "\"count\":0,"));
    zstr_free (&text);

    //  The ring keeps the newest ring_max (20)
    received = s_test_stat (bus, "received");
    for (int index = 0; index < 30; index++) {
        char event [32];
        snprintf (event, sizeof (event), "{\"i\": %d}", index);
        s_test_publish (bus, publisher, "flood.tick", event, received + index + 1);
    }
    assert (s_test_stat (bus, "ring_size") == 20);
    uint64_t newest = s_test_stat (bus, "newest");
    assert (s_test_stat (bus, "oldest") == newest - 19);
    text = s_test_events (bus, "{\"limit\": 1000}");
    assert (strstr (text, "\"count\":20,") && strstr (text, "\"i\":29}") && !strstr (text, "\"i\":9}"));
    assert (strstr (text, "\"i\":10}"));
    zstr_free (&text);
    assert (s_test_stat (bus, "evicted") == received + 30 - 20);

    //  inbox: priorities, cleaning and caps
    lh_reply_t *reply = lh_testbus_call_status (bus, "observerd", "inbox",
                                                "{\"subject\": \"disk\\u0007 full\", \"sender\": "
                                                "\"ops\", \"priority\": \"urgent\", \"tag\": \"\", "
                                                "\"body\": \"line 1\\nline\\u0000 2\\r\"}", 201);
    text = lh_testbus_json (reply);
    assert (strstr (text, "\"topic\":\"inbox.urgent\"") && strstr (text, "\"subject\":\"disk full\""));
    assert (strstr (text, "\"body\":\"line 1\\nline 2\"") && !strstr (text, "\"tag\""));
    assert (strstr (text, "\"source\":\"testbus\""));
    zstr_free (&text);
    lh_reply_destroy (&reply);
    reply = lh_testbus_call_status (bus, "observerd", "inbox",
                                    "{\"subject\": \"s\", \"sender\": \"x\", \"priority\": \"\"}", 201);
    text = lh_testbus_json (reply);
    assert (strstr (text, "\"topic\":\"inbox.medium\"") && strstr (text, "\"priority\":\"medium\""));
    zstr_free (&text);
    lh_reply_destroy (&reply);
    char *long_field = (char *) malloc (9000);
    memset (long_field, 'a', 8999);
    long_field [8999] = 0;
    body = zsys_sprintf ("{\"subject\": \"%.300s\", \"sender\": \"%.1000s\", \"tag\": \"t\", "
                         "\"body\": \"%.8192s\"}", long_field, long_field, long_field);
    reply = lh_testbus_call_status (bus, "observerd", "inbox", body, 201);
    const msgpack_object *stored = lh_obj_get (lh_reply_object (reply), "body");
    const char *value;
    size_t size;
    assert (lh_obj_str (stored, "subject", &value, &size) && size == 256);
    assert (lh_obj_str (stored, "sender", &value, &size) && size == 256);
    assert (lh_obj_str (stored, "body", &value, &size) && size == 8192);
    lh_reply_destroy (&reply);
    zstr_free (&body);
    text = s_test_events (bus, "{\"type\": \"inbox.\"}");
    assert (strstr (text, "\"count\":3,"));
    zstr_free (&text);

    //  Every refusal: one reply, the status, kind and field, nothing kept
    char *big_body = zsys_sprintf ("{\"subject\": \"s\", \"sender\": \"x\", \"body\": \"%.8193s\"}",
                                   long_field);
    char *big_type = zsys_sprintf ("{\"type\": \"%.256s\"}", long_field);
    struct {
        const char *op;                 //  the op
        const char *json;               //  its body (NULL: none)
        uint32_t status;                //  expected status
        const char *error;              //  expected "kind/field"
    } cases [] = {
        { "events", "[]",                                           400, "bad_body/" },
        { "events", "\"x\"",                                        400, "bad_body/" },
        { "events", "{\"since\": -1}",                              400, "bad_field/since" },
        { "events", "{\"since\": 1.5}",                             400, "bad_field/since" },
        { "events", "{\"since\": \"\"}",                            400, "bad_field/since" },
        { "events", "{\"since\": \"yesterday\"}",                   400, "bad_field/since" },
        { "events", "{\"since\": \"2026-01-02\"}",                  400, "bad_field/since" },
        { "events", "{\"since\": \"99999999999999999999999\"}",     400, "bad_field/since" },
        { "events", "{\"since\": [1]}",                             400, "bad_field/since" },
        { "events", "{\"since_bseq\": \"1\"}",                      400, "bad_field/since_bseq" },
        { "events", "{\"since_bseq\": -3}",                         400, "bad_field/since_bseq" },
        { "events", "{\"type\": 5}",                                400, "bad_field/type" },
        { "events", "{\"type\": \"\"}",                             400, "bad_field/type" },
        { "events", big_type,                                       400, "bad_field/type" },
        { "events", "{\"source\": true}",                           400, "bad_field/source" },
        { "events", "{\"limit\": 0}",                               400, "bad_field/limit" },
        { "events", "{\"limit\": 1001}",                            400, "bad_field/limit" },
        { "events", "{\"limit\": \"10\"}",                          400, "bad_field/limit" },
        { "stats",  "[1]",                                          400, "bad_body/" },
        { "inbox",  NULL,                                           400, "bad_field/subject" },
        { "inbox",  "[]",                                           400, "bad_body/" },
        { "inbox",  "{\"sender\": \"x\"}",                          400, "bad_field/subject" },
        { "inbox",  "{\"subject\": \"\", \"sender\": \"x\"}",       400, "bad_field/subject" },
        { "inbox",  "{\"subject\": \"\\u0001\\u0002\", \"sender\": \"x\"}", 400, "bad_field/subject" },
        { "inbox",  "{\"subject\": 7, \"sender\": \"x\"}",          400, "bad_field/subject" },
        { "inbox",  "{\"subject\": \"s\"}",                         400, "bad_field/sender" },
        { "inbox",  "{\"subject\": \"s\", \"sender\": null}",       400, "bad_field/sender" },
        { "inbox",  "{\"subject\": \"s\", \"sender\": \"x\", \"tag\": 1}", 400, "bad_field/tag" },
        { "inbox",  "{\"subject\": \"s\", \"sender\": \"x\", \"priority\": \"URGENT\"}",
                                                                    400, "bad_field/priority" },
        { "inbox",  "{\"subject\": \"s\", \"sender\": \"x\", \"priority\": \"critical\"}",
                                                                    400, "bad_field/priority" },
        { "inbox",  "{\"subject\": \"s\", \"sender\": \"x\", \"priority\": 1}", 400, "bad_field/priority" },
        { "inbox",  "{\"subject\": \"s\", \"sender\": \"x\", \"body\": {\"a\": 1}}", 400, "bad_field/body" },
        { "inbox",  big_body,                                       413, "too_large/body" },
    };
    for (size_t index = 0; index < sizeof (cases) / sizeof (cases [0]); index++)
        s_test_refused (bus, cases [index].op, cases [index].json, cases [index].status,
                        cases [index].error, verbose);
    zstr_free (&big_body);
    zstr_free (&big_type);
    free (long_field);

    //  A restart serves the same events, from the log, and seqs go on
    text = s_test_events (bus, "{\"limit\": 1000}");
    newest = s_test_stat (bus, "newest");
    lh_testbus_stop (bus, "observerd");
    lh_testbus_start (bus, &lh_observerd_service, 1);
    char *again = s_test_events (bus, "{\"limit\": 1000}");
    assert (streq (text, again));
    zstr_free (&again);
    zstr_free (&text);
    assert (s_test_stat (bus, "reloaded") == 20 && s_test_stat (bus, "received") == 0);
    until = zclock_mono () + 10000;
    while (s_test_stat (bus, "received") == 0 && zclock_mono () < until) {
        assert (lh_client_publish (publisher, "after.restart", NULL, 0) == 0);
        zclock_sleep (20);
    }
    assert (s_test_stat (bus, "newest") > newest);

    lh_client_destroy (&publisher);
    lh_testbus_destroy (&bus);
    printf ("OK\n");
}
