/*  =========================================================================
    busreplay - replay a recording (.lhrec, made by bustap --record) against
    a live bus and diff every new reply with the recorded one

    busreplay [options] FILE.lhrec

    --broker ENDPOINT   broker to call (else config bus/endpoint)
    --config FILE       config file (else $LAKEHOUSE_CONFIG, else
                        ./conf/lakehouse.cfg if present, else the running
                        `lakehouse up` recorded in LAKEHOUSE_HOME/current,
                        else defaults: docs/tools.md "Finding the system")
    --cert FILE         our CURVE certificate (else config bus/cert, else
                        CERTS/admin.cert of the local set)
    --server-key KEY    the broker's CURVE public key, Z85 or its public
                        certificate (else bus/server_key, else
                        CERTS/broker.cert)
    --speed S           instant (default: each request once the previous
                        one is answered) or original (the recorded gaps)
    --from-bseq N       only requests recorded with bseq >= N
    --service S         only requests to service S (repeatable)
    --ignore PATH       also ignore this body path, e.g. $.stats.rows or
                        $.items[*].size (repeatable)
    --allow-errors      a pair of identical error replies (>= 400) counts
                        as a match (by default it is a difference: both
                        sides failing the same way proves nothing)
    --timeout MS        deadline of each request (default: the recorded dl)
    --wait MS           first wait this long for every replayed service to
                        have a worker (default 5000)
    --json              one JSON line per case instead of the table
    -q, --quiet         print only the differing cases and the summary
    -v, --verbose       debug logging
    -h, --help          this text

    Recorded replies are paired with their requests by "rseq" (the
    request's bseq, on every tap copy of a PART/REP; docs/protocol.md), or,
    in recordings from a broker without it, by topic, id and trace id.
    Requests to the built-in `broker` service are skipped (their answers
    describe the broker's state) unless --service broker is given. A
    request made on behalf of another (the same trace id, sent while that
    one was open: catalogd calling storaged) is not replayed by itself:
    replaying the outer request makes it again.
    Volatile fields are normalised on both sides before the diff: map keys
    id, tr, trace, time, ts, timestamp, now, mtime, *_id, *_at, *_time,
    *time_ms, *time_us, elapsed*, uptime*, duration*, created*, updated*,
    modified*; string values that are a trace id (32 hex digits) or hold a
    UUID or an ISO 8601 time. Exit codes: 0 every case matched; 1 some
    differed; 2 the broker or the recording could not be read (a refused
    CURVE handshake is said at once, naming the certificate); 64 bad
    command line, config or certificate.
    =========================================================================
*/

#include "lh_proto.h"
#include "lh_body.h"
#include "lh_config.h"
#include "lh_log.h"
#include "lh_tool.h"
#include "lh_json.h"
#include "lh_client.h"
#include "lh_lhrec.h"

#define S_EXIT_OK           0
#define S_EXIT_DIFFER       1
#define S_EXIT_FAILURE      2
#define S_EXIT_USAGE        LH_TOOL_EXIT_USAGE

#define s_bad_usage(...) lh_tool_bad_usage ("busreplay", __VA_ARGS__)
#define S_DEFAULT_DL        5000
#define S_PATH_MAX          512
#define S_DETAIL_MAX        160

//  The command line
typedef struct {
    const char *file;                   //  FILE.lhrec
    const char *broker;                 //  --broker, or NULL
    const char *config;                 //  --config, or NULL
    const char *cert;                   //  --cert, or NULL
    const char *server_key;             //  --server-key, or NULL
    bool original;                      //  --speed original
    uint64_t from_bseq;                 //  --from-bseq
    zlist_t *services;                  //  --service values (borrowed)
    zlist_t *ignores;                   //  --ignore values (borrowed)
    bool allow_errors;                  //  --allow-errors
    uint32_t timeout_ms;                //  --timeout, 0 = recorded dl
    uint32_t wait_ms;                   //  --wait
    bool json;                          //  --json
    bool quiet;                         //  -q
    bool verbose;                       //  -v
} s_args_t;

//  One recorded request and what became of it
typedef struct {
    size_t number;                      //  case number, from 1
    uint64_t bseq;                      //  recorded bseq of the REQ
    uint64_t brx;                       //  recorded broker receive time, us
    char topic [LH_LHREC_TOPIC_MAX + 1];//  recorded tap topic
    uint64_t rec_id;                    //  recorded client id
    char rec_tr [LH_TRACE_SIZE + 1];    //  recorded trace id, or ""
    char svc [LH_NAME_MAX + 1];         //  service
    char op [LH_NAME_MAX + 1];          //  op
    uint32_t dl;                        //  recorded deadline, ms (0 = default)
    char idem [LH_IDEM_MAX + 1];        //  recorded idempotency key, or ""
    bool q;                             //  recorded q
    bool nested;                        //  made on behalf of an open request
    zframe_t *body;                     //  request body, or NULL
    bool rec_done;                      //  recorded REP seen
    uint32_t rec_st;                    //  recorded status
    bool rec_worker;                    //  recorded REP came from a worker
    zframe_t *rec_body;                 //  recorded REP body, or NULL
    zlist_t *rec_parts;                 //  recorded PART bodies (zframe_t *)
    bool sent;                          //  replayed
    uint64_t new_id;                    //  our request id
    int64_t sent_ms;                    //  when sent, ms after the first
    bool new_done;                      //  new REP received
    uint32_t new_st;                    //  new status
    zframe_t *new_body;                 //  new REP body, or NULL
    zlist_t *new_parts;                 //  new PART bodies (zframe_t *)
} s_case_t;

//  One segment of an --ignore path
typedef struct {
    char key [LH_NAME_MAX * 2];         //  object key, or "" for an index
    long index;                         //  array index; -1 = any ([*] or *)
    bool any;                           //  * : any key or index
} s_segment_t;


//  --------------------------------------------------------------------------
//  Print the usage text

static void
s_usage (FILE *file)
{
    fprintf (file,
        "usage: busreplay [options] FILE.lhrec\n"
        "\n"
        "  --broker ENDPOINT   broker to call (else config bus/endpoint)\n"
        "  --config FILE       config file (else $LAKEHOUSE_CONFIG, else ./conf/lakehouse.cfg,\n"
        "                      else the running `lakehouse up`, else defaults)\n"
        "  --cert FILE         our CURVE certificate (else bus/cert, else CERTS/admin.cert)\n"
        "  --server-key KEY    the broker's public key or public cert (else\n"
        "                      bus/server_key, else CERTS/broker.cert)\n"
        "  --speed S           instant (default) or original (the recorded gaps)\n"
        "  --from-bseq N       only requests recorded with bseq >= N\n"
        "  --service S         only requests to S (repeatable; `broker` is skipped unless named)\n"
        "  --ignore PATH       ignore this body path too: $.a.b, $.items[*].size (repeatable)\n"
        "  --allow-errors      identical error replies (>= 400) count as a match\n"
        "  --timeout MS        deadline per request (default: the recorded one)\n"
        "  --wait MS           wait for workers of the replayed services (default 5000)\n"
        "  --json              one JSON line per case\n"
        "  -q, --quiet         only differing cases and the summary\n"
        "  -v, --verbose       debug logging\n"
        "  -h, --help          this text\n"
        "\n"
        "Exit: 0 all cases match, 1 some differ, 2 broker or file unreadable, 64 usage.\n");
}


//  --------------------------------------------------------------------------
//  Parse the command line. Returns 0, or an exit code (-1 for --help).

static int
s_parse (s_args_t *args, int argc, char *argv [])
{
    args->wait_ms = 5000;
    for (int argn = 1; argn < argc; argn++) {
        const char *arg = argv [argn];
        if (streq (arg, "-h") || streq (arg, "--help")) {
            s_usage (stdout);
            return -1;
        }
        if (arg [0] != '-') {
            if (args->file)
                return s_bad_usage ("one recording at a time ('%s')", arg);
            args->file = arg;
            continue;
        }
        if (streq (arg, "-v") || streq (arg, "--verbose"))
            args->verbose = true;
        else
        if (streq (arg, "-q") || streq (arg, "--quiet"))
            args->quiet = true;
        else
        if (streq (arg, "--json"))
            args->json = true;
        else
        if (streq (arg, "--allow-errors"))
            args->allow_errors = true;
        else {
            static const char *valued [] = { "--broker", "--config", "--cert", "--server-key",
                "--speed", "--from-bseq", "--service", "--ignore", "--timeout", "--wait", NULL };
            size_t index = 0;
            while (valued [index] && !streq (valued [index], arg))
                index++;
            if (!valued [index])
                return s_bad_usage ("unknown option '%s'", arg);
            if (argn + 1 >= argc)
                return s_bad_usage ("%s needs a value", arg);
            const char *value = argv [++argn];
            uint64_t number;
            if (streq (arg, "--broker"))        args->broker = value;
            else if (streq (arg, "--config"))   args->config = value;
            else if (streq (arg, "--cert"))     args->cert = value;
            else if (streq (arg, "--service"))  zlist_append (args->services, (void *) value);
            else
            if (streq (arg, "--server-key")) {
                char key [LH_UID_SIZE + 1];
                if (lh_tool_server_key (value, key) == -1)
                    return s_bad_usage ("--server-key '%s': give the broker's public key (%d Z85 "
                                        "characters) or its public certificate file", value, LH_UID_SIZE);
                args->server_key = value;
            }
            else
            if (streq (arg, "--ignore")) {
                if (!*value || strlen (value) > S_PATH_MAX)
                    return s_bad_usage ("--ignore '%s': give a path like $.a.b[0]", value);
                zlist_append (args->ignores, (void *) value);
            }
            else
            if (streq (arg, "--speed")) {
                if (streq (value, "original"))
                    args->original = true;
                else
                if (!streq (value, "instant"))
                    return s_bad_usage ("--speed '%s': instant or original", value);
            }
            else
            if (streq (arg, "--from-bseq")) {
                if (lh_tool_number (value, 0, UINT64_MAX, &number))
                    return s_bad_usage ("--from-bseq '%s': give a bseq", value);
                args->from_bseq = number;
            }
            else {
                if (lh_tool_number (value, streq (arg, "--wait")? 0: 1, 3600000, &number))
                    return s_bad_usage ("%s '%s': give milliseconds", arg, value);
                if (streq (arg, "--wait"))
                    args->wait_ms = (uint32_t) number;
                else
                    args->timeout_ms = (uint32_t) number;
            }
        }
    }
    if (!args->file)
        return s_bad_usage ("give a recording (FILE.lhrec)");
    return 0;
}


//  --------------------------------------------------------------------------
//  Destroy a case

static void
s_case_destroy (s_case_t **self_p)
{
    s_case_t *self = *self_p;
    if (!self)
        return;
    zframe_destroy (&self->body);
    zframe_destroy (&self->rec_body);
    zframe_destroy (&self->new_body);
    zlist_t *lists [] = { self->rec_parts, self->new_parts };
    for (size_t index = 0; index < 2; index++) {
        zlist_t *list = lists [index];
        for (zframe_t *part = (zframe_t *) zlist_first (list); part;
             part = (zframe_t *) zlist_next (list))
            zframe_destroy (&part);
        zlist_destroy (&list);
    }
    free (self);
    *self_p = NULL;
}


//  --------------------------------------------------------------------------
//  Is a request to this service replayed

static bool
s_service_selected (s_args_t *args, const char *svc)
{
    if (zlist_size (args->services) == 0)
        return !streq (svc, "broker");
    for (const char *name = (const char *) zlist_first (args->services); name;
         name = (const char *) zlist_next (args->services))
        if (streq (name, svc))
            return true;
    return false;
}


//  --------------------------------------------------------------------------
//  A frame copy of bytes, or NULL for none

static zframe_t *
s_frame (const void *data, size_t size)
{
    return data? zframe_new (data, size): NULL;
}


//  --------------------------------------------------------------------------
//  Find the open case a recorded PART/REP answers. A current broker's tap
//  names it: rseq, the bseq of its REQ. Older recordings: same topic and
//  id, the same trace id when both carry one, else the oldest still open.
//  A REP closes the case.

static s_case_t *
s_find_open (zhashx_t *open, zhashx_t *by_bseq, const char *topic,
             const lh_header_t *header, uint64_t rseq)
{
    char key [LH_LHREC_TOPIC_MAX + 32];
    if (rseq) {
        char bseq [24];
        snprintf (bseq, sizeof bseq, "%" PRIu64, rseq);
        s_case_t *entry = (s_case_t *) zhashx_lookup (by_bseq, bseq);
        if (entry && header->t == LH_T_REP) {
            zhashx_delete (by_bseq, bseq);
            snprintf (key, sizeof key, "%s %" PRIu64, entry->topic, entry->rec_id);
            zlist_t *list = (zlist_t *) zhashx_lookup (open, key);
            if (list) {
                zlist_remove (list, entry);
                if (zlist_size (list) == 0)
                    zhashx_delete (open, key);
            }
        }
        return entry;                   //  NULL: its REQ was not recorded
    }
    snprintf (key, sizeof key, "%s %" PRIu64, topic, header->cid);
    zlist_t *list = (zlist_t *) zhashx_lookup (open, key);
    if (!list)
        return NULL;
    s_case_t *match = NULL;
    if (header->has & LH_H_TR)
        for (s_case_t *entry = (s_case_t *) zlist_first (list); entry && !match;
             entry = (s_case_t *) zlist_next (list))
            if (streq (entry->rec_tr, header->tr))
                match = entry;
    if (!match)
        match = (s_case_t *) zlist_first (list);
    if (match && header->t == LH_T_REP) {
        char bseq [24];
        snprintf (bseq, sizeof bseq, "%" PRIu64, match->bseq);
        if (zhashx_lookup (by_bseq, bseq) == match)
            zhashx_delete (by_bseq, bseq);
        zlist_remove (list, match);
        if (zlist_size (list) == 0)
            zhashx_delete (open, key);
    }
    return match;
}


//  --------------------------------------------------------------------------
//  Destroy a zlist held in the open-requests table (items not owned)

static void
s_list_destructor (void **item_p)
{
    zlist_t *list = (zlist_t *) *item_p;
    zlist_destroy (&list);
    *item_p = NULL;
}


//  --------------------------------------------------------------------------
//  Read the recording into cases (every REQ, its PARTs and REP). Every
//  REQ is kept for pairing; unselected cases are dropped at the end.
//  Returns 0, or -1 after printing why.

static int
s_load (s_args_t *args, zlistx_t *cases)
{
    char *error = NULL;
    lh_lhrec_t *rec = lh_lhrec_open (args->file, 0, &error);
    if (!rec) {
        fprintf (stderr, "busreplay: %s\n", error? error: "cannot read the recording");
        free (error);
        return -1;
    }
    zhashx_t *open = zhashx_new ();
    assert (open);
    zhashx_set_destructor (open, s_list_destructor);
    zlist_t *all = zlist_new ();
    assert (all);
    zhashx_t *traces = zhashx_new ();   //  trace id -> the open outer case
    assert (traces);
    zhashx_t *by_bseq = zhashx_new ();  //  REQ bseq -> its open case
    assert (by_bseq);
    lh_lhrec_record_t record;
    int rc;
    while ((rc = lh_lhrec_next (rec, &record)) == 1) {
        lh_header_t *header = &record.header;
        if (header->t == LH_T_REQ && (header->has & LH_H_ID)
        &&  (header->has & LH_H_SVC) && (header->has & LH_H_OP)) {
            s_case_t *entry = (s_case_t *) zmalloc (sizeof (s_case_t));
            assert (entry);
            entry->bseq = header->bseq;
            entry->brx = (header->has & LH_H_BRX)? header->brx: record.rx_us;
            snprintf (entry->topic, sizeof entry->topic, "%s", record.topic);
            entry->rec_id = header->id;
            snprintf (entry->rec_tr, sizeof entry->rec_tr, "%s", (header->has & LH_H_TR)? header->tr: "");
            snprintf (entry->svc, sizeof entry->svc, "%s", header->svc);
            snprintf (entry->op, sizeof entry->op, "%s", header->op);
            entry->dl = (header->has & LH_H_DL) && header->dl <= UINT32_MAX? (uint32_t) header->dl: 0;
            snprintf (entry->idem, sizeof entry->idem, "%s", (header->has & LH_H_IDEM)? header->idem: "");
            entry->q = (header->has & LH_H_Q) && header->q;
            entry->body = s_frame (record.body, record.body_size);
            if (*entry->rec_tr) {
                if (zhashx_lookup (traces, entry->rec_tr))
                    entry->nested = true;
                else
                    zhashx_insert (traces, entry->rec_tr, entry);
            }
            entry->rec_parts = zlist_new ();
            entry->new_parts = zlist_new ();
            zlist_append (all, entry);
            char key [LH_LHREC_TOPIC_MAX + 32];
            snprintf (key, sizeof key, "%s %" PRIu64, record.topic, header->id);
            zlist_t *list = (zlist_t *) zhashx_lookup (open, key);
            if (!list) {
                list = zlist_new ();
                zhashx_insert (open, key, list);
            }
            zlist_append (list, entry);
            if (header->has & LH_H_BSEQ) {
                char bseq [24];
                snprintf (bseq, sizeof bseq, "%" PRIu64, header->bseq);
                zhashx_update (by_bseq, bseq, entry);
            }
        }
        else
        if ((header->t == LH_T_REP || header->t == LH_T_PART) && (header->has & LH_H_CID)) {
            s_case_t *entry = s_find_open (open, by_bseq, record.topic, header, record.rseq);
            if (!entry)
                continue;               //  its request was not recorded
            if (header->t == LH_T_PART)
                zlist_append (entry->rec_parts, zframe_new (record.body, record.body_size));
            else {
                entry->rec_done = true;
                entry->rec_st = (header->has & LH_H_ST)? header->st: LH_ST_OK;
                entry->rec_worker = !streq (header->src, "broker");
                if (*entry->rec_tr && zhashx_lookup (traces, entry->rec_tr) == entry)
                    zhashx_delete (traces, entry->rec_tr);
                entry->rec_body = s_frame (record.body, record.body_size);
            }
        }
    }
    if (rc < 0)
        fprintf (stderr, "busreplay: %s: %s%s\n", args->file, lh_lhrec_error (rec),
                 rc == -1? " (replaying the records before it)": "");
    zhashx_destroy (&open);
    zhashx_destroy (&by_bseq);
    zhashx_destroy (&traces);
    lh_lhrec_destroy (&rec);
    if (rc == -2) {
        for (s_case_t *entry = (s_case_t *) zlist_first (all); entry;
             entry = (s_case_t *) zlist_next (all))
            s_case_destroy (&entry);
        zlist_destroy (&all);
        return -1;
    }
    size_t number = 0;
    for (s_case_t *entry = (s_case_t *) zlist_first (all); entry;
         entry = (s_case_t *) zlist_next (all)) {
        if (!entry->nested && entry->bseq >= args->from_bseq
        &&  s_service_selected (args, entry->svc)) {
            entry->number = ++number;
            zlistx_add_end (cases, entry);
        }
        else
            s_case_destroy (&entry);
    }
    zlist_destroy (&all);
    return 0;
}


//  --------------------------------------------------------------------------
//  Wait until every service whose recorded replies came from a worker has
//  a live worker, up to wait_ms.
//  Returns 0, or -1 after printing which are missing.

static int
s_wait_services (s_args_t *args, lh_client_t *client, zlistx_t *cases)
{
    int64_t deadline = zclock_mono () + args->wait_ms;
    while (true) {
        lh_reply_t *reply = NULL;
        lh_client_call (client, "broker", "services", NULL, 0, NULL, &reply);
        const msgpack_object *body = reply? lh_reply_object (reply): NULL;
        const msgpack_object *list = body? lh_obj_get (body, "services"): NULL;
        const char *missing = NULL;
        for (s_case_t *entry = (s_case_t *) zlistx_first (cases); entry && !missing;
             entry = (s_case_t *) zlistx_next (cases)) {
            if (!entry->rec_worker)
                continue;               //  the broker answered it: no worker needed
            bool found = false;
            for (uint32_t index = 0; list && list->type == MSGPACK_OBJECT_ARRAY
                 && index < list->via.array.size && !found; index++) {
                const msgpack_object *item = &list->via.array.ptr [index];
                const char *name;
                size_t size;
                uint64_t workers;
                found = lh_obj_str (item, "name", &name, &size)
                     && size == strlen (entry->svc) && memcmp (name, entry->svc, size) == 0
                     && lh_obj_uint (item, "workers", &workers) && workers > 0;
            }
            if (!found)
                missing = entry->svc;
        }
        if (!missing) {
            lh_reply_destroy (&reply);
            return 0;
        }
        if (zclock_mono () >= deadline) {
            fprintf (stderr, "busreplay: service '%s' has no worker on this bus (waited %u ms)\n",
                     missing, args->wait_ms);
            lh_reply_destroy (&reply);
            return -1;
        }
        lh_reply_destroy (&reply);
        zclock_sleep (50);              //  polling the broker, not synchronising
    }
}


//  --------------------------------------------------------------------------
//  Record a received PART/REP in its case

static void
s_take_reply (s_case_t *entry, lh_reply_t *reply)
{
    size_t size = 0;
    const void *body = lh_reply_body (reply, &size);
    if (lh_reply_type (reply) == LH_T_PART) {
        zlist_append (entry->new_parts, zframe_new (body, body? size: 0));
        return;
    }
    entry->new_done = true;
    entry->new_st = lh_reply_status (reply);
    entry->new_body = s_frame (body, size);
    zlist_t *parts = lh_reply_parts (reply);
    if (parts)
        for (zframe_t *part = (zframe_t *) zlist_first (parts); part;
             part = (zframe_t *) zlist_next (parts))
            zlist_append (entry->new_parts, zframe_dup (part));
}


//  --------------------------------------------------------------------------
//  Call options for a case

static lh_call_opts_t
s_opts (s_args_t *args, s_case_t *entry)
{
    lh_call_opts_t opts = {
        .timeout_ms = args->timeout_ms? args->timeout_ms: entry->dl? entry->dl: S_DEFAULT_DL,
        .idem = *entry->idem? entry->idem: NULL,
        .queue = entry->q
    };
    return opts;
}


//  --------------------------------------------------------------------------
//  Replay every case, one at a time (instant) or at the recorded offsets
//  (original). Returns 0, or -1 if interrupted.

static int
s_replay (s_args_t *args, lh_client_t *client, zlistx_t *cases)
{
    int64_t start = zclock_mono ();
    s_case_t *first = (s_case_t *) zlistx_first (cases);
    uint64_t base_us = first? first->brx: 0;
    zhashx_t *by_id = zhashx_new ();        //  our id (as text) -> case
    assert (by_id);
    uint32_t longest = 0;
    for (s_case_t *entry = (s_case_t *) zlistx_first (cases); entry && !zsys_interrupted;
         entry = (s_case_t *) zlistx_next (cases)) {
        lh_call_opts_t opts = s_opts (args, entry);
        if (opts.timeout_ms > longest)
            longest = opts.timeout_ms;
        const void *data = entry->body? zframe_data (entry->body): NULL;
        size_t size = entry->body? zframe_size (entry->body): 0;
        if (!args->original) {
            lh_reply_t *reply = NULL;
            entry->sent = true;
            entry->sent_ms = zclock_mono () - start;
            lh_client_call (client, entry->svc, entry->op, data, size, &opts, &reply);
            if (reply)
                s_take_reply (entry, reply);
            lh_reply_destroy (&reply);
            continue;
        }
        //  Original timing: take replies until this request is due
        int64_t due = start + (int64_t) ((entry->brx > base_us? entry->brx - base_us: 0) / 1000);
        while (zclock_mono () < due && !zsys_interrupted) {
            lh_reply_t *reply = NULL;
            if (lh_client_recv (client, &reply, (int) (due - zclock_mono ())) == 0) {
                char key [24];
                snprintf (key, sizeof key, "%" PRIu64, lh_reply_cid (reply));
                s_case_t *owner = (s_case_t *) zhashx_lookup (by_id, key);
                if (owner && lh_reply_type (reply) != LH_T_PUB)
                    s_take_reply (owner, reply);
                lh_reply_destroy (&reply);
            }
        }
        entry->sent_ms = zclock_mono () - start;
        entry->new_id = lh_client_send (client, entry->svc, entry->op, data, size, &opts);
        entry->sent = true;
        if (entry->new_id) {
            char key [24];
            snprintf (key, sizeof key, "%" PRIu64, entry->new_id);
            zhashx_insert (by_id, key, entry);
        }
        else {
            entry->new_done = true;     //  could not send: a 503 of our own
            entry->new_st = LH_ST_UNAVAILABLE;
        }
    }
    if (args->original) {
        //  The last replies, until all are in or the longest deadline passed
        int64_t deadline = zclock_mono () + longest + 1000;
        while (!zsys_interrupted && zclock_mono () < deadline) {
            bool waiting = false;
            for (s_case_t *entry = (s_case_t *) zlistx_first (cases); entry && !waiting;
                 entry = (s_case_t *) zlistx_next (cases))
                waiting = entry->sent && !entry->new_done;
            if (!waiting)
                break;
            lh_reply_t *reply = NULL;
            if (lh_client_recv (client, &reply, (int) (deadline - zclock_mono ())) == 0) {
                char key [24];
                snprintf (key, sizeof key, "%" PRIu64, lh_reply_cid (reply));
                s_case_t *owner = (s_case_t *) zhashx_lookup (by_id, key);
                if (owner && lh_reply_type (reply) != LH_T_PUB)
                    s_take_reply (owner, reply);
                lh_reply_destroy (&reply);
            }
        }
    }
    zhashx_destroy (&by_id);
    return zsys_interrupted? -1: 0;
}


//  --------------------------------------------------------------------------
//  Is a string a run of size hex digits at text

static bool
s_is_hex (const char *text, size_t size)
{
    for (size_t index = 0; index < size; index++)
        if (!isxdigit ((unsigned char) text [index]))
            return false;
    return true;
}


//  --------------------------------------------------------------------------
//  Length of a UUID (8-4-4-4-12 hex) at text, or 0

static size_t
s_uuid_at (const char *text, size_t left)
{
    static const size_t groups [] = { 8, 4, 4, 4, 12 };
    if (left < 36)
        return 0;
    size_t at = 0;
    for (size_t group = 0; group < 5; group++) {
        if (!s_is_hex (text + at, groups [group]))
            return 0;
        at += groups [group];
        if (group < 4 && text [at++] != '-')
            return 0;
    }
    return at;
}


//  --------------------------------------------------------------------------
//  Length of an ISO 8601 time (YYYY-MM-DDTHH:MM:SS, then fraction and
//  zone) at text, or 0

static size_t
s_time_at (const char *text, size_t left)
{
    static const char shape [] = "dddd-dd-ddTdd:dd:dd";
    size_t size = sizeof shape - 1;
    if (left < size)
        return 0;
    for (size_t index = 0; index < size; index++)
        if (shape [index] == 'd'? !isdigit ((unsigned char) text [index]): text [index] != shape [index])
            return 0;
    while (size < left && (isdigit ((unsigned char) text [size]) || strchr (".Z+-:", text [size])))
        size++;
    return size;
}


//  --------------------------------------------------------------------------
//  Normalise a string value: a trace id, UUIDs and ISO times inside it.
//  Returns a new JSON string if anything changed, else NULL.

static json_t *
s_normalise_string (const char *text)
{
    size_t length = strlen (text);
    if (length == LH_TRACE_SIZE && s_is_hex (text, length))
        return json_string ("<trace>");
    char *out = (char *) malloc (length + 1);
    assert (out);
    size_t size = 0;
    bool changed = false;
    for (size_t at = 0; at < length;) {
        size_t uuid = s_uuid_at (text + at, length - at);
        size_t when = uuid? 0: s_time_at (text + at, length - at);
        if (uuid || when) {
            //  a mark is never longer than what it replaces (>= 19 bytes)
            const char *mark = uuid? "<uuid>": "<time>";
            size_t mark_size = strlen (mark);
            memcpy (out + size, mark, mark_size);
            size += mark_size;
            at += uuid + when;
            changed = true;
        }
        else
            out [size++] = text [at++];
    }
    out [size] = 0;
    json_t *result = changed? json_string (out): NULL;
    free (out);
    return result;
}


//  --------------------------------------------------------------------------
//  Is a map key volatile (ids, times, trace ids, elapsed*, ...)

static bool
s_volatile_key (const char *key)
{
    static const char *exact [] = { "id", "tr", "trace", "time", "ts", "timestamp", "now", "mtime", NULL };
    static const char *prefix [] = { "elapsed", "uptime", "duration", "created", "updated", "modified", NULL };
    static const char *suffix [] = { "_id", "_at", "_time", "time_ms", "time_us", NULL };
    size_t length = strlen (key);
    for (size_t index = 0; exact [index]; index++)
        if (streq (key, exact [index]))
            return true;
    for (size_t index = 0; prefix [index]; index++)
        if (strncmp (key, prefix [index], strlen (prefix [index])) == 0)
            return true;
    for (size_t index = 0; suffix [index]; index++) {
        size_t size = strlen (suffix [index]);
        if (length >= size && streq (key + length - size, suffix [index]))
            return true;
    }
    return false;
}


//  --------------------------------------------------------------------------
//  Normalise volatile fields in place (recursively)

static void
s_normalise (json_t *json)
{
    if (json_is_object (json)) {
        const char *key;
        json_t *value;
        void *iter = json_object_iter (json);
        while (iter) {
            key = json_object_iter_key (iter);
            value = json_object_iter_value (iter);
            if (s_volatile_key (key))
                json_object_iter_set_new (json, iter, json_string ("<volatile>"));
            else
            if (json_is_string (value)) {
                json_t *fixed = s_normalise_string (json_string_value (value));
                if (fixed)
                    json_object_iter_set_new (json, iter, fixed);
            }
            else
                s_normalise (value);
            iter = json_object_iter_next (json, iter);
        }
    }
    else
    if (json_is_array (json)) {
        for (size_t index = 0; index < json_array_size (json); index++) {
            json_t *value = json_array_get (json, index);
            if (json_is_string (value)) {
                json_t *fixed = s_normalise_string (json_string_value (value));
                if (fixed)
                    json_array_set_new (json, index, fixed);
            }
            else
                s_normalise (value);
        }
    }
}


//  --------------------------------------------------------------------------
//  Parse an --ignore path into segments. Returns the count, or -1.

static int
s_parse_path (const char *text, s_segment_t *segments, int capacity)
{
    if (text [0] == '$')
        text++;
    int count = 0;
    while (*text) {
        if (count == capacity)
            return -1;
        s_segment_t *segment = &segments [count++];
        memset (segment, 0, sizeof *segment);
        if (*text == '.')
            text++;
        if (*text == '[') {
            const char *end = strchr (text, ']');
            if (!end)
                return -1;
            if (end - text == 2 && text [1] == '*')
                segment->any = true;
            else {
                char *stop = NULL;
                segment->index = strtol (text + 1, &stop, 10);
                if (stop != end || segment->index < 0)
                    return -1;
            }
            text = end + 1;
            continue;
        }
        size_t length = strcspn (text, ".[");
        if (length == 0 || length >= sizeof segment->key)
            return -1;
        if (length == 1 && *text == '*')
            segment->any = true;
        else
            memcpy (segment->key, text, length);
        segment->index = -1;
        text += length;
    }
    return count;
}


//  --------------------------------------------------------------------------
//  Remove what a path names (objects: the key goes; arrays: "<ignored>")

static void
s_ignore (json_t *json, s_segment_t *segments, int count)
{
    if (count == 0 || !json)
        return;
    s_segment_t *segment = segments;
    bool last = count == 1;
    if (json_is_object (json) && segment->index == -1) {
        if (segment->any) {
            const char *key;
            json_t *value;
            void *tmp;
            json_object_foreach_safe (json, tmp, key, value) {
                if (last)
                    json_object_del (json, key);
                else
                    s_ignore (value, segments + 1, count - 1);
            }
        }
        else
        if (last)
            json_object_del (json, segment->key);
        else
            s_ignore (json_object_get (json, segment->key), segments + 1, count - 1);
    }
    else
    if (json_is_array (json) && (segment->any || !segment->key [0])) {
        for (size_t index = 0; index < json_array_size (json); index++) {
            if (!segment->any && (long) index != segment->index)
                continue;
            if (last)
                json_array_set_new (json, index, json_string ("<ignored>"));
            else
                s_ignore (json_array_get (json, index), segments + 1, count - 1);
        }
    }
}


//  --------------------------------------------------------------------------
//  Compare function for sorting object keys

static int
s_compare_keys (const void *one, const void *two)
{
    return strcmp (*(const char **) one, *(const char **) two);
}


//  --------------------------------------------------------------------------
//  Append ".key" or "[index]" to a path

static void
s_path_push (char *path, size_t size, const char *key, size_t index)
{
    size_t used = strlen (path);
    if (key)
        snprintf (path + used, size - used, ".%s", key);
    else
        snprintf (path + used, size - used, "[%zu]", index);
}


//  --------------------------------------------------------------------------
//  Find the first difference between recorded and new JSON (keys in
//  sorted order). Returns true and fills path (from the given prefix) if
//  they differ; *one_p/*two_p borrow the differing values (NULL = absent).

static bool
s_diff (json_t *one, json_t *two, char *path, size_t size, json_t **one_p, json_t **two_p)
{
    *one_p = one;
    *two_p = two;
    if (!one || !two)
        return one != two;
    if (json_typeof (one) != json_typeof (two))
        return true;
    if (json_is_object (one)) {
        size_t count = json_object_size (one) + json_object_size (two);
        const char **keys = (const char **) malloc ((count? count: 1) * sizeof (char *));
        assert (keys);
        size_t used = 0;
        const char *key;
        json_t *value;
        json_object_foreach (one, key, value)
            keys [used++] = key;
        json_object_foreach (two, key, value)
            if (!json_object_get (one, key))
                keys [used++] = key;
        qsort (keys, used, sizeof (char *), s_compare_keys);
        bool differ = false;
        size_t mark = strlen (path);
        for (size_t index = 0; index < used && !differ; index++) {
            s_path_push (path, size, keys [index], 0);
            differ = s_diff (json_object_get (one, keys [index]), json_object_get (two, keys [index]),
                             path, size, one_p, two_p);
            if (!differ)
                path [mark] = 0;
        }
        free (keys);
        return differ;
    }
    if (json_is_array (one)) {
        size_t mark = strlen (path);
        size_t count = json_array_size (one) > json_array_size (two)
                     ? json_array_size (one): json_array_size (two);
        for (size_t index = 0; index < count; index++) {
            s_path_push (path, size, NULL, index);
            if (s_diff (json_array_get (one, index), json_array_get (two, index),
                        path, size, one_p, two_p))
                return true;
            path [mark] = 0;
        }
        return false;
    }
    return !json_equal (one, two);
}


//  --------------------------------------------------------------------------
//  A body as normalised JSON: null for none; NULL if it cannot be shown as
//  JSON (then compared as bytes)

static json_t *
s_body_json (s_args_t *args, zframe_t *body)
{
    if (!body || zframe_size (body) == 0)
        return json_null ();
    json_t *json = lh_json_from_msgpack (zframe_data (body), zframe_size (body), NULL, NULL);
    if (!json)
        return NULL;
    s_normalise (json);
    for (const char *text = (const char *) zlist_first (args->ignores); text;
         text = (const char *) zlist_next (args->ignores)) {
        s_segment_t segments [32];
        int count = s_parse_path (text, segments, 32);
        if (count > 0)
            s_ignore (json, segments, count);
    }
    return json;
}


//  --------------------------------------------------------------------------
//  Short text of a JSON value for the report ("(absent)" for NULL)

static void
s_value_text (json_t *value, char *buffer, size_t size)
{
    if (!value) {
        snprintf (buffer, size, "(absent)");
        return;
    }
    char *text = json_dumps (value, JSON_ENCODE_ANY | JSON_COMPACT | JSON_SORT_KEYS);
    snprintf (buffer, size, "%s", text? text: "?");
    if (text && strlen (text) >= size && size > 4)
        memcpy (buffer + size - 4, "...", 4);
    free (text);
}


//  --------------------------------------------------------------------------
//  Compare two bodies; true if they match, else path and detail filled

static bool
s_body_match (s_args_t *args, zframe_t *recorded, zframe_t *fresh, const char *root,
              char *path, size_t size, char *detail, size_t detail_size)
{
    json_t *one = s_body_json (args, recorded);
    json_t *two = s_body_json (args, fresh);
    bool match;
    snprintf (path, size, "%s", root);
    if (!one || !two) {
        //  not JSON-showable: compare the bytes
        match = zframe_eq (recorded, fresh);
        if (!match)
            snprintf (detail, detail_size, "bodies differ as bytes");
    }
    else {
        json_t *a, *b;
        match = !s_diff (one, two, path, size, &a, &b);
        if (!match) {
            char left [S_DETAIL_MAX / 2], right [S_DETAIL_MAX / 2];
            s_value_text (a, left, sizeof left);
            s_value_text (b, right, sizeof right);
            snprintf (detail, detail_size, "recorded %s, now %s", left, right);
        }
    }
    json_decref (one);
    json_decref (two);
    return match;
}


//  --------------------------------------------------------------------------
//  Judge one case. Returns 1 match, 0 differ, -1 skipped (no recorded
//  reply). Fills the status/body verdicts, the path and the detail.

static int
s_judge (s_args_t *args, s_case_t *entry, bool *status_ok, bool *body_ok,
         char *path, size_t size, char *detail, size_t detail_size)
{
    *path = 0;
    *detail = 0;
    *status_ok = *body_ok = false;
    if (!entry->rec_done) {
        snprintf (detail, detail_size, "no recorded reply (the recording stopped first)");
        return -1;
    }
    if (!entry->new_done) {
        snprintf (detail, detail_size, "no reply within the deadline");
        return 0;
    }
    *status_ok = entry->rec_st == entry->new_st;
    *body_ok = s_body_match (args, entry->rec_body, entry->new_body, "$",
                             path, size, detail, detail_size);
    if (*body_ok) {
        size_t recorded = zlist_size (entry->rec_parts);
        size_t fresh = zlist_size (entry->new_parts);
        zframe_t *one = (zframe_t *) zlist_first (entry->rec_parts);
        zframe_t *two = (zframe_t *) zlist_first (entry->new_parts);
        for (size_t index = 0; index < recorded && index < fresh && *body_ok; index++) {
            char root [32];
            snprintf (root, sizeof root, "parts[%zu]", index);
            *body_ok = s_body_match (args, one, two, root, path, size, detail, detail_size);
            one = (zframe_t *) zlist_next (entry->rec_parts);
            two = (zframe_t *) zlist_next (entry->new_parts);
        }
        if (*body_ok && recorded != fresh) {
            *body_ok = false;
            snprintf (path, size, "parts");
            snprintf (detail, detail_size, "recorded %zu PART(s), now %zu", recorded, fresh);
        }
    }
    if (!*status_ok && !*detail)
        snprintf (detail, detail_size, "status %u, now %u", entry->rec_st, entry->new_st);
    if (*status_ok && *body_ok && entry->new_st >= 400 && !args->allow_errors) {
        snprintf (detail, detail_size,
                  "both sides failed the same way (%u); that counts only with --allow-errors",
                  entry->new_st);
        return 0;
    }
    return *status_ok && *body_ok? 1: 0;
}


//  --------------------------------------------------------------------------
//  Judge and print every case; returns the number that differ

static size_t
s_report (s_args_t *args, zlistx_t *cases, size_t *matched, size_t *skipped)
{
    size_t differ = 0;
    if (!args->json && !args->quiet)
        printf ("%5s %8s %-30s %8s %5s %6s %5s\n",
                "case", "bseq", "svc.op", "recorded", "new", "status", "body");
    for (s_case_t *entry = (s_case_t *) zlistx_first (cases); entry;
         entry = (s_case_t *) zlistx_next (cases)) {
        bool status_ok, body_ok;
        char path [S_PATH_MAX], detail [S_DETAIL_MAX + 64];
        int verdict = s_judge (args, entry, &status_ok, &body_ok, path, sizeof path,
                               detail, sizeof detail);
        if (verdict == 1)
            (*matched)++;
        else
        if (verdict == 0)
            differ++;
        else
            (*skipped)++;
        if (args->quiet && verdict != 0)
            continue;
        char recorded [16] = "-", fresh [16] = "-";
        if (entry->rec_done)
            snprintf (recorded, sizeof recorded, "%u", entry->rec_st);
        if (entry->new_done)
            snprintf (fresh, sizeof fresh, "%u", entry->new_st);
        if (args->json) {
            json_t *line = json_pack ("{s:i, s:I, s:s, s:s, s:s, s:s, s:b, s:b, s:s, s:I}",
                "case", (int) entry->number, "bseq", (json_int_t) entry->bseq,
                "svc", entry->svc, "op", entry->op, "recorded", recorded, "new", fresh,
                "status_match", status_ok, "body_match", body_ok,
                "verdict", verdict == 1? "match": verdict == 0? "differ": "skipped",
                "sent_ms", (json_int_t) entry->sent_ms);
            if (verdict != 1) {
                json_object_set_new (line, "path", json_string (path));
                json_object_set_new (line, "detail", json_string (detail));
            }
            char *text = json_dumps (line, JSON_COMPACT | JSON_PRESERVE_ORDER);
            printf ("%s\n", text? text: "{}");
            free (text);
            json_decref (line);
            continue;
        }
        char name [LH_NAME_MAX * 2 + 2];
        snprintf (name, sizeof name, "%s.%s", entry->svc, entry->op);
        printf ("%5zu %8" PRIu64 " %-30.30s %8s %5s %6s %5s\n", entry->number, entry->bseq,
                name, recorded, fresh, status_ok? "yes": "NO",
                verdict == -1? "-": body_ok? "yes": "NO");
        if (verdict != 1)
            printf ("      %s%s%s\n", *path? path: "", *path? ": ": "", detail);
    }
    return differ;
}


int
main (int argc, char *argv [])
{
    s_args_t args;
    memset (&args, 0, sizeof args);
    args.services = zlist_new ();
    args.ignores = zlist_new ();
    int rc = s_parse (&args, argc, argv);
    if (rc) {
        zlist_destroy (&args.services);
        zlist_destroy (&args.ignores);
        return rc < 0? S_EXIT_OK: rc;
    }
    for (const char *text = (const char *) zlist_first (args.ignores); text;
         text = (const char *) zlist_next (args.ignores)) {
        s_segment_t segments [32];
        if (s_parse_path (text, segments, 32) <= 0) {
            zlist_destroy (&args.services);
            zlist_destroy (&args.ignores);
            return s_bad_usage ("--ignore '%s': give a path like $.a.b[0] or $.items[*].size", text);
        }
    }
    lh_config_t *config = lh_tool_config_load (args.config, "busreplay");
    if (!config) {
        zlist_destroy (&args.services);
        zlist_destroy (&args.ignores);
        return S_EXIT_USAGE;
    }
    lh_log_set_level (args.verbose? LH_LOG_DEBUG: LH_LOG_WARN);
    setvbuf (stdout, NULL, _IOLBF, 0);

    int exit_code = S_EXIT_FAILURE;
    zlistx_t *cases = zlistx_new ();
    assert (cases);
    lh_tool_link_t *link = NULL;
    lh_client_t *client = NULL;
    if (s_load (&args, cases) == 0) {
        lh_tool_opts_t opts = { .endpoint = args.broker, .flag = "--broker",
                                .cert = args.cert, .server_key = args.server_key };
        int failure = 0;
        link = lh_tool_link_new (config, "busreplay", &opts, &failure);
        client = link? lh_tool_link_client (link, "busreplay", &failure): NULL;
        if (failure == LH_TOOL_BAD_LINK)
            exit_code = S_EXIT_USAGE;
        if (client
        &&  s_wait_services (&args, client, cases) == 0 && s_replay (&args, client, cases) == 0) {
            size_t matched = 0, skipped = 0;
            size_t differ = s_report (&args, cases, &matched, &skipped);
            fprintf (args.json? stderr: stdout,
                     "busreplay: %zu case(s): %zu match, %zu differ, %zu skipped\n",
                     zlistx_size (cases), matched, differ, skipped);
            exit_code = differ? S_EXIT_DIFFER: S_EXIT_OK;
        }
    }
    lh_client_destroy (&client);
    lh_tool_link_destroy (&link);
    for (s_case_t *entry = (s_case_t *) zlistx_first (cases); entry;
         entry = (s_case_t *) zlistx_next (cases))
        s_case_destroy (&entry);
    zlistx_destroy (&cases);
    zlist_destroy (&args.services);
    zlist_destroy (&args.ignores);
    lh_config_destroy (&config);
    return exit_code;
}
