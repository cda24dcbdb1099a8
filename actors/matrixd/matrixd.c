/*  =========================================================================
    matrixd - retrieval across several corpora, and what worked before;
    see matrixd.h

    A search embeds its query_text once (embedd), then sends one
    vectord.search per corpus, and the playbook search when asked, all in
    flight together (lh_request_call_all), so the answer takes as long as
    the slowest corpus, not their sum. Hits point into the replies' decoded
    bodies; they are merged, boosted and injected from the playbook hits,
    sorted, filtered by exclude_ids and cut to k, then packed.
    =========================================================================
*/

#include "matrixd.h"
#include "lh_relevance.h"
#include "lh_log.h"
#include <sodium.h>

#define S_NAME              "matrixd"
#define S_NAME_MAX          64          //  longest corpus name (vectord's rule)
#define S_ID_MAX            256         //  longest id (vectord's rule)
#define S_DIM_MAX           65536       //  most components of a given vector
#define S_MODEL_MAX         256         //  longest model name
#define S_TAGS_MAX          64          //  most tags of a playbook entry
#define S_TAG_MAX           256         //  longest tag
#define S_EVENT_IDS         100         //  most ids a playbook.bulk event lists
#define S_PATH_MAX          4096        //  longest relevance path
#define S_PATH_TEXT         "4096"      //  the same, in messages
#define S_SYMBOLS_MAX       10000       //  most symbols of a focus
#define S_K_DEFAULT         10          //  k and playbook_top_k when not given
#define S_MAX_DISTANCE      0.5         //  playbook_max_distance default
#define S_MAX_INJECT        0.20        //  playbook_max_inject_distance default
#define S_THRESHOLD         0.3         //  relevance threshold default
#define S_BOOSTED_MODE      "codereview_lakehouse"
#define S_ISOLATED_MODE     "codereview_isolation"

typedef struct {
    uint32_t timeout_ms;                //  deadline of each embedd / vectord call
    char *playbook_corpus;              //  default playbook index
    size_t corpora_max;                 //  most corpora in a search
    size_t k_max;                       //  largest k, per_corpus_k, playbook_top_k
    size_t exclude_max;                 //  most exclude_ids
    size_t bulk_max;                    //  most entries in playbook_bulk
    size_t embed_batch;                 //  texts per embedd call
    size_t text_max;                    //  longest query_text (embedd/text_max)
    size_t chunks_max;                  //  most relevance chunks
    zlistx_t *weak_models;              //  models/weak_models (char *)
} s_state_t;

//  One search's parameters
typedef struct {
    const msgpack_object *corpora;      //  corpus names (str items)
    int64_t k;                          //  hits returned
    int64_t per_corpus_k;               //  hits asked of each corpus
    int64_t ef;                         //  search ef, 0 = the index's own
    int64_t playbook_top_k;             //  playbook hits asked
    const msgpack_object *filter;       //  metadata filter, or NULL
    const msgpack_object *exclude;      //  ids left out, or NULL
    bool use_playbook;                  //  apply playbook memory
    char playbook [S_NAME_MAX + 1];     //  the playbook index
    double max_distance;                //  boost from entries within this
    double max_inject;                  //  inject entries within this
    char *model;                        //  embedding model, or NULL
    float *vector;                      //  the query vector
    size_t dim;                         //  its components
} s_search_t;

//  One merged hit (strings and objects borrowed from a reply)
typedef struct {
    const char *id;                     //  its id
    size_t id_size;                     //  id length
    size_t corpus;                      //  index into the search's corpora
    double distance;                    //  after any boost
    double original;                    //  as the corpus gave it
    double playbook_distance;           //  of the entry that boosted or injected it
    const msgpack_object *metadata;     //  its metadata, or NULL
    size_t order;                       //  tie-break: corpus order, then rank
    bool boosted;                       //  distance lowered by a playbook entry
    bool injected;                      //  added from a playbook entry
} s_hit_t;

//  One playbook hit: an entry near the query (borrowed from the reply)
typedef struct {
    const char *answer_id;              //  the answer's id
    size_t answer_id_size;              //  its length
    const char *answer_corpus;          //  the answer's corpus
    size_t answer_corpus_size;          //  its length
    double score;                       //  0..1
    double distance;                    //  from the query
    const msgpack_object *metadata;     //  the whole entry
} s_entry_t;

//  One playbook entry to record
typedef struct {
    const msgpack_object *query_text;   //  str
    const char *answer_id;              //  borrowed
    size_t answer_id_size;              //  its length
    const char *answer_corpus;          //  borrowed
    size_t answer_corpus_size;          //  its length
    double score;                       //  0..1
    const msgpack_object *tags;         //  array of str, or NULL
    char id [crypto_hash_sha256_BYTES * 2 + 1];     //  the playbook id
    bool superseded;                    //  a later entry has the same id
} s_record_t;


//  --------------------------------------------------------------------------
//  The playbook id of a triple: hex SHA-256 of the three strings joined by
//  0x1f

void
lh_matrixd_playbook_id (const char *query_text, size_t query_size,
                        const char *answer_id, size_t answer_size,
                        const char *answer_corpus, size_t corpus_size, char *id)
{
    crypto_hash_sha256_state state;
    unsigned char digest [crypto_hash_sha256_BYTES];
    const unsigned char separator = 0x1f;
    crypto_hash_sha256_init (&state);
    crypto_hash_sha256_update (&state, (const unsigned char *) query_text, query_size);
    crypto_hash_sha256_update (&state, &separator, 1);
    crypto_hash_sha256_update (&state, (const unsigned char *) answer_id, answer_size);
    crypto_hash_sha256_update (&state, &separator, 1);
    crypto_hash_sha256_update (&state, (const unsigned char *) answer_corpus, corpus_size);
    crypto_hash_sha256_final (&state, digest);
    sodium_bin2hex (id, crypto_hash_sha256_BYTES * 2 + 1, digest, sizeof (digest));
}


//  --------------------------------------------------------------------------
//  Is this a valid corpus (vectord index) name: 1..64 of A-Z a-z 0-9 _ . -,
//  not starting with '.'?

static bool
s_name_valid (const char *text, size_t size)
{
    bool valid = size >= 1 && size <= S_NAME_MAX && text [0] != '.';
    for (size_t index = 0; valid && index < size; index++)
        valid = isalnum ((unsigned char) text [index]) || strchr ("_.-", text [index]);
    return valid;
}


//  --------------------------------------------------------------------------
//  Read an optional corpus name field into name (S_NAME_MAX + 1 bytes,
//  left as it is when absent). 0, or -1 after answering 400.

static int
s_read_name (lh_request_t *request, const msgpack_object *map, const char *field,
             char *name)
{
    const char *text = NULL;
    size_t size = 0;
    if (lh_request_str (request, map, field, 0, 0, &text, &size))
        return -1;
    if (!text)
        return 0;
    if (!s_name_valid (text, size))
        return lh_request_bad (request, field, "'%s' must be 1..64 characters of "
                               "A-Z a-z 0-9 _ . - not starting with '.'", field);
    memcpy (name, text, size);
    name [size] = 0;
    return 0;
}


//  --------------------------------------------------------------------------
//  Read an optional model name (a fresh copy into *model_p). 0 or -1.

static int
s_read_model (lh_request_t *request, const msgpack_object *map, char **model_p)
{
    return lh_request_strdup (request, map, "model", LH_FIELD_NONEMPTY, S_MODEL_MAX, model_p);
}


//  --------------------------------------------------------------------------
//  Read "vector": an array of numbers, or a bin of little-endian float32.
//  Sets *vector_p (fresh, caller frees) and *dim, or leaves *vector_p NULL
//  when absent. 0, or -1 after answering 400.

static int
s_read_vector (lh_request_t *request, const msgpack_object *map, float **vector_p, size_t *dim)
{
    const msgpack_object *item = lh_obj_get (map, "vector");
    if (!item || item->type == MSGPACK_OBJECT_NIL)
        return 0;
    size_t count = item->type == MSGPACK_OBJECT_ARRAY? item->via.array.size:
                   item->type == MSGPACK_OBJECT_BIN? item->via.bin.size / sizeof (float): 0;
    if ((item->type != MSGPACK_OBJECT_ARRAY && item->type != MSGPACK_OBJECT_BIN)
    ||  (item->type == MSGPACK_OBJECT_BIN && item->via.bin.size % sizeof (float))
    ||  count == 0 || count > S_DIM_MAX)
        return lh_request_bad (request, "vector", "'vector' must be an array of 1..%d numbers "
                               "(or a bin of little-endian float32)", S_DIM_MAX);
    float *vector = (float *) malloc (count * sizeof (float));
    assert (vector);
    if (item->type == MSGPACK_OBJECT_BIN)
        memcpy (vector, item->via.bin.ptr, count * sizeof (float));
    for (size_t index = 0; item->type == MSGPACK_OBJECT_ARRAY && index < count; index++) {
        const msgpack_object *value = &item->via.array.ptr [index];
        if (value->type == MSGPACK_OBJECT_FLOAT32 || value->type == MSGPACK_OBJECT_FLOAT64)
            vector [index] = (float) value->via.f64;
        else
        if (value->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            vector [index] = (float) value->via.u64;
        else
        if (value->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            vector [index] = (float) value->via.i64;
        else {
            free (vector);
            return lh_request_bad (request, "vector", "'vector' component %zu is not a number", index);
        }
    }
    for (size_t index = 0; index < count; index++)
        if (!isfinite (vector [index])) {
            free (vector);
            return lh_request_bad (request, "vector", "'vector' component %zu is NaN or infinite "
                                   "(as float32)", index);
        }
    *vector_p = vector;
    *dim = count;
    return 0;
}


//  --------------------------------------------------------------------------
//  A reply's error kind into kind (size bytes), "" if none

static void
s_reply_kind (lh_reply_t *reply, char *kind, size_t size)
{
    const char *text = NULL;
    size_t length = 0;
    kind [0] = 0;
    if (lh_obj_str (lh_obj_get (lh_reply_object (reply), "error"), "kind", &text, &length)
    &&  length < size) {
        memcpy (kind, text, length);
        kind [length] = 0;
    }
}


//  --------------------------------------------------------------------------
//  Answer for embedd's refusal: its own 4xx (naming model or the text
//  field), or 503/500 for a failed dependency. Returns -1, always.

static int
s_embedd_failed (lh_request_t *request, lh_reply_t *reply, const char *field)
{
    uint32_t status = lh_reply_status (reply);
    if (status >= 400 && status < 500 && status != LH_ST_TOO_MANY) {
        char kind [64];
        s_reply_kind (reply, kind, sizeof (kind));
        const char *reason = lh_reply_reason (reply);
        return lh_request_fail_field (request, status, *kind? kind: NULL,
                                      streq (kind, "no_such_model")? "model": field,
                                      "embedd refused the text: %s",
                                      reason? reason: "no reason given");
    }
    return lh_request_fail_dependency (request, reply, "embedd", "the embedding");
}


//  --------------------------------------------------------------------------
//  Embed count texts (str objects) through embedd, in calls of at most
//  embed_batch texts, all in flight together. Returns a fresh count x dim
//  array and sets *dim, or NULL after answering.

static float *
s_embed (s_state_t *self, lh_request_t *request, const msgpack_object **texts,
         size_t count, const char *model, const char *field, size_t *dim)
{
    size_t batches = (count + self->embed_batch - 1) / self->embed_batch;
    lh_call_t *calls = (lh_call_t *) calloc (batches, sizeof (lh_call_t));
    lh_pack_t **packs = (lh_pack_t **) calloc (batches, sizeof (lh_pack_t *));
    assert (calls && packs);
    for (size_t batch = 0; batch < batches; batch++) {
        size_t first = batch * self->embed_batch;
        size_t size = count - first < self->embed_batch? count - first: self->embed_batch;
        packs [batch] = lh_pack_new ();
        lh_pack_open_map (packs [batch]);
        lh_pack_str (packs [batch], "texts");
        lh_pack_open_array (packs [batch]);
        for (size_t index = first; index < first + size; index++)
            lh_pack_object (packs [batch], texts [index]);
        lh_pack_close (packs [batch]);
        if (model)
            lh_pack_kv_str (packs [batch], "model", model);
        lh_pack_close (packs [batch]);
        calls [batch] = (lh_call_t) { .svc = "embedd", .op = "embed" };
        calls [batch].body = lh_pack_data (packs [batch], &calls [batch].size);
    }
    lh_request_call_all (request, calls, batches, self->timeout_ms);
    float *vectors = NULL;
    *dim = 0;
    for (size_t batch = 0; batch < batches; batch++) {
        lh_reply_t *reply = calls [batch].reply;
        if (lh_reply_status (reply) != LH_ST_OK) {
            s_embedd_failed (request, reply, field);
            goto failed;
        }
        size_t first = batch * self->embed_batch;
        const msgpack_object *list = lh_obj_get (lh_reply_object (reply), "vectors");
        size_t size = count - first < self->embed_batch? count - first: self->embed_batch;
        bool valid = list && list->type == MSGPACK_OBJECT_ARRAY && list->via.array.size == size;
        for (size_t index = 0; valid && index < size; index++) {
            const msgpack_object *vector = &list->via.array.ptr [index];
            valid = vector->type == MSGPACK_OBJECT_ARRAY && vector->via.array.size > 0
                 && (*dim == 0 || vector->via.array.size == *dim);
            if (valid && !vectors) {
                *dim = vector->via.array.size;
                vectors = (float *) malloc (count * *dim * sizeof (float));
                assert (vectors);
            }
            for (size_t component = 0; valid && component < *dim; component++) {
                const msgpack_object *value = &vector->via.array.ptr [component];
                valid = value->type == MSGPACK_OBJECT_FLOAT32 || value->type == MSGPACK_OBJECT_FLOAT64;
                if (valid)
                    vectors [(first + index) * *dim + component] = (float) value->via.f64;
            }
        }
        if (!valid) {
            lh_request_fail (request, LH_ST_INTERNAL, "dependency_failed",
                             "embedd answered vectors of an unexpected shape");
            goto failed;
        }
    }
    for (size_t batch = 0; batch < batches; batch++) {
        lh_reply_destroy (&calls [batch].reply);
        lh_pack_destroy (&packs [batch]);
    }
    free (calls);
    free (packs);
    return vectors;
failed:
    for (size_t batch = 0; batch < batches; batch++) {
        lh_reply_destroy (&calls [batch].reply);
        lh_pack_destroy (&packs [batch]);
    }
    free (calls);
    free (packs);
    free (vectors);
    *dim = 0;
    return NULL;
}


//  --------------------------------------------------------------------------
//  Read a search's parameters (everything but the vector). 0 or -1.

static int
s_search_read (s_state_t *self, lh_request_t *request, const msgpack_object *body,
               s_search_t *search)
{
    search->k = S_K_DEFAULT;
    search->playbook_top_k = S_K_DEFAULT;
    search->max_distance = S_MAX_DISTANCE;
    search->max_inject = S_MAX_INJECT;
    snprintf (search->playbook, sizeof (search->playbook), "%s", self->playbook_corpus);
    if (lh_request_array (request, body, "corpora", LH_FIELD_REQUIRED | LH_FIELD_NONEMPTY,
                          (uint32_t) self->corpora_max, &search->corpora)
    ||  lh_request_int (request, body, "k", 0, 1, (int64_t) self->k_max, &search->k))
        return -1;
    search->per_corpus_k = search->k;
    if (lh_request_int (request, body, "per_corpus_k", 0, 1, (int64_t) self->k_max, &search->per_corpus_k)
    ||  lh_request_int (request, body, "ef", 0, 1, (int64_t) self->k_max, &search->ef)
    ||  lh_request_submap (request, body, "filter", 0, &search->filter)
    ||  lh_request_array (request, body, "exclude_ids", 0, (uint32_t) self->exclude_max,
                          &search->exclude)
    ||  lh_request_bool (request, body, "use_playbook", 0, &search->use_playbook)
    ||  s_read_name (request, body, "playbook_corpus", search->playbook)
    ||  lh_request_int (request, body, "playbook_top_k", 0, 1, (int64_t) self->k_max,
                        &search->playbook_top_k)
    ||  lh_request_double (request, body, "playbook_max_distance", 0, 0.0, 2.0,
                           &search->max_distance)
    ||  lh_request_double (request, body, "playbook_max_inject_distance", 0, 0.0, 2.0,
                           &search->max_inject)
    ||  s_read_model (request, body, &search->model))
        return -1;
    const msgpack_object *corpora = search->corpora;
    for (uint32_t index = 0; index < corpora->via.array.size; index++) {
        const msgpack_object *name = &corpora->via.array.ptr [index];
        if (name->type != MSGPACK_OBJECT_STR || !s_name_valid (name->via.str.ptr, name->via.str.size))
            return lh_request_bad (request, "corpora", "corpora[%u] must be an index name: "
                                   "1..64 characters of A-Z a-z 0-9 _ . - not starting with '.'",
                                   index);
        for (uint32_t other = 0; other < index; other++) {
            const msgpack_object *seen = &corpora->via.array.ptr [other];
            if (seen->via.str.size == name->via.str.size
            &&  memcmp (seen->via.str.ptr, name->via.str.ptr, name->via.str.size) == 0)
                return lh_request_bad (request, "corpora", "corpora[%u] repeats '%.*s'", index,
                                       (int) name->via.str.size, name->via.str.ptr);
        }
    }
    for (uint32_t index = 0; search->exclude && index < search->exclude->via.array.size; index++) {
        const msgpack_object *id = &search->exclude->via.array.ptr [index];
        if (id->type != MSGPACK_OBJECT_STR || id->via.str.size == 0 || id->via.str.size > S_ID_MAX)
            return lh_request_bad (request, "exclude_ids", "exclude_ids[%u] must be an id: "
                                   "a string of 1..%d bytes", index, S_ID_MAX);
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Pack a vectord.search body for one index

static lh_pack_t *
s_search_pack (s_search_t *search, const char *name, size_t name_size, int64_t k,
               bool narrowed)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_str (pack, "name");
    lh_pack_strn (pack, name, name_size);
    lh_pack_str (pack, "vector");
    lh_pack_bin (pack, search->vector, search->dim * sizeof (float));
    lh_pack_kv_int (pack, "k", k);
    if (search->ef)
        lh_pack_kv_int (pack, "ef", search->ef);
    if (narrowed && search->exclude) {
        lh_pack_str (pack, "exclude_ids");
        lh_pack_object (pack, search->exclude);
    }
    if (narrowed && search->filter) {
        lh_pack_str (pack, "filter");
        lh_pack_object (pack, search->filter);
    }
    lh_pack_close (pack);
    return pack;
}


//  --------------------------------------------------------------------------
//  Answer a corpus whose dim is not the query's, asking vectord for the
//  corpus's dim. Returns -1, always.

static int
s_dim_mismatch (s_state_t *self, lh_request_t *request, s_search_t *search,
                const char *name, size_t size, const char *field)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_str (pack, "name");
    lh_pack_strn (pack, name, size);
    lh_pack_close (pack);
    lh_reply_t *reply = NULL;
    lh_request_call_pack (request, "vectord", "info", &pack, self->timeout_ms, &reply);
    uint64_t dim = 0;
    if (lh_reply_status (reply) == LH_ST_OK)
        lh_obj_uint (lh_reply_object (reply), "dim", &dim);
    lh_reply_destroy (&reply);
    if (dim)
        return lh_request_fail_field (request, LH_ST_BAD_REQUEST, "dim_mismatch", field,
                                      "corpus '%.*s' has dim %" PRIu64 "; the query vector "
                                      "has %zu components", (int) size, name, dim, search->dim);
    return lh_request_fail_field (request, LH_ST_BAD_REQUEST, "dim_mismatch", field,
                                  "corpus '%.*s' has another dim than the query vector's %zu",
                                  (int) size, name, search->dim);
}


//  --------------------------------------------------------------------------
//  Check the replies of the corpus searches (and the playbook's, last when
//  asked). 0 when all can be used, -1 after answering: 404 naming every
//  missing corpus, 400 naming a corpus of another dim, else the first
//  refusal or failure.

static int
s_search_check (s_state_t *self, lh_request_t *request, s_search_t *search,
                lh_call_t *calls, size_t corpora)
{
    char kind [64];
    char missing [512] = "";
    size_t missed = 0;
    for (size_t index = 0; index < corpora; index++) {
        s_reply_kind (calls [index].reply, kind, sizeof (kind));
        if (lh_reply_status (calls [index].reply) == LH_ST_NOT_FOUND && streq (kind, "no_such_index")) {
            const msgpack_object *name = &search->corpora->via.array.ptr [index];
            size_t used = strlen (missing);
            if (used < sizeof (missing) - 80)
                snprintf (missing + used, sizeof (missing) - used, "%s'%.*s'", missed? ", ": "",
                          (int) name->via.str.size, name->via.str.ptr);
            missed++;
        }
    }
    if (missed)
        return lh_request_fail_field (request, LH_ST_NOT_FOUND, "corpus_not_found", "corpora",
                                      "no corpus named %s (vectord has no such index)", missing);
    for (size_t index = 0; index < corpora + (search->use_playbook? 1: 0); index++) {
        lh_reply_t *reply = calls [index].reply;
        uint32_t status = lh_reply_status (reply);
        bool playbook = index == corpora;
        const char *name = playbook? search->playbook: search->corpora->via.array.ptr [index].via.str.ptr;
        size_t size = playbook? strlen (name): search->corpora->via.array.ptr [index].via.str.size;
        const char *field = playbook? "playbook_corpus": "corpora";
        s_reply_kind (reply, kind, sizeof (kind));
        if (status == LH_ST_OK) {
            const msgpack_object *hits = lh_reply_object (reply);
            if (!hits || hits->type != MSGPACK_OBJECT_ARRAY)
                return lh_request_fail (request, LH_ST_INTERNAL, "dependency_failed",
                                        "vectord answered the search of '%.*s' with no hit list",
                                        (int) size, name);
            continue;
        }
        if (playbook && status == LH_ST_NOT_FOUND && streq (kind, "no_such_index"))
            continue;                   //  no playbook yet: nothing to apply
        if (status == LH_ST_BAD_REQUEST && streq (kind, "dim_mismatch"))
            return s_dim_mismatch (self, request, search, name, size, field);
        if (status >= 400 && status < 500 && status != LH_ST_TOO_MANY) {
            const char *reason = lh_reply_reason (reply);
            return lh_request_fail_field (request, status, *kind? kind: NULL, field,
                                          "corpus '%.*s' refused the search: %s", (int) size, name,
                                          reason? reason: "no reason given");
        }
        char what [128];
        snprintf (what, sizeof (what), "the search of '%.*s'", (int) size, name);
        return lh_request_fail_dependency (request, reply, "vectord", what);
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Order hits by distance, then corpus order and rank

static int
s_hit_compare (const void *a, const void *b)
{
    const s_hit_t *left = (const s_hit_t *) a, *right = (const s_hit_t *) b;
    if (left->distance != right->distance)
        return left->distance < right->distance? -1: 1;
    return left->order < right->order? -1: left->order > right->order? 1: 0;
}


//  --------------------------------------------------------------------------
//  The key of an (id, corpus) pair, for the hash tables: corpus 0x1f id

static char *
s_key (const char *corpus, size_t corpus_size, const char *id, size_t id_size)
{
    char *key = (char *) malloc (corpus_size + id_size + 2);
    assert (key);
    memcpy (key, corpus, corpus_size);
    key [corpus_size] = 0x1f;
    memcpy (key + corpus_size + 1, id, id_size);
    key [corpus_size + id_size + 1] = 0;
    return key;
}


//  --------------------------------------------------------------------------
//  Read the playbook hits into entries (at most count); returns how many
//  are within max_distance, nearest first (as vectord answered)

static size_t
s_entries_read (const msgpack_object *hits, double max_distance, s_entry_t *entries,
                size_t count)
{
    size_t found = 0;
    for (uint32_t index = 0; hits && index < hits->via.array.size && found < count; index++) {
        const msgpack_object *hit = &hits->via.array.ptr [index];
        const msgpack_object *metadata = lh_obj_get (hit, "metadata");
        s_entry_t entry = { .metadata = metadata };
        if (!lh_obj_double (hit, "distance", &entry.distance) || entry.distance > max_distance
        ||  !lh_obj_str (metadata, "answer_id", &entry.answer_id, &entry.answer_id_size)
        ||  !lh_obj_str (metadata, "answer_corpus", &entry.answer_corpus, &entry.answer_corpus_size)
        ||  !lh_obj_double (metadata, "score", &entry.score))
            continue;                   //  not an entry we wrote: ignored
        entry.score = entry.score < 0? 0: entry.score > 1? 1: entry.score;
        entries [found++] = entry;
    }
    return found;
}


//  --------------------------------------------------------------------------
//  Apply the playbook: boost hits matching an entry within max_distance
//  (the nearest entry decides), inject entries within max_inject whose
//  answer is missing. hits has room for *count + the entries.

static void
s_playbook_apply (s_search_t *search, const msgpack_object *playbook_hits,
                  s_hit_t *hits, size_t *count)
{
    size_t capacity = playbook_hits? playbook_hits->via.array.size: 0;
    if (capacity == 0)
        return;
    s_entry_t *entries = (s_entry_t *) calloc (capacity, sizeof (s_entry_t));
    assert (entries);
    size_t found = s_entries_read (playbook_hits, search->max_distance, entries, capacity);
    //  Nearest entry per (answer_corpus, answer_id)
    zhashx_t *nearest = zhashx_new ();
    for (size_t index = 0; index < found; index++) {
        char *key = s_key (entries [index].answer_corpus, entries [index].answer_corpus_size,
                           entries [index].answer_id, entries [index].answer_id_size);
        s_entry_t *seen = (s_entry_t *) zhashx_lookup (nearest, key);
        if (!seen || entries [index].distance < seen->distance)
            zhashx_update (nearest, key, &entries [index]);
        free (key);
    }
    //  Boost: distance x (1 - 0.5 x score), never below x 0.5
    zhashx_t *present = zhashx_new ();
    for (size_t index = 0; index < *count; index++) {
        s_hit_t *hit = &hits [index];
        const msgpack_object *corpus = &search->corpora->via.array.ptr [hit->corpus];
        char *key = s_key (corpus->via.str.ptr, corpus->via.str.size, hit->id, hit->id_size);
        s_entry_t *entry = (s_entry_t *) zhashx_lookup (nearest, key);
        double factor = entry? 1.0 - 0.5 * entry->score: 1.0;
        if (factor < 0.5)
            factor = 0.5;
        if (factor < 1.0) {
            hit->distance = hit->original * factor;
            hit->boosted = true;
            hit->playbook_distance = entry->distance;
        }
        zhashx_insert (present, key, hit);
        free (key);
    }
    //  Inject entries within max_inject whose answer is missing: not with
    //  a filter (the answer's metadata cannot be checked against it), nor
    //  an entry of score 0 (one that would not boost either)
    for (size_t index = 0; index < found && !search->filter; index++) {
        s_entry_t *entry = &entries [index];
        if (entry->distance > search->max_inject || entry->score <= 0)
            continue;
        size_t corpus = 0;
        const msgpack_object *names = search->corpora;
        while (corpus < names->via.array.size
           && !(names->via.array.ptr [corpus].via.str.size == entry->answer_corpus_size
             && memcmp (names->via.array.ptr [corpus].via.str.ptr, entry->answer_corpus,
                        entry->answer_corpus_size) == 0))
            corpus++;
        if (corpus == names->via.array.size)
            continue;                   //  a corpus not searched
        char *key = s_key (entry->answer_corpus, entry->answer_corpus_size,
                           entry->answer_id, entry->answer_id_size);
        if (!zhashx_lookup (present, key)) {
            //  At the entry's distance (float rounding can make an exact
            //  match a hair below 0)
            double distance = entry->distance > 0? entry->distance: 0;
            s_hit_t *hit = &hits [(*count)++];
            *hit = (s_hit_t) { .id = entry->answer_id, .id_size = entry->answer_id_size,
                               .corpus = corpus, .distance = distance,
                               .original = distance, .playbook_distance = distance,
                               .metadata = entry->metadata, .order = SIZE_MAX / 2 + index,
                               .injected = true };
            zhashx_insert (present, key, hit);
        }
        free (key);
    }
    zhashx_destroy (&present);
    zhashx_destroy (&nearest);
    free (entries);
}


//  --------------------------------------------------------------------------
//  The set of exclude_ids (NUL-terminated keys), or NULL when none

static zhashx_t *
s_excluded_new (s_search_t *search)
{
    const msgpack_object *exclude = search->exclude;
    if (!exclude || exclude->via.array.size == 0)
        return NULL;
    zhashx_t *set = zhashx_new ();
    for (uint32_t index = 0; index < exclude->via.array.size; index++) {
        char *id = strndup (exclude->via.array.ptr [index].via.str.ptr,
                            exclude->via.array.ptr [index].via.str.size);
        zhashx_update (set, id, (void *) 1);
        free (id);
    }
    return set;
}


//  --------------------------------------------------------------------------
//  Is this id in the set of exclude_ids?

static bool
s_excluded (zhashx_t *set, const char *id, size_t size)
{
    char key [S_ID_MAX + 1];
    if (!set || size > S_ID_MAX)
        return false;
    memcpy (key, id, size);
    key [size] = 0;
    return zhashx_lookup (set, key) != NULL;
}


//  --------------------------------------------------------------------------
//  Merge the corpus hits (and the playbook's), sort, exclude, cut to k and
//  answer

static void
s_search_answer (lh_request_t *request, s_search_t *search, lh_call_t *calls, size_t corpora)
{
    size_t capacity = 0;
    for (size_t index = 0; index < corpora + (search->use_playbook? 1: 0); index++) {
        const msgpack_object *list = lh_reply_status (calls [index].reply) == LH_ST_OK?
                                     lh_reply_object (calls [index].reply): NULL;
        capacity += list? list->via.array.size: 0;
    }
    s_hit_t *hits = (s_hit_t *) calloc (capacity + 1, sizeof (s_hit_t));
    assert (hits);
    size_t count = 0;
    for (size_t corpus = 0; corpus < corpora; corpus++) {
        const msgpack_object *list = lh_reply_object (calls [corpus].reply);
        for (uint32_t rank = 0; rank < list->via.array.size; rank++) {
            const msgpack_object *item = &list->via.array.ptr [rank];
            s_hit_t hit = { .corpus = corpus, .metadata = lh_obj_get (item, "metadata"),
                            .order = corpus * (size_t) UINT32_MAX + rank };
            if (lh_obj_str (item, "id", &hit.id, &hit.id_size)
            &&  lh_obj_double (item, "distance", &hit.distance)) {
                hit.original = hit.distance;
                hits [count++] = hit;
            }
        }
    }
    if (search->use_playbook && lh_reply_status (calls [corpora].reply) == LH_ST_OK)
        s_playbook_apply (search, lh_reply_object (calls [corpora].reply), hits, &count);
    qsort (hits, count, sizeof (s_hit_t), s_hit_compare);

    zhashx_t *excluded = s_excluded_new (search);
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_str (pack, "hits");
    lh_pack_open_array (pack);
    int64_t returned = 0;
    for (size_t index = 0; index < count && returned < search->k; index++) {
        s_hit_t *hit = &hits [index];
        if (s_excluded (excluded, hit->id, hit->id_size))
            continue;
        const msgpack_object *corpus = &search->corpora->via.array.ptr [hit->corpus];
        lh_pack_open_map (pack);
        lh_pack_str (pack, "id");
        lh_pack_strn (pack, hit->id, hit->id_size);
        lh_pack_str (pack, "corpus");
        lh_pack_strn (pack, corpus->via.str.ptr, corpus->via.str.size);
        lh_pack_kv_double (pack, "distance", hit->distance);
        lh_pack_str (pack, "metadata");
        if (hit->metadata && hit->metadata->type == MSGPACK_OBJECT_MAP)
            lh_pack_object (pack, hit->metadata);
        else
            lh_pack_map (pack, 0);
        if (hit->boosted) {
            lh_pack_kv_bool (pack, "boosted", true);
            lh_pack_kv_double (pack, "original_distance", hit->original);
        }
        if (hit->injected)
            lh_pack_kv_bool (pack, "injected", true);
        if (hit->boosted || hit->injected)
            lh_pack_kv_double (pack, "playbook_distance", hit->playbook_distance);
        lh_pack_close (pack);
        returned++;
    }
    lh_pack_close (pack);
    lh_pack_kv_int (pack, "count", returned);
    lh_pack_close (pack);
    lh_request_reply_pack (request, LH_ST_OK, &pack);
    zhashx_destroy (&excluded);
    free (hits);
}


//  --------------------------------------------------------------------------
//  search {query_text | vector, corpora, k?, per_corpus_k?, ef?, filter?,
//  exclude_ids?, model?, use_playbook?, playbook_corpus?, playbook_top_k?,
//  playbook_max_distance?, playbook_max_inject_distance?}

static void
s_search (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    s_search_t search = { 0 };
    const msgpack_object *body = lh_request_map (request);
    const msgpack_object *query_text = NULL;
    if (!body
    ||  s_search_read (self, request, body, &search)
    ||  s_read_vector (request, body, &search.vector, &search.dim))
        goto done;
    const char *text = NULL;
    size_t text_size = 0;
    if (lh_request_str (request, body, "query_text", LH_FIELD_NONEMPTY | LH_FIELD_LIMIT_413,
                        self->text_max, &text, &text_size))
        goto done;
    if (text && search.vector) {
        lh_request_bad (request, "vector", "give query_text or vector, not both");
        goto done;
    }
    if (!text && !search.vector) {
        lh_request_bad (request, "query_text", "'query_text' or 'vector' is required");
        goto done;
    }
    if (text) {
        query_text = lh_obj_get (body, "query_text");
        search.vector = s_embed (self, request, &query_text, 1, search.model, "query_text",
                                 &search.dim);
        if (!search.vector)
            goto done;
    }
    //  Every corpus and the playbook at once
    size_t corpora = search.corpora->via.array.size;
    size_t count = corpora + (search.use_playbook? 1: 0);
    lh_call_t *calls = (lh_call_t *) calloc (count, sizeof (lh_call_t));
    lh_pack_t **packs = (lh_pack_t **) calloc (count, sizeof (lh_pack_t *));
    assert (calls && packs);
    for (size_t index = 0; index < count; index++) {
        const msgpack_object *name = index < corpora? &search.corpora->via.array.ptr [index]: NULL;
        packs [index] = name?
            s_search_pack (&search, name->via.str.ptr, name->via.str.size, search.per_corpus_k, true):
            s_search_pack (&search, search.playbook, strlen (search.playbook),
                           search.playbook_top_k, false);
        calls [index] = (lh_call_t) { .svc = "vectord", .op = "search" };
        calls [index].body = lh_pack_data (packs [index], &calls [index].size);
    }
    lh_request_call_all (request, calls, count, self->timeout_ms);
    if (s_search_check (self, request, &search, calls, corpora) == 0)
        s_search_answer (request, &search, calls, corpora);
    for (size_t index = 0; index < count; index++) {
        lh_reply_destroy (&calls [index].reply);
        lh_pack_destroy (&packs [index]);
    }
    free (calls);
    free (packs);
done:
    free (search.vector);
    free (search.model);
}


//  --------------------------------------------------------------------------
//  Read a string field of a playbook entry, naming it PREFIX.FIELD.
//  0 (set, or absent and optional), or -1 after answering.

static int
s_entry_str (lh_request_t *request, const msgpack_object *map, const char *prefix,
             const char *name, bool required, size_t max_size, const char **value,
             size_t *size)
{
    char field [64];
    snprintf (field, sizeof (field), "%s%s", prefix, name);
    const msgpack_object *item = lh_obj_get (map, name);
    if (!item || item->type == MSGPACK_OBJECT_NIL) {
        if (required)
            return lh_request_bad (request, field, "'%s' is required", field);
        return 0;
    }
    if (item->type != MSGPACK_OBJECT_STR || item->via.str.size == 0)
        return lh_request_bad (request, field, "'%s' must be a non-empty string", field);
    if (item->via.str.size > max_size)
        return lh_request_fail_field (request, LH_ST_TOO_LARGE, "too_large", field,
                                      "'%s' has %u bytes; at most %zu are allowed",
                                      field, item->via.str.size, max_size);
    *value = item->via.str.ptr;
    *size = item->via.str.size;
    return 0;
}


//  --------------------------------------------------------------------------
//  Read and check one playbook entry (prefix names it in errors: "" or
//  "entries[3]."). 0, or -1 after answering.

static int
s_entry_read (s_state_t *self, lh_request_t *request, const msgpack_object *item,
              const char *prefix, s_record_t *record)
{
    char field [64];
    if (item->type != MSGPACK_OBJECT_MAP) {
        snprintf (field, sizeof (field), "%.*s", (int) strlen (prefix) - 1, prefix);
        return lh_request_bad (request, field, "'%s' must be a map (a JSON object)", field);
    }
    const char *text = NULL;
    size_t size = 0;
    if (s_entry_str (request, item, prefix, "query_text", true, self->text_max, &text, &size)
    ||  s_entry_str (request, item, prefix, "answer_id", true, S_ID_MAX,
                     &record->answer_id, &record->answer_id_size)
    ||  s_entry_str (request, item, prefix, "answer_corpus", true, S_NAME_MAX,
                     &record->answer_corpus, &record->answer_corpus_size))
        return -1;
    record->query_text = lh_obj_get (item, "query_text");
    snprintf (field, sizeof (field), "%sanswer_corpus", prefix);
    if (!s_name_valid (record->answer_corpus, record->answer_corpus_size))
        return lh_request_bad (request, field, "'%s' must be an index name: 1..64 characters "
                               "of A-Z a-z 0-9 _ . - not starting with '.'", field);
    snprintf (field, sizeof (field), "%sscore", prefix);
    const msgpack_object *score = lh_obj_get (item, "score");
    if (!score || score->type == MSGPACK_OBJECT_NIL)
        return lh_request_bad (request, field, "'%s' is required (a number from 0 to 1)", field);
    if (!lh_obj_double (item, "score", &record->score) || isnan (record->score)
    ||  record->score < 0 || record->score > 1)
        return lh_request_bad (request, field, "'%s' must be a number from 0 to 1", field);
    snprintf (field, sizeof (field), "%stags", prefix);
    const msgpack_object *tags = lh_obj_get (item, "tags");
    if (tags && tags->type != MSGPACK_OBJECT_NIL) {
        if (tags->type != MSGPACK_OBJECT_ARRAY || tags->via.array.size > S_TAGS_MAX)
            return lh_request_bad (request, field, "'%s' must be an array of at most %d strings",
                                   field, S_TAGS_MAX);
        for (uint32_t index = 0; index < tags->via.array.size; index++) {
            const msgpack_object *tag = &tags->via.array.ptr [index];
            if (tag->type != MSGPACK_OBJECT_STR || tag->via.str.size > S_TAG_MAX)
                return lh_request_bad (request, field, "'%s' item %u must be a string of at "
                                       "most %d bytes", field, index, S_TAG_MAX);
        }
        record->tags = tags;
    }
    lh_matrixd_playbook_id (text, size, record->answer_id, record->answer_id_size,
                            record->answer_corpus, record->answer_corpus_size, record->id);
    return 0;
}


//  --------------------------------------------------------------------------
//  Add a pack of items to the playbook index, creating it (dim, cosine)
//  when missing. 0, or -1 after answering.

static int
s_playbook_write (s_state_t *self, lh_request_t *request, const char *playbook,
                  const void *body, size_t size, size_t dim)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        lh_reply_t *reply = NULL;
        lh_request_call (request, "vectord", "add", body, size, self->timeout_ms, &reply);
        uint32_t status = lh_reply_status (reply);
        char kind [64];
        s_reply_kind (reply, kind, sizeof (kind));
        if (status == LH_ST_OK) {
            lh_reply_destroy (&reply);
            return 0;
        }
        if (status == LH_ST_BAD_REQUEST && streq (kind, "dim_mismatch")) {
            lh_reply_destroy (&reply);
            return lh_request_fail_field (request, LH_ST_CONFLICT, "dim_mismatch", "playbook_corpus",
                                          "playbook corpus '%s' holds vectors of another dim than "
                                          "the embedder's %zu: name another playbook_corpus or "
                                          "drop that index", playbook, dim);
        }
        if (!(status == LH_ST_NOT_FOUND && streq (kind, "no_such_index")) || attempt == 2) {
            int rc = lh_request_fail_dependency (request, reply, "vectord", "the playbook write");
            lh_reply_destroy (&reply);
            return rc;
        }
        lh_reply_destroy (&reply);
        //  First record: create the index (another worker may win the race)
        lh_pack_t *pack = lh_pack_new ();
        lh_pack_open_map (pack);
        lh_pack_kv_str (pack, "name", playbook);
        lh_pack_kv_uint (pack, "dim", dim);
        lh_pack_kv_str (pack, "metric", "cosine");
        lh_pack_close (pack);
        lh_request_call_pack (request, "vectord", "create", &pack, self->timeout_ms, &reply);
        status = lh_reply_status (reply);
        if (status != LH_ST_CREATED && status != LH_ST_CONFLICT) {
            int rc = lh_request_fail_dependency (request, reply, "vectord",
                                                 "the creation of the playbook index");
            lh_reply_destroy (&reply);
            return rc;
        }
        if (status == LH_ST_CREATED)
            lh_info (S_NAME, lh_request_trace (request), "created playbook index '%s' (dim %zu)",
                     playbook, dim);
        lh_reply_destroy (&reply);
    }
    return -1;                          //  not reached
}


//  --------------------------------------------------------------------------
//  Publish what was recorded: playbook.record {playbook_id, playbook_corpus,
//  answer_id, answer_corpus, score} for one entry, playbook.bulk
//  {playbook_corpus, recorded, playbook_ids (the first 100)} for a bulk
//  (docs/observerd.md)

static void
s_publish_recorded (lh_request_t *request, s_record_t *records, size_t count,
                    const char *playbook, bool bulk)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_kv_str (pack, "playbook_corpus", playbook);
    if (bulk) {
        //  The first S_EVENT_IDS ids: an event stays small whatever the bulk
        lh_pack_kv_uint (pack, "recorded", count);
        lh_pack_str (pack, "playbook_ids");
        lh_pack_open_array (pack);
        for (size_t index = 0; index < count && index < S_EVENT_IDS; index++)
            lh_pack_str (pack, records [index].id);
        lh_pack_close (pack);
    }
    else {
        lh_pack_kv_str (pack, "playbook_id", records [0].id);
        lh_pack_str (pack, "answer_id");
        lh_pack_strn (pack, records [0].answer_id, records [0].answer_id_size);
        lh_pack_str (pack, "answer_corpus");
        lh_pack_strn (pack, records [0].answer_corpus, records [0].answer_corpus_size);
        lh_pack_kv_double (pack, "score", records [0].score);
    }
    lh_pack_close (pack);
    lh_request_event (request, bulk? "playbook.bulk": "playbook.record", &pack);
}


//  --------------------------------------------------------------------------
//  Record checked entries: embed their query texts, write them to the
//  playbook index in one add (all or nothing), answer. 0 or -1.

static int
s_record (s_state_t *self, lh_request_t *request, s_record_t *records, size_t count,
          const char *playbook, const char *model, bool bulk)
{
    //  The same triple twice in one batch: the last one wins
    for (size_t index = 0; index < count; index++)
        for (size_t later = index + 1; later < count && !records [index].superseded; later++)
            records [index].superseded = streq (records [index].id, records [later].id);
    const msgpack_object **texts = (const msgpack_object **) calloc (count, sizeof (void *));
    assert (texts);
    for (size_t index = 0; index < count; index++)
        texts [index] = records [index].query_text;
    size_t dim = 0;
    float *vectors = s_embed (self, request, texts, count, model,
                              bulk? "entries": "query_text", &dim);
    free (texts);
    if (!vectors)
        return -1;
    int64_t now = zclock_time ();
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_kv_str (pack, "name", playbook);
    lh_pack_str (pack, "items");
    lh_pack_open_array (pack);
    for (size_t index = 0; index < count; index++) {
        s_record_t *record = &records [index];
        if (record->superseded)
            continue;
        lh_pack_open_map (pack);
        lh_pack_kv_str (pack, "id", record->id);
        lh_pack_str (pack, "vector");
        lh_pack_bin (pack, vectors + index * dim, dim * sizeof (float));
        lh_pack_str (pack, "metadata");
        lh_pack_open_map (pack);
        lh_pack_str (pack, "query_text");
        lh_pack_object (pack, record->query_text);
        lh_pack_str (pack, "answer_id");
        lh_pack_strn (pack, record->answer_id, record->answer_id_size);
        lh_pack_str (pack, "answer_corpus");
        lh_pack_strn (pack, record->answer_corpus, record->answer_corpus_size);
        lh_pack_kv_double (pack, "score", record->score);
        if (record->tags) {
            lh_pack_str (pack, "tags");
            lh_pack_object (pack, record->tags);
        }
        lh_pack_kv_int (pack, "recorded_ms", now);
        lh_pack_close (pack);
        lh_pack_close (pack);
    }
    lh_pack_close (pack);
    lh_pack_close (pack);
    free (vectors);
    size_t size;
    const void *data = lh_pack_data (pack, &size);
    int rc = s_playbook_write (self, request, playbook, data, size, dim);
    lh_pack_destroy (&pack);
    if (rc)
        return -1;
    s_publish_recorded (request, records, count, playbook, bulk);
    pack = lh_pack_new ();
    lh_pack_open_map (pack);
    if (bulk) {
        lh_pack_kv_uint (pack, "recorded", count);
        lh_pack_str (pack, "playbook_ids");
        lh_pack_open_array (pack);
        for (size_t index = 0; index < count; index++)
            lh_pack_str (pack, records [index].id);
        lh_pack_close (pack);
    }
    else
        lh_pack_kv_str (pack, "playbook_id", records [0].id);
    lh_pack_kv_str (pack, "playbook_corpus", playbook);
    lh_pack_close (pack);
    return lh_request_reply_pack (request, LH_ST_OK, &pack);
}


//  --------------------------------------------------------------------------
//  playbook_record {query_text, answer_id, answer_corpus, score, tags?,
//  playbook_corpus?, model?}

static void
s_playbook_record (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    const msgpack_object *body = lh_request_map (request);
    char playbook [S_NAME_MAX + 1];
    snprintf (playbook, sizeof (playbook), "%s", self->playbook_corpus);
    char *model = NULL;
    s_record_t record = { 0 };
    if (body
    &&  s_entry_read (self, request, body, "", &record) == 0
    &&  s_read_name (request, body, "playbook_corpus", playbook) == 0
    &&  s_read_model (request, body, &model) == 0)
        s_record (self, request, &record, 1, playbook, model, false);
    free (model);
}


//  --------------------------------------------------------------------------
//  playbook_bulk {entries: [entry], playbook_corpus?, model?}: every entry
//  checked before anything is written

static void
s_playbook_bulk (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    const msgpack_object *body = lh_request_map (request);
    const msgpack_object *entries = NULL;
    char playbook [S_NAME_MAX + 1];
    snprintf (playbook, sizeof (playbook), "%s", self->playbook_corpus);
    char *model = NULL;
    if (!body
    ||  lh_request_array (request, body, "entries", LH_FIELD_REQUIRED | LH_FIELD_NONEMPTY
                          | LH_FIELD_LIMIT_413, (uint32_t) self->bulk_max, &entries)
    ||  s_read_name (request, body, "playbook_corpus", playbook)
    ||  s_read_model (request, body, &model)) {
        free (model);
        return;
    }
    size_t count = entries->via.array.size;
    s_record_t *records = (s_record_t *) calloc (count, sizeof (s_record_t));
    assert (records);
    size_t index = 0;
    for (; index < count; index++) {
        char prefix [32];
        snprintf (prefix, sizeof (prefix), "entries[%zu].", index);
        if (s_entry_read (self, request, &entries->via.array.ptr [index], prefix, &records [index]))
            break;
    }
    if (index == count)
        s_record (self, request, records, count, playbook, model, true);
    free (records);
    free (model);
}


//  --------------------------------------------------------------------------
//  A string of a relevance request as a fresh C string (NULL when absent);
//  0, or -1 after answering 400 naming field

static int
s_relevance_str (lh_request_t *request, const msgpack_object *item, const char *field,
                 size_t max_size, char **value_p)
{
    *value_p = NULL;
    if (!item || item->type == MSGPACK_OBJECT_NIL)
        return 0;
    if (item->type != MSGPACK_OBJECT_STR || (max_size && item->via.str.size > max_size))
        return lh_request_bad (request, field, "'%s' must be a string%s", field,
                               max_size? " of at most " S_PATH_TEXT " bytes": "");
    *value_p = lh_obj_strdup (item);
    if (!*value_p)
        return lh_request_bad (request, field, "'%s' must not hold a NUL character", field);
    return 0;
}


//  --------------------------------------------------------------------------
//  A focus symbol list as fresh C strings (*count_p of them, in *list_p,
//  caller frees each and the list). 0 or -1.

static int
s_relevance_symbols (lh_request_t *request, const msgpack_object *focus, const char *name,
                     char ***list_p, size_t *count_p)
{
    char field [48];
    snprintf (field, sizeof (field), "focus.%s", name);
    const msgpack_object *symbols = lh_obj_get (focus, name);
    *list_p = NULL;
    *count_p = 0;
    if (!symbols || symbols->type == MSGPACK_OBJECT_NIL)
        return 0;
    if (symbols->type != MSGPACK_OBJECT_ARRAY || symbols->via.array.size > S_SYMBOLS_MAX)
        return lh_request_bad (request, field, "'%s' must be an array of at most %d strings",
                               field, S_SYMBOLS_MAX);
    char **list = (char **) calloc (symbols->via.array.size + 1, sizeof (char *));
    assert (list);
    *list_p = list;
    for (uint32_t index = 0; index < symbols->via.array.size; index++) {
        list [index] = lh_obj_strdup (&symbols->via.array.ptr [index]);
        if (!list [index])
            return lh_request_bad (request, field, "'%s' item %u must be a string without "
                                   "NUL characters", field, index);
        (*count_p)++;
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Pack one scored chunk

static void
s_relevance_pack (lh_pack_t *pack, uint32_t index, const msgpack_object *chunk,
                  const lh_relevance_signals_t *signals)
{
    lh_pack_open_map (pack);
    lh_pack_kv_uint (pack, "index", index);
    lh_pack_kv_double (pack, "score", signals->score);
    lh_pack_str (pack, "signals");
    lh_pack_open_map (pack);
    lh_pack_kv_bool (pack, "path_match", signals->path_match);
    lh_pack_kv_bool (pack, "filename_mentioned", signals->filename_mentioned);
    lh_pack_kv_bool (pack, "symbol_mentioned", signals->symbol_mentioned);
    lh_pack_kv_double (pack, "jaccard", signals->jaccard);
    lh_pack_kv_bool (pack, "prefix_shared", signals->prefix_shared);
    lh_pack_kv_bool (pack, "imported_only", signals->imported_only);
    lh_pack_close (pack);
    lh_pack_str (pack, "chunk");
    lh_pack_object (pack, chunk);
    lh_pack_close (pack);
}


//  --------------------------------------------------------------------------
//  relevance {focus: {path, content?, defined_symbols?, imported_symbols?},
//  chunks: [{path?, text | content} | string], threshold?}

static void
s_relevance (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    const msgpack_object *body = lh_request_map (request);
    const msgpack_object *focus = NULL, *chunks = NULL;
    double threshold = S_THRESHOLD;
    char *path = NULL, *content = NULL;
    char **defined = NULL, **imported = NULL;
    size_t defined_count = 0, imported_count = 0;
    char **paths = NULL, **texts = NULL;
    size_t count = 0;
    if (!body
    ||  lh_request_submap (request, body, "focus", LH_FIELD_REQUIRED, &focus)
    ||  lh_request_array (request, body, "chunks", LH_FIELD_REQUIRED | LH_FIELD_LIMIT_413,
                          (uint32_t) self->chunks_max, &chunks)
    ||  lh_request_double (request, body, "threshold", 0, -10.0, 10.0, &threshold)
    ||  s_relevance_str (request, lh_obj_get (focus, "path"), "focus.path", S_PATH_MAX, &path))
        goto done;
    const msgpack_object *focus_text = lh_obj_get (focus, "content");
    if (!focus_text || focus_text->type == MSGPACK_OBJECT_NIL)
        focus_text = lh_obj_get (focus, "text");
    if (!path || !*path) {
        lh_request_bad (request, "focus.path", "'focus.path' is required (a non-empty string)");
        goto done;
    }
    if (s_relevance_str (request, focus_text, "focus.content", 0, &content)
    ||  s_relevance_symbols (request, focus, "defined_symbols", &defined, &defined_count)
    ||  s_relevance_symbols (request, focus, "imported_symbols", &imported, &imported_count))
        goto done;
    count = chunks->via.array.size;
    paths = (char **) calloc (count + 1, sizeof (char *));
    texts = (char **) calloc (count + 1, sizeof (char *));
    assert (paths && texts);
    for (uint32_t index = 0; index < count; index++) {
        const msgpack_object *chunk = &chunks->via.array.ptr [index];
        char field [48];
        snprintf (field, sizeof (field), "chunks[%u]", index);
        const msgpack_object *text = chunk;
        if (chunk->type == MSGPACK_OBJECT_MAP) {
            text = lh_obj_get (chunk, "text");
            if (!text || text->type == MSGPACK_OBJECT_NIL)
                text = lh_obj_get (chunk, "content");
            if (s_relevance_str (request, lh_obj_get (chunk, "path"), field, S_PATH_MAX,
                                 &paths [index]))
                goto done;
        }
        if (!text || text->type != MSGPACK_OBJECT_STR) {
            lh_request_bad (request, field, "'%s' must be a string or {path?, text}", field);
            goto done;
        }
        if (s_relevance_str (request, text, field, 0, &texts [index]))
            goto done;
    }
    lh_relevance_t *scorer = lh_relevance_new (path, content, (const char **) defined,
                                               defined_count, (const char **) imported,
                                               imported_count);
    lh_relevance_signals_t *signals = (lh_relevance_signals_t *)
                                      calloc (count + 1, sizeof (lh_relevance_signals_t));
    assert (signals);
    for (size_t index = 0; index < count; index++)
        lh_relevance_score (scorer, paths [index], texts [index], &signals [index]);
    lh_relevance_destroy (&scorer);
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    for (int kept = 1; kept >= 0; kept--) {
        lh_pack_str (pack, kept? "kept": "dropped");
        lh_pack_open_array (pack);
        for (uint32_t index = 0; index < count; index++)
            if ((signals [index].score >= threshold) == (bool) kept)
                s_relevance_pack (pack, index, &chunks->via.array.ptr [index], &signals [index]);
        lh_pack_close (pack);
    }
    lh_pack_kv_double (pack, "threshold", threshold);
    lh_pack_close (pack);
    lh_request_reply_pack (request, LH_ST_OK, &pack);
    free (signals);
done:
    for (size_t index = 0; index < count && paths; index++) {
        free (paths [index]);
        free (texts [index]);
    }
    for (size_t index = 0; index < defined_count; index++)
        free (defined [index]);
    for (size_t index = 0; index < imported_count; index++)
        free (imported [index]);
    free (defined);
    free (imported);
    free (paths);
    free (texts);
    free (path);
    free (content);
}


//  --------------------------------------------------------------------------
//  Is a model weak: listed in models/weak_models (as it is, or as the last
//  part after a provider prefix "p/"), or ending in ":free"?

static bool
s_model_weak (s_state_t *self, const char *model)
{
    size_t size = strlen (model);
    if (size >= 5 && streq (model + size - 5, ":free"))
        return true;
    for (const char *weak = (const char *) zlistx_first (self->weak_models); weak;
         weak = (const char *) zlistx_next (self->weak_models)) {
        size_t length = strlen (weak);
        if (streq (model, weak)
        ||  (size > length && model [size - length - 1] == '/' && streq (model + size - length, weak)))
            return true;
    }
    return false;
}


//  --------------------------------------------------------------------------
//  downgrade {mode, model, forced_mode?}: codereview_lakehouse, not
//  forced, with a strong model -> codereview_isolation

static void
s_downgrade (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    const msgpack_object *body = lh_request_map (request);
    char *mode = NULL, *model = NULL, *forced_as = NULL;
    bool forced = false;
    if (!body
    ||  lh_request_strdup (request, body, "mode", LH_FIELD_REQUIRED | LH_FIELD_NONEMPTY,
                           S_MODEL_MAX, &mode)
    ||  lh_request_strdup (request, body, "model", LH_FIELD_REQUIRED | LH_FIELD_NONEMPTY,
                           S_MODEL_MAX, &model))
        goto done;
    const msgpack_object *forced_mode = lh_obj_get (body, "forced_mode");
    if (forced_mode && forced_mode->type == MSGPACK_OBJECT_BOOLEAN)
        forced = forced_mode->via.boolean;
    else
    if (forced_mode && forced_mode->type == MSGPACK_OBJECT_STR) {
        if (lh_request_strdup (request, body, "forced_mode", 0, S_MODEL_MAX, &forced_as))
            goto done;
        forced = *forced_as != 0;
    }
    else
    if (forced_mode && forced_mode->type != MSGPACK_OBJECT_NIL) {
        lh_request_bad (request, "forced_mode", "'forced_mode' must be true, false or a mode name");
        goto done;
    }
    bool weak = s_model_weak (self, model);
    bool downgraded = streq (mode, S_BOOSTED_MODE) && !forced && !weak;
    const char *answer = downgraded? S_ISOLATED_MODE: forced_as && *forced_as? forced_as: mode;
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_kv_str (pack, "mode", answer);
    lh_pack_kv_str (pack, "model", model);
    lh_pack_kv_bool (pack, "weak", weak);
    lh_pack_kv_bool (pack, "forced", forced);
    lh_pack_kv_bool (pack, "downgraded", downgraded);
    if (downgraded)
        lh_pack_kv_str (pack, "downgraded_from", mode);
    lh_pack_close (pack);
    lh_request_reply_pack (request, LH_ST_OK, &pack);
done:
    free (mode);
    free (model);
    free (forced_as);
}


//  --------------------------------------------------------------------------
//  corpora {}: the vectord indexes with dim, metric and count

static void
s_corpora (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    if (!lh_request_map (request))
        return;
    lh_reply_t *reply = NULL;
    lh_request_call (request, "vectord", "list", NULL, 0, self->timeout_ms, &reply);
    const msgpack_object *indexes = lh_reply_status (reply) == LH_ST_OK?
                                    lh_obj_get (lh_reply_object (reply), "indexes"): NULL;
    if (!indexes || indexes->type != MSGPACK_OBJECT_ARRAY) {
        lh_request_fail_dependency (request, reply, "vectord", "the list of indexes");
        lh_reply_destroy (&reply);
        return;
    }
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_str (pack, "corpora");
    lh_pack_open_array (pack);
    for (uint32_t index = 0; index < indexes->via.array.size; index++) {
        const msgpack_object *info = &indexes->via.array.ptr [index];
        lh_pack_open_map (pack);
        const char *names [] = { "name", "dim", "metric", "count" };
        for (size_t field = 0; field < 4; field++) {
            const msgpack_object *value = lh_obj_get (info, names [field]);
            if (value) {
                lh_pack_str (pack, names [field]);
                lh_pack_object (pack, value);
            }
        }
        lh_pack_close (pack);
    }
    lh_pack_close (pack);
    lh_pack_kv_uint (pack, "count", indexes->via.array.size);
    lh_pack_close (pack);
    lh_request_reply_pack (request, LH_ST_OK, &pack);
    lh_reply_destroy (&reply);
}


//  --------------------------------------------------------------------------
//  Destroy the state

static void
s_state_destroy (void **state_p)
{
    s_state_t *self = (s_state_t *) *state_p;
    if (self) {
        free (self->playbook_corpus);
        zlistx_destroy (&self->weak_models);
        free (self);
        *state_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Create the state from config

static void *
s_state_new (lh_config_t *config, const lh_link_t *link, const char **error)
{
    s_state_t *self = (s_state_t *) zmalloc (sizeof (s_state_t));
    assert (self);
    self->timeout_ms = (uint32_t) lh_config_int (config, "matrixd/timeout_ms");
    self->playbook_corpus = strdup (lh_config_str (config, "matrixd/playbook_corpus"));
    self->corpora_max = (size_t) lh_config_int (config, "matrixd/corpora_max");
    self->k_max = (size_t) lh_config_int (config, "matrixd/k_max");
    self->exclude_max = (size_t) lh_config_int (config, "matrixd/exclude_max");
    self->bulk_max = (size_t) lh_config_int (config, "matrixd/bulk_max");
    self->embed_batch = (size_t) lh_config_int (config, "matrixd/embed_batch");
    self->chunks_max = (size_t) lh_config_int (config, "matrixd/chunks_max");
    self->text_max = (size_t) lh_config_int (config, "embedd/text_max");
    self->weak_models = zlistx_new ();
    zlistx_set_duplicator (self->weak_models, (zlistx_duplicator_fn *) strdup);
    zlistx_set_destructor (self->weak_models, (zlistx_destructor_fn *) zstr_free);
    const char *weak = lh_config_str (config, "models/weak_models");
    while (*weak) {
        size_t size = strcspn (weak, ",");
        char *name = strndup (weak, size);
        char *start = name, *end = name + strlen (name);
        while (*start == ' ')
            start++;
        while (end > start && end [-1] == ' ')
            *--end = 0;
        if (*start)
            zlistx_add_end (self->weak_models, start);
        free (name);
        weak += size + (weak [size] == ',');
    }
    if (!s_name_valid (self->playbook_corpus, strlen (self->playbook_corpus)))
        *error = "matrixd/playbook_corpus must be 1..64 characters of A-Z a-z 0-9 _ . - "
                 "not starting with '.'";
    if (*error) {
        void *state = self;
        s_state_destroy (&state);
        return NULL;
    }
    return self;
}


static const lh_op_t s_ops [] = {
    { "search", s_search },
    { "playbook_record", s_playbook_record },
    { "playbook_bulk", s_playbook_bulk },
    { "relevance", s_relevance },
    { "downgrade", s_downgrade },
    { "corpora", s_corpora },
    { NULL, NULL }
};

const lh_service_t lh_matrixd_service = {
    .name = "matrixd",
    .ops = s_ops,
    .state_new = s_state_new,
    .state_destroy = s_state_destroy,
    .credit = 1
};


//  --------------------------------------------------------------------------
//  Self test

#include "lh_testbus.h"
#include "lh_json.h"
#include "vectord.h"
#include "embedd.h"

#if defined (__has_include)
#   if __has_include (<valgrind/valgrind.h>)
#       include <valgrind/valgrind.h>
#       define S_TEST_VALGRIND  RUNNING_ON_VALGRIND
#   endif
#endif
#ifndef S_TEST_VALGRIND
#   define S_TEST_VALGRIND  0
#endif

#define S_TEST_DIM      32              //  embedd/dim in the test
#define S_TEST_NAP_MS   200             //  the fake vectord's search time

//  The fake vectord: every search takes S_TEST_NAP_MS; counts how many
//  are in flight at once
static int s_test_inflight;
static int s_test_inflight_max;
static pthread_mutex_t s_test_lock = PTHREAD_MUTEX_INITIALIZER;

static void
s_test_slow_search (lh_request_t *request, void *state)
{
    pthread_mutex_lock (&s_test_lock);
    if (++s_test_inflight > s_test_inflight_max)
        s_test_inflight_max = s_test_inflight;
    pthread_mutex_unlock (&s_test_lock);
    zclock_sleep (S_TEST_NAP_MS);
    pthread_mutex_lock (&s_test_lock);
    s_test_inflight--;
    pthread_mutex_unlock (&s_test_lock);
    const char *name = "";
    size_t size = 0;
    lh_obj_str (lh_request_object (request), "name", &name, &size);
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_array (pack, 1);
    lh_pack_open_map (pack);
    lh_pack_str (pack, "id");
    lh_pack_strn (pack, name, size);
    lh_pack_kv_double (pack, "distance", size / 100.0);
    lh_pack_str (pack, "metadata");
    lh_pack_map (pack, 0);
    lh_pack_close (pack);
    lh_request_reply_pack (request, LH_ST_OK, &pack);
}

static const lh_op_t s_test_slow_ops [] = { { "search", s_test_slow_search }, { NULL, NULL } };
static const lh_service_t s_test_slow_vectord = { .name = "vectord", .ops = s_test_slow_ops };

//  Embed one text with the bus's embedd
static void
s_test_embed (lh_testbus_t *bus, const char *text, float *vector)
{
    char *json = zsys_sprintf ("{\"texts\": [\"%s\"]}", text);
    lh_reply_t *reply = lh_testbus_call (bus, "embedd", "embed", json);
    zstr_free (&json);
    assert (lh_reply_status (reply) == 200);
    const msgpack_object *list = lh_obj_get (lh_reply_object (reply), "vectors");
    assert (list && list->via.array.size == 1);
    const msgpack_object *values = &list->via.array.ptr [0];
    assert (values->via.array.size == S_TEST_DIM);
    for (size_t index = 0; index < S_TEST_DIM; index++)
        vector [index] = (float) values->via.array.ptr [index].via.f64;
    lh_reply_destroy (&reply);
}

//  A unit vector of the basis made orthogonal to the given unit vectors
static void
s_test_orthogonal (const float **others, size_t count, size_t axis, float *out)
{
    double work [S_TEST_DIM] = { 0 };
    work [axis] = 1;
    for (size_t other = 0; other < count; other++) {
        double dot = 0;
        for (size_t index = 0; index < S_TEST_DIM; index++)
            dot += work [index] * others [other][index];
        for (size_t index = 0; index < S_TEST_DIM; index++)
            work [index] -= dot * others [other][index];
    }
    double norm = 0;
    for (size_t index = 0; index < S_TEST_DIM; index++)
        norm += work [index] * work [index];
    assert (norm > 1e-6);
    for (size_t index = 0; index < S_TEST_DIM; index++)
        out [index] = (float) (work [index] / sqrt (norm));
}

//  The unit vector at cosine distance d from e, towards u
static void
s_test_mix (const float *e, const float *u, double distance, float *out)
{
    double cosine = 1 - distance, sine = sqrt (1 - cosine * cosine);
    for (size_t index = 0; index < S_TEST_DIM; index++)
        out [index] = (float) (cosine * e [index] + sine * u [index]);
}

//  Add one vector to a corpus
static void
s_test_add (lh_testbus_t *bus, const char *corpus, const char *id, const float *vector)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_kv_str (pack, "name", corpus);
    lh_pack_str (pack, "items");
    lh_pack_open_array (pack);
    lh_pack_open_map (pack);
    lh_pack_kv_str (pack, "id", id);
    lh_pack_str (pack, "vector");
    lh_pack_bin (pack, vector, S_TEST_DIM * sizeof (float));
    lh_pack_str (pack, "metadata");
    lh_pack_open_map (pack);
    lh_pack_kv_str (pack, "corpus", corpus);
    lh_pack_close (pack);
    lh_pack_close (pack);
    lh_pack_close (pack);
    lh_pack_close (pack);
    size_t size;
    const void *data = lh_pack_data (pack, &size);
    lh_reply_t *reply = lh_testbus_call_raw (bus, "vectord", "add", data, size);
    assert (lh_reply_status (reply) == 200);
    lh_reply_destroy (&reply);
    lh_pack_destroy (&pack);
}

//  A search with a vector, plus options written as JSON members
static lh_reply_t *
s_test_search_vector (lh_testbus_t *bus, const float *vector, const char *options)
{
    char *json = zsys_sprintf ("{%s}", options);
    zframe_t *frame = lh_json_text_to_frame (json, strlen (json), NULL, NULL);
    assert (frame);
    zstr_free (&json);
    //  The options' map with "vector" added
    msgpack_zone zone;
    msgpack_zone_init (&zone, 1024);
    msgpack_object object;
    assert (msgpack_unpack ((const char *) zframe_data (frame), zframe_size (frame), NULL, &zone, &object)
            == MSGPACK_UNPACK_SUCCESS);
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    for (uint32_t index = 0; index < object.via.map.size; index++) {
        lh_pack_object (pack, &object.via.map.ptr [index].key);
        lh_pack_object (pack, &object.via.map.ptr [index].val);
    }
    lh_pack_str (pack, "vector");
    lh_pack_open_array (pack);
    for (size_t index = 0; index < S_TEST_DIM; index++)
        lh_pack_double (pack, vector [index]);
    lh_pack_close (pack);
    lh_pack_close (pack);
    msgpack_zone_destroy (&zone);
    zframe_destroy (&frame);
    size_t size;
    const void *data = lh_pack_data (pack, &size);
    lh_reply_t *reply = lh_testbus_call_raw (bus, "matrixd", "search", data, size);
    lh_pack_destroy (&pack);
    return reply;
}

//  A search reply's hits as "id@corpus,..." (caller frees)
static char *
s_test_order (lh_reply_t *reply)
{
    assert (lh_reply_status (reply) == 200);
    const msgpack_object *hits = lh_obj_get (lh_reply_object (reply), "hits");
    assert (hits && hits->type == MSGPACK_OBJECT_ARRAY);
    char *text = strdup ("");
    for (uint32_t index = 0; index < hits->via.array.size; index++) {
        const char *id, *corpus;
        size_t id_size, corpus_size;
        assert (lh_obj_str (&hits->via.array.ptr [index], "id", &id, &id_size));
        assert (lh_obj_str (&hits->via.array.ptr [index], "corpus", &corpus, &corpus_size));
        char *longer = zsys_sprintf ("%s%s%.*s@%.*s", text, index? ",": "", (int) id_size, id,
                                     (int) corpus_size, corpus);
        free (text);
        text = longer;
    }
    return text;
}

//  One hit of a search reply by position
static const msgpack_object *
s_test_hit (lh_reply_t *reply, uint32_t rank)
{
    const msgpack_object *hits = lh_obj_get (lh_reply_object (reply), "hits");
    assert (hits && rank < hits->via.array.size);
    return &hits->via.array.ptr [rank];
}

//  Check a reply against "kind/field" and status, exactly one answer
static void
s_test_refused (lh_testbus_t *bus, const char *op, const char *json, uint32_t status,
                const char *error, bool verbose)
{
    lh_reply_t *reply = lh_testbus_call (bus, "matrixd", op, json);
    char *got = lh_testbus_error (reply);
    if (verbose)
        printf ("\n    %s %s -> %u %s", op, json, lh_reply_status (reply), got);
    if (lh_reply_status (reply) != status || !streq (got, error)) {
        fprintf (stderr, "matrixd %s %s: got %u %s, expected %u %s (%s)\n", op, json,
                 lh_reply_status (reply), got, status, error,
                 lh_reply_reason (reply)? lh_reply_reason (reply): "");
        assert (false);
    }
    zstr_free (&got);
    lh_reply_destroy (&reply);
    assert (lh_client_recv (lh_testbus_client (bus), &reply, 0) == -1);
}

//  Every op's malformed bodies: one answer each, 4xx naming the field
static void
s_test_malformed (lh_testbus_t *bus, bool verbose)
{
    struct {
        const char *op, *json;
        uint32_t status;
        const char *error;
    } cases [] = {
        { "search", "[]", 400, "bad_body/" },
        { "search", "{}", 400, "bad_field/corpora" },
        { "search", "{\"corpora\": []}", 400, "bad_field/corpora" },
        { "search", "{\"corpora\": \"alpha\"}", 400, "bad_field/corpora" },
        { "search", "{\"corpora\": [1], \"query_text\": \"q\"}", 400, "bad_field/corpora" },
        { "search", "{\"corpora\": [\"a b\"], \"query_text\": \"q\"}", 400, "bad_field/corpora" },
        { "search", "{\"corpora\": [\"a\", \"a\"], \"query_text\": \"q\"}", 400, "bad_field/corpora" },
        { "search", "{\"corpora\": [\"a\",\"b\",\"c\",\"d\",\"e\"], \"query_text\": \"q\"}", 400,
          "bad_field/corpora" },
        { "search", "{\"corpora\": [\"a\"]}", 400, "bad_field/query_text" },
        { "search", "{\"corpora\": [\"a\"], \"query_text\": \"\"}", 400, "bad_field/query_text" },
        { "search", "{\"corpora\": [\"a\"], \"query_text\": 7}", 400, "bad_field/query_text" },
        { "search", "{\"corpora\": [\"a\"], \"query_text\": \"0123456789012345678901234567890123456789"
          "012345678901234567890123456789\"}", 413, "too_large/query_text" },
        { "search", "{\"corpora\": [\"a\"], \"query_text\": \"q\", \"vector\": [1]}", 400,
          "bad_field/vector" },
        { "search", "{\"corpora\": [\"a\"], \"vector\": []}", 400, "bad_field/vector" },
        { "search", "{\"corpora\": [\"a\"], \"vector\": [1, \"x\"]}", 400, "bad_field/vector" },
        { "search", "{\"corpora\": [\"a\"], \"vector\": [1e39]}", 400, "bad_field/vector" },
        { "search", "{\"corpora\": [\"a\"], \"query_text\": \"q\", \"k\": 0}", 400, "bad_field/k" },
        { "search", "{\"corpora\": [\"a\"], \"query_text\": \"q\", \"k\": 1001}", 400, "bad_field/k" },
        { "search", "{\"corpora\": [\"a\"], \"query_text\": \"q\", \"per_corpus_k\": \"3\"}", 400,
          "bad_field/per_corpus_k" },
        { "search", "{\"corpora\": [\"a\"], \"query_text\": \"q\", \"ef\": 0}", 400, "bad_field/ef" },
        { "search", "{\"corpora\": [\"a\"], \"query_text\": \"q\", \"filter\": []}", 400,
          "bad_field/filter" },
        { "search", "{\"corpora\": [\"a\"], \"query_text\": \"q\", \"exclude_ids\": [1]}", 400,
          "bad_field/exclude_ids" },
        { "search", "{\"corpora\": [\"a\"], \"query_text\": \"q\", \"exclude_ids\": \"x\"}", 400,
          "bad_field/exclude_ids" },
        { "search", "{\"corpora\": [\"a\"], \"query_text\": \"q\", \"use_playbook\": 1}", 400,
          "bad_field/use_playbook" },
        { "search", "{\"corpora\": [\"a\"], \"query_text\": \"q\", \"playbook_corpus\": \".x\"}", 400,
          "bad_field/playbook_corpus" },
        { "search", "{\"corpora\": [\"a\"], \"query_text\": \"q\", \"playbook_top_k\": 0}", 400,
          "bad_field/playbook_top_k" },
        { "search", "{\"corpora\": [\"a\"], \"query_text\": \"q\", \"playbook_max_distance\": 3}", 400,
          "bad_field/playbook_max_distance" },
        { "search", "{\"corpora\": [\"a\"], \"query_text\": \"q\", \"playbook_max_inject_distance\": -1}",
          400, "bad_field/playbook_max_inject_distance" },
        { "search", "{\"corpora\": [\"a\"], \"query_text\": \"q\", \"model\": \"\"}", 400,
          "bad_field/model" },
        { "playbook_record", "[1]", 400, "bad_body/" },
        { "playbook_record", "{}", 400, "bad_field/query_text" },
        { "playbook_record", "{\"query_text\": \"q\"}", 400, "bad_field/answer_id" },
        { "playbook_record", "{\"query_text\": \"q\", \"answer_id\": \"a\"}", 400,
          "bad_field/answer_corpus" },
        { "playbook_record", "{\"query_text\": \"q\", \"answer_id\": \"a\", \"answer_corpus\": \"a b\"}",
          400, "bad_field/answer_corpus" },
        { "playbook_record", "{\"query_text\": \"q\", \"answer_id\": \"a\", \"answer_corpus\": \"c\"}",
          400, "bad_field/score" },
        { "playbook_record", "{\"query_text\": \"q\", \"answer_id\": \"a\", \"answer_corpus\": \"c\", "
          "\"score\": 1.5}", 400, "bad_field/score" },
        { "playbook_record", "{\"query_text\": \"q\", \"answer_id\": \"a\", \"answer_corpus\": \"c\", "
          "\"score\": -0.1}", 400, "bad_field/score" },
        { "playbook_record", "{\"query_text\": \"q\", \"answer_id\": \"a\", \"answer_corpus\": \"c\", "
          "\"score\": \"1\"}", 400, "bad_field/score" },
        { "playbook_record", "{\"query_text\": \"q\", \"answer_id\": \"a\", \"answer_corpus\": \"c\", "
          "\"score\": 1, \"tags\": \"x\"}", 400, "bad_field/tags" },
        { "playbook_record", "{\"query_text\": \"q\", \"answer_id\": \"a\", \"answer_corpus\": \"c\", "
          "\"score\": 1, \"tags\": [1]}", 400, "bad_field/tags" },
        { "playbook_record", "{\"query_text\": \"q\", \"answer_id\": \"a\", \"answer_corpus\": \"c\", "
          "\"score\": 1, \"playbook_corpus\": \"\"}", 400, "bad_field/playbook_corpus" },
        { "playbook_record", "{\"query_text\": \"q\", \"answer_id\": \"a\", \"answer_corpus\": \"c\", "
          "\"score\": 1, \"model\": 3}", 400, "bad_field/model" },
        { "playbook_record", "{\"query_text\": \"\", \"answer_id\": \"a\", \"answer_corpus\": \"c\", "
          "\"score\": 1}", 400, "bad_field/query_text" },
        { "playbook_bulk", "{}", 400, "bad_field/entries" },
        { "playbook_bulk", "{\"entries\": []}", 400, "bad_field/entries" },
        { "playbook_bulk", "{\"entries\": [1]}", 400, "bad_field/entries[0]" },
        { "playbook_bulk", "{\"entries\": [{\"query_text\": \"q\", \"answer_id\": \"a\", "
          "\"answer_corpus\": \"c\", \"score\": 1}, {\"query_text\": \"q\", \"answer_id\": \"a\", "
          "\"answer_corpus\": \"c\", \"score\": 2}]}", 400, "bad_field/entries[1].score" },
        { "playbook_bulk", "{\"entries\": [{\"query_text\": \"q\", \"answer_id\": \"a\", "
          "\"answer_corpus\": \"c\", \"score\": 1}, {\"query_text\": \"q\", \"answer_corpus\": \"c\", "
          "\"score\": 1}]}", 400, "bad_field/entries[1].answer_id" },
        { "playbook_bulk", "{\"entries\": [1, 2, 3, 4]}", 413, "too_large/entries" },
        { "playbook_bulk", "{\"entries\": [{\"query_text\": \"q\", \"answer_id\": \"a\", "
          "\"answer_corpus\": \"c\", \"score\": 1}], \"playbook_corpus\": \"a/b\"}", 400,
          "bad_field/playbook_corpus" },
        { "relevance", "{}", 400, "bad_field/focus" },
        { "relevance", "{\"focus\": []}", 400, "bad_field/focus" },
        { "relevance", "{\"focus\": {}}", 400, "bad_field/chunks" },
        { "relevance", "{\"focus\": {}, \"chunks\": []}", 400, "bad_field/focus.path" },
        { "relevance", "{\"focus\": {\"path\": 1}, \"chunks\": []}", 400, "bad_field/focus.path" },
        { "relevance", "{\"focus\": {\"path\": \"a\", \"defined_symbols\": \"x\"}, \"chunks\": []}", 400,
          "bad_field/focus.defined_symbols" },
        { "relevance", "{\"focus\": {\"path\": \"a\", \"imported_symbols\": [1]}, \"chunks\": []}", 400,
          "bad_field/focus.imported_symbols" },
        { "relevance", "{\"focus\": {\"path\": \"a\"}, \"chunks\": [1]}", 400, "bad_field/chunks[0]" },
        { "relevance", "{\"focus\": {\"path\": \"a\"}, \"chunks\": [\"x\", {\"path\": \"p\"}]}", 400,
          "bad_field/chunks[1]" },
        { "relevance", "{\"focus\": {\"path\": \"a\"}, \"chunks\": [], \"threshold\": \"x\"}", 400,
          "bad_field/threshold" },
        { "relevance", "{\"focus\": {\"path\": \"a\"}, \"chunks\": [\"a\", \"b\", \"c\", \"d\"]}", 413,
          "too_large/chunks" },
        { "downgrade", "{}", 400, "bad_field/mode" },
        { "downgrade", "{\"mode\": \"\", \"model\": \"m\"}", 400, "bad_field/mode" },
        { "downgrade", "{\"mode\": \"m\"}", 400, "bad_field/model" },
        { "downgrade", "{\"mode\": \"m\", \"model\": \"x\", \"forced_mode\": 1}", 400,
          "bad_field/forced_mode" },
        { "corpora", "[]", 400, "bad_body/" },
    };
    for (size_t index = 0; index < sizeof (cases) / sizeof (cases [0]); index++)
        s_test_refused (bus, cases [index].op, cases [index].json, cases [index].status,
                        cases [index].error, verbose);
}

//  Three corpora whose searches take S_TEST_NAP_MS each answer one matrix
//  search in about one nap: all three were in flight at once
static void
s_test_parallel (bool verbose)
{
    lh_testbus_t *bus = lh_testbus_new ("matrixd-parallel");
    lh_testbus_start (bus, &s_test_slow_vectord, 3);
    lh_testbus_start (bus, &lh_matrixd_service, 1);
    int64_t started = zclock_mono ();
    lh_reply_t *reply = lh_testbus_call (bus, "matrixd", "search",
                                         "{\"corpora\": [\"one\", \"three\", \"seven\"], "
                                         "\"vector\": [1, 0], \"k\": 3}");
    int64_t elapsed = zclock_mono () - started;
    char *order = s_test_order (reply);
    assert (streq (order, "one@one,three@three,seven@seven"));
    zstr_free (&order);
    lh_reply_destroy (&reply);
    if (verbose)
        printf ("\n    3 corpora x %d ms: answered in %" PRId64 " ms, %d in flight at once",
                S_TEST_NAP_MS, elapsed, s_test_inflight_max);
    assert (s_test_inflight_max == 3);
    assert (elapsed >= S_TEST_NAP_MS);
    if (!S_TEST_VALGRIND)
        assert (elapsed < 500);
    lh_testbus_destroy (&bus);
}

void
lh_matrixd_test (bool verbose)
{
    printf (" * matrixd: ");
    //  The playbook id's byte form
    char id [65];
    lh_matrixd_playbook_id ("night shift welder", 18, "w-17", 4, "workers", 7, id);
    assert (streq (id, "93bca3b6d839475ea140fd9f43caae6f5da8b723934d56c1b0d636f90abb9d38"));
    lh_matrixd_playbook_id ("caf\xc3\xa9", 5, "", 0, "x", 1, id);
    assert (streq (id, "ce130790afab593566acb05ad879d867447e807abea62a22e2a1173890e59a07"));

    s_test_parallel (verbose);

    lh_testbus_t *bus = lh_testbus_new ("matrixd");
    char *dim = zsys_sprintf ("%d", S_TEST_DIM);
    lh_testbus_set (bus, "embedd/dim", dim);
    zstr_free (&dim);
    lh_testbus_set (bus, "embedd/text_max", "64");
    lh_testbus_set (bus, "vectord/snapshot_ms", "0");
    lh_testbus_set (bus, "vectord/map_bytes", "67108864");
    lh_testbus_set (bus, "matrixd/corpora_max", "4");
    lh_testbus_set (bus, "matrixd/bulk_max", "3");
    lh_testbus_set (bus, "matrixd/chunks_max", "3");
    lh_testbus_set (bus, "matrixd/embed_batch", "2");
    lh_testbus_start (bus, &lh_embedd_service, 1);
    lh_testbus_start (bus, &lh_vectord_service, 2);
    lh_testbus_start (bus, &lh_matrixd_service, 2);

    //  Malformed bodies: one answer each, the field named, nothing written
    s_test_malformed (bus, verbose);
    lh_reply_t *reply = lh_testbus_call (bus, "matrixd", "corpora", NULL);
    uint64_t count = 9;
    assert (lh_reply_status (reply) == 200);
    assert (lh_obj_uint (lh_reply_object (reply), "count", &count) && count == 0);
    lh_reply_destroy (&reply);

    //  Downgrade's truth table (models/weak_models: qwen2.5:0.5b, llama3.2:1b)
    struct {
        const char *json;
        const char *mode;
        bool downgraded;
    } downgrades [] = {
        { "{\"mode\": \"codereview_lakehouse\", \"model\": \"gpt-5\"}", "codereview_isolation", true },
        { "{\"mode\": \"codereview_lakehouse\", \"model\": \"openrouter/openai/gpt-5\"}",
          "codereview_isolation", true },
        { "{\"mode\": \"codereview_lakehouse\", \"model\": \"gpt-5\", \"forced_mode\": true}",
          "codereview_lakehouse", false },
        { "{\"mode\": \"codereview_lakehouse\", \"model\": \"gpt-5\", \"forced_mode\": false}",
          "codereview_isolation", true },
        { "{\"mode\": \"codereview_lakehouse\", \"model\": \"gpt-5\", \"forced_mode\": "
          "\"codereview_lakehouse\"}", "codereview_lakehouse", false },
        { "{\"mode\": \"codereview_lakehouse\", \"model\": \"gpt-5\", \"forced_mode\": \"\"}",
          "codereview_isolation", true },
        { "{\"mode\": \"codereview_lakehouse\", \"model\": \"qwen2.5:0.5b\"}", "codereview_lakehouse", false },
        { "{\"mode\": \"codereview_lakehouse\", \"model\": \"ollama/llama3.2:1b\"}",
          "codereview_lakehouse", false },
        { "{\"mode\": \"codereview_lakehouse\", \"model\": \"meta/llama-4:free\"}",
          "codereview_lakehouse", false },
        { "{\"mode\": \"codereview_lakehouse\", \"model\": \"qwen2.5:0.5b-extra\"}",
          "codereview_isolation", true },
        { "{\"mode\": \"codereview_isolation\", \"model\": \"gpt-5\"}", "codereview_isolation", false },
        { "{\"mode\": \"plain\", \"model\": \"gpt-5\"}", "plain", false },
        { "{\"mode\": \"plain\", \"model\": \"qwen2.5:0.5b\"}", "plain", false },
    };
    for (size_t index = 0; index < sizeof (downgrades) / sizeof (downgrades [0]); index++) {
        reply = lh_testbus_call (bus, "matrixd", "downgrade", downgrades [index].json);
        assert (lh_reply_status (reply) == 200);
        const msgpack_object *answer = lh_reply_object (reply);
        const char *mode, *from;
        size_t size, from_size;
        bool downgraded = !downgrades [index].downgraded;
        assert (lh_obj_str (answer, "mode", &mode, &size));
        assert (lh_obj_bool (answer, "downgraded", &downgraded));
        if (verbose)
            printf ("\n    downgrade %s -> %.*s", downgrades [index].json, (int) size, mode);
        assert (size == strlen (downgrades [index].mode)
                && memcmp (mode, downgrades [index].mode, size) == 0);
        assert (downgraded == downgrades [index].downgraded);
        assert (lh_obj_str (answer, "downgraded_from", &from, &from_size) == downgraded);
        lh_reply_destroy (&reply);
    }

    //  Relevance over the bus: kept and dropped by threshold, with signals
    reply = lh_testbus_call (bus, "matrixd", "relevance",
                             "{\"focus\": {\"path\": \"src/matrix/search.rs\", \"defined_symbols\": "
                             "[\"merge_hits\"], \"imported_symbols\": [\"Client\"]}, \"chunks\": ["
                             "{\"path\": \"src/matrix/search.rs\", \"text\": \"fn merge_hits\"}, "
                             "\"uses Client only\", {\"path\": \"src/matrix/boost.rs\", "
                             "\"content\": \"see search.rs\"}]}");
    assert (lh_reply_status (reply) == 200);
    char *text = lh_testbus_json (reply);
    if (verbose)
        printf ("\n    relevance -> %s", text);
    const msgpack_object *kept = lh_obj_get (lh_reply_object (reply), "kept");
    const msgpack_object *dropped = lh_obj_get (lh_reply_object (reply), "dropped");
    uint64_t first = 9, second = 9, third = 9;
    assert (kept && kept->via.array.size == 2 && dropped && dropped->via.array.size == 1);
    assert (lh_obj_uint (&kept->via.array.ptr [0], "index", &first) && first == 0);
    assert (lh_obj_uint (&kept->via.array.ptr [1], "index", &third) && third == 2);
    assert (lh_obj_uint (&dropped->via.array.ptr [0], "index", &second) && second == 1);
    double score = 0;
    assert (lh_obj_double (&dropped->via.array.ptr [0], "score", &score) && score < 0);
    zstr_free (&text);
    lh_reply_destroy (&reply);

    //  Two corpora of controlled distances from the query's embedding e:
    //  alpha a1 .05 a2 .12 a3 .30 a4 .40 a5 .45; beta b1 .20 a3 .33 b2 .50
    const char *query = "night shift welder in Columbus";
    float e [S_TEST_DIM], u [S_TEST_DIM], w [S_TEST_DIM], v [S_TEST_DIM];
    s_test_embed (bus, query, e);
    const float *basis [2] = { e, u };
    s_test_orthogonal (basis, 1, 0, u);
    s_test_orthogonal (basis, 2, 1, w);
    assert (lh_testbus_status (bus, "vectord", "create", "{\"name\": \"alpha\", \"dim\": 32}") == 201);
    assert (lh_testbus_status (bus, "vectord", "create", "{\"name\": \"beta\", \"dim\": 32}") == 201);
    assert (lh_testbus_status (bus, "vectord", "create", "{\"name\": \"wide\", \"dim\": 8}") == 201);
    struct {
        const char *corpus, *id;
        double distance;
    } items [] = {
        { "alpha", "a1", 0.05 }, { "alpha", "a2", 0.12 }, { "alpha", "a3", 0.30 },
        { "alpha", "a4", 0.40 }, { "alpha", "a5", 0.45 },
        { "beta", "b1", 0.20 }, { "beta", "a3", 0.33 }, { "beta", "b2", 0.50 },
    };
    for (size_t index = 0; index < sizeof (items) / sizeof (items [0]); index++) {
        s_test_mix (e, u, items [index].distance, v);
        s_test_add (bus, items [index].corpus, items [index].id, v);
    }
    const char *cold = "a1@alpha,a2@alpha,b1@beta,a3@alpha,a3@beta";
    char *search = zsys_sprintf ("{\"query_text\": \"%s\", \"corpora\": [\"alpha\", \"beta\"], "
                                 "\"k\": 5, \"use_playbook\": true}", query);
    char *plain = zsys_sprintf ("{\"query_text\": \"%s\", \"corpora\": [\"alpha\", \"beta\"], "
                                "\"k\": 5}", query);
    reply = lh_testbus_call (bus, "matrixd", "search", plain);
    char *order = s_test_order (reply);
    assert (streq (order, cold));
    zstr_free (&order);
    double d = 0;
    assert (lh_obj_double (s_test_hit (reply, 3), "distance", &d) && fabs (d - 0.30) < 1e-4);
    lh_reply_destroy (&reply);
    //  No playbook index yet: use_playbook changes nothing
    reply = lh_testbus_call (bus, "matrixd", "search", search);
    order = s_test_order (reply);
    assert (streq (order, cold));
    zstr_free (&order);
    lh_reply_destroy (&reply);

    //  Score 1, 0.5, 0 for (a3, alpha): x 0.5, x 0.75, unchanged; beta's
    //  a3 never moves
    struct {
        const char *score;
        double factor;
        const char *order;
    } boosts [] = {
        { "1.0", 0.5, "a1@alpha,a2@alpha,a3@alpha,b1@beta,a3@beta" },
        { "0.5", 0.75, "a1@alpha,a2@alpha,b1@beta,a3@alpha,a3@beta" },
        { "0", 1.0, "a1@alpha,a2@alpha,b1@beta,a3@alpha,a3@beta" },
    };
    for (size_t index = 0; index < 3; index++) {
        char *record = zsys_sprintf ("{\"query_text\": \"%s\", \"answer_id\": \"a3\", "
                                     "\"answer_corpus\": \"alpha\", \"score\": %s}",
                                     query, boosts [index].score);
        reply = lh_testbus_call (bus, "matrixd", "playbook_record", record);
        zstr_free (&record);
        assert (lh_reply_status (reply) == 200);
        const char *playbook_id;
        size_t size;
        assert (lh_obj_str (lh_reply_object (reply), "playbook_id", &playbook_id, &size) && size == 64);
        lh_reply_destroy (&reply);
        reply = lh_testbus_call (bus, "matrixd", "search", search);
        order = s_test_order (reply);
        if (verbose)
            printf ("\n    score %s -> %s", boosts [index].score, order);
        assert (streq (order, boosts [index].order));
        zstr_free (&order);
        uint32_t rank = boosts [index].factor < 0.6? 2: 3;
        const msgpack_object *hit = s_test_hit (reply, rank);
        double distance = 0, original = 0;
        bool boosted = false;
        assert (lh_obj_double (hit, "distance", &distance));
        if (boosts [index].factor < 1) {
            assert (lh_obj_bool (hit, "boosted", &boosted) && boosted);
            assert (lh_obj_double (hit, "original_distance", &original) && original == d);
            assert (distance == d * boosts [index].factor);
        }
        else {
            assert (!lh_obj_get (hit, "boosted") && !lh_obj_get (hit, "original_distance"));
            assert (distance == d);
        }
        assert (!lh_obj_get (s_test_hit (reply, 4), "boosted"));
        lh_reply_destroy (&reply);
    }
    reply = lh_testbus_call (bus, "vectord", "info", "{\"name\": \"playbook_memory\"}");
    assert (lh_obj_uint (lh_reply_object (reply), "count", &count) && count == 1);
    assert (lh_obj_uint (lh_reply_object (reply), "dim", &count) && count == S_TEST_DIM);
    lh_reply_destroy (&reply);

    //  Injection: an entry for b2 (beta, not fetched with per_corpus_k 2);
    //  a query 0.15 from the entry injects it, one 0.30 away does not
    assert (lh_testbus_status (bus, "matrixd", "playbook_bulk",
                               "{\"entries\": [{\"query_text\": \"night shift welder in Columbus\", "
                               "\"answer_id\": \"b2\", \"answer_corpus\": \"beta\", \"score\": 1, "
                               "\"tags\": [\"fill\"]}, {\"query_text\": \"night shift welder in "
                               "Columbus\", \"answer_id\": \"zz\", \"answer_corpus\": \"gamma\", "
                               "\"score\": 1}]}") == 200);
    const char *options = "\"corpora\": [\"alpha\", \"beta\"], \"k\": 3, \"per_corpus_k\": 2, "
                          "\"use_playbook\": true";
    s_test_mix (e, w, 0.15, v);
    reply = s_test_search_vector (bus, v, options);
    order = s_test_order (reply);
    if (verbose)
        printf ("\n    inject at 0.15 -> %s", order);
    assert (streq (order, "b2@beta,a1@alpha,a2@alpha"));
    zstr_free (&order);
    bool injected = false;
    assert (lh_obj_bool (s_test_hit (reply, 0), "injected", &injected) && injected);
    assert (lh_obj_double (s_test_hit (reply, 0), "distance", &d) && fabs (d - 0.15) < 1e-3);
    lh_reply_destroy (&reply);
    s_test_mix (e, w, 0.30, v);
    reply = s_test_search_vector (bus, v, options);
    order = s_test_order (reply);
    if (verbose)
        printf ("\n    inject at 0.30 -> %s", order);
    assert (!strstr (order, "b2@"));
    zstr_free (&order);
    lh_reply_destroy (&reply);

    //  exclude_ids covering the nearest hits: still k, none excluded
    reply = lh_testbus_call (bus, "matrixd", "search",
                             "{\"query_text\": \"night shift welder in Columbus\", \"corpora\": "
                             "[\"alpha\", \"beta\"], \"k\": 3, \"exclude_ids\": [\"a1\", \"a2\", \"b1\"]}");
    order = s_test_order (reply);
    assert (streq (order, "a3@alpha,a3@beta,a4@alpha"));
    zstr_free (&order);
    lh_reply_destroy (&reply);
    //  ... also when the excluded one is injected from the playbook
    s_test_mix (e, w, 0.15, v);
    reply = s_test_search_vector (bus, v, "\"corpora\": [\"alpha\", \"beta\"], \"k\": 3, "
                                  "\"per_corpus_k\": 2, \"use_playbook\": true, "
                                  "\"exclude_ids\": [\"b2\"]");
    order = s_test_order (reply);
    assert (!strstr (order, "b2@") && strstr (order, "a1@alpha"));
    zstr_free (&order);
    lh_reply_destroy (&reply);

    //  Missing corpora: 404 naming them; a corpus of another dim: 400
    reply = lh_testbus_call (bus, "matrixd", "search",
                             "{\"query_text\": \"q\", \"corpora\": [\"alpha\", \"nosuch\", \"gone\"]}");
    text = lh_testbus_error (reply);
    assert (lh_reply_status (reply) == 404 && streq (text, "corpus_not_found/corpora"));
    assert (strstr (lh_reply_reason (reply), "'nosuch'") && strstr (lh_reply_reason (reply), "'gone'"));
    zstr_free (&text);
    lh_reply_destroy (&reply);
    reply = lh_testbus_call (bus, "matrixd", "search",
                             "{\"query_text\": \"q\", \"corpora\": [\"alpha\", \"wide\"]}");
    text = lh_testbus_error (reply);
    assert (lh_reply_status (reply) == 400 && streq (text, "dim_mismatch/corpora"));
    assert (strstr (lh_reply_reason (reply), "'wide' has dim 8"));
    zstr_free (&text);
    lh_reply_destroy (&reply);

    //  A bulk refused on its last entry wrote nothing
    reply = lh_testbus_call (bus, "vectord", "info", "{\"name\": \"playbook_memory\"}");
    assert (lh_obj_uint (lh_reply_object (reply), "count", &count) && count == 3);
    lh_reply_destroy (&reply);
    assert (lh_testbus_status (bus, "matrixd", "playbook_bulk",
                               "{\"entries\": [{\"query_text\": \"x\", \"answer_id\": \"n1\", "
                               "\"answer_corpus\": \"alpha\", \"score\": 1}, {\"query_text\": \"y\", "
                               "\"answer_id\": \"n2\", \"answer_corpus\": \"alpha\", \"score\": 7}]}") == 400);
    reply = lh_testbus_call (bus, "vectord", "info", "{\"name\": \"playbook_memory\"}");
    assert (lh_obj_uint (lh_reply_object (reply), "count", &count) && count == 3);
    lh_reply_destroy (&reply);

    //  corpora lists every index with dim, metric and count
    reply = lh_testbus_call (bus, "matrixd", "corpora", NULL);
    text = lh_testbus_json (reply);
    if (verbose)
        printf ("\n    corpora -> %s", text);
    assert (strstr (text, "{\"name\":\"alpha\",\"dim\":32,\"metric\":\"cosine\",\"count\":5}"));
    assert (lh_obj_uint (lh_reply_object (reply), "count", &count) && count == 4);
    zstr_free (&text);
    lh_reply_destroy (&reply);

    zstr_free (&search);
    zstr_free (&plain);
    lh_testbus_destroy (&bus);
    printf ("OK\n");
}
