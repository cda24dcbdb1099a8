/*  =========================================================================
    catalogd - dataset manifests over storaged; see catalogd.h
    =========================================================================
*/

#include "catalogd.h"
#include "lh_uuid.h"
#include "lh_store.h"
#include "lh_storage.h"
#include "lh_log.h"

#define S_NAME          "catalogd"
#define S_RACE_TRIES    5               //  register retries on a lost race
#define S_TEXT_MAX      1024            //  longest name, fingerprint, column or key
#define S_MANIFEST_MAX  (1024 * 1024)   //  largest manifest content, bytes

typedef struct {
    char *prefix;                       //  storaged key prefix ("_catalog/")
    uint32_t timeout_ms;                //  deadline of calls to storaged
} s_state_t;

//  A manifest read from storaged
typedef struct {
    zchunk_t *raw;                      //  its encoded bytes, or NULL
    msgpack_zone zone;                  //  decoded manifest lives here
    msgpack_object manifest;            //  the manifest map
    char etag [LH_STORAGE_ETAG_MAX + 1];    //  storaged's ETag
} s_found_t;


//  --------------------------------------------------------------------------
//  Forget a fetched manifest

static void
s_found_reset (s_found_t *self)
{
    if (self->raw) {
        msgpack_zone_destroy (&self->zone);
        zchunk_destroy (&self->raw);
    }
}


//  --------------------------------------------------------------------------
//  Destroy the state

static void
s_state_destroy (void **state_p)
{
    s_state_t *self = (s_state_t *) *state_p;
    if (self) {
        free (self->prefix);
        free (self);
        *state_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Read the manifest of a dataset id, answering nothing. Returns S_FOUND
//  (found filled), S_MISSING, S_CORRUPT (not a msgpack map, or larger than
//  one get), or S_FAILED (lh_storage_reply says why).

typedef enum { S_FOUND, S_MISSING, S_CORRUPT, S_FAILED } s_read_t;

static s_read_t
s_read (s_state_t *self, lh_storage_t *storage, const char *dataset_id, s_found_t *found)
{
    memset (found, 0, sizeof (*found));
    char key [256];
    snprintf (key, sizeof (key), "%s%s", self->prefix, dataset_id);
    lh_storage_info_t info;
    const void *data;
    size_t size;
    uint32_t status = lh_storage_get (storage, key, 0, 0, &info, &data, &size);
    if (status == LH_ST_NOT_FOUND)
        return S_MISSING;
    if (status != LH_ST_OK)
        return S_FAILED;
    found->raw = zchunk_new (data, size);
    msgpack_zone_init (&found->zone, 4096);
    snprintf (found->etag, sizeof (found->etag), "%s", info.etag);
    if (size != info.size
    ||  lh_msgpack_unpack (zchunk_data (found->raw), size, &lh_limits_default,
                           &found->zone, &found->manifest) != 0
    ||  found->manifest.type != MSGPACK_OBJECT_MAP) {
        s_found_reset (found);
        return S_CORRUPT;
    }
    return S_FOUND;
}


//  --------------------------------------------------------------------------
//  Fetch the manifest of a dataset id. Returns 1 and fills found, 0 if
//  there is none, -1 after answering (storaged failed, or the manifest is
//  unreadable).

static int
s_fetch (s_state_t *self, lh_request_t *request, lh_storage_t *storage,
         const char *dataset_id, s_found_t *found)
{
    s_read_t read = s_read (self, storage, dataset_id, found);
    if (read == S_FAILED)
        return lh_request_fail_dependency (request, lh_storage_reply (storage), "storaged",
                                           "the manifest read");
    if (read == S_CORRUPT)
        return lh_request_fail (request, LH_ST_INTERNAL, "corrupt_manifest",
                                "manifest '%s%s' in storaged is not a msgpack map that "
                                "one storaged get can read", self->prefix, dataset_id);
    return read == S_FOUND? 1: 0;
}


//  --------------------------------------------------------------------------
//  Store a manifest (bytes) under a dataset id, conditionally. Returns 1
//  when stored, 0 when the condition failed (another register won the
//  race), -1 after answering (storaged failed).

static int
s_store (s_state_t *self, lh_request_t *request, lh_storage_t *storage,
         const char *dataset_id, const void *data, size_t size, const char *if_match)
{
    char key [256];
    snprintf (key, sizeof (key), "%s%s", self->prefix, dataset_id);
    lh_storage_cond_t cond = { .if_none_match = !if_match, .if_match = if_match };
    uint32_t status = lh_storage_put (storage, key, data, size, &cond, NULL);
    return status == LH_ST_OK? 1: status == LH_ST_PRECONDITION? 0:
           lh_request_fail_dependency (request, lh_storage_reply (storage), "storaged",
                                       "the manifest write");
}


//  --------------------------------------------------------------------------
//  Publish catalog.changed

static void
s_publish (lh_request_t *request, const char *op, const char *name,
           const char *dataset_id, const char *fingerprint)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_kv_str (pack, "op", op);
    lh_pack_kv_str (pack, "name", name);
    lh_pack_kv_str (pack, "dataset_id", dataset_id);
    lh_pack_kv_str (pack, "schema_fingerprint", fingerprint);
    lh_pack_close (pack);
    size_t size;
    const void *data = lh_pack_data (pack, &size);
    if (lh_request_publish (request, "catalog.changed", data, size))
        lh_warn (S_NAME, lh_request_trace (request), "could not publish catalog.changed");
    lh_pack_destroy (&pack);
}


//  --------------------------------------------------------------------------
//  A fresh copy of a manifest string field, or NULL

static char *
s_field (const msgpack_object *manifest, const char *name)
{
    return lh_obj_strdup (lh_obj_get (manifest, name));
}


//  --------------------------------------------------------------------------
//  Read the content fields of a register request (schema, objects,
//  row_count), each item checked. Returns 0, or -1 after answering 400
//  naming the field.

static int
s_content_read (lh_request_t *request, const msgpack_object *body,
                const msgpack_object **schema, const msgpack_object **objects,
                int64_t *row_count)
{
    if (lh_request_array (request, body, "schema", 0, 0, schema)
    ||  lh_request_array (request, body, "objects", 0, 0, objects)
    ||  lh_request_int (request, body, "row_count", 0, 0, INT64_MAX, row_count))
        return -1;
    for (uint32_t index = 0; *schema && index < (*schema)->via.array.size; index++) {
        const msgpack_object *column = &(*schema)->via.array.ptr [index];
        const char *text;
        size_t size;
        if (column->type != MSGPACK_OBJECT_MAP
        ||  !lh_obj_str (column, "name", &text, &size) || size == 0 || size > S_TEXT_MAX
        ||  !lh_obj_str (column, "type", &text, &size) || size == 0 || size > S_TEXT_MAX)
            return lh_request_bad (request, "schema",
                                   "'schema' item %u must be {name, type} with non-empty "
                                   "strings of at most %d bytes", index, S_TEXT_MAX);
    }
    for (uint32_t index = 0; *objects && index < (*objects)->via.array.size; index++) {
        const msgpack_object *object = &(*objects)->via.array.ptr [index];
        if (object->type != MSGPACK_OBJECT_STR || object->via.str.size == 0
        ||  object->via.str.size > S_TEXT_MAX)
            return lh_request_bad (request, "objects",
                                   "'objects' item %u must be a storage key (a non-empty "
                                   "string of at most %d bytes)", index, S_TEXT_MAX);
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Pack the content fields of a manifest (read by s_content_read) as
//  key/value pairs; schema columns are packed as {name, type} only

static void
s_content_pack (lh_pack_t *pack, const msgpack_object *schema,
                const msgpack_object *objects, int64_t row_count)
{
    lh_pack_str (pack, "schema");
    uint32_t columns = schema? schema->via.array.size: 0;
    lh_pack_array (pack, columns);
    for (uint32_t index = 0; index < columns; index++) {
        const msgpack_object *column = &schema->via.array.ptr [index];
        lh_pack_map (pack, 2);
        lh_pack_str (pack, "name");
        lh_pack_object (pack, lh_obj_get (column, "name"));
        lh_pack_str (pack, "type");
        lh_pack_object (pack, lh_obj_get (column, "type"));
    }
    lh_pack_str (pack, "objects");
    if (objects)
        lh_pack_object (pack, objects);
    else
        lh_pack_array (pack, 0);
    lh_pack_kv_uint (pack, "row_count", (uint64_t) row_count);
}


//  --------------------------------------------------------------------------
//  Pack the content fields of a stored manifest, for comparison

static void
s_pack_stored_content (const msgpack_object *manifest, lh_pack_t *pack)
{
    const char *names [] = { "schema", "objects", "row_count" };
    for (size_t index = 0; index < 3; index++) {
        lh_pack_str (pack, names [index]);
        const msgpack_object *item = lh_obj_get (manifest, names [index]);
        if (item)
            lh_pack_object (pack, item);
        else
            lh_pack_nil (pack);
    }
}


//  --------------------------------------------------------------------------
//  register {name, schema_fingerprint, schema?, objects?, row_count?}. The
//  whole body is checked before storaged is asked anything.

static void
s_register (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    const msgpack_object *body = lh_request_map (request);
    char *name = NULL, *fingerprint = NULL;
    const msgpack_object *schema = NULL, *objects = NULL;
    int64_t row_count = 0;
    lh_pack_t *content = NULL;
    lh_storage_t *storage = NULL;
    if (!body
    ||  lh_request_strdup (request, body, "name", LH_FIELD_REQUIRED | LH_FIELD_NONEMPTY,
                           S_TEXT_MAX, &name)
    ||  lh_request_strdup (request, body, "schema_fingerprint",
                           LH_FIELD_REQUIRED | LH_FIELD_NONEMPTY, S_TEXT_MAX, &fingerprint)
    ||  s_content_read (request, body, &schema, &objects, &row_count))
        goto done;
    content = lh_pack_new ();
    s_content_pack (content, schema, objects, row_count);
    size_t content_size;
    const void *content_data = lh_pack_data (content, &content_size);
    if (content_size > S_MANIFEST_MAX) {
        lh_request_fail (request, LH_ST_TOO_LARGE, "too_large",
                         "the manifest would be %zu bytes; at most %d are allowed",
                         content_size, S_MANIFEST_MAX);
        goto done;
    }
    char dataset_id [LH_UUID_TEXT];
    lh_uuid5 (LH_CATALOG_NAMESPACE, name, strlen (name), dataset_id);
    storage = lh_storage_new_request (request, self->timeout_ms);

    for (int attempt = 0; attempt < S_RACE_TRIES; attempt++) {
        s_found_t found;
        int rc = s_fetch (self, request, storage, dataset_id, &found);
        if (rc < 0)
            goto done;
        int64_t now = zclock_time ();
        int64_t created_ms = now;
        if (rc == 1) {
            char *stored = s_field (&found.manifest, "schema_fingerprint");
            if (!stored || !streq (stored, fingerprint)) {
                lh_request_fail (request, LH_ST_CONFLICT, "schema_drift",
                                 "dataset '%s' is registered with schema fingerprint '%s', not '%s'",
                                 name, stored? stored: "?", fingerprint);
                free (stored);
                s_found_reset (&found);
                goto done;
            }
            free (stored);
            //  Same content: nothing changes, nothing is published
            lh_pack_t *old = lh_pack_new ();
            s_pack_stored_content (&found.manifest, old);
            size_t old_size;
            const void *old_data = lh_pack_data (old, &old_size);
            bool same = old_size == content_size && memcmp (old_data, content_data, old_size) == 0;
            lh_pack_destroy (&old);
            if (same) {
                lh_request_reply_raw (request, LH_ST_OK, zchunk_data (found.raw),
                                      zchunk_size (found.raw));
                s_found_reset (&found);
                goto done;
            }
            lh_obj_int (&found.manifest, "created_ms", &created_ms);
        }
        lh_pack_t *manifest = lh_pack_new ();
        lh_pack_open_map (manifest);
        lh_pack_kv_str (manifest, "name", name);
        lh_pack_kv_str (manifest, "dataset_id", dataset_id);
        lh_pack_kv_str (manifest, "schema_fingerprint", fingerprint);
        s_content_pack (manifest, schema, objects, row_count);
        lh_pack_kv_int (manifest, "created_ms", created_ms);
        lh_pack_kv_int (manifest, "updated_ms", now);
        lh_pack_close (manifest);
        size_t size;
        const void *data = lh_pack_data (manifest, &size);
        int stored = s_store (self, request, storage, dataset_id, data, size,
                              rc == 1? found.etag: NULL);
        s_found_reset (&found);
        if (stored == 1) {
            lh_info (S_NAME, lh_request_trace (request), "%s dataset '%s' (%s)",
                     rc == 1? "updated": "registered", name, dataset_id);
            s_publish (request, "register", name, dataset_id, fingerprint);
            lh_request_reply_raw (request, rc == 1? LH_ST_OK: LH_ST_CREATED, data, size);
        }
        lh_pack_destroy (&manifest);
        if (stored != 0)
            goto done;                  //  answered (stored, or an error)
        //  Another register won the race: read again and retry
    }
    lh_request_fail_retry (request, LH_ST_UNAVAILABLE, "busy", 100,
                           "dataset '%s' is being registered concurrently; retry", name);
done:
    lh_storage_destroy (&storage);
    lh_pack_destroy (&content);
    free (name);
    free (fingerprint);
}


//  --------------------------------------------------------------------------
//  The dataset id a get/delete names: {name} or {dataset_id} (or {id}).
//  Returns 0, or -1 after answering 400 naming the field.

static int
s_target (lh_request_t *request, char *dataset_id)
{
    const msgpack_object *body = lh_request_map (request);
    if (!body)
        return -1;
    const char *text = NULL;
    size_t size = 0;
    if (lh_request_str (request, body, "name", LH_FIELD_NONEMPTY, S_TEXT_MAX, &text, &size))
        return -1;
    if (text) {
        lh_uuid5 (LH_CATALOG_NAMESPACE, text, size, dataset_id);
        return 0;
    }
    const char *field = lh_obj_get (body, "dataset_id")? "dataset_id": "id";
    if (lh_request_str (request, body, field, 0, 36, &text, &size))
        return -1;
    if (!text)
        return lh_request_bad (request, "name",
                               "give 'name' (a non-empty string) or 'dataset_id' (a UUID)");
    if (!lh_uuid_valid (text, size))
        return lh_request_bad (request, field, "'%s' must be a UUID", field);
    for (size_t index = 0; index < size; index++)
        dataset_id [index] = (char) tolower ((unsigned char) text [index]);
    dataset_id [size] = 0;
    return 0;
}


//  --------------------------------------------------------------------------
//  get {name} or {dataset_id}

static void
s_get (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    char dataset_id [LH_UUID_TEXT];
    if (s_target (request, dataset_id))
        return;
    lh_storage_t *storage = lh_storage_new_request (request, self->timeout_ms);
    s_found_t found;
    int rc = s_fetch (self, request, storage, dataset_id, &found);
    if (rc == 0)
        lh_request_fail (request, LH_ST_NOT_FOUND, "no_such_dataset",
                         "no dataset with id %s", dataset_id);
    else
    if (rc == 1) {
        lh_request_reply_raw (request, LH_ST_OK, zchunk_data (found.raw), zchunk_size (found.raw));
        s_found_reset (&found);
    }
    lh_storage_destroy (&storage);
}


//  --------------------------------------------------------------------------
//  list {}: every manifest under the prefix, in dataset id order. A
//  manifest that cannot be read is skipped, counted in "skipped" and
//  named in the log: one bad object never takes the catalog down.

//  The keys under the prefix that name a dataset id
typedef struct {
    const char *prefix;                 //  the catalog's prefix
    zlistx_t *keys;                     //  keys found (strings)
} s_keys_t;

static int
s_list_key (void *arg, const char *key, const lh_storage_info_t *info)
{
    s_keys_t *self = (s_keys_t *) arg;
    size_t prefix_size = strlen (self->prefix);
    if (strlen (key) == prefix_size + 36 && lh_uuid_valid (key + prefix_size, 36))
        zlistx_add_end (self->keys, strdup (key));
    return 0;
}

static void
s_list (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    if (!lh_request_map (request))
        return;
    lh_storage_t *storage = lh_storage_new_request (request, self->timeout_ms);
    //  The keys first, then each manifest
    s_keys_t keys = { .prefix = self->prefix, .keys = zlistx_new () };
    zlistx_set_destructor (keys.keys, (zlistx_destructor_fn *) zstr_free);
    zlistx_t *manifests = zlistx_new ();
    zlistx_set_destructor (manifests, (zlistx_destructor_fn *) zchunk_destroy);
    uint64_t skipped = 0;
    if (lh_storage_list_all (storage, self->prefix, s_list_key, &keys) != LH_ST_OK) {
        lh_request_fail_dependency (request, lh_storage_reply (storage), "storaged",
                                    "the catalog listing");
        goto done;
    }
    size_t prefix_size = strlen (self->prefix);
    for (char *key = (char *) zlistx_first (keys.keys); key;
         key = (char *) zlistx_next (keys.keys)) {
        s_found_t found;
        s_read_t read = s_read (self, storage, key + prefix_size, &found);
        if (read == S_FAILED) {
            lh_request_fail_dependency (request, lh_storage_reply (storage), "storaged",
                                        "a manifest read");
            goto done;
        }
        if (read == S_CORRUPT) {
            lh_warn (S_NAME, lh_request_trace (request),
                     "list: manifest '%s' cannot be read (not a msgpack map, or larger "
                     "than one get): skipped", key);
            skipped++;
        }
        if (read == S_FOUND) {
            zlistx_add_end (manifests, found.raw);
            found.raw = NULL;
            msgpack_zone_destroy (&found.zone);
        }
    }
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_str (pack, "datasets");
    lh_pack_open_array (pack);
    for (zchunk_t *chunk = (zchunk_t *) zlistx_first (manifests); chunk;
         chunk = (zchunk_t *) zlistx_next (manifests))
        lh_pack_raw (pack, zchunk_data (chunk), zchunk_size (chunk));
    lh_pack_close (pack);
    lh_pack_kv_uint (pack, "count", zlistx_size (manifests));
    if (skipped)
        lh_pack_kv_uint (pack, "skipped", skipped);
    lh_pack_close (pack);
    lh_request_reply_pack (request, LH_ST_OK, &pack);
done:
    zlistx_destroy (&keys.keys);
    zlistx_destroy (&manifests);
    lh_storage_destroy (&storage);
}


//  --------------------------------------------------------------------------
//  delete {name} or {dataset_id}

static void
s_delete (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    char dataset_id [LH_UUID_TEXT];
    if (s_target (request, dataset_id))
        return;
    lh_storage_t *storage = lh_storage_new_request (request, self->timeout_ms);
    s_found_t found;
    int rc = s_fetch (self, request, storage, dataset_id, &found);
    if (rc == 0)
        lh_request_fail (request, LH_ST_NOT_FOUND, "no_such_dataset",
                         "no dataset with id %s", dataset_id);
    if (rc != 1) {
        lh_storage_destroy (&storage);
        return;
    }
    char *name = s_field (&found.manifest, "name");
    char *fingerprint = s_field (&found.manifest, "schema_fingerprint");
    s_found_reset (&found);
    char key [256];
    snprintf (key, sizeof (key), "%s%s", self->prefix, dataset_id);
    uint32_t status = lh_storage_delete (storage, key);
    if (status == LH_ST_NOT_FOUND)
        lh_request_fail (request, LH_ST_NOT_FOUND, "no_such_dataset",
                         "no dataset with id %s", dataset_id);
    else
    if (status != LH_ST_OK)
        lh_request_fail_dependency (request, lh_storage_reply (storage), "storaged",
                                    "the manifest delete");
    else {
        lh_info (S_NAME, lh_request_trace (request), "deleted dataset '%s' (%s)",
                 name? name: "?", dataset_id);
        s_publish (request, "delete", name? name: "", dataset_id, fingerprint? fingerprint: "");
        lh_pack_t *answer = lh_pack_new ();
        lh_pack_open_map (answer);
        lh_pack_kv_bool (answer, "deleted", true);
        lh_pack_kv_str (answer, "name", name? name: "");
        lh_pack_kv_str (answer, "dataset_id", dataset_id);
        lh_pack_close (answer);
        lh_request_reply_pack (request, LH_ST_OK, &answer);
    }
    lh_storage_destroy (&storage);
    free (name);
    free (fingerprint);
}


//  --------------------------------------------------------------------------
//  Create the state. The catalog itself lives in storaged; at start we
//  count what is there (rehydration is a read: nothing is cached, so
//  every catalogd, anywhere, serves the same catalog).

static void *
s_state_new (lh_config_t *config, const lh_link_t *link, const char **error)
{
    char *prefix = strdup (lh_config_str (config, "catalogd/prefix"));
    int64_t timeout = lh_config_int (config, "catalogd/timeout_ms");
    const char *reason;
    if (!*prefix || strlen (prefix) > 128 || lh_store_key_check (prefix, strlen (prefix), &reason) != 0) {
        *error = "catalogd/prefix must be a valid storage key prefix of at most 128 bytes";
        free (prefix);
        return NULL;
    }
    s_state_t *self = (s_state_t *) zmalloc (sizeof (s_state_t));
    assert (self);
    self->prefix = prefix;
    self->timeout_ms = (uint32_t) timeout;
    lh_info (S_NAME, NULL, "manifests under storaged '%s'", self->prefix);
    return self;
}


static const lh_op_t s_ops [] = {
    { "register", s_register },
    { "get", s_get },
    { "list", s_list },
    { "delete", s_delete },
    { NULL, NULL }
};

const lh_service_t lh_catalogd_service = {
    .name = "catalogd",
    .ops = s_ops,
    .state_new = s_state_new,
    .state_destroy = s_state_destroy,
    .credit = 1
};


//  --------------------------------------------------------------------------
//  Self test: storaged + catalogd on a test bus

#include "lh_testbus.h"
#include "storaged.h"

#define S_TEST_GOOD     "{\"name\": \"workers\", \"schema_fingerprint\": \"fp1\", " \
                        "\"schema\": [{\"name\": \"id\", \"type\": \"BIGINT\"}], " \
                        "\"objects\": [\"datasets/x.sqlite\"], \"row_count\": %d}"

//  register workers/fp1 with a row count; returns the reply
static lh_reply_t *
s_test_register (lh_testbus_t *bus, int rows)
{
    char *json = zsys_sprintf (S_TEST_GOOD, rows);
    lh_reply_t *reply = lh_testbus_call (bus, "catalogd", "register", json);
    zstr_free (&json);
    return reply;
}

//  Manifest row_count of a reply
static uint64_t
s_test_rows (lh_reply_t *reply)
{
    uint64_t rows = 0;
    assert (lh_obj_uint (lh_reply_object (reply), "row_count", &rows));
    return rows;
}

//  The stored manifest of workers, as JSON (caller frees)
static char *
s_test_stored (lh_testbus_t *bus)
{
    lh_reply_t *reply = lh_testbus_call (bus, "storaged", "get",
                                         "{\"key\": \"_catalog/4ee908eb-05e4-5c26-a4ad-4ca54bb01062\"}");
    assert (lh_reply_status (reply) == 200);
    const msgpack_object *data = lh_obj_get (lh_reply_object (reply), "data");
    assert (data && data->type == MSGPACK_OBJECT_BIN);
    char *text = (char *) malloc (data->via.bin.size * 2 + 1);
    for (uint32_t index = 0; index < data->via.bin.size; index++)
        sprintf (text + 2 * index, "%02x", (unsigned char) data->via.bin.ptr [index]);
    text [data->via.bin.size * 2] = 0;
    lh_reply_destroy (&reply);
    return text;
}

void
lh_catalogd_test (bool verbose)
{
    printf (" * catalogd: ");
    lh_testbus_t *bus = lh_testbus_new ("catalogd");
    lh_testbus_start (bus, &lh_storaged_service, 1);
    lh_testbus_start (bus, &lh_catalogd_service, 1);
    lh_client_t *events = lh_testbus_client_new (bus, "catalogd-events");
    assert (lh_client_subscribe (events, "catalog.") == 0);

    //  New name: 201 with the UUIDv5 id (value from Python's uuid.uuid5)
    lh_reply_t *reply = s_test_register (bus, 10);
    assert (lh_reply_status (reply) == 201);
    const char *text;
    size_t size;
    assert (lh_obj_str (lh_reply_object (reply), "dataset_id", &text, &size));
    assert (size == 36 && memcmp (text, "4ee908eb-05e4-5c26-a4ad-4ca54bb01062", 36) == 0);
    lh_reply_destroy (&reply);
    lh_reply_t *event = NULL;
    assert (lh_client_recv (events, &event, 2000) == 0);
    assert (lh_reply_type (event) == LH_T_PUB);
    assert (streq (lh_reply_header (event)->topic, "catalog.changed"));
    assert (lh_obj_str (lh_reply_object (event), "op", &text, &size) && size == 8);
    lh_reply_destroy (&event);

    //  Same fingerprint: 200, same id, rows updated; same again: no change
    reply = s_test_register (bus, 20);
    assert (lh_reply_status (reply) == 200 && s_test_rows (reply) == 20);
    lh_reply_destroy (&reply);
    assert (lh_client_recv (events, &event, 2000) == 0);
    lh_reply_destroy (&event);
    reply = s_test_register (bus, 20);
    assert (lh_reply_status (reply) == 200 && s_test_rows (reply) == 20);
    lh_reply_destroy (&reply);

    //  Other fingerprint: 409 schema_drift and nothing changes
    reply = lh_testbus_call (bus, "catalogd", "register",
                             "{\"name\": \"workers\", \"schema_fingerprint\": \"fp2\", \"row_count\": 99}");
    assert (lh_reply_status (reply) == 409);
    const msgpack_object *error = lh_obj_get (lh_reply_object (reply), "error");
    assert (lh_obj_str (error, "kind", &text, &size) && size == 12 && memcmp (text, "schema_drift", 12) == 0);
    lh_reply_destroy (&reply);
    reply = lh_testbus_call (bus, "catalogd", "get", "{\"name\": \"workers\"}");
    assert (lh_reply_status (reply) == 200 && s_test_rows (reply) == 20);
    assert (lh_obj_str (lh_reply_object (reply), "schema_fingerprint", &text, &size) && size == 3);
    lh_reply_destroy (&reply);
    //  No event for the no-op and the drift
    assert (lh_client_recv (events, &event, 100) == -1);

    //  Regression: a malformed register used to answer 400 and then go
    //  on, storing a corrupt manifest over the good one (get then
    //  answered 500, list 500 for everyone). Each is refused whole: one
    //  400 naming the field, the stored manifest unchanged, no event.
    char *before = s_test_stored (bus);
    struct {
        const char *json;               //  register body
        const char *field;              //  field named in the 400
    } bad [] = {
        { "{\"name\": \"workers\", \"schema_fingerprint\": \"fp1\", \"row_count\": 5, "
          "\"schema\": [{\"name\": \"id\"}]}", "schema" },
        { "{\"name\": \"workers\", \"schema_fingerprint\": \"fp1\", \"row_count\": 5, "
          "\"schema\": [\"id BIGINT\"]}", "schema" },
        { "{\"name\": \"workers\", \"schema_fingerprint\": \"fp1\", \"row_count\": 5, "
          "\"schema\": {\"id\": \"BIGINT\"}}", "schema" },
        { "{\"name\": \"workers\", \"schema_fingerprint\": \"fp1\", \"row_count\": 5, "
          "\"objects\": [\"a\", 7]}", "objects" },
        { "{\"name\": \"workers\", \"schema_fingerprint\": \"fp1\", \"row_count\": -5}", "row_count" },
        { "{\"name\": \"workers\", \"schema_fingerprint\": \"fp1\", \"row_count\": \"5\"}", "row_count" },
        { "{\"name\": \"\", \"schema_fingerprint\": \"fp1\"}", "name" },
        { "{\"name\": \"workers\", \"schema_fingerprint\": \"\"}", "schema_fingerprint" },
        { "{\"schema_fingerprint\": \"fp1\"}", "name" },
    };
    for (size_t index = 0; index < sizeof (bad) / sizeof (bad [0]); index++) {
        lh_testbus_expect (bus, "catalogd", "register", bad [index].json, 400, NULL,
                           bad [index].field);
        char *after = s_test_stored (bus);
        assert (streq (after, before));
        zstr_free (&after);
        assert (lh_client_recv (events, &event, 0) == -1);
    }
    zstr_free (&before);
    //  get / delete without a usable name or id: one 400 naming a field
    //  (they used to go on with an uninitialised dataset id)
    const char *targets [] = { NULL, "{}", "{\"name\": \"\"}", "{\"name\": 5}",
                               "{\"dataset_id\": \"not-a-uuid\"}", "[1, 2]" };
    for (size_t index = 0; index < sizeof (targets) / sizeof (targets [0]); index++) {
        lh_testbus_expect (bus, "catalogd", "get", targets [index], 400, NULL, NULL);
        lh_testbus_expect (bus, "catalogd", "delete", targets [index], 400, NULL, NULL);
    }
    reply = lh_testbus_call (bus, "catalogd", "get", "{\"name\": \"workers\"}");
    assert (lh_reply_status (reply) == 200 && s_test_rows (reply) == 20);
    lh_reply_destroy (&reply);

    //  get by id; list
    assert (lh_testbus_status (bus, "catalogd", "get",
                               "{\"dataset_id\": \"4EE908EB-05E4-5C26-A4AD-4CA54BB01062\"}") == 200);
    assert (lh_testbus_status (bus, "catalogd", "register",
                               "{\"name\": \"contracts\", \"schema_fingerprint\": \"fpc\", "
                               "\"row_count\": 5}") == 201);
    reply = lh_testbus_call (bus, "catalogd", "list", NULL);
    assert (lh_reply_status (reply) == 200);
    uint64_t count = 0;
    assert (lh_obj_uint (lh_reply_object (reply), "count", &count) && count == 2);
    assert (!lh_obj_get (lh_reply_object (reply), "skipped"));
    lh_reply_destroy (&reply);

    //  One unreadable manifest: list skips it and counts it
    assert (lh_testbus_status (bus, "storaged", "put",
                               "{\"key\": \"_catalog/00000000-0000-5000-8000-000000000000\", "
                               "\"data\": \"not msgpack\"}") == 200);
    reply = lh_testbus_call (bus, "catalogd", "list", "{}");
    assert (lh_reply_status (reply) == 200);
    uint64_t skipped = 0;
    assert (lh_obj_uint (lh_reply_object (reply), "count", &count) && count == 2);
    assert (lh_obj_uint (lh_reply_object (reply), "skipped", &skipped) && skipped == 1);
    lh_reply_destroy (&reply);
    assert (lh_testbus_status (bus, "storaged", "delete",
                               "{\"key\": \"_catalog/00000000-0000-5000-8000-000000000000\"}") == 200);

    //  A restarted catalogd serves the same catalog
    lh_testbus_stop (bus, "catalogd");
    lh_testbus_start (bus, &lh_catalogd_service, 1);
    reply = lh_testbus_call (bus, "catalogd", "get", "{\"name\": \"contracts\"}");
    assert (lh_reply_status (reply) == 200 && s_test_rows (reply) == 5);
    lh_reply_destroy (&reply);

    //  delete
    assert (lh_testbus_status (bus, "catalogd", "delete", "{\"name\": \"contracts\"}") == 200);
    assert (lh_testbus_status (bus, "catalogd", "get", "{\"name\": \"contracts\"}") == 404);

    lh_client_destroy (&events);
    lh_testbus_destroy (&bus);
    printf ("OK\n");
}
