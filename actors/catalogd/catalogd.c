/*  =========================================================================
    catalogd - dataset manifests over storaged; see catalogd.h
    =========================================================================
*/

#include "catalogd.h"
#include "lh_uuid.h"
#include "lh_store.h"
#include "lh_log.h"

#define S_NAME          "catalogd"
#define S_RACE_TRIES    5               //  register retries on a lost race
#define S_TEXT_MAX      1024            //  longest name or fingerprint

typedef struct {
    char *prefix;                       //  storaged key prefix ("_catalog/")
    uint32_t timeout_ms;                //  deadline of calls to storaged
} s_state_t;

//  A manifest read from storaged
typedef struct {
    lh_reply_t *reply;                  //  storaged's reply (owns the bytes)
    msgpack_zone zone;                  //  decoded manifest lives here
    msgpack_object manifest;            //  the manifest map
    const void *raw;                    //  its encoded bytes
    size_t raw_size;                    //  their size
    char etag [80];                     //  storaged's ETag
} s_found_t;


//  --------------------------------------------------------------------------
//  Forget a fetched manifest

static void
s_found_reset (s_found_t *self)
{
    if (self->reply) {
        msgpack_zone_destroy (&self->zone);
        lh_reply_destroy (&self->reply);
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
//  Call storaged with a pack (destroyed); returns the reply, whose status
//  may be anything. NULL only if no client could be made.

static lh_reply_t *
s_storaged (s_state_t *self, lh_client_t *client, const char *op, lh_pack_t **pack_p)
{
    size_t size;
    const void *data = lh_pack_data (*pack_p, &size);
    lh_call_opts_t opts = { .timeout_ms = self->timeout_ms, .queue = true };
    lh_reply_t *reply = NULL;
    lh_client_call (client, "storaged", op, data, size, &opts, &reply);
    lh_pack_destroy (pack_p);
    return reply;
}


//  --------------------------------------------------------------------------
//  Answer an unexpected storaged reply as 503 (storage down) or 500

static void
s_storage_failed (lh_request_t *request, lh_reply_t *reply, const char *what)
{
    uint32_t status = reply? lh_reply_status (reply): LH_ST_UNAVAILABLE;
    const char *reason = reply? lh_reply_reason (reply): NULL;
    lh_warn (S_NAME, lh_request_trace (request), "storaged %s: %u %s", what, status,
             reason? reason: "");
    if (status == LH_ST_UNAVAILABLE || status == LH_ST_TIMEOUT || status == LH_ST_TOO_MANY)
        lh_request_error (request, LH_ST_UNAVAILABLE, "storage_unavailable", 500,
                          "storaged did not answer the %s (%u): %s", what, status,
                          reason? reason: "no reason given");
    else
        lh_request_error (request, LH_ST_INTERNAL, "storage_failed",
                          0, "storaged refused the %s (%u): %s", what, status,
                          reason? reason: "no reason given");
}


//  --------------------------------------------------------------------------
//  Fetch the manifest of a dataset id. Returns 1 and fills found, 0 if
//  there is none, -1 if the request was already answered with an error.

static int
s_fetch (s_state_t *self, lh_request_t *request, lh_client_t *client,
         const char *dataset_id, s_found_t *found)
{
    memset (found, 0, sizeof (*found));
    char key [256];
    snprintf (key, sizeof (key), "%s%s", self->prefix, dataset_id);
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_str (pack, "key", key);
    lh_reply_t *reply = s_storaged (self, client, "get", &pack);
    uint32_t status = reply? lh_reply_status (reply): LH_ST_UNAVAILABLE;
    if (status == LH_ST_NOT_FOUND) {
        lh_reply_destroy (&reply);
        return 0;
    }
    const msgpack_object *body = status == LH_ST_OK? lh_reply_object (reply): NULL;
    const msgpack_object *data = lh_obj_get (body, "data");
    const char *etag;
    size_t etag_size;
    uint64_t size = 0, length = 0;
    if (!body || !data || data->type != MSGPACK_OBJECT_BIN
    ||  !lh_obj_str (body, "etag", &etag, &etag_size) || etag_size >= sizeof (found->etag)
    ||  !lh_obj_uint (body, "size", &size) || !lh_obj_uint (body, "length", &length)) {
        s_storage_failed (request, reply, "manifest read");
        lh_reply_destroy (&reply);
        return -1;
    }
    if (size != length) {
        lh_request_error (request, LH_ST_INTERNAL, "manifest_too_large", 0,
                          "manifest '%s' (%" PRIu64 " bytes) is larger than one storaged get",
                          key, size);
        lh_reply_destroy (&reply);
        return -1;
    }
    found->reply = reply;
    msgpack_zone_init (&found->zone, 4096);
    found->raw = data->via.bin.ptr;
    found->raw_size = data->via.bin.size;
    memcpy (found->etag, etag, etag_size);
    found->etag [etag_size] = 0;
    if (lh_msgpack_unpack (found->raw, found->raw_size, &lh_limits_default,
                           &found->zone, &found->manifest) != 0
    ||  found->manifest.type != MSGPACK_OBJECT_MAP) {
        lh_request_error (request, LH_ST_INTERNAL, "corrupt_manifest", 0,
                          "manifest '%s' in storaged is not a msgpack map", key);
        s_found_reset (found);
        return -1;
    }
    return 1;
}


//  --------------------------------------------------------------------------
//  Store a manifest (bytes) under a dataset id, conditionally. Returns the
//  storaged status (200, 412, ...); on other failures answers the request
//  and returns 0.

static uint32_t
s_store (s_state_t *self, lh_request_t *request, lh_client_t *client,
         const char *dataset_id, const void *data, size_t size, const char *if_match)
{
    char key [256];
    snprintf (key, sizeof (key), "%s%s", self->prefix, dataset_id);
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 3);
    lh_pack_kv_str (pack, "key", key);
    lh_pack_str (pack, "data");
    lh_pack_bin (pack, data, size);
    if (if_match)
        lh_pack_kv_str (pack, "if_match", if_match);
    else
        lh_pack_kv_str (pack, "if_none_match", "*");
    lh_reply_t *reply = s_storaged (self, client, "put", &pack);
    uint32_t status = reply? lh_reply_status (reply): LH_ST_UNAVAILABLE;
    if (status != LH_ST_OK && status != LH_ST_PRECONDITION) {
        s_storage_failed (request, reply, "manifest write");
        status = 0;
    }
    lh_reply_destroy (&reply);
    return status;
}


//  --------------------------------------------------------------------------
//  Publish catalog.changed

static void
s_publish (lh_request_t *request, const char *op, const char *name,
           const char *dataset_id, const char *fingerprint)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 4);
    lh_pack_kv_str (pack, "op", op);
    lh_pack_kv_str (pack, "name", name);
    lh_pack_kv_str (pack, "dataset_id", dataset_id);
    lh_pack_kv_str (pack, "schema_fingerprint", fingerprint);
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
//  The client for calls to storaged, or NULL (request answered 503)

static lh_client_t *
s_client (lh_request_t *request)
{
    lh_client_t *client = lh_request_client (request);
    if (!client)
        lh_request_error (request, LH_ST_UNAVAILABLE, "storage_unavailable", 1000,
                          "catalogd cannot reach the bus to call storaged");
    return client;
}


//  --------------------------------------------------------------------------
//  Read a required non-empty string field; answers 400 and returns NULL

static char *
s_required (lh_request_t *request, const msgpack_object *body, const char *name)
{
    const msgpack_object *item = lh_obj_get (body, name);
    char *value = item? lh_obj_strdup (item): NULL;
    if (!value || !*value || strlen (value) > S_TEXT_MAX) {
        lh_request_error (request, LH_ST_BAD_REQUEST, "bad_field", 0,
                          "'%s' must be a non-empty string of at most %d bytes",
                          name, S_TEXT_MAX);
        free (value);
        return NULL;
    }
    return value;
}


//  --------------------------------------------------------------------------
//  Pack the content fields of a register request (schema, objects,
//  row_count), validated; answers 400 and returns -1 when bad

static int
s_pack_content (lh_request_t *request, const msgpack_object *body, lh_pack_t *pack)
{
    const msgpack_object *schema = lh_obj_get (body, "schema");
    const msgpack_object *objects = lh_obj_get (body, "objects");
    const msgpack_object *rows = lh_obj_get (body, "row_count");
    if (schema && schema->type != MSGPACK_OBJECT_ARRAY)
        return lh_request_error (request, LH_ST_BAD_REQUEST, "bad_field", 0,
                                 "'schema' must be an array of {name, type}");
    for (uint32_t index = 0; schema && index < schema->via.array.size; index++) {
        const msgpack_object *column = &schema->via.array.ptr [index];
        const char *text;
        size_t size;
        if (column->type != MSGPACK_OBJECT_MAP
        ||  !lh_obj_str (column, "name", &text, &size) || size == 0
        ||  !lh_obj_str (column, "type", &text, &size) || size == 0)
            return lh_request_error (request, LH_ST_BAD_REQUEST, "bad_field", 0,
                                     "'schema' item %u must be {name, type} with non-empty strings",
                                     index);
    }
    if (objects && objects->type != MSGPACK_OBJECT_ARRAY)
        return lh_request_error (request, LH_ST_BAD_REQUEST, "bad_field", 0,
                                 "'objects' must be an array of storage keys");
    for (uint32_t index = 0; objects && index < objects->via.array.size; index++)
        if (objects->via.array.ptr [index].type != MSGPACK_OBJECT_STR)
            return lh_request_error (request, LH_ST_BAD_REQUEST, "bad_field", 0,
                                     "'objects' item %u must be a string", index);
    uint64_t row_count = 0;
    if (rows && !lh_obj_uint (body, "row_count", &row_count))
        return lh_request_error (request, LH_ST_BAD_REQUEST, "bad_field", 0,
                                 "'row_count' must be a non-negative integer");
    //  Schema columns are packed as {name, type} only
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
    lh_pack_kv_uint (pack, "row_count", row_count);
    return 0;
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
//  register {name, schema_fingerprint, schema?, objects?, row_count?}

static void
s_register (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    const msgpack_object *body = lh_request_object (request);
    if (!body || body->type != MSGPACK_OBJECT_MAP) {
        lh_request_error (request, LH_ST_BAD_REQUEST, "bad_body", 0, "the body must be a msgpack map");
        return;
    }
    char *name = s_required (request, body, "name");
    char *fingerprint = name? s_required (request, body, "schema_fingerprint"): NULL;
    lh_pack_t *content = fingerprint? lh_pack_new (): NULL;
    if (!content || s_pack_content (request, body, content))
        goto done;
    lh_client_t *client = s_client (request);
    if (!client)
        goto done;
    char dataset_id [LH_UUID_TEXT];
    lh_uuid5 (LH_CATALOG_NAMESPACE, name, strlen (name), dataset_id);
    size_t content_size;
    const void *content_data = lh_pack_data (content, &content_size);

    for (int attempt = 0; attempt < S_RACE_TRIES; attempt++) {
        s_found_t found;
        int rc = s_fetch (self, request, client, dataset_id, &found);
        if (rc < 0)
            goto done;
        int64_t now = zclock_time ();
        int64_t created_ms = now;
        if (rc == 1) {
            char *stored = s_field (&found.manifest, "schema_fingerprint");
            if (!stored || !streq (stored, fingerprint)) {
                lh_request_error (request, LH_ST_CONFLICT, "schema_drift", 0,
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
                lh_request_reply_raw (request, LH_ST_OK, found.raw, found.raw_size);
                s_found_reset (&found);
                goto done;
            }
            lh_obj_int (&found.manifest, "created_ms", &created_ms);
        }
        lh_pack_t *manifest = lh_pack_new ();
        lh_pack_map (manifest, 8);
        lh_pack_kv_str (manifest, "name", name);
        lh_pack_kv_str (manifest, "dataset_id", dataset_id);
        lh_pack_kv_str (manifest, "schema_fingerprint", fingerprint);
        lh_pack_raw (manifest, content_data, content_size);
        lh_pack_kv_int (manifest, "created_ms", created_ms);
        lh_pack_kv_int (manifest, "updated_ms", now);
        size_t size;
        const void *data = lh_pack_data (manifest, &size);
        uint32_t status = s_store (self, request, client, dataset_id, data, size,
                                   rc == 1? found.etag: NULL);
        s_found_reset (&found);
        if (status == LH_ST_OK) {
            lh_info (S_NAME, lh_request_trace (request), "%s dataset '%s' (%s)",
                     rc == 1? "updated": "registered", name, dataset_id);
            s_publish (request, "register", name, dataset_id, fingerprint);
            lh_request_reply_raw (request, rc == 1? LH_ST_OK: LH_ST_CREATED, data, size);
        }
        lh_pack_destroy (&manifest);
        if (status != LH_ST_PRECONDITION)
            goto done;                  //  answered (stored, or an error)
        //  Another register won the race: read again and retry
    }
    lh_request_error (request, LH_ST_UNAVAILABLE, "busy", 100,
                      "dataset '%s' is being registered concurrently; retry", name);
done:
    lh_pack_destroy (&content);
    free (name);
    free (fingerprint);
}


//  --------------------------------------------------------------------------
//  The dataset id a get/delete names: {name} or {dataset_id} (or {id}).
//  Returns 0, or -1 after answering 400.

static int
s_target (lh_request_t *request, char *dataset_id)
{
    const msgpack_object *body = lh_request_object (request);
    const char *text;
    size_t size;
    if (body && lh_obj_str (body, "name", &text, &size) && size > 0 && size <= S_TEXT_MAX) {
        lh_uuid5 (LH_CATALOG_NAMESPACE, text, size, dataset_id);
        return 0;
    }
    if (body && (lh_obj_str (body, "dataset_id", &text, &size) || lh_obj_str (body, "id", &text, &size))
    &&  lh_uuid_valid (text, size)) {
        for (size_t index = 0; index < size; index++)
            dataset_id [index] = (char) tolower ((unsigned char) text [index]);
        dataset_id [size] = 0;
        return 0;
    }
    return lh_request_error (request, LH_ST_BAD_REQUEST, "bad_field", 0,
                             "give 'name' (non-empty string) or 'dataset_id' (a UUID)");
}


//  --------------------------------------------------------------------------
//  get {name} or {dataset_id}

static void
s_get (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    char dataset_id [LH_UUID_TEXT];
    lh_client_t *client;
    if (s_target (request, dataset_id) || !(client = s_client (request)))
        return;
    s_found_t found;
    int rc = s_fetch (self, request, client, dataset_id, &found);
    if (rc == 0)
        lh_request_error (request, LH_ST_NOT_FOUND, "no_such_dataset", 0,
                          "no dataset with id %s", dataset_id);
    else
    if (rc == 1) {
        lh_request_reply_raw (request, LH_ST_OK, found.raw, found.raw_size);
        s_found_reset (&found);
    }
}


//  --------------------------------------------------------------------------
//  list {}: every manifest under the prefix, in dataset id order

static void
s_list (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    lh_client_t *client = s_client (request);
    if (!client)
        return;
    zlistx_t *manifests = zlistx_new ();
    zlistx_set_destructor (manifests, (zlistx_destructor_fn *) zchunk_destroy);
    char *after = NULL;
    bool truncated = true;
    while (truncated) {
        lh_pack_t *pack = lh_pack_new ();
        lh_pack_map (pack, after? 3: 2);
        lh_pack_kv_str (pack, "prefix", self->prefix);
        lh_pack_kv_uint (pack, "limit", 1000);
        if (after)
            lh_pack_kv_str (pack, "continuation", after);
        lh_reply_t *reply = s_storaged (self, client, "list", &pack);
        const msgpack_object *body = reply && lh_reply_status (reply) == LH_ST_OK?
                                     lh_reply_object (reply): NULL;
        const msgpack_object *keys = lh_obj_get (body, "keys");
        if (!keys || keys->type != MSGPACK_OBJECT_ARRAY) {
            s_storage_failed (request, reply, "catalog listing");
            lh_reply_destroy (&reply);
            goto done;
        }
        truncated = false;
        lh_obj_bool (body, "truncated", &truncated);
        free (after);
        after = lh_obj_strdup (lh_obj_get (body, "next"));
        if (!after)
            truncated = false;
        size_t prefix_size = strlen (self->prefix);
        for (uint32_t index = 0; index < keys->via.array.size; index++) {
            char *key = lh_obj_strdup (lh_obj_get (&keys->via.array.ptr [index], "key"));
            if (key && strlen (key) == prefix_size + 36
            &&  lh_uuid_valid (key + prefix_size, 36)) {
                s_found_t found;
                int rc = s_fetch (self, request, client, key + prefix_size, &found);
                if (rc < 0) {
                    free (key);
                    lh_reply_destroy (&reply);
                    goto done;
                }
                if (rc == 1) {
                    zlistx_add_end (manifests, zchunk_new (found.raw, found.raw_size));
                    s_found_reset (&found);
                }
            }
            free (key);
        }
        lh_reply_destroy (&reply);
    }
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 2);
    lh_pack_str (pack, "datasets");
    lh_pack_array (pack, (uint32_t) zlistx_size (manifests));
    for (zchunk_t *chunk = (zchunk_t *) zlistx_first (manifests); chunk;
         chunk = (zchunk_t *) zlistx_next (manifests))
        lh_pack_raw (pack, zchunk_data (chunk), zchunk_size (chunk));
    lh_pack_kv_uint (pack, "count", zlistx_size (manifests));
    lh_request_reply_pack (request, LH_ST_OK, &pack);
done:
    free (after);
    zlistx_destroy (&manifests);
}


//  --------------------------------------------------------------------------
//  delete {name} or {dataset_id}

static void
s_delete (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    char dataset_id [LH_UUID_TEXT];
    lh_client_t *client;
    if (s_target (request, dataset_id) || !(client = s_client (request)))
        return;
    s_found_t found;
    int rc = s_fetch (self, request, client, dataset_id, &found);
    if (rc == 0)
        lh_request_error (request, LH_ST_NOT_FOUND, "no_such_dataset", 0,
                          "no dataset with id %s", dataset_id);
    if (rc != 1)
        return;
    char *name = s_field (&found.manifest, "name");
    char *fingerprint = s_field (&found.manifest, "schema_fingerprint");
    s_found_reset (&found);
    char key [256];
    snprintf (key, sizeof (key), "%s%s", self->prefix, dataset_id);
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_str (pack, "key", key);
    lh_reply_t *reply = s_storaged (self, client, "delete", &pack);
    uint32_t status = reply? lh_reply_status (reply): LH_ST_UNAVAILABLE;
    if (status == LH_ST_NOT_FOUND)
        lh_request_error (request, LH_ST_NOT_FOUND, "no_such_dataset", 0,
                          "no dataset with id %s", dataset_id);
    else
    if (status != LH_ST_OK)
        s_storage_failed (request, reply, "manifest delete");
    else {
        lh_info (S_NAME, lh_request_trace (request), "deleted dataset '%s' (%s)",
                 name? name: "?", dataset_id);
        s_publish (request, "delete", name? name: "", dataset_id, fingerprint? fingerprint: "");
        lh_pack_t *answer = lh_pack_new ();
        lh_pack_map (answer, 3);
        lh_pack_kv_bool (answer, "deleted", true);
        lh_pack_kv_str (answer, "name", name? name: "");
        lh_pack_kv_str (answer, "dataset_id", dataset_id);
        lh_request_reply_pack (request, LH_ST_OK, &answer);
    }
    lh_reply_destroy (&reply);
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
    lh_config_t *defaults = NULL;
    if (!config)
        config = defaults = lh_config_load (NULL, NULL);
    assert (config);
    char *prefix = strdup (lh_config_str (config, "catalogd/prefix"));
    int64_t timeout = lh_config_int (config, "catalogd/timeout_ms");
    lh_config_destroy (&defaults);
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
//  Self test: broker + storaged + catalogd in this process

#include "lh_broker.h"
#include "storaged.h"

#define S_TEST_ENDPOINT "inproc://lh-catalogd-test"

static lh_reply_t *
s_test_call (lh_client_t *client, const char *op, lh_pack_t *pack)
{
    size_t size = 0;
    const void *data = pack? lh_pack_data (pack, &size): NULL;
    lh_call_opts_t opts = { .timeout_ms = 5000, .queue = true };
    lh_reply_t *reply = NULL;
    lh_client_call (client, "catalogd", op, data, size, &opts, &reply);
    lh_pack_destroy (&pack);
    assert (reply);
    return reply;
}

//  register name with a fingerprint and a row count
static lh_reply_t *
s_test_register (lh_client_t *client, const char *name, const char *fingerprint,
                 uint64_t rows)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 5);
    lh_pack_kv_str (pack, "name", name);
    lh_pack_kv_str (pack, "schema_fingerprint", fingerprint);
    lh_pack_str (pack, "schema");
    lh_pack_array (pack, 1);
    lh_pack_map (pack, 2);
    lh_pack_kv_str (pack, "name", "id");
    lh_pack_kv_str (pack, "type", "BIGINT");
    lh_pack_str (pack, "objects");
    lh_pack_array (pack, 1);
    lh_pack_str (pack, "datasets/x.parquet");
    lh_pack_kv_uint (pack, "row_count", rows);
    return s_test_call (client, "register", pack);
}

//  Manifest row_count of a reply
static uint64_t
s_test_rows (lh_reply_t *reply)
{
    uint64_t rows = 0;
    assert (lh_obj_uint (lh_reply_object (reply), "row_count", &rows));
    return rows;
}

void
lh_catalogd_test (bool verbose)
{
    printf (" * catalogd: ");
    char dir [] = "/tmp/lh_catalogd_test.XXXXXX";
    assert (mkdtemp (dir));
    zactor_t *broker = zactor_new (lh_broker_actor, "test");
    assert (broker);
    char *status, *detail;
    zsock_send (broker, "ss", "BIND", S_TEST_ENDPOINT);
    zsock_recv (broker, "ss", &status, &detail);
    assert (status && streq (status, "0"));
    zstr_free (&status);
    zstr_free (&detail);
    lh_config_t *config = lh_config_load (NULL, NULL);
    assert (config);
    assert (lh_config_set (config, "storaged/dir", dir) == 0);
    lh_link_t link = { .endpoint = S_TEST_ENDPOINT };
    lh_service_runner_t *storaged = lh_service_start (&lh_storaged_service, &link, config, 1);
    lh_service_runner_t *catalogd = lh_service_start (&lh_catalogd_service, &link, config, 1);
    assert (storaged && catalogd);
    lh_client_t *client = lh_client_new (&link, "catalogd-test");
    lh_client_t *events = lh_client_new (&link, "catalogd-events");
    assert (client && events);
    assert (lh_client_subscribe (events, "catalog.") == 0);

    //  New name: 201 with the UUIDv5 id (value from Python's uuid.uuid5)
    lh_reply_t *reply = s_test_register (client, "workers", "fp1", 10);
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
    reply = s_test_register (client, "workers", "fp1", 20);
    assert (lh_reply_status (reply) == 200 && s_test_rows (reply) == 20);
    lh_reply_destroy (&reply);
    assert (lh_client_recv (events, &event, 2000) == 0);
    lh_reply_destroy (&event);
    reply = s_test_register (client, "workers", "fp1", 20);
    assert (lh_reply_status (reply) == 200 && s_test_rows (reply) == 20);
    lh_reply_destroy (&reply);

    //  Other fingerprint: 409 schema_drift and nothing changes
    reply = s_test_register (client, "workers", "fp2", 99);
    assert (lh_reply_status (reply) == 409);
    const msgpack_object *error = lh_obj_get (lh_reply_object (reply), "error");
    assert (lh_obj_str (error, "kind", &text, &size) && size == 12 && memcmp (text, "schema_drift", 12) == 0);
    lh_reply_destroy (&reply);
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_str (pack, "name", "workers");
    reply = s_test_call (client, "get", pack);
    assert (lh_reply_status (reply) == 200 && s_test_rows (reply) == 20);
    assert (lh_obj_str (lh_reply_object (reply), "schema_fingerprint", &text, &size) && size == 3);
    lh_reply_destroy (&reply);
    //  No event for the no-op and the drift
    assert (lh_client_recv (events, &event, 100) == -1);

    //  Empty name or fingerprint: 400
    reply = s_test_register (client, "", "fp1", 1);
    assert (lh_reply_status (reply) == 400);
    lh_reply_destroy (&reply);
    reply = s_test_register (client, "x", "", 1);
    assert (lh_reply_status (reply) == 400);
    lh_reply_destroy (&reply);

    //  get by id; list
    pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_str (pack, "dataset_id", "4EE908EB-05E4-5C26-A4AD-4CA54BB01062");
    reply = s_test_call (client, "get", pack);
    assert (lh_reply_status (reply) == 200);
    lh_reply_destroy (&reply);
    reply = s_test_register (client, "contracts", "fpc", 5);
    assert (lh_reply_status (reply) == 201);
    lh_reply_destroy (&reply);
    reply = s_test_call (client, "list", NULL);
    assert (lh_reply_status (reply) == 200);
    uint64_t count = 0;
    assert (lh_obj_uint (lh_reply_object (reply), "count", &count) && count == 2);
    lh_reply_destroy (&reply);

    //  A restarted catalogd serves the same catalog
    lh_service_stop (&catalogd);
    catalogd = lh_service_start (&lh_catalogd_service, &link, config, 1);
    assert (catalogd);
    pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_str (pack, "name", "contracts");
    reply = s_test_call (client, "get", pack);
    assert (lh_reply_status (reply) == 200 && s_test_rows (reply) == 5);
    lh_reply_destroy (&reply);

    //  delete
    pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_str (pack, "name", "contracts");
    reply = s_test_call (client, "delete", pack);
    assert (lh_reply_status (reply) == 200);
    lh_reply_destroy (&reply);
    pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_str (pack, "name", "contracts");
    reply = s_test_call (client, "get", pack);
    assert (lh_reply_status (reply) == 404);
    lh_reply_destroy (&reply);

    lh_client_destroy (&events);
    lh_client_destroy (&client);
    lh_service_stop (&catalogd);
    lh_service_stop (&storaged);
    lh_config_destroy (&config);
    zactor_destroy (&broker);
    char *command = zsys_sprintf ("rm -rf '%s'", dir);
    assert (system (command) == 0);
    zstr_free (&command);
    printf ("OK\n");
}
