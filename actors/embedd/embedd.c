/*  =========================================================================
    embedd - embeddings with a per-text LRU cache; see embedd.h

    The hash embedder: the text is lowercased (ASCII), split into words
    (runs of letters, digits and any byte >= 0x80); features are each word
    ("w:" + word, weight 1), each pair of adjacent words ("b:" + w1 + " " +
    w2, weight 0.7) and each character trigram of the space-joined words
    padded with a space at both ends ("c:" + 3 bytes, weight 0.5). Each
    feature's 64-bit FNV-1a hash picks a component (hash mod dim) and a
    sign (the top bit); the sum is L2-normalised. Byte-wise hashing makes
    it identical on every host. Texts sharing words and spellings share
    components, so near-duplicates score a high cosine, unrelated texts
    near zero.
    =========================================================================
*/

#include "embedd.h"
#include "lh_log.h"
#include <sodium.h>
#include <curl/curl.h>
#include <jansson.h>

#define S_NAME          "embedd"
#define S_KEY_SIZE      (crypto_hash_sha256_BYTES * 2 + 1)
#define S_REPLY_MAX     (64 * 1024 * 1024)  //  largest provider answer

typedef enum { S_HASH, S_OLLAMA, S_OPENAI } s_provider_t;

//  One cached vector, in the LRU list
typedef struct _s_cached_t {
    char key [S_KEY_SIZE];              //  hex SHA-256 of model NUL text
    float *vector;                      //  dim floats
    size_t dim;                         //  components
    struct _s_cached_t *newer;          //  towards the head (most recent)
    struct _s_cached_t *older;          //  towards the tail
} s_cached_t;

typedef struct {
    pthread_mutex_t lock;               //  guards the cache and counters
    zhashx_t *cache;                    //  key -> s_cached_t
    s_cached_t *newest;                 //  LRU head
    s_cached_t *oldest;                 //  LRU tail
    size_t capacity;                    //  most entries
    uint64_t hits;                      //  texts found in the cache
    uint64_t misses;                    //  texts that were computed
    s_provider_t provider;              //  default provider
    char *model;                        //  default model name
    size_t dim;                         //  hash embedder dimension
    char *ollama_url;                   //  Ollama base URL
    char *openai_url;                   //  OpenAI base URL
    char *openai_key_env;               //  env var with the OpenAI key
    int64_t timeout_ms;                 //  provider request timeout
    int64_t connect_timeout_ms;         //  provider connect timeout
    size_t texts_max;                   //  most texts per request
    size_t text_max;                    //  longest text
} s_state_t;


//  --------------------------------------------------------------------------
//  FNV-1a 64 over a prefix and bytes

static uint64_t
s_fnv (const char *prefix, const char *data, size_t size, const char *more, size_t more_size)
{
    uint64_t hash = 14695981039346656037ULL;
    for (const char *byte = prefix; *byte; byte++)
        hash = (hash ^ (unsigned char) *byte) * 1099511628211ULL;
    for (size_t index = 0; index < size; index++)
        hash = (hash ^ (unsigned char) data [index]) * 1099511628211ULL;
    if (more) {
        hash = (hash ^ ' ') * 1099511628211ULL;
        for (size_t index = 0; index < more_size; index++)
            hash = (hash ^ (unsigned char) more [index]) * 1099511628211ULL;
    }
    return hash;
}

static void
s_feature (float *vector, size_t dim, uint64_t hash, float weight)
{
    vector [hash % dim] += (hash >> 63)? -weight: weight;
}


//  --------------------------------------------------------------------------
//  The hash embedder: text (size bytes) into vector (dim floats)

static void
s_hash_embed (const char *text, size_t size, float *vector, size_t dim)
{
    memset (vector, 0, dim * sizeof (float));
    //  Normalised text: lowercase words joined by single spaces
    char *joined = (char *) malloc (size + 3);
    assert (joined);
    size_t length = 0;
    joined [length++] = ' ';
    for (size_t index = 0; index < size; index++) {
        unsigned char byte = (unsigned char) text [index];
        bool word = isalnum (byte) || byte >= 0x80;
        if (word)
            joined [length++] = (char) tolower (byte);
        else
        if (joined [length - 1] != ' ')
            joined [length++] = ' ';
    }
    if (joined [length - 1] != ' ')
        joined [length++] = ' ';
    //  Words and bigrams
    const char *previous = NULL;
    size_t previous_size = 0;
    size_t start = 1;
    for (size_t index = 1; index < length; index++) {
        if (joined [index] != ' ')
            continue;
        if (index > start) {
            const char *word = joined + start;
            size_t word_size = index - start;
            s_feature (vector, dim, s_fnv ("w:", word, word_size, NULL, 0), 1.0f);
            if (previous)
                s_feature (vector, dim, s_fnv ("b:", previous, previous_size, word, word_size), 0.7f);
            previous = word;
            previous_size = word_size;
        }
        start = index + 1;
    }
    //  Character trigrams (of text without words: of its raw bytes)
    if (length >= 3)
        for (size_t index = 0; index + 3 <= length; index++)
            s_feature (vector, dim, s_fnv ("c:", joined + index, 3, NULL, 0), 0.5f);
    if (length < 3)
        for (size_t index = 0; index + 3 <= size; index++)
            s_feature (vector, dim, s_fnv ("c:", text + index, 3, NULL, 0), 0.5f);
    free (joined);
    double norm = 0;
    for (size_t index = 0; index < dim; index++)
        norm += (double) vector [index] * vector [index];
    if (norm == 0) {
        //  Nothing hashed (a 1-2 byte symbol text): its bytes as a feature
        s_feature (vector, dim, s_fnv ("r:", text, size, NULL, 0), 1.0f);
        norm = 1;
    }
    float scale = (float) (1.0 / sqrt (norm));
    for (size_t index = 0; index < dim; index++)
        vector [index] *= scale;
}


//  --------------------------------------------------------------------------
//  Cache (caller holds the lock)

static void
s_cache_unlink (s_state_t *self, s_cached_t *entry)
{
    if (entry->newer)
        entry->newer->older = entry->older;
    else
        self->newest = entry->older;
    if (entry->older)
        entry->older->newer = entry->newer;
    else
        self->oldest = entry->newer;
    entry->newer = entry->older = NULL;
}

static void
s_cache_push (s_state_t *self, s_cached_t *entry)
{
    entry->older = self->newest;
    entry->newer = NULL;
    if (self->newest)
        self->newest->newer = entry;
    self->newest = entry;
    if (!self->oldest)
        self->oldest = entry;
}

static void
s_cached_destroy (s_cached_t **entry_p)
{
    if (*entry_p) {
        free ((*entry_p)->vector);
        free (*entry_p);
        *entry_p = NULL;
    }
}

//  Copy of the cached vector for key into out (dim floats); true if found
static bool
s_cache_get (s_state_t *self, const char *key, float **out, size_t *dim)
{
    s_cached_t *entry = (s_cached_t *) zhashx_lookup (self->cache, key);
    if (!entry)
        return false;
    s_cache_unlink (self, entry);
    s_cache_push (self, entry);
    *out = (float *) malloc (entry->dim * sizeof (float));
    assert (*out);
    memcpy (*out, entry->vector, entry->dim * sizeof (float));
    *dim = entry->dim;
    return true;
}

static void
s_cache_put (s_state_t *self, const char *key, const float *vector, size_t dim)
{
    if (self->capacity == 0 || zhashx_lookup (self->cache, key))
        return;
    while (zhashx_size (self->cache) >= self->capacity && self->oldest) {
        s_cached_t *victim = self->oldest;
        s_cache_unlink (self, victim);
        zhashx_delete (self->cache, victim->key);
        s_cached_destroy (&victim);
    }
    s_cached_t *entry = (s_cached_t *) zmalloc (sizeof (s_cached_t));
    memcpy (entry->key, key, S_KEY_SIZE);
    entry->vector = (float *) malloc (dim * sizeof (float));
    assert (entry->vector);
    memcpy (entry->vector, vector, dim * sizeof (float));
    entry->dim = dim;
    zhashx_insert (self->cache, entry->key, entry);
    s_cache_push (self, entry);
}

//  Cache key: hex SHA-256 of model, a NUL, the text
static void
s_cache_key (const char *model, const char *text, size_t size, char *key)
{
    crypto_hash_sha256_state state;
    crypto_hash_sha256_init (&state);
    crypto_hash_sha256_update (&state, (const unsigned char *) model, strlen (model) + 1);
    crypto_hash_sha256_update (&state, (const unsigned char *) text, size);
    unsigned char digest [crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final (&state, digest);
    sodium_bin2hex (key, S_KEY_SIZE, digest, sizeof (digest));
}


//  --------------------------------------------------------------------------
//  Provider calls over libcurl

typedef struct {
    char *data;                         //  body received
    size_t size;                        //  bytes
    bool too_large;                     //  past S_REPLY_MAX
    int64_t retry_after_ms;             //  from Retry-After, or -1
} s_http_t;

static size_t
s_http_write (char *data, size_t size, size_t count, void *arg)
{
    s_http_t *self = (s_http_t *) arg;
    size_t bytes = size * count;
    if (self->size + bytes > S_REPLY_MAX) {
        self->too_large = true;
        return 0;
    }
    char *grown = (char *) realloc (self->data, self->size + bytes + 1);
    if (!grown)
        return 0;
    self->data = grown;
    memcpy (self->data + self->size, data, bytes);
    self->size += bytes;
    self->data [self->size] = 0;
    return bytes;
}

static size_t
s_http_header (char *data, size_t size, size_t count, void *arg)
{
    s_http_t *self = (s_http_t *) arg;
    size_t bytes = size * count;
    if (bytes > 12 && strncasecmp (data, "Retry-After:", 12) == 0) {
        char value [64];
        size_t length = bytes - 12 < sizeof (value) - 1? bytes - 12: sizeof (value) - 1;
        memcpy (value, data + 12, length);
        value [length] = 0;
        char *end;
        double seconds = strtod (value, &end);
        if (end != value && seconds >= 0 && seconds < 86400)
            self->retry_after_ms = (int64_t) (seconds * 1000);
        else
            self->retry_after_ms = 1000;        //  an HTTP date: a second
    }
    return bytes;
}

static int
s_http_progress (void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    lh_keepalive ();
    return 0;
}

//  The upstream's error message from a JSON error body, or a copy of the
//  start of the body
static char *
s_upstream_message (const s_http_t *http)
{
    json_t *root = http->data? json_loadb (http->data, http->size, 0, NULL): NULL;
    const char *message = NULL;
    json_t *error = root? json_object_get (root, "error"): NULL;
    if (json_is_string (error))
        message = json_string_value (error);
    else
    if (json_is_object (error) && json_is_string (json_object_get (error, "message")))
        message = json_string_value (json_object_get (error, "message"));
    char *copy = message? strdup (message):
                 http->data? strndup (http->data, 200): strdup ("(no body)");
    json_decref (root);
    return copy;
}

//  Read an array of numbers as a vector; returns a malloced vector and
//  sets *dim, or NULL
static float *
s_json_vector (json_t *array, size_t *dim)
{
    if (!json_is_array (array) || json_array_size (array) == 0)
        return NULL;
    size_t size = json_array_size (array);
    float *vector = (float *) malloc (size * sizeof (float));
    assert (vector);
    for (size_t index = 0; index < size; index++) {
        json_t *value = json_array_get (array, index);
        if (!json_is_number (value)) {
            free (vector);
            return NULL;
        }
        vector [index] = (float) json_number_value (value);
    }
    *dim = size;
    return vector;
}

//  Ask a provider for the vectors of count texts into vectors (count
//  malloced vectors of *dim floats). Returns 0, or -1 after answering.
static int
s_provider_embed (s_state_t *self, lh_request_t *request, s_provider_t provider,
                  const char *model, const char **texts, const size_t *sizes, size_t count,
                  float **vectors, size_t *dim)
{
    const char *base = provider == S_OLLAMA? self->ollama_url: self->openai_url;
    char *url = zsys_sprintf ("%s%s", base, provider == S_OLLAMA? "/api/embed": "/v1/embeddings");
    json_t *body = json_object ();
    json_object_set_new (body, "model", json_string (model));
    json_t *input = json_array ();
    for (size_t index = 0; index < count; index++)
        json_array_append_new (input, json_stringn (texts [index], sizes [index]));
    json_object_set_new (body, "input", input);
    char *payload = json_dumps (body, JSON_COMPACT);
    json_decref (body);
    struct curl_slist *headers = curl_slist_append (NULL, "Content-Type: application/json");
    if (provider == S_OPENAI) {
        const char *key = getenv (self->openai_key_env);
        if (!key || !*key) {
            curl_slist_free_all (headers);
            free (payload);
            zstr_free (&url);
            return lh_request_fail (request, LH_ST_BAD_GATEWAY, "provider_not_configured",
                                    "openai embeddings need an API key in $%s",
                                    self->openai_key_env);
        }
        char *authorization = zsys_sprintf ("Authorization: Bearer %s", key);
        headers = curl_slist_append (headers, authorization);
        zstr_free (&authorization);
    }
    int64_t timeout = self->timeout_ms;
    uint64_t left = lh_request_time_left (request);
    if (left > 0 && (int64_t) left < timeout)
        timeout = (int64_t) left;
    s_http_t http = { NULL, 0, false, -1 };
    CURL *curl = curl_easy_init ();
    assert (curl);
    curl_easy_setopt (curl, CURLOPT_URL, url);
    curl_easy_setopt (curl, CURLOPT_POSTFIELDS, payload);
    curl_easy_setopt (curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, s_http_write);
    curl_easy_setopt (curl, CURLOPT_WRITEDATA, &http);
    curl_easy_setopt (curl, CURLOPT_HEADERFUNCTION, s_http_header);
    curl_easy_setopt (curl, CURLOPT_HEADERDATA, &http);
    curl_easy_setopt (curl, CURLOPT_XFERINFOFUNCTION, s_http_progress);
    curl_easy_setopt (curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt (curl, CURLOPT_TIMEOUT_MS, (long) (timeout > 0? timeout: 1));
    curl_easy_setopt (curl, CURLOPT_CONNECTTIMEOUT_MS, (long) self->connect_timeout_ms);
    curl_easy_setopt (curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (curl, CURLOPT_PROTOCOLS_STR, "http,https");
    //  The multi interface, polled every 100 ms, so the worker heartbeats
    //  even while the provider is silent (libcurl calls the progress
    //  function only about once a second then)
    CURLcode code = CURLE_FAILED_INIT;
    CURLM *multi = curl_multi_init ();
    assert (multi);
    curl_multi_add_handle (multi, curl);
    int running = 1;
    while (running) {
        if (curl_multi_perform (multi, &running) != CURLM_OK)
            break;
        if (running)
            curl_multi_poll (multi, NULL, 0, 100, NULL);
        lh_keepalive ();
    }
    CURLMsg *message;
    int queued;
    while ((message = curl_multi_info_read (multi, &queued)))
        if (message->msg == CURLMSG_DONE && message->easy_handle == curl)
            code = message->data.result;
    curl_multi_remove_handle (multi, curl);
    curl_multi_cleanup (multi);
    long status = 0;
    curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup (curl);
    curl_slist_free_all (headers);
    free (payload);
    const char *name = provider == S_OLLAMA? "ollama": "openai";
    int rc = -1;
    if (code == CURLE_OPERATION_TIMEDOUT)
        lh_request_fail (request, LH_ST_TIMEOUT, "provider_timeout",
                         "%s did not answer within %" PRId64 " ms", name, timeout);
    else
    if (code != CURLE_OK)
        lh_request_fail (request, LH_ST_BAD_GATEWAY, "provider_unreachable",
                         "%s at %s: %s", name, base, curl_easy_strerror (code));
    else
    if (status == 429) {
        char *message = s_upstream_message (&http);
        lh_request_fail_retry (request, LH_ST_TOO_MANY, "rate_limited",
                               http.retry_after_ms >= 0? (uint64_t) http.retry_after_ms: 1000,
                               "%s is rate limiting: %s", name, message);
        free (message);
    }
    else
    if (status < 200 || status > 299) {
        char *message = s_upstream_message (&http);
        lh_request_fail (request, LH_ST_BAD_GATEWAY, "provider_error",
                         "%s answered %ld: %s", name, status, message);
        free (message);
    }
    else {
        //  Ollama {"embeddings": [[...]]}; OpenAI {"data": [{"index", "embedding"}]}
        json_t *root = json_loadb (http.data? http.data: "", http.size, 0, NULL);
        json_t *list = root? json_object_get (root, provider == S_OLLAMA? "embeddings": "data"): NULL;
        bool good = json_is_array (list) && json_array_size (list) == count;
        *dim = 0;
        for (size_t index = 0; good && index < count; index++) {
            json_t *item = json_array_get (list, index);
            size_t slot = index, size = 0;
            if (provider == S_OPENAI) {
                json_t *position = json_object_get (item, "index");
                if (json_is_integer (position))
                    slot = (size_t) json_integer_value (position);
                item = json_object_get (item, "embedding");
            }
            float *vector = slot < count && !vectors [slot]? s_json_vector (item, &size): NULL;
            if (!vector || (*dim && size != *dim))
                good = false;
            else {
                vectors [slot] = vector;
                *dim = size;
                vector = NULL;
            }
            free (vector);
        }
        json_decref (root);
        if (good)
            rc = 0;
        else {
            for (size_t index = 0; index < count; index++) {
                free (vectors [index]);
                vectors [index] = NULL;
            }
            lh_request_fail (request, LH_ST_BAD_GATEWAY, "bad_provider_reply",
                             "%s's answer is not %zu vectors of one dimension", name, count);
        }
    }
    free (http.data);
    zstr_free (&url);
    return rc;
}


//  --------------------------------------------------------------------------
//  Resolve a model name to a provider and the provider's model name;
//  returns 0, or -1 after answering 404

static int
s_route (s_state_t *self, lh_request_t *request, const char *model,
         s_provider_t *provider, const char **provider_model)
{
    if (strncmp (model, "ollama/", 7) == 0 && model [7]) {
        *provider = S_OLLAMA;
        *provider_model = model + 7;
    }
    else
    if (strncmp (model, "openai/", 7) == 0 && model [7]) {
        *provider = S_OPENAI;
        *provider_model = model + 7;
    }
    else
    if (streq (model, "hash") || (self->provider == S_HASH && streq (model, self->model))) {
        *provider = S_HASH;
        *provider_model = model;
    }
    else
    if (self->provider != S_HASH) {
        *provider = self->provider;
        *provider_model = model;
    }
    else
        return lh_request_fail (request, LH_ST_NOT_FOUND, "no_such_model",
                                "no embedding model '%s' (use hash, ollama/MODEL or "
                                "openai/MODEL)", model);
    return 0;
}


//  --------------------------------------------------------------------------
//  embed {texts, model?}

static void
s_embed (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    const msgpack_object *body = lh_request_map (request);
    const msgpack_object *texts = NULL;
    char *model = NULL;
    if (!body
    ||  lh_request_array (request, body, "texts", LH_FIELD_REQUIRED | LH_FIELD_NONEMPTY
                                                | LH_FIELD_LIMIT_413,
                          (uint32_t) self->texts_max, &texts)
    ||  lh_request_strdup (request, body, "model", LH_FIELD_NONEMPTY, 256, &model))
        goto refused;
    size_t count = texts->via.array.size;
    for (size_t index = 0; index < count; index++) {
        const msgpack_object *text = &texts->via.array.ptr [index];
        char field [32];
        snprintf (field, sizeof (field), "texts[%zu]", index);
        if (text->type != MSGPACK_OBJECT_STR) {
            lh_request_bad (request, field, "texts[%zu] is not a string", index);
            goto refused;
        }
        if (text->via.str.size == 0) {
            lh_request_fail_field (request, LH_ST_BAD_REQUEST, "empty_text", field,
                                   "texts[%zu] is empty", index);
            goto refused;
        }
        if (text->via.str.size > self->text_max) {
            lh_request_fail_field (request, LH_ST_TOO_LARGE, "too_large", field,
                                   "texts[%zu] has %u bytes; at most %zu (embedd/text_max)",
                                   index, text->via.str.size, self->text_max);
            goto refused;
        }
    }
    if (!model)
        model = strdup (self->model);
    s_provider_t provider = S_HASH;
    const char *provider_model = NULL;
    if (s_route (self, request, model, &provider, &provider_model)) {
        free (model);
        return;
    }
    //  Cache lookups; the misses (each distinct text once) to the provider
    char (*keys) [S_KEY_SIZE] = calloc (count, S_KEY_SIZE);
    float **vectors = (float **) calloc (count, sizeof (float *));
    size_t *dims = (size_t *) calloc (count, sizeof (size_t));
    size_t *miss = (size_t *) calloc (count, sizeof (size_t));
    const char **miss_texts = (const char **) calloc (count, sizeof (char *));
    size_t *miss_sizes = (size_t *) calloc (count, sizeof (size_t));
    float **fetched = (float **) calloc (count, sizeof (float *));
    assert (keys && vectors && dims && miss && miss_texts && miss_sizes && fetched);
    size_t misses = 0, hits = 0, fetched_dim = 0;
    pthread_mutex_lock (&self->lock);
    for (size_t index = 0; index < count; index++) {
        const msgpack_object *text = &texts->via.array.ptr [index];
        s_cache_key (model, text->via.str.ptr, text->via.str.size, keys [index]);
        if (s_cache_get (self, keys [index], &vectors [index], &dims [index]))
            hits++;
        else {
            bool seen = false;
            for (size_t other = 0; other < misses && !seen; other++)
                seen = streq (keys [miss [other]], keys [index]);
            if (!seen) {
                miss_texts [misses] = text->via.str.ptr;
                miss_sizes [misses] = text->via.str.size;
                miss [misses++] = index;
            }
        }
    }
    self->hits += hits;
    self->misses += count - hits;
    pthread_mutex_unlock (&self->lock);
    int rc = 0;
    if (misses && provider == S_HASH) {
        fetched_dim = self->dim;
        for (size_t index = 0; index < misses; index++) {
            fetched [index] = (float *) malloc (self->dim * sizeof (float));
            assert (fetched [index]);
            s_hash_embed (miss_texts [index], miss_sizes [index], fetched [index], self->dim);
        }
    }
    else
    if (misses)
        rc = s_provider_embed (self, request, provider, provider_model, miss_texts, miss_sizes,
                               misses, fetched, &fetched_dim);
    if (rc == 0) {
        //  Fill the misses (duplicates share the fetched vector)
        pthread_mutex_lock (&self->lock);
        for (size_t index = 0; index < misses; index++)
            s_cache_put (self, keys [miss [index]], fetched [index], fetched_dim);
        pthread_mutex_unlock (&self->lock);
        for (size_t index = 0; index < count; index++)
            if (!vectors [index])
                for (size_t other = 0; other < misses; other++)
                    if (streq (keys [miss [other]], keys [index])) {
                        vectors [index] = (float *) malloc (fetched_dim * sizeof (float));
                        memcpy (vectors [index], fetched [other], fetched_dim * sizeof (float));
                        dims [index] = fetched_dim;
                        break;
                    }
        size_t dim = dims [0];
        bool same = true;
        for (size_t index = 0; index < count; index++)
            same = same && vectors [index] && dims [index] == dim;
        if (!same)
            lh_request_fail (request, LH_ST_BAD_GATEWAY, "bad_provider_reply",
                             "model '%s' gave vectors of different dimensions", model);
        else {
            lh_pack_t *pack = lh_pack_new ();
            msgpack_packer *packer = lh_pack_packer (pack);
            lh_pack_map (pack, 3);
            lh_pack_kv_str (pack, "model", model);
            lh_pack_kv_uint (pack, "dim", dim);
            lh_pack_str (pack, "vectors");
            lh_pack_array (pack, (uint32_t) count);
            for (size_t index = 0; index < count; index++) {
                lh_pack_array (pack, (uint32_t) dim);
                for (size_t component = 0; component < dim; component++)
                    msgpack_pack_float (packer, vectors [index][component]);
            }
            lh_request_reply_pack (request, LH_ST_OK, &pack);
        }
    }
    for (size_t index = 0; index < count; index++) {
        free (vectors [index]);
        free (fetched [index]);
    }
    free (keys);
    free (vectors);
    free (dims);
    free (miss);
    free (miss_texts);
    free (miss_sizes);
    free (fetched);
    free (model);
    return;
refused:
    free (model);
}


//  --------------------------------------------------------------------------
//  stats {}

static void
s_stats (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    pthread_mutex_lock (&self->lock);
    uint64_t hits = self->hits, misses = self->misses;
    size_t size = zhashx_size (self->cache);
    pthread_mutex_unlock (&self->lock);
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 5);
    lh_pack_kv_uint (pack, "hits", hits);
    lh_pack_kv_uint (pack, "misses", misses);
    lh_pack_kv_double (pack, "hit_rate", hits + misses? (double) hits / (double) (hits + misses): 0.0);
    lh_pack_kv_uint (pack, "size", size);
    lh_pack_kv_uint (pack, "capacity", self->capacity);
    lh_request_reply_pack (request, LH_ST_OK, &pack);
}


//  --------------------------------------------------------------------------
//  Destroy the state

static void
s_state_destroy (void **state_p)
{
    s_state_t *self = (s_state_t *) *state_p;
    if (self) {
        while (self->oldest) {
            s_cached_t *entry = self->oldest;
            s_cache_unlink (self, entry);
            s_cached_destroy (&entry);
        }
        zhashx_destroy (&self->cache);
        pthread_mutex_destroy (&self->lock);
        free (self->model);
        free (self->ollama_url);
        free (self->openai_url);
        free (self->openai_key_env);
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
    pthread_mutex_init (&self->lock, NULL);
    self->cache = zhashx_new ();
    const char *provider = lh_config_str (config, "embedd/provider");
    const char *model = lh_config_str (config, "embedd/model");
    int64_t dim = lh_config_int (config, "embedd/dim");
    int64_t capacity = lh_config_int (config, "embedd/cache_entries");
    self->timeout_ms = lh_config_int (config, "embedd/timeout_ms");
    self->connect_timeout_ms = lh_config_int (config, "embedd/connect_timeout_ms");
    int64_t texts_max = lh_config_int (config, "embedd/texts_max");
    int64_t text_max = lh_config_int (config, "embedd/text_max");
    self->ollama_url = strdup (lh_config_str (config, "embedd/ollama_url"));
    self->openai_url = strdup (lh_config_str (config, "embedd/openai_url"));
    self->openai_key_env = strdup (lh_config_str (config, "embedd/openai_key_env"));
    if (streq (provider, "hash"))
        self->provider = S_HASH;
    else
    if (streq (provider, "ollama"))
        self->provider = S_OLLAMA;
    else
    if (streq (provider, "openai"))
        self->provider = S_OPENAI;
    else
        *error = "embedd/provider must be hash, ollama or openai";
    self->model = strdup (*model? model: self->provider == S_OLLAMA? "nomic-embed-text":
                          self->provider == S_OPENAI? "text-embedding-3-small": "hash");
    if (*error) {
        void *state = self;
        s_state_destroy (&state);
        return NULL;
    }
    self->dim = (size_t) dim;
    self->capacity = (size_t) capacity;
    self->texts_max = (size_t) texts_max;
    self->text_max = (size_t) text_max;
    curl_global_init (CURL_GLOBAL_DEFAULT);
    lh_info (S_NAME, NULL, "provider %s, model '%s', cache %zu entries",
             provider, self->model, self->capacity);
    return self;
}


static const lh_op_t s_ops [] = {
    { "embed", s_embed },
    { "stats", s_stats },
    { NULL, NULL }
};

const lh_service_t lh_embedd_service = {
    .name = "embedd",
    .ops = s_ops,
    .state_new = s_state_new,
    .state_destroy = s_state_destroy,
    .credit = 1
};


//  --------------------------------------------------------------------------
//  Self test: the hash embedder, the cache, the service over inproc

#include "lh_testbus.h"

static double
s_test_cosine (const float *a, const float *b, size_t dim)
{
    double dot = 0;
    for (size_t index = 0; index < dim; index++)
        dot += (double) a [index] * b [index];
    return dot;
}

static lh_reply_t *
s_test_embed (lh_testbus_t *bus, const char **texts, size_t count, const char *model)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, model? 2: 1);
    lh_pack_str (pack, "texts");
    lh_pack_array (pack, (uint32_t) count);
    for (size_t index = 0; index < count; index++)
        lh_pack_str (pack, texts [index]);
    if (model)
        lh_pack_kv_str (pack, "model", model);
    size_t size;
    const void *data = lh_pack_data (pack, &size);
    lh_reply_t *reply = lh_testbus_call_raw (bus, "embedd", "embed", data, size);
    lh_pack_destroy (&pack);
    return reply;
}

void
lh_embedd_test (bool verbose)
{
    printf (" * embedd: ");
    //  Hash embedder: unit norm, deterministic, near-duplicates closer
    const size_t dim = 768;
    float a [768], b [768], c [768], again [768];
    const char *one = "Senior welder, night shift, Columbus OH";
    const char *near = "senior welder - night shift - Columbus, Ohio";
    const char *far = "Quarterly revenue grew in the software segment";
    s_hash_embed (one, strlen (one), a, dim);
    s_hash_embed (near, strlen (near), b, dim);
    s_hash_embed (far, strlen (far), c, dim);
    s_hash_embed (one, strlen (one), again, dim);
    assert (memcmp (a, again, sizeof (a)) == 0);
    assert (fabs (s_test_cosine (a, a, dim) - 1.0) < 1e-5);
    assert (s_test_cosine (a, b, dim) > 0.5);
    assert (s_test_cosine (a, b, dim) > s_test_cosine (a, c, dim) + 0.3);
    s_hash_embed ("!", 1, c, dim);
    assert (fabs (s_test_cosine (c, c, dim) - 1.0) < 1e-5);
    //  A fixed value, the same on every host (FNV-1a is byte-wise)
    s_hash_embed ("hello world", 11, c, dim);
    size_t largest = 0;
    for (size_t index = 1; index < dim; index++)
        if (fabsf (c [index]) > fabsf (c [largest]))
            largest = index;
    if (verbose)
        printf ("(hello world: largest component %zu = %f) ", largest, c [largest]);

    //  Service: cache hits and misses, order, errors
    lh_testbus_t *bus = lh_testbus_new ("embedd");
    lh_testbus_set (bus, "embedd/dim", "16");
    lh_testbus_set (bus, "embedd/cache_entries", "3");
    lh_testbus_start (bus, &lh_embedd_service, 1);
    const char *texts [3] = { "alpha", "beta", "alpha" };
    lh_reply_t *reply = s_test_embed (bus, texts, 3, NULL);
    assert (lh_reply_status (reply) == 200);
    const msgpack_object *vectors = lh_obj_get (lh_reply_object (reply), "vectors");
    assert (vectors && vectors->via.array.size == 3);
    assert (vectors->via.array.ptr [0].via.array.size == 16);
    assert (msgpack_object_equal (vectors->via.array.ptr [0], vectors->via.array.ptr [2]));
    assert (!msgpack_object_equal (vectors->via.array.ptr [0], vectors->via.array.ptr [1]));
    lh_reply_destroy (&reply);
    reply = s_test_embed (bus, texts, 2, "hash");
    assert (lh_reply_status (reply) == 200);
    lh_reply_destroy (&reply);
    const char *empty [1] = { "" };
    reply = s_test_embed (bus, empty, 1, NULL);
    assert (lh_reply_status (reply) == 400);
    lh_reply_destroy (&reply);
    reply = s_test_embed (bus, texts, 1, "no-such-model");
    assert (lh_reply_status (reply) == 404);
    lh_reply_destroy (&reply);
    reply = lh_testbus_call (bus, "embedd", "stats", NULL);
    assert (lh_reply_status (reply) == 200);
    uint64_t hits = 0, misses = 0, size = 0;
    const msgpack_object *stats = lh_reply_object (reply);
    assert (lh_obj_uint (stats, "hits", &hits) && hits == 2);
    assert (lh_obj_uint (stats, "misses", &misses) && misses == 3);
    assert (lh_obj_uint (stats, "size", &size) && size == 2);
    lh_reply_destroy (&reply);
    //  Bad bodies: one answer each, naming the field
    struct {
        const char *json, *field;
        uint32_t status;
    } bad [] = {
        { NULL, "texts", 400 },
        { "{\"texts\": []}", "texts", 400 },
        { "{\"texts\": \"a\"}", "texts", 400 },
        { "{\"texts\": [\"a\", 3]}", "texts[1]", 400 },
        { "{\"texts\": [\"a\", \"\"]}", "texts[1]", 400 },
        { "{\"texts\": [\"a\"], \"model\": \"\"}", "model", 400 },
        { "{\"texts\": [\"a\"], \"model\": 7}", "model", 400 },
    };
    for (size_t index = 0; index < sizeof (bad) / sizeof (bad [0]); index++)
        lh_testbus_expect (bus, "embedd", "embed", bad [index].json, bad [index].status, NULL,
                           bad [index].field);
    lh_testbus_destroy (&bus);
    printf ("OK\n");
}
