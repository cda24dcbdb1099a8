/*  =========================================================================
    pathwayd - versioned memory traces over lh_pathstore; see pathwayd.h

    Each handler reads and checks the whole body first (uid, content,
    tags, ...), so a refused request writes nothing; then it hands one
    write to the store, which answers once the commit carrying it is on
    disk, or reads in a read transaction of its own.
    =========================================================================
*/

#include "pathwayd.h"
#include "lh_pathstore.h"
#include "lh_log.h"

#define S_NAME          "pathwayd"
#define S_SEARCH_LIMIT  100             //  results when search gives no limit

typedef struct {
    lh_pathstore_t *store;              //  the traces
    char *dir;                          //  where they live
    size_t content_max;                 //  largest content, msgpack bytes
    size_t tags_max;                    //  most tags per trace
    size_t search_max;                  //  largest search limit
    size_t history_max;                 //  longest history reply, traces
    size_t reply_max;                   //  largest search / history reply
} s_state_t;

//  What a write takes from its request
typedef struct {
    lh_pack_t *content;                 //  the content, packed
    zchunk_t *folded;                   //  its folded text
    lh_pack_t *tags;                    //  msgpack array of the tags, or NULL
    zchunk_t *folded_tags;              //  (u16 size | folded tag) x count
    size_t tag_count;                   //  how many tags (duplicates dropped)
} s_input_t;


//  --------------------------------------------------------------------------
//  Forget what a request gave

static void
s_input_reset (s_input_t *self)
{
    lh_pack_destroy (&self->content);
    zchunk_destroy (&self->folded);
    lh_pack_destroy (&self->tags);
    zchunk_destroy (&self->folded_tags);
    self->tag_count = 0;
}


//  --------------------------------------------------------------------------
//  Read the uid field; 0, or -1 after answering 400

static int
s_read_uid (lh_request_t *request, const msgpack_object *body, const char **uid,
            size_t *size)
{
    if (lh_request_str (request, body, "uid", LH_FIELD_REQUIRED | LH_FIELD_NONEMPTY,
                        LH_PATH_UID_MAX, uid, size))
        return -1;
    if (!lh_pathstore_uid_valid (*uid, *size))
        return lh_request_bad (request, "uid", "'uid' must be 1 to %d characters of "
                               "A-Z a-z 0-9 . _ : -", LH_PATH_UID_MAX);
    return 0;
}


//  --------------------------------------------------------------------------
//  Read the content field (any JSON value, null included): packed, at
//  most content_max bytes (413), something JSON can carry, folded for
//  search. 0, or -1 after answering.

static int
s_read_content (s_state_t *self, lh_request_t *request, const msgpack_object *body,
                s_input_t *input)
{
    const msgpack_object *content = lh_obj_get (body, "content");
    if (!content)
        return lh_request_bad (request, "content",
                               "'content' is required: any JSON value (null included)");
    input->content = lh_pack_new ();
    lh_pack_object (input->content, content);
    size_t size;
    lh_pack_data (input->content, &size);
    if (size > self->content_max)
        return lh_request_fail_field (request, LH_ST_TOO_LARGE, "too_large", "content",
                                      "'content' is %zu bytes (as msgpack); "
                                      "pathwayd/content_max allows %zu", size, self->content_max);
    input->folded = zchunk_new (NULL, 256);
    char reason [300];
    if (lh_pathstore_content (content, input->folded, reason, sizeof (reason)))
        return lh_request_bad (request, "content", "%s", reason);
    return 0;
}


//  --------------------------------------------------------------------------
//  Does a folded tag list hold this tag?

static bool
s_has_tag (zchunk_t *list, const void *tag, size_t size)
{
    const uint8_t *bytes = zchunk_data (list);
    size_t at = 0;
    while (at + 2 <= zchunk_size (list)) {
        size_t one = ((size_t) bytes [at] << 8) | bytes [at + 1];
        if (one == size && memcmp (bytes + at + 2, tag, size) == 0)
            return true;
        at += 2 + one;
    }
    return false;
}


//  --------------------------------------------------------------------------
//  Read the tags field (absent: input->tags stays NULL): at most
//  tags_max strings of 1..LH_PATH_TAG_MAX bytes; tags equal but for case
//  are kept once, as first written. 0, or -1 after answering 400.

static int
s_read_tags (s_state_t *self, lh_request_t *request, const msgpack_object *body,
             s_input_t *input)
{
    const msgpack_object *tags = NULL;
    if (lh_request_array (request, body, "tags", 0, (uint32_t) self->tags_max, &tags))
        return -1;
    if (!tags)
        return 0;
    input->tags = lh_pack_new ();
    input->folded_tags = zchunk_new (NULL, 64);
    lh_pack_open_array (input->tags);
    for (uint32_t index = 0; index < tags->via.array.size; index++) {
        const msgpack_object *tag = &tags->via.array.ptr [index];
        if (tag->type != MSGPACK_OBJECT_STR || tag->via.str.size == 0
        ||  tag->via.str.size > LH_PATH_TAG_MAX)
            return lh_request_bad (request, "tags", "'tags' item %u must be a string of 1 to %d bytes",
                                   index, LH_PATH_TAG_MAX);
        zchunk_t *folded = zchunk_new (NULL, tag->via.str.size + 8);
        if (lh_pathstore_fold (tag->via.str.ptr, tag->via.str.size, folded)) {
            zchunk_destroy (&folded);
            return lh_request_bad (request, "tags", "'tags' item %u is not valid UTF-8", index);
        }
        if (!s_has_tag (input->folded_tags, zchunk_data (folded), zchunk_size (folded))) {
            uint8_t size [2] = { (uint8_t) (zchunk_size (folded) >> 8),
                                 (uint8_t) zchunk_size (folded) };
            zchunk_extend (input->folded_tags, size, 2);
            zchunk_extend (input->folded_tags, zchunk_data (folded), zchunk_size (folded));
            lh_pack_strn (input->tags, tag->via.str.ptr, tag->via.str.size);
            input->tag_count++;
        }
        zchunk_destroy (&folded);
    }
    lh_pack_close (input->tags);
    return 0;
}


//  --------------------------------------------------------------------------
//  Answer a store error

static void
s_fail (lh_request_t *request, uint32_t status, const lh_patherror_t *error)
{
    if (status >= 500)
        lh_warn (S_NAME, lh_request_trace (request), "%s: %s", lh_request_op (request),
                 error->reason);
    lh_request_fail_field (request, status, error->kind, error->field, "%s", error->reason);
}


//  --------------------------------------------------------------------------
//  Publish pathway.OP for a committed write: the trace's uid, version,
//  predecessor (revise), retired and replay_count (docs/observerd.md)

static void
s_publish (lh_request_t *request, lh_pack_t *trace)
{
    size_t size;
    const void *data = lh_pack_data (trace, &size);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 1024);
    msgpack_object object;
    if (lh_msgpack_unpack (data, size, &lh_limits_default, &zone, &object) == 0) {
        lh_pack_t *pack = lh_pack_new ();
        lh_pack_open_map (pack);
        static const char *fields [] = { "uid", "version", "predecessor", "retired",
                                         "replay_count", NULL };
        for (const char **field = fields; *field; field++) {
            const msgpack_object *value = lh_obj_get (&object, *field);
            if (value) {
                lh_pack_str (pack, *field);
                lh_pack_object (pack, value);
            }
        }
        lh_pack_close (pack);
        char topic [32];
        snprintf (topic, sizeof (topic), "pathway.%s", lh_request_op (request));
        lh_request_event (request, topic, &pack);
    }
    msgpack_zone_destroy (&zone);
}


//  --------------------------------------------------------------------------
//  The writes: read and check the whole body, then one store write

static void
s_write (lh_request_t *request, s_state_t *self, lh_path_op_t op)
{
    const msgpack_object *body = lh_request_map (request);
    const char *uid = NULL;
    size_t uid_size = 0;
    s_input_t input = { 0 };
    bool takes_content = op != LH_PATH_RETIRE;
    if (!body
    ||  (op != LH_PATH_ADD && s_read_uid (request, body, &uid, &uid_size))
    ||  (takes_content && s_read_content (self, request, body, &input))
    ||  (takes_content && s_read_tags (self, request, body, &input))) {
        s_input_reset (&input);
        return;
    }
    lh_pathwrite_t write = { .op = op, .uid = uid, .uid_size = uid_size };
    if (input.content) {
        write.content = lh_pack_data (input.content, &write.content_size);
        write.folded = zchunk_data (input.folded);
        write.folded_size = zchunk_size (input.folded);
    }
    if (input.tags) {
        write.tags = lh_pack_data (input.tags, &write.tags_size);
        write.folded_tags = zchunk_data (input.folded_tags);
        write.folded_tags_size = zchunk_size (input.folded_tags);
        write.tag_count = input.tag_count;
    }
    else
    if (op == LH_PATH_ADD || op == LH_PATH_ADD_IDEMPOTENT) {
        write.tags = "\x90";            //  []
        write.tags_size = 1;
    }
    lh_pathstore_write (self->store, &write);
    if (write.status >= 400)
        s_fail (request, write.status, &write.error);
    else {
        s_publish (request, write.trace);
        lh_request_reply_pack (request, write.status, &write.trace);
    }
    s_input_reset (&input);
}

//  --------------------------------------------------------------------------
//  The write ops, each one call of s_write

static void
s_add (lh_request_t *request, void *state)
{
    s_write (request, (s_state_t *) state, LH_PATH_ADD);
}

static void
s_add_idempotent (lh_request_t *request, void *state)
{
    s_write (request, (s_state_t *) state, LH_PATH_ADD_IDEMPOTENT);
}

static void
s_update (lh_request_t *request, void *state)
{
    s_write (request, (s_state_t *) state, LH_PATH_UPDATE);
}

static void
s_revise (lh_request_t *request, void *state)
{
    s_write (request, (s_state_t *) state, LH_PATH_REVISE);
}

static void
s_retire (lh_request_t *request, void *state)
{
    s_write (request, (s_state_t *) state, LH_PATH_RETIRE);
}


//  --------------------------------------------------------------------------
//  get {uid, version?}

static void
s_get (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    const msgpack_object *body = lh_request_map (request);
    const char *uid;
    size_t uid_size;
    int64_t version = 0;
    if (!body
    ||  s_read_uid (request, body, &uid, &uid_size)
    ||  lh_request_int (request, body, "version", 0, 1, INT64_MAX, &version))
        return;
    lh_pack_t *pack = lh_pack_new ();
    lh_patherror_t error;
    uint32_t status = lh_pathstore_get (self->store, uid, uid_size, (uint64_t) version,
                                        pack, &error);
    if (status == LH_ST_OK)
        lh_request_reply_pack (request, status, &pack);
    else
        s_fail (request, status, &error);
    lh_pack_destroy (&pack);
}


//  --------------------------------------------------------------------------
//  history {uid, limit?}

static void
s_history (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    const msgpack_object *body = lh_request_map (request);
    const char *uid;
    size_t uid_size;
    int64_t limit = (int64_t) self->history_max;
    if (!body
    ||  s_read_uid (request, body, &uid, &uid_size)
    ||  lh_request_int (request, body, "limit", 0, 1, (int64_t) self->history_max, &limit))
        return;
    lh_pack_t *pack = lh_pack_new ();
    lh_patherror_t error;
    uint32_t status = lh_pathstore_history (self->store, uid, uid_size, (size_t) limit,
                                            self->reply_max, pack, &error);
    if (status == LH_ST_OK)
        lh_request_reply_pack (request, status, &pack);
    else
        s_fail (request, status, &error);
    lh_pack_destroy (&pack);
}


//  --------------------------------------------------------------------------
//  search {tags?, text?, include_retired?, limit?}

static void
s_search (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    const msgpack_object *body = lh_request_map (request);
    s_input_t input = { 0 };
    const char *text = NULL;
    size_t text_size = 0;
    bool include_retired = false;
    int64_t limit = (int64_t) (self->search_max < S_SEARCH_LIMIT? self->search_max: S_SEARCH_LIMIT);
    zchunk_t *folded = NULL;
    if (!body
    ||  s_read_tags (self, request, body, &input)
    ||  lh_request_str (request, body, "text", LH_FIELD_NONEMPTY, LH_PATH_TEXT_MAX, &text, &text_size)
    ||  lh_request_bool (request, body, "include_retired", 0, &include_retired)
    ||  lh_request_int (request, body, "limit", 0, 1, (int64_t) self->search_max, &limit))
        goto done;
    if (text) {
        folded = zchunk_new (NULL, text_size + 8);
        if (memchr (text, 0, text_size) || lh_pathstore_fold (text, text_size, folded)) {
            lh_request_bad (request, "text", "'text' must be valid UTF-8 without NUL characters");
            goto done;
        }
    }
    lh_pathquery_t query = {
        .folded_tags = input.folded_tags? zchunk_data (input.folded_tags): NULL,
        .folded_tags_size = input.folded_tags? zchunk_size (input.folded_tags): 0,
        .tag_count = input.tag_count,
        .text = folded? (const char *) zchunk_data (folded): NULL,
        .text_size = folded? zchunk_size (folded): 0,
        .include_retired = include_retired,
        .limit = (size_t) limit,
        .reply_max = self->reply_max
    };
    lh_pack_t *pack = lh_pack_new ();
    lh_patherror_t error;
    uint32_t status = lh_pathstore_search (self->store, &query, pack, &error);
    if (status == LH_ST_OK)
        lh_request_reply_pack (request, status, &pack);
    else
        s_fail (request, status, &error);
    lh_pack_destroy (&pack);
done:
    zchunk_destroy (&folded);
    s_input_reset (&input);
}


//  --------------------------------------------------------------------------
//  stats {}

static void
s_stats (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    lh_pathcounts_t counts;
    if (!lh_request_map (request))
        return;
    if (lh_pathstore_counts (self->store, &counts)) {
        lh_request_fail (request, LH_ST_INTERNAL, "storage_failed",
                         "the trace store cannot be read");
        return;
    }
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_kv_uint (pack, "total", counts.total);
    lh_pack_kv_uint (pack, "active", counts.total - counts.retired);
    lh_pack_kv_uint (pack, "retired", counts.retired);
    lh_pack_kv_uint (pack, "versions", counts.versions);
    lh_pack_close (pack);
    lh_request_reply_pack (request, LH_ST_OK, &pack);
}


//  --------------------------------------------------------------------------
//  Destroy the state

static void
s_state_destroy (void **state_p)
{
    s_state_t *self = (s_state_t *) *state_p;
    if (self) {
        lh_pathstore_destroy (&self->store);
        free (self->dir);
        free (self);
        *state_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Create the state: open the store (everything in it is served at once:
//  reads go straight to LMDB, nothing is loaded into memory)

static void *
s_state_new (lh_config_t *config, const lh_link_t *link, const char **error)
{
    s_state_t *self = (s_state_t *) zmalloc (sizeof (s_state_t));
    assert (self);
    const char *dir = lh_config_str (config, "pathwayd/dir");
    self->dir = *dir? strdup (dir): zsys_sprintf ("%s/pathwayd", lh_config_str (config, "data/dir"));
    size_t map_bytes = (size_t) lh_config_int (config, "pathwayd/map_bytes");
    size_t batch_max = (size_t) lh_config_int (config, "pathwayd/batch_max");
    self->content_max = (size_t) lh_config_int (config, "pathwayd/content_max");
    self->tags_max = (size_t) lh_config_int (config, "pathwayd/tags_max");
    self->search_max = (size_t) lh_config_int (config, "pathwayd/search_max");
    self->history_max = (size_t) lh_config_int (config, "pathwayd/history_max");
    self->reply_max = (size_t) lh_config_int (config, "pathwayd/reply_max");
    int64_t started = zclock_mono ();
    self->store = lh_pathstore_open (self->dir, map_bytes, batch_max, error);
    lh_pathcounts_t counts;
    if (self->store && lh_pathstore_counts (self->store, &counts))
        *error = "the trace store cannot be read";
    if (*error) {
        void *state = self;
        s_state_destroy (&state);
        return NULL;
    }
    lh_info (S_NAME, NULL, "%" PRIu64 " traces (%" PRIu64 " active, %" PRIu64 " retired), "
             "%" PRIu64 " versions in %s, opened in %" PRId64 " ms",
             counts.total, counts.total - counts.retired, counts.retired, counts.versions,
             self->dir, zclock_mono () - started);
    return self;
}


static const lh_op_t s_ops [] = {
    { "add", s_add },
    { "add_idempotent", s_add_idempotent },
    { "update", s_update },
    { "revise", s_revise },
    { "retire", s_retire },
    { "get", s_get },
    { "history", s_history },
    { "search", s_search },
    { "stats", s_stats },
    { NULL, NULL }
};

const lh_service_t lh_pathwayd_service = {
    .name = "pathwayd",
    .ops = s_ops,
    .state_new = s_state_new,
    .state_destroy = s_state_destroy,
    .credit = 1,
    .single_instance = true             //  its store is one LMDB on this host
};


//  --------------------------------------------------------------------------
//  Self test: pathwayd on a test bus: every op, every refusal (answered
//  once, nothing written), restart, and a cycle injected into history

#include "lh_testbus.h"

//  A msgpack literal and its size
#define S_TEST_RAW(bytes)   bytes, sizeof (bytes) - 1

//  A string field of a reply as a fresh string
static char *
s_test_field (lh_reply_t *reply, const char *name)
{
    return lh_obj_strdup (lh_obj_get (lh_reply_object (reply), name));
}

//  An integer field of a reply
static uint64_t
s_test_uint (lh_reply_t *reply, const char *name)
{
    uint64_t value = UINT64_MAX;
    lh_obj_uint (lh_reply_object (reply), name, &value);
    return value;
}

//  The stats as JSON text
static char *
s_test_stats (lh_testbus_t *bus)
{
    lh_reply_t *reply = lh_testbus_call_status (bus, "pathwayd", "stats", NULL, 200);
    char *text = lh_testbus_json (reply);
    lh_reply_destroy (&reply);
    return text;
}

//  A refused request: status, "kind/field", exactly one reply, stats
//  unchanged
static void
s_test_refused (lh_testbus_t *bus, const char *op, const void *body, size_t size, bool raw,
                uint32_t status, const char *error, bool verbose)
{
    char *before = s_test_stats (bus);
    lh_reply_t *reply = raw? lh_testbus_call_raw (bus, "pathwayd", op, body, size):
                             lh_testbus_call (bus, "pathwayd", op, (const char *) body);
    char *got = lh_testbus_error (reply);
    if (verbose)
        printf ("\n    %s %.60s -> %u %s", op, raw? "(msgpack)": body? (const char *) body: "(none)",
                lh_reply_status (reply), got);
    if (lh_reply_status (reply) != status || !streq (got, error)) {
        char *text = lh_testbus_json (reply);
        fprintf (stderr, "pathwayd.%s %.200s: %u %s, wanted %u %s\n", op,
                 raw? "(msgpack)": body? (const char *) body: "(none)",
                 lh_reply_status (reply), text, status, error);
        zstr_free (&text);
        assert (false);
    }
    zstr_free (&got);
    lh_reply_destroy (&reply);
    assert (lh_client_recv (lh_testbus_client (bus), &reply, 0) == -1);
    char *after = s_test_stats (bus);
    assert (streq (before, after));
    zstr_free (&before);
    zstr_free (&after);
}

void
lh_pathwayd_test (bool verbose)
{
    printf (" * pathwayd: ");
    lh_testbus_t *bus = lh_testbus_new ("pathwayd");
    //  Small map (valgrind cannot map the default), small limits to hit
    lh_testbus_set (bus, "pathwayd/map_bytes", "67108864");
    lh_testbus_set (bus, "pathwayd/content_max", "4096");
    lh_testbus_set (bus, "pathwayd/tags_max", "4");
    lh_testbus_set (bus, "pathwayd/history_max", "50");
    lh_testbus_set (bus, "pathwayd/search_max", "20");
    lh_testbus_start (bus, &lh_pathwayd_service, 4);

    //  add: 201, a ULID, version 1, RFC 3339 times, tags deduplicated
    lh_reply_t *reply = lh_testbus_call_status (bus, "pathwayd", "add",
                                                "{\"content\": {\"task\": \"Fill 3 forklift "
                                                "drivers\", \"city\": \"Toledo\", \"n\": 3}, "
                                                "\"tags\": [\"Staffing\", \"forklift\", \"STAFFING\"]}", 201);
    char *first = s_test_field (reply, "uid");
    char *created = s_test_field (reply, "created_at");
    assert (first && strlen (first) == 26);
    assert (created && strlen (created) == 24 && created [10] == 'T' && created [23] == 'Z');
    assert (s_test_uint (reply, "version") == 1 && s_test_uint (reply, "replay_count") == 0);
    assert (!lh_obj_get (lh_reply_object (reply), "predecessor"));
    char *text = lh_testbus_json (reply);
    assert (strstr (text, "\"tags\":[\"Staffing\",\"forklift\"]"));
    assert (strstr (text, "\"retired\":false"));
    zstr_free (&text);
    zstr_free (&created);
    lh_reply_destroy (&reply);

    //  Any JSON value is a content, and comes back as it went in
    const char *contents [] = { "null", "\"text\"", "[1,\"two\",[3.5]]", "-7", "true",
                                "{\"a\":{\"b\":[]},\"c\":\"\"}", "{}" };
    for (size_t index = 0; index < sizeof (contents) / sizeof (contents [0]); index++) {
        char *body = zsys_sprintf ("{\"content\": %s}", contents [index]);
        reply = lh_testbus_call_status (bus, "pathwayd", "add", body, 201);
        char *uid = s_test_field (reply, "uid");
        lh_reply_destroy (&reply);
        zstr_free (&body);
        body = zsys_sprintf ("{\"uid\": \"%s\"}", uid);
        reply = lh_testbus_call_status (bus, "pathwayd", "get", body, 200);
        text = lh_testbus_json (reply);
        char *want = zsys_sprintf ("\"content\":%s,", contents [index]);
        assert (strstr (text, want));
        zstr_free (&want);
        zstr_free (&text);
        zstr_free (&body);
        zstr_free (&uid);
        lh_reply_destroy (&reply);
    }

    //  add_idempotent: first creates with that uid, then only counts
    reply = lh_testbus_call_status (bus, "pathwayd", "add_idempotent",
                                    "{\"uid\": \"order-1\", \"content\": "
                                    "{\"v\": 1}, \"tags\": [\"order\"]}", 201);
    lh_reply_destroy (&reply);
    reply = lh_testbus_call_status (bus, "pathwayd", "add_idempotent",
                                    "{\"uid\": \"order-1\", \"content\": "
                                    "{\"v\": 99}, \"tags\": [\"other\"]}", 200);
    text = lh_testbus_json (reply);
    assert (strstr (text, "\"content\":{\"v\":1}") && strstr (text, "\"tags\":[\"order\"]"));
    assert (s_test_uint (reply, "replay_count") == 1 && s_test_uint (reply, "version") == 1);
    zstr_free (&text);
    lh_reply_destroy (&reply);

    //  update: same uid, version + 1, tags kept; earlier versions readable
    reply = lh_testbus_call_status (bus, "pathwayd", "update",
                                    "{\"uid\": \"order-1\", \"content\": {\"v\": 2}}", 200);
    assert (s_test_uint (reply, "version") == 2 && s_test_uint (reply, "replay_count") == 1);
    text = lh_testbus_json (reply);
    assert (strstr (text, "\"content\":{\"v\":2}") && strstr (text, "\"tags\":[\"order\"]"));
    zstr_free (&text);
    lh_reply_destroy (&reply);
    reply = lh_testbus_call_status (bus, "pathwayd", "get",
                                    "{\"uid\": \"order-1\", \"version\": 1}", 200);
    text = lh_testbus_json (reply);
    assert (strstr (text, "\"content\":{\"v\":1}") && strstr (text, "\"current_version\":2"));
    zstr_free (&text);
    lh_reply_destroy (&reply);
    reply = lh_testbus_call_status (bus, "pathwayd", "get", "{\"uid\": \"order-1\"}", 200);
    assert (s_test_uint (reply, "version") == 2 && !lh_obj_get (lh_reply_object (reply), "current_version"));
    lh_reply_destroy (&reply);

    //  revise: a new trace whose predecessor is uid, tags inherited
    reply = lh_testbus_call_status (bus, "pathwayd", "revise",
                                    "{\"uid\": \"order-1\", \"content\": {\"v\": 3}}", 201);
    char *revised = s_test_field (reply, "uid");
    char *predecessor = s_test_field (reply, "predecessor");
    assert (revised && strlen (revised) == 26 && streq (predecessor, "order-1"));
    assert (s_test_uint (reply, "version") == 1);
    text = lh_testbus_json (reply);
    assert (strstr (text, "\"tags\":[\"order\"]"));
    zstr_free (&text);
    zstr_free (&predecessor);
    lh_reply_destroy (&reply);

    //  history: the chain backwards
    char *body = zsys_sprintf ("{\"uid\": \"%s\"}", revised);
    reply = lh_testbus_call_status (bus, "pathwayd", "history", body, 200);
    text = lh_testbus_json (reply);
    assert (s_test_uint (reply, "count") == 2);
    assert (strstr (text, "\"truncated\":false") && !strstr (text, "\"cycle\""));
    assert (strstr (text, "\"predecessor\":\"order-1\"") && strstr (text, "\"uid\":\"order-1\""));
    zstr_free (&text);
    lh_reply_destroy (&reply);

    //  search: tags all-match ignoring case, text in the content, newest first
    reply = lh_testbus_call_status (bus, "pathwayd", "search", "{\"tags\": [\"ORDER\"]}", 200);
    assert (s_test_uint (reply, "count") == 2);
    const msgpack_object *results = lh_obj_get (lh_reply_object (reply), "results");
    const char *uid;
    size_t uid_size;
    assert (lh_obj_str (&results->via.array.ptr [0], "uid", &uid, &uid_size));
    assert (uid_size == 26 && memcmp (uid, revised, 26) == 0);
    lh_reply_destroy (&reply);
    reply = lh_testbus_call_status (bus, "pathwayd", "search",
                                    "{\"tags\": [\"staffing\", \"Forklift\"], \"text\": \"TOLEDO\"}", 200);
    assert (s_test_uint (reply, "count") == 1);
    lh_reply_destroy (&reply);
    reply = lh_testbus_call_status (bus, "pathwayd", "search",
                                    "{\"tags\": [\"staffing\", \"nurse\"]}", 200);
    assert (s_test_uint (reply, "count") == 0);
    lh_reply_destroy (&reply);
    reply = lh_testbus_call_status (bus, "pathwayd", "search", "{\"limit\": 3}", 200);
    text = lh_testbus_json (reply);
    assert (s_test_uint (reply, "count") == 3 && strstr (text, "\"truncated\":true"));
    zstr_free (&text);
    lh_reply_destroy (&reply);

    //  retire: hidden from search, still readable by get and history
    reply = lh_testbus_call_status (bus, "pathwayd", "retire", body, 200);
    text = lh_testbus_json (reply);
    assert (strstr (text, "\"retired\":true"));
    zstr_free (&text);
    lh_reply_destroy (&reply);
    reply = lh_testbus_call_status (bus, "pathwayd", "search", "{\"tags\": [\"order\"]}", 200);
    assert (s_test_uint (reply, "count") == 1);
    lh_reply_destroy (&reply);
    reply = lh_testbus_call_status (bus, "pathwayd", "search",
                                    "{\"tags\": [\"order\"], \"include_retired\": true}", 200);
    assert (s_test_uint (reply, "count") == 2);
    lh_reply_destroy (&reply);
    reply = lh_testbus_call_status (bus, "pathwayd", "get", body, 200);
    lh_reply_destroy (&reply);
    reply = lh_testbus_call_status (bus, "pathwayd", "history", body, 200);
    assert (s_test_uint (reply, "count") == 2);
    lh_reply_destroy (&reply);
    text = s_test_stats (bus);
    assert (streq (text, "{\"total\":10,\"active\":9,\"retired\":1,\"versions\":11}"));
    zstr_free (&text);

    //  Every refusal: one reply, the status, kind and field, stats unchanged
    char *big = (char *) malloc (5000);
    memset (big, 'x', 4999);
    big [4999] = 0;
    char *huge = zsys_sprintf ("{\"content\": \"%s\"}", big);
    char *huge_uid = zsys_sprintf ("{\"uid\": \"order-1\", \"content\": \"%s\"}", big);
    char *long_tag = zsys_sprintf ("{\"content\": 1, \"tags\": [\"%.257s\"]}", big);
    char *long_uid = zsys_sprintf ("{\"uid\": \"%.129s\"}", big);
    char *long_text = zsys_sprintf ("{\"text\": \"%.1025s\"}", big);
    struct {
        const char *op;                 //  the op
        const char *json;               //  its body (NULL: none)
        uint32_t status;                //  expected status
        const char *error;              //  expected "kind/field"
    } cases [] = {
        { "add",            NULL,                                       400, "bad_field/content" },
        { "add",            "[]",                                       400, "bad_body/" },
        { "add",            "\"x\"",                                    400, "bad_body/" },
        { "add",            "{}",                                       400, "bad_field/content" },
        { "add",            "{\"tags\": [\"a\"]}",                      400, "bad_field/content" },
        { "add",            "{\"content\": 1, \"tags\": \"a\"}",        400, "bad_field/tags" },
        { "add",            "{\"content\": 1, \"tags\": [1]}",          400, "bad_field/tags" },
        { "add",            "{\"content\": 1, \"tags\": [\"\"]}",       400, "bad_field/tags" },
        { "add",            "{\"content\": 1, \"tags\": [\"a\",\"b\",\"c\",\"d\",\"e\"]}",
                                                                        400, "bad_field/tags" },
        { "add",            long_tag,                                   400, "bad_field/tags" },
        { "add",            huge,                                       413, "too_large/content" },
        { "add_idempotent", "{\"content\": 1}",                         400, "bad_field/uid" },
        { "add_idempotent", "{\"uid\": \"\", \"content\": 1}",          400, "bad_field/uid" },
        { "add_idempotent", "{\"uid\": 7, \"content\": 1}",             400, "bad_field/uid" },
        { "add_idempotent", "{\"uid\": \"a b\", \"content\": 1}",       400, "bad_field/uid" },
        { "add_idempotent", "{\"uid\": \"a/b\", \"content\": 1}",       400, "bad_field/uid" },
        { "add_idempotent", long_uid,                                   400, "bad_field/uid" },
        { "add_idempotent", "{\"uid\": \"new-1\"}",                     400, "bad_field/content" },
        { "add_idempotent", "{\"uid\": \"new-1\", \"content\": 1, \"tags\": {}}",
                                                                        400, "bad_field/tags" },
        { "add_idempotent", huge_uid,                                   413, "too_large/content" },
        { "update",         "{\"content\": 1}",                         400, "bad_field/uid" },
        { "update",         "{\"uid\": \"order-1\"}",                   400, "bad_field/content" },
        { "update",         "{\"uid\": \"no such\", \"content\": 1}",   400, "bad_field/uid" },
        { "update",         "{\"uid\": \"nope\", \"content\": 1}",      404, "no_such_trace/uid" },
        { "update",         "{\"uid\": \"order-1\", \"content\": 1, \"tags\": [true]}",
                                                                        400, "bad_field/tags" },
        { "update",         huge_uid,                                   413, "too_large/content" },
        { "revise",         "{}",                                       400, "bad_field/uid" },
        { "revise",         "{\"uid\": \"order-1\"}",                   400, "bad_field/content" },
        { "revise",         "{\"uid\": \"nope\", \"content\": 1}",      404, "no_such_trace/uid" },
        { "revise",         huge_uid,                                   413, "too_large/content" },
        { "retire",         NULL,                                       400, "bad_field/uid" },
        { "retire",         "{\"uid\": null}",                          400, "bad_field/uid" },
        { "retire",         "{\"uid\": [\"order-1\"]}",                 400, "bad_field/uid" },
        { "retire",         "{\"uid\": \"nope\"}",                      404, "no_such_trace/uid" },
        { "get",            "{}",                                       400, "bad_field/uid" },
        { "get",            "{\"uid\": \"nope\"}",                      404, "no_such_trace/uid" },
        { "get",            "{\"uid\": \"order-1\", \"version\": 0}",   400, "bad_field/version" },
        { "get",            "{\"uid\": \"order-1\", \"version\": 1.0}", 400, "bad_field/version" },
        { "get",            "{\"uid\": \"order-1\", \"version\": \"1\"}", 400, "bad_field/version" },
        { "get",            "{\"uid\": \"order-1\", \"version\": 3}",   404, "no_such_version/version" },
        { "history",        "[1]",                                      400, "bad_body/" },
        { "history",        "{\"uid\": \"nope\"}",                      404, "no_such_trace/uid" },
        { "history",        "{\"uid\": \"order-1\", \"limit\": 0}",     400, "bad_field/limit" },
        { "history",        "{\"uid\": \"order-1\", \"limit\": 51}",    400, "bad_field/limit" },
        { "search",         "7",                                        400, "bad_body/" },
        { "search",         "{\"tags\": \"order\"}",                    400, "bad_field/tags" },
        { "search",         "{\"tags\": [\"\"]}",                       400, "bad_field/tags" },
        { "search",         "{\"text\": \"\"}",                         400, "bad_field/text" },
        { "search",         "{\"text\": 5}",                            400, "bad_field/text" },
        { "search",         long_text,                                  400, "bad_field/text" },
        { "search",         "{\"include_retired\": 1}",                 400, "bad_field/include_retired" },
        { "search",         "{\"limit\": 0}",                           400, "bad_field/limit" },
        { "search",         "{\"limit\": 21}",                          400, "bad_field/limit" },
        { "search",         "{\"limit\": \"5\"}",                       400, "bad_field/limit" },
        { "stats",          "[]",                                       400, "bad_body/" },
    };
    for (size_t index = 0; index < sizeof (cases) / sizeof (cases [0]); index++)
        s_test_refused (bus, cases [index].op, cases [index].json, 0, false,
                        cases [index].status, cases [index].error, verbose);
    //  Contents JSON cannot carry, and bytes that are not UTF-8 (msgpack)
    struct {
        const char *op;                 //  the op
        const char *body;               //  msgpack body
        size_t size;                    //  its size
        const char *error;              //  expected "kind/field"
    } raws [] = {
        //  {"content": {1: 2}}
        { "add", S_TEST_RAW ("\x81\xa7" "content\x81\x01\x02"), "bad_field/content" },
        //  {"content": NaN}
        { "add", S_TEST_RAW ("\x81\xa7" "content\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00"), "bad_field/content" },
        //  {"content": "\xff"}
        { "add", S_TEST_RAW ("\x81\xa7" "content\xa1\xff"), "bad_field/content" },
        //  {"content": 1, "tags": ["\xff"]}
        { "add", S_TEST_RAW ("\x82\xa7" "content\x01\xa4tags\x91\xa1\xff"), "bad_field/tags" },
        //  {"text": "\xff"}
        { "search", S_TEST_RAW ("\x81\xa4text\xa1\xff"), "bad_field/text" },
        //  {"uid": "order-1\0"}
        { "retire", S_TEST_RAW ("\x81\xa3uid\xa8order-1\x00"), "bad_field/uid" },
    };
    for (size_t index = 0; index < sizeof (raws) / sizeof (raws [0]); index++)
        s_test_refused (bus, raws [index].op, raws [index].body, raws [index].size, true,
                        400, raws [index].error, verbose);
    //  The 413 names the setting to raise
    reply = lh_testbus_call_status (bus, "pathwayd", "add", huge, 413);
    const char *reason;
    size_t reason_size;
    assert (lh_obj_str (lh_obj_get (lh_reply_object (reply), "error"), "reason", &reason, &reason_size));
    assert (memmem (reason, reason_size, "pathwayd/content_max", 20));
    lh_reply_destroy (&reply);
    //  Right at the content limit is taken: "x" x 4093 is 4096 bytes of msgpack
    char *edge = zsys_sprintf ("{\"content\": \"%.4093s\"}", big);
    reply = lh_testbus_call_status (bus, "pathwayd", "add", edge, 201);
    lh_reply_destroy (&reply);
    zstr_free (&edge);
    free (big);
    zstr_free (&huge);
    zstr_free (&huge_uid);
    zstr_free (&long_tag);
    zstr_free (&long_uid);
    zstr_free (&long_text);

    //  A restart serves everything that was acknowledged
    char *before = s_test_stats (bus);
    lh_testbus_stop (bus, "pathwayd");
    lh_testbus_start (bus, &lh_pathwayd_service, 2);
    char *after = s_test_stats (bus);
    assert (streq (before, after));
    zstr_free (&before);
    zstr_free (&after);
    reply = lh_testbus_call_status (bus, "pathwayd", "get",
                                    "{\"uid\": \"order-1\", \"version\": 1}", 200);
    lh_reply_destroy (&reply);
    reply = lh_testbus_call_status (bus, "pathwayd", "search", "{\"text\": \"forklift\"}", 200);
    assert (s_test_uint (reply, "count") == 1);
    lh_reply_destroy (&reply);

    //  A cycle in the stored predecessors (written straight into LMDB:
    //  order-1's predecessor becomes its own successor) ends the history
    //  with cycle and truncated, at once
    lh_testbus_stop (bus, "pathwayd");
    char *dir = zsys_sprintf ("%s/var/pathwayd", lh_testbus_dir (bus));
    const char *error = NULL;
    lh_pathstore_t *store = lh_pathstore_open (dir, 64 << 20, 1, &error);
    assert (store);
    assert (lh_pathstore_set_predecessor (store, "order-1", revised) == 0);
    lh_pathstore_destroy (&store);
    zstr_free (&dir);
    lh_testbus_start (bus, &lh_pathwayd_service, 1);
    int64_t started = zclock_mono ();
    reply = lh_testbus_call_status (bus, "pathwayd", "history", body, 200);
    text = lh_testbus_json (reply);
    char *want = zsys_sprintf ("\"count\":2,\"truncated\":true,\"cycle\":\"%s\"", revised);
    if (!strstr (text, want)) {
        fprintf (stderr, "history with a cycle: %s\n", text);
        assert (false);
    }
    assert (zclock_mono () - started < 5000);
    zstr_free (&want);
    zstr_free (&text);
    lh_reply_destroy (&reply);

    zstr_free (&body);
    zstr_free (&revised);
    zstr_free (&first);
    lh_testbus_destroy (&bus);
    printf ("OK\n");
}
