/*  =========================================================================
    chatd - route a chat to any LLM provider; see chatd.h and docs/chatd.md

    One provider call is one libcurl transfer on the worker's thread, run
    through the multi interface in 100 ms slices; between slices the worker
    asks the runtime for the time left, which also heartbeats the broker,
    so a slow model never makes the worker look dead; the call is aborted
    when the caller's deadline passes. Retries (429, 5xx, transport errors) back off
    exponentially from chatd/backoff_ms, or wait what the provider's
    Retry-After asks, never past the caller's deadline.
    =========================================================================
*/

#include "chatd.h"
#include "lh_json.h"
#include "lh_log.h"
#include <curl/curl.h>
#include <sys/stat.h>

#define S_MESSAGE_MAX       500         //  upstream message kept in a 502, bytes
#define S_SLEEP_SLICE       100         //  backoff sleeps in slices, ms
#define S_POLL_MS           100         //  transfer poll slice (heartbeats), ms
#define S_TIERS             5           //  named tiers in config models/

//  One provider's routing entry
typedef struct {
    const char *name;                   //  provider name
    const char *url_key;                //  config key of its base URL
    const char *env;                    //  env var holding its key, or NULL
    bool openai;                        //  OpenAI-compatible (else Ollama)
} s_provider_def_t;

static const s_provider_def_t s_providers [LH_PROVIDER_COUNT] = {
    { "ollama",       "chatd/ollama_url",       NULL,                 false },
    { "ollama_cloud", "chatd/ollama_cloud_url", "OLLAMA_API_KEY",     false },
    { "openrouter",   "chatd/openrouter_url",   "OPENROUTER_API_KEY", true  },
    { "opencode",     "chatd/opencode_url",     "OPENCODE_API_KEY",   true  },
    { "kimi",         "chatd/kimi_url",         "KIMI_API_KEY",       true  },
};

static const char *s_tier_names [S_TIERS] = {
    "local_fast", "local_judge", "cloud_judge", "cloud_review", "frontier_review"
};

//  A configured provider
typedef struct {
    char *base_url;                     //  base URL without trailing '/', NULL = none
    char *key;                          //  API key, NULL = none
} s_provider_t;

//  Shared state: read-only after start, so no lock
typedef struct {
    s_provider_t providers [LH_PROVIDER_COUNT];   //  by lh_provider_t
    char *tiers [S_TIERS];              //  model of each tier
    char *weak_models;                  //  comma-separated
    int64_t timeout_ms;                 //  one HTTP request
    int64_t connect_timeout_ms;         //  connect phase
    int64_t retries;                    //  retries after the first attempt
    int64_t backoff_ms;                 //  first retry delay
    int64_t retry_after_max_ms;         //  longest Retry-After honoured
    int64_t num_ctx;                    //  Ollama options.num_ctx
    int64_t response_max;               //  largest response body
    bool think;                         //  Ollama think flag
} s_state_t;

//  One HTTP exchange
typedef struct {
    lh_request_t *request;              //  the bus request (heartbeats, deadline)
    char *data;                         //  response body
    size_t size;                        //  bytes in data
    size_t limit;                       //  most bytes accepted
    bool too_big;                       //  the body passed the limit
    int64_t retry_after_ms;             //  Retry-After, -1 if none
} s_exchange_t;


//  --------------------------------------------------------------------------
//  Route a model name to a provider and the model name to send

int
lh_chatd_route (const char *model, lh_provider_t *provider, char *model_out, size_t capacity)
{
    assert (provider);
    assert (model_out && capacity > 0);
    if (!model || !*model)
        return -1;
    static const struct { const char *prefix; lh_provider_t provider; } s_prefixes [] = {
        { "ollama_cloud/", LH_PROVIDER_OLLAMA_CLOUD },
        { "ollama/",       LH_PROVIDER_OLLAMA },
        { "openrouter/",   LH_PROVIDER_OPENROUTER },
        { "opencode/",     LH_PROVIDER_OPENCODE },
        { "kimi/",         LH_PROVIDER_KIMI },
    };
    const char *stripped = model;
    size_t size = strlen (model);
    *provider = LH_PROVIDER_OLLAMA;
    bool prefixed = false;
    for (size_t index = 0; index < sizeof (s_prefixes) / sizeof (s_prefixes [0]); index++) {
        size_t prefix = strlen (s_prefixes [index].prefix);
        if (strncmp (model, s_prefixes [index].prefix, prefix) == 0) {
            *provider = s_prefixes [index].provider;
            stripped = model + prefix;
            size -= prefix;
            prefixed = true;
            break;
        }
    }
    //  M:cloud (bare, or after ollama/) goes to Ollama Cloud as M
    if ((!prefixed || *provider == LH_PROVIDER_OLLAMA)
    &&  size > 6 && strcmp (stripped + size - 6, ":cloud") == 0) {
        *provider = LH_PROVIDER_OLLAMA_CLOUD;
        size -= 6;
    }
    //  OpenRouter names are VENDOR/MODEL
    if (*provider == LH_PROVIDER_OPENROUTER) {
        const char *slash = (const char *) memchr (stripped, '/', size);
        if (!slash || slash == stripped || slash == stripped + size - 1)
            return -1;
    }
    if (size == 0 || size >= capacity)
        return -1;
    memcpy (model_out, stripped, size);
    model_out [size] = 0;
    return 0;
}


//  --------------------------------------------------------------------------
//  The model a request means with a provider named beside it

char *
lh_chatd_qualify (const char *model, const char *provider, char **error_p)
{
    assert (model && error_p);
    if (!provider || !*provider)
        return strdup (model);
    int named = -1;
    for (int index = 0; index < LH_PROVIDER_COUNT && named < 0; index++)
        if (streq (provider, s_providers [index].name))
            named = index;
    if (named < 0) {
        *error_p = zsys_sprintf ("unknown provider '%s': ollama, ollama_cloud, openrouter, "
                                 "opencode or kimi", provider);
        return NULL;
    }
    //  A name the routing table strips has its provider already
    lh_provider_t routed;
    char sent [256];
    if (lh_chatd_route (model, &routed, sent, sizeof (sent)) == 0 && !streq (sent, model)) {
        if ((int) routed == named)
            return strdup (model);
        *error_p = zsys_sprintf ("model '%s' routes to provider %s, and the request names "
                                 "provider %s: drop one of them", model,
                                 s_providers [routed].name, provider);
        return NULL;
    }
    return zsys_sprintf ("%s/%s", provider, model);
}


//  --------------------------------------------------------------------------
//  Name of a provider

const char *
lh_chatd_provider_name (lh_provider_t provider)
{
    return provider < LH_PROVIDER_COUNT? s_providers [provider].name: "unknown";
}


//  --------------------------------------------------------------------------
//  Normalise a finish / done reason to stop, length, or the provider's word

static const char *
s_finish_reason (const char *reason)
{
    if (!reason || !*reason)
        return "unknown";
    if (streq (reason, "stop") || streq (reason, "end_turn") || streq (reason, "eos")
    ||  streq (reason, "stop_sequence"))
        return "stop";
    if (streq (reason, "length") || streq (reason, "max_tokens") || streq (reason, "max_length"))
        return "length";
    return reason;
}


//  --------------------------------------------------------------------------
//  Integer member or 0

static json_int_t
s_int (json_t *object, const char *key)
{
    json_t *value = json_object_get (object, key);
    return json_is_integer (value)? json_integer_value (value): 0;
}


//  --------------------------------------------------------------------------
//  Parse a provider's 200 response into {content, finish_reason, usage}

json_t *
lh_chatd_parse_response (bool openai, const char *data, size_t size, const char **error_p)
{
    assert (error_p);
    *error_p = NULL;
    zchunk_t *content = zchunk_new (NULL, 0);
    char *reason = NULL;
    json_int_t prompt = 0, completion = 0, total = 0;
    bool any = false, sse = false;

    const char *end = data + size;
    const char *scan = data;
    while (scan < end && isspace ((unsigned char) *scan))
        scan++;
    if (openai && (size_t) (end - scan) >= 5 && memcmp (scan, "data:", 5) == 0)
        sse = true;
    //  Whole JSON (one line or pretty-printed) unless the body is a stream
    bool ndjson = !openai && memchr (scan, '\n', end - scan) != NULL;
    if (ndjson) {
        //  A pretty-printed single object parses whole; NDJSON does not
        json_t *whole = json_loadb (scan, end - scan, 0, NULL);
        if (whole) {
            ndjson = false;
            json_decref (whole);
        }
    }
    bool streamed = sse || ndjson;

    while (scan < end) {
        const char *line = scan, *line_end = end;
        if (streamed) {
            const char *eol = (const char *) memchr (scan, '\n', end - scan);
            line_end = eol? eol: end;
            scan = eol? eol + 1: end;
        }
        else
            scan = end;
        while (line < line_end && isspace ((unsigned char) *line))
            line++;
        if (sse) {
            if ((size_t) (line_end - line) < 5 || memcmp (line, "data:", 5) != 0)
                continue;               //  event:, id:, comments, blank lines
            line += 5;
            while (line < line_end && isspace ((unsigned char) *line))
                line++;
            if (line_end - line >= 6 && memcmp (line, "[DONE]", 6) == 0)
                break;
        }
        if (line == line_end)
            continue;
        json_error_t error;
        json_t *chunk = json_loadb (line, line_end - line, 0, &error);
        if (!json_is_object (chunk)) {
            json_decref (chunk);
            *error_p = "response is not JSON";
            break;
        }
        if (json_object_get (chunk, "error")) {
            json_decref (chunk);
            *error_p = "response carries an error";
            break;
        }
        any = true;
        if (openai) {
            json_t *choice = json_array_get (json_object_get (chunk, "choices"), 0);
            json_t *message = json_object_get (choice, sse? "delta": "message");
            json_t *text = json_object_get (message, "content");
            if (json_is_string (text))
                zchunk_extend (content, json_string_value (text), json_string_length (text));
            json_t *finish = json_object_get (choice, "finish_reason");
            if (json_is_string (finish)) {
                free (reason);
                reason = strdup (json_string_value (finish));
            }
            json_t *usage = json_object_get (chunk, "usage");
            if (json_is_object (usage)) {
                prompt = s_int (usage, "prompt_tokens");
                completion = s_int (usage, "completion_tokens");
                total = s_int (usage, "total_tokens");
            }
            if (!sse && !choice) {
                json_decref (chunk);
                *error_p = "response has no choices";
                break;
            }
        }
        else {
            json_t *text = json_object_get (json_object_get (chunk, "message"), "content");
            if (json_is_string (text))
                zchunk_extend (content, json_string_value (text), json_string_length (text));
            else
            if (!streamed) {
                json_decref (chunk);
                *error_p = "response has no message.content";
                break;
            }
            json_t *done = json_object_get (chunk, "done_reason");
            if (json_is_string (done)) {
                free (reason);
                reason = strdup (json_string_value (done));
            }
            else
            if (json_is_true (json_object_get (chunk, "done")) && !reason)
                reason = strdup ("stop");
            if (json_object_get (chunk, "prompt_eval_count"))
                prompt = s_int (chunk, "prompt_eval_count");
            if (json_object_get (chunk, "eval_count"))
                completion = s_int (chunk, "eval_count");
        }
        json_decref (chunk);
    }
    json_t *result = NULL;
    if (!*error_p && !any)
        *error_p = "response is empty";
    if (!*error_p) {
        if (total == 0)
            total = prompt + completion;
        result = json_pack ("{s:s%,s:s,s:{s:I,s:I,s:I}}",
                            "content", (const char *) zchunk_data (content), zchunk_size (content),
                            "finish_reason", s_finish_reason (reason),
                            "usage", "prompt_tokens", prompt, "completion_tokens", completion,
                            "total_tokens", total);
        if (!result)
            *error_p = "response content is not valid UTF-8";
    }
    free (reason);
    zchunk_destroy (&content);
    return result;
}


//  --------------------------------------------------------------------------
//  Read NAME=value lines of the env file into the providers' keys (env vars
//  win). Returns 0, or -1 with *error set (static) after logging why.

static int
s_load_env_file (s_state_t *self, const char *path, const char **error)
{
    struct stat info;
    FILE *file = fopen (path, "r");
    if (!file || fstat (fileno (file), &info) != 0) {
        lh_error ("chatd", NULL, "chatd/env_file %s: cannot open: %s", path, strerror (errno));
        if (file)
            fclose (file);
        *error = "chatd/env_file cannot be read";
        return -1;
    }
    if (info.st_mode & 077) {
        lh_error ("chatd", NULL, "chatd/env_file %s is mode %03o: it must be 0600 (chmod 600 %s)",
                  path, (unsigned) (info.st_mode & 0777), path);
        fclose (file);
        *error = "chatd/env_file must be mode 0600";
        return -1;
    }
    char *line = NULL;
    size_t capacity = 0;
    while (getline (&line, &capacity, file) > 0) {
        char *name = line;
        while (isspace ((unsigned char) *name))
            name++;
        if (*name == '#' || !*name)
            continue;
        if (strncmp (name, "export ", 7) == 0)
            name += 7;
        char *equals = strchr (name, '=');
        if (!equals)
            continue;
        *equals = 0;
        char *value = equals + 1;
        size_t size = strlen (value);
        while (size && isspace ((unsigned char) value [size - 1]))
            value [--size] = 0;
        if (size >= 2 && (value [0] == '"' || value [0] == '\'') && value [size - 1] == value [0]) {
            value [size - 1] = 0;
            value++;
        }
        for (int index = 0; index < LH_PROVIDER_COUNT; index++)
            if (s_providers [index].env && streq (name, s_providers [index].env)
            &&  !self->providers [index].key && *value)
                self->providers [index].key = strdup (value);
    }
    free (line);
    fclose (file);
    return 0;
}


//  --------------------------------------------------------------------------
//  Create the shared state from the configuration

static void s_state_destroy (void **state_p);

static void *
s_state_new (lh_config_t *config, const lh_link_t *link, const char **error)
{
    curl_global_init (CURL_GLOBAL_DEFAULT);
    s_state_t *self = (s_state_t *) zmalloc (sizeof (s_state_t));
    assert (self);
    lh_config_t *source = config;
    for (int index = 0; index < LH_PROVIDER_COUNT; index++) {
        const char *url = lh_config_str (source, s_providers [index].url_key);
        if (url && *url) {
            self->providers [index].base_url = strdup (url);
            size_t size = strlen (url);
            while (size > 0 && self->providers [index].base_url [size - 1] == '/')
                self->providers [index].base_url [--size] = 0;
        }
        const char *key = s_providers [index].env? getenv (s_providers [index].env): NULL;
        if (index == LH_PROVIDER_KIMI && (!key || !*key))
            key = getenv ("MOONSHOT_API_KEY");
        if (key && *key)
            self->providers [index].key = strdup (key);
    }
    const char *env_file = lh_config_str (source, "chatd/env_file");
    int rc = env_file && *env_file? s_load_env_file (self, env_file, error): 0;

    for (int index = 0; index < S_TIERS; index++) {
        char path [64];
        snprintf (path, sizeof (path), "models/%s", s_tier_names [index]);
        self->tiers [index] = strdup (lh_config_str (source, path));
    }
    self->weak_models = strdup (lh_config_str (source, "models/weak_models"));
    self->timeout_ms = lh_config_int (source, "chatd/timeout_ms");
    self->connect_timeout_ms = lh_config_int (source, "chatd/connect_timeout_ms");
    self->retries = lh_config_int (source, "chatd/retries");
    self->backoff_ms = lh_config_int (source, "chatd/backoff_ms");
    self->retry_after_max_ms = lh_config_int (source, "chatd/retry_after_max_ms");
    self->num_ctx = lh_config_int (source, "chatd/num_ctx");
    self->think = lh_config_bool (source, "chatd/think");
    self->response_max = lh_config_int (source, "chatd/response_max");

    if (rc) {
        void *state = self;
        s_state_destroy (&state);
        return NULL;
    }
    for (int index = 0; index < LH_PROVIDER_COUNT; index++) {
        bool usable = self->providers [index].base_url
                   && (!s_providers [index].env || self->providers [index].key);
        lh_info ("chatd", NULL, "provider %s: %s", s_providers [index].name,
                 usable? self->providers [index].base_url:
                 !self->providers [index].base_url? "not registered (no URL)":
                 "not registered (no key)");
    }
    return self;
}


//  --------------------------------------------------------------------------
//  Destroy the shared state

static void
s_state_destroy (void **state_p)
{
    s_state_t *self = (s_state_t *) *state_p;
    if (self) {
        for (int index = 0; index < LH_PROVIDER_COUNT; index++) {
            free (self->providers [index].base_url);
            if (self->providers [index].key) {
                memset (self->providers [index].key, 0, strlen (self->providers [index].key));
                free (self->providers [index].key);
            }
        }
        for (int index = 0; index < S_TIERS; index++)
            free (self->tiers [index]);
        free (self->weak_models);
        free (self);
        *state_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Is a provider usable (URL, and a key when it needs one)?

static bool
s_usable (s_state_t *self, lh_provider_t provider)
{
    return self->providers [provider].base_url
       && (!s_providers [provider].env || self->providers [provider].key);
}


//  --------------------------------------------------------------------------
//  libcurl callbacks: body, headers (Retry-After)

static size_t
s_on_body (char *data, size_t size, size_t count, void *args)
{
    s_exchange_t *self = (s_exchange_t *) args;
    size_t bytes = size * count;
    if (self->size + bytes > self->limit) {
        self->too_big = true;
        return 0;
    }
    self->data = (char *) realloc (self->data, self->size + bytes + 1);
    assert (self->data);
    memcpy (self->data + self->size, data, bytes);
    self->size += bytes;
    self->data [self->size] = 0;
    return bytes;
}

static size_t
s_on_header (char *data, size_t size, size_t count, void *args)
{
    s_exchange_t *self = (s_exchange_t *) args;
    size_t bytes = size * count;
    if (bytes > 12 && strncasecmp (data, "Retry-After:", 12) == 0) {
        char value [128];
        snprintf (value, sizeof (value), "%.*s", (int) (bytes - 12), data + 12);
        char *start = value;
        while (isspace ((unsigned char) *start))
            start++;
        size_t length = strlen (start);
        while (length && isspace ((unsigned char) start [length - 1]))
            start [--length] = 0;
        char *end = NULL;
        double seconds = strtod (start, &end);
        if (end != start && *end == 0 && seconds >= 0)
            self->retry_after_ms = (int64_t) (seconds * 1000);
        else {
            time_t when = curl_getdate (start, NULL);
            if (when > 0) {
                int64_t delta = ((int64_t) when - (int64_t) time (NULL)) * 1000;
                self->retry_after_ms = delta > 0? delta: 0;
            }
        }
    }
    return bytes;
}


//  --------------------------------------------------------------------------
//  Run one transfer with libcurl's multi interface, waking every
//  S_POLL_MS to heartbeat the broker (lh_request_time_left) and to abort
//  when the caller's deadline passes (CURLE_ABORTED_BY_CALLBACK). A
//  blocking curl_easy_perform would leave the worker silent for as long as
//  the model thinks.

static CURLcode
s_perform (CURL *curl, lh_request_t *request)
{
    CURLM *multi = curl_multi_init ();
    assert (multi);
    curl_multi_add_handle (multi, curl);
    CURLcode code = CURLE_OK;
    int running = 1;
    while (true) {
        CURLMcode status = curl_multi_perform (multi, &running);
        if (status != CURLM_OK) {
            code = CURLE_FAILED_INIT;
            break;
        }
        if (!running) {
            int left;
            CURLMsg *message = curl_multi_info_read (multi, &left);
            code = message && message->msg == CURLMSG_DONE? message->data.result: CURLE_OK;
            break;
        }
        if (lh_request_time_left (request) == 0) {
            code = CURLE_ABORTED_BY_CALLBACK;
            break;
        }
        curl_multi_poll (multi, NULL, 0, S_POLL_MS, NULL);
    }
    curl_multi_remove_handle (multi, curl);
    curl_multi_cleanup (multi);
    return code;
}

//  --------------------------------------------------------------------------
//  Replace every occurrence of the key, and any "Bearer TOKEN", in text
//  with "[redacted]"; returns a new string

static char *
s_redact (const char *text, const char *key)
{
    char *copy = strdup (text);
    assert (copy);
    if (key && strlen (key) >= 4) {
        char *found;
        while ((found = strstr (copy, key))) {
            char *next = zsys_sprintf ("%.*s[redacted]%s", (int) (found - copy), copy,
                                       found + strlen (key));
            free (copy);
            copy = next;
        }
    }
    char *scan = copy;
    while ((scan = strcasestr (scan, "bearer "))) {
        char *token = scan + 7;
        size_t size = strcspn (token, " \t\r\n\"',;})]");
        if (size > 0 && strncmp (token, "[redacted]", 10) != 0) {
            char *next = zsys_sprintf ("%.*s[redacted]%s", (int) (token - copy), copy, token + size);
            scan = next + (token - copy) + 10;
            free (copy);
            copy = next;
        }
        else
            scan = token;
    }
    return copy;
}


//  --------------------------------------------------------------------------
//  The message of a failed provider response: error.message, error, or
//  message from a JSON body, else the body's first bytes; caller frees

static char *
s_upstream_message (const char *data, size_t size)
{
    if (!data || size == 0)
        return strdup ("(empty response)");
    json_t *body = json_loadb (data, size, 0, NULL);
    json_t *error = json_object_get (body, "error");
    const char *text = json_is_string (error)? json_string_value (error):
                       json_string_value (json_object_get (error, "message"));
    if (!text)
        text = json_string_value (json_object_get (body, "message"));
    char *message = text? zsys_sprintf ("%.*s", S_MESSAGE_MAX, text):
                          zsys_sprintf ("%.*s", (int) (size < S_MESSAGE_MAX? size: S_MESSAGE_MAX), data);
    json_decref (body);
    //  One line, printable
    for (char *scan = message; *scan; scan++)
        if ((unsigned char) *scan < 0x20)
            *scan = ' ';
    return message;
}


//  --------------------------------------------------------------------------
//  Sleep ms in slices, heartbeating; false if the deadline would pass first

static bool
s_backoff (lh_request_t *request, int64_t ms)
{
    if ((uint64_t) ms >= lh_request_time_left (request))
        return false;
    int64_t until = zclock_mono () + ms;
    while (zclock_mono () < until) {
        int64_t left = until - zclock_mono ();
        zclock_sleep ((int) (left < S_SLEEP_SLICE? left: S_SLEEP_SLICE));
        lh_request_time_left (request);
    }
    return true;
}


//  How a provider call went, for its span and its chat.call event
typedef struct {
    long http;                          //  the last attempt's HTTP status, 0 = none
    int64_t attempts;                   //  attempts made
    uint32_t status;                    //  our answer's status when it failed
} s_outcome_t;

//  --------------------------------------------------------------------------
//  POST body to the provider, retrying 429 / 5xx / transport errors. On
//  success returns 0 and *response_p (caller frees); else answers the
//  request (502 or 504) and returns -1. *outcome says how it went.

static int
s_post (s_state_t *self, lh_request_t *request, lh_provider_t provider, const char *body,
        char **response_p, size_t *size_p, s_outcome_t *outcome)
{
    s_provider_t *target = &self->providers [provider];
    const char *name = s_providers [provider].name;
    char *url = zsys_sprintf ("%s%s", target->base_url,
                              s_providers [provider].openai? "/chat/completions": "/api/chat");
    struct curl_slist *headers = curl_slist_append (NULL, "Content-Type: application/json");
    headers = curl_slist_append (headers, "Accept: application/json");
    if (target->key) {
        char *authorization = zsys_sprintf ("Authorization: Bearer %s", target->key);
        headers = curl_slist_append (headers, authorization);
        memset (authorization, 0, strlen (authorization));
        zstr_free (&authorization);
    }
    CURL *curl = curl_easy_init ();
    assert (curl);
    curl_easy_setopt (curl, CURLOPT_URL, url);
    curl_easy_setopt (curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt (curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt (curl, CURLOPT_POSTFIELDSIZE, (long) strlen (body));
    curl_easy_setopt (curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt (curl, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt (curl, CURLOPT_CONNECTTIMEOUT_MS, (long) self->connect_timeout_ms);
    curl_easy_setopt (curl, CURLOPT_USERAGENT, "lakehouse-chatd/1");
    curl_easy_setopt (curl, CURLOPT_ACCEPT_ENCODING, "");

    int rc = -1;
    char *failure = NULL;               //  why the last attempt failed
    uint32_t status = LH_ST_BAD_GATEWAY;
    int64_t attempt;
    for (attempt = 1; ; attempt++) {
        uint64_t left = lh_request_time_left (request);
        if (left == 0) {
            status = LH_ST_TIMEOUT;
            break;
        }
        s_exchange_t exchange = { request, NULL, 0, (size_t) self->response_max, false, -1 };
        curl_easy_setopt (curl, CURLOPT_WRITEDATA, &exchange);
        curl_easy_setopt (curl, CURLOPT_HEADERDATA, &exchange);
        //  When the caller's deadline is nearer than our own timeout, a
        //  timeout is the caller's deadline passing: 504, not 502
        bool capped = (uint64_t) self->timeout_ms >= left;
        curl_easy_setopt (curl, CURLOPT_TIMEOUT_MS, (long) (capped? left: (uint64_t) self->timeout_ms));
        CURLcode code = s_perform (curl, request);
        long http = 0;
        curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &http);
        outcome->http = http;
        outcome->attempts = attempt;
        bool retryable = false;
        zstr_free (&failure);
        if (code == CURLE_OK && http >= 200 && http < 300) {
            *response_p = exchange.data? exchange.data: strdup ("");
            *size_p = exchange.size;
            rc = 0;
            break;
        }
        if (code == CURLE_OK) {
            char *message = s_upstream_message (exchange.data, exchange.size);
            failure = zsys_sprintf ("upstream status %ld: %s", http, message);
            zstr_free (&message);
            retryable = http == 429 || http >= 500;
        }
        else
        if (exchange.too_big)
            failure = zsys_sprintf ("response larger than chatd/response_max (%" PRId64 " bytes)",
                                    self->response_max);
        else
        if (code == CURLE_ABORTED_BY_CALLBACK || (code == CURLE_OPERATION_TIMEDOUT && capped)) {
            free (exchange.data);
            status = LH_ST_TIMEOUT;
            break;
        }
        else {
            failure = zsys_sprintf ("%s", curl_easy_strerror (code));
            retryable = true;
        }
        free (exchange.data);
        //  Redact at once: the failure goes to the log and to the caller
        char *safe = s_redact (failure, target->key);
        zstr_free (&failure);
        failure = safe;
        lh_warn ("chatd", lh_request_trace (request), "%s attempt %" PRId64 " failed: %s",
                 name, attempt, failure);
        if (!retryable || attempt > self->retries)
            break;
        int64_t delay = self->backoff_ms << (attempt - 1);
        if (exchange.retry_after_ms >= 0) {
            if (exchange.retry_after_ms > self->retry_after_max_ms) {
                char *longer = zsys_sprintf ("%s (Retry-After %" PRId64 " ms exceeds chatd/retry_after_max_ms)",
                                             failure, exchange.retry_after_ms);
                zstr_free (&failure);
                failure = longer;
                break;
            }
            delay = exchange.retry_after_ms;
        }
        if (!s_backoff (request, delay))
            break;
    }
    if (rc) {
        outcome->status = status;
        if (status == LH_ST_TIMEOUT)
            lh_request_fail (request, LH_ST_TIMEOUT, "deadline",
                             "%s: the caller's deadline passed during the provider call", name);
        else
            lh_request_fail (request, LH_ST_BAD_GATEWAY, "upstream",
                             "%s failed after %" PRId64 " attempt%s: %s", name,
                             attempt > self->retries + 1? self->retries + 1: attempt,
                             attempt == 1? "": "s", failure? failure: "failed");
    }
    zstr_free (&failure);
    curl_easy_cleanup (curl);
    curl_slist_free_all (headers);
    zstr_free (&url);
    return rc;
}


//  --------------------------------------------------------------------------
//  Build the provider request body from the checked chat input; caller
//  frees the returned text

static char *
s_provider_body (s_state_t *self, lh_provider_t provider, const char *model, json_t *input)
{
    bool openai = s_providers [provider].openai;
    json_t *messages = json_array ();
    size_t index;
    json_t *message;
    json_array_foreach (json_object_get (input, "messages"), index, message)
        json_array_append_new (messages, json_pack ("{s:O,s:O}",
            "role", json_object_get (message, "role"),
            "content", json_object_get (message, "content")));
    json_t *body = json_pack ("{s:s,s:o,s:b}", "model", model, "messages", messages, "stream", 0);
    json_t *max_tokens = json_object_get (input, "max_tokens");
    json_t *temperature = json_object_get (input, "temperature");
    json_t *format = json_object_get (input, "format");
    json_t *schema = json_object_get (input, "json_schema");
    if (json_is_object (format) && !schema)
        schema = format;
    if (openai) {
        if (max_tokens)
            json_object_set (body, "max_tokens", max_tokens);
        if (temperature)
            json_object_set (body, "temperature", temperature);
        if (schema)
            json_object_set_new (body, "response_format", json_pack ("{s:s,s:O}",
                "type", "json_schema", "json_schema",
                json_object_get (schema, "schema")? schema:
                json_pack ("{s:s,s:O,s:b}", "name", "response", "schema", schema, "strict", 1)));
        else
        if (json_is_string (format))
            json_object_set_new (body, "response_format", json_pack ("{s:s}", "type", "json_object"));
    }
    else {
        json_t *options = json_pack ("{s:I}", "num_ctx", (json_int_t) self->num_ctx);
        if (temperature)
            json_object_set (options, "temperature", temperature);
        if (max_tokens)
            json_object_set (options, "num_predict", max_tokens);
        json_object_set_new (body, "options", options);
        json_object_set_new (body, "think", json_boolean (self->think));
        if (schema)
            json_object_set (body, "format", schema);
        else
        if (json_is_string (format))
            json_object_set_new (body, "format", json_string ("json"));
    }
    char *text = json_dumps (body, JSON_COMPACT);
    json_decref (body);
    return text;
}


//  --------------------------------------------------------------------------
//  Publish chat.call: one provider call made (docs/observerd.md), whatever
//  its outcome; result is the normalised answer, or NULL when it failed

static void
s_publish_call (lh_request_t *request, const char *provider, const char *model,
                const s_outcome_t *outcome, json_t *result, int64_t latency_ms)
{
    json_t *usage = json_object_get (result, "usage");
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_kv_str (pack, "model", model);
    lh_pack_kv_str (pack, "provider", provider);
    lh_pack_kv_uint (pack, "status", outcome->status);
    lh_pack_kv_int (pack, "latency_ms", latency_ms);
    lh_pack_kv_int (pack, "attempts", outcome->attempts);
    if (outcome->http)
        lh_pack_kv_int (pack, "http_status", outcome->http);
    lh_pack_kv_int (pack, "prompt_tokens", s_int (usage, "prompt_tokens"));
    lh_pack_kv_int (pack, "completion_tokens", s_int (usage, "completion_tokens"));
    lh_pack_kv_int (pack, "total_tokens", s_int (usage, "total_tokens"));
    const char *finish = json_string_value (json_object_get (result, "finish_reason"));
    if (finish)
        lh_pack_kv_str (pack, "finish_reason", finish);
    lh_pack_close (pack);
    lh_request_event (request, "chat.call", &pack);
}


//  --------------------------------------------------------------------------
//  chat: route, call the provider, normalise the answer

static void
s_chat (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    json_t *input = lh_request_json (request);
    if (!input)
        return;
    const char *model = json_string_value (json_object_get (input, "model"));
    json_t *messages = json_object_get (input, "messages");
    json_t *max_tokens = json_object_get (input, "max_tokens");
    json_t *temperature = json_object_get (input, "temperature");
    json_t *format = json_object_get (input, "format");
    json_t *schema = json_object_get (input, "json_schema");
    json_t *provider_name = json_object_get (input, "provider");
    const char *field = NULL, *reason = NULL;
    if (!model || !*model)
        field = "model", reason = "model must be a non-empty string";
    else
    if (provider_name && !json_is_null (provider_name) && !json_is_string (provider_name))
        field = "provider", reason = "provider must be a string: ollama, ollama_cloud, "
                                     "openrouter, opencode or kimi";
    else
    if (!json_is_array (messages) || json_array_size (messages) == 0)
        field = "messages", reason = "messages must be a non-empty array of {role, content}";
    else {
        size_t index;
        json_t *message;
        json_array_foreach (messages, index, message) {
            const char *role = json_string_value (json_object_get (message, "role"));
            if (!role || !json_is_string (json_object_get (message, "content"))
            ||  !(streq (role, "system") || streq (role, "user") || streq (role, "assistant")
               || streq (role, "tool"))) {
                field = "messages";
                reason = "each message must be {role: system|user|assistant|tool, content: string}";
                break;
            }
        }
    }
    if (!field && max_tokens && !json_is_null (max_tokens)
    &&  !(json_is_integer (max_tokens) && json_integer_value (max_tokens) > 0))
        field = "max_tokens", reason = "max_tokens must be a positive integer";
    if (!field && temperature && !json_is_null (temperature)
    &&  !(json_is_number (temperature) && json_number_value (temperature) >= 0
                                        && json_number_value (temperature) <= 2))
        field = "temperature", reason = "temperature must be a number from 0 to 2";
    if (!field && format && !json_is_null (format)
    &&  !(json_is_object (format) || (json_is_string (format) && streq (json_string_value (format), "json"))))
        field = "format", reason = "format must be \"json\" or a JSON schema object";
    if (!field && schema && !json_is_null (schema) && !json_is_object (schema))
        field = "json_schema", reason = "json_schema must be an object";
    if (field) {
        lh_request_fail_field (request, LH_ST_BAD_REQUEST, NULL, field, "%s", reason);
        json_decref (input);
        return;
    }
    //  Nulls mean "not set"
    if (json_is_null (max_tokens)) json_object_del (input, "max_tokens");
    if (json_is_null (temperature)) json_object_del (input, "temperature");
    if (json_is_null (format)) json_object_del (input, "format");
    if (json_is_null (schema)) json_object_del (input, "json_schema");

    //  A tier name stands for its model
    for (int index = 0; index < S_TIERS; index++)
        if (streq (model, s_tier_names [index]) && *self->tiers [index]) {
            model = self->tiers [index];
            break;
        }
    //  A provider named beside the model (the original's clients) routes
    //  it as its prefix would
    char *error = NULL;
    char *qualified = lh_chatd_qualify (model, json_string_value (provider_name), &error);
    if (!qualified) {
        lh_request_fail_field (request, LH_ST_BAD_REQUEST, NULL, "provider", "%s", error);
        free (error);
        json_decref (input);
        return;
    }
    lh_provider_t provider;
    char routed [256];
    int rc = lh_chatd_route (qualified, &provider, routed, sizeof (routed));
    free (qualified);
    if (rc) {
        lh_request_fail_field (request, LH_ST_BAD_REQUEST, NULL, "model",
                               "model name is malformed (ollama/M, ollama_cloud/M, M:cloud, "
                               "openrouter/VENDOR/M, opencode/M, kimi/M or M)");
        json_decref (input);
        return;
    }
    if (!s_usable (self, provider)) {
        const char *env = s_providers [provider].env;
        lh_request_fail (request, LH_ST_NOT_FOUND, "no_such_provider",
                         "provider '%s' is not configured%s%s%s", s_providers [provider].name,
                         env? ": set ": " (no URL)", env? env: "", env? " or chatd/env_file": "");
        json_decref (input);
        return;
    }
    char *body = s_provider_body (self, provider, routed, input);
    json_decref (input);
    char *response = NULL;
    size_t size = 0;
    int64_t start = zclock_mono ();
    //  The upstream call's span (GenAI semantic conventions)
    const char *name = s_providers [provider].name;
    char span_name [LH_SPAN_NAME_MAX + 1];
    snprintf (span_name, sizeof (span_name), "chat %.*s", LH_SPAN_NAME_MAX - 5, routed);
    lh_span_t upstream;
    lh_request_span (request, &upstream, span_name, LH_SPAN_CLIENT);
    lh_span_attr_str (&upstream, "gen_ai.operation.name", "chat");
    lh_span_attr_str (&upstream, "gen_ai.system", name);
    lh_span_attr_str (&upstream, "gen_ai.request.model", routed);
    s_outcome_t outcome = { 0, 0, LH_ST_BAD_GATEWAY };
    json_t *result = NULL;
    if (s_post (self, request, provider, body, &response, &size, &outcome) == 0) {
        const char *problem = NULL;
        result = lh_chatd_parse_response (s_providers [provider].openai, response, size, &problem);
        if (result) {
            json_object_set_new (result, "model", json_string (routed));
            json_object_set_new (result, "provider", json_string (name));
            lh_debug ("chatd", lh_request_trace (request), "%s %s: %zu bytes in %" PRId64 " ms",
                      name, routed, size, zclock_mono () - start);
            outcome.status = LH_ST_OK;
        }
        else {
            char *message = s_upstream_message (response, size);
            char *safe = s_redact (message, self->providers [provider].key);
            lh_request_fail (request, LH_ST_BAD_GATEWAY, "upstream", "%s: %s: %s",
                             name, problem, safe);
            zstr_free (&safe);
            zstr_free (&message);
        }
        free (response);
    }
    json_t *usage = json_object_get (result, "usage");
    int64_t prompt_tokens = s_int (usage, "prompt_tokens");
    int64_t completion_tokens = s_int (usage, "completion_tokens");
    if (outcome.http)
        lh_span_attr_int (&upstream, "http.response.status_code", outcome.http);
    lh_span_attr_int (&upstream, "lh.attempts", outcome.attempts);
    if (result) {
        lh_span_attr_int (&upstream, "gen_ai.usage.input_tokens", prompt_tokens);
        lh_span_attr_int (&upstream, "gen_ai.usage.output_tokens", completion_tokens);
    }
    //  The provider's status; ours when it answered nothing, or 2xx that
    //  could not be used
    lh_span_end (&upstream, outcome.http >= 400 || (outcome.http && outcome.status == LH_ST_OK)
                            ? (uint32_t) outcome.http: outcome.status);
    s_publish_call (request, name, routed, &outcome, result, zclock_mono () - start);
    if (result)
        lh_request_reply_json (request, LH_ST_OK, result);
    zstr_free (&body);
}


//  --------------------------------------------------------------------------
//  providers: which are configured, the tiers, the weak models

static void
s_providers_op (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    if (!lh_request_map (request))
        return;
    json_t *configured = json_array ();
    json_t *unconfigured = json_array ();
    for (int index = 0; index < LH_PROVIDER_COUNT; index++) {
        if (s_usable (self, (lh_provider_t) index))
            json_array_append_new (configured, json_pack ("{s:s,s:s,s:s}",
                "name", s_providers [index].name,
                "api", s_providers [index].openai? "openai": "ollama",
                "base_url", self->providers [index].base_url));
        else
            json_array_append_new (unconfigured, json_string (s_providers [index].name));
    }
    json_t *tiers = json_object ();
    for (int index = 0; index < S_TIERS; index++)
        json_object_set_new (tiers, s_tier_names [index], json_string (self->tiers [index]));
    json_t *weak = json_array ();
    char *list = strdup (self->weak_models);
    char *save = NULL;
    for (char *name = strtok_r (list, ", ", &save); name; name = strtok_r (NULL, ", ", &save))
        json_array_append_new (weak, json_string (name));
    free (list);
    lh_request_reply_json (request, LH_ST_OK, json_pack ("{s:o,s:o,s:o,s:o}", "providers", configured,
                                                "unconfigured", unconfigured, "tiers", tiers,
                                                "weak_models", weak));
}

static const lh_op_t s_ops [] = {
    { "chat",      s_chat },
    { "providers", s_providers_op },
    { NULL, NULL }
};

const lh_service_t lh_chatd_service = {
    .name = "chatd",
    .ops = s_ops,
    .state_new = s_state_new,
    .state_destroy = s_state_destroy,
    .credit = 1
};


//  --------------------------------------------------------------------------
//  Self test of this class: routing table, response parsing, redaction,
//  the service's answers to bad bodies

#include "lh_testbus.h"

void
lh_chatd_test (bool verbose)
{
    printf (" * chatd: ");
    static const struct {
        const char *model;
        int rc;
        lh_provider_t provider;
        const char *sent;
    } s_routes [] = {
        { "qwen2.5:7b",                     0, LH_PROVIDER_OLLAMA,       "qwen2.5:7b" },
        { "ollama/llama3.2:1b",             0, LH_PROVIDER_OLLAMA,       "llama3.2:1b" },
        { "ollama_cloud/gpt-oss:120b",      0, LH_PROVIDER_OLLAMA_CLOUD, "gpt-oss:120b" },
        { "gpt-oss:120b:cloud",             0, LH_PROVIDER_OLLAMA_CLOUD, "gpt-oss:120b" },
        { "deepseek-v3.1:cloud",            0, LH_PROVIDER_OLLAMA_CLOUD, "deepseek-v3.1" },
        { "ollama/kimi-k2:cloud",           0, LH_PROVIDER_OLLAMA_CLOUD, "kimi-k2" },
        { "openrouter/anthropic/claude-sonnet-4", 0, LH_PROVIDER_OPENROUTER, "anthropic/claude-sonnet-4" },
        { "openrouter/openai/gpt-5:cloud",  0, LH_PROVIDER_OPENROUTER,   "openai/gpt-5:cloud" },
        { "opencode/grok-code",             0, LH_PROVIDER_OPENCODE,     "grok-code" },
        { "kimi/kimi-k2-0905-preview",      0, LH_PROVIDER_KIMI,         "kimi-k2-0905-preview" },
        { "library/llama3",                 0, LH_PROVIDER_OLLAMA,       "library/llama3" },
        { "",                               -1, LH_PROVIDER_OLLAMA,      NULL },
        { "ollama/",                        -1, LH_PROVIDER_OLLAMA,      NULL },
        { "kimi/",                          -1, LH_PROVIDER_KIMI,        NULL },
        { ":cloud",                         0, LH_PROVIDER_OLLAMA,       ":cloud" },
        { "openrouter/claude",              -1, LH_PROVIDER_OPENROUTER,  NULL },
        { "openrouter/anthropic/",          -1, LH_PROVIDER_OPENROUTER,  NULL },
    };
    for (size_t index = 0; index < sizeof (s_routes) / sizeof (s_routes [0]); index++) {
        lh_provider_t provider;
        char sent [64];
        int rc = lh_chatd_route (s_routes [index].model, &provider, sent, sizeof (sent));
        if (verbose)
            printf ("\n    %s -> %d %s %s", s_routes [index].model, rc,
                    lh_chatd_provider_name (provider), rc? "-": sent);
        assert (rc == s_routes [index].rc);
        if (rc == 0) {
            assert (provider == s_routes [index].provider);
            assert (streq (sent, s_routes [index].sent));
        }
    }
    assert (streq (lh_chatd_provider_name (LH_PROVIDER_KIMI), "kimi"));

    //  A provider beside the model (the original's clients): qualifies a
    //  bare name, agrees with a prefix, refuses a conflict or a stranger
    static const struct {
        const char *model;
        const char *provider;
        const char *qualified;              //  NULL: refused
    } s_qualify [] = {
        { "qwen3",             NULL,           "qwen3" },
        { "qwen3",             "",             "qwen3" },
        { "qwen3",             "ollama_cloud", "ollama_cloud/qwen3" },
        { "qwen3",             "ollama",       "ollama/qwen3" },
        { "anthropic/claude",  "openrouter",   "openrouter/anthropic/claude" },
        { "ollama_cloud/qwen", "ollama_cloud", "ollama_cloud/qwen" },
        { "qwen:cloud",        "ollama_cloud", "qwen:cloud" },
        { "kimi/k2",           "kimi",         "kimi/k2" },
        { "ollama/qwen",       "ollama_cloud", NULL },
        { "qwen:cloud",        "ollama",       NULL },
        { "qwen3",             "openai",       NULL },
    };
    for (size_t index = 0; index < sizeof (s_qualify) / sizeof (s_qualify [0]); index++) {
        char *error = NULL;
        char *qualified = lh_chatd_qualify (s_qualify [index].model, s_qualify [index].provider,
                                            &error);
        if (s_qualify [index].qualified)
            assert (qualified && streq (qualified, s_qualify [index].qualified) && !error);
        else
            assert (!qualified && error && strstr (error, s_qualify [index].provider));
        free (qualified);
        free (error);
    }

    //  Response parsing: whole and streamed, both wire formats
    static const struct {
        bool openai;
        const char *body;
        const char *expect;             //  compact JSON, keys sorted; NULL = error
    } s_responses [] = {
        { false, "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"hi\"},\"done\":true,"
                 "\"done_reason\":\"stop\",\"prompt_eval_count\":7,\"eval_count\":2}",
          "{\"content\":\"hi\",\"finish_reason\":\"stop\",\"usage\":{\"completion_tokens\":2,\"prompt_tokens\":7,\"total_tokens\":9}}" },
        { false, "{\"message\":{\"content\":\"a\"},\"done\":false}\n{\"message\":{\"content\":\"b\"},\"done\":false}\n"
                 "{\"message\":{\"content\":\"\"},\"done\":true,\"done_reason\":\"length\",\"prompt_eval_count\":3,\"eval_count\":4}\n",
          "{\"content\":\"ab\",\"finish_reason\":\"length\",\"usage\":{\"completion_tokens\":4,\"prompt_tokens\":3,\"total_tokens\":7}}" },
        { false, "{\n  \"message\": {\"content\": \"pretty\"},\n  \"done\": true\n}\n",
          "{\"content\":\"pretty\",\"finish_reason\":\"stop\",\"usage\":{\"completion_tokens\":0,\"prompt_tokens\":0,\"total_tokens\":0}}" },
        { true, "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"yo\"},\"finish_reason\":\"max_tokens\"}],"
                "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1,\"total_tokens\":6}}",
          "{\"content\":\"yo\",\"finish_reason\":\"length\",\"usage\":{\"completion_tokens\":1,\"prompt_tokens\":5,\"total_tokens\":6}}" },
        { true, "data: {\"choices\":[{\"delta\":{\"content\":\"x\"},\"finish_reason\":null}]}\n\n"
                ": keep-alive\n\n"
                "data: {\"choices\":[{\"delta\":{\"content\":\"y\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\n"
                "data: [DONE]\n\n",
          "{\"content\":\"xy\",\"finish_reason\":\"stop\",\"usage\":{\"completion_tokens\":2,\"prompt_tokens\":1,\"total_tokens\":3}}" },
        { true, "{\"choices\":[]}", NULL },
        { true, "{\"error\":{\"message\":\"bad\"}}", NULL },
        { false, "<html>oops</html>", NULL },
        { false, "", NULL },
    };
    for (size_t index = 0; index < sizeof (s_responses) / sizeof (s_responses [0]); index++) {
        const char *problem = NULL;
        json_t *result = lh_chatd_parse_response (s_responses [index].openai, s_responses [index].body,
                                                  strlen (s_responses [index].body), &problem);
        char *got = result? json_dumps (result, JSON_COMPACT | JSON_SORT_KEYS): NULL;
        if (verbose)
            printf ("\n    response %zu -> %s (%s)", index, got? got: "NULL", problem? problem: "");
        if (s_responses [index].expect)
            assert (got && streq (got, s_responses [index].expect));
        else
            assert (!result && problem);
        free (got);
        json_decref (result);
    }

    //  Redaction: the key and any bearer token disappear
    char *safe = s_redact ("bad key sk-SECRET-123 (Authorization: Bearer abc.def)", "sk-SECRET-123");
    assert (streq (safe, "bad key [redacted] (Authorization: Bearer [redacted])"));
    zstr_free (&safe);
    const char *upstream = "{\"error\":{\"message\":\"rate\\nlimited\"}}";
    char *message = s_upstream_message (upstream, strlen (upstream));
    assert (streq (message, "rate limited"));
    zstr_free (&message);
    upstream = "{\"error\":\"model 'x' not found\"}";
    message = s_upstream_message (upstream, strlen (upstream));
    assert (streq (message, "model 'x' not found"));
    zstr_free (&message);

    //  The service on a test bus, no provider configured: every bad body
    //  is one 400 naming its field; a good one finds no provider (404)
    lh_testbus_t *bus = lh_testbus_new ("chatd");
    lh_testbus_set (bus, "chatd/ollama_url", "");
    lh_testbus_start (bus, &lh_chatd_service, 1);
    struct {
        const char *json, *field;
    } bad [] = {
        { "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", "model" },
        { "{\"model\": \"m\", \"messages\": []}", "messages" },
        { "{\"model\": \"m\", \"messages\": [{\"role\": \"god\", \"content\": \"hi\"}]}", "messages" },
        { "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], "
          "\"temperature\": 3}", "temperature" },
        { "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], "
          "\"max_tokens\": 0}", "max_tokens" },
        { "{\"model\": \"ollama/\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", "model" },
        { "{\"model\": \"m\", \"provider\": 7, \"messages\": [{\"role\": \"user\", "
          "\"content\": \"hi\"}]}", "provider" },
        { "{\"model\": \"m\", \"provider\": \"openai\", \"messages\": [{\"role\": \"user\", "
          "\"content\": \"hi\"}]}", "provider" },
        { "{\"model\": \"ollama/m\", \"provider\": \"kimi\", \"messages\": [{\"role\": "
          "\"user\", \"content\": \"hi\"}]}", "provider" },
    };
    for (size_t index = 0; index < sizeof (bad) / sizeof (bad [0]); index++)
        lh_testbus_expect (bus, "chatd", "chat", bad [index].json, 400, "bad_request",
                           bad [index].field);
    assert (lh_testbus_status (bus, "chatd", "chat", "[1]") == 400);
    assert (lh_testbus_status (bus, "chatd", "chat",
                               "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}") == 404);
    assert (lh_testbus_status (bus, "chatd", "providers", NULL) == 200);
    lh_testbus_destroy (&bus);
    printf ("OK\n");
}
