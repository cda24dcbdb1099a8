/*  =========================================================================
    distilld - the learning loop's evidence; see distilld.h and
    docs/distilld.md

    The stages themselves live in lh_distill.c (files only) and the rules
    in lh_distill_rules.c (pure functions); this file reads and checks
    requests, turns progress into PARTs, and runs replay's chat calls,
    gate and escalation.
    =========================================================================
*/

#include "distilld.h"
#include "lh_distill.h"
#include "lh_canon.h"
#include "lh_json.h"
#include "lh_log.h"
#include <sodium.h>

#define S_NAME          "distilld"
#define S_KEEP          4000            //  prompt / answer characters in a replay row
#define S_SYSTEM        "You answer engineering tasks for the lakehouse. Be concrete and "\
                        "complete; do not hedge."

//  Shared state: lh_distill locks its own writes; the rest is read-only
typedef struct {
    lh_distill_t *kb;                   //  the stages over the root
    char *local_tier;                   //  replay's first model tier
    char *escalation_tier;              //  its escalation tier, "" = never
    char *hedges;                       //  the gate's hedging phrases
    char *replay_log;                   //  replay_run.v1 rows, or NULL = off
    int64_t chat_timeout_ms;            //  deadline of a chatd.chat call
    int64_t gate_min_chars;             //  the gate's shortest answer
    int64_t task_max;                   //  longest replay task, bytes
} s_state_t;

//  The fields of a stage request
typedef struct {
    char *run_id;                       //  or NULL
    char *recorded_at;                  //  as given, or NULL
    char recorded [48];                 //  normalised, when given
    char *since;                        //  or NULL
    char *until;                        //  or NULL
    bool progress;                      //  send PARTs
} s_input_t;

//  Progress of one request
typedef struct {
    lh_request_t *request;              //  the request
    bool send;                          //  PARTs asked for
} s_progress_t;

//  One replay attempt
typedef struct {
    const char *tier;                   //  tier (or model) asked
    uint32_t status;                    //  chatd's status
    char *answer;                       //  its content, or NULL
    char *model;                        //  model that answered, or NULL
    char *provider;                     //  provider, or NULL
    lh_distill_gate_t gate;             //  the gate's verdict
    int64_t duration_ms;                //  how long the call took
} s_attempt_t;


//  --------------------------------------------------------------------------
//  Create the shared state

static void *
s_state_new (lh_config_t *config, const lh_link_t *link, const char **error)
{
    lh_config_t *source = config;
    s_state_t *self = (s_state_t *) zmalloc (sizeof (s_state_t));
    assert (self);
    const char *root = lh_config_str (source, "distilld/root");
    char *full = *root? strdup (root): zsys_sprintf ("%s/kb", lh_config_str (source, "data/dir"));
    if (zsys_dir_create ("%s", full))
        lh_warn (S_NAME, NULL, "cannot create distilld/root %s: %s (the stages will say so)",
                 full, strerror (errno));
    lh_distill_opts_t opts = {
        .root = full,
        .schema_version = lh_config_int (source, "distilld/schema_version"),
        .line_max = lh_config_int (source, "distilld/line_max"),
        .batch_rows = lh_config_int (source, "distilld/batch_rows"),
        .eval_set = lh_config_str (source, "distilld/eval_set"),
        .warn_pct = lh_config_int (source, "distilld/drift_warn_pct"),
        .alert_pct = lh_config_int (source, "distilld/drift_alert_pct")
    };
    self->kb = lh_distill_new (&opts);
    self->local_tier = strdup (lh_config_str (source, "distilld/local_tier"));
    self->escalation_tier = strdup (lh_config_str (source, "distilld/escalation_tier"));
    self->hedges = strdup (lh_config_str (source, "distilld/hedging_phrases"));
    self->chat_timeout_ms = lh_config_int (source, "distilld/chat_timeout_ms");
    self->gate_min_chars = lh_config_int (source, "distilld/gate_min_chars");
    self->task_max = lh_config_int (source, "distilld/task_max");
    const char *log = lh_config_str (source, "distilld/replay_log");
    if (*log)
        self->replay_log = *log == '/'? strdup (log): zsys_sprintf ("%s/%s", full, log);
    lh_info (S_NAME, NULL, "root %s, replay log %s, tiers %s -> %s", full,
             self->replay_log? self->replay_log: "off", self->local_tier,
             *self->escalation_tier? self->escalation_tier: "(no escalation)");
    free (full);
    return self;
}


//  --------------------------------------------------------------------------
//  Destroy the shared state

static void
s_state_destroy (void **state_p)
{
    s_state_t *self = (s_state_t *) *state_p;
    if (self) {
        lh_distill_destroy (&self->kb);
        free (self->local_tier);
        free (self->escalation_tier);
        free (self->hedges);
        free (self->replay_log);
        free (self);
        *state_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Reply with a JSON body (taken)

static void
s_reply_json (lh_request_t *request, uint32_t status, json_t *json)
{
    lh_pack_t *pack = lh_pack_new ();
    char *error = NULL;
    if (lh_json_to_pack (json, pack, &lh_limits_default, &error) == 0)
        lh_request_reply_pack (request, status, &pack);
    else {
        lh_pack_destroy (&pack);
        lh_request_fail (request, LH_ST_INTERNAL, NULL, "the reply could not be encoded: %s",
                         error? error: "?");
    }
    free (error);
    json_decref (json);
}


//  --------------------------------------------------------------------------
//  Publish distill.OP {run_id} (a stage, or run) or distill.replay
//  {replay_id, outcome, escalated} once its files are written
//  (docs/observerd.md)

static void
s_publish (lh_request_t *request, const char *id_field, const char *id,
           const char *outcome, bool escalated)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_kv_str (pack, id_field, id? id: "");
    if (outcome) {
        lh_pack_kv_str (pack, "outcome", outcome);
        lh_pack_kv_bool (pack, "escalated", escalated);
    }
    lh_pack_close (pack);
    char topic [32];
    snprintf (topic, sizeof (topic), "distill.%s", lh_request_op (request));
    lh_request_event (request, topic, &pack);
}


//  --------------------------------------------------------------------------
//  Answer a stage's failure; returns -1

static int
s_fail (lh_request_t *request, const lh_distill_error_t *error, const char *stage)
{
    const char *prefix = stage? stage: "";
    const char *colon = stage? ": ": "";
    if (error->status == LH_ST_UNAVAILABLE)
        return lh_request_fail_retry (request, error->status, error->kind, 1000, "%s%s%s",
                                      prefix, colon, error->reason);
    if (error->field [0])
        return lh_request_fail_field (request, error->status, error->kind, error->field,
                                      "%s%s%s", prefix, colon, error->reason);
    if (error->status >= 500)
        lh_warn (S_NAME, lh_request_trace (request), "%s%s%s", prefix, colon, error->reason);
    return lh_request_fail (request, error->status, error->kind, "%s%s%s", prefix, colon,
                            error->reason);
}


//  --------------------------------------------------------------------------
//  Refuse any field of the body not in the NULL-ended list; returns -1
//  after answering 400 naming it

static int
s_only (lh_request_t *request, const msgpack_object *body, const char *op, const char **fields)
{
    for (uint32_t index = 0; index < body->via.map.size; index++) {
        const msgpack_object *key = &body->via.map.ptr [index].key;
        bool known = false;
        for (const char **field = fields; *field && !known; field++)
            known = key->type == MSGPACK_OBJECT_STR && key->via.str.size == strlen (*field)
                 && memcmp (key->via.str.ptr, *field, key->via.str.size) == 0;
        if (known)
            continue;
        char name [65];
        int size = key->type == MSGPACK_OBJECT_STR? (int) key->via.str.size: 0;
        snprintf (name, sizeof (name), "%.*s", size > 64? 64: size,
                  key->type == MSGPACK_OBJECT_STR? key->via.str.ptr: "");
        char list [256] = "";
        for (const char **field = fields; *field; field++)
            snprintf (list + strlen (list), sizeof (list) - strlen (list), "%s%s",
                      field == fields? "": ", ", *field);
        return lh_request_bad (request, *name? name: "body",
                               "unknown field '%s': %s takes %s", name, op,
                               *list? list: "no fields");
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Read a stage request's fields (those in the list). Returns 0, or -1
//  after answering 400. The caller frees with s_input_reset.

static int
s_input_read (lh_request_t *request, const char *op, const char **fields, s_input_t *input)
{
    memset (input, 0, sizeof (*input));
    const msgpack_object *body = lh_request_map (request);
    if (!body || s_only (request, body, op, fields)
    ||  lh_request_strdup (request, body, "run_id", 0, LH_DISTILL_RUN_ID_MAX, &input->run_id)
    ||  lh_request_strdup (request, body, "recorded_at", 0, 64, &input->recorded_at)
    ||  lh_request_strdup (request, body, "since", 0, 10, &input->since)
    ||  lh_request_strdup (request, body, "until", 0, 10, &input->until)
    ||  lh_request_bool (request, body, "progress", 0, &input->progress))
        return -1;
    if (input->run_id && !lh_distill_run_id_valid (input->run_id))
        return lh_request_bad (request, "run_id", "'run_id' must be 1 to 64 characters of "
                               "A-Z a-z 0-9 . _ - and not start with '.'");
    if (input->recorded_at) {
        json_t *value = json_string (input->recorded_at);
        lh_distill_time_t time;
        int rc = value? lh_distill_time_parse (value, &time): -1;
        json_decref (value);
        //  RFC 3339 only here, not the epoch numbers rows may carry
        if (rc || strlen (input->recorded_at) < 20 || input->recorded_at [4] != '-')
            return lh_request_bad (request, "recorded_at", "'recorded_at' must be an RFC 3339 "
                                   "date-time, e.g. 2026-01-02T03:04:05Z");
        snprintf (input->recorded, sizeof (input->recorded), "%s", time.text);
    }
    if (input->since && !lh_distill_day_valid (input->since))
        return lh_request_bad (request, "since", "'since' must be a day, YYYY-MM-DD");
    if (input->until && !lh_distill_day_valid (input->until))
        return lh_request_bad (request, "until", "'until' must be a day, YYYY-MM-DD");
    if (input->since && input->until && strcmp (input->since, input->until) > 0)
        return lh_request_bad (request, "until", "'until' (%s) is before 'since' (%s)",
                               input->until, input->since);
    return 0;
}

//  Free what s_input_read kept
static void
s_input_reset (s_input_t *input)
{
    free (input->run_id);
    free (input->recorded_at);
    free (input->since);
    free (input->until);
}


//  --------------------------------------------------------------------------
//  Progress between batches: stop at the deadline, else send a PART when
//  the caller asked for them (the time-left check heartbeats the broker)

static int
s_progress (void *arg, const json_t *progress)
{
    s_progress_t *self = (s_progress_t *) arg;
    if (lh_request_time_left (self->request) == 0)
        return -1;
    if (self->send) {
        lh_pack_t *pack = lh_pack_new ();
        if (lh_json_to_pack (progress, pack, &lh_limits_default, NULL) == 0) {
            zframe_t *frame = lh_pack_frame (&pack);
            if (lh_request_part (self->request, &frame))
                zframe_destroy (&frame);
        }
        lh_pack_destroy (&pack);
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  The stage arguments of an input

static lh_distill_args_t
s_args (const s_input_t *input, s_progress_t *progress)
{
    lh_distill_args_t args = {
        .run_id = input->run_id,
        .recorded_at = input->recorded_at? input->recorded: NULL,
        .since = input->since,
        .until = input->until,
        .progress = s_progress,
        .progress_arg = progress
    };
    return args;
}


//  --------------------------------------------------------------------------
//  One stage op: read, run, answer

typedef json_t *(s_stage_fn) (lh_distill_t *self, const lh_distill_args_t *args,
                              lh_distill_error_t *error);

static void
s_stage (lh_request_t *request, s_state_t *self, const char *op, const char **fields,
         s_stage_fn *stage)
{
    s_input_t input;
    if (s_input_read (request, op, fields, &input) == 0) {
        s_progress_t progress = { request, input.progress };
        lh_distill_args_t args = s_args (&input, &progress);
        lh_distill_error_t error;
        json_t *receipt = stage (self->kb, &args, &error);
        if (receipt) {
            const char *run_id = json_string_value (json_object_get (receipt, "run_id"));
            lh_info (S_NAME, lh_request_trace (request), "%s: run %s", op, run_id);
            s_publish (request, "run_id", run_id, NULL, false);
            s_reply_json (request, LH_ST_OK, receipt);
        }
        else
            s_fail (request, &error, NULL);
    }
    s_input_reset (&input);
}

//  materialize {run_id?, recorded_at?, progress?}
static void
s_materialize (lh_request_t *request, void *state)
{
    static const char *fields [] = { "run_id", "recorded_at", "progress", NULL };
    s_stage (request, (s_state_t *) state, "materialize", fields, lh_distill_materialize);
}

//  score {run_id?, since?, until?, progress?}
static void
s_score (lh_request_t *request, void *state)
{
    static const char *fields [] = { "run_id", "since", "until", "progress", NULL };
    s_stage (request, (s_state_t *) state, "score", fields, lh_distill_score);
}

//  export {run_id?, progress?}
static void
s_export (lh_request_t *request, void *state)
{
    static const char *fields [] = { "run_id", "progress", NULL };
    s_stage (request, (s_state_t *) state, "export", fields, lh_distill_export);
}

//  drift {run_id?}
static void
s_drift (lh_request_t *request, void *state)
{
    static const char *fields [] = { "run_id", NULL };
    s_stage (request, (s_state_t *) state, "drift", fields, lh_distill_drift);
}


//  --------------------------------------------------------------------------
//  run: materialize, score, export, drift under one run id

static void
s_run (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    static const char *fields [] = { "run_id", "recorded_at", "since", "until", "progress", NULL };
    static const char *names [] = { "materialize", "score", "export", "drift" };
    s_stage_fn *stages [] = { lh_distill_materialize, lh_distill_score, lh_distill_export,
                              lh_distill_drift };
    s_input_t input;
    if (s_input_read (request, "run", fields, &input)) {
        s_input_reset (&input);
        return;
    }
    s_progress_t progress = { request, input.progress };
    lh_distill_args_t args = s_args (&input, &progress);
    json_t *reply = json_object ();
    char run_id [LH_DISTILL_RUN_ID_MAX + 1] = "";
    for (size_t index = 0; index < 4; index++) {
        lh_distill_error_t error;
        json_t *receipt = stages [index] (self->kb, &args, &error);
        if (!receipt) {
            s_fail (request, &error, names [index]);
            json_decref (reply);
            s_input_reset (&input);
            return;
        }
        if (index == 0) {
            snprintf (run_id, sizeof (run_id), "%s",
                      json_string_value (json_object_get (receipt, "run_id")));
            args.run_id = run_id;
        }
        json_object_set_new (reply, names [index], receipt);
    }
    json_object_set_new (reply, "run_id", json_string (run_id));
    lh_info (S_NAME, lh_request_trace (request), "run %s: four stages done", run_id);
    s_publish (request, "run_id", run_id, NULL, false);
    s_reply_json (request, LH_ST_OK, reply);
    s_input_reset (&input);
}


//  --------------------------------------------------------------------------
//  runs: the runs, oldest first

static void
s_runs (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    static const char *fields [] = { NULL };
    const msgpack_object *body = lh_request_map (request);
    if (!body || s_only (request, body, "runs", fields))
        return;
    lh_distill_error_t error;
    s_reply_json (request, LH_ST_OK, lh_distill_runs (self->kb, &error));
}


//  --------------------------------------------------------------------------
//  report {run_id}: a run's summary

static void
s_report (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    static const char *fields [] = { "run_id", NULL };
    char *run_id = NULL;
    const msgpack_object *body = lh_request_map (request);
    if (body && s_only (request, body, "report", fields) == 0
    &&  lh_request_strdup (request, body, "run_id", LH_FIELD_REQUIRED | LH_FIELD_NONEMPTY,
                           LH_DISTILL_RUN_ID_MAX, &run_id) == 0) {
        lh_distill_error_t error;
        json_t *summary = lh_distill_summary (self->kb, run_id, &error);
        if (summary)
            s_reply_json (request, LH_ST_OK, summary);
        else
            s_fail (request, &error, NULL);
    }
    free (run_id);
}


//  ==========================================================================
//  replay
//  ==========================================================================

//  --------------------------------------------------------------------------
//  Ask chatd for an answer to the prompt from a tier. Returns 0 with the
//  attempt filled, or -1 with *reply_p holding chatd's failed reply (or a
//  synthesized one) for the caller to answer with.

static int
s_chat (lh_request_t *request, s_state_t *self, const char *tier, const char *prompt,
        s_attempt_t *attempt, lh_reply_t **reply_p)
{
    memset (attempt, 0, sizeof (*attempt));
    attempt->tier = tier;
    int64_t start = zclock_mono ();
    json_t *body = json_pack ("{s:s,s:[{s:s,s:s},{s:s,s:s}],s:f}", "model", tier,
                              "messages", "role", "system", "content", S_SYSTEM,
                                          "role", "user", "content", prompt,
                              "temperature", 0.0);
    assert (body);
    lh_pack_t *pack = lh_pack_new ();
    int rc = lh_json_to_pack (body, pack, &lh_limits_default, NULL);
    json_decref (body);
    lh_reply_t *reply = NULL;
    if (rc) {
        lh_pack_destroy (&pack);
        *reply_p = lh_reply_new_error (LH_ST_INTERNAL, "internal", "the chat request could not be encoded");
        attempt->status = LH_ST_INTERNAL;
        return -1;
    }
    lh_request_call_pack (request, "chatd", "chat", &pack, (uint32_t) self->chat_timeout_ms, &reply);
    attempt->duration_ms = zclock_mono () - start;
    attempt->status = lh_reply_status (reply);
    json_t *answer = attempt->status == LH_ST_OK?
                     lh_json_from_object (lh_reply_object (reply), NULL): NULL;
    const char *content = json_string_value (json_object_get (answer, "content"));
    if (!content) {
        if (attempt->status == LH_ST_OK) {
            lh_reply_destroy (&reply);
            reply = lh_reply_new_error (LH_ST_BAD_GATEWAY, "upstream",
                                        "chatd answered 200 without content");
            attempt->status = LH_ST_BAD_GATEWAY;
        }
        json_decref (answer);
        *reply_p = reply;
        return -1;
    }
    attempt->answer = strdup (content);
    const char *model = json_string_value (json_object_get (answer, "model"));
    const char *provider = json_string_value (json_object_get (answer, "provider"));
    attempt->model = model? strdup (model): NULL;
    attempt->provider = provider? strdup (provider): NULL;
    json_decref (answer);
    lh_reply_destroy (&reply);
    return 0;
}

//  Free what an attempt holds
static void
s_attempt_reset (s_attempt_t *attempt)
{
    free (attempt->answer);
    free (attempt->model);
    free (attempt->provider);
    memset (attempt, 0, sizeof (*attempt));
}


//  --------------------------------------------------------------------------
//  An attempt as JSON, for the reply and the row

static json_t *
s_attempt_json (const s_attempt_t *attempt)
{
    json_t *json = json_pack ("{s:s,s:s?,s:s?,s:i,s:I}", "tier", attempt->tier,
                              "model", attempt->model, "provider", attempt->provider,
                              "status", (int) attempt->status,
                              "duration_ms", (json_int_t) attempt->duration_ms);
    if (attempt->answer)
        json_object_set_new (json, "gate", json_pack ("{s:b,s:I,s:b,s:s?,s:b}",
            "passed", attempt->gate.passed,
            "chars", (json_int_t) attempt->gate.chars,
            "long_enough", attempt->gate.long_enough,
            "hedge", attempt->gate.hedge [0]? attempt->gate.hedge: NULL,
            "shares_step", attempt->gate.shares_step));
    return json;
}


//  --------------------------------------------------------------------------
//  A copy of text cut to at most chars UTF-8 characters (caller frees)

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
//  Append one replay_run.v1 row (one write on an O_APPEND file, so rows
//  never interleave); a failure is logged, never the request's

static void
s_replay_log (s_state_t *self, lh_request_t *request, json_t *row)
{
    if (!self->replay_log)
        return;
    char *text = lh_canon_text (row, NULL);
    char *line = text? zsys_sprintf ("%s\n", text): NULL;
    free (text);
    char *dir = strdup (self->replay_log);
    char *slash = strrchr (dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        zsys_dir_create ("%s", dir);
    }
    free (dir);
    int fd = line? open (self->replay_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640): -1;
    ssize_t size = line? (ssize_t) strlen (line): 0;
    if (fd < 0 || write (fd, line, size) != size)
        lh_error (S_NAME, lh_request_trace (request), "replay log %s: %s", self->replay_log,
                  line? strerror (errno): "the row could not be encoded");
    if (fd >= 0)
        close (fd);
    zstr_free (&line);
}


//  --------------------------------------------------------------------------
//  Now as RFC 3339 UTC with milliseconds

static void
s_timestamp (char *buffer, size_t size)
{
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r (&now.tv_sec, &tm);
    char seconds [24];
    strftime (seconds, sizeof (seconds), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf (buffer, size, "%.19s.%03dZ", seconds, (int) (now.tv_nsec / 1000000) % 1000);
}


//  --------------------------------------------------------------------------
//  replay {task, local_only?, allow_escalation?, no_retrieval?, dry_run?}

static void
s_replay (lh_request_t *request, void *state)
{
    s_state_t *self = (s_state_t *) state;
    static const char *fields [] = { "task", "local_only", "allow_escalation", "no_retrieval",
                                     "dry_run", NULL };
    int64_t start = zclock_mono ();
    char *task = NULL;
    bool local_only = false, allow_escalation = false, no_retrieval = false, dry_run = false;
    const msgpack_object *body = lh_request_map (request);
    if (!body || s_only (request, body, "replay", fields)
    ||  lh_request_strdup (request, body, "task", LH_FIELD_REQUIRED | LH_FIELD_NONEMPTY
                           | LH_FIELD_LIMIT_413, (size_t) self->task_max, &task)
    ||  lh_request_bool (request, body, "local_only", 0, &local_only)
    ||  lh_request_bool (request, body, "allow_escalation", 0, &allow_escalation)
    ||  lh_request_bool (request, body, "no_retrieval", 0, &no_retrieval)
    ||  lh_request_bool (request, body, "dry_run", 0, &dry_run)) {
        free (task);
        return;
    }
    char *normal = lh_distill_task_normalize (task);
    bool blank = !*normal;
    free (normal);
    if (blank) {
        lh_request_bad (request, "task", "'task' must hold more than blanks");
        free (task);
        return;
    }
    char timestamp [40];
    s_timestamp (timestamp, sizeof (timestamp));
    uint8_t random [8];
    randombytes_buf (random, sizeof (random));
    char replay_id [24];
    snprintf (replay_id, sizeof (replay_id), "rp-");
    for (size_t index = 0; index < sizeof (random); index++)
        snprintf (replay_id + 3 + index * 2, 3, "%02x", random [index]);
    char task_hash [65];
    lh_distill_task_hash (task, task_hash);
    json_t *retrieval = no_retrieval? NULL: lh_distill_retrieve (self->kb, task);
    char *prompt = lh_distill_prompt (task, retrieval);
    lh_distill_tokens_t steps = { NULL, 0 };
    json_t *step_list = json_object_get (retrieval, "steps");
    for (size_t index = 0; index < json_array_size (step_list); index++)
        lh_distill_tokens_add (&steps, json_string_value (json_array_get (step_list, index)));
    bool escalation = allow_escalation && !local_only && *self->escalation_tier;
    json_t *retrieved = retrieval? json_pack ("{s:O,s:I,s:I,s:O}",
        "hits", json_object_get (retrieval, "hits"),
        "exemplars", (json_int_t) json_array_size (json_object_get (retrieval, "exemplars")),
        "warnings", (json_int_t) json_array_size (json_object_get (retrieval, "warnings")),
        "steps", step_list): json_null ();
    char prompt_hash [65];
    lh_canon_sha256_bytes (prompt, strlen (prompt), prompt_hash);
    char *prompt_kept = s_cut (prompt, S_KEEP);
    json_t *row = json_pack ("{s:s,s:s,s:s,s:s,s:s,s:s,s:{s:b,s:b,s:b,s:b},s:O,s:s,s:s,s:I}",
        "schema", LH_REPLAY_SCHEMA,
        "replay_id", replay_id,
        "timestamp", timestamp,
        "trace_id", lh_request_trace (request),
        "task", task,
        "task_hash", task_hash,
        "flags", "local_only", local_only, "allow_escalation", allow_escalation,
                 "no_retrieval", no_retrieval, "dry_run", dry_run,
        "retrieval", retrieved,
        "prompt", prompt_kept,
        "prompt_sha256", prompt_hash,
        "prompt_chars", (json_int_t) strlen (prompt));
    assert (row);
    free (prompt_kept);
    json_t *attempts = json_array ();
    json_t *reply = NULL;
    lh_reply_t *failed = NULL;
    const char *outcome = "dry_run";
    s_attempt_t local, escalated;
    memset (&local, 0, sizeof (local));
    memset (&escalated, 0, sizeof (escalated));
    const s_attempt_t *final = NULL;

    if (dry_run) {
        //  Deterministic: a function of the task and the RAG export only
        reply = json_pack ("{s:b,s:s,s:s,s:O,s:s,s:s?,s:b}",
            "dry_run", true,
            "outcome", outcome,
            "task_hash", task_hash,
            "retrieval", retrieved,
            "tier", self->local_tier,
            "escalation_tier", escalation? self->escalation_tier: NULL,
            "local_only", local_only);
        json_object_set_new (reply, "prompt", json_string (prompt));
    }
    else
    if (s_chat (request, self, self->local_tier, prompt, &local, &failed) == 0) {
        lh_distill_gate (local.answer, (size_t) self->gate_min_chars, self->hedges, &steps, &local.gate);
        json_array_append_new (attempts, s_attempt_json (&local));
        final = &local;
        if (!local.gate.passed && escalation) {
            if (s_chat (request, self, self->escalation_tier, prompt, &escalated, &failed) == 0) {
                lh_distill_gate (escalated.answer, (size_t) self->gate_min_chars, self->hedges,
                                 &steps, &escalated.gate);
                final = &escalated;
            }
            json_array_append_new (attempts, s_attempt_json (&escalated));
        }
        if (!failed)
            outcome = final->gate.passed? "passed": "failed";
    }
    else
        json_array_append_new (attempts, s_attempt_json (&local));
    if (failed)
        outcome = "error";
    json_object_set_new (row, "outcome", json_string (outcome));
    json_object_set (row, "attempts", attempts);
    json_object_set_new (row, "escalated", json_boolean (escalated.tier != NULL));
    if (final && !failed) {
        char *answer = s_cut (final->answer, S_KEEP);
        json_object_set_new (row, "answer", json_string (answer));
        free (answer);
        json_object_set_new (row, "final_tier", json_string (final->tier));
        reply = json_pack ("{s:s,s:s,s:b,s:b,s:s,s:s,s:s?,s:s?,s:O,s:O,s:s,s:s}",
            "replay_id", replay_id,
            "outcome", outcome,
            "passed", final->gate.passed,
            "escalated", escalated.tier != NULL,
            "answer", final->answer,
            "tier", final->tier,
            "model", final->model,
            "provider", final->provider,
            "attempts", attempts,
            "retrieval", retrieved,
            "task_hash", task_hash,
            "prompt", prompt);
        assert (reply);
    }
    json_object_set_new (row, "duration_ms", json_integer (zclock_mono () - start));
    s_replay_log (self, request, row);
    s_publish (request, "replay_id", replay_id, outcome, escalated.tier != NULL);
    lh_info (S_NAME, lh_request_trace (request), "replay %s: %s%s", replay_id, outcome,
             escalated.tier? " (escalated)": "");
    if (failed)
        lh_request_fail_dependency (request, failed, "chatd", "the replay's chat");
    else
        s_reply_json (request, LH_ST_OK, reply);
    lh_reply_destroy (&failed);
    s_attempt_reset (&local);
    s_attempt_reset (&escalated);
    json_decref (attempts);
    json_decref (row);
    json_decref (retrieved);
    json_decref (retrieval);
    lh_distill_tokens_reset (&steps);
    free (prompt);
    free (task);
}


static const lh_op_t s_ops [] = {
    { "materialize", s_materialize },
    { "score",       s_score },
    { "export",      s_export },
    { "drift",       s_drift },
    { "run",         s_run },
    { "runs",        s_runs },
    { "report",      s_report },
    { "replay",      s_replay },
    { NULL, NULL }
};

const lh_service_t lh_distilld_service = {
    .name = "distilld",
    .ops = s_ops,
    .state_new = s_state_new,
    .state_destroy = s_state_destroy,
    .credit = 1
};


//  ==========================================================================
//  Self test
//  ==========================================================================

#include "lh_testbus.h"

//  A fake chatd: answers by model from a script, remembers the last prompt
static const char *s_fake_local = NULL;             //  answer of local_fast
static const char *s_fake_escalation = NULL;        //  answer of cloud_judge
static char s_fake_prompt [8192];                   //  last user message
static int s_fake_calls = 0;                        //  chats served

//  The fake chatd's chat op
static void
s_fake_chat (lh_request_t *request, void *state)
{
    json_t *body = lh_json_from_object (lh_request_object (request), NULL);
    const char *model = json_string_value (json_object_get (body, "model"));
    json_t *messages = json_object_get (body, "messages");
    snprintf (s_fake_prompt, sizeof (s_fake_prompt), "%s", json_string_value (json_object_get (
              json_array_get (messages, json_array_size (messages) - 1), "content")));
    s_fake_calls++;
    const char *content = model && streq (model, "local_fast")? s_fake_local: s_fake_escalation;
    if (!content)
        lh_request_fail (request, LH_ST_BAD_GATEWAY, "upstream", "the fake provider is down");
    else
        s_reply_json (request, LH_ST_OK, json_pack ("{s:s,s:s,s:s}", "content", content,
                                                    "model", model, "provider", "fake"));
    json_decref (body);
}

static const lh_op_t s_fake_ops [] = { { "chat", s_fake_chat }, { NULL, NULL } };
static const lh_service_t s_fake_chatd = { .name = "chatd", .ops = s_fake_ops };

//  Write a file under a directory
static void
s_test_file (const char *dir, const char *relative, const char *text)
{
    char *path = zsys_sprintf ("%s/%s", dir, relative);
    char *slash = strrchr (path, '/');
    *slash = 0;
    zsys_dir_create ("%s", path);
    *slash = '/';
    FILE *file = fopen (path, "w");
    assert (file);
    fputs (text, file);
    fclose (file);
    zstr_free (&path);
}

//  The reply's body as JSON (taken by the caller)
static json_t *
s_test_body (lh_reply_t *reply)
{
    return lh_json_from_object (lh_reply_object (reply), NULL);
}

//  Lines in a file, 0 if none
static size_t
s_test_lines (const char *path)
{
    FILE *file = fopen (path, "r");
    size_t lines = 0;
    int c;
    while (file && (c = getc (file)) != EOF)
        lines += c == '\n';
    if (file)
        fclose (file);
    return lines;
}

void
lh_distilld_test (bool verbose)
{
    printf (" * distilld: ");
    lh_testbus_t *bus = lh_testbus_new ("distilld");
    char *root = zsys_sprintf ("%s/kb", lh_testbus_dir (bus));
    lh_testbus_set (bus, "distilld/root", root);
    lh_testbus_set (bus, "distilld/batch_rows", "1");
    lh_testbus_set (bus, "distilld/task_max", "64");
    lh_testbus_start (bus, &s_fake_chatd, 1);
    lh_testbus_start (bus, &lh_distilld_service, 1);
    lh_client_t *client = lh_testbus_client (bus);

    //  Every malformed body: one answer, its status, kind and field, and
    //  nothing written
    struct {
        const char *op;
        const char *json;
        uint32_t status;
        const char *error;              //  "kind/field"
    } cases [] = {
        { "materialize", "[]", 400, "bad_body/" },
        { "materialize", "\"x\"", 400, "bad_body/" },
        { "materialize", "{\"recorded-at\": \"2026-01-01T00:00:00Z\"}", 400, "bad_field/recorded-at" },
        { "materialize", "{\"recorded_at\": 5}", 400, "bad_field/recorded_at" },
        { "materialize", "{\"recorded_at\": \"yesterday\"}", 400, "bad_field/recorded_at" },
        { "materialize", "{\"recorded_at\": \"1767323045\"}", 400, "bad_field/recorded_at" },
        { "materialize", "{\"recorded_at\": \"2026-02-30T00:00:00Z\"}", 400, "bad_field/recorded_at" },
        { "materialize", "{\"run_id\": \"../x\"}", 400, "bad_field/run_id" },
        { "materialize", "{\"run_id\": \"\"}", 400, "bad_field/run_id" },
        { "materialize", "{\"run_id\": 7}", 400, "bad_field/run_id" },
        { "materialize", "{\"progress\": \"yes\"}", 400, "bad_field/progress" },
        { "materialize", "{\"since\": \"2026-01-01\"}", 400, "bad_field/since" },
        { "score", "{\"since\": \"2026-1-1\"}", 400, "bad_field/since" },
        { "score", "{\"until\": \"2026-02-30\"}", 400, "bad_field/until" },
        { "score", "{\"since\": \"2026-02-02\", \"until\": \"2026-02-01\"}", 400, "bad_field/until" },
        { "score", "{\"recorded_at\": \"2026-01-01T00:00:00Z\"}", 400, "bad_field/recorded_at" },
        { "score", "{\"run_id\": \".hidden\"}", 400, "bad_field/run_id" },
        { "export", "{\"since\": \"2026-01-01\"}", 400, "bad_field/since" },
        { "export", "{\"run_id\": \"a/b\"}", 400, "bad_field/run_id" },
        { "export", "{}", 409, "not_scored/" },
        { "export", "{\"run_id\": \"nosuch\"}", 404, "no_such_run/" },
        { "drift", "{\"progress\": true}", 400, "bad_field/progress" },
        { "drift", "{}", 409, "not_scored/" },
        { "run", "{\"recorded_at\": \"2026-01-01\"}", 400, "bad_field/recorded_at" },
        { "run", "{\"until\": 20260101}", 400, "bad_field/until" },
        { "run", "{\"task\": \"x\"}", 400, "bad_field/task" },
        { "runs", "{\"run_id\": \"x\"}", 400, "bad_field/run_id" },
        { "report", "{}", 400, "bad_field/run_id" },
        { "report", "{\"run_id\": \"\"}", 400, "bad_field/run_id" },
        { "report", "{\"run_id\": \"../../etc\"}", 400, "bad_field/run_id" },
        { "report", "{\"run_id\": \"nosuch\"}", 404, "no_such_run/" },
        { "replay", NULL, 400, "bad_field/task" },
        { "replay", "{}", 400, "bad_field/task" },
        { "replay", "{\"task\": \"\"}", 400, "bad_field/task" },
        { "replay", "{\"task\": \"   \"}", 400, "bad_field/task" },
        { "replay", "{\"task\": 3}", 400, "bad_field/task" },
        { "replay", "{\"task\": \"a\\u0000b\"}", 400, "bad_field/task" },
        { "replay", "{\"task\": \"0123456789012345678901234567890123456789012345678901234567890123456789\"}",
          413, "too_large/task" },
        { "replay", "{\"task\": \"x\", \"dry_run\": 1}", 400, "bad_field/dry_run" },
        { "replay", "{\"task\": \"x\", \"local_only\": \"true\"}", 400, "bad_field/local_only" },
        { "replay", "{\"task\": \"x\", \"allow_escalation\": null, \"no_retrieval\": []}", 400,
          "bad_field/no_retrieval" },
        { "replay", "{\"task\": \"x\", \"model\": \"gpt\"}", 400, "bad_field/model" },
    };
    for (size_t index = 0; index < sizeof (cases) / sizeof (cases [0]); index++) {
        lh_reply_t *reply = lh_testbus_call (bus, "distilld", cases [index].op, cases [index].json);
        char *error = lh_testbus_error (reply);
        if (verbose)
            printf ("\n    %s %s -> %u %s", cases [index].op, cases [index].json? cases [index].json: "(none)",
                    lh_reply_status (reply), error);
        if (lh_reply_status (reply) != cases [index].status || !streq (error, cases [index].error)) {
            fprintf (stderr, "case %zu (%s %s): got %u %s\n", index, cases [index].op,
                     cases [index].json? cases [index].json: "(none)", lh_reply_status (reply), error);
            assert (false);
        }
        zstr_free (&error);
        lh_reply_destroy (&reply);
        assert (lh_client_recv (client, &reply, 0) == -1);
    }
    const char *written [] = { "evidence", "reports", "exports", "replay", NULL };
    for (const char **dir = written; *dir; dir++) {
        char *path = zsys_sprintf ("%s/%s", root, *dir);
        assert (!zsys_file_exists (path));
        zstr_free (&path);
    }

    //  A small knowledge base, through every stage with progress PARTs
    s_test_file (root, "data/_kb/distilled_facts.jsonl",
                 "{\"id\": \"F-7\", \"ts\": \"2026-01-01T00:00:00Z\"}\n");
    s_test_file (root, "data/_kb/outcomes.jsonl",
        "{\"ts\": \"2026-01-02T00:00:00Z\", \"task\": \"Speed up the nightly export job\", \"verdict\": "
            "\"accepted\", \"run_id\": \"r1\", \"anchors\": [\"F-7\"], \"answer\": \"Batch the writes "
            "1000 rows at a time.\\nVerify the nightly export finishes under ten minutes\"}\n"
        "{\"ts\": \"2026-01-02T00:00:01Z\", \"task\": \"Speed up the nightly export job\", \"verdict\": "
            "\"partial\", \"run_id\": \"r2\", \"answer\": \"Add an index.\\n- check the export plan uses it\"}\n"
        "{\"ts\": \"2026-01-02T00:00:02Z\", \"task\": \"Speed up the nightly export job\", \"verdict\": "
            "\"rejected\", \"run_id\": \"r3\", \"answer\": \"Run it less often\"}\n");
    lh_reply_t *reply = lh_testbus_call (bus, "distilld", "run",
                                         "{\"run_id\": \"first\", \"progress\": true}");
    assert (lh_reply_status (reply) == 200);
    zlist_t *parts = lh_reply_parts (reply);
    assert (parts && zlist_size (parts) >= 4);
    json_t *body = s_test_body (reply);
    assert (streq (json_string_value (json_object_get (body, "run_id")), "first"));
    assert (json_integer_value (json_object_get (json_object_get (body, "materialize"), "written")) == 4);
    assert (streq (json_string_value (json_object_get (json_object_get (body, "drift"), "status")), "baseline"));
    assert (json_integer_value (json_object_get (json_object_get (json_object_get (body, "export"), "rag"),
                                                 "written")) == 3);
    json_decref (body);
    lh_reply_destroy (&reply);
    //  Without progress: no PARTs
    reply = lh_testbus_call (bus, "distilld", "materialize", NULL);
    assert (lh_reply_status (reply) == 200 && !lh_reply_parts (reply));
    lh_reply_destroy (&reply);
    assert (lh_testbus_status (bus, "distilld", "report", "{\"run_id\": \"first\"}") == 200);
    reply = lh_testbus_call (bus, "distilld", "runs", NULL);
    body = s_test_body (reply);
    assert (json_integer_value (json_object_get (body, "count")) == 2);
    json_decref (body);
    lh_reply_destroy (&reply);

    //  replay: a dry run is deterministic and calls nobody
    const char *task = "{\"task\": \"Make the nightly export faster\", \"dry_run\": true}";
    reply = lh_testbus_call (bus, "distilld", "replay", task);
    assert (lh_reply_status (reply) == 200);
    char *one = lh_testbus_json (reply);
    lh_reply_destroy (&reply);
    reply = lh_testbus_call (bus, "distilld", "replay", task);
    char *two = lh_testbus_json (reply);
    lh_reply_destroy (&reply);
    assert (streq (one, two) && strstr (one, "\"outcome\":\"dry_run\"") && strstr (one, "Batch the writes"));
    assert (s_fake_calls == 0);
    zstr_free (&one);
    zstr_free (&two);
    char *log = zsys_sprintf ("%s/replay/replay_runs.jsonl", root);
    assert (s_test_lines (log) == 2);

    //  A passing answer
    const char *good = "Batch the writes 1000 rows at a time in the nightly export and add the index "
                       "its plan needs; it finishes in minutes.";
    const char *hedge = "I'm not sure, but maybe batching the writes in the nightly export could help "
                        "it finish in fewer minutes.";
    s_fake_local = good;
    s_fake_escalation = good;
    reply = lh_testbus_call (bus, "distilld", "replay", "{\"task\": \"Make the nightly export faster\"}");
    assert (lh_reply_status (reply) == 200);
    body = s_test_body (reply);
    assert (json_is_true (json_object_get (body, "passed")) && json_is_false (json_object_get (body, "escalated")));
    assert (streq (json_string_value (json_object_get (body, "outcome")), "passed"));
    assert (json_integer_value (json_object_get (json_object_get (body, "retrieval"), "exemplars")) == 1);
    assert (json_integer_value (json_object_get (json_object_get (body, "retrieval"), "warnings")) == 1);
    json_decref (body);
    lh_reply_destroy (&reply);
    assert (strstr (s_fake_prompt, "Accepted answers") && strstr (s_fake_prompt, "Batch the writes")
            && strstr (s_fake_prompt, "- Verify the nightly export finishes under ten minutes")
            && strstr (s_fake_prompt, "- check the export plan uses it"));
    assert (s_test_lines (log) == 3);

    //  A hedging answer: fails, escalates when allowed, not when local_only
    struct {
        const char *json;
        const char *outcome;
        bool escalated;
        int calls;
    } hedging [] = {
        { "{\"task\": \"Make the nightly export faster\"}", "failed", false, 1 },
        { "{\"task\": \"Make the nightly export faster\", \"allow_escalation\": true}", "passed", true, 2 },
        { "{\"task\": \"Make the nightly export faster\", \"allow_escalation\": true, \"local_only\": true}",
          "failed", false, 1 },
    };
    s_fake_local = hedge;
    for (size_t index = 0; index < 3; index++) {
        int calls = s_fake_calls;
        reply = lh_testbus_call (bus, "distilld", "replay", hedging [index].json);
        assert (lh_reply_status (reply) == 200);
        body = s_test_body (reply);
        assert (streq (json_string_value (json_object_get (body, "outcome")), hedging [index].outcome));
        assert (json_is_true (json_object_get (body, "escalated")) == hedging [index].escalated);
        json_t *gate = json_object_get (json_array_get (json_object_get (body, "attempts"), 0), "gate");
        assert (json_is_false (json_object_get (gate, "passed"))
                && streq (json_string_value (json_object_get (gate, "hedge")), "i'm not sure"));
        assert (s_fake_calls - calls == hedging [index].calls);
        json_decref (body);
        lh_reply_destroy (&reply);
    }
    assert (s_test_lines (log) == 6);
    //  no_retrieval: the prompt carries no exemplar, no warning, no step
    s_fake_local = good;
    reply = lh_testbus_call (bus, "distilld", "replay",
                            "{\"task\": \"Make the nightly export faster\", \"no_retrieval\": true}");
    assert (lh_reply_status (reply) == 200);
    lh_reply_destroy (&reply);
    assert (strstr (s_fake_prompt, "Make the nightly export faster") && !strstr (s_fake_prompt, "Batch")
            && !strstr (s_fake_prompt, "Accepted") && !strstr (s_fake_prompt, "validation steps"));
    //  chatd failing: 500 dependency_failed, and the row still written
    s_fake_local = NULL;
    reply = lh_testbus_call (bus, "distilld", "replay", "{\"task\": \"Make the nightly export faster\"}");
    char *error = lh_testbus_error (reply);
    assert (lh_reply_status (reply) == 500 && streq (error, "dependency_failed/"));
    zstr_free (&error);
    lh_reply_destroy (&reply);
    assert (s_test_lines (log) == 8);
    char *path = zsys_sprintf ("%s/replay/replay_runs.jsonl", root);
    json_error_t problem;
    FILE *file = fopen (path, "r");
    char line [16384];
    const char *outcomes [] = { "dry_run", "dry_run", "passed", "failed", "passed", "failed", "passed", "error" };
    for (size_t index = 0; index < 8; index++) {
        assert (fgets (line, sizeof (line), file));
        json_t *row = json_loads (line, 0, &problem);
        assert (row && streq (json_string_value (json_object_get (row, "schema")), "replay_run.v1"));
        assert (streq (json_string_value (json_object_get (row, "outcome")), outcomes [index]));
        json_decref (row);
    }
    fclose (file);
    zstr_free (&path);
    zstr_free (&log);
    zstr_free (&root);
    lh_testbus_destroy (&bus);
    printf ("OK\n");
}
