/*  =========================================================================
    lh_distill_cli - `lakehouse distill STAGE [options]`; see
    lh_distill_cli.h and docs/distilld.md
    =========================================================================
*/

#include "lh_distill_cli.h"
#include "lh_body.h"
#include "lh_json.h"

#define S_EXIT_FAILURE  1               //  refused or failed
#define S_EXIT_USAGE    2               //  bad command line
#define S_POLL_MS       200             //  wait slice for the reply

//  One stage of the command line
typedef struct {
    const char *stage;                  //  the word after `distill`
    const char *options;                //  what it takes, space-separated
    const char *positional;             //  field a bare word fills, or NULL
    bool progress;                      //  long: ask for progress PARTs
} s_stage_t;

static const s_stage_t s_stages [] = {
    { "materialize", "--run-id --recorded-at", NULL, true },
    { "score",       "--run-id --since --until", NULL, true },
    { "export",      "--run-id", NULL, true },
    { "drift",       "--run-id", NULL, false },
    { "run",         "--run-id --recorded-at --since --until", NULL, true },
    { "replay",      "--task --local-only --allow-escalation --no-retrieval --dry-run", "task", false },
    { "runs",        "", NULL, false },
    { "report",      "--run-id", "run_id", false },
    { NULL, NULL, NULL, false }
};

//  Options with a value, and the request field each fills
static const char *s_valued [][2] = {
    { "--run-id", "run_id" }, { "--recorded-at", "recorded_at" }, { "--since", "since" },
    { "--until", "until" }, { "--task", "task" }, { NULL, NULL }
};

//  Flags, and the boolean field each sets
static const char *s_flags [][2] = {
    { "--local-only", "local_only" }, { "--allow-escalation", "allow_escalation" },
    { "--no-retrieval", "no_retrieval" }, { "--dry-run", "dry_run" }, { NULL, NULL }
};


//  --------------------------------------------------------------------------
//  Print the usage lines

void
lh_distill_cli_usage (FILE *file)
{
    fprintf (file,
        "       lakehouse [options] distill materialize [--recorded-at T] [--run-id ID]\n"
        "       lakehouse [options] distill score [--since DAY] [--until DAY] [--run-id ID]\n"
        "       lakehouse [options] distill export | drift [--run-id ID]\n"
        "       lakehouse [options] distill run [--recorded-at T] [--since DAY] [--until DAY] [--run-id ID]\n"
        "       lakehouse [options] distill replay --task TEXT [--local-only] [--allow-escalation]\n"
        "                                          [--no-retrieval] [--dry-run]\n"
        "       lakehouse [options] distill runs | report RUN_ID      (any stage: [--timeout-ms N])\n");
}


//  --------------------------------------------------------------------------
//  Is word one of the space-separated options?

static bool
s_takes (const char *options, const char *word)
{
    size_t size = strlen (word);
    for (const char *scan = strstr (options, word); scan; scan = strstr (scan + 1, word))
        if ((scan == options || scan [-1] == ' ') && (scan [size] == ' ' || !scan [size]))
            return true;
    return false;
}


//  --------------------------------------------------------------------------
//  Build the request of a command line

int
lh_distill_cli_request (zlist_t *words, const char **op, json_t **body,
                        uint32_t *timeout_ms, char **error_p)
{
    assert (words && op && body && timeout_ms && error_p);
    *body = NULL;
    *error_p = NULL;
    *timeout_ms = LH_DISTILL_CLI_TIMEOUT_MS;
    const char *word = (const char *) zlist_first (words);
    const s_stage_t *stage = s_stages;
    while (word && stage->stage && !streq (stage->stage, word))
        stage++;
    if (!word || !stage->stage) {
        *error_p = zsys_sprintf ("distill: %s%s%s: give a stage: materialize, score, export, "
                                 "drift, run, replay, runs or report", word? "unknown stage '": "no stage",
                                 word? word: "", word? "'": "");
        return -1;
    }
    *op = stage->stage;
    json_t *request = json_object ();
    while ((word = (const char *) zlist_next (words))) {
        const char *field = NULL;
        for (size_t index = 0; s_valued [index][0] && !field; index++)
            if (streq (word, s_valued [index][0]))
                field = s_valued [index][1];
        const char *flag = NULL;
        for (size_t index = 0; s_flags [index][0] && !flag; index++)
            if (streq (word, s_flags [index][0]))
                flag = s_flags [index][1];
        if (streq (word, "--timeout-ms")) {
            const char *value = (const char *) zlist_next (words);
            char *end = NULL;
            long long number = value? strtoll (value, &end, 10): 0;
            if (!value || !*value || *end || number < 1 || number > 86400000) {
                *error_p = zsys_sprintf ("distill %s: --timeout-ms needs a number of ms from 1 "
                                         "to 86400000", stage->stage);
                break;
            }
            *timeout_ms = (uint32_t) number;
        }
        else
        if ((field || flag) && !s_takes (stage->options, word)) {
            *error_p = zsys_sprintf ("distill %s does not take %s (it takes: %s)", stage->stage,
                                     word, *stage->options? stage->options: "no options");
            break;
        }
        else
        if (field) {
            const char *value = (const char *) zlist_next (words);
            if (!value) {
                *error_p = zsys_sprintf ("distill %s: %s needs a value", stage->stage, word);
                break;
            }
            json_t *text = json_string (value);
            if (!text) {
                *error_p = zsys_sprintf ("distill %s: %s is not valid UTF-8", stage->stage, word);
                break;
            }
            json_object_set_new (request, field, text);
        }
        else
        if (flag)
            json_object_set_new (request, flag, json_true ());
        else
        if (*word == '-') {
            *error_p = zsys_sprintf ("distill %s: unknown option '%s' (it takes: %s)", stage->stage,
                                     word, *stage->options? stage->options: "no options");
            break;
        }
        else
        if (stage->positional && !json_object_get (request, stage->positional)) {
            json_t *text = json_string (word);
            if (!text) {
                *error_p = zsys_sprintf ("distill %s: '%s' is not valid UTF-8", stage->stage, word);
                break;
            }
            json_object_set_new (request, stage->positional, text);
        }
        else {
            *error_p = zsys_sprintf ("distill %s: unexpected argument '%s'", stage->stage, word);
            break;
        }
    }
    if (!*error_p && stage->positional && streq (stage->positional, "run_id")
    &&  !json_object_get (request, "run_id"))
        *error_p = zsys_sprintf ("distill %s needs a run id: lakehouse distill %s RUN_ID",
                                 stage->stage, stage->stage);
    if (!*error_p && stage->positional && streq (stage->positional, "task")
    &&  !json_object_get (request, "task"))
        *error_p = zsys_sprintf ("distill %s needs a task: --task TEXT", stage->stage);
    if (*error_p) {
        json_decref (request);
        return -1;
    }
    if (stage->progress)
        json_object_set_new (request, "progress", json_true ());
    *body = request;
    return 0;
}


//  --------------------------------------------------------------------------
//  Show one progress PART: a line, rewritten in place on a terminal

static void
s_progress_show (lh_reply_t *part, FILE *err, bool tty)
{
    size_t size;
    const void *data = lh_reply_body (part, &size);
    json_t *progress = data? lh_json_from_msgpack (data, size, &lh_limits_default, NULL): NULL;
    const char *stage = json_string_value (json_object_get (progress, "stage"));
    const char *phase = json_string_value (json_object_get (progress, "phase"));
    const char *source = json_string_value (json_object_get (progress, "source"));
    if (stage && phase) {
        fprintf (err, "%s%s %s: %" JSON_INTEGER_FORMAT " read, %" JSON_INTEGER_FORMAT " written%s%s%s%s",
                 tty? "\r": "", stage, phase,
                 json_integer_value (json_object_get (progress, "read")),
                 json_integer_value (json_object_get (progress, "written")),
                 source? " (": "", source? source: "", source? ")": "", tty? "\033[K": "\n");
        fflush (err);
    }
    json_decref (progress);
}


//  --------------------------------------------------------------------------
//  Run a command line over client

int
lh_distill_cli_run (lh_client_t *client, zlist_t *words, FILE *out, FILE *err)
{
    assert (client && words);
    const char *op;
    json_t *request;
    uint32_t timeout_ms;
    char *error = NULL;
    if (lh_distill_cli_request (words, &op, &request, &timeout_ms, &error)) {
        fprintf (err, "lakehouse: %s\n", error);
        free (error);
        return S_EXIT_USAGE;
    }
    lh_pack_t *pack = lh_pack_new ();
    int rc = lh_json_to_pack (request, pack, &lh_limits_default, &error);
    json_decref (request);
    if (rc) {
        fprintf (err, "lakehouse: distill %s: %s\n", op, error? error: "cannot encode the request");
        free (error);
        lh_pack_destroy (&pack);
        return S_EXIT_USAGE;
    }
    size_t size;
    const void *data = lh_pack_data (pack, &size);
    lh_call_opts_t opts = { .timeout_ms = timeout_ms };
    uint64_t id = lh_client_send (client, "distilld", op, data, size, &opts);
    lh_pack_destroy (&pack);
    if (id == 0) {
        fprintf (err, "lakehouse: distill %s: the request could not be sent\n", op);
        return S_EXIT_FAILURE;
    }
    bool tty = isatty (fileno (err));
    bool shown = false;
    lh_reply_t *reply = NULL;
    //  The broker answers 504 at the deadline; our own limit is a backstop
    int64_t give_up = zclock_mono () + timeout_ms + 5000;
    while (!reply && zclock_mono () < give_up) {
        lh_reply_t *message = NULL;
        if (lh_client_recv (client, &message, S_POLL_MS))
            continue;
        if (lh_reply_cid (message) == id && lh_reply_type (message) == LH_T_PART) {
            s_progress_show (message, err, tty);
            shown = true;
        }
        if (lh_reply_cid (message) == id && lh_reply_type (message) == LH_T_REP)
            reply = message;
        else
            lh_reply_destroy (&message);
    }
    if (shown && tty)
        fprintf (err, "\n");
    if (!reply) {
        fprintf (err, "lakehouse: distill %s: no answer within %u ms\n", op, timeout_ms);
        return S_EXIT_FAILURE;
    }
    uint32_t status = lh_reply_status (reply);
    const void *body = lh_reply_body (reply, &size);
    char *text = body? lh_json_text_from_msgpack (body, size, &lh_limits_default, NULL): NULL;
    if (status >= 200 && status < 300) {
        fprintf (out, "%s\n", text? text: "{}");
        rc = 0;
    }
    else {
        const char *reason = lh_reply_reason (reply);
        fprintf (err, "lakehouse: distill %s: %u %s\n", op, status,
                 reason? reason: text? text: lh_status_text (status));
        rc = S_EXIT_FAILURE;
    }
    free (text);
    lh_reply_destroy (&reply);
    return rc;
}


//  --------------------------------------------------------------------------
//  Self test of this class

void
lh_distill_cli_test (bool verbose)
{
    printf (" * lh_distill_cli: ");
    struct {
        const char *line;               //  words after `distill`, space-separated
        const char *op;                 //  expected op, NULL = refused
        const char *body;               //  expected body (canonical order), or
                                        //  a part of the error
        uint32_t timeout_ms;
    } cases [] = {
        { "materialize", "materialize", "{\"progress\":true}", LH_DISTILL_CLI_TIMEOUT_MS },
        { "materialize --recorded-at 2026-01-01T00:00:00Z --run-id r1", "materialize",
          "{\"progress\":true,\"recorded_at\":\"2026-01-01T00:00:00Z\",\"run_id\":\"r1\"}", LH_DISTILL_CLI_TIMEOUT_MS },
        { "score --since 2026-01-01 --until 2026-01-31 --timeout-ms 5000", "score",
          "{\"progress\":true,\"since\":\"2026-01-01\",\"until\":\"2026-01-31\"}", 5000 },
        { "export", "export", "{\"progress\":true}", LH_DISTILL_CLI_TIMEOUT_MS },
        { "drift --run-id r7", "drift", "{\"run_id\":\"r7\"}", LH_DISTILL_CLI_TIMEOUT_MS },
        { "run --since 2026-01-01", "run", "{\"progress\":true,\"since\":\"2026-01-01\"}", LH_DISTILL_CLI_TIMEOUT_MS },
        { "replay --task fix --dry-run --local-only", "replay",
          "{\"dry_run\":true,\"local_only\":true,\"task\":\"fix\"}", LH_DISTILL_CLI_TIMEOUT_MS },
        { "replay fix --allow-escalation --no-retrieval", "replay",
          "{\"allow_escalation\":true,\"no_retrieval\":true,\"task\":\"fix\"}", LH_DISTILL_CLI_TIMEOUT_MS },
        { "runs", "runs", "{}", LH_DISTILL_CLI_TIMEOUT_MS },
        { "report r1", "report", "{\"run_id\":\"r1\"}", LH_DISTILL_CLI_TIMEOUT_MS },
        { "report --run-id r2", "report", "{\"run_id\":\"r2\"}", LH_DISTILL_CLI_TIMEOUT_MS },
        { "", NULL, "give a stage", 0 },
        { "distil", NULL, "unknown stage 'distil'", 0 },
        { "drift --since 2026-01-01", NULL, "does not take --since", 0 },
        { "materialize --recorded-at", NULL, "--recorded-at needs a value", 0 },
        { "materialize --frobnicate", NULL, "unknown option '--frobnicate'", 0 },
        { "materialize extra", NULL, "unexpected argument 'extra'", 0 },
        { "replay", NULL, "needs a task", 0 },
        { "replay a b", NULL, "unexpected argument 'b'", 0 },
        { "report", NULL, "needs a run id", 0 },
        { "runs --run-id x", NULL, "does not take --run-id", 0 },
        { "score --timeout-ms 0", NULL, "--timeout-ms needs a number", 0 },
        { "score --timeout-ms 12x", NULL, "--timeout-ms needs a number", 0 },
    };
    for (size_t index = 0; index < sizeof (cases) / sizeof (cases [0]); index++) {
        zlist_t *words = zlist_new ();
        zlist_autofree (words);
        char *line = strdup (cases [index].line);
        for (char *word = strtok (line, " "); word; word = strtok (NULL, " "))
            zlist_append (words, word);
        free (line);
        const char *op = NULL;
        json_t *body = NULL;
        uint32_t timeout_ms = 0;
        char *error = NULL;
        int rc = lh_distill_cli_request (words, &op, &body, &timeout_ms, &error);
        char *text = body? json_dumps (body, JSON_COMPACT | JSON_SORT_KEYS): NULL;
        if (verbose)
            printf ("\n    %s -> %s %s", cases [index].line, rc? "refused": op, rc? error: text);
        if (cases [index].op) {
            if (rc || !streq (op, cases [index].op) || !streq (text, cases [index].body)
            ||  timeout_ms != cases [index].timeout_ms) {
                fprintf (stderr, "case '%s': %d %s %s\n", cases [index].line, rc, error? error: "",
                         text? text: "");
                assert (false);
            }
        }
        else
        if (rc != -1 || !error || !strstr (error, cases [index].body)) {
            fprintf (stderr, "case '%s': %d %s\n", cases [index].line, rc, error? error: "(no error)");
            assert (false);
        }
        free (text);
        free (error);
        json_decref (body);
        zlist_destroy (&words);
    }
    printf ("OK\n");
}
