/*  =========================================================================
    storaged - the blob service; see storaged.h and docs/storaged.md

    One store (fs or s3 backend) is shared by every worker. This file
    decodes and validates requests, applies the limits (per-prefix caps,
    PUT slots, part and get sizes) and maps store errors to replies.
    =========================================================================
*/

#include "storaged.h"
#include "lh_store.h"
#include "lh_store_s3.h"
#include "lh_log.h"
#include "lh_ingest_upload.h"
#include <malloc.h>

#define S_NAME          "storaged"
#define S_LIST_MAX      1000            //  most keys in one list page
#define S_SWEEP_MS      60000           //  how often the store is swept
#define S_STRINGIFY_(x) #x
#define S_STRINGIFY(x)  S_STRINGIFY_(x)

//  One per-prefix cap
typedef struct {
    char *prefix;                       //  key prefix
    uint64_t cap;                       //  largest object, bytes
    const char *hint;                   //  how to raise it, naming the setting
} s_cap_t;

typedef struct {
    lh_store_t *store;                  //  the backend
    s_cap_t *caps;                      //  per-prefix caps
    size_t cap_count;                   //  entries in caps
    uint64_t cap_default;               //  cap when no prefix matches
    uint32_t put_slots;                 //  concurrent puts + open uploads
    uint64_t retry_after_ms;            //  advertised with 503
    size_t part_max;                    //  largest put data / part
    size_t get_max;                     //  most bytes per get
    int64_t upload_ttl_ms;              //  idle uploads expire after this
    pthread_mutex_t lock;               //  guards the fields below
    uint32_t puts_active;               //  puts (and begins) in progress
    zhashx_t *uploads;                  //  upload id -> int64_t * last use
    int64_t next_sweep;                 //  clock time of the next sweep
} s_state_t;

//  A key from a request, checked against the rules
typedef struct {
    char text [LH_STORE_KEY_MAX + 1];   //  NUL-terminated key
} s_key_t;


//  --------------------------------------------------------------------------
//  Add a cap for keys under prefix; hint says how to raise it

static void
s_cap_add (s_state_t *self, const char *prefix, uint64_t cap, const char *hint)
{
    self->caps = (s_cap_t *) realloc (self->caps, (self->cap_count + 1) * sizeof (s_cap_t));
    assert (self->caps);
    self->caps [self->cap_count].prefix = strdup (prefix);
    assert (self->caps [self->cap_count].prefix);
    self->caps [self->cap_count].cap = cap;
    self->caps [self->cap_count].hint = hint;
    self->cap_count++;
}


//  --------------------------------------------------------------------------
//  Parse "PREFIX=BYTES,PREFIX=BYTES" into the caps table; -1 if malformed

static int
s_caps_parse (s_state_t *self, const char *text)
{
    char *copy = strdup (text);
    assert (copy);
    int rc = 0;
    char *save = NULL;
    for (char *item = strtok_r (copy, ",", &save); item; item = strtok_r (NULL, ",", &save)) {
        while (*item == ' ')
            item++;
        char *equals = strrchr (item, '=');
        char *end = NULL;
        unsigned long long cap = equals? strtoull (equals + 1, &end, 10): 0;
        if (!equals || equals == item || !end || *end || end == equals + 1) {
            rc = -1;
            break;
        }
        *equals = 0;
        s_cap_add (self, item, cap, "raise it in storaged/caps");
    }
    free (copy);
    return rc;
}


//  --------------------------------------------------------------------------
//  The cap for a key: the longest matching prefix's, else the default.
//  *prefix_p names the prefix ("" for the default), *hint_p how to raise
//  the cap.

static uint64_t
s_cap_for (s_state_t *self, const char *key, const char **prefix_p, const char **hint_p)
{
    uint64_t cap = self->cap_default;
    size_t best = 0;
    *prefix_p = "";
    *hint_p = "raise storaged/cap_default, or give the key's prefix a cap in storaged/caps";
    for (size_t index = 0; index < self->cap_count; index++) {
        size_t size = strlen (self->caps [index].prefix);
        if (size > best && strncmp (key, self->caps [index].prefix, size) == 0) {
            best = size;
            cap = self->caps [index].cap;
            *prefix_p = self->caps [index].prefix;
            *hint_p = self->caps [index].hint;
        }
    }
    return cap;
}


//  --------------------------------------------------------------------------
//  Destroy the shared state

static void
s_state_destroy (void **state_p)
{
    s_state_t *self = (s_state_t *) *state_p;
    if (self) {
        lh_store_destroy (&self->store);
        for (size_t index = 0; index < self->cap_count; index++)
            free (self->caps [index].prefix);
        free (self->caps);
        zhashx_destroy (&self->uploads);
        pthread_mutex_destroy (&self->lock);
        free (self);
        *state_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Create the shared state: the store and the limits, from config

static void *s_state_open (lh_config_t *config, const char **error);

static void *
s_state_new (lh_config_t *config, const lh_link_t *link, const char **error)
{
    return s_state_open (config, error);
}

//  --------------------------------------------------------------------------
//  Create the shared state from a config

static void *
s_state_open (lh_config_t *config, const char **error)
{
    s_state_t *self = (s_state_t *) zmalloc (sizeof (s_state_t));
    assert (self);
    pthread_mutex_init (&self->lock, NULL);
    self->uploads = zhashx_new ();
    zhashx_set_destructor (self->uploads, (zhashx_destructor_fn *) zstr_free);
    self->cap_default = (uint64_t) lh_config_int (config, "storaged/cap_default");
    int64_t slots = lh_config_int (config, "storaged/put_slots");
    int64_t retry = lh_config_int (config, "storaged/retry_after_ms");
    int64_t part_max = lh_config_int (config, "storaged/part_max");
    int64_t get_max = lh_config_int (config, "storaged/get_max");
    self->upload_ttl_ms = lh_config_int (config, "storaged/upload_ttl_ms");
    void *state = self;
    if (s_caps_parse (self, lh_config_str (config, "storaged/caps"))) {
        lh_error (S_NAME, NULL, "storaged/caps: expected PREFIX=BYTES,..., got '%s'",
                  lh_config_str (config, "storaged/caps"));
        *error = "storaged/caps: expected PREFIX=BYTES,...";
        s_state_destroy (&state);
        return NULL;
    }
    //  Ingest sources: one setting for the gateway, ingestd and this cap;
    //  the tables built from them get a multiple of it, unless
    //  storaged/caps gives their prefix a cap of its own
    bool tables_capped = false;
    for (size_t index = 0; index < self->cap_count; index++) {
        if (streq (self->caps [index].prefix, LH_INGEST_PREFIX)) {
            lh_error (S_NAME, NULL, "storaged/caps: the cap of '%s' is ingest/max_bytes",
                      LH_INGEST_PREFIX);
            *error = "storaged/caps: the cap of '" LH_INGEST_PREFIX "' is set by ingest/max_bytes, "
                     "not here";
            s_state_destroy (&state);
            return NULL;
        }
        if (streq (self->caps [index].prefix, LH_INGEST_TABLE_PREFIX))
            tables_capped = true;
    }
    uint64_t ingest_max = (uint64_t) lh_config_int (config, "ingest/max_bytes");
    s_cap_add (self, LH_INGEST_PREFIX, ingest_max, "raise ingest/max_bytes");
    if (!tables_capped)
        s_cap_add (self, LH_INGEST_TABLE_PREFIX, ingest_max * LH_INGEST_TABLE_FACTOR,
                   "raise ingest/max_bytes: tables get " S_STRINGIFY (LH_INGEST_TABLE_FACTOR)
                   " times it; or give '" LH_INGEST_TABLE_PREFIX "' a cap in storaged/caps");
    self->put_slots = (uint32_t) slots;
    self->retry_after_ms = (uint64_t) retry;
    self->part_max = (size_t) part_max;
    self->get_max = (size_t) get_max;

    const char *backend = lh_config_str (config, "storaged/backend");
    lh_store_error_t store_error;
    if (streq (backend, "fs")) {
        const char *dir = lh_config_str (config, "storaged/dir");
        char *path = *dir? strdup (dir): zsys_sprintf ("%s/storage", lh_config_str (config, "data/dir"));
        self->store = lh_store_new_fs (path, &store_error);
        free (path);
    }
    else
    if (streq (backend, "s3"))
        self->store = lh_store_new_s3 (config, &store_error);
    else {
        *error = "storaged/backend: expected fs or s3";
        s_state_destroy (&state);
        return NULL;
    }
    if (!self->store) {
        lh_error (S_NAME, NULL, "cannot open the %s store: %s", backend, store_error.reason);
        *error = "storaged: cannot open the store (see the log line before)";
        s_state_destroy (&state);
        return NULL;
    }
    //  Parts and get replies are megabytes each. Mapping each one afresh
    //  (mmap, a page fault per 4 KiB, munmap) cost more than the copies
    //  and the hashing together (a 1 MiB get ran 4x slower), so blocks up
    //  to a part or a get come from malloc's arenas and are reused; freed
    //  memory past a few parts is given back (trim threshold), so the
    //  process stays bounded by the parts in flight. Larger blocks (and
    //  the dynamic threshold, which would grow without bound) stay off.
    size_t block = (self->part_max > self->get_max? self->part_max: self->get_max)
                 + 64 * 1024;
    if (block > 32 * 1024 * 1024)
        block = 32 * 1024 * 1024;       //  glibc's largest mmap threshold
    mallopt (M_MMAP_THRESHOLD, (int) block);
    mallopt (M_TRIM_THRESHOLD, (int) (2 * block));
    //  Clean up after a process that died with uploads open. On the fs
    //  backend this process is the only one serving the store (storaged is
    //  single-instance there), so every upload and temp file left on disk
    //  is abandoned, whatever its age; on s3 another process may own an
    //  upload, so only those idle past the TTL go
    lh_store_sweep (self->store, streq (backend, "fs")? -1000: self->upload_ttl_ms);
    self->next_sweep = zclock_mono () + S_SWEEP_MS;
    lh_info (S_NAME, NULL, "%s backend ready", backend);
    return self;
}


//  --------------------------------------------------------------------------
//  Once a second per worker: expire idle uploads, sweep now and then

static void
s_tick (void *state)
{
    s_state_t *self = (s_state_t *) state;
    int64_t now = zclock_mono ();
    bool sweep = false;
    pthread_mutex_lock (&self->lock);
    zlistx_t *expired = zlistx_new ();
    zlistx_set_destructor (expired, (zlistx_destructor_fn *) zstr_free);
    for (int64_t *used = (int64_t *) zhashx_first (self->uploads); used;
         used = (int64_t *) zhashx_next (self->uploads))
        if (now - *used > self->upload_ttl_ms)
            zlistx_add_end (expired, strdup ((const char *) zhashx_cursor (self->uploads)));
    for (char *id = (char *) zlistx_first (expired); id; id = (char *) zlistx_next (expired))
        zhashx_delete (self->uploads, id);
    if (now >= self->next_sweep) {
        self->next_sweep = now + S_SWEEP_MS;
        sweep = true;
    }
    pthread_mutex_unlock (&self->lock);
    lh_store_error_t error;
    for (char *id = (char *) zlistx_first (expired); id; id = (char *) zlistx_next (expired)) {
        lh_warn (S_NAME, NULL, "upload %s idle for %" PRId64 " ms: aborted", id, self->upload_ttl_ms);
        lh_store_upload_abort (self->store, id, &error);
    }
    zlistx_destroy (&expired);
    if (sweep)
        lh_store_sweep (self->store, self->upload_ttl_ms);
}


//  --------------------------------------------------------------------------
//  Take a PUT slot, or answer 503 and return -1

static int
s_slot_take (s_state_t *self, lh_request_t *request)
{
    pthread_mutex_lock (&self->lock);
    uint32_t used = self->puts_active + (uint32_t) zhashx_size (self->uploads);
    bool free_slot = used < self->put_slots;
    if (free_slot)
        self->puts_active++;
    pthread_mutex_unlock (&self->lock);
    if (!free_slot)
        return lh_request_fail_retry (request, LH_ST_UNAVAILABLE, "busy", self->retry_after_ms,
                                      "all %u PUT slots are taken (puts in progress and open "
                                      "uploads); retry later", self->put_slots);
    return 0;
}

//  Give a slot back; if upload_id is set, the slot moves to that upload
static void
s_slot_give (s_state_t *self, const char *upload_id)
{
    pthread_mutex_lock (&self->lock);
    assert (self->puts_active > 0);
    self->puts_active--;
    if (upload_id) {
        int64_t *used = (int64_t *) malloc (sizeof (int64_t));
        assert (used);
        *used = zclock_mono ();
        zhashx_update (self->uploads, upload_id, used);
    }
    pthread_mutex_unlock (&self->lock);
}

//  Note activity on an upload, or forget it (gone = true: frees its slot)
static void
s_upload_touch (s_state_t *self, const char *upload_id, bool gone)
{
    pthread_mutex_lock (&self->lock);
    int64_t *used = (int64_t *) zhashx_lookup (self->uploads, upload_id);
    if (used && gone)
        zhashx_delete (self->uploads, upload_id);
    else
    if (used)
        *used = zclock_mono ();
    pthread_mutex_unlock (&self->lock);
}


//  --------------------------------------------------------------------------
//  Request helpers: a checked key, the conditions, the payload. Each
//  returns 0, or -1 after answering 400 naming the field.

//  Read and check "key" (kind bad_key, the reason names the rule)
static int
s_key (lh_request_t *request, const msgpack_object *body, s_key_t *key)
{
    const char *text = NULL;
    size_t size = 0;
    const msgpack_object *item = lh_obj_get (body, "key");
    if (item && item->type != MSGPACK_OBJECT_STR)
        return lh_request_fail_field (request, LH_ST_BAD_REQUEST, "bad_key", "key",
                                      "'key' must be a string");
    if (item) {
        text = item->via.str.ptr;
        size = item->via.str.size;
    }
    const char *reason;
    if (lh_store_key_check (text, size, &reason))
        return lh_request_fail_field (request, LH_ST_BAD_REQUEST, "bad_key", "key", "%s", reason);
    memcpy (key->text, text, size);
    key->text [size] = 0;
    return 0;
}

//  The conditions of a put / commit. if_match is copied into etag (quotes
//  around it are dropped).
static int
s_cond (lh_request_t *request, const msgpack_object *body, lh_store_cond_t *cond,
        char *etag)
{
    memset (cond, 0, sizeof (*cond));
    const char *none = NULL, *match = NULL;
    size_t none_size = 0, match_size = 0;
    if (lh_request_str (request, body, "if_none_match", 0, 8, &none, &none_size)
    ||  lh_request_str (request, body, "if_match", 0, LH_STORE_ETAG_SIZE + 2, &match, &match_size))
        return -1;
    if (none && (none_size != 1 || *none != '*'))
        return lh_request_bad (request, "if_none_match", "'if_none_match' supports only \"*\"");
    cond->if_none_match = none != NULL;
    if (match) {
        if (match_size >= 2 && match [0] == '"' && match [match_size - 1] == '"') {
            match++;
            match_size -= 2;
        }
        if (memchr (match, 0, match_size))
            return lh_request_bad (request, "if_match", "'if_match' must not hold a NUL character");
        memcpy (etag, match, match_size);
        etag [match_size] = 0;
        cond->if_match = etag;
    }
    return 0;
}

//  Binary payload "data" (bin, or str)
static int
s_data (lh_request_t *request, const msgpack_object *body, const void **data,
        size_t *size)
{
    const msgpack_object *item = lh_obj_get (body, "data");
    if (item && item->type == MSGPACK_OBJECT_BIN) {
        *data = item->via.bin.ptr;
        *size = item->via.bin.size;
        return 0;
    }
    if (item && item->type == MSGPACK_OBJECT_STR) {
        *data = item->via.str.ptr;
        *size = item->via.str.size;
        return 0;
    }
    return lh_request_bad (request, "data", "'data' (bin) is required");
}

//  Answer a store error
static void
s_store_error (lh_request_t *request, const lh_store_error_t *error)
{
    uint32_t status = error->status? error->status: LH_ST_INTERNAL;
    if (status >= 500)
        lh_warn (S_NAME, lh_request_trace (request), "%s: %s",
                 lh_request_op (request), error->reason);
    lh_request_fail (request, status, error->kind, "%s", error->reason);
}

//  Publish storage.put {key, size, etag, upload?} for an object written
//  (put, upload_commit): the write is durable, the reply not yet sent
static void
s_publish_put (lh_request_t *request, const char *key, const lh_store_info_t *info,
               const char *upload_id)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, upload_id? 4: 3);
    lh_pack_kv_str (pack, "key", key);
    lh_pack_kv_uint (pack, "size", info->size);
    lh_pack_kv_str (pack, "etag", info->etag);
    if (upload_id)
        lh_pack_kv_str (pack, "upload_id", upload_id);
    lh_request_event (request, "storage.put", &pack);
}

//  Reply {key, etag, size} (put, commit)
static void
s_reply_written (lh_request_t *request, const char *key, const lh_store_info_t *info)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 3);
    lh_pack_kv_str (pack, "key", key);
    lh_pack_kv_str (pack, "etag", info->etag);
    lh_pack_kv_uint (pack, "size", info->size);
    lh_request_reply_pack (request, LH_ST_OK, &pack);
}

//  Answer 413 if size is over the key's cap, saying which setting raises
//  it; returns -1 then
static int
s_cap_check (s_state_t *self, lh_request_t *request, const char *key, uint64_t size)
{
    const char *prefix, *hint;
    uint64_t cap = s_cap_for (self, key, &prefix, &hint);
    if (size <= cap)
        return 0;
    if (*prefix)
        return lh_request_fail (request, LH_ST_TOO_LARGE, "too_large",
                                "object of %" PRIu64 " bytes is over the cap of %" PRIu64
                                " bytes for keys under '%s' (%s)", size, cap, prefix, hint);
    return lh_request_fail (request, LH_ST_TOO_LARGE, "too_large",
                            "object of %" PRIu64 " bytes is over the default cap of %" PRIu64
                            " bytes (%s)", size, cap, hint);
}


//  --------------------------------------------------------------------------
//  put {key, data, if_none_match?, if_match?}

static void
s_put (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    const msgpack_object *body = lh_request_map (request);
    s_key_t key;
    lh_store_cond_t cond;
    char etag [LH_STORE_ETAG_SIZE + 3];
    const void *data;
    size_t size;
    if (!body || s_key (request, body, &key) || s_cond (request, body, &cond, etag)
    ||  s_data (request, body, &data, &size)
    ||  s_cap_check (self, request, key.text, size))
        return;
    if (size > self->part_max) {
        lh_request_fail_field (request, LH_ST_TOO_LARGE, "too_large", "data",
                               "put of %zu bytes is over storaged/part_max (%zu): use a "
                               "multipart upload", size, self->part_max);
        return;
    }
    if (s_slot_take (self, request))
        return;
    lh_store_info_t info;
    lh_store_error_t error;
    int rc = lh_store_put (self->store, key.text, data, size, &cond, &info, &error);
    s_slot_give (self, NULL);
    if (rc)
        s_store_error (request, &error);
    else {
        lh_debug (S_NAME, lh_request_trace (request), "put key=%s %zu bytes", key.text, size);
        s_publish_put (request, key.text, &info, NULL);
        s_reply_written (request, key.text, &info);
    }
}


//  --------------------------------------------------------------------------
//  A get's reply, built around the content: the store reads the bytes
//  straight into the reply frame after its msgpack head (no copies)

typedef struct {
    const char *key;                    //  the key asked for
    uint64_t offset;                    //  first byte asked for
    lh_store_info_t info;               //  filled by the store before alloc
    zframe_t *frame;                    //  the reply body, once allocated
} s_get_reply_t;

//  --------------------------------------------------------------------------
//  Write one msgpack string

static void
s_pack_cstr (msgpack_packer *packer, const char *text)
{
    size_t size = strlen (text);
    msgpack_pack_str (packer, size);
    msgpack_pack_str_body (packer, text, size);
}

//  --------------------------------------------------------------------------
//  lh_store_alloc_fn: the reply frame {key, etag, size, offset, length,
//  data: bin} with room for size content bytes at its end

static void *
s_get_alloc (void *arg, size_t size)
{
    s_get_reply_t *self = (s_get_reply_t *) arg;
    msgpack_sbuffer head;
    msgpack_sbuffer_init (&head);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &head, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 6);
    s_pack_cstr (&packer, "key");
    s_pack_cstr (&packer, self->key);
    s_pack_cstr (&packer, "etag");
    s_pack_cstr (&packer, self->info.etag);
    s_pack_cstr (&packer, "size");
    msgpack_pack_uint64 (&packer, self->info.size);
    s_pack_cstr (&packer, "offset");
    msgpack_pack_uint64 (&packer, self->offset);
    s_pack_cstr (&packer, "length");
    msgpack_pack_uint64 (&packer, size);
    s_pack_cstr (&packer, "data");
    msgpack_pack_bin (&packer, size);
    zframe_destroy (&self->frame);
    self->frame = zframe_new (NULL, head.size + size);
    uint8_t *data = self->frame? zframe_data (self->frame): NULL;
    if (data)
        memcpy (data, head.data, head.size);
    msgpack_sbuffer_destroy (&head);
    return data? data + head.size: NULL;
}


//  --------------------------------------------------------------------------
//  get {key, offset?, length?}

static void
s_get (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    const msgpack_object *body = lh_request_map (request);
    s_key_t key;
    if (!body || s_key (request, body, &key))
        return;
    uint64_t offset = 0, length = self->get_max;
    const char *fields [] = { "offset", "length" };
    uint64_t *values [] = { &offset, &length };
    for (size_t index = 0; index < 2; index++) {
        const msgpack_object *item = lh_obj_get (body, fields [index]);
        if (item && item->type != MSGPACK_OBJECT_NIL
        &&  !lh_obj_uint (body, fields [index], values [index])) {
            lh_request_fail_field (request, LH_ST_BAD_REQUEST, "bad_range", fields [index],
                                   "'offset' and 'length' must be unsigned integers");
            return;
        }
    }
    if (length > self->get_max)
        length = self->get_max;
    s_get_reply_t reply = { .key = key.text, .offset = offset };
    size_t got;
    lh_store_error_t error;
    if (lh_store_get_into (self->store, key.text, offset, (size_t) length, s_get_alloc,
                           &reply, &got, &reply.info, &error)) {
        zframe_destroy (&reply.frame);
        s_store_error (request, &error);
        return;
    }
    lh_request_reply (request, LH_ST_OK, &reply.frame);
}


//  --------------------------------------------------------------------------
//  head {key}

static void
s_head (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    const msgpack_object *body = lh_request_map (request);
    s_key_t key;
    if (!body || s_key (request, body, &key))
        return;
    lh_store_info_t info;
    lh_store_error_t error;
    if (lh_store_head (self->store, key.text, &info, &error)) {
        s_store_error (request, &error);
        return;
    }
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 4);
    lh_pack_kv_str (pack, "key", key.text);
    lh_pack_kv_str (pack, "etag", info.etag);
    lh_pack_kv_uint (pack, "size", info.size);
    lh_pack_kv_int (pack, "mtime_ms", info.mtime_ms);
    lh_request_reply_pack (request, LH_ST_OK, &pack);
}


//  --------------------------------------------------------------------------
//  list {prefix?, start_after?, continuation?, limit?}

typedef struct {
    char *key;                          //  object key
    lh_store_info_t info;               //  its description
} s_listed_t;

static void
s_listed_destroy (s_listed_t **self_p)
{
    if (*self_p) {
        free ((*self_p)->key);
        free (*self_p);
        *self_p = NULL;
    }
}

static int
s_list_collect (const char *key, const lh_store_info_t *info, void *arg)
{
    s_listed_t *item = (s_listed_t *) malloc (sizeof (s_listed_t));
    assert (item);
    item->key = strdup (key);
    item->info = *info;
    zlistx_add_end ((zlistx_t *) arg, item);
    return 0;
}

static void
s_list (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    const msgpack_object *body = lh_request_map (request);
    if (!body)
        return;
    char *prefix = NULL, *start_after = NULL, *continuation = NULL;
    uint64_t limit = S_LIST_MAX;
    const msgpack_object *item = lh_obj_get (body, "limit");
    if (lh_request_strdup (request, body, "prefix", 0, LH_STORE_KEY_MAX, &prefix)
    ||  lh_request_strdup (request, body, "start_after", 0, LH_STORE_KEY_MAX, &start_after)
    ||  lh_request_strdup (request, body, "continuation", 0, LH_STORE_KEY_MAX, &continuation))
        goto done;
    if (item && item->type != MSGPACK_OBJECT_NIL
    &&  (!lh_obj_uint (body, "limit", &limit) || limit < 1 || limit > S_LIST_MAX)) {
        lh_request_fail_field (request, LH_ST_BAD_REQUEST, "bad_limit", "limit",
                               "'limit' must be an integer from 1 to %d", S_LIST_MAX);
        goto done;
    }
    //  The continuation token is the last key of the previous page
    const char *after = continuation? continuation: start_after;
    zlistx_t *items = zlistx_new ();
    zlistx_set_destructor (items, (zlistx_destructor_fn *) s_listed_destroy);
    bool truncated = false;
    lh_store_error_t error;
    if (lh_store_list (self->store, prefix, after, (uint32_t) limit, s_list_collect,
                       items, &truncated, &error))
        s_store_error (request, &error);
    else {
        lh_pack_t *pack = lh_pack_new ();
        s_listed_t *last = (s_listed_t *) zlistx_last (items);
        lh_pack_map (pack, truncated && last? 3: 2);
        lh_pack_str (pack, "keys");
        lh_pack_array (pack, (uint32_t) zlistx_size (items));
        for (s_listed_t *item = (s_listed_t *) zlistx_first (items); item;
             item = (s_listed_t *) zlistx_next (items)) {
            lh_pack_map (pack, 4);
            lh_pack_kv_str (pack, "key", item->key);
            lh_pack_kv_uint (pack, "size", item->info.size);
            lh_pack_kv_str (pack, "etag", item->info.etag);
            lh_pack_kv_int (pack, "mtime_ms", item->info.mtime_ms);
        }
        lh_pack_kv_bool (pack, "truncated", truncated);
        if (truncated && last)
            lh_pack_kv_str (pack, "next", last->key);
        lh_request_reply_pack (request, LH_ST_OK, &pack);
    }
    zlistx_destroy (&items);
done:
    free (prefix);
    free (start_after);
    free (continuation);
}


//  --------------------------------------------------------------------------
//  delete {key}

static void
s_delete (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    const msgpack_object *body = lh_request_map (request);
    s_key_t key;
    if (!body || s_key (request, body, &key))
        return;
    lh_store_error_t error;
    if (lh_store_remove (self->store, key.text, &error)) {
        s_store_error (request, &error);
        return;
    }
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_str (pack, "key", key.text);
    lh_request_event (request, "storage.delete", &pack);
    pack = lh_pack_new ();
    lh_pack_map (pack, 2);
    lh_pack_kv_str (pack, "key", key.text);
    lh_pack_kv_bool (pack, "deleted", true);
    lh_request_reply_pack (request, LH_ST_OK, &pack);
}


//  --------------------------------------------------------------------------
//  upload_begin {key, if_none_match?, if_match?, size?, dry_run?}: an early
//  check of the condition (upload_commit checks it for real) and, when the
//  caller knows the object's size, of the key's cap (413 before any part is
//  sent). With dry_run true only the checks are made: nothing is begun and
//  no PUT slot is taken (the reply has no upload_id).

static void
s_upload_begin (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    const msgpack_object *body = lh_request_map (request);
    s_key_t key;
    lh_store_cond_t cond;
    char etag [LH_STORE_ETAG_SIZE + 3];
    if (!body || s_key (request, body, &key) || s_cond (request, body, &cond, etag))
        return;
    int64_t size = 0;
    bool dry_run = false;
    if (lh_request_int (request, body, "size", 0, 0, INT64_MAX, &size)
    ||  lh_request_bool (request, body, "dry_run", 0, &dry_run))
        return;
    if (s_cap_check (self, request, key.text, (uint64_t) size))
        return;
    lh_store_error_t error;
    if (cond.if_none_match || cond.if_match) {
        lh_store_info_t info;
        bool exists = lh_store_head (self->store, key.text, &info, &error) == 0;
        if (!exists && error.status != LH_ST_NOT_FOUND) {
            s_store_error (request, &error);
            return;
        }
        if (lh_store_cond_check (&cond, exists, exists? info.etag: "", key.text, &error)) {
            s_store_error (request, &error);
            return;
        }
    }
    if (dry_run) {
        lh_pack_t *pack = lh_pack_new ();
        lh_pack_map (pack, 2);
        lh_pack_kv_str (pack, "key", key.text);
        lh_pack_kv_uint (pack, "part_max", self->part_max);
        lh_request_reply_pack (request, LH_ST_OK, &pack);
        return;
    }
    if (s_slot_take (self, request))
        return;
    char upload_id [LH_STORE_UPLOAD_MAX + 1];
    if (lh_store_upload_begin (self->store, key.text, upload_id, &error)) {
        s_slot_give (self, NULL);
        s_store_error (request, &error);
        return;
    }
    s_slot_give (self, upload_id);
    lh_debug (S_NAME, lh_request_trace (request), "upload %s begun for key=%s", upload_id, key.text);
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 3);
    lh_pack_kv_str (pack, "upload_id", upload_id);
    lh_pack_kv_str (pack, "key", key.text);
    lh_pack_kv_uint (pack, "part_max", self->part_max);
    lh_request_reply_pack (request, LH_ST_OK, &pack);
}


//  --------------------------------------------------------------------------
//  Read "upload_id"; answers 400 and returns NULL if absent (caller frees)

static char *
s_upload_id (lh_request_t *request, const msgpack_object *body)
{
    char *upload_id = NULL;
    if (lh_request_strdup (request, body, "upload_id", LH_FIELD_REQUIRED | LH_FIELD_NONEMPTY,
                           LH_STORE_UPLOAD_MAX, &upload_id))
        return NULL;
    return upload_id;
}


//  --------------------------------------------------------------------------
//  upload_part {upload_id, part, data}: a part over the key's cap aborts
//  the upload (413)

static void
s_upload_part (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    const msgpack_object *body = lh_request_map (request);
    char *upload_id = body? s_upload_id (request, body): NULL;
    if (!upload_id)
        return;
    uint64_t part = 0;
    const void *data;
    size_t size;
    char *key = NULL;
    uint64_t so_far, total;
    uint32_t next;
    lh_store_error_t error;
    if (!lh_obj_uint (body, "part", &part) || part < 1 || part > UINT32_MAX) {
        lh_request_fail_field (request, LH_ST_BAD_REQUEST, "bad_part", "part",
                               "'part' must be an integer from 1 (parts are numbered in order)");
        goto done;
    }
    if (s_data (request, body, &data, &size))
        goto done;
    if (size > self->part_max) {
        lh_request_fail_field (request, LH_ST_TOO_LARGE, "too_large", "data",
                               "part of %zu bytes is over storaged/part_max (%zu)", size,
                               self->part_max);
        goto done;
    }
    if (lh_store_upload_stat (self->store, upload_id, &key, &so_far, &next, &error)) {
        s_store_error (request, &error);
        goto done;
    }
    //  Over the cap: the upload is ended before the 413 goes out, so the
    //  caller's next call finds it gone
    const char *prefix, *hint;
    if (part == next && so_far + size > s_cap_for (self, key, &prefix, &hint)) {
        lh_store_upload_abort (self->store, upload_id, &error);
        s_upload_touch (self, upload_id, true);
        s_cap_check (self, request, key, so_far + size);
        goto done;
    }
    //  Where the backend can (fs), the part is accepted (checked, the upload
    //  locked) and answered first, then written: the client sends the next
    //  part while this one is hashed and written, and that part waits on
    //  the upload's lock, so parts still land in order. A write that fails
    //  after the answer aborts the upload: its next part or commit fails.
    void *ticket = NULL;
    int accepted = lh_store_upload_part_accept (self->store, upload_id, (uint32_t) part,
                                                size, &ticket, &total, &error);
    if (accepted == 1) {
        if (lh_store_upload_part (self->store, upload_id, (uint32_t) part, data, size,
                                  &total, &error)) {
            s_store_error (request, &error);
            goto done;
        }
    }
    else
    if (accepted) {
        s_store_error (request, &error);
        goto done;
    }
    if (total > s_cap_for (self, key, &prefix, &hint)) {
        if (ticket)
            lh_store_upload_part_write (self->store, &ticket, NULL, &error);
        lh_store_upload_abort (self->store, upload_id, &error);
        s_upload_touch (self, upload_id, true);
        s_cap_check (self, request, key, total);
        goto done;
    }
    s_upload_touch (self, upload_id, false);
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 3);
    lh_pack_kv_str (pack, "upload_id", upload_id);
    lh_pack_kv_uint (pack, "part", part);
    lh_pack_kv_uint (pack, "size", total);
    lh_request_reply_pack (request, LH_ST_OK, &pack);
    if (ticket && lh_store_upload_part_write (self->store, &ticket, data, &error)) {
        lh_warn (S_NAME, lh_request_trace (request), "upload %s part %" PRIu64
                 " failed after it was answered (the upload is aborted): %s",
                 upload_id, part, error.reason);
        s_upload_touch (self, upload_id, true);
    }
done:
    free (key);
    free (upload_id);
}


//  --------------------------------------------------------------------------
//  upload_commit {upload_id, key?, if_none_match?, if_match?}: the upload
//  ends whether the commit succeeds or its condition fails. With key, the
//  object is written under it instead of the begin's key (a name known
//  only once the bytes are: content addressing); its cap applies, and the
//  condition is checked against it.

static void
s_upload_commit (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    const msgpack_object *body = lh_request_map (request);
    char *upload_id = body? s_upload_id (request, body): NULL;
    if (!upload_id)
        return;
    lh_store_cond_t cond;
    char etag [LH_STORE_ETAG_SIZE + 3];
    s_key_t target;
    bool named = lh_obj_get (body, "key") != NULL;
    lh_store_error_t error;
    int rc = s_cond (request, body, &cond, etag);
    if (rc == 0 && named)
        rc = s_key (request, body, &target);
    if (rc == 0 && named) {
        //  The new key's cap, for the bytes the upload holds
        char *begun = NULL;
        uint64_t so_far;
        uint32_t next;
        rc = lh_store_upload_stat (self->store, upload_id, &begun, &so_far, &next, &error);
        if (rc)
            s_store_error (request, &error);
        else
            rc = s_cap_check (self, request, target.text, so_far);
        free (begun);
    }
    if (rc == 0) {
        char *key = NULL;
        lh_store_info_t info;
        rc = lh_store_upload_commit (self->store, upload_id, named? target.text: NULL, &cond,
                                     &key, &info, &error);
        if (rc == 0 || error.status == LH_ST_PRECONDITION || error.status == LH_ST_NOT_FOUND)
            s_upload_touch (self, upload_id, true);
        if (rc)
            s_store_error (request, &error);
        else {
            lh_debug (S_NAME, lh_request_trace (request), "upload %s committed key=%s %" PRIu64 " bytes",
                      upload_id, key, info.size);
            s_publish_put (request, key, &info, upload_id);
            s_reply_written (request, key, &info);
        }
        free (key);
    }
    free (upload_id);
}


//  --------------------------------------------------------------------------
//  upload_read {upload_id, offset?, length?}: the bytes of an upload in
//  progress as written so far, so a reader can follow it as it lands

static void
s_upload_read (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    const msgpack_object *body = lh_request_map (request);
    char *upload_id = body? s_upload_id (request, body): NULL;
    if (!upload_id)
        return;
    int64_t offset = 0, length = (int64_t) self->get_max;
    if (lh_request_int (request, body, "offset", 0, 0, INT64_MAX, &offset)
    ||  lh_request_int (request, body, "length", 0, 1, INT64_MAX, &length)) {
        free (upload_id);
        return;
    }
    if ((uint64_t) length > self->get_max)
        length = (int64_t) self->get_max;
    void *data = NULL;
    size_t got = 0;
    char *key = NULL;
    uint64_t size = 0;
    bool readable = false;
    lh_store_error_t error;
    if (lh_store_upload_read (self->store, upload_id, (uint64_t) offset, (size_t) length,
                              &data, &got, &key, &size, &readable, &error))
        s_store_error (request, &error);
    else {
        lh_pack_t *pack = lh_pack_new ();
        lh_pack_map (pack, 6);
        lh_pack_kv_str (pack, "upload_id", upload_id);
        lh_pack_kv_str (pack, "key", key);
        lh_pack_kv_uint (pack, "size", size);
        lh_pack_kv_uint (pack, "offset", (uint64_t) offset);
        lh_pack_kv_bool (pack, "readable", readable);
        lh_pack_str (pack, "data");
        lh_pack_bin (pack, data? data: "", got);
        lh_request_reply_pack (request, LH_ST_OK, &pack);
    }
    free (data);
    free (key);
    free (upload_id);
}


//  --------------------------------------------------------------------------
//  upload_abort {upload_id}

static void
s_upload_abort (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    const msgpack_object *body = lh_request_map (request);
    char *upload_id = body? s_upload_id (request, body): NULL;
    if (!upload_id)
        return;
    lh_store_error_t error;
    int rc = lh_store_upload_abort (self->store, upload_id, &error);
    s_upload_touch (self, upload_id, true);
    if (rc)
        s_store_error (request, &error);
    else {
        lh_pack_t *pack = lh_pack_new ();
        lh_pack_map (pack, 2);
        lh_pack_kv_str (pack, "upload_id", upload_id);
        lh_pack_kv_bool (pack, "aborted", true);
        lh_request_reply_pack (request, LH_ST_OK, &pack);
    }
    free (upload_id);
}


static const lh_op_t s_ops [] = {
    { "put", s_put },
    { "get", s_get },
    { "head", s_head },
    { "list", s_list },
    { "delete", s_delete },
    { "upload_begin", s_upload_begin },
    { "upload_part", s_upload_part },
    { "upload_commit", s_upload_commit },
    { "upload_abort", s_upload_abort },
    { "upload_read", s_upload_read },
    { NULL, NULL }
};

//  --------------------------------------------------------------------------
//  On the fs backend the objects live on this host: one process serves
//  them. Several storaged on one s3 bucket are fine.

static bool
s_is_single_instance (lh_config_t *config)
{
    return streq (lh_config_str (config, "storaged/backend"), "fs");
}

const lh_service_t lh_storaged_service = {
    .name = "storaged",
    .ops = s_ops,
    .state_new = s_state_new,
    .state_destroy = s_state_destroy,
    .tick = s_tick,
    .credit = 2,
    .is_single_instance = s_is_single_instance
};


//  --------------------------------------------------------------------------
//  Self test: storaged on a test bus

#include "lh_testbus.h"

//  Call storaged with a pack (destroyed, may be NULL); returns the reply
static lh_reply_t *
s_test_call (lh_client_t *client, const char *op, lh_pack_t *pack)
{
    size_t size = 0;
    const void *data = pack? lh_pack_data (pack, &size): NULL;
    lh_call_opts_t opts = { .timeout_ms = 5000, .queue = true };
    lh_reply_t *reply = NULL;
    lh_client_call (client, "storaged", op, data, size, &opts, &reply);
    lh_pack_destroy (&pack);
    assert (reply);
    return reply;
}

//  A pack {key: KEY} plus room for more pairs
static lh_pack_t *
s_test_key (const char *key, size_t size, uint32_t pairs)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, pairs + 1);
    lh_pack_str (pack, "key");
    lh_pack_strn (pack, key, size);
    return pack;
}

//  put KEY = text; returns the status, the ETag into etag (if 200)
static uint32_t
s_test_put (lh_client_t *client, const char *key, const char *text,
            const char *cond_name, const char *cond_value, char *etag)
{
    lh_pack_t *pack = s_test_key (key, strlen (key), cond_name? 2: 1);
    lh_pack_str (pack, "data");
    lh_pack_bin (pack, text, strlen (text));
    if (cond_name)
        lh_pack_kv_str (pack, cond_name, cond_value);
    lh_reply_t *reply = s_test_call (client, "put", pack);
    uint32_t status = lh_reply_status (reply);
    const char *text_etag;
    size_t size;
    if (status == 200 && etag) {
        assert (lh_obj_str (lh_reply_object (reply), "etag", &text_etag, &size) && size == 64);
        memcpy (etag, text_etag, 64);
        etag [64] = 0;
    }
    lh_reply_destroy (&reply);
    return status;
}

void
lh_storaged_test (bool verbose)
{
    printf (" * storaged: ");
    lh_testbus_t *bus = lh_testbus_new ("storaged");
    lh_testbus_set (bus, "storaged/cap_default", "1000");
    lh_testbus_set (bus, "storaged/caps", "_vectors/=5000,big/=3000");
    lh_testbus_set (bus, "storaged/part_max", "2000");
    lh_testbus_set (bus, "storaged/get_max", "100");
    lh_testbus_set (bus, "ingest/max_bytes", "1500");
    lh_testbus_start (bus, &lh_storaged_service, 2);
    lh_client_t *client = lh_testbus_client (bus);

    //  Bad bodies: one 400 each, naming the field
    struct {
        const char *op, *json, *field;
    } fields [] = {
        { "put", "{\"data\": \"x\"}", "key" },
        { "put", "{\"key\": 5, \"data\": \"x\"}", "key" },
        { "put", "{\"key\": \"a\"}", "data" },
        { "put", "{\"key\": \"a\", \"data\": \"x\", \"if_none_match\": \"x\"}", "if_none_match" },
        { "put", "{\"key\": \"a\", \"data\": \"x\", \"if_match\": 3}", "if_match" },
        { "get", "{\"key\": \"a\", \"offset\": -1}", "offset" },
        { "get", "{\"key\": \"a\", \"length\": \"9\"}", "length" },
        { "list", "{\"limit\": 0}", "limit" },
        { "list", "{\"prefix\": []}", "prefix" },
        { "upload_part", "{\"upload_id\": \"u\", \"part\": 0, \"data\": \"x\"}", "part" },
        { "upload_commit", "{}", "upload_id" },
        { "upload_abort", "{\"upload_id\": \"\"}", "upload_id" },
    };
    for (size_t index = 0; index < sizeof (fields) / sizeof (fields [0]); index++)
        lh_testbus_expect (bus, "storaged", fields [index].op, fields [index].json, 400, NULL,
                           fields [index].field);
    assert (lh_testbus_status (bus, "storaged", "list", "[1]") == 400);
    assert (lh_testbus_status (bus, "storaged", "list", NULL) == 200);

    //  Every key rule, each named in the reason
    struct {
        const char *key;
        size_t size;
        const char *rule;
    } bad [] = {
        { "", 0, "empty" }, { "a\0b", 3, "NUL" }, { "\xff", 1, "UTF-8" },
        { "/a", 2, "'/'" }, { "a/../b", 6, "'..'" }, { "a\rb", 3, "CR" },
        { "a\nb", 3, "LF" }, { "a\tb", 3, "TAB" },
    };
    for (size_t index = 0; index < sizeof (bad) / sizeof (bad [0]); index++) {
        lh_pack_t *pack = s_test_key (bad [index].key, bad [index].size, 1);
        lh_pack_str (pack, "data");
        lh_pack_bin (pack, "x", 1);
        lh_reply_t *reply = s_test_call (client, "put", pack);
        assert (lh_reply_status (reply) == 400);
        assert (lh_reply_reason (reply) && strstr (lh_reply_reason (reply), bad [index].rule));
        lh_reply_destroy (&reply);
    }
    char long_key [1100];
    memset (long_key, 'k', sizeof (long_key));
    lh_reply_t *reply = s_test_call (client, "head", s_test_key (long_key, 1025, 0));
    assert (lh_reply_status (reply) == 400 && strstr (lh_reply_reason (reply), "1024"));
    lh_reply_destroy (&reply);

    //  put / get with ranges / head
    char etag [65], other [65];
    assert (s_test_put (client, "docs/a.txt", "hello world", NULL, NULL, etag) == 200);
    lh_pack_t *pack = s_test_key ("docs/a.txt", 10, 2);
    lh_pack_kv_uint (pack, "offset", 6);
    lh_pack_kv_uint (pack, "length", 3);
    reply = s_test_call (client, "get", pack);
    assert (lh_reply_status (reply) == 200);
    const msgpack_object *object = lh_reply_object (reply);
    const msgpack_object *data = lh_obj_get (object, "data");
    assert (data && data->type == MSGPACK_OBJECT_BIN && data->via.bin.size == 3);
    assert (memcmp (data->via.bin.ptr, "wor", 3) == 0);
    uint64_t value;
    assert (lh_obj_uint (object, "size", &value) && value == 11);
    lh_reply_destroy (&reply);
    reply = s_test_call (client, "head", s_test_key ("docs/a.txt", 10, 0));
    assert (lh_reply_status (reply) == 200);
    const char *text;
    size_t size;
    assert (lh_obj_str (lh_reply_object (reply), "etag", &text, &size) && memcmp (text, etag, 64) == 0);
    lh_reply_destroy (&reply);
    reply = s_test_call (client, "get", s_test_key ("docs/none", 9, 0));
    assert (lh_reply_status (reply) == 404);
    lh_reply_destroy (&reply);

    //  Conditional puts, both ways
    assert (s_test_put (client, "docs/a.txt", "x", "if_none_match", "*", NULL) == 412);
    assert (s_test_put (client, "docs/b.txt", "b", "if_none_match", "*", other) == 200);
    assert (s_test_put (client, "docs/a.txt", "v2", "if_match", other, NULL) == 412);
    assert (s_test_put (client, "docs/a.txt", "v2", "if_match", etag, NULL) == 200);
    assert (s_test_put (client, "docs/a.txt", "v3", "if_match", etag, NULL) == 412);

    //  Caps: default, and per prefix (longest match)
    char blob [2001];
    memset (blob, 'z', 2000);
    blob [2000] = 0;
    blob [1001] = 0;
    assert (s_test_put (client, "docs/big", blob, NULL, NULL, NULL) == 413);
    assert (s_test_put (client, "_vectors/ok", blob, NULL, NULL, NULL) == 200);
    blob [1001] = 'z';
    assert (s_test_put (client, "_vectors/two", blob, NULL, NULL, NULL) == 200);

    //  Every 413 names the setting that raises it: storaged/cap_default,
    //  storaged/caps, ingest/max_bytes (ingest sources, and 4 times it for
    //  the tables built from them)
    struct {
        const char *key;
        uint64_t size;
        uint32_t status;
        const char *setting;
    } caps [] = {
        { "docs/x",                1001, 413, "(raise storaged/cap_default, or give" },
        { "big/x",                 3001, 413, "(raise it in storaged/caps)" },
        { "big/x",                 3000, 200, NULL },
        { LH_INGEST_PREFIX "x.csv", 1501, 413, "(raise ingest/max_bytes)" },
        { LH_INGEST_PREFIX "x.csv", 1500, 200, NULL },
        { LH_INGEST_TABLE_PREFIX "t/f/e.sqlite", 6001, 413, "(raise ingest/max_bytes: tables" },
        { LH_INGEST_TABLE_PREFIX "t/f/e.sqlite", 6000, 200, NULL },
    };
    //  ... checked by upload_begin against a declared size, before any
    //  part; in a dry run (every third case here) nothing is begun
    for (size_t index = 0; index < sizeof (caps) / sizeof (caps [0]); index++) {
        bool dry_run = index % 3 == 2;
        pack = s_test_key (caps [index].key, strlen (caps [index].key), 1 + dry_run);
        lh_pack_kv_uint (pack, "size", caps [index].size);
        if (dry_run)
            lh_pack_kv_bool (pack, "dry_run", true);
        reply = s_test_call (client, "upload_begin", pack);
        if (verbose)
            printf ("\n    begin %s size %" PRIu64 ": %u %s", caps [index].key, caps [index].size,
                    lh_reply_status (reply), lh_reply_reason (reply)? lh_reply_reason (reply): "");
        assert (lh_reply_status (reply) == caps [index].status);
        if (caps [index].setting)
            assert (strstr (lh_reply_reason (reply), caps [index].setting));
        else
        if (dry_run)
            assert (!lh_obj_get (lh_reply_object (reply), "upload_id"));
        else {
            char *begun = lh_obj_strdup (lh_obj_get (lh_reply_object (reply), "upload_id"));
            assert (begun);
            lh_reply_destroy (&reply);
            pack = lh_pack_new ();
            lh_pack_map (pack, 1);
            lh_pack_kv_str (pack, "upload_id", begun);
            reply = s_test_call (client, "upload_abort", pack);
            assert (lh_reply_status (reply) == 200);
            free (begun);
        }
        lh_reply_destroy (&reply);
    }
    pack = s_test_key ("big/x", 5, 1);
    lh_pack_kv_str (pack, "size", "many");
    reply = s_test_call (client, "upload_begin", pack);
    assert (lh_reply_status (reply) == 400);
    lh_reply_destroy (&reply);
    pack = s_test_key ("big/x", 5, 1);
    lh_pack_kv_str (pack, "dry_run", "yes");
    reply = s_test_call (client, "upload_begin", pack);
    assert (lh_reply_status (reply) == 400);
    lh_reply_destroy (&reply);
    //  Dry runs take no PUT slot: more of them than storaged/put_slots (4)
    for (size_t index = 0; index < 10; index++) {
        pack = s_test_key ("big/x", 5, 1);
        lh_pack_kv_bool (pack, "dry_run", true);
        reply = s_test_call (client, "upload_begin", pack);
        assert (lh_reply_status (reply) == 200);
        lh_reply_destroy (&reply);
    }
    assert (s_test_put (client, "docs/slot", "free", NULL, NULL, NULL) == 200);

    //  Multipart: parts in order, a cap crossed mid-upload aborts it
    pack = s_test_key ("big/file", 8, 0);
    reply = s_test_call (client, "upload_begin", pack);
    assert (lh_reply_status (reply) == 200);
    char *upload_id = lh_obj_strdup (lh_obj_get (lh_reply_object (reply), "upload_id"));
    assert (upload_id);
    lh_reply_destroy (&reply);
    for (uint32_t part = 1; part <= 3; part++) {
        pack = lh_pack_new ();
        lh_pack_map (pack, 3);
        lh_pack_kv_str (pack, "upload_id", upload_id);
        lh_pack_kv_uint (pack, "part", part);
        lh_pack_str (pack, "data");
        lh_pack_bin (pack, blob, 1000);
        reply = s_test_call (client, "upload_part", pack);
        assert (lh_reply_status (reply) == 200);
        lh_reply_destroy (&reply);
    }
    pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_str (pack, "upload_id", upload_id);
    reply = s_test_call (client, "upload_commit", pack);
    assert (lh_reply_status (reply) == 200);
    assert (lh_obj_uint (lh_reply_object (reply), "size", &value) && value == 3000);
    lh_reply_destroy (&reply);
    zstr_free (&upload_id);
    //  get_max bounds a get: read in ranges
    reply = s_test_call (client, "get", s_test_key ("big/file", 8, 0));
    assert (lh_reply_status (reply) == 200);
    assert (lh_obj_uint (lh_reply_object (reply), "length", &value) && value == 100);
    lh_reply_destroy (&reply);

    reply = s_test_call (client, "upload_begin", s_test_key ("docs/over", 9, 0));
    upload_id = lh_obj_strdup (lh_obj_get (lh_reply_object (reply), "upload_id"));
    lh_reply_destroy (&reply);
    for (uint32_t part = 1; part <= 2; part++) {
        pack = lh_pack_new ();
        lh_pack_map (pack, 3);
        lh_pack_kv_str (pack, "upload_id", upload_id);
        lh_pack_kv_uint (pack, "part", part);
        lh_pack_str (pack, "data");
        lh_pack_bin (pack, blob, 600);
        reply = s_test_call (client, "upload_part", pack);
        assert (lh_reply_status (reply) == (part == 1? 200: 413));
        lh_reply_destroy (&reply);
    }
    pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_str (pack, "upload_id", upload_id);
    reply = s_test_call (client, "upload_commit", pack);
    assert (lh_reply_status (reply) == 404);
    lh_reply_destroy (&reply);
    zstr_free (&upload_id);

    //  PUT slots: 4 open uploads, then a put gets 503 + retry_after_ms
    char *uploads [4];
    for (int index = 0; index < 4; index++) {
        reply = s_test_call (client, "upload_begin", s_test_key ("slots/x", 7, 0));
        assert (lh_reply_status (reply) == 200);
        uploads [index] = lh_obj_strdup (lh_obj_get (lh_reply_object (reply), "upload_id"));
        lh_reply_destroy (&reply);
    }
    pack = s_test_key ("slots/y", 7, 1);
    lh_pack_str (pack, "data");
    lh_pack_bin (pack, "y", 1);
    reply = s_test_call (client, "put", pack);
    assert (lh_reply_status (reply) == 503);
    const msgpack_object *error = lh_obj_get (lh_reply_object (reply), "error");
    assert (lh_obj_uint (error, "retry_after_ms", &value) && value == 250);
    lh_reply_destroy (&reply);
    for (int index = 0; index < 4; index++) {
        pack = lh_pack_new ();
        lh_pack_map (pack, 1);
        lh_pack_kv_str (pack, "upload_id", uploads [index]);
        reply = s_test_call (client, "upload_abort", pack);
        assert (lh_reply_status (reply) == 200);
        lh_reply_destroy (&reply);
        zstr_free (&uploads [index]);
    }
    assert (s_test_put (client, "slots/y", "y", NULL, NULL, NULL) == 200);

    //  list: paging with continuation, each key exactly once
    for (int index = 0; index < 25; index++) {
        char key [32];
        snprintf (key, sizeof (key), "page/%02d", index);
        assert (s_test_put (client, key, key, NULL, NULL, NULL) == 200);
    }
    char *next = NULL;
    int seen = 0, pages = 0;
    do {
        pack = lh_pack_new ();
        lh_pack_map (pack, next? 3: 2);
        lh_pack_kv_str (pack, "prefix", "page/");
        lh_pack_kv_uint (pack, "limit", 10);
        if (next)
            lh_pack_kv_str (pack, "continuation", next);
        reply = s_test_call (client, "list", pack);
        assert (lh_reply_status (reply) == 200);
        object = lh_reply_object (reply);
        const msgpack_object *keys = lh_obj_get (object, "keys");
        assert (keys && keys->type == MSGPACK_OBJECT_ARRAY);
        for (uint32_t index = 0; index < keys->via.array.size; index++) {
            char expect [32];
            snprintf (expect, sizeof (expect), "page/%02d", seen++);
            assert (lh_obj_str (&keys->via.array.ptr [index], "key", &text, &size));
            assert (size == strlen (expect) && memcmp (text, expect, size) == 0);
        }
        zstr_free (&next);
        next = lh_obj_strdup (lh_obj_get (object, "next"));
        pages++;
        lh_reply_destroy (&reply);
    } while (next);
    assert (seen == 25 && pages == 3);
    pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_uint (pack, "limit", 1001);
    reply = s_test_call (client, "list", pack);
    assert (lh_reply_status (reply) == 400);
    lh_reply_destroy (&reply);

    //  delete
    reply = s_test_call (client, "delete", s_test_key ("docs/b.txt", 10, 0));
    assert (lh_reply_status (reply) == 200);
    lh_reply_destroy (&reply);
    reply = s_test_call (client, "delete", s_test_key ("docs/b.txt", 10, 0));
    assert (lh_reply_status (reply) == 404);
    lh_reply_destroy (&reply);

    //  The ingest sources' cap is ingest/max_bytes alone: storaged/caps
    //  naming their prefix refuses the start
    lh_config_t *config = lh_config_load (NULL, NULL);
    assert (config);
    char *elsewhere = zsys_sprintf ("%s/elsewhere", lh_testbus_dir (bus));
    assert (lh_config_set (config, "storaged/dir", elsewhere) == 0);
    assert (lh_config_set (config, "ingest/max_bytes", "1500") == 0);
    const char *why = NULL;
    assert (lh_config_set (config, "storaged/caps", "uploads/=100," LH_INGEST_PREFIX "=5") == 0);
    void *state = s_state_new (config, NULL, &why);
    assert (!state && why && strstr (why, "ingest/max_bytes"));
    assert (lh_config_set (config, "storaged/caps", LH_INGEST_TABLE_PREFIX "=7") == 0);
    state = s_state_new (config, NULL, &why);
    assert (state);
    const char *prefix, *hint;
    assert (s_cap_for ((s_state_t *) state, LH_INGEST_TABLE_PREFIX "x", &prefix, &hint) == 7);
    assert (s_cap_for ((s_state_t *) state, LH_INGEST_PREFIX "x", &prefix, &hint) == 1500);
    s_state_destroy (&state);
    lh_config_destroy (&config);
    zstr_free (&elsewhere);
    lh_testbus_destroy (&bus);
    printf ("OK\n");
}
