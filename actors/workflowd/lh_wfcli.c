/*  =========================================================================
    lh_wfcli - `lakehouse workflow run FILE`: a run with a live per-node
    view; see lh_wfcli.h
    =========================================================================
*/

#include "lh_wfcli.h"
#include "lh_body.h"
#include "lh_json.h"

#define S_POLL_MS           100         //  run_get this often
#define S_CALL_MS           30000       //  deadline of workflow_run (it checks services)
#define S_GONE_MS           30000       //  workflowd silent this long: give up
#define S_NODES_MAX         1024        //  nodes shown

//  What we last printed for one node
typedef struct {
    char *id;                           //  the node
    char *status;                       //  its status
    char *call;                         //  svc.op
} s_seen_t;


//  --------------------------------------------------------------------------
//  Read a whole file (at most LH_WFCLI_FILE_MAX); NULL with errno

static char *
s_read_file (const char *path, size_t *size)
{
    FILE *file = streq (path, "-")? stdin: fopen (path, "rb");
    if (!file)
        return NULL;
    size_t max = 65536, used = 0;
    char *data = (char *) malloc (max);
    assert (data);
    size_t got;
    while ((got = fread (data + used, 1, max - used, file)) > 0) {
        used += got;
        if (used == max) {
            if (max >= LH_WFCLI_FILE_MAX) {
                free (data);
                data = NULL;
                errno = EFBIG;
                break;
            }
            max *= 2;
            data = (char *) realloc (data, max);
            assert (data);
        }
    }
    if (file != stdin)
        fclose (file);
    if (data)
        *size = used;
    return data;
}


//  --------------------------------------------------------------------------
//  Pack the inputs map from "NAME=TEXT" and "NAME:=JSON" strings.
//  Returns 0, or -1 after printing why.

static int
s_pack_inputs (lh_pack_t *pack, zlist_t *inputs)
{
    lh_pack_open_map (pack);
    for (const char *input = inputs? (const char *) zlist_first (inputs): NULL; input;
         input = (const char *) zlist_next (inputs)) {
        const char *equals = strchr (input, '=');
        if (!equals || equals == input || (equals == input + 1 && *input == ':')) {
            fprintf (stderr, "lakehouse: --input %s: write NAME=TEXT or NAME:=JSON\n", input);
            return -1;
        }
        bool json = equals [-1] == ':';
        lh_pack_strn (pack, input, (size_t) (equals - input - (json? 1: 0)));
        if (json) {
            char *error = NULL;
            zframe_t *value = lh_json_text_to_frame (equals + 1, strlen (equals + 1), NULL, &error);
            if (!value) {
                fprintf (stderr, "lakehouse: --input %s: not JSON (%s)\n", input, error? error: "?");
                free (error);
                return -1;
            }
            lh_pack_raw (pack, zframe_data (value), zframe_size (value));
            zframe_destroy (&value);
        }
        else
            lh_pack_str (pack, equals + 1);
    }
    lh_pack_close (pack);
    return 0;
}


//  --------------------------------------------------------------------------
//  A reply's error reason, or its status text

static const char *
s_reason (lh_reply_t *reply)
{
    const char *reason = lh_reply_reason (reply);
    return reason? reason: lh_status_text (lh_reply_status (reply));
}


//  --------------------------------------------------------------------------
//  A string field of a map as a fresh string ("" if absent)

static char *
s_field (const msgpack_object *map, const char *name)
{
    char *value = lh_obj_strdup (lh_obj_get (map, name));
    return value? value: strdup ("");
}


//  --------------------------------------------------------------------------
//  Show a run: on a tty the whole table again in place; otherwise a line
//  per node whose status changed. Returns the number of lines drawn.

static size_t
s_show (FILE *out, bool tty, const msgpack_object *run, int64_t started, zlist_t *seen,
        size_t drawn)
{
    const msgpack_object *nodes = lh_obj_get (run, "nodes");
    if (!nodes || nodes->type != MSGPACK_OBJECT_MAP)
        return drawn;
    if (tty && drawn)
        fprintf (out, "\033[%zuA", drawn);
    size_t lines = 0;
    for (uint32_t index = 0; index < nodes->via.map.size && index < S_NODES_MAX; index++) {
        const msgpack_object *node = &nodes->via.map.ptr [index].val;
        char *id = lh_obj_strdup (&nodes->via.map.ptr [index].key);
        char *status = s_field (node, "status");
        char *call = s_field (node, "call");
        char *error = s_field (node, "error");
        int64_t begin = 0, end = 0;
        lh_obj_int (node, "started_ms", &begin);
        lh_obj_int (node, "ended_ms", &end);
        s_seen_t *known = NULL;
        for (s_seen_t *item = (s_seen_t *) zlist_first (seen); item && id; item = (s_seen_t *) zlist_next (seen))
            if (streq (item->id, id))
                known = item;
        bool changed = !known || !streq (known->status, status);
        char took [32] = "";
        if (begin && end)
            snprintf (took, sizeof (took), "  (%" PRId64 " ms)", end - begin);
        if (tty)
            fprintf (out, "\033[K  %-20s %-10s %-28s%s%s%s\n", id? id: "?", status, call, took,
                     *error? "  ": "", error);
        else
        if (changed && !streq (status, "pending"))
            fprintf (out, "+%.3fs  %-20s %-10s %s%s%s%s\n", (zclock_mono () - started) / 1000.0,
                     id? id: "?", status, call, took, *error? "  ": "", error);
        lines++;
        if (!known) {
            known = (s_seen_t *) zmalloc (sizeof (s_seen_t));
            assert (known);
            known->id = id;
            known->call = call;
            zlist_append (seen, known);
            id = call = NULL;
        }
        if (changed) {
            free (known->status);
            known->status = status;
            status = NULL;
        }
        free (id);
        free (status);
        free (call);
        free (error);
    }
    fflush (out);
    return lines;
}


//  --------------------------------------------------------------------------
//  Run a workflow file with a live view; returns the exit code

int
lh_wfcli_run (lh_client_t *client, const char *path, zlist_t *inputs, FILE *out, bool tty)
{
    assert (client && path && out);
    size_t size = 0;
    char *text = s_read_file (path, &size);
    if (!text) {
        fprintf (stderr, "lakehouse: workflow run: cannot read %s: %s\n", path,
                 errno == EFBIG? "larger than 16 MiB": strerror (errno));
        return 2;
    }
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_str (pack, "definition");
    lh_pack_strn (pack, text, size);
    free (text);
    lh_pack_str (pack, "inputs");
    if (s_pack_inputs (pack, inputs)) {
        lh_pack_destroy (&pack);
        return 2;
    }
    lh_pack_kv_bool (pack, "wait", false);
    lh_pack_close (pack);
    const void *data = lh_pack_data (pack, &size);
    lh_call_opts_t opts = { .timeout_ms = S_CALL_MS };
    lh_reply_t *reply = NULL;
    lh_client_call (client, "workflowd", "workflow_run", data, size, &opts, &reply);
    lh_pack_destroy (&pack);
    if (lh_reply_status (reply) >= 300) {
        const msgpack_object *error = lh_obj_get (lh_reply_object (reply), "error");
        char *kind = s_field (error, "kind");
        fprintf (stderr, "lakehouse: workflow run %s: %u %s: %s\n", path, lh_reply_status (reply),
                 kind, s_reason (reply));
        free (kind);
        lh_reply_destroy (&reply);
        return 1;
    }
    char *run_id = s_field (lh_reply_object (reply), "run_id");
    char *name = s_field (lh_reply_object (reply), "name");
    lh_reply_destroy (&reply);
    fprintf (out, "run %s of %s\n", run_id, name);
    fflush (out);

    //  Follow it
    int64_t started = zclock_mono (), heard = started;
    zlist_t *seen = zlist_new ();
    size_t drawn = 0;
    char *status = strdup ("running");
    int rc = 1;
    pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_kv_str (pack, "run_id", run_id);
    lh_pack_kv_bool (pack, "outputs", false);
    lh_pack_close (pack);
    data = lh_pack_data (pack, &size);
    while (!zsys_interrupted) {
        opts.timeout_ms = 5000;
        lh_client_call (client, "workflowd", "run_get", data, size, &opts, &reply);
        if (lh_reply_status (reply) == 200) {
            heard = zclock_mono ();
            const msgpack_object *run = lh_reply_object (reply);
            drawn = s_show (out, tty, run, started, seen, drawn);
            free (status);
            status = s_field (run, "status");
            if (!streq (status, "running")) {
                int64_t begin = 0, end = 0;
                lh_obj_int (run, "started_ms", &begin);
                lh_obj_int (run, "ended_ms", &end);
                size_t counts [5] = { 0 };
                static const char *s_names [] = { "succeeded", "failed", "skipped", "running", "pending" };
                const msgpack_object *nodes = lh_obj_get (run, "nodes");
                for (uint32_t index = 0; nodes && nodes->type == MSGPACK_OBJECT_MAP
                                         && index < nodes->via.map.size; index++) {
                    char *state = s_field (&nodes->via.map.ptr [index].val, "status");
                    for (size_t which = 0; which < 5; which++)
                        if (streq (state, s_names [which]))
                            counts [which]++;
                    free (state);
                }
                fprintf (out, "run %s %s in %" PRId64 " ms: %zu succeeded, %zu failed, %zu skipped\n",
                         run_id, status, end - begin, counts [0], counts [1], counts [2]);
                rc = streq (status, "succeeded")? 0: 1;
                lh_reply_destroy (&reply);
                break;
            }
        }
        else
        if (zclock_mono () - heard > S_GONE_MS) {
            fprintf (stderr, "lakehouse: workflow run: run_get %s: %u %s (giving up)\n", run_id,
                     lh_reply_status (reply), s_reason (reply));
            lh_reply_destroy (&reply);
            break;
        }
        lh_reply_destroy (&reply);
        zclock_sleep (S_POLL_MS);
    }
    fflush (out);
    lh_pack_destroy (&pack);
    while (zlist_size (seen)) {
        s_seen_t *item = (s_seen_t *) zlist_pop (seen);
        free (item->id);
        free (item->status);
        free (item->call);
        free (item);
    }
    zlist_destroy (&seen);
    free (status);
    free (name);
    free (run_id);
    return rc;
}


//  --------------------------------------------------------------------------
//  Self test: a file run through workflowd on a test bus, the progress
//  lines, the exit codes

#include "lh_testbus.h"
#include "echo.h"
#include "workflowd.h"

void
lh_wfcli_test (bool verbose)
{
    printf (" * lh_wfcli: ");
    lh_testbus_t *bus = lh_testbus_new ("wfcli");
    lh_testbus_set (bus, "workflowd/map_bytes", "67108864");
    lh_testbus_start (bus, &lh_echo_service, 2);
    lh_testbus_start (bus, &lh_workflowd_service, 1);
    lh_client_t *client = lh_testbus_client (bus);

    char *path = zsys_sprintf ("%s/wf.yaml", lh_testbus_dir (bus));
    FILE *file = fopen (path, "w");
    assert (file);
    fputs ("name: cli\n"
           "nodes:\n"
           "  first:\n"
           "    call: echo.sleep\n"
           "    input: {ms: \"${inputs.ms}\"}\n"
           "  second:\n"
           "    call: echo.echo\n"
           "    needs: [first]\n"
           "    input: {who: \"${inputs.who}\", slept: \"${nodes.first.output.slept_ms}\"}\n", file);
    fclose (file);
    char *log_path = zsys_sprintf ("%s/out.txt", lh_testbus_dir (bus));
    FILE *out = fopen (log_path, "w+");
    assert (out);
    zlist_t *inputs = zlist_new ();
    zlist_append (inputs, "who=ann");
    zlist_append (inputs, "ms:=300");
    assert (lh_wfcli_run (client, path, inputs, out, false) == 0);
    //  Bad inputs, a missing input, a missing file, a failing run
    zlist_append (inputs, "bad");
    assert (lh_wfcli_run (client, path, inputs, out, false) == 2);
    zlist_purge (inputs);
    zlist_append (inputs, "ms:={");
    assert (lh_wfcli_run (client, path, inputs, out, false) == 2);
    zlist_purge (inputs);
    zlist_append (inputs, "who=ann");
    assert (lh_wfcli_run (client, path, inputs, out, false) == 1);
    assert (lh_wfcli_run (client, "/nonexistent/wf.yaml", inputs, out, false) == 2);
    zlist_append (inputs, "ms:=\"x\"");
    assert (lh_wfcli_run (client, path, inputs, out, false) == 1);
    //  On a terminal the table is redrawn in place
    zlist_purge (inputs);
    zlist_append (inputs, "who=bo");
    zlist_append (inputs, "ms:=10");
    assert (lh_wfcli_run (client, path, inputs, out, true) == 0);
    fflush (out);
    rewind (out);
    char line [512];
    zchunk_t *all = zchunk_new (NULL, 4096);
    while (fgets (line, sizeof (line), out))
        zchunk_extend (all, line, strlen (line));
    zchunk_extend (all, "", 1);
    const char *text = (const char *) zchunk_data (all);
    if (verbose)
        printf ("\n%s", text);
    assert (strstr (text, "first                running    echo.sleep"));
    assert (strstr (text, "first                succeeded  echo.sleep  ("));
    assert (strstr (text, "second               succeeded  echo.echo"));
    assert (strstr (text, "succeeded in ") && strstr (text, ": 2 succeeded, 0 failed, 0 skipped"));
    assert (strstr (text, ": 0 succeeded, 1 failed, 1 skipped"));
    assert (strstr (text, "\033[K"));
    zchunk_destroy (&all);
    fclose (out);
    zlist_destroy (&inputs);
    zstr_free (&log_path);
    zstr_free (&path);
    lh_testbus_destroy (&bus);
    printf ("OK\n");
}
