/*  =========================================================================
    validatord - is the model's output real? See validatord.h,
    docs/validatord.md and docs/session_log.md

    validate runs one validator. iterate runs the loop chat -> extract JSON
    -> validate, feeding each failure back to the model, and writes one
    session-log row whatever the outcome. While iterate waits for chatd it
    polls its bus client in short slices and asks the runtime for the time
    left in between, which heartbeats the broker: a worker waiting on a slow
    model never looks dead.
    =========================================================================
*/

#include "validatord.h"
#include "chatd.h"
#include "lh_extract_json.h"
#include "lh_json.h"
#include "lh_log.h"
#include "lh_roster.h"
#include "lh_roster_dataset.h"
#include "lh_session_log.h"
#include "lh_session_tail.h"
#include "lh_validate.h"

#define S_PROMPT_LOG_MAX    4000        //  prompt characters kept in a session row
#define S_RESPONSE_KEEP     2000        //  model reply characters kept in history
#define S_TRACE_MAX         128         //  longest trace_id accepted in a body
#define S_NO_JSON           "your response wasn't valid JSON"

//  Shared state: the roster locks itself, the log is thread-safe
typedef struct {
    lh_roster_t *roster;                //  the worker roster
    lh_roster_dataset_t *dataset;       //  its dataset follower, or NULL
    lh_session_log_t *log;              //  session log (maybe off)
    int64_t chat_timeout_ms;            //  deadline of one chatd.chat
    int64_t max_iterations_cap;         //  largest max_iterations
    int64_t prompt_max_chars;           //  bound on a retry prompt
    int64_t sessions_scan_max;          //  bytes the sessions op reads back
} s_state_t;

//  One iterate call in progress
typedef struct {
    lh_request_t *request;              //  the bus request
    s_state_t *state;                   //  shared state
    const char *kind;                   //  fill, email, sms, playbook
    const char *model;                  //  model name as given
    const char *provider_asked;         //  provider named beside it, or NULL
    const char *prompt;                 //  the caller's prompt
    const char *system;                 //  system prompt, or NULL
    json_t *context;                    //  context, or NULL
    int64_t max_iterations;             //  rounds allowed
    double temperature;                 //  sent to chat
    int64_t max_tokens;                 //  sent to chat
    char trace [S_TRACE_MAX + 1];       //  session id / trace id
    char bus_trace [LH_TRACE_SIZE + 1]; //  trace carried on the bus
    char span_id [LH_SPAN_SIZE + 1];    //  the latest chat call's span, or ""
    char timestamp [40];                //  when the call started
    int64_t start;                      //  zclock_mono at start
    char *provider;                     //  provider that answered, or NULL
    json_t *history;                    //  [{iteration, verdict_kind, error?, response?,
                                        //    raw, status}]
    json_t *attempts;                   //  session-log attempts [{iteration, verdict_kind,
                                        //    error?, span_id}]
} s_iterate_t;


//  --------------------------------------------------------------------------
//  Create the shared state

static void s_state_destroy (void **state_p);

static void *
s_state_new (lh_config_t *config, const lh_link_t *link, const char **error)
{
    s_state_t *self = (s_state_t *) zmalloc (sizeof (s_state_t));
    assert (self);
    lh_config_t *source = config;

    char *problem = NULL;
    const char *roster_file = lh_config_str (source, "validatord/roster");
    const char *roster_dataset = lh_config_str (source, "validatord/roster_dataset");
    if (*roster_file && *roster_dataset) {
        lh_error ("validatord", NULL, "validatord/roster (%s) and validatord/roster_dataset (%s) "
                  "are both set: the roster comes from one of them", roster_file, roster_dataset);
        *error = "validatord/roster and validatord/roster_dataset are both set: choose one";
        void *state = self;
        s_state_destroy (&state);
        return NULL;
    }
    if (*roster_dataset) {
        self->roster = lh_roster_new_external ();
        self->dataset = lh_roster_dataset_new (self->roster, link, source, error);
        if (!self->dataset) {
            lh_error ("validatord", NULL, "%s", *error);
                void *state = self;
            s_state_destroy (&state);
            return NULL;
        }
    }
    else
        self->roster = lh_roster_new (roster_file, &problem);
    if (!self->roster) {
        lh_error ("validatord", NULL, "validatord/roster: %s", problem);
        free (problem);
        *error = "validatord/roster could not be loaded";
        void *state = self;
        s_state_destroy (&state);
        return NULL;
    }
    if (!self->dataset) {
        lh_roster_read_lock (self->roster);
        lh_info ("validatord", NULL, "roster: %zu workers from %s", lh_roster_size (self->roster),
                 *roster_file? roster_file: "(none: validatord/roster is empty)");
        lh_roster_read_unlock (self->roster);
    }

    const char *path = lh_config_str (source, "validatord/session_log");
    char *full = NULL;
    if (path && *path) {
        full = *path == '/'? strdup (path):
               zsys_sprintf ("%s/%s", lh_config_str (source, "data/dir"), path);
        char *slash = strrchr (full, '/');
        if (slash && slash != full) {
            *slash = 0;
            if (zsys_dir_create ("%s", full))
                lh_warn ("validatord", NULL, "session log directory %s: %s", full, strerror (errno));
            *slash = '/';
        }
    }
    self->log = lh_session_log_new (full);
    lh_info ("validatord", NULL, "session log: %s", full? full: "off");
    zstr_free (&full);

    self->chat_timeout_ms = lh_config_int (source, "validatord/chat_timeout_ms");
    self->max_iterations_cap = lh_config_int (source, "validatord/max_iterations_cap");
    self->prompt_max_chars = lh_config_int (source, "validatord/prompt_max_tokens") * 4;
    self->sessions_scan_max = lh_config_int (source, "validatord/sessions_scan_max");
    return self;
}


//  --------------------------------------------------------------------------
//  Destroy the shared state

static void
s_state_destroy (void **state_p)
{
    s_state_t *self = (s_state_t *) *state_p;
    if (self) {
        lh_roster_dataset_destroy (&self->dataset);
        lh_roster_destroy (&self->roster);
        lh_session_log_destroy (&self->log);
        free (self);
        *state_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  A copy of text cut to at most chars UTF-8 characters; caller frees

static char *
s_cut (const char *text, size_t chars)
{
    const unsigned char *scan = (const unsigned char *) text;
    size_t count = 0;
    while (*scan) {
        if ((*scan & 0xC0) != 0x80) {
            if (count == chars)
                break;
            count++;
        }
        scan++;
    }
    return strndup (text, (const char *) scan - text);
}


//  --------------------------------------------------------------------------
//  A roster held as a dataset may not have loaded yet: then a check that
//  needs it answers 503 rather than calling every worker a phantom.
//  Returns true after answering.

static bool
s_roster_missing (lh_request_t *request, s_state_t *self, const char *kind, json_t *artifact)
{
    if (!self->dataset || lh_roster_loaded (self->roster))
        return false;
    json_t *candidate = json_object_get (json_object_get (artifact, "_context"), "candidate_id");
    bool needs = streq (kind, "fill")
             || ((streq (kind, "email") || streq (kind, "sms")) && (!artifact || candidate));
    if (!needs)
        return false;
    lh_request_fail_retry (request, LH_ST_UNAVAILABLE, "roster_unavailable", 1000,
                           "the worker roster (dataset '%s') has not loaded yet",
                           lh_roster_dataset_name (self->dataset));
    return true;
}


//  --------------------------------------------------------------------------
//  validate: one validator over an artifact

static void
s_validate (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    json_t *input = lh_request_json (request);
    if (!input)
        return;
    const char *kind = json_string_value (json_object_get (input, "kind"));
    json_t *artifact = json_object_get (input, "artifact");
    json_t *context = json_object_get (input, "context");
    if (!kind)
        lh_request_fail_field (request, LH_ST_BAD_REQUEST, NULL, "kind",
                               "kind must be a string: fill, email, sms or playbook");
    else
    if (!lh_validate_kind_known (kind))
        lh_request_fail_field (request, LH_ST_BAD_REQUEST, NULL, "kind",
                               "unknown kind '%s': expected fill, email, sms or playbook", kind);
    else
    if (!artifact)
        lh_request_fail_field (request, LH_ST_BAD_REQUEST, NULL, "artifact",
                               "artifact is required");
    else
    if (context && !json_is_null (context) && !json_is_object (context))
        lh_request_fail_field (request, LH_ST_BAD_REQUEST, NULL, "context",
                               "context must be an object");
    else {
        json_t *copy = json_deep_copy (artifact);
        lh_validate_merge_context (copy, context);
        lh_roster_refresh (self->roster);
        if (!s_roster_missing (request, self, kind, copy)) {
            json_t *body = NULL;
            uint32_t status = lh_validate (kind, copy, self->roster, &body);
            lh_debug ("validatord", lh_request_trace (request), "validate %s: %u", kind, status);
            lh_request_reply_json (request, status, body);
        }
        json_decref (copy);
    }
    json_decref (input);
}


//  --------------------------------------------------------------------------
//  Call chatd.chat with body (taken) and wait, heartbeating. Returns the
//  status and sets *reply_p (caller destroys) when a reply came.

static uint32_t
s_chat_call (s_iterate_t *self, json_t *body, lh_reply_t **reply_p, char **reason_p)
{
    *reply_p = NULL;
    self->span_id [0] = 0;
    lh_pack_t *pack = lh_pack_new ();
    char *error = NULL;
    int rc = lh_json_to_pack (body, pack, &lh_limits_default, &error);
    json_decref (body);
    if (rc) {
        lh_pack_destroy (&pack);
        *reason_p = zsys_sprintf ("chat request could not be encoded: %s", error? error: "?");
        free (error);
        return LH_ST_INTERNAL;
    }
    lh_client_t *client = lh_request_client (self->request);
    if (!client) {
        lh_pack_destroy (&pack);
        *reason_p = strdup ("the bus cannot be reached to call chatd");
        return LH_ST_UNAVAILABLE;
    }
    //  The request's discipline (its deadline caps the call), with two
    //  differences: the trace is the iterate's own (a W3C trace_id in the
    //  body wins), and a chatd with no live worker is answered at once
    //  (503) rather than waited for: a round of iterate is then
    //  infra_error, not a silent wait of chat_timeout_ms. The call ends
    //  100 ms before the caller's deadline, so that answer can still go out.
    lh_call_opts_t opts;
    lh_request_call_opts (self->request, (uint32_t) self->state->chat_timeout_ms, &opts);
    uint64_t left = lh_request_time_left (self->request);
    if (left < (uint64_t) opts.timeout_ms + 100)
        opts.timeout_ms = left > 200? (uint32_t) (left - 100): 100;
    opts.trace = self->bus_trace;
    opts.queue = false;
    size_t size;
    const void *data = lh_pack_data (pack, &size);
    uint64_t id = lh_client_send (client, "chatd", "chat", data, size, &opts);
    lh_pack_destroy (&pack);
    if (id == 0) {
        *reason_p = strdup ("chatd.chat could not be sent");
        return LH_ST_UNAVAILABLE;
    }
    lh_reply_t *reply = NULL;
    lh_client_wait (client, id, &reply);
    snprintf (self->span_id, sizeof (self->span_id), "%s", lh_reply_span (reply));
    uint32_t status = lh_reply_status (reply);
    if (status != LH_ST_OK) {
        const char *reason = lh_reply_reason (reply);
        *reason_p = zsys_sprintf ("chatd.chat answered %u: %s", status,
                                  reason? reason: lh_status_text (status));
    }
    *reply_p = reply;
    return status;
}


//  --------------------------------------------------------------------------
//  The original system's coarse status of a step, from our verdict kind:
//  accepted, no_json, infra_error, or invalid (the validator refused it)

static const char *
s_step_status (const char *verdict)
{
    if (streq (verdict, "accepted") || streq (verdict, "no_json")
    ||  streq (verdict, "infra_error"))
        return verdict;
    return "invalid";
}


//  --------------------------------------------------------------------------
//  Append one attempt to the history and the session-log attempts. error
//  is a tagged 422 body, a string, or NULL (all borrowed). History items
//  carry ours (iteration from 1, verdict_kind, error, response) and the
//  original's (raw, status); session-log attempts count from 0, as the
//  original's rows do, and carry its span_id (the attempt's chat call span,
//  "" when tracing is off).

static void
s_record (s_iterate_t *self, int64_t iteration, const char *verdict, json_t *error,
          const char *response)
{
    json_t *entry = json_pack ("{s:I,s:s}", "iteration", (json_int_t) iteration,
                               "verdict_kind", verdict);
    json_t *attempt = json_pack ("{s:I,s:s}", "iteration", (json_int_t) iteration - 1,
                                 "verdict_kind", verdict);
    if (error) {
        json_object_set (entry, "error", error);
        if (json_is_string (error))
            json_object_set (attempt, "error", error);
        else {
            //  "Consistency: fills[0].candidate_id ..." as one string
            const char *tag = json_object_iter_key (json_object_iter (error));
            json_t *inner = json_object_iter_value (json_object_iter (error));
            const char *field = json_string_value (json_object_get (inner, "field"));
            const char *reason = json_string_value (json_object_get (inner, "reason"));
            json_object_set_new (attempt, "error", json_sprintf ("%s%s%s: %s", tag? tag: "?",
                                 field? " ": "", field? field: "", reason? reason: ""));
        }
    }
    char *kept = response? s_cut (response, S_RESPONSE_KEEP): NULL;
    if (kept)
        json_object_set_new (entry, "response", json_string (kept));
    json_object_set_new (entry, "raw", json_string (kept? kept: ""));
    json_object_set_new (entry, "status", json_string (s_step_status (verdict)));
    free (kept);
    //  the span of this attempt's chat call ("" when tracing is off)
    json_object_set_new (attempt, "span_id", json_string (self->span_id));
    json_array_append_new (self->history, entry);
    json_array_append_new (self->attempts, attempt);
}


//  --------------------------------------------------------------------------
//  Publish iterate.verdict: the call's final verdict (docs/observerd.md)

static void
s_publish_verdict (s_iterate_t *self, const char *verdict, int64_t iterations)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_kv_str (pack, "session_id", self->trace);
    lh_pack_kv_str (pack, "kind", self->kind);
    lh_pack_kv_str (pack, "model", self->model);
    if (self->provider)
        lh_pack_kv_str (pack, "provider", self->provider);
    lh_pack_kv_str (pack, "final_verdict", verdict);
    lh_pack_kv_uint (pack, "status", streq (verdict, "accepted")? LH_ST_OK:
                                     streq (verdict, "infra_error")? LH_ST_BAD_GATEWAY:
                                     LH_ST_UNPROCESSABLE);
    lh_pack_kv_int (pack, "iterations", iterations);
    lh_pack_kv_int (pack, "max_iterations", self->max_iterations);
    lh_pack_kv_int (pack, "duration_ms", zclock_mono () - self->start);
    lh_pack_close (pack);
    lh_request_event (self->request, "iterate.verdict", &pack);
}


//  --------------------------------------------------------------------------
//  Write the session-log row for this call (and publish its verdict)

static void
s_log_row (s_iterate_t *self, const char *verdict, int64_t iterations, json_t *artifact)
{
    s_publish_verdict (self, verdict, iterations);
    if (!lh_session_log_enabled (self->state->log))
        return;
    const char *provider = self->provider;
    lh_provider_t routed;
    char model [256];
    char *error = NULL;
    char *qualified = lh_chatd_qualify (self->model, self->provider_asked, &error);
    free (error);
    if (!provider && qualified
    &&  lh_chatd_route (qualified, &routed, model, sizeof (model)) == 0)
        provider = lh_chatd_provider_name (routed);
    free (qualified);
    char *prompt = s_cut (self->prompt, S_PROMPT_LOG_MAX);
    json_t *row = json_pack ("{s:s,s:s,s:s,s:s,s:s,s:s,s:s?,s:s,s:I,s:I,s:s,s:O}",
        "schema", LH_SESSION_SCHEMA,
        "session_id", self->trace,
        "timestamp", self->timestamp,
        "daemon", "validatord",
        "kind", self->kind,
        "model", self->model,
        "provider", provider,
        "prompt", prompt,
        "iterations", (json_int_t) iterations,
        "max_iterations", (json_int_t) self->max_iterations,
        "final_verdict", verdict,
        "attempts", self->attempts);
    free (prompt);
    if (artifact)
        json_object_set (row, "artifact", artifact);
    if (streq (self->kind, "fill"))
        json_object_set_new (row, "grounded_in_roster", json_boolean (
            artifact && lh_validate_grounded (artifact, self->state->roster)));
    else
        json_object_set_new (row, "grounded_in_roster", json_null ());
    json_object_set_new (row, "duration_ms", json_integer (zclock_mono () - self->start));
    lh_session_log_append (self->state->log, row, self->trace);
    json_decref (row);
}


//  --------------------------------------------------------------------------
//  Messages for one round: system?, the prompt, and after a failure the
//  failed reply (cut to fit the bound) and the feedback

static json_t *
s_messages (s_iterate_t *self, const char *failed_reply, const char *feedback)
{
    json_t *messages = json_array ();
    size_t used = strlen (self->prompt);
    if (self->system) {
        json_array_append_new (messages, json_pack ("{s:s,s:s}", "role", "system",
                                                    "content", self->system));
        used += strlen (self->system);
    }
    json_array_append_new (messages, json_pack ("{s:s,s:s}", "role", "user",
                                                "content", self->prompt));
    if (feedback) {
        used += strlen (feedback);
        size_t bound = (size_t) self->state->prompt_max_chars;
        if (failed_reply && used + 64 < bound) {
            size_t room = bound - used - 64;
            char *kept = s_cut (failed_reply, room);
            if (strlen (kept) < strlen (failed_reply)) {
                char *marked = zsys_sprintf ("%s\n[... cut]", kept);
                free (kept);
                kept = marked;
            }
            json_array_append_new (messages, json_pack ("{s:s,s:s}", "role", "assistant",
                                                        "content", kept));
            free (kept);
        }
        json_array_append_new (messages, json_pack ("{s:s,s:s}", "role", "user",
                                                    "content", feedback));
    }
    return messages;
}


//  --------------------------------------------------------------------------
//  Read and check iterate's input into self; returns 0, or -1 after
//  answering 400

static int
s_iterate_input (s_iterate_t *self, json_t *input)
{
    lh_request_t *request = self->request;
    self->kind = json_string_value (json_object_get (input, "kind"));
    self->prompt = json_string_value (json_object_get (input, "prompt"));
    self->model = json_string_value (json_object_get (input, "model"));
    json_t *provider = json_object_get (input, "provider");
    self->system = json_string_value (json_object_get (input, "system"));
    self->context = json_object_get (input, "context");
    json_t *system = json_object_get (input, "system");
    json_t *iterations = json_object_get (input, "max_iterations");
    json_t *temperature = json_object_get (input, "temperature");
    json_t *max_tokens = json_object_get (input, "max_tokens");
    json_t *trace = json_object_get (input, "trace_id");
    self->max_iterations = 3;
    self->temperature = 0.2;
    self->max_tokens = 4096;
    if (!lh_validate_kind_known (self->kind))
        return lh_request_fail_field (request, LH_ST_BAD_REQUEST, NULL, "kind",
                                      "unknown kind '%s': expected fill, email, sms or playbook",
                                      self->kind? self->kind: "");
    if (!self->prompt || !*self->prompt)
        return lh_request_fail_field (request, LH_ST_BAD_REQUEST, NULL, "prompt",
                                      "prompt must be a non-empty string");
    if (!self->model || !*self->model)
        return lh_request_fail_field (request, LH_ST_BAD_REQUEST, NULL, "model",
                                      "model must be a non-empty string");
    if (provider && !json_is_null (provider)) {
        //  The original's clients name the provider beside the model
        self->provider_asked = json_string_value (provider);
        char *error = NULL;
        char *qualified = self->provider_asked
                        ? lh_chatd_qualify (self->model, self->provider_asked, &error): NULL;
        free (qualified);
        if (!qualified) {
            int rc = lh_request_fail_field (request, LH_ST_BAD_REQUEST, NULL, "provider", "%s",
                                            error? error: "provider must be a string: ollama, "
                                            "ollama_cloud, openrouter, opencode or kimi");
            free (error);
            return rc;
        }
    }
    if (system && !json_is_null (system) && !json_is_string (system))
        return lh_request_fail_field (request, LH_ST_BAD_REQUEST, NULL, "system",
                                      "system must be a string");
    if (self->context && json_is_null (self->context))
        self->context = NULL;
    if (self->context && !json_is_object (self->context))
        return lh_request_fail_field (request, LH_ST_BAD_REQUEST, NULL, "context",
                                      "context must be an object");
    if (iterations && !json_is_null (iterations)) {
        if (!json_is_integer (iterations) || json_integer_value (iterations) < 1
        ||  json_integer_value (iterations) > self->state->max_iterations_cap)
            return lh_request_fail_field (request, LH_ST_BAD_REQUEST, NULL, "max_iterations",
                                          "max_iterations must be an integer from 1 to %" PRId64
                                          " (validatord/max_iterations_cap)",
                                          self->state->max_iterations_cap);
        self->max_iterations = json_integer_value (iterations);
    }
    if (temperature && !json_is_null (temperature)) {
        if (!json_is_number (temperature) || json_number_value (temperature) < 0
        ||  json_number_value (temperature) > 2)
            return lh_request_fail_field (request, LH_ST_BAD_REQUEST, NULL, "temperature",
                                          "temperature must be a number from 0 to 2");
        self->temperature = json_number_value (temperature);
    }
    if (max_tokens && !json_is_null (max_tokens)) {
        if (!json_is_integer (max_tokens) || json_integer_value (max_tokens) < 1)
            return lh_request_fail_field (request, LH_ST_BAD_REQUEST, NULL, "max_tokens",
                                          "max_tokens must be a positive integer");
        self->max_tokens = json_integer_value (max_tokens);
    }
    //  Trace: the body's, else the bus's (the runtime minted one if the
    //  REQ had none)
    snprintf (self->bus_trace, sizeof (self->bus_trace), "%s", lh_request_trace (request));
    snprintf (self->trace, sizeof (self->trace), "%s", lh_request_trace (request));
    if (trace && !json_is_null (trace)) {
        const char *value = json_string_value (trace);
        size_t size = value? strlen (value): 0;
        bool printable = size > 0 && size <= S_TRACE_MAX;
        for (size_t index = 0; printable && index < size; index++)
            printable = isalnum ((unsigned char) value [index]) || strchr ("-_.:", value [index]);
        if (!printable)
            return lh_request_fail_field (request, LH_ST_BAD_REQUEST, NULL, "trace_id",
                                          "trace_id must be 1..128 characters of [A-Za-z0-9-_.:]");
        snprintf (self->trace, sizeof (self->trace), "%s", value);
        //  A W3C trace id rides the bus too
        bool hex = size == LH_TRACE_SIZE;
        for (size_t index = 0; hex && index < size; index++)
            hex = isxdigit ((unsigned char) value [index]);
        if (hex) {
            for (size_t index = 0; index < size; index++)
                self->bus_trace [index] = (char) tolower ((unsigned char) value [index]);
            self->bus_trace [size] = 0;
        }
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  iterate: chat -> extract JSON -> validate, until valid or out of rounds

static void
s_iterate (lh_request_t *request, void *state)
{
    s_iterate_t self;
    memset (&self, 0, sizeof (self));
    self.request = request;
    self.state = (s_state_t *) state;
    self.start = zclock_mono ();
    lh_session_log_timestamp (self.timestamp, sizeof (self.timestamp));
    json_t *input = lh_request_json (request);
    if (!input)
        return;
    if (s_iterate_input (&self, input)
    ||  s_roster_missing (request, self.state, self.kind, NULL)) {
        json_decref (input);
        return;
    }
    self.history = json_array ();
    self.attempts = json_array ();
    lh_info ("validatord", self.trace, "iterate %s with %s, at most %" PRId64 " rounds",
             self.kind, self.model, self.max_iterations);

    char *failed_reply = NULL;          //  the latest failed reply
    char *feedback = NULL;              //  what we tell the model about it
    json_t *last_error = NULL;          //  the latest validation error
    int64_t iteration;
    for (iteration = 1; iteration <= self.max_iterations; iteration++) {
        json_t *chat = json_pack ("{s:s,s:o,s:f,s:I}", "model", self.model,
                                  "messages", s_messages (&self, failed_reply, feedback),
                                  "temperature", self.temperature,
                                  "max_tokens", (json_int_t) self.max_tokens);
        if (self.provider_asked)
            json_object_set_new (chat, "provider", json_string (self.provider_asked));
        lh_reply_t *reply = NULL;
        char *reason = NULL;
        uint32_t status = s_chat_call (&self, chat, &reply, &reason);
        json_t *answer = NULL;
        if (status == LH_ST_OK) {
            char *error = NULL;
            answer = lh_json_from_object (lh_reply_object (reply), &error);
            free (error);
            if (!json_is_string (json_object_get (answer, "content"))) {
                status = LH_ST_BAD_GATEWAY;
                reason = strdup ("chatd.chat answered 200 without content");
            }
        }
        lh_reply_destroy (&reply);
        if (status != LH_ST_OK) {
            //  Infrastructure failed: no point retrying the model
            lh_warn ("validatord", self.trace, "iterate round %" PRId64 ": %s", iteration, reason);
            json_t *text = json_string (reason);
            s_record (&self, iteration, "infra_error", text, NULL);
            json_decref (text);
            s_log_row (&self, "infra_error", iteration, NULL);
            lh_request_reply_json (request, LH_ST_BAD_GATEWAY, json_pack ("{s:{s:s,s:s},s:I,s:O,s:s}",
                "error", "kind", "infra_error", "reason", reason,
                "iterations", (json_int_t) iteration, "history", self.history,
                "trace_id", self.trace));
            zstr_free (&reason);
            json_decref (answer);
            break;
        }
        const char *provider = json_string_value (json_object_get (answer, "provider"));
        if (provider && !self.provider)
            self.provider = strdup (provider);
        const char *content = json_string_value (json_object_get (answer, "content"));
        json_t *artifact = lh_extract_json (content, strlen (content));
        zstr_free (&failed_reply);
        zstr_free (&feedback);
        if (!artifact) {
            json_t *text = json_string (S_NO_JSON);
            s_record (&self, iteration, "no_json", text, content);
            json_decref (text);
            failed_reply = strdup (content);
            feedback = strdup (S_NO_JSON "; reply with one JSON object and nothing else.");
            json_decref (last_error);
            last_error = json_string (S_NO_JSON);
            json_decref (answer);
            continue;
        }
        lh_validate_merge_context (artifact, self.context);
        lh_roster_refresh (self.state->roster);
        json_t *body = NULL;
        status = lh_validate (self.kind, artifact, self.state->roster, &body);
        if (status == LH_ST_OK) {
            s_record (&self, iteration, "accepted", NULL, content);
            s_log_row (&self, "accepted", iteration, artifact);
            lh_request_reply_json (request, LH_ST_OK, json_pack ("{s:O,s:O,s:I,s:O,s:s}",
                "artifact", artifact, "validation", body,
                "iterations", (json_int_t) iteration, "history", self.history,
                "trace_id", self.trace));
            json_decref (body);
            json_decref (artifact);
            json_decref (answer);
            break;
        }
        //  422: the next round carries the error
        s_record (&self, iteration, lh_validate_error_kind (body), body, content);
        char *error_text = json_dumps (body, JSON_COMPACT);
        failed_reply = strdup (content);
        feedback = zsys_sprintf ("Your response failed validation: %s\n"
                                 "Fix it and reply with the corrected JSON object only.", error_text);
        free (error_text);
        json_decref (last_error);
        last_error = body;
        json_decref (artifact);
        json_decref (answer);
    }
    if (iteration > self.max_iterations) {
        s_log_row (&self, "max_iter_exhausted", self.max_iterations, NULL);
        char *reason = zsys_sprintf ("no valid %s after %" PRId64 " iteration%s", self.kind,
                                     self.max_iterations, self.max_iterations == 1? "": "s");
        lh_request_reply_json (request, LH_ST_UNPROCESSABLE, json_pack ("{s:{s:s,s:s,s:O},s:I,s:O,s:s}",
            "error", "kind", "max_iter_exhausted", "reason", reason, "last", last_error,
            "iterations", (json_int_t) self.max_iterations, "history", self.history,
            "trace_id", self.trace));
        zstr_free (&reason);
    }
    zstr_free (&failed_reply);
    zstr_free (&feedback);
    json_decref (last_error);
    json_decref (self.history);
    json_decref (self.attempts);
    free (self.provider);
    json_decref (input);
}

//  --------------------------------------------------------------------------
//  sessions {limit?: 1..1000 (50), since?}: the newest session-log rows,
//  newest first, as they are on disk (lh_session_tail.h)

#define S_SESSIONS_LIMIT    50          //  rows without a limit
#define S_SESSIONS_MAX      1000        //  most rows one call returns

static void
s_sessions (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    json_t *input = lh_request_json (request);
    if (!input)
        return;
    json_t *limit = json_object_get (input, "limit");
    json_t *since = json_object_get (input, "since");
    if (limit && (!json_is_integer (limit) || json_integer_value (limit) < 1
                  || json_integer_value (limit) > S_SESSIONS_MAX))
        lh_request_fail_field (request, LH_ST_BAD_REQUEST, NULL, "limit",
                               "limit must be a whole number from 1 to %d", S_SESSIONS_MAX);
    else
    if (since && (!json_is_string (since) || json_string_length (since) == 0
                  || json_string_length (since) > 64))
        lh_request_fail_field (request, LH_ST_BAD_REQUEST, NULL, "since",
                               "since must be an RFC 3339 time, e.g. 2026-12-07T18:00:00Z");
    else
    if (!lh_session_log_enabled (self->log))
        lh_request_reply_json (request, LH_ST_OK, json_pack ("{s:[],s:i,s:b,s:b}",
            "rows", "count", 0, "truncated", 0, "enabled", 0));
    else {
        json_t *rows = NULL;
        lh_session_tail_t tail;
        char *error = NULL;
        if (lh_session_tail_read (lh_session_log_path (self->log),
                                  limit? (size_t) json_integer_value (limit): S_SESSIONS_LIMIT,
                                  since? json_string_value (since): NULL,
                                  (size_t) self->sessions_scan_max, &rows, &tail, &error)) {
            lh_error ("validatord", lh_request_trace (request), "sessions: %s", error);
            lh_request_fail (request, LH_ST_INTERNAL, "log_unreadable",
                             "the session log cannot be read (the validatord log says why)");
        }
        else
            lh_request_reply_json (request, LH_ST_OK, json_pack ("{s:o,s:I,s:b,s:I,s:b}",
                "rows", rows, "count", (json_int_t) json_array_size (rows),
                "truncated", tail.truncated, "skipped", (json_int_t) tail.skipped,
                "enabled", 1));
        free (error);
    }
    json_decref (input);
}

static const lh_op_t s_ops [] = {
    { "validate", s_validate },
    { "iterate",  s_iterate },
    { "sessions", s_sessions },
    { NULL, NULL }
};

const lh_service_t lh_validatord_service = {
    .name = "validatord",
    .ops = s_ops,
    .state_new = s_state_new,
    .state_destroy = s_state_destroy,
    .credit = 1
};


//  --------------------------------------------------------------------------
//  Self test: validatord on a test bus with a two-worker roster (the
//  validators are tested by lh_validate_test, iterate over a fake
//  provider by tests/integration/test_iterate*.py)

#include "lh_testbus.h"

void
lh_validatord_test (bool verbose)
{
    printf (" * validatord: ");
    lh_testbus_t *bus = lh_testbus_new ("validatord");
    char *roster = zsys_sprintf ("%s/roster.jsonl", lh_testbus_dir (bus));
    FILE *file = fopen (roster, "w");
    assert (file);
    fprintf (file, "{\"candidate_id\": \"W-1\", \"name\": \"Ann Lee\", \"city\": \"Toledo\", "
                   "\"state\": \"OH\", \"role\": \"forklift\", \"status\": \"active\"}\n");
    fclose (file);
    lh_testbus_set (bus, "validatord/roster", roster);
    lh_testbus_set (bus, "validatord/session_log", "");
    lh_testbus_start (bus, &lh_validatord_service, 1);

    lh_reply_t *reply = lh_testbus_call (bus, "validatord", "validate",
        "{\"kind\": \"fill\", \"artifact\": {\"fills\": [{\"candidate_id\": \"w-1\", "
        "\"name\": \"Ann Lee\"}]}, \"context\": {\"target_count\": 1}}");
    char *text = lh_testbus_json (reply);
    assert (lh_reply_status (reply) == 200);
    assert (streq (text, "{\"kind\":\"fill\",\"valid\":true,\"warnings\":[]}"));
    zstr_free (&text);
    lh_reply_destroy (&reply);
    //  The 422 keeps its tagged shape
    reply = lh_testbus_call (bus, "validatord", "validate",
        "{\"kind\": \"fill\", \"artifact\": {\"fills\": [{\"candidate_id\": \"W-9\", "
        "\"name\": \"Ghost\"}]}}");
    text = lh_testbus_json (reply);
    assert (lh_reply_status (reply) == 422);
    assert (streq (text, "{\"Consistency\":{\"reason\":\"fills[0].candidate_id \\\"W-9\\\" "
                         "does not exist in worker roster\"}}"));
    zstr_free (&text);
    lh_reply_destroy (&reply);
    //  Every 400 names its field, with the status's kind
    struct {
        const char *op, *json, *field;
    } bad [] = {
        { "validate", "{\"artifact\": {}}", "kind" },
        { "validate", "{\"kind\": \"invoice\", \"artifact\": {}}", "kind" },
        { "validate", "{\"kind\": \"fill\"}", "artifact" },
        { "validate", "{\"kind\": \"fill\", \"artifact\": {}, \"context\": 3}", "context" },
        { "iterate", "{\"kind\": \"sms\", \"model\": \"m\"}", "prompt" },
        { "iterate", "{\"kind\": \"sms\", \"prompt\": \"p\"}", "model" },
        { "iterate", "{\"kind\": \"sms\", \"prompt\": \"p\", \"model\": \"m\", "
                     "\"max_iterations\": 0}", "max_iterations" },
        { "iterate", "{\"kind\": \"sms\", \"prompt\": \"p\", \"model\": \"m\", "
                     "\"trace_id\": \"a b\"}", "trace_id" },
        { "iterate", "{\"kind\": \"sms\", \"prompt\": \"p\", \"model\": \"m\", "
                     "\"provider\": \"openai\"}", "provider" },
        { "iterate", "{\"kind\": \"sms\", \"prompt\": \"p\", \"model\": \"m\", "
                     "\"provider\": 3}", "provider" },
        { "iterate", "{\"kind\": \"sms\", \"prompt\": \"p\", \"model\": \"ollama/m\", "
                     "\"provider\": \"ollama_cloud\"}", "provider" },
        { "sessions", "{\"limit\": 0}", "limit" },
        { "sessions", "{\"limit\": \"5\"}", "limit" },
        { "sessions", "{\"since\": 5}", "since" },
    };
    for (size_t index = 0; index < sizeof (bad) / sizeof (bad [0]); index++)
        lh_testbus_expect (bus, "validatord", bad [index].op, bad [index].json, 400,
                           "bad_request", bad [index].field);
    assert (lh_testbus_status (bus, "validatord", "validate", "[]") == 400);
    //  sessions with the log off: no rows, and says so
    reply = lh_testbus_call (bus, "validatord", "sessions", "{\"limit\": 5}");
    text = lh_testbus_json (reply);
    assert (lh_reply_status (reply) == 200);
    assert (streq (text, "{\"rows\":[],\"count\":0,\"truncated\":false,\"enabled\":false}"));
    zstr_free (&text);
    lh_reply_destroy (&reply);
    //  iterate with no chatd: answered at once, 502 infra_error
    int64_t started = zclock_mono ();
    reply = lh_testbus_call (bus, "validatord", "iterate",
                             "{\"kind\": \"sms\", \"prompt\": \"p\", \"model\": \"m\"}");
    assert (lh_reply_status (reply) == 502);
    assert (zclock_mono () - started < 5000);
    lh_reply_destroy (&reply);
    lh_testbus_destroy (&bus);
    zstr_free (&roster);
    printf ("OK\n");
}
